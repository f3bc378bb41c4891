/*
 * test_metrics.c - unit tests for node/src/metrics.c: latency observations land in the right
 * histogram buckets, counters render as Prometheus text lines, the text ends with a newline,
 * and rendering survives allocation failures without leaking.
 */
#include "node_int.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

static node_metrics_t m;
static char *text;
static size_t text_len;

static void
setup(void)
{
    memset(&m, 0, sizeof(m));
    text = NULL;
    text_len = 0;
}

static void
teardown(void)
{
    if (text != NULL) {
        hie_mem_free(text, text_len + 1);
        text = NULL;
    }
    cr_expect_eq(hie_mem_live_bytes(), 0, "rendering leaked");
}

TestSuite(node_metrics, .init = setup, .fini = teardown);

static void
render(void)
{
    if (text != NULL) {
        hie_mem_free(text, text_len + 1);
        text = NULL;
    }
    int rc = hie_node__metrics_render(&m, "node-1", &text, &text_len);
    cr_assert_eq(rc, 0, "render: %s", hie_strerror_name(rc));
    cr_assert_not_null(text);
}

/* Asserts that the rendered text holds line as a whole line. */
static void
has_line(const char *line)
{
    size_t n = strlen(line);
    for (const char *p = strstr(text, line); p != NULL; p = strstr(p + 1, line)) {
        bool starts = p == text || p[-1] == '\n';
        if (starts && p[n] == '\n') {
            return;
        }
    }
    cr_assert_fail("missing line: %s", line);
}

static void
has_bucket(const char *type, const char *le, unsigned count)
{
    char line[200];
    snprintf(line, sizeof(line),
        "hie_request_duration_seconds_bucket{node=\"node-1\",type=\"%s\",le=\"%s\"} %u", type, le,
        count);
    has_line(line);
}

Test(node_metrics, observations_fill_the_right_buckets)
{
    hie_node__metrics_observe(&m, REQ_KIND_PING, OUT_OK, 50);
    hie_node__metrics_observe(&m, REQ_KIND_PING, OUT_OK, 100); /* a bound is inclusive (le) */
    hie_node__metrics_observe(&m, REQ_KIND_PING, OUT_OK, 101);
    hie_node__metrics_observe(&m, REQ_KIND_WHOAMI, OUT_BAD_REQUEST, 3000);
    hie_node__metrics_observe(&m, REQ_KIND_OTHER, OUT_INTERNAL, 10000000); /* 10 s: +Inf */
    render();

    has_line("hie_requests_total{node=\"node-1\",type=\"ping\",outcome=\"ok\"} 3");
    has_line("hie_requests_total{node=\"node-1\",type=\"ping\",outcome=\"bad_request\"} 0");
    has_line("hie_requests_total{node=\"node-1\",type=\"whoami\",outcome=\"bad_request\"} 1");
    has_line("hie_requests_total{node=\"node-1\",type=\"other\",outcome=\"internal\"} 1");

    /* cumulative buckets: le is in seconds */
    has_bucket("ping", "0.0001", 2);
    has_bucket("ping", "0.00025", 3);
    has_bucket("ping", "5", 3);
    has_bucket("ping", "+Inf", 3);
    has_line("hie_request_duration_seconds_sum{node=\"node-1\",type=\"ping\"} 0.000251");
    has_line("hie_request_duration_seconds_count{node=\"node-1\",type=\"ping\"} 3");

    has_bucket("whoami", "0.0025", 0);
    has_bucket("whoami", "0.005", 1);
    has_bucket("whoami", "+Inf", 1);
    has_line("hie_request_duration_seconds_sum{node=\"node-1\",type=\"whoami\"} 0.003000");

    has_bucket("other", "5", 0);
    has_bucket("other", "+Inf", 1);
    has_line("hie_request_duration_seconds_sum{node=\"node-1\",type=\"other\"} 10.000000");
    has_line("hie_request_duration_seconds_count{node=\"node-1\",type=\"other\"} 1");
}

Test(node_metrics, every_bucket_bound_is_rendered_in_order)
{
    render();
    static const char *const bounds[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "5", "+Inf"};
    const char *at = text;
    for (size_t i = 0; i < HIE_ARRAY_LEN(bounds); i++) {
        char line[160];
        snprintf(line, sizeof(line),
            "hie_request_duration_seconds_bucket{node=\"node-1\",type=\"ping\",le=\"%s\"} 0\n",
            bounds[i]);
        const char *p = strstr(at, line);
        cr_assert_not_null(p, "bucket le=%s missing or out of order", bounds[i]);
        at = p + 1;
    }
}

