/*
 * test_durability.c - idempotency, kill -9, log replay, graceful stop, reloads, operator errors.
 */
#include "harness.h"
#include "node_int.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static itest_node_t node;

static void
setup(void)
{
    itest_node_init(&node, NULL);
    itest_node_start(&node);
}

static void
teardown(void)
{
    itest_node_cleanup(&node);
}

TestSuite(durability, .init = setup, .fini = teardown, .timeout = 120);

static unsigned long
status_field(const char *field)
{
    char out[2048], key[64];
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "status"), 0, "%s", out);
    snprintf(key, sizeof(key), "%s=", field);
    char *p = strstr(out, key);
    cr_assert_not_null(p, "%s", out);
    return strtoul(p + strlen(key), NULL, 10);
}

Test(durability, same_command_id_twice_same_result_applied_once)
{
    char a[2048], b[2048];
    int rc = itest_ctl(&node, a, sizeof(a),
        "--id reg-once org register general-hospital --name 'General' --roles hospital");
    cr_assert_eq(rc, 0, "%s", a);
    unsigned long applied = status_field("applied_index");
    rc = itest_ctl(&node, b, sizeof(b),
        "--id reg-once org register general-hospital --name 'General' --roles hospital");
    cr_assert_eq(rc, 0, "the repeat must return the original success: %s", b);
    cr_assert_str_eq(a, b, "repeat answered differently");
    cr_assert_eq(status_field("applied_index"), applied, "the repeat was applied again");
    /* a new id for the same registration is a new command, and the registry refuses it */
    rc = itest_ctl(&node, b, sizeof(b),
        "--id reg-twice org register general-hospital --name 'General' --roles hospital");
    cr_assert_eq(rc, 1, "%s", b);
    cr_assert(strstr(b, "already registered") != NULL, "%s", b);
    cr_assert(strstr(a, "version=1") != NULL, "%s", a);
    /* the name query replies and audit records give the HIE's own repository is not an
     * organization's: an org registered as it could not be told from it */
    rc = itest_ctl(&node, b, sizeof(b), "org register repository --roles hospital");
    cr_assert_neq(rc, 0, "%s", b);
    cr_assert(strstr(b, "reserved") != NULL, "%s", b);
}

Test(durability, same_envelope_id_twice_same_reply)
{
    itest_register(&node, "general-hospital", "hospital");
    char a[2048], b[2048];
    int rc = itest_hie(&node, "general-hospital", a, sizeof(a), "--json --id same-1 ping one");
    cr_assert_eq(rc, 0, "%s", a);
    rc = itest_hie(&node, "general-hospital", b, sizeof(b), "--json --id same-1 ping one");
    cr_assert_eq(rc, 0, "%s", b);
    cr_assert(itest_log_wait(&node, "id=same-1 type=ping outcome=OK repeat=1", 2000),
        "the second ping was not served as a repeat");
    /* another organization may use the same id: it is its own key space */
    itest_register(&node, "riverside-clinic", "clinic");
    rc = itest_hie(&node, "riverside-clinic", b, sizeof(b), "--id same-1 ping");
    cr_assert_eq(rc, 0, "%s", b);
    cr_assert(itest_log_wait(&node, "org=riverside-clinic id=same-1 type=ping outcome=OK "
        "repeat=0", 2000));
}

Test(durability, kill_9_right_after_ack_loses_nothing)
{
    for (int round = 0; round < 10; round++) {
        char org[64], out[2048];
        snprintf(org, sizeof(org), "member-%02d", round);
        int rc = itest_ctl(&node, out, sizeof(out), "org register %s --roles clinic", org);
        cr_assert_eq(rc, 0, "%s", out);
        /* acknowledged: kill -9 at once, before the node can do anything else */
        cr_assert_eq(itest_node_stop(&node, SIGKILL), 128 + SIGKILL);
        itest_node_start(&node);
        for (int k = 0; k <= round; k++) {
            snprintf(org, sizeof(org), "member-%02d", k);
            rc = itest_ctl(&node, out, sizeof(out), "org show %s", org);
            cr_assert_eq(rc, 0, "round %d: %s lost after kill -9: %s", round, org, out);
        }
    }
    cr_assert_eq(status_field("applied_index"), 10);
}

Test(durability, log_replay_on_fresh_directory_gives_same_contents)
{
    char out[65536];
    for (int i = 0; i < 25; i++) {
        int rc = itest_ctl(&node, out, sizeof(out), "org register org-%02d --roles %s", i,
            i % 3 ? "clinic" : "hospital,lab");
        cr_assert_eq(rc, 0, "%s", out);
    }
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "org suspend org-03"), 0);
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "org roles org-04 --roles payer"), 0);
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "--id dup org reinstate org-03"), 0);
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "--id dup org reinstate org-03"), 0);
    cr_assert_eq(itest_node_stop(&node, SIGTERM), 0);
    /* a second data directory with only the log: the node replays it at start */
    char first_state[ITEST_PATH + 16];
    snprintf(first_state, sizeof(first_state), "%s/state", node.data_dir);
    char fresh[ITEST_PATH];
    snprintf(fresh, sizeof(fresh), "%s/fresh", node.root);
    int rc = itest_sh(out, sizeof(out), "mkdir -m 700 '%s' && cp -a '%s/log' '%s/log'", fresh,
        node.data_dir, fresh);
    cr_assert_eq(rc, 0, "%s", out);
    snprintf(node.data_dir, sizeof(node.data_dir), "%s", fresh);
    itest_node_write_config(&node);
    itest_node_start(&node);
    cr_assert(itest_log_contains(&node, "replay_ms="), "no replay line");
    /* 25 registrations + suspend + roles + one reinstate (its repeat was answered from the
     * dedup table without a new log entry) */
    cr_assert(itest_log_contains(&node, "applied_index=28 log_index=28"), "replay did not reach 28");
    cr_assert_eq(itest_node_stop(&node, SIGTERM), 0);
    rc = itest_sh(out, sizeof(out), "cd '%s' && mdb_dump -a '%s' > a.dump && "
        "mdb_dump -a '%s/state' > b.dump && cmp a.dump b.dump && wc -l < a.dump", node.root,
        first_state, fresh);
    cr_assert_eq(rc, 0, "state rebuilt from the log differs:\n%s", out);
    cr_assert_gt(atoi(out), 50, "dump suspiciously small: %s", out);
}

Test(durability, sigterm_exits_cleanly_and_in_flight_requests_finish)
{
    itest_register(&node, "general-hospital", "hospital");
    hie_client_t *c = itest_client(&node, "general-hospital");
    cr_assert_eq(itest_ping(c, NULL), 0);
    int rc = itest_node_stop(&node, SIGTERM);
    cr_assert_eq(rc, 0, "hie-node exited %d on SIGTERM", rc);
    cr_assert(itest_log_contains(&node, "msg=\"drained\""));
    cr_assert(itest_log_contains(&node, "msg=\"node stopped\""));
    cr_assert_not(itest_log_contains(&node, "LeakSanitizer"), "leaks reported at exit");
    cr_assert_not(itest_log_contains(&node, "AddressSanitizer"), "ASan error at exit");
    hie_client_destroy(&c);
}

