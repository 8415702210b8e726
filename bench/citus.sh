#!/usr/bin/env bash
# `make bench-citus`: pg_tenancy on a 3-node Citus cluster (coordinator + 2 workers) against a
# single node, on this machine, in interleaved rounds (docs/citus.md, "Measured"):
#   1. provisioning: create_tenant of the shipped migrations, ms per tenant, on
#      (a) the Citus coordinator, tenants distributed (schema-based sharding on),
#      (b) the same coordinator with tenancy.distribute = off (plain schemas on the coordinator),
#      (c) a plain PostgreSQL without Citus (same binaries and settings otherwise);
#      each round creates K tenants on each, the order rotating from round to round;
#   2. CALL tenancy.migrate_all(jobs => 1) and (jobs => 2) over N distributed tenants, for a
#      one-statement ADD COLUMN migration and a CREATE TABLE migration (a table with a foreign
#      key into the tenant and an index), the two job counts alternating first; the same runs on
#      the plain node as the single-node baseline.
# Release build unless PROFILE=debug. Writes target/bench/citus.md and prints it.
#
# Citus is detected, never built or fetched: without it this prints "bench-citus: skipped: <why>"
# and exits 77 (the make target then succeeds). Ports BENCH_CITUS_PORT..+3 (default 28863-28866).
set -uo pipefail
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
skip_without_citus bench-citus
set -e

ROUNDS=${ROUNDS:-5}    # provisioning rounds
K=${K:-10}             # tenants per round and configuration
N=${N:-100}            # distributed tenants migrate_all runs over
MROUNDS=${MROUNDS:-3}  # rounds of each migration kind and job count
export PROFILE=${PROFILE:-release}
P0=${BENCH_CITUS_PORT:-28863}
P1=$((P0 + 1)) P2=$((P0 + 2)) PS=$((P0 + 3))
NODES=(bench-citus-c bench-citus-w1 bench-citus-w2 bench-single)
out_dir="$ROOT/target/bench"
out="$out_dir/citus.md"
mkdir -p "$out_dir"

echo "== bench-citus: installing pg_tenancy ($PROFILE build)"
install_extension

stop_all() { for n in "${NODES[@]}"; do cluster_stop "$n" >/dev/null 2>&1 || true; done; }
trap stop_all EXIT
OPTS="-c listen_addresses=localhost -c shared_preload_libraries=citus -c max_prepared_transactions=20 -c wal_level=logical"
cluster_start bench-citus-c "$P0" "$OPTS" >/dev/null
cluster_start bench-citus-w1 "$P1" "$OPTS" >/dev/null
cluster_start bench-citus-w2 "$P2" "$OPTS" >/dev/null
cluster_start bench-single "$PS" "-c listen_addresses=localhost" >/dev/null
export PGHOST=localhost PGDATABASE=app PGOPTIONS="-c client_min_messages=warning"
unset PGUSER PGPORT
q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }

# The same application on both: a reference (Citus) or plain (single node) plans table before
# CREATE EXTENSION pg_tenancy, a LOGIN owner role `app` that provisions tenants.
for p in "$P0" "$P1" "$P2"; do
  q -p "$p" -U postgres -d postgres -c "CREATE DATABASE app" >/dev/null
  q -p "$p" -U postgres -c "CREATE EXTENSION citus" >/dev/null
done
q -p "$P0" -U postgres -c "SELECT citus_set_coordinator_host('localhost', $P0)" \
  -c "SELECT citus_add_node('localhost', $P1)" -c "SELECT citus_add_node('localhost', $P2)" >/dev/null
q -p "$PS" -U postgres -d postgres -c "CREATE DATABASE app" >/dev/null
for p in "$P0" "$PS"; do
  citus=""
  [ "$p" = "$P0" ] && citus="SELECT create_reference_table('public.plans'); ALTER DATABASE app SET citus.enable_schema_based_sharding = on;"
  q -p "$p" -U postgres <<SQL >/dev/null
CREATE ROLE app LOGIN;
GRANT CREATE ON DATABASE app TO app;
CREATE TABLE public.plans (id bigint PRIMARY KEY, name text NOT NULL);
INSERT INTO public.plans VALUES (1, 'free'), (2, 'pro');
GRANT SELECT, REFERENCES ON public.plans TO app;
$citus
CREATE EXTENSION pg_tenancy;
SELECT tenancy.grant_provision('app');
SQL
done
versions=$(q -p "$P0" -U postgres -c "SELECT 'PostgreSQL ' || current_setting('server_version') || ', ' || citus_version()" | sed 's/ on x86_64.*//')

