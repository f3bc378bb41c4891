/*
 * harness.h - shared set-up code of the benchmarks in bench/ (not a library of the product).
 *
 * Purpose: what every benchmark repeats: raising RLIMIT_NOFILE, a temporary directory, the
 * development PKI (deploy/dev-pki.sh), starting and stopping an hie-node child process on
 * 127.0.0.1, registering a member with hiectl, latency percentiles, per-thread CPU of the node,
 * TLS contexts built with OpenSSL directly (the benchmarks must not depend on client/), and the
 * member protocol's Ping frame.
 *
 * Threads: the process-wide parts (child registry, temporary directory, signal handlers) are
 * set up from main() before any benchmark thread starts; the TLS and frame helpers may be
 * called from any thread.
 *
 * Cleanup: every child process started through bench_spawn() is registered; an atexit()
 * handler and handlers for SIGINT, SIGTERM, SIGHUP, SIGABRT and SIGSEGV kill them and remove
 * the temporary directory, so a failing benchmark leaves nothing behind. Children also get
 * PR_SET_PDEATHSIG, in case the benchmark is killed with SIGKILL.
 *
 * Limits: every wait is bounded in time (see the *_timeout_ms parameters).
 */
#ifndef HIE_BENCH_HARNESS_H
#define HIE_BENCH_HARNESS_H

#include "hie/base.h"
#include "hie/proto.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_PATH_BYTES 512u
#define BENCH_ROOT_BYTES 256u /* the temporary directory; derived paths fit in BENCH_PATH_BYTES */
#define BENCH_PORT_FIRST 27000u
#define BENCH_PORT_LAST 27999u
#define BENCH_MEMBER "general-hospital"
#define BENCH_NODE_ID "node-1"
/* Fixed seed of every workload (payload bytes, ids): runs are reproducible. */
#define BENCH_SEED 0x6869656265ull
/* Hard cap on the life of an in-process baseline server thread (normally stopped long before). */
#define BENCH_SERVER_LIFETIME_NS (1800ull * 1000000000ull)

/* Raises RLIMIT_NOFILE to its hard limit; returns the new soft limit. */
uint64_t bench_rlimit_raise(void);

/* Installs the cleanup handlers and creates /tmp/hiebench-XXXXXX (mode 0700) into dir, which
 * is removed at exit unless keep is true. Returns 0 or -errno. Main thread only, once. */
HIE_MUST_CHECK int bench_setup(char *dir, size_t dir_bytes, bool keep);

/* Runs argv[0] (a path) with stdout and stderr appended to log_path; waits at most
 * timeout_ms, then kills it. Returns its exit status (0..255), 128+signal, or -errno. */
HIE_MUST_CHECK int bench_run(const char *const *argv, const char *log_path, int timeout_ms);

/* Starts argv[0] in the background (registered for cleanup), output appended to log_path.
 * [out] *pid. Returns 0 or -errno. */
HIE_MUST_CHECK int bench_spawn(const char *const *argv, const char *log_path, pid_t *pid);

/* Creates the development PKI in <root>/pki. Returns 0 or a non-zero status. */
HIE_MUST_CHECK int bench_pki_create(const char *root);

/* A free TCP port on 127.0.0.1 in BENCH_PORT_FIRST..BENCH_PORT_LAST, picked at random per
 * run (the workload seed is fixed; the port is not part of the workload). 0 if none. */
uint16_t bench_port_pick(void);

typedef struct bench_node {
    pid_t pid;                     /* 0 when not running */
    uint16_t port;
    char root[BENCH_ROOT_BYTES];   /* the benchmark's temporary directory */
    char cfg[BENCH_PATH_BYTES];    /* <root>/node.yaml */
    char log[BENCH_PATH_BYTES];    /* <root>/node.log: the node's stderr */
} bench_node_t;

/* Writes <root>/node.yaml (workers, log level, port picked here), starts HIE_NODE_BIN and waits
 * (at most timeout_ms) for `msg="node started"` in its log, or (log levels above info) for its
 * admin socket, which the node binds after the edge listens.
 * Retries with another port if the node exits early. Returns 0 or an error (logged). */
HIE_MUST_CHECK int bench_node_start(bench_node_t *n, const char *root, unsigned workers,
    const char *log_level, int timeout_ms);

/* The same, with extra_yaml (top-level keys, e.g. "mpi: {key_file: ...}\n") appended to the
 * config; NULL for none. */
HIE_MUST_CHECK int bench_node_start_with(bench_node_t *n, const char *root, unsigned workers,
    const char *log_level, const char *extra_yaml, int timeout_ms);

/* Registers org with the running node through HIE_CTL_BIN. Returns 0 or hiectl's status. */
HIE_MUST_CHECK int bench_node_register(const bench_node_t *n, const char *org,
    const char *name, const char *roles);

/* Sends SIGTERM, waits at most timeout_ms, then SIGKILL. Returns the node's exit status,
 * 128+signal, or -1 when it had to be killed. NULL-safe and idempotent. */
int bench_node_stop(bench_node_t *n, int timeout_ms);

/* Prints how many warn and error lines the node logged since byte offset *from (and up to
 * examples of distinct messages), then moves *from to the end. Returns the count. */
