/*
 * bench_mpi_accuracy.c - matching accuracy of the Fellegi-Sunter matcher on the labelled
 * synthetic data in ../shared/data (FEBRL1, FEBRL2, Splink fake_1000).
 *
 * For each data set, with and without the national identifier (soc_sec_id): normalize every
 * record as the identity feed does, estimate u from random pairs and m by EM over the blocked
 * candidate pairs (no per-data-set tuning: default thresholds), then link the records one by
 * one in file order as the index does (mpi_link.h: clusters scored as composites,
 * hie_mpi_decide() links, merges or sends to review), and report pairwise precision, recall and F1 over all true pairs (pairs lost to blocking count as
 * misses) and the size of the review band. Baseline in the same run: deterministic linking on
 * exact given + family + birth date.
 *
 * usage: bench_mpi_accuracy [--data DIR] [--smoke]
 */
#include "hie/mpi.h"
#include "mpi_link.h"

#include <csv.h>
#include <getopt.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORDS_MAX 100000u
#define FIELDS_MAX 16u
#define BLOCK_SIZE_MAX 500u
#define U_SAMPLES 200000u
#define EM_ROUNDS_MAX 100u
#define SEED 42u

struct dataset {
    hie_mpi_person_t *p;
    uint32_t *truth;       /* true cluster per record */
    size_t n;
    size_t bad_rows;
};

/* ---- loading ---------------------------------------------------------------------------- */

