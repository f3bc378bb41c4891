/*
 * query.c - record query and document retrieval as a worker runs them (issue 5).
 *
 * A record query names a patient (organization + MRN, or EUID) and optional classes, type
 * codes and a date range. The broker reads the repository's documents of every source record
 * of the patient's EUID, opens each (sealed with the data key), filters it, and decides consent
 * for the requester per document (action QUERY, the document's labels, class and date): a
 * document that is denied, or that carries a label the decision would redact, is left out as
 * if it did not exist. Every source asked is listed with its own status, so a partial answer
 * is explicit. One audit record per query names the documents disclosed; it is committed
 * before the reply (the worker parks it). Retrieval of one document by id works the same way.
 *
 * Responders: members registered as responders that have a record of the patient (other
 * than the requester) get the query forwarded on their receiving connection; the worker waits
 * for their answers up to query.responder_timeout_ms (worker.c), then hie_node__query_complete
 * decides consent on their documents too and lists each responder with ok, error or timeout.
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <stdlib.h>
#include <string.h>

#define QUERY_LIMIT_DEFAULT 100u
#define QUERY_LIMIT_MAX 1000u
#define QUERY_SCAN_MAX 10000u /* documents looked at per query, over all source records */
#define QUERY_SCAN_BYTES_MAX (64u * 1024u * 1024u) /* and sealed bytes opened per query */
#define QUERY_FILTER_MAX 16u
#define QUERY_SCRATCH_BYTES (8u * 1024u * 1024u) /* a stored 1 MiB document, opened */
#define NOT_FOUND_MRN "no record of this MRN at this organization"

struct query {
    node_ctx_t *ctx;
    MDB_txn *txn;
    hie_arena_t *arena;
    const node_who_t *who;
    const Hie__V1__RecordQuery *q;
    const char *euid;
    Hie__V1__DocumentEntry **docs;
    size_t n, cap;
    char **ids;                 /* disclosed document ids, for the audit record */
    node_query_tally_t *tally;
    hie_arena_t *scratch;       /* one stored document at a time, opened */
    size_t scanned;             /* documents looked at, and their sealed bytes: bounded per */
    uint64_t scanned_bytes;     /* query (QUERY_SCAN_MAX, QUERY_SCAN_BYTES_MAX) */
    bool partial;               /* stopped at those bounds: the repository holds more */
    bool merged_cut;            /* a record had more merged (A40) records than it reads */
};

static int
bad(node_mpi_err_t *e, const char *field, const char *message)
{
    return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, field, message);
}

int
hie_node__doc_unseal(node_ctx_t *ctx, const Hie__V1__QueuedMessage *q, hie_arena_t *arena,
    Hie__V1__Document **doc)
{
    ProtobufCMessage *dm = NULL;
    *doc = NULL;
    if (q->sealed_document.len < HIE_MPI_SEAL_NONCE_BYTES) {
        return HIE_ECORRUPT;
    }
    size_t cap = q->sealed_document.len, len = 0;
    uint8_t *plain = hie_arena_alloc(arena, cap);
    int rc = plain == NULL ? HIE_ENOMEM : hie_mpi_open(hie_node__state_mpi_key(ctx->state),
        hie_span(q->sealed_document.data + HIE_MPI_SEAL_NONCE_BYTES,
            cap - HIE_MPI_SEAL_NONCE_BYTES),
        hie_span((const uint8_t *)q->message_id, strlen(q->message_id)),
        q->sealed_document.data, plain, cap, &len);
    rc = rc ? rc : hie_proto_unpack(&hie__v1__document__descriptor, hie_span(plain, len),
        arena, &dm);
    *doc = (Hie__V1__Document *)dm;
    return rc != 0 ? HIE_ECORRUPT : 0;
}

/* The stored message and its document, opened. */
static int
doc_open(node_ctx_t *ctx, hie_span_t stored, hie_arena_t *arena, Hie__V1__QueuedMessage **qm,
    Hie__V1__Document **doc)
{
    ProtobufCMessage *m = NULL;
    int rc = hie_proto_unpack(&hie__v1__queued_message__descriptor, stored, arena, &m);
    *qm = (Hie__V1__QueuedMessage *)m;
    return rc != 0 ? HIE_ECORRUPT : hie_node__doc_unseal(ctx, *qm, arena, doc);
}

/* The document's labels and class; false when a label is not one the consent engine knows
 * (a responder's answers are not validated as pushes are: "sud", "42CFR2"). */
static bool
doc_labels(const Hie__V1__Document *d, uint32_t *labels, enum hie_consent_class *cls)
{
    bool known = true;
    *labels = 0;
    for (size_t i = 0; i < d->n_security_labels; i++) {
        enum hie_consent_label l;
        if (hie_consent_label_parse(d->security_labels[i], strlen(d->security_labels[i]),
            &l) == 0) {
            *labels |= HIE_CONSENT_LABEL_BIT(l);
        } else {
            known = false;
        }
    }
    /* a class the engine does not know (a responder's own code for it) could be one a
     * directive denies: decided as unknown, i.e. as every class (it was OTHER, and a deny of
     * imaging reports let a responder's "Imaging" entry through) */
    *cls = HIE_CONSENT_CLASS_NONE;
    if (d->class_code != NULL && d->class_code[0] != '\0' &&
        hie_consent_class_parse(d->class_code, strlen(d->class_code), cls) != 0) {
        *cls = HIE_CONSENT_CLASS_NONE;
    }
    return known;
}

/* The decision on one document. A label the engine does not know could be one a directive
 * or Part 2 restricts under another spelling: the document is withheld (fail closed). */
