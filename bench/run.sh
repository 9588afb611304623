#!/usr/bin/env bash
# The queue benchmark (issue 2) in one command, on this machine, in one run:
#   1. queue-bench at N (default 200,000): push, memory per job, one-process drain, idle latency;
#   2. queue-bench and apalis-redis 1.0.0 on the same 7,500-job backlog (the largest apalis-redis
#      survives), apalis-redis with the research notes' §6 worker configuration and with its best
#      case (one fetch takes the whole backlog);
#   3. the ratios.
#
#   bench/run.sh                     # N=200000 RUNS=3
#   N=50000 RUNS=1 bench/run.sh      # quicker
#
# Needs Redis on 127.0.0.1:6379 (REDIS_URL to change). Every key lives under a private
# bench-<uuid> namespace that is deleted at the end; nothing is flushed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# Everything printed is also kept in bench-results/ (git-ignored).
mkdir -p "$ROOT/bench-results"
LOG="$ROOT/bench-results/$(date -u +%Y%m%dT%H%M%SZ)-queue.txt"
exec > >(tee -a "$LOG") 2>&1
echo "log: $LOG"
N=${N:-200000}
RUNS=${RUNS:-3}
SMALL=7500
export CARGO_TARGET_DIR="$ROOT/target"
BIN="$ROOT/target/release"

cargo build --release -p bench --bins
# Not a workspace member: its own lock file, same target directory.
(cd bench/apalis-redis-compare && cargo build --release --locked)

OUT=$(mktemp -d -t celeriac-bench-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
echo "== $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

echo; echo "== 1. queue-bench, N=$N"
"$BIN/queue-bench" --n "$N" --runs "$RUNS" --json | tee "$OUT/full.txt"

echo; echo "== 2a. queue-bench, N=$SMALL (same backlog as apalis-redis)"
"$BIN/queue-bench" --n "$SMALL" --runs "$RUNS" --only push,drain --json | tee "$OUT/small.txt"

echo; echo "== 2b. apalis-redis 1.0.0, N=$SMALL, research §6 configuration (batch_size 500, concurrency 500, poll 50 ms)"
"$BIN/apalis-redis-compare" --n "$SMALL" --runs "$RUNS" --batch-size 500 --concurrency 500 --poll-ms 50 --json \
  | tee "$OUT/apalis.txt"

echo; echo "== 2c. apalis-redis 1.0.0, N=$SMALL, best case: batch_size = concurrency = the whole backlog"
"$BIN/apalis-redis-compare" --n "$SMALL" --runs "$RUNS" --batch-size "$SMALL" --concurrency "$SMALL" --poll-ms 50 --json \
  | tee "$OUT/apalis-best.txt"

result() { sed -n 's/^RESULT //p' "$1"; }
ours=$(result "$OUT/small.txt")
theirs=$(result "$OUT/apalis.txt")
best=$(result "$OUT/apalis-best.txt")

echo
echo "== 3. Celeriac queue vs apalis-redis 1.0.0, N=$SMALL, median of $RUNS, same machine, same run"
echo
jq -rn --argjson o "$ours" --argjson a "$theirs" --argjson b "$best" '
  def f: if . == null then "—" elif . >= 1000 then (. | round | tostring) else (. * 10 | round / 10 | tostring) end;
  def r(x; y): if (x == null or y == null or y == 0) then "—" else ((x / y * 100 | round) / 100 | tostring) + "×" end;
  "| measurement | Celeriac | apalis-redis (§6 config) | ratio | apalis-redis (batch = backlog) | ratio |",
  "|---|---:|---:|---:|---:|---:|",
  "| push, 1,000 per round trip, one task, jobs/s | \($o.push_jobs_per_s | f) | \($a.push_jobs_per_s | f) | \(r($o.push_jobs_per_s; $a.push_jobs_per_s)) | \($b.push_jobs_per_s | f) | \(r($o.push_jobs_per_s; $b.push_jobs_per_s)) |",
  "| push, best form, jobs/s (Celeriac: \($o.push_tasks) tasks; apalis: one push_bulk call) | \($o.push_concurrent_jobs_per_s | f) | \($a.push_one_call_jobs_per_s | f) | \(r($o.push_concurrent_jobs_per_s; $a.push_one_call_jobs_per_s)) | \($b.push_one_call_jobs_per_s | f) | \(r($o.push_concurrent_jobs_per_s; $b.push_one_call_jobs_per_s)) |",
  "| drain of a \($o.n)-job backlog, one worker process, jobs/s | \($o.drain_jobs_per_s | f) | \($a.drain_jobs_per_s | f) | \(r($o.drain_jobs_per_s; $a.drain_jobs_per_s)) | \($b.drain_jobs_per_s | f) | \(r($o.drain_jobs_per_s; $b.drain_jobs_per_s)) |",
  "| Redis bytes per queued job (used_memory delta) | \($o.bytes_per_job_info | f) | \($a.bytes_per_job_info | f) | \(r($a.bytes_per_job_info; $o.bytes_per_job_info)) less | \($b.bytes_per_job_info | f) | \(r($b.bytes_per_job_info; $o.bytes_per_job_info)) less |",
  "| drain worker peak RSS, MiB | \($o.drain_peak_rss_mib | f) | \($a.drain_peak_rss_mib | f) | | \($b.drain_peak_rss_mib | f) | |"'
echo
echo "command: bench/run.sh (N=$N RUNS=$RUNS)"
