/*
 * cli_adt.c - `hie adt`, `hie subscribe`, `hie roster`, `hie unsubscribe` and `hie replay`
 * (issue 5), and the decoding of the notifications `hie receive` (alias `hie notifications`)
 * prints.
 *
 * adt: a hospital's ADT event about one of its own patients (this certificate's organization
 * and --mrn); the visit (--visit) is required for every event but A08 and A40, demographics go
 * with A01, A04 and A08 (required for A08), --prior-mrn with A40 only. Purpose 'treatment'
 * unless --purpose says otherwise; the event time defaults to now. Prints the EUID and how many
 * subscriptions were notified.
 *
 * Subscriptions: subscribe prints the new subscription's id; roster sends its additions (from
 * --add and --add-file) in parts of at most HIE_SUBSCRIPTION_ROSTER_BATCH_MAX, the removals
 * with the first part, and prints the roster size after the last; with an explicit --id each
 * part gets "<id>-<part>" when there are several, so running the same command again after a
 * failure applies nothing twice. replay queues retained notifications again.
 *
 * Notifications: a delivery whose content type is CLI_NOTIFICATION_CONTENT_TYPE carries a
 * Notification; cli_push.c's receive loop hands it to hie_cli__notification_print(), which
 * decodes it (through proto/, in a scratch arena) and prints one line or JSON object. One that
 * does not decode is left to the caller to print as a document, after a line on stderr.
 *
 * Patient data: MRNs and demographics come from the command line and are printed only as
 * the result asked for; error lines name options, line numbers and fields, never values.
 * Callers: the command table in hie_cli.c, and cli_push.c (notifications).
 */
#include "cli_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Values of --given, --family and --address (as `hie feed`). */
#define ADT_VALUES_MAX 8u
/* The node's limits (node/src/adt.c): encounter texts, filters per subscription. */
#define ADT_TEXT_BYTES_MAX 128u
#define ADT_FILTERS_MAX 16u
#define ADT_MRN_BYTES_MAX 64u
/* A roster file: 100,000 MRNs of at most 64 bytes, a line each, with room for CRLF. */
#define ROSTER_FILE_BYTES_MAX (8u * 1024u * 1024u)
#define ROSTER_BATCH HIE_SUBSCRIPTION_ROSTER_BATCH_MAX
_Static_assert((size_t)HIE_SUBSCRIPTION_ROSTER_MAX * (ADT_MRN_BYTES_MAX + 2u) <=
    ROSTER_FILE_BYTES_MAX, "a full roster fits the file limit");

/* ---- names ------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    Hie__V1__AdtEvent event;
} adt_events[] = {{"A01", HIE__V1__ADT_EVENT__ADT_A01}, {"A02", HIE__V1__ADT_EVENT__ADT_A02},
    {"A03", HIE__V1__ADT_EVENT__ADT_A03}, {"A04", HIE__V1__ADT_EVENT__ADT_A04},
    {"A08", HIE__V1__ADT_EVENT__ADT_A08}, {"A11", HIE__V1__ADT_EVENT__ADT_A11},
    {"A13", HIE__V1__ADT_EVENT__ADT_A13}, {"A40", HIE__V1__ADT_EVENT__ADT_A40}};

/* Indexed by Hie__V1__PatientClass. */
static const char *const class_names[] = {"", "inpatient", "outpatient", "emergency",
    "observation"};

static const char *const sex_names[] = {"", "female", "male", "other", "unknown"};

static int
event_parse(const char *s, Hie__V1__AdtEvent *out)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(adt_events); i++) {
        if (strcasecmp(s, adt_events[i].name) == 0) {
            *out = adt_events[i].event;
            return 0;
        }
    }
    return HIE_EINVAL;
}

static const char *
event_name(Hie__V1__AdtEvent ev)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(adt_events); i++) {
        if (adt_events[i].event == ev) {
            return adt_events[i].name;
        }
    }
    return "unknown";
}

static int
class_parse(const char *s, Hie__V1__PatientClass *out)
{
    for (size_t i = 1; i < HIE_ARRAY_LEN(class_names); i++) {
        if (strcasecmp(s, class_names[i]) == 0) {
            *out = (Hie__V1__PatientClass)i;
            return 0;
        }
    }
    return HIE_EINVAL;
}

static const char *
class_name(Hie__V1__PatientClass c)
{
    return (unsigned)c < HIE_ARRAY_LEN(class_names) ? class_names[c] : "unknown";
}

/* The node's rule (hie_mpi_mrn_valid): 1..64 printable ASCII bytes, no spaces. */
static bool
mrn_valid(const char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            return false;
        }
    }
    return len > 0 && len <= ADT_MRN_BYTES_MAX;
}

/* " key=value" on stdout: bare when a plain token, else a JSON string. */
static void
kv(const char *key, const char *s)
{
    printf(" %s=", key);
    hie_cli__kv_value(stdout, s);
}

static json_t *
time_json(int64_t ms)
{
    char t[CLI_TIME_TEXT_BYTES];
    return ms > 0 ? json_string(hie_cli__time_format(ms, t, sizeof(t))) : json_null();
}

/* ---- adt: options ------------------------------------------------------------------------ */

