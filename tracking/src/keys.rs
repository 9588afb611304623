//! Hot-data key names (SPEC §3 names, and the extra keys this crate adds, documented here).
//!
//! | key | type | holds | TTL |
//! |---|---|---|---|
//! | `anon_session:{fingerprint}` | STRING (JSON) | the live anonymous session | session timeout, renewed |
//! | `anon_session:{fingerprint}:views` | LIST (JSON) | views not yet written to `analytics_anonymouspageview` | 2 × timeout |
//! | `session:{session_id}` | STRING (JSON) | the live authenticated session | 4 h / 30 d |
//! | `community:{id}:visitors` | HASH | visitor key → visitor JSON | 5 min |
//! | `community:{id}:visitors:authenticated` / `:anonymous` | SET | visitor keys | 5 min |
//! | `community:{id}:visitors:seen` | ZSET | visitor key → last view (ms): each visitor's own 5-min clock | 5 min |
//! | `community:{id}:visitors:seen:authenticated` | ZSET | the same, signed-in visitors only (stats count both with ZCOUNT) | 5 min |
//! | `pageviews:{date}:paths` | SET | paths viewed that UTC day | 4 d from the last path added (a day past what it lists) |
//! | `pageviews:{date}:{path}` | HASH | `anonymous`, `authenticated` (views of each kind; their sum is the total), `page_type` | 3 d from its first view |
//! | `pageviews:{date}:{path}:visitors` | SET | visitor keys (unique visitors) | 3 d from the last visitor added |
//! | `visitor:{visitor key}:footprint` | SET | where this visitor is (for erasure): community visitor hashes; for an anonymous visitor the day path sets it viewed paths in (once per session and day), for a user the visitor sets | 4 d (a day past what it lists), renewed when it gains a key |
//!
//! Visitor keys are `anon:{fingerprint}` or `user:{user_id}`.

use chrono::NaiveDate;

pub use worker::hot::{anon_session_key, session_key};

/// `anon_session:{fingerprint}:views`.
pub fn anon_views_key(fingerprint: &str) -> String {
    worker::hot::anon_views_key(fingerprint)
}

/// The visitor key of an anonymous visitor.
pub fn anon_visitor(fingerprint: &str) -> String {
    format!("anon:{fingerprint}")
}

/// The visitor key of a user.
pub fn user_visitor(user_id: &uuid::Uuid) -> String {
    format!("user:{user_id}")
}

/// `visitor:{key}:footprint`.
pub fn footprint(visitor: &str) -> String {
    format!("visitor:{visitor}:footprint")
}

/// The day's analytics keys for `path`: (paths, counters, visitors).
pub fn pageview_keys(day: NaiveDate, path: &str) -> (String, String, String) {
    (
        worker::hot::pageview_paths_key(day),
        worker::hot::pageview_counters_key(day, path),
        worker::hot::pageview_visitors_key(day, path),
    )
}

/// A community's visitor keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommunityKeys {
    /// `community:{id}:visitors` (HASH).
    pub visitors: String,
    /// `…:authenticated` (SET).
    pub authenticated: String,
    /// `…:anonymous` (SET).
    pub anonymous: String,
    /// `…:seen` (ZSET, every visitor).
    pub seen: String,
    /// `…:seen:authenticated` (ZSET, signed-in visitors).
    pub seen_authenticated: String,
}

/// The community's keys.
pub fn community_keys(id: &uuid::Uuid) -> CommunityKeys {
    let base = format!("community:{id}:visitors");
    CommunityKeys {
        authenticated: format!("{base}:authenticated"),
        anonymous: format!("{base}:anonymous"),
        seen: format!("{base}:seen"),
        seen_authenticated: format!("{base}:seen:authenticated"),
        visitors: base,
    }
}
