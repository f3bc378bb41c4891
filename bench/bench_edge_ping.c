/*
 * bench_edge_ping.c - Ping round trips per second and per-round-trip latency through
 * hie-node's edge with 1, 100 and 1000 concurrent connections, and the bare TLS limit measured
 * in the same run.
 *
 * Client: one thread, epoll, non-blocking sockets and OpenSSL in non-blocking mode. Every
 * connection keeps exactly one Ping outstanding: send, wait for the reply, send the next. Each
 * Ping has a unique envelope id "p<run>-<conn>-<seq>" (the node answers a repeated id from its
 * reply cache, which would not measure the exchange). Phases per measurement: connect and
 * handshake (at most CONNECT_WINDOW handshakes in flight), one unmeasured warm-up round trip
 * per connection (for the node it also waits out the registry check after the handshake),
 * then the measured phase, bounded by a round-trip count (--ops) and a time (--seconds), then
 * the outstanding replies are drained and every connection is closed with close_notify.
 *
 * Servers: (a) hie-node as a child process (edge thread + 2 workers, the member registered
 * with hiectl); (b) an in-process bare TLS echo server: one thread, epoll, non-blocking, mutual
 * TLS configured like the node (same CA, CRL check, certificate and key), which reads each
 * frame and writes the same bytes back (a frame of the same size). Replies are checked: a Pong
 * correlated to the Ping's id from the node, the Ping itself from the echo server.
 *
 * Usage: bench_edge_ping [--smoke] [--ops N] [--seconds S] [--conns A,B,C] [--log-level L]
 *        [--keep]
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAYLOAD_BYTES 64u
#define CONN_BUF_BYTES 4096u
#define CONNECT_WINDOW 64u
#define EVENTS_MAX 256
#define SETUP_TIMEOUT_S 60u
#define DRAIN_TIMEOUT_S 5u
#define RUNS_MAX 8u
#define SERVER_CONNS_MAX 4096u
#define SLOW_RTT_US 50000u

/* ---- client ------------------------------------------------------------------------------ */

enum cstate { CS_CONNECTING, CS_HANDSHAKE, CS_IDLE, CS_SENDING, CS_WAITING, CS_FAILED };

struct cconn {
    int fd;
    SSL *ssl;
    enum cstate state;
    uint32_t index;
    uint32_t events;
    uint64_t seq;
    uint64_t sent_ns;
    bool measured;               /* the outstanding Ping counts toward the measurement */
    char id[48];
    uint8_t *wbuf;               /* the frame being sent (hie_mem) */
    size_t wlen;
    uint8_t rbuf[CONN_BUF_BYTES];
    size_t rlen;
};

enum phase { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_DRAIN };

struct client {
    int epfd;
    SSL_CTX *ctx;
    uint16_t port;
    bool echo;                   /* the server echoes the Ping (bare) instead of a Pong */
    unsigned tag;
    struct cconn *conns;
    uint32_t n;
    uint32_t next_connect;       /* connections not yet started */
    uint32_t handshaking;        /* in CS_CONNECTING or CS_HANDSHAKE */
    uint32_t established;
    uint32_t outstanding;
    uint32_t failed;
    enum phase phase;
    uint64_t target;             /* measured round trips */
    uint64_t sent_measured;
    uint64_t done_measured;
    uint64_t deadline_ns;
    uint64_t *lat_ns;
    uint8_t payload[PAYLOAD_BYTES];
};

static void
cconn_events(struct client *cl, struct cconn *c, uint32_t ev)
{
    if (ev == c->events) {
        return;
    }
    struct epoll_event e = {.events = ev, .data.ptr = c};
    int rc = epoll_ctl(cl->epfd, EPOLL_CTL_MOD, c->fd, &e);
    HIE_ASSERT(rc == 0);
    c->events = ev;
}

