#!/usr/bin/env bash
# install-bench-deps.sh [pg|rabbitmq|all] - installs what the external baselines of the
# benchmarks need on Debian 12 (bookworm). Default: all.
#   pg        bench/bench_mpi_pg (PDQ baseline): the PostgreSQL 15 server and client, and
#             libpq's headers to build it. pg_trgm and fuzzystrmatch ship in postgresql-15
#             itself on bookworm (postgresql-contrib is only a metapackage that depends on it).
#   rabbitmq  bench/bench_push_rabbitmq (durable push baseline, issue 5): rabbitmq-server
#             (3.10, with Erlang 25) and librabbitmq-c's headers (librabbitmq-dev, which has
#             amqp_ssl_socket) to build it.
# Idempotent: apt is only called when something is missing. Needs root (or sudo).
# Note: the Debian packages create, and may start, the system services (PostgreSQL cluster
# 15/main on port 5432, RabbitMQ on 5672 with epmd on 4369) unless policy-rc.d forbids it; the
# benchmarks do not use them: each runs its own server in a temporary directory on other ports.
set -euo pipefail
what=${1:-all}
case "$what" in
  pg) PKGS=(postgresql-15 postgresql-client-15 libpq-dev pkg-config) ;;
  rabbitmq) PKGS=(rabbitmq-server librabbitmq-dev pkg-config) ;;
  all) PKGS=(postgresql-15 postgresql-client-15 libpq-dev rabbitmq-server librabbitmq-dev
             pkg-config) ;;
  *) echo "usage: install-bench-deps.sh [pg|rabbitmq|all]" >&2; exit 2 ;;
esac
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-bench-deps: all ${#PKGS[@]} packages present ($what)"
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
if [ "$what" != rabbitmq ]; then
  for ext in pg_trgm fuzzystrmatch; do
    if [ ! -f "/usr/share/postgresql/15/extension/$ext.control" ]; then
      echo "install-bench-deps: extension $ext missing after install" >&2
      exit 1
    fi
  done
fi
if [ "$what" != pg ]; then
  for f in /usr/lib/rabbitmq/bin/rabbitmq-server /usr/include/amqp_ssl_socket.h; do
    if [ ! -e "$f" ]; then
      echo "install-bench-deps: $f missing after install" >&2
      exit 1
    fi
  done
fi
echo "install-bench-deps: done"
