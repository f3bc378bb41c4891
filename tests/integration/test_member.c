/*
 * test_member.c - the member edge over mutual TLS: who may connect, and what they see.
 * Real hie-node, real certificates (tests/integration/make-pki.sh), real hie CLI.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static itest_node_t node;

static void
start_default(void)
{
    itest_node_init(&node, NULL);
    itest_node_start(&node);
    itest_register(&node, "general-hospital", "hospital");
    itest_register(&node, "riverside-clinic", "clinic,lab");
    itest_register(&node, "suspended-clinic", "clinic");
    itest_register(&node, "revoked-clinic", "clinic");
    itest_register(&node, "expired-clinic", "clinic");
    itest_register(&node, "future-clinic", "clinic");
    itest_register(&node, "wrongeku-clinic", "clinic");
    itest_register(&node, "noeku-clinic", "clinic");
    char out[1024];
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "org suspend suspended-clinic"), 0, "%s",
        out);
}

static void
stop_default(void)
{
    itest_node_cleanup(&node);
}

TestSuite(member, .init = start_default, .fini = stop_default, .timeout = 60);

Test(member, whoami_returns_org_and_roles)
{
    char out[2048];
    int rc = itest_hie(&node, "riverside-clinic", out, sizeof(out), "whoami");
    cr_assert_eq(rc, 0, "hie whoami failed: %s", out);
    cr_assert(strstr(out, "org=riverside-clinic") != NULL, "%s", out);
    cr_assert(strstr(out, "roles=clinic,lab") != NULL, "%s", out);
    cr_assert(strstr(out, "node=node-1") != NULL, "%s", out);
    cr_assert(strstr(out, "TLSv1.3") != NULL, "%s", out);
    rc = itest_hie(&node, "general-hospital", out, sizeof(out), "--json whoami");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "\"org_id\":\"general-hospital\"") != NULL, "%s", out);
    cr_assert(strstr(out, "\"hospital\"") != NULL, "%s", out);
    rc = itest_hie(&node, "general-hospital", out, sizeof(out), "whoami --json");
    cr_assert_eq(rc, 0, "--json may follow the command too: %s", out);
    cr_assert(strstr(out, "\"org_id\":\"general-hospital\"") != NULL, "%s", out);
}

Test(member, ping_answers)
{
    char out[2048];
    int rc = itest_hie(&node, "general-hospital", out, sizeof(out), "ping --count 3 hello");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "node=node-1") != NULL, "%s", out);
    rc = itest_hie(&node, "general-hospital", out, sizeof(out), "ping --json");
    cr_assert_eq(rc, 0, "--json may follow the command too: %s", out);
    cr_assert(strstr(out, "\"node_id\":\"node-1\"") != NULL, "%s", out);
}

/* Each refused case: the CLI fails, and the node logs why. */
static void
expect_refused(const char *org, const char *extra, const char *log_needle)
{
    char out[2048];
    int rc = itest_hie(&node, org, out, sizeof(out), "%s whoami", extra);
    cr_assert_neq(rc, 0, "%s was not refused: %s", org ? org : "(no cert)", out);
    cr_assert(itest_log_wait(&node, log_needle, 3000), "node did not log '%s' for %s",
        log_needle, org ? org : "(no cert)");
}

Test(member, refused_without_client_certificate)
{
    expect_refused(NULL, "", "reason=no_certificate");
}

Test(member, refused_certificate_from_another_ca)
{
    char out[2048];
    int rc = itest_sh(out, sizeof(out), "'%s' --addr 127.0.0.1:%u --ca '%s/ca/ca.crt' "
        "--cert '%s/other/certs/general-hospital.crt' --key '%s/other/certs/general-hospital.key'"
        " whoami", HIE_CLI_BIN, node.port, node.pki, node.pki, node.pki);
    cr_assert_neq(rc, 0, "rogue CA accepted: %s", out);
    cr_assert(itest_log_wait(&node, "reason=unknown_ca", 3000));
}

Test(member, refused_expired_certificate)
{
    expect_refused("expired-clinic", "", "reason=expired");
}

Test(member, refused_not_yet_valid_certificate)
{
    expect_refused("future-clinic", "", "reason=not_yet_valid");
}

Test(member, refused_revoked_certificate)
{
    expect_refused("revoked-clinic", "", "reason=revoked");
}

Test(member, refused_certificate_without_client_purpose)
{
    expect_refused("wrongeku-clinic", "", "reason=bad_purpose");
}

/* No extendedKeyUsage at all passed OpenSSL's client purpose (found by review). */
Test(member, refused_certificate_without_any_key_usage_purpose)
{
    expect_refused("noeku-clinic", "", "reason=bad_purpose");
}

Test(member, refused_unregistered_organization)
{
    char out[2048];
    int rc = itest_hie(&node, "unregistered-lab", out, sizeof(out), "whoami");
    cr_assert_eq(rc, 1, "expected an UNAUTHENTICATED error (exit 1): rc=%d %s", rc, out);
    cr_assert(strstr(out, "UNAUTHENTICATED") != NULL, "%s", out);
    cr_assert(itest_log_wait(&node, "org=unregistered-lab", 3000));
    cr_assert(itest_log_contains(&node, "reason=unregistered"));
}

