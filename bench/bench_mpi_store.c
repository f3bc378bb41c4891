/*
 * bench_mpi_store.c - the master patient index at scale, through its real storage path:
 * sealed feed commands applied to the LMDB store (matching inside the write transaction, one
 * synced commit per batch as the command log's group commit does), then PDQ and PIX queries
 * in read transactions (issue 3, "Speed at scale").
 *
 * usage: bench_mpi_store --persons FILE --queries FILE [--batch N] [--train N] [--pix N]
 *                        [--threads N] [--max-records N] [--rules-ms MS] [--smoke]
 *   --rules-ms: the rules clock the feeds apply under (default 0: the first rules; e.g.
 *   1796083200000 for the rules in force from 2026-12-01)
 *   FILE as written by gen_persons (FEBRL format; --queries: its PDQ cases). --smoke runs
 *   gen_persons itself for 2,000 persons and 200 cases.
 *
 * Steps: 1. train the model on the first --train records (hie_mpi_train, the same code as
 * `hiectl mpi train`) and install it with the replicated model command; 2. feed every record
 * as organization "bench-org" (create), --batch commands per write transaction. As in a node,
 * where the admin thread validates and seals an import's rows while the log thread applies
 * the commands before them, a reader thread parses the CSV and seals the next batch while the
 * main thread applies the current one: handed to the match pool of --threads threads (0:
 * none) as the node's log thread hands it each batch (hie/mpi_store.h), in an environment
 * opened as the node opens its state (MDB_NOMETASYNC); 3. pairwise
 * precision/recall/F1 of the EUIDs against the generated truth; 4. every PDQ case (limit 10)
 * in its own read transaction: latency and recall@10; 5. --pix random PIX queries.
 * Prints figures and one machine-readable line `HIE_MPI_STORE ...`, and `HIE_PDQ n= p50_us=
 * p99_us= recall10=` in the format of bench_mpi_pg's PG_PDQ line.
 * Bounded: --max-records (default 2,000,000), every loop by its input.
 */
#include "harness.h"
#include "hie/mpi_store.h"

#include <csv.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define ORG "bench-org"
#define COLS_MAX 12u
#define FIELD_BYTES 256u

struct opts {
    const char *persons, *queries;
    size_t batch, train, pix, max_records, threads;
    bool smoke;
    int64_t rules_ms;          /* --rules-ms: the rules clock the feeds apply under (0: the
                                * first rules; a time like 1796083200000 measures today's) */
};

/* One CSV row, fields copied (bounded). */
struct row {
    char f[COLS_MAX][FIELD_BYTES];
    unsigned n;
};

struct reader {
    struct csv_parser p;
    struct row cur;
    bool header_done;
    int (*on_row)(void *ctx, const struct row *r);
    void *ctx;
    int rc;
};

static void
on_field(void *s, size_t len, void *data)
{
    struct reader *rd = data;
    if (rd->cur.n < COLS_MAX) {
        const char *in = s;
        while (len > 0 && *in == ' ') { /* FEBRL pads after the comma */
            in++;
            len--;
        }
        len = len < FIELD_BYTES - 1 ? len : FIELD_BYTES - 1;
        memcpy(rd->cur.f[rd->cur.n], in, len);
        rd->cur.f[rd->cur.n][len] = '\0';
    }
    rd->cur.n++;
}

static void
on_row(int c, void *data)
{
    (void)c;
    struct reader *rd = data;
    if (rd->header_done && rd->rc == 0) {
        rd->rc = rd->on_row(rd->ctx, &rd->cur);
    }
    rd->header_done = true;
    rd->cur.n = 0;
}

static int
csv_read(const char *path, int (*fn)(void *, const struct row *), void *ctx)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "bench_mpi_store: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct reader rd = {.on_row = fn, .ctx = ctx};
    csv_init(&rd.p, CSV_APPEND_NULL);
    char buf[1 << 16];
    size_t n;
    while (rd.rc == 0 && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (csv_parse(&rd.p, buf, n, on_field, on_row, &rd) != n) {
            rd.rc = -1;
        }
    }
    csv_fini(&rd.p, on_field, on_row, &rd);
    csv_free(&rd.p);
    fclose(f);
    return rd.rc;
}

/* ---- the store under test ----------------------------------------------------------------- */

