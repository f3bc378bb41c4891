/*
 * compare.c - field comparators of the Fellegi-Sunter matcher: Jaro-Winkler similarity,
 * optimal string alignment distance, NYSIIS codes, and the ordered comparison levels of
 * strings and birth dates (hie/mpi.h).
 *
 * Inputs are normalized values our own code produced, so their shape is asserted, not
 * checked (style.md 3.6). Strings are compared as code points, decoded into stack arrays of
 * HIE_MPI_COMPARE_CHARS_MAX entries: the quadratic algorithms have a fixed worst case
 * (256 x 256 cells) and nothing allocates. Pure functions: no state, no clock, no randomness,
 * so a replayed command scores exactly as it did the first time.
 *
 * Callers: the matcher and PDQ ranking (later), the unit tests.
 */
#include "mpi_int.h"

#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

/* Winkler (1990): the prefix scale p, the longest prefix counted, and the boost threshold,
 * the Jaro similarity a pair must exceed before its common prefix raises the score. */
#define JW_PREFIX_SCALE 0.1
#define JW_PREFIX_MAX 4u
#define JW_BOOST_THRESHOLD 0.7

/* Decodes the NUL-terminated s into cps (HIE_MPI_COMPARE_CHARS_MAX entries) and returns the
 * count. Invalid UTF-8 or a longer string is our bug (hie/mpi.h preconditions): asserted.
 * ASCII bytes, nearly every byte of a normalized name, are taken as they are without a call
 * into utf8proc (the comparators run tens of millions of times per ingest). */
static size_t
compare_decode(const char *s, uint32_t *cps)
{
    HIE_ASSERT(s != NULL);
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t count = 0;
    size_t off = 0;
    while (p[off] != 0 && p[off] < 0x80) { /* bounded by the NUL */
        HIE_ASSERT(count < HIE_MPI_COMPARE_CHARS_MAX);
        cps[count++] = p[off++];
    }
    if (p[off] == 0) {
        return count;
    }
    size_t len = off + strlen(s + off);
    while (off < len) { /* bounded: each turn consumes at least one byte */
        utf8proc_int32_t cp = -1;
        utf8proc_ssize_t n = utf8proc_iterate(p + off, (utf8proc_ssize_t)(len - off), &cp);
        HIE_ASSERT(n > 0);
        HIE_ASSERT(count < HIE_MPI_COMPARE_CHARS_MAX);
        cps[count++] = (uint32_t)cp;
        off += (size_t)n;
    }
    return count;
}

/* ---- Jaro-Winkler ------------------------------------------------------------------------ */

/* Jaro similarity of two non-empty code point strings. Characters match when equal and at
 * most window = max(la, lb) / 2 - 1 positions apart, each used once, taken greedily in order
 * of a. t is half the number of matched characters out of order, rounded down as in
 * Winkler's strcmp95 reference code (and Apache Commons Text, Lucene). */
static double
jaro(const uint32_t *a, size_t la, const uint32_t *b, size_t lb)
{
    bool a_matched[HIE_MPI_COMPARE_CHARS_MAX];
    bool b_matched[HIE_MPI_COMPARE_CHARS_MAX];
    size_t longer = la > lb ? la : lb;
    size_t window = longer / 2 > 0 ? longer / 2 - 1 : 0;
    size_t matches = 0;

    HIE_ASSERT(la > 0);
    HIE_ASSERT(lb > 0);
    HIE_ASSERT(la <= HIE_MPI_COMPARE_CHARS_MAX);
    HIE_ASSERT(lb <= HIE_MPI_COMPARE_CHARS_MAX);
    memset(a_matched, 0, la * sizeof(a_matched[0])); /* only the used flags: names are short */
    memset(b_matched, 0, lb * sizeof(b_matched[0]));
    for (size_t i = 0; i < la; i++) {
        size_t lo = i > window ? i - window : 0;
        size_t hi = i + window + 1 < lb ? i + window + 1 : lb;
        for (size_t j = lo; j < hi; j++) {
            if (!b_matched[j] && a[i] == b[j]) {
                a_matched[i] = true;
                b_matched[j] = true;
                matches++;
                break;
            }
        }
    }
    if (matches == 0) {
        return 0.0;
    }
    size_t out_of_order = 0;
    size_t k = 0;
    for (size_t i = 0; i < la; i++) {
        if (!a_matched[i]) {
            continue;
        }
        while (!b_matched[k]) { /* bounded: b has as many matched positions as a */
            k++;
        }
        out_of_order += a[i] != b[k] ? 1u : 0u;
        k++;
    }
    double m = (double)matches;
    double t = (double)(out_of_order / 2);
    return (m / (double)la + m / (double)lb + (m - t) / m) / 3.0;
}

