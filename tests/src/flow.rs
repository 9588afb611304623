//! The Procfile fleet's flows end to end over HTTP, each checked by its rows: anonymous visitors
//! (persist, finalize, buffered views), a community page, logins (enhance), events, sign-ups
//! (link), a logout, the day's aggregation, the cleanup, the analytics routes, an erasure, and
//! every queue idle with nothing dead. The PgBouncer and Redis Cluster tests run it against
//! their deployments.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use entity::{anonymous_page_view, anonymous_session, page_analytics, user_event, user_session};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use testkit::{TestDb, bin_path, command, eventually, free_port, http};
use tokio::process::Child;
use uuid::Uuid;

use crate::TestRedis;

/// POST `body` to `path` with `token`; panics unless the answer is 2xx.
pub async fn post(addr: &str, token: &str, path: &str, body: Value) -> Value {
    let (status, answer) = http(addr, "POST", path, Some(token), Some(&body))
        .await
        .unwrap();
    assert!((200..300).contains(&status), "{path}: {status} {answer}");
    answer
}

/// The Procfile's processes, started as a deployment would: `migration up`, then web, worker
/// and scheduler, with what [`every_flow`] needs (a token, a 2 s session timeout unless `env`
/// sets one, the idle sweeps every second).
pub struct Fleet {
    /// The web process's address.
    pub addr: String,
    processes: Vec<(Child, &'static str)>,
    /// Each process's stderr, printed if the test fails while the fleet runs.
    logs: testkit::TempDir,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        // The worker and the web process first, their warnings and errors before their last
        // lines: a CI log keeps only part of what a failed test prints.
        for what in ["worker", "web", "scheduler", "release"] {
            let said = std::fs::read_to_string(self.logs.path().join(format!("{what}.log")))
                .unwrap_or_default();
            let last = |lines: Vec<&str>, n: usize| -> Vec<String> {
                let from = lines.len().saturating_sub(n);
                lines[from..].iter().map(|l| (*l).to_owned()).collect()
            };
            let warned = last(
                said.lines()
                    .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                    .collect(),
                30,
            );
            let tail = last(
                said.lines()
                    .filter(|l| !l.contains("end_expired_sessions") && !l.contains("tick enqueued"))
                    .collect(),
                30,
            );
            eprintln!(
                "--- {what}: {} warnings and errors, the last ---",
                warned.len()
            );
            for line in &warned {
                eprintln!("{line}");
            }
            eprintln!("--- {what}, last lines ---");
            for line in &tail {
                eprintln!("{line}");
            }
        }
    }
}

impl Fleet {
    /// Start the fleet with `env` (the caller's database, Redis and namespace) and bearer `token`.
    pub async fn start(mut env: HashMap<String, String>, token: &str) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        // A 2 s session timeout unless the caller set one (a test whose faults can hold a view
        // longer than that sets more, or a visitor's views would split into two sessions).
        env.entry("ANON_SESSION_TIMEOUT_SECONDS".into())
            .or_insert_with(|| "2".into());
        env.extend([
            ("API_ADDR".into(), addr.clone()),
            ("API_TOKEN".into(), token.into()),
            (
                "SCHEDULE_FINALIZE_IDLE_SESSIONS".into(),
                "* * * * * *".into(),
            ),
            ("SCHEDULE_END_EXPIRED_SESSIONS".into(), "* * * * * *".into()),
            ("SHUTDOWN_TIMEOUT_SECONDS".into(), "10".into()),
        ]);
        let logs = testkit::TempDir::new("fleet-logs");
        let start = |bin: &str, args: &[&str], what: &str| {
            let log = std::fs::File::create(logs.path().join(format!("{what}.log"))).unwrap();
            command(bin_path(bin))
                .args(args)
                .envs(&env)
                .env("RUST_LOG", "info")
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("spawn")
        };
        let release = start("migration", &["up"], "release")
            .wait_with_output()
            .await
            .unwrap();
        assert!(release.status.success(), "migration up");
        let processes = vec![
            (start("worker", &["scheduler"], "scheduler"), "scheduler"),
            (start("worker", &["run"], "worker"), "worker"),
            (start("api", &[], "web"), "web"),
        ];
        testkit::api_ready(&addr).await;
        Self {
            addr,
            processes,
            logs,
        }
    }

    /// SIGTERM each process (scheduler, worker, web); each must exit 0 within 20 s.
    pub async fn stop(mut self) {
        for (mut child, what) in std::mem::take(&mut self.processes) {
            let exit = testkit::sigterm(&mut child, Duration::from_secs(20)).await;
            assert!(exit.success(), "{what} exited with {exit}");
        }
    }
}

/// What [`every_flow`] leaves for a caller's own checks.
pub struct Flowed {
    /// The anonymous visitors (12), each with 6 views of community `community`.
    pub fingerprints: Vec<String>,
    /// The community page's id.
    pub community: Uuid,
    /// The visitor erased at the end (the last fingerprint).
    pub erased: String,
}

