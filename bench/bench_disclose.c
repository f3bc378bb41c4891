/*
 * bench_disclose.c - PIX and PDQ throughput with consent and audit on versus off, in the same
 * run (issue 4). "On": every query is decided against the patient's directives and leaves one
 * audit record committed through the command log before the reply. "Off": the node runs with
 * consent.enforce: off-for-benchmarks-only (no decision, no audit record), the baseline.
 *
 * Each mode: a fresh node (same PKI, same data key), N persons imported with hiectl mpi import,
 * then C TLS connections from one hospital, each keeping W queries in flight (80% PIX of a
 * random MRN, 20% PDQ by name and birth date) for S seconds: many members querying at once,
 * which is what group commit is for. Prints requests/s, latency
 * p50/p99 and the on/off ratio (target: on at least 0.80 of off). With --rounds R the two
 * modes alternate R times (off, on, off, on, ...) and the result line gives the median ratio
 * and the range: on a shared 2-core machine a single pair moves by several hundredths.
 *
 *   bench_disclose [--smoke] [--persons N] [--seconds S] [--conns C] [--window W] [--workers N]
 *                  [--keep] [--only on|off] [--rounds R]
 */
#include "harness.h"

#include "hie/mpi_store.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONNS_MAX 256u
#define LAT_PER_THREAD_MAX 400000u
#define REPLY_BYTES_MAX (1u << 20)
#define WINDOW_MAX 64u                 /* the node's default in-flight limit per connection */
#define ROUNDS_MAX 9u
#define WINDOW_RING (WINDOW_MAX * 64u) /* send times by seq; replies may come out of order */

static const char *const GIVEN[] = {"James", "Mary", "John", "Patricia", "Robert", "Jennifer",
    "Michael", "Linda", "William", "Elizabeth", "David", "Susan", "Aisha", "Wei", "Olga", "Raj"};
static const char *const FAMILY[] = {"Smith", "Johnson", "Williams", "Brown", "Jones",
    "Garcia", "Miller", "Davis", "Okafor", "Nguyen", "Kowalski", "Patel", "Haddad", "Larsen"};
#define NGIVEN (sizeof(GIVEN) / sizeof(GIVEN[0]))
#define NFAMILY (sizeof(FAMILY) / sizeof(FAMILY[0]))

struct opts {
    unsigned persons, seconds, conns, workers, window, rounds;
    bool smoke, keep;
    const char *only; /* "on" or "off": run that mode alone (profiling); NULL: both */
};

struct load {
    const struct opts *o;
    SSL_CTX *ctx;
    uint16_t port;
    _Atomic bool stop;
    _Atomic uint64_t errors;
};

struct worker {
    struct load *l;
    unsigned index;
    pthread_t thread;
    uint64_t *lat;
    size_t n;
};

/* Person i, deterministic: given, family, birth date. */
static void
person(unsigned i, const char **g, const char **f, char dob[11])
{
    *g = GIVEN[i % NGIVEN];
    *f = FAMILY[(i / NGIVEN) % NFAMILY];
    snprintf(dob, 11, "%04u-%02u-%02u", 1930 + (i * 7) % 90, 1 + (i * 5) % 12, 1 + (i * 3) % 28);
}

