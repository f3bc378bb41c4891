/*
 * cli_query.c - `hie query`, `hie get`, `hie responder` and `hie retract` (issue 5): record
 * queries about a patient, retrieval of one document, registration as a responder, and
 * retraction of a document this organization stored in the repository.
 *
 * query: the patient by --mrn (at --org, default this certificate's organization, asked with
 * WhoAmI) or by --euid, with class, type and date filters; prints a summary line, a table of
 * the documents consent permits (newest first, as the node orders them) and one line per
 * source asked with its status. A source that timed out or failed is a line, not a failure:
 * the exit status is 0 whenever the node answered. Purpose 'treatment' unless --purpose.
 *
 * get: retrieves one document by the id a query listed. --out FILE writes the content (a
 * temporary file, mode 0600, fsync'd, then renamed into place) and prints the metadata;
 * --out - writes the content alone to stdout; without --out only the metadata and the size are
 * printed (the content is never written to a terminal unasked). An unknown document and one
 * the patient's consent withholds get the same NOT_FOUND (exit 1).
 *
 * responder: ResponderRegister on or off. Answering forwarded queries is not done here (a
 * responder answers from its own system over the client library).
 *
 * Patient data: what the user asked for goes to stdout or the --out file, never to error lines.
 * Callers: the command table in hie_cli.c.
 */
#include "cli_int.h"

#include "hie/consent.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The node's limits (node/src/query.c): filters per query, documents per answer, id length. */
#define QUERY_FILTERS_MAX 16u
#define QUERY_LIMIT_MAX 1000u
#define QUERY_TYPE_BYTES_MAX 64u
#define GET_ID_BYTES_MAX 200u
/* The title column is cut at this width; other columns are never cut (ids are needed whole). */
#define QUERY_TITLE_COLS_MAX 40u
#define QUERY_LABELS_BYTES 256u

/* " key=value" on stdout: bare when a plain token, else a JSON string. */
static void
kv(const char *key, const char *s)
{
    printf(" %s=", key);
    hie_cli__kv_value(stdout, s);
}

static json_t *
time_json(int64_t ms)
{
    char t[CLI_TIME_TEXT_BYTES];
    return ms > 0 ? json_string(hie_cli__time_format(ms, t, sizeof(t))) : json_null();
}

static json_t *
strs_json(char *const *vals, size_t count)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < count; i++) {
        json_array_append_new(arr, hie_cli__jstr(vals[i]));
    }
    return arr != NULL ? arr : json_null();
}

/* vals joined by ',' into buf ("-" when none); cut at the buffer's end. */
static const char *
strs_join(char *const *vals, size_t count, char *buf, size_t buf_bytes)
{
    size_t at = 0;
    HIE_ASSERT(buf_bytes > 1);
    buf[0] = '\0';
    for (size_t i = 0; i < count && at + 1 < buf_bytes; i++) {
        int n = snprintf(buf + at, buf_bytes - at, "%s%s", i > 0 ? "," : "", vals[i]);
        at = n < 0 ? buf_bytes : at + (size_t)n;
    }
    return count > 0 ? buf : "-";
}

/* ---- query: options ---------------------------------------------------------------------- */

struct query_args {
    const char *mrn, *org, *euid, *from, *to;
    char *classes[QUERY_FILTERS_MAX], *types[QUERY_FILTERS_MAX];
    size_t classes_count, types_count;
    uint32_t limit;
    int64_t from_ms, to_ms;
    char org_buf[HIE_ORG_ID_BYTES_MAX + 1];
};

static int
query_filter_add(char **vals, size_t *count, char *val, const char *name)
{
    if (*count == QUERY_FILTERS_MAX) {
        return hie_cli__usage_error("at most %u --%s", QUERY_FILTERS_MAX, name);
    }
    vals[(*count)++] = val;
    return CLI_CONTINUE;
}

/* Applies one option with a value. Returns CLI_CONTINUE or an exit code. */
static int
query_option(void *ctx, int opt, char *val)
{
    struct query_args *a = ctx;
    switch (opt) {
    case 'm': a->mrn = val; break;
    case 'o': a->org = val; break;
    case 'E': a->euid = val; break;
    case 'C': return query_filter_add(a->classes, &a->classes_count, val, "class");
    case 'y': return query_filter_add(a->types, &a->types_count, val, "type");
    case 'F': a->from = val; break;
    case 'T': a->to = val; break;
    case 'l':
        if (hie_cli__parse_u32(val, 1, QUERY_LIMIT_MAX, &a->limit) != 0) {
            return hie_cli__usage_error("--limit must be 1..%u", QUERY_LIMIT_MAX);
        }
        break;
    default: HIE_ASSERT(false); /* every option of query_parse has a case */
    }
    return CLI_CONTINUE;
}

