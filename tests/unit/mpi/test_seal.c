/*
 * test_seal.c - PHI at rest (mpi/src/seal.c): key file checks, seal/open round trip, tamper and
 * slot binding, no plaintext in sealed bytes, key generation; XAES-256-GCM against the C2SP
 * vectors and the sealers built on it (mpi/src/xaes.c).
 */
#include "hie/mpi.h"

#include "../../../mpi/src/xaes.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char keypath[128];

static void
setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    snprintf(dir, sizeof(dir), "/tmp/hie-seal-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(keypath, sizeof(keypath), "%s/mpi.key", dir);
}

static void
teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(mpi_seal, .init = setup, .fini = teardown);

static hie_mpi_key_t *
fresh_key(void)
{
    cr_assert_eq(hie_mpi_key_generate(keypath), 0);
    hie_mpi_key_t *k = NULL;
    cr_assert_eq(hie_mpi_key_load(&k, keypath), 0);
    return k;
}

/* A second, different key in the same directory. */
static hie_mpi_key_t *
second_key(void)
{
    char path2[160];
    snprintf(path2, sizeof(path2), "%s/second.key", dir);
    cr_assert_eq(hie_mpi_key_generate(path2), 0);
    hie_mpi_key_t *b = NULL;
    cr_assert_eq(hie_mpi_key_load(&b, path2), 0);
    return b;
}

