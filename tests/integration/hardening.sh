#!/usr/bin/env bash
# What real deployments do to a database: extension scripts, DROP EXTENSION, pg_dump/pg_restore,
# bypassed triggers. Real server, real psql, real pg_dump. Prints "N passed, M failed".
set -uo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${HARDENING_PORT:-28823}
dir=$(cluster_start hardening "$PORT") || exit 1
ext_dir=$("$PG_CONFIG" --sharedir)/extension
trap 'cluster_stop hardening >/dev/null 2>&1 || true; rm -f "$ext_dir"/tenancy_member_test*' EXIT
export PGHOST="$dir/sock" PGPORT="$PORT" PGUSER=postgres

q -d postgres -c "CREATE DATABASE src"
S() { q -d src "$@"; }
S -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_tenancy" -c "CREATE TABLE plans (id bigint PRIMARY KEY)" \
  -c "INSERT INTO plans VALUES (1)" -c "CREATE TABLE organizations (id bigint PRIMARY KEY, name text)" \
  -c "CREATE ROLE tenant_owner" -c "GRANT SELECT, REFERENCES ON plans TO tenant_owner" \
  -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'drop', owner => 'tenant_owner')" \
  -c "INSERT INTO organizations VALUES (1, 'one'), (2, 'two'), (3, 'three')" \
  -c "SELECT tenancy.add_migration('0006', 'notes', 'CREATE TABLE notes (id int PRIMARY KEY, body text)')" \
  -c "CALL tenancy.migrate_all()" -c "INSERT INTO org_1.users (email) VALUES ('a@example.com')" \
  -c "CREATE TABLE shared_docs (tenant_id text NOT NULL, id int PRIMARY KEY)" \
  -c "SELECT tenancy.enable_attribute_tenancy('shared_docs', 'tenant_id')" >/dev/null 2>&1
# A tenant its managed table detached (its ledger kept for when its row comes back).
S -c "CREATE TABLE teams (id int PRIMARY KEY)" \
  -c "SELECT tenancy.manage_tenant('teams', ARRAY['team_', ':id'], on_delete => 'detach', owner => 'tenant_owner')" \
  -c "INSERT INTO teams VALUES (1)" -c "DELETE FROM teams" >/dev/null 2>&1

# --- extension membership -------------------------------------------------------------------
check "no tenant object is a member of any extension" "0" \
  "$(S -c "SELECT count(*) FROM pg_depend d WHERE d.deptype = 'e' AND d.classid = 'pg_namespace'::regclass AND d.objid IN (SELECT schema_oid FROM tenancy.tenants)")"
printf "default_version = '1.0'\nrelocatable = false\nrequires = 'pg_tenancy'\n" > "$ext_dir/tenancy_member_test.control"
echo "SELECT tenancy.create_tenant('made_by_an_extension');" > "$ext_dir/tenancy_member_test--1.0.sql"
out=$(S -c "CREATE EXTENSION tenancy_member_test" 2>&1)
check "create_tenant inside an extension script is refused" "1" "$(grep -c 'cannot run inside an extension script' <<<"$out")"
check "and leaves no schema" "0" "$(S -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'made_by_an_extension'")"
echo "SELECT 1;" > "$ext_dir/tenancy_member_test--0.9.sql"
echo "SELECT tenancy.create_tenant('made_by_an_update');" > "$ext_dir/tenancy_member_test--0.9--1.0.sql"
S -c "CREATE EXTENSION tenancy_member_test VERSION '0.9'" >/dev/null
out=$(S -c "ALTER EXTENSION tenancy_member_test UPDATE TO '1.0'" 2>&1)
check "create_tenant inside an ALTER EXTENSION UPDATE script is refused" "1" "$(grep -c 'cannot run inside an extension script' <<<"$out")"
check "and leaves no schema either" "0" "$(S -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'made_by_an_update'")"
S -c "DROP EXTENSION tenancy_member_test" >/dev/null

# --- dump and restore -------------------------------------------------------------------------
"$PGBIN/pg_dump" -Fc -f "$dir/src.dump" src
q -d postgres -c "CREATE DATABASE dst TEMPLATE template0"
restore_out=$("$PGBIN/pg_restore" -d dst "$dir/src.dump" 2>&1); rc=$?
check "pg_restore succeeds without errors" "0 " "$rc $(grep -c 'error' <<<"$restore_out" | sed 's/^0$//')"
D() { q -d dst "$@"; }
check "registry restored" "$(S -c "SELECT string_agg(schema_name, ',' ORDER BY 1) FROM tenancy.tenants")" \
  "$(D -c "SELECT string_agg(schema_name, ',' ORDER BY 1) FROM tenancy.tenants")"
