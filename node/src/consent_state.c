/*
 * consent_state.c - consent directives in the replicated state (issue 4): apply of submit and
 * revoke on the log thread, and the readers the decision point and the list exchange use.
 *
 * Databases (state environment):
 *   consent_dir   id -> rec_hash(16) || ConsentDirective (MRN cleared: no plaintext MRN)
 *   consent_rule  id -> the directive compiled by hie_consent_compile (what decisions read)
 *   consent_pat   dupsort: rec_hash(16) -> id  (the patient's directives, by source record)
 * Directives are keyed by the MPI record identity of (organization, MRN), so they follow the
 * record through links and unlinks: a decision about an EUID reads the directives of every
 * source record of that EUID. A revoke writes a new version in place (status INACTIVE,
 * revoked_*); the compiled rule carries the version, so every decision cites the exact
 * version that applied. Apply checks everything before its first write.
 */
#include "node_int.h"

#include "hie/consent.h"
#include "hie/mpi_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define CONSENT_MAGIC 0x434e5354u /* "CNST" */
#define CONSENT_ID_BYTES 32u
#define CONSENT_RULE_BYTES_MAX HIE_CONSENT_COMPILED_BYTES_MAX
/* A directive's date (when the patient agreed) may lead the submitting command's clock by at
 * most this: a date-only entry made in a time zone ahead of UTC. */
#define CONSENT_DATE_AHEAD_MS (24ll * 3600 * 1000)
/* From 2026-11-30T21:45Z (the rules clock): directives follow an A40 merge to the surviving
 * record, and one submitted for a merged MRN is filed on it (before, they stayed on the prior
 * record, which no decision reads: the patient's consent stopped applying); a merge that
 * would leave the record more directives in force than one may have is refused; a submit
 * checks before it moves anything, and may not take the patient's EUID past the directives a
 * decision reads. A log from before replays as it applied. */
#define CONSENT_MERGE_SINCE_MS 1796075100000ll
/* From 2026-12-01T05:00Z (the rules clock): a revoke of another organization's directive is
 * NOT_FOUND, as an unknown id (was FORBIDDEN); and "latest wins" ranks a directive by its date but
 * never later than its submission. A date ahead of the submitting clock (up to
 * CONSENT_DATE_AHEAD_MS: a date-only entry in a zone ahead of UTC) made it outrank every
 * directive filed after it within that day, for good. The stated date is kept and listed. */
#define CONSENT_RANK_AT_SUBMIT_SINCE_MS 1796101200000ll
/* Ids moved per pass when a merge moves a record's directives (bounded memory). */
#define CONSENT_MOVE_CHUNK 256u
/* Ids one record's consent_pat may hold when read: 32 are accepted by submits, but the move
 * of a merge made before the rules above (CONSENT_MERGE_SINCE_MS) may leave more; up to what
 * a decision reads they are decided, beyond it the decision fails closed. */
#define CONSENT_PAT_READ_MAX HIE_CONSENT_DIRECTIVES_MAX
#define CONSENT_META_MIGRATED "merged-moved-v1"
/* Records a migration looks at per pass (bounded memory). */
#define CONSENT_MIGRATE_CHUNK 1024u

/* Revoked directives a listing (--all) shows besides those in force, from consent_hist: the
 * most recently submitted ones; the reply says how many older ones it left out. */
#define CONSENT_HISTORY_LISTED_MAX 224u
/* A listing reads at most this many revoked ids (the rest count as left out). */
#define CONSENT_HISTORY_SCAN_MAX 100000u

struct node_consent {
    uint32_t magic;
    MDB_dbi dir, rule;
    MDB_dbi pat;  /* rec_hash -> ids of its directives not revoked (the decisions read these) */
    MDB_dbi hist; /* rec_hash -> ids of its revoked directives (listings only) */
    MDB_dbi meta; /* CONSENT_META_MIGRATED once directives left on merged records moved */
    bool migrated; /* that key, as read at open and set by apply (log thread) */
};

static int
mdb_rc(int rc)
{
    return rc == 0 ? 0 : (rc == MDB_NOTFOUND ? HIE_ENOTFOUND : HIE_ESTORAGE);
}

int
hie_node__consent_open(node_consent_t **out, MDB_env *env)
{
    HIE_ASSERT(out != NULL && env != NULL);
    *out = NULL;
    node_consent_t *c = hie_mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        return HIE_ENOMEM;
    }
    c->magic = CONSENT_MAGIC;
    const node_dbi_spec_t dbis[] = {{"consent_dir", MDB_CREATE, &c->dir},
        {"consent_rule", MDB_CREATE, &c->rule},
        {"consent_pat", MDB_CREATE | MDB_DUPSORT, &c->pat},
        {"consent_hist", MDB_CREATE | MDB_DUPSORT, &c->hist},
        {"consent_meta", MDB_CREATE, &c->meta}};
    int rc = hie_node__dbis_open(env, dbis, HIE_ARRAY_LEN(dbis));
    MDB_txn *txn = NULL;
    rc = rc ? rc : mdb_rc(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
    if (rc == 0) {
        MDB_val k = {sizeof(CONSENT_META_MIGRATED) - 1, (void *)(uintptr_t)CONSENT_META_MIGRATED};
        MDB_val v;
        int grc = mdb_get(txn, c->meta, &k, &v);
        c->migrated = grc == 0;
        rc = grc == 0 || grc == MDB_NOTFOUND ? 0 : HIE_ESTORAGE;
        mdb_txn_abort(txn);
    }
    if (rc != 0) {
        hie_node__consent_close(&c);
        return rc;
    }
    *out = c;
    return 0;
}

