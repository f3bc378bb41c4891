/*
 * test_audit_tree.c - broker/src/audit_tree.c: the Merkle tree in LMDB against the in-memory
 * reference (every size and index up to 64, random ones up to 3,000), its integrity check
 * against edited, deleted, reordered and truncated records and stored hashes, a forked log
 * caught by a consistency proof between two signed checkpoints, readers on other threads
 * while the writer appends, and misuse.
 *
 * Each test gets a fresh LMDB env in a temporary directory with the tree and an
 * "audit_entries" database (index, 8 bytes big-endian -> entry bytes) standing in for the
 * node's stored audit records. Tampering writes the documented key layout directly.
 */
#include "../test_util.h"

#include "hie/audit.h"

#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

static char tmpdir[64];
static MDB_env *env;
static MDB_dbi entries_dbi;
static MDB_dbi tree_dbi; /* the same database, opened by name, for tampering */
static hie_audit_tree_t *tree;

static void
env_open(const char *dir, MDB_env **out, MDB_dbi *edbi, hie_audit_tree_t **t)
{
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_env_create(out), 0);
    cr_assert_eq(mdb_env_set_maxdbs(*out, 8), 0);
    cr_assert_eq(mdb_env_set_mapsize(*out, 256ull << 20), 0);
    cr_assert_eq(mdb_env_open(*out, dir, MDB_NOSYNC, 0600), 0);
    cr_assert_eq(mdb_txn_begin(*out, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "audit_entries", MDB_CREATE, edbi), 0);
    cr_assert_eq(hie_audit_tree_create(t, txn), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
}

static void
setup(void)
{
    test_tmpdir_make(tmpdir, sizeof(tmpdir), "audit-tree");
    env_open(tmpdir, &env, &entries_dbi, &tree);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, HIE_AUDIT_TREE_DB_NAME, 0, &tree_dbi), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
}

static void
teardown(void)
{
    hie_audit_tree_destroy(&tree);
    if (env != NULL) {
        mdb_env_close(env);
        env = NULL;
    }
    test_tmpdir_remove(tmpdir);
}

TestSuite(audit_tree, .init = setup, .fini = teardown);

/* Entry i: a stand-in audit record; entry 0 is empty, lengths vary. */
static size_t
entry_make(uint64_t i, uint8_t buf[64], uint8_t variant)
{
    if (i == 0 && variant == 0) {
        return 0;
    }
    int n = snprintf((char *)buf, 64, "disclosure %lu to org-%lu v%u", (unsigned long)i,
        (unsigned long)(i % 7), variant);
    return (size_t)n;
}

static void
entry_put(MDB_txn *txn, MDB_dbi dbi, uint64_t i, const uint8_t *p, size_t len)
{
    uint8_t key[8];
    hie_store_be64(key, i);
    MDB_val k = {8, key}, v = {len, (void *)(uintptr_t)p};
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
}

/* Appends entries [from, to) of the given variant, storing them as records too. */
static void
append_range(MDB_env *e, MDB_dbi edbi, hie_audit_tree_t *t, uint64_t from, uint64_t to,
    uint8_t variant)
{
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(e, NULL, 0, &txn), 0);
    for (uint64_t i = from; i < to; i++) {
        uint8_t buf[64];
        size_t len = entry_make(i, buf, variant);
        hie_audit_hash_t leaf;
        hie_audit_leaf_hash(hie_span(buf, len), &leaf);
        entry_put(txn, edbi, i, buf, len);
        uint64_t index = UINT64_MAX;
        cr_assert_eq(hie_audit_tree_append(t, txn, &leaf, &index), 0);
        cr_assert_eq(index, i);
    }
    cr_assert_eq(mdb_txn_commit(txn), 0);
}

static void
ref_leaves(hie_audit_hash_t *leaves, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        uint8_t buf[64];
        hie_audit_leaf_hash(hie_span(buf, entry_make(i, buf, 0)), &leaves[i]);
    }
}

static bool
hash_eq(const hie_audit_hash_t *a, const hie_audit_hash_t *b)
{
    return memcmp(a->bytes, b->bytes, 32) == 0;
}

static bool
proof_eq(const hie_audit_proof_t *a, const hie_audit_proof_t *b)
{
    return a->count == b->count && memcmp(a->hashes, b->hashes, 32 * a->count) == 0;
}

