/*
 * hie/mpi_match.h - Fellegi-Sunter record matching: comparison vectors, match weights with
 * their explanation, term-frequency adjustment, EM estimation of m probabilities, u
 * probabilities from random pairs, blocking keys. Included by hie/mpi.h; not used alone.
 *
 * The model is a plain struct so it can be stored as replicated, versioned state. Scoring is
 * pure: the same model and records give the same weight on every node. Training is
 * deterministic for a given seed.
 *
 * Threads: every function is reentrant; a model and a term-frequency table are read-only
 * while scoring and may be shared by threads.
 */
#ifndef HIE_MPI_MATCH_H
#define HIE_MPI_MATCH_H

#include "hie/base.h"

#include <stdint.h>

/* A normalized person record, as the matcher sees it. Empty strings and dob 0 mean missing.
 * A plain value: copy it freely. The fields after national_id are derived forms that
 * hie_mpi_person_prepare() fills from the others; hie_mpi_compare() and hie_mpi_block_keys()
 * read them instead of recomputing them per pair, and assert that prepare ran (prepared). A
 * caller that changes a field after prepare calls it again. */
#define HIE_MPI_FIELD_BYTES 128u
/* The value of hie_mpi_person_t.prepared once hie_mpi_person_prepare() has run ("PREP"). */
#define HIE_MPI_PERSON_PREPARED 0x50524550u
typedef struct hie_mpi_person {
    char given[HIE_MPI_FIELD_BYTES];     /* first given name, normalized */
    char given_canon[HIE_MPI_FIELD_BYTES]; /* its nickname-canonical form (william for bill) */
    char family[HIE_MPI_FIELD_BYTES];
    uint32_t dob;                        /* YYYYMMDD */
    char street[HIE_MPI_FIELD_BYTES];    /* house number and street, normalized */
    char city[HIE_MPI_FIELD_BYTES];
    char postcode[16];
    char phone[16];
    char email[HIE_MPI_FIELD_BYTES];
    char national_id[32];
    /* ---- derived by hie_mpi_person_prepare(), never set by hand ---- */
    char given_code[HIE_MPI_NYSIIS_BUF_BYTES];  /* NYSIIS(given) */
    char family_code[HIE_MPI_NYSIIS_BUF_BYTES]; /* NYSIIS(family) */
    char canon_code[HIE_MPI_NYSIIS_BUF_BYTES];  /* NYSIIS(given_canon, else given): blocking */
    uint32_t prepared;                          /* HIE_MPI_PERSON_PREPARED, else 0 */
} hie_mpi_person_t;

enum hie_mpi_field {
    HIE_MPI_F_GIVEN = 0,
    HIE_MPI_F_FAMILY,
    HIE_MPI_F_DOB,
    HIE_MPI_F_STREET,
    HIE_MPI_F_CITY,
    HIE_MPI_F_POSTCODE,
    HIE_MPI_F_PHONE,
    HIE_MPI_F_EMAIL,
    HIE_MPI_F_NATIONAL_ID,
    HIE_MPI_FIELD_COUNT
};
/* Comparison levels per field; level 0 is always "missing" and weighs 0 (neutral). */
#define HIE_MPI_LEVELS_MAX 8u
/* The comparison levels' scheme: which level numbers each field has and what they mean. A model
 * (m and u per level) fits only the scheme it was trained for; a stored model says its scheme,
 * and a build refuses a model of another one. 2: the levels since 2026-11-30 (name and birth
 * date levels added); 0 in a stored model: trained before models said (checked by value). */
#define HIE_MPI_LEVEL_SCHEME 2u

typedef struct hie_mpi_vector {
    uint8_t level[HIE_MPI_FIELD_COUNT];
} hie_mpi_vector_t;

typedef struct hie_mpi_model {
    uint64_t version;                   /* bumped by every training */
    double lambda;                      /* prior P(match) of two random records */
    double lambda_candidates;           /* P(match) among candidate pairs, as EM found it */
    double m[HIE_MPI_FIELD_COUNT][HIE_MPI_LEVELS_MAX];
    double u[HIE_MPI_FIELD_COUNT][HIE_MPI_LEVELS_MAX];
    bool enabled[HIE_MPI_FIELD_COUNT];  /* a disabled field never contributes */
    double link_probability;            /* auto-link at or above (default 0.95) */
    double review_probability;          /* review at or above (default 0.50) */
    double margin_weight;               /* review when a runner-up below the link threshold
                                         * is this close (bits): hie_mpi_decide() */
} hie_mpi_model_t;

