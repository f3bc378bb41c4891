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
 *   ACKED    the recipient's acknowledgement was committed (n messages left the queue);
 *   CLOSED   (from an edge thread) a receiving connection ended: its flights wait, attempts
 *            kept, for the recipient's next RECEIVE, so nothing is dead-lettered meanwhile.
 * Output: node_req_t of type NODE_REQ_DELIVERY (a whole frame, no request) to the edge thread
 * that owns the connection; a connection that is gone drops it (the message stays queued).
 * The queue itself is the replicated state (queue_state.c): this thread only reads it, so a
 * crash loses nothing but the cursor, which RECEIVE rebuilds.
 *
 * Redelivery: each message sent and not yet acknowledged is a "flight" with a due time,
 * delivery.ack_timeout_ms doubling per attempt (capped, +-20% jitter so many recipients do not
 * retry in step). When it falls due it is sent again on the current connection; after
 * delivery.max_attempts attempts, or once it has waited delivery.max_age_ms, the thread commits
 * a dead_letter command that moves it to the recipient's dead letters (hiectl redrives them).
 * Attempts live in this thread's memory: a node restart starts counting again. A dead letter
 * that could not be committed leaves the message queued and its flight due again later.
 *
 * Consent: every send (first or again) decides the patient's consent for the recipient as it
 * stands then, as every other exchange does. A message it withholds is not sent: a dead_letter
 * command (reason consent) carries the refusal's audit record, applied with it.
 *
 * NEEDSWORK: per-patient ordering with no head-of-line blocking across patients (today: queue
 * order within a window of unacknowledged messages).
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

#define RECEIVERS_MAX 1024u /* recipients receiving (or with deliveries unacknowledged) at once */
#define RX_GONE '\x01'     /* a freed slot (org[0]): lookups probe past it, creates reuse it */
/* One message at a time (reset after each): its queue entry, the opened document and the
 * document's fields, each up to a 1 MiB content and its fields. */
#define DELIVERY_ARENA_BYTES (8u * 1024u * 1024u)
#define DELIVERY_TICK_MS 100
#define DEAD_COMMAND_TIMEOUT_MS 10000u
/* A dead letter the log did not take: the recipient's pump waits this long before the message
 * is decided and tried again (the log full, or not answering). */
#define DEAD_RETRY_NS (1000ull * 1000000ull)
/* An idle receiver (nothing in flight) is pumped at least this often: what a lost kick (a
 * full notification queue, a push answered UNAVAILABLE that the log still committed) would
 * otherwise leave queued until the next push. */
#define IDLE_PUMP_NS (1000ull * 1000000ull)

/* A message sent and not acknowledged yet. */
struct flight {
    uint64_t seq;
    uint64_t due_ns;      /* 0: sent on an earlier connection, not yet sent again */
    uint32_t attempts;
    uint32_t bytes;       /* its delivery frame */
    bool glass_audited;   /* its break-glass delivery is recorded: a resend is the same one */
    bool uncharged;       /* its next send (on a new connection) is no attempt: not the
                           * oldest in flight, so no reason to think it was read */
};

struct receiver {
    char org[HIE_ORG_ID_BYTES_MAX + 1]; /* "" = free slot */
    uint64_t glass_seq;   /* the last message whose break-glass delivery was recorded (its
                           * flight may not exist yet: the send failed after the record) */
    uint64_t conn_id;
    uint32_t edge_index;
    uint32_t window;
    uint64_t next_seq;    /* the next queue position to send from */
    uint64_t sent_hw;     /* highest seq ever sent: a seq at or below it is a redelivery */
    struct flight *fl;    /* HIE_DELIVERY_WINDOW_MAX, allocated at the first RECEIVE */
    uint32_t nfl;
    uint64_t last_sent_ns; /* for heartbeats on an idle connection */
    uint64_t stall_until_ns; /* no pump before then (a dead letter failed to commit); set to
                              * now: pump again at the next tick (a pump left more) */
    uint64_t pumped_ns;      /* the last pump of an idle receiver by the tick */
};

struct node_delivery {
    node_ctx_t *ctx;
    pthread_t thread;
    bool started;
    void *pull;
    void *edge[NODE_EDGES_MAX];
    struct receiver *rx;  /* RECEIVERS_MAX, open addressing by org */
    node_submitter_t sub; /* dead_letter commands */
    uint64_t sent, dropped, dead, rng;
    int64_t started_ms;   /* wall clock at start: a message accepted before is one the node
                           * may have delivered before it restarted (what it sent is not kept) */
};

/* Flights due now (sent on this connection). */
static uint32_t
inflight(const struct receiver *r)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->nfl; i++) {
        n += r->fl[i].due_ns != 0;
    }
    return n;
}

/* Bytes of the flights due now: what the member's connection may still hold unread. */
static uint64_t
inflight_bytes(const struct receiver *r)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < r->nfl; i++) {
        n += r->fl[i].due_ns != 0 ? r->fl[i].bytes : 0;
    }
    return n;
}

static struct flight *
flight_find(struct receiver *r, uint64_t seq)
{
    for (uint32_t i = 0; i < r->nfl; i++) {
        if (r->fl[i].seq == seq) {
            return &r->fl[i];
        }
    }
    return NULL;
}

static void
flight_drop(struct receiver *r, struct flight *f)
{
    *f = r->fl[--r->nfl];
}

