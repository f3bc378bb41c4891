/*
 * ctl_consent.c - hiectl consent submit|revoke|list: the operator manages any organization's
 * patients' directives through the members' consent exchanges, as requester "@operator"
 * (admin.c).
 */
#include "hiectl_int.h"

#include "consent_json.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* ---- consent ------------------------------------------------------------------------------
 *
 * The operator files, revokes and lists any organization's patients' directives; the node runs
 * the members' consent exchanges as requester "@operator" (admin.c). Submit and revoke are
 * commands: --id makes them idempotent, as for org commands.
 */

static int
ctl_json_emit(json_t *obj)
{
    if (obj == NULL || json_dumpf(obj, stdout, JSON_COMPACT) != 0) {
        fprintf(stderr, "hiectl: %s\n", obj == NULL ? "out of memory" : "writing failed");
        json_decref(obj);
        return 3;
    }
    json_decref(obj);
    fputc('\n', stdout);
    return 0;
}

/* reply when it has the body kind asked for; else a reply whose consent bodies are NULL. */
static const Hie__V1__AdminReply *
consent_reply(const Hie__V1__AdminReply *reply, Hie__V1__AdminReply__BodyCase expect)
{
    static const Hie__V1__AdminReply none = HIE__V1__ADMIN_REPLY__INIT;
    return reply->body_case == expect ? reply : &none;
}

/* The directive in c->file for (c->org, c->mrn), parsed into d. Returns 0 or an exit code. */
static int
consent_directive_read(const struct ctl *c, json_t **top, hie_arena_t *build,
    Hie__V1__ConsentDirective *d, Hie__V1__PatientId *pid)
{
    char err[HIE_CONSENT_JSON_ERR_BYTES];
    hie_consent_json_err_t e;
    if (hie_consent_json_load(c->file, HIE_CONSENT_JSON_FILE_BYTES_MAX, top, err,
            sizeof(err)) != 0) {
        fprintf(stderr, "hiectl: consent submit: %s\n", err);
        return 2;
    }
    if (hie_consent_json_directive(*top, c->org, c->mrn, build, d, pid, &e) != 0) {
        char path[HIE_CONSENT_JSON_PATH_BYTES];
        hie_ctl__text_safe(path, sizeof(path), e.path);
        fprintf(stderr, "hiectl: consent submit: %s%s: %s: %s\n", e.invalid ? "" : c->file,
            e.invalid ? "the directive is invalid" : "", path, e.why);
        return 2;
    }
    return 0;
}

static int
ctl_consent_submit(const struct ctl *c, hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__ConsentSubmitRequest sub = HIE__V1__CONSENT_SUBMIT_REQUEST__INIT;
    Hie__V1__ConsentDirective d;
    Hie__V1__PatientId pid;
    json_t *top = NULL;
    hie_arena_t *build = NULL;
    char id[40], safe[HIE_PROTO_ID_BYTES_MAX + 1], euid[HIE_PROTO_ID_BYTES_MAX + 1];
    if (c->org == NULL || c->mrn == NULL || c->file == NULL) {
        fprintf(stderr, "hiectl: consent submit needs --org ORG --mrn MRN --file FILE\n");
        return 2;
    }
    if (hie_arena_create(&build, HIE_CONSENT_JSON_ARENA_BYTES) != 0) {
        fprintf(stderr, "hiectl: out of memory\n");
        return 3;
    }
    int ex = consent_directive_read(c, &top, build, &d, &pid);
    if (ex == 0) {
        snprintf(id, sizeof(id), "ctl-%08x%08x", randombytes_random(), randombytes_random());
        sub.directive = &d;
        req.id = c->id != NULL ? (char *)(uintptr_t)c->id : id;
        req.body_case = HIE__V1__ADMIN_REQUEST__BODY_CONSENT_SUBMIT;
        req.consent_submit = &sub;
        const Hie__V1__ConsentSubmitReply *r = consent_reply(hie_ctl__call(c, &req, arena),
        HIE__V1__ADMIN_REPLY__BODY_CONSENT_SUBMIT)->consent_submit;
        if (r == NULL) {
            fprintf(stderr, "hiectl: unexpected answer\n");
            ex = 3;
        } else if (c->json) {
            ex = ctl_json_emit(json_pack("{s:o, s:I, s:o}", "id", hie_consent_json_str(r->id),
                "version", (json_int_t)r->version, "euid", hie_consent_json_str(r->euid)));
        } else {
            hie_ctl__text_safe(safe, sizeof(safe), r->id);
            hie_ctl__text_safe(euid, sizeof(euid), r->euid);
            printf("id=%s version=%llu euid=%s\n", safe, (unsigned long long)r->version, euid);
        }
    }
    json_decref(top);
    hie_arena_destroy(&build);
    return ex;
}

