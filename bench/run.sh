#!/usr/bin/env bash
# `make bench` / `make bench-quick` (QUICK=1): builds, starts a private cluster as postgres, runs
# bench/bench.py's phases and writes the report. Full: release build, BENCHMARKS.md. Quick: the
# debug build, tiny N, target/bench/BENCHMARKS-quick.md.
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
QUICK=${QUICK:-0}
PORT=${BENCH_PORT:-28822}
work="$ROOT/target/bench"
if [ "$QUICK" = 1 ]; then export PROFILE=debug; flag=--quick; out="$work/BENCHMARKS-quick.md"; results="$work/results-quick"
else export PROFILE=release; flag=""; out="$ROOT/BENCHMARKS.md"; results="$work/results"; fi
mkdir -p "$results"

# The peer's client and Django, pinned, in a virtualenv under target/.
if [ ! -x "$work/venv/bin/python" ]; then
  python3 -m venv "$work/venv" || { apt-get install -y -qq python3-venv && python3 -m venv "$work/venv"; }
fi
"$work/venv/bin/pip" install -q --disable-pip-version-check -r bench/requirements.txt
py="$work/venv/bin/python"
rm -rf "$work/django" && cp -r bench/django "$work/django"

# The zabbix schema, as the one migration of a second build.
zdir="$ROOT/target/zabbix"
if [ ! -s "$zdir/schema.sql" ]; then
  mkdir -p "$zdir"
  (cd "$zdir" && { apt-get download zabbix-server-pgsql >/dev/null 2>&1 || { apt-get update -qq && apt-get download zabbix-server-pgsql >/dev/null; }; })
  dpkg-deb -x "$zdir"/zabbix-server-pgsql_*.deb "$zdir/x"
  zcat "$zdir/x/usr/share/zabbix-server-pgsql/schema.sql.gz" > "$zdir/schema.sql"
fi
mkdir -p "$work/zabbix-set"
cp "$zdir/schema.sql" "$work/zabbix-set/0001_zabbix.sql"

export PGBIN  # bench.py reports the server's version from it
dir=$(cluster_start bench "$PORT")
trap 'cluster_stop bench >/dev/null 2>&1 || true' EXIT
args=(--host "$dir/sock" --port "$PORT" --results "$results" --django-dir "$work/django" $flag)

echo "== bench: shipped migration set ($PROFILE build)"
install_extension
"$py" bench/bench.py shipped "${args[@]}"
echo "== bench: zabbix schema as the one migration"
TENANCY_MIGRATIONS_DIR="$work/zabbix-set" install_extension
"$py" bench/bench.py zabbix "${args[@]}"
echo "== bench: django-tenants"
install_extension
"$py" bench/bench.py peer "${args[@]}"
"$py" bench/bench.py report "${args[@]}" --out "$out" --discussion bench/discussion.md
echo "== bench: report written to $out"
