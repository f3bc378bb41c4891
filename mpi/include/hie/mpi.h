/*
 * hie/mpi.h - the master patient index: demographic normalization and field comparators.
 *
 * Purpose: turn the demographics a member sends (names, birth dates, phone numbers, postcodes)
 * into canonical comparison forms, and compare two such forms into the ordered comparison
 * levels of a Fellegi-Sunter model (design.md "Master patient index", issue 3 points 3 and 4).
 * Matching, blocking and storage build on these functions and arrive later.
 *
 * Threads: every function here is reentrant, keeps no state between calls, never blocks and
 * may be called from any thread. Nothing here allocates: work space is bounded by the limits
 * below and lives on the caller's stack (at most about 24 KiB, in hie_mpi_name_normalize()).
 *
 * Ownership: inputs are borrowed for the duration of the call; outputs go to buffers the
 * caller owns. No pointer is kept after a call returns.
 *
 * Errors: this module never logs or exits (style.md 3.4). Normalizers take untrusted input and
 * return 0, HIE_EINVAL or HIE_ELIMIT, with a static reason in a hie_errinfo_t where offered;
 * on failure their outputs are left zeroed ("" or 0). Comparators take normalized values our
 * own code produced: a NULL pointer, invalid UTF-8, a string longer than
 * HIE_MPI_COMPARE_CHARS_MAX code points or an invalid date is a programmer error and trips
 * HIE_ASSERT. Values read back from storage must be validated before they reach a comparator.
 *
 * Limits: names are at most HIE_MPI_NAME_BYTES_MAX bytes in and HIE_MPI_NORM_BYTES_MAX bytes
 * out; comparators accept at most HIE_MPI_COMPARE_CHARS_MAX code points per string; birth years
 * lie in HIE_MPI_DATE_YEAR_MIN..HIE_MPI_DATE_YEAR_MAX.
 *
 * PHI: every value passing through here is protected health information. Nothing is logged,
 * and no error reason ever contains input bytes.
 */
#ifndef HIE_MPI_H
#define HIE_MPI_H

#include "hie/base.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits ------------------------------------------------------------------------------ */
/* Largest raw name (one given or family name field, UTF-8 bytes) accepted for normalization.
 * Civil registries rarely record names longer than about 100 Latin letters; 256 bytes leaves
 * room for such a name in a non-Latin script (up to 3 bytes per character) while bounding the
 * stack work space of normalization and the quadratic comparators. Longer input is refused
 * with HIE_ELIMIT (the member gets BAD_REQUEST naming the field), never truncated. */
#define HIE_MPI_NAME_BYTES_MAX 256u
/* Largest normalized value (bytes, without the terminating NUL). Normalization usually shrinks
 * a name (marks, punctuation and honorifics go; full-width letters become ASCII), but a few
 * compatibility characters expand (U+FDFA becomes 18 code points): a result longer than this
 * is refused with HIE_ELIMIT rather than cut. */
#define HIE_MPI_NORM_BYTES_MAX 256u
/* Buffer size that always holds a normalized value and its NUL. */
#define HIE_MPI_NORM_BUF_BYTES (HIE_MPI_NORM_BYTES_MAX + 1u)
/* Longest string, in code points, a comparator accepts. Every code point takes at least one
 * byte, so any normalized value fits; the comparators decode into stack arrays of this size
 * (Damerau-Levenshtein keeps three rows, Jaro-Winkler two flag arrays). */
#define HIE_MPI_COMPARE_CHARS_MAX 256u
_Static_assert(HIE_MPI_NORM_BYTES_MAX <= HIE_MPI_COMPARE_CHARS_MAX,
    "every normalized value must be comparable");
_Static_assert(HIE_MPI_NAME_BYTES_MAX <= HIE_MPI_NORM_BYTES_MAX,
    "a plain ASCII name at the input limit must still fit once normalized");

