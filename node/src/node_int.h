/*
 * node_int.h - private declarations shared by node/src files (not visible to other modules).
 *
 * Threads of one hie-node process (design.md "One node"):
 *   main    - config, startup, signals (signalfd), orderly shutdown;
 *   edge    - TLS accept/handshake/read/write (epoll), never touches LMDB;
 *   workers - authorize and run exchanges, LMDB read txns, submit commands;
 *   log     - the command log (cluster/) and the state machine (sm.c), the only LMDB writer;
 *   admin   - the ipc:// operator channel for hiectl;
 *   http    - libmicrohttpd's thread serving /healthz and /metrics.
 * They share nothing mutable except the metrics counters (atomics) and the LMDB environment
 * (whose API is thread-safe for one writer plus readers). Everything else moves over inproc://
 * ZeroMQ sockets; a pointer sent over inproc belongs to the receiver after a successful send.
 */
#ifndef HIE_NODE_INT_H
#define HIE_NODE_INT_H

#include "hie/base.h"
#include "hie/cluster.h"
#include "hie/limits.h"
#include "hie/proto.h"

#include <limits.h>
#include <lmdb.h>
#include <openssl/ssl.h>
#include <stdatomic.h>

#define HIE_NODE_VERSION "0.1.0"
#define NODE_PATH_MAX 4096
#define NODE_OPERATOR_ID "@operator"

/* inproc endpoints */
#define NODE_EP_WORKER_FMT "inproc://hie-worker-%u"
#define NODE_EP_EDGE_REPLIES_FMT "inproc://hie-edge-replies-%u"
#define NODE_EP_EDGE_CTL_FMT "inproc://hie-edge-ctl-%u"
#define NODE_EP_EDGE_ADOPT_FMT "inproc://hie-edge-adopt-%u"
/* Edge threads: TLS handshakes cost ~2 ms of CPU each, so one thread per core keeps a burst
 * of reconnecting members from queueing behind a single thread. */
#define NODE_EDGES_MAX 16u
#define NODE_EP_LOG "inproc://hie-log"

/* ---- config (config.c) ------------------------------------------------------------------- */
typedef struct node_config {
    char node_id[HIE_ORG_ID_BYTES_MAX + 1];
    char data_dir[NODE_PATH_MAX];
    char listen_address[64];
    uint16_t listen_port;
    char ca_file[NODE_PATH_MAX];
    char cert_file[NODE_PATH_MAX];
    char key_file[NODE_PATH_MAX];
    char crl_file[NODE_PATH_MAX]; /* "" when no CRL is configured */
    int tls_min_version;          /* TLS1_3_VERSION or TLS1_2_VERSION */
    uint32_t frame_bytes_max;
    uint32_t connections_max;
    uint32_t inflight_max;
    uint32_t handshake_timeout_ms;
    uint32_t frame_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t workers;
    uint32_t edge_threads;
    char http_address[64];
    uint16_t http_port;           /* 0: operator HTTP endpoint disabled */
    char admin_socket[NODE_PATH_MAX];
    enum hie_log_level log_level;
    enum hie_log_format log_format;
    uint64_t map_bytes;
    char mpi_key_file[NODE_PATH_MAX]; /* "" when the MPI has no data key (MPI unavailable) */
} node_config_t;

/* Loads and validates path. On failure writes one line naming the bad key into err.
 * Returns 0, HIE_ECONFIG or -errno. */
HIE_MUST_CHECK int hie_node__config_load(node_config_t *cfg, const char *path, char *err,
    size_t err_bytes);

/* ---- metrics (metrics.c) ----------------------------------------------------------------- */
enum node_hs_reason {
    HS_NO_CERT, HS_UNKNOWN_CA, HS_EXPIRED, HS_NOT_YET_VALID, HS_REVOKED, HS_BAD_PURPOSE,
    HS_PROTOCOL_VERSION, HS_TIMEOUT, HS_OTHER, HS_REASON_COUNT
};
enum node_req_kind { REQ_KIND_PING, REQ_KIND_WHOAMI, REQ_KIND_OTHER, REQ_KIND_COUNT };
enum node_outcome {
    OUT_OK, OUT_BAD_REQUEST, OUT_UNAUTHENTICATED, OUT_FORBIDDEN, OUT_NOT_FOUND, OUT_OVERLOADED,
    OUT_UNAVAILABLE, OUT_INTERNAL, OUT_COUNT
};
#define NODE_LATENCY_BUCKETS 14

