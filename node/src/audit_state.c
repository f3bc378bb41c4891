/*
 * audit_state.c - the disclosure audit log in the replicated state (issue 4): apply of
 * audit_append, audit_batch and audit_checkpoint on the log thread, and the readers behind disclosure
 * reports and `hiectl audit verify`.
 *
 * Databases (state environment), besides the Merkle tree of hie/audit.h:
 *   audit_rec   leaf(8 BE) -> the leaf entry: a serialized AuditRecord (no personal data)
 *   audit_subj  leaf(8) pos(2) -> nonce(24) || AEAD(AuditSubject), AD = its commitment
 *   audit_pat   dupsort/dupfixed: keyed hash of the EUID(16) -> time(8) leaf(8) pos(2)
 *   audit_org   dupsort/dupfixed: requesting org id -> time(8) leaf(8)
 *   audit_btg   time(8) leaf(8) -> "" (break-glass disclosures)
 *   audit_ckpt  tree size(8) -> signed checkpoint note
 * The leaf entry is what apply serializes, with leaf_index and log_index filled in; its bytes
 * are stored as hashed, so verification never depends on re-serialization. Personal data sits
 * only in audit_subj, sealed with the data key, and in reports to auditors.
 */
#include "node_int.h"

#include "hie/audit.h"
#include "hie/mpi_store.h"

#include <sodium.h>
#include <string.h>

#define AUDIT_MAGIC 0x41554454u /* "AUDT" */
#define PAT_VAL_BYTES 18u
#define ORG_VAL_BYTES 16u

struct node_audit {
    uint32_t magic;
    MDB_dbi rec, subj, pat, org, btg, ckpt;
    hie_audit_tree_t *tree;
};

static int
mdb_rc(int rc)
{
    return rc == 0 ? 0 : (rc == MDB_NOTFOUND ? HIE_ENOTFOUND : HIE_ESTORAGE);
}

static int
dbis_open(node_audit_t *au, MDB_txn *txn, unsigned create)
{
    const unsigned dup = MDB_DUPSORT | MDB_DUPFIXED;
    int rc = mdb_rc(mdb_dbi_open(txn, "audit_rec", create, &au->rec));
    rc = rc ? rc : mdb_rc(mdb_dbi_open(txn, "audit_subj", create, &au->subj));
    rc = rc ? rc : mdb_rc(mdb_dbi_open(txn, "audit_pat", create | dup, &au->pat));
    rc = rc ? rc : mdb_rc(mdb_dbi_open(txn, "audit_org", create | dup, &au->org));
    rc = rc ? rc : mdb_rc(mdb_dbi_open(txn, "audit_btg", create, &au->btg));
    rc = rc ? rc : mdb_rc(mdb_dbi_open(txn, "audit_ckpt", create, &au->ckpt));
    rc = rc ? rc : hie_audit_tree_create(&au->tree, txn);
    return rc;
}

int
hie_node__audit_open(node_audit_t **out, MDB_env *env, bool read_only)
{
    HIE_ASSERT(out != NULL && env != NULL);
    *out = NULL;
    node_audit_t *au = hie_mem_calloc(1, sizeof(*au));
    if (au == NULL) {
        return HIE_ENOMEM;
    }
    au->magic = AUDIT_MAGIC;
    MDB_txn *txn = NULL;
    /* LMDB opens named databases only in a write txn the first time; read_only (hiectl on a
     * stopped node's files) still writes nothing: the databases exist or the open fails */
    int rc = mdb_rc(mdb_txn_begin(env, NULL, 0, &txn));
    rc = rc ? rc : dbis_open(au, txn, read_only ? 0 : MDB_CREATE);
    if (rc == 0) {
        rc = mdb_rc(mdb_txn_commit(txn));
        txn = NULL;
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc != 0) {
        hie_node__audit_close(&au);
        return rc;
    }
    *out = au;
    return 0;
}

