#!/usr/bin/env bash
# Redis memory of the hot data (issue 16), measured: bytes per anonymous session, per signed-in
# session and per community visitor at a realistic mix, on a private redis-server with the fleet
# (api + worker run) tracking through the real routes, then the sizing formula.
#
#   bench/redis-memory.sh                         # 20,000 anonymous, 5,000 signed in, 20,000 community visits
#   ANON=5000 AUTH=1000 COMMUNITY=5000 bench/redis-memory.sh
#   BIN_DIR=target/release bench/redis-memory.sh  # another build (memory does not depend on it)
#
# Each phase: used_memory (INFO memory) before, the visitors' views sent in batches of 500 to
# POST /v1/track/pageviews (3 views each over 20 paths, as a browsing visitor), the worker left to
# drain what it can (persist and enhance jobs; finalize jobs wait their 30 minutes, as in
# production), used_memory after; the difference over the visitors is what one costs. Redis runs
# without persistence; the fleet uses a scratch PostgreSQL database, dropped at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
mkdir -p "$ROOT/bench-results"
LOG="$ROOT/bench-results/$(date -u +%Y%m%dT%H%M%SZ)-redis-memory.txt"
exec > >(tee -a "$LOG") 2>&1
echo "log: $LOG"
BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}
[ -x "$BIN_DIR/api" ] || cargo build --bins
export ANON=${ANON:-20000} AUTH=${AUTH:-5000} COMMUNITY=${COMMUNITY:-20000}

scratch=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
api_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dbname=bench_memory_$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $dbname" >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT

redis-server --port "$port" --save '' --appendonly no --dir "$scratch" --daemonize yes >/dev/null
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $dbname" >/dev/null
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$dbname"
export REDIS_URL="redis://127.0.0.1:$port" API_ADDR="127.0.0.1:$api_port" CELERY_QUEUES= RUST_LOG=warn
unset API_TOKEN
"$BIN_DIR/migration" up >/dev/null
"$BIN_DIR/api" & pids+=($!)
"$BIN_DIR/worker" run & pids+=($!)
for _ in $(seq 100); do curl -fs "http://$API_ADDR/readyz" >/dev/null && break; sleep 0.2; done

REDIS_PORT=$port python3 - <<'EOF'
import json, os, subprocess, time, urllib.request, uuid

api = "http://" + os.environ["API_ADDR"]
port = os.environ["REDIS_PORT"]
ANON, AUTH, COMMUNITY = (int(os.environ[k]) for k in ("ANON", "AUTH", "COMMUNITY"))
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
PATHS = [f"/articles/{i}/" for i in range(20)]
COMMUNITIES = [str(uuid.uuid4()) for _ in range(20)]


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(api + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def used():
    out = subprocess.run(["redis-cli", "-p", port, "INFO", "memory"], capture_output=True, text=True).stdout
    return next(int(l.split(":")[1]) for l in out.splitlines() if l.startswith("used_memory:"))


def keys():
    return int(subprocess.run(["redis-cli", "-p", port, "DBSIZE"], capture_output=True, text=True).stdout)


def send(views):
    for i in range(0, len(views), 500):
        r = call("POST", "/v1/track/pageviews", views[i:i + 500])
        assert r["refused"] == 0, r["results"][:3]


def settle():
    # The worker drains persist and enhance; finalize waits its 30 minutes (scheduled, as live).
    for _ in range(600):
        qs = {q["name"]: q for q in call("GET", "/v1/queues")["queues"]}
        busy = sum(qs[n]["queued"] + qs[n]["running"] for n in qs)
        if busy == 0:
            break
        time.sleep(0.5)
    time.sleep(2)


rows = []


def phase(name, n, run):
    settle()
    before, kb = used(), keys()
    run()
    settle()
    after, ka = used(), keys()
    rows.append((name, n, after - before, ka - kb))


def anonymous():
    views = []
    for v in range(ANON):
        fp = f"mem-anon-{v}"
        for k in range(3):
            views.append({"fingerprint": fp, "url": PATHS[(v + k) % 20], "user_agent": UA, "ip": "203.0.113.45"})
    send(views)


def signed_in():
    views = []
    for v in range(AUTH):
        user = str(uuid.uuid4())
        s = call("POST", "/v1/sessions", {"user_id": user, "username": f"mem-{user[:8]}", "user_agent": UA,
                                          "ip": "203.0.113.45", "device_fingerprint": f"mem-auth-{v}"})
        for k in range(3):
            views.append({"fingerprint": f"mem-auth-{v}", "url": PATHS[(v + k) % 20], "user_agent": UA,
                          "user_id": user, "session_id": s["session_id"]})
    send(views)


def community():
    # One view of a community page per visitor: the anonymous session is measured above, so a
    # second group with the same view but no community gives the community's own share.
    send([{"fingerprint": f"mem-comm-{v}", "url": f"/c/{v % 20}/", "user_agent": UA,
           "community_id": COMMUNITIES[v % 20]} for v in range(COMMUNITY)])


def one_view():
    send([{"fingerprint": f"mem-one-{v}", "url": f"/c/{v % 20}/", "user_agent": UA} for v in range(COMMUNITY)])


phase("anonymous session (3 views)", ANON, anonymous)
phase("signed-in session (login + 3 views)", AUTH, signed_in)
phase("anonymous session (1 view, community page)", COMMUNITY, community)
phase("anonymous session (1 view, no community)", COMMUNITY, one_view)

print()
print("| what | n | Redis bytes | bytes each | keys each |")
print("|---|---|---|---|---|")
for name, n, b, k in rows:
    print(f"| {name} | {n} | {b} | {b / n:.0f} | {k / n:.2f} |")
per = {name: b / n for name, n, b, _ in rows}
c = per["anonymous session (1 view, community page)"] - per["anonymous session (1 view, no community)"]
print(f"| community visitor (the difference of the last two) | | | {c:.0f} | |")
print()
print(f"used_memory at the end: {used()} bytes, {keys()} keys")
EOF
