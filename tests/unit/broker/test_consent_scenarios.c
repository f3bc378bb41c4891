/*
 * test_consent_scenarios.c - the consent conformance table (reference.md section 6, S4):
 * IHE PCF's basic, intermediate and advanced examples, LEAP-style fixtures, opt-in and
 * opt-out with no consent on file, Part 2, nesting, overlapping directives, period edges and
 * break-glass. Each row (directives in text form, policy, request -> expected decision) runs
 * through the compiled evaluator AND the reference tree evaluator; both must give the
 * expected result, and the same result in every field.
 *
 * Expected text: "permit|deny REASON [dir=ID/VERSION] [redact=L,L] [notice] [bg] [hwm=X]
 * [acct|noacct]". Unlisted means: no directive, no obligation or refrain, no break-glass;
 * hwm and accounting are checked only when listed. "notice" means PART2_NOTICE and the
 * NORDSCLCD refrain (they always go together).
 */
#include "../test_util.h"
#include "test_consent_fixture.h"

#include <criterion/parameterized.h>

struct row {
    const char *name;
    const char *dirs[4];
    const char *policy;
    const char *req;
    const char *expect;
};

#define D1 "id=c1 v=1 date=10 idx=1 : "

static struct row rows[] = {
    /* IHE PCF basic: a consent on file overrides the implicit policy */
    {"pcf_basic_permit", {D1 "permit()"}, "in", "", "permit consent-permit dir=c1/1 acct hwm=N"},
    {"pcf_basic_deny_opt_out", {"id=c1 v=2 date=10 idx=1 : deny()"}, "out", "",
        "deny consent-deny dir=c1/2 acct"},
    {"opt_in_no_consent", {NULL}, "in", "", "deny implicit-opt-in"},
    {"opt_out_no_consent_treatment", {NULL}, "out", "", "permit implicit-opt-out acct"},
    {"opt_out_no_consent_research", {NULL}, "out", "pou=research", "deny implicit-opt-out"},
    {"opt_out_emergency_is_not_break_glass", {NULL}, "out bg", "pou=emerg",
        "permit implicit-opt-out noacct"},
    {"opt_out_custom_purposes", {NULL}, "out oo=research", "pou=research",
        "permit implicit-opt-out noacct"},
    {"opt_out_custom_purposes_exclude_treatment", {NULL}, "out oo=research", "",
        "deny implicit-opt-out"},
    /* IHE PCF intermediate: actor, purpose, timeframe */
    {"pcf_actor_named_permitted", {D1 "deny() { permit(org=org-b) }"}, "in", "",
        "permit consent-permit dir=c1/1"},
    {"pcf_actor_other_org_denied", {D1 "deny() { permit(org=org-b) }"}, "in", "org=org-c",
        "deny consent-deny dir=c1/1"},
    {"actor_role_mismatch_denied", {D1 "deny() { permit(role=clinic) }"}, "in",
        "roles=hospital", "deny consent-deny dir=c1/1"},
    {"actor_role_match_permitted", {D1 "deny() { permit(role=clinic) }"}, "in",
        "roles=clinic", "permit consent-permit dir=c1/1"},
    {"pcf_purpose_match", {D1 "permit(pou=treat)"}, "in", "", "permit consent-permit dir=c1/1"},
    {"pcf_purpose_other_not_applicable", {D1 "permit(pou=treat)"}, "in", "pou=research",
        "deny implicit-opt-in"},
    {"pcf_timeframe_inside", {D1 "permit(period=500..2000)"}, "in", "now=1999",
        "permit consent-permit dir=c1/1"},
    {"provision_period_start_inclusive", {D1 "permit(period=500..2000)"}, "in", "now=500",
        "permit consent-permit dir=c1/1"},
    {"provision_period_end_exclusive", {D1 "permit(period=500..2000)"}, "in", "now=2000",
        "deny implicit-opt-in"},
    {"directive_expired_at_end_edge", {"id=c1 v=1 date=10 idx=1 period=100..1000 : permit()"},
        "in", "now=1000", "deny implicit-opt-in"},
    {"directive_valid_just_before_end", {"id=c1 v=1 date=10 idx=1 period=100..1000 : permit()"},
        "in", "now=999", "permit consent-permit dir=c1/1"},
    {"directive_not_yet_valid", {"id=c1 v=1 date=10 idx=1 period=100..1000 : permit()"}, "in",
        "now=99", "deny implicit-opt-in"},
    {"expired_deny_falls_to_opt_out", {"id=c1 v=1 date=10 idx=1 period=100..500 : deny()"},
        "out", "", "permit implicit-opt-out"},
    /* LEAP-style restrictions */
    {"deny_one_org_matching", {D1 "deny(org=org-c)"}, "out", "org=org-c",
        "deny consent-deny dir=c1/1"},
    {"deny_one_org_others_implicit", {D1 "deny(org=org-c)"}, "out", "org=org-b",
        "permit implicit-opt-out"},
    {"deny_one_purpose", {D1 "permit() { deny(pou=research) }"}, "in", "pou=research",
        "deny consent-deny dir=c1/1"},
    {"deny_one_purpose_other_permitted", {D1 "permit() { deny(pou=research) }"}, "in",
        "pou=pay", "permit consent-permit dir=c1/1 acct"},
    {"deny_a_role", {D1 "permit() { deny(role=payer) }"}, "in", "roles=hospital,payer",
        "deny consent-deny dir=c1/1"},
    /* IHE PCF advanced: security-labelled data */
    {"sensitivity_redaction_psy", {D1 "permit() { deny(label=PSY) }"}, "in", "labels=N,PSY",
        "permit consent-redact dir=c1/1 redact=PSY hwm=N"},
    {"sensitivity_redaction_keeps_hiv", {D1 "permit() { deny(label=PSY) }"}, "in",
        "labels=N,PSY,HIV", "permit consent-redact dir=c1/1 redact=PSY hwm=R"},
    {"unlabelled_content_unaffected", {D1 "permit() { deny(label=PSY) }"}, "in", "labels=N",
        "permit consent-permit dir=c1/1 hwm=N"},
    {"pcf_advanced_restricted_denied", {D1 "permit() { deny(label=R) }"}, "in", "labels=R",
        "deny consent-deny dir=c1/1 hwm=R"},
    {"confidentiality_codes_exact", {D1 "permit() { deny(label=R) }"}, "in", "labels=V",
        "permit consent-permit dir=c1/1 hwm=V"},
    {"label_rooted_directive_redacts", {D1 "deny(label=PSY)"}, "out", "labels=PSY",
        "permit consent-redact dir=c1/1 redact=PSY hwm=N"},
    {"newer_label_deny_over_older_permit",
        {D1 "permit()", "id=c2 v=1 date=20 idx=2 : deny(label=PSY)"}, "in", "labels=PSY",
        "permit consent-redact dir=c1/1 redact=PSY"},
    {"hiv_raises_high_water_mark", {D1 "permit()"}, "in", "labels=HIV",
        "permit consent-permit dir=c1/1 hwm=R"},
    /* 42 CFR Part 2 */
    {"part2_unnamed_recipient_redacted", {D1 "permit(role=hospital)"}, "in", "labels=N,SUD",
        "permit part2-recipient-not-named dir=c1/1 redact=SUD hwm=N"},
    {"part2_named_recipient_disclosed", {D1 "permit(org=org-b)"}, "in", "labels=N,SUD",
        "permit consent-permit dir=c1/1 notice hwm=R"},
    {"part2_named_by_ancestor", {D1 "deny(org=org-b) { permit(pou=treat) }"}, "in",
        "labels=SUD", "permit consent-permit dir=c1/1 notice hwm=R"},
    {"part2_rule_off", {D1 "permit(role=hospital)"}, "in nopart2", "labels=SUD",
        "permit consent-permit dir=c1/1 notice hwm=R"},
    {"part2_implicit_opt_out_redacted", {NULL}, "out", "labels=ETH",
        "permit part2-recipient-not-named redact=ETH hwm=N"},
    {"part2_break_glass_lifts", {D1 "permit(role=hospital)"}, "in bg", "pou=emerg labels=SUD",
        "permit break-glass dir=c1/1 notice bg noacct hwm=R"},
    {"part2_no_break_glass_redacts", {D1 "permit(role=hospital)"}, "in",
        "pou=emerg labels=SUD", "permit part2-recipient-not-named dir=c1/1 redact=SUD noacct"},
    {"part2_and_consent_redaction", {D1 "permit(role=hospital) { deny(label=PSY) }"}, "in",
        "labels=PSY,SUD", "permit part2-recipient-not-named dir=c1/1 redact=PSY,SUD hwm=N"},
    {"part2_named_other_label_denied", {D1 "permit(org=org-b) { deny(label=PSY) }"}, "in",
        "labels=PSY,OPIOIDUD", "permit consent-redact dir=c1/1 redact=PSY notice hwm=R"},
    /* nesting: permit inside deny inside permit */
    {"nested_three_levels_deny_org",
        {D1 "permit() { deny(org=org-c) { permit(pou=emerg) } }"}, "in", "org=org-c",
        "deny consent-deny dir=c1/1"},
    {"nested_three_levels_exception",
        {D1 "permit() { deny(org=org-c) { permit(pou=emerg) } }"}, "in", "org=org-c pou=emerg",
        "permit consent-permit dir=c1/1 noacct"},
    {"nested_three_levels_other_org",
        {D1 "permit() { deny(org=org-c) { permit(pou=emerg) } }"}, "in", "org=org-b",
        "permit consent-permit dir=c1/1"},
    {"unspecified_nested_type_reverses", {D1 "deny() { rev(org=org-b) }"}, "in", "",
        "permit consent-permit dir=c1/1"},
    {"deny_overrides_among_siblings",
        {D1 "deny() { permit(org=org-b) permit(pou=treat) { deny(act=push) } }"}, "in",
        "act=push", "deny consent-deny dir=c1/1"},
    {"siblings_both_permit",
        {D1 "deny() { permit(org=org-b) permit(pou=treat) { deny(act=push) } }"}, "in",
        "act=query", "permit consent-permit dir=c1/1"},
    /* several directives */
    {"latest_date_wins", {D1 "permit()", "id=c2 v=3 date=20 idx=2 : deny()"}, "in", "",
        "deny consent-deny dir=c2/3"},
    {"tie_broken_by_submitted_index",
        {"id=c1 v=1 date=10 idx=5 : deny()", "id=c2 v=1 date=10 idx=3 : permit()"}, "in", "",
        "deny consent-deny dir=c1/1"},
    {"tie_broken_by_submitted_index_any_order",
        {"id=c2 v=1 date=10 idx=3 : permit()", "id=c1 v=1 date=10 idx=5 : deny()"}, "in", "",
        "deny consent-deny dir=c1/1"},
    {"date_beats_submitted_index",
        {"id=c1 v=1 date=20 idx=1 : permit()", "id=c2 v=1 date=10 idx=9 : deny()"}, "in", "",
        "permit consent-permit dir=c1/1"},
    {"inactive_directive_ignored",
        {D1 "permit()", "id=c2 v=1 date=20 idx=2 status=inactive : deny()"}, "in", "",
        "permit consent-permit dir=c1/1"},
    {"revoked_directive_ignored", {D1 "permit()", "id=c2 v=2 date=20 idx=2 revoked : deny()"},
        "in", "", "permit consent-permit dir=c1/1"},
    {"revoked_only_directive", {"id=c1 v=2 date=10 idx=1 revoked : permit()"}, "in", "",
        "deny implicit-opt-in"},
    /* data period, classes, actions */
    {"data_period_inside_denied", {D1 "permit() { deny(data=1..500) }"}, "in", "data=100",
        "deny consent-deny dir=c1/1"},
    {"data_period_end_exclusive", {D1 "permit() { deny(data=1..500) }"}, "in", "data=500",
        "permit consent-permit dir=c1/1"},
    {"data_time_unknown_never_matches", {D1 "permit() { deny(data=1..500) }"}, "in", "data=0",
        "permit consent-permit dir=c1/1"},
    {"data_time_unknown_open_start", {D1 "permit() { deny(data=0..500) }"}, "in", "data=0",
        "permit consent-permit dir=c1/1"},
    {"class_denied", {D1 "permit() { deny(class=imaging-report) }"}, "in",
        "class=imaging-report", "deny consent-deny dir=c1/1"},
    {"class_other_permitted", {D1 "permit() { deny(class=imaging-report) }"}, "in",
        "class=lab-report", "permit consent-permit dir=c1/1"},
    {"class_none_permitted", {D1 "permit() { deny(class=imaging-report) }"}, "in", "",
        "permit consent-permit dir=c1/1"},
    {"action_notify_denied", {D1 "permit() { deny(act=notify) }"}, "in", "act=notify",
        "deny consent-deny dir=c1/1"},
    {"action_identity_permitted", {D1 "permit() { deny(act=notify) }"}, "in", "act=identity",
        "permit consent-permit dir=c1/1"},
    /* break-glass */
    {"break_glass_allowed", {D1 "deny()"}, "in bg", "pou=emerg",
        "permit break-glass dir=c1/1 bg noacct"},
    {"break_glass_forbidden", {D1 "deny()"}, "in", "pou=emerg",
        "deny break-glass-not-allowed dir=c1/1 acct"},
    {"break_glass_no_consent_opt_in", {NULL}, "in bg", "pou=emerg", "permit break-glass bg noacct"},
    {"break_glass_lifts_consent_redaction", {D1 "permit() { deny(label=SUD) }"}, "in bg",
        "pou=emerg labels=SUD", "permit break-glass dir=c1/1 notice bg noacct hwm=R"},
    {"consent_redaction_stands_without_bg", {D1 "permit() { deny(label=SUD) }"}, "in",
        "pou=emerg labels=SUD", "permit consent-redact dir=c1/1 redact=SUD noacct hwm=N"},
    /* substance-use umbrellas: a condition on ETH or SUD covers ETHUD and OPIOIDUD too */
    {"deny_sud_covers_opioid_data", {D1 "permit() { deny(label=SUD) }"}, "in nopart2",
        "labels=OPIOIDUD", "permit consent-redact dir=c1/1 redact=OPIOIDUD hwm=N"},
    {"deny_eth_covers_alcohol_data", {D1 "permit() { deny(label=ETH) }"}, "in nopart2",
        "labels=ETHUD", "permit consent-redact dir=c1/1 redact=ETHUD hwm=N"},
    {"deny_sud_covers_eth_data", {D1 "permit() { deny(label=SUD) }"}, "in nopart2",
        "labels=ETH", "permit consent-redact dir=c1/1 redact=ETH hwm=N"},
    {"deny_alcohol_leaves_opioid_data", {D1 "permit() { deny(label=ETHUD) }"}, "in nopart2",
        "labels=OPIOIDUD", "permit consent-permit dir=c1/1 notice hwm=R"},
    {"deny_opioid_leaves_umbrella_data", {D1 "permit() { deny(label=OPIOIDUD) }"},
        "in nopart2", "labels=SUD", "permit consent-permit dir=c1/1 notice hwm=R"},
    {"part2_named_sud_permit_covers_opioid",
        {D1 "permit() { deny(label=SUD) { permit(org=org-b) } }"}, "in", "labels=OPIOIDUD", "permit consent-permit dir=c1/1 notice hwm=R"},
    /* accounting of disclosures (HIPAA 164.528) */
    {"research_is_accounted", {D1 "permit()"}, "in", "pou=research",
        "permit consent-permit dir=c1/1 noacct"},
    {"patient_request_excluded", {D1 "permit()"}, "in", "pou=patrqt",
        "permit consent-permit dir=c1/1 acct"},
};

