/*
 * queue_state.c - durable per-recipient delivery queues in the replicated state (issue 5):
 * apply of push (enqueue + its audit record, one transaction) and delivery_ack (dequeue) on
 * the log thread, and the readers the delivery thread uses.
 *
 * Databases (state environment):
 *   q_msg   recipient org || 0x00 || seq(8 BE) -> QueuedMessage (document sealed)
 *   q_meta  recipient org -> next seq(8 BE) || queued count(8 BE)
 *   q_dead  recipient org || 0x00 || seq(8 BE) -> QueuedMessage with dead_ms and dead_reason
 *           (dead letters: kept with their content until an operator redrives them)
 *   q_ids   message id -> log index(8 BE): every message id used since the rule below, for
 *           good (request ids are remembered for repeats 7 days only)
 * Sequence numbers start at 1 per recipient and never repeat; an acknowledged message is
 * deleted, so the queue's first entry is the oldest unacknowledged one. Apply checks before it
 * writes: a full queue or an unknown recipient is a recorded rejection, nothing changes.
 */
#include "node_int.h"

#include <string.h>

#define QUEUE_MAGIC 0x51554555u /* "QUEU" */
#define QKEY_BYTES_MAX (HIE_ORG_ID_BYTES_MAX + 1u + 8u)
/* From 2026-11-30T21:45Z (the rules clock) a message id (sender:request id) is used once: a
 * push that reuses one after the 7 days repeats are answered for is refused. It overwrote the
 * repository's document of that id (possibly another patient's, still indexed under the
 * first), and recipients drop a queued message whose id they have seen. */
#define PUSH_IDS_ONCE_SINCE_MS 1796075100000ll
/* From 2026-12-01T00:00Z (by the rules clock): a decided redrive whose letters were purged or
 * redriven since its decision is refused whole (its records would name documents that never
 * left). */
#define REDRIVE_EXISTS_SINCE_MS 1796083200000ll
/* 2026-12-01T03:00Z: a redrive stamps redriven_ms, from which delivery.max_age_ms runs. */
#define REDRIVE_AGE_SINCE_MS 1796094000000ll

/* A redrive unpacks one dead letter at a time into this (reset for each), not into the apply
 * arena: 10,000 dead letters of up to 1 MiB do not fit that, and an apply that fails stops
 * the node at every replay. */
#define QUEUE_SCRATCH_BYTES (8u * 1024u * 1024u)

struct node_queue {
    uint32_t magic;
    MDB_dbi msg, meta, dead, ids;
    hie_arena_t *scratch; /* log thread only */
};

static int
mdb_rc(int rc)
{
    return rc == 0 ? 0 : (rc == MDB_NOTFOUND ? HIE_ENOTFOUND : HIE_ESTORAGE);
}

int
hie_node__queue_open(node_queue_t **out, MDB_env *env)
{
    HIE_ASSERT(out != NULL && env != NULL);
    *out = NULL;
    node_queue_t *q = hie_mem_calloc(1, sizeof(*q));
    if (q == NULL) {
        return HIE_ENOMEM;
    }
    q->magic = QUEUE_MAGIC;
    const node_dbi_spec_t dbis[] = {{"q_msg", MDB_CREATE, &q->msg},
        {"q_meta", MDB_CREATE, &q->meta}, {"q_dead", MDB_CREATE, &q->dead},
        {"q_ids", MDB_CREATE, &q->ids}};
    int rc = hie_node__dbis_open(env, dbis, HIE_ARRAY_LEN(dbis));
    rc = rc ? rc : hie_arena_create(&q->scratch, QUEUE_SCRATCH_BYTES);
    if (rc != 0) {
        hie_node__queue_close(&q);
        return rc;
    }
    *out = q;
    return 0;
}

void
hie_node__queue_close(node_queue_t **qp)
{
    HIE_ASSERT(qp != NULL);
    if (*qp == NULL) {
        return;
    }
    HIE_ASSERT((*qp)->magic == QUEUE_MAGIC);
    hie_arena_destroy(&(*qp)->scratch);
    (*qp)->magic = 0;
    hie_mem_free(*qp, sizeof(**qp));
    *qp = NULL;
}

static size_t
qkey(uint8_t *k, const char *org, uint64_t seq)
{
    size_t n = strlen(org);
    HIE_ASSERT(n > 0 && n <= HIE_ORG_ID_BYTES_MAX);
    memcpy(k, org, n);
    k[n] = 0;
    hie_store_be64(k + n + 1, seq);
    return n + 9;
}

