/*
 * test_err.c - unit tests for base/src/err.c: hie_strerror() and hie_strerror_name() for every
 * HIE_E* code, for -errno values and for codes nobody defined, and the assertion failure path.
 */
#include "hie/base.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <string.h>

static const struct {
    int rc;
    const char *name;
} all_codes[] = {
    {HIE_EAGAIN, "HIE_EAGAIN"},       {HIE_ENOTFOUND, "HIE_ENOTFOUND"},
    {HIE_EINVAL, "HIE_EINVAL"},       {HIE_EPROTO, "HIE_EPROTO"},
    {HIE_ELIMIT, "HIE_ELIMIT"},       {HIE_EDENIED, "HIE_EDENIED"},
    {HIE_ENOMEM, "HIE_ENOMEM"},       {HIE_ECORRUPT, "HIE_ECORRUPT"},
    {HIE_ESTATE, "HIE_ESTATE"},       {HIE_EUNAUTH, "HIE_EUNAUTH"},
    {HIE_EBUSY, "HIE_EBUSY"},         {HIE_EUNAVAIL, "HIE_EUNAVAIL"},
    {HIE_ETIMEDOUT, "HIE_ETIMEDOUT"}, {HIE_ESTORAGE, "HIE_ESTORAGE"},
    {HIE_ECONFIG, "HIE_ECONFIG"},     {HIE_ETLS, "HIE_ETLS"},
    {HIE_ENOSPC, "HIE_ENOSPC"},
};

Test(base_err, every_hie_code_has_its_name_and_a_distinct_text)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(all_codes); i++) {
        int rc = all_codes[i].rc;
        cr_assert(rc >= HIE_ERR_MIN && rc <= HIE_ERR_MAX, "%s outside the HIE range",
            all_codes[i].name);
        cr_assert_str_eq(hie_strerror_name(rc), all_codes[i].name);
        const char *text = hie_strerror(rc);
        cr_assert_not_null(text);
        cr_assert_gt(strlen(text), 0);
        cr_assert_str_neq(text, "unknown error", "%s has no text", all_codes[i].name);
        for (size_t j = 0; j < i; j++) {
            cr_assert_str_neq(text, hie_strerror(all_codes[j].rc), "%s and %s share a text",
                all_codes[i].name, all_codes[j].name);
        }
    }
}

Test(base_err, codes_are_contiguous_from_minus_20001)
{
    /* The table above must list every code: they are numbered -20001 .. -20017 today. A new
     * code must be added to it (and to proto/src/errmap.c and its test). */
    for (size_t i = 0; i < HIE_ARRAY_LEN(all_codes); i++) {
        cr_assert_eq(all_codes[i].rc, -20001 - (int)i);
    }
    cr_assert_str_eq(hie_strerror_name(-20001 - (int)HIE_ARRAY_LEN(all_codes)), "UNKNOWN",
        "a code after HIE_ENOSPC exists: add it to this test");
}

Test(base_err, zero_is_success)
{
    cr_assert_str_eq(hie_strerror(0), "success");
    cr_assert_str_eq(hie_strerror_name(0), "OK");
}

Test(base_err, negative_errno_uses_the_os_names)
{
    cr_assert_str_eq(hie_strerror(-ENOENT), strerror(ENOENT));
    cr_assert_str_eq(hie_strerror_name(-ENOENT), "ENOENT");
    cr_assert_str_eq(hie_strerror_name(-EACCES), "EACCES");
    cr_assert_str_eq(hie_strerror_name(-EPROTO), "EPROTO", "errno EPROTO is not HIE_EPROTO");
    cr_assert_str_eq(hie_strerror_name(-EAGAIN), "EAGAIN");
    cr_assert_str_eq(hie_strerror(-EAGAIN), strerror(EAGAIN));
}

Test(base_err, unknown_errno_values_get_a_generic_name)
{
    cr_assert_str_eq(hie_strerror_name(-19999), "ERRNO");
    cr_assert_not_null(hie_strerror(-19999));
}

Test(base_err, unknown_codes_are_never_null)
{
    static const int unknown[] = {HIE_ERR_MAX, -20018, -20500, HIE_ERR_MIN, -21000, -30000,
        INT_MIN, 1, 42, INT_MAX};
    for (size_t i = 0; i < HIE_ARRAY_LEN(unknown); i++) {
        cr_assert_str_eq(hie_strerror(unknown[i]), "unknown error", "rc=%d", unknown[i]);
        cr_assert_str_eq(hie_strerror_name(unknown[i]), "UNKNOWN", "rc=%d", unknown[i]);
    }
}

Test(base_err, errinfo_set_fills_info_and_returns_rc)
{
    hie_errinfo_t info = {0};
    cr_assert_eq(hie_errinfo_set(&info, HIE_EINVAL, "envelope.id", "missing"), HIE_EINVAL);
    cr_assert_str_eq(info.field, "envelope.id");
    cr_assert_str_eq(info.reason, "missing");
    cr_assert_eq(hie_errinfo_set(NULL, HIE_ELIMIT, "x", "y"), HIE_ELIMIT, "info is optional");
}

Test(base_err, assert_macro_aborts_on_false, .signal = SIGABRT)
{
    volatile int zero = 0;
    HIE_ASSERT(zero == 1);
}

Test(base_err, assert_macro_passes_on_true)
{
    volatile int one = 1;
    HIE_ASSERT(one == 1);
    cr_assert(true, "HIE_ASSERT on a true expression returns");
}

Test(base_err, assert_fail_aborts, .signal = SIGABRT)
{
    hie__assert_fail("expr", "file.c", 1, "func");
}
