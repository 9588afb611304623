//! Issue item 6: a lost Redis connection never ends a worker. Against a private redis-server
//! (append-only, fsync always) the worker survives killed clients, a Redis restart and a reply
//! slower than its response timeout; nothing acknowledged is lost or acknowledged twice.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::ext::parallelize::ParallelizeExt;
use queue::backend::{BackendOptions, RedisBackend};
use queue::{NewJob, Queue, QueueConfig, QueueStats};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use testkit::servers::{RedisServer, TempDir, free_port};
use tokio::sync::oneshot;
use tower::limit::ConcurrencyLimitLayer;

const JOBS: u64 = 300;

#[derive(Debug, Deserialize)]
struct Job {
    n: u64,
}

#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<u64, u32>>>);

impl Runs {
    fn record(&self, n: u64) {
        *self.0.lock().unwrap().entry(n).or_default() += 1;
    }
}

async fn handle(job: Job, runs: Data<Runs>) -> Result<(), BoxDynError> {
    runs.record(job.n);
    tokio::time::sleep(Duration::from_millis(15)).await;
    Ok(())
}

/// The worker on its own runtime thread (the apalis worker future is not `Send`).
struct Worker {
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    /// Set when the worker's run ended, for whatever reason.
    exited: Arc<AtomicBool>,
}

fn start_worker(url: String, namespace: String, runs: Runs) -> Worker {
    let (stop, stopped) = oneshot::channel::<()>();
    let exited = Arc::new(AtomicBool::new(false));
    let exited2 = exited.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let client = redis::Client::open(url).unwrap();
            // A short response timeout, so the slow reply below times out and is retried.
            let conn = client
                .get_connection_manager_with_config(
                    ConnectionManagerConfig::new()
                        .set_response_timeout(Some(Duration::from_secs(1)))
                        .set_connection_timeout(Some(Duration::from_secs(1))),
                )
                .await
                .unwrap();
            let mut config = QueueConfig::new(namespace, "outage");
            config.lease = Duration::from_secs(3);
            let queue = Queue::new(conn, config);
            let options = BackendOptions {
                concurrency: 2,
                prefetch: 8,
                idle_poll: Duration::from_millis(200),
                ..BackendOptions::default()
            };
            let (backend, driver) = RedisBackend::<Job>::new(queue, options, Some(client));
            let worker = WorkerBuilder::new("outage-worker")
                .backend(backend)
                .layer(ConcurrencyLimitLayer::new(2))
                .parallelize(tokio::spawn)
                .data(runs)
                .build(handle);
            let result = worker
                .run_until(async move {
                    let _ = stopped.await;
                    Ok::<(), std::io::Error>(())
                })
                .await;
            exited2.store(true, Ordering::SeqCst);
            result.unwrap();
            driver.finish(Duration::from_secs(10)).await;
        });
    });
    Worker {
        stop,
        thread,
        exited,
    }
}

/// Polls the queue's stats; every sample also checks that `done` never went down.
struct Watch {
    queue: Queue<ConnectionManager>,
    worker_exited: Arc<AtomicBool>,
    max_done: u64,
}

impl Watch {
    async fn until(&mut self, what: &str, pred: impl Fn(&QueueStats) -> bool) -> QueueStats {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            assert!(
                !self.worker_exited.load(Ordering::SeqCst),
                "the worker exited early (waiting for {what})"
            );
            // Errors while Redis is down or asleep are expected here: just try again.
            if let Ok(s) = self.queue.stats().await {
                assert!(
                    s.done >= self.max_done,
                    "done went down from {} to {}: an acknowledgement was lost",
                    self.max_done,
                    s.done
                );
                self.max_done = s.done;
                if pred(&s) {
                    return s;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}: {s:?}"
                );
            } else {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_survives_killed_clients_a_redis_restart_and_a_slow_reply() {
    let dir = TempDir::new("outage");
    let port = free_port();
    let mut server = RedisServer::start(
        port,
        dir.path(),
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--enable-debug-command",
            "local",
        ],
    );
    let admin = redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager_with_config(
            ConnectionManagerConfig::new().set_response_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap();
    let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
    let queue = Queue::new(admin.clone(), QueueConfig::new(namespace.clone(), "outage"));
    let pushed = queue
        .push_many(
            (0..JOBS)
                .map(|n| NewJob::new(format!(r#"{{"n":{n}}}"#)))
                .collect(),
        )
        .await
        .unwrap();
    assert!(pushed.iter().all(|p| p.created));

    let runs = Runs::default();
    let worker = start_worker(server.url(), namespace, runs.clone());
    let mut watch = Watch {
        queue: queue.clone(),
        worker_exited: worker.exited.clone(),
        max_done: 0,
    };

    // 1. Every normal client connection is killed (the worker's commands and its acks).
    let s = watch.until("a first share done", |s| s.done >= 40).await;
    assert!(s.done < JOBS, "finished before the first disruption: {s:?}");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut admin.clone())
        .await
        .unwrap();
    assert!(killed >= 1, "the worker's connection was not killed");
    eprintln!("killed {killed} client connection(s) at done={}", s.done);

    // 2. Redis shuts down and comes back on the same port, from its append-only file.
    let s = watch
        .until("progress after the killed clients", |s| s.done >= 100)
        .await;
    assert!(s.done < JOBS, "finished before the restart: {s:?}");
    let before = s.done;
    let t0 = Instant::now();
    tokio::task::block_in_place(|| {
        server.shutdown();
        server.restart();
    });
    eprintln!(
        "restarted redis at done={before} (down for {:?})",
        t0.elapsed()
    );

    // 3. A reply slower than the worker's 1 s response timeout.
    let s = watch
        .until("progress after the restart", |s| s.done >= before + 60)
        .await;
    assert!(s.done < JOBS, "finished before the slow reply: {s:?}");
    let slept = tokio::task::block_in_place(|| server.cli(&["debug", "sleep", "2"]));
    assert_eq!(slept.as_deref().map(str::trim), Some("OK"));
    eprintln!("redis slept 2 s at done={}", s.done);

    watch.until("every job done", |s| s.done == JOBS).await;
    // Let any late duplicate acknowledgement land before the final count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last = watch.until("the final count", |_| true).await;
    assert!(
        !worker.exited.load(Ordering::SeqCst),
        "the worker exited early"
    );
    let _ = worker.stop.send(());
    tokio::task::spawn_blocking(move || worker.thread.join().unwrap())
        .await
        .unwrap();

    assert_eq!(
        (
            last.queued,
            last.scheduled,
            last.running,
            last.done,
            last.dead
        ),
        (0, 0, 0, JOBS, 0),
        "{last:?}"
    );
    let done_members: u64 = redis::cmd("ZCARD")
        .arg(&queue.keys().done)
        .query_async(&mut admin.clone())
        .await
        .unwrap();
    assert_eq!(done_members, JOBS);
    let runs = runs.0.lock().unwrap().clone();
    for n in 0..JOBS {
        assert!(runs.get(&n).is_some_and(|&r| r >= 1), "job {n} never ran");
    }
    let total: u32 = runs.values().sum();
    eprintln!(
        "{} executions for {JOBS} jobs ({} reruns after lost replies)",
        total,
        total as u64 - JOBS
    );
    drop(server);
}
