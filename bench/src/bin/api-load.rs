//! `api-load`: an open-loop, constant-rate HTTP/1.1 load generator for the API's hot routes
//! (`POST /v1/track/pageview`, `GET /v1/communities/{id}/visitors`), loopback only.
//!
//! N keep-alive connections over raw sockets. A pacer thread (outside the Tokio runtime, whose
//! timer has millisecond resolution) makes the arrivals: request `j` is written on connection
//! `j mod N` at its due time, whether or not the connection's earlier requests have been answered
//! (HTTP/1.1 pipelining; the server answers each connection's requests in order), and a reader
//! task per connection matches responses to due times. Nothing the server does can delay a send,
//! so latency, counted from the due time, has no coordinated omission. `--arrivals uniform` (the
//! default) spaces arrivals evenly at `1 / rate`; `poisson` draws exponential gaps of mean
//! `1 / rate` (independent visitors); `ms-ticks` rounds every uniform arrival up to the next
//! whole millisecond, as a millisecond timer would, so the server sees a burst of `rate / 1000`
//! requests each millisecond. The pacer's mean lateness is printed as `send lag`.
//! Requests due in the warm-up are sent but not recorded; requests unanswered 5 s after the end
//! are counted as `unanswered`.
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
use bench::{machine_jiffies, process_cpu, runtime};
use clap::{Parser, ValueEnum};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `POST /v1/track/pageview`, anonymous visitors.
    Pageview,
    /// `GET /v1/communities/{id}/visitors`.
    Visitors,
}

/// How arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Arrivals {
    /// Evenly, `1 / rate` apart.
    Uniform,
    /// Exponential gaps of mean `1 / rate` (a Poisson process).
    Poisson,
    /// Evenly, each rounded up to the next whole millisecond (a millisecond timer's bursts).
    MsTicks,
}

#[derive(Parser, Debug)]
#[command(
    name = "api-load",
    about = "Open-loop constant-rate load on the API's hot routes (loopback only)"
)]
struct Args {
    /// The API's address (must be a loopback address); several, comma-separated, share the
    /// connections round-robin (one per API process).
    #[arg(
        long,
        default_value = "127.0.0.1:8000",
        value_delimiter = ',',
        required = true
    )]
    addr: Vec<SocketAddr>,
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
    /// How arrivals are spaced in time.
    #[arg(long, value_enum, default_value = "uniform")]
    arrivals: Arrivals,
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
    /// The API processes, for their CPU (comma-separated; their sum is reported).
    #[arg(long, value_delimiter = ',')]
    api_pid: Vec<u32>,
    /// The Redis server processes, for their CPU (comma-separated, a cluster's nodes; their sum
    /// is reported).
    #[arg(long, value_delimiter = ',')]
    redis_pid: Vec<u32>,
    /// The row's label (default: mode and rate).
    #[arg(long)]
    label: Option<String>,
    /// Print the table header before the row.
    #[arg(long)]
    header: bool,
    /// Write every recorded request as `<µs into the window it was due> <latency µs>` to this
    /// file, in send order (to see whether slow requests come together in time).
    #[arg(long)]
    latency_log: Option<std::path::PathBuf>,
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

