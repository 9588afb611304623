//! Upserts through SeaORM's `on_conflict`, as the jobs write them, on both backends.

use entity::prelude::*;
use entity::{anonymous_session, page_analytics, user_profile};
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::{Alias, Expr, Func, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set,
    TryInsertResult,
};
use uuid::Uuid;

use crate::support::timestamp;
use testkit::TestDb;

crate::on_both_backends!(
    postgres_page_analytics_upsert_on_date_and_path_replaces_the_numbers,
    sqlite_page_analytics_upsert_on_date_and_path_replaces_the_numbers,
    page_analytics_upsert
);

crate::on_both_backends!(
    postgres_anonymous_session_upsert_never_lowers_pages_visited,
    sqlite_anonymous_session_upsert_never_lowers_pages_visited,
    anonymous_session_upsert
);

crate::on_both_backends!(
    postgres_on_conflict_do_nothing_covers_the_primary_key_only,
    sqlite_on_conflict_do_nothing_covers_the_primary_key_only,
    do_nothing_on_conflict
);

fn analytics_row(total: i64) -> page_analytics::ActiveModel {
    page_analytics::ActiveModel {
        date: Set(timestamp(0).date_naive()),
        url_path: Set("/communities/montreal/".to_owned()),
        page_type: Set("community".to_owned()),
        total_views: Set(total),
        anonymous_views: Set(total - 1),
        authenticated_views: Set(1),
        unique_visitors: Set(total / 2),
        ..Default::default()
    }
}

async fn page_analytics_upsert(test_db: &TestDb) -> Result<(), DbErr> {
    let db = &test_db.conn;
    Migrator::up(db, None).await?;
    use page_analytics::Column;
    let on_date_and_path = OnConflict::columns([Column::Date, Column::UrlPath])
        .update_columns([
            Column::PageType,
            Column::TotalViews,
            Column::AnonymousViews,
            Column::AuthenticatedViews,
            Column::UniqueVisitors,
        ])
        .to_owned();

    let first = PageAnalytics::insert(analytics_row(10))
        .on_conflict(on_date_and_path.clone())
        .exec(db)
        .await?;
    let second = PageAnalytics::insert(analytics_row(20))
        .on_conflict(on_date_and_path)
        .exec(db)
        .await?;

    let rows = PageAnalytics::find().all(db).await?;
    assert_eq!(rows.len(), 1, "one row per (date, url_path)");
    assert_eq!(rows[0].total_views, 20);
    assert_eq!(rows[0].anonymous_views, 19);
    assert_eq!(rows[0].unique_visitors, 10);
    assert_eq!(first.last_insert_id, rows[0].id);
    // With RETURNING (PostgreSQL, and SQLite when SeaORM's `sqlite-use-returning-for-3_35`
    // feature is on) the updated row's id comes back.
    assert_eq!(second.last_insert_id, rows[0].id);
    Ok(())
}

fn snapshot(id: Uuid, pages: i32, ip: &str, at: i64) -> anonymous_session::ActiveModel {
    anonymous_session::ActiveModel {
        id: Set(id),
        device_fingerprint: Set("fp".to_owned()),
        session_start: Set(timestamp(0)),
        last_activity: Set(timestamp(at)),
        ip_address: Set(Some(ip.to_owned())),
        pages_visited: Set(pages),
        landing_page: Set("/".to_owned()),
        ..Default::default()
    }
}

async fn anonymous_session_upsert(test_db: &TestDb) -> Result<(), DbErr> {
    let db = &test_db.conn;
    Migrator::up(db, None).await?;
    use anonymous_session::Column;
    // `GREATEST(t.pages_visited, excluded.pages_visited)`; SeaQuery writes `MAX(..)` on SQLite.
    let monotonic = OnConflict::column(Column::Id)
        .update_columns([Column::LastActivity, Column::IpAddress])
        .value(
            Column::PagesVisited,
            Func::greatest([
                Expr::col((AnonymousSession, Column::PagesVisited)),
                Expr::col((Alias::new("excluded"), Column::PagesVisited)),
            ]),
        )
        .to_owned();

    let id = Uuid::new_v4();
    for (pages, ip, at) in [
        (10, "203.0.113.45", 60),
        (5, "2001:db8::2", 120),
        (12, "198.51.100.7", 180),
    ] {
        AnonymousSession::insert(snapshot(id, pages, ip, at))
            .on_conflict(monotonic.clone())
            .exec_without_returning(db)
            .await?;
        let row = AnonymousSession::find_by_id(id)
            .one(db)
            .await?
            .expect("the upserted row");
        assert_eq!(row.pages_visited, pages.max(10), "never lower than 10");
        assert_eq!(
            row.ip_address.as_deref(),
            Some(ip),
            "excluded.ip_address kept as inet"
        );
        assert_eq!(row.last_activity, timestamp(at));
    }
    assert_eq!(AnonymousSession::find().count(db).await?, 1);

    // The same statement through a filter by IP (the save-side cast applies in WHERE too).
    let found = AnonymousSession::find()
        .filter(Column::IpAddress.eq("198.51.100.7"))
        .count(db)
        .await?;
    assert_eq!(found, 1);
    Ok(())
}

async fn do_nothing_on_conflict(test_db: &TestDb) -> Result<(), DbErr> {
    let db = &test_db.conn;
    Migrator::up(db, None).await?;
    let profile = |id| user_profile::ActiveModel {
        id: Set(id),
        username: Set("john_doe".to_owned()),
        division_id: Set(None),
        date_joined: Set(timestamp(0)),
    };
    let id = Uuid::new_v4();
    profile(id).insert(db).await?;

    // `on_conflict_do_nothing()` targets the primary key only.
    let same_id = UserProfile::insert(profile(id))
        .on_conflict_do_nothing()
        .exec(db)
        .await?;
    assert!(
        matches!(same_id, TryInsertResult::Conflicted),
        "{same_id:?}"
    );
    // Another unique column needs `on_conflict_do_nothing_on`.
    let same_name = UserProfile::insert(profile(Uuid::new_v4()))
        .on_conflict_do_nothing_on([user_profile::Column::Username])
        .exec(db)
        .await?;
    assert!(
        matches!(same_name, TryInsertResult::Conflicted),
        "{same_name:?}"
    );
    // Otherwise the unique violation is an error, which `sql_err()` classifies.
    let err = UserProfile::insert(profile(Uuid::new_v4()))
        .on_conflict_do_nothing()
        .exec(db)
        .await
        .expect_err("a duplicate username is not a primary key conflict");
    assert!(
        matches!(
            err.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        ),
        "{err}"
    );
    assert_eq!(UserProfile::find().count(db).await?, 1);
    Ok(())
}
