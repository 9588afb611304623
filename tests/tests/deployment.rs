//! The deployment contract (`docs/deployment.md`), statement by statement, on the real binaries:
//! a process that cannot reach Redis or the database stops at start with one line; the API's
//! probes follow Redis and PostgreSQL going and coming back, and keep taking page views while
//! PostgreSQL is gone; SIGTERM drains the API behind a failing `/readyz`, then exits 0; the
//! release step can run twice. The worker's and scheduler's statements are checked where their
//! machinery is (`faults.rs`, `scheduler.rs`, `fleet.rs`; the document names each test).

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, EntityTrait, PaginatorTrait};
use serde_json::json;
use testkit::{
    PrivatePostgres, PrivateRedis, TestDb, bin_command, eventually, free_port, http, service_env,
};
use tests::TestRedis;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Run `bin args` with `env` to its end (at most 30 s): exit code and stderr.
async fn run_to_end(bin: &str, args: &[&str], env: &HashMap<String, String>) -> (i32, String) {
    let child = bin_command(bin)
        .args(args)
        .envs(env)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{bin} {args:?} still running after 30 s"))
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `api` binary with `env`, once its `/readyz` answers 200 on `addr`.
async fn start_api(env: &HashMap<String, String>, addr: &str) -> tokio::process::Child {
    let api = bin_command("api")
        .envs(env)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    testkit::api_ready(addr).await;
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_stops_at_start_with_one_line_when_redis_or_the_database_is_unreachable() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    // Port 1: nothing listens there, and no test's server can take it (it is privileged).
    let nowhere = 1;
    // The scheduler needs only Redis; `migration` only the database.
    let processes: [(&str, &[&str], bool); 3] = [
        ("api", &[], true),
        ("worker", &["run"], true),
        ("worker", &["scheduler"], false),
    ];
    let mut cases = Vec::new();
    for (bin, args, uses_db) in processes {
        cases.push((
            bin,
            args,
            "REDIS_URL",
            format!("redis://:secret-pw@127.0.0.1:{nowhere}"),
            "Redis",
        ));
        if !uses_db {
            continue;
        }
        cases.push((
            bin,
            args,
            "DATABASE_URL",
            format!("postgres://postgres:secret-pw@127.0.0.1:{nowhere}/celeriac"),
            "database",
        ));
    }
    cases.push((
        "migration",
        &["up"],
        "DATABASE_URL",
        format!("postgres://postgres:secret-pw@127.0.0.1:{nowhere}/celeriac"),
        "database",
    ));
    for (bin, args, var, value, named) in cases {
        let mut env = service_env(&db, &redis);
        env.insert("API_ADDR".into(), format!("127.0.0.1:{}", free_port()));
        env.insert(var.into(), value);
        let started = Instant::now();
        let (code, stderr) = run_to_end(bin, args, &env).await;
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(code, 1, "{bin} {args:?} with {var} unreachable: {stderr}");
        assert_eq!(lines.len(), 1, "{bin} {args:?}: one line, not {stderr:?}");
        assert!(
            lines[0].contains(named),
            "{bin} {args:?} names {named}: {stderr}"
        );
        assert!(
            !stderr.contains("secret-pw"),
            "{bin} {args:?} shows the password: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{bin} {args:?} gave up in {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_keeps_serving_for_the_drain_then_exits_zero() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let addr = format!("127.0.0.1:{}", free_port());
    let mut env = service_env(&db, &redis);
    env.extend([
        ("API_ADDR".into(), addr.clone()),
        ("API_DRAIN_SECONDS".into(), "3".into()),
    ]);
    let mut api = start_api(&env, &addr).await;

    let pid = api.id().unwrap().to_string();
    let signalled = Instant::now();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let ready = eventually(Duration::from_secs(2), "/readyz to fail", || {
        let addr = addr.clone();
        async move {
            let (s, b) = http(&addr, "GET", "/readyz", None, None).await.ok()?;
            (s == 503).then_some(b)
        }
    })
    .await;
    assert!(
        ready["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{ready}"
    );
    // A request whose body is still coming when the listener closes.
    let fp = redis.token("fp");
    let body = json!({"fingerprint": fp, "url": "/open"}).to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut open = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "POST /v1/track/pageview HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{head}",
        body.len()
    );
    open.write_all(request.as_bytes()).await.unwrap();
    // Through the drain, new connections are served: liveness and page views.
    while signalled.elapsed() < Duration::from_millis(2_500) {
        let (s, _) = http(&addr, "GET", "/healthz", None, None).await.unwrap();
        assert_eq!(s, 200, "served {:?} into the drain", signalled.elapsed());
        let (s, b) = http(
            &addr,
            "POST",
            "/v1/track/pageview",
            None,
            Some(&json!({"fingerprint": fp, "url": "/"})),
        )
        .await
        .unwrap();
        assert_eq!(s, 202, "{b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // After it: no new connections, while the open request keeps the process up.
    eventually(Duration::from_secs(5), "the listener to close", || {
        let addr = addr.clone();
        async move {
            http(&addr, "GET", "/healthz", None, None)
                .await
                .is_err()
                .then_some(())
        }
    })
    .await;
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "closed before the drain ended"
    );
    assert!(
        api.try_wait().unwrap().is_none(),
        "exited with a request open"
    );
    // The open request finishes.
    open.write_all(tail.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = open.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed without an answer: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let exit = tokio::time::timeout(Duration::from_secs(20), api.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_probes_follow_redis_and_postgres_and_views_go_on_without_postgres() {
    let mut redis = PrivateRedis::start(false);
    let pg = PrivatePostgres::start();
    let admin = Database::connect(pg.url("postgres")).await.unwrap();
    admin
        .execute_unprepared("CREATE DATABASE celeriac")
        .await
        .unwrap();
    admin.close().await.unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let env: HashMap<String, String> = [
        ("DATABASE_URL", pg.url("celeriac")),
        ("REDIS_URL", redis.url()),
        ("CELERIAC_NAMESPACE", "deploy".to_owned()),
        ("API_ADDR", addr.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let (code, stderr) = run_to_end("migration", &["up"], &env).await;
    assert_eq!(code, 0, "{stderr}");
    let mut api = start_api(&env, &addr).await;

    let not_ready = |what: &'static str| {
        let addr = addr.clone();
        async move {
            eventually(Duration::from_secs(15), what, || {
                let addr = addr.clone();
                async move {
                    let (s, b) = http(&addr, "GET", "/readyz", None, None).await.ok()?;
                    let message = b["error"]["message"].as_str()?.to_owned();
                    (s == 503 && message.contains(what)).then_some(message)
                }
            })
            .await
        }
    };
    let view = |n: u32| {
        let addr = addr.clone();
        async move {
            http(
                &addr,
                "POST",
                "/v1/track/pageview",
                None,
                Some(&json!({"fingerprint": "deploy-visitor", "url": format!("/page/{n}")})),
            )
            .await
            .unwrap()
        }
    };

    // Redis gone: not ready (naming it), still alive; back: ready.
    redis.kill();
    not_ready("redis").await;
    let (s, _) = http(&addr, "GET", "/healthz", None, None).await.unwrap();
    assert_eq!(s, 200, "alive without Redis");
    redis.restart(false);
    testkit::api_ready(&addr).await;

    // PostgreSQL gone: not ready (naming the database), alive, and anonymous views still taken
    // (they live in Redis until a worker writes them); back: ready.
    pg.stop();
    not_ready("database").await;
    let (s, _) = http(&addr, "GET", "/healthz", None, None).await.unwrap();
    assert_eq!(s, 200, "alive without PostgreSQL");
    for n in 0..3 {
        let (s, b) = view(n).await;
        assert_eq!(s, 202, "a view while PostgreSQL is down: {b}");
    }
    let (s, b) = http(&addr, "GET", "/v1/analytics/top-pages", None, None)
        .await
        .unwrap();
    assert_eq!(s, 503, "a route that reads SQL: {b}");
    pg.up();
    testkit::api_ready(&addr).await;

    let exit = testkit::sigterm(&mut api, Duration::from_secs(20)).await;
    assert!(exit.success(), "{exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_step_can_run_again() {
    let (db, redis) = (TestDb::empty_postgres().await, TestRedis::new().await);
    let env = service_env(&db, &redis);
    let mut applied = Vec::new();
    for round in 0..2 {
        let (code, stderr) = run_to_end("migration", &["up"], &env).await;
        assert_eq!(code, 0, "migration up, round {round}: {stderr}");
        let n = db
            .conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) AS n FROM seaql_migrations",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        applied.push(n);
        if round == 0 {
            // Data written between deploys: a second run must leave it (a `fresh` would not).
            db.conn
                .execute_unprepared(
                    "INSERT INTO analytics_pageanalytics (date, url_path, page_type, total_views, \
                     anonymous_views, authenticated_views, unique_visitors) \
                     VALUES (CURRENT_DATE, '/kept', '', 1, 1, 0, 1)",
                )
                .await
                .unwrap();
        }
    }
    assert!(applied[0] >= 4, "every migration applied: {applied:?}");
    assert_eq!(applied[0], applied[1], "the second run applies nothing");
    let kept = entity::page_analytics::Entity::find()
        .count(&db.conn)
        .await
        .unwrap();
    assert_eq!(kept, 1, "the row written between the runs is still there");
}

/// `worker probe` (the workers' exec liveness probe): fails before a worker runs and while it is
/// stuck (SIGSTOP: no heartbeat), passes while it heartbeats, and passes, saying it cannot judge,
/// when Redis cannot be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_probe_fails_a_stuck_worker_and_passes_a_live_one() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let mut env = service_env(&db, &redis);
    // A host name of the test's own: other tests' workers never count.
    env.insert("HOSTNAME".into(), redis.token("probe-host"));
    let probe = |env: HashMap<String, String>| async move {
        run_to_end("worker", &["probe", "--max-age", "6"], &env).await
    };
    let (code, stderr) = probe(env.clone()).await;
    assert_eq!(code, 1, "no worker yet: {stderr}");
    assert!(stderr.contains("no worker process on"), "{stderr}");

    let mut worker = bin_command("worker")
        .arg("run")
        .envs(&env)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = worker.id().unwrap().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    };
    // Within `within`: a stuck worker must fail on its heartbeat's age (6 s), well before its
    // heartbeat document expires (30 s) and it would vanish anyway.
    let passes = |want: i32, what: &'static str, within: u64| {
        let env = env.clone();
        async move {
            eventually(Duration::from_secs(within), what, || {
                let env = env.clone();
                async move { (probe(env).await.0 == want).then_some(()) }
            })
            .await;
        }
    };
    passes(0, "the probe to pass", 30).await;
    signal("-STOP");
    passes(1, "the probe to fail the stuck worker", 16).await;
    signal("-CONT");
    passes(0, "the probe to pass again", 30).await;

    let mut cut = env.clone();
    cut.insert("REDIS_URL".into(), "redis://127.0.0.1:1".into());
    let (code, stderr) = probe(cut).await;
    assert_eq!(code, 0, "Redis unreachable is not a dead worker: {stderr}");

    let exit = testkit::sigterm(&mut worker, Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit}");
}
