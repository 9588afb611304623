#!/usr/bin/env bash
# Run every test against the real Redis and PostgreSQL (started or installed first if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
# The Python tools some tests run (Celery client, schemathesis, redis-py, Django): made once, reused.
scripts/tool-envs.sh
# The celeriac-django wheel (clients/python), built and installed into the Django env the Django
# site's test runs; then the package's own unit tests (the sender) in that env.
scripts/python-package.sh
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$PWD/$target ;; esac
(cd clients/python && "$target/tool-envs/django/bin/python" -m unittest discover -s tests -q)
# The browser the console tests drive (Debian's chromium and chromedriver), installed if missing.
scripts/browser.sh
# The end-to-end test starts the Procfile's processes from target/debug.
cargo build --workspace --bins --locked
exec cargo test --workspace --locked --no-fail-fast "$@"
