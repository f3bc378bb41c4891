#!/usr/bin/env bash
# pki.sh - development/operator PKI for hiebroker (HIE nodes and members, mutual TLS 1.3).
#
# Uses only the openssl CLI (OpenSSL 3.0+). Certificates are signed with `openssl ca`, which
# keeps its own database (index.txt, serial, crlnumber) so that certificates can be revoked
# and CRLs regenerated. Layout of DIR:
#
#   DIR/ca/ca.key        CA private key, EC P-256, mode 0600
#   DIR/ca/ca.crt        self-signed CA certificate (trust anchor for nodes and members)
#   DIR/ca/crl.pem       current CRL
#   DIR/ca/openssl.cnf   `openssl ca` configuration; its paths are relative to DIR/ca,
#                        so run openssl from inside DIR/ca if you use it by hand
#   DIR/ca/index.txt, serial, crlnumber, newcerts/   the `openssl ca` database
#   DIR/certs/STEM.key   issued private keys (0600), DIR/certs/STEM.crt issued certificates
#
# Exit status: 0 success, 1 operation failed or refused, 2 bad arguments.
set -euo pipefail

PROG=${0##*/}
OPENSSL=${OPENSSL:-openssl}
CA_DAYS=3650
CRL_DAYS_DEFAULT=30
LEAF_DAYS_DEFAULT=825
NAME_RE='^[a-z0-9][a-z0-9._-]{0,62}$'
STEM_RE='^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'
WORK=""

usage() {
	cat <<EOF
usage: $PROG init DIR [--name "HIE Dev CA"]
       $PROG issue DIR --kind node|member --name NAME [--days N] [--start YYYYMMDDHHMMSSZ] [--end YYYYMMDDHHMMSSZ] [--eku client|server|both|none] [--out-name FILE_STEM] [--san DNS:host,IP:addr] [--key ec|rsa]
       $PROG revoke DIR STEM [--reason REASON]
       $PROG crl DIR [--days N | --until YYYYMMDDHHMMSSZ]
       $PROG help

  init    create the CA in DIR/ca (ca.key, ca.crt valid 10 years, openssl.cnf, database and
          an empty crl.pem valid 30 days). Refuses if DIR/ca/ca.key already exists.
  issue   create DIR/certs/STEM.key and DIR/certs/STEM.crt signed by the CA (STEM defaults
          to NAME). NAME is the organization id (member) or node id (node) and must match
          $NAME_RE. Subject is /O=HIE Members/CN=NAME or /O=HIE Nodes/CN=NAME.
          Default EKU: member=client (clientAuth), node=both (serverAuth,clientAuth).
          Node certificates carry subjectAltName DNS:NAME,DNS:localhost,IP:127.0.0.1, and
          the names members reach the node by: --san DNS:hie.example.org,IP:10.0.0.5 (a
          member checks the address it connects to against these).
          Validity: --days N from now (default $LEAF_DAYS_DEFAULT), or explicit --start/--end in UTC
          (--start alone lasts --days from the start). Refuses to overwrite STEM.crt/STEM.key.
          --key: EC P-256 (default) or RSA 3072. A node that must offer the TLS 1.2 ITI-19
          suites ECDHE-RSA and DHE-RSA (tls.min_version "1.2") needs an RSA certificate;
          members on TLS 1.3 or ECDSA suites do not.
  revoke  revoke DIR/certs/STEM.crt in the CA database and regenerate DIR/ca/crl.pem.
          REASON: unspecified keyCompromise CACompromise affiliationChanged superseded
          cessationOfOperation certificateHold.
  crl     regenerate DIR/ca/crl.pem, valid --days N (default $CRL_DAYS_DEFAULT; a revoke
          renews it for the days last chosen here), or --until a UTC time. Renew it well
          before it expires: a node refuses every member once its CRL has expired.

Set OPENSSL to use another openssl binary. Exit status: 0 ok, 1 failed or refused, 2 bad arguments.
EOF
}

say() { printf 'pki: %s\n' "$*" >&2; }
die() {
	printf 'pki: %s\n' "$*" >&2
	exit 1
}
bad() {
	printf 'pki: %s\n' "$*" >&2
	printf "pki: run '%s help' for usage\n" "$PROG" >&2
	exit 2
}

cleanup() {
	if [[ -n $WORK && -d $WORK ]]; then
		rm -rf -- "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# make_work PARENT: private scratch directory under PARENT (same file system as the final
# files, so private keys never touch /tmp and renames are atomic).
make_work() {
	WORK=$(mktemp -d "$1/.pki-tmp.XXXXXX") || die "cannot create a temporary directory in $1"
}

# ossl CADIR WHAT ARGS...: run openssl inside CADIR (openssl.cnf paths are relative to it),
# silently on success; on failure show openssl's output and exit 1.
ossl() {
	local cadir=$1 what=$2 log
	shift 2
	log="$WORK/openssl.log"
	if ! (CDPATH='' cd -- "$cadir" && "$OPENSSL" "$@") >"$log" 2>&1 </dev/null; then
		printf 'pki: openssl failed to %s:\n' "$what" >&2
		sed 's/^/pki:   /' -- "$log" >&2
		exit 1
	fi
}

# ossl_out CADIR ARGS...: run openssl inside CADIR and print its stdout (stderr dropped).
ossl_out() {
	local cadir=$1
	shift
	(CDPATH='' cd -- "$cadir" && "$OPENSSL" "$@") 2>/dev/null </dev/null
}

absdir() { (CDPATH='' cd -- "$1" && pwd); }

# Display form of DIR for messages: as given, without trailing slashes.
disp_dir() {
	local d=$1
	while [[ ${#d} -gt 1 && $d == */ ]]; do d=${d%/}; done
	printf '%s' "$d"
}

need_value() { # OPTION ARGC
	[[ $2 -ge 2 ]] || bad "$1 needs a value"
}

check_days() { # OPTION VALUE
	if [[ ! $2 =~ ^[0-9]{1,6}$ ]] || ((10#$2 < 1 || 10#$2 > 36500)); then
		bad "$1 must be a whole number of days between 1 and 36500, got '$2'"
	fi
}

# ts_epoch YYYYMMDDHHMMSSZ -> seconds since the epoch; fails on a malformed or impossible time.
ts_epoch() {
	local t=$1 e
	[[ $t =~ ^([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})Z$ ]] || return 1
	((10#${BASH_REMATCH[1]} >= 1950)) || return 1
	e=$(date -u -d "${BASH_REMATCH[1]}-${BASH_REMATCH[2]}-${BASH_REMATCH[3]} ${BASH_REMATCH[4]}:${BASH_REMATCH[5]}:${BASH_REMATCH[6]} UTC" +%s 2>/dev/null) || return 1
	[[ $(date -u -d "@$e" +%Y%m%d%H%M%SZ) == "$t" ]] || return 1
	printf '%s\n' "$e"
}

epoch_ts() { date -u -d "@$1" +%Y%m%d%H%M%SZ; }

# Escape a value for openssl's -subj syntax (/type=value/...).
subj_escape() {
	local v=$1
	v=${v//\\/\\\\}
	v=${v//\//\\/}
	v=${v//+/\\+}
	printf '%s' "$v"
}

# require_ca DIR: check DIR holds a CA made by init; sets CA_DIR (absolute).
require_ca() {
	local dir=$1 d
	d=$(disp_dir "$dir")
	[[ -d $dir ]] || die "no such directory: $d"
	CA_DIR="$(absdir "$dir")/ca"
	local f
	for f in ca.key ca.crt openssl.cnf index.txt serial crlnumber; do
		[[ -f "$CA_DIR/$f" ]] || die "no ca in $d (missing $d/ca/$f; run '$PROG init $d' first)"
	done
	# one change of the ca's database at a time (serial, index.txt, crlnumber)
	exec 9>"$CA_DIR/.lock"
	flock -w 30 9 || die "the ca in $d is busy (another $PROG holds $d/ca/.lock)"
}

write_ca_config() { # FILE
	cat >"$1" <<'EOF'
# openssl configuration for the hiebroker development/operator CA, written by pki.sh.
# All paths are relative to this directory: run `openssl ca -config openssl.cnf ...` from here
# (pki.sh does). Certificates are normally issued with pki.sh, which supplies per-certificate
# extensions with -extfile; leaf_ext below is only the fallback for hand use.

[ ca ]
default_ca = CA_default

[ CA_default ]
dir              = .
database         = $dir/index.txt
new_certs_dir    = $dir/newcerts
certificate      = $dir/ca.crt
private_key      = $dir/ca.key
serial           = $dir/serial
crlnumber        = $dir/crlnumber
crl              = $dir/crl.pem
default_md       = sha256
default_days     = 825
default_crl_days = 30
policy           = policy_hie
# Several certificates may share a subject (re-issue, test variants of one organization).
unique_subject   = no
# Never copy extensions from requests: the CA decides every extension.
copy_extensions  = none
preserve         = no
email_in_dn      = no
name_opt         = ca_default
cert_opt         = ca_default
x509_extensions  = leaf_ext
crl_extensions   = crl_ext

[ policy_hie ]
organizationName = supplied
commonName       = supplied

[ req ]
distinguished_name = req_dn
string_mask        = utf8only
utf8               = yes
prompt             = no

[ req_dn ]
commonName = HIE Dev CA

[ v3_ca ]
basicConstraints     = critical, CA:TRUE, pathlen:0
keyUsage             = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ leaf_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ crl_ext ]
authorityKeyIdentifier = keyid:always
EOF
}

gen_key() { # CADIR OUTFILE WHAT [ec|rsa]
	(
		umask 077
		if [[ ${4:-ec} == rsa ]]; then
			ossl "$1" "generate the $3 key" genpkey -algorithm RSA \
				-pkeyopt rsa_keygen_bits:3072 -out "$2"
		else
			ossl "$1" "generate the $3 key" genpkey -algorithm EC \
				-pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve -out "$2"
		fi
	)
	chmod 600 -- "$2"
}

# gen_crl CADIR DAYS [UNTIL]: write CADIR/crl.pem (atomically, via a file in $WORK), valid
# from an hour ago (a node whose clock is a little behind the CA's must not see it "not yet
# valid", which refuses every member) for DAYS days, or until UNTIL (YYYYMMDDHHMMSSZ).
# The validity is kept in CADIR/crl.days, so a revoke renews the CRL for as long as the
# operator last chose.
gen_crl() {
	local cadir=$1 days=$2 until=${3:-} last now
	now=$(date -u +%s)
	last=$(epoch_ts $((now - 3600)))
	local vargs=(-crl_lastupdate "$last" -crldays "$days")
	if [[ -n $until ]]; then
		local ue
		ue=$(ts_epoch "$until")
		# an hour ago, or (a CRL that is already over, for tests) an hour before its end
		((ue - 3600 >= now - 3600)) || last=$(epoch_ts $((ue - 3600)))
		vargs=(-crl_lastupdate "$last" -crl_nextupdate "$until")
	fi
	ossl "$cadir" "generate the crl" ca -batch -config openssl.cnf -gencrl \
		"${vargs[@]}" -out "$WORK/crl.pem"
	chmod 644 -- "$WORK/crl.pem"
	mv -f -- "$WORK/crl.pem" "$cadir/crl.pem"
	[[ -n $until ]] || printf '%s\n' "$days" >"$cadir/crl.days"
}

# crl_days CADIR: the CRL validity the operator last chose (crl --days), else the default.
crl_days() {
	local d=""
	[[ -f "$1/crl.days" ]] && read -r d <"$1/crl.days"
	if [[ $d =~ ^[0-9]{1,5}$ ]] && ((10#$d >= 1 && 10#$d <= 36500)); then
		echo $((10#$d))
	else
		echo "$CRL_DAYS_DEFAULT"
	fi
}

cmd_init() {
	local dir name="HIE Dev CA" pos=()
	while [[ $# -gt 0 ]]; do
		case $1 in
		--name) need_value "$1" $# && name=$2 && shift 2 ;;
		--name=*) name=${1#*=} && shift ;;
		--) shift && pos+=("$@") && break ;;
		-?*) bad "init: unknown option '$1'" ;;
		*) pos+=("$1") && shift ;;
		esac
	done
	[[ ${#pos[@]} -ge 1 ]] || bad "init: missing DIR"
	[[ ${#pos[@]} -eq 1 ]] || bad "init: unexpected argument '${pos[1]}'"
	dir=${pos[0]}
	[[ -n $dir ]] || bad "init: DIR must not be empty"
	[[ -n $name ]] || bad "init: --name must not be empty"
	[[ ${#name} -le 64 ]] || bad "init: --name must be at most 64 characters"
	[[ $name != *[[:cntrl:]]* ]] || bad "init: --name must not contain control characters"

	local d
	d=$(disp_dir "$dir")
	[[ ! -e "$dir/ca/ca.key" ]] || die "ca key already exists: $d/ca/ca.key (refusing to overwrite it)"
	if [[ -e "$dir/ca" ]]; then
		[[ -d "$dir/ca" ]] || die "$d/ca exists and is not a directory"
		[[ -z "$(ls -A -- "$dir/ca")" ]] || die "$d/ca exists and is not empty (refusing to touch it)"
	fi
	mkdir -p -- "$dir" || die "cannot create $d"
	local root
	root=$(absdir "$dir") || die "cannot enter $d"

	# Build the CA in a scratch directory and rename it into place at the end, so that a
	# failure never leaves a half-made DIR/ca behind (which init would then refuse).
	make_work "$root"
	local stage="$WORK/ca"
	mkdir -m 755 -- "$stage" "$stage/newcerts"
	write_ca_config "$stage/openssl.cnf"
	: >"$stage/index.txt"
	printf 'unique_subject = no\n' >"$stage/index.txt.attr"
	# Random positive 128-bit starting serial (later serials count up from it).
	printf '%s\n' "$("$OPENSSL" rand -hex 16 | sed 's/^./7/' | tr 'a-f' 'A-F')" >"$stage/serial"
	printf '01\n' >"$stage/crlnumber"
	gen_key "$stage" "$stage/ca.key" "ca"
	ossl "$stage" "create the ca certificate" req -new -x509 -config openssl.cnf -utf8 \
		-key ca.key -subj "/O=HIE/CN=$(subj_escape "$name")" -days "$CA_DAYS" -sha256 \
		-extensions v3_ca -out ca.crt
	chmod 644 -- "$stage/ca.crt"
	gen_crl "$stage" "$CRL_DAYS_DEFAULT"

	[[ ! -e "$root/ca/ca.key" ]] || die "ca key appeared meanwhile: $d/ca/ca.key (refusing to overwrite it)"
	if [[ -d "$root/ca" ]]; then
		rmdir -- "$root/ca" || die "$d/ca is not empty (refusing to touch it)"
	fi
	mv -- "$stage" "$root/ca"
	[[ -d "$root/certs" ]] || mkdir -m 755 -- "$root/certs"
	say "created ca \"$name\" in $d/ca"
}

# check_san KIND LIST: prints LIST (DNS:name or IP:address, comma-separated) as ", A, B" for
# the subjectAltName line; refuses anything else (it goes into an openssl config file).
check_san() {
	[[ $1 == node ]] || bad "issue: --san is for node certificates (members are named by CN)"
	local item out="" items
	[[ $2 != *[[:space:]]* ]] || bad "issue: --san entries hold no spaces or line breaks"
	IFS=, read -r -a items <<<"$2"
	[[ ${#items[@]} -ge 1 && ${#items[@]} -le 16 ]] || bad "issue: --san takes 1 to 16 names"
	for item in "${items[@]}"; do
		if [[ $item =~ ^DNS:[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})$ ]] ||
			[[ $item =~ ^IP:[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] ||
			[[ $item =~ ^IP:[0-9A-Fa-f:]{2,39}$ ]]; then
			out+=", $item"
		else
			bad "issue: --san entry '$item' is not DNS:host.name or IP:address"
		fi
	done
	printf '%s' "$out"
}

cmd_issue() {
	local dir kind="" name="" days="" start="" end="" eku="" stem="" san="" key=ec pos=()
	while [[ $# -gt 0 ]]; do
		case $1 in
		--san) need_value "$1" $# && san=$2 && shift 2 ;;
		--san=*) san=${1#*=} && shift ;;
		--key) need_value "$1" $# && key=$2 && shift 2 ;;
		--key=*) key=${1#*=} && shift ;;
		--kind) need_value "$1" $# && kind=$2 && shift 2 ;;
		--name) need_value "$1" $# && name=$2 && shift 2 ;;
		--days) need_value "$1" $# && days=$2 && shift 2 ;;
		--start) need_value "$1" $# && start=$2 && shift 2 ;;
		--end) need_value "$1" $# && end=$2 && shift 2 ;;
		--eku) need_value "$1" $# && eku=$2 && shift 2 ;;
		--out-name) need_value "$1" $# && stem=$2 && shift 2 ;;
		--kind=*) kind=${1#*=} && shift ;;
		--name=*) name=${1#*=} && shift ;;
		--days=*) days=${1#*=} && shift ;;
		--start=*) start=${1#*=} && shift ;;
		--end=*) end=${1#*=} && shift ;;
		--eku=*) eku=${1#*=} && shift ;;
		--out-name=*) stem=${1#*=} && shift ;;
		--) shift && pos+=("$@") && break ;;
		-?*) bad "issue: unknown option '$1'" ;;
		*) pos+=("$1") && shift ;;
		esac
	done
	[[ ${#pos[@]} -ge 1 ]] || bad "issue: missing DIR"
	[[ ${#pos[@]} -eq 1 ]] || bad "issue: unexpected argument '${pos[1]}'"
	dir=${pos[0]}
	[[ -n $dir ]] || bad "issue: DIR must not be empty"
	case $kind in
	member) ;;
	node) ;;
	"") bad "issue: missing --kind (node or member)" ;;
	*) bad "issue: --kind must be node or member, got '$kind'" ;;
	esac
	[[ $key == ec || $key == rsa ]] || bad "issue: --key must be ec or rsa, got '$key'"
	[[ -n $name ]] || bad "issue: missing --name"
	[[ $name =~ $NAME_RE ]] ||
		bad "issue: invalid name '$name' (must match $NAME_RE: lowercase letters, digits, '.', '_', '-', at most 63 characters)"
	[[ -n $stem ]] || stem=$name
	local san_ext=""
	[[ -z $san ]] || san_ext=$(check_san "$kind" "$san")
	[[ $stem =~ $STEM_RE ]] ||
		bad "issue: invalid --out-name '$stem' (letters, digits, '.', '_', '-', no slashes, at most 128 characters)"
	if [[ -z $eku ]]; then
		if [[ $kind == member ]]; then eku=client; else eku=both; fi
	fi
	local eku_ext
	case $eku in
	client) eku_ext=clientAuth ;;
	server) eku_ext=serverAuth ;;
	both) eku_ext="serverAuth, clientAuth" ;;
	none) eku_ext="" ;;
	*) bad "issue: --eku must be client, server, both or none, got '$eku'" ;;
	esac

	# Validity: openssl ca computes -days from now even with -startdate, so an explicit start
	# gets an explicit end computed here.
	local validity=() s_epoch e_epoch
	[[ -z $days ]] || check_days --days "$days"
	if [[ -n $start ]]; then
		s_epoch=$(ts_epoch "$start") || bad "issue: invalid --start '$start' (want YYYYMMDDHHMMSSZ, UTC, year >= 1950)"
	else
		s_epoch=$(date -u +%s)
	fi
	if [[ -n $end ]]; then
		[[ -z $days ]] || bad "issue: use either --days or --end, not both"
		e_epoch=$(ts_epoch "$end") || bad "issue: invalid --end '$end' (want YYYYMMDDHHMMSSZ, UTC, year >= 1950)"
		((e_epoch > s_epoch)) || bad "issue: --end must be later than the start (${start:-now})"
	fi
	if [[ -n $start || -n $end ]]; then
		[[ -n $start ]] || start=$(epoch_ts "$s_epoch")
		[[ -n $end ]] || end=$(epoch_ts $((s_epoch + 10#${days:-$LEAF_DAYS_DEFAULT} * 86400)))
		validity=(-startdate "$start" -enddate "$end")
	else
		validity=(-days "$((10#${days:-$LEAF_DAYS_DEFAULT}))")
	fi

	require_ca "$dir"
	local d root certs
	d=$(disp_dir "$dir")
	root=$(absdir "$dir")
	certs="$root/certs"
	[[ -d $certs ]] || mkdir -m 755 -- "$certs" || die "cannot create $d/certs"
	[[ ! -e "$certs/$stem.crt" ]] || die "certificate already exists: $d/certs/$stem.crt (refusing to overwrite it)"
	[[ ! -e "$certs/$stem.key" ]] || die "key already exists: $d/certs/$stem.key (refusing to overwrite it)"

	make_work "$certs"
	local org
	if [[ $kind == member ]]; then org="HIE Members"; else org="HIE Nodes"; fi
	{
		printf '[ hie_ext ]\n'
		printf 'basicConstraints = critical, CA:FALSE\n'
		printf 'keyUsage = critical, digitalSignature\n'
		[[ -z $eku_ext ]] || printf 'extendedKeyUsage = %s\n' "$eku_ext"
		[[ $kind != node ]] ||
			printf 'subjectAltName = DNS:%s, DNS:localhost, IP:127.0.0.1%s\n' "$name" "$san_ext"
		printf 'subjectKeyIdentifier = hash\n'
		printf 'authorityKeyIdentifier = keyid:always\n'
	} >"$WORK/ext.cnf"

	gen_key "$CA_DIR" "$WORK/key.pem" "$kind" "$key"
	ossl "$CA_DIR" "create the certificate request" req -new -config openssl.cnf \
		-key "$WORK/key.pem" -subj "/O=$org/CN=$name" -out "$WORK/req.csr"
	ossl "$CA_DIR" "sign the $kind certificate" ca -batch -config openssl.cnf -notext \
		-in "$WORK/req.csr" -out "$WORK/cert.pem" -extfile "$WORK/ext.cnf" -extensions hie_ext \
		"${validity[@]}"
	chmod 644 -- "$WORK/cert.pem"
	mv -- "$WORK/key.pem" "$certs/$stem.key"
	mv -- "$WORK/cert.pem" "$certs/$stem.crt"
	say "issued $kind cert for $name -> $d/certs/$stem.crt"
}

cmd_revoke() {
	local dir stem reason="" pos=()
	while [[ $# -gt 0 ]]; do
		case $1 in
		--reason) need_value "$1" $# && reason=$2 && shift 2 ;;
		--reason=*) reason=${1#*=} && shift ;;
		--) shift && pos+=("$@") && break ;;
		-?*) bad "revoke: unknown option '$1'" ;;
		*) pos+=("$1") && shift ;;
		esac
	done
	[[ ${#pos[@]} -ge 1 ]] || bad "revoke: missing DIR"
	[[ ${#pos[@]} -ge 2 ]] || bad "revoke: missing STEM (the certificate DIR/certs/STEM.crt)"
	[[ ${#pos[@]} -eq 2 ]] || bad "revoke: unexpected argument '${pos[2]}'"
	dir=${pos[0]}
	[[ -n $dir ]] || bad "revoke: DIR must not be empty"
	stem=${pos[1]}
	stem=${stem%.crt}
	[[ $stem =~ $STEM_RE ]] || bad "revoke: invalid STEM '$stem'"
	case $reason in
	"" | unspecified | keyCompromise | CACompromise | affiliationChanged | superseded | \
		cessationOfOperation | certificateHold) ;;
	*) bad "revoke: unknown --reason '$reason'" ;;
	esac

	require_ca "$dir"
	local d crt
	d=$(disp_dir "$dir")
	crt="$(absdir "$dir")/certs/$stem.crt"
	[[ -f $crt ]] || die "no such certificate: $d/certs/$stem.crt"

	# `openssl ca -revoke` silently ADDS a certificate it does not know to the database, so
	# check first that this CA issued it and that it is still valid in the database.
	local serial status
	serial=$(ossl_out "$CA_DIR" x509 -in "$crt" -noout -serial) ||
		die "cannot read the certificate $d/certs/$stem.crt"
	serial=${serial#serial=}
	status=$(awk -F '\t' -v s="$serial" '
		function norm(x) { x = toupper(x); sub(/^0+/, "", x); return x }
		norm($4) == norm(s) { st = $1 } END { print st }' "$CA_DIR/index.txt")
	case $status in
	V) ;;
	R)
		# revoked in the database: a run that failed to write the crl afterwards left it
		# unpublished, so write the crl again (idempotent) rather than stop here
		make_work "$CA_DIR"
		gen_crl "$CA_DIR" "$(crl_days "$CA_DIR")"
		say "$stem was already revoked (serial $serial); crl written again -> $d/ca/crl.pem"
		return 0
		;;
	"") die "$d/certs/$stem.crt (serial $serial) is not in this ca's database" ;;
	*) die "$stem has status '$status' in the ca database, cannot revoke it" ;;
	esac

	make_work "$CA_DIR"
	local rargs=(-revoke "$crt")
	[[ -z $reason ]] || rargs+=(-crl_reason "$reason")
	ossl "$CA_DIR" "revoke $stem" ca -batch -config openssl.cnf "${rargs[@]}"
	gen_crl "$CA_DIR" "$(crl_days "$CA_DIR")"
	say "revoked $stem (serial $serial); crl (valid $(crl_days "$CA_DIR") days) -> $d/ca/crl.pem"
}

cmd_crl() {
	local dir days=$CRL_DAYS_DEFAULT until="" pos=()
	while [[ $# -gt 0 ]]; do
		case $1 in
		--days) need_value "$1" $# && days=$2 && shift 2 ;;
		--days=*) days=${1#*=} && shift ;;
		--until) need_value "$1" $# && until=$2 && shift 2 ;;
		--) shift && pos+=("$@") && break ;;
		-?*) bad "crl: unknown option '$1'" ;;
		*) pos+=("$1") && shift ;;
		esac
	done
	[[ ${#pos[@]} -ge 1 ]] || bad "crl: missing DIR"
	[[ ${#pos[@]} -eq 1 ]] || bad "crl: unexpected argument '${pos[1]}'"
	dir=${pos[0]}
	[[ -n $dir ]] || bad "crl: DIR must not be empty"
	check_days --days "$days"
	days=$((10#$days))
	require_ca "$dir"
	if [[ -n $until ]]; then
		ts_epoch "$until" >/dev/null || bad "crl: --until must be YYYYMMDDHHMMSSZ, got '$until'"
	fi
	make_work "$CA_DIR"
	gen_crl "$CA_DIR" "$days" "$until"
	say "wrote crl valid ${until:-$days days} -> $(disp_dir "$dir")/ca/crl.pem"
}

main() {
	if [[ $# -eq 0 ]]; then
		usage
		exit 0
	fi
	local cmd=$1
	shift
	case $cmd in
	init) cmd_init "$@" ;;
	issue) cmd_issue "$@" ;;
	revoke) cmd_revoke "$@" ;;
	crl) cmd_crl "$@" ;;
	help | -h | --help)
		usage
		exit 0
		;;
	*) bad "unknown command '$cmd'" ;;
	esac
}

main "$@"
