//! The queue client against the real Redis: push, lease, fence, retry, dead, stats, retention.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::QueueExt;
use queue::{Ack, JobStatus, ListState, NewJob, When};
use testkit::TestRedis;

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
    assert!(f.jobs[0].token > first.token);
    let info = q.job(&p.id).await.unwrap().unwrap();
    assert!(info.last_error.unwrap().contains("lease expired"));

    // The lost worker's late ack is stale; the live one's counts once.
    let late = q
        .ack(&[Ack::Done {
            id: p.id.clone(),
            token: first.token,
        }])
        .await
        .unwrap();
    assert_eq!((late.applied, late.stale), (0, 1));
    let done = Ack::Done {
        id: p.id.clone(),
        token: f.jobs[0].token,
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
        assert_eq!(
            q.renew(&[(j.id.clone(), j.token)]).await.unwrap().extended,
            1
        );
        assert_eq!(q.fetch(1).await.unwrap().reaped, 0);
    }
    assert_eq!(
        q.renew(&[(j.id.clone(), j.token + 1)])
            .await
            .unwrap()
            .extended,
        0
    );
}

/// A renewal counts every lease it holds, also one renewed in the millisecond it was taken or
/// last renewed (its deadline does not move then); back-to-back renewals land in one
/// millisecond often.
#[tokio::test]
async fn a_renewal_counts_a_lease_whose_deadline_did_not_move() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("renew-same-ms"));
    q.push(NewJob::new("{}")).await.unwrap();
    let j = q.fetch(1).await.unwrap().jobs.remove(0);
    for _ in 0..50 {
        assert_eq!(
            q.renew(&[(j.id.clone(), j.token)]).await.unwrap().extended,
            1
        );
    }
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
        token: j.token,
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
        token: j.token,
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
        token: j.token,
        error: "again".into(),
    }])
    .await
    .unwrap();
    assert!(q.discard_dead(&p.id).await.unwrap());
    assert!(q.job(&p.id).await.unwrap().is_none());
    assert!(
        t.keys()
            .await
            .iter()
            .all(|k| !k.ends_with(":jobs") && !k.ends_with(":attempts") && !k.ends_with(":leases")),
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
        token: j.token,
    }])
    .await
    .unwrap();
    let again = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!((again.id.as_str(), again.attempt), (a.id.as_str(), 1));
    assert!(again.token > j.token, "a new lease, a new token");
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
            token: jobs[0].token,
        },
        Ack::Done {
            id: jobs[1].id.clone(),
            token: jobs[1].token,
        },
        Ack::Dead {
            id: jobs[2].id.clone(),
            token: jobs[2].token,
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
                    token: j.token,
                }
            } else {
                Ack::Dead {
                    id: j.id,
                    token: j.token,
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
    // Only the queue's lease counter stays (one small key per queue, so tokens never repeat).
    let left = t.keys().await;
    assert!(left.iter().all(|k| k.ends_with(":lease_seq")), "{left:?}");
}

/// The Redis server's clock, epoch ms.
async fn redis_now_ms(t: &TestRedis) -> i64 {
    let (s, us): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut t.conn.clone())
        .await
        .unwrap();
    s * 1000 + us / 1000
}

/// Finding 5: A hands a job back, B leases it, A's hand-back is sent again (the acker resends a
/// batch after a lost reply). The resent hand-back must not drop B's lease, so C gets nothing
/// while B runs, and B's outcome is recorded.
#[tokio::test]
async fn a_resent_hand_back_cannot_drop_the_next_lease() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("handback"));
    let p = q.push(NewJob::new("{}")).await.unwrap();
    let a = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!((a.id.as_str(), a.attempt), (p.id.as_str(), 1));
    let hand_back = Ack::Release {
        id: a.id.clone(),
        token: a.token,
    };
    assert_eq!(
        q.ack(std::slice::from_ref(&hand_back))
            .await
            .unwrap()
            .applied,
        1
    );

    let b = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!(b.id, p.id);
    assert_eq!(b.attempt, 1, "the hand-back cost no attempt");
    assert_ne!(b.token, a.token, "a new lease gets a new token");

    let resent = q.ack(&[hand_back]).await.unwrap();
    assert_eq!(
        (resent.applied, resent.stale),
        (0, 1),
        "A's resent hand-back is stale"
    );
    let c = q.fetch(1).await.unwrap();
    assert!(c.jobs.is_empty(), "C got a lease while B holds one: {c:?}");
    let info = q.job(&p.id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::Running, 1));
    // A renewal counts only when it moves the deadline: let the clock pass the fetch's millisecond.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        q.renew(&[(b.id.clone(), b.token)]).await.unwrap().extended,
        1
    );
    assert_eq!(
        q.renew(&[(a.id.clone(), a.token)]).await.unwrap().extended,
        0
    );

    let r = q
        .ack(&[Ack::Done {
            id: b.id.clone(),
            token: b.token,
        }])
        .await
        .unwrap();
    assert_eq!((r.applied, r.stale), (1, 0));
    let s = q.stats().await.unwrap();
    assert_eq!((s.queued, s.running, s.done), (0, 0, 1));
}

