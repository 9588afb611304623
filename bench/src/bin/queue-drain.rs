//! `queue-drain`: one worker process for `queue-bench`: a `RedisBackend` apalis worker with a
//! no-op handler on one queue, until SIGTERM. A job carrying `"t"` (push time, epoch µs) prints
//! `lat_us <push → handler start>` on stdout, for the pickup-latency measurement.

use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::ext::parallelize::ParallelizeExt;
use bench::{DrainOptions, connect, default_redis_url, epoch_us, runtime};
use clap::Parser;
use queue::backend::{BackendOptions, RedisBackend};
use queue::{Queue, QueueConfig};
use serde::Deserialize;
use tower::limit::ConcurrencyLimitLayer;

#[derive(Parser, Debug)]
#[command(name = "queue-drain", about = "No-op worker process for queue-bench")]
struct Args {
    /// Key namespace of the queue.
    #[arg(long)]
    namespace: String,
    /// Queue name.
    #[arg(long)]
    queue: String,
    /// Redis URL (default `REDIS_URL` or the local server).
    #[arg(long)]
    redis_url: Option<String>,
    #[command(flatten)]
    drain: DrainOptions,
    /// Longest sleep of the idle fetcher, in ms.
    #[arg(long, default_value_t = 1000)]
    idle_poll_ms: u64,
}

/// A no-op job; `t` is set only by the latency measurement. Other fields (the padding) are ignored.
#[derive(Debug, Clone, Deserialize)]
struct NoOp {
    #[serde(default)]
    t: Option<u64>,
}

async fn noop(job: NoOp) -> Result<(), BoxDynError> {
    if let Some(pushed) = job.t {
        println!("lat_us {}", epoch_us().saturating_sub(pushed));
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    runtime(args.drain.threads)?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let url = args.redis_url.clone().unwrap_or_else(default_redis_url);
    let conn = connect(&url).await?;
    let client = redis::Client::open(url.as_str())?;
    let queue = Queue::new(conn, QueueConfig::new(&args.namespace, &args.queue));
    let options = BackendOptions {
        concurrency: args.drain.concurrency,
        prefetch: args.drain.prefetch,
        idle_poll: Duration::from_millis(args.idle_poll_ms),
        ..BackendOptions::default()
    };
    let (backend, driver) = RedisBackend::<NoOp>::new(queue, options, Some(client));
    let worker = WorkerBuilder::new(format!("queue-drain-{}", std::process::id()))
        .backend(backend)
        .layer(ConcurrencyLimitLayer::new(args.drain.concurrency))
        .parallelize(tokio::spawn)
        .build(noop);
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => r?,
        }
        Ok::<(), std::io::Error>(())
    };
    worker.run_until(stop).await?;
    driver.finish(Duration::from_secs(5)).await;
    Ok(())
}
