/*
 * hie/mpi_store.h - the master patient index in LMDB: source records, enterprise ids (EUIDs),
 * links, merges, unlinks, the review queue and the history of every link decision
 * (design.md "Master patient index", issue 3 points 1, 2, 5 and 6).
 *
 * Two halves:
 *  - the proposer side (feed.c), run by a worker before a command is submitted: validate a
 *    member's demographics into the matcher's normalized form, naming the bad field, and seal
 *    them (XChaCha20-Poly1305 under the operator's data key, fresh random nonce) so the
 *    command log never holds PHI in plain text;
 *  - the state side (store.c), run inside the state machine's write transaction (apply,
 *    deterministic: everything comes from the command and the state) and by readers in their
 *    own read transactions (PIX, PDQ, review list, training).
 *
 * Databases (in the node's state environment, so one transaction covers the command, its
 * dedup entry and the MPI change): mpi_recs (seq(8) -> MpiRecord: records keyed in the order
 * of their first write, so a batch of creates appends instead of dirtying a random page per
 * record; found by hash through the candidate cache), mpi_euid (dupsort: EUID -> rec_hash),
 * mpi_nolink (rec_hash pair -> ""), mpi_review (id(8) -> ReviewItem), mpi_histb
 * (bucket(4) rec_hash(16) index(8) seq(4) -> LinkEvent; the bucket is index >> 10, so a group
 * commit's events fill new pages together), mpi_meta (counters and the model). A record
 * keeps its normalized form sealed apart (what the candidate cache is rebuilt from).
 *
 * PHI: names, dates, addresses, phone, e-mail, national id and MRN are only ever stored sealed;
 * index keys are keyed hashes (hie_mpi_key_index_secret). Nothing here logs.
 *
 * The blocking index (block key -> records) and the term frequencies of names (each record's
 * tf keys: keyed hashes of its given and family name) are derived state kept in memory
 * (blocks.c; match.c's table under the store's lock) and rebuilt from the records when the
 * store opens. Until 2026-11-30 the frequencies were a database, mpi_tf: two random B-tree
 * pages per record in every commit. It is dropped at the first open.
 *
 * Threads: a store handle is shared; apply runs on the log thread only; readers on any thread
 * with their own read transaction.
 */
#ifndef HIE_MPI_STORE_H
#define HIE_MPI_STORE_H

#include "hie/mpi.h"
#include "hie/proto.h"

#include <lmdb.h>
#include <stdatomic.h>

/* ---- limits ------------------------------------------------------------------------------ */
#define HIE_MPI_GIVEN_MAX 8u          /* given names per record */
#define HIE_MPI_FAMILY_MAX 4u         /* family names per record */
#define HIE_MPI_ADDRESS_LINES_MAX 4u
#define HIE_MPI_MRN_BYTES_MAX 64u     /* printable ASCII, no spaces */
#define HIE_MPI_EMAIL_BYTES_MAX 127u
#define HIE_MPI_NATIONAL_ID_BYTES_MAX 31u
#define HIE_MPI_TARGET_ORGS_MAX 64u   /* PIX target organizations */
#define HIE_MPI_PDQ_LIMIT_MAX 50u     /* what a member may ask for */
/* What the node fetches, for consent to thin out without shortening a member's page (which
 * would tell that a hidden better match exists): one audit record's subjects. */
#define HIE_MPI_PDQ_FETCH_MAX 64u
#define HIE_MPI_PDQ_LIMIT_DEFAULT 10u
#define HIE_MPI_REVIEW_PAGE_MAX 500u
#define HIE_MPI_REVIEW_PAGE_DEFAULT 100u
/* Largest block read (PDQ's cap); a larger block is skipped (and counted): a block that big
 * is a common value ("smith" + 1970) that says little, and the other keys still find true
 * pairs. Training caps its own blocks (hie_mpi_train_opts_t). */
#define HIE_MPI_BLOCK_CAP 64u
/* Largest block an identity feed is matched against, a quarter of PDQ's. At 1M generated
 * persons (bench_mpi_store, 2026-11-30) going from 64 to 32 took a feed's candidates from 66 to
 * 44, and from 32 to 16 to 27.5, with F1 0.9832, 0.9835, 0.9834 (precision 0.9913 -> 0.9929,
 * recall 0.9759 -> 0.9741, the review band 18,263 -> 14,220 records) and ingest 15.0k-15.7k ->
 * 19.9k-20.9k records/s; the labelled sets (FEBRL1/2, fake_1000) do not change at all. A PDQ
 * question is partial and still needs the larger blocks (recall@10 0.919 at 64, 0.887 at 32).
 * The price: a person's 17th source record with the very same demographics as the other 16
 * shares no block small enough and becomes a new EUID (sent to review if a key still finds a
 * record). Records of one person at different organizations rarely agree on every field: the
 * phone, e-mail and street keys keep such a record's blocks small. */
