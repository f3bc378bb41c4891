/*
 * test_members.c - the writer's in-memory EUID members (mpi/src/members.c): against a plain
 * reference under random adds and deletes, the members come back sorted as LMDB's dupsort
 * keeps them; adding a member twice is one member; an EUID not in the "E" + 12 digits form
 * has no members, and adding one (or one numbered past 2^28) turns the table off (LMDB answers
 * from then on).
 */
#include "../../../mpi/src/store_int.h"

#include "../test_util.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <inttypes.h>
#include <string.h>

#define EUIDS 300u
#define HASHES 40u

static void
euid_of(unsigned i, char out[HIE_MPI_EUID_BYTES])
{
    snprintf(out, HIE_MPI_EUID_BYTES, "E%012u", i * 7u + 1u); /* sparse, past the first table */
}

static void
hash_of(unsigned i, uint8_t h[HIE_MPI_REC_HASH_BYTES])
{
    memset(h, 0xa5, HIE_MPI_REC_HASH_BYTES);
    h[0] = (uint8_t)(i * 151u); /* not in index order */
    h[1] = (uint8_t)(i >> 8);
}

static int
cmp_hash(const void *a, const void *b)
{
    return memcmp(a, b, HIE_MPI_REC_HASH_BYTES);
}

/* The reference's members of euid e, sorted, into out; returns how many. */
static size_t
ref_members(bool ref[EUIDS][HASHES], unsigned e, uint8_t *out)
{
    size_t n = 0;
    for (unsigned h = 0; h < HASHES; h++) {
        if (ref[e][h]) {
            hash_of(h, out + n * HIE_MPI_REC_HASH_BYTES);
            n++;
        }
    }
    qsort(out, n, HIE_MPI_REC_HASH_BYTES, cmp_hash);
    return n;
}

Test(mpi_members, random_adds_and_deletes_match_a_sorted_reference)
{
    static bool ref[EUIDS][HASHES];
    memset(ref, 0, sizeof(ref));
    store_members_t *m = NULL;
    cr_assert_eq(store__members_create(&m), 0);
    uint64_t seed = test_seed(0x4d454d4245525301ull);
    test_rng_t r;
    test_rng_init(&r, seed);
    for (unsigned step = 0; step < 60000; step++) {
        unsigned e = test_rng_below(&r, EUIDS), h = test_rng_below(&r, HASHES);
        char euid[HIE_MPI_EUID_BYTES];
        uint8_t hash[HIE_MPI_REC_HASH_BYTES];
        euid_of(e, euid);
        hash_of(h, hash);
        if (test_rng_below(&r, 3) != 0) {
            store__members_add(m, euid, hash);
            ref[e][h] = true;
        } else {
            store__members_del(m, euid, hash);
            ref[e][h] = false;
        }
    }
    uint8_t want[HASHES * HIE_MPI_REC_HASH_BYTES];
    for (unsigned e = 0; e < EUIDS; e++) {
        char euid[HIE_MPI_EUID_BYTES];
        euid_of(e, euid);
        const uint8_t *got = NULL;
        size_t n = 0;
        cr_assert(store__members_peek(m, euid, &got, &n));
        size_t wn = ref_members(ref, e, want);
        cr_assert_eq(n, wn, "seed %" PRIx64 " euid %s: %zu members, want %zu", seed, euid, n, wn);
        cr_assert(n == 0 || memcmp(got, want, n * HIE_MPI_REC_HASH_BYTES) == 0,
            "seed %" PRIx64 " euid %s: members out of order", seed, euid);
    }
    store__members_destroy(&m);
    cr_assert_null(m);
}

/* A new table holding record i (its hash into h) as a member of euid. */
static store_members_t *
table_with_one(const char *euid, unsigned i, uint8_t h[HIE_MPI_REC_HASH_BYTES])
{
    store_members_t *m = NULL;
    cr_assert_eq(store__members_create(&m), 0);
    hash_of(i, h);
    store__members_add(m, euid, h);
    return m;
}

Test(mpi_members, a_second_add_is_one_member_and_unknown_euids_have_none)
{
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    store_members_t *m = table_with_one("E000000000005", 3, h);
    store__members_add(m, "E000000000005", h);
    const uint8_t *got = NULL;
    size_t n = 0;
    cr_assert(store__members_peek(m, "E000000000005", &got, &n));
    cr_assert_eq(n, 1);
    cr_assert(store__members_peek(m, "E000000999999", &got, &n)); /* past the table */
    cr_assert_eq(n, 0);
    cr_assert(store__members_peek(m, "patient-5", &got, &n)); /* never added: none */
    cr_assert_eq(n, 0);
    store__members_del(m, "E000000000005", h);
    cr_assert(store__members_peek(m, "E000000000005", &got, &n));
    cr_assert_eq(n, 0);
    cr_assert(store__members_on(m));
    store__members_destroy(&m);
}

Test(mpi_members, adding_an_euid_of_another_form_turns_the_table_off)
{
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    store_members_t *m = table_with_one("E000000000001", 1, h);
    store__members_add(m, "E00000000001x", h);
    cr_assert_not(store__members_on(m));
    const uint8_t *got = NULL;
    size_t n = 0;
    cr_assert_not(store__members_peek(m, "E000000000001", &got, &n)); /* LMDB answers now */
    store__members_add(m, "E000000000002", h); /* stays off */
    cr_assert_not(store__members_on(m));
    store__members_destroy(&m);
    m = table_with_one("E999999999999", 1, h); /* a number past any table it would build */
    cr_assert_not(store__members_on(m));
    store__members_destroy(&m);
}
