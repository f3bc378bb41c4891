/*
 * log.c - the local command log: group commit into LMDB, then apply through the fsm.
 *
 * Invariants: entries are gapless from 1; an entry is applied only after its log transaction
 * committed (synced); the applied index never runs ahead of the last index; a submitter gets
 * exactly one reply per accepted submission. One thread does append + apply, so a batch's
 * durability (log fsync) and application (state commit) cost two syncs however many commands
 * the batch holds. The state machine may leave its commit open (apply returns
 * HIE_CLUSTER_APPLIED_OPEN, hie/cluster.h) for commands that the log's own commit makes
 * durable: their replies go at once, and one state commit (one fsync) then covers the batches
 * applied until apply's own bound, or until no submission arrived for HIE_LOG_IDLE_FLUSH_MS.
 *
 * Callers: the node (open/start/destroy), workers and the admin thread (submit_*).
 */
#include "hie/cluster.h"
#include "hie/limits.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#define LOG_MAGIC 0x4c4f4721u /* "LOG!" */
#define LOG_CTL_SUFFIX "-ctl"
#define LOG_REPLY_HEAD_BYTES 12u
/* Room a batch must leave in the log's map beyond twice its bytes (pages, meta, free list). */
#define LOG_APPEND_SLACK_BYTES (256u * 1024u)
/* Entries one append deletes at most when the log trims (twice a batch: it catches up). */
#define LOG_TRIM_PER_APPEND (2u * HIE_LOG_BATCH_COMMANDS_MAX)

struct pending {
    zmq_msg_t identity;
    uint64_t token;
    zmq_msg_t cmd;
};

struct hie_cluster_log {
    uint32_t magic;
    hie_cluster_fsm_t fsm;
    MDB_env *env;
    MDB_dbi dbi;
    void *zctx;
    bool (*interrupted)(void *arg); /* replay only */
    void *interrupted_arg;
    char endpoint[256];
    char ctl_endpoint[272];
    _Atomic uint64_t last_index;
    _Atomic uint64_t first_index;  /* the oldest entry held (last + 1 when empty) */
    uint64_t retain;               /* cfg.retain */
    /* the state's commits, log thread only: the index the last one covered, and the one
     * before (durable once the last one synced) */
    uint64_t committed, durable;
    uint64_t applied;              /* the last entry applied, log thread only */
    pthread_t thread;
    bool started;
    int bind_rc;
    pthread_mutex_t start_mu;
    pthread_cond_t start_cv;
    bool start_done;
    bool open;                     /* the state machine's commit is open, log thread only */
    struct pending *batch;         /* HIE_LOG_BATCH_COMMANDS_MAX slots, log thread only */
    hie_cluster_entry_t *entries;
    hie_cluster_result_t *results;
};

static int
mdb_rc(int rc)
{
    return rc == 0 ? 0 : HIE_ESTORAGE;
}

/* mdb_reader_list's lines "pid thread txnid" (txnid "-" when the slot is idle): the oldest. */
static int
reader_oldest(const char *msg, void *ctx)
{
    uint64_t *oldest = ctx;
    unsigned long long txnid = 0;
    if (sscanf(msg, "%*d %*x %llu", &txnid) == 1 && txnid < *oldest) {
        *oldest = txnid;
    }
    return 0;
}

int
hie_cluster_lmdb_usage(void *envp, bool free_list, uint64_t *used, uint64_t *map)
{
    MDB_env *env = envp;
    MDB_envinfo info;
    MDB_stat st;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    *used = *map = 0;
    if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0) {
        return HIE_ESTORAGE;
    }
    uint64_t pages = (uint64_t)info.me_last_pgno + 1, free_pages = 0, oldest = UINT64_MAX;
    *map = info.me_mapsize;
    if (free_list) {
        /* pages freed by a transaction a reader may still see are not free for LMDB: count
         * only those freed before the oldest reader (a killed process's slot cleared first) */
        int dead = 0;
        (void)mdb_reader_check(env, &dead);
        (void)mdb_reader_list(env, reader_oldest, &oldest);
    }
    /* the free list (dbi 0): key a txn id, value an ID list whose first word is its length */
    if (free_list && mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0 &&
        mdb_cursor_open(txn, 0, &cur) == 0) {
        MDB_val k, v;
        oldest = oldest < mdb_txn_id(txn) ? oldest : mdb_txn_id(txn);
        for (unsigned i = 0; i < 100000u && mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0; i++) {
            size_t freed_by = 0;
            if (k.mv_size == sizeof(freed_by)) {
                memcpy(&freed_by, k.mv_data, sizeof(freed_by));
            }
            if (k.mv_size != sizeof(freed_by) || freed_by >= oldest) {
                break; /* in txn id order: the rest are not reusable yet either */
            }
            if (v.mv_size >= sizeof(size_t)) {
                size_t n;
                memcpy(&n, v.mv_data, sizeof(n));
                free_pages += n;
            }
        }
        mdb_cursor_close(cur);
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    *used = (pages > free_pages ? pages - free_pages : 0) * st.ms_psize;
    return 0;
}

