/*
 * store_int.h - internals shared by store.c (databases, records, readers) and
 * store_apply.c (matching and the commands). Not visible outside mpi/.
 */
#ifndef HIE_MPI_STORE_INT_H
#define HIE_MPI_STORE_INT_H

#include "hie/mpi_store.h"
#include "mpi_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define STORE_MAGIC 0x4d504953u /* "MPIS" */
/* A40 merges a record's lookup follows to its surviving record, at most (feed_merge refuses
 * a merge that would chain deeper; store_read.c's surviving() follows them). */
#define MERGE_CHAIN_MAX 16u
/* Commands stamped since 2026-11-30T19:00Z (their own clock, so a log written before replays
 * as it applied): an automatic link into an EUID of STORE_AUTO_LINK_MEMBERS_MAX records or
 * more goes to review, and a review link or A40 merge that would take an EUID past
 * HIE_MPI_EUID_MEMBERS_MAX is refused (past that, the member lists reads see are cut and
 * consent fails closed for the patient). */
#define STORE_EUID_BOUNDS_SINCE_MS 1796065200000ll
#define STORE_MERGE_DEPTH_SINCE_MS 1796058000000ll
/* From 2026-11-30T21:30Z (by the rules clock): an update that lands in review again against
 * the same EUID reuses the record's open item instead of adding one more; "keep apart"
 * closes an item whose candidate EUID is gone or whose record was merged since (nothing left
 * to keep apart: such items stayed open for good), and is refused for a record already in
 * the candidate EUID (it used to write no-links and leave the record linked). */
#define STORE_REVIEW_DEDUP_SINCE_MS 1796074200000ll
/* From 2026-12-01T00:00Z (by the rules clock): a create or update of an MRN an A40 merged into
 * another record is refused as such (create said "use update", and update "no record"). */
#define STORE_MERGED_MRN_SINCE_MS 1796083200000ll
/* From the same time: a manual no-link binds the records merged (A40) into either record too
 * (the prior and the survivor are one person), and an A40 does not fold the prior's other
 * records into the survivor's EUID past a no-link. */
#define STORE_MERGED_NOLINK_SINCE_MS 1796083200000ll
/* 2026-12-01T03:00Z: a review decision on a record merged since writes no history event (it
 * named the survivor's EUID at the merge, stretching the record's last span to the decision:
 * an accounting then took in another patient's disclosures). */
#define STORE_MERGED_NO_HIST_SINCE_MS 1796094000000ll
/* From the same time: an unlink of a merged MRN, or a merge into one, is refused as merged
 * (BAD_REQUEST, as create and update are), not NOT_FOUND "no record of this MRN". */
#define STORE_MERGED_ERRORS_SINCE_MS 1796094000000ll
/* From 2026-12-01T05:30Z: a candidate whose national ids and birth dates both differ from the
 * record's (hie_mpi_ids_conflict) is never linked or merged automatically (review at most): a
 * father and son of one name at one address linked on the strength of the rest. */
#define STORE_ID_CONFLICT_SINCE_MS 1796103000000ll
/* From 2026-12-01T07:00Z: a fold also skips an EUID whose records, every one, conflict so with
 * one of the best EUID's (the record itself as fed, not as cached before an update): a sparse
 * record matching a father and his son kept apart merged them. Later than the binaries of the
 * rule above, which folded without it. */
#define STORE_FOLD_CONFLICT_SINCE_MS 1796108400000ll
/* The time a rule's start is compared with: the rules clock, never before the command's own. */
static inline int64_t
store__rules_ms(const hie_mpi_apply_ctx_t *ctx)
{
    return ctx->rules_ms > ctx->time_ms ? ctx->rules_ms : ctx->time_ms;
}
#define STORE_AUTO_LINK_MEMBERS_MAX 64u

