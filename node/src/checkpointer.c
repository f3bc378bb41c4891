/*
 * checkpointer.c - the thread that publishes signed checkpoints of the audit tree (issue 4).
 *
 * Every audit.checkpoint_interval_ms, if the tree grew since the last checkpoint, it reads the
 * tree head, signs it with the node's key (C2SP signed note) and commits it as an
 * audit_checkpoint command; apply stores it only if the root is the tree's root at that size,
 * so the log never holds two inconsistent checkpoints. The thread sleeps in zmq_poll on a
 * socket nothing writes to, so zmq_ctx_shutdown (node stop) wakes it with ETERM.
 */
#include "node_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <zmq.h>

#define CKPT_COMMIT_TIMEOUT_MS 10000u

struct node_checkpointer {
    node_ctx_t *ctx;
    pthread_t thread;
    bool started;
    void *idle;              /* PULL socket used only to sleep interruptibly */
    node_submitter_t sub;
    uint64_t last_size;
    /* the last failure, said once (again after an hour, or when it changes) */
    int fail_rc;
    uint64_t fail_said_ns, fails;
    char fail_reason[160], fail_said[160];
};

/* Reads the head; 0 with *size == 0 when there is nothing new to sign. */
static int
head_read(struct node_checkpointer *c, hie_audit_tree_head_t *head)
{
    MDB_txn *txn = NULL;
    node_state_t *st = c->ctx->state;
    int rc = mdb_txn_begin(hie_node__state_env(st), NULL, MDB_RDONLY, &txn) == 0 ? 0
                                                                                 : HIE_ESTORAGE;
    rc = rc ? rc : hie_node__audit_head(hie_node__state_audit(st), txn, &head->size,
        head->root.bytes);
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc == 0 && head->size <= c->last_size) {
        head->size = 0;
    }
    return rc;
}

static int
checkpoint_once(struct node_checkpointer *c, uint64_t *size)
{
    hie_audit_tree_head_t head = {0, {{0}}};
    c->fail_reason[0] = '\0';
    int rc = head_read(c, &head);
    if (rc != 0 || head.size == 0) {
        return rc;
    }
    *size = head.size;
    char note[HIE_AUDIT_NOTE_SIGNED_BYTES_MAX];
    size_t len = 0;
    rc = hie_audit_checkpoint_sign(c->ctx->audit_signer, c->ctx->cfg.audit_origin, &head, note,
        sizeof(note), &len);
    if (rc != 0) {
        return rc;
    }
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    snprintf(id, sizeof(id), "ckpt:%" PRIu64, head.size);
    Hie__V1__AuditCheckpointCommand cc = HIE__V1__AUDIT_CHECKPOINT_COMMAND__INIT;
    cc.size = head.size;
    cc.root = (ProtobufCBinaryData){HIE_AUDIT_HASH_BYTES, head.root.bytes};
    cc.note = note;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.requester = c->ctx->cfg.node_id;
    cmd.request_id = id;
    cmd.time_ms = hie_time_wall_ms();
    cmd.node_id = c->ctx->cfg.node_id;
    cmd.body_case = HIE__V1__COMMAND__BODY_AUDIT_CHECKPOINT;
    cmd.audit_checkpoint = &cc;
    hie_arena_t *arena = NULL;
    hie_command_result_t *res = NULL;
    rc = hie_arena_create(&arena, 64u * 1024u);
    rc = rc ? rc : hie_node__submit_wait(&c->sub, &cmd, CKPT_COMMIT_TIMEOUT_MS, arena, &res);
    if (rc == 0 && res->code != HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        snprintf(c->fail_reason, sizeof(c->fail_reason), "refused: %s",
            res->message != NULL ? res->message : "");
        rc = HIE_ECORRUPT;
    }
    hie_arena_destroy(&arena);
    if (rc == 0) {
        c->last_size = head.size;
        hie_log_info("audit", "checkpoint signed", " size=%" PRIu64 " origin=%s", head.size,
            c->ctx->cfg.audit_origin);
    }
    return rc;
}

/* Says a failure once per kind (rc and reason), again after an hour; a success after
 * failures says how many there were. A retry every interval would otherwise log the same
 * line thousands of times a day. */
static void
checkpoint_said(struct node_checkpointer *c, int rc, uint64_t size)
{
    uint64_t now = hie_time_mono_ns(), hour = 3600ull * 1000000000ull;
    if (rc == 0) {
        if (c->fails != 0) {
            hie_log_info("audit", "checkpoints published again", " failed_before=%" PRIu64,
                c->fails);
        }
        c->fails = 0;
        c->fail_rc = 0;
        return;
    }
    c->fails++;
    /* the tree grows while the refusal lasts: a new size is not a new failure */
    if (rc == c->fail_rc && strcmp(c->fail_reason, c->fail_said) == 0 &&
        now - c->fail_said_ns < hour) {
        return;
    }
    snprintf(c->fail_said, sizeof(c->fail_said), "%s", c->fail_reason);
    c->fail_rc = rc;
    c->fail_said_ns = now;
    const char *hint = rc == HIE_ENOSPC ? "the command log or state is full: raise "
                                          "storage.map_bytes"
                       : rc == HIE_ETIMEDOUT ? "the log did not commit it in time (overloaded?)"
                       : rc == HIE_ECORRUPT ? "the state refused it: see reason"
                                            : "retried every audit.checkpoint_interval_ms";
    hie_log_warn("audit", "checkpoint not published", " size=%" PRIu64 " rc=%s reason=\"%s\" "
        "failures=%" PRIu64 " hint=\"%s\"", size, hie_strerror_name(rc), c->fail_reason,
        c->fails, hint);
}

static void *
checkpointer_thread(void *arg)
{
    struct node_checkpointer *c = arg;
    for (;;) {
        zmq_pollitem_t it = {c->idle, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, (long)c->ctx->cfg.audit_checkpoint_interval_ms);
        if (n < 0 && errno == ETERM) {
            break;
        }
        uint64_t size = 0;
        int rc = checkpoint_once(c, &size);
        if (rc == HIE_EUNAVAIL || rc == -ETERM) {
            break;
        }
        checkpoint_said(c, rc, size);
    }
    return NULL;
}

int
hie_node__checkpointer_start(node_checkpointer_t **out, node_ctx_t *ctx)
{
    HIE_ASSERT(out != NULL && ctx != NULL);
    *out = NULL;
    if (ctx->audit_signer == NULL) {
        return 0; /* no data key: no audit log to checkpoint */
    }
    struct node_checkpointer *c = hie_mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        return HIE_ENOMEM;
    }
    c->ctx = ctx;
    *out = c;
    c->idle = zmq_socket(ctx->zctx, ZMQ_PULL);
    if (c->idle == NULL) {
        return -errno;
    }
    int rc = hie_node__submitter_open(&c->sub, ctx->zctx);
    if (rc == 0) {
        rc = -pthread_create(&c->thread, NULL, checkpointer_thread, c);
        c->started = rc == 0;
        if (rc == 0) {
            pthread_setname_np(c->thread, "hie-checkpoint");
        }
    }
    return rc;
}

void
hie_node__checkpointer_join(node_checkpointer_t **cp)
{
    HIE_ASSERT(cp != NULL);
    struct node_checkpointer *c = *cp;
    if (c == NULL) {
        return;
    }
    if (c->started) {
        pthread_join(c->thread, NULL);
    }
    if (c->idle != NULL) {
        zmq_close(c->idle);
    }
    if (c->sub.dealer != NULL) {
        hie_node__submitter_close(&c->sub);
    }
    hie_mem_free(c, sizeof(*c));
    *cp = NULL;
}
