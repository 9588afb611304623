//! Schema migrations for the tracking tables, for PostgreSQL and SQLite.
//!
//! Run them with the `migration` binary (`migration up`, `down`, `status`, ...), never from
//! application start-up. Column types follow Django: `inet` and `jsonb` on PostgreSQL, `text`
//! and JSON text on SQLite (see [`ddl`]).

pub use sea_orm_migration::prelude::*;

pub mod ddl;
mod m20261126_152600_create_accounts_tables;
mod m20261126_152601_create_analytics_tables;
mod m20261202_120000_view_number;
mod m20261203_120000_location_and_scroll;
mod m20261204_120000_partial_conversion_index;

/// Database used when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://celeriac.db?mode=rwc";

/// Django's own migration table; its presence means Django manages this database.
const DJANGO_MIGRATIONS: &str = "django_migrations";

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_152600_create_accounts_tables::Migration),
            Box::new(m20261126_152601_create_analytics_tables::Migration),
            Box::new(m20261202_120000_view_number::Migration),
            Box::new(m20261203_120000_location_and_scroll::Migration),
            Box::new(m20261204_120000_partial_conversion_index::Migration),
        ]
    }
}

/// Whether Django manages this database, i.e. its `django_migrations` table exists.
///
/// The `accounts_*` and `communities_*` tables belong to Django there, so the migrations neither
/// create nor drop them, and the `migration` binary refuses `fresh` (which drops every table).
///
/// # Errors
///
/// Fails when the catalogue cannot be queried.
pub async fn is_django_database(manager: &SchemaManager<'_>) -> Result<bool, DbErr> {
    manager.has_table(DJANGO_MIGRATIONS).await
}
