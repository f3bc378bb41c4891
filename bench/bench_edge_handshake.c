/*
 * bench_edge_handshake.c - mutual TLS 1.3 handshakes per second through hie-node's edge, and
 * the bare OpenSSL limit measured in the same run.
 *
 * One operation: TCP connect, full TLS 1.3 handshake (P-256 certificates from the development
 * PKI, no session resumption: tickets and session caches are off on both sides), then one Ping
 * frame and wait for the reply. The reply proves the server accepted the client certificate (in
 * TLS 1.3 the client finishes its handshake before the server has checked its certificate).
 * Then close_notify and close. Latency is connect start to reply received.
 *
 * Servers: (a) hie-node as a child process (edge thread does TLS, a worker authorizes the
 * organization and answers the Ping); (b) an in-process bare server: BARE_THREADS threads
 * blocking in accept() + SSL_accept() on one listening socket, same CA, CRL check, peer
 * verification, certificate and key as the node, answering the first frame with a fixed Pong.
 * The same client threads (1, then 2) drive both. Bounded by count (--ops) and time
 * (--seconds) per measurement. Workload ids and payloads come from BENCH_SEED.
 *
 * Usage: bench_edge_handshake [--smoke] [--ops N] [--seconds S] [--log-level L] [--keep]
 */
#include "harness.h"

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
#include <sys/socket.h>
#include <unistd.h>

#define BARE_THREADS 2u
#define CLIENTS_MAX 2u
#define PAYLOAD_BYTES 16u
#define REPLY_BYTES_MAX (64u * 1024u)
#define WARMUP_OPS 10u
#define RUNS_MAX 8u

struct opts {
    bool smoke;
    bool keep;
    uint64_t ops;
    unsigned seconds;
    const char *log_level;
};

/* One measurement: mode (bare or node) x client count. */
struct run {
    const char *mode;
    bool bare;
    unsigned clients;
    unsigned tag;            /* makes envelope ids unique across runs */
    uint16_t port;
    SSL_CTX *ctx;
    uint64_t ops_target;
    uint64_t deadline_ns;
    uint64_t *lat_ns;        /* ops_target slots; 0 = failed or not run */
    _Atomic uint64_t claimed;
    _Atomic uint64_t failures;
    uint8_t payload[PAYLOAD_BYTES];
    /* results */
    uint64_t ops;
    double secs, p50_us, p99_us, ratio, cpu_pct, thread_pct;
    double proc_pct;         /* this process: the clients (and the bare server, when bare) */
    double cpu_us_op;        /* CPU of both processes per operation: robust to a busy host */
};

struct client_arg {
    struct run *run;
    unsigned index;
};

struct bare {
    int listen_fd;
    uint16_t port;
    SSL_CTX *ctx;
    pthread_t threads[BARE_THREADS];
    unsigned started;
    _Atomic bool stop;
    _Atomic uint64_t failures;
    uint8_t *reply;
    size_t reply_len;
};

/* ---- the client -------------------------------------------------------------------------- */

static int
client_exchange(struct run *r, SSL *ssl, unsigned thread, uint64_t seq, uint8_t *rbuf)
{
    char id[48];
    uint8_t *frame = NULL;
    size_t frame_len = 0, body_len = 0;
    snprintf(id, sizeof(id), "h%u-%u-%lu", r->tag, thread, (unsigned long)seq);
    int rc = bench_ping_frame(id, r->payload, sizeof(r->payload), &frame, &frame_len);
    if (rc == 0) {
        rc = bench_ssl_write_all(ssl, frame, frame_len);
    }
    hie_mem_free(frame, frame_len);
    if (rc == 0) {
        rc = bench_ssl_read_frame(ssl, rbuf, REPLY_BYTES_MAX, &body_len);
    }
    if (rc == 0) {
        rc = bench_reply_check(rbuf, body_len, r->bare ? NULL : id, false);
    }
    return rc;
}

