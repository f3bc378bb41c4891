/*
 * test_audit_state.c - unit tests for node/src/audit_state.c: the patient index in buckets of
 * 4,096 leaves (a patient's entries across buckets in log order, resumed from any value they
 * hold, none for an unknown patient), entries under both index key versions merged, index
 * entries held back and put at the transaction's end (more than the buffer holds), the index
 * keys' definitions, and the conversion of a state that still has the former dupsort
 * audit_pat.
 *
 * Records are built by the node's own code and applied through the state machine in
 * audit_batch commands, as the workers and the log thread do.
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include "../test_util.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAP_BYTES (256ull * 1024ull * 1024ull)
#define RECORDS 9000u /* three buckets of 4,096 leaves */
#define PATIENTS 7u
#define PER_CMD 60u
#define VAL_BYTES 18u
#define PAT_KEY_BYTES 42u /* bucket(8) patient(16) time(8) leaf(8) pos(2) */
#define BIG_CMDS 300u    /* 18,000 records in one apply: more than apply holds back (16,384) */
#define LEAVES_MAX (BIG_CMDS * PER_CMD)
#define ORGS 3u

static char tmp_dir[128];
static char state_dir[192];
static node_ctx_t ctx;
static hie_arena_t *arena;

static void
state_open(void)
{
    char data_dir[160], key_path[192];
    snprintf(data_dir, sizeof(data_dir), "%s/data", tmp_dir);
    snprintf(key_path, sizeof(key_path), "%s/mpi.key", tmp_dir);
    cr_assert_eq(hie_node__state_open(&ctx.state, data_dir, MAP_BYTES, "node-1", NULL), 0);
    cr_assert_eq(hie_node__state_mpi_key_load(ctx.state, key_path, 0), 0);
}

