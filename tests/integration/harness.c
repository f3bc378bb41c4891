/*
 * harness.c - see harness.h. Test-only code: failures end the test with cr_assert.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define ITEST_SHARED_PKI "/tmp/hie-itest-pki"

static void
shared_pki(char *out, size_t cap)
{
    /* one PKI per source tree, shared by every test process */
    unsigned long h = 5381;
    for (const char *p = HIE_SOURCE_DIR; *p; p++) {
        h = h * 33 + (unsigned char)*p;
    }
    snprintf(out, cap, "%s-%lx", ITEST_SHARED_PKI, h);
    char log[1024];
    int rc = itest_sh(log, sizeof(log), "bash %s/tests/integration/make-pki.sh %s %s",
        HIE_SOURCE_DIR, HIE_SOURCE_DIR, out);
    cr_assert_eq(rc, 0, "make-pki failed: %s", log);
}

static uint16_t
free_port(void)
{
    /* A free port below the ephemeral range (32768.. on Linux): one the kernel handed out
     * from that range could be given to another test's client connection before the node
     * binds it (seen with tests that open hundreds of connections). Random, checked free. */
    static unsigned seed;
    if (seed == 0) {
        seed = (unsigned)getpid() ^ (unsigned)hie_time_mono_ns();
    }
    for (int attempt = 0; attempt < 200; attempt++) {
        seed = seed * 1103515245u + 12345u;
        uint16_t port = (uint16_t)(28000u + (seed >> 8) % 4000u); /* benches: 27000.. */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (fd >= 0) {
            close(fd);
        }
        if (ok) {
            return port;
        }
    }
    cr_assert_fail("no free port in 28000..31999");
    return 0;
}

void
itest_node_write_config(itest_node_t *n)
{
    const itest_opts_t *o = &n->opts;
    FILE *f = fopen(n->cfg, "w");
    cr_assert_not_null(f);
    fprintf(f, "node: {id: node-1, data_dir: \"%s\"}\n", n->data_dir);
    fprintf(f, "listen: {address: 127.0.0.1, port: %u}\n", n->port);
    fprintf(f, "tls:\n  ca_file: \"%s/ca/ca.crt\"\n  cert_file: \"%s/certs/node-1.crt\"\n"
        "  key_file: \"%s/certs/node-1.key\"\n", n->pki, n->pki, n->pki);
    if (!o->no_crl) {
        fprintf(f, "  crl_file: \"%s/ca/crl.pem\"\n", n->pki);
    }
    fprintf(f, "  min_version: \"%s\"\n", o->tls12 ? "1.2" : "1.3");
    if (o->crl_check_interval_ms) {
        fprintf(f, "  crl_check_interval_ms: %u\n", o->crl_check_interval_ms);
    }
    fprintf(f, "limits: {handshake_timeout_ms: %u", o->handshake_timeout_ms ?
        o->handshake_timeout_ms : 10000u);
    if (o->frame_timeout_ms) fprintf(f, ", frame_timeout_ms: %u", o->frame_timeout_ms);
    if (o->idle_timeout_ms) fprintf(f, ", idle_timeout_ms: %u", o->idle_timeout_ms);
    if (o->frame_bytes_max) fprintf(f, ", frame_bytes_max: %u", o->frame_bytes_max);
    if (o->inflight_max) fprintf(f, ", inflight_per_connection_max: %u", o->inflight_max);
    if (o->connections_max) fprintf(f, ", connections_max: %u", o->connections_max);
    if (o->edge_buffer_bytes_max) {
        fprintf(f, ", edge_buffer_bytes_max: %u", o->edge_buffer_bytes_max);
    }
    fprintf(f, "}\n");
    if (o->edge_threads) {
        fprintf(f, "edge_threads: %u\n", o->edge_threads);
    }
    fprintf(f, "workers: 2\noperator: {http_address: 127.0.0.1, http_port: %u}\n"
        "log: {level: debug}\n", n->http_port);
    if (!o->no_mpi_key) {
        fprintf(f, "mpi: {key_file: \"%s\"}\n", n->mpi_key);
    }
    fprintf(f, "consent: {regime: %s, break_glass: %s%s}\n", o->opt_in ? "opt-in" : "opt-out",
        o->no_break_glass ? "false" : "true",
        o->consent_off ? ", enforce: off-for-benchmarks-only" : "");
    fprintf(f, "audit: {checkpoint_interval_ms: %u}\n",
        o->checkpoint_interval_ms ? o->checkpoint_interval_ms : 500u);
    if (o->responder_timeout_ms || o->max_responders) { /* an explicit 0 is refused */
        fprintf(f, "query: {responder_timeout_ms: %u, max_responders: %u}\n",
            o->responder_timeout_ms ? o->responder_timeout_ms : 3000u,
            o->max_responders ? o->max_responders : 8u);
    }
    if (o->map_bytes || o->log_retain) {
        fprintf(f, "storage: {map_bytes: %llu, log_retain: %llu}\n",
            (unsigned long long)(o->map_bytes ? o->map_bytes : 4294967296ull),
            (unsigned long long)o->log_retain);
    }
    if (o->ack_timeout_ms || o->max_attempts || o->heartbeat_ms || o->retain_events ||
        o->queue_bytes_max || o->max_age_ms || o->repository_bytes_max) {
        fprintf(f, "delivery: {ack_timeout_ms: %u, max_attempts: %u, heartbeat_ms: %u, "
            "retain_events: %u, queue_bytes_max: %llu, max_age_ms: %u, "
            "repository_bytes_max: %llu}\n",
            o->ack_timeout_ms ? o->ack_timeout_ms : 30000u,
            o->max_attempts ? o->max_attempts : 8u, o->heartbeat_ms ? o->heartbeat_ms : 30000u,
            o->retain_events ? o->retain_events : 10000u,
            (unsigned long long)(o->queue_bytes_max ? o->queue_bytes_max : 1073741824ull),
            o->max_age_ms ? o->max_age_ms : 604800000u,
            (unsigned long long)(o->repository_bytes_max ? o->repository_bytes_max
                                                         : 1073741824ull));
    }
    fclose(f);
}

