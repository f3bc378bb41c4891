/*
 * cli_consent.c - `hie consent submit|revoke|list`: a patient's consent directives, sent by the
 * patient's hospital or clinic on the patient's behalf (issue 4); and the helpers the consent
 * and audit commands share (UTC times, bounded file and JSON reading, one exchange with the
 * node, the certificate's organization).
 *
 * The directive file format, its strict parser and the renderings of a directive live in
 * consent_json.c, shared with `hiectl consent`: a file is refused with its JSON path named
 * ("provision.provisions[0].security_labels[1]") before anything is sent, and the result then
 * goes through hie_consent_directive_validate(), the node's own check, so both sides refuse the
 * same things. The time, file and JSON helpers of cli_int.h are that file's, under the names
 * cli_audit.c uses.
 *
 * Patient data: the MRN comes from the command line and is printed only as the result asked
 * for; error lines name fields and JSON paths, never values. Callers: the table in hie_cli.c
 * (consent) and cli_audit.c (the shared helpers).
 */
#include "cli_int.h"
#include "consent_json.h"

#include "hie/consent.h"

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(CLI_TIME_TEXT_BYTES == HIE_CONSENT_JSON_TIME_BYTES, "one time text size");
_Static_assert(CLI_JSON_DEPTH_MAX == HIE_CONSENT_JSON_DEPTH_MAX, "one JSON depth limit");

/* ---- times, files and JSON (consent_json.c) ------------------------------------------------- */

int
hie_cli__time_parse(const char *s, int64_t *ms)
{
    return hie_consent_json_time_parse(s, ms);
}

const char *
hie_cli__time_format(int64_t ms, char *buf, size_t buf_bytes)
{
    return hie_consent_json_time_format(ms, buf, buf_bytes);
}

int
hie_cli__file_read(const char *path, size_t max_bytes, char **buf, size_t *len)
{
    return hie_consent_json_file_read(path, max_bytes, buf, len);
}

