/*
 * push.c - the push exchange as a worker runs it (issue 5): validate the document, resolve
 * the patient in the MPI, decide consent for the RECIPIENT (its organization and roles from
 * the registry, the envelope's purpose, action PUSH, the document's labels, class and date),
 * then build one command that enqueues the sealed document for the recipient and appends its
 * audit record. The worker parks the reply until the command is applied, so the sender is
 * acknowledged only once the message is durable; then the delivery thread is told.
 *
 * A denied push is refused (CONSENT_DENIED) and still audited. A document carrying a label
 * the consent would redact is refused as a whole: the broker cannot cut inside opaque content.
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define PUSH_LABELS_MAX 16u
#define PUSH_TEXT_BYTES_MAX 512u
/* One dead letter opened: its queue entry and document (content up to 1 MiB) twice over. */
#define PUSH_REDRIVE_SCRATCH_BYTES (8u * 1024u * 1024u)

static int
bad(node_mpi_err_t *e, const char *field, const char *message)
{
    return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, field, message);
}

static bool
text_ok(const char *s, size_t max, bool required)
{
    size_t n = s != NULL ? strlen(s) : 0;
    return n <= max && (!required || n > 0);
}

/* Labels and class into the consent vocabulary. */
static int
doc_codes(const Hie__V1__Document *d, uint32_t *labels, enum hie_consent_class *cls,
    node_mpi_err_t *e)
{
    *labels = 0;
    *cls = HIE_CONSENT_CLASS_NONE;
    if (d->n_security_labels > PUSH_LABELS_MAX) {
        return bad(e, "document.security_labels", "at most 16 labels");
    }
    for (size_t i = 0; i < d->n_security_labels; i++) {
        enum hie_consent_label l;
        const char *s = d->security_labels[i];
        if (hie_consent_label_parse(s, strlen(s), &l) != 0) {
            return bad(e, "document.security_labels", "unknown security label");
        }
        *labels |= HIE_CONSENT_LABEL_BIT(l);
    }
    if (d->class_code != NULL && d->class_code[0] != '\0' &&
        hie_consent_class_parse(d->class_code, strlen(d->class_code), cls) != 0) {
        return bad(e, "document.class_code", "unknown document class");
    }
    return 0;
}

int
hie_node__queue_room(node_ctx_t *ctx, const char *to, node_mpi_err_t *e)
{
    MDB_txn *txn = NULL;
    uint64_t count = 0, bytes = 0;
    int rc = mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn) != 0
        ? HIE_ESTORAGE : hie_node__queue_totals(hie_node__state_queue(ctx->state), txn, to,
              &count, &bytes);
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    uint64_t max = ctx->cfg.delivery_queue_bytes_max != 0 ? ctx->cfg.delivery_queue_bytes_max
                                                           : HIE_DELIVERY_QUEUE_BYTES_DEFAULT;
    if (bytes >= max) {
        hie_log_warn("push", "recipient's queue full", " org=%s queued_bytes=%lu "
            "hint=\"delivery.queue_bytes_max\"", to, (unsigned long)bytes);
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "recipient_org",
            "the recipient's queue is full until it receives what waits (or its dead letters "
            "are purged); retry later");
    }
    return 0;
}

/* The author's share of the repository is not full (a soft bound, like a queue's: pushes
 * decided at the same time may pass it by one each). */
static int
repo_room(node_ctx_t *ctx, const char *org, node_mpi_err_t *e)
{
    MDB_txn *txn = NULL;
    uint64_t bytes = 0;
    int rc = mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn) != 0
        ? HIE_ESTORAGE : hie_node__repo_bytes(hie_node__state_repo(ctx->state), txn, org,
              &bytes);
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    if (bytes >= ctx->cfg.repository_bytes_max && ctx->cfg.repository_bytes_max != 0) {
        hie_log_warn("push", "organization's share of the repository full", " org=%s "
            "stored_bytes=%lu hint=\"delivery.repository_bytes_max\"", org,
            (unsigned long)bytes);
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "recipient_org",
            "this organization's share of the HIE's repository is full; the operator can "
            "raise delivery.repository_bytes_max");
    }
    return 0;
}

