/*
 * test_query.c - the document repository, record query and retrieval against real hie-node
 * processes (issue 5): documents pushed to the repository are listed for any source record
 * of the patient, newest first, filtered by class and date, with the repository listed as an
 * answered source; a document the patient's consent excludes (a PSY label the directive
 * denies) is left out of the list and cannot be retrieved, the same way as an unknown id;
 * every query and retrieval leaves one audit record.
 */
#include "exchange.h"

#include <criterion/criterion.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HOSP "general-hospital"
#define CLINIC "riverside-clinic"

static void
store(hie_client_t *h, const char *id, const char *cls, const char *label, int64_t date_ms,
    const char *content, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__PushRequest p = HIE__V1__PUSH_REQUEST__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    char *labels[1] = {MUT(label)};
    req_init(&req, id);
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT("H-1");
    d.patient = &pid;
    d.content_type = MUT("text/plain");
    d.content = (ProtobufCBinaryData){strlen(content), (uint8_t *)(uintptr_t)content};
    d.title = MUT(id);
    d.class_code = MUT(cls);
    d.date_ms = date_ms;
    d.n_security_labels = label != NULL;
    d.security_labels = labels;
    p.recipient_org = MUT(""); /* the repository */
    p.document = &d;
    req.body_case = HIE__V1__ENVELOPE__BODY_PUSH;
    req.push = &p;
    hie_envelope_t *r = call(h, &req, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "store %s: %s", id,
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
}

static Hie__V1__RecordQueryReply *
query(hie_client_t *c, const char *id, const char *cls, int64_t from, int64_t to,
    hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__RecordQuery q = HIE__V1__RECORD_QUERY__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    char *classes[1] = {MUT(cls)};
    req_init(&req, id);
    pid.org_id = MUT(CLINIC);
    pid.mrn = MUT("C-9");
    q.patient = &pid;
    q.n_class_codes = cls != NULL;
    q.class_codes = classes;
    q.from_ms = from;
    q.to_ms = to;
    req.body_case = HIE__V1__ENVELOPE__BODY_RECORD_QUERY;
    req.record_query = &q;
    hie_envelope_t *r = call(c, &req, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY, "query %s: %s", id,
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    cr_assert_eq(r->record_query_reply->n_sources, 1u);
    cr_assert_str_eq(r->record_query_reply->sources[0]->source, "repository");
    cr_assert_eq(r->record_query_reply->sources[0]->status, HIE__V1__SOURCE_STATUS__SOURCE_OK);
    return r->record_query_reply;
}

static hie_envelope_t *
retrieve(hie_client_t *c, const char *id, const char *doc, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__RetrieveRequest q = HIE__V1__RETRIEVE_REQUEST__INIT;
    req_init(&req, id);
    q.document_id = MUT(doc);
    req.body_case = HIE__V1__ENVELOPE__BODY_RETRIEVE;
    req.retrieve = &q;
    return call(c, &req, a);
}

/* A node with the hospital and the clinic, each holding a record of the same person (H-1,
 * C-9, linked). */
static void
setup2(itest_node_t *n, hie_client_t **h, hie_client_t **c, hie_arena_t *a)
{
    itest_node_init(n, NULL);
    itest_node_start(n);
    itest_register(n, HOSP, "hospital");
    itest_register(n, CLINIC, "clinic");
    *h = itest_client(n, HOSP);
    *c = itest_client(n, CLINIC);
    feed_ok(*h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, a);
    feed_ok(*c, "f2", HIE__V1__FEED_ACTION__FEED_CREATE, CLINIC, "C-9", &JON, NULL, a);
}

/* The end of a test: its clients (s may be NULL), arena and node. */
static void
fx_stop(itest_node_t *n, hie_arena_t **a, hie_client_t **h, hie_client_t **c,
    hie_client_t **s)
{
    hie_client_destroy(h);
    hie_client_destroy(c);
    if (s != NULL) {
        hie_client_destroy(s);
    }
    hie_arena_destroy(a);
    itest_node_cleanup(n);
}

#define D2025_06 1748736000000ll
#define D2026_01 1767225600000ll
#define D2026_02 1769904000000ll

/* A retrieval is decided for the patient the document's record belongs to now: after the
 * hospital unlinks H-1 from the clinic's C-9, H-1's own directive (deny all) withholds the
 * document it pushed while linked. It was decided for the EUID stored at the push (C-9's,
 * with no directive: the implicit opt-out permitted it) and audited under that patient. */
Test(query, retrieval_follows_the_record_to_its_current_euid, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h = NULL, *c = NULL;
    setup2(&n, &h, &c, a);
    store(h, "dA", "discharge-summary", NULL, D2026_01, "discharge A", a);
    hie_envelope_t *r1 = retrieve(c, "g1", HOSP ":dA", a);
    cr_assert_eq(r1->body_case, HIE__V1__ENVELOPE__BODY_RETRIEVE_REPLY, "linked: permitted");
    Hie__V1__MpiFeedReply *u = feed_ok(h, "u1", HIE__V1__FEED_ACTION__FEED_UNLINK, HOSP,
        "H-1", NULL, NULL, a);
    cr_assert_eq(u->outcome, HIE__V1__FEED_OUTCOME__OUTCOME_UNLINKED);
    struct dir x;
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_DENY);
    consent_submit_ok(h, "c1", &x, a);
    hie_envelope_t *r2 = retrieve(c, "g2", HOSP ":dA", a);
    expect_error(r2, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "document_id");
    fx_stop(&n, &a, &h, &c, NULL);
}

/* Retrieval by id decides the patient's identity first, as a record query does: a directive
 * that hides the patient from the clinic (identity) but not from queries left the document
 * retrievable by its id (ids are guessable: sender:request id) while the query hid it. */
Test(query, a_patient_hidden_from_a_query_is_not_retrieved_by_id, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h = NULL, *c = NULL;
    setup2(&n, &h, &c, a);
    store(h, "dA", "discharge-summary", NULL, D2026_01, "discharge A", a);
    cr_assert_eq(retrieve(c, "g1", HOSP ":dA", a)->body_case,
        HIE__V1__ENVELOPE__BODY_RETRIEVE_REPLY, "permitted before the directive");
    struct dir x;
    Hie__V1__ConsentAction identity = HIE__V1__CONSENT_ACTION__CONSENT_ACTION_IDENTITY;
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    x.kid.n_actions = 1;
    x.kid.actions = &identity;
    consent_submit_ok(h, "c1", &x, a);
    cr_assert_eq(query(c, "q1", NULL, 0, 0, a)->n_documents, 0u, "the query hides it");
    expect_error(retrieve(c, "g2", HOSP ":dA", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "document_id");
    fx_stop(&n, &a, &h, &c, NULL);
}

/* A query opens at most 10,000 documents or 64 MiB of a patient's repository in all (it was
 * 10,000 per source record, up to 1,000 records, each document decrypted before the filter),
 * and says when it stopped there. 66 documents of 1 MiB. */
Test(query, a_query_reads_a_bounded_part_of_the_repository_and_says_so, .timeout = 180)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h = NULL, *c = NULL;
    setup2(&n, &h, &c, a);
    static char mib[HIE_PUSH_CONTENT_BYTES_MAX];
    memset(mib, 'm', sizeof(mib) - 1);
    for (int i = 0; i < 66; i++) {
        char id[16];
        snprintf(id, sizeof(id), "big%d", i);
        store(h, id, "lab-report", NULL, D2026_01 + i, mib, a);
        hie_arena_reset(a);
    }
    Hie__V1__RecordQueryReply *r = query(c, "q1", "imaging-report", 0, 0, a);
    cr_assert_eq(r->n_documents, 0u);
    cr_assert(strstr(r->sources[0]->detail, "partial") != NULL, "detail: %s",
        r->sources[0]->detail);
    r = query(c, "q2", "lab-report", 0, 0, a);
    cr_assert_eq(r->n_documents, 64u, "what 64 MiB held: %zu", r->n_documents);
    cr_assert(strstr(r->sources[0]->detail, "partial") != NULL);
    r = query(c, "q3", "lab-report", 0, 0, a); /* and the same again: a bound, not a state */
    cr_assert_eq(r->n_documents, 64u);
    /* consent withholds them all: no "partial" either, which would tell that the patient has
     * 64 MiB of documents the clinic may not see (what consent hides must look absent) */
    struct dir x;
    char *labs[1] = {MUT("lab-report")};
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, NULL, 0);
    x.kid.n_classes = 1;
    x.kid.classes = labs;
    consent_submit_ok(h, "c1", &x, a);
    r = query(c, "q4", NULL, 0, 0, a);
    cr_assert_eq(r->n_documents, 0u);
    cr_assert_str_eq(r->sources[0]->detail, "", "withheld, and said so: %s",
        r->sources[0]->detail);
    fx_stop(&n, &a, &h, &c, NULL);
}

