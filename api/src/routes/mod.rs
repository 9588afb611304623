//! HTTP routes, one module per resource; each exposes `router()` with its full paths.
//!
//! [`v1`] gathers the authenticated `/v1` resources; add a resource by writing
//! `routes/<resource>.rs` with a `router()` and merging it there.

use axum::Router;

use crate::app::AppState;

pub mod health;
pub mod jobs;
pub mod metrics;
pub mod queues;

/// Every `/v1` route (the caller adds authentication).
pub fn v1() -> Router<AppState> {
    Router::new().merge(jobs::router()).merge(queues::router())
}

/// The unauthenticated operational routes: `/healthz`, `/readyz`, `/metrics`.
pub fn ops() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
}
