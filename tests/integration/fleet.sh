#!/usr/bin/env bash
# Fleet migration with real processes: 1 000 tenants under default settings, failures, lock
# timeouts, stop_on_error, background workers, live progress seen by a second client, a killed
# backend and an immediate shutdown mid-run, a background worker terminated mid-tenant, and a
# session named like the workers, and the WAL a step writes per tenant beyond the DDL. Prints "N
# passed, M failed" and fails on any failure.
# Timings are printed for the notes, never asserted (except that a terminated worker stops
# within a second).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${FLEET_PORT:-28819}
N=${FLEET_TENANTS:-1000}
dir=$(cluster_start fleet "$PORT" "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all") || exit 1
trap 'cluster_stop fleet >/dev/null 2>&1 || true' EXIT
export PGHOST="$dir/sock" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres
now() { date +%s.%N; }
secs() { echo "$1 $2" | awk '{printf "%.2f", $2 - $1}'; }

# Every tenant is wholly at the old or the new version: ledger row for VERSION <=> table TABLE.
inconsistent() {
  q -c "SELECT count(*) FROM tenancy.tenants t
        WHERE EXISTS (SELECT FROM tenancy.ledger l WHERE l.schema_name = t.schema_name AND l.version = '$1')
              <> (to_regclass(format('%I.%I', t.schema_name, '$2')) IS NOT NULL)"
}
at_version() { q -c "SELECT count(*) FROM tenancy.ledger WHERE version = '$1'"; }

q -c "CREATE EXTENSION pg_tenancy" -c "CREATE EXTENSION pg_stat_statements" \
  -c "CREATE TABLE plans (id bigint PRIMARY KEY)" -c "CREATE TABLE organizations (id bigint PRIMARY KEY)" \
  -c "CREATE ROLE tenant_owner" -c "GRANT SELECT, REFERENCES ON plans TO tenant_owner" \
  -c "SET client_min_messages = warning" \
  -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], owner => 'tenant_owner')" >/dev/null

# --- scale: N tenants in batches of 200 rows (each batch one transaction, under the lock ceiling)
t0=$(now)
for ((i = 1; i <= N; i += 200)); do
  q -c "INSERT INTO organizations SELECT g FROM generate_series($i, least($((i + 199)), $N)) g"
done
echo "timing: provisioned $N tenants through the trigger in $(secs "$t0" "$(now)")s"
check "$N tenants provisioned" "$N" "$(q -c "SELECT count(*) FROM tenancy.all_tenants()")"
q -c "SHOW max_locks_per_transaction" | sed 's/^/setting: max_locks_per_transaction = /'

q -c "SELECT tenancy.add_migration('0006', 'add_notes', 'CREATE TABLE notes (id int PRIMARY KEY, body text); CREATE INDEX notes_body ON notes (body)')" >/dev/null
t0=$(now)
q -c "CALL tenancy.migrate_all()" 2>/tmp/fleet-notices.$$
echo "timing: migrate_all jobs 1 over $N tenants: $(secs "$t0" "$(now)")s"
check "jobs 1 migrated every tenant" "$N" "$(at_version 0006)"
check "progress NOTICEs are not one per tenant" "yes" "$( [ "$(grep -c 'NOTICE:  migrate_all: [0-9]*/' /tmp/fleet-notices.$$)" -le 20 ] && echo yes || echo no)"
check "summary NOTICE" "1" "$(grep -c "migrate_all: $N migrated, 0 already up to date, 0 failed" /tmp/fleet-notices.$$)"
rm -f /tmp/fleet-notices.$$

q -c "SELECT tenancy.add_migration('0007', 'add_tags', 'CREATE TABLE tags (id int PRIMARY KEY, label text)')" >/dev/null
t0=$(now)
q -c "CALL tenancy.migrate_all(jobs => 2)" 2>/dev/null
echo "timing: migrate_all jobs 2 over $N tenants: $(secs "$t0" "$(now)")s"
check "jobs 2 migrated every tenant" "$N" "$(at_version 0007)"
check "jobs 2 used a background worker" "1" "$(q -c "SELECT workers FROM tenancy.progress LIMIT 1")"

