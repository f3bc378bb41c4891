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

/* A normalized person record, as the matcher sees it. Empty strings and dob 0 mean missing. */
#define HIE_MPI_FIELD_BYTES 128u
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
    double margin_weight;               /* review when the runner-up is this close (bits) */
} hie_mpi_model_t;

/* Number of comparison levels of field f (missing included). */
unsigned hie_mpi_field_levels(enum hie_mpi_field f);
const char *hie_mpi_field_name(enum hie_mpi_field f);
/* Name of level l of field f ("exact", "jw>=0.94", ...). Never NULL. */
const char *hie_mpi_level_name(enum hie_mpi_field f, unsigned level);

/* Compares two records field by field. Pure, any thread. */
void hie_mpi_compare(const hie_mpi_person_t *a, const hie_mpi_person_t *b,
    hie_mpi_vector_t *out);

/* Fills model with untrained defaults: m concentrated on agreement, u from typical
 * frequencies, lambda 1e-3, thresholds 0.95/0.50, margin 2 bits, every field enabled. */
void hie_mpi_model_default(hie_mpi_model_t *model);

/* Term frequencies of exact values for names (the TF adjustment: agreeing on "smith" is
 * weaker evidence than agreeing on "zygmunt"). Opaque; built once, then read-only. */
typedef struct hie_mpi_tf hie_mpi_tf_t;
/* Creates an empty table for up to capacity distinct values. [out] *out caller-owned
 * (hie_mpi_tf_destroy). Returns 0 or HIE_ENOMEM. */
HIE_MUST_CHECK int hie_mpi_tf_create(hie_mpi_tf_t **out, size_t capacity);
void hie_mpi_tf_destroy(hie_mpi_tf_t **tf);
/* Counts person's given and family names. Returns 0 or HIE_ELIMIT (table full). */
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
/* The weight of exact agreement on name field f (given or family) whose value has relative
 * frequency freq among the index's records (0: unknown, use the model's u): the TF adjustment
 * hie_mpi_weight applies, for callers that keep term frequencies elsewhere (the LMDB store). */
double hie_mpi_weight_exact_name(const hie_mpi_model_t *model, enum hie_mpi_field f,
    double freq);
/* Fills whatever a person record caches for comparison and blocking (derived from its
 * fields). Call after setting the fields and before hie_mpi_compare / hie_mpi_block_keys. */
void hie_mpi_person_prepare(hie_mpi_person_t *p);
/* P(match) for weight under the model's prior. */
double hie_mpi_probability(const hie_mpi_model_t *model, double weight);

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
#define HIE_MPI_BLOCK_KEYS 15u
/* Fills keys[HIE_MPI_BLOCK_KEYS] (0 where the fields are missing): NYSIIS(family)+birth year,
 * given initial+dob, postcode+dob, the two names' NYSIIS codes in either order, national id,
 * dob, NYSIIS(given)+birth year, email or else phone, NYSIIS(family)+postcode,
 * NYSIIS(family)+given initial, city+NYSIIS(given), street, birth year and month+family
 * initial, city+birth year, e-mail domain. Many keys, so errors in two or three fields still
 * leave the pair in some block; each block is capped by the caller. */
void hie_mpi_block_keys(const hie_mpi_person_t *p, const uint8_t key_secret[16],
    uint64_t keys[HIE_MPI_BLOCK_KEYS]);
/* The virtual shard of a block key (design.md: shards assigned to nodes). */
static inline unsigned
hie_mpi_key_shard(uint64_t key, unsigned shards)
{
    return (unsigned)(key % shards);
}

/* ---- PHI at rest (seal.c) --------------------------------------------------------------- */
/* The MPI's data key: 32 random bytes in a file the operator controls (mode 0600 or stricter,
 * a regular file, not a symlink). Loaded into guarded memory; two subkeys are derived from it,
 * one to seal records (XChaCha20-Poly1305) and one for keyed index hashes. */
#define HIE_MPI_KEY_BYTES 32u
#define HIE_MPI_SEAL_NONCE_BYTES 24u
#define HIE_MPI_SEAL_OVERHEAD_BYTES 16u
/* Largest sealed demographic record: a person's fields, well under a frame. */
#define HIE_MPI_SEAL_PLAIN_BYTES_MAX (64u * 1024u)
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
/* The 16-byte secret for blocking and index keys (hie_mpi_block_keys). */
void hie_mpi_key_index_secret(const hie_mpi_key_t *key, uint8_t out[16]);

#endif
