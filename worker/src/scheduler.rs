//! The scheduler (Celery beat's replacement): enqueues periodic jobs on cron schedules. Any number
//! of copies may run: every copy computes the same tick times and pushes with the uniqueness key
//! `cron:<job>:<tick>`, so each tick is enqueued once. A tick missed while no scheduler ran is
//! enqueued once at start (the latest one only).

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::conn::RedisConn;
use queue::When;

use domain::config::ConfigError;
use domain::queues::{EnqueueItem, Queues};
use domain::schedules;

/// How long a tick's uniqueness key lives: far longer than any clock skew between copies.
const TICK_UNIQUE_TTL: Duration = Duration::from_secs(24 * 3600);

/// One periodic job.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The job's name.
    pub job: &'static str,
    /// When it runs (cron with seconds, UTC).
    pub schedule: cron::Schedule,
    /// The cron expression, as configured.
    pub expr: String,
}

/// The periodic jobs.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// Enabled entries.
    pub entries: Vec<Entry>,
}

/// The default schedule of SPEC §4 (UTC): each periodic job's `JobArgs::SCHEDULE`, from the
/// registry.
pub fn defaults() -> impl Iterator<Item = (&'static str, &'static str)> {
    domain::registry::JOBS
        .iter()
        .filter_map(|spec| Some((spec.name, spec.schedule?)))
}

impl Schedule {
    /// The defaults, each overridable by `SCHEDULE_<JOB_NAME>` (a cron expression with seconds, or `off`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_vars(&std::env::vars().collect())
    }

    /// As [`Schedule::from_env`], from explicit variables.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut entries = Vec::new();
        for (job, default) in defaults() {
            let var = format!("SCHEDULE_{}", job.to_ascii_uppercase());
            let expr = vars
                .get(&var)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .unwrap_or(default);
            if expr.eq_ignore_ascii_case("off") {
                continue;
            }
            let schedule = cron::Schedule::from_str(expr).map_err(|e| ConfigError {
                var: var.clone(),
                value: expr.to_owned(),
                reason: e.to_string(),
            })?;
            entries.push(Entry {
                job,
                schedule,
                expr: expr.to_owned(),
            });
        }
        Ok(Self { entries })
    }
}

