/*
 * admin.c - the operator's local admin channel (hiectl <-> hie-node).
 *
 * A ZeroMQ REP socket on ipc://<admin_socket>, created with mode 0600 inside the data
 * directory (mode 0700): only the node's own user can talk to it, which is the whole of its
 * authentication. Requests are protobuf AdminRequest messages (proto/admin.proto), at most
 * HIE_ADMIN_MSG_BYTES_MAX bytes (ZMQ_MAXMSGSIZE drops larger ones before they are buffered).
 * Commands go through the same log and state machine as everything else, as requester
 * "@operator", with the request id as idempotency key. Consent directives (hiectl consent) go
 * through the members' own exchanges (consent_exchange.c) with that requester, which may act
 * for any organization's patient.
 *
 * Thread: its own. Blocking in zmq_poll; exits when the ZeroMQ context is shut down.
 */
#include "node_int.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#define ADMIN_COMMAND_TIMEOUT_MS 10000
#define ADMIN_ARENA_BYTES (256u * 1024u * 1024u)

struct node_admin {
    node_ctx_t *ctx;
    pthread_t thread;
    void *rep;
    node_submitter_t sub;
    bool started;
    bool bound; /* the socket file is ours to remove */
    void *dpush; /* kicks to the delivery thread (a redrive refilled a queue) */
};

static void
admin_send_reply(struct node_admin *a, Hie__V1__AdminReply *reply)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (hie_proto_pack(&reply->base, SIZE_MAX / 2, &buf, &len) != 0) {
        Hie__V1__AdminReply fail = HIE__V1__ADMIN_REPLY__INIT;
        Hie__V1__Error err = HIE__V1__ERROR__INIT;
        err.code = HIE__V1__ERROR_CODE__ERROR_INTERNAL;
        err.message = (char *)(uintptr_t)"reply too large or out of memory";
        fail.error = &err;
        if (hie_proto_pack(&fail.base, 4096, &buf, &len) != 0) {
            buf = NULL; /* out of memory: an empty reply tells hiectl something broke */
            len = 0;
        }
    }
    (void)zmq_send(a->rep, buf != NULL ? buf : (uint8_t *)"", len, 0);
    hie_mem_free(buf, len);
}

static void
admin_error(struct node_admin *a, Hie__V1__ErrorCode code, const char *message,
    const char *field)
{
    Hie__V1__AdminReply reply = HIE__V1__ADMIN_REPLY__INIT;
    Hie__V1__Error err = HIE__V1__ERROR__INIT;
    err.code = code;
    err.message = (char *)(uintptr_t)message;
    err.field = (char *)(uintptr_t)(field != NULL ? field : "");
    reply.error = &err;
    admin_send_reply(a, &reply);
}

static void
admin_status(struct node_admin *a)
{
    node_ctx_t *ctx = a->ctx;
    Hie__V1__AdminReply reply = HIE__V1__ADMIN_REPLY__INIT;
    Hie__V1__AdminStatusReply st = HIE__V1__ADMIN_STATUS_REPLY__INIT;
    char listen[96];
    uint64_t applied = 0;
    if (hie_node__state_applied_index(ctx->state, &applied) != 0) {
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_INTERNAL, "cannot read state", NULL);
        return;
    }
    snprintf(listen, sizeof(listen), "%s:%u", ctx->cfg.listen_address, ctx->cfg.listen_port);
    st.node_id = ctx->cfg.node_id;
    st.version = (char *)(uintptr_t)HIE_NODE_VERSION;
    st.applied_index = applied;
    st.log_index = hie_cluster_log_last_index(ctx->log);
    st.log_first_index = hie_cluster_log_first_index(ctx->log);
    st.uptime_ms = (hie_time_mono_ns() - ctx->metrics.start_ns) / 1000000u;
    st.connections = atomic_load(&ctx->metrics.connections_open);
    st.listen = listen;
    reply.body_case = HIE__V1__ADMIN_REPLY__BODY_STATUS;
    reply.status = &st;
    admin_send_reply(a, &reply);
}

