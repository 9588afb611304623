//! `Queue::erase`: jobs naming an erased visitor are forgotten whole, wherever they wait or
//! ended, and a running one keeps running with its stored payload redacted.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

mod common;

use common::QueueExt;
use queue::{Ack, NewJob, When};
use redis::AsyncCommands;
use testkit::TestRedis;

#[tokio::test]
async fn erase_forgets_waiting_finished_and_dead_jobs_and_redacts_running_ones() {
    let redis = TestRedis::new().await;
    let q = redis.queue(redis.config("erase"));
    let secret = r#"{"fingerprint":"secret"}"#;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(q.push(NewJob::new(secret)).await.unwrap().id);
    }
    let later = q
        .push(NewJob::new(secret).at(When::After(std::time::Duration::from_secs(3600))))
        .await
        .unwrap()
        .id;
    let other = q
        .push(NewJob::new(r#"{"fingerprint":"other"}"#))
        .await
        .unwrap()
        .id;
    // Lease three: one finishes, one dies, one keeps running.
    let fetched = q.fetch(3).await.unwrap();
    assert_eq!(fetched.jobs.len(), 3);
    let (done, dead, running) = (&fetched.jobs[0], &fetched.jobs[1], &fetched.jobs[2]);
    q.ack(&[
        Ack::Done {
            id: done.id.clone(),
            token: done.token,
        },
        Ack::Dead {
            id: dead.id.clone(),
            token: dead.token,
            error: "boom".into(),
        },
    ])
    .await
    .unwrap();
    let mut erase: Vec<String> = ids.clone();
    erase.push(later.clone());
    erase.push("unknown-id".into());
    let n = q
        .erase(&erase, r#"{"fingerprint":"[erased]"}"#)
        .await
        .unwrap();
    assert_eq!(n, 5);
    let stored: Vec<String> = redis.conn.clone().hvals(&q.keys().jobs).await.unwrap();
    assert!(stored.iter().all(|v| !v.contains("secret")), "{stored:?}");
    // Left: the running job (redacted) and the other visitor's job.
    assert_eq!(stored.len(), 2, "{stored:?}");
    let stats = q.stats().await.unwrap();
    assert_eq!((stats.scheduled, stats.running), (0, 1));
    assert_eq!((stats.done, stats.dead), (0, 0));
    // The erased waiting job's id is dropped by the next fetch: only the other job comes out.
    let next = q.fetch(10).await.unwrap();
    let ids: Vec<&str> = next.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, [other.as_str()]);
    assert_eq!(q.stats().await.unwrap().queued, 0);
    // The running job still acknowledges normally.
    let report = q
        .ack(&[Ack::Done {
            id: running.id.clone(),
            token: running.token,
        }])
        .await
        .unwrap();
    assert_eq!(report.applied, 1);
}
