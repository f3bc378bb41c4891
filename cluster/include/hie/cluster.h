/*
 * hie/cluster.h - the replicated command log (design.md "Replicated state").
 *
 * Purpose: every change of state is a command appended to the log and then applied, in log
 * order, by the state machine (an hie_cluster_fsm_t the node supplies). A submitter is answered
 * only after its command is durable and applied. This module holds the log behind one boundary
 * so that the Raft log (libraft, a later issue) can replace the local log without changing the
 * state machine or the submitters.
 *
 * Local log (this version): a single-node cluster. Commands are appended to an LMDB environment
 * in <dir>, one synced write transaction per batch (group commit: one fsync covers up to
 * HIE_LOG_BATCH_COMMANDS_MAX commands), then applied as one batch. A state machine may share
 * one state commit among several batches (fsm.flush).
 *
 * Threads: the log runs one thread, which is also the thread that calls fsm.apply (the only
 * writer of the node's state). Submitters talk to it over ZeroMQ inproc: a DEALER socket
 * connected to cfg.endpoint, with hie_cluster_submit_send() / hie_cluster_submit_recv(). Any
 * number of submitter threads, each with its own DEALER.
 *
 * Wire (inproc, internal, asserted): request = [token: 8 bytes][command bytes];
 * reply = [token][rc: 4 bytes BE signed][index: 8 bytes BE][result bytes].
 *
 * Limits: a command is at most HIE_LOG_COMMAND_BYTES_MAX bytes (bigger: HIE_ELIMIT reply).
 */
#ifndef HIE_CLUSTER_H
#define HIE_CLUSTER_H

#include "hie/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hie_cluster_log hie_cluster_log_t;

typedef struct hie_cluster_entry {
    uint64_t index; /* 1-based, gapless */
    hie_span_t cmd; /* borrowed for the duration of apply */
} hie_cluster_entry_t;

/* fsm.apply's "applied, commit left open" (see flush). */
#define HIE_CLUSTER_APPLIED_OPEN 1

typedef struct hie_cluster_result {
    uint8_t *buf;   /* hie_mem allocation, ownership moves to the log; may be NULL */
    size_t len;
} hie_cluster_result_t;

/* The state machine, as the log sees it. */
typedef struct hie_cluster_fsm {
    void *ctx;
    /* Applies entries[0..n) in order, atomically (one storage transaction), and fills
     * results[i]. Deterministic: uses nothing but the entries and the state. A command the
     * state machine rejects is a result, not an error. Returns 0 (applied and committed,
     * together with any batch left open before), HIE_CLUSTER_APPLIED_OPEN (applied, the
     * commit left open: only with flush), or an error after which the node must stop (its
     * state would diverge). Called only from the log thread (or from hie_cluster_log_open's
     * caller during replay). */
    int (*apply)(void *ctx, const hie_cluster_entry_t *entries, size_t n,
        hie_cluster_result_t *results);
    /* The last index applied to the state (0 for a fresh state). */
    int (*applied_index)(void *ctx, uint64_t *out);
    /* Called once on an unrecoverable failure of the log or apply; must not return. */
    void (*fatal)(void *ctx, int rc, const char *what);
    /* Optional (NULL): told of a batch before the log appends it, so that work apply will
     * need can start while the append syncs. Must not change the state; entries stay valid
     * until apply returns. Log thread. */
    void (*prepare)(void *ctx, const hie_cluster_entry_t *entries, size_t n);
    /* Optional (NULL: every apply commits). With flush, apply may leave its storage
     * transaction open, for commands whose replies need only the log's durability (a crash
     * loses nothing: replay applies them again); their replies go before the state commit,
     * so a reader of the state may not see them yet. The log calls flush (commit) once no
     * submission has arrived for HIE_LOG_IDLE_FLUSH_MS, after replay and at stop; apply
     * itself bounds how long it keeps a commit open. Returns 0 or an error after which the
     * node must stop. Log thread. */
    int (*flush)(void *ctx);
    /* Optional (NULL): makes every state commit so far durable (a synced flush of the
     * storage). The log calls it once after replay when it trims (cfg.retain), so that it may
     * trim at once after a restart instead of after two more state commits, even when every
     * batch is refused for room. Returns 0 or an error (the log then waits for commits). */
    int (*sync)(void *ctx);
    /* Optional (NULL): the batch prepare was told of will not be applied (the append found
     * no room after all: refused, nothing written). Ends what prepare started before the
     * entries go. Log thread. */
    void (*abandon)(void *ctx);
} hie_cluster_fsm_t;

