/*
 * seal.c - PHI at rest: the MPI's data key, authenticated encryption of demographics, and the
 * secret for keyed index hashes (design.md: "PHI at rest is encrypted (libsodium AEAD, key
 * from a file the operator controls); index keys are keyed hashes of normalized values").
 *
 * One owner per secret (style.md 3.5): the key lives in sodium_malloc memory, read-only once
 * loaded, reachable only through this API, and wiped on destroy. Three subkeys are derived with
 * crypto_kdf: one for XChaCha20-Poly1305 (records), one for SipHash index keys, one for the
 * sealers' XAES-256-GCM (hie_mpi_sealer, below), so no use can leak another. A sealed record is
 * bound to its slot by its associated data (the record key, e.g. "org\0mrn"), so a ciphertext
 * moved to another slot fails to open.
 *
 * Nonces come from the caller: the node's proposer draws a random nonce and puts it in the
 * command, so the state machine stays deterministic (every node stores the same bytes).
 */
#include "hie/mpi.h"

#include "xaes.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAGIC 0x4b455931u /* "KEY1" */
#define KDF_CONTEXT "hiempi01"
_Static_assert(sizeof(KDF_CONTEXT) - 1 == crypto_kdf_CONTEXTBYTES, "kdf context size");
_Static_assert(HIE_MPI_KEY_BYTES == crypto_kdf_KEYBYTES, "key size");
_Static_assert(HIE_MPI_SEAL_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
    "nonce size");
_Static_assert(HIE_MPI_SEAL_OVERHEAD_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES,
    "tag size");

struct secrets {
    uint8_t aead[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    uint8_t index[crypto_shorthash_KEYBYTES];
    uint8_t xaes[HIE_XAES_KEY_BYTES]; /* the sealers' (audit subjects) */
};

struct hie_mpi_key {
    uint32_t magic;
    struct secrets *s; /* sodium_malloc, read-only after load */
};

/* Reads exactly HIE_MPI_KEY_BYTES raw bytes from an fd, refusing anything else. */
static int
key_read(int fd, uint8_t *out)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        return -errno;
    }
    if (!S_ISREG(sb.st_mode) || (sb.st_mode & 0077) != 0) {
        return HIE_EDENIED; /* group or other may read or write it: refuse to use it */
    }
    if (sb.st_size != (off_t)HIE_MPI_KEY_BYTES) {
        return HIE_EINVAL;
    }
    size_t got = 0;
    for (unsigned i = 0; got < HIE_MPI_KEY_BYTES && i < 16; i++) {
        ssize_t n = read(fd, out + got, HIE_MPI_KEY_BYTES - got);
        if (n <= 0) {
            return n < 0 ? -errno : HIE_EINVAL;
        }
        got += (size_t)n;
    }
    return got == HIE_MPI_KEY_BYTES ? 0 : HIE_EINVAL;
}

static int
key_derive(hie_mpi_key_t *k, const uint8_t master[HIE_MPI_KEY_BYTES])
{
    k->s = sodium_malloc(sizeof(*k->s));
    if (k->s == NULL) {
        return HIE_ENOMEM;
    }
    crypto_kdf_derive_from_key(k->s->aead, sizeof(k->s->aead), 1, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(k->s->index, sizeof(k->s->index), 2, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(k->s->xaes, sizeof(k->s->xaes), 3, KDF_CONTEXT, master);
    sodium_mprotect_readonly(k->s);
    return 0;
}

int
hie_mpi_key_load(hie_mpi_key_t **out, const char *path)
{
    HIE_ASSERT(out != NULL && path != NULL);
    *out = NULL;
    if (sodium_init() < 0) { /* idempotent; guarded memory needs it */
        return HIE_ENOMEM;
    }
    uint8_t master[HIE_MPI_KEY_BYTES];
    /* O_NONBLOCK: a FIFO is refused below (not a regular file), not waited on for a writer */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        return -errno;
    }
    int rc = key_read(fd, master);
    close(fd);
    hie_mpi_key_t *k = NULL;
    if (rc == 0) {
        k = hie_mem_calloc(1, sizeof(*k));
        rc = k == NULL ? HIE_ENOMEM : key_derive(k, master);
    }
    sodium_memzero(master, sizeof(master));
    if (rc != 0) {
        hie_mpi_key_destroy(&k);
        return rc;
    }
    k->magic = KEY_MAGIC;
    *out = k;
    return 0;
}

void
hie_mpi_key_destroy(hie_mpi_key_t **kp)
{
    HIE_ASSERT(kp != NULL);
    hie_mpi_key_t *k = *kp;
    if (k == NULL) {
        return;
    }
    if (k->s != NULL) {
        sodium_free(k->s); /* wipes before freeing */
    }
    k->magic = 0;
    hie_mem_free(k, sizeof(*k));
    *kp = NULL;
}

int
hie_mpi_key_generate(const char *path)
{
    HIE_ASSERT(path != NULL);
    if (sodium_init() < 0) {
        return HIE_ENOMEM;
    }
    uint8_t master[HIE_MPI_KEY_BYTES];
    crypto_kdf_keygen(master);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0) {
        ssize_t n = write(fd, master, sizeof(master));
        rc = n == (ssize_t)sizeof(master) ? 0 : (n < 0 ? -errno : -EIO);
        if (rc == 0 && fsync(fd) != 0) {
            rc = -errno;
        }
        close(fd);
        if (rc != 0) {
            unlink(path);
        }
    }
    sodium_memzero(master, sizeof(master));
    return rc;
}