# --- a run with nothing pending: one planning query, whatever the number of tenants
q -c "SELECT pg_stat_statements_reset()" >/dev/null
t0=$(now)
q -c "CALL tenancy.migrate_all()" 2>/dev/null
echo "timing: no-op migrate_all over $N tenants: $(secs "$t0" "$(now)")s"
check "no-op run migrates nobody" "0" "$(q -c "SELECT total FROM tenancy.progress LIMIT 1")"
check "no-op run never calls migrate_tenant" "0" \
  "$(q -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE '%migrate_tenant%' AND query NOT ILIKE '%pg_stat_statements%'")"
check "no-op run plans with one query over the ledger" "1" \
  "$(q -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE '%FROM tenancy.ledger AS l, known%'")"
check "no-op run executes a constant number of statements" "yes" \
  "$(q -c "SELECT CASE WHEN sum(calls) < 40 THEN 'yes' ELSE 'no: ' || sum(calls) END FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat_statements%'")"

# --- a failing tenant is recorded and the run goes on; a re-run retries only it
q -c "CREATE TABLE org_5.audit (id int)" -c "SELECT tenancy.add_migration('0008', 'audit', 'CREATE TABLE audit (id int, at timestamptz)')" >/dev/null
q -c "CALL tenancy.migrate_all(jobs => 2)" 2>/tmp/fleet-warn.$$
check "failing tenant does not stop the others" "$((N - 1))" "$(at_version 0008)"
check "failure is in tenancy.status" "failed" "$(q -c "SELECT state FROM tenancy.status WHERE schema_name = 'org_5'")"
check "failure WARNING names the tenant" "1" "$(grep -c 'org_5: 42P07' /tmp/fleet-warn.$$)"
rm -f /tmp/fleet-warn.$$
q -c "DROP TABLE org_5.audit"
q -c "CALL tenancy.migrate_all()" 2>/dev/null
check "re-run retries only the failed tenant" "1" "$(q -c "SELECT total FROM tenancy.progress LIMIT 1")"
check "everyone up to date" "$N" "$(q -c "SELECT count(*) FROM tenancy.status WHERE state = 'up_to_date'")"

# --- lock_timeout applies per tenant: a tenant whose table is locked fails, the others proceed
q -c "SELECT tenancy.add_migration('0009', 'users_flag', 'ALTER TABLE users ADD COLUMN flagged boolean NOT NULL DEFAULT false')" >/dev/null
"$PGBIN/psql" -X -q -c "BEGIN; LOCK TABLE org_7.users; SELECT pg_sleep(20); COMMIT;" >/dev/null 2>&1 &
locker=$!
sleep 1
q -c "CALL tenancy.migrate_all(lock_timeout => '200ms')" 2>/dev/null
check "locked tenant failed with lock_not_available" "55P03" "$(q -c "SELECT left(last_error, 5) FROM tenancy.status WHERE schema_name = 'org_7'")"
check "the others migrated" "$((N - 1))" "$(at_version 0009)"
kill $locker 2>/dev/null; wait $locker 2>/dev/null
q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%LOCK TABLE org_7%' AND pid <> pg_backend_pid()" >/dev/null
q -c "CALL tenancy.migrate_all()" 2>/dev/null
check "retry after the lock is gone" "$N" "$(at_version 0009)"

# --- stop_on_error stops at the first failure, keeps what was done, and raises
q -c "CREATE TABLE org_500.stop_here (id int)" \
  -c "SELECT tenancy.add_migration('0010', 'stop_here', 'CREATE TABLE stop_here (id int)')" >/dev/null
