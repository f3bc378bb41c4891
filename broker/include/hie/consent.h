/*
 * hie/consent.h - the per-message consent decision engine (issue 4; reference.md section 3).
 *
 * Purpose: decide whether one disclosure of one patient's data may happen, from the patient's
 * consent directives on file (proto/consent.proto, modeled on FHIR R4 Consent and IHE PCF),
 * the broker's implicit policy, and a request built from the envelope, the requester's
 * certificate and the replicated state. Three steps:
 *   1. hie_consent_directive_validate(): a member's directive against the rules and limits
 *      below (BAD_REQUEST naming the field on failure).
 *   2. hie_consent_compile(): a valid directive into a flat, position-independent rule table
 *      (bytes) for LMDB; hie_consent_compiled_check() re-validates bytes read back.
 *   3. hie_consent_decide(): a decision over a patient's compiled directives, without any
 *      protobuf unpack and without I/O. hie_consent_decide_tree() is an independent reference
 *      evaluator over the protobuf tree, kept as the tests' and fuzzer's differential oracle.
 *
 * Threads: every function is reentrant, keeps no state between calls, never blocks, never
 * allocates (work space is bounded by hie/limits.h and lives on the stack, under 4 KiB) and
 * may be called from any thread.
 *
 * Ownership: every pointer argument is borrowed for the duration of the call only. Outputs go
 * to caller-owned memory; no pointer into an input is kept or returned (the decision copies
 * the directive id; its reason is a static string).
 *
 * Errors: this module never logs or exits (style.md 3.4). Validation returns HIE_EINVAL or
 * HIE_ELIMIT with a static reason and a dotted field name ("provision.provisions.actors.role")
 * in a hie_errinfo_t; never an input value. NULL for a required pointer is a programmer error
 * and trips HIE_ASSERT. Bytes from storage get HIE_ECORRUPT, never an assert.
 *
 * Limits (hie/limits.h): HIE_CONSENT_PROVISIONS_MAX provisions per directive, nesting depth
 * HIE_CONSENT_DEPTH_MAX, HIE_CONSENT_LIST_ITEMS_MAX items per list, codes of at most
 * HIE_CONSENT_CODE_BYTES_MAX bytes, policy_uri at most HIE_CONSENT_POLICY_URI_BYTES_MAX,
 * HIE_CONSENT_DIRECTIVES_MAX directives per decision, compiled form at most
 * HIE_CONSENT_COMPILED_BYTES_MAX bytes.
 *
 * ---- Vocabularies (closed; an unknown code is refused, never ignored) -----------------------
 * Security labels (HL7 HCS / DS4P), exact upper case:
 *   confidentiality, totally ordered:  U < L < M < N < R < V
 *     (unrestricted, low, moderate, normal, restricted, very restricted)
 *   sensitivity:  ETH (substance abuse), ETHUD (alcohol use disorder), OPIOIDUD (opioid use
 *     disorder), SUD (substance use disorder), PSY (psychiatry), HIV, STD (sexually
 *     transmitted disease), SDV (sexual and domestic violence), SEX (reproductive and sexual
 *     health).
 *   Part 2 labels (42 CFR Part 2, substance use): ETH ETHUD OPIOIDUD SUD.
 * Document classes (our own kebab-case codes, exact lower case):
 *   summary (patient summary, CCD), discharge-summary, lab-report, imaging-report,
 *   progress-note, medication-list, immunization, referral, adt-event (ADT notifications),
 *   other (any document that fits none of the above).
 * Roles, purposes of use and actions are the proto enums Hie__V1__Role (1..7),
 * Hie__V1__PurposeOfUse (1..7) and Hie__V1__ConsentAction (1..4); 0 and any other integer are
 * refused (proto3 enums are open: any int can arrive).
 *
 * ---- Directive rules (validation) -----------------------------------------------------------
 *  - The patient is named exactly one way: patient.org_id + patient.mrn, or euid.
 *  - status is CONSENT_ACTIVE or CONSENT_INACTIVE.
 *  - Periods (directive.period and every provision's period and data_period) have start <
 *    end when both are non-zero; 0 means open on that side; negative times are refused. Start
 *    is inclusive, end is exclusive.
 *  - The root provision exists and its type is DENY or PERMIT. A nested provision's type is
 *    the reverse of its parent's, or unspecified, which means "the reverse".
 *  - An actor has exactly one of org_id (an organization id) and role.
 *  - id (when set) has the shape of an envelope id; submitted_by/revoked_by (when set) are
 *    organization ids; policy_uri is printable ASCII; no time is negative.
 *
 * ---- Decision rules (hie_consent_decide and hie_consent_decide_tree) ------------------------
 * Content. The content is modelled as an unlabelled part plus one part per sensitivity label it
 * carries. Confidentiality labels apply to the whole content. Each part is decided as a
 * separate "view": the unlabelled view carries the content's confidentiality labels only;
 * the view of sensitivity label S carries those plus S alone.
 *
 * Provision match (in a view). Every condition present must hold (AND); an empty list or an
 * absent (all-zero) period is no condition:
 *   actors: any actor matches (its org_id equals the requester's, or the requester holds its
 *   role); purposes: the request's purpose is listed; actions: the request's action is
 *   listed; security_labels: the view carries any of them (exact codes: a condition on R does
 *   not match V; except that ETH and SUD name substance use as a whole, so a condition on
 *   either also holds for a view of ETH, ETHUD, OPIOIDUD or SUD, while one on ETHUD or
 *   OPIOIDUD holds only for that code); classes: the request's class is listed (content without a class never
 *   matches a class condition); period: now_ms in it; data_period: data_time_ms in it (an
 *   unknown data time, 0, never matches a data_period condition).
 *
 * Applicable directive (per view). Status ACTIVE, not revoked (revoked_ms or revoked_by set),
 * now_ms within directive.period, and the root provision matches the view. Among applicable
 * directives the latest wins: greatest (date_ms, submitted_index); an exact tie goes to the one
 * earlier in the array. date_ms is when the patient agreed; the node dates an undated directive
 * at its submission, refuses one dated more than a day after it, and compiles one dated after
 * its submission with its submission time as date_ms (consent_state.c; directives compiled
 * since 2026-12-01T05:00Z), so no directive can outrank the ones filed after it. An expired or
 * not-yet-valid directive is simply not applicable: it never permits. With none applicable the
 * implicit policy decides the view: OPT_IN denies ("implicit-opt-in"); OPT_OUT permits when
 * the purpose is in policy.opt_out_purposes and denies otherwise ("implicit-opt-out").
 *
 * Provision tree (within the winning directive). The value of a provision is its own type
 * when none of its children matches the view; otherwise it is DENY when any matching child's
 * value is DENY (deny overrides among siblings), else PERMIT. The view's outcome is the root's
 * value. So the deepest matching level decides along each path, a deny at level k is reversed
 * only by a matching provision at level k+1, and a non-matching provision's subtree is ignored.
 * A PERMIT outcome "names the requester" when some matching provision, on a path of matching
 * provisions that ends in a permit that decides, lists the requester's org_id as an actor
 * (directly, not by role); the implicit policy never names anyone.
 *
 * Combining the views into the decision:
 *  1. Unlabelled view DENY: the decision is DENY ("consent-deny", or the implicit reason),
 *     unless break-glass applies (below).
 *  2. Else every carried sensitivity label whose view is DENY is redacted (obligation REDACT
 *     of that label). When policy.part2_named_recipient is set, every carried Part 2 label
 *     whose view permits without naming the requester is redacted too. The decision is PERMIT
 *     with those obligations; it is never turned into a DENY (the engine does not know how
 *     much of the content a label covers: the node strips every section, or the whole
 *     document, carrying a redacted label, and sends nothing if nothing remains).
 *     Content with only confidentiality labels has no redactable part.
 *  3. Break-glass: when the purpose is EMERGENCY and something was denied or redacted, and
 *     policy.break_glass_allowed, the decision becomes PERMIT with no redaction, break_glass =
 *     true and reason "break-glass" (which lifts Part 2 redaction too: 42 CFR 2.51 medical
 *     emergency). When not allowed, a DENY stands with reason "break-glass-not-allowed" and
 *     redactions stand with their usual reason.
 *  4. Part 2 disclosure: when the decision is PERMIT and a Part 2 label the content carries is
 *     not redacted, obligation PART2_NOTICE (attach the 42 CFR 2.32 notice) and refrain
 *     NORDSCLCD (no redisclosure without consent) are set.
 *  5. Reason (static, stable): DENY: "consent-deny", "implicit-opt-in", "implicit-opt-out",
 *     "break-glass-not-allowed", "evaluation-error". PERMIT: "break-glass",
 *     "part2-recipient-not-named" (a Part 2 label was redacted for that reason), "consent-redact"
 *     (a label was redacted by consent or the implicit policy), "consent-permit",
 *     "implicit-opt-out" (in that order of precedence).
 *  6. Deciding directive: the one that decided the unlabelled view (on a DENY, only that one).
 *     On a PERMIT whose unlabelled view the implicit policy decided, the directive that
 *     decided the lowest-numbered redacted (or, under break-glass, lifted) label, if any.
 *     Otherwise none: empty id, version 0.
 *  7. High-water mark: the highest confidentiality label carried (N when none is), raised to
 *     at least R when a sensitivity label is disclosed (on DENY: when one is carried).
 *  8. accounting_excluded (HIPAA 164.528): true for a PERMIT whose purpose is TREATMENT,
 *     PAYMENT, OPERATIONS or PATIENT_REQUEST without break-glass, and for every DENY (nothing
 *     is disclosed; the audit log records the denial); false otherwise.
 * Fail closed: any evaluation error (a corrupt compiled directive, an invalid directive or
 * request, too many directives) gives a non-zero return code and a valid DENY decision with
 * reason "evaluation-error". One corrupt directive fails the whole decision: skipping it could
 * hide a newer deny.
 */
