//! `GET /v1/history?minutes=60`: what the workers ran, per minute and job type (succeeded,
//! failed, dead, total run time), for the last 1 to 1440 minutes (`domain::workers`' history,
//! kept 25 hours). One pipeline of at most 1440 small reads, whatever the fleet ran.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use domain::workers;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::responses as r;
use crate::state::AppState;

/// The most minutes one request reads: a day.
pub const MAX_MINUTES: i64 = 1440;

/// The history routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/history", get(history))
}

/// `GET /v1/history` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Minutes back from now, 1 to 1440 (60).
    #[serde(default = "default_minutes")]
    #[param(minimum = 1, maximum = 1440)]
    pub minutes: i64,
}

fn default_minutes() -> i64 {
    60
}

/// `GET /v1/history` answer: every minute asked for, oldest first (a minute nothing ended in has
/// no jobs).
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// The minutes.
    pub minutes: Vec<Minute>,
}

/// One minute.
#[derive(Debug, Serialize, ToSchema)]
pub struct Minute {
    /// Its start.
    pub at: DateTime<Utc>,
    /// Per job type, what ended in it.
    pub jobs: BTreeMap<String, JobCounts>,
}

/// What ended in one minute for one job type.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct JobCounts {
    /// Runs that succeeded.
    pub succeeded: u64,
    /// Runs that failed and will be retried.
    pub failed: u64,
    /// Runs that failed for good.
    pub dead: u64,
    /// Their total run time, in milliseconds (divide by the runs for the mean).
    pub ms: u64,
}

/// Per-minute job counts of the whole fleet.
#[utoipa::path(
    get,
    path = "/v1/history",
    tag = "queues",
    params(HistoryQuery),
    responses(
        (status = 200, description = "Per-minute counts", body = History),
        (status = 401, response = r::Unauthorized),
        (status = 422, response = r::Unprocessable),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn history(
    State(state): State<AppState>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<History>, ApiError> {
    let minutes = q
        .map(|Query(q)| q.minutes)
        .map_err(|e| ApiError::invalid_argument("minutes", e.body_text()))?;
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(ApiError::invalid_argument(
            "minutes",
            format!("must be 1 to {MAX_MINUTES}"),
        ));
    }
    let now = Utc::now().timestamp() / 60;
    let first = now - minutes + 1;
    let mut pipe = redis::pipe();
    for m in first..=now {
        pipe.hgetall(workers::history_key(&state.settings.namespace, m));
    }
    let rows: Vec<BTreeMap<String, u64>> = pipe
        .query_async(&mut state.redis.clone())
        .await
        .map_err(queue::QueueError::from)?;
    let minutes = (first..=now)
        .zip(rows)
        .map(|(m, fields)| {
            let mut jobs: BTreeMap<String, JobCounts> = BTreeMap::new();
            for (field, n) in fields {
                let Some((job, what)) = field.rsplit_once(':') else {
                    continue;
                };
                let counts = jobs.entry(job.to_owned()).or_default();
                match what {
                    "succeeded" => counts.succeeded = n,
                    "failed" => counts.failed = n,
                    "dead" => counts.dead = n,
                    "ms" => counts.ms = n,
                    _ => {}
                }
            }
            Minute {
                at: DateTime::from_timestamp(m * 60, 0).unwrap_or_default(),
                jobs,
            }
        })
        .collect();
    Ok(Json(History { minutes }))
}