/* The recipient's next seq and queued count (1 and 0 for a new recipient). */
/* A recipient's q_meta: its next seq, how many messages wait, their bytes and its dead
 * letters' bytes (since 2026-12-01; a shorter value from before counts 0 bytes, and bytes
 * never go below 0). */
struct qmeta {
    uint64_t next, count, bytes, dead_bytes;
};

static int
meta_get(node_queue_t *q, MDB_txn *txn, const char *org, struct qmeta *m)
{
    MDB_val k = {strlen(org), (void *)(uintptr_t)org}, v;
    int rc = mdb_rc(mdb_get(txn, q->meta, &k, &v));
    *m = (struct qmeta){1, 0, 0, 0};
    if (rc == HIE_ENOTFOUND) {
        return 0;
    }
    if (rc == 0 && v.mv_size != 16 && v.mv_size != 24 && v.mv_size != 32) {
        return HIE_ECORRUPT;
    }
    if (rc == 0) {
        const uint8_t *b = v.mv_data;
        m->next = hie_load_be64(b);
        m->count = hie_load_be64(b + 8);
        m->bytes = v.mv_size >= 24 ? hie_load_be64(b + 16) : 0;
        m->dead_bytes = v.mv_size >= 32 ? hie_load_be64(b + 24) : 0;
    }
    return rc;
}

static int
meta_put(node_queue_t *q, MDB_txn *txn, const char *org, const struct qmeta *m)
{
    uint8_t b[32];
    hie_store_be64(b, m->next);
    hie_store_be64(b + 8, m->count);
    hie_store_be64(b + 16, m->bytes);
    hie_store_be64(b + 24, m->dead_bytes);
    MDB_val k = {strlen(org), (void *)(uintptr_t)org}, v = {sizeof(b), b};
    return mdb_rc(mdb_put(txn, q->meta, &k, &v, 0));
}

static void
meta_less(struct qmeta *m, uint64_t bytes)
{
    HIE_ASSERT(m->count > 0);
    m->count--;
    m->bytes = m->bytes > bytes ? m->bytes - bytes : 0;
}

static void
dead_less(struct qmeta *m, uint64_t bytes)
{
    m->dead_bytes = m->dead_bytes > bytes ? m->dead_bytes - bytes : 0;
}

int
hie_node__queue_depth(node_queue_t *q, MDB_txn *txn, const char *org, uint64_t *count)
{
    uint64_t bytes = 0;
    return hie_node__queue_totals(q, txn, org, count, &bytes);
}

int
hie_node__queue_totals(node_queue_t *q, MDB_txn *txn, const char *org, uint64_t *count,
    uint64_t *bytes)
{
    HIE_ASSERT(q != NULL && q->magic == QUEUE_MAGIC);
    struct qmeta m;
    int rc = meta_get(q, txn, org, &m);
    *count = m.count;
    *bytes = m.bytes + m.dead_bytes;
    return rc;
}

/* ---- apply ---------------------------------------------------------------------------------- */

int
hie_node__queue_enqueue(node_queue_t *q, node_apply_t *a, Hie__V1__QueuedMessage *m,
    uint64_t *seq)
{
    HIE_ASSERT(q != NULL && q->magic == QUEUE_MAGIC);
    struct qmeta qm;
    *seq = 0;
    int rc = meta_get(q, a->txn, m->recipient_org, &qm);
    if (rc != 0) {
        return rc;
    }
    if (qm.count >= HIE_DELIVERY_QUEUE_MAX) {
        return HIE_ELIMIT;
    }
    m->accepted_ms = a->cmd->time_ms;
    m->attempts = 0;
    uint8_t k[QKEY_BYTES_MAX];
    MDB_val key = {qkey(k, m->recipient_org, qm.next), k};
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    MDB_val v = {n, NULL};
    rc = mdb_rc(mdb_put(a->txn, q->msg, &key, &v, MDB_RESERVE));
    if (rc == 0) {
        size_t packed = protobuf_c_message_pack(&m->base, v.mv_data);
        HIE_ASSERT(packed == n);
        *seq = qm.next;
        qm.next++;
        qm.count++;
        qm.bytes += n;
        rc = meta_put(q, a->txn, m->recipient_org, &qm);
    }
    *seq = rc == 0 ? *seq : 0;
    return rc;
}

/* Since PUSH_IDS_ONCE_SINCE_MS: *used when the message id was used before (in q_ids, or a
 * repository document of that id from before the rule). */
