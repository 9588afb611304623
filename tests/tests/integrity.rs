//! Issue 12's findings at the API and fleet level, against the real Redis and PostgreSQL: client
//! values that used to reach other keys, views half applied, sessions lost to a late finalize,
//! views lost in the same instant, erasure undone by a job in flight, unbounded timestamps and
//! path floods. Each test checks effects (keys, rows, counts), not what the code says it did.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::time::Duration;

use chrono::Utc;
use domain::keys::Fingerprint;
use entity::{anonymous_page_view, anonymous_session, page_analytics};
use redis::AsyncCommands;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use testkit::{PrivateRedis, TestDb, eventually, service_env, spawn_worker};
use tests::{InProcessWorker, TestApi, TestRedis, job_context};
use worker::jobs::{AggregatePageAnalytics, Job, PersistAnonymousSession};

async fn view(api: &TestApi, body: serde_json::Value) -> (u16, serde_json::Value) {
    api.call("POST", "/v1/track/pageview", Some(&body)).await
}

/// Every key of the test's visitor and page, with its type: a snapshot to compare.
async fn snapshot(redis: &TestRedis, patterns: &[String]) -> Vec<(String, String, String)> {
    let mut conn = redis.conn.clone();
    let mut out = Vec::new();
    for p in patterns {
        let mut keys: Vec<String> = conn.keys(p).await.unwrap();
        keys.sort();
        for k in keys {
            let t: String = redis::cmd("TYPE")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap();
            let dump: Option<Vec<u8>> = redis::cmd("DUMP")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&dump.unwrap_or_default(), &mut h);
            out.push((k, t, format!("{:x}", std::hash::Hasher::finish(&h))));
        }
    }
    out
}

/// `Some` once `n` anonymous sessions are ended in the database.
async fn sessions_ended(db: sea_orm::DatabaseConnection, n: u64) -> Option<()> {
    let ended = anonymous_session::Entity::find()
        .filter(anonymous_session::Column::IsActive.eq(false))
        .count(&db)
        .await
        .ok()?;
    (ended == n).then_some(())
}

/// Finding 1: a path with `:` is its own page, not another key of another page; a fingerprint
/// with `:` is refused, so it cannot name another visitor's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_values_cannot_reach_other_keys() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let ctx = job_context(&db, &redis, &[]);
    let page = format!("/{}", redis.token("x"));
    let (a, b) = (redis.token("fp"), redis.token("fp"));
    // `/x:visitors` first: on main it made `/x`'s counters key a set.
    let (s, r) = view(
        &api,
        json!({"fingerprint": a, "url": format!("{page}:visitors")}),
    )
    .await;
    assert_eq!(s / 100, 2, "{s} {r}");
    let (s, r) = view(&api, json!({"fingerprint": b, "url": page})).await;
    assert_eq!(s / 100, 2, "{s} {r}");
    let (s, r) = view(
        &api,
        json!({"fingerprint": b, "url": format!("{page}%3Avisitors")}),
    )
    .await;
    assert_eq!(s / 100, 2, "{s} {r}");
    let day = Utc::now().date_naive();
    AggregatePageAnalytics { date: Some(day) }
        .run(&ctx)
        .await
        .unwrap();
    for (path, views) in [
        (page.clone(), 1),
        (format!("{page}:visitors"), 1),
        (format!("{page}%3Avisitors"), 1),
    ] {
        let row = page_analytics::Entity::find()
            .filter(page_analytics::Column::Date.eq(day))
            .filter(page_analytics::Column::UrlPath.eq(path.as_str()))
            .one(&db.conn)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no row for {path}"));
        assert_eq!((row.total_views, row.unique_visitors), (views, 1), "{path}");
    }
    // A fingerprint with `:` names nothing: refused at the edge, in a body or a path.
    let victim = redis.token("vic");
    let v = format!("/{}", redis.token("v"));
    view(&api, json!({"fingerprint": victim, "url": v})).await;
    let buffered = || async {
        let n: i64 = redis
            .conn
            .clone()
            .llen(format!("anon_session:{victim}:views"))
            .await
            .unwrap();
        n
    };
    assert_eq!(buffered().await, 1);
    let (s, r) = api
        .call("DELETE", &format!("/v1/anonymous/{victim}:views"), None)
        .await;
    assert_eq!(
        (s, r["error"]["field"].as_str()),
        (422, Some("fingerprint")),
        "{r}"
    );
    assert_eq!(buffered().await, 1);
    let (s, r) = view(
        &api,
        json!({"fingerprint": format!("{victim}:views"), "url": v}),
    )
    .await;
    assert_eq!(
        (s, r["error"]["field"].as_str()),
        (422, Some("fingerprint")),
        "{r}"
    );
    let (s, _) = view(&api, json!({"fingerprint": victim, "url": v})).await;
    assert_eq!(s / 100, 2);
}

