/*
 * test_cli_adt_query.c - `hie adt`, the subscription commands, `hie notifications`, `hie query`
 * and `hie get` against a real hie-node over mutual TLS (issue 5).
 *
 * A hospital and a clinic know the same person (H-1, C-9). The clinic subscribes to all its
 * patients; the hospital's `hie adt a01` reaches it as a decoded notification (event A01,
 * number 1, the clinic's own MRN), the A11 too (flagged cancel), each acknowledged once
 * printed; `hie replay SUB --from 1` queues both again and `hie notifications` shows them with
 * their original message ids. Bad input is refused before sending (exit 2), and a roster file
 * of 1,500 MRNs goes in two requests (the node logs two roster updates; size 1,500).
 * The hospital stores two documents in the repository (`hie push --repository`); the clinic's
 * `hie query --mrn C-9` lists both with the repository answered ok, `--class` filters, `hie get
 * ID --out F` writes identical bytes (mode 0600) and an unknown id exits 1 with NOT_FOUND.
 */
#include "exchange.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOSP "general-hospital"
#define CLINIC "riverside-clinic"
#define OUT_BYTES (256u * 1024u)
#define DOC_BYTES 5000u

static char out[OUT_BYTES];

static void
setup(itest_node_t *n)
{
    itest_node_init(n, NULL);
    itest_node_start(n);
    itest_register(n, HOSP, "hospital");
    itest_register(n, CLINIC, "clinic");
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(n, HOSP), *c = itest_client(n, CLINIC);
    feed_ok(h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, a);
    feed_ok(c, "f2", HIE__V1__FEED_ACTION__FEED_CREATE, CLINIC, "C-9", &JON, NULL, a);
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
}

/* The value after "key=" in text (up to a space or the line's end) into buf. */
static void
text_value(const char *text, const char *key, char *buf, size_t cap)
{
    char needle[64];
    snprintf(needle, sizeof(needle), "%s=", key);
    const char *at = strstr(text, needle);
    cr_assert_not_null(at, "no %s in: %s", key, text);
    at += strlen(needle);
    size_t len = strcspn(at, " \n");
    cr_assert_lt(len, cap, "%s too long", key);
    memcpy(buf, at, len);
    buf[len] = '\0';
}

/* The JSON lines of text: at most cap objects into js; returns how many. */
static size_t
json_lines(const char *text, json_t **js, size_t cap)
{
    size_t n = 0;
    for (const char *line = text; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        json_error_t err;
        cr_assert_lt(n, cap, "more than %zu lines: %s", cap, text);
        js[n] = json_loadb(line, len, 0, &err);
        cr_assert_not_null(js[n], "not a JSON line (%s): %.*s", err.text, (int)len, line);
        n++;
        line += len + (line[len] == '\n');
    }
    return n;
}

static const char *
jstr_at(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    cr_assert_not_null(s, "no string %s", key);
    return s;
}

static void
subscribe_all(itest_node_t *n, char *sub, size_t cap)
{
    int rc = itest_hie(n, CLINIC, out, sizeof(out), "subscribe --all-my-patients");
    cr_assert_eq(rc, 0, "subscribe: %s", out);
    text_value(out, "subscription_id", sub, cap);
    cr_assert(strncmp(sub, "sub-", 4) == 0, "%s", out);
}

