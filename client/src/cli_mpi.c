/*
 * cli_mpi.c - the master patient index commands of `hie`: feed, pix, pdq and review.
 *
 * Each command parses its options (the demographics options are shared), fills the organization
 * from WhoAmI when --org is not given, sends one request envelope through hie_cli__call() and
 * prints the reply as readable text or, with --json, one JSON object built with jansson. An
 * Error reply is printed on stderr (code, message, field) and, with --json, also as
 * {"error":{...}} on stdout, so a script always gets one object.
 *
 * Patient data is printed only as the result the user asked for, never in error lines.
 * Callers: the command table in hie_cli.c.
 */
#include "cli_int.h"
#include "consent_json.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Values of a repeatable option (--given, --family, --address, --target-org). */
#define MPI_VALUES_MAX 8u
#define MPI_PDQ_LIMIT_MAX 50u
#define MPI_REVIEW_LIMIT_MAX 500u

struct mpi_values {
    char *vals[MPI_VALUES_MAX];
    size_t count;
};

struct mpi_args {
    const char *org;
    const char *mrn;
    const char *prior_mrn;
    struct mpi_values given;
    struct mpi_values family;
    struct mpi_values address;
    struct mpi_values targets;
    const char *dob;
    const char *sex;
    const char *city;
    const char *postcode;
    const char *phone;
    const char *email;
    const char *national_id;
    uint32_t limit;
    double min_probability;
    uint64_t after;
    bool all;
    const char *const *words; /* positional arguments after the command name */
    int words_count;
    char org_buf[HIE_ORG_ID_BYTES_MAX + 1];
};

static const struct option mpi_options[] = {
    {"org", required_argument, NULL, 'o'}, {"mrn", required_argument, NULL, 'm'},
    {"given", required_argument, NULL, 'g'}, {"family", required_argument, NULL, 'f'},
    {"dob", required_argument, NULL, 'd'}, {"birth-date", required_argument, NULL, 'd'},
    {"sex", required_argument, NULL, 's'}, {"address", required_argument, NULL, 'a'},
    {"city", required_argument, NULL, 'c'}, {"postcode", required_argument, NULL, 'p'},
    {"phone", required_argument, NULL, 'P'}, {"email", required_argument, NULL, 'e'},
    {"national-id", required_argument, NULL, 'n'}, {"prior-mrn", required_argument, NULL, 'r'},
    {"target-org", required_argument, NULL, 't'}, {"limit", required_argument, NULL, 'l'},
    {"min-probability", required_argument, NULL, 'M'}, {"after", required_argument, NULL, 'A'},
    {"all", no_argument, NULL, 'L'}, {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

/* Options each command takes (short letters of mpi_options; j and h always). */
#define MPI_DEMOGRAPHICS_OPTS "gfdsacpPen"
#define MPI_FEED_OPTS "omr" MPI_DEMOGRAPHICS_OPTS
#define MPI_PIX_OPTS "omt"
#define MPI_PDQ_OPTS "lM" MPI_DEMOGRAPHICS_OPTS
#define MPI_REVIEW_OPTS "lAL"

static const char *
mpi_option_name(int opt)
{
    return hie_cli__option_name(mpi_options, opt);
}

static int
values_add(struct mpi_values *v, char *s, int opt)
{
    if (v->count >= MPI_VALUES_MAX) {
        return hie_cli__usage_error("--%s given more than %u times", mpi_option_name(opt),
            MPI_VALUES_MAX);
    }
    v->vals[v->count++] = s;
    return CLI_CONTINUE;
}

static int
mpi_number(const char *s, uint64_t max, uint64_t *out, int opt)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v > max) {
        return hie_cli__usage_error("invalid value for --%s", mpi_option_name(opt));
    }
    *out = v;
    return CLI_CONTINUE;
}

static int
mpi_probability(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || !(v >= 0.0 && v <= 1.0)) {
        return hie_cli__usage_error("--min-probability must be a number in 0..1");
    }
    *out = v;
    return CLI_CONTINUE;
}

