/*
 * push_rabbitmq.c - the RabbitMQ baseline of bench_push (issue 5), built into bench_push only
 * when librabbitmq-c is found (HIE_BENCH_RABBITMQ; see bench/CMakeLists.txt).
 *
 * The same workload as our side: N documents of 1 KiB from C publisher connections, each
 * keeping W messages unconfirmed (publisher confirms), into one durable quorum queue
 * (x-queue-type: quorum, persistent messages), while one consumer connection (prefetch = the
 * delivery window) receives and acknowledges them (basic.ack multiple, every K deliveries or
 * MS after the oldest unacknowledged one). Every connection is mutual TLS to 127.0.0.1 with the
 * bench's own PKI (the node's certificate for the server, the members' for the clients,
 * verify_peer and fail_if_no_peer_cert); the login is the loopback-only guest user over PLAIN.
 * The same push_track_t bookkeeping gives the same figures and the exactly-once check.
 *
 * The server: Debian bookworm's rabbitmq-server (3.10 on Erlang 25), installed by
 * deploy/install-bench-deps.sh rabbitmq when missing (root and apt; otherwise we say why and
 * the caller reports our side alone). It runs from <root>/rabbitmq: its own config file,
 * database (RABBITMQ_MNESIA_BASE), logs, an empty plugin list, an Erlang cookie in its own
 * HOME, and its own epmd, on 127.0.0.1 and free ports (AMQPS, Erlang distribution, epmd).
 * RABBITMQ_ALLOW_INPUT makes the start script exec erl in place, so the process we start is
 * beam.smp itself and carries PR_SET_PDEATHSIG: if the benchmark dies, so does the broker.
 * epmd runs in the foreground as our child too. Stopped with SIGTERM (RabbitMQ's graceful
 * shutdown), SIGKILL after a timeout, at the end, at exit and on fatal signals.
 *
 * Limits: every wait is bounded (start 120 s, stop 60 s, frames 10 s, the run's deadline).
 */
#include "push_common.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define RMQ_SERVER "/usr/lib/rabbitmq/bin/rabbitmq-server"
#define RMQ_EPMD "/usr/bin/epmd"
#define RMQ_QUEUE "hie-push"
#define RMQ_CHANNEL 1
#define RMQ_FRAME_BYTES 131072
#define RMQ_START_MS (120 * 1000)
#define RMQ_STOP_MS (60 * 1000)
#define RMQ_FRAME_WAIT_S 10
#define RMQ_INSTALL_MS (900 * 1000)
#define RMQ_PATH_BYTES (BENCH_ROOT_BYTES + 64u)

_Static_assert(RMQ_PATH_BYTES + 64u <= BENCH_PATH_BYTES, "paths under <root>/rabbitmq fit");

/* The server: process-wide so that the exit and signal paths can stop it. */
static struct rmq_server {
    char root[BENCH_ROOT_BYTES];    /* the benchmark's directory (the PKI is there) */
    char dir[RMQ_PATH_BYTES];       /* <root>/rabbitmq */
    char nodename[64];
    uint16_t port, dist_port, epmd_port;
    volatile pid_t beam, epmd;      /* 0 when not running */
    bool handlers;
} srv;

static const int fatal_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGABRT, SIGSEGV, SIGBUS};
static struct sigaction old_actions[HIE_ARRAY_LEN(fatal_signals)];

/* ---- the server's processes ------------------------------------------------------------------ */

/* fork + exec with PR_SET_PDEATHSIG, output appended to log. Returns the pid or -errno. */
static pid_t
rmq_spawn(const char *const *argv, const char *log)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t p = fork();
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        signal(SIGPIPE, SIG_DFL);
        int in = open("/dev/null", O_RDONLY), out = open(log, O_WRONLY | O_CREAT | O_APPEND,
            0600);
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) {
            _exit(127);
        }
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    return p < 0 ? -errno : p;
}

