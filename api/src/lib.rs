//! Celeriac's HTTP API: enqueue and inspect jobs, queue counts, health, readiness and metrics.
//!
//! [`app::build`] makes the router from an [`AppState`]; [`serve`] runs it on a listener until a
//! shutdown future resolves. `src/main.rs` only reads configuration, connects and calls [`serve`].
//!
#![doc = include_str!("../README.md")]

pub mod app;
pub mod auth;
pub mod config;
pub mod console;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod prometheus;
pub mod responses;
pub mod routes;
pub mod state;

use axum::serve::ListenerExt as _;
use std::future::{Future, IntoFuture};

use tokio::net::TcpListener;

pub use app::build;
pub use config::ApiConfig;
pub use error::ApiError;
pub use state::AppState;

/// Connect to Redis the way the API does (the `api` binary and the tests call this): the worker's
/// settings ([`domain::queues::connect`]: connect timeout 2 s, response timeout 10 s, 2 reconnect
/// retries). While Redis is down a request waits for at most the reconnect cycle in progress
/// (refused connections fail at once; the retries back off about 0.1-0.2 s and 0.2-0.4 s), so it
/// gets its 503 in about half a second, and the first cycle after Redis returns succeeds.
/// `tests/tests/redis_cut.rs` holds both to a second.
pub async fn connect_redis(url: &str) -> redis::RedisResult<domain::conn::RedisConn> {
    domain::queues::connect(url).await
}

/// Serve the API on `listener` until `shutdown` resolves, then stop accepting connections and
/// let in-flight requests finish, for at most `SHUTDOWN_TIMEOUT_SECONDS`.
pub async fn serve<F>(listener: TcpListener, state: AppState, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    if state.api.token.is_none() {
        tracing::warn!("API_TOKEN is unset: /v1 accepts requests without authentication");
    }
    let grace = state.settings.shutdown_timeout;
    let drain = state.api.drain;
    let draining = state.clone();
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    // Responses go out at once (no Nagle wait for the client's ACK of the previous one).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app::build(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            draining
                .stopping
                .store(true, std::sync::atomic::Ordering::Relaxed);
            if !drain.is_zero() {
                tracing::info!(
                    drain_seconds = drain.as_secs(),
                    "stopping: /readyz is 503, still serving while the load balancer drains"
                );
                // A second SIGTERM or Ctrl-C ends the drain at once.
                tokio::select! {
                    () = tokio::time::sleep(drain) => {}
                    () = domain::process::shutdown_signal() => {
                        tracing::info!("signalled again: draining cut short");
                    }
                }
            }
            let _ = stopping_tx.send(());
        })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        Ok(()) = stopping_rx => {}
    }
    tracing::info!(
        grace_seconds = grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!("requests still open after the shutdown timeout; closing them");
            Ok(())
        }
    }
}
