/*
 * delivery.c - the delivery thread (issue 5): sends each recipient's queued messages on the
 * connection it asked to receive on, at most `window` unacknowledged at a time, in queue
 * order, and sends them again on its next connection until they are acknowledged.
 *
 * Inputs (inproc PULL, fixed-size node_dmsg_t from the workers):
 *   RECEIVE  a recipient asks for deliveries on connection conn_id (edge edge_index): the
 *            cursor restarts at its oldest unacknowledged message, so everything not yet
 *            acknowledged is sent again (flagged redelivery, same message id);
 *   KICK     a push for that recipient was committed;
 *   ACKED    the recipient's acknowledgement was committed (n messages left the queue).
 * Output: node_req_t of type NODE_REQ_DELIVERY (a whole frame, no request) to the edge thread
 * that owns the connection; a connection that is gone drops it (the message stays queued).
 * The queue itself is the replicated state (queue_state.c): this thread only reads it, so a
 * crash loses nothing but the cursor, which RECEIVE rebuilds.
 *
 * NEEDSWORK: redelivery on the same connection after an acknowledgement timeout, with
 * exponential backoff and jitter, a dead-letter state after a maximum age or attempt count,
 * and per-patient ordering with no head-of-line blocking across patients (today: queue order,
 * a window of unacknowledged messages) are the next steps of issue 5.
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define RECEIVERS_MAX 4096u /* distinct recipients with a receiving connection */
#define DELIVERY_ARENA_BYTES (4u * 1024u * 1024u)

struct receiver {
    char org[HIE_ORG_ID_BYTES_MAX + 1]; /* "" = free slot */
    uint64_t conn_id;
    uint32_t edge_index;
    uint32_t window;
    uint32_t inflight;
    uint64_t next_seq;    /* the next queue position to send from */
    uint64_t sent_hw;     /* highest seq ever sent: a seq at or below it is a redelivery */
};

struct node_delivery {
    node_ctx_t *ctx;
    pthread_t thread;
    bool started;
    void *pull;
    void *edge[NODE_EDGES_MAX];
    struct receiver *rx;  /* RECEIVERS_MAX, open addressing by org */
    uint64_t sent, dropped;
};

static struct receiver *
rx_find(struct node_delivery *d, const char *org, bool create)
{
    uint64_t h = hie_hash_pair(org, "rx");
    for (unsigned i = 0; i < RECEIVERS_MAX; i++) {
        struct receiver *r = &d->rx[(h + i) % RECEIVERS_MAX];
        if (strcmp(r->org, org) == 0) {
            return r;
        }
        if (r->org[0] == '\0') {
            if (!create) {
                return NULL;
            }
            snprintf(r->org, sizeof(r->org), "%s", org);
            return r;
        }
    }
    return NULL; /* full: the recipient waits until a node restart frees slots */
}

/* The delivery frame of one queued message (document opened with the data key). */
static int
frame_build(struct node_delivery *d, const struct receiver *r, uint64_t seq, hie_span_t stored,
    hie_arena_t *arena, uint8_t **buf, size_t *len)
{
    ProtobufCMessage *m = NULL, *dm = NULL;
    int rc = hie_proto_unpack(&hie__v1__queued_message__descriptor, stored, arena, &m);
    Hie__V1__QueuedMessage *q = (Hie__V1__QueuedMessage *)m;
    if (rc != 0 || q->sealed_document.len < HIE_MPI_SEAL_NONCE_BYTES) {
        return HIE_ECORRUPT;
    }
    size_t cap = q->sealed_document.len, plen = 0;
    uint8_t *plain = hie_arena_alloc(arena, cap);
    rc = plain == NULL ? HIE_ENOMEM : 0;
    rc = rc ? rc : hie_mpi_open(hie_node__state_mpi_key(d->ctx->state),
        hie_span(q->sealed_document.data + HIE_MPI_SEAL_NONCE_BYTES,
            cap - HIE_MPI_SEAL_NONCE_BYTES),
        hie_span((const uint8_t *)q->message_id, strlen(q->message_id)),
        q->sealed_document.data, plain, cap, &plen);
    rc = rc ? rc : hie_proto_unpack(&hie__v1__document__descriptor, hie_span(plain, plen),
        arena, &dm);
    if (rc != 0) {
        return HIE_ECORRUPT;
    }
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    snprintf(id, sizeof(id), "dlv.%" PRIu64 ".%" PRIu64, r->conn_id & 0xffffffffu, seq);
    hie_envelope_t env = HIE__V1__ENVELOPE__INIT;
    Hie__V1__Delivery dl = HIE__V1__DELIVERY__INIT;
    dl.message_id = q->message_id;
    dl.seq = seq;
    dl.sender_org = q->sender_org;
    dl.document = (Hie__V1__Document *)dm;
    dl.euid = q->euid;
    dl.accepted_ms = q->accepted_ms;
    dl.redelivery = seq <= r->sent_hw;
    env.id = id;
    env.handled_ms = hie_time_wall_ms();
    env.body_case = HIE__V1__ENVELOPE__BODY_DELIVERY;
    env.delivery = &dl;
    rc = hie_proto_frame_encode(&env, d->ctx->cfg.frame_bytes_max, buf, len);
    sodium_memzero(plain, cap);
    return rc;
}

