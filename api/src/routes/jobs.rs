//! `POST /v1/jobs/{name}` (enqueue one job, or many from an array), `GET /v1/jobs/{name}/{id}`
//! and `DELETE /v1/jobs/{name}/{id}` (revoke).
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
        .route("/v1/jobs/{name}/{id}", get(status).delete(revoke))
}

/// One job's arguments (see the job's documentation) plus optional timing and uniqueness keys,
/// which are removed before the arguments are validated.
#[derive(Debug, ToSchema)]
pub struct JobArguments {
    /// Run this many seconds from now (at most ten years); not with `run_at`.
    #[schema(minimum = 0, maximum = 315_360_000)]
    pub delay_seconds: Option<f64>,
    /// Run at this time (RFC 3339); not with `delay_seconds`.
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// At most one job of this name with this key at a time: while the first is queued,
    /// scheduled, retrying or running (for at most `unique_for_seconds`), a push with the same key
    /// stores nothing and answers the first job's id with `duplicate: true`. Its end (done or
    /// dead) releases the key. Any text of 1 to 256 characters (kept hashed).
    #[schema(min_length = 1, max_length = 256)]
    pub unique_key: Option<String>,
    /// How long the key holds at most (default 86,400 s, at most 30 days); needs `unique_key`.
    #[schema(minimum = 1, maximum = 2_592_000)]
    pub unique_for_seconds: Option<f64>,
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
    /// The new job's id (the earlier job's when this push was a duplicate).
    pub job_id: String,
    /// Present (true) when `unique_key` dropped this push as a duplicate of `job_id`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// `202` answer to an array enqueue, ids in the order of the items.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnqueuedMany {
    /// The new jobs' ids (a duplicate's is the earlier job's).
    pub job_ids: Vec<String>,
    /// Indexes of the items `unique_key` dropped as duplicates (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<usize>,
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
            let (args, when, unique) = split_controls(map, "")?;
            let item = domain::queues::EnqueueItem {
                args,
                when,
                unique,
                unique_until_end: true,
            };
            let pushed = state
                .queues
                .enqueue_many(&name, vec![item])
                .await?
                .pop()
                .ok_or_else(ApiError::internal)?;
            let answer = EnqueueAnswer::One(Enqueued {
                job_id: pushed.id,
                duplicate: !pushed.created,
            });
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
                let (args, when, unique) = split_controls(map, &format!("[{i}]."))?;
                batch.push(domain::queues::EnqueueItem {
                    args,
                    when,
                    unique,
                    unique_until_end: true,
                });
            }
            let pushed = if batch.is_empty() {
                Vec::new()
            } else {
                let single = batch.len() == 1;
                state
                    .queues
                    .enqueue_many(&name, batch)
                    .await
                    .map_err(|e| index_single_item(e, single))?
            };
            let duplicates = (0..pushed.len()).filter(|&i| !pushed[i].created).collect();
            let job_ids = pushed.into_iter().map(|p| p.id).collect();
            let answer = EnqueueAnswer::Many(EnqueuedMany {
                job_ids,
                duplicates,
            });
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

/// The longest `unique_for_seconds`: 30 days.
const MAX_UNIQUE_FOR: Duration = Duration::from_secs(30 * 86_400);
/// `unique_for_seconds` when only `unique_key` is given: a day.
const DEFAULT_UNIQUE_FOR: Duration = Duration::from_secs(86_400);

/// A job's uniqueness: the key as stored and how long it holds at most.
type Uniqueness = Option<(String, Duration)>;

