//! The fleet's test harness, on top of [`testkit`] (per-test databases, Redis namespaces, private
//! servers, processes, HTTP): what needs the fleet's own crates, i.e. [`Settings`] and a
//! [`JobContext`] over a test's database and namespace, the real API router on a loopback port
//! ([`TestApi`]), the worker in this process ([`InProcessWorker`]), and [`TestRedis`], testkit's
//! namespace that also cleans the keys the fleet shares between tests.

pub mod flow;

use std::collections::HashMap;
use std::time::Duration;

use domain::config::Settings;
use domain::conn::RedisConn;
use testkit::TestDb;
use worker::context::JobContext;

/// [`testkit::TestRedis`] over a connection made as the fleet makes it
/// ([`domain::queues::connect`]), whose cleanup also takes this test's visitors out of what
/// every test shares: erasure marks (named by a hash of the fingerprint), the open-sessions
/// list and the day path sets. Use it for every test that runs fleet code.
pub struct TestRedis(testkit::TestRedis);

impl TestRedis {
    /// A fresh namespace.
    pub async fn new() -> Self {
        let conn = domain::conn::connect_single(&testkit::redis_url())
            .await
            .expect("Redis is running (TEST_REDIS_URL)");
        let redis = testkit::TestRedis::with_conn(conn);
        redis.on_drop(forget_shared);
        Self(redis)
    }
}

impl std::ops::Deref for TestRedis {
    type Target = testkit::TestRedis;

    fn deref(&self) -> &testkit::TestRedis {
        &self.0
    }
}

/// Take this test's tokens (fingerprints, paths) out of the keys every test shares.
fn forget_shared(conn: &mut redis::Connection, tokens: &[String]) {
    let mine = |member: &String| tokens.iter().any(|t| member.contains(t.as_str()));
    // Erasure marks are named by a hash of the fingerprint.
    let marks: Vec<String> = tokens
        .iter()
        .filter_map(|t| domain::keys::Fingerprint::parse(t).ok())
        .map(|fp| domain::keys::anon_erased_key(&fp))
        .collect();
    if !marks.is_empty() {
        let _: Result<(), _> = redis::cmd("UNLINK").arg(&marks).query(conn);
    }
    // The open-sessions list is shared by every test: take out only this test's visitors.
    let open: Vec<String> = redis::cmd("ZRANGE")
        .arg("anon_sessions:open")
        .arg(0)
        .arg(-1)
        .query(conn)
        .unwrap_or_default();
    let open: Vec<&String> = open.iter().filter(|m| mine(m)).collect();
    if !open.is_empty() {
        let _: Result<(), _> = redis::cmd("ZREM")
            .arg("anon_sessions:open")
            .arg(open)
            .query(conn);
    }
    // The day path sets are shared by every test: take out only this test's paths.
    let path_sets: Vec<String> = redis::cmd("KEYS")
        .arg("pageviews:*:paths")
        .query(conn)
        .unwrap_or_default();
    for set in path_sets {
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&set)
            .query(conn)
            .unwrap_or_default();
        let members: Vec<&String> = members.iter().filter(|m| mine(m)).collect();
        if !members.is_empty() {
            let _: Result<(), _> = redis::cmd("SREM").arg(&set).arg(members).query(conn);
        }
    }
}

/// Settings pointing at `db` and `redis` ([`testkit::service_env`]), with `extra` variables on
/// top.
pub fn settings(db: &TestDb, redis: &TestRedis, extra: &[(&str, &str)]) -> Settings {
    let mut vars = testkit::service_env(db, redis);
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Settings::from_vars(&vars).expect("test settings")
}

/// A job context over `db` and `redis`.
pub fn job_context(db: &TestDb, redis: &TestRedis, extra: &[(&str, &str)]) -> JobContext {
    let settings = settings(db, redis, extra);
    let geo = worker::geo::open_configured(&settings).expect("GEOIP_DATABASE opens");
    JobContext::new(
        db.conn.clone(),
        RedisConn::Single(redis.conn.clone()),
        settings,
        geo,
    )
}

