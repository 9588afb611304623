//! Creates the fleet-owned `analytics_*` tables.

use sea_orm_migration::prelude::*;

use crate::ddl::{
    big_identity_pk, create_index, ip_address_null, string_blank, text_blank, timestamptz,
    timestamptz_null,
};

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
            .create_table(
                Table::create()
                    .table(AnalyticsAnonymoussession::Table)
                    .col(
                        ColumnDef::new(AnalyticsAnonymoussession::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AnalyticsAnonymoussession::DeviceFingerprint)
                            .string()
                            .not_null(),
                    )
                    .col(timestamptz(AnalyticsAnonymoussession::SessionStart))
                    .col(timestamptz_null(AnalyticsAnonymoussession::SessionEnd))
                    .col(timestamptz(AnalyticsAnonymoussession::LastActivity))
                    .col(ip_address_null(
                        backend,
                        AnalyticsAnonymoussession::IpAddress,
                    ))
                    .col(text_blank(AnalyticsAnonymoussession::UserAgent))
                    .col(string_blank(AnalyticsAnonymoussession::DeviceType))
                    .col(string_blank(AnalyticsAnonymoussession::Browser))
                    .col(string_blank(AnalyticsAnonymoussession::Os))
                    .col(
                        ColumnDef::new(AnalyticsAnonymoussession::PagesVisited)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(AnalyticsAnonymoussession::DurationSeconds)
                            .integer()
                            .null(),
                    )
                    .col(text_blank(AnalyticsAnonymoussession::LandingPage))
                    .col(text_blank(AnalyticsAnonymoussession::Referrer))
                    .col(
                        ColumnDef::new(AnalyticsAnonymoussession::ConvertedToUserId)
                            .uuid()
                            .null(),
                    )
                    .col(timestamptz_null(AnalyticsAnonymoussession::ConvertedAt))
                    .col(
                        ColumnDef::new(AnalyticsAnonymoussession::IsActive)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .col(
                        ColumnDef::new(AnalyticsAnonymoussession::IsBot)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("analytics_anonymoussession_converted_to_user_id_fk")
                            .from(
                                AnalyticsAnonymoussession::Table,
                                AnalyticsAnonymoussession::ConvertedToUserId,
                            )
                            .to(AccountsUserprofile::Table, AccountsUserprofile::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "analytics_anonymoussession_device_fingerprint_idx",
            AnalyticsAnonymoussession::Table,
            [AnalyticsAnonymoussession::DeviceFingerprint],
        )
        .await?;
        create_index(
            manager,
            "analytics_anonymoussession_session_start_idx",
            AnalyticsAnonymoussession::Table,
            [AnalyticsAnonymoussession::SessionStart],
        )
        .await?;
        create_index(
            manager,
            "analytics_anonymoussession_converted_to_user_id_idx",
            AnalyticsAnonymoussession::Table,
            [AnalyticsAnonymoussession::ConvertedToUserId],
        )
        .await?;
        // The idle-session sweep: `is_active AND last_activity < cutoff`.
        create_index(
            manager,
            "analytics_anonymoussession_is_active_last_activity_idx",
            AnalyticsAnonymoussession::Table,
            [
                AnalyticsAnonymoussession::IsActive,
                AnalyticsAnonymoussession::LastActivity,
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(AnalyticsAnonymouspageview::Table)
                    .col(big_identity_pk(AnalyticsAnonymouspageview::Id))
                    .col(
                        ColumnDef::new(AnalyticsAnonymouspageview::SessionId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AnalyticsAnonymouspageview::Url)
                            .text()
                            .not_null(),
                    )
                    .col(string_blank(AnalyticsAnonymouspageview::UrlName))
                    .col(string_blank(AnalyticsAnonymouspageview::PageType))
                    .col(timestamptz(AnalyticsAnonymouspageview::ViewedAt))
                    .col(
                        ColumnDef::new(AnalyticsAnonymouspageview::TimeOnPageSeconds)
                            .integer()
                            .null(),
                    )
                    .col(text_blank(AnalyticsAnonymouspageview::Referrer))
                    .foreign_key(
                        ForeignKey::create()
                            .name("analytics_anonymouspageview_session_id_fk")
                            .from(
                                AnalyticsAnonymouspageview::Table,
                                AnalyticsAnonymouspageview::SessionId,
                            )
                            .to(
                                AnalyticsAnonymoussession::Table,
                                AnalyticsAnonymoussession::Id,
                            )
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One row per view: a flush that runs twice inserts nothing new (and it serves
        // session_id lookups, as Django's FK index would).
        manager
            .create_index(
                Index::create()
                    .name("analytics_anonymouspageview_session_viewed_uniq")
                    .table(AnalyticsAnonymouspageview::Table)
                    .col(AnalyticsAnonymouspageview::SessionId)
                    .col(AnalyticsAnonymouspageview::ViewedAt)
                    .unique()
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "analytics_anonymouspageview_viewed_at_idx",
            AnalyticsAnonymouspageview::Table,
            [AnalyticsAnonymouspageview::ViewedAt],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(AnalyticsPageanalytics::Table)
                    .col(big_identity_pk(AnalyticsPageanalytics::Id))
                    .col(
                        ColumnDef::new(AnalyticsPageanalytics::Date)
                            .date()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AnalyticsPageanalytics::UrlPath)
                            .text()
                            .not_null(),
                    )
                    .col(string_blank(AnalyticsPageanalytics::PageType))
                    .col(counter(AnalyticsPageanalytics::TotalViews))
                    .col(counter(AnalyticsPageanalytics::AnonymousViews))
                    .col(counter(AnalyticsPageanalytics::AuthenticatedViews))
                    .col(counter(AnalyticsPageanalytics::UniqueVisitors))
                    .to_owned(),
            )
            .await?;
        // The upsert target of `aggregate_page_analytics`.
        manager
            .create_index(
                Index::create()
                    .name("analytics_pageanalytics_date_url_path_uniq")
                    .table(AnalyticsPageanalytics::Table)
                    .col(AnalyticsPageanalytics::Date)
                    .col(AnalyticsPageanalytics::UrlPath)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AnalyticsPageviewlog::Table)
                    .col(big_identity_pk(AnalyticsPageviewlog::Id))
                    .col(timestamptz(AnalyticsPageviewlog::ViewedAt))
                    .col(
                        ColumnDef::new(AnalyticsPageviewlog::UrlPath)
                            .text()
                            .not_null(),
                    )
                    .col(string_blank(AnalyticsPageviewlog::PageType))
                    .col(
                        ColumnDef::new(AnalyticsPageviewlog::VisitorKey)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AnalyticsPageviewlog::IsAuthenticated)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(AnalyticsPageviewlog::IsBot)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "analytics_pageviewlog_viewed_at_idx",
            AnalyticsPageviewlog::Table,
            [AnalyticsPageviewlog::ViewedAt],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dependents first; dropping a table drops its indexes.
        for table in [
            AnalyticsPageviewlog::Table.into_iden(),
            AnalyticsPageanalytics::Table.into_iden(),
            AnalyticsAnonymouspageview::Table.into_iden(),
            AnalyticsAnonymoussession::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// A non-null `bigint` count starting at 0.
fn counter<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .default(0)
        .take()
}

#[derive(DeriveIden)]
enum AccountsUserprofile {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum AnalyticsAnonymoussession {
    Table,
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
}

#[derive(DeriveIden)]
enum AnalyticsAnonymouspageview {
    Table,
    Id,
    SessionId,
    Url,
    UrlName,
    PageType,
    ViewedAt,
    TimeOnPageSeconds,
    Referrer,
}

#[derive(DeriveIden)]
enum AnalyticsPageanalytics {
    Table,
    Id,
    Date,
    UrlPath,
    PageType,
    TotalViews,
    AnonymousViews,
    AuthenticatedViews,
    UniqueVisitors,
}

#[derive(DeriveIden)]
enum AnalyticsPageviewlog {
    Table,
    Id,
    ViewedAt,
    UrlPath,
    PageType,
    VisitorKey,
    IsAuthenticated,
    IsBot,
}
