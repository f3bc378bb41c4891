/*
 * test_normalize.c - unit tests for mpi/src/normalize.c and mpi/src/nicknames.c: name
 * normalization (case, NFKC, diacritics, punctuation, honorifics) including hostile Unicode
 * (invalid UTF-8 of every kind, NUL, controls, invisible and bidi characters, private-use and
 * unassigned code points, oversized and expanding input), the nickname table, birth dates,
 * phone numbers and postcodes.
 */
#include "hie/mpi.h"

/* mpi/src is a PRIVATE include directory of hie_mpi (other modules must not reach it), so the
 * suite names the private header by its path to check the nickname table itself. */
#include "../../../mpi/src/mpi_int.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

/* Normalizes the NUL-terminated s, expecting success; returns the result in a buffer that
 * lives until the next call. */
static const char *
norm(const char *s)
{
    static char out[HIE_MPI_NORM_BUF_BYTES];
    hie_errinfo_t info = {0};
    int rc = hie_mpi_name_normalize(hie_span(s, strlen(s)), out, sizeof(out), &info);
    cr_assert_eq(rc, 0, "normalize failed: %s (%s)", hie_strerror_name(rc),
        info.reason != NULL ? info.reason : "-");
    return out;
}

/* Normalizes len bytes at p expecting failure rc with reason; checks out stays "". */
static void
expect_refused(const void *p, size_t len, int rc_expected, const char *reason)
{
    char out[HIE_MPI_NORM_BUF_BYTES];
    hie_errinfo_t info = {0};
    memset(out, 'x', sizeof(out));
    int rc = hie_mpi_name_normalize(hie_span(p, len), out, sizeof(out), &info);
    cr_assert_eq(rc, rc_expected, "rc %s, want %s (case: %s)", hie_strerror_name(rc),
        hie_strerror_name(rc_expected), reason);
    cr_assert_str_eq(out, "", "output must stay empty on failure (case: %s)", reason);
    cr_assert_not_null(info.reason);
    cr_assert_str_eq(info.reason, reason);
    cr_assert_str_eq(info.field, "name");
}

#define REFUSED(lit, rc, reason) expect_refused(lit, sizeof(lit) - 1, rc, reason)

/* ---- names: the ordinary transformations ------------------------------------------------- */

Test(mpi_normalize, lowercases_trims_and_collapses_spaces)
{
    cr_assert_str_eq(norm("SMITH"), "smith");
    cr_assert_str_eq(norm("  Mary   Ann  "), "mary ann");
    cr_assert_str_eq(norm("\xC2\xA0" "Anne\xE2\x80\x83" "Marie\xE3\x80\x80"), "anne marie");
    cr_assert_str_eq(norm(""), "");
    cr_assert_str_eq(norm("   "), "");
    cr_assert_str_eq(norm("--.,;"), "");
}

Test(mpi_normalize, diacritics_and_case_fold_to_one_form)
{
    /* Precomposed, decomposed (e + U+0308), upper case and plain ASCII all meet. */
    cr_assert_str_eq(norm("Zo\xC3\xAB"), "zoe");
    cr_assert_str_eq(norm("Zoe\xCC\x88"), "zoe");
    cr_assert_str_eq(norm("ZO\xC3\x8B"), "zoe");
    cr_assert_str_eq(norm("ZOE"), "zoe");
    cr_assert_str_eq(norm("zoe"), "zoe");
    cr_assert_str_eq(norm("\xC3\x85ngstr\xC3\xB6m"), "angstrom");
    cr_assert_str_eq(norm("Fran\xC3\xA7ois"), "francois");
    cr_assert_str_eq(norm("N\xC3\xBA\xC3\xB1" "ez"), "nunez");
    /* Several stacked combining marks on one base letter all go. */
    cr_assert_str_eq(norm("a\xCC\x81\xCC\x88\xCC\xA3" "b"), "ab");
    /* Letters that are not base + mark stay; sharp s folds to ss. */
    cr_assert_str_eq(norm("S\xC3\xB8rensen"), "s\xC3\xB8rensen");
    cr_assert_str_eq(norm("\xC5\x81ukasz"), "\xC5\x82ukasz");
    cr_assert_str_eq(norm("Stra\xC3\x9F" "e"), "strasse");
    /* Dotted capital I (Turkish) folds to i plus a dot mark, and the mark goes. */
    cr_assert_str_eq(norm("\xC4\xB0pek"), "ipek");
}

