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
//! - the janitor forgets done and dead jobs past their retention.
//!
//! Redis errors never end a worker: every task backs off and tries again.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::error::{AbortError, BoxDynError, RetryAfterError};
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::task::{ExecutionContext, Task};
use apalis_core::worker::context::WorkerContext;
use apalis_core::worker::ext::ack::{Acknowledge, AcknowledgeLayer};
use futures::StreamExt;
use redis::aio::ConnectionLike;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::client::{Ack, FetchedJob, Queue};

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
}

impl Default for BackendOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            prefetch: 64,
            idle_poll: Duration::from_secs(1),
            retry_backoff: Backoff::default(),
            cleanup_every: Duration::from_secs(60),
        }
    }
}

/// What a running task carries so its outcome can be recorded: the job id, its attempt and the
/// lease's fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
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
/// # use celeriac_queue::backend::Snooze;
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
    /// Woken by pub/sub when a job is pushed.
    wake: Notify,
}

impl<C> Shared<C> {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The prefetch buffer: jobs leased and not yet started. The backend hands them to the worker;
/// the driver, or the backend when it is dropped, hands them back to the queue.
struct Inbox<Args> {
    rx: Mutex<mpsc::Receiver<Task<Args>>>,
    acks: mpsc::UnboundedSender<Ack>,
}

impl<Args> Inbox<Args> {
    fn rx(&self) -> std::sync::MutexGuard<'_, mpsc::Receiver<Task<Args>>> {
        self.rx
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Close the buffer (the fetcher stops, the worker gets nothing more) and hand back every job
    /// in it: to the head of its queue, no attempt counted. Returns how many.
    fn hand_back(&self) -> usize {
        let mut rx = self.rx();
        rx.close();
        let mut n = 0;
        while let Ok(task) = rx.try_recv() {
            if let Some(lease) = task.data().get::<JobLease>() {
                let _ = self.acks.send(Ack::Release {
                    id: lease.id.clone(),
                    token: lease.token,
                });
                n += 1;
            }
        }
        n
    }
}

/// [`Inbox::hand_back`] without the job's argument type, for the driver.
trait HandBack: Send + Sync {
    fn hand_back(&self) -> usize;
}

impl<Args: Send> HandBack for Inbox<Args> {
    fn hand_back(&self) -> usize {
        Inbox::hand_back(self)
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

/// The background tasks of one backend. When the worker is told to stop, call
/// [`Driver::hand_back_unstarted`]; once it has stopped (or its time is up), [`Driver::finish`].
pub struct Driver {
    fetcher: JoinHandle<()>,
    acker: JoinHandle<()>,
    helpers: Vec<JoinHandle<()>>,
    inbox: Arc<dyn HandBack>,
    /// Tells the acker to record what it has been given and stop.
    closing: watch::Sender<bool>,
}

impl<Args> RedisBackend<Args>
where
    Args: DeserializeOwned + Send + Sync + 'static,
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

impl Driver {
    /// Stop leasing and hand back at once every job fetched but not yet started: it goes to the
    /// head of its queue without costing an attempt, free for other workers while this one
    /// finishes the jobs it is running. Returns how many were handed back. Call it when the
    /// worker is told to stop.
    pub fn hand_back_unstarted(&self) -> usize {
        self.inbox.hand_back()
    }

    /// Record every outcome and hand-back given so far (at most `timeout`), then stop the
    /// background tasks. Call it once the worker has stopped, or has been given up on: an outcome
    /// of a job still running is not waited for. Whatever is not recorded stays leased and runs
    /// again elsewhere once its lease expires: nothing is lost. Drivers of one process may finish
    /// concurrently.
    pub async fn finish(self, timeout: Duration) {
        let Driver {
            fetcher,
            acker,
            helpers,
            inbox,
            closing,
        } = self;
        let (stop_fetcher, stop_acker) = (fetcher.abort_handle(), acker.abort_handle());
        let drained = async {
            inbox.hand_back();
            let _ = fetcher.await;
            // A job the fetcher was passing on when the buffer closed is in it now.
            inbox.hand_back();
            let _ = closing.send(true);
            let _ = acker.await;
        };
        if tokio::time::timeout(timeout, drained).await.is_err() {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "queue driver did not drain in time; unrecorded leases will expire and rerun"
            );
            stop_fetcher.abort();
            stop_acker.abort();
        }
        for h in helpers {
            h.abort();
        }
    }
}

/// Delay before retrying a failed Redis call (the n-th in a row).
fn redis_backoff(failures: u32) -> Duration {
    Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_secs(2),
    }
    .delay(failures)
}

async fn fetcher<C, Args>(
    shared: Arc<Shared<C>>,
    tx: mpsc::Sender<Task<Args>>,
    acks: mpsc::UnboundedSender<Ack>,
) where
    C: ConnectionLike + Clone + Send + Sync + 'static,
    Args: DeserializeOwned + Send + Sync + 'static,
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
        while want < crate::client::MAX_FETCH {
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
        shared.slots.add_permits(want - fetched.jobs.len());
        let got = fetched.jobs.len();
        let mut jobs = fetched.jobs.into_iter();
        while let Some(job) = jobs.next() {
            let FetchedJob {
                id,
                attempt,
                token,
                payload,
            } = job;
            let args = match serde_json::from_str::<Args>(&payload) {
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
            shared.held().insert(id.clone(), token);
            let task = TaskBuilder::new(args)
                .task_id(TaskId::from_string(id.clone()))
                .attempt(attempt.saturating_sub(1) as usize)
                .data(JobLease {
                    id: id.clone(),
                    attempt,
                    token,
                    fetched_at_ms: fetched.now_ms,
                    fetched_at,
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
        if got == 0 {
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

/// Records outcomes in batches until every sender is gone, or until `closing` is set and nothing
/// is waiting (outcomes of jobs still running when the driver finishes are not waited for).
async fn acker<C>(
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
            }
        }
        shared.slots.add_permits(batch.len());
        batch.clear();
    }
}

async fn renewer<C>(shared: Arc<Shared<C>>)
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
            .map(|(id, a)| (id.clone(), *a))
            .collect();
        if held.is_empty() {
            continue;
        }
        if let Err(e) = shared.queue.renew(&held).await {
            tracing::warn!(queue = shared.queue.name(), error = %e, "lease renewal failed");
        }
    }
}

async fn janitor<C>(shared: Arc<Shared<C>>)
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

/// Subscribes to the queue's push channel and wakes the fetcher; reconnects forever.
async fn waker<C>(shared: Arc<Shared<C>>, client: redis::Client)
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
                    while messages.next().await.is_some() {
                        shared.wake.notify_one();
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

/// Turns a handler's result into an outcome: done, snooze, retry with backoff, or dead.
#[derive(Clone)]
pub struct Acker {
    acks: mpsc::UnboundedSender<Ack>,
    max_attempts: u32,
    backoff: Backoff,
}

impl Acker {
    /// The outcome of attempt `lease.attempt` ending with `res`.
    pub fn outcome<Res>(&self, lease: &JobLease, res: &Result<Res, BoxDynError>) -> Ack {
        let (id, attempt, token) = (lease.id.clone(), lease.attempt, lease.token);
        let err = match res {
            Ok(_) => return Ack::Done { id, token },
            Err(e) => e,
        };
        // Before the attempt limit: a snooze is not a failure, whatever the attempt.
        if let Some(Snooze(delay)) = err.downcast_ref::<Snooze>() {
            return Ack::Snooze {
                id,
                token,
                delay: *delay,
            };
        }
        if err.downcast_ref::<AbortError>().is_some() || attempt >= self.max_attempts {
            let error = if err.downcast_ref::<AbortError>().is_some() {
                err.to_string()
            } else {
                format!("{err} (attempt {attempt} of {})", self.max_attempts)
            };
            return Ack::Dead { id, token, error };
        }
        let delay = err
            .downcast_ref::<RetryAfterError>()
            .map(|r| r.get_duration())
            .unwrap_or_else(|| self.backoff.delay(attempt));
        Ack::Retry {
            id,
            token,
            delay,
            error: err.to_string(),
        }
    }
}

impl<Res> Acknowledge<Res> for Acker {
    type Error = Infallible;
    type Future = Ready<Result<(), Infallible>>;

    fn ack(&mut self, res: &Result<Res, BoxDynError>, ctx: &ExecutionContext) -> Self::Future {
        if let Some(lease) = ctx.data().get::<JobLease>() {
            let _ = self.acks.send(self.outcome(lease, res));
        }
        ready(Ok(()))
    }
}
