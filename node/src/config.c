/*
 * config.c - the node's YAML configuration, read with libcyaml and then validated.
 *
 * libcyaml enforces the shape (known keys only, types, string lengths) and reports the path
 * of the offending key; we then check values (ranges, ids, files) and fill defaults. Every
 * failure produces one line that names the key. Relative paths are taken relative to the
 * directory of the config file. Callers: main.c, hiectl (for the admin socket path).
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <arpa/inet.h>
#include <cyaml/cyaml.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

struct y_node { char *id; char *data_dir; };
struct y_listen { char *address; char *port; };
/* Numbers are read as strings and parsed by num_key: libcyaml's own reading (strtoull, base
 * 0, trailing text ignored) takes "10,000" as 10, "5s" as 5, "010" as 8 and "-1" as the
 * largest value. Absent (NULL) is the default, so an explicit 0 is checked against the key's
 * range like any other value instead of standing for the default. */
struct y_tls {
    char *ca_file, *cert_file, *key_file, *crl_file, *min_version;
    char *crl_check_interval_ms;
};
struct y_limits {
    char *frame_bytes_max, *connections_max, *inflight_per_connection_max;
    char *connections_per_org_max, *edge_buffer_bytes_max;
    char *handshake_timeout_ms, *frame_timeout_ms, *idle_timeout_ms;
};
struct y_operator { char *http_address; char *http_port; char *admin_socket; };
struct y_log { char *level, *format; };
struct y_storage { char *map_bytes, *log_retain; };
struct y_mpi { char *key_file; char *match_threads; };
struct y_consent { char *regime; char *break_glass; char *part2_named_recipient; char *enforce; };
struct y_audit { char *origin; char *checkpoint_interval_ms; };
struct y_delivery {
    char *ack_timeout_ms, *max_attempts, *heartbeat_ms, *retain_events;
    char *max_age_ms, *queue_bytes_max, *repository_bytes_max;
};
struct y_query { char *responder_timeout_ms, *max_responders; };
struct y_config {
    struct y_node node;
    struct y_listen listen;
    struct y_tls tls;
    struct y_limits limits;
    struct y_operator op;
    struct y_log log;
    struct y_storage storage;
    struct y_mpi mpi;
    struct y_consent consent;
    struct y_audit audit;
    struct y_delivery delivery;
    struct y_query query;
    char *workers;
    char *edge_threads;
};

#define OPT CYAML_FLAG_OPTIONAL
/* A number: a string of digits, parsed by num_key */
#define NUM_FIELD(key, flags, st, m) \
    CYAML_FIELD_STRING_PTR(key, flags, st, m, 1, 64)
static const cyaml_schema_field_t node_fields[] = {
    CYAML_FIELD_STRING_PTR("id", CYAML_FLAG_DEFAULT, struct y_node, id, 1, 63),
    CYAML_FIELD_STRING_PTR("data_dir", CYAML_FLAG_DEFAULT, struct y_node, data_dir, 1, 3000),
    CYAML_FIELD_END};
static const cyaml_schema_field_t listen_fields[] = {
    CYAML_FIELD_STRING_PTR("address", OPT, struct y_listen, address, 1, 63),
    NUM_FIELD("port", CYAML_FLAG_DEFAULT, struct y_listen, port), CYAML_FIELD_END};
static const cyaml_schema_field_t tls_fields[] = {
    CYAML_FIELD_STRING_PTR("ca_file", CYAML_FLAG_DEFAULT, struct y_tls, ca_file, 1, 3000),
    CYAML_FIELD_STRING_PTR("cert_file", CYAML_FLAG_DEFAULT, struct y_tls, cert_file, 1, 3000),
    CYAML_FIELD_STRING_PTR("key_file", CYAML_FLAG_DEFAULT, struct y_tls, key_file, 1, 3000),
    CYAML_FIELD_STRING_PTR("crl_file", OPT, struct y_tls, crl_file, 1, 3000),
    CYAML_FIELD_STRING_PTR("min_version", OPT, struct y_tls, min_version, 1, 8),
    NUM_FIELD("crl_check_interval_ms", OPT, struct y_tls, crl_check_interval_ms),
    CYAML_FIELD_END};