/* Number of comparison levels of field f (missing included). */
unsigned hie_mpi_field_levels(enum hie_mpi_field f);
const char *hie_mpi_field_name(enum hie_mpi_field f);
/* Name of level l of field f ("exact", "jw>=0.94", ...). Never NULL. */
const char *hie_mpi_level_name(enum hie_mpi_field f, unsigned level);

/* Compares two records field by field. Both must be prepared (hie_mpi_person_prepare(),
 * asserted). Pure, any thread. */
void hie_mpi_compare(const hie_mpi_person_t *a, const hie_mpi_person_t *b,
    hie_mpi_vector_t *out);

/* Fills model with untrained defaults: m concentrated on agreement, u from typical
 * frequencies (the birth date's distance levels from the calendar: match.c, default_date_u),
 * lambda 1e-4, thresholds 0.95/0.50, margin 2 bits, every field enabled. */
void hie_mpi_model_default(hie_mpi_model_t *model);

/* Term frequencies of exact values for names (the TF adjustment: agreeing on "smith" is
 * weaker evidence than agreeing on "zygmunt"). Opaque; not thread-safe (the store guards its
 * own with a lock). */
typedef struct hie_mpi_tf hie_mpi_tf_t;
/* Creates an empty table sized for capacity distinct values (it grows past them). [out] *out
 * caller-owned (hie_mpi_tf_destroy). Returns 0 or HIE_ENOMEM. */
HIE_MUST_CHECK int hie_mpi_tf_create(hie_mpi_tf_t **out, size_t capacity);
void hie_mpi_tf_destroy(hie_mpi_tf_t **tf);
/* Counts person's given and family names. Returns 0 or HIE_ENOMEM. */
HIE_MUST_CHECK int hie_mpi_tf_add(hie_mpi_tf_t *tf, const hie_mpi_person_t *person);
/* Relative frequency of value in field (given or family), or 0 if unknown. */
double hie_mpi_tf_frequency(const hie_mpi_tf_t *tf, enum hie_mpi_field f, const char *value);

/* One field's contribution to a match weight, for the explanation of an outcome. */
typedef struct hie_mpi_contribution {
    uint8_t level;
    double weight;   /* log2(m/u), after TF adjustment; 0 when missing or disabled */
} hie_mpi_contribution_t;

/* Match weight (bits) of vector v between a and b: sum of log2(m/u) over fields, exact name
 * agreement adjusted by term frequency when tf is not NULL. [out] explain (may be NULL)
 * receives per-field contributions. */
double hie_mpi_weight(const hie_mpi_model_t *model, const hie_mpi_tf_t *tf,
    const hie_mpi_person_t *a, const hie_mpi_vector_t *v, hie_mpi_contribution_t *explain);
/* Each level's log2(m/u) under one model (0 for a missing value or a disabled field): what
 * hie_mpi_weight() computes per field, once per model instead of once per candidate pair. */
typedef struct hie_mpi_weights {
    double w[HIE_MPI_FIELD_COUNT][HIE_MPI_LEVELS_MAX];
} hie_mpi_weights_t;
void hie_mpi_weights_fill(const hie_mpi_model_t *model, hie_mpi_weights_t *t);
/* hie_mpi_weight(model, NULL, a, v, explain) from t = hie_mpi_weights_fill(model): the same
 * value to the last bit (the same terms added in the same order). */
double hie_mpi_weight_table(const hie_mpi_weights_t *t, const hie_mpi_vector_t *v,
    hie_mpi_contribution_t *explain);
/* The weight of exact agreement on name field f (given or family) whose value has relative
 * frequency freq among the index's records (0: unknown, use the model's u): the TF adjustment
 * hie_mpi_weight applies, for callers that keep term frequencies elsewhere (the LMDB store). */
double hie_mpi_weight_exact_name(const hie_mpi_model_t *model, enum hie_mpi_field f,
    double freq);
