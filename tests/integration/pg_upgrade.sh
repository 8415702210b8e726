#!/usr/bin/env bash
# A real pg_upgrade of a cluster with schema tenants, a managed table, attribute tenants, a
# registered migration that a fleet run left half done (one tenant failed it), and a tenant
# schema dropped and re-created by hand, pg_tenancy installed in both clusters. Afterwards, with
# no manual step: verify() reports only the hand-made replacement (and works read-only),
# migrate_all, renames and managed-row changes work.
#
# UPGRADE_FROM=15 UPGRADE_TO=15 (what `make test` runs): Debian's 15 to a fresh Debian 15 cluster.
# Across majors (UPGRADE_TO=18, `make test-pg-upgrade`) both servers are the relocatable builds
# (15.19 and 18.6): Debian's 15.20 stamps every column with an attribute option pg_attver that
# upstream 18 does not know, so pg_upgrade from it to the relocatable 18 fails in any database,
# with or without pg_tenancy ("unrecognized parameter").
set -uo pipefail
OLD=${UPGRADE_FROM:-15}
NEW=${UPGRADE_TO:-18}
export PG=$OLD
if [ "$OLD" = 15 ] && [ "$NEW" != 15 ]; then export PG15_FROM=pypi; fi
source "$(dirname "$0")/lib.sh"
OLD_PORT=${PGUP_OLD_PORT:-28827} NEW_PORT=${PGUP_NEW_PORT:-28828}
old_bin=$PGBIN
if [ "$NEW" = "$OLD" ]; then
  new_config=$PG_CONFIG
else
  new_config="$ROOT/target/pg/$NEW/bin/pg_config"
fi
[ -x "$new_config" ] || { echo "pg_upgrade: PostgreSQL $NEW is not set up (PG=$NEW bash scripts/setup.sh)" >&2; exit 1; }
new_bin=$("$new_config" --bindir)

install_extension || exit 1
if [ "$NEW" != "$OLD" ]; then PG=$NEW bash -c 'source scripts/common.sh && install_extension' || exit 1; fi

old=$(cluster_start pgup-old "$OLD_PORT") || exit 1
trap 'PGBIN=$old_bin cluster_stop pgup-old >/dev/null 2>&1; PGBIN=$new_bin cluster_stop pgup-new >/dev/null 2>&1' EXIT
export PGHOST="$old/sock" PGPORT="$OLD_PORT" PGUSER=postgres PGDATABASE=postgres
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_tenancy" \
  -c "CREATE TABLE plans (id bigint PRIMARY KEY)" -c "INSERT INTO plans VALUES (1)" \
  -c "CREATE ROLE tenant_owner" -c "GRANT SELECT, REFERENCES ON plans TO tenant_owner" \
  -c "SELECT tenancy.create_tenant('acme', owner => 'tenant_owner')" \
  -c "INSERT INTO acme.users (email) VALUES ('ceo@acme.example')" \
  -c "CREATE TABLE organizations (id bigint PRIMARY KEY)" \
  -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], owner => 'tenant_owner')" \
  -c "INSERT INTO organizations VALUES (1), (2)" \
  -c "SELECT tenancy.add_migration('0100', 'notes', 'CREATE TABLE notes (id int)')" \
  -c "SELECT count(*) FROM tenancy.migrate_tenant('acme')" \
  -c "CREATE TABLE invoices (tenant text NOT NULL, id int, PRIMARY KEY (tenant, id))" \
  -c "SELECT tenancy.enable_attribute_tenancy('invoices', 'tenant')" \
  -c "SELECT tenancy.add_attribute_tenant('t1')" -c "INSERT INTO invoices VALUES ('t1', 1), ('t2', 2)" >/dev/null
# A tenant its managed table detached, its ledger kept for when its row comes back.
q -c "CREATE TABLE teams (id int PRIMARY KEY)" \
  -c "SELECT tenancy.manage_tenant('teams', ARRAY['team_', ':id'], on_delete => 'detach', owner => 'tenant_owner')" \
  -c "INSERT INTO teams VALUES (1)" -c "DELETE FROM teams" >/dev/null
check "before: verify() clean on $(q -c 'SHOW server_version_num' | cut -c1-2)" "0" "$(q -c "SELECT count(*) FROM tenancy.verify()")"
# A fleet run left half done: org_2 fails the new migration (its table is already there).
q -c "CREATE TABLE org_2.notes (id int)" -c "ALTER TABLE org_2.notes OWNER TO tenant_owner" \
  -c "SET client_min_messages = error" -c "CALL tenancy.migrate_all()" >/dev/null 2>&1
check "before: the fleet run is half done (acme and org_1 at 0100, org_2 failed)" "acme org_1|org_2" \
  "$(q -c "SELECT (SELECT string_agg(schema_name, ' ' ORDER BY schema_name) FROM tenancy.ledger WHERE version = '0100')
              || '|' || (SELECT string_agg(schema_name, ' ') FROM tenancy.tenants WHERE last_error IS NOT NULL)")"
