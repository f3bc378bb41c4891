/*
 * worker.c - worker threads: authorize the organization and run one exchange per request.
 *
 * A worker receives node_req_t pointers from the edge (inproc PUSH/PULL, ownership moves with
 * the message), reads the organization registry in an LMDB read transaction, builds the reply
 * frame and sends the request back to the edge. The edge routes a request to the worker chosen
 * by hash(org, envelope id), so each worker's reply cache sees every repeat of the ids it owns:
 * a repeated id from the same organization gets the original reply (design.md).
 *
 * Exchanges that could disclose something (PIX, PDQ, audit reports) are answered only after
 * their audit record is committed: the worker sends the audit command on its own DEALER
 * (audit_sub), parks the request with its packed reply in a FIFO, and goes on with the next
 * request; when the log answers, the parked reply goes to the edge (or, if the record was not
 * committed in time, an UNAVAILABLE error: nothing is disclosed unaudited). So concurrent
 * queries share one group commit instead of each waiting for its own. A worker takes up to
 * HIE_AUDIT_BATCH_RECORDS_MAX queued requests per wakeup and sends the audit_append records
 * they produced as one audit_batch command when the wakeup ends (audit_flush): one message,
 * log entry, decode and result for all of them instead of one each.
 *
 * Invariants: every request received is sent back exactly once (or freed at shutdown); the
 * reply never echoes request bytes except the Ping payload, which is the point of Ping.
 */
#include "node_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <zmq.h>

#define WORKER_CACHE_REPLY_BYTES_MAX (64u * 1024u)
_Static_assert(WORKER_CACHE_REPLY_BYTES_MAX <= HIE_NODE_REPLY_CACHE_BYTES_MAX,
    "one reply fits the cache once every other is gone");
#define WORKER_AUTH_ARENA_BYTES (64u * 1024u)
#define AUDIT_COMMIT_TIMEOUT_MS 10000u
/* A parked request's command must reach the log this long before the request gives up on
 * it (the log drops it after: hie_cluster_submit_send_by), leaving time to prepare, append,
 * sync, apply and answer: no record turns up for an exchange answered "not committed". A
 * batch that takes longer than this after its read (a sync stalled for seconds) can still
 * commit a record its request was told was not: the margin makes that rare, not impossible. */
#define AUDIT_SUBMIT_MARGIN_NS (5000ull * 1000000ull)

/* A request whose reply waits for its audit record. */
struct parked {
    node_req_t *req;          /* NULL once answered (out of order) */
    uint64_t token;
    uint64_t deadline_ns;
    Hie__V1__ErrorCode code;  /* of the packed reply */
    char kick_org[HIE_ORG_ID_BYTES_MAX + 1]; /* push: tell the delivery thread once applied;
                                              * ack: the recipient */
    bool ack;                 /* a DeliveryAck: its reply is packed once applied */
};

/* The audit_append commands of this wakeup's exchanges, their requests already parked (token 0
 * until audit_flush sends them). */
struct audit_stage {
    hie_proto_batch_t batch;                          /* the records, packed as staged */
    size_t slots[HIE_AUDIT_BATCH_RECORDS_MAX];        /* the requests' places in the ring */
    size_t count;
    bool stopping;                                    /* an early flush saw the shutdown */
};

struct cache_entry {
    char org_id[HIE_ORG_ID_BYTES_MAX + 1];
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    int body_case;  /* the request's kind: another kind under the same id is not a repeat */
    uint8_t *frame;
    size_t len;
};

/* A record query forwarded to responders (or a retrieval to one), waiting for answers. */
struct fwdq {
    node_req_t *req;                 /* NULL: free slot */
    char id[48];                     /* "qf.<worker>.<n>.<64 random bits>": not guessable, and
                                      * not reused by a restart (a stale answer never lands) */
    uint64_t deadline_ns;
    Hie__V1__RecordQueryReply *reply; /* the repository's part (req->arena) */
    bool retrieve;                   /* a retrieval from one responder, not a record query */
    node_query_fwd_t fwd;
    int status[NODE_QUERY_RESPONDERS_MAX];
    Hie__V1__QueryAnswer *answers[NODE_QUERY_RESPONDERS_MAX];
    /* Before anyone is asked, each responder's forward audit record is committed: while
     * auditing, atok[i] != 0 is responder i's record in flight (its answer comes with the
     * parked requests'), the deadline is the commit's, and no responder has been asked. */
    bool auditing;
    uint64_t atok[NODE_QUERY_RESPONDERS_MAX];
    const Hie__V1__RecordQuery *q;   /* what to forward (req->env); NULL for a retrieval */
    const char *document_id;         /* a retrieval's document (req->env) */
};
#define FWD_MAX 64u
/* Of a worker's FWD_MAX, at most this many wait for one requester, or on one responder: a
 * requester asking a lot, or a responder that never answers, cannot hold them all. */
#define FWD_PER_ORG_MAX 16u

struct worker {
    node_ctx_t *ctx;
    unsigned index;
    pthread_t thread;
    void *pull;
    void *push[NODE_EDGES_MAX]; /* one per edge thread: replies go back to the request's edge */
    uint64_t counter;
    struct cache_entry *cache; /* direct-mapped, HIE_NODE_REPLY_CACHE_ENTRIES */
    size_t cache_bytes;        /* frames it holds, at most HIE_NODE_REPLY_CACHE_BYTES_MAX */
    uint32_t cache_hand;       /* the next slot emptied when they would be more */
    node_submitter_t sub;      /* commands to the log (feeds, review decisions) */
    node_submitter_t audit_sub; /* audit records, committed asynchronously */
    void *dpush;               /* notifications to the delivery thread */
    struct parked *parked;     /* FIFO ring of HIE_NODE_AUDIT_PARKED_MAX */
    struct fwdq fwd[FWD_MAX];  /* record queries waiting for responders */
    uint64_t fwd_counter;
    size_t parked_head, parked_count;
    struct audit_stage stage;  /* audit records of the current wakeup */
    node_rand_t rand;          /* salts and nonces of its audit records */
    int bind_rc;
    uint64_t storage_checked_ns, storage_warned_ns;
    bool storage_low;          /* a map past HIE_STORAGE_REFUSE_PCT at the last check */
    bool storage_full;         /* past HIE_STORAGE_REFUSE_ALL_PCT */
    int park_rc;               /* why the last audit_park/audit_stage failed */
};

struct node_workers {
    unsigned count;     /* threads started */
    unsigned allocated; /* slots in w */
    struct worker *w;
};

void
hie_node__req_destroy(node_req_t **reqp)
{
    HIE_ASSERT(reqp != NULL);
    node_req_t *req = *reqp;
    if (req == NULL) {
        return;
    }
    HIE_ASSERT(req->magic == NODE_REQ_MAGIC);
    hie_arena_destroy(&req->arena);
    hie_mem_free(req->reply_buf, req->reply_len);
    req->magic = 0;
    hie_mem_free(req, sizeof(*req));
    *reqp = NULL;
}

/* The slot of req's (org, id), hashed once per request. */
static struct cache_entry *
cache_slot(struct worker *w, node_req_t *req)
{
    if (req->cache_slot == 0) {
        req->cache_slot = 1u + (uint32_t)(hie_hash_pair(req->org_id, req->env->id) %
                                          HIE_NODE_REPLY_CACHE_ENTRIES);
    }
    return &w->cache[req->cache_slot - 1u];
}

/* dst (cap bytes) = src, which validation kept shorter. */
static void
cache_id_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool
cache_get(struct worker *w, node_req_t *req)
{
    struct cache_entry *e = cache_slot(w, req);
    if (e->frame == NULL || strcmp(e->org_id, req->org_id) != 0 ||
        strcmp(e->id, req->env->id) != 0 || e->body_case != (int)req->env->body_case) {
        return false;
    }
    req->reply_buf = hie_mem_alloc(e->len);
    if (req->reply_buf == NULL) {
        return false;
    }
    memcpy(req->reply_buf, e->frame, e->len);
    req->reply_len = e->len;
    return true;
}

/* Whether a repeat of req's id may get its reply from the cache. Not a Receive: repeated on a
 * new connection (the client retries with the same id), it must move the deliveries there.
 * Not a read that discloses and is audited (PIX, PDQ, record query, retrieval, audit report,
 * review list): a repeat is another message that discloses, so it is decided again on the
 * state as it is then, and audited again. Replayed, a reply decided before a deny or a revoke
 * went out after it (the member only had to send the id again), unaudited. Nothing is applied
 * by these reads, so deciding a repeat afresh applies nothing twice. */
static bool
cache_kind(const node_req_t *req)
{
    switch (req->env->body_case) {
    case HIE__V1__ENVELOPE__BODY_RECEIVE:
    case HIE__V1__ENVELOPE__BODY_PIX_QUERY:
    case HIE__V1__ENVELOPE__BODY_PDQ_QUERY:
    case HIE__V1__ENVELOPE__BODY_RECORD_QUERY:
    case HIE__V1__ENVELOPE__BODY_RETRIEVE:
    case HIE__V1__ENVELOPE__BODY_AUDIT_REPORT:
    case HIE__V1__ENVELOPE__BODY_REVIEW_LIST:
        return false;
    default:
        return true;
    }
}

static void
cache_put(struct worker *w, node_req_t *req)
{
    if (req->reply_len > WORKER_CACHE_REPLY_BYTES_MAX || !cache_kind(req)) {
        return;
    }
    struct cache_entry *e = cache_slot(w, req);
    hie_mem_free(e->frame, e->len); /* the slot's earlier reply goes in any case */
    w->cache_bytes -= e->len;
    e->frame = NULL;
    e->len = 0;
    while (w->cache_bytes + req->reply_len > HIE_NODE_REPLY_CACHE_BYTES_MAX) {
        /* over its bytes: others go, a clock hand's turn (within one lap: a reply fits) */
        struct cache_entry *old = &w->cache[w->cache_hand];
        w->cache_hand = (w->cache_hand + 1u) % HIE_NODE_REPLY_CACHE_ENTRIES;
        hie_mem_free(old->frame, old->len);
        w->cache_bytes -= old->len;
        old->frame = NULL;
        old->len = 0;
    }
    uint8_t *copy = hie_mem_alloc(req->reply_len);
    if (copy == NULL) {
        return; /* the cache is an optimization of idempotency for reads only */
    }
    memcpy(copy, req->reply_buf, req->reply_len);
    w->cache_bytes += req->reply_len;
    cache_id_copy(e->org_id, sizeof(e->org_id), req->org_id);
    cache_id_copy(e->id, sizeof(e->id), req->env->id);
    e->body_case = (int)req->env->body_case;
    e->frame = copy;
    e->len = req->reply_len;
}

