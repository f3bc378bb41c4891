/*
 * test_config.c - unit tests for node/src/config.c: YAML files written into a temporary
 * directory (with real, readable dummy certificate files: config only checks that they can be
 * read), defaults, path resolution, and one refusal per bad key, each naming the key.
 */
#include "node_int.h"

#include "../test_util.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

static char dir[128];
static node_config_t cfg;
static char err[1024];

/* The temporary directory with the dummy certificate files, made on first use (so misuse
 * tests, which abort before .fini, leave nothing behind). */
static const char *
dir_get(void)
{
    if (dir[0] == '\0') {
        test_tmpdir_make(dir, sizeof(dir), "config");
        test_write_text(dir, "ca.pem", "dummy ca\n");
        test_write_text(dir, "node.pem", "dummy cert\n");
        test_write_text(dir, "node.key", "dummy key\n");
        char key[192];
        snprintf(key, sizeof(key), "%s/node.key", dir);
        cr_assert_eq(chmod(key, 0600), 0, "the private key is the owner's alone");
        test_write_text(dir, "crl.pem", "dummy crl\n");
    }
    return dir;
}

static void
teardown(void)
{
    test_tmpdir_remove(dir);
}

TestSuite(node_config, .fini = teardown);

#define NODE "node:\n  id: node-1\n  data_dir: data\n"
#define LISTEN "listen:\n  port: 7443\n"
#define TLS "tls:\n  ca_file: ca.pem\n  cert_file: node.pem\n  key_file: node.key\n"
#define MINIMAL NODE LISTEN TLS

/* Writes text as dir/node.yaml and loads it. */
static int
load(const char *text)
{
    test_write_text(dir_get(), "node.yaml", text);
    char path[256];
    snprintf(path, sizeof(path), "%s/node.yaml", dir);
    err[0] = '\0';
    return hie_node__config_load(&cfg, path, err, sizeof(err));
}

/* Loads text, expects HIE_ECONFIG and an error naming key. */
static void
expect_refused(const char *text, const char *key)
{
    int rc = load(text);
    cr_assert_eq(rc, HIE_ECONFIG, "rc=%s for a config whose %s is bad", hie_strerror_name(rc),
        key);
    cr_assert_not_null(strstr(err, key), "error does not name %s: \"%s\"", key, err);
    cr_assert_null(strchr(err, '\n'), "one line: \"%s\"", err);
}

static void
path_in_dir(char *out, size_t out_bytes, const char *name)
{
    snprintf(out, out_bytes, "%s/%s", dir_get(), name);
}

