//! `persist_anonymous_session`: copy the live `anon_session:{fingerprint}` document into its row.

use super::{Job, JobError};
use crate::context::JobContext;
use crate::store;
use domain::jobs::PersistAnonymousSession;

impl Job for PersistAnonymousSession {
    /// The erasure undo below runs even when the write ran out of time.
    const LIMITS_ITS_WRITES: bool = true;

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let snap = ctx.reads.session(&self.fingerprint).await?;
        let Some(doc) = snap.doc else {
            // The session has ended: its finalize writes it, from the buffered views.
            tracing::debug!("anon_session key is gone; the session's finalize writes it");
            return Ok(());
        };
        let session_id = doc.session_id;
        let written = super::within_time_limit(super::run_limit(), async {
            // At most one view buffered at the read: a flush would write nothing (a live
            // session's newest view waits for its next view or its finalize, and another
            // session's view for that session's finalize), so it is not read. A view buffered
            // since waits for the next persist or the finalize.
            let flushed = (snap.buffered > 1).then(|| doc.clone());
            ctx.sessions.upsert(doc).await?;
            let Some(doc) = flushed else {
                return Ok(());
            };
            // Boxed: the flush's future is large, and kept inline it would be allocated with
            // every persist in flight, flush or not.
            Box::pin(store::flush_page_views(
                &ctx.db,
                &ctx.redis,
                &ctx.sessions,
                &self.fingerprint,
                session_id,
                Some(&*doc),
                false,
            ))
            .await?;
            Ok::<(), JobError>(())
        })
        .await;
        // Also after a failed attempt: what it wrote must not outlive an erasure.
        store::undo_if_erased(
            &ctx.db,
            &ctx.reads,
            &self.fingerprint,
            session_id,
            snap.now_ms,
        )
        .await?;
        written
    }
}
