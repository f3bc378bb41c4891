#!/usr/bin/env bash
# Runs a local hiebroker node with a demo exchange and narrates what happens.
# usage: deploy/demo.sh [BUILD_DIR] [--serve]
#   BUILD_DIR  where hie-node, hiectl and hie were built (default: build)
#   --serve    keep the node running after the demo until Ctrl-C
# Everything lives in <repo>/demo, or $HIE_DEMO_DIR (recreated each run: it must be a folder
# of its own): PKI, config, data directory, node log.
set -euo pipefail
unset CDPATH
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
serve=0
[ "${2:-}" = "--serve" ] || [ "${1:-}" = "--serve" ] && serve=1
[ "${1:-}" = "--serve" ] && build=build
case $build in /*) ;; *) build="$here/$build" ;; esac
node_bin="$build/node/hie-node"; ctl_bin="$build/node/hiectl"; hie_bin="$build/client/hie"
for b in "$node_bin" "$ctl_bin" "$hie_bin"; do
  [ -x "$b" ] || { echo "demo: $b not built (run cmake --build first)" >&2; exit 1; }
done
demo=${HIE_DEMO_DIR:-$here/demo}
port=${HIE_DEMO_PORT:-7443}
http=${HIE_DEMO_HTTP_PORT:-9443}
# recreated only if it is empty or an earlier demo's (its marker file): never another folder
if [ -e "$demo" ] && [ ! -e "$demo/.hie-demo" ] && [ -n "$(ls -A "$demo" 2>/dev/null)" ] &&
  ! { [ -f "$demo/node.yaml" ] && [ -d "$demo/pki" ] && [ -f "$demo/node.log" ]; }; then
  echo "demo: '$demo' is not an earlier demo's folder (no .hie-demo in it); not touching it" >&2
  exit 2
fi
rm -rf "$demo"; mkdir -p "$demo"; : >"$demo/.hie-demo"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed "s|$build/||g; s|$demo/||g"; "$@"; }
node_pid=""
cleanup() { [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null; true; }
trap cleanup EXIT

step "create a development PKI (HIE CA, node and member certificates, CRL)"
bash "$here/deploy/dev-pki.sh" "$demo/pki" 2>&1 | tail -1
cat > "$demo/node.yaml" <<YAML
node: {id: node-1, data_dir: data}
listen: {address: 127.0.0.1, port: $port}
tls: {ca_file: pki/ca/ca.crt, cert_file: pki/certs/node-1.crt, key_file: pki/certs/node-1.key,
      crl_file: pki/ca/crl.pem}
operator: {http_address: 127.0.0.1, http_port: $http}
workers: 2
mpi: {key_file: mpi.key}
# no consent on file: treatment is permitted (opt-out); emergency care may break the glass
consent: {regime: opt-out, break_glass: true}
audit: {checkpoint_interval_ms: 1000}
YAML
# the MPI's data key: 32 random bytes only the node's user can read (PHI is sealed with it)
(umask 077; head -c 32 /dev/urandom > "$demo/mpi.key")
run "$ctl_bin" init --data-dir "$demo/data"

step "start hie-node (log: demo/node.log)"
"$node_bin" --config "$demo/node.yaml" 2> "$demo/node.log" &
node_pid=$!
for _ in $(seq 1 100); do grep -q 'msg="node started"' "$demo/node.log" 2>/dev/null && break; sleep 0.1; done
grep -q 'msg="node started"' "$demo/node.log" || { cat "$demo/node.log"; exit 1; }
ctl() { run "$ctl_bin" --config "$demo/node.yaml" "$@"; }
member() { local org=$1; shift; run "$hie_bin" --addr "127.0.0.1:$port" --ca "$demo/pki/ca/ca.crt" \
  --cert "$demo/pki/certs/$org.crt" --key "$demo/pki/certs/$org.key" --server-name node-1 "$@"; }
ctl status

step "the operator registers member organizations (commands through the log, fsync'd)"
ctl org register general-hospital --name "General Hospital" --roles hospital
ctl org register st-mary-hospital --name "St Mary Hospital" --roles hospital
ctl org register riverside-clinic --name "Riverside Family Clinic" --roles clinic
ctl org register state-auditor --name "State HIE Auditor" --roles auditor
ctl org list

step "the identity feed: each member sends its own patients; the MPI links them"
member general-hospital feed create --mrn GH-1001 --given Maria --family Garcia \
  --dob 1984-07-12 --sex female --address "12 Mission St" --city "San Francisco" \
  --postcode 94110 --phone "(415) 555-0101"
member riverside-clinic feed create --mrn RC-77 --given "María" --family "García" \
  --dob 1984-07-12 --sex female --address "12 Mission Street" --city "San Francisco" \
  --postcode 94110-1234 --phone "+1 415 555 0101"
member st-mary-hospital feed create --mrn SM-555 --given Maria --family Garcia \
  --dob 1984-07-12 --sex female --postcode 94110 --phone 4155550101
member general-hospital feed create --mrn GH-1002 --given Robert --family Chen \
  --dob 1951-02-28 --sex male --postcode 94103
echo "(the clinic cannot feed the hospital's MRNs)"
member riverside-clinic feed create --org general-hospital --mrn GH-9 --given A --family B \
  || echo "(refused as expected, exit $?)"

step "PIX: which identifiers do other members use for the clinic's patient?"
member riverside-clinic --purpose treatment pix --mrn RC-77
step "PDQ: the hospital searches by demographics (typo in the name, nickname)"
member general-hospital --purpose treatment pdq --given Bob --family Chenn --dob 1951-02-28
member general-hospital --purpose treatment pdq --family Nobody --dob 1900-01-01

step "bulk import: the operator loads a CSV extract (bad rows are reported, not fatal)"
cat > "$demo/extract.csv" <<CSV
org_id,mrn,given,family,birth_date,sex,address,city,postcode,phone,email,national_id
general-hospital,GH-2001,Ana,Silva,1990-05-01,female,1 Oak Ave,Oakland,94607,,ana@example.org,
general-hospital,GH-2002,Li,Wei,1975-11-30,male,,Oakland,94607,,,
general-hospital,GH-2003,Bad,Date,1990-02-31,female,,,,,,
riverside-clinic,RC-300,Anna,Silva,1990-05-01,female,1 Oak Avenue,Oakland,94607,,ana@example.org,
CSV
ctl mpi import "$demo/extract.csv" --rejects "$demo/rejects.txt" || echo "(some rows rejected, exit $?)"
ctl mpi stats

step "members connect over mutual TLS 1.3 and ask who they are"
member general-hospital whoami
member riverside-clinic --json whoami
member riverside-clinic ping --count 3 hello

step "an organization the HIE never registered is refused"
member county-lab whoami || echo "(refused as expected, exit $?)"

step "the operator suspends the clinic: its next connection is refused; reinstated, it works"
ctl org suspend riverside-clinic --reason "demo"
member riverside-clinic whoami || echo "(refused as expected, exit $?)"
ctl org reinstate riverside-clinic
member riverside-clinic whoami

step "a retried request with the same id gets the original answer"
ctl --id demo-reg-1 org register county-lab --name "County Lab" --roles lab
ctl --id demo-reg-1 org register county-lab --name "County Lab" --roles lab

step "the operator revokes the lab's certificate and reloads the CRL without a restart"
bash "$here/deploy/pki.sh" revoke "$demo/pki" county-lab
ctl reload
member county-lab whoami || echo "(refused as expected, exit $?)"

step "the clinic subscribes to admissions, discharges and transfers of all its patients"
out=$(member riverside-clinic subscribe --all-my-patients); echo "$out"
echo "(the clinic's subscription is ${out#*=}: its notifications wait on its queue until read)"

step "General Hospital admits Maria Garcia (HL7 ADT A01); the clinic is notified"
member general-hospital adt a01 --mrn GH-1001 --visit V-88 --class inpatient \
  --facility "General Hospital" --location "4W-12" --attending "Dr. Okafor"
member riverside-clinic receive --count 1

step "General Hospital stores her discharge summary in the HIE repository and pushes a copy to St Mary"
printf '<ClinicalDocument><title>Discharge summary</title><text>Community-acquired pneumonia, treated; follow up in 2 weeks.</text></ClinicalDocument>\n' > "$demo/discharge.xml"
member general-hospital --id gh-ds-1 push --repository --mrn GH-1001 --file "$demo/discharge.xml" \
  --class discharge-summary --title "Discharge summary" --date 2026-11-20
member general-hospital --id gh-ds-1 push --repository --mrn GH-1001 --file "$demo/discharge.xml" \
  --class discharge-summary --title "Discharge summary" --date 2026-11-20
echo "(the same id twice: one document, the original answer)"
member general-hospital --id gh-push-1 push --to st-mary-hospital --mrn GH-1001 --file "$demo/discharge.xml" \
  --class discharge-summary --title "Discharge summary (copy)"
mkdir -p "$demo/inbox"
member st-mary-hospital receive --count 1 --out-dir "$demo/inbox"

step "St Mary queries Maria's records by its own MRN; the MPI links her, the repository answers"
member st-mary-hospital query --mrn SM-555
doc=$(member st-mary-hospital --json query --mrn SM-555 | sed -n 's/.*"document_id":"\([^"]*\)".*/\1/p' | head -1)
member st-mary-hospital get "$doc" --out "$demo/fetched.xml"

