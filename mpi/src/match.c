/*
 * match.c - the Fellegi-Sunter model: comparison vectors, weights with explanation, term
 * frequencies, u from random pairs, m by EM, blocking keys.
 *
 * Invariants: level 0 of every field is "missing" and contributes 0; m and u of the other
 * levels of an enabled field are each a distribution (sum 1, every entry > 0), so every
 * weight is finite. Scoring reads nothing but its arguments (deterministic on every node).
 * Callers: the MPI index (feed, PDQ), hiectl mpi train, bench/bench_mpi_accuracy.
 */
#include "hie/mpi.h"
#include "mpi_int.h"

#include <math.h>
#include <sodium.h>
#include <string.h>

#define PROB_FLOOR 1e-6
/* Pseudo-count added to each level's expected matches in every EM round (add-half smoothing,
 * as u gets from random pairs): a level no match of the training pairs happened to reach is
 * rare, not impossible. Without it a small or narrowly blocked session drove m to the floor
 * and one typo in a birth date cost 18 bits (FEBRL1). */
#define EM_M_PSEUDO_COUNT 0.5
#define TF_FLOOR 1e-5

/* ---- fields and levels ------------------------------------------------------------------ */

/* Strings with few levels (addresses, email): missing, exact, similar, different. */
enum { COARSE_MISSING, COARSE_EXACT, COARSE_SIMILAR, COARSE_DIFFERENT, COARSE_COUNT };

static const char *const field_names[HIE_MPI_FIELD_COUNT] = {
    "given", "family", "dob", "street", "city", "postcode", "phone", "email", "national_id",
};
static const char *const str_level_names[] = {
    "missing", "exact", "jw>=0.94", "phonetic", "dl1", "jw>=0.88", "jw>=0.70", "different",
};
static const char *const date_level_names[] = {
    "missing", "exact", "day-month-swapped", "one-digit-off", "within-month", "within-year",
    "within-decade", "different",
};
static const char *const coarse_level_names[] = {"missing", "exact", "similar", "different"};

/* E-mail: the coarse levels with one more, the same local part at another domain (a typo in
 * the domain, or the same user moved provider), between exact and similar. */
enum {
    EMAIL_MISSING,
    EMAIL_EXACT,
    EMAIL_SAME_LOCAL,
    EMAIL_SIMILAR,
    EMAIL_DIFFERENT,
    EMAIL_COUNT
};
static const char *const email_level_names[] = {
    "missing", "exact", "same-local-part", "similar", "different",
};
_Static_assert(EMAIL_COUNT == HIE_ARRAY_LEN(email_level_names), "email levels");
_Static_assert((int)EMAIL_MISSING == (int)COARSE_MISSING, "compare_email passes these on");
_Static_assert((int)EMAIL_EXACT == (int)COARSE_EXACT, "compare_email passes these on");
_Static_assert(EMAIL_COUNT <= HIE_MPI_LEVELS_MAX, "too many levels");

_Static_assert(HIE_MPI_STR_LEVEL_COUNT == HIE_ARRAY_LEN(str_level_names), "str levels");
_Static_assert(HIE_MPI_DATE_LEVEL_COUNT == HIE_ARRAY_LEN(date_level_names), "date levels");
_Static_assert(HIE_MPI_STR_LEVEL_COUNT <= HIE_MPI_LEVELS_MAX, "too many levels");

static bool
field_is_name(enum hie_mpi_field f)
{
    return f == HIE_MPI_F_GIVEN || f == HIE_MPI_F_FAMILY;
}

unsigned
hie_mpi_field_levels(enum hie_mpi_field f)
{
    HIE_ASSERT(f < HIE_MPI_FIELD_COUNT);
    if (field_is_name(f)) {
        return HIE_MPI_STR_LEVEL_COUNT;
    }
    if (f == HIE_MPI_F_EMAIL) {
        return EMAIL_COUNT;
    }
    return f == HIE_MPI_F_DOB ? HIE_MPI_DATE_LEVEL_COUNT : COARSE_COUNT;
}

const char *
hie_mpi_field_name(enum hie_mpi_field f)
{
    HIE_ASSERT(f < HIE_MPI_FIELD_COUNT);
    return field_names[f];
}

const char *
hie_mpi_level_name(enum hie_mpi_field f, unsigned level)
{
    HIE_ASSERT(f < HIE_MPI_FIELD_COUNT);
    if (level >= hie_mpi_field_levels(f)) {
        return "invalid";
    }
    if (field_is_name(f)) {
        return str_level_names[level];
    }
    if (f == HIE_MPI_F_EMAIL) {
        return email_level_names[level];
    }
    return f == HIE_MPI_F_DOB ? date_level_names[level] : coarse_level_names[level];
}

static uint8_t
compare_coarse(const char *a, const char *b)
{
    if (a[0] == '\0' || b[0] == '\0') {
        return COARSE_MISSING;
    }
    if (strcmp(a, b) == 0) {
        return COARSE_EXACT;
    }
    return hie_mpi_jaro_winkler_reaches(a, b, HIE_MPI_JW_MID) ? COARSE_SIMILAR
                                                              : COARSE_DIFFERENT;
}

static uint8_t
compare_email(const char *a, const char *b)
{
    uint8_t coarse = compare_coarse(a, b);
    if (coarse != COARSE_SIMILAR && coarse != COARSE_DIFFERENT) {
        return coarse; /* missing and exact have the same numbers in both enums */
    }
    const char *at_a = strchr(a, '@'), *at_b = strchr(b, '@');
    if (at_a != NULL && at_b != NULL && at_a - a == at_b - b && at_a > a &&
        memcmp(a, b, (size_t)(at_a - a)) == 0) {
        return EMAIL_SAME_LOCAL;
    }
    return coarse == COARSE_SIMILAR ? EMAIL_SIMILAR : EMAIL_DIFFERENT;
}

