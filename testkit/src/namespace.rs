//! A Redis key namespace of the test's own on the shared Redis, swept when the test ends.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The Redis the tests use (`TEST_REDIS_URL`, default the local server).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// More cleanup at drop: called with a plain connection and the test's tokens.
type Hook = Box<dyn FnOnce(&mut redis::Connection, &[String]) + Send>;

/// A private key namespace (`test-<uuid>`). On drop every key naming it (`*<namespace>*`) or one
/// of the test's tokens (`*<token>*`) is removed, then the [`TestRedis::on_drop`] hooks run.
pub struct TestRedis {
    /// The namespace: put it in every key the test writes (queue keys take it as their prefix).
    pub namespace: String,
    /// A connection.
    pub conn: ConnectionManager,
    tokens: Mutex<Vec<String>>,
    hooks: Mutex<Vec<Hook>>,
}

impl TestRedis {
    /// A fresh namespace on [`redis_url`], over a connection with a 30 s response timeout.
    pub async fn new() -> Self {
        let client = redis::Client::open(redis_url()).expect("TEST_REDIS_URL is a Redis URL");
        let conn = client
            .get_connection_manager_with_config(
                ConnectionManagerConfig::new().set_response_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .expect("Redis is running (TEST_REDIS_URL)");
        Self::with_conn(conn)
    }

    /// A fresh namespace over `conn`, a connection to [`redis_url`] made the caller's way.
    pub fn with_conn(conn: ConnectionManager) -> Self {
        Self {
            namespace: format!("test-{}", uuid::Uuid::new_v4().simple()),
            conn,
            tokens: Mutex::new(Vec::new()),
            hooks: Mutex::new(Vec::new()),
        }
    }

    /// A fresh token (`<what>-<uuid>`: a fingerprint, a path) unique to this test; keys naming it
    /// are removed at the end.
    pub fn token(&self, what: &str) -> String {
        let t = format!("{what}-{}", uuid::Uuid::new_v4().simple());
        self.track(&t);
        t
    }

    /// Remove keys naming `fragment` (`*<fragment>*`) at the end too.
    pub fn track(&self, fragment: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fragment.to_owned());
    }

    /// Run `hook` at drop, after the sweep, with a plain connection and the test's tokens (for
    /// keys named otherwise, such as members of sets that every test shares).
    pub fn on_drop(&self, hook: impl FnOnce(&mut redis::Connection, &[String]) + Send + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(hook));
    }

    /// Every key under the namespace (`<namespace>:*`) still in Redis.
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
                .expect("SCAN");
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
        let tokens: Vec<String> =
            std::mem::take(&mut *self.tokens.lock().unwrap_or_else(|p| p.into_inner()));
        let hooks: Vec<Hook> =
            std::mem::take(&mut *self.hooks.lock().unwrap_or_else(|p| p.into_inner()));
        let mut patterns = vec![format!("*{}*", self.namespace)];
        patterns.extend(tokens.iter().map(|t| format!("*{t}*")));
        let url = redis_url();
        // A plain blocking connection on a thread of its own: Drop cannot await, and the test's
        // runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            for p in patterns {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(&p)
                    .query(&mut conn)
                    .unwrap_or_default();
                for chunk in keys.chunks(500) {
                    let _: Result<(), _> = redis::cmd("UNLINK").arg(chunk).query(&mut conn);
                }
            }
            for hook in hooks {
                hook(&mut conn, &tokens);
            }
        })
        .join();
    }
}
