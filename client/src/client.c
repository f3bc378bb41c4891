/*
 * client.c - the member client: one mutual-TLS connection to a hie-node, frames of a 4-byte
 * big-endian length and an Envelope, requests matched to replies by correlation_id.
 *
 * Invariants:
 * - c->fd >= 0 whenever c->ssl != NULL; both are closed together by conn_close().
 * - The socket is non-blocking; every wait is a poll() bounded by a deadline (no busy loops).
 * - The receive buffer holds at most the frame being assembled: we read the 4-byte prefix, check
 *   it against frame_bytes_max, and only then grow the buffer for the body and read exactly it.
 * - Any I/O, TLS, protocol or timeout failure closes the connection (the next call reconnects);
 *   last_error then describes it. Reply bodies are never copied into last_error.
 *
 * Callers: the `hie` command line (client/src/hie_cli.c), integration tests, benchmarks.
 */
#include "hie/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#define CLIENT_MAGIC 0x48434c54u /* "HCLT" */
#define CLIENT_ERROR_BYTES 512u
#define CLIENT_CONNECT_TIMEOUT_MS_DEFAULT 10000u
/* Addresses of one host we try before giving up: enough for v4 + v6 of a few records. */
#define CLIENT_ADDRS_MAX 8u
/* OpenSSL errors copied into last_error per failure; the first ones name the cause. */
#define CLIENT_TLS_ERRORS_MAX 4u
/* A receive buffer larger than this is freed after each frame, so one large reply does not
 * pin megabytes for the life of the connection. */
#define CLIENT_RBUF_KEEP_BYTES (64u * 1024u)
/* Replies to other ids one call skips before it calls the stream broken: the node never has
 * more than HIE_EDGE_INFLIGHT_MAX of our requests in flight. */
#define CLIENT_SKIPPED_REPLIES_MAX HIE_EDGE_INFLIGHT_MAX
/* Characters of a new id after the "c-" prefix, from a 36-letter alphabet (~134 bits). */
#define CLIENT_ID_RANDOM_CHARS 26u
#define CLIENT_ID_REFILLS_MAX 8u

_Static_assert(2u + CLIENT_ID_RANDOM_CHARS + 1u <= HIE_CLIENT_ID_BUF_BYTES,
    "id buffer too small for the id");
_Static_assert(2u + CLIENT_ID_RANDOM_CHARS <= HIE_PROTO_ID_BYTES_MAX, "new ids must be valid");

/* What an SSL call was doing, for the error mapping in ssl_step(). */
enum client_phase { PHASE_HANDSHAKE, PHASE_WRITE, PHASE_READ };

struct hie_client {
    uint32_t magic;
    int fd;                   /* -1 when not connected */
    SSL_CTX *ctx;             /* built once in create */
    SSL *ssl;                 /* NULL when not connected */
    bool ssl_broken;          /* a fatal error happened: no close_notify on close */
    char *host;
    char *server_name;        /* NULL: verify the chain only */
    /* the TLS context's files, kept to build it again when the CRL file changes */
    char *ca_file, *cert_file, *key_file, *crl_file;
    int tls_min_version, tls_max_version;
    struct stat crl_st;       /* the CRL file as last loaded */
    uint16_t port;
    uint32_t connect_timeout_ms;
    uint32_t frame_bytes_max;
    uint8_t *rbuf;            /* the frame being assembled */
    size_t rbuf_bytes;        /* capacity of rbuf */
    size_t rbuf_len;          /* bytes of the frame received so far */
    char last_error[CLIENT_ERROR_BYTES];
};

/* ---- errors ------------------------------------------------------------------------------ */

static void client_error_set(hie_client_t *c, const char *fmt, ...) HIE_PRINTF(2, 3);

static void
client_error_set(hie_client_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
    va_end(ap);
    if (n < 0) {
        c->last_error[0] = '\0';
    }
}

static void client_error_append(hie_client_t *c, const char *fmt, ...) HIE_PRINTF(2, 3);

static void
client_error_append(hie_client_t *c, const char *fmt, ...)
{
    size_t used = strlen(c->last_error);
    HIE_ASSERT(used < sizeof(c->last_error));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->last_error + used, sizeof(c->last_error) - used, fmt, ap);
    va_end(ap);
    if (n < 0) {
        c->last_error[used] = '\0';
    }
}

/* Lowercases the letter at index at of last_error (libc messages start with a capital). */
static void
client_error_lower_at(hie_client_t *c, size_t at)
{
    if (at < sizeof(c->last_error) && c->last_error[at] >= 'A' && c->last_error[at] <= 'Z') {
        c->last_error[at] = (char)(c->last_error[at] - 'A' + 'a');
    }
}

/* "what: strerror(err)", lowercase, for git-style messages; just the reason when what is "". */
static void
client_error_errno(hie_client_t *c, const char *what, int err)
{
    HIE_ASSERT(err > 0);
    client_error_set(c, "%s%s%s", what, what[0] != '\0' ? ": " : "", strerror(err));
    client_error_lower_at(c, strlen(what) + (what[0] != '\0' ? 2u : 0u));
}

