#!/usr/bin/env bash
# pg_tenancy on a Citus cluster (issue 14; docs/citus.md): a coordinator and two workers on
# private ports (CITUS_PORT, +1, +2; default 28860), schema-based sharding on. Tenants made by
# create_tenant, by a managed-table row and by reconcile are whole distributed schemas; a later
# migration's new table is distributed and colocated in every tenant after migrate_all(jobs => 2);
# data written through the coordinator lands on the tenant's worker; what Citus cannot distribute
# fails the tenant's migration (0A000) and leaves it at its version; tenancy.distribute = off and
# auto with sharding off give plain schemas; rename and drop keep Citus's metadata consistent;
# move_tenant, status.node, verify's and reconcile's Citus checks; the shipped foreign key to the
# reference table public.plans. Timings are printed, not asserted.
#
# Citus is detected, never built or fetched: without citus.control and citus.so in the
# PostgreSQL under test this prints "citus: skipped: <why>" and exits 77 (scripts/test.sh counts
# it as skipped). The caller installs pg_tenancy (install_extension). Prints "N passed, M failed".
set -uo pipefail
source "$(dirname "$0")/lib.sh"

skip_without_citus citus

P0=${CITUS_PORT:-28860}
P1=$((P0 + 1)) P2=$((P0 + 2))
NODES=(citus-c citus-w1 citus-w2)
stop_all() { for n in "${NODES[@]}"; do cluster_stop "$n" >/dev/null 2>&1 || true; done; }
# CITUS_KEEP=1 leaves the cluster running (to look at it; stop it with cluster_stop citus-c etc.).
[ "${CITUS_KEEP:-0}" = 1 ] || trap stop_all EXIT
OPTS="-c listen_addresses=localhost -c shared_preload_libraries=citus -c max_prepared_transactions=20 -c wal_level=logical"
port=$P0
for n in "${NODES[@]}"; do
  cluster_start "$n" "$port" "$OPTS" >/dev/null || exit 1
  port=$((port + 1))
done
export PGHOST=localhost PGDATABASE=app PGOPTIONS="-c client_min_messages=warning"
unset PGUSER PGPORT
su_q() { q -p "$P0" -U postgres "$@"; }  # the coordinator, as the superuser
app_q() { q -p "$P0" -U app "$@"; }      # the coordinator, as the application role
on_port() { local p=$1; shift; q -p "$p" -U postgres "$@"; } # a node by port, as the superuser
# on_worker PORT SQL: a worker, as the superuser, seeing Citus's shards (it hides them from
# catalog queries otherwise).
on_worker() { q -p "$1" -U postgres -c "SET citus.override_table_visibility = off" -c "$2"; }
now() { date +%s.%N; }
START=$(now)
section() { printf -- '--- %s (at %.0fs)\n' "$1" "$(echo "$START $(now)" | awk '{print $2 - $1}')"; }
ms() { echo "$1 $2 ${3:-1}" | awk '{printf "%.0f", ($2 - $1) * 1000 / $3}'; }
# sqlstate ROLE SQL: the SQLSTATE and message of the error ROLE gets on the coordinator, or "ok".
sqlstate() {
  local out code
  out=$("$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -p "$P0" -U "$1" -c "$2" 2>&1) && { echo ok; return; }
  code=$(grep -o -m1 'ERROR:  [0-9A-Z]\{5\}' <<<"$out" | grep -o '[0-9A-Z]\{5\}$')
  echo "${code:-none}|$(sed -n 's/^ERROR:  [0-9A-Z]\{5\}: //p' <<<"$out" | head -1)"
}

# --- set-up, as the superuser: Citus on every node, the coordinator and workers, roles ---------
for p in "$P0" "$P1" "$P2"; do
  q -p "$p" -U postgres -d postgres -c "CREATE DATABASE app" >/dev/null || exit 1
  on_port "$p" -c "CREATE EXTENSION citus" >/dev/null || exit 1
done
su_q -c "SELECT citus_set_coordinator_host('localhost', $P0)" \
  -c "SELECT citus_add_node('localhost', $P1)" -c "SELECT citus_add_node('localhost', $P2)" >/dev/null || exit 1
check "set-up: two active workers" "2" "$(su_q -c "SELECT count(*) FROM citus_get_active_worker_nodes()")"
# Shared tables tenants reference are reference tables, made before CREATE EXTENSION pg_tenancy
# (the shipped migration 0005 references public.plans). The tenant owner `app` logs in: Citus
# runs the shard commands of its statements on the workers as that role (CREATE ROLE propagates).
su_q -c "CREATE ROLE app LOGIN" \
  -c "CREATE TABLE public.plans (id bigint PRIMARY KEY, name text NOT NULL)" \
  -c "SELECT create_reference_table('public.plans')" \
  -c "INSERT INTO public.plans VALUES (1, 'free'), (2, 'pro')" \
  -c "GRANT SELECT, REFERENCES ON public.plans TO app" >/dev/null || exit 1
su_q -c "GRANT CREATE ON DATABASE app TO app" >/dev/null || exit 1
su_q -c "CREATE EXTENSION pg_tenancy" \
  -c "CREATE TABLE public.organizations (id bigint PRIMARY KEY, name text NOT NULL)" \
  -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], owner => 'app')" \
  -c "GRANT SELECT, INSERT, UPDATE, DELETE ON public.organizations TO app" \
  -c "SELECT tenancy.grant_provision('app')" \
  -c "ALTER DATABASE app SET citus.enable_schema_based_sharding = on" >/dev/null || exit 1
