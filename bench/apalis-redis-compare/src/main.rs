//! `apalis-redis-compare`: apalis-redis 1.0.0 on queue-bench's workload, for the ratio: push of
//! N (default 7,500) no-op jobs with 100-byte JSON payloads, and one worker process draining a
//! backlog of N (first fetch → all done), with its peak RSS. 7,500 is the largest backlog that
//! works: from about 8,000 due jobs on, `fetch_next.lua` fails with `too many results to unpack`
//! and the worker dies (research notes, apalis-redis-1.0.md §4.2). Worker configuration as in §6:
//! `poll_with_interval`, `batch_size`, `concurrency`, `parallelize(tokio::spawn)`.
//!
//! Private namespace `bench-<uuid>:…` (apalis-redis' queue name is its key prefix); every key is
//! deleted at the end, and the queues are removed from the global `core:apalis:queues:list`.
//!
//! `apalis-redis-compare [--n 7500] [--runs 3] [--json]`; the worker is this binary re-executed
//! as `apalis-redis-compare drain --queue Q`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use apalis::prelude::*;
use apalis_redis::{Config, RedisStorage};
use clap::{Parser, Subcommand};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
#[command(
    name = "apalis-redis-compare",
    about = "apalis-redis 1.0.0 push and drain, for the ratio"
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Jobs per push and per drain backlog (above ~8,000 apalis-redis' worker dies).
    #[arg(long, default_value_t = 7500)]
    n: usize,
    /// Runs per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Redis URL (default `REDIS_URL` or redis://127.0.0.1:6379).
    #[arg(long)]
    redis_url: Option<String>,
    #[command(flatten)]
    worker: WorkerOpts,
    /// Before each measurement wait (up to 120 s) for the machine to be below this % busy
    /// (100: do not wait), as queue-bench does.
    #[arg(long, default_value_t = 30.0)]
    quiet_pct: f64,
    /// Also print one `RESULT {json}` line.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug, Clone)]
struct WorkerOpts {
    /// Ids moved into the worker's inflight set per fetch.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Tower concurrency limit of the worker.
    #[arg(long, default_value_t = 500)]
    concurrency: usize,
    /// `poll_with_interval` in ms (without it an idle worker waits for its heartbeat).
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Tokio worker threads of the worker process.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Run one worker on `queue` until SIGTERM (started by the benchmark itself).
    Drain {
        /// apalis-redis queue name (key prefix).
        #[arg(long)]
        queue: String,
    },
}

/// The no-op job; serialized it is exactly 100 bytes of JSON, like queue-bench's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NoOp {
    n: usize,
    pad: String,
}

const PAYLOAD_BYTES: usize = 100;

fn job(n: usize) -> NoOp {
    let head = format!("{{\"n\":{n},\"pad\":\"").len() + 2;
    NoOp {
        n,
        pad: "x".repeat(PAYLOAD_BYTES.saturating_sub(head)),
    }
}

async fn noop(_job: NoOp) -> Result<(), BoxDynError> {
    Ok(())
}

fn redis_url(cli: &Cli) -> String {
    cli.redis_url
        .clone()
        .or_else(|| std::env::var("REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    // Not `apalis_redis::connect`: its 500 ms response timeout kills workers (research §2.2).
    let client = redis::Client::open(url)?;
    Ok(client
        .get_connection_manager_with_config(
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(Duration::from_secs(30))),
        )
        .await?)
}

fn config(queue: &str, opts: &WorkerOpts) -> Config {
    Config::default()
        .queue(queue)
        .batch_size(opts.batch_size)
        .heartbeat_interval(Duration::from_secs(5))
        .missed_heartbeats(3)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.mode {
        Some(Mode::Drain { .. }) => cli.worker.threads,
        None => 2,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async {
        match &cli.mode {
            Some(Mode::Drain { queue }) => drain_worker(&cli, queue).await,
            None => bench(&cli).await,
        }
    })
}

async fn drain_worker(cli: &Cli, queue: &str) -> anyhow::Result<()> {
    let conn = connect(&redis_url(cli)).await?;
    let opts = &cli.worker;
    let storage = RedisStorage::<NoOp>::new(conn).with_config(config(queue, opts));
    let worker = WorkerBuilder::new(format!("apalis-drain-{}", std::process::id()))
        .backend(storage.poll_with_interval(Duration::from_millis(opts.poll_ms)))
        .concurrency(opts.concurrency)
        .parallelize(tokio::spawn)
        .build(noop);
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        term.recv().await;
        Ok::<(), std::io::Error>(())
    };
    worker
        .run_until(stop)
        .await
        .map_err(|e| anyhow::anyhow!("apalis worker ended with an error: {e}"))?;
    Ok(())
}

#[derive(Debug, Default)]
struct Drain {
    jobs_per_s: f64,
    peak_rss_kib: u64,
    worker_cpu_us_per_job: f64,
    redis_cpu_us_per_job: f64,
}