/* Jaro-Winkler of two decoded strings (hie_mpi_jaro_winkler() without the decoding). */
static double
jw_cps(const uint32_t *ca, size_t la, const uint32_t *cb, size_t lb)
{
    if (la == 0 || lb == 0) {
        return la == lb ? 1.0 : 0.0;
    }
    /* Greedy matching can depend on which string leads; a fixed order (shorter first, then
     * the smaller code point sequence) makes the result symmetric. */
    bool swap = la > lb || (la == lb && memcmp(ca, cb, la * sizeof(ca[0])) > 0);
    double sim = swap ? jaro(cb, lb, ca, la) : jaro(ca, la, cb, lb);
    HIE_ASSERT(sim >= 0.0);
    HIE_ASSERT(sim <= 1.0);
    if (sim <= JW_BOOST_THRESHOLD) {
        return sim;
    }
    size_t prefix = 0;
    while (prefix < JW_PREFIX_MAX && prefix < la && prefix < lb && ca[prefix] == cb[prefix]) {
        prefix++;
    }
    /* At most 4 * 0.1 of the remaining distance is added: the result stays within [0, 1]. */
    double boosted = sim + (double)prefix * JW_PREFIX_SCALE * (1.0 - sim);
    HIE_ASSERT(boosted <= 1.0);
    return boosted;
}

/* Whether the Jaro-Winkler similarity two strings of la and lb code points (both at least 1)
 * would have with common matching characters, no transpositions and the Winkler boost of a
 * common prefix of prefix code points is below threshold: when common bounds the matches,
 * that similarity bounds jw_cps(). With sim = n / d, n = common (la + lb) + la lb and
 * d = 3 la lb, the bound sim + boost (1 - sim) is compared without a division. */
static bool
jw_common_below(size_t common, size_t la, size_t lb, size_t prefix, double threshold)
{
    HIE_ASSERT(common <= la && common <= lb && la > 0 && lb > 0);
    double n = (double)common * (double)(la + lb) + (double)la * (double)lb;
    double d = 3.0 * (double)la * (double)lb;
    double boost = (double)prefix * JW_PREFIX_SCALE;
    return n * (1.0 - boost) < (threshold - boost) * d;
}

/* The characters the two strings have in common as multisets, whatever the window: Jaro
 * matches equal characters, so it bounds the matches (far cheaper than the matching).
 * SIZE_MAX (no bound) when a string has a code point outside ASCII. */
static size_t
jw_common_counted(const uint32_t *ca, size_t la, const uint32_t *cb, size_t lb)
{
    uint8_t count[128];
    size_t common = 0;

    memset(count, 0, sizeof(count));
    for (size_t i = 0; i < la; i++) {
        if (ca[i] >= 128 || count[ca[i]] == UINT8_MAX) {
            return SIZE_MAX;
        }
        count[ca[i]]++;
    }
    for (size_t j = 0; j < lb; j++) {
        if (cb[j] >= 128) {
            return SIZE_MAX;
        }
        if (count[cb[j]] > 0) {
            count[cb[j]]--;
            common++;
        }
    }
    return common;
}

