//! `POST /v1/sessions` (login) and `DELETE /v1/sessions/{session_id}` (logout).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json as JsonResponse, Router};
use tracking::sessions::{LoggedIn, Login};

use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::responses as r;
use crate::state::AppState;

/// The session routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions", post(login))
        .route("/v1/sessions/{session_id}", delete(logout))
}

/// Log a user in: a session row, its Redis document and the enhance job.
#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "sessions",
    request_body = Login,
    responses(
        (status = 201, description = "Logged in", body = LoggedIn, links(
            ("Logout" = (operation_id = "logout", parameters(
                ("session_id" = "$response.body#/session_id"),
            ))),
        )),
        (status = 400, response = r::BadRequest),
        (status = 401, response = r::Unauthorized),
        (status = 409, response = r::Conflict),
        (status = 413, response = r::PayloadTooLarge),
        (status = 415, response = r::UnsupportedMediaType),
        (status = 422, response = r::Unprocessable),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn login(
    State(state): State<AppState>,
    Json(body): Json<Login>,
) -> Result<(StatusCode, JsonResponse<LoggedIn>), ApiError> {
    let session = state.tracker.login(body).await?;
    Ok((StatusCode::CREATED, JsonResponse(session)))
}

/// Log a session out. Repeating it is harmless; an unknown session is 404.
#[utoipa::path(
    delete,
    path = "/v1/sessions/{session_id}",
    tag = "sessions",
    params(("session_id" = String, Path, description = "The id `POST /v1/sessions` returned")),
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, response = r::BadRequest),
        (status = 401, response = r::Unauthorized),
        (status = 404, response = r::NotFound),
        (status = 422, response = r::Unprocessable),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn logout(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.tracker.logout(&session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
