//! `DELETE /v1/anonymous/{fingerprint}`: erase every trace of an anonymous visitor.

use axum::extract::State;
use axum::routing::delete;
use axum::{Json as JsonResponse, Router};
use tracking::erase::Erased;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Path;

/// The erasure route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/anonymous/{fingerprint}", delete(erase))
}

async fn erase(
    State(state): State<AppState>,
    Path(fingerprint): Path<String>,
) -> Result<JsonResponse<Erased>, ApiError> {
    Ok(JsonResponse(
        state.tracker.erase_anonymous(&fingerprint).await?,
    ))
}
