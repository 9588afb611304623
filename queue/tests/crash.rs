//! Issue item 3 with a real crash: a worker process killed with SIGKILL loses its leases, another
//! worker process runs those jobs again as a counted attempt, within lease + idle_poll.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::QueueExt;
use queue::{JobStatus, NewJob, QueueStats};
use testkit::TestRedis;

const LEASE_MS: u64 = 1000;
const IDLE_POLL_MS: u64 = 500;

/// A `queue-probe work` process; SIGKILLed on drop if still running.
struct Probe(tokio::process::Child);

impl Probe {
    fn start(namespace: &str, queue: &str) -> Self {
        let child = testkit::command(env!("CARGO_BIN_EXE_queue-probe"))
            .args(["work", "--url", &testkit::redis_url()])
            .args(["--namespace", namespace, "--queue", queue])
            .args(["--lease-ms", &LEASE_MS.to_string()])
            .args(["--idle-poll-ms", &IDLE_POLL_MS.to_string()])
            .args(["--sleep-ms", "150", "--concurrency", "4", "--prefetch", "4"])
            .spawn()
            .expect("start queue-probe");
        Self(child)
    }

    /// SIGKILL, as a crash would.
    async fn kill_9(&mut self) {
        self.0.kill().await.expect("SIGKILL and reap the probe");
    }

    /// SIGTERM, then wait (at most 20 s) for the graceful stop.
    async fn terminate(&mut self) -> ExitStatus {
        testkit::sigterm(&mut self.0, Duration::from_secs(20)).await
    }
}

async fn ran(t: &TestRedis) -> Vec<i64> {
    redis::cmd("LRANGE")
        .arg(format!("{}:probe:ran", t.namespace))
        .arg(0)
        .arg(-1)
        .query_async(&mut t.conn.clone())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_process_jobs_run_again_elsewhere_as_a_counted_attempt() {
    let t = TestRedis::new().await;
    let q = t.queue(t.config("crash"));
    let pushed = q
        .push_many(
            (0..50)
                .map(|n| NewJob::new(format!(r#"{{"n":{n}}}"#)))
                .collect(),
        )
        .await
        .unwrap();
    let ids: Vec<String> = pushed.into_iter().map(|p| p.id).collect();

    // Worker A runs until a few jobs are finished and others are leased, then dies of SIGKILL.
    let mut a = Probe::start(&t.namespace, "crash");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = q.stats().await.unwrap();
        if ran(&t).await.len() >= 6 && s.running > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "worker A never got going: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill_9().await;
    let killed_at = Instant::now();

    // Its leases are still in Redis: exactly the jobs it held when it died.
    let held: Vec<String> = redis::cmd("ZRANGE")
        .arg(&q.keys().running)
        .arg(0)
        .arg(-1)
        .query_async(&mut t.conn.clone())
        .await
        .unwrap();
    assert!(!held.is_empty(), "A held nothing when it died");
    for id in &held {
        let info = q.job(id).await.unwrap().unwrap();
        assert_eq!((info.status, info.attempts), (JobStatus::Running, 1));
    }

    // Worker B takes over: the rest of the queue, and A's jobs once their leases expire.
    let mut b = Probe::start(&t.namespace, "crash");
    let mut waiting: HashSet<&String> = held.iter().collect();
    let mut recovered_after = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    let last: QueueStats = loop {
        if recovered_after.is_none() {
            for id in waiting.clone() {
                if q.job(id).await.unwrap().unwrap().attempts >= 2 {
                    waiting.remove(id);
                }
            }
            if waiting.is_empty() {
                recovered_after = Some(killed_at.elapsed());
            }
        }
        let s = q.stats().await.unwrap();
        if recovered_after.is_some() && s.done == 50 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "not drained: {s:?}, {} of A's jobs not rerun",
            waiting.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let status = b.terminate().await;
    assert!(status.success(), "worker B did not stop cleanly: {status}");

    let recovered_after = recovered_after.unwrap();
    let bound = Duration::from_millis(LEASE_MS + IDLE_POLL_MS);
    eprintln!(
        "A held {} jobs at SIGKILL; all were running again on B after {recovered_after:?} (bound {bound:?} + slack)",
        held.len()
    );
    // Slack for B's process start and connection, and for a slow test machine.
    assert!(
        recovered_after <= bound + Duration::from_secs(3),
        "recovery took {recovered_after:?}"
    );
    assert_eq!(
        (
            last.queued,
            last.scheduled,
            last.running,
            last.done,
            last.dead
        ),
        (0, 0, 0, 50, 0),
        "{last:?}"
    );
    let held: HashSet<&String> = held.iter().collect();
    for id in &ids {
        let info = q.job(id).await.unwrap().unwrap();
        assert_eq!(info.status, JobStatus::Done, "{id}");
        if held.contains(id) {
            assert_eq!(info.attempts, 2, "A's job {id} ran again as attempt 2");
            assert!(
                info.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("lease expired")),
                "{info:?}"
            );
        } else {
            assert_eq!(info.attempts, 1, "job {id} was not A's and ran once");
        }
    }
    let ran = ran(&t).await;
    let mut seen: Vec<i64> = ran.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        (0..50).collect::<Vec<i64>>(),
        "every job ran: {ran:?}"
    );
}
