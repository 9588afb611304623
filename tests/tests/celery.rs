//! The Celery drop-in with the real Celery 5.7 client: send_task and apply_async (args, kwargs,
//! countdown, expires, priority) feed Celeriac's worker, rows appear, and AsyncResult.get() returns.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use entity::anonymous_session;
use redis::AsyncCommands;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;
use testkit::venv::celery_python;
use testkit::{PrivateRedis, TestDb, eventually, redis_url, service_env, sigterm, spawn_worker};
use tests::{InProcessWorker, TestRedis, job_context};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_clients_feed_the_worker_unchanged() {
    let python = tokio::task::spawn_blocking(celery_python).await.unwrap();
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let celery_queue = format!("{}-celery", redis.namespace);
    let ctx = job_context(&db, &redis, &[("CELERY_RESULT_BACKEND", &redis_url())]);
    let fps = [redis.token("fp"), redis.token("fp"), redis.token("fp")];
    for (i, fp) in fps.iter().enumerate() {
        tests::put_anon_session(&ctx.redis, fp, 5 + i as u32).await;
    }
    let worker = InProcessWorker::start(ctx.clone());

    let report = tests::python_json(
        &python,
        "celery_client.py",
        &[
            redis_url(),
            celery_queue.clone(),
            redis_url(),
            fps[0].clone(),
            fps[1].clone(),
            fps[2].clone(),
        ],
        &[],
    )
    .await;
    for name in ["positional", "countdown", "priority"] {
        assert_eq!(report["results"][name]["status"], "SUCCESS", "{report}");
    }
    for name in ["unknown", "bad_args"] {
        assert_eq!(report["results"][name]["status"], "FAILURE", "{report}");
    }
    assert_eq!(
        anonymous_session::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        3
    );

    // Expired, unknown, bad arguments and pickle are kept as dead with their reasons.
    let intake =
        worker::celery::intake_queue(ctx.redis.clone(), &ctx.settings, &celery_queue, true);
    let dead = eventually(Duration::from_secs(10), "4 dead", || {
        let intake = intake.clone();
        async move { intake.dead_ids(10).await.ok().filter(|d| d.len() == 4) }
    })
    .await;
    let mut reasons = Vec::new();
    for id in dead {
        reasons.push(intake.job(&id).await.unwrap().unwrap().last_error.unwrap());
    }
    reasons.sort();
    let joined = reasons.join(" | ");
    for expected in [
        "expired",
        "unknown task",
        "invalid arguments",
        "unsupported serializer",
    ] {
        assert!(joined.contains(expected), "{joined}");
    }
    let stats = intake.stats().await.unwrap();
    assert_eq!(
        (stats.queued, stats.scheduled, stats.running),
        (0, 0, 0),
        "{stats:?}"
    );
    let left: i64 = ctx.redis.clone().llen(&celery_queue).await.unwrap();
    assert_eq!(left, 0);

    worker.stop().await;
    // The fleet's totals count every message adopted and the tasks run as jobs.
    let totals: std::collections::HashMap<String, u64> = ctx
        .redis
        .clone()
        .hgetall(domain::workers::metrics_key(&ctx.settings.namespace))
        .await
        .unwrap();
    let sent = report["ids"].as_object().unwrap().len() as u64;
    assert_eq!(totals.get("celery:adopted"), Some(&sent), "{totals:?}");
    assert_eq!(
        totals.get("persist_anonymous_session:succeeded"),
        Some(&3),
        "{totals:?}"
    );
    // The result documents are the Celery client's; remove them with the test.
    for id in report["ids"].as_object().unwrap().values() {
        let _: () = ctx
            .redis
            .clone()
            .del(format!("celery-task-meta-{}", id.as_str().unwrap()))
            .await
            .unwrap();
    }
}

