#!/usr/bin/env bash
# `make demo`: build and install the extension, start a throwaway cluster under target/ (as the
# postgres user, private socket and port), and walk through pg_tenancy's core as a tutorial.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
PORT=${DEMO_PORT:-28815}

echo "== building and installing pg_tenancy (${PROFILE:-debug} build) =="
install_extension
echo "== starting a throwaway PostgreSQL 15 cluster on port $PORT =="
dir=$(cluster_start demo "$PORT")
psql_demo() { "$PGBIN/psql" -X -h "$dir/sock" -p "$PORT" -U postgres "$@"; }
psql_demo -q -d postgres -c "CREATE DATABASE demo"
psql_demo -d demo -v ON_ERROR_STOP=0 -f scripts/demo.sql

cat <<TXT

== the demo cluster is still running ==
Connect with:  psql -h $dir/sock -p $PORT -U postgres demo
Stop it with:  make demo-stop
TXT
