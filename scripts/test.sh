#!/usr/bin/env bash
# Everything `make test` runs, in order, failing on the first failure.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
passed=0
current=""
step() {
  [ -n "$current" ] && passed=$((passed + 1))
  current=$*
  printf '\n=== %s ===\n' "$*"
}
trap 'rc=$?; if [ $rc -ne 0 ]; then echo; echo "make test failed in step: $current"; echo "steps: $passed passed, 1 failed"; fi' EXIT

step "format and lints"
cargo fmt --check
cargo clippy --all-targets -- -D warnings

step "pure unit tests (no database)"
cargo test --lib -- rules::

step "build-time checks of the migration folder"
bash scripts/test-migration-dirs.sh

step "in-database tests (cargo pgrx test)"
pgdata="$(cluster_base)/pgrx-test"
cargo pgrx test pg15 --runas postgres --pgdata "$pgdata"

step "install and golden tests (pg_regress, pg_isolation_regress)"
install_extension
bash scripts/regress.sh

step "fleet integration tests (1 000 tenants, real clients, killed backend, crash)"
bash tests/integration/fleet.sh

step "generator round trips on Debian's zabbix schema"
bash tests/integration/generator.sh

step "hardening: extension scripts, dump and restore, bypassed triggers, DROP EXTENSION"
bash tests/integration/hardening.sh

step "upgrades from every released version (ALTER EXTENSION UPDATE vs a fresh install)"
bash tests/integration/upgrade.sh

step "benchmark harness (make bench-quick)"
QUICK=1 bash bench/run.sh
passed=$((passed + 1))
echo
echo "steps: $passed passed, 0 failed"
