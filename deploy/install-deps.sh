#!/usr/bin/env bash
# Installs every Debian (bookworm) package hiebroker needs to build, test and run.
# Idempotent: apt is only called when something is missing. Needs root (or sudo).
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config git
  libzmq3-dev liblmdb-dev lmdb-utils libprotobuf-c-dev protobuf-c-compiler
  libssl-dev openssl libsodium-dev libcyaml-dev libyaml-dev libmicrohttpd-dev libjansson-dev
  libcriterion-dev libutf8proc-dev libcsv-dev curl procps iproute2
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: need root (or sudo) to install ${missing[*]}" >&2
    exit 1
  fi
  SUDO="sudo"
  [ -t 0 ] || SUDO="sudo -n" # without a terminal (CI) a password prompt would hang
fi
echo "install-deps: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
