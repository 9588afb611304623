//! Proof under faults (issue 6, items 1–3): jobs fed through the API and as Celery messages
//! survive kill -9 of workers, a PostgreSQL outage and cut Redis connections; schedulers killed at
//! random still enqueue every tick once; SIGTERM mid-work loses nothing.
//!
//! CI runs the short form. The long form is one command (`scripts/faults.sh`):
//! `FAULT_JOBS=100000 FAULT_PG_STOP_SECONDS=20 FAULT_TICKS=200` with release binaries.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed assertion.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use queue::{Queue, QueueConfig};
use redis::AsyncCommands;
use sea_orm::{ConnectionTrait, Database, FromQueryResult, Statement};
use serde_json::json;
use testkit::{
    PrivatePostgres, PrivateRedis, TempDir, TestDb, bin_command, env_num, eventually, free_port,
    http, service_env,
};
use tests::{TestRedis, job_context};
use tokio::process::Child;
use uuid::Uuid;

/// The workspace binary `bin` with `env`, its output discarded (the faults make it noisy).
fn spawn(bin: &str, args: &[&str], env: &HashMap<String, String>) -> Child {
    bin_command(bin)
        .args(args)
        .envs(env)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

async fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    testkit::sigterm(child, Duration::from_secs(30)).await
}

/// `CLIENT KILL TYPE normal`: every client connection but the one asking is cut.
async fn cut_connections(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut c) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
        .query_async::<i64>(&mut c)
        .await
        .is_ok()
}