/* A batch's written values (touched.c). slots: a power of two; the set is full at half. */
typedef struct store_touched {
    uint64_t *val;
    uint32_t *stamp;                     /* slot used when it equals epoch */
    size_t slots, n;
    uint32_t epoch;
    bool on, full;
} store_touched_t;
/* Allocates slots slots (a power of two). Returns 0 or HIE_ENOMEM. */
int store__touched_init(store_touched_t *t, size_t slots);
void store__touched_free(store_touched_t *t);
void store__touched_start(store_touched_t *t);
void store__touched_stop(store_touched_t *t);
/* Records v (NULL t, or a set not started: nothing). */
void store__touched_add(store_touched_t *t, uint64_t v);
/* False only when v was certainly not written since start (NULL t: true). */
bool store__touched_has(const store_touched_t *t, uint64_t v);
/* A record hash's value in the set. */
uint64_t store__touched_hash(const uint8_t *rec_hash);

/* The blocking index in memory (blocks.c). */
typedef struct store_blocks store_blocks_t;
int store__blocks_create(store_blocks_t **out);
void store__blocks_destroy(store_blocks_t **b);
/* Every key a change touches from now on goes into t (NULL: none). Log thread. */
void store__blocks_track(store_blocks_t *b, store_touched_t *t);
/* Adds (add) or removes hash under each non-zero key. Log thread only. Returns 0 or
 * HIE_ENOMEM (the caller stops: the index would no longer match the records). */
int store__blocks_change(store_blocks_t *b, const uint64_t *keys, size_t n,
    const uint8_t *hash, bool add);
/* Copies the records of block key (in hash order) except self into out (16 bytes each), or
 * nothing and *capped when the block holds more than cap. Any thread; writer: the caller is
 * the log thread, the one writer, whose reads need no lock. */
size_t store__blocks_get(store_blocks_t *b, uint64_t key, const uint8_t *self, bool writer,
    uint8_t *out, size_t cap, bool *capped);
/* Merges the sorted runs of a that end at run_ends (in order, some empty; total records) into
 * one sorted run without repeats: merge sort's passes, two runs at a time, between a and tmp
 * (as large as a). Returns the buffer holding it; *n its length. */
uint8_t *store__hashes_merge(uint8_t *a, uint8_t *tmp, size_t total,
    const size_t run_ends[HIE_MPI_BLOCK_KEYS], size_t *n);
/* store__blocks_get for every key (0: none) under one lock, block after block into out; ends[i]
 * is where key i's records end (each block's run is in hash order), *capped counts the blocks
 * over their cap. Returns the total. */
size_t store__blocks_get_all(store_blocks_t *b, const uint64_t keys[HIE_MPI_BLOCK_KEYS],
    const size_t caps[HIE_MPI_BLOCK_KEYS], const uint8_t *self, bool writer, uint8_t *out,
    size_t ends[HIE_MPI_BLOCK_KEYS], uint64_t *capped);

struct hie_mpi_store {
    uint32_t magic;
    MDB_env *env;
    MDB_dbi rec, euid, nolink, review, hist, meta;
    /* mpi_merged (dupsort): a survivor's rec_hash -> each record an A40 merged into it. Since
     * 2026-12-01; filled from the records at the first open (meta "merged_index"). */
    MDB_dbi merged;
    MDB_dbi mdepth; /* mpi_mdepth: live rec_hash -> u32, the longest A40 chain ending at it */
    MDB_dbi review_open; /* mpi_review_open: rec_hash || candidate EUID -> the open item's id
                          * (items since STORE_REVIEW_DEDUP_SINCE_MS) */
    /* A read that could not answer yes or no (an LMDB error, not "absent") during a decision:
     * the feed's apply then fails (the node stops) instead of deciding on a guess. */
    _Atomic int read_failed;
    store_blocks_t *blocks;   /* derived from the records' block keys; rebuilt at open */
    /* Term frequencies of names, derived from the records' tf keys (rebuilt at open, counted
     * by apply: see store__tf_change). Writer: the log thread; tf_lock for the others. */
    hie_mpi_tf_t *tf;
    pthread_rwlock_t tf_lock;
    struct store_people *people; /* derived: each record's EUID and normalized form */
    struct store_members *members; /* derived: mpi_euid in memory, for the writer (members.c) */
    const hie_mpi_key_t *key;
    uint8_t secret[16];
    /* While the match pool has a batch open: what apply wrote to the candidate cache and the
     * blocking index since it began (pool.c owns them). NULL otherwise. Log thread. */
    store_touched_t *touched_recs, *touched_keys;
    hie_mpi_store_stats_t stats;
};

