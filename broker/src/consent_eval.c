/*
 * consent_eval.c - hie_consent_decide(): the decision rules of hie/consent.h over compiled
 * directives (consent_int.h layout), without protobuf and without allocation.
 *
 * How: every span is checked first (one corrupt directive fails the whole decision closed).
 * Then, per directive in force, its provisions are decoded once into a small table with the
 * view-independent part of their match (actors, purpose, action, class, periods) and whether
 * they name the requester; each view (the unlabelled part, and each carried sensitivity label)
 * then only adds the label condition. A provision's value is computed in one backward pass
 * over the pre-order table: parents precede children, so every child's value is known when
 * its parent is reached; a non-matching provision contributes nothing, which drops its whole
 * subtree. No recursion; work is O(directives x provisions x views), all bounded by limits.h.
 * Callers: the node's consent check on every exchange that discloses patient data.
 */
#include "consent_int.h"

#include <string.h>

enum val { VAL_DENY = 0, VAL_PERMIT, VAL_PERMIT_NAMED };

/* One decoded provision. */
struct cprov {
    uint8_t type, parent;
    bool base_match; /* every condition but the labels holds */
    bool named_path; /* it or a provision above it lists the requester's org id */
    uint32_t labels; /* the label condition; 0 = none */
};

/* The outcome of one view: the directive that decided it (-1: implicit policy). */
struct view {
    int dir;
    int64_t date_ms;
    uint64_t index;
    enum val value;
};

struct ctx {
    const hie_consent_policy_t *policy;
    const hie_consent_request_t *req;
    size_t org_len;
    uint32_t views_mask; /* bit 0: the unlabelled view; bit l: sensitivity label l */
    struct view views[HIE_CONSENT_LABELS_COUNT];
};

static bool
mask_allows(uint32_t mask, unsigned value)
{
    return mask == 0 || (value < 32 && (mask & (1u << value)) != 0);
}

/* Whether the org ids at o (count entries, already checked) include the requester's. */
static bool
orgs_name(const struct ctx *x, const uint8_t *o, unsigned count, size_t *consumed)
{
    bool found = false;
    size_t off = 0;
    for (unsigned k = 0; k < count; k++) {
        size_t len = o[off];
        if (len == x->org_len && memcmp(o + off + 1, x->req->requester_org_id, len) == 0) {
            found = true;
        }
        off += 1 + len;
    }
    *consumed = off;
    return found;
}

/* Decodes the provision at p into *cp; returns its size in bytes. */
static size_t
prov_decode(const struct ctx *x, const uint8_t *p, struct cprov *cp)
{
    const hie_consent_request_t *req = x->req;
    unsigned orgs = p[HIE_CONSENT__P_ORGS];
    uint32_t roles = hie_load_be32(p + HIE_CONSENT__P_ROLES);
    uint32_t classes = hie_load_be32(p + HIE_CONSENT__P_CLASSES);
    int64_t ds = hie_consent__load_i64(p + HIE_CONSENT__P_DATA_START);
    int64_t de = hie_consent__load_i64(p + HIE_CONSENT__P_DATA_END);
    size_t org_bytes = 0;
    bool names = orgs_name(x, p + HIE_CONSENT__PROV_FIXED_BYTES, orgs, &org_bytes);
    bool actor_ok = (orgs == 0 && roles == 0) || names || (roles & req->requester_roles) != 0;
    bool class_ok = classes == 0 || (req->doc_class != HIE_CONSENT_CLASS_NONE &&
                                        (classes & HIE_CONSENT_CLASS_BIT(req->doc_class)) != 0);
    bool data_ok = (ds == 0 && de == 0) ||
                   (req->data_time_ms != 0 && hie_consent__in_period(ds, de, req->data_time_ms));
    cp->type = p[HIE_CONSENT__P_TYPE];
    cp->parent = p[HIE_CONSENT__P_PARENT];
    cp->labels = hie_load_be32(p + HIE_CONSENT__P_LABELS);
    if ((cp->labels & HIE_CONSENT_LABELS_SUD_UMBRELLA) != 0) {
        cp->labels |= HIE_CONSENT_LABELS_PART2; /* ETH and SUD cover ETHUD and OPIOIDUD */
    }
    cp->named_path = names;
    cp->base_match = actor_ok && class_ok && data_ok &&
        mask_allows(hie_load_be32(p + HIE_CONSENT__P_PURPOSES), (unsigned)req->purpose) &&
        mask_allows(hie_load_be32(p + HIE_CONSENT__P_ACTIONS), (unsigned)req->action) &&
        hie_consent__in_period(hie_consent__load_i64(p + HIE_CONSENT__P_START),
            hie_consent__load_i64(p + HIE_CONSENT__P_END), req->now_ms);
    return HIE_CONSENT__PROV_FIXED_BYTES + org_bytes;
}

