//! Up, write and read every table through the entities, down, and up again.

use entity::prelude::*;
use entity::{
    anonymous_page_view, anonymous_session, community, page_analytics, page_view_log, user_event,
    user_profile, user_session,
};
use migration::{Migrator, MigratorTrait, SchemaManager};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, ModelTrait,
    PaginatorTrait, QueryFilter, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::timestamp;
use testkit::TestDb;

/// Every table the migrations create.
pub const TABLES: [&str; 8] = [
    "accounts_userprofile",
    "communities_community",
    "accounts_usersession",
    "accounts_userevent",
    "analytics_anonymoussession",
    "analytics_anonymouspageview",
    "analytics_pageanalytics",
    "analytics_pageviewlog",
];

crate::on_both_backends!(
    postgres_schema_goes_up_down_and_up_again_with_every_table_usable,
    sqlite_schema_goes_up_down_and_up_again_with_every_table_usable,
    up_down_up
);

crate::on_both_backends!(
    postgres_deletes_cascade_and_set_null_like_django,
    sqlite_deletes_cascade_and_set_null_like_django,
    deletes_follow_foreign_keys
);

async fn up_down_up(test_db: &TestDb) -> Result<(), DbErr> {
    let db = &test_db.conn;

    Migrator::up(db, None).await?;
    assert_eq!(existing_tables(db).await?, TABLES.to_vec());
    write_and_read_every_table(db).await?;

    Migrator::down(db, None).await?;
    assert!(
        existing_tables(db).await?.is_empty(),
        "down leaves no table"
    );

    Migrator::up(db, None).await?;
    assert_eq!(existing_tables(db).await?, TABLES.to_vec());
    assert_eq!(UserProfile::find().count(db).await?, 0, "up starts empty");
    write_and_read_every_table(db).await?;

    Migrator::down(db, None).await?;
    assert!(existing_tables(db).await?.is_empty());
    Ok(())
}

/// The tables of [`TABLES`] that exist, in that order.
pub async fn existing_tables(db: &DatabaseConnection) -> Result<Vec<&'static str>, DbErr> {
    let manager = SchemaManager::new(db);
    let mut found = Vec::new();
    for table in TABLES {
        if manager.has_table(table).await? {
            found.push(table);
        }
    }
    Ok(found)
}