#ifndef HIE_CONSENT_H
#define HIE_CONSENT_H

#include "hie/base.h"
#include "hie/limits.h"

#include "consent.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- vocabularies -------------------------------------------------------------------------- */
/* Security labels; a label set is a bitmask of HIE_CONSENT_LABEL_BIT(label). Confidentiality
 * codes come first, in their order, so comparing values compares confidentiality. */
enum hie_consent_label {
    HIE_CONSENT_LABEL_U = 0,
    HIE_CONSENT_LABEL_L,
    HIE_CONSENT_LABEL_M,
    HIE_CONSENT_LABEL_N,
    HIE_CONSENT_LABEL_R,
    HIE_CONSENT_LABEL_V,
    HIE_CONSENT_LABEL_ETH,
    HIE_CONSENT_LABEL_ETHUD,
    HIE_CONSENT_LABEL_OPIOIDUD,
    HIE_CONSENT_LABEL_SUD,
    HIE_CONSENT_LABEL_PSY,
    HIE_CONSENT_LABEL_HIV,
    HIE_CONSENT_LABEL_STD,
    HIE_CONSENT_LABEL_SDV,
    HIE_CONSENT_LABEL_SEX,
    HIE_CONSENT_LABELS_COUNT
};
#define HIE_CONSENT_LABEL_BIT(l) (1u << (unsigned)(l))
#define HIE_CONSENT_LABELS_ALL ((1u << HIE_CONSENT_LABELS_COUNT) - 1u)
#define HIE_CONSENT_LABELS_CONFIDENTIALITY 0x3fu /* U L M N R V */
#define HIE_CONSENT_LABELS_SENSITIVITY                                                         \
    (HIE_CONSENT_LABELS_ALL & ~HIE_CONSENT_LABELS_CONFIDENTIALITY)
