#!/usr/bin/env bash
# Snapshots (issue 15, baseline snapshots) with real commits and sessions: managed-row sign-ups
# built from the snapshot, CALL tenancy.migrate_all treating them as fully migrated (nothing to do,
# then the next migration applied to every tenant, snapshot or replayed), add_migration rebuilding
# it, and sign-ups running while another session rebuilds it (they read the committed row, never
# wait for the build, and all end up equal). Prints "N passed, M failed".
set -uo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${SNAPSHOT_PORT:-28837}
dir=$(cluster_start snapshot "$PORT") || exit 1
trap 'cluster_stop snapshot >/dev/null 2>&1 || true' EXIT
export PGHOST="$dir/sock" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres
export PGOPTIONS="-c client_min_messages=warning"

from_snapshot() { q -c "SELECT count(*) FROM tenancy.ledger WHERE schema_name = '$1' AND from_snapshot"; }
known() { q -c "SELECT count(*) FROM tenancy.migrations"; }
# hold SECONDS SQL…: runs SQL in a transaction of a background session that stays open SECONDS;
# $held is its PID. Waits half a second for it to take its locks.
hold() {
  local secs=$1 args=()
  shift
  for s in "$@"; do args+=(-c "$s"); done
  ( q -c "BEGIN" "${args[@]}" -c "SELECT pg_sleep($secs)" -c "COMMIT" >/dev/null ) &
  held=$!
  sleep 0.5
}
# removing VERSION OUT: remove_migration(VERSION) with a 3 s lock_timeout in a background session
# (its output in OUT); $remover is its PID. Waits half a second for it to start waiting.
removing() {
  ( q -v VERBOSITY=verbose -c "SET lock_timeout = '3s'" -c "SELECT tenancy.remove_migration('$1')" >"$2" 2>&1 ) &
  remover=$!
  sleep 0.5
}
# while_removing VERSION HELD_SQL ORG WHAT: adds migration VERSION, holds HELD_SQL open for 6 s,
# starts removing it (output in $dir/remove_VERSION.out), then signs ORG up with a 2 s
# statement_timeout: it must be built from the snapshot, not queue behind the removal.
while_removing() {
  q -c "SELECT tenancy.add_migration('$1', 'gone_$1', 'CREATE TABLE gone_$1 (id int)')" >/dev/null
  hold 6 "$2"
  removing "$1" "$dir/remove_$1.out"
  q -c "SET statement_timeout = '2s'" -c "INSERT INTO organizations VALUES ($3)" >/dev/null
  check "a sign-up does not queue behind remove_migration waiting for $4" "$(known)" "$(from_snapshot "org_$3")"
}
# removal_gave_up VERSION: that removal ended at its lock_timeout with 55P03; the holder ends.
removal_gave_up() {
  wait "$remover"
  check "…which gives up at its lock_timeout (55P03)" "55P03" "$(grep -o 55P03 "$dir/remove_$1.out" | head -1)"
  wait "$held"
}
# raised_not_replayed NAME CODE OUT: OUT holds SQLSTATE CODE and no replay after it.
raised_not_replayed() {
  check "$1 ($2)" "$2" "$(grep -o "$2" "$3" | head -1)"
  check "…with no replay after it" "0" "$(grep -c 'replaying' "$3")"
}

q -c "CREATE EXTENSION pg_tenancy" \
  -c "CREATE TABLE plans (id bigint PRIMARY KEY)" -c "INSERT INTO plans VALUES (1)" \
  -c "CREATE TABLE organizations (id bigint PRIMARY KEY)" \
  -c "CREATE ROLE tenant_owner" -c "GRANT SELECT, REFERENCES ON plans TO tenant_owner" \
  -c "SELECT tenancy.share_table('plans')" \
  -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], owner => 'tenant_owner')" >/dev/null