static int
query_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
    struct query_args *a)
{
    static const struct option opts[] = {{"mrn", required_argument, NULL, 'm'},
        {"org", required_argument, NULL, 'o'}, {"euid", required_argument, NULL, 'E'},
        {"class", required_argument, NULL, 'C'}, {"type", required_argument, NULL, 'y'},
        {"from", required_argument, NULL, 'F'}, {"to", required_argument, NULL, 'T'},
        {"limit", required_argument, NULL, 'l'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof(*a));
    int ex = hie_cli__options(cli, cmd, argc, argv, opts, NULL, NULL, query_option, a);
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    if (optind < argc) {
        return hie_cli__usage_error("query takes options only");
    }
    return CLI_CONTINUE;
}

/* What the node would refuse, refused here first (no value is echoed). */
static int
query_check(struct query_args *a)
{
    if ((a->mrn == NULL) == (a->euid == NULL)) {
        return hie_cli__usage_error("query needs --mrn MRN [--org ORG] or --euid EUID");
    }
    if (a->org != NULL && (a->mrn == NULL || !hie_proto_org_id_valid(a->org, strlen(a->org)))) {
        return hie_cli__usage_error(a->mrn == NULL ? "--org goes with --mrn"
                                                   : "--org is not an organization id");
    }
    for (size_t i = 0; i < a->classes_count; i++) {
        enum hie_consent_class c;
        if (hie_consent_class_parse(a->classes[i], strlen(a->classes[i]), &c) != 0) {
            return hie_cli__usage_error("unknown --class (summary, discharge-summary, "
                                        "lab-report, imaging-report, progress-note, ...)");
        }
    }
    for (size_t i = 0; i < a->types_count; i++) {
        size_t len = strlen(a->types[i]);
        if (len == 0 || len > QUERY_TYPE_BYTES_MAX) {
            return hie_cli__usage_error("--type must be 1..%u bytes", QUERY_TYPE_BYTES_MAX);
        }
    }
    if ((a->from != NULL && hie_cli__time_parse(a->from, &a->from_ms) != 0) ||
        (a->to != NULL && hie_cli__time_parse(a->to, &a->to_ms) != 0)) {
        return hie_cli__usage_error("--from and --to take a UTC date (YYYY-MM-DD) or date-time "
                                    "(YYYY-MM-DDThh:mm:ssZ)");
    }
    if (a->to != NULL && a->from_ms >= a->to_ms) {
        return hie_cli__usage_error("--from must be before --to (--to is exclusive)");
    }
    return CLI_CONTINUE;
}

/* ---- query: output ----------------------------------------------------------------------- */

static const char *
source_status(Hie__V1__SourceStatus st)
{
    return st == HIE__V1__SOURCE_STATUS__SOURCE_OK          ? "ok"
         : st == HIE__V1__SOURCE_STATUS__SOURCE_TIMEOUT     ? "timeout"
         : st == HIE__V1__SOURCE_STATUS__SOURCE_NOT_ASKED   ? "not_asked"
                                                            : "error";
}

static json_t *
query_json(const Hie__V1__RecordQueryReply *r)
{
    json_t *docs = json_array(), *sources = json_array();
    for (size_t i = 0; docs != NULL && i < r->n_documents; i++) {
        const Hie__V1__DocumentEntry *e = r->documents[i];
        json_array_append_new(docs, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, "
                                              "s:o, s:o}",
            "document_id", hie_cli__jstr(e->document_id), "source", hie_cli__jstr(e->source),
            "date", time_json(e->date_ms), "class_code", hie_cli__jstr(e->class_code),
            "type_code", hie_cli__jstr(e->type_code), "title", hie_cli__jstr(e->title),
            "author_org", hie_cli__jstr(e->author_org), "content_type",
            hie_cli__jstr(e->content_type), "size", (json_int_t)e->size, "security_labels",
            strs_json(e->security_labels, e->n_security_labels), "handling",
            hie_cli__handling_json(e->handling)));
    }
    for (size_t i = 0; sources != NULL && i < r->n_sources; i++) {
        const Hie__V1__SourceResult *s = r->sources[i];
        json_array_append_new(sources, json_pack("{s:o, s:s, s:o}", "source",
            hie_cli__jstr(s->source), "status", source_status(s->status),
            "detail", hie_cli__jstr(s->detail)));
    }
    return json_pack("{s:o, s:o, s:o}", "euid", hie_cli__jstr(r->euid), "documents",
        docs != NULL ? docs : json_array(), "sources", sources != NULL ? sources : json_array());
}