static int
push_id_used(node_queue_t *q, node_repo_t *repo, node_apply_t *a, const char *id, bool *used)
{
    *used = false;
    if (a->rules_ms < PUSH_IDS_ONCE_SINCE_MS) {
        return 0;
    }
    MDB_val k = {strlen(id), (void *)(uintptr_t)id}, v;
    int rc = mdb_get(a->txn, q->ids, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return hie_node__repo_id_used(repo, a->txn, id, used);
    }
    *used = rc == 0;
    return rc == 0 ? 0 : HIE_ESTORAGE;
}

/* Remembers the message id (since PUSH_IDS_ONCE_SINCE_MS). */
static int
push_id_keep(node_queue_t *q, node_apply_t *a, const char *id)
{
    if (a->rules_ms < PUSH_IDS_ONCE_SINCE_MS) {
        return 0;
    }
    uint8_t index[8];
    hie_store_be64(index, a->index);
    MDB_val k = {strlen(id), (void *)(uintptr_t)id}, v = {sizeof(index), index};
    return mdb_rc(mdb_put(a->txn, q->ids, &k, &v, 0));
}

static int
apply_push(node_queue_t *q, node_audit_t *au, node_repo_t *repo, node_apply_t *a)
{
    const Hie__V1__PushCommand *pc = a->cmd->push;
    uint64_t seq = 0;
    bool used = false;
    int urc = push_id_used(q, repo, a, pc->message->message_id, &used);
    if (urc != 0 || used) {
        return urc != 0 ? urc : node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
            "id", "an earlier message had this id (repeats are answered for 7 days; ids are "
            "never used twice): send it with a new id");
    }
    if (pc->message->recipient_org[0] == '\0') { /* to the repository */
        pc->message->accepted_ms = a->cmd->time_ms;
        int rc = hie_node__repo_store(repo, a, pc->message,
            hie_span(pc->patient_rec_hash.data, pc->patient_rec_hash.len));
        rc = rc ? rc : push_id_keep(q, a, pc->message->message_id);
        return rc ? rc : hie_node__audit_append(au, a, pc->audit);
    }
    int rc = hie_node__queue_enqueue(q, a, pc->message, &seq);
    if (rc == HIE_ELIMIT) { /* checked before any write */
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "recipient_org",
            "the recipient's queue is full; retry later");
    }
    rc = rc ? rc : push_id_keep(q, a, pc->message->message_id);
    rc = rc ? rc : hie_node__audit_append(au, a, pc->audit);
    a->res->push_seq = seq;
    return rc;
}

