/*
 * store_read.c - the MPI's readers: PIX, PDQ, the review queue, the model, counts and the
 * training input. Each runs in the caller's transaction and allocates results in its arena.
 */
#include "store_int.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define REVIEW_SCAN_MAX 10000u

static void
reject(hie_mpi_reject_t *r, Hie__V1__ErrorCode code, const char *field, const char *message)
{
    r->code = code;
    r->field = field;
    r->message = message;
}

/* Follows A40 merges from rec to the surviving record. */
static int
surviving(hie_mpi_store_t *s, MDB_txn *txn, hie_arena_t *arena, Hie__V1__MpiRecord **rec)
{
    for (unsigned i = 0; (*rec)->merged; i++) {
        if ((*rec)->merged_into.len != HIE_MPI_REC_HASH_BYTES) {
            return HIE_ECORRUPT;
        }
        if (i == MERGE_CHAIN_MAX) { /* chained before merges were bounded: refused, not fatal */
            return HIE_ELIMIT;
        }
        int rc = store__rec_get(s, txn, (*rec)->merged_into.data, arena, rec);
        if (rc != 0) {
            return rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
        }
    }
    return 0;
}

static bool
org_wanted(const Hie__V1__PixQuery *q, const char *org)
{
    if (q->n_target_orgs == 0) {
        return true;
    }
    for (size_t i = 0; i < q->n_target_orgs; i++) {
        if (q->target_orgs[i] != NULL && strcmp(q->target_orgs[i], org) == 0) {
            return true;
        }
    }
    return false;
}

/* PatientIds of the members of euid except skip, filtered by q (NULL: all); [out] *members
 * (NULL: not wanted) every member's hash. */
static int
member_ids(hie_mpi_store_t *s, MDB_txn *txn, const char *euid, const uint8_t *skip,
    const Hie__V1__PixQuery *q, hie_arena_t *arena, Hie__V1__PatientId ***ids, size_t *n,
    hie_mpi_members_t *members)
{
    uint8_t *hashes = NULL;
    size_t count = 0;
    *n = 0;
    int rc = store__members(s, txn, euid, arena, &hashes, &count);
    if (members != NULL) {
        *members = (hie_mpi_members_t){rc == 0 ? hashes : NULL, rc == 0 ? count : 0};
    }
    *ids = rc == 0 ? hie_arena_alloc(arena, (count + 1) * sizeof(**ids)) : NULL;
    if (rc == 0 && *ids == NULL) {
        rc = HIE_ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const uint8_t *h = hashes + i * HIE_MPI_REC_HASH_BYTES;
        Hie__V1__MpiRecord *rec = NULL;
        if (skip != NULL && memcmp(h, skip, HIE_MPI_REC_HASH_BYTES) == 0) {
            continue;
        }
        rc = store__rec_get(s, txn, h, arena, &rec);
        rc = rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
        if (rc == 0 && (q == NULL || org_wanted(q, rec->org_id))) {
            rc = store__patient_id(s, rec, arena, &(*ids)[*n]);
            *n += rc == 0;
        }
    }
    return rc;
}

static bool
pix_query_valid(const Hie__V1__PixQuery *q, hie_mpi_reject_t *r)
{
    const Hie__V1__ErrorCode bad = HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    if (q->patient == NULL || !hie_mpi_mrn_valid(q->patient->mrn)) {
        reject(r, bad, "patient.mrn", "1 to 64 printable ASCII characters, no spaces");
        return false;
    }
    if (q->n_target_orgs > HIE_MPI_TARGET_ORGS_MAX) {
        reject(r, bad, "target_orgs", "at most 64 organizations");
        return false;
    }
    for (size_t i = 0; i < q->n_target_orgs; i++) {
        const char *o = q->target_orgs[i];
        if (o == NULL || !hie_proto_org_id_valid(o, strlen(o))) {
            reject(r, bad, "target_orgs", "not an organization id");
            return false;
        }
    }
    return true;
}