/* Fills the derived fields of p (the NYSIIS codes of its names) and marks it prepared. Call
 * after setting the fields and before hie_mpi_compare / hie_mpi_block_keys / training, and
 * again after changing a name. Idempotent. [in,out] p: every string NUL-terminated within its
 * array (asserted). Any thread; never blocks. */
void hie_mpi_person_prepare(hie_mpi_person_t *p);

/* hie_mpi_string_compare(a, b), given the NYSIIS codes of a and b (hie_mpi_nysiis(), or the
 * codes hie_mpi_person_prepare() cached): the same level, without recomputing the codes.
 * Same preconditions as hie_mpi_string_compare(); codes non-NULL (asserted). Debug builds
 * check the result against hie_mpi_string_compare(). */
enum hie_mpi_str_level hie_mpi_string_compare_coded(const char *a, const char *code_a,
    const char *b, const char *code_b);
/* hie_mpi_jaro_winkler(a, b) >= threshold, usually without the matching: an upper bound from
 * the characters a and b share decides most pairs of different values. Same preconditions as
 * hie_mpi_jaro_winkler(). Any thread; reentrant. */
bool hie_mpi_jaro_winkler_reaches(const char *a, const char *b, double threshold);
/* P(match) for weight under the model's prior. */
double hie_mpi_probability(const hie_mpi_model_t *model, double weight);

/* The decision on a record from the match weights of its candidate enterprise ids (each EUID's
 * best record), the one rule the index and the benchmarks apply:
 *  - no candidate, or the best below review_probability: a new EUID;
 *  - the best below link_probability: review;
 *  - else link to the best, and every other EUID also at or above link_probability is merged
 *    into it (fold_count of them, those right after the best): a record that matches two
 *    EUIDs shows they are one person, as the connected components of Splink's clustering
 *    would. Without it each record could join only one EUID, and a person whose first records
 *    were too corrupted to match each other stayed split for good (fake_1000: F1 0.82 against
 *    0.93 with the same candidates);
 *  - but review if the first EUID below link_probability still reaches review_probability
 *    and lies within margin_weight bits of the best: it may be the same person, and linking
 *    without it would split the person, merging it would be a guess. */
typedef enum hie_mpi_outcome {
    HIE_MPI_OUTCOME_NEW = 0,
    HIE_MPI_OUTCOME_REVIEW,
    HIE_MPI_OUTCOME_LINK,
} hie_mpi_outcome_t;

typedef struct hie_mpi_decision {
    hie_mpi_outcome_t outcome;
    size_t fold_count;  /* LINK: candidates 1 .. fold_count merge into candidate 0; else 0 */
    const char *rule;   /* why, static text for the explanation; never NULL */
} hie_mpi_decision_t;

/* Most EUIDs one record merges into its best (fold_count): each merge reads both EUIDs and
 * rewrites one, so a record that somehow matches dozens of EUIDs must not rewrite them all in
 * one command; the ones past the bound stay apart. */
#define HIE_MPI_FOLD_MAX 8u

/* The level of a code field (postcode, phone, national id) whose two values are present and
 * more than one edit apart. */
#define HIE_MPI_CODE_DIFFERENT 3u
/* True when a candidate's contributions (its EUID's composite) say two people: the national
 * ids differ (both sides carry one, none of the candidate's within one edit of the record's)
 * and so do the birth dates (more than a month apart: not a typo). Either alone is a common
 * clerical error (FEBRL2: 4% of true pairs carry wholly different ids, at F1 0.97 instead of
 * 0.999 when an id conflict alone sent them to review). */
bool hie_mpi_ids_conflict(const hie_mpi_contribution_t explain[HIE_MPI_FIELD_COUNT]);

/* Decides as above. [in] weights: count weights (bits), best first (non-increasing, asserted;
 * ties in the caller's deterministic order). [in] conflict: NULL, or count flags
 * (hie_mpi_ids_conflict of each candidate): a conflicting candidate is never linked or merged
 * automatically, whatever its weight: the best one goes to review instead, and merging stops
 * before the first conflicting one (a father and son at one address with the same name: their
 * different national ids and birth dates weighed 14 bits against 32 of the rest). [out] out.
 * Pure, any thread. */
