/*
 * sm.c - the node's LMDB state and the state machine that changes it.
 *
 * The state machine is the only writer (design.md): it applies committed commands in log
 * order, one write transaction per batch, and stores the applied index in the same
 * transaction, so a crash at any point leaves a state that replays to the same contents.
 * Apply is deterministic: no clock, no PRNG, no hash-order iteration; time comes from the
 * command. A command it rejects (bad body, unknown organization, ...) is a recorded result,
 * not an error; a storage failure is an error and stops the node.
 *
 * Batches of audit records only (one per exchange, the hot path) may share a commit
 * (hie_node__state_defer_commits): the log's fsync already made them durable before apply,
 * and replay applies them again after a crash. So apply leaves the write transaction open for
 * the next batch, their replies go at once, and one commit (one fsync) covers several
 * batches: the log's flush when it goes idle, any batch that holds another command, or the
 * bounds below. Everything else commits before its reply: consent changes must bind the very
 * next message, and the match pool reads committed records. Readers that must see every audit
 * record answered so far wait for the commit (hie_node__state_wait_committed). The monotonic
 * clock used for the bound decides only when to commit, never what is stored.
 *
 * Databases in <data_dir>/state: meta (applied_index), orgs (id -> Organization),
 * dedup ("requester\0request_id" -> 8-byte time + CommandResult), dedup_time (time ‖ index ->
 * dedup key, for bounded pruning).
 *
 * Callers: the log thread (apply), workers and admin (readers, own read txns).
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 2026-11-30T17:00:00Z: refusals for now are not kept for commands proposed since. */
#define RETRYABLE_NOT_KEPT_SINCE_MS 1796058000000ll
/* From 2026-11-30T21:30Z the rules (all the *_SINCE_MS) are decided by the rules clock (the
 * latest command time applied), not by each command's own clock, which a node whose clock is
 * behind would hold back: node_apply_t.rules_ms. */
#define RULES_CLOCK_SINCE_MS 1796074200000ll
#define STATE_MAGIC 0x53544154u /* "STAT" */
#define DEDUP_KEY_BYTES_MAX (HIE_ORG_ID_BYTES_MAX + 1 + HIE_PROTO_ID_BYTES_MAX + 1)
#define APPLY_ARENA_BYTES (HIE_ARENA_BYTES_MAX)
/* An open commit of audit records is closed after this long or this many commands. */
#define STATE_DEFER_NS_MAX (20u * 1000u * 1000u)
#define STATE_DEFER_COMMANDS_MAX 8192u

struct node_state;
static int meta_get_u64(struct node_state *st, const char *name, uint64_t *out);

struct node_state {
    uint32_t magic;
    MDB_env *env;
    MDB_dbi meta, orgs, dedup, dedup_time;
    char node_id[HIE_ORG_ID_BYTES_MAX + 1];
    node_metrics_t *metrics;
    hie_mpi_store_t *mpi;      /* the MPI's databases in the same environment */
    hie_mpi_key_t *mpi_key;    /* NULL: no data key configured, MPI exchanges unavailable */
    uint8_t mpi_key_id[16];    /* hie_mpi_key_id of mpi_key */
    hie_mpi_pool_t *mpi_pool;  /* the match pool (NULL: none); prepares each batch's feeds */
    size_t batch_pos;          /* apply: the entry of the batch being applied */
    bool batch_audit_only;     /* apply: every command of the batch so far decoded as an
                                * audit record (whose reply needs no state commit) */
    int64_t rules_ms;          /* apply: the rules clock, max of the commands' times so far
                                * (meta "rules_ms", committed with applied_index) */
    int64_t rules_now_ms;      /* apply: the time the command being applied is held to */
    hie_arena_t *apply_arena;  /* apply: each command's, reset after it (log thread) */
    /* deferred commits (log thread, except the committed index and its wait) */
    bool defer;                /* hie_node__state_defer_commits */
    MDB_txn *open_txn;         /* applied, not yet committed (audit records only) */
    uint64_t open_since_ns;
    uint64_t open_commands;
    uint64_t open_last;        /* the last index applied in open_txn */
    pthread_mutex_t commit_mu;
    pthread_cond_t commit_cv;
    _Atomic uint64_t committed_index;

    node_consent_t *consent;   /* consent directives (consent_state.c) */
    node_audit_t *audit;       /* the disclosure audit log (audit_state.c) */
    node_queue_t *queue;       /* delivery queues (queue_state.c) */
    node_subs_t *subs;         /* subscriptions (subs_state.c) */
    node_repo_t *repo;         /* document repository (repo_state.c) */
};

static int
mdb_rc(int rc)
{
    return rc == 0 ? 0 : (rc == MDB_NOTFOUND ? HIE_ENOTFOUND : HIE_ESTORAGE);
}

int
hie_node__dbis_open(MDB_env *env, const node_dbi_spec_t *specs, size_t n)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = mdb_dbi_open(txn, specs[i].name, specs[i].flags, specs[i].dbi);
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
    } else if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc == 0 ? 0 : HIE_ESTORAGE;
}

