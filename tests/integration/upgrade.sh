#!/usr/bin/env bash
# Upgrades: for every upgrade script sql/pg_tenancy--OLD--NEW.sql, install OLD from its frozen
# script (sql/released/pg_tenancy--OLD.sql), create tenants and a managed table, ALTER EXTENSION
# UPDATE, and compare the extension's objects (pg_describe_object over pg_depend deptype 'e',
# plus every function's and view's definition, and what PUBLIC may do) with a fresh install of the
# current version. Then a role given grant_admin before the upgrade must reach every object the
# upgrade added, and the upgraded tenants must keep working.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${UPGRADE_PORT:-28825}
dir=$(cluster_start upgrade "$PORT") || exit 1
ext_dir=$("$PG_CONFIG" --sharedir)/extension
copied=()
trap 'cluster_stop upgrade >/dev/null 2>&1 || true; rm -f "${copied[@]}"' EXIT
export PGHOST="$dir/sock" PGPORT="$PORT" PGUSER=postgres
current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ext_dir/pg_tenancy.control")
objects() { # every member object of the extension, with the definition of functions and views
  q -d "$1" -c "
    SELECT string_agg(x, E'\n' ORDER BY x) FROM (
      SELECT pg_describe_object(d.classid, d.objid, d.objsubid) || coalesce(
               ' = ' || md5(CASE WHEN d.classid = 'pg_proc'::regclass THEN pg_get_functiondef(d.objid)
                                 WHEN d.classid = 'pg_class'::regclass AND c.relkind = 'v' THEN pg_get_viewdef(d.objid)
                                 WHEN d.classid = 'pg_class'::regclass AND c.relkind = 'r' THEN
                                   (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ',' ORDER BY a.attnum)
                                    FROM pg_attribute a WHERE a.attrelid = d.objid AND a.attnum > 0 AND NOT a.attisdropped)
                            END), '') AS x
      FROM pg_depend d
      LEFT JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
      WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
        AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_tenancy')) s"
}
public_rights() { # what PUBLIC may do with the extension's tables and routines
  q -d "$1" -c "
    SELECT string_agg(x, ', ' ORDER BY x) FROM (
      SELECT c.oid::regclass::text || ' ' || a.privilege_type AS x
      FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
      WHERE c.relnamespace = 'tenancy'::regnamespace AND a.grantee = 0
      UNION ALL
      SELECT p.oid::regprocedure::text || ' ' || a.privilege_type
      FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
      WHERE p.pronamespace = 'tenancy'::regnamespace AND a.grantee = 0) s"
}
scripts=(sql/pg_tenancy--*--*.sql)
check "there is an upgrade script to test" "yes" "$( [ -e "${scripts[0]}" ] && echo yes || echo no)"
q -d postgres -c "CREATE DATABASE fresh"
q -d fresh -c "CREATE EXTENSION pg_tenancy" >/dev/null
for script in "${scripts[@]}"; do
  base=$(basename "$script" .sql); old=${base#pg_tenancy--}; old=${old%%--*}; new=${base##*--}
  check "$old has a frozen install script" "yes" "$( [ -s "sql/released/pg_tenancy--$old.sql" ] && echo yes || echo no)"
  # Always the repository's copy: a stale script of that name in the server's directory (an
  # earlier build's, say) must not stand in for the frozen one. Only files this test added go.
  for f in "sql/released/pg_tenancy--$old.sql" "$script"; do
    [ -e "$ext_dir/$(basename "$f")" ] || copied+=("$ext_dir/$(basename "$f")")
    cp "$f" "$ext_dir/"
  done
  db="up_${old//./_}"
  q -d postgres -c "CREATE DATABASE $db"
  q -d "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_tenancy VERSION '$old'" \
    -c "CREATE TABLE plans (id bigint PRIMARY KEY)" -c "CREATE TABLE organizations (id bigint PRIMARY KEY)" \
    -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'])" \
    -c "INSERT INTO organizations VALUES (1), (2)" -c "SELECT tenancy.create_tenant('acme')" \
    -c "CREATE ROLE ${db}_admin" -c "SELECT tenancy.grant_admin('${db}_admin')" >/dev/null
  q -d "$db" -c "ALTER EXTENSION pg_tenancy UPDATE TO '$new'"
  if [ "$new" = "$current" ]; then
    check "$old -> $new gives the objects of a fresh install" "$(objects fresh)" "$(objects "$db")"
    check "$old -> $new: PUBLIC has the rights of a fresh install" "$(public_rights fresh)" "$(public_rights "$db")"
  fi
  q -d "$db" -c "SET client_min_messages = warning" -c "ALTER EXTENSION pg_tenancy UPDATE" >/dev/null
  # A role given grant_admin before the upgrade keeps its rights on what the upgrade added.
  check "$old -> $new: a role given grant_admin before still reaches every table and routine" "0 0" \
    "$(q -d "$db" -c "SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'v')
                        AND NOT (SELECT bool_and(has_table_privilege('${db}_admin', c.oid, p)) FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p)") $(
      q -d "$db" -c "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace
                       AND NOT has_function_privilege('${db}_admin', p.oid, 'EXECUTE')")"
  q -d "$db" -c "INSERT INTO organizations VALUES (3)" \
    -c "SELECT tenancy.add_migration('0100', 'after_upgrade', 'CREATE TABLE after_upgrade (id int)')" \
    -c "SET client_min_messages = warning" -c "CALL tenancy.migrate_all()" >/dev/null
  check "$old -> $new: tenants keep working (4 tenants at the new migration)" "4" \
    "$(q -d "$db" -c "SELECT count(*) FROM tenancy.ledger WHERE version = '0100'")"
  check "$old -> $new: verify() clean" "0" "$(q -d "$db" -c "SELECT count(*) FROM tenancy.verify()")"
done
finish upgrade