Test(query, repository_documents_listed_filtered_and_consent_applied, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h = NULL, *c = NULL;
    setup2(&n, &h, &c, a);
    store(h, "dA", "discharge-summary", NULL, D2026_01, "discharge A", a);
    store(h, "dB", "progress-note", "PSY", D2026_02, "psychiatry note B", a);
    store(h, "dC", "lab-report", NULL, D2025_06, "lab C", a);
    size_t audits = itest_db_entries_settled(&n, "audit_rec");
    Hie__V1__RecordQueryReply *all = query(c, "q1", NULL, 0, 0, a);
    cr_assert_eq(all->n_documents, 3u, "found through the clinic's MRN");
    cr_assert_str_eq(all->documents[0]->document_id, HOSP ":dB", "newest first");
    cr_assert_str_eq(all->documents[2]->document_id, HOSP ":dC");
    cr_assert_eq(query(c, "q2", "lab-report", 0, 0, a)->n_documents, 1u, "by class");
    cr_assert_eq(query(c, "q3", NULL, D2026_01, 0, a)->n_documents, 2u, "by date");
    hie_envelope_t *ra = retrieve(c, "g1", HOSP ":dA", a);
    cr_assert_eq(ra->body_case, HIE__V1__ENVELOPE__BODY_RETRIEVE_REPLY);
    cr_assert_eq(memcmp(ra->retrieve_reply->document->content.data, "discharge A", 11), 0);
    cr_assert_not_null(ra->retrieve_reply->handling, "consent's marks on the retrieval");
    cr_assert_str_eq(ra->retrieve_reply->handling->confidentiality, "N");
    cr_assert_not_null(all->documents[2]->handling, "and on each listed entry");
    /* the patient's directive (filed by the hospital): everything but psychiatry */
    struct dir x;
    char *psy[1] = {MUT("PSY")};
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, NULL, 0);
    x.kid.n_security_labels = 1;
    x.kid.security_labels = psy;
    consent_submit_ok(h, "c1", &x, a);
    Hie__V1__RecordQueryReply *some = query(c, "q4", NULL, 0, 0, a);
    cr_assert_eq(some->n_documents, 2u, "the PSY note is left out");
    for (size_t i = 0; i < some->n_documents; i++) {
        cr_assert_str_neq(some->documents[i]->document_id, HOSP ":dB");
    }
    hie_envelope_t *rb = retrieve(c, "g2", HOSP ":dB", a);
    hie_envelope_t *rz = retrieve(c, "g3", HOSP ":nope", a);
    expect_error(rb, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "document_id");
    expect_error(rz, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "document_id");
    cr_assert_str_eq(rb->error->message, rz->error->message, "withheld looks like absent");
    /* q1..q4 and g1..g3: one audit record each */
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", audits + 7u, 2000), audits + 7u,
        "one per query and retrieval");
    fx_stop(&n, &a, &h, &c, NULL);
}

/* A document without a class or a date (push takes both as optional) could be of any class
 * and from any time: a patient's deny of imaging reports, or of half a year's data, withholds
 * it, and a document whose class and date are known is decided on them. Before, a provision
 * naming a class or a data period never matched such a document, so it was listed. */
Test(query, a_document_of_unknown_class_or_date_meets_every_deny, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h = NULL, *c = NULL;
    setup2(&n, &h, &c, a);
    store(h, "dA", "", NULL, D2026_01, "no class", a);
    store(h, "dB", "lab-report", NULL, 0, "no date", a);
    store(h, "dC", "lab-report", NULL, D2026_01, "lab", a);
    cr_assert_eq(query(c, "q1", NULL, 0, 0, a)->n_documents, 3u, "no directive (opt-out)");
    struct dir x;
    char *imaging[1] = {MUT("imaging-report")};
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, NULL, 0);
    x.kid.n_classes = 1;
    x.kid.classes = imaging;
    consent_submit_ok(h, "c1", &x, a);
    Hie__V1__RecordQueryReply *q = query(c, "q2", NULL, 0, 0, a);
    cr_assert_eq(q->n_documents, 2u, "the document of unknown class is withheld");
    for (size_t i = 0; i < q->n_documents; i++) {
        cr_assert_str_neq(q->documents[i]->document_id, HOSP ":dA");
    }
    expect_error(retrieve(c, "g1", HOSP ":dA", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "document_id");
    /* a later directive: deny the data of 2025-06..2025-12 (no class condition) */
    Hie__V1__ConsentPeriod dp = HIE__V1__CONSENT_PERIOD__INIT;
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, NULL, 0);
    x.d.date_ms = 1700000000001;
    dp.start_ms = D2025_06;
    dp.end_ms = D2026_01;
    x.kid.data_period = &dp;
    consent_submit_ok(h, "c2", &x, a);
    q = query(c, "q3", NULL, 0, 0, a);
    cr_assert_eq(q->n_documents, 2u, "the document of unknown date is withheld");
    for (size_t i = 0; i < q->n_documents; i++) {
        cr_assert_str_neq(q->documents[i]->document_id, HOSP ":dB");
    }
    expect_error(retrieve(c, "g2", HOSP ":dB", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "document_id");
    cr_assert_eq(retrieve(c, "g3", HOSP ":dA", a)->body_case,
        HIE__V1__ENVELOPE__BODY_RETRIEVE_REPLY, "its date is outside the denied period");
    fx_stop(&n, &a, &h, &c, NULL);
}

/* Forty 1 MiB documents: every one is listed (each is opened on its own, not all at once in
 * the query's memory), and retrieved whole. */
Test(query, a_patient_with_many_large_documents_is_listed_whole, .timeout = 180)
{
    enum { DOCS = 40 };
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h = NULL, *c = NULL;
    setup2(&n, &h, &c, a);
    static char big[HIE_PUSH_CONTENT_BYTES_MAX + 1];
    memset(big, 'z', HIE_PUSH_CONTENT_BYTES_MAX);
    for (int i = 0; i < DOCS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "big%d", i);
        store(h, id, "imaging-report", NULL, D2026_01 + i, big, a);
        hie_arena_reset(a);
    }
    Hie__V1__RecordQueryReply *all = query(c, "q1", NULL, 0, 0, a);
    cr_assert_eq(all->n_documents, (size_t)DOCS);
    cr_assert_eq(all->documents[0]->size, (uint64_t)HIE_PUSH_CONTENT_BYTES_MAX);
    cr_assert_str_eq(all->documents[0]->title, "big39", "newest first");
    char doc[64];
    snprintf(doc, sizeof(doc), "%s", all->documents[DOCS - 1]->document_id);
    hie_envelope_t *r = retrieve(c, "r1", doc, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RETRIEVE_REPLY, "%s",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    cr_assert_eq(r->retrieve_reply->document->content.len, (size_t)HIE_PUSH_CONTENT_BYTES_MAX);
    fx_stop(&n, &a, &h, &c, NULL);
}

#define HOSP2 "st-mary-hospital"

/* st-mary: a responder that receives on its connection. */
static void
responder_on(hie_client_t *r, struct inbox *in, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__ResponderRegister rr = HIE__V1__RESPONDER_REGISTER__INIT;
    req_init(&req, "rr1");
    rr.enabled = true;
    req.body_case = HIE__V1__ENVELOPE__BODY_RESPONDER_REGISTER;
    req.responder_register = &rr;
    cr_assert_eq(call(r, &req, a)->body_case,
        HIE__V1__ENVELOPE__BODY_RESPONDER_REGISTER_REPLY);
    receive_start(r, "rr2", in, a);
}