/* Waits for pid at most timeout_ms; true when it exited (and was reaped). */
static bool
rmq_reap(pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            return true;
        }
        usleep(20000);
    }
    return false;
}

/* SIGTERM, then SIGKILL after timeout_ms. */
static void
rmq_kill(volatile pid_t *pid, int timeout_ms, const char *what)
{
    pid_t p = *pid;
    if (p <= 0) {
        return;
    }
    kill(p, SIGTERM);
    if (!rmq_reap(p, timeout_ms)) {
        fprintf(stderr, "bench_push: rabbitmq: %s did not stop within %d ms, killed\n", what,
            timeout_ms);
        kill(p, SIGKILL);
        (void)rmq_reap(p, 5000);
    }
    *pid = 0;
}

static void
rmq_stop(void)
{
    rmq_kill(&srv.beam, RMQ_STOP_MS, "beam.smp");
    rmq_kill(&srv.epmd, 5000, "epmd");
}

/* Async-signal-safe: SIGKILL both, then the harness's handler (removes the directory). */
static void
rmq_on_fatal_signal(int sig)
{
    if (srv.beam > 0) {
        kill(srv.beam, SIGKILL);
    }
    if (srv.epmd > 0) {
        kill(srv.epmd, SIGKILL);
    }
    for (size_t i = 0; i < HIE_ARRAY_LEN(fatal_signals); i++) {
        if (fatal_signals[i] == sig && old_actions[i].sa_handler != SIG_DFL &&
            old_actions[i].sa_handler != SIG_IGN) {
            old_actions[i].sa_handler(sig);
        }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* After bench_setup(): our exit handler runs before the harness's (atexit is LIFO). */
static void
rmq_handlers_install(void)
{
    if (srv.handlers) {
        return;
    }
    srv.handlers = true;
    atexit(rmq_stop);
    for (size_t i = 0; i < HIE_ARRAY_LEN(fatal_signals); i++) {
        struct sigaction sa = {0};
        sa.sa_handler = rmq_on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(fatal_signals[i], &sa, &old_actions[i]);
    }
}

static void
rmq_log_print(const char *path, unsigned lines_max)
{
    char line[512];
    FILE *f = fopen(path, "r");
    for (unsigned i = 0; f != NULL && i < lines_max && fgets(line, sizeof(line), f); i++) {
        fprintf(stderr, "  | %s", line);
    }
    if (f != NULL) {
        fclose(f);
    }
}

/* ---- install, configure, start --------------------------------------------------------------- */

static int
rmq_ensure_installed(void)
{
    char script[BENCH_PATH_BYTES], log[BENCH_PATH_BYTES];
    if (access(RMQ_SERVER, X_OK) == 0 && access(RMQ_EPMD, X_OK) == 0) {
        return 0;
    }
    snprintf(script, sizeof(script), "%s/deploy/install-bench-deps.sh", HIE_SOURCE_DIR);
    snprintf(log, sizeof(log), "%s/install.log", srv.dir);
    printf("# rabbitmq-server not found: running %s rabbitmq\n", script);
    const char *argv[] = {"/bin/bash", script, "rabbitmq", NULL};
    int rc = bench_run(argv, log, RMQ_INSTALL_MS);
    if (rc != 0) {
        fprintf(stderr, "bench_push: rabbitmq-server is not installed and %s could not install "
            "it (status %d; it needs root and apt):\n", script, rc);
        rmq_log_print(log, 40);
        return 1;
    }
    if (access(RMQ_SERVER, X_OK) != 0 || access(RMQ_EPMD, X_OK) != 0) {
        fprintf(stderr, "bench_push: %s ran, but %s or %s is still missing (or not "
            "executable)\n", script, RMQ_SERVER, RMQ_EPMD);
        return 1;
    }
    return 0;
}

static int
file_write(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) {
        return -errno;
    }
    size_t len = strlen(text);
    int rc = write(fd, text, len) == (ssize_t)len ? 0 : -EIO;
    return close(fd) == 0 ? rc : -errno;
}

/* rabbitmq.conf (mutual TLS on 127.0.0.1 only), no plugins, an empty env file, the cookie. */
static int
rmq_config_write(void)
{
    char path[BENCH_PATH_BYTES], conf[2048], pki[BENCH_PATH_BYTES];
    snprintf(pki, sizeof(pki), "%s/pki", srv.root);
    snprintf(conf, sizeof(conf),
        "# written by bench_push (push_rabbitmq.c)\n"
        "listeners.tcp = none\n"
        "listeners.ssl.default = 127.0.0.1:%u\n"
        "ssl_options.cacertfile = %s/ca/ca.crt\n"
        "ssl_options.certfile = %s/certs/" BENCH_NODE_ID ".crt\n"
        "ssl_options.keyfile = %s/certs/" BENCH_NODE_ID ".key\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = true\n"
        "ssl_options.versions.1 = tlsv1.3\n"
        "loopback_users.guest = true\n"
        "log.console = false\n"
        "log.file.level = warning\n", srv.port, pki, pki, pki);
    snprintf(path, sizeof(path), "%s/rabbitmq.conf", srv.dir);
    int rc = file_write(path, conf, 0600);
    snprintf(path, sizeof(path), "%s/enabled_plugins", srv.dir);
    rc = rc ? rc : file_write(path, "[].\n", 0600);
    snprintf(path, sizeof(path), "%s/rabbitmq-env.conf", srv.dir);
    rc = rc ? rc : file_write(path, "# none: keeps /etc/rabbitmq/rabbitmq-env.conf out\n", 0600);
    snprintf(path, sizeof(path), "%s/home", srv.dir);
    rc = rc ? rc : (mkdir(path, 0700) == 0 ? 0 : -errno);
    snprintf(path, sizeof(path), "%s/home/.erlang.cookie", srv.dir);
    rc = rc ? rc : file_write(path, "HIEBENCHPUSHCOOKIE\n", 0400); /* loopback-only node */
    return rc;
}

/* The environment of the start script and of erl (inherited: set before the fork; no other
 * thread runs at this point). */
static int
rmq_env_set(void)
{
    char v[BENCH_PATH_BYTES];
    int rc = 0;
#define SETP(name, fmt, ...) \
    (snprintf(v, sizeof(v), fmt, __VA_ARGS__), rc |= setenv(name, v, 1))
    SETP("HOME", "%s/home", srv.dir);
    SETP("RABBITMQ_NODENAME", "%s", srv.nodename);
    SETP("RABBITMQ_MNESIA_BASE", "%s/mnesia", srv.dir);
    SETP("RABBITMQ_LOG_BASE", "%s/log", srv.dir);
    SETP("RABBITMQ_CONFIG_FILE", "%s/rabbitmq.conf", srv.dir);
    SETP("RABBITMQ_ADVANCED_CONFIG_FILE", "%s/advanced.config", srv.dir);
    SETP("RABBITMQ_ENABLED_PLUGINS_FILE", "%s/enabled_plugins", srv.dir);
    SETP("RABBITMQ_CONF_ENV_FILE", "%s/rabbitmq-env.conf", srv.dir);
    SETP("RABBITMQ_PID_FILE", "%s/rabbit.pid", srv.dir);
    SETP("RABBITMQ_DIST_PORT", "%u", srv.dist_port);
    SETP("ERL_EPMD_PORT", "%u", srv.epmd_port);
    SETP("ERL_EPMD_ADDRESS", "%s", "127.0.0.1");
    SETP("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "%s",
        "-kernel inet_dist_use_interface {127,0,0,1}");
    SETP("RABBITMQ_ALLOW_INPUT", "%s", "1"); /* exec erl in place (see the file comment) */
#undef SETP
    return rc == 0 ? 0 : -errno;
}

static int
rmq_ports_pick(void)
{
    srv.port = bench_port_pick();
    srv.dist_port = bench_port_pick();
    srv.epmd_port = bench_port_pick();
    bool ok = srv.port != 0 && srv.dist_port != 0 && srv.epmd_port != 0 &&
              srv.port != srv.dist_port && srv.port != srv.epmd_port &&
              srv.dist_port != srv.epmd_port;
    snprintf(srv.nodename, sizeof(srv.nodename), "hiebench%u@localhost", srv.port);
    return ok ? 0 : -1;
}

/* ---- AMQP client ----------------------------------------------------------------------------- */

static bool
rpc_ok(amqp_connection_state_t c, const char *what, bool quiet)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        return true;
    }
    if (!quiet) {
        fprintf(stderr, "bench_push: rabbitmq: %s failed: %s\n", what,
            r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(r.library_error)
            : r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION ? "server exception (see its log)"
            : "no reply");
    }
    return false;
}