check "set-up: pg_tenancy is installed on every worker (Citus propagated CREATE EXTENSION)" "1 1" \
  "$(on_port "$P1" -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_tenancy'") $(on_port "$P2" -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_tenancy'")"
echo "versions: $(su_q -c "SELECT 'PostgreSQL ' || current_setting('server_version') || ', Citus ' || extversion || ' (' || citus_version() || ')' FROM pg_extension WHERE extname = 'citus'" | head -1)"

# whole SCHEMA: "whole" when the schema is a distributed schema and every table of it (relkind
# r or p on the coordinator) is in pg_dist_partition with the schema's colocation id; else what is not.
whole() {
  su_q -v s="$1" <<'SQL'
SELECT CASE WHEN s.colocationid IS NULL THEN 'not a distributed schema, ' || count(c.oid) || ' tables'
            WHEN count(c.oid) = 0 THEN 'a distributed schema without tables'
            WHEN count(c.oid) = count(d.logicalrelid) FILTER (WHERE d.colocationid = s.colocationid) THEN 'whole'
            ELSE (count(c.oid) - count(d.logicalrelid) FILTER (WHERE d.colocationid = s.colocationid)) || ' of ' || count(c.oid)
                 || ' tables not in the schema''s colocation group: '
                 || string_agg(c.relname, ',' ORDER BY c.relname) FILTER (WHERE d.colocationid IS DISTINCT FROM s.colocationid) END
FROM pg_namespace n
LEFT JOIN pg_dist_schema s ON s.schemaid = n.oid
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p')
LEFT JOIN pg_dist_partition d ON d.logicalrelid = c.oid
WHERE n.nspname = :'s'
GROUP BY s.colocationid
SQL
}
# node SCHEMA: the worker port holding the shards of the schema's tables ("none", or several).
node() {
  su_q -c "SELECT coalesce(string_agg(DISTINCT nodeport::text, ','), 'none') FROM citus_shards WHERE table_name::text LIKE '$1.%'"
}

# --- 1. tenants made three ways are whole distributed schemas ----------------------------------
section "1. tenants made three ways are whole distributed schemas"
N=${CITUS_TENANTS:-6}
t0=$(now)
for i in $(seq 1 "$N"); do app_q -c "SELECT tenancy.create_tenant('t_$i')" >/dev/null || echo "create_tenant t_$i failed"; done
t1=$(now)
echo "timing: create_tenant (shipped migrations, 3-node cluster, $N tenants, one connection each): $(ms "$t0" "$t1" "$N") ms per tenant"
check "create_tenant: t_1 is a distributed schema, every table in its colocation group" "whole" "$(whole t_1)"
bad=""; for i in $(seq 1 "$N"); do [ "$(whole "t_$i")" = whole ] || bad+=" t_$i"; done
check "create_tenant: all $N tenants whole" "" "$bad"
check "create_tenant: t_1 has the shipped tables (users, projects, tasks, comments, subscription)" "5" \
  "$(su_q -c "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 't_1.%'")"
t0=$(now)
app_q -c "INSERT INTO organizations VALUES (1, 'Acme')" >/dev/null
t1=$(now)
echo "timing: managed-row INSERT provisioning org_1: $(ms "$t0" "$t1") ms"
check "managed-row INSERT: org_1 is whole" "whole" "$(whole org_1)"
su_q -c "SET session_replication_role = replica" -c "INSERT INTO organizations VALUES (2, 'Globex')" >/dev/null
check "a managed row inserted with triggers bypassed has no tenant yet" "0" "$(su_q -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'org_2'")"
check "reconcile(dry_run => false) creates org_2" "org_2" \
  "$(app_q -c "SELECT schema_name FROM tenancy.reconcile(dry_run => false)")"
