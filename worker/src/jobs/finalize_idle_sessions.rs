//! `finalize_idle_sessions`: the sweep that finds sessions whose finalize job was lost (dead after
//! a long outage, or never pushed by an older build) and enqueues it again, persisted or not.

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{FinalizeAnonymousSession, Job, JobError};
use crate::context::JobContext;
use crate::store;
use domain::args::JobArgs as _;
use domain::documents::BufferedView;
use domain::jobs::FinalizeIdleSessions;
use domain::keys::{Fingerprint, anon_open_keys, anon_session_key, anon_views_key};
use entity::anonymous_session;

/// Rows or fingerprints examined per step.
const BATCH: u64 = 500;
/// Fingerprints of `anon_sessions:open` examined per run at most (the rest wait for the next).
const OPEN_PER_RUN: usize = 50_000;

/// `KEYS[1]` anon_sessions:open, `KEYS[2]` anon_session:{fp}, `KEYS[3]` its views; `ARGV[1]` the
/// fingerprint. A fingerprint with no live document and no buffered view leaves the set (it has
/// nothing left to finalize); else it moves to the back (score: Redis now) and the document (or
/// '') and the buffer's length are returned.
static CHECK_OPEN: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local doc = redis.call('GET', KEYS[2]) \
         local n = redis.call('LLEN', KEYS[3]) \
         if not doc and n == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) return {'', 0} end \
         local t = redis.call('TIME') \
         redis.call('ZADD', KEYS[1], 'XX', tonumber(t[1]) * 1000, ARGV[1]) \
         return {doc or '', n}",
    )
});

/// The sessions named in `fingerprint`'s buffered views, read a page at a time.
async fn buffered_sessions(
    redis: &mut domain::conn::RedisConn,
    fingerprint: &Fingerprint,
    len: isize,
) -> Result<Vec<Uuid>, JobError> {
    let key = anon_views_key(fingerprint);
    let mut ids = std::collections::BTreeSet::new();
    let mut offset = 0;
    while offset < len {
        let page: Vec<String> =
            redis::AsyncCommands::lrange(redis, &key, offset, offset + 999).await?;
        if page.is_empty() {
            break;
        }
        offset += page.len() as isize;
        ids.extend(
            page.iter()
                .filter_map(|v| serde_json::from_str::<BufferedView>(v).ok())
                .map(|v| v.session_id),
        );
    }
    Ok(ids.into_iter().collect())
}

impl Job for FinalizeIdleSessions {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let from_rows = sweep_rows(ctx).await?;
        let from_buffers = sweep_open(ctx).await?;
        if from_rows + from_buffers > 0 {
            tracing::info!(
                from_rows,
                from_buffers,
                "finalize enqueued for idle anonymous sessions"
            );
        }
        Ok(())
    }
}

/// One finalize per session, named `<session id>-sweep` (so erasure can name it): a sweep that
/// runs while an earlier one's job waits, or is still kept as done or dead, adds none.
async fn enqueue_finalize(
    ctx: &JobContext,
    sessions: Vec<(Fingerprint, Uuid)>,
) -> Result<usize, JobError> {
    let Some(queue) = ctx.queues.get(FinalizeAnonymousSession::NAME) else {
        return Ok(0);
    };
    if sessions.is_empty() {
        return Ok(0);
    }
    let hold = ctx.settings.done_retention.max(ctx.settings.dead_retention)
        + ctx.settings.anon_session_timeout * 2;
    let mut jobs = Vec::with_capacity(sessions.len());
    for (fingerprint, session_id) in sessions {
        let payload = serde_json::to_string(&FinalizeAnonymousSession {
            fingerprint,
            session_id,
        })
        .map_err(anyhow::Error::from)?;
        let mut job =
            queue::NewJob::new(payload).unique(format!("finalize-sweep:{session_id}"), hold);
        job.id = format!("{session_id}-sweep");
        jobs.push(job);
    }
    let pushed = queue.push_many(jobs).await.map_err(anyhow::Error::from)?;
    Ok(pushed.iter().filter(|p| p.created).count())
}

