/*
 * test_import.c - unit tests for node/src/import.c, the row reader of `hiectl mpi import`:
 * CSV and NDJSON rows, quoted CSV fields, header refusals, an oversized line, invalid UTF-8,
 * resuming at a saved offset, and the state file round trip. No network: files in a temp dir.
 */
#include "import.h"

#include "../test_util.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[128];
static char path[256];
static char err[512];
static hie_arena_t *arena;
static node_import_reader_t *reader;

static void
setup(void)
{
    test_tmpdir_make(dir, sizeof(dir), "import");
    cr_assert_eq(hie_arena_create(&arena, 16u * 1024u * 1024u), 0);
}

static void
teardown(void)
{
    hie_node__import_destroy(&reader);
    hie_arena_destroy(&arena);
    test_tmpdir_remove(dir);
}

TestSuite(node_import, .init = setup, .fini = teardown);

static void
file_write(const char *name, const char *text, size_t len)
{
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    test_write_file(NULL, path, text, len);
}

static int
open_text(const char *name, const char *text, enum node_import_format fmt)
{
    file_write(name, text, strlen(text));
    return hie_node__import_open(&reader, path, fmt, err, sizeof(err));
}

static void
next_ok(node_import_row_t *row)
{
    int rc = hie_node__import_next(reader, arena, row);
    cr_assert_eq(rc, 0, "line %llu: rc=%d reason=%s field=%s", (unsigned long long)row->line,
        rc, row->reason != NULL ? row->reason : "-", row->field != NULL ? row->field : "-");
    cr_assert_not_null(row->req);
}

Test(node_import, csv_reads_good_rows)
{
    node_import_row_t row;
    cr_assert_eq(open_text("a.csv",
                     "org_id,mrn,given,family,birth_date,sex,address,city,postcode,phone,"
                     "email,national_id\n"
                     "h1,M1,Mary|Ann,Smith,1980-02-03,F,1 Main St|Flat 2,Springfield,12345,"
                     "555-0100,m@x.org,123-45-6789\n"
                     "\n"
                     "h1,M2,John,Doe,,m,,,,,,\n",
                     NODE_IMPORT_CSV),
        0, "%s", err);
    next_ok(&row);
    const Hie__V1__MpiFeedRequest *r = row.req;
    cr_assert_eq(row.line, 2);
    cr_assert_eq(r->action, HIE__V1__FEED_ACTION__FEED_CREATE);
    cr_assert_str_eq(r->patient->org_id, "h1");
    cr_assert_str_eq(r->patient->mrn, "M1");
    cr_assert_eq(r->demographics->n_given, 2);
    cr_assert_str_eq(r->demographics->given[1], "Ann");
    cr_assert_eq(r->demographics->n_address_lines, 2);
    cr_assert_str_eq(r->demographics->address_lines[1], "Flat 2");
    cr_assert_eq(r->demographics->sex, HIE__V1__SEX__SEX_FEMALE);
    cr_assert_str_eq(r->demographics->national_id, "123-45-6789");
    next_ok(&row);
    cr_assert_eq(row.line, 4, "the blank line 3 is skipped");
    cr_assert_eq(row.req->demographics->sex, HIE__V1__SEX__SEX_MALE);
    cr_assert_str_eq(row.req->demographics->birth_date, "");
    cr_assert_eq(hie_node__import_next(reader, arena, &row), HIE_ENOTFOUND);
}

Test(node_import, csv_quoted_fields_and_action_column)
{
    node_import_row_t row;
    cr_assert_eq(open_text("q.csv",
                     "\xef\xbb\xbfMRN,Org_Id,family,address,action\r\n"
                     "\"M,1\",h1,\"O\"\"Brien\",\"12 High St\nApt 3\",update\r\n"
                     "M2,h1,Lee,,create\r\n",
                     NODE_IMPORT_CSV),
        0, "%s", err);
    next_ok(&row);
    cr_assert_str_eq(row.req->patient->mrn, "M,1");
    cr_assert_str_eq(row.req->demographics->family[0], "O\"Brien");
    cr_assert_str_eq(row.req->demographics->address_lines[0], "12 High St\nApt 3");
    cr_assert_eq(row.req->action, HIE__V1__FEED_ACTION__FEED_UPDATE);
    cr_assert_eq(row.line, 2);
    cr_assert_eq(row.end_line, 4, "the quoted newline spans lines 2-3");
    next_ok(&row);
    cr_assert_eq(row.line, 4, "line numbers count physical lines");
    cr_assert_str_eq(row.req->patient->mrn, "M2");
}

