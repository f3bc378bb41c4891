/*
 * test_match.c - the Fellegi-Sunter model (mpi/src/match.c): comparison vectors, weights and
 * their explanation, term frequencies, u from random pairs, EM on a constructed data set with
 * known parameters, blocking keys.
 */
#include "hie/mpi.h"
#include "../test_util.h"

#include "../../../mpi/src/mpi_int.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>

static hie_mpi_person_t
person(const char *given, const char *family, uint32_t dob, const char *postcode)
{
    hie_mpi_person_t p;
    memset(&p, 0, sizeof(p));
    snprintf(p.given, sizeof(p.given), "%s", given);
    snprintf(p.family, sizeof(p.family), "%s", family);
    if (given[0] != '\0') {
        cr_assert_eq(hie_mpi_given_canonical(p.given, p.given_canon, sizeof(p.given_canon)), 0);
    }
    p.dob = dob;
    snprintf(p.postcode, sizeof(p.postcode), "%s", postcode);
    hie_mpi_person_prepare(&p);
    return p;
}

static void
init(void)
{
    cr_assert_geq(sodium_init(), 0);
}

TestSuite(mpi_match, .init = init);

Test(mpi_match, identical_records_agree_exactly_and_missing_is_level_zero)
{
    hie_mpi_person_t a = person("william", "smith", 19700101, "4000");
    hie_mpi_vector_t v;
    hie_mpi_compare(&a, &a, &v);
    cr_assert_eq(v.level[HIE_MPI_F_GIVEN], HIE_MPI_STR_EXACT);
    cr_assert_eq(v.level[HIE_MPI_F_FAMILY], HIE_MPI_STR_EXACT);
    cr_assert_eq(v.level[HIE_MPI_F_DOB], HIE_MPI_DATE_EXACT);
    cr_assert_eq(v.level[HIE_MPI_F_POSTCODE], 1);
    cr_assert_eq(v.level[HIE_MPI_F_STREET], 0, "empty street is missing");
    cr_assert_eq(v.level[HIE_MPI_F_NATIONAL_ID], 0);
    cr_assert_str_eq(hie_mpi_level_name(HIE_MPI_F_DOB, HIE_MPI_DATE_EXACT), "exact");
    cr_assert_str_eq(hie_mpi_field_name(HIE_MPI_F_NATIONAL_ID), "national_id");
}

Test(mpi_match, nickname_and_swapped_names_are_strong_agreement)
{
    hie_mpi_person_t a = person("william", "smith", 19700101, "");
    hie_mpi_person_t b = person("bill", "smith", 19700101, "");
    hie_mpi_vector_t v;
    hie_mpi_compare(&a, &b, &v);
    cr_assert_eq(v.level[HIE_MPI_F_GIVEN], HIE_MPI_STR_JW_HIGH, "bill is william");
    hie_mpi_person_t c = person("isla", "hall", 19850207, "");
    hie_mpi_person_t d = person("hall", "isla", 19850207, "");
    hie_mpi_compare(&c, &d, &v);
    cr_assert_eq(v.level[HIE_MPI_F_GIVEN], HIE_MPI_STR_JW_HIGH);
    cr_assert_eq(v.level[HIE_MPI_F_FAMILY], HIE_MPI_STR_JW_HIGH);
}

Test(mpi_match, swapped_names_with_a_typo_still_agree)
{
    hie_mpi_vector_t v;
    hie_mpi_person_t a = person("caleb", "rwoe", 19921120, "");
    hie_mpi_person_t b = person("rowe", "caleb", 19921220, "");
    hie_mpi_compare(&a, &b, &v);
    cr_assert_eq(v.level[HIE_MPI_F_GIVEN], HIE_MPI_STR_JW_HIGH, "exact across, demoted");
    cr_assert_eq(v.level[HIE_MPI_F_FAMILY], HIE_MPI_STR_DL1, "rwoe / rowe across");
    hie_mpi_compare(&b, &a, &v);
    cr_assert_eq(v.level[HIE_MPI_F_GIVEN], HIE_MPI_STR_DL1, "symmetric in the pair");
    cr_assert_eq(v.level[HIE_MPI_F_FAMILY], HIE_MPI_STR_JW_HIGH);
    /* nothing alike across: the straight levels stand */
    hie_mpi_person_t c = person("anna", "berg", 19921120, "");
    hie_mpi_person_t d = person("carl", "dunn", 19921120, "");
    hie_mpi_compare(&c, &d, &v);
    cr_assert_eq(v.level[HIE_MPI_F_GIVEN], HIE_MPI_STR_DIFFERENT);
    cr_assert_eq(v.level[HIE_MPI_F_FAMILY], HIE_MPI_STR_DIFFERENT);
    /* one name missing: no swap is tried (caleb is a's given name) */
    hie_mpi_person_t e = person("", "caleb", 19921120, "");
    hie_mpi_compare(&e, &a, &v);
    cr_assert_eq(v.level[HIE_MPI_F_GIVEN], HIE_MPI_STR_MISSING);
    cr_assert_eq(v.level[HIE_MPI_F_FAMILY], HIE_MPI_STR_DIFFERENT);
    /* a straight agreement is never traded for a cross one */
    hie_mpi_person_t f = person("rowe", "rowe", 19921120, "");
    hie_mpi_compare(&f, &b, &v);
    cr_assert_eq(v.level[HIE_MPI_F_GIVEN], HIE_MPI_STR_EXACT);
}