/// Active rows idle past the timeout (by their last activity): their finalize again.
async fn sweep_rows(ctx: &JobContext) -> Result<usize, JobError> {
    let timeout = chrono::Duration::from_std(ctx.settings.anon_session_timeout)
        .map_err(|e| JobError::Permanent(e.to_string()))?;
    let cutoff = Utc::now() - timeout;
    let mut queued = 0;
    let mut after: Option<Uuid> = None;
    loop {
        let mut q = anonymous_session::Entity::find()
            .filter(anonymous_session::Column::IsActive.eq(true))
            .filter(anonymous_session::Column::LastActivity.lt(cutoff))
            .order_by_asc(anonymous_session::Column::Id)
            .limit(BATCH);
        if let Some(id) = after {
            q = q.filter(anonymous_session::Column::Id.gt(id));
        }
        let rows = q.all(&ctx.db).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        let mut sessions = Vec::new();
        for row in &rows {
            let Ok(fp) = Fingerprint::parse(&row.device_fingerprint) else {
                // A row no job could address (written by another producer): end it here.
                store::end_session(&ctx.db, row.id).await?;
                continue;
            };
            // A live document of this session: its finalize is still to come.
            let live = ctx.reads.session(&fp).await?;
            if live.doc.is_some_and(|doc| doc.session_id == row.id) {
                continue;
            }
            sessions.push((fp, row.id));
        }
        queued += enqueue_finalize(ctx, sessions).await?;
        if (rows.len() as u64) < BATCH {
            break;
        }
    }
    Ok(queued)
}

/// `KEYS[1]` an anon_sessions:open; `ARGV[1]` the session timeout ms, `ARGV[2]` how many: the
/// fingerprints whose latest session started more than a timeout ago, on the clock of the node
/// that holds the list (the clock its scores were written on, also on a cluster).
static OLDEST_OPEN: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local t = redis.call('TIME') \
         local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1]) \
         return redis.call('ZRANGE', KEYS[1], '-inf', cutoff, 'BYSCORE', 'LIMIT', 0, ARGV[2])",
    )
});

/// Fingerprints whose latest session started more than a timeout ago: each session with
/// buffered views that is not the live one gets its finalize again (persisted or not). Every
/// open-session list is swept (one on one server, one per visitor shard on a cluster).
async fn sweep_open(ctx: &JobContext) -> Result<usize, JobError> {
    let mut queued = 0;
    let mut examined = 0;
    // Each run starts at another list (by the minute), so a run that spends its budget early
    // never leaves the same shards unswept run after run.
    let mut lists = anon_open_keys();
    let start = usize::try_from(chrono::Utc::now().timestamp() / 60).unwrap_or(0) % lists.len();
    lists.rotate_left(start);
    for open in lists {
        if examined >= OPEN_PER_RUN {
            break;
        }
        let (q, e) = sweep_open_list(ctx, &open, OPEN_PER_RUN - examined).await?;
        queued += q;
        examined += e;
    }
    Ok(queued)
}

/// [`sweep_open`] over one list, examining at most `budget` fingerprints; (queued, examined).
async fn sweep_open_list(
    ctx: &JobContext,
    open: &str,
    budget: usize,
) -> Result<(usize, usize), JobError> {
    let mut redis = ctx.redis.clone();
    let timeout_ms = ctx.settings.anon_session_timeout.as_millis() as i64;
    let mut queued = 0;
    let mut examined = 0;
    while examined < budget {
        let fps: Vec<String> = OLDEST_OPEN
            .key(open)
            .arg(timeout_ms)
            .arg(BATCH)
            .invoke_async(&mut redis)
            .await?;
        if fps.is_empty() {
            break;
        }
        examined += fps.len();
        let mut sessions = Vec::new();
        for raw in &fps {
            let Ok(fp) = Fingerprint::parse(raw) else {
                let _: i64 = redis::cmd("ZREM")
                    .arg(open)
                    .arg(raw)
                    .query_async(&mut redis)
                    .await?;
                continue;
            };
            let (doc, len): (String, isize) = CHECK_OPEN
                .key(open)
                .key(anon_session_key(&fp))
                .key(anon_views_key(&fp))
                .arg(fp.as_str())
                .invoke_async(&mut redis)
                .await?;
            let live = serde_json::from_str::<domain::documents::AnonSessionDoc>(&doc)
                .ok()
                .map(|d| d.session_id);
            let mut ids = buffered_sessions(&mut redis, &fp, len).await?;
            ids.retain(|id| Some(*id) != live);
            sessions.extend(ids.into_iter().map(|id| (fp.clone(), id)));
        }
        queued += enqueue_finalize(ctx, sessions).await?;
        if (fps.len() as u64) < BATCH {
            break;
        }
    }
    Ok((queued, examined))
}
