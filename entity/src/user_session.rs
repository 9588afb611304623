//! `accounts_usersession`: a signed-in user's login session (owned by Django in production).
//!
//! Written in SeaORM's expanded form because `ip_address` needs the [`crate::inet`] casts.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// The entity (`accounts_usersession`).
#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
pub struct Entity;

impl EntityName for Entity {
    fn table_name(&self) -> &'static str {
        "accounts_usersession"
    }
}

/// A login session row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel, Serialize, Deserialize)]
pub struct Model {
    /// Identity key.
    pub id: i64,
    /// The user (`accounts_userprofile.id`), cascade on delete.
    pub user_id: Uuid,
    /// Hashed session id, unique; the `session:{session_id}` Redis key uses it.
    pub session_id: String,
    /// Client IP address (`inet`), when known.
    pub ip_address: Option<String>,
    /// Raw `User-Agent` header, or empty.
    pub user_agent: String,
    /// Parsed device, browser and OS (filled by `enhance_session_async`).
    pub device_info: Json,
    /// GeoIP location, when a database is configured.
    pub location_data: Json,
    /// Full device fingerprint (indexed).
    pub device_fingerprint: String,
    /// Cheap fingerprint computed per request.
    pub fast_fingerprint: String,
    /// "Remember me": 30-day instead of 4-hour expiry.
    pub persistent: bool,
    /// Pages viewed during the session.
    pub pages_visited: i32,
    /// Login time.
    pub started_at: DateTimeUtc,
    /// Last request seen.
    pub last_activity: DateTimeUtc,
    /// Logout time, while the session is open `None`.
    pub ended_at: Option<DateTimeUtc>,
    /// When the session expires.
    pub expires_at: DateTimeUtc,
    /// False once the user logged out or the session expired.
    pub is_active: bool,
}

/// Columns of `accounts_usersession`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
pub enum Column {
    Id,
    UserId,
    SessionId,
    IpAddress,
    UserAgent,
    DeviceInfo,
    LocationData,
    DeviceFingerprint,
    FastFingerprint,
    Persistent,
    PagesVisited,
    StartedAt,
    LastActivity,
    EndedAt,
    ExpiresAt,
    IsActive,
}

/// Primary key of `accounts_usersession`.
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
            Self::SessionId => ColumnType::String(StringLen::None).def().unique(),
            Self::IpAddress => crate::inet::def(),
            Self::UserAgent => ColumnType::Text.def(),
            Self::DeviceInfo | Self::LocationData => ColumnType::JsonBinary.def(),
            Self::DeviceFingerprint => ColumnType::String(StringLen::None).def().indexed(),
            Self::FastFingerprint => ColumnType::String(StringLen::None).def(),
            Self::Persistent | Self::IsActive => ColumnType::Boolean.def(),
            Self::PagesVisited => ColumnType::Integer.def(),
            Self::StartedAt | Self::LastActivity | Self::ExpiresAt => {
                ColumnType::TimestampWithTimeZone.def()
            }
            Self::EndedAt => ColumnType::TimestampWithTimeZone.def().nullable(),
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

/// Relations of a login session.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The user who logged in.
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