void
hie_node__consent_close(node_consent_t **cp)
{
    HIE_ASSERT(cp != NULL);
    if (*cp == NULL) {
        return;
    }
    HIE_ASSERT((*cp)->magic == CONSENT_MAGIC);
    (*cp)->magic = 0;
    hie_mem_free(*cp, sizeof(**cp));
    *cp = NULL;
}

/* ---- reading -------------------------------------------------------------------------------- */

/* The stored directive under id; [out] *rec_hash points into txn memory. */
static int
dir_get(node_consent_t *c, MDB_txn *txn, const char *id, hie_arena_t *arena,
    Hie__V1__ConsentDirective **out, const uint8_t **rec_hash)
{
    MDB_val k = {strlen(id), (void *)(uintptr_t)id}, v;
    *out = NULL;
    int rc = mdb_rc(mdb_get(txn, c->dir, &k, &v));
    if (rc != 0) {
        return rc;
    }
    if (v.mv_size <= HIE_PROTO_REC_HASH_BYTES) {
        return HIE_ECORRUPT;
    }
    ProtobufCMessage *m = NULL;
    rc = hie_proto_unpack(&hie__v1__consent_directive__descriptor,
        hie_span((const uint8_t *)v.mv_data + HIE_PROTO_REC_HASH_BYTES,
            v.mv_size - HIE_PROTO_REC_HASH_BYTES), arena, &m);
    if (rc != 0) {
        return HIE_ECORRUPT;
    }
    *out = (Hie__V1__ConsentDirective *)m;
    if (rec_hash != NULL) {
        *rec_hash = v.mv_data;
    }
    return (*out)->id != NULL ? 0 : HIE_ECORRUPT;
}

int
hie_node__consent_get(node_consent_t *c, MDB_txn *txn, const char *id, hie_arena_t *arena,
    Hie__V1__ConsentDirective **out)
{
    HIE_ASSERT(c != NULL && c->magic == CONSENT_MAGIC);
    HIE_ASSERT(id != NULL && out != NULL);
    if (strlen(id) >= CONSENT_ID_BYTES) {
        *out = NULL;
        return HIE_ENOTFOUND;
    }
    return dir_get(c, txn, id, arena, out, NULL);
}

/* Calls fn for each id of rec_hash in dbi, at most max: more is HIE_ELIMIT (pat: more than a
 * decision reads, which a merge before the rules could leave; its callers fail closed or
 * refuse), or with more_ok the first max (listings, history). */