static int
push_check(node_ctx_t *ctx, const node_who_t *who, const Hie__V1__PushRequest *req,
    hie_arena_t *arena, hie_org_t **recipient, node_mpi_err_t *e)
{
    const Hie__V1__Document *d = req->document;
    const char *to = req->recipient_org;
    *recipient = NULL;
    int rc = 0;
    if (to == NULL || to[0] == '\0') {
        rc = repo_room(ctx, who->org_id, e);
        if (rc != 0) {
            return rc;
        }
        goto document; /* to the HIE's repository */
    }
    if (!hie_proto_org_id_valid(to, strlen(to))) {
        return bad(e, "recipient_org", "not an organization id");
    }
    rc = hie_node__state_org_get(ctx->state, to, arena, recipient);
    if (rc == HIE_ENOTFOUND || (rc == 0 && (*recipient)->status !=
        HIE__V1__ORG_STATUS__ORG_ACTIVE)) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "recipient_org",
            "no active member organization with this id");
    }
    if (rc != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    if (who->purpose == HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY &&
        !hie_node__org_treats(*recipient)) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, "purpose", "emergency "
            "treatment (break-glass) reaches only a hospital or a clinic");
    }
    rc = hie_node__queue_room(ctx, to, e);
    if (rc != 0) {
        return rc;
    }
document:
    if (d == NULL || d->patient == NULL || d->patient->org_id == NULL) {
        return bad(e, "document.patient", "missing");
    }
    if (strcmp(d->patient->org_id, who->org_id) != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, "document.patient.org_id",
            "a member pushes documents about its own patients (its own MRNs)");
    }
    if (!hie_mpi_mrn_valid(d->patient->mrn)) {
        return bad(e, "document.patient.mrn", "1 to 64 printable ASCII characters, no spaces");
    }
    if (d->content.len == 0 || d->content.len > HIE_PUSH_CONTENT_BYTES_MAX) {
        return bad(e, "document.content", "1 byte to 1 MiB");
    }
    if (!text_ok(d->content_type, 128, true)) {
        return bad(e, "document.content_type", "1 to 128 bytes");
    }
    if (strcmp(d->content_type, NODE_NOTIFY_CONTENT_TYPE) == 0) {
        /* the broker's own notifications: a member's push of that type would read as an ADT
         * event another hospital sent */
        return bad(e, "document.content_type", "reserved for the broker's notifications");
    }
    if (!text_ok(d->title, PUSH_TEXT_BYTES_MAX, false) || !text_ok(d->type_code, 64, false)) {
        return bad(e, d->title != NULL && strlen(d->title) > PUSH_TEXT_BYTES_MAX
            ? "document.title" : "document.type_code", "too long");
    }
    return d->date_ms < 0 ? bad(e, "document.date_ms", "negative") : 0;
}

/* The EUID of the sender's patient; NOT_FOUND when the MPI does not know the MRN. */
static int
push_euid(node_ctx_t *ctx, const Hie__V1__PatientId *p, hie_arena_t *arena, char *euid,
    node_mpi_err_t *e)
{
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    MDB_txn *txn = NULL;
    hie_mpi_rec_hash(hie_node__state_mpi_key(ctx->state), p->org_id, p->mrn, h);
    if (mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn) != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    int rc = hie_mpi_store_euid_of(hie_node__state_mpi(ctx->state), txn, h, arena, euid);
    mdb_txn_abort(txn);
    if (rc == HIE_ENOTFOUND) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "document.patient.mrn",
            "feed the patient to the MPI before pushing documents about them");
    }
    return rc == 0 ? 0 : mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL,
        "internal error");
}

/* Consent for the recipient; a permit that would redact a label the document carries is a
 * refusal (the content is opaque). */
