/*
 * store.c - the master patient index's LMDB databases, records and readers (PIX, PDQ, review
 * list, training input). The commands that change them are in store_apply.c.
 *
 * Every value read back is validated before use (sizes, seals, string lengths): a record that
 * fails is HIE_ECORRUPT, never a crash. Keys are keyed hashes; values holding PHI are sealed.
 */
#include "store_int.h"

#include <math.h>
#include <sodium.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

int
store__rc(int rc)
{
    return rc == 0 ? 0 : (rc == MDB_NOTFOUND ? HIE_ENOTFOUND : HIE_ESTORAGE);
}

void
store__hist_key(const uint8_t *rec_hash, uint64_t index, uint32_t seq,
    uint8_t out[STORE_HIST_KEY_BYTES])
{
    hie_store_be32(out, (uint32_t)(index >> STORE_HIST_BUCKET_SHIFT));
    memcpy(out + 4, rec_hash, HIE_MPI_REC_HASH_BYTES);
    hie_store_be64(out + 4 + HIE_MPI_REC_HASH_BYTES, index);
    hie_store_be32(out + 12 + HIE_MPI_REC_HASH_BYTES, seq);
}

/* Moves the link history of the layout before 2026-11-30 (mpi_hist: rec_hash, index, seq ->
 * event) into mpi_histb's keys, then drops mpi_hist. Once, at the first open. */
static int
hist_convert(MDB_txn *txn, MDB_dbi old, MDB_dbi hist)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = store__rc(mdb_cursor_open(txn, old, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    while (rc == 0 && mrc == 0) {
        const uint8_t *o = k.mv_data;
        uint8_t nk[STORE_HIST_KEY_BYTES];
        if (k.mv_size != HIE_MPI_REC_HASH_BYTES + 12) {
            rc = HIE_ECORRUPT;
            break;
        }
        store__hist_key(o, hie_load_be64(o + HIE_MPI_REC_HASH_BYTES),
            hie_load_be32(o + HIE_MPI_REC_HASH_BYTES + 8), nk);
        MDB_val nkv = {sizeof(nk), nk};
        rc = store__rc(mdb_put(txn, hist, &nkv, &v, 0));
        mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT) : mrc;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    rc = rc == 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
    return rc == 0 ? store__rc(mdb_drop(txn, old, 1)) : rc;
}

/* Moves the records of the layout before 2026-11-30 (mpi_rec: rec_hash -> record) into
 * mpi_recs (records in write order), numbering them in their old key order, then drops
 * mpi_rec. Once, at the first open. */
static int
rec_convert(hie_mpi_store_t *s, MDB_txn *txn, MDB_dbi old)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint64_t seq = 0;
    int rc = store__rc(mdb_cursor_open(txn, old, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    while (rc == 0 && mrc == 0) {
        uint8_t key[8];
        hie_store_be64(key, ++seq);
        MDB_val nk = {sizeof(key), key};
        rc = k.mv_size == HIE_MPI_REC_HASH_BYTES ? store__rc(mdb_put(txn, s->rec, &nk, &v,
            MDB_APPEND)) : HIE_ECORRUPT;
        mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT) : mrc;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    rc = rc == 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
    rc = rc == 0 ? store__meta_put_u64(s, txn, "rec_next", seq) : rc;
    return rc == 0 ? store__rc(mdb_drop(txn, old, 1)) : rc;
}

static int
dbis_open(hie_mpi_store_t *s)
{
    static const struct {
        const char *name;
        unsigned flags;
        size_t off;
    } dbs[] = {
        {"mpi_recs", 0, offsetof(hie_mpi_store_t, rec)},
        {"mpi_euid", MDB_DUPSORT, offsetof(hie_mpi_store_t, euid)},
        {"mpi_nolink", 0, offsetof(hie_mpi_store_t, nolink)},
        {"mpi_review", 0, offsetof(hie_mpi_store_t, review)},
        {"mpi_histb", 0, offsetof(hie_mpi_store_t, hist)},
        {"mpi_meta", 0, offsetof(hie_mpi_store_t, meta)},
        {"mpi_mdepth", 0, offsetof(hie_mpi_store_t, mdepth)},
        {"mpi_merged", MDB_DUPSORT | MDB_DUPFIXED, offsetof(hie_mpi_store_t, merged)},
        {"mpi_review_open", 0, offsetof(hie_mpi_store_t, review_open)},
    };
    MDB_txn *txn = NULL;
    int rc = store__rc(mdb_txn_begin(s->env, NULL, 0, &txn));
    for (size_t i = 0; rc == 0 && i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        MDB_dbi *dbi = (MDB_dbi *)(void *)((char *)s + dbs[i].off);
        rc = store__rc(mdb_dbi_open(txn, dbs[i].name, MDB_CREATE | dbs[i].flags, dbi));
    }
    MDB_dbi old; /* mpi_cand (before 2026-11-30): a copy of what mpi_rec holds; dropped */
    if (rc == 0 && mdb_dbi_open(txn, "mpi_cand", 0, &old) == 0) {
        rc = store__rc(mdb_drop(txn, old, 1));
    }
    if (rc == 0 && mdb_dbi_open(txn, "mpi_rec", 0, &old) == 0) {
        rc = rec_convert(s, txn, old);
    }
    /* mpi_tf (before 2026-11-30): the term frequencies, now counted in memory; dropped */
    if (rc == 0 && mdb_dbi_open(txn, "mpi_tf", 0, &old) == 0) {
        rc = store__rc(mdb_drop(txn, old, 1));
    }
    if (rc == 0 && mdb_dbi_open(txn, "mpi_hist", 0, &old) == 0) {
        rc = hist_convert(txn, old, s->hist);
    }
    if (rc == 0) {
        rc = store__rc(mdb_txn_commit(txn));
        txn = NULL;
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc;
}

static int
people_rebuild_one(hie_mpi_store_t *s, uint64_t seq, const Hie__V1__MpiRecord *r)
{
    uint8_t plain[STORE_NORM_BYTES_MAX];
    size_t len = 0;
    const uint8_t *hash = r->rec_hash.data;
    int rc = store__rec_norm(s, r, plain, &len);
    rc = rc == 0 ? store__people_put_norm(s->people, hash, plain, len) : rc;
    sodium_memzero(plain, sizeof(plain));
    return rc == 0 ? store__people_put_link(s->people, hash, r->euid, r->merged, seq) : rc;
}

/* Rebuilds the blocking index from every record's stored block keys (merged records have
 * none), the term frequencies from their tf keys, and the candidate cache from the records'
 * sealed normalized forms. About 4 us a record. */
static int
blocks_rebuild(hie_mpi_store_t *s)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = store__rc(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn));
    rc = rc == 0 ? store__rc(mdb_cursor_open(txn, s->rec, &cur)) : rc;
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    while (rc == 0 && mrc == 0) {
        Hie__V1__MpiRecord *r = hie__v1__mpi_record__unpack(NULL, v.mv_size, v.mv_data);
        uint64_t seq = k.mv_size == 8 ? hie_load_be64(k.mv_data) : 0;
        if (r == NULL || seq == 0 || r->n_block_keys > HIE_MPI_BLOCK_KEYS ||
            r->rec_hash.len != HIE_MPI_REC_HASH_BYTES || r->euid == NULL ||
            strlen(r->euid) >= HIE_MPI_EUID_BYTES) {
            rc = HIE_ECORRUPT;
        } else {
            rc = store__blocks_change(s->blocks, r->block_keys, r->n_block_keys,
                r->rec_hash.data, true);
            rc = rc == 0 ? store__tf_change(s, r, 1) : rc;
            rc = rc == 0 ? people_rebuild_one(s, seq, r) : rc;
        }
        if (r != NULL) {
            hie__v1__mpi_record__free_unpacked(r, NULL);
        }
        mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT) : mrc;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc == 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
}

/* The members table from mpi_euid (every duplicate, in order). */
static int
members_rebuild(hie_mpi_store_t *s)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    char euid[HIE_MPI_EUID_BYTES];
    int rc = store__rc(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn));
    rc = rc == 0 ? store__rc(mdb_cursor_open(txn, s->euid, &cur)) : rc;
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    while (rc == 0 && mrc == 0) {
        if (k.mv_size == 0 || k.mv_size >= sizeof(euid) || v.mv_size != HIE_MPI_REC_HASH_BYTES) {
            rc = HIE_ECORRUPT;
            break;
        }
        memcpy(euid, k.mv_data, k.mv_size);
        euid[k.mv_size] = '\0';
        store__members_add(s->members, euid, v.mv_data);
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc == 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
}

