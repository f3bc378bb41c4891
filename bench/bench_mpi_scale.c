/*
 * bench_mpi_scale.c - the Fellegi-Sunter matcher at scale, in memory (issue 3, "Speed at
 * scale"): N synthetic persons from gen_persons (default 1,000,000 persons, about 1.65 M
 * records) are normalized, blocked, trained on and linked exactly as bench_mpi_accuracy does,
 * with the wall time and records/s of each stage, the peak RSS, and pairwise precision, recall
 * and F1 against the generator's truth.
 *
 * Stages, each timed alone:
 *  1. parse + normalize: libcsv over the generated file, every record normalized as the
 *     identity feed does (one thread);
 *  2. blocking: hie_mpi_blocks_create() (the 18 blocking keys of every record, a stable radix
 *     sort of the (key, record) entries, blocks of more than BLOCK_SIZE_MAX records capped),
 *     then the deduplicated candidate pairs (i < j) of every record i from
 *     hie_mpi_blocks_pairs() (one thread);
 *  3. training: term frequencies, then hie_mpi_train() (one thread): u from U_SAMPLES random
 *     pairs, m by EM in three sessions (the pairs of one blocking key each, leaving out the
 *     fields its pairs agree on), then the prior by EM over the vectors of all candidate
 *     pairs. Production does this once (`hiectl mpi train`), not per record;
 *  4. linking: every candidate pair compared and weighed (threads), then the records linked
 *     in file order by the one linker of both benches (mpi_link.h: enterprise ids scored as
 *     composites, hie_mpi_decide() links, merges or sends to review; one thread): the
 *     matching part of an ingest.
 * Totals: records/s of stages 1+2+4 ("ingest": a trained model given) and of 1-4 ("total", end
 * to end). Same pairs, same order, same arithmetic and the same linker as bench_mpi_accuracy.
 *
 * Not measured: LMDB writes, sealing PHI, the command log and the member protocol, which the real
 * ingest adds; candidate search here is one batch sort, not per-record index lookups.
 *
 * Output: a table and one machine-readable `bench=mpi_scale ...` line. A matcher has no raw
 * baseline to run in the same process: ratio_vs_target is the end-to-end records/s over the
 * issue's target of 20,000 records/s.
 *
 * Limits: --count at most COUNT_MAX persons; the run stops (exit 1, reason on stderr) rather
 * than swap when candidate pairs exceed PAIRS_MAX. Every loop is bounded by the record or pair
 * count, EM by EM_ROUNDS_MAX, the generator by GEN_TIMEOUT_MS.
 *
 * usage: bench_mpi_scale [--count N] [--threads T] [--smoke]
 */
#include "harness.h"
#include "hie/mpi.h"
#include "mpi_link.h"

#include <csv.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define SEED 42u
#define COUNT_DEFAULT 1000000u
#define COUNT_SMOKE 2000u
/* ~1.65 records per person, ~0.9 KB per normalized record: 4 M persons is ~6 GB of records. */
#define COUNT_MAX 4000000u
/* Record numbers share a uint32_t with the blocking key's number (5 bits). */
#define RECORDS_MAX (1u << 27)
#define REC_MASK (RECORDS_MAX - 1u)
#define KEY_SHIFT 27u
#define FIELDS_MAX 16u
#define BLOCK_SIZE_MAX 500u
#define U_SAMPLES 200000u
#define U_SAMPLES_SMOKE 2000u
#define EM_ROUNDS_MAX 100u
#define PRIOR_ROUNDS_MAX 200u
/* Memory bound on candidate pairs: a pair costs 4 bytes (CSR) + 12 while linking (the record
 * it pairs with in the transposed CSR, and its weight; training's 9 for the prior's vector are
 * freed by then) = PAIR_BYTES; at most PAIRS_MAX (11.2 GB, sized for the 24 GiB reference
 * machine), and never more than half the physical memory. The run stops there rather than
 * swap. */
#define PAIRS_MAX 700000000u
#define PAIR_BYTES 16u
#define THREADS_DEFAULT 2u
#define THREADS_MAX 8u
#define GEN_TIMEOUT_MS (10 * 60 * 1000)
#define TARGET_RPS 20000.0
#define NONE UINT32_MAX

_Static_assert(HIE_MPI_BLOCK_KEYS <= (1u << (32u - KEY_SHIFT)), "key number fits in 5 bits");
_Static_assert(COUNT_MAX * 4ull < RECORDS_MAX, "records of COUNT_MAX persons fit");