Test(node_config, minimal_config_gets_the_defaults)
{
    int rc = load(MINIMAL);
    cr_assert_eq(rc, 0, "rc=%s err=%s", hie_strerror_name(rc), err);
    char want[512];
    cr_assert_str_eq(cfg.node_id, "node-1");
    path_in_dir(want, sizeof(want), "data");
    cr_assert_str_eq(cfg.data_dir, want, "data_dir is relative to the config's directory");
    path_in_dir(want, sizeof(want), "ca.pem");
    cr_assert_str_eq(cfg.ca_file, want);
    path_in_dir(want, sizeof(want), "node.pem");
    cr_assert_str_eq(cfg.cert_file, want);
    path_in_dir(want, sizeof(want), "node.key");
    cr_assert_str_eq(cfg.key_file, want);
    cr_assert_str_eq(cfg.crl_file, "", "no CRL unless configured");
    path_in_dir(want, sizeof(want), "data/admin.sock");
    cr_assert_str_eq(cfg.admin_socket, want, "the admin socket lives in data_dir");
    cr_assert_str_eq(cfg.listen_address, "127.0.0.1");
    cr_assert_eq(cfg.listen_port, 7443);
    cr_assert_eq(cfg.tls_min_version, TLS1_3_VERSION);
    cr_assert_eq(cfg.frame_bytes_max, HIE_PROTO_FRAME_BYTES_DEFAULT);
    cr_assert_eq(cfg.frame_bytes_max, 4u * 1024u * 1024u);
    cr_assert_eq(cfg.connections_max, HIE_EDGE_CONNECTIONS_DEFAULT);
    cr_assert_eq(cfg.inflight_max, HIE_EDGE_INFLIGHT_DEFAULT);
    cr_assert_eq(cfg.handshake_timeout_ms, HIE_EDGE_HANDSHAKE_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(cfg.frame_timeout_ms, HIE_EDGE_FRAME_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(cfg.idle_timeout_ms, HIE_EDGE_IDLE_TIMEOUT_MS_DEFAULT);
    cr_assert_eq(cfg.workers, 2);
    cr_assert_str_eq(cfg.http_address, "127.0.0.1");
    cr_assert_eq(cfg.http_port, 0, "the operator HTTP endpoint is off by default");
    cr_assert_eq(cfg.log_level, HIE_LOG_INFO);
    cr_assert_eq(cfg.log_format, HIE_LOG_KV);
    cr_assert_eq(cfg.map_bytes, HIE_LMDB_MAP_BYTES_DEFAULT);
    cr_assert(!cfg.consent_opt_out, "opt-in unless configured");
    cr_assert(!cfg.consent_break_glass, "no break-glass unless the HIE allows it");
    cr_assert(cfg.consent_part2_named);
    cr_assert(!cfg.consent_off);
    cr_assert_eq(cfg.crl_check_interval_ms, 10000u);
    cr_assert_eq(cfg.connections_per_org_max, HIE_EDGE_CONNECTIONS_DEFAULT / 4);
}

Test(node_config, every_key_set_is_read)
{
    char text[2048];
    snprintf(text, sizeof(text),
        "node:\n  id: lab-2.example\n  data_dir: %s/abs-data\n"
        "listen:\n  address: 0.0.0.0\n  port: 65535\n"
        "tls:\n  ca_file: %s/ca.pem\n  cert_file: node.pem\n  key_file: node.key\n"
        "  crl_file: crl.pem\n  min_version: \"1.2\"\n"
        "limits:\n  frame_bytes_max: 1024\n  connections_max: 16384\n"
        "  inflight_per_connection_max: 1\n  handshake_timeout_ms: 100\n"
        "  frame_timeout_ms: 3600000\n  idle_timeout_ms: 5000\n"
        "operator:\n  http_address: 10.0.0.1\n  http_port: 9100\n"
        "  admin_socket: /tmp/hie-admin-test.sock\n"
        "log:\n  level: debug\n  format: json\n"
        "storage:\n  map_bytes: 1048576\n"
        "delivery:\n  heartbeat_ms: 2500\n"
        "workers: 64\n",
        dir_get(), dir_get());
    int rc = load(text);
    cr_assert_eq(rc, 0, "rc=%s err=%s", hie_strerror_name(rc), err);
    char want[512];
    cr_assert_str_eq(cfg.node_id, "lab-2.example");
    path_in_dir(want, sizeof(want), "abs-data");
    cr_assert_str_eq(cfg.data_dir, want, "absolute paths are kept");
    path_in_dir(want, sizeof(want), "crl.pem");
    cr_assert_str_eq(cfg.crl_file, want);
    cr_assert_str_eq(cfg.listen_address, "0.0.0.0");
    cr_assert_eq(cfg.listen_port, 65535);
    cr_assert_eq(cfg.tls_min_version, TLS1_2_VERSION);
    cr_assert_eq(cfg.frame_bytes_max, HIE_PROTO_FRAME_BYTES_MIN);
    cr_assert_eq(cfg.connections_max, HIE_EDGE_CONNECTIONS_MAX);
    cr_assert_eq(cfg.inflight_max, 1);
    cr_assert_eq(cfg.handshake_timeout_ms, 100);
    cr_assert_eq(cfg.frame_timeout_ms, HIE_EDGE_TIMEOUT_MS_MAX);
    cr_assert_eq(cfg.idle_timeout_ms, 5000);
    cr_assert_str_eq(cfg.http_address, "10.0.0.1");
    cr_assert_eq(cfg.http_port, 9100);
    cr_assert_str_eq(cfg.admin_socket, "/tmp/hie-admin-test.sock");
    cr_assert_eq(cfg.log_level, HIE_LOG_DEBUG);
    cr_assert_eq(cfg.log_format, HIE_LOG_JSON);
    cr_assert_eq(cfg.map_bytes, 1048576);
    cr_assert_eq(cfg.workers, HIE_NODE_WORKERS_MAX);
    cr_assert_eq(cfg.delivery_heartbeat_ms, 2500);
}

Test(node_config, frame_bytes_max_at_the_compile_time_maximum_is_accepted)
{
    char text[1024];
    snprintf(text, sizeof(text), MINIMAL "limits:\n  frame_bytes_max: %u\n",
        HIE_PROTO_FRAME_BYTES_MAX);
    cr_assert_eq(load(text), 0, "err=%s", err);
    cr_assert_eq(cfg.frame_bytes_max, HIE_PROTO_FRAME_BYTES_MAX);
}

Test(node_config, unknown_top_level_key_is_refused)
{
    expect_refused(MINIMAL "bogus: 1\n", "bogus");
}

Test(node_config, unknown_nested_key_is_refused)
{
    expect_refused(MINIMAL "limits:\n  bogus: 1\n", "bogus");
    expect_refused(NODE LISTEN "tls:\n  ca_file: ca.pem\n  cert_file: node.pem\n"
        "  key_file: node.key\n  ciphers: all\n", "ciphers");
}

Test(node_config, wrong_type_is_refused)
{
    expect_refused(NODE "listen:\n  port: abc\n" TLS, "port");
    expect_refused(MINIMAL "workers: [1, 2]\n", "workers");
    expect_refused(MINIMAL "limits: 5\n", "limits");
}

Test(node_config, port_must_be_1_to_65535)
{
    expect_refused(NODE "listen:\n  port: 0\n" TLS, "listen.port");
    expect_refused(NODE "listen:\n  port: 70000\n" TLS, "listen.port");
    expect_refused(NODE "listen:\n  port: -1\n" TLS, "port");
    expect_refused(MINIMAL "operator:\n  http_port: 65536\n", "operator.http_port");
}

Test(node_config, missing_required_keys_are_refused)
{
    expect_refused(NODE TLS, "listen");
    expect_refused(NODE "listen:\n  address: 127.0.0.1\n" TLS, "port");
    expect_refused(LISTEN TLS, "node");
    expect_refused(NODE LISTEN "tls:\n  ca_file: ca.pem\n  cert_file: node.pem\n", "key_file");
}

Test(node_config, frame_bytes_max_above_16_mib_is_refused_not_truncated)
{
    char text[1024];
    snprintf(text, sizeof(text), MINIMAL "limits:\n  frame_bytes_max: %u\n",
        HIE_PROTO_FRAME_BYTES_MAX + 1u);
    expect_refused(text, "limits.frame_bytes_max");
    cr_assert_not_null(strstr(err, "16777217"), "the message gives the value: %s", err);
    expect_refused(MINIMAL "limits:\n  frame_bytes_max: 4294967295\n", "frame_bytes_max");
    expect_refused(MINIMAL "limits:\n  frame_bytes_max: 4294967296\n", "frame_bytes_max");
}

Test(node_config, frame_bytes_max_below_1024_is_refused)
{
    expect_refused(MINIMAL "limits:\n  frame_bytes_max: 1023\n", "limits.frame_bytes_max");
    expect_refused(MINIMAL "limits:\n  frame_bytes_max: 1\n", "limits.frame_bytes_max");
}

Test(node_config, other_limits_are_range_checked)
{
    expect_refused(MINIMAL "limits:\n  connections_max: 16385\n", "limits.connections_max");
    expect_refused(MINIMAL "limits:\n  inflight_per_connection_max: 1025\n",
        "limits.inflight_per_connection_max");
    expect_refused(MINIMAL "limits:\n  handshake_timeout_ms: 99\n",
        "limits.handshake_timeout_ms");
    expect_refused(MINIMAL "limits:\n  idle_timeout_ms: 3600001\n", "limits.idle_timeout_ms");
    expect_refused(MINIMAL "workers: 65\n", "workers");
    expect_refused(MINIMAL "storage:\n  map_bytes: 1024\n", "storage.map_bytes");
    expect_refused(MINIMAL "limits:\n  connections_max: 64\n  connections_per_org_max: 65\n",
        "limits.connections_per_org_max");
    expect_refused(NODE LISTEN "tls:\n  ca_file: ca.pem\n  cert_file: node.pem\n  key_file: "
        "node.key\n  crl_check_interval_ms: 99\n", "tls.crl_check_interval_ms");
    int rc = load(MINIMAL "limits:\n  connections_max: 8\n");
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(cfg.connections_per_org_max, 8u, "at least 16, but not above the node's");
}

/* A number is decimal digits and nothing else. libcyaml read "10,000" as 10, "100_000" as
 * 100, "5s" as 5, "1e6" as 1, "010" as 8 (octal) and "-1" as 2^64-1, silently. */
Test(node_config, numbers_with_units_separators_signs_or_leading_zeros_are_refused)
{
    static const char *const bad[] = {"10,000", "100_000", "5s", "1e6", "010", "-1", "+5",
        "0x10", "64MiB", " 7", "1.5", "18446744073709551616"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text), MINIMAL "limits:\n  connections_max: \"%s\"\n", bad[i]);
        expect_refused(text, "limits.connections_max");
        cr_assert_not_null(strstr(err, "whole number"), "%s: %s", bad[i], err);
    }
    expect_refused(MINIMAL "limits:\n  connections_max: 10,000\n", "limits.connections_max");
    expect_refused(MINIMAL "delivery:\n  max_attempts: 1,000\n", "delivery.max_attempts");
    expect_refused(MINIMAL "storage:\n  log_retain: 100_000\n", "storage.log_retain");
    expect_refused(MINIMAL "storage:\n  map_bytes: 10GiB\n", "storage.map_bytes");
    expect_refused(MINIMAL "delivery:\n  queue_bytes_max: -1\n", "delivery.queue_bytes_max");
    expect_refused(MINIMAL "delivery:\n  max_age_ms: 1e9\n", "delivery.max_age_ms");
    expect_refused(NODE "listen:\n  port: 07443\n" TLS, "listen.port");
    expect_refused(MINIMAL "operator:\n  http_port: 9090x\n", "operator.http_port");
    /* the largest 64-bit value parses; it is then out of range, with the value named */
    expect_refused(MINIMAL "storage:\n  map_bytes: 18446744073709551615\n",
        "storage.map_bytes");
    cr_assert_not_null(strstr(err, "18446744073709551615 is outside"), "%s", err);
    cr_assert_eq(load(MINIMAL "limits:\n  connections_max: \"100\"\n  idle_timeout_ms: 0100\n"),
        HIE_ECONFIG, "%s", err);
    cr_assert_eq(load(MINIMAL "limits:\n  connections_max: \"100\"\n"), 0, "%s", err);
    cr_assert_eq(cfg.connections_max, 100u);
    cr_assert_eq(load(MINIMAL "storage:\n  log_retain: 0\n  map_bytes: 1048576\n"), 0, "%s",
        err);
    cr_assert_eq(cfg.log_retain, 0u);
    cr_assert_eq(cfg.map_bytes, 1048576u);
}

