//! The worker process: one apalis worker per job type over the Redis backend, stopped by a signal.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use apalis_core::error::{AbortError, BoxDynError};
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::ext::parallelize::ParallelizeExt;
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use queue::backend::{BackendOptions, Driver, JobLease, RedisBackend, Snooze};
use tokio::sync::watch;
use tower::limit::ConcurrencyLimitLayer;
use tracing::Instrument;

use crate::context::JobContext;
use crate::jobs::{self, Job, JobError};
use domain::config::Settings;
use domain::conn::RedisConn;
use domain::process::redact;
use domain::queues;
use domain::workers::Outcome;

/// Connect to Redis and the database, failing fast with a one-line message.
pub async fn connect(settings: &Settings) -> anyhow::Result<JobContext> {
    let mut redis = queues::connect(&settings.redis_url)
        .await
        .with_context(|| format!("Redis is unreachable at {}", redact(&settings.redis_url)))?;
    redis
        .require_redis_version()
        .await
        .with_context(|| format!("Redis at {}", redact(&settings.redis_url)))?;
    // Every queue script into every node now (on a cluster, replicas too): a failover later
    // finds them on the promoted replica.
    redis
        .load_scripts(&settings.redis_url, &queue::all_scripts())
        .await
        .with_context(|| {
            format!(
                "Redis at {} refused the scripts",
                redact(&settings.redis_url)
            )
        })?;
    let db = domain::db::Db::connect(
        db_options(&settings.database_url),
        settings.database_pool_mode,
    )
    .await?;
    let shape = domain::schema::inspect(&db)
        .await
        .context("the database cannot take Celeriac's rows")?;
    let geo = crate::geo::open_configured(settings)?;
    let ctx = JobContext::new(db, redis, settings.clone(), geo);
    ctx.shape.set(shape);
    Ok(ctx)
}

/// Pool settings: a database outage fails jobs in seconds (to be retried), not after sqlx's 30 s.
pub fn db_options(url: &str) -> sea_orm::ConnectOptions {
    let mut o = sea_orm::ConnectOptions::new(url.to_owned());
    o.connect_timeout(Duration::from_secs(3))
        .acquire_timeout(Duration::from_secs(5))
        .max_connections(16)
        .sqlx_logging(false);
    o
}

/// Run one job: a span with its name, id and attempt, within its time limit and until it is
/// revoked; permanent errors (a revoke too) become `AbortError` (dead at once), panics and time
/// limits retryable errors.
async fn handle<T: Job>(
    args: T,
    ctx: Data<JobContext>,
    lease: Data<JobLease>,
) -> Result<(), BoxDynError> {
    let span =
        tracing::info_span!("job", job.name = T::NAME, job.id = %lease.id, attempt = lease.attempt);
    async move {
        let started = std::time::Instant::now();
        if let Err(e) = args.validate() {
            tracing::error!(field = %e.field, reason = %e.message, "arguments do not validate; dead");
            ctx.counters.record(T::NAME, Outcome::Dead, 0);
            return Err(AbortError::new(format!("invalid arguments: {e}")).into());
        }
        if lease.revoked.is_raised() {
            tracing::warn!("revoked before it started; not run");
            ctx.counters.record(T::NAME, Outcome::Dead, 0);
            return Err(AbortError::new("revoked before it started").into());
        }
        ctx.counters.start(T::NAME);
        let limit = ctx.settings.time_limit_for(T::NAME, T::TIME_LIMIT_SECONDS);
        let result = AssertUnwindSafe(jobs::run_revocable(args, &ctx, limit, &lease.revoked))
            .catch_unwind()
            .await;
        ctx.counters.stop();
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let last_attempt = lease.attempt >= T::MAX_ATTEMPTS;
        let outcome = match &result {
            Ok(Ok(())) => Some(Outcome::Succeeded),
            Ok(Err(JobError::Snooze(_))) => None,
            Ok(Err(JobError::Permanent(_))) => Some(Outcome::Dead),
            _ if last_attempt => Some(Outcome::Dead),
            _ => Some(Outcome::Failed),
        };
        if let Some(outcome) = outcome {
            ctx.counters.record(T::NAME, outcome, elapsed_ms as u64);
        }
        match result {
            Ok(Ok(())) => {
                tracing::debug!(elapsed_ms, "job done");
                Ok(())
            }
            Ok(Err(JobError::Permanent(reason))) => {
                tracing::error!(elapsed_ms, %reason, "job failed permanently");
                Err(AbortError::new(reason).into())
            }
            Ok(Err(JobError::Retry(e))) => {
                tracing::warn!(elapsed_ms, error = %format!("{e:#}"), "job failed; will retry");
                Err(format!("{e:#}").into())
            }
            Ok(Err(JobError::Snooze(delay))) => {
                tracing::debug!(elapsed_ms, delay_ms = delay.as_millis() as u64, "not due yet; snoozed");
                Err(Snooze(delay).into())
            }
            Err(_) => {
                tracing::error!(elapsed_ms, "job panicked");
                Err("job panicked".into())
            }
        }
    }
    .instrument(span)
    .await
}

