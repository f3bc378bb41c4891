#!/usr/bin/env bash
# dev-pki.sh DIR - create a ready-to-use development PKI for hiebroker in DIR with pki.sh:
# the CA, node certificates node-1..node-3, the member certificates below and a CRL.
# If DIR/ca/ca.key already exists, it says so and exits 0 without touching anything.
set -euo pipefail

usage() {
	printf 'usage: %s DIR\n' "${0##*/}"
}

if [[ $# -eq 1 && ($1 == help || $1 == -h || $1 == --help) ]]; then
	usage
	exit 0
fi
if [[ $# -ne 1 || -z $1 ]]; then
	printf 'dev-pki: expected exactly one argument, the pki directory\n' >&2
	usage >&2
	exit 2
fi

dir=$1
here=$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
pki() { bash "$here/pki.sh" "$@"; }

if [[ -e "$dir/ca/ca.key" ]]; then
	printf 'dev-pki: pki already exists in %s (ca key %s/ca/ca.key); nothing to do\n' "$dir" "$dir" >&2
	exit 0
fi

pki init "$dir" --name "HIE Dev CA"
for node in node-1 node-2 node-3; do
	pki issue "$dir" --kind node --name "$node"
done
for member in general-hospital st-mary-hospital riverside-clinic county-lab state-auditor hie-operator; do
	pki issue "$dir" --kind member --name "$member"
done
pki crl "$dir"
printf 'dev-pki: development pki ready in %s (trust %s/ca/ca.crt, crl %s/ca/crl.pem)\n' \
	"$dir" "$dir" "$dir" >&2
