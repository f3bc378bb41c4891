/*
 * adt.c - ADT events and subscriptions as a worker runs them (issue 5).
 *
 * Subscribe, roster update and unsubscribe are validated here and committed as commands.
 *
 * An ADT event from a hospital about its own patient:
 *  1. the MPI change first, when the event carries one (A08 update; A01/A04 with demographics:
 *     create or update; A40 merge), through the same path as the identity feed, committed and
 *     waited for;
 *  2. the fan-out, in a read transaction: the subscriptions whose roster holds any of the
 *     patient's source records, and the ALL_MY_PATIENTS subscriptions of every organization
 *     that has a record of the patient, filtered by event and patient class; a cancel (A11,
 *     A13) goes instead to exactly the subscriptions that got the visit's A01/A04 or A03;
 *  3. for each: the consent decision for the subscriber (action NOTIFY, class adt-event, the
 *     event's time); a permitted notification is sealed and queued with its audit record, a
 *     withheld one is audited only; all of it in one adt command, which the worker parks the
 *     reply on. The delivery thread then sends each subscriber its notifications.
 * The MPI change and the fan-out are two commands (the fan-out needs the EUID the change
 * decided); a retried event (same envelope id) repeats neither: each has its own dedup key.
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define ADT_TEXT_BYTES_MAX 128u
#define ADT_FILTER_MAX 16u
#define ADT_COMMAND_TIMEOUT_MS 10000u
/* How far ahead of the node's clock an event may be dated (clocks differ, not by days). */
#define ADT_EVENT_AHEAD_MS_MAX (24ll * 3600 * 1000)

static int
bad(node_mpi_err_t *e, const char *field, const char *message)
{
    return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, field, message);
}

static bool
event_known(int ev)
{
    switch (ev) {
    case HIE__V1__ADT_EVENT__ADT_A01:
    case HIE__V1__ADT_EVENT__ADT_A02:
    case HIE__V1__ADT_EVENT__ADT_A03:
    case HIE__V1__ADT_EVENT__ADT_A04:
    case HIE__V1__ADT_EVENT__ADT_A08:
    case HIE__V1__ADT_EVENT__ADT_A11:
    case HIE__V1__ADT_EVENT__ADT_A13:
    case HIE__V1__ADT_EVENT__ADT_A40:
        return true;
    default:
        return false;
    }
}

static bool
class_known(int c)
{
    return c >= HIE__V1__PATIENT_CLASS__PATIENT_CLASS_UNSPECIFIED &&
           c <= HIE__V1__PATIENT_CLASS__PATIENT_CLASS_OBSERVATION;
}

static bool
text_ok(const char *s, size_t max)
{
    if (s == NULL) {
        return true;
    }
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20) {
            return false;
        }
    }
    return n <= max;
}

static bool
visit_needed(int ev)
{
    return ev != HIE__V1__ADT_EVENT__ADT_A08 && ev != HIE__V1__ADT_EVENT__ADT_A40;
}

static int
adt_check(const node_who_t *who, const Hie__V1__AdtRequest *r, node_mpi_err_t *e)
{
    if (!event_known(r->event)) {
        return bad(e, "event", "not a supported ADT event (A01 A02 A03 A04 A08 A11 A13 A40)");
    }
    if (r->patient == NULL || r->patient->org_id == NULL ||
        strcmp(r->patient->org_id, who->org_id) != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, "patient.org_id",
            "a hospital sends events about its own patients (its own MRNs)");
    }
    if (!hie_mpi_mrn_valid(r->patient->mrn)) {
        return bad(e, "patient.mrn", "1 to 64 printable ASCII characters, no spaces");
    }
    const Hie__V1__Encounter *en = r->encounter;
    bool has_visit = en != NULL && en->visit_id != NULL && en->visit_id[0] != '\0';
    if ((visit_needed(r->event) || has_visit) && (!has_visit ||
        !hie_proto_id_valid(en->visit_id, strlen(en->visit_id)))) {
        return bad(e, "encounter.visit_id", "required: 1-64 characters of A-Z a-z 0-9 . _ : -");
    }
    if (en != NULL && (!class_known(en->patient_class) || !text_ok(en->facility,
        ADT_TEXT_BYTES_MAX) || !text_ok(en->location, ADT_TEXT_BYTES_MAX) ||
        !text_ok(en->attending, ADT_TEXT_BYTES_MAX))) {
        return bad(e, "encounter", "unknown patient class, or a text over 128 bytes");
    }
    if (r->event == HIE__V1__ADT_EVENT__ADT_A08 && r->demographics == NULL) {
        return bad(e, "demographics", "required for A08");
    }
    if (r->event == HIE__V1__ADT_EVENT__ADT_A40 && !hie_mpi_mrn_valid(r->prior_mrn)) {
        return bad(e, "prior_mrn", "required for A40");
    }
    /* the event's time is the data time consent's periods read: unset (0) matched no period
     * (a "withhold 2024-2025" deny let through) and a far-future one dodges them */
    if (r->event_ms <= 0) {
        return bad(e, "event_ms", "required: when the event happened (EVN-2), ms since 1970");
    }
    return r->event_ms > hie_time_wall_ms() + ADT_EVENT_AHEAD_MS_MAX
        ? bad(e, "event_ms", "more than a day in the future") : 0;
}

/* ---- step 1: the MPI change ---------------------------------------------------------------- */

static int
patient_euid(node_ctx_t *ctx, const char *org, const char *mrn, hie_arena_t *arena, char *euid)
{
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    MDB_txn *txn = NULL;
    hie_mpi_rec_hash(hie_node__state_mpi_key(ctx->state), org, mrn, h);
    if (mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn) != 0) {
        return HIE_ESTORAGE;
    }
    int rc = hie_mpi_store_euid_of(hie_node__state_mpi(ctx->state), txn, h, arena, euid);
    mdb_txn_abort(txn);
    return rc;
}