int
hie_mpi_seal(const hie_mpi_key_t *k, hie_span_t plain, hie_span_t ad,
    const uint8_t nonce[HIE_MPI_SEAL_NONCE_BYTES], uint8_t *out, size_t out_bytes)
{
    HIE_ASSERT(k != NULL && k->magic == KEY_MAGIC);
    HIE_ASSERT(out != NULL && nonce != NULL);
    if (plain.len > HIE_MPI_SEAL_VALUE_BYTES_MAX ||
        out_bytes < plain.len + HIE_MPI_SEAL_OVERHEAD_BYTES) {
        return HIE_ELIMIT;
    }
    unsigned long long clen = 0;
    int rc = crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, plain.ptr, plain.len,
        ad.ptr, ad.len, NULL, nonce, k->s->aead);
    HIE_ASSERT(rc == 0);
    HIE_ASSERT(clen == plain.len + HIE_MPI_SEAL_OVERHEAD_BYTES);
    return 0;
}

int
hie_mpi_open(const hie_mpi_key_t *k, hie_span_t sealed, hie_span_t ad,
    const uint8_t nonce[HIE_MPI_SEAL_NONCE_BYTES], uint8_t *out, size_t out_bytes,
    size_t *out_len)
{
    HIE_ASSERT(k != NULL && k->magic == KEY_MAGIC);
    HIE_ASSERT(out != NULL && nonce != NULL && out_len != NULL);
    *out_len = 0;
    if (sealed.len < HIE_MPI_SEAL_OVERHEAD_BYTES ||
        sealed.len - HIE_MPI_SEAL_OVERHEAD_BYTES > HIE_MPI_SEAL_VALUE_BYTES_MAX) {
        return HIE_ECORRUPT;
    }
    if (out_bytes < sealed.len - HIE_MPI_SEAL_OVERHEAD_BYTES) {
        return HIE_ELIMIT;
    }
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, sealed.ptr, sealed.len,
            ad.ptr, ad.len, nonce, k->s->aead) != 0) {
        return HIE_ECORRUPT; /* altered, moved to another slot, or another key */
    }
    *out_len = (size_t)mlen;
    return 0;
}

void
hie_mpi_key_index_secret(const hie_mpi_key_t *k, uint8_t out[16])
{
    HIE_ASSERT(k != NULL && k->magic == KEY_MAGIC);
    HIE_ASSERT(out != NULL);
    memcpy(out, k->s->index, 16);
}

void
hie_mpi_key_id(const hie_mpi_key_t *k, uint8_t out[16])
{
    static const char tag[] = "hie-mpi-key-id-v1";
    uint8_t secret[16];
    crypto_generichash_state h;
    hie_mpi_key_index_secret(k, secret);
    crypto_generichash_init(&h, NULL, 0, 16);
    crypto_generichash_update(&h, (const uint8_t *)tag, sizeof(tag) - 1);
    crypto_generichash_update(&h, secret, sizeof(secret));
    crypto_generichash_final(&h, out, 16);
    sodium_memzero(secret, sizeof(secret));
}

/* ---- sealers: XAES-256-GCM for many small values on one thread ----------------------------- */

/* Seals under one nonce prefix before a new one is drawn: the GCM nonces under one subkey are
 * the callers' random 12-byte tails, so at most 2^20 of them keeps a repeat below 2^-57. */