Test(mpi_normalize, compatibility_forms_fold_by_nfkc)
{
    /* Full-width letters (U+FF2A...), a ligature, a superscript digit, a circled digit. */
    cr_assert_str_eq(norm("\xEF\xBC\xAA\xEF\xBD\x8F\xEF\xBD\x88\xEF\xBD\x8E"), "john");
    cr_assert_str_eq(norm("\xEF\xAC\x81nn"), "finn");
    cr_assert_str_eq(norm("Louis XIV"), "louis xiv");
    cr_assert_str_eq(norm("Henry 8th"), "henry 8th");
    cr_assert_str_eq(norm("x\xC2\xB2"), "x2");
    cr_assert_str_eq(norm("\xE2\x91\xA0"), "1");
    /* Full-width apostrophe U+FF07 folds to ' and is then removed. */
    cr_assert_str_eq(norm("O\xEF\xBC\x87" "Brien"), "obrien");
}

Test(mpi_normalize, apostrophes_join_and_hyphens_separate)
{
    cr_assert_str_eq(norm("O'Brien"), "obrien");
    cr_assert_str_eq(norm("O\xE2\x80\x99" "Brien"), "obrien");  /* U+2019 */
    cr_assert_str_eq(norm("O\xCA\xBC" "brien"), "obrien");      /* U+02BC */
    cr_assert_str_eq(norm("O`Brien"), "obrien");
    cr_assert_str_eq(norm("D\xE2\x80\x98" "Angelo"), "dangelo"); /* U+2018 */
    cr_assert_str_eq(norm("Col\xC2\xB7lell"), "collell");       /* U+00B7 */
    cr_assert_str_eq(norm("Smith-Jones"), "smith jones");
    cr_assert_str_eq(norm("Smith\xE2\x80\x93Jones"), "smith jones"); /* en dash */
    cr_assert_str_eq(norm("Smith - Jones"), "smith jones");
    cr_assert_str_eq(norm("St. John"), "st john");
    cr_assert_str_eq(norm("Mary/Ann (Jr)"), "mary ann");
    cr_assert_str_eq(norm("Jos\xC3\xA9_Mar\xC3\xAD" "a@#$%"), "jose maria");
}

Test(mpi_normalize, honorifics_and_suffixes_dropped_as_whole_words)
{
    cr_assert_str_eq(norm("Dr. John Smith Jr."), "john smith");
    cr_assert_str_eq(norm("Mrs Mary-Ann O'Neil III"), "mary ann oneil");
    cr_assert_str_eq(norm("PROF. DR. Jane Doe, PhD"), "jane doe");
    cr_assert_str_eq(norm("Mr. Ms. Mx. Miss Sr II IV MD Pat"), "pat");
    /* Only whole words: these contain honorifics but are names. */
    cr_assert_str_eq(norm("Drake Mrsic Missy Ivory Srinivasan"),
        "drake mrsic missy ivory srinivasan");
    /* When every word is an honorific the name is kept, not emptied. */
    cr_assert_str_eq(norm("Miss"), "miss");
    cr_assert_str_eq(norm("Dr. Jr."), "dr jr");
}

