/*
 * harness.c - set-up code shared by the benchmarks (see harness.h): child processes, the
 * temporary directory, the development PKI, the node's config and lifecycle, percentiles, CPU
 * samples, TLS contexts and Ping frames.
 *
 * Invariant: every process this file starts is in the child registry until it is reaped, and
 * the exit and fatal-signal paths kill what is left, so no hie-node outlives a benchmark.
 * Callers: bench_*.c, from their main thread (TLS and frame helpers from any thread).
 */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <signal.h>
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

#define CHILDREN_MAX 16
#define NODE_START_ATTEMPTS 3
#define LOG_MSGS_MAX 8
#define REPLY_ARENA_BYTES (64u * 1024u)

static pid_t children[CHILDREN_MAX];
static char tmp_root[BENCH_PATH_BYTES];
static bool tmp_keep;
static uint8_t ports_used[(BENCH_PORT_LAST - BENCH_PORT_FIRST + 1 + 7) / 8];

/* ---- cleanup ----------------------------------------------------------------------------- */

static void
children_kill(void)
{
    for (int i = 0; i < CHILDREN_MAX; i++) {
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            (void)waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    }
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag == FTW_DP) {
        (void)rmdir(path);
    } else {
        (void)unlink(path);
    }
    return 0;
}

static void
tmp_remove(void)
{
    if (tmp_root[0] != '\0' && !tmp_keep) {
        (void)nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    tmp_root[0] = '\0';
}

static void
cleanup_at_exit(void)
{
    children_kill();
    tmp_remove();
}

/* Only async-signal-safe calls here: the signal may have interrupted malloc (an abort from a
 * heap check does), so the directory is removed by a forked rm, not by nftw. */
static void
on_fatal_signal(int sig)
{
    children_kill();
    if (tmp_root[0] != '\0' && !tmp_keep) {
        pid_t p = fork();
        if (p == 0) {
            execl("/bin/rm", "rm", "-rf", "--", tmp_root, (char *)NULL);
            _exit(127);
        }
        if (p > 0) {
            (void)waitpid(p, NULL, 0);
        }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void
child_register(pid_t pid)
{
    for (int i = 0; i < CHILDREN_MAX; i++) {
        if (children[i] == 0) {
            children[i] = pid;
            return;
        }
    }
    HIE_ASSERT(!"more children than the registry holds");
}

static void
child_forget(pid_t pid)
{
    for (int i = 0; i < CHILDREN_MAX; i++) {
        if (children[i] == pid) {
            children[i] = 0;
        }
    }
}

uint64_t
bench_rlimit_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 0;
    }
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    (void)getrlimit(RLIMIT_NOFILE, &rl);
    return (uint64_t)rl.rlim_cur;
}

int
bench_setup(char *dir, size_t dir_bytes, bool keep)
{
    HIE_ASSERT(dir != NULL && dir_bytes >= 32);
    HIE_ASSERT(tmp_root[0] == '\0');
    static const int fatal[] = {SIGINT, SIGTERM, SIGHUP, SIGABRT, SIGSEGV, SIGBUS};
    for (size_t i = 0; i < HIE_ARRAY_LEN(fatal); i++) {
        struct sigaction sa = {0};
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(fatal[i], &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN); /* a peer that closes must give EPIPE, not kill the benchmark */
    atexit(cleanup_at_exit);
    snprintf(tmp_root, sizeof(tmp_root), "/tmp/hiebench-XXXXXX");
    if (mkdtemp(tmp_root) == NULL) {
        int rc = -errno;
        tmp_root[0] = '\0';
        return rc;
    }
    tmp_keep = keep;
    snprintf(dir, dir_bytes, "%s", tmp_root);
    return 0;
}

/* ---- child processes --------------------------------------------------------------------- */

static void
child_exec(const char *const *argv, const char *log_path, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(127);
    }
    signal(SIGPIPE, SIG_DFL);
    int in = open("/dev/null", O_RDONLY);
    int out = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) {
        _exit(127);
    }
    execv(argv[0], (char *const *)(uintptr_t)argv);
    _exit(127);
}