int
hie_mpi_store_pix(hie_mpi_store_t *s, MDB_txn *txn, const Hie__V1__PixQuery *q,
    hie_arena_t *arena, Hie__V1__PixReply **reply, hie_mpi_reject_t *r,
    hie_mpi_members_t *members)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && q != NULL && reply != NULL);
    *reply = NULL;
    if (members != NULL) {
        *members = (hie_mpi_members_t){NULL, 0};
    }
    if (!hie_mpi_store_ready(s)) {
        return HIE_EUNAVAIL;
    }
    if (!pix_query_valid(q, r)) {
        return 0;
    }
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    hie_mpi_rec_hash(s->key, q->patient->org_id, q->patient->mrn, h);
    Hie__V1__MpiRecord *rec = NULL;
    int rc = store__rec_get(s, txn, h, arena, &rec);
    if (rc == HIE_ENOTFOUND) {
        reject(r, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn",
            "no record of this MRN at this organization");
        return 0;
    }
    rc = rc == 0 ? surviving(s, txn, arena, &rec) : rc;
    Hie__V1__PixReply *out = rc == 0 ? hie_arena_alloc(arena, sizeof(*out)) : NULL;
    if (rc == 0 && out == NULL) {
        rc = HIE_ENOMEM;
    }
    if (rc != 0) {
        return rc;
    }
    hie__v1__pix_reply__init(out);
    out->euid = rec->euid;
    rc = member_ids(s, txn, rec->euid, h, q, arena, &out->ids, &out->n_ids, members);
    *reply = rc == 0 ? out : NULL;
    return rc;
}

int
hie_mpi_store_euid_of(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t rec_hash[HIE_MPI_REC_HASH_BYTES],
    hie_arena_t *arena, char euid[HIE_MPI_EUID_BYTES])
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && rec_hash != NULL && euid != NULL);
    euid[0] = '\0';
    if (!hie_mpi_store_ready(s)) {
        return HIE_EUNAVAIL;
    }
    Hie__V1__MpiRecord *rec = NULL;
    int rc = store__rec_get(s, txn, rec_hash, arena, &rec);
    rc = rc == 0 ? surviving(s, txn, arena, &rec) : rc;
    if (rc == 0 && (rec->euid == NULL || strlen(rec->euid) >= HIE_MPI_EUID_BYTES)) {
        rc = HIE_ECORRUPT;
    }
    if (rc == 0) {
        memcpy(euid, rec->euid, strlen(rec->euid) + 1);
    }
    return rc;
}

int
hie_mpi_store_surviving(hie_mpi_store_t *s, MDB_txn *txn,
    const uint8_t rec_hash[HIE_MPI_REC_HASH_BYTES], hie_arena_t *arena,
    uint8_t out[HIE_MPI_REC_HASH_BYTES])
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && rec_hash != NULL && out != NULL);
    if (!hie_mpi_store_ready(s)) {
        return HIE_EUNAVAIL;
    }
    Hie__V1__MpiRecord *rec = NULL;
    int rc = store__rec_get(s, txn, rec_hash, arena, &rec);
    rc = rc == 0 ? surviving(s, txn, arena, &rec) : rc;
    if (rc == 0 && rec->rec_hash.len != HIE_MPI_REC_HASH_BYTES) {
        rc = HIE_ECORRUPT;
    }
    if (rc == 0) {
        memcpy(out, rec->rec_hash.data, HIE_MPI_REC_HASH_BYTES);
    }
    return rc;
}

int
hie_mpi_store_euid_members(hie_mpi_store_t *s, MDB_txn *txn, const char *euid,
    hie_arena_t *arena, const uint8_t **hashes, size_t *n)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && euid != NULL && hashes != NULL);
    *hashes = NULL;
    *n = 0;
    if (!hie_mpi_store_ready(s)) {
        return HIE_EUNAVAIL;
    }
    uint8_t *out = NULL;
    int rc = store__members(s, txn, euid, arena, &out, n);
    *hashes = out;
    return rc;
}

int
hie_mpi_store_euid_ids(hie_mpi_store_t *s, MDB_txn *txn, const char *euid, hie_arena_t *arena,
    Hie__V1__PatientId ***ids, size_t *n)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && euid != NULL && ids != NULL);
    *ids = NULL;
    *n = 0;
    if (!hie_mpi_store_ready(s)) {
        return HIE_EUNAVAIL;
    }
    return member_ids(s, txn, euid, NULL, NULL, arena, ids, n, NULL);
}

/* ---- PDQ -------------------------------------------------------------------------------- */