static void
admin_reply_result(struct node_admin *a, hie_command_result_t *res)
{
    Hie__V1__AdminReply reply = HIE__V1__ADMIN_REPLY__INIT;
    reply.body_case = HIE__V1__ADMIN_REPLY__BODY_RESULT;
    reply.result = res;
    admin_send_reply(a, &reply);
}

/* A redrive is decided here, consent as it stands now for each dead letter (the operator's
 * command carries only the recipient and seq). False when it was answered with an error. */
static bool
admin_redrive_decide(struct node_admin *a, hie_command_t *cmd, hie_arena_t *arena)
{
    uint32_t withheld = 0;
    int rc = hie_node__redrive_decide(a->ctx, cmd, arena, &withheld);
    if (rc != 0) {
        admin_error(a, rc == HIE_ENOTFOUND ? HIE__V1__ERROR_CODE__ERROR_NOT_FOUND
            : hie_proto_error_code(rc), rc == HIE_ENOTFOUND ? "no such organization"
            : hie_strerror(rc), "recipient_org");
        return false;
    }
    if (withheld > 0) {
        hie_log_warn("admin", "redrive: dead letters the patient's consent now withholds stay "
            "dead", " org=%s withheld=%u", cmd->redrive->recipient_org, withheld);
    }
    return true;
}

/* The commands an operator may send as they are. The rest come from the node itself (audit
 * records and checkpoints, deliveries, dead letters), from members (whose requests are
 * checked and decided first), or through their own admin requests (import, training,
 * review, consent): taken here they would bypass those checks, e.g. forge an audit record
 * that no verify could tell from a real one. */
static bool
admin_command_allowed(int body)
{
    switch (body) {
    case HIE__V1__COMMAND__BODY_ORG_REGISTER:
    case HIE__V1__COMMAND__BODY_ORG_SET_ROLES:
    case HIE__V1__COMMAND__BODY_ORG_SUSPEND:
    case HIE__V1__COMMAND__BODY_ORG_REINSTATE:
    case HIE__V1__COMMAND__BODY_REDRIVE:
    case HIE__V1__COMMAND__BODY_DEAD_PURGE:
    case HIE__V1__COMMAND__BODY_UNSUBSCRIBE:
    case HIE__V1__COMMAND__BODY_RETRACT:
        return true;
    default:
        return false;
    }
}