enum { COL_ID, COL_SOURCE, COL_DATE, COL_CLASS, COL_TYPE, COL_TITLE, COL_AUTHOR, COL_SIZE,
    COL_LABELS, COLS };

static const char *const col_names[COLS] = {"ID", "SOURCE", "DATE", "CLASS", "TYPE", "TITLE",
    "AUTHOR", "SIZE", "LABELS"};

/* One row's cells as text ("-" for empty). */
struct row {
    const char *cells[COLS];
    char date[CLI_TIME_TEXT_BYTES];
    char size[24];
    char labels[QUERY_LABELS_BYTES];
};

static void
row_fill(const Hie__V1__DocumentEntry *e, struct row *r)
{
    const char *vals[COLS] = {e->document_id, e->source, NULL, e->class_code, e->type_code,
        e->title, e->author_org, NULL, NULL};
    snprintf(r->size, sizeof(r->size), "%" PRIu64, e->size);
    vals[COL_DATE] = hie_cli__time_format(e->date_ms, r->date, sizeof(r->date));
    vals[COL_SIZE] = r->size;
    vals[COL_LABELS] = strs_join(e->security_labels, e->n_security_labels, r->labels,
        sizeof(r->labels));
    for (size_t c = 0; c < COLS; c++) {
        r->cells[c] = vals[c] != NULL && vals[c][0] != '\0' ? vals[c] : "-";
    }
}

/* Terminal columns of s, at most max (UTF-8 continuation bytes take none). [out] *bytes: how
 * many bytes of s fill them (a cut never splits a character). */
static size_t
cell_cols(const char *s, size_t max, size_t *bytes)
{
    size_t cols = 0, i = 0;
    for (; s[i] != '\0' && i < CLI_NODE_TEXT_BYTES_MAX; i++) {
        bool starts = ((unsigned char)s[i] & 0xc0u) != 0x80u;
        if (starts && cols == max) {
            break;
        }
        cols += starts ? 1u : 0u;
    }
    *bytes = i;
    return cols;
}

/* One cell: sanitised, cut to its column's width, padded (the last cell is not). */
static void
cell_print(const char *s, size_t col, size_t width)
{
    char buf[CLI_NODE_TEXT_BYTES_MAX + 1];
    size_t bytes = 0;
    size_t cols = cell_cols(s, col == COL_TITLE ? QUERY_TITLE_COLS_MAX : SIZE_MAX, &bytes);
    memcpy(buf, s, bytes);
    buf[bytes] = '\0';
    hie_cli__fputs_safe(stdout, buf);
    for (size_t i = cols; col + 1 < COLS && i < width + 2; i++) {
        fputc(' ', stdout);
    }
}

static void
query_table(const Hie__V1__RecordQueryReply *r)
{
    size_t width[COLS];
    struct row row;
    for (size_t c = 0; c < COLS; c++) {
        width[c] = strlen(col_names[c]);
    }
    for (size_t i = 0; i < r->n_documents; i++) {
        row_fill(r->documents[i], &row);
        for (size_t c = 0; c < COLS; c++) {
            size_t bytes = 0;
            size_t cols = cell_cols(row.cells[c], c == COL_TITLE ? QUERY_TITLE_COLS_MAX
                : SIZE_MAX, &bytes);
            width[c] = cols > width[c] ? cols : width[c];
        }
    }
    for (size_t c = 0; c < COLS; c++) {
        cell_print(col_names[c], c, width[c]);
    }
    fputc('\n', stdout);
    for (size_t i = 0; i < r->n_documents; i++) {
        row_fill(r->documents[i], &row);
        for (size_t c = 0; c < COLS; c++) {
            cell_print(row.cells[c], c, width[c]);
        }
        fputc('\n', stdout);
    }
}

