/*
 * bench_push.c - durable push and delivery (issue 5) against one hie-node, with two baselines
 * measured in the same run: raw LMDB (1 KiB values, batched synced puts, as the node's group
 * commit batches them) and, when built with librabbitmq (HIE_BENCH_RABBITMQ, push_rabbitmq.c),
 * RabbitMQ with the same workload (mutual TLS, a durable quorum queue, publisher confirms,
 * consumer acknowledgements).
 *
 * Our side: a fresh node (data key, consent regime opt-out, so treatment pushes are
 * permitted), two organizations registered, P patients imported with hiectl mpi import. One
 * recipient connection (riverside-clinic) sends ReceiveRequest{window} and acknowledges what
 * it receives (DeliveryAck every ack_every deliveries or ack_ms after the oldest unacknowledged
 * one); then C hospital connections (general-hospital) push N documents of 1 KiB between them,
 * each keeping W pushes in flight. A push's reply comes only after its message and audit
 * record are committed (group commit through the command log, synced LMDB).
 *
 * Reported per side: acknowledged pushes/s (sender side, first send to last acknowledgement),
 * push acknowledgement latency p50/p99, end-to-end latency (push sent -> delivery received)
 * p50/p99, deliveries/s at the recipient, and the exactly-once check per message id: messages
 * lost (acknowledged, never delivered), duplicates (a message id delivered more than once) and
 * deliveries flagged as redeliveries, counted separately, plus content mismatches. Also the
 * server's CPU (% of one core, busiest thread), ours and other processes', the device's
 * flushes and bytes written per message, the node's busiest threads (on-CPU and run-queue
 * wait), and per tenth of the run the acknowledged pushes/s and the end-to-end p50.
 * Target (issue 5): at least 20,000 acknowledged pushes/s with 1 KiB documents.
 *
 *   bench_push [--smoke] [--n N] [--conns C] [--window W] [--rx-window R] [--ack-every K]
 *              [--ack-ms MS] [--workers N] [--patients P] [--lmdb-batch B] [--time-cap-s T]
 *              [--no-rabbitmq] [--thread-states] [--keep]
 *
 * --smoke: N=2000, no RabbitMQ (the ctest smoke must not need it or the network).
 * --thread-states: also sample what each node thread is blocked in (fdatasync, writes, idle
 * waits) every 5 ms; on-CPU and run-queue wait per thread are always reported (schedstat).
 * Limits: see push_common.h; every loop is bounded by a count and by the run's deadline.
 */
#include "push_common.h"

#include "hie/mpi_store.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define SENDER_ORG "general-hospital"
#define RECIPIENT_ORG "riverside-clinic"
#define FRAME_BYTES_MAX (64u * 1024u)   /* our frames: a push is ~1.2 KiB, a delivery ~1.3 KiB */
#define READ_BYTES_MAX (1u << 20)
#define DRAIN_MS 5000u                  /* the recipient's last ack replies */
#define IMPORT_TIMEOUT_MS (600 * 1000)

/* ---- the shared bookkeeping (push_common.h) -------------------------------------------------- */

int
push_track_init(push_track_t *t, unsigned n, unsigned conns, unsigned time_cap_s)
{
    HIE_ASSERT(n >= 1 && n <= PUSH_N_MAX);
    HIE_ASSERT(conns >= 1 && conns <= PUSH_CONNS_MAX);
    memset(t, 0, sizeof(*t));
    t->n = n;
    t->conns = conns;
    t->sent_ns = calloc(n, sizeof(*t->sent_ns));
    t->ack_ns = calloc(n, sizeof(*t->ack_ns));
    t->e2e_ns = calloc(n, sizeof(*t->e2e_ns));
    t->seen = calloc(n, sizeof(*t->seen));
    t->t0_ns = hie_time_mono_ns();
    t->deadline_ns = t->t0_ns + (uint64_t)time_cap_s * 1000000000ull;
    if (t->sent_ns == NULL || t->ack_ns == NULL || t->e2e_ns == NULL || t->seen == NULL) {
        push_track_release(t);
        return HIE_ENOMEM;
    }
    return 0;
}

void
push_track_release(push_track_t *t)
{
    free((void *)(uintptr_t)t->sent_ns); /* calloc'd as plain uint64_t */
    free(t->ack_ns);
    free(t->e2e_ns);
    free(t->seen);
    t->sent_ns = NULL;
    t->ack_ns = t->e2e_ns = NULL;
    t->seen = NULL;
}

void
push_doc_fill(unsigned index, uint8_t *buf)
{
    uint64_t s = BENCH_SEED ^ (((uint64_t)index + 1u) * 0x9E3779B97F4A7C15ull);
    for (size_t i = 0; i < PUSH_DOC_BYTES; i += 8) {
        uint64_t v = bench_rand(&s);
        memcpy(buf + i, &v, 8);
    }
    _Static_assert(PUSH_DOC_BYTES % 8u == 0, "documents are filled 8 bytes at a time");
}

unsigned
push_index_parse(const char *id, size_t len)
{
    const char *end = id + len, *p = memchr(id, ':', len);
    p = p != NULL ? p + 1 : id;
    if (p >= end || *p != 'p') {
        return UINT32_MAX;
    }
    uint64_t v = 0;
    unsigned digits = 0;
    for (p++; p < end && *p >= '0' && *p <= '9' && digits < 10; p++, digits++) {
        v = v * 10u + (uint64_t)(*p - '0');
    }
    return p == end && digits > 0 && v < UINT32_MAX ? (unsigned)v : UINT32_MAX;
}

static void
atomic_max(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

void
push_track_acked(push_track_t *t, unsigned index, uint64_t now_ns)
{
    HIE_ASSERT(index < t->n);
    uint64_t sent = atomic_load_explicit(&t->sent_ns[index], memory_order_relaxed);
    if (sent == 0 || t->ack_ns[index] != 0) {
        atomic_fetch_add(&t->errors, 1); /* an acknowledgement for nothing we have in flight */
        return;
    }
    t->ack_ns[index] = now_ns > sent ? now_ns - sent : 1;
    atomic_fetch_add(&t->acked, 1);
    atomic_max(&t->last_ack_ns, now_ns);
}

void
push_track_delivered(push_track_t *t, unsigned index, bool redelivery_flag,
    const uint8_t *content, size_t len, uint64_t now_ns)
{
    uint8_t want[PUSH_DOC_BYTES];
    if (index >= t->n) {
        atomic_fetch_add(&t->errors, 1);
        return;
    }
    push_doc_fill(index, want);
    if (len != PUSH_DOC_BYTES || memcmp(want, content, len) != 0) {
        atomic_fetch_add(&t->corrupt, 1);
    }
    if (redelivery_flag) {
        atomic_fetch_add(&t->redelivered_flags, 1);
    }
    if (t->seen[index] > 0) {
        atomic_fetch_add(&t->duplicates, 1);
        t->seen[index] += t->seen[index] < PUSH_SEEN_MAX;
        return;
    }
    t->seen[index] = 1;
    uint64_t sent = atomic_load_explicit(&t->sent_ns[index], memory_order_relaxed);
    t->e2e_ns[index] = sent != 0 && now_ns > sent ? now_ns - sent : 1;
    atomic_fetch_add(&t->delivered, 1);
    atomic_max(&t->last_delivery_ns, now_ns);
}

/* Moves the non-zero entries of v[0..n) to its front; returns how many. */
static size_t
compact(uint64_t *v, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] != 0) {
            v[k++] = v[i];
        }
    }
    return k;
}