/* Mutual TLS to localhost:port as member, login, channel 1. NULL on failure. */
static amqp_connection_state_t
rmq_connect(const char *member, bool quiet)
{
    char ca[BENCH_PATH_BYTES], crt[BENCH_PATH_BYTES], key[BENCH_PATH_BYTES];
    snprintf(ca, sizeof(ca), "%s/pki/ca/ca.crt", srv.root);
    snprintf(crt, sizeof(crt), "%s/pki/certs/%s.crt", srv.root, member);
    snprintf(key, sizeof(key), "%s/pki/certs/%s.key", srv.root, member);
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = c != NULL ? amqp_ssl_socket_new(c) : NULL;
    struct timeval tv = {5, 0};
    bool ok = s != NULL && amqp_ssl_socket_set_cacert(s, ca) == AMQP_STATUS_OK &&
              amqp_ssl_socket_set_key(s, crt, key) == AMQP_STATUS_OK;
    if (ok) {
        amqp_ssl_socket_set_verify_peer(s, 1);
        amqp_ssl_socket_set_verify_hostname(s, 1); /* the node certificate names localhost */
        ok = amqp_ssl_socket_set_ssl_versions(s, AMQP_TLSv1_2, AMQP_TLSvLATEST) ==
             AMQP_STATUS_OK;
    }
    int st = ok ? amqp_socket_open_noblock(s, "localhost", srv.port, &tv) : AMQP_STATUS_OK;
    if (ok && st != AMQP_STATUS_OK && !quiet) {
        fprintf(stderr, "bench_push: rabbitmq: tls connect failed: %s\n",
            amqp_error_string2(st));
    }
    ok = ok && st == AMQP_STATUS_OK;
    if (ok) {
        amqp_rpc_reply_t r = amqp_login(c, "/", 0, RMQ_FRAME_BYTES, 0, AMQP_SASL_METHOD_PLAIN,
            "guest", "guest");
        ok = r.reply_type == AMQP_RESPONSE_NORMAL;
    }
    ok = ok && amqp_channel_open(c, RMQ_CHANNEL) != NULL && rpc_ok(c, "channel.open", quiet);
    if (!ok && c != NULL) {
        amqp_destroy_connection(c);
        c = NULL;
    }
    return c;
}

