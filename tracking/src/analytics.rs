//! The seed's analytics use cases 2–4 as its Python asks them: conversions by `converted_at`, each
//! listed; top pages by path and page type; durations of the sessions that ended in the period.
//! Bots are left out.

use chrono::{DateTime, NaiveDate, Utc};
use domain::sql::statement;
use sea_orm::{DatabaseBackend, FromQueryResult, Value};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Tracker;
use crate::validate::{TrackError, invalid};

/// A period: the last `days` days (default 30, at most 3650).
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Period {
    /// How many days back from now (1 to 3650).
    #[serde(default = "thirty")]
    #[param(minimum = 1, maximum = 3650)]
    pub days: u32,
    /// How many rows in top lists (1 to 100).
    #[serde(default = "ten")]
    #[param(minimum = 1, maximum = 100)]
    pub limit: u32,
}

fn thirty() -> u32 {
    30
}
fn ten() -> u32 {
    10
}

impl Period {
    fn check(&self) -> Result<(DateTime<Utc>, u64), TrackError> {
        if self.days == 0 || self.days > 3650 {
            return Err(invalid("days", "must be between 1 and 3650"));
        }
        if self.limit == 0 || self.limit > 100 {
            return Err(invalid("limit", "must be between 1 and 100"));
        }
        Ok((
            Utc::now() - chrono::Duration::days(i64::from(self.days)),
            u64::from(self.limit),
        ))
    }
}

/// A labelled count.
#[derive(Debug, Clone, Serialize, FromQueryResult, PartialEq, ToSchema)]
pub struct Ranked {
    /// The landing page, referrer or path.
    pub key: String,
    /// How many.
    pub count: i64,
}

/// Use case 2: which anonymous visitors sign up.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conversions {
    /// Period length in days.
    pub days: u32,
    /// Anonymous sessions started in the period (bots excluded).
    pub anonymous_sessions: i64,
    /// Sessions converted to a user in the period (`converted_at`, as the seed filters).
    pub conversions: i64,
    /// conversions / anonymous_sessions, in percent.
    pub conversion_rate: f64,
    /// Mean pages viewed before signing up, over the period's conversions (the seed's
    /// `aggregate(Avg('pages_visited'))`).
    pub average_pages_before_signup: f64,
    /// The period's conversions, newest first (at most `limit`): what the seed's loop prints.
    pub list: Vec<Conversion>,
    /// Landing pages of converted sessions.
    pub top_landing_pages: Vec<Ranked>,
    /// Referrers of converted sessions.
    pub top_referrers: Vec<Ranked>,
}

/// One conversion, as the seed's use case 2 prints it.
#[derive(Debug, Clone, Serialize, FromQueryResult, PartialEq, ToSchema)]
pub struct Conversion {
    /// The new user (`converted_to_user`).
    pub user_id: uuid::Uuid,
    /// The user's name (`converted_to_user.user.username`), when the database has it.
    pub username: Option<String>,
    /// When the visitor signed up.
    pub converted_at: DateTime<Utc>,
    /// Pages viewed anonymously.
    pub pages_visited: i32,
    /// The anonymous session's length, seconds (once it ended).
    pub duration_seconds: Option<i32>,
    /// Where the visitor landed.
    pub landing_page: String,
    /// Where the visitor came from.
    pub referrer: String,
}

/// Use case 3: the most viewed pages.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopPages {
    /// First day counted.
    pub from: NaiveDate,
    /// The pages.
    pub pages: Vec<PageRow>,
}

/// One page's totals over a period (the seed groups by path and page type).
#[derive(Debug, Clone, Serialize, FromQueryResult, PartialEq, ToSchema)]
pub struct PageRow {
    /// The path.
    pub url_path: String,
    /// Its page type.
    pub page_type: String,
    /// All views.
    pub total_views: i64,
    /// Anonymous views.
    pub anonymous_views: i64,
    /// Signed-in views.
    pub authenticated_views: i64,
    /// Sum of daily unique visitors.
    pub unique_visitors: i64,
}

/// Use case 4: how long sessions last, over the sessions that ended in the period (the seed's
/// `is_ended=True, ended_at__gte=…` and `is_active=False, session_end__gte=…`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionDurations {
    /// Period length in days.
    pub days: u32,
    /// Mean length of signed-in sessions that ended in the period, seconds.
    pub authenticated_average_seconds: f64,
    /// How many were averaged.
    pub authenticated_sessions: i64,
    /// Mean length of anonymous sessions that ended in the period (bots excluded), seconds.
    pub anonymous_average_seconds: f64,
    /// How many were averaged.
    pub anonymous_sessions: i64,
}

#[derive(FromQueryResult)]
struct Pair {
    n: i64,
    avg: Option<f64>,
}