typedef struct hie_cluster_log_config {
    const char *dir;        /* directory of the log environment (created if missing, 0700) */
    void *zctx;             /* the process's ZeroMQ context */
    const char *endpoint;   /* inproc endpoint the log binds (e.g. "inproc://hie-log") */
    uint64_t map_bytes;     /* LMDB map size */
    /* Optional: asked before each replay batch; true stops the replay (a stop signal while a
     * long log replays). What was applied is committed, and open returns HIE_EUNAVAIL. */
    bool (*interrupted)(void *arg);
    void *interrupted_arg;
    /* Entries kept behind the state (0: every entry, for good). The log deletes the entries
     * older than this many before the index of the state commit before the last one (that
     * commit is durable once the next one synced, also for a state opened with
     * MDB_NOMETASYNC), a bounded number with each append, so its file stops growing. A state
     * that falls behind the log's first entry cannot be replayed (HIE_ECORRUPT at open). */
    uint64_t retain;
} hie_cluster_log_config_t;

/* Opens the log in cfg->dir and replays every entry after fsm->applied_index() through
 * fsm->apply on the calling thread, so the state is current before anything is served.
 * [out] *out owned by the caller (hie_cluster_log_destroy). The fsm table is copied.
 * Returns 0, HIE_ESTORAGE (LMDB failure; logged by the caller), HIE_ECORRUPT (an entry or the
 * applied index is inconsistent with the log), HIE_ENOMEM, or HIE_EUNAVAIL (cfg->interrupted
 * stopped the replay). An fsm->apply failure during replay calls fsm->fatal, as on the log
 * thread. */
HIE_MUST_CHECK int hie_cluster_log_open(hie_cluster_log_t **out,
    const hie_cluster_log_config_t *cfg, const hie_cluster_fsm_t *fsm);

/* Starts the log thread, which binds cfg->endpoint before this returns.
 * Returns 0, HIE_ESTATE (already started), or -errno. */
HIE_MUST_CHECK int hie_cluster_log_start(hie_cluster_log_t *log);

/* Stops the thread (finishing the batch in hand; commands still queued are answered
 * HIE_EUNAVAIL), closes the environment and frees; sets *log to NULL; NULL-safe. */
void hie_cluster_log_destroy(hie_cluster_log_t **log);

/* Index of the last appended entry (any thread). */
uint64_t hie_cluster_log_last_index(const hie_cluster_log_t *log);
/* Index of the oldest entry the log still holds (1 until it trims; last + 1 when empty). Any
 * thread. */
uint64_t hie_cluster_log_first_index(const hie_cluster_log_t *log);

/* Storage of an LMDB environment (env: an MDB_env *): [out] *used, the bytes of its map in
 * use (pages up to the high-water mark, less, with free_list, the free pages LMDB will reuse:
 * the free list is read up to 100,000 entries) and *map, its map size. Any thread.
 * Returns 0 or HIE_ESTORAGE. */
HIE_MUST_CHECK int hie_cluster_lmdb_usage(void *env, bool free_list, uint64_t *used,
    uint64_t *map);
/* The same for the log's own environment. With cfg.retain 0 the log never shrinks: its map
 * must then be sized for every command ever applied. */
HIE_MUST_CHECK int hie_cluster_log_usage(const hie_cluster_log_t *log, bool free_list,
    uint64_t *used, uint64_t *map);

/* Submitter side. dealer is a ZMQ_DEALER connected to the log's endpoint, owned by the
 * calling thread. send: returns 0, HIE_ELIMIT (too large) or HIE_EBUSY (queue full, the
 * submitter should answer OVERLOADED). recv: reads one reply (call when dealer is readable);
 * [out] *result is a hie_mem buffer owned by the caller (may be NULL when result_len is 0).
 * Returns 0, HIE_EAGAIN (nothing to read) or -errno. */
HIE_MUST_CHECK int hie_cluster_submit_send(void *dealer, uint64_t token, hie_span_t cmd);
/* The same with a deadline (hie_time_mono_ns(); 0: none): a command the log reads after it is
 * not appended, and is answered rc HIE_ETIMEDOUT (index 0). A submitter that gives up on a
 * command at some time should pass a deadline before it, so that nothing it has answered
 * "not committed" is appended later. */
HIE_MUST_CHECK int hie_cluster_submit_send_by(void *dealer, uint64_t token, hie_span_t cmd,
    uint64_t deadline_ns);
HIE_MUST_CHECK int hie_cluster_submit_recv(void *dealer, uint64_t *token, int *rc,
    uint64_t *index, uint8_t **result, size_t *result_len);

/* Reads entries (first..first+n) of a closed log directory, for tools; fn returns non-zero to
 * stop. Returns 0 or an error. */
HIE_MUST_CHECK int hie_cluster_log_read(const char *dir, uint64_t first,
    int (*fn)(void *ctx, uint64_t index, hie_span_t cmd), void *ctx);

#ifdef __cplusplus
}
#endif
#endif