static void
rmq_close(amqp_connection_state_t *c)
{
    if (*c != NULL) {
        (void)amqp_channel_close(*c, RMQ_CHANNEL, AMQP_REPLY_SUCCESS);
        (void)amqp_connection_close(*c, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(*c);
        *c = NULL;
    }
}

/* Declares the durable quorum queue; [out] *messages: what it holds (passive: just count). */
static int
rmq_queue_declare(amqp_connection_state_t c, bool passive, uint32_t *messages)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes("x-queue-type");
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes("quorum");
    amqp_table_t args = {1, &e};
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(c, RMQ_CHANNEL,
        amqp_cstring_bytes(RMQ_QUEUE), passive, 1, 0, 0, passive ? amqp_empty_table : args);
    if (ok == NULL || !rpc_ok(c, "queue.declare (x-queue-type: quorum)", false)) {
        return -1;
    }
    *messages = ok->message_count;
    return 0;
}

/* Starts epmd and the broker, waits until an AMQPS login works (bounded). */
static int
rmq_start(void)
{
    char log[BENCH_PATH_BYTES], epmd_port[16];
    snprintf(log, sizeof(log), "%s/server.log", srv.dir);
    snprintf(epmd_port, sizeof(epmd_port), "%u", srv.epmd_port);
    const char *epmd[] = {RMQ_EPMD, "-address", "127.0.0.1", "-port", epmd_port, NULL};
    const char *server[] = {RMQ_SERVER, "-noinput", NULL};
    pid_t p = rmq_spawn(epmd, log);
    srv.epmd = p > 0 ? p : 0;
    usleep(200000);
    p = srv.epmd > 0 ? rmq_spawn(server, log) : -1;
    srv.beam = p > 0 ? p : 0;
    uint64_t t0 = hie_time_mono_ns();
    for (int waited = 0; srv.beam > 0 && waited < RMQ_START_MS; waited += 500) {
        amqp_connection_state_t c = rmq_connect(BENCH_MEMBER, true);
        if (c != NULL) {
            rmq_close(&c);
            printf("# rabbitmq %s started in %.1f s (amqps 127.0.0.1:%u, epmd %u, dist %u)\n",
                srv.nodename, (double)(hie_time_mono_ns() - t0) / 1e9, srv.port,
                srv.epmd_port, srv.dist_port);
            fflush(stdout);
            return 0;
        }
        if (waitpid(srv.beam, NULL, WNOHANG) == srv.beam) {
            srv.beam = 0;
            break;
        }
        usleep(500000);
    }
    fprintf(stderr, "bench_push: rabbitmq did not start (or refused our login); its output:\n");
    rmq_log_print(log, 60);
    return -1;
}