struct row {
    char field[FIELDS_MAX][160];
    unsigned nfields;
    unsigned line;
    bool header_done;
    int kind;               /* 0 febrl, 1 splink */
    struct dataset *ds;
    uint32_t *splink_ids;   /* not used */
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
norm_text(const char *in, char *out, size_t cap)
{
    norm_name(in, out, cap); /* addresses and cities: same folding, honorifics aside */
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
row_febrl(struct row *r, hie_mpi_person_t *p, uint32_t *truth)
{
    char street[2 * 160];
    norm_name(r->field[1], p->given, sizeof(p->given));
    norm_name(r->field[2], p->family, sizeof(p->family));
    snprintf(street, sizeof(street), "%s %s", r->field[3], r->field[4]);
    norm_text(street, p->street, sizeof(p->street));
    norm_text(r->field[6], p->city, sizeof(p->city));
    if (hie_mpi_postcode_normalize(hie_span(r->field[7], strlen(r->field[7])), p->postcode,
            sizeof(p->postcode)) != 0) {
        p->postcode[0] = '\0';
    }
    p->dob = parse_date(r->field[9]);
    snprintf(p->national_id, sizeof(p->national_id), "%.31s", r->field[10]);
    *truth = febrl_truth(r->field[0]);
}

static void
row_splink(struct row *r, hie_mpi_person_t *p, uint32_t *truth)
{
    norm_name(r->field[1], p->given, sizeof(p->given));
    norm_name(r->field[2], p->family, sizeof(p->family));
    p->dob = parse_date(r->field[3]);
    norm_text(r->field[4], p->city, sizeof(p->city));
    snprintf(p->email, sizeof(p->email), "%.127s", r->field[5]);
    *truth = (uint32_t)strtoul(r->field[6], NULL, 10);
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

static void
on_row(int c, void *data)
{
    (void)c;
    struct row *r = data;
    struct dataset *ds = r->ds;
    r->line++;
    unsigned want = r->kind == 0 ? 11u : 7u;
    if (!r->header_done) {
        r->header_done = true;
    } else if (r->nfields != want || ds->n >= RECORDS_MAX) {
        ds->bad_rows++;
    } else {
        hie_mpi_person_t *p = &ds->p[ds->n];
        memset(p, 0, sizeof(*p));
        if (r->kind == 0) {
            row_febrl(r, p, &ds->truth[ds->n]);
        } else {
            row_splink(r, p, &ds->truth[ds->n]);
        }
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

static int
load(const char *path, int kind, struct dataset *ds)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return -1;
    }
    memset(ds, 0, sizeof(*ds));
    ds->p = calloc(RECORDS_MAX, sizeof(*ds->p));
    ds->truth = calloc(RECORDS_MAX, sizeof(*ds->truth));
    struct csv_parser parser;
    static struct row r;
    memset(&r, 0, sizeof(r));
    r.kind = kind;
    r.ds = ds;
    csv_init(&parser, CSV_APPEND_NULL);
    csv_set_space_func(&parser, is_space); /* FEBRL separates with ", " */
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (csv_parse(&parser, buf, n, on_field, on_row, &r) != n) {
            break;
        }
    }
    csv_fini(&parser, on_field, on_row, &r);
    csv_free(&parser);
    fclose(f);
    return 0;
}

/* ---- candidate pairs ------------------------------------------------------------------- */

static const uint8_t block_secret[16] = "bench-block-key";

/* Every candidate pair of the library's block index (i < j, packed i << 32 | j), in (i, j)
 * order: the pairs hie_mpi_train() trains the prior on. [out] capped_blocks. */
static uint64_t *
candidate_pairs(const struct dataset *ds, size_t *count, size_t *capped_blocks)
{
    hie_mpi_blocks_t *bl = NULL;
    if (hie_mpi_blocks_create(&bl, ds->p, ds->n, block_secret, BLOCK_SIZE_MAX) != 0) {
        fprintf(stderr, "bench_mpi_accuracy: blocking failed\n");
        exit(1);
    }
    size_t tmp_cap = HIE_MPI_BLOCK_KEYS * BLOCK_SIZE_MAX, cap = 1 << 16, np = 0;
    uint32_t *tmp = malloc(tmp_cap * sizeof(*tmp));
    uint64_t *pairs = malloc(cap * sizeof(*pairs));
    for (size_t i = 0; i < ds->n && tmp != NULL && pairs != NULL; i++) {
        size_t n = 0;
        hie_mpi_blocks_pairs(bl, i, UINT32_MAX, tmp, tmp_cap, &n);
        while (np + n > cap) {
            cap *= 2;
            pairs = realloc(pairs, cap * sizeof(*pairs));
        }
        for (size_t k = 0; k < n && pairs != NULL; k++) {
            pairs[np++] = (uint64_t)i << 32 | tmp[k];
        }
    }
    if (tmp == NULL || pairs == NULL) {
        fprintf(stderr, "bench_mpi_accuracy: out of memory\n");
        exit(1);
    }
    hie_mpi_blocks_stats_t st;
    hie_mpi_blocks_stats(bl, &st);
    *capped_blocks = st.capped_blocks;
    *count = np;
    free(tmp);
    hie_mpi_blocks_destroy(&bl);
    return pairs;
}

/* ---- linking and scoring ---------------------------------------------------------------- */

struct result {
    double precision, recall, f1;
    size_t review, linked, pred_pairs, true_pairs, tp;
};

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Pairwise precision/recall of a clustering against the truth. */
static void
score(const struct dataset *ds, const uint32_t *cluster, struct result *r)
{
    uint64_t *key = malloc(ds->n * sizeof(*key));
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
}

/* The earlier candidates of every record: earlier[start[j] .. start[j + 1]) lists the i < j
 * paired with j. pairs are (i, j), i < j. */
static uint32_t *
pairs_by_later(const struct dataset *ds, const uint64_t *pairs, size_t npairs, uint64_t **start)
{
    uint64_t *st = calloc(ds->n + 1, sizeof(*st));
    size_t *fill = calloc(ds->n, sizeof(*fill));
    uint32_t *earlier = malloc((npairs ? npairs : 1) * sizeof(*earlier));
    if (st == NULL || fill == NULL || earlier == NULL) {
        fprintf(stderr, "bench_mpi_accuracy: out of memory\n");
        exit(1);
    }
    for (size_t k = 0; k < npairs; k++) {
        st[(uint32_t)pairs[k] + 1]++;
    }
    for (size_t j = 0; j < ds->n; j++) {
        st[j + 1] += st[j];
    }
    for (size_t k = 0; k < npairs; k++) {
        uint32_t j = (uint32_t)pairs[k];
        earlier[st[j] + fill[j]++] = (uint32_t)(pairs[k] >> 32);
    }
    free(fill);
    *start = st;
    return earlier;
}

/* Links records in file order by the benches' one rule (mpi_link.h) and scores the
 * clustering. */
static void
link_records(const struct dataset *ds, const hie_mpi_model_t *m, const hie_mpi_tf_t *tf,
    const uint64_t *pairs, size_t npairs, struct result *r)
{
    uint64_t *start = NULL;
    uint32_t *earlier = pairs_by_later(ds, pairs, npairs, &start);
    uint32_t *cluster = malloc(ds->n * sizeof(*cluster));
    bench_link_in_t in = {ds->p, ds->n, m, tf, start, earlier, NULL};
    bench_link_out_t out = {cluster, 0, 0};
    if (cluster == NULL || bench_mpi_link(&in, &out) != 0) {
        fprintf(stderr, "bench_mpi_accuracy: out of memory\n");
        exit(1);
    }
    r->linked = out.linked;
    r->review = out.review;
    score(ds, cluster, r);
    free(start);
    free(earlier);
    free(cluster);
}

/* The deterministic baseline: same cluster iff exact given + family + birth date. */
static void
baseline(const struct dataset *ds, struct result *r)
{
    uint32_t *cluster = malloc(ds->n * sizeof(*cluster));
    static const uint8_t key[crypto_shorthash_KEYBYTES] = "bench-baseline..";
    for (size_t i = 0; i < ds->n; i++) {
        const hie_mpi_person_t *p = &ds->p[i];
        char text[3 * HIE_MPI_FIELD_BYTES];
        if (p->given[0] == '\0' || p->family[0] == '\0' || p->dob == 0) {
            cluster[i] = (uint32_t)(0x80000000u | i); /* incomplete: a singleton */
            continue;
        }
        snprintf(text, sizeof(text), "%s|%s|%u", p->given, p->family, p->dob);
        uint8_t h[crypto_shorthash_BYTES];
        crypto_shorthash(h, (const uint8_t *)text, strlen(text), key);
        memcpy(&cluster[i], h, sizeof(cluster[i]));
        cluster[i] &= 0x7fffffffu;
    }
    score(ds, cluster, r);
    free(cluster);
}

static void
run_one(const char *name, struct dataset *ds, bool with_id, bool smoke)
{
    hie_mpi_person_t *saved = NULL;
    if (!with_id) {
        saved = malloc(ds->n * sizeof(*saved));
        memcpy(saved, ds->p, ds->n * sizeof(*saved));
        for (size_t i = 0; i < ds->n; i++) {
            ds->p[i].national_id[0] = '\0';
            hie_mpi_person_prepare(&ds->p[i]);
        }
    }
    hie_mpi_model_t m;
    hie_mpi_model_default(&m);
    m.enabled[HIE_MPI_F_NATIONAL_ID] = with_id;
    hie_mpi_tf_t *tf = NULL;
    if (hie_mpi_tf_create(&tf, ds->n * 2) != 0) {
        abort();
    }
    for (size_t i = 0; i < ds->n; i++) {
        if (hie_mpi_tf_add(tf, &ds->p[i]) != 0) {
            abort(); /* sized for twice the records: cannot fill */
        }
    }
    size_t npairs = 0, capped = 0;
    uint64_t *pairs = candidate_pairs(ds, &npairs, &capped);
    size_t cand_true = 0;
    for (size_t k = 0; k < npairs; k++) {
        cand_true += ds->truth[pairs[k] >> 32] == ds->truth[(uint32_t)pairs[k]];
    }
    hie_mpi_train_opts_t opts;
    hie_mpi_train_stats_t ts;
    hie_mpi_train_opts_default(&opts);
    opts.u_samples = smoke ? 2000 : U_SAMPLES;
    opts.block_size_max = BLOCK_SIZE_MAX;
    opts.em_rounds_max = EM_ROUNDS_MAX;
    opts.seed = SEED;
    if (hie_mpi_train(&m, ds->p, ds->n, block_secret, &opts, &ts) != 0 ||
        ts.candidate_pairs != npairs) {
        fprintf(stderr, "training failed\n");
        exit(1);
    }
    unsigned rounds = ts.em_rounds;
    struct result fs = {0}, base = {0};
    link_records(ds, &m, tf, pairs, npairs, &fs);
    baseline(ds, &base);
    printf("%-10s %-3s %6zu %8zu %5zu %6u  %.4f %.4f %.4f %6zu   %.4f %.4f %.4f\n", name,
        with_id ? "yes" : "no", ds->n, npairs, capped, rounds, fs.precision, fs.recall, fs.f1,
        fs.review, base.precision, base.recall, base.f1);
    printf("bench=mpi_accuracy data=%s national_id=%s records=%zu true_pairs=%zu "
        "candidate_pairs=%zu blocking_recall=%.4f capped_blocks=%zu em_rounds=%u lambda=%.2e "
        "precision=%.4f "
        "recall=%.4f f1=%.4f review=%zu baseline_precision=%.4f baseline_recall=%.4f "
        "baseline_f1=%.4f ratio_f1_vs_baseline=%.3f\n", name, with_id ? "yes" : "no", ds->n,
        fs.true_pairs, npairs, fs.true_pairs ? (double)cand_true / (double)fs.true_pairs : 1.0,
        capped, rounds, m.lambda, fs.precision, fs.recall, fs.f1,
        fs.review, base.precision, base.recall, base.f1, base.f1 > 0 ? fs.f1 / base.f1 : 0);
    free(pairs);
    hie_mpi_tf_destroy(&tf);
    if (saved != NULL) {
        memcpy(ds->p, saved, ds->n * sizeof(*saved));
        free(saved);
    }
}

int
main(int argc, char **argv)
{
    const char *data = HIE_SOURCE_DIR "/../shared/data";
    bool smoke = false;
    static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
        {"smoke", no_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "d:s", opts, NULL)) != -1) {
        if (ch == 'd') {
            data = optarg;
        } else if (ch == 's') {
            smoke = true;
        } else {
            return 2;
        }
    }
    if (sodium_init() < 0) {
        return 1;
    }
    static const struct {
        const char *name, *file;
        int kind;
    } sets[] = {{"febrl1", "febrl/dataset1.csv", 0}, {"febrl2", "febrl/dataset2.csv", 0},
        {"fake_1000", "splink_fake_1000/fake_1000.csv", 1}};
    printf("# seed %u, default thresholds (link p>=0.95, review p>=0.50), EM-trained m, u from "
        "random pairs\n", SEED);
    printf("%-10s %-3s %6s %8s %5s %6s  %6s %6s %6s %6s   %6s %6s %6s\n", "data", "id",
        "recs", "cands", "capd", "emrnds", "prec", "recall", "f1", "review", "b.prec",
        "b.rec", "b.f1");
    unsigned loaded = 0;
    for (size_t s = 0; s < HIE_ARRAY_LEN(sets); s++) {
        char path[4096];
        struct dataset ds;
        snprintf(path, sizeof(path), "%s/%s", data, sets[s].file);
        if (load(path, sets[s].kind, &ds) != 0) {
            fprintf(stderr, "bench_mpi_accuracy: cannot read %s (skipped)\n", path);
            continue;
        }
        if (smoke && ds.n > 300) {
            ds.n = 300;
        }
        loaded++;
        run_one(sets[s].name, &ds, true, smoke);
        run_one(sets[s].name, &ds, false, smoke);
        free(ds.p);
        free(ds.truth);
    }
    if (loaded == 0) {
        fprintf(stderr, "bench_mpi_accuracy: no data set found under %s\n", data);
        return 1;
    }
    return 0;
}