Test(mpi_normalize, invisible_and_bidi_controls_removed)
{
    cr_assert_str_eq(norm("Jo\xE2\x80\x8Dhn"), "john");      /* U+200D zero-width joiner */
    cr_assert_str_eq(norm("Jo\xE2\x80\x8Chn"), "john");      /* U+200C zero-width non-joiner */
    cr_assert_str_eq(norm("Jo\xE2\x80\x8Bhn"), "john");      /* U+200B zero-width space */
    cr_assert_str_eq(norm("Jo\xC2\xADhn"), "john");          /* U+00AD soft hyphen */
    cr_assert_str_eq(norm("\xEF\xBB\xBFJohn"), "john");      /* U+FEFF byte order mark */
    cr_assert_str_eq(norm("Jo\xE2\x81\xA0hn"), "john");      /* U+2060 word joiner */
    cr_assert_str_eq(norm("Jo\xEF\xB8\x8Fhn"), "john");      /* U+FE0F variation selector */
    /* Right-to-left override U+202E and pop U+202C: removed, the letters keep their order. */
    cr_assert_str_eq(norm("\xE2\x80\xAEnhoj\xE2\x80\xAC"), "nhoj");
    /* Isolates U+2066..U+2069 and marks U+200E/U+200F. */
    cr_assert_str_eq(norm("\xE2\x81\xA7" "Ann\xE2\x81\xA9\xE2\x80\x8F"), "ann");
}

Test(mpi_normalize, non_latin_names_survive)
{
    /* Conjoining jamo compose into a syllable, also when an apostrophe separated them. */
    cr_assert_str_eq(norm("\xE1\x84\x8C\xE1\x85\xA7"), "\xEC\xA0\xB8");
    cr_assert_str_eq(norm("\xE1\x84\x8C'\xE1\x85\xA7"), "\xEC\xA0\xB8");
    /* Greek (final sigma folds to sigma), Cyrillic, CJK (NFKC leaves them), Arabic. */
    cr_assert_str_eq(norm("\xCE\x9D\xCE\x99\xCE\x9A\xCE\x9F\xCE\xA3"),
        "\xCE\xBD\xCE\xB9\xCE\xBA\xCE\xBF\xCF\x83");
    cr_assert_str_eq(norm("\xD0\x98\xD0\xB2\xD0\xB0\xD0\xBD"), "\xD0\xB8\xD0\xB2\xD0\xB0\xD0\xBD");
    cr_assert_str_eq(norm("\xE7\x8E\x8B \xE5\xB0\x8F\xE6\x98\x8E"),
        "\xE7\x8E\x8B \xE5\xB0\x8F\xE6\x98\x8E");
    cr_assert_str_eq(norm("\xD8\xB9\xD9\x84\xD9\x8A"), "\xD8\xB9\xD9\x84\xD9\x8A");
}

Test(mpi_normalize, result_is_a_fixed_point)
{
    static const char *const names[] = {
        "Dr. John Smith Jr.", "Zo\xC3\xAB", "O'Brien-Smith", "\xEF\xBC\xAA\xEF\xBD\x8F",
        "Stra\u00DFe", "Miss", "Henry 8th", "\xC4\xB0pek", "  a  b  ",
        "\xE1\x84\x8C'\xE1\x85\xA7", /* Hangul jamo around an apostrophe (found by fuzzing) */
    };
    for (size_t i = 0; i < HIE_ARRAY_LEN(names); i++) {
        char once[HIE_MPI_NORM_BUF_BYTES];
        strcpy(once, norm(names[i]));
        cr_assert_str_eq(norm(once), once, "not idempotent: case %zu", i);
    }
}

/* ---- names: hostile input ---------------------------------------------------------------- */

Test(mpi_normalize, invalid_utf8_rejected_never_repaired)
{
    REFUSED("\xC0\xAF", HIE_EINVAL, "invalid UTF-8");                 /* overlong '/' */
    REFUSED("\xC1\xBF", HIE_EINVAL, "invalid UTF-8");                 /* overlong */
    REFUSED("\xE0\x80\xAF", HIE_EINVAL, "invalid UTF-8");             /* 3-byte overlong */
    REFUSED("\xF0\x80\x80\xAF", HIE_EINVAL, "invalid UTF-8");         /* 4-byte overlong */
    REFUSED("ab\xED\xA0\x80", HIE_EINVAL, "invalid UTF-8");           /* surrogate U+D800 */
    REFUSED("\xED\xBF\xBF", HIE_EINVAL, "invalid UTF-8");             /* surrogate U+DFFF */
    REFUSED("Jos\xC3", HIE_EINVAL, "invalid UTF-8");                  /* truncated at end */
    REFUSED("Jo\xE2\x80hn", HIE_EINVAL, "invalid UTF-8");             /* truncated inside */
    REFUSED("\x80" "abc", HIE_EINVAL, "invalid UTF-8");               /* lone continuation */
    REFUSED("Smith\xFF", HIE_EINVAL, "invalid UTF-8");
    REFUSED("\xFE\xFF", HIE_EINVAL, "invalid UTF-8");
    REFUSED("\xF4\x90\x80\x80", HIE_EINVAL, "invalid UTF-8");         /* above U+10FFFF */
    REFUSED("\xF5\x80\x80\x80", HIE_EINVAL, "invalid UTF-8");
    REFUSED("\xF8\x88\x80\x80\x80", HIE_EINVAL, "invalid UTF-8");     /* old 5-byte form */
}