/* Identifiers and codes: a typo (one edit) is "similar", nothing fuzzier. */
static uint8_t
compare_code(const char *a, const char *b)
{
    if (a[0] == '\0' || b[0] == '\0') {
        return COARSE_MISSING;
    }
    if (strcmp(a, b) == 0) {
        return COARSE_EXACT;
    }
    return hie_mpi_damerau_levenshtein(a, b, 1) <= 1 ? COARSE_SIMILAR : COARSE_DIFFERENT;
}

static uint8_t
compare_given(const hie_mpi_person_t *a, const hie_mpi_person_t *b)
{
    enum hie_mpi_str_level l =
        hie_mpi_string_compare_coded(a->given, a->given_code, b->given, b->given_code);
    /* a nickname of the same name (bill / william) agrees as strongly as a near-exact name */
    if (l > HIE_MPI_STR_JW_HIGH && a->given_canon[0] != '\0' &&
        strcmp(a->given_canon, b->given_canon) == 0) {
        l = HIE_MPI_STR_JW_HIGH;
    }
    return (uint8_t)l;
}

/* Given and family name swapped between the records (a clerical error common enough to
 * deserve its own check), perhaps with a typo as well: when both cross comparisons (a's given
 * name with b's family name and the reverse) reach some similarity and together beat the
 * straight ones, the cross levels are the names' levels, exact demoted to near-exact. Both
 * names must be present on both sides. [in,out] given, family: the straight levels. */
static void
names_swapped(const hie_mpi_person_t *a, const hie_mpi_person_t *b, uint8_t *given,
    uint8_t *family)
{
    if (*given <= HIE_MPI_STR_JW_HIGH || *family <= HIE_MPI_STR_JW_HIGH ||
        *given == HIE_MPI_STR_MISSING || *family == HIE_MPI_STR_MISSING) {
        return; /* a name agrees already, or one is missing: nothing to gain */
    }
    enum hie_mpi_str_level x1 =
        hie_mpi_string_compare_coded(a->given, a->given_code, b->family, b->family_code);
    if (x1 > HIE_MPI_STR_JW_MID) {
        return;
    }
    enum hie_mpi_str_level x2 =
        hie_mpi_string_compare_coded(a->family, a->family_code, b->given, b->given_code);
    if (x2 > HIE_MPI_STR_JW_MID || (unsigned)x1 + x2 >= (unsigned)*given + *family) {
        return;
    }
    *given = (uint8_t)(x1 < HIE_MPI_STR_JW_HIGH ? HIE_MPI_STR_JW_HIGH : x1);
    *family = (uint8_t)(x2 < HIE_MPI_STR_JW_HIGH ? HIE_MPI_STR_JW_HIGH : x2);
}

#if defined(HIE_DEBUG_ASSERTS) && HIE_DEBUG_ASSERTS
/* The NYSIIS codes prepare cached still match the names (debug builds: a stale cache would
 * silently change comparison levels and blocks). */
static bool
person_codes_fresh(const hie_mpi_person_t *p)
{
    char code[HIE_MPI_NYSIIS_BUF_BYTES];
    hie_mpi_nysiis(p->given, code, sizeof(code));
    bool fresh = strcmp(code, p->given_code) == 0;
    hie_mpi_nysiis(p->family, code, sizeof(code));
    fresh = fresh && strcmp(code, p->family_code) == 0;
    hie_mpi_nysiis(p->given_canon[0] != '\0' ? p->given_canon : p->given, code, sizeof(code));
    return fresh && strcmp(code, p->canon_code) == 0;
}
#endif

void
hie_mpi_compare(const hie_mpi_person_t *a, const hie_mpi_person_t *b, hie_mpi_vector_t *out)
{
    HIE_ASSERT(a != NULL && b != NULL && out != NULL);
    HIE_ASSERT(a->prepared == HIE_MPI_PERSON_PREPARED);
    HIE_ASSERT(b->prepared == HIE_MPI_PERSON_PREPARED);
    HIE_DEBUG_ASSERT(person_codes_fresh(a));
    HIE_DEBUG_ASSERT(person_codes_fresh(b));
    out->level[HIE_MPI_F_GIVEN] = compare_given(a, b);
    out->level[HIE_MPI_F_FAMILY] = (uint8_t)hie_mpi_string_compare_coded(a->family,
        a->family_code, b->family, b->family_code);
    names_swapped(a, b, &out->level[HIE_MPI_F_GIVEN], &out->level[HIE_MPI_F_FAMILY]);
    out->level[HIE_MPI_F_DOB] = (uint8_t)hie_mpi_date_compare(a->dob, b->dob);
    out->level[HIE_MPI_F_STREET] = compare_coarse(a->street, b->street);
    out->level[HIE_MPI_F_CITY] = compare_coarse(a->city, b->city);
    out->level[HIE_MPI_F_POSTCODE] = compare_code(a->postcode, b->postcode);
    out->level[HIE_MPI_F_PHONE] = compare_code(a->phone, b->phone);
    out->level[HIE_MPI_F_EMAIL] = compare_email(a->email, b->email);
    out->level[HIE_MPI_F_NATIONAL_ID] = compare_code(a->national_id, b->national_id);
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        HIE_ASSERT(out->level[f] < hie_mpi_field_levels((enum hie_mpi_field)f));
    }
}

/* ---- the model -------------------------------------------------------------------------- */

