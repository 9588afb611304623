//! Retention: forgetting done and dead jobs once their retention has passed, in bounded steps.

use redis::aio::ConnectionLike;

use super::Queue;
use crate::error::QueueError;
use crate::scripts;

/// Ids removed per cleanup step.
const CLEANUP_LIMIT: usize = 500;

impl<C: ConnectionLike + Clone + Send + Sync> Queue<C> {
    /// One bounded cleanup step: forget up to 500 done and 500 dead jobs past their retention.
    /// Returns (done removed, dead removed); call again while either is 500.
    pub async fn cleanup_step(&self) -> Result<(u64, u64), QueueError> {
        let k = &self.keys;
        let (done, dead): (u64, u64) = scripts::CLEANUP
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.errors)
            .key(&k.done)
            .key(&k.dead)
            .key(&k.leases)
            .key(&k.revoked)
            .arg(self.config.done_retention.as_millis() as u64)
            .arg(self.config.dead_retention.as_millis() as u64)
            .arg(CLEANUP_LIMIT)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok((done, dead))
    }

    /// Cleanup steps until nothing past its retention is left; returns the totals.
    pub async fn cleanup(&self) -> Result<(u64, u64), QueueError> {
        let mut total = (0, 0);
        loop {
            let (done, dead) = self.cleanup_step().await?;
            total.0 += done;
            total.1 += dead;
            if done < CLEANUP_LIMIT as u64 && dead < CLEANUP_LIMIT as u64 {
                return Ok(total);
            }
        }
    }
}