/* One operation; returns 0 and its latency, or an error. */
static int
client_once(struct run *r, unsigned thread, uint64_t seq, uint8_t *rbuf, uint64_t *lat_ns)
{
    uint64_t t0 = hie_time_mono_ns();
    int fd = bench_tcp_connect(r->port);
    if (fd < 0) {
        return fd;
    }
    SSL *ssl = SSL_new(r->ctx);
    int rc = HIE_ETLS;
    if (ssl != NULL && SSL_set_fd(ssl, fd) == 1 && SSL_connect(ssl) == 1) {
        rc = client_exchange(r, ssl, thread, seq, rbuf);
    }
    *lat_ns = hie_time_mono_ns() - t0;
    if (ssl != NULL) {
        if (rc == 0) {
            (void)SSL_shutdown(ssl); /* send close_notify; do not wait for the peer's */
        }
        SSL_free(ssl);
    }
    close(fd);
    ERR_clear_error();
    return rc;
}

static void *
client_thread(void *arg)
{
    struct client_arg *a = arg;
    struct run *r = a->run;
    uint8_t *rbuf = malloc(REPLY_BYTES_MAX);
    HIE_ASSERT(rbuf != NULL);
    for (uint64_t n = 0; n < r->ops_target; n++) {
        uint64_t idx = atomic_fetch_add(&r->claimed, 1);
        if (idx >= r->ops_target || hie_time_mono_ns() >= r->deadline_ns) {
            break;
        }
        uint64_t lat = 0;
        if (client_once(r, a->index, idx, rbuf, &lat) == 0) {
            r->lat_ns[idx] = lat;
        } else {
            atomic_fetch_add(&r->failures, 1);
        }
    }
    free(rbuf);
    return NULL;
}

/* Runs r->clients threads until ops_target operations were claimed or the deadline passed. */
static int
run_clients(struct run *r, unsigned seconds)
{
    pthread_t th[CLIENTS_MAX];
    struct client_arg args[CLIENTS_MAX];
    HIE_ASSERT(r->clients >= 1 && r->clients <= CLIENTS_MAX);
    memset(r->lat_ns, 0, r->ops_target * sizeof(*r->lat_ns));
    atomic_store(&r->claimed, 0);
    atomic_store(&r->failures, 0);
    uint64_t t0 = hie_time_mono_ns();
    r->deadline_ns = t0 + (uint64_t)seconds * 1000000000ull;
    unsigned started = 0;
    for (unsigned i = 0; i < r->clients; i++) {
        args[i] = (struct client_arg){r, i};
        if (pthread_create(&th[i], NULL, client_thread, &args[i]) == 0) {
            started++;
        }
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
    }
    r->secs = (double)(hie_time_mono_ns() - t0) / 1e9;
    size_t ok = 0;
    for (uint64_t i = 0; i < r->ops_target; i++) {
        if (r->lat_ns[i] != 0) {
            r->lat_ns[ok++] = r->lat_ns[i];
        }
    }
    r->ops = ok;
    bench_percentiles(r->lat_ns, ok, &r->p50_us, &r->p99_us);
    return started == r->clients ? 0 : HIE_ENOMEM;
}

/* ---- the bare server --------------------------------------------------------------------- */

static void
bare_serve(struct bare *b, int fd)
{
    uint8_t buf[4096];
    size_t body_len = 0;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    SSL *ssl = SSL_new(b->ctx);
    int rc = HIE_ETLS;
    if (ssl != NULL && SSL_set_fd(ssl, fd) == 1 && SSL_accept(ssl) == 1) {
        rc = bench_ssl_read_frame(ssl, buf, sizeof(buf), &body_len);
        if (rc == 0) {
            rc = bench_ssl_write_all(ssl, b->reply, b->reply_len);
        }
        if (rc == 0) {
            (void)SSL_shutdown(ssl);
        }
    }
    if (rc != 0) {
        atomic_fetch_add(&b->failures, 1);
    }
    SSL_free(ssl);
    close(fd);
    ERR_clear_error();
}

static void *
bare_thread(void *arg)
{
    struct bare *b = arg;
    uint64_t end_ns = hie_time_mono_ns() + BENCH_SERVER_LIFETIME_NS;
    while (!atomic_load(&b->stop) && hie_time_mono_ns() < end_ns) {
        int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            break; /* shutdown() of the listening socket: we are stopping */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        bare_serve(b, fd);
    }
    return NULL;
}

