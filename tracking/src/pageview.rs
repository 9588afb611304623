//! `POST /v1/track/pageview`: the middleware's work for one page view, anonymous or authenticated.

use chrono::{DateTime, Utc};
use entity::user_event;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use worker::hot::{Fingerprint, hash_session_id};
use worker::jobs::{FinalizeAnonymousSession, PersistAnonymousSession};

use crate::batch::AnonView;
use crate::device::device;
use crate::validate::{self, TrackError, invalid};
use crate::{Tracker, community, keys, scripts};

fn json_text<T: Serialize>(value: &T) -> Result<String, TrackError> {
    serde_json::to_string(value).map_err(|e| invalid("", e.to_string()))
}

/// An element of `anon_session:{fp}:views` without its `session_id` (the script puts it first).
#[derive(Serialize)]
struct BufferedView<'a> {
    url: &'a str,
    url_name: &'a str,
    page_type: &'a str,
    viewed_at: &'a str,
    referrer: &'a str,
}

/// The `anon_session:{fp}` document of a session this view starts (SPEC §3; the seed's fields).
#[derive(Serialize)]
struct NewSession<'a> {
    session_id: Uuid,
    device_fingerprint: &'a str,
    started_at: &'a str,
    pages_visited: i64,
    landing_page: &'a str,
    referrer: &'a str,
    is_active: bool,
    user_agent: &'a str,
    device_type: &'a str,
    browser: &'a str,
    os: &'a str,
    is_bot: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<&'a str>,
}

/// One page view, as the web tier reports it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PageView {
    /// The device fingerprint (required): 1 to 128 characters of A-Z, a-z, 0-9 and `-_.~+/=`
    /// (a hex, base64 or base64url digest, or a UUID).
    #[schema(
        value_type = String,
        min_length = 1,
        max_length = 128,
        pattern = r"^[A-Za-z0-9._~+/=-]+$"
    )]
    pub fingerprint: Fingerprint,
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
    /// When the view happened (default now): from `TRACK_MAX_PAST_SECONDS` (24 h) in the past to
    /// 2 minutes in the future. It dates the view and its day's counters; it never decides when
    /// a job runs (the server's clock does).
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
        at: validate::timestamp(
            "timestamp",
            v.timestamp,
            t.config.max_past,
            t.config.max_skew,
        )?,
    })
}

impl Tracker {
    /// Track one page view.
    pub async fn track_pageview(&self, v: PageView) -> Result<Tracked, TrackError> {
        let c = check(self, &v)?;
        let Some(user_id) = v.user_id else {
            // The community visit, if any, is part of the view's batched script run.
            return self.track_anonymous(&v, c).await;
        };
        let session_id = v
            .session_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("session_id", "is required with user_id"))?;
        let tracked = self
            .track_authenticated(&v, &c, user_id, session_id)
            .await?;
        if let Some(community_id) = v.community_id {
            community::visit(self, community_id, &v, &c.url, &c.referrer).await?;
        }
        Ok(tracked)
    }

    /// `c` is taken whole: its strings become the script's arguments without copies.
    async fn track_anonymous(&self, v: &PageView, c: Checked) -> Result<Tracked, TrackError> {
        let d = device(&c.user_agent);
        let day = c.at.date_naive();
        let visitor = keys::anon_visitor(&v.fingerprint);
        let page = keys::pageview_keys(day, &c.path);
        let other = keys::pageview_keys(day, worker::hot::OVERFLOW_PATH);
        let now = c.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let view = json_text(&BufferedView {
            url: &c.url,
            url_name: &c.url_name,
            page_type: &c.page_type,
            viewed_at: &now,
            referrer: &c.referrer,
        })?;
        // A v4 id from the thread's CSPRNG: no system call per view. It names the session only
        // when this view starts one; so does the finalize job's payload below.
        let new_id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        // The finalize job's due time is the script's: Redis's clock, never the client's.
        let finalize = json_text(&FinalizeAnonymousSession {
            fingerprint: v.fingerprint.clone(),
            session_id: new_id,
        })?;
        let persist = json_text(&PersistAnonymousSession {
            fingerprint: v.fingerprint.clone(),
        })?;
        let mut batch_keys = vec![
            keys::anon_session_key(&v.fingerprint),
            keys::anon_views_key(&v.fingerprint),
            page.paths,
            page.counters,
            page.visitors,
            page.sketch,
            keys::footprint(&visitor),
            other.counters,
            other.visitors,
            other.sketch,
        ];
        let community_visit = match v.community_id {
            Some(id) => {
                let k = keys::community_keys(&id);
                batch_keys.extend([
                    k.visitors,
                    k.authenticated,
                    k.anonymous,
                    k.seen,
                    k.seen_authenticated,
                ]);
                community::visitor_doc(None, v.fingerprint.as_str(), None, chrono::Utc::now())
            }
            None => String::new(),
        };
        // The document a new session starts with (the script adds the view's own fields).
        let new_session = json_text(&NewSession {
            session_id: new_id,
            device_fingerprint: v.fingerprint.as_str(),
            started_at: &now,
            pages_visited: 0,
            landing_page: &c.url,
            referrer: &c.referrer,
            is_active: true,
            user_agent: &c.user_agent,
            device_type: &d.device_type,
            browser: &d.browser,
            os: &d.os,
            is_bot: d.is_bot,
            ip_address: c.ip.as_deref(),
        })?;
        let args = vec![
            new_session,
            now,
            c.url,
            if d.is_bot { "1" } else { "0" }.to_owned(),
            view,
            c.path,
            c.page_type,
            visitor,
            finalize,
            persist,
            community_visit,
        ];
        let out = self
            .batch
            .track(AnonView {
                keys: batch_keys,
                args,
            })
            .await?;
        let session_id: Uuid = out.session_id.parse().map_err(|_| {
            invalid(
                "fingerprint",
                "the live session document has a bad session_id",
            )
        })?;
        Ok(Tracked {
            visitor: Visitor::Anonymous,
            session_id: Some(session_id),
            pages_visited: out.pages,
            new_session: out.new_session,
            persist_enqueued: out.persisted,
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
        let day = c.at.date_naive();
        let page = keys::pageview_keys(day, &c.path);
        let other = keys::pageview_keys(day, worker::hot::OVERFLOW_PATH);
        let now = c.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        // The script counts the view only where it will be answered as tracked: with the live
        // document, or (second call) once the database has confirmed the session.
        let auth_view = |count_without_doc: bool| {
            let mut inv = scripts::AUTH.prepare_invoke();
            inv.key(keys::session_key(session_id))
                .key(&page.paths)
                .key(&page.counters)
                .key(&page.visitors)
                .key(&page.sketch)
                .key(keys::footprint(&visitor))
                .key(&other.counters)
                .key(&other.visitors)
                .key(&other.sketch)
                .arg(&now)
                .arg(&c.path)
                .arg(&c.page_type)
                .arg(&visitor)
                .arg(self.config.counters_ttl.as_secs())
                .arg(if d.is_bot { "1" } else { "0" })
                .arg(user_id.to_string())
                .arg(self.config.max_paths_per_day)
                .arg(self.config.max_exact_visitors)
                .arg(if count_without_doc { "1" } else { "0" });
            inv
        };
        let redis_pages: i64 = auth_view(false)
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
        if redis_pages < 0 {
            if updated == 0 {
                // Neither Redis nor the database knows the session: nothing was counted.
                return Err(TrackError::NotFound("session"));
            }
            // The document expired but the session stands: count the view now.
            let _: i64 = auth_view(true)
                .invoke_async(&mut self.redis.clone())
                .await?;
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