int
bench_spawn(const char *const *argv, const char *log_path, pid_t *pid)
{
    HIE_ASSERT(argv != NULL && argv[0] != NULL);
    HIE_ASSERT(log_path != NULL && pid != NULL);
    pid_t parent = getpid();
    fflush(NULL);
    pid_t p = fork();
    if (p < 0) {
        return -errno;
    }
    if (p == 0) {
        child_exec(argv, log_path, parent);
    }
    child_register(p);
    *pid = p;
    return 0;
}

/* Waits for pid at most timeout_ms. Returns its status as bench_run does, or HIE_ETIMEDOUT. */
static int
child_wait(pid_t pid, int timeout_ms)
{
    uint64_t deadline = hie_time_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            child_forget(pid);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (r < 0 && errno != EINTR) {
            child_forget(pid);
            return -errno;
        }
        if (hie_time_mono_ns() >= deadline) {
            return HIE_ETIMEDOUT;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void
child_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    (void)waitpid(pid, NULL, 0);
    child_forget(pid);
}

int
bench_run(const char *const *argv, const char *log_path, int timeout_ms)
{
    pid_t pid = 0;
    int rc = bench_spawn(argv, log_path, &pid);
    if (rc != 0) {
        return rc;
    }
    rc = child_wait(pid, timeout_ms);
    if (rc == HIE_ETIMEDOUT) {
        fprintf(stderr, "bench: %s did not finish within %d ms, killed\n", argv[0], timeout_ms);
        child_kill(pid);
    }
    return rc;
}

int
bench_pki_create(const char *root)
{
    char script[BENCH_PATH_BYTES], dir[BENCH_PATH_BYTES], log[BENCH_PATH_BYTES];
    snprintf(script, sizeof(script), "%s/deploy/dev-pki.sh", HIE_SOURCE_DIR);
    snprintf(dir, sizeof(dir), "%s/pki", root);
    snprintf(log, sizeof(log), "%s/pki.log", root);
    const char *argv[] = {"/bin/bash", script, dir, NULL};
    int rc = bench_run(argv, log, 120000);
    if (rc != 0) {
        fprintf(stderr, "bench: dev-pki.sh failed (status %d); see %s\n", rc, log);
    }
    return rc;
}

/* ---- ports ------------------------------------------------------------------------------- */

static bool
port_free(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

uint16_t
bench_port_pick(void)
{
    const uint32_t span = BENCH_PORT_LAST - BENCH_PORT_FIRST + 1;
    uint64_t r = hie_time_mono_ns() ^ ((uint64_t)getpid() << 20);
    uint32_t start = (uint32_t)(bench_rand(&r) % span);
    for (uint32_t i = 0; i < span; i++) {
        uint32_t off = (start + i) % span;
        if (ports_used[off / 8] & (1u << (off % 8))) {
            continue;
        }
        uint16_t port = (uint16_t)(BENCH_PORT_FIRST + off);
        if (port_free(port)) {
            ports_used[off / 8] |= (uint8_t)(1u << (off % 8));
            return port;
        }
    }
    return 0;
}

/* ---- the node ---------------------------------------------------------------------------- */

static int
node_config_write(const bench_node_t *n, unsigned workers, const char *log_level,
    const char *extra_yaml)
{
    FILE *f = fopen(n->cfg, "w");
    if (f == NULL) {
        return -errno;
    }
    fprintf(f,
        "# written by a benchmark in bench/ (harness.c)\n"
        "node:\n  id: %s\n  data_dir: %s/data\n"
        "listen:\n  address: 127.0.0.1\n  port: %u\n"
        "tls:\n  ca_file: %s/pki/ca/ca.crt\n  cert_file: %s/pki/certs/%s.crt\n"
        "  key_file: %s/pki/certs/%s.key\n  crl_file: %s/pki/ca/crl.pem\n"
        "  min_version: \"1.3\"\n"
        "limits:\n  connections_max: 4096\n  handshake_timeout_ms: 10000\n"
        "workers: %u\n"
        "operator:\n  http_port: 0\n"
        "log:\n  level: %s\n  format: kv\n"
        "storage:\n  map_bytes: 1073741824\n",
        BENCH_NODE_ID, n->root, n->port, n->root, n->root, BENCH_NODE_ID, n->root,
        BENCH_NODE_ID, n->root, workers, log_level);
    if (extra_yaml != NULL) {
        fputs(extra_yaml, f);
    }
    return fclose(f) == 0 ? 0 : -errno;
}

/* True when the node's log holds needle. */
static bool
log_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    char line[4096];
    bool found = false;
    for (unsigned i = 0; i < 100000 && !found && fgets(line, sizeof(line), f) != NULL; i++) {
        found = strstr(line, needle) != NULL;
    }
    fclose(f);
    return found;
}

/* Waits for readiness. Returns 0, HIE_ETIMEDOUT, or the node's exit status (it died). The
 * data directory is fresh, so a leftover admin socket cannot fool it. */
static int
node_wait_ready(bench_node_t *n, int timeout_ms)
{
    char sock[BENCH_PATH_BYTES];
    struct stat sb;
    snprintf(sock, sizeof(sock), "%s/data/admin.sock", n->root);
    uint64_t deadline = hie_time_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (hie_time_mono_ns() < deadline) {
        /* The admin socket is bound after the edge listens (main.c start order), so it also
         * tells readiness when the log level hides the info line; no probe touches the edge. */
        if (log_contains(n->log, "msg=\"node started\"") || stat(sock, &sb) == 0) {
            return 0;
        }
        int rc = child_wait(n->pid, 20);
        if (rc != HIE_ETIMEDOUT) {
            n->pid = 0;
            return rc == 0 ? HIE_EUNAVAIL : rc;
        }
    }
    return HIE_ETIMEDOUT;
}

int
bench_node_start(bench_node_t *n, const char *root, unsigned workers, const char *log_level,
    int timeout_ms)
{
    return bench_node_start_with(n, root, workers, log_level, NULL, timeout_ms);
}

int
bench_node_start_with(bench_node_t *n, const char *root, unsigned workers,
    const char *log_level, const char *extra_yaml, int timeout_ms)
{
    HIE_ASSERT(n != NULL && root != NULL && workers > 0);
    memset(n, 0, sizeof(*n));
    snprintf(n->root, sizeof(n->root), "%s", root);
    snprintf(n->cfg, sizeof(n->cfg), "%s/node.yaml", root);
    snprintf(n->log, sizeof(n->log), "%s/node.log", root);
    int rc = HIE_EUNAVAIL;
    for (int attempt = 0; attempt < NODE_START_ATTEMPTS && rc != 0; attempt++) {
        n->port = bench_port_pick();
        if (n->port == 0) {
            fprintf(stderr, "bench: no free port in %u..%u\n", BENCH_PORT_FIRST,
                BENCH_PORT_LAST);
            return HIE_ELIMIT;
        }
        rc = node_config_write(n, workers, log_level, extra_yaml);
        if (rc != 0) {
            return rc;
        }
        const char *argv[] = {HIE_NODE_BIN, "--config", n->cfg, NULL};
        rc = bench_spawn(argv, n->log, &n->pid);
        if (rc != 0) {
            return rc;
        }
        rc = node_wait_ready(n, timeout_ms);
        if (rc == HIE_ETIMEDOUT) {
            fprintf(stderr, "bench: hie-node not ready within %d ms; see %s\n", timeout_ms,
                n->log);
            (void)bench_node_stop(n, 2000);
            return rc;
        }
        if (rc != 0) {
            fprintf(stderr, "bench: hie-node exited early (status %d, port %u); see %s\n", rc,
                n->port, n->log);
        }
    }
    return rc;
}

int
bench_node_register(const bench_node_t *n, const char *org, const char *name, const char *roles)
{
    HIE_ASSERT(n != NULL && n->pid > 0);
    char log[BENCH_PATH_BYTES];
    snprintf(log, sizeof(log), "%s/hiectl.log", n->root);
    const char *argv[] = {HIE_CTL_BIN, "--config", n->cfg, "org", "register", org, "--name",
        name, "--roles", roles, NULL};
    int rc = bench_run(argv, log, 30000);
    if (rc != 0) {
        fprintf(stderr, "bench: hiectl org register %s failed (status %d); see %s\n", org, rc,
            log);
    }
    return rc;
}

int
bench_node_stop(bench_node_t *n, int timeout_ms)
{
    if (n == NULL || n->pid <= 0) {
        return 0;
    }
    kill(n->pid, SIGTERM);
    int rc = child_wait(n->pid, timeout_ms);
    if (rc == HIE_ETIMEDOUT) {
        fprintf(stderr, "bench: hie-node did not stop within %d ms after SIGTERM, killed\n",
            timeout_ms);
        child_kill(n->pid);
        rc = -1;
    }
    n->pid = 0;
    return rc;
}

struct log_msg {
    char text[96];
    unsigned count;
};

static void
log_msg_count(struct log_msg *msgs, unsigned *n_msgs, const char *line)
{
    const char *m = strstr(line, "msg=\"");
    char text[96] = "?";
    if (m != NULL) {
        m += 5;
        size_t len = strcspn(m, "\"");
        snprintf(text, sizeof(text), "%.*s", (int)(len < 95 ? len : 95), m);
    }
    for (unsigned i = 0; i < *n_msgs; i++) {
        if (strcmp(msgs[i].text, text) == 0) {
            msgs[i].count++;
            return;
        }
    }
    if (*n_msgs < LOG_MSGS_MAX) {
        snprintf(msgs[*n_msgs].text, sizeof(msgs[*n_msgs].text), "%s", text);
        msgs[(*n_msgs)++].count = 1;
    }
}

unsigned
bench_node_log_report(const bench_node_t *n, long *from, unsigned examples)
{
    HIE_ASSERT(n != NULL && from != NULL);
    FILE *f = fopen(n->log, "r");
    if (f == NULL) {
        return 0;
    }
    struct log_msg msgs[LOG_MSGS_MAX];
    unsigned n_msgs = 0, bad = 0;
    char line[4096];
    fseek(f, *from, SEEK_SET);
    for (unsigned i = 0; i < 10000000u && fgets(line, sizeof(line), f) != NULL; i++) {
        if (strstr(line, " level=warn ") != NULL || strstr(line, " level=error ") != NULL) {
            bad++;
            log_msg_count(msgs, &n_msgs, line);
        }
    }
    *from = ftell(f);
    fclose(f);
    if (bad > 0) {
        printf("  node log: %u warn/error lines:", bad);
        for (unsigned i = 0; i < n_msgs && i < examples; i++) {
            printf("%s %ux \"%s\"", i ? "," : "", msgs[i].count, msgs[i].text);
        }
        printf("\n");
    }
    return bad;
}

/* ---- CPU, percentiles, PRNG -------------------------------------------------------------- */

/* utime + stime from a /proc stat file: of one thread (tid) or, with tid NULL, of the whole
 * process including threads that already exited. */
static bool
thread_ticks(pid_t pid, const char *tid, uint64_t *ticks, char name[16])
{
    char path[128], buf[1024];
    if (tid != NULL) {
        snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, tid);
    } else {
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len <= 0) {
        return false;
    }
    buf[len] = '\0';
    const char *p = strrchr(buf, ')'); /* comm may contain spaces */
    const char *open_paren = strchr(buf, '(');
    if (name != NULL && open_paren != NULL && p != NULL && p > open_paren) {
        snprintf(name, 16, "%.*s", (int)(p - open_paren - 1), open_paren + 1);
    }
    unsigned long long ut = 0, st = 0;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
        &ut, &st) != 2) {
        return false;
    }
    *ticks = (uint64_t)(ut + st);
    return true;
}