/// One job type's worker future and its backend driver.
fn worker_for<T: Job>(
    ctx: &JobContext,
    redis_client: &redis::Client,
    stop: watch::Receiver<bool>,
) -> Option<(LocalBoxFuture<'static, ()>, Driver)> {
    let queue = ctx.queues.get(T::NAME)?.clone();
    let concurrency = ctx.settings.concurrency_for(T::NAME);
    // A rate-limited queue leases a job only for a free slot: a prefetched job would start
    // whenever a slot frees, so starts could bunch beyond the rate. Otherwise twice the slots,
    // at most 256 (half the default of 512): enough to cover a fetch's round trip
    // without leasing a thousand jobs that other processes could be running.
    let prefetch = if queue.config().rate_limit.is_some() {
        0
    } else {
        (concurrency * 2).min(256)
    };
    let options = BackendOptions {
        concurrency,
        prefetch,
        ..BackendOptions::default()
    };
    let (backend, driver) = RedisBackend::<T>::new(queue, options, Some(redis_client.clone()));
    let worker = WorkerBuilder::new(format!("{}-{}", T::NAME, std::process::id()))
        .backend(backend)
        .layer(ConcurrencyLimitLayer::new(concurrency))
        .parallelize(tokio::spawn)
        .data(ctx.clone())
        .build(handle::<T>);
    let mut stop = stop;
    let fut = async move {
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
            Ok::<(), std::io::Error>(())
        };
        if let Err(e) = worker.run_until(signal).await {
            tracing::error!(job = T::NAME, error = %e, "worker ended with an error");
        }
    };
    Some((fut.boxed_local(), driver))
}

/// The worker of one Celery intake queue.
fn celery_worker(
    ctx: &JobContext,
    redis_client: &redis::Client,
    intake: queue::Queue<domain::conn::RedisConn>,
    bridge: crate::celery::Bridge,
    mut stop: watch::Receiver<bool>,
) -> (LocalBoxFuture<'static, ()>, Driver) {
    let concurrency = ctx.settings.concurrency_for("celery");
    // A prefetched Celery message is kept as its JSON text (~1 KB) until it runs; an eighth of
    // the concurrency keeps the worker fed (one fetch round trip is far shorter than a job): a
    // quarter drained no faster and held 0.4 MiB more (docs/persist-speed.md, fifth round).
    let counters = ctx.counters.clone();
    let options = BackendOptions {
        concurrency,
        prefetch: (concurrency / 8).max(8),
        on_adopted: Some(queue::backend::OnAdopted(std::sync::Arc::new(move |n| {
            counters.adopted(n)
        }))),
        ..BackendOptions::default()
    };
    let name = format!("{}-{}", intake.name(), std::process::id());
    let (backend, driver) =
        RedisBackend::<crate::celery::Message>::new(intake, options, Some(redis_client.clone()));
    let worker = WorkerBuilder::new(name)
        .backend(backend)
        .layer(ConcurrencyLimitLayer::new(concurrency))
        .parallelize(tokio::spawn)
        .data(ctx.clone())
        .data(bridge)
        .build(crate::celery::handle);
    let fut = async move {
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
            Ok::<(), std::io::Error>(())
        };
        if let Err(e) = worker.run_until(signal).await {
            tracing::error!(error = %e, "celery worker ended with an error");
        }
    };
    (fut.boxed_local(), driver)
}

/// Add what this process counted since the last call to the history and the fleet's totals;
/// what cannot be written is kept for the next call.
async fn flush_history(ctx: &JobContext, conn: &mut domain::conn::RedisConn, ns: &str) {
    let counted = ctx.counters.take_tally();
    if let Err(e) = domain::workers::add_tally(conn, ns, &counted).await {
        tracing::debug!(error = %e, "history not written; kept for the next heartbeat");
        ctx.counters.restore_tally(counted);
    }
}

