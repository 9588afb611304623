//! `aggregate_page_analytics`: recompute a day's PageAnalytics rows from the page-view counters,
//! the page-view log, or (Celery-only mode) the day's anonymous sessions; bots left out.

use chrono::{NaiveDate, Utc};
use redis::AsyncCommands;
use sea_orm::ConnectionTrait;

use super::{Job, JobError};
use crate::context::JobContext;
use domain::jobs::AggregatePageAnalytics;

impl Job for AggregatePageAnalytics {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let days = match self.date {
            Some(d) => vec![d],
            None => {
                let today = Utc::now().date_naive();
                vec![today - chrono::Days::new(1), today]
            }
        };
        for day in days {
            let pages = aggregate_day(ctx, day).await?;
            tracing::info!(%day, pages, "page analytics recomputed");
        }
        Ok(())
    }
}

/// Replace the rows of `day` with counts recomputed from the tracking counters in Redis (kept
/// three days, exact), or, when Redis has none for that day, from `analytics_pageviewlog` (an
/// import source), or, for today and yesterday when neither has anything, from the anonymous
/// sessions (Celery-only mode). A day with none of these keeps the rows it has. Returns the pages
/// written.
pub async fn aggregate_day(ctx: &JobContext, day: NaiveDate) -> Result<u64, JobError> {
    let paths: Vec<String> = ctx
        .redis
        .clone()
        .smembers(domain::keys::pageview_paths_key(day))
        .await?;
    if paths.is_empty() {
        let from_log = aggregate_day_from_log(ctx, day).await?;
        if from_log > 0 {
            return Ok(from_log);
        }
        // No page-view counters and no log: the site sends only Celery tasks (its own middleware
        // keeps the sessions). The seed's Phase 3 then aggregates from the sessions, for the days
        // those are still arriving; an older day keeps the rows it has.
        let recent = Utc::now().date_naive() - chrono::Days::new(1);
        if day >= recent {
            return aggregate_day_from_sessions(ctx, day).await;
        }
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for path in &paths {
        pipe.hgetall(domain::keys::pageview_counters_key(day, path))
            .scard(domain::keys::pageview_visitors_key(day, path))
            .pfcount(domain::keys::pageview_sketch_key(day, path));
    }
    let replies: Vec<redis::Value> = pipe.query_async(&mut ctx.redis.clone()).await?;
    let mut rows = Vec::with_capacity(paths.len());
    for (path, triple) in paths.iter().zip(replies.chunks(3)) {
        let [counters, exact, sketched] = triple else {
            continue;
        };
        let counters: std::collections::HashMap<String, String> =
            redis::from_redis_value_ref(counters).map_err(|e| JobError::Retry(e.into()))?;
        // Exact visitors up to the cap, a HyperLogLog estimate of the rest.
        let unique: i64 = redis::from_redis_value_ref::<i64>(exact)
            .and_then(|e| Ok(e + redis::from_redis_value_ref::<i64>(sketched)?))
            .map_err(|e| JobError::Retry(e.into()))?;
        let n = |k: &str| {
            counters
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        rows.push((
            path.clone(),
            counters.get("page_type").cloned().unwrap_or_default(),
            // Page views count per kind only; `total` is their sum (older counters held it too).
            n("anonymous") + n("authenticated"),
            n("anonymous"),
            n("authenticated"),
            unique,
        ));
    }
    let mut written = 0;
    for chunk in rows.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO analytics_pageanalytics (date, url_path, page_type, total_views, anonymous_views, \
             authenticated_views, unique_visitors) VALUES ",
        );
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 7);
        for (i, (path, page_type, total, anon, auth, unique)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&domain::sql::row_placeholders(i, 7));
            values.extend([
                day.into(),
                path.clone().into(),
                page_type.clone().into(),
                (*total).into(),
                (*anon).into(),
                (*auth).into(),
                (*unique).into(),
            ]);
        }
        sql.push_str(
            " ON CONFLICT (date, url_path) DO UPDATE SET page_type = excluded.page_type, \
             total_views = excluded.total_views, anonymous_views = excluded.anonymous_views, \
             authenticated_views = excluded.authenticated_views, unique_visitors = excluded.unique_visitors",
        );
        written += ctx.execute(&sql, values).await?;
    }
    Ok(written)
}