Test(audit_tree, empty_tree)
{
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    uint64_t n = 99;
    hie_audit_hash_t root, empty;
    hie_audit_proof_t p;
    cr_assert_eq(hie_audit_tree_size(tree, txn, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(hie_audit_tree_root(tree, txn, 0, &root), 0);
    hie_audit_empty_root(&empty);
    cr_assert(hash_eq(&root, &empty));
    cr_assert_eq(hie_audit_tree_root(tree, txn, 1, &root), HIE_EINVAL);
    cr_assert_eq(hie_audit_tree_inclusion_proof(tree, txn, 0, 0, &p), HIE_EINVAL);
    cr_assert_eq(hie_audit_tree_consistency_proof(tree, txn, 0, 0, &p), 0);
    cr_assert_eq(p.count, 0);
    mdb_txn_abort(txn);
}

/* Inclusion: the stored proof equals the reference, verifies, and every tampering fails. */
static void
check_inclusion(MDB_txn *txn, const hie_audit_hash_t *leaves, const hie_audit_hash_t *roots,
    uint64_t index, uint64_t size, uint64_t n_max)
{
    hie_audit_proof_t got, want, p;
    cr_assert_eq(hie_audit_tree_inclusion_proof(tree, txn, index, size, &got), 0);
    cr_assert_eq(hie_audit_ref_inclusion_proof(leaves, size, index, &want), 0);
    cr_assert(proof_eq(&got, &want), "inclusion %lu in %lu", (unsigned long)index,
        (unsigned long)size);
    const hie_audit_hash_t *leaf = &leaves[index], *root = &roots[size];
    cr_assert_eq(hie_audit_inclusion_verify(index, size, leaf, &got, root), 0);
    for (size_t i = 0; i < got.count; i++) {
        for (unsigned bit = 0; bit < 256; bit += 37) {
            p = got;
            p.hashes[i].bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            cr_assert_eq(hie_audit_inclusion_verify(index, size, leaf, &p, root), HIE_ECORRUPT);
        }
    }
    cr_assert_neq(hie_audit_inclusion_verify(index + 1, size, leaf, &got, root), 0);
    if (index > 0) {
        cr_assert_neq(hie_audit_inclusion_verify(index - 1, size, leaf, &got, root), 0);
    }
    if (size < n_max) {
        cr_assert_neq(hie_audit_inclusion_verify(index, size + 1, leaf, &got, &roots[size + 1]),
            0);
    }
    if (index < size - 1) {
        cr_assert_neq(hie_audit_inclusion_verify(index, size - 1, leaf, &got, &roots[size - 1]),
            0);
    }
    p = got;
    p.hashes[p.count++] = *root;
    cr_assert_eq(hie_audit_inclusion_verify(index, size, leaf, &p, root), HIE_ECORRUPT, "extra");
    if (got.count > 0) {
        p = got;
        p.count--;
        cr_assert_eq(hie_audit_inclusion_verify(index, size, leaf, &p, root), HIE_ECORRUPT);
    }
}

static void
check_consistency(MDB_txn *txn, const hie_audit_hash_t *leaves, const hie_audit_hash_t *roots,
    uint64_t s1, uint64_t s2, uint64_t n_max)
{
    hie_audit_proof_t got, want, p;
    cr_assert_eq(hie_audit_tree_consistency_proof(tree, txn, s1, s2, &got), 0);
    cr_assert_eq(hie_audit_ref_consistency_proof(leaves, s1, s2, &want), 0);
    cr_assert(proof_eq(&got, &want), "consistency %lu -> %lu", (unsigned long)s1,
        (unsigned long)s2);
    const hie_audit_hash_t *r1 = &roots[s1], *r2 = &roots[s2];
    cr_assert_eq(hie_audit_consistency_verify(s1, s2, r1, r2, &got), 0);
    for (size_t i = 0; i < got.count; i++) {
        p = got;
        p.hashes[i].bytes[i % 32] ^= 0x40;
        cr_assert_eq(hie_audit_consistency_verify(s1, s2, r1, r2, &p), HIE_ECORRUPT);
    }
    if (s1 > 0 && s1 < s2) {
        cr_assert_neq(hie_audit_consistency_verify(s1 - 1, s2, &roots[s1 - 1], r2, &got), 0);
        cr_assert_neq(hie_audit_consistency_verify(s1 + 1, s2, &roots[s1 + 1], r2, &got), 0);
        cr_assert_neq(hie_audit_consistency_verify(s1, s2 - 1, r1, &roots[s2 - 1], &got), 0);
        cr_assert_neq(hie_audit_consistency_verify(s1, s2, r2, r1, &got), 0);
    }
    if (s1 > 0 && s2 < n_max) { /* (the empty tree is consistent with every tree) */
        cr_assert_neq(hie_audit_consistency_verify(s1, s2 + 1, r1, &roots[s2 + 1], &got), 0);
    }
    p = got;
    p.hashes[p.count++] = *r2;
    cr_assert_eq(hie_audit_consistency_verify(s1, s2, r1, r2, &p), HIE_ECORRUPT, "extra");
    if (got.count > 0) {
        p = got;
        p.count--;
        cr_assert_eq(hie_audit_consistency_verify(s1, s2, r1, r2, &p), HIE_ECORRUPT, "missing");
    }
}

Test(audit_tree, every_size_up_to_64_matches_the_reference)
{
    enum { N = 64 };
    hie_audit_hash_t leaves[N], roots[N + 1];
    ref_leaves(leaves, N);
    for (uint64_t s = 0; s <= N; s++) {
        cr_assert_eq(hie_audit_ref_root(leaves, s, &roots[s]), 0);
    }
    /* Grow one leaf at a time; at every size n, check every (index, size) and (size1,
     * size2) up to n: the historic sizes stay provable as the tree grows. */
    unsigned checks = 0;
    for (uint64_t n = 1; n <= N; n++) {
        append_range(env, entries_dbi, tree, n - 1, n, 0);
        MDB_txn *txn = NULL;
        cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
        uint64_t size = 0;
        cr_assert_eq(hie_audit_tree_size(tree, txn, &size), 0);
        cr_assert_eq(size, n);
        for (uint64_t s = (n == N ? 0 : n); s <= n; s++) { /* all sizes once, at the end */
            hie_audit_hash_t root;
            cr_assert_eq(hie_audit_tree_root(tree, txn, s, &root), 0);
            cr_assert(hash_eq(&root, &roots[s]), "root of %lu at %lu", (unsigned long)s,
                (unsigned long)n);
            for (uint64_t i = 0; i < s; i++, checks++) {
                check_inclusion(txn, leaves, roots, i, s, N);
            }
            for (uint64_t s1 = 0; s1 <= s; s1++, checks++) {
                check_consistency(txn, leaves, roots, s1, s, N);
            }
        }
        hie_audit_hash_t root;
        cr_assert_eq(hie_audit_tree_root(tree, txn, n + 1, &root), HIE_EINVAL);
        mdb_txn_abort(txn);
    }
    cr_log_info("%u proofs checked against the reference", checks);
    cr_assert_geq(checks, 2 * 2080u);
}

Test(audit_tree, random_sizes_up_to_3000_match_the_reference)
{
    enum { N = 3000 };
    static hie_audit_hash_t leaves[N];
    ref_leaves(leaves, N);
    test_rng_t rng;
    test_rng_init(&rng, test_seed(0x61756469745f7472ull));
    for (uint64_t from = 0; from < N; from += 500) {
        append_range(env, entries_dbi, tree, from, from + 500, 0);
    }
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    for (unsigned c = 0; c < 200; c++) {
        uint64_t s2 = 1 + test_rng_below(&rng, N), s1 = test_rng_below(&rng, (uint32_t)s2 + 1);
        uint64_t index = test_rng_below(&rng, (uint32_t)s2);
        hie_audit_hash_t r1, r2, got;
        hie_audit_proof_t p, want;
        cr_assert_eq(hie_audit_ref_root(leaves, s1, &r1), 0);
        cr_assert_eq(hie_audit_ref_root(leaves, s2, &r2), 0);
        cr_assert_eq(hie_audit_tree_root(tree, txn, s2, &got), 0);
        cr_assert(hash_eq(&got, &r2));
        cr_assert_eq(hie_audit_tree_inclusion_proof(tree, txn, index, s2, &p), 0);
        cr_assert_eq(hie_audit_ref_inclusion_proof(leaves, s2, index, &want), 0);
        cr_assert(proof_eq(&p, &want));
        cr_assert_eq(hie_audit_inclusion_verify(index, s2, &leaves[index], &p, &r2), 0);
        cr_assert_eq(hie_audit_tree_consistency_proof(tree, txn, s1, s2, &p), 0);
        cr_assert_eq(hie_audit_ref_consistency_proof(leaves, s1, s2, &want), 0);
        cr_assert(proof_eq(&p, &want), "%lu -> %lu", (unsigned long)s1, (unsigned long)s2);
        cr_assert_eq(hie_audit_consistency_verify(s1, s2, &r1, &r2, &p), 0);
    }
    mdb_txn_abort(txn);
}

Test(audit_tree, survives_reopen_and_refuses_bad_arguments)
{
    append_range(env, entries_dbi, tree, 0, 37, 0);
    hie_audit_tree_destroy(&tree);
    cr_assert_null(tree);
    hie_audit_tree_destroy(&tree); /* NULL-safe */
    mdb_env_close(env);
    env_open(tmpdir, &env, &entries_dbi, &tree);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    uint64_t n = 0;
    hie_audit_hash_t leaves[37], root, want;
    hie_audit_proof_t p;
    ref_leaves(leaves, 37);
    cr_assert_eq(hie_audit_tree_size(tree, txn, &n), 0);
    cr_assert_eq(n, 37);
    cr_assert_eq(hie_audit_tree_root(tree, txn, 37, &root), 0);
    cr_assert_eq(hie_audit_ref_root(leaves, 37, &want), 0);
    cr_assert(hash_eq(&root, &want));
    cr_assert_eq(hie_audit_tree_inclusion_proof(tree, txn, 37, 37, &p), HIE_EINVAL);
    cr_assert_eq(hie_audit_tree_inclusion_proof(tree, txn, 3, 38, &p), HIE_EINVAL);
    cr_assert_eq(p.count, 0);
    cr_assert_eq(hie_audit_tree_consistency_proof(tree, txn, 5, 4, &p), HIE_EINVAL);
    cr_assert_eq(hie_audit_tree_consistency_proof(tree, txn, 5, 38, &p), HIE_EINVAL);
    /* A read-only transaction cannot append: a storage error, nothing else. */
    uint64_t index = 7;
    cr_assert_eq(hie_audit_tree_append(tree, txn, &want, &index), HIE_ESTORAGE);
    cr_assert_eq(index, 0);
    mdb_txn_abort(txn);
}

/* ---- integrity check and tampering -------------------------------------------------------- */

struct entries_ctx {
    MDB_dbi dbi;
    unsigned calls;
    int fail_with;
};

static int
entry_fn(void *ctx, MDB_txn *txn, uint64_t index, hie_span_t *entry)
{
    struct entries_ctx *c = ctx;
    c->calls++;
    if (c->fail_with != 0) {
        return c->fail_with;
    }
    uint8_t key[8];
    hie_store_be64(key, index);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(txn, c->dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return HIE_ENOTFOUND;
    }
    cr_assert_eq(rc, 0);
    *entry = hie_span(v.mv_data, v.mv_size);
    return 0;
}

static int
verify_now(const hie_audit_tree_head_t *anchor, hie_audit_verify_report_t *rep)
{
    MDB_txn *txn = NULL;
    struct entries_ctx c = {.dbi = entries_dbi};
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    int rc = hie_audit_tree_verify(tree, txn, anchor, rep, entry_fn, &c);
    mdb_txn_abort(txn);
    return rc;
}

static void
expect_fault(const hie_audit_tree_head_t *anchor, enum hie_audit_fault f, unsigned level,
    uint64_t index)
{
    hie_audit_verify_report_t rep;
    cr_assert_eq(verify_now(anchor, &rep), HIE_ECORRUPT);
    cr_assert_eq(rep.fault, f, "fault %d, expected %d", (int)rep.fault, (int)f);
    cr_assert_eq(rep.level, level, "level %u, expected %u", rep.level, level);
    cr_assert_eq(rep.index, index, "index %lu, expected %lu", (unsigned long)rep.index,
        (unsigned long)index);
}

/* A write transaction for the attacker's edit; the test commits it. */
static MDB_txn *
tamper_begin(void)
{
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    return txn;
}

/* Node (level, index)'s key in write order: the leaf that completed it, then the level. */
static void
tree_key(uint8_t key[9], unsigned level, uint64_t index)
{
    hie_store_be64(key, ((index + 1) << level) - 1);
    key[8] = (uint8_t)level;
}

static const uint8_t size_key[1] = {0}; /* the tree size's key */

static void
raw_del(MDB_txn *txn, MDB_dbi dbi, const uint8_t *key, size_t key_len)
{
    MDB_val k = {key_len, (void *)(uintptr_t)key};
    cr_assert_eq(mdb_del(txn, dbi, &k, NULL), 0);
}

static void
raw_put(MDB_txn *txn, MDB_dbi dbi, const uint8_t *key, size_t key_len, const void *val,
    size_t val_len)
{
    MDB_val k = {key_len, (void *)(uintptr_t)key}, v = {val_len, (void *)(uintptr_t)val};
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
}

static void
entry_del(MDB_txn *txn, uint64_t i)
{
    uint8_t key[8];
    hie_store_be64(key, i);
    raw_del(txn, entries_dbi, key, 8);
}

static void
current_head(hie_audit_tree_head_t *head)
{
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_audit_tree_size(tree, txn, &head->size), 0);
    cr_assert_eq(hie_audit_tree_root(tree, txn, head->size, &head->root), 0);
    mdb_txn_abort(txn);
}

Test(audit_tree, verify_accepts_an_intact_log)
{
    append_range(env, entries_dbi, tree, 0, 1000, 0);
    hie_audit_tree_head_t head;
    current_head(&head);
    hie_audit_verify_report_t rep;
    cr_assert_eq(verify_now(&head, &rep), 0);
    cr_assert_eq(rep.fault, HIE_AUDIT_FAULT_NONE);
    cr_assert_eq(rep.size, 1000);
    cr_assert_eq(rep.leaves_checked, 1000);
    cr_assert_eq(rep.nodes_checked, 1000 - (uint64_t)__builtin_popcountll(1000));
    head.size = 600; /* an older head */
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_audit_tree_root(tree, txn, 600, &head.root), 0);
    mdb_txn_abort(txn);
    cr_assert_eq(verify_now(&head, &rep), 0);
}

