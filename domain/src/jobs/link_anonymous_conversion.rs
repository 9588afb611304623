//! `link_anonymous_conversion`'s arguments (its work: `worker/src/jobs/link_anonymous_conversion.rs`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::args::{ArgError, JobArgs};
use crate::keys::Fingerprint;

/// Arguments: the new user and the visitor they were.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkAnonymousConversion {
    /// The new user's id (`accounts_userprofile.id`).
    pub user_id: Uuid,
    /// The visitor's device fingerprint.
    pub fingerprint: Fingerprint,
}

impl JobArgs for LinkAnonymousConversion {
    const NAME: &'static str = "link_anonymous_conversion";
    const POSITIONAL: &'static [&'static str] = &["user_id", "fingerprint"];

    fn validate(&self) -> Result<(), ArgError> {
        // The fingerprint was checked when the arguments were decoded (its type).
        Ok(())
    }
}