step "Maria tells her clinic she does not want St Mary to see her records: a consent directive"
cat > "$demo/consent-deny-st-mary.json" <<JSON
{"status": "active", "date": "2026-11-21",
 "provision": {"type": "permit",
   "provisions": [{"type": "deny", "actors": [{"org": "st-mary-hospital"}]}]}}
JSON
cat "$demo/consent-deny-st-mary.json"
member riverside-clinic consent submit --mrn RC-77 --file "$demo/consent-deny-st-mary.json"
echo "(the very next query sees nothing: as if the documents did not exist)"
member st-mary-hospital query --mrn SM-555
member st-mary-hospital get "$doc" || echo "(withheld, exit $?)"

step "in an emergency St Mary breaks the glass (allowed by policy, always audited and reported)"
member st-mary-hospital --purpose emergency query --mrn SM-555

step "the state auditor pulls Maria's accounting of disclosures, with proofs and a signed checkpoint"
sleep 1.2  # the next signed checkpoint covers every disclosure above
member state-auditor audit report accounting --mrn GH-1001 --org general-hospital \
  --include-excluded --from 2026-01-01 --all --out "$demo/report.json"
member state-auditor audit report break-glass --from 2026-01-01
echo "(the same accounting with repeated disclosures summarized, as HIPAA 164.528(b)(3) allows)"
member state-auditor audit report accounting --mrn GH-1001 --org general-hospital \
  --include-excluded --from 2026-01-01 --all --summarize
