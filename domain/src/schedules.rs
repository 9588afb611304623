//! What the scheduler publishes of each periodic job, for the API (`GET /v1/schedules`) and the
//! console to read: one definition of the keys and the entry, under the queue namespace.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{ns}:scheduler:entries` | HASH | job → [`Published`] JSON: its cron and next tick, written by every scheduler copy at start and after each tick |
//! | `{ns}:scheduler:enqueued_by` | HASH | job → the copy (`host:pid`) that enqueued its latest tick |
//! | `{ns}:scheduler:last:{job}` | STRING | the latest tick enqueued (epoch seconds) |

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `{ns}:scheduler:entries`.
pub fn entries_key(namespace: &str) -> String {
    format!("{}:scheduler:entries", crate::keys::fleet_prefix(namespace))
}

/// `{ns}:scheduler:enqueued_by`.
pub fn enqueued_by_key(namespace: &str) -> String {
    format!(
        "{}:scheduler:enqueued_by",
        crate::keys::fleet_prefix(namespace)
    )
}

/// `{ns}:scheduler:last:{job}`.
pub fn last_tick_key(namespace: &str, job: &str) -> String {
    format!(
        "{}:scheduler:last:{job}",
        crate::keys::fleet_prefix(namespace)
    )
}

/// One periodic job as a scheduler copy sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// Its cron expression (with seconds, UTC), as configured.
    pub cron: String,
    /// Its next tick after the latest one enqueued.
    pub next_tick: Option<DateTime<Utc>>,
}

/// This process as a scheduler copy: `host:pid`.
pub fn copy_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{host}:{}", std::process::id())
}