void hie_mpi_decide(const hie_mpi_model_t *model, const double *weights, const bool *conflict,
    size_t count, hie_mpi_decision_t *out);

/* An EUID's composite: a record is compared with every record of a candidate EUID and each
 * field counts with the best level any of them reaches, so a person whose records each kept
 * a different part of the truth (one the right family name, another the birth date, a third
 * the e-mail) is recognised as a whole. A record that lacks a field does not count for it
 * (one record's gap never hides another's disagreement). Only the EUIDs worth it are scored
 * so: the first HIE_MPI_COMPOSITE_EUIDS_MAX, best first, whose best record weighs at least
 * HIE_MPI_COMPOSITE_WEIGHT_MIN bits, with at most HIE_MPI_COMPOSITE_MEMBERS_MAX records each
 * (in a fixed order: deterministic). An EUID one record already links to is scored so too: a
 * record of it that contradicts the new one lowers it (at 100,000 generated persons that
 * raised precision from 0.9933 to 0.9946). */
#define HIE_MPI_COMPOSITE_WEIGHT_MIN 0.0
#define HIE_MPI_COMPOSITE_EUIDS_MAX 8u
#define HIE_MPI_COMPOSITE_MEMBERS_MAX 16u

typedef struct hie_mpi_composite {
    hie_mpi_contribution_t best[HIE_MPI_FIELD_COUNT]; /* per field, the best non-missing */
    uint32_t have;                                    /* bit 1 << field: best[field] is set */
    size_t records;                                   /* records added */
} hie_mpi_composite_t;

/* Empties c. */
void hie_mpi_composite_init(hie_mpi_composite_t *c);
/* Adds one record's explanation (hie_mpi_weight()'s explain, or the store's TF-adjusted one):
 * each field whose level is not missing replaces c's when its weight is higher. */
void hie_mpi_composite_add(hie_mpi_composite_t *c,
    const hie_mpi_contribution_t explain[HIE_MPI_FIELD_COUNT]);
/* The composite weight: the sum of the best contributions (0 for a field no record had).
 * [out] explain (may be NULL): the per-field contributions summed. Asserts records > 0. */
double hie_mpi_composite_weight(const hie_mpi_composite_t *c,
    hie_mpi_contribution_t explain[HIE_MPI_FIELD_COUNT]);

/* Estimates u from random record pairs: samples pairs (i, j), i != j, with a fixed seed.
 * Returns 0 or HIE_EINVAL (fewer than 2 persons). */
HIE_MUST_CHECK int hie_mpi_u_estimate(hie_mpi_model_t *model, const hie_mpi_person_t *persons,
    size_t count, size_t samples, uint64_t seed);
/* Estimates m by expectation-maximisation over candidate-pair vectors, u fixed (from random
 * pairs), starting from EM's own share of matches among these pairs (0.5). Fields in exclude
 * (bit 1 << field) are neither used nor updated: pass the fields of the blocking key that
 * chose the pairs, since every pair agrees on them by construction and they would drag the
 * estimate towards "everything matches" (the Splink recipe: train once per blocking key and
 * take each field's m from a session that did not block on it). At most iterations rounds,
 * stopping when no parameter moves more than 1e-6. [out] rounds_out (may be NULL).
 * Returns 0 or HIE_EINVAL (no vectors). */
HIE_MUST_CHECK int hie_mpi_em_train(hie_mpi_model_t *model, const hie_mpi_vector_t *vectors,
    size_t count, uint32_t exclude, unsigned iterations, unsigned *rounds_out);

/* With m and u fixed, estimates the share of matches among all candidate pairs (EM on that
 * one parameter), then sets model->lambda, the prior that two random records match, to it
 * times candidate_fraction (the share of all record pairs that are candidates).
 * Returns 0 or HIE_EINVAL (no vectors, or a fraction outside (0, 1]). */
HIE_MUST_CHECK int hie_mpi_em_prior(hie_mpi_model_t *model, const hie_mpi_vector_t *vectors,
    size_t count, double candidate_fraction, unsigned iterations);

/* Blocking keys: records that share a key are compared. Keys are 64-bit hashes of
 * normalized values (keyed by key_secret when the index is persisted), 0 for "no key". */