/* Acknowledged pushes per second in each tenth of the run (first send to last
 * acknowledgement): a rate that falls as the stored state grows shows here. */
static void
acks_by_tenth_print(const push_track_t *t, const char *side)
{
    uint64_t count[10] = {0}, end = atomic_load(&t->last_ack_ns);
    if (end <= t->t0_ns) {
        return;
    }
    uint64_t slice = (end - t->t0_ns) / 10u + 1u;
    for (unsigned i = 0; i < t->n; i++) {
        uint64_t sent = atomic_load(&t->sent_ns[i]);
        if (sent != 0 && t->ack_ns[i] != 0 && sent + t->ack_ns[i] >= t->t0_ns) {
            uint64_t d = (sent + t->ack_ns[i] - t->t0_ns) / slice;
            count[d < 10 ? d : 9]++;
        }
    }
    printf("# %s acked_per_s_by_tenth=", side);
    for (unsigned d = 0; d < 10; d++) {
        printf("%s%.0f", d ? "," : "", (double)count[d] / ((double)slice / 1e9));
    }
    printf("\n");
}

/* The end-to-end latency over the run: p50 per tenth of the message indices (the senders
 * advance together, so a tenth of the indices is roughly a tenth of the run), and when the
 * first delivery came. Shows a backlog that builds up, or a late start. */
static void
e2e_deciles_print(const push_track_t *t, const char *side)
{
    size_t per = t->n / 10u;
    uint64_t *tmp = per > 0 ? malloc(per * sizeof(*tmp)) : NULL;
    if (tmp == NULL) {
        return;
    }
    uint64_t first = UINT64_MAX;
    for (unsigned i = 0; i < t->n; i++) {
        uint64_t sent = atomic_load(&t->sent_ns[i]);
        if (t->e2e_ns[i] != 0 && sent != 0 && sent + t->e2e_ns[i] < first) {
            first = sent + t->e2e_ns[i];
        }
    }
    printf("# %s first_delivery_ms=%.1f e2e_p50_ms_by_tenth=", side,
        first != UINT64_MAX && first > t->t0_ns ? (double)(first - t->t0_ns) / 1e6 : 0);
    for (unsigned d = 0; d < 10; d++) {
        size_t k = compact(memcpy(tmp, t->e2e_ns + (size_t)d * per, per * sizeof(*tmp)), per);
        double p50 = 0, p99 = 0;
        bench_percentiles(tmp, k, &p50, &p99);
        printf("%s%.0f", d ? "," : "", p50 / 1000.0);
    }
    printf("\n");
    free(tmp);
    acks_by_tenth_print(t, side);
}

void
push_track_summarize(push_track_t *t, push_result_t *r, const char *side)
{
    uint64_t lost = 0, sent = 0;
    for (unsigned i = 0; i < t->n; i++) {
        sent += atomic_load(&t->sent_ns[i]) != 0;
        lost += t->ack_ns[i] != 0 && t->seen[i] == 0;
    }
    r->n = t->n;
    r->sent = sent;
    r->acked = atomic_load(&t->acked);
    r->delivered = atomic_load(&t->delivered);
    r->duplicates = atomic_load(&t->duplicates);
    r->redelivered_flags = atomic_load(&t->redelivered_flags);
    r->lost = lost;
    r->corrupt = atomic_load(&t->corrupt);
    r->errors = atomic_load(&t->errors);
    uint64_t la = atomic_load(&t->last_ack_ns), ld = atomic_load(&t->last_delivery_ns);
    r->push_s = la > t->t0_ns ? (double)(la - t->t0_ns) / 1e9 : 0;
    r->pushes_per_s = r->push_s > 0 ? (double)r->acked / r->push_s : 0;
    double ds = ld > t->t0_ns ? (double)(ld - t->t0_ns) / 1e9 : 0;
    r->deliveries_per_s = ds > 0 ? (double)r->delivered / ds : 0;
    e2e_deciles_print(t, side);
    bench_percentiles(t->ack_ns, compact(t->ack_ns, t->n), &r->ack_p50_us, &r->ack_p99_us);
    bench_percentiles(t->e2e_ns, compact(t->e2e_ns, t->n), &r->e2e_p50_us, &r->e2e_p99_us);
}

void
push_result_print(const char *side, const push_result_t *r)
{
    printf("side=%s n=%lu sent=%lu acked=%lu pushes_per_s=%.0f ack_p50_us=%.0f "
        "ack_p99_us=%.0f e2e_p50_us=%.0f e2e_p99_us=%.0f deliveries_per_s=%.0f "
        "delivered_unique=%lu lost=%lu duplicates=%lu redelivery_flags=%lu corrupt=%lu "
        "errors=%lu server_cpu_pct=%.0f busiest_thread_pct=%.0f client_cpu_pct=%.0f "
        "others_cpu_pct=%.0f device_flushes=%lu device_flush_avg_us=%.0f "
        "device_write_bytes_per_msg=%.0f\n", side, (unsigned long)r->n, (unsigned long)r->sent,
        (unsigned long)r->acked, r->pushes_per_s, r->ack_p50_us, r->ack_p99_us, r->e2e_p50_us,
        r->e2e_p99_us, r->deliveries_per_s, (unsigned long)r->delivered,
        (unsigned long)r->lost, (unsigned long)r->duplicates,
        (unsigned long)r->redelivered_flags, (unsigned long)r->corrupt,
        (unsigned long)r->errors, r->server_cpu_pct, r->busiest_thread_pct, r->client_cpu_pct,
        r->others_cpu_pct, (unsigned long)r->device_flushes,
        r->device_flushes > 0 ? 1000.0 * (double)r->device_flush_ms / (double)r->device_flushes
                              : 0,
        r->n > 0 ? (double)r->device_write_bytes / (double)r->n : 0);
    fflush(stdout);
}

bool
push_device_stat(const char *path, push_device_t *out)
{
    struct stat st;
    char sys[128], line[512];
    memset(out, 0, sizeof(*out));
    if (stat(path, &st) != 0) {
        return false;
    }
    snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/stat", major(st.st_dev), minor(st.st_dev));
    FILE *f = fopen(sys, "r");
    if (f == NULL) {
        return false;
    }
    unsigned long long v[17] = {0};
    int got = fgets(line, sizeof(line), f) == NULL ? 0 : sscanf(line,
        "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
        &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11],
        &v[12], &v[13], &v[14], &v[15], &v[16]);
    fclose(f);
    if (got < 16) {
        return false; /* kernels before 5.5 have no flush fields */
    }
    out->write_bytes = v[6] * 512u; /* sectors written: always 512-byte units */
    out->flushes = v[15];
    out->flush_ms = got >= 17 ? v[16] : 0;
    return true;
}

