#!/usr/bin/env bash
# Installs what the PostgreSQL baseline of the PDQ benchmark (bench/bench_mpi_pg) needs on
# Debian 12 (bookworm): the PostgreSQL 15 server and client, and libpq's headers to build it.
# pg_trgm and fuzzystrmatch ship in postgresql-15 itself on bookworm (postgresql-contrib is
# only a metapackage that depends on it), so no separate contrib package is needed.
# Idempotent: apt is only called when something is missing. Needs root (or sudo).
# Note: the Debian package creates and may start the system cluster 15/main on port 5432; the
# benchmark does not use it (it runs its own cluster in a temporary directory on another port).
set -euo pipefail
PKGS=(postgresql-15 postgresql-client-15 libpq-dev pkg-config)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-bench-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-bench-deps: need root (or sudo) to install ${missing[*]}" >&2
    exit 1
  fi
  SUDO="sudo -n"
fi
echo "install-bench-deps: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
for ext in pg_trgm fuzzystrmatch; do
  if [ ! -f "/usr/share/postgresql/15/extension/$ext.control" ]; then
    echo "install-bench-deps: extension $ext missing after install" >&2
    exit 1
  fi
done
echo "install-bench-deps: done"