static void
reply_id(struct worker *w, char *buf, size_t cap)
{
    w->counter++;
    snprintf(buf, cap, "n.%s.%u.%lx", w->ctx->cfg.node_id, w->index, w->counter);
    if (strlen(buf) > HIE_PROTO_ID_BYTES_MAX) {
        snprintf(buf, cap, "n.%u.%lx", w->index, w->counter);
    }
}

/* Packs reply into req->reply_buf. Returns 0 or HIE_ENOMEM / HIE_ELIMIT. */
static int
reply_pack(struct worker *w, node_req_t *req, hie_envelope_t *reply)
{
    char rid[HIE_PROTO_ID_BYTES_MAX + 64];
    reply_id(w, rid, sizeof(rid));
    reply->id = rid;
    reply->correlation_id = (req->env != NULL) ? req->env->id : (char *)(uintptr_t)"";
    reply->purpose = req->env != NULL ? req->env->purpose : 0;
    reply->handled_ms = hie_time_wall_ms();
    return hie_proto_frame_encode(reply, w->ctx->cfg.frame_bytes_max, &req->reply_buf,
        &req->reply_len);
}

static Hie__V1__ErrorCode
reply_error_field(struct worker *w, node_req_t *req, Hie__V1__ErrorCode code,
    const char *message, const char *field)
{
    hie_envelope_t reply = HIE__V1__ENVELOPE__INIT;
    Hie__V1__Error err = HIE__V1__ERROR__INIT;
    err.code = code;
    err.message = (char *)(uintptr_t)message;
    err.field = (char *)(uintptr_t)(field != NULL ? field : "");
    reply.body_case = HIE__V1__ENVELOPE__BODY_ERROR;
    reply.error = &err;
    if (reply_pack(w, req, &reply) != 0) {
        req->close_after = true; /* cannot even say why: drop the connection */
    }
    return code;
}

static Hie__V1__ErrorCode
reply_error(struct worker *w, node_req_t *req, Hie__V1__ErrorCode code, const char *message)
{
    return reply_error_field(w, req, code, message, NULL);
}

/* Checks the organization named by the certificate against the registry. */
static Hie__V1__ErrorCode
authorize_org(struct worker *w, node_req_t *req, hie_org_t **org_out)
{
    hie_org_t *org = NULL;
    node_metrics_t *m = &w->ctx->metrics;
    int rc = 0;
    if (req->arena == NULL) { /* NODE_REQ_AUTH carries no envelope, hence no arena yet */
        rc = hie_arena_create(&req->arena, WORKER_AUTH_ARENA_BYTES);
    }
    MDB_txn *txn = NULL;
    rc = rc ? rc : hie_node__rtxn_begin(w->ctx, &w->rand, &txn);
    if (rc == 0) {
        rc = hie_node__state_org_get_in(w->ctx->state, txn, req->org_id, req->arena, &org);
        hie_node__rtxn_end(&w->rand, txn);
    }
    if (rc == HIE_ENOTFOUND) {
        atomic_fetch_add(&m->auth_refused_unregistered, 1);
        hie_log_warn("worker", "member refused", " org=%s conn=%lu reason=unregistered",
            req->org_id, req->conn_id);
        req->close_after = true;
        return reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_UNAUTHENTICATED,
            "organization is not registered with this HIE");
    }
    if (rc != 0) {
        hie_log_error("worker", "registry read failed", " org=%s rc=%s", req->org_id,
            hie_strerror_name(rc));
        return reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_INTERNAL, "internal error");
    }
    *org_out = org; /* also on refusal, so the caller can log why */
    if (org->status != HIE__V1__ORG_STATUS__ORG_ACTIVE) {
        atomic_fetch_add(&m->auth_refused_suspended, 1);
        hie_log_warn("worker", "member refused", " org=%s conn=%lu reason=suspended",
            req->org_id, req->conn_id);
        req->close_after = true;
        return reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_UNAUTHENTICATED,
            "organization is suspended");
    }
    return HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED;
}

static Hie__V1__ErrorCode
handle_ping(struct worker *w, node_req_t *req)
{
    hie_envelope_t reply = HIE__V1__ENVELOPE__INIT;
    Hie__V1__Pong pong = HIE__V1__PONG__INIT;
    pong.payload = req->env->ping->payload;
    pong.node_id = w->ctx->cfg.node_id;
    reply.body_case = HIE__V1__ENVELOPE__BODY_PONG;
    reply.pong = &pong;
    if (reply_pack(w, req, &reply) != 0) {
        return reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_INTERNAL, "internal error");
    }
    return HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED;
}

static Hie__V1__ErrorCode
handle_whoami(struct worker *w, node_req_t *req, hie_org_t *org)
{
    hie_envelope_t reply = HIE__V1__ENVELOPE__INIT;
    Hie__V1__WhoAmIReply who = HIE__V1__WHO_AM_IREPLY__INIT;
    who.org_id = org->id;
    who.display_name = org->display_name;
    who.n_roles = org->n_roles;
    who.roles = org->roles;
    who.node_id = w->ctx->cfg.node_id;
    who.tls_version = req->tls_version;
    who.cipher = req->cipher;
    reply.body_case = HIE__V1__ENVELOPE__BODY_WHOAMI_REPLY;
    reply.whoami_reply = &who;
    if (reply_pack(w, req, &reply) != 0) {
        return reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_INTERNAL, "internal error");
    }
    return HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED;
}

/* ---- MPI exchanges ---------------------------------------------------------------------- */

#define ROLE_BIT(r) (1u << (unsigned)(HIE__V1__ROLE__##r))
/* Who may run which exchange (roles come from the registry, never from the client). */
#define ROLES_FEED (ROLE_BIT(ROLE_HOSPITAL) | ROLE_BIT(ROLE_CLINIC) | ROLE_BIT(ROLE_LAB))
#define ROLES_QUERY (ROLES_FEED | ROLE_BIT(ROLE_PAYER))
#define ROLES_REVIEW ROLE_BIT(ROLE_OPERATOR)
/* consent directives come from the patient's care providers, on the patient's behalf */
#define ROLES_CONSENT (ROLE_BIT(ROLE_HOSPITAL) | ROLE_BIT(ROLE_CLINIC))
#define ROLES_AUDIT ROLE_BIT(ROLE_AUDITOR)
#define ROLES_PUSH ROLES_FEED
/* any member may receive what is pushed to it */
#define ROLES_RECEIVE (ROLES_QUERY | ROLE_BIT(ROLE_AUDITOR) | ROLE_BIT(ROLE_OPERATOR))

static bool
org_has_role(const hie_org_t *org, unsigned mask)
{
    for (size_t i = 0; i < org->n_roles; i++) {
        if ((unsigned)org->roles[i] < 32u && (mask & (1u << (unsigned)org->roles[i])) != 0) {
            return true;
        }
    }
    return false;
}

bool
hie_node__org_treats(const hie_org_t *org)
{
    return org != NULL && org_has_role(org, ROLE_BIT(ROLE_HOSPITAL) | ROLE_BIT(ROLE_CLINIC));
}

static unsigned
mpi_roles(Hie__V1__Envelope__BodyCase body)
{
    switch (body) {
    case HIE__V1__ENVELOPE__BODY_MPI_FEED:
        return ROLES_FEED;
    case HIE__V1__ENVELOPE__BODY_PIX_QUERY:
    case HIE__V1__ENVELOPE__BODY_PDQ_QUERY:
        return ROLES_QUERY;
    case HIE__V1__ENVELOPE__BODY_REVIEW_LIST:
    case HIE__V1__ENVELOPE__BODY_REVIEW_DECIDE:
        return ROLES_REVIEW;
    case HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT:
    case HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE:
    case HIE__V1__ENVELOPE__BODY_CONSENT_LIST:
        return ROLES_CONSENT;
    case HIE__V1__ENVELOPE__BODY_AUDIT_REPORT:
        return ROLES_AUDIT;
    case HIE__V1__ENVELOPE__BODY_PUSH:
    case HIE__V1__ENVELOPE__BODY_RETRACT:
        return ROLES_PUSH;
    case HIE__V1__ENVELOPE__BODY_RECEIVE:
    case HIE__V1__ENVELOPE__BODY_DELIVERY_ACK:
    case HIE__V1__ENVELOPE__BODY_SUBSCRIBE:
    case HIE__V1__ENVELOPE__BODY_ROSTER_UPDATE:
    case HIE__V1__ENVELOPE__BODY_UNSUBSCRIBE:
    case HIE__V1__ENVELOPE__BODY_REPLAY:
        return ROLES_RECEIVE;
    case HIE__V1__ENVELOPE__BODY_ADT:
        return ROLE_BIT(ROLE_HOSPITAL) | ROLE_BIT(ROLE_CLINIC);
    case HIE__V1__ENVELOPE__BODY_RECORD_QUERY:
    case HIE__V1__ENVELOPE__BODY_RETRIEVE:
        return ROLES_QUERY;
    case HIE__V1__ENVELOPE__BODY_QUERY_ANSWER:
    case HIE__V1__ENVELOPE__BODY_RESPONDER_REGISTER:
        return ROLES_FEED; /* members that hold records */
    default:
        return 0;
    }
}