/* An explicit 0 is a value like any other, checked against the key's range: it used to stand
 * for the default, so "max_responders: 0" (documented 1..8) quietly became 8. */
Test(node_config, an_explicit_zero_is_range_checked_not_the_default)
{
    expect_refused(MINIMAL "query:\n  max_responders: 0\n", "query.max_responders");
    expect_refused(MINIMAL "mpi:\n  match_threads: 0\n", "mpi.match_threads");
    expect_refused(MINIMAL "delivery:\n  max_attempts: 0\n", "delivery.max_attempts");
    expect_refused(MINIMAL "delivery:\n  max_age_ms: 0\n", "delivery.max_age_ms");
    expect_refused(MINIMAL "workers: 0\n", "workers");
    expect_refused(MINIMAL "limits:\n  connections_max: 0\n", "limits.connections_max");
    expect_refused(MINIMAL "storage:\n  map_bytes: 0\n", "storage.map_bytes");
    expect_refused(NODE LISTEN "tls:\n  ca_file: ca.pem\n  cert_file: node.pem\n  key_file: "
        "node.key\n  crl_check_interval_ms: 0\n", "tls.crl_check_interval_ms");
    /* where 0 has a meaning it stays: no operator endpoint */
    cr_assert_eq(load(MINIMAL "operator:\n  http_port: 0\n"), 0, "%s", err);
    cr_assert_eq(cfg.http_port, 0u);
}

