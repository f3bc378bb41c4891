/*
 * cli_audit.c - `hie audit report|checkpoint|verify`: disclosure reports for auditors (issue 4)
 * and their offline verification against the node's tamper-evident audit log.
 *
 * report asks the node for one kind of report (accounting of one patient's disclosures, one
 * organization's accesses, every break-glass disclosure), page by page (--all follows
 * next_page_token, at most AUDIT_PAGES_MAX pages). Every page proves its entries against its
 * own signed checkpoint, and the tree grows between pages (the report itself is audited), so
 * each page after the first asks a consistency proof from the page before it, and the first
 * from --previous when given: the pages form one chain of checkpoints, each proven to extend
 * the one before. Everything is kept in one JSON document (format AUDIT_REPORT_FORMAT): the
 * decoded entries, the raw record and subject bytes (base64), the proofs, every page's
 * checkpoint and the verifier key. That document is the json format and what --out saves;
 * csv and fhir are renderings of it. --summarize (an accounting) adds "summary": one group per
 * recipient, purpose, decision and patient (HIPAA §164.528(b)(3)), which csv then renders.
 *
 * verify needs no connection: it checks every checkpoint's signature with the auditor's
 * trusted verifier key (hie/audit.h), each entry's leaf hash and inclusion proof against its
 * page's root, each subject against its commitment in the record, the decoded fields against
 * the raw bytes, the chain of consistency proofs, and a saved summary against the entries
 * it summarizes. What it cannot prove offline: that the node left nothing out of a report
 * (NEEDSWORK: completeness needs the node's index to be committed to as well, e.g. a
 * per-patient Merkle map).
 *
 * Patient data: reports carry EUIDs and disclosed identifiers; they are printed or saved
 * (mode 0600) only as the result asked for, never in error lines. Callers: hie_cli.c's table.
 */
#include "cli_int.h"
#include "consent_json.h"

#include "hie/audit.h"
#include "hie/consent.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --all stops here: 10,000 pages of up to 1,000 entries is far more than any real accounting. */
#define AUDIT_PAGES_MAX 10000u
/* A saved report of AUDIT_PAGES_MAX full pages would not fit in memory anyway. */
#define AUDIT_REPORT_FILE_BYTES_MAX (1024u * 1024u * 1024u)
/* The replies a report may gather: in JSON (base64, decoded copies) they grow about twice,
 * and a report past AUDIT_REPORT_FILE_BYTES_MAX could be saved but never verified. */
#define AUDIT_REPORT_REPLY_BYTES_MAX (AUDIT_REPORT_FILE_BYTES_MAX / 2u)
#define AUDIT_VKEY_FILE_BYTES_MAX 1024u
/* The node's page tokens are 32 or 36 hex digits. */
#define AUDIT_TOKEN_BYTES_MAX 96u
/* An accounting's earlier EUIDs (the node's HIE_MPI_IDENTITY_SPANS_MAX). */
#define AUDIT_IDENTITY_SPANS_MAX 64u
/* Decoding one page's records and subjects (grows as needed, up to this). */
#define AUDIT_DECODE_ARENA_BYTES (64u * 1024u * 1024u)
/* verify prints at most this many problems, then only counts them. */
#define AUDIT_FAILURES_PRINTED_MAX 50u
#define AUDIT_REPORT_FORMAT "hie-audit-report/1"
#define AUDIT_FHIR_EXT_URL "https://hiebroker.example/fhir/StructureDefinition/audit-log-entry"

enum audit_format { FORMAT_CSV = 1, FORMAT_JSON, FORMAT_FHIR };

struct audit_args {
    Hie__V1__AuditReportKind kind;
    const char *mrn;
    const char *org;
    const char *euid;
    const char *org_id;
    int64_t from_ms;
    int64_t to_ms;
    bool include_excluded;
    bool summarize;             /* accounting: repeated disclosures summarized (csv, json) */
    bool all;
    bool partial;               /* verify: a report of some pages only may pass */
    uint32_t page_size;
    const char *page_token;
    enum audit_format format;
    const char *out;
    const char *previous;
    const char *vkey;
    char given[24];             /* short letters of the options given */
    const char *const *words;   /* after "audit": the action and its arguments */
    int words_count;
};

/* ---- small JSON and base64 helpers ------------------------------------------------------- */

static json_t *
b64_json(const uint8_t *data, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *s = malloc(cap);
    if (s == NULL) {
        return json_null();
    }
    sodium_bin2base64(s, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
    json_t *j = json_string(s);
    free(s);
    return j != NULL ? j : json_null();
}

static json_t *
b64_array(const ProtobufCBinaryData *items, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_array_append_new(arr, b64_json(items[i].data, items[i].len));
    }
    return arr;
}

/* j, a base64 string: [out] *buf (malloc'd, the caller frees it) and *len. 0 or HIE_EINVAL. */
static int
b64_get(const json_t *j, uint8_t **buf, size_t *len)
{
    const char *s = json_string_value(j);
    *buf = NULL;
    *len = 0;
    if (s == NULL) {
        return HIE_EINVAL;
    }
    size_t slen = strlen(s), cap = slen / 4u * 3u + 3u;
    uint8_t *b = malloc(cap);
    if (b == NULL || sodium_base642bin(b, cap, s, slen, NULL, len, NULL,
                         sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(b);
        return HIE_EINVAL;
    }
    *buf = b;
    return 0;
}

static int
hash_get(const json_t *j, hie_audit_hash_t *out)
{
    uint8_t *b = NULL;
    size_t len = 0;
    int rc = b64_get(j, &b, &len);
    rc = rc == 0 && len != HIE_AUDIT_HASH_BYTES ? HIE_EINVAL : rc;
    if (rc == 0) {
        memcpy(out->bytes, b, HIE_AUDIT_HASH_BYTES);
    }
    free(b);
    return rc;
}

static int
proof_get(const json_t *arr, hie_audit_proof_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_array(arr) || json_array_size(arr) > HIE_AUDIT_PROOF_HASHES_MAX) {
        return HIE_EINVAL;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if (hash_get(json_array_get(arr, i), &out->hashes[i]) != 0) {
            return HIE_EINVAL;
        }
    }
    out->count = json_array_size(arr);
    return 0;
}

