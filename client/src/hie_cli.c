/*
 * hie_cli.c - the `hie` command line: global options, then one subcommand from cli_cmds[].
 *
 * A subcommand is a row in cli_cmds[] and a run function that parses its own options, builds
 * request envelopes with hie_cli__request_init(), sends them with hie_cli__call() and prints
 * the reply as key=value text or, with --json, one JSON object per line. The master patient
 * index commands (feed, pix, pdq, review) live in cli_mpi.c; helpers they share are declared
 * in cli_int.h. consent and audit live in cli_consent.c and cli_audit.c, push and receive in
 * cli_push.c, adt and the subscription commands in cli_adt.c, query, get and responder in
 * cli_query.c.
 *
 * Output rules: results go to stdout; failures are one lowercase line on stderr
 * ("hie: <what> failed: <why>"). Exit codes: 0 ok, 1 the node answered with an Error, 2 usage
 * error, 3 connection, TLS, protocol failure or timeout. Never print patient data: replies that
 * carry it must be printed only where the user asked for them, never in error lines.
 */
#include "cli_int.h"
#include "consent_json.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#ifndef HIE_VERSION
#define HIE_VERSION "unknown"
#endif

static int cmd_whoami(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
static int cmd_ping(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);

static const struct cli_cmd cli_cmds[] = {
    {"whoami", "", "show the organization, roles and node this certificate reaches", cmd_whoami},
    {"ping", "[--count N] [PAYLOAD]", "send pings and print round-trip times", cmd_ping},
    {"feed", "create|update|merge|unlink [DEMOGRAPHICS]",
        "send a patient identity feed; prints the EUID and the outcome",
        hie_cli__cmd_feed},
    {"pix", "--mrn MRN [--org ORG] [--target-org ORG]...",
        "cross-reference: the EUID and the other organizations' identifiers", hie_cli__cmd_pix},
    {"pdq", "[DEMOGRAPHICS] [--limit N] [--min-probability P]",
        "demographics query: ranked candidates with match probability", hie_cli__cmd_pdq},
    {"review", "list [--after ID] [--limit N] [--all] | link ID | apart ID",
        "possible matches waiting for a decision (operator role)", hie_cli__cmd_review},
    {"consent", "submit --mrn MRN [--org ORG] --file FILE|- | revoke ID | list --mrn MRN [--all]",
        "a patient's consent directives (hospital and clinic roles, own patients only)",
        hie_cli__cmd_consent},
    {"audit", "report KIND [OPTIONS] | verify FILE --vkey VKEY [--previous FILE] | "
              "checkpoint --out FILE",
        "disclosure reports (auditor role) and their offline verification", hie_cli__cmd_audit},
    {"push", "--to ORG|--repository --mrn MRN --file FILE|- [--content-type T] [--title T] "
             "[--class C] [--type-code C] [--label L]... [--date DATE]",
        "send one document about one of our patients to another member (or store it in the "
        "HIE's repository); prints its message id",
        hie_cli__cmd_push},
    {"receive", "[--window N] [--count N] [--follow] [--out-dir DIR] [--no-ack] "
                "[--discard-content]",
        "take this organization's deliveries: one line each (notifications decoded), "
        "acknowledged once printed (a document once written to --out-dir)",
        hie_cli__cmd_receive},
    {"notifications", "[--window N] [--count N] [--follow] [--out-dir DIR] [--no-ack] "
                      "[--discard-content]",
        "the same as receive (one queue holds documents and ADT notifications)",
        hie_cli__cmd_receive},
    {"adt", "a01|a02|a03|a04|a08|a11|a13|a40 --mrn MRN [--visit V] [--class C] [--facility F] "
            "[--location L] [--attending A] [--admit DATE] [--discharge DATE] [--time DATE] "
            "[DEMOGRAPHICS] [--prior-mrn MRN]",
        "send an ADT event about one of our patients; prints the EUID and the subscriptions "
        "notified", hie_cli__cmd_adt},
    {"subscribe", "[--mrn MRN]... [--all-my-patients] [--event E]... [--class C]... "
                  "[--follow]",
        "follow ADT events about our patients; prints the subscription id (--follow: then "
        "prints the notifications as they come, like tail -f, acknowledging each)",
        hie_cli__cmd_subscribe},
    {"roster", "SUB_ID [--add MRN]... [--remove MRN]... [--add-file FILE]",
        "change a subscription's patients (sent in parts of 1,000); prints the roster size",
        hie_cli__cmd_roster},
    {"unsubscribe", "SUB_ID", "end a subscription", hie_cli__cmd_unsubscribe},
    {"replay", "SUB_ID (--from N | --since DATE)",
        "queue a subscription's retained notifications again; prints how many",
        hie_cli__cmd_replay},
    {"query", "(--mrn MRN [--org ORG] | --euid EUID) [--class C]... [--type T]... "
              "[--from DATE] [--to DATE] [--limit N]",
        "a patient's documents (those consent permits) and each source's status",
        hie_cli__cmd_query},
    {"get", "DOCUMENT_ID [--source ORG] [--out FILE|-]",
        "retrieve one document: its content to FILE (mode 0600), its metadata and size",
        hie_cli__cmd_get},
    {"responder", "on|off", "register (or not) to answer record queries about our patients",
        hie_cli__cmd_responder},
    {"retract", "DOCUMENT_ID [--reason TEXT]",
        "withdraw a document we stored in the HIE's repository (e.g. filed under the wrong "
        "patient)", hie_cli__cmd_retract},
};

/* ---- output helpers ---------------------------------------------------------------------- */

int
hie_cli__usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("hie: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see hie --help)\n", stderr);
    return CLI_EXIT_USAGE;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. p is NUL-terminated
 * and continuation bytes are never NUL, so this never reads past the terminator. */
static size_t
utf8_seq_len(const unsigned char *p)
{
    size_t n;
    uint32_t cp;
    uint32_t min;
    if (p[0] < 0x80) {
        return 1;
    } else if ((p[0] & 0xe0) == 0xc0) {
        n = 2, cp = p[0] & 0x1fu, min = 0x80;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3, cp = p[0] & 0x0fu, min = 0x800;
    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4, cp = p[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/* Writes s as a JSON string: quotes, backslashes and control characters escaped, invalid UTF-8
 * replaced by U+FFFD, so any bytes from the node still make valid JSON. */
static void
json_str(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    while (*p != '\0') {
        unsigned char ch = *p;
        size_t n = 1;
        if (ch == '"' || ch == '\\') {
            fputc('\\', f);
            fputc(ch, f);
        } else if (ch == '\n') {
            fputs("\\n", f);
        } else if (ch == '\t') {
            fputs("\\t", f);
        } else if (ch == '\r') {
            fputs("\\r", f);
        } else if (ch < 0x20 || ch == 0x7f) {
            fprintf(f, "\\u%04x", (unsigned)ch);
        } else if ((n = hie_text_unsafe_len((const char *)p)) > 1) {
            /* C1, bidirectional and line-separator characters: escaped, never raw */
            unsigned cp = n == 2 ? ((p[0] & 0x1fu) << 6) | (p[1] & 0x3fu)
                                 : ((p[0] & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) |
                                       (p[2] & 0x3fu);
            fprintf(f, "\\u%04x", cp);
        } else if ((n = utf8_seq_len(p)) == 0) {
            fputs("\\ufffd", f);
            n = 1;
        } else {
            fwrite(p, 1, n, f);
        }
        p += n;
    }
    fputc('"', f);
}

/* key=value text: bare when the value is a plain token, else quoted and escaped as JSON. */
static void
kv_value(FILE *f, const char *s)
{
    bool bare = s[0] != '\0';
    for (const char *p = s; bare && *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;
        bare = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               strchr("._:@/,+-", ch) != NULL;
    }
    if (bare) {
        fputs(s, f);
    } else {
        json_str(f, s);
    }
}

void
hie_cli__kv_value(FILE *f, const char *s)
{
    kv_value(f, s);
}

void
hie_cli__handling_print(FILE *f, const Hie__V1__Handling *h)
{
    if (h == NULL) {
        return;
    }
    if (h->confidentiality != NULL && h->confidentiality[0] != '\0') {
        fputs(" confidentiality=", f);
        kv_value(f, h->confidentiality);
    }
    for (size_t i = 0; i < h->n_refrain; i++) {
        fputs(" refrain=", f);
        kv_value(f, h->refrain[i]);
    }
    if (h->notice != NULL && h->notice[0] != '\0') {
        fputs(" notice=", f);
        kv_value(f, h->notice);
    }
}

/* Text from the node on the terminal: control characters become '?', cut at a limit. */
void
hie_cli__fputs_safe(FILE *f, const char *s)
{
    for (size_t i = 0; s[i] != '\0' && i < CLI_NODE_TEXT_BYTES_MAX;) {
        bool bad = false;
        size_t n = hie_text_char(s + i, &bad);
        if (bad) {
            fputc('?', f);
        } else {
            fwrite(s + i, 1, n, f);
        }
        i += n;
    }
}

/* ---- option parsing ---------------------------------------------------------------------- */

int
hie_cli__parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    if (s[0] < '0' || s[0] > '9') {
        return HIE_EINVAL; /* strtoul would accept "-1" and " 1" */
    }
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return HIE_EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

/* HOST:PORT, or [V6]:PORT. */
static int
cli_addr_parse(struct cli *cli, const char *addr)
{
    const char *colon = strrchr(addr, ':');
    uint32_t port = 0;
    if (colon == NULL || hie_cli__parse_u32(colon + 1, 1, 65535, &port) != 0) {
        return HIE_EINVAL;
    }
    const char *host = addr;
    size_t host_len = (size_t)(colon - addr);
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    } else if (memchr(host, ':', host_len) != NULL || memchr(host, '[', host_len) != NULL) {
        return HIE_EINVAL; /* an IPv6 literal needs brackets */
    }
    if (host_len == 0 || host_len >= sizeof(cli->host)) {
        return HIE_EINVAL;
    }
    memcpy(cli->host, host, host_len);
    cli->host[host_len] = '\0';
    cli->addr = addr;
    cli->cfg.host = cli->host;
    cli->cfg.port = (uint16_t)port;
    return 0;
}

int
hie_cli__purpose_parse(const char *s, Hie__V1__PurposeOfUse *out)
{
    for (int p = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED;
         p <= HIE__V1__PURPOSE_OF_USE__PURPOSE_PATIENT_REQUEST; p++) {
        if (strcmp(s, hie_proto_purpose_name((Hie__V1__PurposeOfUse)p)) == 0) {
            *out = (Hie__V1__PurposeOfUse)p;
            return 0;
        }
    }
    return HIE_EINVAL;
}

static int
cli_tls_version_parse(const char *s, int *out)
{
    static const struct {
        const char *name;
        int version;
    } versions[] = {{"1.1", TLS1_1_VERSION}, {"1.2", TLS1_2_VERSION}, {"1.3", TLS1_3_VERSION}};
    for (size_t i = 0; i < HIE_ARRAY_LEN(versions); i++) {
        if (strcmp(s, versions[i].name) == 0) {
            *out = versions[i].version;
            return 0;
        }
    }
    return HIE_EINVAL;
}

static const char *
env_or_null(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The consent directive format and the audit report options (cli_consent.c, cli_audit.c). */
static void
cli_help_consent_audit(FILE *f)
{
    fputs("\nCONSENT (consent submit; purpose 'operations' unless --purpose says otherwise):\n"
          "  the directive file is JSON; unknown keys are refused with their JSON path:\n"
          "  {\"status\": \"active\"|\"inactive\",        (required)\n"
          "   \"period\": {\"start\": T, \"end\": T},     (optional; either side may be open)\n"
          "   \"date\": T,                            (optional: when the patient gave it)\n"
          "   \"policy_uri\": \"...\",                  (optional)\n"
          "   \"provision\": P}                       (required)\n"
          "  P = {\"type\": \"permit\"|\"deny\",  (required at the root; nested: the reverse)\n"
          "       \"actors\": [{\"org\": ORG} | {\"role\": hospital|clinic|lab|payer|...}],\n"
          "       \"purposes\": [treatment, emergency, payment, operations, public-health,\n"
          "                    research, patient-request],\n"
          "       \"security_labels\": [U L M N R V ETH ETHUD OPIOIDUD SUD PSY HIV STD SDV SEX],\n"
          "       \"classes\": [summary, discharge-summary, lab-report, imaging-report,\n"
          "                   progress-note, medication-list, immunization, referral,\n"
          "                   adt-event, other],\n"
          "       \"actions\": [identity, query, push, notify],\n"
          "       \"period\": {...}, \"data_period\": {...}, \"provisions\": [P, ...]}\n"
          "  an absent list means no condition; at most 64 provisions, 8 levels, 32 items a list,\n"
          "  16 KiB compiled (the node refuses more; 128 KiB for one record's together).\n"
          "  T is UTC: YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.sss]Z. FILE - reads stdin.\n"
          "\nAUDIT REPORT OPTIONS (auditor role; purpose 'operations' unless --purpose):\n"
          "  accounting --mrn MRN --org ORG | --euid EUID   one patient's disclosures\n"
          "  org-access --org-id ORG                        one organization's accesses\n"
          "  break-glass                                    every break-glass disclosure\n"
          "  --from T --to T (to: exclusive, default now)  --include-excluded (TPO too)\n"
          "  --page-size N (1..1000)  --page-token TOKEN  --all (follow every page)\n"
          "  --format csv|json|fhir (default csv; json with --json): csv is one row per\n"
          "    disclosure; json the whole report (decoded entries, raw bytes, proofs,\n"
          "    checkpoints); fhir a Bundle of IHE BALP PrivacyDisclosure AuditEvents\n"
          "  --summarize  (accounting, csv or json) repeated disclosures to one recipient\n"
          "    for one purpose as one row: the first in full, how many, the last date\n"
          "    (HIPAA 164.528(b)(3)); saved with the report, and audit verify checks it\n"
          "  --out FILE   also save the json report (mode 0600) for audit verify\n"
          "  --previous CHECKPOINT_FILE   prove the log extends an earlier checkpoint (a file\n"
          "    from audit checkpoint --out, or a saved report)\n"
          "audit verify needs no connection: it checks every checkpoint's signature with VKEY\n"
          "(the verifier key text NAME+ID+KEY, or a file with it), each entry's inclusion\n"
          "proof, each subject's commitment and the consistency proofs; exit 1 on any failure\n"
          "(it needs no --ca, --cert or --key). A report saved without --all (more pages) or\n"
          "from a --page-token fails as partial unless --partial is given.\n",
        f);
}

/* push and receive (cli_push.c). */
static void
cli_help_push(FILE *f)
{
    fputs("\nPUSH (purpose 'treatment' unless --purpose says otherwise; --id: idempotent):\n"
          "  the patient is --mrn at this certificate's organization; the content is the file\n"
          "  (at most 1 MiB, - reads stdin); --content-type defaults from the extension: .json\n"
          "  application/fhir+json, .xml application/xml, .hl7 x-application/hl7-v2+er7, else\n"
          "  application/octet-stream; --class and --label take the consent vocabularies\n"
          "  above; --date (the document's own) is a UTC date as T above.\n"
          "\nRECEIVE: one line per delivery (seq, message_id, sender, patient_org, mrn, euid,\n"
          "  title, class, bytes, redelivery, file), or JSON lines with --json. --out-dir DIR\n"
          "  writes each document to DIR/<seq>-<message id>.<ext> (mode 0600; characters of the\n"
          "  id outside A-Za-z0-9._- become _; <ext> by content type) before printing;\n"
          "  a delivery is acknowledged only after it was written and printed (at least once:\n"
          "  a message may be shown again, flagged redelivery=yes; one already shown in this\n"
          "  run is acknowledged silently). Stops after --count deliveries or, without\n"
          "  --follow, when nothing arrives for 2 s; --follow runs until SIGINT or SIGTERM.\n"
          "  --window N: unacknowledged deliveries in flight (default 32); --no-ack: show\n"
          "  without acknowledging (they come again next time). Without --out-dir a document\n"
          "  (its content is not printed) is not acknowledged: the node would delete the only\n"
          "  copy; --discard-content acknowledges it anyway. Output to a file is fsynced\n"
          "  before its deliveries are acknowledged.\n"
          "  push --repository (instead of --to) stores the document in the HIE's repository,\n"
          "  where record queries (hie query) find it.\n",
        f);
}

/* adt, subscriptions and notifications (cli_adt.c). */
static void
cli_help_adt(FILE *f)
{
    fputs("\nADT (hospitals; purpose 'treatment' unless --purpose says otherwise):\n"
          "  EVENT is a01 admit, a02 transfer, a03 discharge, a04 register, a08 update, a11\n"
          "  cancel admit, a13 cancel discharge, a40 merge (any case); the patient is --mrn at\n"
          "  this certificate's organization. --visit is required but for a08 and a40;\n"
          "  --class inpatient|outpatient|emergency|observation; --facility, --location and\n"
          "  --attending at most 128 bytes; --admit, --discharge and --time (when it\n"
          "  happened, default now) are UTC dates as T above. DEMOGRAPHICS as for feed go\n"
          "  with a01, a04 (optional: create or update the record) and a08 (required);\n"
          "  --prior-mrn with a40 (the MRN that folds into --mrn).\n"
          "\nSUBSCRIPTIONS: subscribe --all-my-patients follows every patient this\n"
          "  organization has a record of; otherwise the roster: --mrn (at most 1,000) and\n"
          "  roster --add/--remove/--add-file (one MRN a line, blank lines ignored; sent in\n"
          "  parts of 1,000; at most 100,000 a subscription). --event a01..a40 and --class\n"
          "  filter (none: all). replay --from N (event number) or --since DATE queues the\n"
          "  retained notifications again, with their ids and numbers. subscribe --follow\n"
          "  then prints the notifications as they come (notifications --follow: each is\n"
          "  acknowledged once printed; a later run resumes after the last acknowledged).\n"
          "\nNOTIFICATIONS arrive on the same queue as pushed documents: receive (or its\n"
          "  alias notifications) prints each as seq, message_id, subscription_id,\n"
          "  event_number, event, sender, euid, mrns (our own), visit, class, facility,\n"
          "  location, time, cancel (a11/a13: cancels that visit's earlier event),\n"
          "  redelivery; documents print as described under RECEIVE.\n",
        f);
}

/* record query, retrieval, responder (cli_query.c). */
static void
cli_help_query(FILE *f)
{
    fputs("\nQUERY (purpose 'treatment' unless --purpose says otherwise): the patient by\n"
          "  --mrn (at --org, default this organization) or --euid; --class (the consent\n"
          "  classes), --type (e.g. a LOINC code) at most 16 each; --from/--to the document's\n"
          "  date (to exclusive); --limit 1..1000 (default 100). Prints euid and counts, a\n"
          "  table (ID SOURCE DATE CLASS TYPE TITLE AUTHOR SIZE LABELS; titles cut at 40\n"
          "  columns), then one line per source: status ok, timeout or error (with detail).\n"
          "  A source that failed is a line, not a failure: exit 0 when the node answered.\n"
          "GET: --out FILE writes the content (mode 0600, replaced atomically) and prints the\n"
          "  metadata; --out - writes the content alone to stdout; without --out only the\n"
          "  metadata and size. An unknown document, or one the patient's consent withholds,\n"
          "  is NOT_FOUND (exit 1). --source ORG: a document a responder listed (the SOURCE\n"
          "  column of query): the node asks that member for it and applies consent to what\n"
          "  it returns; no answer before the deadline is UNAVAILABLE (exit 1).\n"
          "RESPONDER on|off registers this organization to answer forwarded record queries\n"
          "  (answering is done by the member's own system, not by hie).\n"
          "RETRACT DOCUMENT_ID (the id push --repository printed): record queries stop\n"
          "  listing it and get answers NOT_FOUND for it; the id is not used again. Only the\n"
          "  author can retract (another member's, unknown or already retracted: NOT_FOUND,\n"
          "  exit 1). --reason (at most 256 bytes) is kept with it. Copies already delivered\n"
          "  or retrieved are not recalled.\n",
        f);
}

static void
cli_help(FILE *f)
{
    fputs("usage: hie [OPTIONS] COMMAND [ARGS]\n\n"
          "talk to a hie-node over mutual TLS as a member organization.\n\n"
          "options (before the command):\n"
          "  --addr HOST:PORT     node address (env HIE_ADDR, default " CLI_ADDR_DEFAULT ")\n"
          "  --ca FILE            CA certificate the node must chain to (env HIE_CA)\n"
          "  --crl FILE           the CA's CRL: a revoked node certificate is refused\n"
          "                       (env HIE_CRL; default: not checked)\n"
          "  --cert FILE          member certificate (env HIE_CERT)\n"
          "  --key FILE           member private key (env HIE_KEY)\n"
          "  --server-name NAME   node name expected in its certificate (env HIE_SERVER_NAME;\n"
          "                       default the --addr host; '*' checks the CA chain only)\n"
          "  --timeout MS         connect and per-request timeout (default 5000)\n"
          "  --json               one JSON object per output line\n"
          "  --tls12              allow TLS 1.2 (default: TLS 1.3 only)\n"
          "  --tls-max 1.1|1.2|1.3  highest version to offer (tests that the node refuses)\n"
          "  --purpose NAME       purpose of use: unspecified, treatment, emergency, payment,\n"
          "                       operations, public-health, research, patient-request\n"
          "  --id ID              explicit envelope id (default: random)\n"
          "  -h, --help           this help\n"
          "  --version            print the version\n\ncommands:\n",
        f);
    for (size_t i = 0; i < HIE_ARRAY_LEN(cli_cmds); i++) {
        fprintf(f, "  %s %s\n      %s\n", cli_cmds[i].name, cli_cmds[i].args,
            cli_cmds[i].summary);
    }
    fputs("\nDEMOGRAPHICS (feed, pdq, adt; given, family and address repeat):\n"
          "  --mrn MRN --org ORG (default: this certificate's organization)\n"
          "  --given NAME --family NAME --dob YYYY-MM-DD --sex female|male|other|unknown\n"
          "  --address LINE --city CITY --postcode CODE --phone PHONE --email EMAIL\n"
          "  --national-id ID --prior-mrn MRN (merge: the MRN that folds into --mrn)\n"
          "feed and review send purpose 'operations' unless --purpose says otherwise; pix and\n"
          "pdq disclose identities and need an explicit --purpose (or env HIE_PURPOSE).\n"
          "--json may also follow these commands.\n",
        f);
    cli_help_consent_audit(f);
    cli_help_push(f);
    cli_help_adt(f);
    cli_help_query(f);
    fputs("\nexit status: 0 ok, 1 the node answered with an error (code, field and message\n"
          "on stderr), 2 usage error, 3 connection, tls or protocol failure or timeout.\n",
        f);
}

enum cli_opt {
    OPT_ADDR = 256, OPT_CA, OPT_CRL, OPT_CERT, OPT_KEY, OPT_SERVER_NAME, OPT_TIMEOUT, OPT_JSON,
    OPT_TLS12, OPT_TLS_MAX, OPT_PURPOSE, OPT_ID, OPT_VERSION,
};

static const struct option cli_global_options[] = {
    {"addr", required_argument, NULL, OPT_ADDR},
    {"ca", required_argument, NULL, OPT_CA},
    {"crl", required_argument, NULL, OPT_CRL},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"server-name", required_argument, NULL, OPT_SERVER_NAME},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"tls12", no_argument, NULL, OPT_TLS12},
    {"tls-max", required_argument, NULL, OPT_TLS_MAX},
    {"purpose", required_argument, NULL, OPT_PURPOSE},
    {"id", required_argument, NULL, OPT_ID},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static const char *
cli_opt_name(int opt)
{
    for (size_t i = 0; cli_global_options[i].name != NULL; i++) {
        if (cli_global_options[i].val == opt) {
            return cli_global_options[i].name;
        }
    }
    return "?";
}

/* getopt_long's '?' and ':' as our usage line; argv[optind - 1] is the offending word. */
int
hie_cli__getopt_error(int opt, char **argv)
{
    const char *word = optind > 0 ? argv[optind - 1] : "?";
    if (opt == ':') {
        return hie_cli__usage_error("option '%s' needs a value", word);
    }
    return hie_cli__usage_error("unknown option '%s'", word);
}

int
hie_cli__write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? -errno : -EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
hie_cli__write_file_at(int dir_fd, const char *name, const char *tmp, const uint8_t *p,
    size_t len)
{
    (void)unlinkat(dir_fd, tmp, 0);
    int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return -errno;
    }
    int rc = hie_cli__write_all(fd, p, len);
    rc = rc == 0 && fsync(fd) != 0 ? -errno : rc;
    rc = close(fd) != 0 && rc == 0 ? -errno : rc;
    rc = rc == 0 && renameat(dir_fd, tmp, dir_fd, name) != 0 ? -errno : rc;
    if (rc != 0) {
        (void)unlinkat(dir_fd, tmp, 0);
    }
    return rc;
}

const char *
hie_cli__option_name(const struct option *opts, int opt)
{
    for (size_t i = 0; opts[i].name != NULL; i++) {
        if (opts[i].val == opt) {
            return opts[i].name;
        }
    }
    return "?";
}

int
hie_cli__options(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
    const struct option *opts, const char *allowed, const char *note,
    int (*fn)(void *ctx, int opt, char *val), void *ctx)
{
    int opt;
    optind = 0; /* glibc: start over on the subcommand's argv */
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int ex = CLI_CONTINUE;
        if (opt == 'h') {
            printf("usage: hie %s %s\n%s\n%s%s", cmd->name, cmd->args, cmd->summary,
                note != NULL ? note : "", note != NULL ? "\n" : "");
            return CLI_EXIT_OK;
        } else if (opt == '?' || opt == ':') {
            return hie_cli__getopt_error(opt, argv);
        } else if (opt == 'j') {
            cli->json = true;
        } else if (allowed != NULL && strchr(allowed, opt) == NULL) {
            return hie_cli__usage_error("--%s does not apply to %s",
                hie_cli__option_name(opts, opt), cmd->name);
        } else {
            ex = fn(ctx, opt, optarg);
        }
        if (ex != CLI_CONTINUE) {
            return ex;
        }
    }
    return CLI_CONTINUE;
}

/* Applies one global option with a value. Returns CLI_CONTINUE or an exit code. */
static int
cli_global_value(struct cli *cli, int opt, const char *val)
{
    bool ok = true;
    switch (opt) {
    case OPT_ADDR:
        ok = cli_addr_parse(cli, val) == 0;
        break;
    case OPT_CA:
        cli->cfg.ca_file = val;
        break;
    case OPT_CRL:
        cli->cfg.crl_file = val;
        break;
    case OPT_CERT:
        cli->cfg.cert_file = val;
        break;
    case OPT_KEY:
        cli->cfg.key_file = val;
        break;
    case OPT_SERVER_NAME:
        cli->cfg.server_name = val;
        break;
    case OPT_TIMEOUT:
        ok = hie_cli__parse_u32(val, 1, HIE_EDGE_TIMEOUT_MS_MAX, &cli->timeout_ms) == 0;
        break;
    case OPT_TLS_MAX:
        ok = cli_tls_version_parse(val, &cli->tls_max_version) == 0;
        break;
    case OPT_PURPOSE:
        ok = hie_cli__purpose_parse(val, &cli->purpose) == 0;
        cli->purpose_set = true;
        break;
    case OPT_ID:
        ok = hie_proto_id_valid(val, strlen(val));
        cli->id = val;
        break;
    default:
        HIE_ASSERT(false); /* every option with a value has a case */
    }
    if (!ok) {
        return hie_cli__usage_error("invalid value for --%s", cli_opt_name(opt));
    }
    return CLI_CONTINUE;
}

/* Parses the options before the command. Returns CLI_CONTINUE (optind is the command) or an
 * exit code (help, version, usage error). */
static int
cli_parse_global(struct cli *cli, int argc, char **argv)
{
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:h", cli_global_options, NULL)) != -1) {
        int ex = CLI_CONTINUE;
        if (opt == 'h') {
            cli_help(stdout);
            return CLI_EXIT_OK;
        } else if (opt == OPT_VERSION) {
            printf("hie %s\n", HIE_VERSION);
            return CLI_EXIT_OK;
        } else if (opt == OPT_JSON) {
            cli->json = true;
        } else if (opt == OPT_TLS12) {
            cli->tls12 = true;
        } else if (opt == '?' || opt == ':') {
            return hie_cli__getopt_error(opt, argv);
        } else {
            ex = cli_global_value(cli, opt, optarg);
        }
        if (ex != CLI_CONTINUE) {
            return ex;
        }
    }
    if (optind >= argc) {
        return hie_cli__usage_error("no command given");
    }
    return CLI_CONTINUE;
}

static void
cli_init(struct cli *cli)
{
    memset(cli, 0, sizeof(*cli));
    cli->timeout_ms = CLI_TIMEOUT_MS_DEFAULT;
    cli->purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED;
    cli->cfg.ca_file = env_or_null("HIE_CA");
    cli->cfg.crl_file = env_or_null("HIE_CRL");
    cli->cfg.cert_file = env_or_null("HIE_CERT");
    cli->cfg.key_file = env_or_null("HIE_KEY");
    cli->cfg.server_name = env_or_null("HIE_SERVER_NAME");
}

/* Checks what the options left for the client config; an offline command needs no CA nor
 * certificate. Returns CLI_CONTINUE or an exit code. */
static int
cli_config_finish(struct cli *cli, bool offline)
{
    if (cli->addr == NULL) {
        const char *addr = env_or_null("HIE_ADDR");
        if (cli_addr_parse(cli, addr != NULL ? addr : CLI_ADDR_DEFAULT) != 0) {
            return hie_cli__usage_error("invalid HIE_ADDR, expected HOST:PORT");
        }
    }
    const char *purpose = env_or_null("HIE_PURPOSE");
    if (!cli->purpose_set && purpose != NULL) {
        if (hie_cli__purpose_parse(purpose, &cli->purpose) != 0) {
            return hie_cli__usage_error("invalid HIE_PURPOSE");
        }
        cli->purpose_set = true;
    }
    if (cli->cfg.ca_file == NULL && !offline) {
        return hie_cli__usage_error("no ca file: use --ca or HIE_CA");
    }
    if ((cli->cfg.cert_file == NULL) != (cli->cfg.key_file == NULL) && !offline) {
        return hie_cli__usage_error("--cert and --key go together");
    }
    /* Offering only versions above --tls-max would test nothing: lower the minimum to it. */
    int min = cli->tls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
    if (cli->tls_max_version != 0 && cli->tls_max_version < min) {
        min = cli->tls_max_version;
    }
    if (cli->tls_max_version != 0 && cli->tls_max_version < TLS1_2_VERSION) {
        fputs("hie: warning: --tls-max below 1.2 offers an obsolete protocol with OpenSSL's "
              "checks lowered: only to see a node refuse it, never for an exchange\n", stderr);
    }
    cli->cfg.tls_min_version = min;
    cli->cfg.tls_max_version = cli->tls_max_version;
    cli->cfg.connect_timeout_ms = cli->timeout_ms;
    return CLI_CONTINUE;
}

/* Parses a subcommand's options when it has none but -h and --json (which may also follow
 * the command). Returns CLI_CONTINUE or exit code. */
static int
cli_sub_no_options(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
        {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    int opt;
    optind = 0; /* glibc: start over on the subcommand's argv */
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == 'j') {
            cli->json = true;
            continue;
        }
        if (opt == 'h') {
            printf("usage: hie %s %s\n%s\n", cmd->name, cmd->args, cmd->summary);
            return CLI_EXIT_OK;
        }
        return hie_cli__getopt_error(opt, argv);
    }
    if (optind < argc) {
        return hie_cli__usage_error("%s takes no arguments", cmd->name);
    }
    return CLI_CONTINUE;
}