typedef struct node_metrics {
    _Atomic uint64_t connections_open;
    _Atomic uint64_t connections_total;
    _Atomic uint64_t connections_refused_limit;
    _Atomic uint64_t handshakes_ok;
    _Atomic uint64_t handshakes_failed[HS_REASON_COUNT];
    _Atomic uint64_t auth_refused_unregistered;
    _Atomic uint64_t auth_refused_suspended;
    _Atomic uint64_t frames_rejected;
    _Atomic uint64_t sessions_cut;          /* open sessions closed by a reload (revoked...) */
    _Atomic uint64_t requests[REQ_KIND_COUNT][OUT_COUNT];
    _Atomic uint64_t latency_bucket[REQ_KIND_COUNT][NODE_LATENCY_BUCKETS + 1];
    _Atomic uint64_t latency_sum_us[REQ_KIND_COUNT];
    _Atomic uint64_t commands_applied;
    _Atomic uint64_t log_batches;
    _Atomic uint64_t applied_index;
    _Atomic uint64_t log_index;
    _Atomic uint64_t tls_reloads_ok;
    _Atomic uint64_t tls_reloads_failed;
    _Atomic uint64_t ready;
    uint64_t start_ns;
    struct hie_mpi_store_stats *mpi; /* the MPI's counters (set once at startup), or NULL */
} node_metrics_t;

extern const char *const hie_node__hs_reason_names[HS_REASON_COUNT];
void hie_node__metrics_observe(node_metrics_t *m, enum node_req_kind kind,
    enum node_outcome outcome, uint64_t latency_us);
enum node_outcome hie_node__outcome_from_code(Hie__V1__ErrorCode code);
/* Renders Prometheus text into a new buffer, NUL-terminated; free it with
 * hie_mem_free(*out, *out_len + 1). Returns 0 or HIE_ENOMEM. */
HIE_MUST_CHECK int hie_node__metrics_render(const node_metrics_t *m, const char *node_id,
    char **out, size_t *out_len);

/* ---- TLS (tls.c) ------------------------------------------------------------------------- */
/* Builds the server SSL_CTX from cfg: cert, key, CA, CRL (CRL_CHECK|CRL_CHECK_ALL), client
 * certificate required, TLS 1.3 (or 1.2 with the ITI-19 suites), cert list cap.
 * [out] *out owned by the caller (SSL_CTX_free). err gets a one-line reason on failure.
 * Returns 0 or HIE_ETLS. Any thread. */
HIE_MUST_CHECK int hie_node__tls_ctx_build(const node_config_t *cfg, SSL_CTX **out,
    char *err, size_t err_bytes);
/* Maps a verify result to a handshake-failure reason. */
enum node_hs_reason hie_node__tls_reason(long verify_result, unsigned long ssl_err);
/* Copies the peer certificate's subject CN into out. Returns 0, HIE_EUNAUTH (no cert or no
 * CN) or HIE_EINVAL (CN not a valid organization id). */
HIE_MUST_CHECK int hie_node__tls_peer_id(SSL *ssl, char *out, size_t out_bytes);

/* ---- state (sm.c): LMDB state, the state machine and its readers -------------------------- */
typedef struct node_state node_state_t;
HIE_MUST_CHECK int hie_node__state_open(node_state_t **out, const char *data_dir,
    uint64_t map_bytes, const char *node_id, node_metrics_t *metrics);
void hie_node__state_close(node_state_t **st);
/* The FSM table the command log drives (apply runs on the log thread only). */
hie_cluster_fsm_t hie_node__state_fsm(node_state_t *st);
MDB_env *hie_node__state_env(node_state_t *st);
/* Loads the MPI data key (hie_mpi_key_load checks: regular file, mode 0600 or stricter, 32
 * bytes) and reopens the MPI store with it. Call once, before the log replays.
 * Returns 0 or the load error. */
HIE_MUST_CHECK int hie_node__state_mpi_key_load(node_state_t *st, const char *path);
struct hie_mpi_store;
struct hie_mpi_key;
/* The MPI store (never NULL; without a key its operations answer unavailable) and its key
 * (NULL when none is configured). */