static unsigned g_threads = THREADS_DEFAULT;
static size_t g_pairs_max = PAIRS_MAX;

struct dataset {
    hie_mpi_person_t *p;
    uint32_t *truth; /* true cluster per record */
    size_t n, cap;
    size_t bad_rows;
    bool full;       /* RECORDS_MAX reached or out of memory */
};

static double
secs_since(uint64_t t0)
{
    return (double)(hie_time_mono_ns() - t0) / 1e9;
}

/* ---- parallel ranges --------------------------------------------------------------------- */

typedef void range_fn(void *ctx, size_t lo, size_t hi);

struct range_job {
    range_fn *fn;
    void *ctx;
    size_t lo, hi;
};

static void *
range_thread(void *arg)
{
    struct range_job *j = arg;
    j->fn(j->ctx, j->lo, j->hi);
    return NULL;
}

/* Calls fn on g_threads contiguous slices of [0, count), one per thread (the caller runs the
 * first); a thread that cannot start has its slice run by the caller. */
static void
parallel_for(size_t count, range_fn *fn, void *ctx)
{
    pthread_t tid[THREADS_MAX];
    bool started[THREADS_MAX] = {false};
    struct range_job job[THREADS_MAX];
    unsigned t = count < 1024 ? 1 : g_threads;
    for (unsigned k = 0; k < t; k++) {
        job[k] = (struct range_job){fn, ctx, count * k / t, count * (k + 1) / t};
    }
    for (unsigned k = 1; k < t; k++) {
        started[k] = pthread_create(&tid[k], NULL, range_thread, &job[k]) == 0;
    }
    fn(ctx, job[0].lo, job[0].hi);
    for (unsigned k = 1; k < t; k++) {
        if (started[k]) {
            pthread_join(tid[k], NULL);
        } else {
            fn(ctx, job[k].lo, job[k].hi);
        }
    }
}

/* ---- stage 1: parse and normalize (as bench_mpi_accuracy) -------------------------------- */

struct row {
    char field[FIELDS_MAX][160];
    unsigned nfields;
    bool header_done;
    struct dataset *ds;
};

static void
norm_name(const char *in, char *out, size_t cap)
{
    out[0] = '\0';
    if (hie_mpi_name_normalize(hie_span(in, strlen(in)), out, cap, NULL) != 0) {
        out[0] = '\0';
    }
}

static void
person_finish(hie_mpi_person_t *p)
{
    char first[HIE_MPI_FIELD_BYTES];
    snprintf(first, sizeof(first), "%s", p->given);
    char *sp = strchr(first, ' ');
    if (sp != NULL) {
        *sp = '\0'; /* the first given name is the one compared */
        snprintf(p->given, sizeof(p->given), "%s", first);
    }
    if (p->given[0] != '\0' &&
        hie_mpi_given_canonical(p->given, p->given_canon, sizeof(p->given_canon)) != 0) {
        p->given_canon[0] = '\0';
    }
    hie_mpi_person_prepare(p);
}

static uint32_t
parse_date(const char *s)
{
    uint32_t d = 0;
    if (s[0] == '\0' || hie_mpi_date_parse(hie_span(s, strlen(s)), &d) != 0) {
        return 0;
    }
    return d;
}

static uint32_t
febrl_truth(const char *rec_id)
{
    /* rec-<N>-org / rec-<N>-dup-<k> */
    const char *p = strchr(rec_id, '-');
    return p != NULL ? (uint32_t)strtoul(p + 1, NULL, 10) : UINT32_MAX;
}

static void
row_febrl(const struct row *r, hie_mpi_person_t *p, uint32_t *truth)
{
    char street[2 * 160];
    norm_name(r->field[1], p->given, sizeof(p->given));
    norm_name(r->field[2], p->family, sizeof(p->family));
    snprintf(street, sizeof(street), "%s %s", r->field[3], r->field[4]);
    norm_name(street, p->street, sizeof(p->street)); /* addresses: the names' folding */
    norm_name(r->field[6], p->city, sizeof(p->city));
    if (hie_mpi_postcode_normalize(hie_span(r->field[7], strlen(r->field[7])), p->postcode,
            sizeof(p->postcode)) != 0) {
        p->postcode[0] = '\0';
    }
    p->dob = parse_date(r->field[9]);
    snprintf(p->national_id, sizeof(p->national_id), "%.31s", r->field[10]);
    *truth = febrl_truth(r->field[0]);
}

