//! `analytics_anonymouspageview`: a page viewed during an anonymous session.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A page view of an anonymous session (deleted with its session).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "analytics_anonymouspageview")]
pub struct Model {
    /// Identity key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The session (`analytics_anonymoussession.id`), cascade on delete.
    #[sea_orm(indexed)]
    pub session_id: Uuid,
    /// Full URL or path viewed.
    #[sea_orm(column_type = "Text")]
    pub url: String,
    /// Django URL name, e.g. `community-detail`.
    pub url_name: String,
    /// Page kind, e.g. `community`.
    pub page_type: String,
    /// When the page was viewed (indexed).
    #[sea_orm(indexed)]
    pub viewed_at: DateTimeUtc,
    /// Seconds spent on the page, once known.
    pub time_on_page_seconds: Option<i32>,
    /// Referring URL, or empty.
    #[sea_orm(column_type = "Text")]
    pub referrer: String,
    /// The view's place in its session (1 for the first); unique with `session_id`. Views
    /// written before the column existed have none.
    pub view_number: Option<i32>,
    /// How far down the page the visitor scrolled (0 to 100), from the page's beacon.
    pub scroll_depth_percent: Option<i16>,
}

/// Relations of a page view.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The anonymous session the view belongs to.
    #[sea_orm(
        belongs_to = "super::anonymous_session::Entity",
        from = "Column::SessionId",
        to = "super::anonymous_session::Column::Id",
        on_delete = "Cascade"
    )]
    AnonymousSession,
}

impl Related<super::anonymous_session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AnonymousSession.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
