//! The scheduler against the real Redis: three copies enqueue each tick once; a tick missed while
//! no scheduler ran is enqueued once at start.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::collections::HashMap;
use std::time::Duration;

use celeriac_tests::TestRedis;
use redis::AsyncCommands;
use worker::config::Settings;
use worker::queues::Queues;
use worker::scheduler::{self, Schedule};

fn setup(redis: &TestRedis, schedule: &[(&str, &str)]) -> (Queues, Schedule) {
    let mut vars = HashMap::from([("CELERIAC_NAMESPACE".to_owned(), redis.namespace.clone())]);
    for job in [
        "CLEANUP_OLD_ANONYMOUS_DATA",
        "AGGREGATE_PAGE_ANALYTICS",
        "FINALIZE_IDLE_SESSIONS",
    ] {
        vars.insert(format!("SCHEDULE_{job}"), "off".into());
    }
    for (k, v) in schedule {
        vars.insert((*k).into(), (*v).into());
    }
    let settings = Settings::from_vars(&vars).unwrap();
    (
        Queues::new(redis.conn.clone(), &settings),
        Schedule::from_vars(&vars).unwrap(),
    )
}

async fn tick_keys(redis: &TestRedis, job: &str) -> Vec<i64> {
    let pattern = format!("{}:{{{job}}}:unique:cron:{job}:*", redis.namespace);
    let keys: Vec<String> = redis.conn.clone().keys(pattern).await.unwrap();
    let mut ticks: Vec<i64> = keys
        .iter()
        .filter_map(|k| k.rsplit(':').next()?.parse().ok())
        .collect();
    ticks.sort();
    ticks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_schedulers_enqueue_every_tick_exactly_once() {
    let redis = TestRedis::new().await;
    let (queues, schedule) = setup(
        &redis,
        &[("SCHEDULE_FINALIZE_IDLE_SESSIONS", "* * * * * *")],
    );
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut copies = Vec::new();
    for _ in 0..3 {
        let mut stop = stop_tx.subscribe();
        let (conn, queues, schedule, ns) = (
            redis.conn.clone(),
            queues.clone(),
            schedule.clone(),
            redis.namespace.clone(),
        );
        copies.push(tokio::spawn(async move {
            scheduler::run(conn, queues, &ns, schedule, async move {
                let _ = stop.recv().await;
            })
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let _ = stop_tx.send(());
    for c in copies {
        c.await.unwrap().unwrap();
    }
    let q = queues.get("finalize_idle_sessions").unwrap();
    let queued = q.stats().await.unwrap().queued;
    let ticks = tick_keys(&redis, "finalize_idle_sessions").await;
    assert!(ticks.len() >= 4, "ticks {ticks:?}");
    assert_eq!(queued, ticks.len() as u64, "one job per tick");
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] == 1),
        "no tick skipped: {ticks:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_missed_while_no_scheduler_ran_is_enqueued_once_at_start() {
    let redis = TestRedis::new().await;
    let (queues, schedule) = setup(
        &redis,
        &[("SCHEDULE_AGGREGATE_PAGE_ANALYTICS", "0 0 * * * *")],
    );
    // The last tick any scheduler enqueued was five hours ago.
    let five_hours_ago = chrono::Utc::now().timestamp() - 5 * 3600;
    let _: () = redis
        .conn
        .clone()
        .set(
            format!(
                "{}:scheduler:last:aggregate_page_analytics",
                redis.namespace
            ),
            five_hours_ago,
        )
        .await
        .unwrap();
    let (conn, q2, ns) = (redis.conn.clone(), queues.clone(), redis.namespace.clone());
    let run = tokio::spawn(async move {
        scheduler::run(
            conn,
            q2,
            &ns,
            schedule,
            tokio::time::sleep(Duration::from_millis(800)),
        )
        .await
    });
    run.await.unwrap().unwrap();
    let q = queues.get("aggregate_page_analytics").unwrap();
    assert_eq!(
        q.stats().await.unwrap().queued,
        1,
        "five missed ticks, one catch-up run"
    );
}
