//! The fleet's database handle, [`Db`]: a SeaORM connection that also works behind PgBouncer in
//! transaction pooling mode (`DATABASE_POOL_MODE=transaction`).
//!
//! Behind such a pooler a client's statements may run on a different server connection after
//! every transaction. sqlx 0.9 prepares each statement under a name (`sqlx_s_<n>`, numbered per
//! client connection) in one round trip ending in `Sync`, then binds it in another: the pooler
//! may hand the second to another server, where the name is missing or, worse, names another
//! client's statement. `statement_cache_capacity(0)` alone does not help: sqlx still names each
//! statement and then never closes it. So in that mode [`Db`] runs every statement in its own
//! transaction (`BEGIN`, then `DEALLOCATE ALL` to clear names other clients left on that server,
//! the statement, `COMMIT`), which keeps prepare and bind on one server and commits before the
//! caller goes on, as autocommit would; [`Db::begin`] does the same for a caller's transaction.
//! Statements without parameters (`execute_unprepared`) use the simple protocol and pass as they
//! are. `docs/deployment.md` has the figures and the PgBouncer settings.

use std::str::FromStr;

use tokio::sync::oneshot::error::TryRecvError;

use sea_orm::sqlx::postgres::PgSslMode;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, ExecResult, QueryResult, RuntimeErr, Statement, TransactionTrait,
};

/// How connections reach PostgreSQL (`DATABASE_POOL_MODE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PoolMode {
    /// Straight to PostgreSQL, or through a pooler that gives a client one server connection
    /// for its whole session (PgBouncer `pool_mode = session`): statements are prepared once
    /// per connection and reused.
    #[default]
    Session,
    /// Through a pooler that may switch server connections after every transaction (PgBouncer
    /// `pool_mode = transaction`): every statement runs in its own transaction, nothing is
    /// cached between them.
    Transaction,
}

impl FromStr for PoolMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "session" => Ok(Self::Session),
            "transaction" => Ok(Self::Transaction),
            _ => Err("expected `session` or `transaction`".to_owned()),
        }
    }
}

/// Whether the operator may have chosen a TLS mode: an `sslmode` (or `ssl-mode`) key in the URL's
/// query in any case, or `PGSSLMODE` set. (A mode sqlx parsed other than its default `prefer`
/// is checked on the parsed options as well.)
fn tls_asked_for(url: &str, env_set: bool) -> bool {
    env_set
        || url.split_once('?').is_some_and(|(_, q)| {
            q.split('&').any(|p| {
                let p = p.to_ascii_lowercase();
                p.starts_with("sslmode=") || p.starts_with("ssl-mode=")
            })
        })
}

/// A host on this machine: a loopback address, `localhost`, or a Unix socket directory.
///
/// To such a host a connection without an `sslmode` goes without TLS. sqlx's default
/// (`prefer`) would negotiate TLS with a server that has a certificate (Debian's has one), which
/// protects nothing on loopback and costs each new connection about 100 ms here: sqlx leaves
/// Nagle's algorithm on, and the handshake's two small writes in a row wait out the server's
/// delayed ACK twice (strace: 45 ms gaps). A worker opens its first connections before its first
/// job, so that was most of its start-up time. `sslmode=require` (or `PGSSLMODE`) still asks,
/// and must: a loopback address that forwards to another machine (an SSH tunnel, a proxy)
/// carries the traffic on unencrypted otherwise.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The SQL database: PostgreSQL or SQLite, direct or behind a transaction pooler.
#[derive(Debug, Clone)]
pub struct Db {
    conn: DatabaseConnection,
    /// Behind a transaction pooler (and on PostgreSQL): every statement in its own transaction.
    per_statement_transactions: bool,
}

impl From<DatabaseConnection> for Db {
    /// A direct connection (no transaction pooler between it and the server).
    fn from(conn: DatabaseConnection) -> Self {
        Self {
            conn,
            per_statement_transactions: false,
        }
    }
}

