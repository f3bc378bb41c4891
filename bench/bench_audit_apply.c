/*
 * bench_audit_apply.c - what applying one audit record costs the log thread (issue 4): the
 * state machine's apply of PIX audit records, in CPU time of the applying thread (user and
 * system: LMDB page copies, the write and the fsync of the state commit), which other load on
 * the machine does not inflate the way it does throughput.
 *
 * In-process, as hie-node wires it: the node's state with the data key; records built by the
 * node's own code (hie_node__audit_build) for patients drawn from --patients EUIDs (fixed
 * seed), grouped as the workers send them (--per-cmd records per audit_batch command) and
 * applied in log batches of --batch records, one synced state transaction each, as the log
 * thread does. Building is not timed. Baseline in the same run: the same command bytes put
 * into one LMDB database keyed by index (MDB_APPEND), same batching, same sync: the cost of
 * storing the bytes alone.
 *
 *   bench_audit_apply [--smoke] [--records N] [--patients P] [--batch B] [--per-cmd K] [--keep]
 */
#include "harness.h"
#include "node_int.h"

#include "hie/mpi_store.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>


struct opts {
    unsigned records, patients, batch, per_cmd;
    bool keep;
};

struct bench {
    struct opts o;
    node_ctx_t ctx;
    uint8_t **cmds; /* packed commands, hie_mem */
    size_t *lens;
    size_t n_cmds;
    node_rand_t rnd; /* as a worker's: random bytes, digest context, sealer */
};

static uint64_t
thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
setup(struct bench *b, const char *root)
{
    char key[BENCH_PATH_BYTES], data[BENCH_PATH_BYTES];
    snprintf(key, sizeof(key), "%s/mpi.key", root);
    snprintf(data, sizeof(data), "%s/data", root);
    snprintf(b->ctx.cfg.node_id, sizeof(b->ctx.cfg.node_id), "%s", BENCH_NODE_ID);
    int rc = mkdir(data, 0700) == 0 ? 0 : HIE_ESTORAGE;
    rc = rc ? rc : hie_mpi_key_generate(key);
    rc = rc ? rc : hie_node__state_open(&b->ctx.state, data, 8ull << 30, BENCH_NODE_ID, NULL);
    rc = rc ? rc : hie_node__state_mpi_key_load(b->ctx.state, key, 0);
    b->n_cmds = (b->o.records + b->o.per_cmd - 1) / b->o.per_cmd;
    b->cmds = rc == 0 ? calloc(b->n_cmds, sizeof(*b->cmds)) : NULL;
    b->lens = rc == 0 ? calloc(b->n_cmds, sizeof(*b->lens)) : NULL;
    return rc != 0 ? rc : (b->cmds == NULL || b->lens == NULL ? HIE_ENOMEM : 0);
}

/* Record i's audit_append command, built as a worker builds it, into arena. */
static int
record_build(struct bench *b, uint64_t i, uint64_t *rng, hie_arena_t *arena, hie_command_t *out)
{
    char *id = hie_arena_alloc(arena, 24), *euid = hie_arena_alloc(arena, 24);
    if (id == NULL || euid == NULL) {
        return HIE_ENOMEM;
    }
    snprintf(id, 24, "q%lu", (unsigned long)i);
    snprintf(euid, 24, "E%09lu", (unsigned long)(bench_rand(rng) % b->o.patients));
    node_who_t who = {"general-hospital", NULL, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT, id,
        &b->rnd};
    node_subject_t s = {euid, {0}, NULL, 0, NULL, 0};
    s.decision.decision = HIE_CONSENT_PERMIT;
    s.decision.reason = "implicit-permit";
    node_audit_cmd_t a = {0};
    hie_node__audit_build(&b->ctx, &who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PIX,
        HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED, &s, 1, arena, &a);
    *out = a.cmd;
    return a.build_rc;
}