/// The Redis server's clock, epoch ms.
async fn redis_ms(conn: &mut redis::aio::ConnectionManager) -> i64 {
    let (s, us): (i64, i64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    s * 1000 + us / 1000
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// A Celery protocol-2 message for `persist_anonymous_session(fingerprint)`, as Celery writes it.
fn persist_message(id: &str, fingerprint: &str, eta: Option<i64>, expires: Option<i64>) -> String {
    use base64::Engine as _;
    let body = json!([[fingerprint], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]);
    json!({
        "body": base64::engine::general_purpose::STANDARD.encode(body.to_string()),
        "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"lang": "py", "task": "analytics.tasks.persist_anonymous_session", "id": id,
                    "eta": eta.map(iso), "expires": expires.map(iso), "retries": 0,
                    "root_id": id, "parent_id": null, "ignore_result": false},
        "properties": {"correlation_id": id, "delivery_mode": 2, "priority": 0, "body_encoding": "base64",
                       "delivery_info": {"exchange": "", "routing_key": "celery"},
                       "delivery_tag": Uuid::new_v4().to_string()}
    })
    .to_string()
}

/// Finding 4: the real `worker` binary on a wall clock `skew` off Redis's (libfaketime, e.g.
/// "-5s"). Every countdown task runs exactly once and not before its eta; tasks expired on
/// Redis's clock are refused, tasks not yet expired run. Effects are counted: the result
/// documents published per task id, and the session rows.
async fn countdown_tasks_under_skew(skew: &str) {
    const N: usize = 50;
    const FRESH: usize = 5;
    const STALE: usize = 5;
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let mut conn = redis.conn.clone();
    let celery_queue = format!("{}-celery", redis.namespace);
    let tag = redis.token("skew");
    let fp = |kind: &str, i: usize| format!("{tag}-{kind}-{i}");
    let task_id = |kind: &str, i: usize| format!("{}-{kind}-{i}", redis.namespace);
    let mut pipe = redis::pipe();
    for (kind, count) in [("cd", N), ("fresh", FRESH), ("stale", STALE), ("warm", 1)] {
        for i in 0..count {
            let f = fp(kind, i);
            let doc = json!({"session_id": Uuid::new_v4(), "device_fingerprint": f,
                             "started_at": Utc::now().to_rfc3339(), "last_activity": Utc::now().to_rfc3339(),
                             "pages_visited": 2, "landing_page": "/", "referrer": "", "is_active": true});
            pipe.set_ex(format!("anon_session:{f}"), doc.to_string(), 600)
                .ignore();
        }
    }
    let _: () = pipe.query_async(&mut conn).await.unwrap();

    // Every result document published for this test's tasks, with when it arrived.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .psubscribe(format!("celery-task-meta-{}-*", redis.namespace))
        .await
        .unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<(String, String, i64)>();
    let listener = tokio::spawn(async move {
        use futures::StreamExt;
        let mut messages = pubsub.on_message();
        while let Some(m) = messages.next().await {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let id = m
                .get_channel_name()
                .trim_start_matches("celery-task-meta-")
                .to_owned();
            let doc: serde_json::Value =
                serde_json::from_str(&m.get_payload::<String>().unwrap()).unwrap();
            let status = doc["status"].as_str().unwrap_or_default().to_owned();
            if seen_tx.send((id, status, at)).is_err() {
                break;
            }
        }
    });
    // This process and Redis share the host's clock, so arrival times compare with etas.
    let local = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((redis_ms(&mut conn).await - local).abs() < 100);

    let preload = testkit::libfaketime();
    // The test's database, namespace and Celery queue (`celery_queue`).
    let mut env = service_env(&db, &redis);
    env.extend([
        ("CELERY_RESULT_BACKEND".into(), redis_url()),
        ("WORKER_CONCURRENCY".into(), "8".into()),
        ("LD_PRELOAD".into(), preload.display().to_string()),
        ("FAKETIME".into(), skew.into()),
        // Only the wall clock is skewed; tokio's timers run on the monotonic clock.
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]);
    // The skew really applies to a process started this way.
    let date = std::process::Command::new("date")
        .arg("+%s%3N")
        .envs(&env)
        .output()
        .unwrap();
    let skewed: i64 = String::from_utf8_lossy(&date.stdout)
        .trim()
        .parse()
        .unwrap();
    let offset = skewed - redis_ms(&mut conn).await;
    let want: i64 = skew.trim_end_matches('s').parse::<i64>().unwrap() * 1000;
    assert!(
        (offset - want).abs() < 500,
        "libfaketime offset {offset} ms, wanted {want}"
    );

    let mut worker = spawn_worker(env);
    // Warm up: once a plain task has run, the worker is consuming.
    let _: () = conn
        .lpush(
            &celery_queue,
            persist_message(&task_id("warm", 0), &fp("warm", 0), None, None),
        )
        .await
        .unwrap();
    let warm = tokio::time::timeout(Duration::from_secs(30), seen.recv())
        .await
        .expect("the worker ran a plain task")
        .unwrap();
    assert_eq!(
        (warm.0.as_str(), warm.1.as_str()),
        (task_id("warm", 0).as_str(), "SUCCESS")
    );

    let t0 = redis_ms(&mut conn).await;
    let mut etas = HashMap::new();
    let mut msgs = Vec::new();
    for i in 0..N {
        let eta = t0 + 2000 + (i as i64 % 10) * 100;
        etas.insert(task_id("cd", i), eta);
        msgs.push(persist_message(
            &task_id("cd", i),
            &fp("cd", i),
            Some(eta),
            None,
        ));
    }
    for i in 0..FRESH {
        msgs.push(persist_message(
            &task_id("fresh", i),
            &fp("fresh", i),
            None,
            Some(t0 + 4000),
        ));
    }
    for i in 0..STALE {
        msgs.push(persist_message(
            &task_id("stale", i),
            &fp("stale", i),
            None,
            Some(t0 - 2000),
        ));
    }
    let _: () = conn.lpush(&celery_queue, msgs).await.unwrap();

    // Collect until every task has answered, then 3 s more for any second run.
    let mut results: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut quiet_until = None;
    loop {
        let until = quiet_until.unwrap_or(deadline);
        match tokio::time::timeout_at(until, seen.recv()).await {
            Ok(Some((id, status, at))) => results.entry(id).or_default().push((status, at)),
            Ok(None) => break,
            Err(_) => break,
        }
        if quiet_until.is_none() && results.len() == N + FRESH + STALE {
            quiet_until = Some(tokio::time::Instant::now() + Duration::from_secs(3));
        }
    }
    let status = sigterm(&mut worker, Duration::from_secs(40)).await;
    assert!(status.success(), "worker exits 0: {status}");
    listener.abort();

    let mut problems = Vec::new();
    for i in 0..N {
        let id = task_id("cd", i);
        let eta = etas[&id];
        match results.get(&id).map(Vec::as_slice) {
            Some([(s, at)]) if s == "SUCCESS" && *at >= eta => {}
            other => problems.push(format!("{id} (eta {eta}): {other:?}")),
        }
    }
    for i in 0..FRESH {
        let id = task_id("fresh", i);
        match results.get(&id).map(Vec::as_slice) {
            Some([(s, _)]) if s == "SUCCESS" => {}
            other => problems.push(format!("{id} (expires in 4 s): {other:?}")),
        }
    }
    for i in 0..STALE {
        let id = task_id("stale", i);
        match results.get(&id).map(Vec::as_slice) {
            Some([(s, _)]) if s == "REVOKED" => {}
            other => problems.push(format!("{id} (expired 2 s ago): {other:?}")),
        }
    }
    assert!(
        problems.is_empty(),
        "worker clock {skew}: {} of {} tasks wrong: {problems:#?}",
        problems.len(),
        N + FRESH + STALE
    );
    // The effects: one row per task that ran (the warm-up, the countdown and the fresh ones).
    assert_eq!(
        anonymous_session::Entity::find()
            .count(&db.conn)
            .await
            .unwrap(),
        (1 + N + FRESH) as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countdown_tasks_run_once_on_time_with_the_worker_clock_5s_behind_redis() {
    countdown_tasks_under_skew("-5s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countdown_tasks_run_once_on_time_with_the_worker_clock_5s_ahead_of_redis() {
    countdown_tasks_under_skew("+5s").await;
}

/// `INFO stats` `total_connections_received` of the Redis behind `conn`.
async fn connections_received(conn: &mut redis::aio::ConnectionManager) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_connections_received in INFO stats")
}

/// Finding 10: an idle worker (the Celery intake blocking in `BLMOVE` on its own connection)
/// opens no new Redis connections. Measured on a private redis-server, so nothing else connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_opens_no_new_redis_connections() {
    const IDLE: Duration = Duration::from_secs(60);
    let server = PrivateRedis::start(false);
    let db = TestDb::sqlite().await;
    let mut conn = domain::conn::connect_single(&server.url()).await.unwrap();
    let mut worker = spawn_worker([
        ("DATABASE_URL", db.url.clone()),
        ("REDIS_URL", server.url()),
        ("CELERY_QUEUES", "celery".to_owned()),
    ]);
    // Started: a Celery message has gone through the intake (its blocking connection is open).
    let _: () = conn
        .lpush("celery", persist_message("warm-up", "idle-fp", None, None))
        .await
        .unwrap();
    // The default namespace and Celery queue: the intake queue `celery.celery`.
    let done = queue::Keys::new("celeriac", "celery.celery").done;
    eventually(Duration::from_secs(30), "the warm-up message done", || {
        let (mut conn, done) = (conn.clone(), done.clone());
        async move {
            let n: u64 = conn.zcard(&done).await.ok()?;
            (n == 1).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = connections_received(&mut conn).await;
    tokio::time::sleep(IDLE).await;
    let after = connections_received(&mut conn).await;
    println!(
        "idle worker: {} new Redis connections in {} s",
        after - before,
        IDLE.as_secs()
    );
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker is still up"
    );
    assert_eq!(
        after - before,
        0,
        "an idle worker opened {} connections in {} s",
        after - before,
        IDLE.as_secs()
    );
    let status = sigterm(&mut worker, Duration::from_secs(40)).await;
    assert!(status.success(), "worker exits 0: {status}");
}

/// Issue 18: a Celery message's `timelimit` header (`time_limit=1` on `apply_async`) is the run's
/// limit, over the job type's default (300 s): the hung run (its UPDATE waits for a row lock the
/// test holds) is cancelled after a second, kept for a retry with the reason, and the retry
/// succeeds once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_celery_time_limit_cancels_a_hung_run_and_the_retry_succeeds() {
    use base64::Engine as _;
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let celery_queue = format!("{}-celery", redis.namespace);
    let api = tests::TestApi::start(&db, &redis, &[]).await;
    let ctx = job_context(&db, &redis, &[]);
    let hashed = api
        .login(&redis, json!({"user_agent": "Mozilla/5.0 Chrome/120"}))
        .await;
    // The login's own enhance job is not in Celery's queue: drop it, so only the message runs.
    let native = ctx.queues.get("enhance_session_async").unwrap().clone();
    let _: () = ctx
        .redis
        .clone()
        .del(format!(
            "{}:{{enhance_session_async}}:pending",
            ctx.settings.namespace
        ))
        .await
        .unwrap();
    assert_eq!(native.stats().await.unwrap().queued, 0);
    let lock = tests::lock_user_session(&db, &hashed).await;
    let id = Uuid::new_v4().to_string();
    let body =
        json!([[hashed], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]);
    let message = json!({
        "body": base64::engine::general_purpose::STANDARD.encode(body.to_string()),
        "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"lang": "py", "task": "accounts.tasks.enhance_session_async", "id": id,
                    "eta": null, "expires": null, "retries": 0, "timelimit": [null, 1],
                    "root_id": id, "parent_id": null, "ignore_result": true},
        "properties": {"correlation_id": id, "delivery_mode": 2, "priority": 0, "body_encoding": "base64",
                       "delivery_info": {"exchange": "", "routing_key": "celery"},
                       "delivery_tag": Uuid::new_v4().to_string()}
    });
    let _: () = ctx
        .redis
        .clone()
        .lpush(&celery_queue, message.to_string())
        .await
        .unwrap();
    let worker = InProcessWorker::start(ctx.clone());
    let intake =
        worker::celery::intake_queue(ctx.redis.clone(), &ctx.settings, &celery_queue, true);
    tests::cancelled_by_time_limit(&intake).await;
    lock.rollback().await.unwrap();
    eventually(Duration::from_secs(30), "the retry done", || {
        let intake = intake.clone();
        async move { intake.stats().await.ok().filter(|s| s.done == 1) }
    })
    .await;
    worker.stop().await;
    let row = tests::user_session_by_hash(&db.conn, &hashed)
        .await
        .unwrap();
    assert_ne!(row.device_info, json!({}));
    assert_eq!(intake.stats().await.unwrap().dead, 0);
}

/// An idle intake on the fleet's Redis wakes its fetchers when a message arrives: `BLMOVE` moves
/// the message into the intake queue's staging list and a wake-up goes out on the queue's
/// channel, so the message does not wait for the fetchers' next idle poll; then it runs. A
/// message that is not JSON at all (the intake hands messages over unparsed) is dead with the
/// reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_intake_wakes_its_fetchers_when_a_message_arrives() {
    use futures::StreamExt;
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let celery_queue = format!("{}-celery", redis.namespace);
    let ctx = job_context(&db, &redis, &[]);
    let fp = redis.token("fp");
    tests::put_anon_session(&ctx.redis, &fp, 3).await;
    let intake =
        worker::celery::intake_queue(ctx.redis.clone(), &ctx.settings, &celery_queue, true);
    let client = redis::Client::open(redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&intake.keys().notify).await.unwrap();
    let worker = InProcessWorker::start(ctx.clone());
    // Idle by now: its fetchers asleep, the intake waiting in BLMOVE.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut conn = redis.conn.clone();
    let _: () = conn
        .lpush(
            &celery_queue,
            persist_message(&redis.token("task"), &fp, None, None),
        )
        .await
        .unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(10), pubsub.on_message().next()).await;
    assert!(
        matches!(woke, Ok(Some(_))),
        "no wake-up on {}",
        intake.keys().notify
    );
    eventually(Duration::from_secs(10), "the session row", || {
        let conn = db.conn.clone();
        async move {
            let n = anonymous_session::Entity::find().count(&conn).await.ok()?;
            (n == 1).then_some(())
        }
    })
    .await;
    let _: () = conn.lpush(&celery_queue, "{not json").await.unwrap();
    let dead = eventually(Duration::from_secs(10), "the garbage dead", || {
        let intake = intake.clone();
        async move { intake.dead_ids(10).await.ok().filter(|d| d.len() == 1) }
    })
    .await;
    let reason = intake.job(&dead[0]).await.unwrap().unwrap().last_error;
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("not a Celery JSON envelope")),
        "{reason:?}"
    );
    let stats = intake.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running), (0, 0));
    worker.stop().await;
}
