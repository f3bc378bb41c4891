/*
 * xaes.c - XAES-256-GCM (C2SP, c2sp.org/XAES-256-GCM): AES-256-GCM with a 24-byte nonce, safe
 * to draw at random for any number of messages. The nonce's first 12 bytes derive a subkey
 * (NIST SP 800-108r1 counter KDF with AES-256 CMAC, two blocks), its last 12 are the GCM nonce.
 *
 * Why here: the audit subjects are sealed on the workers, one per patient of every answer.
 * XChaCha20-Poly1305 (libsodium) took ~0.63 us for a 90-byte subject on this machine; AES-256-GCM
 * with a cached subkey takes ~0.18 us with libsodium's (AES-NI and PCLMUL, when the CPU has them)
 * and ~0.29 us with OpenSSL's EVP (used otherwise; the same bytes either way). A context keeps
 * the subkey of the last nonce prefix it saw, so a sealer that keeps its prefix for a run of
 * messages, and an opener reading them back in order, derive once per run (three AES blocks
 * and a key schedule).
 *
 * One context per thread (it holds OpenSSL cipher contexts); it owns a copy of the key in
 * sodium_malloc memory and wipes it on free.
 */
#include "xaes.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <string.h>

#define XAES_MAGIC 0x58414553u /* "XAES" */

struct hie_xaes {
    crypto_aead_aes256gcm_state st; /* libsodium's AES-256-GCM under the subkey (when sodium) */
    uint32_t magic;
    bool sodium;          /* libsodium's AES-256-GCM, else OpenSSL's gcm context */
    EVP_CIPHER_CTX *ecb;  /* AES-256 under the key: the subkey derivation */
    EVP_CIPHER_CTX *gcm;  /* AES-256-GCM under the subkey of prefix */
    uint8_t k1[16];       /* the CMAC subkey K1 of the key */
    uint8_t prefix[12];   /* the nonce prefix gcm is keyed for */
    bool keyed;
};

static int
ecb_blocks(EVP_CIPHER_CTX *ecb, const uint8_t *in, uint8_t *out, int len)
{
    int n = 0;
    return EVP_EncryptUpdate(ecb, out, &n, in, len) == 1 && n == len ? 0 : HIE_ECORRUPT;
}

int
hie_xaes_create(const uint8_t key[HIE_XAES_KEY_BYTES], hie_xaes_t **out)
{
    return hie_xaes__create(key, crypto_aead_aes256gcm_is_available() == 1, out);
}

int
hie_xaes__create(const uint8_t key[HIE_XAES_KEY_BYTES], bool sodium, hie_xaes_t **out)
{
    HIE_ASSERT(key != NULL && out != NULL);
    *out = NULL;
    /* sodium_malloc ends the block at a page end: a size that is a multiple of the struct's
     * alignment (16, for st) keeps st aligned */
    _Static_assert(sizeof(hie_xaes_t) % 16 == 0, "st stays aligned");
    hie_xaes_t *x = sodium_malloc(sizeof(*x));
    if (x == NULL) {
        return HIE_ENOMEM;
    }
    memset(x, 0, sizeof(*x));
    x->sodium = sodium;
    x->ecb = EVP_CIPHER_CTX_new();
    x->gcm = EVP_CIPHER_CTX_new();
    int rc = x->ecb != NULL && x->gcm != NULL ? 0 : HIE_ENOMEM;
    if (rc == 0 && (EVP_EncryptInit_ex(x->ecb, EVP_aes_256_ecb(), NULL, key, NULL) != 1 ||
                       EVP_CIPHER_CTX_set_padding(x->ecb, 0) != 1 ||
                       EVP_CipherInit_ex(x->gcm, EVP_aes_256_gcm(), NULL, NULL, NULL, 1) != 1)) {
        rc = HIE_ENOMEM;
    }
    uint8_t zero[16] = {0}, l[16] = {0};
    rc = rc ? rc : ecb_blocks(x->ecb, zero, l, 16);
    if (rc != 0) {
        sodium_memzero(l, sizeof(l));
        x->magic = XAES_MAGIC;
        hie_xaes_destroy(&x);
        return rc;
    }
    /* K1 = L << 1, xor 0x87 into the last byte when L's top bit was set (CMAC, SP 800-38B) */
    for (int i = 0; i < 16; i++) {
        x->k1[i] = (uint8_t)((l[i] << 1) | (i < 15 ? l[i + 1] >> 7 : 0));
    }
    x->k1[15] ^= (uint8_t)(0x87 & -(l[0] >> 7));
    sodium_memzero(l, sizeof(l));
    x->magic = XAES_MAGIC;
    *out = x;
    return 0;
}

void
hie_xaes_destroy(hie_xaes_t **xp)
{
    HIE_ASSERT(xp != NULL);
    hie_xaes_t *x = *xp;
    if (x == NULL) {
        return;
    }
    HIE_ASSERT(x->magic == XAES_MAGIC);
    EVP_CIPHER_CTX_free(x->ecb); /* OpenSSL wipes the key schedules */
    EVP_CIPHER_CTX_free(x->gcm);
    sodium_free(x); /* wipes k1 */
    *xp = NULL;
}