static void
on_field(void *s, size_t len, void *data)
{
    struct row *r = data;
    if (r->nfields < FIELDS_MAX) {
        size_t n = len < 159 ? len : 159;
        memcpy(r->field[r->nfields], s != NULL ? s : "", s != NULL ? n : 0);
        r->field[r->nfields][s != NULL ? n : 0] = '\0';
    }
    r->nfields++;
}

/* Room for one more record: the arrays double (no fixed record cap below RECORDS_MAX). */
static bool
dataset_grow(struct dataset *ds)
{
    if (ds->n < ds->cap) {
        return true;
    }
    size_t cap = ds->cap ? ds->cap * 2 : 65536;
    cap = cap > RECORDS_MAX ? RECORDS_MAX : cap;
    if (ds->n >= cap) {
        return false;
    }
    hie_mpi_person_t *p = realloc(ds->p, cap * sizeof(*p));
    if (p == NULL) {
        return false;
    }
    ds->p = p;
    uint32_t *t = realloc(ds->truth, cap * sizeof(*t));
    if (t == NULL) {
        return false;
    }
    ds->truth = t;
    ds->cap = cap;
    return true;
}

static void
on_row(int c, void *data)
{
    (void)c;
    struct row *r = data;
    struct dataset *ds = r->ds;
    if (!r->header_done) {
        r->header_done = true;
    } else if (r->nfields != 11u) {
        ds->bad_rows++;
    } else if (!dataset_grow(ds)) {
        ds->full = true;
    } else {
        hie_mpi_person_t *p = &ds->p[ds->n];
        memset(p, 0, sizeof(*p));
        row_febrl(r, p, &ds->truth[ds->n]);
        person_finish(p);
        ds->n++;
    }
    r->nfields = 0;
}

static int
is_space(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* Streams path through libcsv into ds. Returns 0, or -1 with the reason printed. */
static int
load(const char *path, struct dataset *ds)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "bench_mpi_scale: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct csv_parser parser;
    static struct row r;
    memset(&r, 0, sizeof(r));
    r.ds = ds;
    if (csv_init(&parser, CSV_APPEND_NULL) != 0) {
        fclose(f);
        return -1;
    }
    csv_set_space_func(&parser, is_space); /* FEBRL separates with ", " */
    static char buf[1 << 16];
    size_t n;
    int rc = 0;
    while (rc == 0 && !ds->full && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (csv_parse(&parser, buf, n, on_field, on_row, &r) != n) {
            fprintf(stderr, "bench_mpi_scale: CSV error: %s\n",
                csv_strerror(csv_error(&parser)));
            rc = -1;
        }
    }
    csv_fini(&parser, on_field, on_row, &r);
    csv_free(&parser);
    fclose(f);
    if (ds->full) {
        fprintf(stderr, "bench_mpi_scale: out of memory or over %u records at record %zu\n",
            RECORDS_MAX, ds->n);
        rc = -1;
    }
    return rc;
}

/* ---- stage 2: blocking keys and candidate pairs ------------------------------------------ */

static const uint8_t block_secret[16] = "bench-block-key";

/* Short names of the keys of hie_mpi_block_keys(), in its order. */
static const char *const key_names[HIE_MPI_BLOCK_KEYS] = {
    "nysiis(family)+given[0:2]+decade", "given[0]+dob", "postcode+dob", "name codes",
    "national id", "dob+family[0]", "month-day+nysiis(given)", "email|phone",
    "nysiis(family)+postcode", "city+nysiis(given)", "month-day+nysiis(family)", "street",
    "year-month+family[0]+given[0]", "city+year+given[0]", "email local part",
    "nysiis(family) broad", "nysiis(given) broad", "dob broad"};

/* Candidate pairs (i, j), i < j, as CSR: the j of record i are nbr[off[i] .. off[i + 1]),
 * ascending, so the pairs run in the order of bench_mpi_accuracy's sorted packed pairs. */
struct csr {
    uint64_t *off;
    uint32_t *nbr;
    size_t n, pairs;
};

static void
csr_free(struct csr *c)
{
    free(c->off);
    free(c->nbr);
    memset(c, 0, sizeof(*c));
}

/* Appends the nt candidates in tmp as record i's. Returns 0, or -1 with the reason printed
 * (out of memory, or more than g_pairs_max pairs). */
