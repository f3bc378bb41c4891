/*
 * test_cli_push.c - `hie push` and `hie receive` against a real hie-node over mutual TLS
 * (issue 5): a hospital pushes a file about its patient to a clinic; the clinic's
 * `hie receive --count 1 --out-dir D` writes the identical bytes (mode 0600), prints the
 * delivery and acknowledges it, so the next `hie receive` finds nothing and stops after its
 * 2 s idle time; `hie receive --no-ack` shows a message that the next `hie receive` shows again
 * flagged as a redelivery; `hie receive --follow` prints what arrives, acknowledges it and
 * exits 0 on SIGINT. Bad input (a file over 1 MiB, an unknown recipient) is refused, and an
 * offline command (audit verify) needs no --ca.
 */
#include "exchange.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
    hie_client_t *h = itest_client(n, HOSP);
    feed_ok(h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, a);
    hie_client_destroy(&h);
    hie_arena_destroy(&a);
}

/* A document with every byte value (NULs and invalid UTF-8 included) at n->root/name. */
static void
write_doc(itest_node_t *n, const char *name, unsigned char *doc, size_t len, char *path,
    size_t cap)
{
    snprintf(path, cap, "%s/%s", n->root, name);
    for (size_t i = 0; i < len; i++) {
        doc[i] = (unsigned char)((i * 7u + 3u) & 0xffu);
    }
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "open %s", path);
    cr_assert_eq(fwrite(doc, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void
push_file(itest_node_t *n, const char *id, const char *path)
{
    int rc = itest_hie(n, HOSP, out, sizeof(out), "--id %s push --to %s --mrn H-1 --file '%s' "
        "--title 'Discharge summary' --class discharge-summary --label N --date 2026-11-02",
        id, CLINIC, path);
    cr_assert_eq(rc, 0, "push: %s", out);
    char want[128];
    snprintf(want, sizeof(want), "message_id=%s:%s\n", HOSP, id);
    cr_assert_str_eq(out, want);
}

/* The file at path equals doc, and has mode 0600. */
static void
expect_same_file(const char *path, const unsigned char *doc, size_t len)
{
    static unsigned char got[2 * DOC_BYTES];
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "no %s", path);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    size_t n = fread(got, 1, sizeof(got), f);
    fclose(f);
    cr_assert_eq(n, len, "%zu bytes, want %zu", n, len);
    cr_assert_eq(memcmp(got, doc, len), 0, "the bytes differ");
}

Test(push_cli, push_receive_ack_and_idle_stop, .timeout = 180)
{
    itest_node_t n;
    static unsigned char doc[DOC_BYTES];
    char path[ITEST_PATH + 32], dir[ITEST_PATH + 32], file[ITEST_PATH + 128];
    setup(&n);
    write_doc(&n, "summary.xml", doc, sizeof(doc), path, sizeof(path));
    push_file(&n, "push-1", path);
    snprintf(dir, sizeof(dir), "%s/inbox", n.root);
    int rc = itest_hie(&n, CLINIC, out, sizeof(out), "receive --count 1 --out-dir '%s'", dir);
    cr_assert_eq(rc, 0, "receive: %s", out);
    const char *head = "seq=1 message_id=" HOSP ":push-1 sender=" HOSP " patient_org=" HOSP
        " mrn=H-1 euid=";
    cr_assert(strncmp(out, head, strlen(head)) == 0, "%s", out);
    cr_assert(strstr(out, " title=\"Discharge summary\" class=discharge-summary bytes=5000 "
        "redelivery=no confidentiality=N file=") != NULL, "%s", out);
    snprintf(file, sizeof(file), "%s/1-" HOSP "_push-1.xml", dir);
    cr_assert(strstr(out, file) != NULL, "%s", out);
    expect_same_file(file, doc, sizeof(doc));
    /* acknowledged: the next receive finds nothing and stops after its idle time */
    time_t t0 = time(NULL);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "receive");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "", "delivered twice: %s", out);
    cr_assert(time(NULL) - t0 < 15, "the idle stop took %ld s", (long)(time(NULL) - t0));
    itest_node_cleanup(&n);
}