out=$(q -c "CALL tenancy.migrate_all(stop_on_error => true)" 2>&1)
check "stop_on_error raises" "1" "$(grep -c 'stopped after a tenant failed' <<<"$out")"
check "stop_on_error left the rest pending" "yes" \
  "$(q -c "SELECT CASE WHEN count(*) BETWEEN 1 AND $N - 2 THEN 'yes' ELSE count(*)::text END FROM tenancy.ledger WHERE version = '0010'")"
q -c "DROP TABLE org_500.stop_here"
q -c "CALL tenancy.migrate_all(jobs => 2)" 2>/dev/null
check "re-run completes after stop_on_error" "$N" "$(at_version 0010)"

# --- more jobs than worker slots: falls back to this session, same end state
q -c "SELECT tenancy.add_migration('0011', 'more', 'CREATE TABLE more (id int)')" >/dev/null
out=$(q -c "CALL tenancy.migrate_all(jobs => 64)" 2>&1)
check "no free worker slots is said" "1" "$(grep -c 'background workers started (no free worker slots' <<<"$out")"
check "jobs 64 still migrated everyone" "$N" "$(at_version 0011)"

# --- live progress seen by a second client
q -c "SELECT tenancy.add_migration('0012', 'slow', 'CREATE TABLE slow (id int); SELECT pg_sleep(0.01)')" >/dev/null
"$PGBIN/psql" -X -q -c "CALL tenancy.migrate_all()" >/dev/null 2>&1 &
runner=$!
seen=""
for _ in $(seq 1 100); do
  sleep 0.2
  m=$(q -c "SELECT migrated FROM tenancy.progress WHERE state = 'running' LIMIT 1")
  [ -n "$m" ] && [ "$m" -gt 0 ] && [ "$m" -lt "$N" ] && seen="$seen $m"
  [ "$(wc -w <<<"$seen")" -ge 3 ] && break
done
wait $runner
check "another session sees progress advance" "yes" \
  "$(awk '{print ($NF > $1) ? "yes" : "no: " $0}' <<<"$seen")"
check "run finished" "$N" "$(at_version 0012)"

# A fault in the middle of a run: FAULT (a command) strikes once more than 50 tenants have the new
# slow migration; afterwards every tenant is wholly at its old or new version, verify() is clean,
# and a re-run completes.
fault_mid_run() { # fault_mid_run WHAT VERSION TABLE JOBS FAULT...
  local what=$1 version=$2 table=$3 jobs=$4 runner m partial
  shift 4
  q -c "SELECT tenancy.add_migration('$version', '$table', 'CREATE TABLE $table (id int); SELECT pg_sleep(0.01)')" >/dev/null
  "$PGBIN/psql" -X -q -c "CALL tenancy.migrate_all(jobs => $jobs)" >/dev/null 2>&1 &
  runner=$!
  for _ in $(seq 1 100); do
    sleep 0.2
    m=$(q -c "SELECT count(*) FROM tenancy.ledger WHERE version = '$version'")
    [ "$m" -gt 50 ] && break
  done
  "$@"
  wait $runner
  partial=$(at_version "$version")
  check "$what mid-run (some but not all migrated)" "yes" "$( [ "$partial" -gt 0 ] && [ "$partial" -lt "$N" ] && echo yes || echo "no: $partial")"
  check "after the $what every ledger matches its catalog" "0" "$(inconsistent "$version" "$table")"
  check "after the $what verify() is clean" "0" "$(q -c "SELECT count(*) FROM tenancy.verify()")"
}
kill_coordinator() {
  q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL tenancy.migrate_all%' AND pid <> pg_backend_pid()" >/dev/null
}
crash_server() {
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
  cluster_restart fleet
}

# --- a killed backend (jobs 1)
fault_mid_run kill 0013 killed 1 kill_coordinator
check "progress shows the run as interrupted" "interrupted" "$(q -c "SELECT state FROM tenancy.progress WHERE run_id = (SELECT max(run_id) FROM tenancy.fleet_runs)")"
q -c "CALL tenancy.migrate_all()" 2>/dev/null
check "re-run after the kill completes" "$N" "$(at_version 0013)"

