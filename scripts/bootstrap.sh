#!/usr/bin/env bash
# Installs, idempotently, what a fresh Debian 12 machine lacks to build and run pg_erasure, and
# starts the Debian PostgreSQL 15 cluster. Shared by `make demo`, `make test` and `.ci/run`.
set -euo pipefail

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PGRX_VERSION=0.18.1
SUDO=""
AS_POSTGRES=(runuser -u postgres --)
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
    AS_POSTGRES=(sudo -u postgres)
fi

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

packages=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron libclang-dev clang pkg-config make)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -q wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi

if [ "$(cargo pgrx --version 2>/dev/null | awk '{print $2}')" != "$PGRX_VERSION" ]; then
    say "installing cargo-pgrx $PGRX_VERSION (takes a few minutes)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi
if ! grep -q "pg15" "${PGRX_HOME:-$HOME/.pgrx}/config.toml" 2>/dev/null; then
    say "pointing cargo-pgrx at the Debian PostgreSQL 15"
    cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi

# The Debian cluster runs as user postgres; the calling user gets a superuser role of its
# own name so psql and the tests connect over the local socket with peer authentication.
if ! pg_lsclusters -h 2>/dev/null | grep -q "^15 *main"; then
    say "creating the PostgreSQL 15 cluster"
    $SUDO pg_createcluster 15 main >/dev/null
fi
if ! pg_lsclusters -h | grep -q "^15 *main .*online"; then
    say "starting PostgreSQL 15"
    $SUDO pg_ctlcluster 15 main start
fi
me=$(id -un)
if ! "${AS_POSTGRES[@]}" psql -Atqc "SELECT 1 FROM pg_roles WHERE rolname = '$me'" | grep -q 1; then
    "${AS_POSTGRES[@]}" createuser --superuser "$me"
fi
if ! "${AS_POSTGRES[@]}" psql -Atqc "SELECT 1 FROM pg_database WHERE datname = '$me'" | grep -q 1; then
    "${AS_POSTGRES[@]}" createdb --owner "$me" "$me"
fi
