/*
 * edge.c - the member edge: TCP accept, TLS handshake, framing, backpressure, timeouts.
 *
 * One thread, one epoll set, non-blocking sockets and OpenSSL in non-blocking mode. It never
 * touches LMDB: decoded envelopes go to workers over inproc:// (a pointer to a node_req_t; the
 * worker owns it until it sends it back), replies come back the same way.
 *
 * Order of checks on untrusted bytes (style.md 3.7): mutual TLS completes before any
 * application byte is read; then the 4-byte length is checked against the frame limit before
 * the body is buffered; the body is decoded in a capped arena. A malformed frame gets one Error
 * and the connection is closed; nothing is re-synchronized. A frame that parses, with a valid
 * id, and fails a check on its content gets a correlated Error and the connection stays.
 *
 * Backpressure: a connection with inflight_max requests in flight, HIE_EDGE_INFLIGHT_BYTES_MAX
 * of request frames in flight (or, with any in flight, while the edge's connections together
 * hold limits.edge_buffer_bytes_max), or more than HIE_EDGE_WRITE_BUFFER_BYTES_MAX of
 * unsent replies, is not read until that drains. A frame's buffer grows with the bytes that
 * arrive, not to the length its prefix announces; to grow past EDGE_RBUF_KEEP_BYTES the frame
 * is admitted, its whole length counted against the edge-wide budget at once, when that fits
 * (or when no other frame is admitted): an admitted frame can always finish, so frames never
 * wait on each other, and many connections each sending most of a large frame cannot hold
 * the node's memory. One waiting for admission is not read, its frame timer stopped (it holds
 * EDGE_RBUF_KEEP_BYTES at most); an admitted one that stalls is cut by its timer. Each
 * wakeup reads at most EDGE_FRAMES_PER_WAKEUP frames from one connection, so one busy or slow
 * client never stalls the others.
 *
 * Connection states: HANDSHAKE -> AUTH (a worker checks the registry) -> OPEN -> closed.
 */
#include "node_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#define EDGE_FRAMES_PER_WAKEUP 16u
#define EDGE_TICK_MS 100
#define EDGE_EVENTS_MAX 256
#define EDGE_SLOT_BITS 20u
#define EDGE_RBUF_KEEP_BYTES (64u * 1024u)
/* One organization's admitted frames take at most this part of the edge budget. */
#define EDGE_ORG_SHARE_DIV 4u
#define EDGE_ARENA_FIRST_MAX (16u * 1024u) /* the arena's usual first block */
/* Queued replies merged into one buffer (and so one TLS record) by conn_write, at most. */
#define EDGE_MERGE_BYTES_MAX (16u * 1024u)
/* One accept per wakeup: with EPOLLEXCLUSIVE the next pending connection then wakes an idle
 * edge thread instead of queueing its handshake behind this one. */
#define EDGE_ACCEPTS_PER_WAKEUP 1u
/* Connections shed for want of file descriptors: one warning (with the count) at most so
 * often. */
#define EDGE_ACCEPT_LOG_NS (10ull * 1000000000ull)

_Static_assert(HIE_EDGE_CONNECTIONS_MAX < (1u << EDGE_SLOT_BITS), "slot bits too few");
#define EDGE_INDEX_BITS 4u
_Static_assert(NODE_EDGES_MAX <= (1u << EDGE_INDEX_BITS), "edge index bits too few");

enum conn_state { C_HANDSHAKE, C_AUTH, C_OPEN };
#define EDGE_HANDSHAKES_MIN 8u /* an edge's share of the handshake cap, at least */

struct conn {
    uint64_t id;
    int fd;
    SSL *ssl;
    enum conn_state state;
    char peer[64];
    char org_id[HIE_ORG_ID_BYTES_MAX + 1];
    uint8_t *rbuf;
    size_t rlen, rcap;
    size_t admitted;             /* the frame's whole length, counted in rbuf_bytes once its
                                  * buffer grew past EDGE_RBUF_KEEP_BYTES; 0: none */
    uint32_t frame_body_bytes;   /* 0 until the 4-byte prefix is read */
    uint64_t frame_start_ns;     /* first byte of the current frame; 0 between frames */
    uint64_t last_active_ns;
    uint64_t hs_deadline_ns;
    int64_t cert_expiry_ms;      /* earliest notAfter of the verified chain (wall clock) */
    node_wbuf_t *wq_head, *wq_tail;
    size_t wq_bytes;
    uint32_t inflight;
    uint64_t inflight_bytes;     /* request frames read and not answered yet */
    bool close_after_flush;
    bool cut;                    /* its organization suspended: no reply goes out any more */
    bool read_wants_write;       /* SSL_read asked for writability */
    bool write_wants_read;
    bool in_pending;             /* listed in edge->pending */
    bool peer_half_closed;       /* EPOLLRDHUP seen: not asked for again while reads pause */
    bool in_flush;               /* listed in edge->flush: replies queued, not written yet */
    bool org_counted;            /* counted in ctx->org_conns (given back at close) */
    bool receiving;              /* deliveries come here: the delivery thread hears its close */
    uint32_t events;             /* registered epoll events */
};

struct node_edge {
    node_ctx_t *ctx;
    unsigned index;
    pthread_t thread;
    int epfd;
    bool listening;
    int spare_fd;                /* /dev/null, given up to accept (and shed) one connection
                                  * when the process is out of file descriptors */
    uint64_t accept_resume_ns;   /* != 0: the listening socket left out until then */
    uint64_t accept_shed;        /* connections shed for want of descriptors, not logged yet */
    uint64_t accept_log_ns;      /* the next warning about it, not before */
    SSL_CTX *ssl_ctx;
    void *replies;               /* PULL, bound NODE_EP_EDGE_REPLIES_FMT */
    void *ctl;                   /* ROUTER, bound NODE_EP_EDGE_CTL_FMT */
    void *adopt;                 /* PULL, bound NODE_EP_EDGE_ADOPT_FMT: accepted fds handed in */
    void *hand[NODE_EDGES_MAX];  /* PUSH to every edge's adopt socket (own index unused) */
    void **to_worker;            /* PUSH per worker */
    void *to_delivery;           /* PUSH to the delivery thread: receiving connections' ends */
    struct conn **slots;
    uint32_t slots_count;        /* connections_max: the limit itself is node-wide */
    uint64_t *pending;           /* ids of connections whose TLS layer holds unread bytes:
                                  * each open connection at most once (in_pending) */
    uint64_t *pending_work;      /* the ones being served (they may list themselves again) */
    uint32_t pending_count;
    uint64_t *flush;             /* ids of connections with replies queued by this drain */
    uint32_t flush_count;
    uint32_t open_count;
    uint32_t handshaking;        /* of open_count, still in their TLS handshake */
    uint64_t inflight_bytes;     /* every connection's, replies to gone ones included */
    uint64_t rbuf_bytes;         /* frames being read, admitted past EDGE_RBUF_KEEP_BYTES */
    bool budget_wake;            /* fell back under cfg.edge_buffer_bytes_max: the
                                  * next tick wakes the connections that budget paused */
    uint64_t generation;
    bool draining;
    uint64_t drain_deadline_ns;
    zmq_msg_t drain_identity;
    bool drain_waiting;
    bool stop;
    int start_rc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started;
};

/* epoll tags for the non-connection fds */
static int tag_listen, tag_replies, tag_ctl, tag_adopt;

/* ---- connection bookkeeping ------------------------------------------------------------- */

static struct conn *
conn_lookup(node_edge_t *e, uint64_t id)
{
    uint32_t slot = (uint32_t)(id & ((1u << EDGE_SLOT_BITS) - 1));
    if (slot >= e->slots_count) {
        return NULL;
    }
    struct conn *c = e->slots[slot];
    return (c != NULL && c->id == id) ? c : NULL;
}