void
bench_cpu_sample(pid_t pid, bench_cpu_t *out)
{
    HIE_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    out->when_ns = hie_time_mono_ns();
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL && out->count < BENCH_THREADS_MAX) {
        uint64_t t = 0;
        if (de->d_name[0] != '.' && thread_ticks(pid, de->d_name, &t, out->name[out->count])) {
            out->tid[out->count] = (pid_t)atoi(de->d_name);
            out->ticks[out->count++] = t;
        }
    }
    closedir(d);
    (void)thread_ticks(pid, NULL, &out->total_ticks, NULL);
}

void
bench_cpu_by_name(const bench_cpu_t *a, const bench_cpu_t *b, uint64_t ops, char *out,
    size_t out_bytes)
{
    HIE_ASSERT(out != NULL && out_bytes > 0);
    char group[BENCH_THREADS_MAX][16];
    uint64_t ticks[BENCH_THREADS_MAX] = {0};
    unsigned groups = 0;
    for (unsigned i = 0; i < b->count; i++) {
        char g[16];
        const char *n = strncmp(b->name[i], "hie-", 4) == 0 ? b->name[i] + 4 : b->name[i];
        snprintf(g, sizeof(g), "%s", n);
        char *dash = strrchr(g, '-');
        if (dash != NULL && dash[1] >= '0' && dash[1] <= '9') {
            *dash = '\0';
        }
        uint64_t before = 0;
        for (unsigned j = 0; j < a->count; j++) {
            if (a->tid[j] == b->tid[i]) {
                before = a->ticks[j];
            }
        }
        unsigned k = 0;
        while (k < groups && strcmp(group[k], g) != 0) {
            k++;
        }
        if (k == groups) {
            memcpy(group[groups++], g, sizeof(g));
        }
        ticks[k] += b->ticks[i] - before;
    }
    double us_per_tick = 1e6 / (double)sysconf(_SC_CLK_TCK);
    size_t used = 0;
    out[0] = '\0';
    for (unsigned k = 0; k < groups && used < out_bytes; k++) {
        if (ticks[k] == 0) {
            continue;
        }
        int w = snprintf(out + used, out_bytes - used, "%s%s=%.1f", used ? " " : "", group[k],
            ops > 0 ? (double)ticks[k] * us_per_tick / (double)ops : 0.0);
        used += w > 0 ? (size_t)w : 0;
    }
}