static const cyaml_schema_field_t limits_fields[] = {
    NUM_FIELD("frame_bytes_max", OPT, struct y_limits, frame_bytes_max),
    NUM_FIELD("connections_max", OPT, struct y_limits, connections_max),
    NUM_FIELD("connections_per_org_max", OPT, struct y_limits,
        connections_per_org_max),
    NUM_FIELD("inflight_per_connection_max", OPT, struct y_limits,
        inflight_per_connection_max),
    NUM_FIELD("edge_buffer_bytes_max", OPT, struct y_limits, edge_buffer_bytes_max),
    NUM_FIELD("handshake_timeout_ms", OPT, struct y_limits, handshake_timeout_ms),
    NUM_FIELD("frame_timeout_ms", OPT, struct y_limits, frame_timeout_ms),
    NUM_FIELD("idle_timeout_ms", OPT, struct y_limits, idle_timeout_ms),
    CYAML_FIELD_END};
static const cyaml_schema_field_t operator_fields[] = {
    CYAML_FIELD_STRING_PTR("http_address", OPT, struct y_operator, http_address, 1, 63),
    NUM_FIELD("http_port", OPT, struct y_operator, http_port),
    CYAML_FIELD_STRING_PTR("admin_socket", OPT, struct y_operator, admin_socket, 1, 100),
    CYAML_FIELD_END};
static const cyaml_schema_field_t log_fields[] = {
    CYAML_FIELD_STRING_PTR("level", OPT, struct y_log, level, 1, 8),
    CYAML_FIELD_STRING_PTR("format", OPT, struct y_log, format, 1, 8), CYAML_FIELD_END};
static const cyaml_schema_field_t storage_fields[] = {
    NUM_FIELD("map_bytes", OPT, struct y_storage, map_bytes),
    NUM_FIELD("log_retain", OPT, struct y_storage, log_retain), CYAML_FIELD_END};
static const cyaml_schema_field_t mpi_fields[] = {
    CYAML_FIELD_STRING_PTR("key_file", OPT, struct y_mpi, key_file, 1, 3000),
    NUM_FIELD("match_threads", OPT, struct y_mpi, match_threads), CYAML_FIELD_END};
/* Booleans are strings "true"/"false" checked by fill_consent, so a typo names the key. */
static const cyaml_schema_field_t consent_fields[] = {
    CYAML_FIELD_STRING_PTR("regime", OPT, struct y_consent, regime, 1, 16),
    CYAML_FIELD_STRING_PTR("break_glass", OPT, struct y_consent, break_glass, 1, 8),
    CYAML_FIELD_STRING_PTR("part2_named_recipient", OPT, struct y_consent,
        part2_named_recipient, 1, 8),
    CYAML_FIELD_STRING_PTR("enforce", OPT, struct y_consent, enforce, 1, 40),
    CYAML_FIELD_END};
static const cyaml_schema_field_t audit_fields[] = {
    CYAML_FIELD_STRING_PTR("origin", OPT, struct y_audit, origin, 1, 200),
    NUM_FIELD("checkpoint_interval_ms", OPT, struct y_audit,
        checkpoint_interval_ms),
    CYAML_FIELD_END};
static const cyaml_schema_field_t delivery_fields[] = {
    NUM_FIELD("ack_timeout_ms", OPT, struct y_delivery, ack_timeout_ms),
    NUM_FIELD("max_attempts", OPT, struct y_delivery, max_attempts),
    NUM_FIELD("max_age_ms", OPT, struct y_delivery, max_age_ms),
    NUM_FIELD("heartbeat_ms", OPT, struct y_delivery, heartbeat_ms),
    NUM_FIELD("retain_events", OPT, struct y_delivery, retain_events),
    NUM_FIELD("queue_bytes_max", OPT, struct y_delivery, queue_bytes_max),
    NUM_FIELD("repository_bytes_max", OPT, struct y_delivery, repository_bytes_max),
    CYAML_FIELD_END};
static const cyaml_schema_field_t query_fields[] = {
    NUM_FIELD("responder_timeout_ms", OPT, struct y_query, responder_timeout_ms),
    NUM_FIELD("max_responders", OPT, struct y_query, max_responders),
    CYAML_FIELD_END};