#define HIE_MPI_BLOCK_KEYS 18u
/* Fills keys[HIE_MPI_BLOCK_KEYS] (0 where the fields are missing): 0 NYSIIS(family) + first
 * two bytes of given + birth decade, 1 given initial + dob (training's family-name session
 * blocks on this key), 2 postcode + dob, 3 the two names' NYSIIS codes in either order
 * (training's birth-date session), 4 national id, 5 dob + family initial (training's
 * given-name session), 6 birth month and day + NYSIIS(given), 7 email or else phone,
 * 8 NYSIIS(family) + postcode, 9 city + NYSIIS(given), 10 birth month and day +
 * NYSIIS(family), 11 street, 12 birth year and month + family initial + given initial, 13 city
 * + birth year + given initial, 14 e-mail local part (3 bytes or more). Many keys, so errors in
 * two or three fields still leave the pair in some block; no key 0-14 is a bare date or a date
 * + city, whose blocks grow with the index (at 1M persons they filled 20-64-record blocks and
 * most candidates). Keys 15-17 are the broad keys, one field each: 15 NYSIIS(family), 16
 * NYSIIS(given, nickname-canonical), 17 dob. Their blocks are capped by
 * hie_mpi_block_key_cap(): in a small index they pair the records whose every other field is
 * corrupted or missing; as the index grows their cap shrinks to nothing, so in a large one
 * they cost a lookup and nothing more. Each block is capped by the caller. Asserts that p is
 * prepared. */
void hie_mpi_block_keys(const hie_mpi_person_t *p, const uint8_t key_secret[16],
    uint64_t keys[HIE_MPI_BLOCK_KEYS]);
/* The first broad key; the largest block a broad key pairs through, 16 records (a family name,
 * given name or birth date shared by few enough records that comparing them all costs
 * little), while the index holds at most HIE_MPI_BLOCK_BROAD_RECORDS records; in a larger
 * index the cap shrinks in proportion (8 at 100,000 records, 1 at 800,000, none past). With a
 * fixed cap every rare name's and birth date's block stayed open at any size: at 600,000
 * generated records the broad keys added 11.6 to the 30.5 candidates of a feed for 0.0005 of
 * F1. */
#define HIE_MPI_BLOCK_BROAD_FIRST 15u
#define HIE_MPI_BLOCK_BROAD_CAP 16u
#define HIE_MPI_BLOCK_BROAD_RECORDS 50000u
/* The block size cap of key number key, for the caller's cap and an index of records records:
 * cap for keys 0-14; for a broad key at most HIE_MPI_BLOCK_BROAD_CAP, scaled down past
 * HIE_MPI_BLOCK_BROAD_RECORDS records (0: every block of it is skipped). Pure. */
static inline size_t
hie_mpi_block_key_cap(unsigned key, size_t cap, uint64_t records)
{
    if (key < HIE_MPI_BLOCK_BROAD_FIRST) {
        return cap;
    }
    const uint64_t area = (uint64_t)HIE_MPI_BLOCK_BROAD_CAP * HIE_MPI_BLOCK_BROAD_RECORDS;
    uint64_t broad = records <= HIE_MPI_BLOCK_BROAD_RECORDS ? HIE_MPI_BLOCK_BROAD_CAP
                                                            : area / records;
    return broad < cap ? (size_t)broad : cap;
}

/* The virtual shard of a block key (design.md: shards assigned to nodes). */
static inline unsigned
hie_mpi_key_shard(uint64_t key, unsigned shards)
{
    return (unsigned)(key % shards);
}

/* ---- candidate pairs and training (train.c) --------------------------------------------- */
/* Largest block size cap a caller may choose: a record has at most HIE_MPI_BLOCK_KEYS times
 * the cap candidates per call of hie_mpi_blocks_pairs(), which bounds the caller's buffer
 * (18 x 5,000 x 4 bytes = 360 KB at this maximum). */
#define HIE_MPI_BLOCK_SIZE_MAX 5000u
/* Most records a block index or a training run takes: a record number and its key's number
 * (5 bits) share a uint32_t. About 350 bytes of index per record: 134 M records is 47 GB, so
 * memory runs out first; more records are refused with HIE_ELIMIT. */
