/*
 * cli_consent.c - `hie consent submit|revoke|list`: a patient's consent directives, sent by the
 * patient's hospital or clinic on the patient's behalf (issue 4); and the helpers the consent
 * and audit commands share (UTC times, bounded file and JSON reading, one exchange with the
 * node, the certificate's organization).
 *
 * The directive file is JSON in a FHIR-Consent-like shape (hie --help, client/README.md),
 * parsed strictly: an unknown key, a wrong type, a code outside its vocabulary (hie/consent.h),
 * a time that is not UTC ISO 8601 or an inverted period is refused with its JSON path named
 * ("provision.provisions[0].security_labels[1]") before anything is sent. Nesting is bounded
 * twice: the raw text (CLI_JSON_DEPTH_MAX, checked before jansson parses it) and the provision
 * tree (HIE_CONSENT_DEPTH_MAX levels, HIE_CONSENT_PROVISIONS_MAX provisions), walked with a
 * bounded queue, never recursively. The result then goes through
 * hie_consent_directive_validate(), the node's own check, so both sides refuse the same things.
 *
 * Patient data: the MRN comes from the command line and is printed only as the result asked
 * for; error lines name fields and JSON paths, never values. Callers: the table in hie_cli.c
 * (consent) and cli_audit.c (the shared helpers).
 */
#include "cli_int.h"

#include "hie/consent.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A directive file is a few KiB; anything near this is not a directive. */
#define CONSENT_FILE_BYTES_MAX (256u * 1024u)
/* A JSON path in an error message: 8 levels of "provisions[63]." and a field fit easily. */
#define CONSENT_PATH_BYTES 256u
/* Scratch for one directive: the provisions, their lists and the walk's queue. */
#define CONSENT_BUILD_ARENA_BYTES (1024u * 1024u)
/* A one-line summary of a provision in `consent list`. */
#define CONSENT_SUMMARY_BYTES 240u

/* ---- UTC times ----------------------------------------------------------------------------- */

/* n decimal digits at s (stops at a NUL: it is not a digit). */
static bool
digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10u + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

static unsigned
month_days(unsigned y, unsigned m)
{
    static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4u == 0 && y % 100u != 0) || y % 400u == 0;
    HIE_ASSERT(m >= 1 && m <= 12);
    return m == 2 && leap ? 29u : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d, proleptic Gregorian (H. Hinnant's days_from_civil), y >= 1970. */
static int64_t
days_from_civil(unsigned y, unsigned m, unsigned d)
{
    HIE_ASSERT(y >= 1970 && m >= 1 && m <= 12);
    y -= m <= 2 ? 1u : 0u;
    unsigned era = y / 400u;
    unsigned yoe = y - era * 400u;
    unsigned mp = m > 2 ? m - 3u : m + 9u;
    unsigned doy = (153u * mp + 2u) / 5u + d - 1u;
    unsigned doe = yoe * 365u + yoe / 4u - yoe / 100u + doy;
    return (int64_t)era * 146097 + (int64_t)doe - 719468;
}

/* "hh:mm:ss[.fraction]" then "Z" or "+00:00". [out] *ms: ms into the day. */
static int
time_of_day(const char *s, int64_t *ms)
{
    unsigned h = 0, mi = 0, sec = 0, frac = 0;
    if (!(digits(s, 2, &h) && s[2] == ':' && digits(s + 3, 2, &mi) && s[5] == ':' &&
            digits(s + 6, 2, &sec)) ||
        h > 23 || mi > 59 || sec > 59) {
        return HIE_EINVAL;
    }
    s += 8;
    if (*s == '.') {
        size_t n = 0;
        for (s++; s[n] >= '0' && s[n] <= '9' && n < 10; n++) {
            frac = n < 3 ? frac * 10u + (unsigned)(s[n] - '0') : frac;
        }
        if (n == 0 || n > 9) {
            return HIE_EINVAL;
        }
        for (size_t i = n; i < 3; i++) {
            frac *= 10u;
        }
        s += n;
    }
    if (strcmp(s, "Z") != 0 && strcmp(s, "+00:00") != 0) {
        return HIE_EINVAL;
    }
    *ms = ((int64_t)h * 3600 + (int64_t)mi * 60 + sec) * 1000 + frac;
    return 0;
}

int
hie_cli__time_parse(const char *s, int64_t *ms)
{
    unsigned y = 0, m = 0, d = 0;
    int64_t tod = 0;
    if (!(digits(s, 4, &y) && s[4] == '-' && digits(s + 5, 2, &m) && s[7] == '-' &&
            digits(s + 8, 2, &d))) {
        return HIE_EINVAL;
    }
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > month_days(y, m)) {
        return HIE_EINVAL;
    }
    if (s[10] != '\0' && (s[10] != 'T' || time_of_day(s + 11, &tod) != 0)) {
        return HIE_EINVAL;
    }
    *ms = days_from_civil(y, m, d) * 86400000 + tod;
    return 0;
}

