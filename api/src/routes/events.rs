//! `POST /v1/events` (authenticated users' events) and `POST /v1/conversions` (sign-ups).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use serde::Serialize;
use tracking::events::{Conversion, EventRecorded, NewEvent};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::Json;
use crate::responses as r;
use crate::state::AppState;

/// The event and conversion routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(event))
        .route("/v1/conversions", post(conversion))
}

/// `202` answer to a conversion.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversionQueued {
    /// The `link_anonymous_conversion` job's id.
    pub job_id: String,
}

/// Record an authenticated user's event (anonymous visitors' events are refused).
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    request_body = NewEvent,
    responses(
        (status = 201, description = "Recorded", body = EventRecorded),
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
pub async fn event(
    State(state): State<AppState>,
    Json(body): Json<NewEvent>,
) -> Result<(StatusCode, JsonResponse<EventRecorded>), ApiError> {
    let recorded = state.tracker.record_event(body).await?;
    Ok((StatusCode::CREATED, JsonResponse(recorded)))
}

/// Link a sign-up to the visitor's anonymous session (enqueues `link_anonymous_conversion`).
#[utoipa::path(
    post,
    path = "/v1/conversions",
    tag = "events",
    request_body = Conversion,
    responses(
        (status = 202, description = "Queued", body = ConversionQueued),
        (status = 400, response = r::BadRequest),
        (status = 401, response = r::Unauthorized),
        (status = 413, response = r::PayloadTooLarge),
        (status = 415, response = r::UnsupportedMediaType),
        (status = 422, response = r::Unprocessable),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn conversion(
    State(state): State<AppState>,
    Json(body): Json<Conversion>,
) -> Result<(StatusCode, JsonResponse<ConversionQueued>), ApiError> {
    let job_id = state.tracker.convert(body).await?;
    Ok((
        StatusCode::ACCEPTED,
        JsonResponse(ConversionQueued { job_id }),
    ))
}