/* ---- requests ---------------------------------------------------------------------------- */

/* Fills env's header: id (--id, with "-SEQ" when seq > 0, or random), purpose and clock.
 * id_buf must outlive env. Returns CLI_CONTINUE or CLI_EXIT_USAGE. */
int
hie_cli__request_init(const struct cli *cli, hie_envelope_t *env, uint32_t seq, char *id_buf,
    size_t id_buf_bytes)
{
    HIE_ASSERT(id_buf_bytes >= HIE_CLIENT_ID_BUF_BYTES);
    HIE_ASSERT(id_buf_bytes > HIE_PROTO_ID_BYTES_MAX);
    hie__v1__envelope__init(env);
    if (cli->id == NULL || seq == HIE_CLI_ID_RANDOM) {
        hie_client_new_id(id_buf, id_buf_bytes);
    } else if (seq == 0) {
        snprintf(id_buf, id_buf_bytes, "%s", cli->id);
    } else {
        int n = snprintf(id_buf, id_buf_bytes, "%s-%" PRIu32, cli->id, seq);
        if (n < 0 || !hie_proto_id_valid(id_buf, (size_t)n)) {
            return hie_cli__usage_error("--id is too long to number repeated requests");
        }
    }
    env->id = id_buf;
    env->purpose = cli->purpose;
    env->created_ms = hie_time_wall_ms();
    return CLI_CONTINUE;
}

