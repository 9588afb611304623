//! Issue 18's job controls on the real services: a rate limit that holds for several worker
//! processes at once; revoke (API, CLI, and Celery's own `revoke` on the pidbox), which outlives
//! the worker that was told; and the real Flower 2.0 watching Celeriac's workers.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::time::Duration;

use domain::args::JobArgs;
use queue::{JobStatus, ListState, NewJob};
use redis::AsyncCommands;
use serde_json::json;
use testkit::venv::celery_python;
use testkit::{TestDb, eventually, redis_url, service_env, spawn_worker};
use tests::{InProcessWorker, TestApi, TestRedis, job_context};
use uuid::Uuid;
use worker::jobs::{EndExpiredSessions, EnhanceSessionAsync};

/// The most jobs that finished within any one second, from finish times in epoch ms.
fn busiest_second(mut at: Vec<f64>) -> usize {
    at.sort_by(f64::total_cmp);
    (0..at.len())
        .map(|i| at[i..].iter().take_while(|t| **t - at[i] < 1000.0).count())
        .max()
        .unwrap_or(0)
}

/// `RATE_LIMIT_END_EXPIRED_SESSIONS=20/s` with three worker processes (each allowed 128 jobs at
/// once): 100 jobs take about five seconds, and no second sees more than the rate plus the
/// bucket (2) and a little for the acknowledgements' batching. Without the limit the three drain
/// them in well under a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_for_the_whole_fleet_of_three_worker_processes() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let extra = [
        ("RATE_LIMIT_END_EXPIRED_SESSIONS", "20/s"),
        ("CELERY_QUEUES", ""),
    ];
    let ctx = job_context(&db, &redis, &extra);
    let q = ctx.queues.get(EndExpiredSessions::NAME).unwrap().clone();
    q.push_many((0..100).map(|_| NewJob::new("{}")).collect())
        .await
        .unwrap();
    let mut env = service_env(&db, &redis);
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let workers: Vec<_> = (0..3).map(|_| spawn_worker(env.clone())).collect();
    eventually(Duration::from_secs(60), "100 jobs done", || {
        let q = q.clone();
        async move { q.stats().await.ok().filter(|s| s.done == 100) }
    })
    .await;
    drop(workers);
    let done: Vec<(String, f64)> = redis
        .conn
        .clone()
        .zrange_withscores(&q.keys().done, 0, -1)
        .await
        .unwrap();
    let at: Vec<f64> = done.iter().map(|(_, t)| *t).collect();
    let span =
        at.iter().copied().fold(f64::MIN, f64::max) - at.iter().copied().fold(f64::MAX, f64::min);
    let busiest = busiest_second(at);
    eprintln!("rate limit 20/s, 3 workers: busiest second {busiest} jobs, 100 jobs in {span} ms");
    assert!(busiest <= 25, "{busiest} jobs finished within one second");
    assert!(span >= 4000.0, "100 jobs at 20/s took only {span} ms");
}