check "the shipped set is proven" "snapshot" "$(q -c "SELECT path FROM tenancy.build_snapshot('tenant_owner')")"
q -c "INSERT INTO organizations SELECT generate_series(1, 5)"
check "managed rows' tenants are built from it, every migration in the ledger" "$(known)" "$(from_snapshot org_1)"
q -c "SET tenancy.use_snapshot = off" -c "INSERT INTO organizations VALUES (6)"
check "with tenancy.use_snapshot off the tenant replays" "0" "$(from_snapshot org_6)"
check "snapshot and replayed tenants are equal" "0" "$(q -c "SELECT count(*) FROM tenancy.compare_schemas('org_1', 'org_6')")"
q -c "CALL tenancy.migrate_all()" >/dev/null
check "migrate_all finds nothing to do" "0" "$(q -c "SELECT total FROM tenancy.fleet_runs ORDER BY run_id DESC LIMIT 1")"
check "status: every tenant up to date" "6" "$(q -c "SELECT count(*) FROM tenancy.status WHERE state = 'up_to_date'")"
check "verify(deep) finds nothing" "0" "$(q -c "SELECT count(*) FROM tenancy.verify(deep => true)")"

q -c "SELECT tenancy.add_migration('9001', 'notes', 'CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)')" >/dev/null
check "add_migration rebuilt the snapshot (proven, fresh, covering the new migration)" "snapshot t $(known)" \
  "$(q -F' ' -c "SELECT path, fresh, migrations FROM tenancy.snapshot_status")"
q -c "CALL tenancy.migrate_all()" >/dev/null
check "migrate_all applies the new migration to every tenant" "6" "$(q -c "SELECT count(*) FROM tenancy.ledger WHERE version = '9001'")"
check "…and only it" "6" "$(q -c "SELECT total FROM tenancy.fleet_runs ORDER BY run_id DESC LIMIT 1")"

# A rebuild holds its transaction open (pg_sleep) while eight sessions sign up: they use the
# committed snapshot and do not wait for it.
# Each sign-up has a 4 s statement_timeout, the rebuild stays open 6 s: one that waited for it
# would be cancelled (no wall-clock measurement).
hold 6 "SELECT path FROM tenancy.build_snapshot('tenant_owner')"
pids=()
for i in $(seq 101 108); do
  q -c "SET statement_timeout = '4s'" -c "INSERT INTO organizations VALUES ($i)" >/dev/null & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
check "sign-ups during a rebuild did not wait for it" "8" \
  "$(q -c "SELECT count(*) FROM tenancy.tenants WHERE schema_name LIKE 'org_10_'")"
wait "$held"
check "eight tenants, all from the snapshot" "8" \
  "$(q -c "SELECT count(DISTINCT schema_name) FROM tenancy.ledger WHERE from_snapshot AND schema_name LIKE 'org_10_'")"
check "each equal to a replayed tenant" "0" \
  "$(q -c "SELECT count(*) FROM generate_series(101, 108) i, tenancy.compare_schemas('org_' || i, 'org_6')")"
q -c "INSERT INTO org_101.subscription (plan_id) VALUES (1)" >/dev/null
q -c "DELETE FROM plans WHERE id = 1" >/dev/null 2>&1
check "deleting a plan a snapshot tenant references is refused" "1" "$(q -c "SELECT count(*) FROM plans WHERE id = 1")"

# Locks anyone could take do not stall sign-ups or builds (the hostile review's finding: fixed
# advisory keys): an unprivileged role holds both former keys while a tenant signs up and a
# migration is added (which rebuilds the snapshot); each must finish within its statement_timeout.
q -c "CREATE ROLE nobody_special LOGIN" >/dev/null
( PGUSER=nobody_special q -c "SELECT pg_advisory_lock(1952804449, 0), pg_advisory_lock(1952804449, 1)" -c "SELECT pg_sleep(8)" >/dev/null ) &
holder=$!
sleep 0.5
check "an unprivileged role cannot lock tenancy.snapshot" "42501" \
  "$(PGUSER=nobody_special q -v VERBOSITY=verbose -c "BEGIN" -c "LOCK tenancy.snapshot IN ROW SHARE MODE" 2>&1 | grep -o 42501 | head -1)"
