/*
 * import.c - the row reader and resume state of `hiectl mpi import` (see import.h).
 *
 * Records are cut from the file by a small scanner that knows only where a record ends: at a
 * newline outside double quotes for CSV, at any newline for NDJSON. The record's fields are
 * then parsed by libcsv (CSV) or jansson (NDJSON), never by hand. Cutting records ourselves is
 * what gives every record an exact line number and end offset, which resuming needs.
 *
 * Invariants:
 * - r->offset is the byte offset of the next byte getc() returns; r->line its line (1-based).
 * - A record never holds more than NODE_IMPORT_RECORD_BYTES_MAX bytes; past that, the rest of
 *   the line is skipped and the record is a rejected row.
 * - Rejected rows carry static reasons or column/key names, never cell values (PHI).
 *
 * Callers: node/src/hiectl.c (mpi import), tests/unit/node/test_import.c.
 */
#include "import.h"

#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define READER_MAGIC 0x494d5052u /* "IMPR" */
/* State files: 2 since 2026-12-01 (the fingerprint covers the whole file); 1 before (the size
 * and the first 64 KiB), still resumed with that fingerprint. */
#define STATE_VERSION 2

enum column {
    COL_ORG_ID, COL_MRN, COL_GIVEN, COL_FAMILY, COL_BIRTH_DATE, COL_SEX, COL_ADDRESS, COL_CITY,
    COL_POSTCODE, COL_PHONE, COL_EMAIL, COL_NATIONAL_ID, COL_ACTION, COL_COUNT
};

static const char *const column_names[COL_COUNT] = {"org_id", "mrn", "given", "family",
    "birth_date", "sex", "address", "city", "postcode", "phone", "email", "national_id",
    "action"};

_Static_assert(COL_COUNT <= NODE_IMPORT_COLUMNS_MAX, "every known column must fit a header");
_Static_assert(NODE_IMPORT_FINGERPRINT_PREFIX_BYTES <= NODE_IMPORT_RECORD_BYTES_MAX,
    "the fingerprint's chunks are read into the record buffer");

struct node_import_reader {
    uint32_t magic;
    enum node_import_format format;
    FILE *f;
    uint64_t size;
    uint64_t offset;            /* of the next byte read */
    uint64_t line;              /* of the next byte read */
    uint64_t data_offset;       /* first record after the header (and BOM) */
    uint64_t data_line;
    struct csv_parser csv;
    bool csv_ready;
    int columns[NODE_IMPORT_COLUMNS_MAX]; /* CSV: enum column of each header position */
    size_t columns_count;
    char fingerprint[NODE_IMPORT_FINGERPRINT_HEX_BYTES];    /* the one in use */
    char fingerprints[2][NODE_IMPORT_FINGERPRINT_HEX_BYTES]; /* versions 1 and 2 */
    size_t rec_len;
    bool rec_too_long;
    bool rec_unbalanced;        /* CSV: a quote never closed; rec is its first line only */
    char rec[NODE_IMPORT_RECORD_BYTES_MAX + 1];
};

/* The values of one row, by column, before they become a request. */
struct row_values {
    const char *vals[COL_COUNT][NODE_IMPORT_VALUES_MAX];
    size_t counts[COL_COUNT];
};

static bool
column_multi(int col)
{
    return col == COL_GIVEN || col == COL_FAMILY || col == COL_ADDRESS;
}

static int
column_find(const char *name, size_t len)
{
    for (int c = 0; c < COL_COUNT; c++) {
        if (strlen(column_names[c]) == len && strncasecmp(column_names[c], name, len) == 0) {
            return c;
        }
    }
    return -1;
}