static bool
prov_matches(const struct cprov *cp, uint32_t view_labels)
{
    return cp->base_match && (cp->labels == 0 || (cp->labels & view_labels) != 0);
}

/* The root's value in a view (the root is known to match). Backward pass: see file comment. */
static enum val
tree_value(const struct cprov *cps, unsigned count, uint32_t view_labels)
{
    bool seen[HIE_CONSENT_PROVISIONS_MAX] = {0}, deny[HIE_CONSENT_PROVISIONS_MAX] = {0};
    bool named[HIE_CONSENT_PROVISIONS_MAX] = {0};
    HIE_ASSERT(count >= 1);
    HIE_ASSERT(count <= HIE_CONSENT_PROVISIONS_MAX);
    for (unsigned i = count; i-- > 0;) {
        const struct cprov *cp = &cps[i];
        if (i > 0 && !prov_matches(cp, view_labels)) {
            continue;
        }
        enum val v;
        if (seen[i]) {
            v = deny[i] ? VAL_DENY : named[i] ? VAL_PERMIT_NAMED : VAL_PERMIT;
        } else if (cp->type == HIE__V1__PROVISION_TYPE__PROVISION_DENY) {
            v = VAL_DENY;
        } else {
            v = cp->named_path ? VAL_PERMIT_NAMED : VAL_PERMIT;
        }
        if (i == 0) {
            return v;
        }
        HIE_ASSERT(cp->parent < i);
        seen[cp->parent] = true;
        deny[cp->parent] |= v == VAL_DENY;
        named[cp->parent] |= v == VAL_PERMIT_NAMED;
    }
    HIE_ASSERT(0 && "the root is provision 0"); /* the loop always reaches i == 0 */
    return VAL_DENY;
}

/* Whether the directive with header h decides anything at now. */
static bool
in_force(const uint8_t *h, int64_t now)
{
    return h[HIE_CONSENT__H_STATUS] == HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE &&
           (h[HIE_CONSENT__H_FLAGS] & HIE_CONSENT__FLAG_REVOKED) == 0 &&
           hie_consent__in_period(hie_consent__load_i64(h + HIE_CONSENT__H_START),
               hie_consent__load_i64(h + HIE_CONSENT__H_END), now);
}

/* Directive dir (checked) against every view: takes the views where it is applicable and
 * later than the current decider. */
static void
directive_apply(struct ctx *x, int dir, hie_span_t c)
{
    const uint8_t *h = c.ptr;
    int64_t now = x->req->now_ms;
    if (!in_force(h, now)) {
        return; /* not in force: never decides anything */
    }
    int64_t date = hie_consent__load_i64(h + HIE_CONSENT__H_DATE);
    uint64_t index = hie_load_be64(h + HIE_CONSENT__H_INDEX);
    struct cprov cps[HIE_CONSENT_PROVISIONS_MAX];
    unsigned count = h[HIE_CONSENT__H_COUNT];
    size_t off = HIE_CONSENT__HEADER_BYTES + h[HIE_CONSENT__H_IDLEN];
    for (unsigned i = 0; i < count; i++) {
        off += prov_decode(x, c.ptr + off, &cps[i]);
        if (i > 0) {
            cps[i].named_path |= cps[cps[i].parent].named_path;
        }
    }
    HIE_ASSERT(off == c.len);
    uint32_t conf = x->req->labels & HIE_CONSENT_LABELS_CONFIDENTIALITY;
    for (unsigned v = 0; v < HIE_CONSENT_LABELS_COUNT; v++) {
        struct view *vw = &x->views[v];
        uint32_t view_labels = conf | (v > 0 ? HIE_CONSENT_LABEL_BIT(v) : 0);
        bool later = vw->dir < 0 || date > vw->date_ms ||
                     (date == vw->date_ms && index > vw->index);
        if ((x->views_mask & (1u << v)) == 0 || !later || !prov_matches(&cps[0], view_labels)) {
            continue;
        }
        *vw = (struct view){dir, date, index, tree_value(cps, count, view_labels)};
    }
}