const char *
hie_cli__time_format(int64_t ms, char *buf, size_t buf_bytes)
{
    HIE_ASSERT(buf_bytes >= CLI_TIME_TEXT_BYTES);
    struct tm tm;
    time_t secs = (time_t)(ms / 1000);
    if (ms <= 0 || gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, buf_bytes, "-");
        return buf;
    }
    size_t n = strftime(buf, buf_bytes, "%Y-%m-%dT%H:%M:%S", &tm);
    HIE_ASSERT(n > 0 && n < buf_bytes - 6);
    if (ms % 1000 != 0) {
        snprintf(buf + n, buf_bytes - n, ".%03dZ", (int)(ms % 1000));
    } else {
        snprintf(buf + n, buf_bytes - n, "Z");
    }
    return buf;
}

/* ---- files and JSON -------------------------------------------------------------------------- */

int
hie_cli__file_read(const char *path, size_t max_bytes, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        return -errno;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    int rc = b == NULL ? HIE_ENOMEM : 0;
    while (rc == 0) {
        if (n == cap) {
            char *nb = cap > max_bytes ? NULL : realloc(b, 2 * cap + 1);
            if (nb == NULL) {
                rc = cap > max_bytes ? HIE_ELIMIT : HIE_ENOMEM;
                break;
            }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        if (got == 0) {
            rc = ferror(f) ? -EIO : 0;
            break;
        }
        n += got;
    }
    rc = rc == 0 && n > max_bytes ? HIE_ELIMIT : rc;
    if (f != stdin) {
        fclose(f);
    }
    if (rc != 0) {
        free(b);
        return rc;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

/* True when arrays and objects in text nest at most CLI_JSON_DEPTH_MAX deep (strings are
 * skipped), so that jansson's recursive parser never goes deep on a hostile file. */
static bool
json_depth_ok(const char *text, size_t len)
{
    unsigned depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            i += c == '\\' ? 1u : 0u; /* an escaped character never ends the string */
            in_str = c != '"';
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > CLI_JSON_DEPTH_MAX) {
                return false;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return true;
}

int
hie_cli__json_load(const char *path, size_t max_bytes, const char *what, json_t **out)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = hie_cli__file_read(path, max_bytes, &text, &len);
    if (rc != 0) {
        fprintf(stderr, "hie: %s: cannot read %s: %s\n", what, path,
            rc == HIE_ELIMIT ? "file too large" : hie_strerror(rc));
        return CLI_EXIT_USAGE;
    }
    if (!json_depth_ok(text, len)) {
        fprintf(stderr, "hie: %s: %s: JSON nested deeper than %u levels\n", what, path,
            CLI_JSON_DEPTH_MAX);
        free(text);
        return CLI_EXIT_USAGE;
    }
    json_error_t err;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    free(text);
    if (*out == NULL) {
        fprintf(stderr, "hie: %s: %s:%d:%d: invalid JSON: ", what, path, err.line, err.column);
        hie_cli__fputs_safe(stderr, err.text);
        fputc('\n', stderr);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

json_t *
hie_cli__jstr(const char *s)
{
    json_t *j = json_string(s != NULL ? s : "");
    if (j != NULL) {
        return j;
    }
    size_t len = strlen(s); /* s is not NULL: json_string("") cannot fail but for memory */
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return json_null();
    }
    for (size_t i = 0; i <= len; i++) {
        copy[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i]; /* jansson refuses invalid UTF-8 */
    }
    j = json_string(copy);
    free(copy);
    return j != NULL ? j : json_null();
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
    int ex = hie_cli__exchange(cli, "whoami (for the default --org)", &req, 1,
        HIE__V1__ENVELOPE__BODY_WHOAMI_REPLY, &arena, &reply);
    if (ex == CLI_EXIT_OK) {
        snprintf(org, org_bytes, "%s", reply->whoami_reply->org_id);
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* ---- the directive file: strict JSON ------------------------------------------------------ */

struct dparse {
    hie_arena_t *arena;
    char path[CONSENT_PATH_BYTES];  /* where the first problem is */
    const char *why;
};

static int
dp_fail(struct dparse *dp, const char *path, const char *why)
{
    snprintf(dp->path, sizeof(dp->path), "%s", path[0] != '\0' ? path : "(top level)");
    dp->why = why;
    return HIE_EINVAL;
}

/* out = path + "." + key, then "[index]" when index >= 0 (cut at CONSENT_PATH_BYTES). */
static void
subpath(char *out, const char *path, const char *key, long index)
{
    int n = snprintf(out, CONSENT_PATH_BYTES, "%s%s%s", path, path[0] != '\0' ? "." : "", key);
    if (index >= 0 && n > 0 && (size_t)n < CONSENT_PATH_BYTES) {
        snprintf(out + n, CONSENT_PATH_BYTES - (size_t)n, "[%ld]", index);
    }
}

static void *
dp_alloc(struct dparse *dp, size_t count, size_t size)
{
    HIE_ASSERT(count <= HIE_CONSENT_PROVISIONS_MAX + 1u);
    void *p = hie_arena_alloc(dp->arena, (count + 1u) * size);
    HIE_ASSERT(p != NULL); /* sized for the limits: CONSENT_BUILD_ARENA_BYTES */
    memset(p, 0, (count + 1u) * size);
    return p;
}

/* Refuses any key of obj that is not in allowed (NULL-terminated). */
static int
keys_check(struct dparse *dp, json_t *obj, const char *path, const char *const *allowed)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL && !known; i++) {
            known = strcmp(key, allowed[i]) == 0;
        }
        if (!known) {
            char p[CONSENT_PATH_BYTES];
            subpath(p, path, key, -1);
            return dp_fail(dp, p, "unknown key");
        }
    }
    return 0;
}

static int
time_field(struct dparse *dp, json_t *obj, const char *path, const char *key, int64_t *ms)
{
    json_t *v = json_object_get(obj, key);
    char p[CONSENT_PATH_BYTES];
    *ms = 0;
    if (v == NULL) {
        return 0;
    }
    subpath(p, path, key, -1);
    if (!json_is_string(v) || hie_cli__time_parse(json_string_value(v), ms) != 0) {
        return dp_fail(dp, p, "not a UTC date (YYYY-MM-DD) or date-time (YYYY-MM-DDThh:mm:ssZ)");
    }
    return 0;
}

/* obj[key], when present: {"start": TIME, "end": TIME}, start before end. */
static int
period_parse(struct dparse *dp, json_t *obj, const char *path, const char *key,
    Hie__V1__ConsentPeriod **out)
{
    static const char *const keys[] = {"start", "end", NULL};
    json_t *j = json_object_get(obj, key);
    char p[CONSENT_PATH_BYTES];
    if (j == NULL) {
        return 0;
    }
    subpath(p, path, key, -1);
    if (!json_is_object(j)) {
        return dp_fail(dp, p, "must be an object {\"start\": DATE, \"end\": DATE}");
    }
    Hie__V1__ConsentPeriod *per = dp_alloc(dp, 1, sizeof(*per));
    hie__v1__consent_period__init(per);
    int rc = keys_check(dp, j, p, keys);
    rc = rc ? rc : time_field(dp, j, p, "start", &per->start_ms);
    rc = rc ? rc : time_field(dp, j, p, "end", &per->end_ms);
    if (rc == 0 && per->start_ms != 0 && per->end_ms != 0 && per->start_ms >= per->end_ms) {
        return dp_fail(dp, p, "start must be before end");
    }
    *out = per;
    return rc;
}

/* Looks one code up; [out] *value its enum value (0 for string codes). Returns 0 if known. */
typedef int (*code_fn)(const char *s, int *value);

static int
purpose_code(const char *s, int *value)
{
    Hie__V1__PurposeOfUse p = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED;
    int rc = hie_cli__purpose_parse(s, &p);
    *value = (int)p;
    return rc == 0 && p != HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED ? 0 : HIE_EINVAL;
}

static const char *const action_names[] = {"unspecified", "identity", "query", "push", "notify"};

static int
action_code(const char *s, int *value)
{
    for (size_t i = 1; i < HIE_ARRAY_LEN(action_names); i++) {
        if (strcmp(s, action_names[i]) == 0) {
            *value = (int)i;
            return 0;
        }
    }
    return HIE_EINVAL;
}

static int
label_code(const char *s, int *value)
{
    enum hie_consent_label l = HIE_CONSENT_LABELS_COUNT;
    *value = 0;
    return hie_consent_label_parse(s, strlen(s), &l);
}

static int
class_code(const char *s, int *value)
{
    enum hie_consent_class c = HIE_CONSENT_CLASS_NONE;
    *value = 0;
    return hie_consent_class_parse(s, strlen(s), &c);
}

/* obj[key], when present: an array of at most HIE_CONSENT_LIST_ITEMS_MAX known codes.
 * [out] *values (enum values), *strs (borrowed from the JSON tree), *count. */
static int
codes_parse(struct dparse *dp, json_t *obj, const char *path, const char *key, code_fn fn,
    const char *why, int **values, char ***strs, size_t *count)
{
    json_t *arr = json_object_get(obj, key);
    char p[CONSENT_PATH_BYTES];
    *count = 0;
    if (arr == NULL) {
        return 0;
    }
    subpath(p, path, key, -1);
    if (!json_is_array(arr)) {
        return dp_fail(dp, p, "must be an array of strings");
    }
    size_t n = json_array_size(arr);
    if (n > HIE_CONSENT_LIST_ITEMS_MAX) {
        return dp_fail(dp, p, "too many items (at most 32)");
    }
    int *v = dp_alloc(dp, n, sizeof(*v));
    char **s = dp_alloc(dp, n, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(arr, i);
        subpath(p, path, key, (long)i);
        if (!json_is_string(item) || fn(json_string_value(item), &v[i]) != 0) {
            return dp_fail(dp, p, why);
        }
        s[i] = (char *)(uintptr_t)json_string_value(item); /* protobuf-c's field is not const */
    }
    *values = v;
    *strs = s;
    *count = n;
    return 0;
}

static int
actor_parse(struct dparse *dp, json_t *a, const char *path, Hie__V1__ConsentActor *out)
{
    static const char *const keys[] = {"org", "role", NULL};
    char p[CONSENT_PATH_BYTES];
    hie__v1__consent_actor__init(out);
    if (!json_is_object(a)) {
        return dp_fail(dp, path, "must be an object {\"org\": ORG} or {\"role\": ROLE}");
    }
    int rc = keys_check(dp, a, path, keys);
    json_t *org = json_object_get(a, "org"), *role = json_object_get(a, "role");
    if (rc == 0 && (org == NULL) == (role == NULL)) {
        return dp_fail(dp, path, "give exactly one of org and role");
    }
    if (rc == 0 && org != NULL) {
        subpath(p, path, "org", -1);
        const char *s = json_is_string(org) ? json_string_value(org) : "";
        if (!hie_proto_org_id_valid(s, strlen(s))) {
            return dp_fail(dp, p, "not an organization id");
        }
        out->org_id = (char *)(uintptr_t)s;
    } else if (rc == 0) {
        subpath(p, path, "role", -1);
        const char *s = json_is_string(role) ? json_string_value(role) : "";
        if (hie_proto_role_parse(s, &out->role) != 0) {
            return dp_fail(dp, p, "unknown role (hospital, clinic, lab, payer, auditor, ...)");
        }
    }
    return rc;
}

static int
actors_parse(struct dparse *dp, json_t *obj, const char *path, Hie__V1__ConsentProvision *prov)
{
    json_t *arr = json_object_get(obj, "actors");
    char p[CONSENT_PATH_BYTES];
    if (arr == NULL) {
        return 0;
    }
    subpath(p, path, "actors", -1);
    if (!json_is_array(arr)) {
        return dp_fail(dp, p, "must be an array of actors");
    }
    size_t n = json_array_size(arr);
    if (n > HIE_CONSENT_LIST_ITEMS_MAX) {
        return dp_fail(dp, p, "too many items (at most 32)");
    }
    Hie__V1__ConsentActor *actors = dp_alloc(dp, n, sizeof(*actors));
    prov->actors = dp_alloc(dp, n, sizeof(*prov->actors));
    for (size_t i = 0; i < n; i++) {
        subpath(p, path, "actors", (long)i);
        int rc = actor_parse(dp, json_array_get(arr, i), p, &actors[i]);
        if (rc != 0) {
            return rc;
        }
        prov->actors[i] = &actors[i];
    }
    prov->n_actors = n;
    return 0;
}

/* "type": "permit" | "deny"; required at the root; below it optional ("the reverse"), and when
 * given it must reverse parent (the parent's effective type). */
static int
type_parse(struct dparse *dp, json_t *obj, const char *path, int parent,
    Hie__V1__ProvisionType *out)
{
    json_t *t = json_object_get(obj, "type");
    char p[CONSENT_PATH_BYTES];
    subpath(p, path, "type", -1);
    *out = HIE__V1__PROVISION_TYPE__PROVISION_TYPE_UNSPECIFIED;
    if (t == NULL) {
        return parent == 0 ? dp_fail(dp, p, "missing (permit or deny)") : 0;
    }
    const char *s = json_is_string(t) ? json_string_value(t) : "";
    if (strcmp(s, "permit") == 0) {
        *out = HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
    } else if (strcmp(s, "deny") == 0) {
        *out = HIE__V1__PROVISION_TYPE__PROVISION_DENY;
    } else {
        return dp_fail(dp, p, "must be permit or deny");
    }
    if (parent != 0 && (int)*out == parent) {
        return dp_fail(dp, p, "a nested provision reverses its parent's type (or leave it out)");
    }
    return 0;
}

static int
prov_fields(struct dparse *dp, json_t *j, const char *path, int parent,
    Hie__V1__ConsentProvision *p)
{
    static const char *const keys[] = {"type", "period", "data_period", "actors", "purposes",
        "security_labels", "classes", "actions", "provisions", NULL};
    int *v = NULL;
    char **s = NULL;
    size_t n = 0;
    if (!json_is_object(j)) {
        return dp_fail(dp, path, "must be an object");
    }
    int rc = keys_check(dp, j, path, keys);
    rc = rc ? rc : type_parse(dp, j, path, parent, &p->type);
    rc = rc ? rc : period_parse(dp, j, path, "period", &p->period);
    rc = rc ? rc : period_parse(dp, j, path, "data_period", &p->data_period);
    rc = rc ? rc : actors_parse(dp, j, path, p);
    rc = rc ? rc : codes_parse(dp, j, path, "purposes", purpose_code,
        "unknown purpose (treatment, emergency, payment, operations, ...)", &v, &s, &n);
    p->purposes = rc == 0 && n > 0 ? dp_alloc(dp, n, sizeof(*p->purposes)) : NULL;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        p->purposes[p->n_purposes++] = (Hie__V1__PurposeOfUse)v[i];
    }
    rc = rc ? rc : codes_parse(dp, j, path, "actions", action_code,
        "unknown action (identity, query, push, notify)", &v, &s, &n);
    p->actions = rc == 0 && n > 0 ? dp_alloc(dp, n, sizeof(*p->actions)) : NULL;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        p->actions[p->n_actions++] = (Hie__V1__ConsentAction)v[i];
    }
    rc = rc ? rc : codes_parse(dp, j, path, "security_labels", label_code,
        "unknown security label (U L M N R V ETH ETHUD OPIOIDUD SUD PSY HIV STD SDV SEX)", &v,
        &p->security_labels, &p->n_security_labels);
    rc = rc ? rc : codes_parse(dp, j, path, "classes", class_code,
        "unknown document class (summary, discharge-summary, lab-report, ...)", &v, &p->classes,
        &p->n_classes);
    return rc;
}