static const char *
jget_s(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static uint64_t
jget_u(const json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

static json_t *
time_json(int64_t ms)
{
    char t[CLI_TIME_TEXT_BYTES];
    return json_string(hie_cli__time_format(ms, t, sizeof(t)));
}

/* Writes text to path (reports carry patient data): a new 0600 file beside it, never
 * through a link, synced, then renamed over path, so a failure leaves no half report and an
 * existing file (a world-readable copy) is replaced, not written into. A path that is there
 * and is not a regular file (a link, /dev/stdout, a device) is refused: replacing it could
 * be worse than writing through it. */
static int
out_write(const char *path, const char *text)
{
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "hie: --out %s: not a regular file (a link or a device): name a "
            "file, or leave --out out to print the report\n", path);
        return CLI_EXIT_USAGE;
    }
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.hie-tmp", path);
    int rc = n < 0 || (size_t)n >= sizeof(tmp) ? -ENAMETOOLONG
        : text == NULL ? -ENOMEM
        : hie_cli__write_file_at(AT_FDCWD, path, tmp, (const uint8_t *)text, strlen(text));
    if (rc != 0) {
        fprintf(stderr, "hie: cannot write %s: %s\n", path, strerror(-rc));
        return rc == -ENOMEM || rc == -EIO || rc == -ENOSPC ? CLI_EXIT_CONN : CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

/* ---- decoding records and subjects ------------------------------------------------------- */

static const char *const audit_action_names[] = {"unspecified", "pix", "pdq", "record-query",
    "push", "notify", "report", "retrieve", "review-list", "query-forward"};

static const char *
audit_action_name(Hie__V1__AuditAction a)
{
    return (unsigned)a < HIE_ARRAY_LEN(audit_action_names) ? audit_action_names[a] : "unknown";
}

static json_t *
hex_json(const ProtobufCBinaryData *b)
{
    char hex[2u * HIE_AUDIT_HASH_BYTES + 1u];
    if (b->len != HIE_AUDIT_HASH_BYTES) {
        return json_null();
    }
    sodium_bin2hex(hex, sizeof(hex), b->data, b->len);
    return json_string(hex);
}

/* The record bytes as JSON fields; NULL when they do not decode. */
static json_t *
record_decode(hie_span_t bytes, hie_arena_t *arena)
{
    ProtobufCMessage *m = NULL;
    hie_errinfo_t info = {NULL, NULL};
    if (hie_proto_unpack_checked(&hie__v1__audit_record__descriptor, bytes, arena, &m, &info,
            "record") != 0) {
        return NULL;
    }
    const Hie__V1__AuditRecord *r = (const Hie__V1__AuditRecord *)m;
    json_t *roles = json_array(), *commits = json_array();
    for (size_t i = 0; i < r->n_requester_roles; i++) {
        json_array_append_new(roles, json_string(hie_proto_role_name(r->requester_roles[i])));
    }
    for (size_t i = 0; i < r->n_subject_commitments; i++) {
        json_array_append_new(commits, hex_json(&r->subject_commitments[i]));
    }
    json_t *o = json_pack("{s:I, s:I, s:o, s:I, s:o, s:o, s:o}", "leaf_index",
        (json_int_t)r->leaf_index, "log_index", (json_int_t)r->log_index, "time",
        time_json(r->time_ms), "time_ms", (json_int_t)r->time_ms, "node_id",
        hie_cli__jstr(r->node_id), "requester_org", hie_cli__jstr(r->requester_org),
        "requester_roles", roles);
    if (o != NULL && r->recipient_org != NULL && r->recipient_org[0] != '\0') {
        json_object_set_new(o, "recipient_org", json_string(r->recipient_org));
    }
    json_t *o2 = json_pack("{s:s, s:s, s:o, s:s, s:I, s:I, s:b, s:b, s:o}", "purpose",
        hie_proto_purpose_name(r->purpose), "action", audit_action_name(r->action),
        "request_id", hie_cli__jstr(r->request_id), "outcome",
        r->outcome == 0 ? "success" : hie_proto_error_code_name(r->outcome), "patients_count",
        (json_int_t)r->patients_count, "disclosed_count", (json_int_t)r->disclosed_count,
        "break_glass", r->break_glass, "any_denied", r->any_denied, "subject_commitments",
        commits);
    if (o == NULL || o2 == NULL || json_object_update(o, o2) != 0) {
        json_decref(o);
        json_decref(o2);
        return NULL;
    }
    json_decref(o2);
    return o;
}

/* One subject's bytes as JSON fields (position: its commitment's index); NULL if undecodable. */
static json_t *
subject_decode(hie_span_t bytes, uint32_t position, hie_arena_t *arena)
{
    ProtobufCMessage *m = NULL;
    hie_errinfo_t info = {NULL, NULL};
    if (hie_proto_unpack_checked(&hie__v1__audit_subject__descriptor, bytes, arena, &m, &info,
            "subject") != 0) {
        return NULL;
    }
    const Hie__V1__AuditSubject *s = (const Hie__V1__AuditSubject *)m;
    json_t *ids = json_array(), *labels = json_array();
    for (size_t i = 0; i < s->n_disclosed; i++) {
        json_array_append_new(ids, json_pack("{s:o, s:o}", "org_id",
            hie_cli__jstr(s->disclosed[i]->org_id), "mrn", hie_cli__jstr(s->disclosed[i]->mrn)));
    }
    for (unsigned l = 0; l < HIE_CONSENT_LABELS_COUNT; l++) {
        if ((s->redacted_labels & HIE_CONSENT_LABEL_BIT(l)) != 0) {
            json_array_append_new(labels, json_string(hie_consent_label_name(l)));
        }
    }
    return json_pack("{s:I, s:o, s:b, s:o, s:o, s:I, s:b, s:b, s:I, s:o, s:o}", "position",
        (json_int_t)position, "euid", hie_cli__jstr(s->euid), "permitted", s->permitted,
        "reason", hie_cli__jstr(s->reason), "directive_id", hie_cli__jstr(s->directive_id),
        "directive_version", (json_int_t)s->directive_version, "break_glass", s->break_glass,
        "accounting_excluded", s->accounting_excluded, "disclosed_count",
        (json_int_t)s->disclosed_count, "disclosed", ids, "redacted_labels", labels);
}

/* ---- fetching a report ------------------------------------------------------------------- */

static json_t *
u32_array(const uint32_t *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_array_append_new(arr, json_integer((json_int_t)v[i]));
    }
    return arr;
}

/* One entry of a page: decoded fields and the raw bytes and proof. NULL: it does not decode. */
static json_t *
entry_json(const Hie__V1__AuditReportEntry *en, uint32_t page, hie_arena_t *arena)
{
    json_t *rec = record_decode(hie_span(en->record.data, en->record.len), arena);
    json_t *subs = json_array();
    bool ok = rec != NULL && subs != NULL && en->n_subjects == en->n_subject_positions;
    for (size_t i = 0; ok && i < en->n_subjects; i++) {
        json_t *s = subject_decode(hie_span(en->subjects[i].data, en->subjects[i].len),
            en->subject_positions[i], arena);
        ok = s != NULL && json_array_append_new(subs, s) == 0;
    }
    if (!ok) {
        json_decref(rec);
        json_decref(subs);
        return NULL;
    }
    json_t *raw = json_pack("{s:o, s:o, s:o, s:o}", "record",
        b64_json(en->record.data, en->record.len), "subjects",
        b64_array(en->subjects, en->n_subjects), "subject_positions",
        u32_array(en->subject_positions, en->n_subject_positions), "inclusion_proof",
        b64_array(en->inclusion_proof, en->n_inclusion_proof));
    return json_pack("{s:I, s:I, s:o, s:o, s:o}", "page", (json_int_t)page, "leaf_index",
        (json_int_t)en->leaf_index, "record", rec, "subjects", subs, "raw", raw);
}

/* Adds one reply page to the report: its head and proofs to "pages", its entries to
 * "entries", and the newest head at the top level. Returns an exit code. */
static int
page_add(json_t *report, uint32_t page, const Hie__V1__AuditReportReply *r, uint64_t prev_size,
    const char *token_in)
{
    hie_arena_t *arena = NULL;
    json_t *entries = json_object_get(report, "entries");
    json_t *pj = json_pack("{s:I, s:o, s:o, s:I, s:o, s:I}", "tree_size",
        (json_int_t)r->tree_size, "root", b64_json(r->root.data, r->root.len), "checkpoint",
        hie_cli__jstr(r->checkpoint), "prev_tree_size", (json_int_t)prev_size,
        "consistency_proof", b64_array(r->consistency_proof, r->n_consistency_proof),
        "entries_count", (json_int_t)r->n_entries);
    if (pj != NULL) { /* what the page note signs: the tokens that chain the pages */
        json_object_set_new(pj, "page_token", json_string(token_in));
        json_object_set_new(pj, "next_page_token", hie_cli__jstr(r->next_page_token));
        json_object_set_new(pj, "page_note", hie_cli__jstr(r->page_note));
    }
    int ex = pj == NULL || hie_arena_create(&arena, AUDIT_DECODE_ARENA_BYTES) != 0
        ? CLI_EXIT_CONN : CLI_EXIT_OK;
    json_t *ident = r->n_identity > 0 && ex == CLI_EXIT_OK ? json_array() : NULL;
    for (size_t i = 0; ident != NULL && i < r->n_identity; i++) {
        json_array_append_new(ident, json_pack("{s:o, s:I, s:I}", "euid",
            hie_cli__jstr(r->identity[i]->euid), "from_ms", (json_int_t)r->identity[i]->from_ms,
            "to_ms", (json_int_t)r->identity[i]->to_ms));
    }
    if (ident != NULL) {
        json_object_set_new(pj, "identity", ident); /* an accounting: the patient's EUIDs */
        json_object_set_new(pj, "identity_note", hie_cli__jstr(r->identity_note));
    }
    for (size_t i = 0; ex == CLI_EXIT_OK && i < r->n_entries; i++) {
        json_t *e = entry_json(r->entries[i], page, arena);
        if (e == NULL) {
            fprintf(stderr, "hie: audit report failed: entry %zu of page %" PRIu32
                " does not decode\n", i, page);
            ex = CLI_EXIT_CONN;
        } else {
            json_array_append_new(entries, e);
        }
    }
    hie_arena_destroy(&arena);
    if (ex != CLI_EXIT_OK) {
        json_decref(pj);
        return ex;
    }
    json_array_append_new(json_object_get(report, "pages"), pj);
    json_object_set_new(report, "tree_size", json_integer((json_int_t)r->tree_size));
    json_object_set_new(report, "root", b64_json(r->root.data, r->root.len));
    json_object_set_new(report, "checkpoint", hie_cli__jstr(r->checkpoint));
    json_object_set_new(report, "verifier_key", hie_cli__jstr(r->verifier_key));
    return CLI_EXIT_OK;
}

static void
report_request(const struct audit_args *a, Hie__V1__AuditReportRequest *q,
    Hie__V1__PatientId *pid, const char *token, uint64_t prev_size)
{
    hie__v1__audit_report_request__init(q);
    hie__v1__patient_id__init(pid);
    q->kind = a->kind;
    if (a->mrn != NULL) {
        pid->org_id = (char *)(uintptr_t)a->org;
        pid->mrn = (char *)(uintptr_t)a->mrn;
        q->patient = pid;
    }
    q->euid = (char *)(uintptr_t)(a->euid != NULL ? a->euid : "");
    q->org_id = (char *)(uintptr_t)(a->org_id != NULL ? a->org_id : "");
    q->from_ms = a->from_ms;
    q->to_ms = a->to_ms;
    q->page_size = a->page_size;
    q->page_token = (char *)(uintptr_t)token;
    q->include_excluded = a->include_excluded;
    q->prev_tree_size = prev_size;
}

/* Fetches the pages into report. prev_size: the --previous checkpoint's size, or 0.
 * Returns an exit code. */
static int
report_fetch(struct cli *cli, const struct audit_args *a, uint64_t prev_size, json_t *report)
{
    char token[AUDIT_TOKEN_BYTES_MAX + 1];
    snprintf(token, sizeof(token), "%s", a->page_token != NULL ? a->page_token : "");
    uint64_t gathered = 0;
    for (uint32_t page = 0; page < AUDIT_PAGES_MAX; page++) {
        hie_arena_t *arena = NULL;
        hie_envelope_t *reply = NULL;
        Hie__V1__AuditReportRequest q;
        Hie__V1__PatientId pid;
        hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
        report_request(a, &q, &pid, token, prev_size);
        req.body_case = HIE__V1__ENVELOPE__BODY_AUDIT_REPORT;
        req.audit_report = &q;
        int ex = hie_cli__exchange(cli, "audit report", &req, page,
            HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY, &arena, &reply);
        const Hie__V1__AuditReportReply *r = ex == CLI_EXIT_OK ? reply->audit_report_reply : NULL;
        if (r != NULL && (strlen(r->next_page_token) > AUDIT_TOKEN_BYTES_MAX ||
                          strspn(r->next_page_token, "0123456789abcdef") !=
                              strlen(r->next_page_token))) {
            /* hex: it is printed for the next command and saved in the report */
            fputs("hie: audit report failed: the node sent a page token that is not short "
                  "hex\n", stderr);
            ex = CLI_EXIT_CONN;
        }
        gathered += r != NULL ? hie__v1__audit_report_reply__get_packed_size(r) : 0;
        if (ex == CLI_EXIT_OK && gathered > AUDIT_REPORT_REPLY_BYTES_MAX) {
            fprintf(stderr, "hie: audit report failed: over %u MiB of replies after %u pages "
                "(more than audit verify reads): ask for a shorter period\n",
                AUDIT_REPORT_REPLY_BYTES_MAX >> 20, page + 1);
            ex = CLI_EXIT_CONN;
        }
        ex = ex != CLI_EXIT_OK ? ex : page_add(report, page, r, prev_size, token);
        if (ex == CLI_EXIT_OK) {
            snprintf(token, sizeof(token), "%s", r->next_page_token);
            prev_size = r->tree_size; /* the next page proves it extends this one */
        }
        hie_arena_destroy(&arena);
        if (ex != CLI_EXIT_OK || token[0] == '\0') {
            return ex;
        }
        if (!a->all) {
            json_object_set_new(report, "next_page_token", json_string(token));
            fprintf(stderr, "hie: audit report: more entries: use --all, or --page-token %s\n",
                token);
            return CLI_EXIT_OK;
        }
    }
    fprintf(stderr, "hie: audit report failed: stopped after %u pages\n", AUDIT_PAGES_MAX);
    return CLI_EXIT_CONN;
}

/* ---- checkpoints and verifier keys ------------------------------------------------------ */

/* A verifier key given as its text or as a file holding it. Returns 0 or an exit code. */
static int
vkey_load(const char *arg, hie_audit_vkey_t *vkey)
{
    if (hie_audit_vkey_parse(hie_span(arg, strlen(arg)), vkey) == 0) {
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    if (hie_cli__file_read(arg, AUDIT_VKEY_FILE_BYTES_MAX, &text, &len) == 0) {
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
                              text[len - 1] == ' ')) {
            len--;
        }
        int rc = hie_audit_vkey_parse(hie_span(text, len), vkey);
        free(text);
        if (rc == 0) {
            return 0;
        }
    }
    return hie_cli__usage_error("--vkey: not a verifier key (NAME+HEX8+BASE64) or a file with one");
}

/* A checkpoint file: the signed note itself, or a saved report (its newest checkpoint).
 * [out] *note: malloc'd text the caller frees. Returns an exit code. */
static int
note_load(const char *path, char **note)
{
    char *text = NULL;
    size_t len = 0;
    *note = NULL;
    int rc = hie_cli__file_read(path, AUDIT_REPORT_FILE_BYTES_MAX, &text, &len);
    if (rc != 0) {
        fprintf(stderr, "hie: cannot read %s: %s\n", path, hie_strerror(rc));
        return CLI_EXIT_USAGE;
    }
    if (len == 0 || text[0] != '{') {
        *note = text;
        return CLI_EXIT_OK;
    }
    free(text);
    json_t *j = NULL;
    int ex = hie_cli__json_load(path, AUDIT_REPORT_FILE_BYTES_MAX, "checkpoint", &j);
    const char *cp = ex == CLI_EXIT_OK ? jget_s(j, "checkpoint") : "";
    if (ex == CLI_EXIT_OK && cp[0] == '\0') {
        fprintf(stderr, "hie: %s: a report without a checkpoint\n", path);
        ex = CLI_EXIT_USAGE;
    }
    *note = ex == CLI_EXIT_OK ? strdup(cp) : NULL;
    json_decref(j);
    return ex != CLI_EXIT_OK ? ex : *note != NULL ? CLI_EXIT_OK : CLI_EXIT_CONN;
}