/// Finding 2: a view that fails in Redis changes nothing; its retry counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_view_leaves_nothing_and_its_retry_counts_once() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let ctx = job_context(&db, &redis, &[]);
    let page = format!("/{}", redis.token("p"));
    let fp = redis.token("fp");
    let day = Utc::now().date_naive();
    // Another producer left a wrong-typed key at the last step the view writes (the community
    // hash of the page's community).
    let community = uuid::Uuid::new_v4();
    redis.track(&community.to_string());
    let bad = format!("community:{community}:visitors:seen");
    let _: () = redis.conn.clone().set(&bad, "oops").await.unwrap();
    let patterns = vec![
        format!("*{fp}*"),
        format!("pageviews:{day}:{page}*"),
        format!("community:{community}*"),
        format!("{}*", ctx.settings.namespace),
    ];
    let before = snapshot(&redis, &patterns).await;
    let body = json!({"fingerprint": fp, "url": page, "community_id": community});
    let (s, r) = view(&api, body.clone()).await;
    assert!(s >= 500, "{s} {r}");
    assert_eq!(
        snapshot(&redis, &patterns).await,
        before,
        "a failed view changed Redis"
    );
    // A value a write could only discover halfway: the page's sketch holds a plain string.
    let _: () = redis.conn.clone().del(&bad).await.unwrap();
    let sketch = domain::keys::pageview_sketch_key(day, &page);
    let _: () = redis
        .conn
        .clone()
        .set(&sketch, "not a HyperLogLog")
        .await
        .unwrap();
    let before = snapshot(&redis, &patterns).await;
    let (s, r) = view(&api, body.clone()).await;
    assert!(s >= 500, "{s} {r}");
    assert_eq!(
        snapshot(&redis, &patterns).await,
        before,
        "a failed view changed Redis"
    );
    let _: () = redis.conn.clone().del(&sketch).await.unwrap();
    let before = snapshot(&redis, &patterns).await;
    // A signed-in view of a session nobody knows is answered 404 and counts nothing.
    let (s, r) = view(
        &api,
        json!({"fingerprint": fp, "url": page, "user_id": uuid::Uuid::new_v4(),
               "session_id": redis.token("sid")}),
    )
    .await;
    assert_eq!(s, 404, "{r}");
    assert_eq!(
        snapshot(&redis, &patterns).await,
        before,
        "a 404 view changed Redis"
    );
    // Fixed, the client retries: one view, one session, one finalize.
    let (s, r) = view(&api, body).await;
    assert_eq!(s / 100, 2, "{s} {r}");
    let counters: std::collections::HashMap<String, String> = redis
        .conn
        .clone()
        .hgetall(domain::keys::pageview_counters_key(day, &page))
        .await
        .unwrap();
    assert_eq!(counters.get("anonymous").map(String::as_str), Some("1"));
    let finalize = ctx.queues.get("finalize_anonymous_session").unwrap();
    assert_eq!(finalize.stats().await.unwrap().scheduled, 1);
}

