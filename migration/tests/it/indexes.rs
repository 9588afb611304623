//! Indexes whose shape matters for the write path: the conversion index holds only converted
//! sessions, and still serves a lookup by user.

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement, TransactionTrait,
};

use testkit::TestDb;

const CONVERSION_INDEX: &str = "analytics_anonymoussession_converted_to_user_id_idx";

crate::on_both_backends!(
    postgres_the_conversion_index_holds_only_converted_sessions,
    sqlite_the_conversion_index_holds_only_converted_sessions,
    conversion_index_is_partial
);

/// The index's definition as the catalogue holds it.
async fn definition(db: &DatabaseConnection, index: &str) -> Result<String, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            "SELECT indexdef AS d FROM pg_indexes WHERE schemaname = current_schema() \
             AND indexname = $1"
        }
        _ => "SELECT sql AS d FROM sqlite_master WHERE type = 'index' AND name = $1",
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [index.into()]))
        .await?
        .ok_or_else(|| DbErr::Custom(format!("no index {index}")))?;
    row.try_get("", "d")
}

/// How the database would find a user's converted sessions (sequential scans discouraged, so
/// any usable index shows).
async fn plan_by_user(db: &DatabaseConnection) -> Result<String, DbErr> {
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    let explain = match backend {
        DatabaseBackend::Postgres => {
            txn.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await?;
            "EXPLAIN SELECT id FROM analytics_anonymoussession WHERE converted_to_user_id = $1"
        }
        _ => {
            "EXPLAIN QUERY PLAN SELECT id FROM analytics_anonymoussession \
             WHERE converted_to_user_id = $1"
        }
    };
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            explain,
            [uuid::Uuid::nil().into()],
        ))
        .await?;
    txn.rollback().await?;
    let mut plan = String::new();
    for row in rows {
        let line: String = match backend {
            DatabaseBackend::Postgres => row.try_get("", "QUERY PLAN")?,
            _ => row.try_get("", "detail")?,
        };
        plan.push_str(&line);
        plan.push('\n');
    }
    Ok(plan)
}

async fn conversion_index_is_partial(test_db: &TestDb) -> Result<(), DbErr> {
    let db = &test_db.conn;
    Migrator::up(db, None).await?;
    let partial = definition(db, CONVERSION_INDEX).await?;
    assert!(
        partial.contains("WHERE") && partial.contains("IS NOT NULL"),
        "the index leaves unconverted sessions out: {partial}"
    );
    let plan = plan_by_user(db).await?;
    assert!(
        plan.contains(CONVERSION_INDEX),
        "a lookup by user uses the partial index: {plan}"
    );

    Migrator::down(db, Some(1)).await?;
    let full = definition(db, CONVERSION_INDEX).await?;
    assert!(
        !full.contains("WHERE"),
        "down restores the full index: {full}"
    );

    Migrator::up(db, None).await?;
    assert!(definition(db, CONVERSION_INDEX).await?.contains("WHERE"));
    Ok(())
}
