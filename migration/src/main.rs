//! `migration`: applies the schema migrations; the Procfile `release` step runs `migration up`.
//!
//! ```text
//! migration [up [-n N] | down [-n N] | status | refresh | reset | fresh] [-u URL] [-s SCHEMA]
//! ```
//!
//! The database is `-u`/`--database-url`, else `DATABASE_URL` (a `.env` file is honoured), else
//! `sqlite://celeriac.db?mode=rwc`. With no subcommand it runs `up`. `fresh` drops every table in
//! the database, so it is refused on a Django database.

use std::process::exit;
use std::time::Duration;

use migration::{DEFAULT_DATABASE_URL, Migrator, SchemaManager, is_django_database};
use sea_orm_migration::cli::run_cli_with_custom_connection;
use sea_orm_migration::sea_orm::{ConnectOptions, Database};

/// How long to wait for a database connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() {
    let _ = dotenvy::dotenv();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `run_cli` would panic when `DATABASE_URL` is unset; resolve the URL here instead, with
    // the same flags and variables it reads, plus our default.
    let url = flag_value(&args, "-u", "--database-url")
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    let schema = flag_value(&args, "-s", "--database-schema")
        .or_else(|| std::env::var("DATABASE_SCHEMA").ok())
        .unwrap_or_else(|| "public".to_owned());
    let wants_fresh = args.iter().any(|arg| arg == "fresh");
    let asks_help = args
        .iter()
        .any(|a| matches!(a.as_str(), "-h" | "--help" | "-V" | "--version" | "help"));
    let mode = std::env::var("DATABASE_POOL_MODE").unwrap_or_default();
    match mode.trim().to_ascii_lowercase().as_str() {
        _ if asks_help => {}
        "" | "session" => {}
        "transaction" => return pooled::run(&args, url, &schema).await,
        _ => fail(&format!(
            "configuration: DATABASE_POOL_MODE={mode:?} is invalid: expected `session` or `transaction`"
        )),
    }

    // Only called for subcommands that need the database (not for `--help`).
    let connect = async move || {
        let options = ConnectOptions::new(url)
            .set_schema_search_path(schema)
            .connect_timeout(CONNECT_TIMEOUT)
            .to_owned();
        let db = match Database::connect(options).await {
            Ok(db) => db,
            Err(err) => fail(&format!("cannot connect to the database: {err}")),
        };
        if is_django_database(&SchemaManager::new(&db)).await? {
            if wants_fresh {
                fail("refusing `fresh` on a Django database: it would drop Django's tables too");
            }
            println!("Django database: accounts_* and communities_* are left to Django");
        }
        Ok(db)
    };
    run_cli_with_custom_connection(Migrator, connect).await;
}

/// `migration` behind a transaction pooler (`DATABASE_POOL_MODE=transaction`, PgBouncer's
/// `pool_mode = transaction`): the pooler may move a client to another server connection after
/// each transaction, so the whole run is one transaction. It starts by clearing statement names
/// other clients left on its server connection, sets the schema for itself only (`SET LOCAL`),
/// and prepares nothing it keeps (sqlx's statement cache is off). `up`, `down` and `status` only:
/// the others are for development databases, reached directly.
mod pooled {
    use sea_orm_migration::MigratorTrait;
    use sea_orm_migration::sea_orm::{ConnectOptions, ConnectionTrait, Database, TransactionTrait};

    use super::{CONNECT_TIMEOUT, Migrator, SchemaManager, fail, flag_value, is_django_database};

