# Shared by the scripts: the PostgreSQL under test and throwaway clusters run as the postgres
# user (PostgreSQL refuses root), each on a private socket directory and port, never 5432.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"

# PG=NN picks the major under test: 15 is Debian's (the default); 14, 16, 17 and 18 are the
# relocatable builds scripts/setup.sh unpacks under target/pg/NN, each with a pgrx home of its own.
# PG15_FROM=pypi takes 15 from the same family of builds (the cross-major pg_upgrade test does).
PG=${PG:-15}
PG15_FROM=${PG15_FROM:-debian}
case "$PG" in 14|15|16|17|18) ;; *) echo "PG=$PG is not a supported major: 14, 15, 16, 17 or 18" >&2; exit 2 ;; esac
if [ "$PG" = 15 ] && [ "$PG15_FROM" != pypi ]; then
  PG_DEBIAN=yes
  PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
else
  PG_DEBIAN=no
  PG_CONFIG=$ROOT/target/pg/$PG/bin/pg_config
  export PGRX_HOME=$ROOT/target/pgrx-home/pg$PG
fi
# Plain cargo commands build for that major too (the default feature is pg15).
CARGO_PG=(--no-default-features --features "pg$PG")
if [ -x "$PG_CONFIG" ]; then
  PGBIN=$("$PG_CONFIG" --bindir)
  # .../lib/pgxs/src/makefiles/pgxs.mk -> .../lib/pgxs (pg_regress and pg_isolation_regress live below)
  PGXS_DIR=$(dirname "$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")")
fi

# A folder for clusters that the postgres user can reach: target/ when every parent directory is
# traversable by postgres, otherwise one under /tmp.
cluster_base() {
  local base="$ROOT/target/clusters"
  mkdir -p "$base"
  if ! sudo -u postgres test -x "$base" 2>/dev/null; then
    base="/tmp/pg_tenancy-clusters-$(echo "$ROOT" | cksum | cut -d' ' -f1)"
    mkdir -p "$base"
  fi
  chown postgres: "$base"
  echo "$base"
}

as_pg() { sudo -u postgres -- "$@"; }

# cluster_start NAME PORT [SERVER OPTIONS]: a fresh cluster in $(cluster_base)/NAME with default
# settings (plus the options given); prints its directory.
cluster_start() {
  local name=$1 port=$2 extra=${3:-} dir
  dir="$(cluster_base)/$name"
  cluster_stop "$name" >/dev/null 2>&1 || true
  rm -rf "$dir"
  as_pg mkdir -p "$dir/sock"
  as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 ${INITDB_FLAGS:-} >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  echo "-p $port -k $dir/sock -c listen_addresses='' -c fsync=off $extra" | as_pg tee "$dir/opts" >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$(cat "$dir/opts")" start >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }
  echo "$dir"
}

cluster_stop() {
  local dir
  dir="$(cluster_base)/$1"
  [ -f "$dir/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop
  return 0
}

# Installs the extension (debug build unless PROFILE=release) into the PostgreSQL under test.
install_extension() {
  local flags=()
  [ "${PROFILE:-debug}" = release ] && flags+=(--release)
  (cd "$ROOT" && cargo pgrx install --pg-config "$PG_CONFIG" "${flags[@]}" >/dev/null)
}

# cluster_restart NAME: start a stopped (or crashed) cluster again with its previous options.
cluster_restart() {
  local dir
  dir="$(cluster_base)/$1"
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 120 -o "$(cat "$dir/opts")" start >/dev/null
}

# skip_without_citus NAME: exits 77 after "NAME: skipped: <why>" when the PostgreSQL under test has
# no Citus installed (detected only: nothing here builds or fetches Citus).
skip_without_citus() {
  local control library missing=""
  control="$("$PG_CONFIG" --sharedir)/extension/citus.control"
  library="$("$PG_CONFIG" --pkglibdir)/citus.so"
  [ -f "$control" ] || missing="no $control"
  [ -f "$library" ] || missing="${missing:+$missing, }no $library"
  if [ -n "$missing" ]; then
    echo "$1: skipped: Citus is not installed for PostgreSQL $PG ($missing)"
    exit 77
  fi
}
