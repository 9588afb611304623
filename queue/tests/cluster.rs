//! Issue item 11: every script of a queue touches one hash slot, so the queue runs on Redis
//! Cluster. A private three-node cluster (started and stopped here) serves two queues whose keys
//! live on different nodes; any key outside a script's declared KEYS would fail with CROSSSLOT.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::ext::parallelize::ParallelizeExt;
use queue::backend::{BackendOptions, RedisBackend};
use queue::{Ack, JobStatus, NewJob, Queue, QueueConfig, When};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use serde::Deserialize;
use testkit::RedisCluster;
use tokio::sync::oneshot;
use tower::limit::ConcurrencyLimitLayer;

async fn connect(cluster: &RedisCluster) -> ClusterConnection {
    ClusterClient::builder(cluster.urls())
        .response_timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

/// Push (one, many, unique, delayed), fetch, ack every outcome, renew, reap, retry, dead,
/// requeue, discard, stats, info and cleanup: every script of the queue, with exact results.
/// `q` has a 200 ms lease (so leases expire within the test); `drain` is the same queue with a
/// long lease, for leasing a large batch that must not expire before it is acknowledged.
async fn exercise(q: &Queue<ClusterConnection>, drain: &Queue<ClusterConnection>) {
    let one = q.push(NewJob::new(r#"{"n":0}"#)).await.unwrap();
    assert!(one.created);
    let many = q
        .push_many(
            (1..=1500)
                .map(|n| NewJob::new(format!(r#"{{"n":{n}}}"#)))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(many.len(), 1500);
    let first = q
        .push(NewJob::new("{}").unique("once", Duration::from_secs(60)))
        .await
        .unwrap();
    let dup = q
        .push(NewJob::new("{}").unique("once", Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(first.created && !dup.created);
    assert_eq!(dup.id, first.id);
    let later = q
        .push(NewJob::new("{}").at(When::After(Duration::from_secs(3600))))
        .await
        .unwrap();
    let s = q.stats().await.unwrap();
    assert_eq!((s.queued, s.scheduled, s.running), (1502, 1, 0), "{s:?}");
    assert_eq!(
        q.job(&later.id).await.unwrap().unwrap().status,
        JobStatus::Scheduled
    );

    // Lease 6 and record one of each outcome; two stay leased.
    let f = q.fetch(6).await.unwrap();
    assert_eq!(f.jobs.len(), 6);
    assert_eq!(f.jobs[0].id, one.id);
    assert!(f.more);
    assert!(f.next_due_ms.is_some());
    let j = &f.jobs;
    let r = q
        .ack(&[
            Ack::Done {
                id: j[0].id.clone(),
                token: j[0].token,
            },
            Ack::Retry {
                id: j[1].id.clone(),
                token: j[1].token,
                delay: Duration::from_millis(500),
                error: "try later".into(),
            },
            Ack::Dead {
                id: j[2].id.clone(),
                token: j[2].token,
                error: "broken".into(),
            },
            Ack::Release {
                id: j[3].id.clone(),
                token: j[3].token,
            },
            Ack::Done {
                id: j[0].id.clone(),
                token: j[0].token,
            },
        ])
        .await
        .unwrap();
    assert_eq!((r.applied, r.stale), (4, 1));
    // Renewal moves the deadline: let the clock pass the fetch's millisecond first.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        q.renew(&[
            (j[4].id.clone(), j[4].token),
            (j[5].id.clone(), j[5].token + 100)
        ])
        .await
        .unwrap()
        .extended,
        1
    );
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.queued, s.scheduled, s.running, s.done, s.dead),
        (1497, 2, 2, 1, 1),
        "{s:?}"
    );
    let info = q.job(&j[0].id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::Done, 1));
    assert_eq!(info.payload, r#"{"n":0}"#);

    // Dead: listed, requeued with fresh attempts, dead again, discarded.
    assert_eq!(q.dead_ids(10).await.unwrap(), vec![j[2].id.clone()]);
    let info = q.job(&j[2].id).await.unwrap().unwrap();
    assert_eq!(info.last_error.as_deref(), Some("broken"));
    assert!(q.requeue_dead(&j[2].id).await.unwrap());

    // The leases (200 ms) of j[4] and j[5] expire, the retry falls due; drain everything.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut reaped = 0;
    let mut acks = Vec::new();
    let mut requeued_attempt = None;
    let mut retried_attempt = None;
    loop {
        let f = drain.fetch(1000).await.unwrap();
        reaped += f.reaped;
        if f.jobs.is_empty() {
            break;
        }
        for job in f.jobs {
            if job.id == j[2].id {
                requeued_attempt = Some(job.attempt);
            }
            if job.id == j[1].id {
                retried_attempt = Some(job.attempt);
            }
            acks.push(Ack::Done {
                id: job.id,
                token: job.token,
            });
        }
    }
    assert_eq!(reaped, 2);
    assert_eq!(requeued_attempt, Some(1));
    assert_eq!(retried_attempt, Some(2));
    assert_eq!(acks.len(), 1501);
    let r = drain.ack(&acks).await.unwrap();
    assert_eq!((r.applied, r.stale), (1501, 0));
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.queued, s.scheduled, s.running, s.done, s.dead),
        (0, 1, 0, 1502, 0),
        "{s:?}"
    );
    assert_eq!(
        q.job(&j[4].id).await.unwrap().unwrap().attempts,
        2,
        "a reaped lease counts its attempt"
    );

    // Dead again, then discarded.
    let again = q.push(NewJob::new("{}")).await.unwrap();
    let f = q.fetch(1).await.unwrap();
    assert_eq!(f.jobs[0].id, again.id);
    q.ack(&[Ack::Dead {
        id: again.id.clone(),
        token: f.jobs[0].token,
        error: "no".into(),
    }])
    .await
    .unwrap();
    assert!(q.discard_dead(&again.id).await.unwrap());
    assert!(q.job(&again.id).await.unwrap().is_none());

    // Retention: done jobs are forgotten in bounded steps.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(q.cleanup().await.unwrap(), (1502, 0));
    let s = q.stats().await.unwrap();
    assert_eq!((s.queued, s.scheduled, s.done, s.dead), (0, 1, 0, 0));
}

#[derive(Debug, Deserialize)]
struct Job {
    #[allow(dead_code)]
    n: u64,
}

async fn count(_job: Job, runs: Data<Arc<AtomicUsize>>) -> Result<(), BoxDynError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_queue_operation_and_a_worker_run_on_a_three_node_cluster() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(3, 0));
    let conn = connect(&cluster).await;
    let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());

    // Two queues whose hash tags fall on different nodes.
    let names: Vec<String> = (0..100).map(|i| format!("q{i}")).collect();
    let mut picked: Vec<(String, u16)> = Vec::new();
    for name in names {
        let keys = queue::Keys::new(&namespace, &name);
        let slot = cluster.slot(&keys.pending);
        assert_eq!(slot, cluster.slot(&keys.dead), "one slot per queue");
        let node = cluster.primary_of(slot).port;
        if picked.iter().all(|(_, n)| *n != node) {
            picked.push((name, node));
        }
        if picked.len() == 2 {
            break;
        }
    }
    assert_eq!(picked.len(), 2, "two queues on two nodes");
    eprintln!("queues and the nodes serving them: {picked:?}");

    // The control, straight to the node serving the first queue: it refuses a script that
    // touches an undeclared key served by another node, and a call whose declared keys span two
    // slots (CROSSSLOT). Redis 7.0 does let a script reach an undeclared key in another slot of
    // the same node, which no test here can catch: every key a queue script touches is one of
    // its KEYS (checked by reading the scripts), and all of them carry the queue's hash tag.
    let ours = queue::Keys::new(&namespace, &picked[0].0).jobs;
    let neighbour = queue::Keys::new(&namespace, &picked[1].0).jobs;
    let mut node = redis::Client::open(format!("redis://127.0.0.1:{}", picked[0].1))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let undeclared: Result<Option<String>, _> = redis::cmd("EVAL")
        .arg("return redis.call('GET', ARGV[1])")
        .arg(1)
        .arg(&ours)
        .arg(&neighbour)
        .query_async(&mut node)
        .await;
    let err = undeclared.expect_err("an undeclared key on another node was reachable");
    eprintln!("a script reaching another node's key: {err}");
    let crossslot: Result<Option<String>, _> = redis::cmd("EVAL")
        .arg("return redis.call('GET', KEYS[2])")
        .arg(2)
        .arg(&ours)
        .arg(&neighbour)
        .query_async(&mut node)
        .await;
    let err = crossslot.expect_err("declared keys in two slots were accepted");
    assert!(
        err.to_string().to_uppercase().contains("CROSSSLOT"),
        "{err}"
    );
    drop(node);

    let queues: Vec<Queue<ClusterConnection>> = picked
        .iter()
        .map(|(name, _)| {
            let mut config = QueueConfig::new(namespace.clone(), name.clone());
            config.lease = Duration::from_millis(200);
            config.done_retention = Duration::from_millis(100);
            Queue::new(conn.clone(), config)
        })
        .collect();
    for q in &queues {
        let mut long = q.config().clone();
        long.lease = Duration::from_secs(60);
        exercise(q, &Queue::new(conn.clone(), long)).await;
    }

    // The apalis worker over the cluster connection, one per queue, without pub/sub wake-ups:
    // an idle worker polls every `idle_poll`.
    let runs = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for (i, q) in queues.iter().enumerate() {
        let mut config = q.config().clone();
        config.lease = Duration::from_secs(15);
        config.done_retention = Duration::from_secs(3600);
        let q = Queue::new(conn.clone(), config);
        q.push_many(
            (0..200)
                .map(|n| NewJob::new(format!(r#"{{"n":{n}}}"#)))
                .collect(),
        )
        .await
        .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let runs = runs.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let options = BackendOptions {
                    concurrency: 4,
                    idle_poll: Duration::from_millis(100),
                    ..BackendOptions::default()
                };
                let (backend, driver) = RedisBackend::<Job>::new(q, options, None);
                WorkerBuilder::new(format!("cluster-worker-{i}"))
                    .backend(backend)
                    .layer(ConcurrencyLimitLayer::new(4))
                    .parallelize(tokio::spawn)
                    .data(runs)
                    .build(count)
                    .run_until(async move {
                        let _ = stopped.await;
                        Ok::<(), std::io::Error>(())
                    })
                    .await
                    .unwrap();
                driver.finish(Duration::from_secs(5)).await;
            });
        });
        workers.push((stop, thread));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for q in &queues {
        loop {
            let s = q.stats().await.unwrap();
            if s.done == 200 {
                assert_eq!((s.queued, s.running, s.dead), (0, 0, 0), "{s:?}");
                break;
            }
            assert!(Instant::now() < deadline, "worker did not drain: {s:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // A job pushed to an idle worker is found by its next poll.
    queues[0].push(NewJob::new(r#"{"n":1}"#)).await.unwrap();
    loop {
        if queues[0].stats().await.unwrap().done == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "idle worker never polled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (stop, thread) in workers {
        let _ = stop.send(());
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
    assert_eq!(runs.load(Ordering::SeqCst), 401);
    drop(conn);
    tokio::task::block_in_place(move || drop(cluster));
}