static int
ids_each(MDB_txn *txn, MDB_dbi dbi, const uint8_t *rec_hash, unsigned max, bool more_ok,
    int (*fn)(void *ctx, const char *id, size_t len), void *ctx)
{
    MDB_cursor *cur = NULL;
    MDB_val k = {HIE_PROTO_REC_HASH_BYTES, (void *)(uintptr_t)rec_hash}, v;
    int rc = mdb_rc(mdb_cursor_open(txn, dbi, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_KEY) : 0;
    for (unsigned i = 0; rc == 0 && mrc == 0; i++) {
        if (i == max) {
            rc = more_ok ? 0 : HIE_ELIMIT;
            break;
        }
        if (v.mv_size == 0 || v.mv_size >= CONSENT_ID_BYTES) {
            rc = HIE_ECORRUPT;
            break;
        }
        rc = fn(ctx, v.mv_data, v.mv_size);
        mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP) : 0;
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = HIE_ESTORAGE;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

/* Calls fn for each directive id of rec_hash not revoked. */
static int
pat_each(node_consent_t *c, MDB_txn *txn, const uint8_t *rec_hash,
    int (*fn)(void *ctx, const char *id, size_t len), void *ctx)
{
    return ids_each(txn, c->pat, rec_hash, CONSENT_PAT_READ_MAX, false, fn, ctx);
}

struct list_ctx {
    node_consent_t *c;
    MDB_txn *txn;
    hie_arena_t *arena;
    bool include_inactive;
    Hie__V1__ConsentDirective **out;
    size_t n;
};

static int
list_one(void *vctx, const char *idp, size_t len)
{
    struct list_ctx *l = vctx;
    char id[CONSENT_ID_BYTES];
    memcpy(id, idp, len);
    id[len] = '\0';
    Hie__V1__ConsentDirective *d = NULL;
    int rc = dir_get(l->c, l->txn, id, l->arena, &d, NULL);
    if (rc != 0) {
        return rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
    }
    if (l->include_inactive || d->status == HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE) {
        HIE_ASSERT(l->n < CONSENT_PAT_READ_MAX + CONSENT_HISTORY_LISTED_MAX);
        l->out[l->n++] = d;
    }
    return 0;
}

/* The CONSENT_HISTORY_LISTED_MAX revoked ids with the greatest submission index (ids are
 * "cns-<index>"; one that is not reads as index 0, the oldest). */
struct hist_pick {
    char ids[CONSENT_HISTORY_LISTED_MAX][CONSENT_ID_BYTES];
    uint64_t index[CONSENT_HISTORY_LISTED_MAX];
    unsigned n;
};

static int
hist_pick_one(void *vctx, const char *id, size_t len)
{
    struct hist_pick *h = vctx;
    uint64_t index = 0;
    for (size_t i = 4; len > 4 && memcmp(id, "cns-", 4) == 0 && i < len; i++) {
        index = id[i] >= '0' && id[i] <= '9' && index < UINT64_MAX / 10
                    ? index * 10 + (uint64_t)(id[i] - '0') : 0;
    }
    unsigned slot = h->n;
    if (h->n == CONSENT_HISTORY_LISTED_MAX) { /* full: replace the oldest, if older */
        slot = 0;
        for (unsigned i = 1; i < h->n; i++) {
            slot = h->index[i] < h->index[slot] ? i : slot;
        }
        if (h->index[slot] >= index) {
            return 0;
        }
    } else {
        h->n++;
    }
    memcpy(h->ids[slot], id, len);
    h->ids[slot][len] = '\0';
    h->index[slot] = index;
    return 0;
}

static int
hist_list(node_consent_t *c, MDB_txn *txn, const uint8_t *rec_hash, struct list_ctx *l,
    uint32_t *left_out)
{
    struct hist_pick *h = hie_arena_alloc(l->arena, sizeof(*h));
    if (h == NULL) {
        return HIE_ENOMEM;
    }
    h->n = 0;
    int rc = ids_each(txn, c->hist, rec_hash, CONSENT_HISTORY_SCAN_MAX, true, hist_pick_one, h);
    for (unsigned i = 0; rc == 0 && i < h->n; i++) {
        rc = list_one(l, h->ids[i], strlen(h->ids[i]));
    }
    MDB_cursor *cur = NULL;
    MDB_val k = {HIE_PROTO_REC_HASH_BYTES, (void *)(uintptr_t)rec_hash}, v;
    size_t total = 0;
    rc = rc ? rc : mdb_rc(mdb_cursor_open(txn, c->hist, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_KEY) : MDB_NOTFOUND;
    rc = rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
    rc = rc == 0 && mrc == 0 ? mdb_rc(mdb_cursor_count(cur, &total)) : rc;
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    *left_out = total > h->n ? (uint32_t)(total - h->n < UINT32_MAX ? total - h->n : UINT32_MAX)
                             : 0;
    return rc;
}

static int
cmp_submitted(const void *a, const void *b)
{
    const Hie__V1__ConsentDirective *x = *(Hie__V1__ConsentDirective *const *)a;
    const Hie__V1__ConsentDirective *y = *(Hie__V1__ConsentDirective *const *)b;
    return x->submitted_index < y->submitted_index ? -1 : x->submitted_index > y->submitted_index;
}

int
hie_node__consent_list(node_consent_t *c, MDB_txn *txn, const uint8_t *rec_hash,
    bool include_inactive, hie_arena_t *arena, Hie__V1__ConsentDirective ***out, size_t *n,
    uint32_t *revoked_not_listed)
{
    HIE_ASSERT(c != NULL && c->magic == CONSENT_MAGIC);
    HIE_ASSERT(rec_hash != NULL && out != NULL && n != NULL && revoked_not_listed != NULL);
    *out = NULL;
    *n = 0;
    *revoked_not_listed = 0;
    struct list_ctx l = {c, txn, arena, include_inactive, hie_arena_alloc(arena,
        (CONSENT_PAT_READ_MAX + CONSENT_HISTORY_LISTED_MAX) * sizeof(*l.out)), 0};
    if (l.out == NULL) {
        return HIE_ENOMEM;
    }
    int rc = ids_each(txn, c->pat, rec_hash, CONSENT_PAT_READ_MAX, true, list_one, &l);
    if (rc == 0 && include_inactive) {
        rc = hist_list(c, txn, rec_hash, &l, revoked_not_listed);
    }
    if (rc == 0) {
        qsort(l.out, l.n, sizeof(*l.out), cmp_submitted);
        *out = l.out;
        *n = l.n;
    }
    return rc;
}

struct rules_ctx {
    node_consent_t *c;
    MDB_txn *txn;
    hie_span_t *rules;
    size_t cap, n;
};

static int
rules_one(void *vctx, const char *id, size_t len)
{
    struct rules_ctx *r = vctx;
    if (r->n == r->cap) {
        return HIE_ELIMIT;
    }
    MDB_val k = {len, (void *)(uintptr_t)id}, v;
    int rc = mdb_rc(mdb_get(r->txn, r->c->rule, &k, &v));
    if (rc != 0) {
        return rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
    }
    r->rules[r->n++] = hie_span(v.mv_data, v.mv_size);
    return 0;
}

int
hie_node__consent_rules(node_consent_t *c, struct hie_mpi_store *mpi, MDB_txn *txn,
    const char *euid, const hie_mpi_members_t *known, hie_arena_t *arena, hie_span_t *rules,
    size_t cap, size_t *n)
{
    HIE_ASSERT(c != NULL && c->magic == CONSENT_MAGIC);
    HIE_ASSERT(euid != NULL && rules != NULL && n != NULL);
    *n = 0;
    const uint8_t *members = known != NULL ? known->hashes : NULL;
    size_t count = known != NULL ? known->n : 0;
    int rc = known != NULL ? 0
                           : hie_mpi_store_euid_members(mpi, txn, euid, arena, &members, &count);
    if (rc == 0 && count >= HIE_MPI_EUID_MEMBERS_MAX) {
        /* the store lists at most this many: a directive on a record past them would be
         * missed. Fail closed (the caller denies and logs) rather than decide on a part. */
        rc = HIE_ELIMIT;
    }
    struct rules_ctx r = {c, txn, rules, cap, 0};
    for (size_t i = 0; rc == 0 && i < count; i++) {
        rc = pat_each(c, txn, members + i * HIE_MPI_REC_HASH_BYTES, rules_one, &r);
    }
    *n = rc == 0 ? r.n : 0;
    return rc;
}

/* ---- apply ---------------------------------------------------------------------------------- */

/* Writes d (rec_hash prefix) and its compiled rule under d->id. */
static int
dir_put(node_consent_t *c, node_apply_t *a, Hie__V1__ConsentDirective *d,
    const uint8_t *rec_hash)
{
    uint8_t *blob = hie_arena_alloc(a->arena, CONSENT_RULE_BYTES_MAX);
    size_t blob_len = 0;
    if (blob == NULL) {
        return HIE_ENOMEM;
    }
    /* the compiled rule ranks it by its date, at most its submission (the stored directive
     * keeps the date as given) */
    int64_t stated = d->date_ms;
    if (a->rules_ms >= CONSENT_RANK_AT_SUBMIT_SINCE_MS && d->submitted_ms > 0 &&
        d->date_ms > d->submitted_ms) {
        d->date_ms = d->submitted_ms;
    }
    /* validated by the proposer and again in apply: compiling cannot fail but for a bug */
    int rc = hie_consent_compile(d, blob, CONSENT_RULE_BYTES_MAX, &blob_len, NULL);
    HIE_ASSERT(rc == 0);
    d->date_ms = stated;
    MDB_val k = {strlen(d->id), d->id};
    MDB_val rv = {blob_len, blob};
    rc = mdb_rc(mdb_put(a->txn, c->rule, &k, &rv, 0));
    size_t n = protobuf_c_message_get_packed_size(&d->base);
    MDB_val dv = {HIE_PROTO_REC_HASH_BYTES + n, NULL};
    rc = rc ? rc : mdb_rc(mdb_put(a->txn, c->dir, &k, &dv, MDB_RESERVE));
    if (rc == 0) {
        memcpy(dv.mv_data, rec_hash, HIE_PROTO_REC_HASH_BYTES);
        size_t packed = protobuf_c_message_pack(&d->base,
            (uint8_t *)dv.mv_data + HIE_PROTO_REC_HASH_BYTES);
        HIE_ASSERT(packed == n);
    }
    return rc;
}

struct count_ctx {
    node_consent_t *c;
    MDB_txn *txn;
    hie_arena_t *arena;
    size_t n;                 /* not revoked */
    char *revoked[CONSENT_PAT_READ_MAX];
    size_t n_revoked;
};

/* Counts the directives in force, and lists the revoked ones still in consent_pat (revoked
 * before consent_hist existed, 2026-11-30). */
static int
count_one(void *vctx, const char *idp, size_t len)
{
    struct count_ctx *x = vctx;
    char *id = hie_arena_alloc(x->arena, len + 1);
    if (id == NULL) {
        return HIE_ENOMEM;
    }
    memcpy(id, idp, len);
    id[len] = '\0';
    Hie__V1__ConsentDirective *d = NULL;
    int rc = dir_get(x->c, x->txn, id, x->arena, &d, NULL);
    if (rc != 0) {
        return rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
    }
    if (d->revoked_ms == 0) {
        x->n++;
    } else {
        HIE_ASSERT(x->n_revoked < CONSENT_PAT_READ_MAX);
        x->revoked[x->n_revoked++] = id;
    }
    return 0;
}

/* Moves the revoked ids x found in rec_hash's consent_pat to consent_hist (so they neither
 * count against the 32 nor take a decision's rule slots). */
static int
revoked_to_hist(node_consent_t *c, node_apply_t *a, const uint8_t *rec_hash,
    const struct count_ctx *x)
{
    MDB_val k = {HIE_PROTO_REC_HASH_BYTES, (void *)(uintptr_t)rec_hash};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < x->n_revoked; i++) {
        MDB_val v = {strlen(x->revoked[i]), x->revoked[i]};
        rc = mdb_rc(mdb_del(a->txn, c->pat, &k, &v));
        rc = rc ? rc : mdb_rc(mdb_put(a->txn, c->hist, &k, &v, 0));
    }
    return rc;
}

/* The directives of rec_hash in force, after moving any revoked ones left in consent_pat to
 * consent_hist; for a command logged before those rules (!rules), every id in consent_pat, as
 * it was applied. With x (rules since CONSENT_MERGE_SINCE_MS), nothing moves: *x says what the
 * caller moves once it has accepted the command. */
static int
in_force_count(node_consent_t *c, node_apply_t *a, const uint8_t *rec_hash, bool rules,
    size_t *n, struct count_ctx *later)
{
    struct count_ctx x = {c, a->txn, a->arena, 0, {NULL}, 0};
    int rc = pat_each(c, a->txn, rec_hash, count_one, &x);
    *n = rules ? x.n : x.n + x.n_revoked;
    if (later != NULL) {
        *later = x;
        return rc;
    }
    return rc == 0 && rules ? revoked_to_hist(c, a, rec_hash, &x) : rc;
}

/* The latest directive wins by its date: an undated one is dated when it was submitted (not
 * 1970, which any older dated directive would beat); false for a date after the submission,
 * which would outrank every later directive. */
static bool
date_set(Hie__V1__ConsentDirective *d, int64_t submitted_ms)
{
    if (d->date_ms == 0) {
        d->date_ms = submitted_ms;
    }
    return d->date_ms <= submitted_ms + CONSENT_DATE_AHEAD_MS;
}

/* The record a submit files its directive on: since CONSENT_MERGE_SINCE_MS the one the named
 * record survives as (an A40 merge), else the named one. */
static int
submit_record(node_apply_t *a, const uint8_t *named, uint8_t out[HIE_PROTO_REC_HASH_BYTES])
{
    memcpy(out, named, HIE_PROTO_REC_HASH_BYTES);
    return a->rules_ms < CONSENT_MERGE_SINCE_MS ? 0
                                                : hie_mpi_store_surviving(a->mpi, a->txn, named,
                                                      a->arena, out);
}

/* How many directives a decision about euid reads (revoked ones left in consent_pat
 * included); HIE_CONSENT_DIRECTIVES_MAX + 1 when more than it reads, or more records than the
 * store lists. */
static int
euid_rules(node_consent_t *c, node_apply_t *a, const char *euid, size_t *n)
{
    hie_span_t *rules = hie_arena_alloc(a->arena, HIE_CONSENT_DIRECTIVES_MAX * sizeof(*rules));
    if (rules == NULL) {
        return HIE_ENOMEM;
    }
    int rc = hie_node__consent_rules(c, a->mpi, a->txn, euid, NULL, a->arena, rules,
        HIE_CONSENT_DIRECTIVES_MAX, n);
    if (rc == HIE_ELIMIT) {
        *n = HIE_CONSENT_DIRECTIVES_MAX + 1;
        rc = 0;
    }
    return rc;
}

/* Since CONSENT_MERGE_SINCE_MS: *room is false when euid's records already have as many
 * directives on file as a decision reads (HIE_CONSENT_DIRECTIVES_MAX), not counting the
 * revoked ids the submit moves out of the way (moving): one more would make every decision
 * for the patient fail closed. */
static int
euid_room(node_consent_t *c, node_apply_t *a, const char *euid, size_t moving, bool *room)
{
    *room = true;
    if (a->rules_ms < CONSENT_MERGE_SINCE_MS) {
        return 0;
    }
    size_t n = 0;
    int rc = euid_rules(c, a, euid, &n);
    bool over = n > HIE_CONSENT_DIRECTIVES_MAX; /* more than counted: no room, whatever moves */
    *room = rc == 0 && !over && n - (moving < n ? moving : n) < HIE_CONSENT_DIRECTIVES_MAX;
    return rc;
}

/* The checks of a submit that need the state; *rejected when one refused it (recorded). */
static int
submit_check(node_consent_t *c, node_apply_t *a, const uint8_t *rec, const char *euid,
    struct count_ctx *later, bool *rejected)
{
    const Hie__V1__ConsentSubmitCommand *sc = a->cmd->consent_submit;
    bool merge_rules = a->rules_ms >= CONSENT_MERGE_SINCE_MS;
    size_t on_file = 0;
    bool room = true;
    int rc = in_force_count(c, a, rec, sc->rules_2026_11_30, &on_file,
        merge_rules ? later : NULL);
    if (rc == HIE_ELIMIT) { /* more on file than a read takes (a merge before the rules) */
        on_file = HIE_CONSENT_PER_PATIENT_MAX;
        rc = 0;
    }
    rc = rc == 0 && on_file < HIE_CONSENT_PER_PATIENT_MAX
             ? euid_room(c, a, euid, merge_rules ? later->n_revoked : 0, &room)
             : rc;
    *rejected = rc == 0 && (on_file >= HIE_CONSENT_PER_PATIENT_MAX || !room);
    if (rc == 0 && on_file >= HIE_CONSENT_PER_PATIENT_MAX) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "directive",
            "the patient has the most directives on file (32); revoke one first");
    }
    if (rc == 0 && !room) { /* the same words: linked records may be hidden from it */
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "directive",
            "the patient has the most directives on file (32); revoke one first");
    }
    return rc;
}