static void
admin_command(struct node_admin *a, Hie__V1__AdminRequest *req, hie_arena_t *arena)
{
    hie_command_t *cmd = req->command;
    hie_errinfo_t info = {0};
    hie_command_result_t *res = NULL;
    if (!admin_command_allowed((int)cmd->body_case)) {
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "the admin channel does not take "
            "this command: it comes from the node itself or has its own request", "command");
        return;
    }
    cmd->requester = (char *)(uintptr_t)NODE_OPERATOR_ID;
    cmd->request_id = req->id;
    cmd->time_ms = hie_time_wall_ms();
    cmd->node_id = a->ctx->cfg.node_id;
    if (hie_proto_command_validate(cmd, &info) != 0) {
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, info.reason, info.field);
        return;
    }
    if (cmd->body_case == HIE__V1__COMMAND__BODY_ORG_REGISTER &&
        strcmp(cmd->org_register->org_id, NODE_REPOSITORY_SOURCE) == 0) {
        /* the name query replies and audit records give the HIE's own repository */
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "the organization id "
            "'" NODE_REPOSITORY_SOURCE "' is reserved for the HIE's document repository",
            "org_id");
        return;
    }
    int rc = hie_node__state_dedup_get(a->ctx->state, NODE_OPERATOR_ID, req->id,
        (int)cmd->body_case, arena, &res);
    if (rc == 0) {
        admin_reply_result(a, res); /* a repeat: the original result, nothing applied */
        return;
    }
    if (cmd->body_case == HIE__V1__COMMAND__BODY_REDRIVE && !admin_redrive_decide(a, cmd,
            arena)) {
        return;
    }
    rc = hie_node__submit_wait(&a->sub, cmd, ADMIN_COMMAND_TIMEOUT_MS, arena, &res);
    if (rc != 0) {
        hie_log_error("admin", "command failed", " id=%s rc=%s", req->id, hie_strerror_name(rc));
        admin_error(a, hie_proto_error_code(rc), rc == HIE_ETIMEDOUT
            ? "not answered in time: it may still have been applied; send it again with the "
              "same --id to learn its result" : hie_strerror(rc), NULL);
        return;
    }
    hie_log_info("admin", "command applied", " id=%s index=%lu outcome=%s", req->id,
        res->index, res->code ? hie_proto_error_code_name(res->code) : "OK");
    if (res->code == 0 && cmd->body_case == HIE__V1__COMMAND__BODY_REDRIVE &&
        res->acknowledged > 0) { /* a receiver with nothing in flight is pumped on a kick */
        hie_node__delivery_notify(a->dpush, DMSG_KICK, cmd->redrive->recipient_org, 0, 0, 0);
    }
    if (res->code == 0 && cmd->body_case == HIE__V1__COMMAND__BODY_RETRACT) {
        hie_log_info("repository", "document retracted by the operator", " id=%s document=%s "
            "bytes_released=%lu", req->id, res->document_id != NULL &&
            res->document_id[0] != '\0' ? res->document_id : cmd->retract->document_id,
            (unsigned long)res->bytes_released);
    }
    if (res->code == 0 && cmd->body_case == HIE__V1__COMMAND__BODY_ORG_SUSPEND) {
        /* its open sessions would go on receiving deliveries and forwarded queries: the
         * registry check runs per request, and a receiving connection sends none */
        rc = hie_node__edge_cut_org(a->ctx, cmd->org_suspend->org_id);
        if (rc != 0) {
            hie_log_error("admin", "suspended organization's sessions not all cut", " org=%s "
                "rc=%s", cmd->org_suspend->org_id, hie_strerror_name(rc));
        }
    }
    admin_reply_result(a, res);
}

struct org_list {
    hie_org_t **orgs;
    size_t count, cap;
    hie_arena_t *arena;
};

static int
org_list_add(void *vctx, hie_org_t *org)
{
    struct org_list *l = vctx;
    if (l->count == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        hie_org_t **n = hie_arena_alloc(l->arena, ncap * sizeof(*n));
        if (n == NULL) {
            return 1; /* list what fits */
        }
        if (l->count > 0) {
            memcpy(n, l->orgs, l->count * sizeof(*n));
        }
        l->orgs = n;
        l->cap = ncap;
    }
    l->orgs[l->count++] = org;
    return 0;
}

static void
admin_org_list(struct node_admin *a, hie_arena_t *arena)
{
    struct org_list l = {NULL, 0, 0, arena};
    int rc = hie_node__state_org_each(a->ctx->state, arena, org_list_add, &l);
    if (rc != 0) {
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_INTERNAL, hie_strerror(rc), NULL);
        return;
    }
    Hie__V1__AdminReply reply = HIE__V1__ADMIN_REPLY__INIT;
    Hie__V1__AdminOrgListReply list = HIE__V1__ADMIN_ORG_LIST_REPLY__INIT;
    list.n_orgs = l.count;
    list.orgs = l.orgs;
    reply.body_case = HIE__V1__ADMIN_REPLY__BODY_ORG_LIST;
    reply.org_list = &list;
    admin_send_reply(a, &reply);
}

