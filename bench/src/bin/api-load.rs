//! `api-load`: an open-loop, constant-rate HTTP/1.1 load generator for the API's hot routes
//! (`POST /v1/track/pageview`, `GET /v1/communities/{id}/visitors`), loopback only.
//!
//! N keep-alive connections over raw tokio `TcpStream`s, each sending at `rate / N` on a fixed
//! schedule (connection `i` starts `i / rate` seconds in), one request in flight per connection.
//! Latency is counted from the *scheduled* send time whenever the connection was still busy with
//! the previous response at that time (the server made us late: no coordinated omission), and
//! from the actual send time when the connection was idle (the only lateness then is this
//! process's millisecond timer, which is not the server's; its mean is printed as `timer lag`).
//! Requests scheduled in the warm-up are sent but not recorded; requests still unsent 5 s after
//! the end are counted as `unsent` (they lower the achieved rate).
//!
//! Page-view bodies come from `--fingerprints` distinct fingerprints (`bench-<tag>-<n>`) over
//! `--paths` paths (`/bench-<tag>/page-<n>/`); the first paths are community pages carrying one of
//! `--communities` as `community_id`. User agents, referrers and addresses vary; one UA in 12 is
//! a crawler. Prints one table row on stdout (`--header` adds the header line) and details on
//! stderr. With `--api-pid`/`--redis-pid`, the CPU those processes used during the measured
//! window is shown as % of one core, with this generator's own CPU and the whole machine's (so
//! other work on a shared machine shows), and as µs per response completed in the window.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use celeriac_bench::{machine_jiffies, process_cpu, runtime};
use clap::{Parser, ValueEnum};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `POST /v1/track/pageview`, anonymous visitors.
    Pageview,
    /// `GET /v1/communities/{id}/visitors`.
    Visitors,
}

#[derive(Parser, Debug)]
#[command(
    name = "api-load",
    about = "Open-loop constant-rate load on the API's hot routes (loopback only)"
)]
struct Args {
    /// The API's address (must be a loopback address).
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// Which route to load.
    #[arg(long, value_enum, default_value = "pageview")]
    mode: Mode,
    /// Requests per second, all connections together.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Warm-up seconds: load is applied but not recorded.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Generator threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Distinct device fingerprints.
    #[arg(long, default_value_t = 50_000)]
    fingerprints: usize,
    /// Distinct page paths.
    #[arg(long, default_value_t = 50)]
    paths: usize,
    /// Community ids, comma-separated: the first paths are their pages (with `community_id`);
    /// visitors mode asks for their stats in turn.
    #[arg(long, value_delimiter = ',')]
    communities: Vec<uuid::Uuid>,
    /// Marks every fingerprint and path of this benchmark (letters, digits, `-`).
    #[arg(long, default_value = "load")]
    tag: String,
    /// Bearer token for `/v1` (default `API_TOKEN`).
    #[arg(long, env = "API_TOKEN")]
    token: Option<String>,
    /// The API process, for its CPU.
    #[arg(long)]
    api_pid: Option<u32>,
    /// The Redis server process, for its CPU.
    #[arg(long)]
    redis_pid: Option<u32>,
    /// The row's label (default: mode and rate).
    #[arg(long)]
    label: Option<String>,
    /// Print the table header before the row.
    #[arg(long)]
    header: bool,
}

/// User agents, one in 12 a crawler. None holds `"` or `\`: they go into JSON unescaped.
const USER_AGENTS: [&str; 12] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];
const REFERRERS: [&str; 5] = [
    "",
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "https://t.co/x",
    "",
];

/// What one connection saw.
#[derive(Default)]
struct ConnStats {
    /// Latencies (µs) of requests scheduled in the measured window.
    lat_us: Vec<u32>,
    ok: u64,
    errors: u64,
    unsent: u64,
    /// Responses completed inside the measured window (for CPU per request).
    done_in_window: u64,
    first_error: Option<String>,
    /// Sum and count of (actual − scheduled send) for sends made on an idle connection.
    lag_us_sum: u64,
    lag_n: u64,
    last_done: Option<Instant>,
}