void
hie_node__audit_close(node_audit_t **ap)
{
    HIE_ASSERT(ap != NULL);
    if (*ap == NULL) {
        return;
    }
    HIE_ASSERT((*ap)->magic == AUDIT_MAGIC);
    hie_audit_tree_destroy(&(*ap)->tree);
    (*ap)->magic = 0;
    hie_mem_free(*ap, sizeof(**ap));
    *ap = NULL;
}

/* ---- apply ---------------------------------------------------------------------------------- */

static int
put_raw(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const void *v, size_t vlen)
{
    MDB_val key = {klen, (void *)(uintptr_t)k}, val = {vlen, (void *)(uintptr_t)v};
    return mdb_rc(mdb_put(txn, dbi, &key, &val, 0));
}

/* The record's index entries: patients, requesting organization, break-glass. */
static int
index_put(node_audit_t *au, node_apply_t *a, const Hie__V1__AuditAppendCommand *ac,
    uint64_t leaf)
{
    const Hie__V1__AuditRecord *r = ac->record;
    uint8_t tl[PAT_VAL_BYTES];
    hie_store_be64(tl, (uint64_t)r->time_ms);
    hie_store_be64(tl + 8, leaf);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ac->n_subjects_sealed; i++) {
        uint8_t sk[10];
        hie_store_be64(sk, leaf);
        sk[8] = (uint8_t)(i >> 8);
        sk[9] = (uint8_t)i;
        tl[16] = sk[8];
        tl[17] = sk[9];
        rc = put_raw(a->txn, au->subj, sk, sizeof(sk), ac->subjects_sealed[i].data,
            ac->subjects_sealed[i].len);
        rc = rc ? rc : put_raw(a->txn, au->pat, ac->subject_keys[i].data,
            ac->subject_keys[i].len, tl, PAT_VAL_BYTES);
    }
    if (rc == 0 && r->requester_org != NULL && r->requester_org[0] != '\0') {
        rc = put_raw(a->txn, au->org, r->requester_org, strlen(r->requester_org), tl,
            ORG_VAL_BYTES);
    }
    if (rc == 0 && r->break_glass) {
        rc = put_raw(a->txn, au->btg, tl, ORG_VAL_BYTES, "", 0);
    }
    return rc;
}

int
hie_node__audit_append(node_audit_t *au, node_apply_t *a, const Hie__V1__AuditAppendCommand *ac)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    HIE_ASSERT(ac != NULL && ac->record != NULL);
    Hie__V1__AuditRecord *r = ac->record;
    uint64_t leaf = 0;
    int rc = hie_audit_tree_size(au->tree, a->txn, &leaf);
    if (rc != 0) {
        return rc;
    }
    r->leaf_index = leaf;
    r->log_index = a->index;
    size_t n = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *entry = hie_arena_alloc(a->arena, n > 0 ? n : 1);
    if (entry == NULL) {
        return HIE_ENOMEM;
    }
    size_t packed = protobuf_c_message_pack(&r->base, entry);
    HIE_ASSERT(packed == n);
    hie_audit_hash_t leaf_hash;
    hie_audit_leaf_hash(hie_span(entry, n), &leaf_hash);
    uint64_t appended = 0;
    rc = hie_audit_tree_append(au->tree, a->txn, &leaf_hash, &appended);
    HIE_ASSERT(rc != 0 || appended == leaf);
    uint8_t k[8];
    hie_store_be64(k, leaf);
    rc = rc ? rc : put_raw(a->txn, au->rec, k, sizeof(k), entry, n);
    rc = rc ? rc : index_put(au, a, ac, leaf);
    a->res->audit_leaf_index = leaf;
    return rc;
}

/* A worker's batch: its records in order, consecutive leaves; the result names the first. */
static int
apply_batch(node_audit_t *au, node_apply_t *a)
{
    const Hie__V1__AuditBatchCommand *b = a->cmd->audit_batch;
    HIE_ASSERT(b->n_appends > 0 && b->n_appends <= HIE_AUDIT_BATCH_RECORDS_MAX);
    uint64_t first = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->n_appends; i++) {
        rc = hie_node__audit_append(au, a, b->appends[i]);
        first = i == 0 ? a->res->audit_leaf_index : first;
        HIE_ASSERT(rc != 0 || a->res->audit_leaf_index == first + i);
    }
    a->res->audit_leaf_index = first;
    return rc;
}