/* Spreads mass geometrically over the agreement levels 1..n-1: most on level 1 (exact). */
static void
model_spread(double *dist, unsigned levels, double first, double ratio)
{
    double p = first, total = 0;
    for (unsigned l = 1; l < levels; l++) {
        dist[l] = p;
        total += p;
        p *= ratio;
    }
    for (unsigned l = 1; l < levels; l++) {
        dist[l] /= total;
    }
    dist[0] = 0;
}

/* The date distance levels are common among random pairs, unlike the other partial levels:
 * two people born over ~70 years have birth dates within a year of each other about 3% of the
 * time and within ten years about 25%. The generic 0.05 / (levels - 2) would make a date six
 * years off evidence for a match, and an untrained index linked two people of the same name
 * and street born six years apart (the import integration test). These u values, and
 * "different" taking the rest, make those levels evidence against. */
#define DEFAULT_U_WITHIN_YEAR 0.03
#define DEFAULT_U_WITHIN_DECADE 0.25

static void
default_date_u(double *u)
{
    double rest = 1.0;
    u[HIE_MPI_DATE_WITHIN_YEAR] = DEFAULT_U_WITHIN_YEAR;
    u[HIE_MPI_DATE_WITHIN_DECADE] = DEFAULT_U_WITHIN_DECADE;
    for (unsigned l = 1; l < HIE_MPI_DATE_DIFFERENT; l++) {
        rest -= u[l];
    }
    HIE_ASSERT(rest > 0.5);
    u[HIE_MPI_DATE_DIFFERENT] = rest;
}

void
hie_mpi_model_default(hie_mpi_model_t *model)
{
    HIE_ASSERT(model != NULL);
    memset(model, 0, sizeof(*model));
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        unsigned n = hie_mpi_field_levels((enum hie_mpi_field)f);
        model_spread(model->m[f], n, 0.9, 0.3);
        /* u: random pairs almost always land on the last level ("different") */
        for (unsigned l = 1; l < n; l++) {
            model->u[f][l] = l == n - 1 ? 0.95 : 0.05 / (double)(n - 2);
        }
        model->enabled[f] = true;
    }
    default_date_u(model->u[HIE_MPI_F_DOB]);
    model->lambda = 1e-4;
    model->lambda_candidates = 0.5;
    model->link_probability = 0.95;
    model->review_probability = 0.50;
    model->margin_weight = 2.0;
}

double
hie_mpi_probability(const hie_mpi_model_t *model, double weight)
{
    HIE_ASSERT(model != NULL);
    double prior = log2(model->lambda / (1.0 - model->lambda));
    double w = weight + prior;
    if (w > 60) {
        return 1.0;
    }
    if (w < -60) {
        return 0.0;
    }
    double odds = exp2(w);
    return odds / (1.0 + odds);
}

double
hie_mpi_weight_exact_name(const hie_mpi_model_t *model, enum hie_mpi_field f, double freq)
{
    HIE_ASSERT(model != NULL && field_is_name(f));
    if (!model->enabled[f]) {
        return 0;
    }
    double u = freq > 0 ? fmax(freq, TF_FLOOR) : model->u[f][HIE_MPI_STR_EXACT];
    return log2(model->m[f][HIE_MPI_STR_EXACT] / u);
}

/* True when s has a NUL within its cap bytes (a field of a person record). */
static bool
field_terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

void
hie_mpi_person_prepare(hie_mpi_person_t *p)
{
    HIE_ASSERT(p != NULL);
    HIE_ASSERT(field_terminated(p->given, sizeof(p->given)));
    HIE_ASSERT(field_terminated(p->given_canon, sizeof(p->given_canon)));
    HIE_ASSERT(field_terminated(p->family, sizeof(p->family)));
    hie_mpi_nysiis(p->given, p->given_code, sizeof(p->given_code));
    hie_mpi_nysiis(p->family, p->family_code, sizeof(p->family_code));
    hie_mpi_nysiis(p->given_canon[0] != '\0' ? p->given_canon : p->given, p->canon_code,
        sizeof(p->canon_code));
    p->prepared = HIE_MPI_PERSON_PREPARED;
}

double
hie_mpi_weight(const hie_mpi_model_t *model, const hie_mpi_tf_t *tf, const hie_mpi_person_t *a,
    const hie_mpi_vector_t *v, hie_mpi_contribution_t *explain)
{
    HIE_ASSERT(model != NULL && a != NULL && v != NULL);
    double total = 0;
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        unsigned l = v->level[f];
        HIE_ASSERT(l < hie_mpi_field_levels((enum hie_mpi_field)f));
        double w = 0;
        if (l != 0 && model->enabled[f]) {
            double u = model->u[f][l];
            if (tf != NULL && l == HIE_MPI_STR_EXACT && field_is_name((enum hie_mpi_field)f)) {
                const char *value = f == HIE_MPI_F_GIVEN ? a->given : a->family;
                double freq = hie_mpi_tf_frequency(tf, (enum hie_mpi_field)f, value);
                u = freq > 0 ? fmax(freq, TF_FLOOR) : u;
            }
            w = log2(model->m[f][l] / u);
        }
        if (explain != NULL) {
            explain[f].level = (uint8_t)l;
            explain[f].weight = w;
        }
        total += w;
    }
    return total;
}

void
hie_mpi_weights_fill(const hie_mpi_model_t *model, hie_mpi_weights_t *t)
{
    HIE_ASSERT(model != NULL && t != NULL);
    memset(t, 0, sizeof(*t));
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        unsigned levels = hie_mpi_field_levels((enum hie_mpi_field)f);
        for (unsigned l = 1; l < levels && model->enabled[f]; l++) {
            t->w[f][l] = log2(model->m[f][l] / model->u[f][l]);
        }
    }
}