/* Creates the client on first use and connects, reporting a failure. Returns an exit code. */
int
hie_cli__connect(struct cli *cli)
{
    if (cli->client == NULL) {
        char err[512];
        int rc = hie_client_create_err(&cli->client, &cli->cfg, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "hie: tls setup failed: %s\n", err);
            return rc == HIE_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_CONN;
        }
    }
    int rc = hie_client_connect(cli->client);
    if (rc != 0) {
        fprintf(stderr, "hie: connect %s failed: %s%s\n", cli->addr,
            rc == HIE_ETLS ? "tls handshake refused: " : "", hie_client_last_error(cli->client));
        return CLI_EXIT_CONN;
    }
    return CLI_EXIT_OK;
}

int
hie_cli__error_reply(const char *what, const Hie__V1__Error *err)
{
    fprintf(stderr, "hie: %s failed: %s: ", what, hie_proto_error_code_name(err->code));
    hie_cli__fputs_safe(stderr, err->message[0] != '\0' ? err->message : "no message");
    if (err->field[0] != '\0') {
        fputs(" (field ", stderr);
        hie_cli__fputs_safe(stderr, err->field);
        fputc(')', stderr);
    }
    fputc('\n', stderr);
    return CLI_EXIT_REPLY;
}

/* Sends req and waits for its reply; reports failures and Error replies. Returns an exit code;
 * on CLI_EXIT_OK *reply is set (owned by arena) and carries the expected body kind. */