/* The live record r's merge chain reaches, and the hops to it (at most 64 followed). */
static int
chain_end(hie_mpi_store_t *s, MDB_txn *txn, hie_arena_t *arena, Hie__V1__MpiRecord *r,
    Hie__V1__MpiRecord **end, uint32_t *hops)
{
    *hops = 0;
    while (r->merged && *hops < 64) {
        if (r->merged_into.len != HIE_MPI_REC_HASH_BYTES) {
            return HIE_ECORRUPT;
        }
        int rc = store__rec_get(s, txn, r->merged_into.data, arena, &r);
        if (rc != 0) {
            return rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc;
        }
        (*hops)++;
    }
    *end = r;
    return 0;
}

/* Calls fn with each merged record (in arena, reset between them). */
static int
merged_each(hie_mpi_store_t *s, MDB_txn *txn, hie_arena_t *arena,
    int (*fn)(hie_mpi_store_t *s, MDB_txn *txn, hie_arena_t *arena, Hie__V1__MpiRecord *r))
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = store__rc(mdb_cursor_open(txn, s->rec, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    for (; rc == 0 && mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        hie_arena_reset(arena);
        ProtobufCMessage *m = NULL;
        rc = hie_proto_unpack(&hie__v1__mpi_record__descriptor, hie_span(v.mv_data, v.mv_size),
            arena, &m) == 0 ? 0 : HIE_ECORRUPT;
        Hie__V1__MpiRecord *r = (Hie__V1__MpiRecord *)m;
        if (rc == 0 && r->merged && (r->rec_hash.len != HIE_MPI_REC_HASH_BYTES ||
            r->merged_into.len != HIE_MPI_REC_HASH_BYTES)) {
            rc = HIE_ECORRUPT;
        }
        rc = rc == 0 && r->merged ? fn(s, txn, arena, r) : rc;
    }
    rc = rc == 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc;
}

/* mpi_mdepth: the live record r's chain ends at holds at least its length. */
static int
mdepth_one(hie_mpi_store_t *s, MDB_txn *txn, hie_arena_t *arena, Hie__V1__MpiRecord *r)
{
    Hie__V1__MpiRecord *end = NULL;
    uint32_t hops = 0, had = 0;
    int rc = chain_end(s, txn, arena, r, &end, &hops);
    MDB_val dk = {HIE_MPI_REC_HASH_BYTES, end != NULL ? end->rec_hash.data : NULL}, dv;
    if (rc == 0 && !end->merged && mdb_get(txn, s->mdepth, &dk, &dv) == 0 &&
        dv.mv_size == 4) {
        had = hie_load_be32(dv.mv_data);
    }
    if (rc == 0 && !end->merged && hops > had) {
        uint8_t b[4];
        hie_store_be32(b, hops);
        MDB_val nv = {sizeof(b), b};
        rc = store__rc(mdb_put(txn, s->mdepth, &dk, &nv, 0));
    }
    return rc;
}

/* mpi_merged: r under the record it was merged into. */
static int
merged_one(hie_mpi_store_t *s, MDB_txn *txn, hie_arena_t *arena, Hie__V1__MpiRecord *r)
{
    (void)arena;
    MDB_val mk = {HIE_MPI_REC_HASH_BYTES, r->merged_into.data};
    MDB_val mv = {HIE_MPI_REC_HASH_BYTES, r->rec_hash.data};
    return store__rc(mdb_put(txn, s->merged, &mk, &mv, 0));
}

/* Indexes derived from the merged records, for a store whose merges came before them, once
 * each (its mpi_meta flag): mpi_mdepth (2026-11-30: each live record's longest chain, which is
 * what replaying those merges records) and mpi_merged (2026-12-01). */
static int
merged_fill(hie_mpi_store_t *s, const char *flag,
    int (*fn)(hie_mpi_store_t *s, MDB_txn *txn, hie_arena_t *arena, Hie__V1__MpiRecord *r))
{
    MDB_txn *txn = NULL;
    hie_arena_t *arena = NULL;
    MDB_val mk = {strlen(flag), (void *)(uintptr_t)flag}, v;
    int rc = store__rc(mdb_txn_begin(s->env, NULL, 0, &txn));
    if (rc == 0 && mdb_get(txn, s->meta, &mk, &v) == 0) {
        mdb_txn_abort(txn);
        return 0;
    }
    rc = rc == 0 ? hie_arena_create(&arena, 1u << 20) : rc;
    rc = rc == 0 ? merged_each(s, txn, arena, fn) : rc;
    MDB_val one = {1, (void *)(uintptr_t)"1"};
    rc = rc == 0 ? store__rc(mdb_put(txn, s->meta, &mk, &one, 0)) : rc;
    if (rc == 0) {
        rc = store__rc(mdb_txn_commit(txn)); /* frees txn, committed or not */
        txn = NULL;
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    hie_arena_destroy(&arena);
    return rc;
}

int
hie_mpi_store_open(hie_mpi_store_t **out, MDB_env *env, const hie_mpi_key_t *key)
{
    HIE_ASSERT(out != NULL && env != NULL);
    *out = NULL;
    hie_mpi_store_t *s = hie_mem_calloc(1, sizeof(*s));
    if (s == NULL) {
        return HIE_ENOMEM;
    }
    s->magic = STORE_MAGIC;
    s->env = env;
    s->key = key;
    if (key != NULL) {
        hie_mpi_key_index_secret(key, s->secret);
    }
    int rc = dbis_open(s);
    rc = rc == 0 ? store__blocks_create(&s->blocks) : rc;
    rc = rc == 0 ? store__people_create(&s->people) : rc;
    rc = rc == 0 ? store__members_create(&s->members) : rc;
    rc = rc == 0 ? hie_mpi_tf_create(&s->tf, 1024) : rc;
    if (rc == 0 && pthread_rwlock_init(&s->tf_lock, NULL) != 0) {
        hie_mpi_tf_destroy(&s->tf); /* close knows the lock is there by the table */
        rc = HIE_ENOMEM;
    }
    rc = rc == 0 && key != NULL ? blocks_rebuild(s) : rc; /* keyless: nothing reads it */
    if (rc == 0 && key == NULL) {
        store__members_disable(s->members); /* keyless: no apply; LMDB answers any lookup */
    }
    rc = rc == 0 && key != NULL ? members_rebuild(s) : rc;
    /* reads records through the cache */
    rc = rc == 0 && key != NULL ? merged_fill(s, "mdepth_filled", mdepth_one) : rc;
    rc = rc == 0 && key != NULL ? merged_fill(s, "merged_filled", merged_one) : rc;
    if (rc != 0) {
        hie_mpi_store_close(&s);
        return rc;
    }
    *out = s;
    return 0;
}

void
hie_mpi_store_close(hie_mpi_store_t **sp)
{
    HIE_ASSERT(sp != NULL);
    hie_mpi_store_t *s = *sp;
    if (s == NULL) {
        return;
    }
    HIE_ASSERT(s->magic == STORE_MAGIC);
    store__blocks_destroy(&s->blocks);
    store__people_destroy(&s->people);
    store__members_destroy(&s->members);
    if (s->tf != NULL) {
        hie_mpi_tf_destroy(&s->tf);
        pthread_rwlock_destroy(&s->tf_lock);
    }
    sodium_memzero(s->secret, sizeof(s->secret));
    s->magic = 0;
    hie_mem_free(s, sizeof(*s)); /* the dbis close with the environment */
    *sp = NULL;
}

hie_mpi_store_stats_t *
hie_mpi_store_stats(hie_mpi_store_t *s)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC);
    return &s->stats;
}

