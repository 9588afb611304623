//! The jobs' work, one module each, named after the Celery task it replaces (their arguments
//! and the list of jobs are in `domain::jobs`).

use domain::args::JobArgs;

mod aggregate_page_analytics;
pub use aggregate_page_analytics::aggregate_day_from_sessions;
mod cleanup_old_anonymous_data;
mod end_expired_sessions;
mod enhance_session_async;
mod finalize_anonymous_session;
mod finalize_idle_sessions;
mod link_anonymous_conversion;
mod persist_anonymous_session;

pub use domain::jobs::*;

/// A job's work: run with the process's [`JobContext`](crate::context::JobContext).
pub trait Job: JobArgs {
    /// True for a job that must finish what it starts after a write (the erasure undo of the
    /// jobs that write an anonymous session): its time limit is not put around the whole run but
    /// around the parts it chooses, with [`within_time_limit`] and [`run_limit`].
    const LIMITS_ITS_WRITES: bool = false;

    /// Do the work. Must be idempotent: it may run twice, or twice at once.
    fn run(
        self,
        ctx: &crate::context::JobContext,
    ) -> impl std::future::Future<Output = Result<(), JobError>> + Send;
}

tokio::task_local! {
    /// The time limit of the run in progress (set for jobs with [`Job::LIMITS_ITS_WRITES`]).
    static RUN_LIMIT: Option<std::time::Duration>;
}

/// The time limit of the run in progress, for a job with [`Job::LIMITS_ITS_WRITES`] to put
/// around its writes; `None` outside such a run or when the run has no limit.
pub fn run_limit() -> Option<std::time::Duration> {
    RUN_LIMIT.try_with(|l| *l).ok().flatten()
}

// The three functions below build their futures from combinators rather than being `async fn`s:
// an `async fn` keeps its future argument in its own state and again where it awaits it, so each
// layer would double the size of the job's future, and a worker holds one per job in flight.

/// Run `job` within `limit` ([`within_time_limit`]): around the whole run, or, for a job with
/// [`Job::LIMITS_ITS_WRITES`], around the parts it chooses.
pub fn run_limited<T: Job>(
    job: T,
    ctx: &crate::context::JobContext,
    limit: Option<std::time::Duration>,
) -> impl std::future::Future<Output = Result<(), JobError>> + Send {
    use futures::future::Either;
    if T::LIMITS_ITS_WRITES {
        Either::Left(RUN_LIMIT.scope(limit, job.run(ctx)))
    } else {
        Either::Right(within_time_limit(limit, job.run(ctx)))
    }
}

/// Run `job` like [`run_limited`], and stop it when `revoked` is raised (dropped at its next
/// await: a failed run that is dead at once, never retried). A job with
/// [`Job::LIMITS_ITS_WRITES`] is not stopped: it finishes (in milliseconds), so its erasure undo
/// always runs.
pub fn run_revocable<'a, T: Job + 'a>(
    job: T,
    ctx: &'a crate::context::JobContext,
    limit: Option<std::time::Duration>,
    revoked: &'a queue::backend::RevokeSignal,
) -> impl std::future::Future<Output = Result<(), JobError>> + Send + 'a {
    use futures::future::Either;
    let run = run_limited(job, ctx, limit);
    if T::LIMITS_ITS_WRITES {
        return Either::Left(run);
    }
    // Boxed, so the type (and size) of the branch above does not carry this one's.
    Either::Right(Box::pin(async move {
        tokio::select! {
            result = run => result,
            () = revoked.raised() => {
                tracing::warn!("revoked while running; stopped");
                Err(JobError::Permanent("revoked while running: stopped".into()))
            }
        }
    }))
}

/// Run `work` for at most `limit`: past it the work is dropped (cancelled at its next await: a
/// database call in flight is abandoned and its connection discarded) and the run is a failed
/// attempt with the reason, retried or dead by the usual rules.
pub fn within_time_limit<F>(
    limit: Option<std::time::Duration>,
    work: F,
) -> impl std::future::Future<Output = Result<(), JobError>>
where
    F: std::future::Future<Output = Result<(), JobError>>,
{
    use futures::FutureExt as _;
    use futures::future::Either;
    let Some(limit) = limit else {
        return Either::Left(work);
    };
    Either::Right(
        tokio::time::timeout(limit, work).map(move |result| match result {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    limit_s = limit.as_secs_f64(),
                    "time limit exceeded; cancelled"
                );
                Err(JobError::Retry(anyhow::anyhow!(
                    "time limit exceeded: still running after {} s, cancelled",
                    limit.as_secs_f64()
                )))
            }
        }),
    )
}

/// Decode `args` for job `name` and run it (the Celery bridge's dynamic dispatch) within `limit`
/// and until `revoked` ([`run_revocable`]), in the same `job` span and behind the same panic
/// guard as every other job. `None` when no job has that name.
pub async fn run_named(
    name: &str,
    args: serde_json::Value,
    ctx: &crate::context::JobContext,
    limit: Option<std::time::Duration>,
    revoked: &queue::backend::RevokeSignal,
) -> Option<Result<(), JobError>> {
    async fn go<T: Job>(
        args: serde_json::Value,
        ctx: &crate::context::JobContext,
        limit: Option<std::time::Duration>,
        revoked: &queue::backend::RevokeSignal,
    ) -> Result<(), JobError> {
        use futures::FutureExt as _;
        use tracing::Instrument as _;
        let job = domain::args::decode::<T>(args)
            .map_err(|e| JobError::Permanent(format!("invalid arguments: {e}")))?;
        let span = tracing::info_span!("job", job.name = T::NAME);
        match std::panic::AssertUnwindSafe(run_revocable(job, ctx, limit, revoked).instrument(span))
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(_) => {
                tracing::error!(job = T::NAME, "job panicked");
                Err(JobError::Retry(anyhow::anyhow!("job panicked")))
            }
        }
    }
    macro_rules! dispatch {
        ($($job:ident),*) => {
            match name {
                // Boxed: inline, this future would be as large as the largest job's, for
                // every job in flight whatever its type.
                $($job::NAME => Some(Box::pin(go::<$job>(args, ctx, limit, revoked)).await),)*
                _ => None,
            }
        };
    }
    domain::with_jobs!(dispatch)
}

/// How a job failed: worth retrying, or never going to work.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Transient (database or Redis unavailable): retried with backoff.
    #[error(transparent)]
    Retry(#[from] anyhow::Error),
    /// Permanent (bad arguments or data): dead at once with this reason.
    #[error("{0}")]
    Permanent(String),
    /// Not due yet: run again after this delay, measured on Redis's clock; costs no attempt.
    #[error("not due yet: run again in {} ms", .0.as_millis())]
    Snooze(std::time::Duration),
}

impl From<sea_orm::DbErr> for JobError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Retry(e.into())
    }
}

impl From<domain::schema::SchemaError> for JobError {
    fn from(e: domain::schema::SchemaError) -> Self {
        Self::Retry(e.into())
    }
}

impl From<redis::RedisError> for JobError {
    fn from(e: redis::RedisError) -> Self {
        Self::Retry(e.into())
    }
}

impl From<crate::store::StoreError> for JobError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::BadDocument(_) => Self::Permanent(e.to_string()),
            other => Self::Retry(other.into()),
        }
    }
}

impl From<domain::queues::EnqueueError> for JobError {
    fn from(e: domain::queues::EnqueueError) -> Self {
        Self::Retry(e.into())
    }
}