struct adt_args {
    const char *mrn, *visit, *klass, *facility, *location, *attending, *prior_mrn;
    const char *admit, *discharge, *time;
    const char *dob, *sex, *city, *postcode, *phone, *email, *national_id;
    char *given[ADT_VALUES_MAX], *family[ADT_VALUES_MAX], *address[ADT_VALUES_MAX];
    size_t given_count, family_count, address_count;
    bool demographics;          /* any demographics option was given */
    bool encounter;             /* any encounter option was given */
    Hie__V1__AdtEvent event;
    Hie__V1__PatientClass patient_class;
    Hie__V1__Sex sex_value;
    int64_t admit_ms, discharge_ms, event_ms;
};

static const struct option adt_options[] = {{"mrn", required_argument, NULL, 'm'},
    {"visit", required_argument, NULL, 'v'}, {"class", required_argument, NULL, 'C'},
    {"facility", required_argument, NULL, 'F'}, {"location", required_argument, NULL, 'L'},
    {"attending", required_argument, NULL, 'A'}, {"admit", required_argument, NULL, 'I'},
    {"discharge", required_argument, NULL, 'D'}, {"time", required_argument, NULL, 'T'},
    {"prior-mrn", required_argument, NULL, 'r'}, {"given", required_argument, NULL, 'g'},
    {"family", required_argument, NULL, 'f'}, {"dob", required_argument, NULL, 'd'},
    {"birth-date", required_argument, NULL, 'd'}, {"sex", required_argument, NULL, 's'},
    {"address", required_argument, NULL, 'a'}, {"city", required_argument, NULL, 'c'},
    {"postcode", required_argument, NULL, 'p'}, {"phone", required_argument, NULL, 'P'},
    {"email", required_argument, NULL, 'e'}, {"national-id", required_argument, NULL, 'n'},
    {"follow", no_argument, NULL, 'w'}, {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

static int
adt_repeat(char **vals, size_t *count, char *val, const char *name)
{
    if (*count == ADT_VALUES_MAX) {
        return hie_cli__usage_error("--%s given more than %u times", name, ADT_VALUES_MAX);
    }
    vals[(*count)++] = val;
    return CLI_CONTINUE;
}

/* Applies one option with a value. Returns CLI_CONTINUE or an exit code. */
static int
adt_option(void *ctx, int opt, char *val)
{
    struct adt_args *a = ctx;
    a->demographics |= strchr("gfdsacpPen", opt) != NULL;
    a->encounter |= strchr("vCFLAID", opt) != NULL;
    switch (opt) {
    case 'm': a->mrn = val; break;
    case 'v': a->visit = val; break;
    case 'C': a->klass = val; break;
    case 'F': a->facility = val; break;
    case 'L': a->location = val; break;
    case 'A': a->attending = val; break;
    case 'I': a->admit = val; break;
    case 'D': a->discharge = val; break;
    case 'T': a->time = val; break;
    case 'r': a->prior_mrn = val; break;
    case 'g': return adt_repeat(a->given, &a->given_count, val, "given");
    case 'f': return adt_repeat(a->family, &a->family_count, val, "family");
    case 'a': return adt_repeat(a->address, &a->address_count, val, "address");
    case 'd': a->dob = val; break;
    case 's': a->sex = val; break;
    case 'c': a->city = val; break;
    case 'p': a->postcode = val; break;
    case 'P': a->phone = val; break;
    case 'e': a->email = val; break;
    case 'n': a->national_id = val; break;
    default: HIE_ASSERT(false); /* every option of adt_options has a case */
    }
    return CLI_CONTINUE;
}

static int
adt_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
    struct adt_args *a)
{
    memset(a, 0, sizeof(*a));
    int ex = hie_cli__options(cli, cmd, argc, argv, adt_options, NULL,
        "(see hie --help for the options)", adt_option, a);
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    if (argc - optind != 1) {
        return hie_cli__usage_error("adt needs one event: a01 a02 a03 a04 a08 a11 a13 a40");
    }
    if (event_parse(argv[optind], &a->event) != 0) {
        return hie_cli__usage_error("unknown ADT event (a01 a02 a03 a04 a08 a11 a13 a40)");
    }
    return CLI_CONTINUE;
}

/* A date option into *ms (unset: keeps *ms). Returns CLI_CONTINUE or CLI_EXIT_USAGE. */
static int
adt_time(const char *s, const char *name, int64_t *ms)
{
    if (s != NULL && hie_cli__time_parse(s, ms) != 0) {
        return hie_cli__usage_error("--%s is not a UTC date (YYYY-MM-DD) or date-time "
                                    "(YYYY-MM-DDThh:mm:ssZ)", name);
    }
    return CLI_CONTINUE;
}

/* The encounter options: class, texts within the node's limit, dates. */
static int
adt_check_encounter(struct adt_args *a)
{
    const char *texts[] = {a->facility, a->location, a->attending};
    static const char *const names[] = {"facility", "location", "attending"};
    if (a->klass != NULL && class_parse(a->klass, &a->patient_class) != 0) {
        return hie_cli__usage_error("--class must be inpatient, outpatient, emergency or "
                                    "observation");
    }
    for (size_t i = 0; i < HIE_ARRAY_LEN(texts); i++) {
        if (texts[i] != NULL && strlen(texts[i]) > ADT_TEXT_BYTES_MAX) {
            return hie_cli__usage_error("--%s is longer than %u bytes", names[i],
                ADT_TEXT_BYTES_MAX);
        }
    }
    if (a->visit != NULL && !hie_proto_id_valid(a->visit, strlen(a->visit))) {
        return hie_cli__usage_error("--visit must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    }
    a->event_ms = hie_time_wall_ms(); /* when it happened: now unless --time says */
    int ex = adt_time(a->admit, "admit", &a->admit_ms);
    ex = ex == CLI_CONTINUE ? adt_time(a->discharge, "discharge", &a->discharge_ms) : ex;
    return ex == CLI_CONTINUE ? adt_time(a->time, "time", &a->event_ms) : ex;
}

/* What the node would refuse, refused here first (no value is echoed). */
static int
adt_check(struct adt_args *a)
{
    Hie__V1__AdtEvent ev = a->event;
    bool with_demo = ev == HIE__V1__ADT_EVENT__ADT_A01 || ev == HIE__V1__ADT_EVENT__ADT_A04 ||
        ev == HIE__V1__ADT_EVENT__ADT_A08;
    bool visit_needed = ev != HIE__V1__ADT_EVENT__ADT_A08 && ev != HIE__V1__ADT_EVENT__ADT_A40;
    if (a->mrn == NULL || !mrn_valid(a->mrn)) {
        return hie_cli__usage_error("adt needs --mrn MRN (1-64 printable characters, no "
                                    "spaces)");
    }
    if (visit_needed && a->visit == NULL) {
        return hie_cli__usage_error("adt %s needs --visit V", event_name(ev));
    }
    if (a->demographics && !with_demo) {
        return hie_cli__usage_error("demographics options go with a01, a04 and a08 only");
    }
    if (ev == HIE__V1__ADT_EVENT__ADT_A08 && !a->demographics) {
        return hie_cli__usage_error("adt a08 needs demographics (--given, --family, --dob, "
                                    "...)");
    }
    if ((ev == HIE__V1__ADT_EVENT__ADT_A40) != (a->prior_mrn != NULL)) {
        return hie_cli__usage_error("--prior-mrn goes with adt a40, and only there");
    }
    if (a->prior_mrn != NULL && !mrn_valid(a->prior_mrn)) {
        return hie_cli__usage_error("--prior-mrn is not an MRN (1-64 printable characters)");
    }
    a->sex_value = HIE__V1__SEX__SEX_UNSPECIFIED;
    for (size_t i = 1; a->sex != NULL && i < HIE_ARRAY_LEN(sex_names); i++) {
        a->sex_value = strcasecmp(a->sex, sex_names[i]) == 0 ? (Hie__V1__Sex)i : a->sex_value;
    }
    if (a->sex != NULL && a->sex_value == HIE__V1__SEX__SEX_UNSPECIFIED) {
        return hie_cli__usage_error("--sex must be female, male, other or unknown");
    }
    return adt_check_encounter(a);
}

/* ---- adt: the request -------------------------------------------------------------------- */

static char *
or_empty(const char *s)
{
    return (char *)(uintptr_t)(s != NULL ? s : ""); /* protobuf-c's fields are not const */
}

static void
adt_demographics(struct adt_args *a, Hie__V1__Demographics *d)
{
    hie__v1__demographics__init(d);
    d->n_given = a->given_count;
    d->given = a->given;
    d->n_family = a->family_count;
    d->family = a->family;
    d->n_address_lines = a->address_count;
    d->address_lines = a->address;
    d->birth_date = or_empty(a->dob);
    d->sex = a->sex_value;
    d->city = or_empty(a->city);
    d->postcode = or_empty(a->postcode);
    d->phone = or_empty(a->phone);
    d->email = or_empty(a->email);
    d->national_id = or_empty(a->national_id);
}

static void
adt_encounter(const struct adt_args *a, Hie__V1__Encounter *en)
{
    hie__v1__encounter__init(en);
    en->visit_id = or_empty(a->visit);
    en->facility = or_empty(a->facility);
    en->patient_class = a->patient_class;
    en->admit_ms = a->admit_ms;
    en->discharge_ms = a->discharge_ms;
    en->location = or_empty(a->location);
    en->attending = or_empty(a->attending);
}

static void
adt_print(const struct cli *cli, const Hie__V1__AdtReply *r)
{
    if (cli->json) {
        (void)hie_cli__json_emit(json_pack("{s:o, s:I}", "euid", hie_cli__jstr(r->euid),
            "notified", (json_int_t)r->notified));
        return;
    }
    fputs("euid=", stdout);
    hie_cli__kv_value(stdout, r->euid);
    printf(" notified=%" PRIu32 "\n", r->notified);
}

static int
adt_send(struct cli *cli, struct adt_args *a, const char *org)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    Hie__V1__AdtRequest body = HIE__V1__ADT_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__Demographics demo;
    Hie__V1__Encounter en;
    HIE_ASSERT(a->mrn != NULL);
    pid.org_id = or_empty(org);
    pid.mrn = or_empty(a->mrn);
    adt_demographics(a, &demo);
    adt_encounter(a, &en);
    body.event = a->event;
    body.patient = &pid;
    body.demographics = a->demographics ? &demo : NULL;
    body.prior_mrn = or_empty(a->prior_mrn);
    body.encounter = a->encounter ? &en : NULL;
    body.event_ms = a->event_ms;
    req.body_case = HIE__V1__ENVELOPE__BODY_ADT;
    req.adt = &body;
    int ex = hie_cli__exchange(cli, "adt", &req, 0, HIE__V1__ENVELOPE__BODY_ADT_REPLY, &arena,
        &reply);
    if (ex == CLI_EXIT_OK) {
        adt_print(cli, reply->adt_reply);
    }
    hie_arena_destroy(&arena);
    return ex;
}

int
hie_cli__cmd_adt(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct adt_args a;
    char org[HIE_ORG_ID_BYTES_MAX + 1];
    int ex = adt_parse(cli, cmd, argc, argv, &a);
    ex = ex == CLI_CONTINUE ? adt_check(&a) : ex;
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    HIE_ASSERT(a.event != HIE__V1__ADT_EVENT__ADT_EVENT_UNSPECIFIED);
    hie_cli__purpose_default(cli, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT);
    ex = hie_cli__whoami_org(cli, org, sizeof(org)); /* the patient is one of ours */
    return ex == CLI_EXIT_OK ? adt_send(cli, &a, org) : ex;
}

/* ---- subscriptions: options -------------------------------------------------------------- */

struct sub_args {
    char *mrns[ROSTER_BATCH];   /* subscribe --mrn */
    size_t mrns_count;
    char *adds[ROSTER_BATCH];   /* roster --add */
    size_t adds_count;
    char *removes[ROSTER_BATCH];
    size_t removes_count;
    const char *add_file;
    bool all;
    Hie__V1__AdtEvent events[ADT_FILTERS_MAX];
    size_t events_count;
    Hie__V1__PatientClass classes[ADT_FILTERS_MAX];
    size_t classes_count;
    uint64_t from;
    int64_t since_ms;
    bool follow;                /* subscribe --follow: then receive until SIGINT */
    const char *sub_id;         /* the one word of roster, unsubscribe and replay */
};

static const struct option sub_options[] = {{"mrn", required_argument, NULL, 'm'},
    {"all-my-patients", no_argument, NULL, 'A'}, {"event", required_argument, NULL, 'e'},
    {"class", required_argument, NULL, 'C'}, {"add", required_argument, NULL, 'a'},
    {"remove", required_argument, NULL, 'r'}, {"add-file", required_argument, NULL, 'f'},
    {"from", required_argument, NULL, 'F'}, {"since", required_argument, NULL, 'S'},
    {"follow", no_argument, NULL, 'w'}, {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

static const char *
sub_option_name(int opt)
{
    return hie_cli__option_name(sub_options, opt);
}

/* An MRN for a list of at most ROSTER_BATCH. */
static int
sub_mrn_add(char **list, size_t *count, char *val, int opt)
{
    if (!mrn_valid(val)) {
        return hie_cli__usage_error("--%s is not an MRN (1-64 printable characters, no spaces)",
            sub_option_name(opt));
    }
    if (*count == ROSTER_BATCH) {
        return hie_cli__usage_error("at most %u --%s (use hie roster --add-file for more)",
            ROSTER_BATCH, sub_option_name(opt));
    }
    list[(*count)++] = val;
    return CLI_CONTINUE;
}

static int
sub_filter_add(struct sub_args *a, int opt, const char *val)
{
    if ((opt == 'e' ? a->events_count : a->classes_count) == ADT_FILTERS_MAX) {
        return hie_cli__usage_error("at most %u --%s", ADT_FILTERS_MAX, sub_option_name(opt));
    }
    if (opt == 'e' && event_parse(val, &a->events[a->events_count]) != 0) {
        return hie_cli__usage_error("unknown --event (a01 a02 a03 a04 a08 a11 a13 a40)");
    }
    if (opt == 'C' && class_parse(val, &a->classes[a->classes_count]) != 0) {
        return hie_cli__usage_error("unknown --class (inpatient, outpatient, emergency, "
                                    "observation)");
    }
    a->events_count += opt == 'e' ? 1u : 0u;
    a->classes_count += opt == 'C' ? 1u : 0u;
    return CLI_CONTINUE;
}

/* Applies one option with a value. Returns CLI_CONTINUE or an exit code. */
static int
sub_option(void *ctx, int opt, char *val)
{
    struct sub_args *a = ctx;
    switch (opt) {
    case 'm': return sub_mrn_add(a->mrns, &a->mrns_count, val, opt);
    case 'a': return sub_mrn_add(a->adds, &a->adds_count, val, opt);
    case 'r': return sub_mrn_add(a->removes, &a->removes_count, val, opt);
    case 'A': a->all = true; return CLI_CONTINUE;
    case 'w': a->follow = true; return CLI_CONTINUE;
    case 'e':
    case 'C': return sub_filter_add(a, opt, val);
    case 'f': a->add_file = val; return CLI_CONTINUE;
    case 'S':
        if (hie_cli__time_parse(val, &a->since_ms) != 0 || a->since_ms <= 0) {
            return hie_cli__usage_error("--since is not a UTC date (YYYY-MM-DD) or date-time "
                                        "(YYYY-MM-DDThh:mm:ssZ)");
        }
        return CLI_CONTINUE;
    case 'F': {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(val, &end, 10);
        if (val[0] < '0' || val[0] > '9' || *end != '\0' || errno != 0 || v == 0) {
            return hie_cli__usage_error("--from must be an event number (1, 2, ...)");
        }
        a->from = (uint64_t)v;
        return CLI_CONTINUE;
    }
    default: HIE_ASSERT(false); /* every option of sub_options has a case */
    }
    return CLI_EXIT_USAGE;
}

/* Parses a subscription command's options (allowed: the short letters it takes) and its
 * words: none for subscribe, SUB_ID for the others. */
static int
sub_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
    const char *allowed, struct sub_args *a)
{
    memset(a, 0, sizeof(*a));
    int ex = hie_cli__options(cli, cmd, argc, argv, sub_options, allowed, NULL, sub_option, a);
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    bool subscribe = strcmp(cmd->name, "subscribe") == 0;
    if (argc - optind != (subscribe ? 0 : 1)) {
        return subscribe ? hie_cli__usage_error("subscribe takes options only")
                         : hie_cli__usage_error("%s needs one subscription id", cmd->name);
    }
    a->sub_id = subscribe ? NULL : argv[optind];
    if (a->sub_id != NULL && !hie_proto_id_valid(a->sub_id, strlen(a->sub_id))) {
        return hie_cli__usage_error("not a subscription id (as hie subscribe printed it)");
    }
    return CLI_CONTINUE;
}

/* ---- subscribe, unsubscribe, replay ------------------------------------------------------ */

/* subscribe --follow: like tail -f, the notifications as they come (hie notifications
 * --follow: each acknowledged once printed; what was not acknowledged comes again next time,
 * so a later run resumes where this one stopped). */
static int
subscribe_follow(struct cli *cli)
{
    static const struct cli_cmd follow = {"notifications", "--follow", "", hie_cli__cmd_receive};
    char *argv[] = {(char *)(uintptr_t)"notifications", (char *)(uintptr_t)"--follow", NULL};
    return hie_cli__cmd_receive(cli, &follow, 2, argv);
}

int
hie_cli__cmd_subscribe(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    Hie__V1__SubscribeRequest body = HIE__V1__SUBSCRIBE_REQUEST__INIT;
    struct sub_args *a = calloc(1, sizeof(*a)); /* large: the roster lists */
    if (a == NULL) {
        fputs("hie: out of memory\n", stderr);
        return CLI_EXIT_CONN;
    }
    int ex = sub_parse(cli, cmd, argc, argv, "mAeCw", a);
    if (ex == CLI_CONTINUE && a->all && a->mrns_count > 0) {
        ex = hie_cli__usage_error("--all-my-patients takes no --mrn (it follows them all)");
    }
    if (ex != CLI_CONTINUE) {
        goto out;
    }
    body.scope = a->all ? HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_ALL_MY_PATIENTS
                        : HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS;
    body.n_mrns = a->mrns_count;
    body.mrns = a->mrns;
    body.n_events = a->events_count;
    body.events = a->events;
    body.n_classes = a->classes_count;
    body.classes = a->classes;
    req.body_case = HIE__V1__ENVELOPE__BODY_SUBSCRIBE;
    req.subscribe = &body;
    ex = hie_cli__exchange(cli, "subscribe", &req, 0, HIE__V1__ENVELOPE__BODY_SUBSCRIBE_REPLY,
        &arena, &reply);
    if (ex == CLI_EXIT_OK && cli->json) {
        ex = hie_cli__json_emit(json_pack("{s:o}", "subscription_id",
            hie_cli__jstr(reply->subscribe_reply->subscription_id)));
    } else if (ex == CLI_EXIT_OK) {
        fputs("subscription_id=", stdout);
        hie_cli__kv_value(stdout, reply->subscribe_reply->subscription_id);
        fputc('\n', stdout);
    }
    if (ex == CLI_EXIT_OK && a->follow) {
        fflush(stdout);
        ex = subscribe_follow(cli);
    }
out:
    hie_arena_destroy(&arena);
    free(a);
    return ex;
}

int
hie_cli__cmd_unsubscribe(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    Hie__V1__Unsubscribe body = HIE__V1__UNSUBSCRIBE__INIT;
    struct sub_args *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        fputs("hie: out of memory\n", stderr);
        return CLI_EXIT_CONN;
    }
    int ex = sub_parse(cli, cmd, argc, argv, "", a);
    if (ex == CLI_CONTINUE) {
        body.subscription_id = (char *)(uintptr_t)a->sub_id;
        req.body_case = HIE__V1__ENVELOPE__BODY_UNSUBSCRIBE;
        req.unsubscribe = &body;
        ex = hie_cli__exchange(cli, "unsubscribe", &req, 0,
            HIE__V1__ENVELOPE__BODY_UNSUBSCRIBE_REPLY, &arena, &reply);
    }
    if (ex == CLI_EXIT_OK && cli->json) {
        ex = hie_cli__json_emit(json_pack("{s:o, s:b}", "subscription_id",
            hie_cli__jstr(a->sub_id), "unsubscribed", 1));
    } else if (ex == CLI_EXIT_OK) {
        fputs("subscription_id=", stdout);
        hie_cli__kv_value(stdout, a->sub_id);
        fputs(" unsubscribed=yes\n", stdout);
    }
    hie_arena_destroy(&arena);
    free(a);
    return ex;
}

int
hie_cli__cmd_replay(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    Hie__V1__ReplayRequest body = HIE__V1__REPLAY_REQUEST__INIT;
    struct sub_args *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        fputs("hie: out of memory\n", stderr);
        return CLI_EXIT_CONN;
    }
    int ex = sub_parse(cli, cmd, argc, argv, "FS", a);
    if (ex == CLI_CONTINUE && (a->from == 0) == (a->since_ms == 0)) {
        ex = hie_cli__usage_error("replay needs --from N or --since DATE (one of them)");
    }
    if (ex == CLI_CONTINUE) {
        body.subscription_id = (char *)(uintptr_t)a->sub_id;
        body.from_event_number = a->from;
        body.from_ms = a->since_ms;
        req.body_case = HIE__V1__ENVELOPE__BODY_REPLAY;
        req.replay = &body;
        ex = hie_cli__exchange(cli, "replay", &req, 0, HIE__V1__ENVELOPE__BODY_REPLAY_REPLY,
            &arena, &reply);
    }
    if (ex == CLI_EXIT_OK && cli->json) {
        ex = hie_cli__json_emit(json_pack("{s:o, s:I}", "subscription_id",
            hie_cli__jstr(a->sub_id), "queued", (json_int_t)reply->replay_reply->queued));
    } else if (ex == CLI_EXIT_OK) {
        fputs("subscription_id=", stdout);
        hie_cli__kv_value(stdout, a->sub_id);
        printf(" queued=%" PRIu32 "\n", reply->replay_reply->queued);
    }
    hie_arena_destroy(&arena);
    free(a);
    return ex;
}

/* ---- roster ------------------------------------------------------------------------------ */

/* The additions: --add, then the file's MRNs (one a line; blank lines and surrounding spaces
 * ignored). file_buf keeps the file (the list points into it). [out] *list, *count: malloc'd,
 * the caller frees it. Returns CLI_CONTINUE or an exit code. */
static int
roster_adds(struct sub_args *a, char *file_buf, size_t file_len, char ***list, size_t *count)
{
    size_t cap = a->adds_count + (file_len / 2u) + 1u, n = 0, line_no = 0;
    char **out = calloc(cap, sizeof(*out));
    if (out == NULL) {
        fputs("hie: out of memory\n", stderr);
        return CLI_EXIT_CONN;
    }
    memcpy(out, a->adds, a->adds_count * sizeof(*out));
    n = a->adds_count;
    if (file_buf != NULL && memchr(file_buf, '\0', file_len) != NULL) {
        free(out);
        return hie_cli__usage_error("--add-file is not a text file (a NUL byte)");
    }
    for (char *line = file_buf, *next = NULL;
         file_buf != NULL && line != NULL && line < file_buf + file_len; line = next) {
        char *nl = memchr(line, '\n', (size_t)(file_buf + file_len - line));
        next = nl != NULL ? nl + 1 : NULL;
        *(nl != NULL ? nl : file_buf + file_len) = '\0';
        line_no++;
        line += strspn(line, " \t\r");
        for (size_t len = strlen(line); len > 0 && strchr(" \t\r", line[len - 1]); len--) {
            line[len - 1] = '\0';
        }
        if (line[0] != '\0' && !mrn_valid(line)) {
            free(out);
            return hie_cli__usage_error("--add-file line %zu is not an MRN (1-64 printable "
                                        "characters, no spaces)", line_no);
        }
        if (line[0] != '\0') {
            HIE_ASSERT(n < cap);
            out[n++] = line;
        }
    }
    *list = out;
    *count = n;
    return CLI_CONTINUE;
}

/* One part: adds[0..n) (and the removals with the first). Returns an exit code; *size on OK. */
static int
roster_part(struct cli *cli, const struct sub_args *a, char **adds, size_t n, uint32_t part,
    uint32_t parts, uint32_t *size)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    Hie__V1__RosterUpdate body = HIE__V1__ROSTER_UPDATE__INIT;
    char what[64];
    HIE_ASSERT(n <= ROSTER_BATCH);
    HIE_ASSERT(part >= 1 && part <= parts);
    body.subscription_id = (char *)(uintptr_t)a->sub_id;
    body.n_add_mrns = n;
    body.add_mrns = adds;
    body.n_remove_mrns = part == 1 ? a->removes_count : 0;
    body.remove_mrns = (char **)(uintptr_t)a->removes;
    req.body_case = HIE__V1__ENVELOPE__BODY_ROSTER_UPDATE;
    req.roster_update = &body;
    if (parts > 1) {
        snprintf(what, sizeof(what), "roster (part %" PRIu32 " of %" PRIu32 ")", part, parts);
    } else {
        snprintf(what, sizeof(what), "roster");
    }
    int ex = hie_cli__exchange(cli, what, &req, parts > 1 ? part : 0,
        HIE__V1__ENVELOPE__BODY_ROSTER_UPDATE_REPLY, &arena, &reply);
    if (ex == CLI_EXIT_OK) {
        *size = reply->roster_update_reply->size;
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* Sends the roster change in parts of at most ROSTER_BATCH additions. Returns an exit code. */
static int
roster_send(struct cli *cli, const struct sub_args *a, char **adds, size_t adds_count)
{
    size_t parts = adds_count == 0 ? 1u : (adds_count + ROSTER_BATCH - 1u) / ROSTER_BATCH;
    uint32_t size = 0;
    int ex = CLI_EXIT_OK;
    HIE_ASSERT(parts <= HIE_SUBSCRIPTION_ROSTER_MAX / ROSTER_BATCH + 1u);
    for (size_t part = 0; part < parts && ex == CLI_EXIT_OK; part++) {
        size_t at = part * ROSTER_BATCH;
        size_t n = adds_count - at < ROSTER_BATCH ? adds_count - at : ROSTER_BATCH;
        ex = roster_part(cli, a, adds + at, n, (uint32_t)part + 1u, (uint32_t)parts, &size);
        if (ex != CLI_EXIT_OK && part > 0) {
            fprintf(stderr, "hie: roster: %zu of %zu parts were applied; the same command "
                "again (with the same --id) applies nothing twice\n", part, parts);
        }
    }
    if (ex == CLI_EXIT_OK && cli->json) {
        ex = hie_cli__json_emit(json_pack("{s:o, s:I, s:I}", "subscription_id",
            hie_cli__jstr(a->sub_id), "roster_size", (json_int_t)size, "parts",
            (json_int_t)parts));
    } else if (ex == CLI_EXIT_OK) {
        fputs("subscription_id=", stdout);
        hie_cli__kv_value(stdout, a->sub_id);
        printf(" roster_size=%" PRIu32 " parts=%zu\n", size, parts);
    }
    return ex;
}

int
hie_cli__cmd_roster(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    char *file = NULL, **adds = NULL;
    size_t file_len = 0, adds_count = 0;
    struct sub_args *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        fputs("hie: out of memory\n", stderr);
        return CLI_EXIT_CONN;
    }
    int ex = sub_parse(cli, cmd, argc, argv, "arf", a);
    if (ex == CLI_CONTINUE && a->adds_count + a->removes_count == 0 && a->add_file == NULL) {
        ex = hie_cli__usage_error("roster needs --add MRN, --remove MRN or --add-file FILE");
    }
    if (ex == CLI_CONTINUE && a->add_file != NULL) {
        int rc = hie_cli__file_read(a->add_file, ROSTER_FILE_BYTES_MAX, &file, &file_len);
        if (rc != 0) {
            fprintf(stderr, "hie: roster: cannot read %s: %s\n", a->add_file,
                rc == HIE_ELIMIT ? "larger than 8 MiB" : hie_strerror(rc));
            ex = CLI_EXIT_USAGE;
        }
    }
    ex = ex == CLI_CONTINUE ? roster_adds(a, file, file_len, &adds, &adds_count) : ex;
    if (ex == CLI_CONTINUE && adds_count > HIE_SUBSCRIPTION_ROSTER_MAX) {
        ex = hie_cli__usage_error("a roster holds at most %u patients",
            HIE_SUBSCRIPTION_ROSTER_MAX);
    }
    if (ex == CLI_CONTINUE) {
        ex = roster_send(cli, a, adds, adds_count);
    }
    free(adds);
    if (file != NULL) {
        sodium_memzero(file, file_len); /* MRNs */
        free(file);
    }
    free(a);
    return ex;
}

/* ---- notifications (printed by cli_push.c's receive) ------------------------------------- */

/* The subscription and event number: the Delivery's, which the node sets when it numbers the
 * notification (the sealed Notification was built before, and may carry 0); the content's
 * number when the delivery has none. A delivery without a subscription is no notification
 * (hie_cli__is_notification). */
static const char *
notification_sub(const Hie__V1__Delivery *d, const Hie__V1__Notification *n)
{
    (void)n;
    return d->subscription_id;
}

/* The patient's EUID: the Delivery's (the one consent was decided for at the send, after any
 * merge or unlink since the event), the content's when the delivery has none. */
static const char *
notification_euid(const Hie__V1__Delivery *d, const Hie__V1__Notification *n)
{
    return d->euid[0] != '\0' ? d->euid : n->euid;
}

static uint64_t
notification_number(const Hie__V1__Delivery *d, const Hie__V1__Notification *n)
{
    return d->event_number != 0 ? d->event_number : n->event_number;
}

static json_t *
notification_json(const Hie__V1__Delivery *d, const Hie__V1__Notification *n, const char *path)
{
    static const Hie__V1__Encounter none = HIE__V1__ENCOUNTER__INIT;
    const Hie__V1__Encounter *en = n->encounter != NULL ? n->encounter : &none;
    json_t *ids = json_array();
    for (size_t i = 0; ids != NULL && i < n->n_patient_ids; i++) {
        json_array_append_new(ids, json_pack("{s:o, s:o}", "org_id",
            hie_cli__jstr(n->patient_ids[i]->org_id), "mrn",
            hie_cli__jstr(n->patient_ids[i]->mrn)));
    }
    return json_pack("{s:s, s:I, s:o, s:o, s:I, s:s, s:o, s:o, s:o, s:o, s:s, s:o, s:o, "
                     "s:o, s:o, s:o, s:o, s:b, s:b, s:o}",
        "kind", "notification", "seq", (json_int_t)d->seq, "message_id",
        hie_cli__jstr(d->message_id), "subscription_id", hie_cli__jstr(notification_sub(d, n)),
        "event_number", (json_int_t)notification_number(d, n), "event", event_name(n->event),
        "sender_org", hie_cli__jstr(d->sender_org), "euid", hie_cli__jstr(notification_euid(d, n)),
        "patient_ids", ids != NULL ? ids : json_array(), "visit_id",
        hie_cli__jstr(en->visit_id), "patient_class", class_name(en->patient_class),
        "facility", hie_cli__jstr(en->facility), "location", hie_cli__jstr(en->location),
        "attending", hie_cli__jstr(en->attending), "admit", time_json(en->admit_ms),
        "discharge", time_json(en->discharge_ms), "time", time_json(n->event_ms), "cancel",
        n->cancel, "redelivery", d->redelivery, "file",
        path != NULL ? hie_cli__jstr(path) : json_null());
}

static void
notification_text(const Hie__V1__Delivery *d, const Hie__V1__Notification *n, const char *path)
{
    static const Hie__V1__Encounter none = HIE__V1__ENCOUNTER__INIT;
    const Hie__V1__Encounter *en = n->encounter != NULL ? n->encounter : &none;
    char num[24], t[CLI_TIME_TEXT_BYTES];
    printf("seq=%" PRIu64, d->seq);
    kv("message_id", d->message_id);
    kv("subscription_id", notification_sub(d, n));
    snprintf(num, sizeof(num), "%" PRIu64, notification_number(d, n));
    kv("event_number", num);
    kv("event", event_name(n->event));
    kv("sender", d->sender_org);
    kv("euid", notification_euid(d, n));
    fputs(" mrns=", stdout);
    for (size_t i = 0; i < n->n_patient_ids; i++) {
        fputs(i > 0 ? "," : "", stdout);
        hie_cli__kv_value(stdout, n->patient_ids[i]->mrn);
    }
    fputs(n->n_patient_ids == 0 ? "-" : "", stdout);
    kv("visit", en->visit_id[0] != '\0' ? en->visit_id : "-");
    kv("class", en->patient_class != 0 ? class_name(en->patient_class) : "-");
    kv("facility", en->facility[0] != '\0' ? en->facility : "-");
    kv("location", en->location[0] != '\0' ? en->location : "-");
    kv("time", hie_cli__time_format(n->event_ms, t, sizeof(t)));
    printf(" cancel=%s redelivery=%s", n->cancel ? "yes" : "no", d->redelivery ? "yes" : "no");
    if (path != NULL) {
        kv("file", path);
    }
    fputc('\n', stdout);
}

/* The content of d as a Notification in arena (NULL: it does not decode, or it names another
 * sender than the delivery); *why says why not. */
static const Hie__V1__Notification *
notification_open(const Hie__V1__Delivery *d, hie_arena_t *arena, const char **why)
{
    ProtobufCMessage *m = NULL;
    hie_errinfo_t info = {NULL, NULL};
    const ProtobufCBinaryData *c = &d->document->content;
    *why = NULL;
    if (hie_proto_unpack_checked(&hie__v1__notification__descriptor,
            (hie_span_t){c->data, c->len}, arena, &m, &info, "notification") != 0) {
        *why = info.reason != NULL ? info.reason : "does not decode";
        return NULL;
    }
    const Hie__V1__Notification *n = (const Hie__V1__Notification *)m;
    if (strcmp(n->sender_org, d->sender_org) != 0) {
        *why = "it names another sender than the delivery's";
        return NULL;
    }
    return n;
}

bool
hie_cli__is_notification(const Hie__V1__Delivery *d)
{
    if (d->document == NULL || d->subscription_id[0] == '\0' ||
        strcmp(d->document->content_type, CLI_NOTIFICATION_CONTENT_TYPE) != 0) {
        return false;
    }
    hie_arena_t *arena = NULL;
    const char *why = NULL;
    HIE_ASSERT(d->document->content.len <= HIE_PROTO_FRAME_BYTES_MAX);
    if (hie_arena_create(&arena, 4u * d->document->content.len + 65536u) != 0) {
        return false; /* shown as a document, not acknowledged */
    }
    bool ok = notification_open(d, arena, &why) != NULL;
    hie_arena_destroy(&arena);
    return ok;
}

int
hie_cli__notification_print(const struct cli *cli, const Hie__V1__Delivery *d,
    const char *path)
{
    hie_arena_t *arena = NULL;
    HIE_ASSERT(d->document != NULL);
    const ProtobufCBinaryData *c = &d->document->content;
    HIE_ASSERT(c->len <= HIE_PROTO_FRAME_BYTES_MAX); /* it came in one frame */
    if (hie_arena_create(&arena, 4u * c->len + 65536u) != 0) {
        fputs("hie: out of memory\n", stderr);
        return CLI_EXIT_CONN;
    }
    int ex = CLI_EXIT_OK;
    const char *why = NULL;
    const Hie__V1__Notification *n = notification_open(d, arena, &why);
    if (n == NULL) {
        fprintf(stderr, "hie: receive: seq %" PRIu64 ": not a notification (%s), shown as a "
            "document\n", d->seq, why);
        ex = CLI_CONTINUE;
    } else if (cli->json) {
        ex = hie_cli__json_emit(notification_json(d, n, path));
    } else {
        notification_text(d, n, path);
    }
    hie_arena_destroy(&arena);
    return ex;
}
