//! `finalize_idle_sessions`'s arguments (its work: `worker/src/jobs/finalize_idle_sessions.rs`).

use serde::{Deserialize, Serialize};

use crate::args::JobArgs;

/// No arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FinalizeIdleSessions {}

impl JobArgs for FinalizeIdleSessions {
    const NAME: &'static str = "finalize_idle_sessions";
    const SCHEDULE: Option<&'static str> = Some("0 * * * * *");
}
