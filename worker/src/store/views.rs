//! Buffered anonymous views into `analytics_anonymouspageview`: read a session's views from
//! `anon_session:{fp}:views`, write them (one row per view number), drop them from the buffer.

use domain::documents::{AnonSessionDoc, BufferedView};
use domain::keys::{Fingerprint, anon_views_key};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sea_orm::{DatabaseConnection, EntityTrait, Value};

use super::session_row::reconcile_row;
use super::{SessionWriter, StoreError};

/// Removes each given element of list `KEYS[1]` once (the views a flush wrote), wherever it is:
/// views of other sessions, and views buffered meanwhile, stay.
static REMOVE_FLUSHED: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local n = 0 for i = 1, #ARGV do n = n + redis.call('LREM', KEYS[1], 1, ARGV[i]) end return n",
    )
});

/// Views read from the buffer per step.
const FLUSH_CHUNK: isize = 1000;

/// Write the views buffered in `anon_session:{fingerprint}:views` for `session_id` into
/// `analytics_anonymouspageview` (one row per view and view number; a replay inserts nothing
/// new), with each view's time on page where the next view is known, then drop them from the
/// buffer. When the session has no row yet, `doc` (its live document) or the session's first
/// buffered view (which carries the first document) creates it; with `reconcile` the row's
/// `pages_visited` and `last_activity` are brought up to the views (a finalize after the live
/// document is gone). Returns the rows inserted. Views of other sessions are left for their own
/// finalize.
pub async fn flush_page_views(
    db: &DatabaseConnection,
    redis: &ConnectionManager,
    sessions: &SessionWriter,
    fingerprint: &Fingerprint,
    session_id: uuid::Uuid,
    doc: Option<&AnonSessionDoc>,
    reconcile: bool,
) -> Result<u64, StoreError> {
    let key = anon_views_key(fingerprint);
    let mut inserted = 0;
    let mut has_row = false;
    loop {
        // This session's views, wherever they are in the buffer (behind another session's
        // backlog too), at most FLUSH_CHUNK per step.
        let mut mine: Vec<(String, BufferedView)> = Vec::new();
        let mut offset: isize = 0;
        let mut scanned_all = false;
        while mine.len() < FLUSH_CHUNK as usize {
            let raw: Vec<String> = redis
                .clone()
                .lrange(&key, offset, offset + FLUSH_CHUNK - 1)
                .await?;
            offset += raw.len() as isize;
            let last_page = (raw.len() as isize) < FLUSH_CHUNK;
            mine.extend(raw.into_iter().filter_map(|r| {
                let v = serde_json::from_str::<BufferedView>(&r).ok()?;
                (v.session_id == session_id).then_some((r, v))
            }));
            if last_page {
                scanned_all = true;
                break;
            }
        }
        if mine.is_empty() {
            break;
        }
        mine.sort_by_key(|(_, v)| (v.view_number, v.viewed_at));
        if !has_row {
            has_row = entity::anonymous_session::Entity::find_by_id(session_id)
                .one(db)
                .await?
                .is_some();
        }
        if !has_row {
            let first = doc.or_else(|| mine.iter().find_map(|(_, v)| v.session.as_deref()));
            if let Some(first) = first {
                sessions.upsert(first.clone()).await?;
                has_row = true;
            }
        }
        let views: Vec<&BufferedView> = mine.iter().map(|(_, v)| v).collect();
        if has_row {
            inserted += insert_views(db, &views).await?;
            if reconcile {
                reconcile_row(db, session_id, &views).await?;
            }
        } else {
            // Views of a build that did not buffer the first document, whose session was never
            // written and whose document is gone: nowhere to put them.
            tracing::warn!(
                views = views.len(),
                "views of a session with no row and no document dropped"
            );
        }
        let _: i64 = REMOVE_FLUSHED
            .key(&key)
            .arg(mine.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>())
            .invoke_async(&mut redis.clone())
            .await?;
        if scanned_all {
            break;
        }
    }
    Ok(inserted)
}

/// Insert the views (sorted by view number), one row each.
async fn insert_views(db: &DatabaseConnection, views: &[&BufferedView]) -> Result<u64, StoreError> {
    let mut sql = String::from(
        "INSERT INTO analytics_anonymouspageview (session_id, url, url_name, page_type, viewed_at, \
         time_on_page_seconds, referrer, view_number) VALUES ",
    );
    let mut values: Vec<Value> = Vec::with_capacity(views.len() * 8);
    for (i, v) in views.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&domain::sql::row_placeholders(i, 8));
        let on_page = views.get(i + 1).map(|next| {
            (next.viewed_at - v.viewed_at)
                .num_seconds()
                .clamp(0, i64::from(i32::MAX)) as i32
        });
        values.extend([
            v.session_id.into(),
            v.url.clone().into(),
            v.url_name.clone().into(),
            v.page_type.clone().into(),
            v.viewed_at.into(),
            on_page.into(),
            v.referrer.clone().into(),
            v.view_number.into(),
        ]);
    }
    sql.push_str(" ON CONFLICT (session_id, view_number) DO NOTHING");
    Ok(domain::sql::execute(db, &sql, values).await?)
}
