//! What every Celeriac process does at start and stop: one tracing setup (`RUST_LOG` filter,
//! default info; `LOG_FORMAT=json` for JSON), URLs without passwords for messages, and the
//! shutdown signal.

use std::future::Future;

use tracing_subscriber::EnvFilter;

/// Install the global subscriber; a second call is a no-op.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,apalis_core=warn"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Colours only on a terminal: a log file or pipe gets plain text (and the API skips styling
    // every request span's fields).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    if url.contains(',') {
        // A cluster's seed nodes: each one redacted.
        return url.split(',').map(redact).collect::<Vec<_>>().join(",");
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// The runtime a process runs on: one event loop (a current-thread runtime) for `threads == 1`,
/// else a multi-thread runtime with that many threads (`API_THREADS`, `WORKER_THREADS`). On one
/// thread no task moves between threads and no thread wakes another: the worker's jobs cost
/// 30 % less of its CPU so (`docs/persist-speed.md`, fifth round).
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Install the SIGTERM and Ctrl-C handlers now (so a signal during start-up is not fatal) and
/// return a future that resolves on the first of them. Call it as soon as the runtime exists
/// (it needs one), before connecting to anything.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    async move {
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let int = async {
            match int.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = term => {}
            () = int => {}
        }
    }
}