#[derive(FromQueryResult)]
struct Row {
    device_fingerprint: String,
    pages_visited: i32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_worker_kills_a_postgres_outage_and_cut_redis_connections() {
    let n = env_num("FAULT_JOBS", 2000) as usize;
    let pg_stop = Duration::from_secs(env_num("FAULT_PG_STOP_SECONDS", 3));
    let started = Instant::now();
    let redis_server = PrivateRedis::start(false);
    let pg = PrivatePostgres::start();
    let admin = Database::connect(pg.url("postgres")).await.unwrap();
    admin
        .execute_unprepared("CREATE DATABASE faults")
        .await
        .unwrap();
    let db_url = pg.url("faults");
    let api_addr = format!("127.0.0.1:{}", free_port());
    let env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db_url.clone()),
        ("REDIS_URL".into(), redis_server.url()),
        ("CELERY_QUEUES".into(), "celery".into()),
        ("JOB_LEASE_SECONDS".into(), "3".into()),
        ("SHUTDOWN_TIMEOUT_SECONDS".into(), "5".into()),
        ("API_ADDR".into(), api_addr.clone()),
    ]);
    let migrated = spawn("migration", &["up"], &env).wait().await.unwrap();
    assert!(migrated.success());

    // N live session documents, each with its own page count.
    // A self-healing connection: the chaos below cuts every client connection, ours included.
    let mut conn = domain::queues::connect(&redis_server.url()).await.unwrap();
    let mut expected = HashMap::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            let fp = format!("fault-{i:06}");
            let pages = (i % 47 + 1) as i32;
            let doc = json!({"session_id": Uuid::new_v4(), "device_fingerprint": fp,
                             "started_at": "2026-11-26T10:00:00Z", "last_activity": "2026-11-26T10:20:00Z",
                             "pages_visited": pages, "landing_page": "/", "referrer": "", "is_active": true});
            pipe.set_ex(format!("anon_session:{fp}"), doc.to_string(), 7200)
                .ignore();
            expected.insert(fp, pages);
        }
        let _: () = pipe.query_async(&mut conn).await.unwrap();
    }

    // Half through the API, half as Celery messages.
    let mut api = spawn("api", &[], &env);
    testkit::api_ready(&api_addr).await;
    // Two workers, and the faults. Each worker's stderr goes to a file of its own: a worker that
    // starts while PostgreSQL is down or as its Redis connection is cut exits 1 with one line (the
    // contract: fail fast at start), and the chaos restarts it as an orchestrator would; any other
    // exit fails the test with what the worker said.
    let logs = TempDir::new("faults-logs");
    let starts = Arc::new(AtomicU64::new(0));
    let spawn_logged = {
        let (dir, starts, env) = (logs.path().to_owned(), starts.clone(), env.clone());
        move || {
            let n = starts.fetch_add(1, Ordering::SeqCst);
            let path = dir.join(format!("worker-{n}.log"));
            let file = std::fs::File::create(&path).unwrap();
            let child = bin_command("worker")
                .arg("run")
                .envs(&env)
                .stderr(Stdio::from(file))
                .spawn()
                .expect("spawn");
            (child, path)
        }
    };
    let workers = Arc::new(tokio::sync::Mutex::new(vec![
        spawn_logged(),
        spawn_logged(),
    ]));
    let start_failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let connection_cuts = Arc::new(AtomicU64::new(0));
    let chaos = {
        let (workers, done, kills, cuts, failures, respawn) = (
            workers.clone(),
            done.clone(),
            kills.clone(),
            connection_cuts.clone(),
            start_failures.clone(),
            spawn_logged.clone(),
        );
        let redis_url = redis_server.url();
        tokio::spawn(async move {
            let mut tick = 0u64;
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tick += 1;
                restart_exited(&mut workers.lock().await, &failures, &respawn);
                if tick.is_multiple_of(2) {
                    let mut w = workers.lock().await;
                    let victim = (tick / 2) as usize % w.len();
                    let _ = w[victim].0.start_kill();
                    let _ = w[victim].0.wait().await;
                    w[victim] = respawn();
                    kills.fetch_add(1, Ordering::SeqCst);
                }
                if tick.is_multiple_of(3) && cut_connections(&redis_url).await {
                    cuts.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    // Once the workers run, the database goes down and the jobs arrive: every job meets the outage.
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.stop();
    let outage = Instant::now();
    let half = n / 2;
    for chunk in (0..half).collect::<Vec<_>>().chunks(500) {
        let body: Vec<_> = chunk
            .iter()
            .map(|i| json!({"fingerprint": format!("fault-{i:06}")}))
            .collect();
        let (s, b) = http(
            &api_addr,
            "POST",
            "/v1/jobs/persist_anonymous_session",
            None,
            Some(&json!(body)),
        )
        .await
        .unwrap();
        assert_eq!(s, 202, "{b}");
    }
    for chunk in (half..n).collect::<Vec<_>>().chunks(1000) {
        let msgs: Vec<String> = chunk
            .iter()
            .map(|i| tests::celery_message(&format!("fault-{i:06}")))
            .collect();
        let _: () = conn.lpush("celery", msgs).await.unwrap();
    }

    tokio::time::sleep(pg_stop.saturating_sub(outage.elapsed())).await;
    pg.up();
    assert!(sigterm(&mut api).await.success(), "api exits 0 on SIGTERM");

    let persist = Queue::new(
        conn.clone(),
        QueueConfig::new("celeriac", "persist_anonymous_session"),
    );
    let intake = Queue::new(conn.clone(), QueueConfig::new("celeriac", "celery.celery"));
    let timeout = Duration::from_secs(120 + n as u64 / 100);
    let db = Database::connect(&db_url).await.unwrap();
    let last_report = Arc::new(std::sync::Mutex::new(Instant::now()));
    eventually(timeout, "every job processed", || {
        let (persist, intake, db, last_report) = (
            persist.clone(),
            intake.clone(),
            db.clone(),
            last_report.clone(),
        );
        async move {
            let (p, i) = (persist.stats().await.ok()?, intake.stats().await.ok()?);
            let report = {
                let mut last = last_report.lock().unwrap();
                let due = last.elapsed() > Duration::from_secs(10);
                if due {
                    *last = Instant::now();
                }
                due
            };
            if report {
                eprintln!("fault run progress: persist {p:?} celery {i:?}");
            }
            let idle = |s: &queue::QueueStats| s.queued + s.scheduled + s.running == 0;
            if !(idle(&p) && idle(&i)) {
                return None;
            }
            (tests::anonymous_session_rows(&db).await? == n).then_some(())
        }
    })
    .await;
    done.store(true, Ordering::SeqCst);
    let _ = chaos.await;
    let elapsed = started.elapsed();
    // The last cut may have hit our connection: the first call after it fails and reconnects.
    let _: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;

    // Exactly one row per session, with the right page count.
    let rows = Row::find_by_statement(Statement::from_string(
        db.get_database_backend(),
        "SELECT device_fingerprint, pages_visited FROM analytics_anonymoussession",
    ))
    .all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len(), n);
    for r in &rows {
        assert_eq!(
            expected.get(&r.device_fingerprint),
            Some(&r.pages_visited),
            "{}",
            r.device_fingerprint
        );
    }
    let (p, i) = (
        persist.stats().await.unwrap(),
        intake.stats().await.unwrap(),
    );
    assert_eq!(p.dead + i.dead, 0, "no job died that should have lived");
    assert_eq!(p.done + i.done, n as u64);
    let celery_left: i64 = conn.llen("celery").await.unwrap();
    assert_eq!(celery_left, 0);

    // Summary: attempts beyond the first, split by cause.
    let mut redeliveries = 0u64;
    let mut retries = 0u64;
    for q in [&persist, &intake] {
        let attempts: HashMap<String, u32> = conn.hgetall(&q.keys().attempts).await.unwrap();
        let errors: HashMap<String, String> = conn.hgetall(&q.keys().errors).await.unwrap();
        for (id, a) in attempts {
            if a > 1 {
                if errors.get(&id).is_some_and(|e| e.contains("lease expired")) {
                    redeliveries += u64::from(a - 1);
                } else {
                    retries += u64::from(a - 1);
                }
            }
        }
    }
    // A copy the chaos restarted last may be a moment old: let it install its signal handlers (a
    // SIGTERM before that kills any process).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut w = workers.lock().await;
    restart_exited(&mut w, &start_failures, &spawn_logged);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (child, log) in w.iter_mut() {
        let status = sigterm(child).await;
        assert!(
            status.success(),
            "workers exit 0 on SIGTERM, got {status}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    println!(
        "fault run: jobs={n} (api={half}, celery={}) worker_kills={} redis_connection_cuts={} \
         postgres_outage_s={} start_failures={} redeliveries={redeliveries} retries={retries} \
         dead=0 wall_s={:.1}",
        n - half,
        kills.load(Ordering::SeqCst),
        connection_cuts.load(Ordering::SeqCst),
        pg_stop.as_secs(),
        start_failures.lock().unwrap().len(),
        elapsed.as_secs_f64()
    );
}

/// A worker and the file its stderr goes to.
type Logged = (Child, std::path::PathBuf);

/// Restart every worker that has exited, as an orchestrator's restart policy would. A worker may
/// exit on its own only by failing fast at start: exit 1 with its one line (`worker: ...`) naming
/// the dependency it could not reach; anything else (a panic, a crash mid-run) fails the test with what it said.
fn restart_exited(
    workers: &mut [Logged],
    failures: &std::sync::Mutex<Vec<String>>,
    respawn: &impl Fn() -> Logged,
) {
    for slot in workers.iter_mut() {
        let Ok(Some(status)) = slot.0.try_wait() else {
            continue;
        };
        let said = std::fs::read_to_string(&slot.1).unwrap_or_default();
        let last = said.lines().last().unwrap_or_default().to_owned();
        assert!(
            status.code() == Some(1) && last.starts_with("worker: "),
            "a worker exited on its own ({status}) other than by failing fast at start: {said}"
        );
        failures.lock().unwrap().push(last);
        *slot = respawn();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedulers_killed_at_random_still_enqueue_every_tick_once() {
    let ticks = env_num("FAULT_TICKS", 20);
    let redis = TestRedis::new().await;
    let db = TestDb::sqlite().await;
    let mut env = service_env(&db, &redis);
    env.extend([
        (
            "SCHEDULE_FINALIZE_IDLE_SESSIONS".into(),
            "* * * * * *".into(),
        ),
        ("SCHEDULE_CLEANUP_OLD_ANONYMOUS_DATA".into(), "off".into()),
        ("SCHEDULE_AGGREGATE_PAGE_ANALYTICS".into(), "off".into()),
        ("SCHEDULE_END_EXPIRED_SESSIONS".into(), "off".into()),
    ]);
    let redis_ms = || async {
        let (s, us): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut redis.conn.clone())
            .await
            .unwrap();
        s * 1000 + us / 1000
    };
    let from = redis_ms().await;
    let mut copies: Vec<Child> = (0..3)
        .map(|_| spawn("worker", &["scheduler"], &env))
        .collect();
    let mut kills = 0;
    let start = Instant::now();
    let mut i = 0usize;
    while start.elapsed() < Duration::from_secs(ticks) {
        // Kill one copy at a time at random moments (two always run), restart it at once.
        tokio::time::sleep(Duration::from_millis(700 + (i as u64 * 389) % 900)).await;
        let victim = i % 3;
        let _ = copies[victim].start_kill();
        let _ = copies[victim].wait().await;
        copies[victim] = spawn("worker", &["scheduler"], &env);
        kills += 1;
        i += 1;
    }
    // Let the last restarted copy install its handlers (a signal before exec completes kills any process).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to = redis_ms().await;
    for c in copies.iter_mut() {
        let status = sigterm(c).await;
        assert!(
            status.success(),
            "scheduler exits 0 on SIGTERM, got {status}"
        );
    }
    // The ticks that fell while copies ran, counted on a clock of the test's own, against the
    // jobs in the queue: one each, whatever the copies wrote about them (their uniqueness keys).
    let ticks_seen = (to / 1000 - from / 1000) as u64;
    let q = Queue::new(
        redis.conn.clone(),
        QueueConfig::new(redis.namespace.clone(), "finalize_idle_sessions"),
    );
    let queued = q.stats().await.unwrap().queued;
    println!("scheduler faults: ticks={ticks_seen} kills={kills} jobs={queued}");
    // The first tick may fall before a copy is up, one more between `to` and the last SIGTERM.
    assert!(
        (ticks_seen.saturating_sub(1)..=ticks_seen + 1).contains(&queued),
        "{queued} jobs for {ticks_seen} ticks: each tick enqueued exactly once, none skipped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_work_exits_zero_and_a_restart_finishes_the_rest() {
    let n = 3000usize;
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let mut conn = redis.conn.clone();
    let tag = redis.token("sig");
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            let fp = format!("{tag}-{i}");
            let doc = json!({"session_id": Uuid::new_v4(), "device_fingerprint": fp,
                             "started_at": "2026-11-26T10:00:00Z", "last_activity": "2026-11-26T10:20:00Z",
                             "pages_visited": 3, "landing_page": "/", "referrer": "", "is_active": true});
            pipe.set_ex(format!("anon_session:{fp}"), doc.to_string(), 600)
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.unwrap();
    }
    let ctx = job_context(&db, &redis, &[]);
    let items = (0..n)
        .map(|i| domain::queues::EnqueueItem::now(json!({"fingerprint": format!("{tag}-{i}")})))
        .collect();
    ctx.queues
        .enqueue_many("persist_anonymous_session", items)
        .await
        .unwrap();
    let mut env = service_env(&db, &redis);
    env.extend([
        ("SHUTDOWN_TIMEOUT_SECONDS".into(), "10".into()),
        ("WORKER_CONCURRENCY".into(), "4".into()),
    ]);
    let q = ctx.queues.get("persist_anonymous_session").unwrap().clone();
    let mut a = spawn("worker", &["run"], &env);
    let mut b = spawn("worker", &["run"], &env);
    eventually(Duration::from_secs(30), "work under way", || {
        let q = q.clone();
        async move { q.stats().await.ok().filter(|s| s.done > 0) }
    })
    .await;
    let (sa, sb) = tokio::join!(sigterm(&mut a), sigterm(&mut b));
    assert!(sa.success() && sb.success(), "both exit 0 mid-work");
    let mid = q.stats().await.unwrap();
    assert_eq!(
        mid.running, 0,
        "nothing left leased after a clean stop: {mid:?}"
    );
    let mut c = spawn("worker", &["run"], &env);
    eventually(Duration::from_secs(60), "the restart to finish", || {
        let q = q.clone();
        async move { q.stats().await.ok().filter(|s| s.done == n as u64) }
    })
    .await;
    assert!(sigterm(&mut c).await.success());
    let end = q.stats().await.unwrap();
    assert_eq!((end.dead, end.queued, end.running), (0, 0, 0));
    let rows = db
        .conn
        .query_one_raw(Statement::from_string(
            db.conn.get_database_backend(),
            "SELECT COUNT(*) AS n FROM analytics_anonymoussession",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(rows as usize, n);
    println!(
        "shutdown: {n} jobs, {} done before SIGTERM, finished after restart",
        mid.done
    );
}

/// Rows waiting for a lock in PostgreSQL right now.
async fn lock_waits(db: &sea_orm::DatabaseConnection) -> i64 {
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT COUNT(*) AS n FROM pg_locks WHERE NOT granted",
    ))
    .await
    .ok()
    .flatten()
    .and_then(|r| r.try_get::<i64>("", "n").ok())
    .unwrap_or(0)
}

/// Finding 9: jobs that run past the shutdown timeout (their session upserts wait on a table
/// lock) in two queues at once (a job queue and the Celery intake). SIGTERM: the worker exits 0
/// within SHUTDOWN_TIMEOUT_SECONDS + 5 s, and every job it had prefetched but not started is back
/// in pending with its attempts unchanged; only the jobs it was running stay leased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_jobs_running_past_the_timeout_exits_in_time_and_hands_back_the_prefetched() {
    use sea_orm::TransactionTrait;
    const JOBS: usize = 20;
    const TIMEOUT_S: u64 = 3;
    let (db, redis) = (TestDb::postgres().await, TestRedis::new().await);
    let mut conn = redis.conn.clone();
    let tag = redis.token("stuck");
    let celery_queue = format!("{}-celery", redis.namespace);
    let mut pipe = redis::pipe();
    for i in 0..2 * JOBS {
        let fp = format!("{tag}-{i}");
        let doc = json!({"session_id": Uuid::new_v4(), "device_fingerprint": fp,
                         "started_at": "2026-11-26T10:00:00Z", "last_activity": "2026-11-26T10:20:00Z",
                         "pages_visited": 3, "landing_page": "/", "referrer": "", "is_active": true});
        pipe.set_ex(format!("anon_session:{fp}"), doc.to_string(), 600)
            .ignore();
    }
    let _: () = pipe.query_async(&mut conn).await.unwrap();

    // Every session upsert waits behind this lock until the test lets go.
    let blocker = db.conn.begin().await.unwrap();
    blocker
        .execute_unprepared("LOCK TABLE analytics_anonymoussession IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let ctx = job_context(&db, &redis, &[]);
    let items = (0..JOBS)
        .map(|i| domain::queues::EnqueueItem::now(json!({"fingerprint": format!("{tag}-{i}")})))
        .collect();
    ctx.queues
        .enqueue_many("persist_anonymous_session", items)
        .await
        .unwrap();
    let msgs: Vec<String> = (JOBS..2 * JOBS)
        .map(|i| tests::celery_message(&format!("{tag}-{i}")))
        .collect();
    let _: () = conn.lpush(&celery_queue, msgs).await.unwrap();

    // The test's Celery queue is `celery_queue`.
    let mut env = service_env(&db, &redis);
    env.extend([
        ("SHUTDOWN_TIMEOUT_SECONDS".into(), TIMEOUT_S.to_string()),
        ("JOB_LEASE_SECONDS".into(), "3".into()),
        // Two running per queue; the rest of each lease batch waits prefetched.
        ("WORKER_CONCURRENCY".into(), "2".into()),
    ]);
    let persist = ctx.queues.get("persist_anonymous_session").unwrap().clone();
    let intake =
        worker::celery::intake_queue(ctx.redis.clone(), &ctx.settings, &celery_queue, true);
    let mut w = spawn("worker", &["run"], &env);
    // Both queues have leased a batch (running and prefetched) and their jobs wait on the lock.
    eventually(Duration::from_secs(30), "jobs stuck on the lock", || {
        let (persist, intake, db) = (persist.clone(), intake.clone(), db.conn.clone());
        async move {
            let (p, i) = (persist.stats().await.ok()?, intake.stats().await.ok()?);
            (p.running > 2 && i.running > 2 && lock_waits(&db).await > 0).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leased = (
        persist.stats().await.unwrap().running,
        intake.stats().await.unwrap().running,
    );

    let started = Instant::now();
    let status = testkit::sigterm(&mut w, Duration::from_secs(60)).await;
    let took = started.elapsed();
    println!("shutdown with stuck jobs: leased {leased:?}, exited in {took:?}");
    assert!(status.success(), "exit code 0 after SIGTERM, got {status}");
    assert!(
        took < Duration::from_secs(TIMEOUT_S + 5),
        "exited {took:?} after SIGTERM; SHUTDOWN_TIMEOUT_SECONDS is {TIMEOUT_S}"
    );

    // Still running (leased, one attempt each): the 2 jobs per queue it had started. Back in
    // pending, attempts untouched: everything else it had leased. (The intake leases Celery's
    // messages as it needs them: what it never leased is still in Celery's list, or in the
    // intake's staging list, where its idle wait put one.)
    let celery_left: u64 = conn.llen(&celery_queue).await.unwrap();
    let staged: u64 = conn.llen(&intake.keys().staging).await.unwrap();
    let celery_left = celery_left + staged;
    for (q, total, unleased) in [(&persist, JOBS, 0), (&intake, JOBS, celery_left)] {
        let s = q.stats().await.unwrap();
        assert_eq!(
            (s.running, s.queued + unleased),
            (2, total as u64 - 2),
            "{}: {s:?} (leased before SIGTERM: {leased:?})",
            q.name()
        );
        let attempts: HashMap<String, u32> = conn.hgetall(&q.keys().attempts).await.unwrap();
        let counted: Vec<u32> = attempts.values().copied().filter(|a| *a > 0).collect();
        assert_eq!(counted, vec![1, 1], "{}: {attempts:?}", q.name());
    }

    // Let go of the lock: a new worker finishes everything (the two cut jobs after their lease).
    blocker.rollback().await.unwrap();
    let mut c = spawn("worker", &["run"], &env);
    eventually(Duration::from_secs(60), "every job done", || {
        let (persist, intake) = (persist.clone(), intake.clone());
        async move {
            let (p, i) = (persist.stats().await.ok()?, intake.stats().await.ok()?);
            (p.done == JOBS as u64 && i.done == JOBS as u64).then_some(())
        }
    })
    .await;
    assert!(sigterm(&mut c).await.success());
    let rows = db
        .conn
        .query_one_raw(Statement::from_string(
            db.conn.get_database_backend(),
            "SELECT COUNT(*) AS n FROM analytics_anonymoussession",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(rows as usize, 2 * JOBS);
}