/// Inserts one row into every table, checks what `insert` returned, and reads it back.
async fn write_and_read_every_table(db: &DatabaseConnection) -> Result<(), DbErr> {
    let user = user_profile::ActiveModel {
        id: Set(Uuid::new_v4()),
        username: Set("john_doe".to_owned()),
        division_id: Set(Some(Uuid::new_v4())),
        date_joined: Set(timestamp(0)),
    }
    .insert(db)
    .await?;
    assert_eq!(user.username, "john_doe");
    assert_eq!(user.date_joined, timestamp(0));
    assert_eq!(
        UserProfile::find_by_id(user.id).one(db).await?,
        Some(user.clone())
    );

    let community = community::ActiveModel {
        id: Set(Uuid::new_v4()),
        slug: Set("montreal".to_owned()),
        name: Set("Montréal".to_owned()),
        division_id: Set(None),
    }
    .insert(db)
    .await?;
    assert_eq!(community.name, "Montréal");
    assert_eq!(
        Community::find_by_id(community.id).one(db).await?,
        Some(community.clone())
    );

    let device_info = json!({"device": "mobile", "browser": "Chrome", "os": "Android"});
    let session = user_session::ActiveModel {
        user_id: Set(user.id),
        session_id: Set("hashed-session-id".to_owned()),
        ip_address: Set(Some("203.0.113.45".to_owned())),
        user_agent: Set("Mozilla/5.0".to_owned()),
        device_info: Set(device_info.clone()),
        location_data: Set(json!({})),
        device_fingerprint: Set("fp-full".to_owned()),
        fast_fingerprint: Set("fp-fast".to_owned()),
        persistent: Set(true),
        pages_visited: Set(25),
        started_at: Set(timestamp(0)),
        last_activity: Set(timestamp(60)),
        ended_at: Set(None),
        expires_at: Set(timestamp(4 * 3600)),
        is_active: Set(true),
        ..Default::default()
    }
    .insert(db)
    .await?;
    assert!(session.id > 0, "identity key assigned");
    assert_eq!(session.ip_address.as_deref(), Some("203.0.113.45"));
    assert_eq!(session.device_info, device_info);
    assert_eq!(
        UserSession::find_by_id(session.id).one(db).await?,
        Some(session.clone())
    );
    // Filters on an IP column cast the bound value too.
    let by_ip = UserSession::find()
        .filter(user_session::Column::IpAddress.eq("203.0.113.45"))
        .all(db)
        .await?;
    assert_eq!(by_ip, vec![session.clone()]);
    // An update goes through the same cast.
    let mut ended: user_session::ActiveModel = session.into();
    ended.ip_address = Set(Some("198.51.100.7".to_owned()));
    ended.ended_at = Set(Some(timestamp(120)));
    ended.is_active = Set(false);
    let ended = ended.update(db).await?;
    assert_eq!(ended.ip_address.as_deref(), Some("198.51.100.7"));
    assert_eq!(
        UserSession::find_by_id(ended.id).one(db).await?,
        Some(ended)
    );

    let metadata = json!({
        "community_id": community.id,
        "is_cross_division": false,
        "url": "/communities/montreal/",
        "nested": {"pages": [1, 2, 3]},
    });
    let event = user_event::ActiveModel {
        user_id: Set(user.id),
        event_type: Set("community_visit".to_owned()),
        description: Set("Visited community Montreal".to_owned()),
        metadata: Set(metadata.clone()),
        ip_address: Set(Some("2001:db8::1".to_owned())),
        user_agent: Set("Mozilla/5.0".to_owned()),
        created_at: Set(timestamp(30)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    assert_eq!(event.metadata, metadata);
    assert_eq!(event.ip_address.as_deref(), Some("2001:db8::1"));
    assert_eq!(UserEvent::find_by_id(event.id).one(db).await?, Some(event));

    let anonymous = anonymous_session::ActiveModel {
        id: Set(Uuid::new_v4()),
        device_fingerprint: Set("a1b2c3d4".to_owned()),
        session_start: Set(timestamp(0)),
        session_end: Set(Some(timestamp(900))),
        last_activity: Set(timestamp(900)),
        ip_address: Set(None),
        user_agent: Set("Mozilla/5.0 (Linux; Android 14)".to_owned()),
        device_type: Set("mobile".to_owned()),
        browser: Set("Chrome".to_owned()),
        os: Set("Android".to_owned()),
        pages_visited: Set(8),
        duration_seconds: Set(Some(900)),
        landing_page: Set("/search?q=events".to_owned()),
        referrer: Set("https://google.com".to_owned()),
        converted_to_user_id: Set(Some(user.id)),
        converted_at: Set(Some(timestamp(1000))),
        is_active: Set(false),
        is_bot: Set(false),
        location_data: Set(serde_json::json!({"city": "Montreal", "country_code": "CA"})),
    }
    .insert(db)
    .await?;
    assert_eq!(anonymous.ip_address, None);
    assert_eq!(
        AnonymousSession::find_by_id(anonymous.id).one(db).await?,
        Some(anonymous.clone())
    );
    assert_eq!(
        anonymous.find_related(UserProfile).one(db).await?,
        Some(user.clone()),
        "converted_to_user relation"
    );

    let view = anonymous_page_view::ActiveModel {
        session_id: Set(anonymous.id),
        url: Set("/communities/montreal/".to_owned()),
        url_name: Set("community-detail".to_owned()),
        page_type: Set("community".to_owned()),
        viewed_at: Set(timestamp(450)),
        time_on_page_seconds: Set(Some(45)),
        referrer: Set("/search?q=montreal".to_owned()),
        scroll_depth_percent: Set(Some(80)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    assert_eq!(
        AnonymousPageView::find_by_id(view.id).one(db).await?,
        Some(view.clone())
    );
    assert_eq!(
        anonymous.find_related(AnonymousPageView).all(db).await?,
        vec![view]
    );

    let analytics = page_analytics::ActiveModel {
        date: Set(timestamp(0).date_naive()),
        url_path: Set("/communities/montreal/".to_owned()),
        page_type: Set("community".to_owned()),
        total_views: Set(10),
        anonymous_views: Set(7),
        authenticated_views: Set(3),
        unique_visitors: Set(4),
        ..Default::default()
    }
    .insert(db)
    .await?;
    assert_eq!(
        PageAnalytics::find_by_id(analytics.id).one(db).await?,
        Some(analytics)
    );

    let logged = page_view_log::ActiveModel {
        viewed_at: Set(timestamp(450)),
        url_path: Set("/communities/montreal/".to_owned()),
        page_type: Set("community".to_owned()),
        visitor_key: Set("a1b2c3d4".to_owned()),
        is_authenticated: Set(false),
        is_bot: Set(false),
        ..Default::default()
    }
    .insert(db)
    .await?;
    assert_eq!(
        PageViewLog::find_by_id(logged.id).one(db).await?,
        Some(logged)
    );
    // Range filters on timestamps compare correctly (RFC 3339 text on SQLite).
    let in_window = PageViewLog::find()
        .filter(page_view_log::Column::ViewedAt.gte(timestamp(449)))
        .filter(page_view_log::Column::ViewedAt.lt(timestamp(451)))
        .count(db)
        .await?;
    assert_eq!(in_window, 1);

    Ok(())
}

async fn deletes_follow_foreign_keys(test_db: &TestDb) -> Result<(), DbErr> {
    let db = &test_db.conn;
    Migrator::up(db, None).await?;

    let user = user_profile::ActiveModel {
        id: Set(Uuid::new_v4()),
        username: Set("jane".to_owned()),
        division_id: Set(None),
        date_joined: Set(timestamp(0)),
    }
    .insert(db)
    .await?;
    // Columns left out fall back to the migration's defaults.
    user_event::ActiveModel {
        user_id: Set(user.id),
        event_type: Set("login".to_owned()),
        created_at: Set(timestamp(1)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let anonymous = anonymous_session::ActiveModel {
        id: Set(Uuid::new_v4()),
        device_fingerprint: Set("fp".to_owned()),
        session_start: Set(timestamp(0)),
        last_activity: Set(timestamp(0)),
        converted_to_user_id: Set(Some(user.id)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    assert_eq!(anonymous.pages_visited, 0);
    assert!(anonymous.is_active && !anonymous.is_bot);
    for (i, url) in ["/a", "/b"].into_iter().enumerate() {
        anonymous_page_view::ActiveModel {
            session_id: Set(anonymous.id),
            url: Set(url.to_owned()),
            viewed_at: Set(timestamp(i as i64)),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }

    user.delete(db).await?;
    assert_eq!(UserEvent::find().count(db).await?, 0, "events cascade");
    let orphan = AnonymousSession::find_by_id(anonymous.id)
        .one(db)
        .await?
        .expect("the anonymous session survives its user");
    assert_eq!(orphan.converted_to_user_id, None, "SET NULL");

    orphan.delete(db).await?;
    assert_eq!(
        AnonymousPageView::find().count(db).await?,
        0,
        "page views cascade"
    );

    // Only PostgreSQL knows `inet`: it refuses what SQLite stores as text, so callers must
    // validate addresses before writing them.
    let other = user_profile::ActiveModel {
        id: Set(Uuid::new_v4()),
        username: Set("joe".to_owned()),
        division_id: Set(None),
        date_joined: Set(timestamp(0)),
    }
    .insert(db)
    .await?;
    let bad_ip = user_event::ActiveModel {
        user_id: Set(other.id),
        event_type: Set("login".to_owned()),
        ip_address: Set(Some("not-an-ip".to_owned())),
        created_at: Set(timestamp(1)),
        ..Default::default()
    }
    .insert(db)
    .await;
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let message = bad_ip.err().map(|err| err.to_string()).unwrap_or_default();
            assert!(message.contains("type inet"), "{message}");
        }
        _ => assert_eq!(bad_ip?.ip_address.as_deref(), Some("not-an-ip")),
    }
    Ok(())
}
