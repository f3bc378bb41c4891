/*
 * subs_state.c - subscriptions and ADT fan-out in the replicated state (issue 5): apply of
 * subscribe, roster, unsubscribe and adt on the log thread, and the readers the ADT exchange
 * uses to find who to notify.
 *
 * Databases (state environment):
 *   subs        subscription id -> Subscription (its event_number is the last one issued)
 *   sub_org     dupsort: org -> subscription id          (an organization's subscriptions)
 *   sub_all     dupsort: org -> subscription id          (scope ALL_MY_PATIENTS)
 *   sub_rec     dupsort: record identity -> subscription id   (roster: the subscriber's MRNs)
 *   sub_roster  dupsort: subscription id -> record identity   (to undo sub_rec)
 *   adt_visit   sender || 0 || visit id || 0 || event [|| the sender's record of the patient
 *               (16), since VISIT_PATIENT_SINCE_MS] -> subscription ids notified, 0-separated
 *   adt_visit_at  the same key -> the rules-clock time (8 BE) it was last written (since
 *               VISIT_PRUNE_SINCE_MS)
 *   adt_visit_t time (8 BE) || the same key -> "" (oldest first: rows past
 *               HIE_ADT_VISIT_RETAIN_MS are deleted, a few per ADT apply)
 *   sub_log     subscription id || 0 || event number(8 BE) -> the notification as queued
 *               (retained for replays: the last HIE_SUBSCRIPTION_RETAIN_MAX per subscription)
 * Rosters hold keyed record identities of the subscriber's own MRNs (no plaintext MRN): a
 * patient not in the MPI yet matches once fed. Apply checks before it writes.
 */
#include "node_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define SUBS_MAGIC 0x53554253u /* "SUBS" */
#define SUB_ID_BYTES 32u
#define VISIT_KEY_BYTES (2u * HIE_ORG_ID_BYTES_MAX + 8u + HIE_PROTO_REC_HASH_BYTES)
#define VISIT_VAL_BYTES_MAX (HIE_ADT_NOTICES_MAX * SUB_ID_BYTES)
/* 2026-11-30T19:00Z: for commands stamped since (their own clock: an older log replays as it
 * applied), a visit's recipients are merged, not replaced (and a visit nobody got keeps no
 * row), and an unsubscribe also drops the notifications the subscription kept for replays
 * (sealed patient data it no longer needs). */
#define VISIT_MERGE_SINCE_MS 1796065200000ll
/* 2026-11-30T19:31:45Z, when that began (commit 886cc2f): a visit nobody got keeps no row;
 * the binaries of 19:00 until then kept one, and a replay must do as they did. */
#define VISIT_NO_EMPTY_ROW_SINCE_MS 1796067105000ll
#define UNSUBSCRIBE_DROPS_LOG_SINCE_MS 1796065200000ll
/* 2026-12-01T03:00Z: a withheld notice is audited even when its subscription ended before
 * apply (the decision was made), and a replayed notice a full queue did not take is not (it
 * was recorded as disclosed). */
#define NOTICE_AUDIT_SINCE_MS 1796094000000ll
/* 2026-12-01T03:00Z: an A40 merge moves the prior record's roster entries to the survivor. */
#define ROSTER_MERGE_SINCE_MS 1796094000000ll
#define ROSTER_MERGE_SUBS_MAX (HIE_SUBSCRIPTIONS_PER_ORG_MAX * 16u)
/* 2026-12-01T06:00Z: visit rows are stamped and deleted once older than
 * HIE_ADT_VISIT_RETAIN_MS (they were kept for good: one per notified visit, from normal
 * traffic). Rows written before stay. */
#define VISIT_PRUNE_SINCE_MS 1796104800000ll
/* From the same time a visit row names the patient (the sender's record) in its key: a cancel
 * of a visit reaches only whoever got the original about the same patient (after A40 merges:
 * the record it lives on as). A visit id reused for another patient reached a subscriber who
 * follows both with a cancel for an admission it never got. */
#define VISIT_PATIENT_SINCE_MS 1796104800000ll

struct node_subs {
    uint32_t magic;
    MDB_dbi subs, by_org, all, rec, roster, visit, log, visit_at, visit_t;
};

static int
mdb_rc(int rc)
{
    return rc == 0 ? 0 : (rc == MDB_NOTFOUND ? HIE_ENOTFOUND : HIE_ESTORAGE);
}