/* Parses note and checks its signature by vkey, for the log vkey names (C2SP: the key name is
 * the origin). [out] *head. Returns 0, or a static reason. */
static const char *
note_verify(const char *note, const hie_audit_vkey_t *vkey, hie_audit_tree_head_t *head)
{
    hie_audit_checkpoint_t cp;
    hie_errinfo_t info = {NULL, NULL};
    if (hie_audit_checkpoint_parse(hie_span(note, strlen(note)), &cp, &info) != 0) {
        return "the checkpoint is malformed";
    }
    int rc = hie_audit_checkpoint_verify(&cp, vkey, vkey->name);
    if (rc == HIE_ENOTFOUND) {
        return "the checkpoint has no signature by this verifier key";
    }
    if (rc != 0) {
        return strcmp(cp.origin, vkey->name) != 0 ? "the checkpoint is for another log (origin)"
                                                    : "the checkpoint's signature does not verify";
    }
    *head = cp.head;
    return NULL;
}

/* ---- report command ---------------------------------------------------------------------- */

static const char *
kind_name(Hie__V1__AuditReportKind k)
{
    return k == HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING  ? "accounting"
        : k == HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ORG_ACCESS ? "org-access"
                                                                   : "break-glass";
}

static json_t *
report_new(const struct audit_args *a)
{
    json_t *query = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:b}", "kind",
        kind_name(a->kind), "patient", a->mrn != NULL ? json_pack("{s:o, s:o}", "org_id",
        hie_cli__jstr(a->org), "mrn", hie_cli__jstr(a->mrn)) : json_null(), "euid",
        a->euid != NULL ? hie_cli__jstr(a->euid) : json_null(), "org_id",
        a->org_id != NULL ? hie_cli__jstr(a->org_id) : json_null(), "from",
        a->from_ms > 0 ? time_json(a->from_ms) : json_null(), "to",
        a->to_ms > 0 ? time_json(a->to_ms) : json_null(), "include_excluded",
        a->include_excluded);
    if (query != NULL && a->page_token != NULL) { /* started part way: verify says partial */
        json_object_set_new(query, "page_token", json_string(a->page_token));
    }
    return json_pack("{s:s, s:o, s:o, s:o, s:o}", "format", AUDIT_REPORT_FORMAT, "query", query,
        "fetched", time_json(hie_time_wall_ms()), "pages", json_array(), "entries",
        json_array());
}

/* --previous: the checkpoint's size to ask a consistency proof from, kept in the report. */
static int
report_previous(const struct audit_args *a, json_t *report, uint64_t *prev_size)
{
    char *note = NULL;
    *prev_size = 0;
    if (a->previous == NULL) {
        return CLI_EXIT_OK;
    }
    int ex = note_load(a->previous, &note);
    hie_audit_checkpoint_t cp;
    hie_errinfo_t info = {NULL, NULL};
    if (ex == CLI_EXIT_OK &&
        hie_audit_checkpoint_parse(hie_span(note, strlen(note)), &cp, &info) != 0) {
        fprintf(stderr, "hie: --previous %s: not a checkpoint (%s)\n", a->previous,
            info.reason != NULL ? info.reason : "malformed");
        ex = CLI_EXIT_USAGE;
    }
    if (ex == CLI_EXIT_OK) {
        *prev_size = cp.head.size;
        json_object_set_new(report, "previous", json_pack("{s:I, s:o, s:s}", "tree_size",
            (json_int_t)cp.head.size, "root", b64_json(cp.head.root.bytes, HIE_AUDIT_HASH_BYTES),
            "checkpoint", note));
    }
    free(note);
    return ex;
}

static int csv_write(FILE *f, const json_t *report);
static int csv_summary_write(FILE *f, const json_t *summary);
static json_t *summary_build(const json_t *report);
static json_t *fhir_bundle(const json_t *report);

static int
report_output(const struct cli *cli, const struct audit_args *a, json_t *report)
{
    int ex = CLI_EXIT_OK;
    if (a->out != NULL) {
        char *text = json_dumps(report, JSON_INDENT(1));
        ex = out_write(a->out, text);
        free(text);
    }
    enum audit_format format = a->format != 0 ? a->format : cli->json ? FORMAT_JSON : FORMAT_CSV;
    if (ex != CLI_EXIT_OK) {
        return ex;
    } else if (format == FORMAT_JSON) {
        return hie_cli__json_emit(json_incref(report));
    } else if (format == FORMAT_FHIR) {
        return hie_cli__json_emit(fhir_bundle(report));
    }
    const json_t *summary = json_object_get(report, "summary");
    return summary != NULL ? csv_summary_write(stdout, summary) : csv_write(stdout, report);
}

static int
audit_report(struct cli *cli, const struct audit_args *args)
{
    uint64_t prev_size = 0;
    struct audit_args q = *args;
    const struct audit_args *a = &q;
    /* Every page is audited too, and an accounting shows its patient's reports: without an
     * end, --all would chase the records its own pages add. The report is as of now. */
    q.to_ms = q.to_ms != 0 ? q.to_ms : hie_time_wall_ms();
    if (q.from_ms >= q.to_ms) {
        return hie_cli__usage_error("--from must be before --to (default: now)");
    }
    json_t *report = report_new(a);
    if (report == NULL) {
        fputs("hie: out of memory\n", stderr);
        return CLI_EXIT_CONN;
    }
    int ex = report_previous(a, report, &prev_size);
    ex = ex != CLI_EXIT_OK ? ex : report_fetch(cli, a, prev_size, report);
    if (ex == CLI_EXIT_OK && a->summarize) { /* saved with the report; verify checks it */
        json_t *summary = summary_build(report);
        if (summary == NULL || json_object_set_new(report, "summary", summary) != 0) {
            fputs("hie: out of memory\n", stderr);
            ex = CLI_EXIT_CONN;
        }
    }
    ex = ex != CLI_EXIT_OK ? ex : report_output(cli, a, report);
    json_decref(report);
    return ex;
}

/* ---- csv --------------------------------------------------------------------------------- */

/* One field (RFC 4180): quoted when it holds a comma, quote, CR or LF; a leading = + - @ gets
 * a ' first so that a spreadsheet never runs it as a formula (OWASP CSV injection). Text the
 * node sent is shown as every other output shows it: a control, escape or bidirectional
 * character becomes '?' (a hostile node's ESC sequences reached the auditor's terminal). */
static void
csv_field(FILE *f, const char *s, bool last)
{
    bool quote = strpbrk(s, ",\"\r\n") != NULL;
    bool formula = strchr("=+-@\t\r", s[0]) != NULL && s[0] != '\0';
    if (quote) {
        fputc('"', f);
    }
    if (formula) {
        fputc('\'', f);
    }
    for (size_t i = 0; s[i] != '\0';) {
        bool bad = false;
        size_t n = hie_text_char(s + i, &bad);
        if (s[i] == '"') {
            fputc('"', f);
        }
        if (bad) {
            fputc('?', f);
        } else {
            fwrite(s + i, 1, n, f);
        }
        i += n;
    }
    if (quote) {
        fputc('"', f);
    }
    fputs(last ? "\r\n" : ",", f);
}

/* "identifiers (3) for PIX", or what a denial or a report is. */
static void
csv_description(const json_t *rec, const json_t *sub, char *out, size_t cap)
{
    static const struct {
        const char *action, *what, *label;
    } words[] = {{"pix", "identifiers", "PIX"}, {"pdq", "demographics and identifiers", "PDQ"},
        {"record-query", "documents", "record query"}, {"push", "documents", "push"},
        {"notify", "notifications", "notification"},
        {"retrieve", "documents", "document retrieval"},
        {"review-list", "identifiers", "MPI review (operations)"},
        {"query-forward", "identifiers", "forwarded record query"}};
    const char *action = jget_s(rec, "action"), *what = "data", *label = action;
    for (size_t i = 0; i < HIE_ARRAY_LEN(words); i++) {
        if (strcmp(action, words[i].action) == 0) {
            what = words[i].what;
            label = words[i].label;
        }
    }
    if (strcmp(action, "report") == 0) {
        snprintf(out, cap, "disclosure report for an auditor");
    } else if (sub != NULL && !json_is_true(json_object_get(sub, "permitted"))) {
        snprintf(out, cap, "nothing disclosed (denied) for %s", label);
    } else if (sub != NULL) {
        snprintf(out, cap, "%s (%" PRIu64 ") for %s", what, jget_u(sub, "disclosed_count"),
            label);
    } else {
        uint64_t patients = jget_u(rec, "patients_count");
        snprintf(out, cap, "%s (%" PRIu64 ") about %" PRIu64 " patient%s for %s", what,
            jget_u(rec, "disclosed_count"), patients, patients == 1 ? "" : "s", label);
    }
}

/* Who received the data: the push or notification recipient, else the requester. */
static const char *
rec_recipient(const json_t *rec)
{
    const char *to = jget_s(rec, "recipient_org");
    return to[0] != '\0' ? to : jget_s(rec, "requester_org");
}

/* One row of an accounting: an entry, or one of its subjects (strings in the report). */
struct row {
    const char *date, *recipient, *purpose, *action, *decision, *reason, *directive_id, *euid;
    char desc[128], version[24];
    bool break_glass;
    uint64_t leaf;
};

static void
row_fill(struct row *r, const json_t *e, const json_t *rec, const json_t *sub)
{
    const char *outcome = jget_s(rec, "outcome");
    bool ok = strcmp(outcome, "success") == 0;
    r->decision = sub != NULL
        ? (json_is_true(json_object_get(sub, "permitted")) ? "permitted" : "denied")
        : !ok ? "refused" : json_is_true(json_object_get(rec, "any_denied")) ? "partly denied"
        : "permitted";
    r->break_glass = json_is_true(json_object_get(sub != NULL ? sub : rec, "break_glass"));
    csv_description(rec, sub, r->desc, sizeof(r->desc));
    r->version[0] = '\0';
    if (sub != NULL && jget_u(sub, "directive_version") > 0) {
        snprintf(r->version, sizeof(r->version), "%" PRIu64, jget_u(sub, "directive_version"));
    }
    r->date = jget_s(rec, "time");
    r->recipient = rec_recipient(rec);
    r->purpose = jget_s(rec, "purpose");
    r->action = jget_s(rec, "action");
    r->reason = sub != NULL ? jget_s(sub, "reason") : ok ? "" : outcome;
    r->directive_id = sub != NULL ? jget_s(sub, "directive_id") : "";
    r->euid = sub != NULL ? jget_s(sub, "euid") : "";
    r->leaf = jget_u(e, "leaf_index");
}

