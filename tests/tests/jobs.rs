//! Every job against the real PostgreSQL and Redis: run it, run it again, run two at once, and the
//! rows are the same.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use domain::args::JobArgs;
use domain::keys::Fingerprint;
use domain::user_agent::parse_user_agent;
use entity::{
    anonymous_page_view, anonymous_session, page_analytics, page_view_log, user_event,
    user_profile, user_session,
};
use redis::AsyncCommands;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::json;
use testkit::{TestDb, eventually};
use tests::{InProcessWorker, TestApi, TestRedis, job_context};
use uuid::Uuid;
use worker::context::JobContext;
use worker::jobs::*;

/// A live session document as the API writes it, with its TTL (`ttl_s`; the session timeout).
async fn put_doc(
    ctx: &JobContext,
    fp: &str,
    session_id: Uuid,
    pages: i32,
    last_activity: chrono::DateTime<Utc>,
    ttl_s: u64,
) {
    let _: () = ctx
        .redis
        .clone()
        .set_ex(
            format!("anon_session:{fp}"),
            session_doc(fp, session_id, pages, last_activity).to_string(),
            ttl_s,
        )
        .await
        .unwrap();
}

fn session_doc(
    fp: &str,
    session_id: Uuid,
    pages: i32,
    last_activity: chrono::DateTime<Utc>,
) -> serde_json::Value {
    json!({
        "session_id": session_id, "device_fingerprint": fp,
        "started_at": (last_activity - ChronoDuration::minutes(3)).to_rfc3339(),
        "last_activity": last_activity.to_rfc3339(), "pages_visited": pages,
        "current_page": "/c/montreal/", "landing_page": "/search?q=events",
        "referrer": "https://google.com", "is_active": true,
        "ip_address": "203.0.113.45", "user_agent": "Mozilla/5.0", "is_bot": false
    })
}

/// Buffer views 1..=pages of a session as the page-view script does (the first carries the
/// session's first document).
async fn buffer_views(
    ctx: &JobContext,
    fp: &str,
    session_id: Uuid,
    pages: i32,
    last: chrono::DateTime<Utc>,
) {
    let first = session_doc(
        fp,
        session_id,
        1,
        last - ChronoDuration::seconds(i64::from(pages)),
    );
    for n in 1..=pages {
        let mut v = json!({
            "session_id": session_id, "n": n, "url": format!("/p/{n}"), "url_name": "",
            "page_type": "page", "referrer": "",
            // Two views share each second: one row each all the same.
            "viewed_at": (last - ChronoDuration::seconds(i64::from((pages - n) / 2))).to_rfc3339(),
        });
        if n == 1 {
            v["session"] = first.clone();
        }
        let _: () = ctx
            .redis
            .clone()
            .rpush(format!("anon_session:{fp}:views"), v.to_string())
            .await
            .unwrap();
    }
}

fn fpr(s: &str) -> Fingerprint {
    Fingerprint::parse(s).unwrap()
}

/// Push `n` persist jobs for fresh visitors (nothing to persist: each succeeds at once).
async fn push_persist(ctx: &JobContext, redis: &TestRedis, n: usize) {
    for _ in 0..n {
        ctx.queues
            .push(
                &PersistAnonymousSession {
                    fingerprint: fpr(&redis.token("fp")),
                },
                queue::When::Now,
            )
            .await
            .unwrap();
    }
}

async fn twice_and_concurrently<J: Job + Clone>(ctx: &JobContext, job: J) {
    job.clone().run(ctx).await.unwrap();
    job.clone().run(ctx).await.unwrap();
    let (a, b) = tokio::join!(job.clone().run(ctx), job.run(ctx));
    a.unwrap();
    b.unwrap();
}

#[tokio::test]
async fn persist_anonymous_session_upserts_one_row_and_never_goes_backwards() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[]);
    let fp = redis.token("fp");
    let sid = Uuid::new_v4();
    put_doc(&ctx, &fp, sid, 10, Utc::now(), 1800).await;
    twice_and_concurrently(
        &ctx,
        PersistAnonymousSession {
            fingerprint: fpr(&fp),
        },
    )
    .await;
    let row = anonymous_session::Entity::find_by_id(sid)
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.pages_visited, 10);
    assert_eq!(row.ip_address.as_deref(), Some("203.0.113.45"));
    assert_eq!(row.landing_page, "/search?q=events");
    assert!(row.is_active);
    // An older document replayed late does not move the row backwards.
    put_doc(
        &ctx,
        &fp,
        sid,
        5,
        Utc::now() - ChronoDuration::minutes(10),
        1800,
    )
    .await;
    PersistAnonymousSession {
        fingerprint: fpr(&fp),
    }
    .run(&ctx)
    .await
    .unwrap();
    let after = anonymous_session::Entity::find_by_id(sid)
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (after.pages_visited, after.last_activity),
        (10, row.last_activity)
    );
    assert_eq!(
        anonymous_session::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        1
    );
    // A missing key is a no-op.
    PersistAnonymousSession {
        fingerprint: fpr(&redis.token("gone")),
    }
    .run(&ctx)
    .await
    .unwrap();
}

#[tokio::test]
async fn persist_anonymous_session_works_on_sqlite_too() {
    let (db, redis) = (TestDb::sqlite().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[]);
    let fp = redis.token("fp");
    let sid = Uuid::new_v4();
    put_doc(&ctx, &fp, sid, 3, Utc::now(), 1800).await;
    twice_and_concurrently(
        &ctx,
        PersistAnonymousSession {
            fingerprint: fpr(&fp),
        },
    )
    .await;
    let row = anonymous_session::Entity::find_by_id(sid)
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.pages_visited, 3);
}

