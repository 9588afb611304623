//! The acker task: records outcomes and hand-backs in batches, retrying through Redis outages.

use std::sync::Arc;

use redis::aio::ConnectionLike;
use tokio::sync::{mpsc, watch};

use super::{Shared, redis_backoff};
use crate::client::Ack;

/// Records outcomes in batches until every sender is gone, or until `closing` is set and nothing
/// is waiting (outcomes of jobs still running when the driver finishes are not waited for).
pub(super) async fn acker<C>(
    shared: Arc<Shared<C>>,
    mut rx: mpsc::UnboundedReceiver<Ack>,
    mut closing: watch::Receiver<bool>,
) where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    let mut batch = Vec::with_capacity(1000);
    loop {
        let got = tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, 1000) => n,
            _ = closing.wait_for(|c| *c) => {
                while batch.len() < 1000 {
                    match rx.try_recv() {
                        Ok(ack) => batch.push(ack),
                        Err(_) => break,
                    }
                }
                batch.len()
            }
        };
        if got == 0 {
            break;
        }
        let mut failures = 0u32;
        loop {
            match shared.queue.ack(&batch).await {
                Ok(report) => {
                    if report.stale > 0 {
                        tracing::debug!(
                            queue = shared.queue.name(),
                            stale = report.stale,
                            "stale outcomes ignored"
                        );
                    }
                    break;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(queue = shared.queue.name(), error = %e, pending = batch.len(), "recording outcomes failed; retrying");
                    tokio::time::sleep(redis_backoff(failures)).await;
                }
            }
        }
        {
            // Only this lease's entry: the job may have been leased here again since (a snooze
            // or hand-back falls due at once), under a new token that must go on being renewed.
            let mut held = shared.held();
            for ack in &batch {
                if held.get(ack.id()) == Some(&ack.token()) {
                    held.remove(ack.id());
                }
                shared.revokes.forget(ack.token());
            }
        }
        shared.slots.add_permits(batch.len());
        batch.clear();
    }
}