/* Calls fn with each row of the report's entries, in report order. */
static void
rows_foreach(const json_t *report, void (*fn)(void *ctx, const struct row *r), void *ctx)
{
    size_t i, k;
    json_t *e, *s;
    json_array_foreach(json_object_get(report, "entries"), i, e) {
        const json_t *rec = json_object_get(e, "record");
        const json_t *subs = json_object_get(e, "subjects");
        struct row r;
        if (json_array_size(subs) == 0) {
            row_fill(&r, e, rec, NULL);
            fn(ctx, &r);
        }
        json_array_foreach(subs, k, s) {
            row_fill(&r, e, rec, s);
            fn(ctx, &r);
        }
    }
}

static void
csv_row(void *ctx, const struct row *r)
{
    FILE *f = ctx;
    char leaf[24];
    snprintf(leaf, sizeof(leaf), "%" PRIu64, r->leaf);
    csv_field(f, r->date, false);
    csv_field(f, r->recipient, false);
    csv_field(f, r->purpose, false);
    csv_field(f, r->action, false);
    csv_field(f, r->desc, false);
    csv_field(f, r->decision, false);
    csv_field(f, r->reason, false);
    csv_field(f, r->directive_id, false);
    csv_field(f, r->version, false);
    csv_field(f, r->break_glass ? "yes" : "no", false);
    csv_field(f, r->euid, false);
    csv_field(f, leaf, true);
}

static int
csv_write(FILE *f, const json_t *report)
{
    fputs("date,recipient_org,purpose,action,description,decision,reason,directive_id,"
          "directive_version,break_glass,patient_euid,leaf_index\r\n",
        f);
    rows_foreach(report, csv_row, f);
    return ferror(f) ? CLI_EXIT_CONN : CLI_EXIT_OK;
}

/* ---- summary: §164.528(b)(3), repeated disclosures to one recipient for one purpose ------ */

/* The groups being built: "summary" (an array, first seen first) and an index by key. */
struct summary {
    json_t *groups, *by_key;
    bool failed;
};

/* Adds a row to its group (recipient, purpose, decision, patient): the first row in full, then
 * the count and the last row's date and leaf. */
static void
summary_add(void *ctx, const struct row *r)
{
    struct summary *sm = ctx;
    char key[4 * 256];
    snprintf(key, sizeof(key), "%s\x1f%s\x1f%s\x1f%s", r->recipient, r->purpose, r->decision,
        r->euid);
    json_t *g = json_object_get(sm->by_key, key);
    if (g == NULL) {
        g = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:I, s:I, s:s, "
                      "s:I}", "first_date", r->date, "recipient_org", r->recipient, "purpose",
            r->purpose, "action", r->action, "description", r->desc, "decision", r->decision,
            "reason", r->reason, "directive_id", r->directive_id, "directive_version",
            r->version, "break_glass", r->break_glass, "patient_euid", r->euid,
            "first_leaf_index", (json_int_t)r->leaf, "disclosures", (json_int_t)0, "last_date",
            r->date, "last_leaf_index", (json_int_t)r->leaf);
        sm->failed = sm->failed || g == NULL || json_array_append_new(sm->groups, g) != 0 ||
                     json_object_set(sm->by_key, key, g) != 0;
        if (sm->failed) {
            return;
        }
    }
    json_object_set_new(g, "disclosures",
        json_integer(json_integer_value(json_object_get(g, "disclosures")) + 1));
    if (r->leaf < jget_u(g, "first_leaf_index")) { /* the first is the oldest, whatever the
                                                    * order the rows come in */
        json_t *first = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:I}", "first_date",
            r->date, "action", r->action, "description", r->desc, "reason", r->reason,
            "directive_id", r->directive_id, "directive_version", r->version, "break_glass",
            r->break_glass, "first_leaf_index", (json_int_t)r->leaf);
        sm->failed = first == NULL || json_object_update(g, first) != 0 || sm->failed;
        json_decref(first);
    }
    if (r->leaf >= jget_u(g, "last_leaf_index")) { /* leaves grow with the log */
        json_object_set_new(g, "last_date", json_string(r->date));
        json_object_set_new(g, "last_leaf_index", json_integer((json_int_t)r->leaf));
    }
}

/* The summary of the report's rows; NULL when out of memory. */
static json_t *
summary_build(const json_t *report)
{
    struct summary sm = {json_array(), json_object(), false};
    if (sm.groups != NULL && sm.by_key != NULL) {
        rows_foreach(report, summary_add, &sm);
    }
    json_decref(sm.by_key);
    if (sm.groups == NULL || sm.failed) {
        json_decref(sm.groups);
        return NULL;
    }
    return sm.groups;
}

static int
csv_summary_write(FILE *f, const json_t *summary)
{
    static const char *const cols[] = {"first_date", "recipient_org", "purpose", "action",
        "description", "decision", "reason", "directive_id", "directive_version",
        "break_glass", "patient_euid", "first_leaf_index", "disclosures", "last_date",
        "last_leaf_index"};
    size_t i;
    json_t *g;
    for (size_t c = 0; c < HIE_ARRAY_LEN(cols); c++) {
        csv_field(f, cols[c], c + 1 == HIE_ARRAY_LEN(cols));
    }
    json_array_foreach(summary, i, g) {
        for (size_t c = 0; c < HIE_ARRAY_LEN(cols); c++) {
            const json_t *v = json_object_get(g, cols[c]);
            char num[24];
            if (json_is_integer(v)) {
                snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            }
            csv_field(f, json_is_integer(v) ? num : json_is_boolean(v)
                ? (json_is_true(v) ? "yes" : "no") : jget_s(g, cols[c]),
                c + 1 == HIE_ARRAY_LEN(cols));
        }
    }
    return ferror(f) ? CLI_EXIT_CONN : CLI_EXIT_OK;
}

/* ---- fhir: a Bundle of IHE BALP PrivacyDisclosure AuditEvents ---------------------------- */

#define DCM "http://dicom.nema.org/resources/ontology/DCM"

static json_t *
coding(const char *system, const char *code, const char *display)
{
    return json_pack("{s:s, s:s, s:s}", "system", system, "code", code, "display", display);
}

static const char *
purpose_code(const char *purpose)
{
    static const char *const map[][2] = {{"treatment", "TREAT"}, {"emergency", "ETREAT"},
        {"payment", "HPAYMT"}, {"operations", "HOPERAT"}, {"public-health", "PUBHLTH"},
        {"research", "HRESCH"}, {"patient-request", "PATRQT"}};
    for (size_t i = 0; i < HIE_ARRAY_LEN(map); i++) {
        if (strcmp(purpose, map[i][0]) == 0) {
            return map[i][1];
        }
    }
    return "UNKNOWN";
}

/* The node (source, the audit source too) and the recipient: the requesting organization, or
 * for a push or notification the organization it went to. */
static json_t *
fhir_agents(const json_t *rec)
{
    const char *node = jget_s(rec, "node_id");
    json_t *pou = json_pack("[{s:[o]}]", "coding", coding(
        "http://terminology.hl7.org/CodeSystem/v3-ActReason",
        purpose_code(jget_s(rec, "purpose")), jget_s(rec, "purpose")));
    json_t *source = json_pack("{s:{s:[o]}, s:{s:{s:s}}, s:b, s:{s:s, s:s}}", "type", "coding",
        coding(DCM, "110153", "Source Role ID"), "who", "identifier", "value", node,
        "requestor", 0, "network", "address", node, "type", "1");
    json_t *recipient = json_pack("{s:{s:[o]}, s:{s:{s:s, s:s}}, s:b, s:o}", "type", "coding",
        coding(DCM, "110152", "Destination Role ID"), "who", "identifier", "system",
        "urn:hie:org", "value", rec_recipient(rec), "requestor",
        strcmp(rec_recipient(rec), jget_s(rec, "requester_org")) == 0, "purposeOfUse", pou);
    return json_pack("[o, o]", source, recipient);
}

/* The patient (EUID, with the leaf index) and the identifiers disclosed about them. */
static json_t *
fhir_entities(const json_t *sub, uint64_t leaf)
{
    char leaf_text[24];
    json_t *arr = json_array();
    size_t i;
    json_t *id;
    if (sub == NULL) {
        return arr;
    }
    snprintf(leaf_text, sizeof(leaf_text), "%" PRIu64, leaf);
    json_array_append_new(arr, json_pack("{s:{s:{s:s, s:s}}, s:o, s:o, s:[{s:s, s:s}]}",
        "what", "identifier", "system", "urn:hie:euid", "value", jget_s(sub, "euid"), "type",
        coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person"),
        "role", coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient"),
        "detail", "type", "leafIndex", "valueString", leaf_text));
    json_array_foreach(json_object_get(sub, "disclosed"), i, id) {
        char system[HIE_ORG_ID_BYTES_MAX + 16];
        snprintf(system, sizeof(system), "urn:hie:org:%s", jget_s(id, "org_id"));
        json_array_append_new(arr, json_pack("{s:{s:{s:s, s:s}}, s:o, s:o, s:s}", "what",
            "identifier", "system", system, "value", jget_s(id, "mrn"), "type",
            coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2",
                "System Object"),
            "role", coding("http://terminology.hl7.org/CodeSystem/object-role", "4",
                "Domain Resource"),
            "description", "patient identifier disclosed"));
    }
    return arr;
}

/* Where the event sits in the log: leaf index, and the page's signed checkpoint. */
static json_t *
fhir_log_extension(const json_t *report, const json_t *e)
{
    char leaf[24], size[24];
    const json_t *page = json_array_get(json_object_get(report, "pages"),
        (size_t)jget_u(e, "page"));
    snprintf(leaf, sizeof(leaf), "%" PRIu64, jget_u(e, "leaf_index"));
    snprintf(size, sizeof(size), "%" PRIu64, jget_u(page, "tree_size"));
    return json_pack("[{s:s, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}]", "url",
        AUDIT_FHIR_EXT_URL, "extension", "url", "leafIndex", "valueString", leaf, "url",
        "treeSize", "valueString", size, "url", "checkpoint", "valueString",
        jget_s(page, "checkpoint"));
}

static json_t *
fhir_event(const json_t *report, const json_t *e, const json_t *sub, size_t n)
{
    const json_t *rec = json_object_get(e, "record");
    const char *action = jget_s(rec, "action");
    bool denied = sub != NULL ? !json_is_true(json_object_get(sub, "permitted"))
                              : strcmp(jget_s(rec, "outcome"), "success") != 0;
    char id[64];
    snprintf(id, sizeof(id), "hie-leaf-%" PRIu64 "-%zu", jget_u(e, "leaf_index"), n);
    json_t *subtype = json_pack("[o]", coding(
        "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle", "disclose",
        "Disclose Record Lifecycle Event"));
    if (strcmp(action, "pix") == 0 || strcmp(action, "pdq") == 0) {
        json_array_append_new(subtype, coding("urn:ihe:event-type-code",
            action[1] == 'i' ? "ITI-9" : "ITI-21",
            action[1] == 'i' ? "PIX Query" : "Patient Demographics Query"));
    }
    return json_pack("{s:s, s:s, s:{s:[s]}, s:o, s:o, s:o, s:s, s:o, s:s, s:o, s:o,"
                     " s:{s:{s:{s:s}}, s:[o]}, s:o}",
        "resourceType", "AuditEvent", "id", id, "meta", "profile",
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"
        "IHE.BasicAudit.PrivacyDisclosure.Source",
        "extension", fhir_log_extension(report, e), "type",
        coding(DCM, "110106", "Export"), "subtype", subtype, "action", "E", "recorded",
        json_incref(json_object_get(rec, "time")), "outcome", denied ? "4" : "0",
        "outcomeDesc", hie_cli__jstr(sub != NULL ? jget_s(sub, "reason")
                                                 : jget_s(rec, "outcome")),
        "agent", fhir_agents(rec), "source", "observer", "identifier", "value",
        jget_s(rec, "node_id"),
        "type", coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4",
            "Application Server"),
        "entity", fhir_entities(sub, jget_u(e, "leaf_index")));
}

