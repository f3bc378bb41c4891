/*
 * test_push.c - push and durable delivery against real hie-node processes over mutual TLS
 * (issue 5): a pushed document reaches the recipient on its receiving connection and leaves
 * the queue when acknowledged; the same push id twice is delivered once; unacknowledged
 * messages come again (same message id, flagged redelivery) after a reconnect; a push
 * acknowledged right before kill -9 is delivered after the restart; a push the patient's
 * consent denies is refused, queues nothing and is audited; bad input names its field.
 */
#include "exchange.h"

#include <criterion/criterion.h>
#include <lmdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HOSP "general-hospital"
#define CLINIC "riverside-clinic"

static void
setup_with(itest_node_t *n, const itest_opts_t *o)
{
    itest_node_init(n, o);
    itest_node_start(n);
    itest_register(n, HOSP, "hospital");
    itest_register(n, CLINIC, "clinic");
}

static void
setup(itest_node_t *n)
{
    itest_node_init(n, NULL);
    itest_node_start(n);
    itest_register(n, HOSP, "hospital");
    itest_register(n, CLINIC, "clinic");
}

/* A push of content about the hospital's patient mrn to `to`, for purpose. */
static hie_envelope_t *
push_for(hie_client_t *c, const char *id, const char *to, const char *mrn, const char *content,
    size_t len, const char *label, Hie__V1__PurposeOfUse purpose, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__PushRequest p = HIE__V1__PUSH_REQUEST__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    char *labels[1] = {MUT(label)};
    req_init(&req, id);
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT(mrn);
    d.patient = &pid;
    d.content_type = MUT("text/plain");
    d.content = (ProtobufCBinaryData){len, (uint8_t *)(uintptr_t)content};
    d.title = MUT("Discharge summary");
    d.class_code = MUT("discharge-summary");
    d.n_security_labels = label != NULL;
    d.security_labels = labels;
    p.recipient_org = MUT(to);
    p.document = &d;
    req.body_case = HIE__V1__ENVELOPE__BODY_PUSH;
    req.push = &p;
    req.purpose = purpose;
    return call(c, &req, a);
}

static hie_envelope_t *
push(hie_client_t *c, const char *id, const char *to, const char *mrn, const char *content,
    size_t len, const char *label, hie_arena_t *a)
{
    return push_for(c, id, to, mrn, content, len, label,
        HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT, a);
}

static const char *
push_ok(hie_client_t *c, const char *id, const char *content, hie_arena_t *a)
{
    hie_envelope_t *r = push(c, id, CLINIC, "H-1", content, strlen(content), NULL, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "push %s: %s %s", id,
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->field : "");
    return r->push_reply->message_id;
}

static void
feed_patient(hie_client_t *h, hie_arena_t *a)
{
    feed_ok(h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, a);
}

/* The start most tests here share: a node (options o, NULL for the defaults) with the hospital
 * and the clinic connected and the hospital's patient fed. */
static void
fx_start(itest_node_t *n, const itest_opts_t *o, hie_arena_t **a, hie_client_t **h,
    hie_client_t **c)
{
    setup_with(n, o);
    *a = arena_new();
    *h = itest_client(n, HOSP);
    *c = itest_client(n, CLINIC);
    feed_patient(*h, *a);
}

/* And its end (the clients as they are then: a test may have replaced one). */
static void
fx_stop(itest_node_t *n, hie_arena_t **a, hie_client_t **h, hie_client_t **c)
{
    hie_client_destroy(h);
    hie_client_destroy(c);
    hie_arena_destroy(a);
    itest_node_cleanup(n);
}

Test(push, delivered_acknowledged_and_idempotent, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, NULL, &a, &h, &c);
    const char *mid = push_ok(h, "p1", "discharge: stable, follow up in 7 days", a);
    cr_assert_str_eq(mid, HOSP ":p1");
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 1u, "queued before the sender's acknowledgement");
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d, "delivered");
    cr_assert_str_eq(d->message_id, HOSP ":p1");
    cr_assert_str_eq(d->sender_org, HOSP);
    cr_assert(!d->redelivery);
    cr_assert_eq(d->document->content.len, strlen("discharge: stable, follow up in 7 days"));
    cr_assert_eq(memcmp(d->document->content.data, "discharge: stable", 17), 0);
    cr_assert_str_eq(d->document->author_org, HOSP);
    cr_assert(strlen(d->euid) > 1);
    cr_assert_not_null(d->handling, "consent's marks travel with every delivery");
    cr_assert_str_eq(d->handling->confidentiality, "N");
    cr_assert_eq(d->handling->n_refrain, 0u);
    cr_assert_str_eq(d->handling->notice, "");
    uint64_t seq = d->seq;
    cr_assert_eq(ack(c, "a1", &seq, 1, &in, a), 1u);
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 0u, "acknowledged: out of the queue");
    cr_assert_eq(ack(c, "a2", &seq, 1, &in, a), 0u, "a second ack changes nothing");
    /* the same push id again: the original answer, nothing queued or delivered */
    cr_assert_str_eq(push_ok(h, "p1", "discharge: stable, follow up in 7 days", a), mid);
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 0u);
    cr_assert_null(next_delivery(c, &in, 1000, a), "delivered once");
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", 1u, 2000), 1u,
        "one audit record for the disclosure");
    fx_stop(&n, &a, &h, &c);
}

/* Part 2 (SUD) data pushed to the recipient the patient's consent names: delivered with the
 * 42 CFR 2.32 notice, the no-redisclosure refrain and a restricted confidentiality. */
Test(push, part2_delivery_carries_the_notice_and_refrain, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, NULL, &a, &h, &c);
    struct dir x; /* the patient permits the clinic, by name */
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    x.actor.org_id = MUT(CLINIC);
    x.root.n_actors = 1;
    x.root.actors = x.actors;
    consent_submit_ok(h, "c1", &x, a);
    const char *note = "counselling session 4";
    hie_envelope_t *r = push(h, "p1", CLINIC, "H-1", note, strlen(note), "SUD", a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "%s",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d);
    cr_assert_not_null(d->handling);
    cr_assert_eq(d->handling->n_refrain, 1u);
    cr_assert_str_eq(d->handling->refrain[0], "NORDSCLCD");
    cr_assert_str_eq(d->handling->confidentiality, "R");
    cr_assert(strstr(d->handling->notice, "42 CFR part 2") != NULL, "%s",
        d->handling->notice);
    fx_stop(&n, &a, &h, &c);
}

Test(push, unacknowledged_messages_come_again_after_reconnect, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, NULL, &a, &h, &c);
    static const char *const ids[] = {"m1", "m2", "m3"};
    for (size_t i = 0; i < 3; i++) {
        push_ok(h, ids[i], "lab result", a);
    }
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 3u);
    for (size_t i = 0; i < 3; i++) { /* in queue order, not acknowledged */
        Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(d);
        cr_assert_eq(d->seq, i + 1);
        cr_assert(!d->redelivery);
    }
    hie_client_close(c); /* gone without acknowledging */
    cr_assert_eq(receive_start(c, "r2", &in, a), 3u);
    uint64_t seqs[3];
    for (size_t i = 0; i < 3; i++) {
        Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(d, "redelivered %zu", i);
        char want[64];
        snprintf(want, sizeof(want), HOSP ":%s", ids[i]);
        cr_assert_str_eq(d->message_id, want, "same message id");
        cr_assert(d->redelivery, "flagged");
        seqs[i] = d->seq;
    }
    cr_assert_eq(ack(c, "a1", seqs, 3, &in, a), 3u);
    hie_client_close(c);
    cr_assert_eq(receive_start(c, "r3", &in, a), 0u, "nothing left");
    fx_stop(&n, &a, &h, &c);
}