/// Findings 3 and 6: with the workers down for several session timeouts, every short session
/// (never persisted) and every view (two in the same second) reaches the database once the
/// workers are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_workers_down_for_several_timeouts() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let env = [("ANON_SESSION_TIMEOUT_SECONDS", "1"), ("CELERY_QUEUES", "")];
    let api = TestApi::start(&db, &redis, &env).await;
    let at = (Utc::now() - chrono::Duration::seconds(30)).to_rfc3339();
    let fps: Vec<String> = (0..10).map(|_| redis.token("fp")).collect();
    let p = format!("/{}", redis.token("s"));
    for fp in &fps {
        // Three views, two of them in the same instant (the web tier sends whole seconds).
        for (i, ts) in [(0, at.clone()), (1, at.clone())] {
            let (s, r) = view(
                &api,
                json!({"fingerprint": fp, "url": format!("{p}/{i}"), "timestamp": ts}),
            )
            .await;
            assert_eq!(s / 100, 2, "{s} {r}");
        }
        view(&api, json!({"fingerprint": fp, "url": format!("{p}/2")})).await;
    }
    // No worker for four session timeouts: every document expires.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let live: Vec<Option<String>> = {
        let keys: Vec<String> = fps.iter().map(|f| format!("anon_session:{f}")).collect();
        redis.conn.clone().mget(keys).await.unwrap()
    };
    assert!(live.iter().all(Option::is_none));
    let db_conn = db.conn.clone();
    // Its own runtime and connections, as the binary makes them.
    let settings = tests::settings(&db, &redis, &env);
    InProcessWorker::connect(settings)
        .run_until(
            Duration::from_secs(60),
            "every session written and ended",
            || sessions_ended(db_conn.clone(), 10),
        )
        .await;
    let views = anonymous_page_view::Entity::find()
        .count(&db.conn)
        .await
        .unwrap();
    assert_eq!(views, 30);
    for row in anonymous_session::Entity::find()
        .all(&db.conn)
        .await
        .unwrap()
    {
        assert_eq!(row.pages_visited, 3);
    }
}

/// Finding 7: a job that read the visitor's data before the erasure and writes after it undoes
/// its writes; one that reads after (a new visit) is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_is_not_undone_by_a_job_in_flight() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let ctx = job_context(&db, &redis, &[]);
    let fp = redis.token("fp");
    let fingerprint = Fingerprint::parse(&fp).unwrap();
    let p = format!("/{}", redis.token("e"));
    for i in 0..3 {
        view(&api, json!({"fingerprint": fp, "url": format!("{p}/{i}")})).await;
    }
    // The job's steps, as `persist_anonymous_session` runs them, with the erasure in between.
    let snap = ctx.reads.session(&fingerprint).await.unwrap();
    let doc = snap.doc.clone().unwrap();
    let (s, r) = api
        .call("DELETE", &format!("/v1/anonymous/{fp}"), None)
        .await;
    assert_eq!(s / 100, 2, "{s} {r}");
    ctx.sessions.upsert(doc.clone()).await.unwrap();
    assert_eq!(
        anonymous_session::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        1
    );
    let undone = worker::store::undo_if_erased(
        &ctx.db,
        &ctx.reads,
        &fingerprint,
        doc.session_id,
        snap.now_ms,
    )
    .await
    .unwrap();
    assert!(undone);
    assert_eq!(
        anonymous_session::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        0
    );
    // The visitor comes back after the erasure: a new session, persisted and kept.
    for i in 0..5 {
        view(&api, json!({"fingerprint": fp, "url": format!("{p}/{i}")})).await;
    }
    PersistAnonymousSession {
        fingerprint: fingerprint.clone(),
    }
    .run(&ctx)
    .await
    .unwrap();
    assert_eq!(
        anonymous_session::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        1
    );
    // The persist job the fifth view enqueued is named after the session and carries the
    // fingerprint; erasure removes it.
    let (s, r) = api
        .call("DELETE", &format!("/v1/anonymous/{fp}"), None)
        .await;
    assert_eq!(s / 100, 2, "{s} {r}");
    assert!(r["jobs"].as_u64().unwrap() >= 2, "{r}");
    for job in domain::registry::JOBS {
        let q = ctx.queues.get(job.name).unwrap();
        let left: Vec<String> = redis.conn.clone().hvals(&q.keys().jobs).await.unwrap();
        assert!(
            left.iter().all(|v| !v.contains(fp.as_str())),
            "{}: {left:?}",
            job.name
        );
    }
}

