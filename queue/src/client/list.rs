//! Listing a queue's jobs by state, a bounded page at a time, and acting on many dead jobs.

use redis::Value;
use redis::aio::ConnectionLike;

use super::{JobInfo, JobStatus, Queue, int, opt_text, split_stored, text};
use crate::error::QueueError;
use crate::scripts;

/// The most jobs one page holds, whatever is asked: a page costs Redis one script run that
/// reads at most this many jobs.
pub const MAX_PAGE: usize = 100;

/// Dead jobs acted on per step by [`Queue::requeue_all_dead`] and [`Queue::discard_all_dead`].
const ALL_STEP: usize = 500;

/// One page of a queue's jobs in one state.
#[derive(Debug, Clone)]
pub struct JobPage {
    /// The jobs, in the state's order: pending in line order, the others by their time
    /// (due, lease deadline, finish), oldest first.
    pub jobs: Vec<JobInfo>,
    /// How many jobs are in that state in all.
    pub total: u64,
    /// The offset of the next page, when there is one.
    pub next: Option<usize>,
}

impl<C: ConnectionLike + Clone + Send + Sync> Queue<C> {
    /// Jobs in `status`, from `offset`, at most `limit` (clamped to 1..=[`MAX_PAGE`]), read in one
    /// script run. A job that leaves the state while the page is read is left out.
    pub async fn list(
        &self,
        status: JobStatus,
        offset: usize,
        limit: usize,
    ) -> Result<JobPage, QueueError> {
        let k = &self.keys;
        let source = match status {
            JobStatus::Queued => &k.pending,
            JobStatus::Scheduled => &k.scheduled,
            JobStatus::Running => &k.running,
            JobStatus::Done => &k.done,
            JobStatus::Dead => &k.dead,
        };
        let limit = limit.clamp(1, MAX_PAGE);
        let v: Vec<Value> = scripts::LIST
            .key(source)
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.errors)
            .arg(offset)
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let Some((total, rows)) = v.split_last() else {
            return Err(QueueError::Protocol("empty list reply".into()));
        };
        let total = int(total)?.max(0) as u64;
        let mut jobs = Vec::with_capacity(rows.len() / 5);
        for row in rows.chunks(5) {
            let [id, stored, attempts, error, score] = row else {
                return Err(QueueError::Protocol("short list row".into()));
            };
            let Some(stored) = opt_text(stored)? else {
                continue;
            };
            let (since_ms, payload) = split_stored(&stored);
            jobs.push(JobInfo {
                id: text(id)?,
                status,
                attempts: text(attempts)?.parse().unwrap_or(0),
                last_error: opt_text(error)?,
                payload: payload.to_owned(),
                since_ms,
                status_ms: opt_text(score)?
                    .and_then(|s| s.parse::<f64>().ok())
                    .map(|f| f as i64),
            });
        }
        let read = rows.len() / 5;
        let next = (read == limit && ((offset + read) as u64) < total).then_some(offset + read);
        Ok(JobPage { jobs, total, next })
    }

    /// Requeue every dead job (as [`Queue::requeue_dead`]), 500 per script call; returns how
    /// many were requeued.
    pub async fn requeue_all_dead(&self) -> Result<u64, QueueError> {
        let mut n = 0;
        loop {
            let ids = self.dead_ids(ALL_STEP).await?;
            if ids.is_empty() {
                return Ok(n);
            }
            // Ids whose payload is gone leave the dead set without being requeued.
            n += self.requeue_dead_many(&ids).await?;
        }
    }

    /// Discard every dead job (as [`Queue::discard_dead`]), 500 per script call; returns how
    /// many were discarded.
    pub async fn discard_all_dead(&self) -> Result<u64, QueueError> {
        let mut n = 0;
        loop {
            let ids = self.dead_ids(ALL_STEP).await?;
            if ids.is_empty() {
                return Ok(n);
            }
            n += self.discard_dead_many(&ids).await?;
        }
    }
}
