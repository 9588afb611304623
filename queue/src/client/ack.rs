//! Recording outcomes of leased jobs: done, retry, dead, hand-back and snooze, fenced by the
//! lease's token.

use std::time::Duration;

use redis::aio::ConnectionLike;

use super::{PUSH_CHUNK, Queue};
use crate::error::QueueError;
use crate::scripts;

/// Longest error text kept with a job.
const MAX_ERROR_LEN: usize = 2000;

/// An outcome to record for a leased job. Each carries the lease's fencing token
/// ([`FetchedJob::token`](super::FetchedJob::token)): it applies only while that lease is the
/// job's current one.
#[derive(Debug, Clone)]
pub enum Ack {
    /// Finished: kept as done for the done retention.
    Done { id: String, token: u64 },
    /// Failed: run again after `delay`.
    Retry {
        id: String,
        token: u64,
        delay: Duration,
        error: String,
    },
    /// Failed for good: kept as dead with its error.
    Dead {
        id: String,
        token: u64,
        error: String,
    },
    /// Fetched but never started: back to the head of the queue, the attempt not counted.
    Release { id: String, token: u64 },
    /// Not due yet: scheduled again at the Redis server's time + `delay`, the attempt not
    /// counted and no error recorded. A job may snooze any number of times.
    Snooze {
        id: String,
        token: u64,
        delay: Duration,
    },
}

impl Ack {
    fn parts(&self) -> (&str, u64, &'static str, u64, &str) {
        match self {
            Self::Done { id, token } => (id, *token, "d", 0, ""),
            Self::Retry {
                id,
                token,
                delay,
                error,
            } => (id, *token, "r", delay.as_millis() as u64, error),
            Self::Dead { id, token, error } => (id, *token, "x", 0, error),
            Self::Release { id, token } => (id, *token, "b", 0, ""),
            Self::Snooze { id, token, delay } => (id, *token, "s", delay.as_millis() as u64, ""),
        }
    }

    /// The job id this outcome is for.
    pub fn id(&self) -> &str {
        self.parts().0
    }

    /// The fencing token of the lease this outcome is for.
    pub fn token(&self) -> u64 {
        self.parts().1
    }
}

/// What an acknowledgement call changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckReport {
    /// Outcomes recorded.
    pub applied: u64,
    /// Outcomes ignored because the lease was no longer theirs (reaped, or acknowledged before).
    pub stale: u64,
}

impl<C: ConnectionLike + Clone + Send + Sync> Queue<C> {
    /// Record outcomes of leased jobs. Fenced: an outcome for a lease that is no longer the
    /// caller's (reaped, or recorded already) changes nothing and counts as stale.
    pub async fn ack(&self, acks: &[Ack]) -> Result<AckReport, QueueError> {
        let mut report = AckReport::default();
        let k = &self.keys;
        for chunk in acks.chunks(PUSH_CHUNK) {
            let mut inv = scripts::ACK.prepare_invoke();
            inv.key(&k.pending)
                .key(&k.scheduled)
                .key(&k.running)
                .key(&k.jobs)
                .key(&k.attempts)
                .key(&k.errors)
                .key(&k.done)
                .key(&k.dead)
                .key(&k.leases);
            inv.arg(self.config.done_retention.as_millis() as u64)
                .arg(chunk.len());
            for ack in chunk {
                let (id, token, kind, delay, error) = ack.parts();
                inv.arg(id)
                    .arg(token)
                    .arg(kind)
                    .arg(delay)
                    .arg(truncate(error, MAX_ERROR_LEN));
            }
            let (applied, stale): (u64, u64) = inv.invoke_async(&mut self.conn.clone()).await?;
            report.applied += applied;
            report.stale += stale;
        }
        Ok(report)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_truncate_on_a_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
    }
}