static int
state_dbis_open(node_state_t *st)
{
    MDB_txn *txn = NULL;
    int rc = mdb_rc(mdb_txn_begin(st->env, NULL, 0, &txn));
    if (rc == 0) {
        rc = mdb_rc(mdb_dbi_open(txn, "meta", MDB_CREATE, &st->meta));
    }
    if (rc == 0) {
        rc = mdb_rc(mdb_dbi_open(txn, "orgs", MDB_CREATE, &st->orgs));
    }
    if (rc == 0) {
        rc = mdb_rc(mdb_dbi_open(txn, "dedup", MDB_CREATE, &st->dedup));
    }
    if (rc == 0) {
        rc = mdb_rc(mdb_dbi_open(txn, "dedup_time", MDB_CREATE, &st->dedup_time));
    }
    if (rc == 0) {
        rc = mdb_rc(mdb_txn_commit(txn));
        txn = NULL;
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc;
}

/* Waits on cv time out by the monotonic clock: a wall clock step (NTP) neither stretches nor
 * cuts them. */
static void
cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* The committed applied index and rules clock. */
static int
state_meta_load(node_state_t *st)
{
    uint64_t applied = 0, rules = 0;
    int rc = hie_node__state_applied_index(st, &applied);
    atomic_store(&st->committed_index, applied);
    rc = rc ? rc : meta_get_u64(st, "rules_ms", &rules);
    st->rules_ms = (int64_t)rules;
    return rc;
}

int
hie_node__state_open(node_state_t **out, const char *data_dir, uint64_t map_bytes,
    const char *node_id, node_metrics_t *metrics)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(data_dir != NULL && node_id != NULL);
    *out = NULL;
    char dir[NODE_PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/state", data_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return -errno;
    }
    node_state_t *st = hie_mem_calloc(1, sizeof(*st));
    if (st == NULL) {
        return HIE_ENOMEM;
    }
    st->magic = STATE_MAGIC;
    pthread_mutex_init(&st->commit_mu, NULL);
    cond_init_monotonic(&st->commit_cv);
    st->metrics = metrics;
    snprintf(st->node_id, sizeof(st->node_id), "%s", node_id);
    int rc = mdb_rc(mdb_env_create(&st->env));
    if (rc == 0) {
        rc = mdb_rc(mdb_env_set_mapsize(st->env, map_bytes));
    }
    if (rc == 0) {
        rc = mdb_rc(mdb_env_set_maxdbs(st->env, 64));
    }
    if (rc == 0) {
        rc = mdb_rc(mdb_env_set_maxreaders(st->env, 256));
    }
    if (rc == 0) {
        /* MDB_NOMETASYNC: one fsync per apply batch instead of two (the meta page is written
         * with O_DSYNC otherwise). LMDB keeps the file consistent; a system crash may undo the
         * last applied batch, which the command log (synced before apply) replays at start. */
        rc = mdb_rc(mdb_env_open(st->env, dir, MDB_NOTLS | MDB_NOMETASYNC, 0600));
    }
    if (rc == 0) {
        rc = state_dbis_open(st);
    }
    if (rc == 0) {
        rc = state_meta_load(st);
    }

    if (rc == 0) {
        rc = hie_mpi_store_open(&st->mpi, st->env, NULL);
    }
    if (rc == 0) {
        rc = hie_node__consent_open(&st->consent, st->env);
    }
    if (rc == 0) {
        rc = hie_node__audit_open(&st->audit, st->env, false);
    }
    if (rc == 0) {
        rc = hie_node__queue_open(&st->queue, st->env);
    }
    if (rc == 0) {
        rc = hie_node__subs_open(&st->subs, st->env);
    }
    if (rc == 0) {
        rc = hie_node__repo_open(&st->repo, st->env);
    }
    if (rc != 0) {
        hie_node__state_close(&st);
        return rc;
    }
    *out = st;
    return 0;
}

void
hie_node__state_close(node_state_t **stp)
{
    HIE_ASSERT(stp != NULL);
    node_state_t *st = *stp;
    if (st == NULL) {
        return;
    }
    HIE_ASSERT(st->magic == STATE_MAGIC);
    if (st->open_txn != NULL) {
        /* only if the log never flushed (it does at stop): replay applies these again */
        mdb_txn_abort(st->open_txn);
        st->open_txn = NULL;
        hie_node__audit_txn_drop(st->audit);
    }
    hie_mpi_pool_destroy(&st->mpi_pool);
    hie_arena_destroy(&st->apply_arena);
    hie_mpi_store_close(&st->mpi);
    hie_node__consent_close(&st->consent);
    hie_node__audit_close(&st->audit);
    hie_node__queue_close(&st->queue);
    hie_node__subs_close(&st->subs);
    hie_node__repo_close(&st->repo);
    hie_mpi_key_destroy(&st->mpi_key);
    if (st->env != NULL) {
        mdb_env_close(st->env);
    }
    pthread_cond_destroy(&st->commit_cv);
    pthread_mutex_destroy(&st->commit_mu);
    st->magic = 0;
    hie_mem_free(st, sizeof(*st));
    *stp = NULL;
}

/* The data key must be the one the state was written with: its id (a hash of a subkey) is
 * kept in meta at the first load and compared at every later one. A different key would
 * open nothing, and its apply would refuse what another node's accepts. HIE_ECONFIG when it
 * differs. */
