//! Behind PgBouncer in transaction pooling mode (Debian's 1.18, which keeps no prepared
//! statements for its clients): what sqlx does by default fails, `DATABASE_POOL_MODE=transaction`
//! works, and the whole Procfile fleet (release, web, worker, scheduler) runs every job and every
//! route that touches SQL through it.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::time::Duration;

use domain::db::{Db, PoolMode};
use sea_orm::{ConnectOptions, ConnectionTrait, Statement};
use testkit::{PgBouncer, TestDb, service_env};
use tests::TestRedis;

async fn client(url: &str, mode: PoolMode, connections: u32) -> Db {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(connections).sqlx_logging(false);
    Db::connect(options, mode).await.unwrap()
}

/// `SELECT $1 + $2` (a statement with parameters: sqlx prepares it under a name).
async fn add(db: &Db, a: i64, b: i64) -> Result<i64, sea_orm::DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT $1::int8 + $2::int8 AS v",
            [a.into(), b.into()],
        ))
        .await?
        .unwrap();
    row.try_get::<i64>("", "v")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_breaks_behind_a_transaction_pooler_and_transaction_mode_does_not() {
    let db = TestDb::postgres().await;
    // One server connection: every client of the pooler shares it.
    let bouncer = PgBouncer::start(&db.url, 1);
    let url = bouncer.url_for(&db.url);

    // sqlx's default: each client names its first statement `sqlx_s_1` and leaves it on the
    // server connection, where the next client's `sqlx_s_1` collides with it.
    let (first, second) = (
        client(&url, PoolMode::Session, 1).await,
        client(&url, PoolMode::Session, 1).await,
    );
    assert_eq!(add(&first, 1, 2).await.unwrap(), 3);
    let err = add(&second, 3, 4).await.unwrap_err().to_string();
    assert!(
        err.contains("sqlx_s_1") && err.contains("already exists"),
        "the second client's statement collides with the first's: {err}"
    );
    first.close().await.unwrap();
    second.close().await.unwrap();

    // DATABASE_POOL_MODE=transaction: four clients of four connections each, 400 statements at
    // once over that one server connection (then two), every answer its own.
    for pool in [1, 2] {
        let bouncer = PgBouncer::start(&db.url, pool);
        let url = bouncer.url_for(&db.url);
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(client(&url, PoolMode::Transaction, 4).await);
        }
        let mut runs = tokio::task::JoinSet::new();
        for i in 0..400i64 {
            let db = clients[usize::try_from(i).unwrap() % 4].clone();
            runs.spawn(async move { (i, add(&db, i, 1_000_000).await) });
        }
        while let Some(done) = runs.join_next().await {
            let (i, answer) = done.unwrap();
            assert_eq!(answer.unwrap(), i + 1_000_000, "statement {i}, pool {pool}");
        }
        // A caller's own transaction: prepare and bind on one server, committed once.
        let txn = clients[0].begin().await.unwrap();
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                txn.get_database_backend(),
                "SELECT $1::text || $2::text AS v",
                ["a".into(), "b".into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<String>("", "v").unwrap(), "ab");
        txn.commit().await.unwrap();
    }
}

const TOKEN: &str = "pgbouncer-secret";

/// Every job and every route that reads or writes SQL, through PgBouncer in transaction mode
/// with two server connections, from the Procfile's processes. Each job's rows are checked.
/// The worker and scheduler run here on a multi-thread runtime (`WORKER_THREADS=2`): the one
/// test that does; every other test runs the worker (its binary, or `InProcessWorker`) on the
/// default, one event loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_procfile_fleet_runs_every_job_through_pgbouncer_in_transaction_mode() {
    let (db, redis) = (TestDb::empty_postgres().await, TestRedis::new().await);
    let bouncer = PgBouncer::start(&db.url, 2);
    let mut env = service_env(&db, &redis);
    env.extend([
        ("DATABASE_URL".into(), bouncer.url_for(&db.url)),
        ("DATABASE_POOL_MODE".into(), "transaction".into()),
        ("WORKER_THREADS".into(), "2".into()),
    ]);
    let fleet = tests::flow::Fleet::start(env, TOKEN).await;

    tests::flow::every_flow(&fleet.addr, TOKEN, &db, &redis, async {}).await;

    fleet.stop().await;
}

/// A statement whose caller gave up before its transaction began (here, while it waited for the
/// pool's only connection) never runs: a job past its time limit or revoked writes nothing later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_cancelled_before_it_began_writes_nothing() {
    let db = TestDb::postgres().await;
    let bouncer = PgBouncer::start(&db.url, 1);
    let client = client(&bouncer.url_for(&db.url), PoolMode::Transaction, 1).await;
    client
        .execute_unprepared("CREATE TABLE cancel_probe (v text)")
        .await
        .unwrap();
    let insert = Statement::from_sql_and_values(
        client.get_database_backend(),
        "INSERT INTO cancel_probe (v) VALUES ($1)",
        ["cancelled".into()],
    );
    // The pool's one connection is taken, so the insert waits for it, then is given up.
    let held = client.begin().await.unwrap();
    let gave_up =
        tokio::time::timeout(Duration::from_millis(200), client.execute_raw(insert)).await;
    assert!(gave_up.is_err(), "the insert waited for the connection");
    held.rollback().await.unwrap();
    // The insert's task now gets the connection; nothing may be written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = db
        .conn
        .query_one_raw(Statement::from_string(
            db.conn.get_database_backend(),
            "SELECT count(*) AS n FROM cancel_probe",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(rows, 0, "a cancelled statement was written");
    // The connection went back to the pool usable, outside any transaction.
    assert_eq!(add(&client, 2, 3).await.unwrap(), 5);
}

/// Whether the connection `db` holds is encrypted, as the server sees it.
async fn encrypted(db: &Db) -> bool {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<bool>("", "ssl").unwrap()
}

/// To PostgreSQL on this machine a connection goes without TLS when the URL names no `sslmode`
/// (sqlx's `prefer` handshake cost ~100 ms a connection here, docs/sqlx-nagle.md), and with it
/// when the URL asks (`sslmode=require`), if the server offers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_connections_skip_tls_unless_the_url_asks() {
    let db = TestDb::postgres().await;
    assert!(
        db.url.contains("127.0.0.1") || db.url.contains("localhost"),
        "{}",
        db.url
    );
    let plain = client(&db.url, PoolMode::Session, 1).await;
    let offered: String = plain
        .query_one_raw(Statement::from_string(
            plain.get_database_backend(),
            "SHOW ssl",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "ssl")
        .unwrap();
    assert!(!encrypted(&plain).await, "no sslmode: no TLS on loopback");
    if offered == "on" {
        let sep = if db.url.contains('?') { '&' } else { '?' };
        let asked = client(
            &format!("{}{sep}sslmode=require", db.url),
            PoolMode::Session,
            1,
        )
        .await;
        assert!(encrypted(&asked).await, "sslmode=require: TLS");
    } else {
        println!("the server offers no TLS (ssl = {offered}): only the plain half ran");
    }
}