#define HIE_MPI_BLOCK_RECORDS_MAX (1u << 27)
_Static_assert(HIE_MPI_BLOCK_KEYS <= 32u, "a key number fits in the 5 bits above a record");
_Static_assert(HIE_MPI_BLOCK_BROAD_FIRST < HIE_MPI_BLOCK_KEYS, "broad keys are block keys");

/* Every record's blocking keys, sorted: the candidate pairs of an in-memory batch (training,
 * benchmarks, a bulk load). Opaque; built once, then read-only (threads may share it). */
typedef struct hie_mpi_blocks hie_mpi_blocks_t;

typedef struct hie_mpi_blocks_stats {
    size_t records;
    size_t blocks;                         /* distinct keys */
    size_t capped_blocks;                  /* blocks over the cap: they give no pairs */
    size_t key_pairs[HIE_MPI_BLOCK_KEYS];  /* pairs of each key's uncapped blocks, before dedup */
    size_t key_capped[HIE_MPI_BLOCK_KEYS]; /* each key's capped blocks */
} hie_mpi_blocks_stats_t;

/* Computes the blocking keys of persons[0 .. count) and sorts them (a stable radix sort, so
 * every block lists its records in ascending order). A block with more than block_size_max
 * records is capped: its records are not paired through it (a key shared by hundreds of
 * records, such as a common birth date, says little and would cost quadratic work).
 * [out] out: set on success, else NULL; caller-owned (hie_mpi_blocks_destroy()).
 * [in]  persons: prepared (asserted), borrowed for the call only (nothing is kept).
 * [in]  key_secret: as for hie_mpi_block_keys().
 * Returns 0; HIE_EINVAL (block_size_max 0 or over HIE_MPI_BLOCK_SIZE_MAX); HIE_ELIMIT (count
 * over HIE_MPI_BLOCK_RECORDS_MAX); HIE_ENOMEM (about 300 bytes per record).
 * Any thread; CPU-bound for O(count) (plus the keys' hashing); never blocks on I/O. */
HIE_MUST_CHECK int hie_mpi_blocks_create(hie_mpi_blocks_t **out,
    const hie_mpi_person_t *persons, size_t count, const uint8_t key_secret[16],
    size_t block_size_max);
/* Frees blocks; sets *blocks to NULL; NULL-safe. */
void hie_mpi_blocks_destroy(hie_mpi_blocks_t **blocks);
/* Copies the statistics of blocks to *out. */
void hie_mpi_blocks_stats(const hie_mpi_blocks_t *blocks, hie_mpi_blocks_stats_t *out);
/* The candidates of record: the records j > record that share an uncapped block with it
 * through one of the keys in key_mask (bit 1 << key number; UINT32_MAX: every key), each once,
 * ascending. Iterating record = 0 .. count - 1 gives every candidate pair once, in (i, j)
 * order. [out] out: out_cap >= HIE_MPI_BLOCK_KEYS * block_size_max entries (asserted);
 * [out] *out_count. Read-only on blocks: any thread. */
void hie_mpi_blocks_pairs(const hie_mpi_blocks_t *blocks, size_t record, uint32_t key_mask,
    uint32_t *out, size_t out_cap, size_t *out_count);

/* Options of hie_mpi_train(); hie_mpi_train_opts_default() gives the values in brackets. */
typedef struct hie_mpi_train_opts {
    size_t u_samples;          /* random pairs for u [200,000] */
    size_t block_size_max;     /* block cap, 1..HIE_MPI_BLOCK_SIZE_MAX [500] */
    unsigned em_rounds_max;    /* rounds of each m session [100] */
    unsigned prior_rounds_max; /* rounds of the prior [200] */
    uint64_t seed;             /* of the random pairs for u [42] */
    /* Memory bound: at most this many comparison vectors (9 bytes each) are kept per EM
     * session; when a session has more pairs, an evenly spaced subset of them (every k-th in
     * (i, j) order, deterministic) is used. [32 M: 288 MB] */
    size_t pairs_max;
    /* Optional: once *cancel is true, training stops at its next check (between its stages,
     * and every 1,024 records while it compares pairs) and returns HIE_EUNAVAIL, the model
     * untouched: a node stopping does not wait for it. [NULL] */
    const _Atomic bool *cancel;
} hie_mpi_train_opts_t;

