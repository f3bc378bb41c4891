/*
 * consent_tree.c - hie_consent_decide_tree(): the reference evaluator. It applies the rules
 * of hie/consent.h straight from their wording, walking the protobuf directives (strings
 * compared as strings, lists scanned as lists), and shares no evaluation code with
 * consent_eval.c, so the two can check each other (tests, fuzz_consent). Not for the hot path.
 *
 * Recursion: node_value() recurses over the provision tree. That is an exception to "no
 * recursion over external data", made because this evaluator must stay a literal reading of
 * the rules: every directive is validated first, which bounds the depth by
 * HIE_CONSENT_DEPTH_MAX (8 frames) and the work by HIE_CONSENT_PROVISIONS_MAX.
 * Callers: tests/unit/broker, tests/fuzz/fuzz_consent.c, bench/bench_consent.c (baseline).
 */
#include "consent_int.h"

#include <string.h>

/* What a view of the content decided, and by which directive (NULL: the implicit policy). */
struct outcome {
    const Hie__V1__ConsentDirective *by;
    bool permit;
    bool named; /* a permit whose deciding path names the requester's org id */
};

static bool
period_holds(const Hie__V1__ConsentPeriod *p, int64_t t_ms)
{
    if (p == NULL || (p->start_ms == 0 && p->end_ms == 0)) {
        return true;
    }
    return hie_consent__in_period(p->start_ms, p->end_ms, t_ms);
}

static bool
names_requester(const Hie__V1__ConsentProvision *p, const hie_consent_request_t *req)
{
    for (size_t i = 0; i < p->n_actors; i++) {
        if (p->actors[i]->org_id[0] != '\0' &&
            strcmp(p->actors[i]->org_id, req->requester_org_id) == 0) {
            return true;
        }
    }
    return false;
}

static bool
actors_hold(const Hie__V1__ConsentProvision *p, const hie_consent_request_t *req)
{
    if (p->n_actors == 0 || names_requester(p, req)) {
        return true;
    }
    for (size_t i = 0; i < p->n_actors; i++) {
        Hie__V1__Role role = p->actors[i]->role;
        if (role != 0 && (req->requester_roles & (1u << (unsigned)role)) != 0) {
            return true;
        }
    }
    return false;
}

/* Does a condition on code hold for content carrying label l? Exact codes, except that ETH
 * and SUD (substance use as a whole) also hold for ETH, ETHUD, OPIOIDUD and SUD. */
static bool
label_holds(const char *code, unsigned l)
{
    const char *name = hie_consent_label_name(l);
    if (strcmp(code, name) == 0) {
        return true;
    }
    bool umbrella = strcmp(code, "ETH") == 0 || strcmp(code, "SUD") == 0;
    return umbrella && (strcmp(name, "ETH") == 0 || strcmp(name, "ETHUD") == 0 ||
                           strcmp(name, "OPIOIDUD") == 0 || strcmp(name, "SUD") == 0);
}

/* Does the content seen through a view carry one of the provision's labels? */
static bool
labels_hold(const Hie__V1__ConsentProvision *p, uint32_t view_labels)
{
    if (p->n_security_labels == 0) {
        return true;
    }
    for (size_t i = 0; i < p->n_security_labels; i++) {
        for (unsigned l = 0; l < HIE_CONSENT_LABELS_COUNT; l++) {
            if ((view_labels & (1u << l)) != 0 && label_holds(p->security_labels[i], l)) {
                return true;
            }
        }
    }
    return false;
}

static bool
classes_hold(const Hie__V1__ConsentProvision *p, const hie_consent_request_t *req)
{
    if (p->n_classes == 0) {
        return true;
    }
    for (size_t i = 0; req->doc_class != HIE_CONSENT_CLASS_NONE && i < p->n_classes; i++) {
        if (strcmp(p->classes[i], hie_consent_class_name(req->doc_class)) == 0) {
            return true;
        }
    }
    return false;
}

