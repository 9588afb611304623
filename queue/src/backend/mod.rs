//! The apalis 1.0 backend over [`Queue`]: prefetching, acknowledgement, lease renewal, wake-ups.
//!
//! [`RedisBackend::new`] returns the backend a `WorkerBuilder` takes and a [`Driver`] that owns
//! the background tasks around it:
//! - the fetcher leases bounded batches while the worker has room (`concurrency + prefetch`),
//!   decodes them (a payload that does not decode goes straight to dead) and feeds a channel the
//!   backend's `poll_next` reads; when the queue is empty it sleeps until a push is published, the
//!   next scheduled job falls due, or `idle_poll` passes;
//! - the acker records outcomes in batches, retrying through Redis outages without losing any;
//! - the renewer extends the leases of jobs still running, so only a dead worker's jobs are reaped;
//! - the janitor forgets done and dead jobs past their retention;
//! - the waker turns pub/sub push messages into wake-ups of the idle fetcher.
//!
//! Redis errors never end a worker: every task backs off and tries again.
//!
//! Each background task lives in the submodule of its name (`fetcher`, `acker`, `renewer`,
//! `janitor`, `waker`); `driver` holds the [`Driver`], `inbox` the prefetch buffer, and `outcome`
//! the [`Acker`] middleware that turns a handler's result into an outcome.

mod acker;
mod driver;
mod fetcher;
mod inbox;
mod janitor;
mod outcome;
mod renewer;
mod waker;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::Task;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use apalis_core::worker::ext::ack::AcknowledgeLayer;
use redis::aio::ConnectionLike;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use crate::backoff::Backoff;
use crate::client::{Ack, Queue};

pub use driver::Driver;
pub use outcome::Acker;

use acker::acker;
use fetcher::fetcher;
use inbox::Inbox;
use janitor::janitor;
use renewer::renewer;
use waker::waker;

/// How a worker process consumes one queue.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// Jobs the worker runs at once (the caller also sets apalis' concurrency limit to this).
    pub concurrency: usize,
    /// Jobs leased ahead of free slots, so a slot never waits for a round trip.
    pub prefetch: usize,
    /// Longest sleep of an idle fetcher: the bound on reaping and on missed wake-ups.
    pub idle_poll: Duration,
    /// Delays between retries of a failed job.
    pub retry_backoff: Backoff,
    /// How often finished jobs past their retention are removed.
    pub cleanup_every: Duration,
    /// Told how many messages each fetch took from the queue's foreign lists
    /// ([`crate::QueueConfig::lease_from`]), when it took any.
    pub on_adopted: Option<OnAdopted>,
}

/// A count of adopted messages' listener (see [`BackendOptions::on_adopted`]).
#[derive(Clone)]
pub struct OnAdopted(pub Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for OnAdopted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnAdopted")
    }
}

impl Default for BackendOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            prefetch: 64,
            idle_poll: Duration::from_secs(1),
            retry_backoff: Backoff::default(),
            cleanup_every: Duration::from_secs(60),
            on_adopted: None,
        }
    }
}

/// What a running task carries so its outcome can be recorded: the job id, its attempt and the
/// lease's fencing token; and the signal that it was revoked.
#[derive(Debug, Clone)]
pub struct JobLease {
    /// Job id.
    pub id: String,
    /// Attempt number (1-based) as counted toward `max_attempts`; for logs and the attempt limit.
    pub attempt: u32,
    /// The lease's fencing token (never given twice in the queue): outcomes and renewals name it.
    pub token: u64,
    /// The Redis server's clock (epoch ms) read by the fetch that leased the job: decide whether
    /// something is due on this clock, not the worker's.
    pub fetched_at_ms: i64,
    /// This process's monotonic clock when that fetch returned (see [`JobLease::redis_now_ms`]).
    pub fetched_at: Instant,
    /// Set when the job is revoked while this worker holds it (the revoke's message, or the
    /// next lease renewal): the handler should not start it, or stop it where it can.
    pub revoked: RevokeSignal,
}

/// Raised once when a held job is revoked; cheap to clone (every clone sees the same signal).
/// A job's signal is its lease's token on its backend's board: making one allocates nothing,
/// and checking one that nobody raised is one atomic load.
#[derive(Debug, Clone)]
pub struct RevokeSignal {
    board: Arc<RevokeBoard>,
    token: u64,
}

/// The tokens of a backend's held jobs that were revoked, and the wake-up of their waiters.
#[derive(Debug, Default)]
struct RevokeBoard {
    raised: Mutex<std::collections::HashSet<u64>>,
    count: std::sync::atomic::AtomicUsize,
    notify: Notify,
}

