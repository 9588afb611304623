//! The renewer task: extends the leases of jobs still running here, so only a lost worker's jobs
//! are reaped, and learns which of them were revoked.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;

use super::Shared;

pub(super) async fn renewer<C>(shared: Arc<Shared<C>>)
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    let every = (shared.queue.config().lease / 3).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let held: Vec<(String, u64)> = shared
            .held()
            .iter()
            .map(|(id, token)| (id.clone(), *token))
            .collect();
        if held.is_empty() {
            continue;
        }
        match shared.queue.renew(&held).await {
            // A revoke whose message this process missed (it was reconnecting) arrives here.
            Ok(renewed) => renewed.revoked.iter().for_each(|id| shared.revoke_held(id)),
            Err(e) => {
                tracing::warn!(queue = shared.queue.name(), error = %e, "lease renewal failed")
            }
        }
    }
}
