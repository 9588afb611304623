//! `POST /v1/track/pageview`: one call per page view from the web tier.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use tracking::pageview::{PageView, Tracked};

use crate::error::ApiError;
use crate::extract::Json;
use crate::responses as r;
use crate::state::AppState;

/// The tracking route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/track/pageview", post(pageview))
}

/// Track one page view: the anonymous or authenticated session, analytics counters, community
/// presence, and the jobs that persist them.
#[utoipa::path(
    post,
    path = "/v1/track/pageview",
    tag = "tracking",
    request_body = PageView,
    responses(
        (status = 202, description = "Tracked", body = Tracked, links(
            ("Erase" = (operation_id = "erase", parameters(
                ("fingerprint" = "$request.body#/fingerprint"),
            ))),
        )),
        (status = 400, response = r::BadRequest),
        (status = 401, response = r::Unauthorized),
        (status = 404, response = r::NotFound),
        (status = 413, response = r::PayloadTooLarge),
        (status = 415, response = r::UnsupportedMediaType),
        (status = 422, response = r::Unprocessable),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn pageview(
    State(state): State<AppState>,
    Json(view): Json<PageView>,
) -> Result<(StatusCode, JsonResponse<Tracked>), ApiError> {
    let tracked = state.tracker.track_pageview(view).await?;
    Ok((StatusCode::ACCEPTED, JsonResponse(tracked)))
}
