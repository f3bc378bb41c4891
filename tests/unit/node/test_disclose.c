/*
 * test_disclose.c - unit tests for node/src/disclose.c: the worker's block of random bytes
 * behind the audit records' salts and nonces (hie_node__rand). The consent decisions and the
 * audit records themselves are exercised through the state machine (test_sm.c,
 * test_audit_state.c) and the integration tests.
 */
#include "node_int.h"

#include <criterion/criterion.h>

#include <string.h>

#define DRAW 40u /* one subject: salt and nonce */

static bool
all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

Test(node_disclose, random_bytes_come_once_each_and_are_wiped_from_the_block)
{
    static node_rand_t r; /* zeroed: empty, the first draw fills it */
    static uint8_t seen[2 * NODE_RAND_BYTES / DRAW + 2][DRAW];
    size_t draws = 2 * NODE_RAND_BYTES / DRAW + 2; /* crosses two refills */
    for (size_t i = 0; i < draws; i++) {
        hie_node__rand(&r, seen[i], DRAW);
        cr_assert(!all_zero(seen[i], DRAW), "draw %zu is random", i);
        cr_assert_leq(r.fresh, NODE_RAND_BYTES);
        cr_assert(all_zero(r.buf, NODE_RAND_BYTES - r.fresh), "handed-out bytes are wiped");
        for (size_t j = 0; j < i; j++) {
            cr_assert_neq(memcmp(seen[i], seen[j], DRAW), 0, "draws %zu and %zu differ", j, i);
        }
    }
}

Test(node_disclose, random_bytes_without_a_block_or_larger_than_one_come_from_the_kernel)
{
    static node_rand_t r;
    static uint8_t big[NODE_RAND_BYTES + 1], small[DRAW];
    hie_node__rand(NULL, small, sizeof(small));
    cr_assert(!all_zero(small, sizeof(small)));
    hie_node__rand(&r, big, sizeof(big));
    cr_assert(!all_zero(big, sizeof(big)));
    cr_assert_eq(r.fresh, 0, "the block was not touched");
}