Test(adt_cli, admission_cancel_and_replay_reach_the_subscriber, .timeout = 180)
{
    itest_node_t n;
    char sub[64], euid[64], m1[160], m2[160];
    json_t *js[4];
    setup(&n);
    subscribe_all(&n, sub, sizeof(sub));
    int rc = itest_hie(&n, HOSP, out, sizeof(out), "adt a01 --mrn H-1 --visit V1 --class "
        "inpatient --facility 'General Hospital' --location 4W-12 --time 2026-03-01T08:30:00Z");
    cr_assert_eq(rc, 0, "adt a01: %s", out);
    cr_assert(strstr(out, " notified=1\n") != NULL, "%s", out);
    text_value(out, "euid", euid, sizeof(euid));
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "notifications --count 1 --json");
    cr_assert_eq(rc, 0, "notifications: %s", out);
    cr_assert_eq(json_lines(out, js, 4), 1u);
    cr_assert_str_eq(jstr_at(js[0], "event"), "A01");
    cr_assert_eq(json_integer_value(json_object_get(js[0], "event_number")), 1);
    cr_assert_str_eq(jstr_at(js[0], "subscription_id"), sub);
    cr_assert_str_eq(jstr_at(js[0], "sender_org"), HOSP);
    cr_assert_str_eq(jstr_at(js[0], "euid"), euid);
    json_t *ids = json_object_get(js[0], "patient_ids");
    cr_assert_eq(json_array_size(ids), 1u, "%s", out);
    cr_assert_str_eq(jstr_at(json_array_get(ids, 0), "mrn"), "C-9", "the clinic's own MRN");
    cr_assert_str_eq(jstr_at(js[0], "visit_id"), "V1");
    cr_assert_str_eq(jstr_at(js[0], "patient_class"), "inpatient");
    cr_assert_str_eq(jstr_at(js[0], "facility"), "General Hospital");
    cr_assert_str_eq(jstr_at(js[0], "time"), "2026-03-01T08:30:00Z");
    cr_assert(json_is_false(json_object_get(js[0], "cancel")), "%s", out);
    snprintf(m1, sizeof(m1), "%s", jstr_at(js[0], "message_id"));
    json_decref(js[0]);
    /* the cancel reaches exactly who got the admission; the text line */
    rc = itest_hie(&n, HOSP, out, sizeof(out), "adt A11 --mrn H-1 --visit V1");
    cr_assert_eq(rc, 0, "adt a11: %s", out);
    cr_assert(strstr(out, " notified=1\n") != NULL, "%s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "notifications --count 1");
    cr_assert_eq(rc, 0, "notifications: %s", out);
    char want[256];
    snprintf(want, sizeof(want), " subscription_id=%s event_number=2 event=A11 sender=" HOSP
        " euid=%s mrns=C-9 visit=V1 ", sub, euid);
    cr_assert(strstr(out, want) != NULL, "want %s in: %s", want, out);
    /* redelivery may be yes: the node may have sent it on the first run's closed connection */
    cr_assert(strstr(out, " cancel=yes redelivery=") != NULL, "%s", out);
    text_value(out, "message_id", m2, sizeof(m2));
    cr_assert_str_neq(m1, m2);
    /* both acknowledged: nothing more */
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "notifications");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "", "acknowledged, yet delivered again: %s", out);
    /* a replay queues both again, with their ids and numbers */
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "replay %s --from 1", sub);
    cr_assert_eq(rc, 0, "replay: %s", out);
    cr_assert(strstr(out, " queued=2\n") != NULL, "%s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "--json notifications --count 2");
    cr_assert_eq(rc, 0, "notifications: %s", out);
    cr_assert_eq(json_lines(out, js, 4), 2u);
    cr_assert_eq(json_integer_value(json_object_get(js[0], "event_number")), 1);
    cr_assert_eq(json_integer_value(json_object_get(js[1], "event_number")), 2);
    cr_assert_str_eq(jstr_at(js[0], "message_id"), m1, "the same id again");
    cr_assert_str_eq(jstr_at(js[1], "message_id"), m2);
    cr_assert(json_is_true(json_object_get(js[1], "cancel")));
    json_decref(js[0]);
    json_decref(js[1]);
    cr_assert_gt(itest_db_entries(&n, "sub_log"), 0u, "kept for replays");
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "unsubscribe %s", sub);
    cr_assert_eq(rc, 0, "unsubscribe: %s", out);
    cr_assert_eq(itest_db_entries(&n, "sub_log"), 0u, "the kept notifications go with it");
    rc = itest_hie(&n, HOSP, out, sizeof(out), "adt a03 --mrn H-1 --visit V1");
    cr_assert_eq(rc, 0, "adt a03: %s", out);
    cr_assert(strstr(out, " notified=0\n") != NULL, "unsubscribed, yet notified: %s", out);
    itest_node_cleanup(&n);
}

/* A roster file: count MRNs R-0000.., with a blank line and CRLF endings on the way. */
static void
roster_file(itest_node_t *n, const char *name, size_t count, const char *bad_line, char *path,
    size_t cap)
{
    snprintf(path, cap, "%s/%s", n->root, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; i < count; i++) {
        fprintf(f, i % 100 == 7 ? "R-%04zu\r\n" : "R-%04zu\n", i);
        if (i == 1) {
            fputs(bad_line != NULL ? bad_line : "   \n", f);
        }
    }
    cr_assert_eq(fclose(f), 0);
}

