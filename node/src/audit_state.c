/*
 * audit_state.c - the disclosure audit log in the replicated state (issue 4): apply of
 * audit_append, audit_batch and audit_checkpoint on the log thread, and the readers behind
 * disclosure reports and `hiectl audit verify`.
 *
 * Databases (state environment), besides the Merkle tree of hie/audit.h:
 *   audit_rec   leaf(8 BE) -> the leaf entry: a serialized AuditRecord (no personal data)
 *   audit_subj  leaf(8) pos(2) -> nonce(24) || AEAD(AuditSubject), AD = its commitment
 *               (XAES-256-GCM through hie_mpi_sealer; states written before 2026-11-30 hold
 *               XChaCha20-Poly1305 boxes, which hie_mpi_sealer_open still opens)
 *   audit_patient  bucket(8: leaf >> 12) keyed hash of the EUID(16) time(8) leaf(8) pos(2) -> ""
 *               The bucket (4,096 leaves) comes first so that a group commit's records, which
 *               name random patients, land in the few pages of the current bucket instead of
 *               one random page (and its branch pages) each: keyed by patient alone this index
 *               was a third of apply's CPU and half of its wall time (bench_audit_apply,
 *               RESULTS §7). A patient's entries come bucket by bucket (log order), (time, leaf)
 *               within one. A state with the former dupsort audit_pat (EUID hash -> time leaf
 *               pos) is converted when opened writable.
 *   audit_org   dupsort/dupfixed: requesting org id -> time(8) leaf(8)
 *   audit_btg   time(8) leaf(8) -> "" (break-glass disclosures)
 *   audit_ckpt  tree size(8) -> signed checkpoint note
 * Apply puts audit_patient and audit_org entries at the end of the state transaction, sorted,
 * through one cursor (hie_node__audit_txn_flush), not one random put per record: the keys of
 * the hundreds of records a deferred state commit holds then arrive in B-tree order, and each
 * put finds its page from the cursor's last one instead of descending from the root. Readers
 * see nothing of a transaction before its commit, so they cannot tell the difference.
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
#define PAT_BUCKET_BYTES 8u
#define PAT_BUCKET_SHIFT 12u /* 4,096 leaves: 50-80 index pages, which a batch reuses */
#define PAT_KEY_BYTES (PAT_BUCKET_BYTES + HIE_PROTO_REC_HASH_BYTES + PAT_VAL_BYTES)
#define ORG_VAL_BYTES 16u
#define PAT_DB "audit_patient"
/* Index entries held for the transaction's end; a full buffer is put at once (same txn). */
#define PEND_MAX 16384u
#define PAT_DB_DUPSORT "audit_pat" /* the former layout, converted by pat_upgrade */

struct org_pend {
    uint8_t len;
    char org[HIE_ORG_ID_BYTES_MAX];
    uint8_t val[ORG_VAL_BYTES];
};

struct node_audit {
    uint32_t magic;
    MDB_dbi rec, subj, pat, org, btg, ckpt;
    bool pat_open; /* false only read-only on a state not upgraded yet (no reports there) */
    hie_audit_tree_t *tree;
    /* index entries of the open write txn, not put yet (log thread; hie_mem, PEND_MAX each) */
    uint8_t (*pend_pat)[PAT_KEY_BYTES];
    struct org_pend *pend_org;
    size_t pat_n, org_n;
};

static int
mdb_rc(int rc)
{
    return rc == 0 ? 0 : (rc == MDB_NOTFOUND ? HIE_ENOTFOUND : HIE_ESTORAGE);
}

/* The audit_patient key of (patient, value): the bucket of the value's leaf first. */
static void
pat_key(uint8_t out[PAT_KEY_BYTES], const uint8_t *patient, const uint8_t val[PAT_VAL_BYTES])
{
    hie_store_be64(out, hie_load_be64(val + 8) >> PAT_BUCKET_SHIFT);
    memcpy(out + PAT_BUCKET_BYTES, patient, HIE_PROTO_REC_HASH_BYTES);
    memcpy(out + PAT_BUCKET_BYTES + HIE_PROTO_REC_HASH_BYTES, val, PAT_VAL_BYTES);
}

