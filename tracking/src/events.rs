//! User events (`POST /v1/events`) and sign-up conversions (`POST /v1/conversions`). Events are for
//! authenticated users only: an anonymous visitor's events are never stored (privacy).

use chrono::Utc;
use domain::jobs::LinkAnonymousConversion;
use entity::user_event;
use sea_orm::{EntityTrait, Set};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Tracker;
use crate::sessions::ensure_profile;
use crate::validate::{self, TrackError, invalid};

/// An event to record.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewEvent {
    /// The user; required (anonymous events are refused).
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// `[a-z0-9_]`, 1 to 50 characters.
    #[schema(pattern = "^[a-z0-9_]{1,50}$")]
    pub event_type: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// A JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Client address, IPv4 or IPv6 (empty means none).
    #[serde(default)]
    pub ip: Option<String>,
    /// Raw `User-Agent`.
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// A recorded event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventRecorded {
    /// Its row id.
    pub id: i64,
}

/// A sign-up to link to the visitor's anonymous session.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct Conversion {
    /// The new user.
    pub user_id: Uuid,
    /// The device fingerprint they browsed with: 1 to 128 bytes, no spaces or control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$"
    )]
    pub fingerprint: String,
}

impl Tracker {
    /// Record an authenticated user's event.
    pub async fn record_event(&self, e: NewEvent) -> Result<EventRecorded, TrackError> {
        let user_id = e.user_id.ok_or_else(|| {
            invalid(
                "user_id",
                "is required: anonymous visitors' events are not stored",
            )
        })?;
        if e.event_type.is_empty()
            || e.event_type.len() > 50
            || !e
                .event_type
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid(
                "event_type",
                "must be 1 to 50 characters of a-z, 0-9 and _",
            ));
        }
        let metadata = match e.metadata {
            None | Some(serde_json::Value::Null) => serde_json::json!({}),
            Some(m @ serde_json::Value::Object(_)) => m,
            Some(_) => return Err(invalid("metadata", "must be a JSON object")),
        };
        validate::json_text("metadata", &metadata)?;
        let description = validate::text("description", e.description.as_deref(), 2000)?;
        let user_agent = validate::text("user_agent", e.user_agent.as_deref(), 1024)?;
        let ip = validate::ip("ip", e.ip.as_deref())?;
        ensure_profile(self, user_id, None).await?;
        // Insert without reading the row back: `metadata` is the client's JSON, and PostgreSQL
        // may return its numbers in a form that does not decode (e.g. 1.8e308 as 309 digits).
        let inserted = user_event::Entity::insert(user_event::ActiveModel {
            user_id: Set(user_id),
            event_type: Set(e.event_type),
            description: Set(description),
            metadata: Set(metadata),
            ip_address: Set(ip),
            user_agent: Set(user_agent),
            created_at: Set(Utc::now()),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        Ok(EventRecorded {
            id: inserted.last_insert_id,
        })
    }

    /// Enqueue `link_anonymous_conversion`; returns the job id.
    pub async fn convert(&self, c: Conversion) -> Result<String, TrackError> {
        let job = LinkAnonymousConversion {
            user_id: c.user_id,
            fingerprint: validate::fingerprint("fingerprint", &c.fingerprint)?,
        };
        let pushed = self.queues.push(&job, queue::When::Now).await?;
        Ok(pushed.id)
    }
}
