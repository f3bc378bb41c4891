/*
 * audit_tree.c - the audit Merkle tree in LMDB: append, size, root and proofs for any size up
 * to the current one, and the full integrity check against the audit records.
 *
 * Layout (database HIE_AUDIT_TREE_DB_NAME in the node's state env), in write order: node
 * (level k, index i), the hash of the complete aligned subtree over leaves [i * 2^k,
 * (i + 1) * 2^k) (level 0: leaf i's hash), has key = the leaf that completed it, ((i + 1) <<
 * k) - 1 (8 bytes, big-endian) || k (1 byte); value = the 32-byte hash. An append writes its
 * leaf and then the subtrees it completes, level by level, so every key it puts is greater
 * than all before it: puts use MDB_APPEND and pages fill up. The 1-byte key 0x00, which sorts
 * first, holds the size as 8 bytes big-endian; no key means 0.
 *
 * Invariants: a subtree key exists exactly when its last leaf is below the size, and its value
 * never changes after the append that completed it (the log is append-only). So any range
 * [a, b) of the RFC 6962 recursion, a being a multiple of a power of two >= b - a, is the
 * fold of at most 64 stored subtrees: one per set bit of b - a, largest first. Every root and
 * proof below is built from such ranges, and along one proof at most one range is incomplete,
 * so a proof costs O(log n) reads.
 *
 * The first layout was level-major (level (1) || index (8), the size under (0xff, 0)): each
 * level grew in the middle of the B-tree, so LMDB split those pages in half (1M leaves: 212 MB
 * and 375k appends/s, against 106 MB and 647k/s in write order). hie_audit_tree_upgrade
 * converts a tree stored that way.
 *
 * Reads validate what they read (length 32, size within the limit) and return HIE_ECORRUPT;
 * writes assert what they write (we built it). The handle holds the dbi and OpenSSL's SHA-256
 * (fetched once, immutable), which every thread shares, and one hashing context that only the
 * appending thread uses (append, leaf hash, upgrade: the state machine, the only writer): with
 * SHA-NI and no per-hash fetch or allocation, a 65-byte node hash takes ~0.2 us against
 * ~0.9 us with libsodium's portable SHA-256, which the pure functions of merkle.c keep.
 * Callers: node's state machine (append), workers (proofs), admin (verify), tests, bench.
 */
#include "audit_int.h"

#include <openssl/evp.h>
#include <sodium.h>

#define TREE_MAGIC 0x41554454u /* "AUDT" */
#define KEY_BYTES 9u
#define META_LEVEL 0xffu /* reports name the size record as level 0xff, index 0 */
#define UPGRADE_DB "audit_tree_upgrade"

static const uint8_t size_key[1] = {0}; /* shorter than every node key with its first byte */

struct hie_audit_tree {
    uint32_t magic;
    MDB_dbi dbi;
    EVP_MD *sha256;      /* fetched at create: immutable, any thread */
    EVP_MD_CTX *append;  /* the appending thread's hashing context */
};

/* SHA-256 of parts[0..n) with the appending context. out may alias a part (the parts are
 * consumed first). Returns 0 or HIE_ENOMEM (OpenSSL could not allocate). */
static int
append_hash(hie_audit_tree_t *t, const hie_span_t *parts, size_t n, hie_audit_hash_t *out)
{
    unsigned len = 0;
    int ok = EVP_DigestInit_ex(t->append, t->sha256, NULL);
    for (size_t i = 0; ok == 1 && i < n; i++) {
        ok = EVP_DigestUpdate(t->append, parts[i].ptr, parts[i].len);
    }
    ok = ok == 1 ? EVP_DigestFinal_ex(t->append, out->bytes, &len) : ok;
    if (ok != 1) {
        return HIE_ENOMEM;
    }
    HIE_ASSERT(len == HIE_AUDIT_HASH_BYTES);
    return 0;
}

/* hie_audit_node_hash with the appending context. */
static int
append_node_hash(hie_audit_tree_t *t, const hie_audit_hash_t *l, const hie_audit_hash_t *r,
    hie_audit_hash_t *out)
{
    static const uint8_t node_prefix = 0x01;
    hie_span_t parts[3] = {{&node_prefix, 1}, {l->bytes, HIE_AUDIT_HASH_BYTES},
        {r->bytes, HIE_AUDIT_HASH_BYTES}};
    return append_hash(t, parts, 3, out);
}