/* A state written before audit_patient holds the patient index as the dupsort audit_pat:
 * copies its entries (key || value: the same order) and drops it, in the open's write txn.
 * Deterministic, so replicas that upgrade the same state agree. */
static int
pat_upgrade(node_audit_t *au, MDB_txn *txn)
{
    MDB_dbi old;
    MDB_cursor *cur = NULL;
    MDB_stat st;
    MDB_val k, v;
    HIE_ASSERT(au->pat_open); /* the new index is open, in this write txn */
    int mrc = mdb_dbi_open(txn, PAT_DB_DUPSORT, MDB_DUPSORT | MDB_DUPFIXED, &old);
    if (mrc == MDB_NOTFOUND) {
        return 0; /* a state that never had it */
    }
    int rc = mdb_rc(mrc);
    rc = rc ? rc : mdb_rc(mdb_stat(txn, old, &st));
    rc = rc ? rc : mdb_rc(mdb_cursor_open(txn, old, &cur));
    mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    for (size_t i = 0; rc == 0 && mrc == 0 && i < st.ms_entries; i++) {
        uint8_t key[PAT_KEY_BYTES];
        if (k.mv_size != HIE_PROTO_REC_HASH_BYTES || v.mv_size != PAT_VAL_BYTES) {
            rc = HIE_ECORRUPT;
            break;
        }
        pat_key(key, k.mv_data, v.mv_data);
        MDB_val nk = {sizeof(key), key}, nv = {0, ""};
        rc = mdb_rc(mdb_put(txn, au->pat, &nk, &nv, 0));
        mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT) : 0;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    rc = rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
    return rc ? rc : mdb_rc(mdb_drop(txn, old, 1));
}

/* The patient index: created (and converted from audit_pat) when writable; read-only, a state
 * not upgraded yet has none, which only reports need. */
static int
pat_open(node_audit_t *au, MDB_txn *txn, unsigned create)
{
    int mrc = mdb_dbi_open(txn, PAT_DB, create, &au->pat);
    if (mrc == MDB_NOTFOUND && create == 0) {
        return 0;
    }
    int rc = mdb_rc(mrc);
    au->pat_open = rc == 0;
    return rc == 0 && create != 0 ? pat_upgrade(au, txn) : rc;
}

static int
dbis_open(node_audit_t *au, MDB_txn *txn, unsigned create)
{
    const unsigned dup = MDB_DUPSORT | MDB_DUPFIXED;
    int rc = mdb_rc(mdb_dbi_open(txn, "audit_rec", create, &au->rec));
    rc = rc ? rc : mdb_rc(mdb_dbi_open(txn, "audit_subj", create, &au->subj));
    rc = rc ? rc : pat_open(au, txn, create);
    rc = rc ? rc : mdb_rc(mdb_dbi_open(txn, "audit_org", create | dup, &au->org));
    rc = rc ? rc : mdb_rc(mdb_dbi_open(txn, "audit_btg", create, &au->btg));
    rc = rc ? rc : mdb_rc(mdb_dbi_open(txn, "audit_ckpt", create, &au->ckpt));
    rc = rc ? rc : hie_audit_tree_create(&au->tree, txn);
    /* a tree in the first layout is converted by a writable open; read-only it is refused */
    rc = rc ? rc : hie_audit_tree_upgrade(au->tree, txn, create != 0);
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
    /* read_only (hiectl on a node's files, which may be an evidence copy on read-only
     * media, or a running node's) opens the existing databases in a read transaction: it
     * takes no writer lock, and a database that is missing fails the open */
    int rc = mdb_rc(mdb_txn_begin(env, NULL, read_only ? MDB_RDONLY : 0, &txn));
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
    hie_mem_free((*ap)->pend_pat, PEND_MAX * sizeof(*(*ap)->pend_pat));
    hie_mem_free((*ap)->pend_org, PEND_MAX * sizeof(*(*ap)->pend_org));
    (*ap)->magic = 0;
    hie_mem_free(*ap, sizeof(**ap));
    *ap = NULL;
}

