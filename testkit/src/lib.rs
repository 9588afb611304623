//! Test support for every crate's tests, so that each test runs in parallel with the others and
//! leaves nothing behind:
//!
//! - [`db`]: a PostgreSQL database of the test's own (cloned from a migrated template, or empty)
//!   or a SQLite file, removed on drop;
//! - [`namespace`]: a Redis key namespace of the test's own, swept on drop;
//! - [`servers`]: a `redis-server` or a PostgreSQL cluster of the test's own, to stop and kill;
//! - [`process`]: workspace binaries as child processes (killed on drop), SIGTERM;
//! - [`http`](mod@http): one HTTP/1.1 request to a server on a socket (hyper);
//! - [`env`](mod@env): `env_num`, the workspace's paths and built binaries, libfaketime;
//! - [`venv`]: the Python tool environments that `scripts/tool-envs.sh` makes;
//! - [`eventually`]: poll until a condition holds.
//!
//! It depends on no crate of the fleet but `migration` (for the template), so `queue`'s own tests
//! can use it without a second copy of `queue`.

pub mod db;
pub mod env;
pub mod http;
pub mod namespace;
pub mod process;
pub mod servers;
pub mod venv;

use std::collections::HashMap;
use std::time::Duration;

pub use db::TestDb;
pub use env::{bin_dir, bin_path, env_num, libfaketime, workspace_dir};
pub use http::{HttpAnswer, http, http_full, http_raw};
pub use namespace::{TestRedis, redis_url};
pub use process::{bin_command, command, sigterm, spawn_worker};
pub use servers::{
    PgBouncer, PrivatePostgres, PrivateRedis, RedisCluster, RedisServer, TempDir, free_port,
};

/// Poll `check` every 20 ms until it returns `Some`, or panic after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match within(timeout, check).await {
        Some(v) => v,
        None => panic!("timed out waiting for {what}"),
    }
}

/// Poll `check` every 20 ms until it returns `Some`; `None` after `timeout` (for a caller that
/// says more than [`eventually`] about what it saw).
pub async fn within<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait (at most 30 s) until the `api` process at `addr` answers `GET /readyz` with 200.
pub async fn api_ready(addr: &str) {
    eventually(Duration::from_secs(30), "the API", || async move {
        http(addr, "GET", "/readyz", None, None)
            .await
            .ok()
            .filter(|(s, _)| *s == 200)
    })
    .await;
}

/// The variables that point a Celeriac process (or `Settings::from_vars`) at this test's
/// database, Redis and key namespace: `DATABASE_URL`, `REDIS_URL`, `CELERIAC_NAMESPACE`, and
/// `CELERY_QUEUES` = `<namespace>-celery` (never the shared `celery` list: each test consumes a
/// Celery queue of its own).
pub fn service_env(db: &TestDb, redis: &TestRedis) -> HashMap<String, String> {
    HashMap::from([
        ("DATABASE_URL".into(), db.url.clone()),
        ("REDIS_URL".into(), redis_url()),
        ("CELERIAC_NAMESPACE".into(), redis.namespace.clone()),
        (
            "CELERY_QUEUES".into(),
            format!("{}-celery", redis.namespace),
        ),
    ])
}