static int
apply_submit(node_consent_t *c, node_apply_t *a)
{
    const Hie__V1__ConsentSubmitCommand *sc = a->cmd->consent_submit;
    Hie__V1__ConsentDirective *d = sc->directive;
    hie_errinfo_t info = {0};
    if (hie_consent_directive_validate(d, &info) != 0 || d->patient == NULL ||
        d->patient->org_id == NULL || d->patient->org_id[0] == '\0') {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
            info.field != NULL ? info.field : "directive.patient", "invalid directive");
    }
    if (sc->rules_2026_11_30 && !date_set(d, a->cmd->time_ms)) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "date_ms",
            "the directive is dated after its submission");
    }
    char *euid = hie_arena_alloc(a->arena, HIE_MPI_EUID_BYTES);
    if (euid == NULL) {
        return HIE_ENOMEM;
    }
    uint8_t rec[HIE_PROTO_REC_HASH_BYTES];
    int rc = hie_mpi_store_euid_of(a->mpi, a->txn, sc->rec_hash.data, a->arena, euid);
    rc = rc ? rc : submit_record(a, sc->rec_hash.data, rec);
    if (rc == HIE_ENOTFOUND || rc == HIE_EUNAVAIL) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
            "directive.patient.mrn", "no record of this MRN at this organization");
    }
    if (rc == HIE_ELIMIT) { /* merged more than 16 deep (before merges were bounded) */
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
            "directive.patient.mrn", "merged too many times over: file it for the newest MRN");
    }
    struct count_ctx later = {c, a->txn, a->arena, 0, {NULL}, 0};
    bool rejected = false;
    rc = rc ? rc : submit_check(c, a, rec, euid, &later, &rejected);
    if (rc != 0 || rejected) {
        return rc;
    }
    /* the proposer replaced the MRN with "#" + hex(rec_hash) (hie_node__consent_mrn_mask):
     * no plaintext MRN in the log or the state */
    if (d->patient->mrn == NULL || d->patient->mrn[0] != '#') {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
            "directive.patient.mrn", "not masked");
    }
    char *id = hie_arena_alloc(a->arena, CONSENT_ID_BYTES);
    if (id == NULL) {
        return HIE_ENOMEM;
    }
    snprintf(id, CONSENT_ID_BYTES, "cns-%" PRIu64, a->index);
    d->id = id;
    d->version = 1;
    d->submitted_by = a->cmd->requester;
    d->submitted_ms = a->cmd->time_ms;
    d->submitted_index = a->index;
    d->revoked_ms = 0;
    d->revoked_by = (char *)(uintptr_t)"";
    rc = sc->rules_2026_11_30 ? revoked_to_hist(c, a, rec, &later) : 0;
    rc = rc ? rc : dir_put(c, a, d, rec);
    MDB_val k = {HIE_PROTO_REC_HASH_BYTES, rec}, v = {strlen(id), id};
    rc = rc ? rc : mdb_rc(mdb_put(a->txn, c->pat, &k, &v, 0));
    Hie__V1__ConsentSubmitReply *r = hie_arena_alloc(a->arena, sizeof(*r));
    if (rc == 0 && r == NULL) {
        rc = HIE_ENOMEM;
    }
    if (rc == 0) {
        hie__v1__consent_submit_reply__init(r);
        r->id = id;
        r->version = 1;
        r->euid = euid;
        a->res->consent_submit = r;
    }
    return rc;
}