static bool
pdq_query_valid(const Hie__V1__PdqQuery *q, hie_mpi_person_t *p, hie_mpi_reject_t *r)
{
    const Hie__V1__ErrorCode bad = HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    if (q->limit > HIE_MPI_PDQ_FETCH_MAX) { /* members' 50 is checked by the node */
        reject(r, bad, "limit", "at most 50");
        return false;
    }
    if (!(q->min_probability >= 0.0 && q->min_probability <= 1.0)) {
        reject(r, bad, "min_probability", "between 0 and 1");
        return false;
    }
    hie_errinfo_t info = {0};
    if (hie_mpi_person_from_demographics(q->demographics, p, &info) != 0) {
        reject(r, bad, info.field, info.reason);
        return false;
    }
    return true;
}

static int
pdq_candidate(hie_mpi_store_t *s, MDB_txn *txn, const hie_mpi_model_t *model,
    const store_cand_t *c, hie_arena_t *arena, Hie__V1__PdqCandidate **out,
    hie_mpi_members_t *members)
{
    Hie__V1__PdqCandidate *pc = hie_arena_alloc(arena, sizeof(*pc));
    Hie__V1__MpiRecord *rec = NULL;
    Hie__V1__SealedPerson *sp = NULL;
    if (pc == NULL) {
        return HIE_ENOMEM;
    }
    hie__v1__pdq_candidate__init(pc);
    int rc = store__explain(model, c, "pdq", arena, &pc->explanation);
    rc = rc == 0 ? store__rec_get(s, txn, c->rec_hash, arena, &rec) : rc;
    if (rc == 0 && (rec->merged || strcmp(rec->euid, c->euid) != 0)) {
        /* the candidate came from the in-memory tables, which apply updates before its
         * commit: moved since the reader's snapshot. The EUID named, the ids listed, the
         * consent decided and the audit record must all be one state's: skipped */
        rc = HIE_ENOTFOUND;
    }
    rc = rc == 0 ? store__rec_open(s, rec, arena, &sp) : rc;
    rc = rc == 0 ? member_ids(s, txn, rec->euid, NULL, NULL, arena, &pc->ids, &pc->n_ids,
        members) : rc;
    if (rc != 0) {
        return rc; /* HIE_ENOTFOUND: newer than the reader's snapshot; the caller skips it */
    }
    pc->euid = rec->euid;
    pc->weight = c->weight;
    pc->probability = pc->explanation->probability;
    pc->demographics = sp->demographics;
    *out = pc;
    return 0;
}

int
hie_mpi_store_pdq(hie_mpi_store_t *s, MDB_txn *txn, const Hie__V1__PdqQuery *q,
    hie_arena_t *arena, Hie__V1__PdqReply **reply, hie_mpi_reject_t *r,
    hie_mpi_members_t **members)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && q != NULL && reply != NULL);
    *reply = NULL;
    if (members != NULL) {
        *members = NULL;
    }
    if (!hie_mpi_store_ready(s)) {
        return HIE_EUNAVAIL;
    }
    hie_mpi_person_t p;
    hie_mpi_model_t model;
    store_match_t m = {0};
    if (!pdq_query_valid(q, &p, r)) {
        return 0;
    }
    int rc = hie_mpi_store_model(s, txn, &model);
    rc = rc == 0 ? store__match(s, txn, &model, &p, NULL, NULL, false, arena, &m) : rc;
    sodium_memzero(&p, sizeof(p));
    unsigned limit = q->limit != 0 ? q->limit : HIE_MPI_PDQ_LIMIT_DEFAULT;
    /* Default floor: the query's evidence favours the candidate (weight >= 0, likelihood
     * ratio >= 1). The linkage prior says how rare a match is between two random records;
     * a clerk's query with three fields is not a random record, so a probability floor
     * would answer "no match" to "Smith, 1970-03-02" when Smiths born that day exist. */
    bool by_probability = q->min_probability > 0;
    Hie__V1__PdqReply *out = rc == 0 ? hie_arena_alloc(arena, sizeof(*out)) : NULL;
    Hie__V1__PdqCandidate **list = rc == 0 ? hie_arena_alloc(arena,
        limit * sizeof(*list)) : NULL;
    hie_mpi_members_t *mem = rc == 0 && members != NULL ? hie_arena_alloc(arena,
        limit * sizeof(*mem)) : NULL;
    if (rc == 0 && (out == NULL || list == NULL || (members != NULL && mem == NULL))) {
        rc = HIE_ENOMEM;
    }
    if (rc != 0) {
        return rc;
    }
    hie__v1__pdq_reply__init(out);
    out->candidates = list;
    for (size_t i = 0; rc == 0 && i < m.n && out->n_candidates < limit; i++) {
        if (by_probability ? hie_mpi_probability(&model, m.cand[i].weight) <
                q->min_probability : m.cand[i].weight < 0) {
            break; /* best first: the rest are weaker */
        }
        rc = pdq_candidate(s, txn, &model, &m.cand[i], arena, &list[out->n_candidates],
            mem != NULL ? &mem[out->n_candidates] : NULL);
        out->n_candidates += rc == 0;
        rc = rc == HIE_ENOTFOUND ? 0 : rc;
    }
    out->no_match = out->n_candidates == 0;
    *reply = rc == 0 ? out : NULL;
    if (members != NULL) {
        *members = rc == 0 ? mem : NULL;
    }
    return rc;
}