Test(member, refused_suspended_organization_then_reinstated)
{
    char out[2048];
    int rc = itest_hie(&node, "suspended-clinic", out, sizeof(out), "whoami");
    cr_assert_eq(rc, 1, "rc=%d %s", rc, out);
    cr_assert(strstr(out, "UNAUTHENTICATED") != NULL, "%s", out);
    cr_assert(strstr(out, "suspended") != NULL, "%s", out);
    cr_assert(itest_log_wait(&node, "reason=suspended", 3000));
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "org reinstate suspended-clinic"), 0);
    rc = itest_hie(&node, "suspended-clinic", out, sizeof(out), "whoami");
    cr_assert_eq(rc, 0, "%s", out);
}

/* An operator's command under the id of another kind of command is refused, not taken for
 * a repeat: a suspend sent with a register's id was answered with the register's OK, and
 * nothing was suspended. */
Test(member, an_operator_command_under_another_commands_id_is_refused)
{
    char out[2048];
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "--id same-id org register id-clinic "
        "--name 'Id Clinic' --roles clinic"), 0, "%s", out);
    int rc = itest_ctl(&node, out, sizeof(out), "--id same-id org suspend id-clinic");
    cr_assert_eq(rc, 1, "rc=%d %s", rc, out);
    cr_assert(strstr(out, "BAD_REQUEST") != NULL, "%s", out);
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "org list"), 0, "%s", out);
    cr_assert(strstr(out, "org=id-clinic name=\"Id Clinic\" status=active") != NULL,
        "id-clinic was suspended: %s", out);
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "--id same-id org register id-clinic "
        "--name 'Id Clinic' --roles clinic"), 0, "the same kind again: a repeat: %s", out);
}

/* Node text with a bidirectional override (U+202E) or a C1 control reaches the member's
 * terminal escaped: it could reverse or rewrite what an operator reads. */
Test(member, node_text_with_bidi_or_c1_characters_is_escaped)
{
    char out[2048];
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "org register st-mary-hospital --name "
        "'St Mary \xe2\x80\xae lanoisivorp \xc2\x9b" "[2J' --roles hospital"), 0, "%s", out);
    int rc = itest_hie(&node, "st-mary-hospital", out, sizeof(out), "whoami");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "\xe2\x80\xae") == NULL && strstr(out, "\xc2\x9b") == NULL,
        "raw: %s", out);
    cr_assert(strstr(out, "\\u202e") != NULL && strstr(out, "\\u009b") != NULL, "%s", out);
}

/* hiectl --timeout takes 1..3600000 ms: a negative value (an endless wait with atoi) or
 * garbage (no wait at all) is refused with a clear message before anything is sent. */
Test(member, hiectl_refuses_a_timeout_out_of_range)
{
    char out[2048];
    static const char *const bad[] = {"-5", "0", "abc", "3600001"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = itest_ctl(&node, out, sizeof(out), "--timeout %s status", bad[i]);
        cr_assert_eq(rc, 2, "%s: rc=%d %s", bad[i], rc, out);
        cr_assert(strstr(out, "--timeout takes milliseconds") != NULL, "%s", out);
    }
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "--timeout 5000 status"), 0, "%s", out);
}

/* The member checks the name it dialled against the node's certificate by default (here the
 * IP SAN 127.0.0.1); another expected name fails the handshake; '*' checks the chain only.
 * Without a name the client took any certificate of the HIE's CA. */
Test(member, the_client_checks_the_nodes_name)
{
    char out[2048];
    int rc = itest_hie(&node, "general-hospital", out, sizeof(out), "whoami");
    cr_assert_eq(rc, 0, "the dialled address is in the certificate: %s", out);
    rc = itest_hie(&node, "general-hospital", out, sizeof(out), "--server-name other-node "
        "whoami");
    cr_assert_neq(rc, 0, "a certificate that does not name other-node: %s", out);
    rc = itest_hie(&node, "general-hospital", out, sizeof(out), "--server-name '*' whoami");
    cr_assert_eq(rc, 0, "the chain only: %s", out);
}

Test(member, suspension_cuts_an_open_session)
{
    hie_client_t *c = itest_client(&node, "general-hospital");
    cr_assert_eq(itest_ping(c, NULL), 0);
    char out[1024];
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "org suspend general-hospital"), 0);
    int rc = itest_ping(c, NULL);
    cr_assert_eq(rc, -1000 - (int)HIE__V1__ERROR_CODE__ERROR_UNAUTHENTICATED, "rc=%d", rc);
    hie_client_destroy(&c);
}

Test(member, refused_tls_1_1)
{
    expect_refused("general-hospital", "--tls-max 1.1", "reason=protocol_version");
}

Test(member, refused_tls_1_2_unless_enabled)
{
    expect_refused("general-hospital", "--tls-max 1.2", "reason=protocol_version");
}