static void
cconn_fail(struct client *cl, struct cconn *c, const char *why)
{
    if (cl->failed < 5) {
        char e[160] = "";
        ERR_error_string_n(ERR_peek_last_error(), e, sizeof(e));
        fprintf(stderr, "bench_edge_ping: connection %u failed: %s (errno %d, %s)\n", c->index,
            why, errno, e);
    }
    if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE) {
        cl->handshaking--;
    } else if (c->state == CS_SENDING || c->state == CS_WAITING) {
        cl->outstanding--;
    }
    c->state = CS_FAILED;
    cl->failed++;
    epoll_ctl(cl->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    ERR_clear_error();
}

static int
cconn_open(struct client *cl, struct cconn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        return -errno;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(cl->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
        return -errno;
    }
    c->ssl = SSL_new(cl->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        return HIE_ETLS;
    }
    c->state = CS_CONNECTING;
    c->events = EPOLLOUT | EPOLLIN;
    struct epoll_event e = {.events = c->events, .data.ptr = c};
    return epoll_ctl(cl->epfd, EPOLL_CTL_ADD, c->fd, &e) == 0 ? 0 : -errno;
}

/* Starts connections until CONNECT_WINDOW handshakes are in flight. */
static void
client_connect_more(struct client *cl)
{
    while (cl->next_connect < cl->n && cl->handshaking < CONNECT_WINDOW) {
        struct cconn *c = &cl->conns[cl->next_connect++];
        cl->handshaking++;
        if (cconn_open(cl, c) != 0) {
            c->state = CS_HANDSHAKE; /* so that cconn_fail counts it right */
            cconn_fail(cl, c, "connect");
        }
    }
}

/* Builds the next Ping and tries to send it. */
static void cconn_write(struct client *cl, struct cconn *c);

static void
cconn_send_next(struct client *cl, struct cconn *c)
{
    HIE_ASSERT(c->state == CS_IDLE);
    HIE_ASSERT(c->wbuf == NULL);
    snprintf(c->id, sizeof(c->id), "p%u-%u-%lu", cl->tag, c->index, (unsigned long)c->seq++);
    int rc = bench_ping_frame(c->id, cl->payload, sizeof(cl->payload), &c->wbuf, &c->wlen);
    HIE_ASSERT(rc == 0);
    c->measured = cl->phase == PH_MEASURE;
    if (c->measured) {
        cl->sent_measured++;
    }
    c->state = CS_SENDING;
    cl->outstanding++;
    c->sent_ns = hie_time_mono_ns();
    cconn_write(cl, c);
}

static void
cconn_write(struct client *cl, struct cconn *c)
{
    HIE_ASSERT(c->state == CS_SENDING);
    ERR_clear_error();
    int n = SSL_write(c->ssl, c->wbuf, (int)c->wlen);
    if (n <= 0) {
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
            cconn_events(cl, c, EPOLLIN | (err == SSL_ERROR_WANT_WRITE ? EPOLLOUT : 0));
            return;
        }
        cconn_fail(cl, c, "write");
        return;
    }
    HIE_ASSERT((size_t)n == c->wlen); /* no partial writes: SSL_MODE_ENABLE_PARTIAL_WRITE off */
    hie_mem_free(c->wbuf, c->wlen);
    c->wbuf = NULL;
    c->wlen = 0;
    c->state = CS_WAITING;
    cconn_events(cl, c, EPOLLIN);
}

/* True when the client should send another Ping on an idle connection. */
static bool
client_wants_more(const struct client *cl)
{
    if (cl->phase != PH_MEASURE) {
        return false;
    }
    return cl->sent_measured < cl->target && hie_time_mono_ns() < cl->deadline_ns;
}

static void
cconn_reply_done(struct client *cl, struct cconn *c)
{
    uint64_t lat = hie_time_mono_ns() - c->sent_ns;
    c->state = CS_IDLE;
    cl->outstanding--;
    if (c->measured) {
        HIE_ASSERT(cl->done_measured < cl->target);
        cl->lat_ns[cl->done_measured++] = lat;
    }
    if (client_wants_more(cl)) {
        cconn_send_next(cl, c);
    }
}