/* ETH ETHUD OPIOIDUD SUD: the labels 42 CFR Part 2 governs. */
#define HIE_CONSENT_LABELS_PART2                                                               \
    (HIE_CONSENT_LABEL_BIT(HIE_CONSENT_LABEL_ETH) |                                            \
        HIE_CONSENT_LABEL_BIT(HIE_CONSENT_LABEL_ETHUD) |                                       \
        HIE_CONSENT_LABEL_BIT(HIE_CONSENT_LABEL_OPIOIDUD) |                                    \
        HIE_CONSENT_LABEL_BIT(HIE_CONSENT_LABEL_SUD))
/* ETH SUD: the substance-use umbrellas; a condition on one covers every Part 2 label. */
#define HIE_CONSENT_LABELS_SUD_UMBRELLA                                                        \
    (HIE_CONSENT_LABEL_BIT(HIE_CONSENT_LABEL_ETH) | HIE_CONSENT_LABEL_BIT(HIE_CONSENT_LABEL_SUD))

/* Document classes; a class set is a bitmask of HIE_CONSENT_CLASS_BIT(class). NONE (0) is
 * "no class known" in a request and never part of a set. */
enum hie_consent_class {
    HIE_CONSENT_CLASS_NONE = 0,
    HIE_CONSENT_CLASS_SUMMARY,
    HIE_CONSENT_CLASS_DISCHARGE_SUMMARY,
    HIE_CONSENT_CLASS_LAB_REPORT,
    HIE_CONSENT_CLASS_IMAGING_REPORT,
    HIE_CONSENT_CLASS_PROGRESS_NOTE,
    HIE_CONSENT_CLASS_MEDICATION_LIST,
    HIE_CONSENT_CLASS_IMMUNIZATION,
    HIE_CONSENT_CLASS_REFERRAL,
    HIE_CONSENT_CLASS_ADT_EVENT,
    HIE_CONSENT_CLASS_OTHER,
    HIE_CONSENT_CLASSES_COUNT
};
#define HIE_CONSENT_CLASS_BIT(c) (1u << (unsigned)(c))

