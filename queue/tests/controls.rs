//! Job controls against the real Redis: the fleet-wide rate limit's token bucket, and revoke.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::QueueExt;
use queue::{Ack, JobStatus, NewJob, RateLimit, Revoked, When};
use testkit::TestRedis;

/// A bucket of 2 at 20/s: a fetch asking for 50 gets 2, then nothing, and is told when the
/// bucket holds a batch again (~100 ms, on the Redis clock); at that time it gets 2 more. Two
/// handles (two workers) share one bucket. Without a limit, one fetch takes everything.
#[tokio::test]
async fn a_rate_limit_leases_what_the_shared_bucket_holds_and_says_when_to_come_back() {
    let t = TestRedis::new().await;
    let mut cfg = t.config("rated");
    cfg.rate_limit = Some(RateLimit {
        per_second: 20.0,
        burst: 2,
    });
    let a = t.queue(cfg.clone());
    let b = t.queue(cfg);
    a.push_many(
        (0..30)
            .map(|i| NewJob::new(format!("{{\"n\":{i}}}")))
            .collect(),
    )
    .await
    .unwrap();
    let first = a.fetch(50).await.unwrap();
    assert_eq!(first.jobs.len(), 2);
    let until = first
        .throttled_until_ms
        .expect("throttled with jobs waiting");
    assert!(!first.more);
    let wait = until - first.now_ms;
    assert!((90..=110).contains(&wait), "{wait} ms");
    // The other worker finds the bucket dry too.
    let other = b.fetch(50).await.unwrap();
    assert!(other.jobs.is_empty());
    assert!(other.throttled_until_ms.is_some());
    tokio::time::sleep(Duration::from_millis(wait as u64 + 5)).await;
    let later = b.fetch(50).await.unwrap();
    assert_eq!(later.jobs.len(), 2);
    // The same jobs unlimited: one fetch takes the 26 left.
    let free = t.queue(t.config("rated"));
    let all = free.fetch(50).await.unwrap();
    assert_eq!(all.jobs.len(), 26);
    assert_eq!(all.throttled_until_ms, None);
    // The bucket's key expires once it would be full again.
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&a.keys().rate)
        .query_async(&mut t.conn.clone())
        .await
        .unwrap();
    assert!((0..=1100).contains(&ttl), "{ttl}");
}

/// Work started outside a fetch (the Celery bridge) takes from the same bucket: a holder that
/// finds it dry gets the slot reserved for it, one rate step after the last, and at that slot
/// runs without taking another token; fetches wait for the debt too.
#[tokio::test]
async fn a_dry_bucket_reserves_slots_in_order_for_the_celery_bridge() {
    let t = TestRedis::new().await;
    let mut cfg = t.config("reserve");
    cfg.rate_limit = Some(RateLimit {
        per_second: 10.0,
        burst: 1,
    });
    let q = t.queue(cfg);
    assert_eq!(q.take_token("a").await.unwrap(), None);
    let b = q.take_token("b").await.unwrap().expect("b waits");
    let c = q.take_token("c").await.unwrap().expect("c waits");
    // One slot (100 ms) apart, less the time between the calls.
    assert!((50..=100).contains(&b.as_millis()), "{b:?}");
    assert!(
        (80..=100).contains(&(c.as_millis() - b.as_millis())),
        "{b:?} {c:?}"
    );
    // Back at its slot (or early), b runs without a new token; c's slot is still c's.
    assert_eq!(q.take_token("b").await.unwrap(), None);
    // A fetch finds the bucket in debt and says when a token is back (after c's slot).
    q.push(NewJob::new("{}")).await.unwrap();
    let f = q.fetch(1).await.unwrap();
    assert!(f.jobs.is_empty());
    let wait = f.throttled_until_ms.unwrap() - f.now_ms;
    assert!((200..=300).contains(&wait), "{wait} ms");
    // A holder that is no job id reserves under no key of its own.
    assert!(q.take_token("bad key:x").await.unwrap().is_some());
}

