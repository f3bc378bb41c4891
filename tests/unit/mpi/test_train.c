/*
 * test_train.c - the block index and Splink-style training (mpi/src/train.c) on a small
 * constructed data set with known duplicates: the candidate pairs are exactly the pairs that
 * share an uncapped key, the trained model separates matches from non-matches, training is
 * deterministic, the pair cap bounds memory, and every allocation failure is clean.
 */
#include "hie/mpi.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <criterion/logging.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define ORIGINALS 240u
#define DUPLICATES 120u
#define RECORDS (ORIGINALS + DUPLICATES)

static const uint8_t secret[16] = "test-train-key..";

static const char *const givens[] = {"anna", "bruno", "clara", "dmitri", "elena", "felix",
    "greta", "hugo", "ingrid", "jonas", "karin", "lukas", "marta", "nils", "olga", "pavel",
    "quentin", "rosa", "stefan", "tilda", "ulrich", "vera", "walter", "xenia", "yusuf", "zora"};
static const char *const syllables[] = {"bar", "cel", "dor", "fen", "gul", "har", "kis", "lom",
    "mer", "nov", "pol", "rin", "sut", "tav", "vek", "wil", "zan", "bro", "cha", "dre"};
static const char *const cities[] = {"arden", "brook", "calder", "dunmore", "elmstead"};

static uint64_t
rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void
original(hie_mpi_person_t *p, unsigned i, uint64_t *seed)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->given, sizeof(p->given), "%s", givens[rng(seed) % HIE_ARRAY_LEN(givens)]);
    snprintf(p->family, sizeof(p->family), "%s%s", syllables[i % 20], syllables[(i / 20) % 20]);
    p->dob = (uint32_t)((1930 + rng(seed) % 70) * 10000 + (1 + rng(seed) % 12) * 100 + 1 +
        rng(seed) % 28);
    snprintf(p->street, sizeof(p->street), "%u %s street", (unsigned)(1 + rng(seed) % 200),
        syllables[rng(seed) % 20]);
    snprintf(p->city, sizeof(p->city), "%s", cities[rng(seed) % HIE_ARRAY_LEN(cities)]);
    snprintf(p->postcode, sizeof(p->postcode), "%u", (unsigned)(2000 + rng(seed) % 3000));
    cr_assert_eq(hie_mpi_given_canonical(p->given, p->given_canon, sizeof(p->given_canon)), 0);
}

/* A corrupted copy, by kind: a typo in the given or the family name, a birth day one digit
 * off, or a new street and no postcode (a move). */
static void
duplicate(hie_mpi_person_t *d, const hie_mpi_person_t *o, unsigned kind, uint64_t *seed)
{
    *d = *o;
    if (kind < 2) {
        char *name = kind == 0 ? d->given : d->family;
        size_t at = 1 + rng(seed) % (strlen(name) - 1);
        name[at] = name[at] == 'x' ? 'y' : 'x';
    } else if (kind == 2) {
        d->dob = d->dob % 10 == 9 ? d->dob - 1 : d->dob + 1;
    } else {
        snprintf(d->street, sizeof(d->street), "%u elm road", (unsigned)(rng(seed) % 90));
        d->postcode[0] = '\0';
    }
    cr_assert_eq(hie_mpi_given_canonical(d->given, d->given_canon, sizeof(d->given_canon)), 0);
}

/* RECORDS persons: originals, then a duplicate of every second original. [out] truth. */
static void
dataset(hie_mpi_person_t *p, unsigned *truth)
{
    uint64_t seed = 2024;
    for (unsigned i = 0; i < ORIGINALS; i++) {
        original(&p[i], i, &seed);
        truth[i] = i;
    }
    for (unsigned k = 0; k < DUPLICATES; k++) {
        duplicate(&p[ORIGINALS + k], &p[2 * k], k % 4, &seed);
        truth[ORIGINALS + k] = 2 * k;
    }
    for (unsigned i = 0; i < RECORDS; i++) {
        hie_mpi_person_prepare(&p[i]);
    }
}