/* Moves OpenSSL's error queue (and a failed verification's reason) into last_error, after
 * "what" when it is not empty. Clears the queue. */
static void
client_error_tls(hie_client_t *c, const char *what)
{
    client_error_set(c, "%s", what);
    const char *sep = what[0] != '\0' ? ": " : "";
    unsigned long e;
    for (unsigned i = 0; i < CLIENT_TLS_ERRORS_MAX && (e = ERR_get_error()) != 0; i++) {
        char text[256];
        ERR_error_string_n(e, text, sizeof(text));
        client_error_append(c, "%s%s", sep, text);
        sep = "; ";
    }
    ERR_clear_error();
    if (c->ssl != NULL) {
        long v = SSL_get_verify_result(c->ssl);
        if (v != X509_V_OK) {
            const char *reason = X509_verify_cert_error_string(v);
            if (sep[0] == ';') { /* after OpenSSL's "certificate verify failed" */
                client_error_append(c, " (%s)", reason);
            } else {
                client_error_append(c, "%scertificate verify failed: %s", sep, reason);
            }
        }
    }
    if (c->last_error[0] == '\0') {
        client_error_set(c, "tls failure");
    }
}

/* ---- create / destroy -------------------------------------------------------------------- */

static int
config_check(const hie_client_config_t *cfg, char *err, size_t err_bytes)
{
    if (cfg->host == NULL || cfg->host[0] == '\0' || cfg->port == 0) {
        snprintf(err, err_bytes, "host and port are required");
        return HIE_EINVAL;
    }
    if (cfg->ca_file == NULL || cfg->ca_file[0] == '\0') {
        snprintf(err, err_bytes, "a ca file is required");
        return HIE_EINVAL;
    }
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
        snprintf(err, err_bytes, "a certificate needs a key and a key needs a certificate");
        return HIE_EINVAL;
    }
    if (cfg->frame_bytes_max != 0 && (cfg->frame_bytes_max < HIE_PROTO_FRAME_BYTES_MIN ||
                                         cfg->frame_bytes_max > HIE_PROTO_FRAME_BYTES_MAX)) {
        snprintf(err, err_bytes, "frame_bytes_max must be %u..%u", HIE_PROTO_FRAME_BYTES_MIN,
            HIE_PROTO_FRAME_BYTES_MAX);
        return HIE_EINVAL;
    }
    int min = cfg->tls_min_version != 0 ? cfg->tls_min_version : TLS1_3_VERSION;
    if (cfg->tls_max_version != 0 && min > cfg->tls_max_version) {
        snprintf(err, err_bytes, "tls_min_version is above tls_max_version");
        return HIE_EINVAL;
    }
    return 0;
}

/* Never prompt on the terminal for a key passphrase: an encrypted key fails to load instead. */
static int
ctx_no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return 0;
}

static int
ctx_versions(hie_client_t *c, const hie_client_config_t *cfg)
{
    int min = cfg->tls_min_version != 0 ? cfg->tls_min_version : TLS1_3_VERSION;
    if (SSL_CTX_set_min_proto_version(c->ctx, min) != 1 ||
        SSL_CTX_set_max_proto_version(c->ctx, cfg->tls_max_version) != 1) {
        client_error_tls(c, "invalid tls version");
        return HIE_EINVAL;
    }
    if (cfg->tls_max_version != 0 && cfg->tls_max_version < TLS1_2_VERSION) {
        /* Only for tests of the node's refusal: OpenSSL 3 will not offer TLS 1.1 or older at
         * security level 1 or above, and the test needs the node to see the offer. */
        SSL_CTX_set_security_level(c->ctx, 0);
    } else if (SSL_CTX_set_cipher_list(c->ctx, HIE_TLS12_CIPHERS) != 1) {
        /* TLS 1.2 offers (and accepts from a server) the ITI-19 suites only, as the node */
        client_error_tls(c, "cannot set tls 1.2 ciphers");
        return HIE_ETLS;
    }
    return 0;
}

/* client_error_tls() with "what path" in front; paths are ours, never member data. */
static int
ctx_file_error(hie_client_t *c, const char *what, const char *path)
{
    char prefix[CLIENT_ERROR_BYTES / 2];
    snprintf(prefix, sizeof(prefix), "%s %s", what, path);
    client_error_tls(c, prefix);
    return HIE_ETLS;
}

