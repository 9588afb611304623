//! `persist_anonymous_session`'s arguments (its work: `worker/src/jobs/persist_anonymous_session.rs`).

use serde::{Deserialize, Serialize};

use crate::args::{ArgError, JobArgs};
use crate::keys::Fingerprint;

/// Arguments: the visitor's fingerprint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersistAnonymousSession {
    /// Device fingerprint; the Redis key is `anon_session:{fingerprint}`.
    pub fingerprint: Fingerprint,
}

impl JobArgs for PersistAnonymousSession {
    const NAME: &'static str = "persist_anonymous_session";
    const POSITIONAL: &'static [&'static str] = &["fingerprint"];

    fn validate(&self) -> Result<(), ArgError> {
        // The fingerprint was checked when the arguments were decoded (its type).
        Ok(())
    }
}