bool
hie_mpi_store_ready(const hie_mpi_store_t *s)
{
    return s != NULL && s->key != NULL;
}

/* ---- meta counters ---------------------------------------------------------------------- */

int
store__meta_u64(hie_mpi_store_t *s, MDB_txn *txn, const char *name, uint64_t *out)
{
    MDB_val k = {strlen(name), (void *)(uintptr_t)name}, v;
    *out = 0;
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return HIE_ESTORAGE;
    }
    if (v.mv_size != 8) {
        return HIE_ECORRUPT;
    }
    *out = hie_load_be64(v.mv_data);
    return 0;
}

int
store__meta_put_u64(hie_mpi_store_t *s, MDB_txn *txn, const char *name, uint64_t val)
{
    uint8_t b[8];
    hie_store_be64(b, val);
    MDB_val k = {strlen(name), (void *)(uintptr_t)name}, v = {8, b};
    return store__rc(mdb_put(txn, s->meta, &k, &v, 0));
}

int
store__meta_add(hie_mpi_store_t *s, MDB_txn *txn, const char *name, int64_t delta)
{
    uint64_t cur = 0;
    int rc = store__meta_u64(s, txn, name, &cur);
    if (rc != 0) {
        return rc;
    }
    if (delta < 0 && cur < (uint64_t)(-delta)) {
        return HIE_ECORRUPT; /* a counter would go below zero: the state is inconsistent */
    }
    return store__meta_put_u64(s, txn, name, cur + (uint64_t)delta);
}

int
store__put_msg(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, const ProtobufCMessage *msg)
{
    return store__put_msg_flags(txn, dbi, k, msg, 0);
}

int
store__put_msg_flags(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, const ProtobufCMessage *msg,
    unsigned flags)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    MDB_val v = {n, NULL};
    int rc = store__rc(mdb_put(txn, dbi, k, &v, MDB_RESERVE | flags));
    if (rc == 0) {
        size_t packed = protobuf_c_message_pack(msg, v.mv_data);
        HIE_ASSERT(packed == n);
    }
    return rc;
}

/* ---- records ---------------------------------------------------------------------------- */

static int
get_msg(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, const ProtobufCMessageDescriptor *desc,
    hie_arena_t *arena, ProtobufCMessage **out)
{
    MDB_val v;
    *out = NULL;
    int rc = store__rc(mdb_get(txn, dbi, k, &v));
    if (rc != 0) {
        return rc;
    }
    rc = hie_proto_unpack(desc, hie_span(v.mv_data, v.mv_size), arena, out);
    return rc == HIE_EPROTO ? HIE_ECORRUPT : rc;
}

int
store__rec_get(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *hash, hie_arena_t *arena,
    Hie__V1__MpiRecord **out)
{
    uint8_t key[8];
    uint64_t seq = 0;
    if (!store__people_seq(s->people, hash, &seq)) {
        return HIE_ENOTFOUND; /* never written (the cache holds every record: see people.c) */
    }
    hie_store_be64(key, seq);
    MDB_val k = {sizeof(key), key};
    ProtobufCMessage *m = NULL;
    int rc = get_msg(txn, s->rec, &k, &hie__v1__mpi_record__descriptor, arena, &m);
    if (rc != 0) {
        return rc; /* HIE_ENOTFOUND too: written after txn's snapshot */
    }
    Hie__V1__MpiRecord *r = (Hie__V1__MpiRecord *)m;
    if (r->rec_hash.len != HIE_MPI_REC_HASH_BYTES ||
        memcmp(r->rec_hash.data, hash, HIE_MPI_REC_HASH_BYTES) != 0 ||
        r->nonce.len != HIE_MPI_SEAL_NONCE_BYTES || r->euid == NULL ||
        strlen(r->euid) >= HIE_MPI_EUID_BYTES || r->org_id == NULL) {
        return HIE_ECORRUPT; /* read-back validation: the key and the value must agree */
    }
    *out = r;
    return 0;
}

int
store__rec_put(hie_mpi_store_t *s, MDB_txn *txn, const Hie__V1__MpiRecord *rec)
{
    HIE_ASSERT(rec->rec_hash.len == HIE_MPI_REC_HASH_BYTES);
    HIE_ASSERT(rec->euid != NULL && strlen(rec->euid) < HIE_MPI_EUID_BYTES);
    if (rec->norm_nonce.len != HIE_MPI_SEAL_NONCE_BYTES || rec->norm_sealed.len == 0) {
        return HIE_ECORRUPT; /* a stored record without its sealed normalized form */
    }
    /* a record keeps the key of its first write; a new one goes after every other, so the
     * records of a batch of creates fill new pages together instead of each dirtying a random
     * page of the whole table */
    uint64_t seq = 0;
    bool fresh = !store__people_seq(s->people, rec->rec_hash.data, &seq);
    int rc = fresh ? store__meta_u64(s, txn, "rec_next", &seq) : 0;
    seq += fresh ? 1 : 0;
    rc = rc == 0 && fresh ? store__meta_put_u64(s, txn, "rec_next", seq) : rc;
    uint8_t key[8];
    hie_store_be64(key, seq);
    MDB_val k = {sizeof(key), key};
    rc = rc == 0 ? store__put_msg_flags(txn, s->rec, &k, &rec->base, fresh ? MDB_APPEND : 0) :
        rc;
    return rc == 0 ? store__people_put_link(s->people, rec->rec_hash.data, rec->euid,
        rec->merged, seq) : rc;
}

size_t
store__norm_pack(const hie_mpi_person_t *p, uint8_t *out)
{
    const char *f[9] = {p->given, p->given_canon, p->family, p->street, p->city, p->postcode,
        p->phone, p->email, p->national_id};
    hie_store_be32(out, p->dob);
    size_t n = 4;
    for (unsigned i = 0; i < 9; i++) {
        size_t len = strlen(f[i]);
        HIE_ASSERT(len < 256);
        out[n++] = (uint8_t)len;
        memcpy(out + n, f[i], len);
        n += len;
    }
    HIE_ASSERT(n <= STORE_NORM_BYTES_MAX);
    return n;
}

