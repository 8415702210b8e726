# Shared by the integration tests: psql against the test's cluster, checks, and the closing line
# ("NAME: N passed, M failed") that CI reads.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
cd "$ROOT"
passed=0 failed=0
q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
check() { # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok: $1"
  else failed=$((failed + 1)); echo "FAIL: $1: expected [$2], got [$3]"; fi
}
finish() {
  echo
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