static int
bare_start(struct bare *b, SSL_CTX *ctx)
{
    memset(b, 0, sizeof(*b));
    b->ctx = ctx;
    b->port = bench_port_pick();
    b->listen_fd = b->port == 0 ? HIE_ELIMIT : bench_tcp_listen(b->port, 1024, false);
    if (b->listen_fd < 0) {
        return b->listen_fd;
    }
    int rc = bench_pong_frame("fixed", NULL, 0, &b->reply, &b->reply_len);
    for (unsigned i = 0; rc == 0 && i < BARE_THREADS; i++) {
        rc = -pthread_create(&b->threads[i], NULL, bare_thread, b);
        b->started += rc == 0;
    }
    return rc;
}

static void
bare_stop(struct bare *b)
{
    atomic_store(&b->stop, true);
    if (b->listen_fd >= 0) {
        shutdown(b->listen_fd, SHUT_RDWR); /* wakes the threads blocked in accept() */
    }
    for (unsigned i = 0; i < b->started; i++) {
        pthread_join(b->threads[i], NULL);
    }
    if (b->listen_fd >= 0) {
        close(b->listen_fd);
    }
    hie_mem_free(b->reply, b->reply_len);
    b->reply = NULL;
}

/* ---- driver ------------------------------------------------------------------------------ */

static void
run_print(const struct run *r, uint64_t failures)
{
    printf("%-5s %7u %7lu %7.2f %9.1f %9.1f %9.1f %6lu", r->mode, r->clients,
        (unsigned long)r->ops, r->secs, r->secs > 0 ? (double)r->ops / r->secs : 0.0,
        r->p50_us, r->p99_us, (unsigned long)failures);
    if (r->bare) {
        printf(" %9s %9s %8.0f%% %8.0f %6s\n", "-", "-", r->proc_pct, r->cpu_us_op, "1.00");
    } else {
        printf(" %8.0f%% %8.0f%% %8.0f%% %8.0f %6.2f\n", r->cpu_pct, r->thread_pct,
            r->proc_pct, r->cpu_us_op, r->ratio);
    }
    fflush(stdout);
}

static void
run_line(const struct run *r, uint64_t failures)
{
    double rate = r->secs > 0 ? (double)r->ops / r->secs : 0.0;
    printf("bench=edge_handshake mode=%s clients=%u ops=%lu ns_op=%.0f ops_s=%.1f p50_us=%.1f "
        "p99_us=%.1f cpu_us_op=%.0f errors=%lu ratio_vs_bare=%.2f\n", r->mode, r->clients,
        (unsigned long)r->ops, rate > 0 ? 1e9 / rate : 0.0, rate, r->p50_us, r->p99_us,
        r->cpu_us_op, (unsigned long)failures, r->ratio);
}

/* Measures one (mode, clients) pair: warm-up, then the timed run. CPU is sampled for the node
 * and for this process, so cpu_us_op covers servers and clients in both modes. */
static uint64_t
measure(struct run *r, const struct opts *o, pid_t node_pid)
{
    uint64_t target = r->ops_target;
    r->ops_target = target < WARMUP_OPS ? target : WARMUP_OPS; /* lat_ns holds target slots */
    (void)run_clients(r, 5);
    uint64_t warm_failures = atomic_load(&r->failures);
    r->ops_target = target;
    bench_cpu_t n0, n1, s0, s1;
    bench_cpu_sample(node_pid, &n0);
    bench_cpu_sample(getpid(), &s0);
    int rc = run_clients(r, o->seconds);
    bench_cpu_sample(node_pid, &n1);
    bench_cpu_sample(getpid(), &s1);
    pid_t tid = 0;
    double unused = 0;
    bench_cpu_delta(&n0, &n1, &r->cpu_pct, &r->thread_pct, &tid);
    bench_cpu_delta(&s0, &s1, &r->proc_pct, &unused, &tid);
    r->cpu_us_op = r->ops > 0 ? (r->cpu_pct + r->proc_pct) / 100.0 * r->secs * 1e6 /
        (double)r->ops : 0.0;
    return atomic_load(&r->failures) + warm_failures + (rc != 0);
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: bench_edge_handshake [--smoke] [--ops N] [--seconds S] "
        "[--log-level error|warn|info|debug] [--keep]\n");
}