void
itest_node_init(itest_node_t *n, const itest_opts_t *opts)
{
    memset(n, 0, sizeof(*n));
    signal(SIGPIPE, SIG_IGN); /* a node closing on us must fail a write, not kill the test */
    if (opts != NULL) {
        n->opts = *opts;
    }
    snprintf(n->root, sizeof(n->root), "/tmp/hie-itest-XXXXXX");
    cr_assert_not_null(mkdtemp(n->root));
    snprintf(n->data_dir, sizeof(n->data_dir), "%s/data", n->root);
    snprintf(n->cfg, sizeof(n->cfg), "%s/node.yaml", n->root);
    snprintf(n->log, sizeof(n->log), "%s/node.log", n->root);
    shared_pki(n->pki, sizeof(n->pki));
    snprintf(n->mpi_key, sizeof(n->mpi_key), "%s/mpi.key", n->root);
    char out[512];
    int krc = itest_sh(out, sizeof(out), "umask 077; head -c 32 /dev/urandom > '%s'",
        n->mpi_key);
    cr_assert_eq(krc, 0, "mpi key: %s", out);
    n->port = free_port();
    n->http_port = free_port();
    itest_node_write_config(n);
}

void
itest_node_own_pki(itest_node_t *n)
{
    char out[1024], own[ITEST_PATH / 2 + 8];
    snprintf(own, sizeof(own), "%s/pki", n->root);
    int rc = itest_sh(out, sizeof(out), "cp -a '%s' '%s'", n->pki, own);
    cr_assert_eq(rc, 0, "%s", out);
    snprintf(n->pki, sizeof(n->pki), "%s", own);
    itest_node_write_config(n);
}