static const cyaml_schema_field_t top_fields[] = {
    CYAML_FIELD_MAPPING("node", CYAML_FLAG_DEFAULT, struct y_config, node, node_fields),
    CYAML_FIELD_MAPPING("listen", CYAML_FLAG_DEFAULT, struct y_config, listen, listen_fields),
    CYAML_FIELD_MAPPING("tls", CYAML_FLAG_DEFAULT, struct y_config, tls, tls_fields),
    CYAML_FIELD_MAPPING("limits", OPT, struct y_config, limits, limits_fields),
    CYAML_FIELD_MAPPING("operator", OPT, struct y_config, op, operator_fields),
    CYAML_FIELD_MAPPING("log", OPT, struct y_config, log, log_fields),
    CYAML_FIELD_MAPPING("storage", OPT, struct y_config, storage, storage_fields),
    CYAML_FIELD_MAPPING("mpi", OPT, struct y_config, mpi, mpi_fields),
    CYAML_FIELD_MAPPING("consent", OPT, struct y_config, consent, consent_fields),
    CYAML_FIELD_MAPPING("audit", OPT, struct y_config, audit, audit_fields),
    CYAML_FIELD_MAPPING("delivery", OPT, struct y_config, delivery, delivery_fields),
    CYAML_FIELD_MAPPING("query", OPT, struct y_config, query, query_fields),
    NUM_FIELD("workers", OPT, struct y_config, workers),
    NUM_FIELD("edge_threads", OPT, struct y_config, edge_threads), CYAML_FIELD_END};
static const cyaml_schema_value_t top_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct y_config, top_fields)};

struct cfg_err {
    char *buf;
    size_t cap;
    size_t len;
};

/* Collects libcyaml's error lines (they name the key path) into one message. */
static void
cfg_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    struct cfg_err *e = ctx;
    if (level < CYAML_LOG_ERROR || e->len + 4 >= e->cap) {
        return;
    }
    if (e->len > 0) {
        e->len += (size_t)snprintf(e->buf + e->len, e->cap - e->len, "; ");
    }
    int n = vsnprintf(e->buf + e->len, e->cap - e->len, fmt, args);
    if (n > 0) {
        e->len += (size_t)n < e->cap - e->len ? (size_t)n : e->cap - e->len - 1;
    }
    while (e->len > 0 && (e->buf[e->len - 1] == '\n' || e->buf[e->len - 1] == ' ')) {
        e->buf[--e->len] = '\0';
    }
}

static int
set_path(char *dst, size_t cap, const char *base_dir, const char *p, const char *key,
    char *err, size_t err_bytes)
{
    int n = p[0] == '/' ? snprintf(dst, cap, "%s", p) : snprintf(dst, cap, "%s/%s", base_dir, p);
    if (n < 0 || (size_t)n >= cap) {
        snprintf(err, err_bytes, "config key %s: path too long", key);
        return HIE_ECONFIG;
    }
    return 0;
}

/* A file the node reads at start (and again on reload): readable and regular. A FIFO there
 * hung the check and the start (signals blocked by then: only SIGKILL stopped it). */
static int
check_file(const char *path, const char *key, char *err, size_t err_bytes)
{
    struct stat sb;
    if (access(path, R_OK) != 0) {
        snprintf(err, err_bytes, "config key %s: cannot read %s: %s", key, path, strerror(errno));
        return HIE_ECONFIG;
    }
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, err_bytes, "config key %s: %s is not a regular file", key, path);
        return HIE_ECONFIG;
    }
    return 0;
}

/* An address literal: IPv4, or IPv6 where v6 is allowed (the edge takes both, HTTP v4). */
static bool
address_literal(const char *text, bool v6)
{
    struct in6_addr a;
    return inet_pton(AF_INET, text, &a) == 1 || (v6 && inet_pton(AF_INET6, text, &a) == 1);
}

int
hie_node__secret_file_check(const char *path, const char *key, char *err, size_t err_bytes)
{
    struct stat sb;
    if (check_file(path, key, err, err_bytes) != 0) {
        return HIE_ECONFIG;
    }
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & 0077) != 0) {
        snprintf(err, err_bytes, "config key %s: %s must be a regular file that only its owner "
            "can read (chmod 600): a private key", key, path);
        return HIE_ECONFIG;
    }
    return 0;
}

/* v as a number, or dflt when the key is absent (v NULL). Only decimal digits: no sign,
 * unit, separator, exponent or leading zero ("010" is not 8); a value outside lo..hi (0
 * included) names the key, the value and the range (with hint, e.g. "1 MiB..1 TiB"). */