int
hie_cli__call(struct cli *cli, const char *what, const hie_envelope_t *req,
    Hie__V1__Envelope__BodyCase expect, hie_arena_t *arena, hie_envelope_t **reply)
{
    int ex = hie_cli__connect(cli);
    if (ex != CLI_EXIT_OK) {
        return ex;
    }
    int rc = hie_client_call(cli->client, req, cli->timeout_ms, arena, reply);
    if (rc != 0) {
        const char *prefix = rc == HIE_ETLS ? "tls: " : "";
        fprintf(stderr, "hie: %s failed: %s%s", what, prefix, hie_client_last_error(cli->client));
        if (rc == HIE_ETIMEDOUT) {
            fprintf(stderr, " (timeout %" PRIu32 " ms)", cli->timeout_ms);
        }
        fputc('\n', stderr);
        const char *again = cli->id != NULL ? cli->id : req->id; /* --id as given: a
                                                                  * numbered part adds -N */
        if (rc != HIE_EINVAL && rc != HIE_ETLS && again != NULL &&
            req->body_case != HIE__V1__ENVELOPE__BODY_WHOAMI) {
            /* it may have reached the node and been applied: a new id would do it twice */
            fprintf(stderr, "hie: the outcome is unknown; the same command with --id %s "
                "answers what the node did, without doing it again\n", again);
        }
        return rc == HIE_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_CONN;
    }
    HIE_ASSERT(*reply != NULL);
    if ((*reply)->body_case == HIE__V1__ENVELOPE__BODY_ERROR) {
        return hie_cli__error_reply(what, (*reply)->error);
    }
    if ((*reply)->body_case != expect) {
        fprintf(stderr, "hie: %s failed: unexpected reply kind %s\n", what,
            hie_proto_body_name(*reply));
        return CLI_EXIT_CONN;
    }
    return CLI_EXIT_OK;
}

