//! Celery's remote control for the bridge: the worker listens on Celery's broadcast channel (the
//! "pidbox", `/<db>.celery.pidbox`) and answers `revoke`, `ping` and the inspections Flower asks
//! for (`stats`, `active`, `active_queues`, `registered`, `scheduled`, `reserved`, `revoked`,
//! `conf`) as a Celery worker does, so `AsyncResult.revoke()`, `celery control revoke`,
//! `celery inspect ...` and Flower reach Celeriac.
//!
//! A revoked task id is kept in Redis (`<ns>:celery:revoked`, id → time, the newest 50,000 for
//! the dead-job retention), so it outlives every worker restart; each worker also keeps the set
//! in memory (read again whenever it subscribes), so checking a message costs nothing on the
//! hot path. A revoked task's message is dead ("revoked") when it is taken, never run; with
//! `terminate=True` a run in progress here is stopped where it can be ([`crate::jobs::run_revocable`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use domain::conn::RedisConn;
use futures::StreamExt as _;
use queue::backend::RevokeSignal;
use redis::AsyncCommands as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

/// The most revoked ids kept (Celery keeps 50,000 in memory).
pub const REVOKED_MAX: isize = 50_000;

/// The Redis key of the revoked Celery task ids under `namespace`.
pub fn revoked_key(namespace: &str) -> String {
    format!("{}:celery:revoked", domain::keys::fleet_prefix(namespace))
}

/// Kombu's broadcast channel for Celery's remote control on Redis database `db`.
pub fn pidbox_channel(db: i64) -> String {
    format!("/{db}.celery.pidbox")
}

/// One process's view of Celery's remote control: its node name, the revoked task ids, the
/// tasks running here (so a `terminate` can stop them, and `inspect active` list them), and what
/// `inspect stats` reports.
#[derive(Debug)]
pub struct Control {
    node: String,
    key: String,
    retention: Duration,
    revoked: RwLock<HashSet<String>>,
    running: Mutex<HashMap<String, RunningTask>>,
    info: NodeInfo,
    started: std::time::Instant,
}

/// What the inspections report of this worker process.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The Celery queues it consumes.
    pub queues: Vec<String>,
    /// Tasks it runs at once.
    pub concurrency: usize,
    /// Its job counters.
    pub counters: Arc<crate::context::Counters>,
}

/// A Celery task running here.
#[derive(Debug, Clone)]
pub struct RunningTask {
    /// The task as decoded, shared with its run (nothing is copied to list it). Two messages
    /// may carry the same task id.
    pub task: Arc<super::envelope::CeleryTask>,
    /// When it started (epoch seconds).
    pub started: f64,
    /// Raised by a revoke with `terminate`.
    pub signal: RevokeSignal,
}

/// While alive, a running task can be stopped by a revoke with `terminate`.
pub struct Running<'a> {
    control: &'a Control,
    job_id: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.control.running().remove(&self.job_id);
    }
}

impl Control {
    /// The control of this process, for `namespace`; revoked ids are kept for `retention`.
    pub fn new(namespace: &str, retention: Duration, info: NodeInfo) -> Self {
        let copy = domain::schedules::copy_name();
        let (host, pid) = copy.rsplit_once(':').unwrap_or((copy.as_str(), "0"));
        Self {
            node: format!("celeriac-{pid}@{host}"),
            key: revoked_key(namespace),
            retention,
            revoked: RwLock::new(HashSet::new()),
            running: Mutex::new(HashMap::new()),
            info,
            started: std::time::Instant::now(),
        }
    }

    /// This worker's node name, as Celery's replies name it (`celeriac-<pid>@<host>`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether Celery task `task_id` was revoked.
    pub fn is_revoked(&self, task_id: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(task_id)
    }

