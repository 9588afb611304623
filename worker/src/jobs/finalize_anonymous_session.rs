//! `finalize_anonymous_session`: once a session has ended (its live document expired on Redis's
//! clock), write it and all its views to the database and mark it ended, however late this runs.

use std::time::Duration;

use super::{Job, JobError};
use crate::context::JobContext;
use crate::store;
use domain::jobs::FinalizeAnonymousSession;

/// How long after the live document's expiry a snoozed finalize comes back.
const AFTER_EXPIRY: Duration = Duration::from_secs(1);

impl Job for FinalizeAnonymousSession {
    /// The erasure undo below runs even when the write ran out of time.
    const LIMITS_ITS_WRITES: bool = true;

    /// While the session's document lives (Redis's clock: its TTL), come back when it expires;
    /// then write the session and every buffered view, and end it.
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let snap = ctx.reads.session(&self.fingerprint).await?;
        let live = snap
            .doc
            .as_ref()
            .filter(|doc| doc.session_id == self.session_id);
        if let Some(doc) = live {
            let wait = match snap.pttl_ms {
                // A document without a TTL (written by another producer) ends when it has been
                // idle for the timeout, counted on Redis's clock.
                -1 => {
                    let idle = snap.now_ms - doc.last_activity.timestamp_millis();
                    let timeout = ctx.settings.anon_session_timeout.as_millis() as i64;
                    (timeout - idle).max(0) as u64
                }
                ms => ms.max(0) as u64,
            };
            if wait > 0 {
                let delay = Duration::from_millis(wait) + AFTER_EXPIRY;
                tracing::debug!(
                    delay_ms = delay.as_millis() as u64,
                    "session still active; finalize snoozed"
                );
                return Err(JobError::Snooze(delay));
            }
        }
        let written = super::within_time_limit(super::run_limit(), async {
            if let Some(doc) = live {
                ctx.sessions.upsert(doc.clone()).await?;
            }
            store::flush_page_views(
                &ctx.db,
                &ctx.redis,
                &ctx.sessions,
                &self.fingerprint,
                self.session_id,
                live.map(|d| &**d),
                true,
            )
            .await?;
            store::end_session(&ctx.db, self.session_id).await?;
            Ok::<(), JobError>(())
        })
        .await;
        // Also after a failed attempt: what it wrote must not outlive an erasure.
        store::undo_if_erased(
            &ctx.db,
            &ctx.reads,
            &self.fingerprint,
            self.session_id,
            snap.now_ms,
        )
        .await?;
        written?;
        store::forget_if_done(&ctx.redis, &self.fingerprint).await?;
        Ok(())
    }
}