static int
key_id_check(node_state_t *st)
{
    uint8_t *id = st->mpi_key_id;
    const size_t id_len = sizeof(st->mpi_key_id);
    hie_mpi_key_id(st->mpi_key, id);
    MDB_txn *txn = NULL;
    MDB_val k = {sizeof("mpi_key_id") - 1, (void *)(uintptr_t)"mpi_key_id"}, v;
    int rc = mdb_rc(mdb_txn_begin(st->env, NULL, 0, &txn));
    int grc = rc == 0 ? mdb_get(txn, st->meta, &k, &v) : 0;
    if (rc == 0 && grc == MDB_NOTFOUND) { /* the first load (or a state from before ids) */
        MDB_val nv = {id_len, id};
        rc = mdb_rc(mdb_put(txn, st->meta, &k, &nv, 0));
        if (rc != 0) { /* a full map: the write transaction must not stay open */
            mdb_txn_abort(txn);
            return rc;
        }
        return mdb_rc(mdb_txn_commit(txn)); /* a failed commit frees the transaction */
    }
    if (rc == 0 && grc == 0) {
        rc = v.mv_size == id_len && sodium_memcmp(v.mv_data, id, id_len) == 0
            ? 0 : HIE_ECONFIG;
    } else if (rc == 0) {
        rc = HIE_ESTORAGE;
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc;
}

int
hie_node__state_key_check_ro(const char *data_dir, const hie_mpi_key_t *key)
{
    char dir[NODE_PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/state/data.mdb", data_dir);
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        return errno == ENOENT ? 0 : -errno; /* none yet: the first start writes the id */
    }
    /* no lock file: no process has the state open, and none is made (LMDB creates it even
     * read-only: one made by root here would lock the node's user out) */
    snprintf(dir, sizeof(dir), "%s/state/lock.mdb", data_dir);
    unsigned flags = MDB_RDONLY | MDB_NOTLS | (stat(dir, &sb) != 0 && errno == ENOENT
                                                  ? MDB_NOLOCK : 0u);
    snprintf(dir, sizeof(dir), "%s/state", data_dir);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    MDB_val k = {sizeof("mpi_key_id") - 1, (void *)(uintptr_t)"mpi_key_id"}, v;
    uint8_t id[16];
    hie_mpi_key_id(key, id);
    int rc = mdb_rc(mdb_env_create(&env));
    rc = rc ? rc : mdb_rc(mdb_env_set_maxdbs(env, 64));
    rc = rc ? rc : mdb_rc(mdb_env_open(env, dir, flags, 0600));
    rc = rc ? rc : mdb_rc(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
    rc = rc ? rc : mdb_rc(mdb_dbi_open(txn, "meta", 0, &meta));
    int grc = rc == 0 ? mdb_get(txn, meta, &k, &v) : 0;
    if (rc == 0 && grc == 0) {
        rc = v.mv_size == sizeof(id) && sodium_memcmp(v.mv_data, id, sizeof(id)) == 0
            ? 0 : HIE_ECONFIG;
    } else if (rc == 0 && grc != MDB_NOTFOUND) {
        rc = HIE_ESTORAGE;
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (env != NULL) {
        mdb_env_close(env);
    }
    return rc;
}

int
hie_node__state_mpi_key_load(node_state_t *st, const char *path, unsigned match_threads)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC && path != NULL);
    HIE_ASSERT(st->mpi_key == NULL && st->mpi_pool == NULL);
    int rc = hie_mpi_key_load(&st->mpi_key, path);
    rc = rc ? rc : key_id_check(st);
    if (rc != 0) {
        hie_mpi_key_destroy(&st->mpi_key);
        return rc;
    }
    hie_mpi_store_close(&st->mpi);
    rc = hie_mpi_store_open(&st->mpi, st->env, st->mpi_key);
    if (rc == 0 && match_threads > 0) {
        rc = hie_mpi_pool_create(&st->mpi_pool, st->mpi, match_threads);
    }
    return rc;
}

node_consent_t *
hie_node__state_consent(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return st->consent;
}

node_audit_t *
hie_node__state_audit(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return st->audit;
}

node_queue_t *
hie_node__state_queue(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return st->queue;
}

node_repo_t *
hie_node__state_repo(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return st->repo;
}

node_subs_t *
hie_node__state_subs(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return st->subs;
}

hie_mpi_store_t *
hie_node__state_mpi(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return st->mpi;
}

hie_mpi_pool_t *
hie_node__state_mpi_pool(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return st->mpi_pool;
}

const hie_mpi_key_t *
hie_node__state_mpi_key(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return st->mpi_key;
}

MDB_env *
hie_node__state_env(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return st->env;
}

/* ---- readers ---------------------------------------------------------------------------- */

/* The value under key in dbi, unpacked into arena: in txn, or in a read txn of its own when
 * txn is NULL. */
static int
state_get_msg(node_state_t *st, MDB_txn *txn, MDB_dbi dbi, MDB_val *key, size_t skip,
    const ProtobufCMessageDescriptor *desc, hie_arena_t *arena, ProtobufCMessage **out)
{
    MDB_txn *own = NULL;
    MDB_val v;
    *out = NULL;
    int rc = txn != NULL ? 0 : mdb_rc(mdb_txn_begin(st->env, NULL, MDB_RDONLY, &own));
    if (rc == 0) {
        rc = mdb_rc(mdb_get(txn != NULL ? txn : own, dbi, key, &v));
    }
    if (rc == 0 && v.mv_size < skip) {
        rc = HIE_ECORRUPT;
    }
    if (rc == 0) {
        /* unpack copies every field into the arena: nothing borrows from the txn after */
        rc = hie_proto_unpack(desc, hie_span((uint8_t *)v.mv_data + skip, v.mv_size - skip),
            arena, out);
        if (rc == HIE_EPROTO) {
            rc = HIE_ECORRUPT;
        }
    }
    if (own != NULL) {
        mdb_txn_abort(own);
    }
    return rc;
}

int
hie_node__state_org_get_in(node_state_t *st, MDB_txn *txn, const char *org_id,
    hie_arena_t *arena, hie_org_t **org)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    HIE_ASSERT(org_id != NULL && org != NULL);
    *org = NULL;
    MDB_val k = {strlen(org_id), (void *)(uintptr_t)org_id};
    if (k.mv_size == 0 || k.mv_size > HIE_ORG_ID_BYTES_MAX) {
        return HIE_ENOTFOUND;
    }
    ProtobufCMessage *m = NULL;
    int rc = state_get_msg(st, txn, st->orgs, &k, 0, &hie__v1__organization__descriptor, arena,
        &m);
    if (rc == 0) {
        hie_org_t *o = (hie_org_t *)m;
        if (o->id == NULL || strcmp(o->id, org_id) != 0) {
            return HIE_ECORRUPT; /* read-back validation (style.md 3.6 pair checks) */
        }
        *org = o;
    }
    return rc;
}

int
hie_node__state_org_get(node_state_t *st, const char *org_id, hie_arena_t *arena,
    hie_org_t **org)
{
    return hie_node__state_org_get_in(st, NULL, org_id, arena, org);
}

static size_t
dedup_key(uint8_t *buf, const char *requester, const char *request_id)
{
    size_t a = strlen(requester), b = strlen(request_id);
    HIE_ASSERT(a + b + 2 <= DEDUP_KEY_BYTES_MAX);
    memcpy(buf, requester, a);
    buf[a] = 0;
    memcpy(buf + a + 1, request_id, b);
    return a + 1 + b;
}

int
hie_node__state_dedup_get(node_state_t *st, const char *requester, const char *request_id,
    int kind, hie_arena_t *arena, hie_command_result_t **result)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    *result = NULL;
    if (strlen(requester) > HIE_ORG_ID_BYTES_MAX || strlen(request_id) > HIE_PROTO_ID_BYTES_MAX) {
        return HIE_ENOTFOUND;
    }
    uint8_t key[DEDUP_KEY_BYTES_MAX];
    MDB_val k = {dedup_key(key, requester, request_id), key};
    ProtobufCMessage *m = NULL;
    int rc = state_get_msg(st, NULL, st->dedup, &k, 8, &hie__v1__command_result__descriptor,
        arena, &m);
    if (rc == 0 && ((hie_command_result_t *)m)->command != 0 &&
        ((hie_command_result_t *)m)->command != (uint32_t)kind) {
        return HIE_ENOTFOUND; /* another kind: not a repeat of this request */
    }
    if (rc == 0) {
        *result = (hie_command_result_t *)m;
    }
    return rc;
}