/* Birth years accepted: no living patient was born before 1850; years past 2100 are typos. */
#define HIE_MPI_DATE_YEAR_MIN 1850u
#define HIE_MPI_DATE_YEAR_MAX 2100u

/* Phone numbers: raw bytes accepted, and the digit count of the result. E.164 allows at most
 * 15 digits with the country code; fewer than 6 digits is no usable number (short local
 * extensions included). The raw limit leaves room for separators and a leading '+'. */
#define HIE_MPI_PHONE_BYTES_MAX 64u
#define HIE_MPI_PHONE_DIGITS_MIN 6u
#define HIE_MPI_PHONE_DIGITS_MAX 15u
#define HIE_MPI_PHONE_BUF_BYTES (HIE_MPI_PHONE_DIGITS_MAX + 1u)

/* Postcodes: raw bytes accepted, and letters plus digits kept. The longest postal codes in use
 * (US ZIP+4, Brazilian CEP, Iranian codes) have 9 or 10 alphanumerics once separators go. */
#define HIE_MPI_POSTCODE_BYTES_MAX 32u
#define HIE_MPI_POSTCODE_CHARS_MAX 10u
#define HIE_MPI_POSTCODE_BUF_BYTES (HIE_MPI_POSTCODE_CHARS_MAX + 1u)

/* A NYSIIS code: the original algorithm's 6 characters and a NUL. */
#define HIE_MPI_NYSIIS_CODE_CHARS 6u
#define HIE_MPI_NYSIIS_BUF_BYTES (HIE_MPI_NYSIIS_CODE_CHARS + 1u)

/* Jaro-Winkler bands of hie_mpi_string_compare(): >= 0.94 is nearly always one typo in a
 * name ("MARTHA"/"MARHTA" 0.961), 0.88..0.94 a looser resemblance ("DWAYNE"/"DUANE" 0.84 is
 * below it). The m/u probabilities of each band are trained by EM, so the cut points only
 * need to separate typos from resemblance, not to be tuned per data set. */
#define HIE_MPI_JW_HIGH 0.94
#define HIE_MPI_JW_MID 0.88
/* The loosest band, Splink's lowest name level: two typos in a short name ("GEGRGOE"/"GEORGE"
 * 0.85), or a shared stem. Among random pairs it is common, so EM gives it little weight
 * where names are clean, and a positive one where they are often mistyped. */
#define HIE_MPI_JW_LOW 0.70