/// The worker (`worker::run::run`, every consumer) in this process, on a runtime of its own on a
/// thread of its own, until [`InProcessWorker::stop`]. Dropped without `stop` (a test that
/// panicked), it is told to stop and left to finish on its own.
pub struct InProcessWorker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl InProcessWorker {
    /// Run the worker over `ctx`'s Redis connection and settings, with a database pool of its own
    /// opened on the worker's runtime: a pooled connection belongs to the runtime that opened it,
    /// so sharing the test's pool left it with connections that failed ("a Tokio 1.x context was
    /// found, but it is being shutdown") once the worker's runtime was gone.
    pub fn start(ctx: JobContext) -> Self {
        Self::spawn(ctx.settings.worker_threads, || async move {
            let db =
                sea_orm::Database::connect(worker::run::db_options(&ctx.settings.database_url))
                    .await?;
            Ok(JobContext::new(
                db,
                ctx.redis.clone(),
                (*ctx.settings).clone(),
                ctx.geo.clone(),
            ))
        })
    }

    /// Run the worker over connections made from `settings` the way the `worker` binary makes
    /// them (`worker::run::connect`).
    pub fn connect(settings: Settings) -> Self {
        Self::spawn(settings.worker_threads, || async move {
            worker::run::connect(&settings).await
        })
    }

    /// On a thread of its own, on the runtime the `worker` binary builds for `threads`
    /// (`domain::process::runtime`: one event loop unless the settings ask for more).
    fn spawn<F, Fut>(threads: usize, context: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<JobContext>>,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            domain::process::runtime(threads)?.block_on(async move {
                let ctx = context().await?;
                worker::run::run(ctx, async move {
                    let _ = stopped.await;
                })
                .await
            })
        });
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Wait (at most `timeout`, [`testkit::eventually`]) until `done` returns `Some`, then
    /// [`InProcessWorker::stop`]; what `done` returned.
    pub async fn run_until<T, F, Fut>(self, timeout: Duration, what: &str, done: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let outcome = testkit::eventually(timeout, what, done).await;
        self.stop().await;
        outcome
    }

    /// Stop the worker and wait for it; panics if it failed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let thread = self.thread.take().expect("not stopped yet");
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("join the worker's thread")
            .expect("the worker did not panic")
            .expect("the worker stopped cleanly");
    }
}

impl Drop for InProcessWorker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The real API router (`api::serve`) on a free loopback port, over a test's database and a
/// Redis; stops when dropped.
pub struct TestApi {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApi {
    /// Serve over `db` and `redis`, with these settings on top of the test's.
    pub async fn start(db: &TestDb, redis: &TestRedis, extra: &[(&str, &str)]) -> Self {
        let settings = settings(db, redis, extra);
        let vars: HashMap<String, String> = extra
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let api_config = api::ApiConfig::from_vars(&vars).expect("api config");
        let state = api::AppState::new(
            RedisConn::Single(redis.conn.clone()),
            db.conn.clone(),
            settings,
            api_config,
        );
        Self::serve(state).await
    }

    /// Serve over `db` and the Redis at `redis_url` (a private server, so the test may cut it),
    /// connected the way the `api` binary connects ([`api::connect_redis`]). Queue keys go to a
    /// fresh namespace; `extra` adds settings (`API_TOKEN`, ...).
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
        Self::serve(state).await
    }

    async fn serve(state: api::AppState) -> Self {
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

    /// A request with no token: the status and the JSON body ([`testkit::http()`]).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        testkit::http(&self.addr, method, path, None, body)
            .await
            .expect("http")
    }
}

impl TestApi {
    /// Log a new user in through `POST /v1/sessions` with `extra` fields (`user_agent`, `ip`,
    /// ...) and return the session's hashed id; the user and the session's keys go with `redis`.
    pub async fn login(&self, redis: &TestRedis, extra: serde_json::Value) -> String {
        let user = uuid::Uuid::new_v4();
        redis.track(&user.to_string());
        let mut body = serde_json::json!({"user_id": user, "username": format!("u-{user}")});
        if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        let (s, b) = self.call("POST", "/v1/sessions", Some(&body)).await;
        assert_eq!(s, 201, "{b}");
        let hashed = b["hashed_id"].as_str().expect("hashed_id").to_owned();
        redis.track(&hashed);
        hashed
    }
}

/// The signed-in session row with hashed id `hashed`, if there is one.
pub async fn user_session_by_hash(
    conn: &sea_orm::DatabaseConnection,
    hashed: &str,
) -> Option<entity::user_session::Model> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    entity::user_session::Entity::find()
        .filter(entity::user_session::Column::SessionId.eq(hashed))
        .one(conn)
        .await
        .expect("read accounts_usersession")
}