static bool
provision_holds(const Hie__V1__ConsentProvision *p, const hie_consent_request_t *req,
    uint32_t view_labels)
{
    bool purpose_ok = p->n_purposes == 0, action_ok = p->n_actions == 0;
    for (size_t i = 0; i < p->n_purposes; i++) {
        purpose_ok |= p->purposes[i] == req->purpose;
    }
    for (size_t i = 0; i < p->n_actions; i++) {
        action_ok |= p->actions[i] == req->action;
    }
    const Hie__V1__ConsentPeriod *dp = p->data_period;
    bool data_ok = dp == NULL || (dp->start_ms == 0 && dp->end_ms == 0) ||
                   (req->data_time_ms != 0 && period_holds(dp, req->data_time_ms));
    return purpose_ok && action_ok && data_ok && actors_hold(p, req) &&
           labels_hold(p, view_labels) && classes_hold(p, req) &&
           period_holds(p->period, req->now_ms);
}

/* The value of a matching provision whose effective type is permit (or deny): its own type,
 * unless matching children exist; then deny if any of their values is deny. */
static struct outcome
node_value(const Hie__V1__ConsentProvision *p, bool permit, bool named_above,
    const hie_consent_request_t *req, uint32_t view_labels)
{
    bool named = named_above || names_requester(p, req);
    bool any_child = false, child_deny = false, child_named = false;
    for (size_t i = 0; i < p->n_provisions; i++) {
        if (provision_holds(p->provisions[i], req, view_labels)) {
            struct outcome o = node_value(p->provisions[i], !permit, named, req, view_labels);
            any_child = true;
            child_deny |= !o.permit;
            child_named |= o.permit && o.named;
        }
    }
    if (!any_child) {
        return (struct outcome){NULL, permit, permit && named};
    }
    return (struct outcome){NULL, !child_deny, !child_deny && child_named};
}

static bool
in_force(const Hie__V1__ConsentDirective *d, int64_t now_ms)
{
    return d->status == HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE && d->revoked_ms == 0 &&
           (d->revoked_by == NULL || d->revoked_by[0] == '\0') && period_holds(d->period, now_ms);
}

/* Latest applicable directive for one view, or the implicit policy. */
static struct outcome
view_decide(const hie_consent_policy_t *policy, const Hie__V1__ConsentDirective *const *dirs,
    size_t n, const hie_consent_request_t *req, uint32_t view_labels)
{
    const Hie__V1__ConsentDirective *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const Hie__V1__ConsentDirective *d = dirs[i];
        if (!in_force(d, req->now_ms) || !provision_holds(d->provision, req, view_labels)) {
            continue;
        }
        if (best == NULL || d->date_ms > best->date_ms ||
            (d->date_ms == best->date_ms && d->submitted_index > best->submitted_index)) {
            best = d;
        }
    }
    if (best == NULL) {
        bool permit = policy->regime == HIE_CONSENT_OPT_OUT &&
                      (policy->opt_out_purposes & (1u << (unsigned)req->purpose)) != 0;
        return (struct outcome){NULL, permit, false};
    }
    bool root_permit = best->provision->type == HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
    struct outcome o = node_value(best->provision, root_permit, false, req, view_labels);
    o.by = best;
    return o;
}

static void
report(hie_consent_decision_t *out, const Hie__V1__ConsentDirective *by)
{
    if (by != NULL) {
        hie_consent__set_directive(out, by->id, strlen(by->id), by->version);
    }
}