int
hie_node__state_applied_index(node_state_t *st, uint64_t *out)
{
    return meta_get_u64(st, "applied_index", out);
}

int64_t
hie_node__state_rules_ms(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return st->rules_ms;
}

int64_t
hie_node__state_rules_now_ms(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return st->rules_now_ms;
}

/* A committed 8-byte value of meta (0 when absent). */
static int
meta_get_u64(struct node_state *st, const char *name, uint64_t *out)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    MDB_txn *txn = NULL;
    MDB_val k = {strlen(name), (void *)(uintptr_t)name}, v;
    *out = 0;
    int rc = mdb_rc(mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn));
    if (rc == 0) {
        int mrc = mdb_get(txn, st->meta, &k, &v);
        if (mrc == 0) {
            rc = v.mv_size == 8 ? 0 : HIE_ECORRUPT;
            if (rc == 0) {
                *out = hie_load_be64(v.mv_data);
            }
        } else if (mrc != MDB_NOTFOUND) {
            rc = HIE_ESTORAGE;
        }
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc;
}

int
hie_node__state_org_each(node_state_t *st, hie_arena_t *arena,
    int (*fn)(void *ctx, hie_org_t *org), void *ctx)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_rc(mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn));
    if (rc == 0) {
        rc = mdb_rc(mdb_cursor_open(txn, st->orgs, &cur));
    }
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    for (uint32_t n = 0; rc == 0 && mrc == 0 && n < HIE_ORGS_MAX; n++) {
        ProtobufCMessage *m = NULL;
        rc = hie_proto_unpack(&hie__v1__organization__descriptor,
            hie_span(v.mv_data, v.mv_size), arena, &m);
        if (rc != 0) {
            rc = rc == HIE_EPROTO ? HIE_ECORRUPT : rc;
            break;
        }
        if (fn(ctx, (hie_org_t *)m) != 0) {
            break;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc;
}

/* ---- apply ------------------------------------------------------------------------------ */

struct apply_ctx {
    node_state_t *st;
    MDB_txn *txn;
    hie_arena_t *arena;
    const hie_command_t *cmd;
    uint64_t index;
    hie_command_result_t *res;
};

static int
put_msg(struct apply_ctx *a, MDB_dbi dbi, MDB_val *k, const ProtobufCMessage *msg,
    const uint8_t *prefix, size_t prefix_len)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    MDB_val v = {prefix_len + n, NULL};
    int rc = mdb_rc(mdb_put(a->txn, dbi, k, &v, MDB_RESERVE));
    if (rc != 0) {
        return rc;
    }
    if (prefix_len > 0) {
        memcpy(v.mv_data, prefix, prefix_len);
    }
    size_t packed = protobuf_c_message_pack(msg, (uint8_t *)v.mv_data + prefix_len);
    HIE_ASSERT(packed == n);
    return 0;
}

static void
reject(struct apply_ctx *a, Hie__V1__ErrorCode code, const char *field, const char *message)
{
    a->res->code = code;
    a->res->field = (char *)(uintptr_t)(field != NULL ? field : "");
    a->res->message = (char *)(uintptr_t)message;
}

static int
org_load(struct apply_ctx *a, const char *org_id, hie_org_t **out)
{
    MDB_val k = {strlen(org_id), (void *)(uintptr_t)org_id}, v;
    *out = NULL;
    int rc = mdb_rc(mdb_get(a->txn, a->st->orgs, &k, &v));
    if (rc != 0) {
        return rc;
    }
    ProtobufCMessage *m = NULL;
    rc = hie_proto_unpack(&hie__v1__organization__descriptor, hie_span(v.mv_data, v.mv_size),
        a->arena, &m);
    if (rc != 0) {
        return HIE_ECORRUPT;
    }
    *out = (hie_org_t *)m;
    return 0;
}

static int
org_store(struct apply_ctx *a, hie_org_t *org)
{
    HIE_ASSERT(org->id != NULL);
    HIE_ASSERT(hie_proto_org_id_valid(org->id, strlen(org->id)));
    HIE_ASSERT(org->status == HIE__V1__ORG_STATUS__ORG_ACTIVE ||
               org->status == HIE__V1__ORG_STATUS__ORG_SUSPENDED);
    MDB_val k = {strlen(org->id), org->id};
    a->res->org = org;
    return put_msg(a, a->st->orgs, &k, &org->base, NULL, 0);
}

static int
apply_org_register(struct apply_ctx *a)
{
    const Hie__V1__OrgRegister *b = a->cmd->org_register;
    hie_org_t *existing = NULL;
    int rc = org_load(a, b->org_id, &existing);
    if (rc == 0) {
        reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "org_id",
            "organization is already registered");
        return 0;
    }
    if (rc != HIE_ENOTFOUND) {
        return rc;
    }
    hie_org_t *org = hie_arena_alloc(a->arena, sizeof(*org));
    if (org == NULL) {
        return HIE_ENOMEM;
    }
    hie__v1__organization__init(org);
    org->id = b->org_id;
    org->display_name = b->display_name;
    org->n_roles = b->n_roles;
    org->roles = b->roles;
    org->status = HIE__V1__ORG_STATUS__ORG_ACTIVE;
    org->created_ms = a->cmd->time_ms;
    org->updated_ms = a->cmd->time_ms;
    org->version = 1;
    org->created_index = a->index;
    return org_store(a, org);
}

static int
apply_org_change(struct apply_ctx *a, const char *org_id)
{
    hie_org_t *org = NULL;
    int rc = org_load(a, org_id, &org);
    if (rc == HIE_ENOTFOUND) {
        reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "org_id", "organization not registered");
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    switch (a->cmd->body_case) {
    case HIE__V1__COMMAND__BODY_ORG_SET_ROLES:
        org->n_roles = a->cmd->org_set_roles->n_roles;
        org->roles = a->cmd->org_set_roles->roles;
        break;
    case HIE__V1__COMMAND__BODY_ORG_SUSPEND:
        org->status = HIE__V1__ORG_STATUS__ORG_SUSPENDED;
        break;
    case HIE__V1__COMMAND__BODY_ORG_REINSTATE:
        org->status = HIE__V1__ORG_STATUS__ORG_ACTIVE;
        break;
    default:
        HIE_ASSERT(!"not an org change");
    }
    org->updated_ms = a->cmd->time_ms;
    org->version++;
    return org_store(a, org);
}

