/*
 * harness.h - integration test harness: real hie-node processes, real TLS, LMDB in temp dirs.
 *
 * Each Criterion test runs in its own process; a test starts its own node(s) on a free
 * loopback port, talks to them with the client library, the `hie` and `hiectl` binaries, or
 * raw OpenSSL connections for hostile bytes, and removes its temp dir at the end.
 * The PKI (tests/integration/make-pki.sh) is built once and shared read-only.
 */
#ifndef HIE_ITEST_HARNESS_H
#define HIE_ITEST_HARNESS_H

#include "hie/client.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <sys/types.h>

#define ITEST_PATH 512

typedef struct itest_opts {
    uint32_t frame_timeout_ms;     /* 0: node default */
    uint32_t idle_timeout_ms;
    uint32_t handshake_timeout_ms;
    uint32_t frame_bytes_max;
    uint32_t inflight_max;
    uint32_t connections_max;
    uint32_t edge_buffer_bytes_max; /* limits.edge_buffer_bytes_max; 0: node default */
    uint32_t nofile;               /* the node's open-file limit (soft and hard); 0: inherited */
    uint32_t edge_threads;         /* edge_threads; 0: node default */
    bool tls12;                    /* allow TLS 1.2 */
    bool no_crl;
    bool no_mpi_key;               /* leave mpi.key_file out (MPI unavailable) */
    bool opt_in;                   /* consent.regime opt-in (default here: opt-out, so the MPI
                                      tests see treatment disclosures permitted) */
    bool no_break_glass;           /* consent.break_glass false */
    bool consent_off;              /* consent.enforce off-for-benchmarks-only */
    uint32_t checkpoint_interval_ms; /* 0: 500 ms, so tests see checkpoints quickly */
    uint32_t ack_timeout_ms;       /* delivery.ack_timeout_ms; 0: node default */
    uint32_t max_attempts;         /* delivery.max_attempts; 0: node default */
    uint32_t max_age_ms;           /* delivery.max_age_ms; 0: node default */
    uint32_t heartbeat_ms;         /* delivery.heartbeat_ms; 0: node default */
    uint32_t retain_events;        /* delivery.retain_events; 0: node default */
    uint32_t responder_timeout_ms; /* query.responder_timeout_ms; 0: node default */
    uint32_t max_responders;       /* query.max_responders; 0: node default */
    uint32_t crl_check_interval_ms; /* tls.crl_check_interval_ms; 0: node default */
    uint64_t map_bytes;            /* storage.map_bytes; 0: node default */
    uint64_t log_retain;           /* storage.log_retain; 0: node default (every command) */
    uint64_t queue_bytes_max;      /* delivery.queue_bytes_max; 0: node default */
    uint64_t repository_bytes_max; /* delivery.repository_bytes_max; 0: node default */
} itest_opts_t;

typedef struct itest_node {
    char root[ITEST_PATH / 2];
    char data_dir[ITEST_PATH];
    char cfg[ITEST_PATH];
    char log[ITEST_PATH];
    char pki[ITEST_PATH];          /* ca/, certs/, other/ */
    char mpi_key[ITEST_PATH];      /* the MPI data key file (mode 0600) */
    uint16_t port;
    uint16_t http_port;
    pid_t pid;
    itest_opts_t opts;
} itest_node_t;

/* Creates the temp dir and config; pki is the shared PKI unless the test copies it. */
void itest_node_init(itest_node_t *n, const itest_opts_t *opts);
/* Makes the test's own copy of the PKI (for tests that revoke), and points the config at it. */
void itest_node_own_pki(itest_node_t *n);
/* Writes the config file from n->opts and paths. */
void itest_node_write_config(itest_node_t *n);
/* Starts hie-node and waits until it accepts connections (fails the test after 15 s). */
void itest_node_start(itest_node_t *n);
/* Sends sig, waits up to 20 s; returns the exit code, or 128+signal if killed. */
int itest_node_stop(itest_node_t *n, int sig);
bool itest_node_alive(itest_node_t *n);
/* Stops the node if running (SIGKILL) and removes the temp dir. */
void itest_node_cleanup(itest_node_t *n);

/* Runs a shell command line (formatted), captures stdout+stderr into out. Returns the exit
 * status (0..255), or -1 if it could not run. */
int itest_sh(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* hiectl against the node's admin socket: `hiectl --config <cfg> ARGS`. */
int itest_ctl(itest_node_t *n, char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* hie CLI as member org (cert from the node's PKI); org NULL: no client certificate. */
int itest_hie(itest_node_t *n, const char *org, char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Registers org with roles via hiectl; fails the test on error. */
void itest_register(itest_node_t *n, const char *org, const char *roles);

bool itest_log_contains(itest_node_t *n, const char *needle);
bool itest_log_wait(itest_node_t *n, const char *needle, int timeout_ms);
/* Counts occurrences of needle in the node log. */
int itest_log_count(itest_node_t *n, const char *needle);

/* Entries of the named database in the node's state, read from its LMDB files (running or
 * stopped); 0 when the database does not exist. */
size_t itest_db_entries(itest_node_t *n, const char *db);
/* The same once it equals want, or its count after timeout_ms. Audit records are committed to
 * the state shortly after their replies (they are durable in the command log before), so a
 * test that counts them right after a reply waits for the count to settle. */
size_t itest_db_entries_wait(itest_node_t *n, const char *db, size_t want, int timeout_ms);
/* The count once two reads 50 ms apart agree (at most 5 s): a baseline before new records. */
size_t itest_db_entries_settled(itest_node_t *n, const char *db);

/* A client-library connection as org (certificate from pki_dir/certs/<org>). */
hie_client_t *itest_client(itest_node_t *n, const char *org);
/* Ping with id (NULL: fresh id) and wait 5 s; returns 0 on a Pong, else the rc or -1000-code. */
int itest_ping(hie_client_t *c, const char *id);

/* A raw mutual-TLS connection (blocking) for sending hostile bytes; NULL on handshake
 * failure. Free with itest_raw_close. */
SSL *itest_raw_connect(itest_node_t *n, const char *org);
void itest_raw_close(SSL *ssl);
/* The same in two steps: _hello sends the ClientHello and returns once the node has answered
 * it (its handshake under way); _finish completes it (false, and closed, when it fails). */
SSL *itest_raw_connect_hello(itest_node_t *n, const char *org);
bool itest_raw_connect_finish(SSL *ssl);
/* Reads one frame with a timeout; returns body length, 0 on clean close, -1 on error/timeout.
 * If env is non-NULL, decodes it into arena. */
int itest_raw_read_frame(SSL *ssl, int timeout_ms, hie_arena_t *arena, hie_envelope_t **env);

/* Reads the whole node metrics page (GET /metrics) into out; returns HTTP status or -1. */
int itest_http_get(itest_node_t *n, const char *path, char *out, size_t cap);

#endif
