/*
 * consent_validate.c - hie_consent_directive_validate(): a member's consent directive against
 * the rules and limits of hie/consent.h, before anything is stored or compiled.
 *
 * Invariants: no recursion; the provision tree is walked with an explicit stack of at most
 * HIE_CONSENT_PROVISIONS_MAX frames, and a node's children are counted against the depth and
 * total limits before any of them is looked at, so hostile shapes (10,000 siblings, 1,000
 * levels) are refused in O(limit) work. Every list count is checked before its items. Field
 * names are static dotted paths; no input byte reaches an error.
 * Callers: hie_consent_compile(), hie_consent_decide_tree(), the node's submit path.
 */
#include "consent_int.h"

#include "hie/proto.h"

#include <string.h>

/* Provision fields, named "provision.<x>" at the root and "provision.provisions.<x>" below. */
enum fld {
    F_TYPE,
    F_PERIOD,
    F_DATA_PERIOD,
    F_ACTORS,
    F_ACTOR,
    F_ACTOR_ORG,
    F_ACTOR_ROLE,
    F_PURPOSES,
    F_LABELS,
    F_CLASSES,
    F_ACTIONS,
    F_PROVISIONS,
    F_COUNT
};

static const char *const fld_names[F_COUNT][2] = {
    [F_TYPE] = {"provision.type", "provision.provisions.type"},
    [F_PERIOD] = {"provision.period", "provision.provisions.period"},
    [F_DATA_PERIOD] = {"provision.data_period", "provision.provisions.data_period"},
    [F_ACTORS] = {"provision.actors", "provision.provisions.actors"},
    [F_ACTOR] = {"provision.actors", "provision.provisions.actors"},
    [F_ACTOR_ORG] = {"provision.actors.org_id", "provision.provisions.actors.org_id"},
    [F_ACTOR_ROLE] = {"provision.actors.role", "provision.provisions.actors.role"},
    [F_PURPOSES] = {"provision.purposes", "provision.provisions.purposes"},
    [F_LABELS] = {"provision.security_labels", "provision.provisions.security_labels"},
    [F_CLASSES] = {"provision.classes", "provision.provisions.classes"},
    [F_ACTIONS] = {"provision.actions", "provision.provisions.actions"},
    [F_PROVISIONS] = {"provision.provisions", "provision.provisions"},
};

static int
prov_fail(hie_errinfo_t *info, int rc, enum fld f, unsigned depth, const char *reason)
{
    HIE_ASSERT(f < F_COUNT);
    HIE_ASSERT(depth >= 1);
    return hie_errinfo_set(info, rc, fld_names[f][depth > 1 ? 1 : 0], reason);
}

/* Length of a protobuf-c string (NULL counts as ""), looking at most max + 1 bytes. */
static size_t
str_len(const char *s, size_t max)
{
    return s == NULL ? 0 : strnlen(s, max + 1);
}

