/*
 * test_match_cache.c - what hie_mpi_person_prepare() caches (mpi/src/match.c) and the fast
 * paths of the comparators (mpi/src/compare.c) give exactly what the plain computations give:
 * comparison levels with cached NYSIIS codes, the linear edit distance capped at 1, the ASCII
 * decoding; and comparing or blocking an unprepared record is a programmer error.
 */
#include "hie/mpi.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char *const words[] = {"", "a", "ab", "ba", "abc", "acb", "bac", "abcd", "abdc",
    "catherine", "katherine", "kathryn", "mcdonald", "macdonald", "smith", "smyth", "smiths",
    "schmidt", "jon", "john", "joan", "jo", "martha", "marhta", "dwayne", "duane", "zoë", "zoe",
    "żaneta", "zaneta", "ångström", "angstrom", "o brien", "obrien", "li", "lee", "ca", "abc"};

Test(mpi_match_cache, coded_string_levels_equal_the_plain_ones)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(words); i++) {
        char ci[HIE_MPI_NYSIIS_BUF_BYTES];
        hie_mpi_nysiis(words[i], ci, sizeof(ci));
        for (size_t j = 0; j < HIE_ARRAY_LEN(words); j++) {
            char cj[HIE_MPI_NYSIIS_BUF_BYTES];
            hie_mpi_nysiis(words[j], cj, sizeof(cj));
            cr_assert_eq(hie_mpi_string_compare_coded(words[i], ci, words[j], cj),
                hie_mpi_string_compare(words[i], words[j]), "%s / %s", words[i], words[j]);
        }
    }
}

/* The plain optimal string alignment distance of two short ASCII strings, for reference. */
static unsigned
osa_reference(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned d[16][16];
    cr_assert_lt(la, 16);
    cr_assert_lt(lb, 16);
    for (size_t i = 0; i <= la; i++) {
        for (size_t j = 0; j <= lb; j++) {
            if (i == 0 || j == 0) {
                d[i][j] = (unsigned)(i + j);
                continue;
            }
            unsigned best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            best = d[i - 1][j] + 1 < best ? d[i - 1][j] + 1 : best;
            best = d[i][j - 1] + 1 < best ? d[i][j - 1] + 1 : best;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best) {
                best = d[i - 2][j - 2] + 1;
            }
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* Every pair of strings over {a, b, c} up to length 5: the distance capped at 1 (the linear
 * path) and at 3 agree with the full table. */
Test(mpi_match_cache, edit_distance_capped_at_one_matches_the_full_table)
{
    static char s[364][6];
    size_t n = 0;
    for (unsigned len = 0; len <= 5; len++) {
        unsigned total = 1;
        for (unsigned k = 0; k < len; k++) {
            total *= 3;
        }
        for (unsigned v = 0; v < total; v++) {
            unsigned x = v;
            for (unsigned k = 0; k < len; k++) {
                s[n][k] = (char)('a' + x % 3);
                x /= 3;
            }
            s[n][len] = '\0';
            n++;
        }
    }
    cr_assert_eq(n, HIE_ARRAY_LEN(s));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            unsigned ref = osa_reference(s[i], s[j]);
            unsigned one = hie_mpi_damerau_levenshtein(s[i], s[j], 1);
            cr_assert_eq(one, ref < 2 ? ref : 2, "'%s' '%s' ref %u", s[i], s[j], ref);
            unsigned three = hie_mpi_damerau_levenshtein(s[i], s[j], 3);
            cr_assert_eq(three, ref < 4 ? ref : 4);
            cr_assert_eq(hie_mpi_damerau_levenshtein(s[i], s[j], UINT_MAX), ref);
        }
    }
    cr_assert_eq(hie_mpi_damerau_levenshtein("zoë", "zoe", 1), 1, "non-ASCII decodes");
    cr_assert_eq(hie_mpi_damerau_levenshtein("añb", "abñ", 1), 1);
}

