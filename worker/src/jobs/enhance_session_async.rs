//! `enhance_session_async`: parse a login's user agent (device, browser, OS, bot) into `device_info`.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde::{Deserialize, Serialize};

use super::{Job, JobError};
use crate::context::JobContext;
use crate::hot::hash_session_id;
use crate::registry::{ArgError, JobArgs};
use entity::user_session;

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
    fn stored_id(&self) -> String {
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

/// What a user agent says about the device, from the woothee parser (a maintained UA and crawler list).
pub fn parse_user_agent(ua: &str) -> serde_json::Value {
    let parsed = woothee::parser::Parser::new().parse(ua);
    match parsed {
        Some(r) => serde_json::json!({
            "device_type": match r.category { "smartphone" => "mobile", "mobilephone" => "mobile", "pc" => "desktop", other => other },
            "browser": r.name,
            "browser_version": r.version,
            "os": r.os,
            "os_version": r.os_version,
            "vendor": r.vendor,
            "is_bot": r.category == "crawler",
        }),
        None => serde_json::json!({
            "device_type": "unknown", "browser": "", "browser_version": "", "os": "", "os_version": "",
            "vendor": "", "is_bot": false,
        }),
    }
}

impl Job for EnhanceSessionAsync {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let hashed = self.stored_id();
        let Some(row) = user_session::Entity::find()
            .filter(user_session::Column::SessionId.eq(&hashed))
            .one(&ctx.db)
            .await?
        else {
            tracing::warn!("session row not found; nothing to enhance");
            return Ok(());
        };
        let info = parse_user_agent(&row.user_agent);
        user_session::Entity::update_many()
            .col_expr(user_session::Column::DeviceInfo, Expr::value(info))
            .filter(user_session::Column::Id.eq(row.id))
            .exec(&ctx.db)
            .await?;
        Ok(())
    }
}