static int
apply_revoke(node_consent_t *c, node_apply_t *a)
{
    const char *id = a->cmd->consent_revoke->id;
    Hie__V1__ConsentDirective *d = NULL;
    const uint8_t *hash_in_txn = NULL;
    int rc = strlen(id) < CONSENT_ID_BYTES ? dir_get(c, a->txn, id, a->arena, &d, &hash_in_txn)
                                           : HIE_ENOTFOUND;
    if (rc == HIE_ENOTFOUND) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "id",
            "no consent directive with this id");
    }
    if (rc != 0) {
        return rc;
    }
    const char *who = a->cmd->requester;
    bool allowed = strcmp(who, "@operator") == 0 || strcmp(who, d->submitted_by) == 0 ||
                   (d->patient != NULL && strcmp(who, d->patient->org_id) == 0);
    if (!allowed && a->rules_ms >= CONSENT_RANK_AT_SUBMIT_SINCE_MS) {
        /* the same answer as an unknown id: ids are log indexes, and FORBIDDEN told any member
         * which of them are another organization's directives */
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "id",
            "no consent directive with this id");
    }
    if (!allowed) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, "id",
            "only the submitting organization or the patient's organization may revoke");
    }
    if (d->revoked_ms != 0) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "id",
            "the directive is already revoked");
    }
    uint8_t rec_hash[HIE_PROTO_REC_HASH_BYTES];
    memcpy(rec_hash, hash_in_txn, sizeof(rec_hash)); /* txn memory moves on put */
    d->status = HIE__V1__CONSENT_STATUS__CONSENT_INACTIVE;
    d->version++;
    d->revoked_ms = a->cmd->time_ms > 0 ? a->cmd->time_ms : 1;
    d->revoked_by = (char *)(uintptr_t)who;
    rc = dir_put(c, a, d, rec_hash);
    if (a->cmd->consent_revoke->rules_2026_11_30) {
        /* out of the patient's directives in force (decisions and the 32 on file no longer
         * count it), into its history (listings); logged before, it stays, as applied */
        MDB_val k = {sizeof(rec_hash), rec_hash}, v = {strlen(d->id), d->id};
        rc = rc ? rc : mdb_rc(mdb_del(a->txn, c->pat, &k, &v));
        rc = rc == HIE_ENOTFOUND ? 0 : rc; /* missing from pat (not expected): still recorded */
        rc = rc ? rc : mdb_rc(mdb_put(a->txn, c->hist, &k, &v, 0));
    }
    Hie__V1__ConsentRevokeReply *r = hie_arena_alloc(a->arena, sizeof(*r));
    if (rc == 0 && r == NULL) {
        rc = HIE_ENOMEM;
    }
    if (rc == 0) {
        hie__v1__consent_revoke_reply__init(r);
        r->id = d->id;
        r->version = d->version;
        a->res->consent_revoke = r;
    }
    return rc;
}