static void
doc_decide(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena, const node_who_t *who,
    const char *euid, const Hie__V1__Document *d, Hie__V1__ConsentAction action,
    hie_consent_decision_t *out)
{
    enum hie_consent_class cls;
    uint32_t labels = 0;
    bool known = doc_labels(d, &labels, &cls);
    hie_node__consent_decide_doc(ctx, txn, arena, who, euid, action, labels, cls, d->date_ms,
        out);
    if (!known) {
        out->decision = HIE_CONSENT_DENY;
        out->reason = "unknown-label";
        out->break_glass = false;
    } else if (hie_consent_permitted(out) &&
               (out->obligations & labels & HIE_CONSENT_OBL_REDACT_MASK)) {
        out->decision = HIE_CONSENT_DENY;
        out->reason = "consent-redact";
        out->break_glass = false;
    }
}

/* A retrieval by document id: the patient's identity first, as a record query decides it
 * (query_hidden), then the document. A patient hidden from the requester is not found here
 * either, though document ids can be guessed. */
static void
retrieve_decide(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena, const node_who_t *who,
    const char *euid, const Hie__V1__Document *d, hie_consent_decision_t *out)
{
    hie_node__consent_decide(ctx, txn, arena, who, euid,
        HIE__V1__CONSENT_ACTION__CONSENT_ACTION_IDENTITY, 0, out);
    if (hie_consent_permitted(out)) {
        doc_decide(ctx, txn, arena, who, euid, d, HIE__V1__CONSENT_ACTION__CONSENT_ACTION_QUERY,
            out);
    }
}

/* Counts one document's decision into t; returns whether it is disclosed. */
static bool
tally_add(node_query_tally_t *t, const hie_consent_decision_t *dec)
{
    if (!hie_consent_permitted(dec)) {
        t->withheld++;
        t->deny = *dec;
        return false;
    }
    if (!t->have_permit || (dec->break_glass && !t->permit.break_glass)) {
        t->permit = *dec;
        t->have_permit = true;
    }
    return true;
}

/* The audit subject's decision for a query that disclosed n documents: a disclosed
 * document's (break-glass if any was), "consent-partial" when others were withheld (unless
 * the glass was broken: that reason stays); the deciding denial when everything was
 * withheld; a permit "no-documents" when there was nothing to decide on. */
static void
tally_decision(const node_query_tally_t *t, size_t n, hie_consent_decision_t *out)
{
    if (n > 0 && t->have_permit) {
        *out = t->permit;
        if (t->withheld > 0 && !out->break_glass) {
            out->reason = "consent-partial";
        }
    } else if (t->withheld > 0) {
        *out = t->deny;
    } else {
        memset(out, 0, sizeof(*out));
        out->decision = HIE_CONSENT_PERMIT;
        out->reason = "no-documents";
        out->accounting_excluded = true; /* nothing was disclosed: not in the accounting */
    }
}

static bool
in_list(char **list, size_t n, const char *v)
{
    if (n == 0) {
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (v != NULL && strcmp(list[i], v) == 0) {
            return true;
        }
    }
    return false;
}

static bool
doc_wanted(const Hie__V1__RecordQuery *q, const Hie__V1__Document *d)
{
    return in_list(q->class_codes, q->n_class_codes, d->class_code) &&
           in_list(q->type_codes, q->n_type_codes, d->type_code) &&
           (q->from_ms == 0 || d->date_ms >= q->from_ms) &&
           (q->to_ms == 0 || d->date_ms < q->to_ms);
}

/* s copied into arena (NULL stays NULL); *ok cleared when out of room. */
static char *
dup_str(hie_arena_t *arena, const char *s, bool *ok)
{
    size_t n = s != NULL ? strlen(s) + 1 : 0;
    char *c = n > 0 ? hie_arena_alloc(arena, n) : NULL;
    if (n > 0 && c == NULL) {
        *ok = false;
    }
    return c != NULL ? memcpy(c, s, n) : NULL;
}

/* The listing entry of a stored document, in arena: copied, since the document was opened in
 * a scratch arena that the next document reuses (a 1 MiB document each: a query's own arena
 * would hold only a few dozen). */
static Hie__V1__DocumentEntry *
entry_make(hie_arena_t *arena, const Hie__V1__QueuedMessage *m, const Hie__V1__Document *d)
{
    Hie__V1__DocumentEntry *en = hie_arena_alloc(arena, sizeof(*en));
    char **labels = hie_arena_alloc(arena, (d->n_security_labels + 1) * sizeof(*labels));
    bool ok = en != NULL && labels != NULL;
    if (!ok) {
        return NULL;
    }
    hie__v1__document_entry__init(en);
    en->document_id = dup_str(arena, m->message_id, &ok);
    en->source = (char *)(uintptr_t)NODE_REPOSITORY_SOURCE;
    en->title = dup_str(arena, d->title, &ok);
    en->class_code = dup_str(arena, d->class_code, &ok);
    en->type_code = dup_str(arena, d->type_code, &ok);
    en->author_org = dup_str(arena, d->author_org, &ok);
    en->date_ms = d->date_ms;
    en->content_type = dup_str(arena, d->content_type, &ok);
    en->size = d->content.len;
    for (size_t i = 0; i < d->n_security_labels; i++) {
        labels[i] = dup_str(arena, d->security_labels[i], &ok);
    }
    en->n_security_labels = d->n_security_labels;
    en->security_labels = labels;
    return ok ? en : NULL;
}

