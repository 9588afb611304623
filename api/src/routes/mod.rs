//! HTTP routes, one module per resource; each exposes `router()` with its full paths.
//!
//! [`v1`] gathers the authenticated `/v1` resources; add a resource by writing
//! `routes/<resource>.rs` with a `router()` and merging it there.

use axum::Router;

use crate::state::AppState;

pub mod analytics;
pub mod anonymous;
pub mod beacon;
pub mod communities;
pub mod events;
pub mod health;
pub mod history;
pub mod jobs;
pub mod metrics;
pub mod queue_jobs;
pub mod queues;
pub mod schedules;
pub mod sessions;
pub mod track;
pub mod workers;

/// Every `/v1` route (the caller adds authentication).
pub fn v1() -> Router<AppState> {
    Router::new()
        .merge(jobs::router())
        .merge(queues::router())
        .merge(queue_jobs::router())
        .merge(schedules::router())
        .merge(workers::router())
        .merge(history::router())
        .merge(track::router())
        .merge(sessions::router())
        .merge(events::router())
        .merge(communities::router())
        .merge(analytics::router())
        .merge(anonymous::router())
}

/// The unauthenticated operational routes: `/healthz`, `/readyz`, `/metrics` (and, from the
/// router, `/openapi.json`, which documents these routes).
pub fn ops() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
}
