/*
 * test_blocks.c - the MPI's in-memory blocking index (mpi/src/blocks.c): records of a block
 * come back in record-hash order whatever order they were added in (so every node, and a node
 * after a restart, takes the same candidates), a record is listed once per block, removal,
 * self-exclusion, and a block over the cap returns nothing and says so.
 */
#include "../../../mpi/src/store_int.h"

#include "../test_util.h"

#include <criterion/criterion.h>
#include <string.h>

static void
hash_of(unsigned i, uint8_t h[HIE_MPI_REC_HASH_BYTES])
{
    memset(h, 0, HIE_MPI_REC_HASH_BYTES);
    h[0] = (uint8_t)(i * 37u);      /* not in insertion order */
    h[1] = (uint8_t)i;
    h[15] = (uint8_t)(i >> 8);
}

static size_t
get(store_blocks_t *b, uint64_t key, const uint8_t *self, uint8_t *out, bool *capped)
{
    return store__blocks_get(b, key, self, false, out, 64, capped);
}

Test(mpi_blocks, sorted_whatever_the_insertion_order)
{
    uint64_t seed = test_seed(0x424c4f434b530001ull);
    test_rng_t r;
    test_rng_init(&r, seed);
    store_blocks_t *a = NULL, *b = NULL;
    cr_assert_eq(store__blocks_create(&a), 0);
    cr_assert_eq(store__blocks_create(&b), 0);
    unsigned order[50];
    for (unsigned i = 0; i < 50; i++) {
        order[i] = i;
    }
    for (unsigned i = 49; i > 0; i--) { /* B gets the same records shuffled */
        unsigned j = test_rng_below(&r, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    uint64_t keys[2] = {7, 7}; /* one record with two keys that hash alike: listed once */
    for (unsigned i = 0; i < 50; i++) {
        uint8_t h[HIE_MPI_REC_HASH_BYTES];
        hash_of(i, h);
        cr_assert_eq(store__blocks_change(a, keys, 2, h, true), 0);
        hash_of(order[i], h);
        cr_assert_eq(store__blocks_change(b, keys, 2, h, true), 0);
    }
    static uint8_t oa[64 * HIE_MPI_REC_HASH_BYTES], ob[64 * HIE_MPI_REC_HASH_BYTES];
    bool capped = true;
    size_t na = get(a, 7, NULL, oa, &capped);
    cr_assert_eq(na, 50u);
    cr_assert_not(capped);
    cr_assert_eq(get(b, 7, NULL, ob, &capped), 50u);
    cr_assert_eq(memcmp(oa, ob, na * HIE_MPI_REC_HASH_BYTES), 0, "seed %#lx", seed);
    for (size_t i = 1; i < na; i++) {
        cr_assert_lt(memcmp(oa + (i - 1) * HIE_MPI_REC_HASH_BYTES,
            oa + i * HIE_MPI_REC_HASH_BYTES, HIE_MPI_REC_HASH_BYTES), 0);
    }
    store__blocks_destroy(&a);
    store__blocks_destroy(&b);
    cr_assert_null(a);
}

Test(mpi_blocks, remove_self_cap_and_unknown_keys)
{
    store_blocks_t *b = NULL;
    cr_assert_eq(store__blocks_create(&b), 0);
    static uint8_t out[64 * HIE_MPI_REC_HASH_BYTES];
    uint8_t h[HIE_MPI_REC_HASH_BYTES], self[HIE_MPI_REC_HASH_BYTES];
    bool capped = false;
    for (unsigned i = 0; i < 65; i++) { /* key 1: one record over the cap */
        uint64_t k[3] = {1, 0, i < 3 ? 2u : 0u};
        hash_of(i, h);
        cr_assert_eq(store__blocks_change(b, k, 3, h, true), 0);
    }
    cr_assert_eq(get(b, 1, NULL, out, &capped), 0u, "a block over the cap is skipped");
    cr_assert(capped);
    cr_assert_eq(get(b, 2, NULL, out, &capped), 3u);
    cr_assert_not(capped);
    hash_of(1, self);
    cr_assert_eq(get(b, 2, self, out, &capped), 2u, "self is not its own candidate");
    uint64_t k2 = 2;
    cr_assert_eq(store__blocks_change(b, &k2, 1, self, false), 0);
    cr_assert_eq(get(b, 2, NULL, out, &capped), 2u);
    cr_assert_eq(store__blocks_change(b, &k2, 1, self, false), 0, "removing twice is harmless");
    uint64_t k1 = 1;
    hash_of(0, h);
    cr_assert_eq(store__blocks_change(b, &k1, 1, h, false), 0);
    cr_assert_eq(get(b, 1, NULL, out, &capped), 64u, "back under the cap");
    cr_assert_eq(get(b, 99, NULL, out, &capped), 0u);
    cr_assert_eq(get(b, 0, NULL, out, &capped), 0u, "key 0 means no key");
    store__blocks_destroy(&b);
}

Test(mpi_blocks, grows_past_its_initial_table)
{
    store_blocks_t *b = NULL;
    cr_assert_eq(store__blocks_create(&b), 0);
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    for (unsigned i = 0; i < 20000; i++) {
        uint64_t k = 1000u + i;
        hash_of(i, h);
        cr_assert_eq(store__blocks_change(b, &k, 1, h, true), 0);
    }
    static uint8_t out[64 * HIE_MPI_REC_HASH_BYTES];
    bool capped = false;
    for (unsigned i = 0; i < 20000; i += 997) {
        cr_assert_eq(get(b, 1000u + i, NULL, out, &capped), 1u, "key %u", 1000u + i);
        hash_of(i, h);
        cr_assert_eq(memcmp(out, h, sizeof(h)), 0);
    }
    store__blocks_destroy(&b);
}

/* A block past 64 records is kept unsorted (no reader sees it); brought back to 64 by
 * removals it reads exactly as a block built in order: two indexes fed the same 300 records in
 * different orders, then stripped of the same 236 in different orders, agree. */
Test(mpi_blocks, a_large_block_shrunk_back_reads_as_if_built_in_order)
{
    uint64_t seed = test_seed(0x424c4f434b530002ull);
    test_rng_t r;
    test_rng_init(&r, seed);
    store_blocks_t *a = NULL, *b = NULL;
    cr_assert_eq(store__blocks_create(&a), 0);
    cr_assert_eq(store__blocks_create(&b), 0);
    unsigned order[300];
    for (unsigned i = 0; i < 300; i++) {
        order[i] = i;
    }
    for (unsigned i = 299; i > 0; i--) {
        unsigned j = test_rng_below(&r, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    uint64_t key = 5;
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    for (unsigned i = 0; i < 300; i++) {
        hash_of(i, h);
        cr_assert_eq(store__blocks_change(a, &key, 1, h, true), 0);
        hash_of(order[i], h);
        cr_assert_eq(store__blocks_change(b, &key, 1, h, true), 0);
    }
    static uint8_t oa[64 * HIE_MPI_REC_HASH_BYTES], ob[64 * HIE_MPI_REC_HASH_BYTES];
    bool capped = false;
    cr_assert_eq(get(a, key, NULL, oa, &capped), 0u);
    cr_assert(capped);
    for (unsigned i = 0; i < 300; i++) { /* A drops 64.., B the same records shuffled */
        if (i >= 64) {
            hash_of(i, h);
            cr_assert_eq(store__blocks_change(a, &key, 1, h, false), 0);
        }
        if (order[i] >= 64) {
            hash_of(order[i], h);
            cr_assert_eq(store__blocks_change(b, &key, 1, h, false), 0);
        }
    }
    hash_of(299, h);
    cr_assert_eq(store__blocks_change(a, &key, 1, h, false), 0, "gone already: harmless");
    cr_assert_eq(get(a, key, NULL, oa, &capped), 64u);
    cr_assert_not(capped);
    cr_assert_eq(get(b, key, NULL, ob, &capped), 64u);
    cr_assert_eq(memcmp(oa, ob, sizeof(oa)), 0, "seed %#lx", seed);
    for (size_t i = 1; i < 64; i++) {
        cr_assert_lt(memcmp(oa + (i - 1) * HIE_MPI_REC_HASH_BYTES,
            oa + i * HIE_MPI_REC_HASH_BYTES, HIE_MPI_REC_HASH_BYTES), 0);
    }
    hash_of(0, h); /* and sorted inserts go on from there */
    cr_assert_eq(store__blocks_change(a, &key, 1, h, false), 0);
    cr_assert_eq(store__blocks_change(a, &key, 1, h, true), 0);
    cr_assert_eq(get(a, key, NULL, oa, &capped), 64u);
    cr_assert_eq(memcmp(oa, ob, sizeof(oa)), 0);
    store__blocks_destroy(&a);
    store__blocks_destroy(&b);
}

static int
cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* The candidates' merge of the blocks' sorted runs gives what sorting them all and dropping
 * repeats gives: random runs (some empty, hashes shared between runs, first bytes alike). */
Test(mpi_blocks, merging_sorted_runs_equals_sort_and_dedup)
{
    static uint8_t a[HIE_MPI_BLOCK_KEYS * 40][16], tmp[HIE_MPI_BLOCK_KEYS * 40][16],
        ref[HIE_MPI_BLOCK_KEYS * 40][16];
    uint64_t seed = 0x6d657267;
    for (unsigned round = 0; round < 500; round++) {
        size_t ends[HIE_MPI_BLOCK_KEYS], total = 0;
        for (unsigned r = 0; r < HIE_MPI_BLOCK_KEYS; r++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t len = (seed >> 33) % 4u == 0 ? 0 : (seed >> 40) % 40u;
            for (size_t i = 0; i < len; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                memset(a[total + i], 0, 16);
                a[total + i][0] = (uint8_t)((seed >> 33) % 3u); /* shared first bytes */
                a[total + i][15] = (uint8_t)((seed >> 41) % 64u); /* repeats across runs */
            }
            qsort(a[total], len, 16, cmp16);
            size_t u = 0; /* a block holds a record once */
            for (size_t i = 0; i < len; i++) {
                if (u == 0 || memcmp(a[total + u - 1], a[total + i], 16) != 0) {
                    memmove(a[total + u++], a[total + i], 16);
                }
            }
            total += u;
            ends[r] = total;
        }
        memcpy(ref, a, total * 16);
        qsort(ref, total, 16, cmp16);
        size_t want = 0;
        for (size_t i = 0; i < total; i++) {
            if (want == 0 || memcmp(ref[want - 1], ref[i], 16) != 0) {
                memmove(ref[want++], ref[i], 16);
            }
        }
        size_t n = 0;
        uint8_t *got = store__hashes_merge(&a[0][0], &tmp[0][0], total, ends, &n);
        cr_assert_eq(n, want, "round %u", round);
        cr_assert_eq(memcmp(got, ref, n * 16), 0, "round %u", round);
    }
}

/* One record whose keys keep changing (a member updating one MRN's names again and again):
 * the emptied blocks are dropped when the table fills, so the index stays the size of what it
 * holds, and what it holds is still found. */
Test(mpi_blocks, keys_a_record_no_longer_has_do_not_pile_up)
{
    store_blocks_t *b = NULL;
    cr_assert_eq(store__blocks_create(&b), 0);
    uint8_t keep[HIE_MPI_REC_HASH_BYTES], h[HIE_MPI_REC_HASH_BYTES];
    hash_of(1, keep);
    hash_of(2, h);
    uint64_t kept = 424242;
    cr_assert_eq(store__blocks_change(b, &kept, 1, keep, true), 0);
    int64_t before = hie_mem_live_bytes();
    for (uint64_t k = 1; k <= 100000; k++) {
        cr_assert_eq(store__blocks_change(b, &k, 1, h, true), 0);
        cr_assert_eq(store__blocks_change(b, &k, 1, h, false), 0);
    }
    int64_t grown = hie_mem_live_bytes() - before;
    cr_assert_lt(grown, 512 * 1024, "the index grew %lld bytes for one record",
        (long long)grown);
    static uint8_t out[64 * HIE_MPI_REC_HASH_BYTES];
    bool capped = false;
    cr_assert_eq(store__blocks_get(b, kept, NULL, false, out, 64, &capped), 1u);
    cr_assert_eq(memcmp(out, keep, HIE_MPI_REC_HASH_BYTES), 0);
    uint64_t k = 99999;
    cr_assert_eq(store__blocks_get(b, k, NULL, false, out, 64, &capped), 0u);
    store__blocks_destroy(&b);
}

/* A block of 20,000 records (a value shared by that many: a member feeding alike records) is
 * a hash set: its records come and go in any order, removing one not there changes nothing,
 * and back at 64 it reads as the sorted 64 left. Its removals scanned it whole (a member's
 * alike records made every update of one scan 18 such blocks on the log thread). */
Test(mpi_blocks, a_very_large_block_takes_records_in_and_out_in_any_order)
{
    enum { N = 20000, KEEP = 64 };
    uint64_t seed = test_seed(0x424c4f434b530003ull);
    test_rng_t r;
    test_rng_init(&r, seed);
    static unsigned order[N];
    for (unsigned i = 0; i < N; i++) {
        order[i] = i;
    }
    for (unsigned i = N - 1; i > 0; i--) {
        unsigned j = test_rng_below(&r, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    store_blocks_t *b = NULL;
    cr_assert_eq(store__blocks_create(&b), 0);
    uint64_t key = 7;
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    for (unsigned i = 0; i < N; i++) {
        hash_of(order[i], h);
        cr_assert_eq(store__blocks_change(b, &key, 1, h, true), 0);
    }
    for (unsigned i = 0; i < N; i += 2) { /* out and in again: the set keeps every one */
        hash_of(order[i], h);
        cr_assert_eq(store__blocks_change(b, &key, 1, h, false), 0);
        cr_assert_eq(store__blocks_change(b, &key, 1, h, false), 0, "not there: harmless");
        cr_assert_eq(store__blocks_change(b, &key, 1, h, true), 0);
    }
    for (unsigned i = 0; i < N; i++) { /* all but the records 0..63, in shuffled order */
        if (order[i] >= KEEP) {
            hash_of(order[i], h);
            cr_assert_eq(store__blocks_change(b, &key, 1, h, false), 0);
        }
    }
    static uint8_t got[KEEP * HIE_MPI_REC_HASH_BYTES], want[KEEP * HIE_MPI_REC_HASH_BYTES];
    bool capped = true;
    cr_assert_eq(get(b, key, NULL, got, &capped), (size_t)KEEP, "seed %#lx", seed);
    cr_assert_not(capped);
    for (unsigned i = 0; i < KEEP; i++) {
        hash_of(i, want + i * HIE_MPI_REC_HASH_BYTES);
    }
    qsort(want, KEEP, HIE_MPI_REC_HASH_BYTES, cmp16);
    cr_assert_eq(memcmp(got, want, sizeof(got)), 0, "the 64 left, sorted (seed %#lx)", seed);
    store__blocks_destroy(&b);
}
