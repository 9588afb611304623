//! `cpu-stalls`: how much CPU time this machine takes away from a busy program, measured.
//!
//! One thread per core spins for `--seconds`, reading the monotonic clock in a loop; whenever two
//! readings are more than `--min-us` apart the thread was not running (preempted by another
//! process, a kernel thread, or the hypervisor taking the virtual CPU away). Run on an otherwise
//! idle machine it shows the stalls every latency figure here is exposed to: a server that loses
//! its core for 10 ms at 15,000 requests/s has 150 requests waiting when it gets it back. Prints
//! one line per thread and a summary line; uses every core while it runs, so never run it beside
//! a measurement.

use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "cpu-stalls",
    about = "Measure the time busy threads lose to preemption"
)]
struct Args {
    /// How long to spin.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Gaps shorter than this (µs) are not counted.
    #[arg(long, default_value_t = 500)]
    min_us: u64,
    /// Spinning threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// The gaps (µs) one spinning thread saw.
fn spin(run_for: Duration, min: Duration) -> Vec<u64> {
    let start = Instant::now();
    let mut last = start;
    let mut gaps = Vec::new();
    loop {
        let now = Instant::now();
        let gap = now - last;
        if gap >= min {
            gaps.push(gap.as_micros() as u64);
        }
        last = now;
        if now - start >= run_for {
            return gaps;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.seconds.is_nan() || args.seconds <= 0.0 {
        anyhow::bail!("--seconds must be positive");
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    let run_for = Duration::from_secs_f64(args.seconds);
    let min = Duration::from_micros(args.min_us);
    let handles: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || spin(run_for, min)))
        .collect();
    let mut all = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        let gaps = h
            .join()
            .map_err(|_| anyhow::anyhow!("a spinning thread panicked"))?;
        println!("thread {i}: {}", summary(&gaps, run_for));
        all.extend(gaps);
    }
    println!(
        "all {threads} threads over {:.1} s (gaps of at least {} µs): {}",
        args.seconds,
        args.min_us,
        summary(&all, run_for * threads as u32)
    );
    Ok(())
}

/// `n gaps, total ms (share of the time), n over 2 ms, n over 10 ms, longest ms`.
fn summary(gaps: &[u64], over: Duration) -> String {
    let total: u64 = gaps.iter().sum();
    format!(
        "{} gaps, {:.1} ms lost ({:.2} %), {} over 2 ms, {} over 10 ms, longest {:.2} ms",
        gaps.len(),
        total as f64 / 1000.0,
        100.0 * total as f64 / over.as_micros().max(1) as f64,
        gaps.iter().filter(|&&g| g > 2_000).count(),
        gaps.iter().filter(|&&g| g > 10_000).count(),
        gaps.iter().copied().max().unwrap_or(0) as f64 / 1000.0,
    )
}