int
hie_cluster_log_usage(const hie_cluster_log_t *log, bool free_list, uint64_t *used,
    uint64_t *map)
{
    HIE_ASSERT(log != NULL);
    return hie_cluster_lmdb_usage(log->env, free_list, used, map);
}

static int
log_env_open(hie_cluster_log_t *log, const char *dir, uint64_t map_bytes)
{
    MDB_txn *txn = NULL;
    int rc;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return -errno;
    }
    rc = mdb_rc(mdb_env_create(&log->env));
    if (rc != 0) {
        return rc;
    }
    rc = mdb_rc(mdb_env_set_mapsize(log->env, map_bytes));
    if (rc == 0) {
        rc = mdb_rc(mdb_env_set_maxdbs(log->env, 4));
    }
    if (rc == 0) {
        rc = mdb_rc(mdb_env_open(log->env, dir, MDB_NOTLS, 0600));
    }
    if (rc == 0) {
        rc = mdb_rc(mdb_txn_begin(log->env, NULL, 0, &txn));
    }
    if (rc == 0) {
        rc = mdb_rc(mdb_dbi_open(txn, "log", MDB_CREATE, &log->dbi));
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

/* The first and last indexes the log holds (0 and 0 when empty). */
static int
log_read_ends(hie_cluster_log_t *log, uint64_t *first, uint64_t *last)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    *first = *last = 0;
    int rc = mdb_rc(mdb_txn_begin(log->env, NULL, MDB_RDONLY, &txn));
    if (rc == 0) {
        rc = mdb_rc(mdb_cursor_open(txn, log->dbi, &cur));
    }
    for (int end = 0; rc == 0 && end < 2; end++) {
        int mrc = mdb_cursor_get(cur, &k, &v, end == 0 ? MDB_FIRST : MDB_LAST);
        if (mrc == 0) {
            rc = k.mv_size == 8 ? 0 : HIE_ECORRUPT;
            if (rc == 0) {
                *(end == 0 ? first : last) = hie_load_be64(k.mv_data);
            }
        } else if (mrc != MDB_NOTFOUND) {
            rc = HIE_ESTORAGE;
        }
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc;
}

/* The state committed every entry applied up to index. */
static void
state_committed(hie_cluster_log_t *log, uint64_t index)
{
    if (index > log->committed) {
        log->durable = log->committed;
        log->committed = index;
    }
}

static int
log_flush(hie_cluster_log_t *log)
{
    int rc = 0;
    if (log->open) {
        HIE_ASSERT(log->fsm.flush != NULL);
        rc = log->fsm.flush(log->fsm.ctx);
        log->open = false;
        if (rc == 0) {
            state_committed(log, log->applied);
        }
    }
    return rc;
}

/* apply's return: 0 committed, HIE_CLUSTER_APPLIED_OPEN (log->open set), or an error. */
static int
log_apply(hie_cluster_log_t *log, size_t n)
{
    int rc = log->fsm.apply(log->fsm.ctx, log->entries, n, log->results);
    if (rc == 0 || rc == HIE_CLUSTER_APPLIED_OPEN) {
        log->applied = log->entries[n - 1].index;
    }
    if (rc == HIE_CLUSTER_APPLIED_OPEN) {
        HIE_ASSERT(log->fsm.flush != NULL);
        log->open = true;
        return 0;
    }
    if (rc == 0) {
        log->open = false; /* the commit covered the batches before it too */
        state_committed(log, log->applied);
    }
    return rc;
}

/* Applies up to HIE_LOG_BATCH_COMMANDS_MAX entries starting at first, from the log itself. */
static int
log_replay_batch(hie_cluster_log_t *log, uint64_t first, uint64_t last, uint64_t *next)
{
    MDB_txn *txn = NULL;
    size_t n = 0;
    int rc = mdb_rc(mdb_txn_begin(log->env, NULL, MDB_RDONLY, &txn));
    for (uint64_t i = first; rc == 0 && i <= last && n < HIE_LOG_BATCH_COMMANDS_MAX; i++) {
        uint8_t key[8];
        MDB_val k = {8, key}, v;
        hie_store_be64(key, i);
        int mrc = mdb_get(txn, log->dbi, &k, &v);
        if (mrc == MDB_NOTFOUND) {
            rc = HIE_ECORRUPT; /* a gap in the log */
            break;
        }
        rc = mdb_rc(mrc);
        if (rc == 0) {
            log->entries[n].index = i;
            log->entries[n].cmd = hie_span(v.mv_data, v.mv_size);
            log->results[n].buf = NULL;
            log->results[n].len = 0;
            n++;
        }
    }
    if (rc == 0 && n > 0) {
        if (log->fsm.prepare != NULL) {
            log->fsm.prepare(log->fsm.ctx, log->entries, n);
        }
        rc = log_apply(log, n);
        if (rc != 0 && log->fsm.fatal != NULL) {
            /* as on the log thread: the state would diverge. Returned, it read as a stop
             * request (HIE_EUNAVAIL: a command needing the data key the node lacks) and the
             * node exited 0, or as "cannot open command log" without the apply's hint */
            log->fsm.fatal(log->fsm.ctx, rc, "replay: apply");
        }
    }
    for (size_t i = 0; i < n; i++) {
        hie_mem_free(log->results[i].buf, log->results[i].len);
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    *next = first + n;
    return rc;
}

static int
log_replay(hie_cluster_log_t *log)
{
    uint64_t applied = 0, first = 0, last = 0;
    int rc = log->fsm.applied_index(log->fsm.ctx, &applied);
    if (rc == 0) {
        rc = log_read_ends(log, &first, &last);
    }
    if (rc != 0) {
        return rc;
    }
    if (applied > last) { /* the state claims entries the log does not have */
        hie_log_error("log", "the state is ahead of the log", " applied_index=%lu "
            "last_index=%lu hint=\"%s\"", (unsigned long)applied, (unsigned long)last,
            "the log is missing or older than the state (a log from a backup older than the "
            "state?): put back the log that belongs with it, or restore both from one backup");
        return HIE_ECORRUPT;
    }
    if (last > 0 && applied + 1 < first) {
        hie_log_error("log", "the state is behind the log's first entry", " applied_index=%lu "
            "first_index=%lu hint=\"%s\"", (unsigned long)applied, (unsigned long)first,
            "the log was trimmed past it (storage.log_retain): restore the state and the log "
            "from the same backup");
        return HIE_ECORRUPT;
    }
    atomic_store(&log->last_index, last);
    atomic_store(&log->first_index, last > 0 ? first : applied + 1);
    log->applied = applied;
    uint64_t next = applied + 1;
    bool stop = false;
    while (rc == 0 && next <= last && !stop) {
        stop = log->interrupted != NULL && log->interrupted(log->interrupted_arg);
        rc = stop ? 0 : log_replay_batch(log, next, last, &next);
    }
    rc = rc == 0 ? log_flush(log) : rc;
    if (rc == 0 && !stop && log->retain != 0 && log->fsm.sync != NULL &&
        log->fsm.sync(log->fsm.ctx) == 0) {
        log->committed = log->durable = log->applied; /* synced: the log may trim at once */
    }
    return rc == 0 && stop ? HIE_EUNAVAIL : rc;
}

int
hie_cluster_log_open(hie_cluster_log_t **out, const hie_cluster_log_config_t *cfg,
    const hie_cluster_fsm_t *fsm)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(cfg != NULL && cfg->dir != NULL && cfg->endpoint != NULL);
    HIE_ASSERT(fsm != NULL && fsm->apply != NULL && fsm->applied_index != NULL);
    *out = NULL;
    int rc = HIE_ENOMEM;
    hie_cluster_log_t *log = hie_mem_calloc(1, sizeof(*log));
    if (log == NULL) {
        return HIE_ENOMEM;
    }
    log->magic = LOG_MAGIC;
    log->fsm = *fsm;
    log->zctx = cfg->zctx;
    log->interrupted = cfg->interrupted;
    log->interrupted_arg = cfg->interrupted_arg;
    log->retain = cfg->retain;
    snprintf(log->endpoint, sizeof(log->endpoint), "%s", cfg->endpoint);
    snprintf(log->ctl_endpoint, sizeof(log->ctl_endpoint), "%s%s", cfg->endpoint,
        LOG_CTL_SUFFIX);
    pthread_mutex_init(&log->start_mu, NULL);
    pthread_cond_init(&log->start_cv, NULL);
    log->batch = hie_mem_calloc(HIE_LOG_BATCH_COMMANDS_MAX, sizeof(*log->batch));
    log->entries = hie_mem_calloc(HIE_LOG_BATCH_COMMANDS_MAX, sizeof(*log->entries));
    log->results = hie_mem_calloc(HIE_LOG_BATCH_COMMANDS_MAX, sizeof(*log->results));
    if (log->batch == NULL || log->entries == NULL || log->results == NULL) {
        goto out;
    }
    rc = log_env_open(log, cfg->dir, cfg->map_bytes);
    if (rc == 0) {
        rc = log_replay(log);
    }
out:
    if (rc != 0) {
        hie_cluster_log_destroy(&log);
    }
    *out = log;
    return rc;
}

uint64_t
hie_cluster_log_last_index(const hie_cluster_log_t *log)
{
    HIE_ASSERT(log != NULL && log->magic == LOG_MAGIC);
    return atomic_load(&log->last_index);
}

uint64_t
hie_cluster_log_first_index(const hie_cluster_log_t *log)
{
    HIE_ASSERT(log != NULL && log->magic == LOG_MAGIC);
    return atomic_load(&log->first_index);
}

/* ---- the log thread --------------------------------------------------------------------- */

static void
reply_send(void *router, zmq_msg_t *identity, uint64_t token, int rc, uint64_t index,
    uint8_t *result, size_t result_len)
{
    uint8_t tok[8], head[LOG_REPLY_HEAD_BYTES];
    hie_store_be64(tok, token);
    hie_store_be32(head, (uint32_t)rc);
    hie_store_be64(head + 4, index);
    /* A ROUTER drops messages for peers that went away; that is fine: nobody waits. */
    if (zmq_msg_send(identity, router, ZMQ_SNDMORE) < 0) {
        zmq_msg_close(identity);
        return;
    }
    if (zmq_send(router, tok, sizeof(tok), ZMQ_SNDMORE) < 0 ||
        zmq_send(router, head, sizeof(head), ZMQ_SNDMORE) < 0) {
        return;
    }
    (void)zmq_send(router, result != NULL ? result : (uint8_t *)"", result_len, 0);
}

/* Reads one submission (identity, token [+ deadline], cmd) without blocking. Returns 0,
 * HIE_EAGAIN, HIE_ELIMIT for an oversize command or HIE_ETIMEDOUT for one past its deadline
 * (both already answered), or HIE_EUNAVAIL when the context is stopping (libzmq may refuse
 * even a part already queued then: ETERM). */
static int
batch_read_one(hie_cluster_log_t *log, void *router, struct pending *p)
{
    zmq_msg_t tok;
    zmq_msg_init(&p->identity);
    if (zmq_msg_recv(&p->identity, router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&p->identity);
        return HIE_EAGAIN;
    }
    HIE_ASSERT(zmq_msg_more(&p->identity));
    zmq_msg_init(&tok);
    int r = zmq_msg_recv(&tok, router, 0);
    if (r < 0) {
        zmq_msg_close(&tok);
        zmq_msg_close(&p->identity);
        return HIE_EUNAVAIL;
    }
    HIE_ASSERT(r == 8 || r == 16);
    HIE_ASSERT(zmq_msg_more(&tok));
    p->token = hie_load_be64(zmq_msg_data(&tok));
    uint64_t deadline = r == 16 ? hie_load_be64((const uint8_t *)zmq_msg_data(&tok) + 8) : 0;
    zmq_msg_close(&tok);
    zmq_msg_init(&p->cmd);
    r = zmq_msg_recv(&p->cmd, router, 0);
    if (r < 0) {
        zmq_msg_close(&p->cmd);
        zmq_msg_close(&p->identity);
        return HIE_EUNAVAIL;
    }
    HIE_ASSERT(!zmq_msg_more(&p->cmd));
    if (zmq_msg_size(&p->cmd) > HIE_LOG_COMMAND_BYTES_MAX || zmq_msg_size(&p->cmd) == 0) {
        reply_send(router, &p->identity, p->token, HIE_ELIMIT, 0, NULL, 0);
        zmq_msg_close(&p->cmd);
        return HIE_ELIMIT;
    }
    if (deadline != 0 && hie_time_mono_ns() > deadline) {
        /* its submitter has given up (or is about to): never appended, so a record of an
         * exchange answered "not committed" cannot turn up in the log afterwards */
        reply_send(router, &p->identity, p->token, HIE_ETIMEDOUT, 0, NULL, 0);
        zmq_msg_close(&p->cmd);
        return HIE_ETIMEDOUT;
    }
    return 0;
}

/* With retain: deletes, in the append's transaction (no sync of its own), up to
 * LOG_TRIM_PER_APPEND of the oldest entries more than retain behind the durable state.
 * [out] *first: the oldest entry left. */
static int
log_trim(hie_cluster_log_t *log, MDB_txn *txn, uint64_t *first)
{
    *first = atomic_load(&log->first_index);
    if (log->retain == 0 || log->durable <= log->retain ||
        *first > log->durable - log->retain) {
        return 0;
    }
    uint64_t upto = log->durable - log->retain; /* entries up to it may go */
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_rc(mdb_cursor_open(txn, log->dbi, &cur));
    for (size_t i = 0; rc == 0 && i < LOG_TRIM_PER_APPEND; i++) {
        int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (mrc != 0 || k.mv_size != 8) {
            rc = mrc == MDB_NOTFOUND ? 0 : mrc != 0 ? HIE_ESTORAGE : HIE_ECORRUPT;
            break;
        }
        uint64_t index = hie_load_be64(k.mv_data);
        if (index > upto) {
            break;
        }
        rc = mdb_rc(mdb_cursor_del(cur, 0));
        *first = index + 1;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

/* log_trim in a transaction of its own (a batch refused for room: nothing else writes), then
 * a touch. Returns whether the log holds fewer entries than before. */
static bool
log_trim_alone(hie_cluster_log_t *log)
{
    MDB_txn *txn = NULL;
    uint64_t before = atomic_load(&log->first_index), oldest = before;
    int rc = mdb_rc(mdb_txn_begin(log->env, NULL, 0, &txn));
    rc = rc == 0 ? log_trim(log, txn, &oldest) : rc;
    if (rc == 0) {
        rc = mdb_rc(mdb_txn_commit(txn));
        txn = NULL;
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc == 0) {
        atomic_store(&log->first_index, oldest);
    }
    if (rc == 0) {
        /* LMDB reuses the pages a transaction freed only once a later one committed: one
         * that writes and deletes key 0 (no entry has index 0) leaves nothing behind (done
         * whether or not this call trimmed: a touch that failed before is made up for) */
        uint8_t zero[8] = {0};
        MDB_val k = {sizeof(zero), zero}, v = {1, zero};
        rc = mdb_rc(mdb_txn_begin(log->env, NULL, 0, &txn));
        rc = rc == 0 ? mdb_rc(mdb_put(txn, log->dbi, &k, &v, 0)) : rc;
        rc = rc == 0 ? mdb_rc(mdb_del(txn, log->dbi, &k, NULL)) : rc;
        if (rc == 0) {
            rc = mdb_rc(mdb_txn_commit(txn));
            txn = NULL;
        }
        if (txn != NULL) {
            mdb_txn_abort(txn);
        }
    }
    return oldest > before;
}

static int
batch_append(hie_cluster_log_t *log, size_t n, uint64_t first)
{
    MDB_txn *txn = NULL;
    uint64_t oldest = 0;
    int rc = mdb_rc(mdb_txn_begin(log->env, NULL, 0, &txn));
    rc = rc == 0 ? log_trim(log, txn, &oldest) : rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint8_t key[8];
        hie_store_be64(key, first + i);
        MDB_val k = {8, key};
        MDB_val v = {zmq_msg_size(&log->batch[i].cmd), zmq_msg_data(&log->batch[i].cmd)};
        int mrc = mdb_put(txn, log->dbi, &k, &v, MDB_APPEND);
        rc = mrc == MDB_MAP_FULL ? HIE_ENOSPC : mdb_rc(mrc);
    }
    if (rc == 0) {
        int mrc = mdb_txn_commit(txn); /* synced: the group commit */
        rc = mrc == MDB_MAP_FULL ? HIE_ENOSPC : mdb_rc(mrc);
        txn = NULL;
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc == 0) {
        atomic_store(&log->first_index, oldest);
    }
    return rc;
}

/* Would appending bytes more (with room to spare for LMDB's pages and copies) reach the end of
 * the log's map? Without trimming the log never frees pages: its high-water mark is what it
 * holds. */
static bool
log_room_short(hie_cluster_log_t *log, uint64_t bytes)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(log->env, &info) != 0 || mdb_env_stat(log->env, &st) != 0) {
        return false; /* the append tells */
    }
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize, map = info.me_mapsize;
    bool short_ = used + 2u * bytes + LOG_APPEND_SLACK_BYTES > map;
    if (short_ && log->retain != 0 && hie_cluster_lmdb_usage(log->env, true, &used, &map) == 0) {
        /* a trimming log reuses the pages it freed: its high-water mark is not what it holds */
        short_ = used + 2u * bytes + LOG_APPEND_SLACK_BYTES > map;
    }
    return short_;
}