/* A command's own dedup key, derived from the envelope id: prefix, then a hash of the id.
 * The fan-out's is "adt.", the MPI change's "adtf." (since 2026-12-01; before, the envelope
 * id itself, which an MpiFeed of the same id shared: the ADT took that feed's result for its
 * patient, or the feed the ADT's). */
static void
derived_request_id(const char *prefix, const char *env_id, char out[HIE_PROTO_ID_BYTES_MAX + 1])
{
    uint8_t h[16];
    size_t n = strlen(prefix);
    HIE_ASSERT(n + 2u * sizeof(h) <= HIE_PROTO_ID_BYTES_MAX);
    crypto_generichash(h, sizeof(h), (const uint8_t *)env_id, strlen(env_id), NULL, 0);
    memcpy(out, prefix, n);
    sodium_bin2hex(out + n, HIE_PROTO_ID_BYTES_MAX + 1 - n, h, sizeof(h));
}

/* A08 update, A40 merge, A01/A04 with demographics: create or update. */
static int
adt_mpi(node_ctx_t *ctx, node_submitter_t *sub, const node_who_t *who,
    const Hie__V1__AdtRequest *r, hie_arena_t *arena, char *euid, node_mpi_err_t *e)
{
    Hie__V1__MpiFeedRequest f = HIE__V1__MPI_FEED_REQUEST__INIT;
    int rc = patient_euid(ctx, who->org_id, r->patient->mrn, arena, euid);
    if (rc != 0 && rc != HIE_ENOTFOUND) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    f.patient = r->patient;
    /* an A40 carries the survivor's PID, as every ADT does: the merge takes none (the
     * survivor's demographics are an A08's to change), and refused them (BAD_REQUEST) */
    f.demographics = r->event == HIE__V1__ADT_EVENT__ADT_A40 ? NULL : r->demographics;
    if (r->event == HIE__V1__ADT_EVENT__ADT_A40) {
        f.action = HIE__V1__FEED_ACTION__FEED_MERGE;
        f.prior_mrn = r->prior_mrn;
    } else if (r->demographics != NULL) {
        f.action = rc == 0 ? HIE__V1__FEED_ACTION__FEED_UPDATE
                           : HIE__V1__FEED_ACTION__FEED_CREATE;
    } else if (rc == HIE_ENOTFOUND) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn",
            "no record of this MRN: send demographics with the event, or feed it first");
    } else {
        return 0; /* no MPI change */
    }
    Hie__V1__MpiFeedReply *fr = NULL;
    char fid[HIE_PROTO_ID_BYTES_MAX + 1];
    derived_request_id("adtf.", who->request_id, fid);
    rc = hie_node__mpi_feed(ctx, sub, who->org_id, fid, &f, arena, &fr, e);
    if (rc == 0) {
        snprintf(euid, HIE_MPI_EUID_BYTES, "%s", fr->euid);
    }
    return rc;
}

/* ---- step 2: who to notify ------------------------------------------------------------------ */

struct fan {
    node_ctx_t *ctx;
    MDB_txn *txn;
    hie_arena_t *arena;
    const Hie__V1__AdtRequest *r;
    const node_who_t *who;
    const char *euid;
    Hie__V1__PatientId **ids;    /* every identifier of the patient */
    size_t n_ids;
    char (*cand)[32];            /* candidate subscription ids, deduplicated */
    size_t n_cand;
    Hie__V1__Notice **notices;
    size_t n_notices;
    uint32_t notified, withheld;
    bool capped;                 /* more candidates than HIE_ADT_NOTICES_MAX (logged once) */
    int64_t made_ms;             /* when this fan-out was made: part of its message ids */
};

static int
cand_add(void *vctx, hie_span_t id)
{
    struct fan *f = vctx;
    if (id.len == 0 || id.len >= 32) {
        return HIE_ECORRUPT;
    }
    for (size_t i = 0; i < f->n_cand; i++) {
        if (strlen(f->cand[i]) == id.len && memcmp(f->cand[i], id.ptr, id.len) == 0) {
            return 0;
        }
    }
    if (f->n_cand == HIE_ADT_NOTICES_MAX) {
        /* NEEDSWORK: more than 1,024 subscriptions on one patient: the rest are not told */
        if (!f->capped) {
            hie_log_warn("adt", "subscriptions over the limit for one event: the rest not "
                "notified", " org=%s id=%s max=%u", f->who->org_id, f->who->request_id,
                HIE_ADT_NOTICES_MAX);
        }
        f->capped = true;
        return 0;
    }
    memcpy(f->cand[f->n_cand], id.ptr, id.len);
    f->cand[f->n_cand++][id.len] = '\0';
    return 0;
}

/* The original event a cancel refers to. */
static int
cancelled_event(int ev, int attempt)
{
    if (ev == HIE__V1__ADT_EVENT__ADT_A13) {
        return attempt == 0 ? HIE__V1__ADT_EVENT__ADT_A03 : 0;
    }
    return attempt == 0 ? HIE__V1__ADT_EVENT__ADT_A01
         : attempt == 1 ? HIE__V1__ADT_EVENT__ADT_A04 : 0;
}

/* The subscriptions that follow the patient: by record, or every patient of their org. */
static int
patient_candidates(struct fan *f)
{
    node_subs_t *subs = hie_node__state_subs(f->ctx->state);
    const hie_mpi_key_t *key = hie_node__state_mpi_key(f->ctx->state);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < f->n_ids; i++) {
        uint8_t h[HIE_MPI_REC_HASH_BYTES];
        hie_mpi_rec_hash(key, f->ids[i]->org_id, f->ids[i]->mrn, h);
        rc = hie_node__subs_for_record(subs, f->txn, h, cand_add, f);
        rc = rc ? rc : hie_node__subs_all_of(subs, f->txn, f->ids[i]->org_id, cand_add, f);
    }
    return rc;
}

struct cover {
    const char *id;
    bool found;
};

static int
cover_match(void *vctx, hie_span_t id)
{
    struct cover *c = vctx;
    c->found = c->found || (id.len == strlen(c->id) && memcmp(id.ptr, c->id, id.len) == 0);
    return 0;
}