int
hie_cli__arena_create(const struct cli *cli, hie_arena_t **arena)
{
    uint32_t frame = cli->cfg.frame_bytes_max != 0 ? cli->cfg.frame_bytes_max
                                                   : HIE_PROTO_FRAME_BYTES_DEFAULT;
    if (hie_arena_create(arena, 3u * (size_t)frame) != 0) {
        fputs("hie: out of memory\n", stderr);
        return CLI_EXIT_CONN;
    }
    return CLI_EXIT_OK;
}

/* ---- whoami ------------------------------------------------------------------------------ */

static void
whoami_print(const struct cli *cli, const Hie__V1__WhoAmIReply *r)
{
    const char *tls = r->tls_version[0] != '\0' ? r->tls_version
                                                : hie_client_tls_version(cli->client);
    const char *cipher = r->cipher[0] != '\0' ? r->cipher : hie_client_tls_cipher(cli->client);
    if (cli->json) {
        fputs("{\"org_id\":", stdout);
        json_str(stdout, r->org_id);
        fputs(",\"display_name\":", stdout);
        json_str(stdout, r->display_name);
        fputs(",\"roles\":[", stdout);
        for (size_t i = 0; i < r->n_roles; i++) {
            fputs(i > 0 ? "," : "", stdout);
            json_str(stdout, hie_proto_role_name(r->roles[i]));
        }
        fputs("],\"node_id\":", stdout);
        json_str(stdout, r->node_id);
        fputs(",\"tls_version\":", stdout);
        json_str(stdout, tls);
        fputs(",\"cipher\":", stdout);
        json_str(stdout, cipher);
        fputs("}\n", stdout);
        return;
    }
    fputs("org=", stdout);
    kv_value(stdout, r->org_id);
    fputs(" name=", stdout);
    json_str(stdout, r->display_name);
    fputs(" roles=", stdout);
    for (size_t i = 0; i < r->n_roles; i++) {
        fprintf(stdout, "%s%s", i > 0 ? "," : "", hie_proto_role_name(r->roles[i]));
    }
    fputs(r->n_roles == 0 ? "\"\" node=" : " node=", stdout);
    kv_value(stdout, r->node_id);
    fputs(" tls=", stdout);
    kv_value(stdout, tls);
    fputs(" cipher=", stdout);
    kv_value(stdout, cipher);
    fputc('\n', stdout);
}

