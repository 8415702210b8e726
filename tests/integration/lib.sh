# Shared by the integration tests: psql against the test's cluster, checks, and the closing line
# ("NAME: N passed, M failed") that CI reads.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
cd "$ROOT"
passed=0 failed=0 known=0
q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
check() { # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok: $1"
  else failed=$((failed + 1)); echo "FAIL: $1: expected [$2], got [$3]"; fi
}
# known_failure ISSUE NAME EXPECTED ACTUAL: a defect an open issue fixes, reported on its own
# line and counted neither passed nor failed; once it passes it counts as passed and says so.
known_failure() {
  if [ "$3" = "$4" ]; then passed=$((passed + 1)); echo "ok: $2 (was a known failure of $1: drop the mark)"
  else known=$((known + 1)); echo "KNOWN FAILURE ($1): $2: expected [$3], got [$4]"; fi
}
finish() {
  echo
  [ "$known" -eq 0 ] || echo "$1: $known known failures (reported above, fixed by open issues)"
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