static char *
arena_strndup(hie_arena_t *arena, const char *s, size_t len)
{
    char *p = hie_arena_alloc(arena, len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/* A cell that did not fit the row's arena: not the row's fault, so not a rejected row (the
 * import stops and a resume reads the row again). */
static const char import_oom[] = "out of memory";

static int
row_reject(node_import_row_t *row, const char *reason, const char *field)
{
    row->req = NULL;
    row->reason = reason;
    row->field = field;
    return HIE_EINVAL;
}

/* ---- records ----------------------------------------------------------------------------- */

/* Reads one record into r->rec. Returns 0, HIE_ENOTFOUND (end of file, nothing read) or
 * -errno. The loop is bounded by the file: every pass consumes a byte or ends. */
/* CSV quoting (RFC 4180) for record boundaries: a quote opens a quoted field only at the start
 * of a field (so an unquoted O"Brien does not swallow the lines after it), and inside one a
 * quote closes it unless the next byte is a quote too (an escaped ""). */
static void
quote_track(int ch, bool field_start, bool *quoted, bool *closing)
{
    if (*quoted && *closing) {
        *closing = false;
        *quoted = ch == '"'; /* "": still inside; anything else: the field was closed */
        return;
    }
    if (ch == '"') {
        if (*quoted) {
            *closing = true;
        } else if (field_start) {
            *quoted = true;
        }
    }
}

/* A quoted field that ran over lines and was never closed (the end of the file, or the size
 * limit, came first): most likely one stray quote, which would otherwise swallow every row up
 * to the limit or the end of the file as one rejected record. The record becomes its first
 * line (rejected) and reading goes on at the next line. Returns whether it rewound. */
static bool
record_unbalanced(node_import_reader_t *r, uint64_t nl_offset, uint64_t nl_line,
    size_t nl_len)
{
    if (fseeko(r->f, (off_t)nl_offset, SEEK_SET) != 0) {
        return false; /* not seekable: the record stays as read */
    }
    r->offset = nl_offset;
    r->line = nl_line;
    r->rec_len = nl_len;
    r->rec_too_long = false;
    r->rec_unbalanced = true;
    return true;
}

static int
record_read(node_import_reader_t *r)
{
    bool quoted = false, closing = false, field_start = true;
    bool any = false;
    uint64_t nl_offset = 0, nl_line = 0; /* past the first newline inside quotes */
    size_t nl_len = 0;
    r->rec_len = 0;
    r->rec_too_long = false;
    r->rec_unbalanced = false;
    for (;;) {
        int ch = getc_unlocked(r->f);
        if (ch == EOF) {
            if (ferror(r->f)) {
                return errno != 0 ? -errno : -EIO;
            }
            break;
        }
        any = true;
        r->offset++;
        if (r->format == NODE_IMPORT_CSV && !r->rec_too_long) {
            quote_track(ch, field_start, &quoted, &closing);
            /* a field starts after a comma (or the record's start), past spaces and tabs,
             * as libcsv reads it */
            field_start = !quoted && (ch == ',' || (field_start && (ch == ' ' || ch == '\t')));
        }
        if (ch == '\n') {
            r->line++;
            if (!quoted || r->rec_too_long) {
                break;
            }
            if (nl_offset == 0) {
                nl_offset = r->offset;
                nl_line = r->line;
                nl_len = r->rec_len;
            }
        }
        if (r->rec_len < NODE_IMPORT_RECORD_BYTES_MAX) {
            r->rec[r->rec_len++] = (char)ch;
        } else {
            r->rec_too_long = true;
        }
    }
    if (nl_offset != 0 && (r->rec_too_long || (quoted && !closing))) {
        (void)record_unbalanced(r, nl_offset, nl_line, nl_len);
    }
    if (r->rec_len > 0 && r->rec[r->rec_len - 1] == '\r') {
        r->rec_len--;
    }
    r->rec[r->rec_len] = '\0';
    return any ? 0 : HIE_ENOTFOUND;
}

static bool
record_blank(const node_import_reader_t *r)
{
    for (size_t i = 0; i < r->rec_len; i++) {
        if (r->rec[i] != ' ' && r->rec[i] != '\t' && r->rec[i] != '\r') {
            return false;
        }
    }
    return !r->rec_too_long;
}

/* ---- CSV --------------------------------------------------------------------------------- */

struct csv_ctx {
    hie_arena_t *arena;
    const char *fields[NODE_IMPORT_COLUMNS_MAX];
    size_t fields_count;
    size_t records;
    const char *error; /* first problem, static text */
};

static void
csv_on_field(void *data, size_t len, void *ctx_ptr)
{
    struct csv_ctx *ctx = ctx_ptr;
    const char *s = data != NULL ? data : "";
    if (data == NULL) {
        len = 0;
    }
    if (ctx->error != NULL) {
        return;
    }
    if (ctx->fields_count >= NODE_IMPORT_COLUMNS_MAX) {
        ctx->error = "too many fields";
    } else if (memchr(s, '\0', len) != NULL) {
        ctx->error = "contains a NUL byte";
    } else if ((ctx->fields[ctx->fields_count++] = arena_strndup(ctx->arena, s, len)) == NULL) {
        ctx->error = import_oom;
    }
}

static void
csv_on_record(int ch, void *ctx_ptr)
{
    struct csv_ctx *ctx = ctx_ptr;
    (void)ch;
    ctx->records++;
}

/* Only LF ends a record: the scanner already cut at it, so a bare CR stays in its field. */
static int
csv_is_term(unsigned char ch)
{
    return ch == CSV_LF;
}

/* Splits r->rec into ctx->fields with libcsv. Returns 0 or HIE_EINVAL (ctx->error set). */
static int
csv_fields(node_import_reader_t *r, struct csv_ctx *ctx)
{
    HIE_ASSERT(r->csv_ready);
    size_t used = csv_parse(&r->csv, r->rec, r->rec_len, csv_on_field, csv_on_record, ctx);
    bool parse_ok = used == r->rec_len;
    int fini = csv_fini(&r->csv, csv_on_field, csv_on_record, ctx); /* also resets the parser */
    if (ctx->error == NULL && (!parse_ok || fini != 0)) {
        ctx->error = "malformed csv (quotes)";
    }
    if (ctx->error == NULL && ctx->records != 1) {
        ctx->error = "malformed csv (record)";
    }
    return ctx->error == NULL ? 0 : HIE_EINVAL;
}

/* Splits a '|'-separated cell into trimmed, non-empty values (in place: s is ours). */
static const char *
cell_split(char *s, int col, struct row_values *v)
{
    char *save = NULL;
    for (char *tok = strtok_r(s, "|", &save); tok != NULL; tok = strtok_r(NULL, "|", &save)) {
        while (*tok == ' ' || *tok == '\t') {
            tok++;
        }
        size_t len = strlen(tok);
        while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t')) {
            tok[--len] = '\0';
        }
        if (len == 0) {
            continue;
        }
        if (v->counts[col] >= NODE_IMPORT_VALUES_MAX) {
            return "too many values";
        }
        v->vals[col][v->counts[col]++] = tok;
    }
    return NULL;
}

static int
csv_row_values(node_import_reader_t *r, hie_arena_t *arena, struct row_values *v,
    node_import_row_t *row)
{
    struct csv_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.arena = arena;
    if (csv_fields(r, &ctx) != 0) {
        return ctx.error == import_oom ? HIE_ENOMEM : row_reject(row, ctx.error, NULL);
    }
    if (ctx.fields_count != r->columns_count) {
        return row_reject(row, "wrong number of fields for the header", NULL);
    }
    for (size_t i = 0; i < ctx.fields_count; i++) {
        int col = r->columns[i];
        char *cell = (char *)(uintptr_t)ctx.fields[i]; /* our arena copy */
        if (column_multi(col)) {
            const char *why = cell_split(cell, col, v);
            if (why != NULL) {
                return row_reject(row, why, column_names[col]);
            }
        } else if (cell[0] != '\0') {
            v->vals[col][0] = cell;
            v->counts[col] = 1;
        }
    }
    return 0;
}

/* ---- NDJSON ------------------------------------------------------------------------------ */

/* Adds one JSON value of key col to v. Returns NULL or a static reason. */
static const char *
json_value_add(hie_arena_t *arena, int col, json_t *val, struct row_values *v)
{
    if (json_is_null(val)) {
        return NULL;
    }
    if (!json_is_string(val)) {
        return "must be a string";
    }
    size_t len = json_string_length(val);
    const char *s = json_string_value(val);
    if (memchr(s, '\0', len) != NULL) {
        return "contains a NUL byte";
    }
    if (len == 0) {
        return NULL;
    }
    if (v->counts[col] >= NODE_IMPORT_VALUES_MAX) {
        return "too many values";
    }
    char *copy = arena_strndup(arena, s, len);
    if (copy == NULL) {
        return import_oom;
    }
    v->vals[col][v->counts[col]++] = copy;
    return NULL;
}

static const char *
json_member_add(hie_arena_t *arena, int col, json_t *val, struct row_values *v)
{
    if (!json_is_array(val)) {
        return json_value_add(arena, col, val, v);
    }
    if (!column_multi(col)) {
        return "must be a string";
    }
    size_t index;
    json_t *item;
    json_array_foreach(val, index, item) {
        if (!json_is_string(item)) {
            return "must be a string or an array of strings";
        }
        const char *why = json_value_add(arena, col, item, v);
        if (why != NULL) {
            return why;
        }
    }
    return NULL;
}

static int
json_row_values(node_import_reader_t *r, hie_arena_t *arena, struct row_values *v,
    node_import_row_t *row)
{
    json_error_t jerr;
    json_t *obj = json_loadb(r->rec, r->rec_len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = 0;
    if (obj == NULL) {
        return row_reject(row, "invalid json (syntax or utf-8)", NULL);
    }
    if (!json_is_object(obj)) {
        rc = row_reject(row, "not a json object", NULL);
        goto out;
    }
    const char *key;
    json_t *val;
    bool seen[COL_COUNT] = {false};
    json_object_foreach(obj, key, val) {
        int col = column_find(key, strlen(key));
        if (col < 0) {
            rc = row_reject(row, "unknown key", arena_strndup(arena, key, strnlen(key, 64)));
            goto out;
        }
        if (seen[col]) { /* "mrn" and "MRN": which one is meant? (CSV refuses the header) */
            rc = row_reject(row, "duplicate key (names differ only in case)", column_names[col]);
            goto out;
        }
        seen[col] = true;
        const char *why = json_member_add(arena, col, val, v);
        if (why != NULL) {
            rc = why == import_oom ? HIE_ENOMEM : row_reject(row, why, column_names[col]);
            goto out;
        }
    }
out:
    json_decref(obj);
    return rc;
}

/* ---- requests ---------------------------------------------------------------------------- */

static int
sex_parse(const char *s, Hie__V1__Sex *out)
{
    static const struct {
        const char *name;
        Hie__V1__Sex sex;
    } names[] = {{"f", HIE__V1__SEX__SEX_FEMALE}, {"female", HIE__V1__SEX__SEX_FEMALE},
        {"m", HIE__V1__SEX__SEX_MALE}, {"male", HIE__V1__SEX__SEX_MALE},
        {"o", HIE__V1__SEX__SEX_OTHER}, {"other", HIE__V1__SEX__SEX_OTHER},
        {"u", HIE__V1__SEX__SEX_UNKNOWN}, {"unknown", HIE__V1__SEX__SEX_UNKNOWN}};
    if (s == NULL) {
        *out = HIE__V1__SEX__SEX_UNSPECIFIED;
        return 0;
    }
    for (size_t i = 0; i < HIE_ARRAY_LEN(names); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].sex;
            return 0;
        }
    }
    return HIE_EINVAL;
}

