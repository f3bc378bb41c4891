/*
 * test_consent_props.c - property tests of the consent engine (reference.md section 6, S5),
 * over seeded random directives and requests (HIE_TEST_SEED replays a run):
 *   - the compiled evaluator and the reference tree evaluator agree in every field;
 *   - expired (or not yet valid) directives never decide: the decision is the one with no
 *     directive on file, so under opt-in without break-glass it never permits;
 *   - revoked or inactive directives never decide: removing them changes nothing;
 *   - a deny at level k is reversed only by a matching level k+1: over trees whose match of
 *     every provision is fixed by construction, the outcome is DENY exactly when some
 *     provision on a path of matching provisions is a deny with no matching child.
 * Each test prints "N cases, seed S".
 */
#include "../test_util.h"
#include "test_consent_fixture.h"

#define DIRS_MAX 6u

struct set {
    hie_arena_t *arena;
    const Hie__V1__ConsentDirective *dirs[DIRS_MAX];
    uint8_t *bufs[DIRS_MAX];
    hie_span_t spans[DIRS_MAX];
    size_t n;
};

static void
set_init(struct set *s)
{
    memset(s, 0, sizeof(*s));
    cr_assert_eq(hie_arena_create(&s->arena, CFX_ARENA_BYTES), 0);
    for (size_t i = 0; i < DIRS_MAX; i++) {
        s->bufs[i] = cfx_alloc(s->arena, HIE_CONSENT_COMPILED_BYTES_MAX);
    }
}

/* Both evaluators; asserts they agree and succeed. */
static void
decide_both(const struct set *s, const hie_consent_policy_t *pol,
    const hie_consent_request_t *req, hie_consent_decision_t *out, uint64_t seed, unsigned i)
{
    hie_consent_decision_t tree;
    cr_assert_eq(hie_consent_decide(pol, s->spans, s->n, req, out), 0);
    cr_assert_eq(hie_consent_decide_tree(pol, s->dirs, s->n, req, &tree), 0);
    const char *diff = cfx_decision_diff(out, &tree);
    cr_assert_null(diff, "case %u (seed 0x%" PRIx64 "): evaluators differ in %s", i, seed,
        diff != NULL ? diff : "");
}

Test(consent_props, compiled_equals_tree)
{
    uint64_t seed = test_seed(0xc0115e7001ull);
    cfx_rng_t r = {seed | 1};
    struct set s;
    set_init(&s);
    const unsigned cases = 20000;
    unsigned permits = 0, redacts = 0, bg = 0;
    for (unsigned i = 0; i < cases; i++) {
        if (i % 500 == 0) { /* a fresh arena now and then keeps memory bounded */
            hie_arena_destroy(&s.arena);
            set_init(&s);
        }
        s.n = cfx_below(&r, DIRS_MAX + 1);
        for (size_t k = 0; k < s.n; k++) {
            s.dirs[k] = cfx_random_directive(s.arena, &r, (unsigned)k + 1);
        }
        cfx_compile_all(s.dirs, s.n, s.bufs, s.spans);
        hie_consent_policy_t pol;
        hie_consent_request_t req;
        cfx_random_policy(&r, &pol);
        cfx_random_request(&r, &req);
        hie_consent_decision_t d;
        decide_both(&s, &pol, &req, &d, seed, i);
        permits += d.decision == HIE_CONSENT_PERMIT;
        redacts += (d.obligations & HIE_CONSENT_OBL_REDACT_MASK) != 0;
        bg += d.break_glass;
    }
    /* the generator must reach every kind of outcome, or agreement proves little */
    cr_assert_gt(permits, cases / 10);
    cr_assert_lt(permits, cases - cases / 10);
    cr_assert_gt(redacts, 100u);
    cr_assert_gt(bg, 100u);
    cr_log_info("%u cases, seed 0x%" PRIx64 " (%u permits, %u with redactions, %u break-glass)",
        cases, seed, permits, redacts, bg);
    hie_arena_destroy(&s.arena);
}

