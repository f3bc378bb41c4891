/*
 * merkle.c - RFC 6962 / RFC 9162 Merkle tree hashing: leaf and node hashes, the in-memory
 * reference tree (root, inclusion and consistency proof generation) and proof verification.
 *
 * The reference functions translate RFC 6962 2.1 and RFC 9162 2.1.3.1 / 2.1.4.1 literally,
 * recursion included: they are the yardstick that audit_tree.c's O(log n) LMDB versions, the
 * tests and the fuzzer are measured against, so they stay as close to the text as possible.
 * The recursion is over a size, not over external data: each level at least halves it, so
 * the depth is at most 64 (asserted).
 *
 * The verifiers follow RFC 9162 2.1.3.2 and 2.1.4.2 step by step (the step numbers are in the
 * comments). They take untrusted proofs: every loop is bounded by HIE_AUDIT_PROOF_HASHES_MAX
 * or by 64 shifts of a 64-bit value, and a proof over the limit is refused before hashing.
 * Callers: audit_tree.c, checkpoint users in node/, tests, tests/fuzz/fuzz_checkpoint.c.
 */
#include "audit_int.h"

#include <sodium.h>

_Static_assert(HIE_AUDIT_HASH_BYTES == crypto_hash_sha256_BYTES, "SHA-256 size");

void
hie_audit_leaf_hash(hie_span_t entry, hie_audit_hash_t *out)
{
    static const uint8_t prefix = 0x00;
    crypto_hash_sha256_state st;

    HIE_ASSERT(out != NULL);
    HIE_ASSERT(entry.ptr != NULL || entry.len == 0);
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, &prefix, 1);
    if (entry.len > 0) {
        crypto_hash_sha256_update(&st, entry.ptr, entry.len);
    }
    crypto_hash_sha256_final(&st, out->bytes);
}

void
hie_audit_node_hash(const hie_audit_hash_t *left, const hie_audit_hash_t *right,
    hie_audit_hash_t *out)
{
    uint8_t buf[1 + 2 * HIE_AUDIT_HASH_BYTES];

    HIE_ASSERT(left != NULL && right != NULL);
    HIE_ASSERT(out != NULL);
    buf[0] = 0x01;
    memcpy(buf + 1, left->bytes, HIE_AUDIT_HASH_BYTES);
    memcpy(buf + 1 + HIE_AUDIT_HASH_BYTES, right->bytes, HIE_AUDIT_HASH_BYTES);
    crypto_hash_sha256(out->bytes, buf, sizeof(buf)); /* out may alias: inputs already copied */
}

void
hie_audit_empty_root(hie_audit_hash_t *out)
{
    HIE_ASSERT(out != NULL);
    crypto_hash_sha256(out->bytes, NULL, 0);
}

/* ---- reference tree (RFC 6962 2.1, literally) -------------------------------------------- */

/* MTH(D[n]) over leaves[0..n). */
static void
ref_mth(const hie_audit_hash_t *leaves, uint64_t n, hie_audit_hash_t *out, unsigned depth)
{
    HIE_ASSERT(depth <= HIE_AUDIT__LEVELS);
    if (n == 0) {
        hie_audit_empty_root(out);
        return;
    }
    if (n == 1) {
        *out = leaves[0]; /* leaves are already leaf hashes: MTH({d0}) = SHA-256(0x00 || d0) */
        return;
    }
    uint64_t k = hie_audit__split(n);
    hie_audit_hash_t left, right;
    ref_mth(leaves, k, &left, depth + 1);
    ref_mth(leaves + k, n - k, &right, depth + 1);
    hie_audit_node_hash(&left, &right, out);
}

static void
proof_push(hie_audit_proof_t *proof, const hie_audit_hash_t *h)
{
    HIE_ASSERT(proof->count < HIE_AUDIT_PROOF_HASHES_MAX);
    proof->hashes[proof->count++] = *h;
}