uint64_t
push_self_cpu_ns(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

void
push_machine_sample(push_machine_t *out)
{
    unsigned long long v[8] = {0};
    memset(out, 0, sizeof(*out));
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) {
        return;
    }
    int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
        &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (got == 8) {
        for (unsigned i = 0; i < 8; i++) {
            out->total += v[i];
        }
        out->busy = out->total - v[3] - v[4];
    }
}

double
push_machine_others_pct(const push_machine_t *a, const push_machine_t *b, double server_pct,
    double client_pct)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (b->total <= a->total || cpus < 1) {
        return 0;
    }
    double machine_pct = 100.0 * (double)cpus * (double)(b->busy - a->busy) /
        (double)(b->total - a->total);
    double others = machine_pct - server_pct - client_pct;
    return others > 0 ? others : 0;
}

/* ---- frames of our side ---------------------------------------------------------------------- */

/* The push of message index: envelope id "p<index>", 1 KiB content, a patient of the MPI.
 * [out] *buf, *len as hie_proto_frame_encode. */
static int
push_frame(unsigned index, unsigned patients, uint8_t **buf, size_t *len)
{
    char id[24], mrn[24];
    uint8_t doc[PUSH_DOC_BYTES];
    hie_envelope_t env = HIE__V1__ENVELOPE__INIT;
    Hie__V1__PushRequest p = HIE__V1__PUSH_REQUEST__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    HIE_ASSERT(patients > 0);
    snprintf(id, sizeof(id), "p%u", index);
    snprintf(mrn, sizeof(mrn), "H-%u", (unsigned)(((uint64_t)index * 2654435761u) % patients));
    push_doc_fill(index, doc);
    pid.org_id = (char *)(uintptr_t)SENDER_ORG;
    pid.mrn = mrn;
    d.patient = &pid;
    d.content_type = (char *)(uintptr_t)"text/plain";
    d.content = (ProtobufCBinaryData){sizeof(doc), doc};
    d.title = (char *)(uintptr_t)"Discharge summary";
    d.class_code = (char *)(uintptr_t)"discharge-summary";
    p.recipient_org = (char *)(uintptr_t)RECIPIENT_ORG;
    p.document = &d;
    env.id = id;
    env.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
    env.created_ms = hie_time_wall_ms();
    env.body_case = HIE__V1__ENVELOPE__BODY_PUSH;
    env.push = &p;
    return hie_proto_frame_encode(&env, FRAME_BYTES_MAX, buf, len);
}

/* Encodes env and writes it. */
static int
envelope_send(SSL *ssl, hie_envelope_t *env)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = hie_proto_frame_encode(env, FRAME_BYTES_MAX, &buf, &len);
    rc = rc ? rc : bench_ssl_write_all(ssl, buf, len);
    if (buf != NULL) {
        hie_mem_free(buf, len);
    }
    return rc;
}

/* Reads one frame and unpacks it. [out] *env: hie__v1__envelope__free_unpacked. */
static int
envelope_recv(SSL *ssl, uint8_t *rbuf, hie_envelope_t **env)
{
    size_t blen = 0;
    *env = NULL;
    int rc = bench_ssl_read_frame(ssl, rbuf, READ_BYTES_MAX, &blen);
    if (rc != 0) {
        return rc;
    }
    *env = hie__v1__envelope__unpack(NULL, blen, rbuf);
    return *env != NULL ? 0 : HIE_EPROTO;
}

/* True when a frame can be read without blocking (decrypted or raw bytes waiting). */
static bool
readable(SSL *ssl, int timeout_ms)
{
    if (SSL_has_pending(ssl)) {
        return true;
    }
    struct pollfd pfd = {SSL_get_fd(ssl), POLLIN, 0};
    return poll(&pfd, 1, timeout_ms) > 0;
}

static void
error_print(const char *who, const hie_envelope_t *env)
{
    static _Atomic unsigned printed;
    if (atomic_fetch_add(&printed, 1) < 5) {
        const Hie__V1__Error *e = env->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? env->error
                                                                                 : NULL;
        fprintf(stderr, "bench_push: %s: unexpected reply (body %d): %s field=%s\n", who,
            (int)env->body_case, e != NULL && e->message != NULL ? e->message : "-",
            e != NULL && e->field != NULL ? e->field : "-");
    }
}

static SSL *
tls_open(SSL_CTX *ctx, uint16_t port, int *fd)
{
    *fd = bench_tcp_connect(port);
    SSL *ssl = *fd >= 0 ? SSL_new(ctx) : NULL;
    if (ssl != NULL && (!SSL_set_fd(ssl, *fd) || SSL_connect(ssl) != 1)) {
        SSL_free(ssl);
        ssl = NULL;
    }
    return ssl;
}

