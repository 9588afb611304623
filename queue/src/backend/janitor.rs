//! The janitor task: forgets done and dead jobs past their retention, every `cleanup_every`.

use std::sync::Arc;

use redis::aio::ConnectionLike;

use super::Shared;

pub(super) async fn janitor<C>(shared: Arc<Shared<C>>)
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    let mut tick = tokio::time::interval(shared.options.cleanup_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match shared.queue.cleanup().await {
            Ok((0, 0)) => {}
            Ok((done, dead)) => {
                tracing::info!(
                    queue = shared.queue.name(),
                    done,
                    dead,
                    "forgot jobs past retention"
                )
            }
            Err(e) => tracing::warn!(queue = shared.queue.name(), error = %e, "cleanup failed"),
        }
    }
}