/* A batch of sealed feed commands, filled by the reader thread, applied by the main thread. */
struct slot {
    hie_arena_t *arena;        /* the commands live here */
    const Hie__V1__MpiFeedCommand *cmds[HIE_LOG_BATCH_COMMANDS_MAX];
    char ids[HIE_LOG_BATCH_COMMANDS_MAX][24];                          /* their rec ids */
    size_t n;
};

/* Two slots: the reader fills one while the main thread applies the other. */
struct pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct slot slot[2];
    bool full[2];              /* handed to the main thread, not yet applied */
    bool done;                 /* the reader is finished (rc says how) */
    bool stop;                 /* the main thread failed: the reader stops */
    int rc;
    size_t fill;               /* the slot the reader fills next */
    size_t rows;               /* rows the reader took (--max-records) */
    size_t rejected;           /* rows whose command could not be built */
    uint64_t prep_ns;
    double cpu;                /* the reader thread's CPU seconds */
};

struct bench {
    char root[BENCH_ROOT_BYTES];
    MDB_env *env;
    hie_mpi_key_t *key;
    hie_mpi_store_t *store;
    MDB_txn *txn;              /* the open write transaction of the current batch */
    size_t batch;
    hie_mpi_pool_t *pool;      /* NULL with --threads 0 */
    struct pipe pipe;
    hie_arena_t *apply_arena;  /* the batch being applied, reset after each */
    const char *persons;
    uint64_t index;            /* log index of the next command */
    int64_t rules_ms;          /* opts.rules_ms */
    /* per accepted record */
    uint32_t *truth, *euid;
    char (*mrn)[24];
    size_t n, cap;
    size_t rejected, linked, review, fresh;
    uint64_t apply_ns, commit_ns;
    /* training input */
    hie_mpi_person_t *train;
    size_t n_train, train_cap;
};

static uint32_t
truth_of(const char *rec_id)
{
    return (uint32_t)strtoul(rec_id + (strncmp(rec_id, "rec-", 4) == 0 ? 4 : 0), NULL, 10);
}

/* A FEBRL row as the identity feed receives it. */
static void
row_demographics(const struct row *r, Hie__V1__Demographics *d, char **given, char **family,
    char **addr, char *line1, size_t line1_cap)
{
    hie__v1__demographics__init(d);
    given[0] = (char *)(uintptr_t)r->f[1];
    family[0] = (char *)(uintptr_t)r->f[2];
    snprintf(line1, line1_cap, "%s %s", r->f[3], r->f[4]);
    addr[0] = line1;
    addr[1] = (char *)(uintptr_t)r->f[5];
    d->n_given = r->f[1][0] != '\0';
    d->given = given;
    d->n_family = r->f[2][0] != '\0';
    d->family = family;
    d->n_address_lines = r->f[5][0] != '\0' ? 2 : 1;
    d->address_lines = addr;
    d->city = (char *)(uintptr_t)r->f[6];
    d->postcode = (char *)(uintptr_t)r->f[7];
    d->birth_date = (char *)(uintptr_t)r->f[9];
    d->national_id = (char *)(uintptr_t)r->f[10];
}

static int
batch_commit(struct bench *b)
{
    uint64_t t0 = hie_time_mono_ns();
    int rc = mdb_txn_commit(b->txn) == 0 ? 0 : HIE_ESTORAGE;
    b->commit_ns += hie_time_mono_ns() - t0;
    b->txn = NULL;
    return rc;
}

static void
count_outcome(struct bench *b, const Hie__V1__MpiFeedReply *r, const char *rec_id)
{
    b->linked += r->outcome == HIE__V1__FEED_OUTCOME__OUTCOME_LINKED;
    b->review += r->outcome == HIE__V1__FEED_OUTCOME__OUTCOME_REVIEW;
    b->fresh += r->outcome == HIE__V1__FEED_OUTCOME__OUTCOME_NEW;
    if (b->n < b->cap) {
        b->truth[b->n] = truth_of(rec_id);
        b->euid[b->n] = (uint32_t)strtoul(r->euid + 1, NULL, 10);
        size_t len = strnlen(rec_id, sizeof(b->mrn[b->n]) - 1); /* rec ids are short */
        memcpy(b->mrn[b->n], rec_id, len);
        b->mrn[b->n][len] = '\0';
        b->n++;
    }
}

