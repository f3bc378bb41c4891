/*
 * bench_cluster_log.c - command-log registrations committed per second with group commit, and
 * raw LMDB measured in the same run.
 *
 * In-process: the node's state (hie_node__state_open) and the command log (hie_cluster_log_open
 * driven by hie_node__state_fsm, its own ZeroMQ context, started), as hie-node wires them.
 * SUBMITTERS threads, each with its own ZMQ_DEALER connected to the log's endpoint, keep up to
 * OUTSTANDING_MAX OrgRegister commands outstanding until every command was answered (or the
 * time bound passed). Commands are built from BENCH_SEED, validated with
 * hie_proto_command_validate and packed before the clock starts: unique org ids, requester
 * "@operator", unique request ids, a fixed time_ms sequence, node_id "node-1". Each reply must
 * carry rc 0 and a CommandResult without an error code. Reported: commits/s, submit-to-reply
 * p50/p99, and the average batch size (commands_applied / log_batches from the node metrics
 * passed to state_open). Every command costs two synced LMDB transactions per batch: the log
 * append and the state apply.
 *
 * Baselines: a fresh LMDB environment (synced, default flags), puts of the same packed command
 * bytes under ascending 8-byte big-endian keys, (a) RAW_BATCH puts per synced txn, (b) one put
 * per synced txn. The log's ratio is against (a).
 *
 * Usage: bench_cluster_log [--smoke] [--ops N] [--seconds S] [--keep] [--retain N]
 *   --retain N: the log keeps N commands behind the state (storage.log_retain; default 0,
 *   every command), so the cost of trimming shows.
 */
#include "harness.h"
#include "node_int.h"

#include <errno.h>
#include <getopt.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#define SUBMITTERS 4u
#define OUTSTANDING_MAX 256u
#define LOG_ENDPOINT "inproc://bench-log"
#define MAP_BYTES (2ull * 1024ull * 1024ull * 1024ull)

static uint64_t log_retain; /* --retain */
#define RAW_BATCH 1000u
#define TIME_BASE_MS 1767225600000ll /* 2026-01-01T00:00:00Z: fixed, so runs are identical */
#define RESULT_ARENA_BYTES (64u * 1024u)

struct opts {
    bool smoke;
    bool keep;
    uint64_t ops;        /* registrations through the log */
    uint64_t raw_puts;   /* puts in the RAW_BATCH baseline */
    uint64_t raw1_puts;  /* puts in the one-per-txn baseline */
    unsigned seconds;
};

struct cmdbuf {
    uint8_t *buf;
    size_t len;
};

struct result {
    const char *mode;
    unsigned batch;      /* 0: the log (group commit) */
    uint64_t ops;
    uint64_t errors;
    double secs, p50_us, p99_us, ratio;
    double avg_batch;
};

struct shared {
    void *zctx;
    const struct cmdbuf *cmds;
    uint64_t n;
    uint64_t *sent_ns;
    uint64_t *lat_ns;    /* 0: not answered */
    uint64_t deadline_ns;
    _Atomic uint64_t errors;
};

struct submitter {
    struct shared *sh;
    uint64_t first, count;
    pthread_t thread;
};

/* ---- commands ---------------------------------------------------------------------------- */

static int
cmd_build(uint64_t i, uint64_t *rs, struct cmdbuf *out)
{
    char org[48], name[64], rid[48];
    Hie__V1__Role roles[2];
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    Hie__V1__OrgRegister reg = HIE__V1__ORG_REGISTER__INIT;
    snprintf(org, sizeof(org), "bench-org-%07lu", (unsigned long)i);
    snprintf(name, sizeof(name), "Bench Organization %lu", (unsigned long)i);
    snprintf(rid, sizeof(rid), "bl-%lu", (unsigned long)i);
    uint64_t r = bench_rand(rs);
    roles[0] = (Hie__V1__Role)(HIE__V1__ROLE__ROLE_HOSPITAL + (int)(r % 4)); /* hospital..payer */
    roles[1] = HIE__V1__ROLE__ROLE_AUDITOR;
    reg.org_id = org;
    reg.display_name = name;
    reg.n_roles = 1 + (size_t)((r >> 8) & 1);
    reg.roles = roles;
    cmd.requester = (char *)(uintptr_t)NODE_OPERATOR_ID;
    cmd.request_id = rid;
    cmd.time_ms = TIME_BASE_MS + (int64_t)i;
    cmd.node_id = (char *)(uintptr_t)BENCH_NODE_ID;
    cmd.body_case = HIE__V1__COMMAND__BODY_ORG_REGISTER;
    cmd.org_register = &reg;
    hie_errinfo_t info = {0};
    int rc = hie_proto_command_validate(&cmd, &info);
    HIE_ASSERT(rc == 0); /* we built it: a failure here is a bug in this benchmark */
    return hie_proto_pack(&cmd.base, HIE_LOG_COMMAND_BYTES_MAX, &out->buf, &out->len);
}