Test(audit_tree, verify_finds_an_edited_entry)
{
    append_range(env, entries_dbi, tree, 0, 100, 0);
    MDB_txn *txn = tamper_begin();
    entry_put(txn, entries_dbi, 42, (const uint8_t *)"disclosure 42 to nobody", 23);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    expect_fault(NULL, HIE_AUDIT_FAULT_LEAF_MISMATCH, 0, 42);
}

Test(audit_tree, verify_finds_a_deleted_entry)
{
    append_range(env, entries_dbi, tree, 0, 100, 0);
    MDB_txn *txn = tamper_begin();
    entry_del(txn, 63);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    expect_fault(NULL, HIE_AUDIT_FAULT_ENTRY_MISSING, 0, 63);
}

Test(audit_tree, verify_finds_swapped_entries)
{
    append_range(env, entries_dbi, tree, 0, 100, 0);
    uint8_t a[64], b[64];
    size_t a_len = entry_make(17, a, 0), b_len = entry_make(71, b, 0);
    MDB_txn *txn = tamper_begin();
    entry_put(txn, entries_dbi, 17, b, b_len);
    entry_put(txn, entries_dbi, 71, a, a_len);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    expect_fault(NULL, HIE_AUDIT_FAULT_LEAF_MISMATCH, 0, 17);
}

