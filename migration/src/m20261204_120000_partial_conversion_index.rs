//! The index on `analytics_anonymoussession.converted_to_user_id` holds only converted sessions.
//!
//! Most anonymous sessions never convert: their NULL went into the index with every new row
//! (one of five index inserts per row) and served no query. A partial index serves every lookup
//! by user (`converted_to_user_id = $1`, the foreign key's `ON DELETE SET NULL`, counts of
//! conversions) and costs a new row nothing. Both backends read the same statement.

use sea_orm_migration::prelude::*;

/// See the module documentation.
#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "analytics_anonymoussession_converted_to_user_id_idx";
const TABLE: &str = "analytics_anonymoussession";

/// Replace the index with one on `converted_to_user_id`, restricted to `condition` when given.
async fn rebuild(manager: &SchemaManager<'_>, condition: Option<&str>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared(&format!("DROP INDEX IF EXISTS {INDEX}"))
        .await?;
    let partial = condition.map_or(String::new(), |c| format!(" WHERE {c}"));
    db.execute_unprepared(&format!(
        "CREATE INDEX {INDEX} ON {TABLE} (converted_to_user_id){partial}"
    ))
    .await?;
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
