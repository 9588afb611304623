#!/usr/bin/env bash
# bench/api.sh: the API's hot-path benchmark in one command (issue 4, "Speed").
#
# Builds the release binaries, starts target/release/api on 127.0.0.1:$PORT against a scratch
# SQLite database (or BENCH_DATABASE_URL, already migrated or migratable) and the local Redis
# under a private CELERIAC_NAMESPACE, with a bearer token and the default log level, then runs
# bench/src/bin/api-load.rs (open loop: a pacer thread writes each request at its due time on
# keep-alive connections, pipelining when a connection is still busy; latency from the due time):
#   POST /v1/track/pageview at 1,000 req/s; at 15,000 req/s once per arrival pattern in $ARRIVALS
#   (uniform: evenly spaced; poisson: independent visitors; ms-ticks: rate/1000 requests at once
#   every millisecond, as a load tool on a millisecond timer sends them); probes at $PROBE_RATES;
#   GET /v1/communities/{id}/visitors at 1,000 req/s over the communities the views populated.
# Prints a table: achieved rate, errors, p50/p90/p99/p99.9/max (ms), and CPU as % of one core of
# the api, Redis, the generator and the whole machine (2 cores = 200 %) over the measured window;
# before the first run and after the last, bench/src/bin/cpu-stalls.rs measures for 5 s how much
# time busy threads lose to the machine itself (the noise floor every latency figure stands on).
# Cleans up on exit: stops the api and deletes only what it created (anon_session:bench-<tag>-*,
# their footprints, pageviews:*:/bench-<tag>/* and those paths in pageviews:*:paths, the bench
# communities' keys, the namespace's keys). Never FLUSHDB.
#
# Tunables (environment): DURATION (20 s per run), WARMUP (2 s), CONNECTIONS (64), PROBE_RATES
# ("20000 25000"), PORT (18790), FINGERPRINTS (50000), PATHS (50), COMMUNITIES (10),
# BENCH_DATABASE_URL, REDIS_HOST/REDIS_PORT (127.0.0.1:6379), SKIP_BUILD=1, QUIET_PCT (15: before
# each run, wait up to QUIET_WAIT seconds (180) for the machine to be less than this % busy over
# 2 s, as other work on a shared machine skews latency), API_BIN (another api binary to measure,
# e.g. a copy of an older build, for before/after comparisons), API_THREADS (the api's own
# setting, default 1: one event loop; see api/src/config.rs), ARRIVALS ("uniform poisson ms-ticks":
# the arrival patterns of the 15,000 req/s runs; the other runs are uniform), ROUNDS (1: how many
# times the 15,000 req/s runs are repeated, patterns interleaved; with more than one, the medians
# of each pattern's p99 and CPU per view close the output, as one run's p99 on a noisy machine says
# little), API_PROCESSES (1: api processes on PORT, PORT+1, ...; the generator spreads its
# connections over them and their CPU is added up; bench/scale.sh runs 1 and 2).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
PROBE_RATES=${PROBE_RATES-"20000 25000"}
PORT=${PORT:-18790}
FINGERPRINTS=${FINGERPRINTS:-50000}
PATHS=${PATHS:-50}
COMMUNITIES=${COMMUNITIES:-10}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
QUIET_PCT=${QUIET_PCT:-15}
QUIET_WAIT=${QUIET_WAIT:-180}
API_BIN=${API_BIN:-target/release/api}
API_THREADS=${API_THREADS:-1}
ARRIVALS=${ARRIVALS:-"uniform poisson ms-ticks"}
ROUNDS=${ROUNDS:-1}
API_PROCESSES=${API_PROCESSES:-1}
[ "$API_PROCESSES" -ge 1 ] || { echo "bench: API_PROCESSES must be at least 1" >&2; exit 1; }

tag="apib$(date +%s)$$"
namespace="bench-api-$tag"
token="bench-token-$tag"
work=$(mktemp -d /tmp/celeriac-api-bench.XXXXXX)
rcli() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }
communities=()
for _ in $(seq "$COMMUNITIES"); do communities+=("$(cat /proc/sys/kernel/random/uuid)"); done
ids=$(IFS=,; echo "${communities[*]}")
api_pids=()

