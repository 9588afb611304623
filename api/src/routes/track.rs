//! `POST /v1/track/pageview`: one call per page view from the web tier; `POST
//! /v1/track/pageviews`: a batch of them (the Django package's sender), each tracked or refused on
//! its own.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use tracking::pageview::{PageView, Tracked};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::responses as r;
use crate::state::AppState;

/// The tracking route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/track/pageview", post(pageview))
        .route("/v1/track/pageviews", post(pageviews))
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

/// One page view of a batch, as `POST /v1/track/pageview` takes it (the `PageView` schema). The
/// request only needs objects: each is read as a `PageView` on its own, and one that does not fit
/// is refused in its result.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(value_type = Object)]
pub struct BatchView(serde_json::Map<String, serde_json::Value>);

/// The most views one batch may hold.
pub const MAX_BATCH: usize = 500;

/// Views of one batch tracked at once (anonymous ones still share script runs).
const IN_FLIGHT: usize = 64;

/// What became of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchTracked {
    /// Views tracked.
    pub accepted: usize,
    /// Views refused.
    pub refused: usize,
    /// One result per view, in the order sent.
    pub results: Vec<ViewResult>,
}

/// One view's result: `status` 202 with `tracked`, or the status and error the single route
/// would have answered for it (a 503 is worth sending again; a 4xx is not).
#[derive(Debug, Serialize, ToSchema)]
pub struct ViewResult {
    /// The HTTP status this view alone would have had.
    pub status: u16,
    /// What the view changed (202).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    pub tracked: Option<Tracked>,
    /// Why it was refused; `field` is `[index].name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    pub error: Option<ErrorBody>,
}

/// Track up to 500 page views in one call, each on its own: a bad or failed view is refused with
/// its own status and error while the others are tracked. Anonymous views share the batched
/// script runs the single route uses, so a view costs no more than through `POST
/// /v1/track/pageview`.
#[utoipa::path(
    post,
    path = "/v1/track/pageviews",
    tag = "tracking",
    request_body(
        content = Vec<BatchView>,
        description = "1 to 500 page views, each a `PageView` object; each is checked on its own",
    ),
    responses(
        (status = 200, description = "Each view tracked or refused", body = BatchTracked),
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
pub async fn pageviews(
    State(state): State<AppState>,
    Json(views): Json<Vec<BatchView>>,
) -> Result<JsonResponse<BatchTracked>, ApiError> {
    if views.is_empty() || views.len() > MAX_BATCH {
        return Err(ApiError::invalid_argument(
            "",
            format!("must hold 1 to {MAX_BATCH} page views"),
        ));
    }
    let tracker = &state.tracker;
    // At most `IN_FLIGHT` views at once, results in the order sent: a signed-in view holds a
    // database connection, and a 500-view batch must not take the whole pool from other requests.
    let results: Vec<ViewResult> =
        stream::iter(views.into_iter().enumerate().map(|(i, view)| async move {
            let tracked =
                match crate::extract::from_value::<PageView>(serde_json::Value::Object(view.0)) {
                    Ok(view) => tracker.track_pageview(view).await.map_err(ApiError::from),
                    Err(e) => Err(e),
                };
            match tracked {
                Ok(tracked) => ViewResult {
                    status: StatusCode::ACCEPTED.as_u16(),
                    tracked: Some(tracked),
                    error: None,
                },
                Err(e) => ViewResult {
                    status: e.status.as_u16(),
                    tracked: None,
                    error: Some(ErrorBody {
                        code: e.code,
                        message: e.message,
                        field: e.field.map(|f| {
                            if f.is_empty() {
                                format!("[{i}]")
                            } else {
                                format!("[{i}].{f}")
                            }
                        }),
                    }),
                },
            }
        }))
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let accepted = results.iter().filter(|r| r.tracked.is_some()).count();
    Ok(JsonResponse(BatchTracked {
        accepted,
        refused: results.len() - accepted,
        results,
    }))
}