check "reconcile: org_2 is whole" "whole" "$(whole org_2)"
res=$(sqlstate postgres "SELECT tenancy.create_tenant('by_dba', owner => 'app')")
check "the superuser creates a tenant owned by app: no error" "ok" "$res"
check "the superuser creates a tenant owned by app: it is whole" "whole" "$(whole by_dba)"
check "tenants spread over both workers" "2" \
  "$(su_q -c "SELECT count(DISTINCT nodeport) FROM citus_shards WHERE citus_table_type = 'schema'")"

# --- 2. a later migration: its new table is distributed and colocated in every tenant ----------
section "2. a later migration: its new table is distributed and colocated in every tenant"
su_q -f - >/dev/null <<'SQL'
SELECT tenancy.add_migration('0100', 'labels', $m$
CREATE TABLE labels (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, task_id bigint REFERENCES tasks(id), name text NOT NULL);
CREATE INDEX ON labels (task_id);
INSERT INTO labels (name) VALUES ('first');
ALTER TABLE labels ADD COLUMN color text NOT NULL DEFAULT 'grey';
$m$);
SQL
t0=$(now)
out=$(su_q -c "CALL tenancy.migrate_all(jobs => 2)" 2>&1)
t1=$(now)
check "migrate_all(jobs => 2) ends without an error" "" "$(grep ERROR <<<"$out")"
tenants=$(su_q -c "SELECT count(*) FROM tenancy.tenants")
echo "timing: migrate_all(jobs => 2), 0100 (CREATE TABLE, index, INSERT, ADD COLUMN) over $tenants distributed tenants: $(ms "$t0" "$t1") ms"
check "the run migrated every tenant, none failed" "finished $tenants 0" \
  "$(su_q -c "SELECT state || ' ' || migrated || ' ' || failed FROM tenancy.progress ORDER BY run_id DESC LIMIT 1")"
bad=""; for s in $(su_q -c "SELECT schema_name FROM tenancy.tenants ORDER BY 1"); do [ "$(whole "$s")" = whole ] || bad+=" $s: $(whole "$s");"; done
check "after migrate_all every tenant is whole (labels distributed and colocated)" "" "$bad"
check "labels is a distributed table in every tenant" "$tenants" \
  "$(su_q -c "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE '%.labels'")"
check "the migration's INSERT and ADD COLUMN on the new table worked (org_1.labels through the coordinator)" "first grey" \
  "$(su_q -c "SELECT name || ' ' || color FROM org_1.labels")"
