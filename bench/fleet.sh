#!/usr/bin/env bash
# The fleet end to end against Celery (issues 3 and 5) in one command, on this machine, in one run:
#   a. cargo build --release --bins (tools) and --profile dist (the worker and migration measured);
#   b. the Celery peer benchmark (../shared/peer/celery/bench.sh): Celery 5.7, prefork:2;
#   c. the same script, same workload (N Celery messages on the `celery` list, the Redis document
#      read, the PostgreSQL upsert), with Celeriac's `worker run` consuming the list through its
#      Celery bridge;
#   d. both medians (drain jobs/s, peak RSS) and the ratios;
#   e. Celeriac natively: fleet-bench enqueues N persist_anonymous_session jobs through its own
#      queue and runs `worker run` against a scratch PostgreSQL database.
#
#   bench/fleet.sh                        # N=20000 RUNS=3
#   N=5000 RUNS=1 bench/fleet.sh          # quicker
#   PEER_SRC=/path/to/peer/celery bench/fleet.sh
#   SKIP_BUILD=1 bench/fleet.sh           # measure the binaries already built
#
# bench.sh creates .venv and results/ beside itself, and the shared peer directory must not be
# written, so it always runs from a copy in $PEER_DIR (default /tmp/celeriac-peer-celery; the
# .venv there is reused). bench.sh uses Redis DB $BENCH_REDIS_DB (7) and
# the PostgreSQL database celery_peer, which it creates and drops; fleet-bench uses DB 0 under a
# private bench-<uuid> namespace and a scratch database it drops.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# Everything printed is also kept in bench-results/ (git-ignored).
mkdir -p "$ROOT/bench-results"
LOG="$ROOT/bench-results/$(date -u +%Y%m%dT%H%M%SZ)-fleet.txt"
exec > >(tee -a "$LOG") 2>&1
echo "log: $LOG"
N=${N:-20000}
RUNS=${RUNS:-3}
# shellcheck source=bench/peer.sh
. "$ROOT/bench/peer.sh"

# --- a. build ----------------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --bins
  cargo build --profile dist --bin worker --bin migration
fi

# --- the peer, copied where it can write -------------------------------------------------------
peer_copy fleet
echo "fleet: Celery peer benchmark from $PEER"

latest() { ls -t "$PEER"/results/*.jsonl 2>/dev/null | head -n 1; }

# --- b. Celery ---------------------------------------------------------------------------------
echo; echo "== b. Celery 5.7 prefork:2, N=$N RUNS=$RUNS"
N=$N RUNS=$RUNS POOLS="prefork:2" "$PEER/bench.sh"
CELERY_JSONL=$(latest)

# --- c. Celeriac through the Celery bridge -----------------------------------------------------
echo; echo "== c. Celeriac worker (Celery bridge), N=$N RUNS=$RUNS"
WORKER_CMD="$ROOT/target/dist/worker run" MIGRATE_CMD="$ROOT/target/dist/migration up" \
  LABEL=celeriac N=$N RUNS=$RUNS "$PEER/bench.sh"
CELERIAC_JSONL=$(latest)
if [ "$CELERIAC_JSONL" = "$CELERY_JSONL" ]; then
  echo "fleet: the Celeriac run wrote no results" >&2; exit 1
fi

# --- d. medians and ratios ---------------------------------------------------------------------
summary() {
  jq -s '
    def median: sort | if length == 0 then null
      elif length % 2 == 1 then .[length / 2 | floor]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    { label: .[0].label, runs: length, rows_ok: (all(.rows_ok) and all(.queue_left == 0)),
      drain: (map(.drain_jobs_per_s) | median), e2e: (map(.jobs_per_s) | median),
      steady: (map(.steady_jobs_per_s) | median), rss: (map(.peak_rss_mib) | median),
      pss: (map(.peak_pss_mib) | median), cpu: (map(.worker_cpu_ms_per_job) | median),
      infra: (map(.pg_redis_cpu_ms_per_job) | median), foreign: (map(.foreign_cpu_pct) | median),
      drain_runs: map(.drain_jobs_per_s) }' "$1"
}
celery=$(summary "$CELERY_JSONL")
celeriac=$(summary "$CELERIAC_JSONL")
echo
echo "== d. Celery vs Celeriac on ../shared/peer/celery/bench.sh, N=$N, median of $RUNS, same run"
echo
jq -rn --argjson c "$celery" --argjson r "$celeriac" '
  def f: if . == null then "—" else (. * 10 | round / 10 | tostring) end;
  "| worker | runs | rows ok | drain jobs/s (runs) | e2e jobs/s | steady jobs/s | peak RSS MiB | peak PSS MiB | worker CPU ms/job | PG+Redis CPU ms/job | foreign CPU % |",
  "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ($c, $r | "| \(.label) | \(.runs) | \(if .rows_ok then "yes" else "NO" end) | \(.drain | f) (\(.drain_runs | map(tostring) | join(", "))) | \(.e2e | f) | \(.steady | f) | \(.rss | f) | \(.pss | f) | \(.cpu | f) | \(.infra | f) | \(.foreign | f) |"),
  "",
  "| ratio (Celeriac / Celery) | value | target |",
  "|---|---:|---:|",
  "| drain jobs/s | \($r.drain / $c.drain * 100 | round / 100)× | ≥ 10× |",
  "| peak RSS | \($r.rss / $c.rss * 1000 | round / 1000) (1/\($c.rss / $r.rss * 10 | round / 10)) | ≤ 0.1 |",
  "| worker CPU per job | \($r.cpu / $c.cpu * 1000 | round / 1000) | |"'
echo
echo "results: $CELERY_JSONL $CELERIAC_JSONL"

# --- e. Celeriac natively ----------------------------------------------------------------------
echo; echo "== e. Celeriac natively (its own queue, scratch PostgreSQL database), N=$N RUNS=$RUNS"
"$ROOT/target/release/fleet-bench" --n "$N" --runs "$RUNS" --worker-bin "$ROOT/target/dist/worker" --json
echo
echo "command: bench/fleet.sh (N=$N RUNS=$RUNS)"