/* Parses the expected text and checks d against it. */
static void
expect_decision(const struct row *r, const char *who, const hie_consent_decision_t *d)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", r->expect);
    char *save = NULL;
    char *tok = strtok_r(buf, " ", &save);
    cr_expect_eq(d->decision, strcmp(tok, "permit") == 0 ? HIE_CONSENT_PERMIT : HIE_CONSENT_DENY,
        "%s [%s]: decision", r->name, who);
    tok = strtok_r(NULL, " ", &save);
    cr_expect_str_eq(d->reason, tok, "%s [%s]: reason %s, expected %s", r->name, who, d->reason,
        tok);
    char dir[80] = "/0";
    uint32_t obligations = 0;
    bool bg = false;
    while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
        if (strncmp(tok, "dir=", 4) == 0) {
            snprintf(dir, sizeof(dir), "%s", tok + 4);
        } else if (strncmp(tok, "redact=", 7) == 0) {
            obligations |= cfx_label_mask(tok + 7, strlen(tok + 7));
        } else if (strcmp(tok, "notice") == 0) {
            obligations |= HIE_CONSENT_OBL_PART2_NOTICE;
        } else if (strcmp(tok, "bg") == 0) {
            bg = true;
        } else if (strncmp(tok, "hwm=", 4) == 0) {
            cr_expect_str_eq(hie_consent_label_name(d->confidentiality), tok + 4,
                "%s [%s]: high-water mark", r->name, who);
        } else {
            cr_assert(strcmp(tok, "acct") == 0 || strcmp(tok, "noacct") == 0, "bad token %s", tok);
            cr_expect_eq(d->accounting_excluded, strcmp(tok, "acct") == 0,
                "%s [%s]: accounting_excluded", r->name, who);
        }
    }
    char got[80];
    snprintf(got, sizeof(got), "%s/%" PRIu64, d->directive_id, d->directive_version);
    cr_expect_str_eq(got, dir, "%s [%s]: directive %s, expected %s", r->name, who, got, dir);
    cr_expect_eq(d->obligations, obligations, "%s [%s]: obligations 0x%x, expected 0x%x",
        r->name, who, d->obligations, obligations);
    uint32_t refrains = (obligations & HIE_CONSENT_OBL_PART2_NOTICE) != 0
                            ? HIE_CONSENT_REFRAIN_NORDSCLCD : 0;
    cr_expect_eq(d->refrains, refrains, "%s [%s]: refrains", r->name, who);
    cr_expect_eq(d->break_glass, bg, "%s [%s]: break_glass", r->name, who);
}

