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
current_skipped=no
skipped=() # "step: why", one per skipped step
step() {
  [ -n "$current" ] && [ "$current_skipped" = no ] && passed=$((passed + 1))
  current=$*
  current_skipped=no
  printf '\n=== %s ===\n' "$*"
}
# skippable NAME COMMAND...: runs a step's test that may skip itself: it exits 77 after printing
# "NAME: skipped: <why>" when what it needs is not there (Citus, for one). The step then counts
# as skipped, never as passed; any other non-zero exit fails the suite as usual.
skippable() {
  local name=$1 log rc why
  shift
  log=$(mktemp)
  set +e
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  why=$(sed -n "s/^$name: skipped: //p" "$log" | head -1)
  rm -f "$log"
  if [ "$rc" -eq 77 ]; then
    current_skipped=yes
    skipped+=("$current: ${why:-exited 77 without saying why}")
    return 0
  fi
  return "$rc"
}
skip_summary() {
  local s
  [ ${#skipped[@]} -eq 0 ] && return 0
  echo "skipped steps:"
  for s in "${skipped[@]}"; do echo "  $s"; done
}
trap 'rc=$?; if [ $rc -ne 0 ]; then echo; echo "make test failed in step: $current"; skip_summary; echo "steps: $passed passed, 1 failed, ${#skipped[@]} skipped"; fi' EXIT

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

step "snapshots: sign-ups built from the proven snapshot, migrate_all over them, rebuilds beside sign-ups (real commits)"
bash tests/integration/snapshot.sh

step "generator round trips on Debian's zabbix schema"
bash tests/integration/generator.sh

step "hardening: extension scripts, dump and restore, bypassed triggers, DROP EXTENSION"
bash tests/integration/hardening.sh

step "concurrency: 24 real clients sign up tenants and use tenants while they are dropped (no 40P01)"
bash tests/integration/concurrency.sh

step "Citus: a coordinator and two workers, tenants as distributed schemas (skipped without Citus)"
skippable citus bash tests/integration/citus.sh

step "upgrades from every released version (ALTER EXTENSION UPDATE vs a fresh install)"
bash tests/integration/upgrade.sh

if [ "$PG" = 15 ]; then
step "pg_upgrade 15 -> 15: tenants, managed and attribute tables, a half-done fleet run survive with no manual step"
UPGRADE_FROM=15 UPGRADE_TO=15 bash tests/integration/pg_upgrade.sh
fi

step "benchmark harness (make bench-quick)"
QUICK=1 bash bench/run.sh
fi
[ "$current_skipped" = no ] && passed=$((passed + 1))
echo
skip_summary
echo "steps: $passed passed, 0 failed, ${#skipped[@]} skipped"