    /// Note `task` as running here, as intake job `job_id`, until the guard is dropped; a revoke
    /// of its task id with `terminate` raises its signal.
    pub fn running_here(&self, job_id: &str, task: RunningTask) -> Running<'_> {
        self.running().insert(job_id.to_owned(), task);
        Running {
            control: self,
            job_id: job_id.to_owned(),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunningTask>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read the revoked ids from Redis (at start, before any message is taken, and after each
    /// subscription: nothing revoked since is missed).
    pub async fn load(&self, conn: &mut RedisConn) -> redis::RedisResult<usize> {
        let ids: Vec<String> = conn.zrange(&self.key, 0, -1).await?;
        let n = ids.len();
        *self.revoked.write().unwrap_or_else(|p| p.into_inner()) = ids.into_iter().collect();
        Ok(n)
    }

    /// Record `ids` as revoked (Redis, then memory); with `terminate`, stop their runs here.
    pub async fn revoke(
        &self,
        conn: &mut RedisConn,
        ids: &[String],
        terminate: bool,
    ) -> redis::RedisResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let t: (i64, i64) = redis::cmd("TIME").query_async(conn).await?;
        let now_ms = t.0 * 1000 + t.1 / 1000;
        let oldest = now_ms - i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for id in ids {
            pipe.zadd(&self.key, id, now_ms).ignore();
        }
        pipe.zrembyscore(&self.key, "-inf", oldest)
            .ignore()
            .zremrangebyrank(&self.key, 0, -(REVOKED_MAX + 1))
            .ignore();
        pipe.query_async::<()>(conn).await?;
        let kept = {
            let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
            revoked.extend(ids.iter().cloned());
            revoked.len()
        };
        // Redis keeps the newest REVOKED_MAX; so does memory, give or take a reload.
        if kept > 2 * REVOKED_MAX as usize {
            self.load(conn).await?;
        }
        if terminate {
            for task in self.running().values() {
                if ids.contains(&task.task.id) {
                    tracing::info!(task.id = %task.task.id, "celery task revoked with terminate; stopping it");
                    task.signal.raise();
                }
            }
        }
        Ok(())
    }
}

impl Control {
    /// `inspect stats`: Celery's shape, with what Celeriac counts.
    fn stats(&self) -> Value {
        use std::sync::atomic::Ordering;
        let c = &self.info.counters;
        json!({
            "total": {},
            "pid": std::process::id(),
            "clock": 0,
            "uptime": self.started.elapsed().as_secs(),
            "pool": {
                "implementation": "celeriac (tokio)",
                "max-concurrency": self.info.concurrency,
                "processes": [std::process::id()],
                "max-tasks-per-child": "N/A",
                "put-guarded-by-semaphore": false,
                "timeouts": [0, 0],
                "writes": {},
            },
            "broker": {"transport": "redis"},
            "prefetch_count": self.info.concurrency,
            "rusage": {},
            "processed": c.processed.load(Ordering::Relaxed),
            "active": c.in_flight.load(Ordering::Relaxed),
        })
    }

