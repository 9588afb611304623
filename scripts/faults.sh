#!/usr/bin/env bash
# The long form of the fault suite (issue 6): 100,000 persist jobs (half through the API, half as
# Celery messages) through two release workers killed at random, a 20 s PostgreSQL outage and cut
# Redis connections; three schedulers killed at random across 200 ticks; SIGTERM mid-work.
# CI runs the same tests in their short form (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo build --release --bins --locked
export CELERIAC_BIN_DIR="$PWD/target/release"
export FAULT_JOBS="${FAULT_JOBS:-100000}" FAULT_PG_STOP_SECONDS="${FAULT_PG_STOP_SECONDS:-20}" FAULT_TICKS="${FAULT_TICKS:-200}"
exec cargo test --release --locked -p tests --test faults -- --nocapture --test-threads=1