static int
cmd_whoami(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    Hie__V1__WhoAmIRequest body;
    hie_envelope_t req;
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    int ex = cli_sub_no_options(cli, cmd, argc, argv);
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    ex = hie_cli__request_init(cli, &req, 0, id, sizeof(id));
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    hie__v1__who_am_irequest__init(&body);
    req.body_case = HIE__V1__ENVELOPE__BODY_WHOAMI;
    req.whoami = &body;
    ex = hie_cli__arena_create(cli, &arena);
    if (ex != CLI_EXIT_OK) {
        goto out;
    }
    ex = hie_cli__call(cli, "whoami", &req, HIE__V1__ENVELOPE__BODY_WHOAMI_REPLY, arena, &reply);
    if (ex == CLI_EXIT_OK) {
        whoami_print(cli, reply->whoami_reply);
    }
out:
    hie_arena_destroy(&arena);
    return ex;
}

/* ---- ping -------------------------------------------------------------------------------- */

struct ping_stats {
    uint32_t sent;
    uint32_t ok;
    uint64_t rtt_us_min;
    uint64_t rtt_us_max;
    uint64_t rtt_us_sum;
};

static int
ping_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, uint32_t *count,
    const char **payload)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    int opt;
    optind = 0; /* glibc: start over on the subcommand's argv */
    while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        if (opt == 'h') {
            printf("usage: hie %s %s\n%s\n", cmd->name, cmd->args, cmd->summary);
            return CLI_EXIT_OK;
        } else if (opt == 'j') {
            cli->json = true;
        } else if (opt == 'c') {
            if (hie_cli__parse_u32(optarg, 1, CLI_PING_COUNT_MAX, count) != 0) {
                return hie_cli__usage_error("--count must be 1..%u", CLI_PING_COUNT_MAX);
            }
        } else {
            return hie_cli__getopt_error(opt, argv);
        }
    }
    if (argc - optind > 1) {
        return hie_cli__usage_error("ping takes at most one payload");
    }
    *payload = optind < argc ? argv[optind] : "";
    if (strlen(*payload) > HIE_PROTO_PING_PAYLOAD_BYTES_MAX) {
        return hie_cli__usage_error("the payload is longer than %u bytes",
            HIE_PROTO_PING_PAYLOAD_BYTES_MAX);
    }
    return CLI_CONTINUE;
}

