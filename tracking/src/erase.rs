//! `DELETE /v1/anonymous/{fingerprint}`: erase every trace of an anonymous visitor, in Redis, in
//! the database and in job payloads (the privacy matrix's right to erasure), for good.
//!
//! Final: in one atomic step the erasure takes the visitor's live document and buffered views out
//! of Redis and marks the visitor erased (`erased:anon:{sha256(fp)}`) as "in progress"; once every
//! row and job is gone it stamps the mark with Redis's time (kept a day). A persist, finalize or
//! link job checks the mark after its own writes (and after a failed attempt): while the erasure
//! runs, or when it finished after the job read the visitor's data, the job deletes the sessions
//! it wrote (`worker::store::undo_if_erased`). A job that reads after the erasure finds nothing.
//! The bound: a job attempt that read before the erasure and commits more than a day later is not
//! undone (an attempt is bounded by the job lease, 15 s by default).
//!
//! Proportional: the work grows with the visitor's own data: its sessions (live document,
//! buffered views, rows), the visitor sets and community hashes its footprint names, and the jobs
//! of its sessions, named by their ids (finalize `<session id>`, persist `<session id>-<n>`).

use std::collections::BTreeMap;

use domain::args::JobArgs as _;
use domain::documents::{AnonSessionDoc, BufferedView};
use domain::jobs::{FinalizeAnonymousSession, PersistAnonymousSession};
use domain::keys::Fingerprint;
use domain::sql::statement;
use redis::AsyncCommands;
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Tracker;
use crate::validate::{self, TrackError};
use domain::keys;

/// What was removed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct Erased {
    /// Redis keys deleted or entries removed.
    pub redis_entries: u64,
    /// Anonymous session rows deleted (their page views go with them).
    pub sessions: u64,
    /// Queued, finished or dead jobs whose payload named the visitor, removed (or, while
    /// running, their stored payload redacted).
    pub jobs: u64,
}

/// How long the erasure mark lives.
const MARK_TTL_SECS: u64 = 86_400;

/// The mark while an erasure runs: later than any read a job can make.
const IN_PROGRESS: i64 = i64::MAX;

/// How long what an erasure took waits for the erasure to end (`keys::anon_erasing_key`).
const TAKEN_TTL_SECS: u64 = 3_600;

/// `KEYS[1]` the erasure mark, `KEYS[2]` anon_sessions:open, `KEYS[3]` anon_session:{fp},
/// `KEYS[4]` its views, `KEYS[5]` what an earlier run took; `ARGV[1]` the fingerprint, `ARGV[2]`
/// the mark's TTL, `ARGV[3]` the in-progress value, `ARGV[4]` how long the taken is kept.
/// Atomically: mark the visitor as being erased, take it off the sweep's list, and take its live
/// document and buffered views out of Redis, returning them (the sessions they name are whose
/// jobs to erase: no view can slip in between the read and the delete). What it took is kept
/// until the erasure ends, so a run sent again (a dropped connection) or an erasure repeated after
/// a cut one still gets the sessions the first run took.
static TAKE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2]) \
         redis.call('ZREM', KEYS[2], ARGV[1]) \
         local doc = redis.call('GET', KEYS[3]) \
         local views = redis.call('LRANGE', KEYS[4], 0, -1) \
         redis.call('DEL', KEYS[3], KEYS[4]) \
         table.insert(views, 1, doc or '') \
         local earlier = redis.call('GET', KEYS[5]) \
         if earlier then \
           local ok, e = pcall(cjson.decode, earlier) \
           if ok and type(e) == 'table' then \
             for i, v in ipairs(e) do \
               if i == 1 and views[1] == '' then views[1] = v elseif i > 1 then views[#views + 1] = v end \
             end \
           end \
         end \
         redis.call('SET', KEYS[5], cjson.encode(views), 'EX', ARGV[4]) \
         return views",
    )
});

/// `KEYS[1]` the erasure mark, `KEYS[2]` what the erasure took; `ARGV[1]` the mark's TTL. Stamps
/// the finished erasure with Redis's time and forgets what it took.
static STAMP: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local t = redis.call('TIME') \
         local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
         redis.call('SET', KEYS[1], now, 'EX', ARGV[1]) \
         redis.call('DEL', KEYS[2]) \
         return now",
    )
});