Test(durability, crl_reload_on_sighup_and_admin_command)
{
    itest_node_stop(&node, SIGTERM);
    itest_node_own_pki(&node);
    itest_node_start(&node);
    itest_register(&node, "riverside-clinic", "clinic");
    itest_register(&node, "st-mary-hospital", "hospital");
    char out[4096];
    cr_assert_eq(itest_hie(&node, "riverside-clinic", out, sizeof(out), "whoami"), 0, "%s", out);
    hie_client_t *open_session = itest_client(&node, "riverside-clinic");
    cr_assert_eq(itest_ping(open_session, NULL), 0);
    /* revoke, publish the CRL, SIGHUP: the next connection is refused, no restart */
    int rc = itest_sh(out, sizeof(out), "bash %s/deploy/pki.sh revoke '%s' riverside-clinic",
        HIE_SOURCE_DIR, node.pki);
    cr_assert_eq(rc, 0, "%s", out);
    kill(node.pid, SIGHUP);
    cr_assert(itest_log_wait(&node, "source=sighup", 3000));
    cr_assert_neq(itest_hie(&node, "riverside-clinic", out, sizeof(out), "whoami"), 0,
        "revoked certificate still accepted after SIGHUP: %s", out);
    cr_assert(itest_log_wait(&node, "reason=revoked", 3000));
    /* and the session that stayed open across the reload was cut */
    cr_assert(itest_log_contains(&node, "session cut after reload"));
    cr_assert_neq(itest_ping(open_session, NULL), 0, "revoked member's open session still served");
    hie_client_destroy(&open_session);
    /* same through hiectl reload; the first revoke fails to write the CRL (its openssl
     * fails there): the rerun writes it instead of stopping at "already revoked" */
    rc = itest_sh(out, sizeof(out), "printf '#!/bin/sh\\ncase \"$*\" in *-gencrl*) exit 1;; "
        "esac\\nexec openssl \"$@\"\\n' > '%s/failcrl' && chmod +x '%s/failcrl' && "
        "OPENSSL='%s/failcrl' bash %s/deploy/pki.sh revoke '%s' st-mary-hospital",
        node.root, node.root, node.root, HIE_SOURCE_DIR, node.pki);
    cr_assert_neq(rc, 0, "the CRL was written: %s", out);
    rc = itest_sh(out, sizeof(out), "bash %s/deploy/pki.sh revoke '%s' st-mary-hospital",
        HIE_SOURCE_DIR, node.pki);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "crl written again") != NULL, "%s", out);
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "reload"), 0, "%s", out);
    cr_assert_neq(itest_hie(&node, "st-mary-hospital", out, sizeof(out), "whoami"), 0);
    cr_assert(itest_node_alive(&node));
    /* a broken CRL is refused and the node keeps the last good one */
    rc = itest_sh(out, sizeof(out), "echo garbage > '%s/ca/crl.pem'", node.pki);
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "reload"), 1, "%s", out);
    cr_assert(strstr(out, "crl") != NULL, "%s", out);
    itest_register(&node, "general-hospital", "hospital");
    cr_assert_eq(itest_hie(&node, "general-hospital", out, sizeof(out), "whoami"), 0, "%s", out);
}

/* A Ping on a raw session: 0 when a Pong comes back within 3 s. */
static int
raw_ping(SSL *ssl)
{
    hie_envelope_t env;
    Hie__V1__Ping ping;
    hie__v1__envelope__init(&env);
    hie__v1__ping__init(&ping);
    env.id = "raw-ping";
    env.body_case = HIE__V1__ENVELOPE__BODY_PING;
    env.ping = &ping;
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(hie_proto_frame_encode(&env, 1 << 20, &buf, &len), 0);
    int w = SSL_write(ssl, buf, (int)len);
    hie_mem_free(buf, len);
    if (w != (int)len) {
        return -1;
    }
    hie_arena_t *arena = NULL;
    cr_assert_eq(hie_arena_create(&arena, 1 << 20), 0);
    hie_envelope_t *r = NULL;
    int n = itest_raw_read_frame(ssl, 3000, arena, &r);
    int rc = n > 0 && r->body_case == HIE__V1__ENVELOPE__BODY_PONG ? 0 : -1;
    hie_arena_destroy(&arena);
    return rc;
}

/* A handshake under way across a reload is checked against the new CRL when it completes: it
 * was verified with the context of its accept only, so a revoked member holding its handshake
 * open across the CRL's publication was served (found by review). */
Test(durability, a_handshake_across_a_reload_meets_the_new_crl)
{
    itest_node_stop(&node, SIGTERM);
    itest_node_own_pki(&node);
    itest_node_start(&node);
    itest_register(&node, "riverside-clinic", "clinic");
    char out[4096];
    SSL *ssl = itest_raw_connect_hello(&node, "riverside-clinic");
    int rc = itest_sh(out, sizeof(out), "bash %s/deploy/pki.sh revoke '%s' riverside-clinic",
        HIE_SOURCE_DIR, node.pki);
    cr_assert_eq(rc, 0, "%s", out);
    kill(node.pid, SIGHUP);
    cr_assert(itest_log_wait(&node, "source=sighup", 3000));
    bool done = itest_raw_connect_finish(ssl); /* TLS 1.3: the client finishes first */
    if (done) {
        cr_assert_neq(raw_ping(ssl), 0, "the revoked member was served");
        itest_raw_close(ssl);
    }
    cr_assert(itest_log_wait(&node, "the handshake began before a reload", 3000),
        "not refused at the end of its handshake");
    cr_assert(itest_node_alive(&node));
}

/* The node again on a PKI of its own (a test that revokes or rewrites the CRL), checking
 * the CRL file every crl_ms. */
static void
restart_own_pki(uint32_t crl_ms)
{
    itest_node_stop(&node, SIGTERM);
    itest_node_own_pki(&node);
    node.opts.crl_check_interval_ms = crl_ms;
    itest_node_write_config(&node);
    itest_node_start(&node);
}

/* A member given the CA's CRL (hie --crl) refuses a node whose certificate was revoked (a
 * stolen node key); without it the member cannot tell, as before. */
Test(durability, a_member_with_the_crl_refuses_a_revoked_node_certificate)
{
    restart_own_pki(0);
    itest_register(&node, "general-hospital", "hospital");
    char out[4096];
    int rc = itest_hie(&node, "general-hospital", out, sizeof(out), "--crl '%s/ca/crl.pem' "
        "whoami", node.pki);
    cr_assert_eq(rc, 0, "not revoked yet: %s", out);
    rc = itest_sh(out, sizeof(out), "bash %s/deploy/pki.sh revoke '%s' node-1", HIE_SOURCE_DIR,
        node.pki);
    cr_assert_eq(rc, 0, "%s", out);
    rc = itest_hie(&node, "general-hospital", out, sizeof(out), "--crl '%s/ca/crl.pem' whoami",
        node.pki);
    cr_assert_neq(rc, 0, "a revoked node certificate accepted: %s", out);
    cr_assert(strstr(out, "revoked") != NULL, "%s", out);
    rc = itest_hie(&node, "general-hospital", out, sizeof(out), "whoami");
    cr_assert_eq(rc, 0, "without the CRL: %s", out);
}

