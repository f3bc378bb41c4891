/*
 * gen_persons.c - writes N synthetic persons in the FEBRL CSV format, with realistic
 * duplicates and known truth, for the master patient index benchmarks (issue 3, "Speed at
 * scale").
 *
 * usage: gen_persons --count N [--seed S] [--dup-rate R] [--max-dups K] [--out FILE]
 *                    [--queries FILE [--query-count K]]
 *
 * Output: the FEBRL header, then one row per record (", " separator, no quoting, empty values
 * as empty fields; ../shared/data/README.md). Person i (0..N-1) gets the record rec-<i>-org; a
 * fraction R of the persons (default 0.4) also get 1..K duplicates (default 3; P(k) ~ 1/k)
 * named rec-<i>-dup-<j>, j from 0. The truth is the <i> in rec_id, exactly as in the FEBRL
 * files, so bench_mpi_accuracy loads the output unchanged. A summary goes to stderr.
 *
 * Originals: sex 50/50; given name from the male or female table and family name, both with a
 * Zipf-Mandelbrot skew by rank (common names are common); street number, street name and
 * suffix, sometimes a unit or property name; a suburb (skewed by population) with its fixed
 * postcode and state; a valid birth date 1920-01-01..2020-12-31; a 7-digit national id unique
 * per person. Missing on purpose: given name 5%, birth date 3%, national id 5%, street number
 * 2%. Nothing here comes from real people: the tables are in gen_persons_data.h.
 *
 * Duplicates: a copy of the original with 1 (50%), 2 (30%) or 3 (20%) different corruptions,
 * each drawn from kind_infos[] by its weight; a kind that cannot apply to the record (no
 * nickname for the name, no valid day/month swap, field already empty...) is drawn again.
 *
 * Invariants: the output is a pure function of the arguments (xoshiro256** seeded through
 * splitmix64; person i draws from its own stream seeded from (seed, i), so the records of
 * person i are the same whatever N, and its original whatever the duplicate options; the
 * shuffle has a stream of its own, so only the row order depends on N). Memory is bounded:
 * one person at a time plus SHUFFLE_ROWS buffered rows. Rows pass through that buffer: once it
 * is full, each new row replaces a random resident row, which is written out, so the records
 * of one person spread over ~SHUFFLE_ROWS rows (a duplicate may precede its original, as in
 * the FEBRL files).
 *
 * PDQ cases (--queries): K demographic queries as a clinic would type them, each derived from
 * the original of a person drawn uniformly from 0..N-1: a shape says which fields are queried
 * (given + family + birth date 55%, family + birth date + postcode 20%, given + family +
 * postcode 15%, given + birth date + postcode 10%), then 0 (40%), 1 (45%) or 2 (15%)
 * corruptions of the queried fields (typos, nicknames, OCR, date changes, postcode digit).
 * CSV with a header: case_id,person_id,shape,given_name,surname,date_of_birth,postcode,
 * corruptions; person_id is the <i> of rec-<i>-*, so any record of that person is a hit. Case k
 * draws from stream 2^32 + k, so the cases depend on (seed, N, k) only and the person records
 * are the same with or without --queries. Empty values are empty fields (a person whose
 * queried field is missing is redrawn, up to DRAW_TRIES_MAX times).
 *
 * Callers: run by hand or by the speed benchmarks; it depends on libc only.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen_persons_data.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Stays on in release builds, like HIE_ASSERT (this program does not link hie_base). */
#define GEN_ASSERT(e) ((e) ? (void)0 : gen_assert_fail(#e, __FILE__, __LINE__, __func__))
#define GEN_UNREACHABLE(why) gen_assert_fail(why, __FILE__, __LINE__, __func__)

/* Largest --count: the national ids are the 9,000,000 seven-digit numbers, one per person. */
#define COUNT_MAX 9000000u
#define ID_FIRST 1000000u
#define ID_SPAN 9000000u
/* Largest --max-dups; FEBRL data sets use at most 9 duplicates per original. */
#define DUPS_MAX 50u
/* One value with its NUL; the longest table entry is 20 characters, corruptions add at most 1. */
#define FIELD_BYTES 48u
/* One formatted row: 11 values, 10 separators, the newline. */
#define ROW_BYTES 640u
/* Rows held back for shuffling: 4096 * 640 bytes = 2.5 MiB. */
#define SHUFFLE_ROWS 4096u
#define CORRUPTIONS_MAX 3u
/* Draws of a corruption kind (or a field, a position) before giving up on it. */
#define DRAW_TRIES_MAX 32u
#define SEED_DEFAULT 42u
#define DUP_RATE_DEFAULT 0.4
#define MAX_DUPS_DEFAULT 3u
#define OUT_BUF_BYTES (1u << 20)
#define YEAR_FIRST 1920u
#define YEAR_LAST 2020u
/* Years a corrupted birth date may take (a digit typo must not give 1085 or 2985). */
#define DATE_YEAR_MIN 1900u
#define DATE_YEAR_MAX 2029u
/* Largest --query-count: a PDQ benchmark runs a few thousand; the file stays under ~60 MB. */
#define QUERY_COUNT_MAX 1000000u
#define QUERY_COUNT_DEFAULT 1000u
/* Case k draws from stream QUERY_STREAM_FIRST + k, above every person stream. */
#define QUERY_STREAM_FIRST (1ull << 32)
#define QUERY_CORRUPTIONS_MAX 3u /* 0, 1 or 2 corruptions */

/* Missing values in originals, in per-mille. */
#define GIVEN_MISSING_PERMILLE 50u
#define DOB_MISSING_PERMILLE 30u
#define ID_MISSING_PERMILLE 50u
#define NUMBER_MISSING_PERMILLE 20u

enum field {
    F_REC_ID,
    F_GIVEN,
    F_SURNAME,
    F_STREET_NUMBER,
    F_ADDRESS_1,
    F_ADDRESS_2,
    F_SUBURB,
    F_POSTCODE,
    F_STATE,
    F_DOB,
    F_SOC_SEC_ID,
    F_COUNT
};

_Static_assert(ROW_BYTES >= F_COUNT * (FIELD_BYTES - 1) + (F_COUNT - 1) * 2 + 1,
    "a row of full-length values must fit in a shuffle slot");
_Static_assert(ROW_BYTES <= UINT16_MAX, "row lengths are stored as uint16_t");
_Static_assert(COUNT_MAX <= ID_SPAN, "every person needs a distinct national id");
_Static_assert(ID_SPAN <= (1u << 24), "national ids are a permutation of 24-bit values");
_Static_assert(COUNT_MAX < QUERY_STREAM_FIRST, "query streams must not meet person streams");

static const char *const field_names[F_COUNT] = {
    "rec_id", "given_name", "surname", "street_number", "address_1", "address_2", "suburb",
    "postcode", "state", "date_of_birth", "soc_sec_id",
};

enum kind {
    K_NAME_TYPO,
    K_NAME_INSERT,
    K_NAME_DELETE,
    K_NAME_TRANSPOSE,
    K_NICKNAME,
    K_OCR,
    K_DATE_SWAP,
    K_DATE_DIGIT,
    K_DATE_YEAR,
    K_MISSING,
    K_NAME_SWAP,
    K_MOVED,
    K_ID_DIGIT,
    K_ID_MISSING,
    K_POSTCODE_TYPO,
    K_ADDRESS_TYPO,
    KIND_COUNT
};