static void
setup(void)
{
    char path[192];
    test_tmpdir_make(tmp_dir, sizeof(tmp_dir), "audst");
    snprintf(path, sizeof(path), "%s/data", tmp_dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(state_dir, sizeof(state_dir), "%s/data/state", tmp_dir);
    snprintf(path, sizeof(path), "%s/mpi.key", tmp_dir);
    cr_assert_eq(hie_mpi_key_generate(path), 0);
    snprintf(ctx.cfg.node_id, sizeof(ctx.cfg.node_id), "node-1");
    cr_assert_eq(hie_arena_create(&arena, HIE_ARENA_BYTES_MAX), 0);
    state_open();
}

static void
teardown(void)
{
    hie_node__state_close(&ctx.state);
    hie_arena_destroy(&arena);
    test_tmpdir_remove(tmp_dir);
}

TestSuite(node_audit_state, .init = setup, .fini = teardown, .timeout = 120);

/* Record i names patient E-(i % PATIENTS); it is leaf i of the fresh tree. */
static void
record_build(uint64_t i, hie_arena_t *a, hie_command_t *out)
{
    char *id = hie_arena_alloc(a, 24), *euid = hie_arena_alloc(a, 24);
    cr_assert(id != NULL && euid != NULL);
    snprintf(id, 24, "q-%lu", (unsigned long)i);
    snprintf(euid, 24, "E-%lu", (unsigned long)(i % PATIENTS));
    static node_rand_t rnd; /* as a worker's */
    static const char *orgs[ORGS] = {"org-b", "org-bb", "org-a"}; /* a prefix of another */
    node_who_t who = {orgs[i % ORGS], NULL, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT, id, &rnd};
    node_subject_t s = {euid, {0}, NULL, 0, NULL, 0};
    s.decision.decision = HIE_CONSENT_PERMIT;
    s.decision.reason = "implicit-permit";
    node_audit_cmd_t c = {0};
    hie_node__audit_build(&ctx, &who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PIX,
        HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED, &s, 1, a, &c);
    cr_assert_eq(c.build_rc, 0);
    *out = c.cmd;
}

/* Records whose index key is of version 1 (NULL: none), as a state written before
 * 2026-11-30 holds them. */
static bool (*v1_key)(uint64_t record);

/* Log entry index: an audit_batch of records first..first+PER_CMD, packed (hie_mem). */
static hie_cluster_entry_t
batch_entry(uint64_t index, uint64_t first)
{
    hie_arena_t *a = NULL;
    hie_command_t cmd;
    Hie__V1__AuditAppendCommand *appends[PER_CMD];
    Hie__V1__AuditBatchCommand ab = HIE__V1__AUDIT_BATCH_COMMAND__INIT;
    cr_assert_eq(hie_arena_create(&a, 4u << 20), 0);
    for (size_t i = 0; i < PER_CMD; i++) {
        record_build(first + i, a, &cmd);
        appends[i] = cmd.audit_append;
        if (v1_key != NULL && v1_key(first + i)) {
            char euid[24];
            snprintf(euid, sizeof(euid), "E-%lu", (unsigned long)((first + i) % PATIENTS));
            hie_node__audit_subject_key_v1(hie_node__state_mpi_key(ctx.state), euid,
                appends[i]->subject_keys[0].data);
        }
    }
    ab.n_appends = PER_CMD;
    ab.appends = appends;
    cmd.body_case = HIE__V1__COMMAND__BODY_AUDIT_BATCH;
    cmd.audit_batch = &ab;
    hie_cluster_entry_t e = {index, {NULL, 0}};
    uint8_t *buf = NULL;
    cr_assert_eq(hie_proto_pack(&cmd.base, HIE_LOG_COMMAND_BYTES_MAX, &buf, &e.cmd.len), 0);
    e.cmd.ptr = buf;
    hie_arena_destroy(&a);
    return e;
}

/* Applies batch_entry(index, first). Returns apply's answer. */
static int
batch_apply(uint64_t index, uint64_t first)
{
    hie_cluster_fsm_t fsm = hie_node__state_fsm(ctx.state);
    hie_cluster_entry_t e = batch_entry(index, first);
    hie_cluster_result_t res = {NULL, 0};
    int rc = fsm.apply(fsm.ctx, &e, 1, &res);
    hie_mem_free(res.buf, res.len);
    hie_mem_free((void *)(uintptr_t)e.cmd.ptr, e.cmd.len);
    return rc;
}

static void
records_apply(void)
{
    for (uint64_t first = 0; first < RECORDS; first += PER_CMD) {
        cr_assert_eq(batch_apply(1 + first / PER_CMD, first), 0);
    }
}

struct collect {
    uint64_t leaves[LEAVES_MAX];
    size_t n, calls, resumes;
    uint8_t last[VAL_BYTES];
    bool have_last, resumed;
};

/* Takes each value once, as a report page does: the resumed-from value is skipped; a walk
 * that stopped for its budget between buckets says where to resume. */
static int
collect_fn(void *p, const uint8_t *val, size_t len, size_t key)
{
    struct collect *c = p;
    cr_assert_eq(len, VAL_BYTES);
    if (key == NODE_AUDIT_SCAN_RESUME) {
        memcpy(c->last, val, VAL_BYTES);
        c->have_last = true;
        c->resumed = true;
        c->resumes++;
        return 1;
    }
    c->calls++;
    if (c->have_last && memcmp(val, c->last, VAL_BYTES) == 0) {
        return 0;
    }
    cr_assert_lt(c->n, LEAVES_MAX);
    c->leaves[c->n++] = hie_load_be64(val + 8);
    memcpy(c->last, val, VAL_BYTES);
    c->have_last = true;
    return 0;
}

enum keys { KEYS_BOTH, KEYS_V2, KEYS_V1 };

/* Every entry of euid under its index keys (both, as reports look, or one version), max
 * values per scan, each scan resumed from the last value seen. */
static void
scan_keys(const char *euid, enum keys which, size_t max, struct collect *c)
{
    uint8_t keys[2 * HIE_PROTO_REC_HASH_BYTES], zero[VAL_BYTES] = {0};
    hie_node__audit_subject_key(hie_node__state_mpi_key(ctx.state), euid, keys);
    hie_node__audit_subject_key_v1(hie_node__state_mpi_key(ctx.state), euid,
        keys + HIE_PROTO_REC_HASH_BYTES);
    hie_span_t key = which == KEYS_BOTH ? hie_span(keys, sizeof(keys))
                                        : hie_span(keys + (which == KEYS_V1 ? 16 : 0), 16);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(hie_node__state_env(ctx.state), NULL, MDB_RDONLY, &txn), 0);
    memset(c, 0, sizeof(*c));
    for (unsigned round = 0; round < LEAVES_MAX; round++) {
        size_t before = c->calls;
        hie_span_t start = hie_span(c->have_last ? c->last : zero, VAL_BYTES);
        c->resumed = false;
        cr_assert_eq(hie_node__audit_scan(hie_node__state_audit(ctx.state), txn,
            AUDIT_INDEX_PATIENT, key, start, max, 0, collect_fn, c), 0);
        if (!c->resumed && c->calls - before < max) {
            break; /* the index ran out before max */
        }
    }
    mdb_txn_abort(txn);
}