Test(push, acknowledged_push_survives_kill_9, .timeout = 120)
{
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP);
    feed_patient(h, a);
    push_ok(h, "k1", "admission note", a);
    cr_assert_eq(itest_node_stop(&n, SIGKILL), 128 + SIGKILL); /* right after the ack */
    hie_client_destroy(&h);
    itest_node_start(&n);
    hie_client_t *c = itest_client(&n, CLINIC);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d, "delivered after the restart");
    cr_assert_str_eq(d->message_id, HOSP ":k1");
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* A push sent again after the node restarted (its reply was lost) gets the answer it had, not
 * a new decision: a directive filed in between refused the repeat (CONSENT_DENIED, a denial
 * audited) while the original message stayed queued and was delivered. */
Test(push, a_repeat_after_a_restart_gets_its_first_answer, .timeout = 120)
{
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP);
    feed_patient(h, a);
    push_ok(h, "p1", "admission note", a);
    cr_assert_eq(itest_node_stop(&n, SIGTERM), 0);
    hie_client_destroy(&h);
    itest_node_start(&n); /* no reply cache now */
    h = itest_client(&n, HOSP);
    struct dir x;
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    consent_submit_ok(h, "c1", &x, a);
    size_t audits = itest_db_entries_settled(&n, "audit_rec");
    cr_assert_str_eq(push_ok(h, "p1", "admission note", a), HOSP ":p1", "the first answer");
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 1u, "queued once");
    cr_assert_eq(itest_db_entries_settled(&n, "audit_rec"), audits, "nothing decided again");
    hie_client_destroy(&h);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* A message delivered and not acknowledged before the node was killed comes again flagged as
 * a redelivery: the node does not keep what it sent, so everything it accepted before it
 * started is flagged (it came with redelivery=false and attempt 1; found by review). */
Test(push, a_delivery_after_a_restart_is_flagged_as_a_redelivery, .timeout = 120)
{
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    feed_patient(h, a);
    push_ok(h, "k1", "admission note", a);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d);
    cr_assert(!d->redelivery, "the first delivery");
    cr_assert_eq(itest_node_stop(&n, SIGKILL), 128 + SIGKILL); /* not acknowledged */
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    itest_node_start(&n);
    c = itest_client(&n, CLINIC);
    cr_assert_eq(receive_start(c, "r2", &in, a), 1u);
    d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d, "delivered after the restart");
    cr_assert_str_eq(d->message_id, HOSP ":k1");
    cr_assert(d->redelivery, "a message delivered before the restart is a redelivery");
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

Test(push, consent_denied_push_queues_nothing_and_is_audited, .timeout = 120)
{
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP);
    feed_patient(h, a);
    struct dir x; /* the hospital files its patient's directive: everyone but the clinic */
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    consent_submit_ok(h, "c1", &x, a);
    hie_envelope_t *r = push(h, "p1", CLINIC, "H-1", "note", 4, NULL, a);
    expect_error(r, HIE__V1__ERROR_CODE__ERROR_CONSENT_DENIED, NULL);
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 0u, "nothing queued");
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", 1u, 2000), 1u, "the refusal is audited");
    hie_client_destroy(&h);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

Test(push, bad_input_names_the_field_and_queues_nothing, .timeout = 120)
{
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP);
    feed_patient(h, a);
    const Hie__V1__ErrorCode bad = HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    size_t big = HIE_PUSH_CONTENT_BYTES_MAX + 1;
    char *huge = calloc(1, big);
    cr_assert_not_null(huge);
    expect_error(push(h, "b1", CLINIC, "H-1", huge, big, NULL, a), bad, "document.content");
    free(huge);
    expect_error(push(h, "b2", "nobody-here", "H-1", "x", 1, NULL, a),
        HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "recipient_org");
    expect_error(push(h, "b3", CLINIC, "H-1", "x", 1, "XYZ", a), bad,
        "document.security_labels");
    expect_error(push(h, "b4", CLINIC, "H-404", "x", 1, NULL, a),
        HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "document.patient.mrn");
    expect_error(push(h, "b5", CLINIC, "H 1", "x", 1, NULL, a), bad, "document.patient.mrn");
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 0u, "nothing queued");
    hie_client_destroy(&h);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* A recipient that goes offline with a message unacknowledged keeps it: nothing is sent, or
 * counted as an attempt, until it asks again. Before, the delivery thread never heard of the
 * close, kept "resending" to the gone connection, and dead-lettered the message after
 * max_attempts (here 3 x 300 ms doubling: 2.1 s) while the clinic was offline. The same id
 * for the second Receive (a client retrying it) must move the deliveries too: a Receive was
 * answered from the reply cache and never reached the delivery thread. */
Test(push, an_offline_recipient_keeps_its_messages_until_it_reconnects, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.ack_timeout_ms = 300, .max_attempts = 3};
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &o, &a, &h, &c);
    push_ok(h, "p1", "result", a);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d);
    cr_assert_eq(d->attempt, 1u);
    hie_client_destroy(&c); /* offline, unacknowledged */
    usleep(3500 * 1000);
    cr_assert_eq(itest_db_entries(&n, "q_dead"), 0u, "dead-lettered while offline");
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 1u);
    c = itest_client(&n, CLINIC);
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u, "the same Receive id, again");
    d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d, "sent again on the new connection");
    cr_assert_str_eq(d->message_id, HOSP ":p1");
    cr_assert(d->redelivery);
    cr_assert_eq(d->attempt, 2u, "no attempts counted while offline");
    cr_assert_eq(ack(c, "a1", &d->seq, 1, &in, a), 1u);
    fx_stop(&n, &a, &h, &c);
}

/* A delivery names the patient's EUID as consent decided it at the send, not the one stored
 * at the push: after the hospital unlinks H-1, the old EUID is the clinic's own C-9's, and a
 * recipient filing by EUID put the document under the wrong patient. */
Test(push, a_delivery_names_the_patients_euid_at_the_send, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, NULL, &a, &h, &c);
    Hie__V1__MpiFeedReply *j = feed_ok(c, "f2", HIE__V1__FEED_ACTION__FEED_CREATE, CLINIC,
        "C-9", &JON, NULL, a);
    char linked[64];
    snprintf(linked, sizeof(linked), "%s", j->euid);
    push_ok(h, "p1", "result", a);
    Hie__V1__MpiFeedReply *u = feed_ok(h, "u1", HIE__V1__FEED_ACTION__FEED_UNLINK, HOSP, "H-1",
        NULL, NULL, a);
    cr_assert_str_neq(u->euid, linked, "H-1 has an EUID of its own now");
    char own[64];
    snprintf(own, sizeof(own), "%s", u->euid);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d);
    cr_assert_str_eq(d->euid, own, "the document's patient now, not the clinic's C-9 (%s)",
        linked);
    fx_stop(&n, &a, &h, &c);
}

