#!/usr/bin/env bash
# Migrations that need their own transaction (issue 13, case 2), with real commits and sessions:
# existing tenants whose migrations add an enum value and then use it fail migrate_tenant (one
# transaction) with a precise 55P04, and go through CALL tenancy.migrate_all, which commits after
# the migration that adds the value (jobs 1 and 2); a failure after such a commit leaves the
# tenant at the committed version; new tenants signed up by a managed row get every value in one
# transaction; tenancy.remove_migration against a concurrent migrate_tenant, both ways round.
# Prints "N passed, M failed".
set -uo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${TRANSACTIONS_PORT:-28833}
dir=$(cluster_start transactions "$PORT") || exit 1
trap 'cluster_stop transactions >/dev/null 2>&1 || true' EXIT
export PGHOST="$dir/sock" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres
export PGOPTIONS="-c client_min_messages=warning"

ledger_has() { q -c "SELECT count(*) FROM tenancy.ledger WHERE schema_name = '$1' AND version = '$2'"; }
at_version() { q -c "SELECT count(*) FROM tenancy.ledger WHERE version = '$1'"; }
# Tenants whose migrations A and B were written by the same transaction (the ledger row's xmin).
same_commit() {
  q -c "SELECT count(*) FROM tenancy.ledger a JOIN tenancy.ledger b USING (schema_name)
        WHERE a.version = '$1' AND b.version = '$2' AND a.xmin::text = b.xmin::text"
}
add() { q -c "SELECT tenancy.add_migration('$1', '$2', \$m\$$3\$m\$)" >/dev/null; }

q -c "CREATE EXTENSION pg_tenancy" \
  -c "CREATE TABLE plans (id bigint PRIMARY KEY)" -c "CREATE TABLE organizations (id bigint PRIMARY KEY)" \
  -c "CREATE ROLE tenant_owner" -c "GRANT SELECT, REFERENCES ON plans TO tenant_owner" \
  -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], owner => 'tenant_owner')" >/dev/null
add 0006 ticket_status "CREATE TYPE ticket_status AS ENUM ('open', 'done')"
q -c "INSERT INTO organizations SELECT generate_series(1, 6)"
check "six tenants with the enum type, committed" "6" "$(at_version 0006)"

# --- an existing tenant: the value is added and used in one transaction: a precise refusal
add 0007 ticket_status_waiting "ALTER TYPE ticket_status ADD VALUE 'waiting' BEFORE 'done'"
add 0008 tickets "CREATE TABLE tickets (id int PRIMARY KEY, status ticket_status NOT NULL DEFAULT 'waiting'); INSERT INTO tickets VALUES (1, 'waiting')"
out=$(q -v VERBOSITY=verbose -c "SELECT * FROM tenancy.migrate_tenant('org_1')" 2>&1)
check "migrate_tenant keeps 55P04 and names tenant and migration" "1" \
  "$(grep -c 'ERROR:  55P04: tenant "org_1": migration 0008_tickets failed: unsafe use of new value "waiting"' <<<"$out")"
check "its detail names the migration that added the value" "1" "$(grep -c 'add enum values earlier in this same transaction: 0007_ticket_status_waiting' <<<"$out")"
check "its hint says how to get past it" "1" \
  "$(grep -c "HINT:  Run CALL tenancy.migrate_all(tenants => ARRAY\['org_1'\]), which commits after each migration that adds enum values; or SELECT \* FROM tenancy.migrate_tenant('org_1', target => '0007')" <<<"$out")"
check "org_1 stays at 0006" "0" "$(ledger_has org_1 0007)"

# --- CALL migrate_all commits after the migration that adds the value
q -c "CALL tenancy.migrate_all()" 2>/dev/null
check "migrate_all took every tenant through 0008" "6" "$(at_version 0008)"
check "0007 and 0008 committed apart in every tenant" "0" "$(same_commit 0007 0008)"
check "the value is there and used" "waiting" "$(q -c "SELECT status FROM org_1.tickets")"
check "progress counts tenants, not steps" "6 6 0" "$(q -c "SELECT total || ' ' || migrated || ' ' || failed FROM tenancy.progress LIMIT 1")"
check "each tenant's queue item counts both migrations" "6" \
  "$(q -c "SELECT count(*) FROM tenancy.fleet_items WHERE run_id = (SELECT max(run_id) FROM tenancy.fleet_runs) AND state = 'done' AND applied = 2")"
check "every tenant up to date" "6" "$(q -c "SELECT count(*) FROM tenancy.status WHERE state = 'up_to_date'")"