static Hie__V1__QueryForward *
forward_wait(hie_client_t *r, hie_arena_t *a)
{
    for (int i = 0; i < 20; i++) {
        hie_envelope_t *env = NULL;
        cr_assert_eq(hie_client_recv(r, 5000, a, &env), 0, "forwarded query");
        if (env->body_case == HIE__V1__ENVELOPE__BODY_QUERY_FORWARD) {
            return env->query_forward;
        }
    }
    cr_assert(false, "no forwarded query");
    return NULL;
}

static void
answer(hie_client_t *r, const char *query_id, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__QueryAnswer qa = HIE__V1__QUERY_ANSWER__INIT;
    Hie__V1__DocumentEntry en = HIE__V1__DOCUMENT_ENTRY__INIT;
    Hie__V1__DocumentEntry sud = HIE__V1__DOCUMENT_ENTRY__INIT;
    Hie__V1__DocumentEntry *docs[2] = {&en, &sud};
    char *labels[1] = {MUT("42CFR2")}; /* not a label the consent engine knows */
    req_init(&req, "ans1");
    en.document_id = MUT("st-mary:lab-77");
    en.title = MUT("CBC");
    en.class_code = MUT("lab-report");
    en.date_ms = D2026_02 + 1000;
    sud.document_id = MUT("st-mary:sud-1");
    sud.title = MUT("Counselling note");
    sud.class_code = MUT("progress-note");
    sud.date_ms = D2026_02 + 2000;
    sud.n_security_labels = 1;
    sud.security_labels = labels;
    qa.query_id = MUT(query_id);
    qa.n_documents = 2;
    qa.documents = docs;
    req.body_case = HIE__V1__ENVELOPE__BODY_QUERY_ANSWER;
    req.query_answer = &qa;
    hie_envelope_t *rep = call(r, &req, a);
    cr_assert_eq(rep->body_case, HIE__V1__ENVELOPE__BODY_QUERY_ANSWER_REPLY);
    cr_assert(rep->query_answer_reply->accepted);
}

static void
setup3_with(itest_node_t *n, const itest_opts_t *o, hie_client_t **h, hie_client_t **c,
    hie_client_t **s, hie_arena_t *a)
{
    itest_node_init(n, o);
    itest_node_start(n);
    itest_register(n, HOSP, "hospital");
    itest_register(n, HOSP2, "hospital");
    itest_register(n, CLINIC, "clinic");
    *h = itest_client(n, HOSP);
    *c = itest_client(n, CLINIC);
    *s = itest_client(n, HOSP2);
    feed_ok(*h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, a);
    feed_ok(*c, "f2", HIE__V1__FEED_ACTION__FEED_CREATE, CLINIC, "C-9", &JON, NULL, a);
    feed_ok(*s, "f3", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP2, "S-5", &JOHN, NULL, a);
    store(*h, "dA", "discharge-summary", NULL, D2026_01, "discharge A", a);
}

static void
setup3(itest_node_t *n, hie_client_t **h, hie_client_t **c, hie_client_t **s, hie_arena_t *a)
{
    itest_opts_t o = {.responder_timeout_ms = 700};
    setup3_with(n, &o, h, c, s, a);
}

/* setup3, with st-mary registered as a responder receiving on its connection. */
static void
setup3_responder(itest_node_t *n, hie_client_t **h, hie_client_t **c, hie_client_t **s,
    struct inbox *in, hie_arena_t *a)
{
    setup3(n, h, c, s, a);
    responder_on(*s, in, a);
}

/* A record query about the clinic's mrn (limit 0: the node's default). */
static void
query_send_mrn_limit(hie_client_t *c, const char *id, const char *mrn, uint32_t limit)
{
    hie_envelope_t req;
    Hie__V1__RecordQuery q = HIE__V1__RECORD_QUERY__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, id);
    pid.org_id = MUT(CLINIC);
    pid.mrn = MUT(mrn);
    q.patient = &pid;
    q.limit = limit;
    req.body_case = HIE__V1__ENVELOPE__BODY_RECORD_QUERY;
    req.record_query = &q;
    cr_assert_eq(hie_client_send(c, &req), 0);
}

/* The record query about C-9. */
static void
query_send_limit(hie_client_t *c, const char *id, uint32_t limit)
{
    query_send_mrn_limit(c, id, "C-9", limit);
}

static void
query_send(hie_client_t *c, const char *id)
{
    query_send_limit(c, id, 0);
}

static void
query_send_mrn(hie_client_t *c, const char *id, const char *mrn)
{
    query_send_mrn_limit(c, id, mrn, 0);
}

Test(query, a_responder_answers_and_both_sources_are_listed, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    struct inbox in;
    setup3_responder(&n, &h, &c, &s, &in, a);
    query_send(c, "q1");
    Hie__V1__QueryForward *f = forward_wait(s, a);
    cr_assert_str_eq(f->requester_org, CLINIC);
    const char *nonce = strrchr(f->query_id, '.');
    cr_assert(nonce != NULL && strlen(nonce + 1) == 16 && strspn(nonce + 1,
        "0123456789abcdef") == 16, "64 random bits in the query id: %s", f->query_id);
    cr_assert_eq(f->n_patient_ids, 1u);
    cr_assert_str_eq(f->patient_ids[0]->mrn, "S-5", "st-mary's own MRN");
    answer(s, f->query_id, a);
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    Hie__V1__RecordQueryReply *qr = r->record_query_reply;
    cr_assert_eq(qr->n_documents, 2u, "the repository's and st-mary's; the document with "
        "an unknown label is withheld");
    cr_assert_str_eq(qr->documents[0]->document_id, "st-mary:lab-77");
    cr_assert_str_eq(qr->documents[0]->source, HOSP2);
    cr_assert_eq(qr->n_sources, 2u);
    cr_assert_eq(qr->sources[1]->status, HIE__V1__SOURCE_STATUS__SOURCE_OK);
    fx_stop(&n, &a, &h, &c, &s);
}

/* A responder's entry whose class the consent engine does not know (its own code for an
 * imaging report) is decided as any class: the patient's deny of imaging reports withholds
 * it, as it does the entry named with the vocabulary's code. Before, an unknown class was
 * decided as "other" and the entry was listed. */
Test(query, a_responders_entry_of_an_unknown_class_meets_a_class_deny, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    struct inbox in;
    setup3_responder(&n, &h, &c, &s, &in, a);
    struct dir x;
    char *imaging[1] = {MUT("imaging-report")};
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, NULL, 0);
    x.kid.n_classes = 1;
    x.kid.classes = imaging;
    consent_submit_ok(h, "c1", &x, a);
    query_send(c, "q1");
    Hie__V1__QueryForward *f = forward_wait(s, a);
    hie_envelope_t req;
    Hie__V1__QueryAnswer qa = HIE__V1__QUERY_ANSWER__INIT;
    Hie__V1__DocumentEntry e1 = HIE__V1__DOCUMENT_ENTRY__INIT, e2 = HIE__V1__DOCUMENT_ENTRY__INIT;
    Hie__V1__DocumentEntry e3 = HIE__V1__DOCUMENT_ENTRY__INIT, *docs[3] = {&e1, &e2, &e3};
    req_init(&req, "ans1");
    e1.document_id = MUT("st-mary:img-1");
    e1.class_code = MUT("imaging-report");
    e2.document_id = MUT("st-mary:img-2");
    e2.class_code = MUT("LOINC:18748-4");
    e3.document_id = MUT("st-mary:lab-1");
    e3.class_code = MUT("lab-report");
    e1.date_ms = e2.date_ms = e3.date_ms = D2026_02;
    qa.query_id = f->query_id;
    qa.n_documents = 3;
    qa.documents = docs;
    req.body_case = HIE__V1__ENVELOPE__BODY_QUERY_ANSWER;
    req.query_answer = &qa;
    cr_assert_eq(call(s, &req, a)->body_case, HIE__V1__ENVELOPE__BODY_QUERY_ANSWER_REPLY);
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    Hie__V1__RecordQueryReply *qr = r->record_query_reply;
    for (size_t i = 0; i < qr->n_documents; i++) {
        cr_assert(strstr(qr->documents[i]->document_id, "img") == NULL, "listed: %s",
            qr->documents[i]->document_id);
    }
    bool lab = false;
    for (size_t i = 0; i < qr->n_documents; i++) {
        lab |= strcmp(qr->documents[i]->document_id, "st-mary:lab-1") == 0;
    }
    cr_assert(lab, "the lab report is listed");
    fx_stop(&n, &a, &h, &c, &s);
}