/* Code points folded into 64 bits, one bit per class (a class may hold several). */
static uint64_t
jw_mask(const uint32_t *c, size_t l)
{
    uint64_t m = 0;
    for (size_t i = 0; i < l; i++) {
        m |= 1ull << (c[i] & 63u);
    }
    return m;
}

/* How many characters of c (with their repeats) fall in no class of mask: none of them can
 * match a character of the string mask came from. */
static size_t
jw_outside(const uint32_t *c, size_t l, uint64_t mask)
{
    size_t n = 0;
    for (size_t i = 0; i < l; i++) {
        n += ((mask >> (c[i] & 63u)) & 1u) == 0;
    }
    return n;
}

/* A looser bound of the matches than jw_common_counted(), cheaper still (no table, no
 * stores): a character of one string whose class the other lacks matches nothing, so the
 * matches are at most the characters left on either side. Classes only merge characters,
 * which can only raise the bound; any code point works. */
static size_t
jw_common_classes(const uint32_t *ca, size_t la, const uint32_t *cb, size_t lb)
{
    size_t left_a = la - jw_outside(ca, la, jw_mask(cb, lb));
    size_t left_b = lb - jw_outside(cb, lb, jw_mask(ca, la));
    return left_a < left_b ? left_a : left_b;
}

/* jw_cps(ca, la, cb, lb) >= threshold, deciding from the bounds of the matches when the
 * similarity they allow is clearly below (the margin covers rounding, so no pair is ever
 * decided differently): first the class bound, then the counted one. */
static bool
jw_reaches(const uint32_t *ca, size_t la, const uint32_t *cb, size_t lb, double threshold,
    double *jw)
{
    if (la > 0 && lb > 0) {
        size_t prefix = 0;
        while (prefix < JW_PREFIX_MAX && prefix < la && prefix < lb && ca[prefix] == cb[prefix]) {
            prefix++;
        }
        double below = threshold - 1e-9;
        size_t counted = 0;
        if (jw_common_below(jw_common_classes(ca, la, cb, lb), la, lb, prefix, below) ||
            ((counted = jw_common_counted(ca, la, cb, lb)) != SIZE_MAX &&
                jw_common_below(counted, la, lb, prefix, below))) {
            HIE_DEBUG_ASSERT(jw_cps(ca, la, cb, lb) < threshold);
            *jw = -1.0; /* unknown, but below threshold */
            return false;
        }
    }
    *jw = jw_cps(ca, la, cb, lb);
    return *jw >= threshold;
}

double
hie_mpi_jaro_winkler(const char *a, const char *b)
{
    uint32_t ca[HIE_MPI_COMPARE_CHARS_MAX];
    uint32_t cb[HIE_MPI_COMPARE_CHARS_MAX];
    size_t la = compare_decode(a, ca);
    size_t lb = compare_decode(b, cb);

    return jw_cps(ca, la, cb, lb);
}

bool
hie_mpi_jaro_winkler_reaches(const char *a, const char *b, double threshold)
{
    uint32_t ca[HIE_MPI_COMPARE_CHARS_MAX];
    uint32_t cb[HIE_MPI_COMPARE_CHARS_MAX];
    size_t la = compare_decode(a, ca);
    size_t lb = compare_decode(b, cb);
    double jw;

    return jw_reaches(ca, la, cb, lb, threshold, &jw);
}

/* ---- optimal string alignment ------------------------------------------------------------ */

static unsigned
osa_min(unsigned x, unsigned y)
{
    return x < y ? x : y;
}

/* Optimal string alignment distance of a and b, or limit + 1 as soon as it must exceed limit.
 * Keeps three rows of the dynamic programming matrix. Every cell of a later row is built
 * from the two rows before it plus non-negative costs (column 0 holds the row number, which
 * is at least any earlier row's minimum), so once both of the last two rows lie above limit
 * the distance does too. */