_Static_assert(KIND_COUNT <= 32, "the kinds applied to one duplicate are a 32-bit mask");

/* Corruption kinds and their weights in per-mille of the draws (they sum to 1000). */
static const struct kind_info {
    const char *name;
    unsigned weight;
} kind_infos[KIND_COUNT] = {
    [K_NAME_TYPO] = {"name_typo", 140},       /* keyboard neighbour in given or family */
    [K_NAME_INSERT] = {"name_insert", 60},    /* a doubled letter or a neighbour key */
    [K_NAME_DELETE] = {"name_delete", 60},
    [K_NAME_TRANSPOSE] = {"name_transpose", 60},
    [K_NICKNAME] = {"nickname", 80},          /* william -> bill; only for table names */
    [K_OCR] = {"ocr", 40},                    /* m -> rn, cl -> d, ... in a name or address */
    [K_DATE_SWAP] = {"date_swap", 50},        /* day and month transposed, when valid */
    [K_DATE_DIGIT] = {"date_digit", 60},      /* one digit changed, still a valid date */
    [K_DATE_YEAR] = {"date_year", 40},        /* year off by one */
    [K_MISSING] = {"missing", 100},           /* one field blank */
    [K_NAME_SWAP] = {"name_swap", 30},        /* given and family swapped */
    [K_MOVED] = {"moved", 100},               /* new number, street, suburb, postcode, state */
    [K_ID_DIGIT] = {"id_digit", 50},
    [K_ID_MISSING] = {"id_missing", 40},
    [K_POSTCODE_TYPO] = {"postcode_typo", 40},
    [K_ADDRESS_TYPO] = {"address_typo", 50},  /* keyboard neighbour in street or suburb */
};

/* Number of corruptions per duplicate, in per-mille: 1, 2 or 3. */
static const unsigned corruptions_permille[CORRUPTIONS_MAX] = {500, 300, 200};

/* Which fields a PDQ case queries. */
enum shape {
    S_NAME_DOB,
    S_FAMILY_DOB_POSTCODE,
    S_NAME_POSTCODE,
    S_GIVEN_DOB_POSTCODE, /* family name left out: changed by marriage, or not known */
    SHAPE_COUNT
};

static const struct shape_info {
    const char *name;
    unsigned weight; /* per-mille */
    bool given, family, dob, postcode;
} shape_infos[SHAPE_COUNT] = {
    [S_NAME_DOB] = {"name_dob", 550, true, true, true, false},
    [S_FAMILY_DOB_POSTCODE] = {"family_dob_postcode", 200, false, true, true, true},
    [S_NAME_POSTCODE] = {"name_postcode", 150, true, true, false, true},
    [S_GIVEN_DOB_POSTCODE] = {"given_dob_postcode", 100, true, false, true, true},
};

/* Corruptions of a PDQ case, per-mille; the others (address, id...) are not queried. A kind
 * that does not apply to the queried fields is drawn again. */
static const unsigned query_kind_permille[KIND_COUNT] = {
    [K_NAME_TYPO] = 220, [K_NAME_INSERT] = 100, [K_NAME_DELETE] = 100,
    [K_NAME_TRANSPOSE] = 100, [K_NICKNAME] = 130, [K_OCR] = 50, [K_DATE_SWAP] = 80,
    [K_DATE_DIGIT] = 100, [K_DATE_YEAR] = 70, [K_POSTCODE_TYPO] = 50,
};

/* Number of corruptions per PDQ case, per-mille: 0, 1 or 2. */
static const unsigned query_corruptions_permille[QUERY_CORRUPTIONS_MAX] = {400, 450, 150};

struct rng {
    uint64_t s[4];
};

struct nick_range {
    uint16_t first;
    uint16_t count;
};

/* Cumulative weights for drawing by rank, and the per-name lookups, built once at startup. */
struct tables {
    double male_cum[ARRAY_LEN(gen_male_names)];
    double female_cum[ARRAY_LEN(gen_female_names)];
    double surname_cum[ARRAY_LEN(gen_surnames)];
    double street_cum[ARRAY_LEN(gen_street_names)];
    double suffix_cum[ARRAY_LEN(gen_street_suffixes)];
    double city_cum[ARRAY_LEN(gen_cities)];
    double kind_cum[KIND_COUNT];
    double dups_cum[DUPS_MAX];
    double corruptions_cum[CORRUPTIONS_MAX];
    double shape_cum[SHAPE_COUNT];
    double query_kind_cum[KIND_COUNT];
    double query_corruptions_cum[QUERY_CORRUPTIONS_MAX];
    char city_postcode[ARRAY_LEN(gen_cities)][5];
    struct nick_range male_nick[ARRAY_LEN(gen_male_names)];
    struct nick_range female_nick[ARRAY_LEN(gen_female_names)];
};

struct config {
    uint64_t count;
    uint64_t seed;
    double dup_rate;
    unsigned max_dups;
    const char *out_path;
    const char *queries_path; /* NULL: no PDQ cases */
    uint64_t query_count;
};

struct person {
    char field[F_COUNT][FIELD_BYTES];
    unsigned female;       /* 0 or 1: which given-name table */
    unsigned given_index;  /* index of the drawn given name in that table */
    unsigned city_index;
};

struct shuffle {
    char (*rows)[ROW_BYTES];
    uint16_t *lens;
    size_t count;
    struct rng rng;
    FILE *out;
    uint64_t bytes;
    int write_errno;    /* errno of the first failed write, 0 while all succeed */
};

struct stats {
    uint64_t originals;
    uint64_t duplicates;
    uint64_t persons_with_dups;
    uint64_t kinds[KIND_COUNT];
    uint64_t kinds_skipped;    /* duplicates that got fewer corruptions than drawn */
    uint64_t queries;
    uint64_t query_shapes[SHAPE_COUNT];
    uint64_t query_kinds[KIND_COUNT];
    uint64_t queries_incomplete; /* no person with every queried field found: some left empty */
};

struct gen {
    struct config cfg;
    struct tables tab;
    uint32_t id_keys[4];
    struct shuffle sh;
    struct stats st;
};

_Noreturn static void
gen_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fflush(stdout);
    fprintf(stderr, "%s:%d %s: assertion '%s' failed\n", file, line, func, expr);
    fflush(stderr);
    abort();
}

/* ---- random numbers ---------------------------------------------------------------------- */

static uint64_t
splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Seeds stream `stream` of `seed`: distinct streams give unrelated sequences. */
static void
rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t sm = seed;
    uint64_t mixed = splitmix64(&sm) ^ (stream * 0xd1342543de82ef95u);

    sm = mixed;
    for (size_t i = 0; i < 4; i++) {
        r->s[i] = splitmix64(&sm);
    }
    GEN_ASSERT((r->s[0] | r->s[1] | r->s[2] | r->s[3]) != 0);
}

static uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna). */
static uint64_t
rng_next(struct rng *r)
{
    uint64_t result = rotl(r->s[1] * 5, 7) * 9;
    uint64_t t = r->s[1] << 17;

    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = rotl(r->s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double
rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n): multiply-shift, bias below n / 2^32 (tables are tiny). */
static uint32_t
rng_below(struct rng *r, uint32_t n)
{
    GEN_ASSERT(n > 0);
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static bool
rng_permille(struct rng *r, unsigned permille)
{
    GEN_ASSERT(permille <= 1000);
    return rng_below(r, 1000) < permille;
}

/* ---- weighted tables ----------------------------------------------------------------------- */

/* Zipf-Mandelbrot by rank: weight 1 / (rank + offset); a larger offset flattens the head. */
static void
cum_build_zipf(double *cum, size_t count, double offset)
{
    double sum = 0.0;

    GEN_ASSERT(count > 0);
    GEN_ASSERT(offset >= 0.0);
    for (size_t i = 0; i < count; i++) {
        sum += 1.0 / ((double)(i + 1) + offset);
        cum[i] = sum;
    }
}

/* Index of a draw from cumulative weights cum[0..count). */
static size_t
cum_pick(const double *cum, size_t count, struct rng *r)
{
    double u = rng_unit(r) * cum[count - 1];
    size_t lo = 0;
    size_t hi = count - 1;

    GEN_ASSERT(count > 0);
    while (lo < hi) { /* at most log2(count) + 1 rounds */
        size_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > u) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    GEN_ASSERT(lo < count);
    return lo;
}

static uint32_t
fnv1a(const char *s)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; s[i] != '\0' && i < FIELD_BYTES; i++) {
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    }
    return h;
}

/*
 * For each of names[0..count): the run of gen_nicknames whose formal name it is. Marks each
 * nickname entry used in covered[]; asserts that a formal name's entries are contiguous.
 */
static void
nick_ranges_build(const char *const *names, size_t count, struct nick_range *ranges,
    bool *covered)
{
    size_t nicks = ARRAY_LEN(gen_nicknames);

    for (size_t i = 0; i < count; i++) {
        ranges[i].first = 0;
        ranges[i].count = 0;
        for (size_t k = 0; k < nicks; k++) {
            if (strcmp(gen_nicknames[k].formal, names[i]) != 0) {
                continue;
            }
            if (ranges[i].count == 0) {
                ranges[i].first = (uint16_t)k;
            }
            GEN_ASSERT(k == (size_t)ranges[i].first + ranges[i].count);
            ranges[i].count++;
            covered[k] = true;
        }
    }
}

/* Cumulative weights of the PDQ shapes, corruption kinds and corruption counts. */
static void
query_tables_init(struct tables *t)
{
    double sum = 0.0;

    for (size_t i = 0; i < SHAPE_COUNT; i++) {
        sum += shape_infos[i].weight;
        t->shape_cum[i] = sum;
    }
    GEN_ASSERT(sum == 1000.0);
    sum = 0.0;
    for (size_t i = 0; i < KIND_COUNT; i++) {
        sum += query_kind_permille[i];
        t->query_kind_cum[i] = sum;
    }
    GEN_ASSERT(sum == 1000.0);
    sum = 0.0;
    for (size_t i = 0; i < QUERY_CORRUPTIONS_MAX; i++) {
        sum += query_corruptions_permille[i];
        t->query_corruptions_cum[i] = sum;
    }
    GEN_ASSERT(sum == 1000.0);
}

static void
tables_init(struct tables *t, unsigned max_dups)
{
    bool covered[ARRAY_LEN(gen_nicknames)] = {false};
    double sum = 0.0;

    GEN_ASSERT(max_dups >= 1 && max_dups <= DUPS_MAX);
    cum_build_zipf(t->male_cum, ARRAY_LEN(gen_male_names), 5.0);
    cum_build_zipf(t->female_cum, ARRAY_LEN(gen_female_names), 5.0);
    cum_build_zipf(t->surname_cum, ARRAY_LEN(gen_surnames), 10.0);
    cum_build_zipf(t->street_cum, ARRAY_LEN(gen_street_names), 30.0);
    cum_build_zipf(t->city_cum, ARRAY_LEN(gen_cities), 50.0); /* top suburb ~1% */
    cum_build_zipf(t->dups_cum, max_dups, 0.0); /* P(k duplicates) ~ 1 / k */
    for (size_t i = 0; i < ARRAY_LEN(gen_street_suffixes); i++) {
        sum += gen_street_suffixes[i].weight;
        t->suffix_cum[i] = sum;
    }
    sum = 0.0;
    for (size_t i = 0; i < KIND_COUNT; i++) {
        sum += kind_infos[i].weight;
        t->kind_cum[i] = sum;
    }
    GEN_ASSERT(sum == 1000.0);
    sum = 0.0;
    for (size_t i = 0; i < CORRUPTIONS_MAX; i++) {
        sum += corruptions_permille[i];
        t->corruptions_cum[i] = sum;
    }
    GEN_ASSERT(sum == 1000.0);
    query_tables_init(t);
    for (size_t i = 0; i < ARRAY_LEN(gen_cities); i++) {
        const struct gen_postcode_range *range = &gen_state_postcodes[gen_cities[i].state];
        unsigned code = range->first + fnv1a(gen_cities[i].name) % range->count;
        GEN_ASSERT(code <= 9999);
        snprintf(t->city_postcode[i], sizeof(t->city_postcode[i]), "%04u", code);
    }
    nick_ranges_build(gen_male_names, ARRAY_LEN(gen_male_names), t->male_nick, covered);
    nick_ranges_build(gen_female_names, ARRAY_LEN(gen_female_names), t->female_nick, covered);
    for (size_t k = 0; k < ARRAY_LEN(gen_nicknames); k++) {
        GEN_ASSERT(covered[k]); /* every formal name is in a given-name table */
    }
}

/* ---- values ---------------------------------------------------------------------------------- */

/* A bijection of [0, 2^24): four Feistel rounds on 12-bit halves. */
static uint32_t
feistel24(const uint32_t keys[4], uint32_t x)
{
    uint32_t left = x >> 12;
    uint32_t right = x & 0xfffu;

    GEN_ASSERT(x < (1u << 24));
    for (size_t round = 0; round < 4; round++) {
        uint32_t h = (right ^ keys[round]) * 0x9e3779b1u;
        h ^= h >> 15;
        h *= 0x85ebca6bu;
        h ^= h >> 13;
        uint32_t next = left ^ (h & 0xfffu);
        left = right;
        right = next;
    }
    return (left << 12) | right;
}

/* The national id of person `index`: distinct per index, scattered over 1000000..9999999. */
static uint32_t
national_id(const uint32_t keys[4], uint32_t index)
{
    uint32_t x = index;

    GEN_ASSERT(index < ID_SPAN);
    /* Cycle walking: stays a bijection on [0, ID_SPAN); about 1.9 rounds on average, and the
     * cycle through x is at most 2^24 long. */
    for (uint32_t step = 0; step < (1u << 24); step++) {
        x = feistel24(keys, x);
        if (x < ID_SPAN) {
            return ID_FIRST + x;
        }
    }
    GEN_UNREACHABLE("cycle walking left the cycle");
}

