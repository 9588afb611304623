//! `GET /v1/queues`: counts for every registered job's queue.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use celeriac_queue::QueueStats;
use serde::Serialize;

use crate::app::AppState;
use crate::error::ApiError;

/// The queues routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/queues", get(list))
}

/// `GET /v1/queues` response.
#[derive(Debug, Serialize)]
pub struct QueueList {
    /// One entry per registered job, in registry order.
    pub queues: Vec<QueueEntry>,
}

/// One queue's counts.
#[derive(Debug, Serialize)]
pub struct QueueEntry {
    /// The job (and queue) name.
    pub name: String,
    /// Its counts, flattened beside the name.
    #[serde(flatten)]
    pub stats: QueueStats,
}

/// Read every queue's stats concurrently (the connection pipelines them).
async fn list(State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    let reads = state.queues.all().map(|q| async move {
        q.stats().await.map(|stats| QueueEntry {
            name: q.name().to_owned(),
            stats,
        })
    });
    let queues = futures::future::try_join_all(reads).await?;
    Ok(Json(QueueList { queues }))
}
