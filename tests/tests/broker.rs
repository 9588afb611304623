//! A Celery broker of its own (`CELERY_BROKER_URL`): Django's Celery on one Redis, the fleet on
//! another (as beside a Redis Cluster, which Celery cannot use). Every message reaches its job
//! while workers are killed with SIGKILL and both servers' connections are cut, and nothing of
//! the fleet's lands on the broker or of Celery's on the fleet's Redis.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use queue::{Queue, QueueConfig};
use redis::AsyncCommands;
use sea_orm::{ConnectionTrait, Database, Statement};
use testkit::{PrivateRedis, TestDb, bin_command, eventually};
use tokio::process::Child;

/// `CLIENT KILL TYPE normal` on the server at `url`: every client connection but ours is cut.
async fn cut_connections(url: &str) {
    if let Ok(client) = redis::Client::open(url)
        && let Ok(mut c) = client.get_multiplexed_async_connection().await
    {
        let _: Result<i64, _> = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
            .query_async(&mut c)
            .await;
    }
}

fn spawn_worker(env: &HashMap<String, String>) -> Child {
    bin_command("worker")
        .arg("run")
        .envs(env)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_on_a_separate_broker_each_become_one_job_through_kills_and_cuts() {
    const N: usize = 3000;
    let fleet = PrivateRedis::start(false);
    let broker = PrivateRedis::start(false);
    let db = TestDb::postgres().await;
    let env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db.url.clone()),
        ("REDIS_URL".into(), fleet.url()),
        ("CELERY_BROKER_URL".into(), broker.url()),
        ("CELERY_QUEUES".into(), "celery".into()),
        ("JOB_LEASE_SECONDS".into(), "3".into()),
        ("SHUTDOWN_TIMEOUT_SECONDS".into(), "5".into()),
    ]);
    let mut conn = domain::queues::connect(&fleet.url()).await.unwrap();
    let mut bconn = domain::queues::connect(&broker.url()).await.unwrap();
    let mut expected = HashMap::with_capacity(N);
    for i in 0..N {
        let fp = format!("broker-{i:05}");
        let pages = (i % 31 + 1) as u32;
        tests::put_anon_session(&conn, &fp, pages).await;
        expected.insert(fp, pages as i32);
    }

    let mut workers = [spawn_worker(&env), spawn_worker(&env)];
    // The messages arrive in bursts while the workers are killed and the connections cut; a
    // tenth on Celery's priority list 3.
    let mut kills = 0;
    for (round, chunk) in (0..N).collect::<Vec<_>>().chunks(300).enumerate() {
        let (normal, priority): (Vec<usize>, Vec<usize>) = chunk.iter().partition(|i| *i % 10 != 0);
        let msgs = |ids: Vec<usize>| -> Vec<String> {
            ids.iter()
                .map(|i| tests::celery_message(&format!("broker-{i:05}")))
                .collect()
        };
        // The cuts below cut this test's connection too: the first call after one reconnects.
        let _: Result<String, _> = redis::cmd("PING").query_async(&mut bconn).await;
        let _: () = bconn.lpush("celery", msgs(normal)).await.unwrap();
        let _: () = bconn
            .lpush("celery\x06\x163", msgs(priority))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        match round % 3 {
            0 => {
                let w = &mut workers[round / 3 % 2];
                let _ = w.start_kill();
                let _ = w.wait().await;
                *w = spawn_worker(&env);
                kills += 1;
            }
            1 => cut_connections(&broker.url()).await,
            _ => cut_connections(&fleet.url()).await,
        }
    }

    let intake = Queue::new(conn.clone(), QueueConfig::new("celeriac", "celery.celery"));
    let sql = Database::connect(&db.url).await.unwrap();
    eventually(Duration::from_secs(120), "every message ran", || {
        let (intake, sql) = (intake.clone(), sql.clone());
        async move {
            let s = intake.stats().await.ok()?;
            if s.queued + s.scheduled + s.running > 0 {
                return None;
            }
            (tests::anonymous_session_rows(&sql).await? == N).then_some(())
        }
    })
    .await;
    // The last cut may have hit these connections: the first call after it reconnects.
    let _: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
    let _: Result<String, _> = redis::cmd("PING").query_async(&mut bconn).await;

    // One row per session, with its page count; one job per message, none dead.
    let rows = sql
        .query_all_raw(Statement::from_string(
            sql.get_database_backend(),
            "SELECT device_fingerprint, pages_visited FROM analytics_anonymoussession",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), N);
    for r in rows {
        let fp: String = r.try_get("", "device_fingerprint").unwrap();
        let pages: i32 = r.try_get("", "pages_visited").unwrap();
        assert_eq!(expected.get(&fp), Some(&pages), "{fp}");
    }
    let s = intake.stats().await.unwrap();
    assert_eq!((s.done, s.dead), (N as u64, 0), "{s:?}");

    // Each server holds only its own: the broker's lists and staging are empty (so the broker
    // has no keys left), and the fleet's Redis never saw Celery's lists.
    let broker_keys: Vec<String> = bconn.keys("*").await.unwrap();
    assert!(
        broker_keys.is_empty(),
        "left on the broker: {broker_keys:?}"
    );
    let celery_on_fleet: Vec<String> = conn.keys("celery*").await.unwrap();
    assert!(celery_on_fleet.is_empty(), "{celery_on_fleet:?}");
    for w in &mut workers {
        // A copy started just as a cut hit may have failed fast (exit 1, as the contract says).
        if w.try_wait().unwrap().is_some() {
            continue;
        }
        let status = testkit::sigterm(w, Duration::from_secs(30)).await;
        assert!(status.success(), "worker exits 0 on SIGTERM: {status}");
    }
    println!("separate broker: {N} messages, {kills} worker kills, one job each, none lost");
}

/// `CELERY_BROKER_URL` naming the fleet's own Redis under another spelling (a host name for the
/// address, the database written out) is the same broker: its Celery lists are leased from
/// directly, as by the workers configured without it, never through a second staging path. A
/// different database, or another server, is a separate broker.
#[tokio::test]
async fn a_broker_url_is_separate_only_for_another_server_or_database() {
    let fleet_url = testkit::redis_url();
    let mut fleet =
        domain::conn::RedisConn::Single(domain::conn::connect_single(&fleet_url).await.unwrap());
    let info = redis::IntoConnectionInfo::into_connection_info(fleet_url.as_str()).unwrap();
    let (port, db) = match info.addr() {
        redis::ConnectionAddr::Tcp(_, port) => (*port, info.redis_settings().db()),
        other => panic!("a TCP test Redis expected, got {other:?}"),
    };
    let other = PrivateRedis::start(false);
    for (url, separate) in [
        (format!("redis://localhost:{port}/{db}"), false),
        (format!("redis://127.0.0.1:{port}/{}", (db + 1) % 16), true),
        (other.url(), true),
    ] {
        let broker = worker::celery::Broker {
            conn: domain::conn::RedisConn::Single(
                domain::conn::connect_single(&url).await.unwrap(),
            ),
            url: url.clone(),
            separate: true,
        };
        let here = broker.is_here(&fleet_url, &mut fleet).await.unwrap();
        assert_eq!(here, !separate, "{url}");
    }
}