static void
query_print(const struct cli *cli, const Hie__V1__RecordQueryReply *r)
{
    if (cli->json) {
        (void)hie_cli__json_emit(query_json(r));
        return;
    }
    fputs("euid=", stdout);
    hie_cli__kv_value(stdout, r->euid);
    printf(" documents=%zu sources=%zu\n", r->n_documents, r->n_sources);
    if (r->n_documents > 0) {
        query_table(r);
    }
    for (size_t i = 0; i < r->n_documents; i++) { /* consent's marks go with each document */
        const Hie__V1__Handling *h = r->documents[i]->handling;
        if (h != NULL && (h->n_refrain > 0 || (h->notice != NULL && h->notice[0] != '\0') ||
                (h->confidentiality != NULL && h->confidentiality[0] != '\0'))) {
            fputs("handling document_id=", stdout);
            hie_cli__kv_value(stdout, r->documents[i]->document_id);
            hie_cli__handling_print(stdout, h);
            fputc('\n', stdout);
        }
    }
    for (size_t i = 0; i < r->n_sources; i++) {
        const Hie__V1__SourceResult *s = r->sources[i];
        fputs("source=", stdout);
        hie_cli__kv_value(stdout, s->source);
        printf(" status=%s", source_status(s->status));
        if (s->detail[0] != '\0') {
            kv("detail", s->detail);
        }
        fputc('\n', stdout);
    }
}

int
hie_cli__cmd_query(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct query_args a;
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    Hie__V1__RecordQuery body = HIE__V1__RECORD_QUERY__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    int ex = query_parse(cli, cmd, argc, argv, &a);
    ex = ex == CLI_CONTINUE ? query_check(&a) : ex;
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    hie_cli__purpose_default(cli, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT);
    if (a.mrn != NULL && a.org == NULL) { /* the patient by one of our MRNs */
        ex = hie_cli__whoami_org(cli, a.org_buf, sizeof(a.org_buf));
        if (ex != CLI_EXIT_OK) {
            return ex;
        }
        a.org = a.org_buf;
    }
    pid.org_id = (char *)(uintptr_t)a.org; /* protobuf-c's fields are not const */
    pid.mrn = (char *)(uintptr_t)a.mrn;
    body.patient = a.mrn != NULL ? &pid : NULL;
    body.euid = (char *)(uintptr_t)(a.euid != NULL ? a.euid : "");
    body.n_class_codes = a.classes_count;
    body.class_codes = a.classes;
    body.n_type_codes = a.types_count;
    body.type_codes = a.types;
    body.from_ms = a.from_ms;
    body.to_ms = a.to_ms;
    body.limit = a.limit;
    req.body_case = HIE__V1__ENVELOPE__BODY_RECORD_QUERY;
    req.record_query = &body;
    ex = hie_cli__exchange(cli, "query", &req, 0, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY,
        &arena, &reply);
    if (ex == CLI_EXIT_OK) {
        query_print(cli, reply->record_query_reply);
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* ---- get --------------------------------------------------------------------------------- */

static int
get_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, const char **id,
    const char **out, const char **source)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
        {"source", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt;
    *out = NULL;
    *source = NULL;
    optind = 0; /* glibc: start over on the subcommand's argv */
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == 'h') {
            printf("usage: hie %s %s\n%s\n", cmd->name, cmd->args, cmd->summary);
            return CLI_EXIT_OK;
        } else if (opt == 'j') {
            cli->json = true;
        } else if (opt == 'o') {
            *out = optarg;
        } else if (opt == 's') {
            *source = optarg;
        } else {
            return hie_cli__getopt_error(opt, argv);
        }
    }
    if (argc - optind != 1) {
        return hie_cli__usage_error("get needs one document id (as hie query listed it)");
    }
    *id = argv[optind];
    size_t len = strlen(*id);
    if (len == 0 || len > GET_ID_BYTES_MAX) {
        return hie_cli__usage_error("a document id is 1..%u bytes", GET_ID_BYTES_MAX);
    }
    if (*out != NULL && (*out)[0] == '\0') {
        return hie_cli__usage_error("--out needs a file name (or - for stdout)");
    }
    if (*source != NULL && !hie_proto_org_id_valid(*source, strlen(*source))) {
        return hie_cli__usage_error("--source is repository or an organization id (the SOURCE "
                                    "column of hie query)");
    }
    return CLI_CONTINUE;
}