/* hie_mpi_decide() under the default thresholds (link 0.95, review 0.50, margin 2 bits). */
Test(mpi_match, decide_links_merges_reviews_and_keeps_new)
{
    hie_mpi_model_t m;
    hie_mpi_model_default(&m);
    double prior = -log2(m.lambda / (1.0 - m.lambda));
    double link = prior + 6.0, review = prior + 1.0, low = prior - 3.0; /* p .98, .67, .11 */
    hie_mpi_decision_t d;
    hie_mpi_decide(&m, NULL, NULL, 0, &d);
    cr_assert_eq(d.outcome, HIE_MPI_OUTCOME_NEW);
    cr_assert_str_eq(d.rule, "new: no candidate");
    double w1[] = {low};
    hie_mpi_decide(&m, w1, NULL, 1, &d);
    cr_assert_eq(d.outcome, HIE_MPI_OUTCOME_NEW);
    double w2[] = {review, low};
    hie_mpi_decide(&m, w2, NULL, 2, &d);
    cr_assert_eq(d.outcome, HIE_MPI_OUTCOME_REVIEW);
    cr_assert_eq(d.fold_count, 0);
    double w3[] = {link + 3, link, low};
    hie_mpi_decide(&m, w3, NULL, 3, &d);
    cr_assert_eq(d.outcome, HIE_MPI_OUTCOME_LINK, "%s", d.rule);
    cr_assert_eq(d.fold_count, 1, "the second EUID also reaches the link threshold");
    double w4[] = {prior + 5.0, prior + 3.5}; /* p .97 and .92: 1.5 bits apart */
    hie_mpi_decide(&m, w4, NULL, 2, &d);
    cr_assert_eq(d.outcome, HIE_MPI_OUTCOME_REVIEW, "a runner-up within the margin");
    cr_assert_str_eq(d.rule, "review: runner-up within the margin");
    double w5[] = {link + 3, review};
    hie_mpi_decide(&m, w5, NULL, 2, &d);
    cr_assert_eq(d.outcome, HIE_MPI_OUTCOME_LINK, "the runner-up is far behind");
    cr_assert_eq(d.fold_count, 0);
    double w6[HIE_MPI_FOLD_MAX + 3];
    for (size_t i = 0; i < HIE_ARRAY_LEN(w6); i++) {
        w6[i] = link + 10 - (double)i * 0.1;
    }
    hie_mpi_decide(&m, w6, NULL, HIE_ARRAY_LEN(w6), &d);
    cr_assert_eq(d.outcome, HIE_MPI_OUTCOME_LINK);
    cr_assert_eq(d.fold_count, HIE_MPI_FOLD_MAX, "folds are bounded");
}

/* A candidate whose national ids differ from the record's is never linked or merged on its
 * weight: the best goes to review, and merging stops before a conflicting one. */
Test(mpi_match, decide_never_links_across_different_national_ids)
{
    hie_mpi_model_t m;
    hie_mpi_model_default(&m);
    double prior = -log2(m.lambda / (1.0 - m.lambda));
    double link = prior + 6.0;
    hie_mpi_decision_t d;
    double w[] = {link + 12, link + 11, link + 10};
    bool best[] = {true, false, false}, second[] = {false, true, false};
    hie_mpi_decide(&m, w, best, 3, &d);
    cr_assert_eq(d.outcome, HIE_MPI_OUTCOME_REVIEW, "%s", d.rule);
    cr_assert_str_eq(d.rule, "review: at the link threshold, but the national ids and birth "
        "dates differ");
    hie_mpi_decide(&m, w, second, 3, &d);
    cr_assert_eq(d.outcome, HIE_MPI_OUTCOME_REVIEW, "a conflicting runner-up within the "
        "margin: %s", d.rule);
    double far[] = {link + 12, link, link - 0.5};
    bool third[] = {false, false, true};
    hie_mpi_decide(&m, far, third, 3, &d);
    cr_assert_eq(d.outcome, HIE_MPI_OUTCOME_LINK, "%s", d.rule);
    cr_assert_eq(d.fold_count, 1, "merging stops before the conflicting third");
    hie_mpi_contribution_t ex[HIE_MPI_FIELD_COUNT] = {{0, 0.0}};
    ex[HIE_MPI_F_NATIONAL_ID].level = HIE_MPI_CODE_DIFFERENT;
    ex[HIE_MPI_F_DOB].level = HIE_MPI_DATE_DIFFERENT;
    cr_assert(hie_mpi_ids_conflict(ex));
    ex[HIE_MPI_F_DOB].level = HIE_MPI_DATE_ONE_DIGIT_OFF; /* a typo: one of them may be too */
    cr_assert_not(hie_mpi_ids_conflict(ex));
    ex[HIE_MPI_F_DOB].level = HIE_MPI_DATE_WITHIN_DECADE;
    ex[HIE_MPI_F_NATIONAL_ID].level = 2; /* one edit apart: a typo */
    cr_assert_not(hie_mpi_ids_conflict(ex));
}