struct hie_mpi_store *hie_node__state_mpi(node_state_t *st);
const struct hie_mpi_key *hie_node__state_mpi_key(node_state_t *st);
/* Readers (any thread, own read txn): an organization by id. [out] *org owned by arena.
 * Returns 0, HIE_ENOTFOUND, HIE_ECORRUPT, HIE_ESTORAGE. */
HIE_MUST_CHECK int hie_node__state_org_get(node_state_t *st, const char *org_id,
    hie_arena_t *arena, hie_org_t **org);
/* The stored result for (requester, request_id) if that request was applied already.
 * [out] *result owned by arena. Returns 0, HIE_ENOTFOUND, HIE_ECORRUPT, HIE_ESTORAGE. */
HIE_MUST_CHECK int hie_node__state_dedup_get(node_state_t *st, const char *requester,
    const char *request_id, hie_arena_t *arena, hie_command_result_t **result);
/* Calls fn for every organization in id order (at most HIE_ORGS_MAX). fn returns non-zero to
 * stop. Returns 0 or an error. */
HIE_MUST_CHECK int hie_node__state_org_each(node_state_t *st, hie_arena_t *arena,
    int (*fn)(void *ctx, hie_org_t *org), void *ctx);
HIE_MUST_CHECK int hie_node__state_applied_index(node_state_t *st, uint64_t *out);

/* ---- requests between edge and workers (edge.c, worker.c) --------------------------------- */
enum node_req_type { NODE_REQ_AUTH = 1, NODE_REQ_ENVELOPE = 2 };
#define NODE_REQ_MAGIC 0x52455131u /* "REQ1" */

typedef struct node_req {
    uint32_t magic;
    enum node_req_type type;
    uint64_t conn_id;
    uint32_t edge_index;                      /* which edge thread gets the reply */
    uint64_t recv_ns;
    char org_id[HIE_ORG_ID_BYTES_MAX + 1];   /* from the certificate */
    char tls_version[16];
    char cipher[64];
    hie_arena_t *arena;                       /* owns env */
    hie_envelope_t *env;                      /* NODE_REQ_ENVELOPE */
    /* filled by the worker: */
    uint8_t *reply_buf;                       /* a whole frame, hie_mem */
    size_t reply_len;
    bool close_after;                         /* close the connection once reply is written */
    bool auth_ok;                             /* NODE_REQ_AUTH */
} node_req_t;

void hie_node__req_destroy(node_req_t **req);

/* ---- threads ----------------------------------------------------------------------------- */
typedef struct node_ctx {
    node_config_t cfg;
    node_metrics_t metrics;
    void *zctx;
    node_state_t *state;
    hie_cluster_log_t *log;
    SSL_CTX *ssl_ctx_initial;   /* owned by main; each edge thread takes its own reference */
    int listen_fd;              /* owned by main; every edge thread accepts from it */
    _Atomic uint32_t edge_load[NODE_EDGES_MAX]; /* open connections per edge thread */
} node_ctx_t;

typedef struct node_edge node_edge_t;
/* Opens the member listening socket (ctx->listen_fd). Returns 0 or -errno / HIE_ECONFIG. */
HIE_MUST_CHECK int hie_node__listen(node_ctx_t *ctx);
/* Starts edge thread number index (0..edge_threads-1). */
HIE_MUST_CHECK int hie_node__edge_start(node_edge_t **out, node_ctx_t *ctx, unsigned index);
void hie_node__edge_join(node_edge_t **edge);

typedef struct node_workers node_workers_t;
HIE_MUST_CHECK int hie_node__workers_start(node_workers_t **out, node_ctx_t *ctx);
void hie_node__workers_join(node_workers_t **w);

typedef struct node_admin node_admin_t;
HIE_MUST_CHECK int hie_node__admin_start(node_admin_t **out, node_ctx_t *ctx);
void hie_node__admin_join(node_admin_t **a);

typedef struct node_http node_http_t;
HIE_MUST_CHECK int hie_node__http_start(node_http_t **out, node_ctx_t *ctx);
void hie_node__http_stop(node_http_t **h);

/* Sends a control verb to every edge thread and waits for all answers: "reload" with an
 * SSL_CTX (each edge gets its own reference; the caller keeps its own), or "drain". Returns 0
 * or the first failure. */
HIE_MUST_CHECK int hie_node__edge_ctl(node_ctx_t *ctx, const char *verb, SSL_CTX *new_ctx,
    uint32_t timeout_ms);