/// Recompute `day` from `analytics_pageviewlog`; a day the log has nothing of is left alone (0).
async fn aggregate_day_from_log(ctx: &JobContext, day: NaiveDate) -> Result<u64, JobError> {
    let start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = start + chrono::Duration::days(1);
    let logged = ctx
        .db
        .query_one_raw(domain::sql::statement(
            ctx.backend(),
            "SELECT 1 AS one FROM analytics_pageviewlog WHERE viewed_at >= $1 AND viewed_at < $2 LIMIT 1",
            vec![start.into(), end.into()],
        ))
        .await?;
    if logged.is_none() {
        return Ok(0);
    }
    ctx.execute(
        "DELETE FROM analytics_pageanalytics WHERE date = $1 AND url_path NOT IN \
         (SELECT url_path FROM analytics_pageviewlog WHERE viewed_at >= $2 AND viewed_at < $3 AND NOT is_bot)",
        vec![day.into(), start.into(), end.into()],
    )
    .await?;
    let written = ctx
        .execute(
            "INSERT INTO analytics_pageanalytics (date, url_path, page_type, total_views, anonymous_views, \
             authenticated_views, unique_visitors) \
             SELECT $1, url_path, MAX(page_type), COUNT(*), \
             SUM(CASE WHEN is_authenticated THEN 0 ELSE 1 END), SUM(CASE WHEN is_authenticated THEN 1 ELSE 0 END), \
             COUNT(DISTINCT visitor_key) FROM analytics_pageviewlog \
             WHERE viewed_at >= $2 AND viewed_at < $3 AND NOT is_bot GROUP BY url_path \
             ON CONFLICT (date, url_path) DO UPDATE SET page_type = excluded.page_type, \
             total_views = excluded.total_views, anonymous_views = excluded.anonymous_views, \
             authenticated_views = excluded.authenticated_views, unique_visitors = excluded.unique_visitors",
            vec![day.into(), start.into(), end.into()],
        )
        .await?;
    Ok(written)
}

/// The page type of rows made from sessions: each is a count of landing views.
pub const LANDING: &str = "(landing)";

/// Recompute `day` from the anonymous sessions that started on it (Celery-only mode, where no
/// page view reaches the fleet): each session is one view of its landing page (the path, without
/// query or fragment), by an anonymous visitor, in a row of page type `(landing)`; bots left out.
/// A day without sessions, or with rows from the counters or the log, keeps its rows (0).
pub async fn aggregate_day_from_sessions(
    ctx: &JobContext,
    day: NaiveDate,
) -> Result<u64, JobError> {
    let start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = start + chrono::Duration::days(1);
    // Rows from counters or the log (any other page type) are never replaced by these: a day
    // whose Redis counters were lost keeps its exact rows.
    let exact = ctx
        .db
        .query_one_raw(domain::sql::statement(
            ctx.backend(),
            "SELECT 1 AS one FROM analytics_pageanalytics WHERE date = $1 AND page_type <> $2 LIMIT 1",
            vec![day.into(), LANDING.into()],
        ))
        .await?;
    if exact.is_some() {
        return Ok(0);
    }
    let path = match ctx.backend() {
        sea_orm::DatabaseBackend::Postgres => {
            "split_part(split_part(landing_page, '#', 1), '?', 1)"
        }
        // The fragment first, then the query, as PostgreSQL's: `/a#b?c` and `/a?b#c` are `/a`.
        _ => {
            "CASE WHEN instr(nofrag, '?') > 0 THEN substr(nofrag, 1, instr(nofrag, '?') - 1) ELSE nofrag END"
        }
    };
    let landing = match ctx.backend() {
        sea_orm::DatabaseBackend::Postgres => "landing_page",
        _ => {
            "CASE WHEN instr(landing_page, '#') > 0 THEN substr(landing_page, 1, instr(landing_page, '#') - 1) \
             ELSE landing_page END"
        }
    };
    let sessions = format!(
        "SELECT {path} AS url_path, device_fingerprint FROM \
         (SELECT {landing} AS nofrag, {landing} AS landing_page, device_fingerprint \
          FROM analytics_anonymoussession \
          WHERE session_start >= $2 AND session_start < $3 AND NOT is_bot AND landing_page <> '') AS s"
    );
    let written = ctx
        .execute(
            &format!(
                "INSERT INTO analytics_pageanalytics (date, url_path, page_type, total_views, anonymous_views, \
                 authenticated_views, unique_visitors) \
                 SELECT $1, url_path, $4, COUNT(*), COUNT(*), 0, COUNT(DISTINCT device_fingerprint) \
                 FROM ({sessions}) AS landed GROUP BY url_path \
                 ON CONFLICT (date, url_path) DO UPDATE SET page_type = excluded.page_type, \
                 total_views = excluded.total_views, anonymous_views = excluded.anonymous_views, \
                 authenticated_views = excluded.authenticated_views, unique_visitors = excluded.unique_visitors"
            ),
            vec![day.into(), start.into(), end.into(), LANDING.into()],
        )
        .await?;
    if written > 0 {
        ctx.execute(
            &format!(
                "DELETE FROM analytics_pageanalytics WHERE date = $1 AND url_path NOT IN \
                 (SELECT url_path FROM ({sessions}) AS landed)"
            ),
            vec![day.into(), start.into(), end.into()],
        )
        .await?;
    }
    Ok(written)
}
