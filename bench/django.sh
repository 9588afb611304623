#!/usr/bin/env bash
# What the celeriac-django middleware costs a Django request (issue 15), in one command, one run:
# the Django peer benchmark (../shared/peer/django/bench.sh: a small Django site under gunicorn,
# driven by wrk) in four modes on the identical workload:
#   none         no tracking (the baseline);
#   seed         the seed's middleware, its Redis calls and Celery publishes in-process;
#   custom/up    celeriac_django.middleware.TrackingMiddleware (the wheel of clients/python), the
#                fleet (release `api` + `worker run`) up on 127.0.0.1:8000; the fleet's CPU counts;
#   custom/down  the same middleware with nothing listening on 127.0.0.1:8000.
# The peer prints wrk's p50/p99 and CPU per request of each mode; the added latency is each mode's
# p50/p99 minus that of `none` (its table's "overhead" columns).
#
#   bench/django.sh                       # 20 s a mode, each mode twice (medians)
#   DURATION=10 REPEAT=1 bench/django.sh  # quicker
#   SKIP_BUILD=1 bench/django.sh          # the release binaries already built
#
# The shared peer directory must not be written: bench.sh runs from a copy in $PEER_DIR (default
# /tmp/celeriac-peer-django; its .venv is reused). The fleet uses Redis DB 9 and a scratch
# PostgreSQL database; the peer uses DB 8.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
mkdir -p "$ROOT/bench-results"
LOG="$ROOT/bench-results/$(date -u +%Y%m%dT%H%M%SZ)-django.txt"
exec > >(tee -a "$LOG") 2>&1
echo "log: $LOG"
PEER_SRC=${PEER_SRC:-$(cd "$ROOT/.." && pwd)/shared/peer/django}
PEER_DIR=${PEER_DIR:-/tmp/celeriac-peer-django}
REPEAT=${REPEAT:-2}
export DURATION=${DURATION:-20}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --bins
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

mkdir -p "$PEER_DIR"
cp -r "$PEER_SRC"/. "$PEER_DIR"/
# The package, as a site would install it: from its source tree (bench.sh pip-installs PIP_EXTRA).
rm -rf "$PEER_DIR/celeriac-django"
cp -r "$ROOT/clients/python" "$PEER_DIR/celeriac-django"

scratch=$(mktemp -d)
fleet_pids=()
stop_fleet() {
  for p in "${fleet_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${fleet_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  fleet_pids=()
}
trap 'stop_fleet; rm -rf "$scratch"' EXIT

# The fleet's database: a scratch PostgreSQL one, dropped at the end.
dbname=bench_django_$$
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $dbname" >/dev/null
trap 'stop_fleet; rm -rf "$scratch"; psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $dbname" >/dev/null' EXIT
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$dbname"
# wrk names the visitor in X-Fingerprint, as the peer's seed middleware reads it: the package takes
# a page-computed fingerprint from the header CELERIAC_FINGERPRINT_HEADER names (gunicorn inherits
# the environment; the package reads unset settings from it).
export CELERIAC_FINGERPRINT_HEADER=X-Fingerprint
export REDIS_URL=redis://127.0.0.1:6379/9
export CELERIAC_NAMESPACE=bench-django API_ADDR=127.0.0.1:8000 CELERY_QUEUES= RUST_LOG=warn
unset API_TOKEN
redis-cli -n 9 FLUSHDB >/dev/null
"$BIN/migration" up >/dev/null

# Each invocation has its own `none`, so its table's overhead columns compare within one run.
modes() { local m=$1 out=""; for _ in $(seq "$REPEAT"); do out="$out $m"; done; echo "$out"; }

echo "== none, seed, custom (celeriac_django, fleet up) =="
"$BIN/api" & fleet_pids+=($!)
"$BIN/worker" run & fleet_pids+=($!)
for _ in $(seq 50); do curl -fs http://127.0.0.1:8000/readyz >/dev/null && break; sleep 0.2; done
(cd "$PEER_DIR" && MODES="$(modes "none seed custom")" MIDDLEWARE_PATH=celeriac_django.middleware.TrackingMiddleware \
  PIP_EXTRA=./celeriac-django SERVICE_PIDS="${fleet_pids[*]}" ./bench.sh)
echo "fleet: $(redis-cli -n 9 --scan --pattern 'anon_session:*' | grep -vc ':views$' || true) live anonymous sessions in DB 9"
stop_fleet

echo "== none, custom (celeriac_django, fleet down: nothing on 127.0.0.1:8000) =="
(cd "$PEER_DIR" && MODES="$(modes "none custom")" MIDDLEWARE_PATH=celeriac_django.middleware.TrackingMiddleware \
  PIP_EXTRA=./celeriac-django ./bench.sh)
redis-cli -n 9 FLUSHDB >/dev/null