/* A quote inside an unquoted field opens nothing: the row stands alone (accepted or refused
 * by the CSV parser) and the rows after it are read, not swallowed into it. */
Test(node_import, csv_stray_quote_does_not_swallow_the_next_rows)
{
    node_import_row_t row;
    cr_assert_eq(open_text("s.csv",
                     "org_id,mrn,family,address\n"
                     "h1,M1,O\"Brien,Main St\n"
                     "h1,M2,Lee,1 High St\n"
                     "h1,M3,\"Ng\",\"2 \"\"Low\"\" St\"\n"
                     "h1,M4,Ho, \"3 Oak\nRd\"\n", /* a space before the quote: still quoted */
                     NODE_IMPORT_CSV),
        0, "%s", err);
    int rc = hie_node__import_next(reader, arena, &row); /* accepted or refused: its call */
    cr_assert(rc == 0 || rc == HIE_EINVAL, "rc %d", rc);
    cr_assert_eq(row.line, 2);
    next_ok(&row);
    cr_assert_eq(row.line, 3);
    cr_assert_str_eq(row.req->patient->mrn, "M2");
    next_ok(&row);
    cr_assert_eq(row.line, 4);
    cr_assert_str_eq(row.req->demographics->address_lines[0], "2 \"Low\" St");
    next_ok(&row);
    cr_assert_eq(row.line, 5);
    cr_assert_eq(row.end_line, 7, "the quoted newline spans lines 5-6");
    cr_assert_eq(hie_node__import_next(reader, arena, &row), HIE_ENOTFOUND);
}

/* A quote that opens a field and is never closed: the rows after it were one rejected record
 * up to the end of the file (or 64 KiB of rows at a time). Its first line is now the rejected
 * row and every row after it is read. */
static void
unclosed_quote_case(size_t rows_after)
{
    size_t cap = 64 + (rows_after + 2) * 32;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    size_t len = (size_t)snprintf(text, cap, "org_id,mrn,given,family\nh1,M0,\"Bob,Kay\n");
    for (size_t i = 1; i <= rows_after; i++) {
        len += (size_t)snprintf(text + len, cap - len, "h1,M%zu,Ann,Lee\n", i);
    }
    file_write("q.csv", text, len);
    free(text);
    cr_assert_eq(hie_node__import_open(&reader, path, NODE_IMPORT_CSV, err, sizeof(err)), 0,
        "%s", err);
    node_import_row_t row;
    cr_assert_eq(hie_node__import_next(reader, arena, &row), HIE_EINVAL);
    cr_assert_eq(row.line, 2);
    cr_assert_eq(row.end_line, 3, "only its own line");
    cr_assert_not_null(strstr(row.reason, "never closed"), "%s", row.reason);
    for (size_t i = 1; i <= rows_after; i++) {
        next_ok(&row);
        cr_assert_eq(row.line, i + 2);
        char mrn[32];
        snprintf(mrn, sizeof(mrn), "M%zu", i);
        cr_assert_str_eq(row.req->patient->mrn, mrn);
        hie_arena_reset(arena);
    }
    cr_assert_eq(hie_node__import_next(reader, arena, &row), HIE_ENOTFOUND);
}

Test(node_import, csv_unclosed_quote_rejects_one_line_before_the_end_of_file)
{
    unclosed_quote_case(3);
}

Test(node_import, csv_unclosed_quote_rejects_one_line_before_the_size_limit)
{
    unclosed_quote_case(4000); /* about 64 KiB of rows after it */
}

Test(node_import, csv_header_refusals)
{
    cr_assert_eq(open_text("m.csv", "org_id,given,family\nh1,A,B\n", NODE_IMPORT_CSV),
        HIE_EINVAL);
    cr_assert_null(reader);
    cr_assert(strstr(err, "missing required column 'mrn'") != NULL, "%s", err);
    cr_assert_eq(open_text("u.csv", "org_id,mrn,shoe_size\n", NODE_IMPORT_CSV), HIE_EINVAL);
    cr_assert(strstr(err, "unknown column 'shoe_size'") != NULL, "%s", err);
    cr_assert_eq(open_text("d.csv", "org_id,mrn,mrn\n", NODE_IMPORT_CSV), HIE_EINVAL);
    cr_assert(strstr(err, "duplicate column 'mrn'") != NULL, "%s", err);
    cr_assert_eq(open_text("e.csv", "\n\n", NODE_IMPORT_CSV), HIE_EINVAL);
    cr_assert(strstr(err, "empty file") != NULL, "%s", err);
}

