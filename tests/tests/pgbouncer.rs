//! Behind PgBouncer in transaction pooling mode (Debian's 1.18, which keeps no prepared
//! statements for its clients): what sqlx does by default fails, `DATABASE_POOL_MODE=transaction`
//! works, and the whole Procfile fleet (release, web, worker, scheduler) runs every job and every
//! route that touches SQL through it.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use domain::db::{Db, PoolMode};
use entity::{anonymous_page_view, anonymous_session, page_analytics, user_event, user_session};
use sea_orm::{ConnectOptions, ConnectionTrait, EntityTrait, PaginatorTrait, Statement};
use serde_json::json;
use testkit::{PgBouncer, TestDb, bin_path, command, eventually, free_port, http, service_env};
use tests::TestRedis;
use tokio::process::Child;
use uuid::Uuid;

async fn client(url: &str, mode: PoolMode, connections: u32) -> Db {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(connections).sqlx_logging(false);
    Db::connect(options, mode).await.unwrap()
}

/// `SELECT $1 + $2` (a statement with parameters: sqlx prepares it under a name).
async fn add(db: &Db, a: i64, b: i64) -> Result<i64, sea_orm::DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT $1::int8 + $2::int8 AS v",
            [a.into(), b.into()],
        ))
        .await?
        .unwrap();
    row.try_get::<i64>("", "v")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_breaks_behind_a_transaction_pooler_and_transaction_mode_does_not() {
    let db = TestDb::postgres().await;
    // One server connection: every client of the pooler shares it.
    let bouncer = PgBouncer::start(&db.url, 1);
    let url = bouncer.url_for(&db.url);

    // sqlx's default: each client names its first statement `sqlx_s_1` and leaves it on the
    // server connection, where the next client's `sqlx_s_1` collides with it.
    let (first, second) = (
        client(&url, PoolMode::Session, 1).await,
        client(&url, PoolMode::Session, 1).await,
    );
    assert_eq!(add(&first, 1, 2).await.unwrap(), 3);
    let err = add(&second, 3, 4).await.unwrap_err().to_string();
    assert!(
        err.contains("sqlx_s_1") && err.contains("already exists"),
        "the second client's statement collides with the first's: {err}"
    );
    first.close().await.unwrap();
    second.close().await.unwrap();

    // DATABASE_POOL_MODE=transaction: four clients of four connections each, 400 statements at
    // once over that one server connection (then two), every answer its own.
    for pool in [1, 2] {
        let bouncer = PgBouncer::start(&db.url, pool);
        let url = bouncer.url_for(&db.url);
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(client(&url, PoolMode::Transaction, 4).await);
        }
        let mut runs = tokio::task::JoinSet::new();
        for i in 0..400i64 {
            let db = clients[usize::try_from(i).unwrap() % 4].clone();
            runs.spawn(async move { (i, add(&db, i, 1_000_000).await) });
        }
        while let Some(done) = runs.join_next().await {
            let (i, answer) = done.unwrap();
            assert_eq!(answer.unwrap(), i + 1_000_000, "statement {i}, pool {pool}");
        }
        // A caller's own transaction: prepare and bind on one server, committed once.
        let txn = clients[0].begin().await.unwrap();
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                txn.get_database_backend(),
                "SELECT $1::text || $2::text AS v",
                ["a".into(), "b".into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<String>("", "v").unwrap(), "ab");
        txn.commit().await.unwrap();
    }
}

fn start(bin: &str, args: &[&str], env: &HashMap<String, String>) -> Child {
    command(bin_path(bin))
        .args(args)
        .envs(env)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn")
}

const TOKEN: &str = "pgbouncer-secret";

async fn post(addr: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, answer) = http(addr, "POST", path, Some(TOKEN), Some(&body))
        .await
        .unwrap();
    assert!((200..300).contains(&status), "{path}: {status} {answer}");
    answer
}