/* Waits up to ms for path to hold needle; returns its text (static). */
static const char *
file_wait(const char *path, const char *needle, int ms)
{
    static char text[16384];
    for (int waited = 0;; waited += 100) {
        FILE *f = fopen(path, "r");
        size_t len = f != NULL ? fread(text, 1, sizeof(text) - 1, f) : 0;
        if (f != NULL) {
            fclose(f);
        }
        text[len] = '\0';
        if (strstr(text, needle) != NULL || waited >= ms) {
            return text;
        }
        usleep(100 * 1000);
    }
}

/* hie subscribe --follow prints the subscription, then each notification as it comes, and
 * acknowledges it: after SIGTERM it exits 0 and a later run has nothing left to show. */
Test(adt_cli, subscribe_follow_prints_notifications_as_they_come, .timeout = 180)
{
    itest_node_t n;
    char path[ITEST_PATH + 32], pidfile[ITEST_PATH + 32];
    setup(&n);
    snprintf(path, sizeof(path), "%s/follow.txt", n.root);
    snprintf(pidfile, sizeof(pidfile), "%s/follow.pid", n.root);
    int rc = itest_hie(&n, CLINIC, out, sizeof(out), "subscribe --all-my-patients --follow "
        "> '%s' 2>&1 & echo $! > '%s'", path, pidfile);
    cr_assert_eq(rc, 0, "%s", out);
    const char *text = file_wait(path, "subscription_id=sub-", 10000);
    cr_assert(strstr(text, "subscription_id=sub-") != NULL, "%s", text);
    rc = itest_hie(&n, HOSP, out, sizeof(out), "adt a01 --mrn H-1 --visit V7 --class inpatient");
    cr_assert_eq(rc, 0, "adt a01: %s", out);
    text = file_wait(path, " event=A01 ", 10000);
    cr_assert(strstr(text, " event_number=1 event=A01 ") != NULL, "%s", text);
    cr_assert(strstr(text, " mrns=C-9 visit=V7 ") != NULL, "%s", text);
    FILE *f = fopen(pidfile, "r");
    long pid = 0;
    cr_assert(f != NULL && fscanf(f, "%ld", &pid) == 1 && pid > 1);
    fclose(f);
    cr_assert_eq(kill((pid_t)pid, SIGTERM), 0);
    for (int i = 0; i < 100 && kill((pid_t)pid, 0) == 0; i++) {
        usleep(100 * 1000);
    }
    cr_assert_neq(kill((pid_t)pid, 0), 0, "it exits on SIGTERM");
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "notifications");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "event=A01") == NULL, "acknowledged as printed: %s", out);
    itest_node_cleanup(&n);
}

/* The ADT events that change the MPI: A08 replaces the patient's demographics (PDQ finds the
 * new name), A40 folds a duplicate MRN into the surviving one (PIX of the prior MRN answers the
 * survivor's EUID), and both notify the subscriber like any event, also one that filters by
 * patient class (they carry no encounter: the filter used to drop them). */
Test(adt_cli, a08_updates_and_a40_merges_the_patient_index, .timeout = 180)
{
    itest_node_t n;
    char euid[64], other[64];
    setup(&n);
    int rc0 = itest_hie(&n, CLINIC, out, sizeof(out), "subscribe --all-my-patients --class "
        "inpatient");
    cr_assert_eq(rc0, 0, "subscribe: %s", out);
    int rc = itest_hie(&n, HOSP, out, sizeof(out), "feed create --mrn H-2 --given Maria "
        "--family Okonkwo --dob 1988-11-23 --postcode 'M1 4BT'");
    cr_assert_eq(rc, 0, "feed H-2: %s", out);
    text_value(out, "euid", other, sizeof(other));
    rc = itest_hie(&n, HOSP, out, sizeof(out), "adt a08 --mrn H-1 --given Johnny --family "
        "Smithson-Baker --dob 1970-03-02 --sex male --postcode 'SW1A 1AA'");
    cr_assert_eq(rc, 0, "adt a08: %s", out);
    cr_assert(strstr(out, " notified=1\n") != NULL, "%s", out);
    text_value(out, "euid", euid, sizeof(euid));
    cr_assert_str_neq(euid, other);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "--purpose treatment pdq --family "
        "Smithson-Baker --dob 1970-03-02");
    cr_assert_eq(rc, 0, "pdq: %s", out);
    cr_assert(strstr(out, euid) != NULL && strstr(out, "Smithson-Baker") != NULL,
        "the new name is found: %s", out);
    rc = itest_hie(&n, HOSP, out, sizeof(out), "adt a40 --mrn H-1 --prior-mrn H-2");
    cr_assert_eq(rc, 0, "adt a40: %s", out);
    rc = itest_hie(&n, HOSP, out, sizeof(out), "--purpose treatment pix --mrn H-2");
    cr_assert_eq(rc, 0, "pix of the prior MRN: %s", out);
    char want[96];
    snprintf(want, sizeof(want), "euid=%s\n", euid);
    cr_assert(strncmp(out, want, strlen(want)) == 0, "the survivor's EUID: %s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "notifications --count 2");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, " event=A08 ") != NULL && strstr(out, " event=A40 ") != NULL,
        "both notified: %s", out);
    itest_node_cleanup(&n);
}

