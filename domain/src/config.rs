//! Typed configuration, read once from the environment (and `.env`), failing fast with one line.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// A configuration variable that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {var}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// The variable's name.
    pub var: String,
    /// What it held.
    pub value: String,
    /// Why it is refused.
    pub reason: String,
}

/// Settings every Celeriac process shares.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `DATABASE_URL`: PostgreSQL in production, SQLite by default.
    pub database_url: String,
    /// `DATABASE_POOL_MODE`: `transaction` when `DATABASE_URL` is a PgBouncer in transaction
    /// pooling mode (every statement then runs in its own transaction; [`crate::db`]), else
    /// `session` (the default: straight to PostgreSQL, or a session pooler).
    pub database_pool_mode: crate::db::PoolMode,
    /// `REDIS_URL`: hot data and the queue.
    pub redis_url: String,
    /// `CELERIAC_NAMESPACE`: prefix of every queue key (`celeriac`).
    pub namespace: String,
    /// `WORKER_THREADS`: threads of a `worker` process's runtime (1: one event loop, a
    /// current-thread runtime; more: a multi-thread runtime with that many threads). One thread
    /// does more jobs per CPU second than several (no task moves or wakes between threads, no
    /// allocator traffic across them): add processes to use more cores. Unset, a
    /// `TOKIO_WORKER_THREADS` left from earlier builds (which let Tokio read it) still counts.
    pub worker_threads: usize,
    /// `WORKER_CONCURRENCY`: jobs in flight per job type per worker process (512).
    pub worker_concurrency: usize,
    /// `WORKER_CONCURRENCY_<JOB>`: per-job-type overrides.
    pub concurrency_overrides: HashMap<String, usize>,
    /// `JOB_TIME_LIMIT_<JOB>`: per-job-type time limits in seconds (`0` = none), over each job's
    /// default (`JobArgs::TIME_LIMIT_SECONDS`).
    pub time_limit_overrides: HashMap<String, u64>,
    /// `RATE_LIMIT_<JOB>`: at most this many runs of a job type start per second across the
    /// whole fleet (`100/s`, `30/m`, `10/h`; Celery's notation). Unset: no limit.
    pub rate_limits: HashMap<String, queue::RateLimit>,
    /// `JOB_LEASE_SECONDS`: how long a lost worker's job waits before another runs it (15).
    pub job_lease: Duration,
    /// `SHUTDOWN_TIMEOUT_SECONDS`: how long SIGTERM waits for running jobs (30).
    pub shutdown_timeout: Duration,
    /// `DONE_RETENTION_SECONDS`: how long finished jobs are kept (86400).
    pub done_retention: Duration,
    /// `DEAD_RETENTION_SECONDS`: how long dead jobs are kept (604800).
    pub dead_retention: Duration,
    /// `ANON_SESSION_TIMEOUT_SECONDS`: idle time that ends an anonymous session (1800).
    pub anon_session_timeout: Duration,
    /// `CELERY_QUEUES`: Celery queues (Redis lists) the worker consumes, comma-separated
    /// (`celery`; empty turns the Celery bridge off).
    pub celery_queues: Vec<String>,
    /// `CELERY_RESULT_BACKEND`: Redis URL where Celery result documents are written (unset: none).
    pub celery_result_backend: Option<String>,
    /// `CELERY_BROKER_URL`: the Redis Django's Celery sends its messages to, when it is not
    /// `REDIS_URL` (Celery cannot use a Redis Cluster, so a fleet on a cluster keeps Celery's
    /// broker on a plain Redis). Unset, or equal to `REDIS_URL`: `None`, the same Redis, where
    /// the intake moves each message in one atomic step.
    pub celery_broker_url: Option<String>,
    /// `CELERY_EVENTS`: `1` makes the worker send Celery's events (worker heartbeats, the Celery
    /// tasks' received/started/succeeded/failed/retried/revoked) for Flower and dashboards (off).
    pub celery_events: bool,
    /// `ANON_BUFFER_SECONDS`: how long an anonymous session's buffered views (and its first
    /// document) wait in Redis for a worker after the session's last view (86400). A finalize that
    /// runs later than the session's end plus this loses the views it has not written.
    pub anon_buffer: Duration,
    /// `PAGEVIEW_MAX_PATHS_PER_DAY`: distinct paths counted a day (20000; 0 = no cap); views of
    /// further new paths count under the path `(other)`, so a flood of random paths costs Redis a
    /// bounded amount.
    pub max_paths_per_day: u64,
    /// `PAGEVIEW_MAX_EXACT_VISITORS`: unique visitors a path keeps exactly per day (1000; 0 = no
    /// cap); past it they are counted in a HyperLogLog sketch (≤ 12 KB, ~0.8 % error).
    pub max_exact_visitors: u64,
    /// `TRACK_MAX_PAST_SECONDS`: how old a client timestamp may be (86400): older views are refused
    /// (422 naming `timestamp`), so every counted view lands in a day the aggregation still
    /// recomputes (today and yesterday).
    pub max_past: Duration,
    /// `DB_WRITERS`: session-upsert statements in flight at once per worker process (4); each
    /// carries every row that arrived while the others were committing.
    pub db_writers: usize,
    /// `GEOIP_DATABASE`: path of a GeoLite2, GeoIP2 or DB-IP City database (`.mmdb`); sessions get
    /// their city, region and country from it. Unset: no location (said once at start).
    pub geoip_database: Option<std::path::PathBuf>,
}

