//! The Celery drop-in: Django's `.delay()` / `send_task` messages on the Celery broker lists are
//! adopted atomically into a Celeriac queue (`celery.<queue>`) and run as the matching job.
//!
//! - Intake, broker on the fleet's Redis: the intake queue's fetch leases messages straight from
//!   the Celery lists (`q`, then the priority lists `q\x06\x163`, `…6`, `…9`), each becoming a
//!   job of the queue in the step that leases it (`QueueConfig::lease_from`); while the lists are
//!   empty, `BLMOVE` waits on the main list, moves the next message into the queue's staging list
//!   (which the fetch takes first) and wakes the idle fetchers. A message is never only in this
//!   process's memory, so kill -9 at any moment loses nothing.
//! - Intake, a separate broker (`CELERY_BROKER_URL`): a script there moves messages into its
//!   staging list, they are adopted into the intake queue here, then dropped from staging.
//! - `eta`/`countdown`: a message not yet due snoozes (the same job goes back to the intake
//!   queue's scheduled set until its eta, costing no attempt), so it runs once however far away
//!   the time is. Due-ness is decided on the Redis server's clock (the lease's fetch time plus
//!   the time since on this process's monotonic clock), the clock that promotes scheduled jobs:
//!   a worker whose wall clock is off neither runs a task early nor parks it forever.
//! - `expires` in the past (on the same Redis clock): recorded as dead ("expired") and, with a
//!   result backend, REVOKED.
//! - `retries` counts against the job's attempts; `redelivered` is logged.
//! - Unknown task, undecodable body, non-JSON serializer: dead with the reason, never dropped.
//! - With `CELERY_EVENTS=1`, Celery's task events go out as the task moves ([`events`]).
//! - A revoked task id (Celery's `revoke`, see [`control`]) is dead ("revoked"), never run; a job
//!   type with a rate limit (`RATE_LIMIT_<JOB>`) takes a token from the same fleet-wide bucket as
//!   its own queue, and a message that finds none snoozes until one is back.
//! - With `CELERY_RESULT_BACKEND`, `celery-task-meta-<id>` gets SUCCESS/FAILURE (+ PUBLISH).

pub mod control;
pub mod envelope;
pub mod events;

use std::time::Duration;

use apalis_core::error::{AbortError, BoxDynError};
use apalis_core::task::data::Data;
use chrono::{DateTime, Utc};
use domain::conn::RedisConn;
use queue::backend::{JobLease, Snooze};
use queue::{Queue, QueueConfig};
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::Instrument;

use crate::context::JobContext;
use crate::jobs::{self, JobError};
use domain::config::Settings;
use domain::registry;
use domain::workers::Outcome;

/// Attempts of the intake queue itself; each task's own budget is enforced by the handler.
const INTAKE_MAX_ATTEMPTS: u32 = 25;
/// Result documents live as long as Celery's default `result_expires`.
const RESULT_TTL_SECONDS: u64 = 86_400;

/// The intake queue for Celery queue `celery_queue`. With `broker_here` (the broker is the
/// fleet's own Redis) it leases messages straight from Celery's lists.
pub fn intake_queue(
    conn: RedisConn,
    settings: &Settings,
    celery_queue: &str,
    broker_here: bool,
) -> Queue<RedisConn> {
    let mut cfg = QueueConfig::new(settings.namespace.clone(), format!("celery.{celery_queue}"));
    if broker_here {
        cfg.lease_from = celery_lists(celery_queue);
    }
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

/// How long one `BLMOVE` of an idle intake waits for a message (priority lists, which it does not
/// watch, are picked up after at most this long).
const BLOCK: Duration = Duration::from_secs(1);

/// The blocking connection's settings: its replies may take the whole `BLOCK`, so it waits for
/// them longer than that (redis-rs' default of 500 ms would time every idle `BLMOVE` out and
/// reconnect about twice a second).
fn blocking_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(2)))
}

/// Where Celery's messages arrive: the fleet's own Redis, or a broker of their own
/// (`CELERY_BROKER_URL`, e.g. beside a Redis Cluster, which Celery cannot use).
#[derive(Clone)]
pub struct Broker {
    /// The broker's URL (for the blocking and pub/sub connections).
    pub url: String,
    /// A connection to it (the fleet's own when it is the same Redis).
    pub conn: RedisConn,
    /// Whether it is another server than `REDIS_URL`: then a message cannot move into the intake
    /// queue in one atomic step, and takes two (see [`intake_loop`]).
    pub separate: bool,
}