/* The query's limit holds for every source together: with limit 1 and the repository's one
 * document, the responder's entries are neither decided nor listed (8 responders' 1,000
 * entries each were all decided whatever the limit). */
Test(query, the_limit_covers_the_responders_entries_too, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    struct inbox in;
    setup3_responder(&n, &h, &c, &s, &in, a);
    query_send_limit(c, "q1", 1);
    Hie__V1__QueryForward *f = forward_wait(s, a);
    answer(s, f->query_id, a);
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    cr_assert_eq(r->record_query_reply->n_documents, 1u, "the limit: %zu documents",
        r->record_query_reply->n_documents);
    cr_assert_neq(strcmp(r->record_query_reply->documents[0]->source, HOSP2), 0,
        "the repository's document, listed first by the scan");
    const Hie__V1__RecordQueryReply *qr = r->record_query_reply;
    cr_assert_eq(qr->n_sources, 2u);
    cr_assert_str_eq(qr->sources[1]->source, HOSP2);
    cr_assert_eq(qr->sources[1]->status, HIE__V1__SOURCE_STATUS__SOURCE_OK);
    cr_assert(strstr(qr->sources[1]->detail, "partial") != NULL, "the cut is said: '%s'",
        qr->sources[1]->detail);
    fx_stop(&n, &a, &h, &c, &s);
}

/* A forward tells the responder who asks (requester, purpose) about which of its patients:
 * its audit record is committed before it goes. The node killed (-9) the moment the responder
 * has the forward, before any answer: after the restart the record is there (there was
 * none: the query's one record is written when it completes). */
Test(query, a_forward_is_audited_before_the_responder_sees_it, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    struct inbox in;
    setup3_responder(&n, &h, &c, &s, &in, a);
    size_t audits = itest_db_entries_settled(&n, "audit_rec");
    query_send(c, "q1");
    Hie__V1__QueryForward *f = forward_wait(s, a);
    cr_assert_str_eq(f->requester_org, CLINIC);
    cr_assert_eq(itest_node_stop(&n, SIGKILL), 128 + SIGKILL);
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_client_destroy(&s);
    itest_node_start(&n);
    cr_assert_eq(itest_db_entries_settled(&n, "audit_rec"), audits + 1u,
        "the forward's record survived the kill");
    char out[4096];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "audit verify"), 0, "%s", out);
    /* the auditor's view: a forward of the clinic's query to st-mary */
    itest_register(&n, "state-auditor", "auditor");
    cr_assert_eq(itest_hie(&n, "state-auditor", out, sizeof(out), "audit report org-access "
        "--org-id %s --format csv", CLINIC), 0, "%s", out);
    cr_assert(strstr(out, "," HOSP2 ",treatment,query-forward,") != NULL, "%s", out);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* A ResponderRegister under the id of the member's earlier feed is refused as such
 * (BAD_REQUEST, the id is another kind's): it was answered UNAVAILABLE "send it again", and
 * a member doing so looped for ever. */
Test(query, a_responder_register_under_another_requests_id_says_why, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    setup3(&n, &h, &c, &s, a);
    hie_envelope_t req;
    Hie__V1__ResponderRegister rr = HIE__V1__RESPONDER_REGISTER__INIT;
    req_init(&req, "f3"); /* st-mary's feed in setup3 */
    rr.enabled = true;
    req.body_case = HIE__V1__ENVELOPE__BODY_RESPONDER_REGISTER;
    req.responder_register = &rr;
    hie_envelope_t *r = call(s, &req, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_ERROR);
    cr_assert_eq(r->error->code, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "%d %s",
        (int)r->error->code, r->error->message);
    fx_stop(&n, &a, &h, &c, &s);
}

/* Past query.max_responders (here 1) a responder with a record of the patient is not asked,
 * and the reply says so: the requester knows the list is not every source there is. */
Test(query, responders_past_the_limit_are_listed_as_not_asked, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    itest_opts_t o = {.responder_timeout_ms = 500, .max_responders = 1};
    setup3_with(&n, &o, &h, &c, &s, a);
    struct inbox in_h, in_s;
    responder_on(h, &in_h, a);
    responder_on(s, &in_s, a);
    query_send(c, "q1");
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    Hie__V1__RecordQueryReply *qr = r->record_query_reply;
    cr_assert_eq(qr->n_sources, 3u, "the repository, the one asked, the one not asked");
    cr_assert_str_eq(qr->sources[0]->source, "repository");
    const Hie__V1__SourceResult *asked = qr->sources[1], *not = qr->sources[2];
    cr_assert_eq(asked->status, HIE__V1__SOURCE_STATUS__SOURCE_TIMEOUT, "asked, no answer");
    cr_assert_eq(not->status, HIE__V1__SOURCE_STATUS__SOURCE_NOT_ASKED);
    cr_assert(strcmp(asked->source, not->source) != 0);
    cr_assert(strcmp(not->source, HOSP) == 0 || strcmp(not->source, HOSP2) == 0, "%s",
        not->source);
    cr_assert_str_eq(not->detail, "not asked: a query asks at most 1 responder");
    fx_stop(&n, &a, &h, &c, &s);
}

/* A suspended responder is not asked (it was told who asks about whom, and the query waited
 * out its deadline): the reply comes at once with the repository alone. */
Test(query, a_suspended_responder_is_not_asked, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    struct inbox in;
    setup3_responder(&n, &h, &c, &s, &in, a);
    char out[1024];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "org suspend " HOSP2), 0, "%s", out);
    uint64_t t0 = hie_time_mono_ns();
    query_send(c, "q1");
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    uint64_t ms = (hie_time_mono_ns() - t0) / 1000000u;
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    cr_assert_eq(r->record_query_reply->n_sources, 1u, "the repository alone");
    cr_assert(ms < 650, "waited for the suspended responder: %lu ms", ms);
    fx_stop(&n, &a, &h, &c, &s);
}

/* A responder the patient's consent excludes is not asked either: the forward told it which
 * member asks about its patient, and why. The reply comes at once, as if it held nothing. */
Test(query, a_responder_the_patient_excluded_is_not_asked, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    struct inbox in;
    setup3_responder(&n, &h, &c, &s, &in, a);
    struct dir x; /* everyone but st-mary, the responder */
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, HOSP2, 0);
    consent_submit_ok(h, "c1", &x, a);
    uint64_t t0 = hie_time_mono_ns();
    query_send(c, "q1");
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    uint64_t ms = (hie_time_mono_ns() - t0) / 1000000u;
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    cr_assert_eq(r->record_query_reply->n_sources, 1u, "the repository alone");
    cr_assert(ms < 650, "waited for the excluded responder: %lu ms", ms);
    hie_envelope_t *env = NULL;
    cr_assert_eq(hie_client_recv(s, 300, a, &env), HIE_ETIMEDOUT, "the responder was asked");
    fx_stop(&n, &a, &h, &c, &s);
}

/* A responder's answer over a member document's limits (here a 4 KiB title) is refused and
 * not passed on: the requester sees that source as an error, at once, not the bytes. */
Test(query, an_answer_over_the_limits_is_refused_and_its_source_is_an_error, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    struct inbox in;
    setup3_responder(&n, &h, &c, &s, &in, a);
    query_send(c, "q1");
    Hie__V1__QueryForward *f = forward_wait(s, a);
    static char title[4096];
    memset(title, 'T', sizeof(title) - 1);
    hie_envelope_t req;
    Hie__V1__QueryAnswer qa = HIE__V1__QUERY_ANSWER__INIT;
    Hie__V1__DocumentEntry en = HIE__V1__DOCUMENT_ENTRY__INIT, *docs[1] = {&en};
    req_init(&req, "ans1");
    en.document_id = MUT("st-mary:lab-77");
    en.title = title;
    qa.query_id = f->query_id;
    qa.n_documents = 1;
    qa.documents = docs;
    req.body_case = HIE__V1__ENVELOPE__BODY_QUERY_ANSWER;
    req.query_answer = &qa;
    expect_error(call(s, &req, a), HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "documents");
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    Hie__V1__RecordQueryReply *qr = r->record_query_reply;
    cr_assert_eq(qr->n_documents, 1u, "the repository's document only");
    cr_assert_eq(qr->n_sources, 2u);
    cr_assert_eq(qr->sources[1]->status, HIE__V1__SOURCE_STATUS__SOURCE_ERROR);
    fx_stop(&n, &a, &h, &c, &s);
}