int
store__norm_unpack(const uint8_t *in, size_t len, hie_mpi_person_t *p)
{
    char *f[9] = {p->given, p->given_canon, p->family, p->street, p->city, p->postcode,
        p->phone, p->email, p->national_id};
    const size_t cap[9] = {sizeof(p->given), sizeof(p->given_canon), sizeof(p->family),
        sizeof(p->street), sizeof(p->city), sizeof(p->postcode), sizeof(p->phone),
        sizeof(p->email), sizeof(p->national_id)};
    memset(p, 0, sizeof(*p));
    if (len < 4) {
        return HIE_ECORRUPT;
    }
    p->dob = hie_load_be32(in);
    size_t n = 4;
    for (unsigned i = 0; i < 9; i++) {
        if (n >= len || in[n] >= cap[i] || n + 1 + in[n] > len) {
            return HIE_ECORRUPT;
        }
        memcpy(f[i], in + n + 1, in[n]);
        f[i][in[n]] = '\0';
        n += 1u + in[n];
    }
    bool dob_ok = p->dob == 0 || hie_mpi_date_compare(p->dob, p->dob) == HIE_MPI_DATE_EXACT;
    return n == len && dob_ok ? 0 : HIE_ECORRUPT;
}

int
store__rec_norm(hie_mpi_store_t *s, const Hie__V1__MpiRecord *rec, uint8_t *plain, size_t *len)
{
    uint8_t ad[HIE_MPI_REC_HASH_BYTES + 1];
    if (rec->rec_hash.len != HIE_MPI_REC_HASH_BYTES ||
        rec->norm_nonce.len != HIE_MPI_SEAL_NONCE_BYTES ||
        rec->norm_sealed.len < HIE_MPI_SEAL_OVERHEAD_BYTES) {
        return HIE_ECORRUPT;
    }
    memcpy(ad, rec->rec_hash.data, HIE_MPI_REC_HASH_BYTES);
    ad[HIE_MPI_REC_HASH_BYTES] = 'N';
    int rc = hie_mpi_open(s->key, hie_span(rec->norm_sealed.data, rec->norm_sealed.len),
        hie_span(ad, sizeof(ad)), rec->norm_nonce.data, plain, STORE_NORM_BYTES_MAX, len);
    return rc == 0 ? 0 : HIE_ECORRUPT;
}

int
store__rec_person(hie_mpi_store_t *s, const Hie__V1__MpiRecord *rec, hie_mpi_person_t *p)
{
    uint8_t plain[STORE_NORM_BYTES_MAX];
    size_t len = 0;
    int rc = store__rec_norm(s, rec, plain, &len);
    rc = rc == 0 ? store__norm_unpack(plain, len, p) : rc;
    sodium_memzero(plain, sizeof(plain));
    if (rc == 0) {
        hie_mpi_person_prepare(p);
    }
    return rc;
}

int
store__rec_open(hie_mpi_store_t *s, const Hie__V1__MpiRecord *rec, hie_arena_t *arena,
    Hie__V1__SealedPerson **out)
{
    *out = NULL;
    if (rec->sealed.len < HIE_MPI_SEAL_OVERHEAD_BYTES) {
        return HIE_ECORRUPT;
    }
    size_t cap = rec->sealed.len - HIE_MPI_SEAL_OVERHEAD_BYTES + 1, len = 0;
    uint8_t *plain = hie_arena_alloc(arena, cap);
    if (plain == NULL) {
        return HIE_ENOMEM;
    }
    int rc = hie_mpi_open(s->key, hie_span(rec->sealed.data, rec->sealed.len),
        hie_span(rec->rec_hash.data, rec->rec_hash.len), rec->nonce.data, plain, cap, &len);
    ProtobufCMessage *m = NULL;
    if (rc == 0) {
        rc = hie_proto_unpack(&hie__v1__sealed_person__descriptor, hie_span(plain, len), arena,
            &m);
    }
    sodium_memzero(plain, cap);
    if (rc != 0) {
        return rc == HIE_ENOMEM ? rc : HIE_ECORRUPT;
    }
    *out = (Hie__V1__SealedPerson *)m;
    return (*out)->mrn != NULL ? 0 : HIE_ECORRUPT;
}

int
store__members(hie_mpi_store_t *s, MDB_txn *txn, const char *euid, hie_arena_t *arena,
    uint8_t **hashes, size_t *n)
{
    MDB_cursor *cur = NULL;
    MDB_val k = {strlen(euid), (void *)(uintptr_t)euid}, v;
    size_t count = 0;
    *hashes = NULL;
    *n = 0;
    int rc = store__rc(mdb_cursor_open(txn, s->euid, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_KEY) : 0;
    if (rc == 0 && mrc == 0) {
        /* as many as the EUID has (usually a few), not room for the most it may have: a PDQ
         * answer gathers this for every candidate, and 16,000 bytes each made arena blocks */
        rc = store__rc(mdb_cursor_count(cur, &count));
        count = count < HIE_MPI_EUID_MEMBERS_MAX ? count : HIE_MPI_EUID_MEMBERS_MAX;
    }
    uint8_t *out = rc == 0 ? hie_arena_alloc(arena, count > 0 ? count * HIE_MPI_REC_HASH_BYTES
                                                              : 1) : NULL;
    rc = rc ? rc : out == NULL ? HIE_ENOMEM : 0;
    while (rc == 0 && mrc == 0 && *n < count) {
        if (v.mv_size != HIE_MPI_REC_HASH_BYTES) {
            rc = HIE_ECORRUPT;
            break;
        }
        memcpy(out + *n * HIE_MPI_REC_HASH_BYTES, v.mv_data, HIE_MPI_REC_HASH_BYTES);
        (*n)++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = HIE_ESTORAGE;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    *hashes = out;
    return rc;
}

/* A reader blocked on a table's lock is woken by the writer's unlock and, on two cores, takes
 * the writer's core for a whole time slice (2.8 ms on average, a quarter of apply's off-core
 * time). A reader that yields instead lets the writer finish its short write section and
 * rarely needs the futex. At 1M generated persons: +5% ingest (alternating pairs: 19,276 ->
 * 20,201 and 19,909 -> 20,879 records/s); the import through a node is not slower (100k set:
 * 7.5-8.2 s against 7.7-8.4 s). Spinning instead of yielding was tried before: it took CPU
 * from the node's admin and log threads. */
#define STORE_RDLOCK_YIELDS 8

void
store__rdlock(pthread_rwlock_t *l)
{
    for (unsigned i = 0; i < STORE_RDLOCK_YIELDS; i++) {
        if (pthread_rwlock_tryrdlock(l) == 0) {
            return;
        }
        sched_yield();
    }
    pthread_rwlock_rdlock(l);
}

int
store__members_w(hie_mpi_store_t *s, MDB_txn *txn, const char *euid, hie_arena_t *arena,
    uint8_t **hashes, size_t *n)
{
    const uint8_t *hs = NULL;
    size_t count = 0;
    if (!store__members_peek(s->members, euid, &hs, &count)) {
        return store__members(s, txn, euid, arena, hashes, n);
    }
    count = count < HIE_MPI_EUID_MEMBERS_MAX ? count : HIE_MPI_EUID_MEMBERS_MAX;
    uint8_t *out = hie_arena_alloc(arena, count > 0 ? count * HIE_MPI_REC_HASH_BYTES : 1);
    if (out == NULL) {
        return HIE_ENOMEM;
    }
    if (count > 0) {
        memcpy(out, hs, count * HIE_MPI_REC_HASH_BYTES);
    }
#if defined(HIE_DEBUG_ASSERTS) && HIE_DEBUG_ASSERTS
    uint8_t *lm = NULL;
    size_t ln = 0;
    int drc = store__members(s, txn, euid, arena, &lm, &ln);
    HIE_DEBUG_ASSERT(drc == 0 && ln == count && (count == 0 ||
        memcmp(lm, out, count * HIE_MPI_REC_HASH_BYTES) == 0)); /* memory agrees with LMDB */
#endif
    *hashes = out;
    *n = count;
    return 0;
}

/* ---- term frequencies and no-link pairs -------------------------------------------------- */

uint64_t
store__tf_key(const hie_mpi_store_t *s, enum hie_mpi_field f, const char *value)
{
    HIE_ASSERT(crypto_shorthash_KEYBYTES == sizeof(s->secret));
    (void)f; /* the table tells the fields apart (hie_mpi__tf_count) */
    if (value[0] == '\0') {
        return 0;
    }
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const uint8_t *)value, strlen(value), s->secret);
    uint64_t k;
    memcpy(&k, h, sizeof(k));
    return k;
}