static int
action_parse(const char *s, Hie__V1__FeedAction *out)
{
    if (s == NULL || strcasecmp(s, "create") == 0) {
        *out = HIE__V1__FEED_ACTION__FEED_CREATE;
    } else if (strcasecmp(s, "update") == 0) {
        *out = HIE__V1__FEED_ACTION__FEED_UPDATE;
    } else {
        return HIE_EINVAL;
    }
    return 0;
}

static const char *
value_one(const struct row_values *v, int col)
{
    return v->counts[col] > 0 ? v->vals[col][0] : "";
}

/* A repeated field: copies the value pointers into the arena. */
static char **
values_many(hie_arena_t *arena, const struct row_values *v, int col, size_t *count)
{
    *count = v->counts[col];
    if (*count == 0) {
        return NULL;
    }
    char **arr = hie_arena_alloc(arena, *count * sizeof(char *));
    if (arr != NULL) {
        memcpy(arr, v->vals[col], *count * sizeof(char *));
    }
    return arr;
}

static int
demographics_fill(hie_arena_t *arena, const struct row_values *v, Hie__V1__Demographics *d)
{
    hie__v1__demographics__init(d);
    d->given = values_many(arena, v, COL_GIVEN, &d->n_given);
    d->family = values_many(arena, v, COL_FAMILY, &d->n_family);
    d->address_lines = values_many(arena, v, COL_ADDRESS, &d->n_address_lines);
    if ((d->n_given > 0 && d->given == NULL) || (d->n_family > 0 && d->family == NULL) ||
        (d->n_address_lines > 0 && d->address_lines == NULL)) {
        return HIE_ENOMEM;
    }
    d->birth_date = (char *)(uintptr_t)value_one(v, COL_BIRTH_DATE);
    d->city = (char *)(uintptr_t)value_one(v, COL_CITY);
    d->postcode = (char *)(uintptr_t)value_one(v, COL_POSTCODE);
    d->phone = (char *)(uintptr_t)value_one(v, COL_PHONE);
    d->email = (char *)(uintptr_t)value_one(v, COL_EMAIL);
    d->national_id = (char *)(uintptr_t)value_one(v, COL_NATIONAL_ID);
    return 0;
}

