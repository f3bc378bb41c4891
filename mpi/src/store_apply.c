/*
 * store_apply.c - the MPI commands as the state machine applies them: feed (create, update,
 * merge, unlink), review decisions and model installs.
 *
 * Deterministic: everything comes from the command, its context (requester, time, index) and
 * the state; the only "randomness", the sealing nonce, travels in the command, and the nonce
 * of the stored seal is derived from it. Matching runs here, inside the write transaction, so
 * two feeds of the same person can never both miss each other.
 *
 * A refused command changes nothing: every check that can refuse runs before the first
 * write. Storage errors abort the whole batch (the caller's transaction).
 */
#include "store_int.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* The refusal of a create or update of a merged MRN (STORE_MERGED_MRN_SINCE_MS). */
#define MERGED_MRN "this MRN was merged into another record (HL7 A40) and is retired; feed " \
    "the surviving MRN"
#define BAD HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST
#define NOT_FOUND HIE__V1__ERROR_CODE__ERROR_NOT_FOUND

static int
refuse(hie_mpi_apply_ctx_t *ctx, Hie__V1__ErrorCode code, const char *field, const char *msg)
{
    ctx->reject.code = code;
    ctx->reject.field = field;
    ctx->reject.message = msg;
    return 0;
}

/* One prepared feed: the decoded person and the decision about it. */
struct feed {
    Hie__V1__SealedPerson *sp;
    hie_mpi_person_t p;
    hie_mpi_model_t model;
    store_match_t match;
    Hie__V1__FeedOutcome outcome;
    const store_cand_t *cand;       /* best candidate considered, or NULL */
    size_t fold_count;              /* linked: match.cand[1 .. fold_count] merge into cand */
    const char *rule;
    const hie_mpi_prepared_t *prep; /* the pool's work on this command, or NULL */
};

/* ---- small writers ----------------------------------------------------------------------- */

static int
euid_new(hie_mpi_store_t *s, MDB_txn *txn, hie_arena_t *arena, char **out)
{
    uint64_t next = 0;
    int rc = store__meta_u64(s, txn, "euid_next", &next);
    *out = hie_arena_alloc(arena, HIE_MPI_EUID_BYTES);
    if (rc == 0 && *out == NULL) {
        rc = HIE_ENOMEM;
    }
    if (rc == 0) {
        next++;
        snprintf(*out, HIE_MPI_EUID_BYTES, "E%012llu", (unsigned long long)next);
        rc = store__meta_put_u64(s, txn, "euid_next", next);
    }
    return rc == 0 ? store__meta_add(s, txn, "euids", 1) : rc;
}

static int
member_add(hie_mpi_store_t *s, MDB_txn *txn, const char *euid, const uint8_t *h)
{
    MDB_val k = {strlen(euid), (void *)(uintptr_t)euid};
    MDB_val v = {HIE_MPI_REC_HASH_BYTES, (void *)(uintptr_t)h};
    int rc = store__rc(mdb_put(txn, s->euid, &k, &v, 0));
    if (rc == 0) {
        store__members_add(s->members, euid, h);
    }
    return rc;
}

/* Removes h from euid; an EUID left empty no longer counts. */
static int
member_del(hie_mpi_store_t *s, MDB_txn *txn, const char *euid, const uint8_t *h)
{
    MDB_val k = {strlen(euid), (void *)(uintptr_t)euid};
    MDB_val v = {HIE_MPI_REC_HASH_BYTES, (void *)(uintptr_t)h}, any;
    int rc = mdb_del(txn, s->euid, &k, &v);
    if (rc != 0) {
        return rc == MDB_NOTFOUND ? HIE_ECORRUPT : HIE_ESTORAGE;
    }
    store__members_del(s->members, euid, h);
    const uint8_t *left = NULL;
    size_t n = 0;
    if (store__members_peek(s->members, euid, &left, &n)) {
        rc = n == 0 ? MDB_NOTFOUND : 0;
        HIE_DEBUG_ASSERT((mdb_get(txn, s->euid, &k, &any) == MDB_NOTFOUND) == (n == 0));
    } else {
        rc = mdb_get(txn, s->euid, &k, &any);
    }
    if (rc == MDB_NOTFOUND) {
        return store__meta_add(s, txn, "euids", -1);
    }
    return store__rc(rc);
}

static int
blocks_change(hie_mpi_store_t *s, MDB_txn *txn, const Hie__V1__MpiRecord *rec, bool add)
{
    (void)txn; /* derived state in memory: see blocks.c */
    return store__blocks_change(s->blocks, rec->block_keys, rec->n_block_keys,
        rec->rec_hash.data, add);
}

static int
nolink_put(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *a, const uint8_t *b, bool del)
{
    uint8_t kb[2 * HIE_MPI_REC_HASH_BYTES];
    bool a_first = memcmp(a, b, HIE_MPI_REC_HASH_BYTES) < 0;
    memcpy(kb, a_first ? a : b, HIE_MPI_REC_HASH_BYTES);
    memcpy(kb + HIE_MPI_REC_HASH_BYTES, a_first ? b : a, HIE_MPI_REC_HASH_BYTES);
    MDB_val k = {sizeof(kb), kb}, v = {0, (void *)""};
    int rc = del ? mdb_del(txn, s->nolink, &k, NULL) : mdb_put(txn, s->nolink, &k, &v, 0);
    return rc == 0 || (del && rc == MDB_NOTFOUND) ? 0 : HIE_ESTORAGE;
}

static int
hist_add(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const Hie__V1__MpiRecord *rec,
    const char *prior_euid, Hie__V1__FeedAction action, Hie__V1__FeedOutcome outcome,
    Hie__V1__MatchExplanation *why)
{
    Hie__V1__LinkEvent ev = HIE__V1__LINK_EVENT__INIT;
    ev.org_id = rec->org_id;
    ev.rec_hash = rec->rec_hash;
    ev.euid = rec->euid;
    ev.prior_euid = (char *)(uintptr_t)(prior_euid != NULL ? prior_euid : "");
    ev.action = action;
    ev.outcome = outcome;
    ev.origin = rec->origin;
    ev.explanation = why;
    ev.requester = (char *)(uintptr_t)ctx->requester;
    ev.time_ms = ctx->time_ms;
    uint8_t kb[STORE_HIST_KEY_BYTES];
    store__hist_key(rec->rec_hash.data, ctx->index, ctx->hist_seq++, kb);
    MDB_val k = {sizeof(kb), kb};
    return store__put_msg(ctx->txn, s->hist, &k, &ev.base);
}

/* ---- the stored record ------------------------------------------------------------------ */