impl Broker {
    /// The fleet's own Redis as the broker.
    pub fn same(url: String, conn: RedisConn) -> Self {
        Self {
            url,
            conn,
            separate: false,
        }
    }

    /// Whether this broker is in fact the fleet's Redis (`fleet_url`, over `fleet`): the same
    /// server (its `run_id`) and the same database. Not for a cluster (never the same).
    pub async fn is_here(
        &self,
        fleet_url: &str,
        fleet: &mut RedisConn,
    ) -> redis::RedisResult<bool> {
        if fleet.is_cluster() {
            return Ok(false);
        }
        let fleet_db = redis::IntoConnectionInfo::into_connection_info(fleet_url)?
            .redis_settings()
            .db();
        if fleet_db != self.db()? {
            return Ok(false);
        }
        let (theirs, ours) = (run_id(&mut self.conn.clone()).await?, run_id(fleet).await?);
        Ok(theirs.is_some() && theirs == ours)
    }

    /// Redis database number of the broker URL (Celery's channels are named after it).
    pub fn db(&self) -> redis::RedisResult<i64> {
        Ok(
            redis::IntoConnectionInfo::into_connection_info(self.url.as_str())?
                .redis_settings()
                .db(),
        )
    }
}

/// The `run_id` of the Redis server behind `conn` (`INFO server`): unique to one run of one server.
async fn run_id(conn: &mut RedisConn) -> redis::RedisResult<Option<String>> {
    let info = conn.info_server().await?;
    Ok(queue::info_field(&info, "run_id").map(str::to_owned))
}

static TAKE: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("take.lua")));

/// How many messages one intake step moves at most.
const INTAKE_BATCH: usize = 1000;

/// One intake step from a separate broker: up to [`INTAKE_BATCH`] messages from `lists` into
/// `queue`; how many were new. A script there moves them into the broker's staging list (same
/// name as the queue's), they are adopted here (a message adopted twice is one job), and only
/// then dropped from staging; a crash in between leaves them in staging, where [`recover`] finds
/// them.
async fn intake_step(
    broker: &mut Broker,
    queue: &Queue<RedisConn>,
    lists: &[String],
) -> Result<u64, IntakeError> {
    let staging = &queue.keys().staging;
    let mut take = TAKE.prepare_invoke();
    take.key(staging);
    for l in lists {
        take.key(l);
    }
    take.arg(INTAKE_BATCH);
    let messages: Vec<Vec<u8>> = take.invoke_async(&mut broker.conn).await?;
    adopt_and_drop(broker, queue, &messages).await
}

/// Adopt `messages` (in the broker's staging list) into `queue`, then drop them from staging.
async fn adopt_and_drop(
    broker: &mut Broker,
    queue: &Queue<RedisConn>,
    messages: &[Vec<u8>],
) -> Result<u64, IntakeError> {
    if messages.is_empty() {
        return Ok(0);
    }
    let new = queue.adopt_messages(messages).await?;
    let mut pipe = redis::pipe();
    for m in messages {
        pipe.lrem(&queue.keys().staging, -1, m.as_slice()).ignore();
    }
    pipe.query_async::<()>(&mut broker.conn).await?;
    Ok(new)
}

/// Adopt what a separate broker's staging list holds: messages a worker took and then died (or
/// lost the fleet's Redis) before dropping them. Another worker may be adopting the same message
/// at this moment; adopting twice is one job.
async fn recover(broker: &mut Broker, queue: &Queue<RedisConn>) -> Result<u64, IntakeError> {
    let mut new = 0;
    loop {
        let stuck: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(&queue.keys().staging)
            .arg(-(INTAKE_BATCH as i64))
            .arg(-1)
            .query_async(&mut broker.conn)
            .await?;
        new += adopt_and_drop(broker, queue, &stuck).await?;
        if stuck.len() < INTAKE_BATCH {
            return Ok(new);
        }
    }
}