Test(adt_cli, bad_input_is_refused_and_a_big_roster_goes_in_parts, .timeout = 180)
{
    itest_node_t n;
    char sub[64], path[ITEST_PATH + 32];
    setup(&n);
    int rc = itest_hie(&n, HOSP, out, sizeof(out), "adt a99 --mrn H-1 --visit V1");
    cr_assert_eq(rc, 2, "unknown event: %s", out);
    cr_assert(strstr(out, "unknown ADT event") != NULL, "%s", out);
    rc = itest_hie(&n, HOSP, out, sizeof(out), "adt a01 --mrn H-1");
    cr_assert_eq(rc, 2, "no visit: %s", out);
    rc = itest_hie(&n, HOSP, out, sizeof(out), "adt a08 --mrn H-1");
    cr_assert_eq(rc, 2, "a08 without demographics: %s", out);
    rc = itest_hie(&n, HOSP, out, sizeof(out), "adt a02 --mrn H-1 --visit V1 --class ward");
    cr_assert_eq(rc, 2, "unknown class: %s", out);
    rc = itest_hie(&n, HOSP, out, sizeof(out), "adt a02 --mrn H-404 --visit V1");
    cr_assert_eq(rc, 1, "the node's answer: %s", out);
    cr_assert(strstr(out, "NOT_FOUND") != NULL && strstr(out, "patient.mrn") != NULL, "%s",
        out);
    cr_assert(strstr(out, "H-404") == NULL, "the MRN echoed in an error line: %s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "subscribe --event a01 --class emergency");
    cr_assert_eq(rc, 0, "subscribe: %s", out);
    text_value(out, "subscription_id", sub, sizeof(sub));
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "replay %s", sub);
    cr_assert_eq(rc, 2, "replay without --from: %s", out);
    int before = itest_log_count(&n, "type=roster_update");
    roster_file(&n, "roster.txt", 1500, NULL, path, sizeof(path));
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "roster %s --add-file '%s'", sub, path);
    cr_assert_eq(rc, 0, "roster: %s", out);
    cr_assert(strstr(out, " roster_size=1500 parts=2\n") != NULL, "%s", out);
    cr_assert_eq(itest_log_count(&n, "type=roster_update") - before, 2, "two requests");
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "roster %s --remove R-0001 --remove R-1499",
        sub);
    cr_assert_eq(rc, 0, "roster: %s", out);
    cr_assert(strstr(out, " roster_size=1498 parts=1\n") != NULL, "%s", out);
    roster_file(&n, "bad.txt", 5, "has space\n", path, sizeof(path));
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "roster %s --add-file '%s'", sub, path);
    cr_assert_eq(rc, 2, "a bad line: %s", out);
    cr_assert(strstr(out, "line 3 ") != NULL, "the line is named: %s", out);
    cr_assert(strstr(out, "has space") == NULL, "the value is not echoed: %s", out);
    itest_node_cleanup(&n);
}