Test(audit_tree, verify_finds_an_edited_interior_hash)
{
    append_range(env, entries_dbi, tree, 0, 100, 0);
    uint8_t key[9], junk[32];
    memset(junk, 0x5a, sizeof(junk));
    tree_key(key, 3, 5); /* leaves 40..47 */
    MDB_txn *txn = tamper_begin();
    raw_put(txn, tree_dbi, key, 9, junk, 32);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    expect_fault(NULL, HIE_AUDIT_FAULT_NODE_MISMATCH, 3, 5);
    /* The damaged tree no longer proves leaves under that node against the true root. */
    txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    hie_audit_hash_t leaves[100], root;
    hie_audit_proof_t p;
    ref_leaves(leaves, 100);
    cr_assert_eq(hie_audit_ref_root(leaves, 100, &root), 0);
    /* Node (3,5) is leaf 35's sibling at level 3, and not on leaf 3's path. */
    cr_assert_eq(hie_audit_tree_inclusion_proof(tree, txn, 35, 100, &p), 0);
    cr_assert_eq(hie_audit_inclusion_verify(35, 100, &leaves[35], &p, &root), HIE_ECORRUPT);
    cr_assert_eq(hie_audit_tree_inclusion_proof(tree, txn, 3, 100, &p), 0);
    cr_assert_eq(hie_audit_inclusion_verify(3, 100, &leaves[3], &p, &root), 0);
    mdb_txn_abort(txn);
}