static int
ctx_load_files(hie_client_t *c, const hie_client_config_t *cfg)
{
    if (SSL_CTX_load_verify_file(c->ctx, cfg->ca_file) != 1) {
        return ctx_file_error(c, "load ca file", cfg->ca_file);
    }
    if (cfg->crl_file != NULL) {
        X509_STORE *store = SSL_CTX_get_cert_store(c->ctx);
        X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
        if (lookup == NULL || X509_load_crl_file(lookup, cfg->crl_file, X509_FILETYPE_PEM) <= 0) {
            return ctx_file_error(c, "load crl", cfg->crl_file);
        }
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    }
    if (cfg->cert_file == NULL) {
        return 0;
    }
    HIE_ASSERT(cfg->key_file != NULL);
    struct stat sb; /* as the node holds its own: a key others can read is not private */
    if (stat(cfg->key_file, &sb) == 0 && (!S_ISREG(sb.st_mode) || (sb.st_mode & 0077) != 0)) {
        client_error_set(c, "key file %s must be a regular file only its owner can read "
            "(chmod 600)", cfg->key_file);
        return HIE_ETLS;
    }
    if (SSL_CTX_use_certificate_chain_file(c->ctx, cfg->cert_file) != 1) {
        return ctx_file_error(c, "load certificate", cfg->cert_file);
    }
    if (SSL_CTX_use_PrivateKey_file(c->ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
        return ctx_file_error(c, "load key", cfg->key_file);
    }
    if (SSL_CTX_check_private_key(c->ctx) != 1) {
        return ctx_file_error(c, "key does not match certificate", cfg->cert_file);
    }
    return 0;
}

/* The node's certificate must say serverAuth: OpenSSL's SSL_SERVER purpose passes one with
 * no extendedKeyUsage at all (a member's certificate issued with --eku none, say). */
static int
ctx_verify_cb(int ok, X509_STORE_CTX *x)
{
    X509 *cert = X509_STORE_CTX_get_current_cert(x);
    if (ok && X509_STORE_CTX_get_error_depth(x) == 0 &&
        ((X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) == 0 ||
            (X509_get_extended_key_usage(cert) & XKU_SSL_SERVER) == 0)) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_INVALID_PURPOSE);
        return 0;
    }
    return ok;
}

static int
ctx_create(hie_client_t *c, const hie_client_config_t *cfg)
{
    ERR_clear_error();
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL) {
        client_error_tls(c, "create tls context");
        return HIE_ENOMEM;
    }
    int rc = ctx_versions(c, cfg);
    if (rc != 0) {
        return rc;
    }
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, ctx_verify_cb);
    SSL_CTX_set_verify_depth(c->ctx, HIE_TLS_VERIFY_DEPTH_MAX);
    SSL_CTX_set_max_cert_list(c->ctx, HIE_TLS_CERT_LIST_BYTES_MAX);
    SSL_CTX_set_default_passwd_cb(c->ctx, ctx_no_passphrase);
    return ctx_load_files(c, cfg);
}

/* A copy of s in *dst (NULL stays NULL); false when out of memory. */
static bool
str_keep(char **dst, const char *s)
{
    *dst = s != NULL ? hie_mem_strdup(s) : NULL;
    return s == NULL || *dst != NULL;
}

static int
client_strings_copy(hie_client_t *c, const hie_client_config_t *cfg)
{
    c->host = hie_mem_strdup(cfg->host);
    if (c->host == NULL || !str_keep(&c->ca_file, cfg->ca_file) ||
        !str_keep(&c->cert_file, cfg->cert_file) || !str_keep(&c->key_file, cfg->key_file) ||
        !str_keep(&c->crl_file, cfg->crl_file)) {
        return HIE_ENOMEM;
    }
    c->tls_min_version = cfg->tls_min_version;
    c->tls_max_version = cfg->tls_max_version;
    if (cfg->server_name != NULL && cfg->server_name[0] != '\0') {
        c->server_name = hie_mem_strdup(cfg->server_name);
        if (c->server_name == NULL) {
            return HIE_ENOMEM;
        }
    }
    return 0;
}

int
hie_client_create_err(hie_client_t **out, const hie_client_config_t *cfg, char *err_buf,
    size_t err_buf_bytes)
{
    hie_client_t *c = NULL;
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(cfg != NULL);
    HIE_ASSERT(err_buf != NULL);
    HIE_ASSERT(err_buf_bytes > 0);
    *out = NULL;
    err_buf[0] = '\0';
    int rc = config_check(cfg, err_buf, err_buf_bytes);
    if (rc != 0) {
        goto out;
    }
    if (sodium_init() < 0) {
        snprintf(err_buf, err_buf_bytes, "libsodium failed to initialise");
        rc = HIE_EUNAVAIL;
        goto out;
    }
    rc = HIE_ENOMEM;
    c = hie_mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        goto out;
    }
    c->magic = CLIENT_MAGIC;
    c->fd = -1;
    c->port = cfg->port;
    c->connect_timeout_ms = cfg->connect_timeout_ms != 0 ? cfg->connect_timeout_ms
                                                         : CLIENT_CONNECT_TIMEOUT_MS_DEFAULT;
    c->frame_bytes_max = cfg->frame_bytes_max != 0 ? cfg->frame_bytes_max
                                                   : HIE_PROTO_FRAME_BYTES_DEFAULT;
    rc = client_strings_copy(c, cfg);
    if (rc == 0 && c->crl_file != NULL && stat(c->crl_file, &c->crl_st) != 0) {
        memset(&c->crl_st, 0, sizeof(c->crl_st));
    }
    if (rc == 0) {
        rc = ctx_create(c, cfg);
    }
    if (rc != 0) {
        snprintf(err_buf, err_buf_bytes, "%s",
            c->last_error[0] != '\0' ? c->last_error : hie_strerror(rc));
    }