static int
request_build(hie_arena_t *arena, const struct row_values *v, node_import_row_t *row)
{
    const char *org = value_one(v, COL_ORG_ID);
    Hie__V1__Sex sex;
    Hie__V1__FeedAction action;
    if (org[0] == '\0') {
        return row_reject(row, "missing", "org_id");
    }
    if (!hie_proto_org_id_valid(org, strlen(org))) {
        return row_reject(row, "not a valid organization id", "org_id");
    }
    if (value_one(v, COL_MRN)[0] == '\0') {
        return row_reject(row, "missing", "mrn");
    }
    if (sex_parse(v->counts[COL_SEX] > 0 ? v->vals[COL_SEX][0] : NULL, &sex) != 0) {
        return row_reject(row, "must be female, male, other or unknown (or f, m, o, u)", "sex");
    }
    if (action_parse(v->counts[COL_ACTION] > 0 ? v->vals[COL_ACTION][0] : NULL, &action) != 0) {
        return row_reject(row, "must be create or update", "action");
    }
    Hie__V1__MpiFeedRequest *req = hie_arena_alloc(arena, sizeof(*req));
    Hie__V1__PatientId *pid = hie_arena_alloc(arena, sizeof(*pid));
    Hie__V1__Demographics *d = hie_arena_alloc(arena, sizeof(*d));
    if (req == NULL || pid == NULL || d == NULL || demographics_fill(arena, v, d) != 0) {
        return HIE_ENOMEM;
    }
    hie__v1__mpi_feed_request__init(req);
    hie__v1__patient_id__init(pid);
    pid->org_id = (char *)(uintptr_t)org;
    pid->mrn = (char *)(uintptr_t)value_one(v, COL_MRN);
    d->sex = sex;
    req->action = action;
    req->patient = pid;
    req->demographics = d;
    row->req = req;
    return 0;
}