/// A requeue starts the attempts afresh but not the tokens: a worker whose lease was reaped
/// before the job died and was requeued cannot record, renew or hand back the new lease.
#[tokio::test]
async fn a_zombie_lease_from_before_a_requeue_is_fenced_out() {
    let t = TestRedis::new().await;
    let mut cfg = t.config("zombie");
    cfg.lease = Duration::from_millis(100);
    cfg.max_attempts = 1;
    let q = t.queue(cfg);
    let p = q.push(NewJob::new("{}")).await.unwrap();
    let zombie = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!(zombie.attempt, 1);

    // The zombie stalls: its lease is reaped at its last attempt, so the job is dead.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(q.fetch(1).await.unwrap().reaped, 1);
    assert_eq!(q.job(&p.id).await.unwrap().unwrap().status, JobStatus::Dead);
    assert!(q.requeue_dead(&p.id).await.unwrap());
    let live = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!((live.id.as_str(), live.attempt), (p.id.as_str(), 1));
    assert!(live.token > zombie.token);

    // The zombie wakes up: none of its outcomes or renewals apply.
    assert_eq!(
        q.renew(&[(zombie.id.clone(), zombie.token)])
            .await
            .unwrap()
            .extended,
        0
    );
    for ack in [
        Ack::Done {
            id: zombie.id.clone(),
            token: zombie.token,
        },
        Ack::Release {
            id: zombie.id.clone(),
            token: zombie.token,
        },
        Ack::Dead {
            id: zombie.id.clone(),
            token: zombie.token,
            error: "zombie".into(),
        },
    ] {
        let r = q.ack(&[ack]).await.unwrap();
        assert_eq!((r.applied, r.stale), (0, 1));
    }
    let info = q.job(&p.id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::Running, 1));
    let r = q
        .ack(&[Ack::Done {
            id: live.id.clone(),
            token: live.token,
        }])
        .await
        .unwrap();
    assert_eq!((r.applied, r.stale), (1, 0));
    assert_eq!(q.job(&p.id).await.unwrap().unwrap().status, JobStatus::Done);
}

/// Everything a queue holds about its jobs, to compare before and after.
async fn snapshot(t: &TestRedis, q: &queue::Queue<redis::aio::ConnectionManager>) -> String {
    use redis::AsyncCommands;
    let k = q.keys();
    let mut c = t.conn.clone();
    let pending: Vec<String> = c.lrange(&k.pending, 0, -1).await.unwrap();
    let mut out = format!("pending={pending:?}");
    for z in [&k.scheduled, &k.running, &k.done, &k.dead] {
        let v: Vec<(String, f64)> = c.zrange_withscores(z, 0, -1).await.unwrap();
        out += &format!(" {z}={v:?}");
    }
    for h in [&k.jobs, &k.attempts, &k.errors, &k.leases] {
        let v: std::collections::BTreeMap<String, String> = c.hgetall(h).await.unwrap();
        out += &format!(" {h}={v:?}");
    }
    out
}