/* Role, purpose and action sets: bit n stands for the proto enum value n (1u << value). */
#define HIE_CONSENT_ROLE_BIT(r) (1u << (unsigned)(r))
#define HIE_CONSENT_PURPOSE_BIT(p) (1u << (unsigned)(p))
#define HIE_CONSENT_ACTION_BIT(a) (1u << (unsigned)(a))
#define HIE_CONSENT_ROLES_KNOWN 0xfeu    /* Hie__V1__Role 1..7 */
#define HIE_CONSENT_PURPOSES_KNOWN 0xfeu /* Hie__V1__PurposeOfUse 1..7 */
#define HIE_CONSENT_ACTIONS_KNOWN 0x1eu  /* Hie__V1__ConsentAction 1..4 */

/* Looks s (len bytes, not NUL-terminated) up in the security label vocabulary.
 * [out] *out: the label; left as HIE_CONSENT_LABELS_COUNT on failure.
 * Returns 0; HIE_ELIMIT (longer than HIE_CONSENT_CODE_BYTES_MAX); HIE_EINVAL (empty, not
 * printable ASCII, or unknown). Any thread. */
HIE_MUST_CHECK int hie_consent_label_parse(const char *s, size_t len,
    enum hie_consent_label *out);
/* Looks s up in the document class vocabulary. [out] *out: the class, HIE_CONSENT_CLASS_NONE
 * on failure. Same returns as hie_consent_label_parse(). Any thread. */
HIE_MUST_CHECK int hie_consent_class_parse(const char *s, size_t len,
    enum hie_consent_class *out);
/* Static code of a label or class ("PSY", "lab-report"); "?" when out of range. Never NULL. */
const char *hie_consent_label_name(enum hie_consent_label label);
const char *hie_consent_class_name(enum hie_consent_class doc_class);

/* ---- policy, request, decision ------------------------------------------------------------ */
/* What happens to a view no directive applies to (ONC consent models). */
enum hie_consent_regime {
    HIE_CONSENT_OPT_IN = 1,  /* no consent on file: deny (IHE PCF Policy-deny) */
    HIE_CONSENT_OPT_OUT = 2, /* no consent on file: permit the opt-out purposes */
};

/* The broker's implicit policy, from the node's config (transparent; set every field, or call
 * hie_consent_policy_init() first). */
typedef struct hie_consent_policy {
    enum hie_consent_regime regime;
    uint32_t opt_out_purposes;  /* HIE_CONSENT_PURPOSE_BIT set permitted under OPT_OUT */
    bool break_glass_allowed;   /* may purpose EMERGENCY override a deny or a redaction */
    bool part2_named_recipient; /* Part 2 labels need a permit naming the requester's org */
} hie_consent_policy_t;

/* Fills *policy with the defaults: OPT_IN, opt_out_purposes TREATMENT | EMERGENCY (used only
 * if the regime is changed to OPT_OUT), break_glass_allowed false (the node's config turns it
 * on where the affinity domain allows it), part2_named_recipient true. Any thread. */
void hie_consent_policy_init(hie_consent_policy_t *policy);

/* One disclosure to decide; every field comes from the envelope, the requester's certificate
 * or the replicated state, never from a payload the requester controls. */
