//! `DELETE /v1/anonymous/{fingerprint}`: erase every trace of an anonymous visitor, in Redis and
//! in the database (the privacy matrix's right to erasure).

use redis::AsyncCommands;
use sea_orm::ConnectionTrait;
use serde::Serialize;
use utoipa::ToSchema;
use worker::context::statement;

use crate::validate::{self, TrackError};
use crate::{Tracker, keys};

/// What was removed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct Erased {
    /// Redis keys deleted or entries removed.
    pub redis_entries: u64,
    /// Anonymous session rows deleted (their page views go with them).
    pub sessions: u64,
}

/// The day of a `pageviews:{date}:paths` key (None for any other key).
fn path_set_day(key: &str) -> Option<chrono::NaiveDate> {
    let day = key.strip_prefix("pageviews:")?.strip_suffix(":paths")?;
    let day = day.parse().ok()?;
    (worker::hot::pageview_paths_key(day) == key).then_some(day)
}

impl Tracker {
    /// Remove the visitor's live session, buffered views, community presence, analytics visitor
    /// entries, and every anonymous session row (page views cascade).
    pub async fn erase_anonymous(&self, fingerprint: &str) -> Result<Erased, TrackError> {
        validate::fingerprint("fingerprint", fingerprint)?;
        let mut redis = self.redis.clone();
        let visitor = keys::anon_visitor(fingerprint);
        let footprint = keys::footprint(&visitor);
        let mut removed: u64 = redis
            .del(&[
                keys::anon_session_key(fingerprint),
                keys::anon_views_key(fingerprint),
            ])
            .await?;
        // The footprint names community visitor hashes, days' path sets (anonymous page views:
        // the visitor is in the visitor set of some of that day's paths) and visitor sets.
        let places: Vec<String> = redis.smembers(&footprint).await?;
        for place in places {
            let mut pipe = redis::pipe();
            if place.starts_with("community:") {
                pipe.hdel(&place, &visitor)
                    .srem(format!("{place}:authenticated"), &visitor)
                    .srem(format!("{place}:anonymous"), &visitor)
                    .zrem(format!("{place}:seen"), &visitor)
                    .zrem(format!("{place}:seen:authenticated"), &visitor);
            } else if let Some(day) = path_set_day(&place) {
                let paths: Vec<String> = redis.smembers(&place).await?;
                for path in paths {
                    pipe.srem(worker::hot::pageview_visitors_key(day, &path), &visitor);
                }
            } else {
                pipe.srem(&place, &visitor);
            }
            let counts: Vec<u64> = pipe.query_async(&mut redis).await?;
            removed += counts.iter().sum::<u64>();
        }
        let n: u64 = redis.del(&footprint).await?;
        removed += n;
        let backend = self.db.get_database_backend();
        let sessions = self
            .db
            .execute_raw(statement(
                backend,
                "DELETE FROM analytics_anonymoussession WHERE device_fingerprint = $1",
                vec![fingerprint.into()],
            ))
            .await?
            .rows_affected();
        self.db
            .execute_raw(statement(
                backend,
                "DELETE FROM analytics_pageviewlog WHERE visitor_key = $1 AND NOT is_authenticated",
                vec![fingerprint.into()],
            ))
            .await?;
        tracing::info!(
            redis_entries = removed,
            sessions,
            "anonymous visitor erased"
        );
        Ok(Erased {
            redis_entries: removed,
            sessions,
        })
    }
}