/// The embedded default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://celeriac.db?mode=rwc";
/// The default Redis.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

impl Settings {
    /// Read the process environment (after loading `.env` if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Build from explicit variables (tests use this; nothing global is touched).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| vars.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let concurrency_overrides = vars
            .iter()
            .filter_map(|(k, v)| {
                let job = k.strip_prefix("WORKER_CONCURRENCY_")?;
                Some((job.to_ascii_lowercase(), k, v))
            })
            .map(|(job, k, v)| parse::<usize>(k, v).map(|n| (job, n.max(1))))
            .collect::<Result<_, _>>()?;
        let time_limit_overrides = per_job::<u64>(vars, "JOB_TIME_LIMIT_")?;
        let rate_limits = per_job::<queue::RateLimit>(vars, "RATE_LIMIT_")?;
        Ok(Self {
            database_url: get("DATABASE_URL")
                .unwrap_or(DEFAULT_DATABASE_URL)
                .to_owned(),
            database_pool_mode: opt(vars, "DATABASE_POOL_MODE")?.unwrap_or_default(),
            redis_url: get("REDIS_URL").unwrap_or(DEFAULT_REDIS_URL).to_owned(),
            namespace: get("CELERIAC_NAMESPACE").unwrap_or("celeriac").to_owned(),
            // Unset: what `TOKIO_WORKER_THREADS` (which earlier builds left to Tokio) asks for.
            worker_threads: at_least_one(
                vars,
                "WORKER_THREADS",
                at_least_one(vars, "TOKIO_WORKER_THREADS", 1)?,
            )?,
            worker_concurrency: opt(vars, "WORKER_CONCURRENCY")?.unwrap_or(512usize).max(1),
            concurrency_overrides,
            time_limit_overrides,
            rate_limits,
            job_lease: secs(vars, "JOB_LEASE_SECONDS", 15)?,
            shutdown_timeout: secs(vars, "SHUTDOWN_TIMEOUT_SECONDS", 30)?,
            done_retention: secs(vars, "DONE_RETENTION_SECONDS", 86_400)?,
            dead_retention: secs(vars, "DEAD_RETENTION_SECONDS", 604_800)?,
            anon_session_timeout: secs(vars, "ANON_SESSION_TIMEOUT_SECONDS", 1800)?,
            celery_queues: vars
                .get("CELERY_QUEUES")
                .map(String::as_str)
                .unwrap_or("celery")
                .split(',')
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_owned)
                .collect(),
            celery_result_backend: get("CELERY_RESULT_BACKEND").map(str::to_owned),
            celery_broker_url: get("CELERY_BROKER_URL")
                .filter(|url| Some(*url) != get("REDIS_URL").or(Some(DEFAULT_REDIS_URL)))
                .map(str::to_owned),
            celery_events: flag(vars, "CELERY_EVENTS")?,
            anon_buffer: secs(vars, "ANON_BUFFER_SECONDS", 86_400)?,
            max_paths_per_day: opt(vars, "PAGEVIEW_MAX_PATHS_PER_DAY")?.unwrap_or(20_000),
            max_exact_visitors: opt(vars, "PAGEVIEW_MAX_EXACT_VISITORS")?.unwrap_or(1_000),
            max_past: secs(vars, "TRACK_MAX_PAST_SECONDS", 86_400)?,
            db_writers: opt(vars, "DB_WRITERS")?.unwrap_or(4usize).clamp(1, 16),
            geoip_database: get("GEOIP_DATABASE").map(std::path::PathBuf::from),
        })
    }

    /// How long one run of `job` may take (`default_secs` unless `JOB_TIME_LIMIT_<JOB>` says
    /// otherwise); `None` for no limit.
    pub fn time_limit_for(&self, job: &str, default_secs: u64) -> Option<Duration> {
        let secs = self
            .time_limit_overrides
            .get(job)
            .copied()
            .unwrap_or(default_secs);
        (secs > 0).then(|| Duration::from_secs(secs))
    }

    /// Jobs in flight for `job` in one worker process.
    pub fn concurrency_for(&self, job: &str) -> usize {
        self.concurrency_overrides
            .get(job)
            .copied()
            .unwrap_or(self.worker_concurrency)
    }
}