static int
query_one(void *vctx, hie_span_t id, hie_span_t stored)
{
    struct query *x = vctx;
    (void)id;
    Hie__V1__QueuedMessage *m = NULL;
    Hie__V1__Document *d = NULL;
    if (x->scanned >= QUERY_SCAN_MAX || x->scanned_bytes >= QUERY_SCAN_BYTES_MAX) {
        x->partial = true;
        return 1;
    }
    x->scanned++;
    x->scanned_bytes += stored.len;
    hie_arena_reset(x->scratch);
    int rc = doc_open(x->ctx, stored, x->scratch, &m, &d);
    if (rc != 0) {
        return rc;
    }
    if (!doc_wanted(x->q, d)) {
        return 0;
    }
    if (x->n == x->cap) {
        return 1; /* the limit: stop (before deciding, so the tally counts what was seen) */
    }
    hie_consent_decision_t dec;
    doc_decide(x->ctx, x->txn, x->arena, x->who, x->euid, d,
        HIE__V1__CONSENT_ACTION__CONSENT_ACTION_QUERY, &dec);
    if (!tally_add(x->tally, &dec)) {
        return 0;
    }
    x->docs[x->n] = entry_make(x->arena, m, d);
    if (x->docs[x->n] == NULL ||
        (x->docs[x->n]->handling = hie_node__handling(&dec, x->arena)) == NULL) {
        return HIE_ENOMEM;
    }
    x->ids[x->n] = x->docs[x->n]->document_id;
    x->n++;
    return 0;
}

static int
cmp_date(const void *a, const void *b)
{
    const Hie__V1__DocumentEntry *x = *(Hie__V1__DocumentEntry *const *)a;
    const Hie__V1__DocumentEntry *y = *(Hie__V1__DocumentEntry *const *)b;
    return x->date_ms > y->date_ms ? -1 : x->date_ms < y->date_ms;
}

/* The patient's EUID: by (org, MRN) or given. */
static int
query_euid(node_ctx_t *ctx, MDB_txn *txn, const Hie__V1__RecordQuery *q, hie_arena_t *arena,
    char *euid, node_mpi_err_t *e)
{
    if (q->euid != NULL && q->euid[0] != '\0') {
        if (strlen(q->euid) >= HIE_MPI_EUID_BYTES) {
            return bad(e, "euid", "not an EUID");
        }
        memcpy(euid, q->euid, strlen(q->euid) + 1);
        return 0;
    }
    if (q->patient == NULL || q->patient->org_id == NULL || !hie_mpi_mrn_valid(q->patient->mrn)) {
        return bad(e, "patient", "the patient by organization and MRN, or euid");
    }
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    hie_mpi_rec_hash(hie_node__state_mpi_key(ctx->state), q->patient->org_id, q->patient->mrn,
        h);
    int rc = hie_mpi_store_euid_of(hie_node__state_mpi(ctx->state), txn, h, arena, euid);
    if (rc == HIE_ENOTFOUND) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn", NOT_FOUND_MRN);
    }
    return rc == 0 ? 0 : mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL,
        "internal error");
}

static int
query_check(const Hie__V1__RecordQuery *q, node_mpi_err_t *e)
{
    if (q->limit > QUERY_LIMIT_MAX) {
        return bad(e, "limit", "at most 1000");
    }
    if (q->n_class_codes > QUERY_FILTER_MAX || q->n_type_codes > QUERY_FILTER_MAX) {
        return bad(e, q->n_class_codes > QUERY_FILTER_MAX ? "class_codes" : "type_codes",
            "at most 16");
    }
    if (q->from_ms < 0 || q->to_ms < 0 || (q->to_ms != 0 && q->from_ms >= q->to_ms)) {
        return bad(e, "to_ms", "the period must have from_ms < to_ms");
    }
    return 0;
}

/* The documents of source record h and of every record merged (A40) into it: they stay
 * filed under the record they were pushed for, which a merge takes out of the EUID's
 * members (they were left out of every query after the merge, though retrievable by id). */
static int
query_record(struct query *x, const uint8_t *h)
{
    node_repo_t *repo = hie_node__state_repo(x->ctx->state);
    const uint8_t *merged = NULL;
    size_t n = 0;
    int rc = hie_node__repo_each(repo, x->txn, h, QUERY_SCAN_MAX, query_one, x);
    int mrc = rc == 0 ? hie_mpi_store_merged_into(hie_node__state_mpi(x->ctx->state), x->txn,
        h, x->arena, &merged, &n) : 0;
    rc = rc ? rc : mrc == HIE_ELIMIT ? 0 : mrc; /* the first 64 merged records */
    for (size_t i = 0; rc == 0 && i < n && x->n < x->cap && !x->partial; i++) {
        rc = hie_node__repo_each(repo, x->txn, merged + i * HIE_MPI_REC_HASH_BYTES,
            QUERY_SCAN_MAX, query_one, x);
    }
    if (rc == 0 && mrc == HIE_ELIMIT) {
        x->merged_cut = true; /* more merged records than one query reads: it says so */
    }
    return rc;
}

/* Every document of every source record of the EUID. */
static int
query_scan(struct query *x)
{
    const uint8_t *members = NULL;
    size_t count = 0;
    int rc = hie_mpi_store_euid_members(hie_node__state_mpi(x->ctx->state), x->txn, x->euid,
        x->arena, &members, &count);
    rc = rc ? rc : hie_arena_create(&x->scratch, QUERY_SCRATCH_BYTES);
    for (size_t i = 0; rc == 0 && i < count && x->n < x->cap && !x->partial; i++) {
        rc = query_record(x, members + i * HIE_MPI_REC_HASH_BYTES);
    }
    hie_arena_destroy(&x->scratch);
    qsort(x->docs, x->n, sizeof(*x->docs), cmp_date);
    return rc;
}

/* Whether responder org_id may be asked: active, and the patient's consent lets it know of
 * the patient (the forward tells it who asks about its patient, and why). A responder the
 * patient excluded was asked all the same, and learnt of the requester's care of them. */
