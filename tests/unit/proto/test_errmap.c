/*
 * test_errmap.c - unit tests for proto/src/errmap.c (the one HIE_E* -> wire Error code table
 * and the enum names) and for the id checks in frame.c that everything else builds on.
 */
#include "hie/proto.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <string.h>

#define WIRE(x) HIE__V1__ERROR_CODE__ERROR_##x

/* The documented mapping (errmap.c, design.md): every HIE_E* code appears here once. */
static const struct {
    int rc;
    Hie__V1__ErrorCode code;
} error_map[] = {
    {0, WIRE(UNSPECIFIED)},
    {HIE_EAGAIN, WIRE(OVERLOADED)},
    {HIE_ENOTFOUND, WIRE(NOT_FOUND)},
    {HIE_EINVAL, WIRE(BAD_REQUEST)},
    {HIE_EPROTO, WIRE(BAD_REQUEST)},
    {HIE_ELIMIT, WIRE(BAD_REQUEST)},
    {HIE_EDENIED, WIRE(FORBIDDEN)},
    {HIE_ENOMEM, WIRE(INTERNAL)},
    {HIE_ECORRUPT, WIRE(INTERNAL)},
    {HIE_ESTATE, WIRE(INTERNAL)},
    {HIE_EUNAUTH, WIRE(UNAUTHENTICATED)},
    {HIE_EBUSY, WIRE(OVERLOADED)},
    {HIE_EUNAVAIL, WIRE(UNAVAILABLE)},
    {HIE_ETIMEDOUT, WIRE(UNAVAILABLE)},
    {HIE_ESTORAGE, WIRE(INTERNAL)},
    {HIE_ECONFIG, WIRE(INTERNAL)},
    {HIE_ETLS, WIRE(INTERNAL)},
    {HIE_ENOSPC, WIRE(OVERLOADED)},
};

Test(proto_errmap, every_hie_code_maps_to_its_documented_wire_code)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(error_map); i++) {
        Hie__V1__ErrorCode got = hie_proto_error_code(error_map[i].rc);
        cr_assert_eq(got, error_map[i].code, "%s -> %s, expected %s",
            hie_strerror_name(error_map[i].rc), hie_proto_error_code_name(got),
            hie_proto_error_code_name(error_map[i].code));
    }
}

Test(proto_errmap, the_table_above_lists_every_hie_code)
{
    /* HIE_E* codes are -20001..-20017 today; one more means this test and errmap.c need it */
    for (int rc = -20001; rc >= -20017; rc--) {
        bool listed = false;
        for (size_t i = 0; i < HIE_ARRAY_LEN(error_map); i++) {
            listed = listed || error_map[i].rc == rc;
        }
        cr_assert(listed, "%s is missing from this test", hie_strerror_name(rc));
    }
    cr_assert_str_eq(hie_strerror_name(-20018), "UNKNOWN", "a new HIE_E* code: map it here");
}

Test(proto_errmap, os_errors_and_unknown_codes_fail_closed_as_internal)
{
    static const int other[] = {-ENOENT, -EIO, -ENOSPC, -EAGAIN, HIE_ERR_MIN, HIE_ERR_MAX, -20500,
        1, -1};
    for (size_t i = 0; i < HIE_ARRAY_LEN(other); i++) {
        cr_assert_eq(hie_proto_error_code(other[i]), WIRE(INTERNAL), "rc=%d", other[i]);
    }
}

Test(proto_errmap, wire_code_names_are_stable)
{
    static const char *const names[] = {"UNSPECIFIED", "BAD_REQUEST", "UNAUTHENTICATED",
        "FORBIDDEN", "CONSENT_DENIED", "NOT_FOUND", "OVERLOADED", "UNAVAILABLE", "INTERNAL"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(names); i++) {
        cr_assert_str_eq(hie_proto_error_code_name((Hie__V1__ErrorCode)i), names[i]);
    }
    cr_assert_eq(WIRE(INTERNAL), 8, "the enum and the name table agree on the last code");
    cr_assert_str_eq(hie_proto_error_code_name((Hie__V1__ErrorCode)9), "UNKNOWN");
    cr_assert_str_eq(hie_proto_error_code_name((Hie__V1__ErrorCode)-1), "UNKNOWN");
    cr_assert_str_eq(hie_proto_error_code_name((Hie__V1__ErrorCode)1000), "UNKNOWN");
}

Test(proto_errmap, role_names_and_parse_round_trip)
{
    static const char *const names[] = {"unspecified", "hospital", "clinic", "lab", "payer",
        "auditor", "operator", "node"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(names); i++) {
        cr_assert_str_eq(hie_proto_role_name((Hie__V1__Role)i), names[i]);
    }
    for (int r = HIE__V1__ROLE__ROLE_HOSPITAL; r <= HIE__V1__ROLE__ROLE_NODE; r++) {
        Hie__V1__Role out = HIE__V1__ROLE__ROLE_UNSPECIFIED;
        cr_assert_eq(hie_proto_role_parse(hie_proto_role_name((Hie__V1__Role)r), &out), 0);
        cr_assert_eq(out, r, "role %d does not round-trip", r);
    }
    cr_assert_str_eq(hie_proto_role_name((Hie__V1__Role)8), "unknown");
    cr_assert_str_eq(hie_proto_role_name((Hie__V1__Role)-1), "unknown");
}

