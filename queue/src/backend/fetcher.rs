//! The fetcher task: leases bounded batches while the worker has room, decodes them and feeds the
//! prefetch buffer; sleeps while the queue is empty.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use redis::aio::ConnectionLike;
use tokio::sync::mpsc;

use super::{FromPayload, JobLease, OnAdopted, Shared, redis_backoff};
use crate::client::{Ack, FetchedJob};

/// Most jobs one fetch leases. Free slots beyond it wait for the next round trip (a fraction of
/// a millisecond): a worker starting with hundreds of free slots would otherwise take them all in
/// one reply, held three times over while it is decoded (a Celery message is a kilobyte).
const FETCH_BATCH: usize = 128;

pub(super) async fn fetcher<C, Args>(
    shared: Arc<Shared<C>>,
    tx: mpsc::Sender<Task<Args>>,
    acks: mpsc::UnboundedSender<Ack>,
) where
    C: ConnectionLike + Clone + Send + Sync + 'static,
    Args: FromPayload + Send + Sync + 'static,
{
    let queue = &shared.queue;
    let mut failures = 0u32;
    loop {
        // Wait for a free slot, then take every other free slot too; a closed buffer (the worker
        // is stopping) comes first: lease nothing more.
        let first = tokio::select! {
            biased;
            _ = tx.closed() => break,
            permit = shared.slots.acquire() => permit,
        };
        let Ok(first) = first else { break };
        first.forget();
        let mut want = 1;
        while want < FETCH_BATCH {
            match shared.slots.try_acquire() {
                Ok(p) => {
                    p.forget();
                    want += 1;
                }
                Err(_) => break,
            }
        }
        let fetched = match queue.fetch(want).await {
            Ok(f) => {
                failures = 0;
                f
            }
            Err(e) => {
                shared.slots.add_permits(want);
                failures += 1;
                tracing::warn!(queue = queue.name(), error = %e, failures, "fetch failed; backing off");
                tokio::select! {
                    _ = tx.closed() => break,
                    _ = tokio::time::sleep(redis_backoff(failures)) => continue,
                }
            }
        };
        let fetched_at = Instant::now();
        if fetched.reaped > 0 {
            tracing::warn!(
                queue = queue.name(),
                reaped = fetched.reaped,
                "took back leases of a lost worker"
            );
        }
        if fetched.adopted > 0
            && let Some(OnAdopted(count)) = &shared.options.on_adopted
        {
            count(fetched.adopted as u64);
        }
        shared.slots.add_permits(want - fetched.jobs.len());
        let got = fetched.jobs.len();
        let mut jobs = fetched.jobs.into_iter();
        while let Some(job) = jobs.next() {
            let FetchedJob {
                id,
                attempt,
                token,
                payload,
                ..
            } = job;
            let args = match Args::from_payload(payload) {
                Ok(args) => args,
                Err(e) => {
                    tracing::error!(queue = queue.name(), job.id = %id, error = %e, "payload does not decode; dead");
                    let _ = acks.send(Ack::Dead {
                        id,
                        token,
                        error: format!("payload does not decode: {e}"),
                    });
                    continue;
                }
            };
            let revoked = shared.signal(token);
            shared.hold(&id, token);
            let task = TaskBuilder::new(args)
                .task_id(TaskId::from_string(id.clone()))
                .attempt(attempt.saturating_sub(1) as usize)
                .data(JobLease {
                    id: id.clone(),
                    attempt,
                    token,
                    fetched_at_ms: fetched.now_ms,
                    fetched_at,
                    revoked,
                })
                .build();
            if tx.send(task).await.is_err() {
                // The worker is stopping: hand this one and the rest back at once.
                let _ = acks.send(Ack::Release { id, token });
                for rest in jobs.by_ref() {
                    let _ = acks.send(Ack::Release {
                        id: rest.id,
                        token: rest.token,
                    });
                }
                return;
            }
        }
        if let Some(until) = fetched.throttled_until_ms {
            // The fleet's rate limit: no token until then, whatever is pushed meanwhile.
            let wait = Duration::from_millis((until - fetched.now_ms).max(1) as u64);
            tokio::select! {
                _ = tx.closed() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        } else if got == 0 {
            let mut sleep = shared.options.idle_poll;
            if let Some(due) = fetched.next_due_ms {
                let until = Duration::from_millis((due - fetched.now_ms).max(1) as u64);
                sleep = sleep.min(until);
            }
            tokio::select! {
                _ = tx.closed() => break,
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}
