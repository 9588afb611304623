#!/usr/bin/env bash
# bench/scale.sh: how throughput grows with processes, in one command (issue 17, "Scaling").
#
#   jobs:  persist_anonymous_session through 1, 2 and 4 `worker run` processes
#          (target/release/fleet-bench --workers W: N jobs queued, then the workers started,
#          timed to the last row), with CPU per job of the workers, PostgreSQL and Redis;
#   views: POST /v1/track/pageview through 1 and 2 `api` processes (bench/api.sh with
#          API_PROCESSES=1|2: open-loop load at 15,000 req/s and at the probe rates), with CPU per
#          view of the api processes and Redis and the latency percentiles.
#
# The per-unit costs it prints are what docs/capacity.md projects from. On this machine (2 cores)
# the load generator, PostgreSQL and Redis share the cores with the processes measured, so more
# processes than cores cannot add throughput here; the CPU per unit is what carries to a bigger
# machine.
#
# Tunables (environment): N (20000 jobs per run), RUNS (1 per worker count), WORKERS ("1 2 4"),
# API_PROCESSES_LIST ("1 2"), DURATION (10 s per load run), PROBE_RATES ("25000 35000"),
# SKIP_BUILD=1, and bench/api.sh's own.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-20000}
RUNS=${RUNS:-1}
WORKERS=${WORKERS:-"1 2 4"}
API_PROCESSES_LIST=${API_PROCESSES_LIST:-"1 2"}
out=$(mktemp -d /tmp/celeriac-scale.XXXXXX)
trap 'rm -rf "$out"' EXIT

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked -p worker -p api -p migration -p bench \
    --bin worker --bin api --bin migration --bin fleet-bench --bin api-load --bin cpu-stalls
fi

echo "## jobs: persist_anonymous_session, N=$N, $RUNS run(s) per worker count"
echo
echo "| workers | drain jobs/s | × 1 worker | worker CPU ms/job (all) | PostgreSQL ms/job | PG + Redis ms/job | machine busy % |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
base=
for w in $WORKERS; do
  target/release/fleet-bench --n "$N" --runs "$RUNS" --workers "$w" >"$out/jobs-$w.txt" 2>"$out/jobs-$w.log" ||
    { cat "$out/jobs-$w.log" >&2; exit 1; }
  # The median column of a row of fleet-bench's table.
  med() { awk -F'|' -v l="$1" 'index($2, l) { gsub(/ /, "", $3); print $3 }' "$out/jobs-$w.txt"; }
  rate=$(med "worker start → last row (drain)")
  [ -n "$rate" ] || { echo "scale: no drain rate in fleet-bench's table" >&2; cat "$out/jobs-$w.txt" >&2; exit 1; }
  base=${base:-$rate}
  echo "| $w | $rate | $(awk -v a="$rate" -v b="$base" 'BEGIN { printf "%.2f", a / b }') |" \
    "$(med "worker CPU per job") | $(med "of which PostgreSQL") | $(med "PostgreSQL + Redis") | $(med "machine busy during") |"
done

for k in $API_PROCESSES_LIST; do
  echo
  echo "## views: $k api process(es)"
  echo
  API_PROCESSES=$k SKIP_BUILD=1 DURATION=${DURATION:-10} ARRIVALS=uniform ROUNDS=1 \
    PROBE_RATES=${PROBE_RATES:-"25000 35000"} bench/api.sh 2>"$out/api-$k.log" ||
    { cat "$out/api-$k.log" >&2; exit 1; }
done
echo
echo "Command: bench/scale.sh (N=$N RUNS=$RUNS WORKERS=\"$WORKERS\" API_PROCESSES_LIST=\"$API_PROCESSES_LIST\")"
