//! Getting jobs into a queue: pushes (now, delayed, unique) and the adoption of raw foreign
//! messages.

use std::time::Duration;

use redis::Value;
use redis::aio::ConnectionLike;

use super::{PUSH_CHUNK, Queue, int, text};
use crate::error::QueueError;
use crate::id::new_job_id;
use crate::scripts;

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
    /// A uniqueness key and its time to live: a second push with the same key within the TTL is
    /// dropped.
    pub unique: Option<(String, Duration)>,
    /// With [`NewJob::unique`]: the key holds only while the job it names has not ended (done,
    /// dead, discarded, erased or forgotten ends it), so a push finds it only while that job
    /// waits, is scheduled, retrying or running (producers' "at most one pending"). Without it
    /// the key holds for its whole TTL (the scheduler's ticks).
    pub unique_until_end: bool,
}

impl NewJob {
    /// A job with a fresh id that may run now.
    pub fn new(payload: impl Into<String>) -> Self {
        Self {
            id: new_job_id(),
            payload: payload.into(),
            when: When::Now,
            unique: None,
            unique_until_end: false,
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

    /// Drop duplicates pushed with the same `key` while this job has not ended, for at most `ttl`.
    pub fn unique_until_end(mut self, key: impl Into<String>, ttl: Duration) -> Self {
        self.unique = Some((key.into(), ttl));
        self.unique_until_end = true;
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

impl<C: ConnectionLike + Clone + Send + Sync> Queue<C> {
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
                .key(&self.keys.jobs)
                .key(&self.keys.done)
                .key(&self.keys.dead);
            inv.arg(&self.keys.notify).arg(chunk.len());
            let mut unique_index = 5;
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
                        // A negative index: the key holds only while its job has not ended.
                        let index = if job.unique_until_end {
                            -unique_index
                        } else {
                            unique_index
                        };
                        inv.arg(index).arg(ttl.as_millis().max(1) as u64);
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

    /// Wake the queue's idle workers (a publish on its channel): something to lease arrived that
    /// no push announced (a foreign message, `QueueConfig::lease_from`).
    pub async fn wake(&self) -> Result<(), QueueError> {
        let _: () = redis::cmd("PUBLISH")
            .arg(&self.keys.notify)
            .arg("1")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Adopt `messages`, taken from a foreign list on another server, as jobs whose payload is the
    /// message itself (a job id is a hash of its message: a message adopted twice, while its job
    /// is kept, is one job). Returns how many were new. Works on a Redis Cluster (only this
    /// queue's keys are touched).
    pub async fn adopt_messages(&self, messages: &[Vec<u8>]) -> Result<u64, QueueError> {
        let mut n = 0;
        for chunk in messages.chunks(PUSH_CHUNK) {
            let mut inv = scripts::ADOPT.prepare_invoke();
            inv.key(&self.keys.pending)
                .key(&self.keys.jobs)
                .arg(&self.keys.notify);
            for m in chunk {
                inv.arg(m.as_slice());
            }
            n += inv.invoke_async::<u64>(&mut self.conn.clone()).await?;
        }
        Ok(n)
    }
}