Test(push_cli, unacknowledged_message_comes_again_flagged, .timeout = 180)
{
    itest_node_t n;
    static unsigned char doc[DOC_BYTES];
    char path[ITEST_PATH + 32];
    setup(&n);
    write_doc(&n, "note.bin", doc, 100, path, sizeof(path));
    push_file(&n, "push-2", path);
    int rc = itest_hie(&n, CLINIC, out, sizeof(out), "receive --no-ack");
    cr_assert_eq(rc, 0, "receive --no-ack: %s", out);
    cr_assert(strstr(out, "message_id=" HOSP ":push-2 ") != NULL, "%s", out);
    cr_assert(strstr(out, "redelivery=no") != NULL, "%s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "--json receive --discard-content");
    cr_assert_eq(rc, 0, "receive: %s", out);
    json_error_t err;
    json_t *j = json_loads(out, 0, &err);
    cr_assert_not_null(j, "one JSON line (%s): %s", err.text, out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "message_id")), HOSP ":push-2");
    cr_assert(json_is_true(json_object_get(j, "redelivery")), "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(j, "bytes")), 100);
    cr_assert_str_eq(json_string_value(json_object_get(j, "content_type")),
        "application/octet-stream");
    cr_assert_str_eq(json_string_value(json_object_get(j, "date")), "2026-11-02T00:00:00Z");
    json_decref(j);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "receive");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "", "acknowledged, yet delivered again: %s", out);
    /* without --out-dir (or --discard-content) a document is shown, not acknowledged: the
     * node would delete the only copy of content the line does not carry */
    push_file(&n, "push-2b", path);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "receive");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "message_id=" HOSP ":push-2b ") != NULL, "%s", out);
    cr_assert(strstr(out, "1 document shown but not acknowledged") != NULL, "%s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "receive --discard-content");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "message_id=" HOSP ":push-2b ") != NULL, "it came again: %s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "receive");
    cr_assert_str_eq(out, "", "acknowledged by --discard-content: %s", out);
    itest_node_cleanup(&n);
}

Test(push_cli, follow_prints_acknowledges_and_exits_on_sigint, .timeout = 180)
{
    itest_node_t n;
    static unsigned char doc[DOC_BYTES];
    char path[ITEST_PATH + 32], log[ITEST_PATH + 32];
    setup(&n);
    write_doc(&n, "a.json", doc, 10, path, sizeof(path));
    push_file(&n, "push-3", path);
    snprintf(log, sizeof(log), "%s/follow.out", n.root);
    /* started in the background; a second push arrives while it waits; then interrupted */
    char hie[4 * ITEST_PATH];
    snprintf(hie, sizeof(hie), "'%s' --addr 127.0.0.1:%u --ca '%s/ca/ca.crt'", HIE_CLI_BIN,
        n.port, n.pki);
    int rc = itest_sh(out, sizeof(out), "%s --cert '%s/certs/%s.crt' --key '%s/certs/%s.key' "
        "receive --follow --discard-content > '%s' 2>&1 & pid=$!; sleep 2; "
        "%s --cert '%s/certs/%s.crt' --key '%s/certs/%s.key' --id push-4 push --to %s "
        "--mrn H-1 --file '%s' >/dev/null; sleep 2; kill -INT $pid; wait $pid; echo rc=$?",
        hie, n.pki, CLINIC, n.pki, CLINIC, log, hie, n.pki, HOSP, n.pki, HOSP, CLINIC, path);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "rc=0") != NULL, "exit status after SIGINT: %s", out);
    rc = itest_sh(out, sizeof(out), "cat '%s'", log);
    cr_assert(strstr(out, "seq=1 message_id=" HOSP ":push-3 ") != NULL, "%s", out);
    cr_assert(strstr(out, "seq=2 message_id=" HOSP ":push-4 ") != NULL, "%s", out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "receive");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "", "acknowledged before the exit, yet delivered again: %s", out);
    itest_node_cleanup(&n);
}

/* --follow across a node killed while acknowledgements were pending (deliveries printed, the
 * batch not sent yet): it reconnects once the node is back, sends them, and goes on. It
 * asserted (pending acknowledgements at a new session) and aborted: the very outage it is
 * there to ride out. */