/* Header rules 1-8, read literally. */
static void
decide_views(const hie_consent_policy_t *policy, const Hie__V1__ConsentDirective *const *dirs,
    size_t n, const hie_consent_request_t *req, hie_consent_decision_t *out)
{
    uint32_t conf = req->labels & HIE_CONSENT_LABELS_CONFIDENTIALITY;
    struct outcome whole = view_decide(policy, dirs, n, req, conf);
    uint32_t withheld = 0, part2_withheld = 0, carried_sensitive = 0;
    const Hie__V1__ConsentDirective *first_withholder = NULL;
    for (unsigned l = HIE_CONSENT_LABEL_ETH; l <= HIE_CONSENT_LABEL_SEX; l++) {
        if ((req->labels & (1u << l)) == 0) {
            continue;
        }
        carried_sensitive |= 1u << l;
        struct outcome o = view_decide(policy, dirs, n, req, conf | (1u << l));
        bool part2 = l == HIE_CONSENT_LABEL_ETH || l == HIE_CONSENT_LABEL_ETHUD ||
                     l == HIE_CONSENT_LABEL_OPIOIDUD || l == HIE_CONSENT_LABEL_SUD;
        bool lacks_name = part2 && policy->part2_named_recipient && o.permit && !o.named;
        withheld |= !o.permit || lacks_name ? 1u << l : 0;
        part2_withheld |= lacks_name ? 1u << l : 0;
        if ((!o.permit || lacks_name) && first_withholder == NULL) {
            first_withholder = o.by;
        }
    }
    bool emergency = req->purpose == HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY;
    const char *implicit = policy->regime == HIE_CONSENT_OPT_IN ? "implicit-opt-in"
                                                                : "implicit-opt-out";
    if (emergency && policy->break_glass_allowed && (!whole.permit || withheld != 0)) {
        out->decision = HIE_CONSENT_PERMIT;
        out->break_glass = true;
        out->reason = "break-glass";
        withheld = 0;
    } else if (!whole.permit) {
        out->decision = HIE_CONSENT_DENY;
        out->reason = emergency ? "break-glass-not-allowed" : whole.by != NULL ? "consent-deny"
                      : implicit;
        out->accounting_excluded = true;
        out->confidentiality = hie_consent__high_water(req->labels, carried_sensitive != 0);
        report(out, whole.by);
        return;
    } else {
        out->decision = HIE_CONSENT_PERMIT;
        out->reason = part2_withheld != 0 ? "part2-recipient-not-named"
                      : withheld != 0 ? "consent-redact" : whole.by != NULL ? "consent-permit"
                      : implicit;
    }
    report(out, whole.by != NULL ? whole.by : first_withholder);
    out->obligations = withheld;
    if ((carried_sensitive & ~withheld & HIE_CONSENT_LABELS_PART2) != 0) {
        out->obligations |= HIE_CONSENT_OBL_PART2_NOTICE;
        out->refrains = HIE_CONSENT_REFRAIN_NORDSCLCD;
    }
    out->confidentiality = hie_consent__high_water(req->labels,
        (carried_sensitive & ~withheld) != 0);
    Hie__V1__PurposeOfUse p = req->purpose;
    out->accounting_excluded = !out->break_glass &&
        (p == HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT ||
            p == HIE__V1__PURPOSE_OF_USE__PURPOSE_PAYMENT ||
            p == HIE__V1__PURPOSE_OF_USE__PURPOSE_OPERATIONS ||
            p == HIE__V1__PURPOSE_OF_USE__PURPOSE_PATIENT_REQUEST);
}

int
hie_consent_decide_tree(const hie_consent_policy_t *policy,
    const Hie__V1__ConsentDirective *const *dirs, size_t n, const hie_consent_request_t *req,
    hie_consent_decision_t *out)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(policy != NULL);
    HIE_ASSERT(req != NULL);
    if (n > 0) {
        HIE_ASSERT(dirs != NULL);
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
        if (dirs[i] == NULL || hie_consent_directive_validate(dirs[i], NULL) != 0) {
            return hie_consent__fail(out, HIE_EINVAL);
        }
    }
    decide_views(policy, dirs, n, req, out);
    HIE_ASSERT(out->reason != NULL);
    return 0;
}