int
store__seals_make(hie_mpi_store_t *s, hie_arena_t *arena, const Hie__V1__MpiFeedCommand *cmd,
    Hie__V1__SealedPerson *sp, const hie_mpi_person_t *p, store_seals_t *out)
{
    out->ready = false;
    size_t n = protobuf_c_message_get_packed_size(&sp->base);
    uint8_t *plain = hie_arena_alloc(arena, n + 1);
    out->sealed = hie_arena_alloc(arena, n + HIE_MPI_SEAL_OVERHEAD_BYTES);
    if (plain == NULL || out->sealed == NULL) {
        return HIE_ENOMEM;
    }
    HIE_ASSERT(protobuf_c_message_pack(&sp->base, plain) == n);
    crypto_generichash(out->nonce, HIE_MPI_SEAL_NONCE_BYTES, cmd->nonce.data, cmd->nonce.len,
        (const uint8_t *)"hie-mpi-stored-v1", 17);
    int rc = hie_mpi_seal(s->key, hie_span(plain, n), hie_span(cmd->rec_hash.data,
        cmd->rec_hash.len), out->nonce, out->sealed, n + HIE_MPI_SEAL_OVERHEAD_BYTES);
    sodium_memzero(plain, n);
    out->sealed_len = n + HIE_MPI_SEAL_OVERHEAD_BYTES;
    /* the normalized person alone (what the candidate cache, people.c, is rebuilt from),
     * bound to rec_hash || 'N' */
    uint8_t ad[HIE_MPI_REC_HASH_BYTES + 1];
    out->norm_len = store__norm_pack(p, out->norm_plain);
    out->norm_sealed = hie_arena_alloc(arena, out->norm_len + HIE_MPI_SEAL_OVERHEAD_BYTES);
    if (rc == 0 && out->norm_sealed == NULL) {
        rc = HIE_ENOMEM;
    }
    crypto_generichash(out->norm_nonce, HIE_MPI_SEAL_NONCE_BYTES, cmd->nonce.data,
        cmd->nonce.len, (const uint8_t *)"hie-mpi-norm-v1.", 16);
    memcpy(ad, cmd->rec_hash.data, HIE_MPI_REC_HASH_BYTES);
    ad[HIE_MPI_REC_HASH_BYTES] = 'N';
    rc = rc ? rc : hie_mpi_seal(s->key, hie_span(out->norm_plain, out->norm_len),
        hie_span(ad, sizeof(ad)), out->norm_nonce, out->norm_sealed,
        out->norm_len + HIE_MPI_SEAL_OVERHEAD_BYTES);
    out->norm_sealed_len = out->norm_len + HIE_MPI_SEAL_OVERHEAD_BYTES;
    out->ready = rc == 0;
    return rc;
}

/* Fills rec's sealed forms (the pool's, when it sealed this very person) and index keys, and
 * puts the normalized form in the candidate cache. */
static int
rec_seal(hie_mpi_store_t *s, hie_arena_t *arena, const Hie__V1__MpiFeedCommand *cmd,
    struct feed *fd, Hie__V1__MpiRecord *rec)
{
    HIE_ASSERT(rec->rec_hash.len == cmd->rec_hash.len &&
               memcmp(rec->rec_hash.data, cmd->rec_hash.data, cmd->rec_hash.len) == 0);
    store_seals_t *own = NULL, *sl = NULL;
    if (fd->prep != NULL && fd->prep->seals.ready && fd->prep->sp == fd->sp &&
        memcmp(&fd->prep->p, &fd->p, sizeof(fd->p)) == 0) {
        sl = &((hie_mpi_prepared_t *)(uintptr_t)fd->prep)->seals;
    } else {
        own = hie_arena_alloc(arena, sizeof(*own));
        if (own == NULL) {
            return HIE_ENOMEM;
        }
        int rc = store__seals_make(s, arena, cmd, fd->sp, &fd->p, own);
        if (rc != 0) {
            sodium_memzero(own->norm_plain, sizeof(own->norm_plain));
            return rc;
        }
        sl = own;
    }
    uint64_t *keys = hie_arena_alloc(arena, HIE_MPI_BLOCK_KEYS * sizeof(*keys));
    int rc = keys == NULL ? HIE_ENOMEM
                          : store__people_put_norm(s->people, rec->rec_hash.data,
                                sl->norm_plain, sl->norm_len);
    if (own != NULL) {
        sodium_memzero(own->norm_plain, sizeof(own->norm_plain));
    }
    if (rc != 0) {
        return rc;
    }
    rec->nonce = (ProtobufCBinaryData){HIE_MPI_SEAL_NONCE_BYTES, sl->nonce};
    rec->sealed = (ProtobufCBinaryData){sl->sealed_len, sl->sealed};
    rec->norm_nonce = (ProtobufCBinaryData){HIE_MPI_SEAL_NONCE_BYTES, sl->norm_nonce};
    rec->norm_sealed = (ProtobufCBinaryData){sl->norm_sealed_len, sl->norm_sealed};
    uint64_t all[HIE_MPI_BLOCK_KEYS];
    store__person_keys(s, &fd->p, fd->prep, all);
    rec->n_block_keys = 0;
    for (unsigned i = 0; i < HIE_MPI_BLOCK_KEYS; i++) {
        if (all[i] != 0) {
            keys[rec->n_block_keys++] = all[i];
        }
    }
    rec->block_keys = keys;
    rec->tf_given = store__tf_key(s, HIE_MPI_F_GIVEN, fd->p.given);
    rec->tf_family = store__tf_key(s, HIE_MPI_F_FAMILY, fd->p.family);
    return 0;
}

int
store__feed_person(hie_mpi_store_t *s, const Hie__V1__MpiFeedCommand *cmd, hie_arena_t *arena,
    Hie__V1__SealedPerson **sp, hie_mpi_person_t *p, const char **field, const char **reason)
{
    *field = "sealed";
    if (cmd->nonce.len != HIE_MPI_SEAL_NONCE_BYTES ||
        cmd->sealed.len < HIE_MPI_SEAL_OVERHEAD_BYTES ||
        cmd->sealed.len > HIE_MPI_SEAL_PLAIN_BYTES_MAX + HIE_MPI_SEAL_OVERHEAD_BYTES) {
        *reason = "missing or oversized sealed demographics";
        return HIE_EINVAL;
    }
    Hie__V1__MpiRecord probe = HIE__V1__MPI_RECORD__INIT;
    probe.rec_hash = cmd->rec_hash;
    probe.nonce = cmd->nonce;
    probe.sealed = cmd->sealed;
    int rc = store__rec_open(s, &probe, arena, sp);
    if (rc != 0) {
        *reason = "does not open with this node's data key";
        return rc == HIE_ENOMEM ? rc : HIE_EINVAL;
    }
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    hie_mpi_rec_hash(s->key, cmd->org_id, (*sp)->mrn, h);
    if (sodium_memcmp(h, cmd->rec_hash.data, sizeof(h)) != 0) {
        *field = "rec_hash";
        *reason = "does not match the sealed MRN";
        return HIE_EINVAL;
    }
    hie_errinfo_t info = {0};
    if (hie_mpi_person_from_demographics((*sp)->demographics, p, &info) != 0) {
        *field = info.field;
        *reason = info.reason;
        return HIE_EINVAL;
    }
    return 0;
}

/* Opens the command's sealed person and validates it into fd, or takes both from the pool
 * (ctx->prep: the same work on the same bytes). Refuses (ctx->reject) when the bytes do not
 * open, do not belong to the record, or do not validate. */
