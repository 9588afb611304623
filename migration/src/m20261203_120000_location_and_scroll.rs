//! Seed fidelity (issue 16): an anonymous session's city-level location (`location_data`, as the
//! signed-in sessions have), and how far down each anonymous page view was scrolled
//! (`scroll_depth_percent`, from the page's beacon).

use sea_orm_migration::prelude::*;

use crate::ddl::json_object;

/// See the module documentation.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
#[expect(
    elided_lifetimes_in_paths,
    reason = "async_trait needs the trait's exact signature, `&SchemaManager`"
)]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .alter_table(
                Table::alter()
                    .table(Session::Table)
                    .add_column(json_object(backend, Session::LocationData))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(PageView::Table)
                    .add_column(
                        ColumnDef::new(PageView::ScrollDepthPercent)
                            .small_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PageView::Table)
                    .drop_column(PageView::ScrollDepthPercent)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Session::Table)
                    .drop_column(Session::LocationData)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Session {
    #[sea_orm(iden = "analytics_anonymoussession")]
    Table,
    LocationData,
}

#[derive(DeriveIden)]
enum PageView {
    #[sea_orm(iden = "analytics_anonymouspageview")]
    Table,
    ScrollDepthPercent,
}
