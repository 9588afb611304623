//! The application state every handler shares.

use std::sync::Arc;

use domain::config::Settings;
use domain::conn::RedisConn;
use domain::db::Db;
use domain::queues::Queues;
use queue::Queue;

use crate::config::ApiConfig;
use crate::error::ApiError;

/// What every handler can reach: [`Shared`] behind one `Arc`, so the clone each request's
/// extractors make is a reference count (cloning every handle cost 3 to 4 % of the API's CPU
/// per page view, `bench/api.sh`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The handles and settings every handler shares.
pub struct Shared {
    /// Queue handles for every registered job.
    pub queues: Queues,
    /// The database (PostgreSQL or SQLite).
    pub db: Db,
    /// The shared Redis connection (hot data, readiness probe).
    pub redis: RedisConn,
    /// Settings shared with the worker.
    pub settings: Arc<Settings>,
    /// The API's own settings.
    pub api: Arc<ApiConfig>,
    /// The tracking rules (page views, sessions, events, visitors, analytics, erasure).
    pub tracker: tracking::Tracker,
    /// The console's session and CSRF keys.
    pub console: crate::console::ConsoleKeys,
    /// Set at SIGTERM: `/readyz` answers 503 while the API drains (`API_DRAIN_SECONDS`).
    pub stopping: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// State over open connections; queue handles are built from `settings`.
    pub fn new(redis: RedisConn, db: impl Into<Db>, settings: Settings, api: ApiConfig) -> Self {
        let db = db.into();
        let queues = Queues::new(redis.clone(), &settings);
        let tracker = tracking::Tracker::new(
            redis.clone(),
            db.clone(),
            queues.clone(),
            tracking::TrackingConfig::from_settings(&settings),
        );
        let console = crate::console::ConsoleKeys::new(api.token.as_ref());
        Self(Arc::new(Shared {
            console,
            queues,
            db,
            redis,
            settings: Arc::new(settings),
            api: Arc::new(api),
            tracker,
            stopping: std::sync::atomic::AtomicBool::new(false),
        }))
    }
}

impl AppState {
    /// The queue of job `name`, or 404 when no job has that name.
    pub fn queue(&self, name: &str) -> Result<&Queue<RedisConn>, ApiError> {
        self.queues
            .get(name)
            .ok_or_else(|| ApiError::unknown_job(name))
    }
}
