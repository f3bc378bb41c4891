/*
 * test_adt.c - ADT events and subscriptions against real hie-node processes (issue 5): a
 * clinic subscribed to its patient is notified of the hospital's admission and its cancel,
 * numbered per subscription; filters keep other subscribers out of both; a subscriber the
 * patient's consent excludes gets nothing and the withholding is audited; a subscriber
 * offline during 1,000 events gets every one after reconnecting, in order, once; bad input
 * names its field; a roster of a million patients is refused whole (over the frame limit) and
 * in parts stops at 100,000 with nothing of the refused part kept.
 */
#include "exchange.h"

#include <criterion/criterion.h>
#include <lmdb.h>
#include <string.h>

#define HOSP "general-hospital"
#define HOSP2 "st-mary-hospital"
#define CLINIC "riverside-clinic"

static void
setup(itest_node_t *n)
{
    itest_node_init(n, NULL);
    itest_node_start(n);
    itest_register(n, HOSP, "hospital");
    itest_register(n, HOSP2, "hospital");
    itest_register(n, CLINIC, "clinic");
}

/* The start most tests here share: a node with the hospital and the clinic connected, each
 * with a record of the same person (H-1, C-9). */
static void
fx_start(itest_node_t *n, hie_arena_t **a, hie_client_t **h, hie_client_t **c)
{
    setup(n);
    *a = arena_new();
    *h = itest_client(n, HOSP);
    *c = itest_client(n, CLINIC);
    feed_ok(*h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, *a);
    feed_ok(*c, "f2", HIE__V1__FEED_ACTION__FEED_CREATE, CLINIC, "C-9", &JON, NULL, *a);
}

/* And its end (the clients as they are then). */
static void
fx_stop(itest_node_t *n, hie_arena_t **a, hie_client_t **h, hie_client_t **c)
{
    hie_client_destroy(h);
    hie_client_destroy(c);
    hie_arena_destroy(a);
    itest_node_cleanup(n);
}

static hie_envelope_t *
subscribe(hie_client_t *c, const char *id, Hie__V1__SubscriptionScope scope, const char *mrn,
    Hie__V1__AdtEvent only, size_t n_mrns, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__SubscribeRequest s = HIE__V1__SUBSCRIBE_REQUEST__INIT;
    Hie__V1__AdtEvent ev[1] = {only};
    char **mrns = calloc(n_mrns + 1, sizeof(*mrns));
    cr_assert_not_null(mrns);
    for (size_t i = 0; i < n_mrns; i++) {
        mrns[i] = MUT(mrn);
    }
    req_init(&req, id);
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED;
    s.scope = scope;
    s.n_mrns = n_mrns;
    s.mrns = mrns;
    s.n_events = only != 0;
    s.events = ev;
    req.body_case = HIE__V1__ENVELOPE__BODY_SUBSCRIBE;
    req.subscribe = &s;
    hie_envelope_t *r = call(c, &req, a);
    free(mrns);
    return r;
}