/* ---- normalization ----------------------------------------------------------------------- */
/* Normalizes one name field (given or family) into its comparison form.
 *
 * Steps, in order:
 *  1. Refuse: more than HIE_MPI_NAME_BYTES_MAX bytes (HIE_ELIMIT); invalid UTF-8 of any kind:
 *     overlong forms, surrogates, truncated sequences, bytes 0xC0/0xC1/0xF5..0xFF, code points
 *     above U+10FFFF (HIE_EINVAL, never repaired); NUL and every other control character,
 *     including U+2028/U+2029 line and paragraph separators (HIE_EINVAL); private-use and
 *     unassigned code points and noncharacters (HIE_EINVAL, so the result cannot change when
 *     Unicode assigns them later; index keys are hashes of these results).
 *  2. NFKC with Unicode case folding (full-width and other compatibility forms become their
 *     plain letters: "Ｊｏｈｎ" -> "john", "ß" -> "ss", the "ﬁ" ligature -> "fi").
 *  3. Strip diacritics: decompose, drop every combining mark (categories Mn, Mc, Me), then
 *     compose ("Zoë" -> "zoe", "Ångström" -> "angstrom"). Letters that are not a base letter
 *     plus a mark stay as they are ("ø", "ł", "ð").
 *  4. Remove default-ignorable code points: zero-width space/joiner/non-joiner, soft hyphen,
 *     bidirectional embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069),
 *     variation selectors, the BOM. They are invisible, so two names a person reads as equal
 *     must compare equal; an RLO cannot then make a name display as another.
 *  5. Apostrophes (U+0027, U+0060, U+2018, U+2019, U+02BC, U+05F3) and the Catalan middle dot
 *     (U+00B7) are removed, joining the letters around them: "O'Brien" -> "obrien",
 *     "D’Angelo" -> "dangelo", "Col·lell" -> "collell".
 *  6. Every other character that is not a letter or a digit (punctuation, hyphens, symbols,
 *     spaces of any width) becomes one space: "Smith-Jones" -> "smith jones",
 *     "St. John" -> "st john". Runs of spaces collapse to one; leading and trailing spaces go.
 *     Digits are kept.
 *  7. Honorifics and suffixes are dropped as whole words: dr mr mrs ms mx miss prof jr sr ii
 *     iii iv md phd ("Dr. John Smith Jr." -> "john smith"). When every word is one of them
 *     the name is kept as it is, so a person actually named "Miss" keeps a name.
 * The result is lowercase NFC UTF-8 and may be empty (input "", "  " or "--"): callers treat
 * an empty result as a missing value. Normalizing a result again returns it unchanged.
 *
 * NEEDSWORK: step 3 also drops spacing vowel signs of Indic scripts and the niqqud/harakat of
 * Hebrew and Arabic; names in those scripts therefore compare more loosely than Latin ones.
 * The comparison form is only a matching key: the value as sent is stored separately.
 *
 * [in]  in: the raw name, borrowed for the call, not NUL-terminated.
 * [out] out: receives the NUL-terminated result; set to "" on entry and written only on
 *       success. out_bytes >= 1 (HIE_MPI_NORM_BUF_BYTES always suffices).
 * [out] info: optional (NULL allowed); on failure gets a static reason and field "name".
 * Returns 0; HIE_EINVAL (invalid UTF-8, control, private-use or unassigned code point); or
 *         HIE_ELIMIT (input over HIE_MPI_NAME_BYTES_MAX bytes, or a result longer than
 *         HIE_MPI_NORM_BYTES_MAX bytes or than out_bytes - 1).
 * Any thread; never blocks; reentrant. */
HIE_MUST_CHECK int hie_mpi_name_normalize(hie_span_t in, char *out, size_t out_bytes,
    hie_errinfo_t *info);

/* Replaces each word of a normalized given name that is a common English nickname by the name
 * it stands for, from a built-in table of about 150 pairs: "bill" -> "william", "peggy" ->
 * "margaret", "bob ted" -> "robert ted". Words not in the table are copied unchanged.
 * Nicknames used for two different names (al, alex, chris, sam, pat, jo, terry, ...) are
 * deliberately absent: mapping them to one would make wrong links likelier than right ones.
 *
 * [in]  norm: NUL-terminated output of hie_mpi_name_normalize(), borrowed for the call; at
 *       most HIE_MPI_NORM_BYTES_MAX bytes (asserted).
 * [out] out: receives the NUL-terminated result; "" on entry, written only on success; must
 *       not overlap norm. out_bytes >= 1 (HIE_MPI_NORM_BUF_BYTES always suffices).
 * Returns 0, or HIE_ELIMIT when the result is longer than HIE_MPI_NORM_BYTES_MAX bytes or
 *         than out_bytes - 1.
 * Any thread; never blocks; reentrant. */
HIE_MUST_CHECK int hie_mpi_given_canonical(const char *norm, char *out, size_t out_bytes);

/* Parses a birth date written YYYYMMDD or YYYY-MM-DD (ASCII digits only, nothing before or
 * after) and validates it: month 1..12, day within the month (29 February only in leap
 * years: divisible by 4, and not by 100 unless by 400), year HIE_MPI_DATE_YEAR_MIN..MAX.
 *
 * [in]  in: the raw date, borrowed for the call.
 * [out] yyyymmdd: 0 on entry; on success year * 10000 + month * 100 + day.
 * Returns 0, or HIE_EINVAL for any other shape or an impossible date.
 * Any thread; never blocks; reentrant. */
HIE_MUST_CHECK int hie_mpi_date_parse(hie_span_t in, uint32_t *yyyymmdd);

