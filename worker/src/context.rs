//! What every job gets: the database, Redis for hot data, the queues (for follow-up jobs) and settings.

use domain::db::Db;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use domain::workers::{Outcome, Tally};

use domain::conn::RedisConn;
use sea_orm::{DatabaseBackend, DbErr, Value};

use crate::geo::GeoIp;
use crate::store::{SessionWriter, VisitorReads};
use domain::config::Settings;
use domain::queues::Queues;

/// Shared state of the jobs in one worker process.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The SQL database (PostgreSQL or SQLite).
    pub db: Db,
    /// Redis, for the hot session documents.
    pub redis: RedisConn,
    /// Queue handles, for jobs that enqueue follow-ups.
    pub queues: Queues,
    /// Process settings.
    pub settings: Arc<Settings>,
    /// Batching writer of anonymous-session rows.
    pub sessions: SessionWriter,
    /// Coalesced reads of visitors' sessions and erasure marks.
    pub reads: VisitorReads,
    /// This process's job counts (its heartbeat reports them).
    pub counters: Arc<Counters>,
    /// The Django-owned tables' shape, read once ([`domain::schema`]).
    pub shape: domain::schema::ShapeCache,
    /// The City database (`GEOIP_DATABASE`), if one is configured.
    pub geo: Option<Arc<GeoIp>>,
}

/// Jobs of one worker process, counted as they run.
#[derive(Debug, Default)]
pub struct Counters {
    /// Running now.
    pub in_flight: AtomicU64,
    /// Succeeded.
    pub processed: AtomicU64,
    /// Attempts that failed (retried or dead).
    pub failed: AtomicU64,
    /// What is not yet added to the history and the fleet's totals
    /// (`domain::workers::add_tally`, at each heartbeat).
    pub tally: Mutex<Tally>,
}

impl Counters {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One run of `job` starts.
    pub fn start(&self, job: &'static str) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.tally().start(job);
    }

    /// A run started with [`Counters::start`] is over (whatever its outcome).
    pub fn stop(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Count one run of `job` that ended with `outcome` after `ms`.
    pub fn record(&self, job: &'static str, outcome: Outcome, ms: u64) {
        let counter = match outcome {
            Outcome::Succeeded => &self.processed,
            Outcome::Failed | Outcome::Dead => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.tally().end(job, outcome, ms);
    }

    /// Count Celery messages adopted.
    pub fn adopted(&self, n: u64) {
        self.tally().celery_adopted += n;
    }

    /// What was counted since the last call.
    pub fn take_tally(&self) -> Tally {
        std::mem::take(&mut *self.tally())
    }

    /// Put back what could not be written.
    pub fn restore_tally(&self, back: Tally) {
        self.tally().merge(back);
    }
}

impl JobContext {
    /// A context over these connections; starts the session writer (needs a tokio runtime).
    pub fn new(
        db: impl Into<Db>,
        redis: RedisConn,
        settings: Settings,
        geo: Option<Arc<GeoIp>>,
    ) -> Self {
        let db = db.into();
        Self {
            queues: Queues::new(redis.clone(), &settings),
            sessions: SessionWriter::spawn(db.clone(), settings.db_writers, geo.clone()),
            reads: VisitorReads::spawn(redis.clone()),
            geo,
            db,
            redis,
            settings: Arc::new(settings),
            counters: Arc::default(),
            shape: domain::schema::ShapeCache::default(),
        }
    }

    /// The database's dialect.
    pub fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    /// Run `sql`, written with `$1, $2 …` placeholders, on either dialect.
    pub async fn execute(&self, sql: &str, values: Vec<Value>) -> Result<u64, DbErr> {
        domain::sql::execute(&self.db, sql, values).await
    }
}
