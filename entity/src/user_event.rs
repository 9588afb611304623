//! `accounts_userevent`: something a signed-in user did (never written for anonymous visitors).
//!
//! Written in SeaORM's expanded form because `ip_address` needs the [`crate::inet`] casts.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// The entity (`accounts_userevent`).
#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "accounts_userevent"
    }
}

/// An event row, e.g. `page_view`, `community_visit`, `account_created`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel, Serialize, Deserialize)]
pub struct Model {
    /// Identity key.
    pub id: i64,
    /// The user (`accounts_userprofile.id`), cascade on delete.
    pub user_id: Uuid,
    /// Event kind (indexed).
    pub event_type: String,
    /// Human-readable summary, or empty.
    pub description: String,
    /// Event details.
    pub metadata: Json,
    /// Client IP address (`inet`), when known.
    pub ip_address: Option<String>,
    /// Raw `User-Agent` header, or empty.
    pub user_agent: String,
    /// When the event happened (indexed).
    pub created_at: DateTimeUtc,
}

/// Columns of `accounts_userevent`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    UserId,
    EventType,
    Description,
    Metadata,
    IpAddress,
    UserAgent,
    CreatedAt,
}

/// Primary key of `accounts_userevent`.
#[derive(Copy, Clone, Debug, EnumIter, DerivePrimaryKey)]
pub enum PrimaryKey {
    Id,
}

impl PrimaryKeyTrait for PrimaryKey {
    type ValueType = i64;

    fn auto_increment() -> bool {
        true
    }
}

impl ColumnTrait for Column {
    type EntityName = Entity;

    fn def(&self) -> ColumnDef {
        match self {
            Self::Id => ColumnType::BigInteger.def(),
            Self::UserId => ColumnType::Uuid.def().indexed(),
            Self::EventType => ColumnType::String(StringLen::None).def().indexed(),
            Self::Description | Self::UserAgent => ColumnType::Text.def(),
            Self::Metadata => ColumnType::JsonBinary.def(),
            Self::IpAddress => crate::inet::def(),
            Self::CreatedAt => ColumnType::TimestampWithTimeZone.def().indexed(),
        }
    }

    fn select_as(&self, expr: Expr) -> Expr {
        match self {
            Self::IpAddress => crate::inet::select_as(expr),
            _ => self.select_enum_as(expr),
        }
    }

    fn save_as(&self, val: Expr) -> Expr {
        match self {
            Self::IpAddress => crate::inet::save_as(val),
            _ => self.save_enum_as(val),
        }
    }
}

/// Relations of an event.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The user the event belongs to.
    #[sea_orm(
        belongs_to = "super::user_profile::Entity",
        from = "Column::UserId",
        to = "super::user_profile::Column::Id",
        on_delete = "Cascade"
    )]
    UserProfile,
}

impl Related<super::user_profile::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UserProfile.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