/* The wait before attempt+1: ack_timeout * 2^(attempts-1), capped, +-20% jitter. */
static uint64_t
backoff_ns(struct node_delivery *d, uint32_t attempts)
{
    uint64_t ms = d->ctx->cfg.delivery_ack_timeout_ms;
    for (uint32_t i = 1; i < attempts && ms < HIE_DELIVERY_BACKOFF_MS_MAX; i++) {
        ms *= 2;
    }
    ms = ms < HIE_DELIVERY_BACKOFF_MS_MAX ? ms : HIE_DELIVERY_BACKOFF_MS_MAX;
    d->rng = d->rng * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t jitter = (d->rng >> 33) % 401u; /* 0..400 per mille: 80% .. 120% */
    return ms * (800u + jitter) * 1000ull;
}

static void rx_free(struct node_delivery *d, struct receiver *r);

/* The table is full: the receiver longest without a connection (only its unacknowledged
 * deliveries keep it: a suspended or departed member's stay for good) gives up its slot. Its
 * messages stay queued; its next RECEIVE starts them from the oldest again. NULL when every
 * receiver is connected. */
static struct receiver *
rx_evict(struct node_delivery *d)
{
    struct receiver *old = NULL;
    for (unsigned i = 0; i < RECEIVERS_MAX; i++) {
        struct receiver *r = &d->rx[i];
        if (r->org[0] != '\0' && r->org[0] != RX_GONE && r->conn_id == 0 &&
            (old == NULL || r->last_sent_ns < old->last_sent_ns)) {
            old = r;
        }
    }
    if (old != NULL) {
        hie_log_warn("delivery", "receiver table full: a disconnected receiver's slot reused",
            " org=%s unacknowledged=%u", old->org, old->nfl);
        rx_free(d, old);
    }
    return old;
}

static struct receiver *
rx_find(struct node_delivery *d, const char *org, bool create)
{
    uint64_t h = hie_hash_pair(org, "rx");
    struct receiver *reuse = NULL;
    for (unsigned i = 0; i < RECEIVERS_MAX; i++) {
        struct receiver *r = &d->rx[(h + i) % RECEIVERS_MAX];
        if (strcmp(r->org, org) == 0) {
            return r;
        }
        if (r->org[0] == RX_GONE) {
            reuse = reuse != NULL ? reuse : r;
            continue;
        }
        if (r->org[0] == '\0') {
            reuse = reuse != NULL ? reuse : r;
            break;
        }
    }
    reuse = reuse != NULL || !create ? reuse : rx_evict(d);
    if (!create || reuse == NULL) {
        return NULL; /* full: RECEIVERS_MAX recipients receiving at once */
    }
    snprintf(reuse->org, sizeof(reuse->org), "%s", org);
    atomic_fetch_add(&d->ctx->metrics.delivery_receivers, 1);
    return reuse;
}

/* The recipient neither receives nor has deliveries waiting: its slot is free again. */
static void
rx_free(struct node_delivery *d, struct receiver *r)
{
    hie_mem_free(r->fl, r->fl != NULL ? HIE_DELIVERY_WINDOW_MAX * sizeof(*r->fl) : 0);
    memset(r, 0, sizeof(*r));
    r->org[0] = RX_GONE;
    atomic_fetch_sub(&d->ctx->metrics.delivery_receivers, 1);
}

/* A request to r's connection (its frame, or a notice, set by the caller); NULL when out of
 * memory. */
static node_req_t *
dreq_new(const struct receiver *r)
{
    node_req_t *req = hie_mem_calloc(1, sizeof(*req));
    if (req != NULL) {
        req->magic = NODE_REQ_MAGIC;
        req->type = NODE_REQ_DELIVERY;
        req->conn_id = r->conn_id;
        req->edge_index = r->edge_index;
        snprintf(req->org_id, sizeof(req->org_id), "%s", r->org); /* for the edge's CLOSED */
    }
    return req;
}

struct pump {
    struct node_delivery *d;
    struct receiver *r;
    hie_arena_t *arena;
    MDB_txn *txn;           /* queue_visit's read transaction */
    int rc;
    uint64_t undeliverable; /* a message no delivery frame can carry: dead-lettered after */
    uint64_t exhausted;     /* a message past its attempts or age: dead-lettered after, */
    const char *exhausted_why; /* "max-attempts" or "max-age", */
    uint32_t exhausted_attempts; /* after this many */
    uint64_t withheld;      /* a message consent no longer permits: dead-lettered after, */
    uint8_t *withheld_audit; /* with its audit record (packed, hie_mem_alloc) */
    size_t withheld_len;
    Hie__V1__AuditAppendCommand *glass; /* the break-glass record the frame being built needs
                                         * (p->arena), committed once it is encoded */
    bool waited;            /* a break-glass record was committed: the visit ends, and the next
                             * one reads anew (a revoke acknowledged meanwhile counts) */
};

/* A delivery that consent permits only by breaking the glass (a deny filed since an
 * emergency push) is a break-glass disclosure of its own: its audit record, flagged, is
 * committed before the frame goes. Returns 0, or an error (not sent now: tried again). */
static int
breakglass_build(struct pump *p, uint64_t seq, const Hie__V1__QueuedMessage *q, node_who_t *to,
    node_subject_t *sub, Hie__V1__AuditAction action)
{
    char *rid = hie_arena_alloc(p->arena, HIE_PROTO_ID_BYTES_MAX + 1);
    if (rid == NULL) {
        return HIE_ENOMEM;
    }
    snprintf(rid, HIE_PROTO_ID_BYTES_MAX + 1, "btg.%016" PRIx64 ".%" PRIu64 ".%" PRIu64,
        hie_hash_pair(p->r->org, "dead"), seq, (uint64_t)hie_time_wall_ms());
    to->request_id = rid;
    sub->document_ids = (char **)(uintptr_t)&q->message_id;
    sub->n_document_ids = 1;
    int rc = hie_node__audit_body(p->d->ctx, to, action, HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED,
        sub, 1, p->arena, &p->glass);
    if (rc == 0) {
        p->glass->record->recipient_org = p->r->org;
    }
    return rc;
}

