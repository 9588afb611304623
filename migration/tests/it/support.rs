//! Per-test databases: a fresh PostgreSQL database or SQLite file, removed on drop.

use std::path::PathBuf;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};

/// Maintenance database URL; the per-test databases live on the same server.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url);
    options.max_connections(4).sqlx_logging(false);
    Database::connect(options).await
}

/// What to remove when the test is over.
enum Owned {
    Postgres { name: String },
    Sqlite { path: PathBuf },
}

/// A database that exists for one test only.
pub struct TestDb {
    db: Option<DatabaseConnection>,
    owned: Owned,
    /// Connection URL, for tests that run the `migration` binary.
    pub url: String,
}

impl TestDb {
    /// Creates `celeriac_test_<uuid>` on the PostgreSQL server.
    pub async fn postgres() -> Result<Self, DbErr> {
        let name = format!("celeriac_test_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(&admin_url()).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        admin.close().await?;
        let url = with_database(&admin_url(), &name);
        // Registered before connecting, so a failed connect still drops the database.
        let mut test_db = Self {
            db: None,
            owned: Owned::Postgres { name },
            url,
        };
        test_db.db = Some(connect(&test_db.url).await?);
        Ok(test_db)
    }

    /// Creates a SQLite file in the temporary directory.
    pub async fn sqlite() -> Result<Self, DbErr> {
        let path = std::env::temp_dir().join(format!(
            "celeriac_test_{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut test_db = Self {
            db: None,
            owned: Owned::Sqlite { path },
            url,
        };
        test_db.db = Some(connect(&test_db.url).await?);
        Ok(test_db)
    }

    /// The connection pool.
    pub fn conn(&self) -> &DatabaseConnection {
        self.db
            .as_ref()
            .expect("the connection lives as long as the TestDb")
    }
}

impl Drop for TestDb {
    /// Removes the database, also when the test panicked.
    ///
    /// The pool is dropped first; the `DROP DATABASE` runs on a thread with its own runtime,
    /// because `Drop` cannot await and the test's runtime may be single-threaded.
    fn drop(&mut self) {
        drop(self.db.take());
        match &self.owned {
            Owned::Postgres { name } => {
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let outcome = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|err| DbErr::Custom(err.to_string()))?;
                    runtime.block_on(async {
                        let admin = connect(&admin_url()).await?;
                        admin.execute_unprepared(&sql).await?;
                        admin.close().await
                    })
                })
                .join();
                if !matches!(outcome, Ok(Ok(()))) {
                    eprintln!("could not drop test database {name}: {outcome:?}");
                }
            }
            Owned::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
        }
    }
}

/// Runs `body` once against each backend.
#[macro_export]
macro_rules! on_both_backends {
    ($postgres:ident, $sqlite:ident, $body:path) => {
        #[tokio::test]
        async fn $postgres() -> Result<(), sea_orm::DbErr> {
            let test_db = $crate::support::TestDb::postgres().await?;
            $body(&test_db).await
        }

        #[tokio::test]
        async fn $sqlite() -> Result<(), sea_orm::DbErr> {
            let test_db = $crate::support::TestDb::sqlite().await?;
            $body(&test_db).await
        }
    };
}

/// 2025-10-10 14:00:00.123456 UTC plus `offset_seconds`: microsecond precision, which
/// PostgreSQL keeps exactly.
pub fn timestamp(offset_seconds: i64) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2025, 10, 10, 14, 0, 0)
        .single()
        .expect("a valid date")
        + chrono::Duration::seconds(offset_seconds)
        + chrono::Duration::microseconds(123_456)
}

#[test]
fn with_database_swaps_only_the_database_name() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/postgres?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
}