Test(node_config, tls_min_version_must_be_1_2_or_1_3)
{
    expect_refused(NODE LISTEN TLS "  min_version: \"1.1\"\n", "tls.min_version");
    expect_refused(NODE LISTEN TLS "  min_version: \"1.0\"\n", "tls.min_version");
    expect_refused(NODE LISTEN TLS "  min_version: TLSv1.3\n", "tls.min_version");
}

Test(node_config, bad_node_id_is_refused)
{
    static const char *const bad[] = {"\"Node 1\"", "Node1", "-node", "node_1@x", "\"\""};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        char text[1024];
        snprintf(text, sizeof(text), "node:\n  id: %s\n  data_dir: data\n" LISTEN TLS, bad[i]);
        expect_refused(text, "id");
    }
    expect_refused("node:\n  id: \"Node 1\"\n  data_dir: data\n" LISTEN TLS, "node.id");
}

Test(node_config, missing_tls_files_are_refused)
{
    expect_refused(NODE LISTEN "tls:\n  ca_file: nope.pem\n  cert_file: node.pem\n"
        "  key_file: node.key\n", "tls.ca_file");
    expect_refused(NODE LISTEN "tls:\n  ca_file: ca.pem\n  cert_file: nope.pem\n"
        "  key_file: node.key\n", "tls.cert_file");
    expect_refused(NODE LISTEN "tls:\n  ca_file: ca.pem\n  cert_file: node.pem\n"
        "  key_file: /nonexistent/node.key\n", "tls.key_file");
    expect_refused(NODE LISTEN TLS "  crl_file: nope.crl\n", "tls.crl_file");
}

