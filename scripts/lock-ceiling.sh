#!/usr/bin/env bash
# Measures how many tenants of the embedded migration set one statement can provision through a
# managed table under default settings, and the time to provision one tenant through the trigger.
# Not part of `make test` (it measures; it asserts nothing). Usage: scripts/lock-ceiling.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
PORT=${CEILING_PORT:-28817}
install_extension
dir=$(cluster_start ceiling "$PORT")
trap 'cluster_stop ceiling >/dev/null 2>&1 || true' EXIT
q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$PORT" -U postgres -d postgres "$@"; }
q -c "CREATE EXTENSION pg_tenancy" -c "CREATE TABLE plans (id bigint PRIMARY KEY)" \
  -c "CREATE TABLE organizations (id bigint PRIMARY KEY)" \
  -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'])"
echo "settings: $(q -c "SELECT string_agg(name || '=' || setting, ' ') FROM pg_settings WHERE name IN ('max_locks_per_transaction','max_connections','max_worker_processes','max_prepared_transactions')")"
fits() { q -c "BEGIN" -c "INSERT INTO organizations SELECT g FROM generate_series(1, $1) g" -c "ROLLBACK" >/dev/null 2>&1; }
lo=1 hi=2000
fits $hi && { echo "more than $hi tenants fit"; exit 0; }
while [ $((hi - lo)) -gt 1 ]; do
  mid=$(((lo + hi) / 2))
  if fits $mid; then lo=$mid; else hi=$mid; fi
done
echo "ceiling: $lo tenants fit in one statement; $hi do not"
q -c "BEGIN" -c "INSERT INTO organizations SELECT g FROM generate_series(1, $hi) g" -c "ROLLBACK" 2>&1 | head -3 || true
# One tenant per INSERT, 100 times, timed in the server (no client round trip): median and spread.
q -c "CREATE TEMP TABLE t (ms float8)" -c "
DO \$\$ DECLARE s timestamptz; BEGIN
  FOR i IN 100001..100100 LOOP
    s := clock_timestamp();
    INSERT INTO organizations VALUES (i);
    INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - s) * 1000);
  END LOOP;
END \$\$" -c "SELECT format('one tenant through the trigger: median %s ms, p95 %s ms, min %s ms over %s inserts',
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2),
  round(min(ms)::numeric, 2), count(*)) FROM t"