/* The deciding directive (header rule 6), copied from its compiled bytes. */
static void
directive_report(hie_consent_decision_t *out, const struct ctx *x, const hie_span_t *compiled,
    uint32_t fallback_labels)
{
    int dir = x->views[0].dir;
    for (unsigned l = 0; dir < 0 && l < HIE_CONSENT_LABELS_COUNT; l++) {
        if ((fallback_labels & HIE_CONSENT_LABEL_BIT(l)) != 0 && x->views[l].dir >= 0) {
            dir = x->views[l].dir;
        }
    }
    if (dir >= 0) {
        const uint8_t *h = compiled[dir].ptr;
        hie_consent__set_directive(out, (const char *)h + HIE_CONSENT__HEADER_BYTES,
            h[HIE_CONSENT__H_IDLEN], hie_load_be64(h + HIE_CONSENT__H_VERSION));
    }
}

/* Combines the views into *out (header rules 1-8). */
static void
combine(hie_consent_decision_t *out, const struct ctx *x, const hie_span_t *compiled)
{
    const hie_consent_request_t *req = x->req;
    const hie_consent_policy_t *policy = x->policy;
    uint32_t sens = req->labels & HIE_CONSENT_LABELS_SENSITIVITY, redact = 0, part2 = 0;
    for (unsigned l = 0; l < HIE_CONSENT_LABELS_COUNT; l++) {
        uint32_t bit = HIE_CONSENT_LABEL_BIT(l);
        if ((sens & bit) == 0) {
            continue;
        }
        if (x->views[l].value == VAL_DENY) {
            redact |= bit;
        } else if ((bit & HIE_CONSENT_LABELS_PART2) != 0 && policy->part2_named_recipient &&
                   x->views[l].value != VAL_PERMIT_NAMED) {
            part2 |= bit;
        }
    }
    bool whole_deny = x->views[0].value == VAL_DENY;
    bool emergency = req->purpose == HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY;
    bool implicit = x->views[0].dir < 0;
    const char *implicit_reason = policy->regime == HIE_CONSENT_OPT_IN ? HIE_CONSENT__R_OPT_IN
                                                                        : HIE_CONSENT__R_OPT_OUT;
    if ((whole_deny || (redact | part2) != 0) && emergency && policy->break_glass_allowed) {
        out->decision = HIE_CONSENT_PERMIT;
        out->break_glass = true;
        out->reason = HIE_CONSENT__R_BREAK_GLASS;
        directive_report(out, x, compiled, redact | part2);
        redact = part2 = 0;
    } else if (whole_deny) {
        out->decision = HIE_CONSENT_DENY;
        out->reason = emergency ? HIE_CONSENT__R_NO_BREAK_GLASS
                      : implicit ? implicit_reason : HIE_CONSENT__R_DENY;
        out->accounting_excluded = true;
        out->confidentiality = hie_consent__high_water(req->labels, sens != 0);
        directive_report(out, x, compiled, 0);
        return;
    } else {
        out->decision = HIE_CONSENT_PERMIT;
        out->reason = part2 != 0 ? HIE_CONSENT__R_PART2 : redact != 0 ? HIE_CONSENT__R_REDACT
                      : implicit ? implicit_reason : HIE_CONSENT__R_PERMIT;
        directive_report(out, x, compiled, redact | part2);
    }
    uint32_t disclosed = sens & ~(redact | part2);
    out->obligations = redact | part2;
    if ((disclosed & HIE_CONSENT_LABELS_PART2) != 0) {
        out->obligations |= HIE_CONSENT_OBL_PART2_NOTICE;
        out->refrains |= HIE_CONSENT_REFRAIN_NORDSCLCD;
    }
    out->confidentiality = hie_consent__high_water(req->labels, disclosed != 0);
    unsigned p = (unsigned)req->purpose;
    out->accounting_excluded = !out->break_glass &&
        (p == HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT ||
            p == HIE__V1__PURPOSE_OF_USE__PURPOSE_PAYMENT ||
            p == HIE__V1__PURPOSE_OF_USE__PURPOSE_OPERATIONS ||
            p == HIE__V1__PURPOSE_OF_USE__PURPOSE_PATIENT_REQUEST);
}