static void
tree_check(const hie_audit_tree_t *t, MDB_txn *txn)
{
    HIE_ASSERT(t != NULL);
    HIE_ASSERT(t->magic == TREE_MAGIC);
    HIE_ASSERT(txn != NULL);
}

/* Node (level, index)'s key: the leaf that completed it, then the level. */
static void
key_make(uint8_t key[KEY_BYTES], unsigned level, uint64_t index)
{
    HIE_ASSERT(level < HIE_AUDIT__LEVELS);
    HIE_ASSERT(index < (HIE_AUDIT_TREE_SIZE_MAX >> level));
    hie_store_be64(key, ((index + 1) << level) - 1);
    key[8] = (uint8_t)level;
}

/* Reads node (level, index). Returns 0, HIE_ENOTFOUND, HIE_ECORRUPT (not 32 bytes) or
 * HIE_ESTORAGE. */
static int
node_get(const hie_audit_tree_t *t, MDB_txn *txn, unsigned level, uint64_t index,
    hie_audit_hash_t *out)
{
    uint8_t key[KEY_BYTES];
    key_make(key, level, index);
    MDB_val k = {KEY_BYTES, key}, v;
    int rc = mdb_get(txn, t->dbi, &k, &v);
    if (rc != 0) {
        return rc == MDB_NOTFOUND ? HIE_ENOTFOUND : HIE_ESTORAGE;
    }
    if (v.mv_size != HIE_AUDIT_HASH_BYTES) {
        return HIE_ECORRUPT;
    }
    memcpy(out->bytes, v.mv_data, HIE_AUDIT_HASH_BYTES); /* copied: the txn owns v */
    return 0;
}

/* A node the size says must exist: missing is corruption. */
static int
node_need(const hie_audit_tree_t *t, MDB_txn *txn, unsigned level, uint64_t index,
    hie_audit_hash_t *out)
{
    int rc = node_get(t, txn, level, index, out);
    return rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
}

/* Appends node (level, index): its key is past every stored one (a key out of order, which
 * only a corrupted tree can cause, fails with HIE_ESTORAGE). */
static int
node_put(const hie_audit_tree_t *t, MDB_txn *txn, unsigned level, uint64_t index,
    const hie_audit_hash_t *h)
{
    uint8_t key[KEY_BYTES];
    key_make(key, level, index);
    MDB_val k = {KEY_BYTES, key}, v = {HIE_AUDIT_HASH_BYTES, (void *)(uintptr_t)h->bytes};
    return mdb_put(txn, t->dbi, &k, &v, MDB_APPEND) == 0 ? 0 : HIE_ESTORAGE;
}

static int
size_get(const hie_audit_tree_t *t, MDB_txn *txn, uint64_t *size)
{
    MDB_val k = {sizeof(size_key), (void *)(uintptr_t)size_key}, v;
    *size = 0;
    int rc = mdb_get(txn, t->dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return 0; /* a fresh tree */
    }
    if (rc != 0) {
        return HIE_ESTORAGE;
    }
    if (v.mv_size != 8) {
        return HIE_ECORRUPT;
    }
    uint64_t n = hie_load_be64(v.mv_data);
    if (n > HIE_AUDIT_TREE_SIZE_MAX) {
        return HIE_ECORRUPT;
    }
    *size = n;
    return 0;
}

static int
size_put(const hie_audit_tree_t *t, MDB_txn *txn, uint64_t size)
{
    uint8_t val[8];
    HIE_ASSERT(size <= HIE_AUDIT_TREE_SIZE_MAX);
    hie_store_be64(val, size);
    MDB_val k = {sizeof(size_key), (void *)(uintptr_t)size_key}, v = {sizeof(val), val};
    return mdb_put(txn, t->dbi, &k, &v, 0) == 0 ? 0 : HIE_ESTORAGE;
}

/* MTH(D[a:b]) from stored subtrees, for a range of the RFC 6962 recursion (a a multiple of a
 * power of two >= b - a). Folds the pieces right to left: the piece of bit k of b - a starts
 * after the larger pieces, at a + (len with bits 0..k cleared). */