out:
    if (rc != 0) {
        hie_client_destroy(&c);
        if (err_buf[0] == '\0') {
            snprintf(err_buf, err_buf_bytes, "%s", hie_strerror(rc));
        }
        return rc;
    }
    c->last_error[0] = '\0';
    *out = c;
    return 0;
}

int
hie_client_create(hie_client_t **out, const hie_client_config_t *cfg)
{
    char err[CLIENT_ERROR_BYTES];
    return hie_client_create_err(out, cfg, err, sizeof(err));
}

void
hie_client_destroy(hie_client_t **client)
{
    HIE_ASSERT(client != NULL);
    hie_client_t *c = *client;
    if (c == NULL) {
        return;
    }
    HIE_ASSERT(c->magic == CLIENT_MAGIC);
    hie_client_close(c);
    HIE_ASSERT(c->fd == -1);
    SSL_CTX_free(c->ctx);
    hie_mem_strfree(c->host);
    hie_mem_strfree(c->server_name);
    hie_mem_strfree(c->ca_file);
    hie_mem_strfree(c->cert_file);
    hie_mem_strfree(c->key_file);
    hie_mem_strfree(c->crl_file);
    hie_mem_free(c->rbuf, c->rbuf_bytes);
    c->magic = 0;
    hie_mem_free(c, sizeof(*c));
    *client = NULL;
}

/* ---- connection -------------------------------------------------------------------------- */

static uint64_t
deadline_after_ms(uint32_t timeout_ms)
{
    return hie_time_mono_ns() + (uint64_t)timeout_ms * 1000000u;
}

/* Waits until fd is ready for events or the deadline passes. Returns 0 (ready, or an error
 * condition the next I/O call will report), HIE_ETIMEDOUT or -errno. */
static int
conn_wait(int fd, short events, uint64_t deadline_ns)
{
    HIE_ASSERT(fd >= 0);
    uint64_t now = hie_time_mono_ns();
    while (now < deadline_ns) {
        uint64_t left_ms = (deadline_ns - now + 999999u) / 1000000u;
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int n = poll(&p, 1, left_ms > INT_MAX ? INT_MAX : (int)left_ms);
        if (n > 0) {
            return 0;
        }
        if (n < 0 && errno != EINTR) {
            return -errno;
        }
        now = hie_time_mono_ns();
    }
    return HIE_ETIMEDOUT;
}

/* Closes the connection; close_notify only when graceful and nothing fatal happened. */
static void
conn_close(hie_client_t *c, bool graceful)
{
    if (c->ssl != NULL) {
        if (graceful && !c->ssl_broken) {
            (void)SSL_shutdown(c->ssl); /* one non-blocking attempt: we do not wait for theirs */
        }
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        (void)close(c->fd);
        c->fd = -1;
    }
    c->ssl_broken = false;
    c->rbuf_len = 0;
    ERR_clear_error();
}

static int
conn_fail(hie_client_t *c, int rc)
{
    HIE_ASSERT(rc != 0);
    conn_close(c, false);
    return rc;
}

static int
tcp_try(hie_client_t *c, const struct addrinfo *ai, uint64_t deadline_ns)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
        ai->ai_protocol);
    if (fd < 0) {
        int err = errno;
        client_error_errno(c, "socket", err);
        return -err;
    }
    int rc = 0;
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        rc = -errno;
        client_error_errno(c, "set tcp_nodelay", -rc);
        goto out;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            client_error_errno(c, "", -rc);
            goto out;
        }
        rc = conn_wait(fd, POLLOUT, deadline_ns);
        if (rc == HIE_ETIMEDOUT) {
            client_error_set(c, "timed out during tcp connect");
            goto out;
        }
        int err = 0;
        socklen_t len = sizeof(err);
        if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        if (rc == 0 && err != 0) {
            rc = -err;
        }
        if (rc != 0) {
            client_error_errno(c, "", -rc);
        }
    }
out:
    if (rc != 0) {
        (void)close(fd);
        return rc;
    }
    c->fd = fd;
    return 0;
}

static int
tcp_connect(hie_client_t *c, uint64_t deadline_ns)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICSERV}; /* no AI_ADDRCONFIG: it hides loopback-only hosts */
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)c->port);
    int g = getaddrinfo(c->host, port, &hints, &res);
    if (g != 0) {
        client_error_set(c, "resolve %s: ", c->host);
        size_t at = strlen(c->last_error);
        client_error_append(c, "%s", gai_strerror(g));
        client_error_lower_at(c, at);
        return g == EAI_MEMORY ? HIE_ENOMEM : HIE_ENOTFOUND;
    }
    int rc = HIE_ENOTFOUND;
    unsigned tried = 0;
    for (const struct addrinfo *ai = res; ai != NULL && tried < CLIENT_ADDRS_MAX;
         ai = ai->ai_next, tried++) {
        rc = tcp_try(c, ai, deadline_ns);
        if (rc == 0 || rc == HIE_ETIMEDOUT) {
            break;
        }
    }
    freeaddrinfo(res);
    if (rc == 0) {
        HIE_ASSERT(c->fd >= 0);
    }
    return rc;
}

