/*
 * test_consent_validate.c - hie_consent_directive_validate() and the vocabulary lookups:
 * every refusal names its field and returns HIE_EINVAL or HIE_ELIMIT; hostile shapes (10,000
 * sibling provisions, nesting 1,000 deep) are refused quickly and without deep recursion; the
 * limits are exact (64 provisions and depth 8 pass, one more fails).
 */
#include "../test_util.h"
#include "test_consent_fixture.h"

#include <criterion/parameterized.h>
#include <signal.h>
#include <time.h>

static hie_arena_t *arena;

static void
setup(void)
{
    cr_assert_eq(hie_arena_create(&arena, CFX_ARENA_BYTES), 0);
}

static void
teardown(void)
{
    hie_arena_destroy(&arena);
}

TestSuite(consent_validate, .init = setup, .fini = teardown);

static void
expect_refused(const Hie__V1__ConsentDirective *d, int rc, const char *field, const char *reason)
{
    hie_errinfo_t info = {0};
    int got = hie_consent_directive_validate(d, &info);
    cr_assert_eq(got, rc, "rc %s, expected %s (field %s, reason %s)", hie_strerror_name(got),
        hie_strerror_name(rc), info.field ? info.field : "-", info.reason ? info.reason : "-");
    cr_assert_str_eq(info.field, field);
    if (reason != NULL) {
        cr_assert_str_eq(info.reason, reason);
    }
    uint8_t buf[256];
    size_t len = 99;
    memset(buf, 0xa5, sizeof(buf));
    cr_assert_eq(hie_consent_compile(d, buf, sizeof(buf), &len, NULL), rc);
    cr_assert_eq(len, 0u);
    cr_assert_eq(buf[0], 0xa5, "out_buf written on failure");
}

static void
expect_valid(const Hie__V1__ConsentDirective *d)
{
    hie_errinfo_t info = {0};
    int rc = hie_consent_directive_validate(d, &info);
    cr_assert_eq(rc, 0, "refused: %s %s", info.field ? info.field : "-",
        info.reason ? info.reason : "-");
}

#define BASE "id=c1 v=1 date=10 idx=1 : "

Test(consent_validate, accepts_a_full_directive)
{
    expect_valid(cfx_parse(arena, "id=cns-42 v=3 date=10 idx=7 period=100..200 : "
                                  "permit(org=org-b role=hospital pou=treat,emerg label=PSY,N "
                                  "class=lab-report,adt-event act=query,push period=1..2 "
                                  "data=3..4) { deny(label=SUD) { rev(org=org-c) } rev() }"));
}

struct bad {
    const char *text;
    int rc;
    const char *field;
    const char *reason;
};

/* Text-form refusals. */
static const struct bad bads[] = {
    {BASE "permit(label=XYZ)", HIE_EINVAL, "provision.security_labels", "unknown code"},
    {BASE "permit(label=psy)", HIE_EINVAL, "provision.security_labels", "unknown code"},
    {BASE "permit() { deny(label=ETH,BOGUS) }", HIE_EINVAL,
        "provision.provisions.security_labels", "unknown code"},
    {BASE "permit(label=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456)", HIE_ELIMIT,
        "provision.security_labels", "too long"},
    {BASE "permit(class=Lab-Report)", HIE_EINVAL, "provision.classes", "unknown code"},
    {BASE "permit() { deny() { permit(class=x-ray) } }", HIE_EINVAL,
        "provision.provisions.classes", "unknown code"},
    {"id=c1 period=200..100 : permit()", HIE_EINVAL, "period", "start not before end"},
    {"id=c1 period=200..200 : permit()", HIE_EINVAL, "period", "start not before end"},
    {BASE "permit(period=5..4)", HIE_EINVAL, "provision.period", "start not before end"},
    {BASE "permit(data=9..1)", HIE_EINVAL, "provision.data_period", "start not before end"},
    {BASE "permit() { deny(data=7..7) }", HIE_EINVAL, "provision.provisions.data_period",
        "start not before end"},
    {BASE "permit() { deny() { permit(period=3..2) } }", HIE_EINVAL,
        "provision.provisions.period", "start not before end"},
    {BASE "permit(period=-5..0)", HIE_EINVAL, "provision.period", "negative time"},
    {BASE "rev()", HIE_EINVAL, "provision.type", "missing"},
    {BASE "permit() { permit() }", HIE_EINVAL, "provision.provisions.type",
        "does not reverse its parent"},
    {BASE "deny() { rev() { deny() { deny() } } }", HIE_EINVAL, "provision.provisions.type",
        "does not reverse its parent"},
    {BASE "permit(org=Org-B)", HIE_EINVAL, "provision.actors.org_id", "invalid organization id"},
    {BASE "permit(org=org-b,-bad)", HIE_EINVAL, "provision.actors.org_id",
        "invalid organization id"},
    {"id=bad/id : permit()", HIE_EINVAL, "id", "invalid"},
    {"id=c1 status=bogus : permit()", HIE_EINVAL, "status", "not active or inactive"},
};

