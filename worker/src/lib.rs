//! Celeriac's worker side: the jobs' work, the consumer process, the scheduler, the Celery bridge
//! and the operator CLI (`admin`). What it shares with the API (job arguments, the registry, the Redis
//! layout, settings, queue handles) is in the `domain` crate.

pub mod admin;
pub mod celery;
pub mod context;
pub mod geo;
pub mod jobs;
pub mod probe;
pub mod run;
pub mod scheduler;
pub mod store;