Test(mpi_normalize, embedded_nul_rejected)
{
    REFUSED("John\0Smith", HIE_EINVAL, "embedded NUL");
    REFUSED("\0", HIE_EINVAL, "embedded NUL");
}

Test(mpi_normalize, controls_private_use_and_unassigned_rejected)
{
    REFUSED("John\tSmith", HIE_EINVAL, "control character");
    REFUSED("John\nSmith", HIE_EINVAL, "control character");
    REFUSED("\x1B[31mJohn", HIE_EINVAL, "control character");
    REFUSED("John\x7F", HIE_EINVAL, "control character");
    REFUSED("John\xC2\x85", HIE_EINVAL, "control character");         /* U+0085 NEL */
    REFUSED("John\xE2\x80\xA8Smith", HIE_EINVAL, "control character"); /* U+2028 */
    REFUSED("John\xE2\x80\xA9", HIE_EINVAL, "control character");     /* U+2029 */
    REFUSED("\xEE\x80\x80", HIE_EINVAL, "private-use character");     /* U+E000 */
    REFUSED("a\xF3\xB0\x80\x80", HIE_EINVAL, "private-use character"); /* U+F0000 */
    REFUSED("\xEF\xBF\xBE", HIE_EINVAL, "unassigned code point");     /* U+FFFE noncharacter */
    REFUSED("\xEF\xB7\x90", HIE_EINVAL, "unassigned code point");     /* U+FDD0 noncharacter */
    REFUSED("\xCD\xB8", HIE_EINVAL, "unassigned code point");         /* U+0378 */
}

Test(mpi_normalize, oversized_names_hit_the_limit)
{
    static char big[10 * 1024];
    memset(big, 'a', sizeof(big));
    expect_refused(big, sizeof(big), HIE_ELIMIT, "longer than the maximum");
    expect_refused(big, HIE_MPI_NAME_BYTES_MAX + 1, HIE_ELIMIT, "longer than the maximum");

    char out[HIE_MPI_NORM_BUF_BYTES];
    cr_assert_eq(hie_mpi_name_normalize(hie_span(big, HIE_MPI_NAME_BYTES_MAX), out,
                     sizeof(out), NULL), 0);
    cr_assert_eq(strlen(out), HIE_MPI_NAME_BYTES_MAX);
}

Test(mpi_normalize, expanding_compatibility_characters_hit_the_limit)
{
    /* U+FDFA is 3 bytes and folds to 18 code points (about 33 bytes): 85 of them fit the
     * input limit but not the output limit. */
    char in[85 * 3];
    for (size_t i = 0; i < 85; i++) {
        memcpy(in + 3 * i, "\xEF\xB7\xBA", 3);
    }
    expect_refused(in, sizeof(in), HIE_ELIMIT, "expands past the maximum");
    /* One of them fits, as Arabic words. */
    cr_assert_gt(strlen(norm("\xEF\xB7\xBA")), 20);
}