/* One candidate enterprise id while matching: its best-scoring record. */
typedef struct store_cand {
    char euid[HIE_MPI_EUID_BYTES];
    double weight;
    uint8_t rec_hash[HIE_MPI_REC_HASH_BYTES];
    hie_mpi_contribution_t explain[HIE_MPI_FIELD_COUNT];
} store_cand_t;

typedef struct store_match {
    store_cand_t *cand;     /* arena, best first after store__match() */
    size_t n;
} store_match_t;

/* mpi_histb keys: [index >> STORE_HIST_BUCKET_SHIFT, BE32][rec_hash][index BE64][seq BE32]. A
 * group commit's events (consecutive indexes) share one or two buckets, so they fill a few
 * new pages instead of each dirtying a random page of the whole history (the history was half
 * of the MPI's pages); a record's events are found with one seek per bucket. */
#define STORE_HIST_BUCKET_SHIFT 10u
#define STORE_HIST_KEY_BYTES (4u + HIE_MPI_REC_HASH_BYTES + 12u)
void store__hist_key(const uint8_t *rec_hash, uint64_t index, uint32_t seq,
    uint8_t out[STORE_HIST_KEY_BYTES]);
/* Calls fn with each stored event (its value) of record h, oldest first, one seek per bucket
 * that holds them; fn returns 0 (go on), 1 (stop) or an error. Returns 0 or the error. */
int store__hist_each(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *h,
    int (*fn)(void *ctx, const MDB_val *event), void *ctx);

int store__rc(int mdb_rc);
int store__meta_u64(hie_mpi_store_t *s, MDB_txn *txn, const char *name, uint64_t *out);
int store__meta_put_u64(hie_mpi_store_t *s, MDB_txn *txn, const char *name, uint64_t v);
int store__meta_add(hie_mpi_store_t *s, MDB_txn *txn, const char *name, int64_t delta);
int store__put_msg(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, const ProtobufCMessage *msg);
/* The same with mdb_put flags (MDB_APPEND). */
int store__put_msg_flags(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, const ProtobufCMessage *msg,
    unsigned flags);
/* Record by hash; HIE_ENOTFOUND when absent. */
int store__rec_get(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *hash, hie_arena_t *arena,
    Hie__V1__MpiRecord **out);
int store__rec_put(hie_mpi_store_t *s, MDB_txn *txn, const Hie__V1__MpiRecord *rec);
/* Opens a stored record's sealed person. HIE_ECORRUPT if it does not open. */
int store__rec_open(hie_mpi_store_t *s, const Hie__V1__MpiRecord *rec, hie_arena_t *arena,
    Hie__V1__SealedPerson **out);
/* The normalized person in a flat form: dob (4 bytes BE), then nine fields as a length byte
 * and the bytes. At most STORE_NORM_BYTES_MAX. */
#define STORE_NORM_BYTES_MAX (4u + 9u * 256u)
size_t store__norm_pack(const hie_mpi_person_t *p, uint8_t *out);
/* Opens a record's sealed normalized form into plain (STORE_NORM_BYTES_MAX bytes); [out] *len.
 * HIE_ECORRUPT if it does not open. The caller wipes plain. */
int store__rec_norm(hie_mpi_store_t *s, const Hie__V1__MpiRecord *rec, uint8_t *plain,
    size_t *len);
/* The same, unpacked into a prepared person. HIE_ECORRUPT if it fails. */
int store__rec_person(hie_mpi_store_t *s, const Hie__V1__MpiRecord *rec, hie_mpi_person_t *p);
/* The flat form back into a person (not prepared). HIE_ECORRUPT when malformed. */
int store__norm_unpack(const uint8_t *in, size_t len, hie_mpi_person_t *p);

/* The candidate cache in memory (people.c): record hash -> EUID, merged, normalized form.
 * Writers: the log thread only. */
typedef struct store_people store_people_t;
int store__people_create(store_people_t **out);
void store__people_destroy(store_people_t **p);
/* Every record whose entry changes from now on goes into t (NULL: none). Log thread. */
void store__people_track(store_people_t *p, store_touched_t *t);
/* Keeps the normalized form norm (len bytes) of hash, with its NYSIIS codes. Returns 0,
 * HIE_ECORRUPT (norm does not unpack) or HIE_ENOMEM. Log thread (or open). */