/// Revoke through the API and the CLI: a queued job is never leased (the fetch that reaches it
/// makes it dead); a job
/// hung in the database is stopped where it is and is dead (not retried), while the worker goes
/// on; ended and unknown jobs are 409 and 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_stops_a_running_job_and_keeps_waiting_ones_from_ever_starting() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let api = TestApi::start(&db, &redis, &[]).await;
    let ctx = job_context(&db, &redis, &[]);
    let agent = json!({"user_agent": "Mozilla/5.0 Chrome/120"});
    let hashed = [
        api.login(&redis, agent.clone()).await,
        api.login(&redis, agent).await,
    ];
    let q = ctx.queues.get(EnhanceSessionAsync::NAME).unwrap().clone();
    // A queued job, revoked by the CLI before any worker runs.
    let later = q
        .push(NewJob::new(json!({"session_id": hashed[1]}).to_string()))
        .await
        .unwrap();
    let env = service_env(&db, &redis);
    let out = testkit::bin_command("worker")
        .args(["jobs", "revoke", EnhanceSessionAsync::NAME, &later.id])
        .envs(env.clone())
        .stdout(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said, json!({"id": later.id, "revoke": "revoked"}));
    // Hold A's row: its enhance job's UPDATE waits for this lock (no time limit would end it
    // soon: the default is 300 s).
    let lock = tests::lock_user_session(&db, &hashed[0]).await;
    let worker = InProcessWorker::start(ctx.clone());
    let running = eventually(Duration::from_secs(20), "A's job running", || async {
        let page = q.list(ListState::Running, 0, 10).await.ok()?;
        page.jobs
            .into_iter()
            .find(|j| j.payload.contains(&hashed[0]))
    })
    .await;
    // B's login job runs and finishes meanwhile.
    eventually(Duration::from_secs(20), "B's job done", || async {
        q.stats().await.ok().filter(|s| s.done >= 1)
    })
    .await;
    let path = format!("/v1/jobs/{}/{}", EnhanceSessionAsync::NAME, running.id);
    let (s, b) = api.call("DELETE", &path, None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["revoke"], "stopping");
    let stopped = eventually(Duration::from_secs(10), "A's job stopped", || async {
        let info = q.job(&running.id).await.ok()??;
        (info.status == JobStatus::Dead).then_some(info)
    })
    .await;
    assert!(
        stopped
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("revoked"),
        "{stopped:?}"
    );
    assert_eq!(stopped.attempts, 1, "a revoked job is not retried");
    // The CLI's revoke held: the worker's fetch reached the queued job and never leased it
    // (attempts 0). The worker still runs new jobs.
    let info = eventually(Duration::from_secs(10), "the queued job dead", || async {
        let info = q.job(&later.id).await.ok()??;
        (info.status == JobStatus::Dead).then_some(info)
    })
    .await;
    assert_eq!((info.status, info.attempts), (JobStatus::Dead, 0));
    let fresh = q
        .push(NewJob::new(json!({"session_id": hashed[1]}).to_string()))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "a new job done", || async {
        let info = q.job(&fresh.id).await.ok()??;
        (info.status == JobStatus::Done).then_some(())
    })
    .await;
    worker.stop().await;
    lock.rollback().await.unwrap();
    // Ended and unknown jobs.
    let (s, b) = api.call("DELETE", &path, None).await;
    assert_eq!(s, 409, "{b}");
    let path = format!("/v1/jobs/{}/{}", EnhanceSessionAsync::NAME, Uuid::new_v4());
    assert_eq!(api.call("DELETE", &path, None).await.0, 404);
    assert_eq!(
        api.call("DELETE", "/v1/jobs/no_such_job/x", None).await.0,
        404
    );
}

/// A job revoked while a worker that then died held it: the revoke is in Redis, so when its lease
/// expires the next worker (a new process) never runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_outlives_the_worker_that_held_the_job() {
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let extra = [("JOB_LEASE_SECONDS", "1")];
    let ctx = job_context(&db, &redis, &extra);
    let q = ctx.queues.get(EndExpiredSessions::NAME).unwrap().clone();
    let job = q.push(NewJob::new("{}")).await.unwrap();
    // A worker leases it and dies (never acknowledges).
    let lost = q.fetch(1).await.unwrap().jobs.remove(0);
    assert_eq!(lost.id, job.id);
    assert_eq!(
        q.revoke(&job.id, "revoked before it started")
            .await
            .unwrap(),
        queue::Revoked::Running
    );
    let other = q.push(NewJob::new("{}")).await.unwrap();
    // A new worker: it runs the other job, reaps the lost lease after a second, and finds the
    // revoke.
    let info = InProcessWorker::start(ctx.clone())
        .run_until(Duration::from_secs(20), "the revoked job dead", || async {
            let info = q.job(&job.id).await.ok()??;
            (info.status == JobStatus::Dead).then_some(info)
        })
        .await;
    let done = q.job(&other.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Done);
    assert!(info.last_error.unwrap().contains("revoked"));
    // Leased once by the lost worker; never again.
    assert_eq!(info.attempts, 1);
}

