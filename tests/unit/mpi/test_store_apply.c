/*
 * test_store_apply.c - the index's decisions as apply makes them (mpi/src/store_apply.c,
 * mpi/src/store.c), on a real LMDB environment with the default model: a record that matches
 * two EUIDs merges them (hie_mpi_decide), unless a manual no-link separates them; an EUID is
 * scored as its composite, so a record whose evidence is spread over the EUID's records
 * links; and every merge leaves a history event on the records it moved.
 *
 * Weights under the default model (hie_mpi_model_default, prior 1e-4, so linking needs about
 * 17.5 bits): an exact name or birth date +6.4 bits, an exact street, city or postcode +4.8,
 * an exact e-mail +5.4, a missing field 0.
 */
#include "hie/mpi_store.h"

#include "../../../mpi/src/store_int.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ORG "org-a"

static char dir[64];
static MDB_env *env;
static hie_mpi_key_t *key;
static hie_mpi_store_t *store;
static hie_arena_t *arena;
static uint64_t log_index;
static int64_t feed_time_ms; /* the time feed_apply stamps its commands with */
static int64_t feed_rules_ms; /* the rules clock feed_apply passes (0: the command's time) */

static void
setup(void)
{
    char path[128];
    cr_assert_geq(sodium_init(), 0);
    snprintf(dir, sizeof(dir), "/tmp/hie-test-store-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/mpi.key", dir);
    cr_assert_eq(hie_mpi_key_generate(path), 0);
    cr_assert_eq(hie_mpi_key_load(&key, path), 0);
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    cr_assert_eq(mdb_env_set_mapsize(env, (size_t)64 << 20), 0);
    cr_assert_eq(mdb_env_open(env, dir, MDB_NOSYNC, 0600), 0);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    cr_assert_eq(hie_mpi_store_open(&store, env, key), 0);
    cr_assert_eq(hie_arena_create(&arena, (size_t)8 << 20), 0);
    log_index = 0;
    feed_time_ms = 1000;
    feed_rules_ms = 0;
}

static void
teardown(void)
{
    char cmd[128];
    hie_arena_destroy(&arena);
    hie_mpi_store_close(&store);
    mdb_env_close(env);
    hie_mpi_key_destroy(&key);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(mpi_store_apply, .init = setup, .fini = teardown);

/* One person's demographics; NULL or "" leaves a field out. */
struct who {
    const char *given, *family, *dob, *street, *city, *postcode, *email;
};

/* The national id the next feed_cmd sends ("": none). */
static const char *feed_national = "";

/* The prior MRN of the next merge command feed_cmd builds. */
static const char *merge_prior;

/* The sealed feed command (action, MRN) for w (NULL: no demographics), in arena. */
static Hie__V1__MpiFeedCommand *
feed_cmd(Hie__V1__FeedAction action, const char *mrn, const struct who *w)
{
    char *given[1] = {(char *)(uintptr_t)(w != NULL ? w->given : "")};
    char *family[1] = {(char *)(uintptr_t)(w != NULL ? w->family : "")};
    char *street[1] = {(char *)(uintptr_t)(w != NULL ? w->street : "")};
    Hie__V1__Demographics d = HIE__V1__DEMOGRAPHICS__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__MpiFeedRequest req = HIE__V1__MPI_FEED_REQUEST__INIT;
    if (w != NULL) {
        d.n_given = w->given[0] != '\0';
        d.given = given;
        d.n_family = w->family[0] != '\0';
        d.family = family;
        d.n_address_lines = w->street[0] != '\0';
        d.address_lines = street;
        d.birth_date = (char *)(uintptr_t)w->dob;
        d.city = (char *)(uintptr_t)w->city;
        d.postcode = (char *)(uintptr_t)w->postcode;
        d.email = (char *)(uintptr_t)w->email;
        d.national_id = (char *)(uintptr_t)feed_national;
        req.demographics = &d;
    }
    pid.org_id = (char *)ORG;
    pid.mrn = (char *)(uintptr_t)mrn;
    req.action = action;
    req.patient = &pid;
    req.prior_mrn = (char *)(uintptr_t)(action == HIE__V1__FEED_ACTION__FEED_MERGE ?
        merge_prior : NULL);
    Hie__V1__MpiFeedCommand *fc = NULL;
    hie_errinfo_t info = {0};
    cr_assert_eq(hie_mpi_feed_command(key, ORG, &req, arena, &fc, &info), 0, "%s %s",
        info.field, info.reason);
    return fc;
}

/* Applies fc in txn (prep: the pool's work, or NULL); [out] euid (copied); the outcome. */
static Hie__V1__FeedOutcome
feed_apply(MDB_txn *txn, const Hie__V1__MpiFeedCommand *fc, const hie_mpi_prepared_t *prep,
    char euid[16])
{
    hie_mpi_apply_ctx_t ctx = {txn, arena, ORG, feed_time_ms, ++log_index, {0}, 0, prep,
        feed_rules_ms, NULL, NULL};
    Hie__V1__MpiFeedReply *reply = NULL;
    cr_assert_eq(hie_mpi_store_apply_feed(store, &ctx, fc, &reply), 0);
    cr_assert_eq(ctx.reject.code, 0, "%s: %s", ctx.reject.field, ctx.reject.message);
    snprintf(euid, 16, "%s", reply->euid);
    return reply->outcome;
}

/* Applies one feed (action, MRN) in its own write transaction. [out] euid (copied) and the
 * outcome. */
static Hie__V1__FeedOutcome
feed(Hie__V1__FeedAction action, const char *mrn, const struct who *w, char euid[16])
{
    Hie__V1__MpiFeedCommand *fc = feed_cmd(action, mrn, w);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    Hie__V1__FeedOutcome out = feed_apply(txn, fc, NULL, euid);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    return out;
}

/* The EUID record mrn belongs to now. */
static void
euid_of(const char *mrn, char euid[16])
{
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    MDB_txn *txn = NULL;
    hie_mpi_rec_hash(key, ORG, mrn, h);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_mpi_store_euid_of(store, txn, h, arena, euid), 0);
    mdb_txn_abort(txn);
}

/* X and Y share only the given name (6.4 bits); Z has X's names and birth date (19.2 bits
 * with X) and Y's street, city and e-mail (21.5 bits with Y). */
static const struct who x = {"anna", "berg", "1980-01-01", "", "", "2000", ""};
static const struct who y = {"anna", "", "", "1 main street", "arden", "", "anna.b@mail.example"};
static const struct who z = {"anna", "berg", "1980-01-01", "1 main street", "arden", "",
    "anna.b@mail.example"};

Test(mpi_store_apply, a_record_matching_two_euids_merges_them)
{
    char ex[16], ey[16], ez[16], now[16];
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "X", &x, ex),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "Y", &y, ey),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW, "a shared given name is not enough");
    cr_assert_str_neq(ex, ey);
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "Z", &z, ez),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    euid_of("X", now);
    cr_assert_str_eq(now, ez, "X's EUID was merged into Z's");
    euid_of("Y", now);
    cr_assert_str_eq(now, ez);
    Hie__V1__LinkEvent **ev = NULL;
    size_t n = 0;
    uint64_t omitted = 0;
    hie_mpi_reject_t rej = {0};
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    const char *moved = strcmp(ez, ex) == 0 ? "Y" : "X";
    cr_assert_eq(hie_mpi_store_history(store, txn, ORG, moved, arena, &ev, &n, &omitted, &rej), 0);
    mdb_txn_abort(txn);
    cr_assert_eq(n, 2, "created, then merged");
    cr_assert_eq(ev[1]->outcome, HIE__V1__FEED_OUTCOME__OUTCOME_MERGED);
    cr_assert_str_eq(ev[1]->euid, ez);
    uint64_t records = 0, euids = 0, open = 0;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_mpi_store_counts(store, txn, &records, &euids, &open), 0);
    mdb_txn_abort(txn);
    cr_assert_eq(records, 3);
    cr_assert_eq(euids, 1);
}

Test(mpi_store_apply, a_manual_no_link_keeps_the_euids_apart)
{
    /* X2 (Z's fields) links to X, then is unlinked: a manual no-link X / X2 */
    static const struct who x2 = {"anna", "berg", "1980-01-01", "1 main street", "arden", "",
        "anna.b@mail.example"};
    char ex[16], ex2[16], ez[16], now[16];
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "X", &x, ex),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "X2", &x2, ex2),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_UNLINK, "X2", NULL, ex2),
        HIE__V1__FEED_OUTCOME__OUTCOME_UNLINKED);
    cr_assert_str_neq(ex, ex2);
    /* Z matches both; X2 best (it has every field of Z), X too, but they stay apart */
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "Z", &z, ez),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    cr_assert_str_eq(ez, ex2);
    euid_of("X", now);
    cr_assert_str_eq(now, ex, "the no-link X / X2 forbids merging their EUIDs");
}