/* ---- apply ---------------------------------------------------------------------------------- */

static int
put_flags(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const void *v, size_t vlen,
    unsigned flags)
{
    MDB_val key = {klen, (void *)(uintptr_t)k}, val = {vlen, (void *)(uintptr_t)v};
    return mdb_rc(mdb_put(txn, dbi, &key, &val, flags));
}

static int
put_raw(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const void *v, size_t vlen)
{
    return put_flags(txn, dbi, k, klen, v, vlen, 0);
}

/* audit_rec and audit_subj keys grow with the leaf: appended, their pages fill up instead of
 * splitting in half (a key out of order fails the apply: the state would be corrupt). */
static int
put_append(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const void *v, size_t vlen)
{
    return put_flags(txn, dbi, k, klen, v, vlen, MDB_APPEND);
}

/* LMDB's default order of keys: bytes, then the shorter first. */
static int
org_cmp(const void *x, const void *y)
{
    const struct org_pend *a = x, *b = y;
    int c = memcmp(a->org, b->org, a->len < b->len ? a->len : b->len);
    c = c != 0 ? c : (a->len > b->len) - (a->len < b->len);
    return c != 0 ? c : memcmp(a->val, b->val, ORG_VAL_BYTES);
}

static int
pat_cmp(const void *x, const void *y)
{
    return memcmp(x, y, PAT_KEY_BYTES);
}

/* Puts n fixed-size entries sorted with cmp through one cursor on dbi: key and value cut from
 * each entry by kv. */
static int
sorted_put(MDB_txn *txn, MDB_dbi dbi, void *base, size_t n, size_t size,
    int (*cmp)(const void *, const void *), void (*kv)(const void *e, MDB_val *k, MDB_val *v))
{
    if (n == 0) {
        return 0;
    }
    qsort(base, n, size, cmp);
    MDB_cursor *cur = NULL;
    int rc = mdb_rc(mdb_cursor_open(txn, dbi, &cur));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        MDB_val k, v;
        kv((const uint8_t *)base + i * size, &k, &v);
        rc = mdb_rc(mdb_cursor_put(cur, &k, &v, 0));
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

static void
pat_kv(const void *e, MDB_val *k, MDB_val *v)
{
    *k = (MDB_val){PAT_KEY_BYTES, (void *)(uintptr_t)e};
    *v = (MDB_val){0, ""};
}

static void
org_kv(const void *e, MDB_val *k, MDB_val *v)
{
    const struct org_pend *o = e;
    *k = (MDB_val){o->len, (void *)(uintptr_t)o->org};
    *v = (MDB_val){ORG_VAL_BYTES, (void *)(uintptr_t)o->val};
}

int
hie_node__audit_txn_flush(node_audit_t *au, MDB_txn *txn)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    int rc = sorted_put(txn, au->pat, au->pend_pat, au->pat_n, PAT_KEY_BYTES, pat_cmp, pat_kv);
    rc = rc ? rc : sorted_put(txn, au->org, au->pend_org, au->org_n, sizeof(*au->pend_org),
        org_cmp, org_kv);
    hie_node__audit_txn_drop(au);
    return rc;
}

void
hie_node__audit_txn_drop(node_audit_t *au)
{
    if (au == NULL) {
        return; /* a state that failed to open */
    }
    HIE_ASSERT(au->magic == AUDIT_MAGIC);
    au->pat_n = 0;
    au->org_n = 0;
}