q -c "SET statement_timeout = '5s'" -c "INSERT INTO organizations VALUES (201)" >/dev/null
check "a sign-up does not wait for a role holding the old advisory keys" "$(known)" "$(from_snapshot org_201)"
q -c "SET statement_timeout = '5s'" -c "SELECT tenancy.add_migration('9003', 'tags', 'CREATE TABLE tags (id int PRIMARY KEY)')" >/dev/null
check "nor does add_migration's rebuild" "snapshot t $(known)" "$(q -F' ' -c "SELECT path, fresh, migrations FROM tenancy.snapshot_status")"
wait "$holder"

# The same for every lock pg_tenancy takes (they were advisory locks too: a tenant's, a name's, a
# registered migration's): an unprivileged role holds all the old keys of org_1, org_301 and
# version 9003; migrate_tenant, a replayed sign-up applying 9003 and remove_migration finish.
org1=$(q -c "SELECT 'org_1'::regnamespace::oid::int")
( PGUSER=nobody_special q -c "SELECT pg_advisory_lock(1952804449, $org1), pg_advisory_lock(1952804450, hashtext('org_301')), pg_advisory_lock(1952804461, hashtext('9003'))" -c "SELECT pg_sleep(8)" >/dev/null ) &
holder=$!
sleep 0.5
q -c "SELECT tenancy.add_migration('9004', 'more', 'CREATE TABLE more_tags (id int PRIMARY KEY)')" >/dev/null
check "migrate_tenant does not wait for a role holding its old tenant key and 9003's" "9003,9004" \
  "$(q -c "SET statement_timeout = '5s'" -c "SELECT string_agg(version, ',' ORDER BY version) FROM tenancy.migrate_tenant('org_1')")"
q -c "SET statement_timeout = '5s'" -c "SET tenancy.use_snapshot = off" -c "INSERT INTO organizations VALUES (301)" >/dev/null
check "nor does a replayed sign-up (its name's and 9003's old keys held)" "$(known)" \
  "$(q -c "SELECT count(*) FROM tenancy.ledger WHERE schema_name = 'org_301'")"
wait "$holder"

# remove_migration does not hold snapshot sign-ups back while it waits: an open sign-up holds ROW
# SHARE on tenancy.snapshot; remove_migration (EXCLUSIVE) waits for it in bounded steps and gives
# up at its lock_timeout with 55P03, and a sign-up that starts meanwhile does not queue behind it.
while_removing 9005 "INSERT INTO organizations VALUES (401)" 402 "an open sign-up"
q -c "SET statement_timeout = '2s'" -c "SET tenancy.use_snapshot = off" -c "INSERT INTO organizations VALUES (403)" >/dev/null
check "nor does a replayed sign-up applying the migration (its version's lock)" "$(known)" \
  "$(q -c "SELECT count(*) FROM tenancy.ledger WHERE schema_name = 'org_403'")"
removal_gave_up 9005

# At REPEATABLE READ a sign-up reads the set with its transaction's snapshot: one that started
# before a remove_migration committed must not record the removed migration from the snapshot
# (the hostile review's F1); it replays, and the replay's row lock raises a serialization failure.
q -c "SELECT tenancy.add_migration('9006', 'gone2', 'CREATE TABLE gone2 (id int)')" >/dev/null
( sleep 0.5; q -c "BEGIN" -c "SELECT tenancy.remove_migration('9006')" -c "SELECT pg_sleep(2.5)" -c "COMMIT" >/dev/null ) &
remover=$!
q -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT count(*) FROM tenancy.migrations" -c "SELECT pg_sleep(1.5)" \
  -c "INSERT INTO organizations VALUES (501)" -c "COMMIT" >"$dir/rr.out" 2>&1
