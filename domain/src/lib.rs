//! Celeriac's domain: what the API, the tracking path and the worker share, with nothing of the
//! worker's run loop or the apalis backend. Job arguments and the registry (`args`, `jobs`,
//! `registry`), the Redis hot-data layout (`keys`, `documents`), the shared settings (`config`),
//! the database handle (`db`), producer queue handles (`queues`), what the scheduler publishes (`schedules`), the shape of
//! the Django-owned tables (`schema`), SQL helpers (`sql`), the domain rules (`user_agent`) and
//! process plumbing (`process`).

pub mod args;
pub mod config;
pub mod conn;
pub mod db;
pub mod documents;
pub mod jobs;
pub mod keys;
pub mod process;
pub mod queues;
pub mod registry;
pub mod schedules;
pub mod schema;
pub mod sql;
pub mod user_agent;
pub mod workers;