/* Printable ASCII without spaces, 1..max bytes. */
static bool
token_valid(const char *s, size_t max)
{
    size_t len = str_len(s, max);
    if (len == 0 || len > max) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

/* A period: NULL or all-zero is "no period". Returns a static reason, or NULL when valid. */
static const char *
period_problem(const Hie__V1__ConsentPeriod *p)
{
    if (p == NULL) {
        return NULL;
    }
    if (p->start_ms < 0 || p->end_ms < 0) {
        return "negative time";
    }
    if (p->start_ms != 0 && p->end_ms != 0 && p->start_ms >= p->end_ms) {
        return "start not before end";
    }
    return NULL;
}

static bool
enum_known(int value, uint32_t known_mask)
{
    return value > 0 && value < 32 && ((1u << (unsigned)value) & known_mask) != 0;
}

static int
patient_check(const Hie__V1__ConsentDirective *d, hie_errinfo_t *info)
{
    const Hie__V1__PatientId *pid = d->patient;
    size_t org_len = pid != NULL ? str_len(pid->org_id, HIE_ORG_ID_BYTES_MAX) : 0;
    size_t mrn_len = pid != NULL ? str_len(pid->mrn, HIE_CONSENT_PATIENT_ID_BYTES_MAX) : 0;
    bool by_pid = org_len > 0 || mrn_len > 0;
    bool by_euid = str_len(d->euid, HIE_CONSENT_PATIENT_ID_BYTES_MAX) > 0;
    if (by_pid && by_euid) {
        return hie_errinfo_set(info, HIE_EINVAL, "patient", "both patient and euid given");
    }
    if (!by_pid && !by_euid) {
        return hie_errinfo_set(info, HIE_EINVAL, "patient", "missing");
    }
    if (by_euid) {
        size_t euid_len = str_len(d->euid, HIE_CONSENT_PATIENT_ID_BYTES_MAX);
        return token_valid(d->euid, HIE_CONSENT_PATIENT_ID_BYTES_MAX) ? 0
            : hie_errinfo_set(info, euid_len > HIE_CONSENT_PATIENT_ID_BYTES_MAX ? HIE_ELIMIT
                : HIE_EINVAL, "euid", "invalid");
    }
    if (!hie_proto_org_id_valid(pid->org_id, org_len)) {
        return hie_errinfo_set(info, org_len > HIE_ORG_ID_BYTES_MAX ? HIE_ELIMIT : HIE_EINVAL,
            "patient.org_id", org_len == 0 ? "missing" : "invalid");
    }
    if (!token_valid(pid->mrn, HIE_CONSENT_PATIENT_ID_BYTES_MAX)) {
        return hie_errinfo_set(info, mrn_len > HIE_CONSENT_PATIENT_ID_BYTES_MAX ? HIE_ELIMIT
            : HIE_EINVAL, "patient.mrn", mrn_len == 0 ? "missing" : "invalid");
    }
    return 0;
}

/* An optional organization id field (submitted_by, revoked_by). The node writes these from
 * the command's requester, which is "@operator" for the local admin channel (command.proto):
 * hiectl consent submits and revokes directives under that name. */
static bool
opt_org_valid(const char *s)
{
    size_t len = str_len(s, HIE_ORG_ID_BYTES_MAX);
    return len == 0 || hie_proto_org_id_valid(s, len) || strcmp(s, "@operator") == 0;
}

static int
head_check(const Hie__V1__ConsentDirective *d, hie_errinfo_t *info)
{
    size_t id_len = str_len(d->id, HIE_CONSENT_ID_BYTES_MAX);
    if (id_len > 0 && !hie_proto_id_valid(d->id, id_len)) {
        return hie_errinfo_set(info, id_len > HIE_CONSENT_ID_BYTES_MAX ? HIE_ELIMIT
            : HIE_EINVAL, "id", "invalid");
    }
    int rc = patient_check(d, info);
    if (rc != 0) {
        return rc;
    }
    if (d->status != HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE &&
        d->status != HIE__V1__CONSENT_STATUS__CONSENT_INACTIVE) {
        return hie_errinfo_set(info, HIE_EINVAL, "status", "not active or inactive");
    }
    const char *why = period_problem(d->period);
    if (why != NULL) {
        return hie_errinfo_set(info, HIE_EINVAL, "period", why);
    }
    if (d->date_ms < 0 || d->submitted_ms < 0 || d->revoked_ms < 0) {
        return hie_errinfo_set(info, HIE_EINVAL, d->date_ms < 0 ? "date_ms"
            : d->submitted_ms < 0 ? "submitted_ms" : "revoked_ms", "negative time");
    }
    size_t uri_len = str_len(d->policy_uri, HIE_CONSENT_POLICY_URI_BYTES_MAX);
    if (uri_len > HIE_CONSENT_POLICY_URI_BYTES_MAX) {
        return hie_errinfo_set(info, HIE_ELIMIT, "policy_uri", "too long");
    }
    if (uri_len > 0 && !token_valid(d->policy_uri, HIE_CONSENT_POLICY_URI_BYTES_MAX)) {
        return hie_errinfo_set(info, HIE_EINVAL, "policy_uri", "not printable ASCII");
    }
    if (!opt_org_valid(d->submitted_by) || !opt_org_valid(d->revoked_by)) {
        return hie_errinfo_set(info, HIE_EINVAL, opt_org_valid(d->submitted_by)
            ? "revoked_by" : "submitted_by", "invalid organization id");
    }
    return 0;
}

/* Type of provision p at depth, given its parent's effective type (unused at the root).
 * [out] *eff: the effective type (DENY or PERMIT). */
static int
type_check(const Hie__V1__ConsentProvision *p, unsigned depth, int parent_type, int *eff,
    hie_errinfo_t *info)
{
    const int deny = HIE__V1__PROVISION_TYPE__PROVISION_DENY;
    const int permit = HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
    int t = (int)p->type;
    if (t != 0 && t != deny && t != permit) {
        return prov_fail(info, HIE_EINVAL, F_TYPE, depth, "unknown value");
    }
    if (depth == 1) {
        if (t == 0) {
            return prov_fail(info, HIE_EINVAL, F_TYPE, depth, "missing");
        }
        *eff = t;
        return 0;
    }
    HIE_ASSERT(parent_type == deny || parent_type == permit);
    int reverse = parent_type == deny ? permit : deny;
    if (t != 0 && t != reverse) {
        return prov_fail(info, HIE_EINVAL, F_TYPE, depth, "does not reverse its parent");
    }
    *eff = reverse;
    return 0;
}

static int
actors_check(const Hie__V1__ConsentProvision *p, unsigned depth, hie_errinfo_t *info)
{
    for (size_t i = 0; i < p->n_actors; i++) {
        const Hie__V1__ConsentActor *a = p->actors[i];
        if (a == NULL) {
            return prov_fail(info, HIE_EINVAL, F_ACTOR, depth, "missing");
        }
        size_t org_len = str_len(a->org_id, HIE_ORG_ID_BYTES_MAX);
        bool has_role = a->role != 0;
        if ((org_len > 0) == has_role) {
            return prov_fail(info, HIE_EINVAL, F_ACTOR, depth,
                has_role ? "both org_id and role given" : "neither org_id nor role given");
        }
        if (org_len > 0 && !hie_proto_org_id_valid(a->org_id, org_len)) {
            return prov_fail(info, org_len > HIE_ORG_ID_BYTES_MAX ? HIE_ELIMIT : HIE_EINVAL,
                F_ACTOR_ORG, depth, "invalid organization id");
        }
        if (has_role && !enum_known((int)a->role, HIE_CONSENT_ROLES_KNOWN)) {
            return prov_fail(info, HIE_EINVAL, F_ACTOR_ROLE, depth, "unknown value");
        }
    }
    return 0;
}

static int
codes_check(char *const *codes, size_t n, bool labels, unsigned depth, hie_errinfo_t *info)
{
    for (size_t i = 0; i < n; i++) {
        const char *s = codes[i];
        size_t len = str_len(s, HIE_CONSENT_CODE_BYTES_MAX);
        enum hie_consent_label label;
        enum hie_consent_class cls;
        int rc = labels ? hie_consent_label_parse(s, len, &label)
                        : hie_consent_class_parse(s, len, &cls);
        if (rc != 0) {
            bool printable = token_valid(s, HIE_CONSENT_CODE_BYTES_MAX);
            return prov_fail(info, rc, labels ? F_LABELS : F_CLASSES, depth,
                rc == HIE_ELIMIT ? "too long" : len == 0 ? "empty"
                    : printable ? "unknown code" : "not printable ASCII");
        }
    }
    return 0;
}

/* The lists of one provision: counts first, then items. */
static int
lists_check(const Hie__V1__ConsentProvision *p, unsigned depth, hie_errinfo_t *info)
{
    const size_t max = HIE_CONSENT_LIST_ITEMS_MAX;
    if (p->n_actors > max || p->n_purposes > max || p->n_security_labels > max ||
        p->n_classes > max || p->n_actions > max) {
        enum fld f = p->n_actors > max ? F_ACTORS : p->n_purposes > max ? F_PURPOSES
            : p->n_security_labels > max ? F_LABELS : p->n_classes > max ? F_CLASSES
                                                                          : F_ACTIONS;
        return prov_fail(info, HIE_ELIMIT, f, depth, "too many items");
    }
    int rc = actors_check(p, depth, info);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < p->n_purposes; i++) {
        if (!enum_known((int)p->purposes[i], HIE_CONSENT_PURPOSES_KNOWN)) {
            return prov_fail(info, HIE_EINVAL, F_PURPOSES, depth, "unknown value");
        }
    }
    for (size_t i = 0; i < p->n_actions; i++) {
        if (!enum_known((int)p->actions[i], HIE_CONSENT_ACTIONS_KNOWN)) {
            return prov_fail(info, HIE_EINVAL, F_ACTIONS, depth, "unknown value");
        }
    }
    rc = codes_check(p->security_labels, p->n_security_labels, true, depth, info);
    if (rc != 0) {
        return rc;
    }
    return codes_check(p->classes, p->n_classes, false, depth, info);
}