/* ---- the workload ---------------------------------------------------------------------------- */

struct rrun {
    const push_opts_t *o;
    push_track_t *t;
};

struct rpub {
    struct rrun *r;
    unsigned k;                 /* publishes indices k, k + C, ...; delivery tag j + 1 is the
                                   j-th of them */
    pthread_t thread;
    int rc;
    uint8_t *confirmed;         /* per delivery tag */
    uint64_t low;               /* lowest tag not yet confirmed */
};

static int
rpub_publish(struct rpub *p, amqp_connection_state_t c, unsigned index)
{
    char id[24];
    uint8_t doc[PUSH_DOC_BYTES];
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof(props));
    snprintf(id, sizeof(id), "p%u", index);
    push_doc_fill(index, doc);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                   AMQP_BASIC_MESSAGE_ID_FLAG;
    props.content_type = amqp_cstring_bytes("text/plain");
    props.delivery_mode = 2; /* persistent (quorum queues persist every message anyway) */
    props.message_id = amqp_cstring_bytes(id);
    atomic_store_explicit(&p->r->t->sent_ns[index], hie_time_mono_ns(), memory_order_relaxed);
    int st = amqp_basic_publish(c, RMQ_CHANNEL, amqp_empty_bytes, amqp_cstring_bytes(RMQ_QUEUE),
        0, 0, &props, (amqp_bytes_t){sizeof(doc), doc});
    return st == AMQP_STATUS_OK ? 0 : -1;
}

/* Marks tag (and, multiple, every lower one) confirmed; counts the new ones. */
static unsigned
rpub_confirm(struct rpub *p, uint64_t tag, bool multiple, uint64_t published)
{
    unsigned n = 0;
    push_track_t *t = p->r->t;
    uint64_t now = hie_time_mono_ns();
    if (tag < 1 || tag > published) {
        return 0;
    }
    for (uint64_t g = multiple ? p->low : tag; g <= tag; g++) {
        if (!p->confirmed[g]) {
            p->confirmed[g] = 1;
            push_track_acked(t, p->k + (unsigned)(g - 1) * t->conns, now);
            n++;
        }
    }
    while (p->low <= published && p->confirmed[p->low]) {
        p->low++;
    }
    return n;
}

