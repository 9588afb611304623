#!/usr/bin/env python3
"""Server-side cost of the persist path's two hot statements, measured alone (no worker).

1. PostgreSQL: CPU of the backend per upserted `analytics_anonymoussession` row, for the session
   writer's statement as it is (fourteen typed arrays through `unnest`) and as it was (one JSON
   document through `json_to_recordset`), in batches of 64 rows (what the writer sends under
   load), on a scratch database made by `target/dist/migration up` and dropped at the end.
2. Redis: `EVALSHA` time per job of `queue/lua/fetch.lua` leasing 1 KB Celery messages from a
   foreign list in batches of 128, and of `queue/lua/ack.lua` acknowledging them (done kept, as
   the default retention does), from `INFO commandstats`, under a private key prefix deleted at
   the end. It resets the server's command statistics: run it while nothing else uses Redis.

The machine's speed moves, so each form is measured several times, alternated; compare medians
of one run. Needs `target/dist/migration` (`cargo build --profile dist -p migration`), redis-py and
psycopg 3 (the Celery peer benchmark's venv has both, made by
bench/celery-ab.sh):

    /tmp/celeriac-peer-celery/.venv/bin/python bench/statement-costs.py [--rounds 5]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_ADMIN = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

COLUMNS = ("id, device_fingerprint, session_start, session_end, last_activity, pages_visited, "
           "ip_address, user_agent, device_type, browser, os, landing_page, referrer, is_active, "
           "is_bot, location_data")
ON_CONFLICT = ("ON CONFLICT (id) DO UPDATE SET "
               "last_activity = GREATEST(s.last_activity, excluded.last_activity), "
               "pages_visited = GREATEST(s.pages_visited, excluded.pages_visited)")
JSON_FORM = (f"INSERT INTO analytics_anonymoussession AS s ({COLUMNS}) "
             "SELECT r.i, r.f, r.s, NULL, r.l, r.p, r.a, r.u, r.d, r.b, r.o, r.g, r.r, TRUE, r.x, r.c "
             "FROM json_to_recordset(%s::text::json) AS r(i uuid, f text, s timestamptz, "
             "l timestamptz, p integer, a inet, u text, d text, b text, o text, g text, r text, "
             f"x boolean, c jsonb) {ON_CONFLICT}")
ARRAY_FORM = (f"INSERT INTO analytics_anonymoussession AS s ({COLUMNS}) "
              "SELECT r.i, r.f, r.s, NULL, r.l, r.p, NULLIF(r.a, '')::inet, r.u, r.d, r.b, r.o, "
              "r.g, r.r, TRUE, r.x, r.c::jsonb FROM unnest(%s::uuid[], %s::text[], "
              "%s::timestamptz[], %s::timestamptz[], %s::int4[], %s::text[], %s::text[], "
              "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bool[], "
              f"%s::text[]) AS r(i, f, s, l, p, a, u, d, b, o, g, r, x, c) {ON_CONFLICT}")


def backend_cpu_s(conn):
    """CPU seconds the connection's backend has used (from /proc: same machine only)."""
    pid = conn.info.backend_pid
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rows(n, now):
    return [{
        "i": uuid.uuid4(), "f": uuid.uuid4().hex, "s": now - timedelta(seconds=300), "l": now,
        "p": 5, "a": "", "u": "", "d": "", "b": "", "o": "", "g": "/pricing",
        "r": "https://www.google.com/", "x": False, "c": "{}",
    } for _ in range(n)]


def pg_round(conn, form, batches, size):
    conn.execute("TRUNCATE analytics_anonymoussession CASCADE")
    now = datetime.now(timezone.utc)
    data = [rows(size, now) for _ in range(batches)]
    before = backend_cpu_s(conn)
    for b in data:
        if form == "json":
            doc = json.dumps([{**r, "i": str(r["i"]), "s": r["s"].isoformat(),
                               "l": r["l"].isoformat(), "a": None, "c": {}} for r in b])
            conn.execute(JSON_FORM, (doc,), prepare=True)
        else:
            cols = [[r[k] for r in b] for k in "ifslpaudbogrxc"]
            conn.execute(ARRAY_FORM, cols, prepare=True, binary=True)
    return (backend_cpu_s(conn) - before) * 1e6 / (batches * size)