/* reference.md S3: a CRL the CA publishes reaches open sessions with no reload by the
 * operator, within tls.crl_check_interval_ms (300 ms here). */
Test(durability, published_crl_cuts_an_open_session_without_a_reload)
{
    restart_own_pki(300);
    itest_register(&node, "riverside-clinic", "clinic");
    hie_client_t *open_session = itest_client(&node, "riverside-clinic");
    cr_assert_eq(itest_ping(open_session, NULL), 0);
    char out[4096];
    uint64_t t0 = hie_time_mono_ns();
    int rc = itest_sh(out, sizeof(out), "bash %s/deploy/pki.sh revoke '%s' riverside-clinic",
        HIE_SOURCE_DIR, node.pki);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(itest_log_wait(&node, "source=crl-file", 3000), "the new CRL was not loaded");
    cr_assert(itest_log_wait(&node, "session cut after reload", 3000));
    cr_log_info("CRL published -> session cut in %.2f s",
        (double)(hie_time_mono_ns() - t0) / 1e9);
    cr_assert_neq(itest_ping(open_session, NULL), 0, "revoked member's open session served");
    hie_client_destroy(&open_session);
}

/* A session must not outlive its certificate: TLS checks the validity period once, at the
 * handshake, and a member may stay connected for days. */
Test(durability, expired_certificate_cuts_an_open_session)
{
    itest_node_stop(&node, SIGTERM);
    itest_node_own_pki(&node);
    itest_node_start(&node);
    char end[32], out[4096];
    time_t t = time(NULL) + 3;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(end, sizeof(end), "%Y%m%d%H%M%SZ", &tm);
    int rc = itest_sh(out, sizeof(out), "bash %s/deploy/pki.sh issue '%s' --kind member "
        "--name short-lived-clinic --end %s", HIE_SOURCE_DIR, node.pki, end);
    cr_assert_eq(rc, 0, "%s", out);
    itest_register(&node, "short-lived-clinic", "clinic");
    itest_register(&node, "riverside-clinic", "clinic");
    hie_client_t *expiring = itest_client(&node, "short-lived-clinic");
    hie_client_t *valid = itest_client(&node, "riverside-clinic");
    cr_assert_eq(itest_ping(expiring, NULL), 0);
    cr_assert(itest_log_wait(&node, "session cut: certificate expired", 8000),
        "the session outlived its certificate");
    cr_assert(itest_log_contains(&node, "org=short-lived-clinic"));
    cr_assert_neq(itest_ping(expiring, NULL), 0, "expired certificate's session still served");
    cr_assert_eq(itest_ping(valid, NULL), 0, "a valid member's session was cut too");
    cr_assert_neq(itest_hie(&node, "short-lived-clinic", out, sizeof(out), "whoami"), 0,
        "expired certificate accepted at a new handshake: %s", out);
    hie_client_destroy(&expiring);
    hie_client_destroy(&valid);
}

/* A CRL past its nextUpdate makes OpenSSL refuse every member: the node says so in its log
 * and on /healthz (503), and shows when the CRL expires on /metrics; a new CRL ends it. */
Test(durability, an_expired_crl_is_said_and_a_new_one_ends_it)
{
    restart_own_pki(300);
    char out[1 << 16];
    cr_assert_eq(itest_http_get(&node, "/healthz", out, sizeof(out)), 200);
    cr_assert_eq(itest_http_get(&node, "/metrics", out, sizeof(out)), 200);
    cr_assert_null(strstr(out, "hie_tls_crl_next_update_seconds{node=\"node-1\"} 0\n"),
        "the CRL's expiry is shown");
    char past[32];
    time_t t = time(NULL) - 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(past, sizeof(past), "%Y%m%d%H%M%SZ", &tm);
    int rc = itest_sh(out, sizeof(out), "bash %s/deploy/pki.sh crl '%s' --until %s",
        HIE_SOURCE_DIR, node.pki, past);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(itest_log_wait(&node, "the crl has expired", 5000), "not said");
    cr_assert_eq(itest_http_get(&node, "/healthz", out, sizeof(out)), 503);
    cr_assert(strstr(out, "crl expired") != NULL, "%s", out);
    /* a member refused meanwhile is counted under the CRL, not as an expired certificate */
    itest_register(&node, "general-hospital", "hospital");
    cr_assert_neq(itest_hie(&node, "general-hospital", out, sizeof(out), "whoami"), 0, "%s",
        out);
    cr_assert(itest_log_wait(&node, "reason=crl", 3000), "not counted under the CRL");
    char later[32];
    t = time(NULL) + 86400; /* valid from an hour ago until tomorrow (not from tomorrow) */
    gmtime_r(&t, &tm);
    strftime(later, sizeof(later), "%Y%m%d%H%M%SZ", &tm);
    rc = itest_sh(out, sizeof(out), "bash %s/deploy/pki.sh crl '%s' --until %s",
        HIE_SOURCE_DIR, node.pki, later);
    cr_assert_eq(rc, 0, "%s", out);
    int status = 0;
    for (int i = 0; i < 50 && status != 200; i++) {
        status = itest_http_get(&node, "/healthz", out, sizeof(out));
        usleep(status == 200 ? 0 : 100 * 1000);
    }
    cr_assert_eq(status, 200, "a new CRL ends it");
}

/* A CRL whose lastUpdate is ahead of the node's clock (a CA whose clock runs fast) refuses
 * every member until then: the node says so, and once the time comes members are served and
 * /healthz is 200 again without any new file (it stayed 503 "crl expired" until the file
 * changed). */
Test(durability, a_crl_not_valid_yet_is_said_and_ends_by_itself)
{
    restart_own_pki(300);
    itest_register(&node, "general-hospital", "hospital");
    char out[1 << 16], soon[32];
    time_t t = time(NULL) + 4;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(soon, sizeof(soon), "%Y%m%d%H%M%SZ", &tm);
    int rc = itest_sh(out, sizeof(out), "cd '%s/ca' && openssl ca -batch -config openssl.cnf "
        "-gencrl -crl_lastupdate %s -crldays 30 -out crl.tmp 2>&1 && mv crl.tmp crl.pem",
        node.pki, soon);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(itest_log_wait(&node, "the crl is not valid yet", 3000), "not said");
    cr_assert_eq(itest_http_get(&node, "/healthz", out, sizeof(out)), 503);
    cr_assert(strstr(out, "crl not valid yet") != NULL, "%s", out);
    cr_assert_neq(itest_hie(&node, "general-hospital", out, sizeof(out), "whoami"), 0,
        "served before the CRL is valid: %s", out);
    int status = 0;
    for (int i = 0; i < 100 && status != 200; i++) {
        status = itest_http_get(&node, "/healthz", out, sizeof(out));
        usleep(status == 200 ? 0 : 100 * 1000);
    }
    cr_assert_eq(status, 200, "still %d once the CRL is valid: %s", status, out);
    cr_assert_eq(itest_hie(&node, "general-hospital", out, sizeof(out), "whoami"), 0, "%s",
        out);
    cr_assert_eq(itest_http_get(&node, "/metrics", out, sizeof(out)), 200);
    char want[96];
    snprintf(want, sizeof(want), "hie_tls_crl_last_update_seconds{node=\"node-1\"} %lld\n",
        (long long)t);
    cr_assert(strstr(out, want) != NULL, "%s", out);
}

