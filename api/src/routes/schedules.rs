//! `GET /v1/schedules`: each periodic job with its cron, its latest and next tick, and the
//! scheduler copy that enqueued the latest, as the scheduler publishes them (`domain::schedules`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use domain::schedules::{self, Published};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::responses as r;
use crate::state::AppState;

/// The schedules routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/schedules", get(list))
}

/// `GET /v1/schedules` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// One entry per periodic job, in registry order.
    pub schedules: Vec<ScheduleEntry>,
}

/// One periodic job.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleEntry {
    /// The job.
    pub job: String,
    /// Its cron (with seconds, UTC): as a running scheduler published it, else the default.
    pub cron: String,
    /// Whether a scheduler has published this entry (false: no scheduler has run with it on).
    pub published: bool,
    /// The latest tick enqueued, by any copy.
    pub last_tick: Option<DateTime<Utc>>,
    /// The next tick, as the scheduler computed it after the latest (in the past: no scheduler
    /// is running).
    pub next_tick: Option<DateTime<Utc>>,
    /// The scheduler copy (`host:pid`) that enqueued the latest tick.
    pub enqueued_by: Option<String>,
}

/// Every periodic job's schedule, read in one pipeline.
#[utoipa::path(
    get,
    path = "/v1/schedules",
    tag = "queues",
    responses(
        (status = 200, description = "One entry per periodic job", body = ScheduleList),
        (status = 401, response = r::Unauthorized),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    let ns = &state.settings.namespace;
    let periodic: Vec<(&str, &str)> = domain::registry::JOBS
        .iter()
        .filter_map(|spec| Some((spec.name, spec.schedule?)))
        .collect();
    let mut pipe = redis::pipe();
    for (job, _) in &periodic {
        pipe.hget(schedules::entries_key(ns), *job)
            .hget(schedules::enqueued_by_key(ns), *job)
            .get(schedules::last_tick_key(ns, job));
    }
    let replies: Vec<(Option<String>, Option<String>, Option<i64>)> = {
        let flat: Vec<redis::Value> = pipe
            .query_async(&mut state.redis.clone())
            .await
            .map_err(queue::QueueError::from)?;
        flat.chunks(3)
            .map(|c| {
                let [entry, by, last] = c else {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::UnexpectedReturnType,
                        "short schedules reply",
                    )));
                };
                Ok((
                    redis::from_redis_value(entry.clone())?,
                    redis::from_redis_value(by.clone())?,
                    redis::from_redis_value(last.clone())?,
                ))
            })
            .collect::<Result<_, redis::RedisError>>()
            .map_err(queue::QueueError::from)?
    };
    let schedules = periodic
        .into_iter()
        .zip(replies)
        .map(|((job, default), (entry, by, last))| {
            let entry: Option<Published> = entry.and_then(|e| serde_json::from_str(&e).ok());
            ScheduleEntry {
                job: job.to_owned(),
                published: entry.is_some(),
                cron: entry
                    .as_ref()
                    .map_or_else(|| default.to_owned(), |e| e.cron.clone()),
                last_tick: last.and_then(|s| DateTime::from_timestamp(s, 0)),
                next_tick: entry.and_then(|e| e.next_tick),
                enqueued_by: by,
            }
        })
        .collect();
    Ok(Json(ScheduleList { schedules }))
}