static int
num_key(uint64_t *dst, const char *v, uint64_t dflt, uint64_t lo, uint64_t hi,
    const char *hint, const char *key, char *err, size_t err_bytes)
{
    if (v == NULL) {
        *dst = dflt;
        return 0;
    }
    uint64_t n = 0;
    bool ok = v[0] >= '0' && v[0] <= '9' && !(v[0] == '0' && v[1] != '\0');
    for (const char *p = v; ok && *p != '\0'; p++) {
        unsigned d = (unsigned)(*p - '0');
        ok = *p >= '0' && *p <= '9' && n <= (UINT64_MAX - d) / 10u;
        n = ok ? n * 10u + d : n;
    }
    if (!ok) {
        snprintf(err, err_bytes, "config key %s: \"%s\" is not a whole number (decimal digits "
            "only: no sign, unit, separator or leading zero)", key, v);
        return HIE_ECONFIG;
    }
    if (n < lo || n > hi) {
        snprintf(err, err_bytes, "config key %s: %" PRIu64 " is outside %" PRIu64 "..%" PRIu64
            "%s%s%s", key, n, lo, hi, hint != NULL ? " (" : "", hint != NULL ? hint : "",
            hint != NULL ? ")" : "");
        return HIE_ECONFIG;
    }
    *dst = n;
    return 0;
}

/* num_key for a 32-bit setting. */
static int
limit_u32(uint32_t *dst, const char *v, uint32_t dflt, uint32_t lo, uint32_t hi,
    const char *key, char *err, size_t err_bytes)
{
    uint64_t n = 0;
    int rc = num_key(&n, v, dflt, lo, hi, NULL, key, err, err_bytes);
    *dst = rc == 0 ? (uint32_t)n : *dst;
    return rc;
}

static int
fill_tls(node_config_t *c, const struct y_config *y, const char *dir, char *err, size_t eb)
{
    int rc = set_path(c->ca_file, sizeof(c->ca_file), dir, y->tls.ca_file, "tls.ca_file", err,
        eb);
    rc = rc ? rc : set_path(c->cert_file, sizeof(c->cert_file), dir, y->tls.cert_file,
        "tls.cert_file", err, eb);
    rc = rc ? rc : set_path(c->key_file, sizeof(c->key_file), dir, y->tls.key_file,
        "tls.key_file", err, eb);
    if (rc == 0 && y->mpi.key_file != NULL) { /* mode and size are checked when loaded */
        rc = set_path(c->mpi_key_file, sizeof(c->mpi_key_file), dir, y->mpi.key_file,
            "mpi.key_file", err, eb);
    }
    if (rc == 0 && y->tls.crl_file != NULL) {
        rc = set_path(c->crl_file, sizeof(c->crl_file), dir, y->tls.crl_file, "tls.crl_file",
            err, eb);
        rc = rc ? rc : check_file(c->crl_file, "tls.crl_file", err, eb);
    }
    rc = rc ? rc : check_file(c->ca_file, "tls.ca_file", err, eb);
    rc = rc ? rc : check_file(c->cert_file, "tls.cert_file", err, eb);
    rc = rc ? rc : hie_node__secret_file_check(c->key_file, "tls.key_file", err, eb);
    rc = rc ? rc : limit_u32(&c->crl_check_interval_ms, y->tls.crl_check_interval_ms, 10000,
        100, 3600000, "tls.crl_check_interval_ms", err, eb);
    if (rc != 0) {
        return rc;
    }
    const char *mv = y->tls.min_version != NULL ? y->tls.min_version : "1.3";
    if (strcmp(mv, "1.3") == 0) {
        c->tls_min_version = TLS1_3_VERSION;
    } else if (strcmp(mv, "1.2") == 0) {
        c->tls_min_version = TLS1_2_VERSION;
    } else {
        snprintf(err, eb, "config key tls.min_version: must be \"1.3\" or \"1.2\"");
        return HIE_ECONFIG;
    }
    return 0;
}

