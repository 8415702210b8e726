#!/usr/bin/env bash
# The documented recipe "the application role provisions and uses tenants; a DBA rolls out
# migrations as superuser" (issue 12), end to end with real LOGIN roles, each statement on a
# psql connection of that role's own (no SET ROLE): `app` signs tenants up by INSERT, `dba`
# (superuser) registers a migration and runs CALL tenancy.migrate_all(jobs => 2), and afterwards
# every tenant is uniformly owned by `app`, which reads and writes all of it; `reader_1`, granted
# one tenant, cannot read another; a migration authored by a member of `app` that tries to make
# `app` superuser when it runs as one gains nothing. Prints "N passed, M failed".
#
# The cluster is initialised with `-A trust` (scripts/common.sh), so every LOGIN role connects
# over the private socket without a password; roles without LOGIN could not.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${TRUST_PORT:-28829}
dir=$(cluster_start trust "$PORT") || exit 1
trap 'cluster_stop trust >/dev/null 2>&1 || true' EXIT
export PGHOST="$dir/sock" PGPORT="$PORT" PGDATABASE=app PGOPTIONS="-c client_min_messages=warning"
unset PGUSER

on() { local role=$1; shift; q -U "$role" "$@"; } # on ROLE PSQL-ARGS...: a new connection as ROLE
# runs NAME ROLE PSQL-ARGS...: ROLE runs the commands without an error (the error is the "got").
runs() {
  local name=$1 role=$2 out
  shift 2
  if out=$(on "$role" "$@" 2>&1); then check "$name" ok ok
  else check "$name" ok "$(grep -m2 'ERROR\|FATAL' <<<"$out" | tr '\n' ' ')"; fi
}
# sqlstate ROLE SQL: the SQLSTATE of the error ROLE gets for SQL on a connection of its own, or ok.
sqlstate() {
  local out code
  out=$("$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -U "$1" -c "$2" 2>&1) && { echo ok; return; }
  code=$(grep -o -m1 '\(ERROR\|FATAL\):  [0-9A-Z]\{5\}' <<<"$out" | grep -o '[0-9A-Z]\{5\}$')
  echo "${code:-no SQLSTATE in: $(tr '\n' ' ' <<<"$out")}"
}
# denied ROLE: runs the statements on stdin as ROLE, one connection, going on after errors;
# prints each distinct error with how often it came ("" when none did).
denied() {
  local sql
  sql=$(cat)
  [ -n "$sql" ] || { echo "no statements to run"; return; }
  "$PGBIN/psql" -X -q -A -t -U "$1" <<<"$sql" 2>&1 >/dev/null | sed -n 's/.*\(ERROR\|FATAL\):  //p' | sort | uniq -c \
    | awk '{n = $1; $1 = ""; printf "%s%dx%s", (NR > 1 ? "; " : ""), n, $0}'
}
T="JOIN tenancy.tenants t ON t.schema_oid = n.oid" # joins pg_namespace n to the registered tenants
su_q() { on postgres "$@"; } # as the superuser that installed the extension: set-up, and looking

# --- set-up, as the superuser that installs the extension --------------------------------------
q -U postgres -d postgres -c "CREATE DATABASE app" \
  -c "CREATE ROLE app LOGIN" -c "CREATE ROLE dba LOGIN SUPERUSER" -c "CREATE ROLE reader_1 LOGIN" \
  -c "CREATE ROLE author_app LOGIN IN ROLE app" >/dev/null || exit 1
# The application's own public migration: the shared plan catalogue the shipped tenant migrations
# reference (0005_subscription: REFERENCES public.plans), and the table whose rows are tenants.
# manage_tenant is the DBA's decision, made here as superuser: it installs triggers on the
# application's table and fixes who owns the tenants its rows create (by default the inserting
# role), which the provisioning grant the app gets does not cover.
su_q -c "CREATE EXTENSION pg_tenancy" \
  -c "CREATE TABLE public.plans (id bigint PRIMARY KEY, name text NOT NULL)" \
  -c "INSERT INTO public.plans VALUES (1, 'free'), (2, 'pro')" \
  -c "CREATE TABLE public.organizations (id bigint PRIMARY KEY, name text NOT NULL)" \
  -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'])" \
  -c "GRANT CREATE ON DATABASE app TO app" \
  -c "GRANT SELECT, REFERENCES ON public.plans TO app" \
  -c "GRANT SELECT, INSERT, UPDATE, DELETE ON public.organizations TO app" >/dev/null || exit 1
runs "set-up: tenancy.grant_provision('app'), the grant of a role that provisions tenants" postgres \
  -c "SELECT tenancy.grant_provision('app')"
runs "set-up: tenancy.grant_author('author_app'), the grant of a role that authors migrations" postgres \
  -c "SELECT tenancy.grant_author('author_app')"

# Role attributes and memberships of app and author_app: compared at the end, nothing gained.
roles_now() {
  su_q -c "SELECT string_agg(format('%s super=%s createrole=%s createdb=%s bypassrls=%s replication=%s member of %s', r.rolname, r.rolsuper,
                                  r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,
                                  (SELECT coalesce(string_agg(m.roleid::regrole::text, ',' ORDER BY 1), 'none') FROM pg_auth_members m WHERE m.member = r.oid)), '; ' ORDER BY r.rolname)
         FROM pg_roles r WHERE r.rolname IN ('app', 'author_app')"
}
roles_before=$(roles_now)