/* Criterion runs each parameter in a re-executed worker, where pointers into this process
 * mean nothing: the parameter is the row's index. */
static size_t row_indexes[HIE_ARRAY_LEN(rows)];

ParameterizedTestParameters(consent_scenarios, row)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(rows); i++) {
        row_indexes[i] = i;
    }
    return cr_make_param_array(size_t, row_indexes, HIE_ARRAY_LEN(rows));
}

ParameterizedTest(size_t *index, consent_scenarios, row)
{
    cr_assert_lt(*index, HIE_ARRAY_LEN(rows));
    const struct row *r = &rows[*index];
    hie_arena_t *a = NULL;
    cr_assert_eq(hie_arena_create(&a, CFX_ARENA_BYTES), 0);
    const Hie__V1__ConsentDirective *dirs[4];
    uint8_t *bufs[4];
    hie_span_t spans[4];
    size_t n = 0;
    while (n < 4 && r->dirs[n] != NULL) {
        dirs[n] = cfx_parse(a, r->dirs[n]);
        bufs[n] = cfx_alloc(a, HIE_CONSENT_COMPILED_BYTES_MAX);
        n++;
    }
    cfx_compile_all(dirs, n, bufs, spans);
    hie_consent_policy_t policy;
    hie_consent_request_t req;
    char org[64];
    cfx_policy(r->policy, &policy);
    cfx_request(r->req, &req, org);
    hie_consent_decision_t compiled, tree;
    cr_assert_eq(hie_consent_decide(&policy, spans, n, &req, &compiled), 0, "%s", r->name);
    cr_assert_eq(hie_consent_decide_tree(&policy, dirs, n, &req, &tree), 0, "%s", r->name);
    expect_decision(r, "compiled", &compiled);
    expect_decision(r, "tree", &tree);
    const char *diff = cfx_decision_diff(&compiled, &tree);
    cr_expect_null(diff, "%s: evaluators differ in %s", r->name, diff ? diff : "");
    hie_arena_destroy(&a);
}

Test(consent_scenarios, table_has_at_least_forty_rows)
{
    cr_assert_geq(HIE_ARRAY_LEN(rows), 40u);
    cr_log_info("%zu consent scenarios", HIE_ARRAY_LEN(rows));
}
