//! The queue's own test support on top of testkit: queue handles in a test's Redis namespace.

use queue::{Queue, QueueConfig};
use redis::aio::ConnectionManager;
use testkit::TestRedis;

/// Queues in a [`TestRedis`] namespace.
pub trait QueueExt {
    /// The configuration of queue `name` in this test's namespace.
    fn config(&self, name: &str) -> QueueConfig;
    /// A handle on the queue `config` describes, over this test's connection.
    fn queue(&self, config: QueueConfig) -> Queue<ConnectionManager>;
}

impl QueueExt for TestRedis {
    fn config(&self, name: &str) -> QueueConfig {
        QueueConfig::new(self.namespace.clone(), name)
    }

    fn queue(&self, config: QueueConfig) -> Queue<ConnectionManager> {
        Queue::new(self.conn.clone(), config)
    }
}