static bool
responder_may_ask(struct query *x, const char *org_id)
{
    hie_org_t *org = NULL;
    if (hie_node__state_org_get_in(x->ctx->state, x->txn, org_id, x->arena, &org) != 0 ||
        org->status != HIE__V1__ORG_STATUS__ORG_ACTIVE) {
        return false;
    }
    node_who_t to = {org_id, org, x->who->purpose, x->who->request_id, x->who->rand};
    hie_consent_decision_t dec;
    hie_node__consent_decide(x->ctx, x->txn, x->arena, &to, x->euid,
        HIE__V1__CONSENT_ACTION__CONSENT_ACTION_IDENTITY, 0, &dec);
    return hie_consent_permitted(&dec);
}

/* Notes a responder the query will not ask, once. */
static void
unasked_add(node_query_fwd_t *fwd, const char *org)
{
    for (size_t k = 0; k < fwd->n_unasked; k++) {
        if (strcmp(fwd->unasked[k], org) == 0) {
            return;
        }
    }
    fwd->unasked_total++; /* past the listed names, organizations may be counted twice */
    if (fwd->n_unasked < NODE_QUERY_UNASKED_LISTED) {
        fwd->unasked[fwd->n_unasked++] = org;
    }
}

/* The responders to forward to: registered, active, with a record of the patient, not the
 * requester; at most query.max_responders, the others noted as not asked. */
static int
query_responders(struct query *x, node_query_fwd_t *fwd)
{
    Hie__V1__PatientId **ids = NULL;
    size_t n = 0;
    size_t max = x->ctx->cfg.query_max_responders;
    max = max == 0 || max > NODE_QUERY_RESPONDERS_MAX ? NODE_QUERY_RESPONDERS_MAX : max;
    int rc = hie_mpi_store_euid_ids(hie_node__state_mpi(x->ctx->state), x->txn, x->euid,
        x->arena, &ids, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *org = ids[i]->org_id;
        size_t k = 0;
        while (k < fwd->n && strcmp(fwd->orgs[k], org) != 0) {
            k++;
        }
        if (k == fwd->n && (strcmp(org, x->who->org_id) == 0
            || !hie_node__repo_is_responder(hie_node__state_repo(x->ctx->state), x->txn, org)
            || !responder_may_ask(x, org))) {
            continue; /* a suspended or excluded responder is not told who asks about whom */
        }
        if (k == fwd->n && k == max) {
            unasked_add(fwd, org);
            continue;
        }
        if (k == fwd->n) {
            fwd->orgs[fwd->n] = org;
            fwd->ids[fwd->n] = hie_arena_alloc(x->arena, (n + 1) * sizeof(*ids));
            if (fwd->ids[fwd->n] == NULL) {
                return HIE_ENOMEM;
            }
            fwd->n_ids[fwd->n++] = 0;
        }
        fwd->ids[k][fwd->n_ids[k]++] = ids[i];
    }
    fwd->euid = x->euid;
    return rc;
}

/* Consent on the patient's identity, decided before anything about them is read, as PIX
 * decides it. A patient hidden from the requester is answered as one the HIE knows nothing
 * about: another organization's MRN gets NOT_FOUND in the unknown MRN's words; the requester's
 * own MRN, or an EUID, gets no documents and no responders (as an EUID without records). True
 * when hidden; *audit then holds the record of the denial and *rc the reply's error (or 0). */
static bool
query_hidden(node_ctx_t *ctx, const node_who_t *who, const Hie__V1__RecordQuery *q,
    MDB_txn *txn, hie_arena_t *arena, const char *euid, node_audit_cmd_t *audit, int *rc,
    node_mpi_err_t *e)
{
    node_subject_t s = {euid, {0}, NULL, 0, NULL, 0};
    hie_node__consent_decide(ctx, txn, arena, who, euid,
        HIE__V1__CONSENT_ACTION__CONSENT_ACTION_IDENTITY, 0, &s.decision);
    if (hie_consent_permitted(&s.decision)) {
        return false;
    }
    bool other = (q->euid == NULL || q->euid[0] == '\0') &&
                 strcmp(q->patient->org_id, who->org_id) != 0;
    Hie__V1__ErrorCode outcome = other ? HIE__V1__ERROR_CODE__ERROR_NOT_FOUND
                                       : HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED;
    hie_node__audit_build(ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_RECORD_QUERY, outcome,
        &s, 1, arena, audit);
    *rc = !other ? 0 : mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn",
        NOT_FOUND_MRN);
    return true;
}

/* The reply: the repository's documents (x) and its status (src_rc). */
static Hie__V1__RecordQueryReply *
query_reply(const struct query *x, int src_rc)
{
    Hie__V1__RecordQueryReply *out = hie_arena_alloc(x->arena, sizeof(*out));
    Hie__V1__SourceResult *src = hie_arena_alloc(x->arena, sizeof(*src));
    Hie__V1__SourceResult **srcs = hie_arena_alloc(x->arena, sizeof(*srcs));
    if (out == NULL || src == NULL || srcs == NULL) {
        return NULL;
    }
    hie__v1__source_result__init(src);
    src->source = (char *)(uintptr_t)NODE_REPOSITORY_SOURCE;
    src->status = src_rc == 0 ? HIE__V1__SOURCE_STATUS__SOURCE_OK
                              : HIE__V1__SOURCE_STATUS__SOURCE_ERROR;
    src->detail = (char *)(uintptr_t)(src_rc != 0 ? "the repository could not be read"
        : (x->partial || x->merged_cut) && x->tally->withheld == 0 /* else it could count what
                                                                 * consent hides */
            ? x->partial ? "partial: the repository holds more of this patient's documents "
                           "than one query opens (10,000, or 64 MiB)"
                         : "partial: a record of the patient has more records merged into it "
                           "than one query reads (64)"
        : "");
    srcs[0] = src;
    hie__v1__record_query_reply__init(out);
    out->euid = (char *)(uintptr_t)x->euid;
    out->n_documents = x->n;
    out->documents = x->docs;
    out->n_sources = 1;
    out->sources = srcs;
    return out;
}

