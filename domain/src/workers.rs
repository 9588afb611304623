//! The fleet's processes as they announce themselves: every `worker run` and `worker scheduler`
//! heartbeats a document every [`HEARTBEAT`]; one that stops heartbeating disappears after
//! [`EXPIRES`] (its document expires; readers drop it from the set). `GET /v1/workers` reads them.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{ns}:workers` | ZSET | process id (`host:pid`) → its latest heartbeat (ms) |
//! | `{ns}:worker:{id}` | STRING | the process's [`WorkerInfo`] JSON, expiring after [`EXPIRES`] |
//! | `{ns}:history:{minute}` | HASH | `<job>:succeeded`, `:failed`, `:dead`, `:ms` of runs that ended in that minute (UTC, epoch minutes), kept [`HISTORY_TTL`] |
//! | `{ns}:history:h:{hour}` | HASH | the same, per hour (epoch hours), kept [`HISTORY_TTL`] + 1 h |
//! | `{ns}:metrics` | HASH | the fleet's totals for Prometheus, never expiring: `<job>:started`, `:succeeded`, `:retried`, `:dead`, `:ms`, `:le:<i>` (runs in duration bucket `i` of [`DURATION_BUCKETS_MS`], `i` = its length for longer ones), `celery:adopted` |
//!
//! Each worker counts in memory ([`Tally`]) and adds what it counted to all three at each
//! heartbeat, in one pipeline ([`add_tally`]); what cannot be written is kept for the next.

use std::time::Duration;

use crate::conn::RedisConn;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How often a process heartbeats.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long after its last heartbeat a process disappears.
pub const EXPIRES: Duration = Duration::from_secs(30);

/// `{ns}:workers`.
pub fn set_key(namespace: &str) -> String {
    format!("{}:workers", crate::keys::fleet_prefix(namespace))
}

/// `{ns}:worker:{id}`.
pub fn info_key(namespace: &str, id: &str) -> String {
    format!("{}:worker:{id}", crate::keys::fleet_prefix(namespace))
}

/// One process of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    /// `host:pid`.
    pub id: String,
    /// `worker` or `scheduler`.
    pub kind: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Celeriac's version.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The queues it consumes (a worker) or schedules (a scheduler).
    pub queues: Vec<String>,
    /// Jobs in flight per job type at most (a worker; 0 for a scheduler).
    pub concurrency: usize,
    /// Jobs running now.
    pub in_flight: u64,
    /// Jobs that succeeded since it started.
    pub processed: u64,
    /// Attempts that failed since it started (retried or dead).
    pub failed: u64,
    /// Its latest heartbeat.
    pub heartbeat_at: DateTime<Utc>,
}

impl WorkerInfo {
    /// This process, of `kind`, announcing `queues`.
    pub fn this_process(kind: &str, queues: Vec<String>, concurrency: usize) -> Self {
        let id = crate::schedules::copy_name();
        let host = id
            .rsplit_once(':')
            .map_or(id.as_str(), |(h, _)| h)
            .to_owned();
        Self {
            id,
            kind: kind.to_owned(),
            host,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: Utc::now(),
            queues,
            concurrency,
            in_flight: 0,
            processed: 0,
            failed: 0,
            heartbeat_at: Utc::now(),
        }
    }
}

/// Write `info` (stamped now) with its expiry, and its place in the set.
pub async fn heartbeat(
    conn: &mut RedisConn,
    namespace: &str,
    info: &mut WorkerInfo,
) -> Result<(), redis::RedisError> {
    info.heartbeat_at = Utc::now();
    let json = serde_json::to_string(info).map_err(|e| {
        redis::RedisError::from((redis::ErrorKind::Client, "worker info", e.to_string()))
    })?;
    redis::pipe()
        .set_ex(info_key(namespace, &info.id), json, EXPIRES.as_secs())
        .ignore()
        .zadd(
            set_key(namespace),
            &info.id,
            info.heartbeat_at.timestamp_millis(),
        )
        .ignore()
        .query_async(conn)
        .await
}