int
hie_node__notice_covered(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena,
    const Hie__V1__Subscription *s, const char *euid, bool *covered)
{
    Hie__V1__PatientId **ids = NULL;
    size_t n = 0;
    struct cover c = {s->id, false};
    int rc = hie_mpi_store_euid_ids(hie_node__state_mpi(ctx->state), txn, euid, arena, &ids,
        &n);
    for (size_t i = 0; rc == 0 && i < n && !c.found; i++) {
        if (s->scope == HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_ALL_MY_PATIENTS) {
            c.found = strcmp(ids[i]->org_id, s->org_id) == 0;
            continue;
        }
        uint8_t h[HIE_MPI_REC_HASH_BYTES];
        hie_mpi_rec_hash(hie_node__state_mpi_key(ctx->state), ids[i]->org_id, ids[i]->mrn, h);
        rc = hie_node__subs_for_record(hie_node__state_subs(ctx->state), txn, h, cover_match,
            &c);
    }
    *covered = c.found;
    return rc == HIE_ENOTFOUND ? 0 : rc;
}

/* A cancel's scan of its visit's rows: the cancel's patient as the record it lives on as. */
struct cancel_scan {
    struct fan *f;
    uint8_t subject[HIE_MPI_REC_HASH_BYTES];
    bool known;
};

/* A row of the visit: its recipients are candidates when it is about the cancel's patient
 * (after A40 merges, the same record), or names no patient (a row from before rows did). */
static int
cancel_row(void *ctx, hie_span_t patient, hie_span_t ids)
{
    struct cancel_scan *cs = ctx;
    struct fan *f = cs->f;
    if (patient.len != 0) {
        uint8_t lives_on[HIE_MPI_REC_HASH_BYTES];
        int rc = cs->known ? hie_mpi_store_surviving(hie_node__state_mpi(f->ctx->state),
            f->txn, patient.ptr, f->arena, lives_on) : HIE_ENOTFOUND;
        if (rc != 0 || memcmp(lives_on, cs->subject, sizeof(lives_on)) != 0) {
            return rc == 0 || rc == HIE_ENOTFOUND ? 0 : rc;
        }
    }
    int rc = 0;
    for (size_t o = 0; rc == 0 && o < ids.len;) {
        size_t l = strnlen((const char *)ids.ptr + o, ids.len - o);
        rc = cand_add(f, hie_span(ids.ptr + o, l));
        o += l + 1;
    }
    return rc;
}

/* A cancel reaches whoever got the original event of the visit about the same patient, and
 * of those only the ones that follow the cancel's patient: a visit number keyed against
 * another patient (or reused) must not tell a subscriber about a patient it has nothing to do
 * with. */
static int
cancel_candidates(struct fan *f)
{
    int rc = patient_candidates(f);
    size_t n_follow = f->n_cand;
    char(*follow)[32] = hie_arena_alloc(f->arena, (n_follow + 1) * sizeof(*follow));
    if (rc != 0 || follow == NULL) {
        return rc != 0 ? rc : HIE_ENOMEM;
    }
    memcpy(follow, f->cand, n_follow * sizeof(*follow));
    f->n_cand = 0;
    const Hie__V1__AdtRequest *r = f->r;
    node_subs_t *subs = hie_node__state_subs(f->ctx->state);
    struct cancel_scan cs = {f, {0}, false};
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    hie_mpi_rec_hash(hie_node__state_mpi_key(f->ctx->state), f->who->org_id, r->patient->mrn, h);
    int src = hie_mpi_store_surviving(hie_node__state_mpi(f->ctx->state), f->txn, h, f->arena,
        cs.subject);
    cs.known = src == 0;
    rc = src == 0 || src == HIE_ENOTFOUND ? 0 : src;
    for (int k = 0; rc == 0 && cancelled_event(r->event, k) != 0; k++) {
        rc = hie_node__subs_visit_each(subs, f->txn, f->who->org_id, r->encounter->visit_id,
            cancelled_event(r->event, k), cancel_row, &cs);
    }
    size_t kept = 0;
    for (size_t i = 0; rc == 0 && i < f->n_cand; i++) {
        for (size_t j = 0; j < n_follow; j++) {
            if (strcmp(f->cand[i], follow[j]) == 0) {
                memmove(f->cand[kept++], f->cand[i], sizeof(f->cand[i]));
                break;
            }
        }
    }
    f->n_cand = rc == 0 ? kept : f->n_cand;
    return rc;
}

static int
fan_candidates(struct fan *f)
{
    const Hie__V1__AdtRequest *r = f->r;
    if (r->event == HIE__V1__ADT_EVENT__ADT_A11 || r->event == HIE__V1__ADT_EVENT__ADT_A13) {
        return cancel_candidates(f);
    }
    return patient_candidates(f);
}

static bool
filter_ok(const Hie__V1__Subscription *s, const Hie__V1__AdtRequest *r, bool cancel)
{
    if (cancel) {
        return true; /* a cancel reaches whoever got the original */
    }
    bool ev = s->n_events == 0;
    for (size_t i = 0; i < s->n_events; i++) {
        ev = ev || s->events[i] == r->event;
    }
    /* a class filter is about encounters: an event without one (an A08 update, an A40
     * merge) is not filtered out by it */
    int pc = r->encounter != NULL ? (int)r->encounter->patient_class : 0;
    bool cls = s->n_classes == 0 || pc == 0;
    for (size_t i = 0; i < s->n_classes; i++) {
        cls = cls || (int)s->classes[i] == pc;
    }
    return ev && cls;
}

/* ---- step 3: one notice per subscription ----------------------------------------------------- */

static const char *
event_name(int ev)
{
    static char names[][8] = {"ADT A00", "ADT A01", "ADT A02", "ADT A03", "ADT A04"};
    return ev >= 1 && ev <= 4 ? names[ev] : ev == HIE__V1__ADT_EVENT__ADT_A08 ? "ADT A08"
         : ev == HIE__V1__ADT_EVENT__ADT_A11 ? "ADT A11" : ev == HIE__V1__ADT_EVENT__ADT_A13
         ? "ADT A13" : "ADT A40";
}