static int
csr_append(struct csr *c, size_t *cap, size_t i, const uint32_t *tmp, size_t nt)
{
    if (c->pairs + nt > g_pairs_max) {
        fprintf(stderr, "bench_mpi_scale: more than %zu candidate pairs by record %zu of %zu "
            "(memory bound, %.1f GB at %u bytes a pair): stopped rather than swap\n",
            g_pairs_max, i, c->n, (double)g_pairs_max * PAIR_BYTES / 1e9, PAIR_BYTES);
        return -1;
    }
    while (c->pairs + nt > *cap) {
        *cap *= 2;
        uint32_t *x = realloc(c->nbr, *cap * sizeof(*x));
        if (x == NULL) {
            return -1;
        }
        c->nbr = x;
    }
    memcpy(&c->nbr[c->pairs], tmp, nt * sizeof(*tmp));
    c->pairs += nt;
    c->off[i + 1] = c->pairs;
    return 0;
}

/* The candidate pairs of every blocking key, from the library's block index.
 * Returns 0, or -1 with the reason printed. */
static int
csr_build(const hie_mpi_blocks_t *bl, size_t n, struct csr *c)
{
    static uint32_t tmp[HIE_MPI_BLOCK_KEYS * BLOCK_SIZE_MAX];
    size_t cap = (size_t)1 << 20;
    memset(c, 0, sizeof(*c));
    c->n = n;
    c->off = malloc((n + 1) * sizeof(*c->off));
    c->nbr = malloc(cap * sizeof(*c->nbr));
    if (c->off == NULL || c->nbr == NULL) {
        csr_free(c);
        return -1;
    }
    c->off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nt = 0;
        hie_mpi_blocks_pairs(bl, i, UINT32_MAX, tmp, HIE_ARRAY_LEN(tmp), &nt);
        if (csr_append(c, &cap, i, tmp, nt) != 0) {
            csr_free(c);
            return -1;
        }
    }
    return 0;
}

/* ---- comparing pairs in parallel --------------------------------------------------------- */

/* The candidates of every record j among the records before it (mpi_link.h's start and
 * earlier: the CSR transposed, i ascending) and the weight of each pair. */
struct later {
    uint64_t *start;
    uint32_t *earlier;
    double *w;
};

static void
later_free(struct later *l)
{
    free(l->start);
    free(l->earlier);
    free(l->w);
    memset(l, 0, sizeof(*l));
}

/* Transposes c (by earlier record) into l (by later record). Returns 0 or -1 (memory). */
static int
later_build(const struct csr *c, struct later *l)
{
    l->start = calloc(c->n + 1, sizeof(*l->start));
    l->earlier = malloc((c->pairs ? c->pairs : 1) * sizeof(*l->earlier));
    l->w = malloc((c->pairs ? c->pairs : 1) * sizeof(*l->w));
    uint64_t *fill = calloc(c->n + 1, sizeof(*fill));
    if (l->start == NULL || l->earlier == NULL || l->w == NULL || fill == NULL) {
        free(fill);
        later_free(l);
        return -1;
    }
    for (size_t k = 0; k < c->pairs; k++) {
        l->start[c->nbr[k] + 1]++;
    }
    for (size_t j = 0; j < c->n; j++) {
        l->start[j + 1] += l->start[j];
    }
    for (size_t i = 0; i < c->n; i++) { /* i ascending: each j's earlier list is sorted */
        for (uint64_t k = c->off[i]; k < c->off[i + 1]; k++) {
            uint32_t j = c->nbr[k];
            l->earlier[l->start[j] + fill[j]++] = (uint32_t)i;
        }
    }
    free(fill);
    return 0;
}

/* Records lo .. hi of a later index: the weight of each of their pairs, as mpi_link.c's
 * pair_weight() computes it. */
struct weigh_job {
    const struct dataset *ds;
    struct later *l;
    const hie_mpi_model_t *m;
    const hie_mpi_tf_t *tf;
};

static void
weigh_range(void *ctx, size_t lo, size_t hi)
{
    const struct weigh_job *wj = ctx;
    const hie_mpi_person_t *p = wj->ds->p;
    for (size_t j = lo; j < hi; j++) {
        for (uint64_t q = wj->l->start[j]; q < wj->l->start[j + 1]; q++) {
            hie_mpi_vector_t v;
            hie_mpi_compare(&p[j], &p[wj->l->earlier[q]], &v);
            wj->l->w[q] = hie_mpi_weight(wj->m, wj->tf, &p[j], &v, NULL);
        }
    }
}