static void
conn_set_events(node_edge_t *e, struct conn *c, uint32_t events)
{
    if (events == c->events) {
        return;
    }
    struct epoll_event ev = {.events = events, .data.ptr = c};
    int rc = epoll_ctl(e->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    HIE_ASSERT(rc == 0);
    c->events = events;
}

/* The edge's frame and buffer bytes together are over its budget. */
static bool
edge_over_budget(const node_edge_t *e)
{
    return e->inflight_bytes + e->rbuf_bytes >= e->ctx->cfg.edge_buffer_bytes_max;
}

/* The whole length of c's current frame (prefix included); 0 before its prefix. */
static size_t
frame_total(const struct conn *c)
{
    return c->frame_body_bytes == 0 ? 0
                                    : HIE_PROTO_FRAME_HEADER_BYTES + (size_t)c->frame_body_bytes;
}

/* c's next buffer size for a frame of total bytes: doubled (at least 4 KiB, at most total). */
static size_t
rbuf_next_cap(const struct conn *c, size_t total)
{
    size_t cap = c->rcap < 2048 ? 4096 : 2 * c->rcap;
    return cap < total ? cap : total;
}

/* Counts (admit) or releases c's frame in the edge's budget; falling back under it wakes the
 * connections it paused. */
static void
rbuf_admit(node_edge_t *e, struct conn *c, bool admit)
{
    bool over = edge_over_budget(e);
    size_t n = admit ? frame_total(c) : c->admitted;
    HIE_ASSERT(admit ? c->admitted == 0 : e->rbuf_bytes >= n);
    if (admit) {
        e->rbuf_bytes += n;
        atomic_fetch_add(&e->ctx->metrics.edge_buffer_bytes, n);
    } else {
        e->rbuf_bytes -= n;
        atomic_fetch_sub(&e->ctx->metrics.edge_buffer_bytes, n);
    }
    c->admitted = admit ? n : 0;
    if (c->org_counted && e->ctx->org_conns != NULL) {
        hie_node__org_conns_admit(e->ctx->org_conns, c->org_id, admit ? (int64_t)n
                                                                        : -(int64_t)n);
    }
    /* a release may let a frame waiting for admission in, over the budget or not before */
    e->budget_wake |= (over && !edge_over_budget(e)) || !admit;
}

/* c has read all its buffer holds of a frame that needs more, growing it would pass
 * EDGE_RBUF_KEEP_BYTES, and the frame is not admitted and does not fit the budget (while
 * another frame is admitted: one always goes). */
static bool
rbuf_waits(const node_edge_t *e, const struct conn *c)
{
    size_t total = frame_total(c);
    if (total == 0 || c->admitted != 0 || c->rlen != c->rcap || c->rlen >= total ||
        rbuf_next_cap(c, total) <= EDGE_RBUF_KEEP_BYTES) {
        return false;
    }
    if (e->rbuf_bytes != 0 &&
        e->inflight_bytes + e->rbuf_bytes + total > e->ctx->cfg.edge_buffer_bytes_max) {
        return true;
    }
    /* an organization's frames take at most a share of the budget (one frame always): many
     * connections of one member each just past 64 KiB cannot hold it all */
    uint64_t held = c->org_counted && e->ctx->org_conns != NULL
        ? hie_node__org_conns_admitted(e->ctx->org_conns, c->org_id) : 0;
    return held != 0 && held + total > e->ctx->cfg.edge_buffer_bytes_max / EDGE_ORG_SHARE_DIV;
}

/* While the registry check of a new connection (C_AUTH) is under way, requests are read
 * already: each request is authorized by its worker anyway, so this saves a round trip. */
static bool
conn_read_paused(const node_edge_t *e, const struct conn *c)
{
    return c->close_after_flush || e->draining || rbuf_waits(e, c) ||
           c->inflight >= e->ctx->cfg.inflight_max ||
           c->wq_bytes >= HIE_EDGE_WRITE_BUFFER_BYTES_MAX ||
           (c->inflight > 0 && (c->inflight_bytes >= HIE_EDGE_INFLIGHT_BYTES_MAX ||
                                   e->inflight_bytes >= e->ctx->cfg.edge_buffer_bytes_max));
}

/* Recomputes which readiness events the connection waits for. */
static void
conn_update_events(node_edge_t *e, struct conn *c)
{
    uint32_t ev = 0;
    if (c->state == C_HANDSHAKE) {
        ev = EPOLLIN | (SSL_want_write(c->ssl) ? EPOLLOUT : 0);
    } else {
        if (!conn_read_paused(e, c) || c->write_wants_read) {
            ev |= EPOLLIN;
        }
        if (c->wq_head != NULL || c->read_wants_write) {
            ev |= EPOLLOUT;
        }
    }
    /* a half-closed peer's RDHUP is level-triggered: while reading is paused nothing would
     * consume it and epoll would return at once, over and over (the read that resumes sees the
     * end of the stream) */
    bool rdhup = !c->peer_half_closed || (ev & EPOLLIN) != 0;
    conn_set_events(e, c, ev | (rdhup ? EPOLLRDHUP : 0));
}

static void
conn_close(node_edge_t *e, struct conn *c, const char *why)
{
    hie_log_debug("edge", "connection closed", " conn=%lu peer=%s org=%s why=%s", c->id,
        c->peer, c->org_id[0] ? c->org_id : "-", why);
    uint32_t slot = (uint32_t)(c->id & ((1u << EDGE_SLOT_BITS) - 1));
    HIE_ASSERT(e->slots[slot] == c);
    e->slots[slot] = NULL;
    for (uint32_t i = 0; c->in_pending && i < e->pending_count; i++) {
        if (e->pending[i] == c->id) { /* the slot's next connection may list itself */
            e->pending[i] = e->pending[--e->pending_count];
            c->in_pending = false;
        }
    }
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl != NULL) {
        if (c->state != C_HANDSHAKE && !c->read_wants_write) {
            (void)SSL_shutdown(c->ssl); /* best effort close_notify; never wait for it */
        }
        SSL_free(c->ssl);
    }
    close(c->fd);
    if (c->admitted != 0) { /* before the give: the organization's count of it goes too */
        rbuf_admit(e, c, false);
    }
    if (c->org_counted) {
        hie_node__org_conns_give(e->ctx->org_conns, c->org_id);
    }
    if (c->receiving && e->to_delivery != NULL && !e->stop) {
        hie_node__delivery_notify(e->to_delivery, DMSG_CLOSED, c->org_id, c->id, e->index, 0);
    }
    if (c->state == C_HANDSHAKE) {
        atomic_fetch_sub(&e->ctx->metrics.connections_handshaking, 1);
        e->handshaking--;
    }
    for (node_wbuf_t *w = c->wq_head; w != NULL;) {
        node_wbuf_t *next = w->next;
        hie_mem_free(w->buf, w->len);
        hie_mem_free(w, sizeof(*w));
        w = next;
    }
    hie_mem_free(c->rbuf, c->rcap);
    hie_mem_free(c, sizeof(*c));
    e->open_count--;
    atomic_fetch_sub(&e->ctx->edge_load[e->index], 1);
    atomic_fetch_sub(&e->ctx->metrics.connections_open, 1);
    ERR_clear_error();
}

/* Queues a whole frame for writing; takes ownership of buf. */
static void
conn_queue(node_edge_t *e, struct conn *c, uint8_t *buf, size_t len)
{
    node_wbuf_t *w = hie_mem_alloc(sizeof(*w));
    if (w == NULL) {
        hie_mem_free(buf, len);
        c->close_after_flush = true; /* cannot queue the reply: the client will retry */
        return;
    }
    w->next = NULL;
    w->buf = buf;
    w->len = len;
    w->off = 0;
    w->tried = false;
    if (c->wq_tail != NULL) {
        c->wq_tail->next = w;
    } else {
        c->wq_head = w;
    }
    c->wq_tail = w;
    c->wq_bytes += len;
}

/* Sends an Error envelope built by the edge itself (decode failures, overload), then
 * optionally closes. The message is a constant: never echo input bytes. */
static void
conn_error(node_edge_t *e, struct conn *c, Hie__V1__ErrorCode code, const char *message,
    const char *field, const char *corr_id, bool close_after)
{
    hie_envelope_t env = HIE__V1__ENVELOPE__INIT;
    Hie__V1__Error err = HIE__V1__ERROR__INIT;
    char id[48];
    snprintf(id, sizeof(id), "n.edge.%lx", ++e->generation);
    err.code = code;
    err.message = (char *)(uintptr_t)message;
    err.field = (char *)(uintptr_t)(field != NULL ? field : "");
    env.id = id;
    env.correlation_id = (char *)(uintptr_t)(corr_id != NULL ? corr_id : "");
    env.handled_ms = hie_time_wall_ms();
    env.body_case = HIE__V1__ENVELOPE__BODY_ERROR;
    env.error = &err;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (hie_proto_frame_encode(&env, HIE_PROTO_FRAME_BYTES_MAX, &buf, &len) == 0) {
        conn_queue(e, c, buf, len);
    }
    if (close_after) {
        c->close_after_flush = true;
    }
}

/* ---- handing requests to workers --------------------------------------------------------- */

/* Posts req to its worker. On success the worker owns req and *reqp is NULL. */
static int
edge_post(node_edge_t *e, node_req_t **reqp)
{
    node_req_t *req = *reqp;
    HIE_ASSERT(req != NULL && req->magic == NODE_REQ_MAGIC);
    const char *id = req->env != NULL ? req->env->id : NULL;
    unsigned w = (unsigned)(hie_hash_pair(req->org_id, id) % e->ctx->cfg.workers);
    if (req->env != NULL && req->env->body_case == HIE__V1__ENVELOPE__BODY_QUERY_ANSWER) {
        /* a responder's answer goes to the worker holding the query: "qf.<worker>.<n>" */
        unsigned owner = 0;
        const char *q = req->env->query_answer->query_id;
        if (q != NULL && sscanf(q, "qf.%u.", &owner) == 1 && owner < e->ctx->cfg.workers) {
            w = owner;
        }
    }
    if (zmq_send(e->to_worker[w], &req, sizeof(req), ZMQ_DONTWAIT) != sizeof(req)) {
        return HIE_EBUSY; /* the worker's queue is full: answer OVERLOADED */
    }
    *reqp = NULL;
    return 0;
}

static node_req_t *
req_new(node_edge_t *e, struct conn *c, enum node_req_type type)
{
    node_req_t *req = hie_mem_calloc(1, sizeof(*req));
    if (req == NULL) {
        return NULL;
    }
    req->magic = NODE_REQ_MAGIC;
    req->type = type;
    req->conn_id = c->id;
    req->edge_index = e->index;
    req->recv_ns = hie_time_mono_ns();
    snprintf(req->org_id, sizeof(req->org_id), "%s", c->org_id);
    snprintf(req->tls_version, sizeof(req->tls_version), "%s", SSL_get_version(c->ssl));
    snprintf(req->cipher, sizeof(req->cipher), "%s", SSL_get_cipher_name(c->ssl));
    return req;
}

/* ---- reading frames ---------------------------------------------------------------------- */

/* The frame being read is done with (read, rejected, timed out, or cut by a half-close): its
 * admission and large buffer go now, not when the connection finally closes. */
static void
frame_abandon(node_edge_t *e, struct conn *c)
{
    if (c->admitted != 0) {
        rbuf_admit(e, c, false);
    }
    if (c->rcap > EDGE_RBUF_KEEP_BYTES) {
        hie_mem_free(c->rbuf, c->rcap);
        c->rbuf = NULL;
        c->rcap = 0;
    }
    c->rlen = 0;
    c->frame_body_bytes = 0;
    c->frame_start_ns = 0;
}

