//! Reading a queue without changing it: exact counts and one job's state.

use redis::Value;
use redis::aio::ConnectionLike;

use super::{Queue, opt_text, split_stored, text};
use crate::error::QueueError;
use crate::scripts;

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
    /// Paused: workers lease nothing from it until it is resumed.
    pub paused: bool,
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

impl<C: ConnectionLike + Clone + Send + Sync> Queue<C> {
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
            .key(&k.paused)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let [queued, scheduled, running, done, dead, oldest, paused] = v.as_slice() else {
            return Err(QueueError::Protocol("short stats reply".into()));
        };
        Ok(QueueStats {
            queued: *queued as u64,
            scheduled: *scheduled as u64,
            running: *running as u64,
            done: *done as u64,
            dead: *dead as u64,
            oldest_waiting_seconds: (*oldest).max(0) as f64 / 1000.0,
            paused: *paused == 1,
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
}