Test(consent_props, expired_directives_never_decide)
{
    uint64_t seed = test_seed(0xe4b12edull);
    cfx_rng_t r = {seed | 1};
    struct set s, none;
    set_init(&s);
    set_init(&none);
    const unsigned cases = 5000;
    for (unsigned i = 0; i < cases; i++) {
        hie_consent_request_t req;
        hie_consent_policy_t pol;
        cfx_random_request(&r, &req);
        cfx_random_policy(&r, &pol);
        req.now_ms += 1000; /* now in 1000..1499 */
        s.n = 1 + cfx_below(&r, DIRS_MAX);
        for (size_t k = 0; k < s.n; k++) {
            Hie__V1__ConsentDirective *d = cfx_random_directive(s.arena, &r, (unsigned)k + 1);
            d->status = HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE;
            d->revoked_ms = 0;
            d->revoked_by = (char *)"";
            bool not_yet = cfx_below(&r, 4) == 0; /* also: not yet valid */
            int64_t edge = req.now_ms - (int64_t)cfx_below(&r, 3); /* end == now is expired */
            d->period = not_yet ? cfx_period(s.arena, req.now_ms + 1 + cfx_below(&r, 5), 0)
                                : cfx_period(s.arena, edge > 500 ? 500 : 0, edge);
            s.dirs[k] = d;
        }
        cfx_compile_all(s.dirs, s.n, s.bufs, s.spans);
        hie_consent_decision_t with, without;
        decide_both(&s, &pol, &req, &with, seed, i);
        decide_both(&none, &pol, &req, &without, seed, i);
        cr_assert_null(cfx_decision_diff(&with, &without), "case %u (seed 0x%" PRIx64 ")", i,
            seed);
        cr_assert_str_eq(with.directive_id, "");
        if (pol.regime == HIE_CONSENT_OPT_IN && !pol.break_glass_allowed) {
            cr_assert_eq(with.decision, HIE_CONSENT_DENY, "case %u: expired, yet permitted", i);
        }
    }
    cr_log_info("%u cases, seed 0x%" PRIx64, cases, seed);
    hie_arena_destroy(&s.arena);
    hie_arena_destroy(&none.arena);
}

Test(consent_props, revoked_or_inactive_never_decide)
{
    uint64_t seed = test_seed(0x4e70cedull);
    cfx_rng_t r = {seed | 1};
    struct set all, live;
    set_init(&all);
    set_init(&live);
    const unsigned cases = 5000;
    unsigned took_effect = 0;
    for (unsigned i = 0; i < cases; i++) {
        if (i % 500 == 0) {
            hie_arena_destroy(&all.arena);
            set_init(&all);
        }
        all.n = 1 + cfx_below(&r, DIRS_MAX);
        live.n = 0;
        for (size_t k = 0; k < all.n; k++) {
            Hie__V1__ConsentDirective *d = cfx_random_directive(all.arena, &r, (unsigned)k + 1);
            bool dead = d->status != HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE || d->revoked_ms != 0;
            all.dirs[k] = d;
            if (!dead) {
                live.dirs[live.n++] = d;
            }
        }
        took_effect += live.n < all.n;
        cfx_compile_all(all.dirs, all.n, all.bufs, all.spans);
        cfx_compile_all(live.dirs, live.n, live.bufs, live.spans);
        hie_consent_policy_t pol;
        hie_consent_request_t req;
        cfx_random_policy(&r, &pol);
        cfx_random_request(&r, &req);
        hie_consent_decision_t with, without;
        decide_both(&all, &pol, &req, &with, seed, i);
        decide_both(&live, &pol, &req, &without, seed, i);
        cr_assert_null(cfx_decision_diff(&with, &without), "case %u (seed 0x%" PRIx64 ")", i,
            seed);
    }
    cr_assert_gt(took_effect, cases / 5);
    cr_log_info("%u cases, seed 0x%" PRIx64 " (%u with a revoked or inactive directive)", cases,
        seed, took_effect);
    hie_arena_destroy(&all.arena);
    hie_arena_destroy(&live.arena);
}

/* ---- trees whose matching is fixed by construction ---------------------------------------- */
/* The request of the controlled trees: org-b (hospital), treatment, query, content labelled N,
 * a lab report dated 250, decided at 250. */
static void
controlled_request(hie_consent_request_t *req)
{
    memset(req, 0, sizeof(*req));
    req->requester_org_id = "org-b";
    req->requester_roles = HIE_CONSENT_ROLE_BIT(HIE__V1__ROLE__ROLE_HOSPITAL);
    req->purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
    req->action = HIE__V1__CONSENT_ACTION__CONSENT_ACTION_QUERY;
    req->labels = HIE_CONSENT_LABEL_BIT(HIE_CONSENT_LABEL_N);
    req->doc_class = HIE_CONSENT_CLASS_LAB_REPORT;
    req->data_time_ms = 250;
    req->now_ms = 250;
}