struct pitem {
    json_t *j;
    Hie__V1__ConsentProvision *p;
    unsigned depth;
    int parent_type;            /* effective type of the parent; 0 at the root */
    char path[CONSENT_PATH_BYTES];
};

/* The provision tree, breadth-first with a queue of at most HIE_CONSENT_PROVISIONS_MAX items:
 * a level's children are counted against the limits before any of them is queued. */
static int
tree_parse(struct dparse *dp, json_t *root, Hie__V1__ConsentProvision **out)
{
    struct pitem *q = dp_alloc(dp, HIE_CONSENT_PROVISIONS_MAX, sizeof(*q));
    Hie__V1__ConsentProvision *all = dp_alloc(dp, HIE_CONSENT_PROVISIONS_MAX, sizeof(*all));
    size_t head = 0, tail = 1;
    hie__v1__consent_provision__init(&all[0]);
    q[0] = (struct pitem){root, &all[0], 1, 0, "provision"};
    while (head < tail) {
        struct pitem *it = &q[head++];
        int rc = prov_fields(dp, it->j, it->path, it->parent_type, it->p);
        if (rc != 0) {
            return rc;
        }
        json_t *kids = json_object_get(it->j, "provisions");
        if (kids == NULL) {
            continue;
        }
        char kp[CONSENT_PATH_BYTES];
        subpath(kp, it->path, "provisions", -1);
        size_t n = json_is_array(kids) ? json_array_size(kids) : 0;
        if (!json_is_array(kids)) {
            return dp_fail(dp, kp, "must be an array of provisions");
        }
        if (n > 0 && it->depth >= HIE_CONSENT_DEPTH_MAX) {
            return dp_fail(dp, kp, "nested too deep (at most 8 levels)");
        }
        if (n > HIE_CONSENT_PROVISIONS_MAX - tail) {
            return dp_fail(dp, kp, "too many provisions (at most 64 in all)");
        }
        int eff = it->p->type != 0 ? (int)it->p->type
            : it->parent_type == HIE__V1__PROVISION_TYPE__PROVISION_PERMIT
            ? HIE__V1__PROVISION_TYPE__PROVISION_DENY : HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
        it->p->provisions = n > 0 ? dp_alloc(dp, n, sizeof(*it->p->provisions)) : NULL;
        it->p->n_provisions = n;
        for (size_t i = 0; i < n; i++, tail++) {
            hie__v1__consent_provision__init(&all[tail]);
            it->p->provisions[i] = &all[tail];
            q[tail] = (struct pitem){json_array_get(kids, i), &all[tail], it->depth + 1, eff, ""};
            subpath(q[tail].path, it->path, "provisions", (long)i);
        }
    }
    HIE_ASSERT(tail <= HIE_CONSENT_PROVISIONS_MAX);
    *out = &all[0];
    return 0;
}