/* ---- A40 merges ----------------------------------------------------------------------------- */

int
hie_node__consent_merge_check(node_consent_t *c, node_apply_t *a, const uint8_t *prior,
    const uint8_t *survivor, bool *fits)
{
    HIE_ASSERT(c != NULL && c->magic == CONSENT_MAGIC && fits != NULL);
    *fits = true;
    if (a->rules_ms < CONSENT_MERGE_SINCE_MS ||
        memcmp(prior, survivor, HIE_PROTO_REC_HASH_BYTES) == 0) {
        return 0; /* a self-merge is the MPI's to refuse */
    }
    struct count_ctx xp = {c, a->txn, a->arena, 0, {NULL}, 0};
    struct count_ctx xs = {c, a->txn, a->arena, 0, {NULL}, 0};
    int rc = pat_each(c, a->txn, prior, count_one, &xp);
    rc = rc ? rc : pat_each(c, a->txn, survivor, count_one, &xs);
    *fits = rc != 0 || xp.n + xs.n <= HIE_CONSENT_PER_PATIENT_MAX;
    if (rc == HIE_ELIMIT) { /* one of them holds more than a read takes already */
        *fits = false;
        return 0;
    }
    /* the prior's EUID folds into the survivor's: together no more than a decision reads */
    char *ep = hie_arena_alloc(a->arena, HIE_MPI_EUID_BYTES);
    char *es = hie_arena_alloc(a->arena, HIE_MPI_EUID_BYTES);
    if (rc == 0 && *fits && (ep == NULL || es == NULL)) {
        return HIE_ENOMEM;
    }
    size_t np = 0, ns = 0;
    int erc = rc == 0 && *fits ? hie_mpi_store_euid_of(a->mpi, a->txn, prior, a->arena, ep) : 1;
    erc = erc == 0 ? hie_mpi_store_euid_of(a->mpi, a->txn, survivor, a->arena, es) : erc;
    if (erc < 0 && erc != HIE_ENOTFOUND && erc != HIE_ELIMIT && erc != HIE_EUNAVAIL) {
        return erc; /* a storage error: the node stops */
    }
    bool both = erc == 0 && strcmp(ep, es) != 0; /* else the MPI refuses it, or no change */
    rc = both ? euid_rules(c, a, ep, &np) : rc;
    rc = both && rc == 0 ? euid_rules(c, a, es, &ns) : rc;
    *fits = *fits && (!both || rc != 0 || np + ns <= HIE_CONSENT_DIRECTIVES_MAX);
    return rc;
}