static void
admin_org_get(struct node_admin *a, const char *org_id, hie_arena_t *arena)
{
    hie_org_t *org = NULL;
    int rc = hie_node__state_org_get(a->ctx->state, org_id != NULL ? org_id : "", arena, &org);
    if (rc != 0) {
        admin_error(a, hie_proto_error_code(rc), rc == HIE_ENOTFOUND ?
            "organization not registered" : hie_strerror(rc), "org_id");
        return;
    }
    Hie__V1__AdminReply reply = HIE__V1__ADMIN_REPLY__INIT;
    reply.body_case = HIE__V1__ADMIN_REPLY__BODY_ORG;
    reply.org = org;
    admin_send_reply(a, &reply);
}

static void
admin_reload(struct node_admin *a)
{
    char err[512] = "";
    int rc = hie_node__tls_reload(a->ctx, err, sizeof(err));
    if (rc != 0) {
        hie_log_error("admin", "tls reload failed", " reason=\"%s\"", err);
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, err, NULL);
        return;
    }
    hie_log_info("admin", "tls reloaded", " source=admin");
    Hie__V1__AdminReply reply = HIE__V1__ADMIN_REPLY__INIT;
    Hie__V1__AdminReloadReply rr = HIE__V1__ADMIN_RELOAD_REPLY__INIT;
    reply.body_case = HIE__V1__ADMIN_REPLY__BODY_RELOAD;
    reply.reload = &rr;
    admin_send_reply(a, &reply);
}

static void
admin_mpi(struct node_admin *a, Hie__V1__AdminRequest *req, hie_arena_t *arena)
{
    Hie__V1__AdminReply reply = HIE__V1__ADMIN_REPLY__INIT;
    node_mpi_err_t e = {0};
    if (hie_node__admin_mpi(a->ctx, &a->sub, req, arena, &reply, &e) != 0) {
        admin_error(a, e.code, e.message, e.field);
        return;
    }
    admin_send_reply(a, &reply);
}

_Static_assert((int)HIE__V1__ADMIN_REPLY__BODY_CONSENT_SUBMIT ==
    (int)HIE__V1__ADMIN_REQUEST__BODY_CONSENT_SUBMIT, "reply numbers follow requests");
_Static_assert((int)HIE__V1__ADMIN_REPLY__BODY_CONSENT_REVOKE ==
    (int)HIE__V1__ADMIN_REQUEST__BODY_CONSENT_REVOKE, "reply numbers follow requests");
_Static_assert((int)HIE__V1__ADMIN_REPLY__BODY_CONSENT_LIST ==
    (int)HIE__V1__ADMIN_REQUEST__BODY_CONSENT_LIST, "reply numbers follow requests");

/* The operator's consent exchanges: the members' own (consent_exchange.c) as "@operator".
 * Submit and revoke are commands: AdminRequest.id is their idempotency key, or a fresh one when
 * hiectl sent none (nothing to deduplicate then). */
static void
admin_consent(struct node_admin *a, Hie__V1__AdminRequest *req, hie_arena_t *arena)
{
    Hie__V1__AdminReply reply = HIE__V1__ADMIN_REPLY__INIT;
    node_mpi_err_t e = {0};
    char fresh[24];
    const char *id = req->id != NULL ? req->id : "";
    if (id[0] == '\0') {
        uint8_t r[8];
        randombytes_buf(r, sizeof(r));
        memcpy(fresh, "adm-", 4);
        sodium_bin2hex(fresh + 4, sizeof(fresh) - 4, r, sizeof(r));
        id = fresh;
    } else if (!hie_proto_id_valid(id, strlen(id))) {
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "invalid request id", "id");
        return;
    }
    HIE_ASSERT(hie_proto_id_valid(id, strlen(id)));
    int rc;
    reply.body_case = (Hie__V1__AdminReply__BodyCase)req->body_case; /* same numbers */
    switch (req->body_case) {
    case HIE__V1__ADMIN_REQUEST__BODY_CONSENT_SUBMIT:
        rc = hie_node__consent_submit_xchg(a->ctx, &a->sub, NODE_OPERATOR_ID, id,
            req->consent_submit, arena, &reply.consent_submit, &e);
        break;
    case HIE__V1__ADMIN_REQUEST__BODY_CONSENT_REVOKE:
        rc = hie_node__consent_revoke_xchg(a->ctx, &a->sub, NODE_OPERATOR_ID, id,
            req->consent_revoke, arena, &reply.consent_revoke, &e);
        break;
    default:
        HIE_ASSERT(req->body_case == HIE__V1__ADMIN_REQUEST__BODY_CONSENT_LIST);
        rc = hie_node__consent_list_xchg(a->ctx, NODE_OPERATOR_ID, req->consent_list, arena,
            &reply.consent_list, &e);
    }
    if (rc != 0) {
        hie_log_info("admin", "consent request refused", " id=%s code=%s", id,
            hie_proto_error_code_name(e.code));
        admin_error(a, e.code, e.message, e.field);
        return;
    }
    hie_log_info("admin", "consent request done", " id=%s body=%d", id, (int)req->body_case);
    admin_send_reply(a, &reply);
}