# A tenant whose schema is dropped and re-created by hand: reported before and after the upgrade.
q -c "SELECT tenancy.create_tenant('gone', owner => 'tenant_owner')" -c "SET client_min_messages = warning" \
  -c "DROP SCHEMA gone CASCADE" -c "CREATE SCHEMA gone AUTHORIZATION tenant_owner" >/dev/null
check "before: verify() reports the schema dropped and re-created by hand" "gone" \
  "$(q -c "SELECT string_agg(DISTINCT schema_name, ' ') FROM tenancy.verify()")"
cluster_stop pgup-old >/dev/null

# The new cluster: initialised by the new major with the old one's settings. 18's initdb turns
# data checksums on by default; the old cluster has none, and pg_upgrade needs them to match.
flags=""; [ "$NEW" -ge 18 ] && flags="--no-data-checksums"
new=$(PGBIN=$new_bin INITDB_FLAGS=$flags cluster_start pgup-new "$NEW_PORT") || exit 1
PGBIN=$new_bin cluster_stop pgup-new >/dev/null
as_pg mkdir -p "$new/work"
if (cd "$new/work" && as_pg "$new_bin/pg_upgrade" -b "$old_bin" -B "$new_bin" -d "$old/data" -D "$new/data" \
      -U postgres -p "$OLD_PORT" -P "$NEW_PORT" --socketdir "$new/sock" >"$new/pg_upgrade.log" 2>&1); then
  check "pg_upgrade $OLD -> $NEW succeeded" "0" "0"
else
  check "pg_upgrade $OLD -> $NEW succeeded" "0" "$?"; tail -30 "$new/pg_upgrade.log"
  find "$new/data" -path '*pg_upgrade_output.d*' -name '*.log' -exec tail -20 {} + 2>/dev/null
  finish pg_upgrade; exit 1
fi
PGBIN=$new_bin cluster_restart pgup-new || exit 1
export PGHOST="$new/sock" PGPORT="$NEW_PORT"
PGBIN=$new_bin
check "the new server is $NEW" "$NEW" "$(q -c 'SHOW server_version_num' | cut -c1-2)"
check "the extension came across" "$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)" \
  "$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'")"
check "tenant data came across" "ceo@acme.example" "$(q -c "SELECT email FROM acme.users")"
# Four tenants with every shipped migration, and three registered migrations of the half-done run.
shipped=$(q -c "SELECT count(*) FROM tenancy._embedded_checksums()")
check "registry and ledgers came across" "4 $((4 * shipped + 3))" \
  "$(q -c "SELECT (SELECT count(*) FROM tenancy.tenants) || ' ' || (SELECT count(*) FROM tenancy.ledger)")"
check "attribute tenancy came across (tenant, policy)" "1 1" \
  "$(q -c "SELECT (SELECT count(*) FROM tenancy.attribute_tenants) || ' ' || (SELECT count(*) FROM pg_policy WHERE polrelid = 'invoices'::regclass)")"
check "the schema event triggers came across as members of the extension" "3" \
  "$(q -c "SELECT count(*) FROM pg_event_trigger e JOIN pg_depend d ON d.objid = e.oid AND d.deptype = 'e' WHERE e.evtname LIKE 'pg_tenancy_schema_%'")"
check "the registry's OIDs are another cluster's (schema OIDs are not kept)" "f" \
  "$(q -c "SELECT system_identifier = tenancy._system_identifier() FROM tenancy.registry_cluster")"
# A real hot standby of the upgraded cluster, taken before anything has written to it (its
# registry still holds the old cluster's OIDs): every read path works there and writes nothing.
SB_PORT=${PGUP_STANDBY_PORT:-28829}
as_pg rm -rf "$new/standby" && as_pg mkdir -p "$new/standby-sock"
if as_pg "$new_bin/pg_basebackup" -h "$new/sock" -p "$NEW_PORT" -U postgres -D "$new/standby" -R -X stream >"$new/basebackup.log" 2>&1 \
   && as_pg "$new_bin/pg_ctl" -D "$new/standby" -l "$new/standby.log" -w -t 60 \
        -o "-p $SB_PORT -k $new/standby-sock -c listen_addresses='' -c hot_standby=on" start >/dev/null; then
  trap 'as_pg "$new_bin/pg_ctl" -D "$new/standby" -m immediate stop >/dev/null 2>&1; PGBIN=$old_bin cluster_stop pgup-old >/dev/null 2>&1; PGBIN=$new_bin cluster_stop pgup-new >/dev/null 2>&1' EXIT
  sb() { PGHOST="$new/standby-sock" PGPORT="$SB_PORT" q "$@" 2>&1; }
  check "standby: in recovery" "t" "$(sb -c "SELECT pg_is_in_recovery()")"
  check "standby: all_tenants() lists every tenant" "4" "$(sb -c "SELECT count(*) FROM tenancy.all_tenants()")"
  check "standby: set_tenant, current_tenant and the tenant's tables" "acme 1" \
    "$(sb -c "BEGIN" -c "SELECT tenancy.set_tenant('acme', true)" \
          -c "SELECT tenancy.current_tenant() || ' ' || (SELECT count(*) FROM users)" -c "COMMIT" | grep -v '^$' | tail -1)"
  check "standby: verify() reports only the hand-made replacement" "gone" \
    "$(sb -c "SELECT string_agg(DISTINCT schema_name, ' ') FROM tenancy.verify()")"
  views="SELECT (SELECT count(*) FROM tenancy.status) || ' ' || (SELECT count(*) FROM tenancy.progress)
                || ' ' || (SELECT count(*) FROM tenancy.migrations) || ' ' || (SELECT count(*) FROM tenancy.managed_tables)"
  check "standby: the views (status, progress, migrations, managed_tables) answer as on the primary" \
    "$(q -c "SET default_transaction_read_only = on" -c "$views" 2>&1)" "$(sb -c "$views")"
  check "standby: relink(dry_run) answers, naming only the hand-made replacement" "gone" \
    "$(sb -c "SELECT coalesce(string_agg(schema_name, ' '), 'nothing') FROM tenancy.relink(dry_run => true)")"
  check "standby: a write says where to run it (25006, not XX000)" "25006 25006" \
    "$(sb -v VERBOSITY=verbose -c "SELECT tenancy.create_tenant('nope')" | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1) $(sb -v VERBOSITY=verbose -c "SELECT * FROM tenancy.verify(deep => true)" | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1)"
  as_pg "$new_bin/pg_ctl" -D "$new/standby" -m fast stop >/dev/null
