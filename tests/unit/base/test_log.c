/*
 * test_log.c - unit tests for base/src/log.c: hie_log_sanitize() (peer identifiers made safe
 * to log), the level and format parsers, level filtering, and the line formats. Lines are
 * captured by pointing fd 2 at a temporary file for the duration of one call.
 */
#include "hie/base.h"
#include "hie/limits.h"

#include "../test_util.h"

#include <criterion/criterion.h>
#include <jansson.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void
sanitize(char *out, size_t out_bytes, const char *s)
{
    hie_log_sanitize(out, out_bytes, s, strlen(s));
}

Test(base_log, sanitize_keeps_the_allowed_characters)
{
    char out[128];
    const char *ok = "Acme-Hospital_01.example:8443/@operator";
    sanitize(out, sizeof(out), ok);
    cr_assert_str_eq(out, ok);
}

Test(base_log, sanitize_replaces_every_other_byte)
{
    char out[128];
    sanitize(out, sizeof(out), "a b\"c=d\n\te\\f{g}%h");
    cr_assert_str_eq(out, "a?b?c?d??e?f?g??h");
    const char high[] = "\xc3\xa9t\xff";
    hie_log_sanitize(out, sizeof(out), high, sizeof(high) - 1);
    cr_assert_str_eq(out, "??t?", "each non-ASCII byte becomes one '?'");
}

Test(base_log, sanitize_reads_exactly_s_len_bytes_including_nul)
{
    char out[16];
    const char in[] = {'a', '\0', 'b', 'c', 'd'}; /* not NUL-terminated */
    hie_log_sanitize(out, sizeof(out), in, 3);
    cr_assert_str_eq(out, "a?b", "an embedded NUL is replaced, not a terminator");
    hie_log_sanitize(out, sizeof(out), in, 0);
    cr_assert_str_eq(out, "");
}

Test(base_log, sanitize_truncates_to_out_bytes_minus_one)
{
    char out[5];
    memset(out, 'X', sizeof(out));
    sanitize(out, sizeof(out), "abcdefgh");
    cr_assert_str_eq(out, "abcd");
    char one[1] = {'X'};
    sanitize(one, sizeof(one), "abc");
    cr_assert_eq(one[0], '\0', "a one-byte buffer holds only the terminator");
}

Test(base_log, sanitize_with_zero_out_bytes_aborts, .signal = SIGABRT)
{
    char out[1];
    hie_log_sanitize(out, 0, "abc", 3);
}

Test(base_log, sanitize_with_null_out_aborts, .signal = SIGABRT)
{
    hie_log_sanitize(NULL, 8, "abc", 3);
}

Test(base_log, level_parse_accepts_the_four_names)
{
    static const struct {
        const char *s;
        enum hie_log_level level;
    } ok[] = {{"error", HIE_LOG_ERROR}, {"warn", HIE_LOG_WARN}, {"info", HIE_LOG_INFO},
        {"debug", HIE_LOG_DEBUG}};
    for (size_t i = 0; i < HIE_ARRAY_LEN(ok); i++) {
        enum hie_log_level level = (enum hie_log_level)99;
        cr_assert_eq(hie_log_level_parse(ok[i].s, &level), 0, "%s", ok[i].s);
        cr_assert_eq(level, ok[i].level, "%s", ok[i].s);
    }
}

Test(base_log, level_parse_rejects_anything_else_and_leaves_out_alone)
{
    static const char *const bad[] = {"", "INFO", "Info", "warning", "info ", " info", "loud",
        "err", "debug\n", "trace"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        enum hie_log_level level = HIE_LOG_WARN;
        cr_assert_eq(hie_log_level_parse(bad[i], &level), HIE_EINVAL, "\"%s\"", bad[i]);
        cr_assert_eq(level, HIE_LOG_WARN, "\"%s\" changed the output", bad[i]);
    }
}

Test(base_log, format_parse_accepts_kv_and_json_only)
{
    enum hie_log_format f = (enum hie_log_format)99;
    cr_assert_eq(hie_log_format_parse("kv", &f), 0);
    cr_assert_eq(f, HIE_LOG_KV);
    cr_assert_eq(hie_log_format_parse("json", &f), 0);
    cr_assert_eq(f, HIE_LOG_JSON);
    static const char *const bad[] = {"", "KV", "JSON", "text", "logfmt", "json "};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        f = HIE_LOG_JSON;
        cr_assert_eq(hie_log_format_parse(bad[i], &f), HIE_EINVAL, "\"%s\"", bad[i]);
        cr_assert_eq(f, HIE_LOG_JSON);
    }
}