static bool
year_is_leap(uint32_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static uint32_t
month_days(uint32_t year, uint32_t month)
{
    static const uint8_t days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    GEN_ASSERT(month >= 1 && month <= 12);
    return days[month - 1] + (month == 2 && year_is_leap(year) ? 1u : 0u);
}

/* A calendar date YYYYMMDD that could be a birth date: corrupted dates stay plausible. */
static bool
date_valid(uint32_t ymd)
{
    uint32_t year = ymd / 10000;
    uint32_t month = ymd / 100 % 100;
    uint32_t day = ymd % 100;

    if (year < DATE_YEAR_MIN || year > DATE_YEAR_MAX || month < 1 || month > 12 || day < 1) {
        return false;
    }
    return day <= month_days(year, month);
}

/* Uniform over the days of YEAR_FIRST..YEAR_LAST. */
static uint32_t
date_draw(struct rng *r)
{
    uint32_t span = YEAR_LAST - YEAR_FIRST + 1;
    uint32_t year = YEAR_FIRST + rng_below(r, span);
    uint32_t doy = rng_below(r, year_is_leap(year) ? 366u : 365u);
    uint32_t month = 1;

    /* Leap years are drawn as often as others: 1/366 vs 1/365 a day, close enough. */
    while (month < 12 && doy >= month_days(year, month)) {
        doy -= month_days(year, month);
        month++;
    }
    GEN_ASSERT(doy < month_days(year, month));
    return year * 10000 + month * 100 + doy + 1;
}

/* Parses the 8-digit date in s; 0 when it is empty or not a date. */
static uint32_t
date_parse(const char *s)
{
    uint32_t v = 0;

    for (size_t i = 0; i < 8; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    return s[8] == '\0' && date_valid(v) ? v : 0;
}

/* Writes n decimal digits of v, zero-padded, and a NUL. */
static void
digits_format(char *out, uint32_t v, size_t n)
{
    GEN_ASSERT(n < FIELD_BYTES);
    for (size_t i = n; i > 0; i--) {
        out[i - 1] = (char)('0' + v % 10);
        v /= 10;
    }
    out[n] = '\0';
    GEN_ASSERT(v == 0);
}

static void
field_set(struct person *p, enum field f, const char *value)
{
    size_t len = strlen(value);

    GEN_ASSERT(f < F_COUNT);
    GEN_ASSERT(len < FIELD_BYTES); /* table entries are short; a longer one is our bug */
    memcpy(p->field[f], value, len + 1);
}

static void
number_format(char *out, uint32_t v)
{
    char tmp[12];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && n < sizeof(tmp));
    for (size_t i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    out[n] = '\0';
}

/* ---- originals ------------------------------------------------------------------------------- */

static void
address_draw(const struct tables *t, struct rng *r, struct person *p)
{
    char *number = p->field[F_STREET_NUMBER];
    char *street = p->field[F_ADDRESS_1];
    unsigned roll = rng_below(r, 100);
    size_t name = cum_pick(t->street_cum, ARRAY_LEN(gen_street_names), r);
    size_t suffix = cum_pick(t->suffix_cum, ARRAY_LEN(gen_street_suffixes), r);

    /* Most houses have small numbers; a few long roads run into the thousands. */
    number_format(number, 1 + rng_below(r, roll < 60 ? 60u : roll < 95 ? 300u : 2000u));
    if (rng_permille(r, NUMBER_MISSING_PERMILLE)) {
        number[0] = '\0';
    }
    snprintf(street, FIELD_BYTES, "%s %s", gen_street_names[name],
        gen_street_suffixes[suffix].name);
    roll = rng_below(r, 100);
    if (roll < 70) {
        p->field[F_ADDRESS_2][0] = '\0';
    } else if (roll < 85) {
        snprintf(p->field[F_ADDRESS_2], FIELD_BYTES, "unit %u", 1 + rng_below(r, 40));
    } else {
        field_set(p, F_ADDRESS_2,
            gen_property_names[rng_below(r, (uint32_t)ARRAY_LEN(gen_property_names))]);
    }
    p->city_index = (unsigned)cum_pick(t->city_cum, ARRAY_LEN(gen_cities), r);
    field_set(p, F_SUBURB, gen_cities[p->city_index].name);
    field_set(p, F_POSTCODE, t->city_postcode[p->city_index]);
    field_set(p, F_STATE, gen_state_codes[gen_cities[p->city_index].state]);
}

/* Person `index` of the run: every value except rec_id. */
static void
person_draw(const struct gen *g, struct rng *r, uint32_t index, struct person *p)
{
    const struct tables *t = &g->tab;

    p->female = rng_below(r, 2);
    if (p->female) {
        p->given_index = (unsigned)cum_pick(t->female_cum, ARRAY_LEN(gen_female_names), r);
        field_set(p, F_GIVEN, gen_female_names[p->given_index]);
    } else {
        p->given_index = (unsigned)cum_pick(t->male_cum, ARRAY_LEN(gen_male_names), r);
        field_set(p, F_GIVEN, gen_male_names[p->given_index]);
    }
    if (rng_permille(r, GIVEN_MISSING_PERMILLE)) {
        p->field[F_GIVEN][0] = '\0';
    }
    field_set(p, F_SURNAME, gen_surnames[cum_pick(t->surname_cum, ARRAY_LEN(gen_surnames), r)]);
    address_draw(t, r, p);
    digits_format(p->field[F_DOB], date_draw(r), 8);
    if (rng_permille(r, DOB_MISSING_PERMILLE)) {
        p->field[F_DOB][0] = '\0';
    }
    digits_format(p->field[F_SOC_SEC_ID], national_id(g->id_keys, index), 7);
    if (rng_permille(r, ID_MISSING_PERMILLE)) {
        p->field[F_SOC_SEC_ID][0] = '\0';
    }
    p->field[F_REC_ID][0] = '\0';
}

/* ---- string corruptions ---------------------------------------------------------------------- */

static bool
is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

/* A random position in s holding a lowercase letter, or -1 after DRAW_TRIES_MAX misses. */
static int
letter_pick(const char *s, size_t len, struct rng *r)
{
    for (size_t tries = 0; len > 0 && tries < DRAW_TRIES_MAX; tries++) {
        uint32_t i = rng_below(r, (uint32_t)len);
        if (is_lower(s[i])) {
            return (int)i;
        }
    }
    return -1;
}

static char
neighbour_pick(char c, struct rng *r)
{
    const char *keys = gen_keyboard_neighbours[c - 'a'];

    GEN_ASSERT(is_lower(c));
    GEN_ASSERT(keys[0] != '\0');
    return keys[rng_below(r, (uint32_t)strlen(keys))];
}

/* A letter replaced by a key next to it. */
static bool
str_typo(char *s, struct rng *r)
{
    int i = letter_pick(s, strlen(s), r);

    if (i < 0) {
        return false;
    }
    s[i] = neighbour_pick(s[i], r);
    return true;
}

/* A letter doubled, or a key next to it struck as well. */
static bool
str_insert(char *s, struct rng *r)
{
    size_t len = strlen(s);
    int i = letter_pick(s, len, r);

    if (i < 0 || len + 1 >= FIELD_BYTES) {
        return false;
    }
    char extra = rng_below(r, 2) == 0 ? s[i] : neighbour_pick(s[i], r);
    memmove(s + i + 1, s + i, len - (size_t)i + 1);
    s[i] = extra;
    return true;
}

static bool
str_delete(char *s, struct rng *r)
{
    size_t len = strlen(s);
    int i = letter_pick(s, len, r);

    if (i < 0 || len < 3) {
        return false; /* a one- or two-letter name would not survive as a name */
    }
    memmove(s + i, s + i + 1, len - (size_t)i);
    return true;
}

/* Two adjacent different letters swapped. */
static bool
str_transpose(char *s, struct rng *r)
{
    size_t len = strlen(s);

    for (size_t tries = 0; len >= 2 && tries < DRAW_TRIES_MAX; tries++) {
        uint32_t i = rng_below(r, (uint32_t)(len - 1));
        if (is_lower(s[i]) && is_lower(s[i + 1]) && s[i] != s[i + 1]) {
            char c = s[i];
            s[i] = s[i + 1];
            s[i + 1] = c;
            return true;
        }
    }
    return false;
}

/* Counts the places where an OCR confusion applies; with `apply`, applies the target-th. */
static size_t
ocr_scan(char *s, size_t target, bool apply)
{
    size_t len = strlen(s);
    size_t seen = 0;

    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < ARRAY_LEN(gen_ocr_confusions); k++) {
            const char *from = gen_ocr_confusions[k].from;
            const char *to = gen_ocr_confusions[k].to;
            size_t from_len = strlen(from);
            size_t to_len = strlen(to);
            if (strncmp(s + i, from, from_len) != 0 || len - from_len + to_len >= FIELD_BYTES) {
                continue;
            }
            if (apply && seen == target) {
                memmove(s + i + to_len, s + i + from_len, len - i - from_len + 1);
                memcpy(s + i, to, to_len);
                return seen;
            }
            seen++;
        }
    }
    return seen;
}

