//! Fuzz target: arbitrary text as a page address → `tracking::validate::url_path` (and `referrer`, `clip`, `fingerprint`), asserting the path invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracking::validate::{TrackError, clip, fingerprint, referrer, url_path};

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    match url_path("url", url) {
        Ok(path) => {
            assert!(path.starts_with('/'), "{url:?} -> {path:?}");
            assert!(!path.contains(['?', '#']), "{url:?} -> {path:?}");
            assert!(
                url.contains(path.as_str()) || path == "/",
                "{url:?} -> {path:?}"
            );
            assert!(path.len() <= url.len().max(1));
            assert!(!path.chars().any(|c| c.is_whitespace() || c.is_control()));
            assert!(referrer("referrer", url).is_ok());
            // A returned path never starts with `//` (it would be protocol-relative) and is itself
            // a valid address that maps to itself.
            assert!(!path.starts_with("//"), "{url:?} -> {path:?}");
            assert_eq!(url_path("url", &path).ok(), Some(path.clone()));
        }
        Err(e) => {
            assert!(
                matches!(e, TrackError::Invalid(ref a) if a.field == "url"),
                "{e}"
            );
            assert_eq!(referrer("referrer", url).is_ok(), url.is_empty());
        }
    }
    let max = url.len() / 2;
    let clipped = clip(url, max);
    assert!(clipped.len() <= max && url.starts_with(clipped.as_str()));
    let _ = fingerprint("fingerprint", url);
});
