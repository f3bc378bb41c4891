/*
 * xaes.h - XAES-256-GCM (c2sp.org/XAES-256-GCM) over OpenSSL, for sealing many small values on
 * one thread (xaes.c). Internal to mpi/: the node reaches it through hie_mpi_sealer (seal.c).
 */
#ifndef HIE_MPI_XAES_H
#define HIE_MPI_XAES_H

#include "hie/base.h"

#define HIE_XAES_KEY_BYTES 32u
#define HIE_XAES_NONCE_BYTES 24u
#define HIE_XAES_TAG_BYTES 16u
#define HIE_XAES_PLAIN_BYTES_MAX (16u * 1024u * 1024u)

typedef struct hie_xaes hie_xaes_t;

/* A context for key (copied, wiped on destroy). One thread at a time. Returns 0 or
 * HIE_ENOMEM. */
HIE_MUST_CHECK int hie_xaes_create(const uint8_t key[HIE_XAES_KEY_BYTES], hie_xaes_t **out);
/* The same, choosing the implementation: libsodium's AES-256-GCM (sodium: only where
 * crypto_aead_aes256gcm_is_available()) or OpenSSL's. hie_xaes_create takes libsodium's when it
 * can; tests run both against the vectors. */
HIE_MUST_CHECK int hie_xaes__create(const uint8_t key[HIE_XAES_KEY_BYTES], bool sodium,
    hie_xaes_t **out);
/* Frees and wipes; sets *x to NULL; NULL-safe. */
void hie_xaes_destroy(hie_xaes_t **x);
/* Seals plain bound to ad: out receives the ciphertext then the 16-byte tag (plain.len + 16).
 * The nonce must never repeat under one key: random, or a random prefix kept for a run of
 * messages with a random or counting tail. Returns 0, HIE_ELIMIT (too large, or out_bytes too
 * small) or HIE_ECORRUPT (the cipher failed). */
HIE_MUST_CHECK int hie_xaes_seal(hie_xaes_t *x, const uint8_t nonce[HIE_XAES_NONCE_BYTES],
    hie_span_t plain, hie_span_t ad, uint8_t *out, size_t out_bytes);
/* Opens what hie_xaes_seal produced (box: ciphertext then tag). [out] *out_len plaintext bytes.
 * Returns 0, HIE_ECORRUPT (altered, another ad, nonce or key; out wiped) or HIE_ELIMIT (out
 * too small). */
HIE_MUST_CHECK int hie_xaes_open(hie_xaes_t *x, const uint8_t nonce[HIE_XAES_NONCE_BYTES],
    hie_span_t box, hie_span_t ad, uint8_t *out, size_t out_bytes, size_t *out_len);

#endif