Test(audit_tree, verify_finds_missing_and_malformed_hashes)
{
    append_range(env, entries_dbi, tree, 0, 50, 0);
    uint8_t key[9];
    tree_key(key, 0, 30);
    MDB_txn *txn = tamper_begin();
    raw_del(txn, tree_dbi, key, 9);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    expect_fault(NULL, HIE_AUDIT_FAULT_LEAF_MISSING, 0, 30);
    tree_key(key, 1, 2);
    txn = tamper_begin();
    raw_put(txn, tree_dbi, key, 9, "short", 5);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    expect_fault(NULL, HIE_AUDIT_FAULT_MALFORMED, 1, 2);
    txn = tamper_begin();
    raw_put(txn, tree_dbi, size_key, sizeof(size_key), "1234567", 7);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    expect_fault(NULL, HIE_AUDIT_FAULT_MALFORMED, 0xff, 0);
    txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    uint64_t n = 0;
    cr_assert_eq(hie_audit_tree_size(tree, txn, &n), HIE_ECORRUPT);
    mdb_txn_abort(txn);
}

/* Truncation, three ways: records deleted and the size cut back (the tree's keys past the
 * size give it away); records deleted only (missing entries); records, tree and size all cut
 * back consistently (only a trusted head, e.g. the last signed checkpoint, can tell). */
Test(audit_tree, verify_finds_truncation)
{
    append_range(env, entries_dbi, tree, 0, 100, 0);
    hie_audit_tree_head_t head;
    current_head(&head);
    uint8_t key[9], size_be[8];
    hie_store_be64(size_be, 90);
    MDB_txn *txn = tamper_begin();
    for (uint64_t i = 90; i < 100; i++) {
        entry_del(txn, i);
    }
    raw_put(txn, tree_dbi, size_key, sizeof(size_key), size_be, 8);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    expect_fault(NULL, HIE_AUDIT_FAULT_BEYOND_SIZE, 0, 90);
    /* Now also remove every tree key covering leaves 90..99: the tree alone is consistent. */
    txn = tamper_begin();
    for (unsigned level = 0; level < 7; level++) {
        for (uint64_t i = 90u >> level; i < (100u >> level); i++) {
            tree_key(key, level, i);
            raw_del(txn, tree_dbi, key, 9);
        }
    }
    cr_assert_eq(mdb_txn_commit(txn), 0);
    hie_audit_verify_report_t rep;
    cr_assert_eq(verify_now(NULL, &rep), 0, "undetectable without a trusted head");
    cr_assert_eq(rep.size, 90);
    expect_fault(&head, HIE_AUDIT_FAULT_ANCHOR_SIZE, 0, 90);
}

