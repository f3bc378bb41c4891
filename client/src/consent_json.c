/*
 * consent_json.c - consent directives as JSON (consent_json.h): the strict directive-file
 * parser, UTC times, bounded file and JSON reading, and the renderings of a directive (JSON in
 * the file's shape, a table row). Moved out of cli_consent.c so that `hie consent` and
 * `hiectl consent` read and print the same format; both executables compile this file.
 *
 * Invariants: nothing recurses over input (the provision tree is walked breadth-first with
 * queues bounded by HIE_CONSENT_PROVISIONS_MAX, the raw text's nesting is checked before
 * jansson parses it); the parse arena is sized for the limits, so an allocation in it cannot
 * fail (asserted). Errors name JSON paths and fields, never values.
 */
#include "consent_json.h"

#include "hie/consent.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A one-line summary of a provision in a listing. */
#define CONSENT_SUMMARY_BYTES 240u
#define CONSENT_PATH_BYTES HIE_CONSENT_JSON_PATH_BYTES

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
hie_consent_json_time_parse(const char *s, int64_t *ms)
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
hie_consent_json_time_format(int64_t ms, char *buf, size_t buf_bytes)
{
    HIE_ASSERT(buf_bytes >= HIE_CONSENT_JSON_TIME_BYTES);
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
hie_consent_json_file_read(const char *path, size_t max_bytes, char **buf, size_t *len)
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
        if (n == cap) { /* grows to max_bytes + 1 at most: one byte more says "too large" */
            size_t next = cap > max_bytes ? 0 : 2 * cap > max_bytes + 1 ? max_bytes + 1
                                                                      : 2 * cap;
            char *nb = next == 0 ? NULL : realloc(b, next + 1);
            if (nb == NULL) {
                rc = next == 0 ? HIE_ELIMIT : HIE_ENOMEM;
                break;
            }
            b = nb;
            cap = next;
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

/* True when arrays and objects in text nest at most HIE_CONSENT_JSON_DEPTH_MAX deep (strings are
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
            if (++depth > HIE_CONSENT_JSON_DEPTH_MAX) {
                return false;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return true;
}

size_t
hie_text_char(const char *s, bool *unsafe)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *unsafe = u[0] < 0x20 || u[0] == 0x7f;
        return 1;
    }
    size_t n = u[0] >= 0xc2 && u[0] <= 0xdf ? 2 : u[0] >= 0xe0 && u[0] <= 0xef ? 3
             : u[0] >= 0xf0 && u[0] <= 0xf4 ? 4 : 0;
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xc0) != 0x80) { /* stops at the NUL too */
            n = 0;
        }
    }
    if (n == 0) {
        *unsafe = true;
        return 1;
    }
    *unsafe = (u[0] == 0xc2 && u[1] <= 0x9f) ||
              (u[0] == 0xe2 && u[1] == 0x80 &&
                  ((u[2] >= 0x8e && u[2] <= 0x8f) || (u[2] >= 0xa8 && u[2] <= 0xae))) ||
              (u[0] == 0xe2 && u[1] == 0x81 && u[2] >= 0xa6 && u[2] <= 0xa9);
    return n;
}

size_t
hie_text_unsafe_len(const char *s)
{
    bool unsafe = false;
    size_t n = s[0] != '\0' ? hie_text_char(s, &unsafe) : 0;
    return unsafe ? n : 0;
}

/* Unsafe sequences in s (NUL-terminated) become '?' (the rest moves up): err texts reach a
 * terminal. */
static void
text_safe(char *s)
{
    char *w = s;
    while (*s != '\0') {
        bool bad = false;
        size_t n = hie_text_char(s, &bad);
        if (bad) {
            *w++ = '?';
        } else {
            memmove(w, s, n);
            w += n;
        }
        s += n;
    }
    *w = '\0';
}

int
hie_consent_json_load(const char *path, size_t max_bytes, json_t **out, char *err,
    size_t err_bytes)
{
    char *text = NULL;
    size_t len = 0;
    HIE_ASSERT(err_bytes > 0);
    *out = NULL;
    err[0] = '\0';
    int rc = hie_consent_json_file_read(path, max_bytes, &text, &len);
    if (rc != 0) {
        snprintf(err, err_bytes, "cannot read %s: %s", path,
            rc == HIE_ELIMIT ? "file too large" : hie_strerror(rc));
    } else if (!json_depth_ok(text, len)) {
        snprintf(err, err_bytes, "%s: JSON nested deeper than %u levels", path,
            HIE_CONSENT_JSON_DEPTH_MAX);
        rc = HIE_EINVAL;
    } else {
        json_error_t jerr;
        *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (*out == NULL) {
            snprintf(err, err_bytes, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column,
                jerr.text);
            rc = HIE_EINVAL;
        }
    }
    free(text);
    text_safe(err);
    return rc;
}

