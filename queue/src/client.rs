//! The queue client: push, lease, acknowledge, inspect and clean one queue, one script per call.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use redis::aio::ConnectionLike;

use crate::error::QueueError;
use crate::id::new_job_id;
use crate::keys::Keys;
use crate::scripts;

/// Jobs per push script call; keeps every Lua `unpack` far below its 8,000-value limit.
const PUSH_CHUNK: usize = 1000;
/// Largest batch one fetch may lease.
pub const MAX_FETCH: usize = 1000;
/// Expired leases reclaimed per fetch.
const REAP_LIMIT: usize = 200;
/// Due scheduled jobs promoted per fetch.
const PROMOTE_LIMIT: usize = 1000;
/// Ids removed per cleanup step.
const CLEANUP_LIMIT: usize = 500;
/// Longest error text kept with a job.
const MAX_ERROR_LEN: usize = 2000;

/// Settings of one queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Key namespace shared by every queue of one deployment (tests use their own).
    pub namespace: String,
    /// The queue's name; the job name in Celeriac.
    pub name: String,
    /// How long a fetched job stays leased without renewal before another worker may run it.
    pub lease: Duration,
    /// Attempts a job gets (crashes included) before it is dead.
    pub max_attempts: u32,
    /// How long a finished job's data is kept (zero: forgotten at once).
    pub done_retention: Duration,
    /// How long a dead job is kept for inspection and requeueing.
    pub dead_retention: Duration,
}

impl QueueConfig {
    /// Defaults for queue `name` in `namespace`: 15 s lease, 5 attempts, 24 h done, 7 d dead.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            lease: Duration::from_secs(15),
            max_attempts: 5,
            done_retention: Duration::from_secs(24 * 3600),
            dead_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// When a pushed job may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum When {
    /// As soon as a worker is free.
    #[default]
    Now,
    /// After this delay, measured on the Redis server's clock.
    After(Duration),
    /// At this time (epoch milliseconds).
    At(i64),
}

/// A job to push.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id; [`NewJob::new`] makes a fresh one.
    pub id: String,
    /// The arguments, as JSON text.
    pub payload: String,
    /// When it may run.
    pub when: When,
    /// A uniqueness key and its time to live: a second push with the same key within the TTL is dropped.
    pub unique: Option<(String, Duration)>,
}

impl NewJob {
    /// A job with a fresh id that may run now.
    pub fn new(payload: impl Into<String>) -> Self {
        Self {
            id: new_job_id(),
            payload: payload.into(),
            when: When::Now,
            unique: None,
        }
    }

    /// Run it no earlier than `when`.
    pub fn at(mut self, when: When) -> Self {
        self.when = when;
        self
    }

    /// Drop duplicates pushed with the same `key` within `ttl`.
    pub fn unique(mut self, key: impl Into<String>, ttl: Duration) -> Self {
        self.unique = Some((key.into(), ttl));
        self
    }
}

/// The result of pushing one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The stored job's id (the earlier job's id when this one was a duplicate).
    pub id: String,
    /// False when the uniqueness key dropped this push.
    pub created: bool,
}

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
}

/// What one fetch returned.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// The leased jobs, oldest first.
    pub jobs: Vec<FetchedJob>,
    /// Leases of lost workers this call took back.
    pub reaped: u64,
    /// Due time (epoch ms) of the earliest scheduled job, if any.
    pub next_due_ms: Option<i64>,
    /// The Redis server's clock at the fetch (epoch ms).
    pub now_ms: i64,
    /// True when more jobs are waiting right now.
    pub more: bool,
}

/// An outcome to record for a leased job. Each carries the lease's fencing token
/// ([`FetchedJob::token`]): it applies only while that lease is the job's current one.
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

