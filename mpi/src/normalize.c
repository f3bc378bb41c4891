/*
 * normalize.c - demographic normalization: names (with utf8proc), birth dates, phone numbers
 * and postcodes, into the comparison forms documented in hie/mpi.h.
 *
 * Every input here is untrusted: it comes from a member's envelope or an import file. It is
 * checked from the outside in (length, then UTF-8 validity, then character classes) and
 * refused with an error code and a static reason, never repaired or truncated. Outputs are
 * written only on success. Nothing allocates: utf8proc works into a bounded stack array
 * (utf8proc_map() would call malloc and bypass the hie_mem hooks), and every loop is bounded
 * by an input that was length-checked first.
 *
 * Callers: the identity feed, PDQ queries and bulk import (later); the unit tests.
 */
#include "mpi_int.h"

#include <string.h>
#include <utf8proc.h>

/* NFKC (COMPAT + COMPOSE) with case folding, combining marks stripped and default ignorables
 * dropped. STABLE keeps composition within Unicode's stability policy; REJECTNA refuses
 * unassigned code points (name_check() already did: this is the second guard). */
#define NAME_UTF8PROC_OPTIONS                                                                  \
    (UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK |             \
        UTF8PROC_IGNORE | UTF8PROC_STABLE | UTF8PROC_REJECTNA)

/* Most code points one code point becomes under NFKD plus case folding: U+FDFA (an Arabic
 * ligature) gives 18. The array below therefore holds any name within the input limit; should
 * a future Unicode exceed it, utf8proc reports the size it needed without writing past the
 * array, and the name is refused with HIE_ELIMIT. 4.5 K code points is 18 KiB of stack. */
#define NAME_DECOMPOSE_FACTOR 18u
#define NAME_CPS_MAX (HIE_MPI_NAME_BYTES_MAX * NAME_DECOMPOSE_FACTOR)

/* The folded text before honorifics are dropped. Folding shrinks or keeps the size of nearly
 * every character; only a few compatibility ligatures (U+FDFA and its kin) grow a name past
 * four times the output limit, and such a name is refused with HIE_ELIMIT. */
#define NAME_TEXT_BYTES (4u * HIE_MPI_NORM_BYTES_MAX)

#define NAME_FIELD "name"

/* Refuses code points that have no place in a name: controls (NUL included) and line or
 * paragraph separators, private-use characters (no agreed meaning), and unassigned code
 * points and noncharacters (their normalization may change when Unicode assigns them). */
static int
name_check_code_point(utf8proc_int32_t cp, hie_errinfo_t *info)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
        return hie_errinfo_set(info, HIE_EINVAL, NAME_FIELD, "control character");
    case UTF8PROC_CATEGORY_CO:
        return hie_errinfo_set(info, HIE_EINVAL, NAME_FIELD, "private-use character");
    case UTF8PROC_CATEGORY_CN:
        return hie_errinfo_set(info, HIE_EINVAL, NAME_FIELD, "unassigned code point");
    default:
        return 0;
    }
}

/* Step 1 of hie_mpi_name_normalize(): the length limit, then UTF-8 validity (utf8proc refuses
 * overlong forms, surrogates, truncated sequences and code points past U+10FFFF), then the
 * character classes. NUL gets its own reason: it is the classic truncation attack. */
static int
name_check(hie_span_t in, hie_errinfo_t *info)
{
    if (in.len > HIE_MPI_NAME_BYTES_MAX) {
        return hie_errinfo_set(info, HIE_ELIMIT, NAME_FIELD, "longer than the maximum");
    }
    if (in.len > 0 && memchr(in.ptr, 0, in.len) != NULL) {
        return hie_errinfo_set(info, HIE_EINVAL, NAME_FIELD, "embedded NUL");
    }
    size_t off = 0;
    while (off < in.len) { /* bounded: each turn consumes at least one byte */
        utf8proc_int32_t cp = -1;
        utf8proc_ssize_t n =
            utf8proc_iterate(in.ptr + off, (utf8proc_ssize_t)(in.len - off), &cp);
        if (n <= 0) {
            return hie_errinfo_set(info, HIE_EINVAL, NAME_FIELD, "invalid UTF-8");
        }
        int rc = name_check_code_point(cp, info);
        if (rc != 0) {
            return rc;
        }
        off += (size_t)n;
    }
    HIE_ASSERT(off == in.len);
    return 0;
}