static int
directive_parse(struct dparse *dp, json_t *top, Hie__V1__ConsentDirective *d)
{
    static const char *const keys[] = {"status", "period", "date", "policy_uri", "provision",
        NULL};
    if (!json_is_object(top)) {
        return dp_fail(dp, "", "the directive must be a JSON object");
    }
    int rc = keys_check(dp, top, "", keys);
    json_t *st = json_object_get(top, "status");
    const char *s = json_is_string(st) ? json_string_value(st) : "";
    if (rc == 0 && strcmp(s, "active") == 0) {
        d->status = HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE;
    } else if (rc == 0 && strcmp(s, "inactive") == 0) {
        d->status = HIE__V1__CONSENT_STATUS__CONSENT_INACTIVE;
    } else if (rc == 0) {
        return dp_fail(dp, "status", "must be active or inactive");
    }
    rc = rc ? rc : period_parse(dp, top, "", "period", &d->period);
    rc = rc ? rc : time_field(dp, top, "", "date", &d->date_ms);
    json_t *uri = json_object_get(top, "policy_uri");
    if (rc == 0 && uri != NULL) {
        const char *u = json_is_string(uri) ? json_string_value(uri) : "";
        bool ok = u[0] != '\0' && strlen(u) <= HIE_CONSENT_POLICY_URI_BYTES_MAX;
        for (const char *c = u; ok && *c != '\0'; c++) {
            ok = *c > 0x20 && *c < 0x7f;
        }
        if (!ok) {
            return dp_fail(dp, "policy_uri", "1 to 256 printable ASCII characters, no spaces");
        }
        d->policy_uri = (char *)(uintptr_t)u;
    }
    json_t *prov = json_object_get(top, "provision");
    if (rc == 0 && prov == NULL) {
        return dp_fail(dp, "provision", "missing");
    }
    return rc ? rc : tree_parse(dp, prov, &d->provision);
}

