//! `POST /v1/track/pageview`: the middleware's work for one page view, anonymous or authenticated.

use celeriac_queue::When;
use chrono::{DateTime, Utc};
use entity::user_event;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use worker::hot::hash_session_id;
use worker::jobs::{FinalizeAnonymousSession, PersistAnonymousSession};
use worker::queues::EnqueueItem;
use worker::registry::JobArgs;

use crate::device::device;
use crate::validate::{self, TrackError, invalid};
use crate::{Tracker, community, keys, scripts};

/// One page view, as the web tier reports it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PageView {
    /// The device fingerprint (required): 1 to 128 bytes, no spaces or control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F]+$"
    )]
    pub fingerprint: String,
    /// The page: a path (`/c/montreal/?tab=1`) or an absolute http(s) URL, at most 2048 bytes
    /// without spaces. Analytics group by its path.
    #[schema(max_length = 2048, pattern = r"^(/|/[^/\s]\S*|https?://[^/?#\s]\S*)$")]
    pub url: String,
    /// Where the visitor came from: empty, a path or an absolute http(s) URL.
    #[serde(default)]
    #[schema(max_length = 2048, pattern = r"^(|/|/[^/\s]\S*|https?://[^/?#\s]\S*)$")]
    pub referrer: Option<String>,
    /// Raw `User-Agent`.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Client address, IPv4 or IPv6 (empty means none).
    #[serde(default)]
    pub ip: Option<String>,
    /// Django URL name.
    #[serde(default)]
    pub url_name: Option<String>,
    /// Page type (`community`, `event`, ...).
    #[serde(default)]
    pub page_type: Option<String>,
    /// The community the page belongs to, if any.
    #[serde(default)]
    pub community_id: Option<Uuid>,
    /// The user, for authenticated visitors.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// The user's session id, for authenticated visitors.
    #[serde(default)]
    pub session_id: Option<String>,
    /// When the view happened (default now); at most a small skew in the future.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// Who viewed a page.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visitor {
    /// No `user_id`: an anonymous session keyed by the fingerprint.
    Anonymous,
    /// A signed-in user's session.
    Authenticated,
}

/// What a tracked view changed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct Tracked {
    /// `anonymous` or `authenticated`.
    pub visitor: Visitor,
    /// The anonymous session's id (anonymous views only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
    /// Pages seen in this session so far.
    pub pages_visited: i64,
    /// True on a session's first view.
    pub new_session: bool,
    /// True when this view enqueued persist_anonymous_session.
    pub persist_enqueued: bool,
    /// True when this view is a bot's (kept out of analytics).
    pub is_bot: bool,
}

/// The fields both kinds of view share, checked.
struct Checked {
    path: String,
    url: String,
    referrer: String,
    user_agent: String,
    ip: Option<String>,
    url_name: String,
    page_type: String,
    at: DateTime<Utc>,
}

fn check(t: &Tracker, v: &PageView) -> Result<Checked, TrackError> {
    validate::fingerprint("fingerprint", &v.fingerprint)?;
    let path = validate::url_path("url", &v.url)?;
    let referrer = v.referrer.clone().unwrap_or_default();
    validate::referrer("referrer", &referrer)?;
    Ok(Checked {
        path,
        url: v.url.clone(),
        referrer,
        user_agent: validate::text("user_agent", v.user_agent.as_deref(), 1024)?,
        ip: validate::ip("ip", v.ip.as_deref())?,
        url_name: validate::text("url_name", v.url_name.as_deref(), 200)?,
        page_type: validate::text("page_type", v.page_type.as_deref(), 50)?,
        at: validate::timestamp("timestamp", v.timestamp, t.config.max_skew)?,
    })
}

