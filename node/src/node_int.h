/*
 * node_int.h - private declarations shared by node/src files (not visible to other modules).
 *
 * Threads of one hie-node process (design.md "One node"):
 *   main    - config, startup, signals (signalfd), orderly shutdown;
 *   edge    - TLS accept/handshake/read/write (epoll), never touches LMDB;
 *   workers - authorize and run exchanges, LMDB read txns, submit commands;
 *   log     - the command log (cluster/) and the state machine (sm.c), the only LMDB writer;
 *   mpi pool - mpi.match_threads threads preparing each batch's MPI feeds (mpi/src/pool.c);
 *   admin   - the ipc:// operator channel for hiectl;
 *   http    - libmicrohttpd's thread serving /healthz and /metrics.
 * They share nothing mutable except the metrics counters (atomics) and the LMDB environment
 * (whose API is thread-safe for one writer plus readers). Everything else moves over inproc://
 * ZeroMQ sockets; a pointer sent over inproc belongs to the receiver after a successful send.
 */
#ifndef HIE_NODE_INT_H
#define HIE_NODE_INT_H

#include "hie/audit.h"
#include "hie/base.h"
#include "hie/cluster.h"
#include "hie/consent.h"
#include "hie/limits.h"
#include "hie/proto.h"

#include <limits.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sodium.h>
#include <stdatomic.h>
#include <sys/stat.h>

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
#define NODE_EP_DELIVERY "inproc://hie-delivery"

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
    uint32_t crl_check_interval_ms; /* a changed CRL file is reloaded within this */
    int tls_min_version;          /* TLS1_3_VERSION or TLS1_2_VERSION */
    uint32_t frame_bytes_max;
    uint32_t connections_max;
    uint32_t connections_per_org_max;
    uint32_t inflight_max;
    uint32_t edge_buffer_bytes_max; /* per edge thread: request frames read or being read */
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
    uint64_t log_retain;          /* storage.log_retain: commands kept behind the state */
    char mpi_key_file[NODE_PATH_MAX]; /* "" when the MPI has no data key (MPI unavailable) */
    uint32_t mpi_match_threads;   /* the match pool's threads (hie/mpi_store.h) */
    bool consent_opt_out;         /* consent.regime: false = opt-in (deny when none on file) */
    bool consent_break_glass;     /* emergency treatment may override a deny */
    bool consent_part2_named;     /* 42 CFR Part 2 data needs a consent naming the recipient */
    bool consent_off;             /* consent.enforce: off-for-benchmarks-only (no consent, no audit) */
    char audit_origin[201];       /* checkpoint origin line; default hiebroker/<node id> */
    uint32_t audit_checkpoint_interval_ms;
    uint32_t delivery_ack_timeout_ms; /* first redelivery wait; doubles per attempt */
    uint32_t delivery_max_attempts;   /* then the message is dead-lettered */
    uint64_t delivery_max_age_ms;     /* or when it has waited this long */
    uint64_t delivery_queue_bytes_max; /* a push to a recipient whose queue holds this much
                                        * is refused (OVERLOADED) */
    uint64_t repository_bytes_max;     /* a repository push by an organization that stores
                                        * this much is refused (OVERLOADED) */
    uint32_t delivery_heartbeat_ms;   /* idle receiving connections get a heartbeat */
    uint32_t delivery_retain_events;  /* notifications a new subscription keeps for replays */
    uint32_t query_responder_timeout_ms; /* how long a record query waits for responders */
    uint32_t query_max_responders;       /* how many responders a record query asks (1..8) */
} node_config_t;

/* Loads and validates path. On failure writes one line naming the bad key into err.
 * Returns 0, HIE_ECONFIG or -errno. */
HIE_MUST_CHECK int hie_node__config_load(node_config_t *cfg, const char *path, char *err,
    size_t err_bytes);
/* A private key file: readable, a regular file, no access for group or other (the MPI key's
 * rule). Returns 0 or HIE_ECONFIG with one line naming key in err. */
HIE_MUST_CHECK int hie_node__secret_file_check(const char *path, const char *key, char *err,
    size_t err_bytes);