/* Step 5: apostrophes (and what is typed for one) vanish, joining the letters around them. */
static bool
name_is_apostrophe(utf8proc_int32_t cp)
{
    switch (cp) {
    case 0x0027: /* APOSTROPHE (and U+FF07, which NFKC folds into it) */
    case 0x0060: /* GRAVE ACCENT, typed for an apostrophe */
    case 0x00B7: /* MIDDLE DOT: Catalan "l·l" */
    case 0x02BC: /* MODIFIER LETTER APOSTROPHE */
    case 0x05F3: /* HEBREW PUNCTUATION GERESH */
    case 0x2018: /* LEFT SINGLE QUOTATION MARK */
    case 0x2019: /* RIGHT SINGLE QUOTATION MARK: the typographic apostrophe */
    case 0x2032: /* PRIME, typed for an apostrophe */
        return true;
    default:
        return false;
    }
}

/* Removes apostrophes from cps in place; returns the new count. */
static size_t
name_drop_apostrophes(utf8proc_int32_t *cps, size_t count)
{
    size_t kept = 0;
    for (size_t i = 0; i < count; i++) {
        if (!name_is_apostrophe(cps[i])) {
            cps[kept++] = cps[i];
        }
    }
    return kept;
}

/* Steps 2 to 5: NFKC with case folding, marks stripped, default ignorables and apostrophes
 * removed. Apostrophes go between decomposition and composition, like the marks and the
 * ignorables, so that what they separated composes (Hangul jamo) exactly as it will when the
 * result is normalized again: normalization is idempotent.
 * [out] *cps_count: code points written to cps. */
static int
name_fold(hie_span_t in, utf8proc_int32_t *cps, size_t cps_max, size_t *cps_count,
    hie_errinfo_t *info)
{
    HIE_ASSERT(cps_max <= NAME_CPS_MAX); /* so the casts to utf8proc_ssize_t are exact */
    *cps_count = 0;
    if (in.len == 0) {
        return 0;
    }
    utf8proc_ssize_t n = utf8proc_decompose(in.ptr, (utf8proc_ssize_t)in.len, cps,
        (utf8proc_ssize_t)cps_max, NAME_UTF8PROC_OPTIONS);
    if (n < 0) {
        return hie_errinfo_set(info, HIE_EINVAL, NAME_FIELD, "invalid UTF-8");
    }
    if ((size_t)n > cps_max) {
        return hie_errinfo_set(info, HIE_ELIMIT, NAME_FIELD, "expands past the maximum");
    }
    n = (utf8proc_ssize_t)name_drop_apostrophes(cps, (size_t)n);
    n = utf8proc_normalize_utf32(cps, n, NAME_UTF8PROC_OPTIONS);
    if (n < 0) {
        return hie_errinfo_set(info, HIE_EINVAL, NAME_FIELD, "cannot be normalized");
    }
    HIE_ASSERT((size_t)n <= cps_max);
    *cps_count = (size_t)n;
    return 0;
}

/* Step 6: letters and digits are kept; anything else separates words. */
static bool
name_is_kept(utf8proc_int32_t cp)
{
    HIE_DEBUG_ASSERT(!name_is_apostrophe(cp)); /* name_fold() removed them */
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return true;
    default:
        return false;
    }
}

/* Encodes the folded code points as UTF-8 words separated by single spaces, without leading
 * or trailing space. [out] text: NUL-terminated; *text_len its length. */
static int
name_spaced(const utf8proc_int32_t *cps, size_t cps_count, char *text, size_t text_bytes,
    size_t *text_len, hie_errinfo_t *info)
{
    size_t len = 0;
    bool space_pending = false;

    HIE_ASSERT(text_bytes >= 1);
    for (size_t i = 0; i < cps_count; i++) {
        if (!name_is_kept(cps[i])) {
            space_pending = len > 0;
            continue;
        }
        /* Room for a space, the longest UTF-8 sequence and the NUL. */
        if (text_bytes - len < 1u + 4u + 1u) {
            return hie_errinfo_set(info, HIE_ELIMIT, NAME_FIELD, "expands past the maximum");
        }
        if (space_pending) {
            text[len++] = ' ';
            space_pending = false;
        }
        utf8proc_ssize_t n = utf8proc_encode_char(cps[i], (utf8proc_uint8_t *)text + len);
        HIE_ASSERT(n >= 1);
        HIE_ASSERT(n <= 4);
        len += (size_t)n;
    }
    HIE_ASSERT(len < text_bytes);
    text[len] = '\0';
    *text_len = len;
    return 0;
}