/* Consumes complete frames in rbuf. Returns false if the connection failed. */
static bool
cconn_parse(struct client *cl, struct cconn *c)
{
    while (c->rlen >= HIE_PROTO_FRAME_HEADER_BYTES) {
        uint32_t body = 0;
        if (hie_proto_frame_header(hie_span(c->rbuf, c->rlen),
                CONN_BUF_BYTES - HIE_PROTO_FRAME_HEADER_BYTES, &body) != 0) {
            cconn_fail(cl, c, "bad frame header");
            return false;
        }
        size_t total = HIE_PROTO_FRAME_HEADER_BYTES + body;
        if (c->rlen < total) {
            return true;
        }
        if (c->state != CS_WAITING ||
            bench_reply_check(c->rbuf + HIE_PROTO_FRAME_HEADER_BYTES, body, c->id, cl->echo)) {
            cconn_fail(cl, c, "unexpected reply (an Error, or not correlated)");
            return false;
        }
        memmove(c->rbuf, c->rbuf + total, c->rlen - total);
        c->rlen -= total;
        cconn_reply_done(cl, c);
    }
    return true;
}

static void
cconn_read(struct client *cl, struct cconn *c)
{
    for (unsigned i = 0; i < 64; i++) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(sizeof(c->rbuf) - c->rlen));
        if (n <= 0) {
            int err = SSL_get_error(c->ssl, n);
            if (err == SSL_ERROR_WANT_READ) {
                return;
            }
            if (err == SSL_ERROR_WANT_WRITE) {
                cconn_events(cl, c, EPOLLIN | EPOLLOUT);
                return;
            }
            cconn_fail(cl, c, err == SSL_ERROR_ZERO_RETURN ? "closed by server" : "read");
            return;
        }
        c->rlen += (size_t)n;
        if (!cconn_parse(cl, c)) {
            return;
        }
    }
}

static void
cconn_handshake(struct client *cl, struct cconn *c)
{
    if (c->state == CS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            errno = err;
            cconn_fail(cl, c, "connect");
            return;
        }
        c->state = CS_HANDSHAKE;
    }
    ERR_clear_error();
    int n = SSL_connect(c->ssl);
    if (n == 1) {
        c->state = CS_IDLE;
        cl->handshaking--;
        cl->established++;
        cconn_events(cl, c, EPOLLIN);
        return;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        cconn_events(cl, c, EPOLLIN | (err == SSL_ERROR_WANT_WRITE ? EPOLLOUT : 0));
        return;
    }
    cconn_fail(cl, c, "handshake");
}

static void
cconn_event(struct client *cl, struct cconn *c, uint32_t ev)
{
    switch (c->state) {
    case CS_CONNECTING:
    case CS_HANDSHAKE:
        cconn_handshake(cl, c);
        break;
    case CS_SENDING:
        cconn_write(cl, c);
        break;
    case CS_WAITING:
    case CS_IDLE:
        if (ev & (EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLERR)) {
            cconn_read(cl, c);
        }
        break;
    case CS_FAILED:
        break;
    }
}

/* One epoll round; returns false on an epoll failure. */
static bool
client_poll(struct client *cl, int timeout_ms)
{
    struct epoll_event ev[EVENTS_MAX];
    int n = epoll_wait(cl->epfd, ev, EVENTS_MAX, timeout_ms);
    if (n < 0) {
        return errno == EINTR;
    }
    for (int i = 0; i < n; i++) {
        cconn_event(cl, ev[i].data.ptr, ev[i].events);
    }
    return true;
}

