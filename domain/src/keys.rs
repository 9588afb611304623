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
//! | `beacon:{view_id}` | STRING | `"{scroll} {seconds}"` a page's beacon reported for an anonymous view (the id a parsed UUID), until the view's row is written | 1 day |
//! | `erasing:anon:{sha256(fingerprint)}` | STRING (JSON) | what a running erasure took (document, buffered views), so a repeated run finds the sessions again | 1 h, deleted when the erasure ends |
//! | `anon_view:{fingerprint}:{view id}` | STRING | cluster layout only: a view's answer (`<session> <pages> <flags>`), so the view sent again is not recorded twice | 10 min |
//! | `erased:anon:{sha256(fingerprint)}` | STRING | Redis ms of the visitor's last erasure (jobs that read before it undo their writes) | 1 day |
//! | `anon_sessions:open` | ZSET | fingerprint → Redis ms its latest session started (the idle sweep's work list) | none: the sweep removes a fingerprint once it has no session and no buffered view |
//! | `pageviews:{date}:paths` | SET | paths viewed that UTC day (at most `PAGEVIEW_MAX_PATHS_PER_DAY`; later new paths count as `(other)`) | 4 d from the last path added (a day past what it lists) |
//! | `pageviews:{date}:{path}` | HASH | `anonymous`, `authenticated` (views of each kind; their sum is the total), `page_type` | 3 d from its first view |
//! | `pageviews:{date}:{path}:visitors` | SET | visitor keys (unique visitors), at most `PAGEVIEW_MAX_EXACT_VISITORS` | 3 d from the path's first view |
//! | `pageviews:{date}:{path}:sketch` | STRING (HyperLogLog) | unique visitors past the exact set's cap (no identity kept; ≤ 12 KB) | 3 d from its first visitor |
//! | `visitor:{visitor key}:footprint` | SET | where this visitor is (for erasure): community visitor hashes and the day visitor sets it joined | 4 d (a day past what it lists), renewed when it gains a key |
//!
//! Visitor keys are the seed's `anon_{fingerprint}` or `user_{user_id}` (the seed cuts the
//! fingerprint to 12 characters; nothing is cut here, so two visitors never share a field). `{path}` is the page path with `%`
//! and `:` percent-encoded ([`key_part`]); a fingerprint has no `:` (its type,
//! [`Fingerprint`], checks that), so no client value can turn one key into another.
//!
//! Every key that carries a client value is built here, and no client value can make two
//! different logical keys one Redis key: a fingerprint is a [`Fingerprint`] (a character set
//! without `:`), a page path is escaped by [`key_part`] (`%` and `:` percent-encoded), ids are
//! UUIDs or hashes. `keys_are_distinct` (a property test below) and the `keys` fuzz target check it.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

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

/// Which key names this process uses: [`Layout::Single`], the names above (SPEC §3, what a
/// Django reader expects), or [`Layout::Cluster`], the same names behind a hash tag that puts the
/// keys one atomic step touches into one slot (`docs/redis-cluster.md` gives each tag's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One Redis server: the names as the table above gives them.
    Single,
    /// A Redis Cluster: each name prefixed with its slot's tag (`{vNN}` visitor shard, `{d<date>}`
    /// day, `{c<id>}` community, `{<namespace>}` the fleet's own bookkeeping).
    Cluster,
}

static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();

/// Fix this process's layout (`domain::conn::connect` does, on finding a cluster). The first call
/// wins: a layout never changes under running code.
pub fn use_layout(layout: Layout) {
    let _ = LAYOUT.set(layout);
}

/// This process's layout ([`Layout::Single`] unless [`use_layout`] said otherwise).
pub fn layout() -> Layout {
    LAYOUT.get().copied().unwrap_or(Layout::Single)
}

/// `key` behind the tag `tag()` makes, on a cluster; `key` itself on one server. Tags go first,
/// so no client text later in the key (a page path may hold braces) can choose the slot.
fn tagged(tag: impl FnOnce() -> String, key: String) -> String {
    match layout() {
        Layout::Single => key,
        Layout::Cluster => format!("{{{}}}{key}", tag()),
    }
}

/// How many shards visitors are spread over on a cluster (`{v00}` … `{vff}`).
pub const VISITOR_SHARDS: usize = 256;

/// A visitor's shard tag: `v` and the first byte of SHA-256 of its visitor key (`anon_<fp>` or
/// `user_<uuid>`) in hex. A shard, not the visitor itself, so that the idle sweep's work list
/// (one per shard) shares a slot with the sessions it lists.
fn visitor_tag(visitor: &str) -> String {
    use sha2::Digest;
    format!("v{:02x}", sha2::Sha256::digest(visitor.as_bytes())[0])
}