wait "$remover"
check "a REPEATABLE READ sign-up racing remove_migration never records the removed migration" "0" \
  "$(q -c "SELECT count(*) FROM tenancy.ledger WHERE version = '9006'")"
check "…it fails with a serialization failure instead" "1" "$(grep -c 'could not serialize' "$dir/rr.out")"

# A cancel or statement_timeout while the snapshot is applied is raised, never turned into a replay
# (the hostile review's F5): a public table a migration's foreign key references is locked, the
# sign-up's statement_timeout fires while the snapshot's CREATE TABLE waits for it.
q -c "CREATE TABLE regions (id int PRIMARY KEY)" -c "GRANT REFERENCES ON regions TO tenant_owner" \
  -c "SELECT tenancy.add_migration('9007', 'sites', 'CREATE TABLE sites (id int PRIMARY KEY, region int REFERENCES public.regions (id))')" >/dev/null
check "the snapshot covers it" "snapshot t" "$(q -F' ' -c "SELECT path, fresh FROM tenancy.snapshot_status")"
hold 4 "LOCK regions IN ACCESS EXCLUSIVE MODE"
q -v VERBOSITY=verbose -c "SET statement_timeout = '1s'" -c "INSERT INTO organizations VALUES (502)" >"$dir/cancel.out" 2>&1
raised_not_replayed "a statement_timeout during a snapshot sign-up cancels it" 57014 "$dir/cancel.out"
wait "$held"
# …and so is a lock timeout (the second review's F2): replaying would wait again, and the WARNING
# would blame a snapshot that is fine.
hold 3 "LOCK regions IN ROW EXCLUSIVE MODE"
q -v VERBOSITY=verbose -c "SET lock_timeout = '1s'" -c "INSERT INTO organizations VALUES (503)" >"$dir/locktimeout.out" 2>&1
raised_not_replayed "a lock timeout during a snapshot sign-up is raised" 55P03 "$dir/locktimeout.out"
wait "$held"

# remove_migration also waits for its row (runs at REPEATABLE READ hold it FOR KEY SHARE) inside its
# bounded attempts, never while holding its other locks (the second review's F1): a sign-up from
# the snapshot does not queue behind it.
# (the row lock of a run applying it, held here directly: a sign-up at REPEATABLE READ would also
# hold 9007's lock on public.regions, which every sign-up needs)
while_removing 9008 "SELECT FROM tenancy.registered_migrations WHERE version = '9008' FOR KEY SHARE" 602 "the migration's row"
removal_gave_up 9008

# remove_migration refuses REPEATABLE READ (the third review's F1): it read the ledger with the
# transaction's snapshot and removed a migration a tenant applied after that snapshot was taken.
q -c "SELECT tenancy.add_migration('9009', 'late', 'CREATE TABLE late (id int)')" >/dev/null
check "remove_migration at REPEATABLE READ is refused (0A000)" "0A000" \
  "$(q -v VERBOSITY=verbose -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT tenancy.remove_migration('9009')" 2>&1 | grep -o 0A000 | head -1)"

# A build never fails because a shared table is busy (the third review's F2): with a lock_timeout,
# add_migration's rebuild waits for a session writing to public.regions (9007's foreign key),
# stores why, and the migration is added; new tenants replay until the snapshot is built again.
hold 4 "INSERT INTO regions VALUES (7)"
check "add_migration succeeds while a shared table is being written" "9010_more" \
  "$(q -c "SET lock_timeout = '1s'" -c "SELECT tenancy.add_migration('9010', 'more', 'CREATE TABLE more (id int)')")"
check "…the snapshot says why new tenants replay" "replay" "$(q -c "SELECT path FROM tenancy.snapshot_status")"
wait "$held"
check "…until it is built again" "snapshot" "$(q -c "SELECT path FROM tenancy.build_snapshot('tenant_owner')")"
finish snapshot