/* ---- directives as JSON and as one line --------------------------------------------------- */

static json_t *
time_json(int64_t ms)
{
    char t[CLI_TIME_TEXT_BYTES];
    return ms > 0 ? json_string(hie_cli__time_format(ms, t, sizeof(t))) : json_null();
}

static void
set_period(json_t *o, const char *key, const Hie__V1__ConsentPeriod *p)
{
    if (p == NULL || (p->start_ms == 0 && p->end_ms == 0)) {
        return;
    }
    json_t *j = json_object();
    if (p->start_ms != 0) {
        json_object_set_new(j, "start", time_json(p->start_ms));
    }
    if (p->end_ms != 0) {
        json_object_set_new(j, "end", time_json(p->end_ms));
    }
    json_object_set_new(o, key, j);
}

static const char *
action_name(Hie__V1__ConsentAction a)
{
    return (unsigned)a < HIE_ARRAY_LEN(action_names) ? action_names[a] : "unknown";
}

static const char *
prov_type_name(Hie__V1__ProvisionType t)
{
    return t == HIE__V1__PROVISION_TYPE__PROVISION_PERMIT ? "permit"
        : t == HIE__V1__PROVISION_TYPE__PROVISION_DENY    ? "deny" : "unspecified";
}

/* One provision's own fields (not its children) in the input shape. */
static json_t *
prov_json(const Hie__V1__ConsentProvision *p)
{
    json_t *o = json_object(), *actors = json_array(), *purposes = json_array();
    json_t *actions = json_array(), *labels = json_array(), *classes = json_array();
    if (p->type != 0) {
        json_object_set_new(o, "type", json_string(prov_type_name(p->type)));
    }
    set_period(o, "period", p->period);
    set_period(o, "data_period", p->data_period);
    for (size_t i = 0; i < p->n_actors; i++) {
        const Hie__V1__ConsentActor *a = p->actors[i];
        json_array_append_new(actors, a->org_id[0] != '\0'
            ? json_pack("{s:o}", "org", hie_cli__jstr(a->org_id))
            : json_pack("{s:s}", "role", hie_proto_role_name(a->role)));
    }
    for (size_t i = 0; i < p->n_purposes; i++) {
        json_array_append_new(purposes, json_string(hie_proto_purpose_name(p->purposes[i])));
    }
    for (size_t i = 0; i < p->n_actions; i++) {
        json_array_append_new(actions, json_string(action_name(p->actions[i])));
    }
    for (size_t i = 0; i < p->n_security_labels; i++) {
        json_array_append_new(labels, hie_cli__jstr(p->security_labels[i]));
    }
    for (size_t i = 0; i < p->n_classes; i++) {
        json_array_append_new(classes, hie_cli__jstr(p->classes[i]));
    }
    json_object_set_new(o, "actors", actors);
    json_object_set_new(o, "purposes", purposes);
    json_object_set_new(o, "security_labels", labels);
    json_object_set_new(o, "classes", classes);
    json_object_set_new(o, "actions", actions);
    return o;
}