Test(base_log, enabled_follows_the_configured_level)
{
    hie_log_configure(HIE_LOG_WARN, HIE_LOG_KV);
    cr_assert(hie_log_enabled(HIE_LOG_ERROR));
    cr_assert(hie_log_enabled(HIE_LOG_WARN));
    cr_assert(!hie_log_enabled(HIE_LOG_INFO));
    cr_assert(!hie_log_enabled(HIE_LOG_DEBUG));
    hie_log_configure(HIE_LOG_DEBUG, HIE_LOG_KV);
    cr_assert(hie_log_enabled(HIE_LOG_DEBUG));
}

/* Captures what one hie_log_write call sends to fd 2. */
struct capture {
    FILE *tmp;
    int saved_fd;
};

static void
capture_begin(struct capture *c)
{
    fflush(stderr);
    c->tmp = tmpfile();
    cr_assert_not_null(c->tmp);
    c->saved_fd = dup(STDERR_FILENO);
    cr_assert(c->saved_fd >= 0);
    cr_assert(dup2(fileno(c->tmp), STDERR_FILENO) >= 0);
}

static size_t
capture_end(struct capture *c, char *out, size_t out_bytes)
{
    cr_assert(dup2(c->saved_fd, STDERR_FILENO) >= 0);
    close(c->saved_fd);
    rewind(c->tmp);
    size_t n = fread(out, 1, out_bytes - 1, c->tmp);
    out[n] = '\0';
    fclose(c->tmp);
    return n;
}

Test(base_log, kv_line_has_level_module_message_and_pairs)
{
    static char out[8192];
    struct capture c;
    hie_log_configure(HIE_LOG_INFO, HIE_LOG_KV);
    capture_begin(&c);
    hie_log_info("edge", "request done", " org=%s rc=%s", "acme", "OK");
    size_t n = capture_end(&c, out, sizeof(out));
    cr_assert_gt(n, 0);
    cr_assert_eq(strncmp(out, "ts=", 3), 0, "line: %s", out);
    cr_assert_not_null(strstr(out, " level=info mod=edge msg=\"request done\" org=acme rc=OK\n"),
        "line: %s", out);
    cr_assert_eq(out[n - 1], '\n');
    cr_assert_eq(strchr(out, '\n'), out + n - 1, "exactly one line");
}

Test(base_log, json_line_is_one_object_with_the_pairs_as_members)
{
    static char out[8192];
    struct capture c;
    hie_log_configure(HIE_LOG_INFO, HIE_LOG_JSON);
    capture_begin(&c);
    hie_log_warn("sm", "apply failed", " what=\"log append\" index=%d", 42);
    size_t n = capture_end(&c, out, sizeof(out));
    cr_assert_gt(n, 2);
    cr_assert_eq(strncmp(out, "{\"ts\":\"", 7), 0, "line: %s", out);
    cr_assert_not_null(strstr(out, "\"level\":\"warn\",\"mod\":\"sm\",\"msg\":\"apply failed\","
        "\"what\":\"log append\",\"index\":\"42\"}\n"), "line: %s", out);
}

/* A value with an escaped quote, a tab or a newline in it stays one JSON string on one line
 * (a detail from a peer or a library could carry any of them). */
Test(base_log, json_values_escape_quotes_and_control_bytes)
{
    static char out[8192];
    struct capture c;
    hie_log_configure(HIE_LOG_INFO, HIE_LOG_JSON);
    capture_begin(&c);
    hie_log_warn("edge", "odd", " detail=\"a \\\"b\\\"\tc\nd\" next=%d", 7);
    size_t n = capture_end(&c, out, sizeof(out));
    cr_assert_gt(n, 2);
    cr_assert_eq(strchr(out, '\n'), out + n - 1, "one line: %s", out);
    cr_assert_not_null(strstr(out, "\"detail\":\"a \\\"b\\\"\\u0009c\\u000ad\",\"next\":\"7\"}"),
        "line: %s", out);
}

/* Every JSON line parses as JSON: a name that took the rest of an unquoted value with a space
 * and a quote in it stayed raw (invalid JSON, which a log pipeline drops), and a line cut for
 * length lost its last members without saying so. */