static int
apply_ack(node_queue_t *q, node_apply_t *a)
{
    const Hie__V1__DeliveryAckCommand *ac = a->cmd->delivery_ack;
    struct qmeta qm;
    MDB_cursor *cur = NULL;
    int rc = meta_get(q, a->txn, ac->recipient_org, &qm);
    rc = rc ? rc : mdb_rc(mdb_cursor_open(a->txn, q->msg, &cur));
    uint32_t removed = 0;
    for (size_t i = 0; rc == 0 && i < ac->n_seqs; i++) {
        uint8_t k[QKEY_BYTES_MAX];
        MDB_val key = {qkey(k, ac->recipient_org, ac->seqs[i]), k}, v;
        int mrc = mdb_cursor_get(cur, &key, &v, MDB_SET_KEY);
        if (mrc == 0) {
            size_t bytes = v.mv_size;
            rc = mdb_rc(mdb_cursor_del(cur, 0));
            meta_less(&qm, bytes);
            removed++;
        } else if (mrc != MDB_NOTFOUND) { /* acknowledged before, or never issued: no-op */
            rc = HIE_ESTORAGE;
        }
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    if (rc == 0 && removed > 0) {
        rc = meta_put(q, a->txn, ac->recipient_org, &qm);
    }
    a->res->acknowledged = removed;
    return rc;
}

/* Takes the message under from_key out of from (unpacked into arena). */
static int
take_msg(node_apply_t *a, hie_arena_t *arena, MDB_dbi from, MDB_val *from_key,
    Hie__V1__QueuedMessage **out, size_t *bytes)
{
    MDB_val v = {0, NULL};
    ProtobufCMessage *m = NULL;
    int rc = mdb_rc(mdb_get(a->txn, from, from_key, &v));
    rc = rc ? rc : (hie_proto_unpack(&hie__v1__queued_message__descriptor,
        hie_span(v.mv_data, v.mv_size), arena, &m) ? HIE_ECORRUPT : 0);
    *bytes = v.mv_size;
    rc = rc ? rc : mdb_rc(mdb_del(a->txn, from, from_key, NULL));
    if (rc != 0) {
        return rc;
    }
    *out = (Hie__V1__QueuedMessage *)m;
    return 0;
}

static int
put_msg(node_apply_t *a, MDB_dbi dbi, MDB_val *key, const Hie__V1__QueuedMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    MDB_val v = {n, NULL};
    int rc = mdb_rc(mdb_put(a->txn, dbi, key, &v, MDB_RESERVE));
    if (rc == 0) {
        HIE_ASSERT(protobuf_c_message_pack(&m->base, v.mv_data) == n);
    }
    return rc;
}

static int
apply_dead(node_queue_t *q, node_audit_t *au, node_apply_t *a)
{
    const Hie__V1__DeadLetterCommand *dc = a->cmd->dead_letter;
    uint8_t k[QKEY_BYTES_MAX];
    MDB_val key = {qkey(k, dc->recipient_org, dc->seq), k};
    Hie__V1__QueuedMessage *m = NULL;
    struct qmeta qm;
    size_t bytes = 0;
    int rc = meta_get(q, a->txn, dc->recipient_org, &qm);
    rc = rc ? rc : take_msg(a, a->arena, q->msg, &key, &m, &bytes);
    if (rc == HIE_ENOTFOUND) { /* acknowledged meanwhile: nothing to do */
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "seq",
            "not in the queue");
    }
    if (rc != 0) {
        return rc;
    }
    m->attempts = dc->attempts;
    m->dead_ms = a->cmd->time_ms;
    m->dead_reason = dc->reason;
    rc = put_msg(a, q->dead, &key, m);
    meta_less(&qm, bytes);
    qm.dead_bytes += protobuf_c_message_get_packed_size(&m->base); /* as purge takes it off */
    rc = rc ? rc : meta_put(q, a->txn, dc->recipient_org, &qm);
    /* withheld by consent: its audit record in the same transaction (none when it was
     * acknowledged meanwhile: refused above, nothing written) */
    return rc || dc->audit == NULL ? rc : hie_node__audit_append(au, a, dc->audit);
}

struct redrive {
    uint64_t seqs[HIE_DELIVERY_REDRIVE_MAX];
    size_t n;
};