/* ---- reader ------------------------------------------------------------------------------ */

/* SHA-256 of the size and every byte: a file changed anywhere, even at the same size, is
 * another file (its saved state is refused). The size and the first 64 KiB missed an edit
 * further in: a fixed row was skipped as "already imported". */
static int
reader_fingerprint(node_import_reader_t *r)
{
    uint8_t *chunk = (uint8_t *)r->rec; /* no record has been read yet */
    uint8_t size_be[8];
    uint8_t hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    for (unsigned i = 0; i < 8; i++) {
        size_be[i] = (uint8_t)(r->size >> (56 - 8 * i));
    }
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, size_be, sizeof(size_be));
    crypto_hash_sha256_state v1 = st; /* version 1: the size and the first chunk only */
    size_t got = 0;
    bool first = true;
    do {
        got = fread(chunk, 1, NODE_IMPORT_FINGERPRINT_PREFIX_BYTES, r->f);
        crypto_hash_sha256_update(&st, chunk, got);
        if (first) {
            crypto_hash_sha256_update(&v1, chunk, got);
            crypto_hash_sha256_final(&v1, hash);
            sodium_bin2hex(r->fingerprints[0], sizeof(r->fingerprints[0]), hash, sizeof(hash));
            first = false;
        }
    } while (got == NODE_IMPORT_FINGERPRINT_PREFIX_BYTES);
    if (ferror(r->f)) {
        return -EIO;
    }
    crypto_hash_sha256_final(&st, hash);
    sodium_bin2hex(r->fingerprints[1], sizeof(r->fingerprints[1]), hash, sizeof(hash));
    memcpy(r->fingerprint, r->fingerprints[1], sizeof(r->fingerprint));
    rewind(r->f);
    return 0;
}

/* Skips a UTF-8 byte order mark at the start (spreadsheet exports write one). */
static void
reader_skip_bom(node_import_reader_t *r)
{
    static const unsigned char bom[3] = {0xef, 0xbb, 0xbf};
    unsigned char head[3];
    size_t got = fread(head, 1, sizeof(head), r->f);
    if (got == sizeof(head) && memcmp(head, bom, sizeof(bom)) == 0) {
        r->offset = sizeof(bom);
    }
    (void)fseeko(r->f, (off_t)r->offset, SEEK_SET);
}