# --- an immediate shutdown (crash) with jobs 2
fault_mid_run crash 0014 crashed 2 crash_server
# The queue is UNLOGGED: crash recovery empties it. What a tenant's state depends on is the ledger
# (WAL-logged, committed with the tenant's DDL), so the crashed run only shows as interrupted, with
# its counters as last counted, and the next CALL plans its queue from the ledger again.
crashed_run="(SELECT max(run_id) FROM tenancy.fleet_runs)"
check "after the crash the crashed run's queue is empty" "0" "$(q -c "SELECT count(*) FROM tenancy.fleet_items WHERE run_id = $crashed_run")"
check "after the crash progress shows the run as interrupted" "interrupted" "$(q -c "SELECT state FROM tenancy.progress WHERE run_id = $crashed_run")"
check "after the crash the counters do not run ahead of the ledger" "yes" \
  "$(q -c "SELECT CASE WHEN migrated <= (SELECT count(*) FROM tenancy.ledger WHERE version = '0014') THEN 'yes' ELSE 'no: ' || migrated END FROM tenancy.fleet_runs WHERE run_id = $crashed_run")"
q -c "CALL tenancy.migrate_all(jobs => 2)" 2>/dev/null
check "re-run after the crash completes" "$N" "$(at_version 0014)"
check "nothing left failed or pending" "$N" "$(q -c "SELECT count(*) FROM tenancy.status WHERE state = 'up_to_date'")"