static int
feed_open(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const Hie__V1__MpiFeedCommand *cmd,
    struct feed *fd)
{
    fd->prep = ctx->prep;
    if (ctx->prep != NULL) {
        fd->sp = ctx->prep->sp;
        fd->p = ctx->prep->p;
    } else {
        const char *field = NULL, *reason = NULL;
        int rc = store__feed_person(s, cmd, ctx->arena, &fd->sp, &fd->p, &field, &reason);
        if (rc == HIE_EINVAL) {
            return refuse(ctx, BAD, field, reason);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return hie_mpi_store_model(s, ctx->txn, &fd->model);
}

/* How many records euid has (at most HIE_MPI_EUID_MEMBERS_MAX). */
static int
members_count(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const char *euid, size_t *n)
{
    const uint8_t *peek = NULL;
    if (store__members_peek(s->members, euid, &peek, n)) {
        *n = *n < HIE_MPI_EUID_MEMBERS_MAX ? *n : HIE_MPI_EUID_MEMBERS_MAX;
        return 0;
    }
    uint8_t *hashes = NULL;
    return store__members_w(s, ctx->txn, euid, ctx->arena, &hashes, n);
}

/* Scores p against the index and decides (hie_mpi_decide): link, perhaps merging other
 * EUIDs into the best, review or new. A link into an EUID that already has
 * STORE_AUTO_LINK_MEMBERS_MAX records waits for review: a person has a handful, so such an
 * EUID is more likely a magnet for look-alikes than one person. */
static int
feed_decide(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const uint8_t *self, struct feed *fd)
{
    int rc = store__match(s, ctx->txn, &fd->model, &fd->p, self, ctx->prep,
        store__rules_ms(ctx) >= STORE_MERGED_NOLINK_SINCE_MS, ctx->arena, &fd->match);
    double *weights = rc == 0 ? hie_arena_alloc(ctx->arena,
        (fd->match.n + 1) * sizeof(*weights)) : NULL;
    bool *conflict = rc == 0 ? hie_arena_alloc(ctx->arena, fd->match.n + 1) : NULL;
    if (rc == 0 && (weights == NULL || conflict == NULL)) {
        rc = HIE_ENOMEM;
    }
    if (rc != 0) {
        return rc;
    }
    bool ids = store__rules_ms(ctx) >= STORE_ID_CONFLICT_SINCE_MS;
    for (size_t i = 0; i < fd->match.n; i++) {
        weights[i] = fd->match.cand[i].weight; /* best first (store__match) */
        conflict[i] = ids && hie_mpi_ids_conflict(fd->match.cand[i].explain);
    }
    hie_mpi_decision_t d;
    hie_mpi_decide(&fd->model, weights, conflict, fd->match.n, &d);
    fd->cand = fd->match.n > 0 ? &fd->match.cand[0] : NULL;
    fd->rule = d.rule;
    fd->fold_count = d.fold_count;
    HIE_ASSERT(d.fold_count < fd->match.n || d.fold_count == 0);
    switch (d.outcome) {
    case HIE_MPI_OUTCOME_LINK:
        fd->outcome = HIE__V1__FEED_OUTCOME__OUTCOME_LINKED;
        break;
    case HIE_MPI_OUTCOME_REVIEW:
        fd->outcome = HIE__V1__FEED_OUTCOME__OUTCOME_REVIEW;
        break;
    default:
        fd->outcome = HIE__V1__FEED_OUTCOME__OUTCOME_NEW;
    }
    size_t members = 0;
    if (fd->outcome == HIE__V1__FEED_OUTCOME__OUTCOME_LINKED &&
        store__rules_ms(ctx) >= STORE_EUID_BOUNDS_SINCE_MS) {
        rc = members_count(s, ctx, fd->cand->euid, &members);
    }
    if (rc == 0 && members >= STORE_AUTO_LINK_MEMBERS_MAX) {
        fd->outcome = HIE__V1__FEED_OUTCOME__OUTCOME_REVIEW;
        fd->fold_count = 0;
        fd->rule = "the enterprise id already has 64 records: a link into it waits for review";
    }
    return rc;
}

/* True when a manual no-link separates a record of a (na records) from one of b (merged:
 * STORE_MERGED_NOLINK_SINCE_MS, also through the records merged into them). */
static bool
members_nolink(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const uint8_t *a, size_t na,
    const uint8_t *b, size_t nb)
{
    HIE_ASSERT(na <= STORE_FOLD_MEMBERS_MAX && nb <= STORE_FOLD_MEMBERS_MAX);
    if (store__rules_ms(ctx) >= STORE_MERGED_NOLINK_SINCE_MS) {
        return store__nolink_sets(s, ctx->txn, a, na, b, nb);
    }
    for (size_t i = 0; i < na; i++) {
        for (size_t j = 0; j < nb; j++) {
            if (store__nolink(s, ctx->txn, a + i * HIE_MPI_REC_HASH_BYTES,
                    b + j * HIE_MPI_REC_HASH_BYTES)) {
                return true;
            }
        }
    }
    return false;
}

static int euid_fold(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const char *from,
    const char *to, Hie__V1__FeedAction action);

/* The people of n records (hashes), in out (up to STORE_FOLD_MEMBERS_MAX; merged or missing
 * ones left out): self, when among them, as fed now (fd->p: the cache still has its form from
 * before an update). Returns how many. */
static size_t
fold_people(hie_mpi_store_t *s, const uint8_t *hashes, size_t n, const uint8_t *self,
    const hie_mpi_person_t *fed, hie_mpi_person_t *out)
{
    char euid[HIE_MPI_EUID_BYTES];
    bool merged = false;
    size_t k = 0;
    for (size_t i = 0; i < n && i < STORE_FOLD_MEMBERS_MAX; i++) {
        const uint8_t *h = hashes + i * HIE_MPI_REC_HASH_BYTES;
        if (self != NULL && memcmp(h, self, HIE_MPI_REC_HASH_BYTES) == 0) {
            out[k++] = *fed;
        } else if (store__people_get(s->people, h, true, euid, &merged, &out[k], NULL) == 0 &&
                   !merged) {
            k++;
        }
    }
    return k;
}

/* True when a record of one EUID (ha, na) and one of the other (hb, nb), every one of them
 * (a fold takes EUIDs of at most STORE_FOLD_MEMBERS_MAX), carry national ids and birth dates
 * that both differ (hie_mpi_ids_conflict): two people, whatever a third record matching both
 * says. A record too sparse to tell them apart (no id, no birth date) merged a father's and
 * his son's EUIDs, the son kept apart by review a moment before. */
static bool
euids_conflict(hie_mpi_store_t *s, const struct feed *fd, const uint8_t *self,
    const uint8_t *ha, size_t na, const uint8_t *hb, size_t nb)
{
    static hie_mpi_person_t pa[STORE_FOLD_MEMBERS_MAX], pb[STORE_FOLD_MEMBERS_MAX]; /* log thread */
    size_t ka = fold_people(s, ha, na, self, &fd->p, pa);
    size_t kb = fold_people(s, hb, nb, self, &fd->p, pb);
    bool conflict = false;
    for (size_t i = 0; !conflict && i < ka; i++) {
        for (size_t j = 0; !conflict && j < kb; j++) {
            hie_mpi_vector_t v;
            hie_mpi_contribution_t ex[HIE_MPI_FIELD_COUNT] = {{0, 0.0}};
            hie_mpi_compare(&pa[i], &pb[j], &v);
            for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
                ex[f].level = v.level[f];
            }
            conflict = hie_mpi_ids_conflict(ex);
        }
    }
    sodium_memzero(pa, ka * sizeof(pa[0]));
    sodium_memzero(pb, kb * sizeof(pb[0]));
    return conflict;
}

/* After the record joined to (its best EUID), merges into it the other EUIDs the decision
 * folds, each unless a manual no-link separates a record of it from one of to (the new record
 * included) or either is larger than STORE_FOLD_MEMBERS_MAX: those stay apart. */
static int
feed_fold(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const struct feed *fd, const char *to,
    const uint8_t *self, Hie__V1__FeedAction action)
{
    int rc = 0;
    HIE_ASSERT(fd->outcome == HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    HIE_ASSERT(strcmp(fd->cand->euid, to) == 0);
    for (size_t k = 1; rc == 0 && k <= fd->fold_count; k++) {
        const char *from = fd->match.cand[k].euid;
        uint8_t *ha = NULL, *hb = NULL;
        size_t na = 0, nb = 0;
        HIE_ASSERT(strcmp(from, to) != 0); /* store__match gives one entry per EUID */
        rc = store__members_w(s, ctx->txn, to, ctx->arena, &ha, &na);
        rc = rc == 0 ? store__members_w(s, ctx->txn, from, ctx->arena, &hb, &nb) : rc;
        if (rc != 0 || na > STORE_FOLD_MEMBERS_MAX || nb > STORE_FOLD_MEMBERS_MAX ||
            members_nolink(s, ctx, ha, na, hb, nb) ||
            (store__rules_ms(ctx) >= STORE_FOLD_CONFLICT_SINCE_MS &&
             euids_conflict(s, fd, self, ha, na, hb, nb))) {
            continue;
        }
        rc = euid_fold(s, ctx, from, to, action);
    }
    return rc;
}

/* After an A40 took the prior record out of its EUID: the EUID's other records follow it
 * into the survivor's, unless (since STORE_MERGED_NOLINK_SINCE_MS) a manual no-link separates
 * one of them from one of the survivor's, or either is larger than STORE_FOLD_MEMBERS_MAX:
 * they stay in their EUID (the member's statement is about its two MRNs; the operator's
 * no-link about other records stands). */
static int
merge_fold(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const char *from, const char *to,
    Hie__V1__FeedAction action)
{
    if (store__rules_ms(ctx) >= STORE_MERGED_NOLINK_SINCE_MS) {
        uint8_t *ha = NULL, *hb = NULL;
        size_t na = 0, nb = 0;
        int rc = store__members_w(s, ctx->txn, to, ctx->arena, &ha, &na);
        rc = rc == 0 ? store__members_w(s, ctx->txn, from, ctx->arena, &hb, &nb) : rc;
        if (rc != 0 || na > STORE_FOLD_MEMBERS_MAX || nb > STORE_FOLD_MEMBERS_MAX ||
            members_nolink(s, ctx, ha, na, hb, nb)) {
            return rc;
        }
    }
    return euid_fold(s, ctx, from, to, action);
}

/* The key of a record's open item against a candidate EUID. */
static MDB_val
review_open_key(uint8_t *kb, const uint8_t *rec_hash, const char *euid)
{
    size_t n = strnlen(euid, HIE_MPI_EUID_BYTES);
    memcpy(kb, rec_hash, HIE_MPI_REC_HASH_BYTES);
    memcpy(kb + HIE_MPI_REC_HASH_BYTES, euid, n);
    return (MDB_val){HIE_MPI_REC_HASH_BYTES + n, kb};
}

/* The open item of rec against euid, if any (0 with *id, or HIE_ENOTFOUND). */
static int
review_open_get(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *rec_hash, const char *euid,
    uint64_t *id)
{
    uint8_t kb[HIE_MPI_REC_HASH_BYTES + HIE_MPI_EUID_BYTES];
    MDB_val k = review_open_key(kb, rec_hash, euid), v;
    int mrc = mdb_get(txn, s->review_open, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        return HIE_ENOTFOUND;
    }
    if (mrc != 0 || v.mv_size != 8) {
        return mrc != 0 ? HIE_ESTORAGE : HIE_ECORRUPT;
    }
    *id = hie_load_be64(v.mv_data);
    return 0;
}

/* A decided item leaves the index: its own entry only (an older item of the same pair may
 * predate the index while a newer one holds the entry). */
static int
review_open_drop(hie_mpi_store_t *s, MDB_txn *txn, const Hie__V1__ReviewItem *it)
{
    uint64_t indexed = 0;
    int rc = review_open_get(s, txn, it->rec_hash.data, it->candidate_euid, &indexed);
    if (rc == 0 && indexed == it->id) {
        uint8_t okb[HIE_MPI_REC_HASH_BYTES + HIE_MPI_EUID_BYTES];
        MDB_val ok = review_open_key(okb, it->rec_hash.data, it->candidate_euid);
        return store__rc(mdb_del(txn, s->review_open, &ok, NULL));
    }
    return rc == HIE_ENOTFOUND || rc == 0 ? 0 : rc;
}

static int
review_add(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const Hie__V1__MpiRecord *rec,
    Hie__V1__MatchExplanation *why, uint64_t *id)
{
    bool dedup = store__rules_ms(ctx) >= STORE_REVIEW_DEDUP_SINCE_MS;
    int rc = dedup ? review_open_get(s, ctx->txn, rec->rec_hash.data, why->candidate_euid, id)
                   : HIE_ENOTFOUND;
    if (rc != HIE_ENOTFOUND) {
        return rc; /* 0: the record's item against this EUID is open already: that one */
    }
    rc = store__meta_u64(s, ctx->txn, "review_next", id);
    if (rc != 0) {
        return rc;
    }
    (*id)++;
    Hie__V1__ReviewItem it = HIE__V1__REVIEW_ITEM__INIT;
    it.id = *id;
    it.rec_hash = rec->rec_hash;
    it.candidate_euid = why->candidate_euid;
    it.explanation = why;
    it.status = HIE__V1__REVIEW_STATUS__REVIEW_OPEN;
    it.created_ms = ctx->time_ms;
    uint8_t kb[8];
    hie_store_be64(kb, *id);
    MDB_val k = {8, kb};
    rc = store__put_msg(ctx->txn, s->review, &k, &it.base);
    rc = rc == 0 ? store__meta_put_u64(s, ctx->txn, "review_next", *id) : rc;
    if (rc == 0 && dedup) {
        uint8_t okb[HIE_MPI_REC_HASH_BYTES + HIE_MPI_EUID_BYTES], idb[8];
        MDB_val ok = review_open_key(okb, rec->rec_hash.data, why->candidate_euid);
        MDB_val ov = {8, idb};
        hie_store_be64(idb, *id);
        rc = store__rc(mdb_put(ctx->txn, s->review_open, &ok, &ov, 0));
    }
    return rc == 0 ? store__meta_add(s, ctx->txn, "review_open", 1) : rc;
}

/* Writes the reply, the review item and the history event of a create or update. */
static int
feed_finish(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const Hie__V1__MpiFeedCommand *cmd,
    struct feed *fd, Hie__V1__MpiRecord *rec, const char *prior, Hie__V1__MpiFeedReply **reply)
{
    Hie__V1__MpiFeedReply *r = hie_arena_alloc(ctx->arena, sizeof(*r));
    if (r == NULL) {
        return HIE_ENOMEM;
    }
    hie__v1__mpi_feed_reply__init(r);
    int rc = fd->cand != NULL ? store__explain(&fd->model, fd->cand, fd->rule, ctx->arena,
        &r->explanation) : 0;
    if (rc == 0 && fd->outcome == HIE__V1__FEED_OUTCOME__OUTCOME_REVIEW) {
        rc = review_add(s, ctx, rec, r->explanation, &r->review_id);
    }
    rc = rc == 0 ? hist_add(s, ctx, rec, prior, cmd->action, fd->outcome, r->explanation) : rc;
    r->euid = rec->euid;
    r->outcome = fd->outcome;
    *reply = rc == 0 ? r : NULL;
    return rc;
}

/* ---- feed actions ----------------------------------------------------------------------- */

static int
feed_create(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const Hie__V1__MpiFeedCommand *cmd,
    struct feed *fd, Hie__V1__MpiFeedReply **reply)
{
    Hie__V1__MpiRecord *old = NULL;
    int rc = store__rec_get(s, ctx->txn, cmd->rec_hash.data, ctx->arena, &old);
    if (rc == 0 && old->merged && store__rules_ms(ctx) >= STORE_MERGED_MRN_SINCE_MS) {
        return refuse(ctx, BAD, "patient.mrn", MERGED_MRN);
    }
    if (rc == 0) {
        return refuse(ctx, BAD, "patient.mrn", "this MRN is already in the index; use update");
    }
    rc = rc == HIE_ENOTFOUND ? feed_open(s, ctx, cmd, fd) : rc;
    if (rc != 0 || ctx->reject.code != 0) {
        return rc;
    }
    rc = feed_decide(s, ctx, cmd->rec_hash.data, fd);
    Hie__V1__MpiRecord *rec = hie_arena_alloc(ctx->arena, sizeof(*rec));
    if (rc == 0 && rec == NULL) {
        rc = HIE_ENOMEM;
    }
    if (rc != 0) {
        return rc;
    }
    hie__v1__mpi_record__init(rec);
    rec->org_id = cmd->org_id;
    rec->rec_hash = cmd->rec_hash;
    rec->version = 1;
    rec->created_ms = rec->updated_ms = ctx->time_ms;
    bool linked = fd->outcome == HIE__V1__FEED_OUTCOME__OUTCOME_LINKED;
    rec->origin = linked ? HIE__V1__LINK_ORIGIN__LINK_AUTO : HIE__V1__LINK_ORIGIN__LINK_NEW;
    if (linked) {
        rec->euid = (char *)(uintptr_t)fd->cand->euid;
    } else {
        rc = euid_new(s, ctx->txn, ctx->arena, &rec->euid);
    }
    rc = rc == 0 ? rec_seal(s, ctx->arena, cmd, fd, rec) : rc;
    rc = rc == 0 ? store__rec_put(s, ctx->txn, rec) : rc;
    rc = rc == 0 ? blocks_change(s, ctx->txn, rec, true) : rc;
    rc = rc == 0 ? store__tf_change(s, rec, 1) : rc;
    rc = rc == 0 ? member_add(s, ctx->txn, rec->euid, rec->rec_hash.data) : rc;
    rc = rc == 0 && linked ? feed_fold(s, ctx, fd, rec->euid, rec->rec_hash.data, cmd->action)
                           : rc;
    rc = rc == 0 ? store__meta_add(s, ctx->txn, "records", 1) : rc;
    return rc == 0 ? feed_finish(s, ctx, cmd, fd, rec, NULL, reply) : rc;
}

/* An updated record alone in its EUID is matched again (it may now be someone we know);
 * one that shares its EUID keeps it: re-deciding links is the review queue's job. */
static int
feed_rematch(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, struct feed *fd,
    Hie__V1__MpiRecord *rec, char **prior)
{
    uint8_t *hashes = NULL;
    size_t n = 0;
    *prior = rec->euid;
    fd->outcome = HIE__V1__FEED_OUTCOME__OUTCOME_UPDATED;
    int rc = store__members_w(s, ctx->txn, rec->euid, ctx->arena, &hashes, &n);
    if (rc != 0 || n != 1) {
        return rc;
    }
    rc = feed_decide(s, ctx, rec->rec_hash.data, fd);
    if (rc != 0) {
        return rc;
    }
    if (fd->outcome == HIE__V1__FEED_OUTCOME__OUTCOME_LINKED) {
        rc = member_del(s, ctx->txn, rec->euid, rec->rec_hash.data);
        rec->euid = (char *)(uintptr_t)fd->cand->euid;
        rec->origin = HIE__V1__LINK_ORIGIN__LINK_AUTO;
        rc = rc == 0 ? member_add(s, ctx->txn, rec->euid, rec->rec_hash.data) : rc;
        rc = rc == 0 ? feed_fold(s, ctx, fd, rec->euid, rec->rec_hash.data,
            HIE__V1__FEED_ACTION__FEED_UPDATE) : rc;
    } else if (fd->outcome == HIE__V1__FEED_OUTCOME__OUTCOME_NEW) {
        fd->outcome = HIE__V1__FEED_OUTCOME__OUTCOME_UPDATED;
    }
    return rc;
}

static int
feed_update(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const Hie__V1__MpiFeedCommand *cmd,
    struct feed *fd, Hie__V1__MpiFeedReply **reply)
{
    Hie__V1__MpiRecord *rec = NULL;
    int rc = store__rec_get(s, ctx->txn, cmd->rec_hash.data, ctx->arena, &rec);
    if (rc == 0 && rec->merged && store__rules_ms(ctx) >= STORE_MERGED_MRN_SINCE_MS) {
        return refuse(ctx, BAD, "patient.mrn", MERGED_MRN);
    }
    if (rc == HIE_ENOTFOUND || (rc == 0 && rec->merged)) {
        return refuse(ctx, NOT_FOUND, "patient.mrn", "no record of this MRN at this organization");
    }
    rc = rc == 0 ? feed_open(s, ctx, cmd, fd) : rc;
    if (rc != 0 || ctx->reject.code != 0) {
        return rc;
    }
    char *prior = NULL;
    rc = blocks_change(s, ctx->txn, rec, false);
    rc = rc == 0 ? store__tf_change(s, rec, -1) : rc;
    rc = rc == 0 ? feed_rematch(s, ctx, fd, rec, &prior) : rc;
    rc = rc == 0 ? rec_seal(s, ctx->arena, cmd, fd, rec) : rc;
    rec->version++;
    rec->updated_ms = ctx->time_ms;
    rc = rc == 0 ? store__rec_put(s, ctx->txn, rec) : rc;
    rc = rc == 0 ? blocks_change(s, ctx->txn, rec, true) : rc;
    rc = rc == 0 ? store__tf_change(s, rec, 1) : rc;
    return rc == 0 ? feed_finish(s, ctx, cmd, fd, rec, prior, reply) : rc;
}

/* Moves every member of from (except skip) into to. */
static int
euid_fold(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const char *from, const char *to,
    Hie__V1__FeedAction action)
{
    uint8_t *hashes = NULL;
    size_t n = 0;
    int rc = store__members_w(s, ctx->txn, from, ctx->arena, &hashes, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        Hie__V1__MpiRecord *m = NULL;
        rc = store__rec_get(s, ctx->txn, hashes + i * HIE_MPI_REC_HASH_BYTES, ctx->arena, &m);
        rc = rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
        rc = rc == 0 ? member_del(s, ctx->txn, from, m->rec_hash.data) : rc;
        if (rc == 0) {
            m->euid = (char *)(uintptr_t)to;
            m->version++;
            m->updated_ms = ctx->time_ms;
            rc = member_add(s, ctx->txn, to, m->rec_hash.data);
        }
        rc = rc == 0 ? store__rec_put(s, ctx->txn, m) : rc;
        rc = rc == 0 ? hist_add(s, ctx, m, from, action,
            HIE__V1__FEED_OUTCOME__OUTCOME_MERGED, NULL) : rc;
    }
    return rc;
}

/* The longest A40 chain ending at live record h (0: none recorded). */
static int
mdepth_get(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *h, uint32_t *depth)
{
    MDB_val k = {HIE_MPI_REC_HASH_BYTES, (void *)(uintptr_t)h}, v;
    int rc = mdb_get(txn, s->mdepth, &k, &v);
    *depth = rc == 0 && v.mv_size == 4 ? hie_load_be32(v.mv_data) : 0;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : HIE_ESTORAGE;
}

/* After prior (depth dp) merged into survivor (depth ds): the survivor's chain, and none for
 * the prior, which is no longer live. */
static int
mdepth_merge(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *prior, const uint8_t *survivor,
    uint32_t depth)
{
    uint8_t b[4];
    hie_store_be32(b, depth);
    MDB_val kp = {HIE_MPI_REC_HASH_BYTES, (void *)(uintptr_t)prior};
    MDB_val ks = {HIE_MPI_REC_HASH_BYTES, (void *)(uintptr_t)survivor}, v = {sizeof(b), b};
    int rc = mdb_del(txn, s->mdepth, &kp, NULL);
    rc = rc == 0 || rc == MDB_NOTFOUND ? mdb_put(txn, s->mdepth, &ks, &v, 0) : rc;
    return rc == 0 ? 0 : HIE_ESTORAGE;
}

/* Would merging prior into survivor take the survivor's EUID past HIE_MPI_EUID_MEMBERS_MAX
 * (the prior's other records fold into it)? [out] *over. */
static int
merge_over(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const Hie__V1__MpiRecord *pr,
    const Hie__V1__MpiRecord *sv, bool *over)
{
    size_t np = 0, ns = 0;
    *over = false;
    if (strcmp(pr->euid, sv->euid) == 0 || store__rules_ms(ctx) < STORE_EUID_BOUNDS_SINCE_MS) {
        return 0;
    }
    int rc = members_count(s, ctx, pr->euid, &np);
    rc = rc == 0 ? members_count(s, ctx, sv->euid, &ns) : rc;
    *over = rc == 0 && (np > 0 ? np - 1 : 0) + ns > HIE_MPI_EUID_MEMBERS_MAX;
    return rc;
}

/* The survivor (*sv) and the record merged into it (*pr); both NULL when refused. */
static int
merge_records(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const Hie__V1__MpiFeedCommand *cmd,
    Hie__V1__MpiRecord **sv, Hie__V1__MpiRecord **pr)
{
    *sv = *pr = NULL;
    if (memcmp(cmd->rec_hash.data, cmd->prior_hash.data, HIE_MPI_REC_HASH_BYTES) == 0 &&
        store__rules_ms(ctx) >= STORE_REVIEW_DEDUP_SINCE_MS) {
        /* the proposer refuses it too; a command that says so anyway would leave the record
         * merged into itself, outside every EUID, its MRN unusable for good (by the rules
         * clock, as the review rules: an older log replays as it applied) */
        return refuse(ctx, BAD, "prior_mrn", "a record cannot be merged into itself");
    }
    Hie__V1__MpiRecord *s_rec = NULL, *p_rec = NULL;
    int rc = store__rec_get(s, ctx->txn, cmd->rec_hash.data, ctx->arena, &s_rec);
    if (rc == 0 && s_rec->merged && store__rules_ms(ctx) >= STORE_MERGED_ERRORS_SINCE_MS) {
        return refuse(ctx, BAD, "patient.mrn", MERGED_MRN);
    }
    if (rc == HIE_ENOTFOUND || (rc == 0 && s_rec->merged)) {
        return refuse(ctx, NOT_FOUND, "patient.mrn", "no record of this MRN at this organization");
    }
    rc = rc == 0 ? store__rec_get(s, ctx->txn, cmd->prior_hash.data, ctx->arena, &p_rec) : rc;
    if (rc == HIE_ENOTFOUND) {
        return refuse(ctx, NOT_FOUND, "prior_mrn", "no record of this MRN at this organization");
    }
    if (rc == 0 && p_rec->merged) {
        return refuse(ctx, BAD, "prior_mrn", "already merged");
    }
    if (rc == 0) {
        *sv = s_rec;
        *pr = p_rec;
    }
    return rc;
}

static int
feed_merge(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const Hie__V1__MpiFeedCommand *cmd,
    Hie__V1__MpiFeedReply **reply)
{
    Hie__V1__MpiRecord *sv = NULL, *pr = NULL;
    int rc = merge_records(s, ctx, cmd, &sv, &pr);
    if (rc != 0 || sv == NULL) {
        return rc; /* an error, or refused */
    }
    uint32_t dp = 0, ds = 0;
    rc = rc == 0 ? mdepth_get(s, ctx->txn, pr->rec_hash.data, &dp) : rc;
    rc = rc == 0 ? mdepth_get(s, ctx->txn, sv->rec_hash.data, &ds) : rc;
    /* every lookup of the oldest would follow the chain; merges logged before the bound
     * (2026-11-30T17:00Z, the command's own clock) replay as they applied */
    if (rc == 0 && dp + 1 > MERGE_CHAIN_MAX &&
        store__rules_ms(ctx) >= STORE_MERGE_DEPTH_SINCE_MS) {
        return refuse(ctx, BAD, "prior_mrn", "records merged into it already chain 16 merges "
            "deep: link the records instead");
    }
    bool over = false;
    rc = rc == 0 ? merge_over(s, ctx, pr, sv, &over) : rc;
    if (over) {
        return refuse(ctx, BAD, "prior_mrn", "the merged enterprise id would have more than "
            "1000 records");
    }
    char *prior_euid = rc == 0 ? pr->euid : NULL;
    rc = rc == 0 ? blocks_change(s, ctx->txn, pr, false) : rc;
    rc = rc == 0 ? store__tf_change(s, pr, -1) : rc;
    rc = rc == 0 ? member_del(s, ctx->txn, pr->euid, pr->rec_hash.data) : rc;
    if (rc == 0 && strcmp(prior_euid, sv->euid) != 0) {
        rc = merge_fold(s, ctx, prior_euid, sv->euid, cmd->action);
    }
    if (rc != 0) {
        return rc;
    }
    pr->merged = true;
    pr->merged_into = sv->rec_hash;
    pr->euid = sv->euid;
    pr->n_block_keys = 0;
    pr->tf_given = pr->tf_family = 0;
    pr->origin = HIE__V1__LINK_ORIGIN__LINK_MANUAL;
    pr->version++;
    pr->updated_ms = ctx->time_ms;
    rc = store__rec_put(s, ctx->txn, pr);
    rc = rc == 0 ? mdepth_merge(s, ctx->txn, pr->rec_hash.data, sv->rec_hash.data,
        dp + 1 > ds ? dp + 1 : ds) : rc;
    MDB_val mk = {HIE_MPI_REC_HASH_BYTES, sv->rec_hash.data};
    MDB_val mv = {HIE_MPI_REC_HASH_BYTES, pr->rec_hash.data};
    rc = rc == 0 ? store__rc(mdb_put(ctx->txn, s->merged, &mk, &mv, 0)) : rc;
    rc = rc == 0 ? store__meta_add(s, ctx->txn, "records", -1) : rc;
    rc = rc == 0 ? hist_add(s, ctx, pr, prior_euid, cmd->action,
        HIE__V1__FEED_OUTCOME__OUTCOME_MERGED, NULL) : rc;
    if (rc == 0) {
        ctx->merged_prior = pr->rec_hash.data;
        ctx->merged_survivor = sv->rec_hash.data;
    }
    Hie__V1__MpiFeedReply *r = rc == 0 ? hie_arena_alloc(ctx->arena, sizeof(*r)) : NULL;
    if (rc == 0 && r == NULL) {
        rc = HIE_ENOMEM;
    }
    if (rc == 0) {
        hie__v1__mpi_feed_reply__init(r);
        r->euid = sv->euid;
        r->outcome = HIE__V1__FEED_OUTCOME__OUTCOME_MERGED;
        *reply = r;
    }
    return rc;
}

/* Takes rec out of its EUID into a new one and records a manual no-link with every record it
 * leaves, so automatic matching never puts it back. */
static int
detach(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, Hie__V1__MpiRecord *rec,
    const uint8_t *others, size_t n)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const uint8_t *o = others + i * HIE_MPI_REC_HASH_BYTES;
        if (memcmp(o, rec->rec_hash.data, HIE_MPI_REC_HASH_BYTES) != 0) {
            rc = nolink_put(s, ctx->txn, rec->rec_hash.data, o, false);
        }
    }
    rc = rc == 0 ? member_del(s, ctx->txn, rec->euid, rec->rec_hash.data) : rc;
    rc = rc == 0 ? euid_new(s, ctx->txn, ctx->arena, &rec->euid) : rc;
    rc = rc == 0 ? member_add(s, ctx->txn, rec->euid, rec->rec_hash.data) : rc;
    rec->origin = HIE__V1__LINK_ORIGIN__LINK_MANUAL_NEW;
    rec->version++;
    rec->updated_ms = ctx->time_ms;
    return rc == 0 ? store__rec_put(s, ctx->txn, rec) : rc;
}