# create CONFIG PREFIX COUNT: creates COUNT tenants PREFIX_1.. on CONFIG (citus, citus_off,
# single), one connection, each create_tenant its own transaction; prints ms per tenant.
create() {
  local config=$1 prefix=$2 count=$3 port=$P0 set="" t0 t1 i
  case "$config" in citus_off) set="SET tenancy.distribute = off; SET client_min_messages = error;" ;; single) port=$PS ;; esac
  t0=$(now)
  { echo "$set"; for i in $(seq 1 "$count"); do echo "SELECT tenancy.create_tenant('${prefix}_$i');"; done; } | q -p "$port" -U app >/dev/null
  t1=$(now)
  echo "$t0 $t1 $count" | awk '{printf "%.0f", ($2 - $1) * 1000 / $3}'
}
# median: of the numbers on stdin (space-separated); a FAILED value makes it FAILED.
median() {
  tr ' ' '\n' | grep . | sort -n | awk '/FAILED/ {f = 1} {a[NR] = $1} END {if (f) print "FAILED"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

echo "== bench-citus: provisioning, $ROUNDS rounds of $K tenants per configuration"
declare -A prov=([citus]="" [citus_off]="" [single]="")
configs=(citus citus_off single)
for r in $(seq 1 "$ROUNDS"); do
  line="round $r:"
  for j in 0 1 2; do
    c=${configs[$(((r + j) % 3))]}
    v=$(create "$c" "p${r}_$c" "$K")
    prov[$c]+="$v "
    line+=" $c $v ms"
  done
  echo "$line"
done
# The coordinator's plain tenants would join its migrate_all runs: drop them.
for r in $(seq 1 "$ROUNDS"); do
  for i in $(seq 1 "$K"); do echo "SELECT tenancy.drop_tenant('p${r}_citus_off_$i');"; done
done | q -p "$P0" -U app >/dev/null

echo "== bench-citus: $N tenants on each of the coordinator (distributed) and the single node"
have=$((ROUNDS * K))
if [ "$have" -lt "$N" ]; then
  create citus fill "$((N - have))" >/dev/null
  create single fill "$((N - have))" >/dev/null
fi
check_fleet=$(q -p "$P0" -U postgres -c "SELECT count(*) || ' tenants, ' || count(*) FILTER (WHERE EXISTS (SELECT FROM pg_dist_schema s WHERE s.schemaid = t.schema_oid)) || ' distributed' FROM tenancy.tenants t")
echo "coordinator: $check_fleet"
n_citus=$(q -p "$P0" -U postgres -c "SELECT count(*) FROM tenancy.tenants")
n_single=$(q -p "$PS" -U postgres -c "SELECT count(*) FROM tenancy.tenants")

# migrate PORT JOBS VERSION SQL: registers the migration and times CALL migrate_all(jobs => JOBS)
# as the superuser (the DBA); prints seconds, or FAILED with the run's state, migrated and failed.
migrate() {
  local port=$1 jobs=$2 version=$3 sql=$4 t0 t1 res n
  q -p "$port" -U postgres -v v="$version" -v s="$sql" <<<"SELECT tenancy.add_migration(:'v', 'bench', :'s')" >/dev/null
  t0=$(now)
  q -p "$port" -U postgres -c "CALL tenancy.migrate_all(jobs => $jobs)" >/dev/null 2>&1 || true
  t1=$(now)
  res=$(q -p "$port" -U postgres -c "SELECT state || ' ' || migrated || ' ' || failed FROM tenancy.progress ORDER BY run_id DESC LIMIT 1")
  n=$(q -p "$port" -U postgres -c "SELECT count(*) FROM tenancy.tenants")
  if [ "$res" != "finished $n 0" ]; then echo "FAILED($res)"; return; fi
  echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}'
}
echo "== bench-citus: migrate_all over $n_citus distributed tenants (and $n_single on the single node), $MROUNDS rounds"
declare -A mig=()
v=0
for r in $(seq 1 "$MROUNDS"); do
  order=(1 2); [ $((r % 2)) = 0 ] && order=(2 1)
  for kind in add_column create_table; do
    for jobs in "${order[@]}"; do
      for where in citus single; do
        v=$((v + 1))
        port=$P0; [ "$where" = single ] && port=$PS
        version=$(printf '9%03d' "$v")
        if [ "$kind" = add_column ]; then
          sql="ALTER TABLE users ADD COLUMN bench_$v text"
        else
          sql="CREATE TABLE bench_$v (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint REFERENCES users (id), note text); CREATE INDEX ON bench_$v (user_id)"
        fi
        s=$(migrate "$port" "$jobs" "$version" "$sql")
        mig[$where.$kind.$jobs]+="$s "
        echo "round $r: $where $kind jobs => $jobs: $s s"
      done
    done
  done
done

cell() { local v; v=$(echo "${mig[$1]}" | median); echo "$v (${mig[$1]% })"; }
{
  echo "# pg_tenancy on Citus: measured figures"
  echo
  echo "$(date -u +%Y-%m-%d), $versions, pg_tenancy $PROFILE build, $(nproc) cores; all nodes on this machine, fsync off."
  echo
  echo "Provisioning (create_tenant of the shipped migrations, one connection per batch of $K, each call its own transaction), ms per tenant: median of $ROUNDS interleaved rounds (each round's value in parentheses)."
  echo
  echo "| configuration | ms per tenant |"
  echo "|---|---|"
  echo "| 3-node Citus, tenants distributed (coordinator + 2 workers) | $(echo "${prov[citus]}" | median) (${prov[citus]% }) |"
  echo "| same coordinator, \`tenancy.distribute = off\` (plain schemas) | $(echo "${prov[citus_off]}" | median) (${prov[citus_off]% }) |"
  echo "| single node, no Citus | $(echo "${prov[single]}" | median) (${prov[single]% }) |"
  echo
  echo "\`CALL tenancy.migrate_all(jobs => J)\`, seconds for the whole run: median of $MROUNDS rounds (each run in parentheses); $n_citus distributed tenants on Citus, $n_single tenants on the single node."
  echo
  echo "| migration | Citus, jobs => 1 | Citus, jobs => 2 | single node, jobs => 1 | single node, jobs => 2 |"
  echo "|---|---|---|---|---|"
  echo "| ADD COLUMN (one statement) | $(cell citus.add_column.1) | $(cell citus.add_column.2) | $(cell single.add_column.1) | $(cell single.add_column.2) |"
  echo "| CREATE TABLE + index (distributed and colocated per tenant on Citus) | $(cell citus.create_table.1) | $(cell citus.create_table.2) | $(cell single.create_table.1) | $(cell single.create_table.2) |"
} >"$out"
echo
cat "$out"
echo
echo "== bench-citus: written to $out"