Test(mpi_normalize, output_buffer_bounds_the_result)
{
    char out[5];
    hie_errinfo_t info = {0};
    cr_assert_eq(hie_mpi_name_normalize(hie_span("Anna", 4), out, sizeof(out), &info), 0);
    cr_assert_str_eq(out, "anna");
    memset(out, 'x', sizeof(out));
    cr_assert_eq(hie_mpi_name_normalize(hie_span("Annab", 5), out, sizeof(out), &info),
        HIE_ELIMIT);
    cr_assert_str_eq(out, "");
    cr_assert_eq(hie_mpi_name_normalize(hie_span("Annab", 5), out, 1, NULL), HIE_ELIMIT);
    cr_assert_eq(hie_mpi_name_normalize(hie_span(NULL, 0), out, 1, NULL), 0);
    cr_assert_str_eq(out, "");
}

Test(mpi_normalize, null_output_aborts, .signal = SIGABRT)
{
    int rc = hie_mpi_name_normalize(hie_span("a", 1), NULL, 10, NULL);
    (void)rc;
}

Test(mpi_normalize, null_span_with_length_aborts, .signal = SIGABRT)
{
    char out[8];
    int rc = hie_mpi_name_normalize(hie_span(NULL, 3), out, sizeof(out), NULL);
    (void)rc;
}

/* ---- nicknames --------------------------------------------------------------------------- */

Test(mpi_normalize, nickname_table_is_sorted_unique_and_flat)
{
    cr_assert_geq(hie_mpi__nicknames_count, 150);
    for (size_t i = 0; i < hie_mpi__nicknames_count; i++) {
        const struct hie_mpi__nickname *e = &hie_mpi__nicknames[i];
        if (i > 0) {
            cr_assert_lt(strcmp(hie_mpi__nicknames[i - 1].nickname, e->nickname), 0,
                "table not sorted at %s", e->nickname);
        }
        /* Entries are already normalized, and no canonical name is itself a nickname. */
        cr_assert_str_eq(norm(e->nickname), e->nickname);
        cr_assert_str_eq(norm(e->canonical), e->canonical);
        cr_assert_null(hie_mpi__nickname_find(e->canonical, strlen(e->canonical)),
            "%s is both a canonical name and a nickname", e->canonical);
        cr_assert_str_eq(hie_mpi__nickname_find(e->nickname, strlen(e->nickname)),
            e->canonical);
    }
}

static const char *
canon(const char *s)
{
    static char out[HIE_MPI_NORM_BUF_BYTES];
    cr_assert_eq(hie_mpi_given_canonical(s, out, sizeof(out)), 0);
    return out;
}

Test(mpi_normalize, nicknames_map_to_their_names)
{
    cr_assert_str_eq(canon("bill"), "william");
    cr_assert_str_eq(canon("bob"), "robert");
    cr_assert_str_eq(canon("liz"), "elizabeth");
    cr_assert_str_eq(canon("peggy"), "margaret");
    cr_assert_str_eq(canon("jim"), "james");
    cr_assert_str_eq(canon("zak"), "zachary");  /* last entry */
    cr_assert_str_eq(canon("abbie"), "abigail"); /* first entry */
    cr_assert_str_eq(canon(norm("Bill")), "william");
    /* Each word on its own; unknown words and canonical names pass unchanged. */
    cr_assert_str_eq(canon("bob ted"), "robert ted");
    cr_assert_str_eq(canon("mary liz"), "mary elizabeth");
    cr_assert_str_eq(canon("william"), "william");
    cr_assert_str_eq(canon("billy bob"), "william robert");
    cr_assert_str_eq(canon(""), "");
    /* Ambiguous nicknames are deliberately absent; near-misses are not matched. */
    cr_assert_str_eq(canon("alex"), "alex");
    cr_assert_str_eq(canon("chris"), "chris");
    cr_assert_str_eq(canon("bil"), "bil");
    cr_assert_str_eq(canon("bills"), "bills");
    cr_assert_str_eq(canon("zzz"), "zzz");
    cr_assert_str_eq(canon("a"), "a");
}