/* The subscriber's own identifiers of the patient (into arena). */
static size_t
own_ids(struct fan *f, const char *org, Hie__V1__PatientId **out)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_ids; i++) {
        if (strcmp(f->ids[i]->org_id, org) == 0) {
            out[n++] = f->ids[i];
        }
    }
    return n;
}

/* The queued message: the notification, sealed as a document. */
static int
notice_message(struct fan *f, const Hie__V1__Subscription *s, Hie__V1__PatientId **own,
    size_t n_own, bool cancel, Hie__V1__QueuedMessage **out)
{
    const Hie__V1__AdtRequest *r = f->r;
    Hie__V1__Notification n = HIE__V1__NOTIFICATION__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    n.subscription_id = s->id;
    n.event = r->event;
    n.sender_org = (char *)(uintptr_t)f->who->org_id;
    n.euid = (char *)(uintptr_t)f->euid;
    n.n_patient_ids = n_own;
    n.patient_ids = own;
    n.encounter = r->encounter;
    n.event_ms = r->event_ms;
    n.cancel = cancel;
    size_t len = protobuf_c_message_get_packed_size(&n.base);
    uint8_t *buf = hie_arena_alloc(f->arena, len + 1);
    Hie__V1__QueuedMessage *m = hie_arena_alloc(f->arena, sizeof(*m));
    size_t mid_bytes = 2 * HIE_PROTO_ID_BYTES_MAX + 64;
    char *mid = hie_arena_alloc(f->arena, mid_bytes);
    uint8_t *subject = hie_arena_alloc(f->arena, HIE_MPI_REC_HASH_BYTES);
    if (buf == NULL || m == NULL || mid == NULL || subject == NULL) {
        return HIE_ENOMEM;
    }
    HIE_ASSERT(protobuf_c_message_pack(&n.base, buf) == len);
    /* the event's patient as the sender knows it (adt_check: its own org and a valid MRN) */
    hie_mpi_rec_hash(hie_node__state_mpi_key(f->ctx->state), f->who->org_id, r->patient->mrn,
        subject);
    d.patient = n_own > 0 ? own[0] : NULL;
    d.content_type = (char *)(uintptr_t)NODE_NOTIFY_CONTENT_TYPE;
    d.content = (ProtobufCBinaryData){len, buf};
    d.title = (char *)(uintptr_t)event_name(r->event);
    d.class_code = (char *)(uintptr_t)"adt-event";
    d.author_org = n.sender_org;
    d.date_ms = r->event_ms;
    /* a push's id is org:request_id, and an org id is lowercase: one starting "N:" is never a
     * push's (org:request:sub-N was, for a push under request id "request:sub-N"). The time
     * the fan-out was made (hex ms) keeps it unique when the sender reuses a request id after
     * the 7 days repeats are answered for: the same id again read as a redelivery of the old
     * notification and was dropped by the subscriber. */
    snprintf(mid, mid_bytes, "N:%s:%s:%s:%" PRIx64, f->who->org_id, f->who->request_id, s->id,
        (uint64_t)f->made_ms);
    hie__v1__queued_message__init(m);
    m->message_id = mid;
    m->sender_org = n.sender_org;
    m->recipient_org = s->org_id;
    m->euid = n.euid;
    m->subject_rec_hash = (ProtobufCBinaryData){HIE_MPI_REC_HASH_BYTES, subject};
    *out = m;
    return hie_node__doc_seal(f->ctx, &d, mid, f->arena, &m->sealed_document);
}

/* The purpose a notification is decided and audited under: the subscriber's use of it (care
 * coordination: treatment; a payer's: payment), never the sender's, whose emergency is not
 * the subscriber's and must not break the glass for it. */
Hie__V1__PurposeOfUse
hie_node__notify_purpose(const hie_org_t *org)
{
    bool payer = false;
    for (size_t i = 0; org != NULL && i < org->n_roles; i++) {
        switch (org->roles[i]) {
        case HIE__V1__ROLE__ROLE_HOSPITAL:
        case HIE__V1__ROLE__ROLE_CLINIC:
        case HIE__V1__ROLE__ROLE_LAB:
            return HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
        case HIE__V1__ROLE__ROLE_PAYER:
            payer = true;
            break;
        default:
            break;
        }
    }
    return payer ? HIE__V1__PURPOSE_OF_USE__PURPOSE_PAYMENT
                 : HIE__V1__PURPOSE_OF_USE__PURPOSE_OPERATIONS;
}

static int
notice_build(struct fan *f, const Hie__V1__Subscription *s, bool cancel)
{
    hie_org_t *org = NULL;
    if (hie_node__state_org_get(f->ctx->state, s->org_id, f->arena, &org) != 0 ||
        org->status != HIE__V1__ORG_STATUS__ORG_ACTIVE) {
        return 0; /* the subscriber left the HIE or is suspended */
    }
    Hie__V1__PatientId **own = hie_arena_alloc(f->arena, (f->n_ids + 1) * sizeof(*own));
    Hie__V1__Notice *nt = hie_arena_alloc(f->arena, sizeof(*nt));
    if (own == NULL || nt == NULL) {
        return HIE_ENOMEM;
    }
    node_who_t to = {s->org_id, org, hie_node__notify_purpose(org), f->who->request_id,
        f->who->rand};
    node_who_t from = *f->who;
    from.purpose = to.purpose;
    node_subject_t subj = {f->euid, {0}, own, own_ids(f, s->org_id, own), NULL, 0};
    hie_node__consent_decide_doc(f->ctx, f->txn, f->arena, &to, f->euid,
        HIE__V1__CONSENT_ACTION__CONSENT_ACTION_NOTIFY, 0, HIE_CONSENT_CLASS_ADT_EVENT,
        f->r->event_ms, &subj.decision);
    bool permit = hie_consent_permitted(&subj.decision);
    hie__v1__notice__init(nt);
    nt->subscription_id = s->id;
    int rc = permit ? notice_message(f, s, own, subj.n_disclosed, cancel, &nt->message) : 0;
    if (rc == 0 && permit) {
        nt->message->handling = hie_node__handling(&subj.decision, f->arena);
        rc = nt->message->handling == NULL ? HIE_ENOMEM : 0;
    }
    subj.n_disclosed = permit ? subj.n_disclosed : 0;
    rc = rc ? rc : hie_node__audit_body(f->ctx, &from, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_NOTIFY,
        permit ? HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED
               : HIE__V1__ERROR_CODE__ERROR_CONSENT_DENIED, &subj, 1, f->arena, &nt->audit);
    if (rc == 0) {
        nt->audit->record->recipient_org = s->org_id;
        f->notices[f->n_notices++] = nt;
        f->notified += permit;
        f->withheld += !permit;
    }
    return rc;
}

