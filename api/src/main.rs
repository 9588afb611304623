//! `api`: the Procfile's `web` process. Usage: `api` (no arguments; configured by environment).
//!
//! Reads `DATABASE_URL`, `REDIS_URL`, `CELERIAC_NAMESPACE` ([`domain::config::Settings`]) and
//! `API_ADDR`, `PORT`, `API_TOKEN`, `API_MAX_BODY_BYTES` ([`api::config::ApiConfig`]), `.env`
//! included. Exits 1 with one line on stderr when configuration is bad or Redis or the database is
//! unreachable at start; exits 0 after SIGTERM or Ctrl-C once in-flight requests are done.
//! It never runs migrations (that is the `release` process).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use api::{ApiConfig, AppState};
use domain::config::Settings;
use domain::db::Db;
use domain::process::{redact, shutdown_signal};
use sea_orm::ConnectOptions;

/// mimalloc rather than the system allocator: a request allocates and frees many small buffers
/// across the runtime's threads, and glibc's malloc cost about a tenth of the CPU per page view
/// (`bench/api.sh`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    domain::process::init();
    match start() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("api: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Read the configuration, then build the runtime it asks for (`API_THREADS`) and serve.
fn start() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let api = ApiConfig::from_env()?;
    let runtime =
        domain::process::runtime(api.threads).context("cannot start the Tokio runtime")?;
    runtime.block_on(async { run(settings, api, shutdown_signal()).await })
}

/// The error and its causes on one line, skipping a cause whose text is already shown (redis and
/// sqlx errors repeat their source in their own message).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

async fn run(
    settings: Settings,
    api: ApiConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // A SIGTERM while starting stops here, before the listener exists (nothing to drain).
    let mut shutdown = Box::pin(shutdown);
    let (listener, state) = tokio::select! {
        started = start_serving(settings, api) => started?,
        () = &mut shutdown => {
            tracing::info!("stopped while starting");
            return Ok(());
        }
    };
    api::serve(listener, state, shutdown).await?;
    tracing::info!("api stopped");
    Ok(())
}

/// Connect to Redis and the database, check the schema, bind the listener.
async fn start_serving(
    settings: Settings,
    api: ApiConfig,
) -> anyhow::Result<(tokio::net::TcpListener, AppState)> {
    let redis_at = redact(&settings.redis_url);
    let mut redis = api::connect_redis(&settings.redis_url)
        .await
        .with_context(|| format!("Redis is unreachable at {redis_at}"))?;
    redis::cmd("PING")
        .query_async::<String>(&mut redis)
        .await
        .with_context(|| format!("Redis at {redis_at} does not answer PING"))?;
    redis
        .require_redis_version()
        .await
        .with_context(|| format!("Redis at {redis_at}"))?;
    // Every script into every node now (on a cluster, replicas too): a failover later finds
    // them on the promoted replica.
    let mut scripts = queue::all_scripts();
    scripts.extend(tracking::all_scripts());
    redis
        .load_scripts(&settings.redis_url, &scripts)
        .await
        .with_context(|| format!("Redis at {redis_at} refused the scripts"))?;

    let mut options = ConnectOptions::new(settings.database_url.clone());
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5));
    let db = Db::connect(options, settings.database_pool_mode).await?;

    let shape = domain::schema::inspect(&db)
        .await
        .context("the database cannot take Celeriac's rows")?;

    let listener = tokio::net::TcpListener::bind(api.addr)
        .await
        .with_context(|| format!("cannot listen on {} (API_ADDR/PORT)", api.addr))?;
    tracing::info!(addr = %api.addr, "api listening");

    let state = AppState::new(redis, db, settings, api);
    state.tracker.shape.set(shape);
    Ok((listener, state))
}