static unsigned
osa_distance(const uint32_t *a, size_t la, const uint32_t *b, size_t lb, unsigned limit)
{
    unsigned rows[3][HIE_MPI_COMPARE_CHARS_MAX + 1];
    unsigned *before = rows[0];
    unsigned *prev = rows[1];
    unsigned *cur = rows[2];
    unsigned prev_min = 0;

    HIE_ASSERT(la <= HIE_MPI_COMPARE_CHARS_MAX);
    HIE_ASSERT(lb <= HIE_MPI_COMPARE_CHARS_MAX);
    for (size_t j = 0; j <= lb; j++) {
        prev[j] = (unsigned)j;
    }
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (unsigned)i;
        unsigned row_min = cur[0];
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = a[i - 1] == b[j - 1] ? 0u : 1u;
            unsigned d = osa_min(osa_min(prev[j] + 1, cur[j - 1] + 1), prev[j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                d = osa_min(d, before[j - 2] + 1); /* adjacent transposition */
            }
            cur[j] = d;
            row_min = osa_min(row_min, d);
        }
        if (row_min > limit && prev_min > limit) {
            return limit + 1;
        }
        unsigned *spare = before;
        before = prev;
        prev = cur;
        cur = spare;
        prev_min = row_min;
    }
    return prev[lb] > limit ? limit + 1 : prev[lb];
}

/* The optimal string alignment distance capped at 1: 0 when equal, 1 when one insertion,
 * deletion, substitution or transposition of two adjacent code points turns a into b, else 2.
 * Linear: skip the common prefix and suffix and look at what is left. Gives what
 * osa_distance(a, la, b, lb, 1) gives, without the quadratic table. */
static unsigned
osa_within_one(const uint32_t *a, size_t la, const uint32_t *b, size_t lb)
{
    if (la > lb) { /* symmetric: make a the shorter */
        const uint32_t *t = a;
        a = b;
        b = t;
        size_t lt = la;
        la = lb;
        lb = lt;
    }
    if (lb - la > 1) {
        return 2;
    }
    size_t head = 0;
    while (head < la && a[head] == b[head]) {
        head++;
    }
    if (head == la && la == lb) {
        return 0;
    }
    size_t tail = 0; /* common suffix, not overlapping the prefix */
    while (tail < la - head && a[la - 1 - tail] == b[lb - 1 - tail]) {
        tail++;
    }
    size_t rest_a = la - head - tail;
    size_t rest_b = lb - head - tail;
    if (rest_a + rest_b <= 2 && rest_b <= 1 + rest_a && rest_a <= 1) {
        return 1; /* one substitution (1 + 1) or one insertion (0 + 1) */
    }
    bool swapped = la == lb && rest_a == 2 && a[head] == b[head + 1] && a[head + 1] == b[head];
    return swapped ? 1u : 2u;
}

/* hie_mpi_damerau_levenshtein() of two decoded strings. */
static unsigned
dl_cps(const uint32_t *ca, size_t la, const uint32_t *cb, size_t lb, unsigned cap)
{
    size_t longer = la > lb ? la : lb;
    size_t gap = la > lb ? la - lb : lb - la;

    /* The distance never exceeds the longer length: a cap at or above it cannot be hit,
     * and limit + 1 below cannot overflow. */
    unsigned limit = (size_t)cap < longer ? cap : (unsigned)longer;
    if (gap > limit) { /* each inserted or deleted code point costs 1 */
        return limit + 1;
    }
    unsigned d = limit == 1 ? osa_within_one(ca, la, cb, lb)
                            : osa_distance(ca, la, cb, lb, limit);
    HIE_DEBUG_ASSERT(d == osa_distance(ca, la, cb, lb, limit));
    HIE_ASSERT(d <= limit + 1);
    if (d > limit) {
        HIE_ASSERT(limit == cap);
    }
    return d;
}