#define ADMIN_DEAD_LIST_MAX 1000u

struct dead_list {
    hie_arena_t *arena;
    Hie__V1__AdminDeadListReply *out;
    int rc;
};

static int
dead_one(void *ctx, hie_span_t stored, uint64_t seq)
{
    struct dead_list *dl = ctx;
    if (dl->out->n_letters == ADMIN_DEAD_LIST_MAX) { /* one more than a reply lists */
        dl->out->truncated = true;
        return 1;
    }
    ProtobufCMessage *m = NULL;
    Hie__V1__DeadLetter *d = hie_arena_alloc(dl->arena, sizeof(*d));
    if (d == NULL || hie_proto_unpack(&hie__v1__queued_message__descriptor, stored, dl->arena,
        &m) != 0) {
        dl->rc = d == NULL ? HIE_ENOMEM : HIE_ECORRUPT;
        return 1;
    }
    const Hie__V1__QueuedMessage *q = (const Hie__V1__QueuedMessage *)m;
    hie__v1__dead_letter__init(d);
    d->recipient_org = q->recipient_org;
    d->seq = seq;
    d->message_id = q->message_id;
    d->sender_org = q->sender_org;
    d->accepted_ms = q->accepted_ms;
    d->dead_ms = q->dead_ms;
    d->attempts = q->attempts;
    d->reason = q->dead_reason;
    d->content_bytes = q->sealed_document.len; /* sealed size: the content is not opened */
    dl->out->letters[dl->out->n_letters++] = d;
    return 0;
}

/* A read transaction for a listing whose reply out was allocated (NULL: out of memory); false
 * once the error is answered. */
static bool
admin_read_begin(struct node_admin *a, const void *out, MDB_txn **txn)
{
    if (out == NULL || mdb_txn_begin(hie_node__state_env(a->ctx->state), NULL, MDB_RDONLY,
        txn) != 0) {
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "busy", NULL);
        return false;
    }
    return true;
}

/* hiectl delivery dead: metadata of the dead letters, never their content. */
static void
admin_dead_list(struct node_admin *a, const Hie__V1__AdminDeadList *q, hie_arena_t *arena)
{
    Hie__V1__AdminReply reply = HIE__V1__ADMIN_REPLY__INIT;
    Hie__V1__AdminDeadListReply *out = hie_arena_alloc(arena, sizeof(*out));
    MDB_txn *txn = NULL;
    const char *org = q->org_id != NULL && q->org_id[0] != '\0' ? q->org_id : NULL;
    const char *from = org == NULL && q->from_org != NULL && q->from_org[0] != '\0'
        ? q->from_org : NULL;
    if ((org != NULL && !hie_proto_org_id_valid(org, strlen(org))) ||
        (from != NULL && !hie_proto_org_id_valid(from, strlen(from)))) {
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "not an organization id",
            "org_id");
        return;
    }
    if (!admin_read_begin(a, out, &txn)) {
        return;
    }
    hie__v1__admin_dead_list_reply__init(out);
    out->letters = hie_arena_alloc(arena, ADMIN_DEAD_LIST_MAX * sizeof(*out->letters));
    struct dead_list dl = {arena, out, out->letters == NULL ? HIE_ENOMEM : 0};
    uint64_t seq = (org != NULL || from != NULL) && q->after_seq < UINT64_MAX
        ? q->after_seq + 1 : 0;
    int rc = dl.rc ? dl.rc : hie_node__queue_dead_scan(hie_node__state_queue(a->ctx->state),
        txn, org, from, seq, ADMIN_DEAD_LIST_MAX + 1u, dead_one, &dl);
    mdb_txn_abort(txn);
    rc = rc ? rc : dl.rc;
    if (rc != 0) {
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_INTERNAL, "cannot read the dead letters", NULL);
        return;
    }
    reply.body_case = HIE__V1__ADMIN_REPLY__BODY_DEAD_LIST;
    reply.dead_list = out;
    admin_send_reply(a, &reply);
}