double
hie_mpi_weight_table(const hie_mpi_weights_t *t, const hie_mpi_vector_t *v,
    hie_mpi_contribution_t *explain)
{
    HIE_ASSERT(t != NULL && v != NULL);
    double total = 0;
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        unsigned l = v->level[f];
        HIE_ASSERT(l < hie_mpi_field_levels((enum hie_mpi_field)f));
        double w = t->w[f][l];
        if (explain != NULL) {
            explain[f].level = (uint8_t)l;
            explain[f].weight = w;
        }
        total += w;
    }
    return total;
}

/* ---- the decision ----------------------------------------------------------------------- */

_Static_assert(COARSE_DIFFERENT == HIE_MPI_CODE_DIFFERENT, "the public level is the code's");

bool
hie_mpi_ids_conflict(const hie_mpi_contribution_t explain[HIE_MPI_FIELD_COUNT])
{
    unsigned dob = explain[HIE_MPI_F_DOB].level;
    return explain[HIE_MPI_F_NATIONAL_ID].level == HIE_MPI_CODE_DIFFERENT &&
           (dob == HIE_MPI_DATE_WITHIN_YEAR || dob == HIE_MPI_DATE_WITHIN_DECADE ||
            dob == HIE_MPI_DATE_DIFFERENT);
}

void
hie_mpi_decide(const hie_mpi_model_t *model, const double *weights, const bool *conflict,
    size_t count, hie_mpi_decision_t *out)
{
    HIE_ASSERT(model != NULL && out != NULL);
    HIE_ASSERT(weights != NULL || count == 0);
    memset(out, 0, sizeof(*out));
    out->outcome = HIE_MPI_OUTCOME_NEW;
    out->rule = "new: no candidate";
    if (count == 0) {
        return;
    }
    double p1 = hie_mpi_probability(model, weights[0]);
    if (p1 < model->review_probability) {
        out->rule = "new: best candidate below the review threshold";
        return;
    }
    out->outcome = HIE_MPI_OUTCOME_REVIEW;
    out->rule = "review: between the review and link thresholds";
    if (p1 < model->link_probability) {
        return;
    }
    if (conflict != NULL && conflict[0]) {
        out->rule = "review: at the link threshold, but the national ids and birth dates differ";
        return;
    }
    size_t fold = 0;
    while (fold + 1 < count && (conflict == NULL || !conflict[fold + 1]) &&
           hie_mpi_probability(model, weights[fold + 1]) >= model->link_probability) {
        HIE_ASSERT(weights[fold + 1] <= weights[fold]);
        fold++;
    }
    if (fold + 1 < count) { /* the first one below the link threshold */
        double w = weights[fold + 1];
        HIE_ASSERT(w <= weights[fold]);
        if (hie_mpi_probability(model, w) >= model->review_probability &&
            weights[0] - w < model->margin_weight) {
            out->rule = "review: runner-up within the margin";
            return;
        }
    }
    out->outcome = HIE_MPI_OUTCOME_LINK;
    out->fold_count = fold < HIE_MPI_FOLD_MAX ? fold : HIE_MPI_FOLD_MAX;
    out->rule = fold > 0 ? "auto-link: at or above the link threshold with several enterprise "
                           "ids, merged into the best"
                         : "auto-link: probability at or above the link threshold";
}

void
hie_mpi_composite_init(hie_mpi_composite_t *c)
{
    HIE_ASSERT(c != NULL);
    memset(c, 0, sizeof(*c));
}

void
hie_mpi_composite_add(hie_mpi_composite_t *c,
    const hie_mpi_contribution_t explain[HIE_MPI_FIELD_COUNT])
{
    HIE_ASSERT(c != NULL && explain != NULL);
    _Static_assert(HIE_MPI_FIELD_COUNT <= 32u, "a field bit fits in have");
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        HIE_ASSERT(explain[f].level < hie_mpi_field_levels((enum hie_mpi_field)f));
        if (explain[f].level == 0) {
            HIE_ASSERT(explain[f].weight == 0.0);
            continue;
        }
        if (!(c->have & (1u << f)) || explain[f].weight > c->best[f].weight) {
            c->best[f] = explain[f];
            c->have |= 1u << f;
        }
    }
    c->records++;
}

double
hie_mpi_composite_weight(const hie_mpi_composite_t *c,
    hie_mpi_contribution_t explain[HIE_MPI_FIELD_COUNT])
{
    HIE_ASSERT(c != NULL);
    HIE_ASSERT(c->records > 0);
    double w = 0;
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        hie_mpi_contribution_t one = {0, 0.0};
        if (c->have & (1u << f)) {
            one = c->best[f];
        }
        w += one.weight;
        if (explain != NULL) {
            explain[f] = one;
        }
    }
    return w;
}

/* ---- u from random pairs ---------------------------------------------------------------- */