int
store__tf_change(hie_mpi_store_t *s, const Hie__V1__MpiRecord *rec, int delta)
{
    const uint64_t keys[2] = {rec->tf_given, rec->tf_family};
    const enum hie_mpi_field fields[2] = {HIE_MPI_F_GIVEN, HIE_MPI_F_FAMILY};
    int rc = 0;
    pthread_rwlock_wrlock(&s->tf_lock);
    for (unsigned i = 0; rc == 0 && i < 2; i++) {
        rc = keys[i] != 0 ? hie_mpi__tf_count(s->tf, fields[i], keys[i], delta) : 0;
    }
    pthread_rwlock_unlock(&s->tf_lock);
    return rc;
}

double
store__tf_freq(hie_mpi_store_t *s, enum hie_mpi_field f, const char *value, bool writer)
{
    uint64_t key = store__tf_key(s, f, value), total = 0;
    if (key == 0) {
        return 0;
    }
    if (!writer) {
        store__rdlock(&s->tf_lock);
    }
    double freq = hie_mpi__tf_key_frequency(s->tf, f, key, &total);
    if (!writer) {
        pthread_rwlock_unlock(&s->tf_lock);
    }
    /* a frequency from a handful of names is noise ("john" is 1 in 2 of a 2-record index):
     * below the minimum the model's u stands */
    return total >= HIE_MPI_TF_TOTAL_MIN ? freq : 0;
}

bool
store__nolink(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *a, const uint8_t *b)
{
    uint8_t kb[2 * HIE_MPI_REC_HASH_BYTES];
    bool a_first = memcmp(a, b, HIE_MPI_REC_HASH_BYTES) < 0;
    memcpy(kb, a_first ? a : b, HIE_MPI_REC_HASH_BYTES);
    memcpy(kb + HIE_MPI_REC_HASH_BYTES, a_first ? b : a, HIE_MPI_REC_HASH_BYTES);
    MDB_val k = {sizeof(kb), kb}, v;
    int mrc = mdb_get(txn, s->nolink, &k, &v);
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        atomic_store(&s->read_failed, mrc); /* an apply that read it stops: see store_int.h */
        return true;                          /* meanwhile the cautious answer: kept apart */
    }
    return mrc == 0;
}

/* ---- candidates and scoring -------------------------------------------------------------- */

/* a < b, as memcmp orders the 16-byte hashes (big-endian halves). */
static inline int
hash_cmp(const uint8_t *a, const uint8_t *b)
{
    uint64_t x = hie_load_be64(a), y = hie_load_be64(b);
    if (x == y) {
        x = hie_load_be64(a + 8);
        y = hie_load_be64(b + 8);
    }
    return x < y ? -1 : x > y;
}

uint8_t *
store__hashes_merge(uint8_t *a, uint8_t *tmp, size_t total,
    const size_t run_ends[HIE_MPI_BLOCK_KEYS], size_t *n)
{
    const size_t H = HIE_MPI_REC_HASH_BYTES;
    size_t ends[HIE_MPI_BLOCK_KEYS], runs = 0;
    for (unsigned i = 0; i < HIE_MPI_BLOCK_KEYS; i++) {
        if (run_ends[i] > (runs ? ends[runs - 1] : 0)) {
            ends[runs++] = run_ends[i];
        }
    }
    size_t len = total;
    while (runs > 1) {
        size_t out = 0, start = 0, merged = 0;
        for (size_t r = 0; r < runs; r += 2) {
            size_t i = start, ie = ends[r], j = ie, je = r + 1 < runs ? ends[r + 1] : ie;
            while (i < ie || j < je) {
                const uint8_t *src;
                int c = i == ie ? 1 : j == je ? -1 : hash_cmp(a + i * H, a + j * H);
                src = c <= 0 ? a + i * H : a + j * H;
                i += c <= 0;
                j += c >= 0; /* equal: taken once */
                memcpy(tmp + out * H, src, H);
                out++;
            }
            start = je;
            ends[merged++] = out;
        }
        uint8_t *swap = a;
        a = tmp;
        tmp = swap;
        runs = merged;
        len = out;
    }
    *n = len;
    return a;
}

_Static_assert(HIE_MPI_BLOCK_BROAD_CAP <= HIE_MPI_FEED_BLOCK_CAP &&
    HIE_MPI_FEED_BLOCK_CAP <= HIE_MPI_BLOCK_CAP, "every cap is read within HIE_MPI_BLOCK_CAP");

void
store__person_keys(hie_mpi_store_t *s, const hie_mpi_person_t *p,
    const hie_mpi_prepared_t *prep, uint64_t keys[HIE_MPI_BLOCK_KEYS])
{
    if (prep != NULL && memcmp(&prep->p, p, sizeof(*p)) == 0) {
        memcpy(keys, prep->keys, HIE_MPI_BLOCK_KEYS * sizeof(*keys));
    } else {
        hie_mpi_block_keys(p, s->secret, keys);
    }
}

void
store__block_caps(hie_mpi_store_t *s, const hie_mpi_person_t *p,
    const hie_mpi_prepared_t *prep, uint64_t records, bool feed,
    uint64_t keys[HIE_MPI_BLOCK_KEYS], size_t caps[HIE_MPI_BLOCK_KEYS])
{
    store__person_keys(s, p, prep, keys);
    for (unsigned i = 0; i < HIE_MPI_BLOCK_KEYS; i++) {
        caps[i] = hie_mpi_block_key_cap(i, feed ? HIE_MPI_FEED_BLOCK_CAP : HIE_MPI_BLOCK_CAP,
            records);
    }
}

int
store__candidates(hie_mpi_store_t *s, const uint64_t keys[HIE_MPI_BLOCK_KEYS],
    const size_t caps[HIE_MPI_BLOCK_KEYS], const uint8_t *self, bool writer,
    hie_arena_t *arena, uint8_t **out, size_t *n, uint64_t *capped)
{
    *n = 0;
    *capped = 0;
    uint8_t *a = hie_arena_alloc(arena, HIE_MPI_CANDIDATES_MAX * HIE_MPI_REC_HASH_BYTES);
    uint8_t *b = hie_arena_alloc(arena, HIE_MPI_CANDIDATES_MAX * HIE_MPI_REC_HASH_BYTES);
    if (a == NULL || b == NULL) {
        return HIE_ENOMEM;
    }
    size_t ends[HIE_MPI_BLOCK_KEYS];
    size_t total = store__blocks_get_all(s->blocks, keys, caps, self, writer, a, ends, capped);
    *out = store__hashes_merge(a, b, total, ends, n);
    return 0;
}

/* Whether the pool's candidates of prep are the ones apply would find now: every key read
 * with the same cap, and no block of them changed since the batch began (a block read with
 * cap 0, a broad key's in a large index, gives nothing whatever it holds). */
static bool
prep_candidates_current(const hie_mpi_store_t *s, const hie_mpi_prepared_t *prep,
    const size_t caps[HIE_MPI_BLOCK_KEYS])
{
    for (unsigned i = 0; i < HIE_MPI_BLOCK_KEYS; i++) {
        if (prep->keys[i] != 0 && (caps[i] != prep->caps[i] || (caps[i] > 0 &&
                store__touched_has(s->touched_keys, prep->keys[i])))) {
            return false;
        }
    }
    return prep->hashes != NULL;
}

