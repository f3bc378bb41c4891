/*
 * admin_mpi.c - the operator's MPI requests over the admin channel (hiectl mpi ...): bulk
 * feed batches from `hiectl mpi import`, model training, statistics and the review queue.
 *
 * A feed batch is fed item by item as if each item's organization had sent it (the operator
 * is the requester of record), with every item's command in flight at once so one group
 * commit covers the batch. Items are independent: a bad item is reported with its field and
 * the others go on. Ids make a re-sent batch (a resumed import) change nothing twice.
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <sodium.h>
#include <string.h>

#define BATCH_TIMEOUT_MS 60000u
#define TRAIN_TIMEOUT_MS 10000u


static Hie__V1__Error *
item_error(hie_arena_t *arena, Hie__V1__ErrorCode code, const char *field, const char *msg)
{
    static Hie__V1__Error oom = HIE__V1__ERROR__INIT; /* admin thread only */
    Hie__V1__Error *err = hie_arena_alloc(arena, sizeof(*err));
    if (err == NULL) { /* never NULL: a NULL error would mean "go ahead" to the caller */
        oom.code = HIE__V1__ERROR_CODE__ERROR_OVERLOADED;
        oom.message = (char *)(uintptr_t)"out of memory";
        oom.field = (char *)(uintptr_t)"";
        return &oom;
    }
    hie__v1__error__init(err);
    err->code = code;
    err->field = (char *)(uintptr_t)(field != NULL ? field : "");
    err->message = (char *)(uintptr_t)(msg != NULL ? msg : "refused");
    return err;
}

/* Checks the item's organization and prepares its command; NULL error means submit it. */
static Hie__V1__Error *
batch_prepare(node_ctx_t *ctx, const Hie__V1__MpiFeedRequest *item, const char *id,
    hie_arena_t *arena, hie_command_t *cmd, hie_command_result_t **done)
{
    const Hie__V1__ErrorCode bad = HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    hie_org_t *org = NULL;
    node_mpi_err_t e = {0};
    *done = NULL;
    if (id == NULL || !hie_proto_id_valid(id, strlen(id))) {
        return item_error(arena, bad, "id", "invalid item id");
    }
    if (hie_node__state_dedup_get(ctx->state, NODE_OPERATOR_ID, id,
            HIE__V1__COMMAND__BODY_MPI_FEED, arena, done) == 0) {
        return NULL; /* fed before (a resumed import): the original result */
    }
    const char *org_id = item->patient != NULL ? item->patient->org_id : NULL;
    if (org_id == NULL || !hie_proto_org_id_valid(org_id, strlen(org_id))) {
        return item_error(arena, bad, "patient.org_id", "not an organization id");
    }
    int rc = hie_node__state_org_get(ctx->state, org_id, arena, &org);
    if (rc != 0 && rc != HIE_ENOTFOUND) { /* not the row's fault: the batch is sent again */
        return item_error(arena, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, "patient.org_id",
            "the organization registry could not be read");
    }
    if (rc != 0 || org->status != HIE__V1__ORG_STATUS__ORG_ACTIVE) {
        return item_error(arena, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.org_id",
            rc == 0 ? "organization is suspended" : "organization not registered");
    }
    rc = hie_node__mpi_feed_prepare(ctx, org_id, NODE_OPERATOR_ID, id, item, arena, cmd, &e);
    return rc != 0 ? item_error(arena, e.code, e.field, e.message) : NULL;
}

static void
batch_result(hie_arena_t *arena, Hie__V1__AdminMpiFeedItemResult *out,
    const hie_command_result_t *res, int rc)
{
    if (rc != 0 || res == NULL) {
        out->error = item_error(arena, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "not committed in time; re-send the batch");
    } else if (res->code != HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        out->error = item_error(arena, res->code, res->field, res->message);
    } else {
        out->reply = res->mpi_feed;
    }
}