Test(mpi_seal, generated_key_is_private_and_never_overwritten)
{
    hie_mpi_key_t *k = fresh_key();
    struct stat sb;
    cr_assert_eq(stat(keypath, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    cr_assert_eq(sb.st_size, HIE_MPI_KEY_BYTES);
    cr_assert_eq(hie_mpi_key_generate(keypath), -EEXIST);
    hie_mpi_key_destroy(&k);
    cr_assert_null(k);
    hie_mpi_key_destroy(&k); /* NULL-safe */
}

Test(mpi_seal, key_file_readable_by_others_or_of_wrong_size_is_refused, .timeout = 10)
{
    hie_mpi_key_t *k = fresh_key();
    hie_mpi_key_destroy(&k);
    cr_assert_eq(chmod(keypath, 0644), 0);
    cr_assert_eq(hie_mpi_key_load(&k, keypath), HIE_EDENIED);
    cr_assert_null(k);
    cr_assert_eq(chmod(keypath, 0600), 0);
    FILE *f = fopen(keypath, "a");
    fputc('x', f);
    fclose(f);
    cr_assert_eq(hie_mpi_key_load(&k, keypath), HIE_EINVAL);
    char link[160];
    snprintf(link, sizeof(link), "%s/link.key", dir);
    cr_assert_eq(symlink(keypath, link), 0);
    cr_assert_eq(hie_mpi_key_load(&k, link), -ELOOP);
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing.key", dir);
    cr_assert_eq(hie_mpi_key_load(&k, missing), -ENOENT);
    /* a FIFO is refused at once: the load waited for a writer (--check-config hung) */
    char fifo[160];
    snprintf(fifo, sizeof(fifo), "%s/fifo.key", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_assert_eq(hie_mpi_key_load(&k, fifo), HIE_EDENIED);
}

Test(mpi_seal, round_trip_tamper_and_slot_binding)
{
    hie_mpi_key_t *k = fresh_key();
    static const char plain[] = "{\"family\":\"zwierzchowski\",\"dob\":\"19640229\"}";
    uint8_t nonce[HIE_MPI_SEAL_NONCE_BYTES];
    randombytes_buf(nonce, sizeof(nonce));
    hie_span_t ad = hie_span("general-hospital\0MRN-0042", 25);
    uint8_t sealed[256], opened[256];
    size_t slen = sizeof(plain) - 1 + HIE_MPI_SEAL_OVERHEAD_BYTES, olen = 0;
    cr_assert_eq(hie_mpi_seal(k, hie_span(plain, sizeof(plain) - 1), ad, nonce, sealed,
        sizeof(sealed)), 0);
    cr_assert_null(memmem(sealed, slen, "zwierzchowski", 13), "plaintext in sealed bytes");
    cr_assert_null(memmem(sealed, slen, "19640229", 8), "plaintext in sealed bytes");
    cr_assert_eq(hie_mpi_open(k, hie_span(sealed, slen), ad, nonce, opened, sizeof(opened),
        &olen), 0);
    cr_assert_eq(olen, sizeof(plain) - 1);
    cr_assert_eq(memcmp(opened, plain, olen), 0);
    /* moved to another patient's slot */
    hie_span_t other = hie_span("general-hospital\0MRN-0043", 25);
    cr_assert_eq(hie_mpi_open(k, hie_span(sealed, slen), other, nonce, opened, sizeof(opened),
        &olen), HIE_ECORRUPT);
    /* one bit flipped, anywhere */
    for (size_t i = 0; i < slen; i += 7) {
        sealed[i] ^= 0x01;
        cr_assert_eq(hie_mpi_open(k, hie_span(sealed, slen), ad, nonce, opened,
            sizeof(opened), &olen), HIE_ECORRUPT, "flip at %zu accepted", i);
        sealed[i] ^= 0x01;
    }
    /* truncated */
    cr_assert_eq(hie_mpi_open(k, hie_span(sealed, 10), ad, nonce, opened, sizeof(opened),
        &olen), HIE_ECORRUPT);
    cr_assert_eq(hie_mpi_seal(k, hie_span(plain, sizeof(plain) - 1), ad, nonce, sealed, 10),
        HIE_ELIMIT);
    hie_mpi_key_destroy(&k);
}

Test(mpi_seal, another_key_cannot_open_and_index_secrets_differ)
{
    hie_mpi_key_t *a = fresh_key();
    hie_mpi_key_t *b = second_key();
    uint8_t nonce[HIE_MPI_SEAL_NONCE_BYTES] = {1};
    uint8_t sealed[64], opened[64];
    size_t olen;
    cr_assert_eq(hie_mpi_seal(a, hie_span("secret", 6), hie_span("k", 1), nonce, sealed,
        sizeof(sealed)), 0);
    cr_assert_eq(hie_mpi_open(b, hie_span(sealed, 22), hie_span("k", 1), nonce, opened,
        sizeof(opened), &olen), HIE_ECORRUPT);
    uint8_t sa[16], sb[16], sa2[16];
    hie_mpi_key_index_secret(a, sa);
    hie_mpi_key_index_secret(b, sb);
    hie_mpi_key_index_secret(a, sa2);
    cr_assert_neq(memcmp(sa, sb, 16), 0);
    cr_assert_eq(memcmp(sa, sa2, 16), 0, "the index secret is stable for a key");
    hie_mpi_key_destroy(&a);
    hie_mpi_key_destroy(&b);
}

Test(mpi_seal, seal_with_null_key_aborts, .signal = SIGABRT)
{
    teardown(); /* .fini does not run after the abort */
    uint8_t nonce[HIE_MPI_SEAL_NONCE_BYTES] = {0}, out[32];
    int rc = hie_mpi_seal(NULL, hie_span("x", 1), hie_span("k", 1), nonce, out, sizeof(out));
    (void)rc;
}

static void
hex(const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(sscanf(h + 2 * i, "%2hhx", &out[i]), 1);
    }
}

/* c2sp.org/XAES-256-GCM: the two published vectors (ciphertext || tag). */
Test(mpi_seal, xaes_matches_the_c2sp_vectors)
{
    static const struct {
        uint8_t key_byte;
        const char *ad;
        const char *box;
    } v[] = {
        {0x01, "", "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271"},
        {0x03, "c2sp.org/XAES-256-GCM",
            "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d"},
    };
    const uint8_t *nonce = (const uint8_t *)"ABCDEFGHIJKLMNOPQRSTUVWX";
    for (size_t j = 0; j < 2 * sizeof(v) / sizeof(v[0]); j++) {
        size_t i = j / 2;
        bool sodium = j % 2 == 1; /* OpenSSL's AES-256-GCM, then libsodium's where it runs */
        if (sodium && crypto_aead_aes256gcm_is_available() != 1) {
            continue;
        }
        uint8_t key[HIE_XAES_KEY_BYTES], want[28], box[64], plain[64];
        memset(key, v[i].key_byte, sizeof(key));
        hex(v[i].box, want, sizeof(want));
        hie_xaes_t *x = NULL;
        cr_assert_eq(hie_xaes__create(key, sodium, &x), 0);
        hie_span_t ad = hie_span(v[i].ad, strlen(v[i].ad));
        cr_assert_eq(hie_xaes_seal(x, nonce, hie_span("XAES-256-GCM", 12), ad, box,
            sizeof(box)), 0);
        cr_assert_eq(memcmp(box, want, sizeof(want)), 0, "vector %zu sodium %d", i, sodium);
        size_t len = 0;
        cr_assert_eq(hie_xaes_open(x, nonce, hie_span(want, sizeof(want)), ad, plain,
            sizeof(plain), &len), 0);
        cr_assert_eq(len, 12u);
        cr_assert_eq(memcmp(plain, "XAES-256-GCM", 12), 0);
        want[27] ^= 0x80; /* the tag */
        cr_assert_eq(hie_xaes_open(x, nonce, hie_span(want, sizeof(want)), ad, plain,
            sizeof(plain), &len), HIE_ECORRUPT);
        cr_assert_eq(len, 0u);
        hie_xaes_destroy(&x);
        cr_assert_null(x);
    }
}

/* A sealer's boxes: round trip through another sealer, nonces that differ, binding to the ad,
 * every flipped bit refused, and boxes of hie_mpi_seal (made before the sealers) still open. */
Test(mpi_seal, sealer_round_trip_tamper_and_old_boxes)
{
    hie_mpi_key_t *k = fresh_key();
    hie_mpi_sealer_t *s = NULL, *o = NULL;
    cr_assert_eq(hie_mpi_sealer_create(k, &s), 0);
    cr_assert_eq(hie_mpi_sealer_create(k, &o), 0);
    cr_assert_eq(hie_mpi_sealer_key(s), k);
    static const char plain[] = "euid=E000123;permitted;reason=permit-opt-out";
    size_t n = sizeof(plain) - 1, blen = HIE_MPI_SEAL_NONCE_BYTES + n +
        HIE_MPI_SEAL_OVERHEAD_BYTES, olen = 0;
    hie_span_t ad = hie_span("commitment-a", 12);
    uint8_t a[128], b[128], tail[HIE_MPI_SEALER_TAIL_BYTES], out[128];
    randombytes_buf(tail, sizeof(tail));
    cr_assert_eq(hie_mpi_sealer_seal(s, hie_span(plain, n), ad, tail, a, sizeof(a)), 0);
    randombytes_buf(tail, sizeof(tail));
    cr_assert_eq(hie_mpi_sealer_seal(s, hie_span(plain, n), ad, tail, b, sizeof(b)), 0);
    cr_assert_eq(memcmp(a, b, 12), 0, "one prefix for a run of seals");
    cr_assert_neq(memcmp(a, b, blen), 0);
    cr_assert_null(memmem(a, blen, "E000123", 7), "plaintext in sealed bytes");
    cr_assert_eq(hie_mpi_sealer_open(o, hie_span(a, blen), ad, out, sizeof(out), &olen), 0);
    cr_assert_eq(olen, n);
    cr_assert_eq(memcmp(out, plain, n), 0);
    cr_assert_eq(hie_mpi_sealer_open(o, hie_span(b, blen), ad, out, sizeof(out), &olen), 0);
    cr_assert_eq(hie_mpi_sealer_open(o, hie_span(a, blen), hie_span("commitment-b", 12), out,
        sizeof(out), &olen), HIE_ECORRUPT);
    for (size_t i = 0; i < blen; i += 5) {
        a[i] ^= 0x10;
        cr_assert_eq(hie_mpi_sealer_open(o, hie_span(a, blen), ad, out, sizeof(out), &olen),
            HIE_ECORRUPT, "flip at %zu accepted", i);
        a[i] ^= 0x10;
    }
    cr_assert_eq(hie_mpi_sealer_open(o, hie_span(a, 30), ad, out, sizeof(out), &olen),
        HIE_ECORRUPT);
    cr_assert_eq(hie_mpi_sealer_open(o, hie_span(a, blen), ad, out, 8, &olen), HIE_ELIMIT);
    cr_assert_eq(hie_mpi_sealer_seal(s, hie_span(plain, n), ad, tail, a, blen - 1),
        HIE_ELIMIT);
    /* nonce || hie_mpi_seal's XChaCha20-Poly1305, as subjects were sealed before */
    uint8_t old[128];
    randombytes_buf(old, HIE_MPI_SEAL_NONCE_BYTES);
    cr_assert_eq(hie_mpi_seal(k, hie_span(plain, n), ad, old, old + HIE_MPI_SEAL_NONCE_BYTES,
        sizeof(old) - HIE_MPI_SEAL_NONCE_BYTES), 0);
    cr_assert_eq(hie_mpi_sealer_open(o, hie_span(old, blen), ad, out, sizeof(out), &olen), 0);
    cr_assert_eq(memcmp(out, plain, n), 0);
    old[blen - 1] ^= 1;
    cr_assert_eq(hie_mpi_sealer_open(o, hie_span(old, blen), ad, out, sizeof(out), &olen),
        HIE_ECORRUPT);
    hie_mpi_sealer_destroy(&s);
    hie_mpi_sealer_destroy(&o);
    cr_assert_null(s);
    hie_mpi_sealer_destroy(&s); /* NULL-safe */
    hie_mpi_key_destroy(&k);
}

/* Another key's sealer opens nothing. */
Test(mpi_seal, sealer_of_another_key_cannot_open)
{
    hie_mpi_key_t *a = fresh_key();
    hie_mpi_key_t *b = second_key();
    hie_mpi_sealer_t *sa = NULL, *sb = NULL;
    cr_assert_eq(hie_mpi_sealer_create(a, &sa), 0);
    cr_assert_eq(hie_mpi_sealer_create(b, &sb), 0);
    uint8_t tail[HIE_MPI_SEALER_TAIL_BYTES] = {7}, box[64], out[64];
    size_t olen = 0;
    cr_assert_eq(hie_mpi_sealer_seal(sa, hie_span("secret", 6), hie_span("k", 1), tail, box,
        sizeof(box)), 0);
    cr_assert_eq(hie_mpi_sealer_open(sb, hie_span(box, 46), hie_span("k", 1), out, sizeof(out),
        &olen), HIE_ECORRUPT);
    cr_assert_eq(hie_mpi_sealer_open(sa, hie_span(box, 46), hie_span("k", 1), out, sizeof(out),
        &olen), 0);
    hie_mpi_sealer_destroy(&sa);
    hie_mpi_sealer_destroy(&sb);
    hie_mpi_key_destroy(&a);
    hie_mpi_key_destroy(&b);
}