static uint64_t
rng_next(uint64_t *state)
{
    /* splitmix64: small, fast, and deterministic for a seed */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int
hie_mpi_u_estimate(hie_mpi_model_t *model, const hie_mpi_person_t *persons, size_t count,
    size_t samples, uint64_t seed)
{
    HIE_ASSERT(model != NULL && persons != NULL);
    if (count < 2 || samples == 0) {
        return HIE_EINVAL;
    }
    double n[HIE_MPI_FIELD_COUNT][HIE_MPI_LEVELS_MAX] = {{0}};
    uint64_t state = seed;
    for (size_t s = 0; s < samples; s++) {
        size_t i = (size_t)(rng_next(&state) % count);
        size_t j = (size_t)(rng_next(&state) % (count - 1));
        j += j >= i; /* j != i */
        hie_mpi_vector_t v;
        hie_mpi_compare(&persons[i], &persons[j], &v);
        for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
            n[f][v.level[f]] += 1;
        }
    }
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        unsigned levels = hie_mpi_field_levels((enum hie_mpi_field)f);
        double total = 0;
        for (unsigned l = 1; l < levels; l++) {
            total += n[f][l] + 0.5; /* add-half smoothing: no level is impossible */
        }
        for (unsigned l = 1; l < levels; l++) {
            model->u[f][l] = (n[f][l] + 0.5) / total;
        }
    }
    return 0;
}

/* ---- m by EM ---------------------------------------------------------------------------- */

/* The logarithms em_posterior() sums, taken once per EM round rather than once per vector and
 * field (the same log() calls on the same values, so the sums are bit-for-bit those of the
 * direct computation). A field that does not count has 0 in both tables. */
struct em_logs {
    double lambda_m, lambda_u;
    double lm[HIE_MPI_FIELD_COUNT][HIE_MPI_LEVELS_MAX];
    double lu[HIE_MPI_FIELD_COUNT][HIE_MPI_LEVELS_MAX];
    bool used[HIE_MPI_FIELD_COUNT];
};

static void
em_logs_fill(const hie_mpi_model_t *model, uint32_t exclude, struct em_logs *t)
{
    HIE_ASSERT(model->lambda_candidates > 0 && model->lambda_candidates < 1);
    memset(t, 0, sizeof(*t));
    t->lambda_m = log(model->lambda_candidates);
    t->lambda_u = log(1.0 - model->lambda_candidates);
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        t->used[f] = model->enabled[f] && !(exclude & (1u << f));
        unsigned levels = hie_mpi_field_levels((enum hie_mpi_field)f);
        for (unsigned l = 1; l < levels && t->used[f]; l++) {
            t->lm[f][l] = log(model->m[f][l]);
            t->lu[f][l] = log(model->u[f][l]);
        }
    }
}

static double
em_posterior(const struct em_logs *t, const hie_mpi_vector_t *v)
{
    double lm = t->lambda_m, lu = t->lambda_u;
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        unsigned l = v->level[f];
        if (l != 0 && t->used[f]) {
            lm += t->lm[f][l];
            lu += t->lu[f][l];
        }
    }
    double d = lu - lm;
    return d > 700 ? 0.0 : 1.0 / (1.0 + exp(d));
}

/* One EM round over model->lambda_candidates; fields in exclude are neither used nor
 * updated (they decided which pairs are candidates). Returns the largest parameter change. */
static double
em_round(hie_mpi_model_t *model, const hie_mpi_vector_t *vectors, size_t count,
    uint32_t exclude)
{
    double acc[HIE_MPI_FIELD_COUNT][HIE_MPI_LEVELS_MAX] = {{0}};
    double post_sum = 0;
    struct em_logs logs;
    em_logs_fill(model, exclude, &logs);
    for (size_t i = 0; i < count; i++) {
        double p = em_posterior(&logs, &vectors[i]);
        post_sum += p;
        for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
            acc[f][vectors[i].level[f]] += p;
        }
    }
    double lc = fmin(fmax(post_sum / (double)count, PROB_FLOOR), 1.0 - PROB_FLOOR);
    double delta = fabs(model->lambda_candidates - lc);
    model->lambda_candidates = lc;
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        unsigned levels = hie_mpi_field_levels((enum hie_mpi_field)f);
        double total = 0;
        if (exclude & (1u << f)) {
            continue;
        }
        for (unsigned l = 1; l < levels; l++) {
            total += acc[f][l] + EM_M_PSEUDO_COUNT;
        }
        for (unsigned l = 1; l < levels && total > 0; l++) {
            double m = (acc[f][l] + EM_M_PSEUDO_COUNT) / total;
            delta = fmax(delta, fabs(m - model->m[f][l]));
            model->m[f][l] = m;
        }
    }
    return delta;
}

int
hie_mpi_em_train(hie_mpi_model_t *model, const hie_mpi_vector_t *vectors, size_t count,
    uint32_t exclude, unsigned iterations, unsigned *rounds_out)
{
    HIE_ASSERT(model != NULL);
    if (rounds_out != NULL) {
        *rounds_out = 0;
    }
    if (vectors == NULL || count == 0) {
        return HIE_EINVAL;
    }
    model->lambda_candidates = 0.5; /* EM's start: no opinion */
    unsigned r = 0;
    while (r < iterations) {
        r++;
        if (em_round(model, vectors, count, exclude) < 1e-6) {
            break;
        }
    }
    model->version++;
    if (rounds_out != NULL) {
        *rounds_out = r;
    }
    return 0;
}

int
hie_mpi_em_prior(hie_mpi_model_t *model, const hie_mpi_vector_t *vectors, size_t count,
    double candidate_fraction, unsigned iterations)
{
    HIE_ASSERT(model != NULL);
    if (vectors == NULL || count == 0 || !(candidate_fraction > 0 && candidate_fraction <= 1)) {
        return HIE_EINVAL;
    }
    model->lambda_candidates = 0.5;
    for (unsigned r = 0; r < iterations; r++) {
        double sum = 0;
        struct em_logs logs;
        em_logs_fill(model, 0, &logs);
        for (size_t i = 0; i < count; i++) {
            sum += em_posterior(&logs, &vectors[i]);
        }
        double lc = fmin(fmax(sum / (double)count, PROB_FLOOR), 1.0 - PROB_FLOOR);
        bool done = fabs(lc - model->lambda_candidates) < 1e-7;
        model->lambda_candidates = lc;
        if (done) {
            break;
        }
    }
    model->lambda = fmin(fmax(model->lambda_candidates * candidate_fraction, 1e-12), 0.5);
    return 0;
}