static void
tls_close(SSL **ssl, int *fd)
{
    if (*ssl != NULL) {
        SSL_free(*ssl);
        *ssl = NULL;
    }
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* ---- our senders ----------------------------------------------------------------------------- */

struct ours {
    const push_opts_t *o;
    push_track_t *t;
    SSL_CTX *hosp, *clinic;
    uint16_t port;
};

struct sender {
    struct ours *u;
    unsigned k;             /* sends indices k, k + C, k + 2C, ... */
    pthread_t thread;
    int rc;
};

/* Appends the pushes the window allows to one buffer and writes it at once (one TLS record
 * per push, one write for all). [in,out] *next, *outstanding. */
static int
sender_fill(struct sender *s, SSL *ssl, uint8_t *batch, size_t cap, unsigned *next,
    unsigned *outstanding)
{
    const push_opts_t *o = s->u->o;
    push_track_t *t = s->u->t;
    unsigned first = *next, count = 0;
    size_t used = 0;
    while (*outstanding < o->window && *next < t->n && hie_time_mono_ns() < t->deadline_ns) {
        uint8_t *frame = NULL;
        size_t flen = 0;
        int rc = push_frame(*next, o->patients, &frame, &flen);
        if (rc == 0 && used + flen > cap) {
            rc = HIE_ELIMIT;
        }
        if (rc != 0) {
            return rc;
        }
        memcpy(batch + used, frame, flen);
        used += flen;
        hie_mem_free(frame, flen);
        *next += t->conns;
        (*outstanding)++;
        count++;
    }
    uint64_t now = hie_time_mono_ns();
    for (unsigned i = 0, idx = first; i < count; i++, idx += t->conns) {
        atomic_store_explicit(&t->sent_ns[idx], now, memory_order_relaxed);
    }
    return used > 0 ? bench_ssl_write_all(ssl, batch, used) : 0;
}

/* Reads one reply: a PushReply acknowledges the index of its correlation id. */
static int
sender_reply(struct sender *s, SSL *ssl, uint8_t *rbuf)
{
    hie_envelope_t *env = NULL;
    int rc = envelope_recv(ssl, rbuf, &env);
    if (rc != 0) {
        return rc;
    }
    unsigned index = env->correlation_id != NULL
        ? push_index_parse(env->correlation_id, strlen(env->correlation_id)) : UINT32_MAX;
    if (env->body_case == HIE__V1__ENVELOPE__BODY_PUSH_REPLY && index < s->u->t->n &&
        index % s->u->t->conns == s->k) {
        push_track_acked(s->u->t, index, hie_time_mono_ns());
    } else {
        atomic_fetch_add(&s->u->t->errors, 1);
        error_print("push", env);
    }
    hie__v1__envelope__free_unpacked(env, NULL);
    return 0;
}

static void *
sender_thread(void *arg)
{
    struct sender *s = arg;
    push_track_t *t = s->u->t;
    size_t cap = (size_t)s->u->o->window * (PUSH_DOC_BYTES + 512u);
    uint8_t *batch = malloc(cap), *rbuf = malloc(READ_BYTES_MAX);
    int fd = -1;
    SSL *ssl = batch != NULL && rbuf != NULL ? tls_open(s->u->hosp, s->u->port, &fd) : NULL;
    unsigned next = s->k, outstanding = 0;
    int rc = ssl == NULL ? HIE_ETLS : 0;
    /* Each round sends at least one push or reads at least one reply, so n * 2 + 2 rounds
     * bound the loop; the deadline stops the sending and a 5 s read timeout the reading. */
    for (uint64_t round = 0; rc == 0 && round < 2ull * t->n + 2u; round++) {
        rc = sender_fill(s, ssl, batch, cap, &next, &outstanding);
        if (rc != 0 || outstanding == 0) {
            break;
        }
        rc = sender_reply(s, ssl, rbuf);
        outstanding--;
        while (rc == 0 && outstanding > 0 && readable(ssl, 0)) {
            rc = sender_reply(s, ssl, rbuf);
            outstanding--;
        }
    }
    if (rc != 0) {
        fprintf(stderr, "bench_push: sender %u failed: %s\n", s->k, hie_strerror(rc));
        atomic_fetch_add(&t->errors, 1);
    }
    s->rc = rc;
    tls_close(&ssl, &fd);
    free(batch);
    free(rbuf);
    return NULL;
}

/* ---- our recipient --------------------------------------------------------------------------- */

struct recipient {
    struct ours *u;
    pthread_t thread;
    int rc;
    uint64_t seqs[PUSH_ACK_EVERY_MAX];
    unsigned pending;             /* seqs not yet acknowledged */
    uint64_t pending_since_ns;
    unsigned acks_outstanding;    /* DeliveryAck sent, reply not yet read */
    uint64_t acks_sent;
};

static int
recipient_subscribe(struct recipient *r, SSL *ssl)
{
    hie_envelope_t env = HIE__V1__ENVELOPE__INIT;
    Hie__V1__ReceiveRequest rq = HIE__V1__RECEIVE_REQUEST__INIT;
    env.id = (char *)(uintptr_t)"r1";
    env.created_ms = hie_time_wall_ms();
    rq.window = r->u->o->rx_window;
    env.body_case = HIE__V1__ENVELOPE__BODY_RECEIVE;
    env.receive = &rq;
    return envelope_send(ssl, &env);
}

static int
recipient_ack(struct recipient *r, SSL *ssl)
{
    char id[32];
    hie_envelope_t env = HIE__V1__ENVELOPE__INIT;
    Hie__V1__DeliveryAck a = HIE__V1__DELIVERY_ACK__INIT;
    HIE_ASSERT(r->pending > 0);
    HIE_ASSERT(r->pending <= PUSH_ACK_EVERY_MAX);
    snprintf(id, sizeof(id), "a%lu", (unsigned long)++r->acks_sent);
    env.id = id;
    env.created_ms = hie_time_wall_ms();
    a.n_seqs = r->pending;
    a.seqs = r->seqs;
    env.body_case = HIE__V1__ENVELOPE__BODY_DELIVERY_ACK;
    env.delivery_ack = &a;
    r->pending = 0;
    r->acks_outstanding++;
    return envelope_send(ssl, &env);
}

/* Handles one frame from the node: a delivery, or the reply to our receive or an ack. */
static int
recipient_frame(struct recipient *r, SSL *ssl, uint8_t *rbuf)
{
    hie_envelope_t *env = NULL;
    int rc = envelope_recv(ssl, rbuf, &env);
    if (rc != 0) {
        return rc;
    }
    uint64_t now = hie_time_mono_ns();
    if (env->body_case == HIE__V1__ENVELOPE__BODY_DELIVERY && env->delivery->document != NULL &&
        env->delivery->message_id != NULL) {
        const Hie__V1__Delivery *d = env->delivery;
        push_track_delivered(r->u->t, push_index_parse(d->message_id, strlen(d->message_id)),
            d->redelivery, d->document->content.data, d->document->content.len, now);
        if (r->pending == 0) {
            r->pending_since_ns = now;
        }
        r->seqs[r->pending++] = d->seq;
        rc = r->pending >= r->u->o->ack_every ? recipient_ack(r, ssl) : 0;
    } else if (env->body_case == HIE__V1__ENVELOPE__BODY_RECEIVE_REPLY) {
        atomic_store(&r->u->t->receiving, true);
    } else if (env->body_case == HIE__V1__ENVELOPE__BODY_DELIVERY_ACK_REPLY &&
               r->acks_outstanding > 0) {
        r->acks_outstanding--;
    } else if (env->body_case == HIE__V1__ENVELOPE__BODY_HEARTBEAT) {
        /* the node's keep-alive on an idle receiving connection (delivery.heartbeat_ms) */
    } else {
        atomic_fetch_add(&r->u->t->errors, 1);
        error_print("recipient", env);
    }
    hie__v1__envelope__free_unpacked(env, NULL);
    return rc;
}

/* Reads until every message is delivered, the deadline, or PUSH_QUIET_MS of nothing after the
 * senders finished; acknowledges by count or age. */
static int
recipient_loop(struct recipient *r, SSL *ssl, uint8_t *rbuf)
{
    push_track_t *t = r->u->t;
    uint64_t ack_ns = (uint64_t)r->u->o->ack_ms * 1000000ull, quiet_since = hie_time_mono_ns();
    uint64_t last_count = 0;
    int rc = 0;
    while (rc == 0 && atomic_load(&t->delivered) < t->n) {
        uint64_t now = hie_time_mono_ns(), count = atomic_load(&t->delivered);
        if (now >= t->deadline_ns) {
            break;
        }
        if (count != last_count || !atomic_load(&t->senders_done)) {
            last_count = count;
            quiet_since = now;
        } else if (now - quiet_since > (uint64_t)PUSH_QUIET_MS * 1000000ull) {
            break;
        }
        int wait_ms = 50;
        if (r->pending > 0) {
            uint64_t due = r->pending_since_ns + ack_ns;
            wait_ms = due > now ? (int)((due - now + 999999u) / 1000000u) : 0;
        }
        if (readable(ssl, wait_ms)) {
            rc = recipient_frame(r, ssl, rbuf);
        }
        if (rc == 0 && r->pending > 0 && hie_time_mono_ns() >= r->pending_since_ns + ack_ns) {
            rc = recipient_ack(r, ssl);
        }
    }
    return rc;
}

static void *
recipient_thread(void *arg)
{
    struct recipient *r = arg;
    uint8_t *rbuf = malloc(READ_BYTES_MAX);
    int fd = -1;
    SSL *ssl = rbuf != NULL ? tls_open(r->u->clinic, r->u->port, &fd) : NULL;
    int rc = ssl == NULL ? HIE_ETLS : recipient_subscribe(r, ssl);
    rc = rc ? rc : recipient_loop(r, ssl, rbuf);
    if (rc == 0 && r->pending > 0) {
        rc = recipient_ack(r, ssl);
    }
    uint64_t end = hie_time_mono_ns() + (uint64_t)DRAIN_MS * 1000000ull;
    while (rc == 0 && r->acks_outstanding > 0 && hie_time_mono_ns() < end) {
        rc = readable(ssl, 100) ? recipient_frame(r, ssl, rbuf) : 0;
    }
    if (rc != 0) {
        fprintf(stderr, "bench_push: recipient failed: %s\n", hie_strerror(rc));
        atomic_fetch_add(&r->u->t->errors, 1);
    }
    atomic_store(&r->u->t->receiving, true); /* never leave the senders waiting */
    r->rc = rc;
    tls_close(&ssl, &fd);
    free(rbuf);
    return NULL;
}

/* ---- where the node's threads spend the load ------------------------------------------------ */
/* Per thread: on-CPU and run-queue wait time, exact, from /proc/<pid>/task/<tid>/schedstat
 * before and after the load; and, with --thread-states, what a thread that is not running is
 * blocked in (fdatasync, a write, an idle wait, other), sampled every TS_PERIOD_US from its
 * state and /proc/.../syscall. The log thread is the one in fdatasync. */
#define TS_THREADS_MAX 64u
#define TS_PERIOD_US 5000u

enum ts_key { TS_FSYNC, TS_WRITE, TS_IDLE, TS_OTHER, TS_KEYS };

struct tstates {
    pid_t pid;
    bool sample;
    _Atomic bool stop;
    pthread_t thread;
    bool started;
    unsigned count;
    uint64_t t0_ns, t1_ns, deadline_ns;
    pid_t tid[TS_THREADS_MAX];
    uint64_t cpu_ns[TS_THREADS_MAX][2], wait_ns[TS_THREADS_MAX][2];
    uint32_t samples[TS_THREADS_MAX], blocked[TS_THREADS_MAX][TS_KEYS];
};

static int
ts_slot(struct tstates *ts, pid_t tid)
{
    for (unsigned i = 0; i < ts->count; i++) {
        if (ts->tid[i] == tid) {
            return (int)i;
        }
    }
    if (ts->count == TS_THREADS_MAX) {
        return -1;
    }
    ts->tid[ts->count] = tid;
    return (int)ts->count++;
}

/* Reads /proc/<pid>/task/<tid>/<file> into buf (NUL-terminated). */
static bool
ts_read(pid_t pid, pid_t tid, const char *file, char *buf, size_t cap)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", (int)pid, (int)tid, file);
    FILE *f = fopen(path, "r");
    bool ok = f != NULL && fgets(buf, (int)cap, f) != NULL;
    if (f != NULL) {
        fclose(f);
    }
    return ok;
}