/// The times every connection shares.
#[derive(Clone, Copy)]
struct Plan {
    t0: Instant,
    measure_from: Instant,
    end: Instant,
    hard_stop: Instant,
    interval: Duration,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        bail!("--addr {} is not a loopback address", args.addr);
    }
    if !(args.rate > 0.0 && args.duration > 0.0 && args.warmup >= 0.0) {
        bail!("--rate and --duration must be positive, --warmup not negative");
    }
    if args.connections == 0 || args.fingerprints == 0 || args.paths == 0 {
        bail!("--connections, --fingerprints and --paths must be at least 1");
    }
    if !args
        .tag
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        bail!("--tag must be letters, digits and '-'");
    }
    if args.mode == Mode::Visitors && args.communities.is_empty() {
        bail!("visitors mode needs --communities");
    }
    runtime(args.threads)?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    // Open every connection first, so connection setup is not measured.
    let mut streams = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        streams.push(open(args.addr).await?);
    }
    let t0 = Instant::now() + Duration::from_millis(50);
    let measure_from = t0 + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let plan = Plan {
        t0,
        measure_from,
        end,
        hard_stop: end + Duration::from_secs(5),
        interval: Duration::from_secs_f64(args.connections as f64 / args.rate),
    };
    let args = std::sync::Arc::new(args);

    let sampler = {
        let args = args.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let a = cpu_sample(&args);
            tokio::time::sleep_until(end.into()).await;
            let b = cpu_sample(&args);
            (a, b)
        })
    };
    let mut tasks = Vec::with_capacity(args.connections);
    for (i, stream) in streams.into_iter().enumerate() {
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            connection(i, stream, &args, plan).await
        }));
    }
    let mut all = ConnStats::default();
    for t in tasks {
        let s = t.await.context("a connection task panicked")?;
        all.lat_us.extend(s.lat_us);
        all.ok += s.ok;
        all.errors += s.errors;
        all.unsent += s.unsent;
        all.done_in_window += s.done_in_window;
        all.lag_us_sum += s.lag_us_sum;
        all.lag_n += s.lag_n;
        if all.first_error.is_none() {
            all.first_error = s.first_error;
        }
        all.last_done = all.last_done.max(s.last_done);
    }
    let (a, b) = sampler.await.context("the CPU sampler panicked")?;
    report(&args, &plan, all, a, b);
    Ok(())
}