#define HIE_MPI_FEED_BLOCK_CAP 16u
/* Distinct candidate records scored per match. */
#define HIE_MPI_CANDIDATES_MAX (HIE_MPI_BLOCK_KEYS * HIE_MPI_BLOCK_CAP)
/* Source records per EUID read by PIX and merge (a person has a handful; 1,000 is an error). */
#define HIE_MPI_EUID_MEMBERS_MAX 1000u
#define HIE_MPI_SHARDS_DEFAULT 64u
/* Term-frequency adjustment starts once the index holds this many values of a name field. */
#define HIE_MPI_TF_TOTAL_MIN 1000u
#define HIE_MPI_REC_HASH_BYTES 16u
#define HIE_MPI_EUID_BYTES 16u        /* "E" + 12 digits + NUL fits */

/* ---- proposer side (feed.c) -------------------------------------------------------------- */
/* Validates demographics and fills the matcher's normalized person. partial = false for a
 * feed (a name or birth date is required as for PDQ; every value is checked), true for PDQ.
 * On failure info names the field ("demographics.given", ...) with a static reason, and the
 * result is zeroed. Returns 0, HIE_EINVAL or HIE_ELIMIT. Any thread; reentrant. */
HIE_MUST_CHECK int hie_mpi_person_from_demographics(const Hie__V1__Demographics *d,
    hie_mpi_person_t *out, hie_errinfo_t *info);
/* True when mrn is 1..HIE_MPI_MRN_BYTES_MAX printable ASCII bytes without spaces. */
bool hie_mpi_mrn_valid(const char *mrn);
/* The record's identity: keyed hash (index secret) of org_id NUL mrn. */
void hie_mpi_rec_hash(const hie_mpi_key_t *key, const char *org_id, const char *mrn,
    uint8_t out[HIE_MPI_REC_HASH_BYTES]);

/* Turns a member's feed request from org_id into the command to submit: validates it (info
 * names the field), computes the record hashes and, for create and update, seals the MRN and
 * demographics with a fresh random nonce. Everything is allocated in arena.
 * Returns 0, HIE_EINVAL, HIE_ELIMIT, HIE_EDENIED (patient.org_id is not org_id) or
 * HIE_ENOMEM. Any thread. */
HIE_MUST_CHECK int hie_mpi_feed_command(const hie_mpi_key_t *key, const char *org_id,
    const Hie__V1__MpiFeedRequest *req, hie_arena_t *arena, Hie__V1__MpiFeedCommand **out,
    hie_errinfo_t *info);

/* ---- state side (store.c) ---------------------------------------------------------------- */
typedef struct hie_mpi_store hie_mpi_store_t;

typedef struct hie_mpi_store_stats {
    _Atomic uint64_t capped_blocks;   /* blocks cut at HIE_MPI_BLOCK_CAP */
    _Atomic uint64_t candidates;      /* candidate records scored */
    _Atomic uint64_t matches;         /* match runs (feeds and PDQ) */
    _Atomic uint64_t pool_used;       /* candidates whose comparison apply took from the pool */
    _Atomic uint64_t pool_lists;      /* feeds whose candidate list apply took from the pool */
    _Atomic uint64_t pool_stale;      /* ... that the pool compared with a form since replaced */
    _Atomic uint64_t pool_ready;      /* feeds the pool had prepared when apply reached them */
    _Atomic uint64_t pool_waited;     /* ... that apply waited for (a pool thread was on it) */
    _Atomic uint64_t pool_own;        /* ... that apply prepared itself (no thread started it) */
} hie_mpi_store_stats_t;

/* Opens (creating) the MPI databases in env. key is borrowed and must outlive the store; it
 * may be NULL, in which case every operation returns HIE_EUNAVAIL (no data key configured).
 * Returns 0, HIE_ESTORAGE or HIE_ENOMEM. */
HIE_MUST_CHECK int hie_mpi_store_open(hie_mpi_store_t **out, MDB_env *env,
    const hie_mpi_key_t *key);
void hie_mpi_store_close(hie_mpi_store_t **store);
hie_mpi_store_stats_t *hie_mpi_store_stats(hie_mpi_store_t *store);
bool hie_mpi_store_ready(const hie_mpi_store_t *store);

