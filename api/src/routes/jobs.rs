//! `POST /v1/jobs/{name}` (enqueue one job, or many from an array) and `GET /v1/jobs/{name}/{id}`.
//!
//! The body is the job's arguments object, plus two optional timing keys that are removed before
//! the arguments are validated: `delay_seconds` (a non-negative number, at most ten years) or
//! `run_at` (an RFC 3339 time), not both. A JSON array of such objects enqueues them all in one
//! push; nothing is pushed unless every item validates, and errors name the item (`[3].fingerprint`).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::queues::EnqueueError;
use queue::{JobStatus, When};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{self, Path};
use crate::responses as r;
use crate::state::AppState;

/// The longest `delay_seconds` accepted: ten years.
pub const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The jobs routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs/{name}", post(enqueue))
        .route("/v1/jobs/{name}/{id}", get(status))
}

/// One job's arguments (see the job's documentation) plus two optional timing keys, which are
/// removed before the arguments are validated.
#[derive(Debug, ToSchema)]
pub struct JobArguments {
    /// Run this many seconds from now (at most ten years); not with `run_at`.
    #[schema(minimum = 0, maximum = 315_360_000)]
    pub delay_seconds: Option<f64>,
    /// Run at this time (RFC 3339); not with `delay_seconds`.
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `POST /v1/jobs/{name}` body: one job's arguments, or an array of them (all or nothing).
#[derive(Debug, ToSchema)]
#[serde(untagged)]
pub enum EnqueueBody {
    /// One job.
    One(JobArguments),
    /// Several jobs of the same name, validated whole before any is pushed.
    Many(Vec<JobArguments>),
}

/// `202` answer to a single enqueue.
#[derive(Debug, Serialize, ToSchema)]
pub struct Enqueued {
    /// The new job's id.
    pub job_id: String,
}

/// `202` answer to an array enqueue, ids in the order of the items.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnqueuedMany {
    /// The new jobs' ids.
    pub job_ids: Vec<String>,
}

/// `202` answer to `POST /v1/jobs/{name}`: [`Enqueued`] for an object body, [`EnqueuedMany`] for
/// an array.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EnqueueAnswer {
    /// For an object body.
    One(Enqueued),
    /// For an array body.
    Many(EnqueuedMany),
}

/// Where a job stands (the wire form of [`JobStatus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Ready to run.
    Queued,
    /// Waiting for its time (a delay or a retry's backoff).
    Scheduled,
    /// Leased by a worker.
    Running,
    /// Finished.
    Done,
    /// Failed for good.
    Dead,
}

impl From<JobStatus> for JobState {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::Queued => Self::Queued,
            JobStatus::Scheduled => Self::Scheduled,
            JobStatus::Running => Self::Running,
            JobStatus::Done => Self::Done,
            JobStatus::Dead => Self::Dead,
        }
    }
}

/// `GET /v1/jobs/{name}/{id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// The job id.
    pub id: String,
    /// The job name.
    pub name: &'static str,
    /// queued, scheduled, running, done or dead.
    pub status: JobState,
    /// Attempts started so far.
    pub attempts: u32,
    /// The last failed attempt's error, if any.
    pub last_error: Option<String>,
}