static const char *
subscribe_ok(hie_client_t *c, const char *id, Hie__V1__SubscriptionScope scope,
    const char *mrn, Hie__V1__AdtEvent only, hie_arena_t *a)
{
    hie_envelope_t *r = subscribe(c, id, scope, mrn, only, mrn != NULL, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_SUBSCRIBE_REPLY, "subscribe: %s",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    return r->subscribe_reply->subscription_id;
}

static hie_envelope_t *
adt_for(hie_client_t *h, const char *id, Hie__V1__AdtEvent ev, const char *mrn,
    const char *visit, Hie__V1__PurposeOfUse purpose, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__AdtRequest r = HIE__V1__ADT_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__Encounter en = HIE__V1__ENCOUNTER__INIT;
    req_init(&req, id);
    req.purpose = purpose;
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT(mrn);
    en.visit_id = MUT(visit);
    en.facility = MUT("General Hospital, Main Campus");
    en.patient_class = HIE__V1__PATIENT_CLASS__PATIENT_CLASS_INPATIENT;
    en.location = MUT("4W-12");
    r.event = ev;
    r.patient = &pid;
    r.encounter = &en;
    r.event_ms = 1764000000000;
    req.body_case = HIE__V1__ENVELOPE__BODY_ADT;
    req.adt = &r;
    return call(h, &req, a);
}

static hie_envelope_t *
adt(hie_client_t *h, const char *id, Hie__V1__AdtEvent ev, const char *mrn, const char *visit,
    hie_arena_t *a)
{
    return adt_for(h, id, ev, mrn, visit, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT, a);
}

static Hie__V1__AdtReply *
adt_ok(hie_client_t *h, const char *id, Hie__V1__AdtEvent ev, const char *visit,
    hie_arena_t *a)
{
    hie_envelope_t *r = adt(h, id, ev, "H-1", visit, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_ADT_REPLY, "adt %s: %s %s", id,
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->field : "");
    return r->adt_reply;
}

static Hie__V1__Notification *
notification(const Hie__V1__Delivery *d)
{
    cr_assert_str_eq(d->document->content_type,
        "application/vnd.hiebroker.notification+protobuf");
    Hie__V1__Notification *n = hie__v1__notification__unpack(NULL, d->document->content.len,
        d->document->content.data);
    cr_assert_not_null(n);
    return n;
}

/* A cancel for the visit of another patient (a keying error, or a reused visit number) does
 * not reach the subscriber of the visit's first patient: it used to, carrying the second
 * patient's EUID and encounter to a clinic that has nothing to do with them. */
Test(adt, a_cancel_naming_another_patient_does_not_reach_the_visits_subscriber,
    .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    feed_ok(h, "f3", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-2", &MARIA, NULL, a);
    subscribe_ok(c, "s1", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a);
    cr_assert_eq(adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V200", a)->notified, 1u);
    hie_envelope_t *r = adt(h, "e2", HIE__V1__ADT_EVENT__ADT_A11, "H-2", "V200", a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_ADT_REPLY);
    cr_assert_eq(r->adt_reply->notified, 0u, "H-2's cancel went to H-1's subscriber");
    cr_assert_eq(adt_ok(h, "e3", HIE__V1__ADT_EVENT__ADT_A11, "V200", a)->notified, 1u,
        "H-1's own cancel still reaches it");
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 2u, "the admission and its own cancel");
    fx_stop(&n, &a, &h, &c);
}

/* The same with a subscriber that follows both patients (all of its patients): the cancel
 * of the second patient's visit does not reach it, since it got the visit's admission about
 * the first. Before, rows named no patient: it got a cancel for an admission it never had. */
Test(adt, a_cancel_reaches_only_who_got_the_original_about_the_same_patient, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    feed_ok(h, "f3", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-2", &MARIA, NULL, a);
    feed_ok(c, "f4", HIE__V1__FEED_ACTION__FEED_CREATE, CLINIC, "C-10", &MARIA, NULL, a);
    subscribe_ok(c, "s1", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_ALL_MY_PATIENTS, NULL, 0, a);
    cr_assert_eq(adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V500", a)->notified, 1u);
    hie_envelope_t *r = adt(h, "e2", HIE__V1__ADT_EVENT__ADT_A11, "H-2", "V500", a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_ADT_REPLY);
    cr_assert_eq(r->adt_reply->notified, 0u, "a cancel about Maria for John's admission");
    cr_assert_eq(adt_ok(h, "e3", HIE__V1__ADT_EVENT__ADT_A11, "V500", a)->notified, 1u,
        "John's own cancel still reaches it");
    fx_stop(&n, &a, &h, &c);
}

/* A40 between an admission and its cancel: the hospital merges H-1 (the admission's) into
 * H-3, and cancels the visit under H-3. The clinic that got the admission gets the cancel:
 * the visit's row names H-1, which lives on as H-3. */
Test(adt, a_cancel_after_an_a40_reaches_who_got_the_merged_records_admission, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    subscribe_ok(c, "s1", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a);
    cr_assert_eq(adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V600", a)->notified, 1u);
    feed_ok(h, "f3", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-3", &JOHN, NULL, a);
    hie_envelope_t req;
    Hie__V1__AdtRequest r = HIE__V1__ADT_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, "m40");
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT("H-3");
    r.event = HIE__V1__ADT_EVENT__ADT_A40;
    r.patient = &pid;
    r.prior_mrn = MUT("H-1");
    r.event_ms = 1764000000000;
    req.body_case = HIE__V1__ENVELOPE__BODY_ADT;
    req.adt = &r;
    hie_envelope_t *e = call(h, &req, a);
    cr_assert_eq(e->body_case, HIE__V1__ENVELOPE__BODY_ADT_REPLY, "%s",
        e->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? e->error->message : "");
    hie_envelope_t *x = adt(h, "e2", HIE__V1__ADT_EVENT__ADT_A11, "H-3", "V600", a);
    cr_assert_eq(x->body_case, HIE__V1__ENVELOPE__BODY_ADT_REPLY, "%s",
        x->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? x->error->message : "");
    cr_assert_eq(x->adt_reply->notified, 1u, "the cancel reaches the admission's subscriber");
    fx_stop(&n, &a, &h, &c);
}

/* A repeated admission of a visit adds its recipients to the first one's: a clinic that got
 * the first (its filter: inpatients) and not the second (the class corrected to outpatient)
 * still gets the cancel. The second replaced the list, and the cancel reached nobody. */
Test(adt, a_cancel_reaches_whoever_got_any_admission_of_the_visit, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    hie_envelope_t req;
    Hie__V1__SubscribeRequest sr = HIE__V1__SUBSCRIBE_REQUEST__INIT;
    char *mrns[1] = {MUT("C-9")};
    Hie__V1__PatientClass inpatient[1] = {HIE__V1__PATIENT_CLASS__PATIENT_CLASS_INPATIENT};
    req_init(&req, "s1");
    sr.scope = HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS;
    sr.n_mrns = 1;
    sr.mrns = mrns;
    sr.n_classes = 1;
    sr.classes = inpatient;
    req.body_case = HIE__V1__ENVELOPE__BODY_SUBSCRIBE;
    req.subscribe = &sr;
    cr_assert_eq(call(c, &req, a)->body_case, HIE__V1__ENVELOPE__BODY_SUBSCRIBE_REPLY);
    cr_assert_eq(adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V300", a)->notified, 1u);
    /* the same admission again, the patient class corrected: filtered out for the clinic */
    Hie__V1__AdtRequest r = HIE__V1__ADT_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__Encounter en = HIE__V1__ENCOUNTER__INIT;
    req_init(&req, "e2");
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT("H-1");
    en.visit_id = MUT("V300");
    en.patient_class = HIE__V1__PATIENT_CLASS__PATIENT_CLASS_OUTPATIENT;
    r.event = HIE__V1__ADT_EVENT__ADT_A01;
    r.patient = &pid;
    r.encounter = &en;
    r.event_ms = 1764000000000;
    req.body_case = HIE__V1__ENVELOPE__BODY_ADT;
    req.adt = &r;
    hie_envelope_t *e2 = call(h, &req, a);
    cr_assert_eq(e2->body_case, HIE__V1__ENVELOPE__BODY_ADT_REPLY);
    cr_assert_eq(e2->adt_reply->notified, 0u);
    cr_assert_eq(adt_ok(h, "e3", HIE__V1__ADT_EVENT__ADT_A11, "V300", a)->notified, 1u,
        "the clinic got the admission, so it gets its cancel");
    fx_stop(&n, &a, &h, &c);
}

/* A visit nobody was told of keeps no row (it kept one for good, for every admission). */
Test(adt, a_visit_nobody_got_keeps_no_row, .timeout = 120)
{
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP);
    feed_ok(h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, a);
    cr_assert_eq(adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V9", a)->notified, 0u);
    cr_assert_eq(itest_db_entries(&n, "adt_visit"), 0u);
    hie_client_destroy(&h);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

Test(adt, admission_and_its_cancel_reach_exactly_the_subscriber, .timeout = 120)
{
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    hie_client_t *h2 = itest_client(&n, HOSP2);
    feed_ok(h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, a);
    feed_ok(c, "f2", HIE__V1__FEED_ACTION__FEED_CREATE, CLINIC, "C-9", &JON, NULL, a);
    feed_ok(h2, "f3", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP2, "S-5", &JOHN, NULL, a);
    const char *sub = subscribe_ok(c, "s1", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0,
        a);
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", sub);
    /* st-mary follows all its patients, but only discharges */
    subscribe_ok(h2, "s2", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_ALL_MY_PATIENTS, NULL,
        HIE__V1__ADT_EVENT__ADT_A03, a);
    Hie__V1__AdtReply *r1 = adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V100", a);
    cr_assert_eq(r1->notified, 1u, "only the clinic");
    Hie__V1__AdtReply *r2 = adt_ok(h, "e2", HIE__V1__ADT_EVENT__ADT_A11, "V100", a);
    cr_assert_eq(r2->notified, 1u, "the cancel reaches exactly who got the admission");
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 2u);
    Hie__V1__Delivery *d1 = next_delivery(c, &in, 5000, a);
    Hie__V1__Delivery *d2 = next_delivery(c, &in, 5000, a);
    cr_assert(d1 != NULL && d2 != NULL);
    cr_assert(d1->handling != NULL && d2->handling != NULL, "consent's marks on notices");
    cr_assert_str_eq(d1->handling->confidentiality, "N");
    cr_assert_str_eq(d1->subscription_id, sid);
    cr_assert_eq(d1->event_number, 1u);
    cr_assert_eq(d2->event_number, 2u);
    Hie__V1__Notification *n1 = notification(d1), *n2 = notification(d2);
    cr_assert_eq(n1->event, HIE__V1__ADT_EVENT__ADT_A01);
    cr_assert_eq(n2->event, HIE__V1__ADT_EVENT__ADT_A11);
    cr_assert(n2->cancel);
    cr_assert_eq(n1->n_patient_ids, 1u);
    cr_assert_str_eq(n1->patient_ids[0]->mrn, "C-9", "the clinic's own MRN");
    cr_assert_str_eq(n1->encounter->visit_id, "V100");
    hie__v1__notification__free_unpacked(n1, NULL);
    hie__v1__notification__free_unpacked(n2, NULL);
    uint64_t seqs[2] = {d1->seq, d2->seq};
    cr_assert_eq(ack(c, "a1", seqs, 2, &in, a), 2u);
    /* a discharge now reaches st-mary (filter) and the clinic (no filter) */
    Hie__V1__AdtReply *r3 = adt_ok(h, "e3", HIE__V1__ADT_EVENT__ADT_A03, "V100", a);
    cr_assert_eq(r3->notified, 2u);
    /* the operator sees both subscriptions, and ends the clinic's */
    static char out[8192];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "subscription list"), 0, "%s", out);
    char want[160];
    snprintf(want, sizeof(want), "id=%s org=" CLINIC " scope=patients roster=1 events=all "
        "classes=all last_event=3 ", sid);
    cr_assert(strstr(out, want) != NULL, "%s", out);
    cr_assert(strstr(out, "org=" HOSP2 " scope=all_my_patients roster=0 events=a03 ") != NULL,
        "%s", out);
    cr_assert(strstr(out, "\nsubscriptions=2\n") != NULL, "%s", out);
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "subscription list " HOSP2), 0, "%s", out);
    cr_assert(strstr(out, "subscriptions=1\n") != NULL && strstr(out, CLINIC) == NULL, "%s", out);
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "subscription cancel %s", sid), 0, "%s", out);
    cr_assert_neq(itest_ctl(&n, out, sizeof(out), "subscription cancel %s", sid), 0,
        "already gone: %s", out);
    Hie__V1__AdtReply *r4 = adt_ok(h, "e4", HIE__V1__ADT_EVENT__ADT_A03, "V101", a);
    cr_assert_eq(r4->notified, 1u, "st-mary only: the clinic's subscription was cancelled");
    hie_client_destroy(&h);
    hie_client_destroy(&h2);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

Test(adt, offline_subscriber_gets_1000_events_in_order_once, .timeout = 300)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    subscribe_ok(c, "s1", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_ALL_MY_PATIENTS, NULL, 0, a);
    hie_client_destroy(&c); /* offline */
    enum { EVENTS = 1000 };
    for (int i = 0; i < EVENTS; i++) {
        char id[32], visit[32];
        snprintf(id, sizeof(id), "e%d", i);
        snprintf(visit, sizeof(visit), "V%d", i / 3);
        hie_arena_t *ea = arena_new();
        cr_assert_eq(adt_ok(h, id, i % 3 == 0 ? HIE__V1__ADT_EVENT__ADT_A01
            : i % 3 == 1 ? HIE__V1__ADT_EVENT__ADT_A02 : HIE__V1__ADT_EVENT__ADT_A03, visit,
            ea)->notified, 1u);
        hie_arena_destroy(&ea);
    }
    c = itest_client(&n, CLINIC);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), (uint64_t)EVENTS);
    uint64_t expect = 1, pending[64];
    size_t np = 0;
    for (int i = 0; i < EVENTS; i++) {
        Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(d, "event %d", i + 1);
        cr_assert_eq(d->event_number, expect, "in order, once: got %lu want %lu",
            (unsigned long)d->event_number, (unsigned long)expect);
        cr_assert(!d->redelivery);
        expect++;
        pending[np++] = d->seq;
        if (np == 8 || i == EVENTS - 1) { /* acknowledge each window, as a client would */
            char id[32];
            snprintf(id, sizeof(id), "a%d", i);
            cr_assert_eq(ack(c, id, pending, np, &in, a), (uint32_t)np);
            np = 0;
        }
    }
    cr_assert_null(next_delivery(c, &in, 1000, a), "nothing more");
    fx_stop(&n, &a, &h, &c);
}