/* The consent directives merges left behind, moved once the rules clock reaches the rule
 * (hie_node__consent_migrate: a no-op after). */
static int
consent_migrate(struct apply_ctx *a)
{
    node_apply_t na = {a->txn, a->arena, a->cmd, a->index, a->res, a->st->mpi, a->st->mpi_key,
        a->st->rules_now_ms};
    int rc = hie_node__consent_migrate(a->st->consent, &na);
    if (rc == HIE_EUNAVAIL) {
        hie_log_error("sm", "consent directives must move to merged records' survivors, which "
            "needs the data key", " index=%lu hint=\"configure mpi.key_file\"", a->index);
    }
    return rc;
}

/* A feed; an A40 merge takes the prior record's consent directives to the survivor (and is
 * refused when the two have more in force together than a record may have). */
static int
apply_feed(struct apply_ctx *a, hie_mpi_apply_ctx_t *m)
{
    const Hie__V1__MpiFeedCommand *f = a->cmd->mpi_feed;
    if (f->key_id.len != 0 && (f->key_id.len != sizeof(a->st->mpi_key_id) ||
        sodium_memcmp(f->key_id.data, a->st->mpi_key_id, sizeof(a->st->mpi_key_id)) != 0)) {
        /* sealed under another data key: every feed would be refused as unreadable, and the
         * index rebuilt empty (a state rebuilt from the log with the wrong key file) */
        hie_log_error("sm", "the log holds a feed sealed under another data key", " index=%lu "
            "hint=\"remove state/ (it now holds this key's id) and start with the mpi.key the "
            "log was written with\"", a->index);
        return HIE_ECONFIG;
    }
    node_apply_t na = {a->txn, a->arena, a->cmd, a->index, a->res, a->st->mpi, a->st->mpi_key,
        a->st->rules_now_ms};
    bool merge = f->action == HIE__V1__FEED_ACTION__FEED_MERGE &&
                 f->rec_hash.len == HIE_MPI_REC_HASH_BYTES &&
                 f->prior_hash.len == HIE_MPI_REC_HASH_BYTES;
    bool fits = true;
    int rc = merge ? hie_node__consent_merge_check(a->st->consent, &na, f->prior_hash.data,
                         f->rec_hash.data, &fits)
                   : 0;
    if (rc == 0 && !fits) {
        reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "prior_mrn", "the merged patient "
            "would have more consent directives in force than allowed: revoke some first");
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    rc = hie_mpi_store_apply_feed(a->st->mpi, m, f, &a->res->mpi_feed);
    if (rc == 0 && m->reject.code == 0 && m->merged_prior != NULL) {
        rc = hie_node__consent_merge(a->st->consent, &na, m->merged_prior,
            m->merged_survivor);
        rc = rc ? rc : hie_node__subs_merge(a->st->subs, &na, m->merged_prior,
            m->merged_survivor);
    }
    if (rc == 0 && m->reject.code != 0) {
        a->res->mpi_feed = NULL;
        reject(a, m->reject.code, m->reject.field, m->reject.message);
    }
    return rc;
}

static int
apply_mpi(struct apply_ctx *a)
{
    hie_mpi_apply_ctx_t m = {a->txn, a->arena, a->cmd->requester, a->cmd->time_ms, a->index,
        {0}, 0, NULL, a->st->rules_now_ms, NULL, NULL};
    if (a->st->mpi_key == NULL) { /* as apply_disclosure: stop rather than reject */
        hie_log_error("sm", "the log holds a command that needs the data key",
            " index=%lu hint=\"configure mpi.key_file\"", a->index);
        return HIE_EUNAVAIL;
    }
    int rc = 0;
    switch (a->cmd->body_case) {
    case HIE__V1__COMMAND__BODY_MPI_FEED:
        m.prep = hie_mpi_pool_take(a->st->mpi_pool, a->st->batch_pos);
        return apply_feed(a, &m);
    case HIE__V1__COMMAND__BODY_MPI_REVIEW:
        rc = hie_mpi_store_apply_review(a->st->mpi, &m, a->cmd->mpi_review,
            &a->res->mpi_review);
        break;
    case HIE__V1__COMMAND__BODY_MPI_MODEL:
        rc = hie_mpi_store_apply_model(a->st->mpi, &m, a->cmd->mpi_model,
            &a->res->model_version);
        break;
    default:
        HIE_ASSERT(!"not an MPI command");
    }
    if (rc == 0 && m.reject.code != 0) {
        /* refused: nothing was written (the store checks before it writes) */
        a->res->mpi_feed = NULL;
        a->res->mpi_review = NULL;
        reject(a, m.reject.code, m.reject.field, m.reject.message);
    }
    return rc;
}

/* Consent and audit commands: their modules check before they write. */
static int
apply_disclosure(struct apply_ctx *a)
{
    node_apply_t na = {a->txn, a->arena, a->cmd, a->index, a->res, a->st->mpi, a->st->mpi_key,
        a->st->rules_now_ms};
    if (a->st->mpi_key == NULL) {
        /* not a rejection: whether a key is loaded is not in the log, and a rejection here
         * would drop a command every other start applies (an acknowledged audit record, push
         * or consent). The node stops; started with its data key, replay applies it. */
        hie_log_error("sm", "the log holds a command that needs the data key",
            " index=%lu hint=\"configure mpi.key_file\"", a->index);
        return HIE_EUNAVAIL;
    }
    switch (a->cmd->body_case) {
    case HIE__V1__COMMAND__BODY_CONSENT_SUBMIT:
    case HIE__V1__COMMAND__BODY_CONSENT_REVOKE:
        return hie_node__consent_apply(a->st->consent, &na);
    case HIE__V1__COMMAND__BODY_PUSH:
    case HIE__V1__COMMAND__BODY_DELIVERY_ACK:
    case HIE__V1__COMMAND__BODY_DEAD_LETTER:
    case HIE__V1__COMMAND__BODY_REDRIVE:
    case HIE__V1__COMMAND__BODY_DEAD_PURGE:
        return hie_node__queue_apply(a->st->queue, a->st->audit, a->st->repo, &na);
    case HIE__V1__COMMAND__BODY_RESPONDER:
        return hie_node__repo_responder_apply(a->st->repo, &na);
    case HIE__V1__COMMAND__BODY_RETRACT:
        return hie_node__repo_retract_apply(a->st->repo, &na);
    case HIE__V1__COMMAND__BODY_ADT:
    case HIE__V1__COMMAND__BODY_SUBSCRIBE:
    case HIE__V1__COMMAND__BODY_ROSTER:
    case HIE__V1__COMMAND__BODY_UNSUBSCRIBE:
    case HIE__V1__COMMAND__BODY_REPLAY:
        return hie_node__subs_apply(a->st->subs, a->st->queue, a->st->audit, &na);
    default:
        return hie_node__audit_apply(a->st->audit, &na);
    }
}

