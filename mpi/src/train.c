/*
 * train.c - candidate pairs of an in-memory batch of records (every record's blocking keys,
 * radix-sorted into blocks) and the Splink-style training of a Fellegi-Sunter model on them:
 * u from random pairs, m by EM once per blocking key leaving that key's fields out, then the
 * prior by EM over all candidate pairs (hie/mpi_match.h).
 *
 * Invariants: the block index lists the entries of every key in ascending record order (the
 * sort is stable and entries go in by record), so the records after an entry in its block are
 * exactly the later records sharing that key; a capped block has end 0 and pairs nothing.
 * Training reads nothing but its arguments: same persons, secret and options, same model.
 * Memory is bounded: the index (about 300 bytes a record) and at most opts->pairs_max vectors
 * per EM session; each record's candidates are gathered in one scratch buffer of
 * HIE_MPI_BLOCK_KEYS x block_size_max entries.
 *
 * Callers: hiectl mpi train (through the node), bench/bench_mpi_accuracy, bench_mpi_scale.
 */
#include "hie/mpi.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define BLOCKS_MAGIC 0x424c4b53u /* "BLKS"; destroy poisons it */
#define REC_MASK (HIE_MPI_BLOCK_RECORDS_MAX - 1u)
#define KEY_SHIFT 27u
#define NONE UINT32_MAX
#define RADIX_BITS 16u
#define RADIX_BUCKETS (1u << RADIX_BITS)

_Static_assert(HIE_MPI_BLOCK_RECORDS_MAX == (1u << KEY_SHIFT), "record bits below the key's");
_Static_assert(HIE_MPI_BLOCK_KEYS * HIE_MPI_BLOCK_SIZE_MAX < NONE, "scratch count fits");

/* The m sessions, each on the pairs of one blocking key, leaving out the fields its pairs agree
 * on by construction. Each field's m comes from the session named for it in field_session,
 * one whose key says nothing about that field: a key on the family name's initial gives pairs
 * that rarely disagree on the family name, so a family-name m trained on them calls
 * disagreement near impossible (fake_1000: -6.2 bits where its labels say -4.0).
 *   0: birth date + family initial (key 5): given name, addresses, contacts, identifiers;
 *   1: birth date + given initial (key 1): family name;
 *   2: the two names' NYSIIS codes (key 3): birth date.
 * Sessions 0 and 1 still let EM see both names, the initial's bias and all: without the family
 * name, EM in session 0 took the generator's moved duplicates (street, city and postcode all
 * new) for non-matches, and a move cost 18 bits instead of 6 (10,000 generated persons without
 * the national id: F1 0.86, against 0.96 before the three sessions and 0.97 now). */
#define SESSION_COUNT 3u
static const struct {
    unsigned key;
    uint32_t exclude;
} sessions[SESSION_COUNT] = {
    {5u, 1u << HIE_MPI_F_DOB},
    {1u, 1u << HIE_MPI_F_DOB},
    {3u, (1u << HIE_MPI_F_GIVEN) | (1u << HIE_MPI_F_FAMILY)},
};
static const uint8_t field_session[HIE_MPI_FIELD_COUNT] = {
    [HIE_MPI_F_GIVEN] = 0, [HIE_MPI_F_FAMILY] = 1, [HIE_MPI_F_DOB] = 2,
    [HIE_MPI_F_STREET] = 0, [HIE_MPI_F_CITY] = 0, [HIE_MPI_F_POSTCODE] = 0,
    [HIE_MPI_F_PHONE] = 0, [HIE_MPI_F_EMAIL] = 0, [HIE_MPI_F_NATIONAL_ID] = 0,
};

/* One blocking key of one record. rec: the record, and the key's number in the top 5 bits.
 * end: one past the last entry of the block, 0 when the block is capped. */
struct entry {
    uint64_t key;
    uint32_t rec;
    uint32_t end;
};

struct hie_mpi_blocks {
    uint32_t magic;
    struct entry *e;   /* sorted by key, then record */
    size_t ne;
    uint32_t *pos;     /* [record * HIE_MPI_BLOCK_KEYS + key number]: its entry, or NONE */
    size_t count;      /* records */
    size_t block_size_max;
    hie_mpi_blocks_stats_t stats;
};

