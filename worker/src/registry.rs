//! The job registry: every job's name, argument type, validation and retry budget, in one place
//! that producers (API, CLI, scheduler, Celery bridge) and consumers share.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::jobs;

/// Arguments that do not validate, naming the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ArgError {
    /// The field, as a dotted path (`""` when the whole body is wrong).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ArgError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A job's argument type.
pub trait JobArgs: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The job's name: the Celery task name it replaces, and its queue's name.
    const NAME: &'static str;
    /// Attempts before the job is dead (crashes included). Ten attempts with the default
    /// backoff (1 s doubling, capped at 10 min) ride out a database outage of several minutes.
    const MAX_ATTEMPTS: u32 = 10;
    /// Field names of the Celery task's positional arguments, in order.
    const POSITIONAL: &'static [&'static str] = &[];

    /// Checks beyond the JSON shape.
    fn validate(&self) -> Result<(), ArgError> {
        Ok(())
    }
}

/// Decode and validate arguments, naming the field that fails.
pub fn decode<T: JobArgs>(value: serde_json::Value) -> Result<T, ArgError> {
    let args: T = decode_value(value)?;
    args.validate()?;
    Ok(args)
}

/// Decode any JSON value into `T`, naming the field that fails (`fingerprint`, `items.3.url`).
pub fn decode_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ArgError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names a missing field only in its message: "missing field `x`".
        let field = match inner.split_once("missing field `") {
            Some((_, rest)) => rest.split('`').next().unwrap_or_default().to_owned(),
            None if path == "." => String::new(),
            None => path,
        };
        ArgError::new(field, inner)
    })
}

/// What the registry knows of one job.
#[derive(Debug, Clone, Copy)]
pub struct JobSpec {
    /// The job's name.
    pub name: &'static str,
    /// Attempts before it is dead.
    pub max_attempts: u32,
    /// Field names of the Celery task's positional arguments, in order.
    pub positional: &'static [&'static str],
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