Test(mpi_match, decide_asserts_best_first, .signal = SIGABRT)
{
    hie_mpi_model_t m;
    hie_mpi_model_default(&m);
    double w[] = {40.0, 50.0};
    hie_mpi_decision_t d;
    hie_mpi_decide(&m, w, NULL, 2, &d);
}

Test(mpi_match, composite_takes_each_fields_best_and_a_gap_hides_nothing)
{
    hie_mpi_composite_t c;
    hie_mpi_contribution_t a[HIE_MPI_FIELD_COUNT], b[HIE_MPI_FIELD_COUNT];
    hie_mpi_contribution_t out[HIE_MPI_FIELD_COUNT];
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    a[HIE_MPI_F_GIVEN] = (hie_mpi_contribution_t){HIE_MPI_STR_EXACT, 6.0};
    a[HIE_MPI_F_DOB] = (hie_mpi_contribution_t){HIE_MPI_DATE_DIFFERENT, -4.0};
    b[HIE_MPI_F_GIVEN] = (hie_mpi_contribution_t){HIE_MPI_STR_DIFFERENT, -7.0};
    b[HIE_MPI_F_DOB] = (hie_mpi_contribution_t){HIE_MPI_DATE_EXACT, 8.0};
    b[HIE_MPI_F_CITY] = (hie_mpi_contribution_t){3, -3.5}; /* only b has a city: it counts */
    hie_mpi_composite_init(&c);
    hie_mpi_composite_add(&c, a);
    hie_mpi_composite_add(&c, b);
    cr_assert_eq(c.records, 2);
    double w = hie_mpi_composite_weight(&c, out);
    cr_assert_float_eq(w, 6.0 + 8.0 - 3.5, 1e-12);
    cr_assert_eq(out[HIE_MPI_F_GIVEN].level, HIE_MPI_STR_EXACT);
    cr_assert_eq(out[HIE_MPI_F_DOB].level, HIE_MPI_DATE_EXACT);
    cr_assert_eq(out[HIE_MPI_F_CITY].level, 3, "a's missing city hides b's disagreement not");
    cr_assert_eq(out[HIE_MPI_F_EMAIL].level, 0);
    cr_assert_eq(out[HIE_MPI_F_EMAIL].weight, 0.0);
}

Test(mpi_match, composite_of_nothing_aborts, .signal = SIGABRT)
{
    hie_mpi_composite_t c;
    hie_mpi_composite_init(&c);
    (void)hie_mpi_composite_weight(&c, NULL);
}

Test(mpi_match, weight_is_the_sum_of_its_explanation_and_orders_agreement)
{
    hie_mpi_model_t m;
    hie_mpi_model_default(&m);
    hie_mpi_person_t a = person("maria", "garcia", 19800512, "2000");
    hie_mpi_person_t same = a;
    hie_mpi_person_t typo = person("maria", "garsia", 19800521, "2000");
    hie_mpi_person_t other = person("john", "brown", 19551103, "7000");
    hie_mpi_vector_t v1, v2, v3;
    hie_mpi_compare(&a, &same, &v1);
    hie_mpi_compare(&a, &typo, &v2);
    hie_mpi_compare(&a, &other, &v3);
    hie_mpi_contribution_t ex[HIE_MPI_FIELD_COUNT];
    double w1 = hie_mpi_weight(&m, NULL, &a, &v1, ex);
    double sum = 0;
    for (unsigned f = 0; f < HIE_MPI_FIELD_COUNT; f++) {
        sum += ex[f].weight;
        if (ex[f].level == 0) {
            cr_assert_eq(ex[f].weight, 0.0, "missing field %u weighs", f);
        }
    }
    cr_assert_float_eq(w1, sum, 1e-9);
    double w2 = hie_mpi_weight(&m, NULL, &a, &v2, NULL);
    double w3 = hie_mpi_weight(&m, NULL, &a, &v3, NULL);
    cr_assert_gt(w1, w2);
    cr_assert_gt(w2, w3);
    cr_assert_lt(w3, 0);
    cr_assert_gt(hie_mpi_probability(&m, w1), hie_mpi_probability(&m, w3));
    cr_assert_leq(hie_mpi_probability(&m, 1e9), 1.0);
    cr_assert_geq(hie_mpi_probability(&m, -1e9), 0.0);
    m.enabled[HIE_MPI_F_DOB] = false;
    hie_mpi_weight(&m, NULL, &a, &v1, ex);
    cr_assert_eq(ex[HIE_MPI_F_DOB].weight, 0.0, "a disabled field never contributes");
}