#define ADMIN_SUBS_LIST_MAX 1000u

struct subs_list {
    Hie__V1__AdminSubsListReply *out;
    node_ctx_t *ctx;
    MDB_txn *txn;
};

static int
subs_one(void *ctx, const Hie__V1__Subscription *sub)
{
    struct subs_list *sl = ctx;
    if (sl->out->n_subscriptions == ADMIN_SUBS_LIST_MAX) {
        sl->out->truncated = true;
        return 1;
    }
    uint64_t depth = 0;
    int rc = hie_node__queue_depth(hie_node__state_queue(sl->ctx->state), sl->txn, sub->org_id,
        &depth);
    sl->out->subscriptions[sl->out->n_subscriptions] = (Hie__V1__Subscription *)(uintptr_t)sub;
    sl->out->queued[sl->out->n_subscriptions] = depth;
    sl->out->n_subscriptions++;
    sl->out->n_queued++;
    return rc == HIE_ENOTFOUND ? 0 : rc;
}

/* hiectl subscription list: the subscriptions and their subscribers' queue depths. */
static void
admin_subs_list(struct node_admin *a, const Hie__V1__AdminSubsList *q, hie_arena_t *arena)
{
    Hie__V1__AdminReply reply = HIE__V1__ADMIN_REPLY__INIT;
    Hie__V1__AdminSubsListReply *out = hie_arena_alloc(arena, sizeof(*out));
    MDB_txn *txn = NULL;
    const char *org = q->org_id != NULL && q->org_id[0] != '\0' ? q->org_id : NULL;
    if (org != NULL && !hie_proto_org_id_valid(org, strlen(org))) {
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "not an organization id",
            "org_id");
        return;
    }
    if (!admin_read_begin(a, out, &txn)) {
        return;
    }
    hie__v1__admin_subs_list_reply__init(out);
    out->subscriptions = hie_arena_alloc(arena, ADMIN_SUBS_LIST_MAX * sizeof(*out->subscriptions));
    out->queued = hie_arena_alloc(arena, ADMIN_SUBS_LIST_MAX * sizeof(*out->queued));
    struct subs_list sl = {out, a->ctx, txn};
    int rc = out->subscriptions == NULL || out->queued == NULL ? HIE_ENOMEM
        : hie_node__subs_scan(hie_node__state_subs(a->ctx->state), txn, org,
              ADMIN_SUBS_LIST_MAX + 1u, arena, subs_one, &sl);
    mdb_txn_abort(txn);
    if (rc != 0) {
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_INTERNAL, "cannot read the subscriptions",
            NULL);
        return;
    }
    reply.body_case = HIE__V1__ADMIN_REPLY__BODY_SUBS_LIST;
    reply.subs_list = out;
    admin_send_reply(a, &reply);
}