/* ---- term frequencies ------------------------------------------------------------------- */

struct tf_slot {
    uint64_t hash; /* 0: empty */
    uint32_t count;
};

struct hie_mpi_tf {
    struct tf_slot *slots;
    size_t cap;      /* power of two */
    size_t used;
    uint64_t total[2];
};

int
hie_mpi_tf_create(hie_mpi_tf_t **out, size_t capacity)
{
    HIE_ASSERT(out != NULL);
    *out = NULL;
    size_t cap = 1024;
    while (cap < capacity * 2 && cap < ((size_t)1 << 40)) {
        cap *= 2;
    }
    hie_mpi_tf_t *tf = hie_mem_calloc(1, sizeof(*tf));
    if (tf == NULL) {
        return HIE_ENOMEM;
    }
    tf->slots = hie_mem_calloc(cap, sizeof(*tf->slots));
    if (tf->slots == NULL) {
        hie_mem_free(tf, sizeof(*tf));
        return HIE_ENOMEM;
    }
    tf->cap = cap;
    *out = tf;
    return 0;
}

void
hie_mpi_tf_destroy(hie_mpi_tf_t **tfp)
{
    HIE_ASSERT(tfp != NULL);
    if (*tfp == NULL) {
        return;
    }
    hie_mem_free((*tfp)->slots, (*tfp)->cap * sizeof(*(*tfp)->slots));
    hie_mem_free(*tfp, sizeof(**tfp));
    *tfp = NULL;
}

static uint64_t
tf_hash(enum hie_mpi_field f, const char *value)
{
    static const uint8_t key[crypto_shorthash_KEYBYTES] = "hie-mpi-tf-v1...";
    uint8_t buf[HIE_MPI_FIELD_BYTES + 1];
    size_t len = strnlen(value, HIE_MPI_FIELD_BYTES - 1);
    buf[0] = (uint8_t)f;
    memcpy(buf + 1, value, len);
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, buf, len + 1, key);
    uint64_t v;
    memcpy(&v, h, sizeof(v));
    return v == 0 ? 1 : v;
}

static struct tf_slot *
tf_find(struct tf_slot *slots, size_t cap, uint64_t hash)
{
    size_t mask = cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) { /* never full: see tf_slot_count */
        if (slots[i].hash == hash || slots[i].hash == 0) {
            return &slots[i];
        }
    }
}

static int
tf_grow(hie_mpi_tf_t *tf)
{
    size_t ncap = tf->cap * 2;
    struct tf_slot *n = hie_mem_calloc(ncap, sizeof(*n));
    if (n == NULL) {
        return HIE_ENOMEM;
    }
    for (size_t i = 0; i < tf->cap; i++) {
        if (tf->slots[i].hash != 0) {
            *tf_find(n, ncap, tf->slots[i].hash) = tf->slots[i];
        }
    }
    hie_mem_free(tf->slots, tf->cap * sizeof(*tf->slots));
    tf->slots = n;
    tf->cap = ncap;
    return 0;
}

/* Empties slot s (its count is 0) by backward shift: each later slot of the run that may
 * move back over the hole does, so lookups never meet a hole before their value. */
static void
tf_remove(hie_mpi_tf_t *tf, struct tf_slot *s)
{
    size_t mask = tf->cap - 1, i = (size_t)(s - tf->slots);
    HIE_ASSERT(s->hash != 0 && s->count == 0);
    for (size_t j = (i + 1) & mask; tf->slots[j].hash != 0; j = (j + 1) & mask) {
        size_t home = tf->slots[j].hash & mask;
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            tf->slots[i] = tf->slots[j];
            i = j;
        }
    }
    tf->slots[i] = (struct tf_slot){0, 0};
    tf->used--;
}

/* One more (delta 1) or one fewer (-1) value of slot hash in field f. A value counted down to
 * 0 leaves the table (it held every distinct value ever counted: a member renaming one record
 * again and again grew it, and its rehashes on the log thread, until a restart). */
static int
tf_slot_count(hie_mpi_tf_t *tf, enum hie_mpi_field f, uint64_t hash, int delta)
{
    HIE_ASSERT(hash != 0 && (delta == 1 || delta == -1) && field_is_name(f));
    if (tf->used * 2 >= tf->cap) {
        int rc = tf_grow(tf);
        if (rc != 0) {
            return rc;
        }
    }
    struct tf_slot *s = tf_find(tf->slots, tf->cap, hash);
    uint64_t *total = &tf->total[f == HIE_MPI_F_FAMILY];
    if (delta < 0 && (s->count == 0 || *total == 0)) {
        return HIE_ECORRUPT;
    }
    if (s->hash == 0) {
        s->hash = hash;
        tf->used++;
    }
    s->count = delta < 0 ? s->count - 1 : s->count + 1;
    *total = delta < 0 ? *total - 1 : *total + 1;
    if (s->count == 0) {
        tf_remove(tf, s);
    }
    return 0;
}

static int
tf_add_one(hie_mpi_tf_t *tf, enum hie_mpi_field f, const char *value)
{
    return value[0] == '\0' ? 0 : tf_slot_count(tf, f, tf_hash(f, value), 1);
}

