//! The job registry: every job's name, argument type, validation and retry budget, in one place
//! that producers (API, CLI, scheduler, Celery bridge) and consumers share. Made from the one
//! list of jobs, [`with_jobs!`](crate::with_jobs).

use crate::args::{ArgError, JobArgs, decode};
use crate::jobs;

/// What the registry knows of one job.
#[derive(Debug, Clone, Copy)]
pub struct JobSpec {
    /// The job's name.
    pub name: &'static str,
    /// Attempts before it is dead.
    pub max_attempts: u32,
    /// Field names of the Celery task's positional arguments, in order.
    pub positional: &'static [&'static str],
    /// Its default schedule, if it is periodic.
    pub schedule: Option<&'static str>,
    /// Its default time limit in seconds ([`JobArgs::TIME_LIMIT_SECONDS`]).
    pub time_limit_seconds: u64,
    /// Decode and validate arguments; returns them normalized (defaults filled in).
    pub check: fn(serde_json::Value) -> Result<serde_json::Value, ArgError>,
}

fn check<T: JobArgs>(value: serde_json::Value) -> Result<serde_json::Value, ArgError> {
    let args = decode::<T>(value)?;
    serde_json::to_value(args).map_err(|e| ArgError::new("", e.to_string()))
}

const fn spec<T: JobArgs>() -> JobSpec {
    JobSpec {
        name: T::NAME,
        max_attempts: T::MAX_ATTEMPTS,
        positional: T::POSITIONAL,
        schedule: T::SCHEDULE,
        time_limit_seconds: T::TIME_LIMIT_SECONDS,
        check: check::<T>,
    }
}

macro_rules! specs {
    ($($job:ident),*) => {
        /// Every job (`jobs::with_jobs!`), in the order the worker registers them.
        pub static JOBS: &[JobSpec] = &[$(spec::<jobs::$job>()),*];
    };
}
crate::with_jobs!(specs);

/// The job called `name`.
pub fn find(name: &str) -> Option<&'static JobSpec> {
    JOBS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_arguments_name_their_field() {
        let persist = find("persist_anonymous_session").unwrap();
        let e = (persist.check)(json!({})).unwrap_err();
        assert_eq!(e.field, "fingerprint");
        let e = (persist.check)(json!({"fingerprint": 5})).unwrap_err();
        assert_eq!(e.field, "fingerprint");
        let e = (persist.check)(json!({"fingerprint": ""})).unwrap_err();
        assert_eq!(e.field, "fingerprint");
        assert!((persist.check)(json!({"fingerprint": "abc"})).is_ok());
        let cleanup = find("cleanup_old_anonymous_data").unwrap();
        assert_eq!(
            (cleanup.check)(json!({})).unwrap(),
            json!({"retention_days": 90})
        );
        assert!(find("nope").is_none());
    }
}