static void
frame_done(node_edge_t *e, struct conn *c)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *env = NULL;
    hie_errinfo_t info = {0};
    node_req_t *req = NULL;
    size_t consumed = 0;
    uint32_t max = e->ctx->cfg.frame_bytes_max;
    /* the envelope lives as long as its request (parked until its audit record commits):
     * a first block sized to the frame, not 16 KiB for every 200-byte query */
    size_t first = c->rlen < EDGE_ARENA_FIRST_MAX / 2 ? 2u * c->rlen + 512u : EDGE_ARENA_FIRST_MAX;
    int rc = hie_arena_create_first(&arena, (size_t)max * 3u, first);
    if (rc == 0) {
        rc = hie_proto_frame_decode(hie_span(c->rbuf, c->rlen), max, arena, &env, &consumed,
            &info);
    }
    /* a request that parses, with a valid id, and fails a check on its content is answered
     * like any bad request: correlated, the connection kept (its pipelined requests too) */
    const char *corr = rc == HIE_EINVAL ? hie_proto_envelope_id(hie_span(c->rbuf +
        HIE_PROTO_FRAME_HEADER_BYTES, c->rlen - HIE_PROTO_FRAME_HEADER_BYTES), arena) : NULL;
    frame_abandon(e, c); /* read: its buffer and admission go (the envelope is in arena) */
    if (rc != 0) {
        atomic_fetch_add(&e->ctx->metrics.frames_rejected, 1);
        hie_log_warn("edge", "frame rejected", " conn=%lu org=%s rc=%s field=%s reason=\"%s\"",
            c->id, c->org_id, hie_strerror_name(rc), info.field ? info.field : "-",
            info.reason ? info.reason : "-");
        conn_error(e, c, rc == HIE_ENOMEM ? HIE__V1__ERROR_CODE__ERROR_OVERLOADED
            : HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, info.reason ? info.reason :
            "malformed envelope", info.field, corr, corr == NULL);
        hie_arena_destroy(&arena);
        return;
    }
    HIE_ASSERT(consumed > 0);
    req = req_new(e, c, NODE_REQ_ENVELOPE);
    if (req != NULL) {
        req->arena = arena;
        req->env = env;
        /* what it holds: its decoded form, when larger than its frame (at most 3 frames) */
        size_t held = hie_arena_used_bytes(arena);
        req->in_bytes = (uint32_t)(held > consumed ? held : consumed);
        arena = NULL;
        uint32_t in = req->in_bytes;
        rc = edge_post(e, &req);
        if (rc == 0) {
            c->inflight_bytes += in;
            e->inflight_bytes += in;
            atomic_fetch_add(&e->ctx->metrics.edge_buffer_bytes, in);
        }
    } else {
        rc = HIE_ENOMEM; /* answered as overloaded, not dropped: every request gets a reply */
    }
    if (req != NULL || rc != 0) {
        conn_error(e, c, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "node overloaded, retry later",
            NULL, env->id, false);
        hie_node__req_destroy(&req); /* frees env with its arena */
        hie_arena_destroy(&arena);
        return;
    }
    c->inflight++;
}

/* Makes room in rbuf for more of a frame of total bytes, which the caller checked against
 * the frame limit: when it is full, doubled (at least 4 KiB, at most total), not grown to
 * total at once, so that it holds about what the peer has sent. */
static int
rbuf_reserve(node_edge_t *e, struct conn *c, size_t total)
{
    if (c->rcap >= total || c->rlen < c->rcap) {
        return 0;
    }
    size_t cap = rbuf_next_cap(c, total);
    uint8_t *nb = hie_mem_realloc(c->rbuf, c->rcap, cap);
    if (nb == NULL) {
        return HIE_ENOMEM;
    }
    c->rbuf = nb;
    c->rcap = cap;
    if (cap > EDGE_RBUF_KEEP_BYTES && c->admitted == 0 && c->frame_body_bytes != 0) {
        rbuf_admit(e, c, true); /* conn_read_paused (rbuf_waits) let it */
    }
    return 0;
}

/* Returns the byte count the current frame still needs in rbuf, after checking the prefix. */
static int
frame_need(node_edge_t *e, struct conn *c, size_t *need)
{
    if (c->frame_body_bytes == 0 && c->rlen >= HIE_PROTO_FRAME_HEADER_BYTES) {
        uint32_t body = 0;
        int rc = hie_proto_frame_header(hie_span(c->rbuf, c->rlen), e->ctx->cfg.frame_bytes_max,
            &body);
        if (rc != 0) {
            return rc;
        }
        c->frame_body_bytes = body;
    }
    size_t total = c->frame_body_bytes == 0 ? HIE_PROTO_FRAME_HEADER_BYTES
        : HIE_PROTO_FRAME_HEADER_BYTES + (size_t)c->frame_body_bytes;
    int rc = rbuf_reserve(e, c, total);
    size_t room = c->rcap - c->rlen, left = total - c->rlen;
    *need = room < left ? room : left;
    return rc;
}

static void
frame_reject_header(node_edge_t *e, struct conn *c, int rc)
{
    atomic_fetch_add(&e->ctx->metrics.frames_rejected, 1);
    hie_log_warn("edge", "frame rejected", " conn=%lu org=%s rc=%s reason=\"%s\"", c->id,
        c->org_id, hie_strerror_name(rc), rc == HIE_ELIMIT ? "length over the maximum"
        : rc == HIE_ENOMEM ? "out of memory" : "empty frame");
    if (rc == HIE_ENOMEM) { /* the node's trouble, not the member's frame */
        conn_error(e, c, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "node overloaded, retry later",
            NULL, NULL, true);
    } else {
        conn_error(e, c, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, rc == HIE_ELIMIT ?
            "frame larger than the maximum" : "malformed frame", "frame", NULL, true);
    }
    frame_abandon(e, c);
}

/* Reads what the connection has, up to EDGE_FRAMES_PER_WAKEUP frames. Returns false if the
 * connection was closed. */
/* Bytes already decrypted by OpenSSL raise no epoll event: a connection reading (not paused)
 * with some is listed, to be served without waiting for the peer to send more. */
static void
pending_note(node_edge_t *e, struct conn *c)
{
    if (!c->in_pending && c->state != C_HANDSHAKE && !conn_read_paused(e, c) &&
        SSL_has_pending(c->ssl)) {
        HIE_ASSERT(e->pending_count < e->slots_count);
        e->pending[e->pending_count++] = c->id;
        c->in_pending = true;
    }
}

static bool
conn_read(node_edge_t *e, struct conn *c)
{
    c->write_wants_read = false;
    unsigned frames = 0;
    while (!conn_read_paused(e, c) && frames < EDGE_FRAMES_PER_WAKEUP) {
        size_t need = 0;
        int rc = frame_need(e, c, &need);
        if (rc != 0) {
            frame_reject_header(e, c, rc);
            break;
        }
        HIE_ASSERT(need > 0 && c->rlen + need <= c->rcap);
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->rbuf + c->rlen, need > INT32_MAX ? INT32_MAX : (int)need);
        if (n <= 0) {
            int err = SSL_get_error(c->ssl, n);
            if (err == SSL_ERROR_WANT_READ) {
                break;
            }
            if (err == SSL_ERROR_WANT_WRITE) {
                c->read_wants_write = true;
                break;
            }
            if (err == SSL_ERROR_ZERO_RETURN && (c->inflight > 0 || c->wq_head != NULL)) {
                /* the peer is done sending (half-close), not reading: its requests in flight
                 * are answered, then the connection closes (a partial frame is dropped) */
                c->close_after_flush = true;
                frame_abandon(e, c);
                break;
            }
            conn_close(e, c, err == SSL_ERROR_ZERO_RETURN ? "peer closed" : "read failed");
            return false;
        }
        c->read_wants_write = false;
        c->last_active_ns = hie_time_mono_ns();
        if (c->rlen == 0) {
            c->frame_start_ns = c->last_active_ns;
        }
        c->rlen += (size_t)n;
        if (c->frame_body_bytes != 0 &&
            c->rlen == HIE_PROTO_FRAME_HEADER_BYTES + (size_t)c->frame_body_bytes) {
            frame_done(e, c);
            frames++;
        }
    }
    pending_note(e, c);
    return true;
}

/* ---- writing ----------------------------------------------------------------------------- */

/* Writes queued frames. Returns false if the connection was closed. */
static bool
conn_write(node_edge_t *e, struct conn *c)
{
    c->read_wants_write = false;
    while (c->wq_head != NULL) {
        /* replies that leave together go as one TLS record and one write, not one each */
        hie_node__wq_merge(&c->wq_head, &c->wq_tail, EDGE_MERGE_BYTES_MAX);
        node_wbuf_t *w = c->wq_head;
        size_t left = w->len - w->off;
        ERR_clear_error();
        int n = SSL_write(c->ssl, w->buf + w->off, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n <= 0) {
            int err = SSL_get_error(c->ssl, n);
            w->tried = true;
            if (err == SSL_ERROR_WANT_WRITE) {
                return true;
            }
            if (err == SSL_ERROR_WANT_READ) {
                c->write_wants_read = true;
                return true;
            }
            conn_close(e, c, "write failed");
            return false;
        }
        w->off += (size_t)n;
        c->wq_bytes -= (size_t)n;
        c->last_active_ns = hie_time_mono_ns();
        if (w->off == w->len) {
            c->wq_head = w->next;
            if (c->wq_head == NULL) {
                c->wq_tail = NULL;
            }
            hie_mem_free(w->buf, w->len);
            hie_mem_free(w, sizeof(*w));
        }
    }
    if (c->close_after_flush && c->inflight == 0) {
        conn_close(e, c, "closed after reply");
        return false;
    }
    return true;
}

/* ---- handshake --------------------------------------------------------------------------- */

static void
handshake_failed(node_edge_t *e, struct conn *c, enum node_hs_reason reason)
{
    char detail[200] = "";
    unsigned long err = ERR_peek_last_error();
    long vr = SSL_get_verify_result(c->ssl);
    if (vr != X509_V_OK) {
        snprintf(detail, sizeof(detail), "%s", X509_verify_cert_error_string(vr));
    } else if (err != 0) {
        ERR_error_string_n(err, detail, sizeof(detail));
    }
    atomic_fetch_add(&e->ctx->metrics.handshakes_failed[reason], 1);
    /* NEEDSWORK: also emit an ATNA security-alert audit event once the audit log exists. */
    /* A TCP probe (load balancer, port check) closes before saying anything: not a warning. */
    bool probe = reason == HS_OTHER && SSL_get_state(c->ssl) == TLS_ST_BEFORE;
    hie_log_write(probe ? HIE_LOG_DEBUG : HIE_LOG_WARN, "edge", "tls handshake failed",
        " conn=%lu peer=%s reason=%s detail=\"%s\"", c->id, c->peer,
        hie_node__hs_reason_names[reason], detail);
    conn_close(e, c, "handshake failed");
}

/* The earliest notAfter of the session's verified chain (leaf, intermediates, anchor), in ms
 * since the epoch. Fail closed: a time that cannot be read gives "now", so the session is cut
 * at the next tick and the member reconnects through a fresh verification. */
static int64_t
chain_expiry_ms(SSL *ssl)
{
    int64_t now_ms = hie_time_wall_ms(), min_ms = INT64_MAX;
    STACK_OF(X509) *chain = SSL_get0_verified_chain(ssl);
    int n = chain != NULL ? sk_X509_num(chain) : 0;
    for (int i = 0; i < n; i++) {
        int days = 0, secs = 0;
        if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(sk_X509_value(chain, i))) !=
            1) {
            return now_ms;
        }
        int64_t ms = now_ms + ((int64_t)days * 86400 + secs) * 1000;
        min_ms = ms < min_ms ? ms : min_ms;
    }
    return n > 0 ? min_ms : now_ms;
}

static long conn_reverify(SSL_CTX *ctx, struct conn *c);

