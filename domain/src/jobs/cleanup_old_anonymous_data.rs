//! `cleanup_old_anonymous_data`'s arguments (its work: `worker/src/jobs/cleanup_old_anonymous_data.rs`).

use serde::{Deserialize, Serialize};

use crate::args::{ArgError, JobArgs};

/// Arguments: how many days of anonymous data to keep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CleanupOldAnonymousData {
    /// Retention in days (default 90, the privacy rule).
    #[serde(default = "default_retention")]
    pub retention_days: u32,
}

fn default_retention() -> u32 {
    90
}

impl JobArgs for CleanupOldAnonymousData {
    const NAME: &'static str = "cleanup_old_anonymous_data";
    const SCHEDULE: Option<&'static str> = Some("0 0 3 * * *");
    const POSITIONAL: &'static [&'static str] = &["retention_days"];
    const MAX_ATTEMPTS: u32 = 3;
    /// It deletes 90 days of a big site's data in batches: an hour.
    const TIME_LIMIT_SECONDS: u64 = 3600;

    fn validate(&self) -> Result<(), ArgError> {
        if self.retention_days == 0 || self.retention_days > 3650 {
            return Err(ArgError::new(
                "retention_days",
                "must be between 1 and 3650",
            ));
        }
        Ok(())
    }
}