else
  check "standby: pg_basebackup and start" "0" "1"; tail -5 "$new/basebackup.log" "$new/standby.log" 2>/dev/null
fi
check "verify() reports only the schema dropped and re-created by hand, read-only (as on a hot standby)" "gone" \
  "$(q -c "SET default_transaction_read_only = on" -c "SELECT string_agg(DISTINCT schema_name, ' ') FROM tenancy.verify()")"
check "set_tenant and all_tenants work read-only" "1 4" \
  "$(q -c "SET default_transaction_read_only = on" -c "BEGIN" -c "SELECT tenancy.set_tenant('acme')" \
       -c "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM tenancy.all_tenants())" -c "COMMIT" | grep -v '^$' | tail -1)"
check "migrate_tenant works after pg_upgrade" "0" "$(q -c "SELECT count(*) FROM tenancy.migrate_tenant('org_1')" 2>&1 | tail -1)"
check "the first write re-linked the registry" "true 3" \
  "$(q -c "SELECT (SELECT system_identifier = tenancy._system_identifier() FROM tenancy.registry_cluster) || ' ' ||
                  (SELECT count(*) FROM tenancy.tenants t JOIN pg_namespace n ON n.oid = t.schema_oid AND n.nspname = t.schema_name)")"
q -c "DROP TABLE org_2.notes" >/dev/null
check "CALL migrate_all finishes the half-done run" "4 0" \
  "$(q -c "SET client_min_messages = error" -c "CALL tenancy.migrate_all()" >/dev/null 2>&1
     q -c "SELECT (SELECT count(*) FROM tenancy.ledger WHERE version = '0100') || ' ' || (SELECT count(*) FROM tenancy.tenants WHERE last_error IS NOT NULL)")"
embedded=$(q -c "SELECT count(*) FROM tenancy._embedded_checksums()")
check "a detached managed tenant's row, inserted again, re-adopts it with its kept ledger" "true $((embedded + 1))" \
  "$(q -c "INSERT INTO teams VALUES (1)" >/dev/null 2>&1
     q -c "SELECT EXISTS (SELECT FROM tenancy.tenants WHERE schema_name = 'team_1') || ' ' || (SELECT count(*) FROM tenancy.ledger WHERE schema_name = 'team_1')")"
q -c "DELETE FROM teams" >/dev/null
check "rename_tenant works after pg_upgrade" "acme_2" "$(q -c "SELECT tenancy.rename_tenant('acme', 'acme_2')" 2>&1 | tail -1)"
check "a managed row's change renames its tenant" "org_20" \
  "$(q -c "UPDATE organizations SET id = 20 WHERE id = 2" -c "SELECT string_agg(t, ' ') FROM tenancy.all_tenants() t WHERE t LIKE 'org_2%'" 2>&1 | tail -1)"
check "a new managed row provisions a tenant" "1" \
  "$(q -c "INSERT INTO organizations VALUES (3)" -c "SELECT count(*) FROM tenancy.all_tenants() t WHERE t = 'org_3'" 2>&1 | tail -1)"
check "attribute tenancy still works" "1" \
  "$(q -c "SELECT tenancy.add_attribute_tenant('t2')" -c "SELECT count(*) FROM tenancy.attribute_tenants WHERE tenant = 't2'" 2>&1 | tail -1)"
check "verify() still reports the hand-made replacement, and nothing else" "gone" \
  "$(q -c "SELECT string_agg(DISTINCT schema_name, ' ') FROM tenancy.verify()")"
q -c "SELECT tenancy.detach_tenant('gone')" >/dev/null
check "verify() clean" "0" "$(q -c "SELECT count(*) FROM tenancy.verify()")"
finish "pg_upgrade $OLD -> $NEW"