static bool
port_open(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Forks hie-node on n's config; its output appends to n->log. */
static pid_t
node_spawn(itest_node_t *n)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        /* a test that fails an assertion exits without its cleanup: take the node with it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1) {
            _exit(126);
        }
        if (n->opts.nofile != 0) {
            struct rlimit rl = {n->opts.nofile, n->opts.nofile};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        int fd = open(n->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, STDERR_FILENO);
        dup2(fd, STDOUT_FILENO);
        execl(HIE_NODE_BIN, "hie-node", "--config", n->cfg, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Lines of n's log that say a port could not be bound (another test process took the one
 * free_port checked, between the check and the node's bind). */
static int
port_refusals(itest_node_t *n)
{
    return itest_log_count(n, "msg=\"cannot start\" part=http") +
           itest_log_count(n, "msg=\"cannot start\" part=edge") +
           itest_log_count(n, "msg=\"cannot start\" part=listen rc=EADDRINUSE");
}

void
itest_node_start(itest_node_t *n)
{
    for (int attempt = 0;; attempt++) {
        /* the log keeps earlier runs' lines: this run's are the ones past these counts */
        int started = itest_log_count(n, "msg=\"node started\""), refused = port_refusals(n);
        pid_t pid = node_spawn(n);
        n->pid = pid;
        for (int i = 0; i < 1500; i++) {
            if (itest_log_count(n, "msg=\"node started\"") > started && port_open(n->port)) {
                return;
            }
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                n->pid = 0;
                if (attempt < 3 && port_refusals(n) > refused) {
                    break; /* new ports, and again */
                }
                char out[4096];
                itest_sh(out, sizeof(out), "tail -20 '%s'", n->log);
                cr_assert_fail("hie-node exited at start (status %d): %s", status, out);
            }
            usleep(10000);
        }
        if (n->pid != 0) {
            cr_assert_fail("hie-node did not start within 15 s");
        }
        n->port = free_port();
        n->http_port = free_port();
        itest_node_write_config(n);
    }
}

bool
itest_node_alive(itest_node_t *n)
{
    if (n->pid <= 0) {
        return false;
    }
    int status;
    if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
        n->pid = 0;
        return false;
    }
    return true;
}

int
itest_node_stop(itest_node_t *n, int sig)
{
    if (n->pid <= 0) {
        return -1;
    }
    kill(n->pid, sig);
    for (int i = 0; i < 2000; i++) {
        int status;
        pid_t r = waitpid(n->pid, &status, WNOHANG);
        if (r == n->pid) {
            n->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10000);
    }
    kill(n->pid, SIGKILL);
    waitpid(n->pid, NULL, 0);
    n->pid = 0;
    return -2;
}

void
itest_node_cleanup(itest_node_t *n)
{
    if (n->pid > 0) {
        kill(n->pid, SIGKILL);
        waitpid(n->pid, NULL, 0);
        n->pid = 0;
    }
    if (n->root[0] != '\0' && getenv("HIE_ITEST_KEEP") == NULL) {
        char out[256];
        itest_sh(out, sizeof(out), "rm -rf '%s'", n->root);
    }
}