int
hie_mpi_tf_add(hie_mpi_tf_t *tf, const hie_mpi_person_t *person)
{
    HIE_ASSERT(tf != NULL && person != NULL);
    int rc = tf_add_one(tf, HIE_MPI_F_GIVEN, person->given);
    return rc != 0 ? rc : tf_add_one(tf, HIE_MPI_F_FAMILY, person->family);
}

static double
tf_slot_frequency(const hie_mpi_tf_t *tf, enum hie_mpi_field f, uint64_t hash,
    uint64_t *total)
{
    *total = tf->total[f == HIE_MPI_F_FAMILY];
    const struct tf_slot *s = tf_find(tf->slots, tf->cap, hash);
    return *total != 0 && s->hash != 0 ? (double)s->count / (double)*total : 0;
}

double
hie_mpi_tf_frequency(const hie_mpi_tf_t *tf, enum hie_mpi_field f, const char *value)
{
    HIE_ASSERT(tf != NULL && field_is_name(f));
    uint64_t total = 0;
    return value[0] == '\0' ? 0 : tf_slot_frequency(tf, f, tf_hash(f, value), &total);
}

/* A stored key's slot: the key (already a keyed hash of the value) told apart by field. */
static uint64_t
tf_key_slot(enum hie_mpi_field f, uint64_t key)
{
    uint64_t h = key ^ ((uint64_t)f + 1u) * 0x9e3779b97f4a7c15ull;
    return h == 0 ? 1 : h;
}

size_t
hie_mpi__tf_used(const hie_mpi_tf_t *tf, size_t *capacity)
{
    HIE_ASSERT(tf != NULL && capacity != NULL);
    *capacity = tf->cap;
    return tf->used;
}

int
hie_mpi__tf_count(hie_mpi_tf_t *tf, enum hie_mpi_field f, uint64_t key, int delta)
{
    HIE_ASSERT(tf != NULL);
    return tf_slot_count(tf, f, tf_key_slot(f, key), delta);
}

double
hie_mpi__tf_key_frequency(const hie_mpi_tf_t *tf, enum hie_mpi_field f, uint64_t key,
    uint64_t *total)
{
    HIE_ASSERT(tf != NULL && field_is_name(f) && total != NULL);
    return tf_slot_frequency(tf, f, tf_key_slot(f, key), total);
}

/* ---- blocking keys ---------------------------------------------------------------------- */

/* A block key's text, built without printf (it was a fifth of the keys' cost, and every feed
 * computes its keys more than once): tag, then fields. Fields are bounded by the person's
 * buffers, so the text never fills the buffer; if it did, it would be cut at the end as
 * snprintf cut it, so the bytes (and the keys, test_match.c) are unchanged. */
#define KEY_TEXT_BYTES (2u * HIE_MPI_FIELD_BYTES)
typedef struct key_text {
    char buf[KEY_TEXT_BYTES];
    size_t len;
} key_text_t;

static void
kt_bytes(key_text_t *t, const char *s, size_t n)
{
    size_t room = KEY_TEXT_BYTES - 1 - t->len;
    n = n < room ? n : room;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
}

static key_text_t *
kt_str(key_text_t *t, const char *s)
{
    kt_bytes(t, s, strlen(s));
    return t;
}

/* At most n bytes of s (printf's %.*s). */
static key_text_t *
kt_strn(key_text_t *t, const char *s, size_t n)
{
    kt_bytes(t, s, strnlen(s, n));
    return t;
}

static key_text_t *
kt_chr(key_text_t *t, char c)
{
    kt_bytes(t, &c, 1);
    return t;
}

/* v in decimal, zero-padded to width digits (0: as %u). */
static key_text_t *
kt_uint(key_text_t *t, uint32_t v, unsigned width)
{
    char d[10];
    unsigned n = 0;
    do {
        d[sizeof(d) - 1 - n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0 && n < sizeof(d));
    while (n < width && n < sizeof(d)) {
        d[sizeof(d) - 1 - n++] = '0';
    }
    kt_bytes(t, d + sizeof(d) - n, n);
    return t;
}

/* Starts a text with its tag and the separator: "tag|". */
static key_text_t *
kt_tag(key_text_t *t, const char *tag)
{
    t->len = 0;
    return kt_chr(kt_str(t, tag), '|');
}

static key_text_t *
kt_sep(key_text_t *t)
{
    return kt_chr(t, '|');
}

static uint64_t
block_hash(const uint8_t secret[16], const key_text_t *t)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const uint8_t *)t->buf, t->len, secret);
    uint64_t v;
    memcpy(&v, h, sizeof(v));
    return v == 0 ? 1 : v;
}

/* Keys 9-14. The keys whose blocks grow with the index (birth date alone, city + birth year,
 * birth month + family initial, a name code + birth year) are narrowed by a name initial, or
 * swapped for day and month + a name code: at 1M generated persons their blocks held 20-64
 * records, most of the 118 candidates per feed, for few pairs no other key found. The old
 * NYSIIS(family) + two given bytes key is key 0 with the birth decade. */