/* A handshake that began before a reload was verified against the context (CA, CRL) of its
 * accept: check the certificate against the current one, as the reload did every open session
 * (a revoked member could hold handshakes open across a CRL's publication). False: refused. */
static bool
handshake_current(node_edge_t *e, struct conn *c)
{
    if (SSL_get_SSL_CTX(c->ssl) == e->ssl_ctx) {
        return true;
    }
    long err = conn_reverify(e->ssl_ctx, c);
    if (err == X509_V_OK) {
        return true;
    }
    int reason = hie_node__tls_reason(err, 0);
    atomic_fetch_add(&e->ctx->metrics.handshakes_failed[reason], 1);
    hie_log_warn("edge", "member refused", " conn=%lu peer=%s reason=%s detail=\"%s (checked "
        "again: the handshake began before a reload)\"", c->id, c->peer,
        hie_node__hs_reason_names[reason], X509_verify_cert_error_string(err));
    conn_close(e, c, "certificate no longer valid");
    return false;
}

static void
handshake_done(node_edge_t *e, struct conn *c)
{
    if (!handshake_current(e, c)) {
        return;
    }
    c->cert_expiry_ms = chain_expiry_ms(c->ssl);
    int rc = hie_node__tls_peer_id(c->ssl, c->org_id, sizeof(c->org_id));
    if (rc != 0) {
        c->org_id[0] = '\0';
        atomic_fetch_add(&e->ctx->metrics.handshakes_failed[HS_OTHER], 1);
        hie_log_warn("edge", "member refused", " conn=%lu peer=%s reason=bad_subject_cn",
            c->id, c->peer);
        conn_close(e, c, "certificate subject is not an organization id");
        return;
    }
    atomic_fetch_add(&e->ctx->metrics.handshakes_ok, 1);
    atomic_fetch_sub(&e->ctx->metrics.connections_handshaking, 1);
    e->handshaking--;
    c->state = C_AUTH;
    c->last_active_ns = hie_time_mono_ns();
    c->org_counted = e->ctx->org_conns == NULL ||
        hie_node__org_conns_take(e->ctx->org_conns, c->org_id,
            e->ctx->cfg.connections_per_org_max);
    if (e->ctx->org_conns != NULL && !c->org_counted) {
        atomic_fetch_add(&e->ctx->metrics.connections_refused_limit, 1);
        hie_log_warn("edge", "member refused", " conn=%lu org=%s reason=org_connection_limit "
            "max=%u", c->id, c->org_id, e->ctx->cfg.connections_per_org_max);
        conn_error(e, c, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "too many connections from "
            "this organization (limits.connections_per_org_max)", NULL, NULL, true);
    }
}

/* Asks a worker to check the organization in the registry, so that a member that is not
 * registered (or suspended) is told so and disconnected even if it never sends a request. */
static void
auth_post(node_edge_t *e, struct conn *c)
{
    HIE_ASSERT(c->state == C_AUTH);
    node_req_t *req = req_new(e, c, NODE_REQ_AUTH);
    if (req == NULL || edge_post(e, &req) != 0) {
        hie_node__req_destroy(&req);
        c->state = C_OPEN;
        conn_error(e, c, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "node overloaded, retry later",
            NULL, NULL, true);
        return;
    }
    c->inflight++;
}

static bool
conn_handshake(node_edge_t *e, struct conn *c)
{
    ERR_clear_error();
    int n = SSL_accept(c->ssl);
    if (n == 1) {
        uint64_t id = c->id;
        handshake_done(e, c);
        if (conn_lookup(e, id) != c || !conn_read(e, c)) {
            return false;
        }
        /* A request that came with the handshake is authorized by its worker like every
         * request: no separate registry check needed, which saves a thread hop per connect. */
        if (c->close_after_flush) {
            return true; /* refused (its organization's connection limit): no registry check */
        }
        if (c->inflight == 0) {
            auth_post(e, c);
        } else {
            c->state = C_OPEN;
        }
        return conn_lookup(e, id) == c;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        return true;
    }
    handshake_failed(e, c, hie_node__tls_reason(SSL_get_verify_result(c->ssl),
        ERR_peek_error()));
    return false;
}

/* ---- accept ------------------------------------------------------------------------------ */

static uint32_t
slot_find_free(node_edge_t *e)
{
    for (uint32_t i = 0; i < e->slots_count; i++) {
        uint32_t s = (uint32_t)((e->generation + i) % e->slots_count);
        if (e->slots[s] == NULL) {
            return s;
        }
    }
    return UINT32_MAX;
}

static void
conn_peer_name(struct conn *c, const struct sockaddr_storage *sa)
{
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        port = ntohs(s4->sin_port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        port = ntohs(s6->sin6_port);
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);
}

/* Handshakes may hold at most a quarter of the connection limit (each edge thread its share):
 * past that the oldest of this edge's handshakes makes room, so silent or slow connections (no
 * certificate needed) cannot take every slot from the members. Called between event batches
 * only (the closed connection's events must not be pending). Returns false when this edge has
 * none to evict. */
static bool
handshake_room(node_edge_t *e)
{
    node_metrics_t *m = &e->ctx->metrics;
    uint32_t cap = e->ctx->cfg.connections_max / 4u / e->ctx->cfg.edge_threads;
    cap = cap < EDGE_HANDSHAKES_MIN ? EDGE_HANDSHAKES_MIN : cap;
    if (e->handshaking < cap) {
        return true;
    }
    struct conn *oldest = NULL;
    for (uint32_t i = 0; i < e->slots_count; i++) {
        struct conn *c = e->slots[i];
        if (c != NULL && c->state == C_HANDSHAKE &&
            (oldest == NULL || c->hs_deadline_ns < oldest->hs_deadline_ns)) {
            oldest = c;
        }
    }
    if (oldest == NULL) {
        return false;
    }
    atomic_fetch_add(&m->handshakes_evicted, 1);
    hie_log_debug("edge", "handshake evicted", " conn=%lu peer=%s", oldest->id, oldest->peer);
    conn_close(e, oldest, "handshake evicted for a newer one");
    return true;
}

static void
conn_accept_one(node_edge_t *e, int fd, const struct sockaddr_storage *sa)
{
    /* the limit is node-wide: reserve a place first, across all edge threads */
    node_metrics_t *m = &e->ctx->metrics;
    if (!handshake_room(e)) {
        atomic_fetch_add(&m->connections_refused_limit, 1);
        hie_log_warn("edge", "connection refused", " reason=handshake_limit");
        close(fd);
        return;
    }
    uint64_t open = atomic_fetch_add(&m->connections_open, 1);
    uint32_t slot = open < e->ctx->cfg.connections_max ? slot_find_free(e) : UINT32_MAX;
    struct conn *c = slot == UINT32_MAX ? NULL : hie_mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        atomic_fetch_sub(&m->connections_open, 1);
        atomic_fetch_add(&m->connections_refused_limit, 1);
        hie_log_warn("edge", "connection refused", " reason=connection_limit open=%lu", open);
        close(fd);
        return;
    }
    c->fd = fd;
    /* unique in the node, not only in this edge: the delivery thread tells a member's
     * connections apart by id (a reconnect onto another edge is a move) */
    c->id = (++e->generation << (EDGE_SLOT_BITS + EDGE_INDEX_BITS)) |
            ((uint64_t)e->index << EDGE_SLOT_BITS) | slot;
    c->ssl = SSL_new(e->ssl_ctx); /* takes a reference: a later reload does not affect it */
    c->last_active_ns = hie_time_mono_ns();
    c->hs_deadline_ns = c->last_active_ns +
        (uint64_t)e->ctx->cfg.handshake_timeout_ms * 1000000ull;
    conn_peer_name(c, sa);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1 ||
        epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        SSL_free(c->ssl);
        close(fd);
        hie_mem_free(c, sizeof(*c));
        atomic_fetch_sub(&m->connections_open, 1);
        return;
    }
    c->events = ev.events;
    e->slots[slot] = c;
    e->open_count++;
    e->handshaking++;
    atomic_fetch_add(&m->connections_handshaking, 1);
    atomic_fetch_add(&e->ctx->edge_load[e->index], 1);
    atomic_fetch_add(&m->connections_total, 1);
}

/* Connections stay on the edge thread that holds them, so a new one goes to the least loaded
 * edge: otherwise two busy members can land on one thread and wait for each other's
 * handshakes while another core idles. Returns true if another edge took fd. */
static bool
edge_hand_over(node_edge_t *e, int fd, const struct sockaddr_storage *sa)
{
    unsigned best = e->index;
    uint32_t best_load = atomic_load(&e->ctx->edge_load[e->index]);
    for (unsigned i = 0; i < e->ctx->cfg.edge_threads; i++) {
        uint32_t load = atomic_load(&e->ctx->edge_load[i]);
        if (load < best_load) {
            best = i;
            best_load = load;
        }
    }
    if (best == e->index) {
        return false;
    }
    struct { int fd; struct sockaddr_storage sa; } msg = {fd, *sa};
    /* counted at once, so a burst of accepts does not pick the same edge every time */
    atomic_fetch_add(&e->ctx->edge_load[best], 1);
    if (zmq_send(e->hand[best], &msg, sizeof(msg), ZMQ_DONTWAIT) != (int)sizeof(msg)) {
        atomic_fetch_sub(&e->ctx->edge_load[best], 1);
        return false;
    }
    return true;
}

static void
edge_drain_adopt(node_edge_t *e)
{
    for (unsigned i = 0; i < EDGE_EVENTS_MAX; i++) {
        struct { int fd; struct sockaddr_storage sa; } msg;
        int n = zmq_recv(e->adopt, &msg, sizeof(msg), ZMQ_DONTWAIT);
        if (n < 0) {
            return;
        }
        HIE_ASSERT(n == (int)sizeof(msg));
        atomic_fetch_sub(&e->ctx->edge_load[e->index], 1); /* conn_accept_one counts it */
        if (e->draining) {
            close(msg.fd);
            continue;
        }
        conn_accept_one(e, msg.fd, &msg.sa);
    }
}

/* Out of file descriptors (or kernel memory): the pending connection is accepted with the
 * spare descriptor and closed at once (the client sees a close, not a hang), and the edge
 * leaves the listening socket out of its epoll set until the next tick: it stays readable,
 * and would wake this thread for ever. Said once in EDGE_ACCEPT_LOG_NS. */