/// Finding 8: client timestamps are accepted within a window both ways, and never decide when a
/// job runs (the finalize is due on Redis's clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_timestamps_are_bounded_and_never_schedule_jobs() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[("ANON_SESSION_TIMEOUT_SECONDS", "600")]).await;
    let ctx = job_context(&db, &redis, &[("ANON_SESSION_TIMEOUT_SECONDS", "600")]);
    let fp = redis.token("fp");
    let t = format!("/{}", redis.token("t"));
    let old = (Utc::now() - chrono::Duration::hours(25)).to_rfc3339();
    let (s, r) = view(&api, json!({"fingerprint": fp, "url": t, "timestamp": old})).await;
    assert_eq!(
        (s, r["error"]["field"].as_str()),
        (422, Some("timestamp")),
        "{r}"
    );
    let ahead = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (s, r) = view(
        &api,
        json!({"fingerprint": fp, "url": t, "timestamp": ahead}),
    )
    .await;
    assert_eq!(
        (s, r["error"]["field"].as_str()),
        (422, Some("timestamp")),
        "{r}"
    );
    // Twenty hours ago is accepted; the session's finalize is still due a timeout from now.
    let recent = (Utc::now() - chrono::Duration::hours(20)).to_rfc3339();
    let (s, r) = view(
        &api,
        json!({"fingerprint": fp, "url": t, "timestamp": recent}),
    )
    .await;
    assert_eq!(s / 100, 2, "{s} {r}");
    let q = ctx.queues.get("finalize_anonymous_session").unwrap();
    let due: Vec<(String, f64)> = redis
        .conn
        .clone()
        .zrange_withscores(&q.keys().scheduled, 0, -1)
        .await
        .unwrap();
    let (secs, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut redis.conn.clone())
        .await
        .unwrap();
    let redis_now = secs * 1000 + micros / 1000;
    assert_eq!(due.len(), 1);
    let wait_ms = due[0].1 as i64 - redis_now;
    assert!(
        (595_000..=602_000).contains(&wait_ms),
        "finalize due in {wait_ms} ms"
    );
}

/// A flood of distinct paths costs a bounded number of keys: past the day's cap, new paths count
/// under `(other)`. On a Redis of its own: the day's path set is shared by every test on the
/// common Redis, and another test's cleanup taking a path out of it would give this flood room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_flood_is_capped() {
    let db = TestDb::postgres().await;
    let server = PrivateRedis::start(false);
    let env = [("PAGEVIEW_MAX_PATHS_PER_DAY", "40")];
    let api = TestApi::start_on(&db, &server.url(), &env).await;
    let conn = api::connect_redis(&server.url()).await.unwrap();
    let mut vars = service_env_for(&db, &server.url());
    vars.insert("PAGEVIEW_MAX_PATHS_PER_DAY".into(), "40".into());
    let settings = domain::config::Settings::from_vars(&vars).unwrap();
    let ctx = worker::context::JobContext::new(db.conn.clone(), conn.clone(), settings, None);
    let day = Utc::now().date_naive();
    for i in 0..200 {
        let (s, r) = view(
            &api,
            json!({"fingerprint": format!("fp-{i}"), "url": format!("/flood/{i}")}),
        )
        .await;
        assert_eq!(s / 100, 2, "{s} {r}");
    }
    let mut conn = conn;
    let paths: Vec<String> = conn
        .smembers(domain::keys::pageview_paths_key(day))
        .await
        .unwrap();
    let flooded = paths.iter().filter(|p| p.starts_with("/flood/")).count();
    assert_eq!(flooded, 40, "the flood's paths counted: the cap, no more");
    let mine: Vec<String> = conn
        .keys(format!("pageviews:{day}:/flood/*"))
        .await
        .unwrap();
    assert!(mine.len() <= 2 * 40, "{} keys for the flood", mine.len());
    let other: std::collections::HashMap<String, i64> = conn
        .hgetall(domain::keys::pageview_counters_key(
            day,
            domain::keys::OVERFLOW_PATH,
        ))
        .await
        .unwrap();
    assert_eq!(other.get("anonymous").copied(), Some(160), "{other:?}");
    AggregatePageAnalytics { date: Some(day) }
        .run(&ctx)
        .await
        .unwrap();
    let row = page_analytics::Entity::find()
        .filter(page_analytics::Column::UrlPath.eq(domain::keys::OVERFLOW_PATH))
        .one(&db.conn)
        .await
        .unwrap();
    assert!(row.is_some_and(|r| r.anonymous_views == 160));
}

/// The variables for a process of this test on `db` and the Redis at `redis_url`.
fn service_env_for(db: &TestDb, redis_url: &str) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        ("DATABASE_URL".to_owned(), db.url.clone()),
        ("REDIS_URL".to_owned(), redis_url.to_owned()),
        ("CELERIAC_NAMESPACE".to_owned(), "integrity".to_owned()),
        ("CELERY_QUEUES".to_owned(), String::new()),
    ])
}