/* A document with every byte value at n->root/name. */
static void
write_doc(itest_node_t *n, const char *name, unsigned char *doc, size_t len, char *path,
    size_t cap)
{
    snprintf(path, cap, "%s/%s", n->root, name);
    for (size_t i = 0; i < len; i++) {
        doc[i] = (unsigned char)((i * 13u + 5u) & 0xffu);
    }
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "open %s", path);
    cr_assert_eq(fwrite(doc, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void
expect_same_file(const char *path, const unsigned char *doc, size_t len)
{
    static unsigned char got[2 * DOC_BYTES];
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "no %s", path);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    size_t got_len = fread(got, 1, sizeof(got), f);
    fclose(f);
    cr_assert_eq(got_len, len, "%zu bytes, want %zu", got_len, len);
    cr_assert_eq(memcmp(got, doc, len), 0, "the bytes differ");
}

Test(query_cli, repository_documents_listed_filtered_and_retrieved, .timeout = 180)
{
    itest_node_t n;
    static unsigned char doc1[DOC_BYTES], doc2[DOC_BYTES];
    char p1[ITEST_PATH + 32], p2[ITEST_PATH + 32], got[ITEST_PATH + 32];
    json_t *js[2];
    setup(&n);
    write_doc(&n, "summary.xml", doc1, DOC_BYTES, p1, sizeof(p1));
    write_doc(&n, "labs.json", doc2, 1234, p2, sizeof(p2));
    int rc = itest_hie(&n, HOSP, out, sizeof(out), "--id doc-1 push --repository --mrn H-1 "
        "--file '%s' --class discharge-summary --title 'Discharge summary' --label N "
        "--date 2026-01-05", p1);
    cr_assert_eq(rc, 0, "push: %s", out);
    cr_assert_str_eq(out, "message_id=" HOSP ":doc-1\n");
    rc = itest_hie(&n, HOSP, out, sizeof(out), "--id doc-2 push --repository --mrn H-1 "
        "--file '%s' --class lab-report --title 'Lab panel' --type-code 24323-8 "
        "--date 2026-02-01", p2);
    cr_assert_eq(rc, 0, "push: %s", out);
    rc = itest_hie(&n, HOSP, out, sizeof(out), "push --to %s --repository --mrn H-1 --file "
        "'%s'", CLINIC, p2);
    cr_assert_eq(rc, 2, "--to and --repository: %s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "query --mrn C-9");
    cr_assert_eq(rc, 0, "query: %s", out);
    cr_assert(strstr(out, " documents=2 sources=1\n") != NULL, "%s", out);
    const char *l1 = strstr(out, "\n" HOSP ":doc-1 "), *l2 = strstr(out, "\n" HOSP ":doc-2 ");
    cr_assert(l1 != NULL && l2 != NULL, "both listed: %s", out);
    cr_assert(l2 < l1, "newest first: %s", out);
    cr_assert(strstr(out, "\nsource=repository status=ok\n") != NULL, "%s", out);
    cr_assert(strstr(l2, "lab-report") != NULL && strstr(l2, "24323-8") != NULL, "%s", out);
    cr_assert(strstr(out, "\nhandling document_id=" HOSP ":doc-1 confidentiality=N\n") != NULL,
        "consent's marks with each listed document: %s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "query --mrn C-9 --class lab-report --json");
    cr_assert_eq(rc, 0, "query: %s", out);
    cr_assert_eq(json_lines(out, js, 2), 1u);
    json_t *docs = json_object_get(js[0], "documents");
    cr_assert_eq(json_array_size(docs), 1u, "by class: %s", out);
    cr_assert_str_eq(jstr_at(json_array_get(docs, 0), "document_id"), HOSP ":doc-2");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(docs, 0), "size")), 1234);
    cr_assert_str_eq(jstr_at(json_object_get(json_array_get(docs, 0), "handling"),
        "confidentiality"), "N");
    json_t *src = json_array_get(json_object_get(js[0], "sources"), 0);
    cr_assert_str_eq(jstr_at(src, "source"), "repository");
    cr_assert_str_eq(jstr_at(src, "status"), "ok");
    json_decref(js[0]);
    snprintf(got, sizeof(got), "%s/got.xml", n.root);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "get " HOSP ":doc-1 --out '%s'", got);
    cr_assert_eq(rc, 0, "get: %s", out);
    cr_assert(strstr(out, " bytes=5000 confidentiality=N file=") != NULL, "%s", out);
    expect_same_file(got, doc1, DOC_BYTES);
    /* a path that is a link (or a device) is refused, not renamed over */
    char linked[ITEST_PATH + 32];
    snprintf(linked, sizeof(linked), "%s/linked.xml", n.root);
    cr_assert_eq(symlink(got, linked), 0);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "get " HOSP ":doc-1 --out '%s'", linked);
    cr_assert_eq(rc, 2, "a link: %s", out);
    cr_assert(strstr(out, "not a regular file") != NULL, "%s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "get nope");
    cr_assert_eq(rc, 1, "unknown document: %s", out);
    cr_assert(strstr(out, "NOT_FOUND") != NULL, "%s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "query");
    cr_assert_eq(rc, 2, "no patient: %s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "responder on");
    cr_assert_eq(rc, 0, "responder: %s", out);
    cr_assert_str_eq(out, "responder=on\n");
    itest_node_cleanup(&n);
}