static int
admin_feed_batch(node_ctx_t *ctx, node_submitter_t *sub, const Hie__V1__AdminMpiFeedBatch *b,
    hie_arena_t *arena, Hie__V1__AdminReply *reply, node_mpi_err_t *e)
{
    size_t n = b->n_items;
    if (n == 0 || n > HIE_ADMIN_FEED_BATCH_MAX || b->n_ids != n) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "items",
            "1 to 1024 items, each with an id");
    }
    Hie__V1__AdminMpiFeedBatchReply *br = hie_arena_alloc(arena, sizeof(*br));
    Hie__V1__AdminMpiFeedItemResult *rs = hie_arena_alloc(arena, n * sizeof(*rs));
    Hie__V1__AdminMpiFeedItemResult **rp = hie_arena_alloc(arena, n * sizeof(*rp));
    hie_command_result_t **res = hie_arena_alloc(arena, n * sizeof(*res));
    int *rcs = hie_arena_alloc(arena, n * sizeof(*rcs));
    uint64_t *tokens = hie_arena_alloc(arena, n * sizeof(*tokens));
    if (br == NULL || rs == NULL || rp == NULL || res == NULL || rcs == NULL || tokens == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    hie__v1__admin_mpi_feed_batch_reply__init(br);
    bool sending = true; /* after a failed send none is sent: the tokens stay consecutive */
    for (size_t i = 0; i < n; i++) {
        hie_command_t cmd;
        hie_command_result_t *done = NULL;
        hie__v1__admin_mpi_feed_item_result__init(&rs[i]);
        rp[i] = &rs[i];
        tokens[i] = 0;
        rs[i].error = batch_prepare(ctx, b->items[i], b->ids[i], arena, &cmd, &done);
        if (rs[i].error == NULL && done != NULL) {
            batch_result(arena, &rs[i], done, 0);
        } else if (rs[i].error == NULL && (!sending ||
                   hie_node__submit_send(sub, &cmd, &tokens[i]) != 0)) {
            rs[i].error = item_error(arena, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
                "cannot submit; re-send the batch");
            tokens[i] = 0;
            sending = false;
        }
    }
    uint64_t first = sub->token + 1, last = 0;
    for (size_t i = 0; i < n; i++) {
        first = tokens[i] != 0 && tokens[i] < first ? tokens[i] : first;
        last = tokens[i] > last ? tokens[i] : last;
    }
    if (last >= first) { /* tokens of one batch are consecutive: the admin thread is alone */
        size_t span = (size_t)(last - first + 1);
        hie_command_result_t **got = hie_arena_alloc(arena, span * sizeof(*got));
        int *grc = hie_arena_alloc(arena, span * sizeof(*grc));
        int rc = got != NULL && grc != NULL ? hie_node__submit_collect(sub, first, span,
            BATCH_TIMEOUT_MS, arena, got, grc) : HIE_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            if (tokens[i] != 0) {
                batch_result(arena, &rs[i], rc == 0 ? got[tokens[i] - first] : NULL,
                    rc == 0 ? grc[tokens[i] - first] : rc);
            }
        }
    }
    br->n_results = n;
    br->results = rp;
    reply->body_case = HIE__V1__ADMIN_REPLY__BODY_MPI_FEED_BATCH;
    reply->mpi_feed_batch = br;
    return 0;
}

/* ---- training --------------------------------------------------------------------------- */

struct train_input {
    hie_mpi_person_t *persons;
    size_t n, cap;
};

static int
train_collect(void *vctx, const hie_mpi_person_t *p)
{
    struct train_input *in = vctx;
    if (in->n == in->cap) {
        return 1;
    }
    in->persons[in->n++] = *p;
    return 0;
}

/* Reads up to HIE_MPI_TRAIN_RECORDS_MAX records and the current model, then trains. */
static int
train_read(node_ctx_t *ctx, hie_mpi_model_t *model, struct train_input *in,
    const hie_mpi_train_opts_t *opts, hie_mpi_train_stats_t *stats)
{
    hie_mpi_store_t *store = hie_node__state_mpi(ctx->state);
    MDB_txn *txn = NULL;
    uint8_t secret[16];
    int rc = mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return HIE_ESTORAGE;
    }
    rc = hie_mpi_store_model(store, txn, model);
    rc = rc == 0 ? hie_mpi_store_each_person(store, txn, in->cap, train_collect, in) : rc;
    mdb_txn_abort(txn);
    if (rc != 0) {
        return rc;
    }
    hie_mpi_key_index_secret(hie_node__state_mpi_key(ctx->state), secret);
    rc = hie_mpi_train(model, in->persons, in->n, secret, opts, stats);
    sodium_memzero(secret, sizeof(secret));
    return rc;
}

