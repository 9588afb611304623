//! Login and logout (`POST /v1/sessions`, `DELETE /v1/sessions/{session_id}`): the UserSession row,
//! the `session:{hashed_id}` document (4 h, or 30 d with remember-me), and the enhance job.
//! Session ids follow [`domain::keys::hashed_session_id`].

use chrono::{DateTime, Utc};
use domain::jobs::EnhanceSessionAsync;
use domain::sql::statement;
use entity::user_event;
use rand::RngCore;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
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
    /// The site's own session: its key (Django's `request.session.session_key`) or its hashed id
    /// (64 lowercase hex, hex SHA-256 of the key: what the Django package sends). A second login
    /// with the same session is the same row, as the seed's `get_or_create`. Without it the fleet
    /// makes a key.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub session_id: Option<String>,
}

/// A new session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoggedIn {
    /// The session id the client keeps: the one it sent, or the key the fleet made (48 hex
    /// characters). Page views and logout take it or its hashed id.
    pub session_id: String,
    /// Its hashed id: hex SHA-256 of the key, what Redis (`session:{hashed_id}`) and the database
    /// hold.
    pub hashed_id: String,
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
    if t.shape.get(&t.db).await?.django {
        // Django owns the users: the profile must be there already.
        let found =
            t.db.query_one_raw(statement(
                backend,
                "SELECT 1 AS one FROM accounts_userprofile WHERE id = $1",
                vec![user_id.into()],
            ))
            .await?;
        return match found {
            Some(_) => Ok(()),
            None => Err(TrackError::NotFound("user")),
        };
    }
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
        let session_id = match l.session_id {
            Some(id) if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) => {
                return Err(invalid(
                    "session_id",
                    "must be 1 to 256 characters without control characters",
                ));
            }
            Some(id) => id,
            None => {
                let mut raw = [0u8; 24];
                rand::rng().fill_bytes(&mut raw);
                hex::encode(raw)
            }
        };
        let hashed = keys::hashed_session_id(&session_id);
        ensure_profile(self, l.user_id, l.username.as_deref()).await?;
        let shape = self.shape.get(&self.db).await?;
        let now = Utc::now();
        let ttl = if l.remember_me {
            self.config.remember_ttl
        } else {
            self.config.session_ttl
        };
        let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or_default();
        // The seed's get_or_create: a second login with the same session is the same row, active
        // again; a session of another user is refused.
        let (is_ended_col, is_ended_val) = if shape.session_is_ended {
            (", is_ended", ", FALSE")
        } else {
            ("", "")
        };
        let reopen_ended = if shape.session_is_ended {
            ", is_ended = FALSE"
        } else {
            ""
        };
        let backend = self.db.get_database_backend();
        // `inet` on PostgreSQL takes no text parameter without a cast; SQLite keeps text.
        let ip_param = match backend {
            sea_orm::DatabaseBackend::Postgres => "CAST($3 AS inet)",
            _ => "$3",
        };
        let sql = format!(
            "INSERT INTO accounts_usersession (user_id, session_id, ip_address, user_agent, device_info, \
             location_data, device_fingerprint, fast_fingerprint, persistent, pages_visited, started_at, \
             last_activity, ended_at, expires_at, is_active{is_ended_col}) \
             VALUES ($1, $2, {ip_param}, $4, $5, $6, $7, $7, $8, 0, $9, $9, NULL, $10, TRUE{is_ended_val}) \
             ON CONFLICT (session_id) DO UPDATE SET is_active = TRUE, ended_at = NULL, \
             last_activity = excluded.last_activity, expires_at = excluded.expires_at, \
             persistent = excluded.persistent{reopen_ended} \
             WHERE accounts_usersession.user_id = excluded.user_id"
        );
        let empty = || serde_json::Value::Object(serde_json::Map::new());
        let written = self
            .db
            .execute_raw(statement(
                backend,
                &sql,
                vec![
                    l.user_id.into(),
                    hashed.clone().into(),
                    ip.clone().into(),
                    user_agent.clone().into(),
                    empty().into(),
                    empty().into(),
                    fp.clone().into(),
                    l.remember_me.into(),
                    now.into(),
                    expires_at.into(),
                ],
            ))
            .await?
            .rows_affected();
        if written == 0 {
            return Err(TrackError::Conflict(domain::args::ArgError::new(
                "session_id",
                "another user's session has this id",
            )));
        }
        self.session_event(
            l.user_id,
            "login",
            "Logged in",
            serde_json::json!({
                "session_id": hashed, "persistent": l.remember_me, "device_fingerprint": fp,
            }),
            ip.clone(),
            user_agent.clone(),
            now,
        )
        .await?;
        let (started, expires) = (now.to_rfc3339(), expires_at.to_rfc3339());
        let doc = serde_json::to_string(&AuthSessionDoc {
            session_id: &hashed,
            user_id: l.user_id,
            user_username: l.username.as_deref(),
            ip_address: ip.as_deref(),
            user_agent: &user_agent,
            device_fingerprint: &fp,
            fast_fingerprint: &fp,
            persistent: l.remember_me,
            is_active: true,
            pages_visited: 0,
            started_at: &started,
            last_activity: &started,
            expires_at: &expires,
        })
        .map_err(|e| invalid("", e.to_string()))?;
        let _: () = redis::cmd("SET")
            .arg(keys::session_key(&hashed))
            .arg(doc)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut self.redis.clone())
            .await?;
        // The hashed id: no job payload holds a usable session key.
        self.queues
            .push(
                &EnhanceSessionAsync {
                    session_id: hashed.clone(),
                },
                queue::When::Now,
            )
            .await?;
        Ok(LoggedIn {
            session_id,
            hashed_id: hashed,
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
        let hashed = keys::hashed_session_id(session_id);
        let ended = if self.shape.get(&self.db).await?.session_is_ended {
            ", is_ended = TRUE"
        } else {
            ""
        };
        let now = Utc::now();
        // Only an active session ends (and gets its `logout` event): a repeated logout changes
        // nothing.
        let ended_rows = self
            .db
            .query_all_raw(statement(
                backend,
                &format!(
                    "UPDATE accounts_usersession SET is_active = FALSE, \
                     ended_at = COALESCE(ended_at, $1){ended} WHERE session_id = $2 AND is_active \
                     RETURNING user_id, user_agent, device_fingerprint"
                ),
                vec![now.into(), hashed.clone().into()],
            ))
            .await?;
        for row in &ended_rows {
            let user_id: Uuid = row.try_get("", "user_id")?;
            let user_agent: String = row.try_get("", "user_agent")?;
            let fp: String = row.try_get("", "device_fingerprint")?;
            self.session_event(
                user_id,
                "logout",
                "Logged out",
                serde_json::json!({"session_id": hashed, "device_fingerprint": fp}),
                None,
                user_agent,
                now,
            )
            .await?;
        }
        let dropped: i64 = redis::cmd("DEL")
            .arg(keys::session_key(&hashed))
            .query_async(&mut self.redis.clone())
            .await?;
        if ended_rows.is_empty() && dropped == 0 {
            let known = self
                .db
                .query_one_raw(statement(
                    backend,
                    "SELECT 1 AS one FROM accounts_usersession WHERE session_id = $1",
                    vec![hashed.into()],
                ))
                .await?;
            if known.is_none() {
                return Err(TrackError::NotFound("session"));
            }
        }
        Ok(())
    }

    /// A `login` or `logout` UserEvent (the seed's event list).
    #[allow(clippy::too_many_arguments)]
    async fn session_event(
        &self,
        user_id: Uuid,
        event_type: &str,
        description: &str,
        metadata: serde_json::Value,
        ip: Option<String>,
        user_agent: String,
        at: chrono::DateTime<Utc>,
    ) -> Result<(), TrackError> {
        user_event::Entity::insert(user_event::ActiveModel {
            user_id: Set(user_id),
            event_type: Set(event_type.to_owned()),
            description: Set(description.to_owned()),
            metadata: Set(metadata),
            ip_address: Set(ip),
            user_agent: Set(user_agent),
            created_at: Set(at),
            ..Default::default()
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }
}