/* The candidates of p in txn's snapshot: the broad keys' cap follows the index's size (its
 * records counter). The pool's list (prep) when it is still current. */
static int
candidates(hie_mpi_store_t *s, MDB_txn *txn, const hie_mpi_person_t *p, const uint8_t *self,
    const hie_mpi_prepared_t *prep, hie_arena_t *arena, uint8_t **out, size_t *n)
{
    uint64_t records = 0, capped = 0, keys[HIE_MPI_BLOCK_KEYS];
    size_t caps[HIE_MPI_BLOCK_KEYS];
    *n = 0;
    int rc = store__meta_u64(s, txn, "records", &records);
    if (rc != 0) {
        return rc;
    }
    store__block_caps(s, p, prep, records, self != NULL, keys, caps);
    if (prep != NULL && prep_candidates_current(s, prep, caps)) {
        *out = prep->hashes;
        *n = prep->n_hashes;
        capped = prep->capped;
        atomic_fetch_add(&s->stats.pool_lists, 1);
    } else {
        rc = store__candidates(s, keys, caps, self, self != NULL, arena, out, n, &capped);
    }
    atomic_fetch_add(&s->stats.capped_blocks, capped);
    return rc;
}

/* One match: what every candidate's scoring reads. writer: the log thread's apply (self set),
 * the in-memory tables' one writer, whose reads need no lock. */
/* Records one merged-record set holds: a record and those A40 merges folded into it. */
#define MERGED_SET_MAX 64u

struct match_run {
    hie_mpi_store_t *s;
    MDB_txn *txn;
    const hie_mpi_model_t *model;
    hie_mpi_weights_t wt;                /* the model's per-level weights */
    double freq[2];                      /* p's given and family name term frequencies */
    const hie_mpi_person_t *p;
    const uint8_t *self;
    const hie_mpi_prepared_t *prep;
    bool writer;
    /* STORE_MERGED_NOLINK_SINCE_MS: no-links bind the records merged into either side; self
     * and the records merged into it (self_set[0] is self) */
    bool merged_nolinks;
    uint8_t self_set[MERGED_SET_MAX * HIE_MPI_REC_HASH_BYTES];
    size_t n_self;
};

/* Record root and the records A40 merges folded into it (mpi_merged, transitively), at most
 * MERGED_SET_MAX, into out. Returns how many, 0 when there were more (callers then keep the
 * records apart: the cautious answer); a read error or a malformed value is kept in
 * read_failed (apply then stops). */
static size_t
merged_set(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *root, uint8_t *out)
{
    size_t n = 1;
    bool more = false;
    memcpy(out, root, HIE_MPI_REC_HASH_BYTES);
    MDB_cursor *cur = NULL;
    int rc = mdb_cursor_open(txn, s->merged, &cur);
    for (size_t i = 0; rc == 0 && !more && i < n; i++) {
        MDB_val k = {HIE_MPI_REC_HASH_BYTES, out + i * HIE_MPI_REC_HASH_BYTES}, v;
        int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
        while (mrc == 0 && !more) {
            if (v.mv_size != HIE_MPI_REC_HASH_BYTES) {
                mrc = MDB_CORRUPTED;
                break;
            }
            more = n == MERGED_SET_MAX;
            if (!more) {
                memcpy(out + n++ * HIE_MPI_REC_HASH_BYTES, v.mv_data, HIE_MPI_REC_HASH_BYTES);
                mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
            }
        }
        rc = mrc == 0 || mrc == MDB_NOTFOUND ? 0 : mrc;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    if (rc != 0) {
        atomic_store(&s->read_failed, rc);
    }
    return more ? 0 : n;
}

/* The merged-record sets of n records (at most MERGED_CLOSURE_MAX in all) into out. Returns
 * how many, 0 when they were more. */
#define MERGED_CLOSURE_MAX 256u
static size_t
merged_closure(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *recs, size_t n, uint8_t *out)
{
    uint8_t one[MERGED_SET_MAX * HIE_MPI_REC_HASH_BYTES];
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = merged_set(s, txn, recs + i * HIE_MPI_REC_HASH_BYTES, one);
        if (k == 0 || total + k > MERGED_CLOSURE_MAX) {
            return 0;
        }
        memcpy(out + total * HIE_MPI_REC_HASH_BYTES, one, k * HIE_MPI_REC_HASH_BYTES);
        total += k;
    }
    return total;
}

bool
store__nolink_sets(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *a, size_t na,
    const uint8_t *b, size_t nb)
{
    uint8_t ca[MERGED_CLOSURE_MAX * HIE_MPI_REC_HASH_BYTES];
    uint8_t cb[MERGED_CLOSURE_MAX * HIE_MPI_REC_HASH_BYTES];
    size_t ka = merged_closure(s, txn, a, na, ca), kb = merged_closure(s, txn, b, nb, cb);
    if (ka == 0 || kb == 0) {
        return na > 0 && nb > 0; /* more merged records than one look takes: kept apart */
    }
    for (size_t i = 0; i < ka; i++) {
        for (size_t j = 0; j < kb; j++) {
            if (store__nolink(s, txn, ca + i * HIE_MPI_REC_HASH_BYTES,
                    cb + j * HIE_MPI_REC_HASH_BYTES)) {
                return true;
            }
        }
    }
    return false;
}

/* Whether a manual no-link keeps p (self) from record h: one between them, or, with
 * merged_nolinks, between any record merged into one and any merged into the other. */
static bool
run_nolink(const struct match_run *r, const uint8_t *h)
{
    if (!r->merged_nolinks) {
        return store__nolink(r->s, r->txn, r->self, h);
    }
    uint8_t hs[MERGED_SET_MAX * HIE_MPI_REC_HASH_BYTES];
    size_t nh = merged_set(r->s, r->txn, h, hs);
    if (nh == 0 || r->n_self == 0) {
        return true; /* more merged records than one look takes: kept apart */
    }
    for (size_t i = 0; i < r->n_self; i++) {
        for (size_t j = 0; j < nh; j++) {
            if (store__nolink(r->s, r->txn, r->self_set + i * HIE_MPI_REC_HASH_BYTES,
                    hs + j * HIE_MPI_REC_HASH_BYTES)) {
                return true;
            }
        }
    }
    return false;
}

/* The weight of vector v (p against a candidate), exact names adjusted by term frequency. */
static void
score_vector(const struct match_run *r, const hie_mpi_vector_t *v, store_cand_t *out)
{
    double w = hie_mpi_weight_table(&r->wt, v, out->explain);
    static const enum hie_mpi_field names[2] = {HIE_MPI_F_GIVEN, HIE_MPI_F_FAMILY};
    for (unsigned i = 0; i < 2; i++) {
        enum hie_mpi_field f = names[i];
        if (v->level[f] != HIE_MPI_STR_EXACT || !r->model->enabled[f]) {
            continue;
        }
        double adj = hie_mpi_weight_exact_name(r->model, f, r->freq[i]);
        w += adj - out->explain[f].weight;
        out->explain[f].weight = adj;
    }
    out->weight = w;
}

/* Candidate h's EUID, whether it was merged away and (unless merged) its comparison with p:
 * the pool's (prep) when it compared h's current form, else computed here. HIE_ENOTFOUND when
 * the cache does not hold h. prep_from: store__prep_find()'s from. */