/* Room for one more held entry of each index: buffers made on first use, a full one put. */
static int
pend_room(node_audit_t *au, MDB_txn *txn)
{
    if (au->pend_pat == NULL) {
        au->pend_pat = hie_mem_alloc(PEND_MAX * sizeof(*au->pend_pat));
    }
    if (au->pend_org == NULL) {
        au->pend_org = hie_mem_alloc(PEND_MAX * sizeof(*au->pend_org));
    }
    if (au->pend_pat == NULL || au->pend_org == NULL) {
        return HIE_ENOMEM;
    }
    return au->pat_n < PEND_MAX && au->org_n < PEND_MAX ? 0 : hie_node__audit_txn_flush(au, txn);
}

/* Holds the requesting organization's entry (an id too long for the buffer is put now). */
static int
org_put(node_audit_t *au, MDB_txn *txn, const char *org, const uint8_t tl[ORG_VAL_BYTES])
{
    size_t len = strlen(org);
    if (len > HIE_ORG_ID_BYTES_MAX) { /* validated commands never have one */
        return put_raw(txn, au->org, org, len, tl, ORG_VAL_BYTES);
    }
    int rc = pend_room(au, txn);
    if (rc == 0) {
        struct org_pend *o = &au->pend_org[au->org_n++];
        o->len = (uint8_t)len;
        memcpy(o->org, org, len);
        memcpy(o->val, tl, ORG_VAL_BYTES);
    }
    return rc;
}

/* The record's index entries: patients, requesting organization (those two held for the
 * transaction's end), break-glass. */
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
        HIE_ASSERT(ac->subject_keys[i].len == HIE_PROTO_REC_HASH_BYTES); /* validated */
        rc = put_append(a->txn, au->subj, sk, sizeof(sk), ac->subjects_sealed[i].data,
            ac->subjects_sealed[i].len);
        rc = rc ? rc : pend_room(au, a->txn);
        if (rc == 0) {
            pat_key(au->pend_pat[au->pat_n++], ac->subject_keys[i].data, tl);
        }
    }
    if (rc == 0 && r->requester_org != NULL && r->requester_org[0] != '\0') {
        rc = org_put(au, a->txn, r->requester_org, tl);
    }
    if (rc == 0 && r->break_glass) {
        rc = put_raw(a->txn, au->btg, tl, ORG_VAL_BYTES, "", 0);
    }
    return rc;
}

/* Record r as leaf: serialized with its leaf and log index filled in (the leaf entry, stored
 * as hashed) into arena, and its leaf hash. */
static int
record_entry(node_audit_t *au, node_apply_t *a, Hie__V1__AuditRecord *r, uint64_t leaf,
    hie_span_t *entry, hie_audit_hash_t *hash)
{
    HIE_ASSERT(r != NULL);
    HIE_ASSERT(leaf < HIE_AUDIT_TREE_SIZE_MAX);
    r->leaf_index = leaf;
    r->log_index = a->index;
    size_t n = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *bytes = hie_arena_alloc(a->arena, n > 0 ? n : 1);
    if (bytes == NULL) {
        return HIE_ENOMEM;
    }
    size_t packed = protobuf_c_message_pack(&r->base, bytes);
    HIE_ASSERT(packed == n);
    *entry = hie_span(bytes, n);
    return hie_audit_tree_leaf_hash(au->tree, *entry, hash);
}

/* Appends acs[0..count) as consecutive leaves: their entries and hashes first, then the tree
 * in one append (one size read and write), then each record and its index entries. [out]
 * *first: the first record's leaf. */