static int
persons_csv(const char *path, unsigned n)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "org_id,mrn,given,family,birth_date,sex,postcode\n");
    for (unsigned i = 0; i < n; i++) {
        const char *g, *fa;
        char dob[11];
        person(i, &g, &fa, dob);
        fprintf(f, "general-hospital,H-%u,%s,%s,%s,%s,AB%u %uCD\n", i, g, fa, dob,
            i % 2 ? "male" : "female", i % 90 + 1, i % 9 + 1);
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* One query frame: PIX of a random MRN or PDQ of a random person. */
static int
query_frame(unsigned persons, uint64_t *rng, unsigned thread, uint64_t seq, uint8_t **buf,
    size_t *len)
{
    char id[48], mrn[24], dob[11];
    const char *g, *f;
    hie_envelope_t env = HIE__V1__ENVELOPE__INIT;
    Hie__V1__PixQuery pq = HIE__V1__PIX_QUERY__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__PdqQuery dq = HIE__V1__PDQ_QUERY__INIT;
    Hie__V1__Demographics d = HIE__V1__DEMOGRAPHICS__INIT;
    unsigned who = (unsigned)(bench_rand(rng) % persons);
    snprintf(id, sizeof(id), "q%u-%lu", thread, (unsigned long)seq);
    env.id = id;
    env.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
    env.created_ms = 1;
    if (bench_rand(rng) % 5 != 0) {
        snprintf(mrn, sizeof(mrn), "H-%u", who);
        pid.org_id = (char *)(uintptr_t)"general-hospital";
        pid.mrn = mrn;
        pq.patient = &pid;
        env.body_case = HIE__V1__ENVELOPE__BODY_PIX_QUERY;
        env.pix_query = &pq;
    } else {
        person(who, &g, &f, dob);
        char *gv[1] = {(char *)(uintptr_t)g}, *fv[1] = {(char *)(uintptr_t)f};
        d.n_given = d.n_family = 1;
        d.given = gv;
        d.family = fv;
        d.birth_date = dob;
        dq.demographics = &d;
        dq.limit = 5;
        env.body_case = HIE__V1__ENVELOPE__BODY_PDQ_QUERY;
        env.pdq_query = &dq;
        return hie_proto_frame_encode(&env, REPLY_BYTES_MAX, buf, len);
    }
    return hie_proto_frame_encode(&env, REPLY_BYTES_MAX, buf, len);
}

/* True when the reply body is a PIX or PDQ result (not an Error); [out] *seq from its
 * correlation id "q<thread>-<seq>". */
static bool
reply_ok(const uint8_t *body, size_t len, uint64_t *seq)
{
    hie_envelope_t *env = hie__v1__envelope__unpack(NULL, len, body);
    bool ok = env != NULL && (env->body_case == HIE__V1__ENVELOPE__BODY_PIX_REPLY ||
                                 env->body_case == HIE__V1__ENVELOPE__BODY_PDQ_REPLY);
    const char *dash = env != NULL && env->correlation_id != NULL
                           ? strchr(env->correlation_id, '-') : NULL;
    *seq = dash != NULL ? strtoull(dash + 1, NULL, 10) : UINT64_MAX;
    if (env != NULL) {
        hie__v1__envelope__free_unpacked(env, NULL);
    }
    return ok;
}

/* Sends query seq and notes when. */
static int
send_one(struct worker *w, SSL *ssl, uint64_t *rng, uint64_t seq, uint64_t *sent_ns)
{
    uint8_t *frame = NULL;
    size_t flen = 0;
    int rc = query_frame(w->l->o->persons, rng, w->index, seq, &frame, &flen);
    sent_ns[seq % WINDOW_RING] = hie_time_mono_ns();
    rc = rc ? rc : bench_ssl_write_all(ssl, frame, flen);
    if (frame != NULL) {
        hie_mem_free(frame, flen);
    }
    return rc;
}

/* Reads one reply and records its latency. */
static int
recv_one(struct worker *w, SSL *ssl, uint8_t *rbuf, const uint64_t *sent_ns)
{
    size_t blen = 0;
    uint64_t seq = 0;
    int rc = bench_ssl_read_frame(ssl, rbuf, REPLY_BYTES_MAX, &blen);
    if (rc != 0) {
        return rc;
    }
    if (!reply_ok(rbuf, blen, &seq) || seq == UINT64_MAX) {
        atomic_fetch_add(&w->l->errors, 1);
    } else if (w->n < LAT_PER_THREAD_MAX) {
        w->lat[w->n++] = hie_time_mono_ns() - sent_ns[seq % WINDOW_RING];
    }
    return 0;
}

/* One connection keeping window queries in flight until stop, then draining them. */
static void *
worker_thread(void *arg)
{
    struct worker *w = arg;
    struct load *l = w->l;
    uint64_t rng = BENCH_SEED ^ ((uint64_t)w->index << 32), seq = 0, outstanding = 0;
    uint64_t *sent_ns = calloc(WINDOW_RING, sizeof(uint64_t));
    uint8_t *rbuf = malloc(REPLY_BYTES_MAX);
    int fd = bench_tcp_connect(l->port);
    SSL *ssl = fd >= 0 && rbuf != NULL && sent_ns != NULL ? SSL_new(l->ctx) : NULL;
    int rc = ssl == NULL || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1 ? HIE_ETLS : 0;
    for (; rc == 0 && outstanding < l->o->window; outstanding++) {
        rc = send_one(w, ssl, &rng, seq++, sent_ns);
    }
    while (rc == 0 && outstanding > 0 && w->n < LAT_PER_THREAD_MAX) {
        rc = recv_one(w, ssl, rbuf, sent_ns);
        outstanding -= rc == 0;
        if (rc == 0 && !atomic_load(&l->stop)) {
            rc = send_one(w, ssl, &rng, seq++, sent_ns);
            outstanding += rc == 0;
        }
    }
    if (rc != 0) {
        atomic_fetch_add(&l->errors, 1);
    }
    if (ssl != NULL) {
        SSL_free(ssl);
    }
    if (fd >= 0) {
        close(fd);
    }
    free(rbuf);
    free(sent_ns);
    return NULL;
}

struct result {
    double rps, p50_us, p99_us;
    uint64_t n, errors;
    double node_us, thread_us, bench_us; /* CPU per query: node, its busiest thread, clients */
};

/* CPU per query between the samples: the node's, its busiest thread's (the log thread when
 * audit is on) and this process's (the clients). Robust to other load on the machine. */
static void
cpu_per_query(const bench_cpu_t node[2], const bench_cpu_t self[2], struct result *res)
{
    double secs = (double)(node[1].when_ns - node[0].when_ns) / 1e9;
    double node_pct = 0, thread_pct = 0, self_pct = 0, unused = 0;
    pid_t tid = 0;
    bench_cpu_delta(&node[0], &node[1], &node_pct, &thread_pct, &tid);
    bench_cpu_delta(&self[0], &self[1], &self_pct, &unused, &tid);
    double us = res->n > 0 ? secs * 1e6 / 100.0 / (double)res->n : 0;
    res->node_us = node_pct * us;
    res->thread_us = thread_pct * us;
    res->bench_us = self_pct * us;
}

/* C connections for S seconds against the node on port. */
static int
load_run(const struct opts *o, SSL_CTX *ctx, uint16_t port, struct result *res)
{
    static struct worker ws[CONNS_MAX];
    struct load l = {o, ctx, port, false, 0};
    uint64_t t0 = hie_time_mono_ns();
    unsigned started = 0;
    for (unsigned i = 0; i < o->conns; i++) {
        ws[i] = (struct worker){&l, i, 0, calloc(LAT_PER_THREAD_MAX, sizeof(uint64_t)), 0};
        if (ws[i].lat == NULL || pthread_create(&ws[i].thread, NULL, worker_thread, &ws[i])) {
            break;
        }
        started++;
    }
    for (unsigned s = 0; s < o->seconds * 10u; s++) {
        usleep(100000);
    }
    atomic_store(&l.stop, true);
    size_t total = 0;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        total += ws[i].n;
    }
    double secs = (double)(hie_time_mono_ns() - t0) / 1e9;
    uint64_t *all = calloc(total + 1, sizeof(uint64_t));
    for (unsigned i = 0, k = 0; all != NULL && i < started; i++) {
        memcpy(all + k, ws[i].lat, ws[i].n * sizeof(uint64_t));
        k += (unsigned)ws[i].n;
    }
    for (unsigned i = 0; i < o->conns; i++) {
        free(ws[i].lat);
    }
    if (all == NULL || started != o->conns) {
        free(all);
        return -1;
    }
    bench_percentiles(all, total, &res->p50_us, &res->p99_us);
    free(all);
    res->n = total;
    res->rps = (double)total / secs;
    res->errors = atomic_load(&l.errors);
    return 0;
}

