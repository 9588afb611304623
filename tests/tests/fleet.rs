//! End to end from the Procfile: `release`, then `web`, `worker` and `scheduler` as real processes
//! against the real PostgreSQL and Redis; a job enqueued over HTTP becomes a row; SIGTERM stops
//! every process with exit 0.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use entity::anonymous_session;
use redis::AsyncCommands;
use sea_orm::EntityTrait;
use serde_json::json;
use testkit::{TestDb, bin_dir, command, eventually, free_port, http, service_env, workspace_dir};
use tests::TestRedis;
use tokio::process::Child;
use uuid::Uuid;

/// The Procfile's process types and commands, with `./target/dist/` pointed at this build
/// ([`bin_dir`]).
fn procfile() -> HashMap<String, Vec<String>> {
    let bin_dir = bin_dir();
    let text = std::fs::read_to_string(workspace_dir().join("Procfile")).expect("Procfile");
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, cmd)| {
            let cmd = cmd
                .trim()
                .replace("./target/dist/", &format!("{}/", bin_dir.display()));
            (
                name.trim().to_owned(),
                cmd.split_whitespace().map(str::to_owned).collect(),
            )
        })
        .collect()
}

fn start(cmd: &[String], env: &HashMap<String, String>) -> Child {
    assert!(
        Path::new(&cmd[0]).exists(),
        "{} is missing: build the workspace binaries first (scripts/test.sh does)",
        cmd[0]
    );
    command(&cmd[0])
        .args(&cmd[1..])
        .envs(env)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn")
}

async fn sigterm_and_wait(mut child: Child, what: &str) {
    let exit = testkit::sigterm(&mut child, Duration::from_secs(20)).await;
    assert!(exit.success(), "{what} exited with {exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_procfile_fleet_turns_an_http_enqueue_into_a_row_and_stops_cleanly_on_sigterm() {
    let (db, redis) = (TestDb::empty_postgres().await, TestRedis::new().await);
    let addr = format!("127.0.0.1:{}", free_port());
    let mut env = service_env(&db, &redis);
    env.extend([
        ("API_ADDR".into(), addr.clone()),
        ("API_TOKEN".into(), "e2e-secret".to_owned()),
        (
            "SCHEDULE_FINALIZE_IDLE_SESSIONS".into(),
            "* * * * * *".to_owned(),
        ),
        ("SHUTDOWN_TIMEOUT_SECONDS".into(), "10".to_owned()),
    ]);
    let procs = procfile();

    let release = start(&procs["release"], &env)
        .wait_with_output()
        .await
        .unwrap();
    assert!(release.status.success(), "release failed");

    let web = start(&procs["web"], &env);
    let worker = start(&procs["worker"], &env);
    let scheduler = start(&procs["scheduler"], &env);
    testkit::api_ready(&addr).await;

    let fp = redis.token("fp");
    let sid = Uuid::new_v4();
    let doc = json!({"session_id": sid, "device_fingerprint": fp, "started_at": Utc::now().to_rfc3339(),
                     "last_activity": Utc::now().to_rfc3339(), "pages_visited": 5, "landing_page": "/",
                     "referrer": "", "is_active": true});
    let _: () = redis
        .conn
        .clone()
        .set(format!("anon_session:{fp}"), doc.to_string())
        .await
        .unwrap();

    let (status, _) = http(
        &addr,
        "POST",
        "/v1/jobs/persist_anonymous_session",
        None,
        Some(&json!({"fingerprint": fp})),
    )
    .await
    .unwrap();
    assert_eq!(status, 401, "the token is required");
    let (status, body) = http(
        &addr,
        "POST",
        "/v1/jobs/persist_anonymous_session",
        Some("e2e-secret"),
        Some(&json!({"fingerprint": fp})),
    )
    .await
    .unwrap();
    assert_eq!(status, 202, "{body}");
    let job_id = body["job_id"].as_str().unwrap().to_owned();

    let path = format!("/v1/jobs/persist_anonymous_session/{job_id}");
    eventually(Duration::from_secs(30), "the job to be done", || {
        let (addr, path) = (addr.clone(), path.clone());
        async move {
            let (s, b) = http(&addr, "GET", &path, Some("e2e-secret"), None)
                .await
                .ok()?;
            (s == 200 && b["status"] == "done").then_some(())
        }
    })
    .await;
    let row = anonymous_session::Entity::find_by_id(sid)
        .one(&db.conn)
        .await
        .unwrap()
        .expect("row written");
    assert_eq!(row.pages_visited, 5);

    // The scheduler's per-second sweep reached the worker too.
    eventually(Duration::from_secs(30), "a scheduled sweep to run", || {
        let addr = addr.clone();
        async move {
            let (_, b) = http(&addr, "GET", "/v1/queues", Some("e2e-secret"), None)
                .await
                .ok()?;
            let q = b["queues"]
                .as_array()?
                .iter()
                .find(|q| q["name"] == "finalize_idle_sessions")?
                .clone();
            (q["done"].as_u64()? >= 1).then_some(())
        }
    })
    .await;

    sigterm_and_wait(scheduler, "scheduler").await;
    sigterm_and_wait(worker, "worker").await;
    sigterm_and_wait(web, "web").await;
}