static int
records_append(node_audit_t *au, node_apply_t *a, Hie__V1__AuditAppendCommand *const *acs,
    size_t count, uint64_t *first)
{
    HIE_ASSERT(count > 0 && count <= HIE_AUDIT_BATCH_RECORDS_MAX);
    hie_span_t entries[HIE_AUDIT_BATCH_RECORDS_MAX];
    hie_audit_hash_t hashes[HIE_AUDIT_BATCH_RECORDS_MAX];
    uint64_t size = 0, appended = 0;
    int rc = hie_audit_tree_size(au->tree, a->txn, &size);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        HIE_ASSERT(acs[i] != NULL && acs[i]->record != NULL); /* validated */
        rc = record_entry(au, a, acs[i]->record, size + i, &entries[i], &hashes[i]);
    }
    rc = rc ? rc : hie_audit_tree_append_many(au->tree, a->txn, hashes, count, &appended);
    HIE_ASSERT(rc != 0 || appended == size);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        uint8_t k[8];
        hie_store_be64(k, size + i);
        rc = put_append(a->txn, au->rec, k, sizeof(k), entries[i].ptr, entries[i].len);
        rc = rc ? rc : index_put(au, a, acs[i], size + i);
    }
    *first = size;
    return rc;
}

int
hie_node__audit_append(node_audit_t *au, node_apply_t *a, const Hie__V1__AuditAppendCommand *ac)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    HIE_ASSERT(ac != NULL && ac->record != NULL);
    Hie__V1__AuditAppendCommand *one = (Hie__V1__AuditAppendCommand *)(uintptr_t)ac;
    uint64_t leaf = 0;
    int rc = records_append(au, a, &one, 1, &leaf);
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
    int rc = records_append(au, a, b->appends, b->n_appends, &first);
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

/* The first key of dbi at or past leaf size (keys begin with the leaf, big-endian). */
static int
first_from(MDB_txn *txn, MDB_dbi dbi, uint64_t size, uint64_t *leaf)
{
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(txn, dbi, &cur) != 0) {
        return HIE_ESTORAGE;
    }
    uint8_t k[8];
    hie_store_be64(k, size);
    MDB_val key = {sizeof(k), k}, v;
    int mrc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE);
    int rc = mrc == MDB_NOTFOUND ? 0 : mrc != 0 ? HIE_ESTORAGE : HIE_ECORRUPT;
    if (rc == HIE_ECORRUPT) {
        *leaf = key.mv_size >= 8 ? hie_load_be64(key.mv_data) : size;
    }
    mdb_cursor_close(cur);
    return rc;
}

int
hie_node__audit_beyond(node_audit_t *au, MDB_txn *txn, uint64_t size, uint64_t *leaf)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    int rc = first_from(txn, au->rec, size, leaf);
    return rc != 0 ? rc : first_from(txn, au->subj, size, leaf);
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

/* The patient's entries under one of its index keys in the bucket being scanned: a cursor at
 * the current one (val), or past them (val NULL; landed: the bucket of the key the cursor
 * reached, UINT64_MAX past the last). */
struct pat_run {
    MDB_cursor *cur;
    const uint8_t *key; /* the index key (16 bytes) */
    const uint8_t *val; /* the current entry's value (time, leaf, pos), in txn memory */
    uint64_t landed;
    bool done;          /* fn said nothing further under this key matters (2) */
};

/* Reads the cursor's entry after mdb_cursor_get returned mrc: still the run's (same bucket
 * and key) or past it. Returns 0 or an error. */
static int
run_read(struct pat_run *r, uint64_t bucket, int mrc, const MDB_val *k)
{
    r->val = NULL;
    if (mrc == MDB_NOTFOUND) {
        r->landed = UINT64_MAX;
        return 0;
    }
    if (mrc != 0) {
        return HIE_ESTORAGE;
    }
    if (k->mv_size != PAT_KEY_BYTES) {
        return HIE_ECORRUPT;
    }
    const uint8_t *kb = k->mv_data;
    r->landed = hie_load_be64(kb);
    if (r->landed == bucket && memcmp(kb + PAT_BUCKET_BYTES, r->key,
        HIE_PROTO_REC_HASH_BYTES) == 0) {
        r->val = kb + PAT_BUCKET_BYTES + HIE_PROTO_REC_HASH_BYTES;
    }
    return 0;
}