static void
accept_overloaded(node_edge_t *e, int err)
{
    if (e->spare_fd >= 0) {
        close(e->spare_fd);
        int fd = accept4(e->ctx->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            e->accept_shed++;
        }
        e->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    if (e->listening && epoll_ctl(e->epfd, EPOLL_CTL_DEL, e->ctx->listen_fd, NULL) == 0) {
        e->listening = false;
        e->accept_resume_ns = hie_time_mono_ns() + (uint64_t)EDGE_TICK_MS * 1000000ull;
    }
    uint64_t now = hie_time_mono_ns();
    if (now >= e->accept_log_ns) {
        hie_log_warn("edge", "accept failed: connections shed", " errno=%s shed=%" PRIu64
            " open=%u hint=\"%s\"", strerrorname_np(err), e->accept_shed, e->open_count,
            "raise the open-file limit (LimitNOFILE, ulimit -n) above limits.connections_max");
        e->accept_shed = 0;
        e->accept_log_ns = now + EDGE_ACCEPT_LOG_NS;
    }
}

/* The tick after accept_overloaded: the listening socket back in the set. */
static void
accept_resume(node_edge_t *e)
{
    if (e->spare_fd < 0) { /* taken by another thread between its close and reopen */
        e->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    if (e->accept_resume_ns == 0 || hie_time_mono_ns() < e->accept_resume_ns || e->draining) {
        return;
    }
    e->accept_resume_ns = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &tag_listen};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->ctx->listen_fd, &ev) == 0) {
        e->listening = true;
    } else {
        e->accept_resume_ns = hie_time_mono_ns() + (uint64_t)EDGE_TICK_MS * 1000000ull;
    }
}

static void
edge_accept(node_edge_t *e)
{
    for (unsigned i = 0; i < EDGE_ACCEPTS_PER_WAKEUP && !e->draining; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof(sa);
        int fd = accept4(e->ctx->listen_fd, (struct sockaddr *)&sa, &salen,
            SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                accept_overloaded(e, err);
            } else if (err != EAGAIN && err != EINTR && err != ECONNABORTED) {
                hie_log_warn("edge", "accept failed", " errno=%s", strerrorname_np(err));
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (!edge_hand_over(e, fd, &sa)) {
            conn_accept_one(e, fd, &sa);
        }
    }
}

/* ---- replies from workers ---------------------------------------------------------------- */

static void
reply_auth(node_edge_t *e, struct conn *c, node_req_t *req)
{
    HIE_ASSERT(c->state == C_AUTH);
    c->state = C_OPEN;
    if (!req->auth_ok) {
        if (req->reply_buf != NULL) {
            conn_queue(e, c, req->reply_buf, req->reply_len);
            req->reply_buf = NULL;
            req->reply_len = 0;
        }
        c->close_after_flush = true;
    }
}

/* A request's frame leaves the in-flight bytes: its edge's, whatever became of its conn. */
static void
inflight_release(node_edge_t *e, struct conn *c, const node_req_t *req)
{
    HIE_ASSERT(e->inflight_bytes >= req->in_bytes);
    bool over = e->inflight_bytes >= e->ctx->cfg.edge_buffer_bytes_max;
    e->inflight_bytes -= req->in_bytes;
    atomic_fetch_sub(&e->ctx->metrics.edge_buffer_bytes, req->in_bytes);
    /* frames may wait for admission only while another is admitted (rbuf_waits) */
    e->budget_wake |= (over && e->inflight_bytes < e->ctx->cfg.edge_buffer_bytes_max) ||
                      e->rbuf_bytes != 0;
    if (c != NULL) {
        HIE_ASSERT(c->inflight_bytes >= req->in_bytes);
        c->inflight_bytes -= req->in_bytes;
    }
}

/* A delivery (or heartbeat) to c: queued and written now. */
static void
edge_deliver(node_edge_t *e, struct conn *c, node_req_t *req)
{
    c->receiving = true;
    conn_queue(e, c, req->reply_buf, req->reply_len);
    req->reply_buf = NULL;
    req->reply_len = 0;
    hie_node__req_destroy(&req);
    if (conn_write(e, c)) {
        conn_update_events(e, c);
        pending_note(e, c); /* the write may have drained the queue that paused reading:
                             * frames OpenSSL already holds raise no EPOLLIN */
    }
}

/* Written once the drain has queued every reply it brought (edge_flush_replies). */
static void
flush_note(node_edge_t *e, struct conn *c)
{
    if (!c->in_flush) {
        HIE_ASSERT(e->flush_count < e->slots_count);
        e->flush[e->flush_count++] = c->id;
        c->in_flush = true;
    }
}

static void
edge_reply(node_edge_t *e, node_req_t *req)
{
    struct conn *c = conn_lookup(e, req->conn_id);
    inflight_release(e, c, req);
    /* A delivery follows a Receive request its worker authorized, so it may go out while the
     * connection's own registry check (C_AUTH) is still under way, as replies do: dropping it
     * there left the message unsent until its ack timeout (seen when the delivery overtook the
     * check's reply under load). */
    if (c == NULL || (req->type == NODE_REQ_DELIVERY && c->state == C_HANDSHAKE)) {
        /* the connection went away meanwhile. If deliveries were meant for it (a Receive's
         * reply, a delivery, a heartbeat), the delivery thread may not know yet: the close
         * can have come before the Receive reached it, or before this reply. Tell it again;
         * it ignores a connection that is not the recipient's current one. */
        if (c == NULL && (req->receiving || req->type == NODE_REQ_DELIVERY) &&
            req->org_id[0] != '\0' && e->to_delivery != NULL && !e->stop) {
            hie_node__delivery_notify(e->to_delivery, DMSG_CLOSED, req->org_id, req->conn_id,
                e->index, 0);
        }
        hie_node__req_destroy(&req);
        return;
    }
    if (req->receiver_moved) {
        /* deliveries go to the member's newer connection; this one's unread copies would only
         * pile up (a member asking on connection after connection, reading none) */
        bool backed_up = c->wq_bytes >= HIE_EDGE_WRITE_BUFFER_BYTES_MAX;
        hie_node__req_destroy(&req);
        if (backed_up) {
            hie_log_warn("edge", "connection closed", " conn=%lu org=%s reason=\"deliveries "
                "moved to a newer connection; this one was not reading\" queued_bytes=%zu",
                c->id, c->org_id, c->wq_bytes);
            conn_close(e, c, "not reading, deliveries moved");
        }
        return;
    }
    c->receiving = c->receiving || req->receiving;
    if (c->cut || (req->type == NODE_REQ_DELIVERY && c->close_after_flush)) {
        /* suspended since it asked, or closing (refused, timed out): not one more byte */
        if (req->type != NODE_REQ_DELIVERY) {
            HIE_ASSERT(c->inflight > 0);
            c->inflight--;
        }
        hie_node__req_destroy(&req);
        flush_note(e, c); /* closes it once nothing is in flight */
        return;
    }
    if (req->type == NODE_REQ_DELIVERY) { /* unsolicited: no request, no in-flight slot */
        edge_deliver(e, c, req);
        return;
    }
    HIE_ASSERT(c->inflight > 0);
    c->inflight--;
    if (req->type == NODE_REQ_AUTH) {
        reply_auth(e, c, req);
    } else if (req->reply_buf != NULL) {
        conn_queue(e, c, req->reply_buf, req->reply_len);
        req->reply_buf = NULL;
        req->reply_len = 0;
    }
    if (req->close_after) {
        c->close_after_flush = true;
    }
    hie_node__req_destroy(&req);
    flush_note(e, c);
}

/* Writes what the drain queued, each connection's replies together (conn_write merges them
 * into one TLS record), then reads what the in-flight limit held back. */
static void
edge_flush_replies(node_edge_t *e)
{
    for (uint32_t i = 0; i < e->flush_count; i++) {
        struct conn *c = conn_lookup(e, e->flush[i]);
        if (c == NULL) {
            continue; /* closed meanwhile */
        }
        c->in_flush = false;
        if (conn_write(e, c)) {
            conn_update_events(e, c);
            if (!conn_read_paused(e, c) && c->state != C_HANDSHAKE && conn_read(e, c)) {
                conn_update_events(e, c);
            }
        }
    }
    e->flush_count = 0;
}

static void
edge_drain_replies(node_edge_t *e)
{
    for (;;) {
        node_req_t *req = NULL;
        int n = zmq_recv(e->replies, &req, sizeof(req), ZMQ_DONTWAIT);
        if (n < 0) {
            if (errno == ETERM) {
                e->stop = true; /* the context was shut down without a drain */
            }
            edge_flush_replies(e);
            return;
        }
        HIE_ASSERT(n == (int)sizeof(req));
        HIE_ASSERT(req != NULL && req->magic == NODE_REQ_MAGIC);
        edge_reply(e, req);
    }
}

/* ---- control: reload, drain ------------------------------------------------------------- */

/* Verifies an open session's client certificate again, against the new context's CA and CRL.
 * Returns X509_V_OK or the verification error. */
static long
conn_reverify(SSL_CTX *ctx, struct conn *c)
{
    X509 *cert = SSL_get0_peer_certificate(c->ssl);
    if (cert == NULL) {
        return X509_V_ERR_UNSPECIFIED;
    }
    /* fail closed: a session that cannot be checked again is cut (the member reconnects and
     * its handshake checks it) rather than kept past a revocation */
    X509_STORE_CTX *sctx = X509_STORE_CTX_new();
    if (sctx == NULL) {
        return X509_V_ERR_OUT_OF_MEM;
    }
    long err = X509_V_ERR_UNSPECIFIED;
    if (X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx), cert,
            SSL_get_peer_cert_chain(c->ssl)) == 1) {
        X509_STORE_CTX_set_purpose(sctx, X509_PURPOSE_SSL_CLIENT);
        err = X509_verify_cert(sctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(sctx);
        err = err == X509_V_OK && !hie_node__tls_client_eku(cert) ? X509_V_ERR_INVALID_PURPOSE
                                                                   : err;
    }
    X509_STORE_CTX_free(sctx);
    ERR_clear_error();
    return err;
}

/* After a reload, sessions whose certificate is now revoked (or expired, or from a CA no
 * longer trusted) are cut at once: TLS 1.3 cannot re-handshake, so this is how a revocation
 * reaches a member that stays connected (reference.md S3). */
static void
edge_reverify_all(node_edge_t *e)
{
    for (uint32_t i = 0; i < e->slots_count; i++) {
        struct conn *c = e->slots[i];
        if (c == NULL || c->state == C_HANDSHAKE) {
            continue;
        }
        long err = conn_reverify(e->ssl_ctx, c);
        if (err != X509_V_OK) {
            atomic_fetch_add(&e->ctx->metrics.sessions_cut, 1);
            hie_log_warn("edge", "session cut after reload", " conn=%lu org=%s reason=%s "
                "detail=\"%s\"", c->id, c->org_id,
                hie_node__hs_reason_names[hie_node__tls_reason(err, 0)],
                X509_verify_cert_error_string(err));
            conn_close(e, c, "certificate no longer valid");
        }
    }
}

