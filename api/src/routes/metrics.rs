//! `GET /metrics`: Prometheus text exposition, queue gauges read fresh on each scrape.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::prometheus;
use crate::state::AppState;

/// The metrics route.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

/// Prometheus text exposition: this process's HTTP metrics, queue gauges read from Redis at each
/// scrape (a Redis failure keeps their last values, so a scrape never fails), and the fleet's job
/// counters and run-time histograms, which the workers keep in Redis.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((
        status = 200,
        description = "Prometheus text format 0.0.4",
        body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8",
    )),
)]
pub async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let handle = prometheus::handle();
    prometheus::refresh_queue_gauges(&state.queues).await;
    handle.run_upkeep();
    let mut text = handle.render();
    text.push_str(
        &prometheus::fleet_text(&mut state.redis.clone(), &state.settings.namespace).await,
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
