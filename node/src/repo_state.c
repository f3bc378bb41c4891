/*
 * repo_state.c - the HIE's document repository in the replicated state (issue 5): documents
 * pushed to the repository (a push with no recipient), answered by record queries and
 * retrieved by id.
 *
 * Databases (state environment):
 *   repo_doc  document id -> QueuedMessage (the document sealed with the data key, AD = id)
 *   repo_rec  dupsort: record identity of the author's patient -> document id
 *   repo_resp responder organizations: org -> "" (record queries are forwarded to them)
 *   repo_bytes author organization -> bytes(8 BE) of its documents stored since
 *             REPO_BYTES_SINCE_MS (the workers refuse its pushes past
 *             delivery.repository_bytes_max)
 * Documents are indexed by the author's source record, so they follow the record through
 * links and unlinks: a query about an EUID reads the documents of every source record of it.
 *
 * A retracted document (RetractCommand: its author or the operator) keeps its repo_doc key
 * with a tombstone for value: a 0 byte (no packed QueuedMessage starts with one: field 0 does
 * not exist), then a QueuedMessage of the id, author, acceptance time, and when and why it was
 * retracted and by whom (dead_ms, dead_reason), no content. Readers treat it as absent; the id
 * stays used. Its repo_rec entry stays too (listings skip it): removing it would need the
 * record identity, which documents stored before do not carry.
 */
#include "node_int.h"

#include <stdio.h>
#include <string.h>

#define REPO_MAGIC 0x5245504fu /* "REPO" */
/* 2026-12-01T03:00Z: stores count their bytes per author (by the rules clock). */
#define REPO_BYTES_SINCE_MS 1796094000000ll

struct node_repo {
    uint32_t magic;
    MDB_dbi doc, rec, resp, bytes;
};

static int
mdb_rc(int rc)
{
    return rc == 0 ? 0 : (rc == MDB_NOTFOUND ? HIE_ENOTFOUND : HIE_ESTORAGE);
}

int
hie_node__repo_open(node_repo_t **out, MDB_env *env)
{
    HIE_ASSERT(out != NULL && env != NULL);
    *out = NULL;
    node_repo_t *r = hie_mem_calloc(1, sizeof(*r));
    if (r == NULL) {
        return HIE_ENOMEM;
    }
    r->magic = REPO_MAGIC;
    const node_dbi_spec_t dbis[] = {{"repo_doc", MDB_CREATE, &r->doc},
        {"repo_rec", MDB_CREATE | MDB_DUPSORT, &r->rec}, {"repo_resp", MDB_CREATE, &r->resp},
        {"repo_bytes", MDB_CREATE, &r->bytes}};
    int rc = hie_node__dbis_open(env, dbis, HIE_ARRAY_LEN(dbis));
    if (rc != 0) {
        hie_node__repo_close(&r);
        return rc;
    }
    *out = r;
    return 0;
}

void
hie_node__repo_close(node_repo_t **rp)
{
    HIE_ASSERT(rp != NULL);
    if (*rp == NULL) {
        return;
    }
    HIE_ASSERT((*rp)->magic == REPO_MAGIC);
    (*rp)->magic = 0;
    hie_mem_free(*rp, sizeof(**rp));
    *rp = NULL;
}

int
hie_node__repo_store(node_repo_t *r, node_apply_t *a, const Hie__V1__QueuedMessage *m,
    hie_span_t rec_hash)
{
    HIE_ASSERT(r != NULL && r->magic == REPO_MAGIC);
    HIE_ASSERT(rec_hash.len == HIE_PROTO_REC_HASH_BYTES);
    MDB_val k = {strlen(m->message_id), m->message_id};
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    MDB_val v = {n, NULL};
    int rc = mdb_rc(mdb_put(a->txn, r->doc, &k, &v, MDB_RESERVE));
    if (rc == 0) {
        HIE_ASSERT(protobuf_c_message_pack(&m->base, v.mv_data) == n);
        MDB_val hk = {rec_hash.len, (void *)(uintptr_t)rec_hash.ptr};
        rc = mdb_rc(mdb_put(a->txn, r->rec, &hk, &k, 0));
    }
    if (rc == 0 && a->rules_ms >= REPO_BYTES_SINCE_MS && m->sender_org != NULL) {
        uint64_t had = 0;
        rc = hie_node__repo_bytes(r, a->txn, m->sender_org, &had);
        uint8_t b[8];
        hie_store_be64(b, had + n);
        MDB_val ok = {strlen(m->sender_org), m->sender_org}, ov = {sizeof(b), b};
        rc = rc ? rc : mdb_rc(mdb_put(a->txn, r->bytes, &ok, &ov, 0));
    }
    return rc;
}