/// Remove the controls (`delay_seconds`, `run_at`, `unique_key`, `unique_for_seconds`) from an
/// arguments object: the arguments, when the job may run, and its uniqueness. `prefix` is
/// prepended to field names in errors (`[3].` for array items).
fn split_controls(
    mut args: Map<String, Value>,
    prefix: &str,
) -> Result<(Value, When, Uniqueness), ApiError> {
    let key = args.remove("unique_key").filter(|v| !v.is_null());
    let ttl = args.remove("unique_for_seconds").filter(|v| !v.is_null());
    let unique = match (key, ttl) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(ApiError::invalid_argument(
                format!("{prefix}unique_key"),
                "unique_for_seconds needs unique_key",
            ));
        }
        (Some(key), ttl) => {
            let key = key
                .as_str()
                .filter(|k| (1..=256).contains(&k.chars().count()))
                .ok_or_else(|| {
                    ApiError::invalid_argument(
                        format!("{prefix}unique_key"),
                        "unique_key must be a string of 1 to 256 characters",
                    )
                })?;
            let ttl = match ttl {
                None => DEFAULT_UNIQUE_FOR,
                Some(v) => v
                    .as_f64()
                    .filter(|s| s.is_finite() && *s >= 1.0)
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .filter(|d| *d <= MAX_UNIQUE_FOR)
                    .ok_or_else(|| {
                        ApiError::invalid_argument(
                            format!("{prefix}unique_for_seconds"),
                            "unique_for_seconds must be a number of seconds from 1 to 2592000 (30 days)",
                        )
                    })?,
            };
            Some((domain::queues::unique_key(key), ttl))
        }
    };
    let (args, when) = split_timing(args, prefix)?;
    Ok((args, when, unique))
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

/// The job type named `name` and its queue, for job `id`: 404 for an unknown name or a
/// malformed id (which no job has).
fn job_queue<'s>(
    state: &'s AppState,
    name: &str,
    id: &str,
) -> Result<
    (
        &'static domain::registry::JobSpec,
        &'s queue::Queue<domain::conn::RedisConn>,
    ),
    ApiError,
> {
    let spec = domain::registry::find(name).ok_or_else(|| ApiError::unknown_job(name))?;
    let queue = state.queue(spec.name)?;
    if !queue::id::is_valid_job_id(id) {
        return Err(ApiError::not_found(format!("no {name} job has id {id:?}")));
    }
    Ok((spec, queue))
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
    let (spec, queue) = job_queue(&state, &name, &id)?;
    let not_found = || ApiError::not_found(format!("no {name} job has id {id:?}"));
    let info = queue.job(&id).await?.ok_or_else(not_found)?;
    Ok(Json(JobView {
        id: info.id,
        name: spec.name,
        status: info.status.into(),
        attempts: info.attempts,
        last_error: info.last_error,
    }))
}

/// `DELETE /v1/jobs/{name}/{id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeView {
    /// The job id.
    pub job_id: String,
    /// The job name.
    pub name: &'static str,
    /// `revoked`: the job was waiting (queued, scheduled or retrying) and never runs (dead now,
    /// or when a fetch reaches it); `stopping`: it was running, its worker is told to stop it,
    /// and nothing runs it again.
    #[schema(example = "revoked")]
    pub revoke: &'static str,
}

/// Revoke a job: it never starts (again), and a running one is told to stop where it can be.
///
/// A scheduled or retrying job becomes dead at once, a queued one when a fetch reaches it (never
/// leased), with a reason starting `revoked` (an operator may still requeue it). A running job's
/// worker stops it at its next await and it is dead, unless it finished first (the jobs that
/// write an anonymous session are not interrupted: they run to the end, in milliseconds);
/// whatever its run's outcome, no worker leases it again. A job already done or dead is 409; an
/// unknown id 404.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{name}/{id}",
    tag = "jobs",
    params(
        ("name" = String, Path, description = "The job's name"),
        ("id" = String, Path, description = "The job id returned at enqueue"),
    ),
    responses(
        (status = 200, description = "Revoked, or told to stop", body = RevokeView),
        (status = 400, response = r::BadRequest),
        (status = 401, response = r::Unauthorized),
        (status = 404, response = r::NotFound),
        (status = 409, response = r::Conflict),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn revoke(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<RevokeView>, ApiError> {
    let (spec, queue) = job_queue(&state, &name, &id)?;
    let not_found = || ApiError::not_found(format!("no {name} job has id {id:?}"));
    let outcome = queue.revoke(&id, "revoked before it started").await?;
    tracing::info!(job.name = spec.name, job.id = %id, outcome = outcome.as_str(), "revoke");
    match outcome {
        queue::Revoked::Waiting | queue::Revoked::Running => Ok(Json(RevokeView {
            job_id: id,
            name: spec.name,
            revoke: outcome.as_str(),
        })),
        queue::Revoked::Done | queue::Revoked::Dead => Err(ApiError::conflict(format!(
            "{name} job {id:?} has already ended ({}): nothing to revoke",
            outcome.as_str()
        ))),
        queue::Revoked::Unknown => Err(not_found()),
    }
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
