//! `GET /v1/workers`: every live worker and scheduler process, as it last announced itself
//! (`domain::workers`): host, pid, version, start, queues, concurrency, jobs in flight, processed
//! and failed counts. A process that stops heartbeating disappears within 30 s.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use domain::workers::{self, WorkerInfo};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::responses as r;
use crate::state::AppState;

/// The workers routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/workers", get(list))
}

/// `GET /v1/workers` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerList {
    /// Live processes, oldest start first.
    pub workers: Vec<WorkerInfo>,
}

/// Every live worker and scheduler process.
#[utoipa::path(
    get,
    path = "/v1/workers",
    tag = "queues",
    responses(
        (status = 200, description = "Live processes", body = WorkerList),
        (status = 401, response = r::Unauthorized),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<WorkerList>, ApiError> {
    let workers = workers::live(&mut state.redis.clone(), &state.settings.namespace)
        .await
        .map_err(queue::QueueError::from)?;
    Ok(Json(WorkerList { workers }))
}