static void
push_decide(node_ctx_t *ctx, const node_who_t *who, const hie_org_t *recipient,
    const Hie__V1__Document *d, const char *euid, uint32_t labels, enum hie_consent_class cls,
    hie_arena_t *arena, hie_consent_decision_t *out)
{
    if (recipient == NULL) { /* the repository: storing is not a disclosure (queries are) */
        memset(out, 0, sizeof(*out));
        out->decision = HIE_CONSENT_PERMIT;
        out->reason = "repository";
        out->accounting_excluded = true;
        return;
    }
    node_who_t to = {recipient->id, recipient, who->purpose, who->request_id, who->rand};
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn) != 0) {
        memset(out, 0, sizeof(*out));
        out->reason = "evaluation-error";
        return;
    }
    hie_node__consent_decide_doc(ctx, txn, arena, &to, euid,
        HIE__V1__CONSENT_ACTION__CONSENT_ACTION_PUSH, labels, cls, d->date_ms, out);
    mdb_txn_abort(txn);
    if (hie_consent_permitted(out) && (out->obligations & labels & HIE_CONSENT_OBL_REDACT_MASK)) {
        out->decision = HIE_CONSENT_DENY;
        out->reason = "consent-redact";
        out->break_glass = false;
    }
}

/* nonce(24) || AEAD(Document), AD = the message id. */
int
hie_node__doc_seal(node_ctx_t *ctx, const Hie__V1__Document *d, const char *message_id,
    hie_arena_t *arena, ProtobufCBinaryData *out)
{
    size_t n = protobuf_c_message_get_packed_size(&d->base);
    uint8_t *plain = hie_arena_alloc(arena, n + 1);
    uint8_t *box = hie_arena_alloc(arena, HIE_MPI_SEAL_NONCE_BYTES + n +
        HIE_MPI_SEAL_OVERHEAD_BYTES);
    if (plain == NULL || box == NULL) {
        return HIE_ENOMEM;
    }
    HIE_ASSERT(protobuf_c_message_pack(&d->base, plain) == n);
    randombytes_buf(box, HIE_MPI_SEAL_NONCE_BYTES);
    int rc = hie_mpi_seal(hie_node__state_mpi_key(ctx->state), hie_span(plain, n),
        hie_span((const uint8_t *)message_id, strlen(message_id)), box,
        box + HIE_MPI_SEAL_NONCE_BYTES, n + HIE_MPI_SEAL_OVERHEAD_BYTES);
    sodium_memzero(plain, n);
    *out = (ProtobufCBinaryData){HIE_MPI_SEAL_NONCE_BYTES + n + HIE_MPI_SEAL_OVERHEAD_BYTES,
        box};
    return rc;
}

static void
command_frame(node_ctx_t *ctx, const node_who_t *who, hie_command_t *cmd)
{
    hie__v1__command__init(cmd);
    cmd->requester = (char *)(uintptr_t)who->org_id;
    cmd->request_id = (char *)(uintptr_t)who->request_id;
    cmd->time_ms = hie_time_wall_ms();
    cmd->node_id = ctx->cfg.node_id;
}