/* Commits the break-glass record breakglass_build made, the frame of seq encoded: only a
 * delivery that can go is recorded. Returns 0, or an error (not sent now: tried again). */
static int
breakglass_commit(struct pump *p, uint64_t seq)
{
    node_ctx_t *ctx = p->d->ctx;
    Hie__V1__AuditAppendCommand *ac = p->glass;
    p->glass = NULL;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.requester = ctx->cfg.node_id;
    cmd.request_id = ac->record->request_id;
    cmd.time_ms = hie_time_wall_ms();
    cmd.node_id = ctx->cfg.node_id;
    cmd.body_case = HIE__V1__COMMAND__BODY_AUDIT_APPEND;
    cmd.audit_append = ac;
    hie_command_result_t *res = NULL;
    int rc = hie_node__submit_wait(&p->d->sub, &cmd, DEAD_COMMAND_TIMEOUT_MS, p->arena, &res);
    rc = rc == 0 && res->code != HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED ? HIE_EUNAVAIL : rc;
    if (rc != 0) {
        hie_log_error("delivery", "break-glass audit record not committed: not delivered now",
            " org=%s seq=%" PRIu64 " rc=%s", p->r->org, seq, hie_strerror_name(rc));
        return rc;
    }
    p->r->glass_seq = seq;
    hie_log_warn("delivery", "delivered by breaking the glass", " org=%s seq=%" PRIu64,
        p->r->org, seq);
    return 0;
}

/* Consent for this delivery as it stands now: a directive filed since the push (or the
 * event) applies from the very next message, as it does for queries, and its marks go with
 * it ([out] *handling), and the patient's EUID it was decided for (*euid: now, not at the
 * push: an unlink or merge since moves the document to whoever its record belongs to).
 * Withheld: the audit record of the refusal is packed for the dead letter that takes the
 * message out of the queue. Returns 0 (permitted), HIE_EDENIED or an error. */
static int
delivery_consent(struct pump *p, uint64_t seq, const Hie__V1__QueuedMessage *q,
    const Hie__V1__Document *doc, Hie__V1__Handling **handling, const char **euid)
{
    node_ctx_t *ctx = p->d->ctx;
    hie_org_t *org = NULL;
    int rc = hie_node__state_org_get_in(ctx->state, p->txn, p->r->org, p->arena, &org);
    if (rc != 0 && rc != HIE_ENOTFOUND) {
        return rc;
    }
    char rid[HIE_PROTO_ID_BYTES_MAX + 1];
    snprintf(rid, sizeof(rid), "withheld.%016" PRIx64 ".%" PRIu64, hie_hash_pair(p->r->org,
        "dead"), seq);
    node_who_t to = {p->r->org, org, 0, rid, NULL};
    node_subject_t sub = {q->euid, {0}, NULL, 0, NULL, 0};
    Hie__V1__AuditAction action = HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PUSH;
    if (org != NULL && hie_node__queued_decide(ctx, p->txn, p->arena, &to, q, doc, &sub,
            &action)) {
        /* a break-glass delivery is recorded once: not when the push already was one, nor
         * again for a resend of the same message to this receiver */
        const struct flight *f = flight_find(p->r, seq);
        bool record = sub.decision.break_glass && !q->break_glass &&
                      (f == NULL || !f->glass_audited) && p->r->glass_seq != seq;
        rc = record ? breakglass_build(p, seq, q, &to, &sub, action) : 0;
        if (rc != 0) {
            return rc;
        }
        *handling = hie_node__handling(&sub.decision, p->arena);
        *euid = sub.euid != NULL && sub.euid[0] != '\0' ? sub.euid : q->euid;
        return *handling != NULL ? 0 : HIE_ENOMEM;
    }
    if (org == NULL) { /* deregistered since: fail closed */
        sub.decision.reason = "evaluation-error";
    }
    sub.document_ids = (char **)(uintptr_t)&q->message_id; /* named; n 0: none left */
    Hie__V1__AuditAppendCommand *ac = NULL;
    rc = hie_node__audit_body(ctx, &to, action, HIE__V1__ERROR_CODE__ERROR_CONSENT_DENIED,
        &sub, 1, p->arena, &ac);
    if (rc != 0) {
        return rc;
    }
    ac->record->recipient_org = p->r->org;
    size_t n = hie__v1__audit_append_command__get_packed_size(ac);
    uint8_t *buf = hie_mem_alloc(n + 1);
    if (buf == NULL) {
        return HIE_ENOMEM;
    }
    HIE_ASSERT(hie__v1__audit_append_command__pack(ac, buf) == n);
    HIE_ASSERT(p->withheld_audit == NULL);
    p->withheld = seq;
    p->withheld_audit = buf;
    p->withheld_len = n;
    hie_log_warn("delivery", "delivery withheld: consent", " org=%s seq=%" PRIu64
        " reason=%s", p->r->org, seq, sub.decision.reason != NULL ? sub.decision.reason : "");
    return HIE_EDENIED;
}

