//! A visitor's Redis state as the jobs see it: one atomic read of the live session document on
//! Redis's clock, and leaving the idle sweep's list once nothing is left to finalize.

use domain::conn::RedisConn;
use domain::documents::AnonSessionDoc;
use domain::keys::{Fingerprint, anon_open_key, anon_session_key, anon_views_key};

use super::StoreError;

/// What a job sees of an anonymous visitor in one atomic read, on Redis's clock.
#[derive(Debug)]
pub struct Snapshot {
    /// The live session document, if any (`None` also when it does not decode as JSON object
    /// with a session id: a new view would replace it). Boxed: it moves from the read to the
    /// session writer through every job's future, a few hundred bytes each time inline.
    pub doc: Option<Box<AnonSessionDoc>>,
    /// The document's remaining lifetime in ms (-1: no TTL, -2: no document).
    pub pttl_ms: i64,
    /// Redis's clock at the read (epoch ms).
    pub now_ms: i64,
    /// Views buffered in `anon_session:{fp}:views` at the read (any session's).
    pub buffered: i64,
}

impl Snapshot {
    /// The snapshot of a session read's answer (document, PTTL, Redis's time, views buffered).
    pub(super) fn new(
        raw: Option<String>,
        pttl_ms: i64,
        now_ms: i64,
        buffered: i64,
    ) -> Result<Self, StoreError> {
        let doc = match raw {
            Some(r) => Some(serde_json::from_str(&r).map_err(StoreError::BadDocument)?),
            None => None,
        };
        Ok(Self {
            doc,
            pttl_ms,
            now_ms,
            buffered,
        })
    }
}

/// `KEYS[1]` anon_session:{fp}, `KEYS[2]` its views → {document or false, PTTL, Redis TIME ms,
/// views buffered}: a session's read on a Redis Cluster, on its visitor's node (both keys share
/// the visitor's hash tag). On one server the reads go as transactions (`reads`).
pub(super) static READ_SESSION: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| {
        redis::Script::new(
            "local t = redis.call('TIME') \
             return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), \
                     tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), \
                     redis.call('LLEN', KEYS[2])}",
        )
    });

/// `KEYS[1]` anon_sessions:open, `KEYS[2]` anon_session:{fp}, `KEYS[3]` its views; `ARGV[1]` the
/// fingerprint. The visitor leaves the open list once it has neither a live session nor a
/// buffered view.
static FORGET_OPEN: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('LLEN', KEYS[3]) == 0 then \
           return redis.call('ZREM', KEYS[1], ARGV[1]) end return 0",
    )
});

/// Take `fingerprint` off the idle sweep's list when nothing of it is left to finalize.
pub async fn forget_if_done(
    redis: &RedisConn,
    fingerprint: &Fingerprint,
) -> Result<(), StoreError> {
    let _: i64 = FORGET_OPEN
        .key(anon_open_key(fingerprint))
        .key(anon_session_key(fingerprint))
        .key(anon_views_key(fingerprint))
        .arg(fingerprint.as_str())
        .invoke_async(&mut redis.clone())
        .await?;
    Ok(())
}