static int
range_hash(const hie_audit_tree_t *t, MDB_txn *txn, uint64_t a, uint64_t b,
    hie_audit_hash_t *out)
{
    HIE_ASSERT(a < b);
    uint64_t len = b - a;
    bool first = true;
    for (unsigned k = 0; k < HIE_AUDIT__LEVELS; k++) {
        if ((len & (1ull << k)) == 0) {
            continue;
        }
        uint64_t low_mask = (2ull << k) - 1; /* bits 0..k; all ones for k = 63 */
        uint64_t start = a + (len & ~low_mask);
        HIE_ASSERT((start & ((1ull << k) - 1)) == 0); /* aligned: a complete stored subtree */
        hie_audit_hash_t piece;
        int rc = node_need(t, txn, k, start >> k, &piece);
        if (rc != 0) {
            return rc;
        }
        if (first) {
            *out = piece;
            first = false;
        } else {
            hie_audit_node_hash(&piece, out, out);
        }
    }
    HIE_ASSERT(!first);
    return 0;
}

int
hie_audit_tree_create(hie_audit_tree_t **out, MDB_txn *txn)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(txn != NULL);
    *out = NULL;
    if (sodium_init() < 0) { /* idempotent; SHA-256 needs no more, but the API asks for it */
        return HIE_ENOMEM;
    }
    hie_audit_tree_t *t = hie_mem_calloc(1, sizeof(*t));
    if (t == NULL) {
        return HIE_ENOMEM;
    }
    t->magic = TREE_MAGIC;
    t->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    t->append = EVP_MD_CTX_new();
    int rc = t->sha256 == NULL || t->append == NULL ? HIE_ENOMEM : 0;
    if (rc == 0 && mdb_dbi_open(txn, HIE_AUDIT_TREE_DB_NAME, MDB_CREATE, &t->dbi) != 0) {
        rc = HIE_ESTORAGE;
    }
    if (rc != 0) {
        hie_audit_tree_destroy(&t);
        return rc;
    }
    *out = t;
    return 0;
}

void
hie_audit_tree_destroy(hie_audit_tree_t **tree)
{
    HIE_ASSERT(tree != NULL);
    hie_audit_tree_t *t = *tree;
    if (t == NULL) {
        return;
    }
    HIE_ASSERT(t->magic == TREE_MAGIC);
    EVP_MD_CTX_free(t->append);
    EVP_MD_free(t->sha256);
    t->magic = 0; /* a use after destroy trips the magic check */
    hie_mem_free(t, sizeof(*t));
    *tree = NULL;
}

/* ---- the former level-major layout --------------------------------------------------------- */

/* Copies every node of the level-major tree into tmp under its write-order key; [out] the
 * size the old (0xff, 0) key held. */
static int
upgrade_copy(hie_audit_tree_t *t, MDB_txn *txn, MDB_dbi tmp, uint64_t *size)
{
    MDB_cursor *cur = NULL;
    MDB_stat st;
    MDB_val k, v;
    HIE_ASSERT(tmp != t->dbi);
    int rc = mdb_stat(txn, t->dbi, &st) == 0 && mdb_cursor_open(txn, t->dbi, &cur) == 0
                 ? 0 : HIE_ESTORAGE;
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    for (size_t i = 0; rc == 0 && mrc == 0 && i < st.ms_entries; i++) {
        const uint8_t *kb = k.mv_data;
        if (k.mv_size != KEY_BYTES || (kb[0] >= HIE_AUDIT__LEVELS && kb[0] != META_LEVEL) ||
            v.mv_size != (kb[0] == META_LEVEL ? 8u : HIE_AUDIT_HASH_BYTES) ||
            (kb[0] != META_LEVEL && hie_load_be64(kb + 1) >= HIE_AUDIT_TREE_SIZE_MAX >> kb[0])) {
            rc = HIE_ECORRUPT;
            break;
        }
        uint8_t nk[KEY_BYTES];
        if (kb[0] == META_LEVEL) {
            *size = hie_load_be64(v.mv_data);
        } else {
            key_make(nk, kb[0], hie_load_be64(kb + 1));
            MDB_val nkey = {KEY_BYTES, nk};
            rc = mdb_put(txn, tmp, &nkey, &v, 0) == 0 ? 0 : HIE_ESTORAGE;
        }
        mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT) : 0;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
}

