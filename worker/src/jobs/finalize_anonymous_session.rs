//! `finalize_anonymous_session`: once a session has ended (its live document expired on Redis's
//! clock), write it and all its views to the database and mark it ended, however late this runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Job, JobError};
use crate::context::JobContext;
use crate::hot::Fingerprint;
use crate::registry::{ArgError, JobArgs};
use crate::store;

/// Arguments: the visitor and the session to end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinalizeAnonymousSession {
    /// Device fingerprint.
    pub fingerprint: Fingerprint,
    /// The session's id (the row's primary key).
    pub session_id: Uuid,
}

impl JobArgs for FinalizeAnonymousSession {
    const NAME: &'static str = "finalize_anonymous_session";
    const POSITIONAL: &'static [&'static str] = &["fingerprint", "session_id"];

    fn validate(&self) -> Result<(), ArgError> {
        // The fingerprint was checked when the arguments were decoded (its type).
        Ok(())
    }
}

/// How long after the live document's expiry a snoozed finalize comes back.
const AFTER_EXPIRY: Duration = Duration::from_secs(1);

impl Job for FinalizeAnonymousSession {
    /// While the session's document lives (Redis's clock: its TTL), come back when it expires;
    /// then write the session and every buffered view, and end it.
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let snap = store::read_anon_session(ctx, &self.fingerprint).await?;
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
        let written = async {
            if let Some(doc) = live {
                store::upsert_anon_session(ctx, doc).await?;
            }
            store::flush_page_views(ctx, &self.fingerprint, self.session_id, live, true).await?;
            end_session(ctx, self.session_id).await?;
            Ok::<(), JobError>(())
        }
        .await;
        // Also after a failed attempt: what it wrote must not outlive an erasure.
        store::undo_if_erased(ctx, &self.fingerprint, self.session_id, snap.now_ms).await?;
        written?;
        store::forget_if_done(ctx, &self.fingerprint).await?;
        Ok(())
    }
}

/// Mark a session ended at its last activity. Idempotent: an ended session is left as it is.
pub(crate) async fn end_session(ctx: &JobContext, session_id: Uuid) -> Result<u64, sea_orm::DbErr> {
    let duration = match ctx.backend() {
        sea_orm::DatabaseBackend::Postgres => {
            "CAST(EXTRACT(EPOCH FROM (last_activity - session_start)) AS INTEGER)"
        }
        _ => {
            "CAST(ROUND((julianday(last_activity) - julianday(session_start)) * 86400) AS INTEGER)"
        }
    };
    ctx.execute(
        &format!(
            "UPDATE analytics_anonymoussession SET is_active = FALSE, session_end = last_activity, \
             duration_seconds = {duration} WHERE id = $1 AND is_active"
        ),
        vec![session_id.into()],
    )
    .await
}