/// Run every flow against the fleet serving `addr` (bearer `token`), whose database is `db`,
/// with a short `ANON_SESSION_TIMEOUT_SECONDS` ([`Fleet`]) and the idle sweeps every second;
/// `during_views` runs alongside the anonymous views (a fault to inject under load). Names come
/// from `redis` (tokens, so parallel tests never share a key).
pub async fn every_flow(
    addr: &str,
    token: &str,
    db: &TestDb,
    redis: &TestRedis,
    during_views: impl Future<Output = ()>,
) -> Flowed {
    let community = Uuid::new_v4();
    // Anonymous visitors, 6 views each: persist (5th view), finalize (after the timeout), the
    // buffered views flushed; a community page on each.
    let page = format!("/p/{}", redis.token("page"));
    let fps: Vec<String> = (0..12).map(|i| redis.token(&format!("fp{i}"))).collect();
    let views = async {
        let mut slowest = Vec::new();
        for n in 0..6 {
            let views = fps.iter().map(|fp| {
                let body = json!({"fingerprint": fp, "url": format!("{page}/{n}"),
                    "community_id": community, "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"});
                async move {
                    let started = std::time::Instant::now();
                    post(addr, token, "/v1/track/pageview", body).await;
                    started.elapsed()
                }
            });
            let took = futures::future::join_all(views).await;
            slowest.push(took.into_iter().max().unwrap_or_default());
        }
        slowest
    };
    let (slowest, ()) = tokio::join!(views, during_views);
    println!("slowest view of each round: {slowest:?}");
    // Every visitor is on the community page now.
    let (status, visitors) = http(
        addr,
        "GET",
        &format!("/v1/communities/{community}/visitors"),
        Some(token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{visitors}");
    assert_eq!(visitors["anonymous_visitors"], 12, "{visitors}");
    // Signed-in users: login (enhance_session_async), a view, an event, a sign-up that links
    // an anonymous visitor (link_anonymous_conversion), logout.
    let mut users = Vec::new();
    for (i, fp) in fps.iter().take(4).enumerate() {
        let user = Uuid::new_v4();
        redis.track(&user.to_string());
        let s = post(
            addr,
            token,
            "/v1/sessions",
            json!({"user_id": user, "username": format!("u{i}-{user}"),
            "user_agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15", "ip": "203.0.113.9"}),
        )
        .await;
        let session = s["session_id"].as_str().unwrap().to_owned();
        redis.track(s["hashed_id"].as_str().unwrap());
        post(
            addr,
            token,
            "/v1/track/pageview",
            json!({"fingerprint": fp, "url": format!("{page}/signed-in"),
            "user_id": user, "session_id": session}),
        )
        .await;
        post(
            addr,
            token,
            "/v1/events",
            json!({"user_id": user, "event_type": "fleet_flow"}),
        )
        .await;
        post(
            addr,
            token,
            "/v1/conversions",
            json!({"user_id": user, "fingerprint": fp}),
        )
        .await;
        users.push((user, session));
    }
    let (_, session) = users.pop().unwrap();
    let (status, body) = http(
        addr,
        "DELETE",
        &format!("/v1/sessions/{session}"),
        Some(token),
        None,
    )
    .await
    .unwrap();
    assert!((200..300).contains(&status), "logout: {status} {body}");

    // Every anonymous session written and ended, every view a row.
    let visitors = fps.len();
    // On a timeout the message says which: a visitor's views split into two sessions (more
    // rows than visitors), or a session left open.
    let finalized = testkit::within(Duration::from_secs(60), || {
        let db = db.conn.clone();
        async move {
            let rows = anonymous_session::Entity::find().all(&db).await.ok()?;
            (rows.len() == visitors && rows.iter().all(|r| !r.is_active)).then_some(rows)
        }
    })
    .await;
    let Some(sessions) = finalized else {
        let rows = anonymous_session::Entity::find()
            .all(&db.conn)
            .await
            .unwrap_or_default();
        let seen: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    &r.device_fingerprint,
                    r.pages_visited,
                    r.is_active,
                    r.session_start,
                    r.last_activity,
                )
            })
            .collect();
        let (_, queues) = http(addr, "GET", "/v1/queues", Some(token), None)
            .await
            .unwrap_or_default();
        panic!(
            "timed out waiting for every session finalized: {} rows for {visitors} visitors, \
             {} active; slowest view of each round {slowest:?}; queues {queues}; {seen:?}",
            rows.len(),
            rows.iter().filter(|r| r.is_active).count(),
        );
    };
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
        addr,
        token,
        "/v1/jobs/aggregate_page_analytics",
        json!({"date": today}),
    )
    .await;
    post(
        addr,
        token,
        "/v1/jobs/cleanup_old_anonymous_data",
        json!({}),
    )
    .await;
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
        let (status, body) = http(addr, "GET", route, Some(token), None).await.unwrap();
        assert_eq!(status, 200, "{route}: {body}");
    }
    // Erasure: the visitor's rows go.
    let gone = &fps[11];
    let (status, body) = http(
        addr,
        "DELETE",
        &format!("/v1/anonymous/{gone}"),
        Some(token),
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

    // Every queue ran what it was given (nothing waiting, running or scheduled: a job that
    // keeps failing waits in scheduled), nothing died, and the sweeps ran.
    let queues = eventually(Duration::from_secs(30), "every queue idle", || async move {
        let (_, b) = http(addr, "GET", "/v1/queues", Some(token), None)
            .await
            .ok()?;
        let queues = b["queues"].as_array()?.clone();
        queues
            .iter()
            .all(|q| q["queued"] == 0 && q["running"] == 0 && q["scheduled"] == 0)
            .then_some(queues)
    })
    .await;
    for q in &queues {
        assert_eq!(q["dead"], 0, "{q}");
        if !q["name"].as_str().unwrap().starts_with("celery.") {
            assert!(q["done"].as_u64().unwrap() >= 1, "{} ran: {q}", q["name"]);
        }
    }

    Flowed {
        fingerprints: fps.clone(),
        community,
        erased: gone.clone(),
    }
}
