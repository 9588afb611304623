//! Erasing jobs by id: the queue's part of a right-to-erasure request (`lua/erase.lua`).

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionLike;

use crate::{Queue, QueueError};

pub(crate) static ERASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/erase.lua")));

impl<C> Queue<C>
where
    C: ConnectionLike + Clone + Send + Sync,
{
    /// Forget the jobs `ids` that wait, finished or died; give the running ones `redacted` as
    /// their stored payload (their worker keeps the arguments it holds). Unknown ids are
    /// skipped. Returns how many jobs were touched. Costs one `LREM` over `pending` per id
    /// that is not running.
    pub async fn erase(&self, ids: &[String], redacted: &str) -> Result<u64, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let k = self.keys();
        let n: u64 = ERASE
            .key(&k.pending)
            .key(&k.scheduled)
            .key(&k.running)
            .key(&k.jobs)
            .key(&k.attempts)
            .key(&k.errors)
            .key(&k.done)
            .key(&k.dead)
            .key(&k.leases)
            .arg(redacted)
            .arg(ids)
            .invoke_async(&mut self.connection())
            .await?;
        Ok(n)
    }
}