fn parse<T: FromStr>(var: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse().map_err(|e: T::Err| ConfigError {
        var: var.to_owned(),
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

/// A variable parsed as `T`, or `None` when unset or empty.
pub fn opt<T: FromStr>(vars: &HashMap<String, String>, var: &str) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match vars.get(var).filter(|v| !v.is_empty()) {
        Some(v) => parse(var, v).map(Some),
        None => Ok(None),
    }
}

/// The variables `<prefix><JOB>` (any case) by job name, each parsed as `T`; empty ones are
/// unset, and a name that is no job is refused (a typo must not pass as "no limit").
fn per_job<T: FromStr>(
    vars: &HashMap<String, String>,
    prefix: &str,
) -> Result<HashMap<String, T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    vars.iter()
        .filter(|(_, v)| !v.is_empty())
        .filter_map(|(k, v)| {
            let job = k.strip_prefix(prefix)?.to_ascii_lowercase();
            Some((job, k, v))
        })
        .map(|(job, k, v)| {
            if crate::registry::find(&job).is_none() {
                return Err(ConfigError {
                    var: k.clone(),
                    value: v.clone(),
                    reason: format!("there is no job {job:?}"),
                });
            }
            parse::<T>(k, v).map(|x| (job, x))
        })
        .collect()
}

/// A yes/no variable: `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`; unset or empty: no.
fn flag(vars: &HashMap<String, String>, var: &str) -> Result<bool, ConfigError> {
    let Some(v) = vars.get(var).filter(|v| !v.is_empty()) else {
        return Ok(false);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError {
            var: var.to_owned(),
            value: v.clone(),
            reason: "expected 1 or 0 (true/false, yes/no, on/off)".to_owned(),
        }),
    }
}

/// A count that must be at least 1 (`default` when unset); 0 is refused, not raised to 1: a
/// process asked for no threads (or a body limit of nothing) is misconfigured.
pub fn at_least_one(
    vars: &HashMap<String, String>,
    var: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    match opt::<usize>(vars, var)? {
        Some(0) => Err(ConfigError {
            var: var.into(),
            value: "0".into(),
            reason: "must be at least 1".into(),
        }),
        n => Ok(n.unwrap_or(default)),
    }
}