static json_t *
fhir_bundle(const json_t *report)
{
    json_t *entries = json_array();
    size_t i, k;
    json_t *e, *s;
    json_array_foreach(json_object_get(report, "entries"), i, e) {
        const json_t *subs = json_object_get(e, "subjects");
        if (json_array_size(subs) == 0) {
            json_array_append_new(entries, json_pack("{s:o}", "resource",
                fhir_event(report, e, NULL, 0)));
        }
        json_array_foreach(subs, k, s) {
            json_array_append_new(entries, json_pack("{s:o}", "resource",
                fhir_event(report, e, s, k)));
        }
    }
    return json_pack("{s:s, s:s, s:O, s:o}", "resourceType", "Bundle", "type", "collection",
        "timestamp", json_object_get(report, "fetched"), "entry", entries);
}

/* ---- verify ------------------------------------------------------------------------------ */

struct verify {
    hie_audit_vkey_t vkey;
    const json_t *report;
    const json_t *pages;
    hie_audit_tree_head_t *heads;   /* per page, once its checkpoint verified */
    bool *head_ok;
    hie_audit_tree_head_t previous;
    bool have_previous, previous_given; /* given: --previous, not the report's own */
    uint64_t failures;
    uint64_t entries_ok;
    /* what the report asked (its "query"), each entry checked against it */
    const char *kind, *org_id, *euid;  /* euid: the accounting's patient, from its entries */
    int64_t from_ms, to_ms;
    bool include_excluded;             /* the accounting asked for TPO disclosures too */
    bool partial;                      /* pages before or after the saved ones exist */
    bool partial_ok;                   /* --partial: a partial report may pass */
    uint64_t *keys;                    /* (leaf, subject position) of each entry shown */
    size_t keys_count, keys_cap;
    size_t *by_page;                   /* entry indexes, grouped by page in saved order, */
    size_t *page_off;                  /* page p's from page_off[p] to page_off[p + 1] */
};