int
hie_node__query_prepare(node_ctx_t *ctx, const node_who_t *who, const Hie__V1__RecordQuery *q,
    hie_arena_t *arena, Hie__V1__RecordQueryReply **reply, node_audit_cmd_t *audit,
    node_query_fwd_t *fwd, node_mpi_err_t *e)
{
    *reply = NULL;
    audit->needed = false;
    fwd->n = 0;
    fwd->n_unasked = fwd->unasked_total = 0;
    char *euid = hie_arena_alloc(arena, HIE_MPI_EUID_BYTES);
    memset(&fwd->tally, 0, sizeof(fwd->tally));
    struct query x = {ctx, NULL, arena, who, q, euid, NULL, 0,
        q->limit ? q->limit : QUERY_LIMIT_DEFAULT, NULL, &fwd->tally, NULL, 0, 0, false, false};
    fwd->limit = x.cap;
    x.docs = hie_arena_alloc(arena, (x.cap + 1) * sizeof(*x.docs));
    x.ids = hie_arena_alloc(arena, (x.cap + 1) * sizeof(*x.ids));
    if (euid == NULL || x.docs == NULL || x.ids == NULL ||
        hie_node__state_mpi_key(ctx->state) == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL, "not available");
    }
    int rc = query_check(q, e);
    if (rc != 0 || mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &x.txn)) {
        return rc != 0 ? rc : mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal");
    }
    rc = query_euid(ctx, x.txn, q, arena, euid, e);
    bool hidden = rc == 0 && query_hidden(ctx, who, q, x.txn, arena, euid, audit, &rc, e);
    int src_rc = rc == 0 && !hidden ? query_scan(&x) : 0;
    if (rc == 0 && !hidden && src_rc == 0) {
        src_rc = query_responders(&x, fwd);
    }
    mdb_txn_abort(x.txn);
    if (rc != 0 && !hidden && e->code == HIE__V1__ERROR_CODE__ERROR_NOT_FOUND) {
        /* an unknown patient: the query is audited, nothing is disclosed */
        hie_node__audit_build(ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_RECORD_QUERY,
            e->code, NULL, 0, arena, audit);
    }
    Hie__V1__RecordQueryReply *out = rc == 0 ? query_reply(&x, src_rc) : NULL;
    if (rc != 0 || out == NULL) {
        return rc != 0 ? rc : mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "not available");
    }
    *reply = out;
    if (fwd->n > 0 || hidden) {
        return 0; /* forwarded: the worker completes it with the answers; hidden: audited */
    }
    node_subject_t s = {euid, {0}, NULL, 0, x.ids, x.n};
    tally_decision(&fwd->tally, x.n, &s.decision);
    hie_node__audit_build(ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_RECORD_QUERY,
        HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED, &s, 1, arena, audit);
    return 0;
}

static bool
len_ok(const char *s, size_t max)
{
    return s == NULL || strlen(s) <= max;
}

static const char *
entry_check(const Hie__V1__DocumentEntry *d)
{
    if (d->document_id == NULL || d->document_id[0] == '\0' || strlen(d->document_id) > 200) {
        return "documents.document_id";
    }
    if (!len_ok(d->title, 512) || !len_ok(d->class_code, 64) || !len_ok(d->type_code, 64) ||
        !len_ok(d->author_org, HIE_ORG_ID_BYTES_MAX) || !len_ok(d->content_type, 128) ||
        !len_ok(d->source, HIE_ORG_ID_BYTES_MAX)) {
        return "documents";
    }
    if (d->n_security_labels > HIE_CONSENT_LABELS_COUNT) {
        return "documents.security_labels";
    }
    for (size_t k = 0; k < d->n_security_labels; k++) {
        if (!len_ok(d->security_labels[k], 32)) {
            return "documents.security_labels";
        }
    }
    return NULL;
}

const char *
hie_node__query_answer_check(const Hie__V1__QueryAnswer *a, bool retrieve)
{
    if (a->n_documents > 1000u) {
        return "documents";
    }
    if (!len_ok(a->error, 256)) {
        return "error";
    }
    if (a->document != NULL && (!retrieve ||
        a->document->content.len > HIE_PUSH_CONTENT_BYTES_MAX)) {
        return "document";
    }
    for (size_t i = 0; i < a->n_documents; i++) {
        const char *bad_field = entry_check(a->documents[i]);
        if (bad_field != NULL) {
            return bad_field;
        }
    }
    return NULL;
}

/* The patient's EUID now, from a document's own patient: one of source's MRNs (a responder's
 * answer; the author of a repository document), in the MPI. */
static int
answer_euid(node_ctx_t *ctx, MDB_txn *txn, const char *source, const Hie__V1__Document *d,
    hie_arena_t *arena, char *euid)
{
    if (d->patient == NULL || d->patient->org_id == NULL ||
        strcmp(d->patient->org_id, source) != 0 || !hie_mpi_mrn_valid(d->patient->mrn)) {
        return HIE_ENOTFOUND; /* not about one of its own patients: not disclosed */
    }
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    hie_mpi_rec_hash(hie_node__state_mpi_key(ctx->state), source, d->patient->mrn, h);
    return hie_mpi_store_euid_of(hie_node__state_mpi(ctx->state), txn, h, arena, euid);
}

/* A retrieval from a responder: fwd names it (no patient ids: the document says whose). */
static int
retrieve_responder(node_ctx_t *ctx, MDB_txn *txn, const node_who_t *who, const char *source,
    hie_arena_t *arena, node_query_fwd_t *fwd, node_mpi_err_t *e)
{
    hie_org_t *org = NULL;
    if (!hie_proto_org_id_valid(source, strlen(source)) || strcmp(source, who->org_id) == 0 ||
        !hie_node__repo_is_responder(hie_node__state_repo(ctx->state), txn, source) ||
        hie_node__state_org_get(ctx->state, source, arena, &org) != 0 ||
        org->status != HIE__V1__ORG_STATUS__ORG_ACTIVE) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "source",
            "not a responder of this HIE (the source a record query listed)");
    }
    memset(&fwd->tally, 0, sizeof(fwd->tally));
    fwd->n = 1;
    fwd->orgs[0] = source;
    fwd->ids[0] = NULL;
    fwd->n_ids[0] = 0;
    fwd->euid = NULL;
    return 0;
}

