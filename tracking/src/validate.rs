//! The tracking error type and input checks that name the offending field.

use chrono::{DateTime, Utc};
use domain::args::ArgError;
use domain::keys::Fingerprint;

/// What can go wrong in a tracking call.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// Input that does not validate (422, naming the field).
    #[error("{0}")]
    Invalid(#[from] ArgError),
    /// The thing addressed does not exist (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The write conflicts with another record (409, naming the field).
    #[error("conflict: {0}")]
    Conflict(ArgError),
    /// Redis failed (503).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// A follow-up job could not be enqueued.
    #[error(transparent)]
    Enqueue(#[from] domain::queues::EnqueueError),
}

impl From<domain::schema::SchemaError> for TrackError {
    fn from(e: domain::schema::SchemaError) -> Self {
        match e {
            domain::schema::SchemaError::Db(e) => Self::Db(e),
            other => Self::Db(sea_orm::DbErr::Custom(other.to_string())),
        }
    }
}

/// An invalid-input error.
pub fn invalid(field: &str, message: impl Into<String>) -> TrackError {
    TrackError::Invalid(ArgError::new(field, message))
}

/// A device fingerprint ([`Fingerprint`]: the jobs' own type, so a fingerprint the API accepts is
/// one its jobs accept).
pub fn fingerprint(field: &str, fp: &str) -> Result<Fingerprint, TrackError> {
    Fingerprint::parse(fp).map_err(|e| invalid(field, e.to_string()))
}

/// A page address: a path (`/communities/montreal/?tab=events`) or an absolute http(s) URL.
/// Returns the path alone (no query, no fragment), which is what analytics group by.
pub fn url_path(field: &str, url: &str) -> Result<String, TrackError> {
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            field,
            "must be at most 2048 characters without spaces",
        ));
    }
    let rest = if url.starts_with('/') && !url.starts_with("//") {
        url
    } else if let Some(after) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    {
        let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        if host_end == 0 {
            return Err(invalid(field, "absolute URL has no host"));
        }
        match &after[host_end..] {
            "" => "/",
            p if p.starts_with('/') => p,
            _ => "/",
        }
    } else {
        return Err(invalid(
            field,
            "must be a path starting with / or an absolute http(s) URL",
        ));
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    // `https://site//evil.example/x` must not become the protocol-relative `//evil.example/x`
    // (a link to another host wherever the path is rendered): leading slashes collapse to one.
    Ok(format!("/{}", rest[..end].trim_start_matches('/')))
}

/// An optional referrer: empty, or an absolute http(s) URL or path.
pub fn referrer(field: &str, r: &str) -> Result<(), TrackError> {
    if r.is_empty() {
        return Ok(());
    }
    url_path(field, r).map(|_| ())
}

/// An optional IP address (v4 or v6).
pub fn ip(field: &str, ip: Option<&str>) -> Result<Option<String>, TrackError> {
    match ip.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<std::net::IpAddr>()
            .map(|a| Some(a.to_string()))
            .map_err(|_| invalid(field, "is not an IP address")),
    }
}

/// An optional client time: at most `max_past` old and `max_skew` ahead of this server's clock.
pub fn timestamp(
    field: &str,
    at: Option<DateTime<Utc>>,
    max_past: std::time::Duration,
    max_skew: std::time::Duration,
) -> Result<DateTime<Utc>, TrackError> {
    let now = Utc::now();
    let span = |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or_default();
    match at {
        None => Ok(now),
        Some(t) if t > now + span(max_skew) => Err(invalid(
            field,
            format!(
                "is in the future (more than {} s ahead)",
                max_skew.as_secs()
            ),
        )),
        Some(t) if t < now - span(max_past) => Err(invalid(
            field,
            format!("is too old (more than {} s ago)", max_past.as_secs()),
        )),
        Some(t) => Ok(t),
    }
}

/// Optional free text bound for a text column: refused when it holds a NUL character (PostgreSQL
/// cannot store one, so it would fail the write, or a later job's), else clipped to `max` bytes.
pub fn text(field: &str, s: Option<&str>, max: usize) -> Result<String, TrackError> {
    let s = s.unwrap_or_default();
    if s.contains('\0') {
        return Err(invalid(field, "must not contain NUL (\\u0000) characters"));
    }
    Ok(clip(s, max))
}

/// A JSON value bound for a `jsonb` column: refused when a key or string holds a NUL character
/// (`jsonb` cannot store `\u0000`).
pub fn json_text(field: &str, v: &serde_json::Value) -> Result<(), TrackError> {
    use serde_json::Value;
    let bad = || invalid(field, "must not contain NUL (\\u0000) characters");
    match v {
        Value::String(s) if s.contains('\0') => Err(bad()),
        Value::Array(items) => items.iter().try_for_each(|i| json_text(field, i)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if k.contains('\0') {
                return Err(bad());
            }
            json_text(field, v)
        }),
        _ => Ok(()),
    }
}

/// Shorten free text to `max` bytes on a character boundary.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_paths_and_bad_ones_name_the_field() {
        assert_eq!(
            url_path("url", "/c/montreal/?tab=1#x").unwrap(),
            "/c/montreal/"
        );
        assert_eq!(
            url_path("url", "https://example.org/a/b?q").unwrap(),
            "/a/b"
        );
        assert_eq!(url_path("url", "http://example.org").unwrap(), "/");
        assert_eq!(
            url_path("url", "https://example.org//evil.example/x").unwrap(),
            "/evil.example/x"
        );
        for bad in [
            "",
            "ftp://x/y",
            "javascript:alert(1)",
            "//evil",
            "/a b",
            "example.org/x",
        ] {
            let e = url_path("url", bad).unwrap_err();
            assert!(
                matches!(e, TrackError::Invalid(ref a) if a.field == "url"),
                "{bad}"
            );
        }
        assert!(ip("ip", Some("203.0.113.45")).unwrap().is_some());
        assert_eq!(text("user_agent", Some("Mozilla"), 3).unwrap(), "Moz");
        assert_eq!(text("user_agent", None, 3).unwrap(), "");
        assert!(text("user_agent", Some("a\0b"), 10).is_err());
        assert!(json_text("metadata", &serde_json::json!({"a": [1, "x"]})).is_ok());
        assert!(json_text("metadata", &serde_json::json!({"a": ["\0"]})).is_err());
        assert!(json_text("metadata", &serde_json::json!({"\0": 1})).is_err());
        assert!(ip("ip", Some("nope")).is_err());
        let future = Utc::now() + chrono::Duration::hours(1);
        let (day, skew) = (
            std::time::Duration::from_secs(86_400),
            std::time::Duration::from_secs(120),
        );
        assert!(timestamp("timestamp", Some(future), day, skew).is_err());
        let old = Utc::now() - chrono::Duration::hours(25);
        assert!(timestamp("timestamp", Some(old), day, skew).is_err());
        let recent = Utc::now() - chrono::Duration::hours(23);
        assert_eq!(
            timestamp("timestamp", Some(recent), day, skew).unwrap(),
            recent
        );
    }
}