/// Leave the fleet (at a clean stop).
pub async fn forget(
    conn: &mut RedisConn,
    namespace: &str,
    id: &str,
) -> Result<(), redis::RedisError> {
    redis::pipe()
        .del(info_key(namespace, id))
        .ignore()
        .zrem(set_key(namespace), id)
        .ignore()
        .query_async(conn)
        .await
}

/// Every live process, oldest first; processes whose document expired are dropped from the set.
pub async fn live(
    conn: &mut RedisConn,
    namespace: &str,
) -> Result<Vec<WorkerInfo>, redis::RedisError> {
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(set_key(namespace))
        .arg(0)
        .arg(999)
        .query_async(conn)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = ids.iter().map(|id| info_key(namespace, id)).collect();
    let docs: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(conn).await?;
    let mut live = Vec::new();
    let mut gone = Vec::new();
    for (id, doc) in ids.into_iter().zip(docs) {
        match doc.and_then(|d| serde_json::from_str::<WorkerInfo>(&d).ok()) {
            Some(info) => live.push(info),
            None => gone.push(id),
        }
    }
    if !gone.is_empty() {
        let _: () = redis::cmd("ZREM")
            .arg(set_key(namespace))
            .arg(&gone)
            .query_async(conn)
            .await?;
    }
    live.sort_by_key(|w| w.started_at);
    Ok(live)
}

/// How long the per-minute history is kept: a day and an hour.
pub const HISTORY_TTL: Duration = Duration::from_secs(25 * 3600);

/// `{ns}:history:{minute}` (HASH, minute = epoch seconds / 60): `<job>:<outcome>` → jobs that
/// ended so in that minute, `<job>:ms` → their total run time. Workers add what they counted at
/// each heartbeat, so a job lands in the minute of the heartbeat after it ended (at most 5 s
/// late). A job whose arguments do not even decode is dead without running and is not counted
/// here (the queue's dead count has it).
pub fn history_key(namespace: &str, minute: i64) -> String {
    format!("{}:history:{minute}", crate::keys::fleet_prefix(namespace))
}

/// `{ns}:history:h:{hour}` (HASH, hour = epoch seconds / 3600): the same fields as
/// [`history_key`], summed per hour, so a day's chart reads 24 keys, not 1,440.
pub fn history_hour_key(namespace: &str, hour: i64) -> String {
    format!("{}:history:h:{hour}", crate::keys::fleet_prefix(namespace))
}

/// How a job's run ended, as the history counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It succeeded.
    Succeeded,
    /// It failed and will be retried.
    Failed,
    /// It failed for good.
    Dead,
}

impl Outcome {
    /// Its field suffix in the history.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }
}

/// `{ns}:metrics`: the fleet's job totals, for `/metrics`.
pub fn metrics_key(namespace: &str) -> String {
    format!("{}:metrics", crate::keys::fleet_prefix(namespace))
}

/// The upper bounds of the run-time histogram's buckets, in milliseconds.
pub const DURATION_BUCKETS_MS: [u64; 12] = [
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000,
];

/// The bucket of a run of `ms`: its index in [`DURATION_BUCKETS_MS`], or the length for longer.
pub fn duration_bucket(ms: u64) -> usize {
    DURATION_BUCKETS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(DURATION_BUCKETS_MS.len())
}

/// What one job type did, as counted since the last flush.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JobTally {
    /// Runs started.
    pub started: u64,
    /// Runs that succeeded.
    pub succeeded: u64,
    /// Runs that failed and will be retried.
    pub retried: u64,
    /// Runs that failed for good.
    pub dead: u64,
    /// Their total run time, ms.
    pub ms: u64,
    /// Runs per duration bucket ([`duration_bucket`]).
    pub buckets: [u64; DURATION_BUCKETS_MS.len() + 1],
}

/// What a worker process counted since its last flush: per job type, and Celery messages adopted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Per job type.
    pub jobs: std::collections::HashMap<&'static str, JobTally>,
    /// Celery messages adopted into Celeriac queues.
    pub celery_adopted: u64,
}

impl Tally {
    /// One run of `job` started.
    pub fn start(&mut self, job: &'static str) {
        self.jobs.entry(job).or_default().started += 1;
    }