Test(proto_errmap, role_parse_rejects_unspecified_and_unknown_names)
{
    static const char *const bad[] = {"unspecified", "unknown", "Hospital", "HOSPITAL", "",
        "hospital ", "doctor", "labs"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        Hie__V1__Role out = HIE__V1__ROLE__ROLE_PAYER;
        cr_assert_eq(hie_proto_role_parse(bad[i], &out), HIE_EINVAL, "\"%s\"", bad[i]);
        cr_assert_eq(out, HIE__V1__ROLE__ROLE_PAYER, "\"%s\" changed the output", bad[i]);
    }
}

Test(proto_errmap, role_parse_with_null_out_aborts, .signal = SIGABRT)
{
    int rc = hie_proto_role_parse("lab", NULL);
    (void)rc;
}

Test(proto_errmap, purpose_names_are_stable)
{
    static const char *const names[] = {"unspecified", "treatment", "emergency", "payment",
        "operations", "public-health", "research", "patient-request"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(names); i++) {
        cr_assert_str_eq(hie_proto_purpose_name((Hie__V1__PurposeOfUse)i), names[i]);
    }
    cr_assert_eq(HIE__V1__PURPOSE_OF_USE__PURPOSE_PATIENT_REQUEST, 7);
    cr_assert_str_eq(hie_proto_purpose_name((Hie__V1__PurposeOfUse)8), "unknown");
    cr_assert_str_eq(hie_proto_purpose_name((Hie__V1__PurposeOfUse)99), "unknown");
    cr_assert_str_eq(hie_proto_purpose_name((Hie__V1__PurposeOfUse)-1), "unknown");
}

Test(proto_errmap, body_names_cover_every_kind)
{
    hie_envelope_t env;
    hie__v1__envelope__init(&env);
    cr_assert_str_eq(hie_proto_body_name(&env), "none");
    static const struct {
        Hie__V1__Envelope__BodyCase kind;
        const char *name;
    } kinds[] = {
        {HIE__V1__ENVELOPE__BODY_PING, "ping"},
        {HIE__V1__ENVELOPE__BODY_PONG, "pong"},
        {HIE__V1__ENVELOPE__BODY_WHOAMI, "whoami"},
        {HIE__V1__ENVELOPE__BODY_WHOAMI_REPLY, "whoami_reply"},
        {HIE__V1__ENVELOPE__BODY_ERROR, "error"},
    };
    for (size_t i = 0; i < HIE_ARRAY_LEN(kinds); i++) {
        env.body_case = kinds[i].kind;
        cr_assert_str_eq(hie_proto_body_name(&env), kinds[i].name);
    }
}

/* ---- id checks ---------------------------------------------------------------------------- */

static bool
id_ok(const char *s)
{
    return hie_proto_id_valid(s, strlen(s));
}

static bool
org_ok(const char *s)
{
    return hie_proto_org_id_valid(s, strlen(s));
}

Test(proto_errmap, envelope_id_length_edges)
{
    char buf[HIE_PROTO_ID_BYTES_MAX + 2];
    memset(buf, 'x', sizeof(buf));
    cr_assert(!hie_proto_id_valid(buf, 0), "empty");
    cr_assert(hie_proto_id_valid(buf, 1));
    cr_assert(hie_proto_id_valid(buf, HIE_PROTO_ID_BYTES_MAX), "64 is the maximum");
    cr_assert(!hie_proto_id_valid(buf, HIE_PROTO_ID_BYTES_MAX + 1), "65 is over");
    cr_assert(!hie_proto_id_valid(NULL, 0));
    cr_assert(!hie_proto_id_valid(NULL, 5));
}

Test(proto_errmap, envelope_id_characters)
{
    cr_assert(id_ok("ABCXYZabcxyz0189._:-"));
    cr_assert(id_ok("01HZX3J9Q8W6B7"));
    cr_assert(id_ok("urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"));
    cr_assert(id_ok("-"), "no first-character rule for envelope ids");
    static const char *const bad[] = {" ", "a b", "a/b", "a@b", "a+b", "a=b", "a\"b", "a\\b",
        "a\nb", "caf\xc3\xa9", "\x7f", "a,b", "a;b", "a#b", "a%b", "a~b"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        cr_assert(!id_ok(bad[i]), "\"%s\" accepted", bad[i]);
    }
    cr_assert(!hie_proto_id_valid("ab\0cd", 5), "a NUL inside the given length is refused");
    cr_assert(hie_proto_id_valid("abXX", 2), "only len bytes are read");
}

Test(proto_errmap, org_id_edges)
{
    char buf[HIE_ORG_ID_BYTES_MAX + 2];
    memset(buf, 'a', sizeof(buf));
    cr_assert(hie_proto_org_id_valid(buf, HIE_ORG_ID_BYTES_MAX), "63 is the maximum");
    cr_assert(!hie_proto_org_id_valid(buf, HIE_ORG_ID_BYTES_MAX + 1), "64 is over");
    cr_assert(!hie_proto_org_id_valid(buf, 0), "empty");
    cr_assert(!hie_proto_org_id_valid(NULL, 3));
    static const char *const good[] = {"a", "0", "9lives", "acme", "acme-hospital",
        "lab.example", "a_b", "a-", "a.", "a_", "a..b"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(good); i++) {
        cr_assert(org_ok(good[i]), "\"%s\" refused", good[i]);
    }
    static const char *const bad[] = {"Acme", "aCme", "-a", ".a", "_a", "a:b", "a b", "a/b",
        "@operator", "caf\xc3\xa9", "a@b"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        cr_assert(!org_ok(bad[i]), "\"%s\" accepted", bad[i]);
    }
    cr_assert(!hie_proto_org_id_valid("ab\0c", 4), "a NUL inside the given length is refused");
}