#define SEALER_PREFIX_USES (1u << 20)
#define SEALER_MAGIC 0x5345414cu /* "SEAL" */
_Static_assert(HIE_MPI_SEAL_NONCE_BYTES == HIE_XAES_NONCE_BYTES, "one box layout");
_Static_assert(HIE_MPI_SEAL_OVERHEAD_BYTES == HIE_XAES_TAG_BYTES, "one box layout");
_Static_assert(HIE_MPI_SEALER_TAIL_BYTES + 12u == HIE_XAES_NONCE_BYTES, "nonce = prefix || tail");

struct hie_mpi_sealer {
    uint32_t magic;
    uint32_t uses_left;              /* seals left under prefix */
    const hie_mpi_key_t *key;
    hie_xaes_t *x;
    uint8_t prefix[12];
};

int
hie_mpi_sealer_create(const hie_mpi_key_t *k, hie_mpi_sealer_t **out)
{
    HIE_ASSERT(k != NULL && k->magic == KEY_MAGIC && out != NULL);
    *out = NULL;
    hie_mpi_sealer_t *s = hie_mem_calloc(1, sizeof(*s));
    if (s == NULL) {
        return HIE_ENOMEM;
    }
    int rc = hie_xaes_create(k->s->xaes, &s->x);
    if (rc != 0) {
        hie_mem_free(s, sizeof(*s));
        return rc;
    }
    s->magic = SEALER_MAGIC;
    s->key = k;
    *out = s;
    return 0;
}

void
hie_mpi_sealer_destroy(hie_mpi_sealer_t **sp)
{
    HIE_ASSERT(sp != NULL);
    hie_mpi_sealer_t *s = *sp;
    if (s == NULL) {
        return;
    }
    HIE_ASSERT(s->magic == SEALER_MAGIC);
    hie_xaes_destroy(&s->x);
    sodium_memzero(s, sizeof(*s));
    hie_mem_free(s, sizeof(*s));
    *sp = NULL;
}

const hie_mpi_key_t *
hie_mpi_sealer_key(const hie_mpi_sealer_t *s)
{
    HIE_ASSERT(s != NULL && s->magic == SEALER_MAGIC);
    return s->key;
}

int
hie_mpi_sealer_seal(hie_mpi_sealer_t *s, hie_span_t plain, hie_span_t ad,
    const uint8_t tail[HIE_MPI_SEALER_TAIL_BYTES], uint8_t *box, size_t box_bytes)
{
    HIE_ASSERT(s != NULL && s->magic == SEALER_MAGIC && tail != NULL && box != NULL);
    if (plain.len > HIE_MPI_SEAL_PLAIN_BYTES_MAX || ad.len > HIE_MPI_SEAL_PLAIN_BYTES_MAX ||
        box_bytes < HIE_MPI_SEAL_NONCE_BYTES + plain.len + HIE_MPI_SEAL_OVERHEAD_BYTES) {
        return HIE_ELIMIT;
    }
    if (s->uses_left == 0) {
        randombytes_buf(s->prefix, sizeof(s->prefix));
        s->uses_left = SEALER_PREFIX_USES;
    }
    s->uses_left--;
    memcpy(box, s->prefix, sizeof(s->prefix));
    memcpy(box + sizeof(s->prefix), tail, HIE_MPI_SEALER_TAIL_BYTES);
    return hie_xaes_seal(s->x, box, plain, ad, box + HIE_MPI_SEAL_NONCE_BYTES,
        box_bytes - HIE_MPI_SEAL_NONCE_BYTES);
}

int
hie_mpi_sealer_open(hie_mpi_sealer_t *s, hie_span_t box, hie_span_t ad, uint8_t *out,
    size_t out_bytes, size_t *out_len)
{
    HIE_ASSERT(s != NULL && s->magic == SEALER_MAGIC && out != NULL && out_len != NULL);
    *out_len = 0;
    if (box.len < HIE_MPI_SEAL_NONCE_BYTES + HIE_MPI_SEAL_OVERHEAD_BYTES) {
        return HIE_ECORRUPT;
    }
    hie_span_t sealed = hie_span(box.ptr + HIE_MPI_SEAL_NONCE_BYTES,
        box.len - HIE_MPI_SEAL_NONCE_BYTES);
    int rc = hie_xaes_open(s->x, box.ptr, sealed, ad, out, out_bytes, out_len);
    if (rc == HIE_ECORRUPT) { /* sealed before the sealers: hie_mpi_seal's XChaCha20-Poly1305 */
        rc = hie_mpi_open(s->key, sealed, ad, box.ptr, out, out_bytes, out_len);
    }
    return rc;
}
