#!/usr/bin/env bash
# The console's page times with 100,000 dead jobs (issue 14): starts the release `api` over a
# fresh namespace of the local Redis and a SQLite file, runs `console-bench` (every page with no
# dead jobs, then with DEAD of them, in the same run), then removes the namespace's keys.
# Usage: bench/console.sh   (DEAD=100000 RUNS=30 PORT=8097)
set -euo pipefail
cd "$(dirname "$0")/.."
DEAD=${DEAD:-100000} RUNS=${RUNS:-30} PORT=${PORT:-8097}
cargo build --release --locked -p api -p migration -p bench --bin api --bin migration --bin console-bench
dir=$(mktemp -d)
ns="bench-console-$(date +%s)-$$"
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0} CELERIAC_NAMESPACE=$ns \
  CELERY_QUEUES="$ns-celery" DATABASE_URL="sqlite://$dir/bench.db?mode=rwc" \
  API_TOKEN="bench-$$" API_ADDR="127.0.0.1:$PORT"
target/release/migration up >/dev/null
target/release/api >"$dir/api.log" 2>&1 &
api=$!
cleanup() {
  kill "$api" 2>/dev/null || true
  redis-cli -u "$REDIS_URL" --scan --pattern "$ns:*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
target/release/console-bench --api "127.0.0.1:$PORT" --dead "$DEAD" --runs "$RUNS"
