/*
 * metrics.c - counters and latency histograms, rendered in the Prometheus text format.
 *
 * The one piece of state threads share: every field is an atomic, updated with relaxed
 * ordering (a scrape may see counters a few events apart, as Prometheus allows).
 * Callers: edge and workers (observe), http.c (render).
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <stdio.h>
#include <string.h>

static const uint64_t latency_bounds_us[NODE_LATENCY_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
    5000000,
};
static const char *const kind_names[REQ_KIND_COUNT] = {"ping", "whoami", "other"};
static const char *const outcome_names[OUT_COUNT] = {
    "ok", "bad_request", "unauthenticated", "forbidden", "not_found", "overloaded",
    "unavailable", "internal",
};
const char *const hie_node__hs_reason_names[HS_REASON_COUNT] = {
    "no_certificate", "unknown_ca", "expired", "not_yet_valid", "revoked", "bad_purpose",
    "protocol_version", "timeout", "other", "crl",
};

enum node_outcome
hie_node__outcome_from_code(Hie__V1__ErrorCode code)
{
    switch (code) {
    case HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED:
        return OUT_OK;
    case HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST:
        return OUT_BAD_REQUEST;
    case HIE__V1__ERROR_CODE__ERROR_UNAUTHENTICATED:
        return OUT_UNAUTHENTICATED;
    case HIE__V1__ERROR_CODE__ERROR_FORBIDDEN:
    case HIE__V1__ERROR_CODE__ERROR_CONSENT_DENIED:
        return OUT_FORBIDDEN;
    case HIE__V1__ERROR_CODE__ERROR_NOT_FOUND:
        return OUT_NOT_FOUND;
    case HIE__V1__ERROR_CODE__ERROR_OVERLOADED:
        return OUT_OVERLOADED;
    case HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE:
        return OUT_UNAVAILABLE;
    default:
        return OUT_INTERNAL;
    }
}

void
hie_node__metrics_observe(node_metrics_t *m, enum node_req_kind kind, enum node_outcome outcome,
    uint64_t latency_us)
{
    HIE_ASSERT(kind < REQ_KIND_COUNT);
    HIE_ASSERT(outcome < OUT_COUNT);
    atomic_fetch_add_explicit(&m->requests[kind][outcome], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < NODE_LATENCY_BUCKETS && latency_us > latency_bounds_us[b]) {
        b++;
    }
    atomic_fetch_add_explicit(&m->latency_bucket[kind][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_sum_us[kind], latency_us, memory_order_relaxed);
}

struct out {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void HIE_PRINTF(2, 3)
out_printf(struct out *o, const char *fmt, ...)
{
    if (o->failed) {
        return;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t ncap = o->cap * 2 + (size_t)n;
        char *nb = hie_mem_realloc(o->buf, o->cap, ncap);
        if (nb == NULL) {
            o->failed = true;
            return;
        }
        o->buf = nb;
        o->cap = ncap;
    }
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void
render_edge_buffers(struct out *o, const node_metrics_t *m, const char *node)
{
    out_printf(o, "# HELP hie_edge_buffer_bytes Bytes of member requests the edges hold: read "
        "and not answered yet, or being read (limits.edge_buffer_bytes_max, per edge thread).\n"
        "# TYPE hie_edge_buffer_bytes gauge\nhie_edge_buffer_bytes{node=\"%s\"} %lu\n", node,
        LOAD(m->edge_buffer_bytes));
}

static void
render_connections(struct out *o, const node_metrics_t *m, const char *node)
{
    out_printf(o, "# HELP hie_connections_open Member connections open now.\n"
        "# TYPE hie_connections_open gauge\nhie_connections_open{node=\"%s\"} %lu\n", node,
        LOAD(m->connections_open));
    out_printf(o, "# HELP hie_connections_total Member connections accepted.\n"
        "# TYPE hie_connections_total counter\nhie_connections_total{node=\"%s\"} %lu\n", node,
        LOAD(m->connections_total));
    out_printf(o, "# HELP hie_connections_refused_total Connections refused at the limit.\n"
        "# TYPE hie_connections_refused_total counter\n"
        "hie_connections_refused_total{node=\"%s\",reason=\"limit\"} %lu\n", node,
        LOAD(m->connections_refused_limit));
    out_printf(o, "# HELP hie_connections_handshaking Connections still in their TLS handshake "
        "(at most a quarter of connections.max).\n# TYPE hie_connections_handshaking gauge\n"
        "hie_connections_handshaking{node=\"%s\"} %lu\n"
        "# HELP hie_handshakes_evicted_total Handshaking connections closed to make room for a "
        "new one.\n# TYPE hie_handshakes_evicted_total counter\n"
        "hie_handshakes_evicted_total{node=\"%s\"} %lu\n", node,
        LOAD(m->connections_handshaking), node, LOAD(m->handshakes_evicted));
    out_printf(o, "# HELP hie_tls_handshakes_total TLS handshakes by result and reason.\n"
        "# TYPE hie_tls_handshakes_total counter\n"
        "hie_tls_handshakes_total{node=\"%s\",result=\"ok\",reason=\"\"} %lu\n", node,
        LOAD(m->handshakes_ok));
    for (int r = 0; r < HS_REASON_COUNT; r++) {
        out_printf(o, "hie_tls_handshakes_total{node=\"%s\",result=\"failed\",reason=\"%s\"} "
            "%lu\n", node, hie_node__hs_reason_names[r], LOAD(m->handshakes_failed[r]));
    }
    out_printf(o, "# HELP hie_auth_refused_total Authenticated peers refused by the registry.\n"
        "# TYPE hie_auth_refused_total counter\n"
        "hie_auth_refused_total{node=\"%s\",reason=\"unregistered\"} %lu\n"
        "hie_auth_refused_total{node=\"%s\",reason=\"suspended\"} %lu\n", node,
        LOAD(m->auth_refused_unregistered), node, LOAD(m->auth_refused_suspended));
    out_printf(o, "# HELP hie_tls_crl_next_update_seconds When the loaded CRL expires (Unix "
        "time; 0: no CRL). Past it every member is refused.\n"
        "# TYPE hie_tls_crl_next_update_seconds gauge\n"
        "hie_tls_crl_next_update_seconds{node=\"%s\"} %lld\n", node,
        (long long)(atomic_load(&m->crl_next_update_ms) / 1000));
    out_printf(o, "# HELP hie_tls_crl_last_update_seconds When the loaded CRL became valid "
        "(Unix time; 0: no CRL). Before it every member is refused.\n"
        "# TYPE hie_tls_crl_last_update_seconds gauge\n"
        "hie_tls_crl_last_update_seconds{node=\"%s\"} %lld\n", node,
        (long long)(atomic_load(&m->crl_last_update_ms) / 1000));
    out_printf(o, "# HELP hie_delivery_receivers Recipients the delivery thread keeps a slot "
        "for (receiving, or with deliveries unacknowledged).\n"
        "# TYPE hie_delivery_receivers gauge\nhie_delivery_receivers{node=\"%s\"} %lu\n",
        node, LOAD(m->delivery_receivers));
    out_printf(o, "# HELP hie_sessions_cut_total Open sessions closed because their "
        "certificate expired, or a reload or CRL change found it no longer valid.\n"
        "# TYPE hie_sessions_cut_total counter\n"
        "hie_sessions_cut_total{node=\"%s\"} %lu\n", node, LOAD(m->sessions_cut));
    out_printf(o, "# HELP hie_frames_rejected_total Malformed or oversize frames.\n"
        "# TYPE hie_frames_rejected_total counter\nhie_frames_rejected_total{node=\"%s\"} %lu\n",
        node, LOAD(m->frames_rejected));
}

static void
render_requests(struct out *o, const node_metrics_t *m, const char *node)
{
    out_printf(o, "# HELP hie_requests_total Requests by type and outcome.\n"
        "# TYPE hie_requests_total counter\n");
    for (int k = 0; k < REQ_KIND_COUNT; k++) {
        for (int x = 0; x < OUT_COUNT; x++) {
            out_printf(o, "hie_requests_total{node=\"%s\",type=\"%s\",outcome=\"%s\"} %lu\n",
                node, kind_names[k], outcome_names[x], LOAD(m->requests[k][x]));
        }
    }
    out_printf(o, "# HELP hie_request_duration_seconds Time from frame read to reply queued.\n"
        "# TYPE hie_request_duration_seconds histogram\n");
    for (int k = 0; k < REQ_KIND_COUNT; k++) {
        uint64_t cum = 0;
        for (int b = 0; b < NODE_LATENCY_BUCKETS; b++) {
            cum += LOAD(m->latency_bucket[k][b]);
            out_printf(o, "hie_request_duration_seconds_bucket{node=\"%s\",type=\"%s\","
                "le=\"%g\"} %lu\n", node, kind_names[k], (double)latency_bounds_us[b] / 1e6,
                cum);
        }
        cum += LOAD(m->latency_bucket[k][NODE_LATENCY_BUCKETS]);
        out_printf(o, "hie_request_duration_seconds_bucket{node=\"%s\",type=\"%s\",le=\"+Inf\"}"
            " %lu\nhie_request_duration_seconds_sum{node=\"%s\",type=\"%s\"} %.6f\n"
            "hie_request_duration_seconds_count{node=\"%s\",type=\"%s\"} %lu\n", node,
            kind_names[k], cum, node, kind_names[k], (double)LOAD(m->latency_sum_us[k]) / 1e6,
            node, kind_names[k], cum);
    }
}

static void
render_state(struct out *o, const node_metrics_t *m, const char *node)
{
    out_printf(o, "# HELP hie_commands_applied_total Commands applied by the state machine.\n"
        "# TYPE hie_commands_applied_total counter\nhie_commands_applied_total{node=\"%s\"} "
        "%lu\n", node, LOAD(m->commands_applied));
    out_printf(o, "# HELP hie_log_batches_total Group commits (one fsync each).\n"
        "# TYPE hie_log_batches_total counter\nhie_log_batches_total{node=\"%s\"} %lu\n", node,
        LOAD(m->log_batches));
    out_printf(o, "# HELP hie_state_commits_total State commits (one fsync each; audit-only "
        "batches share one).\n# TYPE hie_state_commits_total counter\n"
        "hie_state_commits_total{node=\"%s\"} %lu\n", node, LOAD(m->state_commits));
    out_printf(o, "# HELP hie_applied_index Last applied log index.\n"
        "# TYPE hie_applied_index gauge\nhie_applied_index{node=\"%s\"} %lu\n", node,
        LOAD(m->applied_index));
    out_printf(o, "# HELP hie_tls_reloads_total Certificate/CRL reloads.\n"
        "# TYPE hie_tls_reloads_total counter\n"
        "hie_tls_reloads_total{node=\"%s\",result=\"ok\"} %lu\n"
        "hie_tls_reloads_total{node=\"%s\",result=\"failed\"} %lu\n", node,
        LOAD(m->tls_reloads_ok), node, LOAD(m->tls_reloads_failed));
    out_printf(o, "# HELP hie_up 1 when the node is serving.\n# TYPE hie_up gauge\n"
        "hie_up{node=\"%s\"} %lu\n", node, LOAD(m->ready));
    uint64_t used[2] = {0, 0}, map[2] = {0, 0};
    if (m->state_env != NULL && m->log != NULL &&
        hie_cluster_lmdb_usage(m->state_env, true, &used[0], &map[0]) == 0 &&
        hie_cluster_log_usage(m->log, true, &used[1], &map[1]) == 0) {
        out_printf(o, "# HELP hie_storage_used_bytes Bytes of the LMDB map in use (less free "
            "pages); new work is refused past %u%% of hie_storage_map_bytes.\n"
            "# TYPE hie_storage_used_bytes gauge\n"
            "hie_storage_used_bytes{node=\"%s\",db=\"state\"} %lu\n"
            "hie_storage_used_bytes{node=\"%s\",db=\"log\"} %lu\n"
            "# HELP hie_storage_map_bytes The LMDB map size (storage.map_bytes).\n"
            "# TYPE hie_storage_map_bytes gauge\n"
            "hie_storage_map_bytes{node=\"%s\",db=\"state\"} %lu\n"
            "hie_storage_map_bytes{node=\"%s\",db=\"log\"} %lu\n", HIE_STORAGE_REFUSE_PCT,
            node, used[0], node, used[1], node, map[0], node, map[1]);
    }
    out_printf(o, "# HELP hie_memory_live_bytes Bytes the node holds in its own allocations "
        "(buffers, queues, arenas; not LMDB's map or ZeroMQ's).\n"
        "# TYPE hie_memory_live_bytes gauge\nhie_memory_live_bytes{node=\"%s\"} %lld\n", node,
        (long long)hie_mem_live_bytes());
    if (m->mpi != NULL) {
        out_printf(o, "# HELP hie_mpi_matches_total Match runs (feeds and PDQ queries).\n"
            "# TYPE hie_mpi_matches_total counter\nhie_mpi_matches_total{node=\"%s\"} %lu\n"
            "# HELP hie_mpi_candidates_total Candidate records scored.\n"
            "# TYPE hie_mpi_candidates_total counter\n"
            "hie_mpi_candidates_total{node=\"%s\"} %lu\n"
            "# HELP hie_mpi_capped_blocks_total Blocks cut at the block size cap.\n"
            "# TYPE hie_mpi_capped_blocks_total counter\n"
            "hie_mpi_capped_blocks_total{node=\"%s\"} %lu\n", node, LOAD(m->mpi->matches),
            node, LOAD(m->mpi->candidates), node, LOAD(m->mpi->capped_blocks));
        out_printf(o, "# HELP hie_mpi_pool_comparisons_total Comparisons apply took from the "
            "match pool.\n# TYPE hie_mpi_pool_comparisons_total counter\n"
            "hie_mpi_pool_comparisons_total{node=\"%s\"} %lu\n"
            "# HELP hie_mpi_pool_stale_total Pool comparisons refused: the form had changed.\n"
            "# TYPE hie_mpi_pool_stale_total counter\n"
            "hie_mpi_pool_stale_total{node=\"%s\"} %lu\n"
            "# HELP hie_mpi_pool_feeds_total Feeds by who prepared them (pool, apply).\n"
            "# TYPE hie_mpi_pool_feeds_total counter\n"
            "hie_mpi_pool_feeds_total{node=\"%s\",by=\"pool\"} %lu\n"
            "hie_mpi_pool_feeds_total{node=\"%s\",by=\"apply\"} %lu\n", node,
            LOAD(m->mpi->pool_used), node, LOAD(m->mpi->pool_stale), node,
            LOAD(m->mpi->pool_ready) + LOAD(m->mpi->pool_waited), node, LOAD(m->mpi->pool_own));
    }
}

int
hie_node__metrics_render(const node_metrics_t *m, const char *node_id, char **out,
    size_t *out_len)
{
    HIE_ASSERT(m != NULL && out != NULL && out_len != NULL);
    *out = NULL;
    *out_len = 0;
    struct out o = {hie_mem_alloc(16384), 0, 16384, false};
    if (o.buf == NULL) {
        return HIE_ENOMEM;
    }
    render_connections(&o, m, node_id);
    render_edge_buffers(&o, m, node_id);
    render_requests(&o, m, node_id);
    render_state(&o, m, node_id);
    if (o.failed) {
        hie_mem_free(o.buf, o.cap);
        return HIE_ENOMEM;
    }
    /* exact size, so the caller frees with hie_mem_free(*out, *out_len + 1) */
    char *exact = hie_mem_realloc(o.buf, o.cap, o.len + 1);
    if (exact == NULL) {
        hie_mem_free(o.buf, o.cap);
        return HIE_ENOMEM;
    }
    *out = exact;
    *out_len = o.len;
    return 0;
}