static size_t bad_indexes[HIE_ARRAY_LEN(bads)];

ParameterizedTestParameters(consent_validate, refuses_text)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(bads); i++) {
        bad_indexes[i] = i;
    }
    return cr_make_param_array(size_t, bad_indexes, HIE_ARRAY_LEN(bads));
}

ParameterizedTest(size_t *i, consent_validate, refuses_text)
{
    const struct bad *b = &bads[*i];
    Hie__V1__ConsentDirective *d = cfx_parse(arena, b->text);
    if (strstr(b->text, "status=bogus") != NULL) {
        d->status = (Hie__V1__ConsentStatus)7; /* the text form only knows real statuses */
    }
    expect_refused(d, b->rc, b->field, b->reason);
}

static Hie__V1__ConsentDirective *
base(void)
{
    return cfx_parse(arena, BASE "permit() { deny() }");
}

Test(consent_validate, unknown_enum_integers)
{
    /* proto3 enums are open: any int can arrive on the wire */
    const int bad_roles[] = {-1, 8, 99, 1 << 30};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad_roles); i++) {
        Hie__V1__ConsentDirective *d = base();
        cfx_add_actor(arena, d->provision, NULL, bad_roles[i]);
        expect_refused(d, HIE_EINVAL, "provision.actors.role", "unknown value");
    }
    const int bad_purposes[] = {0, 8, -3, 31, 32, 1000};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad_purposes); i++) {
        Hie__V1__ConsentDirective *d = base();
        cfx_add_purpose(arena, d->provision->provisions[0], bad_purposes[i]);
        expect_refused(d, HIE_EINVAL, "provision.provisions.purposes", "unknown value");
    }
    const int bad_actions[] = {0, 5, -1, 64};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad_actions); i++) {
        Hie__V1__ConsentDirective *d = base();
        cfx_add_action(arena, d->provision, bad_actions[i]);
        expect_refused(d, HIE_EINVAL, "provision.actions", "unknown value");
    }
    Hie__V1__ConsentDirective *d = base();
    d->provision->type = (Hie__V1__ProvisionType)3;
    expect_refused(d, HIE_EINVAL, "provision.type", "unknown value");
    d = base();
    d->provision->provisions[0]->type = (Hie__V1__ProvisionType)-1;
    expect_refused(d, HIE_EINVAL, "provision.provisions.type", "unknown value");
    d = base();
    d->status = HIE__V1__CONSENT_STATUS__CONSENT_STATUS_UNSPECIFIED;
    expect_refused(d, HIE_EINVAL, "status", "not active or inactive");
}

Test(consent_validate, actors_need_exactly_one_of_org_and_role)
{
    Hie__V1__ConsentDirective *d = base();
    cfx_add_actor(arena, d->provision, NULL, 0);
    expect_refused(d, HIE_EINVAL, "provision.actors", "neither org_id nor role given");
    d = base();
    cfx_add_actor(arena, d->provision->provisions[0], "org-b", HIE__V1__ROLE__ROLE_LAB);
    expect_refused(d, HIE_EINVAL, "provision.provisions.actors", "both org_id and role given");
}

Test(consent_validate, patient_named_exactly_one_way)
{
    Hie__V1__ConsentDirective *d = base();
    d->euid = cfx_strdup(arena, "E000000000042");
    expect_refused(d, HIE_EINVAL, "patient", "both patient and euid given");
    d->patient = NULL;
    expect_valid(d);
    d->euid = cfx_strdup(arena, "");
    expect_refused(d, HIE_EINVAL, "patient", "missing");
    d = base();
    d->patient->mrn = cfx_strdup(arena, "");
    expect_refused(d, HIE_EINVAL, "patient.mrn", "missing");
    d = base();
    d->patient->org_id = cfx_strdup(arena, "");
    expect_refused(d, HIE_EINVAL, "patient.org_id", "missing");
    d = base();
    d->patient->mrn = cfx_strdup(arena, "has space");
    expect_refused(d, HIE_EINVAL, "patient.mrn", "invalid");
}

