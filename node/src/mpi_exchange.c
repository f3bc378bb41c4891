/*
 * mpi_exchange.c - the master patient index exchanges as a node runs them, shared by the
 * workers (member protocol) and the admin thread (hiectl): identity feed, PIX, PDQ, the review
 * queue. Feeds and review decisions become commands (sealed demographics, never plain PHI in
 * the log); PIX, PDQ and review lists read the state in one read transaction.
 *
 * Errors come back as an Error-shaped triple (code, field, static message): rejections from
 * validation and from apply name the field; storage failures are INTERNAL and logged here
 * without any request value.
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <string.h>

#define MPI_COMMAND_TIMEOUT_MS 10000u


static int
fail_rc(node_mpi_err_t *e, int rc, const char *what)
{
    if (rc == HIE_EUNAVAIL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "the master patient index is not available on this node (no data key)");
    }
    if (rc == HIE_ETIMEDOUT) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "the command was not committed in time; retry with the same id");
    }
    if (rc == HIE_ENOSPC) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "the node's storage "
            "is full; nothing was stored (the operator must raise storage.map_bytes)");
    }
    hie_log_error("mpi", "exchange failed", " what=%s rc=%s", what, hie_strerror_name(rc));
    return mpi_fail(e, hie_proto_error_code(rc), NULL, "internal error");
}

static void
command_init(hie_command_t *cmd, node_ctx_t *ctx, const char *requester, const char *id)
{
    hie__v1__command__init(cmd);
    cmd->requester = (char *)(uintptr_t)requester;
    cmd->request_id = (char *)(uintptr_t)id;
    cmd->time_ms = hie_time_wall_ms();
    cmd->node_id = ctx->cfg.node_id;
}

int
hie_node__mpi_feed_prepare(node_ctx_t *ctx, const char *org_id, const char *requester,
    const char *id, const Hie__V1__MpiFeedRequest *req, hie_arena_t *arena, hie_command_t *cmd,
    node_mpi_err_t *e)
{
    const hie_mpi_key_t *key = hie_node__state_mpi_key(ctx->state);
    if (key == NULL) {
        return fail_rc(e, HIE_EUNAVAIL, "feed");
    }
    Hie__V1__MpiFeedCommand *fc = NULL;
    hie_errinfo_t info = {0};
    int rc = hie_mpi_feed_command(key, org_id, req, arena, &fc, &info);
    if (rc == HIE_EDENIED) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, info.field, info.reason);
    }
    if (rc == HIE_EINVAL || rc == HIE_ELIMIT) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, info.field, info.reason);
    }
    if (rc != 0) {
        return fail_rc(e, rc, "feed");
    }
    command_init(cmd, ctx, requester, id);
    cmd->body_case = HIE__V1__COMMAND__BODY_MPI_FEED;
    cmd->mpi_feed = fc;
    return 0;
}

/* A command result into reply-or-error. */
static int
result_check(const hie_command_result_t *res, node_mpi_err_t *e)
{
    if (res->code != HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        return mpi_fail(e, res->code, res->field != NULL && res->field[0] ? res->field : NULL,
            res->message != NULL ? res->message : "refused");
    }
    return 0;
}

int
hie_node__mpi_feed(node_ctx_t *ctx, node_submitter_t *sub, const char *org_id, const char *id,
    const Hie__V1__MpiFeedRequest *req, hie_arena_t *arena, Hie__V1__MpiFeedReply **reply,
    node_mpi_err_t *e)
{
    hie_command_t cmd;
    hie_command_result_t *res = NULL;
    *reply = NULL;
    int rc = hie_node__state_dedup_get(ctx->state, org_id, id, HIE__V1__COMMAND__BODY_MPI_FEED,
        arena, &res);
    if (rc != 0) { /* not a repeat: prepare and submit */
        rc = hie_node__mpi_feed_prepare(ctx, org_id, org_id, id, req, arena, &cmd, e);
        if (rc != 0) {
            return rc;
        }
        rc = hie_node__submit_wait(sub, &cmd, MPI_COMMAND_TIMEOUT_MS, arena, &res);
        if (rc != 0) {
            return fail_rc(e, rc, "feed submit");
        }
    }
    rc = result_check(res, e);
    if (rc == 0 && res->mpi_feed == NULL) {
        return fail_rc(e, HIE_ECORRUPT, "feed result");
    }
    *reply = rc == 0 ? res->mpi_feed : NULL;
    if (*reply != NULL) {
        /* whom the record was matched against is another member's patient: its EUID, score
         * and which fields agreed (phone "exact") answered guesses about patients consent
         * hides from this member. The operator sees explanations in the review queue. */
        (*reply)->explanation = NULL;
    }
    return rc;
}

