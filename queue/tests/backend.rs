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
use celeriac_queue::backend::{BackendOptions, RedisBackend};
use celeriac_queue::backoff::Backoff;
use celeriac_queue::{JobStatus, NewJob, Queue, QueueConfig};
use common::TestRedis;
use redis::aio::ConnectionManager;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tower::limit::ConcurrencyLimitLayer;

#[derive(Debug, Clone, Deserialize)]
struct Work {
    n: u32,
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    sleep_ms: u64,
}

#[derive(Clone)]
struct Probe {
    seen: mpsc::UnboundedSender<(u32, Instant)>,
    runs: Arc<AtomicUsize>,
}

async fn work(job: Work, probe: Data<Probe>) -> Result<(), BoxDynError> {
    probe.runs.fetch_add(1, Ordering::SeqCst);
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
}

fn start(queue: Queue<ConnectionManager>, options: BackendOptions) -> Running {
    let (tx, seen) = mpsc::unbounded_channel();
    let runs = Arc::new(AtomicUsize::new(0));
    let probe = Probe {
        seen: tx,
        runs: runs.clone(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let concurrency = options.concurrency;
    let client = redis::Client::open(common::redis_url()).unwrap();
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

async fn wait_for(
    q: &Queue<ConnectionManager>,
    pred: impl Fn(&celeriac_queue::QueueStats) -> bool,
) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_starts_a_new_job_within_50ms_median() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("latency"));
    let options = BackendOptions {
        idle_poll: Duration::from_secs(5),
        ..BackendOptions::default()
    };
    let mut w = start(q.clone(), options);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut lat = Vec::new();
    for n in 0..21 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let t0 = Instant::now();
        q.push(NewJob::new(format!(r#"{{"n":{n}}}"#)))
            .await
            .unwrap();
        let (seen, at) = w.seen.recv().await.unwrap();
        assert_eq!(seen, n);
        lat.push(at - t0);
    }
    lat.sort();
    let median = lat[lat.len() / 2];
    assert!(
        median < Duration::from_millis(50),
        "median pickup {median:?}"
    );
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
    let t0 = Instant::now();
    let runs = w.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(2));
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
    q.push(NewJob::new(r#"{"n":7}"#).at(celeriac_queue::When::After(Duration::from_millis(300))))
        .await
        .unwrap();
    wait_for(&q, |s| s.done == 1).await;
    assert!(t0.elapsed() >= Duration::from_millis(300));
    w.stop().await;
}