int
hie_node__subs_open(node_subs_t **out, MDB_env *env)
{
    HIE_ASSERT(out != NULL && env != NULL);
    *out = NULL;
    node_subs_t *s = hie_mem_calloc(1, sizeof(*s));
    if (s == NULL) {
        return HIE_ENOMEM;
    }
    s->magic = SUBS_MAGIC;
    const unsigned dup = MDB_CREATE | MDB_DUPSORT;
    const node_dbi_spec_t dbis[] = {{"subs", MDB_CREATE, &s->subs},
        {"sub_org", dup, &s->by_org}, {"sub_all", dup, &s->all}, {"sub_rec", dup, &s->rec},
        {"sub_roster", dup, &s->roster}, {"adt_visit", MDB_CREATE, &s->visit},
        {"sub_log", MDB_CREATE, &s->log}, {"adt_visit_at", MDB_CREATE, &s->visit_at},
        {"adt_visit_t", MDB_CREATE, &s->visit_t}};
    int rc = hie_node__dbis_open(env, dbis, HIE_ARRAY_LEN(dbis));
    if (rc != 0) {
        hie_node__subs_close(&s);
        return rc;
    }
    *out = s;
    return 0;
}

void
hie_node__subs_close(node_subs_t **sp)
{
    HIE_ASSERT(sp != NULL);
    if (*sp == NULL) {
        return;
    }
    HIE_ASSERT((*sp)->magic == SUBS_MAGIC);
    (*sp)->magic = 0;
    hie_mem_free(*sp, sizeof(**sp));
    *sp = NULL;
}

/* ---- reading -------------------------------------------------------------------------------- */

int
hie_node__subs_get(node_subs_t *s, MDB_txn *txn, const char *id, hie_arena_t *arena,
    Hie__V1__Subscription **out)
{
    HIE_ASSERT(s != NULL && s->magic == SUBS_MAGIC);
    MDB_val k = {strlen(id), (void *)(uintptr_t)id}, v;
    ProtobufCMessage *m = NULL;
    *out = NULL;
    int rc = strlen(id) < SUB_ID_BYTES ? mdb_rc(mdb_get(txn, s->subs, &k, &v)) : HIE_ENOTFOUND;
    rc = rc ? rc : (hie_proto_unpack(&hie__v1__subscription__descriptor,
        hie_span(v.mv_data, v.mv_size), arena, &m) ? HIE_ECORRUPT : 0);
    *out = rc == 0 ? (Hie__V1__Subscription *)m : NULL;
    return rc;
}