static int
sh_v(char *out, size_t cap, const char *fmt, va_list ap)
{
    char cmd[8192];
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    char full[8300];
    snprintf(full, sizeof(full), "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (p == NULL) {
        return -1;
    }
    size_t len = 0;
    if (cap > 0) {
        out[0] = '\0';
    }
    char buf[4096];
    size_t r;
    while ((r = fread(buf, 1, sizeof(buf), p)) > 0) {
        size_t take = cap > len + 1 ? (r < cap - len - 1 ? r : cap - len - 1) : 0;
        memcpy(out + len, buf, take);
        len += take;
    }
    if (cap > 0) {
        out[len] = '\0';
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int
itest_sh(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sh_v(out, cap, fmt, ap);
    va_end(ap);
    return rc;
}

int
itest_ctl(itest_node_t *n, char *out, size_t cap, const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    return itest_sh(out, cap, "'%s' --config '%s' %s", HIE_CTL_BIN, n->cfg, args);
}

int
itest_hie(itest_node_t *n, const char *org, char *out, size_t cap, const char *fmt, ...)
{
    char args[4096], cert[1200] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    if (org != NULL) {
        snprintf(cert, sizeof(cert), "--cert '%s/certs/%s.crt' --key '%s/certs/%s.key'", n->pki,
            org, n->pki, org);
    }
    return itest_sh(out, cap, "'%s' --addr 127.0.0.1:%u --ca '%s/ca/ca.crt' %s %s", HIE_CLI_BIN,
        n->port, n->pki, cert, args);
}

void
itest_register(itest_node_t *n, const char *org, const char *roles)
{
    char out[2048];
    int rc = itest_ctl(n, out, sizeof(out), "org register %s --name '%s Org' --roles %s", org,
        org, roles);
    cr_assert_eq(rc, 0, "register %s failed: %s", org, out);
}

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

int
itest_log_count(itest_node_t *n, const char *needle)
{
    size_t len = 0;
    char *buf = read_file(n->log, &len);
    if (buf == NULL) {
        return 0;
    }
    int count = 0;
    for (char *p = buf; (p = strstr(p, needle)) != NULL; p += strlen(needle)) {
        count++;
    }
    free(buf);
    return count;
}

size_t
itest_db_entries(itest_node_t *n, const char *db)
{
    char dir[ITEST_PATH + 16];
    snprintf(dir, sizeof(dir), "%s/state", n->data_dir);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_stat st = {0};
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 64);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    if (mdb_dbi_open(txn, db, 0, &dbi) == 0) {
        cr_assert_eq(mdb_stat(txn, dbi, &st), 0);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return st.ms_entries;
}

size_t
itest_db_entries_wait(itest_node_t *n, const char *db, size_t want, int timeout_ms)
{
    size_t got = itest_db_entries(n, db);
    for (int t = 0; got != want && t < timeout_ms; t += 5) {
        usleep(5000);
        got = itest_db_entries(n, db);
    }
    return got;
}

size_t
itest_db_entries_settled(itest_node_t *n, const char *db)
{
    size_t prev = itest_db_entries(n, db), got = prev;
    for (int t = 0; t < 5000; t += 50) {
        usleep(50000);
        got = itest_db_entries(n, db);
        if (got == prev) {
            break;
        }
        prev = got;
    }
    return got;
}

bool
itest_log_contains(itest_node_t *n, const char *needle)
{
    return itest_log_count(n, needle) > 0;
}

bool
itest_log_wait(itest_node_t *n, const char *needle, int timeout_ms)
{
    for (int t = 0; t <= timeout_ms; t += 20) {
        if (itest_log_contains(n, needle)) {
            return true;
        }
        usleep(20000);
    }
    return false;
}

hie_client_t *
itest_client(itest_node_t *n, const char *org)
{
    char ca[ITEST_PATH + 16], cert[ITEST_PATH + 64], key[ITEST_PATH + 64];
    snprintf(ca, sizeof(ca), "%s/ca/ca.crt", n->pki);
    snprintf(cert, sizeof(cert), "%s/certs/%s.crt", n->pki, org);
    snprintf(key, sizeof(key), "%s/certs/%s.key", n->pki, org);
    hie_client_config_t cfg = {.host = "127.0.0.1", .port = n->port, .ca_file = ca,
        .cert_file = cert, .key_file = key, .server_name = "node-1",
        .connect_timeout_ms = 5000};
    hie_client_t *c = NULL;
    int rc = hie_client_create(&c, &cfg);
    cr_assert_eq(rc, 0, "client create: %s", hie_strerror(rc));
    return c;
}

int
itest_ping(hie_client_t *c, const char *id)
{
    char idbuf[64];
    if (id == NULL) {
        hie_client_new_id(idbuf, sizeof(idbuf));
        id = idbuf;
    }
    hie_envelope_t req;
    Hie__V1__Ping ping;
    hie__v1__envelope__init(&req);
    hie__v1__ping__init(&ping);
    req.id = (char *)(uintptr_t)id;
    req.body_case = HIE__V1__ENVELOPE__BODY_PING;
    req.ping = &ping;
    hie_arena_t *arena = NULL;
    if (hie_arena_create(&arena, 1 << 20) != 0) {
        return HIE_ENOMEM;
    }
    hie_envelope_t *reply = NULL;
    int rc = hie_client_call(c, &req, 5000, arena, &reply);
    if (rc == 0 && reply->body_case != HIE__V1__ENVELOPE__BODY_PONG) {
        rc = reply->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? -1000 - (int)reply->error->code
                                                                : -999;
    }
    hie_arena_destroy(&arena);
    return rc;
}

/* A client session for org's certificate on a new TCP connection, not yet handshaken. */
static SSL *
itest_raw_connect_start(itest_node_t *n, const char *org)
{
    char ca[ITEST_PATH + 16], cert[ITEST_PATH + 64], key[ITEST_PATH + 64];
    snprintf(ca, sizeof(ca), "%s/ca/ca.crt", n->pki);
    snprintf(cert, sizeof(cert), "%s/certs/%s.crt", n->pki, org);
    snprintf(key, sizeof(key), "%s/certs/%s.key", n->pki, org);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_load_verify_locations(ctx, ca, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    cr_assert_eq(SSL_CTX_use_certificate_chain_file(ctx, cert), 1);
    cr_assert_eq(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(n->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL keeps its reference */
    SSL_set_fd(ssl, fd);
    return ssl;
}

SSL *
itest_raw_connect(itest_node_t *n, const char *org)
{
    SSL *ssl = itest_raw_connect_start(n, org);
    return itest_raw_connect_finish(ssl) ? ssl : NULL;
}

SSL *
itest_raw_connect_hello(itest_node_t *n, const char *org)
{
    SSL *ssl = itest_raw_connect_start(n, org);
    int fd = SSL_get_fd(ssl);
    /* the ClientHello goes out on the socket, but the client reads from an empty buffer
     * until the node has answered: a fast node's answer, read at once, finished the whole
     * handshake in this call (seen in CI) */
    BIO *sock = SSL_get_rbio(ssl);
    BIO *none = BIO_new(BIO_s_mem());
    cr_assert(sock != NULL && none != NULL && BIO_up_ref(sock) == 1);
    BIO_set_mem_eof_return(none, -1);
    SSL_set0_rbio(ssl, none);
    int r = SSL_connect(ssl);
    cr_assert_eq(r, -1);
    cr_assert_eq(SSL_get_error(ssl, r), SSL_ERROR_WANT_READ);
    /* the node's answer is here once it has the ClientHello: its handshake is under way */
    struct pollfd p = {fd, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 5000), 1, "no ServerHello");
    SSL_set0_rbio(ssl, sock); /* the socket again (frees none) */
    return ssl;
}

bool
itest_raw_connect_finish(SSL *ssl)
{
    if (SSL_connect(ssl) != 1) {
        itest_raw_close(ssl);
        return false;
    }
    return true;
}

void
itest_raw_close(SSL *ssl)
{
    if (ssl == NULL) {
        return;
    }
    int fd = SSL_get_fd(ssl);
    SSL_free(ssl);
    close(fd);
    ERR_clear_error();
}

static int
raw_read_exact(SSL *ssl, uint8_t *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    int fd = SSL_get_fd(ssl);
    while (got < len) {
        if (SSL_pending(ssl) == 0) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, timeout_ms) <= 0) {
                return -1;
            }
        }
        int r = SSL_read(ssl, buf + got, (int)(len - got));
        if (r <= 0) {
            int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_READ) {
                continue;
            }
            return e == SSL_ERROR_ZERO_RETURN && got == 0 ? 0 : -1;
        }
        got += (size_t)r;
    }
    return 1;
}

