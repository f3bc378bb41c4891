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

/* Directive dir (checked) against every view: takes the views where it is applicable and
 * later than the current decider. */
static void
directive_apply(struct ctx *x, int dir, hie_span_t c)
{
    const uint8_t *h = c.ptr;
    int64_t now = x->req->now_ms;
    if (h[HIE_CONSENT__H_STATUS] != HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE ||
        (h[HIE_CONSENT__H_FLAGS] & HIE_CONSENT__FLAG_REVOKED) != 0 ||
        !hie_consent__in_period(hie_consent__load_i64(h + HIE_CONSENT__H_START),
            hie_consent__load_i64(h + HIE_CONSENT__H_END), now)) {
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
    return 0;
}

int
hie_consent_data_bounds(const hie_span_t *compiled, size_t n, int64_t *out, size_t cap,
    size_t *count)
{
    HIE_ASSERT(count != NULL && (cap == 0 || out != NULL));
    HIE_ASSERT(n == 0 || compiled != NULL);
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        if (hie_consent_compiled_check(compiled[i]) != 0) {
            return HIE_ECORRUPT;
        }
        const uint8_t *h = compiled[i].ptr;
        size_t off = HIE_CONSENT__HEADER_BYTES + h[HIE_CONSENT__H_IDLEN];
        for (unsigned k = 0; k < h[HIE_CONSENT__H_COUNT]; k++) {
            const uint8_t *p = h + off;
            int64_t b[2] = {hie_consent__load_i64(p + HIE_CONSENT__P_DATA_START),
                hie_consent__load_i64(p + HIE_CONSENT__P_DATA_END)};
            for (unsigned j = 0; j < 2; j++) {
                if (b[j] != 0 && *count < cap) {
                    out[*count] = b[j];
                }
                *count += b[j] != 0;
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