/* A requester may hold at most 16 of a worker's 64 forwarding slots, and a responder that
 * never answers at most 16 waiting requests: 80 queries from the clinic get at least 48
 * OVERLOADED at once, and the hospital's query is answered at once with the silent
 * responder as an error source, instead of waiting out its deadline behind the clinic's. */
Test(query, a_requester_or_a_silent_responder_cannot_hold_every_forwarding_slot,
    .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    setup3(&n, &h, &c, &s, a);
    struct inbox in;
    responder_on(s, &in, a); /* receives, never answers */
    enum { QUERIES = 80 };
    for (int i = 0; i < QUERIES; i++) {
        char id[16];
        snprintf(id, sizeof(id), "q%d", i);
        query_send(c, id);
    }
    for (int i = 0; i < 2 * 16; i++) { /* both workers hold 16 of the clinic's, waiting */
        (void)forward_wait(s, a);
    }
    hie_envelope_t req;
    Hie__V1__RecordQuery q = HIE__V1__RECORD_QUERY__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, "hq1");
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT("H-1");
    q.patient = &pid;
    req.body_case = HIE__V1__ENVELOPE__BODY_RECORD_QUERY;
    req.record_query = &q;
    uint64_t t0 = hie_time_mono_ns();
    hie_envelope_t *hr = call(h, &req, a);
    uint64_t ms = (hie_time_mono_ns() - t0) / 1000000u;
    cr_assert_eq(hr->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    cr_assert(ms < 400, "the hospital waited %lu ms behind the clinic's queries", ms);
    cr_assert_eq(hr->record_query_reply->n_sources, 2u);
    cr_assert_eq(hr->record_query_reply->sources[1]->status,
        HIE__V1__SOURCE_STATUS__SOURCE_ERROR, "the busy responder, as an error");
    unsigned overloaded = 0;
    for (int i = 0; i < QUERIES; i++) {
        hie_envelope_t *r = NULL;
        cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0, "reply %d", i);
        overloaded += r->body_case == HIE__V1__ENVELOPE__BODY_ERROR &&
                      r->error->code == HIE__V1__ERROR_CODE__ERROR_OVERLOADED;
    }
    cr_assert_geq(overloaded, QUERIES - 2 * 16, "%u overloaded", overloaded);
    fx_stop(&n, &a, &h, &c, &s);
}

Test(query, a_silent_responder_is_marked_timeout_at_the_deadline, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    setup3(&n, &h, &c, &s, a);
    struct inbox in;
    responder_on(s, &in, a); /* registered and receiving, never answers */
    uint64_t t0 = hie_time_mono_ns();
    query_send(c, "q1");
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    uint64_t ms = (hie_time_mono_ns() - t0) / 1000000u;
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    Hie__V1__RecordQueryReply *qr = r->record_query_reply;
    cr_assert_eq(qr->n_documents, 1u, "the repository's document only");
    cr_assert_eq(qr->n_sources, 2u);
    cr_assert_eq(qr->sources[0]->status, HIE__V1__SOURCE_STATUS__SOURCE_OK);
    cr_assert_str_eq(qr->sources[1]->source, HOSP2);
    cr_assert_eq(qr->sources[1]->status, HIE__V1__SOURCE_STATUS__SOURCE_TIMEOUT);
    cr_assert(ms >= 650 && ms < 3000, "answered at the 700 ms deadline: %lu ms", ms);
    fx_stop(&n, &a, &h, &c, &s);
}

/* Record queries of about 1 MiB each (an unknown field the node strips), sent in a row. */
struct big_sender {
    hie_client_t *c;
    int n;
    int failed;
};

static void *
big_sender_main(void *arg)
{
    struct big_sender *b = arg;
    static uint8_t pad[3 + 1024 * 1024] = {0x80, 0x80, 0x40}; /* varint 2^20, then 2^20 bytes */
    ProtobufCMessageUnknownField uf = {9999, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, sizeof(pad),
        pad};
    for (int i = 0; i < b->n; i++) {
        hie_envelope_t req;
        Hie__V1__RecordQuery q = HIE__V1__RECORD_QUERY__INIT;
        Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
        char id[16];
        snprintf(id, sizeof(id), "big%d", i);
        req_init(&req, id);
        pid.org_id = MUT(CLINIC);
        pid.mrn = MUT("C-9");
        q.patient = &pid;
        q.base.n_unknown_fields = 1;
        q.base.unknown_fields = &uf;
        req.body_case = HIE__V1__ENVELOPE__BODY_RECORD_QUERY;
        req.record_query = &q;
        b->failed += hie_client_send(b->c, &req) != 0;
    }
    return NULL;
}

/* A member pipelining big requests that wait (here on a silent responder) holds at most
 * HIE_EDGE_INFLIGHT_BYTES_MAX of them in the node: the edge stops reading its connection
 * until replies bring it back under. Without the byte budget 32 of these 1 MiB queries were
 * in the node at once (16 per worker, the forwarding limit), and with 4 MiB frames and a
 * thousand connections the node's memory had no bound. Every query is still answered. */
Test(query, big_requests_in_flight_are_bounded_by_bytes, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    setup3(&n, &h, &c, &s, a); /* responders answer within 700 ms */
    struct inbox in;
    responder_on(s, &in, a); /* receives, never answers */
    struct big_sender b = {c, 40, 0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, big_sender_main, &b), 0);
    unsigned forwarded = 0;
    uint64_t until = hie_time_mono_ns() + 550ull * 1000000u; /* before the first deadline */
    for (;;) {
        uint64_t now = hie_time_mono_ns();
        hie_envelope_t *env = NULL;
        if (now >= until || hie_client_recv(s, (int)((until - now) / 1000000u) + 1, a,
                &env) != 0) {
            break;
        }
        forwarded += env->body_case == HIE__V1__ENVELOPE__BODY_QUERY_FORWARD;
    }
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert(forwarded >= 1 && forwarded <= 16, "%u queries of 1 MiB in the node at once",
        forwarded);
    cr_assert_eq(b.failed, 0);
    for (int i = 0; i < b.n; i++) {
        hie_envelope_t *r = NULL;
        cr_assert_eq(hie_client_recv(c, 10000, a, &r), 0, "reply %d", i);
        cr_assert(r->body_case == HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY ||
            (r->body_case == HIE__V1__ENVELOPE__BODY_ERROR &&
             r->error->code == HIE__V1__ERROR_CODE__ERROR_OVERLOADED), "reply %d: %d", i,
            r->body_case);
        hie_arena_reset(a);
    }
    fx_stop(&n, &a, &h, &c, &s);
}

/* The node's CPU time in clock ticks (utime + stime of /proc/PID/stat). */
static unsigned long
node_cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    cr_assert_not_null(p);
    unsigned long ut = 0, st = 0;
    cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st),
        2);
    return ut + st;
}

/* A member whose reads are paused (its one request in flight waits on a silent responder)
 * half-closes its connection: the node waits without spinning (epoll returned the RDHUP at
 * once, over and over, a core's worth until the request ended; found by review). */
Test(query, a_half_closed_paused_connection_does_not_spin_the_edge, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    itest_opts_t o = {.responder_timeout_ms = 4000, .inflight_max = 1};
    setup3_with(&n, &o, &h, &c, &s, a);
    struct inbox in;
    responder_on(s, &in, a); /* registered and receiving, never answers */
    SSL *ssl = itest_raw_connect(&n, CLINIC);
    cr_assert_not_null(ssl);
    hie_envelope_t req;
    Hie__V1__RecordQuery q = HIE__V1__RECORD_QUERY__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, "q1");
    pid.org_id = MUT(CLINIC);
    pid.mrn = MUT("C-9");
    q.patient = &pid;
    req.body_case = HIE__V1__ENVELOPE__BODY_RECORD_QUERY;
    req.record_query = &q;
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(hie_proto_frame_encode(&req, 1 << 20, &buf, &len), 0);
    cr_assert_eq(SSL_write(ssl, buf, (int)len), (int)len);
    hie_mem_free(buf, len);
    usleep(300 * 1000); /* the query is with the responder; the connection's reads pause */
    cr_assert_eq(shutdown(SSL_get_fd(ssl), SHUT_WR), 0);
    unsigned long t0 = node_cpu_ticks(n.pid);
    usleep(2000 * 1000);
    unsigned long used = node_cpu_ticks(n.pid) - t0;
    cr_log_info("node CPU over 2 s with the peer half-closed: %lu ticks", used);
    cr_assert_lt(used, 60ul, "the node spun: %lu ticks of CPU in 2 s", used);
    itest_raw_close(ssl);
    fx_stop(&n, &a, &h, &c, &s);
}

