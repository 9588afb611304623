//! The waker task: subscribes to the queue's push channel (pub/sub), wakes the idle fetcher on a
//! push and raises the revoke signal of a held job named by a revoke (`revoke:<id>`).

use std::sync::Arc;

use futures::StreamExt;
use redis::aio::ConnectionLike;

use super::{Shared, redis_backoff};

/// Subscribes to the queue's push channel and wakes the fetcher; reconnects forever.
pub(super) async fn waker<C>(shared: Arc<Shared<C>>, client: redis::Client)
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    let channel = shared.queue.keys().notify.clone();
    let mut failures = 0u32;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    failures = 0;
                    // Anything pushed while we were not listening is picked up now.
                    shared.wake.notify_one();
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let payload = message.get_payload_bytes();
                        match payload.strip_prefix(b"revoke:") {
                            Some(id) => shared.revoke_held(&String::from_utf8_lossy(id)),
                            None => shared.wake.notify_one(),
                        }
                    }
                    tracing::debug!(queue = shared.queue.name(), "wake-up subscription ended");
                }
                Err(e) => tracing::debug!(error = %e, "subscribe failed"),
            },
            Err(e) => tracing::debug!(error = %e, "pub/sub connection failed"),
        }
        failures += 1;
        tokio::time::sleep(redis_backoff(failures)).await;
    }
}