static bool
host_is_ip_literal(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

/* Turns a failed SSL call into a wait (WANT_READ/WRITE: returns 0, call again) or an error
 * (returns it, last_error set, the connection marked broken). err_no is errno right after the
 * call. EOF is HIE_EUNAVAIL once connected and HIE_ETLS during the handshake. */
static int
ssl_step(hie_client_t *c, int ret, int err_no, enum client_phase phase, uint64_t deadline_ns)
{
    static const char *const phase_names[] = {"tls handshake", "write", "read"};
    int rc;
    int err = SSL_get_error(c->ssl, ret);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        rc = conn_wait(c->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ns);
        if (rc == 0) {
            return 0;
        }
        if (rc == HIE_ETIMEDOUT) {
            client_error_set(c, "timed out during %s", phase_names[phase]);
        } else {
            client_error_errno(c, "poll", -rc);
        }
    } else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && err_no != 0) {
        client_error_errno(c, phase_names[phase], err_no);
        rc = -err_no;
    } else if (err == SSL_ERROR_ZERO_RETURN ||
               (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        client_error_set(c, "connection closed by the node");
        rc = phase == PHASE_HANDSHAKE ? HIE_ETLS : HIE_EUNAVAIL;
    } else {
        bool eof = ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
        client_error_tls(c, eof ? "connection closed by the node" : "");
        rc = eof && phase != PHASE_HANDSHAKE ? HIE_EUNAVAIL : HIE_ETLS;
    }
    c->ssl_broken = true;
    return rc;
}

/* The node certificate must name server_name: an IP SAN for an IP literal, else a DNS name
 * (SSL_set1_host in OpenSSL 3.0 compares DNS names only). Returns OpenSSL's 1 on success. */
static int
ssl_expect_name(SSL *ssl, const char *server_name)
{
    if (host_is_ip_literal(server_name)) {
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name);
    }
    return SSL_set1_host(ssl, server_name);
}

/* A CRL file replaced since it was loaded (a renewal, a revocation): the context is built
 * again with it before the next connection, as the node rereads its own. A long-running
 * client kept its first CRL: past that CRL's next update every handshake failed, and a node
 * certificate revoked since was still accepted. One that cannot be loaded (half written)
 * keeps the previous context; the next connection tries again. */
static void
crl_refresh(hie_client_t *c)
{
    struct stat st;
    if (c->crl_file == NULL || stat(c->crl_file, &st) != 0 ||
        (st.st_mtim.tv_sec == c->crl_st.st_mtim.tv_sec &&
            st.st_mtim.tv_nsec == c->crl_st.st_mtim.tv_nsec && st.st_size == c->crl_st.st_size &&
            st.st_ino == c->crl_st.st_ino)) {
        return;
    }
    hie_client_config_t cfg = {c->host, c->port, c->ca_file, c->cert_file, c->key_file,
        c->server_name, c->connect_timeout_ms, c->frame_bytes_max, c->tls_max_version,
        c->tls_min_version, c->crl_file};
    SSL_CTX *old = c->ctx;
    c->ctx = NULL;
    if (ctx_create(c, &cfg) != 0) {
        SSL_CTX_free(c->ctx);
        c->ctx = old;
        return;
    }
    SSL_CTX_free(old);
    c->crl_st = st;
}

