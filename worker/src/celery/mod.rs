//! The Celery drop-in: Django's `.delay()` / `send_task` messages on the Celery broker lists are
//! adopted atomically into a Celeriac queue (`celery.<queue>`) and run as the matching job.
//!
//! - Intake: a Lua script moves messages from the Celery lists (`q`, then the priority lists
//!   `q\x06\x163`, `…6`, `…9`) into the intake queue; when they are empty, `BLMOVE` waits on the
//!   main list and moves the next message into a staging list the script drains. A message is
//!   never only in this process's memory, so kill -9 at any moment loses nothing.
//! - `eta`/`countdown`: the message is rescheduled in the intake queue at its time (a ZSET, not
//!   memory), deduplicated by task id and eta, so it runs once however far away the time is.
//! - `expires` in the past: recorded as dead ("expired") and, with a result backend, REVOKED.
//! - `retries` counts against the job's attempts; `redelivered` is logged.
//! - Unknown task, undecodable body, non-JSON serializer: dead with the reason, never dropped.
//! - With `CELERY_RESULT_BACKEND`, `celery-task-meta-<id>` gets SUCCESS/FAILURE (+ PUBLISH).

pub mod envelope;

use std::time::Duration;

use apalis_core::error::{AbortError, BoxDynError};
use apalis_core::task::data::Data;
use celeriac_queue::backend::JobLease;
use celeriac_queue::{NewJob, Queue, QueueConfig, When};
use chrono::Utc;
use redis::aio::ConnectionManager;
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::Settings;
use crate::context::JobContext;
use crate::jobs::{self, JobError};
use crate::registry;

/// Attempts of the intake queue itself; each task's own budget is enforced by the handler.
const INTAKE_MAX_ATTEMPTS: u32 = 25;
/// Result documents live as long as Celery's default `result_expires`.
const RESULT_TTL_SECONDS: u64 = 86_400;

/// The intake queue for Celery queue `celery_queue`.
pub fn intake_queue(
    conn: ConnectionManager,
    settings: &Settings,
    celery_queue: &str,
) -> Queue<ConnectionManager> {
    let mut cfg = QueueConfig::new(settings.namespace.clone(), format!("celery.{celery_queue}"));
    cfg.max_attempts = INTAKE_MAX_ATTEMPTS;
    cfg.lease = settings.job_lease;
    cfg.done_retention = settings.done_retention;
    cfg.dead_retention = settings.dead_retention;
    Queue::new(conn, cfg)
}

/// The Redis lists of Celery queue `q`, in Celery's priority order.
pub fn celery_lists(q: &str) -> Vec<String> {
    let mut out = vec![q.to_owned()];
    out.extend(["3", "6", "9"].iter().map(|p| format!("{q}\x06\x16{p}")));
    out
}

/// Moves messages from one Celery queue's lists into its intake queue until `stop` is set.
pub async fn intake_loop(
    redis_url: String,
    queue: Queue<ConnectionManager>,
    celery_queue: String,
    mut stop: watch::Receiver<bool>,
) {
    let lists = celery_lists(&celery_queue);
    let staging = queue.keys().staging.clone();
    let mut blocking: Option<redis::aio::MultiplexedConnection> = None;
    let mut failures = 0u32;
    while !*stop.borrow() {
        match queue.adopt(&staging, &lists, 1000).await {
            Ok(n) if n > 0 => {
                failures = 0;
                tracing::debug!(celery_queue, adopted = n, "celery messages adopted");
                continue;
            }
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(celery_queue, error = %e, "celery intake failed; backing off");
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100 * u64::from(failures.min(20)))) => continue,
                }
            }
        }
        // Nothing waiting: block (on a connection of its own) until a message arrives, moving it
        // into staging atomically. Priority lists are picked up within the 1 s timeout.
        if blocking.is_none() {
            blocking = match redis::Client::open(redis_url.as_str()) {
                Ok(c) => c.get_multiplexed_async_connection().await.ok(),
                Err(_) => None,
            };
        }
        let Some(conn) = blocking.as_mut() else {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
            }
        };
        let mut cmd = redis::cmd("BLMOVE");
        cmd.arg(&celery_queue)
            .arg(&staging)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(1.0);
        let moved = cmd.query_async::<Option<Vec<u8>>>(conn);
        tokio::select! {
            _ = stop.changed() => break,
            r = moved => if let Err(e) = r {
                tracing::debug!(error = %e, "BLMOVE failed; reconnecting");
                blocking = None;
            },
        }
    }
}

/// What the Celery handler needs besides the job context.
#[derive(Clone)]
pub struct Bridge {
    /// The intake queue (for rescheduling eta messages).
    pub intake: Queue<ConnectionManager>,
    /// Where result documents go, if anywhere.
    pub results: Option<ConnectionManager>,
}