/* Command c: per_cmd records as one audit_batch (or one audit_append), packed. */
static int
command_build(struct bench *b, size_t c, uint64_t *rng)
{
    Hie__V1__AuditAppendCommand *appends[HIE_AUDIT_BATCH_RECORDS_MAX];
    Hie__V1__AuditBatchCommand ab = HIE__V1__AUDIT_BATCH_COMMAND__INIT;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    hie_arena_t *arena = NULL;
    uint64_t first = (uint64_t)c * b->o.per_cmd;
    size_t n = b->o.records - first < b->o.per_cmd ? b->o.records - first : b->o.per_cmd;
    int rc = hie_arena_create(&arena, 16u << 20);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = record_build(b, first + i, rng, arena, &cmd);
        appends[i] = cmd.audit_append;
    }
    if (rc == 0 && n > 1) {
        ab.n_appends = n;
        ab.appends = appends;
        cmd.body_case = HIE__V1__COMMAND__BODY_AUDIT_BATCH;
        cmd.audit_batch = &ab;
    }
    rc = rc ? rc : hie_proto_pack(&cmd.base, HIE_LOG_COMMAND_BYTES_MAX, &b->cmds[c],
        &b->lens[c]);
    hie_arena_destroy(&arena);
    return rc;
}

/* Applies every command, batch / per_cmd commands per state transaction; [out] the applying
 * thread's CPU and the wall time. */
static int
apply_all(struct bench *b, uint64_t *cpu_ns, uint64_t *wall_ns)
{
    size_t per_batch = b->o.batch / b->o.per_cmd > 0 ? b->o.batch / b->o.per_cmd : 1;
    hie_cluster_entry_t *entries = calloc(per_batch, sizeof(*entries));
    hie_cluster_result_t *results = calloc(per_batch, sizeof(*results));
    hie_cluster_fsm_t fsm = hie_node__state_fsm(b->ctx.state);
    int rc = entries == NULL || results == NULL ? HIE_ENOMEM : 0;
    uint64_t c0 = thread_cpu_ns(), w0 = hie_time_mono_ns();
    for (size_t first = 0; rc == 0 && first < b->n_cmds; first += per_batch) {
        size_t n = b->n_cmds - first < per_batch ? b->n_cmds - first : per_batch;
        for (size_t i = 0; i < n; i++) {
            entries[i] = (hie_cluster_entry_t){first + i + 1,
                hie_span(b->cmds[first + i], b->lens[first + i])};
            results[i] = (hie_cluster_result_t){NULL, 0};
        }
        rc = fsm.apply(fsm.ctx, entries, n, results);
        for (size_t i = 0; i < n; i++) {
            hie_mem_free(results[i].buf, results[i].len);
        }
    }
    *cpu_ns = thread_cpu_ns() - c0;
    *wall_ns = hie_time_mono_ns() - w0;
    free(entries);
    free(results);
    return rc;
}

/* The baseline: the same bytes into one database, appended, batched and synced alike. */
static int
raw_all(struct bench *b, const char *root, uint64_t *cpu_ns)
{
    char dir[BENCH_PATH_BYTES];
    snprintf(dir, sizeof(dir), "%s/raw", root);
    size_t per_batch = b->o.batch / b->o.per_cmd > 0 ? b->o.batch / b->o.per_cmd : 1;
    MDB_env *env = NULL;
    MDB_dbi dbi;
    MDB_txn *txn = NULL;
    int rc = mkdir(dir, 0700) == 0 && mdb_env_create(&env) == 0 ? 0 : HIE_ESTORAGE;
    rc = rc ? rc : (mdb_env_set_mapsize(env, 8ull << 30) == 0 ? 0 : HIE_ESTORAGE);
    rc = rc ? rc : (mdb_env_open(env, dir, MDB_NOTLS | MDB_NOMETASYNC, 0600) == 0 ? 0
        : HIE_ESTORAGE);
    uint64_t c0 = thread_cpu_ns();
    for (size_t i = 0; rc == 0 && i < b->n_cmds; i++) {
        uint8_t k[8];
        hie_store_be64(k, i + 1);
        MDB_val key = {sizeof(k), k}, val = {b->lens[i], b->cmds[i]};
        rc = txn == NULL && mdb_txn_begin(env, NULL, 0, &txn) != 0 ? HIE_ESTORAGE : 0;
        rc = rc ? rc : (mdb_dbi_open(txn, NULL, 0, &dbi) == 0 ? 0 : HIE_ESTORAGE);
        rc = rc ? rc : (mdb_put(txn, dbi, &key, &val, MDB_APPEND) == 0 ? 0 : HIE_ESTORAGE);
        if (rc == 0 && ((i + 1) % per_batch == 0 || i + 1 == b->n_cmds)) {
            rc = mdb_txn_commit(txn) == 0 ? 0 : HIE_ESTORAGE;
            txn = NULL;
        }
    }
    *cpu_ns = thread_cpu_ns() - c0;
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (env != NULL) {
        mdb_env_close(env);
    }
    return rc;
}