unsigned
hie_mpi_damerau_levenshtein(const char *a, const char *b, unsigned cap)
{
    uint32_t ca[HIE_MPI_COMPARE_CHARS_MAX];
    uint32_t cb[HIE_MPI_COMPARE_CHARS_MAX];
    size_t la = compare_decode(a, ca);
    size_t lb = compare_decode(b, cb);

    return dl_cps(ca, la, cb, lb, cap);
}

/* ---- NYSIIS ------------------------------------------------------------------------------ */

static bool
nysiis_is_vowel(char c)
{
    return c == 'A' || c == 'E' || c == 'I' || c == 'O' || c == 'U';
}

static bool
nysiis_starts(const char *s, size_t n, const char *prefix)
{
    size_t len = strlen(prefix);
    return n >= len && memcmp(s, prefix, len) == 0;
}

static bool
nysiis_ends(const char *s, size_t n, const char *suffix)
{
    return n >= 2 && s[n - 2] == suffix[0] && s[n - 1] == suffix[1];
}

/* Rules 1 and 2: transcode the first and the last characters of the name.
 * Returns the new length (a suffix rule shortens the name by one). */
static size_t
nysiis_ends_transcode(char *s, size_t n)
{
    if (nysiis_starts(s, n, "MAC")) {
        memcpy(s, "MCC", 3);
    } else if (nysiis_starts(s, n, "KN")) {
        memcpy(s, "NN", 2);
    } else if (nysiis_starts(s, n, "K")) {
        s[0] = 'C';
    } else if (nysiis_starts(s, n, "PH") || nysiis_starts(s, n, "PF")) {
        memcpy(s, "FF", 2);
    } else if (nysiis_starts(s, n, "SCH")) {
        memcpy(s, "SSS", 3);
    }
    if (nysiis_ends(s, n, "EE") || nysiis_ends(s, n, "IE")) {
        s[n - 2] = 'Y';
        return n - 1;
    }
    static const char *const d_suffixes[] = {"DT", "RT", "RD", "NT", "ND"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(d_suffixes); i++) {
        if (nysiis_ends(s, n, d_suffixes[i])) {
            s[n - 2] = 'D';
            return n - 1;
        }
    }
    return n;
}

/* Rule 4 at position i (i >= 1): rewrites s[i] and, for the multi-letter rules, the letters
 * after it, in place, as the original algorithm does; the next turn sees the rewritten name.
 * Every multi-letter rule is guarded by the letters it rewrites, so it stays inside s. */
static void
nysiis_transcode_at(char *s, size_t n, size_t i)
{
    char prev = s[i - 1];
    char cur = s[i];
    char next = i + 1 < n ? s[i + 1] : ' ';
    char after = i + 2 < n ? s[i + 2] : ' ';

    if (cur == 'E' && next == 'V') {
        memcpy(s + i, "AF", 2);
    } else if (nysiis_is_vowel(cur)) {
        s[i] = 'A';
    } else if (cur == 'Q') {
        s[i] = 'G';
    } else if (cur == 'Z') {
        s[i] = 'S';
    } else if (cur == 'M') {
        s[i] = 'N';
    } else if (cur == 'K') {
        s[i] = next == 'N' ? 'N' : 'C';
    } else if (cur == 'S' && next == 'C' && after == 'H') {
        memcpy(s + i, "SSS", 3);
    } else if (cur == 'P' && next == 'H') {
        memcpy(s + i, "FF", 2);
    } else if (cur == 'H' && (!nysiis_is_vowel(prev) || !nysiis_is_vowel(next))) {
        s[i] = prev;
    } else if (cur == 'W' && nysiis_is_vowel(prev)) {
        s[i] = prev;
    }
}