/* Calls fn for every thread of ts->pid (at most TS_THREADS_MAX). */
static void
ts_each(struct tstates *ts, void (*fn)(struct tstates *, pid_t, int), int arg)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)ts->pid);
    DIR *d = opendir(dir);
    struct dirent *de;
    for (unsigned n = 0; d != NULL && n < TS_THREADS_MAX && (de = readdir(d)) != NULL;) {
        if (de->d_name[0] != '.') {
            fn(ts, (pid_t)atoi(de->d_name), arg);
            n++;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

static void
ts_schedstat(struct tstates *ts, pid_t tid, int when)
{
    char buf[128];
    unsigned long long cpu = 0, wait = 0;
    int i = ts_slot(ts, tid);
    if (i >= 0 && ts_read(ts->pid, tid, "schedstat", buf, sizeof(buf)) &&
        sscanf(buf, "%llu %llu", &cpu, &wait) == 2) {
        ts->cpu_ns[i][when] = cpu;
        ts->wait_ns[i][when] = wait;
    }
}

static void
ts_sample_one(struct tstates *ts, pid_t tid, int unused)
{
    char buf[512];
    int i = ts_slot(ts, tid);
    const char *paren = i >= 0 && ts_read(ts->pid, tid, "stat", buf, sizeof(buf))
        ? strrchr(buf, ')') : NULL;
    (void)unused;
    if (paren == NULL || paren[1] == '\0') {
        return;
    }
    ts->samples[i]++;
    if (paren[2] == 'R' || !ts_read(ts->pid, tid, "syscall", buf, sizeof(buf))) {
        return; /* running or runnable: schedstat has the exact split */
    }
    long nr = strtol(buf, NULL, 10);
    enum ts_key k = nr == 74 || nr == 75 ? TS_FSYNC                 /* fsync, fdatasync */
        : nr == 1 || nr == 18 || nr == 20 ? TS_WRITE                 /* write, pwrite64, writev */
        : nr == 0 || nr == 7 || nr == 202 || nr == 232 || nr == 271 || nr == 281 ? TS_IDLE
        : TS_OTHER;                                  /* read, poll, futex, epoll_wait, ppoll... */
    ts->blocked[i][k]++;
}

static void *
ts_thread(void *arg)
{
    struct tstates *ts = arg;
    while (!atomic_load(&ts->stop) && hie_time_mono_ns() < ts->deadline_ns) {
        ts_each(ts, ts_sample_one, 0);
        usleep(TS_PERIOD_US);
    }
    return NULL;
}

static void
ts_start(struct tstates *ts, pid_t pid, bool sample, uint64_t deadline_ns)
{
    memset(ts, 0, sizeof(*ts));
    ts->pid = pid;
    ts->sample = sample;
    ts->deadline_ns = deadline_ns;
    ts->t0_ns = hie_time_mono_ns();
    ts_each(ts, ts_schedstat, 0);
    ts->started = sample && pthread_create(&ts->thread, NULL, ts_thread, ts) == 0;
}

static double
ts_pct(uint64_t part, uint64_t whole)
{
    return whole > 0 ? 100.0 * (double)part / (double)whole : 0;
}

/* Stops the sampler; prints the busiest threads (on-CPU + run-queue wait + fdatasync). */
static void
ts_stop(struct tstates *ts, unsigned top)
{
    atomic_store(&ts->stop, true);
    if (ts->started) {
        pthread_join(ts->thread, NULL);
    }
    ts->t1_ns = hie_time_mono_ns();
    ts_each(ts, ts_schedstat, 1);
    uint64_t wall = ts->t1_ns - ts->t0_ns;
    bool shown[TS_THREADS_MAX] = {false};
    for (unsigned n = 0; n < top && n < ts->count; n++) {
        int best = -1;
        double best_busy = -1;
        for (unsigned i = 0; i < ts->count; i++) {
            double busy = ts_pct(ts->cpu_ns[i][1] - ts->cpu_ns[i][0], wall) +
                ts_pct(ts->wait_ns[i][1] - ts->wait_ns[i][0], wall) +
                ts_pct(ts->blocked[i][TS_FSYNC], ts->samples[i]);
            if (!shown[i] && busy > best_busy) {
                best = (int)i;
                best_busy = busy;
            }
        }
        shown[best] = true;
        printf("# node thread tid=%d cpu_pct=%.0f runq_wait_pct=%.0f", (int)ts->tid[best],
            ts_pct(ts->cpu_ns[best][1] - ts->cpu_ns[best][0], wall),
            ts_pct(ts->wait_ns[best][1] - ts->wait_ns[best][0], wall));
        if (ts->sample) {
            uint32_t sm = ts->samples[best];
            printf(" fdatasync_pct=%.0f write_pct=%.0f idle_wait_pct=%.0f other_blocked_pct=%.0f",
                ts_pct(ts->blocked[best][TS_FSYNC], sm), ts_pct(ts->blocked[best][TS_WRITE], sm),
                ts_pct(ts->blocked[best][TS_IDLE], sm), ts_pct(ts->blocked[best][TS_OTHER], sm));
        }
        printf("\n");
    }
}

/* ---- our side: node, data, load ------------------------------------------------------------- */

static int
patients_csv(const char *path, unsigned n)
{
    static const char *const given[] = {"James", "Mary", "John", "Aisha", "Wei", "Olga"};
    static const char *const family[] = {"Smith", "Okafor", "Nguyen", "Kowalski", "Patel"};
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -errno;
    }
    fprintf(f, "org_id,mrn,given,family,birth_date,sex,postcode\n");
    for (unsigned i = 0; i < n; i++) {
        fprintf(f, SENDER_ORG ",H-%u,%s,%s,%04u-%02u-%02u,%s,AB%u %uCD\n", i, given[i % 6],
            family[(i / 6) % 5], 1930 + (i * 7) % 90, 1 + (i * 5) % 12, 1 + (i * 3) % 28,
            i % 2 ? "male" : "female", i % 90 + 1, i % 9 + 1);
    }
    return fclose(f) == 0 ? 0 : -errno;
}

/* A fresh node in <root>/node with the data key, opt-out consent, both organizations and the
 * patients imported. */
static int
node_prepare(const push_opts_t *o, const char *root, bench_node_t *n)
{
    char dir[BENCH_PATH_BYTES], yaml[BENCH_PATH_BYTES * 2], csv[BENCH_PATH_BYTES + 32];
    char log[BENCH_PATH_BYTES + 32], pki[BENCH_PATH_BYTES + 32], state[BENCH_PATH_BYTES + 32];
    snprintf(dir, sizeof(dir), "%s/node", root);
    snprintf(pki, sizeof(pki), "%s/pki", dir);
    if (mkdir(dir, 0700) != 0 || symlink("../pki", pki) != 0) {
        return -errno;
    }
    snprintf(yaml, sizeof(yaml), "mpi: {key_file: %s/mpi.key}\nconsent: {regime: opt-out}\n"
        "audit: {checkpoint_interval_ms: 10000}\n", root);
    snprintf(csv, sizeof(csv), "%s/patients.csv", root);
    snprintf(log, sizeof(log), "%s/import.log", dir);
    snprintf(state, sizeof(state), "%s/import.state", dir);
    int rc = patients_csv(csv, o->patients);
    rc = rc ? rc : bench_node_start_with(n, dir, o->workers, "warn", yaml, 20000);
    rc = rc ? rc : bench_node_register(n, SENDER_ORG, "General Hospital", "hospital");
    rc = rc ? rc : bench_node_register(n, RECIPIENT_ORG, "Riverside Clinic", "clinic");
    const char *argv[] = {HIE_CTL_BIN, "--config", n->cfg, "mpi", "import", csv, "--state",
        state, NULL};
    rc = rc ? rc : bench_run(argv, log, IMPORT_TIMEOUT_MS);
    if (rc != 0) {
        fprintf(stderr, "bench_push: node, registration or import failed (%d); see %s\n", rc,
            dir);
    }
    return rc;
}

/* Starts the recipient, waits (bounded) until it is subscribed, then runs the senders. */
static int
ours_load(struct ours *u)
{
    static struct sender senders[PUSH_CONNS_MAX];
    static struct recipient rcpt;
    unsigned started = 0;
    memset(&rcpt, 0, sizeof(rcpt));
    rcpt.u = u;
    if (pthread_create(&rcpt.thread, NULL, recipient_thread, &rcpt) != 0) {
        return -1;
    }
    for (unsigned i = 0; i < 2000 && !atomic_load(&u->t->receiving); i++) {
        usleep(5000);
    }
    u->t->t0_ns = hie_time_mono_ns(); /* the rates count from the first push */
    for (unsigned i = 0; i < u->o->conns; i++) {
        senders[i] = (struct sender){u, i, 0, 0};
        if (pthread_create(&senders[i].thread, NULL, sender_thread, &senders[i]) != 0) {
            break;
        }
        started++;
    }
    int rc = started == u->o->conns ? 0 : -1;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(senders[i].thread, NULL);
        rc = rc ? rc : senders[i].rc;
    }
    atomic_store(&u->t->senders_done, true);
    pthread_join(rcpt.thread, NULL);
    return rc ? rc : rcpt.rc;
}