static int
opts_parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {{"smoke", no_argument, NULL, 's'},
        {"records", required_argument, NULL, 'n'}, {"patients", required_argument, NULL, 'p'},
        {"batch", required_argument, NULL, 'b'}, {"per-cmd", required_argument, NULL, 'c'},
        {"keep", no_argument, NULL, 'k'}, {NULL, 0, NULL, 0}};
    *o = (struct opts){40000, 2000, 400, 16, false};
    for (int ch; (ch = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        switch (ch) {
        case 's': o->records = 2000; break;
        case 'n': o->records = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'p': o->patients = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'b': o->batch = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'c': o->per_cmd = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'k': o->keep = true; break;
        default: return -1;
        }
    }
    bool ok = o->records >= 100 && o->records <= 10000000 && o->patients >= 1 &&
              o->batch >= 1 && o->batch <= 100000 && o->per_cmd >= 1 &&
              o->per_cmd <= HIE_AUDIT_BATCH_RECORDS_MAX;
    return ok ? 0 : -1;
}

int
main(int argc, char **argv)
{
    static struct bench b;
    if (opts_parse(argc, argv, &b.o) != 0) {
        fprintf(stderr, "usage: bench_audit_apply [--smoke] [--records N] [--patients P] "
            "[--batch B] [--per-cmd K] [--keep]\n");
        return 2;
    }
    char root[BENCH_ROOT_BYTES];
    uint64_t rng = BENCH_SEED, cpu = 0, wall = 0, raw = 0;
    int rc = bench_setup(root, sizeof(root), b.o.keep);
    rc = rc ? rc : setup(&b, root);
    for (size_t c = 0; rc == 0 && c < b.n_cmds; c++) {
        rc = command_build(&b, c, &rng);
    }
    hie_node__rand_end(&b.rnd);
    rc = rc ? rc : apply_all(&b, &cpu, &wall);
    rc = rc ? rc : raw_all(&b, root, &raw);
    if (rc != 0) {
        fprintf(stderr, "bench: %s\n", hie_strerror(rc));
        return 1;
    }
    double n = (double)b.o.records;
    printf("result bench=audit_apply records=%u patients=%u batch=%u per_cmd=%u "
        "cpu_us_per_record=%.2f wall_us_per_record=%.2f raw_cpu_us_per_record=%.2f "
        "ratio=%.1f\n", b.o.records, b.o.patients, b.o.batch, b.o.per_cmd, (double)cpu / n / 1e3,
        (double)wall / n / 1e3, (double)raw / n / 1e3, raw > 0 ? (double)cpu / (double)raw : 0);
    for (size_t c = 0; c < b.n_cmds; c++) {
        hie_mem_free(b.cmds[c], b.lens[c]);
    }
    free(b.cmds);
    free(b.lens);
    hie_node__state_close(&b.ctx.state);
    return 0;
}
