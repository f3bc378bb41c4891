/*
 * http.c - the operator HTTP endpoint: GET /healthz and GET /metrics (Prometheus text).
 *
 * libmicrohttpd serves it on its own thread, bound to the configured address (127.0.0.1 by
 * default; no TLS, no PHI: only counters). Anything else gets 404; methods other than GET and
 * HEAD get 405. Connection count and timeouts are capped so a scraper cannot tie the node up.
 *
 * Slow clients: libmicrohttpd's timeout counts idle time only, so 32 local connections sending
 * a header byte every few seconds used to hold every slot, and /healthz then failed (a
 * supervisor would restart a healthy node). Now a new connection past HTTP_CONNECTIONS_MAX
 * evicts the oldest one: shutdown() of its socket, which libmicrohttpd then closes. Every
 * callback runs on libmicrohttpd's one polling thread, and it reports a connection closed
 * before it closes the socket, so the table below needs no lock and never holds a stale fd.
 */
#include "node_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_CONNECTIONS_MAX 32u
/* libmicrohttpd's own limit: room for the evicted ones until it has closed them */
#define HTTP_CONNECTIONS_HARD_MAX (2u * HTTP_CONNECTIONS_MAX)
#define HTTP_TIMEOUT_S 5u
#define HTTP_HEADER_BYTES_MAX (8u * 1024u)

struct http_conn {
    int fd;            /* -1: free slot */
    bool evicted;
    uint64_t start_ns;
};

struct node_http {
    node_ctx_t *ctx;
    struct MHD_Daemon *daemon;
    struct http_conn conns[HTTP_CONNECTIONS_HARD_MAX]; /* the polling thread's alone */
    unsigned live;     /* not evicted */
    uint64_t evictions;
};

static void
http_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode code)
{
    struct node_http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
            MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = NULL;
        for (unsigned i = 0; ci != NULL && i < HTTP_CONNECTIONS_HARD_MAX; i++) {
            if (h->conns[i].fd < 0) {
                h->conns[i] = (struct http_conn){ci->connect_fd, false, hie_time_mono_ns()};
                h->live++;
                *socket_context = &h->conns[i];
                break;
            }
        }
        return;
    }
    struct http_conn *c = *socket_context;
    if (c != NULL) {
        h->live -= c->evicted ? 0 : 1;
        c->fd = -1;
        *socket_context = NULL;
    }
}

/* "address:port" of a connecting peer, for the log (which local process to look at). */
static void
http_peer(const struct sockaddr *addr, socklen_t len, char *out, size_t cap)
{
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)addr;
    char ip[INET_ADDRSTRLEN];
    if (addr != NULL && len >= sizeof(*in4) && addr->sa_family == AF_INET &&
        inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof(ip)) != NULL) {
        snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(in4->sin_port));
    }
}

/* Accept policy: always accept, after evicting the oldest connection when the new one would
 * be one too many. */
static enum MHD_Result
http_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct node_http *h = cls;
    if (h->live < HTTP_CONNECTIONS_MAX) {
        return MHD_YES;
    }
    struct http_conn *oldest = NULL;
    for (unsigned i = 0; i < HTTP_CONNECTIONS_HARD_MAX; i++) {
        struct http_conn *c = &h->conns[i];
        if (c->fd >= 0 && !c->evicted && (oldest == NULL || c->start_ns < oldest->start_ns)) {
            oldest = c;
        }
    }
    if (oldest != NULL) {
        (void)shutdown(oldest->fd, SHUT_RDWR); /* libmicrohttpd closes it on its next read */
        oldest->evicted = true;
        h->live--;
        if (h->evictions++ % 1000u == 0) {
            char peer[INET6_ADDRSTRLEN + 8] = "?";
            http_peer(addr, addrlen, peer, sizeof(peer));
            hie_log_warn("http", "operator endpoint full: oldest connection evicted",
                " max=%u evictions=%lu peer=%s", HTTP_CONNECTIONS_MAX, h->evictions, peer);
        }
    }
    return MHD_YES;
}