static int
tls_handshake(hie_client_t *c, uint64_t deadline_ns)
{
    HIE_ASSERT(c->ssl == NULL);
    HIE_ASSERT(c->fd >= 0);
    crl_refresh(c);
    ERR_clear_error();
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        client_error_tls(c, "create tls session");
        return HIE_ENOMEM;
    }
    bool chain_only = c->server_name != NULL && strcmp(c->server_name, "*") == 0;
    const char *name = c->server_name != NULL && !chain_only ? c->server_name : c->host;
    if (!host_is_ip_literal(name) && SSL_set_tlsext_host_name(c->ssl, name) != 1) {
        client_error_tls(c, "set server name indication");
        return HIE_ETLS;
    }
    if (!chain_only && ssl_expect_name(c->ssl, name) != 1) {
        client_error_tls(c, "set expected server name");
        return HIE_ETLS;
    }
    int rc = 0;
    int ret = 0;
    while (ret != 1) {
        ERR_clear_error();
        errno = 0;
        ret = SSL_connect(c->ssl);
        if (ret != 1) {
            rc = ssl_step(c, ret, errno, PHASE_HANDSHAKE, deadline_ns);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

int
hie_client_connect(hie_client_t *c)
{
    HIE_ASSERT(c != NULL);
    HIE_ASSERT(c->magic == CLIENT_MAGIC);
    if (c->ssl != NULL) {
        return 0;
    }
    HIE_ASSERT(c->fd == -1);
    uint64_t deadline_ns = deadline_after_ms(c->connect_timeout_ms);
    int rc = tcp_connect(c, deadline_ns);
    if (rc == 0) {
        rc = tls_handshake(c, deadline_ns);
    }
    if (rc != 0) {
        return conn_fail(c, rc);
    }
    HIE_ASSERT(c->ssl != NULL);
    c->last_error[0] = '\0';
    return 0;
}

void
hie_client_close(hie_client_t *c)
{
    HIE_ASSERT(c != NULL);
    HIE_ASSERT(c->magic == CLIENT_MAGIC);
    conn_close(c, true);
}

bool
hie_client_connected(const hie_client_t *c)
{
    HIE_ASSERT(c != NULL);
    HIE_ASSERT(c->magic == CLIENT_MAGIC);
    return c->ssl != NULL;
}

/* ---- frames out -------------------------------------------------------------------------- */

/* After a failed write: the node may have refused us with an alert and closed (with TLS 1.3 a
 * refused client certificate arrives only now), and its reset then failed our write. One
 * non-blocking read picks up an alert already received, so last_error names the real cause
 * ("tlsv13 alert certificate required") instead of "connection reset by peer". Returns
 * HIE_ETLS when an alert was found, else write_rc with last_error unchanged. */
static int
conn_write_failed(hie_client_t *c, int write_rc)
{
    uint8_t byte;
    size_t got = 0;
    ERR_clear_error();
    int ret = SSL_read_ex(c->ssl, &byte, 1, &got);
    unsigned long e = ERR_peek_error();
    int reason = ERR_GET_REASON(e);
    if (ret != 1 && SSL_get_error(c->ssl, ret) == SSL_ERROR_SSL &&
        ERR_GET_LIB(e) == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET) {
        client_error_tls(c, "");
        return HIE_ETLS;
    }
    ERR_clear_error();
    return write_rc;
}

static int
conn_write_all(hie_client_t *c, const uint8_t *buf, size_t len, uint64_t deadline_ns)
{
    HIE_ASSERT(c->ssl != NULL);
    HIE_ASSERT(len > 0);
    for (;;) { /* bounded by the deadline: ssl_step() waits in poll() or fails */
        size_t written = 0;
        ERR_clear_error();
        errno = 0;
        int ret = SSL_write_ex(c->ssl, buf, len, &written);
        if (ret == 1) {
            HIE_ASSERT(written == len); /* no SSL_MODE_ENABLE_PARTIAL_WRITE */
            return 0;
        }
        int rc = ssl_step(c, ret, errno, PHASE_WRITE, deadline_ns);
        if (rc != 0) {
            return rc == HIE_ETIMEDOUT ? rc : conn_write_failed(c, rc);
        }
    }
}

static int
client_send_until(hie_client_t *c, const hie_envelope_t *req, uint64_t deadline_ns)
{
    hie_errinfo_t info = {NULL, NULL};
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    int rc = hie_proto_envelope_validate(req, &info);
    if (rc != 0) {
        client_error_set(c, "invalid request: %s: %s", info.field != NULL ? info.field : "-",
            info.reason != NULL ? info.reason : "invalid");
        return rc;
    }
    rc = hie_proto_frame_encode(req, c->frame_bytes_max, &frame, &frame_len);
    if (rc != 0) {
        client_error_set(c, "encode request: %s", hie_strerror(rc));
        return rc;
    }
    rc = hie_client_connect(c);
    if (rc == 0) {
        rc = conn_write_all(c, frame, frame_len, deadline_ns);
        if (rc != 0) {
            rc = conn_fail(c, rc);
        }
    }
    hie_mem_free(frame, frame_len);
    return rc;
}

int
hie_client_send(hie_client_t *c, const hie_envelope_t *req)
{
    HIE_ASSERT(c != NULL);
    HIE_ASSERT(c->magic == CLIENT_MAGIC);
    HIE_ASSERT(req != NULL);
    return client_send_until(c, req, deadline_after_ms(c->connect_timeout_ms));
}

/* ---- frames in --------------------------------------------------------------------------- */

static int
rbuf_reserve(hie_client_t *c, size_t bytes)
{
    HIE_ASSERT(bytes <= HIE_PROTO_FRAME_HEADER_BYTES + (size_t)HIE_PROTO_FRAME_BYTES_MAX);
    if (c->rbuf_bytes >= bytes) {
        return 0;
    }
    uint8_t *p = hie_mem_realloc(c->rbuf, c->rbuf_bytes, bytes);
    if (p == NULL) {
        client_error_set(c, "out of memory for a reply of %zu bytes", bytes);
        return HIE_ENOMEM;
    }
    c->rbuf = p;
    c->rbuf_bytes = bytes;
    return 0;
}

/* Forgets the frame just consumed; frees a large buffer (see CLIENT_RBUF_KEEP_BYTES). */
static void
rbuf_consume(hie_client_t *c)
{
    c->rbuf_len = 0;
    if (c->rbuf_bytes > CLIENT_RBUF_KEEP_BYTES) {
        hie_mem_free(c->rbuf, c->rbuf_bytes);
        c->rbuf = NULL;
        c->rbuf_bytes = 0;
    }
}

/* Reads until rbuf holds want bytes of the current frame, never more. */
static int
rbuf_fill(hie_client_t *c, size_t want, uint64_t deadline_ns)
{
    HIE_ASSERT(want <= c->rbuf_bytes);
    while (c->rbuf_len < want) {
        if (hie_time_mono_ns() >= deadline_ns) { /* a trickling node still hits the deadline */
            client_error_set(c, "timed out during read");
            return HIE_ETIMEDOUT;
        }
        size_t got = 0;
        ERR_clear_error();
        errno = 0;
        int ret = SSL_read_ex(c->ssl, c->rbuf + c->rbuf_len, want - c->rbuf_len, &got);
        if (ret == 1) {
            HIE_ASSERT(got <= want - c->rbuf_len);
            c->rbuf_len += got;
            continue;
        }
        int rc = ssl_step(c, ret, errno, PHASE_READ, deadline_ns);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Assembles one frame in rbuf. [out] *body borrowed until rbuf_consume(). */
static int
conn_recv_frame(hie_client_t *c, uint64_t deadline_ns, hie_span_t *body)
{
    uint32_t body_bytes = 0;
    int rc = rbuf_reserve(c, HIE_PROTO_FRAME_HEADER_BYTES);
    if (rc == 0) {
        rc = rbuf_fill(c, HIE_PROTO_FRAME_HEADER_BYTES, deadline_ns);
    }
    if (rc != 0) {
        return rc;
    }
    rc = hie_proto_frame_header(hie_span(c->rbuf, c->rbuf_len), c->frame_bytes_max, &body_bytes);
    if (rc == HIE_ELIMIT) {
        client_error_set(c, "reply frame of %u bytes is larger than the limit of %u bytes",
            (unsigned)hie_load_be32(c->rbuf), (unsigned)c->frame_bytes_max);
        return rc;
    }
    if (rc != 0) {
        HIE_ASSERT(rc == HIE_EPROTO);
        client_error_set(c, "empty reply frame");
        return rc;
    }
    size_t frame_bytes = HIE_PROTO_FRAME_HEADER_BYTES + (size_t)body_bytes;
    rc = rbuf_reserve(c, frame_bytes);
    if (rc == 0) {
        rc = rbuf_fill(c, frame_bytes, deadline_ns);
    }
    if (rc == 0) {
        *body = hie_span(c->rbuf + HIE_PROTO_FRAME_HEADER_BYTES, body_bytes);
    }
    return rc;
}

/* Checks what a reply must have (hie_proto_envelope_validate() is for requests). */
static int
reply_check(hie_client_t *c, const hie_envelope_t *env)
{
    size_t corr_len = env->correlation_id != NULL ? strlen(env->correlation_id) : 0;
    if (env->body_case == HIE__V1__ENVELOPE__BODY__NOT_SET) {
        client_error_set(c, "malformed reply: no body");
        return HIE_EPROTO;
    }
    if (corr_len > 0 && !hie_proto_id_valid(env->correlation_id, corr_len)) {
        client_error_set(c, "malformed reply: invalid correlation_id");
        return HIE_EPROTO;
    }
    if (corr_len == 0 && env->body_case != HIE__V1__ENVELOPE__BODY_ERROR &&
        env->body_case != HIE__V1__ENVELOPE__BODY_DELIVERY &&
        env->body_case != HIE__V1__ENVELOPE__BODY_HEARTBEAT &&
        env->body_case != HIE__V1__ENVELOPE__BODY_QUERY_FORWARD) { /* unsolicited */
        client_error_set(c, "malformed reply: missing correlation_id");
        return HIE_EPROTO;
    }
    return 0;
}

static int
client_recv_until(hie_client_t *c, uint64_t deadline_ns, hie_arena_t *arena,
    hie_envelope_t **reply)
{
    hie_span_t body = {NULL, 0};
    ProtobufCMessage *msg = NULL;
    int rc = conn_recv_frame(c, deadline_ns, &body);
    if (rc != 0) {
        return conn_fail(c, rc);
    }
    hie_errinfo_t info = {0};
    /* the checked unpack: depth and UTF-8 walked first, so a hostile node's deeply nested
     * reply cannot exhaust this process's stack in protobuf-c's recursion */
    rc = hie_proto_unpack_checked(&hie__v1__envelope__descriptor, body, arena, &msg, &info,
        "reply");
    rbuf_consume(c);
    if (rc != 0) {
        client_error_set(c, "%s", rc == HIE_ELIMIT ? "reply too large to decode in the arena"
                                                   : "malformed reply: not a valid envelope");
        return conn_fail(c, rc);
    }
    rc = reply_check(c, (hie_envelope_t *)msg);
    if (rc != 0) {
        return conn_fail(c, rc);
    }
    *reply = (hie_envelope_t *)msg;
    return 0;
}

int
hie_client_recv(hie_client_t *c, uint32_t timeout_ms, hie_arena_t *arena,
    hie_envelope_t **reply)
{
    HIE_ASSERT(c != NULL);
    HIE_ASSERT(c->magic == CLIENT_MAGIC);
    HIE_ASSERT(arena != NULL);
    HIE_ASSERT(reply != NULL);
    *reply = NULL;
    if (c->ssl == NULL) {
        client_error_set(c, "not connected");
        return HIE_EUNAVAIL;
    }
    return client_recv_until(c, deadline_after_ms(timeout_ms), arena, reply);
}

static bool
reply_matches(const hie_envelope_t *reply, const char *id)
{
    HIE_ASSERT(reply->correlation_id != NULL);
    if (reply->correlation_id[0] == '\0') {
        return reply->body_case == HIE__V1__ENVELOPE__BODY_ERROR; /* request not readable */
    }
    return strcmp(reply->correlation_id, id) == 0;
}

int
hie_client_call(hie_client_t *c, const hie_envelope_t *req, uint32_t timeout_ms,
    hie_arena_t *arena, hie_envelope_t **reply)
{
    HIE_ASSERT(c != NULL);
    HIE_ASSERT(c->magic == CLIENT_MAGIC);
    HIE_ASSERT(req != NULL);
    HIE_ASSERT(arena != NULL);
    HIE_ASSERT(reply != NULL);
    *reply = NULL;
    int rc = hie_client_connect(c);
    if (rc != 0) {
        return rc;
    }
    uint64_t deadline_ns = deadline_after_ms(timeout_ms);
    rc = client_send_until(c, req, deadline_ns);
    for (unsigned skipped = 0; rc == 0 && skipped <= CLIENT_SKIPPED_REPLIES_MAX; skipped++) {
        hie_envelope_t *env = NULL;
        rc = client_recv_until(c, deadline_ns, arena, &env);
        if (rc == 0 && reply_matches(env, req->id)) {
            *reply = env;
            return 0;
        }
    }
    if (rc == 0) {
        client_error_set(c, "too many replies to other requests");
        rc = conn_fail(c, HIE_EPROTO);
    }
    return rc;
}

/* ---- ids and introspection --------------------------------------------------------------- */

void
hie_client_new_id(char *buf, size_t buf_bytes)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    enum { ALPHABET_LEN = sizeof(alphabet) - 1, ACCEPT_BELOW = 256 - 256 % ALPHABET_LEN };
    HIE_ASSERT(buf != NULL);
    HIE_ASSERT(buf_bytes >= HIE_CLIENT_ID_BUF_BYTES);
    int s = sodium_init(); /* idempotent; a client was usually created already */
    HIE_ASSERT(s >= 0);
    size_t n = 0;
    buf[n++] = 'c';
    buf[n++] = '-';
    /* Rejection sampling keeps every character equally likely (no modulo bias). */
    for (unsigned refill = 0; refill < CLIENT_ID_REFILLS_MAX && n < 2 + CLIENT_ID_RANDOM_CHARS;
         refill++) {
        unsigned char rnd[2 * CLIENT_ID_RANDOM_CHARS];
        randombytes_buf(rnd, sizeof(rnd));
        for (size_t i = 0; i < sizeof(rnd) && n < 2 + CLIENT_ID_RANDOM_CHARS; i++) {
            if (rnd[i] < ACCEPT_BELOW) {
                buf[n++] = alphabet[rnd[i] % ALPHABET_LEN];
            }
        }
    }
    HIE_ASSERT(n == 2 + CLIENT_ID_RANDOM_CHARS); /* 8 refills failing is a broken RNG */
    buf[n] = '\0';
}

const char *
hie_client_last_error(const hie_client_t *c)
{
    HIE_ASSERT(c != NULL);
    HIE_ASSERT(c->magic == CLIENT_MAGIC);
    return c->last_error;
}

const char *
hie_client_tls_version(const hie_client_t *c)
{
    HIE_ASSERT(c != NULL);
    HIE_ASSERT(c->magic == CLIENT_MAGIC);
    return c->ssl != NULL ? SSL_get_version(c->ssl) : "";
}

const char *
hie_client_tls_cipher(const hie_client_t *c)
{
    HIE_ASSERT(c != NULL);
    HIE_ASSERT(c->magic == CLIENT_MAGIC);
    const SSL_CIPHER *cipher = c->ssl != NULL ? SSL_get_current_cipher(c->ssl) : NULL;
    return cipher != NULL ? SSL_CIPHER_get_name(cipher) : "";
}