/* A member asks for its deliveries on this connection. */
static int
receive_run(struct worker *w, node_req_t *req, hie_org_t *org, hie_arena_t *arena,
    Hie__V1__ReceiveReply **reply, node_mpi_err_t *e)
{
    Hie__V1__ReceiveReply *r = hie_arena_alloc(arena, sizeof(*r));
    MDB_txn *txn = NULL;
    if (r == NULL || mdb_txn_begin(hie_node__state_env(w->ctx->state), NULL, MDB_RDONLY, &txn)) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "busy");
    }
    hie__v1__receive_reply__init(r);
    int rc = hie_node__queue_depth(hie_node__state_queue(w->ctx->state), txn, org->id,
        &r->queued);
    mdb_txn_abort(txn);
    if (rc != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    uint32_t window = req->env->receive->window;
    if (!hie_node__delivery_notify(w->dpush, DMSG_RECEIVE, org->id, req->conn_id,
            req->edge_index, window != 0 ? window : HIE_DELIVERY_WINDOW_DEFAULT)) {
        /* not taken by the delivery thread (far behind): the member would wait for nothing */
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "the node is busy; send the receive again");
    }
    req->receiving = true;
    *reply = r;
    return 0;
}

/* The recipient acknowledges deliveries: they leave its queue (a command), then the delivery
 * thread may send more. The worker does not wait for the command: it is sent like an audit
 * record and the request parked (ack_park), so acknowledgements from many recipients share a
 * group commit instead of each holding a worker for a log round trip (bench_fanout: an
 * admission queued behind 100 acknowledgements). The reply, with how many left the queue, is
 * packed once the command is applied (parked_finish). */
static bool ack_park(struct worker *w, node_req_t *req, const hie_command_t *cmd,
    const char *org);

static int
ack_run(struct worker *w, node_req_t *req, hie_org_t *org, node_audit_cmd_t *audit,
    node_mpi_err_t *e)
{
    Hie__V1__DeliveryAckCommand ac = HIE__V1__DELIVERY_ACK_COMMAND__INIT;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    ac.recipient_org = org->id;
    ac.n_seqs = req->env->delivery_ack->n_seqs;
    ac.seqs = req->env->delivery_ack->seqs;
    cmd.requester = org->id;
    cmd.request_id = req->env->id;
    cmd.time_ms = hie_time_wall_ms();
    cmd.node_id = w->ctx->cfg.node_id;
    cmd.body_case = HIE__V1__COMMAND__BODY_DELIVERY_ACK;
    cmd.delivery_ack = &ac;
    if (!ack_park(w, req, &cmd, org->id)) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "the acknowledgement was not committed; send it again");
    }
    audit->forwarded = true; /* answered by parked_finish */
    return 0;
}

/* ---- record queries forwarded to responders -------------------------------------------- */

static bool audit_park(struct worker *w, node_req_t *req, node_audit_cmd_t *audit,
    Hie__V1__ErrorCode code);
static bool send_back(struct worker *w, node_req_t *req);
static void request_done(struct worker *w, node_req_t *req, Hie__V1__ErrorCode code,
    bool cached);
static void reply_drop(node_req_t *req);

/* The retrieval's answer (or its timeout): the document or an error, after its audit record
 * (parked). */
static void
retrieve_finish(struct worker *w, struct fwdq *fq, const node_who_t *who)
{
    node_req_t *req = fq->req;
    node_audit_cmd_t audit = {0};
    node_mpi_err_t e = {0};
    hie_envelope_t reply = HIE__V1__ENVELOPE__INIT;
    Hie__V1__ErrorCode code = HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED;
    fq->req = NULL;
    reply.body_case = HIE__V1__ENVELOPE__BODY_RETRIEVE_REPLY;
    if (hie_node__retrieve_complete(w->ctx, who, req->env->retrieve->document_id, &fq->fwd,
        fq->status[0], fq->answers[0], req->arena, &reply.retrieve_reply, &audit, &e) != 0) {
        code = reply_error_field(w, req, e.code, e.message, e.field);
    } else if (reply_pack(w, req, &reply) != 0) {
        code = reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_INTERNAL, "reply too large");
    }
    if (!audit.needed || audit_park(w, req, &audit, code)) {
        if (!audit.needed) {
            request_done(w, req, code, false);
            (void)send_back(w, req);
        }
        return; /* parked: sent once its audit record is committed */
    }
    reply_drop(req);
    code = reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE,
        "the retrieval could not be completed; retry with the same id");
    request_done(w, req, code, false);
    (void)send_back(w, req);
}

/* All responders answered, or the deadline passed: the reply with every source's status,
 * then its audit record, then (parked) the member. */
static void
fwd_finish(struct worker *w, struct fwdq *fq)
{
    node_req_t *req = fq->req;
    hie_org_t *org = NULL;
    node_audit_cmd_t audit = {0};
    Hie__V1__ErrorCode code = HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED;
    int rc = hie_node__state_org_get(w->ctx->state, req->org_id, req->arena, &org);
    if (fq->retrieve && rc == 0) {
        node_who_t rwho = {req->org_id, org, req->env->purpose, req->env->id, &w->rand};
        retrieve_finish(w, fq, &rwho);
        return;
    }
    fq->req = NULL;
    node_who_t who = {req->org_id, org, req->env->purpose, req->env->id, &w->rand};
    node_mpi_err_t e = {0};
    rc = rc ? rc : hie_node__query_complete(w->ctx, &who, req->env->record_query, fq->reply,
        &fq->fwd, fq->status, fq->answers, req->arena, &audit, &e);
    hie_envelope_t reply = HIE__V1__ENVELOPE__INIT;
    reply.body_case = HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY;
    reply.record_query_reply = fq->reply;
    if (rc != 0 && e.code != 0 && audit.needed) {
        /* hidden since the query came: the unknown MRN's answer, after the denial's record */
        code = reply_error_field(w, req, e.code, e.message, e.field);
        if (audit_park(w, req, &audit, code)) {
            return;
        }
    } else if (rc == 0 && reply_pack(w, req, &reply) == 0 && audit_park(w, req, &audit, code)) {
        return; /* sent once its audit record is committed */
    }
    reply_drop(req);
    code = reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE,
        "the request could not be completed; retry with the same id");
    request_done(w, req, code, false);
    (void)send_back(w, req);
}

/* A free forwarding slot, or NULL (e says overloaded). */
static struct fwdq *
fwd_slot(struct worker *w, const char *requester, node_mpi_err_t *e)
{
    struct fwdq *free_slot = NULL;
    unsigned mine = 0;
    for (unsigned i = 0; i < FWD_MAX; i++) {
        if (w->fwd[i].req == NULL) {
            free_slot = free_slot != NULL ? free_slot : &w->fwd[i];
        } else {
            mine += strcmp(w->fwd[i].req->org_id, requester) == 0;
        }
    }
    if (free_slot != NULL && mine < FWD_PER_ORG_MAX) {
        return free_slot;
    }
    (void)mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL,
        "too many requests waiting for responders; retry later");
    return NULL;
}

/* Refuses a requester already holding FWD_PER_ORG_MAX slots before its query costs a scan of
 * the repository (which a slot taken after could not use). */
static bool
fwd_requester_full(struct worker *w, const char *requester, node_mpi_err_t *e)
{
    node_mpi_err_t ignored = {0};
    struct fwdq *fq = fwd_slot(w, requester, &ignored);
    if (fq != NULL) {
        return false;
    }
    *e = ignored;
    return true;
}

/* Forwarded requests still waiting for responder org's answer. */
static unsigned
fwd_waiting_on(const struct worker *w, const char *org)
{
    unsigned n = 0;
    for (unsigned i = 0; i < FWD_MAX; i++) {
        const struct fwdq *fq = &w->fwd[i];
        for (size_t k = 0; fq->req != NULL && k < fq->fwd.n; k++) {
            n += fq->status[k] == 0 && strcmp(fq->fwd.orgs[k], org) == 0;
        }
    }
    return n;
}

static uint64_t submit_deadline(void);

/* Treatment, payment and operations: exempt from a HIPAA accounting (§164.528(a)(1)). */
static bool
purpose_tpo(Hie__V1__PurposeOfUse p)
{
    return p == HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT ||
           p == HIE__V1__PURPOSE_OF_USE__PURPOSE_PAYMENT ||
           p == HIE__V1__PURPOSE_OF_USE__PURPOSE_OPERATIONS;
}

/* Sends responder i's forward audit record (answered with the parked requests'); [out]
 * *token. */
static int
fwd_audit_one(struct worker *w, const struct fwdq *fq, size_t i, const node_who_t *who,
    uint64_t *token)
{
    node_subject_t s = {fq->fwd.euid, {0}, fq->fwd.ids[i], fq->fwd.n_ids[i], NULL, 0};
    s.decision.decision = HIE_CONSENT_PERMIT;
    s.decision.reason = "forwarded";
    s.decision.accounting_excluded = purpose_tpo(who->purpose);
    node_audit_cmd_t a = {0};
    bool patient = !fq->retrieve && fq->fwd.euid != NULL; /* a retrieval names a document */
    hie_node__audit_build(w->ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_QUERY_FORWARD,
        HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED, &s, patient ? 1 : 0, fq->req->arena, &a);
    if (a.build_rc != 0) {
        return a.build_rc;
    }
    a.cmd.audit_append->record->recipient_org = (char *)(uintptr_t)fq->fwd.orgs[i];
    return hie_node__submit_send_by(&w->audit_sub, &a.cmd, submit_deadline(), token);
}

static void
fwd_not_audited(const struct fwdq *fq, size_t i)
{
    hie_log_error("audit", "forward audit record not committed: responder not asked",
        " org=%s id=%s responder=%s", fq->req->org_id, fq->req->env->id, fq->fwd.orgs[i]);
}

/* Asks every responder whose forward audit record was committed (status still 0); the
 * responders' deadline starts now. Returns how many were asked. */
static size_t
fwd_ask(struct worker *w, struct fwdq *fq)
{
    const node_req_t *req = fq->req;
    node_who_t who = {req->org_id, NULL, req->env->purpose, req->env->id, &w->rand};
    uint64_t wait_ms = w->ctx->cfg.query_responder_timeout_ms;
    size_t asked = 0;
    fq->auditing = false;
    fq->deadline_ns = hie_time_mono_ns() + wait_ms * 1000000ull;
    for (size_t i = 0; i < fq->fwd.n; i++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if (fq->status[i] != 0) {
            continue;
        }
        asked++;
        if (hie_node__query_forward_frame(w->ctx, fq->id, &who, fq->q, fq->document_id,
            fq->fwd.ids[i], fq->fwd.n_ids[i], hie_time_wall_ms() + (int64_t)wait_ms, &buf,
            &len) == 0) {
            hie_node__delivery_forward(w->dpush, fq->fwd.orgs[i], buf, len);
        }
    }
    return asked;
}