int
hie_node__retrieve_prepare(node_ctx_t *ctx, const node_who_t *who,
    const Hie__V1__RetrieveRequest *q, hie_arena_t *arena, Hie__V1__RetrieveReply **reply,
    node_audit_cmd_t *audit, node_query_fwd_t *fwd, node_mpi_err_t *e)
{
    *reply = NULL;
    audit->needed = false;
    fwd->n = 0;
    fwd->n_unasked = fwd->unasked_total = 0;
    fwd->limit = 1;
    Hie__V1__RetrieveReply *out = hie_arena_alloc(arena, sizeof(*out));
    MDB_txn *txn = NULL;
    if (out == NULL || hie_node__state_mpi_key(ctx->state) == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL, "not available");
    }
    if (q->document_id == NULL || q->document_id[0] == '\0' || strlen(q->document_id) > 200) {
        return bad(e, "document_id", "missing or too long");
    }
    if (mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn) != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    if (q->source != NULL && q->source[0] != '\0' && strcmp(q->source, NODE_REPOSITORY_SOURCE) != 0) {
        int frc = retrieve_responder(ctx, txn, who, q->source, arena, fwd, e);
        mdb_txn_abort(txn);
        return frc; /* the worker forwards, then completes with the answer */
    }
    hie_span_t stored;
    Hie__V1__QueuedMessage *m = NULL;
    Hie__V1__Document *d = NULL;
    node_subject_t s = {"", {0}, NULL, 0, NULL, 0};
    char *euid = hie_arena_alloc(arena, HIE_MPI_EUID_BYTES);
    int rc = hie_node__repo_get(hie_node__state_repo(ctx->state), txn, q->document_id, &stored);
    rc = rc ? rc : doc_open(ctx, stored, arena, &m, &d);
    /* the patient's EUID now, not the one stored at the push: a link, unlink or merge since
     * then moves the document to whoever its record belongs to (and to their consent) */
    rc = rc ? rc : euid == NULL ? HIE_ENOMEM
                 : d->patient == NULL || d->patient->org_id == NULL ? HIE_ENOTFOUND
                 : answer_euid(ctx, txn, d->patient->org_id, d, arena, euid);
    if (rc == 0) {
        s.euid = euid;
        retrieve_decide(ctx, txn, arena, who, euid, d, &s.decision);
    }
    mdb_txn_abort(txn);
    if (rc != 0 && rc != HIE_ENOTFOUND) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    bool ok = rc == 0 && hie_consent_permitted(&s.decision);
    s.document_ids = ok ? &m->message_id : NULL;
    s.n_document_ids = ok;
    hie_node__audit_build(ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_RETRIEVE, ok
        ? HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED : HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, &s,
        rc == 0 ? 1 : 0, arena, audit);
    if (!ok) { /* unknown, or withheld by consent: the same answer */
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "document_id",
            "no such document");
    }
    hie__v1__retrieve_reply__init(out);
    out->document_id = m->message_id;
    out->document = d;
    out->handling = hie_node__handling(&s.decision, arena);
    if (out->handling == NULL) { /* audited as disclosed: the member retries the same id */
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    *reply = out;
    return 0;
}

/* ---- responders ------------------------------------------------------------------------------ */

int
hie_node__query_forward_frame(node_ctx_t *ctx, const char *query_id, const node_who_t *who,
    const Hie__V1__RecordQuery *q, const char *document_id, Hie__V1__PatientId **ids,
    size_t n_ids, int64_t deadline_ms, uint8_t **buf, size_t *len)
{
    hie_envelope_t env = HIE__V1__ENVELOPE__INIT;
    Hie__V1__QueryForward f = HIE__V1__QUERY_FORWARD__INIT;
    f.query_id = (char *)(uintptr_t)query_id;
    f.requester_org = (char *)(uintptr_t)who->org_id;
    f.n_patient_ids = n_ids;
    f.patient_ids = ids;
    if (q != NULL) {
        f.n_class_codes = q->n_class_codes;
        f.class_codes = q->class_codes;
        f.n_type_codes = q->n_type_codes;
        f.type_codes = q->type_codes;
        f.from_ms = q->from_ms;
        f.to_ms = q->to_ms;
    }
    f.document_id = (char *)(uintptr_t)(document_id != NULL ? document_id : "");
    f.deadline_ms = deadline_ms;
    f.purpose = who->purpose;
    env.id = (char *)(uintptr_t)query_id;
    env.purpose = who->purpose;
    env.handled_ms = hie_time_wall_ms();
    env.body_case = HIE__V1__ENVELOPE__BODY_QUERY_FORWARD;
    env.query_forward = &f;
    return hie_proto_frame_encode(&env, ctx->cfg.frame_bytes_max, buf, len);
}

/* Consent for one responder document, from its listed labels, class and date; a permitted
 * entry gets the decision's handling marks (a responder's own value is replaced). */
static bool
entry_permitted(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena, const node_who_t *who,
    const char *euid, Hie__V1__DocumentEntry *en, node_query_tally_t *tally)
{
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    d.class_code = en->class_code;
    d.date_ms = en->date_ms;
    d.n_security_labels = en->n_security_labels;
    d.security_labels = en->security_labels;
    hie_consent_decision_t dec;
    doc_decide(ctx, txn, arena, who, euid, &d, HIE__V1__CONSENT_ACTION__CONSENT_ACTION_QUERY,
        &dec);
    en->handling = hie_consent_permitted(&dec) ? hie_node__handling(&dec, arena) : NULL;
    return tally_add(tally, &dec) && en->handling != NULL;
}

