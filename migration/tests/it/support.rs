//! Per-test databases come from testkit, EMPTY: these tests run the migrations themselves.

/// Runs `body` once against each backend, on an empty database of its own.
#[macro_export]
macro_rules! on_both_backends {
    ($postgres:ident, $sqlite:ident, $body:path) => {
        #[tokio::test]
        async fn $postgres() -> Result<(), sea_orm::DbErr> {
            let test_db = testkit::TestDb::empty_postgres().await;
            $body(&test_db).await
        }

        #[tokio::test]
        async fn $sqlite() -> Result<(), sea_orm::DbErr> {
            let test_db = testkit::TestDb::empty_sqlite().await;
            $body(&test_db).await
        }
    };
}

/// 2025-10-10 14:00:00.123456 UTC plus `offset_seconds`: microsecond precision, which
/// PostgreSQL keeps exactly.
pub fn timestamp(offset_seconds: i64) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2025, 10, 10, 14, 0, 0)
        .single()
        .expect("a valid date")
        + chrono::Duration::seconds(offset_seconds)
        + chrono::Duration::microseconds(123_456)
}
