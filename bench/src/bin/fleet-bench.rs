//! `fleet-bench`: Celeriac end to end, natively: seed N `anon_session:{fingerprint}` documents
//! (the Celery peer's shape), enqueue N `persist_anonymous_session` jobs through
//! `Queues::enqueue_many`, start `target/release/worker run` against a scratch PostgreSQL
//! database (created, migrated and dropped here), and time enqueue → last row written (polling
//! `count(*)` every 20 ms), with the worker's peak RSS and CPU, and PostgreSQL's and Redis' CPU.
//!
//! Everything is private: queue keys under `bench-<uuid>`, fingerprints derived from that uuid
//! (their documents are deleted at the end), the Celery bridge off (`CELERY_QUEUES=`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bench::{
    connect, default_redis_url, delete_matching, machine_jiffies, median, named_cpu, new_namespace,
    proc_status_kib, process_cpu, sibling_exe, stop_child, wait_for_quiet,
};
use chrono::{SecondsFormat, Utc};
use clap::Parser;
use domain::config::Settings;
use domain::conn::RedisConn;
use domain::queues::{EnqueueItem, Queues};
use migration::{Migrator, MigratorTrait};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::json;
use sha2::Digest;

#[derive(Parser, Debug)]
#[command(
    name = "fleet-bench",
    about = "persist_anonymous_session end to end through Celeriac"
)]
struct Args {
    /// Jobs (and seeded documents) per run.
    #[arg(long, default_value_t = 20_000)]
    n: usize,
    /// Runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Redis URL (default `REDIS_URL` or redis://127.0.0.1:6379).
    #[arg(long)]
    redis_url: Option<String>,
    /// PostgreSQL server URL with the right to create databases.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_admin_url: String,
    /// The worker binary (default: `worker` next to this one).
    #[arg(long)]
    worker_bin: Option<std::path::PathBuf>,
    /// `worker run` processes started side by side (the fleet's unit of scale).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Workers reach PostgreSQL through the PgBouncer listening on this loopback port (in
    /// transaction pooling mode, in front of the server of `--pg-admin-url`), with
    /// `DATABASE_POOL_MODE=transaction`.
    #[arg(long)]
    pgbouncer_port: Option<u16>,
    /// Before each run wait (up to 300 s) for the machine to be below this % busy.
    #[arg(long, default_value_t = 20.0)]
    quiet_pct: f64,
    /// Also print one `RESULT {json}` line.
    #[arg(long)]
    json: bool,
}

const PAGES: [&str; 8] = [
    "/",
    "/pricing",
    "/blog/how-we-scale",
    "/docs/getting-started",
    "/about",
    "/features",
    "/blog/celery-vs-rust",
    "/contact",
];
const REFS: [&str; 5] = [
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "",
    "https://t.co/x",
    "https://duckduckgo.com/",
];

#[derive(Debug, Default, Clone)]
struct Run {
    enqueue_s: f64,
    total_s: f64,
    drain_s: f64,
    steady_s: f64,
    startup_s: f64,
    peak_rss_kib: u64,
    worker_cpu_ms_per_job: f64,
    pg_redis_cpu_ms_per_job: f64,
    pg_cpu_ms_per_job: f64,
    machine_busy_pct: f64,
    exit: String,
}