impl Bridge {
    async fn write_result(
        &self,
        task_id: &str,
        status: &str,
        result: Value,
        traceback: Option<String>,
    ) {
        let Some(conn) = &self.results else { return };
        let key = format!("celery-task-meta-{task_id}");
        let doc = json!({
            "status": status, "result": result, "traceback": traceback, "children": [],
            "date_done": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
            "task_id": task_id,
        })
        .to_string();
        let r: Result<(), _> = redis::pipe()
            .atomic()
            .set_ex(&key, &doc, RESULT_TTL_SECONDS)
            .ignore()
            .publish(&key, &doc)
            .ignore()
            .query_async(&mut conn.clone())
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not write the Celery result");
        }
    }
}

fn failure(exc_type: &str, message: &str) -> Value {
    json!({"exc_type": exc_type, "exc_message": [message], "exc_module": "builtins"})
}

/// Run one adopted Celery message.
pub async fn handle(
    message: Value,
    ctx: Data<JobContext>,
    bridge: Data<Bridge>,
    lease: Data<JobLease>,
) -> Result<(), BoxDynError> {
    let task = match envelope::decode_value(&message) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(job.id = %lease.id, error = %e, "celery message refused; dead");
            return Err(AbortError::new(e.to_string()).into());
        }
    };
    let span = tracing::info_span!("celery_task", task = %task.task, task.id = %task.id, job.id = %lease.id, attempt = lease.attempt);
    run_task(task, message, &ctx, &bridge, &lease)
        .instrument(span)
        .await
}

/// Run one decoded Celery task (inside its span): expiry, eta parking, then the job.
async fn run_task(
    task: envelope::CeleryTask,
    message: Value,
    ctx: &JobContext,
    bridge: &Bridge,
    lease: &JobLease,
) -> Result<(), BoxDynError> {
    let now = Utc::now();
    if let Some(expires) = task.expires.filter(|e| *e <= now) {
        tracing::warn!(%expires, "celery task expired; not run");
        bridge
            .write_result(&task.id, "REVOKED", json!({"exc_type": "TaskRevokedError", "exc_message": ["expired"], "exc_module": "celery.exceptions"}), None)
            .await;
        return Err(AbortError::new(format!("expired at {}", expires.to_rfc3339())).into());
    }
    if let Some(eta) = task
        .eta
        .filter(|e| *e > now + chrono::Duration::milliseconds(50))
    {
        let ms = eta.timestamp_millis();
        let job = NewJob::new(message.to_string()).at(When::At(ms)).unique(
            format!("celery-eta:{}:{ms}", task.id),
            Duration::from_secs(7 * 86_400),
        );
        bridge
            .intake
            .push(job)
            .await
            .map_err(|e| -> BoxDynError { e.to_string().into() })?;
        tracing::debug!(%eta, "celery task parked until its eta");
        return Ok(());
    }
    // The decoded task is all that is needed from here on; the message tree is not kept in
    // memory while the job runs.
    drop(message);
    if task.redelivered {
        tracing::info!("celery message was redelivered");
    }
    let name = task.job_name().to_owned();
    let Some(spec) = registry::find(&name) else {
        let reason = format!("unknown task {:?}", task.task);
        tracing::error!(%reason, "celery task refused; dead");
        bridge
            .write_result(&task.id, "FAILURE", failure("NotRegistered", &reason), None)
            .await;
        return Err(AbortError::new(reason).into());
    };
    let args = match task.arguments(spec.positional) {
        Ok(a) => a,
        Err(reason) => {
            bridge
                .write_result(&task.id, "FAILURE", failure("TypeError", &reason), None)
                .await;
            return Err(AbortError::new(reason).into());
        }
    };
    let outcome = jobs::run_named(&name, args, ctx).await;
    let attempt = task.retries + lease.attempt;
    match outcome {
        Some(Ok(())) => {
            if !task.ignore_result {
                bridge
                    .write_result(&task.id, "SUCCESS", Value::Null, None)
                    .await;
            }
            Ok(())
        }
        Some(Err(JobError::Permanent(reason))) => {
            bridge
                .write_result(&task.id, "FAILURE", failure("ValueError", &reason), None)
                .await;
            Err(AbortError::new(reason).into())
        }
        Some(Err(JobError::Retry(e))) if attempt >= spec.max_attempts => {
            let reason = format!("{e:#} (attempt {attempt} of {})", spec.max_attempts);
            bridge
                .write_result(&task.id, "FAILURE", failure("RuntimeError", &reason), None)
                .await;
            Err(AbortError::new(reason).into())
        }
        Some(Err(JobError::Retry(e))) => Err(format!("{e:#}").into()),
        None => Err(AbortError::new(format!("unknown task {:?}", task.task)).into()),
    }
}
