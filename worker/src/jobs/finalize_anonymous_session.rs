//! `finalize_anonymous_session`: end a session idle for the timeout, or come back when it could be.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Job, JobError, check_fingerprint};
use crate::context::JobContext;
use crate::queues::EnqueueItem;
use crate::registry::{ArgError, JobArgs};
use crate::store;

/// Arguments: the visitor and the session to end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinalizeAnonymousSession {
    /// Device fingerprint.
    pub fingerprint: String,
    /// The session's id (the row's primary key).
    pub session_id: Uuid,
}

impl JobArgs for FinalizeAnonymousSession {
    const NAME: &'static str = "finalize_anonymous_session";
    const POSITIONAL: &'static [&'static str] = &["fingerprint", "session_id"];

    fn validate(&self) -> Result<(), ArgError> {
        check_fingerprint(&self.fingerprint)
    }
}

/// When a session last active at `last_activity` is finalized: after the timeout less a grace
/// (5 s, or a tenth of a short timeout), so the document is read before Redis expires it (its
/// TTL equals the timeout).
pub fn finalize_due(last_activity: DateTime<Utc>, timeout: Duration) -> DateTime<Utc> {
    let wait = timeout.saturating_sub((timeout / 10).min(Duration::from_secs(5)));
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|w| last_activity.checked_add_signed(w))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl FinalizeAnonymousSession {
    /// The uniqueness key that keeps one finalize pending per session and due time.
    pub fn unique_key(session_id: Uuid, due_ms: i64) -> String {
        format!("finalize:{session_id}:{due_ms}")
    }
}

impl Job for FinalizeAnonymousSession {
    /// Persist the last state and end the session, or reschedule while it is still active.
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let live = store::read_anon_session(ctx, &self.fingerprint)
            .await?
            .filter(|doc| doc.session_id == self.session_id);
        if let Some(doc) = live {
            {
                let due = finalize_due(doc.last_activity, ctx.settings.anon_session_timeout);
                if due > Utc::now() {
                    let due_ms = due.timestamp_millis();
                    let args = serde_json::to_value(&self).map_err(anyhow::Error::from)?;
                    ctx.queues
                        .enqueue_many(
                            Self::NAME,
                            vec![EnqueueItem {
                                args,
                                when: celeriac_queue::When::At(due_ms),
                                unique: Some((
                                    Self::unique_key(self.session_id, due_ms),
                                    ctx.settings.anon_session_timeout * 2,
                                )),
                            }],
                        )
                        .await?;
                    tracing::debug!(due_ms, "session still active; finalize rescheduled");
                    return Ok(());
                }
                store::upsert_anon_session(ctx, &doc).await?;
            }
        }
        store::flush_page_views(ctx, &self.fingerprint, self.session_id).await?;
        end_session(ctx, self.session_id).await?;
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