/* Writes c to path (mode 0600): a temporary file next to it, fsync'd, then renamed over path.
 * Returns 0 or -errno. */
static int
get_write_file(const char *path, const ProtobufCBinaryData *c)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.hie-tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    return hie_cli__write_file_at(AT_FDCWD, path, tmp, c->data, c->len);
}

static void
get_print(const struct cli *cli, const Hie__V1__RetrieveReply *r, const char *file)
{
    const Hie__V1__Document *d = r->document;
    const Hie__V1__PatientId *p = d->patient;
    char t[CLI_TIME_TEXT_BYTES], labels[QUERY_LABELS_BYTES];
    if (cli->json) {
        (void)hie_cli__json_emit(json_pack("{s:o, s:o, s:{s:o, s:o}, s:o, s:o, s:o, s:o, s:o, "
                                           "s:o, s:I, s:o, s:o}",
            "document_id", hie_cli__jstr(r->document_id), "author_org",
            hie_cli__jstr(d->author_org), "patient", "org_id",
            hie_cli__jstr(p != NULL ? p->org_id : ""), "mrn",
            hie_cli__jstr(p != NULL ? p->mrn : ""), "title", hie_cli__jstr(d->title),
            "class_code", hie_cli__jstr(d->class_code), "type_code", hie_cli__jstr(d->type_code),
            "date", time_json(d->date_ms), "content_type", hie_cli__jstr(d->content_type),
            "security_labels", strs_json(d->security_labels, d->n_security_labels), "bytes",
            (json_int_t)d->content.len, "file", file != NULL ? hie_cli__jstr(file)
            : json_null(), "handling", hie_cli__handling_json(r->handling)));
        return;
    }
    fputs("document_id=", stdout);
    hie_cli__kv_value(stdout, r->document_id);
    kv("author", d->author_org);
    kv("patient_org", p != NULL ? p->org_id : "");
    kv("mrn", p != NULL ? p->mrn : "");
    kv("title", d->title);
    kv("class", d->class_code);
    kv("type", d->type_code);
    kv("date", hie_cli__time_format(d->date_ms, t, sizeof(t)));
    kv("content_type", d->content_type);
    kv("labels", strs_join(d->security_labels, d->n_security_labels, labels, sizeof(labels)));
    printf(" bytes=%zu", d->content.len);
    hie_cli__handling_print(stdout, r->handling);
    if (file != NULL) {
        kv("file", file);
    }
    fputc('\n', stdout);
}

/* The content where --out says, then the metadata. Returns an exit code. */
static int
get_output(const struct cli *cli, const Hie__V1__RetrieveReply *r, const char *out)
{
    if (r->document == NULL) {
        fputs("hie: get failed: the node's reply has no document\n", stderr);
        return CLI_EXIT_CONN;
    }
    const ProtobufCBinaryData *c = &r->document->content;
    if (out != NULL && strcmp(out, "-") == 0) {
        int rc = hie_cli__write_all(STDOUT_FILENO, c->data, c->len);
        if (rc != 0) {
            fprintf(stderr, "hie: get: writing stdout failed: %s\n", hie_strerror(rc));
            return CLI_EXIT_CONN;
        }
        return CLI_EXIT_OK;
    }
    struct stat st;
    if (out != NULL && lstat(out, &st) == 0 && !S_ISREG(st.st_mode)) {
        /* the file is renamed over the path: never over a link or a device (as root,
         * '--out /dev/stdout' would replace the system's link) */
        fprintf(stderr, "hie: get: --out %s: not a regular file (a link or a device): name "
            "a file, or --out - for stdout\n", out);
        return CLI_EXIT_USAGE;
    }
    if (out != NULL) {
        int rc = get_write_file(out, c);
        if (rc != 0) {
            fprintf(stderr, "hie: get: cannot write %s: %s\n", out, hie_strerror(rc));
            return CLI_EXIT_USAGE;
        }
    }
    get_print(cli, r, out);
    return CLI_EXIT_OK;
}

