//! The web tier's tracking work (SPEC §3, §5, §7), done in one call per page view: anonymous and
//! authenticated sessions in Redis, the jobs that persist them, community visitors, user events,
//! sign-up conversions, page analytics counters, the analytics use cases and erasure.
//!
//! Hot-path writes are single Lua scripts (one round trip per view; concurrent anonymous views
//! share one, see `batch.rs`); SQL is touched only where an authenticated user's history must be
//! recorded.

pub mod analytics;
mod batch;
pub mod beacon;
pub mod community;
mod device;
pub mod erase;
pub mod events;
pub mod pageview;
mod scripts;
pub mod sessions;
mod split;
pub mod validate;
mod view;

use std::time::Duration;

use domain::args::JobArgs as _;
use domain::config::Settings;
use domain::conn::RedisConn;
use domain::db::Db;
use domain::jobs::{FinalizeAnonymousSession, PersistAnonymousSession};
use domain::queues::Queues;

pub use scripts::all_scripts;
pub use validate::TrackError;

/// Tunables of the tracking rules.
#[derive(Debug, Clone)]
pub struct TrackingConfig {
    /// Idle time that ends an anonymous session (`ANON_SESSION_TIMEOUT_SECONDS`, 30 min).
    pub anon_timeout: Duration,
    /// Every n-th anonymous page view enqueues `persist_anonymous_session` (5).
    pub persist_every: u32,
    /// A community visitor counts this long after its last view (5 min).
    pub visitor_window: Duration,
    /// Authenticated session lifetime (4 h).
    pub session_ttl: Duration,
    /// With remember-me (30 d).
    pub remember_ttl: Duration,
    /// How long the day's analytics counters stay in Redis (3 days).
    pub counters_ttl: Duration,
    /// How far in the future a client timestamp may be (clock skew, 2 min).
    pub max_skew: Duration,
    /// How old a client timestamp may be (`TRACK_MAX_PAST_SECONDS`, 24 h).
    pub max_past: Duration,
    /// How long a session's buffered views wait for a worker (`ANON_BUFFER_SECONDS`, 24 h).
    pub buffer_ttl: Duration,
    /// Distinct paths counted a day (`PAGEVIEW_MAX_PATHS_PER_DAY`, 20,000; 0 = no cap).
    pub max_paths_per_day: u64,
    /// Exact unique visitors a path a day (`PAGEVIEW_MAX_EXACT_VISITORS`, 1,000; 0 = no cap).
    pub max_exact_visitors: u64,
}

impl TrackingConfig {
    /// The defaults, with the session timeout from `settings`.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            anon_timeout: settings.anon_session_timeout,
            persist_every: 5,
            visitor_window: Duration::from_secs(300),
            session_ttl: Duration::from_secs(4 * 3600),
            remember_ttl: Duration::from_secs(30 * 86_400),
            counters_ttl: Duration::from_secs(3 * 86_400),
            max_skew: Duration::from_secs(120),
            max_past: settings.max_past,
            buffer_ttl: settings.anon_buffer,
            max_paths_per_day: settings.max_paths_per_day,
            max_exact_visitors: settings.max_exact_visitors,
        }
    }
}

/// Everything the tracking calls need. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tracker {
    /// Redis (hot data).
    pub redis: RedisConn,
    /// The SQL database.
    pub db: Db,
    /// Queue handles (persist, finalize, enhance, link jobs).
    pub queues: Queues,
    /// The rules' tunables.
    pub config: TrackingConfig,
    /// The Django-owned tables' shape, read once ([`domain::schema`]).
    pub shape: domain::schema::ShapeCache,
    /// Anonymous page views, batched into shared script runs.
    batch: batch::Batcher,
}

impl Tracker {
    /// A tracker over these connections. Starts the page-view batcher on the current Tokio
    /// runtime (it stops when the last clone of the tracker is dropped).
    pub fn new(
        redis: RedisConn,
        db: impl Into<Db>,
        queues: Queues,
        config: TrackingConfig,
    ) -> Self {
        let keys = |name: &str| {
            queues
                .get(name)
                .map(|q| q.keys().clone())
                .expect("every registered job has a queue")
        };
        let persist = keys(PersistAnonymousSession::NAME);
        let finalize = keys(FinalizeAnonymousSession::NAME);
        let fixed = batch::Fixed {
            keys: [
                persist.jobs,
                persist.pending,
                persist.scheduled,
                finalize.jobs,
                finalize.pending,
                finalize.scheduled,
                // One server: the one open-session list (views.lua runs only there).
                domain::keys::anon_open_keys().swap_remove(0),
            ],
            args: batch::BatchArgs {
                persist_notify: persist.notify,
                finalize_notify: finalize.notify,
                persist_every: config.persist_every.to_string(),
                session_ttl: config.anon_timeout.as_secs().max(1).to_string(),
                counters_ttl: config.counters_ttl.as_secs().to_string(),
                community_window: config.visitor_window.as_secs().to_string(),
                buffer_ttl: config
                    .buffer_ttl
                    .max(config.anon_timeout * 2)
                    .as_secs()
                    .to_string(),
                max_paths: config.max_paths_per_day.to_string(),
                max_exact: config.max_exact_visitors.to_string(),
            }
            .into_args(),
        };
        Self {
            batch: batch::Batcher::spawn(redis.clone(), fixed),
            redis,
            db: db.into(),
            queues,
            config,
            shape: domain::schema::ShapeCache::default(),
        }
    }
}
