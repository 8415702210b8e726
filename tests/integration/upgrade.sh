#!/usr/bin/env bash
# Upgrades: for every upgrade script sql/pg_tenancy--OLD--NEW.sql, install OLD from its frozen
# script (sql/released/pg_tenancy--OLD.sql), create tenants and a managed table, ALTER EXTENSION
# UPDATE, and compare the extension's objects (pg_describe_object over pg_depend deptype 'e',
# plus every function's and view's definition, and what PUBLIC may do) with a fresh install of the
# current version. Then a role given grant_admin before the upgrade must reach every object the
# upgrade added, and the upgraded tenants must keep working. The tenants are provisioned by an
# application role and migrated by a superuser before the upgrade (mixed owners, which the
# pre-upgrade check lists and reconcile(fix_owners) repairs after it).
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
  # Tenants provisioned by an application role given grant_admin, then changed by a superuser:
  # before 0.2.0 a superuser's migrate_all left superuser-owned tables inside the app's tenants
  # (mixed owners). The new library already runs migrations as the owner before ALTER EXTENSION
  # UPDATE, so the superuser's tables are made by hand here.
  app="${db}_app"
  q -d "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_tenancy VERSION '$old'" \
    -c "CREATE TABLE plans (id bigint PRIMARY KEY)" -c "CREATE TABLE organizations (id bigint PRIMARY KEY)" \
    -c "CREATE ROLE $app" -c "GRANT CREATE ON DATABASE $db TO $app" \
    -c "GRANT SELECT, REFERENCES ON plans TO $app" -c "GRANT ALL ON organizations TO $app" \
    -c "SELECT tenancy.grant_admin('$app')" \
    -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'])" \
    -c "SET ROLE $app" -c "INSERT INTO organizations VALUES (1), (2)" -c "SELECT tenancy.create_tenant('acme')" \
    -c "RESET ROLE" -c "CREATE TABLE acme.by_dba (id int)" -c "CREATE TABLE org_1.by_dba (id int)" \
    -c "CREATE TABLE org_2.by_dba (id int)" >/dev/null
  check "$old: scripts/trust-precheck.sql lists the tenants with mixed owners" "acme org_1 org_2" \
    "$(q -d "$db" -f scripts/trust-precheck.sql | awk -F'|' '$1 == "mixed owners" {print $2}' | sort | xargs)"
  q -d "$db" -c "ALTER EXTENSION pg_tenancy UPDATE TO '$new'"
  if [ "$new" = "$current" ]; then
    check "$old -> $new gives the objects of a fresh install" "$(objects fresh)" "$(objects "$db")"
    check "$old -> $new: PUBLIC has the rights of a fresh install" "$(public_rights fresh)" "$(public_rights "$db")"
  fi
  q -d "$db" -c "SET client_min_messages = warning" -c "ALTER EXTENSION pg_tenancy UPDATE" >/dev/null
  # A role given grant_admin before the upgrade gets grant_admin's new set: every routine but the
  # grants, and read access to every table, but no more write access to the registry.
  check "$old -> $new: a role given grant_admin before reaches every routine and reads every table" "0 0" \
    "$(q -d "$db" -c "SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'v')
                        AND NOT has_table_privilege('$app', c.oid, 'SELECT')") $(
      q -d "$db" -c "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace
                       AND p.proname NOT IN ('grant_provision', 'grant_author', 'grant_admin', '_grant')
                       AND NOT has_function_privilege('$app', p.oid, 'EXECUTE')")"
  check "$old -> $new: that role no longer writes the registry, ledger or registered migrations" "0" \
    "$(q -d "$db" -c "SELECT count(*) FROM unnest(ARRAY['tenancy.tenants', 'tenancy.ledger', 'tenancy.registered_migrations',
                        'tenancy.managed_table_settings', 'tenancy.attribute_tables', 'tenancy.attribute_tenants']) t,
                        unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p WHERE has_table_privilege('$app', t, p)")"
  check "$old -> $new: verify() reports the mixed owners" "acme org_1 org_2" \
    "$(q -d "$db" -c "SELECT string_agg(schema_name, ' ' ORDER BY schema_name) FROM tenancy.verify() WHERE problem LIKE '%not owned by the tenant''s owner%'")"
  q -d "$db" -c "SELECT count(*) FROM tenancy.reconcile(dry_run => false, fix_owners => true)" >/dev/null
  check "$old -> $new: reconcile(fix_owners) gives every object to its tenant's owner" "0" \
    "$(q -d "$db" -c "SELECT count(*) FROM tenancy.tenants t JOIN pg_namespace n ON n.oid = t.schema_oid
                        JOIN pg_class c ON c.relnamespace = n.oid WHERE c.relowner <> n.nspowner")"
  q -d "$db" -c "DROP TABLE acme.by_dba, org_1.by_dba, org_2.by_dba" \
    -c "SET ROLE $app" -c "INSERT INTO organizations VALUES (3)" -c "RESET ROLE" \
    -c "SELECT tenancy.add_migration('0100', 'after_upgrade', 'CREATE TABLE after_upgrade (id int)')" \
    -c "SET client_min_messages = warning" -c "CALL tenancy.migrate_all()" >/dev/null
  check "$old -> $new: tenants keep working (4 tenants at the new migration)" "4" \
    "$(q -d "$db" -c "SELECT count(*) FROM tenancy.ledger WHERE version = '0100'")"
  check "$old -> $new: the new migration's tables belong to the tenants' owner" "0" \
    "$(q -d "$db" -c "SELECT count(*) FROM pg_class c WHERE c.relname = 'after_upgrade' AND c.relowner <> '$app'::regrole")"
  check "$old -> $new: verify() clean" "" "$(q -d "$db" -c "SELECT string_agg(coalesce(schema_name, '-') || ': ' || problem, E'\n') FROM tenancy.verify()")"
done
finish upgrade
