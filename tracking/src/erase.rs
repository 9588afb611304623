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
        let places: Vec<String> = redis.smembers(&footprint).await?;
        for place in places {
            if place.starts_with("community:") {
                let mut pipe = redis::pipe();
                pipe.hdel(&place, &visitor)
                    .srem(format!("{place}:authenticated"), &visitor)
                    .srem(format!("{place}:anonymous"), &visitor)
                    .zrem(format!("{place}:seen"), &visitor);
                let counts: Vec<u64> = pipe.query_async(&mut redis).await?;
                removed += counts.iter().sum::<u64>();
            } else {
                let n: u64 = redis.srem(&place, &visitor).await?;
                removed += n;
            }
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
