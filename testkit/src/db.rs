//! Per-test databases: a PostgreSQL database (migrated, cloned from a template; or empty) or a
//! SQLite file (migrated or empty), removed on drop, also when the test panicked.
//!
//! The migrated PostgreSQL databases are copies of one template, `celeriac_tpl_<hash>`, named by
//! a hash of the migration list and of the migrations' source: the first test that needs it
//! migrates it (under an advisory lock, so concurrent test processes migrate it once), later
//! tests and runs `CREATE DATABASE ... TEMPLATE` it, which is much faster than migrating. The
//! template accepts no connections, so nothing holds it open while it is copied; a template of
//! other migrations is dropped when a new one is made.

use std::path::{Path, PathBuf};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, Statement};

/// Prefix of every per-test PostgreSQL database and SQLite file.
const TEST_PREFIX: &str = "celeriac_test_";
/// Prefix of the migrated templates.
const TEMPLATE_PREFIX: &str = "celeriac_tpl_";
/// Advisory lock key guarding the template's creation ("celeriac" in ASCII).
const TEMPLATE_LOCK: i64 = 0x6365_6c65_7269_6163;

/// The PostgreSQL server's maintenance database (`TEST_DATABASE_URL`, default the local server);
/// the per-test databases live on the same server.
pub fn pg_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// URL of database `name` on the test server.
pub fn pg_url(name: &str) -> String {
    with_database(&pg_admin_url(), name)
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

async fn connect(url: &str, max_connections: Option<u32>) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url);
    options.sqlx_logging(false);
    if let Some(n) = max_connections {
        options.max_connections(n);
    }
    Database::connect(options).await
}

/// What a [`TestDb`] removes when it is dropped.
enum Owned {
    Postgres(String),
    Sqlite(PathBuf),
}

impl Drop for Owned {
    /// The `DROP DATABASE` runs on a thread with its own runtime: `Drop` cannot await, and the
    /// test's runtime may be single-threaded or shutting down.
    fn drop(&mut self) {
        match self {
            Owned::Postgres(name) => {
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let outcome = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| DbErr::Custom(e.to_string()))?;
                    runtime.block_on(async {
                        let admin = connect(&pg_admin_url(), Some(1)).await?;
                        admin.execute_unprepared(&sql).await?;
                        admin.close().await
                    })
                })
                .join();
                if !matches!(outcome, Ok(Ok(()))) {
                    eprintln!("could not drop test database {name}: {outcome:?}");
                }
            }
            Owned::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
        }
    }
}

/// A database of the test's own, removed on drop.
pub struct TestDb {
    /// Its URL (for processes the test starts).
    pub url: String,
    /// A connection pool to it.
    pub conn: DatabaseConnection,
    /// Declared after `conn`, so the pool is dropped before the database is.
    _owned: Owned,
}

impl TestDb {
    /// A fresh PostgreSQL database `celeriac_test_<uuid>` with every migration applied (a copy of
    /// the migrated template).
    pub async fn postgres() -> Self {
        let template = template().await;
        Self::create_postgres(Some(&template)).await
    }

    /// A fresh, empty PostgreSQL database `celeriac_test_<uuid>` (no migrations run).
    pub async fn empty_postgres() -> Self {
        Self::create_postgres(None).await
    }

    async fn create_postgres(template: Option<&str>) -> Self {
        let name = format!("{TEST_PREFIX}{}", uuid::Uuid::new_v4().simple());
        // Owned before it exists, so a failure past this point still drops it.
        let owned = Owned::Postgres(name.clone());
        let admin = connect(&pg_admin_url(), Some(1))
            .await
            .expect("PostgreSQL is running (TEST_DATABASE_URL)");
        let sql = match template {
            Some(template) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
            None => format!("CREATE DATABASE \"{name}\""),
        };
        execute_when_free(&admin, &sql)
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let url = pg_url(&name);
        let conn = connect(&url, None)
            .await
            .expect("connect to the test database");
        Self {
            url,
            conn,
            _owned: owned,
        }
    }

    /// A fresh SQLite file in the temporary directory, with every migration applied.
    pub async fn sqlite() -> Self {
        let db = Self::empty_sqlite().await;
        Migrator::up(&db.conn, None)
            .await
            .expect("migrate the SQLite test database");
        db
    }

