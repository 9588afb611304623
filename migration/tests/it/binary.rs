//! The `migration` binary: default database, one-line failures, and `fresh` on Django.

use std::process::Output;

use sea_orm::DbErr;
use tokio::process::Command;

use crate::django::make_django_database;
use crate::up_down::existing_tables;
use testkit::TestDb;

async fn run(args: &[&str], configure: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_migration"));
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("DATABASE_SCHEMA");
    configure(&mut command);
    command.output().await.expect("the migration binary runs")
}

#[tokio::test]
async fn without_database_url_migration_up_creates_the_default_sqlite_file() {
    let dir = testkit::TempDir::new("migration-default");

    let up = run(&["up"], |command| {
        command.current_dir(dir.path());
    })
    .await;
    let status = run(&["status"], |command| {
        command.current_dir(dir.path());
    })
    .await;
    let created = dir.path().join("celeriac.db").exists();
    drop(dir);

    assert!(up.status.success(), "{up:?}");
    assert!(created, "sqlite://celeriac.db?mode=rwc is the default");
    let report = String::from_utf8_lossy(&status.stdout);
    assert!(
        report.contains("m20261126_152601_create_analytics_tables'... Applied"),
        "{report}"
    );
}

#[tokio::test]
async fn an_unreachable_database_fails_with_one_line() {
    let out = run(
        &["up", "-u", "postgres://postgres@127.0.0.1:1/nowhere"],
        |_| {},
    )
    .await;

    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("migration: cannot connect to the database"),
        "{stderr}"
    );
}

#[tokio::test]
async fn fresh_is_refused_on_a_django_database() -> Result<(), DbErr> {
    let test_db = TestDb::empty_postgres().await;
    make_django_database(&test_db).await?;

    let out = run(&["fresh"], |command| {
        command.env("DATABASE_URL", &test_db.url);
    })
    .await;

    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing `fresh`"), "{stderr}");
    assert_eq!(
        existing_tables(&test_db.conn).await?,
        ["accounts_userprofile"],
        "nothing dropped"
    );
    Ok(())
}