/* Applies one option with a value. Returns CLI_CONTINUE or an exit code. */
static int
mpi_option(void *ctx, int opt, char *val)
{
    struct mpi_args *a = ctx;
    uint64_t n = 0;
    int ex = CLI_CONTINUE;
    switch (opt) {
    case 'o': a->org = val; break;
    case 'm': a->mrn = val; break;
    case 'r': a->prior_mrn = val; break;
    case 'g': return values_add(&a->given, val, opt);
    case 'f': return values_add(&a->family, val, opt);
    case 'a': return values_add(&a->address, val, opt);
    case 't': return values_add(&a->targets, val, opt);
    case 'd': a->dob = val; break;
    case 's': a->sex = val; break;
    case 'c': a->city = val; break;
    case 'p': a->postcode = val; break;
    case 'P': a->phone = val; break;
    case 'e': a->email = val; break;
    case 'n': a->national_id = val; break;
    case 'l':
        ex = mpi_number(val, UINT32_MAX, &n, opt);
        a->limit = (uint32_t)n;
        break;
    case 'M': return mpi_probability(val, &a->min_probability);
    case 'A': return mpi_number(val, UINT64_MAX, &a->after, opt);
    case 'L': a->all = true; break;
    default: HIE_ASSERT(false); /* every option of mpi_options has a case */
    }
    return ex;
}

/* Parses a command's options; allowed lists the short letters it takes. */
static int
mpi_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
    const char *allowed, struct mpi_args *a)
{
    memset(a, 0, sizeof(*a));
    int ex = hie_cli__options(cli, cmd, argc, argv, mpi_options, allowed,
        "(see hie --help for the options)", mpi_option, a);
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    a->words = (const char *const *)(argv + optind);
    a->words_count = argc - optind;
    return CLI_CONTINUE;
}

/* ---- JSON -------------------------------------------------------------------------------- */

/* A JSON string of s; bytes that are not valid UTF-8 become '?' (jansson refuses them). */
static json_t *
jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL) {
        return j;
    }
    size_t len = strlen(s);
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return json_null();
    }
    for (size_t i = 0; i <= len; i++) {
        copy[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
    }
    j = json_string(copy);
    free(copy);
    return j != NULL ? j : json_null();
}

static json_t *
jstr_array(char **vals, size_t count)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < count; i++) {
        json_array_append_new(arr, jstr(vals[i]));
    }
    return arr;
}

/* Prints obj as one line on stdout and releases it. Returns an exit code. */
static int
json_emit(json_t *obj)
{
    if (obj == NULL || json_dumpf(obj, stdout, JSON_COMPACT) != 0) {
        json_decref(obj);
        fputs("hie: out of memory\n", stderr);
        return CLI_EXIT_CONN;
    }
    json_decref(obj);
    fputc('\n', stdout);
    return CLI_EXIT_OK;
}

/* A number from the node as JSON: null for NaN or infinity, which JSON cannot hold (jansson
 * refused the whole object, and the row went missing from the output). */
static json_t *
jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *
explanation_json(const Hie__V1__MatchExplanation *x)
{
    if (x == NULL) {
        return json_null();
    }
    json_t *fields = json_array();
    for (size_t i = 0; fields != NULL && i < x->n_fields; i++) {
        const Hie__V1__FieldScore *f = x->fields[i];
        json_array_append_new(fields, json_pack("{s:o, s:o, s:o}", "field", jstr(f->field),
                                          "level", jstr(f->level), "weight", jnum(f->weight)));
    }
    return json_pack("{s:o, s:o, s:o, s:o, s:I, s:o}", "candidate_euid",
        jstr(x->candidate_euid), "weight", jnum(x->weight), "probability",
        jnum(x->probability), "rule", jstr(x->rule), "model_version",
        (json_int_t)x->model_version, "fields", fields);
}

static json_t *
id_json(const Hie__V1__PatientId *id)
{
    if (id == NULL) {
        return json_null();
    }
    return json_pack("{s:o, s:o}", "org_id", jstr(id->org_id), "mrn", jstr(id->mrn));
}

