//! `cleanup_old_anonymous_data`: delete anonymous sessions and page views past retention, in bounded
//! batches; a converted session keeps its conversion link, without what identifies the device.

use chrono::Utc;

use super::{Job, JobError};
use crate::context::JobContext;
use domain::jobs::CleanupOldAnonymousData;

/// Rows deleted per statement.
const BATCH: i64 = 1000;

impl Job for CleanupOldAnonymousData {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let cutoff = Utc::now() - chrono::Duration::days(i64::from(self.retention_days));
        let views = delete_batches(
            ctx,
            "DELETE FROM analytics_anonymouspageview WHERE id IN \
             (SELECT v.id FROM analytics_anonymouspageview v JOIN analytics_anonymoussession s \
              ON s.id = v.session_id WHERE s.session_start < $1 LIMIT $2)",
            cutoff,
        )
        .await?;
        let sessions = delete_batches(
            ctx,
            "DELETE FROM analytics_anonymoussession WHERE id IN \
             (SELECT id FROM analytics_anonymoussession \
              WHERE session_start < $1 AND converted_to_user_id IS NULL LIMIT $2)",
            cutoff,
        )
        .await?;
        // The conversion link is kept forever (the seed's privacy matrix): a converted session
        // keeps what the conversion analytics read (the link, when, pages, duration, landing page
        // and referrer) and loses what identifies the device or places it (address, user agent,
        // fingerprint, location).
        let minimized = delete_batches(
            ctx,
            "UPDATE analytics_anonymoussession SET ip_address = NULL, user_agent = '', \
             device_fingerprint = '', device_type = '', browser = '', os = '', location_data = '{}' WHERE id IN \
             (SELECT id FROM analytics_anonymoussession WHERE session_start < $1 \
              AND converted_to_user_id IS NOT NULL \
              AND (device_fingerprint <> '' OR user_agent <> '' OR ip_address IS NOT NULL) LIMIT $2)",
            cutoff,
        )
        .await?;
        let logs = delete_batches(
            ctx,
            "DELETE FROM analytics_pageviewlog WHERE id IN \
             (SELECT id FROM analytics_pageviewlog WHERE viewed_at < $1 AND NOT is_authenticated LIMIT $2)",
            cutoff,
        )
        .await?;
        tracing::info!(
            retention_days = self.retention_days,
            sessions,
            converted_kept_minimal = minimized,
            page_views = views,
            view_log = logs,
            "deleted old anonymous data"
        );
        Ok(())
    }
}

async fn delete_batches(
    ctx: &JobContext,
    sql: &str,
    cutoff: chrono::DateTime<Utc>,
) -> Result<u64, JobError> {
    let mut total = 0;
    loop {
        let n = ctx.execute(sql, vec![cutoff.into(), BATCH.into()]).await?;
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
    }
}
