//! Issue item 12: another language pushes by the layout in docs/queue.md alone. A Python script
//! (push_from_python.py, redis-py) pushes through push.lua and with plain commands; a Rust worker
//! runs every job with the payload Python wrote.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::ext::parallelize::ParallelizeExt;
use common::QueueExt;
use queue::backend::{BackendOptions, RedisBackend};
use queue::{Ack, JobStatus, Queue};
use redis::aio::ConnectionManager;
use serde::Deserialize;
use testkit::TestRedis;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct FromPython {
    n: u32,
    from: String,
}

async fn record(
    job: FromPython,
    id: TaskId,
    seen: Data<mpsc::UnboundedSender<(String, FromPython)>>,
) -> Result<(), BoxDynError> {
    seen.send((id.to_string(), job))?;
    Ok(())
}

#[derive(Debug, Deserialize)]
struct PythonOutput {
    lua: Vec<String>,
    plain: Vec<String>,
    duplicate_of: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_producer_pushes_by_the_documented_layout_and_a_rust_worker_runs_its_jobs() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("from-python"));

    // The worker first, so the pushes also exercise the notify channel.
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = {
        let q = q.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = redis::Client::open(testkit::redis_url()).unwrap();
                let (backend, driver) =
                    RedisBackend::<FromPython>::new(q, BackendOptions::default(), Some(client));
                WorkerBuilder::new("from-python")
                    .backend(backend)
                    .parallelize(tokio::spawn)
                    .data(seen_tx)
                    .build(record)
                    .run_until(async move {
                        let _ = stopped.await;
                        Ok::<(), std::io::Error>(())
                    })
                    .await
                    .unwrap();
                driver.finish(Duration::from_secs(5)).await;
            });
        })
    };

    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The Python of the `redis-py` tool environment, which `scripts/tool-envs.sh` makes; the test
    // never installs it.
    let mut python = Command::new(testkit::venv::redis_py_python());
    let out = tokio::task::block_in_place(|| {
        python
            .arg(manifest.join("tests/push_from_python.py"))
            .arg(testkit::redis_url())
            .arg(&t.namespace)
            .arg("from-python")
            .arg(manifest.join("lua/push.lua"))
            .output()
            .expect("run python3")
    });
    assert!(
        out.status.success(),
        "python producer failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed: PythonOutput = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pushed.duplicate_of, pushed.lua[1]);

    let mut expected = BTreeMap::new();
    for (i, id) in pushed.lua.iter().enumerate() {
        let job = FromPython {
            n: i as u32 + 1,
            from: "python-lua".into(),
        };
        expected.insert(id.clone(), job);
    }
    for (i, id) in pushed.plain.iter().enumerate() {
        let job = FromPython {
            n: i as u32 + 4,
            from: "python-plain".into(),
        };
        expected.insert(id.clone(), job);
    }
    let mut ran = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ran.len() < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((id, job))) = tokio::time::timeout(left, seen.recv()).await else {
            panic!("only {} of 5 jobs ran: {ran:?}", ran.len());
        };
        assert!(ran.insert(id, job).is_none(), "a job ran twice");
    }
    assert_eq!(ran, expected);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = q.stats().await.unwrap();
        if s.done == 5 {
            assert_eq!((s.queued, s.scheduled, s.running, s.dead), (0, 0, 0, 0));
            break;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in expected.keys() {
        let info = q.job(id).await.unwrap().unwrap();
        assert_eq!((info.status, info.attempts), (JobStatus::Done, 1), "{id}");
        assert!(info.since_ms > 0, "the time header was read: {info:?}");
    }
    let _ = stop.send(());
    tokio::task::spawn_blocking(move || worker.join().unwrap())
        .await
        .unwrap();
}

/// A foreign producer that leaves out the `<ms>|` header (the docs say not to) must not wedge
/// the queue: the payload reads whole, and a retry or a requeue rewrites the header without
/// touching the payload (before the fix, a retry failed the whole ack script when the value had no
/// `|`, so the worker's acks stalled, and cut the payload at its first `|` when it had one).
#[tokio::test]
async fn a_value_without_the_time_header_survives_a_retry_and_a_requeue() {
    let t = TestRedis::new().await;
    let q: Queue<ConnectionManager> = t.queue(t.config("headerless"));
    for (id, payload) in [
        ("bare-1", r#"{"n":1}"#),
        ("bare-2", r#"{"n":2,"from":"a|b"}"#),
    ] {
        let _: () = redis::pipe()
            .atomic()
            .hset(&q.keys().jobs, id, payload)
            .ignore()
            .rpush(&q.keys().pending, id)
            .ignore()
            .query_async(&mut t.conn.clone())
            .await
            .unwrap();
        let j = q.fetch(1).await.unwrap().jobs.remove(0);
        assert_eq!((j.id.as_str(), j.payload.as_str()), (id, payload));
        let r = q
            .ack(&[Ack::Retry {
                id: j.id.clone(),
                token: j.token,
                delay: Duration::from_millis(1),
                error: "once more".into(),
            }])
            .await
            .expect("a retry of a header-less value is recorded");
        assert_eq!(r.applied, 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let j = q.fetch(1).await.unwrap().jobs.remove(0);
        assert_eq!((j.attempt, j.payload.as_str()), (2, payload));
        q.ack(&[Ack::Dead {
            id: j.id.clone(),
            token: j.token,
            error: "dead".into(),
        }])
        .await
        .unwrap();
        // Bare again (as if it had been pushed bare and died at once), then requeued.
        let _: () = redis::cmd("HSET")
            .arg(&q.keys().jobs)
            .arg(id)
            .arg(payload)
            .query_async(&mut t.conn.clone())
            .await
            .unwrap();
        assert!(
            q.requeue_dead(id)
                .await
                .expect("requeue of a header-less value")
        );
        let j = q.fetch(1).await.unwrap().jobs.remove(0);
        assert_eq!((j.attempt, j.payload.as_str()), (1, payload));
        let info = q.job(id).await.unwrap().unwrap();
        assert!(info.since_ms > 0, "requeue wrote a header: {info:?}");
    }
}