Test(node_import, csv_bad_rows_are_rejected_and_reading_goes_on)
{
    node_import_row_t row;
    cr_assert_eq(open_text("b.csv",
                     "org_id,mrn,sex,family\n"
                     "h1,M1,X,A\n"           /* bad sex */
                     "h1,,F,A\n"             /* missing mrn */
                     "H 1,M3,F,A\n"          /* bad org id */
                     "h1,M4,F\n"             /* field count */
                     "h1,M5,\"F\"x,A\n"      /* junk after a quoted field */
                     "h1,M6,F,A|B|C|D|E|F|G|H|I\n" /* too many values */
                     "h1,M7,F,A\n",
                     NODE_IMPORT_CSV),
        0, "%s", err);
    static const char *const fields[] = {"sex", "mrn", "org_id", NULL, NULL, "family"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(fields); i++) {
        cr_assert_eq(hie_node__import_next(reader, arena, &row), HIE_EINVAL, "row %zu", i);
        cr_assert_eq(row.line, i + 2);
        cr_assert_null(row.req);
        cr_assert_not_null(row.reason);
        if (fields[i] != NULL) {
            cr_assert_str_eq(row.field, fields[i], "row %zu", i);
        }
    }
    next_ok(&row);
    cr_assert_str_eq(row.req->patient->mrn, "M7");
}

Test(node_import, ndjson_reads_strings_and_arrays)
{
    node_import_row_t row;
    cr_assert_eq(open_text("a.ndjson",
                     "{\"org_id\":\"h1\",\"mrn\":\"M1\",\"given\":[\"Mary\",\"Ann\"],"
                     "\"family\":\"Smith\",\"address\":[\"1 Main\"],\"sex\":\"female\","
                     "\"birth_date\":\"19800203\",\"email\":null}\n"
                     "\n"
                     "{\"org_id\":\"h1\",\"mrn\":\"M2\",\"action\":\"update\"}",
                     NODE_IMPORT_NDJSON),
        0, "%s", err);
    next_ok(&row);
    cr_assert_eq(row.req->demographics->n_given, 2);
    cr_assert_str_eq(row.req->demographics->given[0], "Mary");
    cr_assert_str_eq(row.req->demographics->family[0], "Smith");
    cr_assert_str_eq(row.req->demographics->email, "");
    next_ok(&row);
    cr_assert_eq(row.line, 3);
    cr_assert_eq(row.req->action, HIE__V1__FEED_ACTION__FEED_UPDATE);
    cr_assert_eq(row.end_offset, hie_node__import_size(reader), "last line without newline");
    cr_assert_eq(hie_node__import_next(reader, arena, &row), HIE_ENOTFOUND);
}

Test(node_import, ndjson_bad_rows)
{
    node_import_row_t row;
    cr_assert_eq(open_text("b.ndjson",
                     "{\"org_id\":\"h1\",\"mrn\":\"M1\",\"shoe\":\"42\"}\n"
                     "[1,2]\n"
                     "{\"org_id\":\"h1\",\"mrn\":7}\n"
                     "{\"org_id\":\"h1\",\"mrn\":\"M4\",\"city\":[\"A\"]}\n"
                     "{not json\n"
                     "{\"org_id\":\"h1\",\"mrn\":\"M1\",\"MRN\":\"M2\"}\n"
                     "{\"org_id\":\"h1\",\"mrn\":\"M6\"}\n",
                     NODE_IMPORT_NDJSON),
        0, "%s", err);
    static const char *const fields[] = {"shoe", NULL, "mrn", "city", NULL, "mrn"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(fields); i++) {
        cr_assert_eq(hie_node__import_next(reader, arena, &row), HIE_EINVAL, "row %zu", i);
        cr_assert_eq(row.line, i + 1);
        if (fields[i] != NULL) {
            cr_assert_str_eq(row.field, fields[i], "row %zu", i);
        }
    }
    next_ok(&row);
    cr_assert_str_eq(row.req->patient->mrn, "M6");
}