/* Builds a new SSL_CTX from ctx->cfg and hands it to the edge. Returns 0 or an error. */
HIE_MUST_CHECK int hie_node__tls_reload(node_ctx_t *ctx, char *err, size_t err_bytes);

/* ---- command submission (submit.c): workers and admin, one submitter per thread ---------- */
typedef struct node_submitter {
    void *dealer;     /* DEALER connected to NODE_EP_LOG */
    uint64_t token;   /* last token sent */
} node_submitter_t;
HIE_MUST_CHECK int hie_node__submitter_open(node_submitter_t *s, void *zctx);
void hie_node__submitter_close(node_submitter_t *s);
/* Sends cmd (requester, request_id, time and node set by the caller). [out] *token.
 * Returns 0, HIE_ELIMIT (too large) or a send error. */
HIE_MUST_CHECK int hie_node__submit_send(node_submitter_t *s, const hie_command_t *cmd,
    uint64_t *token);
/* Waits up to timeout_ms for the answers to tokens first..first+n-1: results[i] (arena) and
 * rcs[i] (0, HIE_ETIMEDOUT, or the log's error for that command). Returns 0 or a socket
 * error. */
HIE_MUST_CHECK int hie_node__submit_collect(node_submitter_t *s, uint64_t first, size_t n,
    uint32_t timeout_ms, hie_arena_t *arena, hie_command_result_t **results, int *rcs);
/* Send and wait for one command. Returns 0 with *out, or an error. */
HIE_MUST_CHECK int hie_node__submit_wait(node_submitter_t *s, const hie_command_t *cmd,
    uint32_t timeout_ms, hie_arena_t *arena, hie_command_result_t **out);

/* ---- MPI exchanges (mpi_exchange.c): workers and admin ------------------------------------ */
/* An exchange's refusal: code, the offending field (or NULL) and a static message. */
typedef struct node_mpi_err {
    Hie__V1__ErrorCode code;
    const char *field;
    const char *message;
} node_mpi_err_t;
/* Fills e and returns code (non-zero), for the exchanges' error paths. */
static inline int
mpi_fail(node_mpi_err_t *e, Hie__V1__ErrorCode code, const char *field, const char *message)
{
    e->code = code;
    e->field = field;
    e->message = message;
    return (int)code;
}
/* Each returns 0 with *reply (arena), or the error code with *e filled. */
/* Validates and seals a feed from org_id into cmd (not submitted). */
HIE_MUST_CHECK int hie_node__mpi_feed_prepare(node_ctx_t *ctx, const char *org_id,
    const char *requester, const char *id, const Hie__V1__MpiFeedRequest *req,
    hie_arena_t *arena, hie_command_t *cmd, node_mpi_err_t *e);
/* A member's feed: a repeated id answers the original result. */
HIE_MUST_CHECK int hie_node__mpi_feed(node_ctx_t *ctx, node_submitter_t *sub,
    const char *org_id, const char *id, const Hie__V1__MpiFeedRequest *req, hie_arena_t *arena,
    Hie__V1__MpiFeedReply **reply, node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__mpi_review_decide(node_ctx_t *ctx, node_submitter_t *sub,
    const char *requester, const char *id, const Hie__V1__ReviewDecideRequest *req,
    hie_arena_t *arena, Hie__V1__ReviewDecideReply **reply, node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__mpi_pix(node_ctx_t *ctx, const Hie__V1__PixQuery *q,
    hie_arena_t *arena, Hie__V1__PixReply **reply, node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__mpi_pdq(node_ctx_t *ctx, const Hie__V1__PdqQuery *q,
    hie_arena_t *arena, Hie__V1__PdqReply **reply, node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__mpi_review_list(node_ctx_t *ctx,
    const Hie__V1__ReviewListRequest *q, hie_arena_t *arena, Hie__V1__ReviewListReply **reply,
    node_mpi_err_t *e);
/* The admin channel's MPI requests (admin_mpi.c): fills reply (arena) or e. Admin thread. */
HIE_MUST_CHECK int hie_node__admin_mpi(node_ctx_t *ctx, node_submitter_t *sub,
    const Hie__V1__AdminRequest *req, hie_arena_t *arena, Hie__V1__AdminReply *reply,
    node_mpi_err_t *e);

#endif