/* ---- stage 3: training (as bench_mpi_accuracy) ------------------------------------------- */

struct train_stats {
    double tf_s;
    hie_mpi_train_stats_t lib;
};

/* Term frequencies, then hie_mpi_train() (u, the two m sessions, the prior), with the
 * national id: bench_mpi_accuracy's run_one(). */
static int
train(const struct dataset *ds, bool smoke, hie_mpi_model_t *m, hie_mpi_tf_t **tf,
    struct train_stats *st)
{
    uint64_t t0 = hie_time_mono_ns();
    hie_mpi_model_default(m);
    m->enabled[HIE_MPI_F_NATIONAL_ID] = true;
    if (hie_mpi_tf_create(tf, ds->n * 2) != 0) {
        return -1;
    }
    for (size_t i = 0; i < ds->n; i++) {
        if (hie_mpi_tf_add(*tf, &ds->p[i]) != 0) {
            return -1; /* sized for twice the records: cannot fill */
        }
    }
    st->tf_s = secs_since(t0);
    hie_mpi_train_opts_t opts;
    hie_mpi_train_opts_default(&opts);
    opts.u_samples = smoke ? U_SAMPLES_SMOKE : U_SAMPLES;
    opts.block_size_max = BLOCK_SIZE_MAX;
    opts.em_rounds_max = EM_ROUNDS_MAX;
    opts.prior_rounds_max = PRIOR_ROUNDS_MAX;
    opts.seed = SEED;
    return hie_mpi_train(m, ds->p, ds->n, block_secret, &opts, &st->lib) == 0 ? 0 : -1;
}

/* ---- stage 4: linking (as bench_mpi_accuracy: mpi_link.h) -------------------------------- */

struct link_stats {
    double weigh_s, decide_s;
    size_t review, linked;
};

/* Links records in file order by the benches' one rule (mpi_link.h), the pairs weighed by the
 * threads first. [out] cluster[n]. Returns 0 or -1 (out of memory). */
static int
link_records(const struct dataset *ds, const hie_mpi_model_t *m, const hie_mpi_tf_t *tf,
    const struct csr *c, uint32_t *cluster, struct link_stats *st)
{
    struct later l = {0};
    uint64_t t0 = hie_time_mono_ns();
    if (later_build(c, &l) != 0) {
        return -1;
    }
    struct weigh_job wj = {ds, &l, m, tf};
    parallel_for(ds->n, weigh_range, &wj);
    st->weigh_s = secs_since(t0);
    t0 = hie_time_mono_ns();
    bench_link_in_t in = {ds->p, ds->n, m, tf, l.start, l.earlier, l.w};
    bench_link_out_t out = {cluster, 0, 0};
    int rc = bench_mpi_link(&in, &out);
    st->decide_s = secs_since(t0);
    st->linked = out.linked;
    st->review = out.review;
    later_free(&l);
    return rc;
}

/* ---- evaluation (not timed into the rates) ----------------------------------------------- */

struct result {
    double precision, recall, f1, blocking_recall;
    size_t pred_pairs, true_pairs, tp;
};

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Pairwise precision/recall of a clustering against the truth. Returns 0 or -1 (memory). */
static int
score(const struct dataset *ds, const uint32_t *cluster, struct result *r)
{
    uint64_t *key = malloc((ds->n ? ds->n : 1) * sizeof(*key));
    if (key == NULL) {
        return -1;
    }
    size_t tp = 0, pp = 0, tt = 0;
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < ds->n; i++) {
            uint64_t a = cluster[i], b = ds->truth[i];
            key[i] = pass == 0 ? (a << 32 | b) : pass == 1 ? a : b;
        }
        qsort(key, ds->n, sizeof(*key), cmp_u64);
        size_t sum = 0;
        for (size_t s = 0; s < ds->n;) {
            size_t e = s;
            while (e < ds->n && key[e] == key[s]) {
                e++;
            }
            sum += (e - s) * (e - s - 1) / 2;
            s = e;
        }
        *(pass == 0 ? &tp : pass == 1 ? &pp : &tt) = sum;
    }
    free(key);
    r->tp = tp;
    r->pred_pairs = pp;
    r->true_pairs = tt;
    r->precision = pp ? (double)tp / (double)pp : 1.0;
    r->recall = tt ? (double)tp / (double)tt : 1.0;
    r->f1 = r->precision + r->recall > 0 ? 2 * r->precision * r->recall /
        (r->precision + r->recall) : 0;
    return 0;
}