/// The prefix of the fleet's own bookkeeping keys (workers, history, metrics, schedules, revoked
/// Celery ids): `namespace` on one server, `{namespace}` on a cluster (one slot, so each of their
/// pipelines and transactions reaches one node). Never used for queue keys, which carry a tag per
/// queue.
pub fn fleet_prefix(namespace: &str) -> String {
    match layout() {
        Layout::Single => namespace.to_owned(),
        Layout::Cluster => format!("{{{namespace}}}"),
    }
}

/// `anon_session:{fingerprint}`.
pub fn anon_session_key(fingerprint: &Fingerprint) -> String {
    tagged(
        || visitor_tag(&anon_visitor(fingerprint)),
        format!("anon_session:{fingerprint}"),
    )
}

/// `anon_view:{fingerprint}:{view id}`, cluster layout only: the answer a page view's first step
/// gave (`"<session id> <pages> <flags>"`), for a few minutes, so the same view sent again (by
/// the cluster client after a dropped connection, or by a client that got no answer) is not
/// recorded twice. The id is a UUID (the page's view id, or one drawn per request).
pub fn anon_view_key(fingerprint: &Fingerprint, view: &uuid::Uuid) -> String {
    tagged(
        || visitor_tag(&anon_visitor(fingerprint)),
        format!("anon_view:{fingerprint}:{view}"),
    )
}

/// `erasing:anon:{sha256 of the fingerprint}`: what an erasure took from Redis (the document and
/// buffered views), kept until the erasure ends (at most an hour), so a re-sent or repeated
/// erasure still knows the sessions whose jobs it must erase.
pub fn anon_erasing_key(fingerprint: &Fingerprint) -> String {
    tagged(
        || visitor_tag(&anon_visitor(fingerprint)),
        format!("erasing:anon:{}", fingerprint_hash(fingerprint)),
    )
}

/// Hex SHA-256 of a fingerprint: names a visitor's erasure keys without keeping the fingerprint.
fn fingerprint_hash(fingerprint: &Fingerprint) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(fingerprint.as_str().as_bytes()))
}

/// `anon_session:{fingerprint}:views`: views not yet written to the database.
pub fn anon_views_key(fingerprint: &Fingerprint) -> String {
    tagged(
        || visitor_tag(&anon_visitor(fingerprint)),
        format!("anon_session:{fingerprint}:views"),
    )
}

/// `beacon:{view_id}`: what the page's beacon reported of one anonymous view (`"{scroll} {seconds}"`,
/// see [`crate::documents::Beacon`]), until the view's row is written. The id is a parsed UUID,
/// so no client text reaches the key.
pub fn beacon_key(view_id: &uuid::Uuid) -> String {
    format!("beacon:{view_id}")
}

/// `erased:anon:{sha256 of the fingerprint}`: when the visitor was last erased (Redis ms); a job
/// that read the visitor's data before then undoes what it wrote (see `tracking::erase`). Keyed
/// by a hash so that the mark itself keeps nothing of the visitor.
pub fn anon_erased_key(fingerprint: &Fingerprint) -> String {
    tagged(
        || visitor_tag(&anon_visitor(fingerprint)),
        format!("erased:anon:{}", fingerprint_hash(fingerprint)),
    )
}

/// `anon_sessions:open`: fingerprint → Redis ms its latest session started. The idle sweep reads
/// it to finalize sessions whose finalize job was lost, persisted or not. On a cluster there is one
/// per visitor shard ([`anon_open_key`]).
const ANON_OPEN_KEY: &str = "anon_sessions:open";

/// The `anon_sessions:open` that lists `fingerprint` (on a cluster, its shard's, in the slot of the
/// visitor's own keys).
pub fn anon_open_key(fingerprint: &Fingerprint) -> String {
    tagged(
        || visitor_tag(&anon_visitor(fingerprint)),
        ANON_OPEN_KEY.to_owned(),
    )
}

/// Every `anon_sessions:open` (one on one server, [`VISITOR_SHARDS`] on a cluster).
pub fn anon_open_keys() -> Vec<String> {
    match layout() {
        Layout::Single => vec![ANON_OPEN_KEY.to_owned()],
        Layout::Cluster => (0..VISITOR_SHARDS)
            .map(|n| format!("{{v{n:02x}}}{ANON_OPEN_KEY}"))
            .collect(),
    }
}

/// The tag of a day's analytics keys.
fn day_tag(day: chrono::NaiveDate) -> String {
    format!("d{day}")
}