# --- a terminated worker stops at once, in the middle of its tenant; its tenant rolls back and
# the same run migrates it. Migration 0015 makes every job wait, inside its tenant's transaction,
# on an advisory lock a session of this test holds.
waitfor() { # waitfor QUERY: polls (every 0.1 s, at most 30 s) until QUERY prints t
  for _ in $(seq 1 300); do [ "$(q -c "$1")" = t ] && return 0; sleep 0.1; done
  echo "gave up waiting for: $1"; return 1
}
hold_lock() { # a session holding advisory lock 4242 until release_lock
  PGAPPNAME=fleet-test-holder "$PGBIN/psql" -X -q -c "SELECT pg_advisory_lock(4242), pg_sleep(120)" >/dev/null 2>&1 &
  holder=$!
  waitfor "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted)"
}
release_lock() {
  q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'fleet-test-holder'" >/dev/null
  wait "$holder" 2>/dev/null
}
start_blocked_run() { # start_blocked_run TENANTS: a jobs-2 run whose coordinator and worker both wait on the lock
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -c "CALL tenancy.migrate_all(jobs => 2, tenants => ARRAY[$1], lock_timeout => '60s')" >/dev/null 2>&1 &
  runner=$!
  waitfor "SELECT count(*) = 2 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted"
  rid=$(q -c "SELECT max(run_id) FROM tenancy.fleet_runs")
}
claimed() { # the run's queued tenants that a job holds (FOR UPDATE SKIP LOCKED skips those)
  q -c "WITH free AS (SELECT schema_name FROM tenancy.fleet_items WHERE run_id = $rid AND state = 'queued' FOR UPDATE SKIP LOCKED)
        SELECT string_agg(schema_name, ' ' ORDER BY schema_name) FROM tenancy.fleet_items
        WHERE run_id = $rid AND state = 'queued' AND schema_name NOT IN (SELECT schema_name FROM free)"
}
q -c "SELECT tenancy.add_migration('0015', 'held', 'CREATE TABLE held (id int); SELECT pg_advisory_xact_lock_shared(4242)')" >/dev/null
hold_lock
start_blocked_run "'org_1', 'org_2', 'org_3', 'org_4'"
worker=$(q -c "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l USING (pid)
               WHERE a.backend_type = 'pg_tenancy fleet worker' AND l.locktype = 'advisory' AND l.objid = 4242 AND NOT l.granted")
before=$(claimed)
check "coordinator and worker each hold a tenant, mid-migration" "2" "$(wc -w <<<"$before")"
check "the worker is a job of the run, by pid and backend_start" "1" \
  "$(q -c "SELECT count(*) FROM tenancy.fleet_jobs j JOIN pg_stat_activity a USING (pid, backend_start) WHERE j.run_id = $rid AND j.worker AND a.pid = '$worker'")"
t0=$(now)
q -c "SELECT pg_terminate_backend($worker)" >/dev/null
gone=""
for _ in $(seq 1 100); do
  [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE pid = $worker")" = 0 ] && { gone=$(secs "$t0" "$(now)"); break; }
  sleep 0.05
done
echo "timing: the terminated worker left pg_stat_activity after ${gone:-more than 5}s"
check "a terminated worker stops within a second" "yes" "$(awk -v g="$gone" 'BEGIN {print (g != "" && g <= 1.0) ? "yes" : "no: " g}')"
after=$(claimed)
wt=$(comm -23 <(tr ' ' '\n' <<<"$before" | sort) <(tr ' ' '\n' <<<"$after" | sort))
check "the worker's tenant is unlocked and still queued (its transaction rolled back)" "1 queued" \
  "$(wc -w <<<"$wt") $(q -c "SELECT state FROM tenancy.fleet_items WHERE run_id = $rid AND schema_name = '$wt'")"
check "nothing of the worker's tenant was committed" "0 f" \
  "$(q -c "SELECT count(*) FROM tenancy.ledger WHERE schema_name = '$wt' AND version = '0015'") $(q -c "SELECT to_regclass(format('%I.held', '$wt')) IS NOT NULL")"
check "the run is still running: its coordinator lives" "running" "$(q -c "SELECT state FROM tenancy.progress WHERE run_id = $rid")"
release_lock # the coordinator finishes its tenant, then migrates the others, the worker's included
wait $runner
check "the run ends without an error" "0" "$?"
check "the run migrated all four tenants, none failed" "finished 4 0 1" \
  "$(q -c "SELECT state || ' ' || migrated || ' ' || failed || ' ' || workers FROM tenancy.progress WHERE run_id = $rid")"
check "the worker's tenant was migrated in the same run" "done" "$(q -c "SELECT state FROM tenancy.fleet_items WHERE run_id = $rid AND schema_name = '$wt'")"
check "after the terminated worker every ledger matches its catalog" "0" "$(inconsistent 0015 held)"
check "the four tenants have the migration, once each" "4 4" \
  "$(at_version 0015) $(q -c "SELECT count(DISTINCT schema_name) FROM tenancy.ledger WHERE version = '0015'")"

# --- a session calling itself like the workers does not keep a dead run 'running' (the workers
# used to be found by application_name). The run's coordinator and worker are terminated while a
# session named 'pg_tenancy fleet run <id>' stays connected.
hold_lock
start_blocked_run "'org_5', 'org_6', 'org_7', 'org_8'"
PGAPPNAME="pg_tenancy fleet run $rid" "$PGBIN/psql" -X -q -c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
imposter=$!
waitfor "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'pg_tenancy fleet run $rid' AND backend_type = 'client backend' AND state = 'active')"
check "the run is running while its jobs live" "running" "$(q -c "SELECT state FROM tenancy.progress WHERE run_id = $rid")"
q -c "SELECT pg_terminate_backend(pid) FROM tenancy.fleet_jobs WHERE run_id = $rid" >/dev/null
wait $runner
waitfor "SELECT NOT EXISTS (SELECT FROM pg_stat_activity a JOIN tenancy.fleet_jobs j USING (pid) WHERE j.run_id = $rid)"
check "a dead run is 'interrupted' although a session has the workers' application_name" "interrupted" \
  "$(q -c "SELECT state FROM tenancy.progress WHERE run_id = $rid")"
# As after PID reuse: a recorded worker whose PID the named session has now, with another start.
q -c "INSERT INTO tenancy.fleet_jobs SELECT $rid, pid, backend_start - interval '1 second', true
      FROM pg_stat_activity WHERE application_name = 'pg_tenancy fleet run $rid' AND backend_type = 'client backend'" >/dev/null
check "a reused PID does not revive it" "interrupted" "$(q -c "SELECT state FROM tenancy.progress WHERE run_id = $rid")"
# After stop_on_error stopped a run, only live workers keep its coordinator waiting.
q -c "UPDATE tenancy.fleet_runs SET state = 'stopping' WHERE run_id = $rid" >/dev/null
check "a coordinator's _fleet_wait does not wait on that session" "f" "$(q -c "SELECT tenancy._fleet_wait($rid)")"
q -c "INSERT INTO tenancy.fleet_jobs SELECT $rid, pid, backend_start, true
      FROM pg_stat_activity WHERE application_name = 'pg_tenancy fleet run $rid' AND backend_type = 'client backend'" >/dev/null
check "control: the same session recorded by its pid and backend_start is waited on" "stopping t" \
  "$(q -c "SELECT state FROM tenancy.progress WHERE run_id = $rid") $(q -c "SELECT tenancy._fleet_wait($rid)")"
kill $imposter 2>/dev/null
q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_tenancy fleet run $rid' AND backend_type = 'client backend'" >/dev/null
wait $imposter 2>/dev/null
release_lock
check "the dead run's tenants were not half-migrated" "0" "$(inconsistent 0015 held)"
q -c "CALL tenancy.migrate_all(jobs => 2)" 2>/dev/null
check "a re-run completes after the terminations" "$N" "$(at_version 0015)"
check "in the end nothing is failed or pending" "$N" "$(q -c "SELECT count(*) FROM tenancy.status WHERE state = 'up_to_date'")"

# --- what a tenant costs in WAL (issue 15): a jobs-1 step writes its migration's DDL, the ledger
# row with its index entry and the foreign key's lock on the tenant's row, and nothing else (no
# queue or counter write per tenant, no multixact). Compared with the same ALTER sent raw just
# before (one autocommit statement per tenant, after a warm-up round), counted with pg_waldump.
lsn() { q -c "SELECT pg_current_wal_insert_lsn()"; }
wal_between() { as_pg "$PGBIN/pg_waldump" -p "$dir/data/pg_wal" -s "$1" -e "$2" --stats=record 2>/dev/null; }
total_records() { awk '$1 == "Total" {print $2}'; }
raw_round() { q -c "SELECT format('ALTER TABLE %I.users ADD COLUMN %I text;', schema_name, '$1') FROM tenancy.tenants" | q >/dev/null; }
raw_round raw_warm
a=$(lsn); raw_round raw_lean; b=$(lsn)
raw_records=$(wal_between "$a" "$b" | total_records)
q -c "SELECT tenancy.add_migration('0016', 'lean', 'ALTER TABLE users ADD COLUMN lean text')" >/dev/null
a=$(lsn); q -c "CALL tenancy.migrate_all()" 2>/dev/null; b=$(lsn)
wal_between "$a" "$b" >/tmp/fleet-wal.$$
fleet_records=$(total_records </tmp/fleet-wal.$$)
echo "wal: over $N tenants, the raw ALTER wrote $raw_records records, migrate_all $fleet_records"
check "migrate_all migrated everyone" "$N" "$(at_version 0016)"
check "a step writes at most 3.5 WAL records per tenant beyond the raw ALTER's" "yes" \
  "$(awk -v f="$fleet_records" -v r="$raw_records" -v n="$N" 'BEGIN {d = (f - r) / n; print (r > 0 && d <= 3.5) ? "yes" : "no: " d}')"
check "no multixact in a jobs-1 run" "0" "$(awk '$1 ~ /^MultiXact/ {s += $2} END {print s + 0}' /tmp/fleet-wal.$$)"
check "the queue is UNLOGGED" "u" "$(q -c "SELECT relpersistence FROM pg_class WHERE oid = 'tenancy.fleet_items'::regclass")"
rm -f /tmp/fleet-wal.$$

finish fleet
