#!/usr/bin/env bash
# bench/cluster.sh: what an anonymous page view costs on a Redis Cluster against one Redis server,
# measured in the same run (issue 17).
#
# Starts a private redis-server and a private cluster of three primaries (redis-cli --cluster
# create; no replicas), both without persistence, then, ROUNDS times and alternating, a release
# api on each (SQLite scratch database, one event loop) driven by bench/src/bin/api-load.rs at
# RATE page views/s for DURATION s (uniform arrivals; community pages on 10 of the 50 paths).
# Each run's row: achieved views/s, errors, latency percentiles, CPU as % of one core, and CPU µs
# per view of the api and of Redis (every node of the cluster summed). Closes with each target's
# medians and the cluster/single ratios.
#
# Tunables: RATE (3000), DURATION (10), WARMUP (2), ROUNDS (3), CONNECTIONS (32), SKIP_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-3000}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
work=$(mktemp -d /tmp/celeriac-cluster-bench.XXXXXX)
pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked -p api -p migration -p bench --bin api --bin migration --bin api-load
fi

# A free port whose cluster bus port (+10000) is free too.
free_port() {
  python3 -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    if p + 10000 > 65535: a.close(); continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 10000)); print(p); break
    except OSError: pass
    finally: a.close(); b.close()'
}
start_redis() { # start_redis PORT [extra args…]: prints nothing, records the pid
  local port=$1; shift
  redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
    --logfile "$work/redis-$port.log" "$@" &
  pids+=("$!")
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "bench: redis-server on $port did not start" >&2; exit 1
}
single=$(free_port)
start_redis "$single"
single_pids=$(redis-cli -p "$single" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p')
nodes=()
for _ in 1 2 3; do
  p=$(free_port)
  start_redis "$p" --cluster-enabled yes --cluster-config-file "$work/nodes-$p.conf"
  nodes+=("$p")
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${nodes[@]}") --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 200); do
  ok=1
  for p in "${nodes[@]}"; do redis-cli -p "$p" cluster info | grep -q cluster_state:ok || ok=0; done
  [ "$ok" = 1 ] && break; sleep 0.05
done
cluster_url=$(printf 'redis://127.0.0.1:%s,' "${nodes[@]}"); cluster_url=${cluster_url%,}
cluster_pids=$(for p in "${nodes[@]}"; do redis-cli -p "$p" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p'; done | paste -sd,)

token=bench-$(cat /proc/sys/kernel/random/uuid)
communities=$(for _ in $(seq 10); do cat /proc/sys/kernel/random/uuid; done | paste -sd,)
run() { # run LABEL REDIS_URL REDIS_PIDS [--header]
  local label=$1 url=$2 rpids=$3; shift 3
  local db="sqlite://$work/$label.db?mode=rwc" port
  port=$(free_port)
  DATABASE_URL=$db REDIS_URL=$url target/release/migration up >"$work/migration.log" 2>&1 ||
    { cat "$work/migration.log" >&2; exit 1; }
  DATABASE_URL=$db REDIS_URL=$url API_TOKEN=$token API_ADDR=127.0.0.1:$port CELERY_QUEUES= \
    target/release/api >"$work/api-$label.log" 2>&1 &
  local api=$!
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  target/release/api-load --addr "127.0.0.1:$port" --token "$token" --tag "$label" \
    --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" \
    --communities "$communities" --rate "$RATE" --api-pid "$api" --redis-pid "$rpids" \
    --label "$label" "$@" | tee -a "$work/rows.txt"
  kill -TERM "$api"; wait "$api" 2>/dev/null || true
}
first=--header
for r in $(seq "$ROUNDS"); do
  run "single-$r" "redis://127.0.0.1:$single" "$single_pids" $first
  first=
  run "cluster-$r" "$cluster_url" "$cluster_pids"
done
# Medians of api and Redis µs per view (the last two columns) per target, and the ratios.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for t in single cluster; do
  api=$(grep "^$t-" "$work/rows.txt" | awk '{print $(NF-1)}' | median)
  rds=$(grep "^$t-" "$work/rows.txt" | awk '{print $NF}' | median)
  echo "$t: median api $api µs/view, redis (all nodes) $rds µs/view"
  eval "${t}_api=$api ${t}_rds=$rds"
done
awk -v a="$single_api" -v b="$cluster_api" -v c="$single_rds" -v d="$cluster_rds" \
  'BEGIN { printf "cluster / single: api %.2f, redis %.2f\n", b / a, d / c }'
