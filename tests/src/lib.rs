//! Test support: a private PostgreSQL database (migrated with the real migrations) and a private
//! Redis namespace per test, both removed when the test ends, so tests run in parallel.

use std::collections::HashMap;
use std::time::Duration;

pub mod servers;

use migration::{Migrator, MigratorTrait};
use redis::aio::ConnectionManager;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use worker::config::Settings;
use worker::context::JobContext;

/// The PostgreSQL server the tests use (`TEST_DATABASE_URL`, default the local server).
pub fn pg_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis the tests use (`TEST_REDIS_URL`, default the local server).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// URL of database `name` on the test server.
fn pg_url(name: &str) -> String {
    let admin = pg_admin_url();
    match admin.rfind('/') {
        Some(i) => format!("{}/{name}", &admin[..i]),
        None => admin,
    }
}

/// A migrated database of its own, dropped on drop. SQLite when built with [`TestDb::sqlite`].
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// A connection to it.
    pub conn: DatabaseConnection,
    name: Option<String>,
    file: Option<std::path::PathBuf>,
}

impl TestDb {
    /// A fresh PostgreSQL database `celeriac_test_<uuid>`, migrated up.
    pub async fn postgres() -> Self {
        let db = Self::empty_postgres().await;
        Migrator::up(&db.conn, None).await.expect("migrate up");
        db
    }