Test(adt, consent_withholds_the_notification_and_audits_it, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    subscribe_ok(c, "s1", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a);
    struct dir x; /* the hospital's patient: share with everyone but the clinic */
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    consent_submit_ok(h, "c1", &x, a);
    size_t before = itest_db_entries_settled(&n, "audit_rec");
    Hie__V1__AdtReply *r = adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V1", a);
    cr_assert_eq(r->notified, 1u, "addressed: the count does not show what consent decided");
    cr_assert_eq(r->withheld, 0u, "not counted to the sender: a hidden relationship");
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", before + 1, 2000), before + 1,
        "the withheld notification audited");
    /* the sender's emergency is not the clinic's: it breaks no glass for the notification
     * (break-glass is allowed on this node) */
    hie_envelope_t *e = adt_for(h, "e2", HIE__V1__ADT_EVENT__ADT_A02, "H-1", "V1",
        HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY, a);
    cr_assert_eq(e->body_case, HIE__V1__ENVELOPE__BODY_ADT_REPLY);
    cr_assert_eq(e->adt_reply->notified, 1u);
    cr_assert_eq(e->adt_reply->withheld, 0u);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 0u, "nothing for the clinic");
    fx_stop(&n, &a, &h, &c);
}

Test(adt, bad_input_names_the_field, .timeout = 120)
{
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    feed_ok(h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, a);
    const Hie__V1__ErrorCode bad = HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    expect_error(adt(h, "b1", (Hie__V1__AdtEvent)99, "H-1", "V1", a), bad, "event");
    expect_error(adt(h, "b2", HIE__V1__ADT_EVENT__ADT_A01, "H-1", "", a), bad,
        "encounter.visit_id");
    /* A08 and A40 need no visit, but one given is checked (a megabyte of visit id was
     * copied into every notice and kept in each subscription's log) */
    static char long_visit[4096];
    memset(long_visit, 'V', sizeof(long_visit) - 1);
    expect_error(adt(h, "b2b", HIE__V1__ADT_EVENT__ADT_A08, "H-1", long_visit, a), bad,
        "encounter.visit_id");
    expect_error(adt(h, "b3", HIE__V1__ADT_EVENT__ADT_A01, "H-404", "V1", a),
        HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn");
    expect_error(adt(c, "b4", HIE__V1__ADT_EVENT__ADT_A01, "H-1", "V1", a),
        HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, "patient.org_id");
    /* a roster of a million patients arrives in parts of at most 1,000, never at once */
    expect_error(subscribe(c, "b5", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-1", 0, 1001,
        a), bad, "mrns");
    expect_error(subscribe(c, "b6", (Hie__V1__SubscriptionScope)7, NULL, 0, 0, a), bad,
        "scope");
    fx_stop(&n, &a, &h, &c);
}

static hie_envelope_t *roster_via(hie_client_t *c, itest_node_t *n, const char *org,
    const char *id, const char *sub, const char *prefix, size_t first, size_t count,
    const char *rm, hie_arena_t *a);

/* One request over a raw mutual-TLS connection as org; the node's reply. A frame over the
 * node's limit (limits.frame_bytes_max, 4 MiB by default) is refused from its length prefix:
 * only its first 64 KiB are sent, and the node answers, then closes. */
static hie_envelope_t *
raw_call(itest_node_t *n, const char *org, hie_envelope_t *req, hie_arena_t *a)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(hie_proto_frame_encode(req, HIE_PROTO_FRAME_BYTES_MAX, &buf, &len), 0);
    SSL *ssl = itest_raw_connect(n, org);
    cr_assert_not_null(ssl);
    size_t send = len > HIE_PROTO_FRAME_BYTES_DEFAULT ? 65536u : len;
    for (size_t off = 0; off < send;) {
        int w = SSL_write(ssl, buf + off, (int)(send - off < 65536u ? send - off : 65536u));
        if (w <= 0) {
            /* an oversized frame: the node may answer from the prefix and close before the
             * rest is written; its answer is read below */
            cr_assert_gt(len, HIE_PROTO_FRAME_BYTES_DEFAULT, "write");
            break;
        }
        off += (size_t)w;
    }
    hie_mem_free(buf, len);
    hie_envelope_t *r = NULL;
    cr_assert_gt(itest_raw_read_frame(ssl, 30000, a, &r), 0, "a reply");
    itest_raw_close(ssl);
    return r;
}