/* Adds condition kind k to p, satisfied by controlled_request() or not. */
static void
controlled_cond(hie_arena_t *a, Hie__V1__ConsentProvision *p, unsigned k, bool ok)
{
    switch (k) {
    case 0: cfx_add_actor(a, p, ok ? "org-b" : "org-c", 0); break;
    case 1:
        cfx_add_actor(a, p, NULL, ok ? HIE__V1__ROLE__ROLE_HOSPITAL : HIE__V1__ROLE__ROLE_PAYER);
        break;
    case 2: cfx_add_purpose(a, p, ok ? HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT
                                     : HIE__V1__PURPOSE_OF_USE__PURPOSE_RESEARCH); break;
    case 3: cfx_add_action(a, p, ok ? HIE__V1__CONSENT_ACTION__CONSENT_ACTION_QUERY
                                    : HIE__V1__CONSENT_ACTION__CONSENT_ACTION_PUSH); break;
    case 4: cfx_add_class(a, p, ok ? "lab-report" : "referral"); break;
    case 5: p->period = ok ? cfx_period(a, 200, 300) : cfx_period(a, 251, 0); break;
    case 6: p->data_period = ok ? cfx_period(a, 250, 251) : cfx_period(a, 1, 250); break;
    default: cfx_add_label(a, p, ok ? "N" : "PSY"); break;
    }
}

/* A provision that matches the controlled request exactly when match is true. Returns its
 * expected value: true for DENY. */
static bool
controlled_prov(hie_arena_t *a, cfx_rng_t *r, int type, unsigned depth, bool match,
    Hie__V1__ConsentProvision **out, unsigned *budget)
{
    Hie__V1__ConsentProvision *p = cfx_prov(a, cfx_below(r, 2) == 0 || depth == 1 ? type : 0);
    (*budget)--;
    /* A list matches when any item does, so the one failing condition of a non-matching
     * provision is alone in its list (kinds 0 and 1 share the actors list). */
    unsigned bad = match ? 8 : cfx_below(r, 8);
    for (unsigned k = 0; k < 8; k++) {
        if (k == bad) {
            controlled_cond(a, p, k, false);
        } else if (cfx_below(r, 4) == 0 && !(bad <= 1 && k <= 1)) {
            controlled_cond(a, p, k, true);
        }
    }
    int child = type == HIE__V1__PROVISION_TYPE__PROVISION_DENY
                    ? HIE__V1__PROVISION_TYPE__PROVISION_PERMIT
                    : HIE__V1__PROVISION_TYPE__PROVISION_DENY;
    bool any_match = false, any_deny = false;
    for (unsigned k = depth < 6 ? cfx_below(r, 4) : 0; k > 0 && *budget > 0; k--) {
        Hie__V1__ConsentProvision *c;
        bool m = cfx_below(r, 2) == 0;
        bool deny = controlled_prov(a, r, child, depth + 1, m, &c, budget);
        cfx_add_child(a, p, c);
        any_match |= m;
        any_deny |= m && deny;
    }
    *out = p;
    /* The rule under test, stated structurally: a matching deny with no matching child
     * stands; any other value comes from the matching children (deny overrides). */
    return any_match ? any_deny : type == HIE__V1__PROVISION_TYPE__PROVISION_DENY;
}

Test(consent_props, deny_reversed_only_by_matching_next_level)
{
    uint64_t seed = test_seed(0x1e7e1ull);
    cfx_rng_t r = {seed | 1};
    struct set s;
    set_init(&s);
    hie_consent_policy_t pol;
    hie_consent_policy_init(&pol); /* opt-in, no break-glass */
    hie_consent_request_t req;
    controlled_request(&req);
    const unsigned cases = 10000;
    unsigned denies = 0;
    for (unsigned i = 0; i < cases; i++) {
        if (i % 1000 == 0) {
            hie_arena_destroy(&s.arena);
            set_init(&s);
        }
        int type = cfx_below(&r, 2) == 0 ? HIE__V1__PROVISION_TYPE__PROVISION_DENY
                                         : HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
        Hie__V1__ConsentProvision *root;
        unsigned budget = HIE_CONSENT_PROVISIONS_MAX;
        bool deny = controlled_prov(s.arena, &r, type, 1, true, &root, &budget);
        s.dirs[0] = cfx_directive(s.arena, "c1", 1, 10, 1, root);
        s.n = 1;
        cfx_compile_all(s.dirs, 1, s.bufs, s.spans);
        hie_consent_decision_t d;
        decide_both(&s, &pol, &req, &d, seed, i);
        cr_assert_eq(d.decision, deny ? HIE_CONSENT_DENY : HIE_CONSENT_PERMIT,
            "case %u (seed 0x%" PRIx64 "): expected %s", i, seed, deny ? "deny" : "permit");
        cr_assert_str_eq(d.reason, deny ? "consent-deny" : "consent-permit");
        cr_assert_str_eq(d.directive_id, "c1");
        denies += deny;
    }
    cr_assert_gt(denies, cases / 5);
    cr_assert_lt(denies, cases - cases / 5);
    cr_log_info("%u cases, seed 0x%" PRIx64 " (%u denies)", cases, seed, denies);
    hie_arena_destroy(&s.arena);
}