/* The implicit policy's value for every view (header: "Applicable directive"). */
static enum val
implicit_value(const hie_consent_policy_t *policy, const hie_consent_request_t *req)
{
    if (policy->regime == HIE_CONSENT_OPT_OUT &&
        (policy->opt_out_purposes & HIE_CONSENT_PURPOSE_BIT(req->purpose)) != 0) {
        return VAL_PERMIT;
    }
    return VAL_DENY;
}

static void decide_core(const hie_consent_policy_t *policy, const hie_span_t *compiled,
    size_t n, const hie_consent_request_t *req, hie_consent_decision_t *out);

int
hie_consent_decide(const hie_consent_policy_t *policy, const hie_span_t *compiled, size_t n,
    const hie_consent_request_t *req, hie_consent_decision_t *out)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(policy != NULL);
    HIE_ASSERT(req != NULL);
    if (n > 0) {
        HIE_ASSERT(compiled != NULL);
    }
    memset(out, 0, sizeof(*out));
    int rc = hie_consent__inputs_check(policy, req);
    if (rc != 0) {
        return hie_consent__fail(out, rc);
    }
    if (n > HIE_CONSENT_DIRECTIVES_MAX) {
        return hie_consent__fail(out, HIE_ELIMIT);
    }
    for (size_t i = 0; i < n; i++) {
        if (hie_consent_compiled_check(compiled[i]) != 0) {
            return hie_consent__fail(out, HIE_ECORRUPT);
        }
    }
    decide_core(policy, compiled, n, req, out);
    return 0;
}

/* The decision over checked spans (hie_consent_decide without its checks). */
static void
decide_core(const hie_consent_policy_t *policy, const hie_span_t *compiled, size_t n,
    const hie_consent_request_t *req, hie_consent_decision_t *out)
{
    memset(out, 0, sizeof(*out));
    struct ctx x = {.policy = policy, .req = req};
    x.org_len = strlen(req->requester_org_id);
    x.views_mask = 1u | (req->labels & HIE_CONSENT_LABELS_SENSITIVITY);
    enum val implicit = implicit_value(policy, req);
    for (unsigned v = 0; v < HIE_CONSENT_LABELS_COUNT; v++) {
        x.views[v] = (struct view){-1, 0, 0, implicit};
    }
    for (size_t i = 0; i < n; i++) {
        directive_apply(&x, (int)i, compiled[i]);
    }
    combine(out, &x, compiled);
    HIE_ASSERT(out->reason != NULL);
    if (out->decision == HIE_CONSENT_DENY) {
        HIE_ASSERT(out->obligations == 0);
        HIE_ASSERT(!out->break_glass);
    }
}

/* ---- documents of unknown class or data time ------------------------------------------- */

/* The axes an unknown class or time is decided over, from the directives in force at now. */
struct axes {
    uint32_t classes;                            /* classes some provision names */
    int64_t bounds[HIE_CONSENT_UNKNOWN_BOUNDS_MAX]; /* distinct data-period bounds, sorted */
    size_t n_bounds;
};

/* Adds bound b (non-zero) to the sorted set; false when the set is full. */
static bool
bound_add(struct axes *ax, int64_t b)
{
    size_t i = 0;
    while (i < ax->n_bounds && ax->bounds[i] < b) {
        i++;
    }
    if (i < ax->n_bounds && ax->bounds[i] == b) {
        return true;
    }
    if (ax->n_bounds == HIE_CONSENT_UNKNOWN_BOUNDS_MAX) {
        return false;
    }
    memmove(&ax->bounds[i + 1], &ax->bounds[i], (ax->n_bounds - i) * sizeof(ax->bounds[0]));
    ax->bounds[i] = b;
    ax->n_bounds++;
    return true;
}

/* The classes and bounds of the directives in force (spans checked). 0 or HIE_ELIMIT. */
static int
axes_gather(const hie_span_t *compiled, size_t n, int64_t now, struct axes *ax)
{
    ax->classes = 0;
    ax->n_bounds = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *h = compiled[i].ptr;
        if (!in_force(h, now)) {
            continue;
        }
        size_t off = HIE_CONSENT__HEADER_BYTES + h[HIE_CONSENT__H_IDLEN];
        for (unsigned k = 0; k < h[HIE_CONSENT__H_COUNT]; k++) {
            const uint8_t *p = h + off;
            int64_t ds = hie_consent__load_i64(p + HIE_CONSENT__P_DATA_START);
            int64_t de = hie_consent__load_i64(p + HIE_CONSENT__P_DATA_END);
            ax->classes |= hie_load_be32(p + HIE_CONSENT__P_CLASSES);
            if ((ds != 0 && !bound_add(ax, ds)) || (de != 0 && !bound_add(ax, de))) {
                return HIE_ELIMIT;
            }
            size_t orgs = 0;
            for (unsigned o = 0; o < p[HIE_CONSENT__P_ORGS]; o++) {
                orgs += 1u + p[HIE_CONSENT__PROV_FIXED_BYTES + orgs];
            }
            off += HIE_CONSENT__PROV_FIXED_BYTES + orgs;
        }
        HIE_ASSERT(off == compiled[i].len);
    }
    return 0;
}

