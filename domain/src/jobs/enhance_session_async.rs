//! `enhance_session_async`'s arguments (its work: `worker/src/jobs/enhance_session_async.rs`).

use serde::{Deserialize, Serialize};

use crate::args::{ArgError, JobArgs};
use crate::keys::hash_session_id;

/// Arguments: the session to enhance: its stored form (`hash_session_id`, 64 lowercase hex
/// characters, what the API enqueues so no payload holds a usable token), or the id the client
/// holds (what a Celery `.delay()` may send), hashed here.
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

    /// The stored form of the session id.
    pub fn stored_id(&self) -> String {
        let s = &self.session_id;
        let already = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if already {
            s.clone()
        } else {
            hash_session_id(s)
        }
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
