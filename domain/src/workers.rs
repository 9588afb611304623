//! The fleet's processes as they announce themselves: every `worker run` and `worker scheduler`
//! heartbeats a document every [`HEARTBEAT`]; one that stops heartbeating disappears after
//! [`EXPIRES`] (its document expires; readers drop it from the set). `GET /v1/workers` reads them.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{ns}:workers` | ZSET | process id (`host:pid`) → its latest heartbeat (ms) |
//! | `{ns}:worker:{id}` | STRING | the process's [`WorkerInfo`] JSON, expiring after [`EXPIRES`] |
//! | `{ns}:history:h:{hour}` | HASH | the same, per hour (epoch hours), kept [`HISTORY_TTL`] + 1 h |
//! | `{ns}:history:{minute}` | HASH | `<job>:succeeded`, `:failed`, `:dead`, `:ms` of runs that ended in that minute (UTC, epoch minutes), kept [`HISTORY_TTL`] |

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

/// How often a process heartbeats.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long after its last heartbeat a process disappears.
pub const EXPIRES: Duration = Duration::from_secs(30);

/// `{ns}:workers`.
pub fn set_key(namespace: &str) -> String {
    format!("{namespace}:workers")
}

/// `{ns}:worker:{id}`.
pub fn info_key(namespace: &str, id: &str) -> String {
    format!("{namespace}:worker:{id}")
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
    conn: &mut ConnectionManager,
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
    conn: &mut ConnectionManager,
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
    conn: &mut ConnectionManager,
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
    format!("{namespace}:history:{minute}")
}

/// `{ns}:history:h:{hour}` (HASH, hour = epoch seconds / 3600): the same fields as
/// [`history_key`], summed per hour, so a day's chart reads 24 keys, not 1,440.
pub fn history_hour_key(namespace: &str, hour: i64) -> String {
    format!("{namespace}:history:h:{hour}")
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

/// Add `counts` (`(job, outcome)` → (jobs, total ms)) to the current minute's history.
pub async fn add_history(
    conn: &mut ConnectionManager,
    namespace: &str,
    counts: &std::collections::HashMap<(&'static str, Outcome), (u64, u64)>,
) -> Result<(), redis::RedisError> {
    if counts.is_empty() {
        return Ok(());
    }
    let now = Utc::now().timestamp();
    let minute = history_key(namespace, now / 60);
    let hour = history_hour_key(namespace, now / 3600);
    let mut pipe = redis::pipe();
    for key in [&minute, &hour] {
        for ((job, outcome), (n, ms)) in counts {
            pipe.hincr(key, format!("{job}:{}", outcome.as_str()), *n)
                .ignore()
                .hincr(key, format!("{job}:ms"), *ms)
                .ignore();
        }
    }
    pipe.expire(&minute, HISTORY_TTL.as_secs() as i64)
        .ignore()
        .expire(&hour, (HISTORY_TTL.as_secs() + 3600) as i64)
        .ignore()
        .query_async(conn)
        .await
}