/* The push command: the queued message and its audit record, or (denied) the record alone. */
static int
push_command(node_ctx_t *ctx, const node_who_t *who, const char *to, Hie__V1__Document *d,
    node_subject_t *s, hie_arena_t *arena, node_audit_cmd_t *out)
{
    bool permit = hie_consent_permitted(&s->decision);
    Hie__V1__AuditAppendCommand *ac = NULL;
    int rc = hie_node__audit_body(ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PUSH, permit
        ? HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED : HIE__V1__ERROR_CODE__ERROR_CONSENT_DENIED,
        s, 1, arena, &ac);
    out->needed = true;
    command_frame(ctx, who, &out->cmd);
    if (rc == 0) {
        ac->record->recipient_org = (char *)(uintptr_t)(to[0] != '\0' ? to : NODE_REPOSITORY_SOURCE);
    }
    if (rc != 0 || !permit) {
        out->cmd.body_case = HIE__V1__COMMAND__BODY_AUDIT_APPEND;
        out->cmd.audit_append = ac;
        return out->build_rc = rc;
    }
    Hie__V1__PushCommand *pc = hie_arena_alloc(arena, sizeof(*pc));
    Hie__V1__QueuedMessage *m = hie_arena_alloc(arena, sizeof(*m));
    char *mid = hie_arena_alloc(arena, HIE_ORG_ID_BYTES_MAX + HIE_PROTO_ID_BYTES_MAX + 2);
    if (pc == NULL || m == NULL || mid == NULL) {
        return out->build_rc = HIE_ENOMEM;
    }
    hie__v1__push_command__init(pc);
    hie__v1__queued_message__init(m);
    snprintf(mid, HIE_ORG_ID_BYTES_MAX + HIE_PROTO_ID_BYTES_MAX + 2, "%s:%s", who->org_id,
        who->request_id);
    m->message_id = mid;
    m->sender_org = (char *)(uintptr_t)who->org_id;
    m->recipient_org = (char *)(uintptr_t)to;
    m->euid = (char *)(uintptr_t)s->euid;
    m->purpose = who->purpose; /* a redrive decides again under it */
    m->break_glass = s->decision.break_glass; /* so audited with the push */
    if (to[0] != '\0') { /* the repository keeps none: a query decides when it is read */
        m->handling = hie_node__handling(&s->decision, arena);
        if (m->handling == NULL) {
            return out->build_rc = HIE_ENOMEM;
        }
    }
    d->author_org = (char *)(uintptr_t)who->org_id;
    rc = hie_node__doc_seal(ctx, d, mid, arena, &m->sealed_document);
    pc->message = m;
    pc->audit = ac;
    if (to[0] == '\0') {
        uint8_t *h = hie_arena_alloc(arena, HIE_MPI_REC_HASH_BYTES);
        if (h == NULL) {
            return out->build_rc = HIE_ENOMEM;
        }
        hie_mpi_rec_hash(hie_node__state_mpi_key(ctx->state), d->patient->org_id,
            d->patient->mrn, h);
        pc->patient_rec_hash = (ProtobufCBinaryData){HIE_MPI_REC_HASH_BYTES, h};
    }
    out->cmd.body_case = HIE__V1__COMMAND__BODY_PUSH;
    out->cmd.push = pc;
    out->kick_org = to[0] != '\0' ? to : NULL;
    return out->build_rc = rc;
}

/* A push the log applied already (its reply was lost: a restart, another worker): the same
 * answer, not a new decision, which could differ (a directive filed since) while the message
 * is queued. True when it was; e->code set for a stored refusal. */
static bool
push_repeat(node_ctx_t *ctx, const node_who_t *who, hie_arena_t *arena, Hie__V1__PushReply *r,
    Hie__V1__PushReply **reply, node_mpi_err_t *e)
{
    hie_command_result_t *done = NULL;
    if (hie_node__state_dedup_get(ctx->state, who->org_id, who->request_id,
            HIE__V1__COMMAND__BODY_PUSH, arena, &done) != 0) {
        return false;
    }
    if (done->code != 0) {
        (void)mpi_fail(e, done->code, done->field, done->message);
        return true;
    }
    size_t n = strlen(who->org_id) + strlen(who->request_id) + 2;
    char *mid = hie_arena_alloc(arena, n);
    if (mid == NULL) {
        (void)mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
        return true;
    }
    snprintf(mid, n, "%s:%s", who->org_id, who->request_id);
    hie__v1__push_reply__init(r);
    r->message_id = mid;
    *reply = r;
    return true;
}

