//! Login and logout (`POST /v1/sessions`, `DELETE /v1/sessions/{session_id}`): the UserSession row,
//! the `session:{id}` document (4 h, or 30 d with remember-me), and the enhance job.

use chrono::{DateTime, Utc};
use domain::jobs::EnhanceSessionAsync;
use domain::keys::hash_session_id;
use domain::sql::statement;
use entity::user_session;
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Tracker;
use crate::validate::{self, TrackError, clip, invalid};
use domain::documents::AuthSessionDoc;
use domain::keys;

/// A login.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct Login {
    /// The user (`accounts_userprofile.id`).
    pub user_id: Uuid,
    /// Username, used when the profile does not exist yet (standalone use): 1 to 150 bytes.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 150)]
    pub username: Option<String>,
    /// Client address, IPv4 or IPv6 (empty means none).
    #[serde(default)]
    pub ip: Option<String>,
    /// Raw `User-Agent`.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Device fingerprint (empty means none).
    #[serde(default)]
    #[schema(max_length = 128, pattern = r"^[^\s\x00-\x1F\x7F-\x9F]*$")]
    pub device_fingerprint: Option<String>,
    /// Keep the session 30 days instead of 4 hours.
    #[serde(default)]
    pub remember_me: bool,
}

/// A new session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoggedIn {
    /// The session id the client keeps (the database stores only its hash).
    pub session_id: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// Make sure `accounts_userprofile` has the user (Django owns it in production; standalone
/// deployments get a placeholder row). A new user whose username another user already has is
/// [`TrackError::Conflict`] on `username`.
pub(crate) async fn ensure_profile(
    t: &Tracker,
    user_id: Uuid,
    username: Option<&str>,
) -> Result<(), TrackError> {
    let backend = t.db.get_database_backend();
    let username = username
        .map(|u| clip(u, 150))
        .unwrap_or_else(|| format!("user-{}", user_id.simple()));
    let inserted = t
        .db
        .execute_raw(statement(
            backend,
            "INSERT INTO accounts_userprofile (id, username, division_id, date_joined) VALUES ($1, $2, NULL, $3) \
             ON CONFLICT (id) DO NOTHING",
            vec![user_id.into(), username.into(), Utc::now().into()],
        ))
        .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            Err(TrackError::Conflict(domain::args::ArgError::new(
                "username",
                "another user has this username",
            )))
        }
        Err(e) => Err(e.into()),
    }
}

impl Tracker {
    /// Log a user in: a UserSession row, `session:{id}`, and `enhance_session_async` enqueued.
    pub async fn login(&self, l: Login) -> Result<LoggedIn, TrackError> {
        let ip = validate::ip("ip", l.ip.as_deref())?;
        let fp = l.device_fingerprint.clone().unwrap_or_default();
        if !fp.is_empty() {
            validate::fingerprint("device_fingerprint", &fp)?;
        }
        if l.username
            .as_deref()
            .is_some_and(|u| u.is_empty() || u.len() > 150 || u.contains('\0'))
        {
            return Err(invalid(
                "username",
                "must be 1 to 150 characters, without NUL",
            ));
        }
        let user_agent = validate::text("user_agent", l.user_agent.as_deref(), 1024)?;
        ensure_profile(self, l.user_id, l.username.as_deref()).await?;
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let session_id = hex::encode(raw);
        let now = Utc::now();
        let ttl = if l.remember_me {
            self.config.remember_ttl
        } else {
            self.config.session_ttl
        };
        let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or_default();
        user_session::ActiveModel {
            user_id: Set(l.user_id),
            session_id: Set(hash_session_id(&session_id)),
            ip_address: Set(ip.clone()),
            user_agent: Set(user_agent.clone()),
            device_info: Set(serde_json::json!({})),
            location_data: Set(serde_json::json!({})),
            device_fingerprint: Set(fp.clone()),
            fast_fingerprint: Set(fp.clone()),
            persistent: Set(l.remember_me),
            pages_visited: Set(0),
            started_at: Set(now),
            last_activity: Set(now),
            ended_at: Set(None),
            expires_at: Set(expires_at),
            is_active: Set(true),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        let (started, expires) = (now.to_rfc3339(), expires_at.to_rfc3339());
        let doc = serde_json::to_string(&AuthSessionDoc {
            user_id: l.user_id,
            username: l.username.as_deref(),
            session_id: &session_id,
            ip_address: ip.as_deref(),
            user_agent: &user_agent,
            device_fingerprint: &fp,
            pages_visited: 0,
            is_active: true,
            remember_me: l.remember_me,
            started_at: &started,
            last_activity: &started,
            expires_at: &expires,
        })
        .map_err(|e| invalid("", e.to_string()))?;
        let _: () = redis::cmd("SET")
            .arg(keys::session_key(&session_id))
            .arg(doc)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut self.redis.clone())
            .await?;
        // The stored form: no job payload holds a usable session token.
        self.queues
            .push(&EnhanceSessionAsync::hashed(&session_id), queue::When::Now)
            .await?;
        Ok(LoggedIn {
            session_id,
            expires_at,
        })
    }

    /// Log a session out: ended in the database, its key dropped. Repeating it is harmless;
    /// an unknown session is [`TrackError::NotFound`].
    pub async fn logout(&self, session_id: &str) -> Result<(), TrackError> {
        if session_id.is_empty() || session_id.len() > 256 {
            return Err(invalid("session_id", "must be 1 to 256 characters"));
        }
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .execute_raw(statement(
                backend,
                "UPDATE accounts_usersession SET is_active = FALSE, ended_at = COALESCE(ended_at, $1) \
                 WHERE session_id = $2",
                vec![Utc::now().into(), hash_session_id(session_id).into()],
            ))
            .await?
            .rows_affected();
        let dropped: i64 = redis::cmd("DEL")
            .arg(keys::session_key(session_id))
            .query_async(&mut self.redis.clone())
            .await?;
        if rows == 0 && dropped == 0 {
            return Err(TrackError::NotFound("session"));
        }
        Ok(())
    }
}
