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
#include <string.h>

#define HOSP "general-hospital"
#define CLINIC "riverside-clinic"

static size_t
audit_records(itest_node_t *n)
{
    char dir[ITEST_PATH + 16];
    snprintf(dir, sizeof(dir), "%s/state", n->data_dir);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_stat st = {0};
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 64);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    if (mdb_dbi_open(txn, "audit_rec", 0, &dbi) == 0) {
        cr_assert_eq(mdb_stat(txn, dbi, &st), 0);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return st.ms_entries;
}

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

#define D2025_06 1748736000000ll
#define D2026_01 1767225600000ll
#define D2026_02 1769904000000ll

Test(query, repository_documents_listed_filtered_and_consent_applied, .timeout = 120)
{
    itest_node_t n;
    itest_node_init(&n, NULL);
    itest_node_start(&n);
    itest_register(&n, HOSP, "hospital");
    itest_register(&n, CLINIC, "clinic");
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    feed_ok(h, "f1", HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, "H-1", &JOHN, NULL, a);
    feed_ok(c, "f2", HIE__V1__FEED_ACTION__FEED_CREATE, CLINIC, "C-9", &JON, NULL, a);
    store(h, "dA", "discharge-summary", NULL, D2026_01, "discharge A", a);
    store(h, "dB", "progress-note", "PSY", D2026_02, "psychiatry note B", a);
    store(h, "dC", "lab-report", NULL, D2025_06, "lab C", a);
    size_t audits = audit_records(&n);
    Hie__V1__RecordQueryReply *all = query(c, "q1", NULL, 0, 0, a);
    cr_assert_eq(all->n_documents, 3u, "found through the clinic's MRN");
    cr_assert_str_eq(all->documents[0]->document_id, HOSP ":dB", "newest first");
    cr_assert_str_eq(all->documents[2]->document_id, HOSP ":dC");
    cr_assert_eq(query(c, "q2", "lab-report", 0, 0, a)->n_documents, 1u, "by class");
    cr_assert_eq(query(c, "q3", NULL, D2026_01, 0, a)->n_documents, 2u, "by date");
    hie_envelope_t *ra = retrieve(c, "g1", HOSP ":dA", a);
    cr_assert_eq(ra->body_case, HIE__V1__ENVELOPE__BODY_RETRIEVE_REPLY);
    cr_assert_eq(memcmp(ra->retrieve_reply->document->content.data, "discharge A", 11), 0);
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
    cr_assert_eq(audit_records(&n), audits + 7u, "one per query and retrieval");
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}