int
hie_cli__cmd_get(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    const char *doc_id = NULL, *out = NULL, *source = NULL;
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    Hie__V1__RetrieveRequest body = HIE__V1__RETRIEVE_REQUEST__INIT;
    int ex = get_parse(cli, cmd, argc, argv, &doc_id, &out, &source);
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    HIE_ASSERT(doc_id != NULL);
    hie_cli__purpose_default(cli, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT);
    body.document_id = (char *)(uintptr_t)doc_id;
    body.source = (char *)(uintptr_t)(source != NULL ? source : "");
    req.body_case = HIE__V1__ENVELOPE__BODY_RETRIEVE;
    req.retrieve = &body;
    ex = hie_cli__exchange(cli, "get", &req, 0, HIE__V1__ENVELOPE__BODY_RETRIEVE_REPLY, &arena,
        &reply);
    if (ex == CLI_EXIT_OK) {
        ex = get_output(cli, reply->retrieve_reply, out);
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* ---- responder --------------------------------------------------------------------------- */

int
hie_cli__cmd_responder(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    Hie__V1__ResponderRegister body = HIE__V1__RESPONDER_REGISTER__INIT;
    int opt;
    optind = 0; /* glibc: start over on the subcommand's argv */
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == 'h') {
            printf("usage: hie %s %s\n%s\n", cmd->name, cmd->args, cmd->summary);
            return CLI_EXIT_OK;
        } else if (opt != 'j') {
            return hie_cli__getopt_error(opt, argv);
        }
        cli->json = true;
    }
    bool on = argc - optind == 1 && strcmp(argv[optind], "on") == 0;
    if (argc - optind != 1 || (!on && strcmp(argv[optind], "off") != 0)) {
        return hie_cli__usage_error("responder takes on or off");
    }
    body.enabled = on;
    req.body_case = HIE__V1__ENVELOPE__BODY_RESPONDER_REGISTER;
    req.responder_register = &body;
    int ex = hie_cli__exchange(cli, "responder", &req, 0,
        HIE__V1__ENVELOPE__BODY_RESPONDER_REGISTER_REPLY, &arena, &reply);
    bool enabled = ex == CLI_EXIT_OK && reply->responder_register_reply->enabled;
    if (ex == CLI_EXIT_OK && cli->json) {
        ex = hie_cli__json_emit(json_pack("{s:b}", "enabled", enabled));
    } else if (ex == CLI_EXIT_OK) {
        printf("responder=%s\n", enabled ? "on" : "off");
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* ---- retract ----------------------------------------------------------------------------- */

int
hie_cli__cmd_retract(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {{"reason", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    Hie__V1__RetractRequest body = HIE__V1__RETRACT_REQUEST__INIT;
    int opt;
    optind = 0; /* glibc: start over on the subcommand's argv */
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == 'h') {
            printf("usage: hie %s %s\n%s\n", cmd->name, cmd->args, cmd->summary);
            return CLI_EXIT_OK;
        } else if (opt == 'r') {
            body.reason = optarg;
        } else if (opt == 'j') {
            cli->json = true;
        } else {
            return hie_cli__getopt_error(opt, argv);
        }
    }
    if (argc - optind != 1) {
        return hie_cli__usage_error("retract takes one DOCUMENT_ID");
    }
    body.document_id = argv[optind];
    hie_errinfo_t info = {0};
    if (hie_proto_retract_validate(body.document_id, body.reason, &info) != 0) {
        return hie_cli__usage_error(strcmp(info.field, "retract.reason") == 0
            ? "--reason: at most 256 bytes" : "DOCUMENT_ID: 1 to 200 bytes");
    }
    req.body_case = HIE__V1__ENVELOPE__BODY_RETRACT;
    req.retract = &body;
    int ex = hie_cli__exchange(cli, "retract", &req, 0, HIE__V1__ENVELOPE__BODY_RETRACT_REPLY,
        &arena, &reply);
    if (ex == CLI_EXIT_OK) {
        const Hie__V1__RetractReply *r = reply->retract_reply;
        if (cli->json) {
            ex = hie_cli__json_emit(json_pack("{s:s, s:I}", "document_id", r->document_id,
                "bytes_released", (json_int_t)r->bytes_released));
        } else {
            printf("retracted=%s bytes_released=%" PRIu64 "\n", r->document_id,
                r->bytes_released);
        }
    }
    hie_arena_destroy(&arena);
    return ex;
}
