//! `finalize_idle_sessions`: the sweep that ends sessions idle past the timeout whose finalize job was lost.

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use super::finalize_anonymous_session::end_session;
use super::{Job, JobError};
use crate::context::JobContext;
use crate::registry::JobArgs;
use crate::store;
use entity::anonymous_session;

/// No arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FinalizeIdleSessions {}

impl JobArgs for FinalizeIdleSessions {
    const NAME: &'static str = "finalize_idle_sessions";
}

/// Rows examined per step.
const BATCH: u64 = 500;

impl Job for FinalizeIdleSessions {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let timeout = chrono::Duration::from_std(ctx.settings.anon_session_timeout)
            .map_err(|e| JobError::Permanent(e.to_string()))?;
        let cutoff = Utc::now() - timeout;
        let mut ended = 0u64;
        let mut after: Option<uuid::Uuid> = None;
        loop {
            let mut q = anonymous_session::Entity::find()
                .filter(anonymous_session::Column::IsActive.eq(true))
                .filter(anonymous_session::Column::LastActivity.lt(cutoff))
                .order_by_asc(anonymous_session::Column::Id)
                .limit(BATCH);
            if let Some(id) = after {
                q = q.filter(anonymous_session::Column::Id.gt(id));
            }
            let rows = q.all(&ctx.db).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.id);
            for row in &rows {
                // A document that is still live and newer belongs to a session that is not idle.
                let live = store::read_anon_session(ctx, &row.device_fingerprint).await?;
                if live.is_some_and(|doc| doc.session_id == row.id && doc.last_activity >= cutoff) {
                    continue;
                }
                ended += end_session(ctx, row.id).await?;
            }
            if (rows.len() as u64) < BATCH {
                break;
            }
        }
        if ended > 0 {
            tracing::info!(ended, "finalized idle anonymous sessions");
        }
        Ok(())
    }
}