/* A rejection: the command is recorded as refused, nothing is changed. */
typedef struct hie_mpi_reject {
    Hie__V1__ErrorCode code;          /* 0: not rejected */
    const char *field;
    const char *message;
} hie_mpi_reject_t;

/* What apply knows about the command besides its body. */
typedef struct hie_mpi_apply_ctx {
    MDB_txn *txn;                     /* the state machine's write transaction */
    hie_arena_t *arena;               /* results live here */
    const char *requester;
    int64_t time_ms;
    uint64_t index;                   /* log index */
    hie_mpi_reject_t reject;          /* out */
    uint32_t hist_seq;                /* internal: zero it */
    const struct hie_mpi_prepared *prep; /* the pool's work on this command
                                         * (hie_mpi_pool_take), or NULL */
    int64_t rules_ms;                 /* the latest command time applied so far (the state
                                       * machine's rules clock): rules that began at a time
                                       * apply once it is reached, whatever the clock of the
                                       * node that proposed this command; 0: time_ms */
    /* out: an A40 merge applied, the record identities (16 bytes each, in arena) of the prior
     * record and of the one it now lives on as; NULL otherwise. What the caller keeps per
     * record (consent directives) follows the prior record there. */
    const uint8_t *merged_prior, *merged_survivor;
} hie_mpi_apply_ctx_t;

/* Applies a feed command. [out] *reply (arena) on success. Returns 0 (applied, or rejected:
 * see ctx->reject) or a storage error (HIE_ESTORAGE, HIE_ECORRUPT, HIE_ENOMEM) after which
 * the caller aborts the transaction and stops. Log thread only. */
HIE_MUST_CHECK int hie_mpi_store_apply_feed(hie_mpi_store_t *store, hie_mpi_apply_ctx_t *ctx,
    const Hie__V1__MpiFeedCommand *cmd, Hie__V1__MpiFeedReply **reply);
/* Applies an operator's review decision. Same contract. */
HIE_MUST_CHECK int hie_mpi_store_apply_review(hie_mpi_store_t *store, hie_mpi_apply_ctx_t *ctx,
    const Hie__V1__MpiReviewCommand *cmd, Hie__V1__ReviewDecideReply **reply);
/* Installs a model (its version must be above the current one). Same contract. */
HIE_MUST_CHECK int hie_mpi_store_apply_model(hie_mpi_store_t *store, hie_mpi_apply_ctx_t *ctx,
    const Hie__V1__MpiModelCommand *cmd, uint64_t *version);

/* ---- the match pool (pool.c) --------------------------------------------------------------- */
/* Threads that prepare a batch of feed commands while the log thread does something else (the
 * command log's fsync, the batch's earlier commands): each create or update is opened,
 * validated, normalized, its candidates found in the blocking index (each block key a lookup
 * in its virtual shard) and compared field by field with each candidate's normalized form.
 * Apply then finds its candidates itself, as always, and takes a candidate's comparison from
 * the pool only when the candidate's form is the one the pool compared (a generation number
 * per form; an update earlier in the batch replaces it); weights, term frequencies, the
 * decision and every write stay in apply. A comparison is a pure function of the two forms, so
 * apply decides the same with or without the pool, whatever the timing: replicas stay
 * identical (tested). A batch's comparisons were 70-80% of apply's time at 1M records. */
typedef struct hie_mpi_pool hie_mpi_pool_t;
typedef struct hie_mpi_prepared hie_mpi_prepared_t;
#define HIE_MPI_POOL_THREADS_MAX 16u
#define HIE_MPI_POOL_BATCH_MAX HIE_LOG_BATCH_COMMANDS_MAX
/* The feed command inside item (decoded into arena), or NULL when item is no feed command.
 * Called on pool threads, several at once. */
typedef const Hie__V1__MpiFeedCommand *(*hie_mpi_pool_feed_fn)(const void *item,
    hie_arena_t *arena);
/* Starts threads (1 to HIE_MPI_POOL_THREADS_MAX) working for store, which must outlive the
 * pool. Returns 0, HIE_EINVAL (no data key in store) or HIE_ENOMEM. */
HIE_MUST_CHECK int hie_mpi_pool_create(hie_mpi_pool_t **out, hie_mpi_store_t *store,
    unsigned threads);
