//! `analytics_anonymoussession`: an anonymous visitor's browsing session (kept 90 days).
//!
//! Written in SeaORM's expanded form because `ip_address` needs the [`crate::inet`] casts.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// The entity (`analytics_anonymoussession`).
#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "analytics_anonymoussession"
    }
}

/// An anonymous session row, persisted from `anon_session:{fingerprint}` in Redis.
#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel, Serialize, Deserialize)]
pub struct Model {
    /// The Redis `session_id`.
    pub id: Uuid,
    /// Device fingerprint (indexed).
    pub device_fingerprint: String,
    /// First view (indexed).
    pub session_start: DateTimeUtc,
    /// Set when the session is finalized.
    pub session_end: Option<DateTimeUtc>,
    /// Last view seen.
    pub last_activity: DateTimeUtc,
    /// Client IP address (`inet`), when known.
    pub ip_address: Option<String>,
    /// Raw `User-Agent` header, or empty.
    pub user_agent: String,
    /// `mobile`, `tablet`, `desktop`, ... or empty.
    pub device_type: String,
    /// Browser family, or empty.
    pub browser: String,
    /// Operating system family, or empty.
    pub os: String,
    /// Pages viewed; never goes backwards.
    pub pages_visited: i32,
    /// Session length, set when finalized.
    pub duration_seconds: Option<i32>,
    /// First page of the session.
    pub landing_page: String,
    /// Referrer of the first page, or empty.
    pub referrer: String,
    /// The user this visitor became on sign-up (`accounts_userprofile.id`, set null on delete).
    pub converted_to_user_id: Option<Uuid>,
    /// When the visitor signed up.
    pub converted_at: Option<DateTimeUtc>,
    /// False once finalized.
    pub is_active: bool,
    /// Whether the user agent looked like a bot.
    pub is_bot: bool,
    /// City, region and country of the address, when a GeoIP database is configured (`{}`
    /// otherwise); never coordinates.
    pub location_data: Json,
}

/// Columns of `analytics_anonymoussession`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    DeviceFingerprint,
    SessionStart,
    SessionEnd,
    LastActivity,
    IpAddress,
    UserAgent,
    DeviceType,
    Browser,
    Os,
    PagesVisited,
    DurationSeconds,
    LandingPage,
    Referrer,
    ConvertedToUserId,
    ConvertedAt,
    IsActive,
    IsBot,
    LocationData,
}

/// Primary key of `analytics_anonymoussession`.
#[derive(Copy, Clone, Debug, EnumIter, DerivePrimaryKey)]
pub enum PrimaryKey {
    Id,
}

impl PrimaryKeyTrait for PrimaryKey {
    type ValueType = Uuid;

    fn auto_increment() -> bool {
        false
    }
}

impl ColumnTrait for Column {
    type EntityName = Entity;

    fn def(&self) -> ColumnDef {
        match self {
            Self::Id => ColumnType::Uuid.def(),
            Self::DeviceFingerprint => ColumnType::String(StringLen::None).def().indexed(),
            Self::SessionStart => ColumnType::TimestampWithTimeZone.def().indexed(),
            Self::LastActivity => ColumnType::TimestampWithTimeZone.def(),
            Self::SessionEnd | Self::ConvertedAt => {
                ColumnType::TimestampWithTimeZone.def().nullable()
            }
            Self::IpAddress => crate::inet::def(),
            Self::UserAgent | Self::LandingPage | Self::Referrer => ColumnType::Text.def(),
            Self::DeviceType | Self::Browser | Self::Os => {
                ColumnType::String(StringLen::None).def()
            }
            Self::PagesVisited => ColumnType::Integer.def(),
            Self::DurationSeconds => ColumnType::Integer.def().nullable(),
            Self::ConvertedToUserId => ColumnType::Uuid.def().nullable().indexed(),
            Self::IsActive | Self::IsBot => ColumnType::Boolean.def(),
            Self::LocationData => ColumnType::JsonBinary.def(),
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

/// Relations of an anonymous session.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The pages viewed in this session.
    #[sea_orm(has_many = "super::anonymous_page_view::Entity")]
    AnonymousPageView,
    /// The user the visitor converted into, if any.
    #[sea_orm(
        belongs_to = "super::user_profile::Entity",
        from = "Column::ConvertedToUserId",
        to = "super::user_profile::Column::Id",
        on_delete = "SetNull"
    )]
    ConvertedToUser,
}

impl Related<super::anonymous_page_view::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AnonymousPageView.def()
    }
}

impl Related<super::user_profile::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ConvertedToUser.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