/* Sends one Ping on every idle connection (warm-up or the start of the measurement). */
static void
client_kick(struct client *cl)
{
    for (uint32_t i = 0; i < cl->n; i++) {
        struct cconn *c = &cl->conns[i];
        if (c->state == CS_IDLE && (cl->phase == PH_WARMUP || client_wants_more(cl))) {
            cconn_send_next(cl, c);
        }
    }
}

/* Runs the event loop until done() or the deadline. Returns 0 or HIE_ETIMEDOUT. */
static int
client_loop_until(struct client *cl, bool (*done)(const struct client *), unsigned seconds)
{
    uint64_t deadline = hie_time_mono_ns() + (uint64_t)seconds * 1000000000ull;
    for (uint64_t i = 0; !done(cl); i++) {
        if (hie_time_mono_ns() >= deadline || !client_poll(cl, 50)) {
            return HIE_ETIMEDOUT;
        }
        if (cl->phase == PH_CONNECT) {
            client_connect_more(cl);
        }
    }
    return 0;
}

static bool
connect_done(const struct client *cl)
{
    return cl->next_connect == cl->n && cl->handshaking == 0;
}

static bool
warm_done(const struct client *cl)
{
    return cl->outstanding == 0;
}

static bool
measure_done(const struct client *cl)
{
    return !client_wants_more(cl) && cl->outstanding == 0;
}

/* ---- the bare echo server ---------------------------------------------------------------- */

struct sconn {
    int fd;
    SSL *ssl;
    bool open;                   /* handshake done */
    uint8_t rbuf[CONN_BUF_BYTES];
    size_t rlen;
    uint8_t wbuf[CONN_BUF_BYTES];
    size_t wlen, woff;
};

struct echo {
    int epfd;
    int listen_fd;
    uint16_t port;
    SSL_CTX *ctx;
    pthread_t thread;
    bool started;
    _Atomic bool stop;
    _Atomic uint64_t failures;
    struct sconn *conns[SERVER_CONNS_MAX];
    uint32_t n_conns;
};

static void
sconn_close(struct echo *s, struct sconn *c, bool failed)
{
    if (failed) {
        atomic_fetch_add(&s->failures, 1);
    }
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl != NULL) {
        if (c->open) {
            (void)SSL_shutdown(c->ssl);
        }
        SSL_free(c->ssl);
    }
    close(c->fd);
    for (uint32_t i = 0; i < s->n_conns; i++) {
        if (s->conns[i] == c) {
            s->conns[i] = s->conns[--s->n_conns];
            break;
        }
    }
    free(c);
    ERR_clear_error();
}

/* Writes what is queued. Returns false if the connection was closed. */
static bool
sconn_flush(struct echo *s, struct sconn *c)
{
    while (c->woff < c->wlen) {
        ERR_clear_error();
        int n = SSL_write(c->ssl, c->wbuf + c->woff, (int)(c->wlen - c->woff));
        if (n <= 0) {
            int err = SSL_get_error(c->ssl, n);
            if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
                struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &e);
                return true;
            }
            sconn_close(s, c, true);
            return false;
        }
        c->woff += (size_t)n;
    }
    c->woff = c->wlen = 0;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &e);
    return true;
}

/* Moves every complete frame from rbuf to wbuf (the echo). Returns false on a bad frame. */
static bool
sconn_echo_frames(struct sconn *c)
{
    while (c->rlen >= HIE_PROTO_FRAME_HEADER_BYTES) {
        uint32_t body = 0;
        if (hie_proto_frame_header(hie_span(c->rbuf, c->rlen),
                CONN_BUF_BYTES - HIE_PROTO_FRAME_HEADER_BYTES, &body) != 0) {
            return false;
        }
        size_t total = HIE_PROTO_FRAME_HEADER_BYTES + body;
        if (c->rlen < total || c->wlen + total > sizeof(c->wbuf)) {
            return true;
        }
        memcpy(c->wbuf + c->wlen, c->rbuf, total);
        c->wlen += total;
        memmove(c->rbuf, c->rbuf + total, c->rlen - total);
        c->rlen -= total;
    }
    return true;
}

