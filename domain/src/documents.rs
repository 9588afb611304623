//! The hot-data session documents (SPEC §3), each defined here once: the anonymous session
//! (`anon_session:{fp}`, [`AnonSessionDoc`]) and a buffered view (an element of its `:views` list,
//! [`BufferedView`]) as the jobs read them, a signed-in session (`session:{id}`,
//! [`AuthSessionDoc`]), and the parts the web tier writes ([`NewSessionDoc`],
//! [`NewView`]: borrowed, so a page view copies nothing) to which `tracking/lua/views.lua` adds
//! what only it knows (the session id of a view, the view's number, the activity fields). The
//! tests below check that what is written, with the script's additions, reads back whole.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

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
    /// The producer's id for the view, which the page's beacon names ([`crate::keys::beacon_key`]).
    #[serde(default, rename = "v", skip_serializing_if = "Option::is_none")]
    pub view_id: Option<Uuid>,
}

/// What a page's beacon reported of one view: how far down it was scrolled and how long it was
/// visible. Kept in Redis as `"{scroll} {seconds}"` under [`crate::keys::beacon_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beacon {
    /// Deepest point seen, in percent of the page's height (0 to 100).
    pub scroll_depth_percent: i16,
    /// Seconds the page was visible (at most a day).
    pub seconds: i32,
}

impl Beacon {
    /// The most seconds a beacon may report.
    pub const MAX_SECONDS: i32 = 86_400;

    /// The Redis value.
    pub fn to_redis(self) -> String {
        format!("{} {}", self.scroll_depth_percent, self.seconds)
    }

    /// Read a Redis value; anything else than two numbers in range is none.
    pub fn from_redis(s: &str) -> Option<Self> {
        let (a, b) = s.split_once(' ')?;
        let scroll: i16 = a.parse().ok()?;
        let seconds: i32 = b.parse().ok()?;
        ((0..=100).contains(&scroll) && (0..=Self::MAX_SECONDS).contains(&seconds)).then_some(
            Self {
                scroll_depth_percent: scroll,
                seconds,
            },
        )
    }
}

/// What the web tier writes of a buffered view; `views.lua` puts `session_id` and `n` (the view's
/// number) in front, and on a session's first view its first document (`session`).
#[derive(Debug, Serialize)]
pub struct NewView<'a> {
    /// [`BufferedView::url`].
    pub url: &'a str,
    /// [`BufferedView::url_name`].
    pub url_name: &'a str,
    /// [`BufferedView::page_type`].
    pub page_type: &'a str,
    /// [`BufferedView::viewed_at`], RFC 3339.
    pub viewed_at: &'a str,
    /// [`BufferedView::referrer`].
    pub referrer: &'a str,
    /// [`BufferedView::view_id`].
    #[serde(rename = "v", skip_serializing_if = "Option::is_none")]
    pub view_id: Option<Uuid>,
}

/// What the web tier writes of a session that a view starts (the seed's fields); `views.lua`
/// sets `pages_visited`, `last_activity` and `current_page` from the view.
#[derive(Debug, Serialize)]
pub struct NewSessionDoc<'a> {
    /// [`AnonSessionDoc::session_id`].
    pub session_id: Uuid,
    /// [`AnonSessionDoc::device_fingerprint`].
    pub device_fingerprint: &'a str,
    /// [`AnonSessionDoc::started_at`], RFC 3339.
    pub started_at: &'a str,
    /// 0: the script counts the view.
    pub pages_visited: i64,
    /// [`AnonSessionDoc::landing_page`].
    pub landing_page: &'a str,
    /// [`AnonSessionDoc::referrer`].
    pub referrer: &'a str,
    /// Always true.
    pub is_active: bool,
    /// [`AnonSessionDoc::user_agent`].
    pub user_agent: &'a str,
    /// [`AnonSessionDoc::device_type`].
    pub device_type: &'a str,
    /// [`AnonSessionDoc::browser`].
    pub browser: &'a str,
    /// [`AnonSessionDoc::os`].
    pub os: &'a str,
    /// [`AnonSessionDoc::is_bot`].
    pub is_bot: bool,
    /// [`AnonSessionDoc::ip_address`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<&'a str>,
}