/* Reads one frame: basic.ack confirms, anything else is an error. [in,out] *confirmed. */
static int
rpub_wait(struct rpub *p, amqp_connection_state_t c, uint64_t published, uint64_t *confirmed)
{
    amqp_frame_t f;
    struct timeval tv = {RMQ_FRAME_WAIT_S, 0};
    int st = amqp_simple_wait_frame_noblock(c, &f, &tv);
    if (st != AMQP_STATUS_OK) {
        fprintf(stderr, "bench_push: rabbitmq: publisher %u: %s\n", p->k,
            amqp_error_string2(st));
        return -1;
    }
    if (f.frame_type != AMQP_FRAME_METHOD) {
        return 0;
    }
    if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        const amqp_basic_ack_t *a = f.payload.method.decoded;
        *confirmed += rpub_confirm(p, a->delivery_tag, a->multiple, published);
        return 0;
    }
    if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
        const amqp_basic_nack_t *a = f.payload.method.decoded;
        atomic_fetch_add(&p->r->t->errors, 1);
        *confirmed += rpub_confirm(p, a->delivery_tag, a->multiple, published);
        return 0; /* counted as acknowledged too: the tag is settled (errors tells) */
    }
    fprintf(stderr, "bench_push: rabbitmq: publisher %u: unexpected method 0x%08x\n", p->k,
        (unsigned)f.payload.method.id);
    return -1;
}

static void *
rpub_thread(void *arg)
{
    struct rpub *p = arg;
    push_track_t *t = p->r->t;
    uint64_t mine = t->n > p->k ? (t->n - p->k + t->conns - 1) / t->conns : 0;
    uint64_t published = 0, confirmed = 0;
    p->confirmed = calloc(mine + 2, 1);
    p->low = 1;
    amqp_connection_state_t c = p->confirmed != NULL ? rmq_connect(BENCH_MEMBER, false) : NULL;
    int rc = c == NULL ? -1 : 0;
    if (rc == 0 && (amqp_confirm_select(c, RMQ_CHANNEL) == NULL ||
                       !rpc_ok(c, "confirm.select", false))) {
        rc = -1;
    }
    /* Each round publishes or reads at least one frame: 4 * mine + 4 rounds bound it. */
    for (uint64_t round = 0; rc == 0 && confirmed < mine && round < 4ull * mine + 4u; round++) {
        while (rc == 0 && published - confirmed < p->r->o->window && published < mine &&
               hie_time_mono_ns() < t->deadline_ns) {
            rc = rpub_publish(p, c, p->k + (unsigned)published * t->conns);
            published++;
        }
        if (rc != 0 || confirmed == published) {
            break; /* failed, or the deadline stopped the publishing and nothing is in flight */
        }
        amqp_maybe_release_buffers(c);
        rc = rpub_wait(p, c, published, &confirmed);
    }
    if (rc != 0) {
        atomic_fetch_add(&t->errors, 1);
    }
    p->rc = rc;
    rmq_close(&c);
    free(p->confirmed);
    return NULL;
}

struct rcons {
    struct rrun *r;
    pthread_t thread;
    int rc;
    amqp_connection_state_t c;
    uint64_t last_tag;          /* highest delivery tag received */
    unsigned pending;           /* received, not yet acknowledged */
    uint64_t pending_since_ns;
};

static int
rcons_setup(struct rcons *q)
{
    q->c = rmq_connect("riverside-clinic", false);
    if (q->c == NULL) {
        return -1;
    }
    if (amqp_basic_qos(q->c, RMQ_CHANNEL, 0, (uint16_t)q->r->o->rx_window, 0) == NULL ||
        !rpc_ok(q->c, "basic.qos", false)) {
        return -1;
    }
    if (amqp_basic_consume(q->c, RMQ_CHANNEL, amqp_cstring_bytes(RMQ_QUEUE), amqp_empty_bytes,
            0, 0, 0, amqp_empty_table) == NULL || !rpc_ok(q->c, "basic.consume", false)) {
        return -1;
    }
    atomic_store(&q->r->t->receiving, true);
    return 0;
}

