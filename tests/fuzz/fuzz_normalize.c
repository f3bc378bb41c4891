/*
 * fuzz_normalize.c - libFuzzer driver for the MPI's demographic normalization (style.md 3.10):
 * the bytes as a name (must be refused with a documented code, or give a normalized name that
 * normalizes to itself), as a birth date, a phone number and a postcode; names that normalize
 * also go through the comparators and NYSIIS, which assert on anything unexpected.
 * Built with replay_main.c into fuzz_normalize_replay, which CI runs over its corpus.
 */
#include "hie/mpi.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_name(hie_span_t in)
{
    char a[HIE_MPI_NORM_BUF_BYTES], b[HIE_MPI_NORM_BUF_BYTES];
    int rc = hie_mpi_name_normalize(in, a, sizeof(a), NULL);
    HIE_ASSERT(rc == 0 || rc == HIE_EINVAL || rc == HIE_ELIMIT);
    if (rc != 0) {
        return;
    }
    /* idempotent: a stored normalized value never changes when normalized again */
    rc = hie_mpi_name_normalize(hie_span(a, strlen(a)), b, sizeof(b), NULL);
    HIE_ASSERT(rc == 0);
    HIE_ASSERT(strcmp(a, b) == 0);
    char code[HIE_MPI_NYSIIS_BUF_BYTES];
    hie_mpi_nysiis(a, code, sizeof(code));
    double jw = hie_mpi_jaro_winkler(a, "smith");
    HIE_ASSERT(jw >= 0.0 && jw <= 1.0);
    (void)hie_mpi_damerau_levenshtein(a, "smith", 3);
    (void)hie_mpi_string_compare(a, "smith");
    char canon[HIE_MPI_NORM_BUF_BYTES];
    rc = hie_mpi_given_canonical(a, canon, sizeof(canon));
    HIE_ASSERT(rc == 0 || rc == HIE_ELIMIT);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hie_span_t in = hie_span(data, size);
    fuzz_name(in);
    uint32_t date = 0;
    int rc = hie_mpi_date_parse(in, &date);
    HIE_ASSERT(rc == 0 || rc == HIE_EINVAL || rc == HIE_ELIMIT);
    if (rc == 0) {
        HIE_ASSERT(date / 10000u >= HIE_MPI_DATE_YEAR_MIN && date / 10000u <= HIE_MPI_DATE_YEAR_MAX);
        HIE_ASSERT(hie_mpi_date_compare(date, date) == HIE_MPI_DATE_EXACT);
    }
    char phone[HIE_MPI_PHONE_BUF_BYTES], post[HIE_MPI_POSTCODE_BUF_BYTES];
    rc = hie_mpi_phone_normalize(in, phone, sizeof(phone));
    HIE_ASSERT(rc == 0 || rc == HIE_EINVAL || rc == HIE_ELIMIT);
    rc = hie_mpi_postcode_normalize(in, post, sizeof(post));
    HIE_ASSERT(rc == 0 || rc == HIE_EINVAL || rc == HIE_ELIMIT);
    return 0;
}