static int
prov_check(const Hie__V1__ConsentProvision *p, unsigned depth, int parent_type, int *eff,
    hie_errinfo_t *info)
{
    int rc = type_check(p, depth, parent_type, eff, info);
    if (rc != 0) {
        return rc;
    }
    const char *why = period_problem(p->period);
    if (why != NULL) {
        return prov_fail(info, HIE_EINVAL, F_PERIOD, depth, why);
    }
    why = period_problem(p->data_period);
    if (why != NULL) {
        return prov_fail(info, HIE_EINVAL, F_DATA_PERIOD, depth, why);
    }
    return lists_check(p, depth, info);
}

struct frame {
    const Hie__V1__ConsentProvision *p;
    unsigned depth;
    int parent_type;
};

/* Walks the tree depth-first with an explicit stack. A node's children are pushed only after
 * their count has been checked against the depth and total limits, so the stack never holds
 * more than HIE_CONSENT_PROVISIONS_MAX frames. */
static int
tree_check(const Hie__V1__ConsentProvision *root, hie_errinfo_t *info)
{
    struct frame stack[HIE_CONSENT_PROVISIONS_MAX];
    size_t top = 0, seen = 1;
    stack[top++] = (struct frame){root, 1, 0};
    while (top > 0) {
        struct frame f = stack[--top];
        int eff = 0;
        int rc = prov_check(f.p, f.depth, f.parent_type, &eff, info);
        if (rc != 0) {
            return rc;
        }
        if (f.p->n_provisions == 0) {
            continue;
        }
        if (f.depth >= HIE_CONSENT_DEPTH_MAX) {
            return prov_fail(info, HIE_ELIMIT, F_PROVISIONS, f.depth, "nesting too deep");
        }
        if (f.p->n_provisions > HIE_CONSENT_PROVISIONS_MAX - seen) {
            return prov_fail(info, HIE_ELIMIT, F_PROVISIONS, f.depth, "too many provisions");
        }
        seen += f.p->n_provisions;
        for (size_t i = f.p->n_provisions; i-- > 0;) {
            if (f.p->provisions[i] == NULL) {
                return prov_fail(info, HIE_EINVAL, F_PROVISIONS, f.depth, "missing");
            }
            HIE_ASSERT(top < HIE_CONSENT_PROVISIONS_MAX);
            stack[top++] = (struct frame){f.p->provisions[i], f.depth + 1, eff};
        }
    }
    HIE_ASSERT(seen <= HIE_CONSENT_PROVISIONS_MAX);
    return 0;
}

int
hie_consent_directive_validate(const Hie__V1__ConsentDirective *d, hie_errinfo_t *info)
{
    HIE_ASSERT(d != NULL);
    int rc = head_check(d, info);
    if (rc != 0) {
        return rc;
    }
    if (d->provision == NULL) {
        return hie_errinfo_set(info, HIE_EINVAL, "provision", "missing");
    }
    return tree_check(d->provision, info);
}