/* Entries past the query's limit decided to tell whether it left out one it would have listed. */
#define QUERY_CUT_PROBE_MAX 16u

/* Appends the permitted documents of one answer; [out] counts, *cut when the query's limit
 * left out an entry consent permits (one of the next QUERY_CUT_PROBE_MAX past it: whether
 * withheld ones are there is not told, nor counted in the audit record's tally). */
static int
answer_add(node_ctx_t *ctx, MDB_txn *txn, const node_who_t *who, const char *source,
    const Hie__V1__QueryAnswer *ans, Hie__V1__RecordQueryReply *r, size_t cap,
    hie_arena_t *arena, node_query_tally_t *tally, bool *cut)
{
    size_t probed = 0;
    for (size_t i = 0; i < ans->n_documents && i < QUERY_LIMIT_MAX && !*cut; i++) {
        Hie__V1__DocumentEntry *en = ans->documents[i];
        if (en->document_id == NULL || en->document_id[0] == '\0') {
            continue;
        }
        if (r->n_documents == cap) {
            if (probed++ == QUERY_CUT_PROBE_MAX) {
                break;
            }
            node_query_tally_t scratch;
            memset(&scratch, 0, sizeof(scratch));
            *cut = entry_permitted(ctx, txn, arena, who, r->euid, en, &scratch);
            continue;
        }
        if (!entry_permitted(ctx, txn, arena, who, r->euid, en, tally)) {
            continue; /* left out, as if the responder had not listed it */
        }
        en->source = (char *)(uintptr_t)source;
        r->documents[r->n_documents++] = en;
    }
    return 0;
}

/* The responders the query did not ask, each as a source "not asked"; the last one listed
 * also counts any past the listed names. */
static int
unasked_add_sources(Hie__V1__RecordQueryReply *r, const node_query_fwd_t *fwd,
    Hie__V1__SourceResult **srcs, hie_arena_t *arena)
{
    for (size_t i = 0; i < fwd->n_unasked; i++) {
        Hie__V1__SourceResult *s = hie_arena_alloc(arena, sizeof(*s));
        char *detail = hie_arena_alloc(arena, 128);
        if (s == NULL || detail == NULL) {
            return HIE_ENOMEM;
        }
        hie__v1__source_result__init(s);
        s->source = (char *)(uintptr_t)fwd->unasked[i];
        s->status = HIE__V1__SOURCE_STATUS__SOURCE_NOT_ASKED;
        size_t more = i + 1 == fwd->n_unasked ? fwd->unasked_total - fwd->n_unasked : 0;
        int w = snprintf(detail, 128, "not asked: a query asks at most %zu responder%s",
            fwd->n, fwd->n == 1 ? "" : "s");
        if (more > 0 && w > 0 && (size_t)w < 128) {
            snprintf(detail + w, 128 - (size_t)w, " (and up to %zu more not listed)", more);
        }
        s->detail = detail;
        srcs[r->n_sources++] = s;
    }
    return 0;
}

static int
sources_add(Hie__V1__RecordQueryReply *r, const node_query_fwd_t *fwd, const int *status,
    const bool *cut, hie_arena_t *arena)
{
    Hie__V1__SourceResult **srcs = hie_arena_alloc(arena, (r->n_sources + fwd->n +
        fwd->n_unasked + 1) * sizeof(*srcs));
    if (srcs == NULL) {
        return HIE_ENOMEM;
    }
    memcpy(srcs, r->sources, r->n_sources * sizeof(*srcs));
    for (size_t i = 0; i < fwd->n; i++) {
        Hie__V1__SourceResult *s = hie_arena_alloc(arena, sizeof(*s));
        if (s == NULL) {
            return HIE_ENOMEM;
        }
        hie__v1__source_result__init(s);
        s->source = (char *)(uintptr_t)fwd->orgs[i];
        s->status = (Hie__V1__SourceStatus)status[i];
        s->detail = (char *)(uintptr_t)(status[i] == HIE__V1__SOURCE_STATUS__SOURCE_TIMEOUT
            ? "no answer before the deadline" : status[i] == HIE__V1__SOURCE_STATUS__SOURCE_ERROR
            ? "the source could not answer" /* its own words are not decided by consent */
            : cut[i] ? "partial: the query's limit was reached before all its entries" : "");
        srcs[r->n_sources++] = s;
    }
    r->sources = srcs;
    return unasked_add_sources(r, fwd, srcs, arena);
}

/* The repository's documents were decided when the query came; decided again when it
 * completes, after the wait for the responders: a revoke acknowledged meanwhile counts for
 * them too. */
static void
repo_decide_again(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena, const node_who_t *who,
    Hie__V1__RecordQueryReply *reply, node_query_tally_t *tally)
{
    size_t kept = 0;
    for (size_t i = 0; i < reply->n_documents; i++) {
        Hie__V1__DocumentEntry *en = reply->documents[i];
        node_query_tally_t again;
        memset(&again, 0, sizeof(again));
        if (entry_permitted(ctx, txn, arena, who, reply->euid, en, &again)) {
            reply->documents[kept++] = en;
        } else {
            tally->withheld++;
            tally->deny = again.withheld > 0 ? again.deny : tally->deny;
        }
    }
    reply->n_documents = kept;
}

/* The patient hidden from the requester since the query came (a deny filed and acknowledged
 * during the wait for the responders): answered as query_hidden answers, no documents and no
 * sources but the repository's, after the denial's record. Returns 0 (the reply, emptied) or
 * the unknown MRN's error in e. */