/// Finding 3: a finalize that runs after the session's document expired, and after the session
/// was never persisted (fewer than 5 pages), still writes the session and every view.
async fn late_finalize_writes_everything(db: TestDb) {
    let redis = TestRedis::new().await;
    let ctx = job_context(&db, &redis, &[("ANON_SESSION_TIMEOUT_SECONDS", "60")]);
    let fp = redis.token("fp");
    let sid = Uuid::new_v4();
    let last = Utc::now() - ChronoDuration::hours(3);
    // The document is gone (expired hours ago); only the buffer is left.
    buffer_views(&ctx, &fp, sid, 4, last).await;
    twice_and_concurrently(
        &ctx,
        FinalizeAnonymousSession {
            fingerprint: fpr(&fp),
            session_id: sid,
        },
    )
    .await;
    let row = anonymous_session::Entity::find_by_id(sid)
        .one(&db.conn)
        .await
        .unwrap()
        .expect("the session reached the database");
    assert!(!row.is_active);
    assert_eq!(row.pages_visited, 4);
    assert_eq!(row.landing_page, "/search?q=events");
    assert_eq!(row.last_activity.timestamp(), last.timestamp());
    assert_eq!(
        row.session_end.map(|t| t.timestamp()),
        Some(last.timestamp())
    );
    // Finding 6: four views, two per second: four rows.
    let views = anonymous_page_view::Entity::find()
        .filter(anonymous_page_view::Column::SessionId.eq(sid))
        .order_by_asc(anonymous_page_view::Column::ViewNumber)
        .all(&db.conn)
        .await
        .unwrap();
    let numbers: Vec<_> = views.iter().map(|v| v.view_number).collect();
    assert_eq!(numbers, [Some(1), Some(2), Some(3), Some(4)]);
    let buffered: i64 = ctx
        .redis
        .clone()
        .llen(format!("anon_session:{fp}:views"))
        .await
        .unwrap();
    assert_eq!(buffered, 0);
}

#[tokio::test]
async fn a_late_finalize_writes_the_session_and_every_view_on_postgres() {
    late_finalize_writes_everything(TestDb::postgres().await).await;
}

#[tokio::test]
async fn a_late_finalize_writes_the_session_and_every_view_on_sqlite() {
    late_finalize_writes_everything(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn finalize_snoozes_while_the_document_lives_and_ends_the_session_after() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[("ANON_SESSION_TIMEOUT_SECONDS", "60")]);
    let fp = redis.token("fp");
    let sid = Uuid::new_v4();
    // The client's clock says the last view was long ago; Redis's TTL says the session lives:
    // Redis decides.
    put_doc(&ctx, &fp, sid, 2, Utc::now() - ChronoDuration::hours(2), 60).await;
    buffer_views(&ctx, &fp, sid, 2, Utc::now() - ChronoDuration::hours(2)).await;
    let job = FinalizeAnonymousSession {
        fingerprint: fpr(&fp),
        session_id: sid,
    };
    match job.clone().run(&ctx).await {
        Err(JobError::Snooze(d)) => {
            assert!(
                d > Duration::from_secs(55) && d <= Duration::from_secs(62),
                "{d:?}"
            )
        }
        other => panic!("expected a snooze, got {other:?}"),
    }
    assert!(
        anonymous_session::Entity::find_by_id(sid)
            .one(&db.conn)
            .await
            .unwrap()
            .is_none()
    );
    // The document expires: the next run writes and ends the session.
    let _: () = ctx
        .redis
        .clone()
        .del(format!("anon_session:{fp}"))
        .await
        .unwrap();
    twice_and_concurrently(&ctx, job).await;
    let row = anonymous_session::Entity::find_by_id(sid)
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert!(!row.is_active);
    assert_eq!(row.pages_visited, 2);
}

/// Tests that run the idle sweep take turns: it reads `anon_sessions:open`, which every test
/// shares (hot-data keys have no namespace), and moves what it finds to the back of it, so a
/// sweep in one test can take another test's lost session.
static SWEEPS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn finalize_idle_sessions_finds_lost_sessions_persisted_or_not() {
    let _turn = SWEEPS.lock().await;
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[("ANON_SESSION_TIMEOUT_SECONDS", "60")]);
    let (stale_fp, live_fp, unpersisted_fp) =
        (redis.token("fp"), redis.token("fp"), redis.token("fp"));
    let (stale, live, unpersisted) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    put_doc(
        &ctx,
        &stale_fp,
        stale,
        4,
        Utc::now() - ChronoDuration::minutes(5),
        1800,
    )
    .await;
    put_doc(&ctx, &live_fp, live, 4, Utc::now(), 1800).await;
    for fp in [&stale_fp, &live_fp] {
        PersistAnonymousSession {
            fingerprint: fpr(fp),
        }
        .run(&ctx)
        .await
        .unwrap();
    }
    let _: () = ctx
        .redis
        .clone()
        .del(format!("anon_session:{stale_fp}"))
        .await
        .unwrap();
    // Never persisted, document gone, its finalize lost: only the buffer and the open list know.
    buffer_views(
        &ctx,
        &unpersisted_fp,
        unpersisted,
        3,
        Utc::now() - ChronoDuration::minutes(5),
    )
    .await;
    let started = (Utc::now() - ChronoDuration::minutes(10)).timestamp_millis();
    let _: () = ctx
        .redis
        .clone()
        .zadd("anon_sessions:open", &unpersisted_fp, started)
        .await
        .unwrap();
    twice_and_concurrently(&ctx, FinalizeIdleSessions {}).await;
    // The sweep enqueued one finalize for each lost session (not for the live one); run them.
    let q = ctx.queues.get(FinalizeAnonymousSession::NAME).unwrap();
    let mut ran = Vec::new();
    let fetched = q.fetch(100).await.unwrap();
    for job in &fetched.jobs {
        let args: FinalizeAnonymousSession = serde_json::from_str(&job.payload).unwrap();
        ran.push(args.session_id);
        args.run(&ctx).await.unwrap();
    }
    ran.sort();
    let mut want = vec![stale, unpersisted];
    want.sort();
    assert_eq!(
        ran, want,
        "stale (a row) {stale}, unpersisted (the open list) {unpersisted}"
    );
    for id in [stale, unpersisted] {
        let row = anonymous_session::Entity::find_by_id(id)
            .one(&db.conn)
            .await
            .unwrap()
            .expect("the lost session reached the database");
        assert!(!row.is_active);
    }
    let l = anonymous_session::Entity::find_by_id(live)
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert!(l.is_active);
    // A later sweep (a timeout on): the fingerprint with nothing left leaves the open list.
    let _: () = ctx
        .redis
        .clone()
        .zadd("anon_sessions:open", &unpersisted_fp, started)
        .await
        .unwrap();
    FinalizeIdleSessions {}.run(&ctx).await.unwrap();
    let score: Option<f64> = ctx
        .redis
        .clone()
        .zscore("anon_sessions:open", &unpersisted_fp)
        .await
        .unwrap();
    assert_eq!(score, None);
}

