//! `GET /healthz` (the process answers) and `GET /readyz` (Redis and the database answer too).

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::responses as r;
use crate::state::AppState;

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The health routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// `GET /healthz` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

/// `GET /readyz` answer when everything answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ok`.
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
    /// `ok`: Redis answered PING.
    #[schema(value_type = String, example = "ok")]
    pub redis: &'static str,
    /// `ok`: the database answered a ping.
    #[schema(value_type = String, example = "ok")]
    pub database: &'static str,
}

/// The process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process runs", body = Health)),
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// 200 when Redis answers PING and the database answers a ping; 503 naming what failed.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Redis and the database answer", body = Ready),
        (status = 503, response = r::Unavailable),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    if state.stopping.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::unavailable("not ready: shutting down"));
    }
    let mut conn = state.redis.clone();
    let redis = async move {
        match tokio::time::timeout(
            PROBE_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    };
    let db = async {
        match tokio::time::timeout(PROBE_TIMEOUT, state.db.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    };
    let (redis, db) = tokio::join!(redis, db);
    let mut failed = Vec::new();
    if let Err(e) = &redis {
        tracing::warn!(error = %e, "readyz: redis unreachable");
        failed.push("redis");
    }
    if let Err(e) = &db {
        tracing::warn!(error = %e, "readyz: database unreachable");
        failed.push("database");
    }
    if failed.is_empty() {
        Ok(Json(Ready {
            status: "ok",
            redis: "ok",
            database: "ok",
        }))
    } else {
        Err(ApiError::unavailable(format!(
            "not ready: {} unreachable",
            failed.join(" and ")
        )))
    }
}