static void
ping_print(const struct cli *cli, uint32_t seq, const Hie__V1__Pong *pong, uint64_t rtt_us)
{
    if (cli->json) {
        printf("{\"seq\":%" PRIu32 ",\"node_id\":", seq);
        json_str(stdout, pong->node_id);
        printf(",\"rtt_us\":%" PRIu64 "}\n", rtt_us);
        return;
    }
    fputs("pong node=", stdout);
    kv_value(stdout, pong->node_id);
    printf(" rtt_us=%" PRIu64 "\n", rtt_us);
}

/* One ping: connect outside the timing, call, check the echo. id_seq numbers an explicit --id
 * (0: use it as given). Returns an exit code. */
static int
ping_once(struct cli *cli, uint32_t seq, uint32_t id_seq, const char *payload,
    struct ping_stats *st)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    Hie__V1__Ping body;
    hie_envelope_t req;
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    int ex = hie_cli__request_init(cli, &req, id_seq, id, sizeof(id));
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    hie__v1__ping__init(&body);
    body.payload.data = (uint8_t *)(uintptr_t)payload; /* protobuf-c's field is not const */
    body.payload.len = strlen(payload);
    req.body_case = HIE__V1__ENVELOPE__BODY_PING;
    req.ping = &body;
    ex = hie_cli__arena_create(cli, &arena);
    if (ex == CLI_EXIT_OK) {
        ex = hie_cli__connect(cli);
    }
    if (ex != CLI_EXIT_OK) {
        goto out;
    }
    uint64_t start_ns = hie_time_mono_ns();
    st->sent++;
    ex = hie_cli__call(cli, "ping", &req, HIE__V1__ENVELOPE__BODY_PONG, arena, &reply);
    uint64_t rtt_us = (hie_time_mono_ns() - start_ns) / 1000u;
    if (ex != CLI_EXIT_OK) {
        goto out;
    }
    const Hie__V1__Pong *pong = reply->pong;
    if (pong->payload.len != body.payload.len ||
        (body.payload.len > 0 && memcmp(pong->payload.data, payload, body.payload.len) != 0)) {
        fputs("hie: ping failed: the pong does not echo the payload\n", stderr);
        ex = CLI_EXIT_CONN;
        goto out;
    }
    st->ok++;
    st->rtt_us_min = st->ok == 1 || rtt_us < st->rtt_us_min ? rtt_us : st->rtt_us_min;
    st->rtt_us_max = rtt_us > st->rtt_us_max ? rtt_us : st->rtt_us_max;
    st->rtt_us_sum += rtt_us;
    ping_print(cli, seq, pong, rtt_us);