Test(audit_tree, verify_finds_records_missing_at_the_end)
{
    append_range(env, entries_dbi, tree, 0, 100, 0);
    MDB_txn *txn = tamper_begin();
    for (uint64_t i = 95; i < 100; i++) {
        entry_del(txn, i);
    }
    cr_assert_eq(mdb_txn_commit(txn), 0);
    expect_fault(NULL, HIE_AUDIT_FAULT_ENTRY_MISSING, 0, 95);
}

Test(audit_tree, verify_finds_a_record_past_the_size)
{
    append_range(env, entries_dbi, tree, 0, 10, 0);
    MDB_txn *txn = tamper_begin();
    entry_put(txn, entries_dbi, 10, (const uint8_t *)"unlogged", 8);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    expect_fault(NULL, HIE_AUDIT_FAULT_BEYOND_SIZE, 0, 10);
}

/* A rewrite that recomputes every hash passes the tree's own check; the head a witness
 * countersigned earlier catches it. */
Test(audit_tree, verify_with_a_trusted_head_finds_a_consistent_rewrite)
{
    append_range(env, entries_dbi, tree, 0, 64, 0);
    hie_audit_tree_head_t head;
    current_head(&head);
    MDB_txn *txn = tamper_begin();
    cr_assert_eq(mdb_drop(txn, entries_dbi, 0), 0);
    cr_assert_eq(mdb_drop(txn, tree_dbi, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    append_range(env, entries_dbi, tree, 0, 64, 1); /* every record rewritten */
    hie_audit_verify_report_t rep;
    cr_assert_eq(verify_now(NULL, &rep), 0);
    expect_fault(&head, HIE_AUDIT_FAULT_ANCHOR_ROOT, 0, 64);
}

Test(audit_tree, verify_returns_callback_errors)
{
    append_range(env, entries_dbi, tree, 0, 10, 0);
    MDB_txn *txn = NULL;
    struct entries_ctx c = {.dbi = entries_dbi, .fail_with = HIE_ESTORAGE};
    hie_audit_verify_report_t rep;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_audit_tree_verify(tree, txn, NULL, &rep, entry_fn, &c), HIE_ESTORAGE);
    cr_assert_eq(c.calls, 1);
    cr_assert_eq(rep.fault, HIE_AUDIT_FAULT_NONE);
    mdb_txn_abort(txn);
}

/* ---- a forked log, caught between two signed checkpoints ----------------------------------- */

static void
sign_parse(const hie_audit_signer_t *s, const hie_audit_tree_head_t *head, char *note,
    hie_audit_checkpoint_t *cp)
{
    size_t len = 0;
    cr_assert_eq(hie_audit_checkpoint_sign(s, "hie.example/audit", head, note,
        HIE_AUDIT_NOTE_SIGNED_BYTES_MAX, &len), 0);
    cr_assert_eq(hie_audit_checkpoint_parse(hie_span(note, len), cp, NULL), 0);
}

Test(audit_tree, a_forked_log_fails_the_consistency_proof)
{
    char path[256], dir_b[128];
    cr_assert_lt(strlen(tmpdir), sizeof(dir_b) - 3);
    snprintf(path, sizeof(path), "%s/audit.key", tmpdir);
    hie_audit_signer_t *signer = NULL;
    cr_assert_eq(hie_audit_signer_generate(path), 0);
    cr_assert_eq(hie_audit_signer_load(&signer, path, "hie.example/audit"), 0);
    hie_audit_vkey_t vkey;
    hie_audit_signer_vkey(signer, &vkey);
    /* Log A: 40 leaves, checkpoint 1 at size 40. Log B (the fork): the same first 20 leaves,
     * then different ones, grown to 70; checkpoint 2 at size 70, signed by the same key. */
    append_range(env, entries_dbi, tree, 0, 40, 0);
    hie_audit_tree_head_t h1, h2;
    current_head(&h1);
    snprintf(dir_b, sizeof(dir_b), "%s/b", tmpdir);
    cr_assert_eq(mkdir(dir_b, 0700), 0);
    MDB_env *env_b = NULL;
    MDB_dbi edbi_b;
    hie_audit_tree_t *tree_b = NULL;
    env_open(dir_b, &env_b, &edbi_b, &tree_b);
    append_range(env_b, edbi_b, tree_b, 0, 20, 0);
    append_range(env_b, edbi_b, tree_b, 20, 70, 2);
    MDB_txn *txn = NULL;
    hie_audit_proof_t proof;
    cr_assert_eq(mdb_txn_begin(env_b, NULL, MDB_RDONLY, &txn), 0);
    h2.size = 70;
    cr_assert_eq(hie_audit_tree_root(tree_b, txn, 70, &h2.root), 0);
    cr_assert_eq(hie_audit_tree_consistency_proof(tree_b, txn, 40, 70, &proof), 0);
    mdb_txn_abort(txn);
    char n1[HIE_AUDIT_NOTE_SIGNED_BYTES_MAX], n2[HIE_AUDIT_NOTE_SIGNED_BYTES_MAX];
    hie_audit_checkpoint_t c1, c2;
    sign_parse(signer, &h1, n1, &c1);
    sign_parse(signer, &h2, n2, &c2);
    cr_assert_eq(hie_audit_checkpoint_verify(&c1, &vkey, "hie.example/audit"), 0);
    cr_assert_eq(hie_audit_checkpoint_verify(&c2, &vkey, "hie.example/audit"), 0);
    /* Both signatures are good; the auditor's consistency check is what fails. */
    cr_assert_eq(hie_audit_consistency_verify(c1.head.size, c2.head.size, &c1.head.root,
        &c2.head.root, &proof), HIE_ECORRUPT);
    /* The genuine log A grown to 70 is consistent with checkpoint 1. */
    append_range(env, entries_dbi, tree, 40, 70, 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_audit_tree_consistency_proof(tree, txn, 40, 70, &proof), 0);
    cr_assert_eq(hie_audit_tree_root(tree, txn, 70, &h2.root), 0);
    mdb_txn_abort(txn);
    cr_assert_eq(hie_audit_consistency_verify(40, 70, &c1.head.root, &h2.root, &proof), 0);
    hie_audit_tree_destroy(&tree_b);
    mdb_env_close(env_b);
    hie_audit_signer_destroy(&signer);
}

/* ---- threads: readers with their own transactions while the writer appends ---------------- */

struct reader_arg {
    unsigned proofs;
    bool failed;
};

static void *
reader_main(void *p)
{
    struct reader_arg *arg = p;
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ (uintptr_t)p;
    for (unsigned round = 0; round < 300; round++) {
        MDB_txn *txn = NULL;
        uint64_t n = 0;
        if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0 ||
            hie_audit_tree_size(tree, txn, &n) != 0) {
            arg->failed = true;
            break;
        }
        if (n > 0) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            uint64_t index = rng % n;
            hie_audit_hash_t root, leaf;
            hie_audit_proof_t proof;
            uint8_t buf[64];
            hie_audit_leaf_hash(hie_span(buf, entry_make(index, buf, 0)), &leaf);
            arg->failed |= hie_audit_tree_root(tree, txn, n, &root) != 0;
            arg->failed |= hie_audit_tree_inclusion_proof(tree, txn, index, n, &proof) != 0;
            arg->failed |= hie_audit_inclusion_verify(index, n, &leaf, &proof, &root) != 0;
            arg->proofs++;
        }
        mdb_txn_abort(txn);
    }
    return NULL;
}

