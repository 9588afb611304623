//! Celery's events, for Flower and the dashboards built on them (`CELERY_EVENTS=1`): the worker
//! announces itself (`worker-online`, a `worker-heartbeat` every 2 s, `worker-offline`) and the
//! bridge reports each Celery task (`task-received`, `-started`, `-succeeded`, `-failed`,
//! `-retried`, `-revoked`), published as kombu does on Redis: `PUBLISH /<db>.celeryev/<type with
//! dots>` with a kombu message whose body is the event.
//!
//! Sending costs a task a channel send: a publisher task batches the events into one pipeline.
//! Events are best effort, as Celery's are: while Redis is unreachable they are dropped (the
//! channel is bounded), never waited for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use domain::conn::RedisConn;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

use crate::context::Counters;

/// How often a worker heartbeat is sent (Celery's `freq`).
pub const HEARTBEAT_FREQ: Duration = Duration::from_secs(2);
/// Events waiting to be published, at most.
const BACKLOG: usize = 10_000;

/// The events of one worker process; [`Events::off`] sends nothing.
#[derive(Clone, Debug)]
pub struct Events(Option<Arc<Sender>>);

#[derive(Debug)]
struct Sender {
    node: String,
    clock: AtomicU64,
    tx: mpsc::Sender<(String, String)>,
}

impl Events {
    /// Events turned off.
    pub fn off() -> Self {
        Self(None)
    }

    /// Events of node `node` on Redis database `db`, published over `conn` by a task that runs
    /// until every clone of the handle is dropped.
    pub fn start(conn: RedisConn, db: i64, node: &str) -> Self {
        let (tx, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(publisher(conn, format!("/{db}.celeryev/"), rx));
        Self(Some(Arc::new(Sender {
            node: node.to_owned(),
            clock: AtomicU64::new(0),
            tx,
        })))
    }

    /// Whether events are sent.
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Send event `kind` (`task-started`, ...) with `fields`, plus what every Celery event
    /// carries: hostname, pid, clock, timestamp, utcoffset, type.
    pub fn send(&self, kind: &str, fields: Value) {
        let Some(s) = &self.0 else { return };
        let mut event = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let now = chrono::Utc::now();
        event.insert("hostname".into(), s.node.clone().into());
        event.insert("utcoffset".into(), 0.into());
        event.insert("pid".into(), std::process::id().into());
        event.insert(
            "clock".into(),
            (s.clock.fetch_add(1, Ordering::Relaxed) + 1).into(),
        );
        event.insert(
            "timestamp".into(),
            (now.timestamp_micros() as f64 / 1e6).into(),
        );
        event.insert("type".into(), kind.into());
        let routing_key = kind.replace('-', ".");
        let message = json!({
            "body": base64::engine::general_purpose::STANDARD.encode(Value::Object(event).to_string()),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"hostname": s.node},
            "properties": {
                "delivery_mode": 1,
                "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": uuid::Uuid::new_v4().to_string(),
            },
        })
        .to_string();
        if s.tx.try_send((routing_key, message)).is_err() {
            tracing::debug!(kind, "celery event dropped: the publisher is behind");
        }
    }

    /// `worker-online`, then a `worker-heartbeat` every [`HEARTBEAT_FREQ`] with the tasks running
    /// and processed, until `stop`; then `worker-offline`.
    pub async fn heartbeats(self, counters: Arc<Counters>, mut stop: watch::Receiver<bool>) {
        if !self.enabled() {
            return;
        }
        let worker = |counters: &Counters| {
            json!({
                "freq": HEARTBEAT_FREQ.as_secs_f64(),
                "active": counters.in_flight.load(Ordering::Relaxed),
                "processed": counters.processed.load(Ordering::Relaxed),
                "loadavg": loadavg(),
                "sw_ident": "celeriac",
                "sw_ver": env!("CARGO_PKG_VERSION"),
                "sw_sys": std::env::consts::OS,
            })
        };
        self.send("worker-online", worker(&counters));
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = tokio::time::sleep(HEARTBEAT_FREQ) => {}
            }
            self.send("worker-heartbeat", worker(&counters));
        }
        self.send("worker-offline", worker(&counters));
        // Let the publisher send it before the process goes.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The 1, 5 and 15 minute load averages (zeros where `/proc/loadavg` cannot be read).
fn loadavg() -> Vec<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    out.resize(3, 0.0);
    out
}

/// Publishes queued events, a pipeline per batch, until every sender is gone.
async fn publisher(mut conn: RedisConn, prefix: String, mut rx: mpsc::Receiver<(String, String)>) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut pipe = redis::pipe();
        for (routing_key, message) in batch.drain(..) {
            pipe.publish(format!("{prefix}{routing_key}"), message)
                .ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::debug!(error = %e, "celery events not published");
        }
    }
}