static hie_mpi_person_t
named(const char *given, const char *family)
{
    hie_mpi_person_t p;
    memset(&p, 0, sizeof(p));
    snprintf(p.given, sizeof(p.given), "%s", given);
    snprintf(p.family, sizeof(p.family), "%s", family);
    cr_assert_eq(hie_mpi_given_canonical(p.given, p.given_canon, sizeof(p.given_canon)), 0);
    p.dob = 19700101;
    hie_mpi_person_prepare(&p);
    return p;
}

Test(mpi_match_cache, prepare_caches_the_name_codes_and_is_idempotent)
{
    hie_mpi_person_t p = named("bill", "macdonald");
    char code[HIE_MPI_NYSIIS_BUF_BYTES];
    hie_mpi_nysiis("macdonald", code, sizeof(code));
    cr_assert_str_eq(p.family_code, code);
    hie_mpi_nysiis("bill", code, sizeof(code));
    cr_assert_str_eq(p.given_code, code);
    hie_mpi_nysiis("william", code, sizeof(code));
    cr_assert_str_eq(p.canon_code, code, "blocking uses the canonical given name");
    cr_assert_eq(p.prepared, HIE_MPI_PERSON_PREPARED);
    hie_mpi_person_t again = p;
    hie_mpi_person_prepare(&again);
    cr_assert_arr_eq(&p, &again, sizeof(p));
    hie_mpi_person_t copy = p; /* a plain value: a copy is prepared too */
    hie_mpi_vector_t v;
    hie_mpi_compare(&p, &copy, &v);
    cr_assert_eq(v.level[HIE_MPI_F_FAMILY], HIE_MPI_STR_EXACT);
}

Test(mpi_match_cache, comparing_an_unprepared_record_aborts, .signal = SIGABRT)
{
    hie_mpi_person_t a = named("anna", "smith");
    hie_mpi_person_t b;
    memset(&b, 0, sizeof(b));
    snprintf(b.given, sizeof(b.given), "anna");
    hie_mpi_vector_t v;
    hie_mpi_compare(&a, &b, &v);
}

Test(mpi_match_cache, blocking_an_unprepared_record_aborts, .signal = SIGABRT)
{
    static const uint8_t secret[16] = "test-block-key..";
    hie_mpi_person_t b;
    memset(&b, 0, sizeof(b));
    uint64_t keys[HIE_MPI_BLOCK_KEYS];
    hie_mpi_block_keys(&b, secret, keys);
}

Test(mpi_match_cache, email_local_part_is_its_own_level_and_block_key)
{
    static const uint8_t secret[16] = "test-block-key..";
    hie_mpi_person_t a = named("theo", "morris");
    hie_mpi_person_t b = a, c = a;
    snprintf(a.email, sizeof(a.email), "t.m39@brooks-sawyer.com");
    snprintf(b.email, sizeof(b.email), "t.m39@brooks-sawer.com");
    snprintf(c.email, sizeof(c.email), "t.m40@brooks-sawyer.com");
    hie_mpi_vector_t v;
    hie_mpi_compare(&a, &b, &v);
    cr_assert_str_eq(hie_mpi_level_name(HIE_MPI_F_EMAIL, v.level[HIE_MPI_F_EMAIL]),
        "same-local-part");
    hie_mpi_compare(&a, &c, &v);
    cr_assert_str_eq(hie_mpi_level_name(HIE_MPI_F_EMAIL, v.level[HIE_MPI_F_EMAIL]), "similar");
    hie_mpi_compare(&a, &a, &v);
    cr_assert_str_eq(hie_mpi_level_name(HIE_MPI_F_EMAIL, v.level[HIE_MPI_F_EMAIL]), "exact");
    cr_assert_eq(hie_mpi_field_levels(HIE_MPI_F_EMAIL), 5);
    uint64_t ka[HIE_MPI_BLOCK_KEYS], kb[HIE_MPI_BLOCK_KEYS], kc[HIE_MPI_BLOCK_KEYS];
    hie_mpi_block_keys(&a, secret, ka);
    hie_mpi_block_keys(&b, secret, kb);
    hie_mpi_block_keys(&c, secret, kc);
    cr_assert_neq(ka[14], 0);
    cr_assert_eq(ka[14], kb[14], "the same local part shares a block");
    cr_assert_neq(ka[14], kc[14]);
}