/// An ended anonymous session row started at `start`: one page, landing on `/`, no device data,
/// not converted, not a bot (tests change what they need with `..anon_row(...)`).
fn anon_row(
    id: Uuid,
    fingerprint: &str,
    start: chrono::DateTime<Utc>,
) -> anonymous_session::ActiveModel {
    anonymous_session::ActiveModel {
        id: Set(id),
        device_fingerprint: Set(fingerprint.into()),
        session_start: Set(start),
        session_end: Set(None),
        last_activity: Set(start),
        ip_address: Set(None),
        user_agent: Set(String::new()),
        device_type: Set(String::new()),
        browser: Set(String::new()),
        os: Set(String::new()),
        pages_visited: Set(1),
        duration_seconds: Set(None),
        landing_page: Set("/".into()),
        referrer: Set(String::new()),
        converted_to_user_id: Set(None),
        converted_at: Set(None),
        is_active: Set(false),
        is_bot: Set(false),
        location_data: Set(serde_json::json!({"city": "Montreal", "country_code": "CA"})),
    }
}

/// A page view of `session` at `url`, seen at `at`.
fn view_row(
    session: Uuid,
    url: &str,
    at: chrono::DateTime<Utc>,
) -> anonymous_page_view::ActiveModel {
    anonymous_page_view::ActiveModel {
        session_id: Set(session),
        url: Set(url.into()),
        url_name: Set(String::new()),
        page_type: Set(String::new()),
        viewed_at: Set(at),
        time_on_page_seconds: Set(None),
        referrer: Set(String::new()),
        ..Default::default()
    }
}

#[tokio::test]
async fn cleanup_deletes_only_data_past_retention_with_its_page_views_and_keeps_conversion_links() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[]);
    for (age_days, n) in [(100i64, 3), (10, 2)] {
        for _ in 0..n {
            let id = Uuid::new_v4();
            let start = Utc::now() - ChronoDuration::days(age_days);
            anon_row(id, "fp", start).insert(&db.conn).await.unwrap();
            view_row(id, "/", start).insert(&db.conn).await.unwrap();
        }
    }
    // An old session that converted: the link stays, what identifies the device goes.
    let user = make_user(&db).await;
    let converted = Uuid::new_v4();
    let start = Utc::now() - ChronoDuration::days(100);
    anonymous_session::ActiveModel {
        session_end: Set(Some(start + ChronoDuration::minutes(5))),
        last_activity: Set(start + ChronoDuration::minutes(5)),
        ip_address: Set(Some("203.0.113.45".into())),
        user_agent: Set("Mozilla/5.0 Chrome/120".into()),
        device_type: Set("desktop".into()),
        browser: Set("Chrome".into()),
        os: Set("Windows".into()),
        pages_visited: Set(7),
        duration_seconds: Set(Some(300)),
        landing_page: Set("/join".into()),
        referrer: Set("https://news.example/".into()),
        converted_to_user_id: Set(Some(user)),
        converted_at: Set(Some(start + ChronoDuration::minutes(5))),
        ..anon_row(converted, "fp-converted", start)
    }
    .insert(&db.conn)
    .await
    .unwrap();
    view_row(converted, "/join", start)
        .insert(&db.conn)
        .await
        .unwrap();
    twice_and_concurrently(&ctx, CleanupOldAnonymousData { retention_days: 90 }).await;
    assert_eq!(
        anonymous_session::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        anonymous_page_view::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        2
    );
    let kept = anonymous_session::Entity::find_by_id(converted)
        .one(&db.conn)
        .await
        .unwrap()
        .expect("the converted session keeps its link");
    assert_eq!(
        (
            kept.converted_to_user_id,
            kept.pages_visited,
            kept.duration_seconds,
            kept.landing_page.as_str(),
            kept.referrer.as_str()
        ),
        (Some(user), 7, Some(300), "/join", "https://news.example/")
    );
    assert_eq!(
        (
            kept.device_fingerprint.as_str(),
            kept.ip_address.as_deref(),
            kept.user_agent.as_str(),
            kept.browser.as_str(),
            &kept.location_data
        ),
        ("", None, "", "", &serde_json::json!({}))
    );
}

#[tokio::test]
async fn aggregate_page_analytics_recomputes_the_same_numbers_every_time() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[]);
    // A day no view can still land in (client timestamps are at most a day old), so Redis has
    // no counters for it and the log is the source.
    let day = Utc::now().date_naive() - chrono::Days::new(10);
    let at = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
    let views = [
        ("/a", "v1", false, false),
        ("/a", "v1", false, false),
        ("/a", "v2", false, false),
        ("/a", "u1", true, false),
        ("/b", "v3", false, false),
        ("/b", "bot", false, true),
    ];
    for (path, who, auth, bot) in views {
        page_view_log::ActiveModel {
            viewed_at: Set(at),
            url_path: Set(path.into()),
            page_type: Set("page".into()),
            visitor_key: Set(who.into()),
            is_authenticated: Set(auth),
            is_bot: Set(bot),
            ..Default::default()
        }
        .insert(&db.conn)
        .await
        .unwrap();
    }
    twice_and_concurrently(&ctx, AggregatePageAnalytics { date: Some(day) }).await;
    let rows = page_analytics::Entity::find()
        .order_by_asc(page_analytics::Column::UrlPath)
        .all(&db.conn)
        .await
        .unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.url_path.as_str(),
                r.total_views,
                r.anonymous_views,
                r.authenticated_views,
                r.unique_visitors,
            )
        })
        .collect();
    assert_eq!(got, vec![("/a", 4, 3, 1, 3), ("/b", 1, 1, 0, 1)]);
}