/* Moves tmp's nodes, in key order, into the emptied tree, then the size. */
static int
upgrade_fill(hie_audit_tree_t *t, MDB_txn *txn, MDB_dbi tmp, uint64_t size)
{
    MDB_cursor *cur = NULL;
    MDB_stat st;
    MDB_val k, v;
    HIE_ASSERT(tmp != t->dbi);
    int rc = mdb_drop(txn, t->dbi, 0) == 0 && mdb_stat(txn, tmp, &st) == 0 &&
                     mdb_cursor_open(txn, tmp, &cur) == 0 ? 0 : HIE_ESTORAGE;
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    for (size_t i = 0; rc == 0 && mrc == 0 && i < st.ms_entries; i++) {
        rc = mdb_put(txn, t->dbi, &k, &v, MDB_APPEND) == 0 ? 0 : HIE_ESTORAGE;
        mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT) : 0;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    rc = rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
    return rc == 0 && size > HIE_AUDIT_TREE_SIZE_MAX ? HIE_ECORRUPT
           : (rc == 0 ? size_put(t, txn, size) : rc);
}

int
hie_audit_tree_upgrade(hie_audit_tree_t *tree, MDB_txn *txn, bool write)
{
    tree_check(tree, txn);
    uint8_t old_size_key[KEY_BYTES] = {META_LEVEL};
    MDB_val k = {KEY_BYTES, old_size_key}, v;
    int mrc = mdb_get(txn, tree->dbi, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        return 0; /* written in write order (or empty) */
    }
    if (mrc != 0) {
        return HIE_ESTORAGE;
    }
    if (!write) {
        return HIE_ESTATE;
    }
    MDB_dbi tmp;
    uint64_t size = 0;
    int rc = mdb_dbi_open(txn, UPGRADE_DB, MDB_CREATE, &tmp) == 0 ? 0 : HIE_ESTORAGE;
    rc = rc ? rc : upgrade_copy(tree, txn, tmp, &size);
    rc = rc ? rc : upgrade_fill(tree, txn, tmp, size);
    return rc ? rc : (mdb_drop(txn, tmp, 1) == 0 ? 0 : HIE_ESTORAGE);
}

/* The right edge of the tree that one append_many call builds on: the last complete subtree
 * at each level, known (bit set in valid) once read or built in this call. */
struct frontier {
    uint64_t valid;
    hie_audit_hash_t h[HIE_AUDIT__LEVELS];
};

/* Writes leaf n and the subtrees it completes; the caller updates the size. */
static int
leaf_put(hie_audit_tree_t *tree, MDB_txn *txn, uint64_t n, const hie_audit_hash_t *leaf,
    struct frontier *f)
{
    HIE_ASSERT(leaf != NULL);
    HIE_ASSERT(n < HIE_AUDIT_TREE_SIZE_MAX);
    int rc = node_put(tree, txn, 0, n, leaf);
    /* Leaf n completes the subtree of level k ending at it for every k with 2^k | n + 1: its
     * right half is the one just built, its left half the last complete subtree of level
     * k - 1, which the frontier holds or the store does. */
    hie_audit_hash_t cur = *leaf;
    unsigned k = 1;
    for (; rc == 0 && k < HIE_AUDIT__LEVELS && ((n + 1) & ((1ull << k) - 1)) == 0; k++) {
        hie_audit_hash_t left;
        if ((f->valid & (1ull << (k - 1))) != 0) {
            left = f->h[k - 1];
        } else {
            rc = node_need(tree, txn, k - 1, ((n + 1) >> (k - 1)) - 2, &left);
        }
        rc = rc ? rc : append_node_hash(tree, &left, &cur, &cur);
        rc = rc ? rc : node_put(tree, txn, k, ((n + 1) >> k) - 1, &cur);
    }
    f->h[k - 1] = cur; /* the levels below are complete no more: built anew before use */
    f->valid |= 1ull << (k - 1);
    return rc;
}