/* ---- driver ------------------------------------------------------------------------------ */

/* The generator next to this binary (argv[0]'s directory, else /proc/self/exe's). */
static int
gen_path(const char *argv0, char *out, size_t out_bytes)
{
    char self[BENCH_PATH_BYTES];
    const char *dir = argv0;
    if (strchr(argv0, '/') == NULL) {
        ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (len <= 0) {
            return -1;
        }
        self[len] = '\0';
        dir = self;
    }
    const char *slash = strrchr(dir, '/');
    int len = snprintf(out, out_bytes, "%.*s/gen_persons", (int)(slash - dir), dir);
    if (len < 0 || (size_t)len >= out_bytes) {
        return -1;
    }
    return access(out, X_OK) == 0 ? 0 : -1;
}

/* The records= figure of the generator's summary in its log, or 0. */
static size_t
gen_records(const char *log)
{
    FILE *f = fopen(log, "r");
    char line[1024];
    size_t records = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        const char *r = strstr(line, " records=");
        if (r != NULL) {
            records = (size_t)strtoull(r + 9, NULL, 10);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return records;
}

static void
print_log(const char *log)
{
    FILE *f = fopen(log, "r");
    char line[1024];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        fprintf(stderr, "  %s", line);
    }
    if (f != NULL) {
        fclose(f);
    }
}

static double
peak_rss_mb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0;
}

static double
rps(size_t n, double s)
{
    return s > 0 ? (double)n / s : 0;
}

static int
fail(const char *what)
{
    fprintf(stderr, "bench_mpi_scale: %s failed\n", what);
    return 1;
}

