#!/usr/bin/env bash
# Everything `make test` runs, in order, failing on the first failure. PG=NN picks the major;
# SUITE=core runs only what depends on it (in-database, golden and trust-recipe tests), for the CI matrix.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
SUITE=${SUITE:-full}
case "$SUITE" in full|core) ;; *) echo "SUITE=$SUITE: full or core" >&2; exit 2 ;; esac
echo "make test: PostgreSQL $PG ($("$PG_CONFIG" --version)), suite $SUITE"
passed=0
current=""
step() {
  [ -n "$current" ] && passed=$((passed + 1))
  current=$*
  printf '\n=== %s ===\n' "$*"
}
trap 'rc=$?; if [ $rc -ne 0 ]; then echo; echo "make test failed in step: $current"; echo "steps: $passed passed, 1 failed"; fi' EXIT

if [ "$SUITE" = full ]; then
step "format, lints, one version everywhere"
cargo fmt --check
cargo clippy --all-targets "${CARGO_PG[@]}" -- -D warnings
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
for f in META.json; do
  grep -q "\"version\": \"$version\"" "$f" || { echo "$f does not say version $version" >&2; exit 1; }
done

step "pure unit tests (no database)"
cargo test --lib "${CARGO_PG[@]}" -- rules::

step "build-time checks of the migration folder"
bash scripts/test-migration-dirs.sh
fi

step "in-database tests (cargo pgrx test, PostgreSQL $PG)"
pgdata="$(cluster_base)/pgrx-test-$PG"
cargo pgrx test "pg$PG" --runas postgres --pgdata "$pgdata"

step "install and golden tests (pg_regress, pg_isolation_regress)"
install_extension
bash scripts/regress.sh

# In both suites: who may do what depends on the major (public's CREATE, role membership options).
step "trust recipe: the app provisions and uses tenants, a DBA migrates as superuser (real LOGIN roles)"
bash tests/integration/trust.sh

if [ "$SUITE" = full ]; then
step "fleet integration tests (1 000 tenants, real clients, killed backend, crash)"
bash tests/integration/fleet.sh

step "migrations that need their own transaction: enum values through migrate_all, sign-ups, withdrawing (real commits)"
bash tests/integration/transactions.sh

step "generator round trips on Debian's zabbix schema"
bash tests/integration/generator.sh

step "hardening: extension scripts, dump and restore, bypassed triggers, DROP EXTENSION"
bash tests/integration/hardening.sh

step "concurrency: 24 real clients sign up tenants and use tenants while they are dropped (no 40P01)"
bash tests/integration/concurrency.sh

step "upgrades from every released version (ALTER EXTENSION UPDATE vs a fresh install)"
bash tests/integration/upgrade.sh

if [ "$PG" = 15 ]; then
step "pg_upgrade 15 -> 15: tenants, managed and attribute tables, a half-done fleet run survive with no manual step"
UPGRADE_FROM=15 UPGRADE_TO=15 bash tests/integration/pg_upgrade.sh
fi

step "benchmark harness (make bench-quick)"
QUICK=1 bash bench/run.sh
fi
passed=$((passed + 1))
echo
echo "steps: $passed passed, 0 failed"
