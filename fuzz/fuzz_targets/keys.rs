//! Fuzz target: two arbitrary (fingerprint, page address) pairs → every hot-data key builder,
//! asserting that different inputs give different keys and that no key of one kind is a key of
//! another kind (the key-collision class of bugs: `/x:visitors`, `vic:views`).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use domain::keys::{
    Fingerprint, anon_erased_key, anon_session_key, anon_views_key, anon_visitor, footprint,
    pageview_keys,
};
use tracking::validate::url_path;

/// The keys of one visitor and page, by kind.
fn keys(fp: &Fingerprint, path: &str) -> Vec<(&'static str, String)> {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap_or_default();
    let k = pageview_keys(day, path);
    vec![
        ("session", anon_session_key(fp)),
        ("views", anon_views_key(fp)),
        ("erased", anon_erased_key(fp)),
        ("footprint", footprint(&anon_visitor(fp))),
        ("paths", k.paths),
        ("counters", k.counters),
        ("visitors", k.visitors),
        ("sketch", k.sketch),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Four fields separated by newlines: fingerprint, url, fingerprint, url.
    let mut parts = text.splitn(4, '\n');
    let (Some(f1), Some(u1), Some(f2), Some(u2)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let (Ok(f1), Ok(f2)) = (Fingerprint::parse(f1), Fingerprint::parse(f2)) else {
        assert!(!f1.is_empty() || Fingerprint::parse(f1).is_err());
        return;
    };
    for f in [&f1, &f2] {
        assert!(!f.as_str().contains([':', '{', '}', ' ']), "{f}");
    }
    let (Ok(p1), Ok(p2)) = (url_path("url", u1), url_path("url", u2)) else {
        return;
    };
    let a = keys(&f1, &p1);
    let b = keys(&f2, &p2);
    let mut kind_of: HashMap<String, &str> = HashMap::new();
    for (kind, key) in a.iter().chain(b.iter()) {
        if let Some(other) = kind_of.insert(key.clone(), kind) {
            assert_eq!(other, *kind, "{key} is a {other} key and a {kind} key");
        }
    }
    for ((kind, ka), (_, kb)) in a.iter().zip(b.iter()) {
        let same_input = match *kind {
            "paths" => true,
            "counters" | "visitors" | "sketch" => p1 == p2,
            _ => f1 == f2,
        };
        assert_eq!(ka == kb, same_input, "{kind}: {ka} / {kb}");
    }
});
