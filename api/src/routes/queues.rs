//! `GET /v1/queues`: counts for every registered job's queue; `POST /v1/queues/{name}/pause` and
//! `/resume`: stop and restart workers leasing a queue's jobs (nothing is lost meanwhile).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use queue::QueueStats;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::Path;
use crate::responses as r;
use crate::state::AppState;

/// The queues routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/queues", get(list))
        .route("/v1/queues/{name}/pause", post(pause))
        .route("/v1/queues/{name}/resume", post(resume))
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
    /// Paused: workers lease nothing from it until it is resumed.
    pub paused: bool,
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
            paused: s.paused,
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

/// `POST /v1/queues/{name}/pause` and `/resume` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PauseState {
    /// The queue (job) name.
    pub name: String,
    /// Whether workers are now kept from leasing its jobs.
    pub paused: bool,
}

async fn set_paused(
    state: &AppState,
    name: String,
    paused: bool,
) -> Result<Json<PauseState>, ApiError> {
    let queue = state.queue(&name)?;
    if paused {
        queue.pause().await?;
    } else {
        queue.resume().await?;
    }
    tracing::info!(queue = %name, paused, "queue paused or resumed");
    Ok(Json(PauseState { name, paused }))
}

/// Stop workers leasing this queue's jobs: running jobs finish, new and retried jobs wait in it.
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/pause",
    tag = "queues",
    params(("name" = String, Path, description = "The queue (job) name")),
    responses(
        (status = 200, description = "Paused", body = PauseState),
        (status = 400, response = r::BadRequest),
        (status = 401, response = r::Unauthorized),
        (status = 404, response = r::NotFound),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PauseState>, ApiError> {
    set_paused(&state, name, true).await
}

/// Let workers lease this queue's jobs again (idle workers are woken at once).
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/resume",
    tag = "queues",
    params(("name" = String, Path, description = "The queue (job) name")),
    responses(
        (status = 200, description = "Resumed", body = PauseState),
        (status = 400, response = r::BadRequest),
        (status = 401, response = r::Unauthorized),
        (status = 404, response = r::NotFound),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PauseState>, ApiError> {
    set_paused(&state, name, false).await
}