impl RevokeBoard {
    fn set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<u64>> {
        self.raised
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forget `token` (its job's outcome is recorded): the board stays as small as what runs.
    fn forget(&self, token: u64) {
        if self.count.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            let mut set = self.set();
            set.remove(&token);
            self.count
                .store(set.len(), std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl RevokeSignal {
    /// A signal of its own, raised only through itself (for a job run outside a backend).
    pub fn standalone() -> Self {
        Self {
            board: Arc::default(),
            token: 0,
        }
    }

    /// Raise it (idempotent): every waiter wakes.
    pub fn raise(&self) {
        let mut set = self.board.set();
        set.insert(self.token);
        self.board
            .count
            .store(set.len(), std::sync::atomic::Ordering::SeqCst);
        drop(set);
        self.board.notify.notify_waiters();
    }

    /// Whether it was raised.
    pub fn is_raised(&self) -> bool {
        self.board.count.load(std::sync::atomic::Ordering::SeqCst) > 0
            && self.board.set().contains(&self.token)
    }

    /// Resolves once it is raised (at once if it already was).
    pub async fn raised(&self) {
        loop {
            let notified = self.board.notify.notified();
            if self.is_raised() {
                return;
            }
            notified.await;
        }
    }
}

impl JobLease {
    /// The Redis server's clock now (epoch ms), estimated as the fetch's reading plus the time
    /// elapsed since on this process's monotonic clock: a job may wait in the prefetch buffer
    /// before it starts, and the worker's wall clock may be off or stepped. Never ahead of Redis
    /// by more than clock drift (the fetch's reading is taken before its reply travels).
    pub fn redis_now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.fetched_at.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.fetched_at_ms.saturating_add(elapsed)
    }
}

/// A handler error meaning "not due yet": the job is scheduled again after this delay, measured
/// on the Redis server's clock from when the outcome is recorded. It costs no attempt and records
/// no error, so a job may snooze any number of times.
///
/// ```
/// # use queue::backend::Snooze;
/// # use std::time::Duration;
/// let e: apalis_core::error::BoxDynError = Box::new(Snooze(Duration::from_secs(3)));
/// assert!(e.downcast_ref::<Snooze>().is_some());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snooze(pub Duration);

impl std::fmt::Display for Snooze {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not due yet: snoozed for {} ms", self.0.as_millis())
    }
}

impl std::error::Error for Snooze {}

/// State shared by the backend, its acknowledger and the background tasks.
struct Shared<C> {
    queue: Queue<C>,
    options: BackendOptions,
    /// Free slots: `concurrency + prefetch` minus jobs leased and not yet acknowledged.
    slots: Semaphore,
    /// Leases held by this process (id → token), renewed until acknowledged.
    held: Mutex<HashMap<String, u64>>,
    /// Revokes of jobs this process did not hold when told (most are other workers'), kept a
    /// short while: a job leased here just before its revoke's message arrived, but put in
    /// `held` just after, is found here. Locked only while `held` is.
    unseen_revokes: Mutex<std::collections::VecDeque<(Instant, String)>>,
    /// The revoke signals of the held jobs.
    revokes: Arc<RevokeBoard>,
    /// Woken by pub/sub when a job is pushed.
    wake: Notify,
}

impl<C> Shared<C> {
    /// Raise the revoke signal of job `id` if this process holds it; else remember the revoke
    /// for a while ([`Shared::hold`] looks there).
    fn revoke_held(&self, id: &str) {
        let held = self.held();
        if let Some(token) = held.get(id) {
            tracing::info!(job.id = %id, "job revoked while held here; stopping it");
            self.signal(*token).raise();
            return;
        }
        let mut unseen = self.unseen();
        let now = Instant::now();
        while unseen
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > UNSEEN_REVOKE_TTL)
            || unseen.len() >= UNSEEN_REVOKE_MAX
        {
            unseen.pop_front();
        }
        unseen.push_back((now, id.to_owned()));
        drop(held);
    }

    /// Hold lease `id` (fencing token `token`): renewed until acknowledged; its signal is raised
    /// at once if its revoke arrived before (while `held` did not have it yet).
    fn hold(&self, id: &str, token: u64) {
        let mut held = self.held();
        if self.unseen().iter().any(|(_, r)| r == id) {
            tracing::info!(job.id = %id, "job revoked as it was leased; not starting it");
            self.signal(token).raise();
        }
        held.insert(id.to_owned(), token);
    }

    /// The revoke signal of the job leased under `token`.
    fn signal(&self, token: u64) -> RevokeSignal {
        RevokeSignal {
            board: self.revokes.clone(),
            token,
        }
    }

    fn unseen(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(Instant, String)>> {
        self.unseen_revokes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The apalis backend: hands leased jobs to the worker and records their outcomes.
pub struct RedisBackend<Args> {
    inbox: Arc<Inbox<Args>>,
    acks: mpsc::UnboundedSender<Ack>,
    max_attempts: u32,
    backoff: Backoff,
}

/// Dropped (e.g. a worker abandoned at the shutdown timeout while jobs still ran): whatever was
/// prefetched and never started goes back at once instead of waiting for its lease to expire.
impl<Args> Drop for RedisBackend<Args> {
    fn drop(&mut self) {
        self.inbox.hand_back();
    }
}

/// How a job's stored payload (JSON text) becomes its handler's argument: parsed with serde for
/// any `DeserializeOwned` type; a type that keeps the text as it is (the Celery bridge's message,
/// decoded by its handler) implements it without parsing or copying.
pub trait FromPayload: Sized {
    /// The argument, or why the payload is not one (the job is then dead with that reason).
    fn from_payload(payload: String) -> Result<Self, String>;
}

impl<T: DeserializeOwned> FromPayload for T {
    fn from_payload(payload: String) -> Result<Self, String> {
        serde_json::from_str(&payload).map_err(|e| e.to_string())
    }
}

impl<Args> RedisBackend<Args>
where
    Args: FromPayload + Send + Sync + 'static,
{
    /// A backend over `queue`; `wake` is the Redis client used for pub/sub wake-ups (`None`:
    /// idle workers poll every `idle_poll`). Must be called inside a tokio runtime.
    pub fn new<C>(
        queue: Queue<C>,
        options: BackendOptions,
        wake: Option<redis::Client>,
    ) -> (Self, Driver)
    where
        C: ConnectionLike + Clone + Send + Sync + 'static,
    {
        let capacity = options.concurrency.max(1) + options.prefetch;
        let (tx, rx) = mpsc::channel(capacity);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let (closing, closing_rx) = watch::channel(false);
        let inbox = Arc::new(Inbox {
            rx: Mutex::new(rx),
            acks: ack_tx.clone(),
        });
        let max_attempts = queue.config().max_attempts;
        let backoff = options.retry_backoff;
        let shared = Arc::new(Shared {
            queue,
            slots: Semaphore::new(capacity),
            held: Mutex::new(HashMap::new()),
            unseen_revokes: Mutex::new(std::collections::VecDeque::new()),
            revokes: Arc::default(),
            wake: Notify::new(),
            options,
        });
        let mut helpers = vec![
            tokio::spawn(renewer(shared.clone())),
            tokio::spawn(janitor(shared.clone())),
        ];
        if let Some(client) = wake {
            helpers.push(tokio::spawn(waker(shared.clone(), client)));
        }
        let driver = Driver {
            fetcher: tokio::spawn(fetcher(shared.clone(), tx, ack_tx.clone())),
            acker: tokio::spawn(acker(shared, ack_rx, closing_rx)),
            helpers,
            inbox: inbox.clone(),
            closing,
        };
        (
            Self {
                inbox,
                acks: ack_tx,
                max_attempts,
                backoff,
            },
            driver,
        )
    }
}

/// How long a revoke of a job not held here is remembered ([`Shared::revoke_held`]).
const UNSEEN_REVOKE_TTL: Duration = Duration::from_secs(30);
/// At most this many such revokes are remembered.
const UNSEEN_REVOKE_MAX: usize = 1024;

/// Delay before retrying a failed Redis call (the n-th in a row).
fn redis_backoff(failures: u32) -> Duration {
    Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_secs(2),
    }
    .delay(failures)
}

impl<Args: Send + 'static> Backend for RedisBackend<Args> {
    type Task = Task<Args>;
    type Error = Infallible;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        let next = self.inbox.rx().poll_recv(cx);
        match next {
            Poll::Ready(Some(task)) => Poll::Ready(Some(Ok(task))),
            Poll::Ready(None) => {
                let _ = worker.stop();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Runs once nothing is in flight: every job fetched but not started goes back at once.
    fn poll_close(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        self.inbox.hand_back();
        Poll::Ready(Ok(()))
    }
}

impl<Args> BackendConfig for RedisBackend<Args> {
    type Args = Args;
    type Id = TaskId;
    type Kind = Ephemeral;
    type Config = ();
    type Layer = AcknowledgeLayer<Acker>;

    fn config(&self) -> &Self::Config {
        &()
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        AcknowledgeLayer::new(Acker {
            acks: self.acks.clone(),
            max_attempts: self.max_attempts,
            backoff: self.backoff,
        })
    }
}