/* Addresses are literals (a host name was accepted by --check-config and then failed the
 * start without naming the key); the HTTP endpoint takes IPv4 only. */
Test(node_config, addresses_that_are_not_literals_are_refused)
{
    expect_refused(NODE "listen:\n  port: 7443\n  address: localhost\n" TLS,
        "listen.address");
    expect_refused(NODE LISTEN TLS "operator:\n  http_address: \"::1\"\n",
        "operator.http_address");
    expect_refused(NODE LISTEN TLS "operator:\n  http_address: metrics.local\n",
        "operator.http_address");
    cr_assert_eq(load(NODE "listen:\n  port: 7443\n  address: \"::1\"\n" TLS), 0, "%s", err);
    cr_assert_eq(load(NODE LISTEN TLS "operator:\n  http_address: 10.1.2.3\n"), 0, "%s", err);
}

Test(node_config, delivery_max_age_ms_is_a_minute_to_a_year)
{
    expect_refused(NODE LISTEN TLS "delivery:\n  max_age_ms: 1\n", "delivery.max_age_ms");
    expect_refused(NODE LISTEN TLS "delivery:\n  max_age_ms: 40000000000\n",
        "delivery.max_age_ms");
    cr_assert_eq(load(NODE LISTEN TLS "delivery:\n  max_age_ms: 60000\n"), 0, "%s", err);
    cr_assert_eq(cfg.delivery_max_age_ms, 60000u);
}

/* A private key that group or other can read is refused, naming the key (the MPI key's
 * rule); it used to be accepted as long as the node could read it. */
Test(node_config, a_private_key_others_can_read_is_refused)
{
    char key[192];
    path_in_dir(key, sizeof(key), "node.key");
    cr_assert_eq(chmod(key, 0640), 0);
    int rc = load(NODE LISTEN TLS);
    cr_assert_eq(chmod(key, 0600), 0);
    cr_assert_eq(rc, HIE_ECONFIG);
    cr_assert_not_null(strstr(err, "tls.key_file"), "%s", err);
    cr_assert_not_null(strstr(err, "chmod 600"), "%s", err);
    cr_assert_eq(load(NODE LISTEN TLS), 0, "%s", err);
}

Test(node_config, bad_log_settings_are_refused)
{
    expect_refused(MINIMAL "log:\n  level: loud\n", "log.level");
    expect_refused(MINIMAL "log:\n  format: xml\n", "log.format");
}

Test(node_config, admin_socket_path_over_100_bytes_is_refused)
{
    char text[1024];
    char sock[120];
    memset(sock, 's', sizeof(sock) - 1);
    sock[0] = '/';
    sock[sizeof(sock) - 1] = '\0';
    snprintf(text, sizeof(text), MINIMAL "operator:\n  admin_socket: %s\n", sock);
    expect_refused(text, "admin_socket");
}