static void
scan_all(const char *euid, size_t max, struct collect *c)
{
    scan_keys(euid, KEYS_BOTH, max, c);
}

Test(node_audit_state, a_patient_is_scanned_across_buckets_in_log_order_and_resumed)
{
    records_apply();
    static struct collect c;
    for (unsigned p = 0; p < PATIENTS; p++) {
        char euid[24];
        snprintf(euid, sizeof(euid), "E-%u", p);
        size_t want = (RECORDS - p + PATIENTS - 1) / PATIENTS;
        for (size_t max = 100; max <= 10000; max *= 10) { /* resumed mid-bucket, or not at all */
            scan_all(euid, max, &c);
            cr_assert_eq(c.n, want, "patient %u max %zu: %zu of %zu", p, max, c.n, want);
            for (size_t i = 0; i < c.n; i++) {
                cr_assert_eq(c.leaves[i], p + i * PATIENTS, "in log order, none missed");
            }
        }
    }
    scan_all("E-unknown", 100, &c);
    cr_assert_eq(c.n, 0, "no entries for a patient never disclosed");
    /* the walk's seeks have a budget too (max of them, one per bucket and key): with max 3
     * each scan stops at the next bucket and says where to resume, and nothing is missed */
    scan_all("E-0", 3, &c);
    cr_assert_eq(c.n, (RECORDS + PATIENTS - 1) / PATIENTS, "%zu", c.n);
    cr_assert_geq(c.resumes, 2u, "a resume at each bucket: %zu", c.resumes);
    scan_all("E-unknown", 3, &c);
    cr_assert_eq(c.n, 0);
    cr_assert_geq(c.resumes, 2u, "a walk over buckets without entries resumes too: %zu",
        c.resumes);
}

struct org_walk {
    uint8_t last[16];
    size_t n;
};

static int
org_fn(void *p, const uint8_t *val, size_t len, size_t key)
{
    cr_assert_eq(key, 0u);
    struct org_walk *w = p;
    cr_assert_eq(len, 16u);
    cr_assert(w->n == 0 || memcmp(w->last, val, 16) < 0, "in (time, leaf) order, once each");
    cr_assert_eq(hie_load_be64(val + 8) % ORGS, w->n == 0 ? hie_load_be64(val + 8) % ORGS :
        hie_load_be64(w->last + 8) % ORGS, "only this organization's records");
    memcpy(w->last, val, 16);
    w->n++;
    return 0;
}

/* Apply holds the patient and organization index entries back and puts them sorted at the
 * transaction's end; one apply with more of them than it holds puts a full buffer early. Every
 * entry of both indexes is there, in order. */
Test(node_audit_state, more_index_entries_than_apply_holds_back_are_all_stored_in_order)
{
    static hie_cluster_entry_t e[BIG_CMDS];
    static hie_cluster_result_t res[BIG_CMDS];
    for (uint64_t i = 0; i < BIG_CMDS; i++) {
        e[i] = batch_entry(1 + i, i * PER_CMD);
    }
    hie_cluster_fsm_t fsm = hie_node__state_fsm(ctx.state);
    cr_assert_eq(fsm.apply(fsm.ctx, e, BIG_CMDS, res), 0, "one transaction");
    for (uint64_t i = 0; i < BIG_CMDS; i++) {
        hie_mem_free(res[i].buf, res[i].len);
        hie_mem_free((void *)(uintptr_t)e[i].cmd.ptr, e[i].cmd.len);
    }
    static struct collect c;
    for (unsigned p = 0; p < PATIENTS; p++) {
        char euid[24];
        snprintf(euid, sizeof(euid), "E-%u", p);
        scan_all(euid, 5000, &c);
        cr_assert_eq(c.n, (LEAVES_MAX - p + PATIENTS - 1) / PATIENTS);
        for (size_t i = 0; i < c.n; i++) {
            cr_assert_eq(c.leaves[i], p + i * PATIENTS, "in log order, none missed");
        }
    }
    static const char *orgs[ORGS] = {"org-b", "org-bb", "org-a"};
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(hie_node__state_env(ctx.state), NULL, MDB_RDONLY, &txn), 0);
    for (unsigned o = 0; o < ORGS; o++) {
        struct org_walk w = {{0}, 0};
        cr_assert_eq(hie_node__audit_scan(hie_node__state_audit(ctx.state), txn,
            AUDIT_INDEX_ORG, hie_span(orgs[o], strlen(orgs[o])), hie_span(NULL, 0), LEAVES_MAX,
            0, org_fn, &w), 0);
        cr_assert_eq(w.n, LEAVES_MAX / ORGS, "%s: %zu", orgs[o], w.n);
        cr_assert_eq(hie_load_be64(w.last + 8) % ORGS, o);
    }
    mdb_txn_abort(txn);
}