/// The day of a `pageviews:{date}:paths` key (None for any other key): footprints written by
/// builds before 2026-12 named a day's path set rather than the visitor sets themselves.
fn path_set_day(key: &str) -> Option<chrono::NaiveDate> {
    let day = domain::keys::untagged(key)
        .strip_prefix("pageviews:")?
        .strip_suffix(":paths")?;
    let day = day.parse().ok()?;
    (domain::keys::pageview_paths_key(day) == key).then_some(day)
}

#[derive(FromQueryResult)]
struct SessionRow {
    id: Uuid,
    pages_visited: i32,
}

impl Tracker {
    /// Remove the visitor's live session, buffered views, community presence, analytics visitor
    /// entries, every anonymous session row (page views cascade) and the jobs naming it.
    pub async fn erase_anonymous(&self, fingerprint: &str) -> Result<Erased, TrackError> {
        let fp = validate::fingerprint("fingerprint", fingerprint)?;
        let mut redis = self.redis.clone();
        let taken: Vec<String> = TAKE
            .key(keys::anon_erased_key(&fp))
            .key(keys::anon_open_key(&fp))
            .key(keys::anon_session_key(&fp))
            .key(keys::anon_views_key(&fp))
            .key(keys::anon_erasing_key(&fp))
            .arg(fp.as_str())
            .arg(MARK_TTL_SECS)
            .arg(IN_PROGRESS)
            .arg(TAKEN_TTL_SECS)
            .invoke_async(&mut redis)
            .await?;
        let mut removed = taken.len().saturating_sub(1) as u64;
        // Every session of the visitor, with its page count (which names its persist jobs).
        let mut sessions: BTreeMap<Uuid, i32> = BTreeMap::new();
        let mut note = |id: Uuid, pages: i32| {
            let e = sessions.entry(id).or_insert(0);
            *e = (*e).max(pages);
        };
        if let Some((doc, views)) = taken.split_first() {
            if let Ok(doc) = serde_json::from_str::<AnonSessionDoc>(doc) {
                removed += 1;
                note(doc.session_id, doc.pages_visited);
            }
            for v in views
                .iter()
                .filter_map(|v| serde_json::from_str::<BufferedView>(v).ok())
            {
                note(v.session_id, v.view_number.unwrap_or(0));
            }
        }
        let backend = self.db.get_database_backend();
        let rows = SessionRow::find_by_statement(statement(
            backend,
            "SELECT id, pages_visited FROM analytics_anonymoussession WHERE device_fingerprint = $1",
            vec![fp.as_str().into()],
        ))
        .all(&self.db)
        .await?;
        for r in &rows {
            note(r.id, r.pages_visited);
        }

        removed += self.erase_footprint(&keys::anon_visitor(&fp)).await?;
        let erased = self
            .db
            .execute_raw(statement(
                backend,
                "DELETE FROM analytics_anonymoussession WHERE device_fingerprint = $1",
                vec![fp.as_str().into()],
            ))
            .await?
            .rows_affected();
        self.db
            .execute_raw(statement(
                backend,
                "DELETE FROM analytics_pageviewlog WHERE visitor_key = $1 AND NOT is_authenticated",
                vec![fp.as_str().into()],
            ))
            .await?;
        let jobs = self.erase_jobs(&fp, &sessions).await?;
        let _: i64 = STAMP
            .key(keys::anon_erased_key(&fp))
            .key(keys::anon_erasing_key(&fp))
            .arg(MARK_TTL_SECS)
            .invoke_async(&mut redis)
            .await?;
        tracing::info!(
            redis_entries = removed,
            sessions = erased,
            jobs,
            "anonymous visitor erased"
        );
        Ok(Erased {
            redis_entries: removed,
            sessions: erased,
            jobs,
        })
    }

    /// Take the visitor out of every place its footprint names, then drop the footprint.
    async fn erase_footprint(&self, visitor: &str) -> Result<u64, TrackError> {
        let mut redis = self.redis.clone();
        let footprint = keys::footprint(visitor);
        let places: Vec<String> = redis.smembers(&footprint).await?;
        let mut removed = 0;
        for place in &places {
            removed += self.take_out_of(place, visitor).await?;
        }
        // The footprint goes last: an erasure cut short finds every place again when repeated.
        let () = redis.del(&footprint).await?;
        Ok(removed)
    }