async fn make_user(db: &TestDb) -> Uuid {
    let id = Uuid::new_v4();
    user_profile::ActiveModel {
        id: Set(id),
        username: Set(format!("u{}", id.simple())),
        division_id: Set(None),
        date_joined: Set(Utc::now()),
    }
    .insert(&db.conn)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn enhance_session_async_fills_device_info_from_the_user_agent() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[]);
    let user = make_user(&db).await;
    let raw = redis.token("sess");
    user_session::ActiveModel {
        user_id: Set(user), session_id: Set(domain::keys::hash_session_id(&raw)), ip_address: Set(None),
        user_agent: Set("Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36".into()),
        device_info: Set(json!({})), location_data: Set(json!({})), device_fingerprint: Set(String::new()),
        fast_fingerprint: Set(String::new()), persistent: Set(false), pages_visited: Set(0),
        started_at: Set(Utc::now()), last_activity: Set(Utc::now()), ended_at: Set(None),
        expires_at: Set(Utc::now() + ChronoDuration::hours(4)), is_active: Set(true), ..Default::default()
    }
    .insert(&db.conn)
    .await
    .unwrap();
    twice_and_concurrently(&ctx, EnhanceSessionAsync { session_id: raw }).await;
    let row = user_session::Entity::find()
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.device_info["device_type"], "mobile");
    assert_eq!(row.device_info["os"], "Android");
    assert_eq!(row.device_info["is_bot"], false);
    assert_eq!(
        parse_user_agent("Googlebot/2.1 (+http://www.google.com/bot.html)")["is_bot"],
        true
    );
}