/// A flood of distinct visitors on one page costs a bounded set: past the cap, unique visitors
/// go into a fixed-size sketch, and the day's count stays close to the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_flood_is_capped_and_still_counted() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let env = [("PAGEVIEW_MAX_EXACT_VISITORS", "50")];
    let api = TestApi::start(&db, &redis, &env).await;
    let ctx = job_context(&db, &redis, &env);
    let page = format!("/{}", redis.token("crowd"));
    let day = Utc::now().date_naive();
    let fps: Vec<String> = (0..300).map(|_| redis.token("fp")).collect();
    for round in 0..2 {
        // The second round is the same visitors again: nobody counts twice.
        for fp in &fps {
            let (s, r) = view(&api, json!({"fingerprint": fp, "url": page})).await;
            assert_eq!(s / 100, 2, "round {round}: {s} {r}");
        }
    }
    let mut conn = redis.conn.clone();
    let exact: i64 = conn
        .scard(domain::keys::pageview_visitors_key(day, &page))
        .await
        .unwrap();
    assert_eq!(exact, 50);
    let sketch: Vec<u8> = conn
        .get(domain::keys::pageview_sketch_key(day, &page))
        .await
        .unwrap();
    assert!(sketch.len() <= 12 * 1024 + 16, "{} bytes", sketch.len());
    AggregatePageAnalytics { date: Some(day) }
        .run(&ctx)
        .await
        .unwrap();
    let row = page_analytics::Entity::find()
        .filter(page_analytics::Column::UrlPath.eq(page.as_str()))
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.total_views, 600);
    assert!(
        (291..=309).contains(&row.unique_visitors),
        "{}",
        row.unique_visitors
    );
}

/// A Redis at `maxmemory` refuses a page view whole (503, retry later): nothing half-written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_refuses_a_view_whole() {
    let db = TestDb::postgres().await;
    let server = PrivateRedis::start(false);
    let api = TestApi::start_on(&db, &server.url(), &[]).await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // Fill it past a small maxmemory (noeviction: writes are refused).
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = conn.set("ballast", "x".repeat(4 << 20)).await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("2mb")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (s, r) = view(&api, json!({"fingerprint": "full", "url": "/full"})).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{r}"
    );
    let mut keys: Vec<String> = conn.keys("*").await.unwrap();
    keys.sort();
    assert_eq!(keys, ["ballast"]);
    // Room again: the retry is counted once.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (s, r) = view(&api, json!({"fingerprint": "full", "url": "/full"})).await;
    assert_eq!(s / 100, 2, "{s} {r}");
    let counted: Option<String> = conn
        .hget(
            domain::keys::pageview_counters_key(Utc::now().date_naive(), "/full"),
            "anonymous",
        )
        .await
        .unwrap();
    assert_eq!(counted.as_deref(), Some("1"));
}