static int
redrive_collect(node_queue_t *q, node_apply_t *a, const char *org, struct redrive *r)
{
    uint8_t k[QKEY_BYTES_MAX];
    size_t plen = strlen(org) + 1;
    MDB_val key = {qkey(k, org, 0), k}, v;
    MDB_cursor *cur = NULL;
    int rc = mdb_rc(mdb_cursor_open(a->txn, q->dead, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE) : 0;
    while (rc == 0 && mrc == 0 && r->n < HIE_DELIVERY_REDRIVE_MAX &&
           key.mv_size == plen + 8 && memcmp(key.mv_data, k, plen) == 0) {
        r->seqs[r->n++] = hie_load_be64((const uint8_t *)key.mv_data + plen);
        mrc = mdb_cursor_get(cur, &key, &v, MDB_NEXT);
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc != 0 ? rc : (mrc != 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : 0);
}

/* Since REDRIVE_EXISTS_SINCE_MS: a decided redrive whose letters going back are not all dead
 * letters any more (purged or redriven since the decision) is refused, nothing written. */
static int
redrive_present(node_queue_t *q, node_apply_t *a, const Hie__V1__RedriveCommand *rc_)
{
    for (size_t i = 0; a->rules_ms >= REDRIVE_EXISTS_SINCE_MS && i < rc_->n_seqs; i++) {
        uint8_t k[QKEY_BYTES_MAX];
        MDB_val key = {qkey(k, rc_->recipient_org, rc_->seqs[i]), k}, v;
        int grc = mdb_get(a->txn, q->dead, &key, &v);
        if (grc == MDB_NOTFOUND) {
            return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "seq",
                "the dead letters changed since this redrive was decided: run it again");
        }
        if (grc != 0) {
            return HIE_ESTORAGE;
        }
    }
    return 0;
}

static int
apply_redrive(node_queue_t *q, node_audit_t *au, node_apply_t *a)
{
    const Hie__V1__RedriveCommand *rc_ = a->cmd->redrive;
    static struct redrive r; /* log thread only */
    r.n = 0;
    int rc = 0;
    if (rc_->decided) { /* the proposer's decision: these go back; every one is audited */
        HIE_ASSERT(rc_->n_seqs <= HIE_REDRIVE_DECIDED_MAX); /* command validation */
        int prc = redrive_present(q, a, rc_);
        if (prc != 0 || a->res->code != 0) {
            return prc;
        }
        for (size_t i = 0; i < rc_->n_seqs; i++) {
            r.seqs[r.n++] = rc_->seqs[i];
        }
        for (size_t i = 0; rc == 0 && i < rc_->n_audits; i++) {
            rc = hie_node__audit_append(au, a, rc_->audits[i]);
        }
        size_t withheld = rc_->n_audits - rc_->n_seqs;
        char *why = withheld > 0 ? hie_arena_alloc(a->arena, 96) : NULL;
        if (why != NULL) {
            snprintf(why, 96, "%zu stay dead: the patient's consent now withholds them",
                withheld);
            a->res->message = why;
        }
        if (rc == 0 && rc_->n_audits > 0 && r.n == 0) {
            a->res->acknowledged = 0; /* decided and audited: none goes back */
            return 0;
        }
    } else if (rc_->seq == 0) {
        rc = redrive_collect(q, a, rc_->recipient_org, &r);
    } else {
        r.seqs[r.n++] = rc_->seq;
    }
    struct qmeta qm;
    rc = rc ? rc : meta_get(q, a->txn, rc_->recipient_org, &qm);
    uint32_t moved = 0;
    for (size_t i = 0; rc == 0 && i < r.n; i++) {
        uint8_t k[QKEY_BYTES_MAX], k2[QKEY_BYTES_MAX];
        MDB_val from = {qkey(k, rc_->recipient_org, r.seqs[i]), k};
        MDB_val to = {qkey(k2, rc_->recipient_org, qm.next), k2};
        Hie__V1__QueuedMessage *m = NULL;
        size_t bytes = 0;
        hie_arena_reset(q->scratch);
        rc = take_msg(a, q->scratch, q->dead, &from, &m, &bytes);
        if (rc == HIE_ENOTFOUND) {
            rc = 0;
            continue;
        }
        dead_less(&qm, bytes);
        m->attempts = 0;
        m->dead_ms = 0;
        m->dead_reason = (char *)(uintptr_t)"";
        m->redriven_ms = a->rules_ms >= REDRIVE_AGE_SINCE_MS ? a->cmd->time_ms : m->redriven_ms;
        rc = rc ? rc : put_msg(a, q->msg, &to, m);
        qm.bytes += rc == 0 ? protobuf_c_message_get_packed_size(&m->base) : 0;
        qm.next++;
        qm.count++;
        moved++;
    }
    if (rc == 0 && moved == 0) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "seq",
            "no such dead letter");
    }
    rc = rc ? rc : meta_put(q, a->txn, rc_->recipient_org, &qm);
    a->res->acknowledged = moved;
    return rc;
}

/* Deletes dead letters: one, or the recipient's first HIE_DELIVERY_REDRIVE_MAX. */
static int
apply_purge(node_queue_t *q, node_apply_t *a)
{
    const Hie__V1__DeadPurgeCommand *pc = a->cmd->dead_purge;
    static struct redrive r; /* log thread only */
    r.n = 0;
    int rc = 0;
    if (pc->seq == 0) {
        rc = redrive_collect(q, a, pc->recipient_org, &r);
    } else {
        r.seqs[r.n++] = pc->seq;
    }
    struct qmeta qm;
    MDB_cursor *cur = NULL;
    rc = rc ? rc : meta_get(q, a->txn, pc->recipient_org, &qm);
    rc = rc ? rc : mdb_rc(mdb_cursor_open(a->txn, q->dead, &cur));
    uint32_t purged = 0;
    for (size_t i = 0; rc == 0 && i < r.n; i++) {
        uint8_t k[QKEY_BYTES_MAX];
        MDB_val key = {qkey(k, pc->recipient_org, r.seqs[i]), k}, v;
        int mrc = mdb_cursor_get(cur, &key, &v, MDB_SET_KEY);
        if (mrc == 0) {
            dead_less(&qm, v.mv_size);
            rc = mdb_rc(mdb_cursor_del(cur, 0));
            purged++;
        } else if (mrc != MDB_NOTFOUND) {
            rc = HIE_ESTORAGE;
        }
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    if (rc == 0 && purged == 0) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "seq",
            "no such dead letter");
    }
    rc = rc ? rc : meta_put(q, a->txn, pc->recipient_org, &qm);
    a->res->acknowledged = purged;
    return rc;
}

