#!/usr/bin/env bash
# make package PG=NN: an installable artifact for PostgreSQL NN, built with `cargo pgrx package`
# (release build), written to target/packages/:
# - PG=15 (Debian's): postgresql-15-pg-tenancy_<version>_amd64.deb, depends on postgresql-15;
# - other majors (the relocatable builds): pg_tenancy-<version>-pgNN-linux-x86_64.tar.gz holding lib/ (for the server's
#   `pg_config --pkglibdir`) and share/extension/ (for `pg_config --sharedir`).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
build="$ROOT/target/package-build/pg$PG"
out="$ROOT/target/packages"
rm -rf "$build" && mkdir -p "$out"
cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$build" >/dev/null
libdir=$("$PG_CONFIG" --pkglibdir)
sharedir=$("$PG_CONFIG" --sharedir)
[ -f "$build$libdir/pg_tenancy.so" ] || { echo "package: no pg_tenancy.so under $build$libdir" >&2; exit 1; }

if [ "$PG_DEBIAN" = yes ]; then
  deb="$out/postgresql-15-pg-tenancy_${version}_amd64.deb"
  mkdir -p "$build/DEBIAN"
  cat >"$build/DEBIAN/control" <<CONTROL
Package: postgresql-15-pg-tenancy
Version: $version
Architecture: amd64
Maintainer: pg_tenancy developers <pg-tenancy@users.noreply.invalid>
Depends: postgresql-15, libc6 (>= 2.34)
Section: database
Priority: optional
Installed-Size: $(du -sk "$build/usr" | cut -f1)
Description: schema-per-tenant multitenancy inside PostgreSQL 15
 pg_tenancy keeps the tenant registry and the tenant migrations in the
 database, applies them to every tenant schema safely, and provisions,
 renames and retires tenants from rows of managed tables.
CONTROL
  dpkg-deb --root-owner-group --build "$build" "$deb" >/dev/null
  echo "$deb"
else
  stage="$ROOT/target/package-build/pg$PG-stage"
  tarball="$out/pg_tenancy-$version-pg$PG-linux-x86_64.tar.gz"
  rm -rf "$stage" && mkdir -p "$stage/lib" "$stage/share/extension" "$stage/share/doc/pg_tenancy"
  cp "$build$libdir"/pg_tenancy.so "$stage/lib/"
  cp "$build$sharedir"/extension/pg_tenancy* "$stage/share/extension/"
  cat >"$stage/share/doc/pg_tenancy/README" <<README
pg_tenancy $version for PostgreSQL $PG (x86_64 Linux, glibc).
lib/pg_tenancy.so goes into the directory \`pg_config --pkglibdir\` prints;
share/extension/* goes into \`pg_config --sharedir\`/extension. Where both sit under one prefix
(<prefix>/lib and <prefix>/share), extract this tarball over <prefix>. Then, as a superuser:
CREATE EXTENSION pg_tenancy;
README
  tar -czf "$tarball" -C "$stage" lib share
  echo "$tarball"
fi