static unsigned long
reloads_failed(void)
{
    char out[1 << 16];
    cr_assert_eq(itest_http_get(&node, "/metrics", out, sizeof(out)), 200);
    const char *p = strstr(out, "hie_tls_reloads_total{node=\"node-1\",result=\"failed\"} ");
    cr_assert_not_null(p, "%s", out);
    return strtoul(strchr(p, '}') + 2, NULL, 10);
}

/* A CRL file that cannot be loaded is tried again at every check until one loads: it used
 * to be marked seen after the first failure, so a CRL fixed in place (or an edge that was
 * slow to take it) waited for the next change of the file. */
Test(durability, a_crl_that_fails_to_load_is_retried_until_it_loads)
{
    restart_own_pki(200);
    char out[4096];
    cr_assert_eq(itest_sh(out, sizeof(out), "cp '%s/ca/crl.pem' '%s/crl.good' && "
        "echo garbage > '%s/ca/crl.pem'", node.pki, node.root, node.pki), 0, "%s", out);
    cr_assert(itest_log_wait(&node, "tls reload failed", 3000));
    unsigned long first = reloads_failed();
    usleep(1000 * 1000);
    unsigned long later = reloads_failed();
    cr_assert_gt(later, first, "retried: %lu then %lu failed reloads", first, later);
    cr_assert_eq(itest_sh(out, sizeof(out), "cp '%s/crl.good' '%s/ca/crl.pem'", node.root,
        node.pki), 0, "%s", out);
    cr_assert(itest_log_wait(&node, "tls reloaded\" source=crl-file", 3000), "good CRL loaded");
    unsigned long settled = reloads_failed();
    usleep(600 * 1000);
    cr_assert_eq(reloads_failed(), settled, "and no more retries");
    itest_register(&node, "general-hospital", "hospital");
    cr_assert_eq(itest_hie(&node, "general-hospital", out, sizeof(out), "whoami"), 0, "%s", out);
}

/* Without a CRL the node serves (a closed test network may have none) but says at start that
 * revoked certificates are accepted; with one it says nothing of the kind. */
Test(durability, no_crl_is_warned_at_start)
{
    cr_assert_not(itest_log_contains(&node, "no revocation checking"));
    itest_node_stop(&node, SIGTERM);
    node.opts.no_crl = true;
    itest_node_write_config(&node);
    itest_node_start(&node);
    cr_assert(itest_log_wait(&node, "no revocation checking (tls.crl_file is not set)", 3000));
}

/* The admin socket in a folder others can write is refused at start (another user could bind
 * it first and receive what hiectl sends); in the data directory (the default) it is fine. */
Test(durability, admin_socket_in_a_shared_folder_is_refused)
{
    char out[8192], shared[ITEST_PATH + 16];
    cr_assert_eq(itest_node_stop(&node, SIGTERM), 0);
    snprintf(shared, sizeof(shared), "%s/shared", node.root);
    cr_assert_eq(mkdir(shared, 0700), 0);
    cr_assert_eq(chmod(shared, 0777), 0);
    int rc = itest_sh(out, sizeof(out), "sed 's|^operator: {|operator: {admin_socket: "
        "\"%s/admin.sock\", |' '%s' > '%s/shared.yaml' && timeout 10 '%s' --config "
        "'%s/shared.yaml'", shared, node.cfg, node.root, HIE_NODE_BIN, node.root);
    cr_assert_neq(rc, 0, "the node started: %s", out);
    cr_assert(strstr(out, "admin socket refused") != NULL, "%s", out);
    itest_node_start(&node);
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "status"), 0, "%s", out);
}

Test(durability, bad_config_names_the_key_and_exits_1)
{
    char out[4096];
    int rc = itest_sh(out, sizeof(out), "printf 'node: {id: n1, data_dir: /tmp}\\n"
        "listen: {port: 70000}\\ntls: {ca_file: a, cert_file: b, key_file: c}\\n' > "
        "'%s/bad.yaml' && '%s' --config '%s/bad.yaml'", node.root, HIE_NODE_BIN, node.root);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "listen.port") != NULL, "%s", out);
    rc = itest_sh(out, sizeof(out), "printf 'node: {id: n1, data_dir: /tmp}\\nbogus: 1\\n' > "
        "'%s/bad2.yaml' && '%s' --config '%s/bad2.yaml'", node.root, HIE_NODE_BIN, node.root);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "bogus") != NULL, "%s", out);
}

Test(durability, second_node_on_same_data_dir_is_refused)
{
    char out[4096];
    int rc = itest_sh(out, sizeof(out), "timeout 10 '%s' --config '%s'", HIE_NODE_BIN, node.cfg);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "in use by another node") != NULL, "%s", out);
    cr_assert(itest_node_alive(&node));
}

/* A second node whose config names a running node's admin socket (an absolute path copied
 * between configs) does not start; the running node keeps its socket. Before, it unlinked the
 * live socket and bound its own: the first node's operator commands went to the second, and
 * once it stopped the first had no admin socket at all. */
Test(durability, a_running_nodes_admin_socket_is_not_taken_over)
{
    char out[4096];
    itest_node_t n2;
    itest_node_init(&n2, NULL);
    int rc = itest_sh(out, sizeof(out), "sed -i 's|http_port: %u}|http_port: %u, admin_socket: "
        "\"%s/admin.sock\"}|' '%s' && timeout 20 '%s' --config '%s'", n2.http_port,
        n2.http_port, node.data_dir, n2.cfg, HIE_NODE_BIN, n2.cfg);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "in use by another running process") != NULL, "%s", out);
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "status"), 0, "%s", out);
    char port[32];
    snprintf(port, sizeof(port), "%u", node.port);
    cr_assert(strstr(out, port) != NULL, "the first node answers: %s", out);
    itest_node_cleanup(&n2);
}

/* A request the node does not answer in time (its admin thread busy: a node stopped here)
 * exits 4, not 3 ("cannot reach"), and names its id: repeating it with that id is safe
 * whether or not the node carried it out. Before, it said only "no answer" and exited 3,
 * and the id needed to learn the result was never shown. */