/// Finding 4 for sessions: the real `worker` binary on a wall clock 5 s off Redis's (libfaketime)
/// ends every session once its document expired on Redis's clock: not while views still arrive
/// (a worker ahead), not never (a worker behind). Each session: 6 views 1.5 s apart with a 3 s
/// timeout, so the session outlives its first finalize's due time (first view + 4 s): a finalize
/// that trusted the document's time on a clock 5 s ahead would end it mid-visit. (With a 2 s
/// timeout a loaded machine, sending eight visitors' views per step, once let a gap pass it.)
async fn sessions_end_on_redis_time_under_skew(skew: &str) {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let env = [("ANON_SESSION_TIMEOUT_SECONDS", "3"), ("CELERY_QUEUES", "")];
    let api = TestApi::start(&db, &redis, &env).await;
    let mut vars = service_env(&db, &redis);
    vars.extend([
        ("CELERY_QUEUES".into(), String::new()),
        ("ANON_SESSION_TIMEOUT_SECONDS".into(), "3".into()),
        (
            "LD_PRELOAD".into(),
            testkit::libfaketime().display().to_string(),
        ),
        ("FAKETIME".into(), skew.into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]);
    let mut worker = spawn_worker(vars);
    let fps: Vec<String> = (0..8).map(|_| redis.token("fp")).collect();
    let p = format!("/{}", redis.token("skew"));
    for step in 0..6 {
        for fp in &fps {
            let (s, r) = view(
                &api,
                json!({"fingerprint": fp, "url": format!("{p}/{step}")}),
            )
            .await;
            assert_eq!(s / 100, 2, "{s} {r}");
        }
        if step < 5 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
    let db_conn = db.conn.clone();
    eventually(Duration::from_secs(60), "every session ended", || {
        sessions_ended(db_conn.clone(), 8)
    })
    .await;
    let _ = worker.start_kill();
    let _ = worker.wait().await;
    for row in anonymous_session::Entity::find()
        .all(&db.conn)
        .await
        .unwrap()
    {
        assert_eq!(row.pages_visited, 6, "ended mid-visit: {row:?}");
        assert_eq!(row.session_end, Some(row.last_activity));
        let views = anonymous_page_view::Entity::find()
            .filter(anonymous_page_view::Column::SessionId.eq(row.id))
            .count(&db.conn)
            .await
            .unwrap();
        assert_eq!(views, 6);
    }
    assert_eq!(
        anonymous_session::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        8
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_on_redis_time_with_the_worker_clock_5s_behind() {
    sessions_end_on_redis_time_under_skew("-5s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_on_redis_time_with_the_worker_clock_5s_ahead() {
    sessions_end_on_redis_time_under_skew("+5s").await;
}

/// Jobs' reads of their visitors go out together in one transaction (`VisitorReads`): each job
/// gets its own visitor's document, views count and erasure mark; a key of the wrong type fails
/// only its own job's read; a Redis that lost its scripts (a restart) still answers; and when
/// Redis is gone every read fails, none hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_reads_answer_each_job_its_own_visitor() {
    // A Redis of its own: the test flushes its scripts.
    let mut server = PrivateRedis::start(false);
    let conn = domain::conn::connect_single(&server.url()).await.unwrap();
    let reads = worker::store::VisitorReads::spawn(domain::conn::RedisConn::Single(conn.clone()));
    let fps: Vec<Fingerprint> = (0..300)
        .map(|i| Fingerprint::parse(&format!("reads-{i}")).unwrap())
        .collect();
    for (i, fp) in fps.iter().enumerate() {
        if i % 3 != 0 {
            tests::put_anon_session(&conn, fp.as_str(), i as u32).await;
        }
        let mut c = conn.clone();
        if i % 5 == 0 {
            let () = c
                .set(domain::keys::anon_erased_key(fp), i as i64)
                .await
                .unwrap();
        }
        for _ in 0..i % 7 {
            let () = c
                .rpush(domain::keys::anon_views_key(fp), "{}")
                .await
                .unwrap();
        }
    }
    // One visitor's document is not a string (another producer wrote it): its read fails.
    let odd = Fingerprint::parse("reads-odd").unwrap();
    let () = conn
        .clone()
        .rpush(domain::keys::anon_session_key(&odd), "x")
        .await
        .unwrap();
    for round in ["scripts loaded", "scripts flushed"] {
        if round == "scripts flushed" {
            let () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut conn.clone())
                .await
                .unwrap();
        }
        let odd_read = reads.session(&odd);
        let (answers, odd_read) = tokio::join!(
            futures::future::join_all(fps.iter().map(|fp| {
                let reads = reads.clone();
                async move {
                    (
                        reads.session(fp).await.unwrap(),
                        reads.erased_at(fp).await.unwrap(),
                    )
                }
            })),
            odd_read
        );
        assert!(odd_read.is_err(), "{round}: a list is no document");
        for (i, (snap, erased)) in answers.into_iter().enumerate() {
            let doc = snap.doc.map(|d| (d.device_fingerprint, d.pages_visited));
            let want = (i % 3 != 0).then(|| (fps[i].as_str().to_owned(), i as i32));
            assert_eq!(doc, want, "{round}: visitor {i}'s document");
            assert_eq!(
                snap.buffered,
                (i % 7) as i64,
                "{round}: visitor {i}'s views"
            );
            assert_eq!(
                erased,
                (i % 5 == 0).then_some(i as i64),
                "{round}: visitor {i}'s mark"
            );
            assert!(snap.now_ms > 0);
        }
    }
    server.kill();
    let failed = tokio::time::timeout(
        Duration::from_secs(30),
        futures::future::join_all(fps.iter().take(50).map(|fp| reads.session(fp))),
    )
    .await
    .expect("reads of a gone Redis fail, they do not hang");
    assert!(failed.iter().all(Result::is_err));
}