    /// Take `visitor` out of one footprint place (a community's visitor hash and its sets, a
    /// day's visitor set, or an older build's day path set): one pipeline, one slot on a cluster.
    async fn take_out_of(&self, place: &str, visitor: &str) -> Result<u64, TrackError> {
        let mut redis = self.redis.clone();
        let mut pipe = redis::pipe();
        if keys::untagged(place).starts_with("community:") {
            pipe.hdel(place, visitor)
                .srem(format!("{place}:authenticated"), visitor)
                .srem(format!("{place}:anonymous"), visitor)
                .zrem(format!("{place}:seen"), visitor)
                .zrem(format!("{place}:seen:authenticated"), visitor);
        } else if let Some(day) = path_set_day(place) {
            let paths: Vec<String> = redis.smembers(place).await?;
            for path in paths {
                pipe.srem(domain::keys::pageview_visitors_key(day, &path), visitor);
            }
        } else {
            pipe.srem(place, visitor);
        }
        if pipe.is_empty() {
            // A day whose path set has expired: nothing of it is left to take the visitor out of.
            return Ok(0);
        }
        let counts: Vec<u64> = pipe.query_async(&mut redis).await?;
        Ok(counts.iter().sum())
    }

    /// On a Redis Cluster, after a view's later steps ([`crate::split`]): when the visitor was
    /// erased (or is being erased) since the view's first step, at `since_ms` on the visitor's own
    /// node, the erasure may have run before those steps, which then put the visitor back. Take
    /// it out of `places` again and erase the jobs of `session` (`pages` views). Returns whether
    /// there was anything to take back.
    pub(crate) async fn take_back_if_erased(
        &self,
        fp: &Fingerprint,
        since_ms: i64,
        places: &[&str],
        session: Uuid,
        pages: i32,
    ) -> Result<bool, TrackError> {
        let mark: Option<i64> = self.redis.clone().get(keys::anon_erased_key(fp)).await?;
        if mark.is_none_or(|at| at < since_ms) {
            return Ok(false);
        }
        let visitor = keys::anon_visitor(fp);
        for place in places {
            self.take_out_of(place, &visitor).await?;
        }
        self.erase_jobs(fp, &BTreeMap::from([(session, pages)]))
            .await?;
        Ok(true)
    }

    /// The finalize and persist jobs of the visitor's sessions: removed, or redacted while they
    /// run (a running job finds nothing, or undoes what it wrote; see the module doc).
    async fn erase_jobs(
        &self,
        fp: &Fingerprint,
        sessions: &BTreeMap<Uuid, i32>,
    ) -> Result<u64, TrackError> {
        let every = i32::try_from(self.config.persist_every).unwrap_or(i32::MAX);
        // The finalize a view pushed, and the one the idle sweep may have pushed again.
        let finalize: Vec<String> = sessions
            .keys()
            .flat_map(|id| [id.to_string(), format!("{id}-sweep")])
            .collect();
        let persist: Vec<String> = sessions
            .iter()
            .flat_map(|(id, pages)| {
                let n = if every > 0 { pages / every } else { 0 };
                (1..=n).map(move |k| format!("{id}-{}", k * every))
            })
            .collect();
        let redacted = |session_id: Option<Uuid>| {
            let mut v = serde_json::json!({"fingerprint": "[erased]"});
            if let Some(id) = session_id {
                v["session_id"] = id.to_string().into();
            }
            v.to_string()
        };
        let mut n = 0;
        for (job, ids, payload) in [
            (
                FinalizeAnonymousSession::NAME,
                finalize,
                redacted(Some(Uuid::nil())),
            ),
            (PersistAnonymousSession::NAME, persist, redacted(None)),
        ] {
            if ids.is_empty() {
                continue;
            }
            if let Some(queue) = self.queues.get(job) {
                n += queue.erase(&ids, &payload).await.map_err(|e| match e {
                    queue::QueueError::Redis(e) => TrackError::Redis(e),
                    other => TrackError::Redis(redis::RedisError::from((
                        redis::ErrorKind::Parse,
                        "erasing jobs",
                        other.to_string(),
                    ))),
                })?;
            }
        }
        tracing::debug!(fingerprint_len = fp.as_str().len(), jobs = n, "jobs erased");
        Ok(n)
    }
}