/// Announce this worker process every `domain::workers::HEARTBEAT` with its job counts, until
/// `stop`; then leave. A failed heartbeat is logged and retried at the next one.
async fn heartbeat_loop(ctx: JobContext, queues: Vec<String>, mut stop: watch::Receiver<bool>) {
    use domain::workers;
    let mut info =
        workers::WorkerInfo::this_process("worker", queues, ctx.settings.worker_concurrency);
    let mut conn = ctx.redis.clone();
    let ns = ctx.settings.namespace.clone();
    loop {
        info.in_flight = ctx.counters.in_flight.load(Ordering::Relaxed);
        info.processed = ctx.counters.processed.load(Ordering::Relaxed);
        info.failed = ctx.counters.failed.load(Ordering::Relaxed);
        if let Err(e) = workers::heartbeat(&mut conn, &ns, &mut info).await {
            tracing::debug!(error = %e, "heartbeat failed");
        }
        flush_history(&ctx, &mut conn, &ns).await;
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(workers::HEARTBEAT) => {}
        }
    }
    flush_history(&ctx, &mut conn, &ns).await;
    if let Err(e) = workers::forget(&mut conn, &ns, &info.id).await {
        tracing::debug!(error = %e, "could not leave the worker list");
    }
}

/// Run every job type until `shutdown` resolves; then stop taking work, hand back at once what was
/// fetched but not started (no attempt counted), let running jobs finish (at most
/// `shutdown_timeout`; a job still running then stays leased and runs again elsewhere), record
/// the last outcomes (every queue at once, at most `FINISH_GRACE`, 4 s), and return.
pub async fn run(ctx: JobContext, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // Wake-ups: a cluster sends every PUBLISH to every node, so one node serves.
    let redis_client = redis::Client::open(domain::conn::first_url(&ctx.settings.redis_url))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = Vec::new();
    let mut drivers = Vec::new();
    // One consumer per registered job (`jobs::with_jobs!`, the one list).
    macro_rules! add {
        ($($job:ident),*) => {$(
            if let Some((w, d)) = worker_for::<jobs::$job>(&ctx, &redis_client, stop_rx.clone()) {
                workers.push(w);
                drivers.push(d);
            }
        )*};
    }
    domain::with_jobs!(add);
    let mut intakes = Vec::new();
    if !ctx.settings.celery_queues.is_empty() {
        let results = match &ctx.settings.celery_result_backend {
            Some(url) => Some(RedisConn::Single(
                domain::conn::connect_single(url).await.with_context(|| {
                    format!(
                        "the Celery result backend is unreachable at {}",
                        redact(url)
                    )
                })?,
            )),
            None => None,
        };
        let control = std::sync::Arc::new(crate::celery::control::Control::new(
            &ctx.settings.namespace,
            ctx.settings.dead_retention,
            crate::celery::control::NodeInfo {
                queues: ctx.settings.celery_queues.clone(),
                concurrency: ctx.settings.concurrency_for("celery"),
                counters: ctx.counters.clone(),
            },
        ));
        control
            .load(&mut ctx.redis.clone())
            .await
            .context("the revoked Celery task ids could not be read")?;
        let broker = match &ctx.settings.celery_broker_url {
            Some(url) => {
                let conn =
                    RedisConn::Single(domain::conn::connect_single(url).await.with_context(
                        || format!("the Celery broker is unreachable at {}", redact(url)),
                    )?);
                let broker = crate::celery::Broker {
                    url: url.clone(),
                    conn,
                    separate: true,
                };
                // The same server and database under another spelling of its URL is no separate
                // broker: its lists are leased from directly, like every other worker's there.
                if broker
                    .is_here(&ctx.settings.redis_url, &mut ctx.redis.clone())
                    .await
                    .context("the Celery broker (CELERY_BROKER_URL)")?
                {
                    crate::celery::Broker::same(ctx.settings.redis_url.clone(), ctx.redis.clone())
                } else {
                    broker
                }
            }
            // Celery cannot use a cluster, and Celery's lists are no cluster's keys.
            None if ctx.redis.is_cluster() => anyhow::bail!(
                "REDIS_URL is a Redis Cluster, which Celery cannot use: set CELERY_BROKER_URL to the \
                 plain Redis Django's Celery sends to, or CELERY_QUEUES= (empty) to turn the bridge off"
            ),
            None => crate::celery::Broker::same(ctx.settings.redis_url.clone(), ctx.redis.clone()),
        };
        if broker.separate {
            // The intake's script (RPOP with a count) and BLMOVE need Redis 6.2.
            let info = broker
                .conn
                .clone()
                .info_server()
                .await
                .context("the Celery broker (CELERY_BROKER_URL)")?;
            let found = queue::RedisVersion::field(&info).and_then(queue::RedisVersion::parse);
            if found.is_none_or(|v| v < queue::RedisVersion(6, 2, 0)) {
                anyhow::bail!(
                    "the Celery broker (CELERY_BROKER_URL) runs Redis {found:?}; the intake needs 6.2 or newer"
                );
            }
        }
        let db = broker.db()?;
        intakes.push(tokio::spawn(crate::celery::control::control_loop(
            broker.clone(),
            ctx.redis.clone(),
            control.clone(),
            stop_rx.clone(),
        )));
        let events = if ctx.settings.celery_events {
            let events =
                crate::celery::events::Events::start(broker.conn.clone(), db, control.node());
            intakes.push(tokio::spawn(
                events
                    .clone()
                    .heartbeats(ctx.counters.clone(), stop_rx.clone()),
            ));
            events
        } else {
            crate::celery::events::Events::off()
        };
        let bridge = crate::celery::Bridge {
            results,
            control,
            events,
        };
        for celery_queue in &ctx.settings.celery_queues {
            let intake = crate::celery::intake_queue(
                ctx.redis.clone(),
                &ctx.settings,
                celery_queue,
                !broker.separate,
            );
            let (w, d) = celery_worker(
                &ctx,
                &redis_client,
                intake.clone(),
                bridge.clone(),
                stop_rx.clone(),
            );
            workers.push(w);
            drivers.push(d);
            intakes.push(tokio::spawn(crate::celery::intake_loop(
                broker.clone(),
                intake,
                celery_queue.clone(),
                ctx.counters.clone(),
                stop_rx.clone(),
            )));
        }
    }
    let mut consumed: Vec<String> = ctx.queues.all().map(|q| q.name().to_owned()).collect();
    consumed.extend(
        ctx.settings
            .celery_queues
            .iter()
            .map(|q| format!("celery.{q}")),
    );
    // The heartbeat outlives the jobs: it stops (and writes the last counts) after they end.
    let (beat_stop, beat_stopped) = watch::channel(false);
    let beat = tokio::spawn(heartbeat_loop(ctx.clone(), consumed, beat_stopped));
    tracing::info!(
        job_types = workers.len() - ctx.settings.celery_queues.len(),
        celery_queues = ?ctx.settings.celery_queues,
        concurrency = ctx.settings.worker_concurrency,
        "worker started"
    );
    let mut all = Box::pin(futures::future::join_all(workers));
    tokio::select! {
        _ = &mut all => {}
        () = shutdown => {
            tracing::info!(timeout_s = ctx.settings.shutdown_timeout.as_secs(), "stopping: finishing running jobs");
            let _ = stop_tx.send(true);
            // Jobs fetched but not started go back now (no attempt counted), for other workers.
            let handed_back: usize = drivers.iter().map(Driver::hand_back_unstarted).sum();
            tracing::info!(handed_back, "handed back prefetched jobs");
            if tokio::time::timeout(ctx.settings.shutdown_timeout, &mut all).await.is_err() {
                tracing::warn!("shutdown timeout: unfinished jobs stay leased and will run again elsewhere");
            }
        }
    }
    let _ = stop_tx.send(true);
    let _ = beat_stop.send(true);
    let _ = beat.await;
    // Give up on jobs still running: their workers (and backends) go, so nothing waits for them.
    drop(all);
    // One deadline for the rest: the intake loops end and every driver records what it was given,
    // all at once.
    let deadline = tokio::time::Instant::now() + FINISH_GRACE;
    let intakes_done = futures::future::join_all(intakes);
    if tokio::time::timeout_at(deadline, intakes_done)
        .await
        .is_err()
    {
        tracing::warn!("celery intake did not stop in time");
    }
    futures::future::join_all(
        drivers
            .into_iter()
            .map(|d| d.finish(deadline.saturating_duration_since(tokio::time::Instant::now()))),
    )
    .await;
    tracing::info!("worker stopped");
    Ok(())
}

/// How long after the shutdown timeout the queue drivers get, together, to record the last
/// outcomes and hand-backs: the process exits within `SHUTDOWN_TIMEOUT_SECONDS` + this.
const FINISH_GRACE: Duration = Duration::from_secs(4);