static char *
repeat(char c, size_t n)
{
    char *s = cfx_alloc(arena, n + 1);
    memset(s, c, n);
    return s;
}

Test(consent_validate, long_and_unprintable_strings)
{
    Hie__V1__ConsentDirective *d = base();
    d->policy_uri = repeat('u', HIE_CONSENT_POLICY_URI_BYTES_MAX);
    expect_valid(d);
    d->policy_uri = repeat('u', HIE_CONSENT_POLICY_URI_BYTES_MAX + 1);
    expect_refused(d, HIE_ELIMIT, "policy_uri", "too long");
    d->policy_uri = cfx_strdup(arena, "urn:oid:1.2 3");
    expect_refused(d, HIE_EINVAL, "policy_uri", "not printable ASCII");
    d = base();
    d->patient->mrn = repeat('m', HIE_CONSENT_PATIENT_ID_BYTES_MAX + 1);
    expect_refused(d, HIE_ELIMIT, "patient.mrn", "invalid");
    d = base();
    d->id = repeat('i', HIE_CONSENT_ID_BYTES_MAX + 1);
    expect_refused(d, HIE_ELIMIT, "id", "invalid");
    d = base();
    cfx_add_actor(arena, d->provision, repeat('o', HIE_ORG_ID_BYTES_MAX + 1), 0);
    expect_refused(d, HIE_ELIMIT, "provision.actors.org_id", "invalid organization id");
    d = base();
    cfx_add_label(arena, d->provision, "PS\x01");
    expect_refused(d, HIE_EINVAL, "provision.security_labels", "not printable ASCII");
    d = base();
    cfx_add_class(arena, d->provision, "");
    expect_refused(d, HIE_EINVAL, "provision.classes", "empty");
    d = base();
    d->submitted_by = cfx_strdup(arena, "Not An Org");
    expect_refused(d, HIE_EINVAL, "submitted_by", "invalid organization id");
    d = base();
    d->revoked_ms = -1;
    expect_refused(d, HIE_EINVAL, "revoked_ms", "negative time");
}

Test(consent_validate, list_items_limit)
{
    Hie__V1__ConsentDirective *d = base();
    for (unsigned i = 0; i < HIE_CONSENT_LIST_ITEMS_MAX; i++) {
        cfx_add_purpose(arena, d->provision, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT);
    }
    expect_valid(d);
    cfx_add_purpose(arena, d->provision, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT);
    expect_refused(d, HIE_ELIMIT, "provision.purposes", "too many items");
    d = base();
    for (unsigned i = 0; i <= HIE_CONSENT_LIST_ITEMS_MAX; i++) {
        cfx_add_actor(arena, d->provision->provisions[0], "org-b", 0);
    }
    expect_refused(d, HIE_ELIMIT, "provision.provisions.actors", "too many items");
}

