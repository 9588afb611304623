//! `end_expired_sessions`'s arguments (its work: `worker/src/jobs/end_expired_sessions.rs`).

use serde::{Deserialize, Serialize};

use crate::args::JobArgs;

/// No arguments: every signed-in session past its `expires_at` ends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndExpiredSessions {}

impl JobArgs for EndExpiredSessions {
    const NAME: &'static str = "end_expired_sessions";
    const SCHEDULE: Option<&'static str> = Some("30 * * * * *");
}