/* A recipient that drops its connection before each acknowledgement timeout (a consumer that
 * crashes on one message and restarts) gets the message max_attempts times in all, then it is
 * dead-lettered (max-attempts) and the message behind it comes: that one was sent on every
 * connection too, but only the oldest in flight is charged an attempt for it. Before, the
 * limit was checked only when a timeout fell due on an open connection: it was sent again on
 * every reconnect, never dead-lettered, and held every message behind it. */
Test(push, a_message_resent_on_each_reconnect_still_meets_its_attempt_limit, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.ack_timeout_ms = 4000, .max_attempts = 2};
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &o, &a, &h, &c);
    push_ok(h, "p1", "poison", a);
    push_ok(h, "p2", "next", a);
    struct inbox in;
    for (unsigned i = 1; i <= 2; i++) {
        char rid[8];
        snprintf(rid, sizeof(rid), "r%u", i);
        cr_assert_eq(receive_start(c, rid, &in, a), 2u);
        Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(d);
        cr_assert_str_eq(d->message_id, HOSP ":p1");
        cr_assert_eq(d->attempt, i);
        hie_client_destroy(&c); /* gone before the timeout, unacknowledged */
        c = itest_client(&n, CLINIC);
    }
    cr_assert_eq(receive_start(c, "r3", &in, a), 2u);
    Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d);
    cr_assert_str_eq(d->message_id, HOSP ":p2", "the attempts used up: the next one comes");
    cr_assert_eq(itest_db_entries_wait(&n, "q_dead", 1u, 3000), 1u, "p1 alone");
    cr_assert_eq(ack(c, "a1", &d->seq, 1, &in, a), 1u);
    fx_stop(&n, &a, &h, &c);
}

/* Suspending a recipient ends its receiving connection: the registry check runs per request,
 * and a connection that only receives sends none, so it went on getting deliveries (here the
 * unacknowledged message again after 300 ms) until its messages ran out. */
Test(push, suspension_stops_deliveries_on_an_open_connection, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.ack_timeout_ms = 300, .max_attempts = 8};
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &o, &a, &h, &c);
    push_ok(h, "p1", "result", a);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    cr_assert_not_null(next_delivery(c, &in, 5000, a));
    char out[1024];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "org suspend " CLINIC), 0, "%s", out);
    cr_assert(itest_log_wait(&n, "session cut: organization suspended", 3000));
    bool told = false;
    for (int i = 0; i < 16; i++) { /* until the connection ends, or 1.5 s of nothing */
        hie_envelope_t *env = NULL;
        int rc = hie_client_recv(c, 1500, a, &env);
        if (rc != 0) {
            break;
        }
        cr_assert_neq(env->body_case, HIE__V1__ENVELOPE__BODY_DELIVERY,
            "a delivery after the suspension");
        told = told || (env->body_case == HIE__V1__ENVELOPE__BODY_ERROR &&
                        env->error->code == HIE__V1__ERROR_CODE__ERROR_UNAUTHENTICATED);
    }
    cr_assert(told, "the member is told why");
    fx_stop(&n, &a, &h, &c);
}

/* A push under the id of an earlier request of another kind (here the same member's consent
 * submit) is refused, not answered with that request's stored result: it used to be told OK
 * with a message id while nothing was queued or audited. */
Test(push, a_push_under_another_requests_id_is_refused, .timeout = 120)
{
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP);
    feed_patient(h, a);
    struct dir x;
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    consent_submit_ok(h, "same-id", &x, a);
    hie_envelope_t *r = push(h, "same-id", CLINIC, "H-1", "result", 6, NULL, a);
    expect_error(r, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, NULL);
    cr_assert(strstr(r->error->message, "new id") != NULL, "%s", r->error->message);
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 0u, "nothing queued");
    push_ok(h, "new-id", "result", a);
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 1u);
    hie_client_destroy(&h);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* Two recipients' first messages (each seq 1) reach their dead letters after the same number
 * of attempts: the dead-letter commands' ids were "dead.1.3" for both, so the second was taken
 * for a repeat, not applied, and its message stayed queued and unsent. */
Test(push, dead_letters_of_two_recipients_are_both_kept, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.ack_timeout_ms = 300, .max_attempts = 3};
    setup_with(&n, &o);
    itest_register(&n, "suspended-clinic", "clinic"); /* a second clinic (a test certificate) */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    hie_client_t *c2 = itest_client(&n, "suspended-clinic");
    feed_patient(h, a);
    push_ok(h, "p1", "result", a);
    hie_envelope_t *r = push(h, "p2", "suspended-clinic", "H-1", "result", 6, NULL, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY);
    struct inbox in, in2;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    cr_assert_eq(receive_start(c2, "r1", &in2, a), 1u);
    cr_assert_eq(itest_db_entries_wait(&n, "q_dead", 2u, 8000), 2u, "both dead-lettered");
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 0u);
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_client_destroy(&c2);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* A message no delivery frame can carry (its push frame just under limits.frame_bytes_max;
 * the delivery adds the message id, sender, EUID and marks) goes to the dead letters, and
 * the messages behind it are delivered. It used to stop the recipient's queue for good. */
Test(push, an_undeliverable_message_does_not_stop_the_queue, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.frame_bytes_max = 16384};
    setup_with(&n, &o);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP);
    feed_patient(h, a);
    hie_client_destroy(&h);
    static char big[16384];
    memset(big, 'x', sizeof(big));
    size_t lo = 1000, hi = sizeof(big); /* the largest push the node takes: lo */
    for (int i = 0; hi - lo > 1 && i < 20; i++) {
        size_t mid = (lo + hi) / 2;
        char id[32];
        snprintf(id, sizeof(id), "s%d", i);
        h = itest_client(&n, HOSP); /* an oversize frame closes the connection */
        hie_envelope_t *r = push(h, id, CLINIC, "H-1", big, mid, NULL, a);
        *(r->body_case == HIE__V1__ENVELOPE__BODY_PUSH_REPLY ? &lo : &hi) = mid;
        hie_client_destroy(&h);
    }
    cr_log_info("largest push accepted: %zu content bytes", lo);
    h = itest_client(&n, HOSP);
    push_ok(h, "after", "a small one behind it", a);
    hie_client_t *c = itest_client(&n, CLINIC);
    struct inbox in;
    uint64_t queued = receive_start(c, "r1", &in, a);
    cr_assert_geq(queued, 2u);
    Hie__V1__Delivery *d = NULL;
    for (uint64_t i = 0; i < queued && (d == NULL || strcmp(d->message_id, HOSP ":after")); i++) {
        d = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(d, "the queue stopped behind the undeliverable message");
        cr_assert_eq(ack(c, d->message_id, &d->seq, 1, &in, a), 1u);
    }
    cr_assert_str_eq(d->message_id, HOSP ":after");
    cr_assert(itest_log_contains(&n, "reason=undeliverable"));
    cr_assert_geq(itest_db_entries(&n, "q_dead"), 1u);
    fx_stop(&n, &a, &h, &c);
}

/* A node whose storage fills refuses new work (OVERLOADED, naming storage.map_bytes) and
 * keeps serving; it used to reach MDB_MAP_FULL in apply or in the log and stop, at every
 * restart too. An 8 MiB map here, 200 KiB documents to the repository. */