static int
header_columns(node_import_reader_t *r, const struct csv_ctx *ctx, char *err, size_t err_bytes)
{
    bool seen[COL_COUNT] = {false};
    for (size_t i = 0; i < ctx->fields_count; i++) {
        const char *name = ctx->fields[i];
        int col = column_find(name, strlen(name));
        if (col < 0 || seen[col]) {
            char safe[64];
            hie_log_sanitize(safe, sizeof(safe), name, strlen(name));
            snprintf(err, err_bytes, "%s column '%s' (column %zu of the header)",
                col < 0 ? "unknown" : "duplicate", safe, i + 1);
            return HIE_EINVAL;
        }
        seen[col] = true;
        r->columns[i] = col;
    }
    r->columns_count = ctx->fields_count;
    for (int col = COL_ORG_ID; col <= COL_MRN; col++) {
        if (!seen[col]) {
            snprintf(err, err_bytes, "missing required column '%s'", column_names[col]);
            return HIE_EINVAL;
        }
    }
    return 0;
}

/* Reads the first non-blank record as the CSV header. */
static int
reader_header(node_import_reader_t *r, char *err, size_t err_bytes)
{
    hie_arena_t *arena = NULL;
    struct csv_ctx ctx;
    int rc;
    for (;;) { /* bounded by the file */
        rc = record_read(r);
        if (rc != 0 || !record_blank(r)) {
            break;
        }
    }
    if (rc != 0) {
        snprintf(err, err_bytes, "%s", rc == HIE_ENOTFOUND ? "empty file (no csv header)"
                                                           : strerror(-rc));
        return rc == HIE_ENOTFOUND ? HIE_EINVAL : rc;
    }
    if (r->rec_too_long) {
        snprintf(err, err_bytes, "the csv header is longer than %u bytes",
            NODE_IMPORT_RECORD_BYTES_MAX);
        return HIE_EINVAL;
    }
    if (hie_arena_create(&arena, 2u * NODE_IMPORT_RECORD_BYTES_MAX) != 0) {
        return HIE_ENOMEM;
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.arena = arena;
    rc = csv_fields(r, &ctx);
    if (rc != 0) {
        snprintf(err, err_bytes, "csv header: %s", ctx.error);
    } else {
        rc = header_columns(r, &ctx, err, err_bytes);
    }
    hie_arena_destroy(&arena);
    return rc;
}

static int
reader_start(node_import_reader_t *r, char *err, size_t err_bytes)
{
    int rc = reader_fingerprint(r);
    if (rc != 0) {
        snprintf(err, err_bytes, "read: %s", strerror(-rc));
        return rc;
    }
    reader_skip_bom(r);
    if (r->format == NODE_IMPORT_CSV) {
        if (csv_init(&r->csv, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
            return HIE_ENOMEM;
        }
        r->csv_ready = true;
        csv_set_term_func(&r->csv, csv_is_term);
        rc = reader_header(r, err, err_bytes);
        if (rc != 0) {
            return rc;
        }
    }
    r->data_offset = r->offset;
    r->data_line = r->line;
    return 0;
}

int
hie_node__import_open(node_import_reader_t **out, const char *path,
    enum node_import_format format, char *err, size_t err_bytes)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(path != NULL);
    HIE_ASSERT(format == NODE_IMPORT_CSV || format == NODE_IMPORT_NDJSON);
    HIE_ASSERT(err != NULL && err_bytes > 0);
    *out = NULL;
    err[0] = '\0';
    struct stat sb;
    node_import_reader_t *r = hie_mem_calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, err_bytes, "out of memory");
        return HIE_ENOMEM;
    }
    r->magic = READER_MAGIC;
    r->format = format;
    r->line = 1;
    int rc = 0;
    r->f = fopen(path, "rb");
    if (r->f == NULL || fstat(fileno(r->f), &sb) != 0) {
        rc = -errno;
        snprintf(err, err_bytes, "%s", strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        rc = HIE_EINVAL;
        snprintf(err, err_bytes, "not a regular file");
    } else {
        r->size = (uint64_t)sb.st_size;
        rc = reader_start(r, err, err_bytes);
    }
    if (rc != 0) {
        if (err[0] == '\0') {
            snprintf(err, err_bytes, "%s", hie_strerror(rc));
        }
        hie_node__import_destroy(&r);
        return rc;
    }
    *out = r;
    return 0;
}