/// Celery's own revoke, from the real Celery 5.7 client: `AsyncResult.revoke()` of a countdown
/// task and `app.control.revoke(reply=True)` of a task not yet sent are both honoured (REVOKED,
/// never run), the worker answers the revoke and `ping` as a Celery node, and the revoked ids
/// survive the worker's restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celery_revoke_reaches_the_bridge_and_survives_a_restart() {
    let python = tokio::task::spawn_blocking(celery_python).await.unwrap();
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let celery_queue = format!("{}-celery", redis.namespace);
    let vars = [
        ("CELERY_RESULT_BACKEND", redis_url()),
        ("CELERY_QUEUES", celery_queue.clone()),
    ];
    let mut env = service_env(&db, &redis);
    env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let mut conn = redis.conn.clone();
    let fps = [redis.token("fp"), redis.token("fp"), redis.token("fp")];
    for fp in &fps {
        tests::put_anon_session(&conn, fp, 5).await;
    }
    let worker = spawn_worker(env.clone());
    let base = vec![redis_url(), celery_queue.clone(), redis_url()];
    let report = celery_control(
        &python,
        &worker,
        &[
            base.clone(),
            vec![
                "revoke".into(),
                fps[0].clone(),
                fps[1].clone(),
                fps[2].clone(),
            ],
        ]
        .concat(),
    )
    .await;
    // The worker answered as a Celery node would.
    let node = |replies: &serde_json::Value, said: &str| {
        replies.as_array().unwrap().iter().any(|r| {
            r.as_object()
                .unwrap()
                .iter()
                .any(|(n, v)| n.starts_with("celeriac-") && v.to_string().contains(said))
        })
    };
    assert!(
        node(&report["revoke_replies"], "flagged as revoked"),
        "{report}"
    );
    assert!(node(&report["pings"], "pong"), "{report}");
    // Both revoked tasks end REVOKED; the plain one runs.
    for (key, status) in [
        ("countdown", "REVOKED"),
        ("pre", "REVOKED"),
        ("plain", "SUCCESS"),
    ] {
        let id = report["ids"][key].as_str().unwrap();
        eventually(Duration::from_secs(20), key, || {
            celery_status(&conn, id, status)
        })
        .await;
    }
    // Restart: the revoked id is still known; its message, sent again, never runs.
    drop(worker);
    let worker = spawn_worker(env);
    let pre = report["ids"]["pre"].as_str().unwrap().to_owned();
    let _: () = conn.del(format!("celery-task-meta-{pre}")).await.unwrap();
    let again = celery_control(
        &python,
        &worker,
        &[
            base,
            vec!["resend".into(), fps[1].clone(), pre.clone(), fps[2].clone()],
        ]
        .concat(),
    )
    .await;
    let plain = again["ids"]["plain"].as_str().unwrap().to_owned();
    for (id, status) in [(pre, "REVOKED"), (plain, "SUCCESS")] {
        eventually(Duration::from_secs(30), "after the restart", || {
            celery_status(&conn, &id, status)
        })
        .await;
    }
    // What was revoked never wrote a row; what was not did.
    let rows = |fp: String| {
        let conn = db.conn.clone();
        async move {
            use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
            entity::anonymous_session::Entity::find()
                .filter(entity::anonymous_session::Column::DeviceFingerprint.eq(fp))
                .count(&conn)
                .await
                .unwrap()
        }
    };
    assert_eq!(rows(fps[0].clone()).await, 0);
    assert_eq!(rows(fps[1].clone()).await, 0);
    assert_eq!(rows(fps[2].clone()).await, 1);
}

/// `Some` once Celery task `id`'s result document says `status`.
async fn celery_status(conn: &redis::aio::ConnectionManager, id: &str, status: &str) -> Option<()> {
    let doc: Option<String> = conn
        .clone()
        .get(format!("celery-task-meta-{id}"))
        .await
        .ok()?;
    let doc: serde_json::Value = serde_json::from_str(&doc?).ok()?;
    (doc["status"] == status).then_some(())
}

/// Run `tests/celery_control.py` with the Celery client: its one JSON line.
/// `worker` is the worker process the script waits for (its node name starts
/// `celeriac-<pid>@`).
async fn celery_control(
    python: &std::path::Path,
    worker: &tokio::process::Child,
    args: &[String],
) -> serde_json::Value {
    let pid = worker.id().expect("the worker runs");
    let node = format!("celeriac-{pid}@");
    tests::python_json(
        python,
        "celery_control.py",
        args,
        &[("CELERIAC_NODE", node)],
    )
    .await
}