/* Calls fn with each dup value of key in dbi (at most max). */
static int
dups_each(MDB_txn *txn, MDB_dbi dbi, hie_span_t key, size_t max,
    int (*fn)(void *ctx, hie_span_t val), void *ctx)
{
    MDB_cursor *cur = NULL;
    MDB_val k = {key.len, (void *)(uintptr_t)key.ptr}, v;
    int rc = mdb_rc(mdb_cursor_open(txn, dbi, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_KEY) : 0;
    for (size_t i = 0; rc == 0 && mrc == 0 && i < max; i++) {
        rc = fn(ctx, hie_span(v.mv_data, v.mv_size));
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

int
hie_node__subs_for_record(node_subs_t *s, MDB_txn *txn, const uint8_t *rec_hash,
    int (*fn)(void *ctx, hie_span_t id), void *ctx)
{
    HIE_ASSERT(s != NULL && s->magic == SUBS_MAGIC);
    return dups_each(txn, s->rec, hie_span(rec_hash, HIE_PROTO_REC_HASH_BYTES),
        HIE_SUBSCRIPTIONS_PER_ORG_MAX * 16u, fn, ctx);
}

int
hie_node__subs_all_of(node_subs_t *s, MDB_txn *txn, const char *org,
    int (*fn)(void *ctx, hie_span_t id), void *ctx)
{
    HIE_ASSERT(s != NULL && s->magic == SUBS_MAGIC);
    return dups_each(txn, s->all, hie_span((const uint8_t *)org, strlen(org)),
        HIE_SUBSCRIPTIONS_PER_ORG_MAX, fn, ctx);
}

int
hie_node__subs_scan(node_subs_t *s, MDB_txn *txn, const char *org, size_t max,
    hie_arena_t *arena, int (*fn)(void *ctx, const Hie__V1__Subscription *sub), void *ctx)
{
    HIE_ASSERT(s != NULL && s->magic == SUBS_MAGIC);
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_rc(mdb_cursor_open(txn, s->subs, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    for (size_t seen = 0; rc == 0 && mrc == 0 && seen < max;) {
        ProtobufCMessage *m = NULL;
        rc = hie_proto_unpack(&hie__v1__subscription__descriptor,
            hie_span(v.mv_data, v.mv_size), arena, &m) ? HIE_ECORRUPT : 0;
        const Hie__V1__Subscription *sub = (const Hie__V1__Subscription *)m;
        if (rc == 0 && (org == NULL || strcmp(sub->org_id, org) == 0)) {
            seen++;
            rc = fn(ctx, sub);
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    rc = rc > 0 ? 0 : rc;
    return rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
}

static size_t
visit_key(uint8_t *k, const char *sender, const char *visit, int event)
{
    size_t a = strlen(sender), b = strlen(visit);
    HIE_ASSERT(a + b + 3 <= VISIT_KEY_BYTES);
    memcpy(k, sender, a);
    k[a] = 0;
    memcpy(k + a + 1, visit, b);
    k[a + 1 + b] = 0;
    k[a + 2 + b] = (uint8_t)event;
    return a + b + 3;
}

int
hie_node__subs_visit_each(node_subs_t *s, MDB_txn *txn, const char *sender, const char *visit,
    int event, int (*fn)(void *ctx, hie_span_t patient, hie_span_t ids), void *ctx)
{
    HIE_ASSERT(s != NULL && s->magic == SUBS_MAGIC);
    uint8_t k[VISIT_KEY_BYTES];
    size_t n = visit_key(k, sender, visit, event);
    MDB_val key = {n, k}, v;
    MDB_cursor *cur = NULL;
    int rc = mdb_rc(mdb_cursor_open(txn, s->visit, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE) : MDB_NOTFOUND;
    /* the row without a patient (before VISIT_PATIENT_SINCE_MS), then one per patient */
    for (unsigned i = 0; rc == 0 && mrc == 0 && i < 1 + HIE_ADT_NOTICES_MAX; i++) {
        if (key.mv_size < n || memcmp(key.mv_data, k, n) != 0 ||
            (key.mv_size != n && key.mv_size != n + HIE_PROTO_REC_HASH_BYTES)) {
            break;
        }
        rc = fn(ctx, hie_span((const uint8_t *)key.mv_data + n, key.mv_size - n),
            hie_span(v.mv_data, v.mv_size));
        mrc = rc == 0 ? mdb_cursor_get(cur, &key, &v, MDB_NEXT) : 0;
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = HIE_ESTORAGE;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc > 0 ? 0 : rc;
}

/* ---- apply ---------------------------------------------------------------------------------- */

static int
sub_put(node_subs_t *s, node_apply_t *a, const Hie__V1__Subscription *sub)
{
    MDB_val k = {strlen(sub->id), sub->id};
    size_t n = protobuf_c_message_get_packed_size(&sub->base);
    MDB_val v = {n, NULL};
    int rc = mdb_rc(mdb_put(a->txn, s->subs, &k, &v, MDB_RESERVE));
    if (rc == 0) {
        HIE_ASSERT(protobuf_c_message_pack(&sub->base, v.mv_data) == n);
    }
    return rc;
}

static int
dup_put(MDB_txn *txn, MDB_dbi dbi, hie_span_t key, hie_span_t val)
{
    MDB_val k = {key.len, (void *)(uintptr_t)key.ptr}, v = {val.len, (void *)(uintptr_t)val.ptr};
    int rc = mdb_put(txn, dbi, &k, &v, MDB_NODUPDATA);
    return rc == MDB_KEYEXIST ? HIE_EAGAIN : mdb_rc(rc); /* EAGAIN: already there */
}

static int
dup_del(MDB_txn *txn, MDB_dbi dbi, hie_span_t key, hie_span_t val)
{
    MDB_val k = {key.len, (void *)(uintptr_t)key.ptr}, v = {val.len, (void *)(uintptr_t)val.ptr};
    int rc = mdb_del(txn, dbi, &k, &v);
    return rc == MDB_NOTFOUND ? HIE_ENOTFOUND : mdb_rc(rc);
}

static int
count_one(void *ctx, hie_span_t val)
{
    (void)val;
    (*(size_t *)ctx)++;
    return 0;
}

/* Adds (or removes) roster identities; size tracks the roster. */
static int
roster_change(node_subs_t *s, node_apply_t *a, Hie__V1__Subscription *sub,
    const ProtobufCBinaryData *h, size_t n, bool add)
{
    hie_span_t id = hie_span((const uint8_t *)sub->id, strlen(sub->id));
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        hie_span_t hash = hie_span(h[i].data, h[i].len);
        rc = add ? dup_put(a->txn, s->roster, id, hash) : dup_del(a->txn, s->roster, id, hash);
        if (rc == HIE_EAGAIN || rc == HIE_ENOTFOUND) {
            rc = 0; /* already in (or not in) the roster */
            continue;
        }
        rc = rc ? rc : (add ? dup_put(a->txn, s->rec, hash, id) : dup_del(a->txn, s->rec, hash,
            id));
        rc = rc == HIE_EAGAIN || rc == HIE_ENOTFOUND ? 0 : rc;
        sub->roster_size = add ? sub->roster_size + 1 : sub->roster_size - 1;
    }
    return rc;
}

struct sub_ids {
    char (*ids)[SUB_ID_BYTES];
    size_t n;
};

static int
sub_ids_add(void *vctx, hie_span_t id)
{
    struct sub_ids *x = vctx;
    if (id.len == 0 || id.len >= SUB_ID_BYTES || x->n == ROSTER_MERGE_SUBS_MAX) {
        return id.len == 0 || id.len >= SUB_ID_BYTES ? HIE_ECORRUPT : 0;
    }
    memcpy(x->ids[x->n], id.ptr, id.len);
    x->ids[x->n++][id.len] = '\0';
    return 0;
}

int
hie_node__subs_merge(node_subs_t *s, node_apply_t *a, const uint8_t *prior,
    const uint8_t *survivor)
{
    HIE_ASSERT(s != NULL && s->magic == SUBS_MAGIC);
    if (a->rules_ms < ROSTER_MERGE_SINCE_MS) {
        return 0;
    }
    struct sub_ids x = {hie_arena_alloc(a->arena, ROSTER_MERGE_SUBS_MAX * SUB_ID_BYTES), 0};
    if (x.ids == NULL) {
        return HIE_ENOMEM;
    }
    /* the ids first: the moves below change the index being read */
    int rc = dups_each(a->txn, s->rec, hie_span(prior, HIE_PROTO_REC_HASH_BYTES),
        ROSTER_MERGE_SUBS_MAX, sub_ids_add, &x);
    ProtobufCBinaryData from = {HIE_PROTO_REC_HASH_BYTES, (uint8_t *)(uintptr_t)prior};
    ProtobufCBinaryData to = {HIE_PROTO_REC_HASH_BYTES, (uint8_t *)(uintptr_t)survivor};
    for (size_t i = 0; rc == 0 && i < x.n; i++) {
        Hie__V1__Subscription *sub = NULL;
        rc = hie_node__subs_get(s, a->txn, x.ids[i], a->arena, &sub);
        if (rc == HIE_ENOTFOUND) {
            rc = 0;
            continue;
        }
        rc = rc ? rc : roster_change(s, a, sub, &from, 1, false);
        rc = rc ? rc : roster_change(s, a, sub, &to, 1, true);
        rc = rc ? rc : sub_put(s, a, sub);
    }
    return rc;
}

static int
apply_subscribe(node_subs_t *s, node_apply_t *a)
{
    const Hie__V1__SubscribeCommand *sc = a->cmd->subscribe;
    Hie__V1__Subscription *sub = sc->subscription;
    size_t have = 0;
    hie_span_t org = hie_span((const uint8_t *)sub->org_id, strlen(sub->org_id));
    int rc = dups_each(a->txn, s->by_org, org, HIE_SUBSCRIPTIONS_PER_ORG_MAX + 1, count_one,
        &have);
    if (rc != 0) {
        return rc;
    }
    if (have >= HIE_SUBSCRIPTIONS_PER_ORG_MAX) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "subscription",
            "the organization has the most subscriptions (64); remove one first");
    }
    char *id = hie_arena_alloc(a->arena, SUB_ID_BYTES);
    if (id == NULL) {
        return HIE_ENOMEM;
    }
    snprintf(id, SUB_ID_BYTES, "sub-%" PRIu64, a->index);
    sub->id = id;
    sub->event_number = 0;
    sub->created_ms = a->cmd->time_ms;
    sub->roster_size = 0;
    hie_span_t sid = hie_span((const uint8_t *)id, strlen(id));
    rc = dup_put(a->txn, s->by_org, org, sid);
    if (rc == 0 && sub->scope == HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_ALL_MY_PATIENTS) {
        rc = dup_put(a->txn, s->all, org, sid);
    }
    rc = rc ? rc : roster_change(s, a, sub, sc->roster_rec_hashes, sc->n_roster_rec_hashes,
        true);
    rc = rc ? rc : sub_put(s, a, sub);
    a->res->subscription_id = id;
    return rc;
}

static int
apply_roster(node_subs_t *s, node_apply_t *a)
{
    const Hie__V1__RosterCommand *rc_ = a->cmd->roster;
    Hie__V1__Subscription *sub = NULL;
    int rc = hie_node__subs_get(s, a->txn, rc_->subscription_id, a->arena, &sub);
    if (rc == HIE_ENOTFOUND || (rc == 0 && strcmp(sub->org_id, a->cmd->requester) != 0)) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "subscription_id",
            "no such subscription of this organization");
    }
    if (rc == 0 && sub->roster_size + rc_->n_add > HIE_SUBSCRIPTION_ROSTER_MAX) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "add_mrns",
            "a roster holds at most 100,000 patients");
    }
    rc = rc ? rc : roster_change(s, a, sub, rc_->add, rc_->n_add, true);
    rc = rc ? rc : roster_change(s, a, sub, rc_->remove, rc_->n_remove, false);
    rc = rc ? rc : sub_put(s, a, sub);
    a->res->acknowledged = sub != NULL ? sub->roster_size : 0;
    return rc;
}

static size_t log_key(uint8_t *k, const char *sub_id, uint64_t event);

/* Deletes every notification sub_id kept for replays (at most the retain limit). */
static int
log_drop(node_subs_t *s, node_apply_t *a, const char *sub_id)
{
    uint8_t k[SUB_ID_BYTES + 9];
    size_t prefix = log_key(k, sub_id, 0) - 8; /* "id\0" */
    MDB_cursor *cur = NULL;
    MDB_val key = {prefix + 8, k}, v;
    int rc = mdb_rc(mdb_cursor_open(a->txn, s->log, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE) : MDB_NOTFOUND;
    for (unsigned i = 0; rc == 0 && mrc == 0 && i <= HIE_SUBSCRIPTION_RETAIN_LIMIT; i++) {
        if (key.mv_size != prefix + 8 || memcmp(key.mv_data, k, prefix) != 0) {
            break; /* past this subscription's entries */
        }
        rc = mdb_rc(mdb_cursor_del(cur, 0));
        key = (MDB_val){prefix + 8, k}; /* seek again: the first one left */
        mrc = rc == 0 ? mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE) : MDB_NOTFOUND;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc != 0 ? rc : mrc != 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : 0;
}

static int
apply_unsubscribe(node_subs_t *s, node_apply_t *a)
{
    const char *id = a->cmd->unsubscribe->subscription_id;
    Hie__V1__Subscription *sub = NULL;
    int rc = hie_node__subs_get(s, a->txn, id, a->arena, &sub);
    bool operator = strcmp(a->cmd->requester, NODE_OPERATOR_ID) == 0;
    if (rc == HIE_ENOTFOUND || (rc == 0 && !operator && strcmp(sub->org_id,
        a->cmd->requester) != 0)) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "subscription_id",
            "no such subscription of this organization");
    }
    if (rc != 0) {
        return rc; /* a storage error: the node stops (fatal) rather than guess */
    }
    hie_span_t sid = hie_span((const uint8_t *)sub->id, strlen(sub->id));
    hie_span_t org = hie_span((const uint8_t *)sub->org_id, strlen(sub->org_id));
    MDB_cursor *cur = NULL;
    MDB_val k = {sid.len, (void *)(uintptr_t)sid.ptr}, v;
    rc = rc ? rc : mdb_rc(mdb_cursor_open(a->txn, s->roster, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_KEY) : MDB_NOTFOUND;
    for (unsigned i = 0; rc == 0 && mrc == 0 && i <= HIE_SUBSCRIPTION_ROSTER_MAX; i++) {
        rc = dup_del(a->txn, s->rec, hie_span(v.mv_data, v.mv_size), sid);
        rc = rc == HIE_ENOTFOUND ? 0 : rc;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    MDB_val key = {sid.len, (void *)(uintptr_t)sid.ptr};
    int d1 = mdb_del(a->txn, s->roster, &key, NULL), d2 = mdb_del(a->txn, s->subs, &key, NULL);
    rc = rc ? rc : (d1 != 0 && d1 != MDB_NOTFOUND) || d2 != 0 ? HIE_ESTORAGE : 0;
    int d3 = rc == 0 ? dup_del(a->txn, s->by_org, org, sid) : 0;
    int d4 = rc == 0 ? dup_del(a->txn, s->all, org, sid) : 0;
    rc = rc ? rc : (d3 != 0 && d3 != HIE_ENOTFOUND) || (d4 != 0 && d4 != HIE_ENOTFOUND)
        ? HIE_ESTORAGE : 0;
    return rc == 0 && a->rules_ms >= UNSUBSCRIBE_DROPS_LOG_SINCE_MS
        ? log_drop(s, a, sub->id) : rc;
}

static size_t
log_key(uint8_t *k, const char *sub_id, uint64_t event)
{
    size_t n = strlen(sub_id);
    HIE_ASSERT(n < SUB_ID_BYTES);
    memcpy(k, sub_id, n);
    k[n] = 0;
    hie_store_be64(k + n + 1, event);
    return n + 9;
}

/* How many notifications sub keeps for replays. */
static uint64_t
sub_retain(const Hie__V1__Subscription *sub)
{
    return sub->retain_events != 0 && sub->retain_events <= HIE_SUBSCRIPTION_RETAIN_LIMIT
        ? sub->retain_events : HIE_SUBSCRIPTION_RETAIN_MAX;
}

/* Keeps the notification for replays, and forgets the one that falls out of the window. */
static int
log_retain(node_subs_t *s, node_apply_t *a, const Hie__V1__Subscription *sub,
    const Hie__V1__QueuedMessage *m)
{
    const uint64_t keep = sub_retain(sub);
    uint8_t k[SUB_ID_BYTES + 9];
    MDB_val key = {log_key(k, m->subscription_id, m->event_number), k};
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    MDB_val v = {n, NULL};
    int rc = mdb_rc(mdb_put(a->txn, s->log, &key, &v, MDB_RESERVE));
    if (rc == 0) {
        HIE_ASSERT(protobuf_c_message_pack(&m->base, v.mv_data) == n);
    }
    if (rc == 0 && m->event_number > keep) {
        MDB_val old = {log_key(k, m->subscription_id, m->event_number - keep), k};
        int drc = mdb_del(a->txn, s->log, &old, NULL);
        rc = drc == 0 || drc == MDB_NOTFOUND ? 0 : HIE_ESTORAGE;
    }
    return rc;
}

/* One notice: numbered in its subscription, queued, audited. Returns 1 when queued. */
static int
notice_apply(node_subs_t *s, node_queue_t *q, node_audit_t *au, node_apply_t *a,
    Hie__V1__Notice *n)
{
    Hie__V1__Subscription *sub = NULL;
    int rc = hie_node__subs_get(s, a->txn, n->subscription_id, a->arena, &sub);
    if (rc == HIE_ENOTFOUND) {
        /* unsubscribed meanwhile: nothing queued, nothing disclosed; a refusal is still
         * recorded (the decision was made and is in the accounting) */
        return n->message == NULL && a->rules_ms >= NOTICE_AUDIT_SINCE_MS
            ? hie_node__audit_append(au, a, n->audit) : 0;
    }
    if (rc != 0 || n->message == NULL) {
        return rc != 0 ? rc : hie_node__audit_append(au, a, n->audit); /* withheld */
    }
    uint64_t seq = 0;
    Hie__V1__QueuedMessage *m = n->message;
    m->subscription_id = sub->id;
    m->event_number = sub->event_number + 1;
    m->accepted_ms = a->cmd->time_ms;
    rc = hie_node__queue_enqueue(q, a, m, &seq);
    if (rc == HIE_ELIMIT) {
        /* the subscriber's queue is full: this one is dropped (nothing disclosed, so no audit
         * record), the others go on; said so, since the subscriber cannot see the gap */
        hie_log_warn("adt", "notification dropped: the subscriber's queue is full",
            " subscription=%s org=%s index=%lu", sub->id, sub->org_id, a->index);
        return 0;
    }
    sub->event_number++;
    rc = rc ? rc : sub_put(s, a, sub);
    rc = rc ? rc : log_retain(s, a, sub, m);
    rc = rc ? rc : hie_node__audit_append(au, a, n->audit);
    return rc != 0 ? rc : 1;
}

/* A repeated admission or discharge of a visit adds its recipients to those of the earlier
 * ones (it replaced them, so a cancel missed whoever got only the first): ids (ids_len bytes
 * of NUL-ended subscription ids, VISIT_VAL_BYTES_MAX room) gets the stored ones it lacks. */
static int
visit_merge(node_subs_t *s, node_apply_t *a, MDB_val *key, char *ids, size_t *ids_len)
{
    MDB_val v;
    int rc = mdb_rc(mdb_get(a->txn, s->visit, key, &v));
    if (rc != 0) {
        return rc == HIE_ENOTFOUND ? 0 : rc;
    }
    const char *old = v.mv_data;
    for (size_t o = 0; o < v.mv_size;) {
        size_t l = strnlen(old + o, v.mv_size - o);
        bool have = false;
        for (size_t p = 0; p < *ids_len && !have;) {
            size_t m = strlen(ids + p);
            have = m == l && memcmp(ids + p, old + o, l) == 0;
            p += m + 1;
        }
        if (!have && l > 0 && *ids_len + l + 1 <= VISIT_VAL_BYTES_MAX) {
            memcpy(ids + *ids_len, old + o, l);
            ids[*ids_len + l] = '\0';
            *ids_len += l + 1;
        }
        o += l + 1;
    }
    return 0;
}

/* Stamps visit row key with the rules clock: its time index entry moves to now. */
static int
visit_stamp(node_subs_t *s, node_apply_t *a, MDB_val *key)
{
    uint8_t tk[8 + VISIT_KEY_BYTES], now[8];
    HIE_ASSERT(key->mv_size <= VISIT_KEY_BYTES);
    MDB_val v, t = {8 + key->mv_size, tk};
    int rc = mdb_rc(mdb_get(a->txn, s->visit_at, key, &v));
    memcpy(tk + 8, key->mv_data, key->mv_size);
    if (rc == 0 && v.mv_size == 8) { /* its older entry in the time index goes */
        memcpy(tk, v.mv_data, 8);
        int drc = mdb_del(a->txn, s->visit_t, &t, NULL);
        rc = drc == 0 || drc == MDB_NOTFOUND ? 0 : HIE_ESTORAGE;
    }
    rc = rc == HIE_ENOTFOUND ? 0 : rc;
    hie_store_be64(now, (uint64_t)a->rules_ms);
    memcpy(tk, now, 8);
    MDB_val nv = {8, now}, empty = {0, (void *)(uintptr_t)""};
    rc = rc ? rc : mdb_rc(mdb_put(a->txn, s->visit_at, key, &nv, 0));
    return rc ? rc : mdb_rc(mdb_put(a->txn, s->visit_t, &t, &empty, 0));
}

/* Deletes up to HIE_ADT_VISIT_PRUNE_PER_APPLY visit rows last written more than
 * HIE_ADT_VISIT_RETAIN_MS before the rules clock, oldest first. */
static int
visit_prune(node_subs_t *s, node_apply_t *a)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_rc(mdb_cursor_open(a->txn, s->visit_t, &cur));
    int64_t before = a->rules_ms - (int64_t)HIE_ADT_VISIT_RETAIN_MS;
    for (unsigned i = 0; rc == 0 && i < HIE_ADT_VISIT_PRUNE_PER_APPLY; i++) {
        int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (mrc == MDB_NOTFOUND || (mrc == 0 && (k.mv_size <= 8 ||
                (int64_t)hie_load_be64(k.mv_data) >= before))) {
            break;
        }
        rc = mdb_rc(mrc);
        MDB_val vk = {k.mv_size - 8, (uint8_t *)k.mv_data + 8};
        int d1 = rc == 0 ? mdb_del(a->txn, s->visit, &vk, NULL) : 0;
        int d2 = rc == 0 ? mdb_del(a->txn, s->visit_at, &vk, NULL) : 0;
        rc = rc ? rc : (d1 != 0 && d1 != MDB_NOTFOUND) || (d2 != 0 && d2 != MDB_NOTFOUND)
            ? HIE_ESTORAGE : mdb_rc(mdb_cursor_del(cur, 0));
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

/* The sender's record of the event's patient, as its queued notices carry it (NULL: none
 * was queued, or from before they did). */
static const uint8_t *
adt_subject(const Hie__V1__AdtCommand *c)
{
    for (size_t i = 0; i < c->n_notices; i++) {
        const Hie__V1__QueuedMessage *m = c->notices[i]->message;
        if (m != NULL && m->subject_rec_hash.len == HIE_PROTO_REC_HASH_BYTES) {
            return m->subject_rec_hash.data;
        }
    }
    return NULL;
}

static int
apply_adt(node_subs_t *s, node_queue_t *q, node_audit_t *au, node_apply_t *a)
{
    const Hie__V1__AdtCommand *c = a->cmd->adt;
    static char ids[VISIT_VAL_BYTES_MAX]; /* log thread only */
    size_t ids_len = 0;
    uint32_t queued = 0;
    int rc = 0;
    for (size_t i = 0; rc >= 0 && i < c->n_notices; i++) {
        rc = notice_apply(s, q, au, a, c->notices[i]);
        if (rc == 1) {
            size_t l = strlen(c->notices[i]->subscription_id);
            HIE_ASSERT(ids_len + l + 1 <= sizeof(ids));
            memcpy(ids + ids_len, c->notices[i]->subscription_id, l + 1);
            ids_len += l + 1;
            queued++;
            rc = 0;
        }
    }
    bool original = c->event == HIE__V1__ADT_EVENT__ADT_A01 ||
                    c->event == HIE__V1__ADT_EVENT__ADT_A04 ||
                    c->event == HIE__V1__ADT_EVENT__ADT_A03;
    if (rc == 0 && original && c->visit_id != NULL && c->visit_id[0] != '\0') {
        uint8_t k[VISIT_KEY_BYTES];
        MDB_val key = {visit_key(k, c->sender_org, c->visit_id, c->event), k};
        const uint8_t *patient = a->rules_ms >= VISIT_PATIENT_SINCE_MS ? adt_subject(c) : NULL;
        if (patient != NULL) {
            memcpy(k + key.mv_size, patient, HIE_PROTO_REC_HASH_BYTES);
            key.mv_size += HIE_PROTO_REC_HASH_BYTES;
        }
        if (a->rules_ms >= VISIT_MERGE_SINCE_MS) {
            rc = visit_merge(s, a, &key, ids, &ids_len);
        }
        MDB_val v = {ids_len, ids};
        bool keep_empty = a->rules_ms < VISIT_NO_EMPTY_ROW_SINCE_MS;
        if (rc == 0 && (keep_empty || ids_len > 0)) { /* no row for a visit nobody got */
            rc = mdb_rc(mdb_put(a->txn, s->visit, &key, &v, 0)); /* for the cancel */
            rc = rc == 0 && a->rules_ms >= VISIT_PRUNE_SINCE_MS ? visit_stamp(s, a, &key) : rc;
        }
    }
    rc = rc == 0 && a->rules_ms >= VISIT_PRUNE_SINCE_MS ? visit_prune(s, a) : rc;
    a->res->acknowledged = queued;
    return rc;
}

int
hie_node__subs_replay_first(const Hie__V1__Subscription *sub, uint64_t from_event,
    uint64_t *first)
{
    uint64_t oldest = sub->event_number > sub_retain(sub)
        ? sub->event_number - sub_retain(sub) + 1 : 1;
    *first = from_event != 0 ? from_event : oldest;
    return from_event > sub->event_number ? HIE_EINVAL
        : from_event != 0 && from_event < oldest ? HIE_ENOTFOUND : 0;
}

int
hie_node__subs_retained(node_subs_t *s, MDB_txn *txn, const Hie__V1__Subscription *sub,
    uint64_t event, hie_arena_t *arena, Hie__V1__QueuedMessage **out)
{
    HIE_ASSERT(s != NULL && s->magic == SUBS_MAGIC);
    uint8_t k[SUB_ID_BYTES + 9];
    MDB_val key = {log_key(k, sub->id, event), k}, v;
    ProtobufCMessage *m = NULL;
    *out = NULL;
    int rc = mdb_rc(mdb_get(txn, s->log, &key, &v));
    rc = rc ? rc : (hie_proto_unpack(&hie__v1__queued_message__descriptor,
        hie_span(v.mv_data, v.mv_size), arena, &m) ? HIE_ECORRUPT : 0);
    *out = rc == 0 ? (Hie__V1__QueuedMessage *)m : NULL;
    return rc;
}

/* Which retained event a replay starts at: by number (must have been issued and still be
 * retained) or by time (the first retained one at or after it). */
static int
replay_start(node_apply_t *a, const Hie__V1__Subscription *sub, uint64_t *first)
{
    int rc = hie_node__subs_replay_first(sub, a->cmd->replay->from_event_number, first);
    if (rc == HIE_EINVAL) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
            "from_event_number", "this subscription never issued that event number");
    }
    if (rc == HIE_ENOTFOUND) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND,
            "from_event_number", "no longer retained");
    }
    return 0;
}

