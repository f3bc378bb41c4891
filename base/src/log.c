/*
 * log.c - one line per event on stderr, key=value or JSON (style.md 3.8).
 *
 * Each line is formatted into a stack buffer and written with a single write(2), so lines from
 * different threads never interleave. Values come from callers as ` key=value` pairs; peer-given
 * identifiers must pass through hie_log_sanitize() first. Never PHI.
 */
#include "hie/base.h"
#include "hie/limits.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum hie_log_level log_level = HIE_LOG_INFO;
static enum hie_log_format log_format = HIE_LOG_KV;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
hie_log_configure(enum hie_log_level level, enum hie_log_format format)
{
    log_level = level;
    log_format = format;
}

int
hie_log_level_parse(const char *s, enum hie_log_level *out)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum hie_log_level)i;
            return 0;
        }
    }
    return HIE_EINVAL;
}

int
hie_log_format_parse(const char *s, enum hie_log_format *out)
{
    if (strcmp(s, "kv") == 0) {
        *out = HIE_LOG_KV;
    } else if (strcmp(s, "json") == 0) {
        *out = HIE_LOG_JSON;
    } else {
        return HIE_EINVAL;
    }
    return 0;
}

bool
hie_log_enabled(enum hie_log_level level)
{
    return level <= log_level;
}

void
hie_log_sanitize(char *out, size_t out_bytes, const char *s, size_t s_len)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(out_bytes > 0);
    size_t n = 0;
    for (size_t i = 0; i < s_len && n + 1 < out_bytes; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '@' || c == '/' || c == '-';
        out[n++] = ok ? (char)c : '?';
    }
    out[n] = '\0';
}

/* Appends ch to dst as JSON string content (escaped; never a raw control byte). Needs at most
 * 6 bytes of room. */
static size_t
json_char(char *dst, size_t n, unsigned char ch)
{
    if (ch == '\\' || ch == '"') {
        dst[n++] = '\\';
        dst[n++] = (char)ch;
    } else if (ch < 0x20 || ch == 0x7f) {
        static const char hex[] = "0123456789abcdef";
        memcpy(dst + n, "\\u00", 4);
        dst[n + 4] = hex[ch >> 4];
        dst[n + 5] = hex[ch & 15];
        n += 6;
    } else {
        dst[n++] = (char)ch;
    }
    return n;
}

/* Room kept at the end of a JSON line for the marker of a cut one. */
#define LOG_JSON_CUT ",\"truncated\":\"1\""
#define LOG_JSON_ROOM (sizeof(LOG_JSON_CUT) + 8u)

/* Appends the caller's " k=v k2=v2" as JSON members. Values are emitted as JSON strings; the
 * kv text was produced by our own format strings, so '=' and ' ' delimit it; quoted values in
 * kv ("...") keep their spaces. Names are escaped as values are (an unquoted value with a
 * space makes its rest a name). What does not fit is left out and the line says so
 * ("truncated":"1"), as when kv was cut already (cut). */
static size_t
log_kv_to_json(char *dst, size_t cap, const char *kv, bool cut)
{
    HIE_ASSERT(cap > LOG_JSON_ROOM);
    size_t n = 0, room = cap - LOG_JSON_ROOM;
    const char *p = kv;
    for (;;) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0' || n + 16 >= room) {
            break;
        }
        size_t member = n;
        dst[n++] = ',';
        dst[n++] = '"';
        while (*p != '\0' && *p != '=' && *p != ' ' && n + 12 < room) {
            n = json_char(dst, n, (unsigned char)*p++);
        }
        memcpy(dst + n, "\":\"", 3);
        n += 3;
        p += *p == '=';
        bool quoted = (*p == '"');
        p += quoted;
        while (*p != '\0' && n + 8 < room) {
            unsigned char ch = (unsigned char)*p;
            if (quoted && ch == '\\' && p[1] == '"') { /* a quote the value escaped */
                n = json_char(dst, n, '"');
                p += 2;
                continue;
            }
            if (quoted ? ch == '"' : ch == ' ') {
                break;
            }
            n = json_char(dst, n, ch);
            p++;
        }
        bool done = quoted ? (*p == '"' || *p == '\0') : (*p == ' ' || *p == '\0');
        p += quoted && *p == '"';
        dst[n++] = '"';
        if (!done) {
            n = member; /* this member did not fit: leave it out whole */
            break;
        }
    }
    if (*p != '\0' || cut) {
        memcpy(dst + n, LOG_JSON_CUT, sizeof(LOG_JSON_CUT) - 1);
        n += sizeof(LOG_JSON_CUT) - 1;
    }
    return n;
}

static size_t
log_timestamp(char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(buf + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
    return n + (m > 0 ? (size_t)m : 0);
}

void
hie_log_write(enum hie_log_level level, const char *mod, const char *msg, const char *fmt, ...)
{
    if (!hie_log_enabled(level)) {
        return;
    }
    char ts[40];
    char kv[HIE_LOG_LINE_BYTES_MAX];
    char line[HIE_LOG_LINE_BYTES_MAX];
    log_timestamp(ts, sizeof(ts));
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(kv, sizeof(kv), fmt, ap);
    va_end(ap);
    if (k < 0) {
        kv[0] = '\0';
    }
    int n;
    if (log_format == HIE_LOG_JSON) {
        n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"mod\":\"%s\","
            "\"msg\":\"%s\"", ts, level_names[level], mod, msg);
        if (n > 0 && (size_t)n + LOG_JSON_ROOM + 8 < sizeof(line)) {
            n += (int)log_kv_to_json(line + n, sizeof(line) - (size_t)n - 3, kv,
                k >= (int)sizeof(kv));
            line[n++] = '}';
        }
    } else {
        n = snprintf(line, sizeof(line), "ts=%s level=%s mod=%s msg=\"%s\"%s", ts,
            level_names[level], mod, msg, kv);
    }
    if (n < 0) {
        return;
    }
    size_t len = (size_t)n;
    if (len > sizeof(line) - 1) {
        /* cut: the line ends with "..." so an operator can tell (limits.h) */
        len = sizeof(line) - 4;
        memcpy(line + len, "...", 3);
        len += 3;
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
