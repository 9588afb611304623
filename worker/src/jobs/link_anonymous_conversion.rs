//! `link_anonymous_conversion`: link a new user to the anonymous session that preceded sign-up.

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{Job, JobError};
use crate::context::JobContext;
use crate::store;
use domain::jobs::LinkAnonymousConversion;
use domain::sql::statement;
use entity::anonymous_session;

impl Job for LinkAnonymousConversion {
    /// The erasure undo below runs even when the write ran out of time.
    const LIMITS_ITS_WRITES: bool = true;

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        // The live document is the freshest truth: persist it first.
        let snap = ctx.reads.session(&self.fingerprint).await?;
        let live = snap.doc;
        if let Some(doc) = &live {
            let written = super::within_time_limit(super::run_limit(), async {
                Ok(ctx.sessions.upsert(doc.clone()).await?)
            })
            .await;
            // The visitor erased meanwhile: the row this wrote goes, and there is nothing to link.
            if store::undo_if_erased(
                &ctx.db,
                &ctx.reads,
                &self.fingerprint,
                doc.session_id,
                snap.now_ms,
            )
            .await?
            {
                return Ok(());
            }
            written?;
        }
        let live_id = live.as_ref().map(|d| d.session_id);
        super::within_time_limit(super::run_limit(), link(&self, ctx, live_id)).await
    }
}

/// Link the user to the session (`live_id`, else the visitor's latest) and write the
/// `account_created` event, in one transaction.
async fn link(
    job: &LinkAnonymousConversion,
    ctx: &JobContext,
    live_id: Option<uuid::Uuid>,
) -> Result<(), JobError> {
    let session = match live_id {
        Some(id) => {
            anonymous_session::Entity::find_by_id(id)
                .one(&ctx.db)
                .await?
        }
        None => {
            anonymous_session::Entity::find()
                .filter(anonymous_session::Column::DeviceFingerprint.eq(job.fingerprint.as_str()))
                .order_by_desc(anonymous_session::Column::SessionStart)
                .one(&ctx.db)
                .await?
        }
    };
    let Some(session) = session else {
        tracing::info!("no anonymous session for this visitor; nothing to link");
        return Ok(());
    };
    let now = Utc::now();
    let backend = ctx.backend();
    let django = ctx.shape.get(&ctx.db).await?.django;
    let txn = ctx.db.begin().await?;
    if django {
        // Django owns the users: the sign-up's transaction may not have committed yet, so a
        // missing profile is retried, never invented.
        let found = txn
            .query_one_raw(statement(
                backend,
                "SELECT 1 AS one FROM accounts_userprofile WHERE id = $1",
                vec![job.user_id.into()],
            ))
            .await?;
        if found.is_none() {
            return Err(JobError::Retry(anyhow::anyhow!(
                "no accounts_userprofile row for this user yet"
            )));
        }
    } else {
        // Standalone deployments may not have the user yet.
        let username = format!("user-{}", job.user_id.simple());
        txn.execute_raw(statement(
            backend,
            "INSERT INTO accounts_userprofile (id, username, division_id, date_joined) \
                 VALUES ($1, $2, NULL, $3) ON CONFLICT DO NOTHING",
            vec![job.user_id.into(), username.into(), now.into()],
        ))
        .await?;
    }
    if backend == sea_orm::DatabaseBackend::Postgres {
        // Serialize concurrent links of one user so the event is written once.
        txn.execute_raw(statement(
            backend,
            "SELECT id FROM accounts_userprofile WHERE id = $1 FOR UPDATE",
            vec![job.user_id.into()],
        ))
        .await?;
    }
    txn.execute_raw(statement(
        backend,
        "UPDATE analytics_anonymoussession SET converted_to_user_id = $1, \
             converted_at = COALESCE(converted_at, $2) WHERE id = $3",
        vec![job.user_id.into(), now.into(), session.id.into()],
    ))
    .await?;
    let duration = (session.last_activity - session.session_start).num_seconds();
    let metadata = serde_json::json!({
        "from_anonymous_session": session.id,
        "pages_visited": session.pages_visited,
        "landing_page": session.landing_page,
        "referrer": session.referrer,
        "duration": duration,
    });
    txn.execute_raw(statement(
            backend,
            "INSERT INTO accounts_userevent (user_id, event_type, description, metadata, ip_address, user_agent, created_at) \
             SELECT $1, 'account_created', 'Account created from an anonymous session', $2, NULL, $3, $4 \
             WHERE NOT EXISTS (SELECT 1 FROM accounts_userevent WHERE user_id = $1 AND event_type = 'account_created')",
            vec![job.user_id.into(), metadata.into(), session.user_agent.clone().into(), now.into()],
        ))
        .await?;
    txn.commit().await?;
    Ok(())
}
