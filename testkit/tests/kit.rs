//! testkit against the real PostgreSQL and Redis: what it makes is there while the test runs and
//! gone after it.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::time::Duration;

use migration::MigratorTrait;
use redis::AsyncCommands;
use sea_orm::{ConnectionTrait, Database, Statement};
use testkit::{TestDb, TestRedis, eventually, http_full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The database name in a PostgreSQL URL.
fn database_name(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

async fn pg_databases() -> Vec<String> {
    let admin = Database::connect(testkit::db::pg_admin_url())
        .await
        .unwrap();
    let rows = admin
        .query_all_raw(Statement::from_string(
            admin.get_database_backend(),
            "SELECT datname FROM pg_database",
        ))
        .await
        .unwrap();
    admin.close().await.unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", "datname").unwrap())
        .collect()
}

async fn applied_migrations(db: &TestDb) -> Option<i64> {
    db.conn
        .query_one_raw(Statement::from_string(
            db.conn.get_database_backend(),
            "SELECT COUNT(*) AS n FROM seaql_migrations",
        ))
        .await
        .ok()
        .flatten()
        .map(|r| r.try_get::<i64>("", "n").unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrated_postgres_databases_come_from_the_template_in_parallel_and_are_dropped() {
    // Several at once, as parallel tests ask for them: each is its own, every one migrated.
    let (a, b, c, d) = tokio::join!(
        TestDb::postgres(),
        TestDb::postgres(),
        TestDb::postgres(),
        TestDb::postgres()
    );
    let all = [a, b, c, d];
    let migrations = migration::Migrator::migrations().len() as i64;
    let mut names = Vec::new();
    for db in &all {
        assert_eq!(applied_migrations(db).await, Some(migrations));
        let name = database_name(&db.url);
        assert!(name.starts_with("celeriac_test_"), "{name}");
        names.push(name);
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 4);
    // A write to one is not seen by another (copies, not the template itself).
    all[0]
        .conn
        .execute_unprepared("CREATE TABLE only_here (x int)")
        .await
        .unwrap();
    assert!(
        all[1]
            .conn
            .execute_unprepared("SELECT * FROM only_here")
            .await
            .is_err()
    );
    let listed = pg_databases().await;
    assert!(names.iter().all(|n| listed.contains(n)));
    assert!(listed.iter().any(|n| n.starts_with("celeriac_tpl_")));

    drop(all);
    let listed = pg_databases().await;
    assert!(names.iter().all(|n| !listed.contains(n)), "{listed:?}");
}

#[tokio::test]
async fn empty_databases_have_no_tables_and_are_removed() {
    let pg = TestDb::empty_postgres().await;
    assert_eq!(applied_migrations(&pg).await, None);
    let name = database_name(&pg.url);
    drop(pg);
    assert!(!pg_databases().await.contains(&name));

    let sqlite = TestDb::empty_sqlite().await;
    assert_eq!(applied_migrations(&sqlite).await, None);
    let file = sqlite
        .url
        .trim_start_matches("sqlite://")
        .trim_end_matches("?mode=rwc")
        .to_owned();
    assert!(std::path::Path::new(&file).exists());
    drop(sqlite);
    assert!(!std::path::Path::new(&file).exists());
}

#[tokio::test]
async fn sqlite_databases_are_migrated() {
    let db = TestDb::sqlite().await;
    let migrations = migration::Migrator::migrations().len() as i64;
    assert_eq!(applied_migrations(&db).await, Some(migrations));
}

#[tokio::test]
async fn a_namespace_and_the_tests_tokens_are_swept_and_hooks_run() {
    let redis = TestRedis::new().await;
    let mut conn = redis.conn.clone();
    let queue_key = format!("{}:queue:jobs", redis.namespace);
    let token = redis.token("fp");
    let token_key = format!("session:{token}");
    let shared = format!("testkit-shared-{}", uuid::Uuid::new_v4().simple());
    let _: () = conn.set(&queue_key, 1).await.unwrap();
    let _: () = conn.set(&token_key, 1).await.unwrap();
    let _: () = conn
        .sadd(&shared, &[token.as_str(), "other"])
        .await
        .unwrap();
    assert_eq!(redis.keys().await, vec![queue_key.clone()]);
    let hook_shared = shared.clone();
    redis.on_drop(move |conn, tokens| {
        let _: () = redis::cmd("SREM")
            .arg(&hook_shared)
            .arg(tokens)
            .query(conn)
            .unwrap();
    });

    drop(redis);

    let exists: u32 = conn.exists(&[&queue_key, &token_key]).await.unwrap();
    assert_eq!(exists, 0);
    let left: Vec<String> = conn.smembers(&shared).await.unwrap();
    assert_eq!(left, ["other"]);
    let _: () = conn.del(&shared).await.unwrap();
}

#[tokio::test]
async fn http_sends_the_request_and_reads_status_headers_and_json() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        // Until the whole body is in (its end is the closing brace of the JSON sent below).
        while !request.ends_with(b"}") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed early");
            request.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"ok":true}"#;
        let reply = format!(
            "HTTP/1.1 418 I'm a teapot\r\nContent-Type: application/json\r\nX-Request-Id: abc\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(reply.as_bytes()).await.unwrap();
        String::from_utf8(request).unwrap()
    });

    let answer = http_full(
        &addr,
        "POST",
        "/v1/x?y=1",
        Some("tok"),
        Some(&serde_json::json!({"a": 1})),
    )
    .await
    .unwrap();

    assert_eq!(answer.status, 418);
    assert_eq!(answer.header("X-Request-ID"), Some("abc"));
    assert_eq!(answer.body, serde_json::json!({"ok": true}));
    let request = server.await.unwrap().to_ascii_lowercase();
    assert!(
        request.starts_with("post /v1/x?y=1 http/1.1\r\n"),
        "{request}"
    );
    for line in [
        "authorization: bearer tok\r\n",
        "content-type: application/json\r\n",
        "content-length: 7\r\n",
        "connection: close\r\n",
    ] {
        assert!(request.contains(line), "{line:?} in {request}");
    }
    assert!(request.ends_with("\r\n\r\n{\"a\":1}"), "{request}");
    // Nobody listens any more: an error, not a hang.
    assert!(
        tokio::time::timeout(
            Duration::from_secs(5),
            http_full(&addr, "GET", "/", None, None)
        )
        .await
        .unwrap()
        .is_err()
    );
}

#[tokio::test]
async fn eventually_returns_what_the_check_found() {
    let mut n = 0;
    let found = eventually(Duration::from_secs(5), "the third poll", || {
        n += 1;
        let n = n;
        async move { (n == 3).then_some(n) }
    })
    .await;
    assert_eq!(found, 3);
}

#[tokio::test]
#[should_panic(expected = "timed out waiting for nothing")]
async fn eventually_panics_naming_what_never_came() {
    eventually(Duration::from_millis(100), "nothing", || async {
        None::<()>
    })
    .await;
}