unsigned bench_node_log_report(const bench_node_t *n, long *from, unsigned examples);

/* CPU time of every thread of pid, in clock ticks; for the busiest-thread figure. */
#define BENCH_THREADS_MAX 64u
typedef struct bench_cpu {
    unsigned count;
    pid_t tid[BENCH_THREADS_MAX];
    uint64_t ticks[BENCH_THREADS_MAX];
    char name[BENCH_THREADS_MAX][16]; /* the thread's name (comm), e.g. "hie-worker-1" */
    uint64_t total_ticks;        /* the whole process, threads that exited included */
    uint64_t when_ns;
} bench_cpu_t;
void bench_cpu_sample(pid_t pid, bench_cpu_t *out);
/* Between two samples: the process's CPU in % of one core, and the busiest thread's. */
void bench_cpu_delta(const bench_cpu_t *a, const bench_cpu_t *b, double *total_pct,
    double *max_thread_pct, pid_t *max_tid);
/* Between two samples: CPU microseconds per op (ops in the interval) of each group of
 * threads, grouped by name without its "-N" suffix ("hie-worker-0" and "-1" are "worker"),
 * written as "log=4.1 worker=9.0 ..." into out. */
void bench_cpu_by_name(const bench_cpu_t *a, const bench_cpu_t *b, uint64_t ops, char *out,
    size_t out_bytes);

/* Sorts lat_ns[0..n) and returns the 50th and 99th percentiles in microseconds. */
void bench_percentiles(uint64_t *lat_ns, size_t n, double *p50_us, double *p99_us);

/* xorshift64*: the benchmarks' only PRNG, seeded with BENCH_SEED. */
uint64_t bench_rand(uint64_t *state);

/* ---- TLS (OpenSSL directly) -------------------------------------------------------------- */
/* Client context: TLS 1.3 only, the member's certificate and key from <root>/pki/certs, the
 * CA as trust anchor, server verified (chain + IP 127.0.0.1), no session cache or tickets, so
 * every handshake is a full one. Returns NULL on failure (reason printed). */
SSL_CTX *bench_tls_client_ctx(const char *root, const char *member);
/* Server context for the bare baselines, configured like the node's (node/src/tls.c): TLS 1.3,
 * node-1's certificate, client certificate required and verified against the CA with the CRL
 * (CRL_CHECK | CRL_CHECK_ALL), clientAuth purpose, no tickets, no session cache. */
SSL_CTX *bench_tls_server_ctx(const char *root);

/* The common start of the edge benchmarks: temp dir, PKI, client and server TLS contexts, a
 * node with 2 workers and BENCH_MEMBER registered. Returns 0 or an error (printed). */
HIE_MUST_CHECK int bench_edge_env(char *root, size_t root_bytes, bool keep,
    const char *log_level, bench_node_t *node, SSL_CTX **cli, SSL_CTX **srv);

/* Blocking TCP connect to 127.0.0.1:port with TCP_NODELAY and 5 s send/receive timeouts.
 * Returns the fd or -errno. */
int bench_tcp_connect(uint16_t port);
/* Listening socket on 127.0.0.1:port (SO_REUSEADDR). Returns the fd or -errno. */
int bench_tcp_listen(uint16_t port, int backlog, bool nonblocking);

/* ---- blocking TLS I/O ----------------------------------------------------------------------- */
/* Writes all of buf (bounded retries). Returns 0 or HIE_ETLS. */
HIE_MUST_CHECK int bench_ssl_write_all(SSL *ssl, const uint8_t *buf, size_t len);
/* Reads exactly len bytes. Returns 0 or HIE_ETLS. */
HIE_MUST_CHECK int bench_ssl_read_exact(SSL *ssl, uint8_t *buf, size_t len);
/* Reads one frame's body into buf (cap bytes); [out] *body_len. Returns 0, HIE_ETLS or the
 * frame header's error. */
HIE_MUST_CHECK int bench_ssl_read_frame(SSL *ssl, uint8_t *buf, size_t cap, size_t *body_len);

/* ---- frames ------------------------------------------------------------------------------ */
/* Encodes a Ping request with id and payload into a new hie_mem frame (prefix included).
 * [out] *buf, *len: freed with hie_mem_free(*buf, *len). Returns 0 or an HIE_E* code. */
HIE_MUST_CHECK int bench_ping_frame(const char *id, const uint8_t *payload, size_t payload_len,
    uint8_t **buf, size_t *len);
/* Encodes a Pong reply correlated to corr_id (for the bare servers). Same ownership. */
HIE_MUST_CHECK int bench_pong_frame(const char *corr_id, const uint8_t *payload,
    size_t payload_len, uint8_t **buf, size_t *len);
/* Checks that body (one frame's body, no prefix) is a Pong whose correlation_id is id (or,
 * when echo is true, a Ping whose id is id: the bare echo server sends the request back).
 * id NULL: any correlation (the bare handshake server's fixed reply).
 * Returns 0, HIE_EPROTO (not an envelope) or HIE_EINVAL (another body, e.g. an Error). */
HIE_MUST_CHECK int bench_reply_check(const uint8_t *body, size_t len, const char *id,
    bool echo);

#endif