Test(push_cli, follow_rides_out_a_node_killed_with_acknowledgements_pending, .timeout = 180)
{
    itest_node_t n;
    static unsigned char doc[DOC_BYTES];
    char path[ITEST_PATH + 32], log[ITEST_PATH + 32], pidf[ITEST_PATH + 32];
    setup(&n);
    write_doc(&n, "a.json", doc, 10, path, sizeof(path));
    for (int i = 0; i < 40; i++) {
        char id[32];
        snprintf(id, sizeof(id), "k-%d", i);
        push_file(&n, id, path);
    }
    snprintf(log, sizeof(log), "%s/follow.out", n.root);
    snprintf(pidf, sizeof(pidf), "%s/follow.pid", n.root);
    /* a window of 1: one delivery at a time, each acknowledged in a batch only 200 ms later */
    int rc = itest_sh(out, sizeof(out), "'%s' --addr 127.0.0.1:%u --ca '%s/ca/ca.crt' --cert "
        "'%s/certs/%s.crt' --key '%s/certs/%s.key' receive --follow --discard-content --window 1 "
        "> '%s' 2>&1 & echo $! > '%s'", HIE_CLI_BIN, n.port, n.pki, n.pki, CLINIC, n.pki,
        CLINIC, log, pidf);
    cr_assert_eq(rc, 0, "%s", out);
    for (int i = 0; i < 100 && itest_sh(out, sizeof(out), "grep -q k-0 '%s'", log) != 0; i++) {
        usleep(20000);
    }
    cr_assert_eq(itest_node_stop(&n, SIGKILL), 128 + SIGKILL);
    usleep(1200000); /* a reconnect or two fails meanwhile */
    itest_node_start(&n);
    for (int i = 0; i < 300 && itest_sh(out, sizeof(out), "grep -q 'k-39 ' '%s'", log) != 0;
         i++) {
        usleep(100000);
    }
    rc = itest_sh(out, sizeof(out), "pid=$(cat '%s'); kill -INT $pid; for i in $(seq 100); do "
        "kill -0 $pid 2>/dev/null || break; sleep 0.1; done; cat '%s'", pidf, log);
    cr_assert(strstr(out, "assertion") == NULL, "it aborted: %s", out);
    cr_assert(strstr(out, "message_id=" HOSP ":k-39 ") != NULL, "not all came: %.2000s", out);
    cr_assert(strstr(out, "reconnecting") != NULL, "the kill was not seen: %.2000s", out);
    itest_node_cleanup(&n);
}

/* count pushes through the client library (quicker than as many processes). */
static void
push_many(itest_node_t *n, size_t count)
{
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(n, HOSP);
    for (size_t i = 0; i < count; i++) {
        hie_envelope_t req;
        Hie__V1__PushRequest p = HIE__V1__PUSH_REQUEST__INIT;
        Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
        Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
        char id[32];
        snprintf(id, sizeof(id), "many-%zu", i);
        req_init(&req, id);
        pid.org_id = MUT(HOSP);
        pid.mrn = MUT("H-1");
        d.patient = &pid;
        d.content_type = MUT("text/plain");
        d.content = (ProtobufCBinaryData){strlen(id), (uint8_t *)id};
        p.recipient_org = MUT(CLINIC);
        p.document = &d;
        req.body_case = HIE__V1__ENVELOPE__BODY_PUSH;
        req.push = &p;
        hie_envelope_t *r = call(h, &req, a);
        cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "push %s", id);
    }
    hie_client_destroy(&h);
    hie_arena_destroy(&a);
}

Test(push_cli, many_deliveries_batched_acknowledgements, .timeout = 180)
{
    itest_node_t n;
    char needle[64];
    setup(&n);
    push_many(&n, 150);
    int rc = itest_hie(&n, CLINIC, out, sizeof(out), "receive --window 16 --discard-content");
    cr_assert_eq(rc, 0, "%s", out);
    for (size_t i = 0; i < 150; i++) { /* each once, in queue order */
        snprintf(needle, sizeof(needle), "message_id=" HOSP ":many-%zu ", i);
        const char *at = strstr(out, needle);
        cr_assert_not_null(at, "missing %s", needle);
        cr_assert_null(strstr(at + 1, needle), "twice: %s", needle);
    }
    cr_assert_null(strstr(out, "redelivery=yes"), "%s", out);
    int acks = itest_log_count(&n, "type=delivery_ack");
    cr_assert(acks >= 1 && acks <= 30, "%d acknowledgements for 150 deliveries", acks);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "receive --count 5");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "", "all were acknowledged: %.300s", out);
    itest_node_cleanup(&n);
}