static bool
str_ocr(char *s, struct rng *r)
{
    size_t places = ocr_scan(s, 0, false);

    if (places == 0) {
        return false;
    }
    size_t target = rng_below(r, (uint32_t)places);
    size_t applied = ocr_scan(s, target, true);
    GEN_ASSERT(applied == target);
    return true;
}

/* One digit of s changed to another digit. */
static bool
str_digit(char *s, struct rng *r)
{
    size_t len = strlen(s);

    for (size_t tries = 0; len > 0 && tries < DRAW_TRIES_MAX; tries++) {
        uint32_t i = rng_below(r, (uint32_t)len);
        if (s[i] >= '0' && s[i] <= '9') {
            s[i] = (char)('0' + (s[i] - '0' + 1 + (int)rng_below(r, 9)) % 10);
            return true;
        }
    }
    return false;
}

/* ---- record corruptions ---------------------------------------------------------------------- */

/* Given or family name, whichever is present (both: 50/50); F_COUNT when neither is. */
static enum field
name_pick(const struct person *p, struct rng *r)
{
    bool given = p->field[F_GIVEN][0] != '\0';
    bool family = p->field[F_SURNAME][0] != '\0';

    if (given && family) {
        return rng_below(r, 2) == 0 ? F_GIVEN : F_SURNAME;
    }
    return given ? F_GIVEN : family ? F_SURNAME : F_COUNT;
}

static bool
corrupt_name(struct person *p, struct rng *r, bool (*op)(char *, struct rng *))
{
    enum field f = name_pick(p, r);

    return f != F_COUNT && op(p->field[f], r);
}

/* The given name replaced by one of its nicknames, if it is still the drawn table name. */
static bool
corrupt_nickname(const struct tables *t, struct person *p, struct rng *r)
{
    const char *const *names = p->female ? gen_female_names : gen_male_names;
    const struct nick_range *ranges = p->female ? t->female_nick : t->male_nick;

    if (strcmp(p->field[F_GIVEN], names[p->given_index]) != 0) {
        return false; /* missing, already corrupted, or swapped with the family name */
    }
    const struct nick_range *range = &ranges[p->given_index];
    if (range->count == 0) {
        return false;
    }
    field_set(p, F_GIVEN, gen_nicknames[range->first + rng_below(r, range->count)].nick);
    return true;
}

/* OCR confusion in a name (70%) or in the street or suburb. */
static bool
corrupt_ocr(struct person *p, struct rng *r)
{
    unsigned roll = rng_below(r, 10);

    if (roll < 7) {
        return corrupt_name(p, r, str_ocr);
    }
    return str_ocr(p->field[roll < 9 ? F_ADDRESS_1 : F_SUBURB], r);
}

enum date_change {
    DATE_SWAP,
    DATE_DIGIT,
    DATE_YEAR
};

/* Day and month swapped, one digit changed or the year off by one; always a valid date. */
static bool
corrupt_date(struct person *p, struct rng *r, enum date_change change)
{
    uint32_t ymd = date_parse(p->field[F_DOB]);
    uint32_t out = 0;

    if (ymd == 0) {
        return false;
    }
    if (change == DATE_SWAP) {
        out = ymd / 10000 * 10000 + ymd % 100 * 100 + ymd / 100 % 100;
    } else if (change == DATE_YEAR) {
        int sign = rng_below(r, 2) == 0 ? -1 : 1;
        out = (uint32_t)((int32_t)ymd + sign * 10000);
        if (!date_valid(out)) { /* 29 February: the other year may be a leap year either */
            out = (uint32_t)((int32_t)ymd - sign * 10000);
        }
    } else {
        for (size_t tries = 0; tries < DRAW_TRIES_MAX; tries++) {
            char digits[FIELD_BYTES];
            memcpy(digits, p->field[F_DOB], 9);
            if (str_digit(digits, r)) {
                out = date_parse(digits);
            }
            if (out != 0) {
                break;
            }
        }
    }
    if (out == ymd || !date_valid(out)) {
        return false; /* day == month, day > 12, or no valid digit change found */
    }
    digits_format(p->field[F_DOB], out, 8);
    return true;
}

/* One present field blanked: a name, street number, street, suburb, postcode or birth date. */
static bool
corrupt_missing(struct person *p, struct rng *r)
{
    static const enum field candidates[] = {
        F_GIVEN, F_SURNAME, F_STREET_NUMBER, F_ADDRESS_1, F_SUBURB, F_POSTCODE, F_DOB,
    };

    for (size_t tries = 0; tries < DRAW_TRIES_MAX; tries++) {
        enum field f = candidates[rng_below(r, (uint32_t)ARRAY_LEN(candidates))];
        if (p->field[f][0] != '\0') {
            p->field[f][0] = '\0';
            return true;
        }
    }
    return false;
}

static bool
corrupt_name_swap(struct person *p)
{
    char tmp[FIELD_BYTES];

    if (p->field[F_GIVEN][0] == '\0' || p->field[F_SURNAME][0] == '\0' ||
        strcmp(p->field[F_GIVEN], p->field[F_SURNAME]) == 0) {
        return false;
    }
    memcpy(tmp, p->field[F_GIVEN], FIELD_BYTES);
    memcpy(p->field[F_GIVEN], p->field[F_SURNAME], FIELD_BYTES);
    memcpy(p->field[F_SURNAME], tmp, FIELD_BYTES);
    return true;
}

/* A whole new address in another suburb. */
static bool
corrupt_moved(const struct tables *t, struct person *p, struct rng *r)
{
    unsigned old_city = p->city_index;

    for (size_t tries = 0; tries < DRAW_TRIES_MAX; tries++) {
        address_draw(t, r, p);
        if (p->city_index != old_city) {
            return true;
        }
    }
    return true; /* the same suburb again, but still a new street and number */
}

static bool
corrupt_field_blank(struct person *p, enum field f)
{
    if (p->field[f][0] == '\0') {
        return false;
    }
    p->field[f][0] = '\0';
    return true;
}