json_t *
hie_consent_json_str(const char *s)
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

/* out = path + "." + key, then "[index]" when index >= 0 (cut at CONSENT_PATH_BYTES). The parts
 * are copied with explicit bounds rather than one snprintf: gcc -O3 (Release) reports the
 * possible truncation of "%s%s%s" as an error under -Werror=format-truncation. */
static void
subpath(char *out, const char *path, const char *key, long index)
{
    const char *parts[3] = {path, path[0] != '\0' ? "." : "", key};
    size_t used = 0;
    bool cut = false;
    HIE_ASSERT(out != path);
    for (size_t p = 0; p < 3; p++) {
        size_t len = strlen(parts[p]), room = CONSENT_PATH_BYTES - 1u - used;
        cut = cut || len > room;
        len = len < room ? len : room;
        memcpy(out + used, parts[p], len);
        used += len;
    }
    out[used] = '\0';
    if (index >= 0 && !cut) {
        snprintf(out + used, CONSENT_PATH_BYTES - used, "[%ld]", index);
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
    if (!json_is_string(v) || hie_consent_json_time_parse(json_string_value(v), ms) != 0) {
        return dp_fail(dp, p, "not a UTC date (YYYY-MM-DD) or date-time (YYYY-MM-DDThh:mm:ssZ)");
    }
    if (*ms <= 0) {
        /* 0 is "no bound" on the wire: 1970-01-01 as an end made a provision without one */
        *ms = 0;
        return dp_fail(dp, p, "must be after 1970-01-01T00:00:00Z");
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
    for (int i = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED + 1;
         i <= HIE__V1__PURPOSE_OF_USE__PURPOSE_PATIENT_REQUEST; i++) {
        if (strcmp(s, hie_proto_purpose_name((Hie__V1__PurposeOfUse)i)) == 0) {
            p = (Hie__V1__PurposeOfUse)i;
        }
    }
    *value = (int)p;
    return p != HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED ? 0 : HIE_EINVAL;
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

int
hie_consent_json_directive(json_t *top, const char *org_id, const char *mrn, hie_arena_t *arena,
    Hie__V1__ConsentDirective *d, Hie__V1__PatientId *pid, hie_consent_json_err_t *err)
{
    struct dparse dp = {arena, "", NULL};
    HIE_ASSERT(top != NULL);
    HIE_ASSERT(arena != NULL);
    memset(err, 0, sizeof(*err));
    hie__v1__consent_directive__init(d);
    hie__v1__patient_id__init(pid);
    if (directive_parse(&dp, top, d) != 0) {
        HIE_ASSERT(dp.why != NULL);
        snprintf(err->path, sizeof(err->path), "%s", dp.path);
        err->why = dp.why;
        return HIE_EINVAL;
    }
    pid->org_id = (char *)(uintptr_t)org_id; /* protobuf-c's fields are not const */
    pid->mrn = (char *)(uintptr_t)mrn;
    d->patient = pid;
    hie_errinfo_t info = {NULL, NULL};
    if (hie_consent_directive_validate(d, &info) != 0) {
        snprintf(err->path, sizeof(err->path), "%s", info.field != NULL ? info.field
                                                                         : "directive");
        err->why = info.reason != NULL ? info.reason : "invalid";
        err->invalid = true;
        return HIE_EINVAL;
    }
    return 0;
}

/* ---- directives as JSON and as one line --------------------------------------------------- */

static json_t *
time_json(int64_t ms)
{
    char t[HIE_CONSENT_JSON_TIME_BYTES];
    return ms > 0 ? json_string(hie_consent_json_time_format(ms, t, sizeof(t))) : json_null();
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
            ? json_pack("{s:o}", "org", hie_consent_json_str(a->org_id))
            : json_pack("{s:s}", "role", hie_proto_role_name(a->role)));
    }
    for (size_t i = 0; i < p->n_purposes; i++) {
        json_array_append_new(purposes, json_string(hie_proto_purpose_name(p->purposes[i])));
    }
    for (size_t i = 0; i < p->n_actions; i++) {
        json_array_append_new(actions, json_string(action_name(p->actions[i])));
    }
    for (size_t i = 0; i < p->n_security_labels; i++) {
        json_array_append_new(labels, hie_consent_json_str(p->security_labels[i]));
    }
    for (size_t i = 0; i < p->n_classes; i++) {
        json_array_append_new(classes, hie_consent_json_str(p->classes[i]));
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

json_t *
hie_consent_json_render(const Hie__V1__ConsentDirective *d)
{
    HIE_ASSERT(d != NULL);
    json_t *prov = d->provision != NULL ? tree_json(d->provision) : json_null();
    if (prov == NULL) {
        return NULL;
    }
    json_t *patient = d->patient != NULL ? json_pack("{s:o, s:o}", "org_id",
        hie_consent_json_str(d->patient->org_id), "mrn", hie_consent_json_str(d->patient->mrn))
        : json_null();
    json_t *o = json_pack("{s:o, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o}", "id",
        hie_consent_json_str(d->id), "version", (json_int_t)d->version, "status",
        d->status == HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE ? "active" : "inactive",
        "patient", patient, "euid", hie_consent_json_str(d->euid), "date",
        time_json(d->date_ms), "policy_uri", hie_consent_json_str(d->policy_uri),
        "submitted_by", hie_consent_json_str(d->submitted_by), "submitted",
        time_json(d->submitted_ms), "submitted_index", (json_int_t)d->submitted_index,
        "revoked", time_json(d->revoked_ms), "revoked_by", hie_consent_json_str(d->revoked_by));
    if (o != NULL) {
        set_period(o, "period", d->period);
        json_object_set_new(o, "provision", prov);
    } else {
        json_decref(prov);
    }
    return o;
}

json_t *
hie_consent_json_list(Hie__V1__ConsentDirective *const *directives, size_t count)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < count; i++) {
        json_t *d = hie_consent_json_render(directives[i]);
        if (d == NULL) {
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, d);
    }
    return arr != NULL ? json_pack("{s:o}", "directives", arr) : NULL;
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

/* Node text for a padded column: unsafe sequences become '?' and spaces '_' (they would
 * shift the columns), at most cap - 1 bytes. */
static const char *
col(const char *s, char *buf, size_t cap)
{
    size_t i = 0;
    while (s != NULL && *s != '\0' && i + 1 < cap) {
        bool bad = false;
        size_t n = hie_text_char(s, &bad);
        if (bad || *s == ' ') {
            buf[i++] = bad ? '?' : '_';
        } else if (i + n < cap) {
            memcpy(buf + i, s, n);
            i += n;
        } else {
            break; /* no half characters */
        }
        s += n;
    }
    buf[i] = '\0';
    return i > 0 ? buf : "-";
}

static void
directive_row(FILE *f, const Hie__V1__ConsentDirective *d)
{
    char id[HIE_PROTO_ID_BYTES_MAX + 1], by[HIE_ORG_ID_BYTES_MAX + 1];
    char date[HIE_CONSENT_JSON_TIME_BYTES], revoked[HIE_CONSENT_JSON_TIME_BYTES];
    struct sbuf sum = {{0}, 0};
    if (d->provision != NULL) {
        prov_summary(d->provision, &sum);
    }
    text_safe(sum.buf);
    fprintf(f, "%-14s %-4" PRIu64 " %-8s %-24s %-20s %-24s %s\n", col(d->id, id, sizeof(id)),
        d->version, d->status == HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE ? "active" : "inactive",
        hie_consent_json_time_format(d->date_ms, date, sizeof(date)),
        col(d->submitted_by, by, sizeof(by)),
        hie_consent_json_time_format(d->revoked_ms, revoked, sizeof(revoked)), sum.buf);
}

void
hie_consent_json_table(FILE *f, Hie__V1__ConsentDirective *const *directives, size_t count)
{
    HIE_ASSERT(f != NULL);
    if (count == 0) {
        fputs("no consent directives on file\n", f);
        return;
    }
    HIE_ASSERT(directives != NULL);
    fprintf(f, "%-14s %-4s %-8s %-24s %-20s %-24s %s\n", "id", "ver", "status", "date",
        "submitted_by", "revoked", "provision");
    for (size_t i = 0; i < count; i++) {
        directive_row(f, directives[i]);
    }
}
