//! `GET /v1/analytics/conversions`, `/top-pages`, `/session-durations` (`?days=30&limit=10`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use tracking::analytics::{Conversions, Period, SessionDurations, TopPages};

use crate::error::ApiError;
use crate::responses as r;
use crate::state::AppState;

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

/// Which anonymous visitors sign up, over the last `days` days (bots excluded).
#[utoipa::path(
    get,
    path = "/v1/analytics/conversions",
    tag = "analytics",
    params(Period),
    responses(
        (status = 200, description = "Conversions in the period", body = Conversions),
        (status = 401, response = r::Unauthorized),
        (status = 422, response = r::Unprocessable),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn conversions(
    State(state): State<AppState>,
    q: Result<Query<Period>, QueryRejection>,
) -> Result<JsonResponse<Conversions>, ApiError> {
    Ok(JsonResponse(state.tracker.conversions(period(q)?).await?))
}

/// The most viewed pages over the last `days` days.
#[utoipa::path(
    get,
    path = "/v1/analytics/top-pages",
    tag = "analytics",
    params(Period),
    responses(
        (status = 200, description = "The most viewed pages", body = TopPages),
        (status = 401, response = r::Unauthorized),
        (status = 422, response = r::Unprocessable),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn top_pages(
    State(state): State<AppState>,
    q: Result<Query<Period>, QueryRejection>,
) -> Result<JsonResponse<TopPages>, ApiError> {
    Ok(JsonResponse(state.tracker.top_pages(period(q)?).await?))
}

/// How long signed-in and anonymous sessions last, over the last `days` days.
#[utoipa::path(
    get,
    path = "/v1/analytics/session-durations",
    tag = "analytics",
    params(Period),
    responses(
        (status = 200, description = "Mean session lengths", body = SessionDurations),
        (status = 401, response = r::Unauthorized),
        (status = 422, response = r::Unprocessable),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn durations(
    State(state): State<AppState>,
    q: Result<Query<Period>, QueryRejection>,
) -> Result<JsonResponse<SessionDurations>, ApiError> {
    Ok(JsonResponse(
        state.tracker.session_durations(period(q)?).await?,
    ))
}