/* Random pairs are often born within ten years of each other: the untrained model must not
 * count a date six years off as evidence for a match (an untrained index linked two people
 * of the same name born six years apart before default_date_u). */
Test(mpi_match, default_model_counts_a_distant_birth_date_against)
{
    hie_mpi_model_t m;
    hie_mpi_model_default(&m);
    hie_mpi_person_t a = person("hiro", "silva", 19370822, "2000");
    hie_mpi_person_t b = person("hiro", "silva", 19311222, "2000");
    hie_mpi_person_t c = person("hiro", "silva", 19361001, "2000");
    hie_mpi_vector_t v;
    hie_mpi_contribution_t ex[HIE_MPI_FIELD_COUNT];
    hie_mpi_compare(&a, &b, &v);
    cr_assert_eq(v.level[HIE_MPI_F_DOB], HIE_MPI_DATE_WITHIN_DECADE);
    (void)hie_mpi_weight(&m, NULL, &a, &v, ex);
    cr_assert_lt(ex[HIE_MPI_F_DOB].weight, -5.0);
    hie_mpi_compare(&a, &c, &v);
    cr_assert_eq(v.level[HIE_MPI_F_DOB], HIE_MPI_DATE_WITHIN_YEAR);
    (void)hie_mpi_weight(&m, NULL, &a, &v, ex);
    cr_assert_lt(ex[HIE_MPI_F_DOB].weight, 0.0);
    double u = 0;
    for (unsigned l = 1; l < HIE_MPI_DATE_LEVEL_COUNT; l++) {
        u += m.u[HIE_MPI_F_DOB][l];
    }
    cr_assert_float_eq(u, 1.0, 1e-9);
}

Test(mpi_match, term_frequency_makes_common_names_weaker_evidence)
{
    hie_mpi_model_t m;
    hie_mpi_model_default(&m);
    hie_mpi_tf_t *tf = NULL;
    cr_assert_eq(hie_mpi_tf_create(&tf, 100), 0);
    for (int i = 0; i < 50; i++) {
        hie_mpi_person_t p = person("anna", "smith", 0, "");
        cr_assert_eq(hie_mpi_tf_add(tf, &p), 0);
    }
    hie_mpi_person_t rare = person("anna", "zygmunt", 0, "");
    cr_assert_eq(hie_mpi_tf_add(tf, &rare), 0);
    cr_assert_gt(hie_mpi_tf_frequency(tf, HIE_MPI_F_FAMILY, "smith"),
        hie_mpi_tf_frequency(tf, HIE_MPI_F_FAMILY, "zygmunt"));
    cr_assert_eq(hie_mpi_tf_frequency(tf, HIE_MPI_F_FAMILY, "nobody"), 0.0);
    hie_mpi_person_t smith = person("anna", "smith", 0, "");
    hie_mpi_vector_t vs, vz;
    hie_mpi_compare(&smith, &smith, &vs);
    hie_mpi_compare(&rare, &rare, &vz);
    hie_mpi_contribution_t es[HIE_MPI_FIELD_COUNT], ez[HIE_MPI_FIELD_COUNT];
    hie_mpi_weight(&m, tf, &smith, &vs, es);
    hie_mpi_weight(&m, tf, &rare, &vz, ez);
    cr_assert_lt(es[HIE_MPI_F_FAMILY].weight, ez[HIE_MPI_F_FAMILY].weight);
    hie_mpi_tf_destroy(&tf);
    cr_assert_null(tf);
}

/* The store's use of the table: counts by stored key, past the sized capacity (it grows), down
 * to zero, never below; the two name fields apart under the same key. */
