//! `communities_community`: a community page whose visitors are counted (owned by Django).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A community row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "communities_community")]
pub struct Model {
    /// Django's UUID primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Unique URL slug, e.g. `montreal`.
    #[sea_orm(unique)]
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The division the community belongs to, when known.
    pub division_id: Option<Uuid>,
}

/// A community has no relations the fleet uses.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
