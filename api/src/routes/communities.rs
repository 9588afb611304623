//! `GET /v1/communities/{id}/visitors`: who is viewing a community now (last 5 minutes).

use axum::extract::State;
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use tracking::community::VisitorStats;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Path;

/// The community visitor route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/communities/{id}/visitors", get(visitors))
}

async fn visitors(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<JsonResponse<VisitorStats>, ApiError> {
    Ok(JsonResponse(state.tracker.community_visitors(id).await?))
}