/* Ends the batch, stops and joins the threads; NULL-safe. */
void hie_mpi_pool_destroy(hie_mpi_pool_t **pool);
/* Hands the pool a batch: n items (at most HIE_MPI_POOL_BATCH_MAX; more are not prepared),
 * item i at items + i * stride, read through feed. Items stay valid and unchanged until
 * hie_mpi_pool_end(). No batch may be open. NULL pool: nothing. Log thread. */
void hie_mpi_pool_begin(hie_mpi_pool_t *pool, const void *items, size_t stride, size_t n,
    hie_mpi_pool_feed_fn feed);
/* The pool's work on item i of the open batch, for hie_mpi_apply_ctx_t.prep: NULL when there
 * is none (no pool or batch, not a create or update, or it did not open: apply does all, with
 * the same result). Waits while a pool thread is on it; takes it away from the pool when no
 * thread started it. Valid until hie_mpi_pool_end(). Log thread, items in order. */
const hie_mpi_prepared_t *hie_mpi_pool_take(hie_mpi_pool_t *pool, size_t i);
/* Waits until the threads have been through every item of the open batch (tests). */
void hie_mpi_pool_wait(hie_mpi_pool_t *pool);
/* Closes the batch: waits for the threads to leave it and wipes what they prepared. Call after
 * the batch's transaction committed or aborted. NULL pool: nothing. Log thread. */
void hie_mpi_pool_end(hie_mpi_pool_t *pool);

/* Readers: txn is a read (or write) transaction of the caller; results live in arena.
 * Rejections (NOT_FOUND naming the field, BAD_REQUEST) go to *reject. Return 0 or a storage
 * error. Any thread. */
/* members (NULL: not wanted): the record hashes of the EUID(s) answered about, as read in txn
 * (in arena), for the consent decision that follows in the same transaction; PIX: the patient's
 * EUID; PDQ: an array, one per candidate of the reply. */
typedef struct hie_mpi_members {
    const uint8_t *hashes;           /* n * HIE_MPI_REC_HASH_BYTES */
    size_t n;
} hie_mpi_members_t;
HIE_MUST_CHECK int hie_mpi_store_pix(hie_mpi_store_t *store, MDB_txn *txn,
    const Hie__V1__PixQuery *q, hie_arena_t *arena, Hie__V1__PixReply **reply,
    hie_mpi_reject_t *reject, hie_mpi_members_t *members);
HIE_MUST_CHECK int hie_mpi_store_pdq(hie_mpi_store_t *store, MDB_txn *txn,
    const Hie__V1__PdqQuery *q, hie_arena_t *arena, Hie__V1__PdqReply **reply,
    hie_mpi_reject_t *reject, hie_mpi_members_t **members);
HIE_MUST_CHECK int hie_mpi_store_review_list(hie_mpi_store_t *store, MDB_txn *txn,
    const Hie__V1__ReviewListRequest *q, hie_arena_t *arena, Hie__V1__ReviewListReply **reply);
/* The link history of (org_id, mrn), oldest first: its newest HIE_MPI_HISTORY_MAX events;
 * *omitted says how many older ones were left out. Rejects NOT_FOUND (patient.mrn) for a
 * record the index never had. */
#define HIE_MPI_HISTORY_MAX 1000u
HIE_MUST_CHECK int hie_mpi_store_history(hie_mpi_store_t *store, MDB_txn *txn,
    const char *org_id, const char *mrn, hie_arena_t *arena, Hie__V1__LinkEvent ***events,
    size_t *n, uint64_t *omitted, hie_mpi_reject_t *reject);
/* The EUID of the record with identity rec_hash, after following A40 merges, copied into
 * euid. Consent and audit use it to find a patient's directives and disclosures.
 * Returns 0, HIE_ENOTFOUND (the index never had the record), HIE_EUNAVAIL or a storage error. */
HIE_MUST_CHECK int hie_mpi_store_euid_of(hie_mpi_store_t *store, MDB_txn *txn,
    const uint8_t rec_hash[HIE_MPI_REC_HASH_BYTES], hie_arena_t *arena,
    char euid[HIE_MPI_EUID_BYTES]);
/* The identity of the record rec_hash lives on as, after following A40 merges (rec_hash itself
 * when it was never merged), copied into out. Returns 0, HIE_ENOTFOUND (the index never had
 * the record), HIE_ELIMIT (a chain longer than merges may now make), HIE_EUNAVAIL or a storage
 * error. */
HIE_MUST_CHECK int hie_mpi_store_surviving(hie_mpi_store_t *store, MDB_txn *txn,
    const uint8_t rec_hash[HIE_MPI_REC_HASH_BYTES], hie_arena_t *arena,
    uint8_t out[HIE_MPI_REC_HASH_BYTES]);