/* ---- the block index -------------------------------------------------------------------- */

/* Stable LSD radix sort of e by key, 16 bits a pass; four passes leave the result in e.
 * Returns 0 or HIE_ENOMEM. */
static int
entries_sort(struct entry *e, size_t n)
{
    struct entry *tmp = hie_mem_alloc((n ? n : 1) * sizeof(*tmp));
    size_t *bucket = hie_mem_alloc(RADIX_BUCKETS * sizeof(*bucket));
    int rc = 0;
    if (tmp == NULL || bucket == NULL) {
        rc = HIE_ENOMEM;
        goto out;
    }
    struct entry *src = e, *dst = tmp;
    for (unsigned shift = 0; shift < 64; shift += RADIX_BITS) {
        memset(bucket, 0, RADIX_BUCKETS * sizeof(*bucket));
        for (size_t q = 0; q < n; q++) {
            bucket[(src[q].key >> shift) & (RADIX_BUCKETS - 1)]++;
        }
        size_t sum = 0;
        for (size_t d = 0; d < RADIX_BUCKETS; d++) {
            size_t c = bucket[d];
            bucket[d] = sum;
            sum += c;
        }
        HIE_ASSERT(sum == n);
        for (size_t q = 0; q < n; q++) {
            dst[bucket[(src[q].key >> shift) & (RADIX_BUCKETS - 1)]++] = src[q];
        }
        struct entry *x = src;
        src = dst;
        dst = x;
    }
    HIE_ASSERT(src == e); /* an even number of passes */
out:
    hie_mem_free(tmp, (n ? n : 1) * sizeof(*tmp));
    hie_mem_free(bucket, RADIX_BUCKETS * sizeof(*bucket));
    return rc;
}

/* Fills bl->e with every non-zero key of every record, in record order. */
static void
blocks_fill(hie_mpi_blocks_t *bl, const hie_mpi_person_t *persons, const uint8_t secret[16])
{
    HIE_ASSERT(bl->ne == 0);
    for (size_t i = 0; i < bl->count; i++) {
        uint64_t keys[HIE_MPI_BLOCK_KEYS];
        hie_mpi_block_keys(&persons[i], secret, keys);
        for (uint32_t b = 0; b < HIE_MPI_BLOCK_KEYS; b++) {
            if (keys[b] != 0) {
                bl->e[bl->ne++] = (struct entry){keys[b], (uint32_t)i | b << KEY_SHIFT, 0};
            }
        }
    }
    HIE_ASSERT(bl->ne <= bl->count * HIE_MPI_BLOCK_KEYS);
}

/* Marks the blocks of the sorted entries (end, or 0 when capped), fills pos and the stats. */
static void
blocks_mark(hie_mpi_blocks_t *bl)
{
    hie_mpi_blocks_stats_t *st = &bl->stats;
    memset(bl->pos, 0xff, bl->count * HIE_MPI_BLOCK_KEYS * sizeof(*bl->pos));
    for (size_t s = 0; s < bl->ne;) {
        size_t e = s;
        while (e < bl->ne && bl->e[e].key == bl->e[s].key) {
            e++;
        }
        unsigned b = bl->e[s].rec >> KEY_SHIFT; /* the same key hash: the same key number */
        HIE_ASSERT(b < HIE_MPI_BLOCK_KEYS);
        bool capped = e - s > hie_mpi_block_key_cap(b, bl->block_size_max, bl->count);
        st->blocks++;
        st->capped_blocks += capped;
        st->key_capped[b] += capped;
        st->key_pairs[b] += capped ? 0 : (e - s) * (e - s - 1) / 2;
        for (size_t q = s; q < e; q++) {
            uint32_t rec = bl->e[q].rec;
            bl->e[q].end = capped ? 0 : (uint32_t)e;
            bl->pos[(size_t)(rec & REC_MASK) * HIE_MPI_BLOCK_KEYS + (rec >> KEY_SHIFT)] =
                (uint32_t)q;
        }
        s = e;
    }
    st->records = bl->count;
}