/* A roster update adding count MRNs "<prefix><first + i>" (and removing rm when not NULL). */
static hie_envelope_t *
roster(hie_client_t *c, const char *id, const char *sub, const char *prefix, size_t first,
    size_t count, const char *rm, hie_arena_t *a)
{
    return roster_via(c, NULL, NULL, id, sub, prefix, first, count, rm, a);
}

/* The same, on c, or over a raw connection as org when n is not NULL: a frame of up to the
 * protocol's 16 MiB that the client library would refuse to send. */
static hie_envelope_t *
roster_via(hie_client_t *c, itest_node_t *n, const char *org, const char *id, const char *sub,
    const char *prefix, size_t first, size_t count, const char *rm, hie_arena_t *a)
{
    enum { MRN_BYTES = 16 };
    hie_envelope_t req;
    Hie__V1__RosterUpdate u = HIE__V1__ROSTER_UPDATE__INIT;
    char **mrns = calloc(count + 1, sizeof(*mrns));
    char *text = calloc(count + 1, MRN_BYTES);
    cr_assert(mrns != NULL && text != NULL);
    for (size_t i = 0; i < count; i++) {
        mrns[i] = text + i * MRN_BYTES;
        snprintf(mrns[i], MRN_BYTES, "%s%zu", prefix, first + i);
    }
    req_init(&req, id);
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED;
    u.subscription_id = MUT(sub);
    u.n_add_mrns = count;
    u.add_mrns = mrns;
    char *rms[1] = {MUT(rm)};
    u.n_remove_mrns = rm != NULL;
    u.remove_mrns = rms;
    req.body_case = HIE__V1__ENVELOPE__BODY_ROSTER_UPDATE;
    req.roster_update = &u;
    hie_envelope_t *r = n == NULL ? call(c, &req, a) : raw_call(n, org, &req, a);
    free(mrns);
    free(text);
    return r;
}