/* train_read with its records' memory (wiped after). Returns its result or HIE_ENOMEM. */
static int
train_run(node_ctx_t *ctx, hie_mpi_model_t *model, const hie_mpi_train_opts_t *opts,
    hie_mpi_train_stats_t *stats)
{
    struct train_input in = {NULL, 0, HIE_MPI_TRAIN_RECORDS_MAX};
    in.persons = hie_mem_alloc(in.cap * sizeof(*in.persons));
    if (in.persons == NULL) {
        return HIE_ENOMEM;
    }
    int rc = train_read(ctx, model, &in, opts, stats);
    sodium_memzero(in.persons, in.n * sizeof(*in.persons));
    hie_mem_free(in.persons, in.cap * sizeof(*in.persons));
    return rc;
}

/* The defaults, with the request's sample of random pairs (0: the default's). */
static bool
train_opts(const Hie__V1__AdminMpiTrain *t, hie_mpi_train_opts_t *opts)
{
    hie_mpi_train_opts_default(opts);
    if (t->sample_pairs == 0) {
        return true;
    }
    opts->u_samples = (size_t)t->sample_pairs;
    return t->sample_pairs >= HIE_MPI_TRAIN_SAMPLE_PAIRS_MIN &&
           t->sample_pairs <= HIE_MPI_TRAIN_SAMPLE_PAIRS_MAX;
}

/* The reply for model (its proto form in arena), with the training's figures. */
static int
train_reply(hie_arena_t *arena, const hie_mpi_model_t *model, const hie_mpi_train_stats_t *st,
    uint64_t sample_pairs, Hie__V1__AdminReply *reply, Hie__V1__MpiModel **out,
    node_mpi_err_t *e)
{
    Hie__V1__MpiModel *pm = hie_arena_alloc(arena, sizeof(*pm));
    double *mb = hie_arena_alloc(arena, 2 * HIE_MPI_FIELD_COUNT * HIE_MPI_LEVELS_MAX *
        sizeof(double));
    protobuf_c_boolean *eb = hie_arena_alloc(arena, HIE_MPI_FIELD_COUNT * sizeof(*eb));
    Hie__V1__AdminMpiTrainReply *tr = hie_arena_alloc(arena, sizeof(*tr));
    if (pm == NULL || mb == NULL || eb == NULL || tr == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    hie_mpi_model_to_proto(model, pm, mb, mb + HIE_MPI_FIELD_COUNT * HIE_MPI_LEVELS_MAX, eb);
    pm->trained_records = st->records;
    hie__v1__admin_mpi_train_reply__init(tr);
    tr->model = pm;
    tr->records = st->records;
    tr->candidate_pairs = st->candidate_pairs;
    tr->em_rounds = st->em_rounds;
    tr->sample_pairs = sample_pairs;
    reply->body_case = HIE__V1__ADMIN_REPLY__BODY_MPI_TRAIN;
    reply->mpi_train = tr;
    *out = pm;
    return 0;
}

/* A request id that already committed a model (hiectl retried after a timeout) is answered
 * from that model without training again: *done. Training twice would report a model apply
 * never installed (the log answers a repeat with the first result). */
static int
train_repeat(node_ctx_t *ctx, const char *id, hie_arena_t *arena, Hie__V1__AdminReply *reply,
    bool *done, node_mpi_err_t *e)
{
    hie_command_result_t *res = NULL;
    *done = hie_node__state_dedup_get(ctx->state, NODE_OPERATOR_ID, id,
        HIE__V1__COMMAND__BODY_MPI_MODEL, arena, &res) == 0;
    if (!*done || res->code != 0) {
        return *done ? mpi_fail(e, res->code, res->field, res->message) : 0;
    }
    hie_mpi_model_t model;
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn);
    rc = rc == 0 ? hie_mpi_store_model(hie_node__state_mpi(ctx->state), txn, &model)
                 : HIE_ESTORAGE;
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "cannot read the model");
    }
    if (model.version != res->model_version) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "id",
            "this id trained a model since replaced by a newer one: use a new id");
    }
    hie_log_info("admin", "mpi training repeated: answered with the model it committed",
        " id=%s model_version=%lu", id, (unsigned long)model.version);
    hie_mpi_train_stats_t st; /* the first run's figures are not kept: zeros */
    memset(&st, 0, sizeof(st));
    Hie__V1__MpiModel *pm = NULL;
    return train_reply(arena, &model, &st, 0, reply, &pm, e);
}

