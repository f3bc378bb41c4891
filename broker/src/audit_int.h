/*
 * audit_int.h - declarations shared by the audit log's sources (merkle.c, audit_tree.c,
 * checkpoint.c) and by nothing else (style.md 3.1: a PRIVATE include directory).
 */
#ifndef HIE_AUDIT_INT_H
#define HIE_AUDIT_INT_H

#include "hie/audit.h"

#include <string.h>

/* Tree levels: level k holds subtrees of 2^k leaves; a tree of at most 2^63 leaves has
 * subtrees up to level 63. */
#define HIE_AUDIT__LEVELS 64u
_Static_assert(HIE_AUDIT_TREE_SIZE_MAX == (1ull << (HIE_AUDIT__LEVELS - 1u)),
    "the size limit matches the levels");

/* The largest power of two strictly below n (RFC 6962's split point k); n >= 2. */
static inline uint64_t
hie_audit__split(uint64_t n)
{
    HIE_ASSERT(n >= 2);
    return 1ull << (63 - __builtin_clzll(n - 1));
}

static inline bool
hie_audit__hash_eq(const hie_audit_hash_t *a, const hie_audit_hash_t *b)
{
    return memcmp(a->bytes, b->bytes, HIE_AUDIT_HASH_BYTES) == 0;
}

/* Reverses proof->hashes[0..count): proofs are collected root side first, and RFC 9162 lists
 * them leaf side first. */
static inline void
hie_audit__proof_reverse(hie_audit_proof_t *proof)
{
    HIE_ASSERT(proof->count <= HIE_AUDIT_PROOF_HASHES_MAX);
    for (size_t i = 0, j = proof->count; i + 1 < j; i++, j--) {
        hie_audit_hash_t tmp = proof->hashes[i];
        proof->hashes[i] = proof->hashes[j - 1];
        proof->hashes[j - 1] = tmp;
    }
}

#endif