static int
feed_unlink(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const Hie__V1__MpiFeedCommand *cmd,
    Hie__V1__MpiFeedReply **reply)
{
    Hie__V1__MpiRecord *rec = NULL;
    uint8_t *hashes = NULL;
    size_t n = 0;
    int rc = store__rec_get(s, ctx->txn, cmd->rec_hash.data, ctx->arena, &rec);
    if (rc == 0 && rec->merged && store__rules_ms(ctx) >= STORE_MERGED_ERRORS_SINCE_MS) {
        return refuse(ctx, BAD, "patient.mrn", MERGED_MRN);
    }
    if (rc == HIE_ENOTFOUND || (rc == 0 && rec->merged)) {
        return refuse(ctx, NOT_FOUND, "patient.mrn", "no record of this MRN at this organization");
    }
    rc = rc == 0 ? store__members_w(s, ctx->txn, rec->euid, ctx->arena, &hashes, &n) : rc;
    if (rc == 0 && n <= 1) {
        return refuse(ctx, BAD, "patient.mrn", "not linked to any other record");
    }
    char *prior = rc == 0 ? rec->euid : NULL;
    rc = rc == 0 ? detach(s, ctx, rec, hashes, n) : rc;
    rc = rc == 0 ? hist_add(s, ctx, rec, prior, cmd->action,
        HIE__V1__FEED_OUTCOME__OUTCOME_UNLINKED, NULL) : rc;
    Hie__V1__MpiFeedReply *r = rc == 0 ? hie_arena_alloc(ctx->arena, sizeof(*r)) : NULL;
    if (rc == 0 && r == NULL) {
        rc = HIE_ENOMEM;
    }
    if (rc == 0) {
        hie__v1__mpi_feed_reply__init(r);
        r->euid = rec->euid;
        r->outcome = HIE__V1__FEED_OUTCOME__OUTCOME_UNLINKED;
        *reply = r;
    }
    return rc;
}