void
hie_node__import_destroy(node_import_reader_t **reader)
{
    HIE_ASSERT(reader != NULL);
    node_import_reader_t *r = *reader;
    if (r == NULL) {
        return;
    }
    HIE_ASSERT(r->magic == READER_MAGIC);
    if (r->csv_ready) {
        csv_free(&r->csv);
    }
    if (r->f != NULL) {
        (void)fclose(r->f);
    }
    sodium_memzero(r->rec, sizeof(r->rec)); /* the last record was PHI */
    r->magic = 0;
    hie_mem_free(r, sizeof(*r));
    *reader = NULL;
}

const char *
hie_node__import_fingerprint(const node_import_reader_t *r)
{
    HIE_ASSERT(r != NULL);
    HIE_ASSERT(r->magic == READER_MAGIC);
    return r->fingerprint;
}

void
hie_node__import_fingerprint_use(node_import_reader_t *r, uint32_t version)
{
    HIE_ASSERT(r != NULL && r->magic == READER_MAGIC && (version == 1 || version == 2));
    memcpy(r->fingerprint, r->fingerprints[version - 1], sizeof(r->fingerprint));
}

uint64_t
hie_node__import_size(const node_import_reader_t *r)
{
    HIE_ASSERT(r != NULL);
    HIE_ASSERT(r->magic == READER_MAGIC);
    return r->size;
}

int
hie_node__import_seek(node_import_reader_t *r, uint64_t offset, uint64_t line)
{
    HIE_ASSERT(r != NULL);
    HIE_ASSERT(r->magic == READER_MAGIC);
    if (offset < r->data_offset || offset > r->size || line < r->data_line) {
        return HIE_EINVAL;
    }
    if (fseeko(r->f, (off_t)offset, SEEK_SET) != 0) {
        return -errno;
    }
    r->offset = offset;
    r->line = line;
    return 0;
}

int
hie_node__import_next(node_import_reader_t *r, hie_arena_t *arena, node_import_row_t *row)
{
    HIE_ASSERT(r != NULL);
    HIE_ASSERT(r->magic == READER_MAGIC);
    HIE_ASSERT(arena != NULL);
    HIE_ASSERT(row != NULL);
    memset(row, 0, sizeof(*row));
    int rc;
    for (;;) { /* skips blank lines; bounded by the file */
        row->line = r->line;
        rc = record_read(r);
        if (rc != 0 || !record_blank(r)) {
            break;
        }
    }
    if (rc != 0) {
        return rc;
    }
    row->end_offset = r->offset;
    row->end_line = r->line;
    if (r->rec_too_long) {
        return row_reject(row, "record longer than 65536 bytes", NULL);
    }
    if (r->rec_unbalanced) {
        return row_reject(row, "a quoted field is never closed (this line is rejected; the "
            "next line is read as a new row)", NULL);
    }
    struct row_values v;
    memset(&v, 0, sizeof(v));
    rc = r->format == NODE_IMPORT_CSV ? csv_row_values(r, arena, &v, row)
                                      : json_row_values(r, arena, &v, row);
    if (rc == 0) {
        rc = request_build(arena, &v, row);
    }
    if (rc == HIE_ENOMEM) {
        (void)row_reject(row, "out of memory", NULL);
        return HIE_ENOMEM;
    }
    HIE_ASSERT(rc != 0 || row->req != NULL);
    return rc;
}

/* ---- state file -------------------------------------------------------------------------- */

static json_t *
state_to_json(const node_import_state_t *st)
{
    const node_import_counts_t *c = &st->counts;
    return json_pack("{s:i, s:s, s:I, s:I, s:b, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
        "version", st->version == 1 ? 1 : STATE_VERSION, "fingerprint", st->fingerprint,
        "offset",
        (json_int_t)st->offset, "line", (json_int_t)st->line, "complete", st->complete,
        "counts", "rows", (json_int_t)c->rows, "imported", (json_int_t)c->imported,
        "rejected", (json_int_t)c->rejected, "new", (json_int_t)c->created, "linked",
        (json_int_t)c->linked, "review", (json_int_t)c->review, "updated",
        (json_int_t)c->updated);
}

static int
write_all_sync(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return fsync(fd) == 0 ? 0 : -errno;
}