/// Enqueue every tick at or before `now` and after `since`, except that ticks older than the
/// most recent one are skipped (a long outage yields one catch-up run, not hundreds).
async fn enqueue_due(
    queues: &Queues,
    entry: &Entry,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<(DateTime<Utc>, bool)>, domain::queues::EnqueueError> {
    let Some(latest) = entry
        .schedule
        .after(&since)
        .take_while(|t| *t <= now)
        .last()
    else {
        return Ok(None);
    };
    let key = format!("cron:{}:{}", entry.job, latest.timestamp());
    let pushed = queues
        .enqueue_many(
            entry.job,
            vec![EnqueueItem {
                args: serde_json::json!({}),
                when: When::Now,
                unique: Some((key, TICK_UNIQUE_TTL)),
                // Held for its whole TTL: a copy that pushes the tick after its job finished
                // must still find the key.
                unique_until_end: false,
            }],
        )
        .await?;
    let created = pushed.first().filter(|p| p.created);
    if let Some(p) = created {
        tracing::info!(job = entry.job, tick = %latest, job_id = %p.id, "tick enqueued");
    }
    Ok(Some((latest, created.is_some())))
}

/// Publish where `entry` stands after `since` (`domain::schedules`): its cron and next tick, and,
/// when this copy enqueued the tick, that it did. Best effort: a failure only delays what the
/// console shows.
async fn publish(
    conn: &mut RedisConn,
    namespace: &str,
    entry: &Entry,
    since: DateTime<Utc>,
    enqueued_by: Option<&str>,
) {
    let published = schedules::Published {
        cron: entry.expr.clone(),
        next_tick: entry.schedule.after(&since).next(),
    };
    let Ok(json) = serde_json::to_string(&published) else {
        return;
    };
    let mut pipe = redis::pipe();
    pipe.hset(schedules::entries_key(namespace), entry.job, json)
        .ignore();
    if let Some(copy) = enqueued_by {
        pipe.hset(schedules::enqueued_by_key(namespace), entry.job, copy)
            .ignore();
    }
    if let Err(e) = pipe.query_async::<()>(conn).await {
        tracing::debug!(job = entry.job, error = %e, "could not publish the schedule");
    }
}

/// Publish every entry, and forget the published entries of jobs this copy does not schedule
/// (turned off).
async fn publish_all(
    conn: &mut RedisConn,
    namespace: &str,
    schedule: &Schedule,
    since: &HashMap<&'static str, DateTime<Utc>>,
) {
    for e in &schedule.entries {
        publish(conn, namespace, e, since[e.job], None).await;
    }
    let off: Vec<&str> = defaults()
        .map(|(job, _)| job)
        .filter(|job| !schedule.entries.iter().any(|e| e.job == *job))
        .collect();
    if !off.is_empty() {
        let _: Result<(), _> = redis::cmd("HDEL")
            .arg(schedules::entries_key(namespace))
            .arg(&off)
            .query_async(conn)
            .await;
    }
}

/// Run until `shutdown`: wake at each tick, enqueue it once across all copies.
pub async fn run(
    conn: RedisConn,
    queues: Queues,
    namespace: &str,
    schedule: Schedule,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut conn = conn;
    let last_key = |job: &str| schedules::last_tick_key(namespace, job);
    let copy = schedules::copy_name();
    // Where each entry stands: the last tick any copy enqueued (missed ticks are caught up once).
    let mut since = HashMap::new();
    let start = Utc::now();
    for e in &schedule.entries {
        let last: Option<i64> = redis::cmd("GET")
            .arg(last_key(e.job))
            .query_async(&mut conn)
            .await?;
        let from = last
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .unwrap_or(start);
        since.insert(e.job, from.min(start));
    }
    publish_all(&mut conn, namespace, &schedule, &since).await;
    let mut me = domain::workers::WorkerInfo::this_process(
        "scheduler",
        schedule.entries.iter().map(|e| e.job.to_owned()).collect(),
        0,
    );
    let mut beat_at = tokio::time::Instant::now();
    tracing::info!(entries = schedule.entries.len(), "scheduler started");
    tokio::pin!(shutdown);
    let mut failures = 0u32;
    loop {
        if tokio::time::Instant::now() >= beat_at {
            beat_at += domain::workers::HEARTBEAT;
            if let Err(e) = domain::workers::heartbeat(&mut conn, namespace, &mut me).await {
                tracing::debug!(error = %e, "heartbeat failed");
            }
        }
        let now = Utc::now();
        for e in &schedule.entries {
            let from = since[e.job];
            match enqueue_due(&queues, e, from, now).await {
                Ok(Some((tick, created))) => {
                    failures = 0;
                    since.insert(e.job, tick);
                    publish(
                        &mut conn,
                        namespace,
                        e,
                        tick,
                        created.then_some(copy.as_str()),
                    )
                    .await;
                    let _: Result<(), _> = redis::Script::new(
                        "if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end",
                    )
                    .key(last_key(e.job))
                    .arg(tick.timestamp())
                    .invoke_async(&mut conn)
                    .await;
                }
                Ok(None) => {}
                Err(err) => {
                    failures += 1;
                    tracing::warn!(job = e.job, error = %err, "could not enqueue tick; retrying");
                }
            }
        }
        let next = schedule
            .entries
            .iter()
            .filter_map(|e| e.schedule.after(&since[e.job]).next())
            .min();
        let mut wait = next
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(Duration::from_secs(60))
            .min(Duration::from_secs(1));
        if failures > 0 {
            wait = wait.max(Duration::from_millis(200 * u64::from(failures.min(10))));
        }
        tokio::select! {
            () = &mut shutdown => break,
            _ = tokio::time::sleep(wait + Duration::from_millis(5)) => {}
        }
    }
    if let Err(e) = domain::workers::forget(&mut conn, namespace, &me.id).await {
        tracing::debug!(error = %e, "could not leave the worker list");
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_can_be_overridden_or_turned_off() {
        let s = Schedule::from_vars(&HashMap::new()).unwrap();
        assert_eq!(s.entries.len(), 4);
        let vars = HashMap::from([
            (
                "SCHEDULE_CLEANUP_OLD_ANONYMOUS_DATA".to_owned(),
                "off".to_owned(),
            ),
            (
                "SCHEDULE_FINALIZE_IDLE_SESSIONS".to_owned(),
                "*/5 * * * * *".to_owned(),
            ),
        ]);
        let s = Schedule::from_vars(&vars).unwrap();
        assert_eq!(s.entries.len(), 3);
        let bad = HashMap::from([(
            "SCHEDULE_AGGREGATE_PAGE_ANALYTICS".to_owned(),
            "often".to_owned(),
        )]);
        assert!(
            Schedule::from_vars(&bad)
                .unwrap_err()
                .to_string()
                .contains("SCHEDULE_AGGREGATE_PAGE_ANALYTICS")
        );
    }
}