struct take_ctx {
    char (*ids)[CONSENT_ID_BYTES];
    size_t n;
};

static int
take_one(void *vctx, const char *id, size_t len)
{
    struct take_ctx *t = vctx;
    HIE_ASSERT(t->n < CONSENT_MOVE_CHUNK && len < CONSENT_ID_BYTES); /* ids_each's bounds */
    memcpy(t->ids[t->n], id, len);
    t->ids[t->n++][len] = '\0';
    return 0;
}

/* Rewrites directive id's record prefix in consent_dir to rec_hash; *buf (heap, *cap bytes)
 * holds the copy (a put may move the page the value was read from). */
static int
dir_rehome(node_consent_t *c, node_apply_t *a, const char *id, const uint8_t *rec_hash,
    uint8_t **buf, size_t *cap)
{
    MDB_val k = {strlen(id), (void *)(uintptr_t)id}, v;
    int rc = mdb_rc(mdb_get(a->txn, c->dir, &k, &v));
    if (rc != 0 || v.mv_size <= HIE_PROTO_REC_HASH_BYTES) {
        return rc == 0 || rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
    }
    if (v.mv_size > *cap) {
        uint8_t *nb = hie_mem_alloc(v.mv_size);
        if (nb == NULL) {
            return HIE_ENOMEM;
        }
        hie_mem_free(*buf, *cap);
        *buf = nb;
        *cap = v.mv_size;
    }
    memcpy(*buf, v.mv_data, v.mv_size);
    memcpy(*buf, rec_hash, HIE_PROTO_REC_HASH_BYTES);
    MDB_val nv = {v.mv_size, *buf};
    return mdb_rc(mdb_put(a->txn, c->dir, &k, &nv, 0));
}

/* Moves every id of prior in dbi (pat or hist) to survivor, a chunk at a time; from pat, a
 * revoked one (left there before consent_hist existed) goes to survivor's hist. */
static int
move_ids(node_consent_t *c, node_apply_t *a, MDB_dbi dbi, const uint8_t *prior,
    const uint8_t *survivor, uint8_t **buf, size_t *cap)
{
    char ids[CONSENT_MOVE_CHUNK][CONSENT_ID_BYTES];
    MDB_val pk = {HIE_PROTO_REC_HASH_BYTES, (void *)(uintptr_t)prior};
    MDB_val sk = {HIE_PROTO_REC_HASH_BYTES, (void *)(uintptr_t)survivor};
    int rc = 0;
    for (;;) {
        struct take_ctx t = {ids, 0};
        rc = ids_each(a->txn, dbi, prior, CONSENT_MOVE_CHUNK, true, take_one, &t);
        if (rc != 0 || t.n == 0) {
            return rc;
        }
        for (size_t i = 0; rc == 0 && i < t.n; i++) {
            MDB_dbi to = dbi;
            Hie__V1__ConsentDirective *d = NULL;
            if (dbi == c->pat) {
                rc = dir_get(c, a->txn, ids[i], a->arena, &d, NULL);
                to = rc == 0 && d->revoked_ms != 0 ? c->hist : c->pat;
            }
            rc = rc ? rc : dir_rehome(c, a, ids[i], survivor, buf, cap);
            MDB_val v = {strlen(ids[i]), ids[i]};
            int prc = rc ? rc : mdb_put(a->txn, to, &sk, &v, MDB_NODUPDATA);
            rc = rc ? rc : (prc == MDB_KEYEXIST ? 0 : mdb_rc(prc));
            rc = rc ? rc : mdb_rc(mdb_del(a->txn, dbi, &pk, &v));
        }
        if (rc != 0) {
            return rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
        }
    }
}

int
hie_node__consent_merge(node_consent_t *c, node_apply_t *a, const uint8_t *prior,
    const uint8_t *survivor)
{
    HIE_ASSERT(c != NULL && c->magic == CONSENT_MAGIC && prior != NULL && survivor != NULL);
    if (a->rules_ms < CONSENT_MERGE_SINCE_MS ||
        memcmp(prior, survivor, HIE_PROTO_REC_HASH_BYTES) == 0) {
        return 0;
    }
    size_t n = 0;
    uint8_t *buf = NULL;
    size_t cap = 0;
    /* the survivor's own revoked ids left in pat first: its pat then holds only what is in
     * force, and the two together fit (hie_node__consent_merge_check) */
    int rc = in_force_count(c, a, survivor, true, &n, NULL);
    rc = rc == HIE_ELIMIT ? 0 : rc; /* over what a read takes: left as it is */
    rc = rc ? rc : move_ids(c, a, c->pat, prior, survivor, &buf, &cap);
    rc = rc ? rc : move_ids(c, a, c->hist, prior, survivor, &buf, &cap);
    hie_mem_free(buf, cap);
    return rc;
}

/* Up to CONSENT_MIGRATE_CHUNK distinct records of dbi (from its first one, or after from once
 * *started) that the MPI has merged: into prior[], the records they live on as into
 * survivor[]. from is left at the last record looked at; *end when dbi has no more. */