/* Every third record, and a run across a bucket's edge, under version 1 keys. */
static bool
some_v1(uint64_t record)
{
    return record % 3 == 0 || (record >= 4000 && record < 6000);
}

/* A state written before 2026-11-30 holds version 1 index keys, then version 2 ones, even in
 * one bucket: a report finds both, merged in log order, and resumes anywhere. */
Test(node_audit_state, entries_under_both_index_key_versions_are_found_together_in_log_order)
{
    v1_key = some_v1;
    records_apply();
    v1_key = NULL;
    static struct collect c;
    for (unsigned p = 0; p < PATIENTS; p++) {
        char euid[24];
        snprintf(euid, sizeof(euid), "E-%u", p);
        size_t want = (RECORDS - p + PATIENTS - 1) / PATIENTS, old = 0;
        for (size_t max = 7; max <= 7000; max *= 10) {
            scan_keys(euid, KEYS_BOTH, max, &c);
            cr_assert_eq(c.n, want, "patient %u max %zu: %zu of %zu", p, max, c.n, want);
            for (size_t i = 0; i < c.n; i++) {
                cr_assert_eq(c.leaves[i], p + i * PATIENTS, "in log order, none missed");
                old += max == 7 && some_v1(c.leaves[i]);
            }
        }
        scan_keys(euid, KEYS_V1, 1000, &c);
        cr_assert_eq(c.n, old, "patient %u: only the version 1 entries", p);
        scan_keys(euid, KEYS_V2, 1000, &c);
        cr_assert_eq(c.n, want - old);
    }
}

/* The index keys' definitions, which stored states depend on. */
Test(node_audit_state, the_index_keys_are_siphash_128_and_formerly_keyed_blake2b)
{
    const struct hie_mpi_key *mk = hie_node__state_mpi_key(ctx.state);
    uint8_t secret[16], sub[16], got[16], want[16], in[64];
    hie_mpi_key_index_secret(mk, secret);
    crypto_generichash(sub, 16, (const uint8_t *)"hie-audit-euid-2", 16, secret, 16);
    crypto_shorthash_siphashx24(want, (const uint8_t *)"E-42", 4, sub);
    hie_node__audit_subject_key(mk, "E-42", got);
    cr_assert_eq(memcmp(got, want, 16), 0, "version 2");
    memcpy(in, "hie-audit-euid\0E-42", 19);
    crypto_generichash(want, 16, in, 19, secret, 16);
    hie_node__audit_subject_key_v1(mk, "E-42", got);
    cr_assert_eq(memcmp(got, want, 16), 0, "version 1");
    hie_node__audit_subject_key(mk, "E-43", want);
    hie_node__audit_subject_key(mk, "E-42", got);
    cr_assert_neq(memcmp(got, want, 16), 0);
}