/* ---- review queue ----------------------------------------------------------------------- */

static int
review_fill(hie_mpi_store_t *s, MDB_txn *txn, Hie__V1__ReviewItem *item, hie_arena_t *arena)
{
    Hie__V1__MpiRecord *rec = NULL;
    if (item->rec_hash.len != HIE_MPI_REC_HASH_BYTES) {
        return HIE_ECORRUPT;
    }
    int rc = store__rec_get(s, txn, item->rec_hash.data, arena, &rec);
    rc = rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
    rc = rc == 0 ? store__patient_id(s, rec, arena, &item->record) : rc;
    /* a record merged since (A40) is the patient of the record it lives on as, whose EUID may
     * have changed after the merge */
    Hie__V1__MpiRecord *live = rec;
    int lrc = rc == 0 ? surviving(s, txn, arena, &live) : 0;
    rc = lrc == HIE_ELIMIT ? rc : lrc != 0 ? lrc : rc;
    if (rc == 0) {
        item->record_euid = lrc == 0 ? live->euid : rec->euid;
        item->rec_hash.len = 0; /* internal: not shown */
    }
    return rc;
}

int
hie_mpi_store_review_list(hie_mpi_store_t *s, MDB_txn *txn, const Hie__V1__ReviewListRequest *q,
    hie_arena_t *arena, Hie__V1__ReviewListReply **reply)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && q != NULL && reply != NULL);
    if (!hie_mpi_store_ready(s)) {
        return HIE_EUNAVAIL;
    }
    unsigned limit = q->limit == 0 ? HIE_MPI_REVIEW_PAGE_DEFAULT
        : (q->limit > HIE_MPI_REVIEW_PAGE_MAX ? HIE_MPI_REVIEW_PAGE_MAX : q->limit);
    Hie__V1__ReviewListReply *out = hie_arena_alloc(arena, sizeof(*out));
    Hie__V1__ReviewItem **items = hie_arena_alloc(arena, limit * sizeof(*items));
    if (out == NULL || items == NULL) {
        return HIE_ENOMEM;
    }
    hie__v1__review_list_reply__init(out);
    out->items = items;
    uint8_t kb[8];
    hie_store_be64(kb, q->after_id == UINT64_MAX ? UINT64_MAX : q->after_id + 1);
    MDB_val k = {8, kb}, v;
    MDB_cursor *cur = NULL;
    int rc = store__rc(mdb_cursor_open(txn, s->review, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : 0;
    uint64_t last = 0;
    for (unsigned scanned = 0; rc == 0 && mrc == 0 && out->n_items < limit &&
         scanned < REVIEW_SCAN_MAX; scanned++) {
        last = k.mv_size == 8 ? hie_load_be64(k.mv_data) : last;
        ProtobufCMessage *m = NULL;
        rc = hie_proto_unpack(&hie__v1__review_item__descriptor,
            hie_span(v.mv_data, v.mv_size), arena, &m);
        rc = rc == HIE_EPROTO ? HIE_ECORRUPT : rc;
        Hie__V1__ReviewItem *it = (Hie__V1__ReviewItem *)m;
        if (rc == 0 && (q->include_closed || it->status == HIE__V1__REVIEW_STATUS__REVIEW_OPEN)) {
            rc = review_fill(s, txn, it, arena);
            items[out->n_items] = it;
            out->n_items += rc == 0;
        }
        mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT) : mrc;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    rc = rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
    /* stopped with the cursor on an item not looked at: the listing goes on after the last
     * one looked at (open items past 10,000 closed ones are not hidden) */
    out->next_after_id = rc == 0 && mrc == 0 ? last : 0;
    *reply = rc == 0 ? out : NULL;
    return rc;
}

/* ---- link history ---------------------------------------------------------------------- */

int
store__hist_each(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *h,
    int (*fn)(void *ctx, const MDB_val *event), void *ctx)
{
    MDB_cursor *cur = NULL;
    int rc = store__rc(mdb_cursor_open(txn, s->hist, &cur));
    for (uint64_t bucket = 0; rc == 0 && bucket <= UINT32_MAX;) {
        uint8_t seek[4 + HIE_MPI_REC_HASH_BYTES];
        hie_store_be32(seek, (uint32_t)bucket);
        memcpy(seek + 4, h, HIE_MPI_REC_HASH_BYTES);
        MDB_val k = {sizeof(seek), seek}, v;
        int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        /* the bucket h's run is in: the one landed in when it is h's, else the one sought */
        uint32_t b = mrc == 0 && k.mv_size == STORE_HIST_KEY_BYTES &&
            memcmp((const uint8_t *)k.mv_data + 4, h, HIE_MPI_REC_HASH_BYTES) == 0
            ? hie_load_be32(k.mv_data) : (uint32_t)bucket;
        bucket = UINT64_MAX;
        while (mrc == 0 && rc == 0 && k.mv_size == STORE_HIST_KEY_BYTES &&
               hie_load_be32(k.mv_data) == b &&
               memcmp((const uint8_t *)k.mv_data + 4, h, HIE_MPI_REC_HASH_BYTES) == 0) {
            rc = fn(ctx, &v);
            mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT) : mrc;
        }
        if (rc == 0 && mrc == 0 && k.mv_size == STORE_HIST_KEY_BYTES) {
            uint32_t kb = hie_load_be32(k.mv_data); /* past h's run: its bucket or a later one */
            bucket = kb > b ? kb : (uint64_t)b + 1;
        } else if (rc == 0 && mrc == 0) {
            rc = HIE_ECORRUPT;
        } else if (rc == 0 && mrc != MDB_NOTFOUND) {
            rc = HIE_ESTORAGE;
        }
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc == 1 ? 0 : rc;
}

/* What hist_take gathers: the events past the first skip, unpacked into out (NULL: only
 * counted in n), at most HIE_MPI_HISTORY_MAX. */
struct hist_read {
    hie_arena_t *arena;
    Hie__V1__LinkEvent **out;
    size_t n;
    uint64_t skip;
};

static int
hist_take(void *ctx, const MDB_val *v)
{
    struct hist_read *r = ctx;
    if (r->skip > 0) { /* older than the newest HIE_MPI_HISTORY_MAX */
        r->skip--;
        return 0;
    }
    if (r->out == NULL) {
        r->n++;
        return 0;
    }
    ProtobufCMessage *m = NULL;
    int rc = hie_proto_unpack(&hie__v1__link_event__descriptor, hie_span(v->mv_data,
        v->mv_size), r->arena, &m);
    if (rc != 0) {
        return rc == HIE_EPROTO ? HIE_ECORRUPT : rc;
    }
    r->out[r->n++] = (Hie__V1__LinkEvent *)m;
    return r->n == HIE_MPI_HISTORY_MAX ? 1 : 0;
}

int
hie_mpi_store_history(hie_mpi_store_t *s, MDB_txn *txn, const char *org_id, const char *mrn,
    hie_arena_t *arena, Hie__V1__LinkEvent ***events, size_t *n, uint64_t *omitted,
    hie_mpi_reject_t *r)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && events != NULL && n != NULL);
    *events = NULL;
    *n = 0;
    *omitted = 0;
    if (!hie_mpi_store_ready(s)) {
        return HIE_EUNAVAIL;
    }
    if (org_id == NULL || !hie_proto_org_id_valid(org_id, strlen(org_id)) ||
        !hie_mpi_mrn_valid(mrn)) {
        reject(r, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "patient", "invalid id");
        return 0;
    }
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    hie_mpi_rec_hash(s->key, org_id, mrn, h);
    Hie__V1__LinkEvent **out = hie_arena_alloc(arena, HIE_MPI_HISTORY_MAX * sizeof(*out));
    /* the newest HIE_MPI_HISTORY_MAX: the events are counted (keys only), the older ones then
     * skipped */
    struct hist_read count = {arena, NULL, 0, 0};
    int rc = out == NULL ? HIE_ENOMEM : store__hist_each(s, txn, h, hist_take, &count);
    *omitted = count.n > HIE_MPI_HISTORY_MAX ? count.n - HIE_MPI_HISTORY_MAX : 0;
    struct hist_read take = {arena, out, 0, *omitted};
    rc = rc == 0 ? store__hist_each(s, txn, h, hist_take, &take) : rc;
    *n = rc == 0 ? take.n : 0;
    if (rc == 0 && *n == 0) {
        reject(r, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn",
            "no record of this MRN at this organization");
    }
    *events = rc == 0 ? out : NULL;
    return rc;
}

