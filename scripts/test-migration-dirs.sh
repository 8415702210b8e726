#!/usr/bin/env bash
# TENANCY_MIGRATIONS_DIR: another folder is embedded instead of tenant_migrations/, and a bad
# folder fails the build with a message naming the file.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

# The alternative folder is what gets compiled in (checked by a unit test against the folder).
# --exact, and the count checked, so a renamed or moved test cannot turn this into a no-op.
out=$(TENANCY_MIGRATIONS_DIR=tests/fixtures/migrations_alt \
  cargo test --lib "${CARGO_PG[@]}" -- --exact db::known_set::tests::embedded_set_is_the_configured_folder 2>&1) \
  || { echo "$out" | tail -20 >&2; exit 1; }
grep -q "test result: ok. 1 passed" <<<"$out" \
  || { echo "FAIL: the embedded-set test did not run:" >&2; echo "$out" | tail -5 >&2; exit 1; }
echo "ok: tests/fixtures/migrations_alt is the embedded set"

expect_build_failure() {
  local dir=$1 needle=$2 out
  if out=$(TENANCY_MIGRATIONS_DIR=$dir cargo check --lib "${CARGO_PG[@]}" 2>&1); then
    echo "FAIL: build with TENANCY_MIGRATIONS_DIR=$dir succeeded" >&2; exit 1
  fi
  if ! grep -q "$needle" <<<"$out"; then
    echo "FAIL: build error for $dir does not name $needle:" >&2; echo "$out" | tail -20 >&2; exit 1
  fi
  echo "ok: $dir fails the build naming $needle"
}
expect_build_failure tests/fixtures/migrations_bad_name 1x_broken.sql
expect_build_failure tests/fixtures/migrations_duplicate 1_b.sql
expect_build_failure tests/fixtures/migrations_concurrently 0002_index.sql
expect_build_failure tests/fixtures/migrations_set_role "0002_role.sql: 42501: migration 0002_role: statement 2"
expect_build_failure tests/fixtures/migrations_do_commit "0002_batches.sql: 25001: migration 0002_batches: statement 2 cannot run inside a transaction block (COMMIT inside a DO body)"
# Back to the shipped folder for the steps that follow.
cargo check --lib -q "${CARGO_PG[@]}"
