//! The queue client against the real Redis: push, lease, fence, retry, dead, stats, retention.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use celeriac_queue::{Ack, JobStatus, NewJob, When};
use common::TestRedis;

#[tokio::test]
async fn push_returns_ids_and_a_unique_key_drops_duplicates() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("push"));
    let one = q.push(NewJob::new(r#"{"n":1}"#)).await.unwrap();
    assert!(one.created);
    let many = q
        .push_many(
            (0..2500)
                .map(|i| NewJob::new(format!(r#"{{"n":{i}}}"#)))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(many.len(), 2500);
    assert!(many.iter().all(|p| p.created));

    let first = q
        .push(NewJob::new("{}").unique("tick:1", Duration::from_secs(60)))
        .await
        .unwrap();
    let second = q
        .push(NewJob::new("{}").unique("tick:1", Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(second.id, first.id);
    assert_eq!(q.stats().await.unwrap().queued, 2502);
}

#[tokio::test]
async fn delayed_and_timed_jobs_wait_for_their_time() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("delay"));
    let later = q
        .push(NewJob::new("{}").at(When::After(Duration::from_millis(300))))
        .await
        .unwrap();
    let far = q
        .push(NewJob::new("{}").at(When::At(chrono_like_now_ms() + 3_600_000)))
        .await
        .unwrap();
    let s = q.stats().await.unwrap();
    assert_eq!((s.queued, s.scheduled), (0, 2));
    assert!(q.fetch(10).await.unwrap().jobs.is_empty());
    assert_eq!(
        q.job(&later.id).await.unwrap().unwrap().status,
        JobStatus::Scheduled
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let f = q.fetch(10).await.unwrap();
    assert_eq!(f.jobs.len(), 1);
    assert_eq!(f.jobs[0].id, later.id);
    assert!(f.next_due_ms.is_some());
    assert_eq!(
        q.job(&far.id).await.unwrap().unwrap().status,
        JobStatus::Scheduled
    );
}

fn chrono_like_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn a_lease_is_fenced_so_stale_and_repeated_acks_change_nothing() {
    let t = TestRedis::new().await;
    let mut cfg = t.config("fence");
    cfg.lease = Duration::from_millis(200);
    let q = t.queue(cfg);
    let p = q.push(NewJob::new(r#"{"x":1}"#)).await.unwrap();
    let first = q.fetch(10).await.unwrap().jobs.remove(0);
    assert_eq!((first.id.as_str(), first.attempt), (p.id.as_str(), 1));
    assert_eq!(
        q.job(&p.id).await.unwrap().unwrap().status,
        JobStatus::Running
    );

    // The worker "dies": its lease expires and the next fetch runs the job again, as attempt 2.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let f = q.fetch(10).await.unwrap();
    assert_eq!(f.reaped, 1);
    assert_eq!(f.jobs.len(), 1);
    assert_eq!(f.jobs[0].attempt, 2);
    let info = q.job(&p.id).await.unwrap().unwrap();
    assert!(info.last_error.unwrap().contains("lease expired"));

    // The lost worker's late ack is stale; the live one's counts once.
    let late = q
        .ack(&[Ack::Done {
            id: p.id.clone(),
            attempt: 1,
        }])
        .await
        .unwrap();
    assert_eq!((late.applied, late.stale), (0, 1));
    let done = Ack::Done {
        id: p.id.clone(),
        attempt: 2,
    };
    let r = q.ack(&[done.clone(), done.clone()]).await.unwrap();
    assert_eq!((r.applied, r.stale), (1, 1));
    let again = q.ack(&[done]).await.unwrap();
    assert_eq!((again.applied, again.stale), (0, 1));
    let s = q.stats().await.unwrap();
    assert_eq!((s.queued, s.running, s.done), (0, 0, 1));
}

#[tokio::test]
async fn renewed_leases_are_not_reaped() {
    let t = TestRedis::new().await;
    let mut cfg = t.config("renew");
    cfg.lease = Duration::from_millis(300);
    let q = t.queue(cfg);
    q.push(NewJob::new("{}")).await.unwrap();
    let j = q.fetch(1).await.unwrap().jobs.remove(0);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(q.renew(&[(j.id.clone(), j.attempt)]).await.unwrap(), 1);
        assert_eq!(q.fetch(1).await.unwrap().reaped, 0);
    }
    assert_eq!(q.renew(&[(j.id.clone(), 99)]).await.unwrap(), 0);
}

#[tokio::test]
async fn crashes_count_as_attempts_and_the_last_one_leaves_the_job_dead() {
    let t = TestRedis::new().await;
    let mut cfg = t.config("crashy");
    cfg.lease = Duration::from_millis(50);
    cfg.max_attempts = 2;
    let q = t.queue(cfg);
    let p = q.push(NewJob::new("{}")).await.unwrap();
    assert_eq!(q.fetch(1).await.unwrap().jobs[0].attempt, 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(q.fetch(1).await.unwrap().jobs[0].attempt, 2);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let f = q.fetch(1).await.unwrap();
    assert!(f.jobs.is_empty());
    let info = q.job(&p.id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::Dead, 2));
}

#[tokio::test]
async fn retries_wait_their_backoff_then_dead_jobs_keep_everything_and_can_be_requeued_or_discarded()
 {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("retry"));
    let p = q
        .push(NewJob::new(r#"{"fingerprint":"abc"}"#))
        .await
        .unwrap();
    let j = q.fetch(1).await.unwrap().jobs.remove(0);
    q.ack(&[Ack::Retry {
        id: j.id.clone(),
        attempt: j.attempt,
        delay: Duration::from_millis(200),
        error: "db down".into(),
    }])
    .await
    .unwrap();
    let s = q.stats().await.unwrap();
    assert_eq!((s.queued, s.scheduled, s.running), (0, 1, 0));
    assert!(q.fetch(1).await.unwrap().jobs.is_empty());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let j = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!(j.attempt, 2);
    q.ack(&[Ack::Dead {
        id: j.id.clone(),
        attempt: 2,
        error: "still down".into(),
    }])
    .await
    .unwrap();
    let info = q.job(&p.id).await.unwrap().unwrap();
    assert_eq!(info.status, JobStatus::Dead);
    assert_eq!(info.attempts, 2);
    assert_eq!(info.last_error.as_deref(), Some("still down"));
    assert_eq!(info.payload, r#"{"fingerprint":"abc"}"#);
    assert!(info.status_ms.is_some() && info.since_ms > 0);
    assert_eq!(q.dead_ids(10).await.unwrap(), vec![p.id.clone()]);

    assert!(q.requeue_dead(&p.id).await.unwrap());
    assert!(!q.requeue_dead(&p.id).await.unwrap());
    let j = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!(j.attempt, 1, "a requeued job starts its attempts afresh");
    q.ack(&[Ack::Dead {
        id: j.id.clone(),
        attempt: 1,
        error: "again".into(),
    }])
    .await
    .unwrap();
    assert!(q.discard_dead(&p.id).await.unwrap());
    assert!(q.job(&p.id).await.unwrap().is_none());
    assert!(
        t.keys().await.iter().all(|k| !k.ends_with(":jobs")),
        "nothing left of the job"
    );
}

#[tokio::test]
async fn released_jobs_go_back_to_the_head_without_counting_an_attempt() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("release"));
    let a = q.push(NewJob::new("{}")).await.unwrap();
    q.push(NewJob::new("{}")).await.unwrap();
    let j = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!(j.id, a.id);
    q.ack(&[Ack::Release {
        id: j.id.clone(),
        attempt: j.attempt,
    }])
    .await
    .unwrap();
    let again = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!((again.id.as_str(), again.attempt), (a.id.as_str(), 1));
}

#[tokio::test]
async fn statistics_are_exact() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("stats"));
    q.push_many((0..10).map(|_| NewJob::new("{}")).collect())
        .await
        .unwrap();
    q.push_many(
        (0..3)
            .map(|_| NewJob::new("{}").at(When::After(Duration::from_secs(3600))))
            .collect(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let jobs = q.fetch(4).await.unwrap().jobs;
    q.ack(&[
        Ack::Done {
            id: jobs[0].id.clone(),
            attempt: 1,
        },
        Ack::Done {
            id: jobs[1].id.clone(),
            attempt: 1,
        },
        Ack::Dead {
            id: jobs[2].id.clone(),
            attempt: 1,
            error: "bad".into(),
        },
    ])
    .await
    .unwrap();
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.queued, s.scheduled, s.running, s.done, s.dead),
        (6, 3, 1, 2, 1)
    );
    assert!(
        s.oldest_waiting_seconds >= 0.03 && s.oldest_waiting_seconds < 5.0,
        "{s:?}"
    );
}

#[tokio::test]
async fn finished_jobs_are_forgotten_after_their_retention_in_bounded_steps() {
    let t = TestRedis::new().await;
    let mut cfg = t.config("retention");
    cfg.done_retention = Duration::from_millis(100);
    cfg.dead_retention = Duration::from_millis(100);
    let q = t.queue(cfg);
    q.push_many((0..1200).map(|_| NewJob::new("{}")).collect())
        .await
        .unwrap();
    let mut acks = Vec::new();
    loop {
        let f = q.fetch(1000).await.unwrap();
        if f.jobs.is_empty() {
            break;
        }
        for (i, j) in f.jobs.into_iter().enumerate() {
            acks.push(if i % 2 == 0 {
                Ack::Done {
                    id: j.id,
                    attempt: j.attempt,
                }
            } else {
                Ack::Dead {
                    id: j.id,
                    attempt: j.attempt,
                    error: "x".into(),
                }
            });
        }
    }
    q.ack(&acks).await.unwrap();
    assert_eq!(
        q.cleanup().await.unwrap(),
        (0, 0),
        "nothing is old enough yet"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(q.cleanup().await.unwrap(), (600, 600));
    assert!(t.keys().await.is_empty(), "{:?}", t.keys().await);
}