/* ---- model, counts, training input ------------------------------------------------------- */

int
hie_mpi_store_model(hie_mpi_store_t *s, MDB_txn *txn, hie_mpi_model_t *model)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && model != NULL);
    MDB_val k = {5, (void *)(uintptr_t)"model"}, v;
    hie_mpi_model_default(model);
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return HIE_ESTORAGE;
    }
    Hie__V1__MpiModel *pm = hie__v1__mpi_model__unpack(NULL, v.mv_size, v.mv_data);
    if (pm == NULL) {
        return HIE_ECORRUPT;
    }
    rc = hie_mpi_model_from_proto(pm, model);
    if (rc == HIE_EINVAL) {
        /* Valid when it was stored (apply checks a model before it installs it), refused now:
         * trained by a build with other comparison levels (an upgrade), whose numbers do not
         * fit this build's levels. Match with the default model until `hiectl mpi train`
         * (stats show model version 0) rather than stop applying commands. Deterministic:
         * every node of one build decides the same. */
        hie__v1__mpi_model__free_unpacked(pm, NULL);
        return 0;
    }
    uint64_t trained = pm->trained_records, records = 0;
    hie__v1__mpi_model__free_unpacked(pm, NULL);
    rc = rc == 0 ? store__meta_u64(s, txn, "records", &records) : HIE_ECORRUPT;
    if (rc == 0 && trained > 0 && records > trained) {
        /* The prior that a given indexed record is a new record's match falls as 1/N: a model
         * trained on a 100k sample must ask for more evidence in a 1M index. */
        model->lambda *= (double)trained / (double)records;
    }
    return rc;
}

