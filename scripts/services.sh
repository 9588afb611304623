#!/usr/bin/env bash
# Make sure the services Celeriac needs are up on this machine: Redis always, PostgreSQL unless
# called with "redis" only. Installs a missing one from Debian's packages. Idempotent.
set -euo pipefail
want_pg=1
[ "${1:-}" = "redis" ] && want_pg=0

apt_ready=0
apt_install() {
  if [ "$apt_ready" = 0 ]; then apt-get update -qq >/dev/null; apt_ready=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "services: installing redis-server" >&2
  apt_install redis-server
fi
# libfaketime: the Celery clock-skew tests run the worker on a wall clock off Redis's (LD_PRELOAD).
if ! compgen -G "/usr/lib/*/faketime/libfaketime.so.1" >/dev/null && [ ! -e /usr/lib/faketime/libfaketime.so.1 ]; then
  echo "services: installing faketime" >&2
  apt_install faketime
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "services: starting redis-server" >&2
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -h 127.0.0.1 ping >/dev/null

[ "$want_pg" = 1 ] || exit 0
# PgBouncer: the transaction-pooling tests start their own (tests/tests/pgbouncer.rs); nothing
# here runs it.
if ! command -v pgbouncer >/dev/null 2>&1; then
  echo "services: installing pgbouncer" >&2
  apt_install pgbouncer
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "services: installing postgresql" >&2
  apt_install postgresql
fi
if ! pg_isready -q -h 127.0.0.1; then
  echo "services: starting postgresql" >&2
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 && break; sleep 0.2; done
fi
pg_isready -q -h 127.0.0.1
# Trust auth for postgres on 127.0.0.1 is what the tests expect (the machine's default).
if ! psql -h 127.0.0.1 -U postgres -Atc 'select 1' >/dev/null 2>&1; then
  hba=$(su postgres -c "psql -Atc 'show hba_file'")
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  su postgres -c "psql -Atc 'select pg_reload_conf()'" >/dev/null
fi