async fn bench(cli: &Cli) -> anyhow::Result<()> {
    let sample = serde_json::to_string(&job(0))?;
    if sample.len() != PAYLOAD_BYTES {
        bail!("payload is {} bytes, not {PAYLOAD_BYTES}", sample.len());
    }
    let url = redis_url(cli);
    let mut conn = connect(&url).await?;
    let ns = format!("bench-{}", uuid::Uuid::new_v4().simple());
    eprintln!("[apalis-redis-compare] namespace {ns} on {url}");
    let mut queues = Vec::new();
    let outcome = run(cli, &url, &mut conn, &ns, &mut queues).await;
    for q in &queues {
        let _: Result<(), _> = redis::cmd("ZREM")
            .arg("core:apalis:queues:list")
            .arg(format!("{q}:workers"))
            .query_async(&mut conn)
            .await;
    }
    match delete_matching(&mut conn, &format!("{ns}:*")).await {
        Ok(n) => eprintln!("[apalis-redis-compare] deleted {n} keys of {ns}"),
        Err(e) => eprintln!("[apalis-redis-compare] could not delete the keys of {ns}: {e:#}"),
    }
    outcome
}

async fn run(
    cli: &Cli,
    url: &str,
    conn: &mut ConnectionManager,
    ns: &str,
    queues: &mut Vec<String>,
) -> anyhow::Result<()> {
    let n = cli.n;
    let mut one_call = Vec::new();
    let mut chunked = Vec::new();
    let mut mem = Vec::new();
    wait_for_quiet(cli.quiet_pct).await;
    for run in 0..cli.runs {
        for (chunk, out) in [(n, &mut one_call), (1000, &mut chunked)] {
            let q = format!("{ns}:apalis-push-{chunk}-{run}");
            queues.push(q.clone());
            let mut storage =
                RedisStorage::<NoOp>::new(conn.clone()).with_config(config(&q, &cli.worker));
            let jobs: Vec<NoOp> = (0..n).map(job).collect();
            let before = used_memory(conn).await?;
            let start = Instant::now();
            let mut rest = jobs.into_iter();
            loop {
                let part: Vec<NoOp> = rest.by_ref().take(chunk).collect();
                if part.is_empty() {
                    break;
                }
                storage
                    .push_bulk(part)
                    .await
                    .map_err(|e| anyhow::anyhow!("push_bulk: {e}"))?;
            }
            let secs = start.elapsed().as_secs_f64();
            let after = used_memory(conn).await?;
            let scheduled: u64 = redis::cmd("ZCARD")
                .arg(format!("{q}:scheduled"))
                .query_async(conn)
                .await?;
            if scheduled != n as u64 {
                bail!("pushed {n} but {scheduled} are scheduled");
            }
            out.push(n as f64 / secs);
            mem.push((after - before) / n as f64);
            eprintln!(
                "[apalis-redis-compare] push_bulk ({chunk} per call) run {}: {:.0} jobs/s, {:.1} B/job",
                run + 1,
                n as f64 / secs,
                (after - before) / n as f64
            );
            delete_matching(conn, &format!("{q}:*")).await?;
        }
    }
    let exe = std::env::current_exe()?;
    let mut drains = Vec::new();
    for run in 0..cli.runs {
        wait_for_quiet(cli.quiet_pct).await;
        let q = format!("{ns}:apalis-drain-{run}");
        queues.push(q.clone());
        let d = drain_run(cli, url, conn, &exe, &q).await?;
        eprintln!("[apalis-redis-compare] drain run {}: {d:?}", run + 1);
        drains.push(d);
        delete_matching(conn, &format!("{q}:*")).await?;
    }

    let o = &cli.worker;
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rates: Vec<f64> = drains.iter().map(|d| d.jobs_per_s).collect();
    let rss: Vec<f64> = drains
        .iter()
        .map(|d| d.peak_rss_kib as f64 / 1024.0)
        .collect();
    println!();
    println!(
        "apalis-redis 1.0.0: N={n} runs={}, payload {PAYLOAD_BYTES} B",
        cli.runs
    );
    println!();
    println!("| measurement | median | runs |");
    println!("|---|---:|---|");
    println!(
        "| push_bulk, all {n} in one call | {:.0} jobs/s | {} |",
        median(&one_call),
        list(&one_call)
    );
    println!(
        "| push_bulk, 1,000 per call | {:.0} jobs/s | {} |",
        median(&chunked),
        list(&chunked)
    );
    println!(
        "| Redis memory per queued job (`used_memory` delta / N) | {:.1} B | {} |",
        median(&mem),
        mem.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| drain, one worker process (batch_size {}, concurrency {}, poll {} ms, {} threads), first fetch → all done | {:.0} jobs/s | {} |",
        o.batch_size,
        o.concurrency,
        o.poll_ms,
        o.threads,
        median(&rates),
        list(&rates)
    );
    println!(
        "| drain worker peak RSS (VmHWM) | {:.1} MiB | {} |",
        median(&rss),
        rss.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let w: Vec<f64> = drains.iter().map(|d| d.worker_cpu_us_per_job).collect();
    let r: Vec<f64> = drains.iter().map(|d| d.redis_cpu_us_per_job).collect();
    println!(
        "| CPU per job: worker process / redis-server | {:.1} / {:.1} µs | |",
        median(&w),
        median(&r)
    );
    println!();
    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    if cli.json {
        let out = serde_json::json!({
            "n": n,
            "push_jobs_per_s": median(&chunked),
            "push_one_call_jobs_per_s": median(&one_call),
            "bytes_per_job_info": median(&mem),
            "drain_jobs_per_s": median(&rates),
            "drain_runs": rates.iter().map(|x| x.round()).collect::<Vec<_>>(),
            "drain_peak_rss_mib": median(&rss),
        });
        println!("RESULT {out}");
    }
    Ok(())
}

async fn drain_run(
    cli: &Cli,
    url: &str,
    conn: &mut ConnectionManager,
    exe: &std::path::Path,
    q: &str,
) -> anyhow::Result<Drain> {
    let n = cli.n;
    let mut storage = RedisStorage::<NoOp>::new(conn.clone()).with_config(config(q, &cli.worker));
    let jobs: Vec<NoOp> = (0..n).map(job).collect();
    for part in jobs.chunks(1000) {
        storage
            .push_bulk(part.to_vec())
            .await
            .map_err(|e| anyhow::anyhow!("push_bulk: {e}"))?;
    }
    let o = &cli.worker;
    let mut child = tokio::process::Command::new(exe)
        .arg("--redis-url")
        .arg(url)
        .arg("--batch-size")
        .arg(o.batch_size.to_string())
        .arg("--concurrency")
        .arg(o.concurrency.to_string())
        .arg("--poll-ms")
        .arg(o.poll_ms.to_string())
        .arg("--threads")
        .arg(o.threads.to_string())
        .arg("drain")
        .arg("--queue")
        .arg(q)
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("worker exited at once")?;
    let spawned = Instant::now();
    let scheduled = format!("{q}:scheduled");
    let done = format!("{q}:done");
    loop {
        let left: u64 = redis::cmd("ZCARD")
            .arg(&scheduled)
            .query_async(conn)
            .await?;
        if left < n as u64 {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!("apalis worker exited before fetching: {status}");
        }
        if spawned.elapsed() > Duration::from_secs(30) {
            bail!("apalis worker fetched nothing in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t0 = Instant::now();
    let redis0 = redis_cpu(conn).await?;
    loop {
        let finished: u64 = redis::cmd("SCARD").arg(&done).query_async(conn).await?;
        if finished >= n as u64 {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!("apalis worker exited after {finished} of {n} jobs: {status}");
        }
        if t0.elapsed() > Duration::from_secs(300) {
            bail!("apalis worker finished {finished} of {n} jobs in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let redis1 = redis_cpu(conn).await?;
    let peak_rss_kib = proc_kib(pid, "VmHWM")?;
    let cpu = proc_cpu(pid);
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    Ok(Drain {
        jobs_per_s: n as f64 / secs,
        peak_rss_kib,
        worker_cpu_us_per_job: cpu * 1e6 / n as f64,
        redis_cpu_us_per_job: (redis1 - redis0) * 1e6 / n as f64,
    })
}

async fn info(conn: &mut ConnectionManager, section: &str, field: &str) -> anyhow::Result<f64> {
    let text: String = redis::cmd("INFO").arg(section).query_async(conn).await?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .context("missing INFO field")?
        .trim()
        .parse()
        .with_context(|| format!("INFO {field}"))
}

async fn used_memory(conn: &mut ConnectionManager) -> anyhow::Result<f64> {
    info(conn, "memory", "used_memory").await
}

async fn redis_cpu(conn: &mut ConnectionManager) -> anyhow::Result<f64> {
    Ok(info(conn, "cpu", "used_cpu_user").await? + info(conn, "cpu", "used_cpu_sys").await?)
}

fn proc_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .context("missing /proc status field")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("bad /proc status value")
}

/// User + system CPU seconds of a process (clock ticks of 1/100 s, Linux' USER_HZ).
fn proc_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return 0.0;
    };
    let f: Vec<f64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // State (a letter) was skipped by the parse filter: utime and stime are now at 10 and 11.
    f.get(10)
        .zip(f.get(11))
        .map_or(0.0, |(u, s)| (u + s) / 100.0)
}

async fn delete_matching(conn: &mut ConnectionManager, pattern: &str) -> anyhow::Result<u64> {
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            let d: u64 = redis::cmd("DEL").arg(&keys).query_async(conn).await?;
            deleted += d;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.len().is_multiple_of(2) {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    } else {
        s[s.len() / 2]
    }
}

/// Busy and total jiffies of the whole machine (`/proc/stat`).
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Wait (at most 120 s) for the machine to be below `pct` % busy over one second.
async fn wait_for_quiet(pct: f64) {
    if pct >= 100.0 {
        return;
    }
    let start = Instant::now();
    loop {
        let (b0, t0) = machine_jiffies();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (b1, t1) = machine_jiffies();
        let busy = if t1 > t0 {
            100.0 * (b1 - b0) as f64 / (t1 - t0) as f64
        } else {
            0.0
        };
        if busy < pct || start.elapsed() >= Duration::from_secs(120) {
            return;
        }
        eprintln!("[apalis-redis-compare] machine {busy:.0}% busy; waiting for it to calm down");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