static int
fill_limits(node_config_t *c, const struct y_config *y, char *err, size_t eb)
{
    const struct y_limits *l = &y->limits;
    int rc = limit_u32(&c->frame_bytes_max, l->frame_bytes_max, HIE_PROTO_FRAME_BYTES_DEFAULT,
        HIE_PROTO_FRAME_BYTES_MIN, HIE_PROTO_FRAME_BYTES_MAX, "limits.frame_bytes_max", err, eb);
    rc = rc ? rc : limit_u32(&c->connections_max, l->connections_max,
        HIE_EDGE_CONNECTIONS_DEFAULT, 1, HIE_EDGE_CONNECTIONS_MAX, "limits.connections_max",
        err, eb);
    /* default: a quarter of the node's, at least 16 (or all of them when fewer) */
    uint32_t per_org = c->connections_max / 4 > 16 ? c->connections_max / 4 : 16;
    per_org = per_org < c->connections_max ? per_org : c->connections_max;
    rc = rc ? rc : limit_u32(&c->connections_per_org_max, l->connections_per_org_max, per_org,
        1, c->connections_max, "limits.connections_per_org_max", err, eb);
    rc = rc ? rc : limit_u32(&c->inflight_max, l->inflight_per_connection_max,
        HIE_EDGE_INFLIGHT_DEFAULT, 1, HIE_EDGE_INFLIGHT_MAX,
        "limits.inflight_per_connection_max", err, eb);
    rc = rc ? rc : limit_u32(&c->edge_buffer_bytes_max, l->edge_buffer_bytes_max,
        HIE_EDGE_BUFFER_BYTES_DEFAULT > 2u * c->frame_bytes_max ? HIE_EDGE_BUFFER_BYTES_DEFAULT
            : 2u * c->frame_bytes_max, 2u * c->frame_bytes_max, HIE_EDGE_BUFFER_BYTES_MAX,
        "limits.edge_buffer_bytes_max", err, eb);
    rc = rc ? rc : limit_u32(&c->handshake_timeout_ms, l->handshake_timeout_ms,
        HIE_EDGE_HANDSHAKE_TIMEOUT_MS_DEFAULT, 100, HIE_EDGE_TIMEOUT_MS_MAX,
        "limits.handshake_timeout_ms", err, eb);
    rc = rc ? rc : limit_u32(&c->frame_timeout_ms, l->frame_timeout_ms,
        HIE_EDGE_FRAME_TIMEOUT_MS_DEFAULT, 100, HIE_EDGE_TIMEOUT_MS_MAX,
        "limits.frame_timeout_ms", err, eb);
    rc = rc ? rc : limit_u32(&c->idle_timeout_ms, l->idle_timeout_ms,
        HIE_EDGE_IDLE_TIMEOUT_MS_DEFAULT, 100, HIE_EDGE_TIMEOUT_MS_MAX,
        "limits.idle_timeout_ms", err, eb);
    rc = rc ? rc : limit_u32(&c->workers, y->workers, 2, 1, HIE_NODE_WORKERS_MAX, "workers",
        err, eb);
    rc = rc ? rc : limit_u32(&c->edge_threads, y->edge_threads, 2, 1, NODE_EDGES_MAX,
        "edge_threads", err, eb);
    rc = rc ? rc : limit_u32(&c->mpi_match_threads, y->mpi.match_threads, 2, 1,
        HIE_MPI_POOL_THREADS_MAX, "mpi.match_threads", err, eb);
    return rc;
}

static int
fill_node(node_config_t *c, const struct y_config *y, const char *dir, char *err, size_t eb)
{
    if (!hie_proto_org_id_valid(y->node.id, strlen(y->node.id))) {
        snprintf(err, eb, "config key node.id: must match [a-z0-9][a-z0-9._-]{0,62}");
        return HIE_ECONFIG;
    }
    snprintf(c->node_id, sizeof(c->node_id), "%s", y->node.id);
    int rc = set_path(c->data_dir, sizeof(c->data_dir), dir, y->node.data_dir, "node.data_dir",
        err, eb);
    if (rc != 0) {
        return rc;
    }
    snprintf(c->listen_address, sizeof(c->listen_address), "%s",
        y->listen.address != NULL ? y->listen.address : "127.0.0.1");
    if (!address_literal(c->listen_address, true)) {
        snprintf(err, eb, "config key listen.address: \"%s\" is not an IPv4 or IPv6 address "
            "(a host name is not resolved)", c->listen_address);
        return HIE_ECONFIG;
    }
    uint32_t port = 0; /* required by the schema: never the default */
    rc = limit_u32(&port, y->listen.port != NULL ? y->listen.port : "0", 0, 1, 65535,
        "listen.port", err, eb);
    c->listen_port = (uint16_t)port;
    return rc;
}

static int
bool_key(bool *dst, const char *v, bool dflt, const char *key, char *err, size_t eb)
{
    if (v == NULL) {
        *dst = dflt;
    } else if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
        *dst = v[0] == 't';
    } else {
        snprintf(err, eb, "config key %s: must be true or false", key);
        return HIE_ECONFIG;
    }
    return 0;
}

/* consent: the HIE's implicit policy (reference.md §3). Enforcement can be turned off only
 * with a value that says what it is for; main logs a warning at every start. */