/* PATH(m, D[n]) (RFC 9162 2.1.3.1). The recursive call's path comes first, then the sibling. */
static void
ref_path(const hie_audit_hash_t *leaves, uint64_t m, uint64_t n, hie_audit_proof_t *out,
    unsigned depth)
{
    HIE_ASSERT(depth <= HIE_AUDIT__LEVELS);
    HIE_ASSERT(m < n);
    if (n == 1) {
        return;
    }
    uint64_t k = hie_audit__split(n);
    hie_audit_hash_t sibling;
    if (m < k) {
        ref_path(leaves, m, k, out, depth + 1);
        ref_mth(leaves + k, n - k, &sibling, 0);
    } else {
        ref_path(leaves + k, m - k, n - k, out, depth + 1);
        ref_mth(leaves, k, &sibling, 0);
    }
    proof_push(out, &sibling);
}

/* SUBPROOF(m, D[n], b) (RFC 9162 2.1.4.1). */
static void
ref_subproof(const hie_audit_hash_t *leaves, uint64_t m, uint64_t n, bool b,
    hie_audit_proof_t *out, unsigned depth)
{
    HIE_ASSERT(depth <= HIE_AUDIT__LEVELS);
    HIE_ASSERT(m <= n);
    hie_audit_hash_t h;
    if (m == n) {
        if (!b) {
            ref_mth(leaves, n, &h, 0);
            proof_push(out, &h);
        }
        return;
    }
    uint64_t k = hie_audit__split(n);
    if (m <= k) {
        ref_subproof(leaves, m, k, b, out, depth + 1);
        ref_mth(leaves + k, n - k, &h, 0);
    } else {
        ref_subproof(leaves + k, m - k, n - k, false, out, depth + 1);
        ref_mth(leaves, k, &h, 0);
    }
    proof_push(out, &h);
}

int
hie_audit_ref_root(const hie_audit_hash_t *leaves, uint64_t size, hie_audit_hash_t *out)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(leaves != NULL || size == 0);
    memset(out, 0, sizeof(*out));
    if (size > HIE_AUDIT_TREE_SIZE_MAX) {
        return HIE_EINVAL;
    }
    ref_mth(leaves, size, out, 0);
    return 0;
}

int
hie_audit_ref_inclusion_proof(const hie_audit_hash_t *leaves, uint64_t size, uint64_t index,
    hie_audit_proof_t *out)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(leaves != NULL || size == 0);
    memset(out, 0, sizeof(*out));
    if (size > HIE_AUDIT_TREE_SIZE_MAX || index >= size) {
        return HIE_EINVAL;
    }
    ref_path(leaves, index, size, out, 0);
    return 0;
}

int
hie_audit_ref_consistency_proof(const hie_audit_hash_t *leaves, uint64_t size1, uint64_t size2,
    hie_audit_proof_t *out)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(leaves != NULL || size2 == 0);
    memset(out, 0, sizeof(*out));
    if (size2 > HIE_AUDIT_TREE_SIZE_MAX || size1 > size2) {
        return HIE_EINVAL;
    }
    if (size1 == 0 || size1 == size2) {
        return 0; /* RFC 9162 defines PROOF for 0 < m < n; the edges have empty proofs */
    }
    ref_subproof(leaves, size1, size2, true, out, 0);
    return 0;
}

/* ---- verification (RFC 9162 2.1.3.2 and 2.1.4.2) ----------------------------------------- */

/* "right-shift both fn and sn equally until either LSB(fn) is set or fn is 0"; at most 64. */
static void
shift_while_even(uint64_t *fn, uint64_t *sn)
{
    for (unsigned i = 0; i < 64 && (*fn & 1u) == 0 && *fn != 0; i++) {
        *fn >>= 1;
        *sn >>= 1;
    }
}

