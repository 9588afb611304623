//! A queue's jobs: `GET /v1/queues/{name}/jobs` (one page of the jobs in one state, with their
//! arguments, attempts, last error and times), `POST /v1/queues/{name}/dead/requeue` and
//! `.../dead/discard` (some dead jobs by id, or all of them) and
//! `POST /v1/queues/{name}/jobs/run-now` (waiting jobs by id).
//!
//! A page costs Redis one script run that reads at most [`queue::MAX_PAGE`] jobs, whatever the
//! queue holds.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use queue::{JobInfo, ListState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::{self, Path};
use crate::responses as r;
use crate::state::AppState;

/// The largest offset a page may start at (Redis takes offsets as numbers up to 2^53).
pub const MAX_OFFSET: usize = 1 << 50;

/// The most ids one requeue or discard names.
pub const MAX_IDS: usize = 1000;

/// The queue-jobs routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/queues/{name}/jobs", get(list))
        .route("/v1/queues/{name}/dead/requeue", post(requeue))
        .route("/v1/queues/{name}/dead/discard", post(discard))
        .route("/v1/queues/{name}/jobs/run-now", post(run_now))
}

/// `GET /v1/queues/{name}/jobs` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Which jobs: queued, scheduled, retrying, running, done or dead.
    pub state: ListedState,
    /// Jobs to skip (the previous page's `next_offset`).
    #[serde(default)]
    pub offset: usize,
    /// Jobs per page, 1 to 100 (50).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 100)]
    pub limit: usize,
}

fn default_limit() -> usize {
    50
}

/// The states jobs are listed by: where a job stands, and `retrying` (scheduled after a failed
/// attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListedState {
    /// Ready to run.
    Queued,
    /// Waiting for a time: delayed, or waiting for a retry.
    Scheduled,
    /// Scheduled after a failed attempt (a page reads at most 1,000 scheduled entries).
    Retrying,
    /// Leased by a worker.
    Running,
    /// Finished and retained.
    Done,
    /// Failed for good and retained.
    Dead,
}

impl ListedState {
    /// Every state, in the order a queue's page shows them.
    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::Scheduled,
        Self::Retrying,
        Self::Running,
        Self::Done,
        Self::Dead,
    ];

    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Scheduled => "scheduled",
            Self::Retrying => "retrying",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
        }
    }
}

/// One page of a queue's jobs in one state.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPageView {
    /// The queue (job) name.
    pub name: String,
    /// The state listed.
    pub state: ListedState,
    /// Jobs in that state in all (null for retrying: counting them would read every scheduled
    /// job).
    pub total: Option<u64>,
    /// This page's offset.
    pub offset: usize,
    /// The next page's offset, when there is one.
    pub next_offset: Option<usize>,
    /// The jobs, in line order (queued) or oldest time first (the others).
    pub jobs: Vec<ListedJob>,
}

/// One job of a page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedJob {
    /// The job id.
    pub id: String,
    /// Attempts started.
    pub attempts: u32,
    /// The last failed attempt's error, if any.
    pub last_error: Option<String>,
    /// The job's arguments (as stored; text when they are not JSON).
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
    /// When it was pushed (or last requeued).
    pub enqueued_at: Option<DateTime<Utc>>,
    /// The state's time: due (scheduled), lease deadline (running), finished (done, dead).
    pub state_at: Option<DateTime<Utc>>,
}

impl From<JobInfo> for ListedJob {
    fn from(j: JobInfo) -> Self {
        let args = serde_json::from_str(&j.payload).unwrap_or(serde_json::Value::String(j.payload));
        Self {
            id: j.id,
            attempts: j.attempts,
            last_error: j.last_error,
            args,
            enqueued_at: (j.since_ms > 0)
                .then(|| DateTime::from_timestamp_millis(j.since_ms))
                .flatten(),
            state_at: j.status_ms.and_then(DateTime::from_timestamp_millis),
        }
    }
}