/* ---- metrics (metrics.c) ----------------------------------------------------------------- */
enum node_hs_reason {
    HS_NO_CERT, HS_UNKNOWN_CA, HS_EXPIRED, HS_NOT_YET_VALID, HS_REVOKED, HS_BAD_PURPOSE,
    HS_PROTOCOL_VERSION, HS_TIMEOUT, HS_OTHER,
    HS_CRL,                     /* the CRL itself: expired, not yet valid, missing, bad */
    HS_REASON_COUNT
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
    _Atomic uint64_t connections_handshaking; /* accepted, TLS handshake not finished */
    _Atomic uint64_t handshakes_evicted;      /* the oldest, to make room for a new one */
    _Atomic uint64_t handshakes_ok;
    _Atomic uint64_t handshakes_failed[HS_REASON_COUNT];
    _Atomic uint64_t auth_refused_unregistered;
    _Atomic uint64_t auth_refused_suspended;
    _Atomic uint64_t frames_rejected;
    _Atomic uint64_t edge_buffer_bytes;     /* requests read and not answered, frames being read */
    _Atomic uint64_t sessions_cut;          /* open sessions closed by a reload (revoked...) */
    _Atomic uint64_t requests[REQ_KIND_COUNT][OUT_COUNT];
    _Atomic uint64_t latency_bucket[REQ_KIND_COUNT][NODE_LATENCY_BUCKETS + 1];
    _Atomic uint64_t latency_sum_us[REQ_KIND_COUNT];
    _Atomic uint64_t commands_applied;
    _Atomic uint64_t log_batches;
    _Atomic uint64_t state_commits;         /* synced state commits (several batches each) */
    _Atomic uint64_t applied_index;
    _Atomic uint64_t log_index;
    _Atomic uint64_t tls_reloads_ok;
    _Atomic uint64_t tls_reloads_failed;
    _Atomic uint64_t ready;
    _Atomic uint64_t delivery_receivers;    /* recipients with a receiver slot (delivery.c) */
    _Atomic int64_t crl_next_update_ms;     /* the loaded CRL's nextUpdate (0: no CRL) */
    _Atomic int64_t crl_last_update_ms;     /* its lastUpdate: refused before (0: no CRL) */
    uint64_t start_ns;
    struct hie_mpi_store_stats *mpi; /* the MPI's counters (set once at startup), or NULL */
    void *state_env;                 /* the state's MDB_env and the command log, for the */
    const struct hie_cluster_log *log; /* storage gauges (set once at startup), or NULL */
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
/* A member's certificate carries extendedKeyUsage clientAuth (OpenSSL's client purpose also
 * passes one with no EKU at all). */
bool hie_node__tls_client_eku(X509 *cert);
/* Copies the peer certificate's subject CN into out. Returns 0, HIE_EUNAUTH (no cert or no
 * CN) or HIE_EINVAL (CN not a valid organization id). */
HIE_MUST_CHECK int hie_node__tls_peer_id(SSL *ssl, char *out, size_t out_bytes);

/* ---- state (sm.c): LMDB state, the state machine and its readers -------------------------- */
typedef struct node_state node_state_t;
/* Whether key is the one the state in data_dir was written with, read-only (--check-config,
 * beside a running node): 0 (it is, or no state or id yet), HIE_ECONFIG (another key), or
 * a storage error. */
struct hie_mpi_key;
HIE_MUST_CHECK int hie_node__state_key_check_ro(const char *data_dir,
    const struct hie_mpi_key *key);
HIE_MUST_CHECK int hie_node__state_open(node_state_t **out, const char *data_dir,
    uint64_t map_bytes, const char *node_id, node_metrics_t *metrics);
void hie_node__state_close(node_state_t **st);
/* The FSM table the command log drives (apply runs on the log thread only). */
hie_cluster_fsm_t hie_node__state_fsm(node_state_t *st);
MDB_env *hie_node__state_env(node_state_t *st);
/* Loads the MPI data key (hie_mpi_key_load checks: regular file, mode 0600 or stricter, 32
 * bytes), reopens the MPI store with it and starts its match pool of match_threads threads
 * (0: none; hie/mpi_store.h). Call once, before the log replays. Returns 0 or the error. */
HIE_MUST_CHECK int hie_node__state_mpi_key_load(node_state_t *st, const char *path,
    unsigned match_threads);
/* A connection's queue of frames to write (edge.c). */
typedef struct node_wbuf {
    struct node_wbuf *next;
    uint8_t *buf;                /* hie_mem, len bytes */
    size_t len, off;             /* off: bytes already written */
    bool tried;                  /* SSL_write took none of it yet asked to be called again */
} node_wbuf_t;
/* Merges the frames queued after *head into it, in order, while the total stays within max
 * bytes (one buffer, so one TLS record and one write). Not when the head is partly written or
 * a write of it must be repeated (OpenSSL wants the same bytes again), nor when memory is
 * short: the queue is then left as it was. Updates *tail when the last frame is merged.
 * Returns the number of frames merged into the head. */
size_t hie_node__wq_merge(node_wbuf_t **head, node_wbuf_t **tail, size_t max);

struct hie_mpi_store;
struct hie_mpi_members;
struct hie_mpi_key;
struct hie_mpi_sealer;
struct hie_mpi_pool;
/* The MPI's match pool, or NULL (none started). */
struct hie_mpi_pool *hie_node__state_mpi_pool(node_state_t *st);
/* The MPI store (never NULL; without a key its operations answer unavailable) and its key
 * (NULL when none is configured). */
struct hie_mpi_store *hie_node__state_mpi(node_state_t *st);
struct node_consent *hie_node__state_consent(node_state_t *st);
struct node_audit *hie_node__state_audit(node_state_t *st);
struct node_queue *hie_node__state_queue(node_state_t *st);
struct node_subs *hie_node__state_subs(node_state_t *st);
struct node_repo *hie_node__state_repo(node_state_t *st);
const struct hie_mpi_key *hie_node__state_mpi_key(node_state_t *st);
/* Readers (any thread, own read txn): an organization by id. [out] *org owned by arena.
 * Returns 0, HIE_ENOTFOUND, HIE_ECORRUPT, HIE_ESTORAGE. */
HIE_MUST_CHECK int hie_node__state_org_get(node_state_t *st, const char *org_id,
    hie_arena_t *arena, hie_org_t **org);
/* The same in txn (a read or write txn of this state), or in its own when txn is NULL. */
HIE_MUST_CHECK int hie_node__state_org_get_in(node_state_t *st, MDB_txn *txn,
    const char *org_id, hie_arena_t *arena, hie_org_t **org);
/* The stored result for (requester, request_id) if that request was applied already as a
 * command of kind (a Command body case). One of another kind is HIE_ENOTFOUND: the caller
 * proposes its command, and apply refuses it (the id was used for another request).
 * [out] *result owned by arena. Returns 0, HIE_ENOTFOUND, HIE_ECORRUPT, HIE_ESTORAGE. */
HIE_MUST_CHECK int hie_node__state_dedup_get(node_state_t *st, const char *requester,
    const char *request_id, int kind, hie_arena_t *arena, hie_command_result_t **result);
/* Calls fn for every organization in id order (at most HIE_ORGS_MAX). fn returns non-zero to
 * stop. Returns 0 or an error. */
HIE_MUST_CHECK int hie_node__state_org_each(node_state_t *st, hie_arena_t *arena,
    int (*fn)(void *ctx, hie_org_t *org), void *ctx);
HIE_MUST_CHECK int hie_node__state_applied_index(node_state_t *st, uint64_t *out);
/* The rules clock after the last command applied (0 before any), and the time that command
 * was held to (node_apply_t.rules_ms). */
int64_t hie_node__state_rules_ms(node_state_t *st);
int64_t hie_node__state_rules_now_ms(node_state_t *st);
/* Lets batches of audit records share a state commit (sm.c; the node turns it on before the
 * log replays; off, every apply commits, as callers of fsm.apply other than the log expect).
 * Log thread, or before it starts. */
void hie_node__state_defer_commits(node_state_t *st, bool on);
/* The last index whose apply is committed (any thread), and a wait (any thread but the log
 * thread) until it reaches index: 0, or HIE_ETIMEDOUT after timeout_ms. */
uint64_t hie_node__state_committed_index(node_state_t *st);
HIE_MUST_CHECK int hie_node__state_wait_committed(node_state_t *st, uint64_t index,
    uint32_t timeout_ms);

/* ---- consent and audit state (consent_state.c, audit_state.c) ------------------------------
 * Both keep their databases in the state environment. Apply runs on the log thread inside the
 * state machine's write transaction; readers take the caller's read transaction. */
typedef struct node_apply {
    MDB_txn *txn;                     /* the state machine's write transaction */
    hie_arena_t *arena;               /* results live here */
    const hie_command_t *cmd;
    uint64_t index;                   /* log index */
    hie_command_result_t *res;        /* out: the result (a rejection sets code/field/message) */
    struct hie_mpi_store *mpi;
    const struct hie_mpi_key *key;    /* NULL: no data key (consent and audit unavailable) */
    int64_t rules_ms;                 /* the time rules are decided by: the rules clock (the
                                       * latest command time applied so far, this one's
                                       * included) once it has passed 2026-11-30T21:30Z, the
                                       * command's own time before (sm.c) */
} node_apply_t;
/* Records a rejection: nothing was written (callers check before they write). */
static inline int
node_apply_reject(node_apply_t *a, Hie__V1__ErrorCode code, const char *field,
    const char *message)
{
    a->res->code = code;
    a->res->field = (char *)(uintptr_t)(field != NULL ? field : "");
    a->res->message = (char *)(uintptr_t)message;
    return 0;
}

typedef struct node_consent node_consent_t;
/* Opens (creating) consent_dir, consent_rule and consent_pat in env. Returns 0 or an error. */
HIE_MUST_CHECK int hie_node__consent_open(node_consent_t **out, MDB_env *env);
void hie_node__consent_close(node_consent_t **c);
/* Applies consent_submit or consent_revoke. Returns 0 (applied or rejected) or a storage
 * error (the caller stops the node). Log thread only. */
HIE_MUST_CHECK int hie_node__consent_apply(node_consent_t *c, node_apply_t *a);
/* The directives on file for the record identity rec_hash, oldest first (active ones only
 * unless include_inactive, which adds the 224 revoked ones submitted last).
 * [out] *out, *n in arena; *revoked_not_listed: older revoked ones left out.
 * Returns 0 or a storage error. */
HIE_MUST_CHECK int hie_node__consent_list(node_consent_t *c, MDB_txn *txn,
    const uint8_t *rec_hash, bool include_inactive, hie_arena_t *arena,
    Hie__V1__ConsentDirective ***out, size_t *n, uint32_t *revoked_not_listed);
/* A40 merges (log thread, in apply; both do nothing for commands before 2026-11-30T21:45Z
 * by the rules clock): merge_check, before the MPI applies the merge, sets *fits false when
 * prior and survivor have more directives in force together than one record may have, or
 * their EUIDs together more than a decision reads (the caller refuses the merge); merge,
 * after it, moves prior's directives (in force and revoked) to survivor, which decisions read.
 * Return 0 or a storage error. */
HIE_MUST_CHECK int hie_node__consent_merge_check(node_consent_t *c, node_apply_t *a,
    const uint8_t *prior, const uint8_t *survivor, bool *fits);
HIE_MUST_CHECK int hie_node__consent_merge(node_consent_t *c, node_apply_t *a,
    const uint8_t *prior, const uint8_t *survivor);
/* Once, at the first command the rules clock puts at or after 2026-11-30T21:45Z: the
 * directives that merges applied before then left on the prior records move to the records
 * those live on as (decisions read only those), as a merge since moves them. Nothing to do
 * after (a flag in the state). Returns 0, HIE_EUNAVAIL (no data key: the node stops until
 * one is configured) or a storage error. Log thread, in apply. */
HIE_MUST_CHECK int hie_node__consent_migrate(node_consent_t *c, node_apply_t *a);
/* One directive by id. Returns 0, HIE_ENOTFOUND or a storage error. */
HIE_MUST_CHECK int hie_node__consent_get(node_consent_t *c, MDB_txn *txn, const char *id,
    hie_arena_t *arena, Hie__V1__ConsentDirective **out);
/* The compiled directives of every source record of euid (spans valid until txn ends), at
 * most cap. members: euid's records as a reader of txn found them (NULL: looked up here).
 * Returns 0, HIE_ELIMIT (more than cap: the caller fails closed) or a storage
 * error. */
HIE_MUST_CHECK int hie_node__consent_rules(node_consent_t *c, struct hie_mpi_store *mpi,
    MDB_txn *txn, const char *euid, const struct hie_mpi_members *members, hie_arena_t *arena,
    hie_span_t *rules, size_t cap, size_t *n);

typedef struct node_audit node_audit_t;
struct hie_audit_tree;
/* Opens the audit databases and the Merkle tree in env (read_only: for hiectl audit verify on
 * a stopped node's files; nothing is created). Returns 0 or an error. */
HIE_MUST_CHECK int hie_node__audit_open(node_audit_t **out, MDB_env *env, bool read_only);
void hie_node__audit_close(node_audit_t **au);
/* Applies audit_append, audit_batch or audit_checkpoint. Log thread only; same contract as
 * consent. */
HIE_MUST_CHECK int hie_node__audit_apply(node_audit_t *au, node_apply_t *a);
/* Appends one audit record (the body of audit_append, or the audit part of a push) in a's
 * transaction. Returns 0 or a storage error. Log thread only. */
HIE_MUST_CHECK int hie_node__audit_append(node_audit_t *au, node_apply_t *a,
    const Hie__V1__AuditAppendCommand *ac);
/* Puts the index entries apply held back (sorted, through one cursor) into txn: before every
 * commit of the state transaction. Returns 0 or a storage error. Log thread only. */
HIE_MUST_CHECK int hie_node__audit_txn_flush(node_audit_t *au, MDB_txn *txn);
/* Forgets them: the transaction was aborted. NULL-safe. */
void hie_node__audit_txn_drop(node_audit_t *au);
/* The tree's size and root (32 bytes). */
HIE_MUST_CHECK int hie_node__audit_head(node_audit_t *au, MDB_txn *txn, uint64_t *size,
    uint8_t *root);
/* The stored leaf entry (txn memory) and a stored sealed subject. HIE_ENOTFOUND if absent. */
HIE_MUST_CHECK int hie_node__audit_record(node_audit_t *au, MDB_txn *txn, uint64_t leaf,
    hie_span_t *out);
HIE_MUST_CHECK int hie_node__audit_subject(node_audit_t *au, MDB_txn *txn, uint64_t leaf,
    uint32_t pos, hie_span_t *sealed);
/* The first record or sealed subject stored at or past leaf `size` (the tree's size), in
 * *leaf: HIE_ECORRUPT when there is one (the tree was cut back and records left), 0 when
 * none, HIE_ESTORAGE. */
HIE_MUST_CHECK int hie_node__audit_beyond(node_audit_t *au, MDB_txn *txn, uint64_t size,
    uint64_t *leaf);
/* Inclusion proof of leaf in the tree of size, and consistency proof size1 -> size2, as
 * protobuf bytes in arena. */
HIE_MUST_CHECK int hie_node__audit_proof(node_audit_t *au, MDB_txn *txn, uint64_t leaf,
    uint64_t size, hie_arena_t *arena, ProtobufCBinaryData **out, size_t *n);
HIE_MUST_CHECK int hie_node__audit_consistency(node_audit_t *au, MDB_txn *txn, uint64_t size1,
    uint64_t size2, hie_arena_t *arena, ProtobufCBinaryData **out, size_t *n);
enum node_audit_index { AUDIT_INDEX_PATIENT, AUDIT_INDEX_ORG, AUDIT_INDEX_BREAK_GLASS };
/* Walks an index in (time, leaf) order from start (a stored value, or empty for the first),
 * calling fn with each value (patient: time8 leaf8 pos2; org and break-glass: time8 leaf8)
 * until fn returns non-zero or max values were seen. The patient's key: index keys (each
 * EUID's version 2 and version 1, for each EUID the patient had), whose entries are merged;
 * fn learns which key a value came from (0 for the other indexes); for the patient index fn
 * may return 2: nothing further under that key matters (the others go on). leaf_end (not 0):
 * the patient index's walk stops at the bucket of that leaf (the caller takes no leaf at or
 * past it). */
typedef int (*node_audit_scan_fn)(void *ctx, const uint8_t *val, size_t len, size_t key);
/* fn's key when the patient index's walk stops for its budget between buckets: val is where
 * the next page resumes (time 0, the next bucket's first leaf, position 0), matching no entry.
 * The walk's seeks (one per bucket and key) have a budget of max of their own. */
#define NODE_AUDIT_SCAN_RESUME SIZE_MAX
#define NODE_AUDIT_SCAN_KEYS_MAX 130u /* 2 * (1 + HIE_MPI_IDENTITY_SPANS_MAX): audit_report.c */
HIE_MUST_CHECK int hie_node__audit_scan(node_audit_t *au, MDB_txn *txn,
    enum node_audit_index which, hie_span_t key, hie_span_t start, size_t max,
    uint64_t leaf_end, node_audit_scan_fn fn, void *ctx);
/* Whether an index holds an entry: patient (key: an index key of either version; val: time8
 * leaf8 pos2), organization (key: the org id; val: time8 leaf8), break-glass (val: time8
 * leaf8). Returns 0, HIE_ENOTFOUND, HIE_ESTATE (a patient index in the former layout, opened
 * read-only: not checkable) or a storage error. For hiectl audit verify. */
HIE_MUST_CHECK int hie_node__audit_index_has(node_audit_t *au, MDB_txn *txn,
    enum node_audit_index which, hie_span_t key, hie_span_t val);
/* How many entries an index holds. */
HIE_MUST_CHECK int hie_node__audit_index_count(node_audit_t *au, MDB_txn *txn,
    enum node_audit_index which, uint64_t *count);
/* Calls fn with each stored checkpoint in size order (at most max). */
/* Whether the tree still extends the last checkpoint stored (the node signed it): at least
 * its size, and its root at that size. 0 (or no checkpoint yet), HIE_ECORRUPT with *size the
 * checkpoint's size (the tree was cut back or its hashes changed since), HIE_ESTORAGE. A node
 * must not sign a second, conflicting head for a size it signed before. Stored notes that do
 * not parse (kept as given before apply checked them) are passed over: *skipped. With vkey,
 * HIE_EDENIED when the last checkpoint is not signed by vkey for origin (the node's key or
 * origin was changed: every checkpoint auditors hold would stop verifying). */
HIE_MUST_CHECK int hie_node__audit_extends_last(node_audit_t *au, MDB_txn *txn,
    const hie_audit_vkey_t *vkey, const char *origin, uint64_t *size, unsigned *skipped);
HIE_MUST_CHECK int hie_node__audit_checkpoints(node_audit_t *au, MDB_txn *txn, size_t max,
    int (*fn)(void *ctx, uint64_t size, hie_span_t note), void *ctx);
struct hie_audit_tree *hie_node__audit_tree(node_audit_t *au);

typedef struct node_queue node_queue_t;
/* Delivery queues (queue_state.c): q_msg and q_meta in the state environment. */
HIE_MUST_CHECK int hie_node__queue_open(node_queue_t **out, MDB_env *env);
void hie_node__queue_close(node_queue_t **q);
/* Applies push (enqueue, or store in the repository, + audit record), delivery_ack,
 * dead_letter or redrive. Log thread only. */
struct node_repo;
HIE_MUST_CHECK int hie_node__queue_apply(node_queue_t *q, node_audit_t *au,
    struct node_repo *repo, node_apply_t *a);
/* Messages queued for org. */
HIE_MUST_CHECK int hie_node__queue_depth(node_queue_t *q, MDB_txn *txn, const char *org,
    uint64_t *count);
/* The messages waiting in org's queue, and the bytes they and its dead letters hold (stored
 * form), as txn sees them. */
HIE_MUST_CHECK int hie_node__queue_totals(node_queue_t *q, MDB_txn *txn, const char *org,
    uint64_t *count, uint64_t *bytes);
/* Calls fn with org's queued messages from from_seq on, in order, at most max; fn returns
 * non-zero to stop (a positive value is not an error). msg is txn memory. */
HIE_MUST_CHECK int hie_node__queue_scan(node_queue_t *q, MDB_txn *txn, const char *org,
    uint64_t from_seq, size_t max, int (*fn)(void *ctx, uint64_t seq, hie_span_t msg),
    void *ctx);

/* Appends m to m->recipient_org's queue in a's transaction (accepted_ms and attempts are the
 * caller's). [out] *seq. Returns 0, HIE_ELIMIT (queue full; nothing written) or an error. */
HIE_MUST_CHECK int hie_node__queue_enqueue(node_queue_t *q, node_apply_t *a,
    Hie__V1__QueuedMessage *m, uint64_t *seq);
/* True when org's queue still holds seq (not acknowledged, not dead-lettered). */
bool hie_node__queue_has(node_queue_t *q, MDB_txn *txn, const char *org, uint64_t seq);
/* Calls fn with each dead letter (of org from seq from_seq; or, org NULL, of everyone, from
 * (from_org, from_seq) when from_org is set), at most max; fn returning > 0 stops it. */
HIE_MUST_CHECK int hie_node__queue_dead_scan(node_queue_t *q, MDB_txn *txn, const char *org,
    const char *from_org, uint64_t from_seq, size_t max,
    int (*fn)(void *ctx, hie_span_t msg, uint64_t seq), void *ctx);

typedef struct node_repo node_repo_t;
/* The document repository (repo_state.c): repo_doc and repo_rec in the state environment. */
HIE_MUST_CHECK int hie_node__repo_open(node_repo_t **out, MDB_env *env);
void hie_node__repo_close(node_repo_t **r);
/* Stores m (recipient "" pushes) under its message id, indexed by rec_hash. Log thread. */
HIE_MUST_CHECK int hie_node__repo_store(node_repo_t *r, node_apply_t *a,
    const Hie__V1__QueuedMessage *m, hie_span_t rec_hash);
/* One stored document (txn memory); HIE_ENOTFOUND. */
HIE_MUST_CHECK int hie_node__repo_get(node_repo_t *r, MDB_txn *txn, const char *id,
    hie_span_t *stored);
/* Calls fn with each document of rec_hash (at most max); fn returns non-zero to stop. */
HIE_MUST_CHECK int hie_node__repo_each(node_repo_t *r, MDB_txn *txn, const uint8_t *rec_hash,
    size_t max, int (*fn)(void *ctx, hie_span_t id, hie_span_t stored), void *ctx);

/* Responder registration (a responder command) and lookup. */
HIE_MUST_CHECK int hie_node__repo_responder_apply(node_repo_t *r, node_apply_t *a);
/* Retracts a repository document (RetractCommand): its author or the operator; anything else
 * is rejected NOT_FOUND. Log thread. */
HIE_MUST_CHECK int hie_node__repo_retract_apply(node_repo_t *r, node_apply_t *a);
/* *used when id names a repository document, retracted or not (ids are never used twice). */
HIE_MUST_CHECK int hie_node__repo_id_used(node_repo_t *r, MDB_txn *txn, const char *id,
    bool *used);
bool hie_node__repo_is_responder(node_repo_t *r, MDB_txn *txn, const char *org);

/* One named database of the state environment and where its handle goes. */
typedef struct node_dbi_spec {
    const char *name;
    unsigned flags; /* MDB_CREATE and MDB_DUPSORT, ... */
    MDB_dbi *dbi;
} node_dbi_spec_t;
/* Opens each of specs[0..n) in one write transaction of env (the state's modules at open).
 * Returns 0 or HIE_ESTORAGE; nothing is kept open on failure. */
HIE_MUST_CHECK int hie_node__dbis_open(MDB_env *env, const node_dbi_spec_t *specs, size_t n);
typedef struct node_subs node_subs_t;
/* Subscriptions and ADT fan-out (subs_state.c): subs, sub_org, sub_all, sub_rec, sub_roster,
 * adt_visit in the state environment. */
HIE_MUST_CHECK int hie_node__subs_open(node_subs_t **out, MDB_env *env);
void hie_node__subs_close(node_subs_t **s);
/* Applies subscribe, roster, unsubscribe or adt (notices queued with hie_node__queue_enqueue,
 * audited with hie_node__audit_append). Log thread only. */
HIE_MUST_CHECK int hie_node__subs_apply(node_subs_t *s, node_queue_t *q, node_audit_t *au,
    node_apply_t *a);
/* Calls fn with each subscription (of org, or everyone's when org is NULL), in id order, at
 * most max; fn returns non-zero to stop (a positive value is not an error). Reads every
 * subscription record, filtered: for the operator, not the hot path. */
HIE_MUST_CHECK int hie_node__subs_scan(node_subs_t *s, MDB_txn *txn, const char *org,
    size_t max, hie_arena_t *arena, int (*fn)(void *ctx, const Hie__V1__Subscription *sub),
    void *ctx);
/* An A40 merge (rules since 2026-12-01T03:00Z): every roster naming the prior record names
 * the survivor instead, so its subscribers keep hearing of the patient. */
HIE_MUST_CHECK int hie_node__subs_merge(node_subs_t *s, node_apply_t *a, const uint8_t *prior,
    const uint8_t *survivor);
HIE_MUST_CHECK int hie_node__subs_get(node_subs_t *s, MDB_txn *txn, const char *id,
    hie_arena_t *arena, Hie__V1__Subscription **out);
/* Calls fn with the id of each subscription whose roster holds rec_hash / of org's
 * ALL_MY_PATIENTS subscriptions. */
HIE_MUST_CHECK int hie_node__subs_for_record(node_subs_t *s, MDB_txn *txn,
    const uint8_t *rec_hash, int (*fn)(void *ctx, hie_span_t id), void *ctx);
HIE_MUST_CHECK int hie_node__subs_all_of(node_subs_t *s, MDB_txn *txn, const char *org,
    int (*fn)(void *ctx, hie_span_t id), void *ctx);
/* The event a replay from from_event (0: the oldest retained) starts at, into *first. Returns
 * 0, HIE_EINVAL (never issued) or HIE_ENOTFOUND (no longer retained). */
HIE_MUST_CHECK int hie_node__subs_replay_first(const Hie__V1__Subscription *sub,
    uint64_t from_event, uint64_t *first);
/* The retained notification event of sub, into arena. Returns 0, HIE_ENOTFOUND, or an error. */
HIE_MUST_CHECK int hie_node__subs_retained(node_subs_t *s, MDB_txn *txn,
    const Hie__V1__Subscription *sub, uint64_t event, hie_arena_t *arena,
    Hie__V1__QueuedMessage **out);
/* Calls fn with each row of sender's visit's event: the patient it is about (the sender's
 * record, 16 bytes; empty for a row from before rows named it) and the subscription ids that
 * got it (0-separated, txn memory). fn returns 0, 1 (stop) or an error. */
HIE_MUST_CHECK int hie_node__subs_visit_each(node_subs_t *s, MDB_txn *txn, const char *sender,
    const char *visit, int event, int (*fn)(void *ctx, hie_span_t patient, hie_span_t ids),
    void *ctx);

/* ---- requests between edge and workers (edge.c, worker.c) --------------------------------- */
/* NODE_REQ_DELIVERY: a frame the delivery thread sends on conn_id (no request, no in-flight
 * slot); the edge drops it when the connection is gone. */
enum node_req_type { NODE_REQ_AUTH = 1, NODE_REQ_ENVELOPE = 2, NODE_REQ_DELIVERY = 3 };
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
    uint32_t cache_slot;                      /* worker: its reply cache slot + 1 (0: none yet) */
    bool receiver_moved;                      /* NODE_REQ_DELIVERY without a frame: the member
                                                 now receives on another connection */
    bool receiving;                           /* the reply to a Receive: deliveries come on
                                                 this connection (the edge says when it ends) */
    uint32_t in_bytes;                        /* the request's frame: the edge's in-flight
                                                 bytes until its reply comes back */
} node_req_t;

