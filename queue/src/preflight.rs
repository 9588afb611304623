//! What every process checks at start about the Redis it talks to: its version.

use redis::aio::ConnectionLike;

use crate::error::QueueError;
use crate::version::{MIN_REDIS_VERSION, RedisVersion};

/// Check that the Redis behind `conn` is at least [`MIN_REDIS_VERSION`] (`INFO server`,
/// `redis_version`). Every Celeriac process calls it at start; the error is one line naming the
/// version found and the one required. Returns the version found.
pub async fn require_redis_version<C: ConnectionLike>(
    conn: &mut C,
) -> Result<RedisVersion, QueueError> {
    let info: String = redis::cmd("INFO").arg("server").query_async(conn).await?;
    check_redis_info(&info)
}

/// [`require_redis_version`]'s decision on an `INFO server` reply (for connections that fetch it
/// themselves, such as a cluster's).
pub fn check_redis_info(info: &str) -> Result<RedisVersion, QueueError> {
    let found = RedisVersion::field(info).unwrap_or("unknown");
    match RedisVersion::parse(found) {
        Some(v) if v >= MIN_REDIS_VERSION => Ok(v),
        _ => Err(QueueError::RedisTooOld {
            found: found.to_owned(),
            required: MIN_REDIS_VERSION,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO_7: &str =
        "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\n";

    #[test]
    fn too_old_or_unknown_versions_fail_with_one_line_naming_both() {
        assert_eq!(check_redis_info(INFO_7).ok(), Some(RedisVersion(7, 0, 15)));
        assert_eq!(
            check_redis_info("redis_version:7.4.1\r\n").ok(),
            Some(RedisVersion(7, 4, 1))
        );
        for (info, found) in [
            ("# Server\r\nredis_version:6.2.14\r\n", "6.2.14"),
            ("redis_version:5.0.7\n", "5.0.7"),
            ("# Server\r\nredis_mode:standalone\r\n", "unknown"),
        ] {
            let e = check_redis_info(info).unwrap_err().to_string();
            assert!(!e.contains('\n'), "{e}");
            assert!(e.contains(found) && e.contains("7.0.0"), "{e}");
        }
    }
}