void
bench_cpu_delta(const bench_cpu_t *a, const bench_cpu_t *b, double *total_pct,
    double *max_thread_pct, pid_t *max_tid)
{
    double secs = (double)(b->when_ns - a->when_ns) / 1e9;
    double hz = (double)sysconf(_SC_CLK_TCK);
    uint64_t best = 0;
    *max_tid = 0;
    for (unsigned i = 0; i < b->count; i++) {
        uint64_t before = 0;
        for (unsigned j = 0; j < a->count; j++) {
            if (a->tid[j] == b->tid[i]) {
                before = a->ticks[j];
            }
        }
        if (b->ticks[i] - before >= best) {
            best = b->ticks[i] - before;
            *max_tid = b->tid[i];
        }
    }
    double denom = secs > 0 ? secs * hz : 1.0;
    *total_pct = 100.0 * (double)(b->total_ticks - a->total_ticks) / denom;
    *max_thread_pct = 100.0 * (double)best / denom;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void
bench_percentiles(uint64_t *lat_ns, size_t n, double *p50_us, double *p99_us)
{
    *p50_us = 0;
    *p99_us = 0;
    if (n == 0) {
        return;
    }
    qsort(lat_ns, n, sizeof(*lat_ns), cmp_u64);
    *p50_us = (double)lat_ns[(n - 1) * 50 / 100] / 1000.0;
    *p99_us = (double)lat_ns[(n - 1) * 99 / 100] / 1000.0;
}

uint64_t
bench_rand(uint64_t *state)
{
    uint64_t x = *state != 0 ? *state : BENCH_SEED;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ---- TLS --------------------------------------------------------------------------------- */

static SSL_CTX *
tls_fail(SSL_CTX *ctx, const char *what, const char *path)
{
    char buf[256] = "";
    ERR_error_string_n(ERR_peek_last_error(), buf, sizeof(buf));
    fprintf(stderr, "bench: tls: %s %s: %s\n", what, path ? path : "", buf);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

static SSL_CTX *
tls_identity(SSL_CTX *ctx, const char *root, const char *stem)
{
    char crt[BENCH_PATH_BYTES], key[BENCH_PATH_BYTES], ca[BENCH_PATH_BYTES];
    snprintf(crt, sizeof(crt), "%s/pki/certs/%s.crt", root, stem);
    snprintf(key, sizeof(key), "%s/pki/certs/%s.key", root, stem);
    snprintf(ca, sizeof(ca), "%s/pki/ca/ca.crt", root);
    if (SSL_CTX_use_certificate_chain_file(ctx, crt) != 1) {
        return tls_fail(ctx, "cannot load certificate", crt);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        return tls_fail(ctx, "cannot load key", key);
    }
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        return tls_fail(ctx, "cannot load ca", ca);
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

SSL_CTX *
bench_tls_client_ctx(const char *root, const char *member)
{
    HIE_ASSERT(root != NULL && member != NULL);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || tls_identity(ctx, root, member) == NULL) {
        return ctx == NULL ? tls_fail(NULL, "cannot create client context", NULL) : NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx), "127.0.0.1") != 1) {
        return tls_fail(ctx, "cannot set the expected server address", NULL);
    }
    return ctx;
}

SSL_CTX *
bench_tls_server_ctx(const char *root)
{
    HIE_ASSERT(root != NULL);
    char ca[BENCH_PATH_BYTES], crl[BENCH_PATH_BYTES];
    snprintf(ca, sizeof(ca), "%s/pki/ca/ca.crt", root);
    snprintf(crl, sizeof(crl), "%s/pki/ca/crl.pem", root);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || tls_identity(ctx, root, BENCH_NODE_ID) == NULL) {
        return ctx == NULL ? tls_fail(NULL, "cannot create server context", NULL) : NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
        SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_max_cert_list(ctx, HIE_TLS_CERT_LIST_BYTES_MAX);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth(ctx, HIE_TLS_VERIFY_DEPTH_MAX);
    SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
    if (names != NULL) {
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lookup == NULL || X509_load_crl_file(lookup, crl, X509_FILETYPE_PEM) <= 0) {
        return tls_fail(ctx, "cannot load crl", crl);
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    return ctx;
}

int
bench_tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    struct timeval tv = {5, 0};
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int
bench_tcp_listen(uint16_t port, int backlog, bool nonblocking)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, backlog) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

/* ---- frames ------------------------------------------------------------------------------ */

int
bench_ping_frame(const char *id, const uint8_t *payload, size_t payload_len, uint8_t **buf,
    size_t *len)
{
    HIE_ASSERT(id != NULL && hie_proto_id_valid(id, strlen(id)));
    HIE_ASSERT(payload_len <= HIE_PROTO_PING_PAYLOAD_BYTES_MAX);
    hie_envelope_t env = HIE__V1__ENVELOPE__INIT;
    Hie__V1__Ping ping = HIE__V1__PING__INIT;
    ping.payload.data = (uint8_t *)(uintptr_t)payload;
    ping.payload.len = payload_len;
    env.id = (char *)(uintptr_t)id;
    env.created_ms = hie_time_wall_ms();
    env.body_case = HIE__V1__ENVELOPE__BODY_PING;
    env.ping = &ping;
    HIE_ASSERT(hie_proto_envelope_validate(&env, NULL) == 0);
    return hie_proto_frame_encode(&env, HIE_PROTO_FRAME_BYTES_DEFAULT, buf, len);
}

int
bench_pong_frame(const char *corr_id, const uint8_t *payload, size_t payload_len, uint8_t **buf,
    size_t *len)
{
    HIE_ASSERT(corr_id != NULL);
    hie_envelope_t env = HIE__V1__ENVELOPE__INIT;
    Hie__V1__Pong pong = HIE__V1__PONG__INIT;
    pong.payload.data = (uint8_t *)(uintptr_t)payload;
    pong.payload.len = payload_len;
    pong.node_id = (char *)(uintptr_t)"bare";
    env.id = (char *)(uintptr_t)"n.bare.1";
    env.correlation_id = (char *)(uintptr_t)corr_id;
    env.body_case = HIE__V1__ENVELOPE__BODY_PONG;
    env.pong = &pong;
    return hie_proto_frame_encode(&env, HIE_PROTO_FRAME_BYTES_DEFAULT, buf, len);
}

int
bench_reply_check(const uint8_t *body, size_t len, const char *id, bool echo)
{
    HIE_ASSERT(body != NULL);
    hie_arena_t *arena = NULL;
    ProtobufCMessage *m = NULL;
    int rc = hie_arena_create(&arena, REPLY_ARENA_BYTES);
    if (rc == 0) {
        rc = hie_proto_unpack(&hie__v1__envelope__descriptor, hie_span(body, len), arena, &m);
    }
    if (rc == 0) {
        const hie_envelope_t *env = (const hie_envelope_t *)m;
        bool ok = echo ? env->body_case == HIE__V1__ENVELOPE__BODY_PING &&
                             (id == NULL || strcmp(env->id, id) == 0)
                       : env->body_case == HIE__V1__ENVELOPE__BODY_PONG &&
                             (id == NULL || strcmp(env->correlation_id, id) == 0);
        rc = ok ? 0 : HIE_EINVAL;
    }
    hie_arena_destroy(&arena);
    return rc;
}

int
bench_edge_env(char *root, size_t root_bytes, bool keep, const char *log_level,
    bench_node_t *node, SSL_CTX **cli, SSL_CTX **srv)
{
    printf("# rlimit nofile %lu\n", (unsigned long)bench_rlimit_raise());
    int rc = bench_setup(root, root_bytes, keep);
    rc = rc ? rc : bench_pki_create(root);
    if (rc == 0) {
        *cli = bench_tls_client_ctx(root, BENCH_MEMBER);
        *srv = bench_tls_server_ctx(root);
        rc = *cli != NULL && *srv != NULL ? 0 : HIE_ETLS;
    }
    rc = rc ? rc : bench_node_start(node, root, 2, log_level, 20000);
    return rc ? rc : bench_node_register(node, BENCH_MEMBER, "General Hospital", "hospital");
}

/* ---- blocking TLS I/O ----------------------------------------------------------------- */

int
bench_ssl_write_all(SSL *ssl, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    for (unsigned i = 0; off < len && i < 1024; i++) {
        int n = SSL_write(ssl, buf + off, (int)(len - off));
        if (n <= 0) {
            return HIE_ETLS;
        }
        off += (size_t)n;
    }
    return off == len ? 0 : HIE_ETLS;
}

int
bench_ssl_read_exact(SSL *ssl, uint8_t *buf, size_t len)
{
    size_t off = 0;
    for (unsigned i = 0; off < len && i < 1024; i++) {
        int n = SSL_read(ssl, buf + off, (int)(len - off));
        if (n <= 0) {
            return HIE_ETLS;
        }
        off += (size_t)n;
    }
    return off == len ? 0 : HIE_ETLS;
}

/* Reads one frame into buf (cap bytes); [out] *body_len. */
int
bench_ssl_read_frame(SSL *ssl, uint8_t *buf, size_t cap, size_t *body_len)
{
    uint8_t head[HIE_PROTO_FRAME_HEADER_BYTES];
    uint32_t body = 0;
    int rc = bench_ssl_read_exact(ssl, head, sizeof(head));
    if (rc == 0) {
        rc = hie_proto_frame_header(hie_span(head, sizeof(head)), (uint32_t)cap, &body);
    }
    if (rc == 0) {
        rc = bench_ssl_read_exact(ssl, buf, body);
    }
    *body_len = rc == 0 ? body : 0;
    return rc;
}