Test(mpi_normalize, canonical_result_bounded_by_the_buffer)
{
    char out[8];
    cr_assert_eq(hie_mpi_given_canonical("bill", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "william");
    memset(out, 'x', sizeof(out));
    cr_assert_eq(hie_mpi_given_canonical("bill bob", out, sizeof(out)), HIE_ELIMIT);
    cr_assert_str_eq(out, "");
    cr_assert_eq(hie_mpi_given_canonical("bill", out, 7), HIE_ELIMIT);

    /* 50 "bill"s (249 bytes) are a valid input and expand past the output limit. */
    char many[50 * 5];
    for (size_t i = 0; i < 50; i++) {
        memcpy(many + 5 * i, "bill ", 5);
    }
    many[sizeof(many) - 1] = '\0';
    char big[HIE_MPI_NORM_BUF_BYTES];
    cr_assert_eq(hie_mpi_given_canonical(many, big, sizeof(big)), HIE_ELIMIT);
}

Test(mpi_normalize, canonical_overlapping_buffers_abort, .signal = SIGABRT)
{
    char buf[32] = "bill";
    int rc = hie_mpi_given_canonical(buf, buf, sizeof(buf));
    (void)rc;
}

/* ---- birth dates ------------------------------------------------------------------------- */

static int
date(const char *s, uint32_t *out)
{
    return hie_mpi_date_parse(hie_span(s, strlen(s)), out);
}

Test(mpi_normalize, dates_parse_in_both_forms)
{
    uint32_t d = 1;
    cr_assert_eq(date("19800317", &d), 0);
    cr_assert_eq(d, 19800317u);
    cr_assert_eq(date("1980-03-17", &d), 0);
    cr_assert_eq(d, 19800317u);
    cr_assert_eq(date("18500101", &d), 0);
    cr_assert_eq(date("2100-12-31", &d), 0);
    cr_assert_eq(d, 21001231u);
}

Test(mpi_normalize, dates_validate_months_days_and_leap_years)
{
    uint32_t d = 0;
    cr_assert_eq(date("19800229", &d), 0);  /* divisible by 4 */
    cr_assert_eq(date("20000229", &d), 0);  /* divisible by 400 */
    cr_assert_eq(date("19000229", &d), HIE_EINVAL); /* by 100, not by 400 */
    cr_assert_eq(date("2023-02-29", &d), HIE_EINVAL);
    cr_assert_eq(date("20230230", &d), HIE_EINVAL);
    cr_assert_eq(date("20230431", &d), HIE_EINVAL);
    cr_assert_eq(date("20230131", &d), 0);
    cr_assert_eq(date("20231231", &d), 0);
    cr_assert_eq(date("20231301", &d), HIE_EINVAL);
    cr_assert_eq(date("20230001", &d), HIE_EINVAL);
    cr_assert_eq(date("20230100", &d), HIE_EINVAL);
    cr_assert_eq(date("20230132", &d), HIE_EINVAL);
    cr_assert_eq(date("18491231", &d), HIE_EINVAL);
    cr_assert_eq(date("21010101", &d), HIE_EINVAL);
    cr_assert_eq(date("00000000", &d), HIE_EINVAL);
    cr_assert_eq(d, 0, "output must be 0 after a failure");
}

Test(mpi_normalize, dates_refuse_other_shapes)
{
    static const char *const bad[] = {
        "", "1980", "1980031", "198003170", "1980-3-17", "1980/03/17", "1980-03/17",
        " 19800317", "19800317 ", "1980-03-1x", "+9800317", "-1980317", "198O0317",
        "17/03/1980", "1980-0317", "19800317\n", "１９８００３１７",
    };
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        uint32_t d = 7;
        cr_assert_eq(date(bad[i], &d), HIE_EINVAL, "accepted case %zu", i);
        cr_assert_eq(d, 0);
    }
    uint32_t d = 7;
    cr_assert_eq(hie_mpi_date_parse(hie_span("1980\0" "317", 8), &d), HIE_EINVAL);
    cr_assert_eq(hie_mpi_date_parse(hie_span(NULL, 0), &d), HIE_EINVAL);
}

Test(mpi_normalize, date_null_output_aborts, .signal = SIGABRT)
{
    int rc = hie_mpi_date_parse(hie_span("19800101", 8), NULL);
    (void)rc;
}

/* ---- phone numbers and postcodes --------------------------------------------------------- */