typedef struct hie_mpi_train_stats {
    size_t records;
    size_t candidate_pairs;   /* pairs of every key, deduplicated (all counted, even if sampled) */
    size_t prior_pairs;       /* of them, the vectors the prior was estimated on */
    size_t session_pairs[3];  /* pairs of the two birth-date sessions and the name-code one */
    size_t capped_blocks;
    unsigned em_rounds;       /* rounds of the m sessions */
} hie_mpi_train_stats_t;

/* Fills opts with the defaults above. */
void hie_mpi_train_opts_default(hie_mpi_train_opts_t *opts);

/* Trains model on persons as Splink does, deterministically for opts->seed:
 *  1. u from opts->u_samples random pairs (hie_mpi_u_estimate());
 *  2. m by EM in three sessions, each on the candidate pairs of one blocking key and leaving
 *     out the fields that key's pairs agree on (hie_mpi_em_train() exclude): birth date +
 *     family initial trains the given name and the rest, birth date + given initial the
 *     family name, the name codes the birth date; each field's m comes from the one session
 *     whose key says nothing about it (train.c, field_session);
 *  3. the prior by EM over the candidate pairs of every key (hie_mpi_em_prior()), scaled by
 *     the share of all record pairs that are candidates.
 * Keeps the caller's enabled flags, thresholds and margin; replaces u, m, lambda and
 * lambda_candidates, and bumps version.
 * [in,out] model: a starting model (hie_mpi_model_default() and the caller's enabled flags);
 *          written only on success.
 * [in] persons: prepared (asserted), borrowed for the call. [in] key_secret: for the blocks.
 * [in] opts: NULL for the defaults. [out] stats: may be NULL; zeroed on entry.
 * Returns 0; HIE_EINVAL (count < 2, an option out of range, or no candidate pairs at all);
 * HIE_ELIMIT (count over HIE_MPI_BLOCK_RECORDS_MAX); HIE_ENOMEM. Memory: the blocks (about
 * 300 bytes a record) plus at most opts->pairs_max vectors. CPU-bound (it compares every
 * candidate pair once or twice); call it off the event loop. Any thread. */
HIE_MUST_CHECK int hie_mpi_train(hie_mpi_model_t *model, const hie_mpi_person_t *persons,
    size_t count, const uint8_t key_secret[16], const hie_mpi_train_opts_t *opts,
    hie_mpi_train_stats_t *stats);

/* ---- PHI at rest (seal.c) --------------------------------------------------------------- */
/* The MPI's data key: 32 random bytes in a file the operator controls (mode 0600 or stricter,
 * a regular file, not a symlink). Loaded into guarded memory; three subkeys are derived from
 * it: one to seal records (XChaCha20-Poly1305), one for keyed index hashes, and one for the
 * sealers below (XAES-256-GCM). */
#define HIE_MPI_KEY_BYTES 32u
#define HIE_MPI_SEAL_NONCE_BYTES 24u
#define HIE_MPI_SEAL_OVERHEAD_BYTES 16u
/* Largest sealed demographic record: a person's fields, well under a frame. */
#define HIE_MPI_SEAL_PLAIN_BYTES_MAX (64u * 1024u)
/* Largest value hie_mpi_seal and hie_mpi_open take: a pushed document (content up to
 * HIE_PUSH_CONTENT_BYTES_MAX, 1 MiB, and its fields), within a frame. */
#define HIE_MPI_SEAL_VALUE_BYTES_MAX (4u * 1024u * 1024u)
typedef struct hie_mpi_key hie_mpi_key_t;

/* Loads the key file at path. [out] *out caller-owned (hie_mpi_key_destroy). Returns 0,
 * HIE_EDENIED (group or other can access the file, or not a regular file), HIE_EINVAL (not
 * exactly 32 bytes), HIE_ENOMEM, or -errno (-ENOENT, -ELOOP for a symlink...). */
HIE_MUST_CHECK int hie_mpi_key_load(hie_mpi_key_t **out, const char *path);
/* Wipes and frees; sets *key to NULL; NULL-safe. */
void hie_mpi_key_destroy(hie_mpi_key_t **key);
/* Creates a new random key file at path with mode 0600 (never overwrites). Returns 0 or
 * -errno (-EEXIST...). */