Test(member, openssl_s_client_handshake_with_and_without_certificate)
{
    char out[8192];
    int rc = itest_sh(out, sizeof(out), "echo | timeout 10 openssl s_client -connect "
        "127.0.0.1:%u -CAfile '%s/ca/ca.crt' -cert '%s/certs/general-hospital.crt' -key "
        "'%s/certs/general-hospital.key' -verify_return_error -brief", node.port, node.pki,
        node.pki, node.pki);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "CONNECTION ESTABLISHED") != NULL, "%s", out);
    cr_assert(strstr(out, "TLSv1.3") != NULL, "%s", out);
    /* TLS 1.3: the server's refusal arrives after the client's handshake; keep stdin open a
     * moment so s_client reads it */
    rc = itest_sh(out, sizeof(out), "sleep 1 | timeout 10 openssl s_client -connect "
        "127.0.0.1:%u -CAfile '%s/ca/ca.crt' -brief", node.port, node.pki);
    cr_assert_neq(rc, 0, "%s", out);
    cr_assert(strstr(out, "alert certificate required") != NULL, "%s", out);
    cr_assert(itest_log_wait(&node, "reason=no_certificate", 3000));
}

Test(member, metrics_and_health_endpoint)
{
    char out[65536];
    expect_refused("revoked-clinic", "", "reason=revoked");
    cr_assert_eq(itest_hie(&node, "general-hospital", out, sizeof(out), "ping"), 0);
    cr_assert_eq(itest_http_get(&node, "/healthz", out, sizeof(out)), 200);
    cr_assert_eq(itest_http_get(&node, "/metrics", out, sizeof(out)), 200);
    cr_assert(strstr(out, "hie_tls_handshakes_total{node=\"node-1\",result=\"failed\","
        "reason=\"revoked\"} 1") != NULL, "%s", out);
    cr_assert(strstr(out, "hie_requests_total{node=\"node-1\",type=\"ping\",outcome=\"ok\"} 1")
        != NULL, "%s", out);
    cr_assert(strstr(out, "hie_request_duration_seconds_bucket{node=\"node-1\",type=\"ping\","
        "le=\"+Inf\"} 1") != NULL, "%s", out);
    cr_assert_eq(itest_http_get(&node, "/nope", out, sizeof(out)), 404);
}

Test(member, log_lines_carry_org_id_outcome_and_latency_but_no_payload)
{
    char out[2048];
    cr_assert_eq(itest_hie(&node, "general-hospital", out, sizeof(out),
        "--id trace-me-1 ping SECRET-PAYLOAD-123"), 0, "%s", out);
    cr_assert(itest_log_wait(&node, "id=trace-me-1", 3000));
    cr_assert(itest_log_contains(&node, "org=general-hospital id=trace-me-1 type=ping "
        "outcome=OK"));
    cr_assert(itest_log_contains(&node, "latency_us="));
    cr_assert_not(itest_log_contains(&node, "SECRET-PAYLOAD-123"));
}

/* The client library rereads a CRL file replaced since it was loaded before its next
 * connection: the node's certificate revoked after the client started is refused at the
 * reconnect (it loaded the CRL once, and a long-running member accepted the revoked node, or
 * failed every handshake past its first CRL's next update). */
Test(member, a_client_reconnecting_rereads_a_replaced_crl, .timeout = 120)
{
    itest_node_t n;
    char out[4096], ca[ITEST_PATH + 16], cert[ITEST_PATH + 64], key[ITEST_PATH + 64];
    char crl[ITEST_PATH + 16];
    itest_node_init(&n, NULL);
    itest_node_own_pki(&n);
    itest_node_start(&n);
    itest_register(&n, "general-hospital", "hospital");
    snprintf(ca, sizeof(ca), "%s/ca/ca.crt", n.pki);
    snprintf(cert, sizeof(cert), "%s/certs/general-hospital.crt", n.pki);
    snprintf(key, sizeof(key), "%s/certs/general-hospital.key", n.pki);
    snprintf(crl, sizeof(crl), "%s/ca/crl.pem", n.pki);
    hie_client_config_t cfg = {.host = "127.0.0.1", .port = n.port, .ca_file = ca,
        .cert_file = cert, .key_file = key, .server_name = "node-1",
        .connect_timeout_ms = 5000, .crl_file = crl};
    hie_client_t *c = NULL;
    cr_assert_eq(hie_client_create(&c, &cfg), 0);
    cr_assert_eq(itest_ping(c, "p1"), 0, "%s", hie_client_last_error(c));
    int rc = itest_sh(out, sizeof(out), "bash '%s/deploy/pki.sh' revoke '%s' node-1 2>&1",
        HIE_SOURCE_DIR, n.pki);
    cr_assert_eq(rc, 0, "%s", out);
    hie_client_close(c);
    cr_assert_neq(itest_ping(c, "p2"), 0, "the revoked node was accepted");
    cr_assert(strstr(hie_client_last_error(c), "revoked") != NULL, "%s",
        hie_client_last_error(c));
    hie_client_destroy(&c);
    itest_node_cleanup(&n);
}