/* Rules 5 to 7 on the key, then the original 6-character truncation. Returns the length. */
static size_t
nysiis_key_finish(char *key, size_t k)
{
    if (k > 1) {
        char last = key[k - 1];
        if (last == 'S') { /* rule 5: drop a final S */
            k--;
            last = key[k - 1];
        }
        if (k > 2 && key[k - 2] == 'A' && last == 'Y') { /* rule 6: final AY -> Y */
            key[k - 2] = 'Y';
            k--;
        }
        if (last == 'A') { /* rule 7: drop a final A */
            k--;
        }
    }
    return k < HIE_MPI_NYSIIS_CODE_CHARS ? k : HIE_MPI_NYSIIS_CODE_CHARS;
}

/* Rule order, the in-place rewriting and the edge cases (rules 6 and 7 on short keys) follow
 * Apache Commons Codec's Nysiis (strict mode), whose test suite is the reference we test
 * against (tests/unit/mpi/test_compare.c). */
void
hie_mpi_nysiis(const char *name, char *out, size_t out_bytes)
{
    uint32_t cps[HIE_MPI_COMPARE_CHARS_MAX];
    char s[HIE_MPI_COMPARE_CHARS_MAX + 1];
    char key[HIE_MPI_COMPARE_CHARS_MAX + 1];
    size_t n = 0;

    HIE_ASSERT(out != NULL);
    HIE_ASSERT(out_bytes >= HIE_MPI_NYSIIS_BUF_BYTES);
    size_t count = compare_decode(name, cps);
    for (size_t i = 0; i < count; i++) {
        uint32_t c = cps[i];
        if (c >= 'a' && c <= 'z') {
            s[n++] = (char)(c - ('a' - 'A'));
        } else if (c >= 'A' && c <= 'Z') {
            s[n++] = (char)c;
        }
    }
    out[0] = '\0';
    if (n == 0) {
        return;
    }
    n = nysiis_ends_transcode(s, n);
    size_t k = 0;
    key[k++] = s[0];
    for (size_t i = 1; i < n; i++) {
        nysiis_transcode_at(s, n, i);
        if (s[i] != s[i - 1]) { /* rule 4j: no letter twice in a row in the key */
            key[k++] = s[i];
        }
    }
    k = nysiis_key_finish(key, k);
    HIE_ASSERT(k < out_bytes);
    memcpy(out, key, k);
    out[k] = '\0';
}

/* ---- comparison levels ------------------------------------------------------------------- */

/* How many of the 8 decimal digits of two YYYYMMDD values differ. */
static unsigned
date_digits_differing(uint32_t a, uint32_t b)
{
    unsigned n = 0;
    for (unsigned i = 0; i < 8; i++) {
        n += a % 10u != b % 10u ? 1u : 0u;
        a /= 10u;
        b /= 10u;
    }
    return n;
}

/* Days from 0000-03-01 to the valid YYYYMMDD date d (the proleptic Gregorian calendar, the
 * civil-days algorithm of H. Hinnant): integers only, the same on every node. */
static uint32_t
date_day_number(uint32_t d)
{
    uint32_t y = d / 10000u, m = d / 100u % 100u, day = d % 100u;
    HIE_ASSERT(y >= HIE_MPI_DATE_YEAR_MIN);
    HIE_ASSERT(m >= 1 && m <= 12);
    y -= m <= 2 ? 1u : 0u;                      /* the year starts in March */
    uint32_t era = y / 400u, yoe = y - era * 400u;
    uint32_t doy = (153u * (m > 2 ? m - 3u : m + 9u) + 2u) / 5u + day - 1u;
    uint32_t doe = yoe * 365u + yoe / 4u - yoe / 100u + doy;
    return era * 146097u + doe;
}