static json_t *
ids_json(Hie__V1__PatientId *const *ids, size_t count)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < count; i++) {
        json_array_append_new(arr, id_json(ids[i]));
    }
    return arr;
}

static const char *sex_names[] = {"", "female", "male", "other", "unknown"};

static const char *
sex_name(Hie__V1__Sex sex)
{
    return (unsigned)sex < HIE_ARRAY_LEN(sex_names) ? sex_names[sex] : "";
}

static json_t *
demographics_json(const Hie__V1__Demographics *d)
{
    if (d == NULL) {
        return json_null();
    }
    return json_pack("{s:o, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "given",
        jstr_array(d->given, d->n_given), "family", jstr_array(d->family, d->n_family),
        "birth_date", jstr(d->birth_date), "sex", sex_name(d->sex), "address",
        jstr_array(d->address_lines, d->n_address_lines), "city", jstr(d->city), "postcode",
        jstr(d->postcode), "phone", jstr(d->phone), "email", jstr(d->email), "national_id",
        jstr(d->national_id));
}

static int
error_json(const Hie__V1__Error *err)
{
    return json_emit(json_pack("{s:{s:s, s:o, s:o}}", "error", "code",
        hie_proto_error_code_name(err->code), "message", jstr(err->message), "field",
        jstr(err->field)));
}

/* ---- text -------------------------------------------------------------------------------- */

/* A value on the terminal: control characters become '?'; "-" when empty. */
static void
text_value(const char *s)
{
    hie_cli__fputs_safe(stdout, s[0] != '\0' ? s : "-");
}

/* The first cap - 1 bytes of s for a table cell: control characters and spaces (which
 * would shift the columns) become '?' and '_'. */
static void
cell_safe(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    while (s != NULL && *s != '\0' && n + 1 < cap) {
        bool bad = false;
        size_t u = hie_text_char(s, &bad);
        if (bad || *s == ' ') {
            out[n++] = bad ? '?' : '_';
        } else if (n + u < cap) {
            memcpy(out + n, s, u);
            n += u;
        } else {
            break; /* no half characters */
        }
        s += u;
    }
    out[n] = '\0';
}

static void
explanation_print(const Hie__V1__MatchExplanation *x, const char *indent)
{
    printf("%scandidate=", indent);
    text_value(x->candidate_euid);
    printf(" probability=%.4f weight=%.2f model=%" PRIu64 " rule=\"", x->probability, x->weight,
        x->model_version);
    hie_cli__fputs_safe(stdout, x->rule);
    printf("\"\n");
    if (x->n_fields > 0) {
        printf("%s  %-14s %-14s %8s\n", indent, "field", "level", "weight");
    }
    for (size_t i = 0; i < x->n_fields; i++) {
        char field[15], level[15]; /* node text: no control characters reach the terminal */
        cell_safe(field, sizeof(field), x->fields[i]->field);
        cell_safe(level, sizeof(level), x->fields[i]->level);
        printf("%s  %-14s %-14s %+8.2f\n", indent, field, level, x->fields[i]->weight);
    }
}

static void
ids_print(Hie__V1__PatientId *const *ids, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        fputs(i > 0 ? " " : "", stdout);
        text_value(ids[i]->org_id);
        fputc(':', stdout);
        text_value(ids[i]->mrn);
    }
    if (count == 0) {
        fputs("-", stdout);
    }
}

/* ---- requests ---------------------------------------------------------------------------- */

static const char *const outcome_names[] = {"unspecified", "new", "linked", "review", "updated",
    "merged", "unlinked"};

static const char *
outcome_name(Hie__V1__FeedOutcome o)
{
    return (unsigned)o < HIE_ARRAY_LEN(outcome_names) ? outcome_names[o] : "unknown";
}