static int
ctl_consent_revoke(const struct ctl *c, const char *directive_id, hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__ConsentRevokeRequest rev = HIE__V1__CONSENT_REVOKE_REQUEST__INIT;
    char id[40], safe[HIE_PROTO_ID_BYTES_MAX + 1];
    if (!hie_proto_id_valid(directive_id, strlen(directive_id)) || c->file != NULL) {
        fprintf(stderr, "hiectl: consent revoke takes a directive id (e.g. cns-12)\n");
        return 2;
    }
    snprintf(id, sizeof(id), "ctl-%08x%08x", randombytes_random(), randombytes_random());
    rev.id = (char *)(uintptr_t)directive_id;
    req.id = c->id != NULL ? (char *)(uintptr_t)c->id : id;
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_CONSENT_REVOKE;
    req.consent_revoke = &rev;
    const Hie__V1__ConsentRevokeReply *r = consent_reply(hie_ctl__call(c, &req, arena),
        HIE__V1__ADMIN_REPLY__BODY_CONSENT_REVOKE)->consent_revoke;
    if (r == NULL) {
        fprintf(stderr, "hiectl: unexpected answer\n");
        return 3;
    }
    if (c->json) {
        return ctl_json_emit(json_pack("{s:o, s:I}", "id", hie_consent_json_str(r->id),
            "version", (json_int_t)r->version));
    }
    hie_ctl__text_safe(safe, sizeof(safe), r->id);
    printf("id=%s version=%llu status=inactive\n", safe, (unsigned long long)r->version);
    return 0;
}

static int
ctl_consent_list(const struct ctl *c, hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__ConsentListRequest list = HIE__V1__CONSENT_LIST_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    if (c->org == NULL || c->mrn == NULL || c->file != NULL) {
        fprintf(stderr, "hiectl: consent list needs --org ORG --mrn MRN [--all]\n");
        return 2;
    }
    pid.org_id = (char *)(uintptr_t)c->org;
    pid.mrn = (char *)(uintptr_t)c->mrn;
    list.patient = &pid;
    list.include_inactive = c->all;
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_CONSENT_LIST;
    req.consent_list = &list;
    const Hie__V1__ConsentListReply *r = consent_reply(hie_ctl__call(c, &req, arena),
        HIE__V1__ADMIN_REPLY__BODY_CONSENT_LIST)->consent_list;
    if (r == NULL) {
        fprintf(stderr, "hiectl: unexpected answer\n");
        return 3;
    }
    if (r->revoked_not_listed > 0) {
        fprintf(stderr, "hiectl: consent list: %" PRIu32 " older revoked directives not listed "
            "(--all lists the 224 revoked last)\n", r->revoked_not_listed);
    }
    if (!c->json) {
        hie_consent_json_table(stdout, r->directives, r->n_directives);
        return 0;
    }
    json_t *j = hie_consent_json_list(r->directives, r->n_directives);
    if (j == NULL) {
        fprintf(stderr, "hiectl: consent list: a directive is over the limits\n");
        return 3;
    }
    return ctl_json_emit(j);
}

int
hie_ctl__consent(const struct ctl *c, int argc, char **argv, hie_arena_t *arena)
{
    if (argc == 1 && strcmp(argv[0], "submit") == 0) {
        return ctl_consent_submit(c, arena);
    } else if (argc == 2 && strcmp(argv[0], "revoke") == 0) {
        return ctl_consent_revoke(c, argv[1], arena);
    } else if (argc == 1 && strcmp(argv[0], "list") == 0) {
        return ctl_consent_list(c, arena);
    }
    hie_ctl__usage(stderr);
    return 2;
}