void hie_node__req_destroy(node_req_t **req);

/* ---- threads ----------------------------------------------------------------------------- */
typedef struct node_ctx {
    node_config_t cfg;
    node_metrics_t metrics;
    void *zctx;
    node_state_t *state;
    hie_cluster_log_t *log;
    bool replay_stopped;        /* a stop signal ended the startup replay (main) */
    _Atomic bool stopping;      /* the node is stopping: long work (MPI training) gives up */
    struct stat crl_seen;       /* the CRL file as stat'd before its first load (main) */
    SSL_CTX *ssl_ctx_initial;   /* owned by main; each edge thread takes its own reference */
    int listen_fd;              /* owned by main; every edge thread accepts from it */
    _Atomic uint32_t edge_load[NODE_EDGES_MAX]; /* open connections per edge thread */
    hie_consent_policy_t consent_policy;  /* the implicit policy, from cfg.consent_* */
    hie_audit_signer_t *audit_signer;     /* signs checkpoints; <data_dir>/audit.key */
    bool audit_key_created;              /* audit.key was made at this start */
    struct node_org_conns *org_conns;     /* connections per organization (edge threads) */
    char audit_vkey[HIE_AUDIT_VKEY_TEXT_BYTES_MAX]; /* its verifier key, for reports */
    EVP_MD *sha256;  /* OpenSSL's SHA-256, fetched once by main (immutable, any thread) for
                      * the audit subjects' commitments; NULL (tests, tools): libsodium's */
    struct node_replay_gate *replay_gate; /* replays per subscription (adt.c); NULL: none */
} node_ctx_t;
/* Replays: each decides up to 1,000 notifications again and audits each one, so a member
 * looping on replay would grow the audit log fast. At most HIE_REPLAYS_PER_WINDOW per
 * subscription in HIE_REPLAY_WINDOW_MS, node-wide (any worker). */