int
itest_raw_read_frame(SSL *ssl, int timeout_ms, hie_arena_t *arena, hie_envelope_t **env)
{
    uint8_t hdr[4];
    int r = raw_read_exact(ssl, hdr, 4, timeout_ms);
    if (r <= 0) {
        return r;
    }
    uint32_t len = hie_load_be32(hdr);
    if (len == 0 || len > (16u << 20)) {
        return -1;
    }
    uint8_t *body = malloc(len);
    r = raw_read_exact(ssl, body, len, timeout_ms);
    if (r > 0 && env != NULL) {
        ProtobufCMessage *m = NULL;
        r = hie_proto_unpack(&hie__v1__envelope__descriptor, hie_span(body, len), arena, &m) == 0
            ? 1 : -1;
        *env = (hie_envelope_t *)m;
    }
    free(body);
    return r > 0 ? (int)len : -1;
}

int
itest_http_get(itest_node_t *n, const char *path, char *out, size_t cap)
{
    char status[64];
    int rc = itest_sh(out, cap, "curl -s --max-time 5 http://127.0.0.1:%u%s", n->http_port,
        path);
    if (rc != 0) {
        return -1;
    }
    rc = itest_sh(status, sizeof(status),
        "curl -s -o /dev/null -w '%%{http_code}' --max-time 5 http://127.0.0.1:%u%s",
        n->http_port, path);
    return rc == 0 ? atoi(status) : -1;
}