Test(mpi_match, term_frequency_counts_by_key_grow_and_never_go_below_zero)
{
    hie_mpi_tf_t *tf = NULL;
    cr_assert_eq(hie_mpi_tf_create(&tf, 4), 0);
    for (uint64_t k = 1; k <= 5000; k++) {
        cr_assert_eq(hie_mpi__tf_count(tf, HIE_MPI_F_FAMILY, k * 0x10001u, 1), 0);
    }
    cr_assert_eq(hie_mpi__tf_count(tf, HIE_MPI_F_FAMILY, 7u * 0x10001u, 1), 0);
    uint64_t total = 0;
    double f = hie_mpi__tf_key_frequency(tf, HIE_MPI_F_FAMILY, 7u * 0x10001u, &total);
    cr_assert_eq(total, 5001);
    cr_assert_float_eq(f, 2.0 / 5001.0, 1e-12);
    cr_assert_eq(hie_mpi__tf_key_frequency(tf, HIE_MPI_F_GIVEN, 7u * 0x10001u, &total), 0.0);
    cr_assert_eq(total, 0, "the given name counts apart");
    cr_assert_eq(hie_mpi__tf_count(tf, HIE_MPI_F_FAMILY, 7u * 0x10001u, -1), 0);
    cr_assert_eq(hie_mpi__tf_count(tf, HIE_MPI_F_FAMILY, 7u * 0x10001u, -1), 0);
    cr_assert_eq(hie_mpi__tf_count(tf, HIE_MPI_F_FAMILY, 7u * 0x10001u, -1), HIE_ECORRUPT);
    cr_assert_eq(hie_mpi__tf_count(tf, HIE_MPI_F_GIVEN, 99u, -1), HIE_ECORRUPT, "never counted");
    cr_assert_eq(hie_mpi__tf_key_frequency(tf, HIE_MPI_F_FAMILY, 7u * 0x10001u, &total), 0.0);
    cr_assert_eq(total, 4999);
    hie_mpi_tf_destroy(&tf);
}

/* splitmix64, as in match.c, so the constructed data set is reproducible */
static uint64_t
rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double
uniform(uint64_t *s)
{
    return (double)(rng(s) >> 11) / 9007199254740992.0;
}

/* Known answer: three binary-like fields (exact vs different), m = 0.9/0.1, u = 0.05/0.95 for
 * every field, 30% matches among candidates. EM with u fixed must find m and the share. */
Test(mpi_match, em_recovers_known_parameters_on_a_constructed_set)
{
    static const unsigned fields[3] = {HIE_MPI_F_GIVEN, HIE_MPI_F_FAMILY, HIE_MPI_F_POSTCODE};
    const size_t n = 20000;
    uint64_t seed = 12345;
    cr_log_info("seed=%lu", (unsigned long)seed);
    hie_mpi_vector_t *v = calloc(n, sizeof(*v));
    size_t matches = 0;
    for (size_t i = 0; i < n; i++) {
        bool match = uniform(&seed) < 0.3;
        matches += match;
        for (unsigned k = 0; k < 3; k++) {
            unsigned f = fields[k];
            unsigned diff = hie_mpi_field_levels((enum hie_mpi_field)f) - 1;
            bool agree = uniform(&seed) < (match ? 0.9 : 0.05);
            v[i].level[f] = (uint8_t)(agree ? 1 : diff);
        }
    }
    hie_mpi_model_t m;
    hie_mpi_model_default(&m);
    for (unsigned k = 0; k < 3; k++) {
        unsigned f = fields[k];
        unsigned levels = hie_mpi_field_levels((enum hie_mpi_field)f);
        for (unsigned l = 1; l < levels; l++) {
            m.u[f][l] = l == 1 ? 0.05 : (l == levels - 1 ? 0.95 - 1e-6 * (levels - 3) : 1e-6);
        }
    }
    unsigned rounds = 0;
    cr_assert_eq(hie_mpi_em_train(&m, v, n, 0, 200, &rounds), 0);
    cr_log_info("em rounds=%u lambda_c=%.4f m_exact=%.4f %.4f %.4f", rounds,
        m.lambda_candidates, m.m[fields[0]][1], m.m[fields[1]][1], m.m[fields[2]][1]);
    cr_assert_float_eq(m.lambda_candidates, (double)matches / (double)n, 0.02);
    for (unsigned k = 0; k < 3; k++) {
        cr_assert_float_eq(m.m[fields[k]][1], 0.9, 0.02, "field %u m(exact)", fields[k]);
    }
    cr_assert_eq(m.version, 1);
    cr_assert_eq(hie_mpi_em_train(&m, v, 0, 0, 10, NULL), HIE_EINVAL);
    /* the prior alone, m and u fixed: the same share, scaled to random pairs */
    cr_assert_eq(hie_mpi_em_prior(&m, v, n, 0.01, 200), 0);
    cr_assert_float_eq(m.lambda_candidates, (double)matches / (double)n, 0.02);
    cr_assert_float_eq(m.lambda, m.lambda_candidates * 0.01, 1e-9);
    cr_assert_eq(hie_mpi_em_prior(&m, v, n, 0.0, 10), HIE_EINVAL);
    /* an excluded field is neither used nor updated */
    double before = m.m[fields[2]][1];
    cr_assert_eq(hie_mpi_em_train(&m, v, n, 1u << fields[2], 200, NULL), 0);
    cr_assert_eq(m.m[fields[2]][1], before);
    cr_assert_float_eq(m.m[fields[0]][1], 0.9, 0.03);
    free(v);
}

