//! Tracking through the HTTP API against the real Redis and PostgreSQL (SPEC §3, §5, §7).

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::time::Duration;

use chrono::Utc;
use entity::{anonymous_page_view, anonymous_session, page_analytics, user_event, user_session};
use redis::AsyncCommands;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use testkit::TestDb;
use tests::{InProcessWorker, TestApi, TestRedis, job_context};
use uuid::Uuid;
use worker::jobs::{AggregatePageAnalytics, Job};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// `Some` once anonymous session `sid` has a row that is no longer active.
async fn session_ended(conn: sea_orm::DatabaseConnection, sid: Uuid) -> Option<()> {
    let row = anonymous_session::Entity::find_by_id(sid)
        .one(&conn)
        .await
        .ok()??;
    (!row.is_active).then_some(())
}

/// `GET /v1/communities/{id}/visitors`, which must answer 200.
async fn visitor_stats(api: &TestApi, community: Uuid) -> Value {
    let (s, stats) = api
        .call(
            "GET",
            &format!("/v1/communities/{community}/visitors"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{stats}");
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_views_keep_a_live_session_persist_every_fifth_and_end_idle_in_the_database() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let extra = [("ANON_SESSION_TIMEOUT_SECONDS", "4")];
    let api = TestApi::start(&db, &redis, &extra).await;
    let ctx = job_context(&db, &redis, &extra);
    let fp = redis.token("fp");
    let page = format!("/t/{}", redis.token("page"));
    let mut session = None;
    for i in 1..=6 {
        let (s, b) = api
            .call("POST", "/v1/track/pageview", Some(&json!({"fingerprint": fp, "url": format!("{page}/{i}"), "referrer": "https://google.com/", "user_agent": CHROME, "ip": "203.0.113.45"})))
            .await;
        assert_eq!(s, 202, "{b}");
        assert_eq!(b["pages_visited"], i);
        assert_eq!(b["new_session"], i == 1);
        assert_eq!(b["persist_enqueued"], i == 5);
        session.get_or_insert(b["session_id"].clone());
        assert_eq!(b["session_id"], session.clone().unwrap());
    }
    let doc: String = redis
        .conn
        .clone()
        .get(format!("anon_session:{fp}"))
        .await
        .unwrap();
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["pages_visited"], 6);
    assert_eq!(doc["landing_page"], format!("{page}/1"));
    assert_eq!(doc["current_page"], format!("{page}/6"));
    assert_eq!(doc["referrer"], "https://google.com/");
    let ttl: i64 = redis
        .conn
        .clone()
        .ttl(format!("anon_session:{fp}"))
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 4);
    let persist = ctx
        .queues
        .get("persist_anonymous_session")
        .unwrap()
        .stats()
        .await
        .unwrap();
    let finalize = ctx
        .queues
        .get("finalize_anonymous_session")
        .unwrap()
        .stats()
        .await
        .unwrap();
    assert_eq!(persist.queued, 1, "every 5th page");
    assert_eq!(
        finalize.scheduled, 1,
        "one finalize per live session, not one per view"
    );

    // Idle past the timeout, the session ends in the database with its views.
    let sid: Uuid = serde_json::from_value(session.unwrap()).unwrap();
    let conn = db.conn.clone();
    InProcessWorker::start(ctx.clone())
        .run_until(Duration::from_secs(30), "the worker's effect", || {
            session_ended(conn.clone(), sid)
        })
        .await;
    let row = anonymous_session::Entity::find_by_id(sid)
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.pages_visited, 6);
    assert_eq!(row.browser, "Chrome");
    assert_eq!(row.ip_address.as_deref(), Some("203.0.113.45"));
    assert_eq!(row.session_end, Some(row.last_activity));
    assert!(row.duration_seconds.is_some());
    let views = anonymous_page_view::Entity::find()
        .filter(anonymous_page_view::Column::SessionId.eq(sid))
        .count(&db.conn)
        .await
        .unwrap();
    assert_eq!(views, 6);
    // No database row ever records an anonymous visitor's events.
    assert_eq!(user_event::Entity::find().count(&db.conn).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_anonymous_views_share_script_runs_and_each_gets_its_own_answer() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let ctx = job_context(&db, &redis, &[]);
    let community = Uuid::new_v4();
    redis.track(&community.to_string());
    let fps: Vec<String> = (0..10).map(|_| redis.token("fp")).collect();
    let page = format!("/t/{}", redis.token("page"));
    // 12 views per visitor, all in flight at once: the batcher packs them into shared runs.
    let calls = fps.iter().flat_map(|fp| {
        let (api, page) = (&api, &page);
        (0..12).map(move |i| async move {
            let body = if i % 3 == 0 {
                json!({"fingerprint": fp, "url": format!("{page}/{i}"), "community_id": community})
            } else {
                json!({"fingerprint": fp, "url": format!("{page}/{i}")})
            };
            let (s, b) = api.call("POST", "/v1/track/pageview", Some(&body)).await;
            assert_eq!(s, 202, "{b}");
            (fp.clone(), b)
        })
    });
    let answers = futures::future::join_all(calls).await;
    for fp in &fps {
        let mine: Vec<&Value> = answers
            .iter()
            .filter(|(f, _)| f == fp)
            .map(|(_, b)| b)
            .collect();
        let mut pages: Vec<i64> = mine
            .iter()
            .map(|b| b["pages_visited"].as_i64().unwrap())
            .collect();
        pages.sort_unstable();
        assert_eq!(pages, (1..=12).collect::<Vec<_>>(), "{fp}");
        assert_eq!(mine.iter().filter(|b| b["new_session"] == true).count(), 1);
        assert_eq!(
            mine.iter()
                .filter(|b| b["persist_enqueued"] == true)
                .count(),
            2
        );
        let sessions: std::collections::HashSet<String> =
            mine.iter().map(|b| b["session_id"].to_string()).collect();
        assert_eq!(sessions.len(), 1, "one session per visitor");
    }
    let stats = |name: &'static str| {
        let ctx = ctx.clone();
        async move { ctx.queues.get(name).unwrap().stats().await.unwrap() }
    };
    assert_eq!(stats("persist_anonymous_session").await.queued, 20);
    assert_eq!(stats("finalize_anonymous_session").await.scheduled, 10);
    let visitors = visitor_stats(&api, community).await;
    assert_eq!(visitors["anonymous_visitors"], 10, "{visitors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_fails_in_redis_fails_alone() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let (bad, good) = (redis.token("fp"), redis.token("fp"));
    let page = format!("/t/{}", redis.token("page"));
    // Garbage where the bad visitor's view buffer should be: its RPUSH fails with WRONGTYPE.
    let _: () = redis
        .conn
        .clone()
        .hset(format!("anon_session:{bad}:views"), "not", "a list")
        .await
        .unwrap();
    let calls = (0..40).map(|i| {
        let (api, page, fp) = (&api, &page, if i % 2 == 0 { &bad } else { &good });
        async move {
            let body = json!({"fingerprint": fp, "url": format!("{page}/{i}")});
            (
                fp.clone(),
                api.call("POST", "/v1/track/pageview", Some(&body)).await,
            )
        }
    });
    let answers = futures::future::join_all(calls).await;
    for (fp, (status, body)) in &answers {
        if fp == &bad {
            assert_eq!(*status, 500, "{body}");
            assert_eq!(body["error"]["code"], "internal", "{body}");
        } else {
            assert_eq!(*status, 202, "{body}");
        }
    }
    let mut pages: Vec<i64> = answers
        .iter()
        .filter(|(fp, _)| fp == &good)
        .map(|(_, (_, b))| b["pages_visited"].as_i64().unwrap())
        .collect();
    pages.sort_unstable();
    assert_eq!(pages, (1..=20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_authenticated_views_events_logout() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let ctx = job_context(&db, &redis, &[]);
    let user = Uuid::new_v4();
    redis.track(&user.to_string());
    let fp = redis.token("fp");
    let (s, b) = api
        .call("POST", "/v1/sessions", Some(&json!({"user_id": user, "username": format!("u-{fp}"), "user_agent": CHROME, "device_fingerprint": fp, "remember_me": true})))
        .await;
    assert_eq!(s, 201, "{b}");
    let session_id = b["session_id"].as_str().unwrap().to_owned();
    // The one rule: the hashed id is hex SHA-256 of the session key, and names the key.
    let hashed = domain::keys::hash_session_id(&session_id);
    assert_eq!(b["hashed_id"], hashed.as_str(), "{b}");
    redis.track(&hashed);
    let ttl: i64 = redis
        .conn
        .clone()
        .ttl(format!("session:{hashed}"))
        .await
        .unwrap();
    assert!(ttl > 29 * 86_400, "remember-me keeps 30 days, got {ttl}");
    let doc: Value = serde_json::from_str(
        &redis
            .conn
            .clone()
            .get::<_, String>(format!("session:{hashed}"))
            .await
            .unwrap(),
    )
    .unwrap();
    // The seed's fields.
    assert_eq!(doc["session_id"], hashed.as_str());
    assert_eq!(doc["user_username"], format!("u-{fp}"));
    assert_eq!(doc["persistent"], true);
    assert_eq!(doc["fast_fingerprint"], fp.as_str());
    assert_eq!(doc["is_active"], true);
    assert!(doc["expires_at"].is_string() && doc["started_at"].is_string());

    let page = format!("/t/{}", redis.token("page"));
    // The session key or its hashed id: the same session.
    for id in [&session_id, &hashed] {
        let (s, b) = api
            .call("POST", "/v1/track/pageview", Some(&json!({"fingerprint": fp, "url": page, "user_id": user, "session_id": id, "user_agent": CHROME})))
            .await;
        assert_eq!(s, 202, "{b}");
    }
    let row = user_session::Entity::find()
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.pages_visited, 2);
    assert_eq!(row.session_id, hashed, "only the hash is stored");
    let doc: String = redis
        .conn
        .clone()
        .get(format!("session:{hashed}"))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&doc).unwrap()["pages_visited"],
        2
    );
    let views = user_event::Entity::find()
        .filter(user_event::Column::EventType.eq("page_view"))
        .count(&db.conn)
        .await
        .unwrap();
    assert_eq!(views, 2);

    // enhance_session_async fills device_info.
    let conn = db.conn.clone();
    InProcessWorker::start(ctx.clone())
        .run_until(Duration::from_secs(30), "the worker's effect", || {
            let conn = conn.clone();
            async move {
                let row = user_session::Entity::find().one(&conn).await.ok()??;
                (row.device_info["browser"] == "Chrome").then_some(())
            }
        })
        .await;

    let (s, b) = api
        .call(
            "POST",
            "/v1/events",
            Some(&json!({"user_id": user, "event_type": "rsvp", "metadata": {"event": 42}})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = api
        .call(
            "POST",
            "/v1/events",
            Some(&json!({"event_type": "rsvp", "fingerprint": fp})),
        )
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (422, Some("user_id")),
        "{b}"
    );
    // login, two page views, rsvp.
    assert_eq!(user_event::Entity::find().count(&db.conn).await.unwrap(), 4);
    let login = user_event::Entity::find()
        .filter(user_event::Column::EventType.eq("login"))
        .one(&db.conn)
        .await
        .unwrap()
        .expect("a login event");
    assert_eq!(
        (login.user_id, login.metadata["session_id"].as_str()),
        (user, Some(hashed.as_str()))
    );

    // Logout, twice: one logout event.
    for _ in 0..2 {
        let (s, _) = api
            .call("DELETE", &format!("/v1/sessions/{session_id}"), None)
            .await;
        assert_eq!(s, 204);
    }
    let logouts = user_event::Entity::find()
        .filter(user_event::Column::EventType.eq("logout"))
        .count(&db.conn)
        .await
        .unwrap();
    assert_eq!(logouts, 1);
    let row = user_session::Entity::find()
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert!(!row.is_active && row.ended_at.is_some());
    let gone: bool = redis
        .conn
        .clone()
        .exists(format!("session:{hashed}"))
        .await
        .unwrap();
    assert!(!gone);
    let (s, _) = api
        .call("DELETE", "/v1/sessions/no-such-session", None)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_visitors_count_each_visitor_on_its_own_clock_and_only_users_get_events() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let community = Uuid::new_v4();
    redis.track(&community.to_string());
    let user = Uuid::new_v4();
    redis.track(&user.to_string());
    let (_, b) = api
        .call("POST", "/v1/sessions", Some(&json!({"user_id": user})))
        .await;
    let session_id = b["session_id"].as_str().unwrap().to_owned();
    redis.track(b["hashed_id"].as_str().unwrap());
    let (anon_fp, user_fp, gone_fp) = (redis.token("fp"), redis.token("fp"), redis.token("fp"));
    let url = format!("/c/{}/", redis.token("page"));
    for body in [
        json!({"fingerprint": anon_fp, "url": url, "community_id": community}),
        json!({"fingerprint": user_fp, "url": url, "community_id": community, "user_id": user, "session_id": session_id}),
        json!({"fingerprint": gone_fp, "url": url, "community_id": community}),
        json!({"fingerprint": anon_fp, "url": url, "community_id": community}),
    ] {
        let (s, b) = api.call("POST", "/v1/track/pageview", Some(&body)).await;
        assert_eq!(s, 202, "{b}");
    }
    // One visitor left six minutes ago: a busy visitor must not keep it counted.
    let seen = format!("community:{community}:visitors:seen");
    let old = Utc::now().timestamp_millis() - 6 * 60 * 1000;
    let _: () = redis
        .conn
        .clone()
        .zadd(&seen, format!("anon_{gone_fp}"), old)
        .await
        .unwrap();
    assert_eq!(
        visitor_stats(&api, community).await,
        json!({"total_visitors": 2, "authenticated_visitors": 1, "anonymous_visitors": 1,
               "authenticated_percentage": 50.0, "anonymous_percentage": 50.0})
    );
    let visitors: std::collections::HashMap<String, String> = redis
        .conn
        .clone()
        .hgetall(format!("community:{community}:visitors"))
        .await
        .unwrap();
    assert_eq!(visitors.len(), 3);
    // The seed's visitor document, with the visitor's page count in this community.
    let doc = |key: String| -> Value {
        serde_json::from_str(visitors.get(&key).expect("the visitor's entry")).expect("JSON")
    };
    let anon = doc(format!("anon_{anon_fp}"));
    assert_eq!(anon["pages_viewed"], 2, "{anon}");
    assert_eq!(anon["is_authenticated"], false);
    assert_eq!(anon["device_fingerprint"], anon_fp.as_str());
    assert!(anon["user_id"].is_null());
    let signed_in = doc(format!("user_{user}"));
    assert_eq!(signed_in["pages_viewed"], 1, "{signed_in}");
    assert_eq!(signed_in["is_authenticated"], true);
    assert_eq!(signed_in["user_id"], user.to_string());
    for d in [&anon, &signed_in] {
        for k in ["division_id", "last_seen"] {
            assert!(d.get(k).is_some(), "{d} lacks {k}");
        }
    }
    // The next visit to the community takes the departed visitor out of the hash and the sets
    // too, so a reader counting them (HLEN, SCARD, as Django code does) counts 2, not 3.
    let (s, b) = api
        .call(
            "POST",
            "/v1/track/pageview",
            Some(&json!({"fingerprint": anon_fp, "url": url, "community_id": community})),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let mut conn = redis.conn.clone();
    let hlen: i64 = conn
        .hlen(format!("community:{community}:visitors"))
        .await
        .unwrap();
    let anon_n: i64 = conn
        .scard(format!("community:{community}:visitors:anonymous"))
        .await
        .unwrap();
    let auth_n: i64 = conn
        .scard(format!("community:{community}:visitors:authenticated"))
        .await
        .unwrap();
    assert_eq!((hlen, anon_n, auth_n), (2, 1, 1));
    let gone_left: bool = conn
        .hexists(
            format!("community:{community}:visitors"),
            format!("anon_{gone_fp}"),
        )
        .await
        .unwrap();
    assert!(!gone_left);
    let events = user_event::Entity::find()
        .filter(user_event::Column::EventType.eq("community_visit"))
        .all(&db.conn)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "anonymous visits write no events");
    let m = &events[0].metadata;
    assert_eq!(m["is_authenticated"], true);
    assert_eq!(m["device_fingerprint"], user_fp.as_str());
    assert_eq!(m["is_cross_division"], false);
    for k in [
        "community_slug",
        "visitor_division_id",
        "community_division_id",
        "url",
        "referrer",
    ] {
        assert!(m.get(k).is_some(), "metadata lacks {k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_is_counted_in_page_analytics_bots_left_out_and_recounting_changes_nothing() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let ctx = job_context(&db, &redis, &[]);
    let base = format!("/t/{}", redis.token("page"));
    let user = Uuid::new_v4();
    redis.track(&user.to_string());
    let (_, b) = api
        .call("POST", "/v1/sessions", Some(&json!({"user_id": user})))
        .await;
    let session_id = b["session_id"].as_str().unwrap().to_owned();
    redis.track(b["hashed_id"].as_str().unwrap());
    let (v1, v2, bot) = (redis.token("fp"), redis.token("fp"), redis.token("fp"));
    let views = [
        (format!("{base}/a"), v1.clone(), None, CHROME),
        (format!("{base}/a"), v1.clone(), None, CHROME),
        (format!("{base}/a"), v2.clone(), None, CHROME),
        (format!("{base}/a"), v2.clone(), Some(user), CHROME),
        (format!("{base}/b?x=1"), v1.clone(), None, CHROME),
        (format!("{base}/b"), bot.clone(), None, BOT),
    ];
    for (url, fp, user_id, ua) in &views {
        let mut body =
            json!({"fingerprint": fp, "url": url, "user_agent": ua, "page_type": "page"});
        if let Some(u) = user_id {
            body["user_id"] = json!(u);
            body["session_id"] = json!(session_id);
        }
        let (s, b) = api.call("POST", "/v1/track/pageview", Some(&body)).await;
        assert_eq!(s, 202, "{b}");
    }
    let today = Utc::now().date_naive();
    let job = AggregatePageAnalytics { date: Some(today) };
    job.clone().run(&ctx).await.unwrap();
    let read = || async {
        let mut rows: Vec<_> = page_analytics::Entity::find()
            .filter(page_analytics::Column::UrlPath.starts_with(&base))
            .all(&db.conn)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.url_path,
                    r.total_views,
                    r.anonymous_views,
                    r.authenticated_views,
                    r.unique_visitors,
                )
            })
            .collect();
        rows.sort();
        rows
    };
    let first = read().await;
    assert_eq!(
        first,
        vec![
            (format!("{base}/a"), 4, 3, 1, 3),
            (format!("{base}/b"), 1, 1, 0, 1)
        ],
        "5 human views; the bot's is left out"
    );
    job.run(&ctx).await.unwrap();
    assert_eq!(read().await, first);
    let (s, top) = api
        .call("GET", "/v1/analytics/top-pages?days=1&limit=100", None)
        .await;
    assert_eq!(s, 200);
    assert!(
        top["pages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["url_path"] == format!("{base}/a") && p["total_views"] == 4)
    );
    let anon_rows = anonymous_session::Entity::find()
        .count(&db.conn)
        .await
        .unwrap();
    assert_eq!(
        anon_rows, 0,
        "nothing persisted yet: fewer than 5 views per visitor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_links_the_anonymous_session_and_analytics_report_it() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let ctx = job_context(&db, &redis, &[]);
    let fp = redis.token("fp");
    let page = format!("/t/{}", redis.token("page"));
    for i in 0..3 {
        api.call("POST", "/v1/track/pageview", Some(&json!({"fingerprint": fp, "url": format!("{page}/{i}"), "referrer": "https://news.example/", "user_agent": CHROME}))).await;
    }
    let user = Uuid::new_v4();
    redis.track(&user.to_string());
    let (s, b) = api
        .call(
            "POST",
            "/v1/conversions",
            Some(&json!({"user_id": user, "fingerprint": fp})),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let conn = db.conn.clone();
    InProcessWorker::start(ctx.clone())
        .run_until(Duration::from_secs(30), "the worker's effect", || {
            let conn = conn.clone();
            async move {
                let n = user_event::Entity::find()
                    .filter(user_event::Column::EventType.eq("account_created"))
                    .count(&conn)
                    .await
                    .ok()?;
                (n == 1).then_some(())
            }
        })
        .await;
    let e = user_event::Entity::find()
        .one(&db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.metadata["pages_visited"], 3);
    assert_eq!(e.metadata["landing_page"], format!("{page}/0"));
    let (s, c) = api
        .call("GET", "/v1/analytics/conversions?days=7", None)
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["conversions"], 1);
    assert_eq!(c["average_pages_before_signup"], 3.0);
    assert_eq!(c["top_referrers"][0]["key"], "https://news.example/");
    let (s, d) = api
        .call("GET", "/v1/analytics/session-durations?days=7", None)
        .await;
    assert_eq!(s, 200, "{d}");
    assert!(d.get("anonymous_average_seconds").is_some());
    let (s, d) = api
        .call("GET", "/v1/analytics/session-durations?days=0", None)
        .await;
    assert_eq!((s, d["error"]["field"].as_str()), (422, Some("days")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_visitor_removes_every_trace_in_redis_and_the_database() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let ctx = job_context(&db, &redis, &[]);
    let fp = redis.token("fp");
    let community = Uuid::new_v4();
    redis.track(&community.to_string());
    let page = format!("/t/{}", redis.token("page"));
    for i in 0..5 {
        api.call("POST", "/v1/track/pageview", Some(&json!({"fingerprint": fp, "url": format!("{page}/{i}"), "community_id": community}))).await;
    }
    // Persisted (the 5th view enqueued it).
    worker::jobs::PersistAnonymousSession {
        fingerprint: domain::keys::Fingerprint::parse(&fp).unwrap(),
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
    // The day's unique-visitor sets of the five pages hold the visitor, until erasure.
    let visitor_sets: Vec<String> = (0..5)
        .map(|i| format!("pageviews:{}:{page}/{i}:visitors", Utc::now().date_naive()))
        .collect();
    let sets_holding = || async {
        let mut holding = Vec::new();
        for set in &visitor_sets {
            let holds: bool = redis
                .conn
                .clone()
                .sismember(set, format!("anon_{fp}"))
                .await
                .unwrap();
            if holds {
                holding.push(set.clone());
            }
        }
        holding
    };
    assert_eq!(sets_holding().await, visitor_sets);
    // Finding 7: the jobs the views enqueued (finalize, persist) carry the fingerprint until
    // erasure.
    let payloads_naming_fp = || async {
        let mut n = 0;
        for job in ["persist_anonymous_session", "finalize_anonymous_session"] {
            let q = ctx.queues.get(job).unwrap();
            let values: Vec<String> = redis.conn.clone().hvals(&q.keys().jobs).await.unwrap();
            n += values.iter().filter(|v| v.contains(fp.as_str())).count();
        }
        n
    };
    assert_eq!(payloads_naming_fp().await, 2);
    // A footprint written by an older build names a day's path set that has since expired:
    // nothing to do there, and the erasure still succeeds.
    let () = redis
        .conn
        .clone()
        .sadd(
            format!("visitor:anon_{fp}:footprint"),
            "pageviews:2026-11-01:paths",
        )
        .await
        .unwrap();
    let (s, b) = api
        .call("DELETE", &format!("/v1/anonymous/{fp}"), None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["jobs"], 2, "{b}");
    assert_eq!(payloads_naming_fp().await, 0);
    assert_eq!(sets_holding().await, Vec::<String>::new());
    assert_eq!(
        anonymous_session::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        anonymous_page_view::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        0
    );
    let keys: Vec<String> = redis.conn.clone().keys(format!("*{fp}*")).await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    let mut conn = redis.conn.clone();
    for k in [
        format!("community:{community}:visitors"),
        format!("community:{community}:visitors:seen"),
    ] {
        let t: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        let holds: bool = match t.as_str() {
            "hash" => conn.hexists(&k, format!("anon_{fp}")).await.unwrap(),
            "zset" => conn
                .zscore::<_, _, Option<f64>>(&k, format!("anon_{fp}"))
                .await
                .unwrap()
                .is_some(),
            _ => false,
        };
        assert!(!holds, "{k} still holds the visitor");
    }
    assert_eq!(visitor_stats(&api, community).await["total_visitors"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tracking_input_gets_a_4xx_naming_the_field() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let fp = redis.token("fp");
    let future = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    for (body, field) in [
        (json!({"url": "/a"}), "fingerprint"),
        (
            json!({"fingerprint": fp, "url": "javascript:alert(1)"}),
            "url",
        ),
        (
            json!({"fingerprint": fp, "url": "/a", "timestamp": future}),
            "timestamp",
        ),
        (
            json!({"fingerprint": fp, "url": "/a", "ip": "not-an-ip"}),
            "ip",
        ),
        (
            json!({"fingerprint": fp, "url": "/a", "user_id": Uuid::new_v4()}),
            "session_id",
        ),
        (
            json!({"fingerprint": fp, "url": "/a", "community_id": "nope"}),
            "community_id",
        ),
    ] {
        let (s, b) = api.call("POST", "/v1/track/pageview", Some(&body)).await;
        assert_eq!(
            (s, b["error"]["field"].as_str()),
            (422, Some(field)),
            "{body} -> {b}"
        );
    }
    let (s, b) = testkit::http(&api.addr, "POST", "/v1/track/pageview", None, None)
        .await
        .unwrap();
    assert!(s == 400 || s == 422, "{s} {b}");
}

/// The session-id rule with a Django session key: the key or its hashed id (hex SHA-256, what the
/// Django package sends and the seed's `enhance_session_async.delay(hashed_id)` passes) name one
/// session; a repeated login with it is one row (the seed's `get_or_create`), active again; another
/// user's login with it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_django_session_key_or_its_hashed_id_names_one_session_and_a_repeated_login_is_one_row() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let ctx = job_context(&db, &redis, &[]);
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    // Django's session keys are 32 characters of [a-z0-9].
    let key = format!("{:0<32}", redis.token("k").replace(['-', '_'], ""))[..32].to_lowercase();
    let hashed = domain::keys::hash_session_id(&key);
    redis.track(&hashed);
    let login = |session: &str, user: Uuid| json!({"user_id": user, "session_id": session, "user_agent": CHROME});

    let (s, b) = api
        .call("POST", "/v1/sessions", Some(&login(&key, user)))
        .await;
    assert_eq!(
        (s, b["hashed_id"].as_str()),
        (201, Some(hashed.as_str())),
        "{b}"
    );
    // Without remember-me, the seed's 4 hours.
    let ttl: i64 = redis
        .conn
        .clone()
        .ttl(format!("session:{hashed}"))
        .await
        .unwrap();
    assert!(
        (4 * 3600 - 60..=4 * 3600).contains(&ttl),
        "a plain session keeps 4 h, got {ttl}"
    );
    let (s, _) = api
        .call("DELETE", &format!("/v1/sessions/{hashed}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, b) = api
        .call("POST", "/v1/sessions", Some(&login(&hashed, user)))
        .await;
    assert_eq!(
        (s, b["hashed_id"].as_str()),
        (201, Some(hashed.as_str())),
        "{b}"
    );
    let rows = user_session::Entity::find().all(&db.conn).await.unwrap();
    assert_eq!(rows.len(), 1, "a repeated login is one row");
    assert!(
        rows[0].is_active && rows[0].ended_at.is_none(),
        "and active again"
    );
    assert_eq!(rows[0].session_id, hashed);
    let (s, b) = api
        .call("POST", "/v1/sessions", Some(&login(&key, other)))
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (409, Some("session_id")),
        "{b}"
    );
    let doc: Value = serde_json::from_str(
        &redis
            .conn
            .clone()
            .get::<_, String>(format!("session:{hashed}"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        doc["user_id"],
        user.to_string(),
        "the other user's login changed nothing"
    );

    // The seed's `enhance_session_async.delay(hashed_id)`, as a Celery call site sends it.
    let conn = db.conn.clone();
    sea_orm::ConnectionTrait::execute_unprepared(
        &conn,
        "UPDATE accounts_usersession SET device_info = '{}'",
    )
    .await
    .unwrap();
    let (s, b) = api
        .call(
            "POST",
            "/v1/jobs/enhance_session_async",
            Some(&json!({"session_id": hashed})),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    InProcessWorker::start(ctx.clone())
        .run_until(
            Duration::from_secs(30),
            "the hashed id's session enhanced",
            || {
                let conn = conn.clone();
                async move {
                    let rows = user_session::Entity::find().all(&conn).await.ok()?;
                    rows.iter()
                        .all(|r| r.device_info["browser"] == "Chrome")
                        .then_some(())
                }
            },
        )
        .await;
    let (s, _) = api
        .call("DELETE", &format!("/v1/sessions/{key}"), None)
        .await;
    assert_eq!(s, 204, "the key logs out what its hash names");
    let gone: bool = redis
        .conn
        .clone()
        .exists(format!("session:{hashed}"))
        .await
        .unwrap();
    assert!(!gone);
}

/// `POST /v1/track/pageviews`: each view tracked or refused on its own, in the order sent; the
/// tracked ones change Redis exactly as the single route does (five views of one visitor in one
/// batch are pages 1 to 5, and the fifth enqueues one persist).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_views_tracks_each_on_its_own_and_refuses_the_bad_ones_by_index() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let (fp1, fp2) = (redis.token("fp"), redis.token("fp"));
    let url = format!("/b/{}", redis.token("page"));
    let mut views = vec![
        json!({"fingerprint": fp1, "url": url, "user_agent": CHROME}),
        json!({"fingerprint": "has space", "url": url}),
        json!({"fingerprint": fp2}),
        json!({"fingerprint": fp2, "url": url, "user_id": Uuid::new_v4(), "session_id": "no-such-session"}),
        json!({"fingerprint": fp2, "url": url, "user_agent": CHROME}),
    ];
    views.extend((0..4).map(|_| json!({"fingerprint": fp1, "url": url, "user_agent": CHROME})));
    let (s, b) = api
        .call("POST", "/v1/track/pageviews", Some(&json!(views)))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["accepted"].as_u64(), b["refused"].as_u64()),
        (Some(6), Some(3)),
        "{b}"
    );
    let results = b["results"].as_array().unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [202, 422, 422, 404, 202, 202, 202, 202, 202],
        "{b}"
    );
    assert_eq!(results[1]["error"]["field"], "[1].fingerprint", "{b}");
    assert_eq!(results[2]["error"]["field"], "[2].url", "{b}");
    assert_eq!(results[3]["error"]["code"], "not_found", "{b}");
    let mut pages: Vec<i64> = [0, 5, 6, 7, 8]
        .iter()
        .map(|&i| results[i]["tracked"]["pages_visited"].as_i64().unwrap())
        .collect();
    let persists = [0, 5, 6, 7, 8]
        .iter()
        .filter(|&&i| results[i]["tracked"]["persist_enqueued"] == true)
        .count();
    pages.sort_unstable();
    assert_eq!(pages, [1, 2, 3, 4, 5], "{b}");
    assert_eq!(persists, 1, "{b}");
    for (fp, n) in [(&fp1, 5), (&fp2, 1)] {
        let doc: Value = serde_json::from_str(
            &redis
                .conn
                .clone()
                .get::<_, String>(format!("anon_session:{fp}"))
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(doc["pages_visited"], n, "{fp}");
    }
    for bad in [
        json!([]),
        json!(
            (0..501)
                .map(|_| json!({"fingerprint": fp2, "url": url}))
                .collect::<Vec<_>>()
        ),
    ] {
        let (s, b) = api.call("POST", "/v1/track/pageviews", Some(&bad)).await;
        assert_eq!(s, 422, "{b}");
    }
}

/// The seed's use cases 2–4 on data whose answers are known: conversions by `converted_at` (a
/// session started 40 days ago that converted 2 days ago counts; one converted 40 days ago does
/// not), each listed with its user's name; top pages by path and page type; durations of the
/// sessions that ended in the period (one started 31 days ago and ended yesterday counts; one that
/// ended 40 days ago, or still runs, does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_use_cases_answer_the_seeds_questions_with_known_numbers() {
    use entity::user_profile;
    use sea_orm::{ActiveModelTrait, Set};
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let now = Utc::now();
    let ago = |d: i64| now - chrono::Duration::days(d);
    let mut users = Vec::new();
    for name in ["ann", "bob"] {
        let id = Uuid::new_v4();
        user_profile::ActiveModel {
            id: Set(id),
            username: Set(format!("{name}-{}", redis.token("u"))),
            division_id: Set(None),
            date_joined: Set(now),
        }
        .insert(&db.conn)
        .await
        .unwrap();
        users.push(id);
    }
    // (started, converted (user, days ago), ended days ago, duration, pages, landing, referrer)
    let sessions = [
        (
            ago(40),
            Some((users[0], 2)),
            Some(2),
            Some(300),
            7,
            "/a",
            "r1",
        ),
        (
            ago(41),
            Some((users[1], 40)),
            Some(40),
            Some(50),
            9,
            "/old",
            "r0",
        ),
        (ago(1), Some((users[1], 1)), None, None, 3, "/b", ""),
        (ago(1), None, Some(1), Some(100), 2, "/c", ""),
        (ago(45), None, Some(40), Some(999), 2, "/c", ""),
    ];
    for (start, conv, ended, duration, pages, landing, referrer) in sessions {
        anonymous_session::ActiveModel {
            id: Set(Uuid::new_v4()),
            device_fingerprint: Set(redis.token("fp")),
            session_start: Set(start),
            session_end: Set(ended.map(ago)),
            last_activity: Set(ended.map_or(start, ago)),
            ip_address: Set(None),
            user_agent: Set(String::new()),
            device_type: Set(String::new()),
            browser: Set(String::new()),
            os: Set(String::new()),
            pages_visited: Set(pages),
            duration_seconds: Set(duration),
            landing_page: Set(landing.into()),
            referrer: Set(referrer.into()),
            converted_to_user_id: Set(conv.map(|c| c.0)),
            converted_at: Set(conv.map(|c| ago(c.1))),
            is_active: Set(ended.is_none()),
            is_bot: Set(false),
            location_data: Set(serde_json::json!({})),
        }
        .insert(&db.conn)
        .await
        .unwrap();
    }
    // Signed-in sessions: (started, ended).
    for (i, (start, end)) in [
        (ago(3), Some(ago(3) + chrono::Duration::seconds(600))),
        (ago(31), Some(ago(29))),
        (ago(50), Some(ago(40))),
        (ago(1), None),
    ]
    .into_iter()
    .enumerate()
    {
        user_session::ActiveModel {
            pages_visited: Set(1),
            last_activity: Set(end.unwrap_or(start)),
            ..tests::user_session_row(
                users[0],
                format!("{i}-{}", redis.token("s")),
                start,
                end,
                start + chrono::Duration::hours(4),
            )
        }
        .insert(&db.conn)
        .await
        .unwrap();
    }
    let today = now.date_naive();
    for (days, path, kind, total, anon, auth, unique) in [
        (1, "/p", "article", 10, 6, 4, 5),
        (2, "/p", "article", 5, 5, 0, 3),
        (1, "/p", "list", 2, 2, 0, 2),
        (1, "/q", "", 20, 20, 0, 9),
        (10, "/p", "article", 100, 100, 0, 50),
    ] {
        page_analytics::ActiveModel {
            date: Set(today - chrono::Days::new(days)),
            url_path: Set(format!("{path}-{kind}")),
            page_type: Set(kind.into()),
            total_views: Set(total),
            anonymous_views: Set(anon),
            authenticated_views: Set(auth),
            unique_visitors: Set(unique),
            ..Default::default()
        }
        .insert(&db.conn)
        .await
        .unwrap();
    }
    // Two page types of one path (the table's key is (date, url_path): another path name per type
    // above; here the same path twice with different types on different days).
    page_analytics::ActiveModel {
        date: Set(today - chrono::Days::new(3)),
        url_path: Set("/p-article".into()),
        page_type: Set("list".into()),
        total_views: Set(1),
        anonymous_views: Set(1),
        authenticated_views: Set(0),
        unique_visitors: Set(1),
        ..Default::default()
    }
    .insert(&db.conn)
    .await
    .unwrap();

    let (s, c) = api
        .call("GET", "/v1/analytics/conversions?days=30", None)
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["conversions"], 2, "{c}");
    assert_eq!(c["average_pages_before_signup"], 5.0, "{c}");
    assert_eq!(c["anonymous_sessions"], 2, "{c}");
    let list = c["list"].as_array().unwrap();
    let got: Vec<(String, i64, Value, &str, &str)> = list
        .iter()
        .map(|r| {
            (
                r["username"]
                    .as_str()
                    .unwrap()
                    .split('-')
                    .next()
                    .unwrap()
                    .to_owned(),
                r["pages_visited"].as_i64().unwrap(),
                r["duration_seconds"].clone(),
                r["landing_page"].as_str().unwrap(),
                r["referrer"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("bob".to_owned(), 3, Value::Null, "/b", ""),
            ("ann".to_owned(), 7, json!(300), "/a", "r1"),
        ],
        "{c}"
    );

    let (s, t) = api
        .call("GET", "/v1/analytics/top-pages?days=7", None)
        .await;
    assert_eq!(s, 200, "{t}");
    let rows: Vec<(&str, &str, i64, i64, i64, i64)> = t["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["url_path"].as_str().unwrap(),
                r["page_type"].as_str().unwrap(),
                r["total_views"].as_i64().unwrap(),
                r["anonymous_views"].as_i64().unwrap(),
                r["authenticated_views"].as_i64().unwrap(),
                r["unique_visitors"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("/q-", "", 20, 20, 0, 9),
            ("/p-article", "article", 15, 11, 4, 8),
            ("/p-list", "list", 2, 2, 0, 2),
            ("/p-article", "list", 1, 1, 0, 1),
        ],
        "{t}"
    );

    let (s, d) = api
        .call("GET", "/v1/analytics/session-durations?days=30", None)
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        (
            d["authenticated_sessions"].as_i64(),
            d["authenticated_average_seconds"].as_f64(),
            d["anonymous_sessions"].as_i64(),
            d["anonymous_average_seconds"].as_f64(),
        ),
        (
            Some(2),
            Some((600.0 + 2.0 * 86_400.0) / 2.0),
            Some(2),
            Some(200.0)
        ),
        "{d}"
    );
}

/// A City database the test writes itself (`tests/geo/city_mmdb.py`, never a download), in `dir`.
fn city_database(dir: &std::path::Path) -> String {
    let path = dir.join("city.mmdb");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("geo/city_mmdb.py");
    let status = std::process::Command::new(testkit::venv::mmdb_python())
        .arg(&script)
        .arg(&path)
        .status()
        .expect("the mmdb tool env runs");
    assert!(status.success(), "city_mmdb.py failed");
    path.to_string_lossy().into_owned()
}

/// Issue 16: with `GEOIP_DATABASE`, signed-in sessions (`enhance_session_async`) and anonymous
/// sessions (their row) carry city, region and country, never coordinates; an address the
/// database does not hold leaves `{}`. Without it, the worker runs as before; a path that is not
/// a database stops it at start, naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_carry_the_city_region_and_country_of_their_address_and_nothing_finer() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let dir = tempfile_dir("geo");
    let mmdb = city_database(&dir);
    let extra = [("GEOIP_DATABASE", mmdb.as_str())];
    let api = TestApi::start(&db, &redis, &extra).await;
    let ctx = job_context(&db, &redis, &extra);
    assert!(ctx.geo.is_some());
    let montreal = json!({
        "city": "Montreal", "region": "Quebec", "region_code": "QC",
        "country": "Canada", "country_code": "CA",
    });
    // Three anonymous visitors (5 views each, so the persist job writes their rows): one in the
    // database's Montreal network, one in its IPv6 Lyon network, one it does not hold.
    let visitors = [
        ("203.0.113.45", montreal.clone()),
        (
            "2001:db8:1::7",
            json!({"city": "Lyon", "country": "France", "country_code": "FR"}),
        ),
        ("198.51.100.7", json!({})),
    ];
    let mut sessions = Vec::new();
    let page = format!("/geo/{}", redis.token("page"));
    for (ip, want) in &visitors {
        let fp = redis.token("fp");
        let mut sid = Value::Null;
        for i in 1..=5 {
            let (s, b) = api
                .call("POST", "/v1/track/pageview", Some(&json!({"fingerprint": fp, "url": format!("{page}/{i}"), "user_agent": CHROME, "ip": ip})))
                .await;
            assert_eq!(s, 202, "{b}");
            sid = b["session_id"].clone();
        }
        sessions.push((serde_json::from_value::<Uuid>(sid).unwrap(), want.clone()));
    }
    // A signed-in session from Montreal.
    let hashed = api
        .login(&redis, json!({"user_agent": CHROME, "ip": "203.0.113.9"}))
        .await;

    let conn = db.conn.clone();
    let ids: Vec<Uuid> = sessions.iter().map(|(id, _)| *id).collect();
    let hashed_q = hashed.clone();
    InProcessWorker::start(ctx.clone())
        .run_until(Duration::from_secs(30), "rows written and enhanced", || {
            let (conn, ids, hashed) = (conn.clone(), ids.clone(), hashed_q.clone());
            async move {
                let rows = anonymous_session::Entity::find()
                    .filter(anonymous_session::Column::Id.is_in(ids.clone()))
                    .count(&conn)
                    .await
                    .ok()?;
                let signed_in = tests::user_session_by_hash(&conn, &hashed).await?;
                (rows == ids.len() as u64 && signed_in.device_info != json!({})).then_some(())
            }
        })
        .await;
    for (id, want) in &sessions {
        let row = anonymous_session::Entity::find_by_id(*id)
            .one(&db.conn)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&row.location_data, want, "{:?}", row.ip_address);
    }
    let signed_in = tests::user_session_by_hash(&db.conn, &hashed)
        .await
        .unwrap();
    assert_eq!(signed_in.location_data, montreal);
    // Nothing finer than the city, though the database holds coordinates and a postal code.
    let text = signed_in.location_data.to_string();
    for finer in [
        "latitude",
        "longitude",
        "45.5",
        "postal",
        "H2X",
        "time_zone",
    ] {
        assert!(!text.contains(finer), "{finer} stored: {text}");
    }

    // A path that is not a City database stops the worker at start, naming the variable.
    let bad = dir.join("not-a-database.mmdb");
    std::fs::write(&bad, b"not a database").unwrap();
    let settings = tests::settings(&db, &redis, &[("GEOIP_DATABASE", bad.to_str().unwrap())]);
    let e = worker::geo::open_configured(&settings)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("GEOIP_DATABASE="), "{e}");
    // Unset: no database, no location.
    let settings = tests::settings(&db, &redis, &[]);
    assert!(worker::geo::open_configured(&settings).unwrap().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("celeriac-{what}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Issue 16: the page's beacon (`POST /v1/beacon`, what `navigator.sendBeacon` sends: a
/// `text/plain` JSON body, no token) gives its view scroll depth and time on page; a view
/// without one gets its time on page from the next view, including the newest view at a
/// persist (kept in the buffer until its next view or the session's end). A token the site did
/// not sign, or a value out of range, is refused naming the field, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pages_beacon_gives_its_view_scroll_depth_and_time_on_page() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    const TOKEN: &str = "beacon-test-token";
    let extra = [("ANON_SESSION_TIMEOUT_SECONDS", "3"), ("API_TOKEN", TOKEN)];
    let api = TestApi::start(&db, &redis, &extra).await;
    let ctx = job_context(&db, &redis, &extra);
    let fp = redis.token("fp");
    let page = format!("/b/{}", redis.token("page"));
    let t0 = Utc::now() - chrono::Duration::seconds(600);
    // Views 1-5 at these seconds after t0; 6 comes after the persist.
    let at = [0, 10, 25, 40, 70, 100];
    let ids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    let view = |i: usize| {
        json!({"fingerprint": fp, "url": format!("{page}/{}", i + 1), "user_agent": CHROME,
               "view_id": ids[i], "timestamp": t0 + chrono::Duration::seconds(at[i])})
    };
    let signed = |i: usize| tracking::beacon::view_token(TOKEN.as_bytes(), &ids[i]);
    let beacon = |body: String| {
        let addr = api.addr.clone();
        async move {
            testkit::http_raw(
                &addr,
                "POST",
                "/v1/beacon",
                &[("content-type", "text/plain;charset=UTF-8")],
                body.as_bytes(),
            )
            .await
            .unwrap()
        }
    };
    let mut sid = Value::Null;
    for i in 0..5 {
        let (s, b) = testkit::http(
            &api.addr,
            "POST",
            "/v1/track/pageview",
            Some(TOKEN),
            Some(&view(i)),
        )
        .await
        .unwrap();
        assert_eq!(s, 202, "{b}");
        sid = b["session_id"].clone();
    }
    let sid: Uuid = serde_json::from_value(sid).unwrap();
    // The page of view 1 reports as a browser does; view 3's report comes twice (the later wins).
    let a = beacon(json!({"t": signed(0), "scroll": 80, "seconds": 45}).to_string()).await;
    assert_eq!(a.status, 204, "{}", a.text);
    for (scroll, seconds) in [(20, 3), (65, 9)] {
        let a =
            beacon(json!({"t": signed(2), "scroll": scroll, "seconds": seconds}).to_string()).await;
        assert_eq!(a.status, 204, "{}", a.text);
    }
    // Refused, naming the field: another view's signature, an unsigned id, out of range values,
    // not JSON, too big.
    let forged = format!("{}.{}", ids[1], signed(0).split_once('.').unwrap().1);
    for (body, field) in [
        (json!({"t": forged, "scroll": 10, "seconds": 1}), "t"),
        (
            json!({"t": ids[1].to_string(), "scroll": 10, "seconds": 1}),
            "t",
        ),
        (json!({"t": "../../etc", "scroll": 10, "seconds": 1}), "t"),
        (
            json!({"t": signed(1), "scroll": 101, "seconds": 1}),
            "scroll",
        ),
        (
            json!({"t": signed(1), "scroll": 10, "seconds": -1}),
            "seconds",
        ),
        (
            json!({"t": signed(1), "scroll": 10, "seconds": 86_401}),
            "seconds",
        ),
        (json!({"t": signed(1), "scroll": 10}), "seconds"),
    ] {
        let a = beacon(body.to_string()).await;
        assert_eq!(a.status, 422, "{body}: {}", a.text);
        assert_eq!(a.body["error"]["field"], field, "{body}: {}", a.text);
    }
    assert_eq!(beacon("not json".into()).await.status, 400);
    assert_eq!(beacon("x".repeat(20_000)).await.status, 413);
    let mut conn = redis.conn.clone();
    let stored: Option<String> = conn.get(format!("beacon:{}", ids[1])).await.unwrap();
    assert_eq!(stored, None, "a refused beacon wrote something");
    // The snippet is served to any page.
    let js = testkit::http_raw(&api.addr, "GET", "/v1/beacon.js", &[], b"")
        .await
        .unwrap();
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.text.contains("sendBeacon"));

    // The persist (at view 5) writes views 1-4; view 5 waits for its next view.
    InProcessWorker::start(ctx.clone())
        .run_until(Duration::from_secs(30), "four view rows", || {
            let conn = db.conn.clone();
            async move {
                let n = anonymous_page_view::Entity::find()
                    .filter(anonymous_page_view::Column::SessionId.eq(sid))
                    .count(&conn)
                    .await
                    .ok()?;
                (n == 4).then_some(())
            }
        })
        .await;
    let rows = |conn: sea_orm::DatabaseConnection| async move {
        let mut rows = anonymous_page_view::Entity::find()
            .filter(anonymous_page_view::Column::SessionId.eq(sid))
            .all(&conn)
            .await
            .unwrap();
        rows.sort_by_key(|r| r.view_number);
        rows.iter()
            .map(|r| {
                (
                    r.view_number.unwrap(),
                    r.time_on_page_seconds,
                    r.scroll_depth_percent,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rows(db.conn.clone()).await,
        [
            (1, Some(45), Some(80)),
            (2, Some(15), None),
            (3, Some(9), Some(65)),
            (4, Some(30), None)
        ]
    );
    let left: Option<String> = conn.get(format!("beacon:{}", ids[0])).await.unwrap();
    assert_eq!(left, None, "a written view's beacon stays in Redis");

    // View 6, then view 5's beacon; the session ends idle and its finalize writes 5 and 6.
    let (s, b) = testkit::http(
        &api.addr,
        "POST",
        "/v1/track/pageview",
        Some(TOKEN),
        Some(&view(5)),
    )
    .await
    .unwrap();
    assert_eq!(s, 202, "{b}");
    let a = beacon(json!({"t": signed(4), "scroll": 100, "seconds": 12}).to_string()).await;
    assert_eq!(a.status, 204, "{}", a.text);
    let conn = db.conn.clone();
    InProcessWorker::start(ctx.clone())
        .run_until(Duration::from_secs(30), "the session ended", || {
            session_ended(conn.clone(), sid)
        })
        .await;
    assert_eq!(
        rows(db.conn.clone()).await,
        [
            (1, Some(45), Some(80)),
            (2, Some(15), None),
            (3, Some(9), Some(65)),
            (4, Some(30), None),
            (5, Some(12), Some(100)),
            (6, None, None),
        ]
    );
}

/// An erasure cut after it took the visitor's document (a dropped connection, a crash): the one
/// run again still erases the jobs of the session it took, from what the first run kept, and
/// forgets that when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_repeated_after_a_cut_one_still_erases_the_sessions_jobs() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let fp = redis.token("fp");
    let (s, b) = api
        .call(
            "POST",
            "/v1/track/pageview",
            Some(&json!({"fingerprint": fp, "url": "/cut"})),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    // The first run took the document and the views out of Redis, then was cut: only what it
    // kept names the session now (no row: the session was never persisted).
    let parsed = domain::keys::Fingerprint::parse(&fp).unwrap();
    let mut conn = redis.conn.clone();
    let doc: String = conn
        .get(domain::keys::anon_session_key(&parsed))
        .await
        .unwrap();
    let views: Vec<String> = conn
        .lrange(domain::keys::anon_views_key(&parsed), 0, -1)
        .await
        .unwrap();
    let mut taken = vec![doc];
    taken.extend(views);
    let erasing = domain::keys::anon_erasing_key(&parsed);
    redis.track(&erasing);
    let () = conn
        .set_ex(&erasing, json!(taken).to_string(), 600)
        .await
        .unwrap();
    let _: i64 = conn
        .del(&[
            domain::keys::anon_session_key(&parsed),
            domain::keys::anon_views_key(&parsed),
        ])
        .await
        .unwrap();
    let (s, b) = api
        .call("DELETE", &format!("/v1/anonymous/{fp}"), None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["jobs"], 1,
        "the session's finalize job, found from what was kept: {b}"
    );
    let kept: bool = conn.exists(&erasing).await.unwrap();
    assert!(!kept, "what the erasure took is forgotten when it ends");
}