    /// A fresh, empty PostgreSQL database (no migrations run).
    pub async fn empty_postgres() -> Self {
        let name = format!("celeriac_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(pg_admin_url())
            .await
            .expect("PostgreSQL is running");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = pg_url(&name);
        let conn = Database::connect(&url)
            .await
            .expect("connect test database");
        Self {
            url,
            conn,
            name: Some(name),
            file: None,
        }
    }

    /// A fresh SQLite file, migrated up.
    pub async fn sqlite() -> Self {
        let file = std::env::temp_dir().join(format!(
            "celeriac-test-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let conn = Database::connect(&url).await.expect("open sqlite");
        Migrator::up(&conn, None).await.expect("migrate up");
        Self {
            url,
            conn,
            name: None,
            file: Some(file),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
        let Some(name) = self.name.take() else { return };
        // Drop cannot await; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = Database::connect(pg_admin_url()).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A private Redis namespace for queue keys, plus cleanup of any other keys the test names.
pub struct TestRedis {
    /// Queue key namespace (`test-<uuid>`).
    pub namespace: String,
    /// A connection.
    pub conn: ConnectionManager,
    extra: std::sync::Mutex<Vec<String>>,
}

impl TestRedis {
    /// A fresh namespace.
    pub async fn new() -> Self {
        let conn = worker::queues::connect(&redis_url())
            .await
            .expect("Redis is running");
        Self {
            namespace: format!("test-{}", uuid::Uuid::new_v4().simple()),
            conn,
            extra: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Remove keys matching `*{fragment}*` at the end too (community ids, paths).
    pub fn track(&self, fragment: &str) {
        self.extra
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fragment.to_owned());
    }

    /// A fresh token (fingerprint, session id) unique to this test; keys named after it are removed at the end.
    pub fn token(&self, what: &str) -> String {
        let t = format!("{what}-{}", uuid::Uuid::new_v4().simple());
        self.extra
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(t.clone());
        t
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let fragments: Vec<String> = self.extra.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // `*{namespace}*`: queue keys, and what the Celery client names after the queue (kombu bindings).
        let mut patterns = vec![format!("*{}*", self.namespace)];
        patterns.extend(fragments.iter().map(|t| format!("*{t}*")));
        // Erasure marks are named by a hash of the fingerprint.
        patterns.extend(
            fragments
                .iter()
                .filter_map(|t| worker::hot::Fingerprint::parse(t).ok())
                .map(|fp| worker::hot::anon_erased_key(&fp)),
        );
        let url = redis_url();
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
            // The open-sessions list is shared by every test: take out only this test's visitors.
            let open: Vec<String> = redis::cmd("ZRANGE")
                .arg("anon_sessions:open")
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap_or_default();
            let mine: Vec<&String> = open
                .iter()
                .filter(|m| fragments.iter().any(|t| m.contains(t.as_str())))
                .collect();
            if !mine.is_empty() {
                let _: Result<(), _> = redis::cmd("ZREM")
                    .arg("anon_sessions:open")
                    .arg(mine)
                    .query(&mut conn);
            }
            // The day path sets are shared by every test: take out only this test's paths.
            let path_sets: Vec<String> = redis::cmd("KEYS")
                .arg("pageviews:*:paths")
                .query(&mut conn)
                .unwrap_or_default();
            for set in path_sets {
                let members: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(&set)
                    .query(&mut conn)
                    .unwrap_or_default();
                let mine: Vec<&String> = members
                    .iter()
                    .filter(|m| fragments.iter().any(|t| m.contains(t.as_str())))
                    .collect();
                if !mine.is_empty() {
                    let _: Result<(), _> = redis::cmd("SREM").arg(&set).arg(mine).query(&mut conn);
                }
            }
        })
        .join();
    }
}

/// Settings pointing at `db` and `redis`, with `extra` variables on top.
pub fn settings(db: &TestDb, redis: &TestRedis, extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db.url.clone()),
        ("REDIS_URL".into(), redis_url()),
        ("CELERIAC_NAMESPACE".into(), redis.namespace.clone()),
        // Never the shared `celery` list: each test consumes its own Celery queue.
        (
            "CELERY_QUEUES".into(),
            format!("{}-celery", redis.namespace),
        ),
    ]);
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Settings::from_vars(&vars).expect("test settings")
}

/// A job context over `db` and `redis`.
pub fn job_context(db: &TestDb, redis: &TestRedis, extra: &[(&str, &str)]) -> JobContext {
    JobContext::new(
        db.conn.clone(),
        redis.conn.clone(),
        settings(db, redis, extra),
    )
}

/// Path of a workspace binary: `$CELERIAC_BIN_DIR/<name>`, else `target/debug/<name>`
/// (`scripts/test.sh` builds them; long fault runs point `CELERIAC_BIN_DIR` at `target/release`).
pub fn bin_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::var("CELERIAC_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::var("CARGO_TARGET_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|_| {
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
                })
                .join("debug")
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A running API over `db` and `redis` on a free loopback port; stops when dropped.
pub struct TestApi {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApi {
    /// Serve the real router (`api::serve`) with these settings on top of the test's.
    pub async fn start(db: &TestDb, redis: &TestRedis, extra: &[(&str, &str)]) -> Self {
        let settings = settings(db, redis, extra);
        let vars: HashMap<String, String> = extra
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let api_config = api::ApiConfig::from_vars(&vars).expect("api config");
        let state = api::AppState::new(redis.conn.clone(), db.conn.clone(), settings, api_config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(api::serve(listener, state, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            stop: Some(tx),
        }
    }

    /// A request with no token.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        http(&self.addr, method, path, None, body)
            .await
            .expect("http")
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`): the status and the JSON body
/// (`Value::Null` when the body is not JSON).
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> std::io::Result<(u16, serde_json::Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let payload = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Ok((
        status,
        serde_json::from_str(payload).unwrap_or(serde_json::Value::Null),
    ))
}

/// A Python with `celery[redis]` 5.7 installed, made once under `target/` and reused.
pub fn celery_python() -> std::path::PathBuf {
    static VENV: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(|| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let venv = target.join("celery-venv");
        let python = venv.join("bin/python");
        let ready = venv.join(".ready");
        if !ready.exists() {
            let lock = target.join("celery-venv.lock");
            // One process builds it; others wait for the marker.
            if std::fs::create_dir(&lock).is_ok() {
                let ok = std::process::Command::new("python3")
                    .args(["-m", "venv", "--clear"])
                    .arg(&venv)
                    .status()
                    .is_ok_and(|s| s.success())
                    && std::process::Command::new(&python)
                        .args([
                            "-m",
                            "pip",
                            "install",
                            "--quiet",
                            "--disable-pip-version-check",
                            "celery[redis]==5.7.0",
                            "kombu==5.7.0",
                            "redis==8.1.0",
                        ])
                        .status()
                        .is_ok_and(|s| s.success());
                assert!(
                    ok,
                    "could not install celery[redis] into {}",
                    venv.display()
                );
                std::fs::write(&ready, b"ok").expect("marker");
                let _ = std::fs::remove_dir(&lock);
            } else {
                for _ in 0..1800 {
                    if ready.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        python
    })
    .clone()
}

/// Poll `check` every 20 ms until it returns `Some`, or panic after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// API-level support (issue 6, items 4 and 5): an API over a private Redis, an HTTP call that
// returns headers, and the schemathesis venv.
// ---------------------------------------------------------------------------------------------

impl TestApi {
    /// Serve the real router over `db` and the Redis at `redis_url` (a private server, so the test
    /// may cut it), connected the way the `api` binary connects ([`api::connect_redis`]). Queue
    /// keys go to a fresh namespace; `extra` adds settings (`API_TOKEN`, ...).
    pub async fn start_on(db: &TestDb, redis_url: &str, extra: &[(&str, &str)]) -> Self {
        let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
        let mut vars: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".into(), db.url.clone()),
            ("REDIS_URL".into(), redis_url.to_owned()),
            ("CELERIAC_NAMESPACE".into(), namespace.clone()),
            ("CELERY_QUEUES".into(), format!("{namespace}-celery")),
        ]);
        for (k, v) in extra {
            vars.insert((*k).into(), (*v).into());
        }
        let settings = Settings::from_vars(&vars).expect("test settings");
        let api_config = api::ApiConfig::from_vars(&vars).expect("api config");
        let redis = api::connect_redis(redis_url)
            .await
            .expect("the private Redis is up");
        let state = api::AppState::new(redis, db.conn.clone(), settings, api_config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(api::serve(listener, state, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            stop: Some(tx),
        }
    }
}

/// An HTTP answer with its headers (names lower-cased).
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// Every header, in order, name lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub body: serde_json::Value,
}

impl HttpAnswer {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Like [`http`], but the answer keeps its headers.
pub async fn http_full(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> std::io::Result<HttpAnswer> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpAnswer {
        status,
        headers,
        body: serde_json::from_str(payload).unwrap_or(serde_json::Value::Null),
    })
}

/// The `schemathesis` command of a venv made once under `target/` (pinned version), reused by
/// later runs; concurrent first runs wait for the one that builds it.
pub fn schemathesis_bin() -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        const PINNED: &str = "schemathesis==4.32.5";
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let venv = target.join("schemathesis-venv");
        let bin = venv.join("bin/schemathesis");
        let ready = venv.join(".ready");
        let marker = format!("{PINNED}\n");
        if std::fs::read_to_string(&ready).ok().as_deref() != Some(marker.as_str()) {
            let lock = target.join("schemathesis-venv.lock");
            if std::fs::create_dir(&lock).is_ok() {
                let python = venv.join("bin/python");
                let ok = std::process::Command::new("python3")
                    .args(["-m", "venv", "--clear"])
                    .arg(&venv)
                    .status()
                    .is_ok_and(|s| s.success())
                    && std::process::Command::new(&python)
                        .args([
                            "-m",
                            "pip",
                            "install",
                            "--quiet",
                            "--disable-pip-version-check",
                            PINNED,
                        ])
                        .status()
                        .is_ok_and(|s| s.success());
                let _ = std::fs::remove_dir(&lock);
                assert!(ok, "could not install {PINNED} into {}", venv.display());
                std::fs::write(&ready, &marker).expect("marker");
            } else {
                for _ in 0..3000 {
                    if ready.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        bin
    })
    .clone()
}

/// libfaketime's preload library (Debian package `faketime`; `scripts/services.sh` installs it),
/// for running a process on a skewed wall clock (`LD_PRELOAD`, `FAKETIME=-5s`,
/// `FAKETIME_DONT_FAKE_MONOTONIC=1` so timers keep running on the real monotonic clock).
pub fn libfaketime() -> std::path::PathBuf {
    let candidates = [
        std::env::var("LIBFAKETIME").unwrap_or_default(),
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1".into(),
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1".into(),
        "/usr/lib/faketime/libfaketime.so.1".into(),
    ];
    candidates
        .iter()
        .filter(|c| !c.is_empty())
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .expect("libfaketime is missing: apt-get install faketime (scripts/services.sh does)")
}