#[tokio::test]
async fn link_anonymous_conversion_links_once_and_writes_one_account_created_event() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[]);
    let user = make_user(&db).await;
    let fp = redis.token("fp");
    let sid = Uuid::new_v4();
    put_doc(&ctx, &fp, sid, 6, Utc::now(), 1800).await;
    twice_and_concurrently(
        &ctx,
        LinkAnonymousConversion {
            user_id: user,
            fingerprint: fpr(&fp),
        },
    )
    .await;
    let s = anonymous_session::Entity::find_by_id(sid)
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.converted_to_user_id, Some(user));
    assert!(s.converted_at.is_some());
    let events = user_event::Entity::find()
        .filter(user_event::Column::UserId.eq(user))
        .all(&db.conn)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event_type, "account_created");
    assert_eq!(e.metadata["from_anonymous_session"], json!(sid));
    assert_eq!(e.metadata["pages_visited"], 6);
    assert_eq!(e.metadata["landing_page"], "/search?q=events");
    assert_eq!(e.metadata["referrer"], "https://google.com");
    assert_eq!(e.metadata["duration"], 180);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_queued_jobs_and_kills_invalid_ones_at_once() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[]);
    let fps: Vec<String> = (0..20).map(|_| redis.token("fp")).collect();
    for fp in &fps {
        put_doc(&ctx, fp, Uuid::new_v4(), 5, Utc::now(), 1800).await;
    }
    let q = ctx
        .queues
        .get(PersistAnonymousSession::NAME)
        .unwrap()
        .clone();
    for fp in &fps {
        ctx.queues
            .enqueue(
                PersistAnonymousSession::NAME,
                json!({ "fingerprint": fp }),
                queue::When::Now,
            )
            .await
            .unwrap();
    }
    // Bypasses validation, as a foreign producer could: the worker must kill it, not retry it.
    let bad = q
        .push(queue::NewJob::new(r#"{"fingerprint":""}"#))
        .await
        .unwrap();
    InProcessWorker::start(ctx.clone())
        .run_until(Duration::from_secs(20), "jobs done", || {
            let q = q.clone();
            async move { q.stats().await.ok().filter(|s| s.done == 20 && s.dead == 1) }
        })
        .await;
    assert_eq!(
        anonymous_session::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        20
    );
    let info = q.job(&bad.id).await.unwrap().unwrap();
    assert_eq!(info.attempts, 1);
    let error = info.last_error.unwrap();
    assert!(error.contains("fingerprint"), "{error}");
}

/// A session document as the writer receives it.
fn doc(
    fp: &str,
    pages: i32,
    user_agent: &str,
    ip: Option<&str>,
) -> domain::documents::AnonSessionDoc {
    let now = Utc::now();
    domain::documents::AnonSessionDoc {
        session_id: Uuid::new_v4(),
        device_fingerprint: fp.to_owned(),
        started_at: now - ChronoDuration::minutes(5),
        last_activity: now,
        pages_visited: pages,
        current_page: "/c/".into(),
        landing_page: "/".into(),
        referrer: String::new(),
        is_active: true,
        ip_address: ip.map(str::to_owned),
        user_agent: user_agent.to_owned(),
        device_type: "desktop".into(),
        browser: "Firefox".into(),
        os: "Linux".into(),
        is_bot: false,
    }
}

/// Group commit: 300 concurrent upserts with 1 KB user agents (many statements' worth of rows,
/// so batches span several chunks) all land; an address that is not one is stored as NULL; a row
/// the database refuses (a NUL byte in text) fails only its own upsert.
async fn session_writer_batches(db: TestDb, nul_fails: bool) {
    let writer = worker::store::SessionWriter::spawn(db.conn.clone().into(), 2, None);
    let ua = "Mozilla/5.0 ".repeat(85);
    let mut docs: Vec<_> = (0..300)
        .map(|i| doc(&format!("fp-{i}"), i, &ua, Some("203.0.113.7")))
        .collect();
    docs[7].ip_address = Some("not-an-address".into());
    let bad = doc("fp-bad", 1, "nul\0byte", None);
    let mut all = docs.clone();
    all.insert(150, bad.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for d in all {
        let w = writer.clone();
        tasks.spawn(async move { (d.session_id, w.upsert(Box::new(d)).await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let (id, r) = joined.unwrap();
        if id == bad.session_id {
            // PostgreSQL text cannot hold NUL; SQLite stores it.
            assert_eq!(r.is_err(), nul_fails, "the NUL row: {r:?}");
        } else {
            assert!(r.is_ok(), "{id}: {r:?}");
        }
    }
    assert_eq!(
        anonymous_session::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        if nul_fails { 300 } else { 301 }
    );
    let seven = anonymous_session::Entity::find_by_id(docs[7].session_id)
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seven.ip_address, None);
    let eight = anonymous_session::Entity::find_by_id(docs[8].session_id)
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eight.ip_address.as_deref(), Some("203.0.113.7"));
    assert_eq!(
        (eight.pages_visited, eight.user_agent.as_str()),
        (8, ua.as_str())
    );
    // Every column lands in its own place (the rows travel column by column).
    let d = &docs[8];
    assert_eq!(
        (
            eight.device_fingerprint.as_str(),
            eight.device_type.as_str(),
            eight.browser.as_str(),
            eight.os.as_str(),
            eight.landing_page.as_str(),
            eight.referrer.as_str(),
            eight.is_bot,
            eight.is_active,
        ),
        (
            d.device_fingerprint.as_str(),
            "desktop",
            "Firefox",
            "Linux",
            "/",
            "",
            false,
            true
        )
    );
    assert_eq!(
        (
            eight.session_start.timestamp_micros(),
            eight.last_activity.timestamp_micros()
        ),
        (
            d.started_at.timestamp_micros(),
            d.last_activity.timestamp_micros()
        )
    );
    assert_eq!(eight.location_data, serde_json::json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_writer_batches_on_postgres() {
    session_writer_batches(TestDb::postgres().await, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_writer_batches_on_sqlite() {
    session_writer_batches(TestDb::sqlite().await, false).await;
}

/// The registry is the one list: every registered job is known to the API's enqueue route,
/// listed by `/v1/queues`, consumed by the worker, and every scheduled job is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_job_is_enqueueable_listed_and_consumed() {
    // It runs finalize_idle_sessions for real, which reads the shared open list: with a 30-day
    // timeout its sweep takes no other test's lost session (those are minutes old), and it waits
    // for its turn besides.
    let _turn = SWEEPS.lock().await;
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let env = [
        ("CELERY_QUEUES", ""),
        ("ANON_SESSION_TIMEOUT_SECONDS", "2592000"),
    ];
    let api = TestApi::start(&db, &redis, &env).await;
    let ctx = job_context(&db, &redis, &env);
    let names: Vec<&str> = domain::registry::JOBS.iter().map(|j| j.name).collect();
    assert_eq!(names.len(), 8);
    let (s, listed) = api.call("GET", "/v1/queues", None).await;
    assert_eq!(s, 200, "{listed}");
    let listed: Vec<&str> = listed["queues"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert_eq!(listed, names);
    for (job, _) in worker::scheduler::defaults() {
        assert!(
            names.contains(&job),
            "the scheduler names {job}, which is not registered"
        );
    }
    // The enqueue route knows every job: arguments are checked (a 422 naming a field at most),
    // never "no job is named".
    let mut ids = Vec::new();
    for name in &names {
        let (s, r) = api
            .call("POST", &format!("/v1/jobs/{name}"), Some(&json!({})))
            .await;
        assert!(s == 202 || s == 201 || s == 422, "{name}: {s} {r}");
        // A raw job every consumer must at least fetch (arguments or not, it leaves the queue).
        let q = ctx.queues.get(name).unwrap();
        ids.push((*name, q.push(queue::NewJob::new("{}")).await.unwrap().id));
    }
    let worker = InProcessWorker::connect(tests::settings(&db, &redis, &env));
    for (name, id) in &ids {
        let q = ctx.queues.get(name).unwrap().clone();
        let id = id.clone();
        eventually(Duration::from_secs(30), name, || {
            let (q, id) = (q.clone(), id.clone());
            async move {
                q.job(&id)
                    .await
                    .ok()?
                    .filter(|j| j.attempts >= 1)
                    .map(|_| ())
            }
        })
        .await;
    }
    worker.stop().await;
}

/// `worker jobs list | requeue | discard`: the operator's CLI lists dead jobs with their error and
/// arguments, and requeues or discards them (by id or all).
#[tokio::test]
async fn the_cli_lists_requeues_and_discards_dead_jobs() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[]);
    let q = ctx
        .queues
        .get(PersistAnonymousSession::NAME)
        .unwrap()
        .clone();
    for i in 0..3 {
        q.push(queue::NewJob::new(format!(r#"{{"fingerprint":"fp-{i}"}}"#)))
            .await
            .unwrap();
    }
    let leased = q.fetch(3).await.unwrap().jobs;
    let acks: Vec<queue::Ack> = leased
        .iter()
        .map(|j| queue::Ack::Dead {
            id: j.id.clone(),
            token: j.token,
            error: "refused".into(),
        })
        .collect();
    q.ack(&acks).await.unwrap();
    let env = testkit::service_env(&db, &redis);
    let cli = |args: &[&str]| {
        let mut c = testkit::bin_command("worker");
        c.arg("jobs")
            .args(args)
            .envs(env.clone())
            .stdout(std::process::Stdio::piped());
        let what = format!("worker jobs {args:?}");
        async move {
            let out = c.output().await.expect("run worker jobs");
            assert!(out.status.success(), "{what} failed");
            String::from_utf8(out.stdout).expect("utf-8")
        }
    };
    let listed = cli(&["list", PersistAnonymousSession::NAME, "--state", "dead"]).await;
    let lines: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{listed}");
    let mut fps: Vec<&str> = lines[..3]
        .iter()
        .map(|l| l["args"]["fingerprint"].as_str().unwrap())
        .collect();
    fps.sort_unstable();
    assert_eq!(fps, ["fp-0", "fp-1", "fp-2"]);
    assert!(lines[..3].iter().all(|l| l["last_error"] == "refused"));
    assert_eq!(lines[3], json!({"total": 3, "next_offset": null}));
    let first = lines[0]["id"].as_str().unwrap().to_owned();
    let out = cli(&["discard", PersistAnonymousSession::NAME, &first]).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(out.trim()).unwrap(),
        json!({"done": 1, "not_dead": []})
    );
    let out = cli(&["requeue", PersistAnonymousSession::NAME, "--all"]).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(out.trim()).unwrap(),
        json!({"done": 2, "not_dead": []})
    );
    let stats = q.stats().await.unwrap();
    assert_eq!((stats.dead, stats.queued), (0, 2));
    assert!(q.job(&first).await.unwrap().is_none());
}

/// A paused queue keeps its jobs from a running worker, and nothing is lost: resumed (from the
/// CLI), the worker runs them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_takes_nothing_from_a_paused_queue_until_it_resumes() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[("CELERY_QUEUES", "")]);
    let q = ctx
        .queues
        .get(PersistAnonymousSession::NAME)
        .unwrap()
        .clone();
    q.pause().await.unwrap();
    let worker = InProcessWorker::start(ctx.clone());
    push_persist(&ctx, &redis, 3).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = q.stats().await.unwrap();
    assert_eq!((s.queued, s.running, s.done), (3, 0, 0));
    let out = testkit::bin_command("worker")
        .args(["jobs", "resume", PersistAnonymousSession::NAME])
        .envs(testkit::service_env(&db, &redis))
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    worker
        .run_until(
            Duration::from_secs(10),
            "the resumed queue's jobs done",
            || {
                let q = q.clone();
                async move { q.stats().await.ok().filter(|s| s.done == 3) }
            },
        )
        .await;
}

/// A running worker announces itself with its counts; stopped, it leaves the list, and the
/// per-minute history holds every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_heartbeats_its_counts_and_leaves_when_it_stops() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let env = [("CELERY_QUEUES", "")];
    let api = TestApi::start(&db, &redis, &env).await;
    let ctx = job_context(&db, &redis, &env);
    let worker = InProcessWorker::start(ctx.clone());
    push_persist(&ctx, &redis, 3).await;
    let me = eventually(
        Duration::from_secs(15),
        "the worker's heartbeat with 3 jobs processed",
        || async {
            let (s, body) = api.call("GET", "/v1/workers", None).await;
            assert_eq!(s, 200, "{body}");
            body["workers"]
                .as_array()
                .and_then(|w| w.first().cloned())
                .filter(|w| w["processed"] == 3)
        },
    )
    .await;
    assert_eq!(me["kind"], "worker");
    assert_eq!(me["pid"], std::process::id());
    assert_eq!(me["failed"], 0);
    assert_eq!(me["in_flight"], 0);
    assert!(
        me["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q == PersistAnonymousSession::NAME)
    );
    // One job whose arguments decode but never validate: dead at once, and counted.
    ctx.queues
        .get(EnhanceSessionAsync::NAME)
        .unwrap()
        .push(queue::NewJob::new(r#"{"session_id":""}"#))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the bad job dead", || async {
        let q = ctx.queues.get(EnhanceSessionAsync::NAME).unwrap();
        q.stats().await.ok().filter(|s| s.dead == 1)
    })
    .await;
    worker.stop().await;
    let (_, body) = api.call("GET", "/v1/workers", None).await;
    assert_eq!(
        body["workers"],
        json!([]),
        "a stopped worker leaves the list"
    );
    // The per-minute history has every run (the stop writes the last counts).
    let (s, history) = api.call("GET", "/v1/history?minutes=3", None).await;
    assert_eq!(s, 200, "{history}");
    let minutes = history["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 3);
    let total = |job: &str, what: &str| -> u64 {
        minutes
            .iter()
            .filter_map(|m| m["jobs"][job][what].as_u64())
            .sum()
    };
    let persist = PersistAnonymousSession::NAME;
    assert_eq!(
        (total(persist, "succeeded"), total(persist, "failed")),
        (3, 0)
    );
    assert_eq!(total(EnhanceSessionAsync::NAME, "dead"), 1);
    // The hour's history sums the same runs.
    let hour: std::collections::HashMap<String, u64> = redis
        .conn
        .clone()
        .hgetall(domain::workers::history_hour_key(
            &ctx.settings.namespace,
            Utc::now().timestamp() / 3600,
        ))
        .await
        .unwrap();
    let minute_total = total(persist, "succeeded");
    if hour.get(&format!("{persist}:succeeded")) != Some(&3) {
        // The runs straddled an hour: the two hours hold them between them.
        assert_eq!(minute_total, 3);
    }
    // /metrics shows the fleet's totals, which the worker wrote to Redis.
    let m = testkit::http_full(&api.addr, "GET", "/metrics", None, None)
        .await
        .unwrap()
        .text;
    for line in [
        format!(r#"celeriac_jobs_started_total{{job="{persist}"}} 3"#),
        format!(r#"celeriac_jobs_succeeded_total{{job="{persist}"}} 3"#),
        format!(r#"celeriac_jobs_retried_total{{job="{persist}"}} 0"#),
        format!(
            r#"celeriac_jobs_dead_total{{job="{}"}} 1"#,
            EnhanceSessionAsync::NAME
        ),
        format!(r#"celeriac_job_duration_seconds_bucket{{job="{persist}",le="+Inf"}} 3"#),
        format!(r#"celeriac_job_duration_seconds_count{{job="{persist}"}} 3"#),
        "celeriac_celery_messages_adopted_total 0".to_owned(),
    ] {
        assert!(m.lines().any(|l| l == line), "/metrics lacks {line}:\n{m}");
    }
    let (s, refused) = api.call("GET", "/v1/history?minutes=0", None).await;
    assert_eq!(s, 422, "{refused}");
    assert_eq!(refused["error"]["field"], "minutes");
}

/// Celery-only mode (the site keeps its middleware; no page view reaches the fleet): a day's page
/// analytics come from its anonymous sessions, each one view of its landing page (path without
/// query or fragment), bots and empty landings left out; recomputing gives the same rows and drops
/// paths no session landed on. A day with no source at all keeps the rows it has.
#[tokio::test]
async fn page_analytics_come_from_sessions_when_no_view_reached_the_fleet_and_old_days_keep_theirs()
{
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[]);
    let day = Utc::now().date_naive() - chrono::Days::new(10);
    let start = day.and_hms_opt(9, 0, 0).unwrap().and_utc();
    let sessions = [
        ("a", "/x?q=1", false),
        ("b", "/x", false),
        ("a", "/x?q=2", false),
        ("c", "/y#top", false),
        ("bot", "/x", true),
        ("d", "", false),
    ];
    for (fp, landing, bot) in sessions {
        anonymous_session::ActiveModel {
            pages_visited: Set(3),
            landing_page: Set(landing.into()),
            is_active: Set(true),
            is_bot: Set(bot),
            ..anon_row(Uuid::new_v4(), fp, start)
        }
        .insert(&db.conn)
        .await
        .unwrap();
    }
    let row = |date, path: &str, kind: &str| page_analytics::ActiveModel {
        date: Set(date),
        url_path: Set(path.into()),
        page_type: Set(kind.into()),
        total_views: Set(7),
        anonymous_views: Set(7),
        authenticated_views: Set(0),
        unique_visitors: Set(7),
        ..Default::default()
    };
    // A landing row from an earlier run, gone from the sessions since.
    row(day, "/stale", "(landing)")
        .insert(&db.conn)
        .await
        .unwrap();
    let old = day - chrono::Days::new(10);
    row(old, "/kept", "page").insert(&db.conn).await.unwrap();
    let got = || async {
        page_analytics::Entity::find()
            .order_by_asc(page_analytics::Column::Date)
            .order_by_asc(page_analytics::Column::UrlPath)
            .all(&db.conn)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.date,
                    r.url_path.clone(),
                    r.total_views,
                    r.anonymous_views,
                    r.authenticated_views,
                    r.unique_visitors,
                )
            })
            .collect::<Vec<_>>()
    };
    for _ in 0..2 {
        aggregate_day_from_sessions(&ctx, day).await.unwrap();
        assert_eq!(
            got().await,
            vec![
                (old, "/kept".to_owned(), 7, 7, 0, 7),
                (day, "/x".to_owned(), 3, 3, 0, 2),
                (day, "/y".to_owned(), 1, 1, 0, 1),
            ]
        );
    }
    // An old day with no counters, no log and (being old) no session source: its rows stay.
    AggregatePageAnalytics { date: Some(old) }
        .run(&ctx)
        .await
        .unwrap();
    assert_eq!(got().await[0], (old, "/kept".to_owned(), 7, 7, 0, 7));
    // A day whose rows came from the counters (Redis lost them since) is never replaced by
    // landing counts.
    let exact_day = day - chrono::Days::new(1);
    row(exact_day, "/exact", "page")
        .insert(&db.conn)
        .await
        .unwrap();
    anonymous_session::ActiveModel {
        landing_page: Set("/landed".into()),
        is_active: Set(true),
        ..anon_row(
            Uuid::new_v4(),
            "e",
            exact_day.and_hms_opt(9, 0, 0).unwrap().and_utc(),
        )
    }
    .insert(&db.conn)
    .await
    .unwrap();
    assert_eq!(
        aggregate_day_from_sessions(&ctx, exact_day).await.unwrap(),
        0
    );
    let on_exact_day: Vec<_> = got()
        .await
        .into_iter()
        .filter(|r| r.0 == exact_day)
        .map(|r| r.1)
        .collect();
    assert_eq!(on_exact_day, ["/exact"]);
}

/// A signed-in session past its `expires_at` ends there (the seed's `is_active`); one still valid,
/// or already ended, is left as it is; running twice changes nothing more.
#[tokio::test]
async fn end_expired_sessions_ends_signed_in_sessions_at_their_expiry() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let ctx = job_context(&db, &redis, &[]);
    let user = make_user(&db).await;
    let now = Utc::now();
    // (expires_at, ended_at)
    let cases = [
        (now - ChronoDuration::seconds(60), None),
        (now + ChronoDuration::hours(1), None),
        (
            now - ChronoDuration::hours(1),
            Some(now - ChronoDuration::hours(2)),
        ),
    ];
    let mut ids = Vec::new();
    for (i, (expires, ended)) in cases.iter().enumerate() {
        let row = tests::user_session_row(
            user,
            format!("expiry-{i}-{}", redis.token("s")),
            *expires - ChronoDuration::hours(4),
            *ended,
            *expires,
        )
        .insert(&db.conn)
        .await
        .unwrap();
        ids.push(row.id);
    }
    twice_and_concurrently(&ctx, EndExpiredSessions {}).await;
    let mut got = Vec::new();
    for id in ids {
        let r = user_session::Entity::find_by_id(id)
            .one(&db.conn)
            .await
            .unwrap()
            .unwrap();
        got.push((r.is_active, r.ended_at.map(|t| t.timestamp_millis())));
    }
    let ms = |t: chrono::DateTime<Utc>| Some(t.timestamp_millis());
    assert_eq!(
        got,
        vec![
            (false, ms(cases[0].0)),
            (true, None),
            (false, ms(cases[2].1.unwrap())),
        ]
    );
}

/// Issue 18: a run past its job type's time limit (`JOB_TIME_LIMIT_<JOB>`) is cancelled, counted
/// as a failed attempt with the reason, and retried; meanwhile the worker runs other jobs, and
/// the retry succeeds once the database lets go. The hang is a real one: the test holds a row
/// lock the job's UPDATE waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_time_limit_is_cancelled_counted_and_retried_and_the_worker_goes_on() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let extra = [("JOB_TIME_LIMIT_ENHANCE_SESSION_ASYNC", "1")];
    let api = TestApi::start(&db, &redis, &extra).await;
    let ctx = job_context(&db, &redis, &extra);
    let agent = json!({"user_agent": "Mozilla/5.0 Chrome/120"});
    let hashed = [
        api.login(&redis, agent.clone()).await,
        api.login(&redis, agent).await,
    ];
    // Hold A's row: its enhance job's UPDATE waits for this lock.
    let lock = tests::lock_user_session(&db, &hashed[0]).await;
    let q = ctx.queues.get(EnhanceSessionAsync::NAME).unwrap().clone();
    let enhanced = |h: String| {
        let conn = db.conn.clone();
        async move {
            let row = tests::user_session_by_hash(&conn, &h).await?;
            (row.device_info != json!({})).then_some(())
        }
    };
    let worker = InProcessWorker::start(ctx.clone());
    // B's job runs while A's hangs, and A's run is cancelled after 1 s: a failed attempt.
    let retrying = tests::cancelled_by_time_limit(&q).await;
    eventually(Duration::from_secs(5), "B enhanced", || {
        enhanced(hashed[1].clone())
    })
    .await;
    // The database lets go: the retry succeeds; nothing is dead.
    lock.rollback().await.unwrap();
    eventually(Duration::from_secs(30), "both jobs done", || {
        let q = q.clone();
        async move { q.stats().await.ok().filter(|s| s.done == 2) }
    })
    .await;
    worker.stop().await;
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.dead, 0);
    let info = q.job(&retrying.id).await.unwrap().unwrap();
    assert!(info.attempts >= 2, "{info:?}");
    enhanced(hashed[0].clone()).await.expect("A enhanced");
}

/// Issue 18: a producer's `unique_key` (API and CLI) keeps at most one job of a name and key
/// until that job ends: duplicates store nothing and answer the first job's id; concurrent
/// pushes race to exactly one job; the job's end releases the key; bad controls name the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_key_keeps_one_job_until_it_ends_and_races_to_one() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let ctx = job_context(&db, &redis, &[]);
    let name = EndExpiredSessions::NAME;
    let path = format!("/v1/jobs/{name}");
    let q = ctx.queues.get(name).unwrap().clone();
    let (s, first) = api
        .call(
            "POST",
            &path,
            Some(&json!({"unique_key": "nightly", "unique_for_seconds": 600})),
        )
        .await;
    assert_eq!(s, 202, "{first}");
    assert!(first.get("duplicate").is_none(), "{first}");
    let (s, again) = api
        .call("POST", &path, Some(&json!({"unique_key": "nightly"})))
        .await;
    assert_eq!(s, 202, "{again}");
    assert_eq!(again, json!({"job_id": first["job_id"], "duplicate": true}));
    let (s, many) = api
        .call(
            "POST",
            &path,
            Some(&json!([{"unique_key": "nightly"}, {"unique_key": "other"}, {}])),
        )
        .await;
    assert_eq!(s, 202, "{many}");
    assert_eq!(many["job_ids"][0], first["job_id"]);
    assert_eq!(many["duplicates"], json!([0]));
    // Concurrent pushes of one new key: exactly one job.
    let race = json!({"unique_key": "race"});
    let racers =
        futures::future::join_all((0..20).map(|_| api.call("POST", &path, Some(&race)))).await;
    let created: Vec<&serde_json::Value> = racers
        .iter()
        .filter(|(s, b)| *s == 202 && b.get("duplicate").is_none())
        .map(|(_, b)| b)
        .collect();
    assert_eq!(created.len(), 1, "{racers:?}");
    assert!(
        racers
            .iter()
            .all(|(_, b)| b["job_id"] == created[0]["job_id"])
    );
    // first, other, the plain one, race: four jobs.
    assert_eq!(q.stats().await.unwrap().queued, 4);
    // Bad controls, each named.
    for (body, field) in [
        (json!({"unique_for_seconds": 5}), "unique_key"),
        (json!({"unique_key": ""}), "unique_key"),
        (json!({"unique_key": 7}), "unique_key"),
        (
            json!({"unique_key": "k", "unique_for_seconds": 0}),
            "unique_for_seconds",
        ),
        (
            json!({"unique_key": "k", "unique_for_seconds": 2_592_001}),
            "unique_for_seconds",
        ),
        (
            json!([{}, {"unique_key": "x".repeat(257)}]),
            "[1].unique_key",
        ),
    ] {
        let (s, b) = api.call("POST", &path, Some(&body)).await;
        assert_eq!(s, 422, "{body}: {b}");
        assert_eq!(b["error"]["field"], field, "{body}: {b}");
    }
    // The CLI: the same rule.
    let env = testkit::service_env(&db, &redis);
    let cli = |extra: &[&str]| {
        let mut c = testkit::bin_command("worker");
        c.args(["enqueue", name, "{}"])
            .args(extra)
            .envs(env.clone())
            .stdout(std::process::Stdio::piped());
        async move {
            let out = c.output().await.expect("run worker enqueue");
            assert!(out.status.success(), "worker enqueue failed");
            serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("one JSON line")
        }
    };
    let a = cli(&["--unique-key", "nightly"]).await;
    assert_eq!(a["job_id"], first["job_id"]);
    assert_eq!(a["duplicate"], true);
    // The jobs end (done): their keys are released, and the same key makes a new job.
    InProcessWorker::start(ctx.clone())
        .run_until(Duration::from_secs(20), "the jobs done", || {
            let q = q.clone();
            async move { q.stats().await.ok().filter(|s| s.done == 4) }
        })
        .await;
    let (s, after) = api
        .call("POST", &path, Some(&json!({"unique_key": "nightly"})))
        .await;
    assert_eq!(s, 202, "{after}");
    assert!(after.get("duplicate").is_none(), "{after}");
    assert_ne!(after["job_id"], first["job_id"]);
    let b = cli(&["--unique-key", "fresh", "--unique-for", "60"]).await;
    assert!(b.get("duplicate").is_none(), "{b}");
    // A key whose job is dead is free too.
    let refused = q
        .push(
            queue::NewJob::new("[1]")
                .unique_until_end(domain::queues::unique_key("bad"), Duration::from_secs(60)),
        )
        .await
        .unwrap();
    InProcessWorker::start(ctx.clone())
        .run_until(Duration::from_secs(20), "the bad job dead", || {
            let q = q.clone();
            async move { q.stats().await.ok().filter(|s| s.dead == 1) }
        })
        .await;
    let (s, revived) = api
        .call("POST", &path, Some(&json!({"unique_key": "bad"})))
        .await;
    assert_eq!(s, 202, "{revived}");
    assert!(revived.get("duplicate").is_none(), "{revived}");
    assert_ne!(revived["job_id"].as_str(), Some(refused.id.as_str()));
    // A key pushed to hold for its TTL (the scheduler's ticks) is not released by the job's end.
    let held = q
        .push(queue::NewJob::new("{}").unique("held", Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(held.created);
    InProcessWorker::start(ctx.clone())
        .run_until(Duration::from_secs(20), "every job done", || {
            let q = q.clone();
            async move { q.stats().await.ok().filter(|s| s.done == 8) }
        })
        .await;
    let again = q
        .push(queue::NewJob::new("{}").unique("held", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!((again.id, again.created), (held.id, false));
}