/* A retrieval of doc from source (a responder, or NULL: the repository), sent without waiting. */
static void
retrieve_send(hie_client_t *c, const char *id, const char *doc, const char *source)
{
    hie_envelope_t req;
    Hie__V1__RetrieveRequest q = HIE__V1__RETRIEVE_REQUEST__INIT;
    req_init(&req, id);
    q.document_id = MUT(doc);
    q.source = MUT(source != NULL ? source : "");
    req.body_case = HIE__V1__ENVELOPE__BODY_RETRIEVE;
    req.retrieve = &q;
    cr_assert_eq(hie_client_send(c, &req), 0);
}

/* The responder returns one document about (org, mrn), labelled label when not NULL. */
static size_t answer_content_bytes; /* 0: "CBC results"; else that many bytes (hostile) */

static void
answer_doc(hie_client_t *r, const char *id, const char *query_id, const char *org,
    const char *mrn, const char *label, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__QueryAnswer qa = HIE__V1__QUERY_ANSWER__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    char *labels[1] = {MUT(label)};
    req_init(&req, id);
    pid.org_id = MUT(org);
    pid.mrn = MUT(mrn);
    d.patient = &pid;
    d.content_type = MUT("text/plain");
    uint8_t *big = answer_content_bytes > 0 ? calloc(1, answer_content_bytes) : NULL;
    d.content = big != NULL ? (ProtobufCBinaryData){answer_content_bytes, big}
                            : (ProtobufCBinaryData){11, (uint8_t *)MUT("CBC results")};
    d.title = MUT("CBC");
    d.class_code = MUT("lab-report");
    d.author_org = MUT(org);
    d.date_ms = D2026_02 + 1000;
    d.n_security_labels = label != NULL;
    d.security_labels = labels;
    qa.query_id = MUT(query_id);
    qa.document = &d;
    req.body_case = HIE__V1__ENVELOPE__BODY_QUERY_ANSWER;
    req.query_answer = &qa;
    hie_envelope_t *rep = call(r, &req, a);
    free(big);
    if (answer_content_bytes > HIE_PUSH_CONTENT_BYTES_MAX) { /* refused, not passed on */
        expect_error(rep, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "document");
        return;
    }
    cr_assert_eq(rep->body_case, HIE__V1__ENVELOPE__BODY_QUERY_ANSWER_REPLY);
    cr_assert(rep->query_answer_reply->accepted);
}

/* The requester's reply to a retrieval forwarded to st-mary, which answers with a document
 * about (org, mrn) labelled label. */
static hie_envelope_t *
retrieve_via(hie_client_t *c, hie_client_t *s, const char *id, const char *org,
    const char *mrn, const char *label, hie_arena_t *a)
{
    retrieve_send(c, id, "st-mary:lab-77", HOSP2);
    Hie__V1__QueryForward *f = forward_wait(s, a);
    cr_assert_str_eq(f->document_id, "st-mary:lab-77");
    cr_assert_eq(f->n_patient_ids, 0u, "the responder says whose document it is");
    char aid[32];
    snprintf(aid, sizeof(aid), "a-%s", id);
    answer_doc(s, aid, f->query_id, org, mrn, label, a);
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    return r;
}

Test(query, a_responder_document_is_retrieved_through_the_broker_with_consent, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    struct inbox in;
    setup3_responder(&n, &h, &c, &s, &in, a);
    size_t audits = itest_db_entries_settled(&n, "audit_rec");
    hie_envelope_t *ok = retrieve_via(c, s, "g1", HOSP2, "S-5", NULL, a);
    cr_assert_eq(ok->body_case, HIE__V1__ENVELOPE__BODY_RETRIEVE_REPLY, "%s",
        ok->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? ok->error->message : "?");
    cr_assert_str_eq(ok->retrieve_reply->document_id, "st-mary:lab-77");
    cr_assert_eq(ok->retrieve_reply->document->content.len, 11u);
    cr_assert_eq(memcmp(ok->retrieve_reply->document->content.data, "CBC results", 11), 0);
    /* a document about a patient that is not st-mary's own is not passed on */
    hie_envelope_t *other = retrieve_via(c, s, "g2", HOSP, "H-1", NULL, a);
    expect_error(other, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "document_id");
    /* the patient's directive (filed by the hospital) withholds psychiatry */
    struct dir x;
    char *psy[1] = {MUT("PSY")};
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, NULL, 0);
    x.kid.n_security_labels = 1;
    x.kid.security_labels = psy;
    consent_submit_ok(h, "c1", &x, a);
    hie_envelope_t *psyr = retrieve_via(c, s, "g3", HOSP2, "S-5", "PSY", a);
    expect_error(psyr, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "document_id");
    cr_assert_str_eq(psyr->error->message, other->error->message, "withheld looks like absent");
    /* a document larger than a member may push (1 MiB) is not passed on */
    answer_content_bytes = HIE_PUSH_CONTENT_BYTES_MAX + 1u;
    hie_envelope_t *huge = retrieve_via(c, s, "g3b", HOSP2, "S-5", NULL, a);
    answer_content_bytes = 0;
    expect_error(huge, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "document_id");
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", audits + 8u, 2000), audits + 8u,
        "one per forward, committed before it, and one per completed retrieval");
    /* no answer: UNAVAILABLE at the deadline; an organization that is no responder */
    uint64_t t0 = hie_time_mono_ns();
    retrieve_send(c, "g4", "st-mary:lab-77", HOSP2);
    (void)forward_wait(s, a);
    hie_envelope_t *late = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &late), 0);
    uint64_t ms = (hie_time_mono_ns() - t0) / 1000000u;
    expect_error(late, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, "source");
    cr_assert(ms >= 650 && ms < 3000, "at the 700 ms deadline: %lu ms", ms);
    retrieve_send(c, "g5", "x", HOSP);
    hie_envelope_t *nr = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &nr), 0);
    expect_error(nr, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "source");
    fx_stop(&n, &a, &h, &c, &s);
}

/* A merged (A40) record's documents stay listed: they are filed under the record they were
 * pushed for, which the merge takes out of the EUID's members. Before, every document of the
 * prior MRN was left out of every query after the merge (retrievable by id all the same). */