/* The purpose to send: --purpose / HIE_PURPOSE, else fallback, else a usage error. */
static int
mpi_purpose(struct cli *cli, const char *what, Hie__V1__PurposeOfUse fallback)
{
    if (cli->purpose_set && cli->purpose != HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED) {
        return CLI_CONTINUE;
    }
    if (fallback == HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED) {
        return hie_cli__usage_error("%s needs a purpose of use: --purpose treatment (or "
                                    "emergency, payment, operations, ...)", what);
    }
    cli->purpose = fallback;
    return CLI_CONTINUE;
}

/* Fills a->org from WhoAmI when --org was not given. Returns an exit code. */
static int
mpi_org_default(struct cli *cli, struct mpi_args *a)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    Hie__V1__WhoAmIRequest body = HIE__V1__WHO_AM_IREQUEST__INIT;
    hie_envelope_t req;
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    if (a->org != NULL) {
        return CLI_EXIT_OK;
    }
    int ex = hie_cli__request_init(cli, &req, HIE_CLI_ID_RANDOM, id, sizeof(id));
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED; /* allowed for WhoAmI */
    req.body_case = HIE__V1__ENVELOPE__BODY_WHOAMI;
    req.whoami = &body;
    ex = hie_cli__arena_create(cli, &arena);
    if (ex == CLI_EXIT_OK) {
        ex = hie_cli__call(cli, "whoami (for the default --org)", &req,
            HIE__V1__ENVELOPE__BODY_WHOAMI_REPLY, arena, &reply);
    }
    if (ex == CLI_EXIT_OK) {
        snprintf(a->org_buf, sizeof(a->org_buf), "%s", reply->whoami_reply->org_id);
        a->org = a->org_buf;
    }
    hie_arena_destroy(&arena);
    return ex;
}

static int
sex_parse(const char *s, Hie__V1__Sex *out)
{
    *out = HIE__V1__SEX__SEX_UNSPECIFIED;
    if (s == NULL) {
        return CLI_CONTINUE;
    }
    for (size_t i = 1; i < HIE_ARRAY_LEN(sex_names); i++) {
        if (strcasecmp(s, sex_names[i]) == 0 || (s[0] == sex_names[i][0] && s[1] == '\0')) {
            *out = (Hie__V1__Sex)i;
            return CLI_CONTINUE;
        }
    }
    return hie_cli__usage_error("--sex must be female, male, other or unknown");
}

static const char *
or_empty(const char *s)
{
    return s != NULL ? s : "";
}

static int
demographics_fill(const struct mpi_args *a, Hie__V1__Demographics *d)
{
    hie__v1__demographics__init(d);
    d->n_given = a->given.count;
    d->given = (char **)(uintptr_t)a->given.vals;
    d->n_family = a->family.count;
    d->family = (char **)(uintptr_t)a->family.vals;
    d->n_address_lines = a->address.count;
    d->address_lines = (char **)(uintptr_t)a->address.vals;
    d->birth_date = (char *)(uintptr_t)or_empty(a->dob);
    d->city = (char *)(uintptr_t)or_empty(a->city);
    d->postcode = (char *)(uintptr_t)or_empty(a->postcode);
    d->phone = (char *)(uintptr_t)or_empty(a->phone);
    d->email = (char *)(uintptr_t)or_empty(a->email);
    d->national_id = (char *)(uintptr_t)or_empty(a->national_id);
    return sex_parse(a->sex, &d->sex);
}

/* Sends req (header filled here) and handles the reply kinds; with --json an Error reply is
 * also printed as an object. Returns an exit code; *reply as hie_cli__call(). */
static int
mpi_call(struct cli *cli, const char *what, hie_envelope_t *req, char *id, size_t id_bytes,
    Hie__V1__Envelope__BodyCase expect, hie_arena_t **arena, hie_envelope_t **reply)
{
    Hie__V1__PurposeOfUse purpose = cli->purpose;
    Hie__V1__Envelope__BodyCase body_case = req->body_case;
    void *body = req->ping; /* every body of the oneof shares this storage */
    int ex = hie_cli__request_init(cli, req, 0, id, id_bytes);
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    req->purpose = purpose;
    req->body_case = body_case;
    req->ping = body;
    ex = hie_cli__arena_create(cli, arena);
    if (ex != CLI_EXIT_OK) {
        return ex;
    }
    ex = hie_cli__call(cli, what, req, expect, *arena, reply);
    if (ex == CLI_EXIT_REPLY && cli->json && *reply != NULL &&
        (*reply)->body_case == HIE__V1__ENVELOPE__BODY_ERROR) {
        (void)error_json((*reply)->error);
    }
    return ex;
}