Test(node_config, file_over_256_kib_is_refused)
{
    size_t len = 300u * 1024u;
    char *text = malloc(len + 1);
    cr_assert_not_null(text);
    size_t n = (size_t)snprintf(text, len + 1, "%s", MINIMAL);
    while (n < len) {
        text[n] = n % 64 == 0 ? '\n' : '#'; /* comments: valid YAML, just too much of it */
        n++;
    }
    text[len] = '\0';
    int rc = load(text);
    free(text);
    cr_assert_eq(rc, HIE_ECONFIG);
    cr_assert_not_null(strstr(err, "256 KiB"), "err=%s", err);
    cr_assert_not_null(strstr(err, "node.yaml"), "the message names the file: %s", err);
}

Test(node_config, missing_file_is_enoent)
{
    char path[256];
    path_in_dir(path, sizeof(path), "nope.yaml");
    int rc = hie_node__config_load(&cfg, path, err, sizeof(err));
    cr_assert_eq(rc, -ENOENT, "rc=%s", hie_strerror_name(rc));
    cr_assert_not_null(strstr(err, "nope.yaml"), "err=%s", err);
}

Test(node_config, a_directory_is_not_a_config_file)
{
    int rc = hie_node__config_load(&cfg, dir_get(), err, sizeof(err));
    cr_assert_eq(rc, HIE_ECONFIG);
}

Test(node_config, non_mapping_and_broken_yaml_is_refused)
{
    cr_assert_eq(load("- a\n- b\n"), HIE_ECONFIG, "err=%s", err);
    cr_assert_eq(load("node: [\n"), HIE_ECONFIG, "err=%s", err);
    cr_assert_eq(load("just a string\n"), HIE_ECONFIG, "err=%s", err);
    cr_assert_eq(load(MINIMAL "node:\n  id: again\n  data_dir: x\n"), HIE_ECONFIG,
        "duplicate key: err=%s", err);
}

/* Regression (was a bug, found by the unit tests): libcyaml loads a file without any YAML document (empty, whitespace or comments only)
 * as CYAML_OK with a NULL top-level pointer; hie_node__config_load() does not check for NULL
 * and fill_node() dereferences it (UBSan: member access within null pointer of type
 * 'const struct y_config'; a plain build segfaults). A node started with an empty config
 * crashes instead of refusing it. Expected: HIE_ECONFIG with a message naming the missing
 * "node" key. Reproducers: tests/fuzz/crashers/fuzz_config/. */
Test(node_config, empty_file_is_refused)
{
    expect_refused("", "node");
    expect_refused("# only a comment\n", "node");
    expect_refused(" \n\n", "node");
    expect_refused("---\n", "node");
}

Test(node_config, yaml_aliases_are_refused)
{
    /* CYAML_CFG_NO_ALIAS: no billion-laughs expansion */
    expect_refused("node:\n  id: &id node-1\n  data_dir: *id\n" LISTEN TLS, "lias");
}

Test(node_config, a_small_error_buffer_is_never_overrun)
{
    char tiny[8];
    memset(tiny, 'X', sizeof(tiny));
    test_write_text(dir_get(), "node.yaml", MINIMAL "bogus: 1\n");
    char path[256];
    path_in_dir(path, sizeof(path), "node.yaml");
    cr_assert_eq(hie_node__config_load(&cfg, path, tiny, sizeof(tiny)), HIE_ECONFIG);
    cr_assert_eq(tiny[sizeof(tiny) - 1], '\0', "NUL-terminated within the buffer");
}

Test(node_config, load_with_null_path_aborts, .signal = SIGABRT)
{
    int rc = hie_node__config_load(&cfg, NULL, err, sizeof(err));
    (void)rc;
}

Test(node_config, mpi_match_threads_default_range_and_refusal)
{
    cr_assert_eq(load(MINIMAL), 0, "%s", err);
    cr_assert_eq(cfg.mpi_match_threads, 2u, "default: one per core");
    cr_assert_eq(load(MINIMAL "mpi:\n  match_threads: 1\n"), 0, "%s", err);
    cr_assert_eq(cfg.mpi_match_threads, 1u);
    cr_assert_eq(load(MINIMAL "mpi:\n  match_threads: 16\n"), 0, "%s", err);
    cr_assert_eq(cfg.mpi_match_threads, 16u);
    expect_refused(MINIMAL "mpi:\n  match_threads: 17\n", "mpi.match_threads");
    expect_refused(MINIMAL "mpi:\n  match_threads: -1\n", "match_threads");
}

/* The origin accountings' identities are signed under is not a log's: refused as
 * audit.origin, and through a node id that would default to it. The new storage and
 * delivery bounds are range-checked. */
