//! A page view as the web tier reports it (the body of `POST /v1/track/pageview`).

use chrono::{DateTime, Utc};
use domain::keys::Fingerprint;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

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
    /// An id the producer chose for this view (a random UUID), which the page's beacon
    /// (`POST /v1/beacon`) names to add scroll depth and time on page to it. Anonymous views only.
    #[serde(default)]
    pub view_id: Option<Uuid>,
}