int
hie_audit_tree_append_many(hie_audit_tree_t *tree, MDB_txn *txn, const hie_audit_hash_t *leaves,
    size_t count, uint64_t *first)
{
    tree_check(tree, txn);
    HIE_ASSERT(leaves != NULL && first != NULL);
    HIE_ASSERT(count > 0);
    *first = 0;
    uint64_t n = 0;
    int rc = size_get(tree, txn, &n);
    if (rc != 0) {
        return rc;
    }
    if (count > HIE_AUDIT_TREE_SIZE_MAX - n) {
        return HIE_ELIMIT;
    }
    struct frontier f = {0, {{{0}}}};
    for (size_t i = 0; rc == 0 && i < count; i++) {
        rc = leaf_put(tree, txn, n + i, &leaves[i], &f);
    }
    rc = rc == 0 ? size_put(tree, txn, n + count) : rc; /* one size write for them all */
    if (rc == 0) {
        *first = n;
    }
    return rc;
}

int
hie_audit_tree_append(hie_audit_tree_t *tree, MDB_txn *txn, const hie_audit_hash_t *leaf,
    uint64_t *index)
{
    return hie_audit_tree_append_many(tree, txn, leaf, 1, index);
}

int
hie_audit_tree_leaf_hash(hie_audit_tree_t *tree, hie_span_t entry, hie_audit_hash_t *out)
{
    HIE_ASSERT(tree != NULL && tree->magic == TREE_MAGIC);
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(entry.ptr != NULL || entry.len == 0);
    static const uint8_t leaf_prefix = 0x00;
    hie_span_t parts[2] = {{&leaf_prefix, 1}, entry};
    return append_hash(tree, parts, 2, out);
}

int
hie_audit_tree_size(hie_audit_tree_t *tree, MDB_txn *txn, uint64_t *size)
{
    tree_check(tree, txn);
    HIE_ASSERT(size != NULL);
    return size_get(tree, txn, size);
}

/* Checks size against the stored size. Returns 0, HIE_EINVAL or a read error. */
static int
size_within(const hie_audit_tree_t *t, MDB_txn *txn, uint64_t size)
{
    uint64_t n = 0;
    int rc = size_get(t, txn, &n);
    return rc != 0 ? rc : (size > n ? HIE_EINVAL : 0);
}

int
hie_audit_tree_root(hie_audit_tree_t *tree, MDB_txn *txn, uint64_t size, hie_audit_hash_t *root)
{
    tree_check(tree, txn);
    HIE_ASSERT(root != NULL);
    memset(root, 0, sizeof(*root));
    int rc = size_within(tree, txn, size);
    if (rc != 0) {
        return rc;
    }
    if (size == 0) {
        hie_audit_empty_root(root);
        return 0;
    }
    return range_hash(tree, txn, 0, size, root);
}

int
hie_audit_tree_inclusion_proof(hie_audit_tree_t *tree, MDB_txn *txn, uint64_t index,
    uint64_t size, hie_audit_proof_t *proof)
{
    tree_check(tree, txn);
    HIE_ASSERT(proof != NULL);
    memset(proof, 0, sizeof(*proof));
    int rc = index < size ? size_within(tree, txn, size) : HIE_EINVAL;
    /* PATH(m, D[a:b]) top-down: the sibling of the half holding m, then into that half. */
    uint64_t a = 0, b = size;
    while (rc == 0 && b - a > 1) {
        uint64_t k = hie_audit__split(b - a);
        HIE_ASSERT(proof->count < HIE_AUDIT_PROOF_HASHES_MAX);
        hie_audit_hash_t *sibling = &proof->hashes[proof->count++];
        if (index < a + k) {
            rc = range_hash(tree, txn, a + k, b, sibling);
            b = a + k;
        } else {
            rc = range_hash(tree, txn, a, a + k, sibling);
            a += k;
        }
    }
    if (rc != 0) {
        memset(proof, 0, sizeof(*proof));
        return rc;
    }
    HIE_ASSERT(a == index);
    hie_audit__proof_reverse(proof);
    return 0;
}

