//! Leasing jobs: the fetch that leases a batch (reaping lost leases and promoting due jobs on the
//! way, within the queue's rate limit), the renewal of leases still held, and the rate limit's
//! token for work started outside a fetch.

use redis::Value;
use redis::aio::ConnectionLike;

use super::{PUSH_CHUNK, Queue, int, split_stored, text};
use crate::error::QueueError;
use crate::scripts;

/// Largest batch one fetch may lease.
pub const MAX_FETCH: usize = 1000;
/// Expired leases reclaimed per fetch.
const REAP_LIMIT: usize = 200;
/// Due scheduled jobs promoted per fetch.
const PROMOTE_LIMIT: usize = 1000;
/// How long a Celery message's reserved rate-limit slot is kept after the slot (a message late
/// for its slot still finds it).
const RESERVATION_GRACE_MS: u64 = 3_600_000;

/// A leased job.
#[derive(Debug, Clone)]
pub struct FetchedJob {
    /// Job id.
    pub id: String,
    /// This attempt's number, 1-based, as counted toward `max_attempts` (a hand-back or snooze
    /// gives its attempt back, so two leases may carry the same number).
    pub attempt: u32,
    /// The lease's fencing token: taken from the queue's lease counter, never given twice.
    /// Outcomes and renewals name it.
    pub token: u64,
    /// The arguments as stored (JSON text, not yet decoded).
    pub payload: String,
    /// This fetch took the job's message from one of the queue's foreign lists
    /// ([`crate::QueueConfig::lease_from`]): the message became a job in this lease.
    pub adopted: bool,
}

/// What one fetch returned.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// The leased jobs, oldest first.
    pub jobs: Vec<FetchedJob>,
    /// Leases of lost workers this call took back.
    pub reaped: u64,
    /// How many of the jobs this fetch took from foreign lists (the last ones).
    pub adopted: usize,
    /// Due time (epoch ms) of the earliest scheduled job, if any.
    pub next_due_ms: Option<i64>,
    /// The Redis server's clock at the fetch (epoch ms).
    pub now_ms: i64,
    /// True when more jobs are waiting right now.
    pub more: bool,
    /// With a rate limit ([`crate::RateLimit`]): jobs are waiting but the fleet's token bucket
    /// is dry until this time (epoch ms, the Redis clock); asking again before then leases
    /// nothing.
    pub throttled_until_ms: Option<i64>,
}

/// What a lease renewal found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewed {
    /// Leases extended.
    pub extended: u64,
    /// Jobs among those held that were revoked since they were leased: stop them.
    pub revoked: Vec<String>,
}

/// The payload of a stored job value (`<ms>|payload`), taken from the reply without a copy: a
/// fetch of Celery messages moves a kilobyte per job.
fn stored_payload(v: Value) -> Result<String, QueueError> {
    let mut stored = match v {
        Value::BulkString(b) => String::from_utf8(b)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        other => text(&other)?,
    };
    let header = stored.len() - split_stored(&stored).1.len();
    stored.drain(..header);
    Ok(stored)
}