/* Keys gcm for the nonce's prefix, unless it already is. */
static int
subkey(hie_xaes_t *x, const uint8_t nonce[HIE_XAES_NONCE_BYTES])
{
    if (x->keyed && memcmp(x->prefix, nonce, 12) == 0) {
        return 0;
    }
    uint8_t m[32], kx[32];
    for (int b = 0; b < 2; b++) { /* M_i = 0x00 || i || "X" || 0x00 || N[:12], xor K1 */
        uint8_t *mi = m + 16 * b;
        mi[0] = 0;
        mi[1] = (uint8_t)(b + 1);
        mi[2] = 'X';
        mi[3] = 0;
        memcpy(mi + 4, nonce, 12);
        for (int i = 0; i < 16; i++) {
            mi[i] ^= x->k1[i];
        }
    }
    x->keyed = false;
    int rc = ecb_blocks(x->ecb, m, kx, 32);
    if (rc == 0 && x->sodium) {
        rc = crypto_aead_aes256gcm_beforenm(&x->st, kx) == 0 ? 0 : HIE_ECORRUPT;
    } else if (rc == 0 && EVP_CipherInit_ex(x->gcm, NULL, NULL, kx, NULL, -1) != 1) {
        rc = HIE_ECORRUPT;
    }
    sodium_memzero(kx, sizeof(kx));
    sodium_memzero(m, sizeof(m)); /* M_i xor K1 with M_i public: K1 */
    if (rc == 0) {
        memcpy(x->prefix, nonce, 12);
        x->keyed = true;
    }
    return rc;
}

/* One GCM pass over in (len bytes) into out, with ad, under the keyed subkey; opening (tag not
 * NULL) checks the tag. */
static int
gcm_pass(hie_xaes_t *x, const uint8_t *iv, hie_span_t ad, const uint8_t *in, size_t len,
    uint8_t *out, const uint8_t *tag)
{
    int n = 0, fin = 0;
    if (EVP_CipherInit_ex(x->gcm, NULL, NULL, NULL, iv, tag == NULL) != 1 ||
        (tag != NULL && EVP_CIPHER_CTX_ctrl(x->gcm, EVP_CTRL_AEAD_SET_TAG, HIE_XAES_TAG_BYTES,
                            (void *)(uintptr_t)tag) != 1) ||
        (ad.len > 0 && EVP_CipherUpdate(x->gcm, NULL, &n, ad.ptr, (int)ad.len) != 1) ||
        EVP_CipherUpdate(x->gcm, out, &n, in, (int)len) != 1 || (size_t)n != len) {
        return HIE_ECORRUPT;
    }
    return EVP_CipherFinal_ex(x->gcm, out + n, &fin) == 1 && fin == 0 ? 0 : HIE_ECORRUPT;
}

int
hie_xaes_seal(hie_xaes_t *x, const uint8_t nonce[HIE_XAES_NONCE_BYTES], hie_span_t plain,
    hie_span_t ad, uint8_t *out, size_t out_bytes)
{
    HIE_ASSERT(x != NULL && x->magic == XAES_MAGIC && nonce != NULL && out != NULL);
    if (plain.len > HIE_XAES_PLAIN_BYTES_MAX || ad.len > HIE_XAES_PLAIN_BYTES_MAX ||
        out_bytes < plain.len + HIE_XAES_TAG_BYTES) {
        return HIE_ELIMIT;
    }
    int rc = subkey(x, nonce);
    if (rc == 0 && x->sodium) {
        unsigned long long clen = 0;
        rc = crypto_aead_aes256gcm_encrypt_afternm(out, &clen, plain.ptr, plain.len, ad.ptr,
            ad.len, NULL, nonce + 12, &x->st);
        HIE_ASSERT(rc != 0 || clen == plain.len + HIE_XAES_TAG_BYTES);
        return rc == 0 ? 0 : HIE_ECORRUPT;
    }
    rc = rc ? rc : gcm_pass(x, nonce + 12, ad, plain.ptr, plain.len, out, NULL);
    if (rc == 0 && EVP_CIPHER_CTX_ctrl(x->gcm, EVP_CTRL_AEAD_GET_TAG, HIE_XAES_TAG_BYTES,
                       out + plain.len) != 1) {
        rc = HIE_ECORRUPT;
    }
    return rc;
}

int
hie_xaes_open(hie_xaes_t *x, const uint8_t nonce[HIE_XAES_NONCE_BYTES], hie_span_t box,
    hie_span_t ad, uint8_t *out, size_t out_bytes, size_t *out_len)
{
    HIE_ASSERT(x != NULL && x->magic == XAES_MAGIC && nonce != NULL && out != NULL);
    HIE_ASSERT(out_len != NULL);
    *out_len = 0;
    if (box.len < HIE_XAES_TAG_BYTES || box.len - HIE_XAES_TAG_BYTES > HIE_XAES_PLAIN_BYTES_MAX ||
        ad.len > HIE_XAES_PLAIN_BYTES_MAX) {
        return HIE_ECORRUPT;
    }
    size_t len = box.len - HIE_XAES_TAG_BYTES;
    if (out_bytes < len) {
        return HIE_ELIMIT;
    }
    uint8_t tag[HIE_XAES_TAG_BYTES];
    memcpy(tag, box.ptr + len, sizeof(tag));
    int rc = subkey(x, nonce);
    if (rc == 0 && x->sodium) {
        rc = crypto_aead_aes256gcm_decrypt_detached_afternm(out, NULL, box.ptr, len, tag,
            ad.ptr, ad.len, nonce + 12, &x->st);
    } else {
        rc = rc ? rc : gcm_pass(x, nonce + 12, ad, box.ptr, len, out, tag);
    }
    if (rc != 0) {
        sodium_memzero(out, len); /* nothing of a box that fails its tag leaves */
        return HIE_ECORRUPT;
    }
    *out_len = len;
    return 0;
}