int
hie_mpi_blocks_create(hie_mpi_blocks_t **out, const hie_mpi_person_t *persons, size_t count,
    const uint8_t key_secret[16], size_t block_size_max)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(persons != NULL || count == 0);
    HIE_ASSERT(key_secret != NULL);
    *out = NULL;
    if (block_size_max == 0 || block_size_max > HIE_MPI_BLOCK_SIZE_MAX) {
        return HIE_EINVAL;
    }
    if (count > HIE_MPI_BLOCK_RECORDS_MAX) {
        return HIE_ELIMIT;
    }
    size_t slots = (count ? count : 1) * HIE_MPI_BLOCK_KEYS; /* no overflow: count <= 2^28 */
    hie_mpi_blocks_t *bl = hie_mem_calloc(1, sizeof(*bl));
    if (bl == NULL) {
        return HIE_ENOMEM;
    }
    bl->magic = BLOCKS_MAGIC;
    bl->count = count;
    bl->block_size_max = block_size_max;
    bl->e = hie_mem_alloc(slots * sizeof(*bl->e));
    bl->pos = hie_mem_alloc(slots * sizeof(*bl->pos));
    int rc = bl->e == NULL || bl->pos == NULL ? HIE_ENOMEM : 0;
    if (rc == 0) {
        blocks_fill(bl, persons, key_secret);
        rc = entries_sort(bl->e, bl->ne);
    }
    if (rc != 0) {
        hie_mpi_blocks_destroy(&bl);
        return rc;
    }
    blocks_mark(bl);
    *out = bl;
    return 0;
}

void
hie_mpi_blocks_destroy(hie_mpi_blocks_t **blocks)
{
    HIE_ASSERT(blocks != NULL);
    hie_mpi_blocks_t *bl = *blocks;
    if (bl == NULL) {
        return;
    }
    HIE_ASSERT(bl->magic == BLOCKS_MAGIC);
    size_t slots = (bl->count ? bl->count : 1) * HIE_MPI_BLOCK_KEYS;
    hie_mem_free(bl->e, slots * sizeof(*bl->e));
    hie_mem_free(bl->pos, slots * sizeof(*bl->pos));
    bl->magic = 0;
    hie_mem_free(bl, sizeof(*bl));
    *blocks = NULL;
}