static void HIE_PRINTF(2, 3)
vfail(struct verify *v, const char *fmt, ...)
{
    va_list ap;
    if (v->failures++ >= AUDIT_FAILURES_PRINTED_MAX) {
        return;
    }
    fputs("hie: audit verify: FAIL: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The previous head: --previous, or the one the report was fetched against (either must be
 * signed by the verifier key). Returns an exit code. */
static int
verify_previous(struct verify *v, const char *path)
{
    char *note = NULL;
    const char *stored = jget_s(json_object_get(v->report, "previous"), "checkpoint");
    if (path != NULL) {
        int ex = note_load(path, &note);
        if (ex != CLI_EXIT_OK) {
            return ex;
        }
    }
    if (note != NULL && note[0] == '\0') {
        fprintf(stderr, "hie: audit verify: --previous %s is empty (no checkpoint to prove the "
            "log extends)\n", path);
        free(note);
        return CLI_EXIT_USAGE;
    }
    const char *text = note != NULL ? note : stored;
    if (text[0] != '\0') {
        const char *why = note_verify(text, &v->vkey, &v->previous);
        if (why != NULL) {
            vfail(v, "previous checkpoint: %s", why);
        }
        v->have_previous = why == NULL;
        v->previous_given = note != NULL;
    }
    free(note);
    return CLI_EXIT_OK;
}

/* The consistency proof of page p: from prev_tree_size (the previous checkpoint, or the page
 * before) to this page's head. */
static void
verify_consistency(struct verify *v, size_t p, const json_t *page)
{
    uint64_t prev = jget_u(page, "prev_tree_size");
    const hie_audit_tree_head_t *from = p == 0 ? (v->have_previous ? &v->previous : NULL)
                                              : v->head_ok[p - 1] ? &v->heads[p - 1] : NULL;
    hie_audit_proof_t proof;
    if (p == 0 && v->have_previous && prev != v->previous.size) {
        vfail(v, "page 0: the report was not fetched against the previous checkpoint "
                 "(it asked for size %" PRIu64 ", the checkpoint has %" PRIu64 ")",
            prev, v->previous.size);
        return;
    }
    if (p > 0 && (from == NULL || from->size != prev)) {
        /* every later page proves it extends the page before: none may opt out with 0 */
        vfail(v, "page %zu: does not continue from page %zu's checkpoint (it names size %"
                 PRIu64 ")", p, p - 1, prev);
        return;
    }
    if (prev == 0) {
        return; /* the first page of a report fetched without a previous checkpoint */
    }
    if (from == NULL || from->size != prev) {
        vfail(v, "page %zu: no verified checkpoint of size %" PRIu64 " to prove consistency from",
            p, prev);
    } else if (proof_get(json_object_get(page, "consistency_proof"), &proof) != 0) {
        vfail(v, "page %zu: the consistency proof is malformed", p);
    } else if (hie_audit_consistency_verify(prev, v->heads[p].size, &from->root,
                   &v->heads[p].root, &proof) != 0) {
        vfail(v, "page %zu: the consistency proof from size %" PRIu64 " to %" PRIu64
                 " does not verify (the log was rewritten or forked)",
            p, prev, v->heads[p].size);
    }
}

/* An accounting page's identity (the patient's EUIDs and spans) is the one the node signed
 * for the page's tree size, and the same on every page. Returns a static reason or NULL. */
/* The signed identity hash against the page's spans and, for an accounting asked by
 * organization + MRN, that patient (the saved query is not signed: without the binding a node
 * could answer another patient's accounting and every proof would hold). One signed by a
 * node from before 2026-12-01T05:30Z, without the patient, fails: it was accepted with a
 * warning when the saved "fetched" time (the file's own, which its holder could set back)
 * was older; such a report has no page notes either and must be fetched again. */
static const char *
identity_bound(struct verify *v, const hie_audit_checkpoint_t *cp, const char *const *euids,
    const int64_t *from, const int64_t *to, size_t n)
{
    const json_t *q = json_object_get(v->report, "query");
    const json_t *asked = json_object_get(q, "patient");
    const char *asked_euid = json_string_value(json_object_get(q, "euid"));
    if (asked_euid != NULL && json_is_object(asked)) {
        return "its query names both a patient and an EUID (no client asks so)";
    }
    if (asked_euid != NULL && strcmp(asked_euid, euids[0]) != 0) {
        return "its identity is another EUID's than the one asked for";
    }
    const char *org = json_is_object(asked) ? json_string_value(json_object_get(asked, "org_id"))
                                          : NULL;
    const char *mrn = org != NULL ? json_string_value(json_object_get(asked, "mrn")) : NULL;
    uint8_t h[HIE_AUDIT_HASH_BYTES];
    hie_audit_identity_hash(mrn != NULL ? org : NULL, mrn, euids, from, to, n, h);
    if (sodium_memcmp(cp->head.root.bytes, h, sizeof(h)) == 0) {
        return NULL;
    }
    return mrn != NULL ? "its identity is not the one the node signed for the patient asked "
                         "for" : "its identity is not the one the node signed";
}

static const char *
identity_check(struct verify *v, size_t p, const json_t *page)
{
    const json_t *ident = json_object_get(page, "identity");
    size_t n = json_array_size(ident);
    if (ident == NULL) { /* an accounting's every page has one; removing it from a page
                          * would let that page's entries skip the spans */
        return strcmp(v->kind, "accounting") == 0
            ? "it has no identity (the patient's EUIDs, signed by the node; a report saved "
              "before identities must be fetched again)" : NULL;
    }
    if (n == 0 || n > 1 + AUDIT_IDENTITY_SPANS_MAX) {
        return "its identity is empty or too long";
    }
    if (!json_equal(ident, json_object_get(json_array_get(v->pages, 0), "identity"))) {
        return "its identity differs from the first page's";
    }
    const char *euids[1 + AUDIT_IDENTITY_SPANS_MAX];
    int64_t from[1 + AUDIT_IDENTITY_SPANS_MAX], to[1 + AUDIT_IDENTITY_SPANS_MAX];
    for (size_t i = 0; i < n; i++) {
        const json_t *sp = json_array_get(ident, i);
        const json_t *f = json_object_get(sp, "from_ms"), *t = json_object_get(sp, "to_ms");
        euids[i] = json_string_value(json_object_get(sp, "euid"));
        if (euids[i] == NULL || euids[i][0] == '\0' || strlen(euids[i]) > 64 ||
            strspn(euids[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                != strlen(euids[i]) || !json_is_integer(f) || !json_is_integer(t)) {
            return "its identity is malformed";
        }
        from[i] = (int64_t)json_integer_value(f);
        to[i] = (int64_t)json_integer_value(t);
    }
    const char *note = jget_s(page, "identity_note");
    hie_audit_checkpoint_t cp;
    if (hie_audit_checkpoint_parse(hie_span(note, strlen(note)), &cp, NULL) != 0 ||
        hie_audit_checkpoint_verify(&cp, &v->vkey, HIE_AUDIT_IDENTITY_ORIGIN) != 0 ||
        cp.head.size != v->heads[p].size) {
        return "its identity is not the one the node signed";
    }
    return identity_bound(v, &cp, euids, from, to, n);
}

/* The page's entries (leaf, subject positions) in saved order, into es and pos (calloc'd:
 * the caller frees both). Returns a static reason or NULL. */
static const char *
page_entries(const struct verify *v, size_t p, hie_audit_page_entry_t **es, size_t *n,
    uint32_t **pos)
{
    size_t count = v->page_off[p + 1] - v->page_off[p], k = 0;
    const json_t *entries = json_object_get(v->report, "entries");
    *es = calloc(count + 1, sizeof(**es));
    *pos = calloc(count * HIE_AUDIT_SUBJECTS_MAX + 1, sizeof(**pos));
    *n = 0;
    if (*es == NULL || *pos == NULL) {
        return "out of memory";
    }
    for (size_t i = v->page_off[p]; i < v->page_off[p + 1]; i++) {
        const json_t *e = json_array_get(entries, v->by_page[i]);
        const json_t *subs = json_object_get(e, "subjects");
        if (json_array_size(subs) > HIE_AUDIT_SUBJECTS_MAX) {
            return "an entry lists more subjects than a record has";
        }
        hie_audit_page_entry_t *pe = &(*es)[(*n)++];
        pe->leaf = jget_u(e, "leaf_index");
        pe->positions = *pos + k;
        for (size_t s = 0; s < json_array_size(subs); s++) {
            (*pos)[k++] = (uint32_t)jget_u(json_array_get(subs, s), "position");
            pe->n_positions++;
        }
    }
    return NULL;
}

/* v->by_page and v->page_off over the saved entries (one pass each, not one per page: a file
 * of many pages and entries is read in linear time). Entries of no saved page are left out
 * here (verify_record fails them). Returns 0 or -1 (memory). */
static int
verify_index(struct verify *v, size_t pages)
{
    const json_t *entries = json_object_get(v->report, "entries");
    size_t n = json_array_size(entries), i;
    const json_t *e;
    v->page_off = calloc(pages + 2, sizeof(*v->page_off));
    v->by_page = calloc(n + 1, sizeof(*v->by_page));
    if (v->page_off == NULL || v->by_page == NULL) {
        return -1;
    }
    json_array_foreach(entries, i, e) {
        uint64_t p = jget_u(e, "page");
        v->page_off[(p < pages ? p : pages) + 1]++; /* counts, past the end for no page */
    }
    for (size_t p = 0; p < pages; p++) {
        v->page_off[p + 1] += v->page_off[p];
    }
    size_t *fill = calloc(pages + 1, sizeof(*fill));
    if (fill == NULL) {
        return -1;
    }
    json_array_foreach(entries, i, e) {
        uint64_t p = jget_u(e, "page");
        if (p < pages) {
            v->by_page[v->page_off[p] + fill[p]++] = i;
        }
    }
    free(fill);
    return 0;
}

static int
kind_number(const char *name)
{
    return strcmp(name, "accounting") == 0 ? HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING
        : strcmp(name, "org-access") == 0  ? HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ORG_ACCESS
                                           : HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_BREAK_GLASS;
}

/* The page note: the node's signature of what page p holds and of the page tokens that chain
 * it to the pages before and after (so none was taken out, and a part is not the whole).
 * Returns a static reason or NULL. */
static const char *
page_note_check(struct verify *v, size_t p, const json_t *page)
{
    const char *note = jget_s(page, "page_note");
    const char *in = jget_s(page, "page_token"), *out = jget_s(page, "next_page_token");
    const char *want = p == 0 ? jget_s(json_object_get(v->report, "query"), "page_token")
                              : jget_s(json_array_get(v->pages, p - 1), "next_page_token");
    if (note[0] == '\0') {
        return "it has no page note (the node's signature of what it holds; a report saved "
               "before 2026-12-01T08:00Z must be fetched again)";
    }
    if (strcmp(in, want) != 0) {
        return "it does not start where the page before it ended (a page taken out)";
    }
    if (p + 1 == json_array_size(v->pages) &&
        strcmp(out, jget_s(v->report, "next_page_token")) != 0) {
        return "its next page token differs from the report's";
    }
    hie_audit_page_entry_t *es = NULL;
    uint32_t *pos = NULL;
    size_t n = 0;
    const char *why = page_entries(v, p, &es, &n, &pos);
    hie_audit_checkpoint_t cp;
    uint8_t h[HIE_AUDIT_HASH_BYTES];
    if (why == NULL) {
        const json_t *q = json_object_get(v->report, "query");
        const json_t *pt = json_object_get(q, "patient");
        hie_audit_page_query_t pq = {kind_number(v->kind), json_string_value(json_object_get(pt,
            "org_id")), json_string_value(json_object_get(pt, "mrn")), v->euid,
            json_string_value(json_object_get(q, "org_id")), v->from_ms > 0 ? v->from_ms : 0,
            v->to_ms > 0 ? v->to_ms : 0, v->include_excluded, in, out};
        hie_audit_page_hash(&pq, es, n, h);
        why = hie_audit_checkpoint_parse(hie_span(note, strlen(note)), &cp, NULL) != 0 ||
            hie_audit_checkpoint_verify(&cp, &v->vkey, HIE_AUDIT_PAGE_ORIGIN) != 0 ||
            cp.head.size != v->heads[p].size ||
            sodium_memcmp(cp.head.root.bytes, h, sizeof(h)) != 0
            ? "what it holds is not what the node signed (an entry taken out, added or "
              "altered, or its page tokens)" : NULL;
    }
    free(es);
    free(pos);
    return why;
}

static void
verify_page(struct verify *v, size_t p)
{
    const json_t *page = json_array_get(v->pages, p);
    hie_audit_hash_t root;
    const char *why = note_verify(jget_s(page, "checkpoint"), &v->vkey, &v->heads[p]);
    if (why != NULL) {
        vfail(v, "page %zu: %s", p, why);
        return;
    }
    if (jget_u(page, "tree_size") != v->heads[p].size) {
        vfail(v, "page %zu: tree_size differs from the checkpoint's", p);
        return;
    }
    if (hash_get(json_object_get(page, "root"), &root) != 0 ||
        memcmp(root.bytes, v->heads[p].root.bytes, HIE_AUDIT_HASH_BYTES) != 0) {
        vfail(v, "page %zu: root differs from the checkpoint's", p);
        return;
    }
    why = identity_check(v, p, page);
    if (why != NULL) {
        vfail(v, "page %zu: %s", p, why);
        return;
    }
    why = page_note_check(v, p, page);
    if (why != NULL) { /* its entries are still checked: each says what is wrong with it */
        vfail(v, "page %zu: %s", p, why);
    }
    v->head_ok[p] = true;
    verify_consistency(v, p, page);
}

/* The report's top-level head is the last page's. */
static void
verify_top(struct verify *v, size_t pages_count)
{
    const json_t *last = json_array_get(v->pages, pages_count - 1);
    hie_audit_hash_t root;
    if (jget_u(v->report, "tree_size") != jget_u(last, "tree_size") ||
        strcmp(jget_s(v->report, "checkpoint"), jget_s(last, "checkpoint")) != 0) {
        vfail(v, "the report's tree_size or checkpoint differs from its last page's");
    } else if (!v->head_ok[pages_count - 1]) {
        return; /* said at the page */
    } else if (hash_get(json_object_get(v->report, "root"), &root) != 0 ||
               memcmp(root.bytes, v->heads[pages_count - 1].root.bytes,
                   HIE_AUDIT_HASH_BYTES) != 0) {
        vfail(v, "the report's root differs from its checkpoint's");
    }
}

/* Each subject of an entry hashes to its commitment in the record, and decodes to the fields
 * shown. Returns true if every one does. */
static bool
verify_subjects(struct verify *v, size_t i, const json_t *e, const Hie__V1__AuditRecord *rec,
    hie_arena_t *arena)
{
    const json_t *raw = json_object_get(e, "raw");
    const json_t *subs = json_object_get(raw, "subjects");
    const json_t *pos = json_object_get(raw, "subject_positions");
    const json_t *shown = json_object_get(e, "subjects");
    size_t n = json_array_size(subs);
    if (n != json_array_size(pos) || n != json_array_size(shown)) {
        vfail(v, "entry %zu: subjects, positions and decoded subjects differ in number", i);
        return false;
    }
    bool ok = true;
    for (size_t k = 0; k < n; k++) {
        uint8_t *b = NULL, digest[HIE_AUDIT_HASH_BYTES];
        size_t len = 0;
        json_int_t p = json_integer_value(json_array_get(pos, k));
        const ProtobufCBinaryData *c = p >= 0 && (size_t)p < rec->n_subject_commitments
            ? &rec->subject_commitments[p] : NULL;
        bool good = b64_get(json_array_get(subs, k), &b, &len) == 0 && c != NULL &&
                    c->len == HIE_AUDIT_HASH_BYTES;
        if (good) {
            crypto_hash_sha256(digest, b, len);
            good = sodium_memcmp(digest, c->data, HIE_AUDIT_HASH_BYTES) == 0;
        }
        if (!good) {
            vfail(v, "entry %zu subject %zu: does not match its commitment in the record", i, k);
        } else {
            json_t *dec = subject_decode(hie_span(b, len), (uint32_t)p, arena);
            good = dec != NULL && json_equal(dec, json_array_get(shown, k));
            json_decref(dec);
            if (!good) {
                vfail(v, "entry %zu subject %zu: the decoded fields differ from its bytes", i, k);
            }
        }
        ok = ok && good;
        free(b);
    }
    return ok;
}

static bool
key_note(struct verify *v, uint64_t key)
{
    if (v->keys_count == v->keys_cap) {
        size_t cap = v->keys_cap ? 2 * v->keys_cap : 256;
        uint64_t *k = realloc(v->keys, cap * sizeof(*k));
        if (k == NULL) {
            return false;
        }
        v->keys = k;
        v->keys_cap = cap;
    }
    v->keys[v->keys_count++] = key;
    return true;
}

/* Each kind lists a fixed set of an entry's subjects, as the node builds them: an accounting
 * the patient's one, an organization's access report none, a break-glass report every one in
 * order. An entry with its subjects taken out would pass every other check (its record and
 * proof are genuine) and pad a patient's report with another patient's disclosure. */
static bool
verify_subject_count(struct verify *v, size_t i, const json_t *e, const Hie__V1__AuditRecord *r)
{
    const json_t *shown = json_object_get(e, "subjects");
    size_t n = json_array_size(shown);
    bool glass = strcmp(v->kind, "break-glass") == 0;
    size_t want = strcmp(v->kind, "accounting") == 0 ? 1
                  : glass ? r->n_subject_commitments : 0;
    if (n != want) {
        vfail(v, "entry %zu: %zu subjects where the %s report lists %zu", i, n, v->kind, want);
        return false;
    }
    for (size_t k = 0; glass && k < n; k++) {
        if (jget_u(json_array_get(shown, k), "position") != k) {
            vfail(v, "entry %zu: subject %zu is not the record's subject %zu", i, k, k);
            return false;
        }
    }
    return true;
}

/* An accounting's entry names its patient: under the EUID the report is for, or (when the page
 * lists the patient's identity: the EUIDs its records had, each with the spans it had them,
 * the first one's first: the report's) under one of them, within a span (from 0 to 0: the
 * EUID whole). The report is for one EUID: every page's first (identity[0]), or every
 * entry's in a report saved before identities. */
static bool
verify_patient(struct verify *v, const json_t *e, const char *euid, int64_t t)
{
    const json_t *ident = json_object_get(json_array_get(v->pages, jget_u(e, "page")),
        "identity");
    const char *current = json_array_size(ident) > 0 ? jget_s(json_array_get(ident, 0), "euid")
                                                     : euid;
    if (v->euid == NULL) {
        v->euid = current;
    }
    if (strcmp(current, v->euid) != 0) {
        return false;
    }
    if (json_array_size(ident) == 0) {
        return strcmp(euid, current) == 0;
    }
    size_t k;
    const json_t *sp;
    json_array_foreach(ident, k, sp) {
        int64_t from = (int64_t)json_integer_value(json_object_get(sp, "from_ms"));
        int64_t to = (int64_t)json_integer_value(json_object_get(sp, "to_ms"));
        if (strcmp(jget_s(sp, "euid"), euid) == 0 &&
            ((from == 0 && to == 0) || (t >= from && t < to))) {
            return true;
        }
    }
    return false;
}

/* The entry answers the report's query: in its period; the organization's own access, a
 * break-glass disclosure, or (accounting) subjects of one patient only. A saved report padded
 * with genuine entries of another report fails here, though each entry is proven. */
static bool
verify_query(struct verify *v, size_t i, const json_t *e, const Hie__V1__AuditRecord *r)
{
    bool ok = true;
    if ((v->from_ms > 0 && r->time_ms < v->from_ms) || (v->to_ms > 0 && r->time_ms >= v->to_ms)) {
        vfail(v, "entry %zu: outside the report's period", i);
        ok = false;
    }
    if (strcmp(v->kind, "org-access") == 0 && strcmp(r->requester_org, v->org_id) != 0) {
        vfail(v, "entry %zu: an access by another organization", i);
        ok = false;
    }
    if (strcmp(v->kind, "break-glass") == 0 && !r->break_glass) {
        vfail(v, "entry %zu: not a break-glass disclosure", i);
        ok = false;
    }
    ok = verify_subject_count(v, i, e, r) && ok;
    size_t k;
    const json_t *sub;
    json_array_foreach(json_object_get(e, "subjects"), k, sub) {
        const char *euid = jget_s(sub, "euid");
        if (strcmp(v->kind, "accounting") == 0 && !verify_patient(v, e, euid, r->time_ms)) {
            vfail(v, "entry %zu: a disclosure about another patient", i);
            ok = false;
        }
        if (strcmp(v->kind, "accounting") == 0 && !v->include_excluded &&
            json_is_true(json_object_get(sub, "accounting_excluded"))) {
            vfail(v, "entry %zu: a disclosure excluded from the accounting (TPO), in a report "
                     "that did not ask for excluded ones", i);
            ok = false;
        }
        if (!key_note(v, (r->leaf_index << 16) | (jget_u(sub, "position") & 0xffffu))) {
            vfail(v, "out of memory");
            return false;
        }
    }
    if (json_array_size(json_object_get(e, "subjects")) == 0 && !key_note(v,
            r->leaf_index << 16)) {
        vfail(v, "out of memory");
        return false;
    }
    return ok;
}

static int
key_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* No entry twice, and each page holds as many entries as its reply said. */
static void
verify_once(struct verify *v)
{
    if (v->keys_count > 1) {
        qsort(v->keys, v->keys_count, sizeof(*v->keys), key_cmp);
    }
    for (size_t i = 1; i < v->keys_count; i++) {
        if (v->keys[i] == v->keys[i - 1]) {
            vfail(v, "leaf %" PRIu64 " (subject %" PRIu64 ") is listed twice",
                v->keys[i] >> 16, v->keys[i] & 0xffffu);
        }
    }
    size_t pages = json_array_size(v->pages);
    uint64_t *have = calloc(pages + 1, sizeof(*have)); /* one pass over the entries */
    if (have == NULL) {
        vfail(v, "out of memory");
        return;
    }
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(v->report, "entries"), i, e) {
        uint64_t p = jget_u(e, "page");
        have[p < pages ? p : pages]++; /* a page out of range fails in verify_record */
    }
    for (size_t p = 0; p < pages; p++) {
        uint64_t want = jget_u(json_array_get(v->pages, p), "entries_count");
        if (have[p] != want) {
            vfail(v, "page %zu: %" PRIu64 " entries saved, its reply had %" PRIu64, p, have[p],
                want);
        }
    }
    free(have);
}

/* One entry: inclusion of its leaf under its page's root, its record's own leaf index, the
 * decoded fields, its subjects. Returns true if it verified. */
static bool
verify_record(struct verify *v, size_t i, const json_t *e, hie_span_t bytes, hie_arena_t *arena)
{
    uint64_t leaf = jget_u(e, "leaf_index"), page = jget_u(e, "page");
    hie_audit_hash_t h;
    hie_audit_proof_t proof;
    ProtobufCMessage *m = NULL;
    hie_errinfo_t info = {NULL, NULL};
    if (page >= json_array_size(v->pages) || !v->head_ok[page]) {
        vfail(v, "entry %zu: its page's checkpoint did not verify", i);
        return false;
    }
    hie_audit_leaf_hash(bytes, &h);
    if (proof_get(json_object_get(json_object_get(e, "raw"), "inclusion_proof"), &proof) != 0 ||
        hie_audit_inclusion_verify(leaf, v->heads[page].size, &h, &proof,
            &v->heads[page].root) != 0) {
        vfail(v, "entry %zu (leaf %" PRIu64 "): not included under the checkpoint's root "
                 "(record or inclusion proof altered)", i, leaf);
        return false;
    }
    if (hie_proto_unpack_checked(&hie__v1__audit_record__descriptor, bytes, arena, &m, &info,
            "record") != 0 ||
        ((const Hie__V1__AuditRecord *)m)->leaf_index != leaf) {
        vfail(v, "entry %zu (leaf %" PRIu64 "): the record's leaf_index differs", i, leaf);
        return false;
    }
    json_t *dec = record_decode(bytes, arena);
    bool same = dec != NULL && json_equal(dec, json_object_get(e, "record"));
    json_decref(dec);
    if (!same) {
        vfail(v, "entry %zu (leaf %" PRIu64 "): the decoded record differs from its bytes", i,
            leaf);
        return false;
    }
    bool asked = verify_query(v, i, e, (const Hie__V1__AuditRecord *)m);
    return verify_subjects(v, i, e, (const Hie__V1__AuditRecord *)m, arena) && asked;
}

static void
verify_entries(struct verify *v)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(v->report, "entries"), i, e) {
        hie_arena_t *arena = NULL;
        uint8_t *bytes = NULL;
        size_t len = 0;
        if (b64_get(json_object_get(json_object_get(e, "raw"), "record"), &bytes, &len) != 0) {
            vfail(v, "entry %zu: the record is not base64", i);
        } else if (hie_arena_create(&arena, AUDIT_DECODE_ARENA_BYTES) != 0) {
            vfail(v, "entry %zu: out of memory", i);
        } else if (verify_record(v, i, e, hie_span(bytes, len), arena)) {
            v->entries_ok++;
        }
        hie_arena_destroy(&arena);
        free(bytes);
    }
}