/// `session:{hashed_id}`: a signed-in user's live session with the seed's fields, written at
/// login; `tracking/lua/auth.lua` bumps `pages_visited` and `last_activity` on each view. Times
/// are RFC 3339 text.
#[derive(Debug, Serialize)]
pub struct AuthSessionDoc<'a> {
    /// The session's hashed id ([`crate::keys::hashed_session_id`]), as in the key.
    pub session_id: &'a str,
    /// The user.
    pub user_id: Uuid,
    /// The user's name, when the web tier sent it.
    pub user_username: Option<&'a str>,
    /// Client address, if known.
    pub ip_address: Option<&'a str>,
    /// Raw user agent.
    pub user_agent: &'a str,
    /// Device fingerprint ('' when none was sent).
    pub device_fingerprint: &'a str,
    /// The fast fingerprint (the same value: the web tier sends one).
    pub fast_fingerprint: &'a str,
    /// A persistent ("remember me") session.
    pub persistent: bool,
    /// Always true while the key lives.
    pub is_active: bool,
    /// Views so far (0 at login).
    pub pages_visited: i64,
    /// Login time.
    pub started_at: &'a str,
    /// Latest activity.
    pub last_activity: &'a str,
    /// When the session expires.
    pub expires_at: &'a str,
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

    /// What the web tier writes, with what `views.lua` adds, reads back as the jobs' types with
    /// every field: a field renamed or dropped on one side fails here.
    #[test]
    fn written_documents_read_back_whole() {
        let id = Uuid::new_v4();
        let new = NewSessionDoc {
            session_id: id,
            device_fingerprint: "fp1",
            started_at: "2026-12-02T10:00:00.000001Z",
            pages_visited: 0,
            landing_page: "/a",
            referrer: "/r",
            is_active: true,
            user_agent: "ua",
            device_type: "mobile",
            browser: "b",
            os: "o",
            is_bot: true,
            ip_address: Some("192.0.2.1"),
        };
        // As the script does: count the view, stamp its activity.
        let mut doc = serde_json::to_value(&new).unwrap();
        doc["pages_visited"] = 1.into();
        doc["last_activity"] = "2026-12-02T10:00:05Z".into();
        doc["current_page"] = "/b".into();
        let read: AnonSessionDoc = serde_json::from_value(doc.clone()).unwrap();
        let at = |t: &str| parse_time(t).unwrap();
        assert_eq!(
            read,
            AnonSessionDoc {
                session_id: id,
                device_fingerprint: "fp1".into(),
                started_at: at("2026-12-02T10:00:00.000001Z"),
                last_activity: at("2026-12-02T10:00:05Z"),
                pages_visited: 1,
                current_page: "/b".into(),
                landing_page: "/a".into(),
                referrer: "/r".into(),
                is_active: true,
                ip_address: Some("192.0.2.1".into()),
                user_agent: "ua".into(),
                device_type: "mobile".into(),
                browser: "b".into(),
                os: "o".into(),
                is_bot: true,
            }
        );
        let view_id = Uuid::from_u128(7);
        let view = NewView {
            url: "/b?x=1",
            url_name: "b",
            page_type: "event",
            viewed_at: "2026-12-02T10:00:05Z",
            referrer: "/a",
            view_id: Some(view_id),
        };
        // As the script does: the session id, the view's number and the first document in front.
        let text = serde_json::to_string(&view).unwrap();
        let buffered = format!(
            r#"{{"session_id":"{id}","n":1,"session":{doc},{}"#,
            &text[1..]
        );
        let read: BufferedView = serde_json::from_str(&buffered).unwrap();
        assert_eq!(
            read,
            BufferedView {
                session_id: id,
                url: "/b?x=1".into(),
                url_name: "b".into(),
                page_type: "event".into(),
                viewed_at: at("2026-12-02T10:00:05Z"),
                referrer: "/a".into(),
                view_number: Some(1),
                session: Some(Box::new(AnonSessionDoc {
                    current_page: "/b".into(),
                    ..serde_json::from_value(doc).unwrap()
                })),
                view_id: Some(view_id),
            }
        );
    }
}
