//! The loop behind the store's group operations (the session writer, the coalesced reads):
//! requests queued by concurrent jobs are taken in batches, a bounded number in flight at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

/// How long a small batch may wait for company while another batch is in flight.
#[derive(Clone, Copy, Debug)]
pub(super) struct Linger {
    /// Below this many requests, a batch waits ...
    pub(super) min: usize,
    /// ... at most this long.
    pub(super) wait: Duration,
}

/// Spawn the loop: take up to `max` requests from `rx` whenever one of `in_flight` slots is free
/// and hand them to `handle` on a task of their own; with `linger`, a small batch waits for
/// more while another batch is in flight (idle, a request goes at once). Ends when every sender
/// is gone.
pub(super) fn spawn<T, F, Fut>(
    mut rx: mpsc::Receiver<T>,
    max: usize,
    in_flight: usize,
    linger: Option<Linger>,
    handle: F,
) where
    T: Send + 'static,
    F: Fn(Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(in_flight));
        let mut buf = Vec::with_capacity(max);
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            if rx.recv_many(&mut buf, max).await == 0 {
                return;
            }
            if let Some(l) = linger
                && buf.len() < l.min
                && slots.available_permits() + 1 < in_flight
            {
                let deadline = tokio::time::Instant::now() + l.wait;
                while buf.len() < l.min {
                    let room = max - buf.len();
                    match tokio::time::timeout_at(deadline, rx.recv_many(&mut buf, room)).await {
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
            }
            let batch = std::mem::replace(&mut buf, Vec::with_capacity(max));
            let work = handle(batch);
            tokio::spawn(async move {
                work.await;
                drop(permit);
            });
        }
    });
}