static double
elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* n children under the root, built directly (the array is not grown one by one). */
static Hie__V1__ConsentDirective *
flat(size_t n)
{
    Hie__V1__ConsentProvision *root = cfx_prov(arena, HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    root->provisions = cfx_alloc(arena, n * sizeof(*root->provisions));
    for (size_t i = 0; i < n; i++) {
        root->provisions[i] = cfx_prov(arena, 0);
    }
    root->n_provisions = n;
    return cfx_directive(arena, "c1", 1, 10, 1, root);
}

/* A chain of depth levels. */
static Hie__V1__ConsentDirective *
chain(size_t depth)
{
    Hie__V1__ConsentProvision *root = cfx_prov(arena, HIE__V1__PROVISION_TYPE__PROVISION_DENY);
    Hie__V1__ConsentProvision *p = root;
    for (size_t i = 1; i < depth; i++) {
        Hie__V1__ConsentProvision *c = cfx_prov(arena, 0);
        cfx_add_child(arena, p, c);
        p = c;
    }
    return cfx_directive(arena, "c1", 1, 10, 1, root);
}

Test(consent_validate, ten_thousand_provisions_refused_fast)
{
    Hie__V1__ConsentDirective *d = flat(10000);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_refused(d, HIE_ELIMIT, "provision.provisions", "too many provisions");
    double ms = elapsed_ms(&t0);
    cr_assert_lt(ms, 50.0, "took %.2f ms", ms);
    expect_valid(flat(HIE_CONSENT_PROVISIONS_MAX - 1));
    expect_refused(flat(HIE_CONSENT_PROVISIONS_MAX), HIE_ELIMIT, "provision.provisions",
        "too many provisions");
}

Test(consent_validate, nesting_thousand_deep_refused_fast)
{
    Hie__V1__ConsentDirective *d = chain(1000);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_refused(d, HIE_ELIMIT, "provision.provisions", "nesting too deep");
    double ms = elapsed_ms(&t0);
    cr_assert_lt(ms, 50.0, "took %.2f ms", ms);
    expect_valid(chain(HIE_CONSENT_DEPTH_MAX));
    expect_refused(chain(HIE_CONSENT_DEPTH_MAX + 1), HIE_ELIMIT, "provision.provisions",
        "nesting too deep");
}

Test(consent_validate, total_count_spans_levels)
{
    /* 8 children each with 7 grandchildren: 1 + 8 + 56 = 65 provisions, spread out */
    Hie__V1__ConsentProvision *root = cfx_prov(arena, HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    for (int i = 0; i < 8; i++) {
        Hie__V1__ConsentProvision *c = cfx_prov(arena, 0);
        for (int k = 0; k < 7; k++) {
            cfx_add_child(arena, c, cfx_prov(arena, 0));
        }
        cfx_add_child(arena, root, c);
    }
    Hie__V1__ConsentDirective *d = cfx_directive(arena, "c1", 1, 10, 1, root);
    expect_refused(d, HIE_ELIMIT, "provision.provisions", "too many provisions");
    root->provisions[7]->n_provisions = 6; /* 64: at the limit */
    expect_valid(d);
}

Test(consent_validate, missing_provision_and_compile_needs_broker_fields)
{
    Hie__V1__ConsentDirective *d = base();
    d->provision = NULL;
    expect_refused(d, HIE_EINVAL, "provision", "missing");
    uint8_t buf[512];
    size_t len = 0;
    hie_errinfo_t info = {0};
    d = base();
    d->id = cfx_strdup(arena, "");
    expect_valid(d); /* a member's submission carries no id yet */
    cr_assert_eq(hie_consent_compile(d, buf, sizeof(buf), &len, &info), HIE_EINVAL);
    cr_assert_str_eq(info.field, "id");
    d = base();
    d->version = 0;
    cr_assert_eq(hie_consent_compile(d, buf, sizeof(buf), &len, &info), HIE_EINVAL);
    cr_assert_str_eq(info.field, "version");
    d = base();
    cr_assert_eq(hie_consent_compile(d, buf, 70, &len, &info), HIE_ELIMIT);
    cr_assert_str_eq(info.field, "out_buf");
    cr_assert_eq(len, 0u);
    cr_assert_eq(hie_consent_compile(d, buf, sizeof(buf), &len, &info), 0);
    cr_assert_gt(len, 70u);
}

Test(consent_validate, vocabularies_round_trip)
{
    for (unsigned l = 0; l < HIE_CONSENT_LABELS_COUNT; l++) {
        const char *name = hie_consent_label_name((enum hie_consent_label)l);
        enum hie_consent_label got;
        cr_assert_eq(hie_consent_label_parse(name, strlen(name), &got), 0);
        cr_assert_eq(got, (enum hie_consent_label)l);
    }
    for (unsigned c = 1; c < HIE_CONSENT_CLASSES_COUNT; c++) {
        const char *name = hie_consent_class_name((enum hie_consent_class)c);
        enum hie_consent_class got;
        cr_assert_eq(hie_consent_class_parse(name, strlen(name), &got), 0);
        cr_assert_eq(got, (enum hie_consent_class)c);
    }
    enum hie_consent_label l;
    cr_assert_eq(hie_consent_label_parse("SUDX", 3, &l), 0, "length, not NUL, ends the code");
    cr_assert_eq(l, HIE_CONSENT_LABEL_SUD);
    cr_assert_eq(hie_consent_label_parse("", 0, &l), HIE_EINVAL);
    cr_assert_eq(hie_consent_label_parse(NULL, 0, &l), HIE_EINVAL);
    cr_assert_str_eq(hie_consent_label_name((enum hie_consent_label)99), "?");
    cr_assert_str_eq(hie_consent_class_name(HIE_CONSENT_CLASS_NONE), "?");
    cr_assert_eq(HIE_CONSENT_LABELS_PART2 & HIE_CONSENT_LABEL_BIT(HIE_CONSENT_LABEL_PSY), 0u);
    cr_assert_neq(HIE_CONSENT_LABELS_PART2 & HIE_CONSENT_LABEL_BIT(HIE_CONSENT_LABEL_ETHUD), 0u);
}

Test(consent_validate, null_directive_aborts, .signal = SIGABRT)
{
    int rc = hie_consent_directive_validate(NULL, NULL);
    cr_assert_fail("returned %d", rc);
}