/// The database did not answer at connect; `at` is its URL without the password.
#[derive(Debug, thiserror::Error)]
#[error("the database is unreachable at {at}")]
pub struct Unreachable {
    /// Where it was looked for (`crate::process::redact`ed).
    pub at: String,
    /// Why the connection failed.
    #[source]
    pub source: DbErr,
}

impl Db {
    /// Connect with these pool options. `Transaction` mode turns off sqlx's statement cache (a
    /// cached name would point at another server's statement) and applies only to PostgreSQL.
    pub async fn connect(mut options: ConnectOptions, mode: PoolMode) -> Result<Self, Unreachable> {
        let pooled = mode == PoolMode::Transaction;
        // One closure for both rules: SeaORM keeps only the last one given.
        let plain_on_loopback =
            !tls_asked_for(options.get_url(), std::env::var_os("PGSSLMODE").is_some());
        options.map_sqlx_postgres_opts(move |o| {
            let o = if pooled {
                o.statement_cache_capacity(0)
            } else {
                o
            };
            if plain_on_loopback
                && matches!(o.get_ssl_mode(), PgSslMode::Prefer)
                && is_loopback(o.get_host())
            {
                o.ssl_mode(PgSslMode::Disable)
            } else {
                o
            }
        });
        let at = crate::process::redact(options.get_url());
        let conn = Database::connect(options)
            .await
            .map_err(|source| Unreachable { at, source })?;
        let per_statement_transactions =
            pooled && conn.get_database_backend() == DatabaseBackend::Postgres;
        Ok(Self {
            conn,
            per_statement_transactions,
        })
    }

    /// The SeaORM connection underneath (its statements bypass the pooler rules above).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The database's dialect (also `ConnectionTrait`'s; here so callers need not import it).
    pub fn get_database_backend(&self) -> DatabaseBackend {
        self.conn.get_database_backend()
    }

    /// Begin a transaction. Behind a transaction pooler it starts by clearing the statement
    /// names earlier clients of its server connection left there, so this client's own
    /// `sqlx_s_<n>` cannot collide with them.
    ///
    /// The start runs on a task of its own. A caller cancelled while `BEGIN` is on the wire would
    /// otherwise hand its connection back to the pool inside a transaction (sqlx rolls back only
    /// a transaction it has seen begin): the next statements on that connection would never
    /// commit, and behind a pooler a server connection would stay pinned. On its own task the
    /// start completes; if the caller is gone by then, the transaction is dropped and sqlx rolls
    /// it back.
    pub async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        let db = self.clone();
        detached(async move { db.begin_here().await }).await
    }

    async fn begin_here(&self) -> Result<DatabaseTransaction, DbErr> {
        let txn = self.conn.begin().await?;
        if self.per_statement_transactions {
            txn.execute_unprepared("DEALLOCATE ALL").await?;
        }
        Ok(txn)
    }

    /// Check that the database answers (a readiness probe).
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.ping().await
    }

    /// Close the pool.
    pub async fn close(self) -> Result<(), DbErr> {
        self.conn.close().await
    }
}

/// One statement in a transaction of its own, on a task of its own (see [`Db::begin`]): `$txn =>
/// $run` runs `$run` (a future borrowing the transaction `$txn`) between `BEGIN` and `COMMIT`. A
/// caller cancelled before the transaction has started (while waiting for a connection, say)
/// runs nothing: the statement of a job past its time limit or revoked is not written later.
/// Once it has started it ends with `COMMIT` or `ROLLBACK`, as a statement already sent would
/// under autocommit.
macro_rules! alone {
    ($db:expr, $txn:ident => $run:expr) => {{
        let db = $db.clone();
        // Dropped with the caller's future: the task then sees the channel closed.
        let (_caller, mut gone) = tokio::sync::oneshot::channel::<()>();
        detached(async move {
            let $txn = db.begin_here().await?;
            if matches!(gone.try_recv(), Err(TryRecvError::Closed)) {
                $txn.rollback().await?;
                return Err(DbErr::Custom("cancelled before it ran".to_owned()));
            }
            let out = $run.await?;
            $txn.commit().await?;
            Ok(out)
        })
        .await
    }};
}

