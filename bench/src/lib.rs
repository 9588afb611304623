//! Shared helpers of the benchmark binaries: Redis connections and namespace sweeping, /proc
//! sampling (peak RSS, CPU), medians and percentiles, and the fixed 100-byte payload.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use domain::conn::RedisConn;
use redis::aio::ConnectionManagerConfig;

/// The drain worker's settings (`queue-drain`'s own flags, passed through by `queue-bench`).
#[derive(clap::Args, Debug, Clone)]
pub struct DrainOptions {
    /// Drain worker: jobs run at once.
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Drain worker: jobs leased ahead of free slots.
    #[arg(long, default_value_t = 1024)]
    pub prefetch: usize,
    /// Drain worker: tokio worker threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// A tokio runtime with `threads` workers (1: a current-thread runtime), as the binaries build.
pub use domain::process::runtime;

/// The Redis the benchmarks use: `REDIS_URL`, else the local server (database 0).
pub fn default_redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh private namespace, `bench-<uuid>`.
pub fn new_namespace() -> String {
    format!("bench-{}", uuid::Uuid::new_v4().simple())
}

/// A connection manager with timeouts long enough for 1,000-job scripts on a busy machine.
pub async fn connect(url: &str) -> anyhow::Result<RedisConn> {
    let client = redis::Client::open(url).with_context(|| format!("bad Redis URL {url}"))?;
    client
        .get_connection_manager_with_config(
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(Duration::from_secs(60))),
        )
        .await
        .map(RedisConn::Single)
        .with_context(|| format!("Redis is unreachable at {url}"))
}

/// Delete every key matching `pattern` (SCAN + DEL, 1,000 at a time); returns how many.
/// DEL rather than UNLINK so that memory is given back before the call returns.
pub async fn delete_matching(conn: &mut RedisConn, pattern: &str) -> anyhow::Result<u64> {
    let mut cursor: u64 = 0;
    let mut deleted = 0u64;
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
            let n: u64 = redis::cmd("DEL").arg(&keys).query_async(conn).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// One numeric field of `INFO <section>` (e.g. `used_memory`, `used_cpu_user`).
pub async fn info_field(conn: &mut RedisConn, section: &str, field: &str) -> anyhow::Result<f64> {
    let info: String = redis::cmd("INFO").arg(section).query_async(conn).await?;
    for line in info.lines() {
        if let Some((k, v)) = line.split_once(':')
            && k == field
        {
            return v
                .trim()
                .parse()
                .with_context(|| format!("INFO {field}: {v:?}"));
        }
    }
    bail!("INFO {section} has no field {field}")
}

/// CPU seconds (user + system) the Redis server has used so far.
pub async fn redis_cpu(conn: &mut RedisConn) -> anyhow::Result<f64> {
    Ok(info_field(conn, "cpu", "used_cpu_user").await?
        + info_field(conn, "cpu", "used_cpu_sys").await?)
}

/// A value of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`).
pub fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let kib = rest.trim().trim_end_matches("kB").trim();
            return kib.parse().with_context(|| format!("{field}: {rest:?}"));
        }
    }
    bail!("/proc/{pid}/status has no {field}")
}

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (command name, user + system CPU seconds) of one process, from `/proc/<pid>/stat`.
fn stat_cpu(pid: &str, ticks: f64) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After the command: state is field 0, utime field 11, stime field 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / ticks))
}

/// CPU seconds a process has used so far (0 when it is gone).
pub fn process_cpu(pid: u32) -> f64 {
    stat_cpu(&pid.to_string(), clock_ticks()).map_or(0.0, |(_, s)| s)
}

/// CPU seconds used so far by every process whose command name is one of `names`
/// (e.g. `postgres`, `redis-server`), summed; processes that ended are not counted.
pub fn named_cpu(names: &[&str]) -> f64 {
    let ticks = clock_ticks();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|pid| stat_cpu(&pid, ticks))
        .filter(|(comm, _)| names.contains(&comm.as_str()))
        .map(|(_, s)| s)
        .sum()
}

/// Busy and total jiffies of the whole machine (from `/proc/stat`).
pub fn machine_jiffies() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(cpu) = stat.lines().next() else {
        return (0, 0);
    };
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Percentage of the machine (all cores) busy over `window`.
pub async fn machine_busy_pct(window: Duration) -> f64 {
    let (b0, t0) = machine_jiffies();
    tokio::time::sleep(window).await;
    let (b1, t1) = machine_jiffies();
    if t1 <= t0 {
        return 0.0;
    }
    100.0 * (b1 - b0) as f64 / (t1 - t0) as f64
}

/// Wait (at most `max`) for the machine to be below `pct` % busy (100: do not wait); returns the
/// last reading.
pub async fn wait_for_quiet(pct: f64, max: Duration) -> f64 {
    let start = std::time::Instant::now();
    if pct >= 100.0 {
        return 0.0;
    }
    loop {
        let busy = machine_busy_pct(Duration::from_secs(1)).await;
        if busy < pct || start.elapsed() >= max {
            return busy;
        }
        eprintln!("[bench] machine {busy:.0}% busy; waiting for it to calm down");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Microseconds since the Unix epoch (comparable across processes on one machine).
pub fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The median of `v` (0 when empty).
pub fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// The `p`-th percentile of `v` by the nearest-rank method (0 when empty).
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if p == 50.0 && s.len().is_multiple_of(2) {
        return (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// A no-op job's arguments: exactly `PAYLOAD_BYTES` bytes of JSON, `{"n":<i>,"pad":"xxx…"}`.
pub fn payload(i: usize) -> String {
    let head = format!("{{\"n\":{i},\"pad\":\"");
    let pad = PAYLOAD_BYTES.saturating_sub(head.len() + 2);
    let mut s = String::with_capacity(PAYLOAD_BYTES);
    s.push_str(&head);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s
}

/// Size of every bench payload.
pub const PAYLOAD_BYTES: usize = 100;

/// A sibling executable of the running one (`target/release/<name>`).
pub fn sibling_exe(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot locate this executable")?;
    let dir = me.parent().context("executable has no directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found; build it with `cargo build --release --bins`",
            path.display()
        );
    }
    Ok(path)
}

/// Send SIGTERM to `pid` (through kill(1): this workspace forbids unsafe code).
pub fn sigterm(pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -TERM {pid} failed: {status}");
    }
    Ok(())
}

/// Wait for `child` to exit after SIGTERM; SIGKILL after `grace`. Returns its exit status text.
pub async fn stop_child(child: &mut tokio::process::Child, grace: Duration) -> String {
    let Some(pid) = child.id() else {
        return "already exited".into();
    };
    if let Err(e) = sigterm(pid) {
        return format!("{e:#}");
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(e)) => format!("wait failed: {e}"),
        Err(_) => {
            let _ = child.kill().await;
            format!("did not stop within {grace:?}; killed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_exactly_100_bytes_of_json() {
        for i in [0, 7, 199_999, 10_000_000] {
            let p = payload(i);
            assert_eq!(p.len(), PAYLOAD_BYTES, "{p}");
            let v: serde_json::Value = serde_json::from_str(&p).expect("json");
            assert_eq!(v["n"], i);
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(median(&v), 100.5);
        assert_eq!(percentile(&v, 99.0), 198.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[]), 0.0);
    }
}
