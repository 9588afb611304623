//! Redis versions: the one the queue needs, and reading one from `INFO`.

/// The oldest Redis the queue's scripts run on: `push.lua` uses `SET … NX GET` (NX and GET
/// together need 7.0); `fetch.lua` pops with `LPOP key count` and `ack.lua` reads `ZMSCORE`
/// (both 6.2).
pub const MIN_REDIS_VERSION: RedisVersion = RedisVersion(7, 0, 0);

/// A Redis server version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RedisVersion(pub u32, pub u32, pub u32);

impl std::fmt::Display for RedisVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl RedisVersion {
    /// `7.0.15`, `7.2.4-rc1` (the leading digits of each part), `7.2` (patch 0).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.').map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = parts.next()??;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Self(major, minor, patch))
    }

    /// The `redis_version` field of an `INFO` (or `INFO server`) reply, as written there.
    pub fn field(info: &str) -> Option<&str> {
        info_field(info, "redis_version")
    }
}

/// Field `name` of an `INFO` reply (`name:value` lines), as written there.
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO_7: &str =
        "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\n";

    #[test]
    fn versions_parse_from_info_and_compare() {
        assert_eq!(RedisVersion::field(INFO_7), Some("7.0.15"));
        assert_eq!(RedisVersion::parse("7.0.15"), Some(RedisVersion(7, 0, 15)));
        assert_eq!(
            RedisVersion::parse("7.2.4-rc1"),
            Some(RedisVersion(7, 2, 4))
        );
        assert_eq!(RedisVersion::parse("8.0"), Some(RedisVersion(8, 0, 0)));
        assert_eq!(
            RedisVersion::parse("255.255.255"),
            Some(RedisVersion(255, 255, 255))
        );
        assert_eq!(RedisVersion::parse(""), None);
        assert_eq!(RedisVersion::parse("x.1"), None);
        assert!(RedisVersion(6, 2, 14) < MIN_REDIS_VERSION);
        assert!(RedisVersion(7, 0, 0) >= MIN_REDIS_VERSION);
        assert!(RedisVersion(10, 0, 0) > RedisVersion(9, 9, 9));
        assert_eq!(RedisVersion(7, 0, 15).to_string(), "7.0.15");
    }
}