# --- the app signs tenants up by INSERT, on its own connections --------------------------------
runs "app signs up three tenants in one INSERT" app -c "INSERT INTO organizations VALUES (1, 'Acme'), (2, 'Globex'), (3, 'Initech')"
runs "app signs up a fourth tenant" app -c "INSERT INTO organizations VALUES (4, 'Umbrella')"
check "four tenants exist, each owned by app" "org_1 app,org_2 app,org_3 app,org_4 app" \
  "$(su_q -c "SELECT string_agg(n.nspname || ' ' || n.nspowner::regrole, ',' ORDER BY n.nspname) FROM pg_namespace n $T")"

# --- the DBA registers a migration; an authoring role registers one that tries to escalate ------
runs "dba registers 0100 (ADD COLUMN, a new table, seed data)" dba -f - <<'SQL'
SELECT tenancy.add_migration('0100', 'locale_and_settings', $m$
ALTER TABLE users ADD COLUMN locale text NOT NULL DEFAULT 'en';
CREATE TABLE settings (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key    text NOT NULL UNIQUE,
    value  text NOT NULL
);
INSERT INTO settings (key, value) VALUES ('theme', 'light'), ('currency', 'EUR');
INSERT INTO users (email, full_name) VALUES ('support@example.com', 'Support');
$m$);
SQL
# Issue 12 case 1: harmless when it runs as a tenant's owner, an escalation when it runs as the
# superuser who called migrate_all. audit_log.ran_as records who it ran as.
runs "author_app registers 0101, which makes app superuser if it runs as one" author_app -f - <<'SQL'
SELECT tenancy.add_migration('0101', 'audit_log', $m$
CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ran_as  name NOT NULL DEFAULT current_user
);
INSERT INTO audit_log DEFAULT VALUES;
DO $x$ BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE app SUPERUSER';
        EXECUTE 'ALTER ROLE author_app SUPERUSER';
    END IF;
END $x$;
$m$);
SQL

# --- the DBA rolls them out, connected as dba ----------------------------------------------------
runs "dba: CALL tenancy.migrate_all(jobs => 2) ends without an error" dba -c "CALL tenancy.migrate_all(jobs => 2)"
check "the run migrated all four tenants, none failed, with a background worker" "finished 4 0 1" \
  "$(su_q -c "SELECT state || ' ' || migrated || ' ' || failed || ' ' || workers FROM tenancy.progress ORDER BY run_id DESC LIMIT 1")"
