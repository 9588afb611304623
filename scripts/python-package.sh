#!/usr/bin/env bash
# Build the wheel of clients/python (the pip package celeriac-django) into
# ${CARGO_TARGET_DIR:-target}/wheels/ and install it into the django tool env
# (${CARGO_TARGET_DIR:-target}/tool-envs/django, made first by scripts/tool-envs.sh django when
# missing). Offline once that env exists: the build uses the env's own setuptools and wheel
# (--no-build-isolation) and installs without dependencies (the env pins them).
# Usage: scripts/python-package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$root/$target ;; esac

env_dir=$target/tool-envs/django
if [ ! -x "$env_dir/bin/python" ]; then
  scripts/tool-envs.sh django
fi
py=$env_dir/bin/python
wheels=$target/wheels
mkdir -p "$wheels"

# Build from a copy so no build/ or *.egg-info lands in the source tree.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r clients/python/. "$work/src-tree"
rm -rf "$work/src-tree/build" "$work/src-tree"/src/*.egg-info

"$py" -m pip wheel --quiet --no-input --disable-pip-version-check --no-deps \
  --no-build-isolation --wheel-dir "$work/out" "$work/src-tree"
wheel=$(ls "$work"/out/celeriac_django-*.whl)
rm -f "$wheels"/celeriac_django-*.whl
cp "$wheel" "$wheels/"
wheel=$wheels/$(basename "$wheel")

"$py" -m pip install --quiet --no-input --disable-pip-version-check --no-deps \
  --force-reinstall "$wheel"
echo "python-package: built ${wheel#"$root"/} and installed it into ${env_dir#"$root"/}" >&2