HIE_MUST_CHECK int hie_mpi_key_generate(const char *path);
/* Seals plain, bound to ad (the record's key), with the caller's nonce (random, carried in the
 * command so every node stores the same bytes). out receives plain.len + 16 bytes.
 * Returns 0 or HIE_ELIMIT (plain too large, or out_bytes too small). */
HIE_MUST_CHECK int hie_mpi_seal(const hie_mpi_key_t *key, hie_span_t plain, hie_span_t ad,
    const uint8_t nonce[HIE_MPI_SEAL_NONCE_BYTES], uint8_t *out, size_t out_bytes);
/* Opens what hie_mpi_seal produced. [out] *out_len plaintext bytes. Returns 0, HIE_ECORRUPT
 * (altered, another slot's ad, another key, or a truncated record) or HIE_ELIMIT (out too
 * small). The caller wipes out (sodium_memzero) once done with it: it is PHI. */
HIE_MUST_CHECK int hie_mpi_open(const hie_mpi_key_t *key, hie_span_t sealed, hie_span_t ad,
    const uint8_t nonce[HIE_MPI_SEAL_NONCE_BYTES], uint8_t *out, size_t out_bytes,
    size_t *out_len);
/* A sealer: one thread's context for sealing and opening many small values under the key (the
 * audit's subjects, one per patient of every answer). XAES-256-GCM (c2sp.org/XAES-256-GCM),
 * under its own subkey, ~0.3 us for a 90-byte value against ~0.6 us for hie_mpi_seal's
 * XChaCha20-Poly1305. A box is nonce (24 bytes: the sealer's random prefix, renewed every 2^20
 * seals, then the caller's 12 random bytes) || ciphertext || 16-byte tag: the size of
 * hie_mpi_seal's nonce and output, and it carries its own nonce. */
#define HIE_MPI_SEALER_TAIL_BYTES 12u
typedef struct hie_mpi_sealer hie_mpi_sealer_t;
/* A sealer for key, which must outlive it. Returns 0 or HIE_ENOMEM. */
HIE_MUST_CHECK int hie_mpi_sealer_create(const hie_mpi_key_t *key, hie_mpi_sealer_t **out);
/* Frees and wipes; sets *s to NULL; NULL-safe. */
void hie_mpi_sealer_destroy(hie_mpi_sealer_t **s);
/* The key the sealer was made for. */
const hie_mpi_key_t *hie_mpi_sealer_key(const hie_mpi_sealer_t *s);
/* Seals plain bound to ad into box (HIE_MPI_SEAL_NONCE_BYTES + plain.len +
 * HIE_MPI_SEAL_OVERHEAD_BYTES). tail: fresh random bytes. Returns 0, HIE_ELIMIT (too large,
 * or box too small) or HIE_ECORRUPT (the cipher failed). */
HIE_MUST_CHECK int hie_mpi_sealer_seal(hie_mpi_sealer_t *s, hie_span_t plain, hie_span_t ad,
    const uint8_t tail[HIE_MPI_SEALER_TAIL_BYTES], uint8_t *box, size_t box_bytes);
/* Opens a box of hie_mpi_sealer_seal, or one made before the sealers (nonce || hie_mpi_seal's
 * output: tried when the first fails). Returns as hie_mpi_open. */
HIE_MUST_CHECK int hie_mpi_sealer_open(hie_mpi_sealer_t *s, hie_span_t box, hie_span_t ad,
    uint8_t *out, size_t out_bytes, size_t *out_len);
/* The 16-byte secret for blocking and index keys (hie_mpi_block_keys). */
void hie_mpi_key_index_secret(const hie_mpi_key_t *key, uint8_t out[16]);
/* The key's 16-byte id (a keyed hash, telling nothing of the key): the state keeps the id of
 * the key it was written with, and each feed command carries the id of the key it was sealed
 * under, so a state rebuilt from the log under another key stops instead of dropping every
 * feed as unreadable. */
void hie_mpi_key_id(const hie_mpi_key_t *key, uint8_t out[16]);

#endif