/// `POST /v1/queues/{name}/dead/requeue` and `.../discard` body: `ids` or `all`, not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadSelection {
    /// The dead jobs to act on (1 to 1000 ids).
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// `true`: every dead job of the queue.
    #[serde(default)]
    pub all: bool,
}

/// What a requeue or discard did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadOutcome {
    /// Jobs requeued (back in line with fresh attempts) or discarded.
    pub done: u64,
    /// Ids named that were not dead (unknown, already requeued or discarded).
    pub not_dead: Vec<String>,
}

impl From<ListedState> for ListState {
    fn from(s: ListedState) -> Self {
        match s {
            ListedState::Queued => Self::Queued,
            ListedState::Scheduled => Self::Scheduled,
            ListedState::Retrying => Self::Retrying,
            ListedState::Running => Self::Running,
            ListedState::Done => Self::Done,
            ListedState::Dead => Self::Dead,
        }
    }
}

/// `POST /v1/queues/{name}/jobs/run-now` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobIds {
    /// The jobs (1 to 1000 ids).
    pub ids: Vec<String>,
}

/// What a run-now did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunNowOutcome {
    /// Jobs moved to the front of the line (scheduled or retrying) or requeued (dead).
    pub done: u64,
    /// Ids named that were not waiting (unknown, queued, running or done).
    pub not_waiting: Vec<String>,
}

fn list_query(q: Result<Query<ListQuery>, QueryRejection>) -> Result<ListQuery, ApiError> {
    let q = q.map(|Query(q)| q).map_err(|e| {
        let text = e.body_text();
        let field = ["state", "offset", "limit"]
            .into_iter()
            .find(|f| text.contains(f))
            .unwrap_or("state");
        ApiError::invalid_argument(field, text)
    })?;
    if q.offset > MAX_OFFSET {
        return Err(ApiError::invalid_argument(
            "offset",
            format!("must be at most {MAX_OFFSET}"),
        ));
    }
    if !(1..=queue::MAX_PAGE).contains(&q.limit) {
        return Err(ApiError::invalid_argument(
            "limit",
            format!("must be 1 to {}", queue::MAX_PAGE),
        ));
    }
    Ok(q)
}

