//! The router: every route, the fallbacks and the middleware stack.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::HeaderValue;
use axum::http::Request;
use axum::middleware;
use axum::response::Response;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnRequest, TraceLayer};
use tracing::Level;

use crate::error::ApiError;
use crate::state::AppState;
use crate::{auth, console, openapi, prometheus, routes};

/// The whole application. Layers, outermost first: request id (set, then echoed in the
/// response), a tracing span per request with a line per response (`log_response`), metrics,
/// the body limit; `/v1` routes add auth.
pub fn build(state: AppState) -> Router {
    prometheus::handle();
    let v1 = routes::v1().route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ));
    Router::new()
        .merge(routes::ops())
        .merge(routes::beacon::router())
        .merge(openapi::router())
        .merge(v1)
        .merge(console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.api.max_body_bytes))
        .layer(middleware::from_fn(prometheus::track_http))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                .on_response(log_response)
                // Failures are logged once, where they are handled (see `error`).
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestV4))
        .with_state(state)
}

/// Request ids for requests that come without one: random (v4) UUIDs, drawn from the thread's
/// CSPRNG rather than from the operating system (one system call less per request).
#[derive(Debug, Clone, Copy)]
struct MakeRequestV4;

impl MakeRequestId for MakeRequestV4 {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        HeaderValue::from_str(&id.to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// The span of one request: method, route template and request id; never the raw path (it can
/// hold a fingerprint), headers (the token) or the client address.
fn request_span(req: &Request<Body>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %req.method(), route, request_id)
}

/// The line per response, with the status and the latency in microseconds, under
/// `tower_http::trace::on_response` (the target `RUST_LOG` filters on): INFO for 4xx and 5xx,
/// DEBUG for the rest. On the page-view route, at 10,000 requests a second, writing a line per
/// request cost 4 to 10 µs of CPU each, a tenth or more of the whole request (`bench/api.sh`);
/// `RUST_LOG=info,tower_http=debug` shows them all.
fn log_response(res: &Response, latency: Duration, _span: &tracing::Span) {
    let status = res.status().as_u16();
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    if status >= 400 {
        tracing::info!(target: "tower_http::trace::on_response", status, latency_us, "response");
    } else {
        tracing::debug!(target: "tower_http::trace::on_response", status, latency_us, "response");
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