int
hie_node__repo_bytes(node_repo_t *r, MDB_txn *txn, const char *org, uint64_t *bytes)
{
    HIE_ASSERT(r != NULL && r->magic == REPO_MAGIC);
    MDB_val k = {strlen(org), (void *)(uintptr_t)org}, v;
    int rc = mdb_rc(mdb_get(txn, r->bytes, &k, &v));
    *bytes = rc == 0 && v.mv_size == 8 ? hie_load_be64(v.mv_data) : 0;
    return rc == HIE_ENOTFOUND ? 0 : rc;
}

static bool
tombstone(const MDB_val *v)
{
    return v->mv_size > 0 && ((const uint8_t *)v->mv_data)[0] == 0;
}

int
hie_node__repo_get(node_repo_t *r, MDB_txn *txn, const char *id, hie_span_t *stored)
{
    HIE_ASSERT(r != NULL && r->magic == REPO_MAGIC);
    MDB_val k = {strlen(id), (void *)(uintptr_t)id}, v;
    int rc = mdb_rc(mdb_get(txn, r->doc, &k, &v));
    rc = rc == 0 && tombstone(&v) ? HIE_ENOTFOUND : rc;
    *stored = rc == 0 ? hie_span(v.mv_data, v.mv_size) : hie_span(NULL, 0);
    return rc;
}

int
hie_node__repo_id_used(node_repo_t *r, MDB_txn *txn, const char *id, bool *used)
{
    HIE_ASSERT(r != NULL && r->magic == REPO_MAGIC);
    MDB_val k = {strlen(id), (void *)(uintptr_t)id}, v;
    int rc = mdb_rc(mdb_get(txn, r->doc, &k, &v));
    *used = rc == 0;
    return rc == HIE_ENOTFOUND ? 0 : rc;
}

int
hie_node__repo_each(node_repo_t *r, MDB_txn *txn, const uint8_t *rec_hash, size_t max,
    int (*fn)(void *ctx, hie_span_t id, hie_span_t stored), void *ctx)
{
    HIE_ASSERT(r != NULL && r->magic == REPO_MAGIC);
    MDB_cursor *cur = NULL;
    MDB_val k = {HIE_PROTO_REC_HASH_BYTES, (void *)(uintptr_t)rec_hash}, v, d;
    int rc = mdb_rc(mdb_cursor_open(txn, r->rec, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_KEY) : 0;
    for (size_t i = 0; rc == 0 && mrc == 0 && i < max; i++) {
        rc = mdb_rc(mdb_get(txn, r->doc, &v, &d));
        rc = rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
        if (rc == 0 && !tombstone(&d)) { /* a retracted document is not listed */
            rc = fn(ctx, hie_span(v.mv_data, v.mv_size), hie_span(d.mv_data, d.mv_size));
        }
        mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP) : 0;
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = HIE_ESTORAGE;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc > 0 ? 0 : rc;
}

int
hie_node__repo_responder_apply(node_repo_t *r, node_apply_t *a)
{
    HIE_ASSERT(r != NULL && r->magic == REPO_MAGIC);
    const Hie__V1__ResponderCommand *c = a->cmd->responder;
    if (strcmp(c->org_id, a->cmd->requester) != 0 && strcmp(a->cmd->requester, "@operator")) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, "org_id",
            "an organization registers itself");
    }
    MDB_val k = {strlen(c->org_id), c->org_id}, v = {0, (void *)(uintptr_t)""};
    int rc = c->enabled ? mdb_put(a->txn, r->resp, &k, &v, 0) : mdb_del(a->txn, r->resp, &k, NULL);
    a->res->responder = c->enabled ? 2u : 1u;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : HIE_ESTORAGE;
}

