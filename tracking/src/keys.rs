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
//! | `erased:anon:{sha256(fingerprint)}` | STRING | Redis ms of the visitor's last erasure (jobs that read before it undo their writes) | 1 day |
//! | `anon_sessions:open` | ZSET | fingerprint → Redis ms its latest session started (the idle sweep's work list) | none: the sweep removes a fingerprint once it has no session and no buffered view |
//! | `pageviews:{date}:paths` | SET | paths viewed that UTC day (at most `PAGEVIEW_MAX_PATHS_PER_DAY`; later new paths count as `(other)`) | 4 d from the last path added (a day past what it lists) |
//! | `pageviews:{date}:{path}` | HASH | `anonymous`, `authenticated` (views of each kind; their sum is the total), `page_type` | 3 d from its first view |
//! | `pageviews:{date}:{path}:visitors` | SET | visitor keys (unique visitors), at most `PAGEVIEW_MAX_EXACT_VISITORS` | 3 d from the path's first view |
//! | `pageviews:{date}:{path}:sketch` | STRING (HyperLogLog) | unique visitors past the exact set's cap (no identity kept; ≤ 12 KB) | 3 d from its first visitor |
//! | `visitor:{visitor key}:footprint` | SET | where this visitor is (for erasure): community visitor hashes and the day visitor sets it joined | 4 d (a day past what it lists), renewed when it gains a key |
//!
//! Visitor keys are `anon:{fingerprint}` or `user:{user_id}`. `{path}` is the page path with `%`
//! and `:` percent-encoded ([`worker::hot::key_part`]); a fingerprint has no `:` (its type,
//! [`Fingerprint`], checks that), so no client value can turn one key into another.

use chrono::NaiveDate;

pub use worker::hot::{
    ANON_OPEN_KEY, Fingerprint, anon_erased_key, anon_session_key, anon_views_key, session_key,
};

/// The visitor key of an anonymous visitor.
pub fn anon_visitor(fingerprint: &Fingerprint) -> String {
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
        paths: worker::hot::pageview_paths_key(day),
        counters: worker::hot::pageview_counters_key(day, path),
        visitors: worker::hot::pageview_visitors_key(day, path),
        sketch: worker::hot::pageview_sketch_key(day, path),
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
    let base = format!("community:{id}:visitors");
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
            Just(worker::hot::OVERFLOW_PATH.to_owned()),
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