typedef struct node_replay_gate node_replay_gate_t;
HIE_MUST_CHECK int hie_node__replay_gate_create(node_replay_gate_t **out);
void hie_node__replay_gate_destroy(node_replay_gate_t **g);
/* True when a replay of (org, subscription_id) may go now (and counts it). Any thread. */
bool hie_node__replay_gate_pass(node_replay_gate_t *g, const char *org,
    const char *subscription_id);

/* Open member connections per organization, across the edge threads (edge.c): a member may
 * hold at most cfg.connections_per_org_max, so one cannot take every slot from the others. */
typedef struct node_org_conns node_org_conns_t;
HIE_MUST_CHECK int hie_node__org_conns_create(uint32_t connections_max, node_org_conns_t **out);
void hie_node__org_conns_destroy(node_org_conns_t **oc);
/* Counts one more connection of org; false (nothing counted) when it holds max already. */
bool hie_node__org_conns_take(node_org_conns_t *oc, const char *org, uint32_t max);
void hie_node__org_conns_give(node_org_conns_t *oc, const char *org);
/* The bytes of large frames org's open connections have admitted (edge.c), node-wide; and
 * a change of them by delta. */
uint64_t hie_node__org_conns_admitted(node_org_conns_t *oc, const char *org);
void hie_node__org_conns_admit(node_org_conns_t *oc, const char *org, int64_t delta);
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