/* The last line before MDB_MAP_FULL (which stops the node, and again at every replay): a
 * batch the log's map cannot take is refused whole, HIE_ENOSPC to each submitter, nothing
 * appended or applied. The workers refuse new work well before (90%); this catches what they
 * cannot: internal submitters, and a burst between their looks. */
static bool
batch_refuse_if_full(hie_cluster_log_t *log, void *router, size_t n)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += zmq_msg_size(&log->batch[i].cmd);
    }
    if (!log_room_short(log, bytes)) {
        return false;
    }
    if (log->retain != 0) {
        (void)log_trim_alone(log);
        if (!log_room_short(log, bytes)) {
            return false; /* trimming made the room (a log full when log_retain was set) */
        }
    }
    hie_log_error("log", "command log full: batch refused", " commands=%zu bytes=%lu "
        "hint=\"%s\"", n, (unsigned long)bytes, "raise storage.map_bytes and restart");
    for (size_t i = 0; i < n; i++) {
        struct pending *p = &log->batch[i];
        reply_send(router, &p->identity, p->token, HIE_ENOSPC, 0, NULL, 0);
        zmq_msg_close(&p->cmd);
    }
    return true;
}

static void
batch_process(hie_cluster_log_t *log, void *router, size_t n)
{
    if (batch_refuse_if_full(log, router, n)) {
        return;
    }
    uint64_t first = atomic_load(&log->last_index) + 1;
    for (size_t i = 0; i < n; i++) {
        log->entries[i].index = first + i;
        log->entries[i].cmd = hie_span(zmq_msg_data(&log->batch[i].cmd),
            zmq_msg_size(&log->batch[i].cmd));
        log->results[i].buf = NULL;
        log->results[i].len = 0;
    }
    if (log->fsm.prepare != NULL) {
        log->fsm.prepare(log->fsm.ctx, log->entries, n);
    }
    int rc = batch_append(log, n, first);
    if (rc == HIE_ENOSPC) {
        /* the map could not take it after all (free pages in runs too short for a large
         * command): nothing was written; refused like a batch the room check turned away */
        hie_log_error("log", "command log full: batch refused", " commands=%zu hint=\"%s\"",
            n, "raise storage.map_bytes and restart");
        if (log->fsm.prepare != NULL && log->fsm.abandon != NULL) {
            log->fsm.abandon(log->fsm.ctx); /* before the entries' messages are closed */
        }
        for (size_t i = 0; i < n; i++) {
            struct pending *p = &log->batch[i];
            reply_send(router, &p->identity, p->token, HIE_ENOSPC, 0, NULL, 0);
            zmq_msg_close(&p->cmd);
        }
        return;
    }
    if (rc != 0) {
        log->fsm.fatal(log->fsm.ctx, rc, "log append failed");
        return; /* fatal does not return; keeps the compiler honest */
    }
    atomic_store(&log->last_index, first + n - 1);
    rc = log_apply(log, n);
    if (rc != 0) {
        log->fsm.fatal(log->fsm.ctx, rc, "state machine apply failed");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct pending *p = &log->batch[i];
        reply_send(router, &p->identity, p->token, 0, first + i, log->results[i].buf,
            log->results[i].len);
        hie_mem_free(log->results[i].buf, log->results[i].len);
        zmq_msg_close(&p->cmd);
    }
}

