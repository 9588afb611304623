//! Redis connections and producer handles for every job queue: typed pushes (`Queues::push`) and
//! by-name enqueues checked against the registry (the API's enqueue route, the CLI, the scheduler).
//! The tracking scripts also push (`views.lua`, through the queue crate's push functions).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::conn::RedisConn;
use queue::{NewJob, Pushed, Queue, QueueConfig, When};

use crate::args::ArgError;
use crate::config::Settings;
use crate::registry;

/// Why an enqueue was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// No job has that name.
    #[error("unknown job {0:?}")]
    UnknownJob(String),
    /// The arguments do not validate.
    #[error("invalid arguments: {0}")]
    InvalidArgs(#[from] ArgError),
    /// Redis refused or could not be reached.
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
}

/// The stored form of a caller's uniqueness key: hex SHA-256 of its text, so no client text
/// reaches a Redis key name.
pub fn unique_key(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// One job to enqueue: its arguments, when it may run, and an optional uniqueness key and TTL.
#[derive(Debug, Clone)]
pub struct EnqueueItem {
    /// The job's arguments (validated before anything is pushed).
    pub args: serde_json::Value,
    /// When it may run.
    pub when: When,
    /// Drop a duplicate pushed with this key within this TTL (the key as stored: see
    /// [`unique_key`]).
    pub unique: Option<(String, Duration)>,
    /// With `unique`: the job's end (done or dead) releases the key at once (producers'
    /// unique jobs); without, it holds for the whole TTL (the scheduler's ticks).
    pub unique_until_end: bool,
}

impl EnqueueItem {
    /// Arguments to run now, without uniqueness.
    pub fn now(args: serde_json::Value) -> Self {
        Self {
            args,
            when: When::Now,
            unique: None,
            unique_until_end: false,
        }
    }
}

/// Connect to the fleet's Redis (`REDIS_URL`: one server, or a cluster's nodes); see
/// [`crate::conn::connect`].
pub async fn connect(url: &str) -> Result<RedisConn, redis::RedisError> {
    crate::conn::connect(url).await
}

/// Queue handles for every registered job over one shared connection. Cheap to clone (the API
/// clones it into every request's state): the handles are shared, not copied.
#[derive(Clone, Debug)]
pub struct Queues {
    by_name: Arc<HashMap<&'static str, Queue<RedisConn>>>,
    conn: RedisConn,
}

impl Queues {
    /// Handles for every job in the registry, configured from `settings`.
    pub fn new(conn: RedisConn, settings: &Settings) -> Self {
        let by_name = registry::JOBS
            .iter()
            .map(|spec| {
                let mut cfg = QueueConfig::new(settings.namespace.clone(), spec.name);
                cfg.max_attempts = spec.max_attempts;
                cfg.lease = settings.job_lease;
                cfg.done_retention = settings.done_retention;
                cfg.dead_retention = settings.dead_retention;
                cfg.rate_limit = settings.rate_limits.get(spec.name).copied();
                (spec.name, Queue::new(conn.clone(), cfg))
            })
            .collect();
        Self {
            by_name: Arc::new(by_name),
            conn,
        }
    }

    /// The queue of job `name`.
    pub fn get(&self, name: &str) -> Option<&Queue<RedisConn>> {
        self.by_name.get(name)
    }

    /// Every queue, in registry order.
    pub fn all(&self) -> impl Iterator<Item = &Queue<RedisConn>> {
        registry::JOBS
            .iter()
            .filter_map(|s| self.by_name.get(s.name))
    }

    /// The shared connection (for hot data next to the queue).
    pub fn connection(&self) -> RedisConn {
        self.conn.clone()
    }

    /// Push a typed job (what the crate's own producers use: no job name or JSON by hand); it
    /// is validated like any other. Returns the job id.
    pub async fn push<T: crate::args::JobArgs>(
        &self,
        job: &T,
        when: When,
    ) -> Result<Pushed, EnqueueError> {
        let args = serde_json::to_value(job)
            .map_err(|e| EnqueueError::InvalidArgs(ArgError::new("", e.to_string())))?;
        self.enqueue(T::NAME, args, when).await
    }

    /// Validate `args` for job `name` and push it; returns the job id.
    pub async fn enqueue(
        &self,
        name: &str,
        args: serde_json::Value,
        when: When,
    ) -> Result<Pushed, EnqueueError> {
        let item = EnqueueItem {
            args,
            when,
            unique: None,
            unique_until_end: false,
        };
        let mut out = self.enqueue_many(name, vec![item]).await?;
        out.pop()
            .ok_or_else(|| EnqueueError::UnknownJob(name.to_owned()))
    }

    /// Validate and push many jobs of one type in as few round trips as possible. Each item may
    /// carry a uniqueness key and TTL. Nothing is pushed unless every item validates; the error
    /// names the first bad item's field as `[index].field`.
    pub async fn enqueue_many(
        &self,
        name: &str,
        items: Vec<EnqueueItem>,
    ) -> Result<Vec<Pushed>, EnqueueError> {
        let spec = registry::find(name).ok_or_else(|| EnqueueError::UnknownJob(name.to_owned()))?;
        let queue = self
            .get(name)
            .ok_or_else(|| EnqueueError::UnknownJob(name.to_owned()))?;
        let many = items.len() > 1;
        let mut jobs = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let EnqueueItem {
                args,
                when,
                unique,
                unique_until_end,
            } = item;
            let args = (spec.check)(args).map_err(|mut e| {
                if many {
                    e.field = if e.field.is_empty() {
                        format!("[{i}]")
                    } else {
                        format!("[{i}].{}", e.field)
                    };
                }
                e
            })?;
            let mut job = NewJob::new(args.to_string()).at(when);
            job.unique = unique;
            job.unique_until_end = unique_until_end;
            jobs.push(job);
        }
        Ok(queue.push_many(jobs).await?)
    }
}
