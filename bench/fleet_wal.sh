#!/usr/bin/env bash
# Fleet bookkeeping, measured (issue 15, "Lean fleet steps"): WAL records per tenant and wall time
# of CALL tenancy.migrate_all(jobs => 1) for a one-statement migration, against the tightest raw
# loop (one psql session, one autocommit ALTER TABLE per tenant: one round trip each), measured
# in interleaved rounds on one cluster with fsync on; then the time of a no-op run.
#
#   FLEET_WAL_TENANTS (default 2000), FLEET_WAL_ROUNDS (default 3), FLEET_WAL_PORT (28831),
#   FLEET_WAL_NOOP_TENANTS (also time no-op runs after provisioning up to that many tenants)
#
# Needs the extension installed (and the shared lock held: it starts PostgreSQL). WAL records are
# counted with pg_waldump --stats between pg_current_wal_insert_lsn() before and after, after a
# CHECKPOINT, so both variants pay the same full-page images. Prints one line per measurement and
# a summary; the record types of the last round go to $OUT (default target/bench/fleet_wal.txt).
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
PORT=${FLEET_WAL_PORT:-28831}
N=${FLEET_WAL_TENANTS:-2000}
ROUNDS=${FLEET_WAL_ROUNDS:-3}
OUT=${OUT:-$ROOT/target/bench/fleet_wal.txt}
mkdir -p "$(dirname "$OUT")"
dir=$(cluster_start fleetwal "$PORT" "-c fsync=on -c synchronous_commit=on -c max_wal_size=4GB -c checkpoint_timeout=1h")
trap 'cluster_stop fleetwal >/dev/null 2>&1 || true' EXIT
export PGHOST="$dir/sock" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres
q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }

q -c "CREATE EXTENSION pg_tenancy" -c "CREATE TABLE public.plans (id bigint PRIMARY KEY)" >/dev/null
t0=$(now)
for ((i = 1; i <= N; i += 100)); do
  q -c "SET client_min_messages = warning" \
    -c "SELECT count(tenancy.create_tenant('org_' || g)) FROM generate_series($i, least($((i + 99)), $N)) g" >/dev/null
done
echo "provisioned $N tenants in $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')s"
q -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null

# wal_records FROM TO: records between two LSNs (pg_waldump's Total line); the breakdown by record
# type is kept in $OUT.last.
wal_records() {
  as_pg "$PGBIN/pg_waldump" -p "$dir/data/pg_wal" -s "$1" -e "$2" --stats=record 2>/dev/null >"$OUT.last" || true
  awk '$1 == "Total" {print $2; exit}' "$OUT.last"
}
lsn() { q -c "SELECT pg_current_wal_insert_lsn()"; }
# measure LABEL COMMAND...: wall seconds and WAL records per tenant of one command
measure() {
  local label=$1 a b t1 t2 recs
  shift
  q -c "CHECKPOINT" >/dev/null
  a=$(lsn)
  t1=$(now)
  "$@"
  t2=$(now)
  b=$(lsn)
  recs=$(wal_records "$a" "$b")
  { echo "== $label"; cat "$OUT.last"; } >>"$OUT"
  awk -v l="$label" -v a="$t1" -v b="$t2" -v r="$recs" -v n="$N" \
    'BEGIN {printf "%-12s %8.3f s  %7.3f ms/tenant  %6.2f WAL records/tenant\n", l, b - a, 1000 * (b - a) / n, r / n}' \
    | tee -a "$OUT.summary"
}
fleet() { q -c "SET client_min_messages = warning" -c "CALL tenancy.migrate_all(jobs => 1)"; }
raw() { q -f "$OUT.raw.sql" >/dev/null; }
noop() { q -c "SET client_min_messages = warning" -c "CALL tenancy.migrate_all()"; }

: >"$OUT"; : >"$OUT.summary"
# A warm-up round of each, not measured: the first ALTER after provisioning finds pg_class pages
# full (non-HOT updates, about 0.9 more records per tenant), which would count against whichever
# variant comes first.
q -c "SELECT tenancy.add_migration('900', 'wal_warm', 'ALTER TABLE users ADD COLUMN wal_warm text')" >/dev/null
q -A -t -c "SELECT format('ALTER TABLE %I.users ADD COLUMN raw_warm text;', schema_name) FROM tenancy.tenants ORDER BY 1" >"$OUT.raw.sql"
fleet >/dev/null; raw
for ((r = 1; r <= ROUNDS; r++)); do
  q -c "SELECT tenancy.add_migration('$((900 + r))', 'wal_$r', 'ALTER TABLE users ADD COLUMN wal_$r text')" >/dev/null
  q -A -t -c "SELECT format('ALTER TABLE %I.users ADD COLUMN raw_$r text;', schema_name) FROM tenancy.tenants ORDER BY 1" >"$OUT.raw.sql"
  if ((r % 2)); then measure fleet fleet; measure raw raw; else measure raw raw; measure fleet fleet; fi
  measure noop noop
done
# The no-op run at a larger fleet: FLEET_WAL_NOOP_TENANTS (default: none beyond N).
M=${FLEET_WAL_NOOP_TENANTS:-0}
if ((M > N)); then
  t0=$(now)
  for ((i = N + 1; i <= M; i += 250)); do
    q -c "SET client_min_messages = warning" \
      -c "SELECT count(tenancy.create_tenant('org_' || g)) FROM generate_series($i, least($((i + 249)), $M)) g" >/dev/null
  done
  echo "provisioned $((M - N)) more tenants in $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')s"
  q -c "VACUUM ANALYZE" >/dev/null
  for ((r = 1; r <= ROUNDS; r++)); do
    t1=$(now); noop >/dev/null; t2=$(now)
    awk -v a="$t1" -v b="$t2" -v m="$M" 'BEGIN {printf "noop-%d %8.3f s\n", m, b - a}' | tee -a "$OUT.summary"
  done
fi
echo
awk '$1 !~ /^noop-/ {s[$1] += $4; w[$1] += $6; n[$1]++} END {for (k in s) printf "%-6s mean: %.3f ms/tenant, %.2f WAL records/tenant\n", k, s[k] / n[k], w[k] / n[k]}' "$OUT.summary"
awk '$1 == "fleet" {f += $4; nf++} $1 == "raw" {r += $4; nr++} END {if (nf && nr) printf "fleet / raw wall time: %.2f\n", (f / nf) / (r / nr)}' "$OUT.summary"