/* The load against a prepared node, with the server's and our CPU and the device flushes. */
static int
ours_measure(const push_opts_t *o, const char *root, const bench_node_t *n, push_result_t *r)
{
    struct ours u = {o, NULL, NULL, NULL, n->port};
    push_track_t t;
    bench_cpu_t c0, c1;
    push_device_t f0, f1;
    int rc = push_track_init(&t, o->n, o->conns, o->time_cap_s);
    if (rc != 0) {
        return rc;
    }
    u.t = &t;
    u.hosp = bench_tls_client_ctx(root, SENDER_ORG);
    u.clinic = bench_tls_client_ctx(root, RECIPIENT_ORG);
    bool dev = push_device_stat(root, &f0);
    printf("# load starts: node pid=%d log=%s\n", (int)n->pid, n->log); /* for perf -p */
    fflush(stdout);
    static struct tstates ts;
    ts_start(&ts, n->pid, o->thread_states, t.deadline_ns);
    push_machine_t m0, m1;
    push_machine_sample(&m0);
    bench_cpu_sample(n->pid, &c0);
    uint64_t self0 = push_self_cpu_ns();
    rc = u.hosp != NULL && u.clinic != NULL ? ours_load(&u) : HIE_ETLS;
    bench_cpu_sample(n->pid, &c1);
    push_machine_sample(&m1);
    ts_stop(&ts, 4);
    uint64_t self1 = push_self_cpu_ns();
    dev = dev && push_device_stat(root, &f1);
    pid_t busiest = 0;
    bench_cpu_delta(&c0, &c1, &r->server_cpu_pct, &r->busiest_thread_pct, &busiest);
    push_track_summarize(&t, r, "hiebroker");
    double wall_ns = (double)(c1.when_ns - c0.when_ns);
    r->client_cpu_pct = wall_ns > 0 ? 100.0 * (double)(self1 - self0) / wall_ns : 0;
    r->others_cpu_pct = push_machine_others_pct(&m0, &m1, r->server_cpu_pct, r->client_cpu_pct);
    r->device_flushes = dev ? f1.flushes - f0.flushes : 0;
    r->device_write_bytes = dev ? f1.write_bytes - f0.write_bytes : 0;
    r->device_flush_ms = dev ? f1.flush_ms - f0.flush_ms : 0;
    SSL_CTX_free(u.hosp);
    SSL_CTX_free(u.clinic);
    push_track_release(&t);
    return rc;
}

