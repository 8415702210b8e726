#!/usr/bin/env bash
# pg_upgrade across majors: a PostgreSQL 15 cluster with schema tenants, a managed table,
# attribute tenants and a registered migration that some tenants still lack is upgraded to
# PostgreSQL 18 (UPGRADE_TO) with the real pg_upgrade, pg_tenancy installed in both. The tenants'
# data and the extension come across. What the registry does not survive yet (it keys tenants by
# schema OID, and pg_upgrade does not keep schema OIDs) is reported as known failures of issue 13
# ("Routine operations never break tenants"), which makes them pass.
#
# Both servers are the relocatable builds (15.19 and 18.6): Debian's 15.20 stamps every column
# with an attribute option pg_attver that upstream 18 does not know, so pg_upgrade from it to the
# relocatable 18 fails in any database, with or without pg_tenancy ("unrecognized parameter").
set -uo pipefail
export PG=15 PG15_FROM=pypi
source "$(dirname "$0")/lib.sh"
NEW=${UPGRADE_TO:-18}
OLD_PORT=${PGUP_OLD_PORT:-28827} NEW_PORT=${PGUP_NEW_PORT:-28828}
old_bin=$PGBIN
new_config="$ROOT/target/pg/$NEW/bin/pg_config"
[ -x "$new_config" ] || { echo "pg_upgrade: PostgreSQL $NEW is not set up (PG=$NEW bash scripts/setup.sh)" >&2; exit 1; }
new_bin=$("$new_config" --bindir)

install_extension || exit 1
PG=$NEW bash -c 'source scripts/common.sh && install_extension' || exit 1

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
check "before: verify() clean on $(q -c 'SHOW server_version_num' | cut -c1-2)" "0" "$(q -c "SELECT count(*) FROM tenancy.verify()")"
cluster_stop pgup-old >/dev/null

# The new cluster: initialised by the new major with the old one's settings. 18's initdb turns
# data checksums on by default; the old cluster has none, and pg_upgrade needs them to match.
flags=""; [ "$NEW" -ge 18 ] && flags="--no-data-checksums"
new=$(PGBIN=$new_bin INITDB_FLAGS=$flags cluster_start pgup-new "$NEW_PORT") || exit 1
PGBIN=$new_bin cluster_stop pgup-new >/dev/null
as_pg mkdir -p "$new/work"
if (cd "$new/work" && as_pg "$new_bin/pg_upgrade" -b "$old_bin" -B "$new_bin" -d "$old/data" -D "$new/data" \
      -U postgres -p "$OLD_PORT" -P "$NEW_PORT" --socketdir "$new/sock" >"$new/pg_upgrade.log" 2>&1); then
  check "pg_upgrade 15 -> $NEW succeeded" "0" "0"
else
  check "pg_upgrade 15 -> $NEW succeeded" "0" "$?"; tail -30 "$new/pg_upgrade.log"
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
check "registry and ledgers came across" "3 19" \
  "$(q -c "SELECT (SELECT count(*) FROM tenancy.tenants) || ' ' || (SELECT count(*) FROM tenancy.ledger)")"
check "attribute tenancy came across (tenant, policy)" "1 1" \
  "$(q -c "SELECT (SELECT count(*) FROM tenancy.attribute_tenants) || ' ' || (SELECT count(*) FROM pg_policy WHERE polrelid = 'invoices'::regclass)")"
known_failure "issue 13" "verify() clean after pg_upgrade" "0" "$(q -c "SELECT count(*) FROM tenancy.verify()" 2>&1)"
known_failure "issue 13" "migrate_tenant works after pg_upgrade" "1" \
  "$(q -c "SELECT count(*) FROM tenancy.migrate_tenant('org_1')" 2>&1 | tail -1)"
known_failure "issue 13" "CALL migrate_all brings every tenant to 0100" "3" \
  "$(q -c "SET client_min_messages = error" -c "CALL tenancy.migrate_all()" >/dev/null 2>&1; q -c "SELECT count(*) FROM tenancy.ledger WHERE version = '0100'")"
known_failure "issue 13" "rename_tenant works after pg_upgrade" "org_200" \
  "$(q -c "SELECT tenancy.rename_tenant('org_2', 'org_200')" 2>&1 | tail -1)"
# The documented stop-gap until issue 13: re-link each registration to the schema of its name.
q -c "UPDATE tenancy.tenants t SET schema_oid = n.oid FROM pg_namespace n WHERE n.nspname = t.schema_name" >/dev/null
check "after the documented re-link: verify() clean" "0" "$(q -c "SELECT count(*) FROM tenancy.verify()")"
check "after the documented re-link: migrate_all brings every tenant to 0100" "3" \
  "$(q -c "SET client_min_messages = error" -c "CALL tenancy.migrate_all()" >/dev/null 2>&1; q -c "SELECT count(*) FROM tenancy.ledger WHERE version = '0100'")"
check "after the documented re-link: rename_tenant works" "org_200" "$(q -c "SELECT tenancy.rename_tenant('org_2', 'org_200')")"
check "a new managed row provisions a tenant" "1" \
  "$(q -c "INSERT INTO organizations VALUES (3)" -c "SELECT count(*) FROM tenancy.all_tenants() t WHERE t = 'org_3'" 2>&1 | tail -1)"
finish "pg_upgrade 15 -> $NEW"