static int
rcons_ack(struct rcons *q)
{
    HIE_ASSERT(q->pending > 0);
    q->pending = 0;
    return amqp_basic_ack(q->c, RMQ_CHANNEL, q->last_tag, 1) == AMQP_STATUS_OK ? 0 : -1;
}

/* One amqp_consume_message with a timeout of wait_ms. */
static int
rcons_one(struct rcons *q, int wait_ms)
{
    amqp_envelope_t env;
    struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};
    amqp_maybe_release_buffers(q->c);
    amqp_rpc_reply_t r = amqp_consume_message(q->c, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_TIMEOUT) {
        return 0;
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "bench_push: rabbitmq: consume failed: %s\n",
            r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(r.library_error)
                                                            : "server exception");
        return -1;
    }
    uint64_t now = hie_time_mono_ns();
    const amqp_basic_properties_t *pr = &env.message.properties;
    unsigned index = pr->_flags & AMQP_BASIC_MESSAGE_ID_FLAG
        ? push_index_parse(pr->message_id.bytes, pr->message_id.len) : UINT32_MAX;
    push_track_delivered(q->r->t, index, env.redelivered, env.message.body.bytes,
        env.message.body.len, now);
    if (q->pending == 0) {
        q->pending_since_ns = now;
    }
    q->pending++;
    q->last_tag = env.delivery_tag > q->last_tag ? env.delivery_tag : q->last_tag;
    amqp_destroy_envelope(&env);
    return q->pending >= q->r->o->ack_every ? rcons_ack(q) : 0;
}

static void *
rcons_thread(void *arg)
{
    struct rcons *q = arg;
    push_track_t *t = q->r->t;
    uint64_t ack_ns = (uint64_t)q->r->o->ack_ms * 1000000ull, quiet = hie_time_mono_ns();
    uint64_t last_count = 0;
    int rc = rcons_setup(q);
    while (rc == 0 && atomic_load(&t->delivered) < t->n) {
        uint64_t now = hie_time_mono_ns(), count = atomic_load(&t->delivered);
        if (now >= t->deadline_ns) {
            break;
        }
        if (count != last_count || !atomic_load(&t->senders_done)) {
            last_count = count;
            quiet = now;
        } else if (now - quiet > (uint64_t)PUSH_QUIET_MS * 1000000ull) {
            break;
        }
        int wait_ms = 50;
        if (q->pending > 0) {
            uint64_t due = q->pending_since_ns + ack_ns;
            wait_ms = due > now ? (int)((due - now + 999999u) / 1000000u) : 0;
        }
        rc = rcons_one(q, wait_ms);
        if (rc == 0 && q->pending > 0 && hie_time_mono_ns() >= q->pending_since_ns + ack_ns) {
            rc = rcons_ack(q);
        }
    }
    rc = rc == 0 && q->pending > 0 ? rcons_ack(q) : rc;
    if (rc != 0) {
        atomic_fetch_add(&t->errors, 1);
    }
    atomic_store(&t->receiving, true); /* never leave the publishers waiting */
    q->rc = rc;
    return NULL;
}

/* The consumer, then (once it consumes) the publishers; joins all. */
static int
rmq_load(struct rrun *run)
{
    static struct rpub pubs[PUSH_CONNS_MAX];
    static struct rcons cons;
    unsigned started = 0;
    memset(&cons, 0, sizeof(cons));
    cons.r = run;
    if (pthread_create(&cons.thread, NULL, rcons_thread, &cons) != 0) {
        return -1;
    }
    for (unsigned i = 0; i < 2000 && !atomic_load(&run->t->receiving); i++) {
        usleep(5000);
    }
    run->t->t0_ns = hie_time_mono_ns();
    for (unsigned i = 0; i < run->o->conns; i++) {
        pubs[i] = (struct rpub){run, i, 0, 0, NULL, 1};
        if (pthread_create(&pubs[i].thread, NULL, rpub_thread, &pubs[i]) != 0) {
            break;
        }
        started++;
    }
    int rc = started == run->o->conns ? 0 : -1;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(pubs[i].thread, NULL);
        rc = rc ? rc : pubs[i].rc;
    }
    atomic_store(&run->t->senders_done, true);
    pthread_join(cons.thread, NULL);
    rmq_close(&cons.c); /* after the last basic.ack: the broker processes it before the close */
    return rc ? rc : cons.rc;
}