Test(mpi_store_apply, an_euid_is_scored_as_its_composite)
{
    char ex[16], ey[16], ez[16], ew[16];
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "X", &x, ex);
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "Y", &y, ey);
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "Z", &z, ez);
    /* W: X's birth date and postcode (11.2 bits with X), Y's street and city (9.7 with Y),
     * Z's birth date, street and city (16.1 with Z: review at best): no record reaches the
     * link threshold alone, the EUID's composite (birth date, postcode, street, city: 20.9
     * bits) does */
    static const struct who w = {"", "", "1980-01-01", "1 main street", "arden", "2000", ""};
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "W", &w, ew),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    cr_assert_str_eq(ew, ez);
}

/* A model trained by a build with other comparison levels (a stored model of another shape)
 * is not an error: the index matches with the default model until it is trained again. */
Test(mpi_store_apply, a_model_of_other_levels_falls_back_to_the_default)
{
    Hie__V1__MpiModel pm = HIE__V1__MPI_MODEL__INIT;
    double m[3] = {0.9, 0.5, 0.1}, u[3] = {0.01, 0.1, 0.5};
    protobuf_c_boolean enabled[2] = {1, 1};
    pm.version = 7;
    pm.n_m = pm.n_u = 3;
    pm.m = m;
    pm.u = u;
    pm.n_enabled = 2;
    pm.enabled = enabled;
    pm.lambda = 0.001;
    pm.link_probability = 0.95;
    pm.review_probability = 0.5;
    uint8_t buf[256];
    size_t n = hie__v1__mpi_model__pack(&pm, buf);
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "mpi_meta", 0, &meta), 0);
    MDB_val k = {5, (void *)(uintptr_t)"model"}, v = {n, buf};
    cr_assert_eq(mdb_put(txn, meta, &k, &v, 0), 0);
    hie_mpi_model_t got, def;
    cr_assert_eq(hie_mpi_store_model(store, txn, &got), 0, "not an error");
    hie_mpi_model_default(&def);
    cr_assert_eq(got.version, def.version, "the default model");
    cr_assert_eq(got.m[0][1], def.m[0][1]);
    /* the same shape as this build's, with a level that was unused when it was trained */
    hie_mpi_model_t zero;
    hie_mpi_model_default(&zero);
    zero.version = 9;
    zero.m[0][1] = 0.0;
    Hie__V1__MpiModel zp;
    static double mb[HIE_MPI_FIELD_COUNT * HIE_MPI_LEVELS_MAX];
    static double ub[HIE_MPI_FIELD_COUNT * HIE_MPI_LEVELS_MAX];
    protobuf_c_boolean eb[HIE_MPI_FIELD_COUNT];
    hie_mpi_model_to_proto(&zero, &zp, mb, ub, eb);
    static uint8_t zbuf[8192];
    size_t zn = protobuf_c_message_get_packed_size(&zp.base);
    cr_assert_leq(zn, sizeof(zbuf));
    hie__v1__mpi_model__pack(&zp, zbuf);
    v = (MDB_val){zn, zbuf};
    cr_assert_eq(mdb_put(txn, meta, &k, &v, 0), 0);
    cr_assert_eq(hie_mpi_store_model(store, txn, &got), 0, "not an error");
    cr_assert_eq(got.version, def.version, "the default model");
    /* a valid model that says it was trained for another level scheme */
    hie_mpi_model_t other;
    hie_mpi_model_default(&other);
    other.version = 11;
    hie_mpi_model_to_proto(&other, &zp, mb, ub, eb);
    cr_assert_eq(zp.level_scheme, HIE_MPI_LEVEL_SCHEME, "a model says its scheme");
    hie_mpi_model_t back;
    cr_assert_eq(hie_mpi_model_from_proto(&zp, &back), 0);
    cr_assert_eq(back.version, 11u);
    zp.level_scheme = HIE_MPI_LEVEL_SCHEME + 1;
    cr_assert_eq(hie_mpi_model_from_proto(&zp, &back), HIE_EINVAL);
    zn = protobuf_c_message_get_packed_size(&zp.base);
    hie__v1__mpi_model__pack(&zp, zbuf);
    v = (MDB_val){zn, zbuf};
    cr_assert_eq(mdb_put(txn, meta, &k, &v, 0), 0);
    cr_assert_eq(hie_mpi_store_model(store, txn, &got), 0, "not an error");
    cr_assert_eq(got.version, def.version, "the default model");
    /* and the model command refuses it, naming the field */
    Hie__V1__MpiModelCommand mc = HIE__V1__MPI_MODEL_COMMAND__INIT;
    mc.model = &zp;
    hie_mpi_apply_ctx_t ctx = {txn, arena, ORG, 1000, ++log_index, {0}, 0, NULL, 0, NULL,
        NULL};
    uint64_t installed = 0;
    cr_assert_eq(hie_mpi_store_apply_model(store, &ctx, &mc, &installed), 0);
    cr_assert_eq(ctx.reject.code, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    cr_assert_str_eq(ctx.reject.field, "model.level_scheme");
    cr_assert_eq(installed, 0u);
    mdb_txn_abort(txn);
}

static const Hie__V1__MpiFeedCommand *
item_feed(const void *item, hie_arena_t *a)
{
    (void)a;
    return *(const Hie__V1__MpiFeedCommand *const *)item;
}

/* The match pool compares a batch's feeds before apply reaches them. Here it compares W with
 * X's first form (which shares W's birth date and postcode and nothing else: W would be new);
 * the batch's first command replaces X's form with W's person, so apply must not take that
 * comparison, and W links to X, as it does without the pool. */
Test(mpi_store_apply, the_pool_never_hands_apply_a_comparison_with_a_replaced_form)
{
    static const struct who first = {"zoe", "quist", "1980-01-01", "", "", "2000", ""};
    char ex[16], eu[16], ew[16];
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "X", &first, ex),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    hie_mpi_pool_t *pool = NULL;
    cr_assert_eq(hie_mpi_pool_create(&pool, store, 2), 0);
    const Hie__V1__MpiFeedCommand *cmds[2] = {feed_cmd(HIE__V1__FEED_ACTION__FEED_UPDATE, "X",
        &z), feed_cmd(HIE__V1__FEED_ACTION__FEED_CREATE, "W", &z)};
    hie_mpi_pool_begin(pool, cmds, sizeof(cmds[0]), 2, item_feed);
    hie_mpi_pool_wait(pool); /* both prepared against the state before the batch */
    hie_mpi_store_stats_t *st = hie_mpi_store_stats(store);
    uint64_t stale = atomic_load(&st->pool_stale), ready = atomic_load(&st->pool_ready);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(feed_apply(txn, cmds[0], hie_mpi_pool_take(pool, 0), eu),
        HIE__V1__FEED_OUTCOME__OUTCOME_UPDATED);
    cr_assert_eq(feed_apply(txn, cmds[1], hie_mpi_pool_take(pool, 1), ew),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    hie_mpi_pool_end(pool);
    cr_assert_str_eq(ew, ex, "W joins X's EUID");
    cr_assert_eq(atomic_load(&st->pool_ready) - ready, 2, "the pool prepared both");
    cr_assert_geq(atomic_load(&st->pool_stale) - stale, 1, "X's old form was compared");
    hie_mpi_pool_destroy(&pool);
}

/* BLAKE2b of every key and value of the named database in txn. */
static void
table_digest(MDB_txn *txn, const char *name, uint8_t out[32])
{
    MDB_dbi dbi;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    cr_assert_eq(mdb_dbi_open(txn, name, 0, &dbi), 0);
    cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        crypto_generichash_update(&st, k.mv_data, k.mv_size);
        crypto_generichash_update(&st, v.mv_data, v.mv_size);
    }
    mdb_cursor_close(cur);
    crypto_generichash_final(&st, out, 32);
}

/* With the pool or without it, a batch decides the same: the second run's store gets the same
 * creates and updates through the pool, every outcome and EUID agrees, and the stored records
 * (sealed by the pool, or by apply) are the same bytes. */
Test(mpi_store_apply, a_batch_through_the_pool_decides_as_without_it)
{
    static const struct who people[] = {x, y, z, {"zoe", "quist", "1980-01-01", "", "", "2000",
        ""}, {"anna", "berg", "1980-01-02", "1 main street", "arden", "2000", ""}};
    enum { N = 12 };
    const Hie__V1__MpiFeedCommand *cmds[N];
    char mrn[N][8], plain[N][16], pooled[N][16];
    Hie__V1__FeedOutcome o1[N], o2[N];
    for (unsigned i = 0; i < N; i++) {
        snprintf(mrn[i], sizeof(mrn[i]), "M%u", i % 8); /* 8-11 update 0-3 */
        cmds[i] = feed_cmd(i < 8 ? HIE__V1__FEED_ACTION__FEED_CREATE :
            HIE__V1__FEED_ACTION__FEED_UPDATE, mrn[i], &people[(i * 3) % 5]);
    }
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    for (unsigned i = 0; i < N; i++) {
        o1[i] = feed_apply(txn, cmds[i], NULL, plain[i]);
    }
    uint8_t d1[32], d2[32];
    table_digest(txn, "mpi_recs", d1);
    mdb_txn_abort(txn); /* the same store again, from the same state, through the pool */
    hie_mpi_store_close(&store);
    cr_assert_eq(hie_mpi_store_open(&store, env, key), 0);
    hie_mpi_pool_t *pool = NULL;
    cr_assert_eq(hie_mpi_pool_create(&pool, store, 2), 0);
    uint64_t ready = atomic_load(&hie_mpi_store_stats(store)->pool_ready);
    hie_mpi_pool_begin(pool, cmds, sizeof(cmds[0]), N, item_feed);
    hie_mpi_pool_wait(pool); /* every item prepared (and sealed) by the pool, none by apply */
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    for (unsigned i = 0; i < N; i++) {
        o2[i] = feed_apply(txn, cmds[i], hie_mpi_pool_take(pool, i), pooled[i]);
        cr_assert_eq(o1[i], o2[i], "outcome %u", i);
        cr_assert_str_eq(plain[i], pooled[i], "EUID %u", i);
    }
    table_digest(txn, "mpi_recs", d2);
    cr_assert_arr_eq(d1, d2, sizeof(d1), "the records are stored as the same bytes");
    cr_assert_gt(atomic_load(&hie_mpi_store_stats(store)->pool_ready), ready);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    hie_mpi_pool_end(pool);
    hie_mpi_pool_destroy(&pool);
}