/* Returns false when the thread must stop. */
static bool
log_loop_once(hie_cluster_log_t *log, void *router, void *ctl)
{
    zmq_pollitem_t items[2] = {{router, 0, ZMQ_POLLIN, 0}, {ctl, 0, ZMQ_POLLIN, 0}};
    int ready = zmq_poll(items, 2, log->open ? (long)HIE_LOG_IDLE_FLUSH_MS : -1L);
    if (ready < 0) {
        return errno == EINTR;
    }
    if (items[1].revents & ZMQ_POLLIN) {
        return false;
    }
    if (ready == 0) {
        int rc = log_flush(log); /* idle with an open commit */
        if (rc != 0) {
            log->fsm.fatal(log->fsm.ctx, rc, "state commit failed");
        }
        return true;
    }
    size_t n = 0;
    while (n < HIE_LOG_BATCH_COMMANDS_MAX) {
        int rc = batch_read_one(log, router, &log->batch[n]);
        if (rc == HIE_EAGAIN || rc == HIE_EUNAVAIL) {
            break; /* what was read is processed; stopping shows at the next poll */
        }
        if (rc == 0) {
            n++;
        }
    }
    if (n > 0) {
        batch_process(log, router, n);
    }
    return true;
}

/* At stop: every submission still queued gets HIE_EUNAVAIL (bounded by the queue's HWM). */
static void
log_refuse_queued(hie_cluster_log_t *log, void *router)
{
    for (uint32_t i = 0; i < HIE_LOG_PENDING_MAX; i++) {
        struct pending p;
        int rc = batch_read_one(log, router, &p);
        if (rc == HIE_EAGAIN || rc == HIE_EUNAVAIL) {
            return;
        }
        if (rc == 0) {
            reply_send(router, &p.identity, p.token, HIE_EUNAVAIL, 0, NULL, 0);
            zmq_msg_close(&p.cmd);
        }
    }
}