int
hie_node__push_prepare(node_ctx_t *ctx, const node_who_t *who, const Hie__V1__PushRequest *req,
    hie_arena_t *arena, Hie__V1__PushReply **reply, node_audit_cmd_t *audit, node_mpi_err_t *e)
{
    *reply = NULL;
    audit->needed = false;
    hie_org_t *recipient = NULL;
    uint32_t labels = 0;
    enum hie_consent_class cls = HIE_CONSENT_CLASS_NONE;
    char *euid = hie_arena_alloc(arena, HIE_MPI_EUID_BYTES);
    Hie__V1__PushReply *r = hie_arena_alloc(arena, sizeof(*r));
    if (euid == NULL || r == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    if (hie_node__state_mpi_key(ctx->state) == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "push is not available on this node (no data key)");
    }
    if (push_repeat(ctx, who, arena, r, reply, e)) {
        return (int)e->code;
    }
    int rc = push_check(ctx, who, req, arena, &recipient, e);
    rc = rc ? rc : doc_codes(req->document, &labels, &cls, e);
    rc = rc ? rc : push_euid(ctx, req->document->patient, arena, euid, e);
    if (rc != 0) {
        return rc;
    }
    Hie__V1__PatientId *ids[1] = {req->document->patient};
    node_subject_t s = {euid, {0}, hie_arena_alloc(arena, sizeof(ids)), 1, NULL, 0};
    if (s.disclosed == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    s.disclosed[0] = ids[0];
    push_decide(ctx, who, recipient, req->document, euid, labels, cls, arena, &s.decision);
    if (!hie_consent_permitted(&s.decision)) {
        s.n_disclosed = 0;
    }
    rc = push_command(ctx, who, recipient != NULL ? recipient->id : "", req->document, &s, arena,
        audit);
    if (!hie_consent_permitted(&s.decision)) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_CONSENT_DENIED, NULL,
            "the patient's consent does not permit this disclosure to the recipient");
    }
    hie__v1__push_reply__init(r);
    r->message_id = audit->cmd.push != NULL ? audit->cmd.push->message->message_id : NULL;
    *reply = rc == 0 ? r : NULL;
    return rc == 0 ? 0 : mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL,
        "internal error");
}

/* ---- redrive: each dead letter decided again --------------------------------------------- */

struct redrive {
    node_ctx_t *ctx;
    MDB_txn *txn;
    hie_arena_t *arena;         /* the command: its audit records */
    hie_arena_t *scratch;       /* one dead letter at a time, opened (reset for each) */
    const hie_org_t *to;
    const hie_command_t *cmd;
    Hie__V1__RedriveCommand *rd;
    uint32_t withheld;
};

/* The patient's EUID now (a link or unlink since the push moves it), else the one queued (a
 * document without a patient, a record no EUID holds). NULL, *why "evaluation-error", when it
 * cannot be read: the message is withheld (fail closed). It fell back to the queued EUID on
 * any error, and consent was decided on the directives of whoever that EUID is now. */
static const char *
queued_euid(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena, const Hie__V1__QueuedMessage *qm,
    const Hie__V1__Document *d, const char **why)
{
    if (d->patient == NULL || d->patient->org_id == NULL ||
        !hie_mpi_mrn_valid(d->patient->mrn)) {
        return qm->euid;
    }
    char *euid = hie_arena_alloc(arena, HIE_MPI_EUID_BYTES);
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    hie_mpi_rec_hash(hie_node__state_mpi_key(ctx->state), d->patient->org_id, d->patient->mrn,
        h);
    int rc = euid == NULL ? HIE_ENOMEM
                          : hie_mpi_store_euid_of(hie_node__state_mpi(ctx->state), txn, h,
                                arena, euid);
    if (rc == 0 || rc == HIE_ENOTFOUND) {
        return rc == 0 ? euid : qm->euid;
    }
    *why = "evaluation-error";
    return NULL;
}

/* The EUID of record hash now into *out; HIE_ENOTFOUND when no EUID holds it. */
static int
rec_euid(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena, const uint8_t *hash,
    const char **out)
{
    char *euid = hie_arena_alloc(arena, HIE_MPI_EUID_BYTES);
    int rc = euid == NULL ? HIE_ENOMEM : hie_mpi_store_euid_of(hie_node__state_mpi(ctx->state),
        txn, hash, arena, euid);
    *out = rc == 0 ? euid : NULL;
    return rc;
}

/* The notification's patient now (hie_node__notice_euid's rule, before the subscription):
 * 0, HIE_ENOTFOUND (a record moved or went: *out NULL) or a read error. */