/// Why an intake step failed (it is retried; nothing is lost).
#[derive(Debug, thiserror::Error)]
enum IntakeError {
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// How often a separate broker's staging list is checked for messages a dead worker left.
const RECOVER_EVERY: Duration = Duration::from_secs(30);

/// After the `failures`-th intake failure in a row: say so and wait (0.1 s a failure, at most
/// 2 s). Returns whether `stop` was set meanwhile.
async fn back_off(
    celery_queue: &str,
    e: &IntakeError,
    failures: u32,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    tracing::warn!(celery_queue, error = %e, "celery intake failed; backing off");
    tokio::select! {
        _ = stop.changed() => true,
        () = tokio::time::sleep(Duration::from_millis(100 * u64::from(failures.min(20)))) => false,
    }
}

/// Feeds one Celery queue's intake queue until `stop` is set. On the fleet's own Redis the
/// intake's fetch leases Celery's messages itself and this loop only wakes idle fetchers
/// (`wake_loop`); from a separate broker it moves the messages over. While idle it holds one
/// extra connection to the broker, for `BLMOVE`, and opens no other.
pub async fn intake_loop(
    broker: Broker,
    queue: Queue<RedisConn>,
    celery_queue: String,
    counters: std::sync::Arc<crate::context::Counters>,
    stop: watch::Receiver<bool>,
) {
    if broker.separate {
        move_loop(broker, queue, celery_queue, counters, stop).await;
    } else {
        wake_loop(broker, queue, celery_queue, stop).await;
    }
}

/// How long the wake loop leaves a message in the staging list to the fetchers before it looks
/// again (busy fetchers take it with their next batch; idle ones were woken).
const STAGED_PAUSE: Duration = Duration::from_millis(100);

/// The broker is the fleet's Redis: wait (`BLMOVE`, on a connection of its own) for a message on
/// the Celery queue's main list while nothing waits in the staging list and the intake queue is
/// not paused, move it there and wake the intake's idle fetchers (a publish on the queue's
/// channel). The fetch takes the staging list first, then Celery's lists; a priority list's
/// message is picked up by the fetchers' idle poll.
async fn wake_loop(
    broker: Broker,
    queue: Queue<RedisConn>,
    celery_queue: String,
    mut stop: watch::Receiver<bool>,
) {
    let staging = queue.keys().staging.clone();
    let mut conn = broker.conn.clone();
    let mut idle = IdleWait::new(&broker, &celery_queue, &staging);
    let mut failures = 0u32;
    while !*stop.borrow() {
        // A message already staged, or the queue paused: nothing to move.
        let staged: Result<(u64, bool), redis::RedisError> = redis::pipe()
            .llen(&staging)
            .exists(&queue.keys().paused)
            .query_async(&mut conn)
            .await;
        match staged {
            Ok((0, false)) => failures = 0,
            Ok(_) => {
                failures = 0;
                tokio::select! {
                    _ = stop.changed() => break,
                    () = tokio::time::sleep(STAGED_PAUSE) => continue,
                }
            }
            Err(e) => {
                failures += 1;
                if back_off(&celery_queue, &e.into(), failures, &mut stop).await {
                    break;
                }
                continue;
            }
        }
        match idle.wait(&mut stop).await {
            Waited::Stopped => break,
            Waited::Nothing => {}
            Waited::Moved => {
                if let Err(e) = queue.wake().await {
                    // The fetchers' idle poll finds the message.
                    tracing::debug!(error = %e, "could not wake the celery intake's fetchers");
                }
            }
        }
    }
}

/// What one idle wait for a Celery message came to.
enum Waited {
    /// `stop` was set meanwhile.
    Stopped,
    /// A message moved into the staging list.
    Moved,
    /// None within [`BLOCK`], or the wait failed (and was backed off).
    Nothing,
}

/// The idle wait for a Celery message: `BLMOVE` from the Celery queue's main list into the
/// intake's staging list, on a connection of its own to the broker (opened when there is none,
/// dropped when a wait fails), with the failures in a row that pace its back-off.
struct IdleWait {
    url: String,
    celery_queue: String,
    staging: String,
    blocking: Option<redis::aio::MultiplexedConnection>,
    failures: u32,
}

impl IdleWait {
    fn new(broker: &Broker, celery_queue: &str, staging: &str) -> Self {
        Self {
            url: broker.url.clone(),
            celery_queue: celery_queue.to_owned(),
            staging: staging.to_owned(),
            blocking: None,
            failures: 0,
        }
    }

