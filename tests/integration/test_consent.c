/*
 * test_consent.c - consent on every disclosure and the tamper-evident audit log, against real
 * hie-node processes over mutual TLS (issue 4): a directive that denies one organization hides
 * the patient from PIX and PDQ as if absent, revocation takes effect at the very next message,
 * opt-in and break-glass regimes, malformed directives refused with nothing stored, only
 * auditors pull reports, every report entry proven against a signed checkpoint, a property
 * run (printed seed) where every denied query discloses nothing and every query leaves exactly
 * one audit record committed before the reply (checked with kill -9), and tamper tests on the
 * LMDB file that `hiectl audit verify` must catch.
 */
#include "exchange.h"
#include "hie/audit.h"
#include "hie/consent.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <lmdb.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define HOSP "general-hospital"
#define HOSP2 "st-mary-hospital"
#define CLINIC "riverside-clinic"
#define AUDITOR "state-auditor"
#define PAYER "unregistered-lab" /* registered here as a payer */

static void
setup(itest_node_t *n, const itest_opts_t *o)
{
    itest_node_init(n, o);
    itest_node_start(n);
    itest_register(n, HOSP, "hospital");
    itest_register(n, HOSP2, "hospital");
    itest_register(n, CLINIC, "clinic");
    itest_register(n, AUDITOR, "auditor");
    itest_register(n, PAYER, "payer");
}

/* Entries of a named database in the node's state file (read-only, node running or not). */
static size_t
db_entries(itest_node_t *n, const char *db)
{
    char dir[ITEST_PATH + 16];
    snprintf(dir, sizeof(dir), "%s/state", n->data_dir);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_stat st = {0};
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    if (mdb_dbi_open(txn, db, 0, &dbi) == 0) {
        cr_assert_eq(mdb_stat(txn, dbi, &st), 0);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return st.ms_entries;
}

/* ---- directives ---------------------------------------------------------------------------- */

/* A directive: root permit (or deny) with at most one nested provision of the reverse type. */
struct dir {
    Hie__V1__ConsentDirective d;
    Hie__V1__PatientId pid;
    Hie__V1__ConsentProvision root, kid;
    Hie__V1__ConsentProvision *kids[1];
    Hie__V1__ConsentActor actor;
    Hie__V1__ConsentActor *actors[1];
    Hie__V1__PurposeOfUse purposes[1];
};

static void
dir_init(struct dir *x, const char *org, const char *mrn, Hie__V1__ProvisionType root)
{
    memset(x, 0, sizeof(*x));
    hie__v1__consent_directive__init(&x->d);
    hie__v1__patient_id__init(&x->pid);
    hie__v1__consent_provision__init(&x->root);
    hie__v1__consent_provision__init(&x->kid);
    hie__v1__consent_actor__init(&x->actor);
    x->pid.org_id = MUT(org);
    x->pid.mrn = MUT(mrn);
    x->d.patient = &x->pid;
    x->d.status = HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE;
    x->d.date_ms = 1700000000000;
    x->root.type = root;
    x->d.provision = &x->root;
    x->kids[0] = &x->kid;
    x->actors[0] = &x->actor;
}

/* Adds the nested provision: the reverse of the root, for one org (or any) and a purpose. */
static void
dir_except(struct dir *x, const char *org, Hie__V1__PurposeOfUse purpose)
{
    x->kid.type = x->root.type == HIE__V1__PROVISION_TYPE__PROVISION_PERMIT
                      ? HIE__V1__PROVISION_TYPE__PROVISION_DENY
                      : HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
    if (org != NULL) {
        x->actor.org_id = MUT(org);
        x->kid.n_actors = 1;
        x->kid.actors = x->actors;
    }
    if (purpose != 0) {
        x->purposes[0] = purpose;
        x->kid.n_purposes = 1;
        x->kid.purposes = x->purposes;
    }
    x->root.n_provisions = 1;
    x->root.provisions = x->kids;
}

static hie_envelope_t *
consent_submit(hie_client_t *c, const char *id, struct dir *x, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__ConsentSubmitRequest s = HIE__V1__CONSENT_SUBMIT_REQUEST__INIT;
    req_init(&req, id);
    s.directive = &x->d;
    req.body_case = HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT;
    req.consent_submit = &s;
    return call(c, &req, a);
}

static Hie__V1__ConsentSubmitReply *
consent_submit_ok(hie_client_t *c, const char *id, struct dir *x, hie_arena_t *a)
{
    hie_envelope_t *r = consent_submit(c, id, x, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT_REPLY, "submit %s: %s %s",
        id, r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->field : "");
    return r->consent_submit_reply;
}

static hie_envelope_t *
consent_revoke(hie_client_t *c, const char *id, const char *cid, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__ConsentRevokeRequest q = HIE__V1__CONSENT_REVOKE_REQUEST__INIT;
    req_init(&req, id);
    q.id = MUT(cid);
    req.body_case = HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE;
    req.consent_revoke = &q;
    return call(c, &req, a);
}

static Hie__V1__ConsentListReply *
consent_list(hie_client_t *c, const char *id, const char *org, const char *mrn, bool all,
    hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__ConsentListRequest q = HIE__V1__CONSENT_LIST_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, id);
    pid.org_id = MUT(org);
    pid.mrn = MUT(mrn);
    q.patient = &pid;
    q.include_inactive = all;
    req.body_case = HIE__V1__ENVELOPE__BODY_CONSENT_LIST;
    req.consent_list = &q;
    hie_envelope_t *r = call(c, &req, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_CONSENT_LIST_REPLY, "list: %s",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    return r->consent_list_reply;
}

/* ---- reports ------------------------------------------------------------------------------- */

static hie_envelope_t *
report(hie_client_t *c, const char *id, Hie__V1__AuditReportKind kind, const char *org,
    const char *mrn, uint32_t page, const char *token, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__AuditReportRequest q = HIE__V1__AUDIT_REPORT_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, id);
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_OPERATIONS;
    q.kind = kind;
    if (kind == HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING) {
        pid.org_id = MUT(org);
        pid.mrn = MUT(mrn);
        q.patient = &pid;
    } else if (kind == HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ORG_ACCESS) {
        q.org_id = MUT(org);
    }
    q.page_size = page;
    q.page_token = MUT((token != NULL ? token : ""));
    q.include_excluded = true;
    req.body_case = HIE__V1__ENVELOPE__BODY_AUDIT_REPORT;
    req.audit_report = &q;
    return call(c, &req, a);
}

