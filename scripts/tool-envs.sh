#!/usr/bin/env bash
# Make the Python tool environments the tests use (the Celery client, schemathesis, redis-py):
# one virtualenv per scripts/tool-envs/NAME.txt (pinned requirements), at
# ${CARGO_TARGET_DIR:-target}/tool-envs/NAME. The tests only look for them and never install;
# scripts/test.sh and .ci/run run this first. Usage: scripts/tool-envs.sh [NAME...] (default: all).
#
# Cached and never half-made:
# - Each env is built in place at tool-envs/NAME-KEY, KEY a hash of its requirements file and of
#   the Python that runs it, so a changed pin (or a new Python) gets a fresh env. A virtualenv
#   cannot be moved after creation (absolute paths in its scripts and pyvenv.cfg), so it is made
#   at that final path and marked done by a `.complete` file (a copy of the requirements) written
#   last, by rename, after `pip check` and a sync. A directory without the marker is a crashed or
#   killed build: it is deleted and built again.
# - tool-envs/NAME is a symlink to the current NAME-KEY, swapped by rename only once that env is
#   complete; older NAME-KEY dirs are then removed.
# - An env already complete is reused at once: no network, no pip.
# - Concurrent runs are serialized by flock(1) on an open descriptor; the kernel drops the lock
#   when the process dies, so a crash never leaves a lock that makes the next run wait.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
reqs_dir=$root/scripts/tool-envs

# Bump when the way an env is built changes, so every env is rebuilt.
FORMAT=1

target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$root/$target ;; esac
envs=$target/tool-envs
mkdir -p "$envs"

if [ $# -gt 0 ]; then
  names=("$@")
else
  names=()
  for f in "$reqs_dir"/*.txt; do names+=("$(basename "$f" .txt)"); done
fi

exec 9>>"$envs/.lock"
if ! flock -n 9; then
  echo "tool-envs: waiting for another scripts/tool-envs.sh" >&2
  flock 9
fi

# The layout before this script: venvs that cargo test made under target/.
rm -rf "$target/celery-venv" "$target/celery-venv.lock" \
  "$target/schemathesis-venv" "$target/schemathesis-venv.lock"

command -v python3 >/dev/null || { echo "tool-envs: python3 is not installed" >&2; exit 1; }
# The real interpreter (not a pyenv shim) and its version: part of every env's key.
python_id=$(python3 -c 'import os, platform, sys; print(os.path.realpath(sys.executable)); print(sys.version); print(platform.machine())')
python=$(head -n 1 <<<"$python_id")

for name in "${names[@]}"; do
  req=$reqs_dir/$name.txt
  [ -f "$req" ] || { echo "tool-envs: no $req" >&2; exit 1; }
  key=$({ echo "format $FORMAT"; echo "$python_id"; cat "$req"; } | sha256sum | cut -c1-16)
  dir=$envs/$name-$key
  if [ -f "$dir/.complete" ] && cmp -s "$req" "$dir/.complete" && [ -x "$dir/bin/python" ]; then
    state=reused
  else
    echo "tool-envs: building $name in ${dir#"$root"/}" >&2
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --no-input --require-virtualenv \
      --disable-pip-version-check -r "$req"
    "$dir/bin/python" -m pip check --disable-pip-version-check >/dev/null
    sync -f "$dir"
    cp "$req" "$dir/.complete.tmp"
    sync "$dir/.complete.tmp"
    mv -f "$dir/.complete.tmp" "$dir/.complete"
    state=built
  fi
  ln -sfn "$name-$key" "$envs/.$name.new"
  mv -fT "$envs/.$name.new" "$envs/$name"
  # Older keys of this env, and builds that never finished.
  for old in "$envs/$name"-????????????????; do
    [ "$old" = "$dir" ] || [ ! -d "$old" ] || rm -rf "$old"
  done
  echo "tool-envs: $name $state (${envs#"$root"/}/$name)" >&2
done