int
main(int argc, char **argv)
{
    unsigned long count = COUNT_DEFAULT;
    bool smoke = false, count_set = false;
    static const struct option opts[] = {{"count", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'}, {"smoke", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "n:t:s", opts, NULL)) != -1) {
        char *end = NULL;
        if (ch == 'n') {
            count = strtoul(optarg, &end, 10);
            count_set = true;
            if (*end != '\0' || count < 2 || count > COUNT_MAX) {
                fprintf(stderr, "bench_mpi_scale: --count takes 2..%u\n", COUNT_MAX);
                return 2;
            }
        } else if (ch == 't') {
            unsigned long t = strtoul(optarg, &end, 10);
            if (*end != '\0' || t < 1 || t > THREADS_MAX) {
                fprintf(stderr, "bench_mpi_scale: --threads takes 1..%u\n", THREADS_MAX);
                return 2;
            }
            g_threads = (unsigned)t;
        } else if (ch == 's') {
            smoke = true;
        } else {
            fprintf(stderr, "usage: bench_mpi_scale [--count N] [--threads T] [--smoke]\n");
            return 2;
        }
    }
    if (smoke && !count_set) {
        count = COUNT_SMOKE;
    }
    if (sodium_init() < 0) {
        return fail("sodium_init");
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 &&
        (double)pages * (double)page / 2 / PAIR_BYTES < (double)g_pairs_max) {
        g_pairs_max = (size_t)((double)pages * (double)page / 2 / PAIR_BYTES);
    }
    char gen[BENCH_PATH_BYTES], root[BENCH_ROOT_BYTES], csv_path[BENCH_PATH_BYTES],
        log[BENCH_PATH_BYTES], count_arg[32];
    if (gen_path(argv[0], gen, sizeof(gen)) != 0) {
        fprintf(stderr, "bench_mpi_scale: the generator %s is missing or not executable "
            "(build it: make gen_persons)\n", gen);
        return 1;
    }
    if (bench_setup(root, sizeof(root), false) != 0) {
        return fail("creating the temporary directory");
    }
    snprintf(csv_path, sizeof(csv_path), "%s/persons.csv", root);
    snprintf(log, sizeof(log), "%s/gen_persons.log", root);
    snprintf(count_arg, sizeof(count_arg), "%lu", count);

    /* generate (not part of the rates) */
    const char *gen_argv[] = {gen, "--count", count_arg, "--seed", "42", "--out", csv_path,
        NULL};
    uint64_t t0 = hie_time_mono_ns();
    int rc = bench_run(gen_argv, log, GEN_TIMEOUT_MS);
    double gen_s = secs_since(t0);
    if (rc != 0) {
        fprintf(stderr, "bench_mpi_scale: %s exited with %d:\n", gen, rc);
        print_log(log);
        return 1;
    }
    size_t expected = gen_records(log);
    fprintf(stderr, "# generated %lu persons, %zu records in %.2f s\n", count, expected, gen_s);

    /* 1. parse + normalize */
    struct dataset ds = {0};
    t0 = hie_time_mono_ns();
    if (load(csv_path, &ds) != 0) {
        return fail("loading");
    }
    double norm_s = secs_since(t0);
    (void)unlink(csv_path);
    if (ds.n < 2 || ds.n != expected || ds.bad_rows != 0) {
        fprintf(stderr, "bench_mpi_scale: loaded %zu records (%zu bad rows), the generator "
            "wrote %zu\n", ds.n, ds.bad_rows, expected);
        return 1;
    }
    fprintf(stderr, "# 1 normalized %zu records in %.2f s\n", ds.n, norm_s);

    /* 2. blocking keys + candidate pairs */
    hie_mpi_blocks_t *bl = NULL;
    struct csr cand;
    t0 = hie_time_mono_ns();
    if (hie_mpi_blocks_create(&bl, ds.p, ds.n, block_secret, BLOCK_SIZE_MAX) != 0) {
        return fail("blocking (out of memory)");
    }
    double keys_s = secs_since(t0);
    if (csr_build(bl, ds.n, &cand) != 0) {
        return fail("candidate pairs");
    }
    double block_s = secs_since(t0);
    hie_mpi_blocks_stats_t bst;
    hie_mpi_blocks_stats(bl, &bst);
    hie_mpi_blocks_destroy(&bl); /* a real index keeps its blocks; the bench no longer needs them */
    /* the index holds a 16-byte entry and a 4-byte position per record and key */
    size_t block_bytes = ds.n * HIE_MPI_BLOCK_KEYS * 20u;
    size_t cand_bytes = (ds.n + 1) * sizeof(*cand.off) + cand.pairs * sizeof(*cand.nbr);
    fprintf(stderr, "# 2 %zu candidate pairs in %.2f s\n", cand.pairs, block_s);
    if (cand.pairs == 0) {
        fprintf(stderr, "bench_mpi_scale: no candidate pairs\n");
        return 1;
    }

    /* 3. training */
    hie_mpi_model_t m;
    hie_mpi_tf_t *tf = NULL;
    struct train_stats ts = {0};
    t0 = hie_time_mono_ns();
    if (train(&ds, smoke, &m, &tf, &ts) != 0) {
        return fail("training");
    }
    double train_s = secs_since(t0);
    size_t blocks = bst.blocks, capped_blocks = bst.capped_blocks;
    char per_key[HIE_MPI_BLOCK_KEYS * 64];
    size_t used = 0;
    for (unsigned b = 0; b < HIE_MPI_BLOCK_KEYS; b++) {
        int w = snprintf(per_key + used, sizeof(per_key) - used, " %s=%zu(%zu)", key_names[b],
            bst.key_pairs[b], bst.key_capped[b]);
        used += w > 0 && (size_t)w < sizeof(per_key) - used ? (size_t)w : 0;
    }
    fprintf(stderr, "# 3 trained in %.2f s\n", train_s);

    /* 4. linking */
    uint32_t *cluster = malloc(ds.n * sizeof(*cluster));
    struct link_stats ls = {0};
    t0 = hie_time_mono_ns();
    if (cluster == NULL || link_records(&ds, &m, tf, &cand, cluster, &ls) != 0) {
        return fail("linking (out of memory)");
    }
    double link_s = secs_since(t0);
    fprintf(stderr, "# 4 linked in %.2f s\n", link_s);

    /* evaluation */
    struct result r = {0};
    t0 = hie_time_mono_ns();
    if (score(&ds, cluster, &r) != 0) {
        return fail("scoring (out of memory)");
    }
    size_t cand_true = 0;
    for (size_t i = 0; i < ds.n; i++) {
        for (size_t k = cand.off[i]; k < cand.off[i + 1]; k++) {
            cand_true += ds.truth[i] == ds.truth[cand.nbr[k]];
        }
    }
    r.blocking_recall = r.true_pairs ? (double)cand_true / (double)r.true_pairs : 1.0;
    double eval_s = secs_since(t0);

    double ingest_s = norm_s + block_s + link_s, total_s = ingest_s + train_s;
    double rss = peak_rss_mb();
    printf("# bench_mpi_scale: %lu persons (gen_persons seed %u), %zu records, %u thread%s "
        "(stages 2 and 4), in memory: no LMDB, no sealing\n", count, SEED, ds.n, g_threads,
        g_threads == 1 ? "" : "s");
    printf("%-22s %9s %11s  %s\n", "stage", "secs", "records/s", "detail");
    printf("%-22s %9.2f %11.0f  %s\n", "generate (not counted)", gen_s, rps(ds.n, gen_s),
        "gen_persons child process");
    printf("%-22s %9.2f %11.0f  %zu records, %zu bad rows\n", "1 parse+normalize", norm_s,
        rps(ds.n, norm_s), ds.n, ds.bad_rows);
    printf("%-22s %9.2f %11.0f  keys+sort %.2f s, %zu blocks, %zu capped (>%u), %zu candidate "
        "pairs (%.1f/record), %.0f MB\n", "2 blocking+candidates", block_s, rps(ds.n, block_s),
        keys_s, blocks, capped_blocks, BLOCK_SIZE_MAX, cand.pairs,
        (double)cand.pairs / (double)ds.n, (double)(block_bytes + cand_bytes) / 1e6);
    printf("%-22s %9.2f %11.0f  tf %.2f s, hie_mpi_train %.2f s (EM %zu+%zu pairs, %u rounds; "
        "prior on %zu of %zu pairs; one thread)\n", "3 training", train_s, rps(ds.n, train_s),
        ts.tf_s, train_s - ts.tf_s, ts.lib.session_pairs[0], ts.lib.session_pairs[1],
        ts.lib.em_rounds, ts.lib.prior_pairs, ts.lib.candidate_pairs);
    printf("%-22s %9.2f %11.0f  compare+weight %.2f s (%.0f ns/pair), decide %.2f s; "
        "%zu linked, %zu review\n", "4 linking", link_s, rps(ds.n, link_s), ls.weigh_s,
        ls.weigh_s * 1e9 / (double)cand.pairs, ls.decide_s, ls.linked, ls.review);
    printf("%-22s %9.2f %11.0f  stages 1+2+4 (model given)\n", "ingest", ingest_s,
        rps(ds.n, ingest_s));
    printf("%-22s %9.2f %11.0f  stages 1-4; target %.0f records/s: ratio %.2f\n", "total",
        total_s, rps(ds.n, total_s), TARGET_RPS, rps(ds.n, total_s) / TARGET_RPS);
    printf("%-22s %9.2f %11s  precision %.4f recall %.4f f1 %.4f, blocking recall %.4f, "
        "%zu true pairs; peak RSS %.0f MB\n", "evaluation", eval_s, "-", r.precision,
        r.recall, r.f1, r.blocking_recall, r.true_pairs, rss);
    printf("# pairs per blocking key, before dedup (capped blocks):%s\n", per_key);
    printf("bench=mpi_scale persons=%lu records=%zu threads=%u normalize_s=%.2f "
        "normalize_rps=%.0f block_s=%.2f block_rps=%.0f candidates=%zu capped_blocks=%zu "
        "candidate_mb=%.0f train_s=%.2f em_rounds=%u lambda=%.2e link_s=%.2f link_rps=%.0f "
        "ns_pair=%.0f ingest_rps=%.0f total_s=%.2f total_rps=%.0f ns_record=%.0f "
        "peak_rss_mb=%.0f precision=%.4f recall=%.4f f1=%.4f blocking_recall=%.4f review=%zu "
        "target_rps=%.0f ratio_vs_target=%.3f\n", count, ds.n, g_threads, norm_s,
        rps(ds.n, norm_s), block_s, rps(ds.n, block_s), cand.pairs, capped_blocks,
        (double)(block_bytes + cand_bytes) / 1e6, train_s, ts.lib.em_rounds, m.lambda, link_s,
        rps(ds.n, link_s), link_s * 1e9 / (double)cand.pairs, rps(ds.n, ingest_s), total_s,
        rps(ds.n, total_s), total_s * 1e9 / (double)ds.n, rss, r.precision, r.recall, r.f1,
        r.blocking_recall, ls.review, TARGET_RPS, rps(ds.n, total_s) / TARGET_RPS);
    free(cluster);
    csr_free(&cand);
    hie_mpi_tf_destroy(&tf);
    free(ds.p);
    free(ds.truth);
    return 0;
}
