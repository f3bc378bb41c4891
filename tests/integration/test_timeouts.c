/*
 * test_timeouts.c - handshake and idle time limits, and the optional TLS 1.2 mode.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static itest_node_t node;

static void
teardown(void)
{
    itest_node_cleanup(&node);
}

TestSuite(timeouts, .fini = teardown, .timeout = 60);

/* Returns ms until the node closes a TCP connection on which we never send anything. */
static long
silent_tcp_close_ms(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(node.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    uint64_t t0 = hie_time_mono_ns();
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 10000);
    char c;
    long ms = (long)((hie_time_mono_ns() - t0) / 1000000u);
    cr_assert_eq(r, 1, "node never closed a silent connection");
    cr_assert_leq(read(fd, &c, 1), 0);
    close(fd);
    return ms;
}

Test(timeouts, silent_connection_closed_at_handshake_timeout)
{
    itest_opts_t o = {.handshake_timeout_ms = 700};
    itest_node_init(&node, &o);
    itest_node_start(&node);
    long ms = silent_tcp_close_ms();
    cr_assert(ms >= 600 && ms < 3000, "closed after %ld ms, limit 700", ms);
    cr_assert(itest_log_wait(&node, "reason=timeout", 2000));
}

Test(timeouts, idle_session_closed_at_idle_timeout)
{
    itest_opts_t o = {.idle_timeout_ms = 800, .heartbeat_ms = 400};
    itest_node_init(&node, &o);
    itest_node_start(&node);
    itest_register(&node, "general-hospital", "hospital");
    SSL *ssl = itest_raw_connect(&node, "general-hospital");
    cr_assert_not_null(ssl);
    uint64_t t0 = hie_time_mono_ns();
    int n = itest_raw_read_frame(ssl, 5000, NULL, NULL);
    long ms = (long)((hie_time_mono_ns() - t0) / 1000000u);
    cr_assert_eq(n, 0, "expected a clean close, got %d", n);
    cr_assert(ms >= 700 && ms < 3000, "closed after %ld ms, limit 800", ms);
    itest_raw_close(ssl);
    /* a busy client is not idle */
    hie_client_t *c = itest_client(&node, "general-hospital");
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(itest_ping(c, NULL), 0, "ping %d", i);
        usleep(200000);
    }
    hie_client_destroy(&c);
}

Test(timeouts, tls12_mode_offers_only_iti19_gcm_suites)
{
    itest_opts_t o = {.tls12 = true};
    itest_node_init(&node, &o);
    itest_node_start(&node);
    itest_register(&node, "general-hospital", "hospital");
    char out[8192];
    int rc = itest_hie(&node, "general-hospital", out, sizeof(out), "--tls-max 1.2 whoami");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "tls=TLSv1.2") != NULL, "%s", out);
    cr_assert(strstr(out, "GCM") != NULL, "%s", out);
    /* CBC (the pre-ITI-19 baseline) is refused, and TLS 1.1 still is */
    rc = itest_sh(out, sizeof(out), "echo | timeout 10 openssl s_client -connect 127.0.0.1:%u "
        "-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA -CAfile '%s/ca/ca.crt' -cert "
        "'%s/certs/general-hospital.crt' -key '%s/certs/general-hospital.key'", node.port,
        node.pki, node.pki, node.pki);
    cr_assert_neq(rc, 0, "CBC suite accepted: %s", out);
    rc = itest_hie(&node, "general-hospital", out, sizeof(out), "--tls-max 1.1 whoami");
    cr_assert_neq(rc, 0, "%s", out);
    /* TLS 1.3 remains the default a client gets */
    rc = itest_hie(&node, "general-hospital", out, sizeof(out), "whoami");
    cr_assert(strstr(out, "tls=TLSv1.3") != NULL, "%s", out);
}

/* With an RSA node certificate (pki.sh issue --key rsa) TLS 1.2 negotiates each of the four
 * ITI-19 suites reference.md N2 lists: ECDHE-RSA and DHE-RSA with AES-GCM. The DHE ones
 * never could (no DH groups were set). */
Test(timeouts, tls12_negotiates_each_iti19_suite_with_an_rsa_certificate, .timeout = 120)
{
    itest_opts_t o = {.tls12 = true};
    itest_node_init(&node, &o);
    itest_node_own_pki(&node);
    char out[8192];
    int rc = itest_sh(out, sizeof(out), "cd '%s/certs' && bash '%s/deploy/pki.sh' issue '%s' "
        "--kind node --name node-1 --key rsa --out-name node-1-rsa && mv node-1-rsa.crt "
        "node-1.crt && mv node-1-rsa.key node-1.key", node.pki, HIE_SOURCE_DIR, node.pki);
    cr_assert_eq(rc, 0, "%s", out);
    itest_node_start(&node);
    itest_register(&node, "general-hospital", "hospital");
    static const char *const suites[] = {"ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384"};
    for (size_t i = 0; i < 4; i++) {
        rc = itest_sh(out, sizeof(out), "echo | timeout 10 openssl s_client -connect "
            "127.0.0.1:%u -tls1_2 -cipher %s -CAfile '%s/ca/ca.crt' -cert "
            "'%s/certs/general-hospital.crt' -key '%s/certs/general-hospital.key' 2>&1",
            node.port, suites[i], node.pki, node.pki, node.pki);
        char want[96];
        snprintf(want, sizeof(want), "Cipher is %s", suites[i]);
        cr_assert(rc == 0 && strstr(out, want) != NULL, "%s: %s", suites[i], out);
    }
    /* the member CLI negotiates one of them too (it offers the ITI-19 list only) */
    rc = itest_hie(&node, "general-hospital", out, sizeof(out), "--tls-max 1.2 whoami");
    cr_assert(rc == 0 && strstr(out, "tls=TLSv1.2") != NULL && strstr(out, "-RSA-") != NULL,
        "%s", out);
}