/* The delivery frame of one queued message (document opened with the data key). */
static int
frame_build(struct pump *p, uint64_t seq, hie_span_t stored, uint8_t **buf, size_t *len)
{
    struct node_delivery *d = p->d;
    const struct receiver *r = p->r;
    hie_arena_t *arena = p->arena;
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
        return rc == HIE_ENOMEM || hie_arena_cap_hit(arena) ? HIE_ENOMEM : HIE_ECORRUPT;
    }
    Hie__V1__Handling *handling = NULL;
    const char *euid = q->euid;
    rc = delivery_consent(p, seq, q, (const Hie__V1__Document *)dm, &handling, &euid);
    if (rc != 0) {
        sodium_memzero(plain, cap);
        p->glass = NULL; /* built, not to be committed: nothing goes */
        return rc;
    }
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    snprintf(id, sizeof(id), "dlv.%" PRIu64 ".%" PRIu64, r->conn_id & 0xffffffffu, seq);
    hie_envelope_t env = HIE__V1__ENVELOPE__INIT;
    Hie__V1__Delivery dl = HIE__V1__DELIVERY__INIT;
    dl.message_id = q->message_id;
    dl.seq = seq;
    dl.sender_org = q->sender_org;
    dl.document = (Hie__V1__Document *)dm;
    dl.euid = (char *)(uintptr_t)euid; /* the one consent decided for, as audited */
    dl.accepted_ms = q->accepted_ms;
    /* at least once: flagged when it may have been delivered before, also by this node before
     * a restart (as a broker flags what it recovers from disk) */
    dl.redelivery = seq <= r->sent_hw || q->accepted_ms < d->started_ms;
    dl.subscription_id = q->subscription_id;
    dl.event_number = q->event_number;
    dl.handling = handling; /* as decided now: a directive filed since may add marks */
    const struct flight *f = NULL;
    for (uint32_t i = 0; i < r->nfl && f == NULL; i++) {
        f = r->fl[i].seq == seq ? &r->fl[i] : NULL;
    }
    dl.attempt = f != NULL ? f->attempts + (f->uncharged ? 0u : 1u) : 1; /* as send_one counts */
    env.id = id;
    env.handled_ms = hie_time_wall_ms();
    env.body_case = HIE__V1__ENVELOPE__BODY_DELIVERY;
    env.delivery = &dl;
    rc = hie_proto_frame_encode(&env, d->ctx->cfg.frame_bytes_max, buf, len);
    sodium_memzero(plain, cap);
    bool glass = p->glass != NULL; /* breakglass_commit takes it */
    if (rc == 0 && glass && (rc = breakglass_commit(p, seq)) != 0) {
        hie_mem_free(*buf, *len); /* not recorded: not sent */
        *buf = NULL;
        *len = 0;
    }
    p->waited = p->waited || (glass && rc == 0);
    p->glass = NULL;
    return rc;
}

/* Sends seq (stored: its queue entry) to r's connection; records the flight. */
static int
send_one(struct pump *p, uint64_t seq, hie_span_t stored)
{
    struct node_delivery *d = p->d;
    struct receiver *r = p->r;
    node_req_t *req = dreq_new(r);
    if (req == NULL) {
        return HIE_ENOMEM;
    }
    int rc = frame_build(p, seq, stored, &req->reply_buf, &req->reply_len);
    uint32_t bytes = (uint32_t)req->reply_len; /* a frame: at most 16 MiB */
    if (rc != 0 || zmq_send(d->edge[r->edge_index], &req, sizeof(req), 0) != (int)sizeof(req)) {
        hie_node__req_destroy(&req);
        return rc != 0 ? rc : -errno;
    }
    struct flight *f = flight_find(r, seq);
    if (f == NULL) {
        HIE_ASSERT(r->nfl < HIE_DELIVERY_WINDOW_MAX);
        f = &r->fl[r->nfl++];
        *f = (struct flight){seq, 0, 0, 0, false, false};
    }
    f->glass_audited = f->glass_audited || r->glass_seq == seq;
    f->attempts += f->uncharged ? 0u : 1u;
    f->uncharged = false;
    f->bytes = bytes;
    f->due_ns = hie_time_mono_ns() + backoff_ns(d, f->attempts);
    r->last_sent_ns = hie_time_mono_ns();
    r->sent_hw = seq > r->sent_hw ? seq : r->sent_hw;
    d->sent++;
    return 0;
}

/* The lowest seq in flight (0: none). */
static uint64_t
flights_oldest(const struct receiver *r)
{
    uint64_t m = 0;
    for (uint32_t i = 0; i < r->nfl; i++) {
        m = m == 0 || r->fl[i].seq < m ? r->fl[i].seq : m;
    }
    return m;
}

/* Why a message sent before (flight f) goes to the dead letters instead of again: its
 * attempts used up, or its age (from its redrive, if redriven) past delivery.max_age_ms; NULL
 * when it may go. */
static const char *
flight_exhausted(struct node_delivery *d, const struct flight *f, hie_span_t stored,
    hie_arena_t *arena)
{
    if (f->attempts >= d->ctx->cfg.delivery_max_attempts) {
        return "max-attempts";
    }
    ProtobufCMessage *m = NULL;
    if (hie_proto_unpack(&hie__v1__queued_message__descriptor, stored, arena, &m) == 0) {
        const Hie__V1__QueuedMessage *qm = (const Hie__V1__QueuedMessage *)m;
        int64_t age = hie_time_wall_ms() - (qm->redriven_ms > qm->accepted_ms ? qm->redriven_ms
                                                                              : qm->accepted_ms);
        if (age > 0 && (uint64_t)age > d->ctx->cfg.delivery_max_age_ms) {
            return "max-age";
        }
    }
    return NULL;
}

