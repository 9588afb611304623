//! The index on `analytics_anonymoussession.converted_to_user_id` holds only converted sessions.
//!
//! Most anonymous sessions never convert: their NULL went into the index with every new row
//! (one of five index inserts per row) and served no query. A partial index serves every lookup
//! by user (`converted_to_user_id = $1`, the foreign key's `ON DELETE SET NULL`, counts of
//! conversions) and costs a new row nothing.
//!
//! On PostgreSQL the new index is built first, under a temporary name, then takes the old one's
//! place: the build blocks writes to the table (not reads) while it scans the table, and the
//! table is locked whole only for the swap at the end. On a large table run it when writes may
//! wait (jobs that time out are retried). A database without the old index (or with it under
//! another name) gets the new one beside whatever it has.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

/// See the module documentation.
#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "analytics_anonymoussession_converted_to_user_id_idx";
const BUILDING: &str = "analytics_anonymoussession_converted_to_user_id_new";
const TABLE: &str = "analytics_anonymoussession";

/// Replace the index with one on `converted_to_user_id`, restricted to `condition` when given.
async fn rebuild(manager: &SchemaManager<'_>, condition: Option<&str>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let partial = condition.map_or(String::new(), |c| format!(" WHERE {c}"));
    let create =
        |name: &str| format!("CREATE INDEX {name} ON {TABLE} (converted_to_user_id){partial}");
    if db.get_database_backend() == DatabaseBackend::Postgres {
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {BUILDING}"))
            .await?;
        db.execute_unprepared(&create(BUILDING)).await?;
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {INDEX}"))
            .await?;
        db.execute_unprepared(&format!("ALTER INDEX {BUILDING} RENAME TO {INDEX}"))
            .await?;
        return Ok(());
    }
    // SQLite locks the whole database for any write, and cannot rename an index.
    db.execute_unprepared(&format!("DROP INDEX IF EXISTS {INDEX}"))
        .await?;
    db.execute_unprepared(&create(INDEX)).await?;
    Ok(())
}

#[async_trait::async_trait]
#[expect(
    elided_lifetimes_in_paths,
    reason = "async_trait needs the trait's exact signature, `&SchemaManager`"
)]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, Some("converted_to_user_id IS NOT NULL")).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, None).await
    }
}