Test(push, a_full_storage_refuses_pushes_and_the_node_keeps_serving, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.map_bytes = 8u << 20};
    setup_with(&n, &o);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP);
    feed_patient(h, a);
    static char doc[200 * 1024];
    memset(doc, 'd', sizeof(doc));
    hie_envelope_t *r = NULL;
    int i = 0;
    for (; i < 200; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%d", i);
        r = push(h, id, "", "H-1", doc, sizeof(doc), NULL, a);
        if (r->body_case != HIE__V1__ENVELOPE__BODY_PUSH_REPLY) {
            break;
        }
        if (i % 4 == 3) {
            usleep(300 * 1000); /* the workers look at the storage every 250 ms */
        }
    }
    cr_assert_lt(i, 200, "never refused");
    expect_error(r, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL);
    cr_assert(strstr(r->error->message, "storage.map_bytes") != NULL, "%s", r->error->message);
    cr_log_info("refused after %d pushes of 200 KiB", i);
    cr_assert(itest_node_alive(&n), "the node stopped");
    cr_assert_eq(itest_ping(h, NULL), 0, "still serving");
    char out[1 << 16];
    cr_assert_eq(itest_http_get(&n, "/metrics", out, sizeof(out)), 200);
    cr_assert(strstr(out, "hie_storage_used_bytes{node=\"node-1\",db=\"log\"}") != NULL);
    cr_assert(itest_log_contains(&n, "storage nearly full"));
    /* and /healthz says so: a load balancer reading 200 sent it work it refused */
    cr_assert_eq(itest_http_get(&n, "/healthz", out, sizeof(out)), 503, "%s", out);
    cr_assert(strstr(out, "storage nearly full") != NULL, "%s", out);
    hie_client_destroy(&h);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* The value of the metric name (with its {node="node-1"} label) on n's /metrics. */
static unsigned long
metric(itest_node_t *n, const char *name)
{
    static char out[1 << 16];
    cr_assert_eq(itest_http_get(n, "/metrics", out, sizeof(out)), 200);
    char want[96];
    snprintf(want, sizeof(want), "\n%s{node=\"node-1\"} ", name);
    const char *at = strstr(out, want);
    cr_assert_not_null(at, "no %s", name);
    return strtoul(at + strlen(want), NULL, 10);
}

/* A recipient's slot in the delivery thread (1,024 at once) is freed when it stops
 * receiving with nothing unacknowledged: they were never freed, so the 1,025th organization
 * ever to ask for deliveries could not receive until a restart. */
Test(push, a_receivers_slot_is_freed_when_it_stops_receiving, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, NULL, &a, &h, &c);
    push_ok(h, "p1", "result", a);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d);
    cr_assert_eq(metric(&n, "hie_delivery_receivers"), 1u);
    hie_client_destroy(&c); /* offline with one unacknowledged: the slot keeps its attempts */
    usleep(300 * 1000);
    cr_assert_eq(metric(&n, "hie_delivery_receivers"), 1u);
    c = itest_client(&n, CLINIC);
    cr_assert_eq(receive_start(c, "r2", &in, a), 1u);
    d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d);
    cr_assert_eq(ack(c, "k1", &d->seq, 1, &in, a), 1u);
    hie_client_destroy(&c); /* nothing left: the slot is free */
    bool freed = false;
    for (int i = 0; i < 20 && !freed; i++) {
        freed = metric(&n, "hie_delivery_receivers") == 0;
        usleep(freed ? 0 : 100 * 1000);
    }
    cr_assert(freed, "the slot was kept after the recipient left");
    c = itest_client(&n, CLINIC); /* and it can receive again */
    push_ok(h, "p2", "result", a);
    cr_assert_eq(receive_start(c, "r3", &in, a), 1u);
    cr_assert_not_null(next_delivery(c, &in, 5000, a));
    fx_stop(&n, &a, &h, &c);
}

/* A redrive decides consent again, as it stands now: after the patient's directive excludes
 * the clinic, its dead letter stays dead and the decision is audited. A redrive used to put
 * it back in the queue with no decision at all, weeks after a revocation if need be. */
Test(push, a_redrive_decides_consent_again, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.ack_timeout_ms = 300, .max_attempts = 2};
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &o, &a, &h, &c);
    push_ok(h, "p1", "result", a);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    cr_assert_eq(itest_db_entries_wait(&n, "q_dead", 1u, 5000), 1u, "dead-lettered");
    struct dir x; /* the patient's directive: everyone but the clinic */
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    consent_submit_ok(h, "c1", &x, a);
    size_t audits = itest_db_entries_settled(&n, "audit_rec");
    char out[4096];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery redrive %s", CLINIC), 0, "%s", out);
    cr_assert(strstr(out, " moved=0 ") != NULL && strstr(out, "1 stay dead") != NULL, "%s",
        out);
    cr_assert_eq(itest_db_entries(&n, "q_dead"), 1u, "still dead");
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 0u, "not back in the queue");
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", audits + 1, 2000), audits + 1,
        "the decision audited");
    fx_stop(&n, &a, &h, &c);
}

/* More than 1,000 dead letters: hiectl lists 1,000, says the list is cut and names the next
 * page, which lists the rest (it printed dead_letters=1000 as if that were all). And more
 * than 256 messages withheld at delivery in a row: the pump stopped after 256 (its share of
 * one call) and, with nothing in flight, waited for the next push to go on. */
Test(push, a_long_withheld_backlog_drains_and_dead_letters_list_in_pages, .timeout = 240)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, NULL, &a, &h, &c);
    enum { PUSHES = 1003 };
    for (int i = 0; i < PUSHES; i++) {
        char id[32];
        snprintf(id, sizeof(id), "p%d", i);
        push_ok(h, id, "result", a);
        hie_arena_reset(a);
    }
    struct dir x; /* then the patient's directive: everyone but the clinic */
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    consent_submit_ok(h, "c1", &x, a);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), (uint64_t)PUSHES);
    uint64_t t0 = hie_time_mono_ns();
    size_t dead = itest_db_entries_wait(&n, "q_dead", PUSHES, 60000);
    cr_assert_eq(dead, (size_t)PUSHES, "all withheld at delivery");
    cr_log_info("withheld in %.1f s", (double)(hie_time_mono_ns() - t0) / 1e9);
    static char out[512 * 1024];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery dead"), 0, "%s", out);
    cr_assert(strstr(out, "dead_letters=1000 truncated=true") != NULL, "%.300s", out);
    const char *prefix = "more: hiectl delivery dead --org " CLINIC " --after ";
    char *more = strstr(out, prefix);
    cr_assert_not_null(more, "the next page of a listing of all is named");
    unsigned long last = strtoul(more + strlen(prefix), NULL, 10);
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery dead --org %s --after %lu", CLINIC,
        last), 0, "%s", out);
    cr_assert(strstr(out, "dead_letters=3\n") != NULL, "the rest: %.300s", out);
    cr_assert(strstr(out, "truncated") == NULL, "%.300s", out);
    /* one recipient's: pages by its seq */
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery dead %s", CLINIC), 0, "%.300s", out);
    prefix = "more: hiectl delivery dead " CLINIC " ";
    more = strstr(out, prefix);
    cr_assert_not_null(more, "the next page is named");
    last = strtoul(more + strlen(prefix), NULL, 10);
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery dead %s %lu", CLINIC, last), 0, "%s",
        out);
    cr_assert(strstr(out, "dead_letters=3\n") != NULL, "the rest: %.300s", out);
    fx_stop(&n, &a, &h, &c);
}