static void
log_started(hie_cluster_log_t *log, int rc)
{
    pthread_mutex_lock(&log->start_mu);
    log->bind_rc = rc;
    log->start_done = true;
    pthread_cond_signal(&log->start_cv);
    pthread_mutex_unlock(&log->start_mu);
}

static void *
log_thread(void *arg)
{
    hie_cluster_log_t *log = arg;
    void *router = zmq_socket(log->zctx, ZMQ_ROUTER);
    void *ctl = zmq_socket(log->zctx, ZMQ_PULL);
    int rc = 0;
    if (router == NULL || ctl == NULL) {
        rc = -errno;
    } else {
        int hwm = (int)HIE_LOG_PENDING_MAX, linger = 0;
        zmq_setsockopt(router, ZMQ_RCVHWM, &hwm, sizeof(hwm));
        zmq_setsockopt(router, ZMQ_SNDHWM, &hwm, sizeof(hwm));
        zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_setsockopt(ctl, ZMQ_LINGER, &linger, sizeof(linger));
        if (zmq_bind(router, log->endpoint) != 0 || zmq_bind(ctl, log->ctl_endpoint) != 0) {
            rc = -errno;
        }
    }
    log_started(log, rc);
    while (rc == 0 && log_loop_once(log, router, ctl)) {
    }
    if (rc == 0) {
        int frc = log_flush(log);
        if (frc != 0) {
            log->fsm.fatal(log->fsm.ctx, frc, "state commit failed");
        }
        log_refuse_queued(log, router);
    }
    if (router != NULL) {
        zmq_close(router);
    }
    if (ctl != NULL) {
        zmq_close(ctl);
    }
    return NULL;
}

