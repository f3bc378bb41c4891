/*
 * test_consent_compile.c - the compiled rule table: compile is deterministic and
 * position-independent, its worst case is exactly HIE_CONSENT_COMPILED_BYTES_MAX, and bytes
 * read back are trusted for nothing: every truncation and every single bit flip of valid
 * blobs is refused by hie_consent_compiled_check() and makes hie_consent_decide() fail closed;
 * random structural damage behind a recomputed checksum never crashes (ASan run). Bad
 * requests and policies fail closed too, and misuse trips HIE_ASSERT.
 */
#include "../test_util.h"
#include "test_consent_fixture.h"

#include <signal.h>

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

TestSuite(consent_compile, .init = setup, .fini = teardown);

/* Mirrors consent_int.h (private to broker/): where the checksum lives and what it covers. */
#define HASH_AT 8u
#define HASHED_FROM 16u

/* hie_consent__checksum(): FNV-1a's step over big-endian 8-byte words, then the tail bytes. */
static uint64_t
fnv(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        h = (h ^ hie_load_be64(p + i)) * 0x100000001b3ull;
    }
    for (; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

static hie_span_t
compile_text(const char *text, uint8_t *buf)
{
    size_t len = 0;
    cr_assert_eq(hie_consent_compile(cfx_parse(arena, text), buf, HIE_CONSENT_COMPILED_BYTES_MAX,
        &len, NULL), 0);
    return hie_span(buf, len);
}

static void
expect_fail_closed(hie_span_t blob, int rc_expected)
{
    hie_consent_policy_t pol;
    hie_consent_request_t req;
    char org[64];
    cfx_policy("out bg", &pol); /* the most permissive policy: failing closed must still deny */
    cfx_request("labels=SUD", &req, org);
    hie_consent_decision_t d;
    cr_assert_eq(hie_consent_decide(&pol, &blob, 1, &req, &d), rc_expected);
    cr_assert_eq(d.decision, HIE_CONSENT_DENY);
    cr_assert_str_eq(d.reason, "evaluation-error");
    cr_assert_eq(d.obligations, 0u);
    cr_assert_not(d.break_glass);
    cr_assert_str_eq(d.directive_id, "");
}

static const char *const samples[] = {
    "id=cns-1 v=1 date=10 idx=1 : permit()",
    "id=cns-7 v=4 date=99 idx=12 period=100..900 : deny() { permit(org=org-b,org-c role=lab "
    "pou=treat act=query,push) { deny(label=PSY,SUD class=lab-report data=5..50) } }",
    "id=c3 v=2 date=5 idx=3 revoked : permit(period=1..2) { deny(org=org-zz) deny(pou=research) }",
};

Test(consent_compile, deterministic_and_position_independent)
{
    for (size_t s = 0; s < HIE_ARRAY_LEN(samples); s++) {
        uint8_t *a = cfx_alloc(arena, HIE_CONSENT_COMPILED_BYTES_MAX);
        uint8_t *b = cfx_alloc(arena, HIE_CONSENT_COMPILED_BYTES_MAX + 3);
        hie_span_t x = compile_text(samples[s], a);
        size_t len = 0;
        cr_assert_eq(hie_consent_compile(cfx_parse(arena, samples[s]), b + 3,
            HIE_CONSENT_COMPILED_BYTES_MAX, &len, NULL), 0);
        cr_assert_eq(len, x.len);
        cr_assert_eq(memcmp(a, b + 3, len), 0, "same directive, same bytes");
        cr_assert_eq(hie_consent_compiled_check(hie_span(b + 3, len)), 0, "unaligned copy");
        char id[HIE_CONSENT_ID_BYTES_MAX + 1];
        uint64_t version = 0;
        cr_assert_eq(hie_consent_compiled_id(x, id, sizeof(id), &version), 0);
        cr_assert_eq(strncmp(samples[s] + 3, id, strlen(id)), 0);
        cr_assert_gt(version, 0u);
    }
}

Test(consent_compile, worst_case_is_exactly_the_limit)
{
    Hie__V1__ConsentProvision *root = cfx_prov(arena, HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    Hie__V1__ConsentProvision *all[HIE_CONSENT_PROVISIONS_MAX];
    all[0] = root;
    for (unsigned i = 1; i < HIE_CONSENT_PROVISIONS_MAX; i++) {
        all[i] = cfx_prov(arena, 0);
        cfx_add_child(arena, root, all[i]);
    }
    char org[HIE_ORG_ID_BYTES_MAX + 1];
    for (unsigned i = 0; i < HIE_CONSENT_PROVISIONS_MAX; i++) {
        for (unsigned k = 0; k < HIE_CONSENT_LIST_ITEMS_MAX; k++) {
            memset(org, 'a' + (char)(k % 26), HIE_ORG_ID_BYTES_MAX);
            org[HIE_ORG_ID_BYTES_MAX] = '\0';
            cfx_add_actor(arena, all[i], org, 0);
        }
    }
    char id[HIE_CONSENT_ID_BYTES_MAX + 1];
    memset(id, 'x', HIE_CONSENT_ID_BYTES_MAX);
    id[HIE_CONSENT_ID_BYTES_MAX] = '\0';
    Hie__V1__ConsentDirective *d = cfx_directive(arena, id, 1, 1, 1, root);
    uint8_t *buf = cfx_alloc(arena, HIE_CONSENT_COMPILED_BYTES_MAX);
    size_t len = 0;
    cr_assert_eq(hie_consent_compile(d, buf, HIE_CONSENT_COMPILED_BYTES_MAX, &len, NULL), 0);
    cr_assert_eq(len, (size_t)HIE_CONSENT_COMPILED_BYTES_MAX);
    cr_assert_eq(hie_consent_compile(d, buf, len - 1, &len, NULL), HIE_ELIMIT);
}

Test(consent_compile, every_truncation_refused)
{
    uint8_t *buf = cfx_alloc(arena, HIE_CONSENT_COMPILED_BYTES_MAX);
    unsigned refused = 0;
    for (size_t s = 0; s < HIE_ARRAY_LEN(samples); s++) {
        hie_span_t x = compile_text(samples[s], buf);
        for (size_t len = 0; len < x.len; len++) {
            uint8_t *copy = cfx_alloc(arena, len); /* exact size: ASan sees any over-read */
            memcpy(copy, buf, len);
            hie_span_t t = hie_span(copy, len);
            cr_assert_eq(hie_consent_compiled_check(t), HIE_ECORRUPT, "prefix %zu", len);
            expect_fail_closed(t, HIE_ECORRUPT);
            refused++;
        }
    }
    cr_log_info("%u truncations refused", refused);
}

Test(consent_compile, every_bit_flip_refused)
{
    uint8_t *buf = cfx_alloc(arena, HIE_CONSENT_COMPILED_BYTES_MAX);
    unsigned refused = 0;
    for (size_t s = 0; s < HIE_ARRAY_LEN(samples); s++) {
        hie_span_t x = compile_text(samples[s], buf);
        uint8_t *copy = cfx_alloc(arena, x.len);
        for (size_t bit = 0; bit < x.len * 8; bit++) {
            memcpy(copy, buf, x.len);
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            hie_span_t t = hie_span(copy, x.len);
            cr_assert_eq(hie_consent_compiled_check(t), HIE_ECORRUPT, "bit %zu", bit);
            expect_fail_closed(t, HIE_ECORRUPT);
            refused++;
        }
        /* trailing bytes are damage too */
        uint8_t *longer = cfx_alloc(arena, x.len + 1);
        memcpy(longer, buf, x.len);
        cr_assert_eq(hie_consent_compiled_check(hie_span(longer, x.len + 1)), HIE_ECORRUPT);
    }
    cr_log_info("%u bit flips refused", refused);
}

/* Damage that keeps a valid checksum and length (a bug writing wrong bytes, or a forger):
 * the structural checks alone must stand. Whatever the check says, decide must not crash,
 * and it succeeds exactly when the check accepts. */
Test(consent_compile, structural_damage_behind_valid_checksum)
{
    uint64_t seed = test_seed(0xda3a6eull);
    cfx_rng_t r = {seed | 1};
    uint8_t *buf = cfx_alloc(arena, HIE_CONSENT_COMPILED_BYTES_MAX);
    unsigned accepted = 0, cases = 0;
    for (size_t s = 0; s < HIE_ARRAY_LEN(samples); s++) {
        hie_span_t x = compile_text(samples[s], buf);
        uint8_t *copy = cfx_alloc(arena, x.len);
        for (unsigned i = 0; i < 20000; i++, cases++) {
            memcpy(copy, buf, x.len);
            for (unsigned k = 1 + cfx_below(&r, 3); k > 0; k--) {
                size_t at = HASHED_FROM + cfx_below(&r, (uint32_t)(x.len - HASHED_FROM));
                copy[at] = cfx_below(&r, 2) == 0 ? (uint8_t)cfx_below(&r, 256)
                                                 : (uint8_t)(copy[at] ^ (1u << cfx_below(&r, 8)));
            }
            hie_store_be64(copy + HASH_AT, fnv(copy + HASHED_FROM, x.len - HASHED_FROM));
            hie_span_t t = hie_span(copy, x.len);
            int check = hie_consent_compiled_check(t);
            cr_assert(check == 0 || check == HIE_ECORRUPT);
            hie_consent_policy_t pol;
            hie_consent_request_t req;
            cfx_random_policy(&r, &pol);
            cfx_random_request(&r, &req);
            hie_consent_decision_t d;
            int rc = hie_consent_decide(&pol, &t, 1, &req, &d);
            cr_assert_eq(rc, check);
            cr_assert_not_null(d.reason);
            accepted += check == 0;
        }
    }
    /* flips inside masks or times that stay in range are undetectable by structure alone */
    cr_log_info("%u cases, seed 0x%" PRIx64 " (%u still well-formed)", cases, seed, accepted);
    cr_assert_lt(accepted, cases);
}

Test(consent_compile, garbage_and_empty_spans)
{
    uint8_t junk[512];
    cfx_rng_t r = {0x9a5ba9e1ull};
    for (unsigned i = 0; i < 2000; i++) {
        size_t len = cfx_below(&r, sizeof(junk) + 1);
        for (size_t k = 0; k < len; k++) {
            junk[k] = (uint8_t)cfx_below(&r, 256);
        }
        if (len >= 4 && cfx_below(&r, 2) == 0) {
            memcpy(junk, "HCN1", 4);
            hie_store_be32(junk + 4, (uint32_t)len);
        }
        cr_assert_eq(hie_consent_compiled_check(hie_span(junk, len)), HIE_ECORRUPT);
    }
    cr_assert_eq(hie_consent_compiled_check(hie_span(NULL, 0)), HIE_ECORRUPT);
    expect_fail_closed(hie_span(junk, 0), HIE_ECORRUPT);
    char id[HIE_CONSENT_ID_BYTES_MAX + 1] = "x";
    uint64_t version = 7;
    cr_assert_eq(hie_consent_compiled_id(hie_span(junk, 10), id, sizeof(id), &version),
        HIE_ECORRUPT);
    cr_assert_str_eq(id, "");
    cr_assert_eq(version, 0u);
}

Test(consent_compile, one_corrupt_directive_fails_the_decision)
{
    uint8_t *a = cfx_alloc(arena, HIE_CONSENT_COMPILED_BYTES_MAX);
    uint8_t *b = cfx_alloc(arena, HIE_CONSENT_COMPILED_BYTES_MAX);
    hie_span_t spans[2] = {compile_text("id=c1 v=1 date=10 idx=1 : permit()", a),
        compile_text("id=c2 v=1 date=20 idx=2 : deny()", b)};
    b[spans[1].len - 1] ^= 1; /* the newer deny is damaged: skipping it would permit */
    hie_consent_policy_t pol;
    hie_consent_request_t req;
    char org[64];
    cfx_policy("in", &pol);
    cfx_request("", &req, org);
    hie_consent_decision_t d;
    cr_assert_eq(hie_consent_decide(&pol, spans, 2, &req, &d), HIE_ECORRUPT);
    cr_assert_eq(d.decision, HIE_CONSENT_DENY);
    cr_assert_str_eq(d.reason, "evaluation-error");
}

Test(consent_compile, bad_inputs_fail_closed)
{
    hie_consent_policy_t pol;
    hie_consent_request_t req;
    hie_consent_decision_t d;
    char org[64];
    const Hie__V1__ConsentDirective *none = NULL;
    for (int k = 0; k < 11; k++) {
        cfx_policy("out bg", &pol);
        cfx_request("", &req, org);
        switch (k) {
        case 0: req.requester_org_id = NULL; break;
        case 1: snprintf(org, 64, "Bad Org"); break;
        case 2: req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED; break;
        case 3: req.purpose = (Hie__V1__PurposeOfUse)40; break;
        case 4: req.action = (Hie__V1__ConsentAction)5; break;
        case 5: req.labels = 1u << 20; break;
        case 6: req.doc_class = (enum hie_consent_class)HIE_CONSENT_CLASSES_COUNT; break;
        case 7: req.requester_roles = 1u; break; /* ROLE_UNSPECIFIED */
        case 8: req.data_time_ms = -1; break;
        case 9: pol.regime = (enum hie_consent_regime)0; break;
        default: pol.opt_out_purposes = 1u << 9; break;
        }
        cr_assert_eq(hie_consent_decide(&pol, NULL, 0, &req, &d), HIE_EINVAL, "case %d", k);
        cr_assert_eq(d.decision, HIE_CONSENT_DENY);
        cr_assert_str_eq(d.reason, "evaluation-error");
        cr_assert_eq(hie_consent_decide_tree(&pol, &none, 0, &req, &d), HIE_EINVAL, "case %d", k);
        cr_assert_eq(d.decision, HIE_CONSENT_DENY);
    }
    cfx_policy("out", &pol);
    cfx_request("", &req, org);
    hie_span_t many[HIE_CONSENT_DIRECTIVES_MAX + 1];
    uint8_t *buf = cfx_alloc(arena, HIE_CONSENT_COMPILED_BYTES_MAX);
    hie_span_t one = compile_text("id=c1 v=1 date=10 idx=1 : permit()", buf);
    for (size_t i = 0; i < HIE_ARRAY_LEN(many); i++) {
        many[i] = one;
    }
    cr_assert_eq(hie_consent_decide(&pol, many, HIE_CONSENT_DIRECTIVES_MAX, &req, &d), 0);
    cr_assert_eq(hie_consent_decide(&pol, many, HIE_ARRAY_LEN(many), &req, &d), HIE_ELIMIT);
    cr_assert_str_eq(d.reason, "evaluation-error");
    /* an invalid directive makes the reference evaluator fail closed as well */
    Hie__V1__ConsentDirective *bad = cfx_parse(arena, "id=c1 : permit()");
    bad->status = (Hie__V1__ConsentStatus)9;
    const Hie__V1__ConsentDirective *dirs[1] = {bad};
    cr_assert_eq(hie_consent_decide_tree(&pol, dirs, 1, &req, &d), HIE_EINVAL);
    cr_assert_str_eq(d.reason, "evaluation-error");
}

Test(consent_compile, null_out_aborts, .signal = SIGABRT)
{
    hie_consent_policy_t pol;
    hie_consent_request_t req;
    char org[64];
    cfx_policy("in", &pol);
    cfx_request("", &req, org);
    int rc = hie_consent_decide(&pol, NULL, 0, &req, NULL);
    cr_assert_fail("returned %d", rc);
}

Test(consent_compile, null_spans_with_count_aborts, .signal = SIGABRT)
{
    hie_consent_policy_t pol;
    hie_consent_request_t req;
    hie_consent_decision_t d;
    char org[64];
    cfx_policy("in", &pol);
    cfx_request("", &req, org);
    int rc = hie_consent_decide(&pol, NULL, 1, &req, &d);
    cr_assert_fail("returned %d", rc);
}