    /// One run of `job` ended with `outcome` after `ms`.
    pub fn end(&mut self, job: &'static str, outcome: Outcome, ms: u64) {
        let t = self.jobs.entry(job).or_default();
        match outcome {
            Outcome::Succeeded => t.succeeded += 1,
            Outcome::Failed => t.retried += 1,
            Outcome::Dead => t.dead += 1,
        }
        t.ms += ms;
        t.buckets[duration_bucket(ms)] += 1;
    }

    /// Add `other` to this one (what a failed flush gives back).
    pub fn merge(&mut self, other: Tally) {
        self.celery_adopted += other.celery_adopted;
        for (job, o) in other.jobs {
            let t = self.jobs.entry(job).or_default();
            t.started += o.started;
            t.succeeded += o.succeeded;
            t.retried += o.retried;
            t.dead += o.dead;
            t.ms += o.ms;
            for (b, n) in t.buckets.iter_mut().zip(o.buckets) {
                *b += n;
            }
        }
    }

    /// Nothing counted.
    pub fn is_empty(&self) -> bool {
        self.celery_adopted == 0 && self.jobs.values().all(|t| *t == JobTally::default())
    }
}

/// Add `tally` to the current minute's and hour's history and to the fleet's totals, in one
/// pipeline (`MULTI`: all or nothing, so a failure can be retried whole).
pub async fn add_tally(
    conn: &mut RedisConn,
    namespace: &str,
    tally: &Tally,
) -> Result<(), redis::RedisError> {
    if tally.is_empty() {
        return Ok(());
    }
    let now = Utc::now().timestamp();
    let minute = history_key(namespace, now / 60);
    let hour = history_hour_key(namespace, now / 3600);
    let totals = metrics_key(namespace);
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (job, t) in &tally.jobs {
        for key in [&minute, &hour] {
            for (what, n) in [
                (Outcome::Succeeded.as_str(), t.succeeded),
                (Outcome::Failed.as_str(), t.retried),
                (Outcome::Dead.as_str(), t.dead),
                ("ms", t.ms),
            ] {
                if n > 0 {
                    pipe.hincr(key, format!("{job}:{what}"), n).ignore();
                }
            }
        }
        for (what, n) in [
            ("started", t.started),
            ("succeeded", t.succeeded),
            ("retried", t.retried),
            ("dead", t.dead),
            ("ms", t.ms),
        ] {
            if n > 0 {
                pipe.hincr(&totals, format!("{job}:{what}"), n).ignore();
            }
        }
        for (i, n) in t.buckets.iter().enumerate() {
            if *n > 0 {
                pipe.hincr(&totals, format!("{job}:le:{i}"), *n).ignore();
            }
        }
    }
    if tally.celery_adopted > 0 {
        pipe.hincr(&totals, "celery:adopted", tally.celery_adopted)
            .ignore();
    }
    pipe.expire(&minute, HISTORY_TTL.as_secs() as i64)
        .ignore()
        .expire(&hour, (HISTORY_TTL.as_secs() + 3600) as i64)
        .ignore()
        .query_async(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_fall_in_the_first_bucket_that_holds_them() {
        assert_eq!(duration_bucket(0), 0);
        assert_eq!(duration_bucket(5), 0);
        assert_eq!(duration_bucket(6), 1);
        assert_eq!(duration_bucket(30_000), DURATION_BUCKETS_MS.len() - 1);
        assert_eq!(duration_bucket(30_001), DURATION_BUCKETS_MS.len());
    }

    #[test]
    fn a_tally_merges_back_whole() {
        let mut a = Tally::default();
        a.start("j");
        a.end("j", Outcome::Failed, 7);
        let mut b = Tally::default();
        b.start("j");
        b.end("j", Outcome::Succeeded, 3);
        b.celery_adopted = 2;
        a.merge(b);
        let t = &a.jobs["j"];
        assert_eq!(
            (t.started, t.succeeded, t.retried, t.dead, t.ms),
            (2, 1, 1, 0, 10)
        );
        assert_eq!((t.buckets[0], t.buckets[1]), (1, 1));
        assert_eq!(a.celery_adopted, 2);
        assert!(!a.is_empty());
        assert!(Tally::default().is_empty());
    }
}