/// An unchanged Flower 2.0 (PyPI) on the same Redis as a worker with `CELERY_EVENTS=1`: its API
/// lists the worker (from its answers to Flower's inspections, and alive from its heartbeats)
/// and the Celery tasks it ran, with their outcome and the worker's name (from the events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flower_lists_celeriac_workers_and_the_celery_tasks_they_ran() {
    let python = tokio::task::spawn_blocking(celery_python).await.unwrap();
    let celery = tokio::task::spawn_blocking(testkit::venv::flower_celery_bin)
        .await
        .unwrap();
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let celery_queue = format!("{}-celery", redis.namespace);
    let mut env = service_env(&db, &redis);
    env.insert("CELERY_EVENTS".into(), "1".into());
    env.insert("CELERY_QUEUES".into(), celery_queue.clone());
    env.insert("CELERY_RESULT_BACKEND".into(), redis_url());
    let conn = redis.conn.clone();
    let fps = [redis.token("fp"), redis.token("fp")];
    for fp in &fps {
        tests::put_anon_session(&conn, fp, 5).await;
    }
    let port = testkit::free_port();
    let _flower = testkit::command(&celery)
        .args([
            "--broker",
            &redis_url(),
            "flower",
            "--address=127.0.0.1",
            "--logging=error",
        ])
        .arg(format!("--port={port}"))
        .env("FLOWER_UNAUTHENTICATED_API", "true")
        .spawn()
        .expect("start Flower");
    let flower = format!("127.0.0.1:{port}");
    let get = |path: &'static str| {
        let flower = flower.clone();
        async move {
            testkit::http(&flower, "GET", path, None, None)
                .await
                .ok()
                .filter(|(s, _)| *s == 200)
                .map(|(_, b)| b)
        }
    };
    eventually(Duration::from_secs(30), "Flower up", || get("/api/tasks")).await;
    let worker = spawn_worker(env);
    let sent = celery_control(
        &python,
        &worker,
        &[
            vec![redis_url(), celery_queue, redis_url(), "send".into()],
            fps.to_vec(),
        ]
        .concat(),
    )
    .await;
    // The script waited for this worker's answer to a ping: its node name.
    let node = sent["pings"][0]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert!(
        node.starts_with(&format!("celeriac-{}@", worker.id().unwrap())),
        "{sent}"
    );
    // The worker, as Flower's inspections found it.
    let workers = eventually(
        Duration::from_secs(30),
        "Flower lists the worker",
        || async {
            let w = get("/api/workers?refresh=1").await?;
            w.get(&node)?.get("stats")?;
            Some(w)
        },
    )
    .await;
    assert!(
        workers[&node]["registered"]
            .to_string()
            .contains("persist_anonymous_session"),
        "{workers}"
    );
    // Alive: its heartbeats reached Flower's event state.
    eventually(Duration::from_secs(20), "the worker alive", || async {
        let s = get("/api/workers?status=1").await?;
        (s[&node] == true).then_some(())
    })
    .await;
    // The tasks, with their outcomes and the worker that ran them.
    let mut want: Vec<(String, &str)> = sent["ids"]["plain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| (id.as_str().unwrap().to_owned(), "SUCCESS"))
        .collect();
    want.push((
        sent["ids"]["failing"].as_str().unwrap().to_owned(),
        "FAILURE",
    ));
    let tasks = eventually(
        Duration::from_secs(30),
        "Flower lists the tasks",
        || async {
            let t = get("/api/tasks").await?;
            want.iter()
                .all(|(id, state)| t[id.as_str()]["state"] == *state)
                .then_some(t)
        },
    )
    .await;
    for (id, _) in &want {
        assert_eq!(tasks[id.as_str()]["worker"], node.as_str(), "{tasks}");
        assert_eq!(
            tasks[id.as_str()]["name"],
            "analytics.tasks.persist_anonymous_session"
        );
    }
}