static const Hie__V1__MpiFeedCommand *
batch_item_feed(const void *item, hie_arena_t *arena)
{
    (void)arena;
    return *(const Hie__V1__MpiFeedCommand *const *)item;
}

/* Applies a sealed batch in one write transaction (the pool preparing it meanwhile) and
 * commits it. */
static int
batch_apply(struct bench *b, struct slot *sl)
{
    uint64_t t0 = hie_time_mono_ns();
    int rc = mdb_txn_begin(b->env, NULL, 0, &b->txn) == 0 ? 0 : HIE_ESTORAGE;
    if (rc == 0 && b->apply_arena == NULL) {
        rc = hie_arena_create(&b->apply_arena, 512u << 20);
    }
    if (rc != 0) {
        return -1;
    }
    hie_arena_t *arena = b->apply_arena; /* reused batch after batch, as a node's log thread */
    hie_mpi_pool_begin(b->pool, sl->cmds, sizeof(sl->cmds[0]), sl->n, batch_item_feed);
    for (size_t i = 0; rc == 0 && i < sl->n; i++) {
        hie_mpi_apply_ctx_t ac = {b->txn, arena, "@bench", 1, ++b->index, {0}, 0,
            hie_mpi_pool_take(b->pool, i), b->rules_ms, NULL, NULL};
        Hie__V1__MpiFeedReply *reply = NULL;
        rc = hie_mpi_store_apply_feed(b->store, &ac, sl->cmds[i], &reply);
        if (rc == 0 && ac.reject.code != 0) {
            b->rejected++;
        } else if (rc == 0) {
            count_outcome(b, reply, sl->ids[i]);
        }
    }
    b->apply_ns += hie_time_mono_ns() - t0;
    if (rc != 0) {
        fprintf(stderr, "bench_mpi_store: apply: %s\n", hie_strerror_name(rc));
        mdb_txn_abort(b->txn);
        b->txn = NULL;
    } else {
        rc = batch_commit(b);
    }
    hie_mpi_pool_end(b->pool);
    hie_arena_reset(arena);
    return rc;
}

static double cpu_seconds(int who);

/* ---- the reader thread: CSV rows to sealed feed commands, a batch at a time --------------- */

/* Hands the reader's slot to the main thread and waits for the other one to be free. Returns
 * false when the main thread stopped. */
static bool
pipe_hand_over(struct pipe *pp)
{
    pthread_mutex_lock(&pp->mu);
    pp->full[pp->fill] = true;
    pp->fill ^= 1u;
    pthread_cond_broadcast(&pp->cv);
    while (pp->full[pp->fill] && !pp->stop) {
        pthread_cond_wait(&pp->cv, &pp->mu);
    }
    bool go = !pp->stop;
    pthread_mutex_unlock(&pp->mu);
    return go;
}

static int
feed_row(void *ctx, const struct row *r)
{
    struct bench *b = ctx;
    struct pipe *pp = &b->pipe;
    struct slot *sl = &pp->slot[pp->fill];
    if (pp->rows >= b->cap) {
        return 1; /* --max-records */
    }
    pp->rows++;
    Hie__V1__Demographics d;
    char *given[1], *family[1], *addr[2], line1[2 * FIELD_BYTES + 2];
    row_demographics(r, &d, given, family, addr, line1, sizeof(line1));
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__MpiFeedRequest req = HIE__V1__MPI_FEED_REQUEST__INIT;
    pid.org_id = (char *)(uintptr_t)ORG;
    pid.mrn = (char *)(uintptr_t)r->f[0];
    req.action = HIE__V1__FEED_ACTION__FEED_CREATE;
    req.patient = &pid;
    req.demographics = &d;
    if (sl->arena == NULL && hie_arena_create(&sl->arena, 512u << 20) != 0) {
        return -1;
    }
    Hie__V1__MpiFeedCommand *fc = NULL;
    hie_errinfo_t info = {0};
    uint64_t t0 = hie_time_mono_ns();
    if (hie_mpi_feed_command(b->key, ORG, &req, sl->arena, &fc, &info) != 0) {
        pp->rejected++; /* the generator's corruptions include impossible values */
        return 0;
    }
    pp->prep_ns += hie_time_mono_ns() - t0;
    sl->cmds[sl->n] = fc;
    size_t len = strnlen(r->f[0], sizeof(sl->ids[0]) - 1);
    memcpy(sl->ids[sl->n], r->f[0], len);
    sl->ids[sl->n][len] = '\0';
    return ++sl->n >= b->batch && !pipe_hand_over(pp) ? -1 : 0;
}

