//! Every job's arguments, one module each, named after the Celery task it replaces, and the one
//! list of jobs. The work each job does is in the `worker` crate (`worker/src/jobs/<job>.rs`).

mod aggregate_page_analytics;
mod cleanup_old_anonymous_data;
mod end_expired_sessions;
mod enhance_session_async;
mod finalize_anonymous_session;
mod finalize_idle_sessions;
mod link_anonymous_conversion;
mod persist_anonymous_session;

pub use aggregate_page_analytics::AggregatePageAnalytics;
pub use cleanup_old_anonymous_data::CleanupOldAnonymousData;
pub use end_expired_sessions::EndExpiredSessions;
pub use enhance_session_async::EnhanceSessionAsync;
pub use finalize_anonymous_session::FinalizeAnonymousSession;
pub use finalize_idle_sessions::FinalizeIdleSessions;
pub use link_anonymous_conversion::LinkAnonymousConversion;
pub use persist_anonymous_session::PersistAnonymousSession;

/// The one list of jobs: `with_jobs!(m)` expands to `m! { Job1, Job2, ... }`, and the registry
/// (`registry::JOBS`, which the API, `/v1/queues`, the scheduler's checks and the Celery bridge
/// read), the worker's consumers and the Celery dispatch are all made from it. Adding a job is
/// its arguments (a module above), its work (`impl Job` in `worker/src/jobs/<job>.rs`; the
/// worker does not build until every listed job has one) and one name here.
#[macro_export]
macro_rules! with_jobs {
    ($m:ident) => {
        $m! {
            PersistAnonymousSession,
            FinalizeAnonymousSession,
            CleanupOldAnonymousData,
            AggregatePageAnalytics,
            FinalizeIdleSessions,
            EndExpiredSessions,
            EnhanceSessionAsync,
            LinkAnonymousConversion
        }
    };
}

/// Validates a fingerprint ([`crate::keys::Fingerprint`]'s rule), naming the field.
pub fn check_fingerprint(fp: &str) -> Result<(), crate::args::ArgError> {
    crate::keys::Fingerprint::parse(fp)
        .map(|_| ())
        .map_err(|e| crate::args::ArgError::new("fingerprint", e.to_string()))
}