/* The organization was suspended: its sessions end now (reference S3's revocation, for the
 * registry). */
static void
edge_cut_org(node_edge_t *e, const char *org)
{
    for (uint32_t i = 0; i < e->slots_count; i++) {
        struct conn *c = e->slots[i];
        if (c == NULL || c->state == C_HANDSHAKE || strcmp(c->org_id, org) != 0) {
            continue;
        }
        atomic_fetch_add(&e->ctx->metrics.sessions_cut, 1);
        hie_log_warn("edge", "session cut: organization suspended", " conn=%lu org=%s", c->id,
            c->org_id);
        c->cut = true; /* replies to requests in flight (a forwarded query's) are dropped */
        frame_abandon(e, c); /* a frame half read: no "not completed in time" later either */
        if (c->wq_bytes > 0) { /* deliveries still unread: not one more byte of them */
            conn_close(e, c, "organization suspended");
            continue;
        }
        conn_error(e, c, HIE__V1__ERROR_CODE__ERROR_UNAUTHENTICATED, "organization suspended",
            NULL, NULL, true);
        if (conn_write(e, c)) {
            conn_update_events(e, c);
        }
    }
}

static void
ctl_reply(node_edge_t *e, zmq_msg_t *identity, int rc)
{
    uint8_t buf[4];
    hie_store_be32(buf, (uint32_t)rc);
    if (zmq_msg_send(identity, e->ctl, ZMQ_SNDMORE) < 0) {
        zmq_msg_close(identity);
        return;
    }
    (void)zmq_send(e->ctl, "", 0, ZMQ_SNDMORE);
    (void)zmq_send(e->ctl, buf, sizeof(buf), 0);
}

static void
edge_ctl_one(node_edge_t *e)
{
    zmq_msg_t identity;
    char verb[16] = "";
    SSL_CTX *new_ctx = NULL;
    zmq_msg_init(&identity);
    if (zmq_msg_recv(&identity, e->ctl, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&identity);
        return;
    }
    char empty[1];
    int n = zmq_recv(e->ctl, empty, sizeof(empty), 0); /* REQ delimiter */
    HIE_ASSERT(n == 0);
    n = zmq_recv(e->ctl, verb, sizeof(verb) - 1, 0);
    HIE_ASSERT(n > 0 && n < (int)sizeof(verb));
    int more = 0;
    size_t more_len = sizeof(more);
    zmq_getsockopt(e->ctl, ZMQ_RCVMORE, &more, &more_len);
    char extra[HIE_ORG_ID_BYTES_MAX + 1] = ""; /* "reload": the SSL_CTX pointer; "cut": org */
    int extra_len = more ? zmq_recv(e->ctl, extra, sizeof(extra) - 1, 0) : 0;
    HIE_ASSERT(extra_len >= 0 && extra_len < (int)sizeof(extra)); /* our own threads send it */
    if (strcmp(verb, "cut") == 0) {
        extra[extra_len] = '\0';
        edge_cut_org(e, extra);
        ctl_reply(e, &identity, 0);
    } else if (strcmp(verb, "reload") == 0) {
        HIE_ASSERT(extra_len == (int)sizeof(new_ctx));
        memcpy(&new_ctx, extra, sizeof(new_ctx));
        HIE_ASSERT(new_ctx != NULL);
        SSL_CTX_free(e->ssl_ctx); /* live connections hold their own references */
        e->ssl_ctx = new_ctx;
        edge_reverify_all(e);
        ctl_reply(e, &identity, 0);
    } else if (strcmp(verb, "drain") == 0) {
        HIE_ASSERT(!e->drain_waiting);
        e->draining = true;
        e->drain_deadline_ns = hie_time_mono_ns() + HIE_NODE_DRAIN_TIMEOUT_MS * 1000000ull;
        e->drain_identity = identity; /* answered when drained */
        e->drain_waiting = true;
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, e->ctx->listen_fd, NULL);
        e->listening = false;
        hie_log_info("edge", "draining", " edge=%u open=%u", e->index, e->open_count);
    } else {
        HIE_ASSERT(!"unknown edge control verb");
    }
}

static void
edge_ctl_drain(node_edge_t *e)
{
    for (int i = 0; i < 16; i++) {
        uint32_t events = 0;
        size_t len = sizeof(events);
        if (zmq_getsockopt(e->ctl, ZMQ_EVENTS, &events, &len) != 0 || !(events & ZMQ_POLLIN)) {
            return;
        }
        edge_ctl_one(e);
    }
}

/* ---- timers ------------------------------------------------------------------------------ */

static void
conn_check_timers(node_edge_t *e, struct conn *c, uint64_t now, int64_t wall_ms)
{
    const node_config_t *cfg = &e->ctx->cfg;
    if (c->state == C_HANDSHAKE) {
        if (now > c->hs_deadline_ns) {
            handshake_failed(e, c, HS_TIMEOUT);
        }
        return;
    }
    if (wall_ms >= c->cert_expiry_ms) {
        /* TLS checked the validity period once, at the handshake; a session must not outlive
         * its certificate (or its CA's) */
        atomic_fetch_add(&e->ctx->metrics.sessions_cut, 1);
        hie_log_warn("edge", "session cut: certificate expired", " conn=%lu org=%s",
            c->id, c->org_id);
        conn_close(e, c, "certificate expired");
        return;
    }
    if (c->frame_start_ns != 0 && (e->draining || rbuf_waits(e, c) || (c->inflight > 0 &&
        (c->inflight_bytes >= HIE_EDGE_INFLIGHT_BYTES_MAX ||
         e->inflight_bytes >= e->ctx->cfg.edge_buffer_bytes_max)))) {
        /* the node's byte budgets (or its drain) stopped reading: the frame's time is not
         * running (a peer that stops reading its replies gets no such grace) */
        c->frame_start_ns = now;
    }
    if (c->frame_start_ns != 0 &&
        now - c->frame_start_ns > (uint64_t)cfg->frame_timeout_ms * 1000000ull) {
        hie_log_warn("edge", "frame timeout", " conn=%lu org=%s received=%zu", c->id, c->org_id,
            c->rlen);
        frame_abandon(e, c);
        conn_error(e, c, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "frame not completed in time",
            "frame", NULL, true);
        if (conn_write(e, c)) {
            conn_update_events(e, c);
        }
        return;
    }
    if (now - c->last_active_ns > (uint64_t)cfg->idle_timeout_ms * 1000000ull &&
        (c->inflight == 0 || c->close_after_flush)) {
        conn_close(e, c, "idle timeout");
    }
}

/* The edge's in-flight bytes fell back under its budget: connections it paused (those with
 * a request of their own in flight get it back with their reply; these may wait long, on a
 * responder) are read again. */
static void
budget_woken(node_edge_t *e)
{
    e->budget_wake = false;
    for (uint32_t i = 0; i < e->slots_count; i++) {
        struct conn *c = e->slots[i];
        if (c == NULL || c->state != C_OPEN || conn_read_paused(e, c)) {
            continue;
        }
        conn_update_events(e, c);
        pending_note(e, c);
    }
}

static void
edge_tick(node_edge_t *e)
{
    accept_resume(e);
    uint64_t now = hie_time_mono_ns();
    int64_t wall_ms = hie_time_wall_ms();
    for (uint32_t i = 0; i < e->slots_count; i++) {
        if (e->slots[i] != NULL) {
            conn_check_timers(e, e->slots[i], now, wall_ms);
        }
    }
    if (e->budget_wake) {
        budget_woken(e);
    }
    if (!e->draining) {
        return;
    }
    bool busy = false;
    for (uint32_t i = 0; i < e->slots_count && !busy; i++) {
        struct conn *c = e->slots[i];
        busy = c != NULL && (c->inflight > 0 || c->wq_head != NULL);
    }
    if (busy && now < e->drain_deadline_ns) {
        return;
    }
    for (uint32_t i = 0; i < e->slots_count; i++) {
        if (e->slots[i] != NULL) {
            conn_close(e, e->slots[i], "node shutting down");
        }
    }
    hie_log_info("edge", "drained", " edge=%u forced=%d", e->index, busy);
    ctl_reply(e, &e->drain_identity, busy ? HIE_ETIMEDOUT : 0);
    e->drain_waiting = false;
    e->stop = true;
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void
conn_event(node_edge_t *e, struct conn *c, uint32_t events)
{
    if (c->state == C_HANDSHAKE) {
        uint64_t id = c->id;
        if (conn_handshake(e, c) && conn_lookup(e, id) == c) {
            conn_update_events(e, c);
        }
        return;
    }
    c->peer_half_closed = c->peer_half_closed || (events & EPOLLRDHUP) != 0;
    if ((events & (EPOLLOUT | EPOLLIN)) && (c->wq_head != NULL || c->read_wants_write)) {
        if (!conn_write(e, c)) {
            return;
        }
        pending_note(e, c); /* a drained queue unpauses reading: frames decrypted meanwhile */
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) || c->write_wants_read) {
        if ((events & (EPOLLHUP | EPOLLERR)) && conn_read_paused(e, c)) {
            conn_close(e, c, "peer hung up");
            return;
        }
        if (!conn_read(e, c)) {
            return;
        }
        if (c->wq_head != NULL && !conn_write(e, c)) {
            return;
        }
    }
    conn_update_events(e, c);
}

/* Serves the connections listed as holding decrypted bytes (they get no epoll event for
 * them). Those that still hold some afterwards list themselves again. Returns true if any
 * remain, so the loop polls without sleeping. */
static bool
edge_service_pending(node_edge_t *e)
{
    /* served from a copy: a connection that lists itself again while being served goes to
     * the emptied list (each at most once), not after its own old entry (the list overran) */
    uint32_t n = e->pending_count;
    memcpy(e->pending_work, e->pending, n * sizeof(*e->pending));
    e->pending_count = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct conn *c = conn_lookup(e, e->pending_work[i]);
        if (c != NULL && c->in_pending) {
            c->in_pending = false;
            conn_event(e, c, EPOLLIN);
        }
    }
    return e->pending_count > 0;
}