/* audit.origin, or hiebroker/<node id>. */
static int
fill_origin(node_config_t *c, const struct y_config *y, char *err, size_t eb)
{
    snprintf(c->audit_origin, sizeof(c->audit_origin), "%s", y->audit.origin != NULL
        ? y->audit.origin : "");
    for (const char *p = c->audit_origin; *p != '\0'; p++) {
        /* it names the signing key too (C2SP signed note: no '+' in a key name) */
        if (*p < 0x21 || *p > 0x7e || *p == '+') {
            snprintf(err, eb, "config key audit.origin: printable ASCII without spaces or '+'");
            return HIE_ECONFIG;
        }
    }
    if (c->audit_origin[0] == '\0') {
        snprintf(c->audit_origin, sizeof(c->audit_origin), "hiebroker/%s", c->node_id);
    }
    if (strcmp(c->audit_origin, HIE_AUDIT_IDENTITY_ORIGIN) == 0 ||
        strcmp(c->audit_origin, HIE_AUDIT_PAGE_ORIGIN) == 0) {
        /* the node signs accountings' identities and report pages under those origins with
         * the same key: a checkpoint of the log must never be one of them */
        snprintf(err, eb, "config key audit.origin: \"%s\" is reserved (choose another "
            "origin, or another node.id)", c->audit_origin);
        return HIE_ECONFIG;
    }
    return 0;
}

static int
fill_consent(node_config_t *c, const struct y_config *y, char *err, size_t eb)
{
    const char *r = y->consent.regime != NULL ? y->consent.regime : "opt-in";
    if (strcmp(r, "opt-in") != 0 && strcmp(r, "opt-out") != 0) {
        snprintf(err, eb, "config key consent.regime: must be \"opt-in\" or \"opt-out\"");
        return HIE_ECONFIG;
    }
    c->consent_opt_out = strcmp(r, "opt-out") == 0;
    /* break-glass overrides a patient's deny: only where the HIE's policy says so */
    int rc = bool_key(&c->consent_break_glass, y->consent.break_glass, false,
        "consent.break_glass", err, eb);
    rc = rc ? rc : bool_key(&c->consent_part2_named, y->consent.part2_named_recipient, true,
        "consent.part2_named_recipient", err, eb);
    const char *en = y->consent.enforce;
    c->consent_off = en != NULL && strcmp(en, "off-for-benchmarks-only") == 0;
    if (rc == 0 && en != NULL && !c->consent_off && strcmp(en, "on") != 0) {
        snprintf(err, eb, "config key consent.enforce: must be \"on\" (or "
            "\"off-for-benchmarks-only\")");
        rc = HIE_ECONFIG;
    }
    rc = rc ? rc : fill_origin(c, y, err, eb);
    rc = rc ? rc : limit_u32(&c->audit_checkpoint_interval_ms,
        y->audit.checkpoint_interval_ms, HIE_AUDIT_CHECKPOINT_INTERVAL_MS_DEFAULT, 100,
        HIE_AUDIT_CHECKPOINT_INTERVAL_MS_MAX, "audit.checkpoint_interval_ms", err, eb);
    rc = rc ? rc : limit_u32(&c->delivery_ack_timeout_ms, y->delivery.ack_timeout_ms,
        HIE_DELIVERY_ACK_TIMEOUT_MS_DEFAULT, 50, HIE_DELIVERY_BACKOFF_MS_MAX,
        "delivery.ack_timeout_ms", err, eb);
    rc = rc ? rc : limit_u32(&c->delivery_max_attempts, y->delivery.max_attempts,
        HIE_DELIVERY_MAX_ATTEMPTS_DEFAULT, 1, 1000, "delivery.max_attempts", err, eb);
    /* a minute (a shorter wait dead-letters what an ordinary reconnect would deliver) to a
     * year (what is older than that is better redriven by hand) */
    rc = rc ? rc : num_key(&c->delivery_max_age_ms, y->delivery.max_age_ms,
        HIE_DELIVERY_MAX_AGE_MS_DEFAULT, 60000u, 366ull * 24u * 3600u * 1000u,
        "a minute to a year", "delivery.max_age_ms", err, eb);
    rc = rc ? rc : num_key(&c->delivery_queue_bytes_max, y->delivery.queue_bytes_max,
        HIE_DELIVERY_QUEUE_BYTES_DEFAULT, 1u << 20, HIE_LMDB_MAP_BYTES_MAX, "1 MiB..1 TiB",
        "delivery.queue_bytes_max", err, eb);
    rc = rc ? rc : num_key(&c->repository_bytes_max, y->delivery.repository_bytes_max,
        HIE_REPOSITORY_BYTES_DEFAULT, 1u << 20, HIE_LMDB_MAP_BYTES_MAX, "1 MiB..1 TiB",
        "delivery.repository_bytes_max", err, eb);
    rc = rc ? rc : limit_u32(&c->delivery_heartbeat_ms, y->delivery.heartbeat_ms,
        HIE_DELIVERY_HEARTBEAT_MS_DEFAULT, 100, HIE_DELIVERY_BACKOFF_MS_MAX,
        "delivery.heartbeat_ms", err, eb);
    rc = rc ? rc : limit_u32(&c->delivery_retain_events, y->delivery.retain_events,
        HIE_SUBSCRIPTION_RETAIN_MAX, 1, HIE_SUBSCRIPTION_RETAIN_LIMIT, "delivery.retain_events",
        err, eb);
    rc = rc ? rc : limit_u32(&c->query_responder_timeout_ms, y->query.responder_timeout_ms,
        3000, 100, 60000, "query.responder_timeout_ms", err, eb);
    rc = rc ? rc : limit_u32(&c->query_max_responders, y->query.max_responders,
        NODE_QUERY_RESPONDERS_MAX, 1, NODE_QUERY_RESPONDERS_MAX, "query.max_responders", err, eb);
    return rc;
}