/* Ends fq's auditing: the responders whose record is still in flight become error sources
 * (not asked); the others are asked, or, with none left, the member is answered. */
static void
fwd_audited(struct worker *w, struct fwdq *fq)
{
    for (size_t i = 0; i < fq->fwd.n; i++) {
        if (fq->atok[i] != 0) {
            fwd_not_audited(fq, i);
            fq->status[i] = HIE__V1__SOURCE_STATUS__SOURCE_ERROR;
            fq->atok[i] = 0;
        }
    }
    if (fwd_ask(w, fq) == 0) {
        fwd_finish(w, fq);
    }
}

/* A log answer for a forward audit record (tok); returns false when no forward waits on it.
 * A record not committed makes its responder an error source, not asked. */
static bool
fwd_audit_answer(struct worker *w, uint64_t tok, bool ok)
{
    for (unsigned k = 0; k < FWD_MAX; k++) {
        struct fwdq *fq = &w->fwd[k];
        size_t i = 0, pending = 0;
        while (fq->req != NULL && fq->auditing && i < fq->fwd.n && fq->atok[i] != tok) {
            i++;
        }
        if (fq->req == NULL || !fq->auditing || i == fq->fwd.n) {
            continue;
        }
        fq->atok[i] = 0;
        if (!ok) {
            fwd_not_audited(fq, i);
            fq->status[i] = HIE__V1__SOURCE_STATUS__SOURCE_ERROR;
        }
        for (size_t j = 0; j < fq->fwd.n; j++) {
            pending += fq->atok[j] != 0;
        }
        if (pending == 0) {
            fwd_audited(w, fq);
        }
        return true;
    }
    return false;
}

/* Starts fq's request (q, or a retrieval of document_id): each responder's forward audit
 * record goes to the log, and the responders are asked once those are committed (fwd_ask: a
 * node killed after a forward left its record). One with FWD_PER_ORG_MAX requests already
 * waiting on it is an error source at once, and so is one whose record could not be sent.
 * Returns how many records were sent (0: the caller answers now). */
static size_t
fwd_send(struct worker *w, struct fwdq *fq, node_req_t *req, const node_who_t *who,
    const Hie__V1__RecordQuery *q, const char *document_id)
{
    size_t sent = 0;
    for (size_t i = 0; i < fq->fwd.n; i++) { /* before fq counts as waiting */
        fq->status[i] = fwd_waiting_on(w, fq->fwd.orgs[i]) >= FWD_PER_ORG_MAX
                            ? HIE__V1__SOURCE_STATUS__SOURCE_ERROR : 0;
        fq->answers[i] = NULL;
        fq->atok[i] = 0;
    }
    fq->req = req;
    fq->q = q;
    fq->document_id = document_id;
    fq->auditing = true;
    fq->deadline_ns = submit_deadline() + AUDIT_SUBMIT_MARGIN_NS;
    uint64_t nonce = 0;
    randombytes_buf(&nonce, sizeof(nonce));
    snprintf(fq->id, sizeof(fq->id), "qf.%u.%lu.%016" PRIx64, w->index,
        (unsigned long)++w->fwd_counter, nonce);
    for (size_t i = 0; i < fq->fwd.n; i++) {
        if (fq->status[i] != 0) {
            continue;
        }
        if (fwd_audit_one(w, fq, i, who, &fq->atok[i]) != 0 || fq->atok[i] == 0) {
            fq->atok[i] = 0;
            fwd_not_audited(fq, i);
            fq->status[i] = HIE__V1__SOURCE_STATUS__SOURCE_ERROR;
            continue;
        }
        sent++;
    }
    if (sent == 0) {
        fq->auditing = false;
    }
    return sent;
}

static int
query_run(struct worker *w, node_req_t *req, const node_who_t *who,
    Hie__V1__RecordQueryReply **reply, node_audit_cmd_t *audit, node_mpi_err_t *e)
{
    node_query_fwd_t fwd;
    const Hie__V1__RecordQuery *q = req->env->record_query;
    if (fwd_requester_full(w, who->org_id, e)) {
        return e->code;
    }
    int rc = hie_node__query_prepare(w->ctx, who, q, req->arena, reply, audit, &fwd, e);
    if (rc != 0 || fwd.n == 0) {
        return rc; /* answered now: no forwarding slot needed */
    }
    struct fwdq *fq = fwd_slot(w, who->org_id, e);
    if (fq == NULL) {
        audit->needed = false; /* an error reply: nothing disclosed */
        *reply = NULL;
        return e->code;
    }
    fq->fwd = fwd;
    fq->reply = *reply;
    fq->retrieve = false;
    audit->forwarded = true;
    if (fwd_send(w, fq, req, who, q, NULL) == 0) {
        fwd_finish(w, fq); /* every responder is busy: the reply now, with them as errors */
    }
    return 0;
}

/* A retrieval: from the repository now, or forwarded to the responder that listed it. */
static int
retrieve_run(struct worker *w, node_req_t *req, const node_who_t *who,
    Hie__V1__RetrieveReply **reply, node_audit_cmd_t *audit, node_mpi_err_t *e)
{
    node_query_fwd_t fwd;
    const Hie__V1__RetrieveRequest *q = req->env->retrieve;
    if (fwd_requester_full(w, who->org_id, e)) {
        return e->code;
    }
    int rc = hie_node__retrieve_prepare(w->ctx, who, q, req->arena, reply, audit, &fwd, e);
    if (rc != 0 || fwd.n == 0) {
        return rc;
    }
    struct fwdq *fq = fwd_slot(w, who->org_id, e);
    if (fq == NULL) {
        audit->needed = false;
        return e->code;
    }
    fq->fwd = fwd;
    fq->reply = NULL;
    fq->retrieve = true;
    audit->forwarded = true;
    if (fwd_send(w, fq, req, who, NULL, q->document_id) == 0) {
        fwd_finish(w, fq);
    }
    return 0;
}

static struct fwdq *
fwd_find(struct worker *w, const char *id)
{
    for (unsigned i = 0; id != NULL && i < FWD_MAX; i++) {
        if (w->fwd[i].req != NULL && strcmp(w->fwd[i].id, id) == 0) {
            return &w->fwd[i];
        }
    }
    return NULL;
}

/* Keeps a copy of the answer in the query's arena (the answer's own goes with its reply). */
static Hie__V1__QueryAnswer *
answer_copy(const Hie__V1__QueryAnswer *a, hie_arena_t *arena)
{
    size_t n = protobuf_c_message_get_packed_size(&a->base);
    uint8_t *buf = hie_arena_alloc(arena, n + 1);
    ProtobufCMessage *m = NULL;
    if (buf == NULL) {
        return NULL;
    }
    HIE_ASSERT(protobuf_c_message_pack(&a->base, buf) == n);
    return hie_proto_unpack(&hie__v1__query_answer__descriptor, hie_span(buf, n), arena, &m) ==
        0 ? (Hie__V1__QueryAnswer *)m : NULL;
}

/* A responder's answer: kept if the query still waits for it; the last one completes it. An
 * answer over the limits is refused and its source counted as an error. */
static int
answer_run(struct worker *w, node_req_t *req, hie_org_t *org, hie_arena_t *arena,
    Hie__V1__QueryAnswerReply **reply, node_mpi_err_t *e)
{
    const Hie__V1__QueryAnswer *a = req->env->query_answer;
    Hie__V1__QueryAnswerReply *r = hie_arena_alloc(arena, sizeof(*r));
    if (r == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    hie__v1__query_answer_reply__init(r);
    *reply = r;
    struct fwdq *fq = fwd_find(w, a->query_id);
    const char *bad_field = hie_node__query_answer_check(a, fq != NULL && fq->retrieve);
    size_t i = 0, pending = 0;
    while (fq != NULL && i < fq->fwd.n && strcmp(fq->fwd.orgs[i], org->id) != 0) {
        i++;
    }
    bool waiting = fq != NULL && !fq->auditing && i < fq->fwd.n && fq->status[i] == 0 &&
                   hie_time_mono_ns() <= fq->deadline_ns;
    if (waiting) {
        fq->answers[i] = bad_field == NULL ? answer_copy(a, fq->req->arena) : NULL;
        fq->status[i] = fq->answers[i] == NULL || (a->error != NULL && a->error[0] != '\0')
            ? HIE__V1__SOURCE_STATUS__SOURCE_ERROR : HIE__V1__SOURCE_STATUS__SOURCE_OK;
        r->accepted = bad_field == NULL;
        for (size_t k = 0; k < fq->fwd.n; k++) {
            pending += fq->status[k] == 0;
        }
        if (pending == 0) {
            fwd_finish(w, fq);
        }
    }
    if (bad_field != NULL) { /* not passed on: the requester sees the source as an error */
        *reply = NULL;
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, bad_field, "over the limits "
            "of a member's document (entries 1000, title 512, ids 200, error 256 bytes)");
    }
    return 0; /* too late, already answered, or not asked: accepted = false */
}

/* The queries whose deadline passed: those still auditing ask the responders whose record
 * was committed; of the others, the silent responders are marked timeout. */
static void
fwd_expire(struct worker *w, uint64_t now)
{
    for (unsigned i = 0; i < FWD_MAX; i++) {
        struct fwdq *fq = &w->fwd[i];
        if (fq->req == NULL || fq->deadline_ns > now) {
            continue;
        }
        if (fq->auditing) {
            fwd_audited(w, fq);
            continue;
        }
        for (size_t k = 0; k < fq->fwd.n; k++) {
            fq->status[k] = fq->status[k] != 0 ? fq->status[k]
                                               : HIE__V1__SOURCE_STATUS__SOURCE_TIMEOUT;
        }
        fwd_finish(w, fq);
    }
}

/* Submits cmd (its body set) as org's request and waits for its result (*res). A refusal by
 * apply is answered in its words (sending it again would not help); a command not committed
 * in time is OVERLOADED or UNAVAILABLE. */
