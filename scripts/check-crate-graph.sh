#!/usr/bin/env bash
# The crate graph of docs/ARCHITECTURE.md, checked: which workspace crates each crate may depend on
# (normal dependencies), and that the web process compiles neither the worker's run loop nor apalis.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --locked --offline | python3 -c '
import json, sys
# crate -> workspace crates it may depend on (normal dependencies; dev-dependencies are free
# except where noted below).
allowed = {
    "queue": set(), "entity": set(), "migration": set(),
    "domain": {"queue", "entity"},
    "tracking": {"domain", "queue", "entity"},
    "api": {"tracking", "domain", "queue", "entity"},
    "worker": {"domain", "queue", "entity"},
    "bench": {"domain", "queue", "migration"},
    "testkit": {"migration"},
    "tests": None,  # the integration tests: anything
}
meta = json.load(sys.stdin)
members = {p["name"]: p for p in meta["packages"] if p["id"] in meta["workspace_members"]}
bad = []
for name, pkg in sorted(members.items()):
    if name not in allowed:
        bad.append(f"{name}: not in the crate table (add it to docs/ARCHITECTURE.md and here)")
        continue
    ours = {d["name"] for d in pkg["dependencies"] if d["name"] in members and d["kind"] is None}
    if allowed[name] is not None and ours - allowed[name]:
        bad.append(f"{name} depends on {sorted(ours - allowed[name])}, allowed: {sorted(allowed[name])}")
    if name == "queue":
        apalis = [d for d in pkg["dependencies"] if d["name"] == "apalis-core"]
        if any(not d["optional"] for d in apalis):
            bad.append("queue: apalis-core must stay optional (feature `backend`)")
if bad:
    print("crate graph:", *bad, sep="\n  ")
    sys.exit(1)
print(f"crate graph: {len(members)} crates as docs/ARCHITECTURE.md says")
'
# The web process: no apalis, no cron, no clap, no worker.
leaks=$(cargo tree --locked --offline -p api -e normal --prefix none 2>/dev/null \
  | grep -E '^(apalis-core|cron|clap|worker) ' | sort -u || true)
if [ -n "$leaks" ]; then
  echo "the api binary compiles what it must not:"; echo "$leaks"; exit 1
fi
echo "api dependency tree: no apalis, cron, clap or worker"