static int
fan_out(struct fan *f)
{
    int rc = hie_mpi_store_euid_ids(hie_node__state_mpi(f->ctx->state), f->txn, f->euid,
        f->arena, &f->ids, &f->n_ids);
    f->cand = hie_arena_alloc(f->arena, HIE_ADT_NOTICES_MAX * sizeof(*f->cand));
    f->notices = hie_arena_alloc(f->arena, (HIE_ADT_NOTICES_MAX + 1) * sizeof(*f->notices));
    rc = rc ? rc : (f->cand == NULL || f->notices == NULL ? HIE_ENOMEM : 0);
    rc = rc ? rc : fan_candidates(f);
    bool cancel = f->r->event == HIE__V1__ADT_EVENT__ADT_A11 ||
                  f->r->event == HIE__V1__ADT_EVENT__ADT_A13;
    for (size_t i = 0; rc == 0 && i < f->n_cand; i++) {
        Hie__V1__Subscription *s = NULL;
        rc = hie_node__subs_get(hie_node__state_subs(f->ctx->state), f->txn, f->cand[i],
            f->arena, &s);
        if (rc == HIE_ENOTFOUND) {
            rc = 0;
            continue;
        }
        rc = rc == 0 && filter_ok(s, f->r, cancel) ? notice_build(f, s, cancel) : rc;
    }
    return rc;
}

static int
adt_command(node_ctx_t *ctx, const node_who_t *who, const Hie__V1__AdtRequest *r,
    struct fan *f, hie_arena_t *arena, node_audit_cmd_t *audit)
{
    Hie__V1__AdtCommand *c = hie_arena_alloc(arena, sizeof(*c));
    char *rid = hie_arena_alloc(arena, HIE_PROTO_ID_BYTES_MAX + 1);
    if (c == NULL || rid == NULL) {
        return HIE_ENOMEM;
    }
    hie__v1__adt_command__init(c);
    c->event = r->event;
    c->sender_org = (char *)(uintptr_t)who->org_id;
    c->visit_id = r->encounter != NULL ? r->encounter->visit_id : (char *)(uintptr_t)"";
    c->n_notices = f->n_notices;
    c->notices = f->notices;
    derived_request_id("adt.", who->request_id, rid);
    hie__v1__command__init(&audit->cmd);
    audit->cmd.requester = (char *)(uintptr_t)who->org_id;
    audit->cmd.request_id = rid;
    audit->cmd.time_ms = hie_time_wall_ms();
    audit->cmd.node_id = ctx->cfg.node_id;
    audit->cmd.body_case = HIE__V1__COMMAND__BODY_ADT;
    audit->cmd.adt = c;
    audit->needed = true;
    audit->kick_org = "*"; /* several subscribers: the delivery thread looks at every one */
    return 0;
}

int
hie_node__adt_prepare(node_ctx_t *ctx, node_submitter_t *sub, const node_who_t *who,
    const Hie__V1__AdtRequest *req, hie_arena_t *arena, Hie__V1__AdtReply **reply,
    node_audit_cmd_t *audit, node_mpi_err_t *e)
{
    *reply = NULL;
    audit->needed = false;
    if (hie_node__state_mpi_key(ctx->state) == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "ADT is not available on this node (no data key)");
    }
    char *euid = hie_arena_alloc(arena, HIE_MPI_EUID_BYTES);
    Hie__V1__AdtReply *out = hie_arena_alloc(arena, sizeof(*out));
    if (euid == NULL || out == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    int rc = adt_check(who, req, e);
    rc = rc ? rc : adt_mpi(ctx, sub, who, req, arena, euid, e);
    if (rc != 0) {
        return rc;
    }
    struct fan f = {ctx, NULL, arena, req, who, euid, NULL, 0, NULL, 0, NULL, 0, 0, 0, false,
        hie_time_wall_ms()};
    if (mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &f.txn) != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    rc = fan_out(&f);
    mdb_txn_abort(f.txn);
    rc = rc ? rc : adt_command(ctx, who, req, &f, arena, audit);
    if (rc != 0) {
        hie_log_error("adt", "fan-out failed", " org=%s id=%s rc=%s", who->org_id,
            who->request_id, hie_strerror_name(rc));
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    hie__v1__adt_reply__init(out);
    out->euid = euid;
    /* the subscriptions the event was addressed to, whatever consent decided for each: a
     * count of the permitted ones would reveal, to the sender, that the patient hides from
     * someone (by one missing); the audit records each decision */
    out->notified = f.notified + f.withheld;
    out->withheld = 0;
    *reply = out;
    return 0;
}

/* ---- subscriptions ---------------------------------------------------------------------------- */

static int
command_run(node_ctx_t *ctx, node_submitter_t *sub, const node_who_t *who, hie_command_t *cmd,
    hie_arena_t *arena, hie_command_result_t **res, node_mpi_err_t *e)
{
    cmd->requester = (char *)(uintptr_t)who->org_id;
    cmd->request_id = (char *)(uintptr_t)who->request_id;
    cmd->time_ms = hie_time_wall_ms();
    cmd->node_id = ctx->cfg.node_id;
    int rc = hie_node__submit_wait(sub, cmd, ADT_COMMAND_TIMEOUT_MS, arena, res);
    if (rc != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "the command was not committed in time; retry with the same id");
    }
    if ((*res)->code != HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        return mpi_fail(e, (*res)->code, (*res)->field[0] ? (*res)->field : NULL,
            (*res)->message);
    }
    return 0;
}