struct pump {
    struct node_delivery *d;
    struct receiver *r;
    hie_arena_t *arena;
    int rc;
};

static int
pump_one(void *ctx, uint64_t seq, hie_span_t stored)
{
    struct pump *p = ctx;
    struct receiver *r = p->r;
    if (r->inflight >= r->window) {
        return 1;
    }
    node_req_t *req = hie_mem_calloc(1, sizeof(*req));
    if (req == NULL) {
        p->rc = HIE_ENOMEM;
        return 1;
    }
    req->magic = NODE_REQ_MAGIC;
    req->type = NODE_REQ_DELIVERY;
    req->conn_id = r->conn_id;
    req->edge_index = r->edge_index;
    p->rc = frame_build(p->d, r, seq, stored, p->arena, &req->reply_buf, &req->reply_len);
    if (p->rc != 0 || zmq_send(p->d->edge[r->edge_index], &req, sizeof(req), 0) !=
        (int)sizeof(req)) {
        hie_node__req_destroy(&req);
        p->rc = p->rc != 0 ? p->rc : -errno;
        return 1;
    }
    r->next_seq = seq + 1;
    r->sent_hw = seq > r->sent_hw ? seq : r->sent_hw;
    r->inflight++;
    p->d->sent++;
    return 0;
}

/* Sends what the window allows. */
static void
pump(struct node_delivery *d, struct receiver *r)
{
    if (r->conn_id == 0 || r->inflight >= r->window) {
        return;
    }
    MDB_txn *txn = NULL;
    struct pump p = {d, r, NULL, 0};
    int rc = hie_arena_create(&p.arena, DELIVERY_ARENA_BYTES);
    rc = rc ? rc : (mdb_txn_begin(hie_node__state_env(d->ctx->state), NULL, MDB_RDONLY, &txn)
        ? HIE_ESTORAGE : 0);
    rc = rc ? rc : hie_node__queue_scan(hie_node__state_queue(d->ctx->state), txn, r->org,
        r->next_seq, r->window - r->inflight, pump_one, &p);
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    hie_arena_destroy(&p.arena);
    rc = rc ? rc : p.rc;
    if (rc != 0) {
        hie_log_error("delivery", "delivery stalled", " org=%s seq=%" PRIu64 " rc=%s", r->org,
            r->next_seq, hie_strerror_name(rc));
    }
}

static void
on_message(struct node_delivery *d, const node_dmsg_t *m)
{
    struct receiver *r = rx_find(d, m->org, m->type == DMSG_RECEIVE);
    if (r == NULL) {
        if (m->type == DMSG_RECEIVE) {
            hie_log_error("delivery", "too many receiving organizations", " org=%s", m->org);
        }
        return; /* KICK/ACKED for an org that is not receiving: its queue waits */
    }
    switch (m->type) {
    case DMSG_RECEIVE: /* from the oldest unacknowledged message, on the new connection */
        r->conn_id = m->conn_id;
        r->edge_index = m->edge_index;
        r->window = m->window;
        r->inflight = 0;
        r->next_seq = 0;
        break;
    case DMSG_ACKED:
        r->inflight = m->acked < r->inflight ? r->inflight - m->acked : 0;
        break;
    default:
        break; /* KICK: a new message; pump below */
    }
    pump(d, r);
}