/// Every job and every route that reads or writes SQL, through PgBouncer in transaction mode
/// with two server connections, from the Procfile's processes. Each job's rows are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_procfile_fleet_runs_every_job_through_pgbouncer_in_transaction_mode() {
    let (db, redis) = (TestDb::empty_postgres().await, TestRedis::new().await);
    let bouncer = PgBouncer::start(&db.url, 2);
    let addr = format!("127.0.0.1:{}", free_port());
    let mut env = service_env(&db, &redis);
    env.extend([
        ("DATABASE_URL".into(), bouncer.url_for(&db.url)),
        ("DATABASE_POOL_MODE".into(), "transaction".into()),
        ("API_ADDR".into(), addr.clone()),
        ("API_TOKEN".into(), TOKEN.into()),
        ("ANON_SESSION_TIMEOUT_SECONDS".into(), "2".into()),
        (
            "SCHEDULE_FINALIZE_IDLE_SESSIONS".into(),
            "* * * * * *".into(),
        ),
        ("SCHEDULE_END_EXPIRED_SESSIONS".into(), "* * * * * *".into()),
        ("SHUTDOWN_TIMEOUT_SECONDS".into(), "10".into()),
    ]);

    let release = start("migration", &["up"], &env)
        .wait_with_output()
        .await
        .unwrap();
    assert!(release.status.success(), "migration up through PgBouncer");
    let web = start("api", &[], &env);
    let worker = start("worker", &["run"], &env);
    let scheduler = start("worker", &["scheduler"], &env);
    testkit::api_ready(&addr).await;

    // Anonymous visitors, 6 views each: persist (5th view), finalize (after 2 s idle), the
    // buffered views flushed; a community page on each.
    let community = Uuid::new_v4();
    let page = format!("/p/{}", redis.token("page"));
    let fps: Vec<String> = (0..12).map(|i| redis.token(&format!("fp{i}"))).collect();
    for n in 0..6 {
        let views = fps.iter().map(|fp| {
            let addr = addr.clone();
            let body = json!({"fingerprint": fp, "url": format!("{page}/{n}"),
                "community_id": community, "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"});
            async move { post(&addr, "/v1/track/pageview", body).await }
        });
        futures::future::join_all(views).await;
    }
    // Signed-in users: login (enhance_session_async), a view, an event, a sign-up that links
    // an anonymous visitor (link_anonymous_conversion), logout.
    let mut users = Vec::new();
    for (i, fp) in fps.iter().take(4).enumerate() {
        let user = Uuid::new_v4();
        redis.track(&user.to_string());
        let s = post(
            &addr,
            "/v1/sessions",
            json!({"user_id": user, "username": format!("u{i}-{user}"),
            "user_agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15", "ip": "203.0.113.9"}),
        )
        .await;
        let session = s["session_id"].as_str().unwrap().to_owned();
        redis.track(s["hashed_id"].as_str().unwrap());
        post(
            &addr,
            "/v1/track/pageview",
            json!({"fingerprint": fp, "url": format!("{page}/signed-in"),
            "user_id": user, "session_id": session}),
        )
        .await;
        post(
            &addr,
            "/v1/events",
            json!({"user_id": user, "event_type": "pgbouncer"}),
        )
        .await;
        post(
            &addr,
            "/v1/conversions",
            json!({"user_id": user, "fingerprint": fp}),
        )
        .await;
        users.push((user, session));
    }
    let (_, session) = users.pop().unwrap();
    let (status, body) = http(
        &addr,
        "DELETE",
        &format!("/v1/sessions/{session}"),
        Some(TOKEN),
        None,
    )
    .await
    .unwrap();
    assert!((200..300).contains(&status), "logout: {status} {body}");

    // Every anonymous session written and ended, every view a row.
    let visitors = fps.len();
    let sessions = eventually(Duration::from_secs(60), "every session finalized", || {
        let db = db.conn.clone();
        async move {
            let rows = anonymous_session::Entity::find().all(&db).await.ok()?;
            (rows.len() == visitors && rows.iter().all(|r| !r.is_active)).then_some(rows)
        }
    })
    .await;
    assert!(
        sessions.iter().all(|r| r.pages_visited >= 6),
        "{sessions:?}"
    );
    let views = anonymous_page_view::Entity::find()
        .count(&db.conn)
        .await
        .unwrap();
    assert_eq!(views, 6 * 12, "every anonymous view is a row");
    eventually(Duration::from_secs(30), "conversions linked", || {
        let db = db.conn.clone();
        async move {
            let rows = anonymous_session::Entity::find().all(&db).await.ok()?;
            (rows
                .iter()
                .filter(|r| r.converted_to_user_id.is_some())
                .count()
                == 4)
                .then_some(())
        }
    })
    .await;
    let signed_in = user_session::Entity::find().all(&db.conn).await.unwrap();
    assert_eq!(signed_in.len(), 4);
    assert_eq!(
        signed_in.iter().filter(|r| !r.is_active).count(),
        1,
        "one logged out"
    );
    eventually(Duration::from_secs(30), "sessions enhanced", || {
        let db = db.conn.clone();
        async move {
            let rows = user_session::Entity::find().all(&db).await.ok()?;
            rows.iter()
                .all(|r| r.device_info.get("browser").is_some())
                .then_some(())
        }
    })
    .await;
    let events = user_event::Entity::find().count(&db.conn).await.unwrap();
    assert!(
        events >= 4 * 2,
        "an event and a page view per user: {events}"
    );

    // The day's analytics and the cleanup, by hand; the scheduler's sweeps run every second.
    let today = chrono::Utc::now().date_naive();
    post(
        &addr,
        "/v1/jobs/aggregate_page_analytics",
        json!({"date": today}),
    )
    .await;
    post(&addr, "/v1/jobs/cleanup_old_anonymous_data", json!({})).await;
    eventually(Duration::from_secs(30), "the day aggregated", || {
        let db = db.conn.clone();
        async move {
            let n = page_analytics::Entity::find().count(&db).await.ok()?;
            (n >= 7).then_some(())
        }
    })
    .await;
    for route in [
        "/v1/analytics/conversions",
        "/v1/analytics/top-pages",
        "/v1/analytics/session-durations",
        "/readyz",
    ] {
        let (status, body) = http(&addr, "GET", route, Some(TOKEN), None).await.unwrap();
        assert_eq!(status, 200, "{route}: {body}");
    }
    // Erasure: the visitor's rows go.
    let gone = &fps[11];
    let (status, body) = http(
        &addr,
        "DELETE",
        &format!("/v1/anonymous/{gone}"),
        Some(TOKEN),
        None,
    )
    .await
    .unwrap();
    assert!((200..300).contains(&status), "erase: {status} {body}");
    let left = anonymous_session::Entity::find()
        .count(&db.conn)
        .await
        .unwrap();
    assert_eq!(left, 11, "the erased visitor's session is gone");

    // Every queue ran what it was given, nothing died, and the sweeps ran.
    let queues = eventually(Duration::from_secs(30), "every queue idle", || {
        let addr = addr.clone();
        async move {
            let (_, b) = http(&addr, "GET", "/v1/queues", Some(TOKEN), None)
                .await
                .ok()?;
            let queues = b["queues"].as_array()?.clone();
            queues
                .iter()
                .all(|q| q["queued"] == 0 && q["running"] == 0)
                .then_some(queues)
        }
    })
    .await;
    for q in &queues {
        assert_eq!(q["dead"], 0, "{q}");
        assert_eq!(q["retrying"].as_u64().unwrap_or(0), 0, "{q}");
        if !q["name"].as_str().unwrap().starts_with("celery.") {
            assert!(q["done"].as_u64().unwrap() >= 1, "{} ran: {q}", q["name"]);
        }
    }

    for (child, what) in [(scheduler, "scheduler"), (worker, "worker"), (web, "web")] {
        let mut child = child;
        let exit = testkit::sigterm(&mut child, Duration::from_secs(20)).await;
        assert!(exit.success(), "{what} exited with {exit}");
    }
}