/* The keyed identities of the subscriber's MRNs (at most HIE_SUBSCRIPTION_ROSTER_BATCH_MAX). */
static int
roster_hashes(node_ctx_t *ctx, const char *org, char **mrns, size_t n, const char *field,
    hie_arena_t *arena, ProtobufCBinaryData **out, node_mpi_err_t *e)
{
    if (n > HIE_SUBSCRIPTION_ROSTER_BATCH_MAX) {
        return bad(e, field, "at most 1,000 MRNs per request (send the roster in parts)");
    }
    ProtobufCBinaryData *h = hie_arena_alloc(arena, (n + 1) * sizeof(*h));
    uint8_t *bytes = hie_arena_alloc(arena, (n + 1) * HIE_MPI_REC_HASH_BYTES);
    if (h == NULL || bytes == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        if (!hie_mpi_mrn_valid(mrns[i])) {
            return bad(e, field, "1 to 64 printable ASCII characters, no spaces");
        }
        hie_mpi_rec_hash(hie_node__state_mpi_key(ctx->state), org, mrns[i],
            bytes + i * HIE_MPI_REC_HASH_BYTES);
        h[i] = (ProtobufCBinaryData){HIE_MPI_REC_HASH_BYTES, bytes + i * HIE_MPI_REC_HASH_BYTES};
    }
    *out = h;
    return 0;
}

static int
filters_check(const Hie__V1__SubscribeRequest *r, node_mpi_err_t *e)
{
    if (r->scope != HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS &&
        r->scope != HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_ALL_MY_PATIENTS) {
        return bad(e, "scope", "patients or all_my_patients");
    }
    if (r->n_events > ADT_FILTER_MAX || r->n_classes > ADT_FILTER_MAX) {
        return bad(e, r->n_events > ADT_FILTER_MAX ? "events" : "classes", "at most 16");
    }
    for (size_t i = 0; i < r->n_events; i++) {
        if (!event_known(r->events[i])) {
            return bad(e, "events", "not a supported ADT event");
        }
    }
    for (size_t i = 0; i < r->n_classes; i++) {
        if (!class_known(r->classes[i]) || r->classes[i] == 0) {
            return bad(e, "classes", "not a patient class");
        }
    }
    return 0;
}

int
hie_node__subscribe_xchg(node_ctx_t *ctx, node_submitter_t *sub, const node_who_t *who,
    const Hie__V1__SubscribeRequest *req, hie_arena_t *arena, Hie__V1__SubscribeReply **reply,
    node_mpi_err_t *e)
{
    *reply = NULL;
    Hie__V1__Subscription s = HIE__V1__SUBSCRIPTION__INIT;
    Hie__V1__SubscribeCommand sc = HIE__V1__SUBSCRIBE_COMMAND__INIT;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    hie_command_result_t *res = NULL;
    Hie__V1__SubscribeReply *out = hie_arena_alloc(arena, sizeof(*out));
    int rc = out == NULL ? mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "busy") : 0;
    rc = rc ? rc : filters_check(req, e);
    rc = rc ? rc : roster_hashes(ctx, who->org_id, req->mrns, req->n_mrns, "mrns", arena,
        &sc.roster_rec_hashes, e);
    if (rc != 0) {
        return rc;
    }
    s.org_id = (char *)(uintptr_t)who->org_id;
    s.scope = req->scope;
    s.n_events = req->n_events;
    s.events = req->events;
    s.n_classes = req->n_classes;
    s.classes = req->classes;
    s.retain_events = ctx->cfg.delivery_retain_events;
    sc.subscription = &s;
    sc.n_roster_rec_hashes = req->n_mrns;
    cmd.body_case = HIE__V1__COMMAND__BODY_SUBSCRIBE;
    cmd.subscribe = &sc;
    rc = command_run(ctx, sub, who, &cmd, arena, &res, e);
    if (rc == 0) {
        hie__v1__subscribe_reply__init(out);
        out->subscription_id = res->subscription_id;
        *reply = out;
    }
    return rc;
}

int
hie_node__roster_xchg(node_ctx_t *ctx, node_submitter_t *sub, const node_who_t *who,
    const Hie__V1__RosterUpdate *req, hie_arena_t *arena, Hie__V1__RosterUpdateReply **reply,
    node_mpi_err_t *e)
{
    *reply = NULL;
    Hie__V1__RosterCommand rc_ = HIE__V1__ROSTER_COMMAND__INIT;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    hie_command_result_t *res = NULL;
    Hie__V1__RosterUpdateReply *out = hie_arena_alloc(arena, sizeof(*out));
    if (out == NULL || req->subscription_id == NULL || req->subscription_id[0] == '\0') {
        return bad(e, "subscription_id", "missing");
    }
    int rc = roster_hashes(ctx, who->org_id, req->add_mrns, req->n_add_mrns, "add_mrns", arena,
        &rc_.add, e);
    rc = rc ? rc : roster_hashes(ctx, who->org_id, req->remove_mrns, req->n_remove_mrns,
        "remove_mrns", arena, &rc_.remove, e);
    if (rc != 0) {
        return rc;
    }
    rc_.subscription_id = req->subscription_id;
    rc_.n_add = req->n_add_mrns;
    rc_.n_remove = req->n_remove_mrns;
    cmd.body_case = HIE__V1__COMMAND__BODY_ROSTER;
    cmd.roster = &rc_;
    rc = command_run(ctx, sub, who, &cmd, arena, &res, e);
    if (rc == 0) {
        hie__v1__roster_update_reply__init(out);
        out->size = res->acknowledged;
        *reply = out;
    }
    return rc;
}