int store__people_put_norm(store_people_t *p, const uint8_t *hash, const uint8_t *norm,
    size_t len);
/* Keeps hash's EUID, merged flag and key in mpi_recs (seq, never 0; a record's key never
 * changes). Returns 0, HIE_ENOMEM, or HIE_ECORRUPT when hash has another key already (a file
 * with two records of one hash). Log thread (or open). */
int store__people_put_link(store_people_t *p, const uint8_t *hash, const char *euid,
    bool merged, uint64_t seq);
/* hash's key in mpi_recs into *seq; false (and 0) when the cache does not hold the record.
 * Any thread. */
bool store__people_seq(store_people_t *p, const uint8_t *hash, uint64_t *seq);
/* [out] euid, merged and (unless merged) the person, unpacked and prepared (its NYSIIS codes
 * from the cache), and the form's generation (gen may be NULL). HIE_ENOTFOUND when the cache
 * does not hold the record. Any thread; writer: the caller is the log thread, the one writer,
 * whose reads need no lock. */
/* A copy of one cache entry, taken under the lock with others (store__people_get_many). */
#define STORE_PEOPLE_READ_MAX 8u
typedef struct store_people_read {
    bool found;
    bool merged;
    uint64_t gen;
    char euid[HIE_MPI_EUID_BYTES];
    size_t len;
    uint8_t norm[STORE_NORM_BYTES_MAX + 3u * HIE_MPI_NYSIIS_BUF_BYTES]; /* form, then codes */
} store_people_read_t;
/* Copies the entries of n (at most STORE_PEOPLE_READ_MAX) records under one read lock: one
 * lock for a handful of candidates instead of one each. Returns how many the cache holds. */
size_t store__people_get_many(store_people_t *p, const uint8_t *hashes, size_t n,
    store_people_read_t *out);
/* The person of a found copy (not merged); wipes the copy's form. Returns 0 or HIE_ECORRUPT. */
int store__people_read_person(store_people_read_t *r, hie_mpi_person_t *person);
int store__people_get(store_people_t *p, const uint8_t *hash, bool writer,
    char euid[HIE_MPI_EUID_BYTES], bool *merged, hie_mpi_person_t *person, uint64_t *gen);
/* The same without the person: euid, merged and the form's generation. */
int store__people_peek(store_people_t *p, const uint8_t *hash, bool writer,
    char euid[HIE_MPI_EUID_BYTES], bool *merged, uint64_t *gen);
/* Starts loading the entries and forms of n records (16-byte hashes) into the cache, so that
 * reading them one by one next waits for memory once rather than twice per record. */
void store__people_prefetch(store_people_t *p, const uint8_t *hashes, size_t n);
/* A stored record's hash and key in mpi_recs. */
typedef struct store_rec_ref {
    uint8_t hash[HIE_MPI_REC_HASH_BYTES];
    uint64_t seq;
} store_rec_ref_t;
/* Copies the hash and key of every stored record the cache holds, at most max, into out (in
 * no order). Returns how many. Any thread. */
size_t store__people_keys(store_people_t *p, store_rec_ref_t *out, size_t max);
/* Records the cache holds (merged ones too). Any thread. */
uint64_t store__people_count(store_people_t *p);
/* Members of an EUID (at most HIE_MPI_EUID_MEMBERS_MAX), 16 bytes each, into arena, in
 * mpi_euid's order, as txn sees them. store__members_w: the same for the writer's txn, from
 * memory (members.c) while the table is on. */
int store__members(hie_mpi_store_t *s, MDB_txn *txn, const char *euid, hie_arena_t *arena,
    uint8_t **hashes, size_t *n);
int store__members_w(hie_mpi_store_t *s, MDB_txn *txn, const char *euid, hie_arena_t *arena,
    uint8_t **hashes, size_t *n);
/* hie_mpi_store_identity in the writer's txn (writer: apply's member lists) or a reader's. */
int store__identity(hie_mpi_store_t *s, MDB_txn *txn, const char *euid, bool writer,
    hie_arena_t *arena, hie_mpi_euid_span_t **spans, size_t *n);