void
hie_mpi_blocks_stats(const hie_mpi_blocks_t *blocks, hie_mpi_blocks_stats_t *out)
{
    HIE_ASSERT(blocks != NULL && out != NULL);
    HIE_ASSERT(blocks->magic == BLOCKS_MAGIC);
    *out = blocks->stats;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void
hie_mpi_blocks_pairs(const hie_mpi_blocks_t *blocks, size_t record, uint32_t key_mask,
    uint32_t *out, size_t out_cap, size_t *out_count)
{
    HIE_ASSERT(blocks != NULL && out != NULL && out_count != NULL);
    HIE_ASSERT(blocks->magic == BLOCKS_MAGIC);
    HIE_ASSERT(record < blocks->count);
    HIE_ASSERT(out_cap >= HIE_MPI_BLOCK_KEYS * blocks->block_size_max);
    size_t n = 0;
    unsigned keys_used = 0;
    for (unsigned b = 0; b < HIE_MPI_BLOCK_KEYS; b++) {
        uint32_t q = blocks->pos[record * HIE_MPI_BLOCK_KEYS + b];
        if (!(key_mask & (1u << b)) || q == NONE || blocks->e[q].end == 0) {
            continue;
        }
        keys_used++;
        for (uint32_t r = q + 1; r < blocks->e[q].end; r++) { /* < block_size_max turns */
            HIE_ASSERT(n < out_cap);
            out[n++] = blocks->e[r].rec & REC_MASK;
            HIE_DEBUG_ASSERT(out[n - 1] > record);
        }
    }
    if (keys_used > 1 && n > 1) { /* one key lists each record once, in order, already */
        qsort(out, n, sizeof(*out), cmp_u32);
        size_t u = 1;
        for (size_t k = 1; k < n; k++) {
            if (out[k] != out[u - 1]) {
                out[u++] = out[k];
            }
        }
        n = u;
    }
    *out_count = n;
}

/* ---- training --------------------------------------------------------------------------- */

void
hie_mpi_train_opts_default(hie_mpi_train_opts_t *opts)
{
    HIE_ASSERT(opts != NULL);
    memset(opts, 0, sizeof(*opts));
    opts->u_samples = 200000;
    opts->block_size_max = 500;
    opts->em_rounds_max = 100;
    opts->prior_rounds_max = 200;
    opts->seed = 42;
    opts->pairs_max = (size_t)32 << 20;
}

/* Comparison vectors of candidate pairs: n of them in v (bytes allocated), of total pairs. */
struct vectors {
    hie_mpi_vector_t *v;
    size_t n, bytes, total;
};

static bool
cancelled(const hie_mpi_train_opts_t *o)
{
    return o->cancel != NULL && atomic_load(o->cancel);
}

static size_t
pairs_count(const hie_mpi_blocks_t *bl, uint32_t key_mask, uint32_t *scratch, size_t cap)
{
    size_t total = 0;
    for (size_t i = 0; i < bl->count; i++) {
        size_t n = 0;
        hie_mpi_blocks_pairs(bl, i, key_mask, scratch, cap, &n);
        total += n;
    }
    return total;
}

static void
vectors_release(struct vectors *v)
{
    hie_mem_free(v->v, v->bytes);
    memset(v, 0, sizeof(*v));
}

/* The comparison vectors of the candidate pairs of the keys in key_mask: all of them, or an
 * evenly spaced pairs_max of them (two passes: count, then compare the chosen ones). [out] out,
 * released with vectors_release() whatever the result. Returns 0 or HIE_ENOMEM. */
static int
vectors_collect(const hie_mpi_blocks_t *bl, const hie_mpi_person_t *persons, uint32_t key_mask,
    const hie_mpi_train_opts_t *opts, struct vectors *out)
{
    size_t pairs_max = opts->pairs_max;
    size_t cap = HIE_MPI_BLOCK_KEYS * bl->block_size_max;
    uint32_t *scratch = hie_mem_alloc(cap * sizeof(*scratch));
    int rc = 0;
    memset(out, 0, sizeof(*out));
    if (scratch == NULL) {
        return HIE_ENOMEM;
    }
    out->total = pairs_count(bl, key_mask, scratch, cap);
    size_t keep = out->total < pairs_max ? out->total : pairs_max;
    out->bytes = (keep ? keep : 1) * sizeof(*out->v);
    out->v = hie_mem_alloc(out->bytes);
    if (out->v == NULL) {
        rc = HIE_ENOMEM;
        goto out;
    }
    size_t acc = 0; /* Bresenham: take a pair whenever acc passes total, keep times in all */
    for (size_t i = 0; i < bl->count; i++) {
        if ((i & 1023u) == 0 && cancelled(opts)) {
            rc = HIE_EUNAVAIL;
            goto out;
        }
        size_t n = 0;
        hie_mpi_blocks_pairs(bl, i, key_mask, scratch, cap, &n);
        for (size_t k = 0; k < n; k++) {
            acc += keep;
            if (acc < out->total) {
                continue;
            }
            acc -= out->total;
            HIE_ASSERT(out->n < keep);
            hie_mpi_compare(&persons[i], &persons[scratch[k]], &out->v[out->n++]);
        }
    }
    HIE_ASSERT(out->n == keep);
out:
    if (rc != 0) {
        vectors_release(out);
    }
    hie_mem_free(scratch, cap * sizeof(*scratch));
    return rc;
}


/* m by EM, one session per entry of sessions[]; each field's m from its session in
 * field_session, which never excludes it. A session without pairs leaves its fields' m as
 * they were. */
static int
train_m(hie_mpi_model_t *model, const hie_mpi_blocks_t *bl, const hie_mpi_person_t *persons,
    const hie_mpi_train_opts_t *opts, hie_mpi_train_stats_t *st)
{
    hie_mpi_model_t trained[SESSION_COUNT];
    int rc = 0;
    for (unsigned s = 0; s < SESSION_COUNT && rc == 0; s++) {
        struct vectors v = {NULL, 0, 0, 0};
        trained[s] = *model;
        rc = cancelled(opts) ? HIE_EUNAVAIL
                             : vectors_collect(bl, persons, 1u << sessions[s].key, opts, &v);
        unsigned rounds = 0;
        if (rc == 0 && v.n > 0) {
            rc = hie_mpi_em_train(&trained[s], v.v, v.n, sessions[s].exclude,
                opts->em_rounds_max, &rounds);
        }
        st->session_pairs[s] = v.total;
        st->em_rounds += rounds;
        vectors_release(&v);
    }
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT && rc == 0; f++) {
        unsigned s = field_session[f];
        HIE_ASSERT(s < SESSION_COUNT);
        HIE_ASSERT(!(sessions[s].exclude & (1u << f)));
        memcpy(model->m[f], trained[s].m[f], sizeof(model->m[f]));
    }
    return rc;
}