typedef struct hie_consent_request {
    const char *requester_org_id;    /* NUL-terminated organization id; borrowed for the call */
    uint32_t requester_roles;        /* HIE_CONSENT_ROLE_BIT set from the org registry */
    Hie__V1__PurposeOfUse purpose;   /* 1..7 */
    Hie__V1__ConsentAction action;   /* 1..4 */
    uint32_t labels;                 /* HIE_CONSENT_LABEL_BIT set the content carries */
    enum hie_consent_class doc_class; /* HIE_CONSENT_CLASS_NONE when unknown or not a document */
    int64_t data_time_ms;            /* the data's own time; 0 = unknown */
    int64_t now_ms;                  /* decision time (the command's time on the apply path) */
} hie_consent_request_t;

enum hie_consent_verdict {
    HIE_CONSENT_DENY = 0, /* zero, so a zeroed decision denies */
    HIE_CONSENT_PERMIT = 1,
};

/* Obligations: REDACT of label l is bit l (HIE_CONSENT_LABEL_BIT(l)); PART2_NOTICE above. */
#define HIE_CONSENT_OBL_REDACT_MASK HIE_CONSENT_LABELS_ALL
#define HIE_CONSENT_OBL_PART2_NOTICE (1u << 16) /* attach the 42 CFR 2.32 notice */
/* Refrains to stamp on the forwarded message. */
#define HIE_CONSENT_REFRAIN_NORDSCLCD (1u << 0) /* no redisclosure without consent directive */

typedef struct hie_consent_decision {
    enum hie_consent_verdict decision;
    bool break_glass;         /* an EMERGENCY override happened: audit and flag for review */
    bool accounting_excluded; /* need not appear in a 164.528 accounting (rule 8) */
    const char *reason;       /* static, stable code (rule 5); never NULL after a decide call */
    char directive_id[HIE_CONSENT_ID_BYTES_MAX + 1]; /* "" when the implicit policy decided */
    uint64_t directive_version;                      /* 0 when the implicit policy decided */
    uint32_t obligations;     /* REDACT bits and HIE_CONSENT_OBL_PART2_NOTICE */
    uint32_t refrains;        /* HIE_CONSENT_REFRAIN_* */
    enum hie_consent_label confidentiality; /* high-water mark, U..V (rule 7) */
} hie_consent_decision_t;

/* A decision about a document whose class or data time is unknown (doc_class
 * HIE_CONSENT_CLASS_NONE, data_time_ms 0: pushed or answered without them): it could be of any
 * class and from any time, so it is decided for each class some provision of the directives
 * in force names (and one that none names: they all decide alike), at 1 ms and at every
 * distinct data-period bound of those directives (periods are [start, end): the decision is
 * constant from one bound up to the next),
 * and the most restrictive outcome stands: a deny, else a break-glass, else a permit with
 * every candidate's obligations and refrains. With both known it is hie_consent_decide().
 * Spans are checked once. HIE_ELIMIT (failing closed) past HIE_CONSENT_UNKNOWN_BOUNDS_MAX
 * distinct bounds. Other parameters and returns as hie_consent_decide(). */
HIE_MUST_CHECK int hie_consent_decide_unknown(const hie_consent_policy_t *policy,
    const hie_span_t *compiled, size_t n, const hie_consent_request_t *req,
    hie_consent_decision_t *out);

/* ---- validation ---------------------------------------------------------------------------- */
/* Checks d against the directive rules and limits above. Traversal is iterative, and every
 * count and depth is checked before the items it bounds are visited, so a directive with
 * 10,000 provisions or nested 1,000 deep is refused after looking at the first few.
 * [in]  d: the directive, borrowed for the call; NULL trips HIE_ASSERT.
 * [out] info: optional; on failure a static reason and a dotted field name (nested provisions
 *       are named "provision.provisions.<field>" at any depth).
 * Returns 0, HIE_EINVAL (a rule broken) or HIE_ELIMIT (a limit exceeded). Any thread. */
HIE_MUST_CHECK int hie_consent_directive_validate(const Hie__V1__ConsentDirective *d,
    hie_errinfo_t *info);

