//! `POST /v1/sessions` (login) and `DELETE /v1/sessions/{session_id}` (logout).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json as JsonResponse, Router};
use tracking::sessions::{LoggedIn, Login};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Json, Path};

/// The session routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions", post(login))
        .route("/v1/sessions/{session_id}", delete(logout))
}

async fn login(
    State(state): State<AppState>,
    Json(body): Json<Login>,
) -> Result<(StatusCode, JsonResponse<LoggedIn>), ApiError> {
    let session = state.tracker.login(body).await?;
    Ok((StatusCode::CREATED, JsonResponse(session)))
}

async fn logout(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.tracker.logout(&session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