/* A fresh node in root/<mode> with the persons imported; then the load. */
static int
mode_run(const struct opts *o, const char *root, const char *mode, bool on, unsigned round,
    SSL_CTX *ctx, struct result *res)
{
    char dir[BENCH_PATH_BYTES], yaml[BENCH_PATH_BYTES * 2], csv[BENCH_PATH_BYTES + 32];
    char log[BENCH_PATH_BYTES + 32], pki[BENCH_PATH_BYTES + 32], state[BENCH_PATH_BYTES + 32];
    snprintf(dir, sizeof(dir), "%s/%s%.0u", root, mode, round); /* off, on, off1, on1, ... */
    snprintf(pki, sizeof(pki), "%s/pki", dir);
    if (mkdir(dir, 0700) != 0 || symlink("../pki", pki) != 0) {
        return -1;
    }
    snprintf(yaml, sizeof(yaml), "mpi: {key_file: %s/mpi.key}\n%s\n"
        "audit: {checkpoint_interval_ms: 10000}\n", root,
        on ? "consent: {regime: opt-out}" : "consent: {enforce: off-for-benchmarks-only}");
    bench_node_t n;
    int rc = bench_node_start_with(&n, dir, o->workers, "warn", yaml, 20000);
    rc = rc ? rc : bench_node_register(&n, "general-hospital", "General Hospital", "hospital");
    snprintf(csv, sizeof(csv), "%s/persons.csv", root);
    snprintf(log, sizeof(log), "%s/import.log", dir);
    snprintf(state, sizeof(state), "%s/import.state", dir);
    const char *argv[] = {HIE_CTL_BIN, "--config", n.cfg, "mpi", "import", csv, "--state",
        state, NULL};
    rc = rc ? rc : bench_run(argv, log, 600000);
    if (rc != 0) {
        fprintf(stderr, "bench: %s: node or import failed (%d); see %s\n", mode, rc, dir);
        bench_node_stop(&n, 10000);
        return -1;
    }
    bench_cpu_t node[2], self[2];
    bench_cpu_sample(n.pid, &node[0]);
    bench_cpu_sample(getpid(), &self[0]);
    rc = load_run(o, ctx, n.port, res);
    bench_cpu_sample(n.pid, &node[1]);
    bench_cpu_sample(getpid(), &self[1]);
    cpu_per_query(node, self, res);
    long from = 0;
    bench_node_log_report(&n, &from, 3);
    bench_node_stop(&n, 20000);
    char threads[512];
    bench_cpu_by_name(&node[0], &node[1], res->n, threads, sizeof(threads));
    printf("%-4s queries=%lu rps=%.0f p50_us=%.0f p99_us=%.0f errors=%lu cpu_us/q: node=%.1f "
        "busiest_thread=%.1f clients=%.1f\n", mode, (unsigned long)res->n, res->rps,
        res->p50_us, res->p99_us, (unsigned long)res->errors, res->node_us, res->thread_us,
        res->bench_us);
    printf("%-4s node threads, cpu_us/q: %s\n", mode, threads);
    return rc;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The result line: the median round's ratio (and its rates), and the range over the rounds.
 * Returns false when a round measured nothing. */
static bool
result_print(const struct result *on, const struct result *off, unsigned rounds)
{
    double ratio[ROUNDS_MAX], sorted[ROUNDS_MAX];
    for (unsigned r = 0; r < rounds; r++) {
        if (off[r].rps <= 0) {
            return false;
        }
        ratio[r] = sorted[r] = on[r].rps / off[r].rps;
    }
    qsort(sorted, rounds, sizeof(sorted[0]), cmp_double);
    unsigned m = 0;
    while (ratio[m] != sorted[rounds / 2]) {
        m++;
    }
    printf("result bench=disclose rounds=%u on_rps=%.0f off_rps=%.0f ratio=%.2f ratio_min=%.2f "
        "ratio_max=%.2f on_p99_us=%.0f off_p99_us=%.0f target_ratio=0.80 %s\n", rounds,
        on[m].rps, off[m].rps, ratio[m], sorted[0], sorted[rounds - 1], on[m].p99_us,
        off[m].p99_us, ratio[m] >= 0.80 ? "met" : "MISSED");
    return true;
}

static int
opts_parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {{"smoke", no_argument, NULL, 's'},
        {"persons", required_argument, NULL, 'p'}, {"seconds", required_argument, NULL, 't'},
        {"conns", required_argument, NULL, 'c'}, {"workers", required_argument, NULL, 'w'},
        {"keep", no_argument, NULL, 'k'}, {"window", required_argument, NULL, 'W'},
        {"only", required_argument, NULL, 'o'}, {"rounds", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0}};
    *o = (struct opts){2000, 5, 16, 2, 32, 1, false, false, NULL};
    for (int ch; (ch = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        switch (ch) {
        case 's': o->smoke = true; o->persons = 200; o->seconds = 1; o->conns = 4; break;
        case 'p': o->persons = (unsigned)strtoul(optarg, NULL, 10); break;
        case 't': o->seconds = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'c': o->conns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'w': o->workers = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'k': o->keep = true; break;
        case 'W': o->window = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'o': o->only = optarg; break;
        case 'r': o->rounds = (unsigned)strtoul(optarg, NULL, 10); break;
        default: return -1;
        }
    }
    bool ok = o->persons >= 10 && o->persons <= 1000000 && o->seconds >= 1 &&
              o->seconds <= 600 && o->conns >= 1 && o->conns <= CONNS_MAX && o->workers >= 1 &&
              o->window >= 1 && o->window <= WINDOW_MAX && o->rounds >= 1 &&
              o->rounds <= ROUNDS_MAX;
    ok = ok && (o->only == NULL || strcmp(o->only, "on") == 0 || strcmp(o->only, "off") == 0);
    return ok ? 0 : -1;
}

int
main(int argc, char **argv)
{
    struct opts o;
    if (opts_parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: bench_disclose [--smoke] [--persons N] [--seconds S] "
            "[--conns C] [--window W] [--workers N] [--keep] [--only on|off] [--rounds R]\n");
        return 2;
    }
    char root[BENCH_ROOT_BYTES], key[BENCH_PATH_BYTES], csv[BENCH_PATH_BYTES];
    bench_rlimit_raise();
    int rc = bench_setup(root, sizeof(root), o.keep);
    rc = rc ? rc : bench_pki_create(root);
    snprintf(key, sizeof(key), "%s/mpi.key", root);
    snprintf(csv, sizeof(csv), "%s/persons.csv", root);
    rc = rc ? rc : hie_mpi_key_generate(key);
    rc = rc ? rc : persons_csv(csv, o.persons);
    SSL_CTX *ctx = rc == 0 ? bench_tls_client_ctx(root, "general-hospital") : NULL;
    if (ctx == NULL) {
        fprintf(stderr, "bench: setup failed\n");
        return 1;
    }
    printf("# bench_disclose persons=%u seconds=%u conns=%u window=%u workers=%u "
        "(80%% PIX, 20%% PDQ)\n", o.persons, o.seconds, o.conns, o.window, o.workers);
    fflush(stdout);
    struct result off[ROUNDS_MAX] = {{0}}, on[ROUNDS_MAX] = {{0}};
    uint64_t errors = 0;
    for (unsigned r = 0; rc == 0 && r < o.rounds; r++) {
        if (o.only == NULL || strcmp(o.only, "off") == 0) {
            rc = mode_run(&o, root, "off", false, r, ctx, &off[r]);
        }
        if (rc == 0 && (o.only == NULL || strcmp(o.only, "on") == 0)) {
            rc = mode_run(&o, root, "on", true, r, ctx, &on[r]);
        }
        errors += on[r].errors + off[r].errors;
        if (rc == 0 && o.only == NULL && o.rounds > 1) {
            printf("round %u: ratio=%.2f\n", r + 1, off[r].rps > 0 ? on[r].rps / off[r].rps : 0);
        }
    }
    SSL_CTX_free(ctx);
    if (rc != 0 || o.only != NULL) {
        return rc == 0 && errors == 0 ? 0 : 1; /* one mode: no ratio */
    }
    return result_print(on, off, o.rounds) && errors == 0 ? 0 : 1;
}