Test(durability, hiectl_names_the_id_of_a_request_not_answered_in_time)
{
    char out[4096];
    cr_assert_eq(kill(node.pid, SIGSTOP), 0);
    int rc = itest_ctl(&node, out, sizeof(out), "--timeout 300 --id late-1 org register "
        "late-org --name Late --roles clinic");
    cr_assert_eq(kill(node.pid, SIGCONT), 0);
    cr_assert_eq(rc, 4, "%s", out);
    cr_assert(strstr(out, "repeat the command with --id late-1") != NULL, "%s", out);
    rc = itest_ctl(&node, out, sizeof(out), "--id late-1 org register late-org --name Late "
        "--roles clinic");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "org show late-org"), 0, "%s", out);
}

/* A node killed leaves its admin socket file: hiectl says it cannot reach the node (3), not
 * that the request may still be carried out (4). */
Test(durability, hiectl_against_a_killed_nodes_socket_cannot_reach_it)
{
    char out[4096];
    cr_assert_eq(itest_node_stop(&node, SIGKILL), 128 + SIGKILL);
    int rc = itest_ctl(&node, out, sizeof(out), "--timeout 2000 org suspend nobody");
    cr_assert_eq(rc, 3, "%s", out);
    cr_assert(strstr(out, "nothing listens") != NULL, "%s", out);
}

/* A log that holds a command needing the data key, replayed by a node started without the
 * key: the node stops with an error (exit 70, as when apply fails on the log thread), and says
 * why. Before, the failure read as a stop request: "stopped during replay: the rest replays at
 * the next start", exit 0, so systemd neither restarted it nor marked it failed. */
Test(durability, a_replay_needing_the_missing_data_key_fails_the_start)
{
    char out[8192];
    itest_register(&node, "general-hospital", "hospital");
    int rc = itest_hie(&node, "general-hospital", out, sizeof(out), "feed create --mrn H-1 "
        "--given Ann --family Lee --birth-date 1970-01-02");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_eq(itest_node_stop(&node, SIGTERM), 0);
    node.opts.no_mpi_key = true;
    itest_node_write_config(&node);
    rc = itest_sh(out, sizeof(out), "rm -rf '%s/state' && timeout 20 '%s' --config '%s'",
        node.data_dir, HIE_NODE_BIN, node.cfg);
    cr_assert_eq(rc, 70, "%s", out);
    cr_assert(strstr(out, "needs the data key") != NULL, "%s", out);
    cr_assert(strstr(out, "stopped during replay") == NULL, "%s", out);
}

/* Another data key file: --check-config says it is not the state's key (it said "ok"), and a
 * state rebuilt from the log with it stops at the first feed, saying why (exit 70). Before,
 * every feed was refused as unreadable and the node served an empty index: the patients, and
 * what was fed after under the wrong key, were lost. */
Test(durability, a_state_rebuilt_under_another_data_key_stops)
{
    char out[8192];
    itest_register(&node, "general-hospital", "hospital");
    int rc = itest_hie(&node, "general-hospital", out, sizeof(out), "feed create --mrn H-1 "
        "--given Ann --family Lee --birth-date 1970-01-02");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_eq(itest_node_stop(&node, SIGTERM), 0);
    rc = itest_sh(out, sizeof(out), "(umask 077; head -c 32 /dev/urandom > '%s') && '%s' "
        "--config '%s' --check-config", node.mpi_key, HIE_NODE_BIN, node.cfg);
    cr_assert_neq(rc, 0, "--check-config passed another key: %s", out);
    cr_assert(strstr(out, "is not the key this node's state was written with") != NULL, "%s",
        out);
    rc = itest_sh(out, sizeof(out), "rm -rf '%s/state' && timeout 20 '%s' --config '%s'",
        node.data_dir, HIE_NODE_BIN, node.cfg);
    cr_assert_eq(rc, 70, "%s", out);
    cr_assert(strstr(out, "sealed under another data key") != NULL, "%s", out);
}

/* A log entry damaged on disk (one byte: the organization id no longer valid) replays as a
 * refused command, and the node says so, naming the index. Before, the registration just
 * vanished at the replay, without a word. */
Test(durability, a_damaged_log_entry_is_reported_at_replay)
{
    char out[8192];
    itest_register(&node, "charlie-clinic", "clinic");
    cr_assert_eq(itest_node_stop(&node, SIGTERM), 0);
    int rc = itest_sh(out, sizeof(out), "sed -i 's/charlie-clinic/Charlie-clinic/' "
        "'%s/log/data.mdb' && rm -rf '%s/state'", node.data_dir, node.data_dir);
    cr_assert_eq(rc, 0, "%s", out);
    itest_node_start(&node);
    cr_assert(itest_log_wait(&node, "a logged command does not decode or validate", 5000));
    cr_assert_neq(itest_ctl(&node, out, sizeof(out), "org show charlie-clinic"), 0, "%s", out);
}

Test(durability, admin_socket_is_private)
{
    char out[1024];
    int rc = itest_sh(out, sizeof(out), "stat -c '%%a' '%s/admin.sock' '%s'", node.data_dir,
        node.data_dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "600\n700\n");
}

/* One raw request on the admin socket, as hiectl sends it; the reply in arena. */
static Hie__V1__AdminReply *
admin_raw(Hie__V1__AdminRequest *req, hie_arena_t *arena)
{
    char ep[ITEST_PATH + 32];
    snprintf(ep, sizeof(ep), "ipc://%s/admin.sock", node.data_dir);
    void *z = zmq_ctx_new();
    void *s = zmq_socket(z, ZMQ_REQ);
    int t = 10000, linger = 0;
    cr_assert_eq(zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof(t)), 0);
    cr_assert_eq(zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger)), 0);
    cr_assert_eq(zmq_connect(s, ep), 0);
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(hie_proto_pack(&req->base, HIE_ADMIN_MSG_BYTES_MAX, &buf, &len), 0);
    cr_assert_eq(zmq_send(s, buf, len, 0), (int)len);
    hie_mem_free(buf, len);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    cr_assert(zmq_msg_recv(&msg, s, 0) >= 0, "no answer");
    ProtobufCMessage *m = NULL;
    cr_assert_eq(hie_proto_unpack(&hie__v1__admin_reply__descriptor,
        hie_span(zmq_msg_data(&msg), zmq_msg_size(&msg)), arena, &m), 0);
    zmq_msg_close(&msg);
    zmq_close(s);
    zmq_ctx_term(z);
    return (Hie__V1__AdminReply *)m;
}

/* The admin channel takes the operator's own commands only. A checkpoint (or an audit
 * record, a push, a delivery...) sent there as a raw command is refused and nothing reaches
 * the log; it used to be applied: a forged record or note no verify could tell from the
 * node's own. */
