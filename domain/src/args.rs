//! What a job's arguments are: the [`JobArgs`] trait (name, attempts, Celery positional order,
//! validation), decoding that names the failing field, and [`ArgError`].

use serde::Serialize;
use serde::de::DeserializeOwned;

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
    /// When the scheduler enqueues it by default (cron with seconds, UTC; SPEC §4), if it is
    /// periodic. `SCHEDULE_<JOB_NAME>` overrides it.
    const SCHEDULE: Option<&'static str> = None;
    /// How long one run may take before it is cancelled and counted as a failed attempt (a hung
    /// database call must not hold a slot and its lease forever). `JOB_TIME_LIMIT_<JOB_NAME>`
    /// (seconds; `0` = none) overrides it; a Celery message's `timelimit` header does too.
    const TIME_LIMIT_SECONDS: u64 = 300;

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