static void
admin_dispatch(struct node_admin *a, hie_span_t in, hie_arena_t *arena)
{
    ProtobufCMessage *m = NULL;
    hie_errinfo_t info = {0};
    if (hie_proto_unpack_checked(&hie__v1__admin_request__descriptor, in, arena, &m, &info,
            "admin_request") != 0) {
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, info.reason, info.field);
        return;
    }
    Hie__V1__AdminRequest *req = (Hie__V1__AdminRequest *)m;
    switch (req->body_case) {
    case HIE__V1__ADMIN_REQUEST__BODY_STATUS:
        admin_status(a);
        break;
    case HIE__V1__ADMIN_REQUEST__BODY_COMMAND:
        if (req->id == NULL || !hie_proto_id_valid(req->id, strlen(req->id))) {
            admin_error(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "invalid request id", "id");
        } else {
            admin_command(a, req, arena);
        }
        break;
    case HIE__V1__ADMIN_REQUEST__BODY_ORG_LIST:
        admin_org_list(a, arena);
        break;
    case HIE__V1__ADMIN_REQUEST__BODY_ORG_GET:
        admin_org_get(a, req->org_get->org_id, arena);
        break;
    case HIE__V1__ADMIN_REQUEST__BODY_RELOAD:
        admin_reload(a);
        break;
    case HIE__V1__ADMIN_REQUEST__BODY_MPI_FEED_BATCH:
    case HIE__V1__ADMIN_REQUEST__BODY_MPI_TRAIN:
    case HIE__V1__ADMIN_REQUEST__BODY_MPI_STATS:
    case HIE__V1__ADMIN_REQUEST__BODY_REVIEW_LIST:
    case HIE__V1__ADMIN_REQUEST__BODY_REVIEW_DECIDE:
    case HIE__V1__ADMIN_REQUEST__BODY_MPI_HISTORY:
        admin_mpi(a, req, arena);
        break;
    case HIE__V1__ADMIN_REQUEST__BODY_CONSENT_SUBMIT:
    case HIE__V1__ADMIN_REQUEST__BODY_CONSENT_REVOKE:
    case HIE__V1__ADMIN_REQUEST__BODY_CONSENT_LIST:
        admin_consent(a, req, arena);
        break;
    case HIE__V1__ADMIN_REQUEST__BODY_DEAD_LIST:
        admin_dead_list(a, req->dead_list, arena);
        break;
    case HIE__V1__ADMIN_REQUEST__BODY_SUBS_LIST:
        admin_subs_list(a, req->subs_list, arena);
        break;
    default:
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "unknown admin request", NULL);
    }
}

static bool
admin_once(struct node_admin *a)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, a->rep, 0) < 0) {
        zmq_msg_close(&msg);
        return errno == EINTR;
    }
    hie_arena_t *arena = NULL;
    if (hie_arena_create(&arena, ADMIN_ARENA_BYTES) != 0) {
        admin_error(a, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, "out of memory", NULL);
    } else {
        admin_dispatch(a, hie_span(zmq_msg_data(&msg), zmq_msg_size(&msg)), arena);
    }
    hie_arena_destroy(&arena);
    zmq_msg_close(&msg);
    return true;
}

static void *
admin_thread(void *arg)
{
    struct node_admin *a = arg;
    while (admin_once(a)) {
    }
    zmq_close(a->rep);
    a->rep = NULL;
    zmq_close(a->dpush);
    a->dpush = NULL;
    hie_node__submitter_close(&a->sub);
    return NULL;
}

/* The socket's folder must be ours and writable by nobody else: in a shared one another user
 * could put their own socket there first and receive what hiectl sends (consent directives,
 * import rows). The default, the data directory, is 0700. */
static int
admin_dir_private(const char *path)
{
    char dir[NODE_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        return 0;
    }
    *(slash == dir ? slash + 1 : slash) = '\0';
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() ||
        (sb.st_mode & 0022) != 0) {
        hie_log_error("admin", "admin socket refused", " dir=%s hint=\"%s\"", dir,
            "a folder of the node's user that no one else can write (the data directory)");
        return HIE_EDENIED;
    }
    return 0;
}