    /// Wait up to [`BLOCK`] for a message and move it into staging, atomically. A failed wait
    /// drops the connection and backs off: 0.1 s per failure in a row, at most 2 s.
    async fn wait(&mut self, stop: &mut watch::Receiver<bool>) -> Waited {
        if self.blocking.is_none() {
            self.blocking = match redis::Client::open(self.url.as_str()) {
                Ok(c) => c
                    .get_multiplexed_async_connection_with_config(&blocking_config())
                    .await
                    .ok(),
                Err(_) => None,
            };
        }
        let Some(conn) = self.blocking.as_mut() else {
            return tokio::select! {
                _ = stop.changed() => Waited::Stopped,
                () = tokio::time::sleep(Duration::from_millis(500)) => Waited::Nothing,
            };
        };
        let mut cmd = redis::cmd("BLMOVE");
        cmd.arg(&self.celery_queue)
            .arg(&self.staging)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(BLOCK.as_secs_f64());
        let moved = tokio::select! {
            _ = stop.changed() => return Waited::Stopped,
            r = cmd.query_async::<Option<Vec<u8>>>(conn) => r,
        };
        match moved {
            Ok(m) => {
                self.failures = 0;
                if m.is_some() {
                    Waited::Moved
                } else {
                    Waited::Nothing
                }
            }
            Err(e) => {
                self.failures += 1;
                tracing::debug!(error = %e, failures = self.failures, "BLMOVE failed; reconnecting");
                self.blocking = None;
                let pause = Duration::from_millis(100 * u64::from(self.failures.min(20)));
                tokio::select! {
                    _ = stop.changed() => Waited::Stopped,
                    () = tokio::time::sleep(pause) => Waited::Nothing,
                }
            }
        }
    }
}

/// The broker is a separate server: move messages from its Celery lists into the intake queue
/// ([`intake_step`]), adopt what its staging list holds now and then ([`recover`]), and wait with
/// `BLMOVE` while the lists are empty.
async fn move_loop(
    mut broker: Broker,
    queue: Queue<RedisConn>,
    celery_queue: String,
    counters: std::sync::Arc<crate::context::Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let lists = celery_lists(&celery_queue);
    let staging = queue.keys().staging.clone();
    let mut idle = IdleWait::new(&broker, &celery_queue, &staging);
    let mut failures = 0u32;
    // The first step (and one after each failure, and every `RECOVER_EVERY`) adopts what
    // staging holds.
    let mut recover_at = tokio::time::Instant::now();
    while !*stop.borrow() {
        if tokio::time::Instant::now() >= recover_at {
            recover_at = tokio::time::Instant::now() + RECOVER_EVERY;
            match recover(&mut broker, &queue).await {
                Ok(n) if n > 0 => {
                    tracing::info!(
                        celery_queue,
                        adopted = n,
                        "celery messages recovered from the broker's staging list"
                    );
                    counters.adopted(n);
                }
                Ok(_) => {}
                Err(e) => {
                    failures += 1;
                    recover_at = tokio::time::Instant::now();
                    if back_off(&celery_queue, &e, failures, &mut stop).await {
                        break;
                    }
                    continue;
                }
            }
        }
        match intake_step(&mut broker, &queue, &lists).await {
            Ok(n) if n > 0 => {
                failures = 0;
                tracing::debug!(celery_queue, adopted = n, "celery messages adopted");
                counters.adopted(n);
                continue;
            }
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                // What the failed step took is in the broker's staging list: adopted next.
                recover_at = tokio::time::Instant::now();
                if back_off(&celery_queue, &e, failures, &mut stop).await {
                    break;
                }
                continue;
            }
        }
        // Nothing waiting: block (on a connection of its own) until a message arrives, moving it
        // into staging atomically. Priority lists are picked up within `BLOCK`.
        match idle.wait(&mut stop).await {
            Waited::Stopped => break,
            // In the broker's staging list now: adopted by the next step's recovery.
            Waited::Moved => recover_at = tokio::time::Instant::now(),
            Waited::Nothing => {}
        }
    }
}

/// What the Celery handler needs besides the job context.
#[derive(Clone)]
pub struct Bridge {
    /// Where result documents go, if anywhere.
    pub results: Option<RedisConn>,
    /// Celery's remote control: revoked ids, and the tasks running here.
    pub control: std::sync::Arc<control::Control>,
    /// Celery's events (off unless `CELERY_EVENTS=1`).
    pub events: events::Events,
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
        Box::pin(Self::store_result(conn, task_id, status, result, traceback)).await;
    }

    /// [`Bridge::write_result`]'s write, behind a box (see `run_task`).
    async fn store_result(
        conn: &RedisConn,
        task_id: &str,
        status: &str,
        result: Value,
        traceback: Option<String>,
    ) {
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

impl Bridge {
    /// Send task event `kind` for task `id` with the fields `extra` makes (built only when events
    /// are on).
    fn task_event(&self, kind: &str, id: &str, extra: impl FnOnce() -> Value) {
        if !self.events.enabled() {
            return;
        }
        let mut fields = match extra() {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        fields.insert("uuid".into(), id.into());
        self.events.send(kind, Value::Object(fields));
    }
}

/// A Python-style repr of an exception, as Celery's events carry it.
fn exception(exc_type: &str, message: &str) -> String {
    format!("{exc_type}({message:?})")
}

fn failure(exc_type: &str, message: &str) -> Value {
    json!({"exc_type": exc_type, "exc_message": [message], "exc_module": "builtins"})
}

/// A Celery message as the intake queue stores it: the broker's text, unparsed until it runs
/// ([`envelope::decode`] checks and decodes it; anything it refuses is dead with the reason).
/// It is never parsed on the way: the fetch hands its text over as it is.
pub struct Message(String);

/// Only the length: a message holds the visitor's fingerprint and whatever else was sent.
impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Message({} bytes)", self.0.len())
    }
}

