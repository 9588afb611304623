//! Anonymous page views, batched: the views that concurrent requests submit while Redis is busy
//! share one run of `lua/views.lua`, each still applied atomically and answered on its own.
//!
//! A single dispatcher task takes what has queued up (at most [`MAX_BATCH`] views) whenever
//! fewer than [`IN_FLIGHT`] batches are in Redis, so a lone view goes at once (no linger) and
//! under load each script run, round trip and wake-up carries many views. Redis runs scripts one
//! after another, so the views of one fingerprint keep the order they were submitted in.
//! Everything a view needs, the jobs it may enqueue included, is in its own arguments: the batch
//! script never depends on which other views share its run.

use std::sync::Arc;

use domain::conn::RedisConn;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use redis::{ErrorKind, RedisError, Value};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use crate::scripts;
use crate::validate::TrackError;

/// Views in one script run: bounds how long one run holds Redis (about 20 µs a view).
pub(crate) const MAX_BATCH: usize = 32;
/// Batches in Redis at once. At 15,000 views/s on 2 cores (`bench/api.sh`, two runs each), 1 gave
/// larger batches but a p99 of 17 and 23 ms, 2 gave 9 and 32 ms, 4 gave 9 and 8 ms.
pub(crate) const IN_FLIGHT: usize = 4;
/// Views waiting for a batch before submitters wait too (back-pressure).
const QUEUE: usize = 4096;

/// A struct whose fields are `views.lua` arguments, in the script's order, with the list of their
/// names (`FIELDS`) that the script's own table of positions must repeat.
macro_rules! script_args {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub(crate) struct $name {
            $($(#[$fmeta])* pub(crate) $field: String,)*
        }

        impl $name {
            /// The fields' names, in the script's order.
            #[cfg(test)]
            pub(crate) const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The arguments, in the script's order.
            pub(crate) fn into_args(self) -> Vec<String> {
                vec![$(self.$field),*]
            }
        }
    };
}

script_args! {
    /// The batch-wide arguments of `views.lua` (`ARGV[1..]`; the script's `BATCH` table, which
    /// also names `view_count`, the number of views, added by each run).
    BatchArgs {
        /// The persist queue's pub/sub wake-up channel ('' = none).
        persist_notify,
        /// The finalize queue's wake-up channel.
        finalize_notify,
        /// Every n-th view of a session enqueues `persist_anonymous_session` (0 = never).
        persist_every,
        /// The session document's TTL: the anonymous session timeout, in seconds.
        session_ttl,
        /// The day counters' TTL, in seconds.
        counters_ttl,
        /// How long a community visitor counts after its view, in seconds.
        community_window,
        /// How long the views buffer outlives the last view, in seconds.
        buffer_ttl,
        /// Distinct paths counted a day (0 = no cap).
        max_paths,
        /// Unique visitors a path keeps exactly (0 = no cap).
        max_exact,
    }
}

script_args! {
    /// One view's arguments to `views.lua` (the script's `VIEW` table: offsets from the view's
    /// first argument).
    ViewArgs {
        /// The document a session this view starts begins with (JSON; `pages_visited` 0).
        new_session,
        /// The view's time, RFC 3339.
        time,
        /// The page, as sent.
        url,
        /// `1` when the user agent is a crawler (not counted), else `0`.
        is_bot,
        /// The buffered view (a JSON object; the script puts the session id and number in front).
        view,
        /// The page's path (what the day's counters are keyed by).
        path,
        /// Page type.
        page_type,
        /// The visitor key (`anon_{fingerprint}`).
        visitor,
        /// The `finalize_anonymous_session` payload, should this view start a session.
        finalize_job,
        /// The `persist_anonymous_session` payload, should this view be an n-th.
        persist_job,
        /// The community visit's visitor JSON ('' = not a community page).
        community_visit,
    }
}

/// One view's keys and arguments.
#[derive(Debug)]
pub(crate) struct AnonView {
    /// 10 keys, or 15 for a community page.
    pub(crate) keys: Vec<String>,
    /// Its arguments ([`ViewArgs::into_args`]).
    pub(crate) args: Vec<String>,
}

/// What the script did with one view.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The live session's id.
    pub(crate) session_id: String,
    /// Pages seen in the session, this one included.
    pub(crate) pages: i64,
    /// This view started the session (and enqueued its finalize_anonymous_session).
    pub(crate) new_session: bool,
    /// This view enqueued persist_anonymous_session.
    pub(crate) persisted: bool,
}

/// The batch-wide part of the script's keys and arguments.
#[derive(Debug)]
pub(crate) struct Fixed {
    /// Persist queue: jobs, pending, scheduled; then finalize queue: the same; the open
    /// sessions set.
    pub(crate) keys: [String; 7],
    /// The batch's arguments ([`BatchArgs::into_args`]).
    pub(crate) args: Vec<String>,
}

type Reply = oneshot::Sender<Result<Outcome, TrackError>>;

/// The submitting side; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<(AnonView, Reply)>,
}