static int
cand_vector(const struct match_run *r, const uint8_t *h, size_t *prep_from,
    char euid[HIE_MPI_EUID_BYTES], bool *merged, hie_mpi_vector_t *v)
{
    hie_mpi_store_t *s = r->s;
    uint64_t gen = 0;
    const store_prep_vec_t *pe = r->prep != NULL ? store__prep_find(r->prep, h, prep_from) :
        NULL;
    if (pe != NULL && !store__touched_has(s->touched_recs, store__touched_hash(h))) {
        memcpy(euid, pe->euid, HIE_MPI_EUID_BYTES); /* unchanged since the pool read it */
        *merged = pe->merged;
        if (!pe->merged) {
            *v = pe->v;
            atomic_fetch_add(&s->stats.pool_used, 1);
        }
        return 0;
    }
    if (r->prep != NULL) {
        int rc = store__people_peek(s->people, h, r->writer, euid, merged, &gen);
        if (rc != 0 || *merged) {
            return rc;
        }
        const store_prep_vec_t *e = pe;
        if (e != NULL && !e->merged && e->gen == gen) {
            *v = e->v;
            atomic_fetch_add(&s->stats.pool_used, 1);
            return 0;
        }
        if (e != NULL) {
            atomic_fetch_add(&s->stats.pool_stale, 1); /* replaced earlier in the batch */
        }
    }
    hie_mpi_person_t cp;
    int rc = store__people_get(s->people, h, r->writer, euid, merged, &cp, NULL);
    if (rc == 0 && !*merged) {
        HIE_ASSERT(cp.prepared == HIE_MPI_PERSON_PREPARED); /* by the cache */
        hie_mpi_compare(r->p, &cp, v);
    }
    sodium_memzero(&cp, sizeof(cp));
    return rc;
}

/* The per-EUID table is probed through an open-addressing index of EUID hashes (the table
 * holds at most HIE_MPI_CANDIDATES_MAX entries). */
#define SLOT_INDEX_BYTES 4096u
_Static_assert(SLOT_INDEX_BYTES >= 2 * HIE_MPI_CANDIDATES_MAX, "index at most half full");

static store_cand_t *
cand_slot(store_match_t *m, uint16_t *index, const char *euid, bool *fresh)
{
    uint64_t h = hie_hash_pair(euid, NULL);
    for (size_t i = h % SLOT_INDEX_BYTES;; i = (i + 1) % SLOT_INDEX_BYTES) {
        if (index[i] == 0) {
            *fresh = true;
            index[i] = (uint16_t)(m->n + 1);
            return &m->cand[m->n++];
        }
        store_cand_t *c = &m->cand[index[i] - 1];
        if (strcmp(c->euid, euid) == 0) {
            *fresh = false;
            return c;
        }
    }
}

static int
cmp_cand_at(const void *a, const void *b, void *ctx)
{
    const store_cand_t *c = ctx;
    const store_cand_t *x = &c[*(const uint16_t *)a], *y = &c[*(const uint16_t *)b];
    if (x->weight != y->weight) {
        return x->weight > y->weight ? -1 : 1;
    }
    return strcmp(x->euid, y->euid); /* deterministic order on ties (one entry an EUID) */
}

/* Sorts c[0..n) best first, ties by EUID: the 2-byte positions are sorted, then each 200-byte
 * candidate moves once, cycle by cycle (qsort moving the candidates themselves was a
 * fourteenth of apply's time at 1M records). */
static void
cand_sort(store_cand_t *c, size_t n)
{
    uint16_t at[HIE_MPI_CANDIDATES_MAX];
    HIE_ASSERT(n <= HIE_MPI_CANDIDATES_MAX);
    if (n < 2) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        at[i] = (uint16_t)i;
    }
    qsort_r(at, n, sizeof(at[0]), cmp_cand_at, c);
    for (size_t i = 0; i < n; i++) { /* at[j]: where sorted slot j's candidate is now */
        if (at[i] == i) {
            continue;
        }
        store_cand_t tmp = c[i];
        size_t j = i;
        while (at[j] != i) {
            size_t k = at[j];
            c[j] = c[k];
            at[j] = (uint16_t)j;
            j = k;
        }
        c[j] = tmp;
        at[j] = (uint16_t)j;
    }
}

/* Scores one candidate record into the per-EUID table; excluded EUIDs get weight -inf.
 * prep_from: as cand_vector's (the candidates come in hash order). */
static int
match_record(const struct match_run *r, const uint8_t *h, size_t *prep_from, store_match_t *m,
    uint16_t *index)
{
    char euid[HIE_MPI_EUID_BYTES];
    bool merged = false;
    hie_mpi_vector_t v;
    int rc = cand_vector(r, h, prep_from, euid, &merged, &v);
    if (rc == HIE_ENOTFOUND && r->self == NULL) {
        return 0; /* a reader's snapshot is older than the index: not yet visible to it */
    }
    if (rc != 0 || merged) {
        return rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc; /* a block points at no record */
    }
    bool fresh = false;
    store_cand_t *slot = cand_slot(m, index, euid, &fresh);
    if (!fresh && isinf(slot->weight) && slot->weight < 0) {
        return 0; /* the EUID is excluded already */
    }
    store_cand_t c;
    memset(&c, 0, sizeof(c));
    memcpy(c.euid, euid, sizeof(c.euid));
    memcpy(c.rec_hash, h, HIE_MPI_REC_HASH_BYTES);
    c.weight = -INFINITY;
    bool excluded = r->self != NULL && run_nolink(r, h);
    if (!excluded) {
        score_vector(r, &v, &c);
        atomic_fetch_add(&r->s->stats.candidates, 1);
    }
    if (fresh || excluded || c.weight > slot->weight) {
        *slot = c;
    }
    return 0;
}

/* Scores one record of c's EUID into comp (the composite). A record p must not be linked to
 * excludes the EUID (*excluded); one a reader's snapshot does not show yet, or that left the
 * EUID since, is skipped. */
static int
composite_record(const struct match_run *r, const uint8_t *h, const store_cand_t *c,
    hie_mpi_composite_t *comp, bool *excluded)
{
    char euid[HIE_MPI_EUID_BYTES];
    bool merged = false;
    hie_mpi_vector_t v;
    if (r->self != NULL && memcmp(h, r->self, HIE_MPI_REC_HASH_BYTES) == 0) {
        return 0;
    }
    int rc = cand_vector(r, h, NULL, euid, &merged, &v);
    if (rc == HIE_ENOTFOUND && r->self == NULL) {
        return 0; /* a reader's snapshot is older than the cache */
    }
    if (rc != 0) {
        return rc == HIE_ENOTFOUND ? HIE_ECORRUPT : rc; /* a member that is no record */
    }
    if (merged || strcmp(euid, c->euid) != 0) {
        return r->self == NULL ? 0 : HIE_ECORRUPT; /* the writer's members and cache agree */
    }
    if (r->self != NULL && run_nolink(r, h)) {
        *excluded = true;
        return 0;
    }
    store_cand_t one;
    score_vector(r, &v, &one);
    atomic_fetch_add(&r->s->stats.candidates, 1);
    hie_mpi_composite_add(comp, one.explain);
    return 0;
}

/* Replaces c's weight and explanation by its EUID's composite over its first
 * HIE_MPI_COMPOSITE_MEMBERS_MAX records (hash order), or by -inf when one of them must not
 * be linked to p. An EUID of one record keeps its weight: the composite of one record is its
 * weight, and the first pass already excluded it if p must not be linked to it (at 100,000
 * generated persons rescoring them was 0.8 of the 16.0 records scored per feed). */