impl queue::backend::FromPayload for Message {
    fn from_payload(payload: String) -> Result<Self, String> {
        Ok(Self(payload))
    }
}

/// Run one adopted Celery message.
pub async fn handle(
    message: Message,
    ctx: Data<JobContext>,
    bridge: Data<Bridge>,
    lease: Data<JobLease>,
) -> Result<(), BoxDynError> {
    let task = match envelope::decode(message.0.as_bytes()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(job.id = %lease.id, error = %e, "celery message refused; dead");
            return Err(AbortError::new(e.to_string()).into());
        }
    };
    let span = tracing::info_span!("celery_task", task = %task.task, task.id = %task.id, job.id = %lease.id, attempt = lease.attempt);
    // The decoded task is all that is needed from here on; the message is not kept in memory
    // while the job runs.
    drop(message);
    run_task(std::sync::Arc::new(task), &ctx, &bridge, &lease)
        .instrument(span)
        .await
}

/// Whether a task with `eta` must wait at Redis time `now_ms`, and how long.
fn not_due_for(eta: Option<DateTime<Utc>>, now_ms: i64) -> Option<Duration> {
    let wait = eta?.timestamp_millis().saturating_sub(now_ms);
    (wait > 0).then(|| Duration::from_millis(wait.unsigned_abs()))
}

/// Whether a task with `expires` has expired at Redis time `now_ms`.
fn expired(expires: Option<DateTime<Utc>>, now_ms: i64) -> Option<DateTime<Utc>> {
    expires.filter(|e| e.timestamp_millis() <= now_ms)
}

