//! Hot data in Redis (SPEC §3): key names and the documents the API writes and the jobs read.
//!
//! Every key that carries a client value is built here, and no client value can make two
//! different logical keys one Redis key: a fingerprint is a [`Fingerprint`] (a character set
//! without `:`), a page path is escaped by [`key_part`] (`%` and `:` percent-encoded), ids are
//! UUIDs or hashes. `keys_are_distinct` (a property test below) and the `keys` fuzz target check it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// A visitor's device fingerprint as the web tier computes it (a hash): 1 to 128 characters of
/// ASCII letters, digits and `-_.~+/=` (hex, base64 and base64url digests, UUIDs). Checked once
/// where it enters (request body, path or job payload), so a key built from it cannot reach
/// another key: it has no `:`, `{`, `}`, space or control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

/// Why a fingerprint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a fingerprint must be 1 to 128 characters of A-Z, a-z, 0-9 and -_.~+/=")]
pub struct BadFingerprint;

impl Fingerprint {
    /// The longest fingerprint accepted, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Check `s` against the fingerprint character set.
    pub fn parse(s: &str) -> Result<Self, BadFingerprint> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadFingerprint)
        }
    }

    /// The fingerprint as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = BadFingerprint;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s).map(|_| Self(s))
    }
}

impl From<Fingerprint> for String {
    fn from(f: Fingerprint) -> Self {
        f.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Fingerprint {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A client string made safe to stand between `:` separators of a key: `%` becomes `%25` and
/// `:` becomes `%3A`, nothing else changes (so a path without either reads as itself). The
/// escaping is injective: two different strings never give the same part.
pub fn key_part(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['%', ':']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `anon_session:{fingerprint}`.
pub fn anon_session_key(fingerprint: &Fingerprint) -> String {
    format!("anon_session:{fingerprint}")
}

/// `anon_session:{fingerprint}:views`: views not yet written to the database.
pub fn anon_views_key(fingerprint: &Fingerprint) -> String {
    format!("anon_session:{fingerprint}:views")
}

/// `erased:anon:{sha256 of the fingerprint}`: when the visitor was last erased (Redis ms); a job
/// that read the visitor's data before then undoes what it wrote (see `tracking::erase`). Keyed
/// by a hash so that the mark itself keeps nothing of the visitor.
pub fn anon_erased_key(fingerprint: &Fingerprint) -> String {
    use sha2::Digest;
    format!(
        "erased:anon:{}",
        hex::encode(sha2::Sha256::digest(fingerprint.as_str().as_bytes()))
    )
}

/// `anon_sessions:open`: fingerprint → Redis ms its latest session started. The idle sweep reads
/// it to finalize sessions whose finalize job was lost, persisted or not.
pub const ANON_OPEN_KEY: &str = "anon_sessions:open";

/// `pageviews:{date}:paths`: the paths viewed that UTC day.
pub fn pageview_paths_key(day: chrono::NaiveDate) -> String {
    format!("pageviews:{day}:paths")
}

/// `pageviews:{date}:{path}`: the day's counters of one path (the path escaped by [`key_part`]).
pub fn pageview_counters_key(day: chrono::NaiveDate, path: &str) -> String {
    format!("pageviews:{day}:{}", key_part(path))
}

/// `pageviews:{date}:{path}:visitors`: the day's unique visitors of one path.
pub fn pageview_visitors_key(day: chrono::NaiveDate, path: &str) -> String {
    format!("pageviews:{day}:{}:visitors", key_part(path))
}

/// `pageviews:{date}:{path}:sketch`: a HyperLogLog of the path's unique visitors past the exact
/// set's cap (`PAGEVIEW_MAX_EXACT_VISITORS`); it keeps no identity.
pub fn pageview_sketch_key(day: chrono::NaiveDate, path: &str) -> String {
    format!("pageviews:{day}:{}:sketch", key_part(path))
}

/// The path under which views past the day's distinct-path cap are counted (it cannot be a
/// tracked path: those start with `/`).
pub const OVERFLOW_PATH: &str = "(other)";

/// One buffered anonymous page view (an element of the views list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BufferedView {
    /// The session it belongs to.
    pub session_id: Uuid,
    /// The page (as sent, path or URL).
    pub url: String,
    /// Django URL name, if sent.
    #[serde(default)]
    pub url_name: String,
    /// Page type, if sent.
    #[serde(default)]
    pub page_type: String,
    /// When.
    #[serde(deserialize_with = "timestamp")]
    pub viewed_at: DateTime<Utc>,
    /// Referrer, if any.
    #[serde(default)]
    pub referrer: String,
    /// The view's place in its session (1 for the first view): with the session id, what makes
    /// a view's row unique, so two views in the same instant are two rows. Absent in views
    /// buffered by older builds.
    #[serde(default, rename = "n", skip_serializing_if = "Option::is_none")]
    pub view_number: Option<i32>,
    /// On the view that started the session: the session's first document, so the session's
    /// row can be written from the buffer alone when its live document is gone (a late finalize).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Box<AnonSessionDoc>>,
}

/// `session:{session_id}`.
pub fn session_key(session_id: &str) -> String {
    format!("session:{session_id}")
}

/// The stored form of a session id (`accounts_usersession.session_id`): hex SHA-256, so the
/// database never holds a usable session token.
pub fn hash_session_id(session_id: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(session_id.as_bytes()))
}

/// An anonymous visitor's live session (the seed's fields, plus what the middleware knew of the
/// device so persisting it needs no second source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnonSessionDoc {
    /// The session's id; the database row's primary key.
    pub session_id: Uuid,
    /// The visitor's device fingerprint.
    pub device_fingerprint: String,
    /// First view.
    #[serde(deserialize_with = "timestamp")]
    pub started_at: DateTime<Utc>,
    /// Latest view.
    #[serde(deserialize_with = "timestamp")]
    pub last_activity: DateTime<Utc>,
    /// Views so far.
    #[serde(default)]
    pub pages_visited: i32,
    /// The page viewed last.
    #[serde(default)]
    pub current_page: String,
    /// The first page.
    #[serde(default)]
    pub landing_page: String,
    /// Referrer of the first page.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub referrer: String,
    /// Always true while the key lives.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Client address, when the web tier sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// Raw user agent.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub user_agent: String,
    /// Device class from the user agent.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub device_type: String,
    /// Browser family.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub browser: String,
    /// Operating system family.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub os: String,
    /// Whether the user agent is a known crawler.
    #[serde(default)]
    pub is_bot: bool,
}

fn yes() -> bool {
    true
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// RFC 3339 text (Django's `isoformat()`, with or without offset) or epoch seconds.
fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ts {
        Text(String),
        Secs(f64),
    }
    match Ts::deserialize(d)? {
        Ts::Secs(s) => DateTime::from_timestamp_millis((s * 1000.0) as i64)
            .ok_or_else(|| serde::de::Error::custom("timestamp out of range")),
        Ts::Text(t) => {
            parse_time(&t).ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {t:?}")))
        }
    }
}

/// Parse RFC 3339, or a naive ISO time taken as UTC.
pub fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_documents_decode() {
        let doc: AnonSessionDoc = serde_json::from_str(
            r#"{"session_id":"6f1c2b1e-1f6e-4b7e-9a55-0f5e3a1c2d3e","device_fingerprint":"a1b2",
                "started_at":"2025-10-10T14:00:00Z","last_activity":1760105700,"pages_visited":8,
                "current_page":"/c/","landing_page":"/search?q=events","referrer":null,"is_active":true}"#,
        )
        .unwrap();
        assert_eq!(doc.pages_visited, 8);
        assert_eq!(doc.referrer, "");
        assert_eq!(doc.last_activity.timestamp(), 1760105700);
        assert!(parse_time("2025-10-10T14:00:00.123456").is_some());
    }
}
