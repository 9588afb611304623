//! `aggregate_page_analytics`'s arguments (its work: `worker/src/jobs/aggregate_page_analytics.rs`).

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::args::{ArgError, JobArgs};

/// Arguments: the day to recompute (default: today and yesterday, UTC).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AggregatePageAnalytics {
    /// The UTC day, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
}

impl JobArgs for AggregatePageAnalytics {
    const NAME: &'static str = "aggregate_page_analytics";
    const SCHEDULE: Option<&'static str> = Some("0 */15 * * * *");
    const POSITIONAL: &'static [&'static str] = &["date"];
    /// A day's log may hold millions of rows: half an hour.
    const TIME_LIMIT_SECONDS: u64 = 1800;

    fn validate(&self) -> Result<(), ArgError> {
        if self
            .date
            .is_some_and(|d| d > Utc::now().date_naive() + chrono::Days::new(1))
        {
            return Err(ArgError::new("date", "is in the future"));
        }
        Ok(())
    }
}