check "ledger restored" "$(S -c "SELECT count(*) FROM tenancy.ledger")" "$(D -c "SELECT count(*) FROM tenancy.ledger")"
check "registered migration restored" "1" "$(D -c "SELECT count(*) FROM tenancy.registered_migrations")"
check "managed-table settings restored" "organizations {org_,:id} drop, teams {team_,:id} detach" \
  "$(D -c "SELECT string_agg(table_name || ' ' || template::text || ' ' || on_delete, ', ' ORDER BY 1) FROM tenancy.managed_tables")"
check "tenant data restored" "1" "$(D -c "SELECT count(*) FROM org_1.users")"
check "registry re-linked to the restored schemas' OIDs" "0" \
  "$(D -c "SELECT count(*) FROM tenancy.tenants t WHERE NOT EXISTS (SELECT FROM pg_namespace n WHERE n.oid = t.schema_oid AND n.nspname = t.schema_name)")"
check "verify() is clean after restore" "0" "$(D -c "SELECT count(*) FROM tenancy.verify()")"
D -c "SET client_min_messages = warning" -c "CALL tenancy.migrate_all()"
check "migrate_all after restore is a no-op" "0" "$(D -c "SELECT total FROM tenancy.progress LIMIT 1")"
D -c "INSERT INTO organizations VALUES (4, 'four')" >/dev/null
check "managed triggers work after restore" "1" "$(D -c "SELECT count(*) FROM tenancy.tenants WHERE schema_name = 'org_4'")"
D -c "SELECT tenancy.add_migration('0007', 'more', 'CREATE TABLE more (id int)')" -c "SET client_min_messages = warning" -c "CALL tenancy.migrate_all()" >/dev/null
check "a new migration reaches every restored tenant" "4" "$(D -c "SELECT count(*) FROM tenancy.ledger WHERE version = '0007'")"
check "a detached tenant's kept ledger follows its restored schema" "1" \
  "$(D -c "SELECT count(*) FROM tenancy.detached_tenants d JOIN pg_namespace n ON n.oid = d.schema_oid AND n.nspname = d.schema_name")"
D -c "INSERT INTO teams VALUES (1)" >/dev/null
check "and its row, inserted again, re-adopts it: ledger kept, 0007 applied now" "t $(( $(D -c "SELECT count(*) FROM tenancy._embedded_checksums()") + 2 ))" \
  "$(D -c "SELECT EXISTS (SELECT FROM tenancy.tenants WHERE schema_name = 'team_1')") $(D -c "SELECT count(*) FROM tenancy.ledger WHERE schema_name = 'team_1'")"

# --- bypassed triggers: verify reports the drift, reconcile repairs what is safe --------------
S -c "SET session_replication_role = replica" -c "INSERT INTO organizations VALUES (10, 'replica')" >/dev/null
S -c "ALTER TABLE organizations DISABLE TRIGGER tenancy_provision" -c "INSERT INTO organizations VALUES (11, 'disabled')" \
  -c "ALTER TABLE organizations ENABLE TRIGGER tenancy_provision" >/dev/null
S -c "CREATE SCHEMA org_12" -c "SET session_replication_role = replica" -c "INSERT INTO organizations VALUES (12, 'schema by hand')" >/dev/null
check "verify names each drift" "org_10 no such schema|org_11 no such schema|org_12 exists but is not registered" \
  "$(S -c "SELECT string_agg(schema_name || CASE WHEN problem LIKE '%no such schema%' THEN ' no such schema' ELSE ' exists but is not registered' END, '|' ORDER BY 1) FROM tenancy.verify()")"
check "reconcile dry run changes nothing" "0" \
  "$(S -c "SELECT count(*) FROM tenancy.reconcile() r JOIN tenancy.tenants t USING (schema_name)")"
S -c "SET client_min_messages = warning" -c "SELECT * FROM tenancy.reconcile(dry_run => false)" >/dev/null
check "reconcile created the missing tenants, left the hand-made schema" "org_12" \
  "$(S -c "SELECT string_agg(schema_name, ',') FROM tenancy.verify()")"
check "reconciled tenants are fully migrated" "2" "$(S -c "SELECT count(*) FROM tenancy.status WHERE schema_name IN ('org_10', 'org_11') AND state = 'up_to_date'")"

# --- DROP EXTENSION leaves every tenant schema intact ---------------------------------------
out=$(S -c "DROP EXTENSION pg_tenancy" 2>&1)
check "DROP EXTENSION without CASCADE is refused while tables are managed" "1" "$(grep -c 'cannot drop extension pg_tenancy because other objects depend on it' <<<"$out")"
S -c "SET client_min_messages = warning" -c "DROP EXTENSION pg_tenancy CASCADE"
check "DROP EXTENSION CASCADE leaves the tenant schemas and their data" "1 1" \
  "$(S -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'org_1'") $(S -c "SELECT count(*) FROM org_1.users")"

finish hardening