/* True when a process accepts connections on the unix socket at path (a live node's admin
 * socket; a stale one from a killed node refuses them). */
static bool
admin_socket_live(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        return false;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    bool live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return live;
}

static int
admin_bind(struct node_admin *a)
{
    const char *path = a->ctx->cfg.admin_socket;
    if (admin_dir_private(path) != 0) {
        return HIE_EDENIED;
    }
    char ep[NODE_PATH_MAX + 8];
    int64_t maxmsg = HIE_ADMIN_MSG_BYTES_MAX;
    int hwm = HIE_ADMIN_HWM, linger = 0;
    zmq_setsockopt(a->rep, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    zmq_setsockopt(a->rep, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(a->rep, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(a->rep, ZMQ_LINGER, &linger, sizeof(linger));
    snprintf(ep, sizeof(ep), "ipc://%s", path);
    struct stat sb;
    if (lstat(path, &sb) == 0 && !S_ISSOCK(sb.st_mode)) { /* never a file of ours (LOCK,
                                                          * audit.key) or anyone's */
        hie_log_error("admin", "operator.admin_socket names a file that is not a socket: "
            "refusing to replace it", " path=%s", path);
        return HIE_EDENIED;
    }
    if (lstat(path, &sb) == 0 && admin_socket_live(path)) {
        /* another node's (an absolute path shared by two configs): replacing it would take
         * its operator's commands, and leave it without an admin socket after we stop */
        hie_log_error("admin", "operator.admin_socket is in use by another running process: "
            "refusing to replace it", " path=%s", path);
        return HIE_EBUSY;
    }
    (void)unlink(path); /* a stale socket from a killed node */
    mode_t old = umask(0177);
    int rc = zmq_bind(a->rep, ep) == 0 ? 0 : -errno;
    umask(old);
    a->bound = rc == 0;
    if (rc == 0 && chmod(path, 0600) != 0) {
        rc = -errno;
    }
    return rc == 0 ? hie_node__submitter_open(&a->sub, a->ctx->zctx) : rc;
}

int
hie_node__admin_start(node_admin_t **out, node_ctx_t *ctx)
{
    HIE_ASSERT(out != NULL && ctx != NULL);
    *out = NULL;
    struct node_admin *a = hie_mem_calloc(1, sizeof(*a));
    if (a == NULL) {
        return HIE_ENOMEM;
    }
    a->ctx = ctx;
    *out = a;
    a->rep = zmq_socket(ctx->zctx, ZMQ_REP);
    a->dpush = zmq_socket(ctx->zctx, ZMQ_PUSH);
    int linger = 0;
    if (a->rep == NULL || a->dpush == NULL ||
        zmq_setsockopt(a->dpush, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
        zmq_connect(a->dpush, NODE_EP_DELIVERY) != 0) {
        return -errno;
    }
    int rc = admin_bind(a);
    if (rc == 0) {
        rc = -pthread_create(&a->thread, NULL, admin_thread, a);
        a->started = rc == 0;
        if (rc == 0) {
            pthread_setname_np(a->thread, "hie-admin");
        }
    }
    return rc;
}

void
hie_node__admin_join(node_admin_t **ap)
{
    HIE_ASSERT(ap != NULL);
    struct node_admin *a = *ap;
    if (a == NULL) {
        return;
    }
    if (a->started) {
        pthread_join(a->thread, NULL);
    }
    if (a->rep != NULL) {
        zmq_close(a->rep);
    }
    if (a->dpush != NULL) {
        zmq_close(a->dpush);
    }
    hie_node__submitter_close(&a->sub);
    struct stat sb;
    if (a->bound && lstat(a->ctx->cfg.admin_socket, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
        (void)unlink(a->ctx->cfg.admin_socket); /* ours: bound by this node */
    }
    hie_mem_free(a, sizeof(*a));
    *ap = NULL;
}