Test(node_config, reserved_origin_and_new_bounds_are_checked)
{
    expect_refused(NODE LISTEN TLS "audit:\n  origin: hiebroker/accounting-identity\n",
        "audit.origin");
    expect_refused("node:\n  id: accounting-identity\n  data_dir: data\n" LISTEN TLS,
        "audit.origin");
    expect_refused(NODE LISTEN TLS "audit:\n  origin: hiebroker/report-page\n", "audit.origin");
    expect_refused("node:\n  id: report-page\n  data_dir: data\n" LISTEN TLS, "audit.origin");
    /* the origin names the signing key, and a key name has no '+': the node then failed to
     * start, blaming the key file */
    expect_refused(NODE LISTEN TLS "audit:\n  origin: hie+prod/audit\n", "audit.origin");
    /* keys in range that do not work together: a receiver closed as idle before each
     * heartbeat (it reconnected every few seconds, nothing logged); the metrics endpoint on
     * the members' port (the node failed at start, after replaying its log) */
    expect_refused(NODE LISTEN TLS "limits:\n  idle_timeout_ms: 3000\n", "heartbeat_ms");
    cr_assert_eq(load(NODE LISTEN TLS "limits:\n  idle_timeout_ms: 3000\n"
        "delivery:\n  heartbeat_ms: 1500\n"), 0, "%s", err);
    expect_refused(NODE LISTEN TLS "operator:\n  http_port: 7443\n", "http_port");
    expect_refused(NODE "listen:\n  address: \"::\"\n  port: 7443\n" TLS
        "operator:\n  http_port: 7443\n", "http_port");
    cr_assert_eq(load(NODE LISTEN TLS "operator:\n  http_port: 7444\n"), 0, "%s", err);
    expect_refused(NODE LISTEN TLS "storage:\n  log_retain: 5\n", "storage.log_retain");
    expect_refused(NODE LISTEN TLS "delivery:\n  queue_bytes_max: 1000\n",
        "delivery.queue_bytes_max");
    cr_assert_eq(load(NODE LISTEN TLS "storage:\n  log_retain: 0\n"), 0, "%s", err);
    cr_assert_eq(cfg.log_retain, 0u);
    cr_assert_eq(load(NODE LISTEN TLS "storage:\n  log_retain: 100000\n"), 0, "%s", err);
    cr_assert_eq(cfg.log_retain, 100000u);
    cr_assert_eq(cfg.delivery_queue_bytes_max, HIE_DELIVERY_QUEUE_BYTES_DEFAULT);
}

/* A CRL (or any file the node reads at start) that is a FIFO is refused by the check: the
 * start waited for a writer, with signals blocked (only SIGKILL stopped it). */
Test(node_config, a_fifo_in_place_of_a_file_is_refused, .timeout = 10)
{
    char fifo[256];
    snprintf(fifo, sizeof(fifo), "%s/fifo.pem", dir_get());
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    expect_refused(MINIMAL "  crl_file: fifo.pem\n", "tls.crl_file");
    cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
    expect_refused(NODE LISTEN "tls:\n  ca_file: fifo.pem\n  cert_file: node.pem\n"
        "  key_file: node.key\n", "tls.ca_file");
}

/* A value holding a NUL byte is refused (libcyaml kept "node-1" of "node-1\0evil", and a key
 * file's path cut short alike), and so is a second YAML document (never read: its keys were
 * ignored in silence). */
Test(node_config, a_nul_in_a_value_or_a_second_document_is_refused)
{
    int rc = load("node:\n  id: \"node-1\\0evil\"\n  data_dir: data\n" LISTEN TLS);
    cr_assert_eq(rc, HIE_ECONFIG, "a NUL in node.id passed: %s", err);
    cr_assert_not_null(strstr(err, "NUL"), "%s", err);
    cr_assert_not_null(strstr(err, "line 2"), "%s", err);
    rc = load(MINIMAL "---\nnode:\n  id: other\n");
    cr_assert_eq(rc, HIE_ECONFIG, "a second document passed: %s", err);
    cr_assert_not_null(strstr(err, "second YAML document"), "%s", err);
    cr_assert_eq(load(MINIMAL), 0, "%s", err);
    cr_assert_eq(load("---\n" MINIMAL), 0, "one document with its marker: %s", err);
}