/* Consent is decided again when a queued message is delivered, as for any message: a
 * directive filed after the pushes and before the clinic reads them withholds every one, also
 * those delivered before and not acknowledged. Each goes to the dead letters (reason consent)
 * with its refusal audited; once the directive is revoked, a redrive delivers them. */
Test(push, consent_is_decided_again_at_delivery, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, NULL, &a, &h, &c);
    push_ok(h, "p1", "result", a);
    push_ok(h, "p2", "second result", a);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 2u);
    cr_assert_not_null(next_delivery(c, &in, 5000, a));
    cr_assert_not_null(next_delivery(c, &in, 5000, a));
    hie_client_close(c); /* gone without acknowledging */
    push_ok(h, "p3", "third result", a);
    struct dir x; /* the patient's directive: everyone but the clinic */
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    char cid[64];
    snprintf(cid, sizeof(cid), "%s", consent_submit_ok(h, "c1", &x, a)->id);
    size_t audits = itest_db_entries_settled(&n, "audit_rec");
    cr_assert_eq(receive_start(c, "r2", &in, a), 3u);
    cr_assert_null(next_delivery(c, &in, 1500, a), "nothing reaches the clinic");
    cr_assert_eq(itest_db_entries_wait(&n, "q_dead", 3u, 5000), 3u, "all three withheld");
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 0u);
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", audits + 3, 2000), audits + 3,
        "each refusal audited");
    cr_assert(itest_log_wait(&n, "delivery withheld: consent", 2000));
    char out[8192];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery dead %s", CLINIC), 0, "%s", out);
    cr_assert(strstr(out, "consent") != NULL, "the reason is listed: %s", out);
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "consent revoke %s", cid), 0, "%s", out);
    /* receiving again (the client gave up on its connection when nothing came), with
     * nothing queued: then the redrive, and nothing else, must set the queue going (nothing
     * did until the next push or RECEIVE) */
    hie_client_close(c);
    cr_assert_eq(receive_start(c, "r3", &in, a), 0u);
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery redrive %s", CLINIC), 0, "%s", out);
    cr_assert(strstr(out, " moved=3") != NULL, "%s", out);
    for (int i = 0; i < 3; i++) {
        cr_assert_not_null(next_delivery(c, &in, 5000, a), "delivered after the redrive: %d",
            i);
    }
    fx_stop(&n, &a, &h, &c);
}

/* The operator deletes dead letters for good: one by its seq, then the rest; a seq that is
 * not a dead letter is NOT_FOUND; the recipient's queue is untouched. */
Test(push, dead_letters_are_purged_by_the_operator, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.ack_timeout_ms = 300, .max_attempts = 1};
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &o, &a, &h, &c);
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof(id), "p%d", i);
        push_ok(h, id, "result", a);
    }
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 3u);
    cr_assert_eq(itest_db_entries_wait(&n, "q_dead", 3u, 5000), 3u, "dead-lettered");
    hie_client_close(c);
    push_ok(h, "p9", "queued, not dead", a);
    char out[4096];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery purge %s 2", CLINIC), 0, "%s", out);
    cr_assert(strstr(out, " purged=1") != NULL, "%s", out);
    cr_assert_eq(itest_db_entries(&n, "q_dead"), 2u);
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery purge %s 2", CLINIC), 1,
        "gone already: %s", out);
    cr_assert(strstr(out, "NOT_FOUND") != NULL, "%s", out);
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery purge %s", CLINIC), 0, "%s", out);
    cr_assert(strstr(out, " purged=2") != NULL, "%s", out);
    cr_assert_eq(itest_db_entries(&n, "q_dead"), 0u);
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 1u, "the queue is untouched");
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery purge %s 0", CLINIC), 2,
        "seq 0 is not a seq: %s", out);
    fx_stop(&n, &a, &h, &c);
}

/* A recipient whose queue holds delivery.queue_bytes_max takes no more pushes (OVERLOADED,
 * naming recipient_org) until it receives what waits: one member offline for weeks cannot
 * fill the storage every member's exchanges need. Other recipients are not affected. */
Test(push, a_full_recipient_queue_refuses_pushes_until_it_reads, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.queue_bytes_max = 1024 * 1024};
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &o, &a, &h, &c);
    itest_register(&n, "lakeside-lab", "lab");
    static char doc[400 * 1024];
    memset(doc, 'x', sizeof(doc));
    for (int i = 0; i < 3; i++) { /* 1.2 MB queued: past the 1 MiB bound */
        char id[8];
        snprintf(id, sizeof(id), "p%d", i);
        hie_envelope_t *r = push(h, id, CLINIC, "H-1", doc, sizeof(doc), NULL, a);
        cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "push %d", i);
    }
    expect_error(push(h, "p3", CLINIC, "H-1", doc, sizeof(doc), NULL, a),
        HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "recipient_org");
    hie_envelope_t *other = push(h, "q0", "lakeside-lab", "H-1", doc, sizeof(doc), NULL, a);
    cr_assert_eq(other->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "another recipient");
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 3u);
    uint64_t seqs[3];
    for (int i = 0; i < 3; i++) {
        Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(d);
        seqs[i] = d->seq;
    }
    cr_assert_eq(ack(c, "a1", seqs, 3, &in, a), 3u);
    hie_envelope_t *r = push(h, "p4", CLINIC, "H-1", doc, sizeof(doc), NULL, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "room again once read");
    fx_stop(&n, &a, &h, &c);
}

/* Dead letters count against the recipient's bound too (a member that reads and never
 * acknowledges has everything dead-lettered, which freed its queue's budget while q_dead
 * grew); purging them makes the room again. */
Test(push, dead_letters_count_against_the_recipients_bound, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.ack_timeout_ms = 300, .max_attempts = 1, .queue_bytes_max = 1024 * 1024};
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &o, &a, &h, &c);
    static char doc[400 * 1024];
    memset(doc, 'y', sizeof(doc));
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof(id), "p%d", i);
        cr_assert_eq(push(h, id, CLINIC, "H-1", doc, sizeof(doc), NULL, a)->body_case,
            HIE__V1__ENVELOPE__BODY_PUSH_REPLY);
    }
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 3u);
    cr_assert_eq(itest_db_entries_wait(&n, "q_dead", 3u, 5000), 3u, "never acknowledged");
    hie_client_close(c);
    expect_error(push(h, "p3", CLINIC, "H-1", doc, sizeof(doc), NULL, a),
        HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "recipient_org");
    char out[4096];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery purge %s", CLINIC), 0, "%s", out);
    cr_assert_eq(push(h, "p4", CLINIC, "H-1", doc, sizeof(doc), NULL, a)->body_case,
        HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "room again once purged");
    fx_stop(&n, &a, &h, &c);
}

