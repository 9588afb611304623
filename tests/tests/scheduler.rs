//! The scheduler against the real Redis: three copies enqueue each tick once; a tick missed while
//! no scheduler ran is enqueued once at start.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::collections::HashMap;
use std::time::Duration;

use domain::config::Settings;
use domain::queues::Queues;
use redis::AsyncCommands;
use tests::TestRedis;
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
        Queues::new(domain::conn::RedisConn::from(redis.conn.clone()), &settings),
        Schedule::from_vars(&vars).unwrap(),
    )
}

/// Redis's clock, in ms: the scheduler's ticks are whole seconds of wall time.
async fn redis_ms(redis: &TestRedis) -> i64 {
    let (s, us): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut redis.conn.clone())
        .await
        .unwrap();
    s * 1000 + us / 1000
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
            scheduler::run(
                domain::conn::RedisConn::from(conn),
                queues,
                &ns,
                schedule,
                async move {
                    let _ = stop.recv().await;
                },
            )
            .await
        }));
    }
    // The ticks that fell while the copies ran, counted on a clock of the test's own: one job
    // each, whatever the copies wrote about them. A duplicate per copy would triple the count.
    // Every copy is up before the window opens.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let from = redis_ms(&redis).await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let to = redis_ms(&redis).await;
    let _ = stop_tx.send(());
    for c in copies {
        c.await.unwrap().unwrap();
    }
    let ticks = (to / 1000 - from / 1000) as u64;
    let q = queues.get("finalize_idle_sessions").unwrap();
    let queued = q.stats().await.unwrap().queued;
    // The copies run before `from` and until after `to`: every tick in the window is enqueued,
    // and at most one more falls between `to` and the stop.
    assert!(
        (ticks..=ticks + 1).contains(&queued) && queued >= 3,
        "{queued} jobs for {ticks} ticks"
    );
    // What the copies published for the API and the console: the cron, the next tick after the
    // latest, and which copy enqueued the latest (all three are this process).
    let ns = &redis.namespace;
    let published: String = redis
        .conn
        .clone()
        .hget(domain::schedules::entries_key(ns), "finalize_idle_sessions")
        .await
        .unwrap();
    let published: domain::schedules::Published = serde_json::from_str(&published).unwrap();
    assert_eq!(published.cron, "* * * * * *");
    let last: i64 = redis
        .conn
        .clone()
        .get(domain::schedules::last_tick_key(
            ns,
            "finalize_idle_sessions",
        ))
        .await
        .unwrap();
    // The latest writer wins: a copy that handled the last tick late may publish the tick before.
    let next = published.next_tick.unwrap().timestamp();
    assert!(
        (last..=last + 1).contains(&next),
        "next {next}, last {last}"
    );
    let by: String = redis
        .conn
        .clone()
        .hget(
            domain::schedules::enqueued_by_key(ns),
            "finalize_idle_sessions",
        )
        .await
        .unwrap();
    assert!(by.ends_with(&format!(":{}", std::process::id())), "{by}");
    let off: Option<String> = redis
        .conn
        .clone()
        .hget(
            domain::schedules::entries_key(ns),
            "cleanup_old_anonymous_data",
        )
        .await
        .unwrap();
    assert_eq!(off, None, "a schedule turned off is not published");
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
            domain::conn::RedisConn::from(conn),
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