/* A 100 KiB line is one rejected row; the next line is read normally. */
static void
long_line_case(enum node_import_format fmt)
{
    size_t big = 100u * 1024u;
    const char *head = fmt == NODE_IMPORT_CSV ? "org_id,mrn,family\n" : "";
    const char *tail = fmt == NODE_IMPORT_CSV ? "\nh1,M2,Z\n"
                                              : "\n{\"org_id\":\"h1\",\"mrn\":\"M2\"}\n";
    size_t len = strlen(head) + big + strlen(tail);
    char *text = malloc(len + 1);
    cr_assert_not_null(text);
    strcpy(text, head);
    memset(text + strlen(head), 'a', big);
    if (fmt == NODE_IMPORT_CSV) {
        text[strlen(head) + 5] = '"'; /* an unbalanced quote must not swallow the file */
    }
    strcpy(text + strlen(head) + big, tail);
    file_write(fmt == NODE_IMPORT_CSV ? "l.csv" : "l.ndjson", text, len);
    free(text);
    cr_assert_eq(hie_node__import_open(&reader, path, fmt, err, sizeof(err)), 0, "%s", err);
    node_import_row_t row;
    cr_assert_eq(hie_node__import_next(reader, arena, &row), HIE_EINVAL);
    cr_assert(strstr(row.reason, "longer") != NULL, "%s", row.reason);
    next_ok(&row);
    cr_assert_str_eq(row.req->patient->mrn, "M2");
    cr_assert_eq(hie_node__import_next(reader, arena, &row), HIE_ENOTFOUND);
}

Test(node_import, long_line_is_a_rejected_row_csv)
{
    long_line_case(NODE_IMPORT_CSV);
}

Test(node_import, long_line_is_a_rejected_row_ndjson)
{
    long_line_case(NODE_IMPORT_NDJSON);
}

Test(node_import, invalid_utf8_is_passed_through_in_csv)
{
    node_import_row_t row;
    cr_assert_eq(open_text("x.csv", "org_id,mrn,family\nh1,M1,Sm\xff\xc3ith\n", NODE_IMPORT_CSV),
        0, "%s", err);
    next_ok(&row);
    cr_assert_str_eq(row.req->demographics->family[0], "Sm\xff\xc3ith", "the node decides");
}

Test(node_import, invalid_utf8_in_ndjson_is_a_rejected_row)
{
    node_import_row_t row;
    cr_assert_eq(open_text("x.ndjson",
                     "{\"org_id\":\"h1\",\"mrn\":\"M\xff\"}\n{\"org_id\":\"h1\",\"mrn\":\"M2\"}\n",
                     NODE_IMPORT_NDJSON),
        0, "%s", err);
    cr_assert_eq(hie_node__import_next(reader, arena, &row), HIE_EINVAL);
    next_ok(&row);
    cr_assert_eq(row.line, 2);
}

Test(node_import, csv_nul_byte_is_a_rejected_row)
{
    node_import_row_t row;
    static const char text[] = "org_id,mrn\nh1,M\0X\nh1,M2\n";
    file_write("n.csv", text, sizeof(text) - 1);
    cr_assert_eq(hie_node__import_open(&reader, path, NODE_IMPORT_CSV, err, sizeof(err)), 0);
    cr_assert_eq(hie_node__import_next(reader, arena, &row), HIE_EINVAL);
    next_ok(&row);
    cr_assert_str_eq(row.req->patient->mrn, "M2");
}

Test(node_import, resume_at_saved_offset)
{
    static const char text[] = "org_id,mrn\nh1,M1\nh1,\"M\n2\"\nh1,M3\nh1,M4\n";
    node_import_row_t row;
    cr_assert_eq(open_text("r.csv", text, NODE_IMPORT_CSV), 0, "%s", err);
    next_ok(&row);
    next_ok(&row);
    cr_assert_str_eq(row.req->patient->mrn, "M\n2");
    node_import_state_t st = {.offset = row.end_offset, .line = row.end_line};
    snprintf(st.fingerprint, sizeof(st.fingerprint), "%s", hie_node__import_fingerprint(reader));
    hie_node__import_destroy(&reader);

    cr_assert_eq(hie_node__import_open(&reader, path, NODE_IMPORT_CSV, err, sizeof(err)), 0);
    cr_assert_str_eq(hie_node__import_fingerprint(reader), st.fingerprint, "same file");
    cr_assert_eq(hie_node__import_seek(reader, st.offset, st.line), 0);
    next_ok(&row);
    cr_assert_str_eq(row.req->patient->mrn, "M3");
    cr_assert_eq(row.line, 5);
    cr_assert_eq(hie_node__import_seek(reader, 3, 1), HIE_EINVAL, "inside the header");
    cr_assert_eq(hie_node__import_seek(reader, sizeof(text), 9), HIE_EINVAL, "past the end");
}