    /// `inspect active`: the Celery tasks running here.
    fn active(&self) -> Value {
        let running = self.running();
        Value::Array(
            running
                .values()
                .map(|t| {
                    json!({
                        "id": t.task.id, "name": t.task.task, "type": t.task.task,
                        "args": t.task.args, "kwargs": t.task.kwargs,
                        "hostname": self.node, "time_start": t.started,
                        "acknowledged": true, "worker_pid": std::process::id(),
                        "delivery_info": {"exchange": "", "priority": 0, "redelivered": false},
                    })
                })
                .collect(),
        )
    }
}

/// A kombu message as published on the pidbox.
#[derive(Deserialize)]
struct Envelope {
    body: String,
    #[serde(default)]
    properties: Properties,
}

#[derive(Deserialize, Default)]
struct Properties {
    #[serde(default)]
    body_encoding: Option<String>,
}

/// A remote-control command.
#[derive(Deserialize)]
struct Command {
    method: String,
    #[serde(default)]
    arguments: Value,
    #[serde(default)]
    destination: Option<Vec<String>>,
    #[serde(default)]
    reply_to: Option<ReplyTo>,
    #[serde(default)]
    ticket: Option<String>,
}

#[derive(Deserialize)]
struct ReplyTo {
    exchange: String,
    routing_key: String,
}

/// Why a pidbox message was ignored.
#[derive(Debug, thiserror::Error)]
enum ControlError {
    #[error("not a kombu message: {0}")]
    Envelope(String),
    #[error("the command does not decode: {0}")]
    Command(String),
}

fn decode(payload: &[u8]) -> Result<Command, ControlError> {
    let envelope: Envelope =
        serde_json::from_slice(payload).map_err(|e| ControlError::Envelope(e.to_string()))?;
    let body = match envelope.properties.body_encoding.as_deref() {
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(envelope.body.as_bytes())
            .map_err(|e| ControlError::Envelope(format!("base64: {e}")))?,
        _ => envelope.body.into_bytes(),
    };
    serde_json::from_slice(&body).map_err(|e| ControlError::Command(e.to_string()))
}

/// The task ids a `revoke` names (`task_id` is one id or a list).
fn task_ids(arguments: &Value) -> Vec<String> {
    match arguments.get("task_id") {
        Some(Value::String(id)) => vec![id.clone()],
        Some(Value::Array(ids)) => ids
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Handle one pidbox message; what to reply, if the command asks for a reply.
async fn handle(
    conn: &mut RedisConn,
    control: &Control,
    payload: &[u8],
) -> Result<Option<(Command, Value)>, ControlError> {
    let command = decode(payload)?;
    if let Some(nodes) = &command.destination
        && !nodes.iter().any(|n| n == control.node())
    {
        return Ok(None);
    }
    let answer = match command.method.as_str() {
        "revoke" => {
            let ids = task_ids(&command.arguments);
            let terminate = command
                .arguments
                .get("terminate")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            match control.revoke(conn, &ids, terminate).await {
                Ok(()) => {
                    tracing::info!(tasks = ids.len(), terminate, "celery tasks revoked");
                    json!({"ok": format!("tasks {} flagged as revoked", ids.join(", "))})
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not record a celery revoke");
                    json!({"error": format!("revoke not recorded: {e}")})
                }
            }
        }
        "ping" => json!({"ok": "pong"}),
        "stats" => control.stats(),
        "active" => control.active(),
        "active_queues" => Value::Array(
            control
                .info
                .queues
                .iter()
                .map(|q| json!({"name": q, "exchange": {"name": q, "type": "direct"}, "routing_key": q}))
                .collect(),
        ),
        "registered" => Value::Array(
            domain::registry::JOBS
                .iter()
                .map(|s| Value::from(s.name))
                .collect(),
        ),
        "scheduled" | "reserved" => json!([]),
        "revoked" => {
            let revoked = control.revoked.read().unwrap_or_else(|p| p.into_inner());
            Value::Array(revoked.iter().map(|id| Value::from(id.as_str())).collect())
        }
        "conf" => json!({}),
        other => {
            tracing::debug!(
                method = other,
                "celery control command not supported; ignored"
            );
            return Ok(None);
        }
    };
    Ok(command.reply_to.is_some().then_some((command, answer)))
}

/// Reply as kombu does: the reply exchange is a direct exchange, so the message goes to each
/// list bound with the reply's routing key (`_kombu.binding.<exchange>` members are
/// `<routing key>\x06\x16<pattern>\x06\x16<list>`).
async fn reply(
    conn: &mut RedisConn,
    control: &Control,
    command: &Command,
    answer: Value,
) -> redis::RedisResult<()> {
    let Some(to) = &command.reply_to else {
        return Ok(());
    };
    let bindings: Vec<String> = conn
        .smembers(format!("_kombu.binding.{}", to.exchange))
        .await?;
    let lists: Vec<&str> = bindings
        .iter()
        .filter_map(|b| {
            let mut parts = b.split("\x06\x16");
            let rk = parts.next()?;
            let _pattern = parts.next()?;
            let list = parts.next()?;
            (rk == to.routing_key).then_some(list)
        })
        .collect();
    if lists.is_empty() {
        return Ok(());
    }
    let body = json!({control.node(): answer}).to_string();
    let message = json!({
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"ticket": command.ticket, "clock": 1},
        "properties": {
            "delivery_mode": 2,
            "delivery_info": {"exchange": to.exchange, "routing_key": to.routing_key},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": uuid::Uuid::new_v4().to_string(),
        },
    })
    .to_string();
    let mut pipe = redis::pipe();
    for list in lists {
        pipe.lpush(list, &message).ignore();
    }
    pipe.query_async(conn).await
}

/// Listen on Celery's broadcast channel on the broker until `stop`, answering as `handle` says
/// (revoked ids are kept in the fleet's Redis, `conn`; replies go to the broker); reconnects
/// forever, and reads the revoked ids again at each subscription.
pub async fn control_loop(
    broker: super::Broker,
    mut conn: RedisConn,
    control: Arc<Control>,
    mut stop: watch::Receiver<bool>,
) {
    let db = broker.db().unwrap_or(0);
    let mut replies = broker.conn.clone();
    let channel = pidbox_channel(db);
    let mut failures = 0u32;
    while !*stop.borrow() {
        let subscribed = async {
            let client = redis::Client::open(broker.url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let mut pubsub = match subscribed.await {
            Ok(p) => p,
            Err(e) => {
                failures += 1;
                tracing::debug!(error = %e, "celery control: subscribe failed");
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(10)))) => continue,
                }
            }
        };
        match control.load(&mut conn).await {
            Ok(n) => {
                failures = 0;
                tracing::debug!(
                    revoked = n,
                    node = control.node(),
                    "celery control listening"
                );
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "celery control: revoked ids not read; retrying");
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(10)))) => continue,
                }
            }
        }
        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! {
                _ = stop.changed() => return,
                m = messages.next() => m,
            };
            let Some(message) = message else { break };
            match handle(&mut conn, &control, message.get_payload_bytes()).await {
                Ok(Some((command, answer))) => {
                    if let Err(e) = reply(&mut replies, &control, &command, answer).await {
                        tracing::debug!(error = %e, "celery control: reply not sent");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "celery control message ignored"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_captured_hello_decodes_and_revoke_ids_come_as_one_or_many() {
        // The body of Celery 5.7's broadcast in celery_wire_samples.txt (kombu base64).
        let body = base64::engine::general_purpose::STANDARD.encode(
            r#"{"method": "hello", "arguments": {"from_node": "wire@vm", "revoked": []}, "destination": null, "pattern": null, "matcher": null, "ticket": "3b35d454", "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "53c97979"}}"#,
        );
        let msg = json!({"body": body, "properties": {"body_encoding": "base64"}}).to_string();
        let c = decode(msg.as_bytes()).unwrap();
        assert_eq!(c.method, "hello");
        assert_eq!(c.reply_to.unwrap().routing_key, "53c97979");
        assert_eq!(task_ids(&json!({"task_id": "a"})), ["a"]);
        assert_eq!(task_ids(&json!({"task_id": ["a", "b", 3]})), ["a", "b"]);
        assert!(task_ids(&json!({})).is_empty());
        assert!(decode(b"garbage").is_err());
    }
}