runs "app signs up a fifth tenant after the roll-out" app -c "INSERT INTO organizations VALUES (5, 'Hooli')"

# --- afterwards: the ledger, verify(), nobody escalated ----------------------------------------
check "the ledger has 0100 and 0101 on every tenant" "5 5 5" \
  "$(su_q -c "SELECT count(*) || ' ' || count(*) FILTER (WHERE EXISTS (SELECT FROM tenancy.ledger l WHERE l.schema_name = t.schema_name AND l.version = '0100'))
                   || ' ' || count(*) FILTER (WHERE EXISTS (SELECT FROM tenancy.ledger l WHERE l.schema_name = t.schema_name AND l.version = '0101'))
            FROM tenancy.tenants t")"
check "every tenant is up to date (else: its state and error)" "5" \
  "$(su_q -c "SELECT count(*) FILTER (WHERE state = 'up_to_date') || coalesce(' ' || string_agg(schema_name || ' ' || state || coalesce(': ' || left(last_error, 160), ''), '; ')
                                                                            FILTER (WHERE state <> 'up_to_date'), '')
            FROM tenancy.status")"
check "tenancy.verify() is empty" "" "$(on dba -c "SELECT string_agg(schema_name || ': ' || problem, ' | ' ORDER BY 1, 2) FROM tenancy.verify()" 2>&1)"
check "app is still not superuser (nor createrole, createdb, bypassrls, replication)" "f" \
  "$(su_q -c "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication FROM pg_roles WHERE rolname = 'app'")"
check "author_app is still not superuser either" "f" "$(su_q -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'author_app'")"
check "app's and author_app's role attributes and memberships are what set-up left" "$roles_before" "$(roles_now)"
check "author_app's migration ran as the tenant's owner (app) in every tenant, not as dba" "app x5" \
  "$(su_q -c "SELECT string_agg(ran_as || ' x' || k, ',' ORDER BY ran_as) FROM (
              SELECT r::text AS ran_as, count(*) AS k FROM tenancy.tenants,
                     unnest(xpath('//ran_as/text()', query_to_xml(format('SELECT ran_as FROM %I.audit_log', schema_name), false, false, ''))) AS r
              GROUP BY 1) x" 2>&1)"

# --- uniform ownership: every object in every tenant belongs to app ------------------------------
check "every tenant schema is owned by app" "5" "$(su_q -c "SELECT count(*) FROM pg_namespace n $T WHERE n.nspowner = 'app'::regrole")"
check "every relation in every tenant is owned by app (pg_class.relowner)" "" \
  "$(su_q -c "SELECT string_agg(format('%s owned by %s in %s tenants', relname, owner, k), '; ' ORDER BY relname)
            FROM (SELECT c.relname, c.relowner::regrole::text AS owner, count(*) AS k FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace $T
                  WHERE c.relowner <> 'app'::regrole GROUP BY 1, 2) x")"
check "the new tables (settings, audit_log) and the sequence of settings are in every tenant, owned by app" "15" \
  "$(su_q -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace $T
            WHERE c.relname IN ('settings', 'settings_id_seq', 'audit_log') AND c.relowner = 'app'::regrole")"
check "every function in every tenant is owned by app (pg_proc.proowner)" "" \
  "$(su_q -c "SELECT string_agg(DISTINCT p.proname || ' owned by ' || p.proowner::regrole, '; ') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace $T
            WHERE p.proowner <> 'app'::regrole")"

# --- app reads and writes every table of every tenant ------------------------------------------
rel_from="pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace $T"
rels="FROM $rel_from WHERE c.relkind IN ('r', 'p')"
check "app can SELECT every table in every tenant (errors seen)" "" \
  "$(su_q -c "SELECT format('SELECT count(*) FROM %I.%I;', n.nspname, c.relname) $rels" | denied app)"