impl Tracker {
    async fn one<T: FromQueryResult>(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Option<T>, TrackError> {
        let stmt = statement(self.db.get_database_backend(), sql, values);
        Ok(T::find_by_statement(stmt).one(&self.db).await?)
    }

    async fn all<T: FromQueryResult>(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Vec<T>, TrackError> {
        let stmt = statement(self.db.get_database_backend(), sql, values);
        Ok(T::find_by_statement(stmt).all(&self.db).await?)
    }

    /// Use case 2: conversions whose `converted_at` is in the period.
    pub async fn conversions(&self, p: Period) -> Result<Conversions, TrackError> {
        let (since, limit) = p.check()?;
        let started: Option<Pair> = self
            .one(
                "SELECT COUNT(*) AS n, NULL AS avg FROM analytics_anonymoussession \
                 WHERE session_start >= $1 AND NOT is_bot",
                vec![since.into()],
            )
            .await?;
        let converted: Option<Pair> = self
            .one(
                "SELECT COUNT(*) AS n, CAST(AVG(pages_visited) AS DOUBLE PRECISION) AS avg \
                 FROM analytics_anonymoussession \
                 WHERE converted_to_user_id IS NOT NULL AND converted_at >= $1 AND NOT is_bot",
                vec![since.into()],
            )
            .await?;
        let ranked = |col: &str| {
            format!(
                "SELECT {col} AS key, COUNT(*) AS count FROM analytics_anonymoussession \
                 WHERE converted_to_user_id IS NOT NULL AND converted_at >= $1 AND NOT is_bot AND {col} <> '' \
                 GROUP BY {col} ORDER BY count DESC, key LIMIT $2"
            )
        };
        let top_landing_pages = self
            .all(
                &ranked("landing_page"),
                vec![since.into(), (limit as i64).into()],
            )
            .await?;
        let top_referrers = self
            .all(
                &ranked("referrer"),
                vec![since.into(), (limit as i64).into()],
            )
            .await?;
        let (join, username) = match self.shape.get(&self.db).await?.profile_name {
            domain::schema::ProfileName::Own => (
                "LEFT JOIN accounts_userprofile p ON p.id = s.converted_to_user_id",
                "p.username",
            ),
            domain::schema::ProfileName::AuthUser => (
                "LEFT JOIN accounts_userprofile p ON p.id = s.converted_to_user_id \
                 LEFT JOIN auth_user u ON u.id = p.user_id",
                "u.username",
            ),
            domain::schema::ProfileName::Unknown => ("", "NULL"),
        };
        let list = self
            .all(
                &format!(
                    "SELECT s.converted_to_user_id AS user_id, {username} AS username, \
                     s.converted_at AS converted_at, s.pages_visited AS pages_visited, \
                     s.duration_seconds AS duration_seconds, s.landing_page AS landing_page, \
                     s.referrer AS referrer FROM analytics_anonymoussession s {join} \
                     WHERE s.converted_to_user_id IS NOT NULL AND s.converted_at >= $1 AND NOT s.is_bot \
                     ORDER BY s.converted_at DESC, s.id LIMIT $2"
                ),
                vec![since.into(), (limit as i64).into()],
            )
            .await?;
        let total = started.map_or(0, |t| t.n);
        let conversions = converted.as_ref().map_or(0, |c| c.n);
        Ok(Conversions {
            days: p.days,
            anonymous_sessions: total,
            conversions,
            conversion_rate: if total == 0 {
                0.0
            } else {
                (conversions as f64 * 1000.0 / total as f64).round() / 10.0
            },
            average_pages_before_signup: converted.and_then(|c| c.avg).unwrap_or(0.0),
            list,
            top_landing_pages,
            top_referrers,
        })
    }

    /// Use case 3 (from `analytics_pageanalytics`, which the aggregate job keeps; bots never counted).
    pub async fn top_pages(&self, p: Period) -> Result<TopPages, TrackError> {
        let (since, limit) = p.check()?;
        let from = since.date_naive();
        let pages = self
            .all(
                "SELECT url_path, page_type, CAST(SUM(total_views) AS BIGINT) AS total_views, \
                 CAST(SUM(anonymous_views) AS BIGINT) AS anonymous_views, \
                 CAST(SUM(authenticated_views) AS BIGINT) AS authenticated_views, \
                 CAST(SUM(unique_visitors) AS BIGINT) AS unique_visitors \
                 FROM analytics_pageanalytics WHERE date >= $1 GROUP BY url_path, page_type \
                 ORDER BY total_views DESC, url_path, page_type LIMIT $2",
                vec![from.into(), (limit as i64).into()],
            )
            .await?;
        Ok(TopPages { from, pages })
    }

    /// Use case 4.
    pub async fn session_durations(&self, p: Period) -> Result<SessionDurations, TrackError> {
        let (since, _) = p.check()?;
        let auth_len = match self.db.get_database_backend() {
            DatabaseBackend::Postgres => "EXTRACT(EPOCH FROM (ended_at - started_at))",
            _ => "(julianday(ended_at) - julianday(started_at)) * 86400",
        };
        let auth: Option<Pair> = self
            .one(
                &format!(
                    "SELECT COUNT(*) AS n, CAST(AVG({auth_len}) AS DOUBLE PRECISION) AS avg FROM accounts_usersession \
                     WHERE ended_at IS NOT NULL AND ended_at >= $1"
                ),
                vec![since.into()],
            )
            .await?;
        let anon: Option<Pair> = self
            .one(
                "SELECT COUNT(*) AS n, CAST(AVG(duration_seconds) AS DOUBLE PRECISION) AS avg FROM analytics_anonymoussession \
                 WHERE NOT is_active AND session_end >= $1 AND duration_seconds IS NOT NULL AND NOT is_bot",
                vec![since.into()],
            )
            .await?;
        let round = |x: Option<f64>| (x.unwrap_or(0.0) * 10.0).round() / 10.0;
        Ok(SessionDurations {
            days: p.days,
            authenticated_average_seconds: round(auth.as_ref().and_then(|a| a.avg)),
            authenticated_sessions: auth.map_or(0, |a| a.n),
            anonymous_average_seconds: round(anon.as_ref().and_then(|a| a.avg)),
            anonymous_sessions: anon.map_or(0, |a| a.n),
        })
    }
}