int
hie_mpi_store_apply_feed(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx,
    const Hie__V1__MpiFeedCommand *cmd, Hie__V1__MpiFeedReply **reply)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && ctx != NULL && cmd != NULL);
    *reply = NULL;
    if (!hie_mpi_store_ready(s)) {
        return refuse(ctx, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "the node has no MPI data key configured");
    }
    if (cmd->rec_hash.len != HIE_MPI_REC_HASH_BYTES || cmd->org_id == NULL) {
        return refuse(ctx, BAD, "rec_hash", "invalid");
    }
    struct feed fd;
    memset(&fd, 0, sizeof(fd));
    int rc;
    switch (cmd->action) {
    case HIE__V1__FEED_ACTION__FEED_CREATE:
        rc = feed_create(s, ctx, cmd, &fd, reply);
        break;
    case HIE__V1__FEED_ACTION__FEED_UPDATE:
        rc = feed_update(s, ctx, cmd, &fd, reply);
        break;
    case HIE__V1__FEED_ACTION__FEED_MERGE:
        rc = cmd->prior_hash.len == HIE_MPI_REC_HASH_BYTES ? feed_merge(s, ctx, cmd, reply)
                                                           : refuse(ctx, BAD, "prior_hash",
                                                                 "invalid");
        break;
    case HIE__V1__FEED_ACTION__FEED_UNLINK:
        rc = feed_unlink(s, ctx, cmd, reply);
        break;
    default:
        rc = refuse(ctx, BAD, "action", "unknown action");
    }
    sodium_memzero(&fd.p, sizeof(fd.p));
    if (rc == 0 && atomic_exchange(&s->read_failed, 0) != 0) {
        /* a no-link read failed since the last feed (this one's, or the match pool's work
         * for it): a decision may rest on it; the node stops and replay decides again */
        return HIE_ESTORAGE;
    }
    return rc;
}