async fn open(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// CPU seconds so far of (api, redis, this process), and machine (busy, total) jiffies.
#[derive(Clone, Copy)]
struct CpuSample {
    at: Instant,
    api: f64,
    redis: f64,
    me: f64,
    machine: (u64, u64),
}

fn cpu_sample(args: &Args) -> CpuSample {
    CpuSample {
        at: Instant::now(),
        api: args.api_pid.map_or(0.0, process_cpu),
        redis: args.redis_pid.map_or(0.0, process_cpu),
        me: process_cpu(std::process::id()),
        machine: machine_jiffies(),
    }
}

/// One keep-alive connection's schedule.
async fn connection(i: usize, stream: TcpStream, args: &Args, plan: Plan) -> ConnStats {
    let mut st = ConnStats {
        lat_us: Vec::with_capacity(
            (args.duration * args.rate / args.connections as f64 * 1.1) as usize + 16,
        ),
        ..Default::default()
    };
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + i as u64);
    let mut stream = Some(stream);
    let mut req = Vec::with_capacity(1024);
    let mut body = String::with_capacity(768);
    let mut buf = Vec::with_capacity(4096);
    let mut scheduled = plan.t0 + plan.interval.mul_f64(i as f64 / args.connections as f64);
    let mut prev_done = plan.t0;
    let mut n: u64 = 0;
    let auth = args
        .token
        .as_deref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    while scheduled < plan.end {
        let now = Instant::now();
        if now >= plan.hard_stop {
            let left = plan.end.saturating_duration_since(scheduled).as_secs_f64()
                / plan.interval.as_secs_f64();
            st.unsent += left.ceil() as u64;
            break;
        }
        if scheduled > now {
            tokio::time::sleep_until(scheduled.into()).await;
        }
        build_request(args, &auth, &mut rng, i, n, &mut body, &mut req);
        let sent = Instant::now();
        let was_idle = prev_done <= scheduled;
        if was_idle {
            st.lag_us_sum += sent.saturating_duration_since(scheduled).as_micros() as u64;
            st.lag_n += 1;
        }
        let outcome = match stream.as_mut() {
            Some(s) => exchange(s, &req, &mut buf).await,
            None => match open(args.addr).await {
                Ok(s) => {
                    let s = stream.insert(s);
                    exchange(s, &req, &mut buf).await
                }
                Err(e) => Err(e),
            },
        };
        let done = Instant::now();
        prev_done = done;
        if done >= plan.measure_from && done <= plan.end {
            st.done_in_window += 1;
        }
        let from = if was_idle { sent } else { scheduled };
        match outcome {
            Ok((status, keep_alive)) => {
                if (200..300).contains(&status) {
                    st.ok += 1;
                } else {
                    st.errors += 1;
                    if st.first_error.is_none() {
                        st.first_error = Some(format!("HTTP {status}"));
                    }
                }
                if !keep_alive {
                    stream = None;
                }
                if scheduled >= plan.measure_from {
                    let us = done.saturating_duration_since(from).as_micros();
                    st.lat_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                    st.last_done = Some(done);
                }
            }
            Err(e) => {
                st.errors += 1;
                if st.first_error.is_none() {
                    st.first_error = Some(format!("{e:#}"));
                }
                stream = None;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        n += 1;
        scheduled += plan.interval;
    }
    st
}

/// Write one request and read its response; returns (status, keep-alive).
async fn exchange(s: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> anyhow::Result<(u16, bool)> {
    s.write_all(req).await.context("write")?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk).await.context("read")?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("response head is not UTF-8")?;
    let status: u16 = head
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .context("bad status line")?;
    let mut length = None;
    let mut keep_alive = true;
    for line in head.split("\r\n").skip(1) {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse::<usize>().ok();
        } else if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
            keep_alive = false;
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked responses are not supported");
        }
    }
    let total = head_end + length.context("response without Content-Length")?;
    while buf.len() < total {
        let n = s.read(&mut chunk).await.context("read body")?;
        if n == 0 {
            bail!("connection closed mid-body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, keep_alive))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `n`-th request of connection `conn` into `req` (`body` is scratch).
fn build_request(
    args: &Args,
    auth: &str,
    rng: &mut StdRng,
    conn: usize,
    n: u64,
    body: &mut String,
    req: &mut Vec<u8>,
) {
    req.clear();
    body.clear();
    match args.mode {
        Mode::Visitors => {
            let id =
                args.communities[(conn + n as usize * args.connections) % args.communities.len()];
            let _ = write!(
                body,
                "GET /v1/communities/{id}/visitors HTTP/1.1\r\nHost: {}\r\n{auth}\r\n",
                args.addr
            );
            req.extend_from_slice(body.as_bytes());
        }
        Mode::Pageview => {
            let tag = &args.tag;
            let fp = rng.random_range(0..args.fingerprints);
            let page = rng.random_range(0..args.paths);
            let ua = USER_AGENTS[rng.random_range(0..USER_AGENTS.len())];
            let referrer = REFERRERS[rng.random_range(0..REFERRERS.len())];
            let ip = fp % 250 + 1;
            let _ = write!(
                body,
                r#"{{"fingerprint":"bench-{tag}-{fp}","url":"/bench-{tag}/page-{page}/?utm_source=x","referrer":"{referrer}","user_agent":"{ua}","ip":"203.0.113.{ip}","url_name":"page_{page}""#
            );
            match args.communities.get(page) {
                Some(id) => {
                    let _ = write!(body, r#","page_type":"community","community_id":"{id}"}}"#);
                }
                None => body.push_str(r#","page_type":"page"}"#),
            }
            let _ = std::io::Write::write_fmt(
                req,
                format_args!(
                    "POST /v1/track/pageview HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
                    args.addr,
                    body.len()
                ),
            );
        }
    }
}

/// Nearest-rank percentile of sorted `v`, in ms.
fn pct_ms(v: &[u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    f64::from(v[rank.clamp(1, v.len()) - 1]) / 1000.0
}

fn report(args: &Args, plan: &Plan, mut all: ConnStats, a: CpuSample, b: CpuSample) {
    all.lat_us.sort_unstable();
    let v = &all.lat_us;
    let until = all.last_done.map_or(plan.end, |d| d.max(plan.end));
    let span = until.duration_since(plan.measure_from).as_secs_f64();
    let achieved = v.len() as f64 / span;
    let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let pct = |x: f64, y: f64| 100.0 * (y - x) / wall;
    let (mb, mt) = (
        b.machine.0.saturating_sub(a.machine.0),
        b.machine.1.saturating_sub(a.machine.1),
    );
    // Whole machine as % of one core (2 cores busy = 200 %).
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let machine = if mt == 0 {
        0.0
    } else {
        100.0 * cores * mb as f64 / mt as f64
    };
    let label = args.label.clone().unwrap_or_else(|| {
        format!(
            "{} @{}",
            match args.mode {
                Mode::Pageview => "pageview",
                Mode::Visitors => "visitors",
            },
            args.rate
        )
    });
    let per_req = |x: f64, y: f64| {
        if all.done_in_window == 0 {
            f64::NAN
        } else {
            1e6 * (y - x) / all.done_in_window as f64
        }
    };
    if args.header {
        println!(
            "{:<20} {:>6} {:>8} {:>6} {:>7} {:>7} {:>7} {:>8} {:>8} {:>5} {:>6} {:>5} {:>5} {:>8} {:>8}",
            "run",
            "target",
            "achieved",
            "errors",
            "p50ms",
            "p90ms",
            "p99ms",
            "p99.9ms",
            "maxms",
            "api%",
            "redis%",
            "gen%",
            "mach%",
            "api us/r",
            "rds us/r",
        );
    }
    println!(
        "{:<20} {:>6.0} {:>8.0} {:>6} {:>7.3} {:>7.3} {:>7.3} {:>8.3} {:>8.1} {:>5.0} {:>6.0} {:>5.0} {:>5.0} {:>8.1} {:>8.1}",
        label,
        args.rate,
        achieved,
        all.errors,
        pct_ms(v, 50.0),
        pct_ms(v, 90.0),
        pct_ms(v, 99.0),
        pct_ms(v, 99.9),
        pct_ms(v, 100.0),
        pct(a.api, b.api),
        pct(a.redis, b.redis),
        pct(a.me, b.me),
        machine,
        per_req(a.api, b.api),
        per_req(a.redis, b.redis),
    );
    let lag = if all.lag_n == 0 {
        0.0
    } else {
        all.lag_us_sum as f64 / all.lag_n as f64 / 1000.0
    };
    eprintln!(
        "[api-load] {label}: {} recorded over {span:.1} s, {} ok, {} errors{}, {} unsent; \
         mean timer lag {lag:.3} ms on idle connections; CPU over {wall:.1} s as % of one core: \
         api {:.0}, redis {:.0}, generator {:.0}, whole machine {machine:.0} of {:.0}; CPU µs per \
         response: api {:.1}, redis {:.1}, generator {:.1}",
        v.len(),
        all.ok,
        all.errors,
        all.first_error
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
        all.unsent,
        pct(a.api, b.api),
        pct(a.redis, b.redis),
        pct(a.me, b.me),
        cores * 100.0,
        per_req(a.api, b.api),
        per_req(a.redis, b.redis),
        per_req(a.me, b.me),
    );
}