/* Rebuilds a layout of before 2026-11-30 for a conversion test: every entry of db from goes
 * into db to (created) under the key old_key gives it (into buf), then from is emptied.
 * Returns the entries moved. The store must be closed. */
static unsigned
old_layout(const char *from, const char *to,
    void (*old_key)(const MDB_val *k, const MDB_val *v, uint8_t *buf, MDB_val *ok))
{
    MDB_txn *txn = NULL;
    MDB_dbi src, dst;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned moved = 0;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, from, 0, &src), 0);
    cr_assert_eq(mdb_dbi_open(txn, to, MDB_CREATE, &dst), 0);
    cr_assert_eq(mdb_cursor_open(txn, src, &cur), 0);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint8_t buf[64];
        MDB_val ok;
        old_key(&k, &v, buf, &ok);
        cr_assert_eq(mdb_put(txn, dst, &ok, &v, 0), 0);
        moved++;
    }
    mdb_cursor_close(cur);
    cr_assert_eq(mdb_drop(txn, src, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    return moved;
}

/* mpi_recs -> mpi_rec: the key was the record hash; mpi_recs' keys run 1, 2, ... */
static void
rec_key_by_hash(const MDB_val *k, const MDB_val *v, uint8_t *buf, MDB_val *ok)
{
    static uint64_t want;
    want = hie_load_be64(k->mv_data) == 1 ? 1 : want + 1;
    cr_assert_eq(k->mv_size, 8u);
    cr_assert_eq(hie_load_be64(k->mv_data), want, "keys in write order");
    Hie__V1__MpiRecord *r = hie__v1__mpi_record__unpack(NULL, v->mv_size, v->mv_data);
    cr_assert_not_null(r);
    memcpy(buf, r->rec_hash.data, HIE_MPI_REC_HASH_BYTES);
    hie__v1__mpi_record__free_unpacked(r, NULL);
    *ok = (MDB_val){HIE_MPI_REC_HASH_BYTES, buf};
}

/* mpi_histb -> mpi_hist: the key had no bucket in front. */
static void
hist_key_unbucketed(const MDB_val *k, const MDB_val *v, uint8_t *buf, MDB_val *ok)
{
    (void)v;
    cr_assert_eq(k->mv_size, 32u);
    memcpy(buf, (const uint8_t *)k->mv_data + 4, 28);
    *ok = (MDB_val){28, buf};
}

/* Indexes written before 2026-11-30 kept a copy of each record's EUID and sealed form in
 * mpi_cand, and the names' term frequencies in mpi_tf; the store reads the records alone now,
 * derives both in memory, and drops the old databases when it opens. */
Test(mpi_store_apply, opening_drops_the_old_candidate_copy_and_term_frequencies)
{
    static const char *const old_dbs[] = {"mpi_cand", "mpi_tf"};
    char e[16];
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "X", &x, e),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    hie_mpi_store_close(&store);
    MDB_txn *txn = NULL;
    MDB_dbi old;
    MDB_val k = {1, (void *)"k"}, v = {1, (void *)"v"};
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    for (size_t i = 0; i < HIE_ARRAY_LEN(old_dbs); i++) {
        cr_assert_eq(mdb_dbi_open(txn, old_dbs[i], MDB_CREATE, &old), 0);
        cr_assert_eq(mdb_put(txn, old, &k, &v, 0), 0);
    }
    cr_assert_eq(mdb_txn_commit(txn), 0);
    cr_assert_eq(hie_mpi_store_open(&store, env, key), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    for (size_t i = 0; i < HIE_ARRAY_LEN(old_dbs); i++) {
        cr_assert_eq(mdb_dbi_open(txn, old_dbs[i], 0, &old), MDB_NOTFOUND, "%s", old_dbs[i]);
    }
    mdb_txn_abort(txn);
    char again[16];
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "X2", &x, again),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED, "the cache was rebuilt from the records");
    cr_assert_str_eq(again, e);
}

/* Records were keyed by their hash (mpi_rec) before 2026-11-30; now by the order of their
 * first write (mpi_recs), found by hash through the cache. An old layout is converted at the
 * first open: every record is found again, a new one goes after them, and the later records
 * of a batch of creates have increasing keys. */
Test(mpi_store_apply, opening_converts_records_keyed_by_hash)
{
    char e[16], ex[16], ey[16];
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "RX", &x, ex),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "RY", &y, ey),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    hie_mpi_store_close(&store);
    cr_assert_eq(old_layout("mpi_recs", "mpi_rec", rec_key_by_hash), 2);
    MDB_txn *txn = NULL;
    MDB_dbi recs, old, meta;
    MDB_cursor *cur = NULL;
    MDB_val k, v, nk = {8, (void *)"rec_next"};
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "mpi_meta", 0, &meta), 0);
    cr_assert_eq(mdb_del(txn, meta, &nk, NULL), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);

    cr_assert_eq(hie_mpi_store_open(&store, env, key), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "mpi_rec", 0, &old), MDB_NOTFOUND, "dropped");
    mdb_txn_abort(txn);
    euid_of("RX", e);
    cr_assert_str_eq(e, ex);
    euid_of("RY", e);
    cr_assert_str_eq(e, ey);
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "RZ", &z, e),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED, "found both through the rebuilt cache");
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "mpi_recs", 0, &recs), 0);
    cr_assert_eq(mdb_cursor_open(txn, recs, &cur), 0);
    cr_assert_eq(mdb_cursor_get(cur, &k, &v, MDB_LAST), 0);
    cr_assert_eq(hie_load_be64(k.mv_data), 3, "the new record after the converted two");
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
}

/* The records' file is input like any other: two records of one hash (a record has one key
 * for life) make the open fail with HIE_ECORRUPT, not abort the node. */
Test(mpi_store_apply, opening_refuses_two_records_of_one_hash)
{
    char e[16];
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "D", &x, e),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    hie_mpi_store_close(&store);
    MDB_txn *txn = NULL;
    MDB_dbi recs;
    uint8_t one[8], other[8];
    hie_store_be64(one, 1);
    hie_store_be64(other, 99);
    MDB_val k1 = {8, one}, k2 = {8, other}, v;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "mpi_recs", 0, &recs), 0);
    cr_assert_eq(mdb_get(txn, recs, &k1, &v), 0);
    cr_assert_eq(mdb_put(txn, recs, &k2, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    cr_assert_eq(hie_mpi_store_open(&store, env, key), HIE_ECORRUPT);
    cr_assert_null(store);
}

/* A feed is matched against blocks of at most HIE_MPI_FEED_BLOCK_CAP records, a PDQ reads
 * blocks up to HIE_MPI_BLOCK_CAP: identical records link while their blocks hold at most the
 * feed cap before them (records 2 .. cap + 1), the next finds every block over it and is new,
 * and PDQ still finds the person through those blocks. */
Test(mpi_store_apply, feeds_and_pdq_read_blocks_up_to_their_own_caps)
{
    _Static_assert(HIE_MPI_FEED_BLOCK_CAP + 2 <= HIE_MPI_BLOCK_CAP, "PDQ reads the larger block");
    static const struct who same = {"ingrid", "holm", "1971-03-09", "4 quay road", "arden",
        "6000", "ingrid.h@mail.example"};
    char first[16], e[16], mrn[16];
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "S0", &same, first),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    for (unsigned k = 1; k <= HIE_MPI_FEED_BLOCK_CAP; k++) {
        snprintf(mrn, sizeof(mrn), "S%u", k);
        cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, mrn, &same, e),
            HIE__V1__FEED_OUTCOME__OUTCOME_LINKED, "record %u", k + 1);
        cr_assert_str_eq(e, first);
    }
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "S-over", &same, e),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW, "every block holds more than the feed cap");
    char *given[1] = {(char *)"ingrid"}, *family[1] = {(char *)"holm"};
    Hie__V1__Demographics d = HIE__V1__DEMOGRAPHICS__INIT;
    d.n_given = d.n_family = 1;
    d.given = given;
    d.family = family;
    d.birth_date = (char *)"1971-03-09";
    Hie__V1__PdqQuery q = HIE__V1__PDQ_QUERY__INIT;
    q.demographics = &d;
    q.limit = 10;
    MDB_txn *txn = NULL;
    Hie__V1__PdqReply *reply = NULL;
    hie_mpi_reject_t reject = {0};
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_mpi_store_pdq(store, txn, &q, arena, &reply, &reject, NULL), 0);
    mdb_txn_abort(txn);
    cr_assert_eq(reject.code, 0, "%s", reject.message);
    cr_assert(!reply->no_match, "PDQ reads blocks of %u records", HIE_MPI_FEED_BLOCK_CAP + 2);
    cr_assert_str_eq(reply->candidates[0]->euid, first);
}