static void
edge_loop(node_edge_t *e)
{
    struct epoll_event events[EDGE_EVENTS_MAX];
    uint64_t next_tick = hie_time_mono_ns();
    bool pending = false;
    while (!e->stop) {
        int n = epoll_wait(e->epfd, events, EDGE_EVENTS_MAX, pending ? 0 : EDGE_TICK_MS);
        if (n < 0 && errno != EINTR) {
            hie_log_error("edge", "epoll failed", " errno=%s", strerrorname_np(errno));
            break;
        }
        bool accept = false;
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &tag_listen) {
                accept = true;
            } else if (p != &tag_replies && p != &tag_ctl && p != &tag_adopt) {
                conn_event(e, p, events[i].events);
            }
        }
        /* after the batch: an accept may evict another connection's handshake, whose event
         * may still be in it (the events hold raw pointers) */
        if (accept) {
            edge_accept(e);
        }
        /* ZMQ_FD is edge-triggered: drain both sockets on every wakeup */
        edge_drain_replies(e);
        edge_ctl_drain(e);
        edge_drain_adopt(e);
        pending = edge_service_pending(e);
        uint64_t now = hie_time_mono_ns();
        if (now >= next_tick) {
            edge_tick(e);
            next_tick = now + EDGE_TICK_MS * 1000000ull;
        }
    }
}

/* ---- setup and teardown ------------------------------------------------------------------ */

int
hie_node__listen(node_ctx_t *ctx)
{
    const node_config_t *cfg = &ctx->cfg;
    struct sockaddr_in6 a6 = {0};
    struct sockaddr_in a4 = {0};
    bool v6 = strchr(cfg->listen_address, ':') != NULL;
    if (v6 ? inet_pton(AF_INET6, cfg->listen_address, &a6.sin6_addr) != 1
           : inet_pton(AF_INET, cfg->listen_address, &a4.sin_addr) != 1) {
        return HIE_ECONFIG;
    }
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(cfg->listen_port);
    a4.sin_family = AF_INET;
    a4.sin_port = htons(cfg->listen_port);
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    /* SO_REUSEADDR only: no SO_REUSEPORT, so a second node on the same port fails loudly */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int rc = v6 ? bind(fd, (struct sockaddr *)&a6, sizeof(a6))
                : bind(fd, (struct sockaddr *)&a4, sizeof(a4));
    if (rc != 0 || listen(fd, 1024) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    ctx->listen_fd = fd;
    return 0;
}

/* Every edge thread waits on the one listening socket; EPOLLEXCLUSIVE wakes one of them. */
static int
edge_listen(node_edge_t *e)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &tag_listen};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->ctx->listen_fd, &ev) != 0) {
        return -errno;
    }
    e->listening = true;
    return 0;
}