Test(durability, the_admin_channel_refuses_commands_that_are_not_the_operators)
{
    unsigned long before = status_field("applied_index");
    hie_arena_t *arena = NULL;
    cr_assert_eq(hie_arena_create(&arena, 1u << 20), 0);
    static uint8_t empty_root[32];
    crypto_hash_sha256(empty_root, NULL, 0);
    Hie__V1__AuditCheckpointCommand ck = HIE__V1__AUDIT_CHECKPOINT_COMMAND__INIT;
    ck.size = 0;
    ck.root.data = empty_root;
    ck.root.len = sizeof(empty_root);
    ck.note = (char *)(uintptr_t)"forged";
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.body_case = HIE__V1__COMMAND__BODY_AUDIT_CHECKPOINT;
    cmd.audit_checkpoint = &ck;
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    req.id = (char *)(uintptr_t)"forge-1";
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_COMMAND;
    req.command = &cmd;
    Hie__V1__AdminReply *r = admin_raw(&req, arena);
    cr_assert_not_null(r->error, "applied (result code %d)",
        r->result != NULL ? (int)r->result->code : -1);
    cr_assert_eq(r->error->code, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    cr_assert_str_eq(r->error->field, "command");
    cr_assert_eq(status_field("applied_index"), before, "nothing reached the log");
    hie_arena_destroy(&arena);
}

Test(durability, hiectl_init_prepares_a_private_data_directory)
{
    char out[4096], dir[ITEST_PATH];
    snprintf(dir, sizeof(dir), "%s/initdir", node.root);
    int rc = itest_sh(out, sizeof(out), "'%s' init --data-dir '%s' && stat -c '%%a' '%s' && "
        "ls '%s'", HIE_CTL_BIN, dir, dir, dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "applied_index=0") != NULL, "%s", out);
    cr_assert(strstr(out, "700\n") != NULL, "%s", out);
    cr_assert(strstr(out, "log") != NULL && strstr(out, "state") != NULL, "%s", out);
    /* a node starts on it */
    cr_assert_eq(itest_node_stop(&node, SIGTERM), 0);
    snprintf(node.data_dir, sizeof(node.data_dir), "%s", dir);
    itest_node_write_config(&node);
    itest_node_start(&node);
    itest_register(&node, "general-hospital", "hospital");
    /* again on the running node's directory: left as it is (no replay without its data key,
     * no second process on its files) */
    rc = itest_sh(out, sizeof(out), "'%s' init --data-dir '%s'", HIE_CTL_BIN, dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "already initialized") != NULL, "%s", out);
    itest_register(&node, "st-mary-hospital", "hospital");
    /* a directory with other files in it (a mistyped --data-dir) is refused and left as it
     * was: its mode, and no LOCK, log or state in it */
    rc = itest_sh(out, sizeof(out), "mkdir -m 755 '%s/foreign' && touch '%s/foreign/f' && "
        "'%s' init --data-dir '%s/foreign'", node.root, node.root, HIE_CTL_BIN, node.root);
    cr_assert_neq(rc, 0, "%s", out);
    cr_assert(strstr(out, "not empty and not a data directory") != NULL, "%s", out);
    rc = itest_sh(out, sizeof(out), "stat -c '%%a' '%s/foreign' && ls '%s/foreign'", node.root,
        node.root);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "755\nf\n");
}

/* dev-pki.sh run again (after a run that stopped part way) issues what is missing; it used to
 * see the CA key, say "nothing to do" and leave the PKI without those certificates. */
Test(durability, dev_pki_rerun_issues_what_is_missing)
{
    char out[4096];
    int rc = itest_sh(out, sizeof(out), "bash %s/deploy/dev-pki.sh '%s/dev' >/dev/null 2>&1 && "
        "rm '%s/dev/certs/county-lab.crt' && bash %s/deploy/dev-pki.sh '%s/dev' 2>&1 && "
        "openssl verify -CAfile '%s/dev/ca/ca.crt' '%s/dev/certs/county-lab.crt'",
        HIE_SOURCE_DIR, node.root, node.root, HIE_SOURCE_DIR, node.root, node.root, node.root);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "issued member cert for county-lab") != NULL, "%s", out);
    cr_assert(strstr(out, "node-1") == NULL, "an existing certificate was issued again: %s",
        out);
}

/* An operator endpoint port another process holds: the node stops at start and says which
 * address, port and why (it said only "unavailable"). */
Test(durability, an_http_port_in_use_is_named_at_start)
{
    char out[8192];
    int rc = itest_sh(out, sizeof(out), "sed -e 's|data_dir: \"[^\"]*\"|data_dir: \"%s/second\"|' "
        "-e 's|^listen: .*|listen: {address: 127.0.0.1, port: %u}|' '%s' > '%s/second.yaml' && "
        "timeout 20 '%s' --config '%s/second.yaml'", node.root, (unsigned)node.port + 1000u,
        node.cfg, node.root, HIE_NODE_BIN, node.root);
    cr_assert_neq(rc, 0, "a second node started on the same http port: %s", out);
    char want[64];
    snprintf(want, sizeof(want), "port=%u", (unsigned)node.http_port);
    cr_assert(strstr(out, "cannot start the operator endpoint") != NULL, "%s", out);
    cr_assert(strstr(out, want) != NULL, "%s", out);
    cr_assert(strstr(out, "Address already in use") != NULL, "%s", out);
}

/* operator.admin_socket naming a file that is not a socket (here a file in the data dir; it
 * could be LOCK or audit.key): the node refuses to start and leaves the file. It used to
 * unlink whatever the path named at start, and again at exit. */
Test(durability, an_admin_socket_path_naming_a_file_is_refused_not_deleted)
{
    char out[8192];
    int rc = itest_sh(out, sizeof(out), "mkdir -m 700 '%s/third' && echo keep > "
        "'%s/third/victim' && sed -e 's|data_dir: \"[^\"]*\"|data_dir: \"%s/third\"|' "
        "-e 's|^listen: .*|listen: {address: 127.0.0.1, port: %u}|' "
        "-e 's|^operator: .*|operator: {http_port: 0, admin_socket: victim}|' '%s' > "
        "'%s/third.yaml' && timeout 20 '%s' --config '%s/third.yaml'", node.root, node.root,
        node.root, (unsigned)node.port + 1001u, node.cfg, node.root, HIE_NODE_BIN, node.root);
    cr_assert_neq(rc, 0, "started with a file for its admin socket: %s", out);
    cr_assert(strstr(out, "not a socket") != NULL, "%s", out);
    rc = itest_sh(out, sizeof(out), "cat '%s/third/victim'", node.root);
    cr_assert_eq(rc, 0, "the file is gone: %s", out);
    cr_assert_str_eq(out, "keep\n");
}

/* pki.sh issue --san names the addresses members reach a node by (they check the name they
 * connect to against the certificate); anything but DNS:/IP: entries is refused. */