static struct cmdbuf *
cmds_build(uint64_t n)
{
    struct cmdbuf *cmds = calloc(n, sizeof(*cmds));
    uint64_t rs = BENCH_SEED;
    for (uint64_t i = 0; cmds != NULL && i < n; i++) {
        if (cmd_build(i, &rs, &cmds[i]) != 0) {
            return NULL; /* out of memory: the process is about to exit anyway */
        }
    }
    return cmds;
}

static void
cmds_free(struct cmdbuf *cmds, uint64_t n)
{
    for (uint64_t i = 0; cmds != NULL && i < n; i++) {
        hie_mem_free(cmds[i].buf, cmds[i].len);
    }
    free(cmds);
}

/* True when result is a CommandResult without an error code. */
static bool
result_ok(const uint8_t *buf, size_t len)
{
    hie_arena_t *arena = NULL;
    ProtobufCMessage *m = NULL;
    bool ok = false;
    if (buf != NULL && hie_arena_create(&arena, RESULT_ARENA_BYTES) == 0 &&
        hie_proto_unpack(&hie__v1__command_result__descriptor, hie_span(buf, len), arena,
            &m) == 0) {
        const hie_command_result_t *r = (const hie_command_result_t *)m;
        ok = r->code == HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED && r->org != NULL;
    }
    hie_arena_destroy(&arena);
    return ok;
}

/* ---- submitters -------------------------------------------------------------------------- */

/* Reads every reply available. Returns how many were read. */
static uint64_t
submitter_recv(struct submitter *s, void *dealer)
{
    struct shared *sh = s->sh;
    uint64_t got = 0;
    for (unsigned i = 0; i < OUTSTANDING_MAX; i++) {
        uint64_t token = 0, index = 0;
        uint8_t *res = NULL;
        size_t res_len = 0;
        int crc = 0;
        int rc = hie_cluster_submit_recv(dealer, &token, &crc, &index, &res, &res_len);
        if (rc == HIE_EAGAIN) {
            break;
        }
        HIE_ASSERT(rc == 0);
        HIE_ASSERT(token >= s->first && token < s->first + s->count);
        sh->lat_ns[token] = hie_time_mono_ns() - sh->sent_ns[token];
        if (crc != 0 || index == 0 || !result_ok(res, res_len)) {
            atomic_fetch_add(&sh->errors, 1);
        }
        hie_mem_free(res, res_len);
        got++;
    }
    return got;
}

static void *
submitter_thread(void *arg)
{
    struct submitter *s = arg;
    struct shared *sh = s->sh;
    void *dealer = zmq_socket(sh->zctx, ZMQ_DEALER);
    int linger = 0;
    HIE_ASSERT(dealer != NULL);
    zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof(linger));
    int rc = zmq_connect(dealer, LOG_ENDPOINT);
    HIE_ASSERT(rc == 0);
    uint64_t next = s->first, end = s->first + s->count, outstanding = 0, done = 0;
    while (done < s->count && hie_time_mono_ns() < sh->deadline_ns) {
        while (outstanding < OUTSTANDING_MAX && next < end) {
            sh->sent_ns[next] = hie_time_mono_ns();
            rc = hie_cluster_submit_send(dealer, next,
                hie_span(sh->cmds[next].buf, sh->cmds[next].len));
            if (rc == HIE_EBUSY) {
                break;
            }
            HIE_ASSERT(rc == 0);
            next++;
            outstanding++;
        }
        zmq_pollitem_t item = {dealer, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 100) < 0 && errno != EINTR) {
            break;
        }
        uint64_t got = submitter_recv(s, dealer);
        outstanding -= got;
        done += got;
    }
    zmq_close(dealer);
    return NULL;
}

