//! `GET /v1/communities/{id}/visitors`: who is viewing a community now (last 5 minutes).

use axum::extract::State;
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use tracking::community::VisitorStats;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::Path;
use crate::responses as r;
use crate::state::AppState;

/// The community visitor route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/communities/{id}/visitors", get(visitors))
}

/// Visitors of a community seen in the last 5 minutes, signed in and anonymous.
#[utoipa::path(
    get,
    path = "/v1/communities/{id}/visitors",
    tag = "tracking",
    params(("id" = Uuid, Path, description = "The community id")),
    responses(
        (status = 200, description = "Current visitors", body = VisitorStats),
        (status = 400, response = r::BadRequest),
        (status = 401, response = r::Unauthorized),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn visitors(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<JsonResponse<VisitorStats>, ApiError> {
    Ok(JsonResponse(state.tracker.community_visitors(id).await?))
}