Test(push, unacknowledged_retries_back_off_then_dead_letter, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.ack_timeout_ms = 300, .max_attempts = 3};
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &o, &a, &h, &c);
    push_ok(h, "p1", "result", a);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    uint64_t at[3];
    for (unsigned i = 0; i < 3; i++) { /* never acknowledged: sent again, later each time */
        Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(d, "attempt %u", i + 1);
        cr_assert_str_eq(d->message_id, HOSP ":p1");
        cr_assert_eq(d->attempt, i + 1);
        cr_assert_eq(d->redelivery, i > 0);
        at[i] = hie_time_mono_ns() / 1000000u;
    }
    uint64_t gap1 = at[1] - at[0], gap2 = at[2] - at[1];
    cr_assert(gap1 >= 200 && gap1 <= 600, "first wait %lu ms (300 +-20%%, tick 100)", gap1);
    cr_assert(gap2 >= 420 && gap2 <= 900, "second wait %lu ms (600 +-20%%): backs off", gap2);
    cr_log_info("retry waits: %lu ms, %lu ms", gap1, gap2);
    /* the third wait ends in the dead letters, not a fourth attempt */
    cr_assert(itest_log_wait(&n, "message dead-lettered", 5000), "dead-lettered");
    cr_assert_eq(itest_db_entries(&n, "q_msg"), 0u);
    cr_assert_eq(itest_db_entries(&n, "q_dead"), 1u);
    cr_assert_null(next_delivery(c, &in, 1500, a), "no fourth attempt");
    /* the operator sees it (no content) and sends it back */
    char out[4096];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery dead %s", CLINIC), 0, "%s", out);
    cr_assert(strstr(out, "message_id=" HOSP ":p1") != NULL, "%s", out);
    cr_assert(strstr(out, "attempts=3 reason=max-attempts") != NULL, "%s", out);
    cr_assert(strstr(out, "result") == NULL, "no content in the listing");
    char longorg[72];
    memset(longorg, 'a', sizeof(longorg) - 1);
    longorg[sizeof(longorg) - 1] = '\0';
    cr_assert_neq(itest_ctl(&n, out, sizeof(out), "delivery dead %s", longorg), 0, "%s", out);
    cr_assert(itest_node_alive(&n), "an operator's long org id stopped the node");
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery redrive %s", CLINIC), 0, "%s", out);
    cr_assert_eq(itest_db_entries(&n, "q_dead"), 0u);
    cr_assert_eq(receive_start(c, "r2", &in, a), 1u, "back in the queue");
    Hie__V1__Delivery *again = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(again, "redriven");
    cr_assert_str_eq(again->message_id, HOSP ":p1", "same message id");
    cr_assert_eq(ack(c, "a9", &again->seq, 1, &in, a), 1u);
    fx_stop(&n, &a, &h, &c);
}

/* Pushes for patient p's document k from connection c, pipelined (no wait for the reply). */
static void
push_send(hie_client_t *c, int p, int k)
{
    char id[32], mrn[16], body[32];
    snprintf(id, sizeof(id), "o-%d-%d", p, k);
    snprintf(mrn, sizeof(mrn), "P-%d", p);
    snprintf(body, sizeof(body), "%d:%d", p, k);
    hie_envelope_t req;
    Hie__V1__PushRequest pr = HIE__V1__PUSH_REQUEST__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, id);
    pid.org_id = MUT(HOSP);
    pid.mrn = mrn;
    d.patient = &pid;
    d.content_type = MUT("text/plain");
    d.content = (ProtobufCBinaryData){strlen(body), (uint8_t *)body};
    pr.recipient_org = MUT(CLINIC);
    pr.document = &d;
    req.body_case = HIE__V1__ENVELOPE__BODY_PUSH;
    req.push = &pr;
    cr_assert_eq(hie_client_send(c, &req), 0);
}

Test(push, per_patient_order_holds_with_concurrent_pushes, .timeout = 180)
{
    enum { PATIENTS = 12, DOCS = 8, CONNS = 3 };
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *conn[CONNS], *c = itest_client(&n, CLINIC);
    for (int i = 0; i < CONNS; i++) {
        conn[i] = itest_client(&n, HOSP);
    }
    struct person p = JOHN;
    for (int i = 0; i < PATIENTS; i++) {
        char id[16], mrn[16], dob[16];
        snprintf(id, sizeof(id), "f%d", i);
        snprintf(mrn, sizeof(mrn), "P-%d", i);
        snprintf(dob, sizeof(dob), "19%02d-0%d-1%d", 40 + i, 1 + i % 9, i % 9);
        p.dob = dob;
        feed_ok(conn[0], id, HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, mrn, &p, NULL, a);
    }
    /* each patient's documents go, in order, through one connection; patients interleave
     * across connections, and each connection keeps several pushes in flight */
    for (int k = 0; k < DOCS; k++) {
        for (int i = 0; i < PATIENTS; i++) {
            push_send(conn[i % CONNS], i, k);
        }
        for (int i = 0; i < PATIENTS; i++) { /* the replies of this round */
            hie_envelope_t *r = NULL;
            cr_assert_eq(hie_client_recv(conn[i % CONNS], 5000, a, &r), 0);
            cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY);
        }
    }
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), (uint64_t)(PATIENTS * DOCS));
    int next[PATIENTS] = {0};
    for (int j = 0; j < PATIENTS * DOCS; j++) {
        Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(d, "delivery %d", j);
        int pi = -1, k = -1;
        char body[32] = "";
        memcpy(body, d->document->content.data, d->document->content.len < 31
            ? d->document->content.len : 31);
        cr_assert_eq(sscanf(body, "%d:%d", &pi, &k), 2);
        cr_assert_eq(k, next[pi], "patient %d: document %d before %d", pi, k, next[pi]);
        next[pi]++;
        cr_assert_eq(ack(c, d->message_id, &d->seq, 1, &in, a), 1u);
    }
    for (int i = 0; i < CONNS; i++) {
        hie_client_destroy(&conn[i]);
    }
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* The node's hie_memory_live_bytes, from its metrics. */
static long long
live_bytes(itest_node_t *n)
{
    static char out[1 << 16];
    cr_assert_eq(itest_http_get(n, "/metrics", out, sizeof(out)), 200);
    const char *at = strstr(out, "\nhie_memory_live_bytes{");
    cr_assert_not_null(at, "no hie_memory_live_bytes");
    long long v = -1;
    cr_assert_eq(sscanf(strchr(at, '}') + 1, "%lld", &v), 1);
    return v;
}

/* Receive (window 256) with id, written on a raw connection that never reads. */
static bool
receive_raw(SSL *ssl, const char *id)
{
    hie_envelope_t req;
    Hie__V1__ReceiveRequest r = HIE__V1__RECEIVE_REQUEST__INIT;
    req_init(&req, id);
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED;
    r.window = HIE_DELIVERY_WINDOW_MAX;
    req.body_case = HIE__V1__ENVELOPE__BODY_RECEIVE;
    req.receive = &r;
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(hie_proto_frame_encode(&req, 1 << 20, &buf, &len), 0);
    struct pollfd pfd = {SSL_get_fd(ssl), POLLOUT, 0};
    int w = poll(&pfd, 1, 2000) > 0 ? SSL_write(ssl, buf, (int)len) : 0;
    hie_mem_free(buf, len);
    return w > 0;
}