/* A saved summary (--summarize) must be what the entries, verified above, summarize to. */
static void
verify_summarized(struct verify *v)
{
    const json_t *saved = json_object_get(v->report, "summary");
    if (saved == NULL) {
        return;
    }
    json_t *rebuilt = summary_build(v->report);
    if (rebuilt == NULL || !json_equal(rebuilt, saved)) {
        vfail(v, "the summary does not match the entries");
    }
    json_decref(rebuilt);
}

/* The second line of a verified report: what it is a report of (the query in the file is not
 * signed: the auditor compares this with what was asked). */
static void
verify_said(const struct verify *v)
{
    printf("report: %s", v->kind);
    if (v->euid != NULL) {
        fputs(" patient euid=", stdout);
        hie_cli__fputs_safe(stdout, v->euid);
    }
    const json_t *asked = json_object_get(json_object_get(v->report, "query"), "patient");
    if (strcmp(v->kind, "accounting") == 0 && json_is_object(asked)) {
        fputs(" asked_for=", stdout); /* as saved (unsigned): the auditor's own request */
        hie_cli__fputs_safe(stdout, jget_s(asked, "org_id"));
        fputs("/", stdout);
        hie_cli__fputs_safe(stdout, jget_s(asked, "mrn"));
    }
    if (strcmp(v->kind, "org-access") == 0) {
        fputs(" org=", stdout);
        hie_cli__fputs_safe(stdout, v->org_id);
    }
    printf(" from_ms=%" PRId64 " to_ms=%" PRId64 "\n", v->from_ms, v->to_ms);
}

static int
verify_summary(const struct verify *v, size_t pages_count)
{
    const hie_audit_tree_head_t *last = &v->heads[pages_count - 1];
    if (v->failures > 0) {
        fprintf(stderr, "hie: audit verify: FAILED: %" PRIu64 " problem%s found (%" PRIu64
                        " of %zu entries verified)\n",
            v->failures, v->failures == 1 ? "" : "s", v->entries_ok,
            json_array_size(json_object_get(v->report, "entries")));
        return CLI_EXIT_REPLY;
    }
    if (v->partial && !v->partial_ok) {
        fprintf(stderr, "hie: audit verify: FAILED: the report is partial (fetched without "
            "--all, or from a --page-token): its %" PRIu64 " entries verify, but it lacks "
            "pages of its period; --partial accepts that\n", v->entries_ok);
        return CLI_EXIT_REPLY;
    }
    printf("verified %" PRIu64 " entries against checkpoint size %" PRIu64 " (%zu page%s, %slog ",
        v->entries_ok, last->size, pages_count, pages_count == 1 ? "" : "s",
        v->partial ? "PARTIAL: more pages exist, " : "");
    hie_cli__fputs_safe(stdout, v->vkey.name);
    if (v->have_previous) { /* say whose: the auditor's own, or the one saved in the report */
        printf("; extends %s checkpoint of size %" PRIu64, v->previous_given
            ? "the --previous" : "the report's own saved", v->previous.size);
    }
    fputs(")\n", stdout);
    verify_said(v); /* what was verified: the kind, its patient or organization, the period */
    return CLI_EXIT_OK;
}