/* Takes l (an in-memory table's lock) for reading, as a reader thread: while the writer
 * holds it, yields the core up to STORE_RDLOCK_YIELDS times before blocking on it (store.c). */
void store__rdlock(pthread_rwlock_t *l);

/* Binary search of h among n sorted 16-byte record hashes: where it is (*found) or would go. */
static inline size_t
store__hash_search(const uint8_t *hs, size_t n, const uint8_t *h, bool *found)
{
    size_t lo = 0, hi = n;
    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(hs + mid * HIE_MPI_REC_HASH_BYTES, h, HIE_MPI_REC_HASH_BYTES);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Each EUID's members in memory (members.c). Log thread only. */
typedef struct store_members store_members_t;
int store__members_create(store_members_t **out);
void store__members_destroy(store_members_t **m);
/* Turns the table off for good (a store opened without the data key never applies). */
void store__members_disable(store_members_t *m);
/* False once the table has turned itself off (then LMDB answers). */
bool store__members_on(const store_members_t *m);
/* Next to every mpi_euid put and delete of (euid, h). */
void store__members_add(store_members_t *m, const char *euid, const uint8_t *h);
void store__members_del(store_members_t *m, const char *euid, const uint8_t *h);
/* euid's members, sorted, valid until the next change: false when the table is off. */
bool store__members_peek(store_members_t *m, const char *euid, const uint8_t **hashes,
    size_t *n);
/* Counts (delta 1) or uncounts (-1) the record's names (its tf keys) in the term
 * frequencies. Log thread. Returns 0, HIE_ENOMEM or HIE_ECORRUPT (the caller stops). */
int store__tf_change(hie_mpi_store_t *s, const Hie__V1__MpiRecord *rec, int delta);
/* The tf key of a normalized name value: a keyed hash of the field and value (never the
 * name); 0 for an empty value. */
uint64_t store__tf_key(const hie_mpi_store_t *s, enum hie_mpi_field f, const char *value);
/* Term frequency of a normalized name value (0 when unknown, or while the field counts fewer
 * than HIE_MPI_TF_TOTAL_MIN records). Any thread; writer: the caller is the log thread. */
double store__tf_freq(hie_mpi_store_t *s, enum hie_mpi_field f, const char *value, bool writer);
bool store__nolink(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *a, const uint8_t *b);
/* The same between the records a (na) and b (nb), each with the records A40 merges folded
 * into it; more than 256 on a side counts as a no-link (kept apart). */
bool store__nolink_sets(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *a, size_t na,
    const uint8_t *b, size_t nb);
/* Largest EUID an automatic merge touches (hie_mpi_decide() folds): both EUIDs must have at
 * most this many records, so the manual no-link check between them is at most 64 x 64 reads.
 * Larger ones stay apart (an operator merges them); a person has a few records, so an EUID
 * this large is already a chain of merges that should not grow by itself. */
#define STORE_FOLD_MEMBERS_MAX 64u
/* What the match pool prepared for one feed command (pool.c): the command's person, opened
 * and validated, and its comparison with each candidate it found (sorted by hash), with the
 * generation of the candidate's form it compared. */
typedef struct store_prep_vec {
    uint8_t hash[HIE_MPI_REC_HASH_BYTES];
    uint64_t gen;
    char euid[HIE_MPI_EUID_BYTES];
    bool merged;                         /* then v is not set */
    hie_mpi_vector_t v;
} store_prep_vec_t;
/* A record's sealed forms, as apply stores them (store__seals_make): the person as sent and
 * its normalized form, each under a nonce derived from the command's. */
typedef struct store_seals {
    bool ready;
    uint8_t nonce[HIE_MPI_SEAL_NONCE_BYTES];
    uint8_t *sealed;                     /* arena */
    size_t sealed_len;
    uint8_t norm_nonce[HIE_MPI_SEAL_NONCE_BYTES];
    uint8_t *norm_sealed;                /* arena */
    size_t norm_sealed_len;
    uint8_t norm_plain[STORE_NORM_BYTES_MAX]; /* for the candidate cache; zeroed by the owner */
    size_t norm_len;
} store_seals_t;

struct hie_mpi_prepared {
    Hie__V1__SealedPerson *sp;
    hie_mpi_person_t p;
    store_prep_vec_t *vec;               /* every candidate the cache held, sorted by hash */
    size_t n;
    uint8_t *hashes;                     /* the candidates (store__candidates) */
    size_t n_hashes;
    uint64_t keys[HIE_MPI_BLOCK_KEYS];   /* p's block keys, each read with caps[i] */
    size_t caps[HIE_MPI_BLOCK_KEYS];
    uint64_t capped;
    store_seals_t seals;                 /* the record's sealed forms, sealed by the pool */
};
/* Seals sp (the person as sent) and p (its normalized form) for the record cmd->rec_hash.
 * Deterministic (nonces derived from the command's), so the pool can do it ahead of apply.
 * Returns 0, HIE_ENOMEM or the seal's error. */
HIE_MUST_CHECK int store__seals_make(hie_mpi_store_t *s, hie_arena_t *arena,
    const Hie__V1__MpiFeedCommand *cmd, Hie__V1__SealedPerson *sp, const hie_mpi_person_t *p,
    store_seals_t *out);
/* The pool's comparison with candidate hash, or NULL when it found no such candidate. from:
 * NULL, or where to look from for a caller that asks in increasing hash order (the candidate
 * lists are in that order): it moves forward, so a whole list costs one pass. */
const store_prep_vec_t *store__prep_find(const hie_mpi_prepared_t *prep, const uint8_t *hash,
    size_t *from);
/* Opens a create's or update's sealed person (arena) and validates it into p. Returns 0,
 * HIE_ENOMEM, or HIE_EINVAL with *field and *reason set for the refusal. Any thread. */
int store__feed_person(hie_mpi_store_t *s, const Hie__V1__MpiFeedCommand *cmd,
    hie_arena_t *arena, Hie__V1__SealedPerson **sp, hie_mpi_person_t *p, const char **field,
    const char **reason);
/* The distinct records under keys (except self), each block read with its cap, sorted;
 * [out] *capped blocks skipped at their cap. Any thread. */
int store__candidates(hie_mpi_store_t *s, const uint64_t keys[HIE_MPI_BLOCK_KEYS],
    const size_t caps[HIE_MPI_BLOCK_KEYS], const uint8_t *self, bool writer,
    hie_arena_t *arena, uint8_t **out, size_t *n, uint64_t *capped);
/* The block keys of p and the cap each is read with in an index of records records, for an
 * identity feed (feed) or a query. */
void store__block_caps(hie_mpi_store_t *s, const hie_mpi_person_t *p,
    const hie_mpi_prepared_t *prep, uint64_t records, bool feed,
    uint64_t keys[HIE_MPI_BLOCK_KEYS], size_t caps[HIE_MPI_BLOCK_KEYS]);
/* p's block keys: the pool's (prep, computed from the same person) or computed here. */
void store__person_keys(hie_mpi_store_t *s, const hie_mpi_person_t *p,
    const hie_mpi_prepared_t *prep, uint64_t keys[HIE_MPI_BLOCK_KEYS]);
/* Scores every candidate of p (skipping self, merged records and records p must not be
 * linked to: merged_nolinks, STORE_MERGED_NOLINK_SINCE_MS, also through the records A40
 * merges folded into either) and aggregates per EUID, best first. prep (may be NULL): the
 * pool's comparisons, taken for the candidates whose form they compared. */
int store__match(hie_mpi_store_t *s, MDB_txn *txn, const hie_mpi_model_t *model,
    const hie_mpi_person_t *p, const uint8_t *self, const hie_mpi_prepared_t *prep,
    bool merged_nolinks, hie_arena_t *arena, store_match_t *out);
/* Fills an explanation message (arena) from a candidate. */
int store__explain(const hie_mpi_model_t *model, const store_cand_t *c, const char *rule,
    hie_arena_t *arena, Hie__V1__MatchExplanation **out);
/* The PatientId of a record (opens it for the MRN). */
int store__patient_id(hie_mpi_store_t *s, const Hie__V1__MpiRecord *rec, hie_arena_t *arena,
    Hie__V1__PatientId **out);

#endif