Test(query, documents_of_a_merged_record_are_still_listed, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h = NULL, *c = NULL;
    setup2(&n, &h, &c, a);
    store(h, "dA", "discharge-summary", NULL, D2026_01, "discharge A", a);
    cr_assert_eq(query(c, "q1", NULL, 0, 0, a)->n_documents, 1u);
    feed_ok(h, "f3", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-2", &JOHN, NULL, a);
    feed_ok(h, "m1", HIE__V1__FEED_ACTION__FEED_MERGE, HOSP, "H-2", NULL, "H-1", a);
    Hie__V1__RecordQueryReply *q = query(c, "q2", NULL, 0, 0, a);
    cr_assert_eq(q->n_documents, 1u, "the merged record's document is still the patient's");
    cr_assert_str_eq(q->documents[0]->document_id, HOSP ":dA");
    fx_stop(&n, &a, &h, &c, NULL);
}

/* ---- retraction of repository documents ---------------------------------------------------- */

static hie_envelope_t *
retract(hie_client_t *c, const char *id, const char *doc, const char *reason, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__RetractRequest q = HIE__V1__RETRACT_REQUEST__INIT;
    req_init(&req, id);
    q.document_id = MUT(doc);
    q.reason = MUT(reason);
    req.body_case = HIE__V1__ENVELOPE__BODY_RETRACT;
    req.retract = &q;
    return call(c, &req, a);
}

/* The author withdraws a document filed under the wrong patient: record queries stop listing
 * it, a retrieval is NOT_FOUND, its id stays used, and a restart keeps it so. Another member,
 * an unknown id and a second retraction get the same NOT_FOUND (nothing says which). Before,
 * a document stayed in the repository for good: no member or operator could take it out. */
Test(query, an_author_retracts_its_repository_document_for_good, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h = NULL, *c = NULL;
    setup2(&n, &h, &c, a);
    store(h, "dA", "discharge-summary", NULL, D2026_01, "discharge A", a);
    store(h, "dB", "discharge-summary", NULL, D2026_02, "discharge B", a);
    cr_assert_eq(query(c, "q1", NULL, 0, 0, a)->n_documents, 2u);
    expect_error(retract(c, "x1", HOSP ":dA", "", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "document_id");
    expect_error(retract(h, "x2", HOSP ":nope", "", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "document_id");
    cr_assert_eq(query(c, "q2", NULL, 0, 0, a)->n_documents, 2u, "refused: nothing changed");
    hie_envelope_t *r = retract(h, "x4", HOSP ":dA", "filed under the wrong patient", a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RETRACT_REPLY, "%s",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    cr_assert_str_eq(r->retract_reply->document_id, HOSP ":dA");
    cr_assert_gt(r->retract_reply->bytes_released, 11u, "the document and its metadata");
    Hie__V1__RecordQueryReply *q = query(c, "q3", NULL, 0, 0, a);
    cr_assert_eq(q->n_documents, 1u);
    cr_assert_str_eq(q->documents[0]->document_id, HOSP ":dB");
    expect_error(retrieve(c, "g1", HOSP ":dA", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "document_id");
    expect_error(retract(h, "x5", HOSP ":dA", "", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "document_id");
    cr_assert_eq(retract(h, "x4", HOSP ":dA", "filed under the wrong patient", a)->body_case,
        HIE__V1__ENVELOPE__BODY_RETRACT_REPLY, "a repeat is answered as the first time");
    /* the push sent again under its id is a repeat: answered as before, not stored again */
    store(h, "dA", "discharge-summary", NULL, D2026_01, "discharge A", a);
    cr_assert_eq(query(c, "q5", NULL, 0, 0, a)->n_documents, 1u, "still retracted");
    cr_assert(itest_log_contains(&n, "document retracted by its author"));
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    cr_assert_eq(itest_node_stop(&n, SIGTERM), 0);
    itest_node_start(&n);
    c = itest_client(&n, CLINIC);
    h = itest_client(&n, HOSP);
    q = query(c, "q4", NULL, 0, 0, a);
    cr_assert_eq(q->n_documents, 1u, "after a restart");
    expect_error(retrieve(c, "g2", HOSP ":dA", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "document_id");
    /* the first retraction's id with the other document (no reply cache after the restart):
     * a repeat, answered as the first time; it named dB "retracted", and dB stayed listed */
    r = retract(h, "x4", HOSP ":dB", "", a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RETRACT_REPLY);
    cr_assert_str_eq(r->retract_reply->document_id, HOSP ":dA", "the reply names what the "
        "repeat asked, not what was retracted");
    cr_assert_eq(query(c, "q6", NULL, 0, 0, a)->n_documents, 1u, "dB is not retracted");
    fx_stop(&n, &a, &h, &c, NULL);
}

/* A retraction gives the author's share of the repository (delivery.repository_bytes_max)
 * back: a member that hit its share can make room. */
Test(query, a_retraction_gives_the_authors_share_back, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.repository_bytes_max = 1u << 20};
    hie_arena_t *a = arena_new();
    itest_node_init(&n, &o);
    itest_node_start(&n);
    itest_register(&n, HOSP, "hospital");
    hie_client_t *h = itest_client(&n, HOSP), *c = NULL;
    feed_ok(h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, a);
    static char doc[600 * 1024];
    memset(doc, 'x', sizeof(doc) - 1);
    store(h, "r0", "discharge-summary", NULL, D2026_01, doc, a);
    store(h, "r1", "discharge-summary", NULL, D2026_01, doc, a);
    hie_envelope_t req;
    Hie__V1__PushRequest p = HIE__V1__PUSH_REQUEST__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, "r2");
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT("H-1");
    d.patient = &pid;
    d.content_type = MUT("text/plain");
    d.content = (ProtobufCBinaryData){sizeof(doc) - 1, (uint8_t *)doc};
    p.recipient_org = MUT("");
    p.document = &d;
    req.body_case = HIE__V1__ENVELOPE__BODY_PUSH;
    req.push = &p;
    expect_error(call(h, &req, a), HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "recipient_org");
    hie_envelope_t *r = retract(h, "x1", HOSP ":r0", "", a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RETRACT_REPLY);
    cr_assert_gt(r->retract_reply->bytes_released, sizeof(doc) - 1);
    req_init(&req, "r3");
    req.body_case = HIE__V1__ENVELOPE__BODY_PUSH;
    req.push = &p;
    cr_assert_eq(call(h, &req, a)->body_case, HIE__V1__ENVELOPE__BODY_PUSH_REPLY,
        "room again");
    fx_stop(&n, &a, &h, &c, NULL);
}

/* `hie retract` for the author and `hiectl repository retract` for the operator (any
 * organization's document, with a reason); the CLI exits 1 on NOT_FOUND. */
Test(query, retraction_from_the_command_lines, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h = NULL, *c = NULL;
    setup2(&n, &h, &c, a);
    store(h, "dA", "discharge-summary", NULL, D2026_01, "discharge A", a);
    store(h, "dB", "discharge-summary", NULL, D2026_02, "discharge B", a);
    char out[4096];
    cr_assert_eq(itest_hie(&n, CLINIC, out, sizeof(out), "retract %s:dA", HOSP), 1, "%s", out);
    cr_assert(strstr(out, "NOT_FOUND") != NULL, "%s", out);
    cr_assert_eq(itest_hie(&n, HOSP, out, sizeof(out), "retract %s:dA --reason 'wrong patient'",
        HOSP), 0, "%s", out);
    cr_assert(strstr(out, "retracted=" HOSP ":dA bytes_released=") != NULL, "%s", out);
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "repository retract %s:dB --reason 'court "
        "order'", HOSP), 0, "%s", out);
    cr_assert(strstr(out, "applied index=") != NULL && strstr(out, "bytes_released=") != NULL,
        "%s", out);
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "repository retract %s:dB", HOSP), 1, "%s",
        out);
    cr_assert(strstr(out, "NOT_FOUND") != NULL, "%s", out);
    cr_assert(itest_log_contains(&n, "document retracted by the operator"));
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "repository retract ''"), 2, "%s", out);
    cr_assert_eq(itest_hie(&n, HOSP, out, sizeof(out), "retract %s:dB --reason %0300d", HOSP,
        0), 2, "%s", out);
    cr_assert_eq(query(c, "q1", NULL, 0, 0, a)->n_documents, 0u);
    fx_stop(&n, &a, &h, &c, NULL);
}

/* A requester suspended while its query waits on a responder gets the suspension notice and
 * nothing more: the answer the responder gives afterwards does not go out on the cut session
 * (it did, before the connection closed), and the session closes. */
Test(query, a_requester_suspended_during_its_query_gets_no_answer, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    struct inbox in;
    setup3_responder(&n, &h, &c, &s, &in, a);
    query_send(c, "q1");
    Hie__V1__QueryForward *f = forward_wait(s, a);
    char out[1024];
    cr_assert_eq(itest_ctl(&n, out, sizeof(out), "org suspend " CLINIC), 0, "%s", out);
    cr_assert(itest_log_wait(&n, "session cut: organization suspended", 5000));
    answer(s, f->query_id, a);
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0, "the suspension notice");
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_ERROR);
    cr_assert_eq(r->error->code, HIE__V1__ERROR_CODE__ERROR_UNAUTHENTICATED);
    r = NULL;
    int rc = hie_client_recv(c, 3000, a, &r);
    cr_assert(rc != 0, "no more after the notice: %d %d", rc,
        r != NULL ? (int)r->body_case : -1);
    fx_stop(&n, &a, &h, &c, &s);
}

/* A record with more records merged into it than one query reads (64) lists the documents of
 * the first 64, and the repository's source says the answer is partial (it said nothing: the
 * 65th record's documents were left out in silence). */