/* One bucket of audit_patient: the patient's entries under each of its keys from val on,
 * merged in (time, leaf, pos) order. Returns 0 (the bucket is done; *next is the first bucket
 * that may hold more), 1 (fn stopped or max was reached) or an error. */
static int
scan_bucket(struct pat_run *runs, size_t n_runs, uint64_t bucket,
    const uint8_t val[PAT_VAL_BYTES], size_t *seen, size_t max, node_audit_scan_fn fn, void *ctx,
    uint64_t *next)
{
    HIE_ASSERT(n_runs >= 1 && n_runs <= NODE_AUDIT_SCAN_KEYS_MAX);
    HIE_ASSERT(*seen <= max);
    int rc = 0;
    size_t live = 0;
    for (size_t i = 0; rc == 0 && i < n_runs; i++) {
        if (runs[i].done) {
            continue;
        }
        live++;
        uint8_t from[PAT_KEY_BYTES];
        hie_store_be64(from, bucket);
        memcpy(from + PAT_BUCKET_BYTES, runs[i].key, HIE_PROTO_REC_HASH_BYTES);
        memcpy(from + PAT_BUCKET_BYTES + HIE_PROTO_REC_HASH_BYTES, val, PAT_VAL_BYTES);
        MDB_val k = {PAT_KEY_BYTES, from}, v;
        rc = run_read(&runs[i], bucket, mdb_cursor_get(runs[i].cur, &k, &v, MDB_SET_RANGE), &k);
    }
    while (rc == 0) {
        struct pat_run *r = NULL; /* the run whose entry comes first */
        for (size_t i = 0; i < n_runs; i++) {
            if (runs[i].val != NULL && (r == NULL || memcmp(runs[i].val, r->val,
                PAT_VAL_BYTES) < 0)) {
                r = &runs[i];
            }
        }
        if (r == NULL) {
            break;
        }
        int frc = *seen >= max ? 1 : fn(ctx, r->val, PAT_VAL_BYTES, (size_t)(r - runs));
        if (frc != 0 && frc != 2) {
            return 1;
        }
        (*seen)++;
        if (frc == 2) { /* this key's run is over for fn */
            r->done = true;
            r->val = NULL;
            live--;
            continue;
        }
        MDB_val k, v;
        rc = run_read(r, bucket, mdb_cursor_get(r->cur, &k, &v, MDB_NEXT), &k);
    }
    if (rc == 0 && live == 0) {
        return 1; /* every run over: nothing further to walk */
    }
    /* each cursor landed on the next key of the whole index after its run: no key at all,
     * of any patient, lies in the buckets between this one and the furthest landing */
    *next = bucket + 1;
    for (size_t i = 0; rc == 0 && i < n_runs; i++) {
        *next = !runs[i].done && runs[i].landed > *next ? runs[i].landed : *next;
    }
    return rc;
}

/* audit_patient from start's bucket to the tree's last, bucket by bucket, under each of the
 * patient's index keys (key: up to NODE_AUDIT_SCAN_KEYS_MAX of HIE_PROTO_REC_HASH_BYTES). */