/// A transaction holding a row lock (`FOR UPDATE`) on the signed-in session `hashed`: a job's
/// UPDATE of that row waits until it is rolled back (a real hung database call).
pub async fn lock_user_session(db: &TestDb, hashed: &str) -> sea_orm::DatabaseTransaction {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let lock = db.conn.begin().await.expect("begin");
    lock.execute_raw(domain::sql::statement(
        db.conn.get_database_backend(),
        "SELECT id FROM accounts_usersession WHERE session_id = $1 FOR UPDATE",
        vec![hashed.into()],
    ))
    .await
    .expect("lock the row");
    lock
}

/// The first job of `queue` retrying after a run that ran out of time (within 20 s); panics
/// when its error does not say so.
pub async fn cancelled_by_time_limit(
    queue: &queue::Queue<domain::conn::RedisConn>,
) -> queue::JobInfo {
    let job = testkit::eventually(Duration::from_secs(20), "a run cancelled", || async {
        let page = queue.list(queue::ListState::Retrying, 0, 10).await.ok()?;
        page.jobs.into_iter().find(|j| j.attempts >= 1)
    })
    .await;
    let reason = job.last_error.clone().unwrap_or_default();
    assert!(reason.contains("time limit exceeded"), "{reason}");
    job
}

/// A signed-in session row of `user`: started at `started`, ended at `ended` (active while
/// none), expiring at `expires`, with no address, agent, device or place.
pub fn user_session_row(
    user: uuid::Uuid,
    session_id: String,
    started: chrono::DateTime<chrono::Utc>,
    ended: Option<chrono::DateTime<chrono::Utc>>,
    expires: chrono::DateTime<chrono::Utc>,
) -> entity::user_session::ActiveModel {
    use sea_orm::Set;
    entity::user_session::ActiveModel {
        user_id: Set(user),
        session_id: Set(session_id),
        ip_address: Set(None),
        user_agent: Set(String::new()),
        device_info: Set(serde_json::json!({})),
        location_data: Set(serde_json::json!({})),
        device_fingerprint: Set(String::new()),
        fast_fingerprint: Set(String::new()),
        persistent: Set(false),
        pages_visited: Set(0),
        started_at: Set(started),
        last_activity: Set(started),
        ended_at: Set(ended),
        expires_at: Set(expires),
        is_active: Set(ended.is_none()),
        ..Default::default()
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A live anonymous session document for fingerprint `fp` with `pages` views, as the web tier
/// writes it (`anon_session:<fp>`), for jobs sent without the API (the Celery client's).
pub async fn put_anon_session(
    conn: &(impl redis::aio::ConnectionLike + Clone + Send + Sync),
    fp: &str,
    pages: u32,
) {
    use redis::AsyncCommands as _;
    let now = chrono::Utc::now().to_rfc3339();
    let doc = serde_json::json!({
        "session_id": uuid::Uuid::new_v4(), "device_fingerprint": fp,
        "started_at": now, "last_activity": now,
        "pages_visited": pages, "landing_page": "/", "referrer": "", "is_active": true
    });
    let _: () = conn
        .clone()
        .set(format!("anon_session:{fp}"), doc.to_string())
        .await
        .expect("write the session document");
}

/// Run `script` (in `tests/tests/`) with `python`, `args` and `env`; panics with its stderr when
/// it fails; its one JSON line.
pub async fn python_json(
    python: &std::path::Path,
    script: &str,
    args: &[String],
    env: &[(&str, String)],
) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

/// A Celery protocol-2 message as `.delay(fingerprint)` writes it for
/// `analytics.tasks.persist_anonymous_session` on queue `celery`.
pub fn celery_message(fingerprint: &str) -> String {
    use base64::Engine as _;
    let body = serde_json::json!([[fingerprint], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]);
    let id = uuid::Uuid::new_v4().to_string();
    serde_json::json!({
        "body": base64::engine::general_purpose::STANDARD.encode(body.to_string()),
        "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"lang": "py", "task": "analytics.tasks.persist_anonymous_session", "id": id,
                    "eta": null, "expires": null, "retries": 0, "root_id": id, "parent_id": null},
        "properties": {"correlation_id": id, "delivery_mode": 2, "priority": 0, "body_encoding": "base64",
                       "delivery_info": {"exchange": "", "routing_key": "celery"},
                       "delivery_tag": uuid::Uuid::new_v4().to_string()}
    })
    .to_string()
}

/// How many `analytics_anonymoussession` rows `db` holds (`None` while it cannot answer).
pub async fn anonymous_session_rows(db: &impl sea_orm::ConnectionTrait) -> Option<usize> {
    let n = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM analytics_anonymoussession",
        ))
        .await
        .ok()??
        .try_get::<i64>("", "n")
        .ok()?;
    usize::try_from(n).ok()
}