static void
sconn_read(struct echo *s, struct sconn *c)
{
    for (unsigned i = 0; i < 64 && c->rlen < sizeof(c->rbuf); i++) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(sizeof(c->rbuf) - c->rlen));
        if (n <= 0) {
            int err = SSL_get_error(c->ssl, n);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                break;
            }
            sconn_close(s, c, err != SSL_ERROR_ZERO_RETURN && err != SSL_ERROR_SYSCALL);
            return;
        }
        c->rlen += (size_t)n;
        if (!sconn_echo_frames(c)) {
            sconn_close(s, c, true);
            return;
        }
    }
    (void)sconn_flush(s, c);
}

static void
sconn_event(struct echo *s, struct sconn *c)
{
    if (!c->open) {
        ERR_clear_error();
        int n = SSL_accept(c->ssl);
        if (n != 1) {
            int err = SSL_get_error(c->ssl, n);
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
                sconn_close(s, c, true);
            }
            return;
        }
        c->open = true;
    }
    if (c->woff < c->wlen && !sconn_flush(s, c)) {
        return;
    }
    sconn_read(s, c);
}

static void
echo_accept(struct echo *s)
{
    for (unsigned i = 0; i < 64; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct sconn *c = calloc(1, sizeof(*c));
        if (c == NULL || s->n_conns >= SERVER_CONNS_MAX) {
            free(c);
            close(fd);
            atomic_fetch_add(&s->failures, 1);
            continue;
        }
        c->fd = fd;
        c->ssl = SSL_new(s->ctx);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1 ||
            epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
            SSL_free(c->ssl);
            close(fd);
            free(c);
            atomic_fetch_add(&s->failures, 1);
            continue;
        }
        s->conns[s->n_conns++] = c;
    }
}

static void *
echo_thread(void *arg)
{
    struct echo *s = arg;
    struct epoll_event ev[EVENTS_MAX];
    uint64_t end_ns = hie_time_mono_ns() + BENCH_SERVER_LIFETIME_NS;
    while (!atomic_load(&s->stop) && hie_time_mono_ns() < end_ns) {
        int n = epoll_wait(s->epfd, ev, EVENTS_MAX, 50);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == s) {
                echo_accept(s);
            } else {
                sconn_event(s, ev[i].data.ptr);
            }
        }
    }
    while (s->n_conns > 0) {
        sconn_close(s, s->conns[0], false);
    }
    return NULL;
}

static int
echo_start(struct echo *s, SSL_CTX *ctx)
{
    s->ctx = ctx;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->port = bench_port_pick();
    s->listen_fd = s->port == 0 ? HIE_ELIMIT : bench_tcp_listen(s->port, 1024, true);
    if (s->epfd < 0 || s->listen_fd < 0) {
        return s->listen_fd < 0 ? s->listen_fd : -errno;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = s};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &e) != 0) {
        return -errno;
    }
    int rc = -pthread_create(&s->thread, NULL, echo_thread, s);
    s->started = rc == 0;
    return rc;
}