def postgres(rounds):
    db = f"bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f"CREATE DATABASE {db}")
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    try:
        subprocess.run([os.path.join(ROOT, "target/dist/migration"), "up"], check=True,
                       env=dict(os.environ, DATABASE_URL=url), stdout=subprocess.DEVNULL)
        conn = psycopg.connect(url, autocommit=True)
        got = {"json": [], "arrays": []}
        for _ in range(rounds):
            for form in got:
                got[form].append(pg_round(conn, form, 600, 64))
        conn.close()
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    print("| PostgreSQL backend CPU per row, 64-row upserts | median µs | runs |")
    print("|---|---:|---|")
    for form, xs in got.items():
        print(f"| {form} | {statistics.median(xs):.2f} | {', '.join(f'{x:.2f}' for x in xs)} |")


def redis_scripts(rounds, n=20000):
    r = redis.Redis.from_url(REDIS_URL)
    lua = lambda f: open(os.path.join(ROOT, "queue/lua", f)).read()
    fetch = r.register_script(lua("bucket.lua") + lua("fetch.lua"))
    ack = r.register_script(lua("ack.lua"))
    p = f"bench-{uuid.uuid4()}:"
    names = ("pending scheduled running jobs attempts errors dead leases lease_seq paused rate "
             "revoked staging").split()
    fetch_keys = [p + k for k in names] + [p + "celery"]
    ack_keys = [p + k for k in "pending scheduled running jobs attempts errors done dead leases".split()]
    msg = json.dumps({"body": "W1siMDEyMyJdLCB7fSwge31d" * 8, "content-type": "application/json",
                      "headers": {"task": "analytics.tasks.persist_anonymous_session",
                                  "id": str(uuid.uuid4()), "argsrepr": "x" * 600}})
    out = {"fetch": [], "ack": []}
    try:
        for _ in range(rounds):
            for k in fetch_keys + ack_keys:
                r.delete(k)
            pipe = r.pipeline(transaction=False)
            for i in range(n):
                pipe.lpush(p + "celery", msg)
            pipe.execute()
            r.config_resetstat()
            leased, call = [], 0
            while True:
                call += 1
                reply = fetch(keys=fetch_keys, args=[128, 300000, 3, 200, 1000, 0, 1,
                                                     f"{uuid.uuid4().hex[:22]}{call:04d}"])
                rest = reply[6:]
                if not rest:
                    break
                leased += [(rest[j], rest[j + 2]) for j in range(0, len(rest), 4)]
            out["fetch"].append(r.info("commandstats")["cmdstat_evalsha"]["usec"] / n)
            r.config_resetstat()
            for j in range(0, len(leased), 128):
                args = [86_400_000, len(leased[j:j + 128])]
                for job_id, token in leased[j:j + 128]:
                    args += [job_id, token, "d", 0, ""]
                ack(keys=ack_keys, args=args)
            out["ack"].append(r.info("commandstats")["cmdstat_evalsha"]["usec"] / n)
    finally:
        for k in fetch_keys + ack_keys:
            r.delete(k)
    print(f"\n| Redis EVALSHA per job, {n} 1 KB messages | median µs | runs |")
    print("|---|---:|---|")
    for script, xs in out.items():
        print(f"| {script}.lua | {statistics.median(xs):.2f} | {', '.join(f'{x:.2f}' for x in xs)} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    postgres(a.rounds)
    redis_scripts(a.rounds)
    print(f"\nCommand: {sys.executable} bench/statement-costs.py --rounds {a.rounds}")


if __name__ == "__main__":
    main()