/* How many records the store's term frequencies count with value in field f. */
static uint64_t
tf_count_of(enum hie_mpi_field f, const char *value)
{
    uint64_t total = 0;
    double freq = hie_mpi__tf_key_frequency(store->tf, f, store__tf_key(store, f, value),
        &total);
    return (uint64_t)(freq * (double)total + 0.5);
}

static void
tf_expect(uint64_t anna, uint64_t bo, uint64_t berg, uint64_t lund, const char *when)
{
    cr_assert_eq(tf_count_of(HIE_MPI_F_GIVEN, "anna"), anna, "%s: anna", when);
    cr_assert_eq(tf_count_of(HIE_MPI_F_GIVEN, "bo"), bo, "%s: bo", when);
    cr_assert_eq(tf_count_of(HIE_MPI_F_FAMILY, "berg"), berg, "%s: berg", when);
    cr_assert_eq(tf_count_of(HIE_MPI_F_FAMILY, "lund"), lund, "%s: lund", when);
    cr_assert_eq(tf_count_of(HIE_MPI_F_FAMILY, "anna"), 0, "%s: fields apart", when);
}

/* The term frequencies are counted by apply (create counts, update recounts, a merge uncounts
 * the prior record) and rebuilt from the records at open to the same counts. */
Test(mpi_store_apply, term_frequencies_follow_apply_and_come_back_at_open)
{
    static const struct who a = {"anna", "berg", "1980-01-01", "", "", "2000", ""};
    static const struct who b = {"bo", "berg", "1975-06-30", "", "", "3000", ""};
    static const struct who c = {"anna", "lund", "1990-12-24", "", "", "4000", ""};
    static const struct who c2 = {"bo", "lund", "1990-12-24", "", "", "4000", ""};
    char e[16];
    feed(HIE__V1__FEED_ACTION__FEED_CREATE, "A", &a, e);
    feed(HIE__V1__FEED_ACTION__FEED_CREATE, "B", &b, e);
    feed(HIE__V1__FEED_ACTION__FEED_CREATE, "C", &c, e);
    tf_expect(2, 1, 2, 1, "created");
    feed(HIE__V1__FEED_ACTION__FEED_UPDATE, "C", &c2, e);
    tf_expect(1, 2, 2, 1, "updated");
    merge_prior = "B";
    feed(HIE__V1__FEED_ACTION__FEED_MERGE, "A", NULL, e);
    merge_prior = NULL;
    tf_expect(1, 1, 1, 1, "merged");
    hie_mpi_store_close(&store);
    cr_assert_eq(hie_mpi_store_open(&store, env, key), 0);
    tf_expect(1, 1, 1, 1, "reopened");
}

/* The link history is keyed by 1,024-index bucket first (store_int.h mpi_histb): a record's
 * events spread over buckets come back together, oldest first, and never another record's. */
Test(mpi_store_apply, history_reads_a_record_across_buckets)
{
    char e[16];
    static const struct who moved = {"anna", "berg", "1980-01-01", "2 side street", "arden",
        "2000", ""};
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "H", &x, e),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    log_index = 5000; /* bucket 4 */
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "K", &y, e),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_UPDATE, "H", &moved, e),
        HIE__V1__FEED_OUTCOME__OUTCOME_UPDATED);
    log_index = (uint64_t)1 << 30; /* bucket 2^20 */
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_UPDATE, "H", &x, e),
        HIE__V1__FEED_OUTCOME__OUTCOME_UPDATED);
    Hie__V1__LinkEvent **ev = NULL;
    size_t n = 0;
    uint64_t omitted = 0;
    hie_mpi_reject_t rej = {0};
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_mpi_store_history(store, txn, ORG, "H", arena, &ev, &n, &omitted, &rej), 0);
    mdb_txn_abort(txn);
    cr_assert_eq(n, 3, "created, updated, updated: %zu", n);
    cr_assert_eq(ev[0]->outcome, HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    cr_assert_eq(ev[1]->outcome, HIE__V1__FEED_OUTCOME__OUTCOME_UPDATED);
    cr_assert_eq(ev[2]->outcome, HIE__V1__FEED_OUTCOME__OUTCOME_UPDATED);
}

/* A history written in the layout before 2026-11-30 (mpi_hist: rec_hash, index, seq) is moved
 * into mpi_histb when the store opens, and reads the same. */
Test(mpi_store_apply, opening_converts_the_old_history_layout)
{
    char e[16];
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "H", &x, e),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_UPDATE, "H", &z, e),
        HIE__V1__FEED_OUTCOME__OUTCOME_UPDATED);
    hie_mpi_store_close(&store);
    cr_assert_eq(old_layout("mpi_histb", "mpi_hist", hist_key_unbucketed), 2);
    MDB_txn *txn = NULL;
    MDB_dbi old;
    cr_assert_eq(hie_mpi_store_open(&store, env, key), 0);
    Hie__V1__LinkEvent **ev = NULL;
    size_t n = 0;
    uint64_t omitted = 0;
    hie_mpi_reject_t rej = {0};
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "mpi_hist", 0, &old), MDB_NOTFOUND, "dropped");
    cr_assert_eq(hie_mpi_store_history(store, txn, ORG, "H", arena, &ev, &n, &omitted, &rej), 0);
    mdb_txn_abort(txn);
    cr_assert_eq(n, 2);
    cr_assert_eq(ev[0]->outcome, HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    cr_assert_eq(ev[1]->outcome, HIE__V1__FEED_OUTCOME__OUTCOME_UPDATED);
}

/* Creates records R0..R<last>, each its own person (no two link). */
static void
chain_records(int last)
{
    char e[16], mrn[16], given[16], dob[32];
    for (int i = 0; i <= last; i++) {
        struct who w = {"zed", "quill", "1950-01-01", "", "", "", ""};
        snprintf(mrn, sizeof(mrn), "R%d", i);
        snprintf(given, sizeof(given), "name%c%c", 'a' + i, 'a' + i);
        snprintf(dob, sizeof(dob), "19%02d-0%d-1%d", 10 + i * 4, 1 + i % 9, i % 10);
        w.given = given;
        w.dob = dob;
        feed(HIE__V1__FEED_ACTION__FEED_CREATE, mrn, &w, e);
    }
}

/* The refused field of merge_run's last merge ("" when it was applied). */
static char merge_field[32];

/* Merges R(i) into R(i+1) for i in [from, to) at time t: every one but the last must be
 * applied; returns the last one's refusal code (0: applied), its field in merge_field. */
static int
merge_run(int from, int to, int64_t t)
{
    char prior[16], mrn[16];
    int code = 0;
    for (int i = from; i < to; i++) {
        cr_assert_eq(code, 0, "merge %d refused", i - 1);
        snprintf(prior, sizeof(prior), "R%d", i);
        snprintf(mrn, sizeof(mrn), "R%d", i + 1);
        merge_prior = prior;
        Hie__V1__MpiFeedCommand *fc = feed_cmd(HIE__V1__FEED_ACTION__FEED_MERGE, mrn, NULL);
        merge_prior = NULL;
        MDB_txn *txn = NULL;
        cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
        hie_mpi_apply_ctx_t ctx = {txn, arena, ORG, t, ++log_index, {0}, 0, NULL, 0, NULL,
            NULL};
        Hie__V1__MpiFeedReply *reply = NULL;
        cr_assert_eq(hie_mpi_store_apply_feed(store, &ctx, fc, &reply), 0);
        cr_assert_eq(mdb_txn_commit(txn), 0);
        code = ctx.reject.code;
        snprintf(merge_field, sizeof(merge_field), "%s", code != 0 && ctx.reject.field != NULL
            ? ctx.reject.field : "");
    }
    return code;
}

/* A store whose chains were merged before mpi_mdepth existed gets its depths at open, the
 * ones replaying its merges records: a merge onto a 17-deep chain made then is refused now. */
Test(mpi_store_apply, merge_depths_are_filled_for_an_older_store)
{
    chain_records(18);
    cr_assert_eq(merge_run(0, 17, 1000), 0, "before the bound: all applied");
    MDB_txn *txn = NULL;
    MDB_dbi depth, meta;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0); /* as a store from before */
    cr_assert_eq(mdb_dbi_open(txn, "mpi_mdepth", 0, &depth), 0);
    cr_assert_eq(mdb_drop(txn, depth, 0), 0);
    cr_assert_eq(mdb_dbi_open(txn, "mpi_meta", 0, &meta), 0);
    MDB_val mk = {sizeof("mdepth_filled") - 1, (void *)"mdepth_filled"};
    int drc = mdb_del(txn, meta, &mk, NULL);
    cr_assert(drc == 0 || drc == MDB_NOTFOUND);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    hie_mpi_store_close(&store);
    cr_assert_eq(hie_mpi_store_open(&store, env, key), 0);
    cr_assert_eq(merge_run(17, 18, 1796058000000ll), HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
        "R17 ends a 17-deep chain: refused");
}