/* ---- the log run ------------------------------------------------------------------------- */

struct logrun {
    node_metrics_t metrics;
    node_state_t *state;
    hie_cluster_log_t *log;
    void *zctx;
};

static int
logrun_open(struct logrun *lr, const char *root)
{
    char data[BENCH_PATH_BYTES], logdir[BENCH_PATH_BYTES];
    snprintf(data, sizeof(data), "%s/data", root);
    snprintf(logdir, sizeof(logdir), "%s/data/log", root);
    if (mkdir(data, 0700) != 0) {
        return -errno;
    }
    lr->zctx = zmq_ctx_new();
    if (lr->zctx == NULL) {
        return -errno;
    }
    int rc = hie_node__state_open(&lr->state, data, MAP_BYTES, BENCH_NODE_ID, &lr->metrics);
    if (rc == 0) {
        hie_cluster_log_config_t cfg = {logdir, lr->zctx, LOG_ENDPOINT, MAP_BYTES, NULL, NULL,
            log_retain};
        hie_cluster_fsm_t fsm = hie_node__state_fsm(lr->state);
        rc = hie_cluster_log_open(&lr->log, &cfg, &fsm);
    }
    return rc != 0 ? rc : hie_cluster_log_start(lr->log);
}

static void
logrun_close(struct logrun *lr)
{
    hie_cluster_log_destroy(&lr->log);
    hie_node__state_close(&lr->state);
    if (lr->zctx != NULL) {
        zmq_ctx_term(lr->zctx);
        lr->zctx = NULL;
    }
}

/* Checks the state after the run: the first and the last organization are registered. */
static int
logrun_verify(struct logrun *lr, uint64_t n)
{
    char org[48];
    hie_arena_t *arena = NULL;
    hie_org_t *o = NULL;
    int rc = hie_arena_create(&arena, RESULT_ARENA_BYTES);
    for (uint64_t i = 0; rc == 0 && i < 2; i++) {
        snprintf(org, sizeof(org), "bench-org-%07lu", (unsigned long)(i == 0 ? 0 : n - 1));
        rc = hie_node__state_org_get(lr->state, org, arena, &o);
    }
    hie_arena_destroy(&arena);
    return rc;
}

static int
log_measure(const char *root, const struct cmdbuf *cmds, const struct opts *o,
    struct result *r)
{
    static struct logrun lr;
    struct submitter subs[SUBMITTERS];
    struct shared sh = {0};
    int rc = logrun_open(&lr, root);
    sh.zctx = lr.zctx;
    sh.cmds = cmds;
    sh.n = o->ops;
    sh.sent_ns = calloc(o->ops, sizeof(uint64_t));
    sh.lat_ns = calloc(o->ops, sizeof(uint64_t));
    HIE_ASSERT(sh.sent_ns != NULL && sh.lat_ns != NULL);
    unsigned started = 0;
    uint64_t t0 = hie_time_mono_ns();
    sh.deadline_ns = t0 + (uint64_t)o->seconds * 1000000000ull;
    for (unsigned i = 0; rc == 0 && i < SUBMITTERS; i++) {
        subs[i] = (struct submitter){&sh, o->ops * i / SUBMITTERS, 0, 0};
        subs[i].count = o->ops * (i + 1) / SUBMITTERS - subs[i].first;
        rc = -pthread_create(&subs[i].thread, NULL, submitter_thread, &subs[i]);
        started += rc == 0;
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(subs[i].thread, NULL);
    }
    r->secs = (double)(hie_time_mono_ns() - t0) / 1e9;
    uint64_t applied = atomic_load(&lr.metrics.commands_applied);
    uint64_t batches = atomic_load(&lr.metrics.log_batches);
    r->avg_batch = batches > 0 ? (double)applied / (double)batches : 0.0;
    uint64_t ok = 0;
    for (uint64_t i = 0; i < o->ops; i++) {
        if (sh.lat_ns[i] != 0) {
            sh.lat_ns[ok++] = sh.lat_ns[i];
        }
    }
    r->ops = ok;
    r->errors = atomic_load(&sh.errors) + (rc != 0) + (ok != o->ops) + (applied != ok);
    bench_percentiles(sh.lat_ns, ok, &r->p50_us, &r->p99_us);
    if (rc == 0 && ok > 0 && logrun_verify(&lr, o->ops) != 0) {
        r->errors++;
    }
    printf("# log: %lu applied in %lu batches, last index %lu\n", (unsigned long)applied,
        (unsigned long)batches, (unsigned long)(lr.log ? hie_cluster_log_last_index(lr.log) : 0));
    logrun_close(&lr);
    free(sh.sent_ns);
    free(sh.lat_ns);
    return rc;
}