static void *
reader_thread(void *arg)
{
    struct bench *b = arg;
    struct pipe *pp = &b->pipe;
    double cpu0 = cpu_seconds(RUSAGE_THREAD);
    int rc = csv_read(b->persons, feed_row, b);
    if (rc >= 0 && pp->slot[pp->fill].n > 0) {
        (void)pipe_hand_over(pp);
    }
    pthread_mutex_lock(&pp->mu);
    pp->cpu = cpu_seconds(RUSAGE_THREAD) - cpu0;
    pp->rc = rc < 0 ? rc : 0;
    pp->done = true;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
    return NULL;
}

/* Applies the reader's batches in order until it is done. Returns 0 or -1. */
static int
apply_batches(struct bench *b)
{
    struct pipe *pp = &b->pipe;
    size_t next = 0;
    int rc = 0;
    for (;;) {
        pthread_mutex_lock(&pp->mu);
        while (!pp->full[next] && !pp->done) {
            pthread_cond_wait(&pp->cv, &pp->mu);
        }
        bool have = pp->full[next];
        pthread_mutex_unlock(&pp->mu);
        if (!have) {
            break; /* done, and nothing left */
        }
        struct slot *sl = &pp->slot[next];
        rc = batch_apply(b, sl);
        hie_arena_destroy(&sl->arena);
        sl->n = 0;
        pthread_mutex_lock(&pp->mu);
        pp->full[next] = false;
        pp->stop = rc != 0;
        pthread_cond_broadcast(&pp->cv);
        pthread_mutex_unlock(&pp->mu);
        if (rc != 0) {
            break;
        }
        next ^= 1u;
    }
    return rc != 0 ? -1 : 0;
}

/* ---- training ---------------------------------------------------------------------------- */

static int
train_row(void *ctx, const struct row *r)
{
    struct bench *b = ctx;
    if (b->n_train >= b->train_cap) {
        return 1;
    }
    Hie__V1__Demographics d;
    char *given[1], *family[1], *addr[2], line1[2 * FIELD_BYTES + 2];
    row_demographics(r, &d, given, family, addr, line1, sizeof(line1));
    if (hie_mpi_person_from_demographics(&d, &b->train[b->n_train], NULL) == 0) {
        b->n_train++;
    }
    return 0;
}

static int
train_install(struct bench *b, const char *persons)
{
    uint64_t t0 = hie_time_mono_ns();
    int rc = csv_read(persons, train_row, b);
    if (rc < 0) {
        return rc;
    }
    hie_mpi_model_t model;
    hie_mpi_train_stats_t st;
    uint8_t secret[16];
    hie_mpi_model_default(&model);
    hie_mpi_key_index_secret(b->key, secret);
    rc = hie_mpi_train(&model, b->train, b->n_train, secret, NULL, &st);
    if (rc != 0) {
        fprintf(stderr, "bench_mpi_store: train: %s\n", hie_strerror_name(rc));
        return rc;
    }
    double mb[HIE_MPI_FIELD_COUNT * HIE_MPI_LEVELS_MAX], ub[HIE_MPI_FIELD_COUNT *
        HIE_MPI_LEVELS_MAX];
    protobuf_c_boolean eb[HIE_MPI_FIELD_COUNT];
    Hie__V1__MpiModel pm;
    hie_mpi_model_to_proto(&model, &pm, mb, ub, eb);
    pm.trained_records = st.records;
    Hie__V1__MpiModelCommand mc = HIE__V1__MPI_MODEL_COMMAND__INIT;
    mc.model = &pm;
    uint64_t version = 0;
    hie_arena_t *arena = NULL;
    rc = mdb_txn_begin(b->env, NULL, 0, &b->txn) == 0 ? 0 : HIE_ESTORAGE;
    rc = rc == 0 ? hie_arena_create(&arena, 1u << 20) : rc;
    hie_mpi_apply_ctx_t ac = {b->txn, arena, "@bench", 1, ++b->index, {0}, 0, NULL, 0, NULL,
        NULL};
    rc = rc == 0 ? hie_mpi_store_apply_model(b->store, &ac, &mc, &version) : rc;
    rc = rc == 0 && ac.reject.code != 0 ? HIE_EINVAL : rc;
    if (rc == 0) {
        rc = batch_commit(b);
    } else if (b->txn != NULL) {
        mdb_txn_abort(b->txn);
        b->txn = NULL;
    }
    hie_arena_destroy(&arena);
    printf("train: %zu records, %zu candidate pairs, %u EM rounds, %.1f s, model v%lu\n",
        st.records, st.candidate_pairs, st.em_rounds,
        (double)(hie_time_mono_ns() - t0) / 1e9, (unsigned long)version);
    return rc;
}

