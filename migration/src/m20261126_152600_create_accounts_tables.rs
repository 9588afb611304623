//! Creates the Django-owned `accounts_*` and `communities_*` tables, for standalone use.
//!
//! On a Django database (one with `django_migrations`) Django owns these tables: `up` and `down`
//! leave them alone, so a `down` can never drop Django's data.

use sea_orm_migration::prelude::*;

use crate::ddl::{
    big_identity_pk, create_index, ip_address_null, json_object, string_blank, text_blank,
    timestamptz, timestamptz_null,
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
        if crate::is_django_database(manager).await? {
            tracing::info!("django_migrations exists: leaving the Django-owned tables to Django");
            return Ok(());
        }
        let backend = manager.get_database_backend();

        manager
            .create_table(
                Table::create()
                    .table(AccountsUserprofile::Table)
                    .col(
                        ColumnDef::new(AccountsUserprofile::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AccountsUserprofile::Username)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(AccountsUserprofile::DivisionId)
                            .uuid()
                            .null(),
                    )
                    .col(timestamptz(AccountsUserprofile::DateJoined))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CommunitiesCommunity::Table)
                    .col(
                        ColumnDef::new(CommunitiesCommunity::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(CommunitiesCommunity::Slug)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(CommunitiesCommunity::Name)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CommunitiesCommunity::DivisionId)
                            .uuid()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AccountsUsersession::Table)
                    .col(big_identity_pk(AccountsUsersession::Id))
                    .col(
                        ColumnDef::new(AccountsUsersession::UserId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AccountsUsersession::SessionId)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ip_address_null(backend, AccountsUsersession::IpAddress))
                    .col(text_blank(AccountsUsersession::UserAgent))
                    .col(json_object(backend, AccountsUsersession::DeviceInfo))
                    .col(json_object(backend, AccountsUsersession::LocationData))
                    .col(string_blank(AccountsUsersession::DeviceFingerprint))
                    .col(string_blank(AccountsUsersession::FastFingerprint))
                    .col(
                        ColumnDef::new(AccountsUsersession::Persistent)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(AccountsUsersession::PagesVisited)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(timestamptz(AccountsUsersession::StartedAt))
                    .col(timestamptz(AccountsUsersession::LastActivity))
                    .col(timestamptz_null(AccountsUsersession::EndedAt))
                    .col(timestamptz(AccountsUsersession::ExpiresAt))
                    .col(
                        ColumnDef::new(AccountsUsersession::IsActive)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("accounts_usersession_user_id_fk")
                            .from(AccountsUsersession::Table, AccountsUsersession::UserId)
                            .to(AccountsUserprofile::Table, AccountsUserprofile::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "accounts_usersession_user_id_idx",
            AccountsUsersession::Table,
            [AccountsUsersession::UserId],
        )
        .await?;
        create_index(
            manager,
            "accounts_usersession_device_fingerprint_idx",
            AccountsUsersession::Table,
            [AccountsUsersession::DeviceFingerprint],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(AccountsUserevent::Table)
                    .col(big_identity_pk(AccountsUserevent::Id))
                    .col(ColumnDef::new(AccountsUserevent::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(AccountsUserevent::EventType)
                            .string()
                            .not_null(),
                    )
                    .col(text_blank(AccountsUserevent::Description))
                    .col(json_object(backend, AccountsUserevent::Metadata))
                    .col(ip_address_null(backend, AccountsUserevent::IpAddress))
                    .col(text_blank(AccountsUserevent::UserAgent))
                    .col(timestamptz(AccountsUserevent::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("accounts_userevent_user_id_fk")
                            .from(AccountsUserevent::Table, AccountsUserevent::UserId)
                            .to(AccountsUserprofile::Table, AccountsUserprofile::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "accounts_userevent_user_id_idx",
            AccountsUserevent::Table,
            [AccountsUserevent::UserId],
        )
        .await?;
        create_index(
            manager,
            "accounts_userevent_event_type_idx",
            AccountsUserevent::Table,
            [AccountsUserevent::EventType],
        )
        .await?;
        create_index(
            manager,
            "accounts_userevent_created_at_idx",
            AccountsUserevent::Table,
            [AccountsUserevent::CreatedAt],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if crate::is_django_database(manager).await? {
            tracing::info!("django_migrations exists: leaving the Django-owned tables to Django");
            return Ok(());
        }
        // Dependents first; dropping a table drops its indexes.
        for table in [
            AccountsUserevent::Table.into_iden(),
            AccountsUsersession::Table.into_iden(),
            CommunitiesCommunity::Table.into_iden(),
            AccountsUserprofile::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum AccountsUserprofile {
    Table,
    Id,
    Username,
    DivisionId,
    DateJoined,
}

#[derive(DeriveIden)]
enum CommunitiesCommunity {
    Table,
    Id,
    Slug,
    Name,
    DivisionId,
}

#[derive(DeriveIden)]
enum AccountsUsersession {
    Table,
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

#[derive(DeriveIden)]
enum AccountsUserevent {
    Table,
    Id,
    UserId,
    EventType,
    Description,
    Metadata,
    IpAddress,
    UserAgent,
    CreatedAt,
}