# --- the same with a background worker
add 0009 ticket_status_archived "ALTER TYPE ticket_status ADD VALUE IF NOT EXISTS 'archived'"
add 0010 tickets_archived "ALTER TABLE tickets ADD COLUMN final ticket_status NOT NULL DEFAULT 'archived'"
q -c "CALL tenancy.migrate_all(jobs => 2)" 2>/dev/null
check "jobs 2: every tenant through 0010" "6" "$(at_version 0010)"
check "jobs 2: 0009 and 0010 committed apart" "0" "$(same_commit 0009 0010)"
check "jobs 2 used a background worker" "1" "$(q -c "SELECT workers FROM tenancy.progress LIMIT 1")"

# --- a failure after the commit: the tenant stays at the version it committed
add 0011 ticket_status_spam "ALTER TYPE ticket_status ADD VALUE 'spam'"
add 0012 spam_log "CREATE TABLE spam_log (id int, status ticket_status DEFAULT 'spam')"
q -c "CREATE TABLE org_2.spam_log (id int)"
q -c "CALL tenancy.migrate_all()" 2>/dev/null
check "the others went through 0012" "5" "$(at_version 0012)"
check "org_2 keeps the committed 0011" "1 0" "$(ledger_has org_2 0011) $(ledger_has org_2 0012)"
check "org_2 failed on 0012" "failed 42P07" "$(q -c "SELECT state || ' ' || left(last_error, 5) FROM tenancy.status WHERE schema_name = 'org_2'")"
q -c "DROP TABLE org_2.spam_log"
q -c "CALL tenancy.migrate_all()" 2>/dev/null
check "a re-run finishes org_2 alone" "1 6" "$(q -c "SELECT total FROM tenancy.progress LIMIT 1") $(at_version 0012)"

# --- a sign-up: the new tenant gets every value in the row's one transaction
q -c "INSERT INTO organizations VALUES (7)"
check "new tenant org_7 has every migration" "$(q -c "SELECT count(*) FROM tenancy.migrations")" \
  "$(q -c "SELECT count(*) FROM tenancy.ledger WHERE schema_name = 'org_7'")"
check "and the values in the same order as the others" "$(q -c "SELECT enum_range(NULL::org_1.ticket_status)")" \
  "$(q -c "SELECT enum_range(NULL::org_7.ticket_status)")"
check "in one transaction (0006 to 0012 share a commit)" "1" "$(same_commit 0006 0012)"
check "compare_schemas finds nothing between org_1 and org_7" "0" "$(q -c "SELECT count(*) FROM tenancy.compare_schemas('org_1', 'org_7')")"

# --- remove_migration against a concurrent run applying it: it waits, then sees the tenant
add 0013 notes "CREATE TABLE notes (id int)"
"$PGBIN/psql" -X -q -c "BEGIN" -c "SELECT * FROM tenancy.migrate_tenant('org_3')" -c "SELECT pg_sleep(2)" -c "COMMIT" >/dev/null 2>&1 &
bg=$!
sleep 0.7
out=$(q -c "SELECT tenancy.remove_migration('0013')" 2>&1)
wait $bg
check "remove_migration waited and refused: org_3 has it now" "1" "$(grep -c 'migration 0013_notes cannot be removed: 1 tenant has applied it ("org_3")' <<<"$out")"
check "0013 is still known" "1" "$(q -c "SELECT count(*) FROM tenancy.migrations WHERE version = '0013'")"

# --- and the other way round: a run waits for the removal and then leaves the migration out
add 0014 tags "CREATE TABLE tags (id int)"
"$PGBIN/psql" -X -q -c "BEGIN" -c "SELECT tenancy.remove_migration('0014')" -c "SELECT pg_sleep(2)" -c "COMMIT" >/dev/null 2>&1 &
bg=$!
sleep 0.7
applied=$(q -c "SELECT string_agg(version, ',' ORDER BY version) FROM tenancy.migrate_tenant('org_4')" 2>&1)
wait $bg
check "migrate_tenant waited for the removal and applied the rest only" "0013" "$applied"
check "no ledger row and no table for the removed migration" "0 0" \
  "$(ledger_has org_4 0014) $(q -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'org_4' AND tablename = 'tags'")"
check "verify finds nothing" "" "$(q -c "SELECT schema_name || ': ' || problem FROM tenancy.verify() WHERE schema_name IS NOT NULL AND problem NOT LIKE 'owned by superuser%'")"

finish transactions