/* Keys that are each in range but do not work together. */
static int
cross_check(const node_config_t *c, char *err, size_t eb)
{
    if ((uint64_t)c->delivery_heartbeat_ms * 2u > c->idle_timeout_ms) {
        /* a receiving connection is kept alive by its heartbeats alone: it was closed as idle
         * before each one, over and over */
        snprintf(err, eb, "config keys delivery.heartbeat_ms (%u) and limits.idle_timeout_ms "
            "(%u): the heartbeat must be at most half the idle timeout",
            c->delivery_heartbeat_ms, c->idle_timeout_ms);
        return HIE_ECONFIG;
    }
    bool same_host = strcmp(c->http_address, c->listen_address) == 0 ||
                     strcmp(c->http_address, "0.0.0.0") == 0 ||
                     strcmp(c->listen_address, "0.0.0.0") == 0 ||
                     strcmp(c->listen_address, "::") == 0; /* dual-stack */
    if (c->http_port != 0 && c->http_port == c->listen_port && same_host) {
        snprintf(err, eb, "config keys operator.http_port and listen.port: both %u on the same "
            "address", c->listen_port);
        return HIE_ECONFIG;
    }
    return 0;
}

static int
fill_operator(node_config_t *c, const struct y_config *y, char *err, size_t eb)
{
    snprintf(c->http_address, sizeof(c->http_address), "%s",
        y->op.http_address != NULL ? y->op.http_address : "127.0.0.1");
    if (!address_literal(c->http_address, false)) {
        snprintf(err, eb, "config key operator.http_address: \"%s\" is not an IPv4 address",
            c->http_address);
        return HIE_ECONFIG;
    }
    uint64_t port = 0;
    if (num_key(&port, y->op.http_port, 0, 0, 65535, "0 disables", "operator.http_port", err,
            eb) != 0) {
        return HIE_ECONFIG;
    }
    c->http_port = (uint16_t)port;
    const char *sock = y->op.admin_socket != NULL ? y->op.admin_socket : "admin.sock";
    int rc = sock[0] == '/' ? 0 : set_path(c->admin_socket, sizeof(c->admin_socket),
        c->data_dir, sock, "operator.admin_socket", err, eb);
    if (sock[0] == '/') {
        snprintf(c->admin_socket, sizeof(c->admin_socket), "%s", sock);
    }
    if (rc == 0 && strlen(c->admin_socket) > 100) { /* sun_path limit, with ipc:// prefix */
        snprintf(err, eb, "config key operator.admin_socket: path longer than 100 bytes");
        return HIE_ECONFIG;
    }
    if (rc == 0 && y->log.level != NULL && hie_log_level_parse(y->log.level, &c->log_level)) {
        snprintf(err, eb, "config key log.level: must be error, warn, info or debug");
        return HIE_ECONFIG;
    }
    if (rc == 0 && y->log.format != NULL &&
        hie_log_format_parse(y->log.format, &c->log_format)) {
        snprintf(err, eb, "config key log.format: must be kv or json");
        return HIE_ECONFIG;
    }
    rc = rc ? rc : num_key(&c->map_bytes, y->storage.map_bytes, HIE_LMDB_MAP_BYTES_DEFAULT,
        1u << 20, HIE_LMDB_MAP_BYTES_MAX, "1 MiB..1 TiB", "storage.map_bytes", err, eb);
    rc = rc ? rc : num_key(&c->log_retain, y->storage.log_retain, HIE_LOG_RETAIN_DEFAULT, 0,
        HIE_LOG_RETAIN_MAX, NULL, "storage.log_retain", err, eb);
    if (rc == 0 && c->log_retain != 0 && c->log_retain < HIE_LOG_RETAIN_MIN) {
        snprintf(err, eb, "config key storage.log_retain: must be 0 (keep every command) or "
            "100..1000000000");
        return HIE_ECONFIG;
    }
    return rc;
}