/// One page of a queue's jobs in one state.
#[utoipa::path(
    get,
    path = "/v1/queues/{name}/jobs",
    tag = "queues",
    params(("name" = String, Path, description = "The queue (job) name"), ListQuery),
    responses(
        (status = 200, description = "One page", body = JobPageView),
        (status = 400, response = r::BadRequest),
        (status = 401, response = r::Unauthorized),
        (status = 404, response = r::NotFound),
        (status = 422, response = r::Unprocessable),
        (status = 500, response = r::Internal),
        (status = 503, response = r::Unavailable),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<JobPageView>, ApiError> {
    let queue = state.queue(&name)?;
    let q = list_query(q)?;
    let page = queue.list(q.state.into(), q.offset, q.limit).await?;
    Ok(Json(JobPageView {
        name,
        state: q.state,
        total: page.total,
        offset: q.offset,
        next_offset: page.next,
        jobs: page.jobs.into_iter().map(ListedJob::from).collect(),
    }))
}

/// Which dead jobs a selection names: `Some(ids)`, or `None` for all.
fn selection(body: DeadSelection) -> Result<Option<Vec<String>>, ApiError> {
    match (body.ids, body.all) {
        (Some(_), true) => Err(ApiError::invalid_argument(
            "ids",
            "give ids or all, not both",
        )),
        (None, false) => Err(ApiError::invalid_argument(
            "ids",
            "give the dead jobs' ids, or \"all\": true",
        )),
        (None, true) => Ok(None),
        (Some(ids), false) if ids.is_empty() || ids.len() > MAX_IDS => Err(
            ApiError::invalid_argument("ids", format!("must name 1 to {MAX_IDS} jobs")),
        ),
        (Some(ids), false) => Ok(Some(ids)),
    }
}

/// Put dead jobs back in line with fresh attempts: some by id, or all.
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/dead/requeue",
    tag = "queues",
    params(("name" = String, Path, description = "The queue (job) name")),
    request_body(content = DeadSelection, description = "`ids` or `all`"),
    responses(
        (status = 200, description = "Requeued", body = DeadOutcome),
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
pub async fn requeue(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<extract::Json<DeadSelection>, ApiError>,
) -> Result<Json<DeadOutcome>, ApiError> {
    act(&state, &name, body, Action::Requeue).await
}

/// Forget dead jobs: some by id, or all.
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/dead/discard",
    tag = "queues",
    params(("name" = String, Path, description = "The queue (job) name")),
    request_body(content = DeadSelection, description = "`ids` or `all`"),
    responses(
        (status = 200, description = "Discarded", body = DeadOutcome),
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
pub async fn discard(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<extract::Json<DeadSelection>, ApiError>,
) -> Result<Json<DeadOutcome>, ApiError> {
    act(&state, &name, body, Action::Discard).await
}

/// What to do with dead jobs.
#[derive(Debug, Clone, Copy)]
enum Action {
    Requeue,
    Discard,
}

async fn act(
    state: &AppState,
    name: &str,
    body: Result<extract::Json<DeadSelection>, ApiError>,
    action: Action,
) -> Result<Json<DeadOutcome>, ApiError> {
    let queue = state.queue(name)?;
    let extract::Json(body) = body?;
    let mut outcome = DeadOutcome {
        done: 0,
        not_dead: Vec::new(),
    };
    match selection(body)? {
        None => {
            outcome.done = match action {
                Action::Requeue => queue.requeue_all_dead().await?,
                Action::Discard => queue.discard_all_dead().await?,
            };
        }
        Some(ids) => {
            for id in ids {
                let was_dead = match action {
                    Action::Requeue => queue.requeue_dead(&id).await?,
                    Action::Discard => queue.discard_dead(&id).await?,
                };
                if was_dead {
                    outcome.done += 1;
                } else {
                    outcome.not_dead.push(id);
                }
            }
        }
    }
    tracing::info!(queue = %name, ?action, jobs = outcome.done, "dead jobs acted on");
    Ok(Json(outcome))
}

/// Run waiting jobs now: scheduled or retrying ones go to the front of the line with their
/// attempts kept; dead ones are requeued with fresh attempts.
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/jobs/run-now",
    tag = "queues",
    params(("name" = String, Path, description = "The queue (job) name")),
    request_body(content = JobIds, description = "The jobs' ids"),
    responses(
        (status = 200, description = "Moved", body = RunNowOutcome),
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
pub async fn run_now(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<extract::Json<JobIds>, ApiError>,
) -> Result<Json<RunNowOutcome>, ApiError> {
    let queue = state.queue(&name)?;
    let extract::Json(body) = body?;
    if body.ids.is_empty() || body.ids.len() > MAX_IDS {
        return Err(ApiError::invalid_argument(
            "ids",
            format!("must name 1 to {MAX_IDS} jobs"),
        ));
    }
    let outcome = run_now_ids(queue, body.ids).await?;
    tracing::info!(queue = %name, jobs = outcome.done, "jobs run now");
    Ok(Json(outcome))
}

/// Run `ids` of `queue` now (see [`run_now`]).
pub async fn run_now_ids(
    queue: &queue::Queue<domain::conn::RedisConn>,
    ids: Vec<String>,
) -> Result<RunNowOutcome, ApiError> {
    let mut outcome = RunNowOutcome {
        done: 0,
        not_waiting: Vec::new(),
    };
    // Scheduled and retrying jobs move in one script call; the rest may be dead.
    let moved = queue.run_now_many(&ids).await?;
    outcome.done = moved.len() as u64;
    for id in ids.into_iter().filter(|id| !moved.contains(id)) {
        if queue.requeue_dead(&id).await? {
            outcome.done += 1;
        } else {
            outcome.not_waiting.push(id);
        }
    }
    Ok(outcome)
}
