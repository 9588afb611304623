//! `persist_anonymous_session`: copy the live `anon_session:{fingerprint}` document into its row.

use serde::{Deserialize, Serialize};

use super::{Job, JobError, check_fingerprint};
use crate::context::JobContext;
use crate::registry::{ArgError, JobArgs};
use crate::store;

/// Arguments: the visitor's fingerprint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersistAnonymousSession {
    /// Device fingerprint; the Redis key is `anon_session:{fingerprint}`.
    pub fingerprint: String,
}

impl JobArgs for PersistAnonymousSession {
    const NAME: &'static str = "persist_anonymous_session";
    const POSITIONAL: &'static [&'static str] = &["fingerprint"];

    fn validate(&self) -> Result<(), ArgError> {
        check_fingerprint(&self.fingerprint)
    }
}

impl Job for PersistAnonymousSession {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let Some(doc) = store::read_anon_session(ctx, &self.fingerprint).await? else {
            tracing::info!("anon_session key is gone; nothing to persist");
            return Ok(());
        };
        store::upsert_anon_session(ctx, &doc).await?;
        store::flush_page_views(ctx, &self.fingerprint, doc.session_id).await?;
        Ok(())
    }
}