/* A replay the proposer decided: each notice's message (the retained one, same id and event
 * number) queued again, and every notice's audit record appended. */
static int
replay_decided(node_queue_t *q, node_audit_t *au, node_apply_t *a,
    const Hie__V1__Subscription *sub)
{
    const Hie__V1__ReplayCommand *rp = a->cmd->replay;
    uint32_t queued = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < rp->n_notices && i < HIE_REPLAY_NOTICES_MAX; i++) {
        Hie__V1__QueuedMessage *m = rp->notices[i]->message;
        if (m != NULL && m->recipient_org != NULL && strcmp(m->recipient_org, sub->org_id) == 0
            && m->subscription_id != NULL && strcmp(m->subscription_id, sub->id) == 0) {
            uint64_t seq = 0;
            rc = hie_node__queue_enqueue(q, a, m, &seq);
            /* a full queue: not queued, so nothing disclosed and (since the rule) no record */
            bool dropped = rc == HIE_ELIMIT && a->rules_ms >= NOTICE_AUDIT_SINCE_MS;
            rc = rc == HIE_ELIMIT ? 0 : rc;
            queued += seq != 0;
            if (dropped) {
                continue;
            }
        }
        rc = rc ? rc : hie_node__audit_append(au, a, rp->notices[i]->audit);
    }
    a->res->acknowledged = queued;
    return rc;
}