Test(node_import, fingerprint_changes_with_content)
{
    char first[NODE_IMPORT_FINGERPRINT_HEX_BYTES];
    cr_assert_eq(open_text("f.csv", "org_id,mrn\nh1,M1\n", NODE_IMPORT_CSV), 0);
    snprintf(first, sizeof(first), "%s", hie_node__import_fingerprint(reader));
    hie_node__import_destroy(&reader);
    cr_assert_eq(open_text("f.csv", "org_id,mrn\nh1,M2\n", NODE_IMPORT_CSV), 0);
    cr_assert_str_neq(hie_node__import_fingerprint(reader), first);
    cr_assert_eq(strlen(first), 64);
}

/* An edit past the first 64 KiB that keeps the size is another file too: the fingerprint
 * covered only the size and the first 64 KiB, so a resumed or repeated import skipped the
 * fixed row as already imported. */
Test(node_import, fingerprint_covers_the_whole_file)
{
    static char text[200000];
    char first[NODE_IMPORT_FINGERPRINT_HEX_BYTES];
    size_t n = (size_t)snprintf(text, sizeof(text), "org_id,mrn,family\n");
    for (unsigned i = 0; n + 32 < sizeof(text); i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "h1,M%06u,Smith\n", i);
    }
    cr_assert_eq(open_text("big.csv", text, NODE_IMPORT_CSV), 0);
    snprintf(first, sizeof(first), "%s", hie_node__import_fingerprint(reader));
    hie_node__import_destroy(&reader);
    char *late = strstr(text + 150000, "Smith");
    cr_assert_not_null(late);
    memcpy(late, "htimS", 5); /* same size, 150 KB in */
    cr_assert_eq(open_text("big.csv", text, NODE_IMPORT_CSV), 0);
    cr_assert_str_neq(hie_node__import_fingerprint(reader), first);
}

Test(node_import, state_file_round_trip)
{
    node_import_state_t st = {.version = 2, .offset = 123456789012ull, .line = 42,
        .complete = true, .counts = {10, 7, 3, 4, 2, 1, 0}};
    memset(st.fingerprint, 'a', 64);
    char state_path[256];
    snprintf(state_path, sizeof(state_path), "%s/x.hieimport", dir);
    node_import_state_t back;
    cr_assert_eq(hie_node__import_state_load(state_path, &back), HIE_ENOTFOUND);
    cr_assert_eq(hie_node__import_state_save(state_path, &st), 0);
    cr_assert_eq(hie_node__import_state_load(state_path, &back), 0);
    cr_assert_eq(memcmp(&back, &st, sizeof(st)), 0);
    test_write_text(dir, "x.hieimport", "{\"version\":1}");
    cr_assert_eq(hie_node__import_state_load(state_path, &back), HIE_ECORRUPT);
}

/* A state file from before fingerprints covered the whole file (version 1: the size and the
 * first 64 KiB) still loads, and the reader gives that fingerprint on request, so a half-done
 * import resumes with the row ids it already sent instead of being refused as another file. */
Test(node_import, a_version_1_state_file_resumes_with_its_fingerprint)
{
    static char text[100000];
    size_t n = (size_t)snprintf(text, sizeof(text), "org_id,mrn\n");
    for (unsigned i = 0; n + 16 < sizeof(text); i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "h1,M%07u\n", i);
    }
    cr_assert_eq(open_text("v1.csv", text, NODE_IMPORT_CSV), 0);
    uint8_t size_be[8], hash[crypto_hash_sha256_BYTES];
    char want[NODE_IMPORT_FINGERPRINT_HEX_BYTES], whole[NODE_IMPORT_FINGERPRINT_HEX_BYTES];
    for (unsigned i = 0; i < 8; i++) {
        size_be[i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    }
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, size_be, 8);
    crypto_hash_sha256_update(&st, (const uint8_t *)text, NODE_IMPORT_FINGERPRINT_PREFIX_BYTES);
    crypto_hash_sha256_final(&st, hash);
    sodium_bin2hex(want, sizeof(want), hash, sizeof(hash));
    snprintf(whole, sizeof(whole), "%s", hie_node__import_fingerprint(reader));
    cr_assert_str_neq(whole, want, "the whole file's by default");
    hie_node__import_fingerprint_use(reader, 1);
    cr_assert_str_eq(hie_node__import_fingerprint(reader), want);
    char state_path[256], json[256];
    snprintf(state_path, sizeof(state_path), "%s/v1.hieimport", dir);
    snprintf(json, sizeof(json), "{\"version\":1,\"fingerprint\":\"%s\",\"offset\":11,"
        "\"line\":2,\"complete\":false,\"counts\":{\"rows\":0,\"imported\":0,"
        "\"rejected\":0,\"new\":0,\"linked\":0,\"review\":0,\"updated\":0}}", want);
    test_write_text(dir, "v1.hieimport", json);
    node_import_state_t back;
    cr_assert_eq(hie_node__import_state_load(state_path, &back), 0);
    cr_assert_eq(back.version, 1u);
    cr_assert_str_eq(back.fingerprint, want);
    cr_assert_eq(hie_node__import_state_save(state_path, &back), 0);
    cr_assert_eq(hie_node__import_state_load(state_path, &back), 0);
    cr_assert_eq(back.version, 1u, "saved again as version 1");
}

