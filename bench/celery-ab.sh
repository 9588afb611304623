#!/usr/bin/env bash
# Builds compared with Celery in alternation, in one run: each round runs the Celery peer
# benchmark once (prefork:2), then each given worker command once, on the same workload as
# bench/fleet.sh (N Celery messages, `persist_anonymous_session` through the Celery bridge).
# This machine's speed moves by up to 2x within minutes, so a ratio means something only between
# runs of one round: the script prints each run and, per round, each build's drain over Celery's
# and over the first build's. docs/persist-speed.md reports its figures.
#
#   bench/celery-ab.sh LABEL 'WORKER COMMAND' [LABEL 'WORKER COMMAND' ...]
#   ROUNDS=5 bench/celery-ab.sh start '/tmp/worker-start run' new "$PWD/target/dist/worker run"
#   CELERY=0 bench/celery-ab.sh a '...' b '...'      # builds only, no Celery runs
#
# Knobs: ROUNDS (3), N (20000), CELERY (1), PEER_SRC and PEER_DIR as for bench/fleet.sh (the
# peer benchmark always runs from a copy). MIGRATE_CMD defaults to target/dist/migration up.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ $# -lt 2 ] || [ $(($# % 2)) -ne 0 ]; then
  sed -n '2,16p' "$0" >&2; exit 2
fi
mkdir -p "$ROOT/bench-results"
LOG="$ROOT/bench-results/$(date -u +%Y%m%dT%H%M%SZ)-celery-ab.txt"
exec > >(tee -a "$LOG") 2>&1
ROUNDS=${ROUNDS:-3}
N=${N:-20000}
CELERY=${CELERY:-1}
MIGRATE_CMD=${MIGRATE_CMD:-"$ROOT/target/dist/migration up"}
# shellcheck source=bench/peer.sh
. "$ROOT/bench/peer.sh"
peer_copy celery-ab
labels=() cmds=()
while [ $# -gt 0 ]; do labels+=("$1"); cmds+=("$2"); shift 2; done

latest() { ls -t "$PEER"/results/*.jsonl | head -n 1; }
# One field of the newest run's JSON line.
field() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])[sys.argv[2]])" "$(latest)" "$1"; }
row() {
  echo "| $1 | $2 | $(field drain_jobs_per_s) | $(field steady_jobs_per_s) | $(field worker_startup_s) |" \
    "$(field peak_rss_mib) | $(field worker_cpu_ms_per_job) | $(field pg_redis_cpu_ms_per_job) | $(field foreign_cpu_pct) |"
}

echo "celery-ab: N=$N ROUNDS=$ROUNDS; log $LOG"
echo
echo "| round | run | drain jobs/s | steady jobs/s | startup s | peak RSS MiB | worker CPU ms/job | PG+Redis CPU ms/job | foreign CPU % |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
summary=()
# Per build: its ratios, one per round, for the medians at the end.
declare -A over_first=() over_celery=()
for r in $(seq 1 "$ROUNDS"); do
  celery=
  if [ "$CELERY" = 1 ]; then
    N=$N RUNS=1 POOLS=prefork:2 "$PEER/bench.sh" >/dev/null 2>&1
    row "$r" celery
    celery=$(field drain_jobs_per_s)
  fi
  first=
  line="| $r |"
  for i in "${!labels[@]}"; do
    WORKER_CMD="${cmds[$i]}" MIGRATE_CMD="$MIGRATE_CMD" LABEL="${labels[$i]}" N=$N RUNS=1 \
      "$PEER/bench.sh" >/dev/null 2>&1
    row "$r" "${labels[$i]}"
    drain=$(field drain_jobs_per_s)
    first=${first:-$drain}
    ratio=$(awk -v a="$drain" -v b="$first" 'BEGIN { printf "%.2f", a / b }')
    line+=" $ratio"
    over_first[$i]+="$ratio "
    if [ -n "$celery" ]; then
      times=$(awk -v a="$drain" -v c="$celery" 'BEGIN { printf "%.1f", a / c }')
      line+=" (${times}x)"
      over_celery[$i]+="$times "
    fi
    line+=" |"
  done
  summary+=("$line")
done
echo
echo "Per round, each build's drain over the first build's (and over Celery's):"
echo
echo "| round |$(printf ' %s |' "${labels[@]}")"
echo "|---:|$(printf -- '---:|%.0s' "${labels[@]}")"
printf '%s\n' "${summary[@]}"
# The median of some numbers (the mean of the middle two for an even count).
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
line="| median |"
for i in "${!labels[@]}"; do
  line+=" $(median <<<"${over_first[$i]}")"
  [ -n "${over_celery[$i]:-}" ] && line+=" ($(median <<<"${over_celery[$i]}")x)"
  line+=" |"
done
echo "$line"
echo
echo "Command: ROUNDS=$ROUNDS N=$N CELERY=$CELERY bench/celery-ab.sh$(printf " %q %q" "${labels[0]}" "${cmds[0]}")..."