/* A40 merges chain (a survivor merged in turn): a chain is bounded at 16, the 17th merge onto
 * it is refused (a longer one made every lookup of its oldest record fail, and a consent
 * directive for it stop the node), and the oldest record still resolves. */
Test(mpi_store_apply, merge_chains_are_bounded)
{
    chain_records(17);
    cr_assert_eq(merge_run(0, 17, 1796058000000ll), HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
        "16 merges applied, the 17th onto the chain refused");
    cr_assert_str_eq(merge_field, "prior_mrn");
    char now[16], last[16];
    euid_of("R0", now);
    euid_of("R16", last);
    cr_assert_str_eq(now, last, "the oldest record resolves through 16 merges");
}

/* A merge command naming the same record twice (the proposer refuses it; a crafted or buggy
 * one) is refused by apply too, and the record stays as it was. */
Test(mpi_store_apply, a_record_is_not_merged_into_itself)
{
    char e[16], after[16];
    feed(HIE__V1__FEED_ACTION__FEED_CREATE, "A", &x, e);
    feed(HIE__V1__FEED_ACTION__FEED_CREATE, "B", &x, e);
    merge_prior = "B";
    Hie__V1__MpiFeedCommand *fc = feed_cmd(HIE__V1__FEED_ACTION__FEED_MERGE, "A", NULL);
    merge_prior = NULL;
    memcpy(fc->prior_hash.data, fc->rec_hash.data, HIE_MPI_REC_HASH_BYTES);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    hie_mpi_apply_ctx_t ctx = {txn, arena, ORG, feed_time_ms, ++log_index, {0}, 0, NULL,
        1796074200000ll, NULL, NULL};
    Hie__V1__MpiFeedReply *reply = NULL;
    cr_assert_eq(hie_mpi_store_apply_feed(store, &ctx, fc, &reply), 0);
    cr_assert_eq(ctx.reject.code, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    cr_assert_str_eq(ctx.reject.field, "prior_mrn");
    cr_assert_eq(mdb_txn_commit(txn), 0);
    euid_of("A", after);
    cr_assert_str_eq(after, e, "A is still in its EUID");
}

/* A manual no-link with any member of an EUID keeps a record out of it, also a member past
 * the 16 the composite scores (it was checked only among those). */
Test(mpi_store_apply, a_no_link_with_a_later_member_keeps_a_record_out)
{
    static const struct who other = {"bo", "lund", "1955-05-05", "", "", "9999", ""};
    char ee[16], er[16], now[16], mrn[8], mail[17][32];
    struct who e[17];
    for (int i = 0; i < 17; i++) { /* one person, each record with its own e-mail */
        snprintf(mail[i], sizeof(mail[i]), "anna.b%d@mail.example", i);
        e[i] = (struct who){"anna", "berg", "1980-01-01", "1 main street", "arden", "",
            mail[i]};
        snprintf(mrn, sizeof(mrn), "E%d", i);
        Hie__V1__FeedOutcome o = feed(HIE__V1__FEED_ACTION__FEED_CREATE, mrn, &e[i], now);
        cr_assert_eq(o, i == 0 ? HIE__V1__FEED_OUTCOME__OUTCOME_NEW
                               : HIE__V1__FEED_OUTCOME__OUTCOME_LINKED, "%s", mrn);
        if (i == 0) {
            snprintf(ee, sizeof(ee), "%s", now);
        }
    }
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "R", &other, er),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    /* the operator said R is not the EUID's last member in the members' order (the 17th:
     * past the 16 the composite scores) */
    MDB_txn *txn = NULL;
    const uint8_t *members = NULL;
    size_t n = 0;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(hie_mpi_store_euid_members(store, txn, ee, arena, &members, &n), 0);
    cr_assert_eq(n, 17u);
    uint8_t r[HIE_MPI_REC_HASH_BYTES], kb[2 * HIE_MPI_REC_HASH_BYTES];
    hie_mpi_rec_hash(key, ORG, "R", r);
    const uint8_t *last = members + (n - 1) * HIE_MPI_REC_HASH_BYTES;
    bool r_first = memcmp(r, last, HIE_MPI_REC_HASH_BYTES) < 0;
    memcpy(kb, r_first ? r : last, HIE_MPI_REC_HASH_BYTES);
    memcpy(kb + HIE_MPI_REC_HASH_BYTES, r_first ? last : r, HIE_MPI_REC_HASH_BYTES);
    MDB_dbi nolink;
    cr_assert_eq(mdb_dbi_open(txn, "mpi_nolink", 0, &nolink), 0);
    MDB_val k = {sizeof(kb), kb}, v = {0, (void *)""};
    cr_assert_eq(mdb_put(txn, nolink, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    /* R now has E0's every field: it stays apart all the same */
    feed(HIE__V1__FEED_ACTION__FEED_UPDATE, "R", &e[0], now);
    euid_of("R", now);
    cr_assert_str_neq(now, ee, "R joined the EUID it must stay out of");
    cr_assert_str_eq(now, er);
}

/* Feeds records from..to-1 of one person, each sharing its e-mail or its street with the one
 * before only (so each finds the EUID through a small block); returns the last one's outcome
 * and asserts that every one before it but the very first was linked. */
static Hie__V1__FeedOutcome
chain_of_one_person(int from, int to, char euid[16])
{
    Hie__V1__FeedOutcome o = HIE__V1__FEED_OUTCOME__OUTCOME_UNSPECIFIED;
    for (int i = from; i < to; i++) {
        char mrn[16], mail[48], street[48];
        snprintf(mrn, sizeof(mrn), "P%d", i);
        snprintf(mail, sizeof(mail), "anna.b%d@mail.example", i / 2);
        snprintf(street, sizeof(street), "%d main street", 1 + (i + 1) / 2);
        struct who w = {"anna", "berg", "1980-01-01", street, "arden", "", mail};
        hie_arena_reset(arena); /* nothing of the previous feed is kept */
        o = feed(HIE__V1__FEED_ACTION__FEED_CREATE, mrn, &w, euid);
        cr_assert(i == 0 || i == to - 1 || o == HIE__V1__FEED_OUTCOME__OUTCOME_LINKED,
            "P%d: outcome %d", i, o);
    }
    return o;
}

/* An automatic link into an EUID that already has 64 records waits for review (a magnet for
 * look-alikes, not one person); a log from before the bound replays as it applied. */
Test(mpi_store_apply, a_link_into_an_euid_of_64_records_waits_for_review)
{
    char e[16], first[16];
    feed_time_ms = 1796065200000ll;
    cr_assert_eq(chain_of_one_person(0, 64, e), HIE__V1__FEED_OUTCOME__OUTCOME_LINKED,
        "the 64th record links");
    euid_of("P0", first);
    cr_assert_str_eq(e, first);
    cr_assert_eq(chain_of_one_person(64, 65, e), HIE__V1__FEED_OUTCOME__OUTCOME_REVIEW,
        "the 65th waits for review");
    euid_of("P64", e);
    cr_assert_str_neq(e, first, "P64 stays apart until the review");
}

/* A command stamped before the bound by a node whose clock is behind, applied after a
 * later command (the rules clock is past the bound), follows the bound: a proposer's clock
 * cannot take an EUID past its limits. */
Test(mpi_store_apply, a_command_stamped_early_follows_the_rules_clock)
{
    char e[16];
    feed_rules_ms = 1796065200000ll;
    cr_assert_eq(chain_of_one_person(0, 64, e), HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    cr_assert_eq(chain_of_one_person(64, 65, e), HIE__V1__FEED_OUTCOME__OUTCOME_REVIEW,
        "the 65th waits for review although stamped in 1970");
}

Test(mpi_store_apply, before_the_bound_a_link_into_a_large_euid_applies)
{
    char e[16], first[16];
    cr_assert_eq(chain_of_one_person(0, 65, e), HIE__V1__FEED_OUTCOME__OUTCOME_LINKED,
        "stamped before 2026-11-30T19:00Z: linked as it was");
    euid_of("P0", first);
    cr_assert_str_eq(e, first);
}

/* A father and son of one name at one address (suffixes such as Jr are dropped from names),
 * their national ids and birth dates different: the son's record waits for review instead of
 * joining his father's EUID on the strength of the rest. One of the two differing alone is a
 * clerical error and still links (an id one edit apart; a wholly different id with the same
 * birth date). A command from before the rule links as it did. */
Test(mpi_store_apply, different_national_ids_and_birth_dates_are_never_linked_automatically)
{
    const struct who father = {"John", "Smith", "1950-03-04", "12 High Street", "Leeds",
        "LS1 4AB", "smiths@home.example"};
    const struct who son = {"John", "Smith", "1978-09-12", "12 High Street", "Leeds",
        "LS1 4AB", "smiths@home.example"};
    char e1[16], e2[16], e3[16];
    feed_rules_ms = 1796103000000ll; /* 2026-12-01T05:30Z */
    feed_national = "123456789";
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "F1", &father, e1),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    feed_national = "987650001";
    Hie__V1__FeedOutcome o = feed(HIE__V1__FEED_ACTION__FEED_CREATE, "S1", &son, e2);
    cr_assert_neq(o, HIE__V1__FEED_OUTCOME__OUTCOME_LINKED, "the son joined his father");
    cr_assert_str_neq(e1, e2, "the son has an EUID of his own");
    feed_national = "123456788";
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "T1", &father, e3),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED, "one edit apart: the same person");
    cr_assert_str_eq(e1, e3);
    feed_national = "555443333";
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "T2", &father, e3),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED, "another id, the same birth date: linked");
    cr_assert_str_eq(e1, e3);
    feed_national = "";
}

