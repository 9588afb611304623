//! The apalis backend against the real Redis: jobs run, bad payloads die alone, retries stop at
//! max attempts, idle workers wake at once, and a stop hands back what was not started.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::ext::parallelize::ParallelizeExt;
use common::QueueExt;
use queue::backend::{BackendOptions, JobLease, RedisBackend, Snooze};
use queue::backoff::Backoff;
use queue::{JobStatus, NewJob, Queue, QueueConfig};
use redis::aio::ConnectionManager;
use serde::Deserialize;
use testkit::TestRedis;
use tokio::sync::{mpsc, oneshot};
use tower::limit::ConcurrencyLimitLayer;

#[derive(Debug, Clone, Deserialize)]
struct Work {
    n: u32,
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    sleep_ms: u64,
    /// Answer "not due yet" (snooze 10 ms) on the first this many runs.
    #[serde(default)]
    snooze: usize,
}

#[derive(Clone)]
struct Probe {
    seen: mpsc::UnboundedSender<(u32, Instant)>,
    runs: Arc<AtomicUsize>,
    attempts: Arc<std::sync::Mutex<Vec<u32>>>,
}

async fn work(job: Work, probe: Data<Probe>, lease: Data<JobLease>) -> Result<(), BoxDynError> {
    let run = probe.runs.fetch_add(1, Ordering::SeqCst) + 1;
    probe.attempts.lock().unwrap().push(lease.attempt);
    if run <= job.snooze {
        return Err(Snooze(Duration::from_millis(10)).into());
    }
    if job.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
    }
    let _ = probe.seen.send((job.n, Instant::now()));
    if job.fail {
        return Err("asked to fail".into());
    }
    Ok(())
}

struct Running {
    stop: oneshot::Sender<()>,
    done: std::thread::JoinHandle<()>,
    seen: mpsc::UnboundedReceiver<(u32, Instant)>,
    runs: Arc<AtomicUsize>,
    attempts: Arc<std::sync::Mutex<Vec<u32>>>,
}

fn start(queue: Queue<ConnectionManager>, options: BackendOptions) -> Running {
    let (tx, seen) = mpsc::unbounded_channel();
    let runs = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let probe = Probe {
        seen: tx,
        runs: runs.clone(),
        attempts: attempts.clone(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let concurrency = options.concurrency;
    let client = redis::Client::open(testkit::redis_url()).unwrap();
    // The worker future is not `Send` (apalis' handler bounds), so it gets its own runtime thread.
    let done = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (backend, driver) = RedisBackend::<Work>::new(queue, options, Some(client));
            let worker = WorkerBuilder::new("test-worker")
                .backend(backend)
                .layer(ConcurrencyLimitLayer::new(concurrency))
                .parallelize(tokio::spawn)
                .data(probe)
                .build(work);
            worker
                .run_until(async move {
                    let _ = stopped.await;
                    Ok::<(), std::io::Error>(())
                })
                .await
                .unwrap();
            driver.finish(Duration::from_secs(5)).await;
        });
    });
    Running {
        stop,
        done,
        seen,
        runs,
        attempts,
    }
}

impl Running {
    async fn stop(self) -> Arc<AtomicUsize> {
        let _ = self.stop.send(());
        tokio::task::spawn_blocking(move || self.done.join().unwrap())
            .await
            .unwrap();
        self.runs
    }
}

