//! `enhance_session_async`: parse a login's user agent (device, browser, OS, bot) into `device_info`,
//! and place its address (city, region, country) into `location_data` when a GeoIP database is set.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

use super::{Job, JobError};
use crate::context::JobContext;
use crate::geo::GeoIp;
use domain::jobs::EnhanceSessionAsync;
use domain::user_agent::parse_user_agent;
use entity::user_session;

impl Job for EnhanceSessionAsync {
    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        let hashed = self.stored_id();
        let Some(row) = user_session::Entity::find()
            .filter(user_session::Column::SessionId.eq(&hashed))
            .one(&ctx.db)
            .await?
        else {
            tracing::warn!("session row not found; nothing to enhance");
            return Ok(());
        };
        let info = parse_user_agent(&row.user_agent);
        let mut update = user_session::Entity::update_many()
            .col_expr(user_session::Column::DeviceInfo, Expr::value(info));
        // Only a place found replaces what the row holds (a Django site may fill it itself).
        if let Some(place) = GeoIp::place(ctx.geo.as_deref(), row.ip_address.as_deref()) {
            update = update.col_expr(user_session::Column::LocationData, Expr::value(place));
        }
        update
            .filter(user_session::Column::Id.eq(row.id))
            .exec(&ctx.db)
            .await?;
        Ok(())
    }
}