/* True when word (len bytes) is an honorific or a name suffix, dropped in step 7. */
static bool
name_is_honorific(const char *word, size_t len)
{
    static const char *const honorifics[] = {
        "dr", "ii", "iii", "iv", "jr", "md", "miss", "mr", "mrs", "ms", "mx", "phd", "prof",
        "sr",
    };
    for (size_t i = 0; i < HIE_ARRAY_LEN(honorifics); i++) {
        if (strlen(honorifics[i]) == len && memcmp(honorifics[i], word, len) == 0) {
            return true;
        }
    }
    return false;
}

/* Length of the word starting at text[pos]: up to the next space or the end. */
static size_t
name_word_len(const char *text, size_t text_len, size_t pos)
{
    size_t end = pos;
    while (end < text_len && text[end] != ' ') {
        end++;
    }
    return end - pos;
}

/* Step 7: copies the words of text to out, without honorifics unless every word is one.
 * Fails with HIE_ELIMIT when the result is longer than len_max. */
static int
name_drop_honorifics(const char *text, size_t text_len, char *out, size_t len_max,
    hie_errinfo_t *info)
{
    size_t words = 0;
    size_t honorifics = 0;
    for (size_t pos = 0; pos < text_len;) {
        size_t n = name_word_len(text, text_len, pos);
        HIE_ASSERT(n > 0); /* name_spaced() leaves single spaces between words */
        words++;
        honorifics += name_is_honorific(text + pos, n) ? 1u : 0u;
        pos += n + 1;
    }
    bool keep_all = honorifics == words;
    size_t len = 0;
    for (size_t pos = 0; pos < text_len;) {
        size_t n = name_word_len(text, text_len, pos);
        if (keep_all || !name_is_honorific(text + pos, n)) {
            size_t sep = len > 0 ? 1u : 0u;
            if (len + sep + n > len_max) {
                return hie_errinfo_set(info, HIE_ELIMIT, NAME_FIELD, "longer than the maximum");
            }
            if (sep != 0) {
                out[len++] = ' ';
            }
            memcpy(out + len, text + pos, n);
            len += n;
        }
        pos += n + 1;
    }
    out[len] = '\0';
    return 0;
}

int
hie_mpi_name_normalize(hie_span_t in, char *out, size_t out_bytes, hie_errinfo_t *info)
{
    utf8proc_int32_t cps[NAME_CPS_MAX];
    char text[NAME_TEXT_BYTES];
    char result[HIE_MPI_NORM_BUF_BYTES];
    size_t cps_count = 0;
    size_t text_len = 0;

    HIE_ASSERT(out != NULL);
    HIE_ASSERT(out_bytes >= 1);
    if (in.len > 0) {
        HIE_ASSERT(in.ptr != NULL);
    }
    out[0] = '\0';
    int rc = name_check(in, info);
    if (rc == 0) {
        rc = name_fold(in, cps, NAME_CPS_MAX, &cps_count, info);
    }
    if (rc == 0) {
        rc = name_spaced(cps, cps_count, text, sizeof(text), &text_len, info);
    }
    size_t len_max = out_bytes - 1 < HIE_MPI_NORM_BYTES_MAX ? out_bytes - 1
                                                             : HIE_MPI_NORM_BYTES_MAX;
    if (rc == 0) {
        rc = name_drop_honorifics(text, text_len, result, len_max, info);
    }
    if (rc != 0) {
        return rc;
    }
    size_t result_len = strlen(result);
    HIE_ASSERT(result_len <= len_max);
    memcpy(out, result, result_len + 1);
    return 0;
}

/* ---- birth dates ------------------------------------------------------------------------- */

static bool
date_is_leap(uint32_t year)
{
    return (year % 4u == 0 && year % 100u != 0) || year % 400u == 0;
}

bool
hie_mpi__date_valid(uint32_t yyyymmdd)
{
    static const uint8_t days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    uint32_t year = yyyymmdd / 10000u;
    uint32_t month = yyyymmdd / 100u % 100u;
    uint32_t day = yyyymmdd % 100u;

    if (year < HIE_MPI_DATE_YEAR_MIN || year > HIE_MPI_DATE_YEAR_MAX) {
        return false;
    }
    if (month < 1 || month > 12 || day < 1) {
        return false;
    }
    uint32_t last = days[month - 1] + (month == 2 && date_is_leap(year) ? 1u : 0u);
    return day <= last;
}