/* ---- accuracy ----------------------------------------------------------------------------- */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sum over groups of equal keys of n(n-1)/2. */
static uint64_t
pairs_of(uint64_t *keys, size_t n)
{
    qsort(keys, n, sizeof(*keys), cmp_u64);
    uint64_t total = 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && keys[j] == keys[i]; j++) {
        }
        total += (uint64_t)(j - i) * (j - i - 1) / 2;
    }
    return total;
}

static void
accuracy(const struct bench *b, double *precision, double *recall, double *f1)
{
    uint64_t *k = malloc(b->n * sizeof(*k));
    for (size_t i = 0; i < b->n; i++) {
        k[i] = b->euid[i];
    }
    uint64_t pred = pairs_of(k, b->n);
    for (size_t i = 0; i < b->n; i++) {
        k[i] = b->truth[i];
    }
    uint64_t truth = pairs_of(k, b->n);
    for (size_t i = 0; i < b->n; i++) {
        k[i] = ((uint64_t)b->euid[i] << 32) | b->truth[i];
    }
    uint64_t tp = pairs_of(k, b->n);
    free(k);
    *precision = pred ? (double)tp / (double)pred : 1.0;
    *recall = truth ? (double)tp / (double)truth : 1.0;
    *f1 = *precision + *recall > 0 ? 2 * *precision * *recall / (*precision + *recall) : 0;
}

/* ---- PDQ and PIX -------------------------------------------------------------------------- */

struct queries {
    struct bench *b;
    uint64_t *lat;
    size_t n, cap, hits, no_match, errors;
};

static bool
pdq_hit(const Hie__V1__PdqReply *r, uint32_t person)
{
    for (size_t i = 0; i < r->n_candidates; i++) {
        for (size_t j = 0; j < r->candidates[i]->n_ids; j++) {
            if (truth_of(r->candidates[i]->ids[j]->mrn) == person) {
                return true;
            }
        }
    }
    return false;
}

static int
pdq_row(void *ctx, const struct row *r)
{
    struct queries *q = ctx;
    if (q->n >= q->cap) {
        return 1;
    }
    Hie__V1__Demographics d = HIE__V1__DEMOGRAPHICS__INIT;
    char *given[1] = {(char *)(uintptr_t)r->f[3]}, *family[1] = {(char *)(uintptr_t)r->f[4]};
    d.n_given = r->f[3][0] != '\0';
    d.given = given;
    d.n_family = r->f[4][0] != '\0';
    d.family = family;
    d.birth_date = (char *)(uintptr_t)r->f[5];
    d.postcode = (char *)(uintptr_t)r->f[6];
    Hie__V1__PdqQuery pq = HIE__V1__PDQ_QUERY__INIT;
    pq.demographics = &d;
    pq.limit = 10;
    hie_arena_t *arena = NULL;
    MDB_txn *txn = NULL;
    Hie__V1__PdqReply *reply = NULL;
    hie_mpi_reject_t rej = {0};
    uint64_t t0 = hie_time_mono_ns();
    int rc = hie_arena_create(&arena, 64u << 20);
    rc = rc == 0 && mdb_txn_begin(q->b->env, NULL, MDB_RDONLY, &txn) != 0 ? HIE_ESTORAGE : rc;
    rc = rc == 0 ? hie_mpi_store_pdq(q->b->store, txn, &pq, arena, &reply, &rej, NULL) : rc;
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    q->lat[q->n++] = hie_time_mono_ns() - t0;
    if (rc != 0 || rej.code != 0) {
        q->errors++; /* a corrupted query the validator refuses (an impossible date) */
    } else {
        q->no_match += reply->no_match;
        q->hits += pdq_hit(reply, (uint32_t)strtoul(r->f[1], NULL, 10));
    }
    hie_arena_destroy(&arena);
    return 0;
}