int
hie_node__import_state_save(const char *path, const node_import_state_t *st)
{
    HIE_ASSERT(path != NULL);
    HIE_ASSERT(st != NULL);
    HIE_ASSERT(strlen(st->fingerprint) == NODE_IMPORT_FINGERPRINT_HEX_BYTES - 1);
    char tmp[4096 + 8];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    json_t *obj = state_to_json(st);
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (text == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    /* beside the import file, maybe in a shared folder: never through a link someone planted,
     * never into a file someone else made */
    (void)unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
    } else {
        rc = write_all_sync(fd, text, strlen(text));
        if (close(fd) != 0 && rc == 0) {
            rc = -errno;
        }
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        (void)unlink(tmp);
    }
    free(text);
    return rc;
}

static int
state_from_json(json_t *obj, node_import_state_t *st)
{
    int version = 0, complete = 0;
    const char *fp = NULL;
    json_int_t v[9] = {0};
    if (json_unpack(obj, "{s:i, s:s, s:I, s:I, s:b, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
            "version", &version, "fingerprint", &fp, "offset", &v[0], "line", &v[1],
            "complete", &complete, "counts", "rows", &v[2], "imported", &v[3], "rejected",
            &v[4], "new", &v[5], "linked", &v[6], "review", &v[7], "updated", &v[8]) != 0) {
        return HIE_ECORRUPT;
    }
    for (size_t i = 0; i < HIE_ARRAY_LEN(v); i++) {
        if (v[i] < 0) {
            return HIE_ECORRUPT;
        }
    }
    if ((version != STATE_VERSION && version != 1) ||
        strlen(fp) != NODE_IMPORT_FINGERPRINT_HEX_BYTES - 1 ||
        strspn(fp, "0123456789abcdef") != NODE_IMPORT_FINGERPRINT_HEX_BYTES - 1 || v[1] < 1) {
        return HIE_ECORRUPT;
    }
    memset(st, 0, sizeof(*st));
    memcpy(st->fingerprint, fp, NODE_IMPORT_FINGERPRINT_HEX_BYTES);
    st->version = (uint32_t)version;
    st->offset = (uint64_t)v[0];
    st->line = (uint64_t)v[1];
    st->complete = complete != 0;
    st->counts = (node_import_counts_t){(uint64_t)v[2], (uint64_t)v[3], (uint64_t)v[4],
        (uint64_t)v[5], (uint64_t)v[6], (uint64_t)v[7], (uint64_t)v[8]};
    return 0;
}

int
hie_node__import_state_load(const char *path, node_import_state_t *st)
{
    HIE_ASSERT(path != NULL);
    HIE_ASSERT(st != NULL);
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        return errno == ENOENT ? HIE_ENOTFOUND : -errno;
    }
    /* ours only: a progress file another user planted would make rows skipped as done */
    if (!S_ISREG(sb.st_mode) || sb.st_size > (off_t)NODE_IMPORT_STATE_BYTES_MAX ||
        sb.st_uid != geteuid() || (sb.st_mode & 0022) != 0) {
        return HIE_ECORRUPT;
    }
    json_error_t jerr;
    json_t *obj = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (obj == NULL) {
        return json_error_code(&jerr) == json_error_cannot_open_file ? -EIO : HIE_ECORRUPT;
    }
    node_import_state_t tmp;
    int rc = state_from_json(obj, &tmp);
    json_decref(obj);
    if (rc == 0) {
        *st = tmp;
    }
    return rc;
}

void
hie_node__import_item_id(const char *fingerprint, uint64_t line,
    const Hie__V1__MpiFeedRequest *req, char *buf, size_t buf_bytes)
{
    HIE_ASSERT(fingerprint != NULL);
    HIE_ASSERT(strlen(fingerprint) >= 16);
    HIE_ASSERT(buf_bytes > HIE_PROTO_ID_BYTES_MAX);
    uint8_t h[6] = {0};
    char hex[2 * sizeof(h) + 1];
    size_t len = req != NULL ? protobuf_c_message_get_packed_size(&req->base) : 0;
    uint8_t *packed = len > 0 ? malloc(len) : NULL;
    if (packed != NULL) { /* out of memory: the row's hash is left out (zeros) */
        HIE_ASSERT(protobuf_c_message_pack(&req->base, packed) == len);
        crypto_generichash(h, sizeof(h), packed, len, NULL, 0);
        free(packed);
    }
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    int n = snprintf(buf, buf_bytes, "imp-%.16s-%llu-%s", fingerprint, (unsigned long long)line,
        hex);
    HIE_ASSERT(n > 0 && (size_t)n <= HIE_PROTO_ID_BYTES_MAX); /* 4 + 16 + 1 + 20 + 1 + 12 */
}