Test(base_log, json_lines_parse_and_a_cut_one_says_so)
{
    static char big[HIE_LOG_LINE_BYTES_MAX]; /* a value longer than the line has room for */
    static char out[4 * HIE_LOG_LINE_BYTES_MAX];
    memset(big, 'y', sizeof(big) - 100);
    big[sizeof(big) - 100] = '\0';
    struct capture c;
    hie_log_configure(HIE_LOG_INFO, HIE_LOG_JSON);
    capture_begin(&c);
    hie_log_error("sm", "cannot open the command log", " dir=%s rc=%s",
        "/var/lib/my \"node\"\\x", "HIE_ESTORAGE");
    size_t n = capture_end(&c, out, sizeof(out));
    json_error_t jerr;
    json_t *j = json_loadb(out, n, 0, &jerr);
    cr_assert_not_null(j, "not JSON (%s): %s", jerr.text, out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "dir")), "/var/lib/my", "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "rc")), "HIE_ESTORAGE", "%s", out);
    cr_assert_null(json_object_get(j, "truncated"), "%s", out);
    json_decref(j);
    capture_begin(&c);
    hie_log_error("sm", "long", " a=1 v=%s rc=%s", big, "HIE_ESTORAGE");
    n = capture_end(&c, out, sizeof(out));
    j = json_loadb(out, n, 0, &jerr);
    cr_assert_not_null(j, "not JSON (%s): %s", jerr.text, out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "a")), "1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "truncated")), "1", "%s", out);
    json_decref(j);
}

Test(base_log, messages_below_the_level_are_not_written)
{
    static char out[256];
    struct capture c;
    hie_log_configure(HIE_LOG_WARN, HIE_LOG_KV);
    capture_begin(&c);
    hie_log_info("edge", "quiet", "%s", "");
    hie_log_debug("edge", "quieter", "%s", "");
    size_t n = capture_end(&c, out, sizeof(out));
    cr_assert_eq(n, 0, "got: %s", out);
}

Test(base_log, overlong_line_is_cut_and_still_ends_with_a_newline)
{
    static char big[3 * HIE_LOG_LINE_BYTES_MAX];
    static char out[8 * HIE_LOG_LINE_BYTES_MAX];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int format = HIE_LOG_KV; format <= HIE_LOG_JSON; format++) {
        struct capture c;
        hie_log_configure(HIE_LOG_INFO, (enum hie_log_format)format);
        capture_begin(&c);
        hie_log_info("edge", "long", " v=%s", big);
        size_t n = capture_end(&c, out, sizeof(out));
        cr_assert_gt(n, 0);
        cr_assert_leq(n, 2u * HIE_LOG_LINE_BYTES_MAX, "format=%d n=%zu", format, n);
        cr_assert_eq(out[n - 1], '\n', "format=%d", format);
        cr_assert_eq(strchr(out, '\n'), out + n - 1, "format=%d: one line only", format);
    }
}

/* Regression (was a bug, found by the unit tests): hie/base.h says logging "never formats more than HIE_LOG_LINE_BYTES_MAX per line" and
 * hie/limits.h says "longer lines are cut and end with \"...\"". log.c formats the caller's
 * pairs into a HIE_LOG_LINE_BYTES_MAX buffer, then the line into one twice that size: a long
 * line comes out at about HIE_LOG_LINE_BYTES_MAX plus the prefix (over the limit), silently cut
 * without the "..." marker, so an operator cannot tell a cut line from a complete one. */
Test(base_log, overlong_line_is_cut_to_the_limit_with_an_ellipsis)
{
    static char big[3 * HIE_LOG_LINE_BYTES_MAX];
    static char out[8 * HIE_LOG_LINE_BYTES_MAX];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct capture c;
    hie_log_configure(HIE_LOG_INFO, HIE_LOG_KV);
    capture_begin(&c);
    hie_log_info("edge", "long", " v=%s", big);
    size_t n = capture_end(&c, out, sizeof(out));
    cr_assert_leq(n, HIE_LOG_LINE_BYTES_MAX, "n=%zu", n);
    cr_assert_geq(n, 4);
    cr_assert_eq(memcmp(out + n - 4, "...\n", 4), 0, "a cut line ends with ...");
}