static void
init(void)
{
    cr_assert_geq(sodium_init(), 0);
}

TestSuite(mpi_train, .init = init);

/* How many of the RECORDS records have key b equal to key. */
static size_t
block_size(const uint64_t (*keys)[HIE_MPI_BLOCK_KEYS], unsigned b, uint64_t key)
{
    size_t n = 0;
    for (unsigned i = 0; i < RECORDS; i++) {
        n += keys[i][b] == key;
    }
    return n;
}

/* Records i and j share a key whose block is within its cap (hie_mpi_block_key_cap). */
static bool
share_key(const uint64_t (*keys)[HIE_MPI_BLOCK_KEYS], unsigned i, unsigned j, size_t cap)
{
    for (unsigned b = 0; b < HIE_MPI_BLOCK_KEYS; b++) {
        if (keys[i][b] != 0 && keys[i][b] == keys[j][b] &&
            block_size(keys, b, keys[i][b]) <= hie_mpi_block_key_cap(b, cap, RECORDS)) {
            return true;
        }
    }
    return false;
}

Test(mpi_train, block_pairs_are_exactly_the_pairs_sharing_a_key)
{
    static hie_mpi_person_t p[RECORDS];
    static unsigned truth[RECORDS];
    static uint64_t keys[RECORDS][HIE_MPI_BLOCK_KEYS];
    static uint32_t out[HIE_MPI_BLOCK_KEYS * HIE_MPI_BLOCK_SIZE_MAX];
    dataset(p, truth);
    for (unsigned i = 0; i < RECORDS; i++) {
        hie_mpi_block_keys(&p[i], secret, keys[i]);
    }
    hie_mpi_blocks_t *bl = NULL;
    cr_assert_eq(hie_mpi_blocks_create(&bl, p, RECORDS, secret, HIE_MPI_BLOCK_SIZE_MAX), 0);
    size_t pairs = 0;
    for (unsigned i = 0; i < RECORDS; i++) {
        size_t n = 0;
        hie_mpi_blocks_pairs(bl, i, UINT32_MAX, out, HIE_ARRAY_LEN(out), &n);
        size_t k = 0;
        for (unsigned j = i + 1; j < RECORDS; j++) { /* the brute force, in the same order */
            if (share_key(keys, i, j, HIE_MPI_BLOCK_SIZE_MAX)) {
                cr_assert_lt(k, n, "record %u misses candidate %u", i, j);
                cr_assert_eq(out[k], j);
                k++;
            }
        }
        cr_assert_eq(k, n, "record %u has extra candidates", i);
        pairs += n;
    }
    hie_mpi_blocks_stats_t st;
    hie_mpi_blocks_stats(bl, &st);
    cr_assert_eq(st.records, RECORDS);
    for (unsigned b = 0; b < HIE_MPI_BLOCK_KEYS; b++) {
        cr_assert(b >= HIE_MPI_BLOCK_BROAD_FIRST || st.key_capped[b] == 0, "key %u capped", b);
    }
    cr_assert_gt(st.key_capped[16], 0, "26 given names in 360 records: broad blocks over 16");
    cr_assert_gt(pairs, DUPLICATES);
    hie_mpi_blocks_destroy(&bl);
    cr_assert_null(bl);
    /* a cap of 2 leaves only the blocks of exactly two records */
    cr_assert_eq(hie_mpi_blocks_create(&bl, p, RECORDS, secret, 2), 0);
    hie_mpi_blocks_stats(bl, &st);
    cr_assert_gt(st.capped_blocks, 0);
    hie_mpi_blocks_destroy(&bl);
    cr_assert_eq(hie_mpi_blocks_create(&bl, p, RECORDS, secret, 0), HIE_EINVAL);
    cr_assert_null(bl);
}

static hie_mpi_model_t
trained(const hie_mpi_person_t *p, size_t count, size_t pairs_max, hie_mpi_train_stats_t *st)
{
    hie_mpi_model_t m;
    hie_mpi_train_opts_t opts;
    hie_mpi_model_default(&m);
    hie_mpi_train_opts_default(&opts);
    opts.u_samples = 20000;
    opts.seed = 7;
    opts.pairs_max = pairs_max;
    cr_assert_eq(hie_mpi_train(&m, p, count, secret, &opts, st), 0);
    return m;
}

