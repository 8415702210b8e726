#!/usr/bin/env bash
# Native foreign keys vs pg_tenancy's shared references (issue 15), see bench/shared_refs.py.
# Run under the shared database lock: flock /tmp/pg_tenancy-db.lock bash bench/shared_refs.sh
# SIZES=100,1000,5000 ROUNDS=6 PROFILE=release|debug. fsync stays on (the server's default).
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
PORT=${BENCH_PORT:-28873}
py=${BENCH_PYTHON:-$ROOT/target/bench/venv/bin/python}
out="$ROOT/target/bench/shared_refs.json"
mkdir -p "$(dirname "$out")"
install_extension
# cluster_start turns fsync off for test clusters; the benchmark turns it back on.
dir=$(cluster_start bench-sr "$PORT" "-c fsync=on")
trap 'cluster_stop bench-sr >/dev/null 2>&1 || true' EXIT
"$py" bench/shared_refs.py --host "$dir/sock" --port "$PORT" --sizes "${SIZES:-100,1000}" \
  --rounds "${ROUNDS:-6}" --out "$out"
echo "== results in $out"
