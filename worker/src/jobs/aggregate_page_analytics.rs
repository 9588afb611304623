//! `aggregate_page_analytics`: recompute a day's PageAnalytics rows from the page-view log, bots left out.

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Job, JobError};
use crate::context::JobContext;
use crate::registry::{ArgError, JobArgs};

/// Arguments: the day to recompute (default: today and yesterday, UTC).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AggregatePageAnalytics {
    /// The UTC day, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
}

impl JobArgs for AggregatePageAnalytics {
    const NAME: &'static str = "aggregate_page_analytics";
    const POSITIONAL: &'static [&'static str] = &["date"];

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

impl Job for AggregatePageAnalytics {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let days = match self.date {
            Some(d) => vec![d],
            None => {
                let today = Utc::now().date_naive();
                vec![today - chrono::Days::new(1), today]
            }
        };
        for day in days {
            let pages = aggregate_day(ctx, day).await?;
            tracing::info!(%day, pages, "page analytics recomputed");
        }
        Ok(())
    }
}

/// Replace the rows of `day` with counts recomputed from the log; returns the pages written.
pub async fn aggregate_day(ctx: &JobContext, day: NaiveDate) -> Result<u64, JobError> {
    let start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = start + chrono::Duration::days(1);
    ctx.execute(
        "DELETE FROM analytics_pageanalytics WHERE date = $1 AND url_path NOT IN \
         (SELECT url_path FROM analytics_pageviewlog WHERE viewed_at >= $2 AND viewed_at < $3 AND NOT is_bot)",
        vec![day.into(), start.into(), end.into()],
    )
    .await?;
    let written = ctx
        .execute(
            "INSERT INTO analytics_pageanalytics (date, url_path, page_type, total_views, anonymous_views, \
             authenticated_views, unique_visitors) \
             SELECT $1, url_path, MAX(page_type), COUNT(*), \
             SUM(CASE WHEN is_authenticated THEN 0 ELSE 1 END), SUM(CASE WHEN is_authenticated THEN 1 ELSE 0 END), \
             COUNT(DISTINCT visitor_key) FROM analytics_pageviewlog \
             WHERE viewed_at >= $2 AND viewed_at < $3 AND NOT is_bot GROUP BY url_path \
             ON CONFLICT (date, url_path) DO UPDATE SET page_type = excluded.page_type, \
             total_views = excluded.total_views, anonymous_views = excluded.anonymous_views, \
             authenticated_views = excluded.authenticated_views, unique_visitors = excluded.unique_visitors",
            vec![day.into(), start.into(), end.into()],
        )
        .await?;
    Ok(written)
}