static int
composite_euid(const struct match_run *r, hie_arena_t *arena, store_cand_t *c)
{
    uint8_t *hashes = NULL;
    size_t n = 0;
    hie_mpi_composite_t comp;
    bool excluded = false;
    hie_mpi_composite_init(&comp);
    int rc = r->writer ? store__members_w(r->s, r->txn, c->euid, arena, &hashes, &n)
                       : store__members(r->s, r->txn, c->euid, arena, &hashes, &n);
    if (rc == 0 && n == 1) {
        return 0; /* its one record is the candidate the first pass scored: the same weight */
    }
    size_t i = 0;
    for (; rc == 0 && !excluded && i < n; i++) {
        if (comp.records == HIE_MPI_COMPOSITE_MEMBERS_MAX) {
            break;
        }
        rc = composite_record(r, hashes + i * HIE_MPI_REC_HASH_BYTES, c, &comp, &excluded);
    }
    /* the members past the composite's: not scored, but a manual no-link with any of them
     * still keeps p out of the EUID (an operator said they are different people) */
    for (; rc == 0 && !excluded && r->self != NULL && i < n; i++) {
        excluded = run_nolink(r, hashes + i * HIE_MPI_REC_HASH_BYTES);
    }
    if (rc == 0 && excluded) {
        c->weight = -INFINITY;
    } else if (rc == 0 && comp.records > 0) {
        c->weight = hie_mpi_composite_weight(&comp, c->explain);
    }
    return rc;
}

/* The composite pass (hie/mpi_match.h): the first HIE_MPI_COMPOSITE_EUIDS_MAX candidates, best
 * first, that reach HIE_MPI_COMPOSITE_WEIGHT_MIN; then the list is sorted again. */
static int
match_composite(const struct match_run *r, hie_arena_t *arena, store_match_t *m)
{
    int rc = 0;
    size_t done = 0;
    for (size_t i = 0; rc == 0 && i < m->n && done < HIE_MPI_COMPOSITE_EUIDS_MAX; i++) {
        if (m->cand[i].weight < HIE_MPI_COMPOSITE_WEIGHT_MIN) {
            break; /* sorted: no later one reaches it either */
        }
        rc = composite_euid(r, arena, &m->cand[i]);
        done++;
    }
    if (rc == 0 && done > 0) {
        cand_sort(m->cand, m->n);
        while (m->n > 0 && isinf(m->cand[m->n - 1].weight)) {
            m->n--; /* excluded by a record the first pass had not seen */
        }
    }
    return rc;
}

/* Scores the candidates into out (per EUID), drops the excluded EUIDs, sorts best first. */
static int
match_first_pass(const struct match_run *r, const uint8_t *hashes, size_t n,
    hie_arena_t *arena, store_match_t *out)
{
    uint16_t *index = hie_arena_alloc(arena, SLOT_INDEX_BYTES * sizeof(*index));
    if (index == NULL) {
        return HIE_ENOMEM;
    }
    memset(index, 0, SLOT_INDEX_BYTES * sizeof(*index));
    int rc = 0;
    size_t prep_from = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        HIE_DEBUG_ASSERT(i == 0 || memcmp(hashes + (i - 1) * HIE_MPI_REC_HASH_BYTES,
            hashes + i * HIE_MPI_REC_HASH_BYTES, HIE_MPI_REC_HASH_BYTES) < 0);
        rc = match_record(r, hashes + i * HIE_MPI_REC_HASH_BYTES, &prep_from, out, index);
    }
    size_t kept = 0; /* drop the EUIDs p must not join (manual no-link) */
    for (size_t i = 0; rc == 0 && i < out->n; i++) {
        if (!isinf(out->cand[i].weight)) {
            out->cand[kept++] = out->cand[i];
        }
    }
    out->n = rc == 0 ? kept : out->n;
    return rc;
}

int
store__match(hie_mpi_store_t *s, MDB_txn *txn, const hie_mpi_model_t *model,
    const hie_mpi_person_t *p, const uint8_t *self, const hie_mpi_prepared_t *prep,
    bool merged_nolinks, hie_arena_t *arena, store_match_t *out)
{
    uint8_t *hashes = NULL;
    size_t n = 0;
    out->n = 0;
    int rc = candidates(s, txn, p, self, prep, arena, &hashes, &n);
    out->cand = rc == 0 ? hie_arena_alloc(arena, (n + 1) * sizeof(*out->cand)) : NULL;
    if (rc == 0 && out->cand == NULL) {
        rc = HIE_ENOMEM;
    }
    atomic_fetch_add(&s->stats.matches, 1);
    struct match_run r = {s, txn, model, {{{0}}}, {0, 0}, p, self, prep, self != NULL,
        merged_nolinks && self != NULL, {0}, 0};
    if (r.merged_nolinks) {
        r.n_self = merged_set(s, txn, self, r.self_set);
    }
    if (rc == 0) {
        hie_mpi_weights_fill(model, &r.wt);
        r.freq[0] = store__tf_freq(s, HIE_MPI_F_GIVEN, p->given, r.writer);
        r.freq[1] = store__tf_freq(s, HIE_MPI_F_FAMILY, p->family, r.writer);
    }
    rc = rc == 0 ? match_first_pass(&r, hashes, n, arena, out) : rc;
    if (rc != 0) {
        return rc;
    }
    cand_sort(out->cand, out->n);
    return match_composite(&r, arena, out);
}

int
store__explain(const hie_mpi_model_t *model, const store_cand_t *c, const char *rule,
    hie_arena_t *arena, Hie__V1__MatchExplanation **out)
{
    Hie__V1__MatchExplanation *e = hie_arena_alloc(arena, sizeof(*e));
    Hie__V1__FieldScore *fs = hie_arena_alloc(arena, HIE_MPI_FIELD_COUNT * sizeof(*fs));
    Hie__V1__FieldScore **fp = hie_arena_alloc(arena, HIE_MPI_FIELD_COUNT * sizeof(*fp));
    char *euid = hie_arena_alloc(arena, HIE_MPI_EUID_BYTES);
    if (e == NULL || fs == NULL || fp == NULL || euid == NULL) {
        return HIE_ENOMEM;
    }
    hie__v1__match_explanation__init(e);
    snprintf(euid, HIE_MPI_EUID_BYTES, "%s", c->euid);
    e->candidate_euid = euid;
    e->weight = c->weight;
    e->probability = hie_mpi_probability(model, c->weight);
    e->model_version = model->version;
    e->rule = (char *)(uintptr_t)rule;
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        hie__v1__field_score__init(&fs[f]);
        fs[f].field = (char *)(uintptr_t)hie_mpi_field_name((enum hie_mpi_field)f);
        fs[f].level = (char *)(uintptr_t)hie_mpi_level_name((enum hie_mpi_field)f,
            c->explain[f].level);
        fs[f].weight = c->explain[f].weight;
        fp[f] = &fs[f];
    }
    e->n_fields = HIE_MPI_FIELD_COUNT;
    e->fields = fp;
    *out = e;
    return 0;
}

int
store__patient_id(hie_mpi_store_t *s, const Hie__V1__MpiRecord *rec, hie_arena_t *arena,
    Hie__V1__PatientId **out)
{
    Hie__V1__SealedPerson *sp = NULL;
    Hie__V1__PatientId *id = hie_arena_alloc(arena, sizeof(*id));
    if (id == NULL) {
        return HIE_ENOMEM;
    }
    int rc = store__rec_open(s, rec, arena, &sp);
    if (rc != 0) {
        return rc;
    }
    hie__v1__patient_id__init(id);
    id->org_id = rec->org_id;
    id->mrn = sp->mrn;
    *out = id;
    return 0;
}