/* A level no training pair reached keeps some probability (EM's add-half pseudo-count): one
 * such disagreement costs a few bits, not the 20 of a probability floor. */
Test(mpi_match, em_keeps_an_unseen_level_possible)
{
    const size_t n = 4000;
    hie_mpi_vector_t *v = calloc(n, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        bool match = i % 2 == 0;
        v[i].level[HIE_MPI_F_GIVEN] = match ? HIE_MPI_STR_EXACT : HIE_MPI_STR_DIFFERENT;
        v[i].level[HIE_MPI_F_FAMILY] = match ? HIE_MPI_STR_EXACT : HIE_MPI_STR_DIFFERENT;
        v[i].level[HIE_MPI_F_DOB] = match ? HIE_MPI_DATE_EXACT : HIE_MPI_DATE_DIFFERENT;
    }
    hie_mpi_model_t m;
    hie_mpi_model_default(&m);
    cr_assert_eq(hie_mpi_em_train(&m, v, n, 0, 100, NULL), 0);
    double unseen = m.m[HIE_MPI_F_GIVEN][HIE_MPI_STR_DL1];
    cr_assert_gt(unseen, 1e-4, "m=%g", unseen);
    cr_assert_lt(unseen, 1e-3);
    cr_assert_gt(m.m[HIE_MPI_F_GIVEN][HIE_MPI_STR_EXACT], 0.99);
    free(v);
}

Test(mpi_match, u_from_random_pairs_of_distinct_people_is_mostly_different)
{
    static const char *const names[] = {"anna", "ben", "carl", "dora", "emil", "fred", "gina"};
    hie_mpi_person_t p[70];
    for (unsigned i = 0; i < 70; i++) {
        uint32_t dob = (1930 + i) * 10000 + (1 + (i * 5) % 12) * 100 + 1 + (i * 7) % 28;
        p[i] = person(names[i % 7], names[(i / 7) % 7], dob, "");
    }
    hie_mpi_model_t m;
    hie_mpi_model_default(&m);
    cr_assert_eq(hie_mpi_u_estimate(&m, p, 70, 5000, 7), 0);
    unsigned last = hie_mpi_field_levels(HIE_MPI_F_DOB) - 1;
    cr_assert_eq(last, HIE_MPI_DATE_DIFFERENT);
    /* birth years 1930..1999: a random pair is a decade or more apart, or within one */
    cr_assert_gt(m.u[HIE_MPI_F_DOB][last] + m.u[HIE_MPI_F_DOB][HIE_MPI_DATE_WITHIN_DECADE], 0.8);
    cr_assert_gt(m.u[HIE_MPI_F_DOB][last], m.u[HIE_MPI_F_DOB][HIE_MPI_DATE_WITHIN_YEAR]);
    cr_assert_gt(m.u[HIE_MPI_F_DOB][HIE_MPI_DATE_EXACT], 0.0, "smoothed, never zero");
    cr_assert_eq(hie_mpi_u_estimate(&m, p, 1, 10, 7), HIE_EINVAL);
}

