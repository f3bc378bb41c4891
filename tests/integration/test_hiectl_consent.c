/*
 * test_hiectl_consent.c - `hiectl consent submit|list|revoke` against a real hie-node (issue 4,
 * "submit, revoke and list directives ... with hiectl"): the operator files a directive for a
 * clinic's patient from a JSON file (the same format as `hie consent submit`), lists it, and a
 * member's PIX is denied while it is in force and permitted again once the operator revokes
 * it; the listing with --all shows version 2 inactive. A malformed file exits 2 naming its
 * JSON path and sends nothing; an MRN the index does not know exits 1 with NOT_FOUND.
 *
 * The harness config is consent regime opt-out: treatment disclosures are permitted when no
 * directive is on file.
 */
#include "exchange.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define HOSP "general-hospital"
#define CLINIC "riverside-clinic"
#define OUT_BYTES (256u * 1024u)

static char out[OUT_BYTES];

/* The clinic's patient: everyone but the general hospital. */
static const char DENY_HOSPITAL[] =
    "{\"status\": \"active\", \"date\": \"2026-11-01\",\n"
    " \"provision\": {\"type\": \"permit\",\n"
    "   \"provisions\": [{\"actors\": [{\"org\": \"general-hospital\"}]}]}}\n";

static void
setup(itest_node_t *n, hie_client_t **h, hie_client_t **c, hie_arena_t *a)
{
    itest_node_init(n, NULL);
    itest_node_start(n);
    itest_register(n, HOSP, "hospital");
    itest_register(n, CLINIC, "clinic");
    *h = itest_client(n, HOSP);
    *c = itest_client(n, CLINIC);
    const Hie__V1__FeedAction create = HIE__V1__FEED_ACTION__FEED_CREATE;
    Hie__V1__MpiFeedReply *r1 = feed_ok(*h, "f1", create, HOSP, "H-1", &JOHN, NULL, a);
    Hie__V1__MpiFeedReply *r2 = feed_ok(*c, "f2", create, CLINIC, "C-9", &JON, NULL, a);
    cr_assert_str_eq(r2->euid, r1->euid, "linked");
}

static void
write_file(itest_node_t *n, const char *name, const char *text, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", n->root, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "open %s", path);
    cr_assert(fputs(text, f) >= 0);
    cr_assert_eq(fclose(f), 0);
}

/* The line of out that holds needle, into line ("" when none). */
static void
line_with(const char *needle, char *line, size_t cap)
{
    const char *p = strstr(out, needle);
    line[0] = '\0';
    if (p == NULL) {
        return;
    }
    while (p > out && p[-1] != '\n') {
        p--;
    }
    snprintf(line, cap, "%.*s", (int)strcspn(p, "\n"), p);
}

/* The hospital's PIX for the clinic's patient: permitted (a reply) or hidden (NOT_FOUND). */
static bool
hospital_sees_clinic_patient(hie_client_t *h, const char *id, hie_arena_t *a)
{
    hie_envelope_t *r = pix(h, id, CLINIC, "C-9", a);
    if (r->body_case == HIE__V1__ENVELOPE__BODY_ERROR) {
        expect_error(r, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn");
        return false;
    }
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_PIX_REPLY);
    return true;
}

/* `hiectl consent list --all --json`: the directive id at version 2, inactive, by the operator. */
static void
check_listed_json(itest_node_t *n, const char *id)
{
    int rc = itest_ctl(n, out, sizeof(out), "consent list --org %s --mrn C-9 --all --json",
        CLINIC);
    cr_assert_eq(rc, 0, "%s", out);
    json_error_t err;
    json_t *j = json_loads(out, 0, &err);
    cr_assert_not_null(j, "not JSON (%s): %s", err.text, out);
    json_t *d = json_array_get(json_object_get(j, "directives"), 0);
    cr_assert_not_null(d, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(d, "id")), id);
    cr_assert_eq(json_integer_value(json_object_get(d, "version")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(d, "status")), "inactive");
    cr_assert_str_eq(json_string_value(json_object_get(d, "submitted_by")), "@operator");
    cr_assert_str_eq(json_string_value(json_object_get(d, "revoked_by")), "@operator");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(d, "patient"), "mrn")),
        "C-9");
    json_decref(j);
}

