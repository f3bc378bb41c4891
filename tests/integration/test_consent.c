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
#include "../unit/test_util.h"
#include "exchange.h"
#include "hie/audit.h"
#include "hie/consent.h"
#include "hie/mpi.h"
#include "hie/mpi_match.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <jansson.h>
#include <lmdb.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* A directive with kids deny provisions of 32 named organizations each (63-character ids):
 * about 2.1 KiB compiled a provision. */
struct big_dir {
    struct dir x;
    Hie__V1__ConsentProvision kids[8];
    Hie__V1__ConsentProvision *kidp[8];
    Hie__V1__ConsentActor actors[8][32];
    Hie__V1__ConsentActor *actorp[8][32];
    char orgs[8][32][64];
};

static void
big_dir_init(struct big_dir *b, const char *org, const char *mrn, size_t kids)
{
    dir_init(&b->x, org, mrn, HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    for (size_t k = 0; k < kids; k++) {
        hie__v1__consent_provision__init(&b->kids[k]);
        b->kids[k].type = HIE__V1__PROVISION_TYPE__PROVISION_DENY;
        for (size_t i = 0; i < 32; i++) {
            memset(b->orgs[k][i], 'x', 63);
            b->orgs[k][i][63] = '\0';
            int w = snprintf(b->orgs[k][i], 16, "o%zu-%zu-", k, i);
            b->orgs[k][i][w] = 'x'; /* the NUL snprintf wrote */
            hie__v1__consent_actor__init(&b->actors[k][i]);
            b->actors[k][i].org_id = b->orgs[k][i];
            b->actorp[k][i] = &b->actors[k][i];
        }
        b->kids[k].n_actors = 32;
        b->kids[k].actors = b->actorp[k];
        b->kidp[k] = &b->kids[k];
    }
    b->x.root.n_provisions = kids;
    b->x.root.provisions = b->kidp;
}

/* What one member may file is bounded by what it costs every decision about the patient: a
 * directive at most 16 KiB compiled, those on one record (one organization's) together at
 * most 128 KiB. At the old bounds (64 directives of 132 KiB) each decision took 14 ms, and a
 * record query thousands. Another organization's record of the patient keeps its own room:
 * the clinic's full record does not stop the hospital filing an opt-out. */
Test(consent, directives_too_large_alone_or_together_are_refused, .timeout = 120)
{
    itest_node_t n;
    setup(&n, NULL);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    two_records(h, c, a);
    static struct big_dir b;
    big_dir_init(&b, CLINIC, "C-9", 8); /* about 17 KiB */
    hie_envelope_t *r = consent_submit(c, "big", &b.x, a);
    expect_error(r, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "directive.provisions");
    cr_assert(strstr(r->error->message, "16 KiB") != NULL, "%s", r->error->message);
    big_dir_init(&b, CLINIC, "C-9", 7); /* about 15 KiB: eight fit in 128 KiB, nine do not */
    char first[64] = "";
    for (int i = 0; i < 8; i++) {
        char id[16];
        snprintf(id, sizeof(id), "b%d", i);
        Hie__V1__ConsentSubmitReply *sr = consent_submit_ok(c, id, &b.x, a);
        if (i == 0) {
            snprintf(first, sizeof(first), "%s", sr->id);
        }
    }
    r = consent_submit(c, "b8", &b.x, a);
    expect_error(r, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "directive");
    cr_assert(strstr(r->error->message, "128 KiB") != NULL, "%s", r->error->message);
    consent_submit_ok(c, "b7", &b.x, a); /* a retry of an applied id: its result, as before */
    static struct big_dir hb; /* the hospital's, on its own linked record: its own room */
    big_dir_init(&hb, HOSP, "H-1", 7);
    consent_submit_ok(h, "hd", &hb.x, a);
    /* a revoked one no longer counts */
    cr_assert_eq(consent_revoke(c, "rv", first, a)->body_case,
        HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE_REPLY);
    consent_submit_ok(c, "b9", &b.x, a);
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
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
    /* another organization's directive is not found, as an unknown id: ids are log indexes,
     * and FORBIDDEN told any member which of them are others' directives */
    hie_envelope_t *r4 = consent_revoke(h, "c4", cid, a), *r5 = consent_revoke(h, "c5",
        "cns-999999", a);
    expect_error(r4, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "id");
    expect_error(r5, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "id");
    cr_assert_str_eq(r4->error->message, r5->error->message);
    /* every query left one audit record: p0..p5 and q1 */
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", 7u, 2000), 7u);
    hie_client_destroy(&h);
    hie_client_destroy(&h2);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* Closes the four members' sessions, the arena and the node. */
static void
clients_stop(itest_node_t *n, hie_arena_t *a, hie_client_t *h, hie_client_t *h2,
    hie_client_t *c, hie_client_t *au)
{
    hie_client_destroy(&h);
    hie_client_destroy(&h2);
    hie_client_destroy(&c);
    hie_client_destroy(&au);
    hie_arena_destroy(&a);
    itest_node_cleanup(n);
}

/* A page holds what fits half a frame: with limits.frame_bytes_max 8 KiB, 40 disclosures
 * come over several pages (each verified) instead of one reply too large to send. */
Test(consent, a_report_page_stays_within_the_frame_limit, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.frame_bytes_max = 8192};
    setup(&n, &o);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *h2 = itest_client(&n, HOSP2);
    hie_client_t *c = itest_client(&n, CLINIC), *au = itest_client(&n, AUDITOR);
    (void)two_records(h, c, a);
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%d", i);
        cr_assert_eq(pix(h2, id, CLINIC, "C-9", a)->body_case,
            HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    }
    const Hie__V1__AuditReportKind acct = HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING;
    char tok[128] = "";
    size_t total = 0, pages = 0;
    do {
        char id[16];
        snprintf(id, sizeof(id), "r%zu", pages);
        hie_envelope_t *r = report(au, id, acct, CLINIC, "C-9", 100, tok, a);
        cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY, "page %zu: %s",
            pages, r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
        report_verify(r->audit_report_reply);
        cr_assert_gt(r->audit_report_reply->n_entries, 0u);
        total += r->audit_report_reply->n_entries;
        snprintf(tok, sizeof(tok), "%s", r->audit_report_reply->next_page_token);
        pages++;
    } while (tok[0] != '\0' && pages < 20);
    cr_assert_geq(pages, 2u, "one page held them all");
    cr_assert_eq(total, 40u, "the 40 PIX queries, each once: %zu", total);
    clients_stop(&n, a, h, h2, c, au);
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
    /* p3: the report is the log as of its first page */
    cr_assert_eq(r2->audit_report_reply->n_entries, 1u);
    cr_assert_str_eq(r2->audit_report_reply->next_page_token, "");
    /* one kind's token on another kind's report is refused, not read as a position */
    expect_error(report(au, "r2x", HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ORG_ACCESS, HOSP,
        NULL, 2, tok, a), HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, NULL);
    /* a new report also lists the auditor's pages: a report about the patient is a
     * disclosure too */
    hie_envelope_t *r4 = report(au, "r4", acct, CLINIC, "C-9", 100, NULL, a);
    cr_assert_eq(r4->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY);
    report_verify(r4->audit_report_reply);
    cr_assert_eq(r4->audit_report_reply->n_entries, 5u, "p1, p2, p3 and the pages r1, r2");
    Hie__V1__AuditRecord *last = hie__v1__audit_record__unpack(NULL,
        r4->audit_report_reply->entries[4]->record.len,
        r4->audit_report_reply->entries[4]->record.data);
    cr_assert_eq(last->action, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_REPORT);
    cr_assert_str_eq(last->requester_org, AUDITOR);
    hie__v1__audit_record__free_unpacked(last, NULL);
    /* the organization access report lists the hospital's one query */
    hie_envelope_t *o = report(au, "r3", HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ORG_ACCESS,
        HOSP, NULL, 100, NULL, a);
    cr_assert_eq(o->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY);
    report_verify(o->audit_report_reply);
    cr_assert_eq(o->audit_report_reply->n_entries, 1u);
    clients_stop(&n, a, h, h2, c, au);
}

static size_t
btg_entries(hie_client_t *au, const char *id, hie_arena_t *a)
{
    hie_envelope_t *r = report(au, id, HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_BREAK_GLASS,
        NULL, NULL, 100, NULL, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY);
    report_verify(r->audit_report_reply);
    for (size_t i = 0; i < r->audit_report_reply->n_entries; i++) {
        Hie__V1__AuditSubject *s = entry_subject(r->audit_report_reply->entries[i]);
        cr_assert(s->break_glass && s->permitted, "break-glass entries are flagged");
        cr_assert_str_eq(s->reason, "break-glass");
        hie__v1__audit_subject__free_unpacked(s, NULL);
    }
    return r->audit_report_reply->n_entries;
}

Test(consent, opt_in_denies_without_consent_break_glass_overrides_and_is_reported,
    .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.opt_in = true};
    setup(&n, &o);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    hie_client_t *au = itest_client(&n, AUDITOR);
    two_records(h, c, a);
    const Hie__V1__PurposeOfUse treat = HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
    const Hie__V1__PurposeOfUse emerg = HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY;
    /* no consent on file under opt-in: nothing about the patient is disclosed */
    expect_error(pix_for(h, "p1", CLINIC, "C-9", treat, a),
        HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn");
    cr_assert_eq(pix(h, "p2", HOSP, "H-1", a)->pix_reply->n_ids, 0u);
    cr_assert_eq(btg_entries(au, "r1", a), 0u);
    /* emergency treatment breaks the glass: disclosed, flagged, in the break-glass report */
    hie_envelope_t *bg = pix_for(h, "p3", CLINIC, "C-9", emerg, a);
    cr_assert_eq(bg->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    cr_assert_eq(bg->pix_reply->n_ids, 1u);
    cr_assert_eq(btg_entries(au, "r2", a), 1u);
    /* a consent permitting treatment by the hospital opens it without breaking the glass */
    struct dir x;
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_DENY);
    dir_except(&x, HOSP, treat);
    consent_submit_ok(c, "c1", &x, a);
    cr_assert_eq(pix_for(h, "p4", CLINIC, "C-9", treat, a)->body_case,
        HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    cr_assert_eq(btg_entries(au, "r3", a), 1u, "no new break-glass");
    /* a break-glass report shows the patient to the auditor: its own audit record names them,
     * so the patient's accounting lists it (r2 and r3 showed the entry; r1 was empty) */
    hie_envelope_t *acc = report(au, "r4", HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING,
        CLINIC, "C-9", 100, NULL, a);
    cr_assert_eq(acc->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY);
    size_t reports = 0;
    for (size_t i = 0; i < acc->audit_report_reply->n_entries; i++) {
        const ProtobufCBinaryData *b = &acc->audit_report_reply->entries[i]->record;
        Hie__V1__AuditRecord *rec = hie__v1__audit_record__unpack(NULL, b->len, b->data);
        cr_assert_not_null(rec);
        reports += rec->action == HIE__V1__AUDIT_ACTION__AUDIT_ACTION_REPORT;
        hie__v1__audit_record__free_unpacked(rec, NULL);
    }
    cr_assert_eq(reports, 2u, "the break-glass reports that showed the patient");
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_client_destroy(&au);
    itest_node_cleanup(&n);
    /* where the regime forbids break-glass, emergency purpose changes nothing */
    itest_opts_t o2 = {.opt_in = true, .no_break_glass = true};
    setup(&n, &o2);
    h = itest_client(&n, HOSP);
    c = itest_client(&n, CLINIC);
    two_records(h, c, a);
    expect_error(pix_for(h, "p5", CLINIC, "C-9", emerg, a),
        HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn");
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* A record query for (org, mrn), or for euid when mrn is NULL. */
static hie_envelope_t *
record_query(hie_client_t *c, const char *id, const char *org, const char *mrn,
    const char *euid, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__RecordQuery q = HIE__V1__RECORD_QUERY__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, id);
    pid.org_id = MUT(org);
    pid.mrn = MUT(mrn);
    q.patient = mrn != NULL ? &pid : NULL;
    q.euid = MUT(mrn == NULL ? euid : "");
    req.body_case = HIE__V1__ENVELOPE__BODY_RECORD_QUERY;
    req.record_query = &q;
    return call(c, &req, a);
}

/* A record query with no documents and no responders: the answer for a patient the HIE has
 * nothing on. */
static void
expect_nothing(hie_envelope_t *r)
{
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY, "%s",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    cr_assert_eq(r->record_query_reply->n_documents, 0u);
    cr_assert_eq(r->record_query_reply->n_sources, 1u, "the repository only");
}

Test(consent, record_query_hides_a_patient_as_pix_does, .timeout = 120)
{
    itest_node_t n;
    itest_opts_t o = {.opt_in = true, .no_break_glass = true};
    setup(&n, &o);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    char euid[64];
    snprintf(euid, sizeof(euid), "%s", two_records(h, c, a));
    size_t audits = itest_db_entries_settled(&n, "audit_rec");
    /* opt-in, nothing on file: the clinic's MRN reads exactly like an unknown one */
    hie_envelope_t *hidden = record_query(h, "q1", CLINIC, "C-9", NULL, a);
    hie_envelope_t *absent = record_query(h, "q2", CLINIC, "C-404", NULL, a);
    expect_error(hidden, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn");
    expect_error(absent, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn");
    cr_assert_str_eq(hidden->error->message, absent->error->message, "indistinguishable");
    /* its own MRN and the EUID: nothing listed, as for an EUID without records */
    expect_nothing(record_query(h, "q3", HOSP, "H-1", NULL, a));
    expect_nothing(record_query(h, "q4", NULL, NULL, euid, a));
    expect_nothing(record_query(h, "q5", NULL, NULL, "E-000000000000", a));
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", audits + 5, 2000), audits + 5,
        "every query audited, the hidden and the unknown alike");
    /* a consent permitting the hospital: the record query answers */
    struct dir x;
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    consent_submit_ok(c, "c1", &x, a);
    hie_envelope_t *ok = record_query(h, "q6", CLINIC, "C-9", NULL, a);
    cr_assert_eq(ok->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    cr_assert_str_eq(ok->record_query_reply->euid, euid);
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* A repeated id is another message that discloses: decided again, on the consent on file
 * then, and audited again. The workers' reply cache served the first answer to a repeat of
 * its id, after a deny was filed and acknowledged, with no record of that disclosure. */
Test(consent, a_repeated_query_id_is_decided_again_after_a_deny, .timeout = 120)
{
    itest_node_t n;
    setup(&n, NULL); /* opt-out: treatment permitted when no consent is on file */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    two_records(h, c, a);
    cr_assert_eq(pix(h, "r1", CLINIC, "C-9", a)->pix_reply->n_ids, 1u);
    hie_envelope_t *q = pdq(h, "r2", "John", "Smithson", "1970-03-02", a);
    cr_assert_eq(q->pdq_reply->n_candidates, 1u);
    hie_envelope_t *rq = record_query(h, "r3", CLINIC, "C-9", NULL, a);
    cr_assert_eq(rq->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    size_t audits = itest_db_entries_settled(&n, "audit_rec");
    struct dir x;
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, HOSP, 0);
    consent_submit_ok(c, "c1", &x, a);
    /* the same three ids again: the deny decides them, as any new message */
    expect_error(pix(h, "r1", CLINIC, "C-9", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "patient.mrn");
    q = pdq(h, "r2", "John", "Smithson", "1970-03-02", a);
    cr_assert_eq(q->body_case, HIE__V1__ENVELOPE__BODY_PDQ_REPLY);
    cr_assert(q->pdq_reply->no_match, "the repeated PDQ still named the patient");
    expect_error(record_query(h, "r3", CLINIC, "C-9", NULL, a),
        HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn");
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", audits + 3, 2000), audits + 3,
        "each repeat left its own audit record");
    /* what is not decided by consent still answers a repeat with the original reply */
    cr_assert(itest_log_contains(&n, "id=c1 type=consent_submit outcome=OK repeat=0"));
    consent_submit_ok(c, "c1", &x, a);
    cr_assert(itest_log_wait(&n, "id=c1 type=consent_submit outcome=OK repeat=1", 2000));
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

Test(consent, latest_wins_by_date_undated_is_dated_at_submission_future_refused,
    .timeout = 120)
{
    itest_node_t n;
    setup(&n, NULL); /* opt-out */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    two_records(h, c, a);
    /* a permit dated 2026-01-10, then a deny for the hospital without a date */
    struct dir x, y;
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    x.d.date_ms = 1768003200000;
    consent_submit_ok(c, "c1", &x, a);
    cr_assert_eq(pix(h, "p1", CLINIC, "C-9", a)->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    dir_init(&y, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&y, HOSP, 0);
    y.d.date_ms = 0;
    Hie__V1__ConsentSubmitReply *sr = consent_submit_ok(c, "c2", &y, a);
    expect_error(pix(h, "p2", CLINIC, "C-9", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "patient.mrn");
    Hie__V1__ConsentListReply *l = consent_list(c, "l1", CLINIC, "C-9", false, a);
    cr_assert_eq(l->n_directives, 2u);
    for (size_t i = 0; i < l->n_directives; i++) {
        if (strcmp(l->directives[i]->id, sr->id) == 0) {
            cr_assert_gt(l->directives[i]->date_ms, x.d.date_ms, "dated at submission");
        }
    }
    /* a directive dated two days ahead would outrank every later one: refused, not stored */
    struct dir z;
    dir_init(&z, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    z.d.date_ms = (int64_t)time(NULL) * 1000 + 2 * 86400000ll;
    expect_error(consent_submit(c, "c3", &z, a), HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
        "date_ms");
    cr_assert_eq(consent_list(c, "l2", CLINIC, "C-9", false, a)->n_directives, 2u);
    expect_error(pix(h, "p3", CLINIC, "C-9", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "patient.mrn");
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* A directive dated a few hours ahead of its submission (a date-only entry in a time zone
 * ahead of UTC is UTC midnight of that day) ranks as of its submission: the patient's deny
 * filed an hour later, undated, wins. Before, the permit's date outranked every directive
 * filed after it within the day, and went on winning until revoked. */
Test(consent, a_directive_dated_ahead_ranks_as_of_its_submission, .timeout = 120)
{
    itest_node_t n;
    setup(&n, NULL); /* opt-out */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    two_records(h, c, a);
    struct dir x, y;
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    x.d.date_ms = (int64_t)time(NULL) * 1000 + 3 * 3600000ll;
    Hie__V1__ConsentSubmitReply *sx = consent_submit_ok(c, "c1", &x, a);
    dir_init(&y, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_DENY);
    y.d.date_ms = 0;
    consent_submit_ok(c, "c2", &y, a);
    expect_error(pix(h, "p1", CLINIC, "C-9", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "patient.mrn");
    Hie__V1__ConsentListReply *l = consent_list(c, "l1", CLINIC, "C-9", false, a);
    for (size_t i = 0; i < l->n_directives; i++) {
        if (strcmp(l->directives[i]->id, sx->id) == 0) {
            cr_assert_eq(l->directives[i]->date_ms, x.d.date_ms, "the stated date is listed");
        }
    }
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* PDQ by name, birth date and postcode, with a page limit. */
static hie_envelope_t *
pdq_page(hie_client_t *c, const char *id, const char *postcode, uint32_t limit, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__PdqQuery q = HIE__V1__PDQ_QUERY__INIT;
    Hie__V1__Demographics d = HIE__V1__DEMOGRAPHICS__INIT;
    char *g[1] = {MUT("John")}, *f[1] = {MUT("Smithson")};
    req_init(&req, id);
    d.n_given = 1;
    d.given = g;
    d.n_family = 1;
    d.family = f;
    d.birth_date = MUT("1970-03-02");
    d.postcode = MUT(postcode);
    q.demographics = &d;
    q.limit = limit;
    req.body_case = HIE__V1__ENVELOPE__BODY_PDQ_QUERY;
    req.pdq_query = &q;
    return call(c, &req, a);
}

/* Another John Smithson born the same day, in Manchester: a weaker match for a London
 * postcode. */
static const struct person JOHN_M = {"John", "Smithson", "1970-03-02", "M1 4BT",
    "0161 496 0999", "Manchester", "7 Oldham Street"};

Test(consent, pdq_page_is_filled_past_a_hidden_better_match, .timeout = 120)
{
    itest_node_t n;
    setup(&n, NULL); /* opt-out */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    hie_client_t *h2 = itest_client(&n, HOSP2);
    const Hie__V1__FeedAction create = HIE__V1__FEED_ACTION__FEED_CREATE;
    char london[64];
    snprintf(london, sizeof(london), "%s", feed_ok(h, "f1", create, HOSP, "H-1", &JOHN, NULL,
        a)->euid);
    Hie__V1__MpiFeedReply *m = feed_ok(c, "f2", create, CLINIC, "C-7", &JOHN_M, NULL, a);
    cr_assert_str_neq(m->euid, london, "two people");
    char manchester[64];
    snprintf(manchester, sizeof(manchester), "%s", m->euid);
    hie_envelope_t *r = pdq_page(h2, "q1", "SW1A 1AA", 2, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PDQ_REPLY);
    cr_assert_eq(r->pdq_reply->n_candidates, 2u);
    cr_assert_str_eq(r->pdq_reply->candidates[0]->euid, london, "London first");
    /* London's patient hides from st-mary: its page of one is Manchester, as if London's
     * record did not exist, not an empty page that tells a better match is hidden */
    struct dir x;
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, HOSP2, 0);
    consent_submit_ok(h, "c1", &x, a);
    r = pdq_page(h2, "q2", "SW1A 1AA", 1, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PDQ_REPLY);
    cr_assert_eq(r->pdq_reply->n_candidates, 1u, "the page is filled");
    cr_assert_str_eq(r->pdq_reply->candidates[0]->euid, manchester);
    hie_client_destroy(&h);
    hie_client_destroy(&h2);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* A patient may have 32 directives in force; revoked ones do not count, and leave the
 * decisions' rules, however many there are (they counted, and after 64 every decision for the
 * patient failed closed). */
/* A full page (50) of PDQ candidates with one of the 51 matches hidden: still 50. The node
 * asked the index for 50, so every hidden one in them shortened the page (telling that a
 * better match exists); it now asks for as many as one audit record names (64). */
Test(consent, a_full_pdq_page_is_filled_past_a_hidden_match, .timeout = 180)
{
    static const char *const given[] = {"Aaron", "Beatrix", "Cedric", "Delphine", "Emeric",
        "Fiona", "Gareth", "Hermione", "Ignatius", "Jolene", "Kasimir", "Leonora", "Malcolm",
        "Nerys", "Osbert", "Perpetua", "Quentin", "Rosalind", "Sebastian", "Theodora",
        "Ulysses", "Valentina", "Wilfred", "Xanthe", "Yannick", "Zuleika", "Ambrose",
        "Bronwen", "Cornelius", "Dorothea", "Ebenezer", "Felicity", "Gideon", "Hyacinth",
        "Isidore", "Juniper", "Leopold", "Marigold", "Nathaniel", "Ottilie", "Percival",
        "Philippa", "Reginald", "Seraphina", "Tobias", "Ursula", "Vivienne", "Winifred",
        "Zebedee", "Augustin", "Clementine"};
    const size_t count = sizeof(given) / sizeof(given[0]);
    cr_assert_eq(count, 51u);
    itest_node_t n;
    setup(&n, NULL); /* opt-out */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *h2 = itest_client(&n, HOSP2);
    for (size_t i = 0; i < count; i++) {
        char mrn[16], id[16], post[16], phone[32], street[48];
        snprintf(mrn, sizeof(mrn), "H-%zu", i);
        snprintf(id, sizeof(id), "f%zu", i);
        snprintf(post, sizeof(post), "N%zu %zuAB", i + 1, i % 9 + 1);
        snprintf(phone, sizeof(phone), "020 7946 %04zu", 1000 + i * 37);
        snprintf(street, sizeof(street), "%zu Acacia Avenue", i + 3);
        struct person p = {given[i], "Fairweather", "1961-06-09", post, phone, "Leeds", street};
        Hie__V1__MpiFeedReply *r = feed_ok(h, id, HIE__V1__FEED_ACTION__FEED_CREATE, HOSP, mrn,
            &p, NULL, a);
        cr_assert_eq(r->outcome, HIE__V1__FEED_OUTCOME__OUTCOME_NEW, "%s: a person of its own",
            given[i]);
        hie_arena_reset(a);
    }
    struct dir x;
    dir_init(&x, HOSP, "H-0", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, HOSP2, 0);
    consent_submit_ok(h, "c1", &x, a);
    hie_envelope_t req;
    Hie__V1__PdqQuery q = HIE__V1__PDQ_QUERY__INIT;
    Hie__V1__Demographics d = HIE__V1__DEMOGRAPHICS__INIT;
    char *f[1] = {MUT("Fairweather")};
    req_init(&req, "q1");
    d.n_family = 1;
    d.family = f;
    d.birth_date = MUT("1961-06-09");
    q.demographics = &d;
    q.limit = 50;
    req.body_case = HIE__V1__ENVELOPE__BODY_PDQ_QUERY;
    req.pdq_query = &q;
    hie_envelope_t *r = call(h, &req, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PDQ_REPLY);
    cr_assert_eq(r->pdq_reply->n_candidates, 50u, "the hospital sees a full page");
    r = call(h2, &req, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PDQ_REPLY);
    cr_assert_eq(r->pdq_reply->n_candidates, 50u, "one hidden: still a full page");
    q.limit = 51;
    req.id = MUT("q2");
    expect_error(call(h2, &req, a), HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "limit");
    hie_client_destroy(&h);
    hie_client_destroy(&h2);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

Test(consent, revoked_directives_leave_room_and_stay_listed, .timeout = 180)
{
    itest_node_t n;
    setup(&n, NULL); /* opt-out */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    two_records(h, c, a);
    struct dir x;
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    char first[64] = "";
    for (int i = 0; i < 32; i++) {
        char id[16];
        snprintf(id, sizeof(id), "s%d", i);
        Hie__V1__ConsentSubmitReply *r = consent_submit_ok(c, id, &x, a);
        if (i == 0) {
            snprintf(first, sizeof(first), "%s", r->id);
        }
    }
    expect_error(consent_submit(c, "s32", &x, a), HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
        "directive");
    cr_assert_eq(consent_revoke(c, "v0", first, a)->body_case,
        HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE_REPLY);
    /* a deny for the hospital in the freed place: it decides the very next query */
    dir_except(&x, HOSP, 0);
    consent_submit_ok(c, "s33", &x, a);
    expect_error(pix(h, "p1", CLINIC, "C-9", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "patient.mrn");
    cr_assert_eq(consent_list(c, "l1", CLINIC, "C-9", false, a)->n_directives, 32u);
    cr_assert_eq(consent_list(c, "l2", CLINIC, "C-9", true, a)->n_directives, 33u,
        "the revoked one still listed with --all");
    /* forty more submit-and-revoke rounds: decisions keep working */
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    Hie__V1__ConsentListReply *l = consent_list(c, "l3", CLINIC, "C-9", false, a);
    char victim[64];
    snprintf(victim, sizeof(victim), "%s", l->directives[0]->id);
    cr_assert_eq(consent_revoke(c, "v1", victim, a)->body_case,
        HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE_REPLY);
    for (int i = 0; i < 40; i++) {
        char id[16], rid[16];
        snprintf(id, sizeof(id), "r%d", i);
        snprintf(rid, sizeof(rid), "rv%d", i);
        char cid[64];
        snprintf(cid, sizeof(cid), "%s", consent_submit_ok(c, id, &x, a)->id);
        cr_assert_eq(consent_revoke(c, rid, cid, a)->body_case,
            HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE_REPLY);
        hie_arena_reset(a);
    }
    expect_error(pix(h, "p2", CLINIC, "C-9", a), HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
        "patient.mrn");
    hie_client_t *h2 = itest_client(&n, HOSP2);
    cr_assert_eq(pix(h2, "p3", CLINIC, "C-9", a)->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY,
        "decided, not failed closed");
    hie_client_destroy(&h2);
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

static const struct person OLAF = {"Olaf", "Brandvik", "1955-07-14", "EH1 1YZ",
    "0131 496 0555", "Edinburgh", "8 Royal Mile"};

/* n permit-all directives for (org, mrn) by c, ids prefixed tag. */
static void
permits(hie_client_t *c, const char *org, const char *mrn, const char *tag, int n,
    hie_arena_t *a)
{
    struct dir x;
    dir_init(&x, org, mrn, HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    for (int i = 0; i < n; i++) {
        char id[24];
        snprintf(id, sizeof(id), "%s%d", tag, i);
        consent_submit_ok(c, id, &x, a);
        hie_arena_reset(a);
    }
}

static void
expect_pix(hie_envelope_t *r, bool disclosed, const char *what)
{
    if (disclosed) {
        cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY, "%s: %s", what,
            r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    } else {
        expect_error(r, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn");
    }
}

/* An A40 merge takes the prior MRN's directives to the surviving record (they stayed on the
 * retired one, which no decision reads: the patient's deny stopped applying), and a directive
 * filed for the merged MRN afterwards lands there too; a merge that would leave one record
 * more than 32 in force, or the patient more than the 64 a decision reads, is refused, and so
 * is a submit past 64; past that (records linked by the matcher) decisions fail closed,
 * except an authorized break-glass. */
Test(consent, directives_follow_an_a40_merge_and_the_euid_keeps_room, .timeout = 240)
{
    itest_node_t n;
    setup(&n, NULL); /* opt-out, break-glass allowed */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *h2 = itest_client(&n, HOSP2);
    hie_client_t *c = itest_client(&n, CLINIC);
    const Hie__V1__FeedAction create = HIE__V1__FEED_ACTION__FEED_CREATE;
    const Hie__V1__FeedAction merge = HIE__V1__FEED_ACTION__FEED_MERGE;
    feed_ok(h, "f1", create, HOSP, "H-1", &JOHN, NULL, a);
    feed_ok(c, "f2", create, CLINIC, "C-1", &JON, NULL, a);
    feed_ok(c, "f3", create, CLINIC, "C-2", &MARIA, NULL, a);
    struct dir x;
    dir_init(&x, CLINIC, "C-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, HOSP, 0);
    char cid[64];
    snprintf(cid, sizeof(cid), "%s", consent_submit_ok(c, "c1", &x, a)->id);
    expect_pix(pix(h, "p1", CLINIC, "C-1", a), false, "denied before the merge");
    feed_ok(c, "m1", merge, CLINIC, "C-2", NULL, "C-1", a);
    expect_pix(pix(h, "p2", CLINIC, "C-2", a), false, "the deny followed the merge");
    expect_pix(pix(h2, "p3", CLINIC, "C-2", a), true, "another hospital");
    cr_assert_eq(consent_list(c, "l1", CLINIC, "C-2", false, a)->n_directives, 1u);
    cr_assert_eq(consent_list(c, "l2", CLINIC, "C-1", false, a)->n_directives, 1u);
    /* filed for the merged MRN: on the surviving record, and decided */
    dir_init(&x, CLINIC, "C-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    dir_except(&x, HOSP2, 0);
    consent_submit_ok(c, "c2", &x, a);
    expect_pix(pix(h2, "p4", CLINIC, "C-2", a), false, "filed for the merged MRN");
    /* the moved directive is revoked where it now lives */
    cr_assert_eq(consent_revoke(c, "v1", cid, a)->body_case,
        HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE_REPLY);
    expect_pix(pix(h, "p5", CLINIC, "C-2", a), true, "revoked after the merge");
    /* 64 on the patient's records: H-1 30, C-2 28 (c2 and 27 more), H2-1 6; one more is
     * refused wherever it is filed */
    feed_ok(h2, "f4", create, HOSP2, "H2-1", &JOHN, NULL, a);
    permits(h, HOSP, "H-1", "a", 30, a);
    permits(c, CLINIC, "C-2", "b", 27, a);
    permits(h2, HOSP2, "H2-1", "d", 6, a);
    dir_init(&x, HOSP2, "H2-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    hie_envelope_t *full = consent_submit(h2, "d6", &x, a);
    expect_error(full, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "directive");
    cr_assert(strstr(full->error->message, "linked") == NULL, "the words tell nothing of "
        "records the hospital may not see: %s", full->error->message);
    /* a record with 5 more merged into C-2 (28 + 5 > 32): refused */
    feed_ok(c, "f5", create, CLINIC, "C-3", &OLAF, NULL, a);
    permits(c, CLINIC, "C-3", "e", 5, a);
    expect_error(feed(c, "m2", merge, CLINIC, "C-2", NULL, "C-3", a),
        HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "prior_mrn");
    expect_pix(pix(h, "p6", CLINIC, "C-3", a), true, "C-3 is still its own patient");
    /* with 4 it would fit C-2 (32), but not the patient's 64: refused too */
    cr_assert_eq(consent_revoke(c, "v2", consent_list(c, "l3", CLINIC, "C-3", false,
        a)->directives[0]->id, a)->body_case, HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE_REPLY);
    expect_error(feed(c, "m3", merge, CLINIC, "C-2", NULL, "C-3", a),
        HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "prior_mrn");
    /* linked by an update instead (the matcher, not an A40): the patient's 68 directives are
     * more than a decision reads, so every query is denied, but an authorized break-glass */
    Hie__V1__MpiFeedReply *u = feed_ok(c, "u1", HIE__V1__FEED_ACTION__FEED_UPDATE, CLINIC,
        "C-3", &JON, NULL, a);
    cr_assert_eq(u->outcome, HIE__V1__FEED_OUTCOME__OUTCOME_LINKED, "outcome %d", u->outcome);
    expect_pix(pix(h, "p7", CLINIC, "C-2", a), false, "failed closed");
    expect_pix(pix_for(h, "p8", CLINIC, "C-2", HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY, a),
        true, "break-glass");
    cr_assert(itest_log_wait(&n, "decision failed; break-glass permits it", 2000));
    hie_client_destroy(&h);
    hie_client_destroy(&h2);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* The patient's accounting as §164.528 has it (TPO and nothing-disclosed left out). */
static Hie__V1__AuditReportReply *
accounting(hie_client_t *au, const char *id, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__AuditReportRequest q = HIE__V1__AUDIT_REPORT_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, id);
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_OPERATIONS;
    q.kind = HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING;
    pid.org_id = MUT(CLINIC);
    pid.mrn = MUT("C-9");
    q.patient = &pid;
    q.page_size = 100;
    req.body_case = HIE__V1__ENVELOPE__BODY_AUDIT_REPORT;
    req.audit_report = &q;
    hie_envelope_t *r = call(au, &req, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY, "%s",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    return r->audit_report_reply;
}

Test(consent, accounting_lists_only_what_was_disclosed, .timeout = 120)
{
    itest_node_t n;
    setup(&n, NULL); /* opt-out */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    hie_client_t *au = itest_client(&n, AUDITOR);
    two_records(h, c, a);
    struct dir x; /* the patient permits everything, public health included */
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    consent_submit_ok(c, "c1", &x, a);
    const Hie__V1__PurposeOfUse ph = HIE__V1__PURPOSE_OF_USE__PURPOSE_PUBLIC_HEALTH;
    /* a record query that finds no documents disclosed nothing */
    hie_envelope_t req;
    Hie__V1__RecordQuery q = HIE__V1__RECORD_QUERY__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, "q1");
    req.purpose = ph;
    pid.org_id = MUT(CLINIC);
    pid.mrn = MUT("C-9");
    q.patient = &pid;
    req.body_case = HIE__V1__ENVELOPE__BODY_RECORD_QUERY;
    req.record_query = &q;
    hie_envelope_t *r = call(h, &req, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY);
    cr_assert_eq(r->record_query_reply->n_documents, 0u);
    /* a PIX for public health disclosed identifiers: accounted for */
    cr_assert_eq(pix_for(h, "p1", CLINIC, "C-9", ph, a)->body_case,
        HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    Hie__V1__AuditReportReply *acct = accounting(au, "r1", a);
    cr_assert_eq(acct->n_entries, 1u, "the PIX only, not the empty record query");
    Hie__V1__AuditRecord *rec = hie__v1__audit_record__unpack(NULL,
        acct->entries[0]->record.len, acct->entries[0]->record.data);
    cr_assert_eq(rec->action, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PIX);
    hie__v1__audit_record__free_unpacked(rec, NULL);
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_client_destroy(&au);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* The EUIDs of an accounting's PIX entries (one subject each), in entry order, space-joined;
 * every entry's EUID (reports too) is one of the reply's identity, in its span. */
static void
accounting_euids(hie_client_t *au, const char *id, const char *org, const char *mrn,
    char *out, size_t cap, hie_arena_t *a)
{
    hie_envelope_t *r = report(au, id, HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING, org,
        mrn, 100, NULL, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY, "%s",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?");
    const Hie__V1__AuditReportReply *rr = r->audit_report_reply;
    report_verify(rr);
    cr_assert_geq(rr->n_identity, 1u);
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < rr->n_entries; i++) {
        Hie__V1__AuditSubject *s = entry_subject(rr->entries[i]);
        Hie__V1__AuditRecord *rec = hie__v1__audit_record__unpack(NULL,
            rr->entries[i]->record.len, rr->entries[i]->record.data);
        bool listed = strcmp(s->euid, rr->identity[0]->euid) == 0;
        for (size_t k = 1; k < rr->n_identity && !listed; k++) {
            listed = strcmp(s->euid, rr->identity[k]->euid) == 0 &&
                rec->time_ms >= rr->identity[k]->from_ms && rec->time_ms < rr->identity[k]->to_ms;
        }
        cr_assert(listed, "entry %zu (%s) is in the reply's identity", i, s->euid);
        if (rec->action == HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PIX) { /* not earlier reports */
            used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? " " : "", s->euid);
        }
        cr_assert_lt(used, cap);
        hie__v1__audit_record__free_unpacked(rec, NULL);
        hie__v1__audit_subject__free_unpacked(s, NULL);
    }
}

static void
tick(void)
{
    struct timespec ts = {0, 30 * 1000000L}; /* the link history and the audit are in ms */
    nanosleep(&ts, NULL);
}

/* An accounting covers the EUIDs the patient's records lived under before: a record that
 * links in brings its disclosures from its own EUID; one that is unlinked out keeps those of
 * the EUID it left, made while it was there and not after; a record an A40 merges into the
 * patient's brings its own. Each PIX discloses the EUID it resolved to then. */
Test(consent, accounting_follows_the_patients_earlier_euids, .timeout = 180)
{
    itest_node_t n;
    setup(&n, NULL); /* opt-out */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *h2 = itest_client(&n, HOSP2);
    hie_client_t *c = itest_client(&n, CLINIC), *au = itest_client(&n, AUDITOR);
    const Hie__V1__FeedAction create = HIE__V1__FEED_ACTION__FEED_CREATE;
    char e1[16], ex[16], ey[16], em[16], got[512], want[512];
    snprintf(e1, sizeof(e1), "%s", feed_ok(h, "f1", create, HOSP, "H-1", &JOHN, NULL, a)->euid);
    snprintf(ex, sizeof(ex), "%s", feed_ok(c, "f2", create, CLINIC, "C-7", &OLAF, NULL,
        a)->euid);
    cr_assert_str_neq(e1, ex);
    tick();
    expect_pix(pix(h2, "d1", CLINIC, "C-7", a), true, "C-7 alone, under its own EUID");
    tick();
    Hie__V1__MpiFeedReply *u = feed_ok(c, "u1", HIE__V1__FEED_ACTION__FEED_UPDATE, CLINIC,
        "C-7", &JON, NULL, a);
    cr_assert_str_eq(u->euid, e1, "C-7 is John's now");
    tick();
    expect_pix(pix(h2, "d2", HOSP, "H-1", a), true, "John, C-7 among his records");
    tick();
    snprintf(ey, sizeof(ey), "%s", feed_ok(c, "x1", HIE__V1__FEED_ACTION__FEED_UNLINK, CLINIC,
        "C-7", NULL, NULL, a)->euid);
    struct timespec pad = {2, 300 * 1000000L}; /* past the span's end pad */
    nanosleep(&pad, NULL);
    expect_pix(pix(h2, "d3", HOSP, "H-1", a), true, "John, without C-7");
    expect_pix(pix(h2, "d4", CLINIC, "C-7", a), true, "C-7 under its new EUID");
    accounting_euids(au, "r1", HOSP, "H-1", got, sizeof(got), a);
    snprintf(want, sizeof(want), "%s %s", e1, e1);
    cr_assert_str_eq(got, want, "John: d2 and d3; C-7's own EUID was never his");
    accounting_euids(au, "r2", CLINIC, "C-7", got, sizeof(got), a);
    snprintf(want, sizeof(want), "%s %s %s", ex, e1, ey);
    cr_assert_str_eq(got, want, "C-7: d1 under its first EUID, d2 under John's while it was "
        "his (not d3, 2.3 s after the unlink: past HIE_MPI_IDENTITY_END_PAD_MS), d4");
    /* C-8 merged into C-7 brings its disclosure under its own EUID */
    snprintf(em, sizeof(em), "%s", feed_ok(c, "f3", create, CLINIC, "C-8", &MARIA, NULL,
        a)->euid);
    tick();
    expect_pix(pix(h2, "d5", CLINIC, "C-8", a), true, "C-8 alone");
    tick();
    feed_ok(c, "m1", HIE__V1__FEED_ACTION__FEED_MERGE, CLINIC, "C-7", NULL, "C-8", a);
    accounting_euids(au, "r3", CLINIC, "C-7", got, sizeof(got), a);
    snprintf(want, sizeof(want), "%s %s %s %s", ex, e1, ey, em);
    cr_assert_str_eq(got, want, "and d5, under C-8's EUID before the merge: %s / %s", got, want);
    accounting_euids(au, "r4", CLINIC, "C-8", got, sizeof(got), a);
    cr_assert_str_eq(got, want, "asked by the merged MRN: the same patient");
    hie_client_destroy(&h);
    hie_client_destroy(&h2);
    hie_client_destroy(&c);
    hie_client_destroy(&au);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* The asked EUID too counts only from when one of the patient's records joined it: John's H-1
 * made E1, was disclosed, then the clinic's C-9 (linked into E1) stayed when H-1 was unlinked
 * out. C-9's patient was not disclosed before C-9 joined; H-1's patient keeps that
 * disclosure, under E1, while H-1 was there. */
Test(consent, accounting_leaves_out_an_euids_disclosures_before_the_patient_joined,
    .timeout = 120)
{
    itest_node_t n;
    setup(&n, NULL); /* opt-out */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *h2 = itest_client(&n, HOSP2);
    hie_client_t *c = itest_client(&n, CLINIC), *au = itest_client(&n, AUDITOR);
    const Hie__V1__FeedAction create = HIE__V1__FEED_ACTION__FEED_CREATE;
    char e1[16], got[512], want[512];
    snprintf(e1, sizeof(e1), "%s", feed_ok(h, "f1", create, HOSP, "H-1", &JOHN, NULL, a)->euid);
    tick();
    expect_pix(pix(h2, "d0", HOSP, "H-1", a), true, "H-1 alone in E1");
    tick();
    cr_assert_str_eq(feed_ok(c, "f2", create, CLINIC, "C-9", &JON, NULL, a)->euid, e1);
    tick();
    feed_ok(h, "x1", HIE__V1__FEED_ACTION__FEED_UNLINK, HOSP, "H-1", NULL, NULL, a);
    accounting_euids(au, "r1", CLINIC, "C-9", got, sizeof(got), a);
    cr_assert_str_eq(got, "", "d0 was before C-9 joined E1: not C-9's patient's (%s)", got);
    accounting_euids(au, "r2", HOSP, "H-1", got, sizeof(got), a);
    snprintf(want, sizeof(want), "%s", e1);
    cr_assert_str_eq(got, want, "H-1's patient: d0, under E1 while H-1 was there");
    hie_client_destroy(&h);
    hie_client_destroy(&h2);
    hie_client_destroy(&c);
    hie_client_destroy(&au);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* An accounting's pages share one identity: a patient whose records are linked between two
 * pages is refused on the second (its entries under the newly linked record's EUID would be
 * skipped), and asked again from the first page it lists them all, each page signed. */
Test(consent, accounting_pages_keep_one_identity, .timeout = 120)
{
    itest_node_t n;
    setup(&n, NULL); /* opt-out */
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *h2 = itest_client(&n, HOSP2);
    hie_client_t *c = itest_client(&n, CLINIC), *au = itest_client(&n, AUDITOR);
    const Hie__V1__FeedAction create = HIE__V1__FEED_ACTION__FEED_CREATE;
    const Hie__V1__AuditReportKind acct = HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING;
    char e1[16], eo[16], tok[256];
    snprintf(e1, sizeof(e1), "%s", feed_ok(h, "f1", create, HOSP, "H-1", &JOHN, NULL, a)->euid);
    snprintf(eo, sizeof(eo), "%s", feed_ok(c, "f2", create, CLINIC, "C-1", &OLAF, NULL,
        a)->euid);
    tick();
    expect_pix(pix(h2, "d1", CLINIC, "C-1", a), true, "C-1 under its own EUID");
    tick();
    expect_pix(pix(h2, "d2", HOSP, "H-1", a), true, "John");
    expect_pix(pix(h2, "d3", HOSP, "H-1", a), true, "John again");
    hie_envelope_t *r = report(au, "r1", acct, HOSP, "H-1", 1, NULL, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY);
    cr_assert_eq(r->audit_report_reply->n_identity, 1u, "John never had another EUID");
    snprintf(tok, sizeof(tok), "%s", r->audit_report_reply->next_page_token);
    cr_assert_neq(tok[0], '\0');
    tick();
    cr_assert_str_eq(feed_ok(c, "u1", HIE__V1__FEED_ACTION__FEED_UPDATE, CLINIC, "C-1", &JON,
        NULL, a)->euid, e1, "C-1 is John's now");
    expect_error(report(au, "r2", acct, HOSP, "H-1", 1, tok, a),
        HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "page_token");
    char got[512] = "", want[512];
    tok[0] = '\0';
    for (int p = 0; p < 20; p++) {
        char id[16];
        snprintf(id, sizeof(id), "q%d", p);
        r = report(au, id, acct, HOSP, "H-1", 1, tok[0] ? tok : NULL, a);
        cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY);
        const Hie__V1__AuditReportReply *rr = r->audit_report_reply;
        report_verify(rr);
        cr_assert_eq(rr->n_identity, 2u, "page %d: John's EUID, then C-1's earlier one", p);
        cr_assert_not_null(strstr(rr->identity_note, HIE_AUDIT_IDENTITY_ORIGIN), "signed");
        for (size_t i = 0; i < rr->n_entries; i++) {
            Hie__V1__AuditRecord *rec = hie__v1__audit_record__unpack(NULL,
                rr->entries[i]->record.len, rr->entries[i]->record.data);
            Hie__V1__AuditSubject *sub = entry_subject(rr->entries[i]);
            if (rec->action == HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PIX) {
                size_t used = strlen(got);
                snprintf(got + used, sizeof(got) - used, "%s%s", used ? " " : "", sub->euid);
            }
            hie__v1__audit_subject__free_unpacked(sub, NULL);
            hie__v1__audit_record__free_unpacked(rec, NULL);
        }
        snprintf(tok, sizeof(tok), "%s", rr->next_page_token);
        if (tok[0] == '\0') {
            break;
        }
    }
    cr_assert_eq(tok[0], '\0', "a last page");
    snprintf(want, sizeof(want), "%s %s %s", eo, e1, e1);
    cr_assert_str_eq(got, want, "d1 under C-1's first EUID, d2 and d3 under John's");
    hie_client_destroy(&h);
    hie_client_destroy(&h2);
    hie_client_destroy(&c);
    hie_client_destroy(&au);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* Entries of an organization-access report, all pages, from token (NULL: the first page),
 * with queries by the hospital run after the first page when late > 0. */
static size_t
org_access_all(hie_client_t *au, hie_client_t *h, const char *tag, int late, hie_arena_t *a)
{
    const Hie__V1__AuditReportKind kind = HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ORG_ACCESS;
    char tok[256] = "", id[32];
    size_t total = 0;
    for (int p = 0; p < 20; p++) {
        snprintf(id, sizeof(id), "%s-%d", tag, p);
        hie_envelope_t *r = report(au, id, kind, HOSP, NULL, 1, tok[0] ? tok : NULL, a);
        cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY);
        report_verify(r->audit_report_reply);
        total += r->audit_report_reply->n_entries;
        snprintf(tok, sizeof(tok), "%s", r->audit_report_reply->next_page_token);
        for (int i = 0; p == 0 && i < late; i++) {
            snprintf(id, sizeof(id), "%s-late%d", tag, i);
            cr_assert_eq(pix(h, id, HOSP, "H-1", a)->body_case,
                HIE__V1__ENVELOPE__BODY_PIX_REPLY);
        }
        if (tok[0] == '\0') {
            return total;
        }
    }
    cr_assert(false, "no last page");
    return 0;
}

/* A paged report is the log as of its first page: records committed after it appear on no
 * page (time order alone would drop one stamped before the token's time but committed after
 * it), and a new report has them all. */
Test(consent, paged_report_is_the_log_as_of_its_first_page, .timeout = 120)
{
    itest_node_t n;
    setup(&n, NULL);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    hie_client_t *au = itest_client(&n, AUDITOR);
    two_records(h, c, a);
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%d", i);
        cr_assert_eq(pix(h, id, HOSP, "H-1", a)->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    }
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", 3u, 2000), 3u);
    cr_assert_eq(org_access_all(au, h, "r", 2, a), 3u, "as of the first page");
    cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", 5u + 4u, 2000), 9u,
        "5 queries and 4 report pages");
    cr_assert_eq(org_access_all(au, h, "s", 0, a), 5u, "a new report has the later ones");
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_client_destroy(&au);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* A directive whose root has count nested children (flat), or nested depth levels deep. */
static Hie__V1__ConsentProvision *
provisions_make(size_t count, size_t depth)
{
    Hie__V1__ConsentProvision *ps = calloc(count + depth + 1, sizeof(*ps));
    Hie__V1__ConsentProvision **kids = calloc(count + depth + 1, sizeof(*kids));
    cr_assert(ps != NULL && kids != NULL);
    for (size_t i = 0; i <= count + depth; i++) {
        hie__v1__consent_provision__init(&ps[i]);
        ps[i].type = HIE__V1__PROVISION_TYPE__PROVISION_DENY;
    }
    ps[0].type = HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
    for (size_t i = 0; i < count; i++) {
        kids[i] = &ps[1 + i];
    }
    ps[0].n_provisions = count;
    ps[0].provisions = count > 0 ? kids : NULL;
    for (size_t i = 0; i < depth; i++) { /* a chain: ps[i] -> ps[i + 1], types alternating */
        ps[i].n_provisions = 1;
        kids[i] = &ps[i + 1];
        ps[i].provisions = &kids[i];
        ps[i + 1].type = ps[i].type == HIE__V1__PROVISION_TYPE__PROVISION_PERMIT
                             ? HIE__V1__PROVISION_TYPE__PROVISION_DENY
                             : HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
    }
    return ps;
}

static void
refused(hie_client_t *c, const char *id, struct dir *x, Hie__V1__ErrorCode code, hie_arena_t *a)
{
    hie_envelope_t *r = consent_submit(c, id, x, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_ERROR, "%s: refused", id);
    cr_assert_eq(r->error->code, code, "%s: code %d (%s %s)", id, r->error->code,
        r->error->message, r->error->field);
    if (code == HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST) {
        cr_assert_str_neq(r->error->field, "", "%s: the field is named", id);
    }
}

/* Sent over a raw connection: a message nested this deep is refused by the frame decoder
 * (one Error, then the connection is closed), before any consent code sees it. */
static void
refused_raw(itest_node_t *n, struct dir *x, hie_arena_t *a)
{
    hie_envelope_t env;
    Hie__V1__ConsentSubmitRequest s = HIE__V1__CONSENT_SUBMIT_REQUEST__INIT;
    req_init(&env, "b5");
    s.directive = &x->d;
    env.body_case = HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT;
    env.consent_submit = &s;
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(hie_proto_frame_encode(&env, 1u << 20, &buf, &len), 0);
    SSL *ssl = itest_raw_connect(n, CLINIC);
    cr_assert_not_null(ssl);
    cr_assert_eq(SSL_write(ssl, buf, (int)len), (int)len);
    hie_mem_free(buf, len);
    hie_envelope_t *r = NULL;
    cr_assert_gt(itest_raw_read_frame(ssl, 5000, a, &r), 0);
    expect_error(r, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, NULL);
    cr_assert_str_neq(r->error->field, "", "the field is named");
    itest_raw_close(ssl);
}

Test(consent, malformed_directives_are_refused_and_nothing_is_stored, .timeout = 120)
{
    itest_node_t n;
    setup(&n, NULL);
    hie_arena_t *a = arena_new();
    hie_client_t *h = itest_client(&n, HOSP), *c = itest_client(&n, CLINIC);
    two_records(h, c, a);
    const Hie__V1__ErrorCode bad = HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    struct dir x;
    char *labels[1] = {MUT("XYZ")};
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    x.root.n_security_labels = 1;
    x.root.security_labels = labels;
    refused(c, "b1", &x, bad, a);                       /* unknown code */
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    Hie__V1__ConsentPeriod inv = HIE__V1__CONSENT_PERIOD__INIT;
    inv.start_ms = 1800000000000;
    inv.end_ms = 1700000000000;
    x.d.period = &inv;
    refused(c, "b2", &x, bad, a);                       /* inverted period */
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    x.purposes[0] = (Hie__V1__PurposeOfUse)99;
    x.root.n_purposes = 1;
    x.root.purposes = x.purposes;
    refused(c, "b3", &x, bad, a);                       /* unknown purpose */
    Hie__V1__ConsentProvision *flat = provisions_make(10000, 0);
    dir_init(&x, CLINIC, "C-9", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    x.d.provision = flat;
    refused(c, "b4", &x, bad, a);                       /* 10,000 provisions */
    Hie__V1__ConsentProvision *deep = provisions_make(0, 1000);
    x.d.provision = deep;
    refused_raw(&n, &x, a);                             /* nested 1,000 deep */
    dir_init(&x, CLINIC, "C-404", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    refused(c, "b6", &x, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, a); /* unknown patient */
    dir_init(&x, HOSP, "H-1", HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    refused(c, "b7", &x, HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, a); /* another org's patient */
    cr_assert_eq(itest_db_entries(&n, "consent_dir"), 0u, "nothing stored");
    cr_assert_eq(itest_db_entries(&n, "consent_pat"), 0u);
    cr_assert_eq(consent_list(c, "l1", CLINIC, "C-9", true, a)->n_directives, 0u);
    free(flat[0].provisions);
    free(flat);
    free(deep[0].provisions);
    free(deep);
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* ---- property run ------------------------------------------------------------------------- */

#define PROP_PATIENTS 3
#define PROP_STEPS 45
#define PROP_DIRS_MAX 24

struct model {
    struct dir dirs[PROP_DIRS_MAX];
    char ids[PROP_DIRS_MAX][48];
    int patient[PROP_DIRS_MAX];
    size_t n;
    size_t audit;                  /* audit records expected */
};

static const char *const PROP_ORGS[] = {HOSP, HOSP2, PAYER};
static const Hie__V1__Role PROP_ROLES[] = {HIE__V1__ROLE__ROLE_HOSPITAL,
    HIE__V1__ROLE__ROLE_HOSPITAL, HIE__V1__ROLE__ROLE_PAYER};
static const Hie__V1__PurposeOfUse PROP_PURPOSES[] = {HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT,
    HIE__V1__PURPOSE_OF_USE__PURPOSE_PAYMENT, HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY};
static const char *const PROP_MRN[PROP_PATIENTS] = {"C-1", "C-2", "C-3"};

static void
prop_feed(hie_client_t *h, hie_client_t *c, hie_arena_t *a)
{
    static const struct person aisha = {"Aisha", "Rahman", "1992-05-17", "LS1 4AP",
        "0113 496 0999", "Leeds", "7 Park Row"};
    static const struct person *const people[PROP_PATIENTS] = {&JOHN, &MARIA, &aisha};
    const Hie__V1__FeedAction create = HIE__V1__FEED_ACTION__FEED_CREATE;
    for (int i = 0; i < PROP_PATIENTS; i++) {
        char id[16], mrn[16];
        struct person p = *people[i];
        snprintf(id, sizeof(id), "fh%d", i);
        snprintf(mrn, sizeof(mrn), "H-%d", i + 1);
        feed_ok(h, id, create, HOSP, mrn, &p, NULL, a);
        snprintf(id, sizeof(id), "fc%d", i);
        feed_ok(c, id, create, CLINIC, PROP_MRN[i], &p, NULL, a);
    }
}

static void
prop_submit(struct model *m, hie_client_t *c, test_rng_t *rng, int step, hie_arena_t *a)
{
    if (m->n == PROP_DIRS_MAX) {
        return;
    }
    struct dir *x = &m->dirs[m->n];
    int pat = (int)test_rng_below(rng, PROP_PATIENTS);
    dir_init(x, CLINIC, PROP_MRN[pat], test_rng_below(rng, 2)
        ? HIE__V1__PROVISION_TYPE__PROVISION_PERMIT : HIE__V1__PROVISION_TYPE__PROVISION_DENY);
    x->d.date_ms = 1700000000000 + (int64_t)test_rng_below(rng, 1000) * 1000;
    uint32_t o = test_rng_below(rng, 4), pu = test_rng_below(rng, 3);
    dir_except(x, o < 3 ? PROP_ORGS[o] : NULL, pu < 2 ? PROP_PURPOSES[pu] : 0);
    char id[16];
    snprintf(id, sizeof(id), "s%d", step);
    Hie__V1__ConsentSubmitReply *r = consent_submit_ok(c, id, x, a);
    snprintf(m->ids[m->n], sizeof(m->ids[m->n]), "%s", r->id);
    x->d.id = m->ids[m->n];
    x->d.version = r->version;
    x->d.submitted_index = (uint64_t)step + 1; /* order only matters on equal dates */
    m->patient[m->n++] = pat;
}

static void
prop_revoke(struct model *m, hie_client_t *c, test_rng_t *rng, int step, hie_arena_t *a)
{
    if (m->n == 0) {
        return;
    }
    struct dir *x = &m->dirs[test_rng_below(rng, (uint32_t)m->n)];
    char id[16];
    snprintf(id, sizeof(id), "v%d", step);
    hie_envelope_t *r = consent_revoke(c, id, x->d.id, a);
    if (x->d.status == HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE) {
        cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE_REPLY);
        x->d.status = HIE__V1__CONSENT_STATUS__CONSENT_INACTIVE;
        x->d.revoked_ms = 1;
        x->d.version++;
    }
}

/* What the reference evaluator says about (requester o, purpose p) and patient pat. */
static bool
prop_expected(struct model *m, int pat, uint32_t o, Hie__V1__PurposeOfUse p)
{
    const Hie__V1__ConsentDirective *ds[PROP_DIRS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->patient[i] == pat) {
            ds[n++] = &m->dirs[i].d;
        }
    }
    hie_consent_policy_t pol;
    hie_consent_policy_init(&pol);
    pol.regime = HIE_CONSENT_OPT_OUT;
    pol.break_glass_allowed = true;
    hie_consent_request_t req = {PROP_ORGS[o], HIE_CONSENT_ROLE_BIT(PROP_ROLES[o]), p,
        HIE__V1__CONSENT_ACTION__CONSENT_ACTION_IDENTITY, 0, HIE_CONSENT_CLASS_NONE, 0,
        1750000000000};
    hie_consent_decision_t d;
    cr_assert_eq(hie_consent_decide_tree(&pol, ds, n, &req, &d), 0);
    return hie_consent_permitted(&d);
}

struct prop_clients {
    hie_client_t *org[3];
    hie_client_t *clinic;
};

static void
prop_connect(itest_node_t *n, struct prop_clients *pc)
{
    for (int i = 0; i < 3; i++) {
        pc->org[i] = itest_client(n, PROP_ORGS[i]);
    }
    pc->clinic = itest_client(n, CLINIC);
}

static void
prop_disconnect(struct prop_clients *pc)
{
    for (int i = 0; i < 3; i++) {
        hie_client_destroy(&pc->org[i]);
    }
    hie_client_destroy(&pc->clinic);
}

/* One PIX by a random requester: the reply matches the reference decision, and exactly one
 * more audit record exists. */
static void
prop_query(itest_node_t *n, struct model *m, struct prop_clients *pc, test_rng_t *rng,
    int step, hie_arena_t *a)
{
    int pat = (int)test_rng_below(rng, PROP_PATIENTS);
    uint32_t o = test_rng_below(rng, 3);
    Hie__V1__PurposeOfUse p = PROP_PURPOSES[test_rng_below(rng, 3)];
    char id[16];
    snprintf(id, sizeof(id), "q%d", step);
    if (PROP_ROLES[o] == HIE__V1__ROLE__ROLE_PAYER &&
        p == HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY) {
        /* only a treating organization declares it: refused before consent, not audited */
        expect_error(pix_for(pc->org[o], id, CLINIC, PROP_MRN[pat], p, a),
            HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, "purpose");
        return;
    }
    bool want = prop_expected(m, pat, o, p);
    hie_envelope_t *r = pix_for(pc->org[o], id, CLINIC, PROP_MRN[pat], p, a);
    if (want) {
        cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY, "step %d: permitted", step);
        cr_assert_eq(r->pix_reply->n_ids, 1u, "step %d: the hospital record", step);
    } else {
        expect_error(r, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn");
    }
    m->audit++; /* the caller checks that it was audited */
}

Test(consent, property_denied_discloses_nothing_and_every_query_is_audited_before_reply,
    .timeout = 300)
{
    uint64_t seed = test_seed(0x5eed0c0115e27ull);
    test_rng_t rng;
    test_rng_init(&rng, seed);
    itest_node_t n;
    setup(&n, NULL);
    hie_arena_t *a = arena_new();
    struct prop_clients pc;
    prop_connect(&n, &pc);
    prop_feed(pc.org[0], pc.clinic, a);
    static struct model m; /* static: 24 directives are too big for a test stack */
    memset(&m, 0, sizeof(m));
    int kills = 0, next_kill = 14;
    for (int step = 0; step < PROP_STEPS; step++) {
        uint32_t what = test_rng_below(&rng, 20);
        if (what < 5) {
            prop_submit(&m, pc.clinic, &rng, step, a);
        } else if (what < 7) {
            prop_revoke(&m, pc.clinic, &rng, step, a);
        } else {
            prop_query(&n, &m, &pc, &rng, step, a);
            if (step >= next_kill) {
                /* kill -9 right after the reply, before its record may have reached the
                 * state: the command log has it, and the restart's replay applies it */
                next_kill += 15;
                prop_disconnect(&pc);
                cr_assert_eq(itest_node_stop(&n, SIGKILL), 128 + SIGKILL);
                cr_assert_leq(itest_db_entries(&n, "audit_rec"), m.audit);
                itest_node_start(&n);
                cr_assert_eq(itest_db_entries(&n, "audit_rec"), m.audit, "after kill -9");
                prop_connect(&n, &pc);
                kills++;
            } else {
                cr_assert_eq(itest_db_entries_wait(&n, "audit_rec", m.audit, 2000), m.audit,
                    "step %d: one audit record", step);
            }
        }
    }
    cr_log_info("property run: %d steps, %zu directives, %zu audited queries, %d kills, "
        "seed 0x%" PRIx64, PROP_STEPS, m.n, m.audit, kills, seed);
    cr_assert_geq(kills, 1);
    prop_disconnect(&pc);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* ---- tamper detection ---------------------------------------------------------------------- */

enum tamper {
    EDIT, DELETE, REORDER, TRUNCATE, UNINDEX_PATIENT, UNINDEX_ORG, INDEX_EXTRA, RESEAL, REBUILT,
    CUT_TAIL_KEPT
};

static void
key_be(uint8_t *k, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        k[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* The patient index's entry of leaf (its key is bucket(8) patient(16) time(8) leaf(8) pos(2)):
 * deleted, or copied under another patient's key (the first byte of the key flipped). */
static void
tamper_patient_index(MDB_txn *txn, uint64_t leaf, bool copy_elsewhere)
{
    MDB_dbi pat;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t key[42];
    cr_assert_eq(mdb_dbi_open(txn, "audit_patient", 0, &pat), 0);
    cr_assert_eq(mdb_cursor_open(txn, pat, &cur), 0);
    bool found = false;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && !found;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        cr_assert_eq(k.mv_size, sizeof(key));
        memcpy(key, k.mv_data, sizeof(key));
        uint64_t l = 0;
        for (int i = 0; i < 8; i++) {
            l = (l << 8) | key[32 + i];
        }
        found = l == leaf;
    }
    mdb_cursor_close(cur);
    cr_assert(found, "no patient index entry for leaf %lu", (unsigned long)leaf);
    MDB_val kk = {sizeof(key), key}, empty = {0, ""};
    if (copy_elsewhere) {
        key[8] ^= 0x80;
        cr_assert_eq(mdb_put(txn, pat, &kk, &empty, 0), 0);
    } else {
        cr_assert_eq(mdb_del(txn, pat, &kk, NULL), 0);
    }
}

/* Deletes the organization index's entries of leaf (org -> time8 leaf8, dupsort). */
static void
tamper_org_index(MDB_txn *txn, uint64_t leaf)
{
    MDB_dbi org;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int deleted = 0;
    cr_assert_eq(mdb_dbi_open(txn, "audit_org", MDB_DUPSORT | MDB_DUPFIXED, &org), 0);
    cr_assert_eq(mdb_cursor_open(txn, org, &cur), 0);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        cr_assert_eq(v.mv_size, 16u);
        uint64_t l = 0;
        for (int i = 0; i < 8; i++) {
            l = (l << 8) | ((const uint8_t *)v.mv_data)[8 + i];
        }
        if (l == leaf) {
            cr_assert_eq(mdb_cursor_del(cur, 0), 0);
            deleted++;
            break;
        }
    }
    mdb_cursor_close(cur);
    cr_assert_eq(deleted, 1);
}

/* The commitment of record leaf's first subject (32 bytes) into c. */
static void
first_commitment(MDB_txn *txn, MDB_dbi rec, uint64_t leaf, uint8_t c[32])
{
    uint8_t k[8];
    key_be(k, leaf);
    MDB_val key = {8, k}, v;
    cr_assert_eq(mdb_get(txn, rec, &key, &v), 0);
    Hie__V1__AuditRecord *r = hie__v1__audit_record__unpack(NULL, v.mv_size, v.mv_data);
    cr_assert(r != NULL && r->n_subject_commitments > 0);
    cr_assert_eq(r->subject_commitments[0].len, 32u);
    memcpy(c, r->subject_commitments[0].data, 32);
    hie__v1__audit_record__free_unpacked(r, NULL);
}

/* What only the data key's holder can do: record leaf + 1's first subject (the same patient,
 * another disclosure), sealed again under record leaf's commitment, in place of its own. The
 * box opens; only hashing what it holds shows it is not what the record committed to. */
static void
tamper_reseal(itest_node_t *n, MDB_txn *txn, MDB_dbi rec, uint64_t leaf)
{
    MDB_dbi subj;
    cr_assert_eq(mdb_dbi_open(txn, "audit_subj", 0, &subj), 0);
    uint8_t c[32], c2[32], k[10] = {0}, k2[10] = {0}, plain[4096], box[4096], tail[12] = {7};
    first_commitment(txn, rec, leaf, c);
    first_commitment(txn, rec, leaf + 1, c2);
    key_be(k, leaf);
    key_be(k2, leaf + 1);
    MDB_val key = {sizeof(k), k}, key2 = {sizeof(k2), k2}, v2;
    cr_assert_eq(mdb_get(txn, subj, &key2, &v2), 0);
    hie_mpi_key_t *mk = NULL;
    hie_mpi_sealer_t *s = NULL;
    size_t len = 0;
    cr_assert_eq(hie_mpi_key_load(&mk, n->mpi_key), 0);
    cr_assert_eq(hie_mpi_sealer_create(mk, &s), 0);
    cr_assert_eq(hie_mpi_sealer_open(s, hie_span(v2.mv_data, v2.mv_size), hie_span(c2, 32),
        plain, sizeof(plain), &len), 0);
    size_t box_len = HIE_MPI_SEAL_NONCE_BYTES + len + HIE_MPI_SEAL_OVERHEAD_BYTES;
    cr_assert_eq(hie_mpi_sealer_seal(s, hie_span(plain, len), hie_span(c, 32), tail, box,
        box_len), 0);
    MDB_val nv = {box_len, box};
    cr_assert_eq(mdb_put(txn, subj, &key, &nv, 0), 0);
    hie_mpi_sealer_destroy(&s);
    hie_mpi_key_destroy(&mk);
}

/* After records were swapped: the tree built again over the records as they now stand and
 * the checkpoints dropped, so that neither the tree nor an internal anchor can tell. */
static void
tamper_rebuild_tree(MDB_txn *txn, MDB_dbi rec, MDB_dbi tree)
{
    MDB_dbi ckpt;
    cr_assert_eq(mdb_dbi_open(txn, "audit_ckpt", 0, &ckpt), 0);
    cr_assert_eq(mdb_drop(txn, ckpt, 0), 0);
    cr_assert_eq(mdb_drop(txn, tree, 0), 0);
    hie_audit_tree_t *t = NULL;
    cr_assert_eq(hie_audit_tree_create(&t, txn), 0);
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    cr_assert_eq(mdb_cursor_open(txn, rec, &cur), 0);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        hie_audit_hash_t leaf;
        uint64_t index = 0;
        cr_assert_eq(hie_audit_tree_leaf_hash(t, hie_span(v.mv_data, v.mv_size), &leaf), 0);
        cr_assert_eq(hie_audit_tree_append(t, txn, &leaf, &index), 0);
    }
    mdb_cursor_close(cur);
    hie_audit_tree_destroy(&t);
}

/* The tree cut back to leaf (every stored hash from it on, the size, the checkpoints) and
 * record leaf deleted, the records after it left in place. */
static void
tamper_cut_tail_kept(MDB_txn *txn, MDB_dbi rec, MDB_dbi tree, uint64_t leaf)
{
    MDB_dbi ckpt;
    cr_assert_eq(mdb_dbi_open(txn, "audit_ckpt", 0, &ckpt), 0);
    cr_assert_eq(mdb_drop(txn, ckpt, 0), 0);
    MDB_cursor *cur = NULL;
    uint8_t tk[9] = {0}, sz[1] = {0}, szv[8], k[8];
    key_be(tk, leaf);
    MDB_val key = {sizeof(tk), tk}, v;
    cr_assert_eq(mdb_cursor_open(txn, tree, &cur), 0);
    for (int rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT)) {
        cr_assert_eq(mdb_cursor_del(cur, 0), 0);
    }
    mdb_cursor_close(cur);
    key_be(szv, leaf);
    MDB_val skey = {1, sz}, sval = {8, szv};
    cr_assert_eq(mdb_put(txn, tree, &skey, &sval, 0), 0);
    key_be(k, leaf);
    MDB_val rkey = {8, k};
    cr_assert_eq(mdb_del(txn, rec, &rkey, NULL), 0);
}

/* Changes the stopped node's audit log directly in its LMDB file. */
static void
tamper(itest_node_t *n, enum tamper how, uint64_t leaf)
{
    char dir[ITEST_PATH + 16];
    snprintf(dir, sizeof(dir), "%s/state", n->data_dir);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi rec, tree;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    mdb_env_set_mapsize(env, 1ull << 30);
    cr_assert_eq(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "audit_rec", 0, &rec), 0);
    cr_assert_eq(mdb_dbi_open(txn, HIE_AUDIT_TREE_DB_NAME, 0, &tree), 0);
    if (how == UNINDEX_PATIENT || how == INDEX_EXTRA || how == UNINDEX_ORG || how == RESEAL ||
        how == CUT_TAIL_KEPT) {
        if (how == CUT_TAIL_KEPT) {
            tamper_cut_tail_kept(txn, rec, tree, leaf);
        } else if (how == RESEAL) {
            tamper_reseal(n, txn, rec, leaf);
        } else if (how == UNINDEX_ORG) {
            tamper_org_index(txn, leaf);
        } else {
            tamper_patient_index(txn, leaf, how == INDEX_EXTRA);
        }
        cr_assert_eq(mdb_txn_commit(txn), 0);
        mdb_env_close(env);
        return;
    }
    uint8_t k[8], k2[8], buf[4096], buf2[4096];
    key_be(k, leaf);
    key_be(k2, leaf + 1);
    MDB_val key = {8, k}, key2 = {8, k2}, v, v2;
    cr_assert_eq(mdb_get(txn, rec, &key, &v), 0);
    cr_assert_lt(v.mv_size, sizeof(buf));
    memcpy(buf, v.mv_data, v.mv_size);
    MDB_val copy = {v.mv_size, buf};
    if (how == EDIT) {
        buf[v.mv_size / 2] ^= 0x01;
        cr_assert_eq(mdb_put(txn, rec, &key, &copy, 0), 0);
    } else if (how == DELETE) {
        cr_assert_eq(mdb_del(txn, rec, &key, NULL), 0);
    } else if (how == REORDER || how == REBUILT) {
        cr_assert_eq(mdb_get(txn, rec, &key2, &v2), 0);
        memcpy(buf2, v2.mv_data, v2.mv_size);
        MDB_val copy2 = {v2.mv_size, buf2};
        cr_assert_eq(mdb_put(txn, rec, &key, &copy2, 0), 0);
        cr_assert_eq(mdb_put(txn, rec, &key2, &copy, 0), 0);
        if (how == REBUILT) {
            tamper_rebuild_tree(txn, rec, tree);
        }
    } else { /* cut the log back to leaf entries: records, leaf hashes and the size */
        uint8_t tk[9] = {0}, sz[1] = {0}, szv[8]; /* leaf i's key: i (8) || level 0 */
        for (uint64_t i = leaf; mdb_get(txn, rec, &key, &v) == 0; key_be(k, ++i)) {
            cr_assert_eq(mdb_del(txn, rec, &key, NULL), 0);
            key_be(tk, i);
            MDB_val tkey = {9, tk};
            (void)mdb_del(txn, tree, &tkey, NULL);
        }
        key_be(szv, leaf);
        MDB_val skey = {1, sz}, sval = {8, szv};
        cr_assert_eq(mdb_put(txn, tree, &skey, &sval, 0), 0);
    }
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static int
verify(itest_node_t *n, const char *extra, char *out, size_t cap)
{
    return itest_ctl(n, out, cap, "audit verify %s", extra != NULL ? extra : "");
}

/* PIX queries from the hospital: count audit records, then wait for their checkpoint. */
static void
queries(itest_node_t *n, const char *tag, int count, hie_arena_t *a)
{
    hie_client_t *h = itest_client(n, HOSP);
    for (int i = 0; i < count; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s%d", tag, i);
        cr_assert_eq(pix(h, id, HOSP, "H-1", a)->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    }
    hie_client_destroy(&h);
    char needle[64];
    snprintf(needle, sizeof(needle), "checkpoint signed\" size=%zu ",
        itest_db_entries_settled(n, "audit_rec"));
    cr_assert(itest_log_wait(n, needle, 15000), "checkpoint %s", needle);
}

/* A node with six audit records (PIX queries) under a checkpoint, stopped. */
static void
six_records_stopped(itest_node_t *n, hie_arena_t *a)
{
    setup(n, NULL);
    hie_client_t *h = itest_client(n, HOSP), *c = itest_client(n, CLINIC);
    two_records(h, c, a);
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    queries(n, "a", 6, a);
    cr_assert_eq(itest_node_stop(n, SIGTERM), 0);
}

/* A node whose audit tree was cut back below the last checkpoint it signed refuses to
 * start (it would sign a second, conflicting head for those sizes); restored, it starts. */
Test(consent, a_node_whose_tree_no_longer_extends_its_checkpoint_does_not_start,
    .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    six_records_stopped(&n, a);
    char out[8192];
    cr_assert_eq(itest_sh(out, sizeof(out), "cp -a '%s' '%s.orig'", n.data_dir, n.data_dir), 0);
    tamper(&n, TRUNCATE, 4);
    int rc = itest_sh(out, sizeof(out), "timeout 20 '%s' --config '%s'", HIE_NODE_BIN, n.cfg);
    cr_assert_eq(rc, 1, "refused: %s", out);
    cr_assert(strstr(out, "does not extend the last checkpoint") != NULL, "%s", out);
    cr_assert_eq(itest_sh(out, sizeof(out), "rm -rf '%s' && cp -a '%s.orig' '%s'", n.data_dir,
        n.data_dir, n.data_dir), 0);
    itest_node_start(&n);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* A node whose audit.key was replaced (another valid key) does not start: every checkpoint
 * it signed, and auditors hold, would stop verifying. Before, only a key the node had just
 * made for itself was refused; a key put in by hand started, and hiectl audit verify then
 * called the whole log tampered. Its own key back, it starts. */
Test(consent, a_node_whose_audit_key_was_replaced_does_not_start, .timeout = 120)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    six_records_stopped(&n, a);
    char out[8192];
    cr_assert_eq(itest_sh(out, sizeof(out), "cd '%s' && mv audit.key audit.key.own && "
        "(umask 077; head -c 32 /dev/urandom > audit.key)", n.data_dir), 0, "%s", out);
    int rc = itest_sh(out, sizeof(out), "timeout 20 '%s' --config '%s'", HIE_NODE_BIN, n.cfg);
    cr_assert_eq(rc, 1, "refused: %s", out);
    cr_assert(strstr(out, "not signed by this node's audit.key") != NULL, "%s", out);
    cr_assert_eq(itest_sh(out, sizeof(out), "cd '%s' && mv audit.key.own audit.key",
        n.data_dir), 0, "%s", out);
    itest_node_start(&n);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

/* Writes the newest checkpoint of the other branch (<data_dir>.b) to path. */
static void
fork_note(itest_node_t *n, const char *path)
{
    char dir[ITEST_PATH + 16];
    snprintf(dir, sizeof(dir), "%s.b/state", n->data_dir);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi dbi;
    MDB_val k, v;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "audit_ckpt", 0, &dbi), 0);
    cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
    cr_assert_eq(mdb_cursor_get(cur, &k, &v, MDB_LAST), 0);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(v.mv_data, 1, v.mv_size, f), v.mv_size);
    fclose(f);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

Test(consent, audit_verify_detects_edit_delete_reorder_truncate_and_fork, .timeout = 300)
{
    itest_node_t n;
    hie_arena_t *a = arena_new();
    six_records_stopped(&n, a);
    char out[8192], cmd[3 * ITEST_PATH];
    cr_assert_eq(verify(&n, NULL, out, sizeof(out)), 0, "untouched log verifies: %s", out);
    cr_assert(strstr(out, "audit log verified: records=6") != NULL, "%s", out);
    /* each mutation on a fresh copy of the files */
    snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s.orig'", n.data_dir, n.data_dir);
    cr_assert_eq(itest_sh(out, sizeof(out), "%s", cmd), 0);
    static const enum tamper hows[] = {EDIT, DELETE, REORDER, TRUNCATE, UNINDEX_PATIENT,
        UNINDEX_ORG, INDEX_EXTRA, RESEAL, REBUILT, CUT_TAIL_KEPT};
    static const char *const names[] = {"edit", "delete", "reorder", "truncate",
        "unindex-patient", "unindex-org", "index-extra", "reseal", "reorder-rebuilt",
        "cut-tail-kept"};
    static const char *const said[] = {NULL, NULL, NULL, NULL,
        "missing from the patient index", "missing from the organization index",
        "the patient index has 7 entries, the records call for 6: entries added",
        "record 2: a patient entry is missing or does not match its commitment",
        "record 2: stamped leaf 3", "record 3: stored past the tree's size (2)"};
    for (size_t i = 0; i < sizeof(hows) / sizeof(hows[0]); i++) {
        tamper(&n, hows[i], hows[i] == TRUNCATE ? 4 : 2);
        cr_assert_eq(verify(&n, NULL, out, sizeof(out)), 1, "%s detected: %s", names[i], out);
        cr_assert(strstr(out, "TAMPERING DETECTED") != NULL, "%s: %s", names[i], out);
        cr_assert(said[i] == NULL || strstr(out, said[i]) != NULL, "%s: %s", names[i], out);
        cr_log_info("%s: %s", names[i], out);
        if (hows[i] == UNINDEX_ORG) { /* the organization index needs no data key */
            cr_assert_eq(itest_sh(out, sizeof(out), "grep -v '^mpi:' '%s' > '%s/nokey.yaml' && "
                "'%s' --config '%s/nokey.yaml' audit verify", n.cfg, n.root, HIE_CTL_BIN,
                n.root), 1, "unindex-org without the data key: %s", out);
            cr_assert(strstr(out, said[i]) != NULL, "%s", out);
            /* a configured key that cannot be read is an error, not a lesser check */
            cr_assert_eq(itest_sh(out, sizeof(out), "sed 's|^mpi:.*|mpi: {key_file: "
                "/nonexistent.key}|' '%s' > '%s/badkey.yaml' && '%s' --config "
                "'%s/badkey.yaml' audit verify", n.cfg, n.root, HIE_CTL_BIN, n.root), 2, "%s",
                out);
        }
        cr_assert_eq(itest_sh(out, sizeof(out), "rm -rf '%s' && cp -a '%s.orig' '%s'",
            n.data_dir, n.data_dir, n.data_dir), 0);
    }
    cr_assert_eq(verify(&n, NULL, out, sizeof(out)), 0, "restored: %s", out);
    /* a fork: the same node key signs a different history from the same prefix */
    itest_node_start(&n);
    queries(&n, "b", 3, a);
    cr_assert_eq(itest_node_stop(&n, SIGTERM), 0);
    cr_assert_eq(itest_sh(out, sizeof(out), "mv '%s' '%s.b' && cp -a '%s.orig' '%s'",
        n.data_dir, n.data_dir, n.data_dir, n.data_dir), 0);
    itest_node_start(&n);
    queries(&n, "c", 3, a);
    cr_assert_eq(itest_node_stop(&n, SIGTERM), 0);
    /* the other branch's last checkpoint, as an auditor would hold it */
    char note[ITEST_PATH + 16];
    snprintf(note, sizeof(note), "%s/fork.note", n.root);
    fork_note(&n, note);
    snprintf(cmd, sizeof(cmd), "--checkpoint '%s'", note);
    cr_assert_eq(verify(&n, cmd, out, sizeof(out)), 1, "fork detected: %s", out);
    cr_assert(strstr(out, "forked") != NULL, "%s", out);
    cr_log_info("fork: %s", out);
    cr_assert_eq(verify(&n, NULL, out, sizeof(out)), 0, "its own history verifies: %s", out);
    /* the anchor as an auditor's saved report holds it (its "checkpoint"): read as such; a
     * file that is no checkpoint of this log is the operator's mistake (exit 2), not
     * tampering (it said TAMPERING DETECTED, exit 1) */
    char report[ITEST_PATH + 16];
    snprintf(report, sizeof(report), "%s/report.json", n.root);
    char text[4096];
    FILE *f = fopen(note, "rb");
    cr_assert_not_null(f);
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[len] = '\0';
    json_t *j = json_pack("{s:s, s:s}", "format", "hie-audit-report/1", "checkpoint", text);
    cr_assert_not_null(j);
    cr_assert_eq(json_dump_file(j, report, JSON_INDENT(1)), 0);
    json_decref(j);
    snprintf(cmd, sizeof(cmd), "--checkpoint '%s'", report);
    cr_assert_eq(verify(&n, cmd, out, sizeof(out)), 1, "the fork, from a report: %s", out);
    cr_assert(strstr(out, "forked") != NULL, "%s", out);
    cr_assert_eq(itest_sh(out, sizeof(out), "echo '{}' > '%s'", report), 0);
    cr_assert_eq(verify(&n, cmd, out, sizeof(out)), 2, "a report without one: %s", out);
    cr_assert(strstr(out, "TAMPERING") == NULL, "%s", out);
    snprintf(cmd, sizeof(cmd), "--checkpoint /dev/null");
    cr_assert_eq(verify(&n, cmd, out, sizeof(out)), 2, "no checkpoint at all: %s", out);
    cr_assert(strstr(out, "TAMPERING") == NULL, "%s", out);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}