static void
echo_stop(struct echo *s)
{
    atomic_store(&s->stop, true);
    if (s->started) {
        pthread_join(s->thread, NULL);
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    if (s->epfd >= 0) {
        close(s->epfd);
    }
}

/* ---- driver ------------------------------------------------------------------------------ */

struct opts {
    bool smoke;
    bool keep;
    uint64_t ops;                /* 0: the per-connection-count default */
    unsigned seconds;
    const char *log_level;
    uint32_t conns[3];           /* connection counts to measure; 0 = skip */
};

struct run {
    const char *mode;
    bool bare;
    uint32_t conns;
    uint64_t ops;
    uint64_t errors;
    double secs, p50_us, p99_us, max_us, ratio, node_cpu, node_thread, client_cpu;
    double cpu_us_op;            /* CPU of the node and this process per round trip */
    uint64_t slow;               /* round trips over SLOW_RTT_US: stalls, not queueing */
};

static int
client_init(struct client *cl, SSL_CTX *ctx, uint16_t port, bool echo, unsigned tag,
    uint32_t conns)
{
    memset(cl, 0, sizeof(*cl));
    cl->ctx = ctx;
    cl->port = port;
    cl->echo = echo;
    cl->tag = tag;
    cl->n = conns;
    cl->epfd = epoll_create1(EPOLL_CLOEXEC);
    cl->conns = calloc(conns, sizeof(*cl->conns));
    if (cl->epfd < 0 || cl->conns == NULL) {
        return HIE_ENOMEM;
    }
    for (uint32_t i = 0; i < conns; i++) {
        cl->conns[i].fd = -1;
        cl->conns[i].index = i;
    }
    uint64_t rs = BENCH_SEED;
    for (unsigned i = 0; i < PAYLOAD_BYTES; i++) {
        cl->payload[i] = (uint8_t)bench_rand(&rs);
    }
    return 0;
}

static void
client_release(struct client *cl)
{
    for (uint32_t i = 0; cl->conns != NULL && i < cl->n; i++) {
        struct cconn *c = &cl->conns[i];
        if (c->ssl != NULL) {
            if (c->state != CS_FAILED && c->state != CS_CONNECTING && c->state != CS_HANDSHAKE) {
                (void)SSL_shutdown(c->ssl); /* best effort close_notify */
            }
            SSL_free(c->ssl);
        }
        if (c->fd >= 0) {
            close(c->fd);
        }
        hie_mem_free(c->wbuf, c->wlen);
    }
    free(cl->conns);
    free(cl->lat_ns);
    if (cl->epfd >= 0) {
        close(cl->epfd);
    }
    ERR_clear_error();
    memset(cl, 0, sizeof(*cl));
}

/* Connects every connection and does one unmeasured round trip on each. */
static int
client_prepare(struct client *cl)
{
    cl->phase = PH_CONNECT;
    int rc = client_loop_until(cl, connect_done, SETUP_TIMEOUT_S);
    if (rc != 0 || cl->failed > 0) {
        fprintf(stderr, "bench_edge_ping: %u of %u connections established (%u failed)\n",
            cl->established, cl->n, cl->failed);
        return rc != 0 ? rc : HIE_ETLS;
    }
    cl->phase = PH_WARMUP;
    client_kick(cl);
    rc = client_loop_until(cl, warm_done, SETUP_TIMEOUT_S);
    if (rc != 0 || cl->failed > 0) {
        fprintf(stderr, "bench_edge_ping: warm-up failed (%u connections failed)\n", cl->failed);
        return rc != 0 ? rc : HIE_ETLS;
    }
    return 0;
}

static int
client_measure(struct client *cl, struct run *r, uint64_t target, unsigned seconds,
    pid_t node_pid)
{
    bench_cpu_t n0, n1, s0, s1;
    pid_t tid = 0;
    double unused = 0;
    cl->lat_ns = calloc(target, sizeof(*cl->lat_ns));
    HIE_ASSERT(cl->lat_ns != NULL);
    cl->target = target;
    bench_cpu_sample(node_pid, &n0);
    bench_cpu_sample(getpid(), &s0);
    uint64_t t0 = hie_time_mono_ns();
    cl->deadline_ns = t0 + (uint64_t)seconds * 1000000000ull;
    cl->phase = PH_MEASURE;
    client_kick(cl);
    int rc = client_loop_until(cl, measure_done, seconds + DRAIN_TIMEOUT_S);
    r->secs = (double)(hie_time_mono_ns() - t0) / 1e9;
    bench_cpu_sample(node_pid, &n1);
    bench_cpu_sample(getpid(), &s1);
    cl->phase = PH_DRAIN;
    bench_cpu_delta(&n0, &n1, &r->node_cpu, &r->node_thread, &tid);
    bench_cpu_delta(&s0, &s1, &r->client_cpu, &unused, &tid);
    r->ops = cl->done_measured;
    r->cpu_us_op = r->ops > 0 ? (r->node_cpu + r->client_cpu) / 100.0 * r->secs * 1e6 /
        (double)r->ops : 0.0;
    bench_percentiles(cl->lat_ns, cl->done_measured, &r->p50_us, &r->p99_us);
    r->max_us = r->ops > 0 ? (double)cl->lat_ns[r->ops - 1] / 1000.0 : 0.0;
    for (uint64_t i = 0; i < r->ops; i++) {
        r->slow += cl->lat_ns[i] > SLOW_RTT_US * 1000ull;
    }
    return rc;
}

static uint64_t
default_ops(const struct opts *o, uint32_t conns)
{
    if (o->ops > 0) {
        return o->ops;
    }
    if (o->smoke) {
        return 200;
    }
    return conns == 1 ? 20000 : 100000;
}

static int
run_one(struct run *r, SSL_CTX *ctx, uint16_t port, unsigned tag, const struct opts *o,
    pid_t node_pid)
{
    struct client cl;
    int rc = client_init(&cl, ctx, port, r->bare, tag, r->conns);
    rc = rc ? rc : client_prepare(&cl);
    if (rc == 0) {
        rc = client_measure(&cl, r, default_ops(o, r->conns), o->seconds, node_pid);
    }
    r->errors = cl.failed + (rc != 0);
    client_release(&cl);
    return rc;
}

static void
run_print(const struct run *r)
{
    printf("%-5s %6u %8lu %6.2f %9.0f %8.1f %8.1f %8.1f %6lu %5lu", r->mode, r->conns,
        (unsigned long)r->ops, r->secs, r->secs > 0 ? (double)r->ops / r->secs : 0.0,
        r->p50_us, r->p99_us, r->max_us / 1000.0, (unsigned long)r->slow, (unsigned long)r->errors);
    if (r->bare) {
        printf(" %8s %7s %8.0f%% %7.1f %6.2f\n", "-", "-", r->client_cpu, r->cpu_us_op,
            r->ratio);
    } else {
        printf(" %7.0f%% %6.0f%% %8.0f%% %7.1f %6.2f\n", r->node_cpu, r->node_thread,
            r->client_cpu, r->cpu_us_op, r->ratio);
    }
    fflush(stdout);
}

static void
run_line(const struct run *r)
{
    double rate = r->secs > 0 ? (double)r->ops / r->secs : 0.0;
    printf("bench=edge_ping mode=%s conns=%u ops=%lu ns_op=%.0f ops_s=%.0f p50_us=%.1f "
        "p99_us=%.1f cpu_us_op=%.1f errors=%lu ratio_vs_bare=%.2f\n", r->mode, r->conns,
        (unsigned long)r->ops, rate > 0 ? 1e9 / rate : 0.0, rate, r->p50_us, r->p99_us,
        r->cpu_us_op, (unsigned long)r->errors, r->ratio);
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: bench_edge_ping [--smoke] [--ops N] [--seconds S] [--conns A,B,C] "
        "[--log-level error|warn|info|debug] [--keep]\n");
}