int
hie_mpi_store_counts(hie_mpi_store_t *s, MDB_txn *txn, uint64_t *records, uint64_t *euids,
    uint64_t *review_open)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC);
    int rc = store__meta_u64(s, txn, "records", records);
    rc = rc == 0 ? store__meta_u64(s, txn, "euids", euids) : rc;
    return rc == 0 ? store__meta_u64(s, txn, "review_open", review_open) : rc;
}

static int
cmp_ref(const void *a, const void *b)
{
    return memcmp(((const store_rec_ref_t *)a)->hash, ((const store_rec_ref_t *)b)->hash,
        HIE_MPI_REC_HASH_BYTES);
}

/* Calls fn for the live record at ref (skipping merged ones and one txn's snapshot does not
 * hold yet). [out] *seen: the record is in the snapshot. fn's nonzero return: *stop. */
static int
each_one(hie_mpi_store_t *s, MDB_txn *txn, const store_rec_ref_t *ref,
    int (*fn)(void *fctx, const hie_mpi_person_t *p), void *fctx, bool *seen, bool *stop)
{
    uint8_t key[8];
    hie_store_be64(key, ref->seq);
    MDB_val k = {sizeof(key), key}, v;
    int mrc = mdb_get(txn, s->rec, &k, &v);
    *seen = mrc == 0;
    if (mrc != 0) {
        return mrc == MDB_NOTFOUND ? 0 : HIE_ESTORAGE;
    }
    hie_mpi_person_t p;
    memset(&p, 0, sizeof(p));
    Hie__V1__MpiRecord *r = hie__v1__mpi_record__unpack(NULL, v.mv_size, v.mv_data);
    int rc = r != NULL && r->rec_hash.len == HIE_MPI_REC_HASH_BYTES &&
        memcmp(r->rec_hash.data, ref->hash, HIE_MPI_REC_HASH_BYTES) == 0 ? 0 : HIE_ECORRUPT;
    bool live = rc == 0 && !r->merged;
    rc = live ? store__rec_person(s, r, &p) : rc;
    if (r != NULL) {
        hie__v1__mpi_record__free_unpacked(r, NULL);
    }
    *stop = live && rc == 0 && fn(fctx, &p) != 0;
    sodium_memzero(&p, sizeof(p));
    return rc;
}