static int
member_command(struct worker *w, node_req_t *req, hie_org_t *org, hie_command_t *cmd,
    hie_arena_t *arena, hie_command_result_t **res, node_mpi_err_t *e)
{
    cmd->requester = org->id;
    cmd->request_id = req->env->id;
    cmd->time_ms = hie_time_wall_ms();
    cmd->node_id = w->ctx->cfg.node_id;
    int rc = hie_node__submit_wait(&w->sub, cmd, AUDIT_COMMIT_TIMEOUT_MS, arena, res);
    if (rc == 0 && (*res)->code != HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        return mpi_fail(e, (*res)->code, (*res)->field, (*res)->message);
    }
    if (rc != 0) {
        return mpi_fail(e, rc == HIE_EBUSY ? HIE__V1__ERROR_CODE__ERROR_OVERLOADED
                                           : HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "not committed; send it again");
    }
    return 0;
}

static int
responder_run(struct worker *w, node_req_t *req, hie_org_t *org, hie_arena_t *arena,
    Hie__V1__ResponderRegisterReply **reply, node_mpi_err_t *e)
{
    Hie__V1__ResponderCommand rc_ = HIE__V1__RESPONDER_COMMAND__INIT;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    hie_command_result_t *res = NULL;
    Hie__V1__ResponderRegisterReply *r = hie_arena_alloc(arena, sizeof(*r));
    if (r == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "busy");
    }
    rc_.org_id = org->id;
    rc_.enabled = req->env->responder_register->enabled;
    cmd.body_case = HIE__V1__COMMAND__BODY_RESPONDER;
    cmd.responder = &rc_;
    int rc = member_command(w, req, org, &cmd, arena, &res, e);
    if (rc != 0) {
        return rc;
    }
    hie__v1__responder_register_reply__init(r);
    /* what the original command did (a repeat under another setting changed nothing) */
    r->enabled = res->responder != 0 ? res->responder == 2u : rc_.enabled;
    *reply = r;
    return 0;
}

/* The author retracts a document it stored in the repository (apply checks that it is the
 * author: anything else is NOT_FOUND). */
static int
retract_run(struct worker *w, node_req_t *req, hie_org_t *org, hie_arena_t *arena,
    Hie__V1__RetractReply **reply, node_mpi_err_t *e)
{
    Hie__V1__RetractCommand rc_ = HIE__V1__RETRACT_COMMAND__INIT;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    hie_command_result_t *res = NULL;
    Hie__V1__RetractReply *r = hie_arena_alloc(arena, sizeof(*r));
    if (r == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "busy");
    }
    rc_.document_id = req->env->retract->document_id;
    rc_.reason = req->env->retract->reason;
    cmd.body_case = HIE__V1__COMMAND__BODY_RETRACT;
    cmd.retract = &rc_;
    int rc = member_command(w, req, org, &cmd, arena, &res, e);
    if (rc != 0) {
        return rc;
    }
    /* the document the original command retracted: a repeat of its id retracted nothing */
    const char *doc = res->document_id != NULL && res->document_id[0] != '\0'
        ? res->document_id : rc_.document_id;
    hie_log_info("repository", "document retracted by its author",
        " org=%s id=%s document=%s bytes_released=%" PRIu64, org->id, req->env->id, doc,
        res->bytes_released);
    hie__v1__retract_reply__init(r);
    r->document_id = (char *)(uintptr_t)doc;
    r->bytes_released = res->bytes_released;
    *reply = r;
    return 0;
}

/* The delivery exchanges: push, receive, acknowledge, query, retrieve, ADT, subscriptions. */
static int
delivery_run(struct worker *w, node_req_t *req, hie_org_t *org, hie_arena_t *arena,
    hie_envelope_t *reply, node_audit_cmd_t *audit, node_mpi_err_t *e)
{
    node_ctx_t *ctx = w->ctx;
    hie_envelope_t *env = req->env;
    node_who_t who = {org->id, org, env->purpose, env->id, &w->rand};
    switch (env->body_case) {
    case HIE__V1__ENVELOPE__BODY_PUSH:
        return hie_node__push_prepare(ctx, &who, env->push, arena, &reply->push_reply, audit,
            e);
    case HIE__V1__ENVELOPE__BODY_RECEIVE:
        return receive_run(w, req, org, arena, &reply->receive_reply, e);
    case HIE__V1__ENVELOPE__BODY_DELIVERY_ACK:
        return ack_run(w, req, org, audit, e);
    case HIE__V1__ENVELOPE__BODY_RECORD_QUERY:
        return query_run(w, req, &who, &reply->record_query_reply, audit, e);
    case HIE__V1__ENVELOPE__BODY_QUERY_ANSWER:
        return answer_run(w, req, org, arena, &reply->query_answer_reply, e);
    case HIE__V1__ENVELOPE__BODY_RESPONDER_REGISTER:
        return responder_run(w, req, org, arena, &reply->responder_register_reply, e);
    case HIE__V1__ENVELOPE__BODY_RETRACT:
        return retract_run(w, req, org, arena, &reply->retract_reply, e);
    case HIE__V1__ENVELOPE__BODY_RETRIEVE:
        return retrieve_run(w, req, &who, &reply->retrieve_reply, audit, e);
    case HIE__V1__ENVELOPE__BODY_ADT:
        return hie_node__adt_prepare(ctx, &w->sub, &who, env->adt, arena, &reply->adt_reply,
            audit, e);
    case HIE__V1__ENVELOPE__BODY_SUBSCRIBE:
        return hie_node__subscribe_xchg(ctx, &w->sub, &who, env->subscribe, arena,
            &reply->subscribe_reply, e);
    case HIE__V1__ENVELOPE__BODY_ROSTER_UPDATE:
        return hie_node__roster_xchg(ctx, &w->sub, &who, env->roster_update, arena,
            &reply->roster_update_reply, e);
    case HIE__V1__ENVELOPE__BODY_UNSUBSCRIBE:
        return hie_node__unsubscribe_xchg(ctx, &w->sub, &who, env->unsubscribe, arena,
            &reply->unsubscribe_reply, e);
    case HIE__V1__ENVELOPE__BODY_REPLAY: {
        int rc = hie_node__replay_xchg(ctx, &w->sub, &who, env->replay, arena,
            &reply->replay_reply, e);
        if (rc == 0 && reply->replay_reply->queued > 0) {
            hie_node__delivery_notify(w->dpush, DMSG_KICK, org->id, 0, 0, 0);
        }
        return rc;
    }
    default:
        HIE_ASSERT(!"not an exchange of this node");
        return -1;
    }
}

/* Runs the exchange; fills reply's body (pointing into arena) or e. */
static int
mpi_run(struct worker *w, node_req_t *req, hie_org_t *org, hie_arena_t *arena,
    hie_envelope_t *reply, node_audit_cmd_t *audit, node_mpi_err_t *e)
{
    node_ctx_t *ctx = w->ctx;
    hie_envelope_t *env = req->env;
    node_who_t who = {org->id, org, env->purpose, env->id, &w->rand};
    /* every reply body number follows its request's (envelope.proto) */
    reply->body_case = (Hie__V1__Envelope__BodyCase)((int)env->body_case + 1);
    switch (env->body_case) {
    case HIE__V1__ENVELOPE__BODY_MPI_FEED:
        return hie_node__mpi_feed(ctx, &w->sub, org->id, env->id, env->mpi_feed, arena,
            &reply->mpi_feed_reply, e);
    case HIE__V1__ENVELOPE__BODY_PIX_QUERY:
        return hie_node__pix_prepare(ctx, &who, env->pix_query, arena, &reply->pix_reply,
            audit, e);
    case HIE__V1__ENVELOPE__BODY_PDQ_QUERY:
        return hie_node__pdq_prepare(ctx, &who, env->pdq_query, arena, &reply->pdq_reply,
            audit, e);
    case HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT:
        return hie_node__consent_submit_xchg(ctx, &w->sub, org->id, env->id,
            env->consent_submit, arena, &reply->consent_submit_reply, e);
    case HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE:
        return hie_node__consent_revoke_xchg(ctx, &w->sub, org->id, env->id,
            env->consent_revoke, arena, &reply->consent_revoke_reply, e);
    case HIE__V1__ENVELOPE__BODY_CONSENT_LIST:
        return hie_node__consent_list_xchg(ctx, org->id, env->consent_list, arena,
            &reply->consent_list_reply, e);
    case HIE__V1__ENVELOPE__BODY_AUDIT_REPORT:
        return hie_node__audit_report_prepare(ctx, &who, env->audit_report, arena,
            &reply->audit_report_reply, audit, e);
    case HIE__V1__ENVELOPE__BODY_REVIEW_LIST:
        return hie_node__review_list_prepare(ctx, &who, env->review_list, arena,
            &reply->review_list_reply, audit, e);
    case HIE__V1__ENVELOPE__BODY_REVIEW_DECIDE:
        return hie_node__mpi_review_decide(ctx, &w->sub, org->id, env->id, env->review_decide,
            arena, &reply->review_decide_reply, e);
    default:
        return delivery_run(w, req, org, arena, reply, audit, e);
    }
}

/* The deadline for the log of a command sent now for a request parked now. */
static uint64_t
submit_deadline(void)
{
    return hie_time_mono_ns() + (uint64_t)AUDIT_COMMIT_TIMEOUT_MS * 1000000ull -
           AUDIT_SUBMIT_MARGIN_NS;
}

/* Puts req at the tail of the park ring, which has room; returns its place. */
static size_t
park(struct worker *w, node_req_t *req, uint64_t token, Hie__V1__ErrorCode code,
    const char *kick_org, bool ack)
{
    HIE_ASSERT(req != NULL);
    HIE_ASSERT(w->parked_count < HIE_NODE_AUDIT_PARKED_MAX);
    size_t slot = (w->parked_head + w->parked_count) % HIE_NODE_AUDIT_PARKED_MAX;
    struct parked *p = &w->parked[slot];
    *p = (struct parked){req, token, hie_time_mono_ns() +
        (uint64_t)AUDIT_COMMIT_TIMEOUT_MS * 1000000ull, code, "", ack};
    if (kick_org != NULL) {
        snprintf(p->kick_org, sizeof(p->kick_org), "%s", kick_org);
    }
    w->parked_count++;
    return slot;
}