/* ---- compiled form ------------------------------------------------------------------------- */
/* Compiles d into the flat rule table: header (magic, length, a 64-bit checksum of the rest
 * that catches any single-byte change, version, submitted_index, date_ms, period, status,
 * revoked flag, id) and the provisions in pre-order, each with its effective type
 * (unspecified resolved to the reverse of its parent), depth, parent index,
 * role/purpose/action/label/class bitmasks, periods and the org ids of its actors.
 * Big-endian, no pointers, no padding to trust: any copy of the bytes decides the same.
 * [in]  d: borrowed for the call; validated first (hie_consent_directive_validate()), and it
 *       must also carry the broker-assigned id and a version >= 1.
 * [out] out_buf: cap bytes owned by the caller (HIE_CONSENT_COMPILED_BYTES_MAX always
 *       suffices); written only on success.
 * [out] out_len: bytes written; 0 on failure.
 * [out] info: optional, as for validation ("out_buf" when cap is too small).
 * Returns 0, HIE_EINVAL, HIE_ELIMIT (a limit, or cap too small). Any thread. */
HIE_MUST_CHECK int hie_consent_compile(const Hie__V1__ConsentDirective *d, uint8_t *out_buf,
    size_t cap, size_t *out_len, hie_errinfo_t *info);

/* Validates bytes read back from storage as one compiled directive: length, magic, checksum,
 * and then every field bounds-checked (counts, lengths, masks within their vocabularies, tree
 * shape, type alternation, periods, org ids), so that hie_consent_decide() can read it
 * without further checks. [in] compiled: borrowed for the call.
 * Returns 0 or HIE_ECORRUPT. Any thread. */
HIE_MUST_CHECK int hie_consent_compiled_check(hie_span_t compiled);

/* Copies the id and version out of a compiled directive (for logs and listings).
 * [out] id: id_bytes >= HIE_CONSENT_ID_BYTES_MAX + 1 (asserted); "" on failure.
 * Returns 0 or HIE_ECORRUPT (hie_consent_compiled_check() fails). Any thread. */
HIE_MUST_CHECK int hie_consent_compiled_id(hie_span_t compiled, char *id, size_t id_bytes,
    uint64_t *version);

/* ---- decisions ----------------------------------------------------------------------------- */
/* Decides req against one patient's compiled directives under policy (rules above).
 * [in]  policy: borrowed; an unknown regime or opt_out_purposes outside the known purposes
 *       fails closed (HIE_EINVAL).
 * [in]  compiled: n spans, each one compiled directive, borrowed for the call (an LMDB value
 *       is fine: nothing is kept). n = 0 (and compiled NULL) means no consent on file. Every
 *       span is checked as hie_consent_compiled_check() does before any is used.
 * [in]  req: borrowed; fields out of their ranges fail closed (HIE_EINVAL).
 * [out] out: always written, on failure too: zeroed on entry, then the decision. On any error
 *       it is a DENY with reason "evaluation-error", no directive, no obligation or refrain,
 *       accounting_excluded true and confidentiality V (the content is unknown).
 * Returns 0; HIE_EINVAL (bad policy or request), HIE_ELIMIT (n > HIE_CONSENT_DIRECTIVES_MAX),
 * HIE_ECORRUPT (a compiled directive failed its check). NULL policy, req or out, or NULL
 * compiled with n > 0, trips HIE_ASSERT. Any thread; never blocks. */
HIE_MUST_CHECK int hie_consent_decide(const hie_consent_policy_t *policy,
    const hie_span_t *compiled, size_t n, const hie_consent_request_t *req,
    hie_consent_decision_t *out);

/* The reference evaluator: the same rules, walking the protobuf trees directly (written
 * separately from the compiled path, for differential tests; not for the hot path).
 * [in]  dirs: n directives, borrowed; each is validated first (an invalid one fails closed
 *       with HIE_EINVAL). A directive without an id decides with an empty directive_id.
 * Other parameters and returns as hie_consent_decide(); HIE_ECORRUPT is never returned. */
HIE_MUST_CHECK int hie_consent_decide_tree(const hie_consent_policy_t *policy,
    const Hie__V1__ConsentDirective *const *dirs, size_t n, const hie_consent_request_t *req,
    hie_consent_decision_t *out);

/* True when a decision allows the disclosure (possibly with obligations). */
static inline bool
hie_consent_permitted(const hie_consent_decision_t *d)
{
    return d->decision == HIE_CONSENT_PERMIT;
}

#ifdef __cplusplus
}
#endif
#endif