/* The father and son apart, a third record of their name and address with no national id
 * and no birth date matches both: it links to one, and the other is not merged in (their
 * records conflict). Before, the fold merged the son's EUID into his father's. */
Test(mpi_store_apply, a_sparse_record_does_not_merge_conflicting_euids)
{
    const struct who father = {"John", "Smith", "1950-03-04", "12 High Street", "Leeds",
        "LS1 4AB", "smiths@home.example"};
    const struct who son = {"John", "Smith", "1978-09-12", "12 High Street", "Leeds",
        "LS1 4AB", "smiths@home.example"};
    const struct who sparse = {"John", "Smith", "", "12 High Street", "Leeds", "LS1 4AB",
        "smiths@home.example"};
    char e1[16], e2[16], e3[16], f_now[16], s_now[16];
    feed_rules_ms = 1796108400000ll; /* 2026-12-01T07:00Z */
    feed_national = "123456789";
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "F1", &father, e1);
    feed_national = "987650001";
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "S1", &son, e2);
    cr_assert_str_neq(e1, e2);
    feed_national = "";
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "X1", &sparse, e3);
    euid_of("F1", f_now);
    euid_of("S1", s_now);
    cr_assert_str_neq(f_now, s_now, "father and son merged through a sparse record");
}

/* The same before the fold rule (2026-12-01T07:00Z; the decision rule on): the sparse record
 * folds them, as binaries of that time applied it. */
Test(mpi_store_apply, before_the_fold_rule_a_sparse_record_merges_them)
{
    const struct who father = {"John", "Smith", "1950-03-04", "12 High Street", "Leeds",
        "LS1 4AB", "smiths@home.example"};
    const struct who son = {"John", "Smith", "1978-09-12", "12 High Street", "Leeds",
        "LS1 4AB", "smiths@home.example"};
    const struct who sparse = {"John", "Smith", "", "12 High Street", "Leeds", "LS1 4AB",
        "smiths@home.example"};
    char e1[16], e2[16], e3[16], f_now[16], s_now[16];
    feed_rules_ms = 1796103000000ll; /* 2026-12-01T05:30Z */
    feed_national = "123456789";
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "F1", &father, e1);
    feed_national = "987650001";
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "S1", &son, e2);
    cr_assert_str_neq(e1, e2);
    feed_national = "";
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "X1", &sparse, e3);
    euid_of("F1", f_now);
    euid_of("S1", s_now);
    cr_assert_str_eq(f_now, s_now, "folded, as before the rule");
}

/* The same father and son, fed before the rule: linked, as it applied then (a log replays as
 * it applied). */
Test(mpi_store_apply, before_the_rule_different_ids_and_birth_dates_linked)
{
    const struct who father = {"John", "Smith", "1950-03-04", "12 High Street", "Leeds",
        "LS1 4AB", "smiths@home.example"};
    const struct who son = {"John", "Smith", "1978-09-12", "12 High Street", "Leeds",
        "LS1 4AB", "smiths@home.example"};
    char e1[16], e2[16];
    feed_national = "123456789";
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "F1", &father, e1),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    feed_national = "987650001";
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "S1", &son, e2),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    cr_assert_str_eq(e1, e2);
    feed_national = "";
}