Test(audit_tree, readers_on_other_threads_see_consistent_snapshots)
{
    pthread_t th[2];
    struct reader_arg args[2] = {{0}, {0}};
    append_range(env, entries_dbi, tree, 0, 1, 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
    }
    for (uint64_t from = 1; from < 2001; from += 10) {
        append_range(env, entries_dbi, tree, from, from + 10, 0);
    }
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert(!args[i].failed, "reader %d", i);
        cr_assert_gt(args[i].proofs, 0);
    }
}

/* Leaves appended several at a time give the same tree as one at a time. */
Test(audit_tree, append_many_equals_single_appends)
{
    static hie_audit_hash_t leaves[100];
    hie_audit_tree_head_t head;
    append_range(env, entries_dbi, tree, 0, 100, 0);
    current_head(&head);
    ref_leaves(leaves, 100);
    MDB_txn *txn = tamper_begin();
    cr_assert_eq(mdb_drop(txn, tree_dbi, 0), 0, "the same records, the tree built again");
    for (uint64_t first = 0; first < 100; first += 7) {
        size_t n = 100 - first < 7 ? (size_t)(100 - first) : 7;
        uint64_t got = UINT64_MAX;
        cr_assert_eq(hie_audit_tree_append_many(tree, txn, &leaves[first], n, &got), 0);
        cr_assert_eq(got, first);
    }
    cr_assert_eq(mdb_txn_commit(txn), 0);
    hie_audit_verify_report_t rep;
    cr_assert_eq(verify_now(&head, &rep), 0, "fault %d", (int)rep.fault);
    cr_assert_eq(rep.size, 100);
}

/* Calls of every size from 1 to 64 leaves (append_many builds on the tree's right edge as
 * it read or built it in the call), 2,080 leaves in all: the same tree as single appends. */
Test(audit_tree, append_many_of_every_batch_size_equals_single_appends)
{
    enum { N = 64 * 65 / 2 };
    static hie_audit_hash_t leaves[N];
    hie_audit_tree_head_t head;
    append_range(env, entries_dbi, tree, 0, N, 0);
    current_head(&head);
    ref_leaves(leaves, N);
    MDB_txn *txn = tamper_begin();
    cr_assert_eq(mdb_drop(txn, tree_dbi, 0), 0, "the same records, the tree built again");
    uint64_t first = 0;
    for (size_t n = 1; n <= 64; n++) {
        uint64_t got = UINT64_MAX;
        cr_assert_eq(hie_audit_tree_append_many(tree, txn, &leaves[first], n, &got), 0);
        cr_assert_eq(got, first);
        first += n;
    }
    cr_assert_eq(first, N);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    hie_audit_verify_report_t rep;
    cr_assert_eq(verify_now(&head, &rep), 0, "fault %d", (int)rep.fault);
    cr_assert_eq(rep.size, N);
}