static int
apply_checkpoint(node_audit_t *au, node_apply_t *a)
{
    const Hie__V1__AuditCheckpointCommand *c = a->cmd->audit_checkpoint;
    uint64_t size = 0;
    hie_audit_hash_t root;
    int rc = hie_audit_tree_size(au->tree, a->txn, &size);
    if (rc != 0) {
        return rc;
    }
    if (c->size == 0 || c->size > size) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "size",
            "checkpoint beyond the tree");
    }
    rc = hie_audit_tree_root(au->tree, a->txn, c->size, &root);
    if (rc != 0) {
        return rc;
    }
    /* a log must never hold two inconsistent checkpoints: the root must be this tree's */
    if (sodium_memcmp(root.bytes, c->root.data, sizeof(root.bytes)) != 0) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "root",
            "checkpoint root is not the tree's root at that size");
    }
    uint8_t k[8];
    hie_store_be64(k, c->size);
    return put_raw(a->txn, au->ckpt, k, sizeof(k), c->note, strlen(c->note));
}

int
hie_node__audit_apply(node_audit_t *au, node_apply_t *a)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    HIE_ASSERT(a != NULL && a->cmd != NULL);
    switch (a->cmd->body_case) {
    case HIE__V1__COMMAND__BODY_AUDIT_APPEND:
        return hie_node__audit_append(au, a, a->cmd->audit_append);
    case HIE__V1__COMMAND__BODY_AUDIT_BATCH:
        return apply_batch(au, a);
    case HIE__V1__COMMAND__BODY_AUDIT_CHECKPOINT:
        return apply_checkpoint(au, a);
    default:
        HIE_ASSERT(!"not an audit command");
        return HIE_EINVAL;
    }
}

/* ---- readers -------------------------------------------------------------------------------- */

int
hie_node__audit_head(node_audit_t *au, MDB_txn *txn, uint64_t *size, uint8_t *root)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    hie_audit_hash_t r;
    int rc = hie_audit_tree_size(au->tree, txn, size);
    rc = rc ? rc : hie_audit_tree_root(au->tree, txn, *size, &r);
    if (rc == 0) {
        memcpy(root, r.bytes, sizeof(r.bytes));
    }
    return rc;
}

int
hie_node__audit_record(node_audit_t *au, MDB_txn *txn, uint64_t leaf, hie_span_t *out)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    uint8_t k[8];
    hie_store_be64(k, leaf);
    MDB_val key = {sizeof(k), k}, v;
    int rc = mdb_rc(mdb_get(txn, au->rec, &key, &v));
    *out = rc == 0 ? hie_span(v.mv_data, v.mv_size) : hie_span(NULL, 0);
    return rc;
}

int
hie_node__audit_subject(node_audit_t *au, MDB_txn *txn, uint64_t leaf, uint32_t pos,
    hie_span_t *sealed)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    uint8_t k[10];
    hie_store_be64(k, leaf);
    k[8] = (uint8_t)(pos >> 8);
    k[9] = (uint8_t)pos;
    MDB_val key = {sizeof(k), k}, v;
    int rc = mdb_rc(mdb_get(txn, au->subj, &key, &v));
    *sealed = rc == 0 ? hie_span(v.mv_data, v.mv_size) : hie_span(NULL, 0);
    return rc;
}