fn secs(vars: &HashMap<String, String>, var: &str, default: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(opt(vars, var)?.unwrap_or(default)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_bad_numbers_fail_naming_the_variable() {
        let s = Settings::from_vars(&HashMap::new()).unwrap();
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!((s.worker_concurrency, s.db_writers), (512, 4));
        assert_eq!(s.worker_threads, 1);
        let threads = HashMap::from([("WORKER_THREADS".to_owned(), "3".to_owned())]);
        assert_eq!(Settings::from_vars(&threads).unwrap().worker_threads, 3);
        let old = HashMap::from([("TOKIO_WORKER_THREADS".to_owned(), "2".to_owned())]);
        assert_eq!(Settings::from_vars(&old).unwrap().worker_threads, 2);
        let both = HashMap::from([
            ("TOKIO_WORKER_THREADS".to_owned(), "2".to_owned()),
            ("WORKER_THREADS".to_owned(), "1".to_owned()),
        ]);
        assert_eq!(Settings::from_vars(&both).unwrap().worker_threads, 1);
        let vars = HashMap::from([
            (
                "WORKER_CONCURRENCY_PERSIST_ANONYMOUS_SESSION".to_owned(),
                "4".to_owned(),
            ),
            ("JOB_LEASE_SECONDS".to_owned(), "3".to_owned()),
        ]);
        let s = Settings::from_vars(&vars).unwrap();
        assert_eq!(s.concurrency_for("persist_anonymous_session"), 4);
        assert_eq!(
            s.time_limit_for("persist_anonymous_session", 300),
            Some(Duration::from_secs(300))
        );
        let vars = HashMap::from([
            (
                "JOB_TIME_LIMIT_ENHANCE_SESSION_ASYNC".to_owned(),
                "2".to_owned(),
            ),
            (
                "JOB_TIME_LIMIT_CLEANUP_OLD_ANONYMOUS_DATA".to_owned(),
                "0".to_owned(),
            ),
        ]);
        let limits = Settings::from_vars(&vars).unwrap();
        assert_eq!(
            limits.time_limit_for("enhance_session_async", 300),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            limits.time_limit_for("cleanup_old_anonymous_data", 3600),
            None
        );
        let rated = HashMap::from([(
            "RATE_LIMIT_ENHANCE_SESSION_ASYNC".to_owned(),
            "120/m".to_owned(),
        )]);
        let rated = Settings::from_vars(&rated).unwrap();
        assert_eq!(rated.rate_limits["enhance_session_async"].per_second, 2.0);
        assert!(!rated.rate_limits.contains_key("persist_anonymous_session"));
        assert!(!rated.celery_events);
        let events = HashMap::from([("CELERY_EVENTS".to_owned(), "1".to_owned())]);
        assert!(Settings::from_vars(&events).unwrap().celery_events);
        for (var, value) in [
            ("JOB_TIME_LIMIT_ENHANCE_SESSION_ASYNC", "soon"),
            ("JOB_TIME_LIMIT_ENHANCE_SESION_ASYNC", "5"),
            ("RATE_LIMIT_ENHANCE_SESSION_ASYNC", "lots"),
            ("RATE_LIMIT_ENHANCE_SESSION_ASYNC", "0/s"),
            ("RATE_LIMIT_ENHANCE_SESION_ASYNC", "5/s"),
            ("CELERY_EVENTS", "maybe"),
            ("WORKER_THREADS", "0"),
            ("WORKER_THREADS", "two"),
        ] {
            let bad = HashMap::from([(var.to_owned(), value.to_owned())]);
            let e = Settings::from_vars(&bad).unwrap_err().to_string();
            assert!(e.contains(var), "{e}");
        }
        assert_eq!(s.job_lease, Duration::from_secs(3));
        let few = HashMap::from([("DB_WRITERS".to_owned(), "0".to_owned())]);
        assert_eq!(Settings::from_vars(&few).unwrap().db_writers, 1);
        let bad = HashMap::from([("WORKER_CONCURRENCY".to_owned(), "many".to_owned())]);
        let e = Settings::from_vars(&bad).unwrap_err().to_string();
        assert!(e.contains("WORKER_CONCURRENCY"), "{e}");
    }
}