impl Run {
    fn rate(&self, n: usize, secs: f64) -> f64 {
        if secs > 0.0 { n as f64 / secs } else { 0.0 }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let redis_url = args.redis_url.clone().unwrap_or_else(default_redis_url);
    let worker_bin = match &args.worker_bin {
        Some(p) => p.clone(),
        None => sibling_exe("worker")?,
    };
    let ns = new_namespace();
    let db_name = format!("celeriac_{}", ns.replace('-', "_"));
    let admin = Database::connect(&args.pg_admin_url)
        .await
        .with_context(|| format!("PostgreSQL is unreachable at {}", args.pg_admin_url))?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {db_name}"))
        .await
        .with_context(|| format!("creating database {db_name}"))?;
    let db_url = match args.pg_admin_url.rfind('/') {
        Some(i) => format!("{}/{db_name}", &args.pg_admin_url[..i]),
        None => bail!("--pg-admin-url has no database part"),
    };
    eprintln!("[fleet-bench] namespace {ns}, scratch database {db_name}");
    let mut conn = connect(&redis_url).await?;
    let outcome = bench(&args, &redis_url, &db_url, &worker_bin, &ns, &mut conn).await;
    // Cleanup whatever happened.
    if let Err(e) = delete_matching(&mut conn, &format!("{ns}:*")).await {
        eprintln!("[fleet-bench] could not delete the queue keys of {ns}: {e:#}");
    }
    if let Err(e) = delete_docs(&mut conn, &ns, args.n).await {
        eprintln!("[fleet-bench] could not delete the seeded documents: {e:#}");
    }
    match admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        .await
    {
        Ok(_) => eprintln!("[fleet-bench] dropped database {db_name}"),
        Err(e) => eprintln!("[fleet-bench] could not drop database {db_name}: {e}"),
    }
    outcome
}

/// `url` (`scheme://user@host:port/db`) with its host and port `127.0.0.1:<port>`.
fn via_port(url: &str, port: u16) -> anyhow::Result<String> {
    let (scheme_user, rest) = url
        .split_once('@')
        .context("a URL with user@host:port/db")?;
    let (_, db) = rest.split_once('/').context("a URL with a database")?;
    Ok(format!("{scheme_user}@127.0.0.1:{port}/{db}"))
}

fn fingerprint(ns: &str, i: usize) -> String {
    let digest = sha2::Sha256::digest(format!("{ns}-device-{i}").as_bytes());
    hex::encode(digest)[..32].to_owned()
}

fn doc_key(fp: &str) -> String {
    format!("anon_session:{fp}")
}

/// N documents, like the peer's `seed()` (TTL 30 min); returns (first, middle, last) for checking.
async fn seed(conn: &mut RedisConn, ns: &str, n: usize) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut rnd = StdRng::seed_from_u64(42);
    let now = Utc::now();
    let mut kept = Vec::new();
    let mut pipe = redis::pipe();
    for i in 0..n {
        let start = now - chrono::Duration::seconds(rnd.random_range(60..=1800));
        let last = now - chrono::Duration::seconds(rnd.random_range(0..=59));
        let fp = fingerprint(ns, i);
        let doc = json!({
            "session_id": uuid::Builder::from_random_bytes(rnd.random()).into_uuid().to_string(),
            "device_fingerprint": fp,
            "started_at": start.to_rfc3339_opts(SecondsFormat::Micros, false),
            "last_activity": last.to_rfc3339_opts(SecondsFormat::Micros, false),
            "pages_visited": 5 * rnd.random_range(1..=6),
            "current_page": PAGES[rnd.random_range(0..PAGES.len())],
            "landing_page": PAGES[rnd.random_range(0..PAGES.len())],
            "referrer": REFS[rnd.random_range(0..REFS.len())],
            "is_active": true,
        });
        if i == 0 || i == n / 2 || i + 1 == n {
            kept.push(doc.clone());
        }
        pipe.cmd("SET")
            .arg(doc_key(&fp))
            .arg(doc.to_string())
            .arg("EX")
            .arg(1800)
            .ignore();
        if i % 1000 == 999 {
            pipe.query_async::<()>(conn).await?;
            pipe = redis::pipe();
        }
    }
    if !n.is_multiple_of(1000) {
        pipe.query_async::<()>(conn).await?;
    }
    Ok(kept)
}

async fn delete_docs(conn: &mut RedisConn, ns: &str, n: usize) -> anyhow::Result<()> {
    let keys: Vec<String> = (0..n).map(|i| doc_key(&fingerprint(ns, i))).collect();
    for chunk in keys.chunks(1000) {
        redis::cmd("DEL").arg(chunk).query_async::<()>(conn).await?;
    }
    Ok(())
}