/* The delivery thread (delivery.c) and what workers tell it (node_dmsg_t over inproc PUSH to
 * NODE_EP_DELIVERY; each worker owns one PUSH socket). */
/* DMSG_CLOSED: from an edge thread (its own PUSH), a receiving connection ended. */
enum node_dmsg_type {
    DMSG_RECEIVE = 1,
    DMSG_KICK = 2,
    DMSG_ACKED = 3,
    DMSG_FORWARD = 4,
    DMSG_CLOSED = 5
};
typedef struct node_dmsg {
    uint32_t type;
    uint32_t window;
    uint64_t conn_id;
    uint32_t edge_index;
    uint32_t acked;
    char org[HIE_ORG_ID_BYTES_MAX + 1];
    uint8_t *frame;           /* DMSG_FORWARD: a whole frame (hie_mem) the thread now owns */
    size_t frame_len;
} node_dmsg_t;
typedef struct node_delivery node_delivery_t;
HIE_MUST_CHECK int hie_node__delivery_start(node_delivery_t **out, node_ctx_t *ctx);
void hie_node__delivery_join(node_delivery_t **d);
/* Hands a frame to org's receiving connection (dropped when it has none). Owns frame. */
void hie_node__delivery_forward(void *sock, const char *org, uint8_t *frame, size_t len);
/* Sends one notification on sock (never blocks; a full or closed queue drops it, logged):
 * whether it was queued. */
bool hie_node__delivery_notify(void *sock, enum node_dmsg_type type, const char *org,
    uint64_t conn_id, uint32_t edge_index, uint32_t n);

/* The audit checkpoint thread (checkpointer.c); not started without a data key. */
typedef struct node_checkpointer node_checkpointer_t;
HIE_MUST_CHECK int hie_node__checkpointer_start(node_checkpointer_t **out, node_ctx_t *ctx);
void hie_node__checkpointer_join(node_checkpointer_t **c);

typedef struct node_http node_http_t;
HIE_MUST_CHECK int hie_node__http_start(node_http_t **out, node_ctx_t *ctx);
void hie_node__http_stop(node_http_t **h);

/* Sends a control verb to every edge thread and waits for all answers: "reload" with an
 * SSL_CTX (each edge gets its own reference; the caller keeps its own), or "drain". Returns 0
 * or the first failure. */
HIE_MUST_CHECK int hie_node__edge_ctl(node_ctx_t *ctx, const char *verb, SSL_CTX *new_ctx,
    uint32_t timeout_ms);