/* Applies one corruption of kind k; false when it does not apply to this record. */
static bool
corrupt_apply(const struct tables *t, struct person *p, struct rng *r, enum kind k)
{
    switch (k) {
    case K_NAME_TYPO:
        return corrupt_name(p, r, str_typo);
    case K_NAME_INSERT:
        return corrupt_name(p, r, str_insert);
    case K_NAME_DELETE:
        return corrupt_name(p, r, str_delete);
    case K_NAME_TRANSPOSE:
        return corrupt_name(p, r, str_transpose);
    case K_NICKNAME:
        return corrupt_nickname(t, p, r);
    case K_OCR:
        return corrupt_ocr(p, r);
    case K_DATE_SWAP:
        return corrupt_date(p, r, DATE_SWAP);
    case K_DATE_DIGIT:
        return corrupt_date(p, r, DATE_DIGIT);
    case K_DATE_YEAR:
        return corrupt_date(p, r, DATE_YEAR);
    case K_MISSING:
        return corrupt_missing(p, r);
    case K_NAME_SWAP:
        return corrupt_name_swap(p);
    case K_MOVED:
        return corrupt_moved(t, p, r);
    case K_ID_DIGIT:
        return str_digit(p->field[F_SOC_SEC_ID], r);
    case K_ID_MISSING:
        return corrupt_field_blank(p, F_SOC_SEC_ID);
    case K_POSTCODE_TYPO:
        return str_digit(p->field[F_POSTCODE], r);
    case K_ADDRESS_TYPO:
        return str_typo(p->field[rng_below(r, 2) == 0 ? F_ADDRESS_1 : F_SUBURB], r);
    case KIND_COUNT:
        break;
    }
    GEN_UNREACHABLE("unknown corruption kind");
}

/* Turns a copy of an original into a duplicate: 1-3 different kinds of corruption. */
static void
duplicate_corrupt(const struct tables *t, struct person *p, struct rng *r, struct stats *st)
{
    size_t wanted = 1 + cum_pick(t->corruptions_cum, CORRUPTIONS_MAX, r);
    uint32_t applied_mask = 0;
    size_t applied = 0;

    for (size_t tries = 0; applied < wanted && tries < DRAW_TRIES_MAX; tries++) {
        enum kind k = (enum kind)cum_pick(t->kind_cum, KIND_COUNT, r);
        if ((applied_mask & (1u << k)) != 0 || !corrupt_apply(t, p, r, k)) {
            continue;
        }
        applied_mask |= 1u << k;
        applied++;
        st->kinds[k]++;
    }
    if (applied < wanted) {
        st->kinds_skipped++;
    }
    GEN_ASSERT(applied <= CORRUPTIONS_MAX);
}

/* ---- output ---------------------------------------------------------------------------------- */

static char *
text_append(char *out, const char *end, const char *s)
{
    size_t len = strlen(s);

    GEN_ASSERT((size_t)(end - out) > len);
    memcpy(out, s, len);
    return out + len;
}

/* Formats p as one CSV row (with its newline) into row[ROW_BYTES]; returns its length. */
static size_t
row_format(const struct person *p, char *row)
{
    const char *end = row + ROW_BYTES;
    char *out = row;

    for (size_t f = 0; f < F_COUNT; f++) {
        if (f > 0) {
            out = text_append(out, end, ", ");
        }
        out = text_append(out, end, p->field[f]);
    }
    out = text_append(out, end, "\n");
    GEN_ASSERT(out > row && out < end);
    return (size_t)(out - row);
}

static void
rec_id_set(struct person *p, uint32_t index, int dup)
{
    char number[12];
    char *out = p->field[F_REC_ID];
    const char *end = out + FIELD_BYTES;

    out = text_append(out, end, "rec-");
    number_format(number, index);
    out = text_append(out, end, number);
    if (dup < 0) {
        out = text_append(out, end, "-org");
    } else {
        out = text_append(out, end, "-dup-");
        number_format(number, (uint32_t)dup);
        out = text_append(out, end, number);
    }
    *out = '\0';
}

static void
shuffle_write(struct shuffle *sh, size_t slot)
{
    GEN_ASSERT(slot < sh->count);
    GEN_ASSERT(sh->lens[slot] > 0);
    if (fwrite(sh->rows[slot], 1, sh->lens[slot], sh->out) != sh->lens[slot] &&
        sh->write_errno == 0) {
        sh->write_errno = errno != 0 ? errno : EIO;
    }
    sh->bytes += sh->lens[slot];
}

/* Buffers row p; when the buffer is full, a random buffered row is written out first. */
static void
shuffle_put(struct shuffle *sh, const struct person *p)
{
    size_t slot = sh->count;

    GEN_ASSERT(sh->count <= SHUFFLE_ROWS);
    if (sh->count == SHUFFLE_ROWS) {
        slot = rng_below(&sh->rng, SHUFFLE_ROWS);
        shuffle_write(sh, slot);
    } else {
        sh->count++;
    }
    sh->lens[slot] = (uint16_t)row_format(p, sh->rows[slot]);
}

/* Writes the buffered rows in random order. */
static void
shuffle_flush(struct shuffle *sh)
{
    GEN_ASSERT(sh->count <= SHUFFLE_ROWS);
    while (sh->count > 0) { /* one row per round: at most SHUFFLE_ROWS rounds */
        size_t slot = rng_below(&sh->rng, (uint32_t)sh->count);
        size_t last = sh->count - 1;
        shuffle_write(sh, slot);
        if (slot != last) {
            memcpy(sh->rows[slot], sh->rows[last], sh->lens[last]);
            sh->lens[slot] = sh->lens[last];
        }
        sh->count--;
    }
}

/* Person `index`: its original and, for a fraction dup_rate of persons, its duplicates. */
static void
person_emit(struct gen *g, uint32_t index)
{
    struct rng r;
    struct person org;
    struct person dup;

    rng_seed(&r, g->cfg.seed, index);
    person_draw(g, &r, index, &org);
    rec_id_set(&org, index, -1);
    shuffle_put(&g->sh, &org);
    g->st.originals++;
    if (rng_unit(&r) >= g->cfg.dup_rate) {
        return;
    }
    size_t dups = 1 + cum_pick(g->tab.dups_cum, g->cfg.max_dups, &r);
    GEN_ASSERT(dups <= g->cfg.max_dups);
    g->st.persons_with_dups++;
    for (size_t k = 0; k < dups; k++) {
        memcpy(&dup, &org, sizeof(dup));
        duplicate_corrupt(&g->tab, &dup, &r, &g->st);
        rec_id_set(&dup, index, (int)k);
        shuffle_put(&g->sh, &dup);
        g->st.duplicates++;
    }
}

/* ---- PDQ cases ------------------------------------------------------------------------------- */

/* Room for the names of QUERY_CORRUPTIONS_MAX - 1 kinds joined by '+'. */
#define QUERY_DESC_BYTES 96u

/* True when p has every field that shape s queries. */
static bool
shape_fits(const struct person *p, enum shape s)
{
    const struct shape_info *si = &shape_infos[s];

    GEN_ASSERT(s < SHAPE_COUNT);
    return (!si->given || p->field[F_GIVEN][0] != '\0') &&
        (!si->family || p->field[F_SURNAME][0] != '\0') &&
        (!si->dob || p->field[F_DOB][0] != '\0') &&
        (!si->postcode || p->field[F_POSTCODE][0] != '\0');
}