/* Applies cmd's review decision at feed_time_ms; returns the refusal code (0: applied). */
static int
review_decide(uint64_t id, bool link)
{
    Hie__V1__MpiReviewCommand cmd = HIE__V1__MPI_REVIEW_COMMAND__INIT;
    cmd.id = id;
    cmd.link = link;
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    hie_mpi_apply_ctx_t ctx = {txn, arena, ORG, feed_time_ms, ++log_index, {0}, 0, NULL,
        feed_rules_ms, NULL, NULL};
    Hie__V1__ReviewDecideReply *reply = NULL;
    cr_assert_eq(hie_mpi_store_apply_review(store, &ctx, &cmd, &reply), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    return ctx.reject.code;
}

/* Applies a feed of P64 (action) with the chain's next demographics; its review item id. */
static uint64_t
p64_review(Hie__V1__FeedAction action)
{
    char mail[48], street[48];
    snprintf(mail, sizeof(mail), "anna.b%d@mail.example", 64 / 2);
    snprintf(street, sizeof(street), "%d main street", 1 + 65 / 2);
    struct who w = {"anna", "berg", "1980-01-01", street, "arden", "", mail};
    Hie__V1__MpiFeedCommand *fc = feed_cmd(action, "P64", &w);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    hie_mpi_apply_ctx_t ctx = {txn, arena, ORG, feed_time_ms, ++log_index, {0}, 0, NULL,
        feed_rules_ms, NULL, NULL};
    Hie__V1__MpiFeedReply *reply = NULL;
    cr_assert_eq(hie_mpi_store_apply_feed(store, &ctx, fc, &reply), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    cr_assert_eq(reply->outcome, HIE__V1__FEED_OUTCOME__OUTCOME_REVIEW, "action %d: outcome %d "
        "%s %s", (int)action, (int)reply->outcome, ctx.reject.field, ctx.reject.message);
    return reply->review_id;
}

static uint64_t
review_open_count(void)
{
    MDB_txn *txn = NULL;
    uint64_t records = 0, euids = 0, open = 0;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_mpi_store_counts(store, txn, &records, &euids, &open), 0);
    mdb_txn_abort(txn);
    return open;
}

/* An update that lands in review again against the same EUID reuses the record's open item
 * (a member resending updates grew the queue without end). */
Test(mpi_store_apply, an_update_reviewed_again_reuses_the_open_item)
{
    char e[16];
    feed_rules_ms = 1796074200000ll;
    cr_assert_eq(chain_of_one_person(0, 64, e), HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    uint64_t first = p64_review(HIE__V1__FEED_ACTION__FEED_CREATE);
    for (int i = 0; i < 3; i++) {
        hie_arena_reset(arena);
        cr_assert_eq(p64_review(HIE__V1__FEED_ACTION__FEED_UPDATE), first, "update %d", i);
    }
    cr_assert_eq(review_open_count(), 1u);
    cr_assert_eq(review_decide(first, false), 0);
    cr_assert_eq(review_open_count(), 0u);
}

/* "Keep apart" on an item whose candidate EUID has emptied since closes it (there is
 * nothing left to keep apart; it stayed open for good); before the rule it is refused. */
Test(mpi_store_apply, keep_apart_closes_an_item_whose_candidate_is_gone)
{
    char e[16];
    feed_rules_ms = 1796065200000ll;
    cr_assert_eq(chain_of_one_person(0, 64, e), HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    uint64_t item = p64_review(HIE__V1__FEED_ACTION__FEED_CREATE);
    char out[16];
    for (int i = 0; i < 63; i++) { /* every member leaves the candidate EUID: unlinked... */
        char mrn[16];
        snprintf(mrn, sizeof(mrn), "P%d", i);
        hie_arena_reset(arena);
        feed(HIE__V1__FEED_ACTION__FEED_UNLINK, mrn, NULL, out);
    }
    merge_prior = "P63"; /* ...and the last merged into another record */
    feed(HIE__V1__FEED_ACTION__FEED_MERGE, "P0", NULL, out);
    merge_prior = NULL;
    cr_assert_eq(review_decide(item, false), HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
        "before the rule");
    feed_rules_ms = 1796074200000ll;
    cr_assert_eq(review_decide(item, true), HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
        "a link into an EUID that is gone");
    cr_assert_eq(review_decide(item, false), 0, "kept apart: closed");
    cr_assert_eq(review_open_count(), 0u);
}

/* "Keep apart" for a record that is in the candidate EUID already (linked through another
 * item since) is refused with the way out; it wrote no-links and left the record linked. */
Test(mpi_store_apply, keep_apart_of_a_record_linked_since_is_refused)
{
    char e[16], now[16];
    feed_rules_ms = 1796065200000ll; /* two items for P64 against e, as before the rule */
    cr_assert_eq(chain_of_one_person(0, 64, e), HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    uint64_t one = p64_review(HIE__V1__FEED_ACTION__FEED_CREATE);
    hie_arena_reset(arena);
    uint64_t two = p64_review(HIE__V1__FEED_ACTION__FEED_UPDATE);
    feed_rules_ms = 1796074200000ll;
    cr_assert_eq(review_decide(two, true), 0, "linked through the second item");
    euid_of("P64", now);
    cr_assert_str_eq(now, e);
    cr_assert_eq(review_decide(one, false), HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    euid_of("P64", now);
    cr_assert_str_eq(now, e, "still linked, and the item still open");
    cr_assert_eq(review_open_count(), 1u);
}

static Hie__V1__ReviewListReply *
review_page(uint64_t after, uint32_t limit)
{
    Hie__V1__ReviewListRequest q = HIE__V1__REVIEW_LIST_REQUEST__INIT;
    q.after_id = after;
    q.limit = limit;
    MDB_txn *txn = NULL;
    Hie__V1__ReviewListReply *r = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_mpi_store_review_list(store, txn, &q, arena, &r), 0);
    mdb_txn_abort(txn);
    return r;
}

/* A listing that stops with items left says where to go on (a page, or the 10,000 items one
 * listing looks at: open items behind as many closed ones were hidden, with no way on). */
Test(mpi_store_apply, a_review_listing_says_where_it_goes_on)
{
    char e[16];
    feed_rules_ms = 1796065200000ll; /* two items for P64, as before the dedup rule */
    cr_assert_eq(chain_of_one_person(0, 64, e), HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    uint64_t one = p64_review(HIE__V1__FEED_ACTION__FEED_CREATE);
    hie_arena_reset(arena);
    uint64_t two = p64_review(HIE__V1__FEED_ACTION__FEED_UPDATE);
    Hie__V1__ReviewListReply *r = review_page(0, 1);
    cr_assert_eq(r->n_items, 1u);
    cr_assert_eq(r->items[0]->id, one);
    cr_assert_eq(r->next_after_id, one, "more after it");
    r = review_page(r->next_after_id, 1);
    cr_assert_eq(r->n_items, 1u);
    cr_assert_eq(r->items[0]->id, two);
    cr_assert_eq(r->next_after_id, 0u, "nothing after the last");
}

/* Before the rule (by the rules clock) every such update added an item, and replays so. */
Test(mpi_store_apply, before_the_rule_each_update_reviewed_adds_an_item)
{
    char e[16];
    feed_rules_ms = 1796065200000ll;
    cr_assert_eq(chain_of_one_person(0, 64, e), HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    uint64_t first = p64_review(HIE__V1__FEED_ACTION__FEED_CREATE);
    hie_arena_reset(arena);
    cr_assert_neq(p64_review(HIE__V1__FEED_ACTION__FEED_UPDATE), first);
    cr_assert_eq(review_open_count(), 2u);
}

/* An EUID of 1,000 records (the most member lists read): a review link or an A40 merge that
 * would add to it is refused; past it, consent would fail closed for the patient. */
Test(mpi_store_apply, no_manual_link_or_merge_takes_an_euid_past_1000_records)
{
    char e[16];
    cr_assert_eq(chain_of_one_person(0, 1000, e), HIE__V1__FEED_OUTCOME__OUTCOME_LINKED,
        "built before the bound");
    feed_time_ms = 1796065200000ll;
    char mrn[16] = "P1000", mail[48], street[48];
    snprintf(mail, sizeof(mail), "anna.b%d@mail.example", 1000 / 2);
    snprintf(street, sizeof(street), "%d main street", 1 + 1001 / 2);
    struct who w = {"anna", "berg", "1980-01-01", street, "arden", "", mail};
    Hie__V1__MpiFeedCommand *fc = feed_cmd(HIE__V1__FEED_ACTION__FEED_CREATE, mrn, &w);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    hie_mpi_apply_ctx_t ctx = {txn, arena, ORG, feed_time_ms, ++log_index, {0}, 0, NULL, 0,
        NULL, NULL};
    Hie__V1__MpiFeedReply *reply = NULL;
    cr_assert_eq(hie_mpi_store_apply_feed(store, &ctx, fc, &reply), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    cr_assert_eq(reply->outcome, HIE__V1__FEED_OUTCOME__OUTCOME_REVIEW);
    cr_assert_eq(review_decide(reply->review_id, true), HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
        "a review link into 1000 records");
    cr_assert_eq(review_decide(reply->review_id, false), 0, "kept apart instead");
    /* a second person of two records, merged into the full EUID: 1 + 1000 records */
    static const struct who q = {"bo", "lund", "1955-05-05", "9 side road", "brill", "",
        "bo.l@mail.example"};
    char eq[16];
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "Q0", &q, eq),
        HIE__V1__FEED_OUTCOME__OUTCOME_NEW);
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "Q1", &q, eq),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    merge_prior = "Q1";
    fc = feed_cmd(HIE__V1__FEED_ACTION__FEED_MERGE, "P0", NULL);
    merge_prior = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ctx = (hie_mpi_apply_ctx_t){txn, arena, ORG, feed_time_ms, ++log_index, {0}, 0, NULL, 0,
        NULL, NULL};
    cr_assert_eq(hie_mpi_store_apply_feed(store, &ctx, fc, &reply), 0);
    mdb_txn_abort(txn);
    cr_assert_eq(ctx.reject.code, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "1001 records");
    merge_prior = "P1000";
    fc = feed_cmd(HIE__V1__FEED_ACTION__FEED_MERGE, "P0", NULL);
    merge_prior = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ctx = (hie_mpi_apply_ctx_t){txn, arena, ORG, feed_time_ms, ++log_index, {0}, 0, NULL, 0,
        NULL, NULL};
    cr_assert_eq(hie_mpi_store_apply_feed(store, &ctx, fc, &reply), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    cr_assert_eq(ctx.reject.code, 0, "a record alone merged in: the EUID stays at 1000");
}

/* The spans hie_mpi_store_identity finds for euid, as "EUID@from-to" joined by spaces. */
static void
identity_of(const char *euid, char *out, size_t cap)
{
    hie_mpi_euid_span_t *sp = NULL;
    size_t n = 0, used = 0;
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_mpi_store_identity(store, txn, euid, arena, &sp, &n), 0);
    mdb_txn_abort(txn);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(out + used, cap - used, "%s%s@%lld-%lld", i ? " " : "",
            sp[i].euid, (long long)sp[i].from_ms, (long long)sp[i].to_ms);
        cr_assert_lt(used, cap);
    }
}

/* A patient's EUIDs and when come from the link history: a record that linked in brings the
 * EUID it had until then, one unlinked out keeps the span it spent in the EUID it left, and a
 * record an A40 merged into one of the patient's brings its own; each span only for the time
 * the record was there (closed ends padded 2 s, a live record's last span open), the asked
 * EUID's own spans included. A store from before mpi_merged gets it at open. */
Test(mpi_store_apply, identity_spans_follow_links_unlinks_and_merges)
{
    char ex[16], ey[16], ez[16], eb[16], ec[16], got[512], want[512];
    static const struct who other = {"olaf", "stone", "1931-07-07", "", "", "", ""};
    const long long open = INT64_MAX;
    feed_time_ms = 1000;
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "X", &x, ex);
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "B", &other, eb);
    cr_assert_lt(strcmp(ex, eb), 0, "EUIDs in the order they were made");
    identity_of(ex, got, sizeof(got));
    snprintf(want, sizeof(want), "%s@1000-%lld", ex, open);
    cr_assert_str_eq(got, want, "a record that never moved: its own EUID from its start");
    feed_time_ms = 2000; /* B becomes X's person: it links in from eb */
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_UPDATE, "B", &z, ey),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    cr_assert_str_eq(ey, ex);
    identity_of(ex, got, sizeof(got));
    snprintf(want, sizeof(want), "%s@1000-%lld %s@1000-4000", ex, open, eb);
    cr_assert_str_eq(got, want);
    feed_time_ms = 3000; /* and out again, to a new EUID */
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_UNLINK, "B", NULL, ec),
        HIE__V1__FEED_OUTCOME__OUTCOME_UNLINKED);
    identity_of(ex, got, sizeof(got));
    snprintf(want, sizeof(want), "%s@1000-%lld", ex, open);
    cr_assert_str_eq(got, want, "B left: X's patient never had another EUID");
    identity_of(ec, got, sizeof(got));
    snprintf(want, sizeof(want), "%s@2000-5000 %s@1000-4000 %s@3000-%lld", ex, eb, ec, open);
    cr_assert_str_eq(got, want, "B's EUIDs: ex only while it was there, not since X's start");
    /* C, its own person from 4000, merged into B at 5000 */
    feed_time_ms = 4000;
    static const struct who third = {"ida", "vale", "1944-04-04", "", "", "", ""};
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "C", &third, ez);
    feed_time_ms = 5000;
    merge_prior = "C";
    (void)feed(HIE__V1__FEED_ACTION__FEED_MERGE, "B", NULL, got);
    merge_prior = NULL;
    cr_assert_str_eq(got, ec);
    identity_of(ec, got, sizeof(got));
    cr_assert_lt(strcmp(ec, ez), 0);
    snprintf(want, sizeof(want), "%s@2000-5000 %s@1000-4000 %s@3000-%lld %s@4000-7000", ex, eb,
        ec, open, ez);
    cr_assert_str_eq(got, want, "and the merged record's EUID until the merge");
    /* as a store from before mpi_merged: filled at open */
    MDB_txn *txn = NULL;
    MDB_dbi merged, meta;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "mpi_merged", 0, &merged), 0);
    cr_assert_eq(mdb_drop(txn, merged, 0), 0);
    cr_assert_eq(mdb_dbi_open(txn, "mpi_meta", 0, &meta), 0);
    MDB_val mk = {sizeof("merged_filled") - 1, (void *)"merged_filled"};
    cr_assert_eq(mdb_del(txn, meta, &mk, NULL), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    hie_mpi_store_close(&store);
    cr_assert_eq(hie_mpi_store_open(&store, env, key), 0);
    char again[512];
    identity_of(ec, again, sizeof(again));
    cr_assert_str_eq(again, want, "filled at open");
}