Test(push_cli, bad_input_is_refused, .timeout = 120)
{
    itest_node_t n;
    char path[ITEST_PATH + 32];
    setup(&n);
    snprintf(path, sizeof(path), "%s/big.bin", n.root);
    int rc = itest_sh(out, sizeof(out), "head -c 1048577 /dev/zero > '%s'", path);
    cr_assert_eq(rc, 0, "%s", out);
    rc = itest_hie(&n, HOSP, out, sizeof(out), "push --to %s --mrn H-1 --file '%s'", CLINIC,
        path);
    cr_assert_eq(rc, 2, "over 1 MiB: %s", out);
    cr_assert(strstr(out, "larger than the push limit") != NULL, "%s", out);
    snprintf(path, sizeof(path), "%s/small.txt", n.root);
    rc = itest_sh(out, sizeof(out), "printf 'note' > '%s'", path);
    rc = itest_hie(&n, HOSP, out, sizeof(out), "push --to nobody-here --mrn H-1 --file '%s'",
        path);
    cr_assert_eq(rc, 1, "unknown recipient: %s", out);
    cr_assert(strstr(out, "NOT_FOUND") != NULL && strstr(out, "recipient_org") != NULL, "%s",
        out);
    rc = itest_hie(&n, HOSP, out, sizeof(out), "push --to %s --mrn H-1 --file '%s' --label XYZ",
        CLINIC, path);
    cr_assert_eq(rc, 2, "unknown label: %s", out);
    rc = itest_hie(&n, HOSP, out, sizeof(out), "push --to %s --file '%s'", CLINIC, path);
    cr_assert_eq(rc, 2, "no --mrn: %s", out);
    /* the broker's notification type: a member's push of it read as another hospital's ADT
     * event at the receiver's `hie receive`, and was acknowledged without being kept */
    rc = itest_hie(&n, HOSP, out, sizeof(out), "push --to %s --mrn H-1 --file '%s' "
        "--content-type application/vnd.hiebroker.notification+protobuf", CLINIC, path);
    cr_assert_eq(rc, 1, "the notification type: %s", out);
    cr_assert(strstr(out, "BAD_REQUEST") != NULL && strstr(out, "content_type") != NULL, "%s",
        out);
    rc = itest_hie(&n, CLINIC, out, sizeof(out), "receive");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "", "nothing was queued: %s", out);
    /* a member key others can read is refused, as the node refuses its own */
    char key[ITEST_PATH + 32];
    snprintf(key, sizeof(key), "%s/open.key", n.root);
    rc = itest_sh(out, sizeof(out), "cp '%s/certs/%s.key' '%s' && chmod 644 '%s' && '%s' --addr "
        "127.0.0.1:%u --ca '%s/ca/ca.crt' --cert '%s/certs/%s.crt' --key '%s' ping", n.pki,
        CLINIC, key, key, HIE_CLI_BIN, n.port, n.pki, n.pki, CLINIC, key);
    cr_assert_neq(rc, 0, "a key mode 644 was used: %s", out);
    cr_assert(strstr(out, "chmod 600") != NULL, "%s", out);
    /* offline: no --ca, no certificate; the report file is what fails */
    rc = itest_sh(out, sizeof(out), "env -u HIE_CA '%s' audit verify '%s/none.json' --vkey x",
        HIE_CLI_BIN, n.root);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "no ca file") == NULL, "audit verify asked for a CA: %s", out);
    /* options before the word: still offline (--vkey's value was taken for the action) */
    rc = itest_sh(out, sizeof(out), "env -u HIE_CA '%s' audit --vkey x verify '%s/none.json'",
        HIE_CLI_BIN, n.root);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "no ca file") == NULL, "audit verify asked for a CA: %s", out);
    itest_node_cleanup(&n);
}