bool
hie_node__repo_is_responder(node_repo_t *r, MDB_txn *txn, const char *org)
{
    HIE_ASSERT(r != NULL && r->magic == REPO_MAGIC);
    MDB_val k = {strlen(org), (void *)(uintptr_t)org}, v;
    return mdb_get(txn, r->resp, &k, &v) == 0;
}

/* The tombstone of m, retracted by a's command: 0 || QueuedMessage (no content). */
static int
tombstone_put(node_repo_t *r, node_apply_t *a, MDB_val *k, const Hie__V1__QueuedMessage *m)
{
    const Hie__V1__RetractCommand *c = a->cmd->retract;
    size_t rb = strlen(a->cmd->requester) + HIE_RETRACT_REASON_BYTES_MAX + 32;
    char *why = hie_arena_alloc(a->arena, rb);
    if (why == NULL) {
        return HIE_ENOMEM;
    }
    snprintf(why, rb, "retracted by %s%s%s", a->cmd->requester,
        c->reason != NULL && c->reason[0] != '\0' ? ": " : "", c->reason != NULL ? c->reason : "");
    Hie__V1__QueuedMessage t = HIE__V1__QUEUED_MESSAGE__INIT;
    t.message_id = m->message_id;
    t.sender_org = m->sender_org;
    t.accepted_ms = m->accepted_ms;
    t.dead_ms = a->cmd->time_ms;
    t.dead_reason = why;
    size_t n = protobuf_c_message_get_packed_size(&t.base);
    MDB_val v = {1 + n, NULL};
    int rc = mdb_rc(mdb_put(a->txn, r->doc, k, &v, MDB_RESERVE));
    if (rc == 0) {
        ((uint8_t *)v.mv_data)[0] = 0;
        HIE_ASSERT(protobuf_c_message_pack(&t.base, (uint8_t *)v.mv_data + 1) == n);
    }
    return rc;
}

/* What the document counted against its author (stored since REPO_BYTES_SINCE_MS) leaves the
 * author's total; *released says how much. */
static int
bytes_release(node_repo_t *r, node_apply_t *a, const Hie__V1__QueuedMessage *m, size_t n,
    uint64_t *released)
{
    *released = 0;
    if (a->rules_ms < REPO_BYTES_SINCE_MS || m->accepted_ms < REPO_BYTES_SINCE_MS ||
        m->sender_org == NULL) {
        return 0;
    }
    uint64_t had = 0;
    int rc = hie_node__repo_bytes(r, a->txn, m->sender_org, &had);
    *released = had < n ? had : n;
    uint8_t b[8];
    hie_store_be64(b, had - *released);
    MDB_val ok = {strlen(m->sender_org), m->sender_org}, ov = {sizeof(b), b};
    return rc ? rc : mdb_rc(mdb_put(a->txn, r->bytes, &ok, &ov, 0));
}

int
hie_node__repo_retract_apply(node_repo_t *r, node_apply_t *a)
{
    HIE_ASSERT(r != NULL && r->magic == REPO_MAGIC);
    const Hie__V1__RetractCommand *c = a->cmd->retract;
    MDB_val k = {strlen(c->document_id), c->document_id}, v;
    int rc = mdb_rc(mdb_get(a->txn, r->doc, &k, &v));
    Hie__V1__QueuedMessage *m = NULL;
    if (rc == 0 && !tombstone(&v)) {
        rc = hie_proto_unpack(&hie__v1__queued_message__descriptor,
            hie_span(v.mv_data, v.mv_size), a->arena, (ProtobufCMessage **)&m);
        rc = rc == HIE_EPROTO ? HIE_ECORRUPT : rc;
    }
    if (rc != 0 && rc != HIE_ENOTFOUND) {
        return rc;
    }
    /* absent, retracted already, or another organization's: one answer for all three */
    if (m == NULL || m->sender_org == NULL || (strcmp(m->sender_org, a->cmd->requester) != 0 &&
            strcmp(a->cmd->requester, NODE_OPERATOR_ID) != 0)) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "document_id",
            "no such document of yours in the repository");
    }
    size_t n = v.mv_size;
    uint64_t released = 0;
    rc = bytes_release(r, a, m, n, &released);
    rc = rc ? rc : tombstone_put(r, a, &k, m);
    a->res->bytes_released = rc == 0 ? released : 0;
    a->res->document_id = c->document_id;
    return rc;
}