static int
ours_run(const push_opts_t *o, const char *root, push_result_t *r)
{
    bench_node_t n;
    memset(&n, 0, sizeof(n));
    int rc = node_prepare(o, root, &n);
    rc = rc ? rc : ours_measure(o, root, &n, r);
    long from = 0;
    if (n.pid > 0 && bench_node_log_report(&n, &from, 3) > 0) {
        fprintf(stderr, "bench_push: the node logged warnings or errors; see %s\n", n.log);
    }
    bench_node_stop(&n, 20000);
    return rc;
}

/* ---- baseline 1: raw LMDB -------------------------------------------------------------------- */

typedef struct lmdb_result {
    double puts_per_s, put_del_per_s;
    uint64_t device_flushes, device_write_bytes;
} lmdb_result_t;

/* The queue's key shape: recipient org, 0, seq (8 bytes big-endian): ascending, like ours. */
static size_t
lmdb_key(uint8_t *k, unsigned index)
{
    size_t n = sizeof(RECIPIENT_ORG);
    memcpy(k, RECIPIENT_ORG, n); /* with its NUL */
    hie_store_be64(k + n, (uint64_t)index + 1u);
    return n + 8u;
}

/* n puts (or deletes) of the documents, batch per synced txn. */
static int
lmdb_pass(MDB_env *env, MDB_dbi dbi, unsigned n, unsigned batch, bool del)
{
    uint8_t key[sizeof(RECIPIENT_ORG) + 8u], doc[PUSH_DOC_BYTES];
    for (unsigned i = 0; i < n;) {
        MDB_txn *txn = NULL;
        int rc = mdb_txn_begin(env, NULL, 0, &txn);
        for (unsigned end = i + batch < n ? i + batch : n; rc == 0 && i < end; i++) {
            MDB_val k = {lmdb_key(key, i), key}, v = {sizeof(doc), doc};
            if (del) {
                rc = mdb_del(txn, dbi, &k, NULL);
            } else {
                push_doc_fill(i, doc);
                rc = mdb_put(txn, dbi, &k, &v, 0);
            }
        }
        rc = rc ? rc : mdb_txn_commit(txn); /* synced: the environment has no NOSYNC flag */
        if (rc != 0) {
            if (txn != NULL) {
                mdb_txn_abort(txn);
            }
            fprintf(stderr, "bench_push: lmdb: %s\n", mdb_strerror(rc));
            return HIE_ESTORAGE;
        }
    }
    return 0;
}

static int
lmdb_run(const push_opts_t *o, const char *root, lmdb_result_t *r)
{
    char dir[BENCH_PATH_BYTES];
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi = 0;
    push_device_t f0, f1;
    snprintf(dir, sizeof(dir), "%s/lmdb", root);
    int rc = mkdir(dir, 0700) ? HIE_ESTORAGE : mdb_env_create(&env);
    rc = rc ? rc : mdb_env_set_mapsize(env, ((size_t)o->n * 3u * PUSH_DOC_BYTES) + (64u << 20));
    rc = rc ? rc : mdb_env_set_maxdbs(env, 4);
    rc = rc ? rc : mdb_env_open(env, dir, MDB_NOTLS, 0600);
    rc = rc ? rc : mdb_txn_begin(env, NULL, 0, &txn);
    rc = rc ? rc : mdb_dbi_open(txn, "q_msg", MDB_CREATE, &dbi);
    rc = rc ? rc : mdb_txn_commit(txn);
    bool dev = rc == 0 && push_device_stat(dir, &f0);
    uint64_t t0 = hie_time_mono_ns();
    rc = rc ? rc : lmdb_pass(env, dbi, o->n, o->lmdb_batch, false);
    uint64_t t1 = hie_time_mono_ns();
    rc = rc ? rc : lmdb_pass(env, dbi, o->n, o->lmdb_batch, true);
    uint64_t t2 = hie_time_mono_ns();
    dev = dev && push_device_stat(dir, &f1);
    if (env != NULL) {
        mdb_env_close(env);
    }
    if (rc != 0) {
        return rc;
    }
    r->puts_per_s = (double)o->n / ((double)(t1 - t0) / 1e9);
    r->put_del_per_s = (double)o->n / ((double)(t2 - t0) / 1e9);
    r->device_flushes = dev ? f1.flushes - f0.flushes : 0;
    r->device_write_bytes = dev ? f1.write_bytes - f0.write_bytes : 0;
    uint64_t flush_ms = dev ? f1.flush_ms - f0.flush_ms : 0;
    printf("side=lmdb n=%u batch=%u value_bytes=%u puts_per_s=%.0f put_then_del_per_s=%.0f "
        "device_flushes=%lu device_flush_avg_us=%.0f device_write_bytes_per_msg=%.0f\n", o->n,
        o->lmdb_batch, PUSH_DOC_BYTES, r->puts_per_s, r->put_del_per_s,
        (unsigned long)r->device_flushes, r->device_flushes > 0
            ? 1000.0 * (double)flush_ms / (double)r->device_flushes : 0,
        (double)r->device_write_bytes / (double)o->n);
    fflush(stdout);
    return 0;
}

/* ---- options, report ------------------------------------------------------------------------- */

static int
opts_check(const push_opts_t *o)
{
    bool ok = o->n >= 1 && o->n <= PUSH_N_MAX && o->conns >= 1 && o->conns <= PUSH_CONNS_MAX &&
              o->window >= 1 && o->window <= PUSH_WINDOW_MAX && o->rx_window >= 1 &&
              o->rx_window <= PUSH_RX_WINDOW_MAX && o->ack_every >= 1 &&
              o->ack_every <= o->rx_window && o->ack_ms >= 1 && o->ack_ms <= PUSH_ACK_MS_MAX &&
              o->workers >= 1 && o->workers <= HIE_NODE_WORKERS_MAX && o->patients >= 1 &&
              o->patients <= 1000000 && o->lmdb_batch >= 1 &&
              o->lmdb_batch <= HIE_LOG_BATCH_COMMANDS_MAX && o->time_cap_s >= 1 &&
              o->time_cap_s <= PUSH_TIME_CAP_S_MAX;
    return ok ? 0 : -1;
}