static int
parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {{"smoke", no_argument, NULL, 's'},
        {"ops", required_argument, NULL, 'n'}, {"seconds", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'l'}, {"keep", no_argument, NULL, 'k'},
        {"conns", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    *o = (struct opts){false, false, 0, 20, "info", {1, 100, 1000}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 's':
            o->smoke = true;
            o->seconds = 5;
            o->conns[0] = 1;
            o->conns[1] = 10;
            o->conns[2] = 50;
            break;
        case 'c':
            memset(o->conns, 0, sizeof(o->conns));
            (void)sscanf(optarg, "%u,%u,%u", &o->conns[0], &o->conns[1], &o->conns[2]);
            break;
        case 'n':
            o->ops = strtoull(optarg, NULL, 10);
            break;
        case 't':
            o->seconds = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'l':
            o->log_level = optarg;
            break;
        case 'k':
            o->keep = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return 2;
        }
    }
    for (unsigned i = 0; i < 3; i++) {
        if (o->conns[i] > SERVER_CONNS_MAX - 16) {
            return 2;
        }
    }
    return o->ops <= 10000000 && o->seconds > 0 && o->seconds <= 600 ? 0 : 2;
}

struct env {
    char root[BENCH_ROOT_BYTES];
    bench_node_t node;
    struct echo echo;
    SSL_CTX *cli, *srv;
};

