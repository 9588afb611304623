//! SeaORM entities for the Django-compatible tracking tables (see `migration` for the schema).
//!
//! Table and column names follow Django (`<app>_<model>`, snake_case, `<field>_id` foreign
//! keys), so the Django site can read what the fleet writes. Timestamps are
//! [`DateTimeUtc`](sea_orm::prelude::DateTimeUtc) (`timestamptz` on PostgreSQL, RFC 3339 text on
//! SQLite), JSON fields are [`Json`](sea_orm::prelude::Json) (`jsonb` / JSON text) and IP
//! addresses are `String`s stored in PostgreSQL `inet` columns (see [`inet`]).

pub mod anonymous_page_view;
pub mod anonymous_session;
pub mod community;
pub mod inet;
pub mod page_analytics;
pub mod page_view_log;
pub mod prelude;
pub mod user_event;
pub mod user_profile;
pub mod user_session;