out:
    hie_arena_destroy(&arena);
    return ex;
}

static void
ping_summary(const struct cli *cli, const struct ping_stats *st)
{
    HIE_ASSERT(st->ok > 0);
    HIE_ASSERT(st->ok <= st->sent);
    uint64_t avg = st->rtt_us_sum / st->ok;
    if (cli->json) {
        printf("{\"pings\":%" PRIu32 ",\"ok\":%" PRIu32 ",\"rtt_us_min\":%" PRIu64
               ",\"rtt_us_avg\":%" PRIu64 ",\"rtt_us_max\":%" PRIu64 "}\n",
            st->sent, st->ok, st->rtt_us_min, avg, st->rtt_us_max);
    } else {
        printf("pings=%" PRIu32 " ok=%" PRIu32 " rtt_us_min=%" PRIu64 " rtt_us_avg=%" PRIu64
               " rtt_us_max=%" PRIu64 "\n",
            st->sent, st->ok, st->rtt_us_min, avg, st->rtt_us_max);
    }
}

static int
cmd_ping(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct ping_stats st = {0, 0, 0, 0, 0};
    uint32_t count = 1;
    const char *payload = NULL;
    int ex = ping_parse(cli, cmd, argc, argv, &count, &payload);
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    HIE_ASSERT(count >= 1 && count <= CLI_PING_COUNT_MAX);
    for (uint32_t seq = 1; seq <= count; seq++) {
        ex = ping_once(cli, seq, count > 1 ? seq : 0, payload, &st);
        if (ex != CLI_EXIT_OK) {
            return ex; /* the error line says why; no summary for a broken run */
        }
    }
    ping_summary(cli, &st);
    return CLI_EXIT_OK;
}

/* ---- main -------------------------------------------------------------------------------- */

static const struct cli_cmd *
cli_cmd_find(const char *name)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(cli_cmds); i++) {
        if (strcmp(cli_cmds[i].name, name) == 0) {
            return &cli_cmds[i];
        }
    }
    return NULL;
}

/* True for a command that never connects: `audit verify` (checks a saved report with the
 * verifier key alone) and any command's --help. argv starts at the command name. */
static bool
cli_cmd_offline(const struct cli_cmd *cmd, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            return true;
        }
    }
    return strcmp(cmd->name, "audit") == 0 && hie_cli__audit_is_verify(argc, argv);
}

int
main(int argc, char **argv)
{
    struct cli cli;
    cli_init(&cli);
    /* A node that closes first must give an error, not kill us (see client.h caveats). */
    signal(SIGPIPE, SIG_IGN);
    int ex = cli_parse_global(&cli, argc, argv);
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    const struct cli_cmd *cmd = cli_cmd_find(argv[optind]);
    if (cmd == NULL) {
        return hie_cli__usage_error("unknown command '%s'", argv[optind]);
    }
    int cmd_index = optind;
    ex = cli_config_finish(&cli, cli_cmd_offline(cmd, argc - cmd_index, argv + cmd_index));
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    ex = cmd->run(&cli, cmd, argc - cmd_index, argv + cmd_index);
    hie_client_destroy(&cli.client);
    if (ex == CLI_CONTINUE) {
        ex = CLI_EXIT_OK;
    }
    if (fflush(stdout) != 0 && ex == CLI_EXIT_OK) {
        ex = CLI_EXIT_CONN; /* output lost (closed pipe, full disk): do not claim success */
    }
    return ex;
}
