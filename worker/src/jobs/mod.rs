//! The jobs, one module each, named after the Celery task it replaces.

use crate::registry::JobArgs as _;

mod aggregate_page_analytics;
mod cleanup_old_anonymous_data;
mod enhance_session_async;
mod finalize_anonymous_session;
mod finalize_idle_sessions;
mod link_anonymous_conversion;
mod persist_anonymous_session;

pub use aggregate_page_analytics::AggregatePageAnalytics;
pub use cleanup_old_anonymous_data::CleanupOldAnonymousData;
pub use enhance_session_async::{EnhanceSessionAsync, parse_user_agent};
pub use finalize_anonymous_session::FinalizeAnonymousSession;
pub use finalize_idle_sessions::FinalizeIdleSessions;
pub use link_anonymous_conversion::LinkAnonymousConversion;
pub use persist_anonymous_session::PersistAnonymousSession;

/// A job's work: run with the process's [`JobContext`](crate::context::JobContext).
pub trait Job: crate::registry::JobArgs {
    /// Do the work. Must be idempotent: it may run twice, or twice at once.
    fn run(
        self,
        ctx: &crate::context::JobContext,
    ) -> impl std::future::Future<Output = Result<(), JobError>> + Send;
}

/// Decode `args` for job `name` and run it (the Celery bridge's dynamic dispatch). `None` when
/// no job has that name.
pub async fn run_named(
    name: &str,
    args: serde_json::Value,
    ctx: &crate::context::JobContext,
) -> Option<Result<(), JobError>> {
    async fn go<T: Job>(
        args: serde_json::Value,
        ctx: &crate::context::JobContext,
    ) -> Result<(), JobError> {
        let job = crate::registry::decode::<T>(args)
            .map_err(|e| JobError::Permanent(format!("invalid arguments: {e}")))?;
        job.run(ctx).await
    }
    Some(match name {
        PersistAnonymousSession::NAME => go::<PersistAnonymousSession>(args, ctx).await,
        FinalizeAnonymousSession::NAME => go::<FinalizeAnonymousSession>(args, ctx).await,
        CleanupOldAnonymousData::NAME => go::<CleanupOldAnonymousData>(args, ctx).await,
        AggregatePageAnalytics::NAME => go::<AggregatePageAnalytics>(args, ctx).await,
        FinalizeIdleSessions::NAME => go::<FinalizeIdleSessions>(args, ctx).await,
        EnhanceSessionAsync::NAME => go::<EnhanceSessionAsync>(args, ctx).await,
        LinkAnonymousConversion::NAME => go::<LinkAnonymousConversion>(args, ctx).await,
        _ => return None,
    })
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

impl From<crate::queues::EnqueueError> for JobError {
    fn from(e: crate::queues::EnqueueError) -> Self {
        Self::Retry(e.into())
    }
}

/// Validates a fingerprint ([`crate::hot::Fingerprint`]'s rule), naming the field.
pub fn check_fingerprint(fp: &str) -> Result<(), crate::registry::ArgError> {
    crate::hot::Fingerprint::parse(fp)
        .map(|_| ())
        .map_err(|e| crate::registry::ArgError::new("fingerprint", e.to_string()))
}