delete_pattern() {
  rcli --scan --pattern "$1" | xargs -r -d '\n' -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" unlink >/dev/null
}
cleanup() {
  set +e
  for pid in "${api_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${api_pids[@]}"; do wait "$pid" 2>/dev/null; done
  echo "[bench] cleaning up Redis (tag $tag)" >&2
  delete_pattern "anon_session:bench-$tag-*"
  delete_pattern "visitor:anon:bench-$tag-*"
  delete_pattern "pageviews:*:/bench-$tag/*"
  delete_pattern "$namespace:*"
  for id in "${communities[@]}"; do
    rcli unlink "community:$id:visitors" "community:$id:visitors:authenticated" \
      "community:$id:visitors:anonymous" "community:$id:visitors:seen" \
      "community:$id:visitors:seen:authenticated" >/dev/null
  done
  for key in $(rcli --scan --pattern 'pageviews:*:paths'); do
    for p in $(seq 0 $((PATHS - 1))); do echo "/bench-$tag/page-$p/"; done |
      xargs -r -d '\n' redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" srem "$key" >/dev/null
  done
  left=$(rcli --scan --pattern "*$tag*" | wc -l)
  echo "[bench] keys left with the tag: $left" >&2
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rcli ping >/dev/null || { echo "bench: Redis is not answering at $REDIS_HOST:$REDIS_PORT" >&2; exit 1; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked -p api -p migration -p bench \
    --bin api --bin migration --bin api-load --bin cpu-stalls
fi

export DATABASE_URL=${BENCH_DATABASE_URL:-"sqlite://$work/bench.db?mode=rwc"}
export REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT"
export CELERIAC_NAMESPACE=$namespace
export API_TOKEN=$token
base_port=$PORT
unset PORT
target/release/migration up >"$work/migration.log" 2>&1 ||
  { cat "$work/migration.log" >&2; exit 1; }
addrs=()
for k in $(seq 0 $((API_PROCESSES - 1))); do
  addr="127.0.0.1:$((base_port + k))"
  addrs+=("$addr")
  # TOKIO_WORKER_THREADS too, for API_BIN builds older than API_THREADS.
  API_ADDR=$addr API_THREADS=$API_THREADS TOKIO_WORKER_THREADS=$API_THREADS "$API_BIN" >"$work/api-$k.log" 2>&1 &
  pid=$!
  api_pids+=("$pid")
  for _ in $(seq 100); do
    curl -fsS "http://$addr/healthz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/api-$k.log" >&2; exit 1; }
    sleep 0.1
  done
done
API_ADDR=$(IFS=,; echo "${addrs[*]}")
api_pid=$(IFS=,; echo "${api_pids[*]}")
redis_pid=$(rcli info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p')

# Busy % of the whole machine over 2 s, from /proc/stat.
busy_pct() {
  local a b
  a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
  local busy=0 total=0 i d
  for i in 1 2 3 4 5 6 7 8; do
    d=$((b[i] - a[i])); total=$((total + d))
    [ "$i" = 4 ] || [ "$i" = 5 ] || busy=$((busy + d))
  done
  echo $((total > 0 ? 100 * busy / total : 0))
}
wait_quiet() {
  local start=$SECONDS pct
  while pct=$(busy_pct); [ "$pct" -ge "$QUIET_PCT" ]; do
    if [ $((SECONDS - start)) -ge "$QUIET_WAIT" ]; then
      echo "[bench] machine still ${pct}% busy after ${QUIET_WAIT}s; measuring anyway" >&2
      return
    fi
    echo "[bench] machine ${pct}% busy (other work); waiting" >&2
  done
}
echo "[bench] $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); $API_PROCESSES api process(es), pid $api_pid," \
  "redis pid $redis_pid; $API_THREADS api thread(s); $CONNECTIONS connections; ${DURATION}s per run after ${WARMUP}s warm-up" >&2

load() {
  wait_quiet
  target/release/api-load --addr "$API_ADDR" --token "$token" --tag "$tag" \
    --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" \
    --fingerprints "$FINGERPRINTS" --paths "$PATHS" --communities "$ids" \
    --api-pid "$api_pid" --redis-pid "$redis_pid" "$@" | tee -a "$work/rows.txt"
}
# Median of the numbers on stdin.
median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# What the machine itself takes from busy threads (host, kernel threads), before and after: a
# core lost for 10 ms at 15,000 req/s leaves 150 requests waiting, whatever the server does.
stalls() {
  wait_quiet
  echo "[bench] CPU stalls $1 (5 s, every core spinning): $(target/release/cpu-stalls --seconds 5 | tail -1)" >&2
}
stalls before
load --mode pageview --rate 1000 --label "pageview 1k" --header
for _ in $(seq "$ROUNDS"); do
  for a in $ARRIVALS; do load --mode pageview --rate 15000 --arrivals "$a" --label "pageview 15k $a"; done
done
for r in $PROBE_RATES; do load --mode pageview --rate "$r" --label "pageview probe $((r / 1000))k"; done
load --mode visitors --rate 1000 --label "visitors GET 1k"
stalls after
if [ "$ROUNDS" -gt 1 ]; then
  for a in $ARRIVALS; do
    # Row fields after the 3-word label: target achieved errors p50 p90 p99 … api-µs redis-µs.
    col() { awk -v l="pageview 15k $a" -v c="$1" 'index($0, l " ") == 1 { print $c }' "$work/rows.txt" | median; }
    echo "[bench] 15k $a, medians of $ROUNDS runs: p99 $(col 9) ms, api $(col 16) µs/view, redis $(col 17) µs/view" >&2
  done
fi
echo "[bench] community size at the end: $(rcli zcard "community:${communities[0]}:visitors:seen") visitors seen;" \
  "api log lines: $(cat "$work"/api-*.log | wc -l); api peak RSS $(grep VmHWM /proc/"${api_pids[0]}"/status | tr -s ' ' | cut -d' ' -f2-)" >&2