Test(hiectl_consent, operator_submits_lists_and_revokes_for_a_clinic_patient, .timeout = 180)
{
    itest_node_t n;
    hie_client_t *h = NULL, *c = NULL;
    hie_arena_t *a = arena_new();
    char path[ITEST_PATH + 32], id[80], line[1024];
    setup(&n, &h, &c, a);
    cr_assert(hospital_sees_clinic_patient(h, "p0", a), "opt-out: permitted before");
    write_file(&n, "deny.json", DENY_HOSPITAL, path, sizeof(path));
    int rc = itest_ctl(&n, out, sizeof(out), "consent submit --org %s --mrn C-9 --file '%s'",
        CLINIC, path);
    cr_assert_eq(rc, 0, "submit: %s", out);
    cr_assert(strncmp(out, "id=cns-", 7) == 0 && strstr(out, " version=1 euid=") != NULL,
        "%s", out);
    snprintf(id, sizeof(id), "%.*s", (int)strcspn(out + 3, " \n"), out + 3);
    /* listed, in the same table as hie consent list */
    rc = itest_ctl(&n, out, sizeof(out), "consent list --org %s --mrn C-9", CLINIC);
    cr_assert_eq(rc, 0, "list: %s", out);
    line_with(id, line, sizeof(line));
    cr_assert(strstr(line, " active ") != NULL && strstr(line, "@operator") != NULL, "%s", out);
    cr_assert(strstr(line, "2026-11-01T00:00:00Z") != NULL, "%s", line);
    cr_assert(strstr(line, "permit +1 nested") != NULL, "%s", line);
    /* in force: the hospital no longer sees the clinic's patient */
    cr_assert(!hospital_sees_clinic_patient(h, "p1", a), "denied by the operator's directive");
    /* the operator revokes (stdin file form not needed here): permitted again at once */
    rc = itest_ctl(&n, out, sizeof(out), "consent revoke %s", id);
    cr_assert_eq(rc, 0, "revoke: %s", out);
    cr_assert(strstr(out, "version=2 status=inactive") != NULL, "%s", out);
    cr_assert(hospital_sees_clinic_patient(h, "p2", a), "revoked: permitted");
    rc = itest_ctl(&n, out, sizeof(out), "consent list --org %s --mrn C-9", CLINIC);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "no consent directives on file") != NULL, "%s", out);
    rc = itest_ctl(&n, out, sizeof(out), "consent list --org %s --mrn C-9 --all", CLINIC);
    cr_assert_eq(rc, 0, "%s", out);
    line_with(id, line, sizeof(line));
    cr_assert(strstr(line, " 2 ") != NULL && strstr(line, " inactive ") != NULL, "%s", out);
    check_listed_json(&n, id);
    /* a second revoke is refused by the node */
    rc = itest_ctl(&n, out, sizeof(out), "consent revoke %s", id);
    cr_assert_eq(rc, 1, "second revoke: %s", out);
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}

Test(hiectl_consent, bad_files_and_unknown_patients_are_refused, .timeout = 180)
{
    itest_node_t n;
    hie_client_t *h = NULL, *c = NULL;
    hie_arena_t *a = arena_new();
    char path[ITEST_PATH + 32];
    setup(&n, &h, &c, a);
    /* a malformed file: exit 2, the JSON path named, nothing sent */
    write_file(&n, "bad.json", "{\"status\":\"active\",\"provision\":{\"type\":\"permit\","
        "\"provisions\":[{\"security_labels\":[\"PSY\",\"XYZ\"]}]}}", path, sizeof(path));
    int rc = itest_ctl(&n, out, sizeof(out), "consent submit --org %s --mrn C-9 --file '%s'",
        CLINIC, path);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "provision.provisions[0].security_labels[1]") != NULL, "%s", out);
    cr_assert(strstr(out, "unknown security label") != NULL, "%s", out);
    rc = itest_ctl(&n, out, sizeof(out), "consent submit --org %s --mrn C-9 --file - < '%s'",
        CLINIC, path);
    cr_assert_eq(rc, 2, "from stdin: %s", out);
    cr_assert(strstr(out, "provision.provisions[0].security_labels[1]") != NULL, "%s", out);
    write_file(&n, "notjson.json", "{\"status\": \"active\",}", path, sizeof(path));
    rc = itest_ctl(&n, out, sizeof(out), "consent submit --org %s --mrn C-9 --file '%s'",
        CLINIC, path);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "invalid JSON") != NULL, "%s", out);
    rc = itest_ctl(&n, out, sizeof(out), "consent submit --org %s --file '%s'", CLINIC, path);
    cr_assert_eq(rc, 2, "no --mrn: %s", out);
    /* an MRN the index does not know: the node refuses, exit 1 */
    write_file(&n, "ok.json", DENY_HOSPITAL, path, sizeof(path));
    rc = itest_ctl(&n, out, sizeof(out), "consent submit --org %s --mrn C-404 --file '%s'",
        CLINIC, path);
    cr_assert_eq(rc, 1, "an unknown patient: %s", out);
    cr_assert(strstr(out, "NOT_FOUND") != NULL, "%s", out);
    rc = itest_ctl(&n, out, sizeof(out), "consent revoke cns-999999");
    cr_assert_eq(rc, 1, "an unknown directive: %s", out);
    /* nothing was stored; the hospital still sees the patient */
    rc = itest_ctl(&n, out, sizeof(out), "consent list --org %s --mrn C-9 --all", CLINIC);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "no consent directives on file") != NULL, "%s", out);
    cr_assert(hospital_sees_clinic_patient(h, "p1", a));
    hie_client_destroy(&h);
    hie_client_destroy(&c);
    hie_arena_destroy(&a);
    itest_node_cleanup(&n);
}