static int
merged_scan(node_apply_t *a, MDB_dbi dbi, uint8_t from[HIE_PROTO_REC_HASH_BYTES],
    bool *started, bool *end, uint8_t (*prior)[HIE_PROTO_REC_HASH_BYTES],
    uint8_t (*survivor)[HIE_PROTO_REC_HASH_BYTES], size_t *n)
{
    MDB_cursor *cur = NULL;
    MDB_val k = {HIE_PROTO_REC_HASH_BYTES, from}, v;
    int rc = mdb_rc(mdb_cursor_open(a->txn, dbi, &cur));
    int mrc = 0;
    if (rc == 0 && !*started) {
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        *started = true;
    } else if (rc == 0) {
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (mrc == 0 && k.mv_size == HIE_PROTO_REC_HASH_BYTES &&
            memcmp(k.mv_data, from, HIE_PROTO_REC_HASH_BYTES) == 0) {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP); /* looked at last pass */
        }
    }
    *n = 0;
    for (size_t seen = 0; rc == 0 && mrc == 0 && seen < CONSENT_MIGRATE_CHUNK; seen++) {
        if (k.mv_size != HIE_PROTO_REC_HASH_BYTES) {
            rc = HIE_ECORRUPT;
            break;
        }
        memcpy(from, k.mv_data, HIE_PROTO_REC_HASH_BYTES);
        uint8_t live[HIE_PROTO_REC_HASH_BYTES];
        int src = hie_mpi_store_surviving(a->mpi, a->txn, from, a->arena, live);
        if (src == 0 && memcmp(live, from, sizeof(live)) != 0) {
            memcpy(prior[*n], from, HIE_PROTO_REC_HASH_BYTES);
            memcpy(survivor[(*n)++], live, sizeof(live));
        } else if (src != 0 && src != HIE_ENOTFOUND && src != HIE_ELIMIT) {
            rc = src; /* a record unknown or chained too deep keeps its directives */
        }
        mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP) : 0;
    }
    *end = rc == 0 && mrc == MDB_NOTFOUND;
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = HIE_ESTORAGE;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

int
hie_node__consent_migrate(node_consent_t *c, node_apply_t *a)
{
    HIE_ASSERT(c != NULL && c->magic == CONSENT_MAGIC);
    if (c->migrated || a->rules_ms < CONSENT_MERGE_SINCE_MS) {
        return 0;
    }
    if (!hie_mpi_store_ready(a->mpi)) { /* no data key: nothing can have been filed, or... */
        MDB_stat sp, sh;
        int src = mdb_rc(mdb_stat(a->txn, c->pat, &sp));
        src = src ? src : mdb_rc(mdb_stat(a->txn, c->hist, &sh));
        if (src != 0 || sp.ms_entries != 0 || sh.ms_entries != 0) {
            return src ? src : HIE_EUNAVAIL; /* ...the key decides what moves: stop */
        }
    }
    uint8_t (*prior)[HIE_PROTO_REC_HASH_BYTES] = hie_arena_alloc(a->arena,
        2u * CONSENT_MIGRATE_CHUNK * HIE_PROTO_REC_HASH_BYTES);
    hie_arena_t *scratch = NULL; /* reset after every chunk: the store may be large */
    int rc = prior == NULL ? HIE_ENOMEM : hie_arena_create(&scratch, 1u << 20);
    if (rc != 0) {
        return rc;
    }
    uint8_t (*survivor)[HIE_PROTO_REC_HASH_BYTES] = prior + CONSENT_MIGRATE_CHUNK;
    node_apply_t ma = *a;
    ma.rules_ms = CONSENT_MERGE_SINCE_MS; /* the merges' rules, for each move below */
    ma.arena = scratch;
    const MDB_dbi dbis[2] = {c->pat, c->hist};
    size_t moved = 0;
    for (unsigned d = 0; d < 2 && rc == 0; d++) {
        uint8_t from[HIE_PROTO_REC_HASH_BYTES] = {0};
        bool started = false, end = false;
        while (rc == 0 && !end) {
            size_t n = 0;
            rc = merged_scan(&ma, dbis[d], from, &started, &end, prior, survivor, &n);
            for (size_t i = 0; rc == 0 && i < n; i++, moved++) {
                rc = hie_node__consent_merge(c, &ma, prior[i], survivor[i]);
            }
            hie_arena_reset(scratch);
        }
    }
    hie_arena_destroy(&scratch);
    MDB_val k = {sizeof(CONSENT_META_MIGRATED) - 1, (void *)(uintptr_t)CONSENT_META_MIGRATED};
    MDB_val v = {1, (void *)(uintptr_t)"1"};
    rc = rc ? rc : mdb_rc(mdb_put(a->txn, c->meta, &k, &v, 0));
    if (rc == 0) {
        c->migrated = true;
        hie_log_info("consent", "directives left on merged records moved to the records they "
            "live on as", " records=%zu index=%lu", moved, (unsigned long)a->index);
    }
    return rc;
}

int
hie_node__consent_apply(node_consent_t *c, node_apply_t *a)
{
    HIE_ASSERT(c != NULL && c->magic == CONSENT_MAGIC);
    HIE_ASSERT(a != NULL && a->cmd != NULL);
    switch (a->cmd->body_case) {
    case HIE__V1__COMMAND__BODY_CONSENT_SUBMIT:
        return apply_submit(c, a);
    case HIE__V1__COMMAND__BODY_CONSENT_REVOKE:
        return apply_revoke(c, a);
    default:
        HIE_ASSERT(!"not a consent command");
        return HIE_EINVAL;
    }
}
