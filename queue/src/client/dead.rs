//! Dead jobs: listing them, putting one back in line, or forgetting it.

use redis::aio::ConnectionLike;

use super::Queue;
use crate::error::QueueError;
use crate::scripts;

impl<C: ConnectionLike + Clone + Send + Sync> Queue<C> {
    /// Dead jobs, oldest death first, at most `limit`.
    pub async fn dead_ids(&self, limit: usize) -> Result<Vec<String>, QueueError> {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&self.keys.dead)
            .arg(0)
            .arg(limit.saturating_sub(1))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(ids)
    }

    /// Put a dead job back in line with fresh attempts; false when `id` is not dead.
    pub async fn requeue_dead(&self, id: &str) -> Result<bool, QueueError> {
        let k = &self.keys;
        let n: i64 = scripts::REQUEUE
            .key(&k.pending)
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.dead)
            .arg(id)
            .arg(&k.notify)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(n == 1)
    }

    /// Forget a dead job; false when `id` is not dead.
    pub async fn discard_dead(&self, id: &str) -> Result<bool, QueueError> {
        let k = &self.keys;
        let n: i64 = scripts::DISCARD
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.errors)
            .key(&k.dead)
            .key(&k.leases)
            .arg(id)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(n == 1)
    }
}