/* The provision tree as JSON, breadth-first with a bounded queue; NULL when the node sent more
 * than the limits allow. */
static json_t *
tree_json(const Hie__V1__ConsentProvision *root)
{
    const Hie__V1__ConsentProvision *qp[HIE_CONSENT_PROVISIONS_MAX];
    json_t *qj[HIE_CONSENT_PROVISIONS_MAX];
    size_t head = 0, tail = 1;
    json_t *out = prov_json(root);
    qp[0] = root;
    qj[0] = out;
    while (head < tail) {
        const Hie__V1__ConsentProvision *p = qp[head];
        json_t *kids = json_array();
        json_object_set_new(qj[head++], "provisions", kids);
        if (p->n_provisions > HIE_CONSENT_PROVISIONS_MAX - tail) {
            json_decref(out);
            return NULL;
        }
        for (size_t i = 0; i < p->n_provisions; i++, tail++) {
            qp[tail] = p->provisions[i];
            qj[tail] = prov_json(p->provisions[i]);
            json_array_append_new(kids, qj[tail]);
        }
    }
    return out;
}

static json_t *
directive_json(const Hie__V1__ConsentDirective *d)
{
    json_t *prov = d->provision != NULL ? tree_json(d->provision) : json_null();
    if (prov == NULL) {
        return NULL;
    }
    json_t *o = json_pack("{s:o, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o}", "id",
        hie_cli__jstr(d->id), "version", (json_int_t)d->version, "status",
        d->status == HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE ? "active" : "inactive",
        "patient", d->patient != NULL ? json_pack("{s:o, s:o}", "org_id",
        hie_cli__jstr(d->patient->org_id), "mrn", hie_cli__jstr(d->patient->mrn)) : json_null(),
        "euid", hie_cli__jstr(d->euid), "date", time_json(d->date_ms), "policy_uri",
        hie_cli__jstr(d->policy_uri), "submitted_by", hie_cli__jstr(d->submitted_by),
        "submitted", time_json(d->submitted_ms), "submitted_index",
        (json_int_t)d->submitted_index, "revoked", time_json(d->revoked_ms), "revoked_by",
        hie_cli__jstr(d->revoked_by));
    if (o != NULL) {
        set_period(o, "period", d->period);
        json_object_set_new(o, "provision", prov);
    } else {
        json_decref(prov);
    }
    return o;
}