/* A document of unknown class or date (hie_consent_decide_unknown) is decided as its most
 * restrictive possible value: denied exactly when some concrete class and date would be
 * denied; else flagged break-glass when some would be; else permitted with every concrete
 * decision's obligations. Concrete dates: every side of every bound the generator uses. */
Test(consent_props, unknown_class_or_date_is_decided_as_its_most_restrictive_value)
{
    uint64_t seed = test_seed(0x0bca55e5ull);
    cfx_rng_t r = {seed | 1};
    struct set s;
    set_init(&s);
    const unsigned cases = 2000;
    unsigned denied = 0, permitted = 0;
    int64_t times[64];
    size_t nt = 0;
    for (int64_t t = 50; t <= 850; t += 50) {
        times[nt++] = t;
        if (t % 100 == 0) {
            times[nt++] = t - 1;
            times[nt++] = t + 1;
        }
    }
    times[nt++] = 1;
    for (unsigned i = 0; i < cases; i++) {
        if (i % 200 == 0) {
            hie_arena_destroy(&s.arena);
            set_init(&s);
        }
        s.n = cfx_below(&r, DIRS_MAX + 1);
        for (size_t k = 0; k < s.n; k++) {
            s.dirs[k] = cfx_random_directive(s.arena, &r, (unsigned)k + 1);
        }
        cfx_compile_all(s.dirs, s.n, s.bufs, s.spans);
        hie_consent_policy_t pol;
        hie_consent_request_t req;
        cfx_random_policy(&r, &pol);
        cfx_random_request(&r, &req);
        req.action = HIE__V1__CONSENT_ACTION__CONSENT_ACTION_QUERY;
        unsigned unknown = 1 + cfx_below(&r, 3); /* 1 class, 2 date, 3 both */
        req.doc_class = (unknown & 1) ? HIE_CONSENT_CLASS_NONE
                                      : (enum hie_consent_class)(1 + cfx_below(&r, 10));
        req.data_time_ms = (unknown & 2) ? 0 : times[cfx_below(&r, (uint32_t)nt)];
        hie_consent_decision_t u, d;
        cr_assert_eq(hie_consent_decide_unknown(&pol, s.spans, s.n, &req, &u), 0);
        bool any_deny = false, any_glass = false;
        uint32_t obl = 0;
        for (unsigned c = 1; c < HIE_CONSENT_CLASSES_COUNT; c++) {
            for (size_t t = 0; t < nt; t++) {
                hie_consent_request_t one = req;
                one.doc_class = (unknown & 1) ? (enum hie_consent_class)c : req.doc_class;
                one.data_time_ms = (unknown & 2) ? times[t] : req.data_time_ms;
                cr_assert_eq(hie_consent_decide(&pol, s.spans, s.n, &one, &d), 0);
                any_deny |= !hie_consent_permitted(&d);
                any_glass |= hie_consent_permitted(&d) && d.break_glass;
                obl |= hie_consent_permitted(&d) ? d.obligations : 0;
            }
        }
        cr_assert_eq(!hie_consent_permitted(&u), any_deny, "case %u (seed 0x%" PRIx64 "): "
            "unknown %s, some concrete value %s", i, seed,
            hie_consent_permitted(&u) ? "permitted" : "denied", any_deny ? "denied" : "not");
        if (!any_deny) {
            cr_assert_eq(u.break_glass, any_glass, "case %u (seed 0x%" PRIx64 ")", i, seed);
            cr_assert_eq(u.obligations & obl, obl, "case %u (seed 0x%" PRIx64 "): obligations",
                i, seed);
        }
        denied += any_deny;
        permitted += !any_deny;
    }
    cr_assert_gt(denied, cases / 10);
    cr_assert_gt(permitted, cases / 10);
    cr_log_info("%u cases, seed 0x%" PRIx64 " (%u denied)", cases, seed, denied);
    hie_arena_destroy(&s.arena);
}