/* Reduces a phone number to its digits: "+1 (555) 010-4477" -> "15550104477". Separators
 * ' ', '-', '.', '(', ')', '/' and '+' are dropped; any other byte (a letter, as in "ext",
 * or a non-ASCII byte) makes the number invalid rather than silently cut.
 *
 * [in]  in: the raw number, borrowed for the call.
 * [out] out: NUL-terminated digits; "" on entry, written only on success;
 *       out_bytes >= HIE_MPI_PHONE_BUF_BYTES (asserted).
 * Returns 0; HIE_ELIMIT (more than HIE_MPI_PHONE_BYTES_MAX bytes); or HIE_EINVAL (a byte that
 *         is not a digit or a separator, or fewer than HIE_MPI_PHONE_DIGITS_MIN or more than
 *         HIE_MPI_PHONE_DIGITS_MAX digits).
 * Any thread; never blocks; reentrant. */
HIE_MUST_CHECK int hie_mpi_phone_normalize(hie_span_t in, char *out, size_t out_bytes);

/* Reduces a postcode to uppercase ASCII letters and digits: "sw1a 1aa" -> "SW1A1AA",
 * "12345-6789" -> "123456789". Spaces and '-' are dropped; any other byte is invalid.
 *
 * [in]  in: the raw postcode, borrowed for the call.
 * [out] out: NUL-terminated result; "" on entry, written only on success;
 *       out_bytes >= HIE_MPI_POSTCODE_BUF_BYTES (asserted).
 * Returns 0; HIE_ELIMIT (more than HIE_MPI_POSTCODE_BYTES_MAX bytes); or HIE_EINVAL (another
 *         byte, no letter or digit at all, or more than HIE_MPI_POSTCODE_CHARS_MAX of them).
 * Any thread; never blocks; reentrant. */
HIE_MUST_CHECK int hie_mpi_postcode_normalize(hie_span_t in, char *out, size_t out_bytes);

/* ---- comparators ------------------------------------------------------------------------- */
/* All comparators work on code points of normalized, NUL-terminated UTF-8 strings, borrowed
 * for the call. Preconditions (asserted, see the module comment): non-NULL, valid UTF-8, at
 * most HIE_MPI_COMPARE_CHARS_MAX code points. Any thread; never block; reentrant. */

/* Jaro-Winkler similarity in [0, 1] (Winkler 1990): Jaro similarity with matching window
 * max(|a|, |b|) / 2 - 1 and half the out-of-order matches rounded down (as in Winkler's
 * strcmp95), raised by 0.1 per common leading code point (at most 4) times (1 - jaro) when
 * the Jaro similarity is above the boost threshold 0.7. No length condition on the boost and
 * no long-string adjustment. Two empty strings give 1.0; one empty string gives 0.0.
 * Symmetric (the greedy matching runs with the arguments in a fixed order). */
double hie_mpi_jaro_winkler(const char *a, const char *b);

/* Optimal string alignment distance (Damerau-Levenshtein restricted to edits of substrings
 * not edited twice): insertions, deletions, substitutions and transpositions of two adjacent
 * code points each cost 1, so "ca" -> "abc" is 3 (unrestricted Damerau-Levenshtein gives 2).
 * Returns the distance when it is at most cap, else cap + 1, stopping as soon as the distance
 * is known to exceed cap (cap = 1 costs little more than a length check for far strings).
 * Any cap is valid, UINT_MAX included (no overflow: the distance never exceeds the longer
 * length, so cap + 1 is returned only when cap is smaller than that). */
unsigned hie_mpi_damerau_levenshtein(const char *a, const char *b, unsigned cap);

/* The original NYSIIS code (Taft 1970, New York State Identification and Intelligence
 * System) of name, truncated to HIE_MPI_NYSIIS_CODE_CHARS characters, uppercase ASCII. Only
 * the ASCII letters of name are used: digits, spaces and non-ASCII letters are ignored, so a
 * name without ASCII letters gives "". Follows the rules and rule order of Apache Commons
 * Codec's Nysiis in its strict (original, 6-character) mode.
 * [out] out: receives the code; out_bytes >= HIE_MPI_NYSIIS_BUF_BYTES (asserted). */
