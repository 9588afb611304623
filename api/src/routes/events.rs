//! `POST /v1/events` (authenticated users' events) and `POST /v1/conversions` (sign-ups).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use serde_json::{Value, json};
use tracking::events::{Conversion, EventRecorded, NewEvent};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Json;

/// The event and conversion routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(event))
        .route("/v1/conversions", post(conversion))
}

async fn event(
    State(state): State<AppState>,
    Json(body): Json<NewEvent>,
) -> Result<(StatusCode, JsonResponse<EventRecorded>), ApiError> {
    let recorded = state.tracker.record_event(body).await?;
    Ok((StatusCode::CREATED, JsonResponse(recorded)))
}

async fn conversion(
    State(state): State<AppState>,
    Json(body): Json<Conversion>,
) -> Result<(StatusCode, JsonResponse<Value>), ApiError> {
    let job_id = state.tracker.convert(body).await?;
    Ok((
        StatusCode::ACCEPTED,
        JsonResponse(json!({ "job_id": job_id })),
    ))
}