/* One enterprise id a patient's records lived under, and when: [from_ms, to_ms). */
typedef struct hie_mpi_euid_span {
    char euid[HIE_MPI_EUID_BYTES];
    int64_t from_ms, to_ms;
} hie_mpi_euid_span_t;
#define HIE_MPI_IDENTITY_SPANS_MAX 64u
/* A span's end is padded by this: disclosures decided on a state read before the move was
 * applied (a group commit's latency, a little more under load) still name the EUID left. */
#define HIE_MPI_IDENTITY_END_PAD_MS 2000
/* The EUIDs euid's patient had, from the link history: the spans in which one of its records
 * (its members, and the records A40 merges folded into them, transitively) lived under an
 * EUID, euid itself included (a live record's last span open: to_ms INT64_MAX; a closed end
 * padded by HIE_MPI_IDENTITY_END_PAD_MS), joined per EUID, sorted by (EUID, from_ms), at most
 * HIE_MPI_IDENTITY_SPANS_MAX (in arena). None for an EUID without members. Disclosures made
 * in those spans were indexed under those EUIDs. An accounting reads them (issue 4). Returns 0,
 * HIE_ELIMIT (more spans, or more records than 4,096, or a record with more than 100,000
 * events), HIE_EUNAVAIL or a storage error. Any thread. */
HIE_MUST_CHECK int hie_mpi_store_identity(hie_mpi_store_t *store, MDB_txn *txn,
    const char *euid, hie_arena_t *arena, hie_mpi_euid_span_t **spans, size_t *n);
/* The record identities of euid's members (at most HIE_MPI_EUID_MEMBERS_MAX, n * 16 bytes in
 * arena; none for an unknown EUID). Returns 0, HIE_EUNAVAIL or a storage error. */
HIE_MUST_CHECK int hie_mpi_store_euid_members(hie_mpi_store_t *store, MDB_txn *txn,
    const char *euid, hie_arena_t *arena, const uint8_t **hashes, size_t *n);
/* Every identifier (organization, MRN: unsealed) of euid's members, in arena (at most
 * HIE_MPI_EUID_MEMBERS_MAX). Returns 0, HIE_EUNAVAIL or a storage error. */
HIE_MUST_CHECK int hie_mpi_store_euid_ids(hie_mpi_store_t *store, MDB_txn *txn,
    const char *euid, hie_arena_t *arena, Hie__V1__PatientId ***ids, size_t *n);
/* The records merged (A40) into rec_hash, and those merged into them, breadth first (at most
 * HIE_MPI_MERGED_INTO_MAX, n * 16 bytes in arena). A merged record keeps what was filed
 * under it (repository documents): a query about the patient reads them there. Returns 0,
 * HIE_ELIMIT (more: the first HIE_MPI_MERGED_INTO_MAX are given), HIE_EUNAVAIL, HIE_ENOMEM or
 * a storage error. Any thread. */
#define HIE_MPI_MERGED_INTO_MAX 64u
HIE_MUST_CHECK int hie_mpi_store_merged_into(hie_mpi_store_t *store, MDB_txn *txn,
    const uint8_t *rec_hash, hie_arena_t *arena, const uint8_t **hashes, size_t *n);
/* The current model (the default one before any training). */
HIE_MUST_CHECK int hie_mpi_store_model(hie_mpi_store_t *store, MDB_txn *txn,
    hie_mpi_model_t *model);
/* Counts for hiectl mpi stats. */
HIE_MUST_CHECK int hie_mpi_store_counts(hie_mpi_store_t *store, MDB_txn *txn,
    uint64_t *records, uint64_t *euids, uint64_t *review_open);
/* Calls fn with the normalized person of every active record, in rec_hash order, at most
 * max records. fn returns non-zero to stop. For training. */
HIE_MUST_CHECK int hie_mpi_store_each_person(hie_mpi_store_t *store, MDB_txn *txn, size_t max,
    int (*fn)(void *fctx, const hie_mpi_person_t *p), void *fctx);

/* Model <-> its stored form. */
void hie_mpi_model_to_proto(const hie_mpi_model_t *m, Hie__V1__MpiModel *out, double *mbuf,
    double *ubuf, protobuf_c_boolean *ebuf);
HIE_MUST_CHECK int hie_mpi_model_from_proto(const Hie__V1__MpiModel *in, hie_mpi_model_t *out);

#endif