    pub(super) async fn run(args: &[String], url: String, schema: &str) {
        let command = args
            .iter()
            .find(|a| !a.starts_with('-') && !is_flag_value(args, a))
            .map_or("up", String::as_str);
        let wants_steps = args.iter().any(|a| {
            a == "-n"
                || a == "--num"
                || a.starts_with("--num=")
                || (a.starts_with("-n") && a.len() > 2)
        });
        let steps = match flag_value(args, "-n", "--num").map(|n| n.parse::<u32>()) {
            None if wants_steps => fail("-n takes a number of migrations"),
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => fail("-n takes a number of migrations"),
        };
        if !matches!(command, "up" | "down" | "status") {
            fail(&format!(
                "`{command}` is not run through a transaction pooler (DATABASE_POOL_MODE=transaction); \
                 run it against PostgreSQL directly"
            ));
        }
        let mut options = ConnectOptions::new(url);
        options
            .connect_timeout(CONNECT_TIMEOUT)
            .max_connections(1)
            .map_sqlx_postgres_opts(|o| o.statement_cache_capacity(0));
        let db = match Database::connect(options).await {
            Ok(db) => db,
            Err(err) => fail(&format!("cannot connect to the database: {err}")),
        };
        if let Err(err) = migrate(&db, command, steps, schema).await {
            fail(&format!("{command} failed, nothing was changed: {err}"));
        }
    }

    async fn migrate(
        db: &sea_orm_migration::sea_orm::DatabaseConnection,
        command: &str,
        steps: Option<u32>,
        schema: &str,
    ) -> Result<(), sea_orm_migration::sea_orm::DbErr> {
        let txn = db.begin().await?;
        txn.execute_unprepared(&format!(
            "DEALLOCATE ALL; SET LOCAL search_path = {}",
            search_path(schema)
        ))
        .await?;
        if is_django_database(&SchemaManager::new(&txn)).await? {
            println!("Django database: accounts_* and communities_* are left to Django");
        }
        match command {
            "down" => Migrator::down(&txn, Some(steps.unwrap_or(1))).await?,
            "status" => {
                for m in Migrator::get_migration_with_status(&txn).await? {
                    println!("{}: {}", m.name(), m.status());
                }
            }
            _ => Migrator::up(&txn, steps).await?,
        }
        txn.commit().await?;
        if command != "status" {
            println!(
                "migration {command}: done in one transaction (DATABASE_POOL_MODE=transaction)"
            );
        }
        Ok(())
    }

    /// `-s`/`DATABASE_SCHEMA` (comma-separated schemas, as SeaORM's `set_schema_search_path`
    /// takes it) as an SQL list: each name quoted, with quotes it already had removed and any
    /// quote inside doubled, so no value can end the statement.
    fn search_path(schema: &str) -> String {
        schema
            .split(',')
            .map(|s| {
                let s = s.trim();
                let bare = s
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .unwrap_or(s);
                format!("\"{}\"", bare.replace('"', "\"\""))
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether `arg` is the value of a flag that takes one (`-u URL`, `-s SCHEMA`, `-n N`).
    fn is_flag_value(args: &[String], arg: &String) -> bool {
        args.windows(2).any(|w| {
            std::ptr::eq(&w[1], arg)
                && matches!(
                    w[0].as_str(),
                    "-u" | "--database-url" | "-s" | "--database-schema" | "-n" | "--num"
                )
        })
    }
}

/// Prints a one-line error and exits with status 1.
fn fail(message: &str) -> ! {
    eprintln!("migration: {message}");
    exit(1)
}

/// The value of a `-x VALUE`, `-xVALUE`, `--long VALUE` or `--long=VALUE` flag, as clap parses it.
fn flag_value(args: &[String], short: &str, long: &str) -> Option<String> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == short || arg == long {
            return iter.next().cloned();
        }
        if let Some(value) = arg
            .strip_prefix(&format!("{long}="))
            .or_else(|| arg.strip_prefix(short).filter(|v| !v.is_empty()))
        {
            return Some(value.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::flag_value;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn flag_value_reads_every_spelling_clap_accepts() {
        let url = Some("sqlite::memory:".to_owned());
        for list in [
            &["up", "-u", "sqlite::memory:"][..],
            &["-usqlite::memory:", "up"],
            &["--database-url", "sqlite::memory:", "down"],
            &["status", "--database-url=sqlite::memory:"],
        ] {
            assert_eq!(flag_value(&args(list), "-u", "--database-url"), url);
        }
    }

    #[test]
    fn flag_value_is_none_when_the_flag_is_absent() {
        assert_eq!(
            flag_value(&args(&["up", "-n", "1", "-v"]), "-u", "--database-url"),
            None
        );
    }
}
