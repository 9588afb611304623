//! `analytics_pageanalytics`: daily view counts per URL path, recomputed by a job.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One day's numbers for one URL path; `(date, url_path)` is unique.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "analytics_pageanalytics")]
pub struct Model {
    /// Identity key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The UTC day counted.
    pub date: Date,
    /// The path counted (no query string).
    #[sea_orm(column_type = "Text")]
    pub url_path: String,
    /// Page kind, e.g. `community`.
    pub page_type: String,
    /// All non-bot views.
    pub total_views: i64,
    /// Views by anonymous visitors.
    pub anonymous_views: i64,
    /// Views by signed-in users.
    pub authenticated_views: i64,
    /// Distinct visitors (fingerprints or user ids).
    pub unique_visitors: i64,
}

/// Page analytics rows stand alone.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