Test(mpi_match, block_keys_are_deterministic_and_tolerate_one_error)
{
    static const uint8_t secret[16] = "test-block-key..";
    hie_mpi_person_t a = person("catherine", "mcdonald", 19640229, "2600");
    hie_mpi_person_t b = person("katherine", "mcdonald", 19640229, "2600"); /* given typo */
    hie_mpi_person_t c = person("mcdonald", "catherine", 19640229, "");     /* swapped */
    uint64_t ka[HIE_MPI_BLOCK_KEYS], kb[HIE_MPI_BLOCK_KEYS], kc[HIE_MPI_BLOCK_KEYS];
    uint64_t again[HIE_MPI_BLOCK_KEYS];
    hie_mpi_block_keys(&a, secret, ka);
    hie_mpi_block_keys(&a, secret, again);
    cr_assert_arr_eq(ka, again, sizeof(ka));
    hie_mpi_block_keys(&b, secret, kb);
    hie_mpi_block_keys(&c, secret, kc);
    bool ab = false;
    for (unsigned i = 0; i < HIE_MPI_BLOCK_KEYS; i++) {
        ab = ab || (ka[i] != 0 && ka[i] == kb[i]);
    }
    cr_assert(ab, "a typo in the given name lost the pair");
    cr_assert_neq(ka[3], 0);
    cr_assert_eq(ka[3], kc[3], "swapped names must share the name-pair key");
    cr_assert_eq(ka[4], 0, "no national id: no key");
    for (unsigned i = HIE_MPI_BLOCK_BROAD_FIRST; i < HIE_MPI_BLOCK_KEYS; i++) {
        cr_assert_neq(ka[i], 0, "broad key %u", i);
    }
    cr_assert_eq(ka[15], kb[15], "the family name alone is a broad key");
    cr_assert_eq(ka[17], kc[17], "the birth date alone is a broad key");
    cr_assert_neq(ka[15], ka[16], "each key hashes under its own tag");
    hie_mpi_person_t nofamily = person("anna", "", 19640229, "");
    uint64_t kn[HIE_MPI_BLOCK_KEYS];
    hie_mpi_block_keys(&nofamily, secret, kn);
    cr_assert_eq(kn[15], 0);
    cr_assert_neq(kn[16], 0);
    cr_assert_eq(hie_mpi_block_key_cap(0, 64, 5000000), 64);
    cr_assert_eq(hie_mpi_block_key_cap(HIE_MPI_BLOCK_BROAD_FIRST - 1, 500, 1000), 500);
    cr_assert_eq(hie_mpi_block_key_cap(HIE_MPI_BLOCK_BROAD_FIRST, 64, 0), HIE_MPI_BLOCK_BROAD_CAP);
    cr_assert_eq(hie_mpi_block_key_cap(HIE_MPI_BLOCK_BROAD_FIRST, 64, 50000),
        HIE_MPI_BLOCK_BROAD_CAP);
    cr_assert_eq(hie_mpi_block_key_cap(HIE_MPI_BLOCK_KEYS - 1, 8, 1000), 8, "a smaller cap");
    cr_assert_eq(hie_mpi_block_key_cap(HIE_MPI_BLOCK_BROAD_FIRST, 64, 100000), 8, "halved");
    cr_assert_eq(hie_mpi_block_key_cap(HIE_MPI_BLOCK_BROAD_FIRST, 64, 800000), 1);
    cr_assert_eq(hie_mpi_block_key_cap(HIE_MPI_BLOCK_BROAD_FIRST, 64, 800001), 0, "off");
    cr_assert_eq(hie_mpi_block_key_cap(HIE_MPI_BLOCK_BROAD_FIRST, 64, UINT64_MAX), 0);
    for (unsigned i = 0; i < HIE_MPI_BLOCK_KEYS; i++) {
        cr_assert_lt(hie_mpi_key_shard(ka[i], 64), 64);
    }
    static const uint8_t other[16] = "another-secret..";
    uint64_t ko[HIE_MPI_BLOCK_KEYS];
    hie_mpi_block_keys(&a, other, ko);
    cr_assert_neq(ka[0], ko[0], "keys depend on the secret");
}

/* Fills dst (cap bytes) with 0..cap-1 lowercase letters, digits or spaces from *seed. */
static void
random_text(uint64_t *seed, char *dst, size_t cap, bool digits)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz ", num[] = "0123456789";
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    size_t len = (size_t)((*seed >> 33) % 5u == 0 ? (*seed >> 40) % cap : (*seed >> 40) % 12u);
    for (size_t i = 0; i < len; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        dst[i] = digits ? num[(*seed >> 33) % 10u] : alpha[(*seed >> 33) % 27u];
    }
    dst[len] = '\0';
}

/* The block keys' bytes are fixed: blocks in memory and on disk, and the pool's lists, are
 * keyed by them. A digest of the keys of 3,000 generated people (every field empty, short or
 * up to its full size, emails with and without a local part) against the value the
 * snprintf-built texts gave (2026-11-30), so a faster text builder cannot move a key. */