/// `pageviews:{date}:paths`: the paths viewed that UTC day.
pub fn pageview_paths_key(day: chrono::NaiveDate) -> String {
    tagged(|| day_tag(day), format!("pageviews:{day}:paths"))
}

/// `pageviews:{date}:{path}`: the day's counters of one path (the path escaped by [`key_part`]).
pub fn pageview_counters_key(day: chrono::NaiveDate, path: &str) -> String {
    tagged(
        || day_tag(day),
        format!("pageviews:{day}:{}", key_part(path)),
    )
}

/// `pageviews:{date}:{path}:visitors`: the day's unique visitors of one path.
pub fn pageview_visitors_key(day: chrono::NaiveDate, path: &str) -> String {
    tagged(
        || day_tag(day),
        format!("pageviews:{day}:{}:visitors", key_part(path)),
    )
}

/// `pageviews:{date}:{path}:sketch`: a HyperLogLog of the path's unique visitors past the exact
/// set's cap (`PAGEVIEW_MAX_EXACT_VISITORS`); it keeps no identity.
pub fn pageview_sketch_key(day: chrono::NaiveDate, path: &str) -> String {
    tagged(
        || day_tag(day),
        format!("pageviews:{day}:{}:sketch", key_part(path)),
    )
}

/// The path under which views past the day's distinct-path cap are counted (it cannot be a
/// tracked path: those start with `/`).
pub const OVERFLOW_PATH: &str = "(other)";

/// `session:{hashed_id}`, the seed's key: `hashed_id` from [`hashed_session_id`].
pub fn session_key(hashed_id: &str) -> String {
    format!("session:{hashed_id}")
}

/// Hex SHA-256 of a session key: the seed's `hashed_id`, so neither Redis nor the database
/// holds a usable session token.
pub fn hash_session_id(session_key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(session_key.as_bytes()))
}

/// The one rule for session ids: a session is known by its hashed id
/// ([`hash_session_id`] of the session key: Django's `request.session.session_key`, or the key the
/// fleet made at login). Wherever the fleet takes a session id (API bodies and paths, job
/// arguments) it takes either: 64 lowercase hex characters are the hashed id already, anything
/// else is a session key and is hashed. No session key has that form: Django's are 32 characters
/// of `[a-z0-9]`, the fleet's own 48 hex characters.
pub fn hashed_session_id(session_id: &str) -> String {
    let hashed = session_id.len() == 64
        && session_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if hashed {
        session_id.to_owned()
    } else {
        hash_session_id(session_id)
    }
}

/// The visitor key of an anonymous visitor: the seed's `anon_{fingerprint}`, whole.
pub fn anon_visitor(fingerprint: &Fingerprint) -> String {
    format!("anon_{fingerprint}")
}

/// The visitor key of a user: the seed's `user_{uuid}`.
pub fn user_visitor(user_id: &uuid::Uuid) -> String {
    format!("user_{user_id}")
}

/// `visitor:{key}:footprint`.
pub fn footprint(visitor: &str) -> String {
    tagged(
        || visitor_tag(visitor),
        format!("visitor:{visitor}:footprint"),
    )
}

/// A key without its cluster tag (itself on one server): what a footprint entry names.
pub fn untagged(key: &str) -> &str {
    match key.strip_prefix('{').and_then(|k| k.split_once('}')) {
        Some((_, rest)) if layout() == Layout::Cluster => rest,
        _ => key,
    }
}

/// The day's analytics keys of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKeys {
    /// `pageviews:{date}:paths` (SET).
    pub paths: String,
    /// `pageviews:{date}:{path}` (HASH).
    pub counters: String,
    /// `…:visitors` (SET, exact unique visitors up to the cap).
    pub visitors: String,
    /// `…:sketch` (HyperLogLog, unique visitors past the cap).
    pub sketch: String,
}

