//! Prometheus metrics: the process-wide recorder, the HTTP request middleware and queue gauges.
//!
//! The recorder is installed once per process ([`handle`] is a `OnceLock`), however many routers
//! are built (tests build one per test). If another recorder was installed first, `/metrics` still
//! answers but shows only what that recorder exposes through our handle (nothing); a warning says so.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `method`, `path` (the route template), `status` |
//! | `http_request_duration_seconds` | histogram | `method`, `path`, `status` |
//! | `celeriac_queue_jobs` | gauge, refreshed on scrape | `queue`, `status` (queued, scheduled, running, done, dead) |
//! | `celeriac_queue_oldest_waiting_seconds` | gauge, refreshed on scrape | `queue` |
//!
//! The fleet's job metrics are not this process's: every worker adds what it counted to
//! `{ns}:metrics` in Redis at each heartbeat (`domain::workers::add_tally`), and each scrape reads
//! that hash once ([`fleet_text`]). One scrape target shows the whole fleet, however many workers
//! run, and the counters survive a worker's restart (they restart only with Redis's data).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `celeriac_jobs_started_total` | counter | `job` |
//! | `celeriac_jobs_succeeded_total` | counter | `job` |
//! | `celeriac_jobs_retried_total` | counter | `job` (failed attempts that will be retried) |
//! | `celeriac_jobs_dead_total` | counter | `job` (failed for good) |
//! | `celeriac_job_duration_seconds` | histogram | `job` (runs that ended, any outcome) |
//! | `celeriac_celery_messages_adopted_total` | counter | none |

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use domain::queues::Queues;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request counter name.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Request latency histogram name.
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
/// Queue depth gauge name.
pub const QUEUE_JOBS: &str = "celeriac_queue_jobs";
/// Oldest waiting job gauge name.
pub const QUEUE_OLDEST: &str = "celeriac_queue_oldest_waiting_seconds";

/// Latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the global recorder on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), &BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will not show ours");
        }
        metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests answered");
        metrics::describe_histogram!(
            HTTP_DURATION,
            metrics::Unit::Seconds,
            "HTTP request latency"
        );
        metrics::describe_gauge!(QUEUE_JOBS, "Jobs per queue and status, read at scrape time");
        metrics::describe_gauge!(
            QUEUE_OLDEST,
            metrics::Unit::Seconds,
            "How long the oldest ready job has waited"
        );
        handle
    })
}

/// Middleware: count and time every request by method, route template and status.
///
/// The route template (`/v1/jobs/{name}/{id}`), not the path, keeps label cardinality bounded;
/// requests that match no route are labelled `unmatched`.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(req.method());
    let response = next.run(req).await;
    let labels = [
        ("method", method.to_owned()),
        ("path", path),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Standard methods by name; anything else as `other` (bounded cardinality).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Read every queue's stats and set the depth gauges. A Redis failure is logged and the gauges
/// keep their last values, so a scrape never fails because Redis does.
pub async fn refresh_queue_gauges(queues: &Queues) {
    let reads = queues
        .all()
        .map(|q| async move { (q.name(), q.stats().await) });
    for (queue, stats) in futures::future::join_all(reads).await {
        let stats = match stats {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(queue, error = %e, "queue stats unavailable for /metrics");
                continue;
            }
        };
        for (status, n) in [
            ("queued", stats.queued),
            ("scheduled", stats.scheduled),
            ("running", stats.running),
            ("done", stats.done),
            ("dead", stats.dead),
        ] {
            metrics::gauge!(QUEUE_JOBS, "queue" => queue.to_owned(), "status" => status)
                .set(n as f64);
        }
        metrics::gauge!(QUEUE_OLDEST, "queue" => queue.to_owned())
            .set(stats.oldest_waiting_seconds);
    }
}

/// The fleet's job metrics in Prometheus text format, read from `{ns}:metrics` in one call; every
/// registered job appears (zeros until it runs). A Redis failure leaves them out of this scrape
/// (logged), so a scrape never fails because Redis does.
pub async fn fleet_text(redis: &mut domain::conn::RedisConn, namespace: &str) -> String {
    use std::collections::HashMap;
    use std::fmt::Write as _;

    use domain::workers::{DURATION_BUCKETS_MS, metrics_key};

    let totals: HashMap<String, u64> =
        match redis::AsyncCommands::hgetall(redis, metrics_key(namespace)).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "fleet job metrics unavailable for /metrics");
                return String::new();
            }
        };
    let get = |job: &str, what: &str| totals.get(&format!("{job}:{what}")).copied().unwrap_or(0);
    let jobs: Vec<&str> = domain::registry::JOBS.iter().map(|j| j.name).collect();
    let mut out = String::new();
    for (what, help) in [
        ("started", "Job runs started by the fleet's workers"),
        ("succeeded", "Job runs that succeeded"),
        ("retried", "Job runs that failed and will be retried"),
        ("dead", "Job runs that failed for good"),
    ] {
        let _ = writeln!(out, "# HELP celeriac_jobs_{what}_total {help}");
        let _ = writeln!(out, "# TYPE celeriac_jobs_{what}_total counter");
        for job in &jobs {
            let _ = writeln!(
                out,
                "celeriac_jobs_{what}_total{{job=\"{job}\"}} {}",
                get(job, what)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP celeriac_job_duration_seconds Run time of the fleet's job runs"
    );
    let _ = writeln!(out, "# TYPE celeriac_job_duration_seconds histogram");
    for job in &jobs {
        let mut cumulative = 0;
        for (i, bound) in DURATION_BUCKETS_MS.iter().enumerate() {
            cumulative += get(job, &format!("le:{i}"));
            let _ = writeln!(
                out,
                "celeriac_job_duration_seconds_bucket{{job=\"{job}\",le=\"{}\"}} {cumulative}",
                *bound as f64 / 1000.0
            );
        }
        cumulative += get(job, &format!("le:{}", DURATION_BUCKETS_MS.len()));
        let _ = writeln!(
            out,
            "celeriac_job_duration_seconds_bucket{{job=\"{job}\",le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "celeriac_job_duration_seconds_sum{{job=\"{job}\"}} {}",
            get(job, "ms") as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "celeriac_job_duration_seconds_count{{job=\"{job}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP celeriac_celery_messages_adopted_total Celery messages adopted into Celeriac queues"
    );
    let _ = writeln!(out, "# TYPE celeriac_celery_messages_adopted_total counter");
    let _ = writeln!(
        out,
        "celeriac_celery_messages_adopted_total {}",
        totals.get("celery:adopted").copied().unwrap_or(0)
    );
    out
}