static int
pump_one(void *ctx, uint64_t seq, hie_span_t stored)
{
    struct pump *p = ctx;
    struct receiver *r = p->r;
    uint32_t n = inflight(r);
    const struct flight *f = flight_find(r, seq);
    if (n >= r->window || (n > 0 && inflight_bytes(r) >= HIE_DELIVERY_INFLIGHT_BYTES_MAX) ||
        (f == NULL && r->nfl == HIE_DELIVERY_WINDOW_MAX)) {
        return 1;
    }
    /* sent on an earlier connection, the oldest in flight: its attempt limit holds here too (a
     * recipient that drops the connection before each acknowledgement timeout, e.g. crashing
     * on this message, got it again and again, never dead-lettered, every message behind it
     * held). Its age is not checked here: time offline counts for no message. */
    const char *why = f != NULL && !f->uncharged &&
                      f->attempts >= p->d->ctx->cfg.delivery_max_attempts ? "max-attempts"
                                                                          : NULL;
    if (why != NULL) {
        p->exhausted = seq;
        p->exhausted_why = why;
        p->exhausted_attempts = f->attempts;
        return 1;
    }
    p->rc = send_one(p, seq, stored);
    hie_arena_reset(p->arena); /* the frame went out in its own buffer: the next one's room */
    if (p->rc == HIE_EDENIED) { /* withheld: dead-lettered with its audit record */
        p->rc = 0;
        r->next_seq = seq + 1;
        return 1;
    }
    if (p->rc == HIE_ELIMIT || p->rc == HIE_ECORRUPT) {
        /* over the frame limit, or not to be opened: it never will be, and would stop every
         * message behind it */
        p->undeliverable = seq;
        p->rc = 0;
        r->next_seq = seq + 1;
        return 1;
    }
    if (p->rc != 0) { /* not sent (consent could not be read, memory, the edge): kept in
                         * place, and the pump waits before it tries again */
        r->stall_until_ns = hie_time_mono_ns() + DEAD_RETRY_NS;
        return 1;
    }
    r->next_seq = seq + 1;
    return p->waited ? 1 : 0; /* the snapshot is as old as the commit it waited for */
}

/* Runs fn over r's queue from seq (at most max entries) in a read transaction. */
static int
queue_visit(struct node_delivery *d, struct receiver *r, uint64_t seq, size_t max,
    int (*fn)(void *ctx, uint64_t seq, hie_span_t msg), struct pump *p)
{
    int rc = hie_arena_create(&p->arena, DELIVERY_ARENA_BYTES);
    rc = rc ? rc : (mdb_txn_begin(hie_node__state_env(d->ctx->state), NULL, MDB_RDONLY,
        &p->txn) ? HIE_ESTORAGE : 0);
    rc = rc ? rc : hie_node__queue_scan(hie_node__state_queue(d->ctx->state), p->txn, r->org,
        seq, max, fn, p);
    if (p->txn != NULL) {
        mdb_txn_abort(p->txn);
        p->txn = NULL;
    }
    hie_arena_destroy(&p->arena);
    rc = rc ? rc : p->rc;
    if (rc != 0) {
        hie_log_error("delivery", "delivery stalled", " org=%s seq=%" PRIu64 " rc=%s", r->org,
            seq, hie_strerror_name(rc));
    }
    return rc;
}

static bool dead_letter(struct node_delivery *d, struct receiver *r, uint64_t seq,
    uint32_t attempts, const char *reason, hie_span_t audit);

/* Dead-letters the message the visit withheld (consent), with its audit record; its flight
 * (sent before the directive) goes once that is committed, else it falls due again and is
 * decided again. Returns whether there was one. */
static bool
withheld_take(struct node_delivery *d, struct receiver *r, struct pump *p, uint32_t attempts)
{
    if (p->withheld == 0) {
        return false;
    }
    bool done = dead_letter(d, r, p->withheld, attempts, "consent",
        hie_span(p->withheld_audit, p->withheld_len));
    struct flight *f = flight_find(r, p->withheld);
    if (f != NULL && done) {
        flight_drop(r, f);
    } else if (f != NULL) { /* decided again soon: a commit that failed once (the log slow
                             * or full) is no reason to wait out a delivery backoff */
        f->due_ns = hie_time_mono_ns() + DEAD_RETRY_NS;
    }
    if (!done) { /* not sent, still queued: decided again once the stall ends (by its
                  * flight's due time when it has one: a rewind would resend those after it) */
        if (f == NULL) {
            r->next_seq = p->withheld < r->next_seq ? p->withheld : r->next_seq;
        }
        r->stall_until_ns = hie_time_mono_ns() + DEAD_RETRY_NS;
    }
    hie_mem_free(p->withheld_audit, p->withheld_len + 1);
    p->withheld_audit = NULL;
    p->withheld = 0;
    return true;
}

/* Sends what the window allows, oldest first (flights from an earlier connection again). A
 * message that cannot be sent at all, or that consent now withholds, goes to the dead
 * letters, and the pump goes on. */