/* The progress file may sit in a shared folder: one that is not ours alone (writable by the
 * group, or a link) is refused, and saving never writes through a link planted at its
 * temporary name. */
Test(node_import, state_files_others_could_plant_are_refused)
{
    node_import_state_t st = {.offset = 10, .line = 2};
    memset(st.fingerprint, 'b', 64);
    char state_path[256], tmp_path[264], victim[256];
    snprintf(state_path, sizeof(state_path), "%s/y.hieimport", dir);
    snprintf(tmp_path, sizeof(tmp_path), "%s.tmp", state_path);
    snprintf(victim, sizeof(victim), "%s/victim.txt", dir);
    test_write_text(dir, "victim.txt", "keep");
    cr_assert_eq(symlink(victim, tmp_path), 0);
    cr_assert_eq(hie_node__import_state_save(state_path, &st), 0);
    char buf[16] = "";
    FILE *f = fopen(victim, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    cr_assert_str_eq(buf, "keep", "written through the planted link");
    node_import_state_t back;
    cr_assert_eq(hie_node__import_state_load(state_path, &back), 0);
    cr_assert_eq(chmod(state_path, 0620), 0);
    cr_assert_eq(hie_node__import_state_load(state_path, &back), HIE_ECORRUPT, "group-writable");
    cr_assert_eq(chmod(state_path, 0600), 0);
    char link_path[264];
    snprintf(link_path, sizeof(link_path), "%s/z.hieimport", dir);
    cr_assert_eq(symlink(state_path, link_path), 0);
    cr_assert_eq(hie_node__import_state_load(link_path, &back), HIE_ECORRUPT, "a link");
}

Test(node_import, item_ids_are_valid_and_distinct)
{
    char a[HIE_PROTO_ID_BYTES_MAX + 1];
    char b[HIE_PROTO_ID_BYTES_MAX + 1];
    const char *fp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    hie_node__import_item_id(fp, 18446744073709551615ull, NULL, a, sizeof(a));
    cr_assert(hie_proto_id_valid(a, strlen(a)), "%s", a);
    hie_node__import_item_id(fp, 2, NULL, b, sizeof(b));
    cr_assert_str_eq(b, "imp-0123456789abcdef-2-000000000000");
    /* the same line with other content (a corrected birth date): another item */
    Hie__V1__MpiFeedRequest r1 = HIE__V1__MPI_FEED_REQUEST__INIT, r2 = r1;
    Hie__V1__Demographics d1 = HIE__V1__DEMOGRAPHICS__INIT, d2 = d1;
    d1.birth_date = "1970-03-02";
    d2.birth_date = "1970-02-03";
    r1.demographics = &d1;
    r2.demographics = &d2;
    hie_node__import_item_id(fp, 2, &r1, a, sizeof(a));
    hie_node__import_item_id(fp, 2, &r2, b, sizeof(b));
    cr_assert_str_neq(a, b);
    cr_assert(hie_proto_id_valid(a, strlen(a)), "%s", a);
    hie_node__import_item_id(fp, 2, &r1, b, sizeof(b));
    cr_assert_str_eq(a, b, "the same row: the same item (a rerun is a repeat)");
}

Test(node_import, null_reader_aborts, .signal = SIGABRT)
{
    test_tmpdir_remove(dir); /* .fini does not run after the abort */
    node_import_row_t row;
    int rc = hie_node__import_next(NULL, arena, &row);
    cr_assert_fail("returned %d", rc);
}