/// A scheduled or retrying job is dead at once with the reason; a queued one when the fetch
/// reaches it, never leased; a running one is marked: the renewal reports it, and whatever its
/// run's outcome, no fetch leases it again.
/// Done and unknown jobs are left alone; a requeued revoked job runs.
#[tokio::test]
async fn a_revoked_job_never_starts_and_a_running_one_is_never_leased_again() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("revoke"));
    let running = q.push(NewJob::new("{\"r\":1}")).await.unwrap();
    let leased = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!(leased.id, running.id);
    let waiting = q.push(NewJob::new("{\"w\":1}")).await.unwrap();
    let later = q
        .push(NewJob::new("{\"s\":1}").at(When::After(Duration::from_secs(60))))
        .await
        .unwrap();
    assert_eq!(
        q.revoke(&waiting.id, "revoked by test").await.unwrap(),
        Revoked::Waiting
    );
    assert_eq!(
        q.revoke(&later.id, "revoked by test").await.unwrap(),
        Revoked::Waiting
    );
    let info = q.job(&later.id).await.unwrap().unwrap();
    assert_eq!(info.status, JobStatus::Dead);
    assert_eq!(info.last_error.as_deref(), Some("revoked by test"));
    let s = q.stats().await.unwrap();
    assert_eq!((s.queued, s.scheduled, s.dead), (1, 0, 1));
    // The queued one: the fetch that reaches it does not lease it.
    assert!(q.fetch(10).await.unwrap().jobs.is_empty());
    let info = q.job(&waiting.id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::Dead, 0));
    assert!(info.last_error.unwrap().starts_with("revoked"));

    // Running: told on the notify channel, and by the next renewal.
    let client = redis::Client::open(testkit::redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&q.keys().notify).await.unwrap();
    assert_eq!(
        q.revoke(&running.id, "revoked by test").await.unwrap(),
        Revoked::Running
    );
    let said: String = futures::StreamExt::next(&mut pubsub.on_message())
        .await
        .unwrap()
        .get_payload()
        .unwrap();
    assert_eq!(said, format!("revoke:{}", running.id));
    let renewed = q.renew(&[(leased.id.clone(), leased.token)]).await.unwrap();
    assert_eq!(renewed.extended, 1);
    assert_eq!(renewed.revoked, vec![running.id.clone()]);
    // Its run fails and would be retried: the retry is never leased; it is dead instead.
    q.ack(&[Ack::Retry {
        id: leased.id.clone(),
        token: leased.token,
        delay: Duration::ZERO,
        error: "boom".into(),
    }])
    .await
    .unwrap();
    let f = q.fetch(10).await.unwrap();
    assert!(f.jobs.is_empty(), "{:?}", f.jobs);
    let info = q.job(&running.id).await.unwrap().unwrap();
    assert_eq!(info.status, JobStatus::Dead);
    assert!(info.last_error.unwrap().contains("revoked"));

    // Nothing to do for ended or unknown jobs.
    assert_eq!(q.revoke(&running.id, "x").await.unwrap(), Revoked::Dead);
    assert_eq!(q.revoke("nope", "x").await.unwrap(), Revoked::Unknown);
    let done = q.push(NewJob::new("{}")).await.unwrap();
    let j = q.fetch(1).await.unwrap().jobs.remove(0);
    q.ack(&[Ack::Done {
        id: done.id.clone(),
        token: j.token,
    }])
    .await
    .unwrap();
    assert_eq!(q.revoke(&done.id, "x").await.unwrap(), Revoked::Done);

    // An operator's requeue undoes the revoke.
    assert!(q.requeue_dead(&running.id).await.unwrap());
    let again = q.fetch(10).await.unwrap();
    assert_eq!(again.jobs.len(), 1);
    assert_eq!(again.jobs[0].id, running.id);

    // A mark outlives its job's run only until the job has ended: revoked while running, the run
    // finishes (done), and the next cleanup drops the mark.
    assert_eq!(q.revoke(&running.id, "x").await.unwrap(), Revoked::Running);
    q.ack(&[Ack::Done {
        id: running.id.clone(),
        token: again.jobs[0].token,
    }])
    .await
    .unwrap();
    let marks = || async {
        let n: u64 = redis::cmd("ZCARD")
            .arg(&q.keys().revoked)
            .query_async(&mut t.conn.clone())
            .await
            .unwrap();
        n
    };
    assert_eq!(marks().await, 1);
    q.cleanup_step().await.unwrap();
    assert_eq!(marks().await, 0);
}