/* ---- feed -------------------------------------------------------------------------------- */

static int
feed_action_parse(const struct mpi_args *a, Hie__V1__FeedAction *out)
{
    static const char *const names[] = {"", "create", "update", "merge", "unlink"};
    if (a->words_count != 1) {
        return hie_cli__usage_error("feed needs one action: create, update, merge or unlink");
    }
    for (size_t i = 1; i < HIE_ARRAY_LEN(names); i++) {
        if (strcmp(a->words[0], names[i]) == 0) {
            *out = (Hie__V1__FeedAction)i;
            if (a->mrn == NULL) {
                return hie_cli__usage_error("feed %s needs --mrn", names[i]);
            }
            if ((*out == HIE__V1__FEED_ACTION__FEED_MERGE) != (a->prior_mrn != NULL)) {
                return hie_cli__usage_error("--prior-mrn goes with feed merge, and only there");
            }
            return CLI_CONTINUE;
        }
    }
    return hie_cli__usage_error("unknown feed action '%s'", a->words[0]);
}

static void
feed_print(const struct cli *cli, const Hie__V1__MpiFeedReply *r)
{
    if (cli->json) {
        (void)json_emit(json_pack("{s:o, s:s, s:I, s:o}", "euid", jstr(r->euid), "outcome",
            outcome_name(r->outcome), "review_id", (json_int_t)r->review_id, "explanation",
            explanation_json(r->explanation)));
        return;
    }
    fputs("euid=", stdout);
    text_value(r->euid);
    printf(" outcome=%s", outcome_name(r->outcome));
    if (r->review_id != 0) {
        printf(" review_id=%" PRIu64, r->review_id);
    }
    fputc('\n', stdout);
    if (r->explanation != NULL) {
        explanation_print(r->explanation, "");
    }
}