int
hie_node__queue_apply(node_queue_t *q, node_audit_t *au, node_repo_t *repo, node_apply_t *a)
{
    HIE_ASSERT(q != NULL && q->magic == QUEUE_MAGIC);
    HIE_ASSERT(a != NULL && a->cmd != NULL);
    switch (a->cmd->body_case) {
    case HIE__V1__COMMAND__BODY_PUSH:
        return apply_push(q, au, repo, a);
    case HIE__V1__COMMAND__BODY_DELIVERY_ACK:
        return apply_ack(q, a);
    case HIE__V1__COMMAND__BODY_DEAD_LETTER:
        return apply_dead(q, au, a);
    case HIE__V1__COMMAND__BODY_REDRIVE:
        return apply_redrive(q, au, a);
    case HIE__V1__COMMAND__BODY_DEAD_PURGE:
        return apply_purge(q, a);
    default:
        HIE_ASSERT(!"not a queue command");
        return HIE_EINVAL;
    }
}

/* ---- reading ------------------------------------------------------------------------------- */

int
hie_node__queue_scan(node_queue_t *q, MDB_txn *txn, const char *org, uint64_t from_seq,
    size_t max, int (*fn)(void *ctx, uint64_t seq, hie_span_t msg), void *ctx)
{
    HIE_ASSERT(q != NULL && q->magic == QUEUE_MAGIC);
    HIE_ASSERT(org != NULL && fn != NULL);
    uint8_t k[QKEY_BYTES_MAX];
    size_t plen = strlen(org) + 1;
    MDB_val key = {qkey(k, org, from_seq), k}, v;
    MDB_cursor *cur = NULL;
    int rc = mdb_rc(mdb_cursor_open(txn, q->msg, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE) : 0;
    for (size_t i = 0; rc == 0 && mrc == 0 && i < max; i++) {
        if (key.mv_size != plen + 8 || memcmp(key.mv_data, k, plen) != 0) {
            break; /* the next recipient's queue */
        }
        rc = fn(ctx, hie_load_be64((const uint8_t *)key.mv_data + plen),
            hie_span(v.mv_data, v.mv_size));
        mrc = rc == 0 ? mdb_cursor_get(cur, &key, &v, MDB_NEXT) : 0;
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = HIE_ESTORAGE;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc > 0 ? 0 : rc; /* fn's positive return stops the scan */
}

bool
hie_node__queue_has(node_queue_t *q, MDB_txn *txn, const char *org, uint64_t seq)
{
    HIE_ASSERT(q != NULL && q->magic == QUEUE_MAGIC);
    uint8_t k[QKEY_BYTES_MAX];
    MDB_val key = {qkey(k, org, seq), k}, v;
    return mdb_get(txn, q->msg, &key, &v) == 0;
}

int
hie_node__queue_dead_scan(node_queue_t *q, MDB_txn *txn, const char *org, const char *from_org,
    uint64_t from_seq, size_t max, int (*fn)(void *ctx, hie_span_t msg, uint64_t seq),
    void *ctx)
{
    HIE_ASSERT(q != NULL && q->magic == QUEUE_MAGIC);
    uint8_t k[QKEY_BYTES_MAX];
    size_t plen = org != NULL ? strlen(org) + 1 : 0;
    const char *start = org != NULL ? org : from_org; /* from_org: every recipient from it */
    MDB_val key = {start != NULL ? qkey(k, start, from_seq) : 0, k}, v;
    MDB_cursor *cur = NULL;
    int rc = mdb_rc(mdb_cursor_open(txn, q->dead, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &key, &v, start != NULL ? MDB_SET_RANGE : MDB_FIRST)
                      : 0;
    for (size_t i = 0; rc == 0 && mrc == 0 && i < max; i++) {
        if (org != NULL && (key.mv_size != plen + 8 || memcmp(key.mv_data, k, plen) != 0)) {
            break;
        }
        if (key.mv_size < 9) {
            rc = HIE_ECORRUPT;
            break;
        }
        rc = fn(ctx, hie_span(v.mv_data, v.mv_size),
            hie_load_be64((const uint8_t *)key.mv_data + key.mv_size - 8));
        mrc = rc == 0 ? mdb_cursor_get(cur, &key, &v, MDB_NEXT) : 0;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc > 0 ? 0 : rc;
}