void hie_mpi_nysiis(const char *name, char *out, size_t out_bytes);

/* Comparison levels of two birth dates, in the order they are checked. The first that holds
 * is the result, so the levels are disjoint (Fellegi-Sunter needs one level per pair). The
 * distance levels are Splink's date comparison (within a month, a year, ten years): a wrong
 * day, a wrong month or a year off by ten (a mistyped decade) each keep some evidence, and EM
 * learns how much from the data (little where dates are rarely wrong by more than a digit). */
#define HIE_MPI_DATE_MONTH_DAYS 31u
#define HIE_MPI_DATE_YEAR_DAYS 366u
#define HIE_MPI_DATE_DECADE_DAYS 3653u
enum hie_mpi_date_level {
    HIE_MPI_DATE_MISSING = 0,          /* either date is 0 (unknown): a neutral level */
    HIE_MPI_DATE_EXACT,                /* the same date */
    HIE_MPI_DATE_DAY_MONTH_TRANSPOSED, /* same year, a's day is b's month and the reverse */
    HIE_MPI_DATE_ONE_DIGIT_OFF,        /* exactly one of the 8 digits of YYYYMMDD differs */
    HIE_MPI_DATE_WITHIN_MONTH,         /* at most HIE_MPI_DATE_MONTH_DAYS days apart */
    HIE_MPI_DATE_WITHIN_YEAR,          /* at most HIE_MPI_DATE_YEAR_DAYS days apart */
    HIE_MPI_DATE_WITHIN_DECADE,        /* at most HIE_MPI_DATE_DECADE_DAYS days apart */
    HIE_MPI_DATE_DIFFERENT,            /* none of the above */
    HIE_MPI_DATE_LEVEL_COUNT
};

/* Compares two dates from hie_mpi_date_parse(), or 0 for a missing one (anything else trips
 * HIE_ASSERT). Symmetric. */
enum hie_mpi_date_level hie_mpi_date_compare(uint32_t a, uint32_t b);

/* Comparison levels of two normalized strings, in the order they are checked: the first that
 * holds is the result. The order runs from the strongest evidence of a match to the weakest,
 * as the ordered levels of a Fellegi-Sunter comparison require (each pair falls in exactly
 * one level, and a pair that meets several criteria counts as the strongest).
 * PHONETIC comes before DL1 and JW_MID because an equal sound-alike code over whole names is
 * rarer among non-matches than one edit or a middling Jaro-Winkler score. */
enum hie_mpi_str_level {
    HIE_MPI_STR_MISSING = 0, /* either string is empty: a neutral level */
    HIE_MPI_STR_EXACT,       /* byte-equal */
    HIE_MPI_STR_JW_HIGH,     /* Jaro-Winkler >= HIE_MPI_JW_HIGH */
    HIE_MPI_STR_PHONETIC,    /* equal, non-empty NYSIIS codes */
    HIE_MPI_STR_DL1,         /* optimal string alignment distance 1 */
    HIE_MPI_STR_JW_MID,      /* Jaro-Winkler >= HIE_MPI_JW_MID */
    HIE_MPI_STR_JW_LOW,      /* Jaro-Winkler >= HIE_MPI_JW_LOW */
    HIE_MPI_STR_DIFFERENT,   /* none of the above */
    HIE_MPI_STR_LEVEL_COUNT
};

/* Compares two normalized strings into the first level above that holds. Symmetric. */
enum hie_mpi_str_level hie_mpi_string_compare(const char *a, const char *b);

#ifdef __cplusplus
}
#endif
/* The Fellegi-Sunter model: comparison vectors, weights, EM, blocking (hie/mpi_match.h). */
#include "hie/mpi_match.h"

#endif