/* Documents up to the content limit (1 MiB) are pushed (sealing stopped at 64 KiB before).
 * The member then asks for its deliveries on one connection after another and reads none of
 * them: each Receive moves the whole window (10.6 MB here) to the newest connection, and the
 * node's memory must stay put (each connection stops being read once its replies back up).
 * Nothing is lost: read later, every message is still there (the oldest in flight is charged
 * an attempt at each new connection: max_attempts is set above the 20 here). */
Test(push, big_documents_and_a_member_asking_again_without_reading, .timeout = 180)
{
    enum { DOCS = 48, DOC_BYTES = 200 * 1024, CONNS = 20 };
    itest_node_t n;
    itest_opts_t o = {.max_attempts = 64};
    setup_with(&n, &o);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP);
    feed_patient(h, a);
    static char big[DOC_BYTES];
    memset(big, 'x', sizeof(big));
    for (int i = 0; i < DOCS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "big-%d", i);
        hie_envelope_t *r = push(h, id, CLINIC, "H-1", big, sizeof(big), NULL, a);
        cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "push %s: %s", id,
            r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
        hie_arena_reset(a);
    }
    static char max[HIE_PUSH_CONTENT_BYTES_MAX + 1];
    memset(max, 'y', sizeof(max));
    hie_envelope_t *r = push(h, "max", CLINIC, "H-1", max, HIE_PUSH_CONTENT_BYTES_MAX, NULL, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "push 1 MiB: %s",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    r = push(h, "over", CLINIC, "H-1", max, sizeof(max), NULL, a);
    expect_error(r, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "document.content");
    long long before = live_bytes(&n), peak = before;
    SSL *ssl[CONNS];
    for (int i = 0; i < CONNS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "rx-%d", i);
        ssl[i] = itest_raw_connect(&n, CLINIC);
        cr_assert_not_null(ssl[i]);
        cr_assert(receive_raw(ssl[i], id));
        usleep(100000);
        long long now = live_bytes(&n);
        peak = now > peak ? now : peak;
    }
    for (int i = 0; i < 10; i++) {
        usleep(100000);
        long long now = live_bytes(&n);
        peak = now > peak ? now : peak;
    }
    cr_log_info("%d connections asked: node live memory %lld -> peak %lld bytes", CONNS,
        before, peak);
    cr_assert_lt(peak - before, 32ll << 20, "the node buffered %lld bytes for a member that "
        "does not read", peak - before);
    for (int i = 0; i < CONNS; i++) {
        itest_raw_close(ssl[i]);
    }
    hie_client_t *c = itest_client(&n, CLINIC);
    struct inbox in;
    cr_assert_eq(receive_start(c, "rx-ok", &in, a), (uint64_t)DOCS + 1, "all still queued");
    size_t got = 0, biggest = 0;
    for (int i = 0; i <= DOCS; i++) { /* in order, each acknowledged: the 1 MiB one last */
        Hie__V1__Delivery *d = next_delivery(c, &in, 10000, a);
        cr_assert_not_null(d, "delivery %d", i);
        biggest = d->document->content.len > biggest ? d->document->content.len : biggest;
        char id[16];
        snprintf(id, sizeof(id), "ack-%d", i);
        uint64_t seq = d->seq;
        got += ack(c, id, &seq, 1, &in, a);
    }
    cr_assert_eq(got, (size_t)DOCS + 1);
    cr_assert_eq(biggest, (size_t)HIE_PUSH_CONTENT_BYTES_MAX, "the 1 MiB document arrived");
    hie_client_destroy(&c);
    hie_client_destroy(&h);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* Sets the clinic's queue count in the stopped node's state (q_meta: next || count || bytes ||
 * dead letters' bytes, the bytes kept). */
static void
queue_count_set(itest_node_t *n, uint64_t count)
{
    char dir[ITEST_PATH + 16];
    snprintf(dir, sizeof(dir), "%s/state", n->data_dir);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 64);
    mdb_env_set_mapsize(env, 1ull << 30);
    cr_assert_eq(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "q_meta", 0, &meta), 0);
    MDB_val k = {strlen(CLINIC), MUT(CLINIC)}, v;
    cr_assert_eq(mdb_get(txn, meta, &k, &v), 0);
    cr_assert_eq(v.mv_size, 32u);
    uint8_t b[32];
    memcpy(b, v.mv_data, sizeof(b));
    for (int i = 0; i < 8; i++) {
        b[8 + i] = (uint8_t)(count >> (56 - 8 * i));
    }
    MDB_val nv = {sizeof(b), b};
    cr_assert_eq(mdb_put(txn, meta, &k, &nv, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* A push refused because the recipient's queue is full is refused for now, not for good: the
 * member is told to retry with the same id, and once the queue has room that retry goes in. */
Test(push, a_full_queue_refusal_is_not_remembered_for_the_retry, .timeout = 120)
{
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP);
    feed_patient(h, a);
    push_ok(h, "p1", "first", a);
    hie_client_destroy(&h);
    cr_assert_eq(itest_node_stop(&n, SIGTERM), 0);
    queue_count_set(&n, HIE_DELIVERY_QUEUE_MAX);
    itest_node_start(&n);
    h = itest_client(&n, HOSP);
    hie_envelope_t *r = push(h, "p2", CLINIC, "H-1", "second", 6, NULL, a);
    expect_error(r, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL); /* told why, not UNAVAILABLE */
    cr_assert(strstr(r->error->message, "queue") != NULL, "%s", r->error->message);
    hie_client_destroy(&h);
    cr_assert_eq(itest_node_stop(&n, SIGTERM), 0);
    queue_count_set(&n, 1);
    itest_node_start(&n);
    h = itest_client(&n, HOSP);
    cr_assert_str_eq(push_ok(h, "p2", "second", a), HOSP ":p2", "the retry with the same id");
    hie_client_destroy(&h);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* An emergency push waits for an offline clinic; the patient then denies the clinic. Where
 * the regime allows break-glass, the delivery breaks the glass: it goes, and it is audited as
 * a break-glass disclosure of its own (flagged, in the break-glass report). It went with no
 * record at all: the push's record was an ordinary permit. */
Test(push, a_delivery_that_breaks_the_glass_is_audited_as_such, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, NULL, &a, &h, &c);
    hie_client_close(c);
    const char *text = "emergency: allergy to penicillin";
    hie_envelope_t *r = push_for(h, "p1", CLINIC, "H-1", text, strlen(text), NULL,
        HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY);
    struct dir x; /* the patient's directive: everyone but the clinic */
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    consent_submit_ok(h, "c1", &x, a);
    char out[16384];
    itest_register(&n, "state-auditor", "auditor");
    cr_assert_eq(itest_hie(&n, "state-auditor", out, sizeof(out), "audit report break-glass "
        "--format csv"), 0, "%s", out);
    cr_assert_null(strstr(out, CLINIC), "no break-glass yet: %s", out);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d, "the emergency push is delivered (break-glass allowed)");
    cr_assert_eq(itest_hie(&n, "state-auditor", out, sizeof(out), "audit report break-glass "
        "--format csv"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "," CLINIC ","), "the delivery in the report: %s", out);
    cr_assert(itest_log_contains(&n, "delivered by breaking the glass"));
    fx_stop(&n, &a, &h, &c);
}

/* A message dead-lettered for its age and redriven gets its retries again: its age runs from
 * the redrive. It ran from the push, so one missed acknowledgement sent it straight back to
 * the dead letters. */