static int
complete_hidden(Hie__V1__RecordQueryReply *reply, int rc)
{
    reply->n_documents = 0;
    reply->n_sources = reply->n_sources > 0 ? 1 : 0;
    if (reply->n_sources > 0) {
        reply->sources[0]->status = HIE__V1__SOURCE_STATUS__SOURCE_OK;
        reply->sources[0]->detail = (char *)(uintptr_t)"";
    }
    return rc;
}

int
hie_node__query_complete(node_ctx_t *ctx, const node_who_t *who, const Hie__V1__RecordQuery *q,
    Hie__V1__RecordQueryReply *reply, const node_query_fwd_t *fwd, const int *status,
    Hie__V1__QueryAnswer *const *answers, hie_arena_t *arena, node_audit_cmd_t *audit,
    node_mpi_err_t *e)
{
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn) != 0) {
        return HIE_ENOMEM;
    }
    /* the patient's identity was decided when the query came; decided again now, as its
     * documents are: the EUID and the responders' names went out after a deny */
    int hrc = 0;
    if (query_hidden(ctx, who, q, txn, arena, reply->euid, audit, &hrc, e)) {
        mdb_txn_abort(txn);
        return complete_hidden(reply, hrc);
    }
    node_query_tally_t tally = fwd->tally;
    repo_decide_again(ctx, txn, arena, who, reply, &tally);
    size_t total = reply->n_documents;
    for (size_t i = 0; i < fwd->n; i++) {
        total += answers[i] != NULL ? answers[i]->n_documents : 0;
    }
    /* the query's limit for all sources together: a responder's 1,000 entries past it are
     * neither decided nor listed (8 responders could make 8,000 decisions for a limit of 10) */
    size_t cap = fwd->limit > reply->n_documents ? fwd->limit : reply->n_documents;
    total = total < cap ? total : cap;
    Hie__V1__DocumentEntry **docs = hie_arena_alloc(arena, (total + 1) * sizeof(*docs));
    if (docs == NULL) {
        mdb_txn_abort(txn);
        return HIE_ENOMEM;
    }
    memcpy(docs, reply->documents, reply->n_documents * sizeof(*docs));
    reply->documents = docs;
    bool cut[NODE_QUERY_RESPONDERS_MAX] = {false};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < fwd->n; i++) {
        if (answers[i] != NULL && status[i] == HIE__V1__SOURCE_STATUS__SOURCE_OK) {
            rc = answer_add(ctx, txn, who, fwd->orgs[i], answers[i], reply, total, arena,
                &tally, &cut[i]);
        }
    }
    mdb_txn_abort(txn);
    qsort(reply->documents, reply->n_documents, sizeof(*reply->documents), cmp_date);
    rc = rc ? rc : sources_add(reply, fwd, status, cut, arena);
    char **ids = hie_arena_alloc(arena, (reply->n_documents + 1) * sizeof(*ids));
    if (rc != 0 || ids == NULL) {
        return rc != 0 ? rc : HIE_ENOMEM;
    }
    for (size_t i = 0; i < reply->n_documents; i++) {
        ids[i] = reply->documents[i]->document_id;
    }
    node_subject_t s = {reply->euid, {0}, NULL, 0, ids, reply->n_documents};
    tally_decision(&tally, reply->n_documents, &s.decision);
    hie_node__audit_build(ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_RECORD_QUERY,
        HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED, &s, 1, arena, audit);
    return audit->build_rc;
}

int
hie_node__retrieve_complete(node_ctx_t *ctx, const node_who_t *who, const char *document_id,
    const node_query_fwd_t *fwd, int status, const Hie__V1__QueryAnswer *answer,
    hie_arena_t *arena, Hie__V1__RetrieveReply **reply, node_audit_cmd_t *audit,
    node_mpi_err_t *e)
{
    *reply = NULL;
    audit->needed = false;
    if (status == HIE__V1__SOURCE_STATUS__SOURCE_TIMEOUT) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, "source",
            "the source did not answer before the deadline; retry later");
    }
    const Hie__V1__Document *d = status == HIE__V1__SOURCE_STATUS__SOURCE_OK && answer != NULL
        ? answer->document : NULL;
    if (d != NULL && d->content.len > HIE_PUSH_CONTENT_BYTES_MAX) {
        d = NULL; /* not a document the HIE would accept from a member: not passed on */
    }
    char *euid = hie_arena_alloc(arena, HIE_MPI_EUID_BYTES);
    Hie__V1__RetrieveReply *out = hie_arena_alloc(arena, sizeof(*out));
    char *id = hie_arena_alloc(arena, strlen(document_id) + 1);
    MDB_txn *txn = NULL;
    if (euid == NULL || out == NULL || id == NULL ||
        mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn) != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    memcpy(id, document_id, strlen(document_id) + 1);
    node_subject_t s = {euid, {0}, NULL, 0, NULL, 0};
    int rc = d != NULL ? answer_euid(ctx, txn, fwd->orgs[0], d, arena, euid) : HIE_ENOTFOUND;
    if (rc == 0) {
        retrieve_decide(ctx, txn, arena, who, euid, d, &s.decision);
    }
    mdb_txn_abort(txn);
    if (rc != 0 && rc != HIE_ENOTFOUND) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    bool ok = rc == 0 && hie_consent_permitted(&s.decision);
    s.document_ids = ok ? &id : NULL;
    s.n_document_ids = ok;
    hie_node__audit_build(ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_RETRIEVE, ok
        ? HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED : HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, &s,
        rc == 0 ? 1 : 0, arena, audit);
    if (!ok) { /* unknown to the responder, or withheld by consent: the same answer */
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "document_id",
            "no such document");
    }
    hie__v1__retrieve_reply__init(out);
    out->document_id = id;
    out->document = (Hie__V1__Document *)(uintptr_t)d;
    out->handling = hie_node__handling(&s.decision, arena);
    if (out->handling == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    *reply = out;
    return 0;
}