/// Exact counts for one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct QueueStats {
    /// Ready to run now.
    pub queued: u64,
    /// Waiting for a future time (delays and retry backoff).
    pub scheduled: u64,
    /// Leased by a worker.
    pub running: u64,
    /// Finished and still retained.
    pub done: u64,
    /// Failed for good and still retained.
    pub dead: u64,
    /// How long the oldest ready job has waited, in seconds (0 when none waits).
    pub oldest_waiting_seconds: f64,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Ready to run.
    Queued,
    /// Waiting for its time.
    Scheduled,
    /// Leased by a worker.
    Running,
    /// Finished.
    Done,
    /// Failed for good.
    Dead,
}

/// One job as stored.
#[derive(Debug, Clone)]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// Where it stands.
    pub status: JobStatus,
    /// Attempts started.
    pub attempts: u32,
    /// The last error, if an attempt failed.
    pub last_error: Option<String>,
    /// The arguments (JSON text).
    pub payload: String,
    /// Since when it has waited, or when it is due (epoch ms).
    pub since_ms: i64,
    /// Lease deadline (running), finish time (done, dead) or due time (scheduled), epoch ms.
    pub status_ms: Option<i64>,
}

/// A handle on one queue. Cheap to clone; every clone shares the connection.
#[derive(Clone)]
pub struct Queue<C> {
    conn: C,
    keys: Arc<Keys>,
    config: Arc<QueueConfig>,
}

impl<C> std::fmt::Debug for Queue<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.config.name)
            .finish()
    }
}

impl<C: ConnectionLike + Clone + Send + Sync> Queue<C> {
    /// A handle on the queue `config` names, over `conn` (a connection manager or cluster connection).
    pub fn new(conn: C, config: QueueConfig) -> Self {
        Self {
            keys: Arc::new(Keys::new(&config.namespace, &config.name)),
            config: Arc::new(config),
            conn,
        }
    }

    /// The queue's settings.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The queue's key names.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// A handle on the queue's connection (for operations kept in other modules).
    pub(crate) fn connection(&self) -> C {
        self.conn.clone()
    }

    /// Push one job.
    pub async fn push(&self, job: NewJob) -> Result<Pushed, QueueError> {
        let mut out = self.push_many(vec![job]).await?;
        out.pop()
            .ok_or_else(|| QueueError::Protocol("push returned nothing".into()))
    }

    /// Push many jobs, a thousand per round trip; returns one [`Pushed`] per job, in order.
    pub async fn push_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Pushed>, QueueError> {
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(PUSH_CHUNK) {
            let mut inv = scripts::PUSH.prepare_invoke();
            inv.key(&self.keys.pending)
                .key(&self.keys.scheduled)
                .key(&self.keys.jobs);
            inv.arg(&self.keys.notify).arg(chunk.len());
            let mut unique_index = 3;
            for job in chunk {
                let due = match job.when {
                    When::Now => String::new(),
                    When::After(d) => format!("+{}", d.as_millis()),
                    When::At(ms) => ms.to_string(),
                };
                inv.arg(&job.id).arg(&job.payload).arg(due);
                match &job.unique {
                    Some((key, ttl)) => {
                        unique_index += 1;
                        inv.key(format!("{}{key}", self.keys.unique_prefix));
                        inv.arg(unique_index).arg(ttl.as_millis().max(1) as u64);
                    }
                    None => {
                        inv.arg(0).arg(0);
                    }
                }
            }
            let reply: Vec<Value> = inv.invoke_async(&mut self.conn.clone()).await?;
            for pair in reply.chunks(2) {
                match pair {
                    [id, created] => out.push(Pushed {
                        id: text(id)?,
                        created: int(created)? == 1,
                    }),
                    _ => return Err(QueueError::Protocol("odd push reply".into())),
                }
            }
        }
        Ok(out)
    }