static uint32_t
roster_ok(hie_client_t *c, const char *id, const char *sub, size_t first, size_t count,
    const char *rm, hie_arena_t *a)
{
    hie_envelope_t *r = roster(c, id, sub, "R-", first, count, rm, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_ROSTER_UPDATE_REPLY, "roster %s: %s", id,
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    return r->roster_update_reply->size;
}

/* A roster of a million patients: in one request it is refused (parts of at most 1,000); sent
 * in parts it stops at 100,000 with a clear error, and nothing of the refused part is kept. */
Test(adt, a_roster_of_a_million_patients_is_refused_and_changes_nothing, .timeout = 300)
{
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *c = itest_client(&n, CLINIC);
    const char *sub = subscribe_ok(c, "s1", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-1",
        0, a);
    const Hie__V1__ErrorCode bad = HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    hie_envelope_t *big = roster_via(NULL, &n, CLINIC, "m1", sub, "R-", 0, 1000000, NULL, a);
    cr_assert_eq(big->body_case, HIE__V1__ENVELOPE__BODY_ERROR);
    cr_assert_eq(big->error->code, bad, "%s", big->error->message);
    expect_error(roster(c, "m1b", sub, "R-", 0, 1001, NULL, a), bad, "add_mrns");
    cr_assert_eq(roster_ok(c, "m2", sub, 0, 0, "none", a), 1u, "nothing of it was kept");
    char id[32];
    uint32_t size = 1;
    for (size_t part = 0; part < 100; part++) { /* 99,999 more: 100,000 with C-1 */
        snprintf(id, sizeof(id), "p%zu", part);
        size = roster_ok(c, id, sub, part * 1000, part < 99 ? 1000 : 999, NULL, a);
    }
    cr_assert_eq(size, 100000u);
    hie_envelope_t *full = roster(c, "m3", sub, "S-", 0, 2, NULL, a);
    expect_error(full, bad, "add_mrns");
    cr_assert(strstr(full->error->message, "100,000") != NULL, "%s", full->error->message);
    cr_assert_eq(roster_ok(c, "m4", sub, 0, 0, "none", a), 100000u, "the refused part added "
        "nothing");
    cr_assert_eq(roster_ok(c, "m5", sub, 0, 0, "R-5", a), 99999u, "a removal still works");
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

static hie_envelope_t *
replay(hie_client_t *c, const char *id, const char *sub, uint64_t from, struct inbox *in,
    hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__ReplayRequest r = HIE__V1__REPLAY_REQUEST__INIT;
    req_init(&req, id);
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED;
    r.subscription_id = MUT(sub);
    r.from_event_number = from;
    req.body_case = HIE__V1__ENVELOPE__BODY_REPLAY;
    req.replay = &r;
    return call_keep(c, &req, in, a); /* the replayed deliveries may overtake the reply */
}

Test(adt, replay_from_an_event_number_and_heartbeats, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.heartbeat_ms = 300, .retain_events = 2};
    itest_node_init(&n, &o);
    itest_node_start(&n);
    itest_register(&n, HOSP, "hospital");
    itest_register(&n, CLINIC, "clinic");
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    feed_ok(h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, a);
    feed_ok(c, "f2", HIE__V1__FEED_ACTION__FEED_CREATE, CLINIC, "C-9", &JON, NULL, a);
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", subscribe_ok(c, "s1",
        HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_ALL_MY_PATIENTS, NULL, 0, a));
    static const Hie__V1__AdtEvent evs[] = {HIE__V1__ADT_EVENT__ADT_A01,
        HIE__V1__ADT_EVENT__ADT_A02, HIE__V1__ADT_EVENT__ADT_A03};
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof(id), "e%d", i);
        adt_ok(h, id, evs[i], "V1", a);
    }
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 3u);
    char mids[3][160];
    for (int i = 0; i < 3; i++) {
        Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(d);
        snprintf(mids[i], sizeof(mids[i]), "%s", d->message_id);
        cr_assert_eq(ack(c, mids[i], &d->seq, 1, &in, a), 1u);
    }
    /* a replay from event 2 queues events 2 and 3 again, same ids and numbers */
    hie_envelope_t *r = replay(c, "p1", sid, 2, &in, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_REPLAY_REPLY);
    cr_assert_eq(r->replay_reply->queued, 2u);
    for (uint64_t ev = 2; ev <= 3; ev++) {
        Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(d, "replayed %lu", (unsigned long)ev);
        cr_assert_eq(d->event_number, ev);
        cr_assert_str_eq(d->message_id, mids[ev - 1]);
        char aid[16];
        snprintf(aid, sizeof(aid), "pa%lu", (unsigned long)ev);
        cr_assert_eq(ack(c, aid, &d->seq, 1, &in, a), 1u);
    }
    /* an event number never issued: a clear error, nothing queued; delivery.retain_events 2:
     * event 1 is no longer kept */
    expect_error(replay(c, "p2", sid, 99, &in, a), HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
        "from_event_number");
    hie_envelope_t *gone = replay(c, "p3", sid, 1, &in, a);
    expect_error(gone, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "from_event_number");
    cr_assert(strstr(gone->error->message, "no longer retained") != NULL, "%s",
        gone->error->message);
    /* idle now: heartbeats keep coming */
    cr_assert_null(next_delivery(c, &in, 1200, a));
    cr_assert_geq(in.heartbeats, 2u, "heartbeats every 300 ms: %u", in.heartbeats);
    fx_stop(&n, &a, &h, &c);
}

/* A replay decides consent again: after the patient's organization files a directive that
 * excludes the subscriber, its replay queues nothing, and every replayed notification is
 * audited anew (withheld); a replay permitted carries renewed marks. */
Test(adt, replay_applies_consent_as_it_is_now_and_is_audited, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", subscribe_ok(c, "s1",
        HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a));
    adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V1", a);
    adt_ok(h, "e2", HIE__V1__ADT_EVENT__ADT_A03, "V1", a);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 2u);
    for (int i = 0; i < 2; i++) {
        Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(d);
        char id[8];
        snprintf(id, sizeof(id), "k%d", i);
        cr_assert_eq(ack(c, id, &d->seq, 1, &in, a), 1u);
    }
    /* permitted now: queued again, with consent's marks */
    hie_envelope_t *r = replay(c, "p1", sid, 1, &in, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_REPLAY_REPLY);
    cr_assert_eq(r->replay_reply->queued, 2u);
    for (int i = 0; i < 2; i++) {
        Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
        cr_assert(d != NULL && d->handling != NULL);
        char id[8];
        snprintf(id, sizeof(id), "q%d", i);
        cr_assert_eq(ack(c, id, &d->seq, 1, &in, a), 1u);
    }
    /* the hospital's patient now excludes the clinic: a replay sends nothing, audits both */
    struct dir x;
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    consent_submit_ok(h, "c1", &x, a);
    size_t before = itest_db_entries_settled(&n, "audit_rec");
    r = replay(c, "p2", sid, 1, &in, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_REPLAY_REPLY);
    cr_assert_eq(r->replay_reply->queued, 0u, "withheld as consent stands now");
    cr_assert_null(next_delivery(c, &in, 800, a), "nothing delivered");
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", before + 2, 2000), before + 2,
        "each replayed notification audited");
    fx_stop(&n, &a, &h, &c);
}

/* A replay decides consent on the event's own time, as the first notification did: a
 * directive withholding data from the event's period withholds the replay. It was decided on
 * when the HIE accepted the event (a year later here), outside that period, and sent. */
