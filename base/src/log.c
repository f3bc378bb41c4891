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

/* Appends the caller's " k=v k2=v2" as JSON members. Values are emitted as JSON strings; the
 * kv text was produced by our own format strings, so '=' and ' ' delimit it; quoted values in
 * kv ("...") keep their spaces. */
static size_t
log_kv_to_json(char *dst, size_t cap, const char *kv)
{
    size_t n = 0;
    const char *p = kv;
    while (*p != '\0' && n + 8 < cap) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        dst[n++] = ',';
        dst[n++] = '"';
        while (*p != '\0' && *p != '=' && *p != ' ' && n + 6 < cap) {
            dst[n++] = *p++;
        }
        dst[n++] = '"';
        dst[n++] = ':';
        dst[n++] = '"';
        if (*p == '=') {
            p++;
        }
        bool quoted = (*p == '"');
        if (quoted) {
            p++;
        }
        while (*p != '\0' && n + 8 < cap) {
            unsigned char ch = (unsigned char)*p;
            if (quoted && ch == '\\' && p[1] == '"') { /* a quote the value escaped */
                dst[n++] = '\\';
                dst[n++] = '"';
                p += 2;
                continue;
            }
            if (quoted ? ch == '"' : ch == ' ') {
                break;
            }
            if (ch == '\\' || ch == '"') {
                dst[n++] = '\\';
                dst[n++] = (char)ch;
            } else if (ch < 0x20 || ch == 0x7f) { /* never a raw control byte in a JSON line */
                n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", ch);
            } else {
                dst[n++] = (char)ch;
            }
            p++;
        }
        if (quoted && *p == '"') {
            p++;
        }
        dst[n++] = '"';
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
        if (n > 0 && (size_t)n + 8 < sizeof(line)) {
            n += (int)log_kv_to_json(line + n, sizeof(line) - (size_t)n - 3, kv);
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