/// The acker resends a whole batch after any error, a lost reply included: recording a batch of
/// outcomes twice changes nothing the second time, even once a job has been leased again.
#[tokio::test]
async fn a_batch_of_outcomes_recorded_twice_changes_nothing_the_second_time() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("twice"));
    q.push_many(
        (0..5)
            .map(|i| NewJob::new(format!(r#"{{"n":{i}}}"#)))
            .collect(),
    )
    .await
    .unwrap();
    let j = q.fetch(5).await.unwrap().jobs;
    let batch = vec![
        Ack::Release {
            id: j[0].id.clone(),
            token: j[0].token,
        },
        Ack::Retry {
            id: j[1].id.clone(),
            token: j[1].token,
            delay: Duration::from_secs(60),
            error: "later".into(),
        },
        Ack::Done {
            id: j[2].id.clone(),
            token: j[2].token,
        },
        Ack::Dead {
            id: j[3].id.clone(),
            token: j[3].token,
            error: "broken".into(),
        },
        Ack::Snooze {
            id: j[4].id.clone(),
            token: j[4].token,
            delay: Duration::from_secs(60),
        },
    ];
    let first = q.ack(&batch).await.unwrap();
    assert_eq!((first.applied, first.stale), (5, 0));
    let after_first = snapshot(&t, &q).await;
    let again = q.ack(&batch).await.unwrap();
    assert_eq!((again.applied, again.stale), (0, 5));
    assert_eq!(snapshot(&t, &q).await, after_first);

    // The handed-back job is leased again; the batch arrives a third time.
    let next = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!((next.id.as_str(), next.attempt), (j[0].id.as_str(), 1));
    let before = snapshot(&t, &q).await;
    let third = q.ack(&batch).await.unwrap();
    assert_eq!((third.applied, third.stale), (0, 5));
    assert_eq!(snapshot(&t, &q).await, before);
    assert_eq!(
        q.job(&next.id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
}

/// A snooze costs no attempt: a job snoozed more times than it has attempts is still alive,
/// each lease is its first attempt, no error is written, and it finally runs.
#[tokio::test]
async fn snoozes_cost_no_attempt_and_write_no_error() {
    let t = TestRedis::new().await;
    let mut cfg = t.config("snooze");
    cfg.max_attempts = 2;
    let q = t.queue(cfg);
    let p = q.push(NewJob::new(r#"{"n":1}"#)).await.unwrap();
    let mut tokens = Vec::new();
    for _ in 0..5 {
        let j = q.fetch(1).await.unwrap().jobs.remove(0);
        assert_eq!((j.id.as_str(), j.attempt), (p.id.as_str(), 1));
        tokens.push(j.token);
        let r = q
            .ack(&[Ack::Snooze {
                id: j.id.clone(),
                token: j.token,
                delay: Duration::from_millis(1),
            }])
            .await
            .unwrap();
        assert_eq!(r.applied, 1);
        let info = q.job(&p.id).await.unwrap().unwrap();
        assert_eq!((info.status, info.attempts), (JobStatus::Scheduled, 0));
        assert_eq!(info.last_error, None);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(tokens.windows(2).all(|w| w[1] > w[0]), "{tokens:?}");
    let j = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!(j.attempt, 1);
    q.ack(&[Ack::Done {
        id: j.id.clone(),
        token: j.token,
    }])
    .await
    .unwrap();
    let info = q.job(&p.id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::Done, 1));
    assert_eq!(info.payload, r#"{"n":1}"#);
}

/// A snoozed job is due at the Redis server's TIME (when the snooze is recorded) + the delay:
/// its scheduled score and its stored header say so, and it is not leased a moment earlier.
#[tokio::test]
async fn a_snoozed_job_falls_due_by_redis_time() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("snooze-due"));
    let p = q.push(NewJob::new("{}")).await.unwrap();
    let j = q.fetch(1).await.unwrap().jobs.remove(0);
    let before = redis_now_ms(&t).await;
    q.ack(&[Ack::Snooze {
        id: j.id.clone(),
        token: j.token,
        delay: Duration::from_millis(400),
    }])
    .await
    .unwrap();
    let after = redis_now_ms(&t).await;
    let info = q.job(&p.id).await.unwrap().unwrap();
    assert_eq!(info.status, JobStatus::Scheduled);
    let due = info.status_ms.unwrap();
    assert!(
        (before + 400..=after + 400).contains(&due),
        "due {due} not within [{}, {}]",
        before + 400,
        after + 400
    );
    assert_eq!(info.since_ms, due, "the header carries the due time");
    loop {
        let f = q.fetch(1).await.unwrap();
        if let Some(j) = f.jobs.first() {
            assert!(f.now_ms >= due, "leased at {} before due {due}", f.now_ms);
            assert_eq!((j.id.as_str(), j.attempt), (p.id.as_str(), 1));
            break;
        }
        assert!(
            f.now_ms < due + 1000,
            "not leased a second after it fell due"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// With a done retention of zero a finished job is forgotten at once: nothing of it stays, its
/// lease token included (only the queue's lease counter remains).
#[tokio::test]
async fn a_job_forgotten_at_once_leaves_nothing_behind() {
    let t = TestRedis::new().await;
    let mut cfg = t.config("forget");
    cfg.done_retention = Duration::ZERO;
    let q = t.queue(cfg);
    let p = q.push(NewJob::new("{}")).await.unwrap();
    let j = q.fetch(1).await.unwrap().jobs.remove(0);
    q.ack(&[Ack::Done {
        id: j.id.clone(),
        token: j.token,
    }])
    .await
    .unwrap();
    assert!(q.job(&p.id).await.unwrap().is_none());
    let left = t.keys().await;
    assert!(left.iter().all(|k| k.ends_with(":lease_seq")), "{left:?}");
}

/// Pages of each state hold what is there, in order, bounded, with the total; every dead job can
/// be requeued or discarded at once.
#[tokio::test]
async fn jobs_list_by_state_in_bounded_pages_and_dead_ones_go_back_or_away_all_at_once() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("list"));
    let pushed = q
        .push_many(
            (0..250)
                .map(|i| NewJob::new(format!(r#"{{"n":{i}}}"#)))
                .collect(),
        )
        .await
        .unwrap();
    q.push(NewJob::new(r#"{"later":1}"#).at(When::After(Duration::from_secs(600))))
        .await
        .unwrap();
    // 250 queued: pages of at most 100, in line order, then the rest.
    let page = q.list(ListState::Queued, 0, 1000).await.unwrap();
    assert_eq!(
        (page.jobs.len(), page.total, page.next),
        (100, Some(250), Some(100))
    );
    assert_eq!(page.jobs[0].id, pushed[0].id);
    assert_eq!(page.jobs[0].payload, r#"{"n":0}"#);
    let last = q.list(ListState::Queued, 200, 100).await.unwrap();
    assert_eq!((last.jobs.len(), last.next), (50, None));
    assert_eq!(last.jobs[49].id, pushed[249].id);
    let scheduled = q.list(ListState::Scheduled, 0, 10).await.unwrap();
    assert_eq!(scheduled.total, Some(1));
    assert!(scheduled.jobs[0].status_ms.is_some());
    // Lease 30 and kill them: the dead page shows each error and attempt.
    let leased = q.fetch(30).await.unwrap().jobs;
    assert_eq!(leased.len(), 30);
    assert_eq!(
        q.list(ListState::Running, 0, 100).await.unwrap().total,
        Some(30)
    );
    let acks: Vec<Ack> = leased
        .iter()
        .map(|j| Ack::Dead {
            id: j.id.clone(),
            token: j.token,
            error: format!("broke {}", j.id),
        })
        .collect();
    q.ack(&acks).await.unwrap();
    let dead = q.list(ListState::Dead, 0, 20).await.unwrap();
    assert_eq!(
        (dead.jobs.len(), dead.total, dead.next),
        (20, Some(30), Some(20))
    );
    for j in &dead.jobs {
        assert_eq!(j.status, JobStatus::Dead);
        assert_eq!(j.attempts, 1);
        assert_eq!(
            j.last_error.as_deref(),
            Some(format!("broke {}", j.id).as_str())
        );
    }
    // Discard 10 one by one, then requeue the other 20 at once: back in line, none dead.
    for j in &dead.jobs[..10] {
        assert!(q.discard_dead(&j.id).await.unwrap());
    }
    assert_eq!(q.requeue_all_dead().await.unwrap(), 20);
    let stats = q.stats().await.unwrap();
    assert_eq!((stats.dead, stats.queued), (0, 220 + 20));
    // And discard all: kill 5 again, discard every one.
    let again = q.fetch(5).await.unwrap().jobs;
    let acks: Vec<Ack> = again
        .iter()
        .map(|j| Ack::Dead {
            id: j.id.clone(),
            token: j.token,
            error: "x".into(),
        })
        .collect();
    q.ack(&acks).await.unwrap();
    assert_eq!(q.discard_all_dead().await.unwrap(), 5);
    assert_eq!(q.stats().await.unwrap().dead, 0);
    assert!(q.job(&again[0].id).await.unwrap().is_none());
}

/// A paused queue leases nothing, yet takes pushes and keeps every job; resumed, it leases again.
#[tokio::test]
async fn a_paused_queue_leases_nothing_and_loses_nothing() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("paused"));
    q.push(NewJob::new("{}")).await.unwrap();
    q.pause().await.unwrap();
    q.push(NewJob::new("{}")).await.unwrap();
    let f = q.fetch(10).await.unwrap();
    assert!(f.jobs.is_empty());
    assert!(!f.more, "a paused queue tells fetchers to wait");
    let s = q.stats().await.unwrap();
    assert!(s.paused);
    assert_eq!((s.queued, s.running), (2, 0));
    q.resume().await.unwrap();
    assert!(!q.stats().await.unwrap().paused);
    assert_eq!(q.fetch(10).await.unwrap().jobs.len(), 2);
}

/// Retrying jobs are the scheduled ones with a failed attempt, listed in bounded reads however
/// many delayed jobs sit among them; run now, a waiting job goes to the front of the line with
/// its attempts kept.
#[tokio::test]
async fn retrying_jobs_are_listed_apart_and_waiting_jobs_run_now() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("retrying"));
    let later = When::After(Duration::from_secs(600));
    // 3 jobs fail once and wait for a retry; 1,500 delayed jobs sit after them in the set.
    q.push_many(
        (0..3)
            .map(|i| NewJob::new(format!(r#"{{"r":{i}}}"#)))
            .collect(),
    )
    .await
    .unwrap();
    let leased = q.fetch(3).await.unwrap().jobs;
    let acks: Vec<Ack> = leased
        .iter()
        .map(|j| Ack::Retry {
            id: j.id.clone(),
            token: j.token,
            delay: Duration::from_secs(300),
            error: "flaky".into(),
        })
        .collect();
    q.ack(&acks).await.unwrap();
    q.push_many(
        (0..1500)
            .map(|i| NewJob::new(format!(r#"{{"d":{i}}}"#)).at(later))
            .collect(),
    )
    .await
    .unwrap();
    let page = q.list(ListState::Retrying, 0, 100).await.unwrap();
    assert_eq!(page.total, None);
    let mut ids: Vec<&str> = page.jobs.iter().map(|j| j.id.as_str()).collect();
    ids.sort_unstable();
    let mut want: Vec<&str> = leased.iter().map(|j| j.id.as_str()).collect();
    want.sort_unstable();
    assert_eq!(ids, want, "the retrying page holds exactly the failed jobs");
    assert!(
        page.jobs
            .iter()
            .all(|j| j.attempts == 1 && j.last_error.as_deref() == Some("flaky"))
    );
    // One read stops after MAX_RETRY_SCAN entries and says where to go on.
    assert_eq!(page.next, Some(queue::MAX_RETRY_SCAN));
    let rest = q
        .list(ListState::Retrying, queue::MAX_RETRY_SCAN, 100)
        .await
        .unwrap();
    assert!(rest.jobs.is_empty());
    assert_eq!(rest.next, None);
    assert_eq!(
        q.list(ListState::Scheduled, 0, 1).await.unwrap().total,
        Some(1503)
    );
    // Run two now: they are leased next, attempts kept; an unknown id and a queued one are not moved.
    let waiting = q.push(NewJob::new("{}")).await.unwrap();
    let moved = q
        .run_now_many(&[leased[0].id.as_str(), "nope", leased[1].id.as_str()])
        .await
        .unwrap();
    assert_eq!(moved, [leased[0].id.as_str(), leased[1].id.as_str()]);
    // Waiting from now, not from the due time it had.
    let info = q.job(&leased[0].id).await.unwrap().unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (info.since_ms - now_ms).abs() < 5_000,
        "since {} vs now {now_ms}",
        info.since_ms
    );
    assert_eq!(
        q.list(ListState::Queued, 0, 10).await.unwrap().total,
        Some(3)
    );
    assert!(
        q.run_now_many(&[waiting.id.as_str()])
            .await
            .unwrap()
            .is_empty()
    );
    let next = q.fetch(2).await.unwrap().jobs;
    let got: Vec<&str> = next.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        got,
        [leased[0].id.as_str(), leased[1].id.as_str()],
        "jobs run now are at the front of the line, in the order given"
    );
    assert!(next.iter().all(|j| j.attempt == 2), "attempts kept");
    assert_eq!(q.stats().await.unwrap().scheduled, 1501);
}

/// `LPUSH list items…`: the newest at the head, as Celery's producers push.
async fn lpush(t: &TestRedis, list: &str, items: &[&str]) {
    let _: () = redis::AsyncCommands::lpush(&mut t.conn.clone(), list, items)
        .await
        .unwrap();
}

/// `LLEN list`.
async fn llen(t: &TestRedis, list: &str) -> u64 {
    redis::AsyncCommands::llen(&mut t.conn.clone(), list)
        .await
        .unwrap()
}

/// A queue with foreign lists (`lease_from`, the Celery intake on the fleet's Redis): once its
/// own pending jobs are out, a fetch leases raw messages straight from the staging list, then
/// the lists in order, oldest first, each becoming a job with attempt 1 and its message as the
/// payload, byte for byte; nothing is left in the lists, and the fetch says how many it adopted.
#[tokio::test]
async fn foreign_messages_are_leased_as_jobs_once_pending_runs_out() {
    let t = TestRedis::new().await;
    let (a, b) = (
        format!("{}-foreign-a", t.namespace),
        format!("{}-foreign-b", t.namespace),
    );
    let mut cfg = t.config("intake");
    cfg.lease_from = vec![a.clone(), b.clone()];
    let q = t.queue(cfg);
    let own = q.push(NewJob::new(r#"{"own":1}"#)).await.unwrap();
    // LPUSH puts the newest at the head; the fetch pops from the tail: oldest first. The
    // second message looks like a stored value's `<ms>|` header and must come back whole.
    lpush(&t, &a, &["a1", "12|a2"]).await;
    lpush(&t, &b, &["b1"]).await;
    lpush(&t, &q.keys().staging, &["s1"]).await;

    let f = q.fetch(3).await.unwrap();
    let got: Vec<(&str, bool, u32)> = f
        .jobs
        .iter()
        .map(|j| (j.payload.as_str(), j.adopted, j.attempt))
        .collect();
    assert_eq!(
        got,
        [(r#"{"own":1}"#, false, 1), ("s1", true, 1), ("a1", true, 1)]
    );
    assert_eq!(f.jobs[0].id, own.id);
    assert_eq!(f.adopted, 2);
    assert!(f.more, "a foreign list still holds messages");
    let f2 = q.fetch(10).await.unwrap();
    let got: Vec<&str> = f2.jobs.iter().map(|j| j.payload.as_str()).collect();
    assert_eq!(got, ["12|a2", "b1"]);
    assert_eq!(f2.adopted, 2);
    assert!(!f2.more);
    for list in [&a, &b, &q.keys().staging] {
        let len = llen(&t, list).await;
        assert_eq!(len, 0, "{list} is drained");
    }

    // Each is a job of the queue: running, with its message, and ids never repeat.
    let mut ids: Vec<&str> = f
        .jobs
        .iter()
        .chain(&f2.jobs)
        .map(|j| j.id.as_str())
        .collect();
    for j in f.jobs.iter().chain(&f2.jobs) {
        let info = q.job(&j.id).await.unwrap().unwrap();
        assert_eq!(info.status, JobStatus::Running);
        assert_eq!(info.payload, j.payload);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    assert_eq!(q.stats().await.unwrap().running, 5);
}

/// kill -9 after a foreign message was leased: it is in Redis as a job, so its lease expires and
/// the next fetch runs it again (attempt 2, same message); the acknowledgement then forgets it
/// like any job.
#[tokio::test]
async fn a_foreign_message_whose_worker_died_runs_again() {
    let t = TestRedis::new().await;
    let list = format!("{}-foreign", t.namespace);
    let mut cfg = t.config("intake-crash");
    cfg.lease = Duration::from_millis(100);
    cfg.done_retention = Duration::ZERO;
    cfg.lease_from = vec![list.clone()];
    let q = t.queue(cfg);
    lpush(&t, &list, &[r#"{"m":1}"#]).await;
    let first = q.fetch(10).await.unwrap().jobs.remove(0);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let f = q.fetch(10).await.unwrap();
    assert_eq!((f.reaped, f.jobs.len(), f.adopted), (1, 1, 0));
    let again = &f.jobs[0];
    assert_eq!(
        (again.id.as_str(), again.attempt, again.payload.as_str()),
        (first.id.as_str(), 2, r#"{"m":1}"#)
    );
    assert!(!again.adopted);
    let r = q
        .ack(&[Ack::Done {
            id: again.id.clone(),
            token: again.token,
        }])
        .await
        .unwrap();
    assert_eq!(r.applied, 1);
    assert!(q.job(&again.id).await.unwrap().is_none());
    let s = q.stats().await.unwrap();
    assert_eq!((s.queued, s.running, s.dead), (0, 0, 0));
}

/// A paused queue takes nothing from its foreign lists either.
#[tokio::test]
async fn a_paused_queue_leaves_its_foreign_lists_alone() {
    let t = TestRedis::new().await;
    let list = format!("{}-foreign", t.namespace);
    let mut cfg = t.config("intake-paused");
    cfg.lease_from = vec![list.clone()];
    let q = t.queue(cfg);
    lpush(&t, &list, &["m"]).await;
    q.pause().await.unwrap();
    let f = q.fetch(10).await.unwrap();
    assert!(f.jobs.is_empty() && !f.more);
    let len = llen(&t, &list).await;
    assert_eq!(len, 1);
    q.resume().await.unwrap();
    assert_eq!(q.fetch(10).await.unwrap().adopted, 1);
}

/// A foreign message's job id does not come from the queue's lease counter: after Redis lost its
/// last writes (a failover to a lagging replica sets `lease_seq` back, so a token is given
/// again), a new message still gets an id no earlier job had; and two intake queues never share
/// an id (the worker keys Celery's running tasks and rate-limit reservations by it).
#[tokio::test]
async fn foreign_message_ids_never_repeat_even_when_tokens_do() {
    let t = TestRedis::new().await;
    let mut conn = t.conn.clone();
    let list = format!("{}-foreign", t.namespace);
    let queue = |name: &str| {
        let mut cfg = t.config(name);
        cfg.lease_from = vec![list.clone()];
        t.queue(cfg)
    };
    let (a, b) = (queue("intake-a"), queue("intake-b"));
    lpush(&t, &list, &["m1", "m2", "m3", "m4"]).await;
    let first = a.fetch(2).await.unwrap().jobs;
    let other = b.fetch(2).await.unwrap().jobs;
    let _: () = redis::cmd("DEL")
        .arg(&a.keys().lease_seq)
        .query_async(&mut conn)
        .await
        .unwrap();
    lpush(&t, &list, &["m5", "m6"]).await;
    let again = a.fetch(2).await.unwrap().jobs;
    assert_eq!(
        again.iter().map(|j| j.token).collect::<Vec<_>>(),
        first.iter().map(|j| j.token).collect::<Vec<_>>(),
        "the counter went back: the same tokens again"
    );
    let mut ids: Vec<&str> = first
        .iter()
        .chain(&other)
        .chain(&again)
        .map(|j| j.id.as_str())
        .collect();
    assert!(
        ids.iter().all(|id| queue::id::is_valid_job_id(id)),
        "{ids:?}"
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "every id differs");
}

/// A foreign key that is not a list (a misconfigured or hostile write) is skipped: the fetch
/// still returns what it leased from the queue's own pending list and from the other lists,
/// instead of failing after its writes (which would lease jobs nobody receives).
#[tokio::test]
async fn a_foreign_key_that_is_not_a_list_is_skipped() {
    let t = TestRedis::new().await;
    let mut conn = t.conn.clone();
    let (bad, good) = (
        format!("{}-foreign-bad", t.namespace),
        format!("{}-foreign-good", t.namespace),
    );
    let _: () = redis::cmd("SET")
        .arg(&bad)
        .arg("not a list")
        .query_async(&mut conn)
        .await
        .unwrap();
    lpush(&t, &good, &["m"]).await;
    let mut cfg = t.config("intake-bad");
    cfg.lease_from = vec![bad.clone(), good.clone()];
    let q = t.queue(cfg);
    let own = q.push(NewJob::new("{}")).await.unwrap();
    let f = q.fetch(10).await.unwrap();
    let got: Vec<&str> = f.jobs.iter().map(|j| j.payload.as_str()).collect();
    assert_eq!(got, ["{}", "m"]);
    assert_eq!(
        (f.jobs[0].id.as_str(), f.adopted, f.more),
        (own.id.as_str(), 1, false)
    );
}