Test(adt, replay_decides_on_the_events_time, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", subscribe_ok(c, "s1",
        HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a));
    adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V1", a); /* event_ms 1764000000000 */
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d, "sent before the directive");
    cr_assert_eq(ack(c, "k1", &d->seq, 1, &in, a), 1u);
    struct dir x; /* everything but data from around the event */
    Hie__V1__ConsentPeriod around = HIE__V1__CONSENT_PERIOD__INIT;
    around.start_ms = 1763000000000;
    around.end_ms = 1765000000000;
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, NULL, 0);
    x.kid.data_period = &around;
    consent_submit_ok(h, "c1", &x, a);
    hie_envelope_t *r = replay(c, "p1", sid, 1, &in, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_REPLAY_REPLY);
    cr_assert_eq(r->replay_reply->queued, 0u, "the event is in the withheld period");
    fx_stop(&n, &a, &h, &c);
}

/* Each replay decides and audits up to 1,000 notifications again: a subscription gets at
 * most 5 in 10 seconds, the 6th is OVERLOADED (a loop on replay grew the audit log
 * unbounded). */
Test(adt, replays_of_a_subscription_are_rate_limited, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", subscribe_ok(c, "s1",
        HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a));
    adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V1", a);
    struct inbox in;
    memset(&in, 0, sizeof(in));
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof(id), "p%d", i);
        hie_envelope_t *r = replay(c, id, sid, 1, &in, a);
        cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_REPLAY_REPLY, "replay %d", i);
    }
    hie_envelope_t *r = replay(c, "p5", sid, 1, &in, a);
    expect_error(r, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "subscription_id");
    /* a subscription that is not the requester's is refused before the gate: naming made-up
     * (or others') ids does not use up the gate's shared slots */
    for (int i = 0; i < 7; i++) {
        char id[8];
        snprintf(id, sizeof(id), "x%d", i);
        r = replay(c, id, "sub-made-up", 1, &in, a);
        expect_error(r, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "subscription_id");
        r = replay(h, id, sid, 1, &in, a); /* the clinic's, asked by the hospital */
        expect_error(r, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "subscription_id");
    }
    fx_stop(&n, &a, &h, &c);
}

/* An organization's subscriptions share a budget of 10 replays in 10 seconds: each of its up
 * to 64 subscriptions had 5 of its own, and a replay whose notices are withheld still audits
 * each (32,000 audit records a second from one member). */
Test(adt, replays_of_an_organization_are_rate_limited_together, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    char sid[3][64];
    for (int k = 0; k < 3; k++) {
        char id[8];
        snprintf(id, sizeof(id), "s%d", k);
        snprintf(sid[k], sizeof(sid[k]), "%s", subscribe_ok(c, id,
            HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a));
    }
    adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V1", a);
    struct inbox in;
    memset(&in, 0, sizeof(in));
    for (int i = 0; i < 10; i++) {
        char id[8];
        snprintf(id, sizeof(id), "p%d", i);
        hie_envelope_t *r = replay(c, id, sid[i / 5], 1, &in, a);
        cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_REPLAY_REPLY, "replay %d", i);
    }
    hie_envelope_t *r = replay(c, "p10", sid[2], 1, &in, a);
    expect_error(r, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "subscription_id");
    fx_stop(&n, &a, &h, &c);
}

Test(adt, a_subscriber_that_never_acknowledges_does_not_slow_another, .timeout = 120)
{
    itest_node_t n;
    setup(&n);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    hie_client_t *h2 = itest_client(&n, HOSP2);
    feed_ok(h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, a);
    feed_ok(c, "f2", HIE__V1__FEED_ACTION__FEED_CREATE, CLINIC, "C-9", &JON, NULL, a);
    feed_ok(h2, "f3", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP2, "S-5", &JOHN, NULL, a);
    subscribe_ok(c, "s1", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_ALL_MY_PATIENTS, NULL, 0, a);
    subscribe_ok(h2, "s2", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_ALL_MY_PATIENTS, NULL, 0, a);
    struct inbox stuck, in;
    receive_start(h2, "r0", &stuck, a); /* st-mary receives and never acknowledges */
    receive_start(c, "r1", &in, a);
    enum { EVENTS = 200 };
    uint64_t worst_ms = 0;
    for (int i = 0; i < EVENTS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "e%d", i);
        uint64_t t0 = hie_time_mono_ns();
        cr_assert_eq(adt_ok(h, id, HIE__V1__ADT_EVENT__ADT_A02, "V1", a)->notified, 2u);
        Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(d, "event %d reaches the clinic", i + 1);
        uint64_t ms = (hie_time_mono_ns() - t0) / 1000000u;
        worst_ms = ms > worst_ms ? ms : worst_ms;
        cr_assert_eq(ack(c, id, &d->seq, 1, &in, a), 1u);
    }
    cr_log_info("clinic: %d events, worst event-to-delivery %lu ms, while st-mary holds %d "
        "unacknowledged (its window)", EVENTS, (unsigned long)worst_ms, 8);
    cr_assert_lt(worst_ms, 1000u, "no waiting on the stuck subscriber");
    hie_client_destroy(&h);
    hie_client_destroy(&h2);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* The clinic receives and nothing comes (withheld at delivery); the node logs the reason
 * (NULL: not checked). */
static void
expect_withheld(itest_node_t *n, hie_client_t *c, hie_arena_t *a, const char *reason)
{
    struct inbox in;
    receive_start(c, "rw", &in, a);
    Hie__V1__Delivery *d = next_delivery(c, &in, 3000, a);
    cr_assert_null(d, "delivered: %s (subscription %s, euid %s)", d != NULL ? d->message_id :
        "", d != NULL ? d->subscription_id : "", d != NULL ? d->euid : "");
    if (reason != NULL) {
        char want[64];
        snprintf(want, sizeof(want), "reason=%s", reason);
        cr_assert(itest_log_wait(n, want, 5000), "%s", want);
    }
}

/* A notification waiting for an offline clinic is about the sender's patient (H-1), reached
 * through the clinic's record (C-9) linked to it. Unlinked meanwhile (C-9 is someone else),
 * it is withheld at delivery: delivery decided on C-9's new EUID, whose consent is not H-1's,
 * and delivered H-1's admission to a clinic that no longer has that patient. */