static int
admin_train(node_ctx_t *ctx, node_submitter_t *sub, const Hie__V1__AdminRequest *req,
    hie_arena_t *arena, Hie__V1__AdminReply *reply, node_mpi_err_t *e)
{
    hie_mpi_train_opts_t opts;
    if (!train_opts(req->mpi_train, &opts)) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "sample_pairs",
            "out of range (1000..10000000, or 0 for the default)");
    }
    opts.cancel = &ctx->stopping; /* a stop does not wait for the training to end */
    if (hie_node__state_mpi_key(ctx->state) == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL, "no MPI data key");
    }
    bool done = false;
    int rc = train_repeat(ctx, req->id, arena, reply, &done, e);
    if (done) {
        return rc;
    }
    hie_mpi_model_t model;
    hie_mpi_train_stats_t stats;
    memset(&stats, 0, sizeof(stats));
    uint64_t t0 = hie_time_mono_ns();
    rc = train_run(ctx, &model, &opts, &stats);
    if (rc == HIE_EUNAVAIL && atomic_load(&ctx->stopping)) {
        hie_log_info("admin", "mpi training stopped: the node is stopping", "%s", "");
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "training stopped: the node is stopping (nothing was changed)");
    }
    if (rc != 0) {
        hie_log_error("admin", "mpi training failed", " rc=%s", hie_strerror_name(rc));
        return rc == HIE_EINVAL ? mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, NULL,
                                      "not enough records (or no candidate pairs) to train on")
                                : mpi_fail(e, hie_proto_error_code(rc), NULL, "training failed");
    }
    hie_log_info("admin", "mpi model trained",
        " records=%zu pairs=%zu sample_pairs=%zu em_rounds=%u ms=%lu", stats.records,
        stats.candidate_pairs, opts.u_samples, stats.em_rounds,
        (hie_time_mono_ns() - t0) / 1000000u);
    Hie__V1__MpiModel *pm = NULL;
    rc = train_reply(arena, &model, &stats, opts.u_samples, reply, &pm, e);
    if (rc != 0) {
        return rc;
    }
    Hie__V1__MpiModelCommand mc = HIE__V1__MPI_MODEL_COMMAND__INIT;
    mc.model = pm;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    hie_command_result_t *res = NULL;
    cmd.requester = (char *)(uintptr_t)NODE_OPERATOR_ID;
    cmd.request_id = req->id;
    cmd.time_ms = hie_time_wall_ms();
    cmd.node_id = ctx->cfg.node_id;
    cmd.body_case = HIE__V1__COMMAND__BODY_MPI_MODEL;
    cmd.mpi_model = &mc;
    rc = hie_node__submit_wait(sub, &cmd, TRAIN_TIMEOUT_MS, arena, &res);
    if (rc != 0 || res->code != 0 || res->model_version != pm->version) {
        reply->body_case = HIE__V1__ADMIN_REPLY__BODY__NOT_SET;
        reply->mpi_train = NULL;
    }
    if (rc == 0 && res->code == 0 && res->model_version != pm->version) {
        /* the id committed a model already (a retry that raced its first run, which
         * committed after timing out): answer with that one, as a repeat is */
        return train_repeat(ctx, req->id, arena, reply, &done, e);
    }
    if (rc != 0 || res->code != 0) {
        return rc != 0 ? mpi_fail(e, hie_proto_error_code(rc), NULL, "model not committed")
                       : mpi_fail(e, res->code, res->field, res->message);
    }
    return 0;
}

/* ---- statistics and the review queue ----------------------------------------------------- */