Test(node_metrics, counters_and_gauges_are_rendered)
{
    atomic_store(&m.connections_open, 7);
    atomic_store(&m.connections_total, 1234);
    atomic_store(&m.connections_refused_limit, 2);
    atomic_store(&m.handshakes_ok, 99);
    atomic_store(&m.handshakes_failed[HS_REVOKED], 3);
    atomic_store(&m.auth_refused_unregistered, 4);
    atomic_store(&m.auth_refused_suspended, 5);
    atomic_store(&m.frames_rejected, 6);
    atomic_store(&m.commands_applied, 500);
    atomic_store(&m.log_batches, 4);
    atomic_store(&m.applied_index, 500);
    atomic_store(&m.tls_reloads_ok, 1);
    atomic_store(&m.ready, 1);
    render();
    has_line("# TYPE hie_connections_open gauge");
    has_line("hie_connections_open{node=\"node-1\"} 7");
    has_line("# TYPE hie_connections_total counter");
    has_line("hie_connections_total{node=\"node-1\"} 1234");
    has_line("hie_connections_refused_total{node=\"node-1\",reason=\"limit\"} 2");
    has_line("hie_tls_handshakes_total{node=\"node-1\",result=\"ok\",reason=\"\"} 99");
    has_line("hie_tls_handshakes_total{node=\"node-1\",result=\"failed\",reason=\"revoked\"} 3");
    has_line("hie_tls_handshakes_total{node=\"node-1\",result=\"failed\",reason=\"timeout\"} 0");
    has_line("hie_auth_refused_total{node=\"node-1\",reason=\"unregistered\"} 4");
    has_line("hie_auth_refused_total{node=\"node-1\",reason=\"suspended\"} 5");
    has_line("hie_frames_rejected_total{node=\"node-1\"} 6");
    has_line("hie_commands_applied_total{node=\"node-1\"} 500");
    has_line("hie_log_batches_total{node=\"node-1\"} 4");
    has_line("hie_applied_index{node=\"node-1\"} 500");
    has_line("hie_tls_reloads_total{node=\"node-1\",result=\"ok\"} 1");
    has_line("hie_tls_reloads_total{node=\"node-1\",result=\"failed\"} 0");
    has_line("# TYPE hie_request_duration_seconds histogram");
    has_line("hie_up{node=\"node-1\"} 1");
}

Test(node_metrics, text_is_nul_terminated_and_ends_with_a_newline)
{
    hie_node__metrics_observe(&m, REQ_KIND_PING, OUT_OK, 1);
    render();
    cr_assert_gt(text_len, 0);
    cr_assert_eq(strlen(text), text_len, "out_len is the text length, NUL not included");
    cr_assert_eq(text[text_len - 1], '\n');
    cr_assert_neq(text[text_len - 2], '\n', "no empty line at the end");
    /* every line is a comment or "name{labels} value" */
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        cr_assert_not_null(end);
        cr_assert_gt(end - line, 0, "empty line");
        if (line[0] != '#') {
            cr_assert_eq(strncmp(line, "hie_", 4), 0, "line: %.*s", (int)(end - line), line);
            const char *brace = memchr(line, '}', (size_t)(end - line));
            cr_assert_not_null(brace, "line: %.*s", (int)(end - line), line);
            cr_assert_eq(brace[1], ' ');
        }
        line = end + 1;
    }
}

Test(node_metrics, every_help_has_a_type)
{
    render();
    size_t help = 0, type = 0;
    for (const char *p = text; (p = strstr(p, "# HELP ")) != NULL; p++) {
        help++;
    }
    for (const char *p = text; (p = strstr(p, "# TYPE ")) != NULL; p++) {
        type++;
    }
    cr_assert_gt(help, 10);
    cr_assert_eq(help, type);
}

Test(node_metrics, outcome_from_code_covers_every_wire_code)
{
    cr_assert_eq(hie_node__outcome_from_code(HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED), OUT_OK);
    cr_assert_eq(hie_node__outcome_from_code(HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST),
        OUT_BAD_REQUEST);
    cr_assert_eq(hie_node__outcome_from_code(HIE__V1__ERROR_CODE__ERROR_UNAUTHENTICATED),
        OUT_UNAUTHENTICATED);
    cr_assert_eq(hie_node__outcome_from_code(HIE__V1__ERROR_CODE__ERROR_FORBIDDEN),
        OUT_FORBIDDEN);
    cr_assert_eq(hie_node__outcome_from_code(HIE__V1__ERROR_CODE__ERROR_CONSENT_DENIED),
        OUT_FORBIDDEN);
    cr_assert_eq(hie_node__outcome_from_code(HIE__V1__ERROR_CODE__ERROR_NOT_FOUND),
        OUT_NOT_FOUND);
    cr_assert_eq(hie_node__outcome_from_code(HIE__V1__ERROR_CODE__ERROR_OVERLOADED),
        OUT_OVERLOADED);
    cr_assert_eq(hie_node__outcome_from_code(HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE),
        OUT_UNAVAILABLE);
    cr_assert_eq(hie_node__outcome_from_code(HIE__V1__ERROR_CODE__ERROR_INTERNAL),
        OUT_INTERNAL);
    cr_assert_eq(hie_node__outcome_from_code((Hie__V1__ErrorCode)42), OUT_INTERNAL);
}

Test(node_metrics, render_survives_every_allocation_failure)
{
    for (uint64_t fail_at = 1; fail_at < 50; fail_at++) {
        char *out = (char *)(uintptr_t)1;
        size_t out_len = 99;
        hie_mem_fail_after(fail_at);
        int rc = hie_node__metrics_render(&m, "node-1", &out, &out_len);
        hie_mem_fail_after(0);
        if (rc == 0) {
            cr_assert_gt(fail_at, 1);
            hie_mem_free(out, out_len + 1);
            cr_assert_eq(hie_mem_live_bytes(), 0);
            return;
        }
        cr_assert_eq(rc, HIE_ENOMEM, "fail_at=%lu", (unsigned long)fail_at);
        cr_assert_null(out);
        cr_assert_eq(out_len, 0);
        cr_assert_eq(hie_mem_live_bytes(), 0, "fail_at=%lu leaked", (unsigned long)fail_at);
    }
    cr_assert_fail("render never succeeded");
}

Test(node_metrics, observe_with_a_bad_kind_aborts, .signal = SIGABRT)
{
    hie_node__metrics_observe(&m, REQ_KIND_COUNT, OUT_OK, 1);
}

Test(node_metrics, observe_with_a_bad_outcome_aborts, .signal = SIGABRT)
{
    hie_node__metrics_observe(&m, REQ_KIND_PING, OUT_COUNT, 1);
}
