//! `worker`: run the job consumers (`worker run`, the default), the scheduler (`worker scheduler`),
//! enqueue one job by hand (`worker enqueue <name> '<json>'`), or list and steer a queue's jobs
//! (`worker jobs list | requeue | discard | pause | resume`).

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
        /// At most one job of this name with this key at a time: while the first has not ended
        /// (done or dead), for at most `--unique-for` seconds, the push is dropped and the first
        /// job's id printed with `"duplicate": true`.
        #[arg(long)]
        unique_key: Option<String>,
        /// How long `--unique-key` holds at most, in seconds.
        #[arg(
            long,
            default_value_t = 86_400,
            requires = "unique_key",
            value_parser = clap::value_parser!(u64).range(1..=2_592_000)
        )]
        unique_for: u64,
    },
    /// A queue's jobs: list them by state, requeue or discard dead ones, run waiting ones now.
    Jobs {
        #[command(subcommand)]
        action: JobsCommand,
    },
    /// Liveness check for an exec probe: exit 0 when a `worker run` (or `--kind scheduler`)
    /// process of this host heartbeated within `--max-age` seconds, 1 when none did. When Redis
    /// cannot be read it exits 0 and says so: a Redis outage must not restart the workers.
    Probe {
        /// Heartbeats older than this (seconds) count as a stuck process (they come every 5 s).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(6..=3600))]
        max_age: u64,
        /// `worker` or `scheduler`.
        #[arg(long, default_value = "worker", value_parser = ["worker", "scheduler"])]
        kind: String,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Print one page of a queue's jobs in one state, a JSON line each, then the total.
    List {
        /// The queue (job) name.
        queue: String,
        /// queued, scheduled, retrying, running, done or dead.
        #[arg(long, default_value = "dead")]
        state: String,
        /// Jobs to skip.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Jobs to print (at most 100).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Put dead jobs back in line with fresh attempts.
    Requeue {
        /// The queue (job) name.
        queue: String,
        /// Every dead job of the queue.
        #[arg(long)]
        all: bool,
        /// The dead jobs' ids.
        ids: Vec<String>,
    },
    /// Run waiting jobs now: scheduled or retrying ones go to the front of the line (attempts
    /// kept), dead ones are requeued.
    RunNow {
        /// The queue (job) name.
        queue: String,
        /// The jobs' ids.
        ids: Vec<String>,
    },
    /// Stop workers leasing a queue's jobs (nothing is lost; running jobs finish).
    Pause {
        /// The queue (job) name.
        queue: String,
    },
    /// Let workers lease a paused queue's jobs again.
    Resume {
        /// The queue (job) name.
        queue: String,
    },
    /// Revoke jobs: waiting ones are dead at once and never run; running ones are told to stop,
    /// and nothing runs them again (the CLI twin of `DELETE /v1/jobs/{name}/{id}`).
    Revoke {
        /// The queue (job) name.
        queue: String,
        /// The jobs' ids.
        ids: Vec<String>,
    },
    /// Forget dead jobs.
    Discard {
        /// The queue (job) name.
        queue: String,
        /// Every dead job of the queue.
        #[arg(long)]
        all: bool,
        /// The dead jobs' ids.
        ids: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    domain::process::init();
    match start(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Read the configuration, then build the runtime it asks for (`WORKER_THREADS`: one event loop
/// by default) and run the command.
fn start(cli: Cli) -> anyhow::Result<()> {
    let settings = domain::config::Settings::from_env()?;
    let runtime = domain::process::runtime(settings.worker_threads)
        .map_err(|e| anyhow::anyhow!("cannot start the Tokio runtime: {e}"))?;
    runtime.block_on(async {
        let shutdown = domain::process::shutdown_signal();
        run(cli, settings, shutdown).await
    })
}

async fn run(
    cli: Cli,
    settings: domain::config::Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
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
        Command::Enqueue {
            name,
            args,
            unique_key,
            unique_for,
        } => {
            let args: serde_json::Value = serde_json::from_str(&args)
                .map_err(|e| anyhow::anyhow!("arguments are not JSON: {e}"))?;
            let conn = connect_redis(&settings).await?;
            let queues = domain::queues::Queues::new(conn, &settings);
            let unique = unique_key.map(|k| {
                let ttl = std::time::Duration::from_secs(unique_for.max(1));
                (domain::queues::unique_key(&k), ttl)
            });
            let item = domain::queues::EnqueueItem {
                args,
                when: queue::When::Now,
                unique,
                unique_until_end: true,
            };
            let pushed = queues
                .enqueue_many(&name, vec![item])
                .await?
                .pop()
                .ok_or_else(|| anyhow::anyhow!("the push returned nothing"))?;
            let mut out = serde_json::json!({"job_id": pushed.id, "name": name});
            if !pushed.created {
                out["duplicate"] = true.into();
            }
            println!("{out}");
            Ok(())
        }
        Command::Probe { max_age, kind } => {
            use worker::probe::{Verdict, check, this_host};
            let host = this_host();
            let mut conn = connect_redis(&settings).await.ok();
            let max_age = std::time::Duration::from_secs(max_age);
            match check(conn.as_mut(), &settings.namespace, &kind, &host, max_age).await {
                Verdict::Alive { id, age } => {
                    println!(
                        "alive: {kind} {id}, heartbeat {:.1} s ago",
                        age.as_secs_f64()
                    );
                    Ok(())
                }
                Verdict::Unknown(why) => {
                    println!("not judged: {why}");
                    Ok(())
                }
                Verdict::Stale { host, newest } => Err(anyhow::anyhow!(
                    "no {kind} process on {host} heartbeated in the last {} s{}",
                    max_age.as_secs(),
                    newest.map_or(String::new(), |age| format!(
                        " (newest {:.0} s ago)",
                        age.as_secs_f64()
                    ))
                )),
            }
        }
        Command::Jobs { action } => {
            let queues = domain::queues::Queues::new(connect_redis(&settings).await?, &settings);
            match action {
                JobsCommand::List {
                    queue,
                    state,
                    offset,
                    limit,
                } => {
                    let state = worker::admin::parse_state(&state)?;
                    worker::admin::list(&queues, &queue, state, offset, limit).await
                }
                JobsCommand::Requeue { queue, all, ids } => {
                    worker::admin::act_on_dead(&queues, &queue, &ids, all, true).await
                }
                JobsCommand::Discard { queue, all, ids } => {
                    worker::admin::act_on_dead(&queues, &queue, &ids, all, false).await
                }
                JobsCommand::RunNow { queue, ids } => {
                    worker::admin::run_now(&queues, &queue, &ids).await
                }
                JobsCommand::Revoke { queue, ids } => {
                    worker::admin::revoke(&queues, &queue, &ids).await
                }
                JobsCommand::Pause { queue } => worker::admin::pause(&queues, &queue, true).await,
                JobsCommand::Resume { queue } => worker::admin::pause(&queues, &queue, false).await,
            }
        }
    }
}

/// Connect to Redis and check its version, failing with one line.
async fn connect_redis(
    settings: &domain::config::Settings,
) -> anyhow::Result<domain::conn::RedisConn> {
    let at = domain::process::redact(&settings.redis_url);
    let mut conn = domain::queues::connect(&settings.redis_url)
        .await
        .map_err(|e| anyhow::anyhow!("Redis is unreachable at {at}: {e}"))?;
    conn.require_redis_version()
        .await
        .map_err(|e| anyhow::anyhow!("Redis at {at}: {e}"))?;
    Ok(conn)
}
