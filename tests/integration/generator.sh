#!/usr/bin/env bash
# The generator on a real schema no one here wrote: Debian's zabbix-server-pgsql schema
# (173 tables, 226 foreign keys) loaded into a template, generated from no migrations and on top
# of the shipped set; each generated migration must rebuild a schema identical to the template.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${GENERATOR_PORT:-28821}
zdir="$ROOT/target/zabbix"
if [ ! -s "$zdir/schema.sql" ]; then
  mkdir -p "$zdir"
  (cd "$zdir" && { apt-get download zabbix-server-pgsql >/dev/null 2>&1 || { apt-get update -qq && apt-get download zabbix-server-pgsql >/dev/null 2>&1; }; }) \
    || { echo "cannot download zabbix-server-pgsql"; exit 1; }
  dpkg-deb -x "$zdir"/zabbix-server-pgsql_*.deb "$zdir/x"
  zcat "$zdir/x/usr/share/zabbix-server-pgsql/schema.sql.gz" > "$zdir/schema.sql"
fi
dir=$(cluster_start generator "$PORT") || exit 1
trap 'cluster_stop generator >/dev/null 2>&1 || true' EXIT
export PGHOST="$dir/sock" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres
q -c "CREATE EXTENSION pg_tenancy" -c "CREATE TABLE plans (id bigint PRIMARY KEY)" -c "CREATE SCHEMA zbx"
(echo "SET search_path = zbx;"; cat "$zdir/schema.sql") | q >/dev/null
check "zabbix tables loaded" "173" "$(q -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'zbx'")"
check "zabbix foreign keys loaded" "226" "$(q -c "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'zbx'::regnamespace")"

# From no migrations: the generated DDL builds an identical schema.
q -c "SELECT tenancy.generate_migration('zbx', '0')" > "$zdir/from-nothing.sql"
q -c "SELECT tenancy.create_template('zbx_copy', '0')" >/dev/null
(echo "SET search_path = zbx_copy, public;"; cat "$zdir/from-nothing.sql") | q >/dev/null
check "from no migrations: identical in a catalog comparison" "0" "$(q -c "SELECT count(*) FROM tenancy.compare_schemas('zbx', 'zbx_copy')")"
check "from no migrations: 226 foreign keys, all inside the tenant" "226" \
  "$(q -c "SELECT count(*) FROM pg_constraint c JOIN pg_class r ON r.oid = c.confrelid WHERE c.contype = 'f' AND c.connamespace = 'zbx_copy'::regnamespace AND r.relnamespace = 'zbx_copy'::regnamespace")"

# On top of the shipped migrations, as a registered migration: a new tenant equals the template.
q -c "SELECT tenancy.generate_migration('zbx')" > "$zdir/on-top.sql"
q -c "SELECT tenancy.add_migration('0100', 'zabbix', pg_read_file('$zdir/on-top.sql'))" >/dev/null 2>&1 \
  || q -c "SELECT tenancy.add_migration('0100', 'zabbix', \$zbx\$$(cat "$zdir/on-top.sql")\$zbx\$)" >/dev/null
q -c "SELECT tenancy.create_tenant('zbx_tenant')" >/dev/null
check "on top of the shipped set: identical" "0" "$(q -c "SELECT count(*) FROM tenancy.compare_schemas('zbx', 'zbx_tenant')")"
check "then nothing left to generate" "1" "$(q -c "SELECT tenancy.generate_migration('zbx')" | grep -c 'nothing to do')"
echo "generated: $(grep -c ';$' "$zdir/from-nothing.sql") statements from no migrations, $(grep -c ';$' "$zdir/on-top.sql") on top of the shipped set"

finish generator