int
hie_cli__cmd_feed(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct mpi_args a;
    Hie__V1__MpiFeedRequest feed = HIE__V1__MPI_FEED_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__Demographics demo;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    hie_envelope_t *reply = NULL;
    hie_arena_t *arena = NULL;
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    int ex = mpi_parse(cli, cmd, argc, argv, MPI_FEED_OPTS, &a);
    if (ex == CLI_CONTINUE) {
        ex = feed_action_parse(&a, &feed.action);
    }
    if (ex == CLI_CONTINUE) {
        ex = demographics_fill(&a, &demo);
    }
    if (ex == CLI_CONTINUE) {
        ex = mpi_purpose(cli, "feed", HIE__V1__PURPOSE_OF_USE__PURPOSE_OPERATIONS);
    }
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    ex = mpi_org_default(cli, &a);
    if (ex != CLI_EXIT_OK) {
        return ex;
    }
    pid.org_id = (char *)(uintptr_t)a.org;
    pid.mrn = (char *)(uintptr_t)a.mrn;
    feed.patient = &pid;
    bool with_demo = feed.action == HIE__V1__FEED_ACTION__FEED_CREATE ||
                     feed.action == HIE__V1__FEED_ACTION__FEED_UPDATE;
    feed.demographics = with_demo ? &demo : NULL;
    feed.prior_mrn = (char *)(uintptr_t)or_empty(a.prior_mrn);
    req.body_case = HIE__V1__ENVELOPE__BODY_MPI_FEED;
    req.mpi_feed = &feed;
    ex = mpi_call(cli, "feed", &req, id, sizeof(id), HIE__V1__ENVELOPE__BODY_MPI_FEED_REPLY,
        &arena, &reply);
    if (ex == CLI_EXIT_OK) {
        feed_print(cli, reply->mpi_feed_reply);
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* ---- pix --------------------------------------------------------------------------------- */

static void
pix_print(const struct cli *cli, const Hie__V1__PixReply *r)
{
    if (cli->json) {
        (void)json_emit(json_pack("{s:o, s:o}", "euid", jstr(r->euid), "ids",
            ids_json(r->ids, r->n_ids)));
        return;
    }
    fputs("euid=", stdout);
    text_value(r->euid);
    fputc('\n', stdout);
    for (size_t i = 0; i < r->n_ids; i++) {
        fputs("org=", stdout);
        text_value(r->ids[i]->org_id);
        fputs(" mrn=", stdout);
        text_value(r->ids[i]->mrn);
        fputc('\n', stdout);
    }
    if (r->n_ids == 0) {
        fputs("(no other identifiers)\n", stdout);
    }
}

int
hie_cli__cmd_pix(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct mpi_args a;
    Hie__V1__PixQuery q = HIE__V1__PIX_QUERY__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    hie_envelope_t *reply = NULL;
    hie_arena_t *arena = NULL;
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    int ex = mpi_parse(cli, cmd, argc, argv, MPI_PIX_OPTS, &a);
    if (ex == CLI_CONTINUE && (a.words_count != 0 || a.mrn == NULL)) {
        ex = hie_cli__usage_error("pix takes --mrn MRN and options only");
    }
    if (ex == CLI_CONTINUE) {
        ex = mpi_purpose(cli, "pix", HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED);
    }
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    ex = mpi_org_default(cli, &a);
    if (ex != CLI_EXIT_OK) {
        return ex;
    }
    pid.org_id = (char *)(uintptr_t)a.org;
    pid.mrn = (char *)(uintptr_t)a.mrn;
    q.patient = &pid;
    q.n_target_orgs = a.targets.count;
    q.target_orgs = a.targets.vals;
    req.body_case = HIE__V1__ENVELOPE__BODY_PIX_QUERY;
    req.pix_query = &q;
    ex = mpi_call(cli, "pix", &req, id, sizeof(id), HIE__V1__ENVELOPE__BODY_PIX_REPLY, &arena,
        &reply);
    if (ex == CLI_EXIT_OK) {
        pix_print(cli, reply->pix_reply);
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* ---- pdq --------------------------------------------------------------------------------- */

static json_t *
pdq_json(const Hie__V1__PdqReply *r)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < r->n_candidates; i++) {
        const Hie__V1__PdqCandidate *c = r->candidates[i];
        json_array_append_new(arr, json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "rank",
            (json_int_t)(i + 1), "euid", jstr(c->euid), "probability", jnum(c->probability),
            "weight", jnum(c->weight), "ids", ids_json(c->ids, c->n_ids), "demographics",
            demographics_json(c->demographics), "explanation",
            explanation_json(c->explanation)));
    }
    return json_pack("{s:o, s:b}", "candidates", arr, "no_match", r->no_match);
}

static void
pdq_candidate_print(size_t rank, const Hie__V1__PdqCandidate *c)
{
    const Hie__V1__Demographics *d = c->demographics;
    printf("%-4zu %-11.4f %+8.2f  ", rank, c->probability, c->weight);
    text_value(c->euid);
    fputs("  ", stdout);
    if (d != NULL) {
        text_value(d->n_family > 0 ? d->family[0] : "");
        fputs(", ", stdout);
        text_value(d->n_given > 0 ? d->given[0] : "");
        fputs("  ", stdout);
        text_value(d->birth_date);
        printf("  %s  ", sex_name(d->sex)[0] != '\0' ? sex_name(d->sex) : "-");
    }
    ids_print(c->ids, c->n_ids);
    fputc('\n', stdout);
}

static void
pdq_print(const struct cli *cli, const Hie__V1__PdqReply *r)
{
    if (cli->json) {
        (void)json_emit(pdq_json(r));
        return;
    }
    if (r->n_candidates == 0) {
        fputs("no match\n", stdout);
        return;
    }
    printf("%-4s %-11s %8s  %s\n", "rank", "probability", "weight",
        "euid  family, given  birth_date  sex  ids");
    for (size_t i = 0; i < r->n_candidates; i++) {
        pdq_candidate_print(i + 1, r->candidates[i]);
    }
}

int
hie_cli__cmd_pdq(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct mpi_args a;
    Hie__V1__PdqQuery q = HIE__V1__PDQ_QUERY__INIT;
    Hie__V1__Demographics demo;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    hie_envelope_t *reply = NULL;
    hie_arena_t *arena = NULL;
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    int ex = mpi_parse(cli, cmd, argc, argv, MPI_PDQ_OPTS, &a);
    if (ex == CLI_CONTINUE && a.words_count != 0) {
        ex = hie_cli__usage_error("pdq takes options only");
    }
    if (ex == CLI_CONTINUE && a.limit > MPI_PDQ_LIMIT_MAX) {
        ex = hie_cli__usage_error("--limit must be 1..%u", MPI_PDQ_LIMIT_MAX);
    }
    if (ex == CLI_CONTINUE && a.given.count == 0 && a.family.count == 0 && a.dob == NULL) {
        ex = hie_cli__usage_error("pdq needs at least --given, --family or --dob");
    }
    if (ex == CLI_CONTINUE) {
        ex = demographics_fill(&a, &demo);
    }
    if (ex == CLI_CONTINUE) {
        ex = mpi_purpose(cli, "pdq", HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED);
    }
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    q.demographics = &demo;
    q.limit = a.limit;
    q.min_probability = a.min_probability;
    req.body_case = HIE__V1__ENVELOPE__BODY_PDQ_QUERY;
    req.pdq_query = &q;
    ex = mpi_call(cli, "pdq", &req, id, sizeof(id), HIE__V1__ENVELOPE__BODY_PDQ_REPLY, &arena,
        &reply);
    if (ex == CLI_EXIT_OK) {
        pdq_print(cli, reply->pdq_reply);
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* ---- review ------------------------------------------------------------------------------ */

static const char *
review_status_name(Hie__V1__ReviewStatus st)
{
    static const char *const names[] = {"unspecified", "open", "linked", "kept-apart"};
    return (unsigned)st < HIE_ARRAY_LEN(names) ? names[st] : "unknown";
}

static json_t *
review_item_json(const Hie__V1__ReviewItem *it)
{
    return json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:I, s:I, s:o}", "id",
        (json_int_t)it->id, "status", review_status_name(it->status), "record",
        id_json(it->record), "record_euid",
        jstr(it->record_euid), "candidate_euid", jstr(it->candidate_euid), "explanation",
        explanation_json(it->explanation), "created_ms", (json_int_t)it->created_ms,
        "decided_ms", (json_int_t)it->decided_ms, "decided_by", jstr(it->decided_by));
}

static void
review_item_print(const Hie__V1__ReviewItem *it)
{
    printf("review=%" PRIu64 " status=%s record=", it->id, review_status_name(it->status));
    if (it->record != NULL) {
        ids_print(&it->record, 1);
    }
    fputs(" record_euid=", stdout);
    text_value(it->record_euid);
    fputs(" candidate_euid=", stdout);
    text_value(it->candidate_euid);
    if (it->decided_by[0] != '\0') {
        fputs(" decided_by=", stdout);
        text_value(it->decided_by);
    }
    fputc('\n', stdout);
    if (it->explanation != NULL) {
        explanation_print(it->explanation, "    ");
    }
}

/* Fills the review request from the words: list | link ID | apart ID. */
static int
review_request(const struct mpi_args *a, hie_envelope_t *req, Hie__V1__ReviewListRequest *list,
    Hie__V1__ReviewDecideRequest *dec)
{
    if (a->words_count == 1 && strcmp(a->words[0], "list") == 0) {
        if (a->limit > MPI_REVIEW_LIMIT_MAX) {
            return hie_cli__usage_error("--limit must be 1..%u", MPI_REVIEW_LIMIT_MAX);
        }
        list->after_id = a->after;
        list->limit = a->limit;
        list->include_closed = a->all;
        req->body_case = HIE__V1__ENVELOPE__BODY_REVIEW_LIST;
        req->review_list = list;
        return CLI_CONTINUE;
    }
    bool link = a->words_count == 2 && strcmp(a->words[0], "link") == 0;
    bool apart = a->words_count == 2 && strcmp(a->words[0], "apart") == 0;
    if (!link && !apart) {
        return hie_cli__usage_error("review takes list, link ID or apart ID");
    }
    if (a->limit != 0 || a->after != 0 || a->all) {
        return hie_cli__usage_error("--limit, --after and --all go with review list");
    }
    uint64_t item = 0;
    int ex = mpi_number(a->words[1], UINT64_MAX, &item, 'A');
    if (ex != CLI_CONTINUE || item == 0) {
        return ex != CLI_CONTINUE ? ex : hie_cli__usage_error("review ids start at 1");
    }
    dec->id = item;
    dec->link = link;
    req->body_case = HIE__V1__ENVELOPE__BODY_REVIEW_DECIDE;
    req->review_decide = dec;
    return CLI_CONTINUE;
}

static void
review_print(const struct cli *cli, const hie_envelope_t *reply)
{
    if (reply->body_case == HIE__V1__ENVELOPE__BODY_REVIEW_DECIDE_REPLY) {
        const Hie__V1__ReviewDecideReply *r = reply->review_decide_reply;
        if (cli->json) {
            (void)json_emit(json_pack("{s:o, s:o}", "euid", jstr(r->euid), "item",
                r->item != NULL ? review_item_json(r->item) : json_null()));
            return;
        }
        if (r->item != NULL) {
            review_item_print(r->item);
        }
        fputs("euid=", stdout);
        text_value(r->euid);
        fputc('\n', stdout);
        return;
    }
    const Hie__V1__ReviewListReply *r = reply->review_list_reply;
    if (cli->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < r->n_items; i++) {
            json_array_append_new(arr, review_item_json(r->items[i]));
        }
        (void)json_emit(json_pack("{s:o, s:I}", "items", arr, "next_after_id",
            (json_int_t)r->next_after_id));
        return;
    }
    for (size_t i = 0; i < r->n_items; i++) {
        review_item_print(r->items[i]);
    }
    if (r->n_items == 0 && r->next_after_id == 0) {
        fputs("no review items\n", stdout);
    }
    if (r->next_after_id != 0) {
        printf("more: --after %" PRIu64 "\n", r->next_after_id);
    }
}