Test(query, more_merged_records_than_a_query_reads_is_partial, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h = NULL, *c = NULL;
    setup2(&n, &h, &c, a);
    store(h, "dA", "discharge-summary", NULL, D2026_01, "discharge A", a);
    Hie__V1__RecordQueryReply *q = query(c, "q1", NULL, 0, 0, a);
    cr_assert_str_eq(q->sources[0]->detail, "");
    for (unsigned i = 0; i < 65; i++) { /* HIE_MPI_MERGED_INTO_MAX + 1 */
        char mrn[16], cid[16], mid[16];
        snprintf(mrn, sizeof(mrn), "H-m%u", i);
        snprintf(cid, sizeof(cid), "fc%u", i);
        snprintf(mid, sizeof(mid), "fm%u", i);
        feed_ok(h, cid, HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, mrn, &JOHN, NULL, a);
        feed_ok(h, mid, HIE__V1__FEED_ACTION__FEED_MERGE, HOSP, "H-1", NULL, mrn, a);
        hie_arena_reset(a);
    }
    q = query(c, "q2", NULL, 0, 0, a);
    cr_assert_eq(q->n_documents, 1u);
    cr_assert_str_eq(q->sources[0]->detail, "partial: a record of the patient has more records "
        "merged into it than one query reads (64)");
    fx_stop(&n, &a, &h, &c, NULL);
}

/* A responder's own words are not passed on (consent decides none of them): its error shows
 * as "the source could not answer". And a source cut at the query's limit is said to be
 * partial only when an entry consent permits was left out: before, an entry past the limit
 * that consent withholds made the note, which the same query without it did not get. */
Test(query, a_responders_error_text_and_a_partial_note_over_withheld_entries_are_not_passed_on,
    .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    struct inbox in;
    setup3_responder(&n, &h, &c, &s, &in, a);
    struct dir x;
    char *imaging[1] = {MUT("imaging-report")};
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, NULL, 0);
    x.kid.n_classes = 1;
    x.kid.classes = imaging;
    consent_submit_ok(h, "c1", &x, a);
    query_send_limit(c, "q1", 2);
    Hie__V1__QueryForward *f = forward_wait(s, a);
    hie_envelope_t req;
    Hie__V1__QueryAnswer qa = HIE__V1__QUERY_ANSWER__INIT;
    Hie__V1__DocumentEntry e1 = HIE__V1__DOCUMENT_ENTRY__INIT, e2 = HIE__V1__DOCUMENT_ENTRY__INIT;
    Hie__V1__DocumentEntry e3 = HIE__V1__DOCUMENT_ENTRY__INIT, *docs[3] = {&e1, &e2, &e3};
    req_init(&req, "ans1");
    e1.document_id = MUT("st-mary:img-1");
    e1.class_code = MUT("imaging-report");
    e2.document_id = MUT("st-mary:lab-1");
    e3.document_id = MUT("st-mary:lab-2");
    e2.class_code = e3.class_code = MUT("lab-report");
    e1.date_ms = e2.date_ms = e3.date_ms = D2026_02;
    qa.query_id = f->query_id;
    Hie__V1__DocumentEntry *lab_img[2] = {&e2, &e1}; /* the withheld one past the limit */
    qa.n_documents = 2;
    qa.documents = lab_img;
    req.body_case = HIE__V1__ENVELOPE__BODY_QUERY_ANSWER;
    req.query_answer = &qa;
    cr_assert_eq(call(s, &req, a)->body_case, HIE__V1__ENVELOPE__BODY_QUERY_ANSWER_REPLY);
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    Hie__V1__RecordQueryReply *qr = r->record_query_reply;
    cr_assert_eq(qr->n_sources, 2u);
    cr_assert_str_eq(qr->sources[1]->detail, "", "no note over a withheld entry");
    query_send_limit(c, "q3", 2); /* a permitted one past the limit: said */
    f = forward_wait(s, a);
    req_init(&req, "ans3");
    qa.query_id = f->query_id;
    qa.n_documents = 3;
    qa.documents = docs;
    req.body_case = HIE__V1__ENVELOPE__BODY_QUERY_ANSWER;
    req.query_answer = &qa;
    cr_assert_eq(call(s, &req, a)->body_case, HIE__V1__ENVELOPE__BODY_QUERY_ANSWER_REPLY);
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    cr_assert_str_eq(r->record_query_reply->sources[1]->detail,
        "partial: the query's limit was reached before all its entries");
    query_send(c, "q2");
    f = forward_wait(s, a);
    Hie__V1__QueryAnswer err = HIE__V1__QUERY_ANSWER__INIT;
    req_init(&req, "ans2");
    err.query_id = f->query_id;
    err.error = MUT("HIV result restricted");
    req.body_case = HIE__V1__ENVELOPE__BODY_QUERY_ANSWER;
    req.query_answer = &err;
    cr_assert_eq(call(s, &req, a)->body_case, HIE__V1__ENVELOPE__BODY_QUERY_ANSWER_REPLY);
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    qr = r->record_query_reply;
    cr_assert_eq(qr->sources[1]->status, HIE__V1__SOURCE_STATUS__SOURCE_ERROR);
    cr_assert_str_eq(qr->sources[1]->detail, "the source could not answer");
    fx_stop(&n, &a, &h, &c, &s);
}

/* A record query waiting on a responder decides the repository's documents again when it
 * completes: a deny the patient filed (and was acknowledged) during the wait withholds them.
 * They were decided once, when the query came, and went out after the deny. */
Test(query, a_deny_filed_while_a_query_waits_on_a_responder_counts, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    struct inbox in;
    setup3_responder(&n, &h, &c, &s, &in, a);
    query_send(c, "q1");
    Hie__V1__QueryForward *f = forward_wait(s, a);
    struct dir x; /* everyone but the clinic */
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, CLINIC, 0);
    consent_submit_ok(h, "c1", &x, a);
    answer(s, f->query_id, a);
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(c, 5000, a, &r), 0);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    Hie__V1__RecordQueryReply *qr = r->record_query_reply;
    for (size_t i = 0; i < qr->n_documents; i++) {
        cr_assert(strcmp(qr->documents[i]->source, "repository") != 0,
            "the repository's %s went out after the deny", qr->documents[i]->document_id);
    }
    /* the patient is hidden from the clinic now: its own MRN answers as one without records
     * (the identity is decided again too: the responder was named after the deny) */
    cr_assert_eq(qr->n_documents, 0u);
    cr_assert_eq(qr->n_sources, 1u, "a source named after the deny");
    cr_assert_str_eq(qr->sources[0]->source, "repository");
    fx_stop(&n, &a, &h, &c, &s);
}

/* The same for another organization's MRN: a patient hidden from the requester while its
 * query waited on a responder is answered NOT_FOUND in the unknown MRN's words, and the
 * denial is audited. The EUID and the responder's name went out after the deny. */
Test(query, a_patient_hidden_while_a_query_waits_is_not_found, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    hie_client_t *h, *c, *s;
    struct inbox in;
    setup3_responder(&n, &h, &c, &s, &in, a);
    query_send(h, "q1"); /* the hospital asks about the clinic's C-9 */
    Hie__V1__QueryForward *f = forward_wait(s, a);
    size_t audits = itest_db_entries_settled(&n, "audit_rec");
    struct dir x; /* the clinic's patient: everyone but the general hospital */
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, HOSP, 0);
    consent_submit_ok(c, "c1", &x, a);
    answer(s, f->query_id, a);
    hie_envelope_t *r = NULL;
    cr_assert_eq(hie_client_recv(h, 5000, a, &r), 0);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_ERROR, "the query answered after the "
        "deny (%zu documents)", r->body_case == HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY
        ? r->record_query_reply->n_documents : 0u);
    cr_assert_eq(r->error->code, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND);
    cr_assert_str_eq(r->error->field, "patient.mrn");
    query_send_mrn(h, "q2", "C-404");
    hie_envelope_t *absent = NULL;
    cr_assert_eq(hie_client_recv(h, 5000, a, &absent), 0);
    cr_assert_eq(absent->body_case, HIE__V1__ENVELOPE__BODY_ERROR);
    cr_assert_str_eq(r->error->message, absent->error->message, "indistinguishable");
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", audits + 2, 2000), audits + 2,
        "the hidden one audited (its denial) as the unknown one is");
    fx_stop(&n, &a, &h, &c, &s);
}