static int
apply_replay(node_subs_t *s, node_queue_t *q, node_audit_t *au, node_apply_t *a)
{
    const Hie__V1__ReplayCommand *rp = a->cmd->replay;
    Hie__V1__Subscription *sub = NULL;
    int rc = hie_node__subs_get(s, a->txn, rp->subscription_id, a->arena, &sub);
    if (rc == HIE_ENOTFOUND || (rc == 0 && strcmp(sub->org_id, a->cmd->requester) != 0)) {
        return node_apply_reject(a, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "subscription_id",
            "no such subscription of this organization");
    }
    uint64_t first = 0;
    rc = rc ? rc : replay_start(a, sub, &first);
    if (rc != 0 || a->res->code != 0) {
        return rc;
    }
    if (rp->decided) {
        return replay_decided(q, au, a, sub);
    }
    uint32_t queued = 0; /* logged before replays were decided: the retained log as it is */
    for (uint64_t ev = first; rc == 0 && ev <= sub->event_number &&
         queued < HIE_DELIVERY_REDRIVE_MAX; ev++) {
        Hie__V1__QueuedMessage *qm = NULL;
        rc = hie_node__subs_retained(s, a->txn, sub, ev, a->arena, &qm);
        if (rc == HIE_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc == 0 && (rp->from_ms == 0 || qm->accepted_ms >= rp->from_ms)) {
            uint64_t seq = 0;
            rc = hie_node__queue_enqueue(q, a, qm, &seq);
            rc = rc == HIE_ELIMIT ? 0 : rc; /* a full queue stops the replay there */
            queued += seq != 0;
        }
    }
    a->res->acknowledged = queued;
    return rc;
}

int
hie_node__subs_apply(node_subs_t *s, node_queue_t *q, node_audit_t *au, node_apply_t *a)
{
    HIE_ASSERT(s != NULL && s->magic == SUBS_MAGIC);
    HIE_ASSERT(a != NULL && a->cmd != NULL);
    switch (a->cmd->body_case) {
    case HIE__V1__COMMAND__BODY_SUBSCRIBE:
        return apply_subscribe(s, a);
    case HIE__V1__COMMAND__BODY_ROSTER:
        return apply_roster(s, a);
    case HIE__V1__COMMAND__BODY_UNSUBSCRIBE:
        return apply_unsubscribe(s, a);
    case HIE__V1__COMMAND__BODY_ADT:
        return apply_adt(s, q, au, a);
    case HIE__V1__COMMAND__BODY_REPLAY:
        return apply_replay(s, q, au, a);
    default:
        HIE_ASSERT(!"not a subscription command");
        return HIE_EINVAL;
    }
}
