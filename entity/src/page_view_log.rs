//! `analytics_pageviewlog`: page views imported from elsewhere (the seed's Django log). Celeriac
//! never writes it: `aggregate_page_analytics` reads it only for a day that has no Redis counters,
//! and cleanup and erasure delete from it.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A single tracked page view, anonymous or authenticated.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "analytics_pageviewlog")]
pub struct Model {
    /// Identity key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// When the view happened (indexed).
    #[sea_orm(indexed)]
    pub viewed_at: DateTimeUtc,
    /// The path viewed (no query string).
    #[sea_orm(column_type = "Text")]
    pub url_path: String,
    /// Page kind, e.g. `community`.
    pub page_type: String,
    /// Who viewed it: the device fingerprint, or the user id when signed in.
    pub visitor_key: String,
    /// Whether the viewer was signed in.
    pub is_authenticated: bool,
    /// Whether the user agent looked like a bot (left out of analytics).
    pub is_bot: bool,
}

/// Page view log rows stand alone.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