/* The committed state as a reader sees it: applied index and audit tree size. */
static void
committed(uint64_t *applied, uint64_t *tree_size)
{
    uint8_t root[HIE_AUDIT_HASH_BYTES];
    MDB_txn *txn = NULL;
    cr_assert_eq(hie_node__state_applied_index(ctx.state, applied), 0);
    cr_assert_eq(mdb_txn_begin(hie_node__state_env(ctx.state), NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_node__audit_head(hie_node__state_audit(ctx.state), txn, tree_size, root),
        0);
    mdb_txn_abort(txn);
    cr_assert_eq(hie_node__state_committed_index(ctx.state), *applied);
}

static void *
wait_thread(void *arg)
{
    uint64_t index = *(uint64_t *)arg;
    *(int *)((uint64_t *)arg + 1) = hie_node__state_wait_committed(ctx.state, index, 10000);
    return NULL;
}

/* Batches of audit records share a commit (their replies need only the command log); any
 * other command, the age bound and flush commit them, and a reader sees nothing in between. */
Test(node_audit_state, audit_batches_share_a_commit_until_flush_another_command_or_the_bound)
{
    hie_cluster_fsm_t fsm = hie_node__state_fsm(ctx.state);
    uint64_t applied = 0, size = 0;
    hie_node__state_defer_commits(ctx.state, true);
    cr_assert_eq(batch_apply(1, 0), HIE_CLUSTER_APPLIED_OPEN);
    cr_assert_eq(batch_apply(2, PER_CMD), HIE_CLUSTER_APPLIED_OPEN);
    committed(&applied, &size);
    cr_assert_eq(applied, 0u, "nothing committed yet");
    cr_assert_eq(size, 0u);
    cr_assert_eq(hie_node__state_wait_committed(ctx.state, 2, 50), HIE_ETIMEDOUT);
    cr_assert_eq(fsm.flush(fsm.ctx), 0);
    committed(&applied, &size);
    cr_assert_eq(applied, 2u);
    cr_assert_eq(size, 2u * PER_CMD, "both batches in one commit");
    cr_assert_eq(fsm.flush(fsm.ctx), 0, "a flush with nothing open does nothing");

    /* another command (here one that apply rejects as invalid) commits what is open */
    cr_assert_eq(batch_apply(3, 2 * PER_CMD), HIE_CLUSTER_APPLIED_OPEN);
    hie_cluster_entry_t bad = {4, hie_span("\xff\xff\xff", 3)};
    hie_cluster_result_t res = {NULL, 0};
    cr_assert_eq(fsm.apply(fsm.ctx, &bad, 1, &res), 0);
    hie_mem_free(res.buf, res.len);
    committed(&applied, &size);
    cr_assert_eq(applied, 4u);
    cr_assert_eq(size, 3u * PER_CMD);

    /* an audit batch's bytes followed by another body (a oneof: the last one on the wire
     * is what decodes and applies) is not an audit record: committed, not left open. Its
     * raw bytes held an audit field, which was enough to defer the commit. */
    cr_assert_eq(batch_apply(5, 3 * PER_CMD), HIE_CLUSTER_APPLIED_OPEN);
    hie_cluster_entry_t mixed = batch_entry(6, 4 * PER_CMD);
    uint8_t *buf = hie_mem_alloc(mixed.cmd.len + 2);
    cr_assert_not_null(buf);
    memcpy(buf, mixed.cmd.ptr, mixed.cmd.len);
    buf[mixed.cmd.len] = (uint8_t)(HIE__V1__COMMAND__BODY_ORG_SUSPEND << 3 | 2);
    buf[mixed.cmd.len + 1] = 0; /* an empty OrgSuspend */
    hie_mem_free((void *)(uintptr_t)mixed.cmd.ptr, mixed.cmd.len);
    mixed.cmd = hie_span(buf, mixed.cmd.len + 2);
    cr_assert_eq(fsm.apply(fsm.ctx, &mixed, 1, &res), 0, "the mixed command is committed");
    hie_mem_free(res.buf, res.len);
    hie_mem_free(buf, mixed.cmd.len);
    committed(&applied, &size);
    cr_assert_eq(applied, 6u);
    cr_assert_eq(size, 4u * PER_CMD, "its audit records were not applied");

    /* a commit open longer than its bound (20 ms) is closed by the next batch */
    cr_assert_eq(batch_apply(7, 4 * PER_CMD), HIE_CLUSTER_APPLIED_OPEN);
    usleep(30000);
    cr_assert_eq(batch_apply(8, 5 * PER_CMD), 0);
    committed(&applied, &size);
    cr_assert_eq(applied, 8u);

    /* a reader waiting for an index wakes when the flush commits it */
    cr_assert_eq(batch_apply(9, 6 * PER_CMD), HIE_CLUSTER_APPLIED_OPEN);
    uint64_t arg[2] = {9, (uint64_t)-1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, wait_thread, arg), 0);
    usleep(20000);
    cr_assert_eq(fsm.flush(fsm.ctx), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(*(int *)(arg + 1), 0, "woken by the commit");
    committed(&applied, &size);
    cr_assert_eq(size, 7u * PER_CMD);

    /* an open commit left at close is dropped, as after a crash: the log replays it */
    cr_assert_eq(batch_apply(10, 7 * PER_CMD), HIE_CLUSTER_APPLIED_OPEN);
    hie_node__state_close(&ctx.state);
    state_open();
    committed(&applied, &size);
    cr_assert_eq(applied, 9u);
    cr_assert_eq(size, 7u * PER_CMD);
}

/* The raw keys of audit_patient, in order, into keys (RECORDS of them). */
static size_t
index_keys(MDB_txn *txn, MDB_dbi dbi, uint8_t (*keys)[PAT_KEY_BYTES])
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    size_t n = 0;
    cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
    for (int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        cr_assert_eq(k.mv_size, PAT_KEY_BYTES);
        cr_assert_lt(n, RECORDS);
        memcpy(keys[n++], k.mv_data, PAT_KEY_BYTES);
    }
    mdb_cursor_close(cur);
    return n;
}