Test(adt, a_notification_is_withheld_once_the_subscribers_record_is_unlinked, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    subscribe_ok(c, "s1", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a);
    cr_assert_eq(adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V1", a)->notified, 1u);
    feed_ok(c, "u1", HIE__V1__FEED_ACTION__FEED_UNLINK, CLINIC, "C-9", NULL, NULL, a);
    expect_withheld(&n, c, a, "unlinked");
    fx_stop(&n, &a, &h, &c);
}

/* A replay decides on the patient as it is now: after an A40 merge moved H-1 under H-2's EUID,
 * H-2's directive excluding the clinic withholds the replayed admission. The replay decided
 * on the EUID the event had (no members left: only the implicit policy), queued it and
 * audited it as permitted. */
Test(adt, a_replay_decides_on_the_patients_euid_now, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    feed_ok(h, "f3", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-2", &MARIA, NULL, a);
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", subscribe_ok(c, "s1",
        HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a));
    adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V1", a);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 1u);
    Hie__V1__Delivery *d = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(d);
    cr_assert_eq(ack(c, "k1", &d->seq, 1, &in, a), 1u);
    feed_ok(h, "m1", HIE__V1__FEED_ACTION__FEED_MERGE, HOSP, "H-2", NULL, "H-1", a);
    struct dir x;
    dir_init(&x, HOSP, "H-2", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    consent_submit_ok(h, "c1", &x, a);
    hie_envelope_t *r = replay(c, "p1", sid, 1, &in, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_REPLAY_REPLY);
    cr_assert_eq(r->replay_reply->queued, 0u, "replayed against the merged patient's consent");
    cr_assert_null(next_delivery(c, &in, 1500, a));
    fx_stop(&n, &a, &h, &c);
}

/* Unsubscribed while a notification waited: it is not delivered (withheld, audited). It was:
 * unsubscribe dropped the subscription but not its queued notifications. */
Test(adt, a_notification_waiting_when_its_subscription_ends_is_not_delivered, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    char s[64];
    snprintf(s, sizeof(s), "%s", subscribe_ok(c, "s1",
        HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a));
    cr_assert_eq(adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V1", a)->notified, 1u);
    hie_envelope_t req;
    Hie__V1__Unsubscribe u = HIE__V1__UNSUBSCRIBE__INIT;
    req_init(&req, "u1");
    u.subscription_id = s;
    req.body_case = HIE__V1__ENVELOPE__BODY_UNSUBSCRIBE;
    req.unsubscribe = &u;
    cr_assert_eq(call(c, &req, a)->body_case, HIE__V1__ENVELOPE__BODY_UNSUBSCRIBE_REPLY);
    expect_withheld(&n, c, a, "unsubscribed");
    fx_stop(&n, &a, &h, &c);
}

/* A payer's notification is decided at delivery under payment, as at the fan-out: a payment
 * restriction filed while it waited withholds it. Delivery decided it under treatment. */
Test(adt, a_payers_waiting_notification_is_decided_under_payment, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    subscribe_ok(c, "s1", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_ALL_MY_PATIENTS, NULL, 0, a);
    char out[4096];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "org roles %s --roles payer", CLINIC), 0,
        "%s", out);
    struct dir x0;
    dir_init(&x0, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    consent_submit_ok(h, "c0", &x0, a);
    cr_assert_eq(adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V1", a)->notified, 1u);
    struct dir x;
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, NULL, HIE__V1__PURPOSE_OF_USE__PURPOSE_PAYMENT);
    consent_submit_ok(h, "c1", &x, a);
    hie_client_destroy(&c);
    c = itest_client(&n, CLINIC);
    expect_withheld(&n, c, a, NULL); /* a payer's, after a payment restriction */
    fx_stop(&n, &a, &h, &c);
}

/* An event without its time (EVN-2), or dated days ahead, is refused: consent's data periods
 * read it, and an unset time matched none (a deny of a period let through). */
Test(adt, an_event_needs_its_time, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    int64_t times[2] = {0, hie_time_wall_ms() + 3ll * 24 * 3600 * 1000};
    for (int i = 0; i < 2; i++) {
        hie_envelope_t req;
        Hie__V1__AdtRequest r = HIE__V1__ADT_REQUEST__INIT;
        Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
        Hie__V1__Encounter en = HIE__V1__ENCOUNTER__INIT;
        char id[8];
        snprintf(id, sizeof(id), "t%d", i);
        req_init(&req, id);
        req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
        pid.org_id = MUT(HOSP);
        pid.mrn = MUT("H-1");
        en.visit_id = MUT("V9");
        r.event = HIE__V1__ADT_EVENT__ADT_A01;
        r.patient = &pid;
        r.encounter = &en;
        r.event_ms = times[i];
        req.body_case = HIE__V1__ENVELOPE__BODY_ADT;
        req.adt = &r;
        hie_envelope_t *e = call(h, &req, a);
        cr_assert_eq(e->body_case, HIE__V1__ENVELOPE__BODY_ERROR, "time %d", i);
        cr_assert_eq(e->error->code, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST);
        cr_assert_str_eq(e->error->field, "event_ms");
    }
    fx_stop(&n, &a, &h, &c);
}

/* A push cannot take a notification's message id: a push under request id "e1:sub-N" and
 * the notice of ADT request "e1" for subscription sub-N both reach the clinic, as two
 * messages. Their ids were equal (org:e1:sub-N), and a recipient drops an id it has seen. */
Test(adt, a_push_id_never_equals_a_notifications, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    char sid[64], pid_s[96];
    snprintf(sid, sizeof(sid), "%s", subscribe_ok(c, "s1",
        HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a));
    cr_assert_eq(adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V1", a)->notified, 1u);
    snprintf(pid_s, sizeof(pid_s), "e1:%s", sid);
    hie_envelope_t req;
    Hie__V1__PushRequest p = HIE__V1__PUSH_REQUEST__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, pid_s);
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT("H-1");
    d.patient = &pid;
    d.content_type = MUT("text/plain");
    d.content = (ProtobufCBinaryData){4, (uint8_t *)"note"};
    p.recipient_org = MUT(CLINIC);
    p.document = &d;
    req.body_case = HIE__V1__ENVELOPE__BODY_PUSH;
    req.push = &p;
    cr_assert_eq(call(h, &req, a)->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY);
    struct inbox in;
    cr_assert_eq(receive_start(c, "r1", &in, a), 2u);
    char ids[2][160];
    for (int i = 0; i < 2; i++) {
        Hie__V1__Delivery *dl = next_delivery(c, &in, 5000, a);
        cr_assert_not_null(dl, "delivery %d", i);
        snprintf(ids[i], sizeof(ids[i]), "%s", dl->message_id);
    }
    cr_assert_str_neq(ids[0], ids[1], "one id for a notice and a document: %s", ids[0]);
    fx_stop(&n, &a, &h, &c);
}

/* The clinic merges its record C-9 into C-10 (A40): the roster that named C-9 names C-10 now,
 * and the clinic still hears of the patient. The roster kept C-9's identity, which no EUID
 * holds any more: the clinic stopped hearing, silently. */
Test(adt, a_roster_follows_its_record_into_a_merge, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    feed_ok(c, "f3", HIE__V1__FEED_ACTION__FEED_CREATE, CLINIC, "C-10", &JON, NULL, a);
    subscribe_ok(c, "s1", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a);
    cr_assert_eq(adt_ok(h, "e1", HIE__V1__ADT_EVENT__ADT_A01, "V1", a)->notified, 1u);
    feed_ok(c, "m1", HIE__V1__FEED_ACTION__FEED_MERGE, CLINIC, "C-10", NULL, "C-9", a);
    cr_assert_eq(adt_ok(h, "e2", HIE__V1__ADT_EVENT__ADT_A03, "V1", a)->notified, 1u,
        "the subscription lost the patient in the merge");
    fx_stop(&n, &a, &h, &c);
}

/* An A40 merge comes with the survivor's PID (demographics), as HL7 sends it: the merge is
 * made. It was refused BAD_REQUEST "demographics: only for create and update". */
Test(adt, an_a40_with_the_survivors_demographics_merges, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    feed_ok(h, "f3", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-2", &MARIA, NULL, a);
    hie_envelope_t req;
    Hie__V1__AdtRequest r = HIE__V1__ADT_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__Demographics d = HIE__V1__DEMOGRAPHICS__INIT;
    char *given[1] = {MUT(MARIA.given)}, *family[1] = {MUT(MARIA.family)};
    req_init(&req, "m40");
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT("H-2");
    d.n_given = d.n_family = 1;
    d.given = given;
    d.family = family;
    d.birth_date = MUT(MARIA.dob);
    r.event = HIE__V1__ADT_EVENT__ADT_A40;
    r.patient = &pid;
    r.demographics = &d;
    r.prior_mrn = MUT("H-1");
    r.event_ms = 1764000000000;
    req.body_case = HIE__V1__ENVELOPE__BODY_ADT;
    req.adt = &r;
    hie_envelope_t *e = call(h, &req, a);
    cr_assert_eq(e->body_case, HIE__V1__ENVELOPE__BODY_ADT_REPLY, "%s",
        e->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? e->error->message : "");
    /* H-1 is merged: feeding it again is refused as a retired MRN */
    hie_envelope_t *f = feed(h, "f4", HIE__V1__FEED_ACTION__FEED_UPDATE, HOSP, "H-1", &JOHN,
        NULL, a);
    cr_assert_eq(f->body_case, HIE__V1__ENVELOPE__BODY_ERROR);
    fx_stop(&n, &a, &h, &c);
}

/* An ADT's patient update has a dedup key of its own: sent under the id of an earlier MpiFeed
 * (of another patient), the admission was answered with that feed's EUID and notified that
 * patient's subscribers, and John's clinic heard nothing. */
Test(adt, an_admission_under_an_earlier_feeds_id_updates_its_own_patient, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a;
    hie_client_t *h, *c;
    fx_start(&n, &a, &h, &c);
    char john[64];
    snprintf(john, sizeof(john), "%s", feed_ok(h, "f1", HIE__V1__FEED_ACTION__FEED_UPDATE, HOSP,
        "H-1", &JOHN, NULL, a)->euid);
    feed_ok(h, "x1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-2", &MARIA, NULL, a);
    subscribe_ok(c, "s1", HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS, "C-9", 0, a);
    hie_envelope_t req;
    Hie__V1__AdtRequest r = HIE__V1__ADT_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__Demographics d = HIE__V1__DEMOGRAPHICS__INIT;
    Hie__V1__Encounter en = HIE__V1__ENCOUNTER__INIT;
    char *given[1] = {MUT(JOHN.given)}, *family[1] = {MUT(JOHN.family)};
    req_init(&req, "x1");
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT("H-1");
    d.n_given = d.n_family = 1;
    d.given = given;
    d.family = family;
    d.birth_date = MUT(JOHN.dob);
    en.visit_id = MUT("V900");
    en.patient_class = HIE__V1__PATIENT_CLASS__PATIENT_CLASS_INPATIENT;
    r.event = HIE__V1__ADT_EVENT__ADT_A01;
    r.patient = &pid;
    r.demographics = &d;
    r.encounter = &en;
    r.event_ms = 1764000000000;
    req.body_case = HIE__V1__ENVELOPE__BODY_ADT;
    req.adt = &r;
    hie_envelope_t *e = call(h, &req, a);
    cr_assert_eq(e->body_case, HIE__V1__ENVELOPE__BODY_ADT_REPLY, "%s",
        e->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? e->error->message : "");
    cr_assert_str_eq(e->adt_reply->euid, john, "the admission answered for another patient");
    cr_assert_eq(e->adt_reply->notified, 1u, "John's clinic was not notified");
    /* sent again, the ADT is a repeat of itself: nothing fed or notified twice */
    e = call(h, &req, a);
    cr_assert_eq(e->body_case, HIE__V1__ENVELOPE__BODY_ADT_REPLY);
    cr_assert_str_eq(e->adt_reply->euid, john);
    struct inbox in;
    cr_assert_eq(receive_start(c, "rc", &in, a), 1u, "one notice queued for the clinic");
    Hie__V1__Delivery *dl = next_delivery(c, &in, 5000, a);
    cr_assert_not_null(dl);
    Hie__V1__Notification *nt = notification(dl);
    cr_assert_str_eq(nt->euid, john);
    hie__v1__notification__free_unpacked(nt, NULL);
    fx_stop(&n, &a, &h, &c);
}