/* The prior: EM over the vectors of every candidate pair, scaled to all record pairs. */
static int
train_prior(hie_mpi_model_t *model, const hie_mpi_blocks_t *bl, const hie_mpi_person_t *persons,
    const hie_mpi_train_opts_t *opts, hie_mpi_train_stats_t *st)
{
    struct vectors v = {NULL, 0, 0, 0};
    int rc = cancelled(opts) ? HIE_EUNAVAIL : vectors_collect(bl, persons, UINT32_MAX, opts, &v);
    if (rc == 0 && v.total == 0) {
        rc = HIE_EINVAL; /* nothing shares a key: nothing to learn a prior from */
    }
    if (rc == 0) {
        double n = (double)bl->count;
        double fraction = (double)v.total / (n * (n - 1) / 2.0);
        HIE_ASSERT(fraction > 0 && fraction <= 1);
        rc = hie_mpi_em_prior(model, v.v, v.n, fraction, opts->prior_rounds_max);
    }
    st->candidate_pairs = v.total;
    st->prior_pairs = v.n;
    vectors_release(&v);
    return rc;
}

static bool
train_opts_valid(const hie_mpi_train_opts_t *o)
{
    return o->u_samples > 0 && o->block_size_max > 0 &&
           o->block_size_max <= HIE_MPI_BLOCK_SIZE_MAX && o->em_rounds_max > 0 &&
           o->prior_rounds_max > 0 && o->pairs_max > 0;
}

int
hie_mpi_train(hie_mpi_model_t *model, const hie_mpi_person_t *persons, size_t count,
    const uint8_t key_secret[16], const hie_mpi_train_opts_t *opts,
    hie_mpi_train_stats_t *stats)
{
    hie_mpi_train_opts_t defaults;
    hie_mpi_train_stats_t st;
    hie_mpi_blocks_t *bl = NULL;
    HIE_ASSERT(model != NULL && persons != NULL && key_secret != NULL);
    memset(&st, 0, sizeof(st));
    if (stats != NULL) {
        memset(stats, 0, sizeof(*stats));
    }
    if (opts == NULL) {
        hie_mpi_train_opts_default(&defaults);
        opts = &defaults;
    }
    if (count < 2 || !train_opts_valid(opts)) {
        return HIE_EINVAL;
    }
    hie_mpi_model_t work = *model;
    int rc = hie_mpi_u_estimate(&work, persons, count, opts->u_samples, opts->seed);
    if (rc == 0) {
        rc = cancelled(opts) ? HIE_EUNAVAIL
                             : hie_mpi_blocks_create(&bl, persons, count, key_secret,
                                   opts->block_size_max);
    }
    if (rc == 0) {
        rc = train_m(&work, bl, persons, opts, &st);
    }
    if (rc == 0) {
        rc = train_prior(&work, bl, persons, opts, &st);
    }
    if (rc == 0) {
        st.records = count;
        st.capped_blocks = bl->stats.capped_blocks;
        work.version = model->version + 1;
        *model = work;
        if (stats != NULL) {
            *stats = st;
        }
    }
    hie_mpi_blocks_destroy(&bl);
    return rc;
}