static int
scan_patient(node_audit_t *au, MDB_txn *txn, hie_span_t key, hie_span_t start, size_t max,
    uint64_t leaf_end, node_audit_scan_fn fn, void *ctx)
{
    HIE_ASSERT(au->pat_open); /* reports run on a live node, which upgraded its state */
    HIE_ASSERT(key.len > 0 && key.len % HIE_PROTO_REC_HASH_BYTES == 0 &&
        key.len <= NODE_AUDIT_SCAN_KEYS_MAX * HIE_PROTO_REC_HASH_BYTES);
    HIE_ASSERT(start.len <= PAT_VAL_BYTES);
    uint8_t val[PAT_VAL_BYTES] = {0};
    if (start.len > 0) {
        memcpy(val, start.ptr, start.len); /* (time, leaf, pos): resumes in leaf's bucket */
    }
    struct pat_run runs[NODE_AUDIT_SCAN_KEYS_MAX];
    size_t n_runs = key.len / HIE_PROTO_REC_HASH_BYTES, seen = 0;
    for (size_t i = 0; i < n_runs; i++) {
        runs[i] = (struct pat_run){NULL, key.ptr + i * HIE_PROTO_REC_HASH_BYTES, NULL, 0,
            false};
    }
    uint64_t size = 0, bucket = hie_load_be64(val + 8) >> PAT_BUCKET_SHIFT;
    int rc = hie_audit_tree_size(au->tree, txn, &size);
    size = leaf_end != 0 && leaf_end < size ? leaf_end : size;
    for (size_t i = 0; rc == 0 && i < n_runs; i++) {
        rc = mdb_rc(mdb_cursor_open(txn, au->pat, &runs[i].cur));
    }
    size_t seeks = 0;
    while (rc == 0 && bucket <= size >> PAT_BUCKET_SHIFT) { /* at most size / 4096 + 1 */
        uint64_t next = 0;
        size_t live = 0;
        for (size_t i = 0; i < n_runs; i++) {
            live += !runs[i].done;
        }
        if (seeks > 0 && seeks + live > max) {
            /* the walk's own budget, apart from the entries': in a log of many patients the
             * buckets between one patient's entries cost a seek per key each */
            uint8_t resume[PAT_VAL_BYTES] = {0};
            hie_store_be64(resume + 8, bucket << PAT_BUCKET_SHIFT);
            (void)fn(ctx, resume, PAT_VAL_BYTES, NODE_AUDIT_SCAN_RESUME);
            break;
        }
        seeks += live;
        rc = scan_bucket(runs, n_runs, bucket, val, &seen, max, fn, ctx, &next);
        HIE_ASSERT(rc != 0 || next > bucket);
        bucket = next;
        memset(val, 0, sizeof(val)); /* later buckets from their first entry */
    }
    for (size_t i = 0; i < n_runs; i++) {
        if (runs[i].cur != NULL) {
            mdb_cursor_close(runs[i].cur);
        }
    }
    return rc == 1 ? 0 : rc;
}

/* Walks one index in (time, leaf) order from the cursor position given by start (a value of
 * that index, or NULL for the first), calling fn for each value until fn returns non-zero or
 * max values were seen: audit_patient (the keys bucket || index key || value, under
 * each of the patient's index keys), audit_org (dupsort: key's
 * values) or audit_btg (no key). */
int
hie_node__audit_scan(node_audit_t *au, MDB_txn *txn, enum node_audit_index which,
    hie_span_t key, hie_span_t start, size_t max, uint64_t leaf_end, node_audit_scan_fn fn,
    void *ctx)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    if (which == AUDIT_INDEX_PATIENT) {
        return scan_patient(au, txn, key, start, max, leaf_end, fn, ctx);
    }
    MDB_dbi dbi = which == AUDIT_INDEX_ORG ? au->org : au->btg;
    bool dup = which == AUDIT_INDEX_ORG;
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
        if (fn(ctx, val->mv_data, val->mv_size, 0) != 0) {
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

int
hie_node__audit_index_has(node_audit_t *au, MDB_txn *txn, enum node_audit_index which,
    hie_span_t key, hie_span_t val)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    uint8_t pk[PAT_KEY_BYTES];
    MDB_val k = {key.len, (void *)(uintptr_t)key.ptr}, v = {val.len, (void *)(uintptr_t)val.ptr};
    if (which == AUDIT_INDEX_PATIENT) {
        if (!au->pat_open) {
            return HIE_ESTATE; /* read-only on a state in the former layout */
        }
        if (key.len != HIE_PROTO_REC_HASH_BYTES || val.len != PAT_VAL_BYTES) {
            return HIE_ENOTFOUND;
        }
        pat_key(pk, key.ptr, val.ptr);
        k = (MDB_val){sizeof(pk), pk};
        return mdb_rc(mdb_get(txn, au->pat, &k, &v));
    }
    if (which == AUDIT_INDEX_BREAK_GLASS) {
        k = v;
        return mdb_rc(mdb_get(txn, au->btg, &k, &v));
    }
    MDB_cursor *cur = NULL;
    int rc = mdb_rc(mdb_cursor_open(txn, au->org, &cur));
    rc = rc ? rc : mdb_rc(mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH));
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