enum hie_mpi_date_level
hie_mpi_date_compare(uint32_t a, uint32_t b)
{
    if (a != 0) {
        HIE_ASSERT(hie_mpi__date_valid(a));
    }
    if (b != 0) {
        HIE_ASSERT(hie_mpi__date_valid(b));
    }
    if (a == 0 || b == 0) {
        return HIE_MPI_DATE_MISSING;
    }
    if (a == b) {
        return HIE_MPI_DATE_EXACT;
    }
    uint32_t year_a = a / 10000u;
    uint32_t year_b = b / 10000u;
    uint32_t month_a = a / 100u % 100u;
    uint32_t month_b = b / 100u % 100u;
    if (year_a == year_b && month_a == b % 100u && a % 100u == month_b) {
        return HIE_MPI_DATE_DAY_MONTH_TRANSPOSED;
    }
    if (date_digits_differing(a, b) == 1) {
        return HIE_MPI_DATE_ONE_DIGIT_OFF;
    }
    uint32_t da = date_day_number(a), db = date_day_number(b);
    uint32_t apart = da > db ? da - db : db - da;
    if (apart <= HIE_MPI_DATE_MONTH_DAYS) {
        return HIE_MPI_DATE_WITHIN_MONTH;
    }
    if (apart <= HIE_MPI_DATE_YEAR_DAYS) {
        return HIE_MPI_DATE_WITHIN_YEAR;
    }
    return apart <= HIE_MPI_DATE_DECADE_DAYS ? HIE_MPI_DATE_WITHIN_DECADE
                                             : HIE_MPI_DATE_DIFFERENT;
}

/* The levels of hie_mpi_string_compare(); code_a and code_b are the NYSIIS codes of a and b,
 * or NULL to compute them when the level needs them. Each string is decoded once for both
 * Jaro-Winkler and the edit distance. */
static enum hie_mpi_str_level
string_level(const char *a, const char *code_a, const char *b, const char *code_b)
{
    uint32_t ca[HIE_MPI_COMPARE_CHARS_MAX];
    uint32_t cb[HIE_MPI_COMPARE_CHARS_MAX];
    char buf_a[HIE_MPI_NYSIIS_BUF_BYTES];
    char buf_b[HIE_MPI_NYSIIS_BUF_BYTES];

    HIE_ASSERT(a != NULL);
    HIE_ASSERT(b != NULL);
    if (a[0] == '\0' || b[0] == '\0') {
        return HIE_MPI_STR_MISSING;
    }
    if (strcmp(a, b) == 0) {
        return HIE_MPI_STR_EXACT;
    }
    size_t la = compare_decode(a, ca);
    size_t lb = compare_decode(b, cb);
    double jw; /* exact when it reaches HIE_MPI_JW_LOW, else only known to be below it */
    if (jw_reaches(ca, la, cb, lb, HIE_MPI_JW_LOW, &jw) && jw >= HIE_MPI_JW_HIGH) {
        return HIE_MPI_STR_JW_HIGH;
    }
    if (code_a == NULL) {
        hie_mpi_nysiis(a, buf_a, sizeof(buf_a));
        code_a = buf_a;
    }
    if (code_b == NULL) {
        hie_mpi_nysiis(b, buf_b, sizeof(buf_b));
        code_b = buf_b;
    }
    if (code_a[0] != '\0' && strcmp(code_a, code_b) == 0) {
        return HIE_MPI_STR_PHONETIC;
    }
    if (dl_cps(ca, la, cb, lb, 1) <= 1) {
        return HIE_MPI_STR_DL1;
    }
    if (jw >= HIE_MPI_JW_MID) {
        return HIE_MPI_STR_JW_MID;
    }
    return jw >= HIE_MPI_JW_LOW ? HIE_MPI_STR_JW_LOW : HIE_MPI_STR_DIFFERENT;
}

enum hie_mpi_str_level
hie_mpi_string_compare(const char *a, const char *b)
{
    return string_level(a, NULL, b, NULL);
}

enum hie_mpi_str_level
hie_mpi_string_compare_coded(const char *a, const char *code_a, const char *b,
    const char *code_b)
{
    HIE_ASSERT(code_a != NULL);
    HIE_ASSERT(code_b != NULL);
    HIE_DEBUG_ASSERT(string_level(a, NULL, b, NULL) == string_level(a, code_a, b, code_b));
    return string_level(a, code_a, b, code_b);
}