static int
admin_stats(node_ctx_t *ctx, hie_arena_t *arena, Hie__V1__AdminReply *reply, node_mpi_err_t *e)
{
    hie_mpi_store_t *store = hie_node__state_mpi(ctx->state);
    Hie__V1__AdminMpiStatsReply *sr = hie_arena_alloc(arena, sizeof(*sr));
    MDB_txn *txn = NULL;
    hie_mpi_model_t model;
    if (sr == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    hie__v1__admin_mpi_stats_reply__init(sr);
    int rc = mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn);
    rc = rc == 0 ? hie_mpi_store_counts(store, txn, &sr->records, &sr->euids,
        &sr->review_open) : HIE_ESTORAGE;
    rc = rc == 0 ? hie_mpi_store_model(store, txn, &model) : rc;
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "cannot read the index");
    }
    sr->model_version = model.version;
    sr->capped_blocks = atomic_load(&hie_mpi_store_stats(store)->capped_blocks);
    reply->body_case = HIE__V1__ADMIN_REPLY__BODY_MPI_STATS;
    reply->mpi_stats = sr;
    return 0;
}

static int
admin_history(node_ctx_t *ctx, const Hie__V1__AdminMpiHistory *q, hie_arena_t *arena,
    Hie__V1__AdminReply *reply, node_mpi_err_t *e)
{
    hie_mpi_store_t *store = hie_node__state_mpi(ctx->state);
    Hie__V1__AdminMpiHistoryReply *hr = hie_arena_alloc(arena, sizeof(*hr));
    hie_mpi_reject_t rej = {0};
    MDB_txn *txn = NULL;
    if (hr == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    hie__v1__admin_mpi_history_reply__init(hr);
    if (q->patient == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "patient", "missing");
    }
    int rc = mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn);
    rc = rc == 0 ? hie_mpi_store_history(store, txn, q->patient->org_id, q->patient->mrn,
        arena, &hr->events, &hr->n_events, &hr->omitted, &rej) : HIE_ESTORAGE;
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc == HIE_EUNAVAIL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL, "no MPI data key");
    }
    if (rc != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "cannot read the index");
    }
    if (rej.code != 0) {
        return mpi_fail(e, rej.code, rej.field, rej.message);
    }
    reply->body_case = HIE__V1__ADMIN_REPLY__BODY_MPI_HISTORY;
    reply->mpi_history = hr;
    return 0;
}

int
hie_node__admin_mpi(node_ctx_t *ctx, node_submitter_t *sub, const Hie__V1__AdminRequest *req,
    hie_arena_t *arena, Hie__V1__AdminReply *reply, node_mpi_err_t *e)
{
    bool id_ok = req->id != NULL && hie_proto_id_valid(req->id, strlen(req->id));
    switch (req->body_case) {
    case HIE__V1__ADMIN_REQUEST__BODY_MPI_FEED_BATCH:
        return admin_feed_batch(ctx, sub, req->mpi_feed_batch, arena, reply, e);
    case HIE__V1__ADMIN_REQUEST__BODY_MPI_TRAIN:
        return id_ok ? admin_train(ctx, sub, req, arena, reply, e)
                     : mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "id", "invalid");
    case HIE__V1__ADMIN_REQUEST__BODY_MPI_STATS:
        return admin_stats(ctx, arena, reply, e);
    case HIE__V1__ADMIN_REQUEST__BODY_MPI_HISTORY:
        return admin_history(ctx, req->mpi_history, arena, reply, e);
    case HIE__V1__ADMIN_REQUEST__BODY_REVIEW_LIST:
        reply->body_case = HIE__V1__ADMIN_REPLY__BODY_REVIEW_LIST;
        return hie_node__mpi_review_list(ctx, req->review_list, arena, &reply->review_list, e);
    case HIE__V1__ADMIN_REQUEST__BODY_REVIEW_DECIDE:
        if (!id_ok) {
            return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "id", "invalid");
        }
        reply->body_case = HIE__V1__ADMIN_REPLY__BODY_REVIEW_DECIDE;
        return hie_node__mpi_review_decide(ctx, sub, NODE_OPERATOR_ID, req->id,
            req->review_decide, arena, &reply->review_decide, e);
    default:
        HIE_ASSERT(!"not an MPI admin request");
        return -1;
    }
}