static int
env_setup(struct env *e, const struct opts *o)
{
    int rc = bench_edge_env(e->root, sizeof(e->root), o->keep, o->log_level, &e->node, &e->cli,
        &e->srv);
    rc = rc ? rc : echo_start(&e->echo, e->srv);
    if (rc == 0) {
        printf("# dir %s node pid %d port %u (workers 2), echo port %u, log level %s\n",
            e->root, (int)e->node.pid, e->node.port, e->echo.port, o->log_level);
    }
    return rc;
}

static void
env_teardown(struct env *e)
{
    echo_stop(&e->echo);
    int st = bench_node_stop(&e->node, 15000);
    if (st != 0) {
        printf("# hie-node exit status %d after SIGTERM\n", st);
    }
    SSL_CTX_free(e->cli);
    SSL_CTX_free(e->srv);
}

static unsigned
run_all(struct env *e, const struct opts *o, struct run *runs)
{
    unsigned n = 0;
    long log_off = 0;
    printf("mode   conns      ops   secs     rtt/s   p50_us   p99_us   max_ms  >50ms  fail "
        "node_cpu max_thr bench_cpu cpu_us/op ratio\n");
    for (unsigned c = 0; c < 3; c++) {
        for (unsigned m = 0; m < 2 && n < RUNS_MAX && o->conns[c] > 0; m++, n++) {
            struct run *r = &runs[n];
            r->bare = m == 0;
            r->mode = r->bare ? "bare" : "node";
            r->conns = o->conns[c];
            (void)run_one(r, e->cli, r->bare ? e->echo.port : e->node.port, n, o, e->node.pid);
            r->ratio = 1.0;
            if (!r->bare && runs[n - 1].ops > 0 && runs[n - 1].secs > 0 && r->secs > 0) {
                r->ratio = ((double)r->ops / r->secs) / ((double)runs[n - 1].ops /
                    runs[n - 1].secs);
            }
            run_print(r);
            (void)bench_node_log_report(&e->node, &log_off, 4);
        }
    }
    return n;
}

int
main(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    static struct env e = {.echo = {.epfd = -1, .listen_fd = -1}};
    static struct run runs[RUNS_MAX];
    unsigned n = 0;
    printf("# bench_edge_ping: Ping round trips, one outstanding per connection, %u-byte "
        "payload, one client thread (epoll); %s, <=%u s per row\n", PAYLOAD_BYTES,
        o.smoke ? "smoke" : "full", o.seconds);
    int rc = env_setup(&e, &o);
    if (rc == 0) {
        n = run_all(&e, &o, runs);
    } else {
        fprintf(stderr, "bench_edge_ping: setup failed: %s\n", hie_strerror(rc));
    }
    env_teardown(&e);
    uint64_t errors = atomic_load(&e.echo.failures);
    for (unsigned i = 0; i < n; i++) {
        run_line(&runs[i]);
        errors += runs[i].errors;
    }
    if (atomic_load(&e.echo.failures) > 0) {
        printf("# echo server failures: %lu\n", (unsigned long)atomic_load(&e.echo.failures));
    }
    return rc != 0 ? 1 : (errors > 0 ? 3 : 0);
}
