//! `DELETE /v1/anonymous/{fingerprint}`: erase every trace of an anonymous visitor.

use axum::extract::State;
use axum::routing::delete;
use axum::{Json as JsonResponse, Router};
use tracking::erase::Erased;

use crate::error::ApiError;
use crate::extract::Path;
use crate::responses as r;
use crate::state::AppState;

/// The erasure route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/anonymous/{fingerprint}", delete(erase))
}

/// Erase every trace of an anonymous visitor, in Redis and in the database.
#[utoipa::path(
    delete,
    path = "/v1/anonymous/{fingerprint}",
    tag = "tracking",
    params(("fingerprint" = String, Path, description = "The visitor's device fingerprint")),
    responses(
        (status = 200, description = "What was removed", body = Erased),
        (status = 400, response = r::BadRequest),
        (status = 401, response = r::Unauthorized),
        (status = 422, response = r::Unprocessable),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn erase(
    State(state): State<AppState>,
    Path(fingerprint): Path<String>,
) -> Result<JsonResponse<Erased>, ApiError> {
    Ok(JsonResponse(
        state.tracker.erase_anonymous(&fingerprint).await?,
    ))
}