struct sbuf {
    char buf[CONSENT_SUMMARY_BYTES];
    size_t len;
};

static void HIE_PRINTF(2, 3)
sb_add(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    if (b->len + 1 >= sizeof(b->buf)) {
        return;
    }
    va_start(ap, fmt);
    int n = vsnprintf(b->buf + b->len, sizeof(b->buf) - b->len, fmt, ap);
    va_end(ap);
    b->len = n < 0 ? b->len : b->len + (size_t)n >= sizeof(b->buf) ? sizeof(b->buf) - 1
        : b->len + (size_t)n;
}

/* "permit actors=org:x,role:clinic purposes=treatment labels=PSY ... +2 nested". */
static void
prov_summary(const Hie__V1__ConsentProvision *p, struct sbuf *b)
{
    sb_add(b, "%s", prov_type_name(p->type));
    for (size_t i = 0; i < p->n_actors; i++) {
        const Hie__V1__ConsentActor *a = p->actors[i];
        sb_add(b, "%s%s:%s", i == 0 ? " actors=" : ",", a->org_id[0] ? "org" : "role",
            a->org_id[0] ? a->org_id : hie_proto_role_name(a->role));
    }
    for (size_t i = 0; i < p->n_purposes; i++) {
        sb_add(b, "%s%s", i == 0 ? " purposes=" : ",", hie_proto_purpose_name(p->purposes[i]));
    }
    for (size_t i = 0; i < p->n_security_labels; i++) {
        sb_add(b, "%s%s", i == 0 ? " labels=" : ",", p->security_labels[i]);
    }
    for (size_t i = 0; i < p->n_classes; i++) {
        sb_add(b, "%s%s", i == 0 ? " classes=" : ",", p->classes[i]);
    }
    for (size_t i = 0; i < p->n_actions; i++) {
        sb_add(b, "%s%s", i == 0 ? " actions=" : ",", action_name(p->actions[i]));
    }
    if (p->n_provisions > 0) {
        sb_add(b, " +%zu nested", p->n_provisions);
    }
}