int
hie_node__mpi_review_decide(node_ctx_t *ctx, node_submitter_t *sub, const char *requester,
    const char *id, const Hie__V1__ReviewDecideRequest *req, hie_arena_t *arena,
    Hie__V1__ReviewDecideReply **reply, node_mpi_err_t *e)
{
    hie_command_t cmd;
    Hie__V1__MpiReviewCommand rc_body = HIE__V1__MPI_REVIEW_COMMAND__INIT;
    hie_command_result_t *res = NULL;
    *reply = NULL;
    if (req->id == 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "id", "missing");
    }
    int rc = hie_node__state_dedup_get(ctx->state, requester, id,
        HIE__V1__COMMAND__BODY_MPI_REVIEW, arena, &res);
    if (rc != 0) {
        rc_body.id = req->id;
        rc_body.link = req->link;
        command_init(&cmd, ctx, requester, id);
        cmd.body_case = HIE__V1__COMMAND__BODY_MPI_REVIEW;
        cmd.mpi_review = &rc_body;
        rc = hie_node__submit_wait(sub, &cmd, MPI_COMMAND_TIMEOUT_MS, arena, &res);
        if (rc != 0) {
            return fail_rc(e, rc, "review submit");
        }
    }
    rc = result_check(res, e);
    if (rc == 0 && res->mpi_review == NULL) {
        return fail_rc(e, HIE_ECORRUPT, "review result");
    }
    *reply = rc == 0 ? res->mpi_review : NULL;
    return rc;
}

/* ---- readers ---------------------------------------------------------------------------- */

enum mpi_read { READ_PIX, READ_PDQ, READ_REVIEW };

/* One read in txn (NULL: its own); members as the store's readers give them. */
static int
mpi_read(node_ctx_t *ctx, MDB_txn *txn, enum mpi_read what, const void *q, hie_arena_t *arena,
    void **reply, void *members, node_mpi_err_t *e)
{
    hie_mpi_store_t *store = hie_node__state_mpi(ctx->state);
    hie_mpi_reject_t rej = {0};
    MDB_txn *own = NULL;
    *reply = NULL;
    if (!hie_mpi_store_ready(store)) {
        return fail_rc(e, HIE_EUNAVAIL, "read");
    }
    if (txn == NULL && mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY,
                           &own) != 0) {
        return fail_rc(e, HIE_ESTORAGE, "read txn");
    }
    txn = own != NULL ? own : txn;
    int rc = 0;
    switch (what) {
    case READ_PIX:
        rc = hie_mpi_store_pix(store, txn, q, arena, (Hie__V1__PixReply **)reply, &rej,
            members);
        break;
    case READ_PDQ:
        rc = hie_mpi_store_pdq(store, txn, q, arena, (Hie__V1__PdqReply **)reply, &rej,
            members);
        break;
    case READ_REVIEW:
        rc = hie_mpi_store_review_list(store, txn, q, arena,
            (Hie__V1__ReviewListReply **)reply);
        break;
    }
    if (own != NULL) {
        mdb_txn_abort(own);
    }
    if (rc != 0) {
        *reply = NULL;
        return fail_rc(e, rc, what == READ_PIX ? "pix" : what == READ_PDQ ? "pdq" : "review");
    }
    return rej.code != 0 ? mpi_fail(e, rej.code, rej.field, rej.message) : 0;
}

int
hie_node__mpi_pix(node_ctx_t *ctx, MDB_txn *txn, const Hie__V1__PixQuery *q,
    hie_arena_t *arena, Hie__V1__PixReply **reply, hie_mpi_members_t *members,
    node_mpi_err_t *e)
{
    hie_org_t *org = NULL;
    *reply = NULL;
    if (q->patient == NULL || q->patient->org_id == NULL ||
        !hie_proto_org_id_valid(q->patient->org_id, strlen(q->patient->org_id))) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "patient.org_id",
            "not an organization id");
    }
    int rc = hie_node__state_org_get_in(ctx->state, txn, q->patient->org_id, arena, &org);
    if (rc == HIE_ENOTFOUND) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.org_id",
            "organization not registered with this HIE");
    }
    if (rc != 0) {
        return fail_rc(e, rc, "pix org");
    }
    return mpi_read(ctx, txn, READ_PIX, q, arena, (void **)reply, members, e);
}

int
hie_node__mpi_pdq(node_ctx_t *ctx, MDB_txn *txn, const Hie__V1__PdqQuery *q,
    hie_arena_t *arena, Hie__V1__PdqReply **reply, hie_mpi_members_t **members,
    node_mpi_err_t *e)
{
    return mpi_read(ctx, txn, READ_PDQ, q, arena, (void **)reply, members, e);
}

int
hie_node__mpi_review_list(node_ctx_t *ctx, const Hie__V1__ReviewListRequest *q,
    hie_arena_t *arena, Hie__V1__ReviewListReply **reply, node_mpi_err_t *e)
{
    return mpi_read(ctx, NULL, READ_REVIEW, q, arena, (void **)reply, NULL, e);
}