int
hie_cluster_log_start(hie_cluster_log_t *log)
{
    HIE_ASSERT(log != NULL && log->magic == LOG_MAGIC);
    HIE_ASSERT(log->zctx != NULL);
    if (log->started) {
        return HIE_ESTATE;
    }
    int rc = pthread_create(&log->thread, NULL, log_thread, log);
    if (rc != 0) {
        return -rc;
    }
    pthread_setname_np(log->thread, "hie-log");
    log->started = true;
    pthread_mutex_lock(&log->start_mu);
    while (!log->start_done) {
        pthread_cond_wait(&log->start_cv, &log->start_mu);
    }
    rc = log->bind_rc;
    pthread_mutex_unlock(&log->start_mu);
    return rc;
}

static void
log_stop_thread(hie_cluster_log_t *log)
{
    void *push = zmq_socket(log->zctx, ZMQ_PUSH);
    if (push != NULL) {
        int linger = 1000;
        zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof(linger));
        if (zmq_connect(push, log->ctl_endpoint) == 0) {
            (void)zmq_send(push, "stop", 4, 0);
        }
        zmq_close(push);
    }
    /* If the context was shut down instead, zmq_poll fails with ETERM and the thread exits. */
    pthread_join(log->thread, NULL);
    log->started = false;
}