async fn count_rows(db: &DatabaseConnection) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM analytics_anonymoussession",
        ))
        .await?
        .context("count(*) returned no row")?;
    Ok(row.try_get::<i64>("", "n")?)
}

/// The rows of the kept documents hold what the documents said.
async fn check_rows(
    db: &DatabaseConnection,
    docs: &[serde_json::Value],
) -> anyhow::Result<Vec<String>> {
    let mut bad = Vec::new();
    for d in docs {
        let id = d["session_id"].as_str().unwrap_or_default();
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT device_fingerprint, pages_visited, coalesce(landing_page, '') AS landing_page, \
                 coalesce(referrer, '') AS referrer, is_active, \
                 (extract(epoch FROM session_start) * 1000000)::bigint AS start_us \
                 FROM analytics_anonymoussession WHERE id = $1::uuid",
                [id.into()],
            ))
            .await?;
        let Some(row) = row else {
            bad.push(format!("{id}: no row"));
            continue;
        };
        let started = d["started_at"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp_micros());
        let got = (
            row.try_get::<String>("", "device_fingerprint")?,
            i64::from(row.try_get::<i32>("", "pages_visited")?),
            row.try_get::<String>("", "landing_page")?,
            row.try_get::<String>("", "referrer")?,
            row.try_get::<bool>("", "is_active")?,
            Some(row.try_get::<i64>("", "start_us")?),
        );
        let want = (
            d["device_fingerprint"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            d["pages_visited"].as_i64().unwrap_or(-1),
            d["landing_page"].as_str().unwrap_or_default().to_owned(),
            d["referrer"].as_str().unwrap_or_default().to_owned(),
            true,
            started,
        );
        if got != want {
            bad.push(format!("{id}: row {got:?} != document {want:?}"));
        }
    }
    Ok(bad)
}