int
hie_cli__json_load(const char *path, size_t max_bytes, const char *what, json_t **out)
{
    char err[HIE_CONSENT_JSON_ERR_BYTES];
    if (hie_consent_json_load(path, max_bytes, out, err, sizeof(err)) != 0) {
        fprintf(stderr, "hie: %s: %s\n", what, err);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

json_t *
hie_cli__jstr(const char *s)
{
    return hie_consent_json_str(s);
}

json_t *
hie_cli__handling_json(const Hie__V1__Handling *h)
{
    json_t *refrain = json_array();
    for (size_t i = 0; h != NULL && refrain != NULL && i < h->n_refrain; i++) {
        json_array_append_new(refrain, hie_cli__jstr(h->refrain[i]));
    }
    return json_pack("{s:o, s:o, s:o}", "confidentiality",
        hie_cli__jstr(h != NULL ? h->confidentiality : ""), "refrain",
        refrain != NULL ? refrain : json_array(), "notice",
        hie_cli__jstr(h != NULL ? h->notice : ""));
}

int
hie_cli__json_emit(json_t *obj)
{
    if (obj == NULL || json_dumpf(obj, stdout, JSON_COMPACT) != 0) {
        fputs(obj == NULL ? "hie: out of memory\n" : "hie: writing the output failed\n", stderr);
        json_decref(obj);
        return CLI_EXIT_CONN;
    }
    json_decref(obj);
    fputc('\n', stdout);
    return CLI_EXIT_OK;
}

/* ---- one exchange ------------------------------------------------------------------------ */

void
hie_cli__purpose_default(struct cli *cli, Hie__V1__PurposeOfUse fallback)
{
    HIE_ASSERT(fallback != HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED);
    if (!cli->purpose_set || cli->purpose == HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED) {
        cli->purpose = fallback;
    }
}

int
hie_cli__exchange(struct cli *cli, const char *what, hie_envelope_t *req, uint32_t seq,
    Hie__V1__Envelope__BodyCase expect, hie_arena_t **arena, hie_envelope_t **reply)
{
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    Hie__V1__Envelope__BodyCase body_case = req->body_case;
    void *body = req->ping; /* every body of the oneof shares this storage */
    Hie__V1__PurposeOfUse purpose = req->purpose;
    *arena = NULL;
    *reply = NULL;
    HIE_ASSERT(body_case != HIE__V1__ENVELOPE__BODY__NOT_SET);
    HIE_ASSERT(body != NULL);
    int ex = hie_cli__request_init(cli, req, seq, id, sizeof(id));
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    req->body_case = body_case;
    req->ping = body;
    if (body_case == HIE__V1__ENVELOPE__BODY_WHOAMI) {
        req->purpose = purpose; /* WhoAmI goes without one */
    }
    ex = hie_cli__arena_create(cli, arena);
    if (ex == CLI_EXIT_OK) {
        ex = hie_cli__call(cli, what, req, expect, *arena, reply);
    }
    if (ex == CLI_EXIT_REPLY && cli->json && *reply != NULL &&
        (*reply)->body_case == HIE__V1__ENVELOPE__BODY_ERROR) {
        const Hie__V1__Error *err = (*reply)->error;
        (void)hie_cli__json_emit(json_pack("{s:{s:s, s:o, s:o}}", "error", "code",
            hie_proto_error_code_name(err->code), "message", hie_cli__jstr(err->message),
            "field", hie_cli__jstr(err->field)));
    }
    req->id = NULL; /* id[] ends here */
    return ex;
}

int
hie_cli__whoami_org(struct cli *cli, char *org, size_t org_bytes)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    Hie__V1__WhoAmIRequest body = HIE__V1__WHO_AM_IREQUEST__INIT;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    HIE_ASSERT(org_bytes > HIE_ORG_ID_BYTES_MAX);
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED; /* allowed for WhoAmI */
    req.body_case = HIE__V1__ENVELOPE__BODY_WHOAMI;
    req.whoami = &body;
    int ex = hie_cli__exchange(cli, "whoami (for the default --org)", &req, HIE_CLI_ID_RANDOM,
        HIE__V1__ENVELOPE__BODY_WHOAMI_REPLY, &arena, &reply);
    if (ex == CLI_EXIT_OK) {
        snprintf(org, org_bytes, "%s", reply->whoami_reply->org_id);
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* ---- the commands ------------------------------------------------------------------------ */

struct consent_args {
    const char *org;
    const char *mrn;
    const char *file;
    bool all;
    const char *const *words; /* after "consent": the action and its arguments */
    int words_count;
    char org_buf[HIE_ORG_ID_BYTES_MAX + 1];
};

static int
consent_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
    struct consent_args *a)
{
    static const struct option opts[] = {{"org", required_argument, NULL, 'o'},
        {"mrn", required_argument, NULL, 'm'}, {"file", required_argument, NULL, 'f'},
        {"all", no_argument, NULL, 'a'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt;
    memset(a, 0, sizeof(*a));
    optind = 0; /* glibc: start over on the subcommand's argv */
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'o': a->org = optarg; break;
        case 'm': a->mrn = optarg; break;
        case 'f': a->file = optarg; break;
        case 'a': a->all = true; break;
        case 'j': cli->json = true; break;
        case 'h':
            printf("usage: hie %s %s\n%s\n(see hie --help for the directive format)\n",
                cmd->name, cmd->args, cmd->summary);
            return CLI_EXIT_OK;
        default: return hie_cli__getopt_error(opt, argv);
        }
    }
    a->words = (const char *const *)(argv + optind);
    a->words_count = argc - optind;
    if (a->words_count < 1) {
        return hie_cli__usage_error("consent needs submit, revoke or list");
    }
    return CLI_CONTINUE;
}

/* The patient's organization: --org, else this certificate's. Returns an exit code. */
static int
consent_org(struct cli *cli, struct consent_args *a)
{
    if (a->org != NULL) {
        return CLI_EXIT_OK;
    }
    int ex = hie_cli__whoami_org(cli, a->org_buf, sizeof(a->org_buf));
    a->org = a->org_buf;
    return ex;
}

/* The directive in the file, built into d (memory in arena and top). Returns an exit code. */
static int
directive_build(const struct consent_args *a, json_t *top, hie_arena_t *arena,
    Hie__V1__ConsentDirective *d, Hie__V1__PatientId *pid)
{
    hie_consent_json_err_t err;
    if (hie_consent_json_directive(top, a->org, a->mrn, arena, d, pid, &err) == 0) {
        return CLI_EXIT_OK;
    }
    if (err.invalid) {
        fprintf(stderr, "hie: consent submit: the directive is invalid: %s: %s\n", err.path,
            err.why);
    } else {
        fprintf(stderr, "hie: consent submit: %s: ", a->file);
        hie_cli__fputs_safe(stderr, err.path);
        fprintf(stderr, ": %s\n", err.why);
    }
    return CLI_EXIT_USAGE;
}

static int
consent_submit(struct cli *cli, struct consent_args *a)
{
    json_t *top = NULL;
    hie_arena_t *build = NULL, *arena = NULL;
    hie_envelope_t *reply = NULL;
    Hie__V1__ConsentDirective d;
    Hie__V1__PatientId pid;
    Hie__V1__ConsentSubmitRequest body = HIE__V1__CONSENT_SUBMIT_REQUEST__INIT;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    if (a->words_count != 1 || a->mrn == NULL || a->file == NULL || a->all) {
        return hie_cli__usage_error("consent submit takes --mrn MRN [--org ORG] --file FILE");
    }
    int ex = hie_cli__json_load(a->file, HIE_CONSENT_JSON_FILE_BYTES_MAX, "consent submit", &top);
    if (ex == CLI_EXIT_OK && hie_arena_create(&build, HIE_CONSENT_JSON_ARENA_BYTES) != 0) {
        fputs("hie: out of memory\n", stderr);
        ex = CLI_EXIT_CONN;
    }
    ex = ex != CLI_EXIT_OK ? ex : consent_org(cli, a);
    ex = ex != CLI_EXIT_OK ? ex : directive_build(a, top, build, &d, &pid);
    if (ex == CLI_EXIT_OK) {
        body.directive = &d;
        req.body_case = HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT;
        req.consent_submit = &body;
        ex = hie_cli__exchange(cli, "consent submit", &req, 0,
            HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT_REPLY, &arena, &reply);
    }
    if (ex == CLI_EXIT_OK) {
        const Hie__V1__ConsentSubmitReply *r = reply->consent_submit_reply;
        if (cli->json) {
            ex = hie_cli__json_emit(json_pack("{s:o, s:I, s:o}", "id", hie_cli__jstr(r->id),
                "version", (json_int_t)r->version, "euid", hie_cli__jstr(r->euid)));
        } else {
            fputs("id=", stdout);
            hie_cli__fputs_safe(stdout, r->id);
            printf(" version=%" PRIu64 " euid=", r->version);
            hie_cli__fputs_safe(stdout, r->euid);
            fputc('\n', stdout);
        }
    }
    hie_arena_destroy(&arena);
    hie_arena_destroy(&build);
    json_decref(top);
    return ex;
}

static int
consent_revoke(struct cli *cli, struct consent_args *a)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    Hie__V1__ConsentRevokeRequest body = HIE__V1__CONSENT_REVOKE_REQUEST__INIT;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    if (a->words_count != 2 || a->mrn != NULL || a->org != NULL || a->file != NULL || a->all) {
        return hie_cli__usage_error("consent revoke takes the directive id only");
    }
    if (!hie_proto_id_valid(a->words[1], strlen(a->words[1]))) {
        return hie_cli__usage_error("not a directive id (e.g. cns-12)");
    }
    body.id = (char *)(uintptr_t)a->words[1];
    req.body_case = HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE;
    req.consent_revoke = &body;
    int ex = hie_cli__exchange(cli, "consent revoke", &req, 0,
        HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE_REPLY, &arena, &reply);
    if (ex == CLI_EXIT_OK) {
        const Hie__V1__ConsentRevokeReply *r = reply->consent_revoke_reply;
        if (cli->json) {
            ex = hie_cli__json_emit(json_pack("{s:o, s:I}", "id", hie_cli__jstr(r->id),
                "version", (json_int_t)r->version));
        } else {
            fputs("id=", stdout);
            hie_cli__fputs_safe(stdout, r->id);
            printf(" version=%" PRIu64 " status=inactive\n", r->version);
        }
    }
    hie_arena_destroy(&arena);
    return ex;
}

static int
list_print(const struct cli *cli, const Hie__V1__ConsentListReply *r)
{
    if (r->revoked_not_listed > 0) {
        fprintf(stderr, "hie: consent list: %" PRIu32 " older revoked directives not listed "
            "(--all lists the 224 revoked last)\n", r->revoked_not_listed);
    }
    if (!cli->json) {
        hie_consent_json_table(stdout, r->directives, r->n_directives);
        return CLI_EXIT_OK;
    }
    json_t *list = hie_consent_json_list(r->directives, r->n_directives);
    if (list == NULL) {
        fputs("hie: consent list failed: a directive is over the limits\n", stderr);
        return CLI_EXIT_CONN;
    }
    return hie_cli__json_emit(list);
}

static int
consent_list(struct cli *cli, struct consent_args *a)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    Hie__V1__ConsentListRequest body = HIE__V1__CONSENT_LIST_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    if (a->words_count != 1 || a->mrn == NULL || a->file != NULL) {
        return hie_cli__usage_error("consent list takes --mrn MRN [--org ORG] [--all]");
    }
    int ex = consent_org(cli, a);
    if (ex != CLI_EXIT_OK) {
        return ex;
    }
    pid.org_id = (char *)(uintptr_t)a->org;
    pid.mrn = (char *)(uintptr_t)a->mrn;
    body.patient = &pid;
    body.include_inactive = a->all;
    req.body_case = HIE__V1__ENVELOPE__BODY_CONSENT_LIST;
    req.consent_list = &body;
    ex = hie_cli__exchange(cli, "consent list", &req, 0,
        HIE__V1__ENVELOPE__BODY_CONSENT_LIST_REPLY, &arena, &reply);
    if (ex == CLI_EXIT_OK) {
        ex = list_print(cli, reply->consent_list_reply);
    }
    hie_arena_destroy(&arena);
    return ex;
}

int
hie_cli__cmd_consent(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct consent_args a;
    int ex = consent_parse(cli, cmd, argc, argv, &a);
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    /* directives are managed on the patient's behalf: operations unless --purpose says else */
    hie_cli__purpose_default(cli, HIE__V1__PURPOSE_OF_USE__PURPOSE_OPERATIONS);
    if (strcmp(a.words[0], "submit") == 0) {
        return consent_submit(cli, &a);
    } else if (strcmp(a.words[0], "revoke") == 0) {
        return consent_revoke(cli, &a);
    } else if (strcmp(a.words[0], "list") == 0) {
        return consent_list(cli, &a);
    }
    return hie_cli__usage_error("unknown consent action '%s' (submit, revoke, list)",
        a.words[0]);
}