/* SUBPROOF(m, D[a:b], flag) top-down; see RFC 9162 2.1.4.1. */
static int
consistency_walk(const hie_audit_tree_t *t, MDB_txn *txn, uint64_t m, uint64_t b,
    hie_audit_proof_t *proof)
{
    uint64_t a = 0;
    bool flag = true;
    for (unsigned depth = 0; depth <= HIE_AUDIT__LEVELS; depth++) {
        if (m == b && flag) {
            return 0;
        }
        HIE_ASSERT(proof->count < HIE_AUDIT_PROOF_HASHES_MAX);
        hie_audit_hash_t *h = &proof->hashes[proof->count++];
        if (m == b) {
            return range_hash(t, txn, a, b, h); /* SUBPROOF(m, D[m], false) = [MTH(D[m])] */
        }
        uint64_t k = hie_audit__split(b - a);
        int rc;
        if (m - a <= k) {
            rc = range_hash(t, txn, a + k, b, h);
            b = a + k;
        } else {
            rc = range_hash(t, txn, a, a + k, h);
            a += k;
            flag = false;
        }
        if (rc != 0) {
            return rc;
        }
    }
    HIE_ASSERT(false); /* each step at least halves b - a: unreachable */
    return HIE_ECORRUPT;
}

int
hie_audit_tree_consistency_proof(hie_audit_tree_t *tree, MDB_txn *txn, uint64_t size1,
    uint64_t size2, hie_audit_proof_t *proof)
{
    tree_check(tree, txn);
    HIE_ASSERT(proof != NULL);
    memset(proof, 0, sizeof(*proof));
    int rc = size1 <= size2 ? size_within(tree, txn, size2) : HIE_EINVAL;
    if (rc != 0 || size1 == 0 || size1 == size2) {
        return rc; /* the edges have empty proofs */
    }
    rc = consistency_walk(tree, txn, size1, size2, proof);
    if (rc != 0) {
        memset(proof, 0, sizeof(*proof));
        return rc;
    }
    hie_audit__proof_reverse(proof);
    return 0;
}

/* ---- integrity check ---------------------------------------------------------------------- */

struct scan {
    hie_audit_tree_t *t;
    MDB_txn *txn;
    hie_audit_verify_report_t *rep;
    hie_audit_leaf_fn leaf_fn;
    void *ctx;
    hie_audit_hash_t stack[HIE_AUDIT__LEVELS]; /* recomputed roots of the complete subtrees */
    unsigned depth;
};

static int
fault(hie_audit_verify_report_t *rep, enum hie_audit_fault f, unsigned level, uint64_t index)
{
    HIE_ASSERT(f != HIE_AUDIT_FAULT_NONE);
    rep->fault = f;
    rep->level = (uint8_t)level;
    rep->index = index;
    return HIE_ECORRUPT;
}

/* Compares the recomputed h with the stored node (level, index). */
static int
scan_compare(struct scan *s, unsigned level, uint64_t index, const hie_audit_hash_t *h)
{
    hie_audit_hash_t stored;
    int rc = node_get(s->t, s->txn, level, index, &stored);
    if (rc == HIE_ENOTFOUND) {
        return fault(s->rep, level == 0 ? HIE_AUDIT_FAULT_LEAF_MISSING
                                        : HIE_AUDIT_FAULT_NODE_MISSING, level, index);
    }
    if (rc == HIE_ECORRUPT) {
        return fault(s->rep, HIE_AUDIT_FAULT_MALFORMED, level, index);
    }
    if (rc != 0) {
        return rc;
    }
    if (!hie_audit__hash_eq(&stored, h)) {
        return fault(s->rep, level == 0 ? HIE_AUDIT_FAULT_LEAF_MISMATCH
                                        : HIE_AUDIT_FAULT_NODE_MISMATCH, level, index);
    }
    return 0;
}