    /// A fresh, empty SQLite file in the temporary directory.
    pub async fn empty_sqlite() -> Self {
        let path =
            std::env::temp_dir().join(format!("{TEST_PREFIX}{}.db", uuid::Uuid::new_v4().simple()));
        let owned = Owned::Sqlite(path.clone());
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let conn = connect(&url, None).await.expect("open the SQLite file");
        Self {
            url,
            conn,
            _owned: owned,
        }
    }
}

/// Run `sql` (a `CREATE DATABASE` or `ALTER DATABASE`), retrying for a few seconds while
/// PostgreSQL refuses it because another session is still connected to the database it names
/// (a server process ends a moment after its client hung up).
async fn execute_when_free(admin: &DatabaseConnection, sql: &str) -> Result<(), DbErr> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match admin.execute_unprepared(sql).await {
            Ok(_) => return Ok(()),
            Err(e)
                if e.to_string().contains("is being accessed by other users")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The migrated template's name, made once per process (and once per server for a given set of
/// migrations).
async fn template() -> String {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    TEMPLATE
        .get_or_try_init(make_template)
        .await
        .unwrap_or_else(|e| panic!("could not make the migrated template database: {e}"))
        .clone()
}

async fn database_exists(admin: &DatabaseConnection, name: &str) -> Result<bool, DbErr> {
    let row = admin
        .query_one_raw(Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT 1 AS one FROM pg_database WHERE datname = '{name}'"),
        ))
        .await?;
    Ok(row.is_some())
}

async fn make_template() -> Result<String, DbErr> {
    let name = format!("{TEMPLATE_PREFIX}{:016x}", migrations_hash());
    // One connection, so the advisory lock and its release are on the same session.
    let admin = connect(&pg_admin_url(), Some(1)).await?;
    if database_exists(&admin, &name).await? {
        admin.close().await?;
        return Ok(name);
    }
    admin
        .execute_unprepared(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
        .await?;
    let made = build_template(&admin, &name).await;
    let unlocked = admin
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
        .await;
    admin.close().await?;
    made?;
    unlocked?;
    Ok(name)
}

/// Migrate `<name>_building`, then rename it to `name`: the template exists only once complete.
/// Runs under the advisory lock.
async fn build_template(admin: &DatabaseConnection, name: &str) -> Result<(), DbErr> {
    // Another process made it while this one waited for the lock.
    if database_exists(admin, name).await? {
        return Ok(());
    }
    let building = format!("{name}_building");
    // Left over by a process that died while migrating.
    admin
        .execute_unprepared(&format!(
            "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
        ))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{building}\""))
        .await?;
    let conn = connect(&pg_url(&building), Some(1)).await?;
    let migrated = Migrator::up(&conn, None).await;
    conn.close().await?;
    migrated?;
    execute_when_free(
        admin,
        &format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\""),
    )
    .await?;
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{name}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
        ))
        .await?;
    // Templates of other migrations (an older checkout's): dropped, unless in use right now.
    let stale = admin
        .query_all_raw(Statement::from_string(
            admin.get_database_backend(),
            format!(
                "SELECT datname FROM pg_database WHERE datname LIKE '{TEMPLATE_PREFIX}%' \
                 AND datname <> '{name}' AND datname NOT LIKE '%\\_building'"
            ),
        ))
        .await?;
    for row in stale {
        let Ok(old) = row.try_get::<String>("", "datname") else {
            continue;
        };
        let _ = admin
            .execute_unprepared(&format!("ALTER DATABASE \"{old}\" WITH IS_TEMPLATE false"))
            .await;
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{old}\""))
            .await;
    }
    Ok(())
}

/// FNV-1a over the migrations' names and the source files of the `migration` crate (when the
/// workspace is at hand), so a changed migration gets a template of its own.
fn migrations_hash() -> u64 {
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    for m in Migrator::migrations() {
        hash.write(m.name().as_bytes());
        hash.write(&[0]);
    }
    let root = crate::env::workspace_dir();
    let mut files = Vec::new();
    source_files(&root.join("migration/src"), &mut files);
    files.sort();
    for file in files {
        // Relative, so every checkout of the same migrations shares the template.
        let relative = file.strip_prefix(&root).unwrap_or(&file);
        hash.write(relative.to_string_lossy().as_bytes());
        hash.write(&[0]);
        hash.write(&std::fs::read(&file).unwrap_or_default());
        hash.write(&[0]);
    }
    hash.0
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

struct Fnv(u64);

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_migrations_hash_is_stable() {
        assert_eq!(migrations_hash(), migrations_hash());
    }
}