/// Enqueue one job (object body) or many (array body).
///
/// The name is checked before the body, so an unknown job is 404 whatever was sent.
#[utoipa::path(
    post,
    path = "/v1/jobs/{name}",
    tag = "jobs",
    params(("name" = String, Path, description = "The job's name (see the registry)")),
    request_body(content = EnqueueBody, description = "The job's arguments, or an array of them"),
    responses(
        (status = 202, description = "Enqueued", body = EnqueueAnswer, links(
            ("JobStatus" = (operation_id = "status", parameters(
                ("name" = "$request.path.name"),
                ("id" = "$response.body#/job_id"),
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
pub async fn enqueue(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<extract::Json<Value>, ApiError>,
) -> Result<Response, ApiError> {
    if domain::registry::find(&name).is_none() {
        return Err(ApiError::unknown_job(&name));
    }
    let extract::Json(body) = body?;
    match body {
        Value::Object(map) => {
            let (args, when) = split_timing(map, "")?;
            let pushed = state.queues.enqueue(&name, args, when).await?;
            let answer = EnqueueAnswer::One(Enqueued { job_id: pushed.id });
            Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
        }
        Value::Array(items) => {
            let mut batch = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let Value::Object(map) = item else {
                    return Err(ApiError::invalid_argument(
                        format!("[{i}]"),
                        "each array item must be a JSON object of job arguments",
                    ));
                };
                let (args, when) = split_timing(map, &format!("[{i}]."))?;
                batch.push(domain::queues::EnqueueItem {
                    args,
                    when,
                    unique: None,
                });
            }
            let job_ids = if batch.is_empty() {
                Vec::new()
            } else {
                let single = batch.len() == 1;
                let pushed = state
                    .queues
                    .enqueue_many(&name, batch)
                    .await
                    .map_err(|e| index_single_item(e, single))?;
                pushed.into_iter().map(|p| p.id).collect()
            };
            let answer = EnqueueAnswer::Many(EnqueuedMany { job_ids });
            Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
        }
        _ => Err(ApiError::invalid_argument(
            "",
            "body must be a JSON object of job arguments, or an array of them",
        )),
    }
}

/// `enqueue_many` prefixes a field with its item index only when there are several items; an
/// array body of one item still deserves `[0].field`.
fn index_single_item(e: EnqueueError, single: bool) -> EnqueueError {
    match e {
        EnqueueError::InvalidArgs(mut arg) if single && !arg.field.starts_with('[') => {
            arg.field = if arg.field.is_empty() {
                "[0]".to_owned()
            } else {
                format!("[0].{}", arg.field)
            };
            EnqueueError::InvalidArgs(arg)
        }
        other => other,
    }
}

/// Remove `delay_seconds` and `run_at` from an arguments object and turn them into a [`When`].
/// `prefix` is prepended to field names in errors (`[3].` for array items).
fn split_timing(mut args: Map<String, Value>, prefix: &str) -> Result<(Value, When), ApiError> {
    let delay = args.remove("delay_seconds").filter(|v| !v.is_null());
    let run_at = args.remove("run_at").filter(|v| !v.is_null());
    let when = match (delay, run_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_argument(
                format!("{prefix}run_at"),
                "give delay_seconds or run_at, not both",
            ));
        }
        (Some(delay), None) => {
            let bad = || {
                ApiError::invalid_argument(
                    format!("{prefix}delay_seconds"),
                    "delay_seconds must be a non-negative number of seconds, at most ten years",
                )
            };
            let secs = delay
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(bad)?;
            let delay = Duration::try_from_secs_f64(secs).map_err(|_| bad())?;
            if delay > MAX_DELAY {
                return Err(bad());
            }
            if delay.is_zero() {
                When::Now
            } else {
                When::After(delay)
            }
        }
        (None, Some(run_at)) => {
            let at = run_at
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .ok_or_else(|| {
                    ApiError::invalid_argument(
                        format!("{prefix}run_at"),
                        "run_at must be an RFC 3339 time, e.g. 2030-01-01T12:00:00Z",
                    )
                })?;
            When::At(at.timestamp_millis())
        }
        (None, None) => When::Now,
    };
    Ok((Value::Object(args), when))
}

/// One job's status. Unknown job names and unknown or malformed ids are 404.
#[utoipa::path(
    get,
    path = "/v1/jobs/{name}/{id}",
    tag = "jobs",
    params(
        ("name" = String, Path, description = "The job's name"),
        ("id" = String, Path, description = "The job id returned at enqueue"),
    ),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, response = r::BadRequest),
        (status = 401, response = r::Unauthorized),
        (status = 404, response = r::NotFound),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn status(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<JobView>, ApiError> {
    let spec = domain::registry::find(&name).ok_or_else(|| ApiError::unknown_job(&name))?;
    let queue = state.queue(spec.name)?;
    let not_found = || ApiError::not_found(format!("no {name} job has id {id:?}"));
    if !queue::id::is_valid_job_id(&id) {
        return Err(not_found());
    }
    let info = queue.job(&id).await?.ok_or_else(not_found)?;
    Ok(Json(JobView {
        id: info.id,
        name: spec.name,
        status: info.status.into(),
        attempts: info.attempts,
        last_error: info.last_error,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::args::ArgError;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn timing_keys_are_removed_and_become_when() {
        let (args, when) = split_timing(obj(json!({"fingerprint": "f", "delay_seconds": 1.5})), "")
            .expect("valid timing");
        assert_eq!(args, json!({"fingerprint": "f"}));
        assert_eq!(when, When::After(Duration::from_millis(1500)));
        let (_, when) =
            split_timing(obj(json!({"run_at": "2030-01-01T00:00:00Z"})), "").expect("valid timing");
        assert_eq!(when, When::At(1_893_456_000_000));
        let (_, when) = split_timing(obj(json!({"delay_seconds": 0})), "").expect("valid timing");
        assert_eq!(when, When::Now);
        let (_, when) =
            split_timing(obj(json!({"delay_seconds": null})), "").expect("valid timing");
        assert_eq!(when, When::Now);
    }

    #[test]
    fn bad_timing_names_the_field_with_the_item_prefix() {
        for (body, field) in [
            (json!({"delay_seconds": -1}), "[2].delay_seconds"),
            (json!({"delay_seconds": "5"}), "[2].delay_seconds"),
            (json!({"delay_seconds": 1e12}), "[2].delay_seconds"),
            (json!({"run_at": "tomorrow"}), "[2].run_at"),
            (
                json!({"run_at": "2030-01-01T00:00:00Z", "delay_seconds": 1}),
                "[2].run_at",
            ),
        ] {
            let e = split_timing(obj(body), "[2].").expect_err("must be refused");
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(e.field.as_deref(), Some(field));
        }
    }

    #[test]
    fn a_single_item_array_still_names_its_index() {
        let e = EnqueueError::InvalidArgs(ArgError::new("fingerprint", "missing"));
        let EnqueueError::InvalidArgs(arg) = index_single_item(e, true) else {
            unreachable!()
        };
        assert_eq!(arg.field, "[0].fingerprint");
        let e = EnqueueError::InvalidArgs(ArgError::new("[1].fingerprint", "missing"));
        let EnqueueError::InvalidArgs(arg) = index_single_item(e, false) else {
            unreachable!()
        };
        assert_eq!(arg.field, "[1].fingerprint");
    }
}
