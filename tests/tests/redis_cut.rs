//! The API under load while Redis is cut (issue 6, item 5): a steady stream of
//! `POST /v1/track/pageview` and `GET /v1/queues` against an API over a redis-server of the test's
//! own, which is killed for `REDIS_CUT_SECONDS` (default 2) and started again on the same port.
//! During the cut every request fails fast with 503, `Retry-After` and the JSON error envelope;
//! none hangs; within a second of Redis answering again, requests succeed again.
//!
//! Bounded: `REDIS_CUT_CLIENTS` (default 4) loopback clients, one request each every 20 ms, for
//! about 5 s plus the cut.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use testkit::{HttpAnswer, PrivateRedis, TestDb, env_num, http_full};
use tests::TestApi;
use tokio::time::Instant;

/// A request slower than this is a failure (the point is to fail fast).
const FAST: Duration = Duration::from_secs(1);
/// The API must answer normally again this soon after Redis does.
const RECOVERY: Duration = Duration::from_secs(1);
/// Past this a request counts as hung (it is abandoned and reported).
const HANG: Duration = Duration::from_secs(10);

/// One request's outcome.
#[derive(Debug)]
struct Sample {
    what: &'static str,
    started: Instant,
    took: Duration,
    /// `None` when it hung or the connection failed.
    answer: Option<HttpAnswer>,
}

impl Sample {
    fn ok(&self) -> bool {
        self.answer
            .as_ref()
            .is_some_and(|a| a.status == 200 || a.status == 202)
    }

    /// 503, `Retry-After`, and the envelope with code `unavailable`.
    fn unavailable(&self) -> bool {
        self.answer.as_ref().is_some_and(|a| {
            a.status == 503
                && a.header("retry-after")
                    .is_some_and(|v| v.parse::<u32>().is_ok())
                && a.header("content-type")
                    .is_some_and(|t| t.starts_with("application/json"))
                && a.body["error"]["code"] == "unavailable"
                && a.body["error"]["message"].is_string()
        })
    }

    fn describe(&self, origin: Instant) -> String {
        format!(
            "{} at +{:.3}s took {:.3}s: {}",
            self.what,
            (self.started - origin).as_secs_f64(),
            self.took.as_secs_f64(),
            match &self.answer {
                Some(a) => format!(
                    "{} retry-after={:?} {}",
                    a.status,
                    a.header("retry-after"),
                    a.body
                ),
                None => "no answer".to_owned(),
            }
        )
    }
}

async fn client(addr: String, n: usize, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let mut samples = Vec::new();
    let fingerprint = format!("redis-cut-{n}-{}", uuid::Uuid::new_v4().simple());
    let view = json!({"fingerprint": fingerprint, "url": "/communities/montreal/"});
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (what, method, path, body) = if i.is_multiple_of(2) {
            ("pageview", "POST", "/v1/track/pageview", Some(&view))
        } else {
            ("queues", "GET", "/v1/queues", None)
        };
        i += 1;
        let started = Instant::now();
        let answer = tokio::time::timeout(HANG, http_full(&addr, method, path, None, body))
            .await
            .ok()
            .and_then(Result::ok);
        samples.push(Sample {
            what,
            started,
            took: started.elapsed(),
            answer,
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_fail_fast_with_503_while_redis_is_cut_and_recover_within_a_second() {
    let cut = Duration::from_secs(env_num("REDIS_CUT_SECONDS", 2));
    let clients = env_num("REDIS_CUT_CLIENTS", 4) as usize;
    let redis = PrivateRedis::start(false);
    let db = TestDb::postgres().await;
    let api = TestApi::start_on(&db, &redis.url(), &[]).await;

    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..clients)
        .map(|n| tokio::spawn(client(api.addr.clone(), n, stop.clone())))
        .collect();

    // Warm up, cut Redis (SIGKILL: connections drop at once), wait, start it on the same port.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cutting_at = Instant::now();
    let (redis, cut_at) = tokio::task::spawn_blocking(move || {
        let mut redis = redis;
        redis.kill();
        (redis, Instant::now())
    })
    .await
    .unwrap();
    tokio::time::sleep(cut).await;
    let restart_at = Instant::now();
    let (redis, back_at) = tokio::task::spawn_blocking(move || {
        let mut redis = redis;
        redis.restart(false);
        (redis, Instant::now())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples: Vec<Sample> = Vec::new();
    for handle in load {
        samples.extend(handle.await.unwrap());
    }
    drop(redis);
    samples.sort_by_key(|s| s.started);

    let at = |t: Instant| (t - origin).as_secs_f64();
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started >= cut_at && s.started + s.took <= restart_at)
        .collect();
    let recovered: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started >= back_at + RECOVERY)
        .collect();
    let before: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started + s.took < cutting_at)
        .collect();
    let slowest = samples.iter().map(|s| s.took).max().unwrap_or_default();
    // From Redis answering again until the end of the last request that did not succeed.
    let recovery = samples
        .iter()
        .filter(|s| !s.ok())
        .map(|s| (s.started + s.took).saturating_duration_since(back_at))
        .max()
        .unwrap_or_default();
    println!(
        "redis cut: {} requests by {clients} clients; cut at +{:.3}s, restarted at +{:.3}s, \
         answering at +{:.3}s; before {} ({} ok), during {} ({} were 503 + Retry-After), \
         recovered {} ({} ok); slowest {:.3}s; all succeed {:.3}s after Redis answers",
        samples.len(),
        at(cut_at),
        at(restart_at),
        at(back_at),
        before.len(),
        before.iter().filter(|s| s.ok()).count(),
        during.len(),
        during.iter().filter(|s| s.unavailable()).count(),
        recovered.len(),
        recovered.iter().filter(|s| s.ok()).count(),
        slowest.as_secs_f64(),
        recovery.as_secs_f64(),
    );

    for s in &samples {
        assert!(s.answer.is_some(), "hung or failed: {}", s.describe(origin));
        assert!(s.took < FAST, "slow: {}", s.describe(origin));
        assert!(
            s.ok() || s.unavailable(),
            "neither a success nor a proper 503: {}",
            s.describe(origin)
        );
    }
    assert!(before.len() >= clients, "too little load before the cut");
    for s in &before {
        assert!(s.ok(), "before the cut: {}", s.describe(origin));
    }
    assert!(
        during.len() >= 2 * clients,
        "too little load during the cut"
    );
    for s in &during {
        assert!(s.unavailable(), "during the cut: {}", s.describe(origin));
    }
    assert!(
        recovery < RECOVERY,
        "requests still failed {recovery:?} after Redis answered"
    );
    assert!(!recovered.is_empty(), "no load after recovery");
    for s in &recovered {
        assert!(
            s.ok(),
            "more than {RECOVERY:?} after Redis answered: {}",
            s.describe(origin)
        );
    }
}