static int
parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {{"smoke", no_argument, NULL, 's'},
        {"ops", required_argument, NULL, 'n'}, {"seconds", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'l'}, {"keep", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    *o = (struct opts){false, false, 2000, 20, "info"};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 's':
            o->smoke = true;
            o->ops = 20;
            o->seconds = 5;
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
            usage(stderr);
            return 2;
        }
    }
    return o->ops > 0 && o->ops <= 1000000 && o->seconds > 0 && o->seconds <= 600 ? 0 : 2;
}

struct env {
    char root[BENCH_ROOT_BYTES];
    bench_node_t node;
    struct bare bare;
    SSL_CTX *cli, *srv;
};

static int
env_setup(struct env *e, const struct opts *o)
{
    int rc = bench_edge_env(e->root, sizeof(e->root), o->keep, o->log_level, &e->node, &e->cli,
        &e->srv);
    rc = rc ? rc : bare_start(&e->bare, e->srv);
    if (rc == 0) {
        printf("# dir %s node pid %d port %u, bare port %u (%u threads), log level %s\n",
            e->root, (int)e->node.pid, e->node.port, e->bare.port, BARE_THREADS, o->log_level);
    }
    return rc;
}

static void
env_teardown(struct env *e)
{
    bare_stop(&e->bare);
    int st = bench_node_stop(&e->node, 15000);
    if (st != 0) {
        printf("# hie-node exit status %d after SIGTERM\n", st);
    }
    SSL_CTX_free(e->cli);
    SSL_CTX_free(e->srv);
}

static void
run_all(struct env *e, const struct opts *o, struct run *runs, uint64_t *fails, unsigned *n)
{
    static const unsigned clients[] = {1, 2};
    long log_off = 0;
    uint64_t rs = BENCH_SEED;
    printf("mode  clients     ops    secs      hs/s    p50_us    p99_us   fail "
        "node_cpu max_thread bench_cpu cpu_us/op  ratio\n");
    for (unsigned c = 0; c < HIE_ARRAY_LEN(clients); c++) {
        for (unsigned m = 0; m < 2 && *n < RUNS_MAX; m++) {
            struct run *r = &runs[*n];
            r->bare = m == 0;
            r->mode = r->bare ? "bare" : "node";
            r->clients = clients[c];
            r->tag = *n;
            r->port = r->bare ? e->bare.port : e->node.port;
            r->ctx = e->cli;
            r->ops_target = o->ops;
            r->lat_ns = calloc(o->ops, sizeof(*r->lat_ns));
            HIE_ASSERT(r->lat_ns != NULL);
            for (unsigned i = 0; i < PAYLOAD_BYTES; i++) {
                r->payload[i] = (uint8_t)bench_rand(&rs);
            }
            fails[*n] = measure(r, o, e->node.pid);
            if (!r->bare) {
                const struct run *b = &runs[*n - 1];
                double br = b->secs > 0 ? (double)b->ops / b->secs : 0.0;
                r->ratio = br > 0 ? ((double)r->ops / r->secs) / br : 0.0;
            } else {
                r->ratio = 1.0;
            }
            run_print(r, fails[*n]);
            (void)bench_node_log_report(&e->node, &log_off, 4);
            (*n)++;
        }
    }
}

int
main(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    static struct env e = {.bare.listen_fd = -1};
    static struct run runs[RUNS_MAX];
    uint64_t fails[RUNS_MAX] = {0};
    unsigned n = 0;
    printf("# bench_edge_handshake: mutual TLS 1.3 handshakes (P-256, no resumption) + first "
        "Ping/Pong; %s, ops<=%lu, <=%u s per row\n", o.smoke ? "smoke" : "full",
        (unsigned long)o.ops, o.seconds);
    int rc = env_setup(&e, &o);
    if (rc == 0) {
        run_all(&e, &o, runs, fails, &n);
    } else {
        fprintf(stderr, "bench_edge_handshake: setup failed: %s\n", hie_strerror(rc));
    }
    env_teardown(&e);
    uint64_t total_fail = e.bare.failures;
    for (unsigned i = 0; i < n; i++) {
        run_line(&runs[i], fails[i]);
        total_fail += fails[i];
        free(runs[i].lat_ns);
    }
    if (e.bare.failures > 0) {
        printf("# bare server failures: %lu\n", (unsigned long)e.bare.failures);
    }
    return rc != 0 ? 1 : (total_fail > 0 ? 3 : 0);
}