int
hie_cli__cmd_review(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct mpi_args a;
    Hie__V1__ReviewListRequest list = HIE__V1__REVIEW_LIST_REQUEST__INIT;
    Hie__V1__ReviewDecideRequest dec = HIE__V1__REVIEW_DECIDE_REQUEST__INIT;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    hie_envelope_t *reply = NULL;
    hie_arena_t *arena = NULL;
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    int ex = mpi_parse(cli, cmd, argc, argv, MPI_REVIEW_OPTS, &a);
    if (ex == CLI_CONTINUE) {
        ex = review_request(&a, &req, &list, &dec);
    }
    if (ex == CLI_CONTINUE) {
        ex = mpi_purpose(cli, "review", HIE__V1__PURPOSE_OF_USE__PURPOSE_OPERATIONS);
    }
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    bool listing = req.body_case == HIE__V1__ENVELOPE__BODY_REVIEW_LIST;
    ex = mpi_call(cli, listing ? "review list" : "review decide", &req, id, sizeof(id),
        listing ? HIE__V1__ENVELOPE__BODY_REVIEW_LIST_REPLY
                : HIE__V1__ENVELOPE__BODY_REVIEW_DECIDE_REPLY,
        &arena, &reply);
    if (ex == CLI_EXIT_OK) {
        review_print(cli, reply);
    }
    hie_arena_destroy(&arena);
    return ex;
}
