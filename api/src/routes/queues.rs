//! `GET /v1/queues`: counts for every registered job's queue.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use queue::QueueStats;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::responses as r;
use crate::state::AppState;

/// The queues routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/queues", get(list))
}

/// `GET /v1/queues` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    /// One entry per registered job, in registry order.
    pub queues: Vec<QueueEntry>,
}

/// One queue's counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueEntry {
    /// The job (and queue) name.
    pub name: String,
    /// Ready to run now.
    pub queued: u64,
    /// Waiting for a future time (delays and retry backoff).
    pub scheduled: u64,
    /// Leased by a worker.
    pub running: u64,
    /// Finished and still retained.
    pub done: u64,
    /// Failed for good and still retained.
    pub dead: u64,
    /// How long the oldest ready job has waited, in seconds (0 when none waits).
    #[schema(minimum = 0)]
    pub oldest_waiting_seconds: f64,
}

impl QueueEntry {
    /// The entry of queue `name`.
    pub fn new(name: &str, s: QueueStats) -> Self {
        Self {
            name: name.to_owned(),
            queued: s.queued,
            scheduled: s.scheduled,
            running: s.running,
            done: s.done,
            dead: s.dead,
            oldest_waiting_seconds: s.oldest_waiting_seconds,
        }
    }
}

/// Every registered job's queue counts, read concurrently (the connection pipelines them).
#[utoipa::path(
    get,
    path = "/v1/queues",
    tag = "queues",
    responses(
        (status = 200, description = "One entry per registered job", body = QueueList),
        (status = 401, response = r::Unauthorized),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    let reads = state.queues.all().map(|q| async move {
        q.stats()
            .await
            .map(|stats| QueueEntry::new(q.name(), stats))
    });
    let queues = futures::future::try_join_all(reads).await?;
    Ok(Json(QueueList { queues }))
}
