#!/usr/bin/env bash
# Locks and deadlocks with real clients (issue 13, case 7; docs/concurrency.md). Each client is a
# psql process of its own, as the application role `app`; all start together behind an advisory
# lock. Prints "N passed, M failed".
#
# 1. Sign-ups that write a shared table: CLIENTS clients sign up ROUNDS tenants each, in the two
#    orderings docs/concurrency.md gives (the managed row first; or LOCK TABLE plans IN SHARE ROW
#    EXCLUSIVE MODE first): no error at all, every tenant provisioned. Then the ordering the issue
#    reported (INSERT INTO plans, then the managed row), which deadlocks by design: every 40P01
#    there names the ordering to use in its hint, and no sign-up leaves half a tenant. Ordinary
#    writes to plans run alongside; how long they waited is printed, not asserted.
# 2. Dropping tenants while CLIENTS application clients use them (reading and writing their
#    tables, in transactions that last a while): drop_tenant with a short lock_timeout and the
#    managed table's 'drop' policy with a short tenancy.drop_lock_timeout. No 40P01 anywhere; a
#    drop either succeeds or fails 55P03 naming the tenant; afterwards every tenant drops.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${CONCURRENCY_PORT:-28831}
CLIENTS=${CONCURRENCY_CLIENTS:-24}
ROUNDS=${CONCURRENCY_ROUNDS:-3}
dir=$(cluster_start concurrency "$PORT") || exit 1
trap 'cluster_stop concurrency >/dev/null 2>&1 || true' EXIT
export PGHOST="$dir/sock" PGPORT="$PORT" PGDATABASE=app PGOPTIONS="-c client_min_messages=warning"
unset PGUSER
work=$(mktemp -d)
trap 'cluster_stop concurrency >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
now() { date +%s.%N; }
secs() { echo "$1 $2" | awk '{printf "%.2f", $2 - $1}'; }
su_q() { q -U postgres "$@"; }

q -U postgres -d postgres -c "CREATE DATABASE app" -c "CREATE ROLE app LOGIN" >/dev/null || exit 1
su_q -c "CREATE EXTENSION pg_tenancy" \
  -c "CREATE TABLE public.plans (id bigint PRIMARY KEY, name text NOT NULL)" \
  -c "INSERT INTO public.plans VALUES (1, 'free'), (2, 'pro')" \
  -c "CREATE TABLE public.organizations (id bigint PRIMARY KEY, name text NOT NULL)" \
  -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'drop')" \
  -c "GRANT CREATE ON DATABASE app TO app" \
  -c "GRANT SELECT, INSERT, UPDATE, REFERENCES ON public.plans TO app" \
  -c "GRANT SELECT, INSERT, UPDATE, DELETE ON public.organizations TO app" \
  -c "SELECT tenancy.grant_provision('app')" >/dev/null || exit 1

# start_together: holds an advisory lock that every client's first statement waits for, until
# all clients are connected (they each take it shared), then lets them go at once.
BARRIER="SELECT pg_advisory_lock_shared(4242); SELECT pg_advisory_unlock_shared(4242);"
hold_barrier() {
  ( q -U postgres -c "SELECT pg_advisory_lock(4242)" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 & echo $! >"$work/barrier.pid"; wait ) &
  until [ "$(su_q -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted AND mode = 'ExclusiveLock'")" = 1 ]; do sleep 0.05; done
}
release_barrier() { # release_barrier N: once N clients wait, ends the holding session
  local n=$1
  until [ "$(su_q -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted")" -ge "$n" ]; do sleep 0.05; done
  su_q -c "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted AND mode = 'ExclusiveLock'" >/dev/null
}
# client NAME ROLE: runs the SQL on stdin on a connection of its own, going on after errors, with
# every error's SQLSTATE, hint and context in $work/NAME.err (run it in the background).
client() {
  "$PGBIN/psql" -X -q -A -t -U "$2" -v VERBOSITY=verbose >/dev/null 2>"$work/$1.err"
}
errors() { cat "$work"/$1*.err 2>/dev/null; } # errors PREFIX: what the clients of a phase got
count() { grep -c "$1" || true; }             # count PATTERN < text

