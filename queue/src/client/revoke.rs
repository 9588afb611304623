//! Revoking a job: it never starts again, and a worker running it is told to stop.

use redis::aio::ConnectionLike;

use super::Queue;
use crate::error::QueueError;
use crate::scripts;

/// What a revoke found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// The job was waiting: scheduled or retrying ones are dead now, with the reason; a queued
    /// one is marked, and the fetch that reaches it makes it dead instead of leasing it.
    Waiting,
    /// The job was running: no fetch leases it again, and its worker is told to stop it.
    Running,
    /// The job had already finished: nothing changed.
    Done,
    /// The job was already dead: nothing changed.
    Dead,
    /// No such job (never pushed, or forgotten).
    Unknown,
}

impl Revoked {
    /// The word the API and the CLI answer with.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "revoked",
            Self::Running => "stopping",
            Self::Done => "done",
            Self::Dead => "dead",
            Self::Unknown => "unknown",
        }
    }
}

impl<C: ConnectionLike + Clone + Send + Sync> Queue<C> {
    /// Revoke job `id` ([`Revoked`] says how): it never starts again, and a running one's worker
    /// is told (on [`crate::Keys::notify`]) to stop it.
    pub async fn revoke(&self, id: &str, reason: &str) -> Result<Revoked, QueueError> {
        let k = &self.keys;
        let said: String = scripts::REVOKE
            .key(&k.pending)
            .key(&k.scheduled)
            .key(&k.running)
            .key(&k.jobs)
            .key(&k.errors)
            .key(&k.done)
            .key(&k.dead)
            .key(&k.revoked)
            .arg(id)
            .arg(&k.notify)
            .arg(reason)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match said.as_str() {
            "revoked" => Revoked::Waiting,
            "running" => Revoked::Running,
            "done" => Revoked::Done,
            "dead" => Revoked::Dead,
            "unknown" => Revoked::Unknown,
            other => {
                return Err(QueueError::Protocol(format!(
                    "unexpected revoke reply {other:?}"
                )));
            }
        })
    }
}
