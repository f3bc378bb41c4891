#!/usr/bin/env bash
# dev-pki.sh DIR - create a ready-to-use development PKI for hiebroker in DIR with pki.sh:
# the CA, node certificates node-1..node-3, the member certificates below and a CRL.
# Run again, it issues only the certificates that are missing and writes the CRL again.
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

# A rerun (also after a run that stopped part way) issues only what is missing, then writes
# the CRL again; an existing CA and certificates are never touched.
if [[ -e "$dir/ca/ca.key" ]]; then
	printf 'dev-pki: ca exists in %s (ca key %s/ca/ca.key); issuing what is missing\n' \
		"$dir" "$dir" >&2
else
	pki init "$dir" --name "HIE Dev CA"
fi
# issue KIND NAME: unless NAME's certificate exists; a key left without one (a run stopped
# between the two) is a development key nothing uses: it is replaced
issue() {
	[[ ! -e "$dir/certs/$2.crt" ]] || return 0
	rm -f -- "$dir/certs/$2.key"
	pki issue "$dir" --kind "$1" --name "$2"
}
for node in node-1 node-2 node-3; do
	issue node "$node"
done
for member in general-hospital st-mary-hospital riverside-clinic county-lab state-auditor hie-operator; do
	issue member "$member"
done
pki crl "$dir"
printf 'dev-pki: development pki ready in %s (trust %s/ca/ca.crt, crl %s/ca/crl.pem)\n' \
	"$dir" "$dir" "$dir" >&2