check "the index on labels reached the shard (on its worker)" "1" \
  "$(on_worker "$(node org_1)" "SELECT count(*) FROM pg_indexes WHERE schemaname = 'org_1' AND tablename LIKE 'labels\_%' AND indexdef LIKE '%(task_id)%'")"

# migrate_all's lock_timeout where the lock is held: on the coordinator (an application transaction
# through it holds the shell table), and on the tenant's worker (a session connected there holds
# the shard). Either way the tenant fails with 55P03 within about the timeout, the others migrate.
holder() { # holder PORT TENANT SECONDS: a transaction of app reading TENANT.users on PORT, in the background
  "$PGBIN/psql" -X -q -p "$1" -U app -c "BEGIN" -c "SELECT count(*) FROM $2.users" -c "SELECT pg_sleep($3)" -c "COMMIT" >/dev/null 2>&1 &
  sleep 1
}
v=103
for where in coordinator worker; do
  port=$P0; [ "$where" = worker ] && port=$(node org_2)
  su_q -c "SELECT tenancy.add_migration('0$v', 'col_$v', 'ALTER TABLE users ADD COLUMN col_$v text')" >/dev/null
  v=$((v + 1))
  holder "$port" org_2 6
  t0=$(now)
  su_q -c "CALL tenancy.migrate_all(jobs => 2, lock_timeout => '1s')" >/dev/null 2>&1
  t1=$(now)
  echo "timing: migrate_all(lock_timeout => '1s') with org_2 held on the $where: $(ms "$t0" "$t1") ms"
  check "lock held on the $where: org_2 fails with 55P03 within the lock timeout (the run ends before the holder)" "failed 55P03 yes" \
    "$(su_q -c "SELECT state || ' ' || left(last_error, 5) FROM tenancy.status WHERE schema_name = 'org_2'") $(awk -v a="$t0" -v b="$t1" 'BEGIN {print (b - a < 4) ? "yes" : "no: " b - a " s"}')"
  wait
  su_q -c "CALL tenancy.migrate_all()" >/dev/null 2>&1
done
check "after the holders, every tenant is up to date" "" "$(su_q -c "SELECT string_agg(schema_name, ',') FROM tenancy.status WHERE state <> 'up_to_date'")"