static int
notice_patient(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena,
    const Hie__V1__QueuedMessage *qm, const Hie__V1__Document *d, const char **out)
{
    if (qm->subject_rec_hash.len != HIE_MPI_REC_HASH_BYTES) {
        const char *why = NULL;
        *out = d != NULL ? queued_euid(ctx, txn, arena, qm, d, &why) : qm->euid;
        return *out != NULL ? 0 : HIE_ESTORAGE;
    }
    const char *euid = NULL, *mine = NULL;
    int rc = rec_euid(ctx, txn, arena, qm->subject_rec_hash.data, &euid);
    const Hie__V1__PatientId *own = d != NULL ? d->patient : NULL;
    *out = NULL;
    if (rc != 0 || own == NULL || own->org_id == NULL || !hie_mpi_mrn_valid(own->mrn)) {
        *out = euid; /* no record of the subscriber's named: the subscription followed the EUID */
        return rc;
    }
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    hie_mpi_rec_hash(hie_node__state_mpi_key(ctx->state), own->org_id, own->mrn, h);
    rc = rec_euid(ctx, txn, arena, h, &mine);
    rc = rc == 0 && strcmp(mine, euid) != 0 ? HIE_ENOTFOUND : rc;
    *out = rc == 0 ? euid : NULL;
    return rc;
}

const char *
hie_node__notice_euid(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena,
    const Hie__V1__QueuedMessage *qm, const Hie__V1__Document *d, const char **why)
{
    const char *euid = NULL;
    int prc = notice_patient(ctx, txn, arena, qm, d, &euid);
    if (prc != 0 || euid == NULL) { /* a read that failed is no evidence of an unlink */
        *why = prc == HIE_ENOTFOUND || prc == 0 ? "unlinked" : "evaluation-error";
        return NULL;
    }
    Hie__V1__Subscription *s = NULL;
    bool covered = false;
    int rc = hie_node__subs_get(hie_node__state_subs(ctx->state), txn, qm->subscription_id,
        arena, &s);
    rc = rc == 0 && strcmp(s->org_id, qm->recipient_org) != 0 ? HIE_ENOTFOUND : rc;
    rc = rc ? rc : hie_node__notice_covered(ctx, txn, arena, s, euid, &covered);
    if (rc != 0 || !covered) { /* unsubscribed, or the patient left the roster, since */
        *why = rc == 0 || rc == HIE_ENOTFOUND ? "unsubscribed" : "evaluation-error";
        return NULL;
    }
    return euid;
}

bool
hie_node__queued_decide(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena, node_who_t *to,
    const Hie__V1__QueuedMessage *qm, const Hie__V1__Document *d, node_subject_t *s,
    Hie__V1__AuditAction *action)
{
    node_mpi_err_t e = {0};
    uint32_t labels = 0;
    enum hie_consent_class cls = HIE_CONSENT_CLASS_NONE;
    bool notice = qm->subscription_id != NULL && qm->subscription_id[0] != '\0';
    /* a notification's purpose is the subscriber's use of it, from its roles now (a payer's:
     * payment), as at the fan-out; a push's is the one it was sent for */
    to->purpose = notice ? hie_node__notify_purpose(to->org)
                : qm->purpose != 0 ? qm->purpose : HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
    if (to->purpose == HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY &&
        !hie_node__org_treats(to->org)) {
        /* queued before the rule, or its recipient no longer treats patients: no break-glass */
        to->purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
    }
    *s = (node_subject_t){qm->euid, {0}, NULL, 0, NULL, 0};
    *action = notice ? HIE__V1__AUDIT_ACTION__AUDIT_ACTION_NOTIFY
                     : HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PUSH;
    const char *why = NULL;
    const char *euid = d == NULL ? NULL : notice ? hie_node__notice_euid(ctx, txn, arena, qm, d,
        &why) : queued_euid(ctx, txn, arena, qm, d, &why);
    if (d != NULL && euid == NULL) {
        s->decision.reason = why; /* withheld: no longer this subscriber's patient */
        return false;
    }
    if (d != NULL && doc_codes(d, &labels, &cls, &e) == 0) {
        /* else: withheld (fail closed), as an evaluation error */
        s->euid = euid;
        hie_node__consent_decide_doc(ctx, txn, arena, to, s->euid, notice
            ? HIE__V1__CONSENT_ACTION__CONSENT_ACTION_NOTIFY
            : HIE__V1__CONSENT_ACTION__CONSENT_ACTION_PUSH, labels, cls, d->date_ms,
            &s->decision);
    }
    return hie_consent_permitted(&s->decision) &&
           (s->decision.obligations & labels & HIE_CONSENT_OBL_REDACT_MASK) == 0;
}