/* One libyaml event pass over the file before libcyaml reads it: a value holding a NUL byte
 * ("node-1\0evil": libcyaml keeps it as "node-1", a key file's path cut short alike) and a
 * second document (libcyaml reads the first only, and the rest was ignored in silence) are
 * refused. Syntax errors are left to libcyaml, which names the line. The file is at most
 * HIE_CONFIG_FILE_BYTES_MAX: its events are too. */
static int
yaml_precheck(const char *path, char *err, size_t err_bytes)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_bytes, "cannot read config %s: %s", path, strerror(errno));
        return HIE_ECONFIG;
    }
    yaml_parser_t p;
    int rc = yaml_parser_initialize(&p) ? 0 : HIE_ENOMEM;
    if (rc == 0) {
        yaml_parser_set_input_file(&p, f);
    }
    for (unsigned docs = 0; rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            break; /* libcyaml reports it */
        }
        yaml_event_type_t t = ev.type;
        unsigned long line = (unsigned long)ev.start_mark.line + 1;
        if (t == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            snprintf(err, err_bytes, "config %s: line %lu: a second YAML document (one only)",
                path, line);
            rc = HIE_ECONFIG;
        } else if (t == YAML_SCALAR_EVENT &&
                   memchr(ev.data.scalar.value, 0, ev.data.scalar.length) != NULL) {
            snprintf(err, err_bytes, "config %s: line %lu: a value holds a NUL byte", path,
                line);
            rc = HIE_ECONFIG;
        }
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    if (rc != HIE_ENOMEM) {
        yaml_parser_delete(&p);
    }
    fclose(f);
    if (rc == HIE_ENOMEM) {
        snprintf(err, err_bytes, "config %s: out of memory", path);
        rc = HIE_ECONFIG;
    }
    return rc;
}

int
hie_node__config_load(node_config_t *cfg, const char *path, char *err, size_t err_bytes)
{
    HIE_ASSERT(cfg != NULL && path != NULL && err != NULL);
    memset(cfg, 0, sizeof(*cfg));
    cfg->log_level = HIE_LOG_INFO;
    cfg->log_format = HIE_LOG_KV;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(err, err_bytes, "cannot read config %s: %s", path, strerror(errno));
        return -errno;
    }
    if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > HIE_CONFIG_FILE_BYTES_MAX) {
        snprintf(err, err_bytes, "config %s: not a regular file of at most 256 KiB", path);
        return HIE_ECONFIG;
    }
    if (yaml_precheck(path, err, err_bytes) != 0) {
        return HIE_ECONFIG;
    }
    char errbuf[1024] = "";
    struct cfg_err e = {errbuf, sizeof(errbuf), 0};
    cyaml_config_t ycfg = {.log_fn = cfg_log, .log_ctx = &e, .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_ERROR, .flags = CYAML_CFG_NO_ALIAS};
    struct y_config *y = NULL;
    cyaml_err_t yerr = cyaml_load_file(path, &ycfg, &top_schema, (cyaml_data_t **)&y, NULL);
    if (yerr != CYAML_OK) {
        snprintf(err, err_bytes, "config %s: %s%s%s", path, cyaml_strerror(yerr),
            e.len ? ": " : "", errbuf);
        return HIE_ECONFIG;
    }
    if (y == NULL) {
        snprintf(err, err_bytes, "config %s: empty (no node, listen and tls keys)", path);
        return HIE_ECONFIG;
    }
    char pathcopy[NODE_PATH_MAX];
    snprintf(pathcopy, sizeof(pathcopy), "%s", path);
    const char *dir = dirname(pathcopy);
    int rc = fill_node(cfg, y, dir, err, err_bytes);
    rc = rc ? rc : fill_tls(cfg, y, dir, err, err_bytes);
    rc = rc ? rc : fill_limits(cfg, y, err, err_bytes);
    rc = rc ? rc : fill_operator(cfg, y, err, err_bytes);
    rc = rc ? rc : fill_consent(cfg, y, err, err_bytes);
    rc = rc ? rc : cross_check(cfg, err, err_bytes);
    cyaml_free(&ycfg, &top_schema, y, 0);
    return rc;
}