/* Node text for a padded column: control characters become '?', at most cap - 1 bytes. */
static const char *
col(const char *s, char *buf, size_t cap)
{
    size_t i = 0;
    for (; s != NULL && s[i] != '\0' && i + 1 < cap; i++) {
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    }
    buf[i] = '\0';
    return i > 0 ? buf : "-";
}

static void
directive_row(const Hie__V1__ConsentDirective *d)
{
    char id[HIE_PROTO_ID_BYTES_MAX + 1], by[HIE_ORG_ID_BYTES_MAX + 1];
    char date[CLI_TIME_TEXT_BYTES], revoked[CLI_TIME_TEXT_BYTES];
    struct sbuf sum = {{0}, 0};
    if (d->provision != NULL) {
        prov_summary(d->provision, &sum);
    }
    printf("%-14s %-4" PRIu64 " %-8s %-24s %-20s %-24s ", col(d->id, id, sizeof(id)),
        d->version, d->status == HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE ? "active" : "inactive",
        hie_cli__time_format(d->date_ms, date, sizeof(date)),
        col(d->submitted_by, by, sizeof(by)),
        hie_cli__time_format(d->revoked_ms, revoked, sizeof(revoked)));
    hie_cli__fputs_safe(stdout, sum.buf);
    fputc('\n', stdout);
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
    struct dparse dp = {arena, "", NULL};
    hie__v1__consent_directive__init(d);
    if (directive_parse(&dp, top, d) != 0) {
        fprintf(stderr, "hie: consent submit: %s: ", a->file);
        hie_cli__fputs_safe(stderr, dp.path);
        fprintf(stderr, ": %s\n", dp.why);
        return CLI_EXIT_USAGE;
    }
    hie__v1__patient_id__init(pid);
    pid->org_id = (char *)(uintptr_t)a->org;
    pid->mrn = (char *)(uintptr_t)a->mrn;
    d->patient = pid;
    hie_errinfo_t info = {NULL, NULL};
    if (hie_consent_directive_validate(d, &info) != 0) {
        fprintf(stderr, "hie: consent submit: the directive is invalid: %s: %s\n",
            info.field != NULL ? info.field : "directive",
            info.reason != NULL ? info.reason : "invalid");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
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
    int ex = hie_cli__json_load(a->file, CONSENT_FILE_BYTES_MAX, "consent submit", &top);
    if (ex == CLI_EXIT_OK && hie_arena_create(&build, CONSENT_BUILD_ARENA_BYTES) != 0) {
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
    if (cli->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < r->n_directives; i++) {
            json_t *d = directive_json(r->directives[i]);
            if (d == NULL) {
                json_decref(arr);
                fputs("hie: consent list failed: a directive is over the limits\n", stderr);
                return CLI_EXIT_CONN;
            }
            json_array_append_new(arr, d);
        }
        return hie_cli__json_emit(json_pack("{s:o}", "directives", arr));
    }
    if (r->n_directives == 0) {
        fputs("no consent directives on file\n", stdout);
        return CLI_EXIT_OK;
    }
    printf("%-14s %-4s %-8s %-24s %-20s %-24s %s\n", "id", "ver", "status", "date",
        "submitted_by", "revoked", "provision");
    for (size_t i = 0; i < r->n_directives; i++) {
        directive_row(r->directives[i]);
    }
    return CLI_EXIT_OK;
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