/* Blanks every field that shape s does not query. */
static void
shape_apply(struct person *p, enum shape s)
{
    const struct shape_info *si = &shape_infos[s];
    bool keep[F_COUNT] = {false};

    GEN_ASSERT(s < SHAPE_COUNT);
    keep[F_GIVEN] = si->given;
    keep[F_SURNAME] = si->family;
    keep[F_DOB] = si->dob;
    keep[F_POSTCODE] = si->postcode;
    for (size_t f = 0; f < F_COUNT; f++) {
        if (!keep[f]) {
            p->field[f][0] = '\0';
        }
    }
}

/* Draws the person and shape of a case: a person with every queried field if one turns up
 * within DRAW_TRIES_MAX draws (*complete), else the last one drawn. [out] *p is its original,
 * exactly as person_emit() draws it. Returns the person's index. */
static uint32_t
query_person_draw(const struct gen *g, struct rng *qr, struct person *p, enum shape *shape,
    bool *complete)
{
    uint32_t index = 0;

    GEN_ASSERT(g->cfg.count >= 1 && g->cfg.count <= COUNT_MAX);
    *complete = false;
    for (size_t tries = 0; tries < DRAW_TRIES_MAX; tries++) {
        struct rng pr;
        index = rng_below(qr, (uint32_t)g->cfg.count);
        *shape = (enum shape)cum_pick(g->tab.shape_cum, SHAPE_COUNT, qr);
        rng_seed(&pr, g->cfg.seed, index);
        person_draw(g, &pr, index, p);
        if (shape_fits(p, *shape)) {
            *complete = true;
            break;
        }
    }
    GEN_ASSERT(index < g->cfg.count);
    return index;
}

/* Applies 0-2 different corruption kinds to the queried fields of p (the others are blank, so
 * kinds that touch them do not apply and are drawn again); their names, joined by '+', or
 * "none", go to desc[QUERY_DESC_BYTES]. */
static void
query_corrupt(struct gen *g, struct person *p, struct rng *qr, char *desc)
{
    size_t wanted = cum_pick(g->tab.query_corruptions_cum, QUERY_CORRUPTIONS_MAX, qr);
    uint32_t mask = 0;
    size_t applied = 0;
    const char *end = desc + QUERY_DESC_BYTES;
    char *out = desc;

    for (size_t tries = 0; applied < wanted && tries < DRAW_TRIES_MAX; tries++) {
        enum kind k = (enum kind)cum_pick(g->tab.query_kind_cum, KIND_COUNT, qr);
        if ((mask & (1u << k)) != 0 || !corrupt_apply(&g->tab, p, qr, k)) {
            continue;
        }
        mask |= 1u << k;
        applied++;
        g->st.query_kinds[k]++;
    }
    GEN_ASSERT(applied < QUERY_CORRUPTIONS_MAX);
    for (size_t k = 0; k < KIND_COUNT; k++) {
        if ((mask & (1u << k)) != 0) {
            out = text_append(out, end, out == desc ? "" : "+");
            out = text_append(out, end, kind_infos[k].name);
        }
    }
    out = text_append(out, end, out == desc ? "none" : "");
    *out = '\0';
}

/* Case k: draws, shapes and corrupts it, and writes its CSV row to f. */
static void
query_emit(struct gen *g, FILE *f, uint64_t k)
{
    struct rng qr;
    struct person p;
    enum shape shape = S_NAME_DOB;
    bool complete = false;
    char desc[QUERY_DESC_BYTES];

    rng_seed(&qr, g->cfg.seed, QUERY_STREAM_FIRST + k);
    uint32_t index = query_person_draw(g, &qr, &p, &shape, &complete);
    shape_apply(&p, shape);
    query_corrupt(g, &p, &qr, desc);
    for (size_t i = 0; i < F_COUNT; i++) {
        GEN_ASSERT(strchr(p.field[i], ',') == NULL); /* the CSV has no quoting */
    }
    fprintf(f, "%llu,%u,%s,%s,%s,%s,%s,%s\n", (unsigned long long)k, index,
        shape_infos[shape].name, p.field[F_GIVEN], p.field[F_SURNAME], p.field[F_DOB],
        p.field[F_POSTCODE], desc);
    g->st.queries++;
    g->st.query_shapes[shape]++;
    g->st.queries_incomplete += complete ? 0 : 1;
}

/* Writes the header and the --query-count cases to --queries; false (after a message) on
 * failure. */
static bool
queries_write(struct gen *g)
{
    FILE *f = fopen(g->cfg.queries_path, "wb");
    int rc = 0;

    GEN_ASSERT(g->cfg.query_count <= QUERY_COUNT_MAX);
    if (f == NULL) {
        fprintf(stderr, "gen_persons: cannot open queries: %s: %s\n", g->cfg.queries_path,
            strerror(errno));
        return false;
    }
    fprintf(f, "case_id,person_id,shape,given_name,surname,date_of_birth,postcode,"
        "corruptions\n");
    for (uint64_t k = 0; k < g->cfg.query_count; k++) { /* query_count <= QUERY_COUNT_MAX */
        query_emit(g, f, k);
    }
    rc = ferror(f) ? EIO : 0;
    errno = 0;
    if (fclose(f) != 0 && rc == 0) {
        rc = errno != 0 ? errno : EIO;
    }
    if (rc != 0) {
        fprintf(stderr, "gen_persons: write failed: %s: %s\n", g->cfg.queries_path,
            strerror(rc));
        return false;
    }
    return true;
}

/* ---- command line ---------------------------------------------------------------------------- */

static void
usage(FILE *f)
{
    fprintf(f, "usage: gen_persons --count N [--seed S] [--dup-rate R] [--max-dups K] "
        "[--out FILE]\n"
        "                   [--queries FILE [--query-count K]]\n"
        "  --count N     original persons, 1..%u\n"
        "  --seed S      seed of every random draw (default %u)\n"
        "  --dup-rate R  fraction of persons with duplicates, 0..1 (default %.1f)\n"
        "  --max-dups K  duplicates per such person, 1..K with P(k) ~ 1/k, K <= %u "
        "(default %u)\n"
        "  --out FILE    output file (default standard output)\n"
        "  --queries FILE      also write PDQ cases (partial, corrupted demographic queries\n"
        "                      with the true person id) to FILE, as CSV with a header\n"
        "  --query-count K     PDQ cases, 1..%u (default %u)\n",
        COUNT_MAX, SEED_DEFAULT, DUP_RATE_DEFAULT, DUPS_MAX, MAX_DUPS_DEFAULT,
        QUERY_COUNT_MAX, QUERY_COUNT_DEFAULT);
}

/* Parses a decimal integer in min..max; false on anything else. */
static bool
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;

    if (s[0] < '0' || s[0] > '9') {
        return false; /* strtoull would accept a sign or spaces */
    }
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static bool
parse_rate(const char *s, double *out)
{
    char *end = NULL;

    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0.0 && v <= 1.0)) {
        return false;
    }
    *out = v;
    return true;
}

