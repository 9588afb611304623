//! A worker process for crash tests: a `RedisBackend` worker whose handler sleeps, then appends
//! the job's `n` to the Redis list `<namespace>:probe:ran`; it stops gracefully on SIGTERM.
//!
//! Usage: `queue-probe work --namespace NS --queue Q [--url URL] [--lease-ms N] [--sleep-ms N]
//! [--concurrency N] [--prefetch N] [--idle-poll-ms N]`. Jobs are `{"n": <integer>}`.
//! Concurrency is a semaphore inside the handler (this crate has no tower `limit` dependency
//! outside its tests), so every leased job is started at once and waits there for a permit.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::ext::parallelize::ParallelizeExt;
use queue::backend::{BackendOptions, RedisBackend};
use queue::{Queue, QueueConfig};
use redis::aio::ConnectionManager;
use serde::Deserialize;
use tokio::sync::Semaphore;

const USAGE: &str = "usage: queue-probe work --namespace NS --queue Q [--url URL] [--lease-ms N] \
[--sleep-ms N] [--concurrency N] [--prefetch N] [--idle-poll-ms N]";

struct Args {
    url: String,
    namespace: String,
    queue: String,
    lease_ms: u64,
    sleep_ms: u64,
    concurrency: usize,
    prefetch: usize,
    idle_poll_ms: u64,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    match argv.next().as_deref() {
        Some("work") => {}
        Some(other) => return Err(format!("unknown mode {other:?}")),
        None => return Err("missing mode".into()),
    }
    let mut args = Args {
        url: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        namespace: String::new(),
        queue: String::new(),
        lease_ms: 15_000,
        sleep_ms: 0,
        concurrency: 4,
        prefetch: 4,
        idle_poll_ms: 1000,
    };
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value:?}: {e}"))
        };
        match flag.as_str() {
            "--url" => args.url = value.clone(),
            "--namespace" => args.namespace = value.clone(),
            "--queue" => args.queue = value.clone(),
            "--lease-ms" => args.lease_ms = number()?,
            "--sleep-ms" => args.sleep_ms = number()?,
            "--concurrency" => args.concurrency = number()? as usize,
            "--prefetch" => args.prefetch = number()? as usize,
            "--idle-poll-ms" => args.idle_poll_ms = number()?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.namespace.is_empty() || args.queue.is_empty() {
        return Err("--namespace and --queue are required".into());
    }
    Ok(args)
}

#[derive(Debug, Deserialize)]
struct ProbeJob {
    n: i64,
}

#[derive(Clone)]
struct Ctx {
    conn: ConnectionManager,
    ran_key: String,
    sleep: Duration,
    limit: Arc<Semaphore>,
}

async fn run_job(job: ProbeJob, ctx: Data<Ctx>) -> Result<(), BoxDynError> {
    let _permit = ctx.limit.acquire().await?;
    tokio::time::sleep(ctx.sleep).await;
    let mut conn = ctx.conn.clone();
    let _: i64 = redis::cmd("RPUSH")
        .arg(&ctx.ran_key)
        .arg(job.n)
        .query_async(&mut conn)
        .await?;
    Ok(())
}

async fn work(args: Args) -> Result<(), BoxDynError> {
    let client = redis::Client::open(args.url.as_str())?;
    let conn = client
        .get_connection_manager_with_config(
            redis::aio::ConnectionManagerConfig::new()
                .set_response_timeout(Some(Duration::from_secs(10)))
                .set_connection_timeout(Some(Duration::from_secs(5))),
        )
        .await?;
    let mut config = QueueConfig::new(args.namespace.clone(), args.queue.clone());
    config.lease = Duration::from_millis(args.lease_ms);
    let queue = Queue::new(conn.clone(), config);
    let options = BackendOptions {
        concurrency: args.concurrency.max(1),
        prefetch: args.prefetch,
        idle_poll: Duration::from_millis(args.idle_poll_ms),
        ..BackendOptions::default()
    };
    let ctx = Ctx {
        conn,
        ran_key: format!("{}:probe:ran", args.namespace),
        sleep: Duration::from_millis(args.sleep_ms),
        limit: Arc::new(Semaphore::new(args.concurrency.max(1))),
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (backend, driver) = RedisBackend::<ProbeJob>::new(queue, options, Some(client));
    let worker = WorkerBuilder::new(format!("queue-probe-{}", std::process::id()))
        .backend(backend)
        .parallelize(tokio::spawn)
        .data(ctx)
        .build(run_job);
    let stopped = worker
        .run_until(async move {
            term.recv().await;
            Ok::<(), std::io::Error>(())
        })
        .await;
    driver.finish(Duration::from_secs(5)).await;
    stopped?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("queue-probe: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match work(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("queue-probe: {e}");
            ExitCode::FAILURE
        }
    }
}
