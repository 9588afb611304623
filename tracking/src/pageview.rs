//! `POST /v1/track/pageview`: the middleware's work for one page view, anonymous or authenticated.

use chrono::{DateTime, Utc};
use domain::jobs::{FinalizeAnonymousSession, PersistAnonymousSession};
use entity::user_event;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::view::PageView;

use crate::batch::{AnonView, ViewArgs};
use crate::device::device;
use crate::validate::{self, TrackError, invalid};
use crate::{Tracker, community, scripts};
use domain::documents::{NewSessionDoc, NewView};
use domain::keys;

fn json_text<T: Serialize>(value: &T) -> Result<String, TrackError> {
    serde_json::to_string(value).map_err(|e| invalid("", e.to_string()))
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

/// The answer to an anonymous view, from what its script (or steps) returned.
fn tracked_anonymous(
    session_id: String,
    pages: i64,
    new_session: bool,
    persisted: bool,
    is_bot: bool,
) -> Result<Tracked, TrackError> {
    let session_id: Uuid = session_id.parse().map_err(|_| {
        invalid(
            "fingerprint",
            "the live session document has a bad session_id",
        )
    })?;
    Ok(Tracked {
        visitor: Visitor::Anonymous,
        session_id: Some(session_id),
        pages_visited: pages,
        new_session,
        persist_enqueued: persisted,
        is_bot,
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
        let hashed = keys::hashed_session_id(session_id);
        let tracked = self.track_authenticated(&v, &c, user_id, &hashed).await?;
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
        let other = keys::pageview_keys(day, domain::keys::OVERFLOW_PATH);
        let now = c.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let view = json_text(&NewView {
            url: &c.url,
            url_name: &c.url_name,
            page_type: &c.page_type,
            viewed_at: &now,
            referrer: &c.referrer,
            view_id: v.view_id,
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
        let new_session = json_text(&NewSessionDoc {
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
        if keys::layout() == keys::Layout::Cluster {
            drop(batch_keys);
            let (page, other) = (
                keys::pageview_keys(day, &c.path),
                keys::pageview_keys(day, domain::keys::OVERFLOW_PATH),
            );
            let out = crate::split::track_anonymous(
                self,
                crate::split::AnonSteps {
                    fingerprint: &v.fingerprint,
                    view_id: v.view_id,
                    new_session: &new_session,
                    time: &now,
                    url: &c.url,
                    view: &view,
                    count: (!d.is_bot).then_some(crate::split::Count {
                        page: &page,
                        other: &other,
                        path: &c.path,
                        page_type: &c.page_type,
                        visitor: &visitor,
                        kind: "anonymous",
                    }),
                    community: v
                        .community_id
                        .map(|id| (keys::community_keys(&id), community_visit.clone())),
                    finalize_job: &finalize,
                    persist_job: &persist,
                },
            )
            .await?;
            return tracked_anonymous(
                out.session_id,
                out.pages,
                out.new_session,
                out.persisted,
                d.is_bot,
            );
        }
        let args = ViewArgs {
            new_session,
            time: now,
            url: c.url,
            is_bot: if d.is_bot { "1" } else { "0" }.to_owned(),
            view,
            path: c.path,
            page_type: c.page_type,
            visitor,
            finalize_job: finalize,
            persist_job: persist,
            community_visit,
        }
        .into_args();
        let out = self
            .batch
            .track(AnonView {
                keys: batch_keys,
                args,
            })
            .await?;
        tracked_anonymous(
            out.session_id,
            out.pages,
            out.new_session,
            out.persisted,
            d.is_bot,
        )
    }

    async fn track_authenticated(
        &self,
        v: &PageView,
        c: &Checked,
        user_id: Uuid,
        hashed_id: &str,
    ) -> Result<Tracked, TrackError> {
        let d = device(&c.user_agent);
        let visitor = keys::user_visitor(&user_id);
        let day = c.at.date_naive();
        let page = keys::pageview_keys(day, &c.path);
        let other = keys::pageview_keys(day, domain::keys::OVERFLOW_PATH);
        let now = c.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        // The script counts the view only where it will be answered as tracked: with the live
        // document, or (second call) once the database has confirmed the session.
        // On a cluster the script keeps to the session document (its one slot), as for a bot,
        // and the view is counted in steps after it (crate::split).
        let cluster = keys::layout() == keys::Layout::Cluster;
        let session_key = keys::session_key(hashed_id);
        let footprint = keys::footprint(&visitor);
        let script_keys: [&str; 9] = if cluster {
            [session_key.as_str(); 9]
        } else {
            [
                &session_key,
                &page.paths,
                &page.counters,
                &page.visitors,
                &page.sketch,
                &footprint,
                &other.counters,
                &other.visitors,
                &other.sketch,
            ]
        };
        let split_count = crate::split::Count {
            page: &page,
            other: &other,
            path: &c.path,
            page_type: &c.page_type,
            visitor: &visitor,
            kind: "authenticated",
        };
        let count_after = async |tracked: bool| -> Result<(), TrackError> {
            if cluster && tracked && !d.is_bot {
                let places = crate::split::places(Some(&split_count), None);
                crate::split::note_footprint(self, &visitor, &places).await?;
                crate::split::count(self, &split_count).await?;
            }
            Ok(())
        };
        let auth_view = |count_without_doc: bool| {
            let mut inv = scripts::AUTH.prepare_invoke();
            for k in script_keys {
                inv.key(k);
            }
            inv.arg(&now)
                .arg(&c.path)
                .arg(&c.page_type)
                .arg(&visitor)
                .arg(self.config.counters_ttl.as_secs())
                .arg(if d.is_bot || cluster { "1" } else { "0" })
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
            .execute_raw(domain::sql::statement(
                backend,
                "UPDATE accounts_usersession SET pages_visited = pages_visited + 1, last_activity = $1 \
                 WHERE session_id = $2 AND user_id = $3",
                vec![c.at.into(), hashed_id.into(), user_id.into()],
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
        count_after(true).await?;
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