int
hie_audit_inclusion_verify(uint64_t index, uint64_t size, const hie_audit_hash_t *leaf,
    const hie_audit_proof_t *proof, const hie_audit_hash_t *root)
{
    HIE_ASSERT(leaf != NULL && root != NULL);
    HIE_ASSERT(proof != NULL);
    if (size > HIE_AUDIT_TREE_SIZE_MAX || proof->count > HIE_AUDIT_PROOF_HASHES_MAX) {
        return HIE_EINVAL;
    }
    if (index >= size) { /* 1. */
        return HIE_EINVAL;
    }
    uint64_t fn = index, sn = size - 1; /* 2. */
    hie_audit_hash_t r = *leaf;         /* 3. */
    for (size_t i = 0; i < proof->count; i++) { /* 4. */
        const hie_audit_hash_t *p = &proof->hashes[i];
        if (sn == 0) { /* 4a. */
            return HIE_ECORRUPT;
        }
        if ((fn & 1u) != 0 || fn == sn) { /* 4b. */
            hie_audit_node_hash(p, &r, &r);
            if ((fn & 1u) == 0) {
                shift_while_even(&fn, &sn);
            }
        } else {
            hie_audit_node_hash(&r, p, &r);
        }
        fn >>= 1; /* 4c. */
        sn >>= 1;
    }
    if (sn != 0 || !hie_audit__hash_eq(&r, root)) { /* 5. */
        return HIE_ECORRUPT;
    }
    return 0;
}

/* The edges RFC 9162 leaves open (size1 == size2, size1 == 0); see the header. */
static int
consistency_edges(uint64_t size1, uint64_t size2, const hie_audit_hash_t *root1,
    const hie_audit_hash_t *root2, const hie_audit_proof_t *proof)
{
    hie_audit_hash_t empty;
    hie_audit_empty_root(&empty);
    if (proof->count != 0) {
        return HIE_ECORRUPT;
    }
    if (size1 == 0 && !hie_audit__hash_eq(root1, &empty)) {
        return HIE_ECORRUPT;
    }
    if (size1 == size2 && !hie_audit__hash_eq(root1, root2)) {
        return HIE_ECORRUPT;
    }
    return 0;
}

int
hie_audit_consistency_verify(uint64_t size1, uint64_t size2, const hie_audit_hash_t *root1,
    const hie_audit_hash_t *root2, const hie_audit_proof_t *proof)
{
    HIE_ASSERT(root1 != NULL && root2 != NULL);
    HIE_ASSERT(proof != NULL);
    if (size2 > HIE_AUDIT_TREE_SIZE_MAX || size1 > size2 ||
        proof->count > HIE_AUDIT_PROOF_HASHES_MAX) {
        return HIE_EINVAL;
    }
    if (size1 == 0 || size1 == size2) {
        return consistency_edges(size1, size2, root1, root2, proof);
    }
    if (proof->count == 0) { /* 1. */
        return HIE_ECORRUPT;
    }
    /* 2. If size1 is a power of two, root1 is prepended to the path: start from it, and use
     * every proof hash in step 6; otherwise start from the proof's first hash (5.). */
    bool pow2 = (size1 & (size1 - 1)) == 0;
    size_t next = pow2 ? 0 : 1;
    hie_audit_hash_t fr = pow2 ? *root1 : proof->hashes[0]; /* 5. */
    hie_audit_hash_t sr = fr;
    uint64_t fn = size1 - 1, sn = size2 - 1; /* 3. */
    for (unsigned i = 0; i < 64 && (fn & 1u) != 0; i++) { /* 4. */
        fn >>= 1;
        sn >>= 1;
    }
    for (size_t i = next; i < proof->count; i++) { /* 6. */
        const hie_audit_hash_t *c = &proof->hashes[i];
        if (sn == 0) { /* 6a. */
            return HIE_ECORRUPT;
        }
        if ((fn & 1u) != 0 || fn == sn) { /* 6b. */
            hie_audit_node_hash(c, &fr, &fr);
            hie_audit_node_hash(c, &sr, &sr);
            if ((fn & 1u) == 0) {
                shift_while_even(&fn, &sn);
            }
        } else {
            hie_audit_node_hash(&sr, c, &sr);
        }
        fn >>= 1; /* 6c. */
        sn >>= 1;
    }
    /* 7. */
    if (sn != 0 || !hie_audit__hash_eq(&fr, root1) || !hie_audit__hash_eq(&sr, root2)) {
        return HIE_ECORRUPT;
    }
    return 0;
}
