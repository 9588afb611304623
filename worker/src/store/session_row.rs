//! Updates of one `analytics_anonymoussession` row: bring it up to its views, end it.

use domain::db::Db;
use domain::documents::BufferedView;
use uuid::Uuid;

use super::StoreError;

/// Bring the row's page count and last activity up to its views (never down).
pub(super) async fn reconcile_row(
    db: &Db,
    session_id: uuid::Uuid,
    views: &[&BufferedView],
) -> Result<(), StoreError> {
    let (Some(pages), Some(last)) = (
        views.iter().filter_map(|v| v.view_number).max(),
        views.iter().map(|v| v.viewed_at).max(),
    ) else {
        return Ok(());
    };
    let greatest = domain::sql::greatest(db.get_database_backend());
    domain::sql::execute(
        db,
        &format!(
            "UPDATE analytics_anonymoussession SET pages_visited = {greatest}(pages_visited, $1), \
             last_activity = {greatest}(last_activity, $2) WHERE id = $3"
        ),
        vec![pages.into(), last.into(), session_id.into()],
    )
    .await?;
    Ok(())
}

/// Mark a session ended at its last activity. Idempotent: an ended session is left as it is.
pub async fn end_session(db: &Db, session_id: Uuid) -> Result<u64, sea_orm::DbErr> {
    let duration = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            "CAST(EXTRACT(EPOCH FROM (last_activity - session_start)) AS INTEGER)"
        }
        _ => {
            "CAST(ROUND((julianday(last_activity) - julianday(session_start)) * 86400) AS INTEGER)"
        }
    };
    domain::sql::execute(
        db,
        &format!(
            "UPDATE analytics_anonymoussession SET is_active = FALSE, session_end = last_activity, \
             duration_seconds = {duration} WHERE id = $1 AND is_active"
        ),
        vec![session_id.into()],
    )
    .await
}