void
hie_cluster_log_destroy(hie_cluster_log_t **logp)
{
    HIE_ASSERT(logp != NULL);
    hie_cluster_log_t *log = *logp;
    if (log == NULL) {
        return;
    }
    HIE_ASSERT(log->magic == LOG_MAGIC);
    if (log->started) {
        log_stop_thread(log);
    }
    if (log->env != NULL) {
        mdb_env_close(log->env);
    }
    pthread_mutex_destroy(&log->start_mu);
    pthread_cond_destroy(&log->start_cv);
    hie_mem_free(log->batch, HIE_LOG_BATCH_COMMANDS_MAX * sizeof(*log->batch));
    hie_mem_free(log->entries, HIE_LOG_BATCH_COMMANDS_MAX * sizeof(*log->entries));
    hie_mem_free(log->results, HIE_LOG_BATCH_COMMANDS_MAX * sizeof(*log->results));
    log->magic = 0;
    hie_mem_free(log, sizeof(*log));
    *logp = NULL;
}

/* ---- submitter side --------------------------------------------------------------------- */

int
hie_cluster_submit_send(void *dealer, uint64_t token, hie_span_t cmd)
{
    return hie_cluster_submit_send_by(dealer, token, cmd, 0);
}

int
hie_cluster_submit_send_by(void *dealer, uint64_t token, hie_span_t cmd, uint64_t deadline_ns)
{
    HIE_ASSERT(dealer != NULL);
    if (cmd.len == 0 || cmd.len > HIE_LOG_COMMAND_BYTES_MAX) {
        return HIE_ELIMIT;
    }
    uint8_t tok[16];
    hie_store_be64(tok, token);
    hie_store_be64(tok + 8, deadline_ns);
    size_t tok_len = deadline_ns != 0 ? 16 : 8;
    if (zmq_send(dealer, tok, tok_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        return errno == EAGAIN ? HIE_EBUSY : -errno;
    }
    if (zmq_send(dealer, cmd.ptr, cmd.len, ZMQ_DONTWAIT) < 0) {
        return HIE_EBUSY; /* cannot happen for the second part of an atomic multipart */
    }
    return 0;
}

int
hie_cluster_submit_recv(void *dealer, uint64_t *token, int *rc, uint64_t *index,
    uint8_t **result, size_t *result_len)
{
    HIE_ASSERT(dealer != NULL);
    *result = NULL;
    *result_len = 0;
    uint8_t tok[8], head[LOG_REPLY_HEAD_BYTES];
    int n = zmq_recv(dealer, tok, sizeof(tok), ZMQ_DONTWAIT);
    if (n < 0) {
        return errno == EAGAIN ? HIE_EAGAIN : -errno;
    }
    HIE_ASSERT(n == 8);
    n = zmq_recv(dealer, head, sizeof(head), 0);
    if (n < 0) {
        return -errno; /* stopping (ETERM) even with the reply's parts queued */
    }
    HIE_ASSERT(n == (int)LOG_REPLY_HEAD_BYTES);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    n = zmq_msg_recv(&msg, dealer, 0);
    if (n < 0) {
        zmq_msg_close(&msg);
        return -errno;
    }
    *token = hie_load_be64(tok);
    *rc = (int)hie_load_be32(head);
    *index = hie_load_be64(head + 4);
    size_t len = zmq_msg_size(&msg);
    if (len > 0) {
        *result = hie_mem_alloc(len);
        if (*result == NULL) {
            zmq_msg_close(&msg);
            return HIE_ENOMEM;
        }
        memcpy(*result, zmq_msg_data(&msg), len);
        *result_len = len;
    }
    zmq_msg_close(&msg);
    return 0;
}

int
hie_cluster_log_read(const char *dir, uint64_t first,
    int (*fn)(void *ctx, uint64_t index, hie_span_t cmd), void *ctx)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi dbi;
    MDB_val k, v;
    uint8_t key[8];
    int rc = mdb_rc(mdb_env_create(&env));
    if (rc == 0) {
        mdb_env_set_maxdbs(env, 4);
        rc = mdb_rc(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600));
    }
    if (rc == 0) {
        rc = mdb_rc(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
    }
    if (rc == 0) {
        rc = mdb_rc(mdb_dbi_open(txn, "log", 0, &dbi));
    }
    if (rc == 0) {
        rc = mdb_rc(mdb_cursor_open(txn, dbi, &cur));
    }
    hie_store_be64(key, first);
    k.mv_size = 8;
    k.mv_data = key;
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : MDB_NOTFOUND;
    while (rc == 0 && mrc == 0) {
        if (k.mv_size != 8) {
            rc = HIE_ECORRUPT;
            break;
        }
        if (fn(ctx, hie_load_be64(k.mv_data), hie_span(v.mv_data, v.mv_size)) != 0) {
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
    if (env != NULL) {
        mdb_env_close(env);
    }
    return rc;
}