static enum MHD_Result
http_respond(struct MHD_Connection *conn, unsigned status, const char *type, char *body,
    size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Whether the state's or the log's map is past HIE_STORAGE_REFUSE_PCT: the workers refuse
 * new work, so the node is not serving as a load balancer means it. */
static bool
storage_refusing(const node_metrics_t *m)
{
    /* looked at every 250 ms at most, as the workers do: a probe every second must not walk
     * the free list each time once the high-water mark passed the line */
    static _Atomic uint64_t checked_ns;
    static _Atomic bool last;
    uint64_t now = hie_time_mono_ns(), then = atomic_load(&checked_ns);
    if (then != 0 && now - then < 250000000ull) {
        return atomic_load(&last);
    }
    atomic_store(&checked_ns, now);
    bool past = false;
    /* the high-water mark first; the free list (a walk) only when that is past the line */
    for (int exact = 0; exact < 2 && (exact == 0 || past); exact++) {
        uint64_t used[2] = {0, 0}, map[2] = {0, 0};
        if (m->state_env == NULL || m->log == NULL ||
            hie_cluster_lmdb_usage(m->state_env, exact, &used[0], &map[0]) != 0 ||
            hie_cluster_log_usage(m->log, exact, &used[1], &map[1]) != 0) {
            return false;
        }
        past = used[0] * 100u > map[0] * HIE_STORAGE_REFUSE_PCT ||
               used[1] * 100u > map[1] * HIE_STORAGE_REFUSE_PCT;
    }
    atomic_store(&last, past);
    return past;
}

static enum MHD_Result
http_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct node_http *h = cls;
    (void)version;
    (void)upload_data;
    (void)con_cls;
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* we accept no bodies */
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return http_respond(conn, 405, "text/plain", (char *)(uintptr_t)"method not allowed\n",
            19, MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/healthz") == 0) {
        bool ready = atomic_load(&h->ctx->metrics.ready) != 0;
        int64_t crl_next = atomic_load(&h->ctx->metrics.crl_next_update_ms);
        int64_t crl_last = atomic_load(&h->ctx->metrics.crl_last_update_ms);
        int64_t now = hie_time_wall_ms();
        if (ready && crl_next != 0 && now >= crl_next) {
            static char expired[] = "crl expired: every member is refused\n";
            return http_respond(conn, 503, "text/plain", expired, sizeof(expired) - 1,
                MHD_RESPMEM_PERSISTENT);
        }
        if (ready && now < crl_last) {
            static char early[] = "crl not valid yet (its lastUpdate is ahead of this node's "
                                  "clock): every member is refused\n";
            return http_respond(conn, 503, "text/plain", early, sizeof(early) - 1,
                MHD_RESPMEM_PERSISTENT);
        }
        if (ready && storage_refusing(&h->ctx->metrics)) {
            static char full[] = "storage nearly full: new work is refused (raise "
                                 "storage.map_bytes and restart)\n";
            return http_respond(conn, 503, "text/plain", full, sizeof(full) - 1,
                MHD_RESPMEM_PERSISTENT);
        }
        return ready ? http_respond(conn, 200, "text/plain", (char *)(uintptr_t)"ok\n", 3,
                           MHD_RESPMEM_PERSISTENT)
                     : http_respond(conn, 503, "text/plain",
                           (char *)(uintptr_t)"not ready\n", 10, MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/metrics") == 0) {
        char *body = NULL;
        size_t len = 0;
        if (hie_node__metrics_render(&h->ctx->metrics, h->ctx->cfg.node_id, &body, &len) != 0) {
            return http_respond(conn, 500, "text/plain", (char *)(uintptr_t)"error\n", 6,
                MHD_RESPMEM_PERSISTENT);
        }
        enum MHD_Result r = http_respond(conn, 200, "text/plain; version=0.0.4", body, len,
            MHD_RESPMEM_MUST_COPY);
        hie_mem_free(body, len + 1);
        return r;
    }
    return http_respond(conn, 404, "text/plain", (char *)(uintptr_t)"not found\n", 10,
        MHD_RESPMEM_PERSISTENT);
}

/* Why the daemon could not listen on sa (it keeps errno to itself): a bind of our own, then
 * closed. 0 when that bind works. */
static int
http_bind_errno(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return errno;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int e = bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? 0 : errno;
    close(fd);
    return e;
}

int
hie_node__http_start(node_http_t **out, node_ctx_t *ctx)
{
    HIE_ASSERT(out != NULL && ctx != NULL);
    *out = NULL;
    if (ctx->cfg.http_port == 0) {
        return 0; /* disabled */
    }
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(ctx->cfg.http_port);
    if (inet_pton(AF_INET, ctx->cfg.http_address, &sa.sin_addr) != 1) {
        return HIE_ECONFIG;
    }
    struct node_http *h = hie_mem_calloc(1, sizeof(*h));
    if (h == NULL) {
        return HIE_ENOMEM;
    }
    h->ctx = ctx;
    for (unsigned i = 0; i < HTTP_CONNECTIONS_HARD_MAX; i++) {
        h->conns[i].fd = -1;
    }
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
        0, http_accept, h, http_handler, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTIONS_HARD_MAX,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_HEADER_BYTES_MAX,
        MHD_OPTION_NOTIFY_CONNECTION, http_notify, h, MHD_OPTION_END);
    if (h->daemon == NULL) {
        hie_mem_free(h, sizeof(*h));
        int e = http_bind_errno(&sa);
        hie_log_error("http", "cannot start the operator endpoint", " address=%s port=%u "
            "reason=\"%s\"", ctx->cfg.http_address, ctx->cfg.http_port,
            e != 0 ? strerror(e) : "libmicrohttpd refused to start");
        return e != 0 ? -e : HIE_EUNAVAIL;
    }
    hie_log_info("http", "operator endpoint listening", " address=%s port=%u",
        ctx->cfg.http_address, ctx->cfg.http_port);
    if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
        hie_log_warn("http", "the operator endpoint is not on loopback: /metrics and /healthz "
            "have no authentication, keep the address on the operators' network", " address=%s",
            ctx->cfg.http_address);
    }
    *out = h;
    return 0;
}

void
hie_node__http_stop(node_http_t **hp)
{
    HIE_ASSERT(hp != NULL);
    struct node_http *h = *hp;
    if (h == NULL) {
        return;
    }
    MHD_stop_daemon(h->daemon);
    hie_mem_free(h, sizeof(*h));
    *hp = NULL;
}
