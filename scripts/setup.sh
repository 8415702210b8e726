#!/usr/bin/env bash
# Idempotent set-up of a bare Debian bookworm machine (run as root): installs only what is missing.
set -euo pipefail

PGVER=15
PGRX_VERSION=0.18.1
PG_CONFIG=/usr/lib/postgresql/$PGVER/bin/pg_config
APT_PACKAGES="postgresql-$PGVER postgresql-server-dev-$PGVER libclang-dev clang pkg-config libssl-dev sudo"

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

if ! grep -qs "pg$PGVER" "$HOME/.pgrx/config.toml"; then
  log "cargo pgrx init --pg$PGVER"
  cargo pgrx init --pg$PGVER "$PG_CONFIG"
else
  log "pgrx already initialised for pg$PGVER"
fi

# The install step writes into the system PostgreSQL directories; nothing else is needed as root.
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy
log "done"
