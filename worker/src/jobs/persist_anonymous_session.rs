//! `persist_anonymous_session`: copy the live `anon_session:{fingerprint}` document into its row.

use serde::{Deserialize, Serialize};

use super::{Job, JobError};
use crate::context::JobContext;
use crate::hot::Fingerprint;
use crate::registry::{ArgError, JobArgs};
use crate::store;

/// Arguments: the visitor's fingerprint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersistAnonymousSession {
    /// Device fingerprint; the Redis key is `anon_session:{fingerprint}`.
    pub fingerprint: Fingerprint,
}

impl JobArgs for PersistAnonymousSession {
    const NAME: &'static str = "persist_anonymous_session";
    const POSITIONAL: &'static [&'static str] = &["fingerprint"];

    fn validate(&self) -> Result<(), ArgError> {
        // The fingerprint was checked when the arguments were decoded (its type).
        Ok(())
    }
}

impl Job for PersistAnonymousSession {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let snap = store::read_anon_session(ctx, &self.fingerprint).await?;
        let Some(doc) = snap.doc else {
            // The session has ended: its finalize writes it, from the buffered views.
            tracing::debug!("anon_session key is gone; the session's finalize writes it");
            return Ok(());
        };
        let written = async {
            store::upsert_anon_session(ctx, &doc).await?;
            store::flush_page_views(ctx, &self.fingerprint, doc.session_id, Some(&doc), false)
                .await?;
            Ok::<(), JobError>(())
        }
        .await;
        // Also after a failed attempt: what it wrote must not outlive an erasure.
        store::undo_if_erased(ctx, &self.fingerprint, doc.session_id, snap.now_ms).await?;
        written
    }
}
