//! `POST /v1/beacon`: a page's scroll depth and time on page, from the browser; `GET
//! /v1/beacon.js`: the snippet that sends it. Both public (a browser holds no token): the view
//! token in the report, signed by the site, is what lets it touch one view
//! ([`tracking::beacon`]).

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tracking::beacon::BeaconReport;

use crate::error::ApiError;
use crate::extract::parse;
use crate::responses as r;
use crate::state::AppState;

/// The snippet, compiled into the binary.
const SCRIPT: &str = include_str!("beacon.js");

/// A beacon is about 100 bytes; anything much larger is not one (413).
const MAX_BEACON_BYTES: usize = 16 * 1024;

/// The beacon routes (no token).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/beacon",
            post(beacon).layer(DefaultBodyLimit::max(MAX_BEACON_BYTES)),
        )
        .route("/v1/beacon.js", get(script))
}

/// Record what the page reported of its view: kept until the view's row is written, where it
/// gives the row's `scroll_depth_percent` and `time_on_page_seconds`. The body is JSON in any
/// content type (`navigator.sendBeacon` sends `text/plain`). A report for a view whose row is
/// already written, or that never comes, leaves its time on page to the next view.
#[utoipa::path(
    post,
    path = "/v1/beacon",
    tag = "tracking",
    request_body(content = BeaconReport, description = "JSON, sent as `text/plain` by `navigator.sendBeacon`; any content type is read as JSON"),
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, response = r::BadRequest),
        (status = 413, response = r::PayloadTooLarge),
        (status = 422, response = r::Unprocessable),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
)]
pub async fn beacon(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let report: BeaconReport = parse(&body?)?;
    let key = state.api.token.as_ref().map(|t| t.expose().as_bytes());
    state.tracker.record_beacon(key, &report).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The beacon snippet (JavaScript, cached for an hour).
#[utoipa::path(
    get,
    path = "/v1/beacon.js",
    tag = "tracking",
    responses((status = 200, description = "The snippet", content_type = "text/javascript", body = String)),
)]
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCRIPT,
    )
}