Test(mpi_match, block_keys_bytes_are_fixed)
{
    static const uint8_t secret[16] = "test-block-key..";
    uint64_t seed = 0x5eedb10c;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 8);
    for (unsigned i = 0; i < 3000; i++) {
        hie_mpi_person_t p;
        memset(&p, 0, sizeof(p));
        random_text(&seed, p.given, sizeof(p.given), false);
        random_text(&seed, p.family, sizeof(p.family), false);
        random_text(&seed, p.street, sizeof(p.street), false);
        random_text(&seed, p.city, sizeof(p.city), false);
        random_text(&seed, p.postcode, sizeof(p.postcode), true);
        random_text(&seed, p.phone, sizeof(p.phone), true);
        random_text(&seed, p.national_id, sizeof(p.national_id), true);
        random_text(&seed, p.email, sizeof(p.email) - 16, false);
        if (i % 3 != 0 && p.email[0] != '\0') {
            strcat(p.email, i % 2 ? "@example.org" : "@x");
        }
        if (p.given[0] != '\0') {
            cr_assert_eq(hie_mpi_given_canonical(p.given, p.given_canon, sizeof(p.given_canon)),
                0);
        }
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        p.dob = i % 7 == 0 ? 0 : 19000101u + (uint32_t)((seed >> 33) % 1000000u);
        hie_mpi_person_prepare(&p);
        uint64_t keys[HIE_MPI_BLOCK_KEYS];
        hie_mpi_block_keys(&p, secret, keys);
        crypto_generichash_update(&st, (const uint8_t *)keys, sizeof(keys));
    }
    uint8_t d[8];
    crypto_generichash_final(&st, d, sizeof(d));
    uint64_t digest = hie_load_be64(d);
    cr_log_info("block keys digest 0x%016llx", (unsigned long long)digest);
    cr_assert_eq(digest, 0x5e85b4196cdfe131ull, "the block keys changed");
}

/* The key whose table slot hash is (k << 20) | (2040 + k % 8): the homes cluster at the end
 * of a 2048-slot table, so runs wrap around and deletions shift entries back across the end
 * (tf_key_slot's mixing undone). */
static uint64_t
tf_clustered_key(enum hie_mpi_field f, unsigned k)
{
    uint64_t slot = ((uint64_t)k << 20) | (2040u + k % 8u);
    return slot ^ ((uint64_t)f + 1u) * 0x9e3779b97f4a7c15ull;
}

/* A name counted down to 0 leaves the table, and the others stay found (a slot emptied in the
 * middle of a probe run must not hide the values after it, also where a run wraps around the
 * table's end): a member renaming one record again and again kept every name it ever had,
 * growing the table until a restart. Random adds and removes against a reference count,
 * seeded, every count checked every 1,000 steps. */
Test(mpi_match, term_frequency_slots_counted_to_zero_are_freed)
{
    enum { KEYS = 512, STEPS = 100000 };
    static uint32_t ref[KEYS];
    hie_mpi_tf_t *tf = NULL;
    cr_assert_eq(hie_mpi_tf_create(&tf, 4), 0);
    uint64_t seed = test_seed(0x7f5eedull), s = seed;
    size_t cap_seen = 0, distinct = 0;
    for (unsigned i = 0; i < STEPS; i++) {
        uint64_t r = rng(&s);
        unsigned k = (unsigned)(r % KEYS);
        int delta = ref[k] > 0 && (r >> 32) % 2 == 0 ? -1 : 1;
        cr_assert_eq(hie_mpi__tf_count(tf, HIE_MPI_F_GIVEN, tf_clustered_key(HIE_MPI_F_GIVEN,
            k), delta), 0, "seed 0x%" PRIx64, seed);
        distinct += delta > 0 && ref[k] == 0;
        distinct -= delta < 0 && ref[k] == 1;
        ref[k] += (uint32_t)delta;
        size_t cap = 0;
        cr_assert_eq(hie_mpi__tf_used(tf, &cap), distinct, "seed 0x%" PRIx64, seed);
        cap_seen = cap > cap_seen ? cap : cap_seen;
        for (unsigned j = 0; i % 1000 == 999 && j < KEYS; j++) {
            uint64_t total = 0;
            double fr = hie_mpi__tf_key_frequency(tf, HIE_MPI_F_GIVEN,
                tf_clustered_key(HIE_MPI_F_GIVEN, j), &total);
            cr_assert_float_eq(fr * (double)total, (double)ref[j], 1e-6, "key %u step %u (seed "
                "0x%" PRIx64 ")", j, i, seed);
        }
    }
    cr_assert_leq(cap_seen, 4u * KEYS, "the table stays sized to what it holds");
    /* one record renamed 20,000 times: one name counted at a time */
    for (uint64_t n = 1; n <= 20000; n++) {
        cr_assert_eq(hie_mpi__tf_count(tf, HIE_MPI_F_FAMILY, n * 0x10001u + 7, 1), 0);
        if (n > 1) {
            cr_assert_eq(hie_mpi__tf_count(tf, HIE_MPI_F_FAMILY, (n - 1) * 0x10001u + 7, -1), 0);
        }
    }
    size_t cap = 0;
    cr_assert_eq(hie_mpi__tf_used(tf, &cap), distinct + 1);
    cr_assert_leq(cap, 4u * KEYS, "renames do not grow it");
    hie_mpi_tf_destroy(&tf);
}