/// A statement whose caller gave up before its transaction began (here, while it waited for the
/// pool's only connection) never runs: a job past its time limit or revoked writes nothing later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_cancelled_before_it_began_writes_nothing() {
    let db = TestDb::postgres().await;
    let bouncer = PgBouncer::start(&db.url, 1);
    let client = client(&bouncer.url_for(&db.url), PoolMode::Transaction, 1).await;
    client
        .execute_unprepared("CREATE TABLE cancel_probe (v text)")
        .await
        .unwrap();
    let insert = Statement::from_sql_and_values(
        client.get_database_backend(),
        "INSERT INTO cancel_probe (v) VALUES ($1)",
        ["cancelled".into()],
    );
    // The pool's one connection is taken, so the insert waits for it, then is given up.
    let held = client.begin().await.unwrap();
    let gave_up =
        tokio::time::timeout(Duration::from_millis(200), client.execute_raw(insert)).await;
    assert!(gave_up.is_err(), "the insert waited for the connection");
    held.rollback().await.unwrap();
    // The insert's task now gets the connection; nothing may be written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = db
        .conn
        .query_one_raw(Statement::from_string(
            db.conn.get_database_backend(),
            "SELECT count(*) AS n FROM cancel_probe",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(rows, 0, "a cancelled statement was written");
    // The connection went back to the pool usable, outside any transaction.
    assert_eq!(add(&client, 2, 3).await.unwrap(), 5);
}