/// Run one decoded Celery task (inside its span): expiry, eta snoozing, then the job. Times are
/// compared with the Redis server's clock, never this process's wall clock.
async fn run_task(
    task: std::sync::Arc<envelope::CeleryTask>,
    ctx: &JobContext,
    bridge: &Bridge,
    lease: &JobLease,
) -> Result<(), BoxDynError> {
    let now_ms = lease.redis_now_ms();
    if let Some(expires) = expired(task.expires, now_ms) {
        tracing::warn!(%expires, "celery task expired; not run");
        bridge.task_event(
            "task-revoked",
            &task.id,
            || json!({"terminated": false, "signum": null, "expired": true}),
        );
        bridge
            .write_result(&task.id, "REVOKED", json!({"exc_type": "TaskRevokedError", "exc_message": ["expired"], "exc_module": "celery.exceptions"}), None)
            .await;
        return Err(AbortError::new(format!("expired at {}", expires.to_rfc3339())).into());
    }
    if bridge.control.is_revoked(&task.id) {
        tracing::warn!("celery task revoked; not run");
        bridge.task_event(
            "task-revoked",
            &task.id,
            || json!({"terminated": false, "signum": null, "expired": false}),
        );
        bridge
            .write_result(&task.id, "REVOKED", json!({"exc_type": "TaskRevokedError", "exc_message": ["revoked"], "exc_module": "celery.exceptions"}), None)
            .await;
        return Err(AbortError::new("revoked").into());
    }
    if let Some(wait) = not_due_for(task.eta, now_ms) {
        // The same job goes back to the scheduled set (no copy, no uniqueness key that could
        // refuse it), due at Redis time + wait; a snooze costs no attempt.
        tracing::debug!(
            eta = ?task.eta,
            wait_ms = wait.as_millis() as u64,
            "celery task not due yet; snoozed until its eta"
        );
        return Err(Snooze(wait).into());
    }
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
    // The job type's fleet-wide rate limit: no token, no run yet (a snooze costs no attempt).
    // Boxed, like the result writes below: a future kept inline here would make every running
    // task's future as large as the largest of them, paid per job in flight.
    if let Some(queue) = ctx
        .queues
        .get(spec.name)
        .filter(|q| q.config().rate_limit.is_some())
    {
        match Box::pin(queue.take_token(&lease.id)).await {
            Ok(None) => {}
            Ok(Some(wait)) => return Err(Snooze(wait).into()),
            Err(e) => return Err(format!("rate limit not checked: {e}").into()),
        }
    }
    bridge.task_event("task-received", &task.id, || {
        json!({
            "name": task.task, "args": Value::from(task.args.clone()).to_string(),
            "kwargs": Value::Object(task.kwargs.clone()).to_string(),
            "retries": task.retries, "eta": task.eta.map(|t| t.to_rfc3339()),
            "expires": task.expires.map(|t| t.to_rfc3339()),
            "root_id": null, "parent_id": null,
        })
    });
    bridge.task_event("task-started", &task.id, || json!({}));
    let _running = bridge.control.running_here(
        &lease.id,
        control::RunningTask {
            task: task.clone(),
            started: Utc::now().timestamp_micros() as f64 / 1e6,
            signal: lease.revoked.clone(),
        },
    );
    let started = std::time::Instant::now();
    ctx.counters.start(spec.name);
    let limit = task.time_limit.or_else(|| {
        ctx.settings
            .time_limit_for(spec.name, spec.time_limit_seconds)
    });
    let outcome = jobs::run_named(&name, args, ctx, limit, &lease.revoked).await;
    ctx.counters.stop();
    let attempt = task.retries + lease.attempt;
    let counted = match &outcome {
        Some(Ok(())) => Some(Outcome::Succeeded),
        Some(Err(JobError::Snooze(_))) => None,
        Some(Err(JobError::Retry(_))) if attempt < spec.max_attempts => Some(Outcome::Failed),
        Some(Err(_)) | None => Some(Outcome::Dead),
    };
    if let Some(o) = counted {
        ctx.counters
            .record(spec.name, o, started.elapsed().as_millis() as u64);
    }
    let runtime = started.elapsed().as_secs_f64();
    match outcome {
        Some(Ok(())) => {
            bridge.task_event(
                "task-succeeded",
                &task.id,
                || json!({"result": "None", "runtime": runtime}),
            );
            if !task.ignore_result {
                bridge
                    .write_result(&task.id, "SUCCESS", Value::Null, None)
                    .await;
            }
            Ok(())
        }
        Some(Err(JobError::Permanent(reason))) => {
            let revoked = lease.revoked.is_raised();
            if revoked {
                bridge.task_event(
                    "task-revoked",
                    &task.id,
                    || json!({"terminated": true, "signum": null, "expired": false}),
                );
            } else {
                bridge.task_event(
                    "task-failed",
                    &task.id,
                    || json!({"exception": exception("ValueError", &reason), "traceback": ""}),
                );
            }
            let (status, error) = if revoked {
                (
                    "REVOKED",
                    json!({"exc_type": "TaskRevokedError", "exc_message": [reason], "exc_module": "celery.exceptions"}),
                )
            } else {
                ("FAILURE", failure("ValueError", &reason))
            };
            bridge.write_result(&task.id, status, error, None).await;
            Err(AbortError::new(reason).into())
        }
        Some(Err(JobError::Retry(e))) if attempt >= spec.max_attempts => {
            let reason = format!("{e:#} (attempt {attempt} of {})", spec.max_attempts);
            bridge.task_event(
                "task-failed",
                &task.id,
                || json!({"exception": exception("RuntimeError", &reason), "traceback": ""}),
            );
            bridge
                .write_result(&task.id, "FAILURE", failure("RuntimeError", &reason), None)
                .await;
            Err(AbortError::new(reason).into())
        }
        Some(Err(JobError::Retry(e))) => {
            let reason = format!("{e:#}");
            bridge.task_event(
                "task-retried",
                &task.id,
                || json!({"exception": exception("RuntimeError", &reason), "traceback": ""}),
            );
            Err(reason.into())
        }
        Some(Err(JobError::Snooze(delay))) => {
            tracing::debug!(
                delay_ms = delay.as_millis() as u64,
                "celery task not due yet; snoozed"
            );
            Err(Snooze(delay).into())
        }
        None => {
            let reason = format!("unknown task {:?}", task.task);
            bridge.task_event(
                "task-failed",
                &task.id,
                || json!({"exception": exception("NotRegistered", &reason), "traceback": ""}),
            );
            Err(AbortError::new(reason).into())
        }
    }
}