# A statement that changes no row still has its privileges checked when it starts.
check "app can INSERT into and UPDATE every table in every tenant (errors seen)" "" \
  "$(su_q -c "SELECT format('INSERT INTO %1\$I.%2\$I (%3\$I) SELECT %3\$I FROM %1\$I.%2\$I WHERE false; UPDATE %1\$I.%2\$I SET %3\$I = %3\$I WHERE false;', n.nspname, c.relname, a.attname)
            FROM $rel_from CROSS JOIN LATERAL (SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped
                                                      AND attidentity = '' AND attgenerated = '' ORDER BY attnum LIMIT 1) a
            WHERE c.relkind IN ('r', 'p')" | denied app)"
for i in 1 2 3 4 5; do
  runs "app writes org_$i through set_tenant: users (new column), settings (new table), subscription (-> public.plans)" app -f - <<SQL
BEGIN;
SELECT tenancy.set_tenant('org_$i');
INSERT INTO users (email, full_name) VALUES ('owner@org-$i.example', 'Owner $i');
UPDATE users SET locale = 'de' WHERE email = 'owner@org-$i.example';
INSERT INTO settings (key, value) VALUES ('plan', 'pro');
UPDATE settings SET value = 'dark' WHERE key = 'theme';
INSERT INTO subscription (plan_id) VALUES (2);
INSERT INTO audit_log DEFAULT VALUES;
COMMIT;
SQL
done
check "the app's writes landed in each tenant" "5 5 5 5" \
  "$(su_q -c "SELECT sum((xpath('//u/text()', x))[1]::text::int) || ' ' || sum((xpath('//s/text()', x))[1]::text::int) || ' ' ||
                   sum((xpath('//p/text()', x))[1]::text::int) || ' ' || sum((xpath('//seed/text()', x))[1]::text::int)
            FROM (SELECT query_to_xml(format('SELECT (SELECT count(*) FROM %1\$I.users WHERE locale = ''de'') AS u,
                                                   (SELECT count(*) FROM %1\$I.settings WHERE key = ''theme'' AND value = ''dark'') AS s,
                                                   (SELECT count(*) FROM %1\$I.subscription WHERE plan_id = 2) AS p,
                                                   (SELECT count(*) FROM %1\$I.users WHERE email = ''support@example.com'') AS seed', schema_name), false, false, '') AS x
                  FROM tenancy.tenants) t" 2>&1)"

# --- a role granted one tenant reads it and nothing else ----------------------------------------
grant_out=$(on app -c "GRANT USAGE ON SCHEMA org_1 TO reader_1" -c "GRANT SELECT ON ALL TABLES IN SCHEMA org_1 TO reader_1" 2>&1); rc=$?
check "app (the owner) grants reader_1 USAGE and SELECT on all of org_1, without a warning" "0 ok" \
  "$rc $(grep -q 'WARNING\|ERROR' <<<"$grant_out" && tr '\n' ' ' <<<"$grant_out" || echo ok)"
check "reader_1 reads every table of org_1 (errors seen)" "" \
  "$(su_q -c "SELECT format('SELECT count(*) FROM %I.%I;', n.nspname, c.relname) $rels AND n.nspname = 'org_1'" | denied reader_1)"
check "reader_1 reading org_2.users gets 42501" "42501" "$(sqlstate reader_1 "SELECT count(*) FROM org_2.users")"
check "reader_1 reading org_2.settings gets 42501" "42501" "$(sqlstate reader_1 "SELECT count(*) FROM org_2.settings")"
check "reader_1: tenancy.set_tenant('org_2') fails with 42501" "42501" "$(sqlstate reader_1 "SELECT tenancy.set_tenant('org_2')")"
check "reader_1: after set_tenant('org_1') unqualified names are org_1's" "org_1 2" \
  "$(on reader_1 -c "BEGIN" -c "SELECT tenancy.set_tenant('org_1')" -c "SELECT tenancy.current_tenant() || ' ' || count(*) FROM users" -c "COMMIT" 2>&1 | grep -v '^$')"
check "reader_1 cannot write org_1" "42501" "$(sqlstate reader_1 "UPDATE org_1.settings SET value = 'x'")"

finish trust
