//! What every job gets: the database, Redis for hot data, the queues (for follow-up jobs) and settings.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use redis::aio::ConnectionManager;
use sea_orm::{DatabaseBackend, DatabaseConnection, DbErr, Value};

use crate::store::SessionWriter;
use domain::config::Settings;
use domain::queues::Queues;

/// Shared state of the jobs in one worker process.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The SQL database (PostgreSQL or SQLite).
    pub db: DatabaseConnection,
    /// Redis, for the hot session documents.
    pub redis: ConnectionManager,
    /// Queue handles, for jobs that enqueue follow-ups.
    pub queues: Queues,
    /// Process settings.
    pub settings: Arc<Settings>,
    /// Batching writer of anonymous-session rows.
    pub sessions: SessionWriter,
    /// This process's job counts (its heartbeat reports them).
    pub counters: Arc<Counters>,
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
}

impl JobContext {
    /// A context over these connections; starts the session writer (needs a tokio runtime).
    pub fn new(db: DatabaseConnection, redis: ConnectionManager, settings: Settings) -> Self {
        Self {
            queues: Queues::new(redis.clone(), &settings),
            sessions: SessionWriter::spawn(db.clone(), settings.db_writers),
            db,
            redis,
            settings: Arc::new(settings),
            counters: Arc::default(),
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