Test(durability, pki_issue_san_names_the_node)
{
    char out[4096];
    int rc = itest_sh(out, sizeof(out), "cd '%s' && bash %s/deploy/pki.sh init san >/dev/null 2>&1"
        " && bash %s/deploy/pki.sh issue san --kind node --name node-9 "
        "--san DNS:hie.example.org,IP:10.0.0.5 2>&1 && "
        "openssl verify -CAfile san/ca/ca.crt -verify_hostname hie.example.org "
        "san/certs/node-9.crt && openssl verify -CAfile san/ca/ca.crt -verify_ip 10.0.0.5 "
        "san/certs/node-9.crt", node.root, HIE_SOURCE_DIR, HIE_SOURCE_DIR);
    cr_assert_eq(rc, 0, "%s", out);
    rc = itest_sh(out, sizeof(out), "cd '%s' && openssl verify -CAfile san/ca/ca.crt "
        "-verify_hostname other.example.org san/certs/node-9.crt", node.root);
    cr_assert_neq(rc, 0, "a name the certificate does not carry: %s", out);
    rc = itest_sh(out, sizeof(out), "cd '%s' && bash %s/deploy/pki.sh issue san --kind node "
        "--name node-8 --san 'DNS:x.org\nextendedKeyUsage = codeSigning'", node.root,
        HIE_SOURCE_DIR);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "no spaces or line breaks") != NULL, "%s", out);
    rc = itest_sh(out, sizeof(out), "cd '%s' && bash %s/deploy/pki.sh issue san --kind node "
        "--name node-7 --san 'DNS:x.org,URI:http://x'", node.root, HIE_SOURCE_DIR);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "is not DNS:host.name or IP:address") != NULL, "%s", out);
}

/* --check-config loads the MPI data key as the start does: a key others can read, or of the
 * wrong size, fails the check instead of the start. */
Test(durability, check_config_loads_the_mpi_data_key)
{
    char out[4096];
    int rc = itest_sh(out, sizeof(out), "'%s' --config '%s' --check-config", HIE_NODE_BIN,
        node.cfg);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "config ok") != NULL, "%s", out);
    rc = itest_sh(out, sizeof(out), "chmod 644 '%s' && '%s' --config '%s' --check-config",
        node.mpi_key, HIE_NODE_BIN, node.cfg);
    cr_assert_neq(rc, 0, "a key others can read passed: %s", out);
    cr_assert(strstr(out, "mpi.key_file") != NULL, "%s", out);
    rc = itest_sh(out, sizeof(out), "chmod 600 '%s' && head -c 31 /dev/urandom > '%s.short' && "
        "chmod 600 '%s.short' && sed 's|%s|%s.short|' '%s' > '%s.short' && "
        "'%s' --config '%s.short' --check-config", node.mpi_key, node.mpi_key, node.mpi_key,
        node.mpi_key, node.mpi_key, node.cfg, node.cfg, HIE_NODE_BIN, node.cfg);
    cr_assert_neq(rc, 0, "a 31-byte key passed: %s", out);
    cr_assert(strstr(out, "mpi.key_file") != NULL, "%s", out);
    /* and builds the TLS context: the key of another certificate, or a CRL that is not one,
     * passed the check and failed the start */
    rc = itest_sh(out, sizeof(out), "sed 's|certs/node-1.key|certs/general-hospital.key|' '%s' "
        "> '%s.tls' && '%s' --config '%s.tls' --check-config", node.cfg, node.cfg, HIE_NODE_BIN,
        node.cfg);
    cr_assert_neq(rc, 0, "another certificate's key passed: %s", out);
    cr_assert(strstr(out, "tls") != NULL, "%s", out);
    rc = itest_sh(out, sizeof(out), "echo garbage > '%s/bad-crl.pem' && sed "
        "'s|^  crl_file: .*|  crl_file: %s/bad-crl.pem|' '%s' > '%s.crl' && grep -q bad-crl "
        "'%s.crl' && '%s' --config '%s.crl' --check-config", node.root, node.root, node.cfg,
        node.cfg, node.cfg, HIE_NODE_BIN, node.cfg);
    cr_assert_neq(rc, 0, "a CRL that is not one passed: %s", out);
    cr_assert(strstr(out, "tls") != NULL, "%s", out);
}

/* F2-style: commands acknowledged while four clients register concurrently all survive a
 * kill -9 that lands mid-burst; none is applied twice (each org exists once, at version 1).
 * Seeded kill time, printed. */
Test(durability, kill_9_mid_burst_loses_no_acknowledged_command)
{
    unsigned seed = 20261122u;
    cr_log_info("seed=%u", seed);
    srand(seed);
    char out[4096];
    /* 4 writers, up to 400 registrations each, until ./stop exists; each line of ack.N is an
     * org whose registration hiectl reported as applied */
    int rc = itest_sh(out, sizeof(out), "cd '%s' && for w in 1 2 3 4; do ( for i in $(seq 1 400);"
        " do [ -f stop ] && break; '%s' --config '%s' --timeout 2000 org register w$w-o$i "
        "--roles clinic >/dev/null 2>&1 && echo w$w-o$i >> ack.$w; done ) >/dev/null 2>&1 & "
        "done; echo started", node.root, HIE_CTL_BIN, node.cfg);
    cr_assert_eq(rc, 0, "%s", out);
    /* the kill lands mid-burst: once the first registration was acknowledged (a loaded
     * machine took over a second to start four hiectl processes under ASan: the kill came
     * before any, and the test failed), then after a seeded delay */
    rc = itest_sh(out, sizeof(out), "cd '%s' && for i in $(seq 1 200); do "
        "[ -n \"$(cat ack.* 2>/dev/null)\" ] && break; sleep 0.05; done; cat ack.* | wc -l",
        node.root);
    cr_assert_eq(rc, 0, "%s", out);
    usleep((unsigned)(rand() % 600) * 1000u);
    cr_assert_eq(itest_node_stop(&node, SIGKILL), 128 + SIGKILL);
    rc = itest_sh(out, sizeof(out), "cd '%s' && touch stop && sleep 2.5 && cat ack.* | sort -u "
        "> acked && wc -l < acked", node.root);
    int acked = atoi(out);
    cr_log_info("acknowledged before the kill: %d", acked);
    cr_assert_gt(acked, 0, "nothing was acknowledged before the kill");
    itest_node_start(&node);
    char list[65536];
    cr_assert_eq(itest_ctl(&node, list, sizeof(list), "org list"), 0, "%s", list);
    char path[ITEST_PATH + 16];
    snprintf(path, sizeof(path), "%s/listed", node.root);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(list, f);
    fclose(f);
    rc = itest_sh(out, sizeof(out), "cd '%s' && lost=0; while read o; do grep -q \"^org=$o \" "
        "listed || { echo LOST $o; lost=1; }; done < acked; echo checked", node.root);
    cr_assert(strstr(out, "checked") != NULL, "%s", out);
    cr_assert(strstr(out, "LOST") == NULL, "acknowledged registrations lost:\n%s", out);
    cr_assert(strstr(list, "version=2") == NULL, "a registration was applied twice:\n%s", list);
    rc = itest_sh(out, sizeof(out), "cd '%s' && grep -c '^org=' listed", node.root);
    cr_log_info("registered after restart: %s", out);
    cr_assert_geq(atoi(out), acked);
}

/* storage.log_retain: the log deletes its oldest commands as new ones come (300 applied, about
 * 100 kept), and a kill -9 still loses nothing acknowledged: replay needs only what the state
 * may not have made durable, which is never trimmed. */