static void
pix_run(struct bench *b, size_t count, double *p50, double *p99)
{
    uint64_t *lat = calloc(count + 1, sizeof(*lat)), seed = BENCH_SEED;
    size_t done = 0;
    for (size_t i = 0; i < count && b->n > 0; i++) {
        Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
        Hie__V1__PixQuery pq = HIE__V1__PIX_QUERY__INIT;
        pid.org_id = (char *)(uintptr_t)ORG;
        pid.mrn = b->mrn[bench_rand(&seed) % b->n];
        pq.patient = &pid;
        hie_arena_t *arena = NULL;
        MDB_txn *txn = NULL;
        Hie__V1__PixReply *reply = NULL;
        hie_mpi_reject_t rej = {0};
        uint64_t t0 = hie_time_mono_ns();
        int rc = hie_arena_create(&arena, 16u << 20);
        rc = rc == 0 && mdb_txn_begin(b->env, NULL, MDB_RDONLY, &txn) != 0 ? -1 : rc;
        rc = rc == 0 ? hie_mpi_store_pix(b->store, txn, &pq, arena, &reply, &rej, NULL) : rc;
        if (txn != NULL) {
            mdb_txn_abort(txn);
        }
        lat[done++] = hie_time_mono_ns() - t0;
        hie_arena_destroy(&arena);
    }
    bench_percentiles(lat, done, p50, p99);
    free(lat);
}

/* ---- main --------------------------------------------------------------------------------- */

static int
parse(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"persons", 1, NULL, 'p'}, {"queries", 1, NULL, 'q'},
        {"batch", 1, NULL, 'b'}, {"train", 1, NULL, 't'}, {"pix", 1, NULL, 'x'},
        {"max-records", 1, NULL, 'm'}, {"smoke", 0, NULL, 's'}, {"threads", 1, NULL, 'T'},
        {"rules-ms", 1, NULL, 'r'}, {NULL, 0, NULL, 0}};
    *o = (struct opts){NULL, NULL, 1024, 100000, 10000, 2000000, 2, false, 0};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        size_t v = optarg != NULL ? strtoul(optarg, NULL, 10) : 0;
        switch (c) {
        case 'p': o->persons = optarg; break;
        case 'q': o->queries = optarg; break;
        case 'b': o->batch = v; break;
        case 't': o->train = v; break;
        case 'x': o->pix = v; break;
        case 'm': o->max_records = v; break;
        case 's': o->smoke = true; break;
        case 'T': o->threads = v; break;
        case 'r': o->rules_ms = (int64_t)strtoll(optarg, NULL, 10); break;
        default: return -1;
        }
    }
    bool ok = o->batch >= 1 && o->batch <= HIE_LOG_BATCH_COMMANDS_MAX && o->train >= 2 &&
        o->max_records >= 1 && o->max_records <= 20000000u &&
        o->threads <= HIE_MPI_POOL_THREADS_MAX;
    return ok && (o->smoke || (o->persons != NULL && o->queries != NULL)) ? 0 : -1;
}

static int
setup(struct bench *b, const struct opts *o)
{
    snprintf(b->root, sizeof(b->root), "/tmp/hie-bench-mpi-XXXXXX");
    if (mkdtemp(b->root) == NULL) {
        return -errno;
    }
    char path[BENCH_PATH_BYTES];
    snprintf(path, sizeof(path), "%s/mpi.key", b->root);
    int rc = hie_mpi_key_generate(path);
    rc = rc == 0 ? hie_mpi_key_load(&b->key, path) : rc;
    rc = rc == 0 && mdb_env_create(&b->env) != 0 ? HIE_ESTORAGE : rc;
    if (rc == 0) {
        mdb_env_set_mapsize(b->env, 256ull << 30);
        mdb_env_set_maxdbs(b->env, 32);
        rc = mdb_env_open(b->env, b->root, MDB_NOTLS | MDB_NOMETASYNC, 0600) != 0 ?
            HIE_ESTORAGE : 0;
    }
    rc = rc == 0 ? hie_mpi_store_open(&b->store, b->env, b->key) : rc;
    rc = rc == 0 && o->threads > 0 ? hie_mpi_pool_create(&b->pool, b->store,
        (unsigned)o->threads) : rc;
    b->batch = o->batch;
    b->rules_ms = o->rules_ms;
    b->cap = o->max_records;
    b->truth = calloc(b->cap, sizeof(*b->truth));
    b->euid = calloc(b->cap, sizeof(*b->euid));
    b->mrn = calloc(b->cap, sizeof(*b->mrn));
    b->train_cap = o->train;
    b->train = calloc(b->train_cap, sizeof(*b->train));
    bool mem = b->truth && b->euid && b->mrn && b->train;
    return rc == 0 && !mem ? HIE_ENOMEM : rc;
}