# --- 3. data written through the coordinator lands on the tenant's worker ----------------------
section "3. data written through the coordinator lands on the tenant's worker"
app_q -c "SELECT tenancy.set_tenant('org_1', is_local => false)" -c "INSERT INTO users (email, full_name) VALUES ('ada@example.com', 'Ada')" >/dev/null
shard=$(su_q -c "SELECT shard_name || ' ' || nodeport FROM citus_shards WHERE table_name = 'org_1.users'::regclass")
check "org_1.users has one shard" "1" "$(wc -w <<<"${shard% *}")"
check "the row inserted through the coordinator is in the shard on worker ${shard#* }" "ada@example.com" \
  "$(on_port "${shard#* }" -c "SELECT email FROM ${shard% *}")"
other=$P1; [ "${shard#* }" = "$P1" ] && other=$P2
check "the other worker has no shard of org_1" "0" \
  "$(on_worker "$other" "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'org_1' AND c.relkind = 'r' AND c.relname ~ '^users_[0-9]+$'")"

# --- 4. the shipped foreign key to the reference table public.plans ----------------------------
section "4. the shipped foreign key to the reference table public.plans"
check "a tenant's subscription references a plan (reference table public.plans)" "ok" \
  "$(sqlstate app "SELECT tenancy.set_tenant('org_1'); INSERT INTO subscription (plan_id) VALUES (2)")"
check "a subscription naming no plan fails the foreign key (23503)" "23503" \
  "$(sqlstate app "SELECT tenancy.set_tenant('t_1'); INSERT INTO subscription (plan_id) VALUES (99)" | cut -d'|' -f1)"
check "the foreign key is native (subscription -> public.plans, a reference table)" "t" \
  "$(su_q -c "SELECT bool_and(c.confrelid = 'public.plans'::regclass) AND (SELECT partmethod = 'n' AND repmodel = 't' FROM pg_dist_partition WHERE logicalrelid = 'public.plans'::regclass) FROM pg_constraint c WHERE c.conrelid = 'org_1.subscription'::regclass AND c.contype = 'f'")"

# --- 5. a migration Citus cannot distribute fails the tenant (0A000), which keeps its version ---
section "5. a migration Citus cannot distribute fails the tenant (0A000), which keeps its version"
before=$(su_q -c "SELECT version FROM tenancy.status WHERE schema_name = 't_1'")
su_q -c "SELECT tenancy.add_migration('0101', 'inheritance', 'CREATE TABLE kids () INHERITS (users)')" >/dev/null
res=$(sqlstate postgres "SELECT tenancy.migrate_tenant('t_1')")
check "an inheriting table: migrate_tenant fails with 0A000" "0A000" "${res%%|*}"
msg=${res#*|}
check "the message names the tenant, the migration and the table" "yes" \
  "$([[ $msg == *t_1* && $msg == *0101* && $msg == *kids* ]] && echo yes || echo "no: $msg")"
check "t_1 stays at its version, no kids table" "$before 0" \
  "$(su_q -c "SELECT version FROM tenancy.status WHERE schema_name = 't_1'") $(su_q -c "SELECT count(*) FROM pg_class WHERE relname = 'kids'")"
check "remove_migration('0101') withdraws it" "ok" "$(sqlstate postgres "SELECT tenancy.remove_migration('0101')")"
su_q -c "CREATE TABLE public.regions (id bigint PRIMARY KEY)" -c "GRANT REFERENCES ON public.regions TO app" >/dev/null
su_q -c "SELECT tenancy.add_migration('0102', 'shared_fk', 'CREATE TABLE places (id bigint PRIMARY KEY, region_id bigint REFERENCES public.regions (id))')" >/dev/null
res=$(sqlstate postgres "SELECT tenancy.migrate_tenant('t_1')")
check "a foreign key to a public table that is not a reference table: 0A000" "0A000" "${res%%|*}"
msg=${res#*|}
check "the message names the tenant, the migration and the table" "yes" \
  "$([[ $msg == *t_1* && $msg == *0102* && $msg == *places* ]] && echo yes || echo "no: $msg")"
check "t_1 stays at its version, no places table" "$before 0" \
  "$(su_q -c "SELECT version FROM tenancy.status WHERE schema_name = 't_1'") $(su_q -c "SELECT count(*) FROM pg_class WHERE relname = 'places'")"
check "remove_migration('0102') withdraws it" "ok" "$(sqlstate postgres "SELECT tenancy.remove_migration('0102')")"
check "t_1 migrates again without error" "ok" "$(sqlstate postgres "SELECT tenancy.migrate_tenant('t_1')")"

# A plain tenant on Citus: its subscription references the reference table plans, so Citus makes
# it a Citus local table, and warns that open_task_count depends on tasks, which is not in its
# metadata (docs/citus.md). The warning is left out of the output.
QUIET="SET client_min_messages = error"
# --- 6. tenancy.distribute = off, and auto with sharding off: plain schemas ---------------------
section "6. tenancy.distribute = off, and auto with sharding off: plain schemas"
# dist SCHEMA: "in pg_dist_schema/distributed tables" for the schema. (A plain tenant's
# subscription, whose foreign key references the reference table plans, is a Citus local table:
# in pg_dist_partition with colocation id 0, on the coordinator; not counted.)
dist() {
  su_q -c "SELECT (SELECT count(*) FROM pg_dist_schema WHERE schemaid::regnamespace::text = '$1') || '/' || (SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE '$1.%' AND colocationid <> 0)"
}
app_q -c "$QUIET" -c "SET tenancy.distribute = off" -c "SELECT tenancy.create_tenant('plain_off')" >/dev/null
check "tenancy.distribute = off: plain_off is a plain schema (not in pg_dist_schema, no distributed table)" "0/0" "$(dist plain_off)"
app_q -c "$QUIET" -c "SET citus.enable_schema_based_sharding = off" -c "SELECT tenancy.create_tenant('plain_auto')" >/dev/null
check "auto with sharding off: plain_auto is a plain schema" "0/0" "$(dist plain_auto)"
app_q -c "SET citus.enable_schema_based_sharding = off" -c "SET tenancy.distribute = on" -c "SELECT tenancy.create_tenant('forced_on')" >/dev/null
check "tenancy.distribute = on with sharding off: forced_on is whole" "whole" "$(whole forced_on)"

# --- 7. rename and drop of a distributed tenant keep Citus's metadata consistent ----------------
section "7. rename and drop of a distributed tenant keep Citus's metadata consistent"
t2_node=$(node t_2)
app_q -c "SELECT tenancy.rename_tenant('t_2', 't_2_renamed')" >/dev/null
check "rename_tenant: pg_dist_schema follows the new name" "t_2_renamed" \
  "$(su_q -c "SELECT schemaid::regnamespace::text FROM pg_dist_schema WHERE schemaid::regnamespace::text LIKE 't\_2%'")"
check "rename_tenant: the renamed tenant is whole, its shards in place" "whole $t2_node" "$(whole t_2_renamed) $(node t_2_renamed)"
check "rename_tenant: the worker has the schema under its new name only" "0 1" \
  "$(on_port "$t2_node" -c "SELECT count(*) FILTER (WHERE nspname = 't_2'), count(*) FILTER (WHERE nspname = 't_2_renamed') FROM pg_namespace" | tr '|' ' ')"
check "rename_tenant: the tenant keeps working" "ok" \
  "$(sqlstate app "SELECT tenancy.set_tenant('t_2_renamed'); INSERT INTO users (email) VALUES ('r@example.com')")"
t3_node=$(node t_3)
app_q -c "SELECT tenancy.drop_tenant('t_3')" >/dev/null
check "drop_tenant: nothing of t_3 in pg_dist_schema, pg_dist_partition, citus_shards" "0 0 0" \
  "$(su_q -c "SELECT (SELECT count(*) FROM pg_dist_schema WHERE schemaid::regnamespace::text = 't_3') || ' ' || (SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 't_3.%') || ' ' || (SELECT count(*) FROM citus_shards WHERE table_name::text LIKE 't_3.%')")"
check "drop_tenant: the worker has no schema t_3" "0" "$(on_port "$t3_node" -c "SELECT count(*) FROM pg_namespace WHERE nspname = 't_3'")"

# --- 8. move_tenant and status.node -------------------------------------------------------------
section "8. move_tenant and status.node"
from=$(node org_1)
to=$P1; [ "$from" = "$P1" ] && to=$P2
check "status.node: org_1 is on localhost:$from" "localhost:$from" \
  "$(su_q -c "SELECT node FROM tenancy.status WHERE schema_name = 'org_1'" 2>&1 | head -1)"
check "status.node: plain_off is on no node" "" "$(su_q -c "SELECT node FROM tenancy.status WHERE schema_name = 'plain_off'" 2>&1 | head -1)"
# move_tenant moves as the tenant's owner, and Citus locks the reference tables the tenant's foreign
# keys point at, which needs their owner: refused while postgres owns plans.
res=$(sqlstate postgres "SELECT tenancy.move_tenant('org_1', 'localhost', $to)")
check "move_tenant while the owner app does not own public.plans: 42501 naming it" "42501 yes" \
  "${res%%|*} $([[ $res == *plans* ]] && echo yes || echo "no: $res")"
check "nothing moved" "$from" "$(node org_1)"
su_q -c "ALTER TABLE public.plans OWNER TO app" >/dev/null
# The owner's CHECK constraint runs while Citus copies the rows to the target worker. Evaluated
# with a superuser's rights it makes app superuser there (it does under Citus's own
# citus_schema_move called by a superuser: checked by hand); move_tenant runs the move as app.
app_q -f - >/dev/null <<'SQL'
CREATE FUNCTION org_1.probe_ok(v int) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        -- locally: Citus refuses to propagate DDL from a query on a shard
        PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
        EXECUTE 'ALTER ROLE app SUPERUSER';
    END IF;
    RETURN true;
END $f$;
ALTER TABLE org_1.users ADD COLUMN probe int DEFAULT 1 CONSTRAINT users_probe_ok CHECK (org_1.probe_ok(probe));
SQL
check "set-up: org_1.users has the owner's CHECK constraint calling its function" "1" \
  "$(su_q -c "SELECT count(*) FROM pg_constraint WHERE conname = 'users_probe_ok'")"
t0=$(now)
res=$(sqlstate postgres "SELECT tenancy.move_tenant('org_1', 'localhost', $to)")
t1=$(now)
check "move_tenant('org_1', 'localhost', $to), called by the superuser" "ok" "$res"
check "the tenant owner's CHECK constraint did not make app superuser on any node" "f f f" \
  "$(for p in "$P0" "$P1" "$P2"; do on_port "$p" -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'app'"; done | tr '\n' ' ' | sed 's/ $//')"
echo "timing: move_tenant of org_1 (transfer_mode auto): $(ms "$t0" "$t1") ms"
check "move_tenant: every shard of org_1 is on $to, and it is whole" "$to whole" "$(node org_1) $(whole org_1)"
check "move_tenant: status.node follows" "localhost:$to" \
  "$(su_q -c "SELECT node FROM tenancy.status WHERE schema_name = 'org_1'" 2>&1 | head -1)"
check "move_tenant: the tenant keeps working (insert, then read what was there before)" "ada@example.com,bob@example.com" \
  "$(app_q -c "SELECT tenancy.set_tenant('org_1', is_local => false)" -c "INSERT INTO users (email) VALUES ('bob@example.com')" -c "SELECT string_agg(email, ',' ORDER BY email) FROM users" 2>&1 | tail -1)"

# --- 9. verify's Citus checks, and what reconcile fixes -----------------------------------------
section "9. verify's Citus checks, and what reconcile fixes"
citus_rows() { su_q -c "SELECT coalesce(schema_name::text, '-') || ': ' || problem FROM tenancy.verify() WHERE problem LIKE 'Citus: %' ORDER BY 1" 2>&1; }
has() { grep -F -- "$3" <<<"$2" | grep -c "^$1"; } # has PREFIX ROWS WORDS: how many rows start with PREFIX and contain WORDS
check "verify: no Citus problem on a consistent cluster (plain tenants aside)" "" \
  "$(citus_rows | grep -v '^plain_off: \|^plain_auto: ')"
# Made by the tenant owner in a DO block (through SPI, so Citus leaves it local): reconcile
# distributes it as that owner.
app_q -c 'DO $$ BEGIN CREATE TABLE org_1.stray (id int); END $$' >/dev/null
check "by hand: org_1.stray, created through SPI, stays a local table of distributed org_1" "0" \
  "$(su_q -c "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'org_1.stray'::regclass")"
rows=$(citus_rows)
echo "verify's Citus rows:"; sed 's/^/  /' <<<"$rows"
check "verify: the local table in distributed tenant org_1" "1" "$(has 'org_1: ' "$rows" 'local table')"
check "verify: plain_off is not a distributed schema while sharding is on" "1" "$(has 'plain_off: ' "$rows" 'not a distributed schema')"
# A non-reference shared table referenced by a tenant's foreign key (only a plain tenant can have
# one: Citus refuses it in a distributed schema).
app_q -c "$QUIET" -c "SET tenancy.distribute = off" -c "SELECT tenancy.create_tenant('plain_ref')" \
  -c "CREATE TABLE plain_ref.places (id bigint PRIMARY KEY, region_id bigint REFERENCES public.regions (id))" >/dev/null
# A tenant whose owner role is missing on one worker: ghost (propagated) takes over ghost_t on the
# coordinator only, then is dropped on the second worker only, both with DDL propagation off.
su_q -c "CREATE ROLE ghost LOGIN" >/dev/null
app_q -c "SELECT tenancy.create_tenant('ghost_t')" >/dev/null
su_q -c "SET citus.enable_ddl_propagation = off" -c "ALTER SCHEMA ghost_t OWNER TO ghost" >/dev/null
on_port "$P2" -c "SET citus.enable_ddl_propagation = off" -c "DROP ROLE ghost" >/dev/null
rows=$(citus_rows)
echo "verify's Citus rows:"; sed 's/^/  /' <<<"$rows"
check "verify: public.regions, referenced by a tenant foreign key, is not a reference table (schema_name NULL)" "1" \
  "$(has '-: ' "$(grep regions <<<"$rows")" 'not a reference table')"
check "verify: ghost, owner of ghost_t, does not exist on worker localhost:$P2" "1" \
  "$(has '-: ' "$(grep -F "on worker localhost:$P2" <<<"$rows")" 'ghost')"
on_port "$P2" -c "CREATE ROLE ghost LOGIN" >/dev/null
check "verify: the hint's CREATE ROLE, run on the worker, ends that row" "0" "$(citus_rows | grep -c 'on worker')"
# reconcile distributes the stray table and the undistributed tenant schemas it can.
out=$(su_q -c "SELECT coalesce(schema_name::text, '-') || ': ' || action FROM tenancy.reconcile(dry_run => false)" 2>&1)
echo "reconcile:"; sed 's/^/  /' <<<"$out"
check "reconcile: org_1.stray is now distributed in org_1's colocation group" "whole" "$(whole org_1)"
check "reconcile: plain_off and plain_auto are whole" "whole whole" "$(whole plain_off) $(whole plain_auto)"
rows=$(citus_rows)
echo "verify's Citus rows after reconcile:"; sed 's/^/  /' <<<"$rows"
check "verify after reconcile: no Citus row about org_1, plain_off or plain_auto" "0" \
  "$(grep -c '^org_1: \|^plain_off: \|^plain_auto: ' <<<"$rows")"
check "verify after reconcile: the shared-table row stays" "1" "$(has '-: ' "$rows" 'not a reference table')"
check "reconcile left plain_ref alone (its foreign key references public.regions)" "1" "$(has 'plain_ref: ' "$out" 'left alone')"
# The fix verify gives: make regions a reference table; then reconcile distributes plain_ref.
su_q -c "SELECT create_reference_table('public.regions')" >/dev/null
app_q -c "SELECT * FROM tenancy.reconcile(dry_run => false)" >/dev/null
check "after create_reference_table('public.regions'), reconcile distributes plain_ref" "whole" "$(whole plain_ref)"
check "verify has no Citus row left" "" "$(citus_rows)"

# --- 10. dropping the last tenants leaves nothing of them on the workers -------------------------
section "10. dropping the last tenants leaves nothing of them on the workers"
for s in $(su_q -c "SELECT schema_name FROM tenancy.tenants WHERE schema_name LIKE 't\_%' ORDER BY 1"); do
  app_q -c "SELECT tenancy.drop_tenant('$s')" >/dev/null || echo "drop_tenant $s failed"
done
check "after dropping the t_ tenants, no shard of theirs on any worker" "0 0" \
  "$(on_port "$P1" -c "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\_%'") $(on_port "$P2" -c "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\_%'")"

finish citus