int
hie_node__unsubscribe_xchg(node_ctx_t *ctx, node_submitter_t *sub, const node_who_t *who,
    const Hie__V1__Unsubscribe *req, hie_arena_t *arena, Hie__V1__UnsubscribeReply **reply,
    node_mpi_err_t *e)
{
    *reply = NULL;
    Hie__V1__UnsubscribeCommand uc = HIE__V1__UNSUBSCRIBE_COMMAND__INIT;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    hie_command_result_t *res = NULL;
    Hie__V1__UnsubscribeReply *out = hie_arena_alloc(arena, sizeof(*out));
    if (out == NULL || req->subscription_id == NULL || req->subscription_id[0] == '\0') {
        return bad(e, "subscription_id", "missing");
    }
    uc.subscription_id = req->subscription_id;
    cmd.body_case = HIE__V1__COMMAND__BODY_UNSUBSCRIBE;
    cmd.unsubscribe = &uc;
    int rc = command_run(ctx, sub, who, &cmd, arena, &res, e);
    if (rc == 0) {
        hie__v1__unsubscribe_reply__init(out);
        *reply = out;
    }
    return rc;
}

/* One retained notification, decided again for the subscriber (consent as it is now): its
 * audit record, and the message with renewed marks when permitted. */
static int
replay_notice(node_ctx_t *ctx, MDB_txn *txn, const node_who_t *to, Hie__V1__QueuedMessage *qm,
    hie_arena_t *arena, Hie__V1__Notice **out)
{
    Hie__V1__Notice *nt = hie_arena_alloc(arena, sizeof(*nt));
    if (nt == NULL || qm->euid == NULL) {
        return nt == NULL ? HIE_ENOMEM : HIE_ECORRUPT;
    }
    hie__v1__notice__init(nt);
    /* the event's own time (the document's date), as when it was first decided: a directive
     * period about data times reads the event, not when the HIE accepted it */
    Hie__V1__Document *d = NULL;
    bool opened = hie_node__doc_unseal(ctx, qm, arena, &d) == 0;
    int64_t data_ms = opened ? d->date_ms : qm->accepted_ms;
    /* the patient as it is now (a merge or unlink since the event moves it), not the EUID the
     * event had: its consent decides, and its accounting lists the replay */
    const char *why = NULL;
    const char *euid = hie_node__notice_euid(ctx, txn, arena, qm, opened ? d : NULL, &why);
    node_subject_t subj = {euid != NULL ? euid : qm->euid, {0}, NULL, 0, &qm->message_id, 1};
    if (euid != NULL) {
        hie_node__consent_decide_doc(ctx, txn, arena, to, euid,
            HIE__V1__CONSENT_ACTION__CONSENT_ACTION_NOTIFY, 0, HIE_CONSENT_CLASS_ADT_EVENT,
            data_ms, &subj.decision);
    } else {
        subj.decision.reason = why; /* withheld: no longer the subscriber's patient */
    }
    bool permit = hie_consent_permitted(&subj.decision);
    qm->euid = permit ? (char *)(uintptr_t)euid : qm->euid;
    subj.n_document_ids = permit;
    int rc = hie_node__audit_body(ctx, to, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_NOTIFY, permit
        ? HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED : HIE__V1__ERROR_CODE__ERROR_CONSENT_DENIED,
        &subj, 1, arena, &nt->audit);
    if (rc == 0) {
        nt->audit->record->recipient_org = (char *)(uintptr_t)to->org_id;
        nt->subscription_id = qm->subscription_id;
        qm->handling = permit ? hie_node__handling(&subj.decision, arena) : NULL;
        nt->message = permit ? qm : NULL;
        rc = permit && qm->handling == NULL ? HIE_ENOMEM : 0;
    }
    *out = nt;
    return rc;
}

/* The replay's notices, decided now (up to HIE_REPLAY_NOTICES_MAX): a notification a directive
 * filed since withholds is not sent again, and every one is audited anew. */
static int
replay_notices(node_ctx_t *ctx, const node_who_t *who, Hie__V1__ReplayCommand *rc_,
    hie_arena_t *arena, node_mpi_err_t *e)
{
    MDB_txn *txn = NULL;
    Hie__V1__Subscription *sub = NULL;
    uint64_t first = 0;
    rc_->notices = hie_arena_alloc(arena, HIE_REPLAY_NOTICES_MAX * sizeof(*rc_->notices));
    if (rc_->notices == NULL || hie_node__rtxn_begin(ctx, who->rand, &txn) != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "busy");
    }
    node_subs_t *subs = hie_node__state_subs(ctx->state);
    int rc = hie_node__subs_get(subs, txn, rc_->subscription_id, arena, &sub);
    rc = rc == 0 && strcmp(sub->org_id, who->org_id) != 0 ? HIE_ENOTFOUND : rc;
    rc = rc ? rc : hie_node__subs_replay_first(sub, rc_->from_event_number, &first);
    node_who_t to = {who->org_id, who->org, hie_node__notify_purpose(who->org), who->request_id,
        who->rand};
    for (uint64_t ev = first; rc == 0 && ev <= sub->event_number &&
         rc_->n_notices < HIE_REPLAY_NOTICES_MAX; ev++) {
        Hie__V1__QueuedMessage *qm = NULL;
        int grc = hie_node__subs_retained(subs, txn, sub, ev, arena, &qm);
        if (grc == 0 && (rc_->from_ms == 0 || qm->accepted_ms >= rc_->from_ms)) {
            grc = replay_notice(ctx, txn, &to, qm, arena, &rc_->notices[rc_->n_notices]);
            rc_->n_notices += grc == 0;
        }
        rc = grc == HIE_ENOTFOUND ? 0 : grc;
    }
    hie_node__rtxn_end(who->rand, txn);
    rc_->decided = true;
    return rc == 0 ? 0 : rc == HIE_ENOTFOUND || rc == HIE_EINVAL ? 0
        : mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
}

/* The subscription is the requester's (apply checks again): before the rate gate is charged,
 * so that requests naming others' or made-up subscriptions cannot use up the gate's shared
 * slots and hold back other members' replays. */