static MDB_env *
raw_open(void)
{
    MDB_env *env = NULL;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_mapsize(env, MAP_BYTES), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 64), 0);
    cr_assert_eq(mdb_env_open(env, state_dir, MDB_NOTLS, 0600), 0);
    return env;
}

/* Rewrites st's patient index as the former dupsort audit_pat: patient -> time leaf pos. */
static size_t
downgrade(uint8_t (*keys)[PAT_KEY_BYTES])
{
    MDB_env *env = raw_open();
    MDB_txn *txn = NULL;
    MDB_dbi pat, old;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "audit_patient", 0, &pat), 0);
    size_t n = index_keys(txn, pat, keys);
    cr_assert_eq(mdb_dbi_open(txn, "audit_pat", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &old),
        0);
    for (size_t i = 0; i < n; i++) {
        MDB_val k = {HIE_PROTO_REC_HASH_BYTES, keys[i] + 8}, v = {VAL_BYTES, keys[i] + 24};
        cr_assert_eq(mdb_put(txn, old, &k, &v, 0), 0);
    }
    cr_assert_eq(mdb_drop(txn, pat, 1), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    return n;
}

Test(node_audit_state, the_former_dupsort_patient_index_is_converted_on_open)
{
    static uint8_t before[RECORDS][PAT_KEY_BYTES], after[RECORDS][PAT_KEY_BYTES];
    records_apply();
    hie_node__state_close(&ctx.state);
    size_t n = downgrade(before);
    cr_assert_eq(n, RECORDS);
    state_open(); /* converts */
    hie_node__state_close(&ctx.state);
    MDB_env *env = raw_open();
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "audit_pat", 0, &dbi), MDB_NOTFOUND, "dropped");
    cr_assert_eq(mdb_dbi_open(txn, "audit_patient", 0, &dbi), 0);
    cr_assert_eq(index_keys(txn, dbi, after), n);
    cr_assert_eq(memcmp(before, after, n * PAT_KEY_BYTES), 0, "the same keys, in order");
    mdb_txn_abort(txn);
    mdb_env_close(env);
    state_open();
    static struct collect c;
    scan_all("E-3", 1000, &c);
    cr_assert_eq(c.n, (RECORDS - 3 + PATIENTS - 1) / PATIENTS, "and reports still find them");
}

struct two_walk {
    size_t per_key[2];
};

/* Key 0's run is over after its first value (fn returns 2); key 1's goes on. */
static int
two_fn(void *p, const uint8_t *val, size_t len, size_t key)
{
    struct two_walk *w = p;
    (void)val;
    cr_assert_eq(len, VAL_BYTES);
    cr_assert_lt(key, 2u);
    w->per_key[key]++;
    return key == 0 ? 2 : 0;
}

/* Several patients' keys are walked together; fn may end one key's run (an accounting's
 * earlier EUID past its spans) and the others go on to their end. */
Test(node_audit_state, one_keys_run_can_end_while_the_others_go_on)
{
    records_apply();
    uint8_t keys[2 * HIE_PROTO_REC_HASH_BYTES];
    hie_node__audit_subject_key(hie_node__state_mpi_key(ctx.state), "E-0", keys);
    hie_node__audit_subject_key(hie_node__state_mpi_key(ctx.state), "E-1",
        keys + HIE_PROTO_REC_HASH_BYTES);
    uint8_t zero[VAL_BYTES] = {0};
    struct two_walk w = {{0, 0}};
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(hie_node__state_env(ctx.state), NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_node__audit_scan(hie_node__state_audit(ctx.state), txn,
        AUDIT_INDEX_PATIENT, hie_span(keys, sizeof(keys)), hie_span(zero, VAL_BYTES),
        LEAVES_MAX, 0, two_fn, &w), 0);
    mdb_txn_abort(txn);
    cr_assert_eq(w.per_key[0], 1u, "E-0's run ended at its first value");
    cr_assert_eq(w.per_key[1], (RECORDS - 1 + PATIENTS - 1) / PATIENTS, "E-1's went on");
}
