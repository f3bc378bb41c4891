/*
 * test_seal.c - PHI at rest (mpi/src/seal.c): key file checks, seal/open round trip, tamper and
 * slot binding, no plaintext in sealed bytes, key generation.
 */
#include "hie/mpi.h"

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

Test(mpi_seal, key_file_readable_by_others_or_of_wrong_size_is_refused)
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
    char path2[160];
    snprintf(path2, sizeof(path2), "%s/second.key", dir);
    cr_assert_eq(hie_mpi_key_generate(path2), 0);
    hie_mpi_key_t *b = NULL;
    cr_assert_eq(hie_mpi_key_load(&b, path2), 0);
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
    uint8_t nonce[HIE_MPI_SEAL_NONCE_BYTES] = {0}, out[32];
    int rc = hie_mpi_seal(NULL, hie_span("x", 1), hie_span("k", 1), nonce, out, sizeof(out));
    (void)rc;
}
