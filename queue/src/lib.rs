//! Celeriac's Redis queue: reliable, bounded, cluster-ready job storage with an apalis 1.0 backend.
//!
//! The client ([`Queue`]) is all a producer needs; the apalis backend (module `backend`) is
//! compiled only with the cargo feature `backend`, which worker processes turn on.
//!
//! Every key of a queue carries the queue's hash tag (`{ns}:{queue}:…` with the queue name in
//! braces), every operation is one Lua script over those keys, and a job never leaves Redis between
//! push and acknowledgement. `docs/queue.md` at the workspace root documents the layout.

#[cfg(feature = "backend")]
pub mod backend;
pub mod backoff;
mod client;
mod error;
pub mod id;
mod keys;
mod preflight;
mod rate;
mod scripts;
mod version;

pub use client::{
    Ack, AckReport, Fetched, FetchedJob, JobInfo, JobPage, JobStatus, ListState, MAX_PAGE,
    MAX_RETRY_SCAN, NewJob, Pushed, Queue, QueueConfig, QueueStats, Renewed, Revoked, When,
};
pub use error::QueueError;
pub use keys::Keys;
pub use preflight::{check_redis_info, require_redis_version};
pub use rate::{RateLimit, RateLimitError};
pub use scripts::{all_scripts, push_lib};
pub use version::{MIN_REDIS_VERSION, RedisVersion, info_field};
