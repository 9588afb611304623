//! Rate limits that hold for every worker of a queue at once: a token bucket kept in Redis, next
//! to the queue's other keys, taken from by the fetch that leases jobs.

use std::str::FromStr;

/// At most `per_second` jobs of a queue start per second, across every worker, with bursts of at
/// most `burst` (the bucket's size). Parsed from Celery's notation: `100/s`, `30/m`, `10/h`, or a
/// bare number (per second).
///
/// ```
/// # use queue::RateLimit;
/// let r: RateLimit = "30/m".parse().unwrap();
/// assert_eq!(r.per_second, 0.5);
/// assert_eq!(r.burst, 1);
/// assert_eq!("100/s".parse::<RateLimit>().unwrap().burst, 10);
/// assert!("0/s".parse::<RateLimit>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Jobs started per second, fleet-wide.
    pub per_second: f64,
    /// Tokens the bucket holds when full: the most jobs that start at once after a quiet spell.
    pub burst: u32,
}

impl RateLimit {
    /// `per_second` with a bucket of a tenth of a second's worth (at least one token): short
    /// enough that no one-second window sees much more than the rate, long enough that each
    /// worker's fetch takes several jobs at a time.
    pub fn per_second(per_second: f64) -> Self {
        let burst = (per_second / 10.0).ceil().clamp(1.0, 1_000.0) as u32;
        Self { per_second, burst }
    }

    /// Tokens the bucket gains per millisecond (the fetch script's unit).
    pub(crate) fn per_ms(&self) -> f64 {
        self.per_second / 1000.0
    }
}

/// Why a rate limit does not parse.
#[derive(Debug, thiserror::Error)]
#[error("expected <number>/s, /m or /h (e.g. 100/s), from one a day to a million a second: {0}")]
pub struct RateLimitError(String);

impl FromStr for RateLimit {
    type Err = RateLimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (n, unit) = s.split_once('/').unwrap_or((s, "s"));
        let per: f64 = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(RateLimitError(format!("unknown unit {other:?}"))),
        };
        let n: f64 = n
            .trim()
            .parse()
            .map_err(|e| RateLimitError(format!("{e}")))?;
        // At least one a day (a bucket that refills slower would outlive any sensible key TTL).
        if !n.is_finite() || n <= 0.0 || n / per > 1_000_000.0 || n / per < 1.0 / 86_400.0 {
            return Err(RateLimitError(format!("{n} is out of range")));
        }
        Ok(Self::per_second(n / per))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn celery_notation_parses_and_nonsense_does_not() {
        assert_eq!("100/s".parse::<RateLimit>().unwrap().per_second, 100.0);
        assert_eq!("7".parse::<RateLimit>().unwrap().per_second, 7.0);
        assert_eq!("36/h".parse::<RateLimit>().unwrap().per_second, 0.01);
        assert_eq!("2500/s".parse::<RateLimit>().unwrap().burst, 250);
        for bad in [
            "", "/s", "fast", "10/d", "-1/s", "0", "NaN/s", "inf/s", "0.01/h",
        ] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }
}