/// What the connections saw.
#[derive(Default)]
struct Seen {
    /// Latencies (µs) of requests due in the measured window.
    lat_us: Vec<u32>,
    /// With `--latency-log`: (µs from the measured window's start to the due time, latency µs).
    timeline: Vec<(u32, u32)>,
    ok: u64,
    errors: u64,
    /// Requests written but never answered (the connection closed, or the hard stop came).
    unanswered: u64,
    /// Responses completed inside the measured window (for CPU per request).
    done_in_window: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

impl Seen {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    fn merge(&mut self, s: Seen) {
        self.lat_us.extend(s.lat_us);
        self.timeline.extend(s.timeline);
        self.ok += s.ok;
        self.errors += s.errors;
        self.unanswered += s.unanswered;
        self.done_in_window += s.done_in_window;
        if self.first_error.is_none() {
            self.first_error = s.first_error;
        }
        self.last_done = self.last_done.max(s.last_done);
    }
}

/// The times every connection shares.
#[derive(Clone, Copy)]
struct Plan {
    t0: Instant,
    measure_from: Instant,
    end: Instant,
    hard_stop: Instant,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(addr) = args.addr.iter().find(|a| !a.ip().is_loopback()) {
        bail!("--addr {addr} is not a loopback address");
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
    // Open every connection first, so connection setup is not measured. Each is split: the
    // pacer writes on one handle, a reader task reads from the other.
    let mut writers = Vec::with_capacity(args.connections);
    let mut readers = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let (w, r) = open(args.addr[i % args.addr.len()])?;
        let (due_tx, due_rx) = tokio::sync::mpsc::unbounded_channel();
        writers.push(Writer {
            stream: w,
            due: due_tx,
            rng: StdRng::seed_from_u64(0x5eed_0000 + i as u64),
            n: 0,
            dead: false,
        });
        readers.push((r, due_rx));
    }
    let t0 = Instant::now() + Duration::from_millis(50);
    let measure_from = t0 + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let plan = Plan {
        t0,
        measure_from,
        end,
        hard_stop: end + Duration::from_secs(5),
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
    let (paced_tx, paced_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(args.connections);
    for (stream, dues) in readers {
        let log = args.latency_log.is_some();
        let paced = paced_rx.clone();
        tasks.push(tokio::spawn(read_responses(stream, dues, paced, plan, log)));
    }
    let pacer = {
        let args = args.clone();
        std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || {
                let out = pace(&args, plan, writers);
                let _ = paced_tx.send(true);
                out
            })
            .context("cannot start the pacer thread")?
    };
    let mut all = Seen::default();
    for t in tasks {
        all.merge(t.await.context("a connection task panicked")?);
    }
    let (a, b) = sampler.await.context("the CPU sampler panicked")?;
    let paced = pacer
        .join()
        .map_err(|_| anyhow::anyhow!("the pacer thread panicked"))?;
    all.merge(paced.seen);
    if let Some(path) = &args.latency_log {
        all.timeline.sort_unstable();
        let mut out = String::with_capacity(all.timeline.len() * 16);
        for (at, us) in &all.timeline {
            let _ = writeln!(out, "{at} {us}");
        }
        std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let lag_ms = if paced.sent == 0 {
        0.0
    } else {
        paced.lag_us_sum as f64 / paced.sent as f64 / 1000.0
    };
    report(&args, &plan, all, lag_ms, a, b);
    Ok(())
}

/// A connection as two handles on one socket: a blocking one for the pacer's writes and a Tokio
/// one for its reader (they share the non-blocking flag, so the writer handles `WouldBlock`).
fn open(addr: SocketAddr) -> anyhow::Result<(std::net::TcpStream, TcpStream)> {
    let s =
        std::net::TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    s.set_nodelay(true)?;
    let r = s.try_clone()?;
    r.set_nonblocking(true)?;
    Ok((s, TcpStream::from_std(r)?))
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
        api: args.api_pid.iter().map(|pid| process_cpu(*pid)).sum(),
        redis: args.redis_pid.iter().map(|pid| process_cpu(*pid)).sum(),
        me: process_cpu(std::process::id()),
        machine: machine_jiffies(),
    }
}

/// The pacer's end of one connection.
struct Writer {
    stream: std::net::TcpStream,
    /// Each written request's due time, for the reader (responses come back in order).
    due: UnboundedSender<Instant>,
    rng: StdRng,
    n: u64,
    dead: bool,
}

/// What the pacer did.
struct Paced {
    sent: u64,
    /// Sum of (actual write − due), µs.
    lag_us_sum: u64,
    /// Write failures.
    seen: Seen,
}

/// Make the arrivals from `plan.t0` to `plan.end`: at each one's due time (sleeping in the
/// kernel's high-resolution timer in between), build request `j` and write it on connection
/// `j mod N`, whether or not that connection's earlier requests have been answered (HTTP/1.1
/// pipelining: the server answers in order). Nothing the server does can delay a send, so
/// latency counted from the due time has no coordinated omission.
fn pace(args: &Args, plan: Plan, mut conns: Vec<Writer>) -> Paced {
    let gap = 1.0 / args.rate;
    let auth = args
        .token
        .as_deref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut out = Paced {
        sent: 0,
        lag_us_sum: 0,
        seen: Seen::default(),
    };
    let mut req = Vec::with_capacity(1024);
    let mut body = String::with_capacity(768);
    let mut rng = StdRng::seed_from_u64(0x9ace_0000);
    let mut poisson_at = 0.0_f64;
    for j in 0_u64.. {
        let at = match args.arrivals {
            Arrivals::Uniform => j as f64 * gap,
            Arrivals::MsTicks => (j as f64 * gap * 1000.0).ceil() / 1000.0,
            Arrivals::Poisson => {
                let at = poisson_at;
                // 1 - u is in (0, 1]: the logarithm is finite.
                poisson_at += -(1.0 - rng.random::<f64>()).ln() * gap;
                at
            }
        };
        let due = plan.t0 + Duration::from_secs_f64(at);
        if due >= plan.end {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let i = (j % conns.len() as u64) as usize;
        let c = &mut conns[i];
        if c.dead {
            out.seen.error("connection lost".into());
            continue;
        }
        build_request(args, &auth, &mut c.rng, i, c.n, &mut body, &mut req);
        c.n += 1;
        out.lag_us_sum += due.elapsed().as_micros() as u64;
        out.sent += 1;
        match write_all(&mut c.stream, &req, plan.hard_stop) {
            Ok(()) => {
                // A closed reader (it saw the connection end) answers nothing more.
                let _ = c.due.send(due);
            }
            Err(e) => {
                c.dead = true;
                out.seen.error(format!("write: {e}"));
            }
        }
    }
    out
}

/// Write all of `buf` on a socket that may be non-blocking, until `deadline`.
fn write_all(
    s: &mut std::net::TcpStream,
    mut buf: &[u8],
    deadline: Instant,
) -> std::io::Result<()> {
    use std::io::{ErrorKind, Write as _};
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(ErrorKind::TimedOut.into());
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read one connection's responses, in order, matching each to its request's due time, until
/// the pacer has finished and every request written has its answer (or the hard stop).
async fn read_responses(
    mut s: TcpStream,
    mut dues: UnboundedReceiver<Instant>,
    mut paced: tokio::sync::watch::Receiver<bool>,
    plan: Plan,
    log: bool,
) -> Seen {
    let mut st = Seen {
        lat_us: Vec::with_capacity(4096),
        ..Default::default()
    };
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut start = 0;
    'conn: loop {
        loop {
            match parse_response(&buf[start..]) {
                Ok(None) => break,
                Ok(Some((status, len))) => {
                    start += len;
                    let done = Instant::now();
                    let Some(due) = dues.recv().await else {
                        st.error("a response to no request".into());
                        break 'conn;
                    };
                    record(&mut st, &plan, due, done, status, log);
                }
                Err(e) => {
                    st.error(format!("{e:#}"));
                    break 'conn;
                }
            }
        }
        buf.drain(..start);
        start = 0;
        if *paced.borrow() && dues.is_empty() && buf.is_empty() {
            break;
        }
        tokio::select! {
            read = s.read_buf(&mut buf) => match read {
                Ok(0) => {
                    if !dues.is_empty() {
                        st.error("connection closed by the server".into());
                    }
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    st.error(format!("read: {e}"));
                    break;
                }
            },
            // Wakes the reader when the pacer is done, to see whether anything is outstanding.
            _ = paced.changed(), if !*paced.borrow() => {}
            () = tokio::time::sleep_until(plan.hard_stop.into()) => break,
        }
    }
    dues.close();
    while dues.try_recv().is_ok() {
        st.unanswered += 1;
    }
    st
}

fn record(st: &mut Seen, plan: &Plan, due: Instant, done: Instant, status: u16, log: bool) {
    if (200..300).contains(&status) {
        st.ok += 1;
    } else {
        st.error(format!("HTTP {status}"));
    }
    if done >= plan.measure_from && done <= plan.end {
        st.done_in_window += 1;
    }
    if due >= plan.measure_from {
        let us = u32::try_from(done.saturating_duration_since(due).as_micros()).unwrap_or(u32::MAX);
        st.lat_us.push(us);
        st.last_done = Some(done);
        if log {
            let at = due.duration_since(plan.measure_from).as_micros();
            st.timeline
                .push((u32::try_from(at).unwrap_or(u32::MAX), us));
        }
    }
}

/// The first complete response in `buf`: `(status, its length in bytes)`, or `None` when more
/// bytes are needed. Only `Content-Length` bodies (what the API sends).
fn parse_response(buf: &[u8]) -> anyhow::Result<Option<(u16, usize)>> {
    let Some(head_end) = find(buf, b"\r\n\r\n").map(|p| p + 4) else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("response head is not UTF-8")?;
    let status: u16 = head
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .context("bad status line")?;
    let mut length = None;
    for line in head.split("\r\n").skip(1) {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse::<usize>().ok();
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked responses are not supported");
        }
    }
    let total = head_end + length.context("response without Content-Length")?;
    Ok((buf.len() >= total).then_some((status, total)))
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
                args.addr[0]
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
                    args.addr[0],
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

fn report(args: &Args, plan: &Plan, mut all: Seen, lag: f64, a: CpuSample, b: CpuSample) {
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
    eprintln!(
        "[api-load] {label} ({:?} arrivals): {} recorded over {span:.1} s, {} ok, {} errors{}, {} unanswered; \
         mean send lag {lag:.3} ms after the due time; CPU over {wall:.1} s as % of one core: \
         api {:.0}, redis {:.0}, generator {:.0}, whole machine {machine:.0} of {:.0}; CPU µs per \
         response: api {:.1}, redis {:.1}, generator {:.1}",
        args.arrivals,
        v.len(),
        all.ok,
        all.errors,
        all.first_error
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
        all.unanswered,
        pct(a.api, b.api),
        pct(a.redis, b.redis),
        pct(a.me, b.me),
        cores * 100.0,
        per_req(a.api, b.api),
        per_req(a.redis, b.redis),
        per_req(a.me, b.me),
    );
}
