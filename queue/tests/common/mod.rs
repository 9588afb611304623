//! Shared test support: a private key namespace on the real Redis, swept when the test ends.

#![allow(dead_code)]

pub mod servers;

use std::time::Duration;

use celeriac_queue::{Queue, QueueConfig};
use redis::aio::ConnectionManager;

/// The Redis the tests use (`TEST_REDIS_URL`, default the local server).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A private namespace; its keys are deleted on drop.
pub struct TestRedis {
    pub namespace: String,
    pub conn: ConnectionManager,
}

impl TestRedis {
    pub async fn new() -> Self {
        let client = redis::Client::open(redis_url()).expect("redis url");
        let conn = client
            .get_connection_manager_with_config(
                redis::aio::ConnectionManagerConfig::new()
                    .set_response_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .expect("redis is running on 127.0.0.1:6379");
        Self {
            namespace: format!("test-{}", uuid::Uuid::new_v4().simple()),
            conn,
        }
    }

    pub fn config(&self, name: &str) -> QueueConfig {
        QueueConfig::new(self.namespace.clone(), name)
    }

    pub fn queue(&self, config: QueueConfig) -> Queue<ConnectionManager> {
        Queue::new(self.conn.clone(), config)
    }

    /// Every key of this namespace still in Redis.
    pub async fn keys(&self) -> Vec<String> {
        let mut conn = self.conn.clone();
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.namespace))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .expect("scan");
            out.extend(batch);
            if next == 0 {
                return out;
            }
            cursor = next;
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let url = redis_url();
        let pattern = format!("{}:*", self.namespace);
        // A plain blocking connection: Drop cannot await, and the runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut conn)
                .unwrap_or_default();
            for chunk in keys.chunks(500) {
                let _: Result<(), _> = redis::cmd("UNLINK").arg(chunk).query(&mut conn);
            }
        })
        .join();
    }
}