static void
teardown(struct bench *b)
{
    hie_mpi_pool_destroy(&b->pool);
    hie_arena_destroy(&b->apply_arena);
    hie_mpi_store_close(&b->store);
    if (b->env != NULL) {
        mdb_env_close(b->env);
    }
    hie_mpi_key_destroy(&b->key);
    free(b->truth);
    free(b->euid);
    free(b->mrn);
    free(b->train);
    char cmd[BENCH_PATH_BYTES + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->root);
    if (b->root[0] != '\0' && system(cmd) != 0) {
        fprintf(stderr, "bench_mpi_store: could not remove %s\n", b->root);
    }
}

static int
smoke_data(struct bench *b, struct opts *o, char *persons, char *queries, size_t cap)
{
    snprintf(persons, cap, "%s/persons.csv", b->root);
    snprintf(queries, cap, "%s/queries.csv", b->root);
    char cmd[3 * BENCH_PATH_BYTES];
    snprintf(cmd, sizeof(cmd), "'%s' --count 2000 --out '%s' --queries '%s' --query-count 200 "
        "2>/dev/null", HIE_GEN_PERSONS_BIN, persons, queries);
    o->persons = persons;
    o->queries = queries;
    o->train = 2000;
    o->pix = 200;
    return system(cmd) == 0 ? 0 : -1;
}

/* CPU seconds used so far by the calling thread (who = RUSAGE_THREAD) or the process. */
static double
cpu_seconds(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
        ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* Reader thread and main thread as in a node: rows parsed and sealed a batch ahead of apply. */
static int
ingest_run(struct bench *b)
{
    struct pipe *pp = &b->pipe;
    pthread_mutex_init(&pp->mu, NULL);
    pthread_cond_init(&pp->cv, NULL);
    pthread_t reader;
    if (pthread_create(&reader, NULL, reader_thread, b) != 0) {
        return -1;
    }
    int rc = apply_batches(b);
    pthread_mutex_lock(&pp->mu);
    pp->stop = rc != 0;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
    pthread_join(reader, NULL);
    for (unsigned i = 0; i < 2; i++) {
        hie_arena_destroy(&pp->slot[i].arena);
    }
    pthread_cond_destroy(&pp->cv);
    pthread_mutex_destroy(&pp->mu);
    return rc != 0 ? rc : pp->rc;
}

static int
ingest(struct bench *b, const struct opts *o, double *rate)
{
    uint64_t t0 = hie_time_mono_ns();
    double cpu_main = cpu_seconds(RUSAGE_THREAD), cpu_all = cpu_seconds(RUSAGE_SELF);
    b->persons = o->persons;
    int rc = ingest_run(b);
    double s = (double)(hie_time_mono_ns() - t0) / 1e9;
    b->rejected += b->pipe.rejected;
    size_t total = b->n + b->rejected;
    double per = (double)(total ? total : 1);
    *rate = total / s;
    printf("ingest: %zu records in %.1f s = %.0f records/s (new %zu, linked %zu, review %zu, "
        "rejected %zu); per record: seal %.1f us (reader thread), match+apply %.1f us, commit "
        "%.1f us\n", total, s, *rate, b->fresh, b->linked, b->review, b->rejected,
        (double)b->pipe.prep_ns / 1e3 / per, (double)b->apply_ns / 1e3 / per,
        (double)b->commit_ns / 1e3 / per);
    hie_mpi_store_stats_t *st = hie_mpi_store_stats(b->store);
    printf("matching: %.1f candidate records scored per feed, %lu capped blocks\n",
        (double)atomic_load(&st->candidates) / per,
        (unsigned long)atomic_load(&st->capped_blocks));
    cpu_main = cpu_seconds(RUSAGE_THREAD) - cpu_main;
    cpu_all = cpu_seconds(RUSAGE_SELF) - cpu_all;
    printf("cpu per record: apply thread (apply, commit) %.1f us, reader thread (csv, seal) "
        "%.1f us, pool threads %.1f us\n", cpu_main * 1e6 / per, b->pipe.cpu * 1e6 / per,
        (cpu_all - cpu_main - b->pipe.cpu) * 1e6 / per);
    printf("pool: %zu threads; feeds ready %lu, waited for %lu, done by apply %lu; candidate "
        "lists taken %lu; comparisons taken %lu, stale %lu\n", o->threads,
        (unsigned long)atomic_load(&st->pool_ready), (unsigned long)atomic_load(&st->pool_waited),
        (unsigned long)atomic_load(&st->pool_own), (unsigned long)atomic_load(&st->pool_lists),
        (unsigned long)atomic_load(&st->pool_used), (unsigned long)atomic_load(&st->pool_stale));
    return rc < 0 ? rc : 0;
}

static void
report_size(const struct bench *b, double rate, double f1)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(b->env, &info);
    mdb_env_stat(b->env, &st);
    double mb = (double)(info.me_last_pgno + 1) * st.ms_psize / 1048576.0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("lmdb: %.0f MB (%.0f bytes/record); peak RSS %.0f MB\n", mb,
        mb * 1048576.0 / (double)(b->n ? b->n : 1), (double)ru.ru_maxrss / 1024.0);
    printf("HIE_MPI_STORE records=%zu rate=%.0f f1=%.4f lmdb_mb=%.0f rss_mb=%.0f target_rate="
        "20000\n", b->n, rate, f1, mb, (double)ru.ru_maxrss / 1024.0);
}