static void
pump(struct node_delivery *d, struct receiver *r)
{
    if (r->conn_id == 0 || inflight(r) >= r->window || hie_time_mono_ns() < r->stall_until_ns) {
        return;
    }
    for (unsigned i = 0; i < HIE_DELIVERY_WINDOW_MAX && r->conn_id != 0; i++) {
        struct pump p = {.d = d, .r = r};
        if (queue_visit(d, r, r->next_seq, r->window - inflight(r), pump_one, &p) != 0 &&
            r->stall_until_ns <= hie_time_mono_ns()) { /* not read (a reader slot, memory):
            * the next tick after the stall tries again, also with nothing in flight */
            r->stall_until_ns = hie_time_mono_ns() + DEAD_RETRY_NS;
        }
        if (!withheld_take(d, r, &p, 0) && p.undeliverable == 0 && p.exhausted == 0 &&
            !p.waited) {
            return;
        }
        if (p.exhausted != 0) {
            struct flight *f = flight_find(r, p.exhausted);
            if (dead_letter(d, r, p.exhausted, p.exhausted_attempts, p.exhausted_why,
                    hie_span(NULL, 0))) {
                if (f != NULL) {
                    flight_drop(r, f);
                }
            } else {
                r->stall_until_ns = hie_time_mono_ns() + DEAD_RETRY_NS;
            }
        }
        if (p.undeliverable != 0 && !dead_letter(d, r, p.undeliverable, 0, "undeliverable",
                hie_span(NULL, 0))) {
            r->next_seq = p.undeliverable < r->next_seq ? p.undeliverable : r->next_seq;
            r->stall_until_ns = hie_time_mono_ns() + DEAD_RETRY_NS;
        }
        if (inflight(r) >= r->window || r->stall_until_ns > hie_time_mono_ns()) {
            return; /* full, or the log refuses: the next tick after the stall goes on */
        }
    }
    /* this call's share done, more perhaps behind (withheld ones, dead-lettered one by
     * one): the next tick goes on, also with nothing in flight and nothing new pushed (it
     * stopped here, and the messages behind waited for the next push) */
    r->stall_until_ns = hie_time_mono_ns();
}

/* Drops the flights whose message left the queue (acknowledged or dead-lettered). */
static void
flights_prune(struct node_delivery *d, struct receiver *r)
{
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(hie_node__state_env(d->ctx->state), NULL, MDB_RDONLY, &txn) != 0) {
        return;
    }
    for (uint32_t i = 0; i < r->nfl;) {
        if (!hie_node__queue_has(hie_node__state_queue(d->ctx->state), txn, r->org,
            r->fl[i].seq)) {
            flight_drop(r, &r->fl[i]);
        } else {
            i++;
        }
    }
    mdb_txn_abort(txn);
}

/* Gives up on seq: commits its move to the dead letters (audit: the packed record of a
 * delivery consent withheld, applied with it). Returns whether it was committed, or the
 * message had left the queue already. */
static bool
dead_letter(struct node_delivery *d, struct receiver *r, uint64_t seq, uint32_t attempts,
    const char *reason, hie_span_t audit)
{
    /* the recipient in the id: seqs are per recipient, so "dead.5.3" of one recipient was
     * taken for a repeat of another's and not applied */
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    snprintf(id, sizeof(id), "dead.%016" PRIx64 ".%" PRIu64 ".%u", hie_hash_pair(r->org, "dead"),
        seq, attempts);
    Hie__V1__DeadLetterCommand dc = HIE__V1__DEAD_LETTER_COMMAND__INIT;
    dc.recipient_org = r->org;
    dc.seq = seq;
    dc.attempts = attempts;
    dc.reason = (char *)(uintptr_t)reason;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.requester = d->ctx->cfg.node_id;
    cmd.request_id = id;
    cmd.time_ms = hie_time_wall_ms();
    cmd.node_id = d->ctx->cfg.node_id;
    cmd.body_case = HIE__V1__COMMAND__BODY_DEAD_LETTER;
    cmd.dead_letter = &dc;
    hie_arena_t *arena = NULL;
    hie_command_result_t *res = NULL;
    ProtobufCMessage *am = NULL;
    int rc = hie_arena_create(&arena, 64u * 1024u + audit.len * 2);
    if (rc == 0 && audit.len > 0) {
        rc = hie_proto_unpack(&hie__v1__audit_append_command__descriptor, audit, arena, &am);
        dc.audit = (Hie__V1__AuditAppendCommand *)am;
    }
    rc = rc ? rc : hie_node__submit_wait(&d->sub, &cmd, DEAD_COMMAND_TIMEOUT_MS, arena, &res);
    if (rc == 0 && res->code != HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        hie_log_warn("delivery", "dead letter refused", " org=%s seq=%" PRIu64 " code=%s "
            "message=\"%s\"", r->org, seq, hie_proto_error_code_name(res->code),
            res->message != NULL ? res->message : "");
        bool gone = res->code == HIE__V1__ERROR_CODE__ERROR_NOT_FOUND;
        hie_arena_destroy(&arena);
        return gone;
    }
    hie_arena_destroy(&arena);
    if (rc == 0) {
        d->dead++;
        hie_log_warn("delivery", "message dead-lettered", " org=%s seq=%" PRIu64 " attempts=%u "
            "reason=%s", r->org, seq, attempts, reason);
    } else {
        hie_log_error("delivery", "dead letter not committed", " org=%s seq=%" PRIu64 " rc=%s",
            r->org, seq, hie_strerror_name(rc));
    }
    return rc == 0;
}

struct resend {
    struct pump p;
    uint64_t seq;
    bool found;
    bool give_up;         /* dead-letter it (outside the read transaction) */
    bool undeliverable;   /* because no frame can carry it */
};

static int
resend_one(void *ctx, uint64_t seq, hie_span_t stored)
{
    struct resend *rs = ctx;
    struct node_delivery *d = rs->p.d;
    if (seq != rs->seq) {
        return 1; /* it left the queue meanwhile */
    }
    rs->found = true;
    struct flight *f = flight_find(rs->p.r, seq);
    if (flight_exhausted(d, f, stored, rs->p.arena) != NULL) {
        rs->give_up = true;
        return 1;
    }
    rs->p.rc = send_one(&rs->p, seq, stored);
    rs->p.rc = rs->p.rc == HIE_EDENIED ? 0 : rs->p.rc; /* withheld: rs->p.withheld */
    if (rs->p.rc == HIE_ELIMIT || rs->p.rc == HIE_ECORRUPT) { /* never sendable (a resent
        * frame grew past the limit): dead-lettered, as the pump does with a first send */
        rs->give_up = rs->undeliverable = true;
        rs->p.rc = 0;
    }
    return 1;
}