    /// Lease up to `max` ready jobs (at most [`MAX_FETCH`]); also reclaims lost leases and
    /// promotes due scheduled jobs, a bounded amount each call.
    pub async fn fetch(&self, max: usize) -> Result<Fetched, QueueError> {
        let k = &self.keys;
        let reply: Vec<Value> = scripts::FETCH
            .key(&k.pending)
            .key(&k.scheduled)
            .key(&k.running)
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.errors)
            .key(&k.dead)
            .key(&k.leases)
            .key(&k.lease_seq)
            .arg(max.min(MAX_FETCH))
            .arg(self.config.lease.as_millis() as u64)
            .arg(self.config.max_attempts)
            .arg(REAP_LIMIT)
            .arg(PROMOTE_LIMIT)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let [reaped, next_due, now, more, rest @ ..] = reply.as_slice() else {
            return Err(QueueError::Protocol("short fetch reply".into()));
        };
        let next_due = int(next_due)?;
        let mut jobs = Vec::with_capacity(rest.len() / 4);
        for job in rest.chunks(4) {
            let [id, attempt, token, stored] = job else {
                return Err(QueueError::Protocol("odd fetch reply".into()));
            };
            let stored = text(stored)?;
            jobs.push(FetchedJob {
                id: text(id)?,
                attempt: int(attempt)? as u32,
                token: int(token)? as u64,
                payload: split_stored(&stored).1.to_owned(),
            });
        }
        Ok(Fetched {
            jobs,
            reaped: int(reaped)? as u64,
            next_due_ms: (next_due >= 0).then_some(next_due),
            now_ms: int(now)?,
            more: int(more)? == 1,
        })
    }

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

    /// Extend the leases (`(id, token)`) of jobs still running here; returns how many were
    /// extended. A lease that is no longer the job's current one is left alone.
    pub async fn renew(&self, held: &[(String, u64)]) -> Result<u64, QueueError> {
        let mut renewed = 0;
        for chunk in held.chunks(PUSH_CHUNK) {
            let mut inv = scripts::RENEW.prepare_invoke();
            inv.key(&self.keys.running).key(&self.keys.leases);
            inv.arg(self.config.lease.as_millis() as u64);
            for (id, token) in chunk {
                inv.arg(id).arg(token);
            }
            let n: u64 = inv.invoke_async(&mut self.conn.clone()).await?;
            renewed += n;
        }
        Ok(renewed)
    }

    /// Exact counts, read in one atomic script.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let k = &self.keys;
        let v: Vec<i64> = scripts::STATS
            .key(&k.pending)
            .key(&k.scheduled)
            .key(&k.running)
            .key(&k.jobs)
            .key(&k.done)
            .key(&k.dead)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let [queued, scheduled, running, done, dead, oldest] = v.as_slice() else {
            return Err(QueueError::Protocol("short stats reply".into()));
        };
        Ok(QueueStats {
            queued: *queued as u64,
            scheduled: *scheduled as u64,
            running: *running as u64,
            done: *done as u64,
            dead: *dead as u64,
            oldest_waiting_seconds: (*oldest).max(0) as f64 / 1000.0,
        })
    }

    /// One job, or `None` when the id is unknown (never pushed, or past its retention).
    pub async fn job(&self, id: &str) -> Result<Option<JobInfo>, QueueError> {
        let k = &self.keys;
        let v: Vec<Value> = scripts::INFO
            .key(&k.scheduled)
            .key(&k.running)
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.errors)
            .key(&k.done)
            .key(&k.dead)
            .arg(id)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let [status, attempts, error, stored, at] = v.as_slice() else {
            return Ok(None);
        };
        let status = match text(status)?.as_str() {
            "queued" => JobStatus::Queued,
            "scheduled" => JobStatus::Scheduled,
            "running" => JobStatus::Running,
            "done" => JobStatus::Done,
            "dead" => JobStatus::Dead,
            other => return Err(QueueError::Protocol(format!("status {other}"))),
        };
        let stored = text(stored)?;
        let (since_ms, payload) = split_stored(&stored);
        Ok(Some(JobInfo {
            id: id.to_owned(),
            status,
            attempts: text(attempts)?.parse().unwrap_or(0),
            last_error: opt_text(error)?,
            payload: payload.to_owned(),
            since_ms,
            status_ms: opt_text(at)?
                .and_then(|s| s.parse::<f64>().ok())
                .map(|f| f as i64),
        }))
    }

    /// Dead jobs, oldest death first, at most `limit`.
    pub async fn dead_ids(&self, limit: usize) -> Result<Vec<String>, QueueError> {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&self.keys.dead)
            .arg(0)
            .arg(limit.saturating_sub(1))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(ids)
    }

    /// Put a dead job back in line with fresh attempts; false when `id` is not dead.
    pub async fn requeue_dead(&self, id: &str) -> Result<bool, QueueError> {
        let k = &self.keys;
        let n: i64 = scripts::REQUEUE
            .key(&k.pending)
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.dead)
            .arg(id)
            .arg(&k.notify)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(n == 1)
    }

    /// Forget a dead job; false when `id` is not dead.
    pub async fn discard_dead(&self, id: &str) -> Result<bool, QueueError> {
        let k = &self.keys;
        let n: i64 = scripts::DISCARD
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.errors)
            .key(&k.dead)
            .key(&k.leases)
            .arg(id)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(n == 1)
    }

    /// One bounded cleanup step: forget up to 500 done and 500 dead jobs past their retention.
    /// Returns (done removed, dead removed); call again while either is 500.
    pub async fn cleanup_step(&self) -> Result<(u64, u64), QueueError> {
        let k = &self.keys;
        let (done, dead): (u64, u64) = scripts::CLEANUP
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.errors)
            .key(&k.done)
            .key(&k.dead)
            .key(&k.leases)
            .arg(self.config.done_retention.as_millis() as u64)
            .arg(self.config.dead_retention.as_millis() as u64)
            .arg(CLEANUP_LIMIT)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok((done, dead))
    }

    /// Move up to `max` raw messages from `foreign` lists (popped from the right, in the order
    /// given) and from `staging` into this queue as jobs whose payload is the message itself.
    /// Atomic: a message is never outside Redis. Returns how many were adopted. Not for Redis
    /// Cluster (the foreign keys carry no hash tag).
    pub async fn adopt(
        &self,
        staging: &str,
        foreign: &[String],
        max: usize,
    ) -> Result<u64, QueueError> {
        let mut inv = scripts::ADOPT.prepare_invoke();
        inv.key(&self.keys.pending)
            .key(&self.keys.jobs)
            .key(staging);
        for k in foreign {
            inv.key(k);
        }
        inv.arg(max.min(PUSH_CHUNK)).arg(&self.keys.notify);
        let n: u64 = inv.invoke_async(&mut self.conn.clone()).await?;
        Ok(n)
    }

    /// Cleanup steps until nothing past its retention is left; returns the totals.
    pub async fn cleanup(&self) -> Result<(u64, u64), QueueError> {
        let mut total = (0, 0);
        loop {
            let (done, dead) = self.cleanup_step().await?;
            total.0 += done;
            total.1 += dead;
            if done < CLEANUP_LIMIT as u64 && dead < CLEANUP_LIMIT as u64 {
                return Ok(total);
            }
        }
    }
}

/// Split a stored value `<ms>|<payload>` into its parts (a value without a header is all payload).
fn split_stored(stored: &str) -> (i64, &str) {
    match stored.split_once('|') {
        Some((ms, payload)) if !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()) => {
            (ms.parse().unwrap_or(0), payload)
        }
        _ => (0, stored),
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

fn int(v: &Value) -> Result<i64, QueueError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| QueueError::Protocol("expected an integer".into())),
        other => Err(QueueError::Protocol(format!(
            "expected an integer, got {other:?}"
        ))),
    }
}

fn text(v: &Value) -> Result<String, QueueError> {
    match v {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        other => Err(QueueError::Protocol(format!(
            "expected text, got {other:?}"
        ))),
    }
}

fn opt_text(v: &Value) -> Result<Option<String>, QueueError> {
    match v {
        Value::Nil => Ok(None),
        other => text(other).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_split_into_time_and_payload() {
        assert_eq!(split_stored("1700|{\"a\":1}"), (1700, "{\"a\":1}"));
        assert_eq!(split_stored("{\"a\":\"x|y\"}"), (0, "{\"a\":\"x|y\"}"));
        assert_eq!(truncate("héllo", 2), "h");
    }
}