static int
opts_parse(int argc, char **argv, push_opts_t *o)
{
    static const struct option lo[] = {{"smoke", no_argument, NULL, 's'},
        {"n", required_argument, NULL, 'n'}, {"conns", required_argument, NULL, 'c'},
        {"window", required_argument, NULL, 'W'}, {"rx-window", required_argument, NULL, 'R'},
        {"ack-every", required_argument, NULL, 'K'}, {"ack-ms", required_argument, NULL, 'M'},
        {"workers", required_argument, NULL, 'w'}, {"patients", required_argument, NULL, 'P'},
        {"lmdb-batch", required_argument, NULL, 'B'},
        {"time-cap-s", required_argument, NULL, 'T'},
        {"no-rabbitmq", no_argument, NULL, 'x'}, {"keep", no_argument, NULL, 'k'},
        {"thread-states", no_argument, NULL, 'S'},
        {NULL, 0, NULL, 0}};
    *o = (push_opts_t){200000, 16, 64, 256, 64, 5, 2, 1000, HIE_LOG_BATCH_COMMANDS_MAX, 600,
        false, false, true, false};
    for (int ch; (ch = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        unsigned v = optarg != NULL ? (unsigned)strtoul(optarg, NULL, 10) : 0;
        switch (ch) {
        case 's': o->smoke = true; o->n = 2000; o->conns = 2; o->patients = 50;
                  o->time_cap_s = 60; o->rabbitmq = false; break;
        case 'n': o->n = v; break;
        case 'c': o->conns = v; break;
        case 'W': o->window = v; break;
        case 'R': o->rx_window = v; break;
        case 'K': o->ack_every = v; break;
        case 'M': o->ack_ms = v; break;
        case 'w': o->workers = v; break;
        case 'P': o->patients = v; break;
        case 'B': o->lmdb_batch = v; break;
        case 'T': o->time_cap_s = v; break;
        case 'x': o->rabbitmq = false; break;
        case 'k': o->keep = true; break;
        case 'S': o->thread_states = true; break;
        default: return -1;
        }
    }
    return opts_check(o);
}

static bool
exactly_once(const push_result_t *r)
{
    return r->acked == r->n && r->delivered == r->n && r->lost == 0 && r->duplicates == 0 &&
           r->corrupt == 0 && r->errors == 0;
}

static void
report(const push_opts_t *o, const push_result_t *ours, const lmdb_result_t *raw,
    const push_result_t *rmq, bool rmq_ok)
{
    double target = 20000.0;
    printf("result bench=push n=%u doc_bytes=%u conns=%u window=%u ops=%lu ns_per_op=%.0f "
        "pushes_per_s=%.0f ack_p50_us=%.0f ack_p99_us=%.0f e2e_p50_us=%.0f e2e_p99_us=%.0f "
        "deliveries_per_s=%.0f exactly_once=%s lmdb_puts_per_s=%.0f ratio_vs_lmdb=%.3f",
        o->n, PUSH_DOC_BYTES, o->conns, o->window, (unsigned long)ours->acked,
        ours->pushes_per_s > 0 ? 1e9 / ours->pushes_per_s : 0, ours->pushes_per_s,
        ours->ack_p50_us, ours->ack_p99_us, ours->e2e_p50_us, ours->e2e_p99_us,
        ours->deliveries_per_s, exactly_once(ours) ? "yes" : "NO", raw->puts_per_s,
        raw->puts_per_s > 0 ? ours->pushes_per_s / raw->puts_per_s : 0);
    if (rmq_ok) {
        printf(" rabbitmq_pushes_per_s=%.0f rabbitmq_ack_p99_us=%.0f rabbitmq_e2e_p99_us=%.0f "
            "ratio_vs_rabbitmq=%.2f", rmq->pushes_per_s, rmq->ack_p99_us, rmq->e2e_p99_us,
            rmq->pushes_per_s > 0 ? ours->pushes_per_s / rmq->pushes_per_s : 0);
    } else {
        printf(" rabbitmq=not-measured");
    }
    printf(" target_pushes_per_s=%.0f %s\n", target,
        ours->pushes_per_s >= target ? "met" : "MISSED");
    fflush(stdout);
}

/* RabbitMQ, when built in and asked for; prints why not otherwise. */
static bool
rabbitmq_side(const push_opts_t *o, const char *root, push_result_t *r)
{
    if (!o->rabbitmq) {
        printf("# rabbitmq baseline skipped (%s)\n", o->smoke ? "--smoke" : "--no-rabbitmq");
        return false;
    }
#ifdef HIE_BENCH_RABBITMQ
    if (push_rabbitmq_run(o, root, r) == 0) {
        return true;
    }
    printf("# rabbitmq baseline failed (reason above); our side is reported alone\n");
#else
    (void)root;
    (void)r;
    printf("# rabbitmq baseline not built: librabbitmq was not found at configure time (run "
        "deploy/install-bench-deps.sh rabbitmq, then re-run cmake)\n");
#endif
    return false;
}

int
main(int argc, char **argv)
{
    push_opts_t o;
    if (opts_parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: bench_push [--smoke] [--n N] [--conns C] [--window W<=64] "
            "[--rx-window R<=256] [--ack-every K<=R] [--ack-ms MS] [--workers N] "
            "[--patients P] [--lmdb-batch B<=1024] [--time-cap-s T] [--no-rabbitmq] "
            "[--thread-states] [--keep]\n");
        return 2;
    }
    char root[BENCH_ROOT_BYTES], key[BENCH_PATH_BYTES];
    bench_rlimit_raise();
    int rc = bench_setup(root, sizeof(root), o.keep);
    rc = rc ? rc : bench_pki_create(root);
    snprintf(key, sizeof(key), "%s/mpi.key", root);
    rc = rc ? rc : hie_mpi_key_generate(key);
    if (rc != 0) {
        fprintf(stderr, "bench_push: setup failed (%d)\n", rc);
        return 1;
    }
    printf("# bench_push n=%u doc_bytes=%u conns=%u window=%u rx_window=%u ack_every=%u "
        "ack_ms=%u workers=%u patients=%u lmdb_batch=%u dir=%s\n", o.n, PUSH_DOC_BYTES,
        o.conns, o.window, o.rx_window, o.ack_every, o.ack_ms, o.workers, o.patients,
        o.lmdb_batch, root);
    fflush(stdout);
    push_result_t ours = {0}, rmq = {0};
    lmdb_result_t raw = {0};
    rc = ours_run(&o, root, &ours);
    push_result_print("hiebroker", &ours);
    rc = rc ? rc : lmdb_run(&o, root, &raw);
    bool rmq_ok = rc == 0 && rabbitmq_side(&o, root, &rmq);
    if (rmq_ok) {
        push_result_print("rabbitmq", &rmq);
    }
    report(&o, &ours, &raw, &rmq, rmq_ok);
    return rc == 0 && exactly_once(&ours) ? 0 : 1;
}
