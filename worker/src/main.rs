//! `worker`: run the job consumers (`worker run`, the default), the scheduler (`worker scheduler`),
//! or enqueue one job by hand (`worker enqueue <name> '<json>'`).

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "worker", about = "Celeriac worker, scheduler and operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume every job queue until SIGTERM (the default).
    Run,
    /// Enqueue the periodic jobs on their cron schedules; any number of copies may run.
    Scheduler,
    /// Enqueue one job: `worker enqueue cleanup_old_anonymous_data '{"retention_days": 90}'`.
    Enqueue {
        /// The job's name.
        name: String,
        /// Its arguments as a JSON object (default `{}`).
        #[arg(default_value = "{}")]
        args: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let shutdown = domain::process::shutdown_signal();
    domain::process::init();
    match run(Cli::parse(), shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(
    cli: Cli,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = domain::config::Settings::from_env()?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let ctx = worker::run::connect(&settings).await?;
            worker::run::run(ctx, shutdown).await
        }
        Command::Scheduler => {
            let schedule = worker::scheduler::Schedule::from_env()?;
            let conn = connect_redis(&settings).await?;
            let queues = domain::queues::Queues::new(conn.clone(), &settings);
            worker::scheduler::run(conn, queues, &settings.namespace, schedule, shutdown).await
        }
        Command::Enqueue { name, args } => {
            let args: serde_json::Value = serde_json::from_str(&args)
                .map_err(|e| anyhow::anyhow!("arguments are not JSON: {e}"))?;
            let conn = connect_redis(&settings).await?;
            let queues = domain::queues::Queues::new(conn, &settings);
            let pushed = queues.enqueue(&name, args, queue::When::Now).await?;
            println!("{}", serde_json::json!({"job_id": pushed.id, "name": name}));
            Ok(())
        }
    }
}

/// Connect to Redis and check its version, failing with one line.
async fn connect_redis(
    settings: &domain::config::Settings,
) -> anyhow::Result<redis::aio::ConnectionManager> {
    let at = domain::process::redact(&settings.redis_url);
    let mut conn = domain::queues::connect(&settings.redis_url)
        .await
        .map_err(|e| anyhow::anyhow!("Redis is unreachable at {at}: {e}"))?;
    queue::require_redis_version(&mut conn)
        .await
        .map_err(|e| anyhow::anyhow!("Redis at {at}: {e}"))?;
    Ok(conn)
}
