//! Buffered anonymous views into `analytics_anonymouspageview`: read a session's views from
//! `anon_session:{fp}:views`, write them (one row per view number), drop them from the buffer.

use domain::conn::RedisConn;
use domain::db::Db;
use domain::documents::{AnonSessionDoc, Beacon, BufferedView};
use domain::keys::{Fingerprint, anon_views_key, beacon_key};
use redis::AsyncCommands;
use sea_orm::{EntityTrait, Value};

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
/// new), then drop them and their beacons from the buffer. A view's scroll depth and time on page
/// come from its beacon (`beacon:{view_id}`) where the page sent one; otherwise its time on page
/// is the time to the next view. When the session has no row yet, `doc` (its live document) or
/// the session's first buffered view (which carries the first document) creates it.
///
/// `reconcile` marks the session's end (its finalize): every view is written, and the row's
/// `pages_visited` and `last_activity` are brought up to the views (the live document may be
/// gone). Without it (a live session's persist) the newest view stays in the buffer: its time on
/// page and its beacon are not known yet. Returns the rows inserted. Views of other sessions are
/// left for their own finalize.
pub async fn flush_page_views(
    db: &Db,
    redis: &RedisConn,
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
        mine.sort_by_key(|(_, v)| (v.view_number, v.viewed_at));
        // A live session's newest view waits for its next view or its beacon. In a step that
        // did not reach the buffer's end, the step's newest waits for the next step (which reads
        // it again), so the session's newest is never written early.
        let newest = if reconcile {
            None
        } else {
            mine.pop().map(|(_, v)| v)
        };
        if mine.is_empty() {
            break;
        }
        if !has_row {
            has_row = entity::anonymous_session::Entity::find_by_id(session_id)
                .one(db)
                .await?
                .is_some();
        }
        if !has_row {
            let first = doc.or_else(|| mine.iter().find_map(|(_, v)| v.session.as_deref()));
            if let Some(first) = first {
                sessions.upsert(Box::new(first.clone())).await?;
                has_row = true;
            }
        }
        let views: Vec<&BufferedView> = mine.iter().map(|(_, v)| v).collect();
        let beacon_keys: Vec<String> = views
            .iter()
            .filter_map(|v| v.view_id.as_ref().map(beacon_key))
            .collect();
        let beacons = read_beacons(redis, &views, &beacon_keys).await?;
        if has_row {
            inserted += insert_views(db, &views, &beacons, newest.as_ref()).await?;
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
        if !beacon_keys.is_empty() {
            let _: i64 = redis.clone().del(&beacon_keys).await?;
        }
        if scanned_all {
            break;
        }
    }
    Ok(inserted)
}

/// Each view's beacon, if its page sent one (one MGET for the views that carry an id).
async fn read_beacons(
    redis: &RedisConn,
    views: &[&BufferedView],
    keys: &[String],
) -> Result<Vec<Option<Beacon>>, StoreError> {
    let mut out = vec![None; views.len()];
    if keys.is_empty() {
        return Ok(out);
    }
    let raw: Vec<Option<String>> = redis.clone().mget(keys).await?;
    let mut raw = raw.into_iter();
    for (slot, v) in out.iter_mut().zip(views) {
        if v.view_id.is_some() {
            *slot = raw.next().flatten().as_deref().and_then(Beacon::from_redis);
        }
    }
    Ok(out)
}

/// Insert the views (sorted by view number), one row each: scroll depth and time on page from
/// the view's beacon, else time on page up to the next view (`newest`, still buffered, for the
/// last one).
async fn insert_views(
    db: &Db,
    views: &[&BufferedView],
    beacons: &[Option<Beacon>],
    newest: Option<&BufferedView>,
) -> Result<u64, StoreError> {
    const COLUMNS: usize = 9;
    let mut sql = String::from(
        "INSERT INTO analytics_anonymouspageview (session_id, url, url_name, page_type, viewed_at, \
         time_on_page_seconds, referrer, view_number, scroll_depth_percent) VALUES ",
    );
    let mut values: Vec<Value> = Vec::with_capacity(views.len() * COLUMNS);
    for (i, v) in views.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&domain::sql::row_placeholders(i, COLUMNS));
        let beacon = beacons.get(i).copied().flatten();
        let next = views.get(i + 1).copied().or(newest);
        let on_page = beacon.map(|b| b.seconds).or_else(|| {
            next.map(|next| {
                (next.viewed_at - v.viewed_at)
                    .num_seconds()
                    .clamp(0, i64::from(i32::MAX)) as i32
            })
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
            beacon.map(|b| b.scroll_depth_percent).into(),
        ]);
    }
    sql.push_str(" ON CONFLICT (session_id, view_number) DO NOTHING");
    Ok(domain::sql::execute(db, &sql, values).await?)
}
