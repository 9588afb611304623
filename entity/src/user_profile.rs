//! `accounts_userprofile`: a site user (owned by Django in production).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A user profile row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "accounts_userprofile")]
pub struct Model {
    /// Django's UUID primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Unique login name.
    #[sea_orm(unique)]
    pub username: String,
    /// The user's home division, when known.
    pub division_id: Option<Uuid>,
    /// When the account was created.
    pub date_joined: DateTimeUtc,
}

/// Relations of a user profile.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Login sessions of this user.
    #[sea_orm(has_many = "super::user_session::Entity")]
    UserSession,
    /// Events recorded for this user.
    #[sea_orm(has_many = "super::user_event::Entity")]
    UserEvent,
    /// Anonymous sessions that converted into this user.
    #[sea_orm(has_many = "super::anonymous_session::Entity")]
    AnonymousSession,
}

impl Related<super::user_session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UserSession.def()
    }
}

impl Related<super::user_event::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UserEvent.def()
    }
}

impl Related<super::anonymous_session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AnonymousSession.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
