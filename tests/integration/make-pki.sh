#!/usr/bin/env bash
# Builds the integration tests' PKI once per machine and source tree (shared by all tests,
# read-only for them; a test that revokes copies it first). Serialized with flock.
# usage: make-pki.sh SOURCE_DIR OUT_DIR
set -euo pipefail
src=$1
out=$2
mkdir -p "$(dirname "$out")"
exec 9>"$out.lock"
flock 9
# READY holds a digest of this script: a PKI made by an older version is made again
ver=$(sha256sum "$0" | cut -c1-16)
[ -f "$out/READY" ] && [ "$(cat "$out/READY")" = "$ver" ] && exit 0
rm -rf "$out"
pki="$src/deploy/pki.sh"
bash "$pki" init "$out" --name "HIE Test CA" 2>/dev/null
bash "$pki" issue "$out" --kind node --name node-1 2>/dev/null
for m in general-hospital st-mary-hospital riverside-clinic state-auditor unregistered-lab \
         suspended-clinic revoked-clinic; do
  bash "$pki" issue "$out" --kind member --name "$m" 2>/dev/null
done
bash "$pki" issue "$out" --kind member --name expired-clinic \
  --start 20200101000000Z --end 20200102000000Z 2>/dev/null
bash "$pki" issue "$out" --kind member --name future-clinic \
  --start 20990101000000Z --end 20991231000000Z 2>/dev/null
bash "$pki" issue "$out" --kind member --name wrongeku-clinic --eku server 2>/dev/null
bash "$pki" issue "$out" --kind member --name noeku-clinic --eku none 2>/dev/null
bash "$pki" revoke "$out" revoked-clinic 2>/dev/null
# A second, unrelated CA issuing a certificate with a registered organization's name.
bash "$pki" init "$out/other" --name "Rogue CA" 2>/dev/null
bash "$pki" issue "$out/other" --kind member --name general-hospital 2>/dev/null
printf '%s\n' "$ver" >"$out/READY"