int
hie_node__audit_index_count(node_audit_t *au, MDB_txn *txn, enum node_audit_index which,
    uint64_t *count)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    MDB_stat st;
    *count = 0;
    if (which == AUDIT_INDEX_PATIENT && !au->pat_open) {
        return 0;
    }
    MDB_dbi dbi = which == AUDIT_INDEX_PATIENT ? au->pat : which == AUDIT_INDEX_ORG ? au->org
                                                                                   : au->btg;
    int rc = mdb_rc(mdb_stat(txn, dbi, &st));
    *count = rc == 0 ? st.ms_entries : 0;
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

/* The newest stored checkpoint that parses, of at most 64 from the last (0 with *cp and
 * *skipped, HIE_ENOTFOUND when there is none, HIE_ESTORAGE). */
static int
newest_checkpoint(node_audit_t *au, MDB_txn *txn, hie_audit_checkpoint_t *cp, unsigned *skipped)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_rc(mdb_cursor_open(txn, au->ckpt, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_LAST) : 0;
    rc = rc != 0 ? rc : HIE_ENOTFOUND;
    for (unsigned i = 0; rc == HIE_ENOTFOUND && mrc == 0 && i < 64; i++) {
        hie_errinfo_t info = {0};
        if (k.mv_size == 8 && hie_audit_checkpoint_parse(hie_span(v.mv_data, v.mv_size), cp,
                &info) == 0 && cp->head.size == hie_load_be64(k.mv_data)) {
            rc = 0;
        } else {
            (*skipped)++; /* stored as given before notes were checked (a forged one) */
            mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
        }
    }
    if (rc == HIE_ENOTFOUND && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = HIE_ESTORAGE;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

int
hie_node__audit_extends_last(node_audit_t *au, MDB_txn *txn, const hie_audit_vkey_t *vkey,
    const char *origin, uint64_t *size, unsigned *skipped)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    hie_audit_checkpoint_t cp;
    *size = 0;
    *skipped = 0;
    int rc = newest_checkpoint(au, txn, &cp, skipped);
    if (rc == HIE_ENOTFOUND) {
        return 0; /* none yet */
    }
    *size = rc == 0 ? cp.head.size : 0;
    if (rc == 0 && vkey != NULL && hie_audit_checkpoint_verify(&cp, vkey, origin) != 0) {
        return HIE_EDENIED;
    }
    uint64_t have = 0;
    hie_audit_hash_t root;
    rc = rc ? rc : hie_audit_tree_size(au->tree, txn, &have);
    rc = rc ? rc : have < cp.head.size ? HIE_ECORRUPT : 0;
    rc = rc ? rc : hie_audit_tree_root(au->tree, txn, cp.head.size, &root);
    rc = rc ? rc : memcmp(root.bytes, cp.head.root.bytes, HIE_AUDIT_HASH_BYTES) != 0
                   ? HIE_ECORRUPT : 0;
    return rc == HIE_EINVAL ? HIE_ECORRUPT : rc;
}

hie_audit_tree_t *
hie_node__audit_tree(node_audit_t *au)
{
    HIE_ASSERT(au != NULL && au->magic == AUDIT_MAGIC);
    return au->tree;
}
