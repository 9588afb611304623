//! `enhance_session_async`'s arguments (its work: `worker/src/jobs/enhance_session_async.rs`).

use serde::{Deserialize, Serialize};

use crate::args::{ArgError, JobArgs};
use crate::keys::hash_session_id;

/// Arguments: the session to enhance, by its hashed id (what the API enqueues and the seed's
/// `enhance_session_async.delay(hashed_id)` sends, so no payload holds a usable token) or its
/// session key, hashed here ([`crate::keys::hashed_session_id`], the one rule).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnhanceSessionAsync {
    /// Session id, hashed or not.
    pub session_id: String,
}

impl EnhanceSessionAsync {
    /// The arguments for a session the client knows as `session_id`, already hashed.
    pub fn hashed(session_id: &str) -> Self {
        Self {
            session_id: hash_session_id(session_id),
        }
    }

    /// The stored form of the session id ([`crate::keys::hashed_session_id`]).
    pub fn stored_id(&self) -> String {
        crate::keys::hashed_session_id(&self.session_id)
    }
}

impl JobArgs for EnhanceSessionAsync {
    const NAME: &'static str = "enhance_session_async";
    const POSITIONAL: &'static [&'static str] = &["session_id"];

    fn validate(&self) -> Result<(), ArgError> {
        if self.session_id.is_empty() || self.session_id.len() > 256 {
            return Err(ArgError::new("session_id", "must be 1 to 256 characters"));
        }
        Ok(())
    }
}