static int
apply_body(struct apply_ctx *a)
{
    switch (a->cmd->body_case) {
    case HIE__V1__COMMAND__BODY_CONSENT_SUBMIT:
    case HIE__V1__COMMAND__BODY_CONSENT_REVOKE:
    case HIE__V1__COMMAND__BODY_AUDIT_APPEND:
    case HIE__V1__COMMAND__BODY_AUDIT_BATCH:
    case HIE__V1__COMMAND__BODY_AUDIT_CHECKPOINT:
    case HIE__V1__COMMAND__BODY_PUSH:
    case HIE__V1__COMMAND__BODY_DELIVERY_ACK:
    case HIE__V1__COMMAND__BODY_DEAD_LETTER:
    case HIE__V1__COMMAND__BODY_REDRIVE:
    case HIE__V1__COMMAND__BODY_DEAD_PURGE:
    case HIE__V1__COMMAND__BODY_ADT:
    case HIE__V1__COMMAND__BODY_SUBSCRIBE:
    case HIE__V1__COMMAND__BODY_ROSTER:
    case HIE__V1__COMMAND__BODY_UNSUBSCRIBE:
    case HIE__V1__COMMAND__BODY_REPLAY:
    case HIE__V1__COMMAND__BODY_RESPONDER:
    case HIE__V1__COMMAND__BODY_RETRACT:
        return apply_disclosure(a);
    case HIE__V1__COMMAND__BODY_MPI_FEED:
    case HIE__V1__COMMAND__BODY_MPI_REVIEW:
    case HIE__V1__COMMAND__BODY_MPI_MODEL:
        return apply_mpi(a);
    case HIE__V1__COMMAND__BODY_ORG_REGISTER:
        return apply_org_register(a);
    case HIE__V1__COMMAND__BODY_ORG_SET_ROLES:
        return apply_org_change(a, a->cmd->org_set_roles->org_id);
    case HIE__V1__COMMAND__BODY_ORG_SUSPEND:
        return apply_org_change(a, a->cmd->org_suspend->org_id);
    case HIE__V1__COMMAND__BODY_ORG_REINSTATE:
        return apply_org_change(a, a->cmd->org_reinstate->org_id);
    default:
        HIE_ASSERT(!"validated command has an unknown body");
        return HIE_EINVAL;
    }
}

/* Deletes up to HIE_DEDUP_PRUNE_PER_APPLY dedup entries older than the retention, measured on
 * the command's own clock, so pruning is deterministic and bounded per apply. */
