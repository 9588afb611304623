//! What every job gets: the database, Redis for hot data, the queues (for follow-up jobs) and settings.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement, Value};

use crate::config::Settings;
use crate::queues::Queues;
use crate::store::SessionWriter;

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
        }
    }

    /// The database's dialect.
    pub fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    /// Run `sql`, written with `$1, $2 …` placeholders, on either dialect.
    pub async fn execute(&self, sql: &str, values: Vec<Value>) -> Result<u64, DbErr> {
        let stmt = statement(self.backend(), sql, values);
        Ok(self.db.execute_raw(stmt).await?.rows_affected())
    }
}

/// The placeholders of row `row` (0-based) of a multi-row `VALUES` list of `cols` columns:
/// `($1, $2, $3)` for row 0 of 3, `($4, $5, $6)` for row 1.
pub fn row_placeholders(row: usize, cols: usize) -> String {
    let first = row * cols + 1;
    let list: Vec<String> = (first..first + cols).map(|n| format!("${n}")).collect();
    format!("({})", list.join(", "))
}

/// A statement for `backend` from SQL written with PostgreSQL's `$n` placeholders; for SQLite
/// they become `?n` and `GREATEST` becomes SQLite's multi-argument `MAX`.
pub fn statement(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DatabaseBackend::Sqlite => sql.replace("GREATEST(", "MAX(").replace('$', "?"),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

#[cfg(test)]
mod tests {
    #[test]
    fn row_placeholders_number_each_row_after_the_last() {
        assert_eq!(super::row_placeholders(0, 3), "($1, $2, $3)");
        assert_eq!(super::row_placeholders(2, 2), "($5, $6)");
    }
}