/* ---- review decisions and models --------------------------------------------------------- */

static int
review_load(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, uint64_t id, bool keep_apart,
    Hie__V1__ReviewItem **it, Hie__V1__MpiRecord **rec)
{
    uint8_t kb[8];
    hie_store_be64(kb, id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(ctx->txn, s->review, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return refuse(ctx, NOT_FOUND, "id", "no such review item");
    }
    ProtobufCMessage *m = NULL;
    rc = rc == 0 ? hie_proto_unpack(&hie__v1__review_item__descriptor,
        hie_span(v.mv_data, v.mv_size), ctx->arena, &m) : HIE_ESTORAGE;
    if (rc != 0) {
        return rc == HIE_EPROTO ? HIE_ECORRUPT : rc;
    }
    *it = (Hie__V1__ReviewItem *)m;
    if ((*it)->status != HIE__V1__REVIEW_STATUS__REVIEW_OPEN) {
        return refuse(ctx, BAD, "id", "already decided");
    }
    if ((*it)->rec_hash.len != HIE_MPI_REC_HASH_BYTES || (*it)->candidate_euid == NULL) {
        return HIE_ECORRUPT;
    }
    rc = store__rec_get(s, ctx->txn, (*it)->rec_hash.data, ctx->arena, rec);
    bool closes = keep_apart && store__rules_ms(ctx) >= STORE_REVIEW_DEDUP_SINCE_MS;
    if (rc == 0 && (*rec)->merged && !closes) { /* keep apart closes it (nothing to do) */
        return refuse(ctx, BAD, "id", "the record was merged since");
    }
    return rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
}

static int
review_link(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, Hie__V1__MpiRecord *rec,
    const char *to, const uint8_t *members, size_t n)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) { /* the operator overrides earlier no-links */
        rc = nolink_put(s, ctx->txn, rec->rec_hash.data, members + i * HIE_MPI_REC_HASH_BYTES,
            true);
    }
    if (rc == 0 && strcmp(rec->euid, to) != 0) {
        rc = member_del(s, ctx->txn, rec->euid, rec->rec_hash.data);
        rec->euid = (char *)(uintptr_t)to;
        rc = rc == 0 ? member_add(s, ctx->txn, to, rec->rec_hash.data) : rc;
    }
    rec->origin = HIE__V1__LINK_ORIGIN__LINK_MANUAL;
    rec->version++;
    rec->updated_ms = ctx->time_ms;
    return rc == 0 ? store__rec_put(s, ctx->txn, rec) : rc;
}