/* ---- raw LMDB ---------------------------------------------------------------------------- */

static int
raw_open(const char *dir, MDB_env **env, MDB_dbi *dbi)
{
    MDB_txn *txn = NULL;
    if (mkdir(dir, 0700) != 0) {
        return -errno;
    }
    int rc = mdb_env_create(env);
    rc = rc ? rc : mdb_env_set_mapsize(*env, MAP_BYTES);
    rc = rc ? rc : mdb_env_open(*env, dir, MDB_NOTLS, 0600);
    rc = rc ? rc : mdb_txn_begin(*env, NULL, 0, &txn);
    rc = rc ? rc : mdb_dbi_open(txn, NULL, 0, dbi);
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc == 0 ? 0 : HIE_ESTORAGE;
}

/* One synced txn of batch puts, keys from *key on. Returns 0 or HIE_ESTORAGE. */
static int
raw_txn(MDB_env *env, MDB_dbi dbi, const struct cmdbuf *cmds, uint64_t ncmds, unsigned batch,
    uint64_t *key)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    for (unsigned j = 0; rc == 0 && j < batch; j++) {
        uint8_t kb[8];
        hie_store_be64(kb, *key);
        const struct cmdbuf *c = &cmds[(*key - 1) % ncmds];
        MDB_val k = {sizeof(kb), kb}, v = {c->len, c->buf};
        rc = mdb_put(txn, dbi, &k, &v, 0);
        (*key)++;
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn); /* synced: the environment has no NOSYNC flags */
        txn = NULL;
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc == 0 ? 0 : HIE_ESTORAGE;
}

static int
raw_measure(const char *dir, const struct cmdbuf *cmds, uint64_t ncmds, uint64_t puts,
    unsigned batch, unsigned seconds, struct result *r)
{
    MDB_env *env = NULL;
    MDB_dbi dbi = 0;
    uint64_t txns = (puts + batch - 1) / batch, key = 1, done = 0;
    uint64_t *lat = calloc(txns, sizeof(*lat));
    HIE_ASSERT(lat != NULL);
    int rc = raw_open(dir, &env, &dbi);
    uint64_t t0 = hie_time_mono_ns(), deadline = t0 + (uint64_t)seconds * 1000000000ull;
    for (uint64_t i = 0; rc == 0 && i < txns && hie_time_mono_ns() < deadline; i++) {
        uint64_t s = hie_time_mono_ns();
        rc = raw_txn(env, dbi, cmds, ncmds, batch, &key);
        lat[done++] = hie_time_mono_ns() - s;
    }
    r->secs = (double)(hie_time_mono_ns() - t0) / 1e9;
    r->ops = done * batch;
    r->errors = rc != 0;
    bench_percentiles(lat, done, &r->p50_us, &r->p99_us);
    if (env != NULL) {
        mdb_env_close(env);
    }
    free(lat);
    return rc;
}

/* ---- driver ------------------------------------------------------------------------------ */

static double
rate(const struct result *r)
{
    return r->secs > 0 ? (double)r->ops / r->secs : 0.0;
}

static void
result_print(const struct result *r)
{
    printf("%-9s %6s %8lu %7.2f %10.0f %9.1f %9.1f %9.1f %6lu %6.3f\n", r->mode,
        r->batch ? (r->batch == 1 ? "1" : "1000") : "group", (unsigned long)r->ops, r->secs,
        rate(r), r->p50_us, r->p99_us, r->avg_batch, (unsigned long)r->errors, r->ratio);
    fflush(stdout);
}

static void
result_line(const struct result *r)
{
    double x = rate(r);
    printf("bench=cluster_log mode=%s batch=%s ops=%lu ns_op=%.0f ops_s=%.0f p50_us=%.1f "
        "p99_us=%.1f", r->mode, r->batch ? (r->batch == 1 ? "1" : "1000") : "group",
        (unsigned long)r->ops, x > 0 ? 1e9 / x : 0.0, x, r->p50_us, r->p99_us);
    if (r->batch == 0) {
        printf(" avg_batch=%.1f submitters=%u outstanding=%u", r->avg_batch, SUBMITTERS,
            OUTSTANDING_MAX);
    }
    printf(" errors=%lu ratio_vs_raw1000=%.3f\n", (unsigned long)r->errors, r->ratio);
}