static int
run(struct bench *b, const struct opts *o)
{
    double rate = 0, p, r, f1, p50, p99;
    int rc = train_install(b, o->persons);
    rc = rc == 0 ? ingest(b, o, &rate) : rc;
    if (rc != 0) {
        return rc;
    }
    accuracy(b, &p, &r, &f1);
    printf("accuracy: precision %.4f recall %.4f F1 %.4f over %zu records\n", p, r, f1, b->n);
    struct queries q = {b, calloc(200000, sizeof(uint64_t)), 0, 200000, 0, 0, 0};
    rc = csv_read(o->queries, pdq_row, &q);
    size_t answered = q.n - q.errors;
    bench_percentiles(q.lat, q.n, &p50, &p99);
    printf("pdq: %zu cases, p50 %.0f us, p99 %.0f us (target p99 < 5000); recall@10 %.4f; "
        "no match %zu; refused %zu\n", q.n, p50, p99,
        answered ? (double)q.hits / (double)answered : 0, q.no_match, q.errors);
    printf("HIE_PDQ n=%zu p50_us=%.0f p99_us=%.0f recall10=%.4f\n", q.n, p50, p99,
        answered ? (double)q.hits / (double)answered : 0);
    free(q.lat);
    pix_run(b, o->pix, &p50, &p99);
    printf("pix: %zu queries, p50 %.0f us, p99 %.0f us\n", o->pix, p50, p99);
    report_size(b, rate, f1);
    return rc < 0 ? rc : 0;
}

int
main(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: bench_mpi_store --persons FILE --queries FILE [--batch N] "
            "[--train N] [--pix N] [--threads N] [--max-records N] [--rules-ms MS] | --smoke\n");
        return 2;
    }
    if (sodium_init() < 0) {
        return 1;
    }
    struct bench b;
    memset(&b, 0, sizeof(b));
    char persons[BENCH_PATH_BYTES], queries[BENCH_PATH_BYTES];
    int rc = setup(&b, &o);
    if (rc == 0 && o.smoke) {
        rc = smoke_data(&b, &o, persons, queries, sizeof(persons));
    }
    rc = rc == 0 ? run(&b, &o) : rc;
    if (rc == 0 && o.smoke && b.n < 1000) {
        fprintf(stderr, "bench_mpi_store: smoke fed only %zu records\n", b.n);
        rc = -1;
    }
    teardown(&b);
    if (rc != 0) {
        fprintf(stderr, "bench_mpi_store: failed (%d)\n", rc);
    }
    return rc == 0 ? 0 : 1;
}
