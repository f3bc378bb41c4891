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
 */
#include "node_int.h"

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

int
hie_node__repo_get(node_repo_t *r, MDB_txn *txn, const char *id, hie_span_t *stored)
{
    HIE_ASSERT(r != NULL && r->magic == REPO_MAGIC);
    MDB_val k = {strlen(id), (void *)(uintptr_t)id}, v;
    int rc = mdb_rc(mdb_get(txn, r->doc, &k, &v));
    *stored = rc == 0 ? hie_span(v.mv_data, v.mv_size) : hie_span(NULL, 0);
    return rc;
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
        rc = rc ? rc : fn(ctx, hie_span(v.mv_data, v.mv_size), hie_span(d.mv_data, d.mv_size));
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
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : HIE_ESTORAGE;
}

bool
hie_node__repo_is_responder(node_repo_t *r, MDB_txn *txn, const char *org)
{
    HIE_ASSERT(r != NULL && r->magic == REPO_MAGIC);
    MDB_val k = {strlen(org), (void *)(uintptr_t)org}, v;
    return mdb_get(txn, r->resp, &k, &v) == 0;
}