impl Batcher {
    /// Start the dispatcher on the current Tokio runtime; it stops once every handle is gone.
    pub(crate) fn spawn(redis: RedisConn, fixed: Fixed) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(dispatch(rx, redis, Arc::new(fixed)));
        Self { tx }
    }

    /// Apply one view (in whichever batch it lands in) and return what the script did.
    pub(crate) async fn track(&self, view: AnonView) -> Result<Outcome, TrackError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((view, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> TrackError {
    TrackError::Redis(RedisError::from(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the page-view batcher has stopped",
    )))
}

async fn dispatch(mut rx: mpsc::Receiver<(AnonView, Reply)>, redis: RedisConn, fixed: Arc<Fixed>) {
    // The batches in Redis are polled here, not spawned: no task to schedule per batch.
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some(()) = running.next(), if !running.is_empty() => {}
            first = rx.recv(), if running.len() < IN_FLIGHT => {
                let Some(first) = first else { break };
                let mut batch = Vec::with_capacity(MAX_BATCH);
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let span = tracing::debug_span!("anon_views", views = batch.len());
                running.push(run(redis.clone(), fixed.clone(), batch).instrument(span));
            }
        }
    }
    while running.next().await.is_some() {}
}

/// One script run: every view of the batch gets its own answer.
async fn run(mut redis: RedisConn, fixed: Arc<Fixed>, batch: Vec<(AnonView, Reply)>) {
    let mut inv = scripts::VIEWS.prepare_invoke();
    for key in &fixed.keys {
        inv.key(key);
    }
    for arg in &fixed.args {
        inv.arg(arg);
    }
    inv.arg(batch.len());
    for (view, _) in &batch {
        for key in &view.keys {
            inv.key(key);
        }
        for arg in &view.args {
            inv.arg(arg);
        }
    }
    let started = std::time::Instant::now();
    let reply: Result<Vec<Value>, RedisError> = inv.invoke_async(&mut redis).await;
    tracing::trace!(
        views = batch.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "page-view batch"
    );
    let reply = reply.and_then(|values| {
        if values.len() == batch.len() * 3 {
            Ok(values)
        } else {
            Err(RedisError::from((
                ErrorKind::Parse,
                "page-view batch reply",
                format!("{} values for {} views", values.len(), batch.len()),
            )))
        }
    });
    match reply {
        Ok(values) => {
            for ((_, reply), value) in batch.into_iter().zip(values.chunks(3)) {
                let _ = reply.send(outcome(value));
            }
        }
        Err(e) => {
            for (_, reply) in batch {
                let _ = reply.send(Err(TrackError::Redis(e.clone())));
            }
        }
    }
}

/// One view's three reply values: `{session id, pages, flags}` or `{'', -1, error}`.
fn outcome(v: &[Value]) -> Result<Outcome, TrackError> {
    let text = |v: &Value| -> Result<String, TrackError> {
        redis::from_redis_value_ref(v).map_err(|e| TrackError::Redis(e.into()))
    };
    let int = |v: &Value| -> Result<i64, TrackError> {
        redis::from_redis_value_ref(v).map_err(|e| TrackError::Redis(e.into()))
    };
    let [session_id, pages, flags] = v else {
        return Err(TrackError::Redis(RedisError::from((
            ErrorKind::Parse,
            "page-view batch reply",
        ))));
    };
    let pages = int(pages)?;
    if pages < 0 {
        return Err(TrackError::Redis(RedisError::from((
            ErrorKind::Extension,
            "page-view script failed",
            text(flags)?,
        ))));
    }
    let flags = int(flags)?;
    Ok(Outcome {
        session_id: text(session_id)?,
        pages,
        new_session: flags & 1 != 0,
        persisted: flags & 2 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::{BatchArgs, ViewArgs};

    /// The names and positions of a Lua table of argument positions (`local NAME = {a = 1, …}`).
    fn lua_table(script: &str, name: &str) -> Vec<(String, usize)> {
        let start = script
            .find(&format!("local {name} = {{"))
            .unwrap_or_else(|| panic!("views.lua declares {name}"));
        let body = &script[start..];
        let body = &body[body.find('{').unwrap_or(0) + 1..body.find('}').unwrap_or(0)];
        body.split(',')
            .map(|pair| {
                let (k, v) = pair.split_once('=').expect("name = position");
                (k.trim().to_owned(), v.trim().parse().expect("a position"))
            })
            .collect()
    }

    /// The script names its arguments as the Rust types do, in the same order: a field added,
    /// removed or moved on one side only fails here, not as a wrong counter in production.
    #[test]
    fn views_script_names_its_arguments_as_the_rust_types_do() {
        let script = include_str!("../lua/views.lua");
        let batch = lua_table(script, "BATCH");
        let mut want: Vec<&str> = BatchArgs::FIELDS.to_vec();
        want.push("view_count");
        assert_eq!(
            batch.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            want
        );
        assert!(batch.iter().enumerate().all(|(i, (_, pos))| *pos == i + 1));
        let view = lua_table(script, "VIEW");
        assert_eq!(
            view.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ViewArgs::FIELDS
        );
        assert!(view.iter().enumerate().all(|(i, (_, pos))| *pos == i));
        assert!(
            script.contains(&format!("local PER_VIEW = {}\n", ViewArgs::FIELDS.len())),
            "PER_VIEW is the number of ViewArgs fields"
        );
    }
}