/* Keep-apart of an item whose candidate EUID is gone (since STORE_MERGED_NOLINK_SINCE_MS): if
 * its records were folded into the record's own EUID since the item opened (the link history
 * of that EUID's records shows it), closing it would leave them linked; refused instead. */
static int
apart_folded(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx, const Hie__V1__MpiRecord *rec,
    const Hie__V1__ReviewItem *it)
{
    if (store__rules_ms(ctx) < STORE_MERGED_NOLINK_SINCE_MS) {
        return 0;
    }
    hie_mpi_euid_span_t *sp = NULL;
    size_t n = 0;
    int rc = store__identity(s, ctx->txn, rec->euid, true, ctx->arena, &sp, &n);
    if (rc == HIE_ELIMIT) {
        rc = 0; /* a history past what one look covers: closed as before */
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (strcmp(sp[i].euid, it->candidate_euid) == 0) {
            return refuse(ctx, BAD, "id", "the candidate enterprise id was folded into this "
                "record's since the item opened: unlink the records that came from it, then "
                "keep them apart");
        }
    }
    return rc;
}

int
hie_mpi_store_apply_review(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx,
    const Hie__V1__MpiReviewCommand *cmd, Hie__V1__ReviewDecideReply **reply)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && ctx != NULL && cmd != NULL);
    *reply = NULL;
    if (!hie_mpi_store_ready(s)) {
        return refuse(ctx, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "the node has no MPI data key configured");
    }
    Hie__V1__ReviewItem *it = NULL;
    Hie__V1__MpiRecord *rec = NULL;
    uint8_t *members = NULL;
    size_t n = 0;
    int rc = review_load(s, ctx, cmd->id, !cmd->link, &it, &rec);
    if (rc != 0 || ctx->reject.code != 0) {
        return rc;
    }
    bool rules = store__rules_ms(ctx) >= STORE_REVIEW_DEDUP_SINCE_MS;
    rc = store__members_w(s, ctx->txn, it->candidate_euid, ctx->arena, &members, &n);
    if (rc == 0 && n == 0 && (cmd->link || !rules)) {
        return refuse(ctx, BAD, "id", "the candidate enterprise id no longer exists");
    }
    if (rc == 0 && rules && !cmd->link && !rec->merged &&
        strcmp(rec->euid, it->candidate_euid) == 0) {
        return refuse(ctx, BAD, "id", "the record is in the candidate enterprise id already "
            "(linked since the item opened): unlink it, then keep it apart");
    }
    rc = rc == 0 && !cmd->link && n == 0 && !rec->merged ? apart_folded(s, ctx, rec, it) : rc;
    if (rc != 0 || ctx->reject.code != 0) {
        return rc;
    }
    if (rec->merged) {
        n = 0; /* nothing left to keep apart: the item closes */
    }
    if (rc == 0 && cmd->link && n >= HIE_MPI_EUID_MEMBERS_MAX &&
        store__rules_ms(ctx) >= STORE_EUID_BOUNDS_SINCE_MS) {
        return refuse(ctx, BAD, "id", "the candidate enterprise id has the most records (1000)");
    }
    char *prior = rec->euid;
    for (size_t i = 0; rc == 0 && !cmd->link && i < n; i++) {
        rc = nolink_put(s, ctx->txn, rec->rec_hash.data, members + i * HIE_MPI_REC_HASH_BYTES,
            false);
    }
    rc = rc == 0 && cmd->link ? review_link(s, ctx, rec, it->candidate_euid, members, n) : rc;
    it->status = cmd->link ? HIE__V1__REVIEW_STATUS__REVIEW_LINKED
                           : HIE__V1__REVIEW_STATUS__REVIEW_KEPT_APART;
    it->decided_ms = ctx->time_ms;
    it->decided_by = (char *)(uintptr_t)ctx->requester;
    uint8_t kb[8];
    hie_store_be64(kb, it->id);
    MDB_val k = {8, kb};
    rc = rc == 0 ? store__put_msg(ctx->txn, s->review, &k, &it->base) : rc;
    rc = rc == 0 ? store__meta_add(s, ctx->txn, "review_open", -1) : rc;
    rc = rc == 0 ? review_open_drop(s, ctx->txn, it) : rc;
    rc = rc == 0 && (!rec->merged || store__rules_ms(ctx) < STORE_MERGED_NO_HIST_SINCE_MS) ?
        hist_add(s, ctx, rec, prior, 0, cmd->link ? HIE__V1__FEED_OUTCOME__OUTCOME_LINKED
        : HIE__V1__FEED_OUTCOME__OUTCOME_NEW, it->explanation) : rc; /* action: unspecified */
    Hie__V1__ReviewDecideReply *r = rc == 0 ? hie_arena_alloc(ctx->arena, sizeof(*r)) : NULL;
    rc = rc == 0 && r == NULL ? HIE_ENOMEM : rc;
    rc = rc == 0 ? store__patient_id(s, rec, ctx->arena, &it->record) : rc;
    if (rc == 0) {
        hie__v1__review_decide_reply__init(r);
        it->record_euid = rec->euid;
        it->rec_hash.len = 0;
        r->item = it;
        r->euid = rec->euid;
        *reply = r;
    }
    return rc;
}

