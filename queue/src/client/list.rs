//! Listing a queue's jobs by state, a bounded page at a time, and acting on many dead jobs.

use redis::Value;
use redis::aio::ConnectionLike;

use super::{JobInfo, JobStatus, Queue, int, opt_text, split_stored, text};
use crate::error::QueueError;
use crate::scripts;

/// The most jobs one page holds, whatever is asked: a page costs Redis one script run that
/// reads at most this many jobs.
pub const MAX_PAGE: usize = 100;

/// The most scheduled entries one page of retrying jobs reads (they are scheduled jobs with
/// attempts, mixed with delayed jobs without): a page may hold fewer jobs than asked and still
/// have a next one.
pub const MAX_RETRY_SCAN: usize = 1000;

/// Dead jobs acted on per step by [`Queue::requeue_all_dead`] and [`Queue::discard_all_dead`].
const ALL_STEP: usize = 500;

/// The states a queue's jobs are listed by: a job's [`JobStatus`], and `Retrying`, the
/// scheduled jobs whose last attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListState {
    /// Ready to run.
    Queued,
    /// Waiting for a time: delayed, or waiting for a retry.
    Scheduled,
    /// Scheduled after a failed attempt.
    Retrying,
    /// Leased by a worker.
    Running,
    /// Finished and retained.
    Done,
    /// Failed for good and retained.
    Dead,
}

/// One page of a queue's jobs in one state.
#[derive(Debug, Clone)]
pub struct JobPage {
    /// The jobs, in the state's order: pending in line order, the others by their time
    /// (due, lease deadline, finish), oldest first.
    pub jobs: Vec<JobInfo>,
    /// How many jobs are in that state in all (`None` for retrying jobs: counting them would
    /// read every scheduled job).
    pub total: Option<u64>,
    /// The offset of the next page, when there is one.
    pub next: Option<usize>,
}

impl<C: ConnectionLike + Clone + Send + Sync> Queue<C> {
    /// Jobs in `state`, from `offset`, at most `limit` (clamped to 1..=[`MAX_PAGE`]), read in one
    /// script run. A job that leaves the state while the page is read is left out.
    /// [`ListState::Retrying`] lists the scheduled jobs that wait for a retry (an attempt
    /// failed), reading at most [`MAX_RETRY_SCAN`] scheduled entries: its page's `next` is where
    /// the read stopped, and its `total` is `None`.
    pub async fn list(
        &self,
        state: ListState,
        offset: usize,
        limit: usize,
    ) -> Result<JobPage, QueueError> {
        let k = &self.keys;
        let (source, status) = match state {
            ListState::Queued => (&k.pending, JobStatus::Queued),
            ListState::Scheduled | ListState::Retrying => (&k.scheduled, JobStatus::Scheduled),
            ListState::Running => (&k.running, JobStatus::Running),
            ListState::Done => (&k.done, JobStatus::Done),
            ListState::Dead => (&k.dead, JobStatus::Dead),
        };
        self.list_in(source, status, state == ListState::Retrying, offset, limit)
            .await
    }

    async fn list_in(
        &self,
        source: &str,
        status: JobStatus,
        retrying: bool,
        offset: usize,
        limit: usize,
    ) -> Result<JobPage, QueueError> {
        let k = &self.keys;
        let limit = limit.clamp(1, MAX_PAGE);
        let v: Vec<Value> = scripts::LIST
            .key(source)
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.errors)
            .arg(offset)
            .arg(limit)
            .arg(if retrying { "1" } else { "0" })
            .arg(MAX_RETRY_SCAN)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let [rows @ .., after, total] = v.as_slice() else {
            return Err(QueueError::Protocol("short list reply".into()));
        };
        let after = int(after)?.max(0) as usize;
        let total = u64::try_from(int(total)?).ok();
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
        // More may follow when the read stopped before the end of the state (a full page, or,
        // for retrying jobs, a full scan); the state's length bounds it.
        let len: u64 = if let Some(t) = total {
            t
        } else {
            redis::cmd("ZCARD")
                .arg(source)
                .query_async(&mut self.conn.clone())
                .await?
        };
        let next = (after > offset && (after as u64) < len).then_some(after);
        Ok(JobPage { jobs, total, next })
    }

    /// Run these scheduled jobs (delayed, or waiting for a retry) now: they go to the front of
    /// the line in the order given, their attempts kept, waiting from now, in one script call;
    /// the ids that were scheduled (and moved).
    pub async fn run_now_many(&self, ids: &[impl AsRef<str>]) -> Result<Vec<String>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.keys;
        let mut inv = scripts::RUN_NOW.prepare_invoke();
        inv.key(&k.pending)
            .key(&k.scheduled)
            .key(&k.jobs)
            .arg(&k.notify);
        for id in ids {
            inv.arg(id.as_ref());
        }
        Ok(inv.invoke_async(&mut self.conn.clone()).await?)
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
