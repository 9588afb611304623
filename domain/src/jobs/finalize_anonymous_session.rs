//! `finalize_anonymous_session`'s arguments (its work: `worker/src/jobs/finalize_anonymous_session.rs`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::args::{ArgError, JobArgs};
use crate::keys::Fingerprint;

/// Arguments: the visitor and the session to end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinalizeAnonymousSession {
    /// Device fingerprint.
    pub fingerprint: Fingerprint,
    /// The session's id (the row's primary key).
    pub session_id: Uuid,
}

impl JobArgs for FinalizeAnonymousSession {
    const NAME: &'static str = "finalize_anonymous_session";
    const POSITIONAL: &'static [&'static str] = &["fingerprint", "session_id"];

    fn validate(&self) -> Result<(), ArgError> {
        // The fingerprint was checked when the arguments were decoded (its type).
        Ok(())
    }
}