int
hie_mpi_store_apply_model(hie_mpi_store_t *s, hie_mpi_apply_ctx_t *ctx,
    const Hie__V1__MpiModelCommand *cmd, uint64_t *version)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && ctx != NULL && cmd != NULL);
    hie_mpi_model_t cur, next;
    *version = 0;
    if (cmd->model != NULL && cmd->model->level_scheme != 0 &&
        cmd->model->level_scheme != HIE_MPI_LEVEL_SCHEME) {
        return refuse(ctx, BAD, "model.level_scheme",
            "trained for other comparison levels (another build): train again");
    }
    if (cmd->model == NULL || hie_mpi_model_from_proto(cmd->model, &next) != 0) {
        return refuse(ctx, BAD, "model", "probabilities out of range or wrong shape");
    }
    int rc = hie_mpi_store_model(s, ctx->txn, &cur);
    if (rc != 0) {
        return rc;
    }
    if (next.version <= cur.version) {
        return refuse(ctx, BAD, "model.version", "not newer than the current model");
    }
    Hie__V1__MpiModel stored = *cmd->model;
    stored.trained_ms = ctx->time_ms;
    MDB_val k = {5, (void *)(uintptr_t)"model"};
    rc = store__put_msg(ctx->txn, s->meta, &k, &stored.base);
    *version = rc == 0 ? next.version : 0;
    return rc;
}