impl<C: ConnectionLike + Clone + Send + Sync> Queue<C> {
    /// Lease up to `max` ready jobs (at most `MAX_FETCH`); also reclaims lost leases and
    /// promotes due scheduled jobs, a bounded amount each call. When the queue's own pending
    /// list runs out, raw messages of its foreign lists ([`crate::QueueConfig::lease_from`]) fill
    /// the rest of the batch, each becoming a job as it is leased.
    pub async fn fetch(&self, max: usize) -> Result<Fetched, QueueError> {
        let k = &self.keys;
        let mut inv = scripts::FETCH.prepare_invoke();
        inv.key(&k.pending)
            .key(&k.scheduled)
            .key(&k.running)
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.errors)
            .key(&k.dead)
            .key(&k.leases)
            .key(&k.lease_seq)
            .key(&k.paused)
            .key(&k.rate)
            .key(&k.revoked);
        if !self.config.lease_from.is_empty() {
            inv.key(&k.staging);
            for list in &self.config.lease_from {
                inv.key(list);
            }
        }
        let reply: Vec<Value> = inv
            .arg(max.min(MAX_FETCH))
            .arg(self.config.lease.as_millis() as u64)
            .arg(self.config.max_attempts)
            .arg(REAP_LIMIT)
            .arg(PROMOTE_LIMIT)
            .arg(self.config.rate_limit.map_or(0.0, |r| r.per_ms()))
            .arg(self.config.rate_limit.map_or(1, |r| r.burst))
            .arg(if self.config.lease_from.is_empty() {
                String::new()
            } else {
                crate::id::new_job_id()
            })
            .invoke_async(&mut self.conn.clone())
            .await?;
        let mut reply = reply;
        let rest = reply.split_off(reply.len().min(6));
        let [reaped, next_due, now, more, throttled, adopted] = reply.as_slice() else {
            return Err(QueueError::Protocol("short fetch reply".into()));
        };
        if !rest.len().is_multiple_of(4) {
            return Err(QueueError::Protocol("odd fetch reply".into()));
        }
        let next_due = int(next_due)?;
        let throttled = int(throttled)?;
        let count = rest.len() / 4;
        let adopted = usize::try_from(int(adopted)?)
            .ok()
            .filter(|&n| n <= count)
            .ok_or_else(|| QueueError::Protocol("bad adopted count in fetch reply".into()))?;
        let mut jobs = Vec::with_capacity(count);
        let mut rest = rest.into_iter();
        while let (Some(id), Some(attempt), Some(token), Some(stored)) =
            (rest.next(), rest.next(), rest.next(), rest.next())
        {
            jobs.push(FetchedJob {
                id: text(&id)?,
                attempt: int(&attempt)? as u32,
                token: int(&token)? as u64,
                payload: stored_payload(stored)?,
                adopted: jobs.len() >= count - adopted,
            });
        }
        Ok(Fetched {
            jobs,
            reaped: int(reaped)? as u64,
            adopted,
            next_due_ms: (next_due >= 0).then_some(next_due),
            now_ms: int(now)?,
            more: int(more)? == 1,
            throttled_until_ms: (throttled >= 0).then_some(throttled),
        })
    }

    /// Take one token from the queue's rate limit for work that starts outside a fetch (the
    /// Celery bridge's message `holder`, a job id of its intake queue): `None` to run now (or
    /// there is no limit), else how long until the slot reserved for it. Called again at that
    /// slot, it answers `None` without taking another token (`rate.lua`).
    pub async fn take_token(
        &self,
        holder: &str,
    ) -> Result<Option<std::time::Duration>, QueueError> {
        let Some(rate) = self.config.rate_limit else {
            return Ok(None);
        };
        // Only a well-formed job id reaches a key name; any other holder reserves nothing.
        let holder = if crate::id::is_valid_job_id(holder) {
            holder
        } else {
            "-"
        };
        let wait_ms: u64 = scripts::RATE
            .key(&self.keys.rate)
            .key(format!("{}:held:{holder}", self.keys.rate))
            .arg(rate.per_ms())
            .arg(rate.burst)
            .arg(RESERVATION_GRACE_MS)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok((wait_ms > 0).then(|| std::time::Duration::from_millis(wait_ms)))
    }

    /// Extend the leases (`(id, token)`) of jobs still running here. A lease that is no longer
    /// the job's current one is left alone. Also says which of these jobs were revoked.
    pub async fn renew(&self, held: &[(String, u64)]) -> Result<Renewed, QueueError> {
        let mut renewed = Renewed::default();
        for chunk in held.chunks(PUSH_CHUNK) {
            let mut inv = scripts::RENEW.prepare_invoke();
            inv.key(&self.keys.running)
                .key(&self.keys.leases)
                .key(&self.keys.revoked);
            inv.arg(self.config.lease.as_millis() as u64);
            for (id, token) in chunk {
                inv.arg(id).arg(token);
            }
            let reply: Vec<Value> = inv.invoke_async(&mut self.conn.clone()).await?;
            let [extended, revoked @ ..] = reply.as_slice() else {
                return Err(QueueError::Protocol("empty renew reply".into()));
            };
            renewed.extended += int(extended)? as u64;
            for id in revoked {
                renewed.revoked.push(text(id)?);
            }
        }
        Ok(renewed)
    }
}