/* One dead letter: consent for its recipient as it stands now, and its audit record. */
static int
redrive_one(void *vx, hie_span_t msg, uint64_t seq)
{
    struct redrive *x = vx;
    Hie__V1__RedriveCommand *rd = x->rd;
    if (rd->seq != 0 && seq != rd->seq) {
        return 0;
    }
    if (rd->n_audits == HIE_REDRIVE_DECIDED_MAX) {
        return 1;
    }
    ProtobufCMessage *m = NULL;
    Hie__V1__Document *d = NULL;
    hie_arena_reset(x->scratch);
    int urc = hie_proto_unpack(&hie__v1__queued_message__descriptor, msg, x->scratch, &m);
    if (urc != 0) {
        return hie_arena_cap_hit(x->scratch) ? HIE_ENOMEM : HIE_ECORRUPT;
    }
    Hie__V1__QueuedMessage *qm = (Hie__V1__QueuedMessage *)m;
    node_who_t to = {x->to->id, x->to, 0, x->cmd->request_id, NULL};
    node_subject_t s;
    Hie__V1__AuditAction action;
    int orc = hie_node__doc_unseal(x->ctx, qm, x->scratch, &d);
    if (orc == HIE_ENOMEM) {
        return orc; /* not a decision: the redrive fails, nothing is recorded */
    }
    bool permit = hie_node__queued_decide(x->ctx, x->txn, x->arena, &to, qm, orc == 0 ? d : NULL,
        &s, &action);
    s.document_ids = &qm->message_id;
    s.n_document_ids = permit;
    Hie__V1__AuditAppendCommand *ac = NULL;
    int rc = hie_node__audit_body(x->ctx, &to, action, permit
        ? HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED : HIE__V1__ERROR_CODE__ERROR_CONSENT_DENIED,
        &s, 1, x->arena, &ac);
    if (rc != 0) {
        return rc;
    }
    ac->record->recipient_org = (char *)(uintptr_t)x->to->id;
    rd->audits[rd->n_audits++] = ac;
    if (permit) {
        rd->seqs[rd->n_seqs++] = seq;
    }
    x->withheld += !permit;
    return 0;
}

int
hie_node__redrive_decide(node_ctx_t *ctx, hie_command_t *cmd, hie_arena_t *arena,
    uint32_t *withheld)
{
    Hie__V1__RedriveCommand *rd = cmd->redrive;
    *withheld = 0;
    hie_org_t *to = NULL;
    struct redrive x = {ctx, NULL, arena, NULL, NULL, cmd, rd, 0};
    rd->seqs = hie_arena_alloc(arena, HIE_REDRIVE_DECIDED_MAX * sizeof(*rd->seqs));
    rd->audits = hie_arena_alloc(arena, HIE_REDRIVE_DECIDED_MAX * sizeof(*rd->audits));
    rd->n_seqs = rd->n_audits = 0;
    if (rd->seqs == NULL || rd->audits == NULL || hie_node__state_mpi_key(ctx->state) == NULL) {
        return HIE_EUNAVAIL;
    }
    if (hie_arena_create(&x.scratch, PUSH_REDRIVE_SCRATCH_BYTES) != 0) {
        return HIE_ENOMEM;
    }
    if (mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &x.txn) != 0) {
        hie_arena_destroy(&x.scratch);
        return HIE_ESTORAGE;
    }
    int rc = hie_node__state_org_get_in(ctx->state, x.txn, rd->recipient_org, arena, &to);
    x.to = to;
    rc = rc ? rc : hie_node__queue_dead_scan(hie_node__state_queue(ctx->state), x.txn,
        rd->recipient_org, NULL, 0, HIE_DELIVERY_QUEUE_MAX, redrive_one, &x);
    mdb_txn_abort(x.txn);
    hie_arena_destroy(&x.scratch);
    rd->decided = true;
    *withheld = x.withheld;
    return rc;
}
