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
        Ok(self.requeue_dead_many(&[id]).await? == 1)
    }

    /// Put these dead jobs back in line, in one script call; how many were dead (and requeued).
    pub async fn requeue_dead_many(&self, ids: &[impl AsRef<str>]) -> Result<u64, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let k = &self.keys;
        let mut inv = scripts::REQUEUE.prepare_invoke();
        inv.key(&k.pending)
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.dead)
            .key(&k.revoked)
            .arg(&k.notify);
        for id in ids {
            inv.arg(id.as_ref());
        }
        Ok(inv.invoke_async(&mut self.conn.clone()).await?)
    }

    /// Forget a dead job; false when `id` is not dead.
    pub async fn discard_dead(&self, id: &str) -> Result<bool, QueueError> {
        Ok(self.discard_dead_many(&[id]).await? == 1)
    }

    /// Forget these dead jobs, in one script call; how many were dead (and discarded).
    pub async fn discard_dead_many(&self, ids: &[impl AsRef<str>]) -> Result<u64, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let k = &self.keys;
        let mut inv = scripts::DISCARD.prepare_invoke();
        inv.key(&k.jobs)
            .key(&k.attempts)
            .key(&k.errors)
            .key(&k.dead)
            .key(&k.leases);
        for id in ids {
            inv.arg(id.as_ref());
        }
        Ok(inv.invoke_async(&mut self.conn.clone()).await?)
    }
}