/* The appender's OpenSSL hashing gives the same leaf hashes as the portable merkle.c. */
Test(audit_tree, tree_leaf_hash_equals_the_pure_leaf_hash)
{
    static uint8_t entry[3000];
    for (size_t i = 0; i < sizeof(entry); i++) {
        entry[i] = (uint8_t)(i * 131u + 7u);
    }
    static const size_t lens[] = {0, 1, 55, 56, 63, 64, 65, 200, 3000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        hie_audit_hash_t a, b;
        hie_audit_leaf_hash(hie_span(entry, lens[i]), &a);
        cr_assert_eq(hie_audit_tree_leaf_hash(tree, hie_span(entry, lens[i]), &b), 0);
        cr_assert_eq(memcmp(a.bytes, b.bytes, sizeof(a.bytes)), 0, "length %zu", lens[i]);
    }
}

/* ---- the first, level-major layout ------------------------------------------------------ */

/* Rewrites the tree as the first layout stored it: level (1) || index (8), size under
 * (0xff, 0). */
static void
level_major_rewrite(uint64_t n)
{
    static uint8_t hashes[300][9][32]; /* 300 leaves: levels 0..8 */
    MDB_txn *txn = tamper_begin();
    cr_assert_leq(n, 300);
    for (unsigned level = 0; level < 9 && (n >> level) > 0; level++) {
        for (uint64_t i = 0; i < n >> level; i++) {
            uint8_t key[9];
            MDB_val k = {9, key}, v;
            tree_key(key, level, i);
            cr_assert_eq(mdb_get(txn, tree_dbi, &k, &v), 0);
            memcpy(hashes[i][level], v.mv_data, 32);
        }
    }
    cr_assert_eq(mdb_drop(txn, tree_dbi, 0), 0);
    for (unsigned level = 0; level < 9 && (n >> level) > 0; level++) {
        for (uint64_t i = 0; i < n >> level; i++) {
            uint8_t key[9] = {(uint8_t)level};
            hie_store_be64(key + 1, i);
            raw_put(txn, tree_dbi, key, 9, hashes[i][level], 32);
        }
    }
    uint8_t key[9] = {0xff}, size_be[8];
    hie_store_be64(size_be, n);
    raw_put(txn, tree_dbi, key, 9, size_be, 8);
    cr_assert_eq(mdb_txn_commit(txn), 0);
}

Test(audit_tree, a_level_major_tree_is_converted_and_verifies)
{
    append_range(env, entries_dbi, tree, 0, 300, 0);
    hie_audit_tree_head_t head;
    current_head(&head);
    level_major_rewrite(300);
    MDB_txn *txn = tamper_begin();
    cr_assert_eq(hie_audit_tree_upgrade(tree, txn, false), HIE_ESTATE, "read-only: refused");
    cr_assert_eq(hie_audit_tree_upgrade(tree, txn, true), 0);
    cr_assert_eq(hie_audit_tree_upgrade(tree, txn, true), 0, "once converted, a no-op");
    cr_assert_eq(mdb_txn_commit(txn), 0);
    hie_audit_verify_report_t rep;
    cr_assert_eq(verify_now(&head, &rep), 0, "the same hashes: fault %d", (int)rep.fault);
    cr_assert_eq(rep.size, 300);
    append_range(env, entries_dbi, tree, 300, 310, 0); /* and appends go on */
    cr_assert_eq(verify_now(&head, &rep), 0);
    cr_assert_eq(rep.size, 310);
}

/* ---- misuse ------------------------------------------------------------------------------- */

Test(audit_tree, null_handle_aborts, .signal = SIGABRT)
{
    test_tmpdir_remove(tmpdir); /* .fini does not run after the abort (env stays mapped) */
    MDB_txn *txn = NULL;
    uint64_t n = 0;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    int rc = hie_audit_tree_size(NULL, txn, &n);
    (void)rc;
}

Test(audit_tree, null_leaf_aborts, .signal = SIGABRT)
{
    test_tmpdir_remove(tmpdir); /* .fini does not run after the abort (env stays mapped) */
    MDB_txn *txn = NULL;
    uint64_t index = 0;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    int rc = hie_audit_tree_append(tree, txn, NULL, &index);
    (void)rc;
}

Test(audit_tree, verify_without_callback_aborts, .signal = SIGABRT)
{
    test_tmpdir_remove(tmpdir); /* .fini does not run after the abort (env stays mapped) */
    MDB_txn *txn = NULL;
    hie_audit_verify_report_t rep;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    int rc = hie_audit_tree_verify(tree, txn, NULL, &rep, NULL, NULL);
    (void)rc;
}
