#!/usr/bin/env bash
# `make bench` / `make bench-quick` (QUICK=1): builds, starts a private cluster as postgres, runs
# bench/bench.py's phases and writes the report and its plots. Full: release build, BENCHMARKS.md and
# bench/plots/*.png. Quick: the debug build, tiny N, target/bench/BENCHMARKS-quick.md and target/bench/plots.
# The cluster runs with fsync on (cluster_start's fsync=off is for tests). BENCH_SCALE=100,1000,5000
# shortens the scale curve of a full run. BENCH_FIFTY=1 adds the 50 000-tenant run of the shipped set
# (BENCH_FIFTY_N tenants; hours). BENCH_ONLY=phase[,phase…] (shipped, fifty, peer, zabbix, scale,
# history) runs only those phases and rewrites the report from the results already there plus its
# own: `make bench-fifty` is BENCH_ONLY=fifty, `make bench-history` BENCH_ONLY=history.
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
QUICK=${QUICK:-0}
PORT=${BENCH_PORT:-28822}
work="$ROOT/target/bench"
if [ "$QUICK" = 1 ]; then export PROFILE=debug; flag=--quick; out="$work/BENCHMARKS-quick.md"; results="$work/results-quick"; plots="$work/plots"
else export PROFILE=release; flag=""; out="$ROOT/BENCHMARKS.md"; results="$work/results"; plots="$ROOT/bench/plots"; fi
mkdir -p "$results"

# The peer's client, Django and matplotlib, pinned, in a virtualenv under target/.
if [ ! -x "$work/venv/bin/python" ]; then
  python3 -m venv "$work/venv" || { apt-get install -y -qq python3-venv && python3 -m venv "$work/venv"; }
fi
"$work/venv/bin/pip" install -q --disable-pip-version-check -r bench/requirements.txt
py="$work/venv/bin/python"
rm -rf "$work/django" && cp -r bench/django "$work/django"

ONLY=${BENCH_ONLY:-}
case ",$ONLY," in ,,) ;; *) for p in ${ONLY//,/ }; do
  case "$p" in shipped|fifty|peer|zabbix|scale|history) ;; *) echo "BENCH_ONLY: no phase $p (shipped, fifty, peer, zabbix, scale, history)" >&2; exit 2 ;; esac
done ;; esac
# wants PHASE: whether this run measures PHASE (every phase but fifty when BENCH_ONLY is unset).
wants() {
  if [ -z "$ONLY" ]; then [ "$1" != fifty ] || [ "${BENCH_FIFTY:-0}" = 1 ]; else [[ ",$ONLY," == *",$1,"* ]]; fi
}

# The zabbix schema, as the one migration of a second build.
zdir="$ROOT/target/zabbix"
if wants zabbix && [ ! -s "$zdir/schema.sql" ]; then
  mkdir -p "$zdir"
  (cd "$zdir" && { apt-get download zabbix-server-pgsql >/dev/null 2>&1 || { apt-get update -qq && apt-get download zabbix-server-pgsql >/dev/null; }; })
  dpkg-deb -x "$zdir"/zabbix-server-pgsql_*.deb "$zdir/x"
  zcat "$zdir/x/usr/share/zabbix-server-pgsql/schema.sql.gz" > "$zdir/schema.sql"
fi
# The zabbix, scale and history phases register their migration sets in the database: a build
# that embeds none.
mkdir -p "$work/empty-set"

export PGBIN  # bench.py reports the server's version from it
dir=$(cluster_start bench "$PORT" "-c fsync=on")
trap 'cluster_stop bench >/dev/null 2>&1 || true' EXIT
args=(--host "$dir/sock" --port "$PORT" --results "$results" --django-dir "$work/django" --zabbix "$zdir/schema.sql" $flag)

# phase NAME TITLE: bench.py's phase NAME, when this run measures it.
phase() {
  if wants "$1"; then
    echo "== bench: $2"
    "$py" bench/bench.py "$1" "${args[@]}"
  fi
}
if wants shipped || wants fifty || wants peer; then
  install_extension
  phase shipped "shipped migration set ($PROFILE build)"
  phase fifty "${BENCH_FIFTY_N:-50000} tenants of the shipped set ($PROFILE build)"
  phase peer "django-tenants"
fi
if wants zabbix || wants scale || wants history; then
  echo "== bench: a build embedding no migrations (zabbix, scale curve, history curve; $PROFILE build)"
  TENANCY_MIGRATIONS_DIR="$work/empty-set" install_extension
  phase zabbix "zabbix schema as the one migration"
  phase scale "scale curve"
  phase history "history curve"
fi
"$py" bench/bench.py report "${args[@]}" --out "$out" --plots "$plots" --discussion bench/discussion.md
echo "== bench: report written to $out, plots in $plots"