/* Copies a proof into arena as protobuf bytes fields. */
static int
proof_to_pb(const hie_audit_proof_t *proof, hie_arena_t *arena, ProtobufCBinaryData **out,
    size_t *n)
{
    HIE_ASSERT(proof->count <= HIE_AUDIT_PROOF_HASHES_MAX);
    ProtobufCBinaryData *b = hie_arena_alloc(arena, (proof->count + 1) * sizeof(*b));
    uint8_t *bytes = hie_arena_alloc(arena, proof->count * HIE_AUDIT_HASH_BYTES + 1);
    if (b == NULL || bytes == NULL) {
        return HIE_ENOMEM;
    }
    for (size_t i = 0; i < proof->count; i++) {
        memcpy(bytes + i * HIE_AUDIT_HASH_BYTES, proof->hashes[i].bytes, HIE_AUDIT_HASH_BYTES);
        b[i].data = bytes + i * HIE_AUDIT_HASH_BYTES;
        b[i].len = HIE_AUDIT_HASH_BYTES;
    }
    *out = b;
    *n = proof->count;
    return 0;
}

int
hie_node__audit_proof(node_audit_t *au, MDB_txn *txn, uint64_t leaf, uint64_t size,
    hie_arena_t *arena, ProtobufCBinaryData **out, size_t *n)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    hie_audit_proof_t proof;
    *out = NULL;
    *n = 0;
    int rc = hie_audit_tree_inclusion_proof(au->tree, txn, leaf, size, &proof);
    return rc ? rc : proof_to_pb(&proof, arena, out, n);
}

int
hie_node__audit_consistency(node_audit_t *au, MDB_txn *txn, uint64_t size1, uint64_t size2,
    hie_arena_t *arena, ProtobufCBinaryData **out, size_t *n)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    hie_audit_proof_t proof;
    *out = NULL;
    *n = 0;
    int rc = hie_audit_tree_consistency_proof(au->tree, txn, size1, size2, &proof);
    return rc ? rc : proof_to_pb(&proof, arena, out, n);
}

/* Walks one index in (time, leaf) order from the cursor position given by start (a value of
 * that index, or NULL for the first), calling fn for each value until fn returns non-zero or
 * max values were seen. dbi is audit_pat or audit_org (dupsort, key) or audit_btg (no key). */
int
hie_node__audit_scan(node_audit_t *au, MDB_txn *txn, enum node_audit_index which,
    hie_span_t key, hie_span_t start, size_t max,
    int (*fn)(void *ctx, const uint8_t *val, size_t len), void *ctx)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    MDB_dbi dbi = which == AUDIT_INDEX_PATIENT ? au->pat
                  : which == AUDIT_INDEX_ORG   ? au->org
                                               : au->btg;
    bool dup = which != AUDIT_INDEX_BREAK_GLASS;
    MDB_cursor *cur = NULL;
    MDB_val k = {key.len, (void *)(uintptr_t)key.ptr}, v = {start.len,
        (void *)(uintptr_t)start.ptr};
    int rc = mdb_rc(mdb_cursor_open(txn, dbi, &cur));
    int mrc = 0;
    if (rc == 0 && dup) {
        mrc = start.len > 0 ? mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE)
                            : mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    } else if (rc == 0) {
        k = (MDB_val){start.len, (void *)(uintptr_t)start.ptr};
        mrc = start.len > 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                            : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (size_t seen = 0; rc == 0 && mrc == 0 && seen < max; seen++) {
        const MDB_val *val = dup ? &v : &k;
        if (fn(ctx, val->mv_data, val->mv_size) != 0) {
            break;
        }
        mrc = mdb_cursor_get(cur, &k, &v, dup ? MDB_NEXT_DUP : MDB_NEXT);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = HIE_ESTORAGE;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

/* Calls fn with every stored checkpoint in size order (at most max). */
int
hie_node__audit_checkpoints(node_audit_t *au, MDB_txn *txn, size_t max,
    int (*fn)(void *ctx, uint64_t size, hie_span_t note), void *ctx)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_rc(mdb_cursor_open(txn, au->ckpt, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : 0;
    for (size_t i = 0; rc == 0 && mrc == 0 && i < max; i++) {
        if (k.mv_size != 8) {
            rc = HIE_ECORRUPT;
            break;
        }
        rc = fn(ctx, hie_load_be64(k.mv_data), hie_span(v.mv_data, v.mv_size));
        mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT) : 0;
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = HIE_ESTORAGE;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

hie_audit_tree_t *
hie_node__audit_tree(node_audit_t *au)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    return au->tree;
}