/* The flights that fell due: sent again, or dead-lettered. */
static void
tick_receiver(struct node_delivery *d, struct receiver *r, uint64_t now)
{
    if (now < r->stall_until_ns) {
        return; /* a dead letter did not commit: the log is full or slow; later */
    }
    r->stall_until_ns = 0;
    for (uint32_t j = 0; j < r->nfl && r->stall_until_ns == 0;) {
        struct flight *f = &r->fl[j];
        if (f->due_ns == 0 || f->due_ns > now) {
            j++;
            continue;
        }
        struct resend rs = {{.d = d, .r = r}, f->seq, false, false, false};
        uint64_t seq = f->seq;
        uint32_t attempts = f->attempts;
        int vrc = queue_visit(d, r, seq, 1, resend_one, &rs.p);
        if (withheld_take(d, r, &rs.p, attempts)) {
            continue; /* its flight dropped, or due again: j is the next one either way */
        }
        bool done = !rs.found && vrc == 0; /* not found: it left the queue (unless the queue
                                            * could not be read at all: kept, tried again) */
        if (rs.give_up) {
            done = dead_letter(d, r, seq, attempts, rs.undeliverable ? "undeliverable"
                : attempts >= d->ctx->cfg.delivery_max_attempts ? "max-attempts" : "max-age",
                hie_span(NULL, 0));
        }
        if (done) {
            flight_drop(r, f);
            continue;
        }
        if (rs.give_up || !rs.found) { /* not committed, or not read: still queued; again
                                        * after the stall, not after a delivery backoff */
            f->due_ns = now + DEAD_RETRY_NS;
            r->stall_until_ns = hie_time_mono_ns() + DEAD_RETRY_NS;
        }
        j++;
    }
    pump(d, r);
}

/* A heartbeat on an idle receiving connection: the link and the node are alive. */
static void
heartbeat(struct node_delivery *d, struct receiver *r)
{
    hie_envelope_t env = HIE__V1__ENVELOPE__INIT;
    Hie__V1__Heartbeat hb = HIE__V1__HEARTBEAT__INIT;
    MDB_txn *txn = NULL;
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    if (mdb_txn_begin(hie_node__state_env(d->ctx->state), NULL, MDB_RDONLY, &txn) == 0) {
        if (hie_node__queue_depth(hie_node__state_queue(d->ctx->state), txn, r->org,
            &hb.queued) != 0) {
            hb.queued = 0; /* the count is informative; the heartbeat still goes */
        }
        mdb_txn_abort(txn);
    }
    hb.node_id = d->ctx->cfg.node_id;
    hb.time_ms = hie_time_wall_ms();
    snprintf(id, sizeof(id), "hb.%" PRIu64, r->conn_id & 0xffffffffu);
    env.id = id;
    env.body_case = HIE__V1__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    node_req_t *req = dreq_new(r);
    if (req == NULL) {
        return;
    }
    if (hie_proto_frame_encode(&env, d->ctx->cfg.frame_bytes_max, &req->reply_buf,
        &req->reply_len) != 0 || zmq_send(d->edge[r->edge_index], &req, sizeof(req), 0) !=
        (int)sizeof(req)) {
        hie_node__req_destroy(&req);
        return;
    }
    r->last_sent_ns = hie_time_mono_ns();
}

static void
tick(struct node_delivery *d)
{
    uint64_t now = hie_time_mono_ns();
    uint64_t hb_ns = (uint64_t)d->ctx->cfg.delivery_heartbeat_ms * 1000000ull;
    for (unsigned i = 0; i < RECEIVERS_MAX; i++) {
        struct receiver *r = &d->rx[i];
        if (r->org[0] == '\0' || r->conn_id == 0) {
            continue;
        }
        if (r->nfl > 0) {
            tick_receiver(d, r, now);
        } else if (r->stall_until_ns != 0 && now >= r->stall_until_ns) {
            r->stall_until_ns = 0;
            pump(d, r); /* what a failed dead letter or send held back */
        } else if (r->stall_until_ns == 0 && now - r->pumped_ns >= IDLE_PUMP_NS) {
            r->pumped_ns = now;
            pump(d, r); /* a kick lost: one read of the queue's head a second */
        }
        if (now - r->last_sent_ns >= hb_ns) {
            heartbeat(d, r);
        }
    }
}

/* Tells r's (previous) connection that the member receives elsewhere now: if it is not
 * reading what it was sent, its edge closes it (the deliveries go again on the new one). */
static void
receiver_moved(struct node_delivery *d, const struct receiver *r)
{
    node_req_t *req = dreq_new(r);
    if (req == NULL) {
        return;
    }
    req->receiver_moved = true;
    if (zmq_send(d->edge[r->edge_index], &req, sizeof(req), 0) != (int)sizeof(req)) {
        hie_node__req_destroy(&req);
    }
}

/* A forwarded query for org's receiving connection (none: dropped, the query times out). */
static void
on_forward(struct node_delivery *d, const node_dmsg_t *m)
{
    struct receiver *r = rx_find(d, m->org, false);
    node_req_t *req = r != NULL && r->conn_id != 0 ? dreq_new(r) : NULL;
    if (req == NULL) {
        hie_mem_free(m->frame, m->frame_len);
        return;
    }
    req->reply_buf = m->frame;
    req->reply_len = m->frame_len;
    if (zmq_send(d->edge[r->edge_index], &req, sizeof(req), 0) != (int)sizeof(req)) {
        hie_node__req_destroy(&req);
    }
}

