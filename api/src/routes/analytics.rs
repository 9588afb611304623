//! `GET /v1/analytics/conversions`, `/top-pages`, `/session-durations` (`?days=30&limit=10`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use tracking::analytics::{Conversions, Period, SessionDurations, TopPages};

use crate::app::AppState;
use crate::error::ApiError;

/// The analytics routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/analytics/conversions", get(conversions))
        .route("/v1/analytics/top-pages", get(top_pages))
        .route("/v1/analytics/session-durations", get(durations))
}

fn period(q: Result<Query<Period>, QueryRejection>) -> Result<Period, ApiError> {
    q.map(|Query(p)| p).map_err(|e| {
        let text = e.body_text();
        let field = if text.contains("limit") {
            "limit"
        } else {
            "days"
        };
        ApiError::invalid_argument(field, text)
    })
}

async fn conversions(
    State(state): State<AppState>,
    q: Result<Query<Period>, QueryRejection>,
) -> Result<JsonResponse<Conversions>, ApiError> {
    Ok(JsonResponse(state.tracker.conversions(period(q)?).await?))
}

async fn top_pages(
    State(state): State<AppState>,
    q: Result<Query<Period>, QueryRejection>,
) -> Result<JsonResponse<TopPages>, ApiError> {
    Ok(JsonResponse(state.tracker.top_pages(period(q)?).await?))
}

async fn durations(
    State(state): State<AppState>,
    q: Result<Query<Period>, QueryRejection>,
) -> Result<JsonResponse<SessionDurations>, ApiError> {
    Ok(JsonResponse(
        state.tracker.session_durations(period(q)?).await?,
    ))
}