static int
phone(const char *s, char *out)
{
    return hie_mpi_phone_normalize(hie_span(s, strlen(s)), out, HIE_MPI_PHONE_BUF_BYTES);
}

Test(mpi_normalize, phones_reduce_to_digits)
{
    char out[HIE_MPI_PHONE_BUF_BYTES];
    cr_assert_eq(phone("+1 (555) 010-4477", out), 0);
    cr_assert_str_eq(out, "15550104477");
    cr_assert_eq(phone("02 9876.5432", out), 0);
    cr_assert_str_eq(out, "0298765432");
    cr_assert_eq(phone("555/0123", out), 0);
    cr_assert_str_eq(out, "5550123");
    cr_assert_eq(phone("123456", out), 0);                 /* the shortest accepted */
    cr_assert_eq(phone("123456789012345", out), 0);        /* the longest (E.164) */
    cr_assert_str_eq(out, "123456789012345");
}

Test(mpi_normalize, phones_refuse_bad_input)
{
    char out[HIE_MPI_PHONE_BUF_BYTES];
    static const char *const bad[] = {
        "", "12345", "1234567890123456", "555-0123 ext 4", "555-CALL-NOW", "555_0123",
        "555\uFF110123", "+-() /.",
    };
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        memset(out, 'x', sizeof(out));
        cr_assert_eq(phone(bad[i], out), HIE_EINVAL, "accepted case %zu", i);
        cr_assert_str_eq(out, "");
    }
    cr_assert_eq(hie_mpi_phone_normalize(hie_span("555\0" "0123", 8), out, sizeof(out)),
        HIE_EINVAL);
    char big[HIE_MPI_PHONE_BYTES_MAX + 1];
    memset(big, ' ', sizeof(big));
    memcpy(big, "5550123", 7);
    cr_assert_eq(hie_mpi_phone_normalize(hie_span(big, sizeof(big)), out, sizeof(out)),
        HIE_ELIMIT);
    cr_assert_eq(hie_mpi_phone_normalize(hie_span(big, sizeof(big) - 1), out, sizeof(out)), 0);
}

Test(mpi_normalize, phone_small_buffer_aborts, .signal = SIGABRT)
{
    char out[HIE_MPI_PHONE_BUF_BYTES - 1];
    int rc = hie_mpi_phone_normalize(hie_span("5550123", 7), out, sizeof(out));
    (void)rc;
}

static int
postcode(const char *s, char *out)
{
    return hie_mpi_postcode_normalize(hie_span(s, strlen(s)), out, HIE_MPI_POSTCODE_BUF_BYTES);
}

Test(mpi_normalize, postcodes_uppercase_without_separators)
{
    char out[HIE_MPI_POSTCODE_BUF_BYTES];
    cr_assert_eq(postcode("sw1a 1aa", out), 0);
    cr_assert_str_eq(out, "SW1A1AA");
    cr_assert_eq(postcode("12345-6789", out), 0);
    cr_assert_str_eq(out, "123456789");
    cr_assert_eq(postcode(" 2600 ", out), 0);
    cr_assert_str_eq(out, "2600");
    cr_assert_eq(postcode("k1a 0b1", out), 0);
    cr_assert_str_eq(out, "K1A0B1");
    cr_assert_eq(postcode("1234567890", out), 0);
}

Test(mpi_normalize, postcodes_refuse_bad_input)
{
    char out[HIE_MPI_POSTCODE_BUF_BYTES];
    static const char *const bad[] = {
        "", "   ", "-", "AB_12", "12345678901", "\u00C51", "2600.", "sw1a\t1aa",
    };
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        memset(out, 'x', sizeof(out));
        cr_assert_eq(postcode(bad[i], out), HIE_EINVAL, "accepted case %zu", i);
        cr_assert_str_eq(out, "");
    }
    char big[HIE_MPI_POSTCODE_BYTES_MAX + 1];
    memset(big, ' ', sizeof(big));
    big[0] = '1';
    cr_assert_eq(hie_mpi_postcode_normalize(hie_span(big, sizeof(big)), out, sizeof(out)),
        HIE_ELIMIT);
}