echo "(an auditor checks the report offline against the node's published key)"
vkey=$("$ctl_bin" --config "$demo/node.yaml" audit vkey)
run "$hie_bin" audit verify "$demo/report.json" --vkey "$vkey"
echo "(the operator verifies the whole log: signatures and every checkpoint's consistency)"
ctl audit verify

step "operator endpoint: health and a few metrics"
run curl -s "http://127.0.0.1:$http/healthz"
curl -s "http://127.0.0.1:$http/metrics" | grep -E '^hie_(connections_total|tls_handshakes_total.*(ok|revoked|no_cert)|auth_refused_total|requests_total.*outcome="ok"|commands_applied_total|applied_index)' | grep -v ' 0$' || true
ctl status

step "what the node logged (one line per event, no patient data)"
grep -E 'member (authenticated|refused)|request done|command applied|tls handshake failed' "$demo/node.log" | tail -12

if [ "$serve" = 1 ]; then
  step "node keeps serving on 127.0.0.1:$port (Ctrl-C stops it)"
  wait "$node_pid"
  exit 0
fi
step "stop the node gracefully (SIGTERM: drain, then exit 0)"
kill -TERM "$node_pid"; wait "$node_pid"; rc=$?; node_pid=""
tail -2 "$demo/node.log"
echo "demo finished: node exited $rc"