/* Applies (action, mrn) expecting a refusal; returns its code, the message in msg. */
static int
feed_refused(Hie__V1__FeedAction action, const char *mrn, const struct who *w, char *msg,
    size_t cap)
{
    Hie__V1__MpiFeedCommand *fc = feed_cmd(action, mrn, w);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    hie_mpi_apply_ctx_t ctx = {txn, arena, ORG, feed_time_ms, ++log_index, {0}, 0, NULL,
        feed_rules_ms, NULL, NULL};
    Hie__V1__MpiFeedReply *reply = NULL;
    cr_assert_eq(hie_mpi_store_apply_feed(store, &ctx, fc, &reply), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    snprintf(msg, cap, "%s", ctx.reject.message != NULL ? ctx.reject.message : "");
    return ctx.reject.code;
}

/* An MRN an A40 merged into another record is retired: a create or update of it says so (it
 * used to be told "use update" by create and "no record" by update). */
Test(mpi_store_apply, a_merged_mrn_is_refused_as_merged)
{
    char e[16], msg[256];
    feed_time_ms = STORE_MERGED_MRN_SINCE_MS + 1;
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "A", &x, e);
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "B", &y, e);
    merge_prior = "B";
    (void)feed(HIE__V1__FEED_ACTION__FEED_MERGE, "A", NULL, e);
    merge_prior = NULL;
    cr_assert_eq(feed_refused(HIE__V1__FEED_ACTION__FEED_CREATE, "B", &y, msg, sizeof(msg)),
        HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    cr_assert(strstr(msg, "merged") != NULL, "%s", msg);
    cr_assert_eq(feed_refused(HIE__V1__FEED_ACTION__FEED_UPDATE, "B", &y, msg, sizeof(msg)),
        HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    cr_assert(strstr(msg, "merged") != NULL, "%s", msg);
    feed_time_ms = STORE_MERGED_MRN_SINCE_MS - 1; /* a log from before replays as it was */
    cr_assert_eq(feed_refused(HIE__V1__FEED_ACTION__FEED_UPDATE, "B", &y, msg, sizeof(msg)),
        HIE__V1__ERROR_CODE__ERROR_NOT_FOUND);
}

/* A40 merges and manual no-links (from STORE_MERGED_NOLINK_SINCE_MS): the operator kept X apart
 * from P; P is then merged into S, and S updated to X's very demographics. S and P are one
 * person, so S stays apart from X. Before the rule the no-link was lost with P. Returns
 * whether S ended in X's EUID. */
static bool
merged_prior_nolink_run(int64_t t)
{
    static const struct who x2 = {"anna", "berg", "1980-01-01", "1 main street", "arden", "",
        "anna.b@mail.example"};
    static const struct who other = {"olaf", "stone", "1931-07-07", "", "", "", ""};
    char e[16], ex[16], es[16];
    feed_time_ms = t;
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "P", &x, e);
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_CREATE, "X", &x2, e),
        HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    cr_assert_eq(feed(HIE__V1__FEED_ACTION__FEED_UNLINK, "X", NULL, ex),
        HIE__V1__FEED_OUTCOME__OUTCOME_UNLINKED); /* no-link X / P */
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "S", &other, e);
    merge_prior = "P";
    (void)feed(HIE__V1__FEED_ACTION__FEED_MERGE, "S", NULL, e);
    merge_prior = NULL;
    (void)feed(HIE__V1__FEED_ACTION__FEED_UPDATE, "S", &x2, es);
    euid_of("X", ex);
    return strcmp(es, ex) == 0;
}

Test(mpi_store_apply, a_nolink_binds_the_records_merged_into_either_side)
{
    cr_assert(!merged_prior_nolink_run(STORE_MERGED_NOLINK_SINCE_MS + 1),
        "S is P's person: kept apart from X");
}

Test(mpi_store_apply, a_nolink_did_not_bind_merged_records_before_the_rule)
{
    cr_assert(merged_prior_nolink_run(STORE_MERGED_NOLINK_SINCE_MS - 100000),
        "a log from before replays as it applied: S linked with X");
}

/* A keeps apart from B; C links with B; D with A. An A40 merges C into D: C's EUID-mate B
 * does not follow into A's EUID past the no-link (from STORE_MERGED_NOLINK_SINCE_MS).
 * Returns whether A and B ended in one EUID. */
static bool
merge_fold_nolink_run(int64_t t)
{
    static const struct who x2 = {"anna", "berg", "1980-01-01", "1 main street", "arden", "",
        "anna.b@mail.example"};
    char e[16], ea[16], eb[16], ec[16], ed[16];
    feed_time_ms = t;
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "A", &x, ea);
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "B", &x2, e);
    (void)feed(HIE__V1__FEED_ACTION__FEED_UNLINK, "B", NULL, eb); /* no-link A / B */
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "C", &x2, ec);
    cr_assert_str_eq(ec, eb, "C links with B (its exact match), not past the no-link");
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "D", &x, ed);
    cr_assert_str_eq(ed, ea, "D links with A");
    merge_prior = "C";
    (void)feed(HIE__V1__FEED_ACTION__FEED_MERGE, "D", NULL, e);
    merge_prior = NULL;
    euid_of("A", ea);
    euid_of("B", eb);
    return strcmp(ea, eb) == 0;
}

Test(mpi_store_apply, an_a40_does_not_fold_records_past_a_nolink)
{
    cr_assert(!merge_fold_nolink_run(STORE_MERGED_NOLINK_SINCE_MS + 1),
        "B stays apart from A");
}

Test(mpi_store_apply, an_a40_folded_past_a_nolink_before_the_rule)
{
    cr_assert(merge_fold_nolink_run(STORE_MERGED_NOLINK_SINCE_MS - 100000),
        "a log from before replays as it applied");
}

/* P64 waits in review against the chain's EUID; then an A40 merges a chain record into P64,
 * which folds the chain's EUID into P64's. "Keep apart" on the item (its candidate EUID gone)
 * used to close it while the records stayed linked; from STORE_MERGED_NOLINK_SINCE_MS it is
 * refused, the link history showing where the candidate's records went. Returns the code. */
static int
apart_after_fold(int64_t rules)
{
    char e[16], out[16], a[16], b[16];
    feed_rules_ms = rules;
    cr_assert_eq(chain_of_one_person(0, 64, e), HIE__V1__FEED_OUTCOME__OUTCOME_LINKED);
    uint64_t item = p64_review(HIE__V1__FEED_ACTION__FEED_CREATE);
    merge_prior = "P0";
    feed(HIE__V1__FEED_ACTION__FEED_MERGE, "P64", NULL, out);
    merge_prior = NULL;
    euid_of("P1", a);
    euid_of("P64", b);
    cr_assert_str_eq(a, b, "the chain folded into P64's EUID");
    return review_decide(item, false);
}

Test(mpi_store_apply, keep_apart_is_refused_when_the_candidate_was_folded_into_the_record)
{
    cr_assert_eq(apart_after_fold(STORE_MERGED_NOLINK_SINCE_MS),
        HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST);
}

Test(mpi_store_apply, keep_apart_closed_such_an_item_before_the_rule)
{
    cr_assert_eq(apart_after_fold(STORE_REVIEW_DEDUP_SINCE_MS), 0);
}

/* A record's history past HIE_MPI_HISTORY_MAX events lists the newest ones (what an operator
 * looks into), oldest first, and says how many older ones it left out; it used to list the
 * oldest 1,000 and drop the newest without a word. */
Test(mpi_store_apply, a_long_history_lists_its_newest_events)
{
    char e[16];
    feed_time_ms = 1000;
    (void)feed(HIE__V1__FEED_ACTION__FEED_CREATE, "H", &x, e);
    for (int i = 1; i <= 1004; i++) {
        feed_time_ms = 1000 + i;
        hie_arena_reset(arena);
        (void)feed(HIE__V1__FEED_ACTION__FEED_UPDATE, "H", &x, e);
    }
    Hie__V1__LinkEvent **ev = NULL;
    size_t n = 0;
    uint64_t omitted = 0;
    hie_mpi_reject_t rej = {0};
    MDB_txn *txn = NULL;
    hie_arena_reset(arena);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_mpi_store_history(store, txn, ORG, "H", arena, &ev, &n, &omitted, &rej), 0);
    mdb_txn_abort(txn);
    cr_assert_eq(n, HIE_MPI_HISTORY_MAX);
    cr_assert_eq(omitted, 5u, "1,005 events, the 5 oldest left out");
    cr_assert_eq(ev[0]->time_ms, 1005);
    cr_assert_eq(ev[n - 1]->time_ms, 2004, "the newest last");
}