static int
parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {{"smoke", no_argument, NULL, 's'},
        {"ops", required_argument, NULL, 'n'}, {"seconds", required_argument, NULL, 't'},
        {"keep", no_argument, NULL, 'k'}, {"retain", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0}};
    *o = (struct opts){false, false, 20000, 100000, 2000, 60};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 's':
            *o = (struct opts){true, o->keep, 500, 2000, 50, 20};
            break;
        case 'n':
            o->ops = strtoull(optarg, NULL, 10);
            break;
        case 't':
            o->seconds = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'k':
            o->keep = true;
            break;
        case 'r':
            log_retain = strtoull(optarg, NULL, 10);
            break;
        default:
            return 2;
        }
    }
    return o->ops >= SUBMITTERS && o->ops <= 1000000 && o->seconds > 0 ? 0 : 2;
}

static int
run_all(const char *root, const struct opts *o, struct cmdbuf *cmds, struct result *res)
{
    char dir[BENCH_PATH_BYTES];
    printf("mode      batch      ops    secs      ops/s    p50_us    p99_us avg_batch errors "
        " ratio\n");
    res[0] = (struct result){.mode = "raw_lmdb", .batch = RAW_BATCH};
    snprintf(dir, sizeof(dir), "%s/raw1000", root);
    int rc = raw_measure(dir, cmds, o->ops, o->raw_puts, RAW_BATCH, o->seconds, &res[0]);
    res[0].avg_batch = RAW_BATCH;
    res[0].ratio = 1.0;
    result_print(&res[0]);
    res[1] = (struct result){.mode = "raw_lmdb", .batch = 1};
    snprintf(dir, sizeof(dir), "%s/raw1", root);
    rc = rc ? rc : raw_measure(dir, cmds, o->ops, o->raw1_puts, 1, o->seconds, &res[1]);
    res[1].avg_batch = 1;
    res[1].ratio = rate(&res[0]) > 0 ? rate(&res[1]) / rate(&res[0]) : 0.0;
    result_print(&res[1]);
    res[2] = (struct result){.mode = "log"};
    rc = rc ? rc : log_measure(root, cmds, o, &res[2]);
    res[2].ratio = rate(&res[0]) > 0 ? rate(&res[2]) / rate(&res[0]) : 0.0;
    result_print(&res[2]);
    return rc;
}

int
main(int argc, char **argv)
{
    struct opts o;
    char root[BENCH_ROOT_BYTES];
    struct result res[3];
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: bench_cluster_log [--smoke] [--ops N] [--seconds S] [--keep]\n");
        return 2;
    }
    hie_log_configure(HIE_LOG_WARN, HIE_LOG_KV);
    printf("# bench_cluster_log: OrgRegister through the command log (group commit), %u "
        "submitters x %u outstanding; %s, ops=%lu, <=%u s per row\n", SUBMITTERS,
        OUTSTANDING_MAX, o.smoke ? "smoke" : "full", (unsigned long)o.ops, o.seconds);
    printf("# rlimit nofile %lu\n", (unsigned long)bench_rlimit_raise());
    int rc = bench_setup(root, sizeof(root), o.keep);
    struct cmdbuf *cmds = rc == 0 ? cmds_build(o.ops) : NULL;
    if (cmds == NULL) {
        fprintf(stderr, "bench_cluster_log: setup failed\n");
        return 1;
    }
    printf("# dir %s, command bytes %zu..%zu\n", root, cmds[0].len, cmds[o.ops - 1].len);
    rc = run_all(root, &o, cmds, res);
    uint64_t errors = 0;
    for (unsigned i = 0; i < 3 && rc == 0; i++) {
        result_line(&res[i]);
        errors += res[i].errors;
    }
    cmds_free(cmds, o.ops);
    if (rc != 0) {
        fprintf(stderr, "bench_cluster_log: failed: %s\n", hie_strerror(rc));
    }
    return rc != 0 ? 1 : (errors > 0 ? 3 : 0);
}
