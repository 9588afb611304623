//! `worker probe`: an orchestrator's liveness check for the `worker run` and `worker scheduler`
//! processes of this host (an exec probe), read from the heartbeats they write to Redis.

use std::time::Duration;

use chrono::Utc;
use domain::conn::RedisConn;

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A process of that kind on this host heartbeated within the limit.
    Alive {
        /// Its id (`host:pid`).
        id: String,
        /// Age of its latest heartbeat.
        age: Duration,
    },
    /// None did: restart it.
    Stale {
        /// The host looked for.
        host: String,
        /// The newest heartbeat's age, if there was any.
        newest: Option<Duration>,
    },
    /// Redis could not be read: nothing can be said (a Redis outage must not restart workers).
    Unknown(String),
}

/// Whether a `kind` process (`worker` or `scheduler`) on `host` heartbeated within `max_age`.
/// Ages are read on this host's clock, the clock the process stamped its heartbeat with.
pub async fn check(
    conn: Option<&mut RedisConn>,
    namespace: &str,
    kind: &str,
    host: &str,
    max_age: Duration,
) -> Verdict {
    let Some(conn) = conn else {
        return Verdict::Unknown("Redis is unreachable".to_owned());
    };
    let live = match domain::workers::live(conn, namespace).await {
        Ok(live) => live,
        Err(e) => return Verdict::Unknown(format!("Redis: {e}")),
    };
    let now = Utc::now();
    let newest = live
        .into_iter()
        .filter(|w| w.kind == kind && w.host == host)
        .map(|w| {
            let age = (now - w.heartbeat_at).to_std().unwrap_or(Duration::ZERO);
            (w.id, age)
        })
        .min_by_key(|(_, age)| *age);
    match newest {
        Some((id, age)) if age <= max_age => Verdict::Alive { id, age },
        other => Verdict::Stale {
            host: host.to_owned(),
            newest: other.map(|(_, age)| age),
        },
    }
}

/// This host's name as the processes record it (`HOSTNAME`, else the kernel's).
pub fn this_host() -> String {
    let id = domain::schedules::copy_name();
    id.rsplit_once(':')
        .map_or(id.as_str(), |(host, _)| host)
        .to_owned()
}
