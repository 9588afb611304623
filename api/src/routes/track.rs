//! `POST /v1/track/pageview`: one call per page view from the web tier.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use tracking::pageview::{PageView, Tracked};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Json;

/// The tracking route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/track/pageview", post(pageview))
}

async fn pageview(
    State(state): State<AppState>,
    Json(view): Json<PageView>,
) -> Result<(StatusCode, JsonResponse<Tracked>), ApiError> {
    let tracked = state.tracker.track_pageview(view).await?;
    Ok((StatusCode::ACCEPTED, JsonResponse(tracked)))
}