Test(mpi_train, trained_model_separates_matches_and_is_deterministic)
{
    static hie_mpi_person_t p[RECORDS];
    static unsigned truth[RECORDS];
    dataset(p, truth);
    hie_mpi_train_stats_t st;
    hie_mpi_model_t m = trained(p, RECORDS, (size_t)1 << 20, &st);
    cr_log_info("pairs=%zu sessions=%zu+%zu rounds=%u lambda=%.3g", st.candidate_pairs,
        st.session_pairs[0], st.session_pairs[1], st.em_rounds, m.lambda);
    cr_assert_eq(st.records, RECORDS);
    cr_assert_eq(st.prior_pairs, st.candidate_pairs, "under the cap: every pair is used");
    cr_assert_eq(m.version, 1);
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        if (f == HIE_MPI_F_NATIONAL_ID || f == HIE_MPI_F_PHONE || f == HIE_MPI_F_EMAIL) {
            continue; /* not in the data set */
        }
        cr_assert_gt(m.m[f][1], m.u[f][1], "agreeing on %s is evidence of a match",
            hie_mpi_field_name((enum hie_mpi_field)f));
    }
    hie_mpi_blocks_t *bl = NULL;
    static uint32_t out[HIE_MPI_BLOCK_KEYS * 500];
    cr_assert_eq(hie_mpi_blocks_create(&bl, p, RECORDS, secret, 500), 0);
    size_t matches = 0, nonmatches = 0;
    for (unsigned i = 0; i < RECORDS; i++) {
        size_t n = 0;
        hie_mpi_blocks_pairs(bl, i, UINT32_MAX, out, HIE_ARRAY_LEN(out), &n);
        for (size_t k = 0; k < n; k++) {
            hie_mpi_vector_t v;
            hie_mpi_compare(&p[i], &p[out[k]], &v);
            double prob = hie_mpi_probability(&m, hie_mpi_weight(&m, NULL, &p[i], &v, NULL));
            bool match = truth[i] == truth[out[k]];
            matches += match;
            nonmatches += !match;
            if (match) {
                cr_assert_geq(prob, m.link_probability, "duplicate %u/%u p=%.3f", i, out[k], prob);
            } else {
                cr_assert_lt(prob, m.review_probability, "distinct %u/%u p=%.3f", i, out[k], prob);
            }
        }
    }
    cr_assert_eq(matches, DUPLICATES, "blocking finds every duplicate");
    cr_assert_gt(nonmatches, 0);
    hie_mpi_blocks_destroy(&bl);
    hie_mpi_train_stats_t again_st;
    hie_mpi_model_t again = trained(p, RECORDS, (size_t)1 << 20, &again_st);
    cr_assert_arr_eq(&m, &again, sizeof(m), "same persons and seed: same model");
    cr_assert_arr_eq(&st, &again_st, sizeof(st));
}

Test(mpi_train, pair_cap_bounds_the_vectors_and_stays_deterministic)
{
    static hie_mpi_person_t p[RECORDS];
    static unsigned truth[RECORDS];
    dataset(p, truth);
    hie_mpi_train_stats_t st, st2;
    hie_mpi_model_t m = trained(p, RECORDS, 100, &st);
    hie_mpi_model_t m2 = trained(p, RECORDS, 100, &st2);
    cr_assert_gt(st.candidate_pairs, 100);
    cr_assert_eq(st.prior_pairs, 100);
    cr_assert_arr_eq(&m, &m2, sizeof(m));
    cr_assert_gt(m.lambda, 0);
}