/* Checks the page as an auditor would: the checkpoint is signed by the node's key and is
 * for the page's head; every entry's leaf is in that tree; every subject is committed in its
 * record. Returns the subjects (unpacked) through fn. */
static void
report_verify(const Hie__V1__AuditReportReply *r)
{
    hie_audit_vkey_t vk;
    hie_audit_checkpoint_t cp;
    const char *v = r->verifier_key;
    cr_assert_eq(hie_audit_vkey_parse(hie_span((const uint8_t *)v, strlen(v)), &vk), 0);
    cr_assert_eq(hie_audit_checkpoint_parse(hie_span((const uint8_t *)r->checkpoint,
        strlen(r->checkpoint)), &cp, NULL), 0, "checkpoint parses");
    cr_assert_eq(hie_audit_checkpoint_verify(&cp, &vk, vk.name), 0, "checkpoint signature");
    cr_assert_eq(cp.head.size, r->tree_size);
    cr_assert_eq(r->root.len, HIE_AUDIT_HASH_BYTES);
    cr_assert_eq(memcmp(cp.head.root.bytes, r->root.data, HIE_AUDIT_HASH_BYTES), 0);
    for (size_t i = 0; i < r->n_entries; i++) {
        const Hie__V1__AuditReportEntry *e = r->entries[i];
        hie_audit_hash_t leaf;
        hie_audit_proof_t proof = {0};
        hie_audit_leaf_hash(hie_span(e->record.data, e->record.len), &leaf);
        cr_assert_leq(e->n_inclusion_proof, HIE_AUDIT_PROOF_HASHES_MAX);
        for (size_t k = 0; k < e->n_inclusion_proof; k++) {
            cr_assert_eq(e->inclusion_proof[k].len, HIE_AUDIT_HASH_BYTES);
            memcpy(proof.hashes[k].bytes, e->inclusion_proof[k].data, HIE_AUDIT_HASH_BYTES);
        }
        proof.count = e->n_inclusion_proof;
        cr_assert_eq(hie_audit_inclusion_verify(e->leaf_index, r->tree_size, &leaf, &proof,
            &cp.head.root), 0, "entry %zu (leaf %" PRIu64 ") is in the tree", i, e->leaf_index);
        Hie__V1__AuditRecord *rec = hie__v1__audit_record__unpack(NULL, e->record.len,
            e->record.data);
        cr_assert_not_null(rec);
        for (size_t s = 0; s < e->n_subjects; s++) {
            uint8_t h[32];
            uint32_t pos = e->subject_positions[s];
            cr_assert_lt(pos, rec->n_subject_commitments);
            crypto_hash_sha256(h, e->subjects[s].data, e->subjects[s].len);
            cr_assert_eq(memcmp(h, rec->subject_commitments[pos].data, 32), 0,
                "subject committed in its leaf");
        }
        hie__v1__audit_record__free_unpacked(rec, NULL);
    }
}