static int
replay_owned(node_ctx_t *ctx, const node_who_t *who, const char *id, hie_arena_t *arena,
    node_mpi_err_t *e)
{
    MDB_txn *txn = NULL;
    Hie__V1__Subscription *s = NULL;
    int rc = mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn) != 0
        ? HIE_ESTORAGE : hie_node__subs_get(hie_node__state_subs(ctx->state), txn, id, arena, &s);
    bool mine = rc == 0 && s->org_id != NULL && strcmp(s->org_id, who->org_id) == 0;
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc != 0 && rc != HIE_ENOTFOUND) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL, "try again later");
    }
    return mine ? 0 : mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "subscription_id",
        "no such subscription of this organization");
}

int
hie_node__replay_xchg(node_ctx_t *ctx, node_submitter_t *sub, const node_who_t *who,
    const Hie__V1__ReplayRequest *req, hie_arena_t *arena, Hie__V1__ReplayReply **reply,
    node_mpi_err_t *e)
{
    *reply = NULL;
    Hie__V1__ReplayCommand rc_ = HIE__V1__REPLAY_COMMAND__INIT;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    hie_command_result_t *res = NULL;
    Hie__V1__ReplayReply *out = hie_arena_alloc(arena, sizeof(*out));
    if (out == NULL || req->subscription_id == NULL || req->subscription_id[0] == '\0') {
        return bad(e, "subscription_id", "missing");
    }
    if (req->from_event_number == 0 && req->from_ms <= 0) {
        return bad(e, "from_event_number", "give an event number (1..) or a time");
    }
    int own = replay_owned(ctx, who, req->subscription_id, arena, e);
    if (own != 0) {
        return own;
    }
    if (ctx->replay_gate != NULL &&
        !hie_node__replay_gate_pass(ctx->replay_gate, who->org_id, req->subscription_id)) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "subscription_id",
            "at most 5 replays of a subscription, and 10 of an organization's, in 10 seconds; "
            "retry later");
    }
    /* the subscriber's own queue: a replay queues up to 1,000 notifications into it */
    int room = hie_node__queue_room(ctx, who->org_id, e);
    if (room != 0) {
        return room;
    }
    rc_.subscription_id = req->subscription_id;
    rc_.from_event_number = req->from_event_number;
    rc_.from_ms = req->from_ms;
    /* an unknown subscription or event number is refused by apply, in its words */
    int rc = replay_notices(ctx, who, &rc_, arena, e);
    if (rc != 0) {
        return rc;
    }
    cmd.body_case = HIE__V1__COMMAND__BODY_REPLAY;
    cmd.replay = &rc_;
    rc = command_run(ctx, sub, who, &cmd, arena, &res, e);
    if (rc == 0) {
        hie__v1__replay_reply__init(out);
        out->queued = res->acknowledged;
        *reply = out;
    }
    return rc;
}

/* ---- the replay gate ---------------------------------------------------------------------- */

/* Direct-mapped by a keyed hash (a member cannot aim at a slot). Two subscriptions that meet
 * in a slot within a window share its budget: a collision never resets one (fails closed). */
#define REPLAY_GATE_SLOTS 1024u

/* One budget: whose it is (its key's hash: a slot another key took is that key's from then
 * on), its window's start and its count. */
struct gate_slot {
    uint64_t tag;
    uint64_t window_ns;
    uint32_t count;
};

struct node_replay_gate {
    pthread_mutex_t mu;
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
    struct gate_slot sub[REPLAY_GATE_SLOTS]; /* per (organization, subscription) */
    struct gate_slot org[REPLAY_GATE_SLOTS]; /* per organization */
};

int
hie_node__replay_gate_create(node_replay_gate_t **out)
{
    node_replay_gate_t *g = hie_mem_calloc(1, sizeof(*g));
    if (g == NULL) {
        return HIE_ENOMEM;
    }
    pthread_mutex_init(&g->mu, NULL);
    crypto_shorthash_keygen(g->hash_key);
    *out = g;
    return 0;
}

void
hie_node__replay_gate_destroy(node_replay_gate_t **g)
{
    if (*g != NULL) {
        pthread_mutex_destroy(&(*g)->mu);
        hie_mem_free(*g, sizeof(**g));
        *g = NULL;
    }
}

/* The hash of (org, subscription), or of org's share (subscription NULL). */
static uint64_t
gate_hash(const node_replay_gate_t *g, const char *org, const char *subscription_id)
{
    uint8_t in[2 * (HIE_ORG_ID_BYTES_MAX + 1) + 64], h[crypto_shorthash_BYTES];
    int n = snprintf((char *)in, sizeof(in), "%s%c%s%c", org, 0,
        subscription_id != NULL ? subscription_id : "", subscription_id != NULL ? 0 : 1);
    crypto_shorthash(h, in, n > 0 && (size_t)n < sizeof(in) ? (size_t)n : sizeof(in) - 1,
        g->hash_key);
    return hie_load_be64(h);
}

/* The slot of hash h in table t, its window current (a new one, or another key's taken over:
 * two keys never share a count). */
static struct gate_slot *
gate_take(struct gate_slot *t, uint64_t h, uint64_t now, uint64_t window)
{
    struct gate_slot *sl = &t[h % REPLAY_GATE_SLOTS];
    if (sl->tag != h || sl->window_ns == 0 || now - sl->window_ns >= window) {
        *sl = (struct gate_slot){h, now, 0};
    }
    return sl;
}

bool
hie_node__replay_gate_pass(node_replay_gate_t *g, const char *org,
    const char *subscription_id)
{
    uint64_t hs = gate_hash(g, org, subscription_id), ho = gate_hash(g, org, NULL);
    uint64_t now = hie_time_mono_ns(), window = (uint64_t)HIE_REPLAY_WINDOW_MS * 1000000ull;
    pthread_mutex_lock(&g->mu);
    struct gate_slot *ss = gate_take(g->sub, hs, now, window);
    struct gate_slot *so = gate_take(g->org, ho, now, window);
    bool pass = ss->count < HIE_REPLAYS_PER_WINDOW && so->count < HIE_REPLAYS_PER_ORG_WINDOW;
    ss->count += pass;
    so->count += pass;
    pthread_mutex_unlock(&g->mu);
    return pass;
}
