//! Integration tests of the migrations and entities against real PostgreSQL and SQLite.
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test creates and drops its own database.

mod binary;
mod django;
mod indexes;
mod support;
mod up_down;
mod upserts;