/* The records in record-hash order, as mpi_rec held them before records were keyed in write
 * order: a sample of the first max is a uniform one (the hashes are keyed), whatever order
 * the organizations fed them in. */
int
hie_mpi_store_each_person(hie_mpi_store_t *s, MDB_txn *txn, size_t max,
    int (*fn)(void *fctx, const hie_mpi_person_t *p), void *fctx)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && fn != NULL);
    if (!hie_mpi_store_ready(s)) {
        return HIE_EUNAVAIL;
    }
    size_t cap = (size_t)store__people_count(s->people) + 1;
    store_rec_ref_t *refs = hie_mem_alloc(cap * sizeof(*refs));
    if (refs == NULL) {
        return HIE_ENOMEM;
    }
    size_t n = store__people_keys(s->people, refs, cap);
    qsort(refs, n, sizeof(*refs), cmp_ref);
    int rc = 0;
    bool stop = false;
    for (size_t i = 0, done = 0; rc == 0 && !stop && i < n && done < max; i++) {
        bool seen = false;
        rc = each_one(s, txn, &refs[i], fn, fctx, &seen, &stop);
        done += seen ? 1 : 0;
    }
    hie_mem_free(refs, cap * sizeof(*refs));
    return rc;
}

/* ---- model <-> proto -------------------------------------------------------------------- */

void
hie_mpi_model_to_proto(const hie_mpi_model_t *m, Hie__V1__MpiModel *out, double *mbuf,
    double *ubuf, protobuf_c_boolean *ebuf)
{
    hie__v1__mpi_model__init(out);
    out->version = m->version;
    out->lambda = m->lambda;
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        memcpy(mbuf + f * HIE_MPI_LEVELS_MAX, m->m[f], sizeof(m->m[f]));
        memcpy(ubuf + f * HIE_MPI_LEVELS_MAX, m->u[f], sizeof(m->u[f]));
        ebuf[f] = m->enabled[f];
    }
    out->n_m = out->n_u = HIE_MPI_FIELD_COUNT * HIE_MPI_LEVELS_MAX;
    out->m = mbuf;
    out->u = ubuf;
    out->n_enabled = HIE_MPI_FIELD_COUNT;
    out->enabled = ebuf;
    out->link_probability = m->link_probability;
    out->review_probability = m->review_probability;
    out->margin_weight = m->margin_weight;
    out->level_scheme = HIE_MPI_LEVEL_SCHEME;
}

static bool
prob_ok(double p)
{
    return p > 0.0 && p <= 1.0;
}

int
hie_mpi_model_from_proto(const Hie__V1__MpiModel *in, hie_mpi_model_t *out)
{
    const size_t cells = HIE_MPI_FIELD_COUNT * HIE_MPI_LEVELS_MAX;
    if ((in->level_scheme != 0 && in->level_scheme != HIE_MPI_LEVEL_SCHEME) ||
        in->n_m != cells || in->n_u != cells || in->n_enabled != HIE_MPI_FIELD_COUNT ||
        !prob_ok(in->lambda) || !(in->review_probability > 0.0) ||
        !(in->review_probability <= in->link_probability) || !(in->link_probability < 1.0) ||
        !(in->margin_weight >= 0.0 && in->margin_weight < 64.0)) {
        return HIE_EINVAL;
    }
    hie_mpi_model_t m;
    hie_mpi_model_default(&m);
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        for (unsigned l = 1; l < hie_mpi_field_levels((enum hie_mpi_field)f); l++) {
            double mv = in->m[f * HIE_MPI_LEVELS_MAX + l], uv = in->u[f * HIE_MPI_LEVELS_MAX + l];
            if (!prob_ok(mv) || !prob_ok(uv)) {
                return HIE_EINVAL;
            }
            m.m[f][l] = mv;
            m.u[f][l] = uv;
        }
        m.enabled[f] = in->enabled[f];
    }
    m.version = in->version;
    m.lambda = in->lambda;
    m.link_probability = in->link_probability;
    m.review_probability = in->review_probability;
    m.margin_weight = in->margin_weight;
    *out = m;
    return 0;
}