/* The audit command could not be built, parked or sent: the caller answers UNAVAILABLE. */
static int
audit_not_sent(struct worker *w, const node_req_t *req, int rc)
{
    w->park_rc = rc;
    hie_log_error("audit", "audit record not sent: nothing disclosed", " org=%s id=%s rc=%s",
        req->org_id, req->env->id, hie_strerror_name(rc));
    return rc;
}

/* Sends the audit command and parks req until the log answers. Returns false (and replaces
 * the reply with UNAVAILABLE) when it cannot be sent: nothing is disclosed unaudited. */
static bool
audit_park(struct worker *w, node_req_t *req, node_audit_cmd_t *audit, Hie__V1__ErrorCode code)
{
    uint64_t token = 0;
    int rc = audit->build_rc;
    if (rc == 0 && w->parked_count == HIE_NODE_AUDIT_PARKED_MAX) {
        rc = HIE_EBUSY;
    }
    rc = rc ? rc : hie_node__submit_send_by(&w->audit_sub, &audit->cmd, submit_deadline(),
        &token);
    if (rc != 0) {
        return audit_not_sent(w, req, rc) == 0;
    }
    (void)park(w, req, token, code, audit->kick_org, false);
    return true;
}

static bool audit_flush(struct worker *w);

/* Parks req like audit_park, but stages its audit_append command for the wakeup's batch
 * (audit_flush sends it) instead of sending it now. The record is packed into the batch at
 * once, so the exchange's arena can go (worker.c frees it on return). When the batch would
 * outgrow a log command, what is staged is sent first. Returns false when the record cannot
 * be staged (the caller answers UNAVAILABLE). */
static bool
audit_stage(struct worker *w, node_req_t *req, node_audit_cmd_t *audit, Hie__V1__ErrorCode code)
{
    struct audit_stage *st = &w->stage;
    HIE_ASSERT(audit->build_rc == 0);
    HIE_ASSERT(audit->cmd.body_case == HIE__V1__COMMAND__BODY_AUDIT_APPEND);
    HIE_ASSERT(st->count < HIE_AUDIT_BATCH_RECORDS_MAX); /* one per request of the wakeup */
    if (w->parked_count == HIE_NODE_AUDIT_PARKED_MAX) {
        return audit_not_sent(w, req, HIE_EBUSY) == 0;
    }
    const Hie__V1__AuditAppendCommand *ac = audit->cmd.audit_append;
    int rc = hie_proto_batch_add(&st->batch, &audit->cmd, ac, HIE_LOG_COMMAND_BYTES_MAX);
    if (rc == HIE_ELIMIT && st->count > 0) {
        /* a failure answers those requests; this one goes on */
        st->stopping = !audit_flush(w) || st->stopping;
        rc = hie_proto_batch_add(&st->batch, &audit->cmd, ac, HIE_LOG_COMMAND_BYTES_MAX);
    }
    if (rc != 0) {
        return audit_not_sent(w, req, rc) == 0;
    }
    st->slots[st->count++] = park(w, req, 0, code, audit->kick_org, false);
    return true;
}

/* The log's answer to a parked request's command. */
struct log_answer {
    bool ok;                    /* committed and applied as asked */
    uint32_t acknowledged;      /* delivery acks: how many */
    Hie__V1__ErrorCode code;    /* !ok: apply's refusal (OVERLOADED: a full queue...), or 0 when
                                 * the command was not committed at all */
    const char *message;        /* the refusal's words */
};

static bool parked_finish(struct worker *w, struct parked *p, const struct log_answer *a);

/* The staged records as one command: audit_append for one, audit_batch (framed like the first
 * record's command) for several. */
static int
audit_flush_send(struct worker *w, uint64_t *token)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = hie_proto_batch_pack(&w->stage.batch, HIE_LOG_COMMAND_BYTES_MAX, &buf, &len);
    /* the first staged request parked first: its deadline is the earliest */
    uint64_t deadline = w->parked[w->stage.slots[0]].deadline_ns - AUDIT_SUBMIT_MARGIN_NS;
    rc = rc ? rc : hie_node__submit_send_packed(&w->audit_sub, hie_span(buf, len), deadline,
        token);
    hie_mem_free(buf, len);
    return rc;
}

/* Sends the wakeup's staged audit records; their requests wait for the one answer. If the
 * command cannot be sent, each of them is answered UNAVAILABLE (nothing disclosed unaudited).
 * Returns false when the context is shutting down. */
static bool
audit_flush(struct worker *w)
{
    struct audit_stage *st = &w->stage;
    HIE_ASSERT(st->count <= HIE_AUDIT_BATCH_RECORDS_MAX);
    if (st->count == 0) {
        return true;
    }
    uint64_t token = 0;
    int rc = audit_flush_send(w, &token);
    bool ok = true;
    if (rc != 0) { /* each request is then logged once, by parked_finish */
        hie_log_error("audit", "audit records not sent: nothing disclosed", " count=%zu rc=%s",
            st->count, hie_strerror_name(rc));
    }
    for (size_t i = 0; i < st->count; i++) {
        struct parked *p = &w->parked[st->slots[i]];
        HIE_ASSERT(p->req != NULL && p->token == 0);
        p->token = token;
        if (rc != 0) {
            ok = parked_finish(w, p, &(struct log_answer){false, 0, 0, NULL}) && ok;
        }
    }
    st->count = 0;
    hie_proto_batch_reset(&st->batch);
    return ok;
}

static bool
ack_park(struct worker *w, node_req_t *req, const hie_command_t *cmd, const char *org)
{
    uint64_t token = 0;
    int rc = w->parked_count == HIE_NODE_AUDIT_PARKED_MAX ? HIE_EBUSY
        : hie_node__submit_send_by(&w->audit_sub, cmd, submit_deadline(), &token);
    if (rc != 0) {
        return false;
    }
    (void)park(w, req, token, HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED, org, true);
    return true;
}

static void
reply_drop(node_req_t *req)
{
    hie_mem_free(req->reply_buf, req->reply_len);
    req->reply_buf = NULL;
    req->reply_len = 0;
}

/* Runs the exchange and packs its reply; *parked when the reply waits for its audit record. */
/* Exchanges that add nothing to storage, or free some: served however full it is. */
static bool
storage_neutral(Hie__V1__Envelope__BodyCase body)
{
    return body == HIE__V1__ENVELOPE__BODY_DELIVERY_ACK ||
           body == HIE__V1__ENVELOPE__BODY_UNSUBSCRIBE ||
           body == HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE ||
           body == HIE__V1__ENVELOPE__BODY_RECEIVE ||
           body == HIE__V1__ENVELOPE__BODY_CONSENT_LIST;
}

/* Is the state's or the log's map past HIE_STORAGE_REFUSE_PCT (storage_low) or
 * HIE_STORAGE_REFUSE_ALL_PCT (storage_full)? Looked at every 250 ms. */
static bool
storage_low(struct worker *w)
{
    uint64_t now = hie_time_mono_ns();
    if (w->storage_checked_ns != 0 && now - w->storage_checked_ns < 250000000ull) {
        return w->storage_low;
    }
    w->storage_checked_ns = now;
    uint64_t used[2] = {0, 0}, map[2] = {0, 0};
    bool low = false;
    /* the high-water mark first; the free list (a walk) only when that is past the line */
    for (int exact = 0; exact < 2 && (exact == 0 || low); exact++) {
        low = false;
        w->storage_full = false;
        if (hie_cluster_lmdb_usage(hie_node__state_env(w->ctx->state), exact, &used[0],
                &map[0]) == 0) {
            low = used[0] * 100u > map[0] * HIE_STORAGE_REFUSE_PCT;
            w->storage_full = used[0] * 100u > map[0] * HIE_STORAGE_REFUSE_ALL_PCT;
        }
        if (w->ctx->log != NULL && hie_cluster_log_usage(w->ctx->log, exact, &used[1],
                &map[1]) == 0) {
            low = low || used[1] * 100u > map[1] * HIE_STORAGE_REFUSE_PCT;
            w->storage_full = w->storage_full ||
                              used[1] * 100u > map[1] * HIE_STORAGE_REFUSE_ALL_PCT;
        }
    }
    if (low && (!w->storage_low || now - w->storage_warned_ns > 60000000000ull)) {
        w->storage_warned_ns = now;
        hie_log_error("worker", "storage nearly full: refusing new work", " state_used=%lu "
            "log_used=%lu map_bytes=%lu hint=\"raise storage.map_bytes and restart\"",
            used[0], used[1], map[0]);
    }
    w->storage_low = low;
    return low;
}

/* Exchanges that submit a command and wait for it on this thread (up to 10 s). */
static bool
submits_and_waits(Hie__V1__Envelope__BodyCase body)
{
    switch (body) {
    case HIE__V1__ENVELOPE__BODY_ADT:
    case HIE__V1__ENVELOPE__BODY_SUBSCRIBE:
    case HIE__V1__ENVELOPE__BODY_ROSTER_UPDATE:
    case HIE__V1__ENVELOPE__BODY_UNSUBSCRIBE:
    case HIE__V1__ENVELOPE__BODY_REPLAY:
    case HIE__V1__ENVELOPE__BODY_MPI_FEED:
    case HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT:
    case HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE:
    case HIE__V1__ENVELOPE__BODY_REVIEW_DECIDE:
    case HIE__V1__ENVELOPE__BODY_RESPONDER_REGISTER:
    case HIE__V1__ENVELOPE__BODY_RETRACT:
    case HIE__V1__ENVELOPE__BODY_AUDIT_REPORT: /* waits up to 2 s for the state commit */
        return true;
    default:
        return false;
    }
}