# --- 1. sign-ups ------------------------------------------------------------------------------
# signup PATTERN ORG PLAN: one sign-up transaction; the tenant's subscription names the new plan.
signup() {
  local org="INSERT INTO organizations VALUES ($2, 'org $2');"
  local plan="INSERT INTO plans VALUES ($3, 'custom $3');"
  local sub="INSERT INTO org_$2.subscription (plan_id) VALUES ($3);"
  case $1 in
    managed_first) echo "BEGIN; $org $plan $sub COMMIT;" ;;
    lock_first) echo "BEGIN; LOCK TABLE plans IN SHARE ROW EXCLUSIVE MODE; $plan $org $sub COMMIT;" ;;
    shared_first) echo "BEGIN; $plan $org $sub COMMIT;" ;;
  esac
}
# signups PATTERN BASE: CLIENTS clients sign up ROUNDS tenants each (ids BASE + ...), while two
# writers update plans until they are done; prints the time taken and the writers' longest wait.
signups() {
  local pattern=$1 base=$2 c r t0 pids=() writers=()
  rm -f "$work"/*.err "$work"/*.timing
  hold_barrier
  for ((c = 1; c <= CLIENTS; c++)); do
    { echo "$BARRIER"
      for ((r = 1; r <= ROUNDS; r++)); do signup "$pattern" $((base + c * 100 + r)) $((base + c * 100 + r)); done
    } | client "$pattern-$c" app &
    pids+=($!)
  done
  for c in 1 2; do
    { echo "$BARRIER"; echo '\timing on'
      for ((r = 1; r <= 3000; r++)); do echo "UPDATE plans SET name = name WHERE id = 1; SELECT pg_sleep(0.02);"; done
    } | PGAPPNAME=plans_writer "$PGBIN/psql" -X -q -A -t -U app 2>/dev/null | grep '^Time:' >"$work/writer-$c.timing" &
    writers+=($!)
  done
  t0=$(now)
  release_barrier $((CLIENTS + 2))
  wait "${pids[@]}"
  su_q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'plans_writer'" >/dev/null
  wait "${writers[@]}"
  echo "timing: $pattern: $((CLIENTS * ROUNDS)) sign-ups by $CLIENTS clients in $(secs "$t0" "$(now)")s; ordinary UPDATEs of plans meanwhile waited up to $(cat "$work"/writer-*.timing | awk '{print $2}' | sort -g | tail -1) ms"
}
# provisioned BASE: organizations rows, registered tenants and schemas of the ids from BASE on.
provisioned() {
  su_q -c "SELECT (SELECT count(*) FROM organizations WHERE id > $1 AND id < $1 + 100000) || ' rows, '
                  || (SELECT count(*) FROM tenancy.tenants WHERE schema_name ~ '^org_' AND substr(schema_name, 5)::bigint > $1 AND substr(schema_name, 5)::bigint < $1 + 100000) || ' tenants, '
                  || (SELECT count(*) FROM pg_namespace WHERE nspname ~ '^org_[0-9]+$' AND substr(nspname, 5)::bigint > $1 AND substr(nspname, 5)::bigint < $1 + 100000) || ' schemas'"
}
n=$((CLIENTS * ROUNDS))
want="$n rows, $n tenants, $n schemas"

signups managed_first 100000
check "managed row first: no sign-up fails" "" "$(errors managed_first | grep 'ERROR' | sort | uniq -c)"
check "managed row first: every tenant provisioned" "$want" "$(provisioned 100000)"

signups lock_first 200000
check "LOCK TABLE plans first: no sign-up fails" "" "$(errors lock_first | grep 'ERROR' | sort | uniq -c)"
check "LOCK TABLE plans first: every tenant provisioned" "$want" "$(provisioned 200000)"

signups shared_first 300000
out=$(errors shared_first)
deadlocks=$(count 'ERROR:  40P01' <<<"$out")
echo "note: INSERT INTO plans before the managed row: $deadlocks of $n sign-ups failed 40P01 (the ordering docs/concurrency.md warns against)"
check "plans first: every error is a deadlock" "$deadlocks" "$(grep 'ERROR:  ' <<<"$out" | grep -vc 'current transaction is aborted')"
check "plans first: every 40P01 names the orderings that cannot deadlock" "$deadlocks" \
  "$(grep -c '^HINT:  .*Create the tenant first.*LOCK TABLE.*docs/concurrency.md' <<<"$out")"
ok=$((n - deadlocks))
check "plans first: each sign-up provisioned its tenant or left nothing" "$ok rows, $ok tenants, $ok schemas" "$(provisioned 300000)"

# --- 2. drops while application clients use the tenants ----------------------------------------
D=12
q -U app -c "INSERT INTO organizations SELECT g, 'drop me ' || g FROM generate_series(1, $D) g" >/dev/null
# app_client N: transactions on random tenants among the D: read one table, wait a little, then
# read the others in a random order and write one. A tenant dropped meanwhile makes set_tenant
# (42704) or a table (42P01) fail: that is expected; a deadlock is not.
app_client() {
  local r t tables
  echo "$BARRIER"
  for ((r = 1; r <= 12; r++)); do
    t=$((RANDOM % D + 1))
    tables=$(printf '%s\n' users projects comments subscription | shuf | sed 's/.*/SELECT count(*) FROM &;/' | tr '\n' ' ')
    echo "BEGIN; SELECT tenancy.set_tenant('org_$t'); SELECT count(*) FROM tasks; SELECT pg_sleep(0.$((RANDOM % 3 + 1))); $tables INSERT INTO users (email) VALUES ('c$1-r$r'); COMMIT;"
  done
}
rm -f "$work"/*.err
hold_barrier
pids=()
for ((c = 1; c <= CLIENTS; c++)); do app_client $c | client "app-$c" app & pids+=($!); done
# The dropper: odd tenants through drop_tenant, even ones through the managed row's DELETE, each
# with 300ms to get its locks, again and again until it is gone or the clients are done.
{ echo "$BARRIER"; echo "SET tenancy.drop_lock_timeout = '300ms';"
  for ((r = 1; r <= 3; r++)); do
    for ((t = 1; t <= D; t++)); do
      if ((t % 2)); then echo "SELECT tenancy.drop_tenant('org_$t', lock_timeout => '300ms') WHERE EXISTS (SELECT FROM tenancy.all_tenants() a WHERE a = 'org_$t');"
      else echo "DELETE FROM organizations WHERE id = $t;"; fi
      echo "SELECT pg_sleep(0.1);"
    done
  done
} | client dropper postgres &
pids+=($!)
t0=$(now)
release_barrier $((CLIENTS + 1))
wait "${pids[@]}"
echo "timing: $CLIENTS application clients and a dropper: $(secs "$t0" "$(now)")s"
apps=$(errors app-)
drops=$(errors dropper)
dropped=$((D - $(su_q -c "SELECT count(*) FROM tenancy.all_tenants() a WHERE a ~ '^org_([1-9]|1[0-2])$'")))
echo "note: $dropped of $D tenants dropped while in use; the dropper gave up $(count 'ERROR:  55P03' <<<"$drops") times (55P03)"
check "no client got 40P01" "0" "$(count '40P01' <<<"$apps$drops")"
check "applications only met tenants already gone" "" \
  "$(grep 'ERROR:  ' <<<"$apps" | grep -v 'ERROR:  \(42704\|42P01\|3F000\|25P02\)' | sort | uniq -c)"
check "the dropper failed only with 55P03" "" "$(grep 'ERROR:  ' <<<"$drops" | grep -v 'ERROR:  55P03' | sort | uniq -c)"
check "every 55P03 names its tenant" "$(count 'ERROR:  55P03' <<<"$drops")" \
  "$(grep -c 'ERROR:  55P03: .*tenant "org_[0-9]*": still in use' <<<"$drops")"
su_q -c "SELECT tenancy.drop_tenant(a) FROM tenancy.all_tenants() a WHERE a ~ '^org_([1-9]|1[0-2])$'" >/dev/null
check "once the applications are done every tenant drops" "0" \
  "$(su_q -c "SELECT count(*) FROM pg_namespace WHERE nspname ~ '^org_([1-9]|1[0-2])$'")"

finish concurrency