/// The day's analytics keys for `path`.
pub fn pageview_keys(day: NaiveDate, path: &str) -> PageKeys {
    PageKeys {
        paths: pageview_paths_key(day),
        counters: pageview_counters_key(day, path),
        visitors: pageview_visitors_key(day, path),
        sketch: pageview_sketch_key(day, path),
    }
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
    let base = tagged(|| format!("c{id}"), format!("community:{id}:visitors"));
    CommunityKeys {
        authenticated: format!("{base}:authenticated"),
        anonymous: format!("{base}:anonymous"),
        seen: format!("{base}:seen"),
        seen_authenticated: format!("{base}:seen:authenticated"),
        visitors: base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Every key one set of inputs names, tagged with its kind.
    fn all_keys(
        fp: &Fingerprint,
        day: NaiveDate,
        path: &str,
        session: &str,
        id: &uuid::Uuid,
    ) -> Vec<(&'static str, String)> {
        let PageKeys {
            paths,
            counters,
            visitors,
            sketch,
        } = pageview_keys(day, path);
        let c = community_keys(id);
        vec![
            ("anon_session", anon_session_key(fp)),
            ("anon_views", anon_views_key(fp)),
            ("anon_erased", anon_erased_key(fp)),
            ("open", ANON_OPEN_KEY.to_owned()),
            ("paths", paths),
            ("counters", counters),
            ("visitors", visitors),
            ("sketch", sketch),
            ("session", session_key(session)),
            ("footprint_anon", footprint(&anon_visitor(fp))),
            ("footprint_user", footprint(&user_visitor(id))),
            ("community", c.visitors),
            ("community_auth", c.authenticated),
            ("community_anon", c.anonymous),
            ("community_seen", c.seen),
            ("community_seen_auth", c.seen_authenticated),
        ]
    }

    fn fingerprint() -> impl Strategy<Value = Fingerprint> {
        "[A-Za-z0-9._~+/=-]{1,40}".prop_map(|s| Fingerprint::parse(&s).expect("in the set"))
    }

    fn path() -> impl Strategy<Value = String> {
        // Any text after the leading slash, `:` and `%` made likely; and the overflow bucket.
        prop_oneof![
            "/[a-z:%/]{0,12}(:visitors|:paths|%3A)?",
            "/\\PC{0,20}",
            Just(OVERFLOW_PATH.to_owned()),
        ]
    }

    /// A pair of paths, the second often made from the first the way a collision would need:
    /// a key suffix appended, its escape spelled out, or a colon moved.
    fn path_pair() -> impl Strategy<Value = (String, String)> {
        (path(), path(), 0..5u8).prop_map(|(a, b, how)| {
            let b = match how {
                0 => b,
                1 => format!("{a}:visitors"),
                2 => a.replace(':', "%3A"),
                3 => a.replace('%', ":"),
                _ => a.clone(),
            };
            (a, b)
        })
    }

    proptest! {
        /// Two sets of inputs: every key names exactly one (kind, input); no key of one kind is a
        /// key of another kind, and different inputs give different keys.
        #[test]
        fn keys_are_distinct(
            fp1 in fingerprint(), fp2 in fingerprint(),
            d1 in 0u32..3, d2 in 0u32..3,
            (p1, p2) in path_pair(),
            s1 in "\\PC{1,20}", s2 in "\\PC{1,20}",
            u1 in any::<u128>(), u2 in any::<u128>(),
        ) {
            let base = NaiveDate::from_ymd_opt(2026, 12, 1).expect("a date");
            let (u1, u2) = (uuid::Uuid::from_u128(u1), uuid::Uuid::from_u128(u2));
            let a = all_keys(&fp1, base + chrono::Days::new(d1.into()), &p1, &s1, &u1);
            let b = all_keys(&fp2, base + chrono::Days::new(d2.into()), &p2, &s2, &u2);
            // Which input each kind depends on, to tell "same input" from a collision.
            let same = |kind: &str| match kind {
                "anon_session" | "anon_views" | "anon_erased" | "footprint_anon" => fp1 == fp2,
                "open" => true,
                "paths" => d1 == d2,
                "counters" | "visitors" | "sketch" => d1 == d2 && p1 == p2,
                "session" => s1 == s2,
                _ => u1 == u2,
            };
            let mut seen: HashMap<&str, &str> = HashMap::new();
            for (kind, key) in a.iter().chain(b.iter()) {
                if let Some(other) = seen.insert(key.as_str(), kind) {
                    prop_assert!(other == *kind, "{key} is both a {other} key and a {kind} key");
                }
            }
            for ((kind, ka), (_, kb)) in a.iter().zip(b.iter()) {
                prop_assert_eq!(ka == kb, same(kind), "{} keys {} and {}", kind, ka, kb);
            }
        }
    }

    #[test]
    fn a_path_with_a_colon_stays_its_own_key() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).expect("a date");
        let counters = pageview_keys(day, "/x:visitors").counters;
        assert_ne!(counters, pageview_keys(day, "/x").visitors);
        assert_eq!(counters, "pageviews:2026-12-01:/x%3Avisitors");
        assert_eq!(
            pageview_keys(day, "/plain/").counters,
            "pageviews:2026-12-01:/plain/"
        );
        assert!(Fingerprint::parse("vic:views").is_err());
        assert!(Fingerprint::parse("a b").is_err());
        assert!(Fingerprint::parse(&"a".repeat(129)).is_err());
        assert!(Fingerprint::parse("0f9A-_.~+/=").is_ok());
    }
}
