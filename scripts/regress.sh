#!/usr/bin/env bash
# Golden tests against the installed extension on a throwaway cluster (as postgres, private
# socket and port): pg_regress for SQL output, pg_isolation_regress for real concurrent sessions.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
PORT=${REGRESS_PORT:-28816}
dir=$(cluster_start regress "$PORT")
trap 'cluster_stop regress >/dev/null 2>&1 || true' EXIT
out="$ROOT/target/regress"
rm -rf "$out" && mkdir -p "$out"
status=0

# Each file makes a database of its own (see the top of each); the schedule lists them.
"$PGXS_DIR/src/test/regress/pg_regress" --bindir="$PGBIN" --host="$dir/sock" --port="$PORT" \
  --user=postgres --inputdir=tests/regress --outputdir="$out/regress" \
  --dbname=tenancy_regress --schedule=tests/regress/schedule || status=1

specs=$(cd tests/isolation/specs && ls *.spec | sed 's/\.spec$//')
"$PGXS_DIR/src/test/isolation/pg_isolation_regress" --bindir="$PGBIN" --host="$dir/sock" --port="$PORT" \
  --user=postgres --inputdir=tests/isolation --outputdir="$out/isolation" \
  --dbname=tenancy_isolation --load-extension=pg_tenancy $specs || status=1

if [ $status -ne 0 ]; then
  for f in "$out"/*/regression.diffs; do [ -f "$f" ] && cat "$f"; done
fi
exit $status