/* What the saved report asked: its kind, organization and period. */
static int
verify_query_load(struct verify *v)
{
    const json_t *q = json_object_get(v->report, "query");
    const char *from = json_string_value(json_object_get(q, "from"));
    const char *to = json_string_value(json_object_get(q, "to"));
    v->kind = jget_s(q, "kind");
    v->org_id = jget_s(q, "org_id");
    v->euid = json_string_value(json_object_get(q, "euid"));
    v->include_excluded = json_is_true(json_object_get(q, "include_excluded"));
    v->partial = jget_s(q, "page_token")[0] != '\0' ||
                 jget_s(v->report, "next_page_token")[0] != '\0';
    if ((strcmp(v->kind, "accounting") != 0 && strcmp(v->kind, "org-access") != 0 &&
         strcmp(v->kind, "break-glass") != 0) ||
        (from != NULL && hie_cli__time_parse(from, &v->from_ms) != 0) ||
        (to != NULL && hie_cli__time_parse(to, &v->to_ms) != 0)) {
        fprintf(stderr, "hie: audit verify: the report's query is not readable\n");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static int
audit_verify(const struct audit_args *a)
{
    struct verify v;
    json_t *report = NULL;
    memset(&v, 0, sizeof(v));
    if (a->words_count != 2 || a->vkey == NULL) {
        return hie_cli__usage_error("audit verify takes REPORT_FILE --vkey VKEY "
                                    "[--previous CHECKPOINT_FILE] [--partial]");
    }
    int ex = vkey_load(a->vkey, &v.vkey) != 0 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    ex = ex != CLI_EXIT_OK ? ex : hie_cli__json_load(a->words[1], AUDIT_REPORT_FILE_BYTES_MAX,
        "audit verify", &report);
    v.report = report;
    v.pages = json_object_get(report, "pages");
    size_t n = json_array_size(v.pages);
    if (ex == CLI_EXIT_OK && (strcmp(jget_s(report, "format"), AUDIT_REPORT_FORMAT) != 0 ||
                                 n == 0 || n > AUDIT_PAGES_MAX)) {
        fprintf(stderr, "hie: audit verify: %s is not a saved report (%s)\n", a->words[1],
            AUDIT_REPORT_FORMAT);
        ex = CLI_EXIT_USAGE;
    }
    v.heads = ex == CLI_EXIT_OK ? calloc(n, sizeof(*v.heads)) : NULL;
    v.head_ok = ex == CLI_EXIT_OK ? calloc(n, sizeof(*v.head_ok)) : NULL;
    if (ex == CLI_EXIT_OK && (v.heads == NULL || v.head_ok == NULL)) {
        fputs("hie: out of memory\n", stderr);
        ex = CLI_EXIT_CONN;
    }
    v.partial_ok = a->partial;
    ex = ex != CLI_EXIT_OK ? ex : verify_query_load(&v); /* the pages are checked against it */
    ex = ex != CLI_EXIT_OK ? ex : verify_previous(&v, a->previous);
    if (ex == CLI_EXIT_OK && verify_index(&v, n) != 0) {
        fputs("hie: out of memory\n", stderr);
        ex = CLI_EXIT_CONN;
    }
    for (size_t p = 0; ex == CLI_EXIT_OK && p < n; p++) {
        verify_page(&v, p);
    }
    if (ex == CLI_EXIT_OK) {
        verify_top(&v, n);
    }
    if (ex == CLI_EXIT_OK) {
        verify_entries(&v);
        verify_once(&v);
        verify_summarized(&v);
        ex = verify_summary(&v, n);
    }
    free(v.heads);
    free(v.head_ok);
    free(v.keys);
    free(v.by_page);
    free(v.page_off);
    json_decref(report);
    return ex;
}

/* ---- checkpoint command ------------------------------------------------------------------ */

/* Fetches the node's current signed checkpoint: a break-glass report over the first
 * millisecond of 1970 has no entries, only the page's head. */
static int
audit_checkpoint(struct cli *cli, const struct audit_args *a)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    struct audit_args q = {.kind = HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_BREAK_GLASS,
        .to_ms = 1, .page_size = 1};
    Hie__V1__AuditReportRequest body;
    Hie__V1__PatientId pid;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    hie_audit_vkey_t vkey;
    hie_audit_tree_head_t head = {0, {{0}}};
    memset(&vkey, 0, sizeof(vkey));
    if (a->words_count != 1 || a->out == NULL) {
        return hie_cli__usage_error("audit checkpoint takes --out FILE [--vkey VKEY]");
    }
    if (a->vkey != NULL && vkey_load(a->vkey, &vkey) != 0) {
        return CLI_EXIT_USAGE;
    }
    report_request(&q, &body, &pid, "", 0);
    req.body_case = HIE__V1__ENVELOPE__BODY_AUDIT_REPORT;
    req.audit_report = &body;
    int ex = hie_cli__exchange(cli, "audit checkpoint", &req, 0,
        HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY, &arena, &reply);
    const Hie__V1__AuditReportReply *r = ex == CLI_EXIT_OK ? reply->audit_report_reply : NULL;
    if (r != NULL && a->vkey == NULL &&
        hie_audit_vkey_parse(hie_span(r->verifier_key, strlen(r->verifier_key)), &vkey) != 0) {
        fputs("hie: audit checkpoint failed: the node sent no valid verifier key\n", stderr);
        ex = CLI_EXIT_CONN;
    }
    const char *why = ex == CLI_EXIT_OK ? note_verify(r->checkpoint, &vkey, &head) : NULL;
    if (why != NULL) {
        fprintf(stderr, "hie: audit checkpoint failed: %s\n", why);
        ex = CLI_EXIT_REPLY;
    }
    ex = ex == CLI_EXIT_OK ? out_write(a->out, r->checkpoint) : ex;
    if (ex == CLI_EXIT_OK) {
        printf("checkpoint size=%" PRIu64 " saved=%s signed_by=", head.size, a->out);
        hie_cli__fputs_safe(stdout, a->vkey != NULL ? vkey.name : r->verifier_key);
        fputs(a->vkey != NULL ? " (verified with --vkey)\n" : " (the node's key: compare it "
                                                             "with one you trust)\n", stdout);
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* ---- options ----------------------------------------------------------------------------- */

static const struct option audit_options[] = {{"mrn", required_argument, NULL, 'm'},
    {"org", required_argument, NULL, 'o'}, {"euid", required_argument, NULL, 'e'},
    {"org-id", required_argument, NULL, 'O'}, {"from", required_argument, NULL, 'F'},
    {"to", required_argument, NULL, 'T'}, {"include-excluded", no_argument, NULL, 'x'},
    {"page-size", required_argument, NULL, 'p'}, {"page-token", required_argument, NULL, 't'},
    {"all", no_argument, NULL, 'a'}, {"format", required_argument, NULL, 'f'},
    {"out", required_argument, NULL, 'w'}, {"previous", required_argument, NULL, 'P'},
    {"vkey", required_argument, NULL, 'k'}, {"summarize", no_argument, NULL, 'S'},
    {"json", no_argument, NULL, 'j'}, {"partial", no_argument, NULL, 'Z'},
    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

bool
hie_cli__audit_is_verify(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            return i + 1 < argc && strcmp(argv[i + 1], "verify") == 0;
        }
        if (a[0] != '-' || a[1] == '\0') {
            return strcmp(a, "verify") == 0; /* the first word that is no option's value */
        }
        size_t n = strcspn(a + 2, "=");
        for (const struct option *o = audit_options; a[1] == '-' && o->name != NULL; o++) {
            if (strlen(o->name) == n && strncmp(o->name, a + 2, n) == 0 &&
                o->has_arg == required_argument && a[2 + n] != '=') {
                i++; /* its value: "--vkey KEY verify" */
            }
        }
    }
    return false;
}

static const char *
audit_option_name(int opt)
{
    return hie_cli__option_name(audit_options, opt);
}

static int
audit_format_parse(const char *s, enum audit_format *out)
{
    *out = strcmp(s, "csv") == 0 ? FORMAT_CSV : strcmp(s, "json") == 0 ? FORMAT_JSON
        : strcmp(s, "fhir") == 0 ? FORMAT_FHIR : 0;
    return *out != 0 ? 0 : HIE_EINVAL;
}

/* Applies one option with a value. Returns CLI_CONTINUE or an exit code. */
static int
audit_option(void *ctx, int opt, char *val)
{
    struct audit_args *a = ctx;
    size_t given = strlen(a->given);
    if (given + 1 < sizeof(a->given) && strchr(a->given, opt) == NULL) {
        a->given[given] = (char)opt; /* checked against the action by audit_options_check */
    }
    bool ok = true;
    switch (opt) {
    case 'm': a->mrn = val; break;
    case 'o': a->org = val; break;
    case 'e': a->euid = val; break;
    case 'O': a->org_id = val; break;
    case 'F': ok = hie_cli__time_parse(val, &a->from_ms) == 0; break;
    case 'T': ok = hie_cli__time_parse(val, &a->to_ms) == 0; break;
    case 'x': a->include_excluded = true; break;
    case 'p': ok = hie_cli__parse_u32(val, 1, HIE_AUDIT_REPORT_PAGE_MAX, &a->page_size) == 0;
        break;
    case 't': ok = val[0] != '\0' && strlen(val) <= AUDIT_TOKEN_BYTES_MAX; a->page_token = val;
        break;
    case 'a': a->all = true; break;
    case 'f': ok = audit_format_parse(val, &a->format) == 0; break;
    case 'w': a->out = val; break;
    case 'P': a->previous = val; break;
    case 'k': a->vkey = val; break;
    case 'S': a->summarize = true; break;
    case 'Z': a->partial = true; break;
    default: HIE_ASSERT(false); /* every option of audit_options has a case */
    }
    if (!ok) {
        return hie_cli__usage_error("invalid value for --%s", audit_option_name(opt));
    }
    return CLI_CONTINUE;
}

static int
audit_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
    struct audit_args *a)
{
    memset(a, 0, sizeof(*a));
    int ex = hie_cli__options(cli, cmd, argc, argv, audit_options, NULL,
        "(see hie --help for the options and formats)", audit_option, a);
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    a->words = (const char *const *)(argv + optind);
    a->words_count = argc - optind;
    if (a->words_count < 1) {
        return hie_cli__usage_error("audit needs report, verify or checkpoint");
    }
    return CLI_CONTINUE;
}

/* Refuses options that do not apply to the action (allowed: short letters). */
static int
audit_options_check(const struct audit_args *a, const char *action, const char *allowed)
{
    for (const char *p = a->given; *p != '\0'; p++) {
        if (strchr(allowed, *p) == NULL) {
            return hie_cli__usage_error("--%s does not apply to audit %s",
                audit_option_name(*p), action);
        }
    }
    return CLI_CONTINUE;
}

/* audit report KIND: the kind and the options it needs. */
static int
report_kind(struct audit_args *a)
{
    const char *k = a->words_count == 2 ? a->words[1] : "";
    if (strcmp(k, "accounting") == 0) {
        a->kind = HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING;
        if ((a->euid != NULL) == (a->mrn != NULL) || (a->mrn != NULL) != (a->org != NULL)) {
            return hie_cli__usage_error("accounting takes --mrn MRN --org ORG, or --euid EUID");
        }
    } else if (strcmp(k, "org-access") == 0) {
        a->kind = HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ORG_ACCESS;
        if (a->org_id == NULL || a->mrn != NULL || a->org != NULL || a->euid != NULL) {
            return hie_cli__usage_error("org-access takes --org-id ORG");
        }
    } else if (strcmp(k, "break-glass") == 0) {
        a->kind = HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_BREAK_GLASS;
        if (a->org_id != NULL || a->mrn != NULL || a->org != NULL || a->euid != NULL) {
            return hie_cli__usage_error("break-glass takes no patient or organization");
        }
    } else {
        return hie_cli__usage_error("audit report needs accounting, org-access or break-glass");
    }
    if (a->from_ms != 0 && a->to_ms != 0 && a->from_ms >= a->to_ms) {
        return hie_cli__usage_error("--from must be before --to");
    }
    if (a->summarize && (a->kind != HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING ||
                            a->format == FORMAT_FHIR)) {
        return hie_cli__usage_error("--summarize applies to an accounting in csv or json");
    }
    return CLI_CONTINUE;
}

int
hie_cli__cmd_audit(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct audit_args a;
    int ex = audit_parse(cli, cmd, argc, argv, &a);
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    /* an auditor's review of the log is health care operations (HOPERAT) */
    hie_cli__purpose_default(cli, HIE__V1__PURPOSE_OF_USE__PURPOSE_OPERATIONS);
    const char *action = a.words[0];
    if (strcmp(action, "report") == 0) {
        ex = audit_options_check(&a, action, "moeOFTxptafwPS");
        ex = ex != CLI_CONTINUE ? ex : report_kind(&a);
        return ex != CLI_CONTINUE ? ex : audit_report(cli, &a);
    } else if (strcmp(action, "verify") == 0) {
        ex = audit_options_check(&a, action, "kPZ");
        return ex != CLI_CONTINUE ? ex : audit_verify(&a);
    } else if (strcmp(action, "checkpoint") == 0) {
        ex = audit_options_check(&a, action, "wk");
        return ex != CLI_CONTINUE ? ex : audit_checkpoint(cli, &a);
    }
    return hie_cli__usage_error("unknown audit action '%s' (report, verify, checkpoint)",
        action);
}
