//! SQL writes several jobs share: upserting an anonymous session from its Redis document.

use redis::AsyncCommands;
use sea_orm::{DbErr, Value};

use crate::context::JobContext;
use crate::hot::{AnonSessionDoc, anon_session_key};

/// Why a session document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis failed (transient).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The database failed (transient).
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// The document in Redis is not a session document (permanent).
    #[error("anon_session document does not decode: {0}")]
    BadDocument(serde_json::Error),
}

/// The live document of `fingerprint`, or `None` when the key is gone.
pub async fn read_anon_session(
    ctx: &JobContext,
    fingerprint: &str,
) -> Result<Option<AnonSessionDoc>, StoreError> {
    let raw: Option<String> = ctx.redis.clone().get(anon_session_key(fingerprint)).await?;
    raw.map(|r| serde_json::from_str(&r).map_err(StoreError::BadDocument))
        .transpose()
}

/// Insert or update the session row from its document. Never moves `pages_visited` or
/// `last_activity` backwards, never reopens a finalized session, so replays are harmless.
pub async fn upsert_anon_session(ctx: &JobContext, doc: &AnonSessionDoc) -> Result<(), DbErr> {
    let ip_cast = match ctx.backend() {
        sea_orm::DatabaseBackend::Postgres => "CAST($7 AS inet)",
        _ => "$7",
    };
    let sql = format!(
        "INSERT INTO analytics_anonymoussession AS s (id, device_fingerprint, session_start, session_end, \
         last_activity, pages_visited, ip_address, user_agent, device_type, browser, os, landing_page, \
         referrer, is_active, is_bot) VALUES ($1, $2, $3, NULL, $4, $5, {ip_cast}, $6, $8, $9, $10, $11, $12, TRUE, $13) \
         ON CONFLICT (id) DO UPDATE SET \
         last_activity = GREATEST(s.last_activity, excluded.last_activity), \
         pages_visited = GREATEST(s.pages_visited, excluded.pages_visited)"
    );
    ctx.execute(
        &sql,
        vec![
            doc.session_id.into(),
            doc.device_fingerprint.clone().into(),
            doc.started_at.into(),
            doc.last_activity.into(),
            doc.pages_visited.into(),
            doc.user_agent.clone().into(),
            Value::String(doc.ip_address.clone()),
            doc.device_type.clone().into(),
            doc.browser.clone().into(),
            doc.os.clone().into(),
            doc.landing_page.clone().into(),
            doc.referrer.clone().into(),
            doc.is_bot.into(),
        ],
    )
    .await?;
    Ok(())
}