async fn wait_for(q: &Queue<ConnectionManager>, pred: impl Fn(&queue::QueueStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = q.stats().await.unwrap();
        if pred(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out; last stats {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_does_not_decode_dies_alone_and_the_worker_goes_on() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("poison"));
    let mut jobs: Vec<NewJob> = (0..50)
        .map(|n| NewJob::new(format!(r#"{{"n":{n}}}"#)))
        .collect();
    jobs.insert(10, NewJob::new(r#"{"not":"work"}"#));
    jobs.insert(20, NewJob::new("garbage"));
    let bad = [jobs[10].id.clone(), jobs[20].id.clone()];
    q.push_many(jobs).await.unwrap();
    let w = start(q.clone(), BackendOptions::default());
    wait_for(&q, |s| s.done == 50 && s.dead == 2).await;
    for id in bad {
        let info = q.job(&id).await.unwrap().unwrap();
        assert_eq!(info.status, JobStatus::Dead);
        assert!(info.last_error.unwrap().contains("does not decode"));
    }
    // Still alive: a new job runs.
    q.push(NewJob::new(r#"{"n":99}"#)).await.unwrap();
    wait_for(&q, |s| s.done == 51).await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_max_attempts_and_the_job_is_dead_with_its_error() {
    let t = TestRedis::new().await;
    let mut cfg = t.config("retries");
    cfg.max_attempts = 3;
    let q = t.queue(cfg);
    let p = q.push(NewJob::new(r#"{"n":1,"fail":true}"#)).await.unwrap();
    let options = BackendOptions {
        retry_backoff: Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
        ..BackendOptions::default()
    };
    let w = start(q.clone(), options);
    wait_for(&q, |s| s.dead == 1).await;
    let runs = w.stop().await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let info = q.job(&p.id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::Dead, 3));
    assert!(info.last_error.unwrap().contains("asked to fail"));
}

/// A handler that answers `Snooze` more times than the job has attempts: every run is attempt 1,
/// the job never dies from snoozing, no error is written, and it finally runs to done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_may_snooze_more_times_than_max_attempts_without_dying() {
    let t = TestRedis::new().await;
    let mut cfg = t.config("snoozer");
    cfg.max_attempts = 1;
    let q = t.queue(cfg);
    let p = q.push(NewJob::new(r#"{"n":1,"snooze":5}"#)).await.unwrap();
    let w = start(q.clone(), BackendOptions::default());
    wait_for(&q, |s| s.done + s.dead == 1).await;
    let attempts = w.attempts.clone();
    let runs = w.stop().await;
    assert_eq!(runs.load(Ordering::SeqCst), 6, "five snoozes, then the run");
    assert_eq!(*attempts.lock().unwrap(), vec![1; 6]);
    let info = q.job(&p.id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::Done, 1));
    assert_eq!(info.last_error, None);
}

/// A job running four times longer than its lease keeps it: the renewer extends the lease under
/// the lease's token, so the job is neither reaped nor run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_longer_than_its_lease_keeps_it() {
    let t = TestRedis::new().await;
    let mut cfg = t.config("long");
    cfg.lease = Duration::from_millis(300);
    let q = t.queue(cfg);
    let ids: Vec<String> = q
        .push_many(
            (0..2)
                .map(|n| NewJob::new(format!(r#"{{"n":{n},"sleep_ms":1200}}"#)))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    let w = start(q.clone(), BackendOptions::default());
    wait_for(&q, |s| s.done == 2).await;
    let runs = w.stop().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "each job ran once");
    for id in ids {
        let info = q.job(&id).await.unwrap().unwrap();
        assert_eq!((info.status, info.attempts), (JobStatus::Done, 1));
        assert_eq!(info.last_error, None);
    }
}

/// An idle worker is woken by the push (pub/sub), not by its poll: with the poll a minute away,
/// each job still starts well inside a generous deadline. (How fast it starts is measured by
/// `bench/`, not asserted here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_is_woken_by_a_push_not_by_its_poll() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("latency"));
    let options = BackendOptions {
        idle_poll: Duration::from_secs(60),
        ..BackendOptions::default()
    };
    let mut w = start(q.clone(), options);
    // Idle first: the fetcher has found the queue empty and sleeps.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 0..5 {
        q.push(NewJob::new(format!(r#"{{"n":{n}}}"#)))
            .await
            .unwrap();
        let (seen, _) = tokio::time::timeout(Duration::from_secs(20), w.seen.recv())
            .await
            .expect("woken by the push, not the 60 s poll")
            .unwrap();
        assert_eq!(seen, n);
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_finishes_running_jobs_and_hands_back_the_rest_at_once() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("stop"));
    q.push_many(
        (0..12)
            .map(|n| NewJob::new(format!(r#"{{"n":{n},"sleep_ms":400}}"#)))
            .collect(),
    )
    .await
    .unwrap();
    let options = BackendOptions {
        concurrency: 2,
        prefetch: 10,
        ..BackendOptions::default()
    };
    let w = start(q.clone(), options);
    wait_for(&q, |s| s.running == 12).await;
    // The effect that matters: only the two running jobs ran; the ten prefetched went back.
    let runs = tokio::time::timeout(Duration::from_secs(20), w.stop())
        .await
        .expect("stopped");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let s = q.stats().await.unwrap();
    assert_eq!((s.done, s.running, s.queued), (2, 0, 10), "{s:?}");
    // The handed-back jobs did not spend an attempt.
    let next = q.fetch(10).await.unwrap();
    assert!(next.jobs.iter().all(|j| j.attempt == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_jobs_run_when_due() {
    let t = TestRedis::new().await;
    let q: Queue<_> = t.queue(QueueConfig::new(t.namespace.clone(), "delayed"));
    let w = start(q.clone(), BackendOptions::default());
    let t0 = Instant::now();
    q.push(NewJob::new(r#"{"n":7}"#).at(queue::When::After(Duration::from_millis(300))))
        .await
        .unwrap();
    wait_for(&q, |s| s.done == 1).await;
    assert!(t0.elapsed() >= Duration::from_millis(300));
    w.stop().await;
}