static int
edge_zmq_add(node_edge_t *e, void *sock, void *tag)
{
    int fd = -1;
    size_t len = sizeof(fd);
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0) {
        return -errno;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
    return epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

static int
edge_adopt_sockets(node_edge_t *e)
{
    char ep[64];
    int linger = 0;
    e->adopt = zmq_socket(e->ctx->zctx, ZMQ_PULL);
    if (e->adopt == NULL) {
        return -errno;
    }
    zmq_setsockopt(e->adopt, ZMQ_LINGER, &linger, sizeof(linger));
    snprintf(ep, sizeof(ep), NODE_EP_EDGE_ADOPT_FMT, e->index);
    if (zmq_bind(e->adopt, ep) != 0) {
        return -errno;
    }
    for (unsigned i = 0; i < e->ctx->cfg.edge_threads; i++) {
        if (i == e->index) {
            continue;
        }
        e->hand[i] = zmq_socket(e->ctx->zctx, ZMQ_PUSH);
        if (e->hand[i] == NULL) {
            return -errno;
        }
        zmq_setsockopt(e->hand[i], ZMQ_LINGER, &linger, sizeof(linger));
        snprintf(ep, sizeof(ep), NODE_EP_EDGE_ADOPT_FMT, i);
        if (zmq_connect(e->hand[i], ep) != 0) { /* inproc: connect before bind is fine */
            return -errno;
        }
    }
    return 0;
}

static int
edge_sockets(node_edge_t *e)
{
    node_ctx_t *ctx = e->ctx;
    int linger = 0, hwm = (int)HIE_NODE_WORKER_QUEUE_MAX, unlimited = 0;
    char rep_ep[64], ctl_ep[64];
    snprintf(rep_ep, sizeof(rep_ep), NODE_EP_EDGE_REPLIES_FMT, e->index);
    snprintf(ctl_ep, sizeof(ctl_ep), NODE_EP_EDGE_CTL_FMT, e->index);
    e->replies = zmq_socket(ctx->zctx, ZMQ_PULL);
    e->ctl = zmq_socket(ctx->zctx, ZMQ_ROUTER);
    if (e->replies == NULL || e->ctl == NULL) {
        return -errno;
    }
    zmq_setsockopt(e->replies, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(e->replies, ZMQ_RCVHWM, &unlimited, sizeof(unlimited));
    zmq_setsockopt(e->ctl, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_bind(e->replies, rep_ep) != 0 || zmq_bind(e->ctl, ctl_ep) != 0) {
        return -errno;
    }
    int rc = edge_adopt_sockets(e);
    if (rc != 0) {
        return rc;
    }
    for (unsigned i = 0; i < ctx->cfg.workers; i++) {
        char ep[64];
        snprintf(ep, sizeof(ep), NODE_EP_WORKER_FMT, i);
        e->to_worker[i] = zmq_socket(ctx->zctx, ZMQ_PUSH);
        if (e->to_worker[i] == NULL) {
            return -errno;
        }
        zmq_setsockopt(e->to_worker[i], ZMQ_LINGER, &linger, sizeof(linger));
        zmq_setsockopt(e->to_worker[i], ZMQ_SNDHWM, &hwm, sizeof(hwm));
        if (zmq_connect(e->to_worker[i], ep) != 0) {
            return -errno;
        }
    }
    e->to_delivery = zmq_socket(ctx->zctx, ZMQ_PUSH);
    if (e->to_delivery == NULL) {
        return -errno;
    }
    zmq_setsockopt(e->to_delivery, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(e->to_delivery, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    if (zmq_connect(e->to_delivery, NODE_EP_DELIVERY) != 0) {
        return -errno;
    }
    rc = edge_zmq_add(e, e->replies, &tag_replies);
    rc = rc != 0 ? rc : edge_zmq_add(e, e->ctl, &tag_ctl);
    return rc != 0 ? rc : edge_zmq_add(e, e->adopt, &tag_adopt);
}

static void
edge_close_sockets(node_edge_t *e)
{
    if (e->replies != NULL) {
        /* requests still with workers come back here; free what already arrived */
        node_req_t *req = NULL;
        while (zmq_recv(e->replies, &req, sizeof(req), ZMQ_DONTWAIT) == sizeof(req)) {
            hie_node__req_destroy(&req);
        }
        zmq_close(e->replies);
        e->replies = NULL;
    }
    if (e->ctl != NULL) {
        zmq_close(e->ctl);
        e->ctl = NULL;
    }
    if (e->adopt != NULL) {
        /* fds handed to us and not adopted yet: close them */
        struct { int fd; struct sockaddr_storage sa; } msg;
        while (zmq_recv(e->adopt, &msg, sizeof(msg), ZMQ_DONTWAIT) == (int)sizeof(msg)) {
            close(msg.fd);
        }
        zmq_close(e->adopt);
        e->adopt = NULL;
    }
    for (unsigned i = 0; i < NODE_EDGES_MAX; i++) {
        if (e->hand[i] != NULL) {
            zmq_close(e->hand[i]);
            e->hand[i] = NULL;
        }
    }
    for (unsigned i = 0; i < e->ctx->cfg.workers; i++) {
        if (e->to_worker[i] != NULL) {
            zmq_close(e->to_worker[i]);
            e->to_worker[i] = NULL;
        }
    }
    if (e->to_delivery != NULL) {
        zmq_close(e->to_delivery);
        e->to_delivery = NULL;
    }
}

static void
edge_signal_started(node_edge_t *e, int rc)
{
    pthread_mutex_lock(&e->mu);
    e->start_rc = rc;
    e->started = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void *
edge_thread(void *arg)
{
    node_edge_t *e = arg;
    int rc = edge_sockets(e);
    if (rc == 0) {
        rc = edge_listen(e);
    }
    edge_signal_started(e, rc);
    if (rc == 0) {
        if (e->index == 0) {
            hie_log_info("edge", "listening", " address=%s port=%u tls_min=%s edges=%u",
                e->ctx->cfg.listen_address, e->ctx->cfg.listen_port,
                e->ctx->cfg.tls_min_version == TLS1_3_VERSION ? "1.3" : "1.2",
                e->ctx->cfg.edge_threads);
        }
        edge_loop(e);
    }
    for (uint32_t i = 0; i < e->slots_count; i++) {
        if (e->slots[i] != NULL) {
            conn_close(e, e->slots[i], "node stopping");
        }
    }
    edge_close_sockets(e);
    return NULL;
}

int
hie_node__edge_start(node_edge_t **out, node_ctx_t *ctx, unsigned index)
{
    HIE_ASSERT(out != NULL && ctx != NULL && ctx->ssl_ctx_initial != NULL);
    HIE_ASSERT(index < ctx->cfg.edge_threads);
    HIE_ASSERT(ctx->listen_fd >= 0);
    *out = NULL;
    node_edge_t *e = hie_mem_calloc(1, sizeof(*e));
    if (e == NULL) {
        return HIE_ENOMEM;
    }
    e->ctx = ctx;
    e->index = index;
    e->slots_count = ctx->cfg.connections_max;
    e->slots = hie_mem_calloc(e->slots_count, sizeof(*e->slots));
    e->pending = hie_mem_calloc(e->slots_count, sizeof(*e->pending));
    e->pending_work = hie_mem_calloc(e->slots_count, sizeof(*e->pending_work));
    e->flush = hie_mem_calloc(e->slots_count, sizeof(*e->flush));
    e->to_worker = hie_mem_calloc(ctx->cfg.workers, sizeof(*e->to_worker));
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    *out = e;
    if (e->slots == NULL || e->pending == NULL || e->pending_work == NULL || e->flush == NULL ||
        e->to_worker == NULL || e->epfd < 0) {
        return e->epfd < 0 ? -errno : HIE_ENOMEM;
    }
    SSL_CTX_up_ref(ctx->ssl_ctx_initial); /* the edge's own reference */
    e->ssl_ctx = ctx->ssl_ctx_initial;
    int rc = pthread_create(&e->thread, NULL, edge_thread, e);
    if (rc != 0) {
        return -rc;
    }
    char name[16];
    snprintf(name, sizeof(name), "hie-edge-%u", index % 100u);
    pthread_setname_np(e->thread, name);
    pthread_mutex_lock(&e->mu);
    while (!e->started) {
        pthread_cond_wait(&e->cv, &e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return e->start_rc; /* on failure the thread has exited; join reaps it */
}

void
hie_node__edge_join(node_edge_t **ep)
{
    HIE_ASSERT(ep != NULL);
    node_edge_t *e = *ep;
    if (e == NULL) {
        return;
    }
    if (e->started) {
        pthread_join(e->thread, NULL);
    }
    if (e->epfd >= 0) {
        close(e->epfd);
    }
    if (e->spare_fd >= 0) {
        close(e->spare_fd);
    }
    SSL_CTX_free(e->ssl_ctx);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    hie_mem_free(e->slots, e->slots_count * sizeof(*e->slots));
    hie_mem_free(e->pending, e->slots_count * sizeof(*e->pending));
    hie_mem_free(e->pending_work, e->slots_count * sizeof(*e->pending_work));
    hie_mem_free(e->flush, e->slots_count * sizeof(*e->flush));
    hie_mem_free(e->to_worker, e->ctx->cfg.workers * sizeof(*e->to_worker));
    hie_mem_free(e, sizeof(*e));
    *ep = NULL;
}

/* ---- control client (main thread, admin thread) ------------------------------------------ */

/* Sends verb (and a new reference to new_ctx) to edge index; returns the socket to read the
 * answer from, or NULL with *rc set. */
static void *
edge_ctl_send(node_ctx_t *ctx, unsigned index, const char *verb, SSL_CTX *new_ctx,
    const char *org, uint32_t timeout_ms, int *rc)
{
    char ep[64];
    snprintf(ep, sizeof(ep), NODE_EP_EDGE_CTL_FMT, index);
    void *req = zmq_socket(ctx->zctx, ZMQ_REQ);
    if (req == NULL) {
        *rc = -errno;
        return NULL;
    }
    int linger = 0, tmo = (int)timeout_ms;
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    *rc = zmq_connect(req, ep) == 0 ? 0 : -errno;
    if (*rc == 0 && zmq_send(req, verb, strlen(verb), new_ctx || org ? ZMQ_SNDMORE : 0) < 0) {
        *rc = -errno;
    }
    if (*rc == 0 && org != NULL && zmq_send(req, org, strlen(org), 0) < 0) {
        *rc = -errno;
    }
    if (*rc == 0 && new_ctx != NULL) {
        SSL_CTX_up_ref(new_ctx); /* travels with the message; the edge keeps it */
        if (zmq_send(req, &new_ctx, sizeof(new_ctx), 0) < 0) {
            SSL_CTX_free(new_ctx);
            *rc = -errno;
        }
    }
    if (*rc != 0) {
        zmq_close(req);
        return NULL;
    }
    return req;
}

static int
edge_ctl_all(node_ctx_t *ctx, const char *verb, SSL_CTX *new_ctx, const char *org,
    uint32_t timeout_ms)
{
    HIE_ASSERT(ctx != NULL && verb != NULL);
    HIE_ASSERT(ctx->cfg.edge_threads <= NODE_EDGES_MAX);
    void *socks[NODE_EDGES_MAX] = {0};
    int first = 0;
    for (unsigned i = 0; i < ctx->cfg.edge_threads; i++) {
        int rc = 0;
        socks[i] = edge_ctl_send(ctx, i, verb, new_ctx, org, timeout_ms, &rc);
        first = first != 0 ? first : rc;
    }
    for (unsigned i = 0; i < ctx->cfg.edge_threads; i++) {
        if (socks[i] == NULL) {
            continue;
        }
        uint8_t buf[4];
        int n = zmq_recv(socks[i], buf, sizeof(buf), 0);
        int rc = n == 4 ? (int)hie_load_be32(buf) : HIE_ETIMEDOUT;
        first = first != 0 ? first : rc;
        zmq_close(socks[i]);
    }
    return first;
}

int
hie_node__edge_ctl(node_ctx_t *ctx, const char *verb, SSL_CTX *new_ctx, uint32_t timeout_ms)
{
    return edge_ctl_all(ctx, verb, new_ctx, NULL, timeout_ms);
}

int
hie_node__edge_cut_org(node_ctx_t *ctx, const char *org_id)
{
    HIE_ASSERT(org_id != NULL && strlen(org_id) <= HIE_ORG_ID_BYTES_MAX);
    return edge_ctl_all(ctx, "cut", NULL, org_id, 5000);
}

int
hie_node__tls_reload(node_ctx_t *ctx, char *err, size_t err_bytes)
{
    /* one reload at a time (hiectl reload, SIGHUP and the CRL watcher run on two threads):
     * the edges must end on the newest build, not on whichever send came last */
    static pthread_mutex_t reload_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&reload_mu);
    SSL_CTX *nctx = NULL;
    int rc = hie_node__tls_ctx_build(&ctx->cfg, &nctx, err, err_bytes);
    if (rc == 0) {
        rc = hie_node__edge_ctl(ctx, "reload", nctx, 5000);
        if (rc != 0) {
            snprintf(err, err_bytes, "edge did not take the new context: %s",
                hie_strerror(rc));
        }
        SSL_CTX_free(nctx); /* each edge that took it holds its own reference */
    }
    if (rc == 0) {
        hie_node__crl_window_store(&ctx->metrics, ctx->cfg.crl_file);
    }
    atomic_fetch_add(rc == 0 ? &ctx->metrics.tls_reloads_ok : &ctx->metrics.tls_reloads_failed,
        1);
    pthread_mutex_unlock(&reload_mu);
    return rc;
}

/* ---- connections per organization --------------------------------------------------------- */

struct org_slot {
    char org[HIE_ORG_ID_BYTES_MAX + 1]; /* "" = free */
    uint32_t n;
    uint64_t admitted;                  /* its connections' admitted frames, bytes */
};

struct node_org_conns {
    pthread_mutex_t mu;
    struct org_slot *slots; /* open addressing, linear probing, backward-shift deletion */
    uint32_t mask;
};

int
hie_node__org_conns_create(uint32_t connections_max, node_org_conns_t **out)
{
    uint32_t cap = 16;
    while (cap < 2u * connections_max) { /* at most connections_max organizations at once */
        cap *= 2;
    }
    node_org_conns_t *oc = hie_mem_calloc(1, sizeof(*oc));
    struct org_slot *slots = hie_mem_calloc(cap, sizeof(*slots));
    if (oc == NULL || slots == NULL) {
        hie_mem_free(oc, sizeof(*oc));
        hie_mem_free(slots, (size_t)cap * sizeof(*slots));
        return HIE_ENOMEM;
    }
    pthread_mutex_init(&oc->mu, NULL);
    oc->slots = slots;
    oc->mask = cap - 1;
    *out = oc;
    return 0;
}

void
hie_node__org_conns_destroy(node_org_conns_t **ocp)
{
    node_org_conns_t *oc = *ocp;
    if (oc == NULL) {
        return;
    }
    pthread_mutex_destroy(&oc->mu);
    hie_mem_free(oc->slots, ((size_t)oc->mask + 1) * sizeof(*oc->slots));
    hie_mem_free(oc, sizeof(*oc));
    *ocp = NULL;
}

/* The slot of org, or the free one where it would go (the caller holds mu). */
static uint32_t
org_slot_find(const node_org_conns_t *oc, const char *org)
{
    uint32_t i = (uint32_t)hie_hash_pair(org, NULL) & oc->mask, probes = 0;
    while (oc->slots[i].org[0] != '\0' && strcmp(oc->slots[i].org, org) != 0) {
        i = (i + 1) & oc->mask;
        HIE_ASSERT(++probes <= oc->mask); /* never full: twice as many slots as connections */
    }
    return i;
}

bool
hie_node__org_conns_take(node_org_conns_t *oc, const char *org, uint32_t max)
{
    pthread_mutex_lock(&oc->mu);
    struct org_slot *sl = &oc->slots[org_slot_find(oc, org)];
    bool ok = sl->n < max;
    if (ok) {
        if (sl->org[0] == '\0') {
            snprintf(sl->org, sizeof(sl->org), "%s", org);
        }
        sl->n++;
    }
    pthread_mutex_unlock(&oc->mu);
    return ok;
}

uint64_t
hie_node__org_conns_admitted(node_org_conns_t *oc, const char *org)
{
    pthread_mutex_lock(&oc->mu);
    const struct org_slot *sl = &oc->slots[org_slot_find(oc, org)];
    uint64_t n = sl->org[0] != '\0' ? sl->admitted : 0;
    pthread_mutex_unlock(&oc->mu);
    return n;
}

void
hie_node__org_conns_admit(node_org_conns_t *oc, const char *org, int64_t delta)
{
    pthread_mutex_lock(&oc->mu);
    struct org_slot *sl = &oc->slots[org_slot_find(oc, org)];
    HIE_ASSERT(sl->org[0] != '\0'); /* an open connection of org holds the slot */
    HIE_ASSERT(delta >= 0 || sl->admitted >= (uint64_t)-delta);
    sl->admitted = (uint64_t)((int64_t)sl->admitted + delta);
    pthread_mutex_unlock(&oc->mu);
}

void
hie_node__org_conns_give(node_org_conns_t *oc, const char *org)
{
    pthread_mutex_lock(&oc->mu);
    uint32_t i = org_slot_find(oc, org);
    HIE_ASSERT(oc->slots[i].org[0] != '\0' && oc->slots[i].n > 0);
    if (--oc->slots[i].n == 0) { /* free it, shifting back the run that follows */
        HIE_ASSERT(oc->slots[i].admitted == 0); /* released before the connection's give */
        oc->slots[i].org[0] = '\0';
        for (uint32_t j = (i + 1) & oc->mask; oc->slots[j].org[0] != '\0';
             j = (j + 1) & oc->mask) {
            uint32_t home = (uint32_t)hie_hash_pair(oc->slots[j].org, NULL) & oc->mask;
            if (((j - home) & oc->mask) >= ((j - i) & oc->mask)) {
                oc->slots[i] = oc->slots[j];
                oc->slots[j].org[0] = '\0';
                oc->slots[j].n = 0;
                oc->slots[j].admitted = 0;
                i = j;
            }
        }
    }
    pthread_mutex_unlock(&oc->mu);
}
