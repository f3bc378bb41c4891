/*
 * consent_vocab.c - the closed vocabularies of the consent engine (security labels, document
 * classes), the default policy, and the small pieces both evaluators share: request and
 * policy checks, the fail-closed decision, the high-water mark.
 *
 * Invariant: the tables are indexed by their enums (hie/consent.h) and hold only printable
 * ASCII codes shorter than HIE_CONSENT_CODE_BYTES_MAX; hie_consent_*_parse() compares exactly.
 * Callers: consent_validate.c, consent_eval.c, consent_tree.c, and the node (labels and
 * classes from an envelope).
 */
#include "consent_int.h"

#include "hie/proto.h"

#include <string.h>

/* REQ: HL7 HCS confidentiality (U L M N R V) and DS4P sensitivity codes (reference.md 3). */
static const char *const label_codes[HIE_CONSENT_LABELS_COUNT] = {
    [HIE_CONSENT_LABEL_U] = "U",
    [HIE_CONSENT_LABEL_L] = "L",
    [HIE_CONSENT_LABEL_M] = "M",
    [HIE_CONSENT_LABEL_N] = "N",
    [HIE_CONSENT_LABEL_R] = "R",
    [HIE_CONSENT_LABEL_V] = "V",
    [HIE_CONSENT_LABEL_ETH] = "ETH",
    [HIE_CONSENT_LABEL_ETHUD] = "ETHUD",
    [HIE_CONSENT_LABEL_OPIOIDUD] = "OPIOIDUD",
    [HIE_CONSENT_LABEL_SUD] = "SUD",
    [HIE_CONSENT_LABEL_PSY] = "PSY",
    [HIE_CONSENT_LABEL_HIV] = "HIV",
    [HIE_CONSENT_LABEL_STD] = "STD",
    [HIE_CONSENT_LABEL_SDV] = "SDV",
    [HIE_CONSENT_LABEL_SEX] = "SEX",
};

static const char *const class_codes[HIE_CONSENT_CLASSES_COUNT] = {
    [HIE_CONSENT_CLASS_NONE] = NULL, /* not a code: never matches */
    [HIE_CONSENT_CLASS_SUMMARY] = "summary",
    [HIE_CONSENT_CLASS_DISCHARGE_SUMMARY] = "discharge-summary",
    [HIE_CONSENT_CLASS_LAB_REPORT] = "lab-report",
    [HIE_CONSENT_CLASS_IMAGING_REPORT] = "imaging-report",
    [HIE_CONSENT_CLASS_PROGRESS_NOTE] = "progress-note",
    [HIE_CONSENT_CLASS_MEDICATION_LIST] = "medication-list",
    [HIE_CONSENT_CLASS_IMMUNIZATION] = "immunization",
    [HIE_CONSENT_CLASS_REFERRAL] = "referral",
    [HIE_CONSENT_CLASS_ADT_EVENT] = "adt-event",
    [HIE_CONSENT_CLASS_OTHER] = "other",
};

/* Finds s in codes[0..count); returns the index or -1. Checks length and bytes first. */
static int
code_lookup(const char *const *codes, size_t count, const char *s, size_t len, int *rc)
{
    *rc = HIE_EINVAL;
    if (len > HIE_CONSENT_CODE_BYTES_MAX) {
        *rc = HIE_ELIMIT;
        return -1;
    }
    if (s == NULL || len == 0) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return -1;
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (codes[i] != NULL && strlen(codes[i]) == len && memcmp(codes[i], s, len) == 0) {
            *rc = 0;
            return (int)i;
        }
    }
    return -1;
}

int
hie_consent_label_parse(const char *s, size_t len, enum hie_consent_label *out)
{
    HIE_ASSERT(out != NULL);
    int rc;
    int i = code_lookup(label_codes, HIE_CONSENT_LABELS_COUNT, s, len, &rc);
    *out = i < 0 ? HIE_CONSENT_LABELS_COUNT : (enum hie_consent_label)i;
    HIE_ASSERT((rc == 0) == (i >= 0));
    return rc;
}

int
hie_consent_class_parse(const char *s, size_t len, enum hie_consent_class *out)
{
    HIE_ASSERT(out != NULL);
    int rc;
    int i = code_lookup(class_codes, HIE_CONSENT_CLASSES_COUNT, s, len, &rc);
    *out = i < 0 ? HIE_CONSENT_CLASS_NONE : (enum hie_consent_class)i;
    HIE_ASSERT((rc == 0) == (i > 0));
    return rc;
}

