//! Real-time community visitors: who is viewing a community now, counted per visitor over the
//! last 5 minutes; a `community_visit` event for authenticated visitors only (privacy).

use chrono::{DateTime, Utc};
use entity::{community, user_event, user_profile};
use sea_orm::{ActiveModelTrait, EntityTrait, QuerySelect, Set};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::validate::TrackError;
use crate::view::PageView;
use crate::{Tracker, scripts};
use domain::keys;

/// The seed's stats shape.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct VisitorStats {
    /// Visitors seen in the last 5 minutes.
    pub total_visitors: u64,
    /// Of which signed in.
    pub authenticated_visitors: u64,
    /// Of which anonymous.
    pub anonymous_visitors: u64,
    /// Share signed in, 0–100 (0 when nobody is there).
    pub authenticated_percentage: f64,
    /// Share anonymous, 0–100.
    pub anonymous_percentage: f64,
}

/// The seed's visitor entry in `community:{id}:visitors`, without `pages_viewed` (the script
/// counts it).
pub(crate) fn visitor_doc(
    user_id: Option<Uuid>,
    fingerprint: &str,
    division: Option<Uuid>,
    at: DateTime<Utc>,
) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        user_id: Option<Uuid>,
        device_fingerprint: &'a str,
        is_authenticated: bool,
        division_id: Option<Uuid>,
        last_seen: String,
    }
    // Serializing these fields cannot fail.
    serde_json::to_string(&Doc {
        user_id,
        device_fingerprint: fingerprint,
        is_authenticated: user_id.is_some(),
        division_id: division,
        last_seen: at.to_rfc3339(),
    })
    .unwrap_or_default()
}

/// One visit to the community whose keys are `k` (the script `community.lua`); with `footprint`,
/// the visitor's footprint in the same run (one server only: on a cluster it is another slot).
pub(crate) async fn visit_keys(
    t: &Tracker,
    k: &keys::CommunityKeys,
    footprint: Option<&str>,
    visitor: &str,
    doc: &str,
    authenticated: bool,
) -> Result<i64, TrackError> {
    let mut inv = scripts::COMMUNITY.prepare_invoke();
    inv.key(&k.visitors)
        .key(&k.authenticated)
        .key(&k.anonymous)
        .key(&k.seen)
        .key(&k.seen_authenticated);
    if let Some(f) = footprint {
        inv.key(f);
    }
    inv.arg(visitor)
        .arg(doc)
        .arg(Utc::now().timestamp_millis())
        .arg(t.config.visitor_window.as_secs())
        .arg(if authenticated { "1" } else { "0" })
        .arg(t.config.counters_ttl.as_secs());
    Ok(inv.invoke_async(&mut t.redis.clone()).await?)
}

/// Record a visit to community `id` by a signed-in visitor (an anonymous visitor's is part of
/// its page view's batched script run).
pub(crate) async fn visit(
    t: &Tracker,
    id: Uuid,
    v: &PageView,
    url: &str,
    referrer: &str,
) -> Result<(), TrackError> {
    let authenticated = v.user_id.is_some();
    let visitor = match &v.user_id {
        Some(u) => keys::user_visitor(u),
        None => keys::anon_visitor(&v.fingerprint),
    };
    // Only the division: a Django profile has the seed's columns, not the standalone table's.
    let division: Option<Uuid> = match v.user_id {
        Some(u) => user_profile::Entity::find_by_id(u)
            .select_only()
            .column(user_profile::Column::DivisionId)
            .into_tuple::<Option<Uuid>>()
            .one(&t.db)
            .await?
            .flatten(),
        None => None,
    };
    let now = Utc::now();
    let k = keys::community_keys(&id);
    let doc = visitor_doc(v.user_id, v.fingerprint.as_str(), division, now);
    if keys::layout() == keys::Layout::Cluster {
        // The footprint is another slot: recorded first (crate::split).
        crate::split::note_footprint(t, &visitor, &[k.visitors.as_str()]).await?;
        visit_keys(t, &k, None, &visitor, &doc, authenticated).await?;
    } else {
        let footprint = keys::footprint(&visitor);
        visit_keys(t, &k, Some(&footprint), &visitor, &doc, authenticated).await?;
    }
    let Some(user_id) = v.user_id else {
        return Ok(());
    };
    let c = community::Entity::find_by_id(id).one(&t.db).await?;
    let community_division = c.as_ref().and_then(|c| c.division_id);
    user_event::ActiveModel {
        user_id: Set(user_id),
        event_type: Set("community_visit".into()),
        description: Set(format!(
            "Visited community {}",
            c.as_ref().map(|c| c.slug.as_str()).unwrap_or("(unknown)")
        )),
        metadata: Set(serde_json::json!({
            "community_id": id,
            "community_slug": c.as_ref().map(|c| c.slug.clone()),
            "visitor_division_id": division,
            "community_division_id": community_division,
            "is_cross_division": matches!((division, community_division), (Some(a), Some(b)) if a != b),
            "is_authenticated": true,
            "device_fingerprint": v.fingerprint,
            "url": url,
            "referrer": referrer,
        })),
        ip_address: Set(crate::validate::ip("ip", v.ip.as_deref())?),
        user_agent: Set(crate::validate::clip(v.user_agent.as_deref().unwrap_or_default(), 1024)),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&t.db)
    .await?;
    Ok(())
}

impl Tracker {
    /// Visitors of community `id` seen in the last 5 minutes, each on its own clock.
    pub async fn community_visitors(&self, id: Uuid) -> Result<VisitorStats, TrackError> {
        let k = keys::community_keys(&id);
        let (auth, anon): (u64, u64) = scripts::COMMUNITY_STATS
            .key(k.seen)
            .key(k.seen_authenticated)
            .arg(Utc::now().timestamp_millis())
            .arg(self.config.visitor_window.as_secs())
            .invoke_async(&mut self.redis.clone())
            .await?;
        let total = auth + anon;
        let pct = |n: u64| {
            if total == 0 {
                0.0
            } else {
                (n as f64 * 1000.0 / total as f64).round() / 10.0
            }
        };
        Ok(VisitorStats {
            total_visitors: total,
            authenticated_visitors: auth,
            anonymous_visitors: anon,
            authenticated_percentage: pct(auth),
            anonymous_percentage: pct(anon),
        })
    }
}
