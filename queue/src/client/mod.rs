//! The queue client: the [`Queue`] handle on one queue, its settings and the reply decoding its
//! operations share; the operations (push, lease, acknowledge, inspect, clean up, erase,
//! revoke) live in one submodule per concern, each an `impl Queue` block.

mod ack;
mod dead;
mod erase;
pub(crate) use erase::ERASE;
mod fetch;
mod inspect;
mod list;
mod pause;
mod push;
mod retention;
mod revoke;

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use redis::aio::ConnectionLike;

use crate::error::QueueError;
use crate::keys::Keys;

pub use ack::{Ack, AckReport};
pub use fetch::{Fetched, FetchedJob, Renewed};
pub use inspect::{JobInfo, JobStatus, QueueStats};
pub use list::{JobPage, ListState, MAX_PAGE, MAX_RETRY_SCAN};
pub use push::{NewJob, Pushed, When};
pub use revoke::Revoked;

/// Jobs per push script call; keeps every Lua `unpack` far below its 8,000-value limit.
const PUSH_CHUNK: usize = 1000;

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
    /// At most this many jobs start per second across every worker (`None`: no limit).
    pub rate_limit: Option<crate::RateLimit>,
    /// Foreign lists on the queue's own Redis (Celery's, say) whose raw messages a fetch leases
    /// as jobs of this queue when its pending list is empty, in this order (after the queue's
    /// staging list), each popped from the right. The message becomes a job in the step that
    /// leases it (see `lua/fetch.lua`), so it is never outside Redis. Not for a Redis Cluster
    /// (the lists carry no hash tag); empty for a queue of its own.
    pub lease_from: Vec<String>,
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
            rate_limit: None,
            lease_from: Vec::new(),
        }
    }
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
    }
}