async fn bench(
    args: &Args,
    redis_url: &str,
    db_url: &str,
    worker_bin: &std::path::Path,
    ns: &str,
    conn: &mut RedisConn,
) -> anyhow::Result<()> {
    let db = Database::connect(db_url).await?;
    Migrator::up(&db, None)
        .await
        .context("migrating the scratch database")?;
    let vars: HashMap<String, String> = [
        ("REDIS_URL", redis_url),
        ("DATABASE_URL", db_url),
        ("CELERIAC_NAMESPACE", ns),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let settings = Settings::from_vars(&vars)?;
    let worker_db_url = match args.pgbouncer_port {
        Some(port) => via_port(db_url, port)?,
        None => db_url.to_owned(),
    };
    let queues = Queues::new(conn.clone(), &settings);
    let log_path = std::env::temp_dir().join("celeriac-fleet-bench-worker.log");
    let mut results = Vec::new();
    for run in 0..args.runs {
        let busy = wait_for_quiet(args.quiet_pct, Duration::from_secs(300)).await;
        db.execute_unprepared("TRUNCATE analytics_anonymoussession CASCADE")
            .await?;
        delete_matching(conn, &format!("{ns}:*")).await?;
        let kept = seed(conn, ns, args.n).await?;
        let items: Vec<_> = (0..args.n)
            .map(|i| EnqueueItem::now(json!({ "fingerprint": fingerprint(ns, i) })))
            .collect();

        let t_enq0 = Instant::now();
        queues
            .enqueue_many("persist_anonymous_session", items)
            .await
            .context("enqueue")?;
        let enqueue_s = t_enq0.elapsed().as_secs_f64();

        let log = std::fs::File::create(&log_path)?;
        let infra0 = named_cpu(&["postgres", "redis-server", "pgbouncer"]);
        let pg0 = named_cpu(&["postgres"]);
        let (busy0, total0) = machine_jiffies();
        let t_spawn = Instant::now();
        let mut children = Vec::with_capacity(args.workers);
        let mut pids = Vec::with_capacity(args.workers);
        for _ in 0..args.workers {
            let mut cmd = tokio::process::Command::new(worker_bin);
            cmd.arg("run")
                .env("DATABASE_URL", &worker_db_url)
                .env("REDIS_URL", redis_url)
                .env("CELERIAC_NAMESPACE", ns)
                .env("CELERY_QUEUES", "")
                .stdout(log.try_clone()?)
                .stderr(log.try_clone()?)
                .kill_on_drop(true);
            if args.pgbouncer_port.is_some() {
                cmd.env("DATABASE_POOL_MODE", "transaction");
            }
            if std::env::var_os("RUST_LOG").is_none() {
                cmd.env("RUST_LOG", "warn");
            }
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {}", worker_bin.display()))?;
            pids.push(child.id().context("worker exited at once")?);
            children.push(child);
        }
        let mut t_first = None;
        let deadline = Duration::from_secs(900);
        loop {
            let count = count_rows(&db).await?;
            let now = Instant::now();
            if count > 0 && t_first.is_none() {
                t_first = Some(now);
            }
            if count >= args.n as i64 {
                break;
            }
            if let Some(status) = children
                .iter_mut()
                .find_map(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "worker exited early ({status}) with {count}/{} rows; see {}",
                    args.n,
                    log_path.display()
                );
            }
            if t_spawn.elapsed() > deadline {
                bail!("timeout: {count}/{} rows after {deadline:?}", args.n);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t_last = Instant::now();
        let mut peak_rss_kib = 0;
        for pid in &pids {
            peak_rss_kib = peak_rss_kib.max(proc_status_kib(*pid, "VmHWM")?);
        }
        let worker_cpu: f64 = pids.iter().map(|pid| process_cpu(*pid)).sum();
        let infra = named_cpu(&["postgres", "redis-server", "pgbouncer"]) - infra0;
        let pg = named_cpu(&["postgres"]) - pg0;
        let (busy1, total1) = machine_jiffies();
        let machine_busy_pct = if total1 > total0 {
            100.0 * (busy1 - busy0) as f64 / (total1 - total0) as f64
        } else {
            0.0
        };
        let mut exits = Vec::with_capacity(children.len());
        for child in &mut children {
            exits.push(stop_child(child, Duration::from_secs(40)).await);
        }
        let exit = exits.join(", ");
        let stats = queues
            .get("persist_anonymous_session")
            .context("no persist queue")?
            .stats()
            .await?;
        let bad = check_rows(&db, &kept).await?;
        if !bad.is_empty() {
            bail!("rows differ from their documents: {bad:?}");
        }
        if stats.done != args.n as u64 || stats.dead != 0 {
            eprintln!("[fleet-bench] warning: queue stats after the run: {stats:?}");
        }
        let t_first = t_first.unwrap_or(t_last);
        let r = Run {
            enqueue_s,
            total_s: (t_last - t_enq0).as_secs_f64(),
            drain_s: (t_last - t_spawn).as_secs_f64(),
            steady_s: (t_last - t_first).as_secs_f64(),
            startup_s: (t_first - t_spawn).as_secs_f64(),
            peak_rss_kib,
            worker_cpu_ms_per_job: worker_cpu * 1000.0 / args.n as f64,
            pg_redis_cpu_ms_per_job: infra * 1000.0 / args.n as f64,
            pg_cpu_ms_per_job: pg * 1000.0 / args.n as f64,
            machine_busy_pct,
            exit,
        };
        eprintln!(
            "[fleet-bench] run {} (machine {busy:.0}% busy before): e2e {:.0} jobs/s, drain {:.0} jobs/s, steady {:.0} jobs/s, \
             enqueue {:.3} s, peak RSS {:.1} MiB, worker {:.3} ms/job, PG+Redis {:.3} ms/job (PG {:.3}), machine {:.0}% busy during the drain, worker exit: {}",
            run + 1,
            r.rate(args.n, r.total_s),
            r.rate(args.n, r.drain_s),
            r.rate(args.n, r.steady_s),
            r.enqueue_s,
            r.peak_rss_kib as f64 / 1024.0,
            r.worker_cpu_ms_per_job,
            r.pg_redis_cpu_ms_per_job,
            r.pg_cpu_ms_per_job,
            r.machine_busy_pct,
            r.exit
        );
        results.push(r);
    }
    db.close().await.ok();
    print_table(args, &results);
    Ok(())
}

fn print_table(args: &Args, rs: &[Run]) {
    let n = args.n;
    // (label, decimals, value of one run)
    type Col<'a> = (&'a str, usize, &'a dyn Fn(&Run) -> f64);
    let cols: [Col<'_>; 11] = [
        ("jobs/s, enqueue → last row (e2e)", 1, &|r| {
            r.rate(n, r.total_s)
        }),
        ("jobs/s, worker start → last row (drain)", 1, &|r| {
            r.rate(n, r.drain_s)
        }),
        ("jobs/s, first row → last row (steady)", 1, &|r| {
            r.rate(n, r.steady_s)
        }),
        ("enqueue of N jobs, s", 3, &|r| r.enqueue_s),
        ("worker start → first row, s", 3, &|r| r.startup_s),
        ("worker peak RSS (VmHWM, largest process), MiB", 1, &|r| {
            r.peak_rss_kib as f64 / 1024.0
        }),
        ("worker CPU per job (all processes), ms", 3, &|r| {
            r.worker_cpu_ms_per_job
        }),
        (
            "PostgreSQL + Redis (+ PgBouncer) CPU per job, ms",
            3,
            &|r| r.pg_redis_cpu_ms_per_job,
        ),
        ("of which PostgreSQL, ms", 3, &|r| r.pg_cpu_ms_per_job),
        (
            "machine busy during the drain (2 cores = 100), %",
            0,
            &|r| r.machine_busy_pct,
        ),
        ("e2e seconds", 3, &|r| r.total_s),
    ];
    let medians: Vec<f64> = cols
        .iter()
        .map(|(_, _, f)| median(&rs.iter().map(f).collect::<Vec<_>>()))
        .collect();
    println!();
    let tuned: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("WORKER_CONCURRENCY"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "fleet-bench: persist_anonymous_session, N={n}, runs={}, {} `worker run` process(es), PostgreSQL{}, {}",
        rs.len(),
        args.workers,
        if args.pgbouncer_port.is_some() {
            " through PgBouncer (transaction pooling)"
        } else {
            ""
        },
        if tuned.is_empty() {
            "default worker settings".to_owned()
        } else {
            tuned.join(" ")
        }
    );
    println!();
    println!("| measure | median | runs |");
    println!("|---|---:|---|");
    for ((label, prec, f), m) in cols.iter().zip(&medians) {
        let runs = rs
            .iter()
            .map(|r| format!("{:.prec$}", f(r)))
            .collect::<Vec<_>>()
            .join(", ");
        println!("| {label} | {m:.prec$} | {runs} |");
    }
    println!();
    let cmd: Vec<String> = std::env::args().collect();
    println!("command: {}", cmd.join(" "));
    if args.json {
        let out = serde_json::json!({
            "n": n,
            "runs": rs.len(),
            "jobs_per_s": medians[0],
            "drain_jobs_per_s": medians[1],
            "steady_jobs_per_s": medians[2],
            "peak_rss_mib": medians[5],
            "worker_cpu_ms_per_job": medians[6],
            "pg_redis_cpu_ms_per_job": medians[7],
            "pg_cpu_ms_per_job": medians[8],
            "machine_busy_pct": medians[9],
            "exits": rs.iter().map(|r| r.exit.clone()).collect::<Vec<_>>(),
        });
        println!("RESULT {out}");
    }
}