static void *
delivery_thread(void *arg)
{
    struct node_delivery *d = arg;
    for (;;) {
        node_dmsg_t m;
        int n = zmq_recv(d->pull, &m, sizeof(m), 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break; /* ETERM: the node is stopping */
        }
        HIE_ASSERT(n == (int)sizeof(m)); /* our own threads send these */
        HIE_ASSERT(m.type >= DMSG_RECEIVE && m.type <= DMSG_ACKED);
        m.org[sizeof(m.org) - 1] = '\0';
        on_message(d, &m);
    }
    return NULL;
}

static int
delivery_sockets(struct node_delivery *d)
{
    int linger = 0;
    d->pull = zmq_socket(d->ctx->zctx, ZMQ_PULL);
    if (d->pull == NULL || zmq_bind(d->pull, NODE_EP_DELIVERY) != 0) {
        return -errno;
    }
    for (unsigned i = 0; i < d->ctx->cfg.edge_threads; i++) {
        char ep[64];
        d->edge[i] = zmq_socket(d->ctx->zctx, ZMQ_PUSH);
        if (d->edge[i] == NULL) {
            return -errno;
        }
        zmq_setsockopt(d->edge[i], ZMQ_LINGER, &linger, sizeof(linger));
        snprintf(ep, sizeof(ep), NODE_EP_EDGE_REPLIES_FMT, i);
        if (zmq_connect(d->edge[i], ep) != 0) {
            return -errno;
        }
    }
    return 0;
}

int
hie_node__delivery_start(node_delivery_t **out, node_ctx_t *ctx)
{
    HIE_ASSERT(out != NULL && ctx != NULL);
    *out = NULL;
    struct node_delivery *d = hie_mem_calloc(1, sizeof(*d));
    if (d == NULL) {
        return HIE_ENOMEM;
    }
    d->ctx = ctx;
    *out = d;
    d->rx = hie_mem_calloc(RECEIVERS_MAX, sizeof(*d->rx));
    int rc = d->rx == NULL ? HIE_ENOMEM : delivery_sockets(d);
    if (rc == 0) {
        rc = -pthread_create(&d->thread, NULL, delivery_thread, d);
        d->started = rc == 0;
    }
    return rc;
}

void
hie_node__delivery_join(node_delivery_t **dp)
{
    HIE_ASSERT(dp != NULL);
    struct node_delivery *d = *dp;
    if (d == NULL) {
        return;
    }
    if (d->started) {
        pthread_join(d->thread, NULL);
    }
    if (d->pull != NULL) {
        zmq_close(d->pull);
    }
    for (unsigned i = 0; i < NODE_EDGES_MAX; i++) {
        if (d->edge[i] != NULL) {
            zmq_close(d->edge[i]);
        }
    }
    hie_mem_free(d->rx, RECEIVERS_MAX * sizeof(*d->rx));
    hie_mem_free(d, sizeof(*d));
    *dp = NULL;
}

void
hie_node__delivery_notify(void *sock, enum node_dmsg_type type, const char *org,
    uint64_t conn_id, uint32_t edge_index, uint32_t n)
{
    node_dmsg_t m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.conn_id = conn_id;
    m.edge_index = edge_index;
    m.window = type == DMSG_RECEIVE ? n : 0;
    m.acked = type == DMSG_ACKED ? n : 0;
    snprintf(m.org, sizeof(m.org), "%s", org);
    if (zmq_send(sock, &m, sizeof(m), ZMQ_DONTWAIT) != (int)sizeof(m)) {
        /* the delivery thread is gone (stopping) or far behind: the queue is durable, and the
         * recipient's next RECEIVE or KICK resumes it */
        hie_log_warn("delivery", "notification dropped", " org=%s type=%d", org, (int)type);
    }
}