static void
block_keys_loose(const hie_mpi_person_t *p, const uint8_t key_secret[16], const char *fam,
    const char *giv, uint64_t keys[HIE_MPI_BLOCK_KEYS])
{
    key_text_t t;
    uint32_t month = p->dob / 100u, year = p->dob / 10000u;
    if (p->city[0] != '\0' && giv[0] != '\0') {
        keys[9] = block_hash(key_secret, kt_str(kt_sep(kt_str(kt_tag(&t, "11"), p->city)), giv));
    }
    if (p->dob != 0 && fam[0] != '\0') { /* a year typo: day and month + family code */
        kt_uint(kt_tag(&t, "16"), p->dob % 10000u, 4);
        keys[10] = block_hash(key_secret, kt_str(kt_sep(&t), fam));
    }
    if (p->street[0] != '\0') {
        keys[11] = block_hash(key_secret, kt_str(kt_tag(&t, "12"), p->street));
    }
    if (p->dob != 0 && p->family[0] != '\0' && p->given[0] != '\0') {
        kt_sep(kt_uint(kt_tag(&t, "13"), month, 0));
        kt_chr(kt_sep(kt_chr(&t, p->family[0])), p->given[0]);
        keys[12] = block_hash(key_secret, &t);
    }
    if (p->city[0] != '\0' && p->dob != 0 && p->given[0] != '\0') {
        kt_sep(kt_uint(kt_sep(kt_str(kt_tag(&t, "14"), p->city)), year, 0));
        keys[13] = block_hash(key_secret, kt_chr(&t, p->given[0]));
    }
    const char *at = strchr(p->email, '@');
    if (at != NULL && at - p->email >= 3) { /* the local part */
        keys[14] = block_hash(key_secret, kt_strn(kt_tag(&t, "15"), p->email,
                                              (size_t)(at - p->email)));
    }
}

/* Keys 15-17, the broad keys: one field each, capped by hie_mpi_block_key_cap(). */
static void
block_keys_broad(const hie_mpi_person_t *p, const uint8_t key_secret[16], const char *fam,
    const char *giv, uint64_t keys[HIE_MPI_BLOCK_KEYS])
{
    key_text_t t;
    _Static_assert(HIE_MPI_BLOCK_BROAD_FIRST == 15u, "the broad keys are 15-17");
    if (fam[0] != '\0') {
        keys[15] = block_hash(key_secret, kt_str(kt_tag(&t, "17"), fam));
    }
    if (giv[0] != '\0') {
        keys[16] = block_hash(key_secret, kt_str(kt_tag(&t, "18"), giv));
    }
    if (p->dob != 0) {
        keys[17] = block_hash(key_secret, kt_uint(kt_tag(&t, "19"), p->dob, 0));
    }
}

/* Keys 5-8. Key 5 stays a birth-date key: a training session blocks on it (train.c,
 * sessions[]), as another does on key 1. */
static void
block_keys_more(const hie_mpi_person_t *p, const uint8_t key_secret[16], const char *fam,
    const char *giv, uint64_t keys[HIE_MPI_BLOCK_KEYS])
{
    key_text_t t;
    if (p->dob != 0 && p->family[0] != '\0') {
        kt_sep(kt_uint(kt_tag(&t, "6"), p->dob, 0));
        keys[5] = block_hash(key_secret, kt_chr(&t, p->family[0]));
    }
    if (giv[0] != '\0' && p->dob != 0) { /* a year typo: day and month + given code */
        kt_sep(kt_uint(kt_tag(&t, "7"), p->dob % 10000u, 4));
        keys[6] = block_hash(key_secret, kt_str(&t, giv));
    }
    const char *contact = p->email[0] != '\0' ? p->email : p->phone;
    if (contact[0] != '\0') {
        keys[7] = block_hash(key_secret, kt_str(kt_tag(&t, "8"), contact));
    }
    if (fam[0] != '\0' && p->postcode[0] != '\0') {
        keys[8] = block_hash(key_secret, kt_str(kt_sep(kt_str(kt_tag(&t, "9"), fam)), p->postcode));
    }
    block_keys_loose(p, key_secret, fam, giv, keys);
    block_keys_broad(p, key_secret, fam, giv, keys);
}

void
hie_mpi_block_keys(const hie_mpi_person_t *p, const uint8_t key_secret[16],
    uint64_t keys[HIE_MPI_BLOCK_KEYS])
{
    HIE_ASSERT(p != NULL && key_secret != NULL && keys != NULL);
    HIE_ASSERT(p->prepared == HIE_MPI_PERSON_PREPARED);
    HIE_DEBUG_ASSERT(person_codes_fresh(p));
    const char *fam = p->family_code, *giv = p->canon_code;
    key_text_t t;
    memset(keys, 0, HIE_MPI_BLOCK_KEYS * sizeof(*keys));
    if (fam[0] != '\0' && p->given[0] != '\0' && p->dob != 0) {
        /* the decade, not the year: a year typo stays in the block; the given name's first
         * two bytes split a common family name's decade */
        kt_sep(kt_strn(kt_sep(kt_str(kt_tag(&t, "1"), fam)), p->given, 2));
        keys[0] = block_hash(key_secret, kt_uint(&t, p->dob / 100000u, 0));
    }
    if (p->given[0] != '\0' && p->dob != 0) {
        kt_sep(kt_chr(kt_tag(&t, "2"), p->given[0]));
        keys[1] = block_hash(key_secret, kt_uint(&t, p->dob, 0));
    }
    if (p->postcode[0] != '\0' && p->dob != 0) {
        kt_sep(kt_str(kt_tag(&t, "3"), p->postcode));
        keys[2] = block_hash(key_secret, kt_uint(&t, p->dob, 0));
    }
    if (fam[0] != '\0' && giv[0] != '\0') {
        /* order-free, so a record with given and family swapped still meets its twin */
        bool swap = strcmp(giv, fam) > 0;
        kt_sep(kt_str(kt_tag(&t, "4"), swap ? fam : giv));
        keys[3] = block_hash(key_secret, kt_str(&t, swap ? giv : fam));
    }
    if (p->national_id[0] != '\0') {
        keys[4] = block_hash(key_secret, kt_str(kt_tag(&t, "5"), p->national_id));
    }
    block_keys_more(p, key_secret, fam, giv, keys);
}