static int
dedup_prune(struct apply_ctx *a)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int64_t horizon = a->cmd->time_ms - (int64_t)HIE_DEDUP_RETENTION_MS;
    int rc = mdb_rc(mdb_cursor_open(a->txn, a->st->dedup_time, &cur));
    for (unsigned i = 0; rc == 0 && i < HIE_DEDUP_PRUNE_PER_APPLY; i++) {
        int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (mrc == MDB_NOTFOUND) {
            break;
        }
        rc = mdb_rc(mrc);
        if (rc != 0 || k.mv_size != 16) {
            rc = rc != 0 ? rc : HIE_ECORRUPT;
            break;
        }
        if ((int64_t)hie_load_be64(k.mv_data) >= horizon) {
            break;
        }
        MDB_val dk = v;
        int drc = mdb_del(a->txn, a->st->dedup, &dk, NULL);
        rc = drc == 0 || drc == MDB_NOTFOUND ? mdb_rc(mdb_cursor_del(cur, 0)) : HIE_ESTORAGE;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

static int
dedup_store(struct apply_ctx *a)
{
    uint8_t key[DEDUP_KEY_BYTES_MAX], tkey[16], ts[8];
    MDB_val k = {dedup_key(key, a->cmd->requester, a->cmd->request_id), key};
    hie_store_be64(ts, (uint64_t)a->cmd->time_ms);
    /* a review decision's reply names the record by organization and MRN: the reply keeps
     * it, the stored result does not (an MRN is stored only sealed; a repeat of the request
     * is answered without it) */
    Hie__V1__ReviewItem *item = a->res->mpi_review != NULL ? a->res->mpi_review->item : NULL;
    Hie__V1__PatientId *record = item != NULL ? item->record : NULL;
    if (item != NULL) {
        item->record = NULL;
    }
    int rc = put_msg(a, a->st->dedup, &k, &a->res->base, ts, sizeof(ts));
    if (item != NULL) {
        item->record = record;
    }
    if (rc != 0) {
        return rc;
    }
    hie_store_be64(tkey, (uint64_t)a->cmd->time_ms);
    hie_store_be64(tkey + 8, a->index);
    MDB_val tk = {sizeof(tkey), tkey};
    rc = mdb_rc(mdb_put(a->txn, a->st->dedup_time, &tk, &k, 0));
    return rc == 0 ? dedup_prune(a) : rc;
}

/* Looks the request up in the dedup table of this txn; on a hit copies the stored result
 * bytes to *out and returns 0; HIE_ENOTFOUND otherwise. */
static int
dedup_lookup(struct apply_ctx *a, hie_cluster_result_t *out)
{
    uint8_t key[DEDUP_KEY_BYTES_MAX];
    MDB_val k = {dedup_key(key, a->cmd->requester, a->cmd->request_id), key}, v;
    int rc = mdb_rc(mdb_get(a->txn, a->st->dedup, &k, &v));
    if (rc != 0) {
        return rc;
    }
    if (v.mv_size < 8) {
        return HIE_ECORRUPT;
    }
    out->len = v.mv_size - 8;
    out->buf = hie_mem_alloc(out->len);
    if (out->buf == NULL) {
        return HIE_ENOMEM;
    }
    memcpy(out->buf, (uint8_t *)v.mv_data + 8, out->len);
    return 0;
}

/* Was the stored result (out) of another kind of command than a's? Results stored before
 * the kind was kept (0) are taken as the same kind, as they were. */
static bool
dedup_other_kind(struct apply_ctx *a, const hie_cluster_result_t *out)
{
    ProtobufCMessage *m = NULL;
    if (hie_proto_unpack(&hie__v1__command_result__descriptor, hie_span(out->buf, out->len),
            a->arena, &m) != 0) {
        return false; /* answered as before; the bytes were stored by this state machine */
    }
    uint32_t kind = ((hie_command_result_t *)m)->command;
    return kind != 0 && kind != (uint32_t)a->cmd->body_case;
}

/* A logged command that does not decode or validate. The node's own submitters check what
 * they send, so it is an entry damaged on disk (or from a binary with other rules): said,
 * never silent (a flipped byte in a registration made the organization vanish at the next
 * replay without a word). */
static void
invalid_logged(uint64_t index, const hie_errinfo_t *info)
{
    hie_log_error("sm", "a logged command does not decode or validate: recorded as refused, "
        "nothing applied", " index=%lu field=%s reason=\"%s\" hint=\"%s\"",
        (unsigned long)index, info->field != NULL ? info->field : "-",
        info->reason != NULL ? info->reason : "-", "the log file may be damaged: compare "
        "with a backup (hiectl backup) before going on");
}

static int
apply_one(node_state_t *st, MDB_txn *txn, const hie_cluster_entry_t *e,
    hie_cluster_result_t *out)
{
    hie_command_result_t res;
    hie__v1__command_result__init(&res);
    res.index = e->index;
    int rc = st->apply_arena == NULL ? hie_arena_create(&st->apply_arena, APPLY_ARENA_BYTES) : 0;
    if (rc != 0) {
        return rc;
    }
    hie_arena_t *arena = st->apply_arena; /* reused, command after command */
    struct apply_ctx a = {st, txn, arena, NULL, e->index, &res};
    hie_command_t *cmd = NULL;
    hie_errinfo_t info = {0};
    int drc = hie_proto_command_decode(e->cmd, arena, &cmd, &info);
    if (drc == HIE_ENOMEM) {
        hie_arena_reset(arena);
        return drc; /* not the command's fault: the node stops and replay decodes it again */
    }
    /* audit records are internal (one per exchange, sent once by the worker that decided
     * it): no dedup entry, which would cost two random-key writes per query */
    bool audit = drc == 0 && (cmd->body_case == HIE__V1__COMMAND__BODY_AUDIT_APPEND ||
                              cmd->body_case == HIE__V1__COMMAND__BODY_AUDIT_BATCH);
    st->batch_audit_only &= audit; /* as decoded: a oneof's last field on the wire wins */
    if (drc != 0) {
        invalid_logged(e->index, &info); /* every node refuses the same bytes alike */
        reject(&a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, info.field, "invalid command");
    } else {
        a.cmd = cmd;
        st->rules_ms = cmd->time_ms > st->rules_ms ? cmd->time_ms : st->rules_ms;
        /* once the clock has passed RULES_CLOCK_SINCE_MS every command is held to it; before,
         * to its own time, as it was applied then (a log from before replays unchanged) */
        st->rules_now_ms = st->rules_ms >= RULES_CLOCK_SINCE_MS ? st->rules_ms : cmd->time_ms;
        rc = consent_migrate(&a);
        rc = rc != 0 ? rc : audit ? HIE_ENOTFOUND : dedup_lookup(&a, out);
        if (rc == HIE_ENOTFOUND) {
            rc = apply_body(&a);
            /* a refusal for now (a full queue: OVERLOADED) is not remembered: the member is
             * told to retry with the same id, and the retry must be applied, not refused.
             * Commands proposed before this rule keep theirs, so an older log replays as it
             * applied (the rules time decides: the rules clock, or before it the command's). */
            bool retryable = (res.code == HIE__V1__ERROR_CODE__ERROR_OVERLOADED ||
                              res.code == HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE) &&
                             st->rules_now_ms >= RETRYABLE_NOT_KEPT_SINCE_MS;
            if (rc == 0 && !audit && !retryable) {
                res.command = (uint32_t)cmd->body_case;
                rc = dedup_store(&a);
            }
        } else if (rc == 0 && dedup_other_kind(&a, out)) {
            /* the id of another kind of request (a push under a consent submit's id): its
             * result is not this one's, and nothing is applied (or remembered) */
            hie_mem_free(out->buf, out->len);
            out->buf = NULL;
            out->len = 0;
            reject(&a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "id", "this request id was "
                "used for another kind of request; send this one with a new id");
        } else if (rc == 0) {
            goto out; /* a repeat: the original result, nothing applied */
        }
    }
    if (rc == 0) {
        rc = hie_proto_pack(&res.base, HIE_LOG_COMMAND_BYTES_MAX, &out->buf, &out->len);
    }
out:
    if (a.cmd != NULL && a.cmd->body_case == HIE__V1__COMMAND__BODY_MPI_FEED) {
        hie_arena_wipe(arena); /* the feed's demographics, opened to match them */
    }
    hie_arena_reset(arena);
    return rc;
}

/* Commits the open transaction (synced) and wakes the readers waiting for it. */
static int
state_commit(node_state_t *st)
{
    if (st->open_txn == NULL) {
        return 0;
    }
    int rc = hie_node__audit_txn_flush(st->audit, st->open_txn);
    if (rc != 0) {
        mdb_txn_abort(st->open_txn); /* the node stops (fatal); replay redoes the batches */
    } else {
        rc = mdb_rc(mdb_txn_commit(st->open_txn));
    }
    st->open_txn = NULL;
    if (rc == 0) {
        pthread_mutex_lock(&st->commit_mu);
        atomic_store(&st->committed_index, st->open_last);
        pthread_cond_broadcast(&st->commit_cv);
        pthread_mutex_unlock(&st->commit_mu);
        if (st->metrics != NULL) {
            atomic_fetch_add(&st->metrics->state_commits, 1);
        }
    }
    return rc;
}

static int
fsm_apply(void *ctx, const hie_cluster_entry_t *entries, size_t n,
    hie_cluster_result_t *results)
{
    node_state_t *st = ctx;
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    HIE_ASSERT(n > 0 && n <= HIE_LOG_BATCH_COMMANDS_MAX);
    int rc = 0;
    bool keep = false;
    if (st->open_txn == NULL) {
        rc = mdb_rc(mdb_txn_begin(st->env, NULL, 0, &st->open_txn));
        st->open_since_ns = hie_time_mono_ns();
        st->open_commands = 0;
    }
    st->batch_audit_only = true;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i > 0) {
            HIE_ASSERT(entries[i].index == entries[i - 1].index + 1);
        }
        st->batch_pos = i;
        rc = apply_one(st, st->open_txn, &entries[i], &results[i]);
    }
    if (rc == 0) {
        uint8_t idx[8];
        hie_store_be64(idx, entries[n - 1].index);
        MDB_val k = {13, (void *)(uintptr_t)"applied_index"}, v = {8, idx};
        rc = mdb_rc(mdb_put(st->open_txn, st->meta, &k, &v, 0));
        uint8_t rules[8];
        hie_store_be64(rules, (uint64_t)st->rules_ms);
        MDB_val rk = {8, (void *)(uintptr_t)"rules_ms"}, rv = {8, rules};
        rc = rc ? rc : mdb_rc(mdb_put(st->open_txn, st->meta, &rk, &rv, 0));
    }
    if (rc == 0) {
        st->open_last = entries[n - 1].index;
        st->open_commands += n;
        keep = st->defer && st->open_commands < STATE_DEFER_COMMANDS_MAX &&
               hie_time_mono_ns() - st->open_since_ns < STATE_DEFER_NS_MAX &&
               st->batch_audit_only;
        rc = keep ? 0 : state_commit(st);
    }
    if (rc != 0 && st->open_txn != NULL) {
        mdb_txn_abort(st->open_txn); /* the node stops (fatal); replay redoes the batches */
        st->open_txn = NULL;
        hie_node__audit_txn_drop(st->audit);
    }
    hie_mpi_pool_end(st->mpi_pool);
    if (rc == 0 && st->metrics != NULL) {
        atomic_fetch_add(&st->metrics->commands_applied, n);
        atomic_fetch_add(&st->metrics->log_batches, 1);
        atomic_store(&st->metrics->applied_index, entries[n - 1].index);
    }
    return rc == 0 && keep ? HIE_CLUSTER_APPLIED_OPEN : rc;
}

