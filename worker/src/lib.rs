//! Celeriac's worker side: configuration, telemetry, the job registry, the jobs themselves, the
//! consumer process, the scheduler and the operator CLI. The API crate shares the registry,
//! configuration and queue handles from here so producer and consumer never disagree.

pub mod celery;
pub mod config;
pub mod context;
pub mod hot;
pub mod jobs;
pub mod queues;
pub mod registry;
pub mod run;
pub mod scheduler;
pub mod store;
pub mod telemetry;
