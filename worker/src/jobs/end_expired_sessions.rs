//! `end_expired_sessions`: a signed-in session whose `expires_at` has passed ends (`is_active`
//! false, `ended_at` = `expires_at`, and `is_ended` where the table has it), as the seed's
//! `is_active` implies; its `session:{hashed_id}` key expired at the same time by its TTL.

use super::{Job, JobError};
use crate::context::JobContext;
use domain::jobs::EndExpiredSessions;

impl Job for EndExpiredSessions {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        // Due-ness on the fleet's one clock, Redis's: a worker's clock never ends a session early.
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut ctx.redis.clone())
            .await?;
        let now = chrono::DateTime::from_timestamp(secs, (micros * 1000) as u32)
            .ok_or_else(|| JobError::Permanent("Redis TIME out of range".into()))?;
        let ended = if ctx.shape.get(&ctx.db).await?.session_is_ended {
            ", is_ended = TRUE"
        } else {
            ""
        };
        let n = ctx
            .execute(
                &format!(
                    "UPDATE accounts_usersession SET is_active = FALSE, ended_at = expires_at{ended} \
                     WHERE is_active AND expires_at <= $1"
                ),
                vec![now.into()],
            )
            .await?;
        tracing::info!(sessions = n, "ended expired signed-in sessions");
        Ok(())
    }
}