/* Closes every open session of org on every edge thread (it was suspended: its open
 * connections would otherwise go on receiving deliveries and forwarded queries). Returns 0
 * or the first failure. */
HIE_MUST_CHECK int hie_node__edge_cut_org(node_ctx_t *ctx, const char *org_id);
/* The window in which the CRLs in crl_file are valid, in ms since the epoch: the latest
 * lastUpdate and the earliest nextUpdate; 0 for either when there is no CRL or it has none.
 * Outside it OpenSSL refuses every member's certificate. */
typedef struct node_crl_window {
    int64_t last_update_ms, next_update_ms;
} node_crl_window_t;
node_crl_window_t hie_node__crl_window(const char *crl_file);
/* Stores crl_file's window in the metrics (/healthz and the expiry watch compare it with the
 * time at each use: a CRL not valid yet becomes valid without a reload). */
void hie_node__crl_window_store(node_metrics_t *m, const char *crl_file);
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
/* The same with a deadline (hie_cluster_submit_send_by: the log drops what it reads after
 * deadline_ns, answering HIE_ETIMEDOUT; 0: none). */
HIE_MUST_CHECK int hie_node__submit_send_by(node_submitter_t *s, const hie_command_t *cmd,
    uint64_t deadline_ns, uint64_t *token);
/* The same for a command already packed (hie_proto_batch_pack). */
HIE_MUST_CHECK int hie_node__submit_send_packed(node_submitter_t *s, hie_span_t cmd,
    uint64_t deadline_ns, uint64_t *token);
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
/* PIX and PDQ reads in the caller's read txn (NULL: one of their own); members (NULL: not
 * wanted) as hie_mpi_store_pix and hie_mpi_store_pdq give them. */