#[async_trait::async_trait]
impl ConnectionTrait for Db {
    fn get_database_backend(&self) -> DatabaseBackend {
        self.conn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        if !self.per_statement_transactions {
            return self.conn.execute_raw(stmt).await;
        }
        alone!(self, txn => txn.execute_raw(stmt))
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        // The simple protocol: one message, nothing named, safe behind any pooler.
        self.conn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        if !self.per_statement_transactions {
            return self.conn.query_one_raw(stmt).await;
        }
        alone!(self, txn => txn.query_one_raw(stmt))
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        if !self.per_statement_transactions {
            return self.conn.query_all_raw(stmt).await;
        }
        alone!(self, txn => txn.query_all_raw(stmt))
    }

    fn support_returning(&self) -> bool {
        self.conn.support_returning()
    }
}

/// Run `work` on a Tokio task of its own and wait for it; a panic there panics here.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, DbErr>> + Send + 'static,
) -> Result<T, DbErr> {
    match tokio::spawn(work).await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(DbErr::Custom(format!("database task failed: {e}"))),
    }
}

/// What PgBouncer says (SQLSTATE 08P01) when it cannot give a client a server connection.
const PGBOUNCER_UNAVAILABLE: [&str; 7] = [
    "server conn crashed",
    "query_wait_timeout",
    "cannot connect to server",
    "server login has been failing",
    "no more connections allowed",
    "pgbouncer cannot connect",
    "database removed",
];

/// Whether `e` means the database cannot be reached right now (worth a retry later), as opposed
/// to the database refusing the statement. Besides sqlx's own connection errors this counts what
/// PostgreSQL and PgBouncer report as ordinary errors: SQLSTATE class 08 (connection exception;
/// PgBouncer's "server conn crashed?" and "no more connections allowed"), 57P01–57P03 (shutting
/// down, cannot connect now) and 53300 (too many connections).
pub fn is_unavailable(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    match e {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(s))
        | DbErr::Exec(RuntimeErr::SqlxError(s))
        | DbErr::Query(RuntimeErr::SqlxError(s)) => match &**s {
            Sqlx::Io(_) | Sqlx::Tls(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed => true,
            Sqlx::WorkerCrashed => true,
            Sqlx::Database(db) => db.code().is_some_and(|code| match &*code {
                // PostgreSQL's own protocol violations are bugs; PgBouncer reports its
                // connection troubles under the same code, told apart by their text.
                "08P01" => PGBOUNCER_UNAVAILABLE
                    .iter()
                    .any(|m| db.message().contains(m)),
                "57P01" | "57P02" | "57P03" | "53300" => true,
                code => code.starts_with("08"),
            }),
            _ => false,
        },
        DbErr::Conn(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{PoolMode, is_loopback, tls_asked_for};

    #[test]
    fn loopback_hosts_are_told_from_remote_ones() {
        for h in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "/run/postgresql",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "db.example.com",
            "10.0.0.5",
            "192.168.1.1",
            "::2",
            "localhost.evil.com",
            "",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn an_sslmode_in_the_url_or_the_environment_is_the_operators_choice() {
        assert!(!tls_asked_for("postgres://u:p@127.0.0.1/db", false));
        assert!(!tls_asked_for(
            "postgres://u:p@127.0.0.1/db?application_name=x",
            false
        ));
        assert!(tls_asked_for(
            "postgres://u:p@127.0.0.1/db?sslmode=require",
            false
        ));
        assert!(tls_asked_for(
            "postgres://127.0.0.1/db?a=1&SSLMode=verify-full",
            false
        ));
        assert!(tls_asked_for("postgres://u:p@127.0.0.1/db", true));
        // A password holding the word is not a query parameter.
        assert!(!tls_asked_for("postgres://u:sslmode=x@127.0.0.1/db", false));
    }

    #[test]
    fn pool_mode_reads_pgbouncers_names_and_refuses_others() {
        assert_eq!("session".parse(), Ok(PoolMode::Session));
        assert_eq!(" Transaction ".parse(), Ok(PoolMode::Transaction));
        assert!("statement".parse::<PoolMode>().is_err());
        assert!("".parse::<PoolMode>().is_err());
    }
}