static Hie__V1__ErrorCode
handle_mpi(struct worker *w, node_req_t *req, hie_org_t *org, bool *parked)
{
    unsigned roles = mpi_roles(req->env->body_case);
    if (roles == 0) {
        return reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
            "exchange not supported");
    }
    if (!org_has_role(org, roles)) {
        return reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_FORBIDDEN,
            "the organization's roles do not allow this exchange");
    }
    if (req->env->purpose == HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY &&
        !hie_node__org_treats(org)) {
        return reply_error_field(w, req, HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, "emergency "
            "treatment (break-glass) is declared only by a hospital or a clinic", "purpose");
    }
    if (storage_low(w) && (!storage_neutral(req->env->body_case) || w->storage_full)) {
        return reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "the node's storage "
            "is nearly full; nothing was stored (the operator must raise storage.map_bytes)");
    }
    hie_arena_t *arena = NULL;
    if (hie_arena_create(&arena, NODE_EXCHANGE_ARENA_BYTES) != 0) {
        return reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "out of memory");
    }
    hie_envelope_t reply = HIE__V1__ENVELOPE__INIT;
    node_mpi_err_t e = {0};
    node_audit_cmd_t audit = {0};
    Hie__V1__ErrorCode code = HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED;
    if (submits_and_waits(req->env->body_case) && !audit_flush(w)) {
        /* the wakeup's staged records go to the log before this thread blocks on a commit:
         * their requests' deadlines run while it waits */
        w->stage.stopping = true;
    }
    if (mpi_run(w, req, org, arena, &reply, &audit, &e) != 0) {
        code = reply_error_field(w, req, e.code, e.message, e.field);
    } else if (!audit.forwarded && reply_pack(w, req, &reply) != 0) {
        code = reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_INTERNAL, "reply too large");
    }
    if (audit.forwarded) {
        *parked = true; /* waiting for responders: finished by fwd_finish */
    } else if (audit.needed) {
        bool stage = audit.build_rc == 0 &&
                     audit.cmd.body_case == HIE__V1__COMMAND__BODY_AUDIT_APPEND;
        *parked = stage ? audit_stage(w, req, &audit, code)
                        : audit_park(w, req, &audit, code);
        if (!*parked && w->park_rc == HIE_EBUSY) { /* the log's queue or the park ring */
            reply_drop(req);
            code = reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_OVERLOADED,
                "the node is busy; nothing was disclosed; retry with the same id");
        } else if (!*parked) {
            reply_drop(req);
            code = reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE,
                "the audit record could not be committed; retry with the same id");
        }
    }
    hie_arena_destroy(&arena); /* the command is packed: sent by submit_send, or staged */
    return code;
}

static enum node_req_kind
req_kind(const hie_envelope_t *env)
{
    switch (env->body_case) {
    case HIE__V1__ENVELOPE__BODY_PING:
        return REQ_KIND_PING;
    case HIE__V1__ENVELOPE__BODY_WHOAMI:
        return REQ_KIND_WHOAMI;
    default:
        return REQ_KIND_OTHER;
    }
}

/* Metrics and the request's log line, once its reply is final. */
static void
request_done(struct worker *w, node_req_t *req, Hie__V1__ErrorCode code, bool cached)
{
    uint64_t latency_us = (hie_time_mono_ns() - req->recv_ns) / 1000u;
    hie_node__metrics_observe(&w->ctx->metrics, req_kind(req->env),
        hie_node__outcome_from_code(code), latency_us);
    hie_log_info("worker", "request done", " org=%s id=%s type=%s outcome=%s repeat=%d "
        "latency_us=%lu", req->org_id, req->env->id, hie_proto_body_name(req->env),
        code ? hie_proto_error_code_name(code) : "OK", cached, latency_us);
}

/* Returns false when the request is parked (its reply waits for the audit record). */
static bool
handle_envelope(struct worker *w, node_req_t *req)
{
    HIE_ASSERT(req->env != NULL);
    HIE_ASSERT(req->arena != NULL);
    hie_org_t *org = NULL;
    bool cached = false, parked = false;
    Hie__V1__ErrorCode code = authorize_org(w, req, &org);
    bool cacheable = cache_kind(req);
    if (code == HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        cached = cacheable && cache_get(w, req);
        if (!cached && req->env->body_case == HIE__V1__ENVELOPE__BODY_PING) {
            code = handle_ping(w, req);
        } else if (!cached && req->env->body_case == HIE__V1__ENVELOPE__BODY_WHOAMI) {
            code = handle_whoami(w, req, org);
        } else if (!cached) {
            code = handle_mpi(w, req, org, &parked);
        }
        if (parked) {
            return false;
        }
        if (!cached && cacheable && code == HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
            cache_put(w, req);
        }
    }
    request_done(w, req, code, cached);
    return true;
}

static void
handle_auth(struct worker *w, node_req_t *req)
{
    hie_org_t *org = NULL;
    Hie__V1__ErrorCode code = authorize_org(w, req, &org);
    req->auth_ok = (code == HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED);
    if (req->auth_ok) {
        hie_log_info("worker", "member authenticated", " org=%s conn=%lu tls=%s", req->org_id,
            req->conn_id, req->tls_version);
    } /* a refusal was logged by authorize_org */
}

/* Hands req back to its edge thread. Returns false when the context is shutting down. */
static bool
send_back(struct worker *w, node_req_t *req)
{
    /* No HWM on either side: a send fails at once only when the edge has closed its end
     * (it finished draining at stop before this worker): the reply has nobody to go to, and
     * blocking here would hold every other edge's replies until the context ends. */
    HIE_ASSERT(req->edge_index < w->ctx->cfg.edge_threads);
    if (zmq_send(w->push[req->edge_index], &req, sizeof(req), ZMQ_DONTWAIT) != sizeof(req)) {
        int err = errno;
        hie_node__req_destroy(&req);
        return err == EINTR || err == EAGAIN;
    }
    return true;
}

/* The parked reply is final: committed (ok) or not (UNAVAILABLE instead). */
/* The applied acknowledgement's reply; the delivery thread may send acknowledged more. */
static Hie__V1__ErrorCode
ack_reply(struct worker *w, node_req_t *req, const char *org, uint32_t acknowledged)
{
    hie_envelope_t reply = HIE__V1__ENVELOPE__INIT;
    Hie__V1__DeliveryAckReply r = HIE__V1__DELIVERY_ACK_REPLY__INIT;
    r.acknowledged = acknowledged;
    reply.body_case = HIE__V1__ENVELOPE__BODY_DELIVERY_ACK_REPLY;
    reply.delivery_ack_reply = &r;
    hie_node__delivery_notify(w->dpush, DMSG_ACKED, org, 0, 0, acknowledged);
    if (reply_pack(w, req, &reply) != 0) {
        return reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_INTERNAL, "reply too large");
    }
    return HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED;
}

static bool
parked_finish(struct worker *w, struct parked *p, const struct log_answer *a)
{
    node_req_t *req = p->req;
    Hie__V1__ErrorCode code = p->code;
    bool ok = a->ok;
    p->req = NULL;
    if (p->ack) {
        code = ok ? ack_reply(w, req, p->kick_org, a->acknowledged)
             : a->code == HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST && a->message != NULL
                  ? reply_error(w, req, a->code, a->message)
                  : reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE,
                        "the acknowledgement was not committed; send it again");
        if (code == HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
            cache_put(w, req);
        }
    } else if (!ok && a->code == HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST) {
        /* refused by apply (the id of another kind of request): nothing stored or disclosed */
        reply_drop(req);
        code = reply_error(w, req, a->code, a->message != NULL && a->message[0] != '\0'
            ? a->message : "bad request");
    } else if (!ok && a->code == HIE__V1__ERROR_CODE__ERROR_OVERLOADED) {
        /* refused by apply for now (the recipient's queue is full): nothing was stored or
         * disclosed; the member hears why, and may retry with the same id */
        reply_drop(req);
        code = reply_error(w, req, a->code, a->message != NULL && a->message[0] != '\0'
            ? a->message : "overloaded; retry later with the same id");
    } else if (!ok) {
        hie_log_error("audit", "audit record not committed: nothing disclosed", " org=%s id=%s",
            req->org_id, req->env->id);
        reply_drop(req);
        code = reply_error(w, req, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE,
            "the audit record could not be committed; retry with the same id");
    } else if (code == HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        cache_put(w, req);
        if (p->kick_org[0] != '\0') {
            hie_node__delivery_notify(w->dpush, DMSG_KICK, p->kick_org, 0, 0, 0);
        }
    }
    request_done(w, req, code, false);
    while (w->parked_count > 0 && w->parked[w->parked_head].req == NULL) {
        w->parked_head = (w->parked_head + 1) % HIE_NODE_AUDIT_PARKED_MAX;
        w->parked_count--;
    }
    return send_back(w, req);
}

/* Finishes every request parked under tok (an audit_batch answers for several). */
static bool
parked_answer(struct worker *w, uint64_t tok, const struct log_answer *a)
{
    HIE_ASSERT(tok != 0); /* 0 marks records staged and not sent yet */
    size_t seen = w->parked_count; /* finishing may advance the head: walk a fixed range */
    size_t head = w->parked_head;
    for (size_t k = 0; k < seen; k++) {
        struct parked *p = &w->parked[(head + k) % HIE_NODE_AUDIT_PARKED_MAX];
        if (p->req != NULL && p->token == tok && !parked_finish(w, p, a)) {
            return false;
        }
    }
    return true;
}

/* Reads every audit answer available and finishes the requests they belong to. */
static bool
parked_answers(struct worker *w)
{
    for (unsigned i = 0; i < HIE_NODE_AUDIT_PARKED_MAX; i++) {
        uint64_t tok = 0, index = 0;
        int rc = 0;
        uint8_t *buf = NULL;
        size_t len = 0;
        int r = hie_cluster_submit_recv(w->audit_sub.dealer, &tok, &rc, &index, &buf, &len);
        if (r == HIE_ENOMEM) { /* consumed, its result lost: that request fails, not the thread */
            hie_log_error("worker", "an audit answer could not be read", " rc=%s",
                hie_strerror_name(r));
            if (!fwd_audit_answer(w, tok, false) &&
                !parked_answer(w, tok, &(struct log_answer){false, 0, 0, NULL})) {
                return false;
            }
            continue;
        }
        if (r != 0) {
            return r == HIE_EAGAIN;
        }
        Hie__V1__CommandResult *res = rc == 0 ? hie__v1__command_result__unpack(NULL, len, buf)
                                              : NULL;
        struct log_answer a = {res != NULL && res->code == HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED,
            res != NULL ? res->acknowledged : 0, res != NULL ? res->code : 0,
            res != NULL ? res->message : NULL};
        /* before res (its message) is freed */
        bool more = fwd_audit_answer(w, tok, a.ok) || parked_answer(w, tok, &a);
        if (res != NULL) {
            hie__v1__command_result__free_unpacked(res, NULL);
        }
        hie_mem_free(buf, len);
        if (!more) {
            return false;
        }
    }
    return true;
}