static void
on_message(struct node_delivery *d, const node_dmsg_t *m)
{
    if (m->type == DMSG_FORWARD) {
        on_forward(d, m);
        return;
    }
    if (m->type == DMSG_KICK && strcmp(m->org, "*") == 0) { /* several recipients' queues grew */
        for (unsigned i = 0; i < RECEIVERS_MAX; i++) {
            if (d->rx[i].org[0] != '\0' && d->rx[i].org[0] != RX_GONE) {
                pump(d, &d->rx[i]);
            }
        }
        return;
    }
    struct receiver *r = rx_find(d, m->org, m->type == DMSG_RECEIVE);
    if (r == NULL) {
        if (m->type == DMSG_RECEIVE) {
            hie_log_error("delivery", "too many receiving organizations", " org=%s", m->org);
        }
        return; /* KICK/ACKED for an org that is not receiving: its queue waits */
    }
    switch (m->type) {
    case DMSG_RECEIVE: /* from the oldest unacknowledged message, on the new connection */
        if (r->fl == NULL) {
            r->fl = hie_mem_calloc(HIE_DELIVERY_WINDOW_MAX, sizeof(*r->fl));
            if (r->fl == NULL) {
                rx_free(d, r);
                return;
            }
        }
        if (r->conn_id != 0 && r->conn_id != m->conn_id) {
            receiver_moved(d, r);
        }
        r->conn_id = m->conn_id;
        r->edge_index = m->edge_index;
        r->window = m->window;
        r->next_seq = 0;
        r->last_sent_ns = hie_time_mono_ns();
        for (uint32_t i = 0; i < r->nfl; i++) {
            r->fl[i].due_ns = 0; /* to be sent again, attempts kept */
            /* the oldest is the one an in-order consumer may have failed on (and dropped
             * the connection for): its resend is an attempt; the others' are not (a consumer
             * crashing on one message dead-lettered the whole window behind it) */
            r->fl[i].uncharged = r->fl[i].seq != flights_oldest(r);
        }
        break;
    case DMSG_ACKED:
        flights_prune(d, r);
        if (r->conn_id == 0 && r->nfl == 0) {
            rx_free(d, r);
            return;
        }
        break;
    case DMSG_CLOSED: /* nothing is sent (or counted as an attempt) until the next RECEIVE */
        if (r->conn_id == m->conn_id && r->edge_index == m->edge_index) {
            r->conn_id = 0;
            for (uint32_t i = 0; i < r->nfl; i++) {
                r->fl[i].due_ns = 0;
            }
            if (r->nfl == 0) {
                rx_free(d, r); /* nothing waits on it: the slot goes to whoever asks next */
            }
        }
        return;
    default:
        break; /* KICK: a new message; pump below */
    }
    pump(d, r);
}

static void *
delivery_thread(void *arg)
{
    struct node_delivery *d = arg;
    uint64_t next_tick = hie_time_mono_ns();
    for (;;) {
        node_dmsg_t m;
        zmq_pollitem_t it = {d->pull, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, DELIVERY_TICK_MS) < 0 && errno == ETERM) {
            break; /* the node is stopping */
        }
        if (hie_time_mono_ns() >= next_tick) {
            tick(d);
            next_tick = hie_time_mono_ns() + DELIVERY_TICK_MS * 1000000ull;
        }
        int n = zmq_recv(d->pull, &m, sizeof(m), ZMQ_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            break; /* ETERM */
        }
        HIE_ASSERT(n == (int)sizeof(m)); /* our own threads send these */
        HIE_ASSERT(m.type >= DMSG_RECEIVE && m.type <= DMSG_CLOSED);
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
    d->started_ms = hie_time_wall_ms();
    *out = d;
    d->rx = hie_mem_calloc(RECEIVERS_MAX, sizeof(*d->rx));
    d->rng = hie_time_mono_ns() | 1u;
    int rc = d->rx == NULL ? HIE_ENOMEM : delivery_sockets(d);
    rc = rc ? rc : hie_node__submitter_open(&d->sub, ctx->zctx);
    if (rc == 0) {
        rc = -pthread_create(&d->thread, NULL, delivery_thread, d);
        d->started = rc == 0;
        if (rc == 0) {
            pthread_setname_np(d->thread, "hie-delivery"); /* for top -H, perf, /proc */
        }
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
    for (unsigned i = 0; d->rx != NULL && i < RECEIVERS_MAX; i++) {
        hie_mem_free(d->rx[i].fl, HIE_DELIVERY_WINDOW_MAX * sizeof(*d->rx[i].fl));
    }
    hie_mem_free(d->rx, RECEIVERS_MAX * sizeof(*d->rx));
    if (d->sub.dealer != NULL) {
        hie_node__submitter_close(&d->sub);
    }
    hie_mem_free(d, sizeof(*d));
    *dp = NULL;
}

bool
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
        return false;
    }
    return true;
}

void
hie_node__delivery_forward(void *sock, const char *org, uint8_t *frame, size_t len)
{
    node_dmsg_t m;
    memset(&m, 0, sizeof(m));
    m.type = DMSG_FORWARD;
    snprintf(m.org, sizeof(m.org), "%s", org);
    m.frame = frame;
    m.frame_len = len;
    if (zmq_send(sock, &m, sizeof(m), ZMQ_DONTWAIT) != (int)sizeof(m)) {
        hie_mem_free(frame, len); /* the query will time out for this responder */
    }
}