Test(durability, a_retaining_log_trims_and_a_kill_9_loses_nothing)
{
    itest_node_cleanup(&node);
    itest_opts_t o = {.log_retain = 100};
    itest_node_init(&node, &o);
    itest_node_start(&node);
    char out[65536];
    int rc = itest_sh(out, sizeof(out), "for i in $(seq 1 300); do '%s' --config '%s' org "
        "register r-$i --roles clinic >/dev/null || exit 1; done; echo done", HIE_CTL_BIN,
        node.cfg);
    cr_assert_eq(rc, 0, "%s", out);
    unsigned long first = status_field("log_first_index");
    cr_assert_eq(status_field("log_index"), 300);
    cr_assert(first > 150 && first <= 201, "about 100 kept: the first is %lu", first);
    cr_assert_eq(itest_node_stop(&node, SIGKILL), 128 + SIGKILL);
    itest_node_start(&node);
    cr_assert_eq(status_field("applied_index"), 300);
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "org list"), 0, "%s", out);
    size_t listed = 0;
    for (const char *p = strstr(out, "org=r-"); p != NULL; p = strstr(p + 1, "org=r-")) {
        listed++;
    }
    cr_assert_eq(listed, 300u, "every registration after the kill");
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "org register after --roles clinic"), 0,
        "%s", out);
    cr_assert_eq(status_field("log_index"), 301, "numbering goes on");
}

/* hiectl backup copies a running node's state and log (state first); a node started on the
 * copy has everything applied before it and nothing after, and its audit log verifies. The
 * directory must be new. */
Test(durability, a_backup_of_a_running_node_restores)
{
    char out[65536], bk[ITEST_PATH + 16];
    int rc = itest_sh(out, sizeof(out), "for i in $(seq 1 20); do '%s' --config '%s' org "
        "register b-$i --roles clinic >/dev/null || exit 1; done; echo done", HIE_CTL_BIN,
        node.cfg);
    cr_assert_eq(rc, 0, "%s", out);
    /* an audited exchange, and a checkpoint the node signs for it (every 500 ms here) */
    itest_register(&node, "general-hospital", "hospital");
    rc = itest_hie(&node, "general-hospital", out, sizeof(out), "feed create --mrn H-1 --given "
        "John --family Smithson --dob 1970-03-02");
    cr_assert_eq(rc, 0, "%s", out);
    rc = itest_hie(&node, "general-hospital", out, sizeof(out), "--purpose treatment pix --mrn "
        "H-1");
    cr_assert_eq(rc, 0, "%s", out);
    usleep(1200u * 1000u);
    snprintf(bk, sizeof(bk), "%s/bk", node.root);
    rc = itest_ctl(&node, out, sizeof(out), "backup '%s'", bk);
    cr_assert_eq(rc, 0, "%s", out);
    const char *p = strstr(out, "state_applied_index=");
    cr_assert_not_null(p, "%s", out);
    cr_assert_geq(strtoul(p + strlen("state_applied_index="), NULL, 10), 20ul, "%s", out);
    char f[ITEST_PATH + 64];
    struct stat st;
    snprintf(f, sizeof(f), "%s/BACKUP_DONE", bk);
    cr_assert_eq(stat(f, &st), 0, "the backup is marked complete");
    snprintf(f, sizeof(f), "%s/state/data.mdb", bk);
    cr_assert_eq(stat(f, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600u, "the copy is private");
    /* the copy verified where it lies (--data-dir; it was ignored, and the node's own files
     * verified instead), with the verifier key given: a key file in the copy is never used,
     * not even the node's own copied in (a forged copy with its key beside it verified) */
    rc = itest_sh(out, sizeof(out), "cp -p '%s/audit.key' '%s/audit.key' && echo ok",
        node.data_dir, bk);
    cr_assert_eq(rc, 0, "%s", out);
    rc = itest_ctl(&node, out, sizeof(out), "audit verify --data-dir '%s'", bk);
    cr_assert_eq(rc, 2, "verified with the key found in the copy: %s", out);
    cr_assert(strstr(out, "needs --vkey") != NULL, "%s", out);
    char vkey[512];
    cr_assert_eq(itest_ctl(&node, vkey, sizeof(vkey), "audit vkey"), 0, "%s", vkey);
    vkey[strcspn(vkey, "\n")] = '\0';
    rc = itest_ctl(&node, out, sizeof(out), "audit verify --data-dir '%s' --vkey '%s'", bk,
        vkey);
    cr_assert_eq(rc, 0, "the backup's audit log verifies: %s", out);
    rc = itest_ctl(&node, out, sizeof(out), "org register later --roles clinic");
    cr_assert_eq(rc, 0, "%s", out);
    rc = itest_ctl(&node, out, sizeof(out), "backup '%s'", bk);
    cr_assert_eq(rc, 1, "an existing directory is refused: %s", out);
    cr_assert_eq(itest_node_stop(&node, SIGTERM), 0);
    rc = itest_sh(out, sizeof(out), "cd '%s' && mv state state.old && mv log log.old && "
        "cp -a '%s/state' state && cp -a '%s/log' log && echo moved", node.data_dir, bk, bk);
    cr_assert_eq(rc, 0, "%s", out);
    rc = itest_ctl(&node, out, sizeof(out), "audit verify");
    cr_assert_eq(rc, 0, "the copy's audit log verifies: %s", out);
    /* restored without its key: the node does not start signing with a new one */
    rc = itest_sh(out, sizeof(out), "cd '%s' && mv audit.key audit.key.kept && timeout 20 '%s' "
        "--config '%s' 2>&1; echo exit=$?; ls audit.key 2>&1", node.data_dir, HIE_NODE_BIN,
        node.cfg);
    cr_assert(strstr(out, "put the node's audit.key back") != NULL, "%s", out);
    cr_assert(strstr(out, "exit=0") == NULL, "%s", out);
    cr_assert(strstr(out, "No such file") != NULL, "the key it made was removed: %s", out);
    /* a key an earlier start made and never confirmed (stopped before the check): the same */
    rc = itest_sh(out, sizeof(out), "cd '%s' && head -c 32 /dev/urandom > audit.key && chmod 600 "
        "audit.key && touch audit.key.unconfirmed && timeout 20 '%s' --config '%s' 2>&1; "
        "echo exit=$?; ls audit.key audit.key.unconfirmed 2>&1", node.data_dir, HIE_NODE_BIN,
        node.cfg);
    cr_assert(strstr(out, "put the node's audit.key back") != NULL, "%s", out);
    cr_assert(strstr(out, "exit=0") == NULL, "%s", out);
    rc = itest_sh(out, sizeof(out), "cd '%s' && mv audit.key.kept audit.key", node.data_dir);
    cr_assert_eq(rc, 0, "%s", out);
    itest_node_start(&node);
    cr_assert_eq(itest_ctl(&node, out, sizeof(out), "org list"), 0, "%s", out);
    size_t listed = 0;
    for (const char *q = strstr(out, "org=b-"); q != NULL; q = strstr(q + 1, "org=b-")) {
        listed++;
    }
    cr_assert_eq(listed, 20u, "%s", out);
    cr_assert_null(strstr(out, "org=later "), "registered after the backup: %s", out);
}
