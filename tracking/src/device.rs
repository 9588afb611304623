//! What a user agent says about the device (woothee, via [`domain::user_agent::parse_user_agent`]), cut
//! to column sizes, remembered per user-agent string.
//!
//! Parsing runs a few regular expressions (several µs); a site's traffic has few distinct user
//! agents, so every page view asking again is waste. The cache holds two generations of at most
//! [`GENERATION`] entries each: lookups promote entries from the old generation to the new one,
//! and when the new one is full it becomes the old one (the previous old one is dropped). Recently
//! used user agents therefore stay, memory is bounded (user agents are clipped to 1,024 bytes
//! before they get here), and a flood of distinct user agents only costs what parsing cost anyway.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use domain::user_agent::parse_user_agent;

use crate::validate::clip;

/// Entries per generation.
const GENERATION: usize = 2048;

/// What the user agent says, cut to column sizes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Device {
    pub(crate) device_type: String,
    pub(crate) browser: String,
    pub(crate) os: String,
    pub(crate) is_bot: bool,
}

type Generation = HashMap<Box<str>, Arc<Device>>;

#[derive(Default)]
struct Cache {
    new: Generation,
    old: Generation,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

/// The device behind `ua` (parsed once per distinct user agent while it stays in use).
pub(crate) fn device(ua: &str) -> Arc<Device> {
    {
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = cache.new.get(ua) {
            return d.clone();
        }
        if let Some((k, d)) = cache.old.remove_entry(ua) {
            cache.insert(k, d.clone());
            return d;
        }
    }
    // Parse outside the lock; two requests racing on a new user agent both parse it.
    let d = Arc::new(parse(ua));
    CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(ua.into(), d.clone());
    d
}

impl Cache {
    fn insert(&mut self, ua: Box<str>, d: Arc<Device>) {
        if self.new.len() >= GENERATION {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(ua, d);
    }
}

fn parse(ua: &str) -> Device {
    let info = parse_user_agent(ua);
    let s = |k: &str| clip(info[k].as_str().unwrap_or_default(), 64);
    Device {
        device_type: s("device_type"),
        browser: s("browser"),
        os: s("os"),
        is_bot: info["is_bot"].as_bool().unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_answers_are_the_parsers_and_the_cache_stays_bounded() {
        let ua = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        let first = device(ua);
        assert!(first.is_bot);
        assert_eq!(*device(ua), parse(ua));
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0";
        assert_eq!(*device(firefox), parse(firefox));
        assert!(!device(firefox).is_bot);
        assert_eq!(device("").device_type, parse("").device_type);
        for i in 0..3 * GENERATION {
            device(&format!("agent/{i}"));
        }
        let cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(cache.new.len() <= GENERATION && cache.old.len() <= GENERATION);
    }
}