Test(push, a_redriven_message_past_its_age_is_retried, .timeout = 180)
{
    itest_node_t n;
    itest_opts_t o = {.ack_timeout_ms = 300, .max_attempts = 8, .max_age_ms = 60000};
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &o, &a, &h, &c);
    hie_client_close(c);
    push_ok(h, "p1", "result", a);
    sleep(61); /* past its age (a minute: the least delivery.max_age_ms takes) while away */
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    cr_assert_not_null(next_delivery(c, &in, 5000, a), "the first send (not acknowledged)");
    cr_assert(itest_log_wait(&n, "reason=max-age", 5000), "dead-lettered for its age");
    char out[4096];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "delivery redrive %s", CLINIC), 0, "%s", out);
    unsigned got = 0;
    while (next_delivery(c, &in, 1500, a) != NULL) { /* never acknowledged */
        got++;
    }
    cr_assert_geq(got, 2u, "after the redrive: %u sends before the dead letters again", got);
    fx_stop(&n, &a, &h, &c);
}

/* Lines of a break-glass report (CSV, its header left out) that name the clinic. */
static int
glass_rows(itest_node_t *n)
{
    static char out[65536];
    cr_assert_eq(itest_hie(n, "state-auditor", out, sizeof(out), "audit report break-glass "
        "--format csv"), 0, "%s", out);
    int rows = 0;
    for (const char *p = out; (p = strstr(p, "," CLINIC ",")) != NULL; p++) {
        rows++;
    }
    return rows;
}

/* An emergency push that broke the glass at once (the deny was on file) is one break-glass
 * disclosure, recorded with the push: its deliveries and resends add none. Each send added
 * one (five for a message sent four times, one of them the push's). */
Test(push, a_break_glass_push_is_one_break_glass_disclosure, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.ack_timeout_ms = 300, .max_attempts = 4};
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &o, &a, &h, &c);
    struct dir x;
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    consent_submit_ok(h, "c1", &x, a);
    const char *text = "emergency: allergy to penicillin";
    cr_assert_eq(push_for(h, "p1", CLINIC, "H-1", text, strlen(text), NULL,
        HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY, a)->body_case,
        HIE__V1__ENVELOPE__BODY_PUSH_REPLY);
    itest_register(&n, "state-auditor", "auditor");
    cr_assert_eq(glass_rows(&n), 1, "the push broke the glass");
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    unsigned sends = 0;
    while (next_delivery(c, &in, 1500, a) != NULL) { /* never acknowledged: sent again */
        sends++;
    }
    cr_assert_geq(sends, 2u, "%u sends", sends);
    cr_assert_eq(glass_rows(&n), 1, "%u sends, still one break-glass disclosure", sends);
    fx_stop(&n, &a, &h, &c);
}

/* An organization's documents in the HIE's repository are bounded (delivery.
 * repository_bytes_max): past its share its repository pushes are refused OVERLOADED, and the
 * others' still go in. One member could fill the storage every exchange needs: the repository
 * keeps documents for good and counted none. */
Test(push, an_organizations_share_of_the_repository_is_bounded, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.repository_bytes_max = 1u << 20};
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &o, &a, &h, &c);
    static char doc[600 * 1024];
    memset(doc, 'x', sizeof(doc));
    for (int i = 0; i < 2; i++) { /* 1.2 MB: the second passes the share */
        char id[8];
        snprintf(id, sizeof(id), "r%d", i);
        cr_assert_eq(push(h, id, "", "H-1", doc, sizeof(doc), NULL, a)->body_case,
            HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "%s", id);
    }
    expect_error(push(h, "r2", "", "H-1", doc, sizeof(doc), NULL, a),
        HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "recipient_org");
    cr_assert(itest_log_contains(&n, "share of the repository full"));
    /* another organization's share is its own */
    feed_ok(c, "f9", HIE__V1__FEED_ACTION__FEED_CREATE, CLINIC, "C-9", &JON, NULL, a);
    hie_envelope_t req;
    Hie__V1__PushRequest p = HIE__V1__PUSH_REQUEST__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, "rc");
    pid.org_id = MUT(CLINIC);
    pid.mrn = MUT("C-9");
    d.patient = &pid;
    d.content_type = MUT("text/plain");
    d.content = (ProtobufCBinaryData){4, (uint8_t *)"note"};
    p.recipient_org = MUT("");
    p.document = &d;
    req.body_case = HIE__V1__ENVELOPE__BODY_PUSH;
    req.push = &p;
    cr_assert_eq(call(c, &req, a)->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY);
    fx_stop(&n, &a, &h, &c);
}

/* Emergency treatment (break-glass) is declared only by a treating organization and reaches
 * only one: a lab may not declare it (FORBIDDEN, nothing audited as break-glass), and a
 * hospital may not push under it to a payer. Before, any member broke the glass by saying
 * so, and a payer received a hospital's emergency push past the patient's deny. */
Test(push, only_a_treating_organization_breaks_the_glass, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, NULL, &a, &h, &c);
    itest_register(&n, "unregistered-lab", "payer");
    itest_register(&n, "suspended-clinic", "lab"); /* a certificate of the test PKI, as a lab */
    const char *text = "emergency: allergy to penicillin";
    expect_error(push_for(h, "p1", "unregistered-lab", "H-1", text, strlen(text), NULL,
        HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY, a), HIE__V1__ERROR_CODE__ERROR_FORBIDDEN,
        "purpose");
    cr_assert_eq(push_for(h, "p2", CLINIC, "H-1", text, strlen(text), NULL,
        HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY, a)->body_case,
        HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "to a clinic it goes");
    hie_client_t *lab = itest_client(&n, "suspended-clinic");
    hie_envelope_t req;
    Hie__V1__PixQuery q = HIE__V1__PIX_QUERY__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, "x1");
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY;
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT("H-1");
    q.patient = &pid;
    req.body_case = HIE__V1__ENVELOPE__BODY_PIX_QUERY;
    req.pix_query = &q;
    expect_error(call(lab, &req, a), HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, "purpose");
    hie_client_destroy(&lab);
    fx_stop(&n, &a, &h, &c);
}

/* A message queued under emergency treatment whose recipient no longer treats patients (its
 * roles changed since; or queued before the rule) is decided under treatment at delivery: the
 * patient's deny withholds it. Before, the stored purpose broke the glass for a payer. */
Test(push, a_queued_emergency_push_does_not_break_the_glass_for_a_recipient_turned_payer,
    .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, NULL, &a, &h, &c);
    hie_client_close(c);
    const char *text = "emergency: allergy to penicillin";
    cr_assert_eq(push_for(h, "p1", CLINIC, "H-1", text, strlen(text), NULL,
        HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY, a)->body_case,
        HIE__V1__ENVELOPE__BODY_PUSH_REPLY);
    char out[4096];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "org roles " CLINIC " --roles payer"), 0,
        "%s", out);
    struct dir x; /* the patient's directive: everyone but the clinic */
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    consent_submit_ok(h, "c1", &x, a);
    struct inbox in;
    receive_start(c, "r1", &in, a);
    cr_assert_null(next_delivery(c, &in, 2000, a), "withheld, not delivered by break-glass");
    cr_assert(!itest_log_contains(&n, "delivered by breaking the glass"));
    fx_stop(&n, &a, &h, &c);
}