/* Declares the queue, runs the load with the broker's CPU and the device flushes measured,
 * then counts what the queue still holds. */
static int
rmq_measure(const push_opts_t *o, push_result_t *r)
{
    push_track_t t;
    struct rrun run = {o, &t};
    bench_cpu_t c0, c1;
    push_device_t f0, f1;
    uint32_t left = 0;
    amqp_connection_state_t admin = rmq_connect(BENCH_MEMBER, false);
    int rc = admin != NULL ? rmq_queue_declare(admin, false, &left) : -1;
    rc = rc ? rc : push_track_init(&t, o->n, o->conns, o->time_cap_s);
    if (rc != 0) {
        rmq_close(&admin);
        return -1;
    }
    bool dev = push_device_stat(srv.dir, &f0);
    push_machine_t m0, m1;
    push_machine_sample(&m0);
    bench_cpu_sample(srv.beam, &c0);
    uint64_t self0 = push_self_cpu_ns();
    rc = rmq_load(&run);
    bench_cpu_sample(srv.beam, &c1);
    push_machine_sample(&m1);
    uint64_t self1 = push_self_cpu_ns();
    dev = dev && push_device_stat(srv.dir, &f1);
    pid_t busiest = 0;
    bench_cpu_delta(&c0, &c1, &r->server_cpu_pct, &r->busiest_thread_pct, &busiest);
    push_track_summarize(&t, r, "rabbitmq");
    double wall_ns = (double)(c1.when_ns - c0.when_ns);
    r->client_cpu_pct = wall_ns > 0 ? 100.0 * (double)(self1 - self0) / wall_ns : 0;
    r->others_cpu_pct = push_machine_others_pct(&m0, &m1, r->server_cpu_pct, r->client_cpu_pct);
    r->device_flushes = dev ? f1.flushes - f0.flushes : 0;
    r->device_write_bytes = dev ? f1.write_bytes - f0.write_bytes : 0;
    r->device_flush_ms = dev ? f1.flush_ms - f0.flush_ms : 0;
    usleep(200000); /* the consumer's last basic.ack is asynchronous */
    if (rmq_queue_declare(admin, true, &left) == 0) {
        printf("# rabbitmq queue %s holds %u messages after the run\n", RMQ_QUEUE, left);
    }
    rmq_close(&admin);
    push_track_release(&t);
    return rc;
}

int
push_rabbitmq_run(const push_opts_t *o, const char *root, push_result_t *r)
{
    HIE_ASSERT(o != NULL && root != NULL && r != NULL);
    HIE_ASSERT(srv.beam == 0);
    snprintf(srv.root, sizeof(srv.root), "%s", root);
    snprintf(srv.dir, sizeof(srv.dir), "%s/rabbitmq", root);
    if (mkdir(srv.dir, 0700) != 0) {
        fprintf(stderr, "bench_push: rabbitmq: mkdir %s failed\n", srv.dir);
        return -1;
    }
    rmq_handlers_install();
    int rc = rmq_ensure_installed();
    rc = rc ? rc : rmq_ports_pick();
    rc = rc ? rc : rmq_config_write();
    rc = rc ? rc : rmq_env_set();
    rc = rc ? rc : rmq_start();
    rc = rc ? rc : rmq_measure(o, r);
    rmq_stop();
    if (rc != 0) {
        fprintf(stderr, "bench_push: rabbitmq baseline failed; logs in %s/log (--keep keeps "
            "them)\n", srv.dir);
    }
    return rc;
}
