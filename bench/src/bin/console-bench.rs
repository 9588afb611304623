//! `console-bench`: how long the console's pages take to render against a running `api` as a
//! queue's dead jobs grow. Measures every page with none, then seeds `--dead` dead jobs (pushed,
//! leased and failed for good, as a worker would) and measures again, in the same run.
//! Run by `bench/console.sh`, which starts the API over a private namespace.

use std::time::Instant;

use anyhow::Context as _;
use bench::{median, percentile};
use clap::Parser;
use domain::args::JobArgs as _;
use domain::jobs::PersistAnonymousSession;
use queue::{Ack, NewJob};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser, Debug)]
#[command(
    name = "console-bench",
    about = "Console page times with many dead jobs"
)]
struct Args {
    /// The API's address.
    #[arg(long, default_value = "127.0.0.1:8097")]
    api: String,
    /// Its token.
    #[arg(long, env = "API_TOKEN")]
    token: String,
    /// Dead jobs to seed.
    #[arg(long, default_value_t = 100_000)]
    dead: usize,
    /// Requests per page and phase.
    #[arg(long, default_value_t = 30)]
    runs: usize,
}

/// One request over a fresh connection: the status and the body's length.
async fn request(addr: &str, head: &str, body: &str) -> anyhow::Result<(u16, String, usize)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!(
            "{head}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .context("no status line")?;
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((status, headers.to_owned(), body.len()))
}

async fn measure(args: &Args, cookie: &str, pages: &[String]) -> anyhow::Result<()> {
    for page in pages {
        let mut ms = Vec::with_capacity(args.runs);
        let mut bytes = 0;
        for _ in 0..args.runs {
            let t = Instant::now();
            let (status, _, len) = request(
                &args.api,
                &format!("GET {page} HTTP/1.1\r\nCookie: {cookie}"),
                "",
            )
            .await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(status == 200, "{page}: {status}");
            bytes = len;
        }
        println!(
            "{page:<70} median {:>7.2} ms  p95 {:>7.2} ms  {bytes} bytes",
            median(&ms),
            percentile(&ms, 95.0)
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = domain::config::Settings::from_env()?;
    let client = redis::Client::open(settings.redis_url.as_str())?;
    let conn = domain::conn::RedisConn::Single(redis::aio::ConnectionManager::new(client).await?);
    let queues = domain::queues::Queues::new(conn, &settings);
    let name = PersistAnonymousSession::NAME;
    let q = queues.get(name).context("the queue")?;

    let (status, headers, _) = request(
        &args.api,
        "POST /console/login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        &format!("token={}", args.token),
    )
    .await?;
    anyhow::ensure!(status == 303, "sign-in: {status}");
    let cookie = headers
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .context("no cookie")?
        .to_owned();

    let pages = |last: usize, id: &str| {
        vec![
            "/console".to_owned(),
            format!("/console/queues/{name}?state=dead"),
            format!("/console/queues/{name}?state=dead&offset={last}"),
            format!("/console/queues/{name}?state=retrying"),
            format!("/console/queues/{name}/jobs/{id}"),
        ]
    };
    println!("# no dead jobs");
    measure(&args, &cookie, &pages(0, "none")).await?;

    let t = Instant::now();
    let mut left = args.dead;
    while left > 0 {
        let n = left.min(1000);
        q.push_many(
            (0..n)
                .map(|i| NewJob::new(format!(r#"{{"fingerprint":"bench-{left}-{i}"}}"#)))
                .collect(),
        )
        .await?;
        let leased = q.fetch(n).await?.jobs;
        let acks: Vec<Ack> = leased
            .iter()
            .map(|j| Ack::Dead {
                id: j.id.clone(),
                token: j.token,
                error: "seeded by console-bench".into(),
            })
            .collect();
        q.ack(&acks).await?;
        left -= n;
    }
    let dead = q.stats().await?.dead;
    println!(
        "# seeded {dead} dead jobs in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let some = q.dead_ids(1).await?.pop().context("a dead job")?;
    println!("# {dead} dead jobs");
    measure(&args, &cookie, &pages(dead as usize - 50, &some)).await?;
    Ok(())
}
