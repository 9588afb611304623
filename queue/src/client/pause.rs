//! Pausing a queue: while paused, workers lease nothing from it (pushes, retries and lost leases
//! still land in it, so nothing is lost); resuming wakes idle workers at once.

use redis::aio::ConnectionLike;

use super::Queue;
use crate::error::QueueError;

impl<C: ConnectionLike + Clone + Send + Sync> Queue<C> {
    /// Stop workers from leasing this queue's jobs (jobs already running finish).
    pub async fn pause(&self) -> Result<(), QueueError> {
        let _: () = redis::cmd("SET")
            .arg(&self.keys.paused)
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Let workers lease again, and wake the idle ones.
    pub async fn resume(&self) -> Result<(), QueueError> {
        let _: () = redis::pipe()
            .atomic()
            .del(&self.keys.paused)
            .ignore()
            .publish(&self.keys.notify, "1")
            .ignore()
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}