static Hie__V1__AuditSubject *
entry_subject(const Hie__V1__AuditReportEntry *e)
{
    cr_assert_eq(e->n_subjects, 1u);
    Hie__V1__AuditSubject *s = hie__v1__audit_subject__unpack(NULL, e->subjects[0].len,
        e->subjects[0].data);
    cr_assert_not_null(s);
    return s;
}

/* ---- tests ----------------------------------------------------------------------------------- */

/* John at the hospital (H-1) and Jon at the clinic (C-9): the same person, one EUID. */
static const char *
two_records(hie_client_t *h, hie_client_t *c, hie_arena_t *a)
{
    const Hie__V1__FeedAction create = HIE__V1__FEED_ACTION__FEED_CREATE;
    Hie__V1__MpiFeedReply *r1 = feed_ok(h, "f1", create, HOSP, "H-1", &JOHN, NULL, a);
    Hie__V1__MpiFeedReply *r2 = feed_ok(c, "f2", create, CLINIC, "C-9", &JON, NULL, a);
    cr_assert_str_eq(r2->euid, r1->euid, "linked");
    return r1->euid;
}

Test(consent, deny_one_org_hides_the_patient_and_revoke_is_immediate, .timeout = 120)
{
    itest_node_t n;
    setup(&n, NULL); /* opt-out: treatment permitted when no consent is on file */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *h2 = itest_client(&n, HOSP2);
    hie_client_t *c = itest_client(&n, CLINIC);
    two_records(h, c, a);
    cr_assert_eq(pix(h, "p0", CLINIC, "C-9", a)->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    /* the clinic files, for its patient: permit everyone except the general hospital */
    struct dir x;
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, HOSP, 0);
    Hie__V1__ConsentSubmitReply *sr = consent_submit_ok(c, "c1", &x, a);
    cr_assert_eq(sr->version, 1u);
    char cid[64];
    snprintf(cid, sizeof(cid), "%s", sr->id);
    /* the hospital now sees exactly what it would see if the clinic's record did not exist */
    hie_envelope_t *own = pix(h, "p1", HOSP, "H-1", a);
    cr_assert_eq(own->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    cr_assert_eq(own->pix_reply->n_ids, 0u, "no other identifier disclosed");
    hie_envelope_t *hidden = pix(h, "p2", CLINIC, "C-9", a);
    hie_envelope_t *absent = pix(h, "p3", CLINIC, "C-404", a);
    expect_error(hidden, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn");
    expect_error(absent, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn");
    cr_assert_str_eq(hidden->error->message, absent->error->message, "indistinguishable");
    hie_envelope_t *q = pdq(h, "q1", "John", "Smithson", "1970-03-02", a);
    cr_assert_eq(q->body_case, HIE__V1__ENVELOPE__BODY_PDQ_REPLY);
    cr_assert(q->pdq_reply->no_match, "PDQ hides the patient");
    cr_assert_eq(q->pdq_reply->n_candidates, 0u);
    /* another hospital is not named: permitted */
    hie_envelope_t *other = pix(h2, "p4", CLINIC, "C-9", a);
    cr_assert_eq(other->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    cr_assert_eq(other->pix_reply->n_ids, 1u);
    /* revoke: the very next message sees the patient again */
    hie_envelope_t *rv = consent_revoke(c, "c2", cid, a);
    cr_assert_eq(rv->body_case, HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE_REPLY);
    cr_assert_eq(rv->consent_revoke_reply->version, 2u);
    hie_envelope_t *back = pix(h, "p5", CLINIC, "C-9", a);
    cr_assert_eq(back->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY, "revoked: disclosed");
    Hie__V1__ConsentListReply *l = consent_list(c, "l1", CLINIC, "C-9", true, a);
    cr_assert_eq(l->n_directives, 1u);
    cr_assert_eq(l->directives[0]->version, 2u);
    cr_assert_eq(l->directives[0]->status, HIE__V1__CONSENT_STATUS__CONSENT_INACTIVE);
    cr_assert_str_eq(l->directives[0]->patient->mrn, "C-9");
    cr_assert_eq(consent_list(c, "l2", CLINIC, "C-9", false, a)->n_directives, 0u);
    /* the hospital cannot file or list for the clinic's patient */
    expect_error(consent_submit(h, "c3", &x, a), HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, NULL);
    expect_error(consent_revoke(h, "c4", cid, a), HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, "id");
    /* every query left one audit record: p0..p5 and q1 */
    cr_assert_eq(db_entries(&n, "audit_rec"), 7u);
    hie_client_destroy(&h);
    hie_client_destroy(&h2);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

Test(consent, accounting_is_proven_paged_and_only_for_auditors, .timeout = 120)
{
    itest_node_t n;
    setup(&n, NULL);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *h2 = itest_client(&n, HOSP2);
    hie_client_t *c = itest_client(&n, CLINIC), *au = itest_client(&n, AUDITOR);
    const char *euid = two_records(h, c, a);
    struct dir x;
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, HOSP, 0);
    char cid[64];
    snprintf(cid, sizeof(cid), "%s", consent_submit_ok(c, "c1", &x, a)->id);
    expect_error(pix(h, "p1", CLINIC, "C-9", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, NULL);
    cr_assert_eq(pix(h2, "p2", CLINIC, "C-9", a)->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    cr_assert_eq(pix(h2, "p3", HOSP, "H-1", a)->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    /* members are refused; the auditor is answered */
    const Hie__V1__AuditReportKind acct = HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING;
    expect_error(report(h, "r0", acct, CLINIC, "C-9", 10, NULL, a),
        HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, NULL);
    hie_envelope_t *r = report(au, "r1", acct, CLINIC, "C-9", 2, NULL, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY, "report: %s",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    Hie__V1__AuditReportReply *p1 = r->audit_report_reply;
    report_verify(p1);
    cr_assert_eq(p1->n_entries, 2u, "page of 2");
    cr_assert_str_neq(p1->next_page_token, "", "more to come");
    Hie__V1__AuditSubject *s0 = entry_subject(p1->entries[0]);
    cr_assert_str_eq(s0->euid, euid);
    cr_assert(!s0->permitted, "the hospital's query was denied");
    cr_assert_str_eq(s0->reason, "consent-deny");
    cr_assert_str_eq(s0->directive_id, cid);
    cr_assert_eq(s0->directive_version, 1u);
    cr_assert_eq(s0->n_disclosed, 0u, "nothing disclosed");
    Hie__V1__AuditRecord *rec0 = hie__v1__audit_record__unpack(NULL,
        p1->entries[0]->record.len, p1->entries[0]->record.data);
    cr_assert_str_eq(rec0->requester_org, HOSP);
    cr_assert_eq(rec0->action, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PIX);
    cr_assert_eq(rec0->outcome, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND);
    hie__v1__audit_record__free_unpacked(rec0, NULL);
    Hie__V1__AuditSubject *s1 = entry_subject(p1->entries[1]);
    cr_assert(s1->permitted);
    cr_assert_eq(s1->n_disclosed, 1u, "the hospital record's identifier went to st-mary");
    hie__v1__audit_subject__free_unpacked(s0, NULL);
    hie__v1__audit_subject__free_unpacked(s1, NULL);
    char tok[128];
    snprintf(tok, sizeof(tok), "%s", p1->next_page_token);
    hie_envelope_t *r2 = report(au, "r2", acct, CLINIC, "C-9", 2, tok, a);
    cr_assert_eq(r2->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY);
    report_verify(r2->audit_report_reply);
    /* p3, then the auditor's own first page: a report about the patient is a disclosure too */
    cr_assert_eq(r2->audit_report_reply->n_entries, 2u);
    cr_assert_str_eq(r2->audit_report_reply->next_page_token, "");
    Hie__V1__AuditRecord *last = hie__v1__audit_record__unpack(NULL,
        r2->audit_report_reply->entries[1]->record.len,
        r2->audit_report_reply->entries[1]->record.data);
    cr_assert_eq(last->action, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_REPORT);
    cr_assert_str_eq(last->requester_org, AUDITOR);
    hie__v1__audit_record__free_unpacked(last, NULL);
    /* the organization access report lists the hospital's one query */
    hie_envelope_t *o = report(au, "r3", HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ORG_ACCESS,
        HOSP, NULL, 100, NULL, a);
    cr_assert_eq(o->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY);
    report_verify(o->audit_report_reply);
    cr_assert_eq(o->audit_report_reply->n_entries, 1u);
    hie_client_destroy(&h);
    hie_client_destroy(&h2);
    hie_client_destroy(&c);
    hie_client_destroy(&au);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}
