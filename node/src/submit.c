/*
 * submit.c - submitting commands to the log and waiting for their results, for workers and
 * the admin thread (each owns one submitter: a DEALER connected to NODE_EP_LOG).
 *
 * Tokens increase per submitter; an answer to an older token (one whose wait timed out) is
 * dropped. Several commands may be in flight at once (hie_node__submit_collect), so a batch
 * shares one group commit.
 */
#include "node_int.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

int
hie_node__submitter_open(node_submitter_t *s, void *zctx)
{
    HIE_ASSERT(s != NULL && zctx != NULL);
    memset(s, 0, sizeof(*s));
    int linger = 0;
    s->dealer = zmq_socket(zctx, ZMQ_DEALER);
    if (s->dealer == NULL) {
        return -errno;
    }
    zmq_setsockopt(s->dealer, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_connect(s->dealer, NODE_EP_LOG) != 0) {
        int rc = -errno;
        hie_node__submitter_close(s);
        return rc;
    }
    return 0;
}

void
hie_node__submitter_close(node_submitter_t *s)
{
    HIE_ASSERT(s != NULL);
    if (s->dealer != NULL) {
        zmq_close(s->dealer);
        s->dealer = NULL;
    }
}

int
hie_node__submit_send(node_submitter_t *s, const hie_command_t *cmd, uint64_t *token)
{
    return hie_node__submit_send_by(s, cmd, 0, token);
}

int
hie_node__submit_send_by(node_submitter_t *s, const hie_command_t *cmd, uint64_t deadline_ns,
    uint64_t *token)
{
    HIE_ASSERT(s != NULL && s->dealer != NULL && cmd != NULL && token != NULL);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = hie_proto_pack(&cmd->base, HIE_LOG_COMMAND_BYTES_MAX, &buf, &len);
    *token = ++s->token;
    if (rc == 0) {
        rc = hie_cluster_submit_send_by(s->dealer, *token, hie_span(buf, len), deadline_ns);
    }
    hie_mem_free(buf, len);
    return rc;
}

int
hie_node__submit_send_packed(node_submitter_t *s, hie_span_t cmd, uint64_t deadline_ns,
    uint64_t *token)
{
    HIE_ASSERT(s != NULL && s->dealer != NULL && token != NULL);
    *token = ++s->token;
    return cmd.len > HIE_LOG_COMMAND_BYTES_MAX
               ? HIE_ELIMIT
               : hie_cluster_submit_send_by(s->dealer, *token, cmd, deadline_ns);
}

/* Receives one answer; stores it when its token is in [first, first + n). */
static int
collect_one(node_submitter_t *s, uint64_t first, size_t n, hie_arena_t *arena,
    hie_command_result_t **results, int *rcs, size_t *got)
{
    uint64_t tok = 0, index = 0;
    int rc = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = hie_cluster_submit_recv(s->dealer, &tok, &rc, &index, &buf, &len);
    if (r == HIE_EAGAIN) {
        return 0;
    }
    if (r == 0 && tok >= first && tok < first + n && results[tok - first] == NULL &&
        rcs[tok - first] == 1) {
        ProtobufCMessage *m = NULL;
        if (rc == 0) {
            rc = hie_proto_unpack(&hie__v1__command_result__descriptor, hie_span(buf, len),
                arena, &m);
        }
        results[tok - first] = (hie_command_result_t *)m;
        rcs[tok - first] = rc;
        (*got)++;
    }
    hie_mem_free(buf, len);
    return r;
}

int
hie_node__submit_collect(node_submitter_t *s, uint64_t first, size_t n, uint32_t timeout_ms,
    hie_arena_t *arena, hie_command_result_t **results, int *rcs)
{
    HIE_ASSERT(s != NULL && results != NULL && rcs != NULL && n > 0);
    for (size_t i = 0; i < n; i++) {
        results[i] = NULL;
        rcs[i] = 1; /* 1: not answered yet */
    }
    uint64_t deadline = hie_time_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    size_t got = 0;
    while (got < n) {
        uint64_t now = hie_time_mono_ns();
        if (now >= deadline) {
            break;
        }
        zmq_pollitem_t item = {s->dealer, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, (long)((deadline - now) / 1000000u) + 1) < 0) {
            return -errno;
        }
        int r = collect_one(s, first, n, arena, results, rcs, &got);
        if (r != 0) {
            return r;
        }
    }
    for (size_t i = 0; i < n; i++) {
        rcs[i] = rcs[i] == 1 ? HIE_ETIMEDOUT : rcs[i];
    }
    return 0;
}

int
hie_node__submit_wait(node_submitter_t *s, const hie_command_t *cmd, uint32_t timeout_ms,
    hie_arena_t *arena, hie_command_result_t **out)
{
    /* the log must read the command a quarter of the wait (at most 5 s) before the caller
     * gives up on it, or drop it (hie_cluster_submit_send_by), so that a command the caller
     * gave up on does not take effect much later (a consent revoke, a dead letter). One read
     * in time may still apply after a storage stall longer than the margin: a timeout means
     * "not known", and the same request id sent again answers with the stored result. */
    uint64_t wait_ns = (uint64_t)timeout_ms * 1000000ull;
    uint64_t margin_ns = wait_ns / 4 < 5000ull * 1000000ull ? wait_ns / 4 : 5000ull * 1000000ull;
    uint64_t token = 0;
    int rc = hie_node__submit_send_by(s, cmd, hie_time_mono_ns() + wait_ns - margin_ns, &token);
    int one = 0;
    *out = NULL;
    if (rc == 0) {
        rc = hie_node__submit_collect(s, token, 1, timeout_ms, arena, out, &one);
    }
    return rc != 0 ? rc : one;
}