/* Reads one "--name value" pair into cfg; false (after a message) when it is not valid. */
static bool
option_parse(struct config *cfg, const char *name, const char *value)
{
    uint64_t v = 0;
    bool ok = false;

    if (strcmp(name, "--count") == 0) {
        ok = parse_u64(value, 1, COUNT_MAX, &cfg->count);
    } else if (strcmp(name, "--seed") == 0) {
        ok = parse_u64(value, 0, UINT64_MAX, &cfg->seed);
    } else if (strcmp(name, "--dup-rate") == 0) {
        ok = parse_rate(value, &cfg->dup_rate);
    } else if (strcmp(name, "--max-dups") == 0) {
        ok = parse_u64(value, 1, DUPS_MAX, &v);
        cfg->max_dups = (unsigned)v;
    } else if (strcmp(name, "--out") == 0) {
        cfg->out_path = value;
        ok = value[0] != '\0';
    } else if (strcmp(name, "--queries") == 0) {
        cfg->queries_path = value;
        ok = value[0] != '\0';
    } else if (strcmp(name, "--query-count") == 0) {
        ok = parse_u64(value, 1, QUERY_COUNT_MAX, &cfg->query_count);
    } else {
        fprintf(stderr, "gen_persons: unknown option: %s\n", name);
        return false;
    }
    if (!ok) {
        fprintf(stderr, "gen_persons: invalid value for %s: %s\n", name, value);
    }
    return ok;
}

/* 0 when cfg is ready, 1 after --help, 2 on a usage error. */
static int
args_parse(int argc, char **argv, struct config *cfg)
{
    cfg->count = 0;
    cfg->seed = SEED_DEFAULT;
    cfg->dup_rate = DUP_RATE_DEFAULT;
    cfg->max_dups = MAX_DUPS_DEFAULT;
    cfg->out_path = NULL;
    cfg->queries_path = NULL;
    cfg->query_count = QUERY_COUNT_DEFAULT;
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "gen_persons: missing value for %s\n", argv[i]);
            return 2;
        }
        if (!option_parse(cfg, argv[i], argv[i + 1])) {
            return 2;
        }
    }
    if (cfg->count == 0) {
        fprintf(stderr, "gen_persons: --count is required\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* ---- main ------------------------------------------------------------------------------------ */

static double
now_s(void)
{
    struct timespec ts;

    if (timespec_get(&ts, TIME_UTC) != TIME_UTC) {
        return 0.0;
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
stats_report(const struct gen *g, double secs)
{
    uint64_t records = g->st.originals + g->st.duplicates;

    fprintf(stderr, "gen_persons: seed=%llu persons=%llu persons_with_dups=%llu "
        "duplicates=%llu records=%llu bytes=%llu secs=%.3f records_s=%.0f\n",
        (unsigned long long)g->cfg.seed, (unsigned long long)g->st.originals,
        (unsigned long long)g->st.persons_with_dups, (unsigned long long)g->st.duplicates,
        (unsigned long long)records, (unsigned long long)g->sh.bytes, secs,
        secs > 0 ? (double)records / secs : 0.0);
    fprintf(stderr, "gen_persons: corruptions");
    for (size_t k = 0; k < KIND_COUNT; k++) {
        fprintf(stderr, " %s=%llu", kind_infos[k].name, (unsigned long long)g->st.kinds[k]);
    }
    fprintf(stderr, " short=%llu\n", (unsigned long long)g->st.kinds_skipped);
    if (g->cfg.queries_path == NULL) {
        return;
    }
    fprintf(stderr, "gen_persons: queries=%llu incomplete=%llu",
        (unsigned long long)g->st.queries, (unsigned long long)g->st.queries_incomplete);
    for (size_t s = 0; s < SHAPE_COUNT; s++) {
        fprintf(stderr, " %s=%llu", shape_infos[s].name,
            (unsigned long long)g->st.query_shapes[s]);
    }
    for (size_t k = 0; k < KIND_COUNT; k++) {
        if (query_kind_permille[k] > 0) {
            fprintf(stderr, " %s=%llu", kind_infos[k].name,
                (unsigned long long)g->st.query_kinds[k]);
        }
    }
    fprintf(stderr, "\n");
}

/* Opens the output and the shuffle buffer; false (after a message) on failure. */
static bool
output_open(struct gen *g)
{
    struct shuffle *sh = &g->sh;

    sh->out = g->cfg.out_path != NULL ? fopen(g->cfg.out_path, "wb") : stdout;
    if (sh->out == NULL) {
        fprintf(stderr, "gen_persons: cannot open output: %s: %s\n", g->cfg.out_path,
            strerror(errno));
        return false;
    }
    sh->rows = malloc(SHUFFLE_ROWS * sizeof(*sh->rows));
    sh->lens = malloc(SHUFFLE_ROWS * sizeof(*sh->lens));
    if (sh->rows == NULL || sh->lens == NULL ||
        setvbuf(sh->out, NULL, _IOFBF, OUT_BUF_BYTES) != 0) {
        fprintf(stderr, "gen_persons: out of memory\n");
        return false;
    }
    sh->count = 0;
    sh->bytes = 0;
    sh->write_errno = 0;
    rng_seed(&sh->rng, g->cfg.seed, UINT64_MAX); /* person streams are 0..COUNT_MAX-1 */
    return true;
}

/* Writes the header, every person, and the buffered rows; false (after a message) on failure. */
static bool
output_write(struct gen *g)
{
    struct shuffle *sh = &g->sh;
    int rc = 0;

    struct person header;
    for (size_t f = 0; f < F_COUNT; f++) {
        field_set(&header, (enum field)f, field_names[f]);
    }
    char row[ROW_BYTES];
    size_t len = row_format(&header, row);
    if (fwrite(row, 1, len, sh->out) != len) {
        sh->write_errno = errno != 0 ? errno : EIO;
    }
    sh->bytes += len;
    for (uint64_t i = 0; i < g->cfg.count; i++) { /* count <= COUNT_MAX */
        person_emit(g, (uint32_t)i);
    }
    shuffle_flush(sh);
    rc = sh->write_errno;
    if (rc == 0 && ferror(sh->out)) {
        rc = EIO;
    }
    errno = 0;
    if ((sh->out == stdout ? fflush(sh->out) : fclose(sh->out)) != 0 && rc == 0) {
        rc = errno != 0 ? errno : EIO;
    }
    sh->out = NULL;
    if (rc != 0) {
        fprintf(stderr, "gen_persons: write failed: %s: %s\n",
            g->cfg.out_path != NULL ? g->cfg.out_path : "stdout", strerror(rc));
        return false;
    }
    return true;
}

int
main(int argc, char **argv)
{
    static struct gen g; /* ~50 KiB of tables: kept off the stack */
    struct rng key_rng;
    int rc = args_parse(argc, argv, &g.cfg);

    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    GEN_ASSERT(g.cfg.count <= COUNT_MAX);
    tables_init(&g.tab, g.cfg.max_dups);
    rng_seed(&key_rng, g.cfg.seed, UINT64_MAX - 1);
    for (size_t i = 0; i < 4; i++) {
        g.id_keys[i] = (uint32_t)rng_next(&key_rng);
    }
    double start = now_s();
    rc = output_open(&g) && output_write(&g) ? 0 : 1;
    if (rc == 0 && g.cfg.queries_path != NULL) {
        rc = queries_write(&g) ? 0 : 1;
    }
    if (rc == 0) {
        stats_report(&g, now_s() - start);
    }
    free(g.sh.rows);
    free(g.sh.lens);
    return rc;
}
