#!/usr/bin/env bash
# Install the browser the console tests drive (tests/tests/console.rs): Debian's chromium and
# chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver), when either is missing. No browser
# is downloaded from elsewhere. Needs root or passwordless sudo; the tests say what is missing.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
echo "browser: installing Debian's chromium and chromium-driver" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null || true
"${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
/usr/bin/chromium --version >&2
