/*
 * test_merkle.c - broker/src/merkle.c: RFC 6962 hashing, the in-memory reference tree and the
 * RFC 9162 proof verifiers.
 *
 * Known answers: the Certificate Transparency test vectors (8 leaves "", 00, 10, 2021, 3031,
 * 40414243, 5051525354555657, 606162636465666768696a6b6c6d6e6f; the roots of sizes 1..8 and
 * the published inclusion and consistency proofs), as carried by transparency-dev/merkle
 * proof/verify_test.go (whose leaf numbers there are 1-based). The probes that corrupt a valid
 * proof follow that file's corruptInclusionProof / corruptConsistencyProof lists. The
 * reference root is also checked against a second, iterative root computation written here,
 * for sizes the vectors do not reach.
 */
#include "../test_util.h"

#include "hie/audit.h"

#include <signal.h>

static void
hex_hash(const char *hex, hie_audit_hash_t *out)
{
    cr_assert_eq(strlen(hex), 64);
    for (size_t i = 0; i < 32; i++) {
        unsigned v = 0;
        cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        out->bytes[i] = (uint8_t)v;
    }
}

static void
hex_bytes(const char *hex, uint8_t *out, size_t *len)
{
    *len = strlen(hex) / 2;
    for (size_t i = 0; i < *len; i++) {
        unsigned v = 0;
        cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static bool
hash_eq(const hie_audit_hash_t *a, const hie_audit_hash_t *b)
{
    return memcmp(a->bytes, b->bytes, 32) == 0;
}

static const char *const ct_entries[8] = {"", "00", "10", "2021", "3031", "40414243",
    "5051525354555657", "606162636465666768696a6b6c6d6e6f"};

static const char *const ct_roots[8] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

#define EMPTY_ROOT "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SOME_HASH "abacaba000000000000000000000000000000000000000000060061e00123456"

struct vector {
    uint64_t a, b;              /* inclusion: index, size; consistency: size1, size2 */
    size_t count;
    const char *hashes[3];
};

/* transparency-dev/merkle inclusionProofs, leaf numbers made 0-based. */
static const struct vector inclusion_vectors[] = {
    {0, 8, 3, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {5, 8, 3, {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                  "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 3, 1, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {1, 5, 3, {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {0, 1, 0, {NULL}},
};

/* transparency-dev/merkle consistencyProofs. */
static const struct vector consistency_vectors[] = {
    {1, 8, 3, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6, 8, 3, {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                  "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 5, 2, {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {6, 7, 3, {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                  "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {1, 1, 0, {NULL}},
};

static void
ct_leaves(hie_audit_hash_t leaves[8])
{
    for (size_t i = 0; i < 8; i++) {
        uint8_t buf[16];
        size_t len = 0;
        hex_bytes(ct_entries[i], buf, &len);
        hie_audit_leaf_hash(hie_span(buf, len), &leaves[i]);
    }
}

static void
vector_proof(const struct vector *v, hie_audit_proof_t *p)
{
    memset(p, 0, sizeof(*p));
    p->count = v->count;
    for (size_t i = 0; i < v->count; i++) {
        hex_hash(v->hashes[i], &p->hashes[i]);
    }
}

Test(merkle, empty_tree_and_leaf_prefixes)
{
    hie_audit_hash_t got, want, leaves[8];
    hie_audit_empty_root(&got);
    hex_hash(EMPTY_ROOT, &want);
    cr_assert(hash_eq(&got, &want), "empty root is SHA-256(\"\")");
    cr_assert_eq(hie_audit_ref_root(NULL, 0, &got), 0);
    cr_assert(hash_eq(&got, &want));
    /* MTH of one leaf is its leaf hash SHA-256(0x00 || ""), the first published root. */
    ct_leaves(leaves);
    hex_hash(ct_roots[0], &want);
    cr_assert(hash_eq(&leaves[0], &want));
    /* Node hash of leaves 0 and 1 is the root of size 2: prefix 0x01, left then right. */
    hie_audit_node_hash(&leaves[0], &leaves[1], &got);
    hex_hash(ct_roots[1], &want);
    cr_assert(hash_eq(&got, &want));
    hie_audit_node_hash(&leaves[1], &leaves[0], &got);
    cr_assert(!hash_eq(&got, &want), "order matters");
}

Test(merkle, reference_roots_match_ct_vectors)
{
    hie_audit_hash_t leaves[8], got, want;
    ct_leaves(leaves);
    for (uint64_t n = 1; n <= 8; n++) {
        cr_assert_eq(hie_audit_ref_root(leaves, n, &got), 0);
        hex_hash(ct_roots[n - 1], &want);
        cr_assert(hash_eq(&got, &want), "root of size %lu", (unsigned long)n);
    }
}

/* A second root computation (a stack of complete subtrees, as a log appends) to cross-check
 * the recursive reference beyond the published sizes. */
static void
stack_root(const hie_audit_hash_t *leaves, uint64_t n, hie_audit_hash_t *out)
{
    hie_audit_hash_t stack[64];
    unsigned depth = 0;
    for (uint64_t i = 0; i < n; i++) {
        stack[depth++] = leaves[i];
        for (uint64_t c = i + 1; (c & 1u) == 0; c >>= 1) {
            depth--;
            hie_audit_node_hash(&stack[depth - 1], &stack[depth], &stack[depth - 1]);
        }
    }
    *out = stack[depth - 1];
    for (unsigned j = depth - 1; j-- > 0;) {
        hie_audit_node_hash(&stack[j], out, out);
    }
}

Test(merkle, reference_root_matches_a_second_algorithm)
{
    static hie_audit_hash_t leaves[700];
    for (size_t i = 0; i < 700; i++) {
        uint8_t e[2] = {(uint8_t)i, (uint8_t)(i >> 8)};
        hie_audit_leaf_hash(hie_span(e, sizeof(e)), &leaves[i]);
    }
    for (uint64_t n = 1; n <= 700; n++) {
        hie_audit_hash_t a, b;
        cr_assert_eq(hie_audit_ref_root(leaves, n, &a), 0);
        stack_root(leaves, n, &b);
        cr_assert(hash_eq(&a, &b), "size %lu", (unsigned long)n);
    }
}

Test(merkle, reference_inclusion_proofs_match_ct_vectors)
{
    hie_audit_hash_t leaves[8], root;
    ct_leaves(leaves);
    for (size_t v = 0; v < HIE_ARRAY_LEN(inclusion_vectors); v++) {
        const struct vector *iv = &inclusion_vectors[v];
        hie_audit_proof_t want, got;
        vector_proof(iv, &want);
        cr_assert_eq(hie_audit_ref_inclusion_proof(leaves, iv->b, iv->a, &got), 0);
        cr_assert_eq(got.count, want.count, "vector %zu", v);
        cr_assert(memcmp(got.hashes, want.hashes, 32 * want.count) == 0, "vector %zu", v);
        hex_hash(ct_roots[iv->b - 1], &root);
        cr_assert_eq(hie_audit_inclusion_verify(iv->a, iv->b, &leaves[iv->a], &want, &root), 0,
            "vector %zu", v);
    }
}

Test(merkle, reference_consistency_proofs_match_ct_vectors)
{
    hie_audit_hash_t leaves[8], r1, r2;
    ct_leaves(leaves);
    for (size_t v = 0; v < HIE_ARRAY_LEN(consistency_vectors); v++) {
        const struct vector *cv = &consistency_vectors[v];
        hie_audit_proof_t want, got;
        vector_proof(cv, &want);
        cr_assert_eq(hie_audit_ref_consistency_proof(leaves, cv->a, cv->b, &got), 0);
        cr_assert_eq(got.count, want.count, "vector %zu", v);
        cr_assert(memcmp(got.hashes, want.hashes, 32 * want.count) == 0, "vector %zu", v);
        hex_hash(ct_roots[cv->a - 1], &r1);
        hex_hash(ct_roots[cv->b - 1], &r2);
        cr_assert_eq(hie_audit_consistency_verify(cv->a, cv->b, &r1, &r2, &want), 0,
            "vector %zu", v);
    }
}

static void
proof_insert(hie_audit_proof_t *p, size_t at, const hie_audit_hash_t *h)
{
    cr_assert(p->count < HIE_AUDIT_PROOF_HASHES_MAX);
    memmove(&p->hashes[at + 1], &p->hashes[at], (p->count - at) * sizeof(p->hashes[0]));
    p->hashes[at] = *h;
    p->count++;
}

/* transparency-dev's corruptInclusionProof probes: every one must be refused. */
static void
inclusion_probes_fail(uint64_t index, uint64_t size, const hie_audit_hash_t *leaf,
    const hie_audit_proof_t *proof, const hie_audit_hash_t *root)
{
    hie_audit_hash_t empty, some, wrong_leaf, zero = {{0}};
    hex_hash(EMPTY_ROOT, &empty);
    hex_hash(SOME_HASH, &some);
    hie_audit_leaf_hash(hie_span("WrongLeaf", 9), &wrong_leaf);
    cr_assert_neq(hie_audit_inclusion_verify(index - 1, size, leaf, proof, root), 0);
    cr_assert_neq(hie_audit_inclusion_verify(index + 1, size, leaf, proof, root), 0);
    cr_assert_neq(hie_audit_inclusion_verify(index ^ 2, size, leaf, proof, root), 0);
    cr_assert_neq(hie_audit_inclusion_verify(index, size * 2, leaf, proof, root), 0);
    cr_assert_neq(hie_audit_inclusion_verify(index, size / 2, leaf, proof, root), 0);
    cr_assert_neq(hie_audit_inclusion_verify(index, size, &wrong_leaf, proof, root), 0);
    cr_assert_neq(hie_audit_inclusion_verify(index, size, leaf, proof, &empty), 0);
    cr_assert_neq(hie_audit_inclusion_verify(index, size, leaf, proof, &some), 0);
    const hie_audit_hash_t *extras[] = {&zero, root};
    for (size_t e = 0; e < 2; e++) {
        hie_audit_proof_t p = *proof;
        proof_insert(&p, p.count, extras[e]); /* trailing garbage / root */
        cr_assert_neq(hie_audit_inclusion_verify(index, size, leaf, &p, root), 0);
        p = *proof;
        proof_insert(&p, 0, extras[e]); /* preceding garbage / root */
        cr_assert_neq(hie_audit_inclusion_verify(index, size, leaf, &p, root), 0);
    }
    for (size_t i = 0; i < proof->count; i++) {
        hie_audit_proof_t p = *proof;
        p.hashes[i].bytes[0] ^= 8;
        cr_assert_eq(hie_audit_inclusion_verify(index, size, leaf, &p, root), HIE_ECORRUPT);
    }
    if (proof->count > 0) {
        hie_audit_proof_t p = *proof;
        p.count--;
        cr_assert_eq(hie_audit_inclusion_verify(index, size, leaf, &p, root), HIE_ECORRUPT);
    }
    if (proof->count > 1) {
        hie_audit_proof_t p = *proof;
        proof_insert(&p, 1, &some);
        cr_assert_eq(hie_audit_inclusion_verify(index, size, leaf, &p, root), HIE_ECORRUPT);
    }
}

Test(merkle, corrupted_inclusion_proofs_fail)
{
    hie_audit_hash_t leaves[8], root;
    ct_leaves(leaves);
    for (size_t v = 0; v < HIE_ARRAY_LEN(inclusion_vectors) - 1; v++) {
        const struct vector *iv = &inclusion_vectors[v];
        hie_audit_proof_t proof;
        vector_proof(iv, &proof);
        hex_hash(ct_roots[iv->b - 1], &root);
        inclusion_probes_fail(iv->a, iv->b, &leaves[iv->a], &proof, &root);
    }
}

/* transparency-dev's corruptConsistencyProof probes. */
static void
consistency_probes_fail(uint64_t s1, uint64_t s2, const hie_audit_hash_t *r1,
    const hie_audit_hash_t *r2, const hie_audit_proof_t *proof)
{
    hie_audit_hash_t wrong, zero = {{0}};
    hie_audit_leaf_hash(hie_span("WrongRoot", 9), &wrong);
    cr_assert_neq(hie_audit_consistency_verify(s1 - 1, s2, r1, r2, proof), 0);
    cr_assert_neq(hie_audit_consistency_verify(s1 + 1, s2, r1, r2, proof), 0);
    cr_assert_neq(hie_audit_consistency_verify(s1 ^ 2, s2, r1, r2, proof), 0);
    cr_assert_neq(hie_audit_consistency_verify(s1, s2 * 2, r1, r2, proof), 0);
    cr_assert_neq(hie_audit_consistency_verify(s1, s2 / 2, r1, r2, proof), 0);
    cr_assert_neq(hie_audit_consistency_verify(s1, s2, &wrong, r2, proof), 0);
    cr_assert_neq(hie_audit_consistency_verify(s1, s2, r1, &wrong, proof), 0);
    cr_assert_neq(hie_audit_consistency_verify(s1, s2, r2, r1, proof), 0);
    hie_audit_proof_t p = {0};
    cr_assert_eq(hie_audit_consistency_verify(s1, s2, r1, r2, &p), HIE_ECORRUPT, "empty");
    const hie_audit_hash_t *extras[] = {&zero, r1, r2, &proof->hashes[0]};
    for (size_t e = 0; e < 4; e++) {
        p = *proof;
        proof_insert(&p, p.count, extras[e]);
        cr_assert_neq(hie_audit_consistency_verify(s1, s2, r1, r2, &p), 0, "trailing %zu", e);
        p = *proof;
        proof_insert(&p, 0, extras[e]);
        cr_assert_neq(hie_audit_consistency_verify(s1, s2, r1, r2, &p), 0, "preceding %zu", e);
    }
    p = *proof;
    p.count--;
    cr_assert_eq(hie_audit_consistency_verify(s1, s2, r1, r2, &p), HIE_ECORRUPT, "truncated");
    for (size_t i = 0; i < proof->count; i++) {
        p = *proof;
        p.hashes[i].bytes[0] ^= 16;
        cr_assert_eq(hie_audit_consistency_verify(s1, s2, r1, r2, &p), HIE_ECORRUPT);
    }
}

Test(merkle, corrupted_consistency_proofs_fail)
{
    hie_audit_hash_t r1, r2;
    for (size_t v = 0; v < HIE_ARRAY_LEN(consistency_vectors) - 1; v++) {
        const struct vector *cv = &consistency_vectors[v];
        hie_audit_proof_t proof;
        vector_proof(cv, &proof);
        hex_hash(ct_roots[cv->a - 1], &r1);
        hex_hash(ct_roots[cv->b - 1], &r2);
        consistency_probes_fail(cv->a, cv->b, &r1, &r2, &proof);
    }
}

/* transparency-dev's TestVerifyConsistency edge table, with our rule that the empty tree's
 * root is SHA-256(""). */
Test(merkle, consistency_edges)
{
    hie_audit_hash_t a, b, empty;
    hie_audit_leaf_hash(hie_span("don't care 1", 12), &a);
    hie_audit_leaf_hash(hie_span("don't care 2", 12), &b);
    hex_hash(EMPTY_ROOT, &empty);
    hie_audit_proof_t none = {0}, one = {.count = 1};
    one.hashes[0] = empty;
    cr_assert_eq(hie_audit_consistency_verify(0, 0, &a, &b, &none), HIE_ECORRUPT);
    cr_assert_eq(hie_audit_consistency_verify(1, 1, &a, &b, &none), HIE_ECORRUPT);
    cr_assert_eq(hie_audit_consistency_verify(0, 0, &empty, &empty, &none), 0);
    cr_assert_eq(hie_audit_consistency_verify(0, 1, &empty, &b, &none), 0);
    cr_assert_eq(hie_audit_consistency_verify(0, 1, &a, &b, &none), HIE_ECORRUPT,
        "size 0 must have the empty root");
    cr_assert_eq(hie_audit_consistency_verify(1, 1, &b, &b, &none), 0);
    cr_assert_eq(hie_audit_consistency_verify(1, 0, &a, &b, &none), HIE_EINVAL);
    cr_assert_eq(hie_audit_consistency_verify(2, 1, &a, &b, &none), HIE_EINVAL);
    cr_assert_eq(hie_audit_consistency_verify(1, 2, &a, &b, &none), HIE_ECORRUPT);
    cr_assert_eq(hie_audit_consistency_verify(0, 0, &empty, &b, &none), HIE_ECORRUPT);
    cr_assert_eq(hie_audit_consistency_verify(1, 1, &empty, &b, &none), HIE_ECORRUPT);
    cr_assert_eq(hie_audit_consistency_verify(0, 0, &empty, &empty, &one), HIE_ECORRUPT);
    cr_assert_eq(hie_audit_consistency_verify(0, 1, &empty, &empty, &one), HIE_ECORRUPT);
    cr_assert_eq(hie_audit_consistency_verify(1, 1, &empty, &empty, &one), HIE_ECORRUPT);
}

Test(merkle, inclusion_edges)
{
    hie_audit_hash_t some, empty, leaf;
    hex_hash(SOME_HASH, &some);
    hex_hash(EMPTY_ROOT, &empty);
    hie_audit_leaf_hash(hie_span("data", 4), &leaf);
    hie_audit_proof_t none = {0};
    /* One leaf: the root is the leaf hash and the proof is empty. */
    cr_assert_eq(hie_audit_inclusion_verify(0, 1, &leaf, &none, &leaf), 0);
    cr_assert_eq(hie_audit_inclusion_verify(0, 1, &leaf, &none, &some), HIE_ECORRUPT);
    cr_assert_eq(hie_audit_inclusion_verify(0, 1, &some, &none, &leaf), HIE_ECORRUPT);
    const uint64_t bad[][2] = {{0, 0}, {1, 0}, {2, 1}, {1, 1}};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        cr_assert_eq(hie_audit_inclusion_verify(bad[i][0], bad[i][1], &some, &none, &empty),
            HIE_EINVAL, "index %lu size %lu", (unsigned long)bad[i][0],
            (unsigned long)bad[i][1]);
    }
}

Test(merkle, limits_refuse_before_hashing)
{
    hie_audit_hash_t h = {{1}};
    hie_audit_proof_t p = {0};
    p.count = HIE_AUDIT_PROOF_HASHES_MAX + 1;
    cr_assert_eq(hie_audit_inclusion_verify(0, 2, &h, &p, &h), HIE_EINVAL);
    cr_assert_eq(hie_audit_consistency_verify(1, 2, &h, &h, &p), HIE_EINVAL);
    p.count = 1;
    cr_assert_eq(hie_audit_inclusion_verify(0, HIE_AUDIT_TREE_SIZE_MAX + 1, &h, &p, &h),
        HIE_EINVAL);
    cr_assert_eq(hie_audit_consistency_verify(1, HIE_AUDIT_TREE_SIZE_MAX + 1, &h, &h, &p),
        HIE_EINVAL);
    cr_assert_eq(hie_audit_inclusion_verify(UINT64_MAX, UINT64_MAX, &h, &p, &h), HIE_EINVAL);
    /* The largest sizes are accepted as sizes (the hashes then decide): 64 hashes at most. */
    p.count = HIE_AUDIT_PROOF_HASHES_MAX;
    cr_assert_eq(hie_audit_inclusion_verify(HIE_AUDIT_TREE_SIZE_MAX - 1,
        HIE_AUDIT_TREE_SIZE_MAX, &h, &p, &h), HIE_ECORRUPT);
    cr_assert_eq(hie_audit_consistency_verify(HIE_AUDIT_TREE_SIZE_MAX - 1,
        HIE_AUDIT_TREE_SIZE_MAX, &h, &h, &p), HIE_ECORRUPT);
    hie_audit_proof_t out;
    cr_assert_eq(hie_audit_ref_inclusion_proof(&h, 1, 1, &out), HIE_EINVAL);
    cr_assert_eq(hie_audit_ref_consistency_proof(&h, 2, 1, &out), HIE_EINVAL);
    cr_assert_eq(hie_audit_ref_root(&h, HIE_AUDIT_TREE_SIZE_MAX + 1, &out.hashes[0]),
        HIE_EINVAL);
}

/* A proof for the largest tree: build the path of the last leaf of a 2^63-leaf tree from
 * synthetic sibling hashes (every left sibling a complete subtree), so the verifier runs its
 * full 63 steps and accepts; one more or one fewer hash is refused. */
Test(merkle, largest_tree_inclusion_path)
{
    hie_audit_hash_t leaf, r;
    hie_audit_leaf_hash(hie_span("last", 4), &leaf);
    hie_audit_proof_t p = {.count = 63};
    r = leaf;
    for (size_t i = 0; i < 63; i++) {
        uint8_t tag = (uint8_t)i;
        hie_audit_leaf_hash(hie_span(&tag, 1), &p.hashes[i]);
        hie_audit_node_hash(&p.hashes[i], &r, &r); /* the leaf is always the right child */
    }
    uint64_t n = HIE_AUDIT_TREE_SIZE_MAX;
    cr_assert_eq(hie_audit_inclusion_verify(n - 1, n, &leaf, &p, &r), 0);
    cr_assert_eq(hie_audit_inclusion_verify(n - 2, n, &leaf, &p, &r), HIE_ECORRUPT);
    p.count = 62;
    cr_assert_eq(hie_audit_inclusion_verify(n - 1, n, &leaf, &p, &r), HIE_ECORRUPT);
    p.count = 64;
    cr_assert_eq(hie_audit_inclusion_verify(n - 1, n, &leaf, &p, &r), HIE_ECORRUPT);
}

Test(merkle, null_proof_aborts, .signal = SIGABRT)
{
    hie_audit_hash_t h = {{0}};
    int rc = hie_audit_inclusion_verify(0, 1, &h, NULL, &h);
    (void)rc;
}

Test(merkle, leaf_hash_null_with_length_aborts, .signal = SIGABRT)
{
    hie_audit_hash_t h;
    hie_audit_leaf_hash(hie_span(NULL, 3), &h);
}