/* Fails the parked requests whose audit record is overdue (FIFO: the head is the oldest). */
static bool
parked_expire(struct worker *w, uint64_t now)
{
    while (w->parked_count > 0) {
        struct parked *p = &w->parked[w->parked_head];
        if (p->req != NULL && p->deadline_ns > now) {
            return true;
        }
        if (p->req != NULL && !parked_finish(w, p, &(struct log_answer){false, 0, 0, NULL})) {
            return false;
        }
        if (p->req == NULL && w->parked_count > 0 && &w->parked[w->parked_head] == p) {
            w->parked_head = (w->parked_head + 1) % HIE_NODE_AUDIT_PARKED_MAX;
            w->parked_count--;
        }
    }
    return true;
}

static long
poll_timeout_ms(const struct worker *w, uint64_t now)
{
    uint64_t d = w->parked_count > 0 ? w->parked[w->parked_head].deadline_ns : UINT64_MAX;
    for (unsigned i = 0; i < FWD_MAX; i++) {
        if (w->fwd[i].req != NULL && w->fwd[i].deadline_ns < d) {
            d = w->fwd[i].deadline_ns;
        }
    }
    if (d == UINT64_MAX) {
        return -1;
    }
    return d <= now ? 0 : (long)((d - now) / 1000000u) + 1;
}

/* Handles one queued request; *more is false when there was none. Returns false when the
 * thread must stop. */
static bool
worker_request(struct worker *w, bool *more)
{
    node_req_t *req = NULL;
    int n = zmq_recv(w->pull, &req, sizeof(req), ZMQ_DONTWAIT);
    if (n < 0) {
        *more = false;
        return errno == EINTR || errno == EAGAIN; /* ETERM: shutting down */
    }
    HIE_ASSERT(n == (int)sizeof(req));
    HIE_ASSERT(req != NULL && req->magic == NODE_REQ_MAGIC);
    if (req->type == NODE_REQ_AUTH) {
        handle_auth(w, req);
    } else {
        HIE_ASSERT(req->type == NODE_REQ_ENVELOPE);
        if (!handle_envelope(w, req)) {
            return true; /* parked: sent back when its audit record is committed */
        }
    }
    return send_back(w, req);
}

/* Takes up to HIE_AUDIT_BATCH_RECORDS_MAX queued requests (fewer if the park ring fills), then
 * sends the audit records they staged as one command. Returns false when the thread must
 * stop. */
static bool
worker_requests(struct worker *w)
{
    bool more = true, ok = true;
    HIE_ASSERT(w->stage.count == 0); /* every wakeup sends what it staged */
    for (unsigned i = 0; ok && more && i < HIE_AUDIT_BATCH_RECORDS_MAX &&
         w->parked_count < HIE_NODE_AUDIT_PARKED_MAX; i++) {
        ok = worker_request(w, &more);
    }
    ok = ok && audit_flush(w) && !w->stage.stopping;
    w->stage.stopping = false;
    return ok;
}

static bool
worker_once(struct worker *w)
{
    zmq_pollitem_t items[2] = {{w->audit_sub.dealer, 0, ZMQ_POLLIN, 0},
        {w->pull, 0, ZMQ_POLLIN, 0}};
    /* a full park ring stops intake: the edge's queue and the member's in-flight limit push
     * back */
    int count = w->parked_count < HIE_NODE_AUDIT_PARKED_MAX ? 2 : 1;
    if (zmq_poll(items, count, poll_timeout_ms(w, hie_time_mono_ns())) < 0) {
        return errno == EINTR;
    }
    if ((items[0].revents & ZMQ_POLLIN) != 0 && !parked_answers(w)) {
        return false;
    }
    if (!parked_expire(w, hie_time_mono_ns())) {
        return false;
    }
    fwd_expire(w, hie_time_mono_ns());
    if (count == 2 && (items[1].revents & ZMQ_POLLIN) != 0) {
        return worker_requests(w);
    }
    return true;
}

static void
worker_close_sockets(struct worker *w)
{
    if (w->sub.dealer != NULL) {
        hie_node__submitter_close(&w->sub);
    }
    if (w->audit_sub.dealer != NULL) {
        hie_node__submitter_close(&w->audit_sub);
    }
    if (w->dpush != NULL) {
        zmq_close(w->dpush);
        w->dpush = NULL;
    }
    for (unsigned i = 0; i < FWD_MAX; i++) {
        hie_node__req_destroy(&w->fwd[i].req);
    }
    w->stage.count = 0; /* stopped mid-wakeup: never sent */
    hie_proto_batch_free(&w->stage.batch);
    for (; w->parked != NULL && w->parked_count > 0; w->parked_count--) { /* shutting down */
        hie_node__req_destroy(&w->parked[w->parked_head].req);
        w->parked_head = (w->parked_head + 1) % HIE_NODE_AUDIT_PARKED_MAX;
    }
    if (w->pull != NULL) {
        zmq_close(w->pull);
        w->pull = NULL;
    }
    for (unsigned i = 0; i < NODE_EDGES_MAX; i++) {
        if (w->push[i] != NULL) {
            zmq_close(w->push[i]);
            w->push[i] = NULL;
        }
    }
}

static void *
worker_thread(void *arg)
{
    struct worker *w = arg;
    while (worker_once(w)) {
    }
    worker_close_sockets(w);
    return NULL;
}

static int
worker_sockets(struct worker *w)
{
    char ep[64];
    int linger = 0, hwm = (int)HIE_NODE_WORKER_QUEUE_MAX;
    w->dpush = zmq_socket(w->ctx->zctx, ZMQ_PUSH);
    if (w->dpush == NULL) {
        return -errno;
    }
    zmq_setsockopt(w->dpush, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(w->dpush, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    if (zmq_connect(w->dpush, NODE_EP_DELIVERY) != 0) {
        return -errno;
    }
    w->pull = zmq_socket(w->ctx->zctx, ZMQ_PULL);
    if (w->pull == NULL) {
        return -errno;
    }
    zmq_setsockopt(w->pull, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(w->pull, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    snprintf(ep, sizeof(ep), NODE_EP_WORKER_FMT, w->index);
    if (zmq_bind(w->pull, ep) != 0) {
        return -errno;
    }
    for (unsigned i = 0; i < w->ctx->cfg.edge_threads; i++) {
        w->push[i] = zmq_socket(w->ctx->zctx, ZMQ_PUSH);
        if (w->push[i] == NULL) {
            return -errno;
        }
        int unlimited = 0; /* with the edge's unlimited RCVHWM: a send waits only for a peer */
        zmq_setsockopt(w->push[i], ZMQ_LINGER, &linger, sizeof(linger));
        zmq_setsockopt(w->push[i], ZMQ_SNDHWM, &unlimited, sizeof(unlimited));
        snprintf(ep, sizeof(ep), NODE_EP_EDGE_REPLIES_FMT, i);
        if (zmq_connect(w->push[i], ep) != 0) { /* inproc connect before bind is fine */
            return -errno;
        }
    }
    return 0;
}

int
hie_node__workers_start(node_workers_t **out, node_ctx_t *ctx)
{
    HIE_ASSERT(out != NULL && ctx != NULL);
    HIE_ASSERT(ctx->cfg.workers >= 1 && ctx->cfg.workers <= HIE_NODE_WORKERS_MAX);
    *out = NULL;
    node_workers_t *ws = hie_mem_calloc(1, sizeof(*ws));
    if (ws == NULL) {
        return HIE_ENOMEM;
    }
    ws->w = hie_mem_calloc(ctx->cfg.workers, sizeof(*ws->w));
    if (ws->w == NULL) {
        hie_mem_free(ws, sizeof(*ws));
        return HIE_ENOMEM;
    }
    ws->allocated = ctx->cfg.workers;
    int rc = 0;
    for (unsigned i = 0; i < ctx->cfg.workers && rc == 0; i++) {
        struct worker *w = &ws->w[i];
        w->ctx = ctx;
        w->index = i;
        w->cache = hie_mem_calloc(HIE_NODE_REPLY_CACHE_ENTRIES, sizeof(*w->cache));
        rc = w->cache == NULL ? HIE_ENOMEM : worker_sockets(w);
        rc = rc == 0 ? hie_node__submitter_open(&w->sub, ctx->zctx) : rc;
        rc = rc == 0 ? hie_node__submitter_open(&w->audit_sub, ctx->zctx) : rc;
        w->parked = rc == 0 ? hie_mem_calloc(HIE_NODE_AUDIT_PARKED_MAX, sizeof(*w->parked))
                            : NULL;
        rc = rc == 0 && w->parked == NULL ? HIE_ENOMEM : rc;
        if (rc == 0) {
            rc = -pthread_create(&w->thread, NULL, worker_thread, w);
        }
        if (rc == 0) {
            char name[16];
            snprintf(name, sizeof(name), "hie-worker-%u", (unsigned)ws->count % 100u);
            pthread_setname_np(w->thread, name);
            ws->count++;
        }
    }
    *out = ws; /* even on failure: join cleans up what started */
    return rc;
}

void
hie_node__workers_join(node_workers_t **wsp)
{
    HIE_ASSERT(wsp != NULL);
    node_workers_t *ws = *wsp;
    if (ws == NULL) {
        return;
    }
    for (unsigned i = 0; i < ws->count; i++) {
        pthread_join(ws->w[i].thread, NULL); /* the caller shut the zmq context down */
    }
    for (unsigned i = 0; i < ws->allocated; i++) {
        struct worker *w = &ws->w[i];
        worker_close_sockets(w);
        for (unsigned c = 0; w->cache != NULL && c < HIE_NODE_REPLY_CACHE_ENTRIES; c++) {
            hie_mem_free(w->cache[c].frame, w->cache[c].len);
        }
        hie_mem_free(w->cache, HIE_NODE_REPLY_CACHE_ENTRIES * sizeof(*w->cache));
        hie_mem_free(w->parked, HIE_NODE_AUDIT_PARKED_MAX * sizeof(*w->parked));
        hie_node__rand_end(&w->rand);
    }
    hie_mem_free(ws->w, ws->allocated * sizeof(*ws->w));
    hie_mem_free(ws, sizeof(*ws));
    *wsp = NULL;
}
