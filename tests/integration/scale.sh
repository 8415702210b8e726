#!/usr/bin/env bash
# `make test-slow`: 5 000 tenants under default settings (max_locks_per_transaction = 64):
# provisioned through a managed table in batches under the one-transaction lock ceiling, then
# migrated with jobs 1 and 2; the migrating backend's peak memory is reported and bounded.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${SCALE_PORT:-28824}
N=${SCALE_TENANTS:-5000}
dir=$(cluster_start scale "$PORT") || exit 1
trap 'cluster_stop scale >/dev/null 2>&1 || true' EXIT
export PGHOST="$dir/sock" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres
q -c "CREATE EXTENSION pg_tenancy" -c "CREATE TABLE plans (id bigint PRIMARY KEY)" \
  -c "CREATE TABLE organizations (id bigint PRIMARY KEY)" -c "SET client_min_messages = warning" \
  -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'])" >/dev/null
check "default max_locks_per_transaction" "64" "$(q -c "SHOW max_locks_per_transaction")"
start=$(date +%s)
for ((i = 1; i <= N; i += 250)); do
  q -c "INSERT INTO organizations SELECT g FROM generate_series($i, least($((i + 249)), $N)) g"
done
echo "timing: $N tenants provisioned in $(( $(date +%s) - start ))s"
check "$N tenants" "$N" "$(q -c "SELECT count(*) FROM tenancy.tenants")"
for jobs in 1 2; do
  q -c "SELECT tenancy.add_migration('010$jobs', 'scale_$jobs', 'ALTER TABLE users ADD COLUMN scale_$jobs text')" >/dev/null
  # The backend reads its own peak RSS (VmHWM) right after the run, in the same session.
  peak=$(q -c "SET client_min_messages = warning" -c "CALL tenancy.migrate_all(jobs => $jobs)" \
    -c "SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]" | tail -1)
  echo "memory: migrate_all jobs $jobs over $N tenants: coordinator peak RSS $((peak / 1024)) MiB"
  check "jobs $jobs migrated all $N tenants" "$N" "$(q -c "SELECT count(*) FROM tenancy.ledger WHERE version = '010$jobs'")"
  check "jobs $jobs coordinator memory stays bounded (< 1 GiB)" "yes" "$( [ "$peak" -lt 1048576 ] && echo yes || echo "no: $peak kB")"
done
check "everyone up to date" "$N" "$(q -c "SELECT count(*) FROM tenancy.status WHERE state = 'up_to_date'")"
finish scale