/* Reads n ASCII digits at p into *value; false on any other byte. */
static bool
date_digits(const uint8_t *p, size_t n, uint32_t *value)
{
    uint32_t v = 0;
    HIE_ASSERT(n <= 4);
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10u + (uint32_t)(p[i] - '0');
    }
    *value = v;
    return true;
}

int
hie_mpi_date_parse(hie_span_t in, uint32_t *yyyymmdd)
{
    uint32_t year = 0;
    uint32_t month = 0;
    uint32_t day = 0;
    bool ok = false;

    HIE_ASSERT(yyyymmdd != NULL);
    if (in.len > 0) {
        HIE_ASSERT(in.ptr != NULL);
    }
    *yyyymmdd = 0;
    if (in.len == 8) { /* YYYYMMDD */
        ok = date_digits(in.ptr, 4, &year) && date_digits(in.ptr + 4, 2, &month) &&
             date_digits(in.ptr + 6, 2, &day);
    } else if (in.len == 10) { /* YYYY-MM-DD */
        ok = in.ptr[4] == '-' && in.ptr[7] == '-' && date_digits(in.ptr, 4, &year) &&
             date_digits(in.ptr + 5, 2, &month) && date_digits(in.ptr + 8, 2, &day);
    }
    if (!ok) {
        return HIE_EINVAL;
    }
    uint32_t value = year * 10000u + month * 100u + day;
    if (!hie_mpi__date_valid(value)) {
        return HIE_EINVAL;
    }
    *yyyymmdd = value;
    return 0;
}

/* ---- phone numbers and postcodes --------------------------------------------------------- */

static bool
phone_is_separator(uint8_t c)
{
    switch (c) {
    case ' ':
    case '-':
    case '.':
    case '(':
    case ')':
    case '/':
    case '+':
        return true;
    default:
        return false;
    }
}

int
hie_mpi_phone_normalize(hie_span_t in, char *out, size_t out_bytes)
{
    char digits[HIE_MPI_PHONE_BUF_BYTES];
    size_t n = 0;

    HIE_ASSERT(out != NULL);
    HIE_ASSERT(out_bytes >= HIE_MPI_PHONE_BUF_BYTES);
    if (in.len > 0) {
        HIE_ASSERT(in.ptr != NULL);
    }
    out[0] = '\0';
    if (in.len > HIE_MPI_PHONE_BYTES_MAX) {
        return HIE_ELIMIT;
    }
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.ptr[i];
        if (c >= '0' && c <= '9') {
            if (n == HIE_MPI_PHONE_DIGITS_MAX) {
                return HIE_EINVAL;
            }
            digits[n++] = (char)c;
        } else if (!phone_is_separator(c)) {
            return HIE_EINVAL;
        }
    }
    if (n < HIE_MPI_PHONE_DIGITS_MIN) {
        return HIE_EINVAL;
    }
    digits[n] = '\0';
    memcpy(out, digits, n + 1);
    return 0;
}

int
hie_mpi_postcode_normalize(hie_span_t in, char *out, size_t out_bytes)
{
    char code[HIE_MPI_POSTCODE_BUF_BYTES];
    size_t n = 0;

    HIE_ASSERT(out != NULL);
    HIE_ASSERT(out_bytes >= HIE_MPI_POSTCODE_BUF_BYTES);
    if (in.len > 0) {
        HIE_ASSERT(in.ptr != NULL);
    }
    out[0] = '\0';
    if (in.len > HIE_MPI_POSTCODE_BYTES_MAX) {
        return HIE_ELIMIT;
    }
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.ptr[i];
        if (c == ' ' || c == '-') {
            continue;
        }
        bool digit = c >= '0' && c <= '9';
        bool upper = c >= 'A' && c <= 'Z';
        bool lower = c >= 'a' && c <= 'z';
        if (!digit && !upper && !lower) {
            return HIE_EINVAL;
        }
        if (n == HIE_MPI_POSTCODE_CHARS_MAX) {
            return HIE_EINVAL;
        }
        code[n++] = (char)(lower ? c - ('a' - 'A') : c);
    }
    if (n == 0) {
        return HIE_EINVAL;
    }
    code[n] = '\0';
    memcpy(out, code, n + 1);
    return 0;
}