static int
verdict_rank(const hie_consent_decision_t *d)
{
    return !hie_consent_permitted(d) ? 2 : d->break_glass ? 1 : 0;
}

/* Folds candidate d into *out: the most restrictive outcome stands (a deny, then a
 * break-glass, then a permit), and a permit keeps every candidate's obligations. */
static void
verdict_fold(hie_consent_decision_t *out, const hie_consent_decision_t *d)
{
    uint32_t obl = out->obligations | d->obligations, refrains = out->refrains | d->refrains;
    enum hie_consent_label conf = out->confidentiality > d->confidentiality
        ? out->confidentiality : d->confidentiality;
    bool excluded = out->accounting_excluded && d->accounting_excluded;
    if (verdict_rank(d) > verdict_rank(out)) {
        *out = *d;
    }
    if (hie_consent_permitted(out)) {
        out->obligations = obl;
        out->refrains = refrains;
        out->confidentiality = conf;
        out->accounting_excluded = excluded;
    }
}

/* The candidate times: t itself when known; else 1 ms (data times are positive: 0 says
 * unknown) and every bound: periods are [start, end), so every decision is constant from one
 * bound up to the next. */
static size_t
times_of(const struct axes *ax, int64_t t, int64_t *out)
{
    size_t k = 0;
    if (t != 0) {
        out[k++] = t;
        return k;
    }
    out[k++] = 1;
    for (size_t i = 0; i < ax->n_bounds; i++) {
        if (ax->bounds[i] > 1) {
            out[k++] = ax->bounds[i];
        }
    }
    return k;
}

int
hie_consent_decide_unknown(const hie_consent_policy_t *policy, const hie_span_t *compiled,
    size_t n, const hie_consent_request_t *req, hie_consent_decision_t *out)
{
    hie_consent_decision_t d;
    int rc = hie_consent_decide(policy, compiled, n, req, &d); /* checks everything once */
    if (rc != 0 || (req->doc_class != HIE_CONSENT_CLASS_NONE && req->data_time_ms != 0)) {
        *out = d;
        return rc;
    }
    struct axes ax;
    if (axes_gather(compiled, n, req->now_ms, &ax) != 0) {
        return hie_consent__fail(out, HIE_ELIMIT);
    }
    int64_t times[1 + HIE_CONSENT_UNKNOWN_BOUNDS_MAX];
    size_t nt = times_of(&ax, req->data_time_ms, times);
    /* the classes a provision names, and one that none names (they all decide alike) */
    uint32_t want = req->doc_class != HIE_CONSENT_CLASS_NONE
        ? HIE_CONSENT_CLASS_BIT(req->doc_class) : ax.classes;
    for (unsigned c = 1; req->doc_class == HIE_CONSENT_CLASS_NONE &&
                         c < HIE_CONSENT_CLASSES_COUNT; c++) {
        if ((ax.classes & HIE_CONSENT_CLASS_BIT(c)) == 0) {
            want |= HIE_CONSENT_CLASS_BIT(c);
            break;
        }
    }
    bool first = true;
    for (unsigned c = 1; c < HIE_CONSENT_CLASSES_COUNT; c++) {
        for (size_t i = 0; (want & HIE_CONSENT_CLASS_BIT(c)) != 0 && i < nt; i++) {
            hie_consent_request_t one = *req;
            one.doc_class = (enum hie_consent_class)c;
            one.data_time_ms = times[i];
            decide_core(policy, compiled, n, &one, &d);
            if (first) {
                *out = d;
                first = false;
            } else {
                verdict_fold(out, &d);
            }
        }
    }
    HIE_ASSERT(!first); /* one class at least: the known one, or a named or unnamed one */
    return 0;
}