static int
fsm_flush(void *ctx)
{
    node_state_t *st = ctx;
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return state_commit(st);
}

/* Every commit so far on disk (the state runs with MDB_NOMETASYNC: its last meta page). */
static int
fsm_sync(void *ctx)
{
    node_state_t *st = ctx;
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return mdb_rc(mdb_env_sync(st->env, 1));
}

void
hie_node__state_defer_commits(node_state_t *st, bool on)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC && st->open_txn == NULL);
    st->defer = on;
}

uint64_t
hie_node__state_committed_index(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    return atomic_load(&st->committed_index);
}

int
hie_node__state_wait_committed(node_state_t *st, uint64_t index, uint32_t timeout_ms)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    if (atomic_load(&st->committed_index) >= index) {
        return 0;
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until); /* commit_cv's clock */
    until.tv_sec += (time_t)(timeout_ms / 1000u);
    until.tv_nsec += (long)(timeout_ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&st->commit_mu);
    while (rc == 0 && atomic_load(&st->committed_index) < index) {
        rc = pthread_cond_timedwait(&st->commit_cv, &st->commit_mu, &until);
    }
    pthread_mutex_unlock(&st->commit_mu);
    return atomic_load(&st->committed_index) >= index ? 0 : HIE_ETIMEDOUT;
}

/* The feed command of a log entry, for the match pool (pool threads). */
static const Hie__V1__MpiFeedCommand *
entry_feed(const void *item, hie_arena_t *arena)
{
    const hie_cluster_entry_t *e = item;
    if (!hie_proto_command_has_body(e->cmd, HIE__V1__COMMAND__BODY_MPI_FEED)) {
        return NULL;
    }
    hie_command_t *cmd = NULL;
    hie_errinfo_t info = {0};
    if (hie_proto_command_decode(e->cmd, arena, &cmd, &info) != 0 ||
        cmd->body_case != HIE__V1__COMMAND__BODY_MPI_FEED) {
        return NULL; /* apply refuses it */
    }
    return cmd->mpi_feed;
}

/* Hands a batch with MPI feeds to the match pool before the log appends it. */
static void
fsm_prepare(void *ctx, const hie_cluster_entry_t *entries, size_t n)
{
    node_state_t *st = ctx;
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    for (size_t i = 0; st->mpi_pool != NULL && i < n; i++) {
        if (hie_proto_command_has_body(entries[i].cmd, HIE__V1__COMMAND__BODY_MPI_FEED)) {
            hie_mpi_pool_begin(st->mpi_pool, entries, sizeof(*entries), n, entry_feed);
            return;
        }
    }
}

/* The batch fsm_prepare handed to the match pool is refused: the pool stops reading it. */
static void
fsm_abandon(void *ctx)
{
    node_state_t *st = ctx;
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    hie_mpi_pool_end(st->mpi_pool);
}

static int
fsm_applied_index(void *ctx, uint64_t *out)
{
    return hie_node__state_applied_index(ctx, out);
}

static void
fsm_fatal(void *ctx, int rc, const char *what)
{
    node_state_t *st = ctx;
    uint64_t used = 0, map = 0;
    bool full = hie_cluster_lmdb_usage(st->env, true, &used, &map) == 0 &&
                used * 100u > map * 95u;
    hie_log_error("sm", "stopping node: state would diverge", " what=\"%s\" rc=%s node=%s%s",
        what, hie_strerror_name(rc), st->node_id, full ? " hint=\"the state's LMDB map is "
        "full: raise storage.map_bytes and restart\"" : "");
    _exit(70); /* EX_SOFTWARE; systemd restarts us, and replay resumes from the log */
}

hie_cluster_fsm_t
hie_node__state_fsm(node_state_t *st)
{
    HIE_ASSERT(st != NULL && st->magic == STATE_MAGIC);
    hie_cluster_fsm_t fsm = {st, fsm_apply, fsm_applied_index, fsm_fatal, fsm_prepare,
        fsm_flush, fsm_sync, fsm_abandon};
    return fsm;
}