HIE_MUST_CHECK int hie_node__mpi_pix(node_ctx_t *ctx, MDB_txn *txn, const Hie__V1__PixQuery *q,
    hie_arena_t *arena, Hie__V1__PixReply **reply, struct hie_mpi_members *members,
    node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__mpi_pdq(node_ctx_t *ctx, MDB_txn *txn, const Hie__V1__PdqQuery *q,
    hie_arena_t *arena, Hie__V1__PdqReply **reply, struct hie_mpi_members **members,
    node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__mpi_review_list(node_ctx_t *ctx,
    const Hie__V1__ReviewListRequest *q, hie_arena_t *arena, Hie__V1__ReviewListReply **reply,
    node_mpi_err_t *e);
/* ---- disclosures: consent decisions and the audit before the reply (disclose.c) ---------- */
/* Random bytes for the audit records' salts and nonces, drawn from the kernel a block at a
 * time: one getrandom call per ~100 records instead of one per record (it was 5% of a
 * worker's time). One per worker, used on its thread only; bytes are wiped as they are handed
 * out, and the rest when the worker ends. Zeroed (calloc) means empty. */
#define NODE_RAND_BYTES 4096u
typedef struct node_rand {
    uint8_t buf[NODE_RAND_BYTES];
    size_t fresh;                    /* unused bytes, at the end of buf */
    /* The worker's reusable state for its audit records (disclose.c), also per worker: a
     * digest context for the commitments (EVP_Digest allocates one per call), and the subject
     * index key's SipHash subkey for the index secret it was made from. hie_node__rand_end
     * frees and wipes them. */
    EVP_MD_CTX *md;
    struct hie_mpi_sealer *sealer;   /* seals the subjects (XAES-256-GCM, made on first use) */
    MDB_txn *rtxn;                   /* a reset read txn of the state, renewed for each read */
    bool subkey_ok;
    uint8_t subkey_secret[16];
    uint8_t subkey[16];
} node_rand_t;
/* n random bytes into out, from r (refilled when short), or straight from the kernel when r is
 * NULL or n is more than a block. */
void hie_node__rand(node_rand_t *r, uint8_t *out, size_t n);
/* Frees and wipes r's hashing state and random bytes (the worker's end). */
void hie_node__rand_end(node_rand_t *r);
/* A read txn of the state: r's reset one renewed (no allocation, no reader-table lock), else a
 * new one (r may be NULL). Returns 0 or HIE_ESTORAGE. End it with hie_node__rtxn_end, which
 * resets it and keeps it in r for the next read (or aborts it). */
HIE_MUST_CHECK int hie_node__rtxn_begin(node_ctx_t *ctx, node_rand_t *r, MDB_txn **txn);
void hie_node__rtxn_end(node_rand_t *r, MDB_txn *txn);
/* Who asks, from the certificate, the registry and the envelope. */
typedef struct node_who {
    const char *org_id;
    const hie_org_t *org;            /* registry record (roles) */
    Hie__V1__PurposeOfUse purpose;
    const char *request_id;          /* the envelope id: the audit record's dedup key */
    node_rand_t *rand;               /* the worker's random bytes; NULL: from the kernel */
} node_who_t;
/* The audit command of one exchange. needed: the reply (or error) may leave only after the
 * command is committed; build_rc != 0: it could not be built, so nothing may leave (the
 * worker answers UNAVAILABLE). */
typedef struct node_audit_cmd {
    bool needed;
    int build_rc;
    hie_command_t cmd;
    const char *kick_org;            /* push: the recipient whose queue grew (delivery.c) */
    bool forwarded;                  /* record query: waiting for responders (worker.c) */
} node_audit_cmd_t;
/* PIX and PDQ with the consent decision per patient: a patient consent hides is answered as
 * if absent. Each returns 0 with *reply (arena), or the error code with *e filled; either way
 * *audit says what must be committed first. Worker threads. */
HIE_MUST_CHECK int hie_node__pix_prepare(node_ctx_t *ctx, const node_who_t *who,
    const Hie__V1__PixQuery *q, hie_arena_t *arena, Hie__V1__PixReply **reply,
    node_audit_cmd_t *audit, node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__pdq_prepare(node_ctx_t *ctx, const node_who_t *who,
    const Hie__V1__PdqQuery *q, hie_arena_t *arena, Hie__V1__PdqReply **reply,
    node_audit_cmd_t *audit, node_mpi_err_t *e);
/* Consent exchanges (consent_exchange.c): submit, revoke and list for a member's own patient.
 * requester is the org id (or "@operator"). */
HIE_MUST_CHECK int hie_node__consent_submit_xchg(node_ctx_t *ctx, node_submitter_t *sub,
    const char *requester, const char *id, const Hie__V1__ConsentSubmitRequest *req,
    hie_arena_t *arena, Hie__V1__ConsentSubmitReply **reply, node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__consent_revoke_xchg(node_ctx_t *ctx, node_submitter_t *sub,
    const char *requester, const char *id, const Hie__V1__ConsentRevokeRequest *req,
    hie_arena_t *arena, Hie__V1__ConsentRevokeReply **reply, node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__consent_list_xchg(node_ctx_t *ctx, const char *requester,
    const Hie__V1__ConsentListRequest *req, hie_arena_t *arena,
    Hie__V1__ConsentListReply **reply, node_mpi_err_t *e);
/* Disclosure reports for auditors (audit_report.c); the report is itself audited: same
 * contract as the prepare functions above. */
HIE_MUST_CHECK int hie_node__audit_report_prepare(node_ctx_t *ctx, const node_who_t *who,
    const Hie__V1__AuditReportRequest *q, hie_arena_t *arena, Hie__V1__AuditReportReply **reply,
    node_audit_cmd_t *audit, node_mpi_err_t *e);
/* One patient an exchange touched, and what the consent decision let out about them. */
typedef struct node_subject {
    const char *euid;
    hie_consent_decision_t decision;
    Hie__V1__PatientId **disclosed;  /* identifiers that leave the node (none when denied) */
    size_t n_disclosed;
    char **document_ids;             /* documents that leave the node (record query) */
    size_t n_document_ids;
} node_subject_t;
/* The audit_append body of one exchange (record and sealed subjects) into *out (arena), for
 * commands that carry their audit record (push). Returns 0 or an error. */
HIE_MUST_CHECK int hie_node__audit_body(node_ctx_t *ctx, const node_who_t *who,
    Hie__V1__AuditAction action, Hie__V1__ErrorCode outcome, const node_subject_t *subjects,
    size_t n, hie_arena_t *arena, Hie__V1__AuditAppendCommand **out);
/* The handling marks a permit puts on what is passed on (refrain NORDSCLCD and the 42 CFR 2.32
 * notice for Part 2 data, the confidentiality high-water mark), in arena; NULL when out of
 * memory (the caller fails the exchange: nothing leaves without its marks). */
Hie__V1__Handling *hie_node__handling(const hie_consent_decision_t *d, hie_arena_t *arena);
/* Builds the audit command of one exchange (action, outcome, subjects) into *out (arena);
 * out->build_rc says whether it could be built. */
void hie_node__audit_build(node_ctx_t *ctx, const node_who_t *who,
    Hie__V1__AuditAction action, Hie__V1__ErrorCode outcome, const node_subject_t *subjects,
    size_t n, hie_arena_t *arena, node_audit_cmd_t *out);
/* The review queue for a member with the operator role: identifiers of several organizations
 * leave the node, so the page is audited (action REVIEW_LIST, one subject per EUID it names,
 * the record identifiers as disclosed, excluded from §164.528 accounting as operations) and
 * cut where its EUIDs would be more than one record names (next_after_id goes on from there). */
HIE_MUST_CHECK int hie_node__review_list_prepare(node_ctx_t *ctx, const node_who_t *who,
    const Hie__V1__ReviewListRequest *q, hie_arena_t *arena, Hie__V1__ReviewListReply **reply,
    node_audit_cmd_t *audit, node_mpi_err_t *e);
/* The consent decision for one patient (EUID) in txn; fails closed (a DENY with reason
 * "evaluation-error", logged) on any error. */
void hie_node__consent_decide(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena,
    const node_who_t *who, const char *euid, Hie__V1__ConsentAction action, uint32_t labels,
    hie_consent_decision_t *out);
/* The same with euid's records as the reader of txn found them (members). */
void hie_node__consent_decide_members(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena,
    const node_who_t *who, const char *euid, const struct hie_mpi_members *members,
    Hie__V1__ConsentAction action, hie_consent_decision_t *out);
/* The same for a document: its labels, class (enum hie_consent_class) and own date. */
void hie_node__consent_decide_doc(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena,
    const node_who_t *who, const char *euid, Hie__V1__ConsentAction action, uint32_t labels,
    int doc_class, int64_t data_time_ms, hie_consent_decision_t *out);
/* Push (push.c): same contract as the prepare functions; on success *audit holds the push
 * command (queue + audit record) and kick_org. */
HIE_MUST_CHECK int hie_node__push_prepare(node_ctx_t *ctx, const node_who_t *who,
    const Hie__V1__PushRequest *req, hie_arena_t *arena, Hie__V1__PushReply **reply,
    node_audit_cmd_t *audit, node_mpi_err_t *e);
/* Whether org's queue has room (push.c): what waits for it and its dead letters hold less
 * than delivery.queue_bytes_max (a soft bound: requests decided at the same time may pass it
 * by a little), else OVERLOADED naming recipient_org. Returns 0 or the error set in e. */
HIE_MUST_CHECK int hie_node__queue_room(node_ctx_t *ctx, const char *org, node_mpi_err_t *e);
/* The bytes of documents org stored in the repository (counted since 2026-12-01T03:00Z). */
HIE_MUST_CHECK int hie_node__repo_bytes(node_repo_t *r, MDB_txn *txn, const char *org,
    uint64_t *bytes);
/* Seals a document for a queue: nonce(24) || AEAD(d), AD = message_id, into arena. */
HIE_MUST_CHECK int hie_node__doc_seal(node_ctx_t *ctx, const Hie__V1__Document *d,
    const char *message_id, hie_arena_t *arena, ProtobufCBinaryData *out);
/* ADT events and subscriptions (adt.c): same contract as the prepare functions (the adt
 * command is parked on); subscribe, roster and unsubscribe commit and wait. */
HIE_MUST_CHECK int hie_node__adt_prepare(node_ctx_t *ctx, node_submitter_t *sub,
    const node_who_t *who, const Hie__V1__AdtRequest *req, hie_arena_t *arena,
    Hie__V1__AdtReply **reply, node_audit_cmd_t *audit, node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__subscribe_xchg(node_ctx_t *ctx, node_submitter_t *sub,
    const node_who_t *who, const Hie__V1__SubscribeRequest *req, hie_arena_t *arena,
    Hie__V1__SubscribeReply **reply, node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__roster_xchg(node_ctx_t *ctx, node_submitter_t *sub,
    const node_who_t *who, const Hie__V1__RosterUpdate *req, hie_arena_t *arena,
    Hie__V1__RosterUpdateReply **reply, node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__unsubscribe_xchg(node_ctx_t *ctx, node_submitter_t *sub,
    const node_who_t *who, const Hie__V1__Unsubscribe *req, hie_arena_t *arena,
    Hie__V1__UnsubscribeReply **reply, node_mpi_err_t *e);
HIE_MUST_CHECK int hie_node__replay_xchg(node_ctx_t *ctx, node_submitter_t *sub,
    const node_who_t *who, const Hie__V1__ReplayRequest *req, hie_arena_t *arena,
    Hie__V1__ReplayReply **reply, node_mpi_err_t *e);
/* Record query and retrieval (query.c): same contract as the prepare functions. A query
 * about a patient that registered responders have records of also fills *fwd (in arena):
 * the worker forwards the query to them and completes it with hie_node__query_complete()
 * once they answered or the deadline passed; *audit is then left empty. */
#define NODE_QUERY_RESPONDERS_MAX 8u
#define NODE_QUERY_UNASKED_LISTED 56u
/* What the consent decisions on a query's documents add up to, for its audit record: the
 * decision of a disclosed document (a break-glass one first, so the override is flagged and
 * reported), the last denial, and how many documents were withheld. */
typedef struct node_query_tally {
    hie_consent_decision_t permit, deny;
    bool have_permit;
    uint32_t withheld;
} node_query_tally_t;
typedef struct node_query_fwd {
    size_t n;
    const char *orgs[NODE_QUERY_RESPONDERS_MAX];
    Hie__V1__PatientId **ids[NODE_QUERY_RESPONDERS_MAX]; /* each responder's own ids */
    size_t n_ids[NODE_QUERY_RESPONDERS_MAX];
    /* responders with a record of the patient that the query does not ask (over the limit):
     * listed in the reply as not asked, the first NODE_QUERY_UNASKED_LISTED by name */
    const char *unasked[NODE_QUERY_UNASKED_LISTED];
    size_t n_unasked, unasked_total;
    const char *euid;
    size_t limit;             /* the query's: the responders' entries decided past the
                               * repository's stop there (each costs a consent decision) */
    node_query_tally_t tally; /* the repository's documents, then the responders' */
} node_query_fwd_t;
HIE_MUST_CHECK int hie_node__query_prepare(node_ctx_t *ctx, const node_who_t *who,
    const Hie__V1__RecordQuery *q, hie_arena_t *arena, Hie__V1__RecordQueryReply **reply,
    node_audit_cmd_t *audit, node_query_fwd_t *fwd, node_mpi_err_t *e);
/* The frame forwarding q to one responder (arena holds nothing the frame needs); with q NULL
 * and document_id set, a retrieval of that document. */
HIE_MUST_CHECK int hie_node__query_forward_frame(node_ctx_t *ctx, const char *query_id,
    const node_who_t *who, const Hie__V1__RecordQuery *q, const char *document_id,
    Hie__V1__PatientId **ids, size_t n_ids, int64_t deadline_ms, uint8_t **buf, size_t *len);
/* Checks a responder's answer as a member's push is checked: at most 1,000 entries, each
 * field within the push limits, an error text of at most 256 bytes, and a whole document
 * only in the answer to a retrieval (retrieve). Returns NULL when it may be used, else the
 * field that is not. */
const char *hie_node__query_answer_check(const Hie__V1__QueryAnswer *a, bool retrieve);
/* hiectl delivery redrive (cmd->redrive): every dead letter it names decided again for its
 * recipient, with the patient's consent as it is now: the permitted ones in redrive.seqs,
 * and an audit record for each one decided (redrive.decided set; at most
 * HIE_REDRIVE_DECIDED_MAX). [out] *withheld: how many stay dead. Arena holds it all.
 * Returns 0, HIE_ENOTFOUND (no such recipient), HIE_EUNAVAIL or a storage error. */
HIE_MUST_CHECK int hie_node__redrive_decide(node_ctx_t *ctx, hie_command_t *cmd,
    hie_arena_t *arena, uint32_t *withheld);
/* The document sealed in q (a queued or stored message), opened into arena.
 * Returns 0, HIE_ECORRUPT (not openable with the data key) or HIE_ENOMEM. */
HIE_MUST_CHECK int hie_node__doc_unseal(node_ctx_t *ctx, const Hie__V1__QueuedMessage *q,
    hie_arena_t *arena, Hie__V1__Document **doc);
/* Consent for passing queued message qm (document d; NULL: it could not be opened) on to
 * `to` as it stands now (txn): the patient's EUID now, the message's purpose (set in *to),
 * labels, class and date. [out] *s (EUID and decision, for its audit record: the document id
 * is the caller's) and *action (PUSH or NOTIFY). Returns whether it may leave: a redact
 * obligation on a label the document carries withholds it (opaque content), and any
 * evaluation error does (fail closed). Redrives and the delivery thread. */
bool hie_node__queued_decide(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena, node_who_t *to,
    const Hie__V1__QueuedMessage *qm, const Hie__V1__Document *d, node_subject_t *s,
    Hie__V1__AuditAction *action);
/* A notification's patient now (txn): the EUID of the sender's record of the event's patient,
 * with the subscriber's record (d's patient) still under it, and still followed by its
 * subscription. NULL (*why) when either record moved ("unlinked": an unlink, a merge, a
 * record gone), the subscription ended or no longer holds the patient ("unsubscribed"), or
 * the state could not be read ("evaluation-error"). A message from before 2026-12-01 has no
 * sender's record: its subscriber's record names the patient, as before. */
const char *hie_node__notice_euid(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena,
    const Hie__V1__QueuedMessage *qm, const Hie__V1__Document *d, const char **why);
/* Whether subscription s still follows patient euid (txn): its roster holds one of the
 * patient's records, or (all my patients) its organization has one. */
HIE_MUST_CHECK int hie_node__notice_covered(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena,
    const Hie__V1__Subscription *s, const char *euid, bool *covered);
/* The memory one exchange may use (its reply included): the worker's arena for it. */
#define NODE_EXCHANGE_ARENA_BYTES (32u * 1024u * 1024u)
/* The name the HIE's own document repository goes by in query replies (source) and audit
 * records (recipient); no organization may be registered under it. */
#define NODE_REPOSITORY_SOURCE "repository"
/* The content type of an ADT notification's document (a Notification); members may not push
 * documents of this type. */
#define NODE_NOTIFY_CONTENT_TYPE "application/vnd.hiebroker.notification+protobuf"
/* The purpose a notification is decided and audited under, from the subscriber's roles. */
Hie__V1__PurposeOfUse hie_node__notify_purpose(const hie_org_t *org);
/* Whether org treats patients (hospital, clinic): only such an organization declares
 * emergency treatment (break-glass) or receives a push under it (reference: the right to
 * declare break-glass is decided outside consent; here by the registry's roles). */
bool hie_node__org_treats(const hie_org_t *org);
/* Adds the responders' documents (consent per document for the requester) and their source
 * statuses to reply, and builds the query's audit record. status[i] is a SourceStatus. The
 * patient's identity (q's) and the repository's documents are decided again first: hidden
 * since the query came, reply is emptied (the requester's own MRN, an EUID) or e holds the
 * unknown MRN's NOT_FOUND (returned), with the denial's record in audit either way. */
HIE_MUST_CHECK int hie_node__query_complete(node_ctx_t *ctx, const node_who_t *who,
    const Hie__V1__RecordQuery *q, Hie__V1__RecordQueryReply *reply,
    const node_query_fwd_t *fwd, const int *status, Hie__V1__QueryAnswer *const *answers,
    hie_arena_t *arena, node_audit_cmd_t *audit, node_mpi_err_t *e);
/* Retrieval of one document: from the repository (*reply and *audit set); or, when q->source
 * names a registered responder, fwd names it (n = 1) and *reply stays NULL: the worker forwards
 * the retrieval and completes it with hie_node__retrieve_complete. */
HIE_MUST_CHECK int hie_node__retrieve_prepare(node_ctx_t *ctx, const node_who_t *who,
    const Hie__V1__RetrieveRequest *q, hie_arena_t *arena, Hie__V1__RetrieveReply **reply,
    node_audit_cmd_t *audit, node_query_fwd_t *fwd, node_mpi_err_t *e);
/* The responder's answer (status a SourceStatus; answer NULL unless it answered): consent for
 * the requester on the document it returned, about one of its own patients; its audit record.
 * A timeout is UNAVAILABLE; unknown or withheld, NOT_FOUND (the same answer). */
HIE_MUST_CHECK int hie_node__retrieve_complete(node_ctx_t *ctx, const node_who_t *who,
    const char *document_id, const node_query_fwd_t *fwd, int status,
    const Hie__V1__QueryAnswer *answer, hie_arena_t *arena, Hie__V1__RetrieveReply **reply,
    node_audit_cmd_t *audit, node_mpi_err_t *e);
/* The audit index key of an EUID: a keyed hash under the data key's index secret (version 2,
 * SipHash-128, what new records carry). */
void hie_node__audit_subject_key(const struct hie_mpi_key *key, const char *euid,
    uint8_t out[HIE_PROTO_REC_HASH_BYTES]);
/* Version 1 (keyed BLAKE2b-128), which records applied before 2026-11-30 carry. */
void hie_node__audit_subject_key_v1(const struct hie_mpi_key *key, const char *euid,
    uint8_t out[HIE_PROTO_REC_HASH_BYTES]);

/* hiectl audit verify / vkey on a node's files (ctl_audit.c). vkey_text and anchor_file may
 * be NULL (the node's own key; the stored checkpoints). Return hiectl exit codes. */
int hie_node__ctl_audit_verify(const node_config_t *cfg, const char *vkey_text,
    const char *anchor_file);
int hie_node__ctl_audit_vkey(const node_config_t *cfg);

/* The admin channel's MPI requests (admin_mpi.c): fills reply (arena) or e. Admin thread. */
HIE_MUST_CHECK int hie_node__admin_mpi(node_ctx_t *ctx, node_submitter_t *sub,
    const Hie__V1__AdminRequest *req, hie_arena_t *arena, Hie__V1__AdminReply *reply,
    node_mpi_err_t *e);

#endif