const char *
hie_consent_label_name(enum hie_consent_label label)
{
    return (unsigned)label < HIE_CONSENT_LABELS_COUNT ? label_codes[label] : "?";
}

const char *
hie_consent_class_name(enum hie_consent_class doc_class)
{
    unsigned c = (unsigned)doc_class;
    return c > 0 && c < HIE_CONSENT_CLASSES_COUNT ? class_codes[c] : "?";
}

void
hie_consent_policy_init(hie_consent_policy_t *policy)
{
    HIE_ASSERT(policy != NULL);
    memset(policy, 0, sizeof(*policy));
    policy->regime = HIE_CONSENT_OPT_IN;
    policy->opt_out_purposes = HIE_CONSENT_PURPOSE_BIT(HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT) |
                               HIE_CONSENT_PURPOSE_BIT(HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY);
    policy->break_glass_allowed = false;
    policy->part2_named_recipient = true;
}

int
hie_consent__inputs_check(const hie_consent_policy_t *policy, const hie_consent_request_t *req)
{
    HIE_ASSERT(policy != NULL);
    HIE_ASSERT(req != NULL);
    if (policy->regime != HIE_CONSENT_OPT_IN && policy->regime != HIE_CONSENT_OPT_OUT) {
        return HIE_EINVAL;
    }
    if ((policy->opt_out_purposes & ~HIE_CONSENT_PURPOSES_KNOWN) != 0) {
        return HIE_EINVAL;
    }
    const char *org = req->requester_org_id;
    if (org == NULL || !hie_proto_org_id_valid(org, strnlen(org, HIE_ORG_ID_BYTES_MAX + 1))) {
        return HIE_EINVAL;
    }
    if ((req->requester_roles & ~HIE_CONSENT_ROLES_KNOWN) != 0 ||
        (req->labels & ~HIE_CONSENT_LABELS_ALL) != 0) {
        return HIE_EINVAL;
    }
    unsigned purpose = (unsigned)req->purpose, action = (unsigned)req->action;
    if (purpose >= 32 || (HIE_CONSENT_PURPOSE_BIT(purpose) & HIE_CONSENT_PURPOSES_KNOWN) == 0) {
        return HIE_EINVAL;
    }
    if (action >= 32 || (HIE_CONSENT_ACTION_BIT(action) & HIE_CONSENT_ACTIONS_KNOWN) == 0) {
        return HIE_EINVAL;
    }
    if ((unsigned)req->doc_class >= HIE_CONSENT_CLASSES_COUNT || req->data_time_ms < 0) {
        return HIE_EINVAL;
    }
    return 0;
}

int
hie_consent__fail(hie_consent_decision_t *out, int rc)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(rc != 0);
    memset(out, 0, sizeof(*out));
    out->decision = HIE_CONSENT_DENY;
    out->reason = HIE_CONSENT__R_ERROR;
    out->accounting_excluded = true; /* nothing is disclosed */
    out->confidentiality = HIE_CONSENT_LABEL_V; /* unknown content: assume the most restricted */
    return rc;
}

void
hie_consent__set_directive(hie_consent_decision_t *out, const char *id, size_t len,
    uint64_t version)
{
    HIE_ASSERT(len <= HIE_CONSENT_ID_BYTES_MAX);
    HIE_ASSERT(sizeof(out->directive_id) > len);
    memcpy(out->directive_id, id, len);
    out->directive_id[len] = '\0';
    out->directive_version = version;
}

enum hie_consent_label
hie_consent__high_water(uint32_t carried, bool sensitive_disclosed)
{
    enum hie_consent_label hwm = HIE_CONSENT_LABEL_N;
    uint32_t conf = carried & HIE_CONSENT_LABELS_CONFIDENTIALITY;
    if (conf != 0) {
        hwm = (enum hie_consent_label)(31 - __builtin_clz(conf)); /* highest bit set */
    }
    if (sensitive_disclosed && hwm < HIE_CONSENT_LABEL_R) {
        hwm = HIE_CONSENT_LABEL_R;
    }
    HIE_ASSERT(hwm <= HIE_CONSENT_LABEL_V);
    return hwm;
}