Test(mpi_train, refuses_too_few_records_no_pairs_and_bad_options)
{
    static hie_mpi_person_t p[RECORDS];
    static unsigned truth[RECORDS];
    dataset(p, truth);
    hie_mpi_model_t m, before;
    hie_mpi_model_default(&m);
    before = m;
    hie_mpi_train_stats_t st;
    cr_assert_eq(hie_mpi_train(&m, p, 1, secret, NULL, &st), HIE_EINVAL);
    hie_mpi_train_opts_t opts;
    hie_mpi_train_opts_default(&opts);
    opts.block_size_max = HIE_MPI_BLOCK_SIZE_MAX + 1;
    cr_assert_eq(hie_mpi_train(&m, p, RECORDS, secret, &opts, NULL), HIE_EINVAL);
    /* two people who share nothing: no candidate pair */
    hie_mpi_person_t two[2];
    memset(two, 0, sizeof(two));
    snprintf(two[0].given, sizeof(two[0].given), "anna");
    snprintf(two[0].family, sizeof(two[0].family), "barcel");
    two[0].dob = 19500101;
    snprintf(two[1].given, sizeof(two[1].given), "zora");
    snprintf(two[1].family, sizeof(two[1].family), "wildre");
    two[1].dob = 19991231;
    hie_mpi_person_prepare(&two[0]);
    hie_mpi_person_prepare(&two[1]);
    cr_assert_eq(hie_mpi_train(&m, two, 2, secret, NULL, &st), HIE_EINVAL);
    cr_assert_arr_eq(&m, &before, sizeof(m), "a failed training leaves the model alone");
}

/* A node that stops does not wait for a training: with its cancel flag set training gives up
 * at its next check, leaves the model alone and frees what it took. */
Test(mpi_train, a_cancel_flag_stops_it_and_leaves_the_model)
{
    static hie_mpi_person_t p[RECORDS];
    static unsigned truth[RECORDS];
    dataset(p, truth);
    hie_mpi_model_t m, before;
    hie_mpi_model_default(&m);
    before = m;
    hie_mpi_train_opts_t opts;
    hie_mpi_train_opts_default(&opts);
    opts.u_samples = 2000;
    _Atomic bool stop = true;
    opts.cancel = &stop;
    int64_t live = hie_mem_live_bytes();
    cr_assert_eq(hie_mpi_train(&m, p, RECORDS, secret, &opts, NULL), HIE_EUNAVAIL);
    cr_assert_arr_eq(&m, &before, sizeof(m), "a cancelled training leaves the model alone");
    cr_assert_eq(hie_mem_live_bytes(), live, "nothing kept");
    atomic_store(&stop, false);
    cr_assert_eq(hie_mpi_train(&m, p, RECORDS, secret, &opts, NULL), 0, "not set: it trains");
    cr_assert_eq(m.version, 1);
}

Test(mpi_train, unprepared_person_aborts, .signal = SIGABRT)
{
    static hie_mpi_person_t p[RECORDS];
    static unsigned truth[RECORDS];
    dataset(p, truth);
    p[5].prepared = 0;
    hie_mpi_blocks_t *bl = NULL;
    int rc = hie_mpi_blocks_create(&bl, p, RECORDS, secret, 500);
    cr_assert_fail("create returned %d instead of aborting", rc);
}

Test(mpi_train, survives_each_allocation_failure)
{
    static hie_mpi_person_t p[RECORDS];
    static unsigned truth[RECORDS];
    dataset(p, truth);
    hie_mpi_train_opts_t opts;
    hie_mpi_train_opts_default(&opts);
    opts.u_samples = 2000;
    int64_t live = hie_mem_live_bytes();
    for (uint64_t fail_at = 1; fail_at < 1000; fail_at++) {
        hie_mpi_model_t m;
        hie_mpi_model_default(&m);
        hie_mem_fail_after(fail_at);
        int rc = hie_mpi_train(&m, p, RECORDS, secret, &opts, NULL);
        hie_mem_fail_after(0);
        cr_assert_eq(hie_mem_live_bytes(), live, "leak after failure %lu", (unsigned long)fail_at);
        if (rc == 0) {
            cr_assert_eq(m.version, 1);
            return;
        }
        cr_assert_eq(rc, HIE_ENOMEM);
        cr_assert_eq(m.version, 0, "a failed training leaves the model alone");
    }
    cr_assert_fail("training never succeeded");
}
