//! Numbers each anonymous page view within its session: `(session_id, view_number)` becomes what
//! makes a view's row unique, so two views in the same instant (web tiers send whole seconds) are
//! two rows. Rows written before have no number (NULL, never a conflict).

use sea_orm_migration::prelude::*;

/// See the module documentation.
#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD_INDEX: &str = "analytics_anonymouspageview_session_viewed_uniq";
const NEW_INDEX: &str = "analytics_anonymouspageview_session_number_uniq";
const BY_SESSION: &str = "analytics_anonymouspageview_session_viewed_idx";

#[async_trait::async_trait]
#[expect(
    elided_lifetimes_in_paths,
    reason = "async_trait needs the trait's exact signature, `&SchemaManager`"
)]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PageView::Table)
                    .add_column(ColumnDef::new(PageView::ViewNumber).integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(OLD_INDEX)
                    .table(PageView::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(NEW_INDEX)
                    .table(PageView::Table)
                    .col(PageView::SessionId)
                    .col(PageView::ViewNumber)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Session lookups in time order, as the dropped index served them.
        manager
            .create_index(
                Index::create()
                    .name(BY_SESSION)
                    .table(PageView::Table)
                    .col(PageView::SessionId)
                    .col(PageView::ViewedAt)
                    .to_owned(),
            )
            .await
    }

    /// Back to one row per (session, instant): views that share an instant keep their first row.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DELETE FROM analytics_anonymouspageview WHERE id IN (SELECT b.id FROM \
                 analytics_anonymouspageview a JOIN analytics_anonymouspageview b \
                 ON a.session_id = b.session_id AND a.viewed_at = b.viewed_at AND a.id < b.id)",
            )
            .await?;
        for name in [BY_SESSION, NEW_INDEX] {
            manager
                .drop_index(Index::drop().name(name).table(PageView::Table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(PageView::Table)
                    .drop_column(PageView::ViewNumber)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(OLD_INDEX)
                    .table(PageView::Table)
                    .col(PageView::SessionId)
                    .col(PageView::ViewedAt)
                    .unique()
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum PageView {
    #[sea_orm(iden = "analytics_anonymouspageview")]
    Table,
    SessionId,
    ViewedAt,
    ViewNumber,
}