impl Tracker {
    /// Track one page view.
    pub async fn track_pageview(&self, v: PageView) -> Result<Tracked, TrackError> {
        let c = check(self, &v)?;
        let tracked = match v.user_id {
            None => self.track_anonymous(&v, &c).await?,
            Some(user_id) => {
                let session_id = v
                    .session_id
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| invalid("session_id", "is required with user_id"))?;
                self.track_authenticated(&v, &c, user_id, session_id)
                    .await?
            }
        };
        if let Some(community_id) = v.community_id {
            community::visit(self, community_id, &v, &c.url, &c.referrer).await?;
        }
        Ok(tracked)
    }

    async fn track_anonymous(&self, v: &PageView, c: &Checked) -> Result<Tracked, TrackError> {
        let d = device(&c.user_agent);
        let day = c.at.date_naive();
        let visitor = keys::anon_visitor(&v.fingerprint);
        let (paths, counters, visitors) = keys::pageview_keys(day, &c.path);
        let now = c.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let view = serde_json::json!({
            "url": c.url, "url_name": c.url_name, "page_type": c.page_type,
            "viewed_at": now, "referrer": c.referrer,
        });
        let ttl = self.config.anon_timeout.as_secs().max(1);
        let (session_id, pages, new): (String, i64, i64) = scripts::ANON
            .key(keys::anon_session_key(&v.fingerprint))
            .key(keys::anon_views_key(&v.fingerprint))
            .key(paths)
            .key(counters)
            .key(visitors)
            .key(keys::footprint(&visitor))
            // A v4 id from the thread's CSPRNG: no system call per view.
            .arg(
                uuid::Builder::from_random_bytes(rand::random())
                    .into_uuid()
                    .to_string(),
            )
            .arg(&now)
            .arg(&c.url)
            .arg(&c.referrer)
            .arg(ttl)
            .arg(&v.fingerprint)
            .arg(c.ip.as_deref().unwrap_or_default())
            .arg(&c.user_agent)
            .arg(&d.device_type)
            .arg(&d.browser)
            .arg(&d.os)
            .arg(if d.is_bot { "1" } else { "0" })
            .arg(view.to_string())
            .arg(&c.path)
            .arg(&c.page_type)
            .arg(&visitor)
            .arg(self.config.counters_ttl.as_secs())
            .invoke_async(&mut self.redis.clone())
            .await?;
        let session_id: Uuid = session_id.parse().map_err(|_| {
            invalid(
                "fingerprint",
                "the live session document has a bad session_id",
            )
        })?;
        let new_session = new == 1;
        let persist =
            self.config.persist_every > 0 && pages % i64::from(self.config.persist_every) == 0;
        if new_session {
            // One finalize pending per live session: it reschedules itself while views continue.
            let grace =
                chrono::Duration::from_std(worker::jobs::finalize_grace(self.config.anon_timeout))
                    .unwrap_or_default();
            let timeout = chrono::Duration::from_std(self.config.anon_timeout).unwrap_or_default();
            let due_ms = (c.at + timeout - grace).timestamp_millis();
            let item = EnqueueItem {
                args: serde_json::json!({"fingerprint": v.fingerprint, "session_id": session_id}),
                when: When::At(due_ms),
                unique: Some((
                    FinalizeAnonymousSession::unique_key(session_id, due_ms),
                    self.config.anon_timeout * 2,
                )),
            };
            self.queues
                .enqueue_many(FinalizeAnonymousSession::NAME, vec![item])
                .await?;
        }
        if persist {
            let item = EnqueueItem {
                args: serde_json::json!({"fingerprint": v.fingerprint}),
                when: When::Now,
                unique: Some((
                    format!("persist:{session_id}:{pages}"),
                    self.config.anon_timeout,
                )),
            };
            self.queues
                .enqueue_many(PersistAnonymousSession::NAME, vec![item])
                .await?;
        }
        Ok(Tracked {
            visitor: Visitor::Anonymous,
            session_id: Some(session_id),
            pages_visited: pages,
            new_session,
            persist_enqueued: persist,
            is_bot: d.is_bot,
        })
    }

    async fn track_authenticated(
        &self,
        v: &PageView,
        c: &Checked,
        user_id: Uuid,
        session_id: &str,
    ) -> Result<Tracked, TrackError> {
        let d = device(&c.user_agent);
        let visitor = keys::user_visitor(&user_id);
        let (paths, counters, visitors) = keys::pageview_keys(c.at.date_naive(), &c.path);
        let now = c.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let redis_pages: i64 = scripts::AUTH
            .key(keys::session_key(session_id))
            .key(paths)
            .key(counters)
            .key(visitors)
            .key(keys::footprint(&visitor))
            .arg(&now)
            .arg(&c.path)
            .arg(&c.page_type)
            .arg(&visitor)
            .arg(self.config.counters_ttl.as_secs())
            .arg(if d.is_bot { "1" } else { "0" })
            .arg(user_id.to_string())
            .invoke_async(&mut self.redis.clone())
            .await?;
        if redis_pages == -2 {
            // The session is another user's: nothing was counted.
            return Err(TrackError::NotFound("session"));
        }
        let backend = self.db.get_database_backend();
        let updated = self
            .db
            .execute_raw(worker::context::statement(
                backend,
                "UPDATE accounts_usersession SET pages_visited = pages_visited + 1, last_activity = $1 \
                 WHERE session_id = $2 AND user_id = $3",
                vec![c.at.into(), hash_session_id(session_id).into(), user_id.into()],
            ))
            .await?
            .rows_affected();
        if updated == 0 && redis_pages < 0 {
            return Err(TrackError::NotFound("session"));
        }
        user_event::ActiveModel {
            user_id: Set(user_id),
            event_type: Set("page_view".into()),
            description: Set(format!("Viewed {}", c.path)),
            metadata: Set(serde_json::json!({
                "url": c.url, "url_name": c.url_name, "page_type": c.page_type,
                "referrer": c.referrer, "community_id": v.community_id,
            })),
            ip_address: Set(c.ip.clone()),
            user_agent: Set(c.user_agent.clone()),
            created_at: Set(c.at),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        Ok(Tracked {
            visitor: Visitor::Authenticated,
            session_id: None,
            pages_visited: redis_pages.max(0),
            new_session: false,
            persist_enqueued: false,
            is_bot: d.is_bot,
        })
    }
}