/* Hashes entry i, compares it, and recomputes and compares every subtree leaf i completes. */
static int
scan_leaf(struct scan *s, uint64_t i)
{
    hie_span_t entry = {NULL, 0};
    int rc = s->leaf_fn(s->ctx, s->txn, i, &entry);
    if (rc == HIE_ENOTFOUND) {
        return fault(s->rep, HIE_AUDIT_FAULT_ENTRY_MISSING, 0, i);
    }
    if (rc != 0) {
        return rc;
    }
    HIE_ASSERT(entry.ptr != NULL || entry.len == 0);
    HIE_ASSERT(s->depth < HIE_AUDIT__LEVELS);
    hie_audit_hash_t *top = &s->stack[s->depth++];
    hie_audit_leaf_hash(entry, top);
    rc = scan_compare(s, 0, i, top);
    s->rep->leaves_checked += rc == 0;
    for (unsigned k = 1; rc == 0 && k < HIE_AUDIT__LEVELS && ((i + 1) & ((1ull << k) - 1)) == 0;
         k++) {
        HIE_ASSERT(s->depth >= 2);
        s->depth--;
        hie_audit_node_hash(&s->stack[s->depth - 1], &s->stack[s->depth],
            &s->stack[s->depth - 1]);
        rc = scan_compare(s, k, ((i + 1) >> k) - 1, &s->stack[s->depth - 1]);
        s->rep->nodes_checked += rc == 0;
    }
    return rc;
}

/* Nothing may exist at or past the size: no entry, and no node completed by leaf size or
 * later (in write order, no key from (size, 0) on). */
static int
scan_beyond(struct scan *s, uint64_t n)
{
    hie_span_t entry = {NULL, 0};
    int rc = s->leaf_fn(s->ctx, s->txn, n, &entry);
    if (rc == 0) {
        return fault(s->rep, HIE_AUDIT_FAULT_BEYOND_SIZE, 0, n);
    }
    if (rc != HIE_ENOTFOUND) {
        return rc;
    }
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(s->txn, s->t->dbi, &cur) != 0) {
        return HIE_ESTORAGE;
    }
    uint8_t key[KEY_BYTES] = {0};
    hie_store_be64(key, n);
    MDB_val k = {KEY_BYTES, key}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = mrc != 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : 0;
    if (mrc == 0 && k.mv_size != KEY_BYTES) {
        rc = fault(s->rep, HIE_AUDIT_FAULT_MALFORMED, 0, n); /* no other key sorts there */
    } else if (mrc == 0) {
        const uint8_t *kb = k.mv_data;
        unsigned level = kb[8] < HIE_AUDIT__LEVELS ? kb[8] : 0;
        rc = fault(s->rep, HIE_AUDIT_FAULT_BEYOND_SIZE, level, hie_load_be64(kb) >> level);
    }
    mdb_cursor_close(cur);
    return rc;
}

static int
scan_anchor(struct scan *s, uint64_t n, const hie_audit_tree_head_t *anchor)
{
    if (anchor->size > n) {
        return fault(s->rep, HIE_AUDIT_FAULT_ANCHOR_SIZE, 0, n);
    }
    hie_audit_hash_t root;
    int rc = hie_audit_tree_root(s->t, s->txn, anchor->size, &root);
    if (rc != 0) {
        return rc;
    }
    if (!hie_audit__hash_eq(&root, &anchor->root)) {
        return fault(s->rep, HIE_AUDIT_FAULT_ANCHOR_ROOT, 0, anchor->size);
    }
    return 0;
}

int
hie_audit_tree_verify(hie_audit_tree_t *tree, MDB_txn *txn, const hie_audit_tree_head_t *anchor,
    hie_audit_verify_report_t *report, hie_audit_leaf_fn leaf_fn, void *ctx)
{
    tree_check(tree, txn);
    HIE_ASSERT(report != NULL);
    HIE_ASSERT(leaf_fn != NULL);
    memset(report, 0, sizeof(*report));
    struct scan s = {.t = tree, .txn = txn, .rep = report, .leaf_fn = leaf_fn, .ctx = ctx};
    uint64_t n = 0;
    int rc = size_get(tree, txn, &n);
    if (rc == HIE_ECORRUPT) {
        return fault(report, HIE_AUDIT_FAULT_MALFORMED, META_LEVEL, 0);
    }
    report->size = n;
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        rc = scan_leaf(&s, i);
    }
    rc = rc == 0 ? scan_beyond(&s, n) : rc;
    rc = rc == 0 && anchor != NULL ? scan_anchor(&s, n, anchor) : rc;
    return rc;
}
