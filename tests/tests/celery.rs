//! The Celery drop-in with the real Celery 5.7 client: send_task and apply_async (args, kwargs,
//! countdown, expires, priority) feed Celeriac's worker, rows appear, and AsyncResult.get() returns.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::time::Duration;

use celeriac_tests::{TestDb, TestRedis, celery_python, eventually, job_context, redis_url};
use chrono::Utc;
use entity::anonymous_session;
use redis::AsyncCommands;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_clients_feed_the_worker_unchanged() {
    let python = tokio::task::spawn_blocking(celery_python).await.unwrap();
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let celery_queue = format!("{}-celery", redis.namespace);
    let ctx = job_context(&db, &redis, &[("CELERY_RESULT_BACKEND", &redis_url())]);
    let fps = [redis.token("fp"), redis.token("fp"), redis.token("fp")];
    for (i, fp) in fps.iter().enumerate() {
        let doc = json!({
            "session_id": Uuid::new_v4(), "device_fingerprint": fp,
            "started_at": Utc::now().to_rfc3339(), "last_activity": Utc::now().to_rfc3339(),
            "pages_visited": 5 + i, "landing_page": "/", "referrer": "", "is_active": true
        });
        let _: () = ctx
            .redis
            .clone()
            .set(format!("anon_session:{fp}"), doc.to_string())
            .await
            .unwrap();
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run_ctx = ctx.clone();
    let worker = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(worker::run::run(run_ctx, async move {
                let _ = stop_rx.await;
            }))
    });

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/celery_client.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .args([
            redis_url(),
            celery_queue.clone(),
            redis_url(),
            fps[0].clone(),
            fps[1].clone(),
            fps[2].clone(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    let intake = worker::celery::intake_queue(ctx.redis.clone(), &ctx.settings, &celery_queue);
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

    let _ = stop_tx.send(());
    tokio::task::spawn_blocking(move || worker.join().unwrap().unwrap())
        .await
        .unwrap();
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
