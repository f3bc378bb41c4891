/*
 * bench_fanout.c - one admission (ADT A01) fanned out to many subscribers (issue 5).
 *
 * Set-up: the development PKI plus one member certificate per clinic (clinic-001 ...), issued
 * once into the benchmark's temporary directory; a node with the default consent and audit
 * configuration (opt-in, every notification decided and audited) and the MPI data key; the
 * hospital and the clinics registered with hiectl; one patient imported with hiectl mpi import
 * as the hospital's H-1 and as each clinic's C-<i>, all linked to one EUID (see patient_csv);
 * and the hospital's directive for H-1 (permit clinics, treatment, notify and push), without
 * which opt-in discloses nothing. Each clinic opens one TLS connection with its own
 * certificate, subscribes to its own MRN (SCOPE_PATIENTS) and asks to receive on that
 * connection. Two receiver threads poll the connections, time each delivery as soon as its
 * bytes are read, and acknowledge it (one DeliveryAck per connection per wake-up), as a client
 * would.
 *
 * Measured, one event at a time (the next A01 leaves when every subscriber has the previous
 * one, or after WAIT_MS): the end-to-end latency from the hospital's send to each subscriber's
 * receipt, p50/p99 over all (event, subscriber) pairs; the time to the first and to the last
 * subscriber of each event; the hospital's acknowledgement (AdtReply) latency. The first
 * --warmup events are not counted. Baselines in the same run, on the same connections: the
 * node's Ping round trip on the hospital's connection, and the push of one document from the
 * hospital to one clinic (send to receipt, and its PushReply): the same durable queue, consent
 * decision and audit record, for one recipient instead of N.
 *
 * Bounds: --events and --seconds bound the fan-out phase, WAIT_MS every wait for a reply or a
 * delivery, BENCH_SERVER_LIFETIME_NS the receiver threads; every read loop has a count bound.
 *
 *   bench_fanout [--smoke] [--subs N] [--events N] [--seconds S] [--pushes N] [--pings N]
 *                [--warmup N] [--workers N] [--ack-batch N] [--settle] [--keep]
 *
 * Diagnostics (every acknowledgement is a command through the durable log): --ack-batch N, a
 * subscriber acknowledges once it holds N deliveries (default 1: every delivery at once);
 * --settle, the next event leaves only once every acknowledgement so far has been applied (its
 * DeliveryAckReply read), so an event never queues behind the previous one's acknowledgements.
 */
#include "harness.h"

#include "hie/mpi_store.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SUBS_MAX 200u
#define SLOTS_MAX 10000u          /* warm-up plus measured events */
#define PUSHES_MAX 1000u
#define PINGS_MAX 10000u
#define RECV_THREADS 2u           /* one per core of the reference machine */
#define CONN_BUF_BYTES (256u * 1024u)
#define REPLY_BYTES_MAX (1u << 20)
#define READS_PER_WAKE_MAX 256u
#define ACKS_PER_FRAME_MAX 64u    /* below HIE_DELIVERY_ACK_SEQS_MAX and the receive window */
#define RECEIVE_WINDOW 32u
#define WAIT_MS 5000u             /* a reply, or every receipt of one event or push */
#define CALL_FRAMES_MAX 64u       /* frames read while waiting for one reply */
#define HOSP "general-hospital"
#define HOSP_MRN "H-1"
#define MUT(s) ((char *)(uintptr_t)(s)) /* protobuf-c takes char *; never written through */

_Static_assert(ACKS_PER_FRAME_MAX <= HIE_DELIVERY_ACK_SEQS_MAX, "one ack frame is valid");
_Static_assert(RECEIVE_WINDOW <= ACKS_PER_FRAME_MAX, "a full window fits in one ack frame");

struct opts {
    unsigned subs, events, seconds, pushes, pings, warmup, workers, ack_batch;
    bool smoke, keep, settle;
};

/* What the receiver threads fill in and the main thread waits on. recv_ns[slot * subs + sub]
 * is written once by the thread that owns connection sub and read by main after the join. */
struct shared {
    unsigned subs, slots, pushes, ack_batch;
    uint64_t *recv_ns;
    _Atomic unsigned *count;                /* per slot: subscribers that have it */
    _Atomic uint64_t push_recv_ns[PUSHES_MAX];
    sem_t progress;                         /* posted when an event or a push is complete */
    _Atomic bool stop;
    _Atomic uint64_t errors, duplicates, unexpected, acks_sent;
    _Atomic uint64_t acks_confirmed;        /* DeliveryAckReply.acknowledged, summed */
};

struct conn {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
    unsigned index;
    bool dead;
    uint8_t *buf;
    size_t len;
    uint64_t acks[ACKS_PER_FRAME_MAX];
    size_t acks_count;
    uint64_t ack_frames;
};

struct receiver {
    struct shared *sh;
    struct conn *conns;
    unsigned first, count;
    pthread_t thread;
};

/* ---- frames ----------------------------------------------------------------------------- */

static void
req_init(hie_envelope_t *env, const char *id, Hie__V1__PurposeOfUse purpose)
{
    hie__v1__envelope__init(env);
    env->id = MUT(id);
    env->purpose = purpose;
    env->created_ms = hie_time_wall_ms();
}

/* Encodes env and writes it on a blocking connection. */
static int
send_env(SSL *ssl, const hie_envelope_t *env)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    int rc = hie_proto_frame_encode(env, REPLY_BYTES_MAX, &frame, &len);
    rc = rc ? rc : bench_ssl_write_all(ssl, frame, len);
    if (frame != NULL) {
        hie_mem_free(frame, len);
    }
    return rc;
}

/* Reads frames on a blocking connection until the reply to id (heartbeats and anything else
 * unsolicited are dropped; none is expected there). [out] *reply: free_unpacked by the caller.
 * [out] *reply_ns: when its bytes were read. */
static int
recv_reply(SSL *ssl, const char *id, uint8_t *rbuf, hie_envelope_t **reply, uint64_t *reply_ns)
{
    *reply = NULL;
    for (unsigned i = 0; i < CALL_FRAMES_MAX; i++) {
        size_t blen = 0;
        int rc = bench_ssl_read_frame(ssl, rbuf, REPLY_BYTES_MAX, &blen);
        if (rc != 0) {
            return rc;
        }
        *reply_ns = hie_time_mono_ns();
        hie_envelope_t *env = hie__v1__envelope__unpack(NULL, blen, rbuf);
        if (env == NULL) {
            return HIE_EPROTO;
        }
        if (env->correlation_id != NULL && strcmp(env->correlation_id, id) == 0) {
            *reply = env;
            return 0;
        }
        hie__v1__envelope__free_unpacked(env, NULL);
    }
    return HIE_EPROTO;
}

/* One request and its reply of the expected kind (an Error is printed and refused). */
static int
call(SSL *ssl, hie_envelope_t *req, uint8_t *rbuf, int want, hie_envelope_t **reply)
{
    uint64_t t = 0;
    int rc = send_env(ssl, req);
    rc = rc ? rc : recv_reply(ssl, req->id, rbuf, reply, &t);
    if (rc == 0 && (int)(*reply)->body_case != want) {
        const Hie__V1__Error *e = (*reply)->body_case == HIE__V1__ENVELOPE__BODY_ERROR
                                      ? (*reply)->error : NULL;
        fprintf(stderr, "bench: %s: unexpected reply %d: %s (%s)\n", req->id,
            (int)(*reply)->body_case, e ? e->message : "?", e ? e->field : "");
        hie__v1__envelope__free_unpacked(*reply, NULL);
        *reply = NULL;
        rc = HIE_EINVAL;
    }
    return rc;
}

static int
call_ok(SSL *ssl, hie_envelope_t *req, uint8_t *rbuf, int want)
{
    hie_envelope_t *reply = NULL;
    int rc = call(ssl, req, rbuf, want, &reply);
    if (reply != NULL) {
        hie__v1__envelope__free_unpacked(reply, NULL);
    }
    return rc;
}

/* ---- receiver threads ------------------------------------------------------------------- */

/* A notification for slot k ("V<k>") reached subscriber c at t. */
static void
notification_note(struct shared *sh, const struct conn *c, const Hie__V1__Delivery *d,
    uint64_t t)
{
    const Hie__V1__Document *doc = d->document;
    Hie__V1__Notification *n = doc != NULL ? hie__v1__notification__unpack(NULL,
        doc->content.len, doc->content.data) : NULL;
    const char *visit = n != NULL && n->encounter != NULL ? n->encounter->visit_id : NULL;
    unsigned long k = visit != NULL && visit[0] == 'V' ? strtoul(visit + 1, NULL, 10) : ULONG_MAX;
    if (k >= sh->slots) {
        atomic_fetch_add(&sh->unexpected, 1);
    } else if (sh->recv_ns[k * sh->subs + c->index] != 0) {
        atomic_fetch_add(&sh->duplicates, 1);
    } else {
        sh->recv_ns[k * sh->subs + c->index] = t;
        if (atomic_fetch_add(&sh->count[k], 1) + 1 == sh->subs) {
            sem_post(&sh->progress);
        }
    }
    if (n != NULL) {
        hie__v1__notification__free_unpacked(n, NULL);
    }
}

/* A pushed document "general-hospital:p<j>" reached its recipient at t. */
static void
push_note(struct shared *sh, const Hie__V1__Delivery *d, uint64_t t)
{
    const char *colon = d->message_id != NULL ? strchr(d->message_id, ':') : NULL;
    unsigned long j = colon != NULL && colon[1] == 'p' ? strtoul(colon + 2, NULL, 10)
                                                        : ULONG_MAX;
    uint64_t none = 0;
    if (j >= sh->pushes) {
        atomic_fetch_add(&sh->unexpected, 1);
    } else if (atomic_compare_exchange_strong(&sh->push_recv_ns[j], &none, t)) {
        sem_post(&sh->progress);
    } else {
        atomic_fetch_add(&sh->duplicates, 1);
    }
}

/* One frame body read on c at t: deliveries are noted and queued for acknowledgement. */
static void
frame_handle(struct shared *sh, struct conn *c, const uint8_t *body, size_t len, uint64_t t)
{
    hie_envelope_t *env = hie__v1__envelope__unpack(NULL, len, body);
    if (env == NULL) {
        atomic_fetch_add(&sh->errors, 1);
        return;
    }
    if (env->body_case == HIE__V1__ENVELOPE__BODY_DELIVERY) {
        const Hie__V1__Delivery *d = env->delivery;
        if (d->subscription_id != NULL && d->subscription_id[0] != '\0') {
            notification_note(sh, c, d, t);
        } else {
            push_note(sh, d, t);
        }
        HIE_ASSERT(c->acks_count < ACKS_PER_FRAME_MAX); /* the window bounds it */
        c->acks[c->acks_count++] = d->seq;
    } else if (env->body_case == HIE__V1__ENVELOPE__BODY_DELIVERY_ACK_REPLY) {
        atomic_fetch_add(&sh->acks_confirmed, env->delivery_ack_reply->acknowledged);
        sem_post(&sh->progress);
    } else if (env->body_case == HIE__V1__ENVELOPE__BODY_ERROR) {
        atomic_fetch_add(&sh->errors, 1);
    } else if (env->body_case != HIE__V1__ENVELOPE__BODY_HEARTBEAT) {
        atomic_fetch_add(&sh->unexpected, 1);
    }
    hie__v1__envelope__free_unpacked(env, NULL);
}

/* Takes every complete frame out of c's buffer. */
static int
frames_take(struct shared *sh, struct conn *c, uint64_t t)
{
    size_t off = 0;
    for (unsigned i = 0; i < CONN_BUF_BYTES / HIE_PROTO_FRAME_HEADER_BYTES; i++) {
        uint32_t body = 0;
        if (c->len - off < HIE_PROTO_FRAME_HEADER_BYTES) {
            break;
        }
        int rc = hie_proto_frame_header(hie_span(c->buf + off, HIE_PROTO_FRAME_HEADER_BYTES),
            CONN_BUF_BYTES - HIE_PROTO_FRAME_HEADER_BYTES, &body);
        if (rc != 0) {
            return rc;
        }
        if (c->len - off - HIE_PROTO_FRAME_HEADER_BYTES < body) {
            break;
        }
        frame_handle(sh, c, c->buf + off + HIE_PROTO_FRAME_HEADER_BYTES, body, t);
        off += HIE_PROTO_FRAME_HEADER_BYTES + body;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    return 0;
}

/* Reads what c has (non-blocking), timing each read as it returns. */
static int
conn_read(struct shared *sh, struct conn *c)
{
    for (unsigned i = 0; i < READS_PER_WAKE_MAX; i++) {
        HIE_ASSERT(c->len < CONN_BUF_BYTES);
        int n = SSL_read(c->ssl, c->buf + c->len, (int)(CONN_BUF_BYTES - c->len));
        if (n <= 0) {
            int e = SSL_get_error(c->ssl, n);
            return e == SSL_ERROR_WANT_READ ? 0 : HIE_ETLS;
        }
        uint64_t t = hie_time_mono_ns();
        c->len += (size_t)n;
        int rc = frames_take(sh, c, t);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Writes a whole frame on a non-blocking connection, waiting at most WAIT_MS. */
static int
write_nb(struct conn *c, const uint8_t *buf, size_t len)
{
    uint64_t deadline = hie_time_mono_ns() + (uint64_t)WAIT_MS * 1000000u;
    for (unsigned i = 0; i < 100000u && hie_time_mono_ns() < deadline; i++) {
        int n = SSL_write(c->ssl, buf, (int)len);
        if (n > 0) {
            return (size_t)n == len ? 0 : HIE_ETLS;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) {
            return HIE_ETLS;
        }
        struct pollfd p = {c->fd, e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, 0};
        (void)poll(&p, 1, 10);
    }
    return HIE_ETIMEDOUT;
}

/* Acknowledges what c received since the last call, in one DeliveryAck. */
static int
conn_ack(struct shared *sh, struct conn *c)
{
    char id[32];
    hie_envelope_t env;
    Hie__V1__DeliveryAck a = HIE__V1__DELIVERY_ACK__INIT;
    snprintf(id, sizeof(id), "a%u-%lu", c->index, (unsigned long)c->ack_frames++);
    req_init(&env, id, HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED);
    a.n_seqs = c->acks_count;
    a.seqs = c->acks;
    env.body_case = HIE__V1__ENVELOPE__BODY_DELIVERY_ACK;
    env.delivery_ack = &a;
    uint8_t *frame = NULL;
    size_t len = 0;
    int rc = hie_proto_frame_encode(&env, REPLY_BYTES_MAX, &frame, &len);
    rc = rc ? rc : write_nb(c, frame, len);
    if (frame != NULL) {
        hie_mem_free(frame, len);
    }
    atomic_fetch_add(&sh->acks_sent, c->acks_count);
    c->acks_count = 0;
    return rc;
}

/* A connection that failed is left out of the poll set and counted once. */
static void
conn_fail(struct shared *sh, struct conn *c, struct pollfd *p, int rc)
{
    fprintf(stderr, "bench: subscriber %u: connection failed: %s\n", c->index + 1,
        hie_strerror(rc));
    atomic_fetch_add(&sh->errors, 1);
    c->dead = true;
    p->fd = -1;
}

static void *
receiver_thread(void *arg)
{
    struct receiver *r = arg;
    struct pollfd pfd[SUBS_MAX];
    uint64_t end_ns = hie_time_mono_ns() + BENCH_SERVER_LIFETIME_NS;
    HIE_ASSERT(r->count <= SUBS_MAX);
    for (unsigned i = 0; i < r->count; i++) {
        pfd[i] = (struct pollfd){r->conns[r->first + i].fd, POLLIN, 0};
    }
    while (!atomic_load(&r->sh->stop) && hie_time_mono_ns() < end_ns) {
        int n = poll(pfd, r->count, 100);
        if (n < 0 && errno != EINTR) {
            atomic_fetch_add(&r->sh->errors, 1);
            break;
        }
        for (unsigned i = 0; n > 0 && i < r->count; i++) {
            struct conn *c = &r->conns[r->first + i];
            int rc = pfd[i].revents != 0 && !c->dead ? conn_read(r->sh, c) : 0;
            if (rc != 0) {
                conn_fail(r->sh, c, &pfd[i], rc);
            }
        }
        for (unsigned i = 0; i < r->count; i++) { /* after the reads: timing comes first */
            struct conn *c = &r->conns[r->first + i];
            int rc = c->acks_count >= r->sh->ack_batch && !c->dead ? conn_ack(r->sh, c) : 0;
            if (rc != 0) {
                conn_fail(r->sh, c, &pfd[i], rc);
            }
        }
    }
    return NULL;
}

/* ---- set-up ----------------------------------------------------------------------------- */

static double
secs_since(uint64_t t0)
{
    return (double)(hie_time_mono_ns() - t0) / 1e9;
}

static void
clinic_name(unsigned i, char *out, size_t bytes)
{
    snprintf(out, bytes, "clinic-%03u", i + 1);
}

/* Issues clinic-001..clinic-<subs> into <root>/pki with pki.sh, in one bash process. */
static int
clinic_certs(const char *root, unsigned subs)
{
    char script[BENCH_PATH_BYTES], pki[BENCH_PATH_BYTES], log[BENCH_PATH_BYTES], n[16];
    snprintf(script, sizeof(script), "%s/deploy/pki.sh", HIE_SOURCE_DIR);
    snprintf(pki, sizeof(pki), "%s/pki", root);
    snprintf(log, sizeof(log), "%s/pki-clinics.log", root);
    snprintf(n, sizeof(n), "%u", subs);
    const char *argv[] = {"/bin/bash", "-c",
        "for i in $(seq -f %03g 1 \"$3\"); do "
        "bash \"$1\" issue \"$2\" --kind member --name \"clinic-$i\" || exit 1; done",
        "pki-clinics", script, pki, n, NULL};
    int rc = bench_run(argv, log, 600000);
    if (rc != 0) {
        fprintf(stderr, "bench: issuing clinic certificates failed (%d); see %s\n", rc, log);
    }
    return rc;
}

/* The patient as the hospital (H-1) and every clinic (C-<i>) know them, all linked to one
 * EUID by the import. Names, birth date, sex, postcode and city are the same everywhere; a
 * feed is matched only against blocks of at most HIE_MPI_FEED_BLOCK_CAP records (a value that
 * common says little), so with identical records the 17th would find no candidate and become
 * a new person. The phone numbers and street lines therefore go in overlapping groups of
 * LINK_GROUP records (a patient's phone and address differ between practices anyway): every
 * record shares a small phone or street block with a record imported before it, and agrees on
 * everything else. */
#define LINK_GROUP 12u
_Static_assert(LINK_GROUP < HIE_MPI_FEED_BLOCK_CAP, "each group's block stays under the cap");

static void
patient_row(FILE *f, const char *org, const char *mrn, unsigned record)
{
    unsigned phone = record / LINK_GROUP, street = (record + LINK_GROUP / 2) / LINK_GROUP;
    fprintf(f, "%s,%s,Amara,Okafor,1961-04-17,female,LS1 4AP,Leeds,0113 496 %04u,"
        "%u Park Row\n", org, mrn, 100 + phone, 10 + street);
}

/* Clinics first .. first + n - 1 (0-based), and the hospital too when first is 0. */
static int
patient_csv(const char *path, unsigned first, unsigned n)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -errno;
    }
    fprintf(f, "org_id,mrn,given,family,birth_date,sex,postcode,city,phone,address\n");
    if (first == 0) {
        patient_row(f, HOSP, HOSP_MRN, 0);
    }
    for (unsigned i = first; i < first + n; i++) {
        char org[24], mrn[24];
        clinic_name(i, org, sizeof(org));
        snprintf(mrn, sizeof(mrn), "C-%u", i + 1);
        patient_row(f, org, mrn, i + 1);
    }
    return fclose(f) == 0 ? 0 : -errno;
}

/* An EUID takes this many records by automatic links; a record past it waits for review. */
#define AUTO_LINK_RECORDS 64u

/* The open review item of clinic org's record, from a `hiectl mpi review list` output; 0 if
 * none. */
static unsigned long long
review_of(const char *list_path, const char *org)
{
    FILE *f = fopen(list_path, "r");
    char line[1024], want[48];
    unsigned long long id = 0;
    snprintf(want, sizeof(want), " org=%s ", org);
    while (f != NULL && id == 0 && fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, "status=open") != NULL && strstr(line, want) != NULL) {
            id = strtoull(line + strlen("review="), NULL, 10);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return id;
}

/* Clinic i's record, past what an EUID takes by automatic links: imported (it waits for
 * review against the patient's EUID), then linked by the operator, as an HIE would for a
 * patient known at more than 63 practices. */
static int
member_link(const bench_node_t *n, const char *root, unsigned i)
{
    char csv[BENCH_PATH_BYTES], state[BENCH_PATH_BYTES], log[BENCH_PATH_BYTES], org[24];
    char id[32];
    snprintf(csv, sizeof(csv), "%s/patient-%u.csv", root, i + 1);
    snprintf(state, sizeof(state), "%s/patient-%u.csv.hieimport", root, i + 1);
    snprintf(log, sizeof(log), "%s/review.log", root);
    clinic_name(i, org, sizeof(org));
    int rc = patient_csv(csv, i, 1);
    const char *imp[] = {HIE_CTL_BIN, "--config", n->cfg, "mpi", "import", csv, "--state",
        state, NULL};
    const char *list[] = {HIE_CTL_BIN, "--config", n->cfg, "mpi", "review", "list", NULL};
    rc = rc ? rc : bench_run(imp, log, 60000);
    rc = rc ? rc : bench_run(list, log, 60000);
    unsigned long long item = rc == 0 ? review_of(log, org) : 0;
    snprintf(id, sizeof(id), "%llu", item);
    const char *link[] = {HIE_CTL_BIN, "--config", n->cfg, "mpi", "review", "link", id, NULL};
    return rc != 0 ? rc : item == 0 ? -ENOENT : bench_run(link, log, 60000);
}

/* Registers the hospital and the clinics, then imports the patient. */
static int
members_add(const bench_node_t *n, const char *root, unsigned subs)
{
    char csv[BENCH_PATH_BYTES], state[BENCH_PATH_BYTES], log[BENCH_PATH_BYTES];
    int rc = bench_node_register(n, HOSP, "General Hospital", "hospital");
    for (unsigned i = 0; rc == 0 && i < subs; i++) {
        char org[24], name[32];
        clinic_name(i, org, sizeof(org));
        snprintf(name, sizeof(name), "Clinic %03u", i + 1);
        rc = bench_node_register(n, org, name, "clinic");
    }
    snprintf(csv, sizeof(csv), "%s/patient.csv", root);
    snprintf(state, sizeof(state), "%s/patient.csv.hieimport", root);
    snprintf(log, sizeof(log), "%s/import.log", root);
    unsigned auto_linked = subs + 1 <= AUTO_LINK_RECORDS ? subs : AUTO_LINK_RECORDS - 1;
    rc = rc ? rc : patient_csv(csv, 0, auto_linked);
    const char *argv[] = {HIE_CTL_BIN, "--config", n->cfg, "mpi", "import", csv, "--state",
        state, NULL};
    rc = rc ? rc : bench_run(argv, log, 120000);
    for (unsigned i = auto_linked; rc == 0 && i < subs; i++) {
        rc = member_link(n, root, i);
    }
    if (rc != 0) {
        fprintf(stderr, "bench: registration or import failed (%d); see %s\n", rc, root);
    }
    return rc;
}

/* The hospital's directive for H-1: clinics may be notified and sent documents, for
 * treatment (the default regime is opt-in: without it nothing would be disclosed). */
static int
consent_file(SSL *hosp, uint8_t *rbuf)
{
    hie_envelope_t env;
    Hie__V1__ConsentSubmitRequest s = HIE__V1__CONSENT_SUBMIT_REQUEST__INIT;
    Hie__V1__ConsentDirective d = HIE__V1__CONSENT_DIRECTIVE__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__ConsentProvision p = HIE__V1__CONSENT_PROVISION__INIT;
    Hie__V1__ConsentActor actor = HIE__V1__CONSENT_ACTOR__INIT;
    Hie__V1__ConsentActor *actors[1] = {&actor};
    Hie__V1__PurposeOfUse purposes[1] = {HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT};
    Hie__V1__ConsentAction actions[2] = {HIE__V1__CONSENT_ACTION__CONSENT_ACTION_NOTIFY,
        HIE__V1__CONSENT_ACTION__CONSENT_ACTION_PUSH};
    req_init(&env, "c1", HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT);
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT(HOSP_MRN);
    actor.role = HIE__V1__ROLE__ROLE_CLINIC;
    p.type = HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
    p.n_actors = 1;
    p.actors = actors;
    p.n_purposes = 1;
    p.purposes = purposes;
    p.n_actions = 2;
    p.actions = actions;
    d.patient = &pid;
    d.status = HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE;
    d.date_ms = hie_time_wall_ms() - 86400000;
    d.provision = &p;
    s.directive = &d;
    env.body_case = HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT;
    env.consent_submit = &s;
    return call_ok(hosp, &env, rbuf, HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT_REPLY);
}

/* Blocking TLS connection with the identity of member (its context is kept in *ctx). */
static int
tls_open(const char *root, const char *member, uint16_t port, SSL_CTX **ctx, SSL **ssl,
    int *fd)
{
    *ctx = bench_tls_client_ctx(root, member);
    *ssl = NULL;
    *fd = *ctx != NULL ? bench_tcp_connect(port) : -1;
    if (*fd < 0) {
        return HIE_ETLS;
    }
    *ssl = SSL_new(*ctx);
    if (*ssl == NULL || SSL_set_fd(*ssl, *fd) != 1 || SSL_connect(*ssl) != 1) {
        return HIE_ETLS;
    }
    return 0;
}

static void
tls_close(SSL_CTX **ctx, SSL **ssl, int *fd)
{
    if (*ssl != NULL) {
        SSL_free(*ssl);
        *ssl = NULL;
    }
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    SSL_CTX_free(*ctx);
    *ctx = NULL;
}

/* Subscriber c subscribes to its own MRN and asks for its deliveries on this connection. */
static int
clinic_subscribe(struct conn *c, uint8_t *rbuf)
{
    char mrn[24], id[24];
    char *mrns[1] = {mrn};
    hie_envelope_t env;
    Hie__V1__SubscribeRequest s = HIE__V1__SUBSCRIBE_REQUEST__INIT;
    Hie__V1__ReceiveRequest r = HIE__V1__RECEIVE_REQUEST__INIT;
    snprintf(mrn, sizeof(mrn), "C-%u", c->index + 1);
    snprintf(id, sizeof(id), "s%u", c->index);
    req_init(&env, id, HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED);
    s.scope = HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_PATIENTS;
    s.n_mrns = 1;
    s.mrns = mrns;
    env.body_case = HIE__V1__ENVELOPE__BODY_SUBSCRIBE;
    env.subscribe = &s;
    int rc = call_ok(c->ssl, &env, rbuf, HIE__V1__ENVELOPE__BODY_SUBSCRIBE_REPLY);
    snprintf(id, sizeof(id), "r%u", c->index);
    req_init(&env, id, HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED);
    r.window = RECEIVE_WINDOW;
    env.body_case = HIE__V1__ENVELOPE__BODY_RECEIVE;
    env.receive = &r;
    return rc ? rc : call_ok(c->ssl, &env, rbuf, HIE__V1__ENVELOPE__BODY_RECEIVE_REPLY);
}

/* Opens, subscribes and switches to non-blocking every subscriber's connection. */
static int
clinics_open(const char *root, uint16_t port, struct conn *conns, unsigned subs,
    uint8_t *rbuf)
{
    for (unsigned i = 0; i < subs; i++) {
        struct conn *c = &conns[i];
        char org[24];
        clinic_name(i, org, sizeof(org));
        c->index = i;
        c->buf = malloc(CONN_BUF_BYTES);
        int rc = c->buf == NULL ? HIE_ENOMEM : tls_open(root, org, port, &c->ctx, &c->ssl,
            &c->fd);
        rc = rc ? rc : clinic_subscribe(c, rbuf);
        if (rc == 0 && fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) != 0) {
            rc = -errno;
        }
        if (rc != 0) {
            fprintf(stderr, "bench: %s: connect or subscribe failed: %s\n", org,
                hie_strerror(rc));
            return rc;
        }
    }
    return 0;
}

/* ---- the measured phases ---------------------------------------------------------------- */

/* Waits (at most WAIT_MS) until done(sh, k); posts for other items are consumed harmlessly,
 * since the condition is checked again after each. */
static bool
wait_for(struct shared *sh, bool (*done)(struct shared *, unsigned), unsigned k)
{
    uint64_t deadline = hie_time_mono_ns() + (uint64_t)WAIT_MS * 1000000u;
    for (unsigned i = 0; i < 1000000u && !done(sh, k); i++) {
        uint64_t now = hie_time_mono_ns();
        if (now >= deadline) {
            return false;
        }
        uint64_t step_ns = deadline - now < 100000000u ? deadline - now : 100000000u;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + step_ns;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        (void)sem_timedwait(&sh->progress, &ts);
    }
    return done(sh, k);
}

static bool
event_done(struct shared *sh, unsigned k)
{
    return atomic_load(&sh->count[k]) >= sh->subs;
}

/* --settle: every delivery so far (the pushes, events 0..k) is acknowledged and applied. */
static bool
acks_done(struct shared *sh, unsigned k)
{
    return atomic_load(&sh->acks_confirmed) >= sh->pushes + (uint64_t)(k + 1) * sh->subs;
}

static bool
push_done(struct shared *sh, unsigned j)
{
    return atomic_load(&sh->push_recv_ns[j]) != 0;
}

struct lat {
    uint64_t *ns;
    size_t n;
    double p50_us, p99_us;
};

static void
lat_add(struct lat *l, uint64_t ns)
{
    l->ns[l->n++] = ns;
}

static void
lat_done(struct lat *l)
{
    bench_percentiles(l->ns, l->n, &l->p50_us, &l->p99_us);
}

/* Ping round trips on the hospital's connection. */
static int
phase_ping(SSL *hosp, unsigned pings, uint8_t *rbuf, struct lat *out)
{
    static const uint8_t payload[64];
    for (unsigned i = 0; i < pings; i++) {
        char id[24];
        uint8_t *frame = NULL;
        size_t len = 0, blen = 0;
        snprintf(id, sizeof(id), "g%u", i);
        int rc = bench_ping_frame(id, payload, sizeof(payload), &frame, &len);
        uint64_t t0 = hie_time_mono_ns();
        rc = rc ? rc : bench_ssl_write_all(hosp, frame, len);
        rc = rc ? rc : bench_ssl_read_frame(hosp, rbuf, REPLY_BYTES_MAX, &blen);
        uint64_t t1 = hie_time_mono_ns();
        rc = rc ? rc : bench_reply_check(rbuf, blen, id, false);
        if (frame != NULL) {
            hie_mem_free(frame, len);
        }
        if (rc != 0) {
            return rc;
        }
        lat_add(out, t1 - t0);
    }
    lat_done(out);
    return 0;
}

/* Push j: one small document about H-1 from the hospital to clinic-001. */
static int
push_send(SSL *hosp, unsigned j, uint8_t *rbuf, uint64_t *ack_ns)
{
    static const char note[] = "Discharge summary: admitted with community-acquired pneumonia, "
        "treated with oral antibiotics for five days, discharged home; follow up in clinic in "
        "two weeks with a chest X-ray. Medications: amoxicillin 500 mg three times a day.";
    char id[24], to[24];
    hie_envelope_t env, *reply = NULL;
    Hie__V1__PushRequest p = HIE__V1__PUSH_REQUEST__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    snprintf(id, sizeof(id), "p%u", j);
    clinic_name(0, to, sizeof(to));
    req_init(&env, id, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT);
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT(HOSP_MRN);
    d.patient = &pid;
    d.content_type = MUT("text/plain");
    d.content = (ProtobufCBinaryData){sizeof(note) - 1, (uint8_t *)(uintptr_t)note};
    d.title = MUT("Discharge summary");
    d.class_code = MUT("discharge-summary");
    p.recipient_org = MUT(to);
    p.document = &d;
    env.body_case = HIE__V1__ENVELOPE__BODY_PUSH;
    env.push = &p;
    uint64_t t0 = hie_time_mono_ns();
    int rc = call(hosp, &env, rbuf, HIE__V1__ENVELOPE__BODY_PUSH_REPLY, &reply);
    *ack_ns = hie_time_mono_ns() - t0;
    if (reply != NULL) {
        hie__v1__envelope__free_unpacked(reply, NULL);
    }
    return rc;
}

/* Pushes one document at a time to one clinic: send to receipt, and the PushReply. */
static int
phase_push(SSL *hosp, struct shared *sh, uint8_t *rbuf, struct lat *e2e, struct lat *ack)
{
    for (unsigned j = 0; j < sh->pushes; j++) {
        uint64_t t0 = hie_time_mono_ns(), ack_ns = 0;
        int rc = push_send(hosp, j, rbuf, &ack_ns);
        if (rc != 0) {
            return rc;
        }
        lat_add(ack, ack_ns);
        if (!wait_for(sh, push_done, j)) {
            fprintf(stderr, "bench: push %u not delivered within %u ms\n", j, WAIT_MS);
            return HIE_ETIMEDOUT;
        }
        lat_add(e2e, atomic_load(&sh->push_recv_ns[j]) - t0);
    }
    lat_done(e2e);
    lat_done(ack);
    return 0;
}

/* Sends A01 number k (visit "V<k>") and waits for its AdtReply. [out] *notified. */
static int
adt_send(SSL *hosp, unsigned k, uint8_t *rbuf, uint32_t *notified)
{
    char id[24], visit[24];
    hie_envelope_t env, *reply = NULL;
    Hie__V1__AdtRequest r = HIE__V1__ADT_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__Encounter en = HIE__V1__ENCOUNTER__INIT;
    snprintf(id, sizeof(id), "e%u", k);
    snprintf(visit, sizeof(visit), "V%u", k);
    req_init(&env, id, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT);
    pid.org_id = MUT(HOSP);
    pid.mrn = MUT(HOSP_MRN);
    en.visit_id = visit;
    en.facility = MUT("General Hospital, Main Campus");
    en.patient_class = HIE__V1__PATIENT_CLASS__PATIENT_CLASS_INPATIENT;
    en.location = MUT("4W-12");
    en.admit_ms = env.created_ms;
    r.event = HIE__V1__ADT_EVENT__ADT_A01;
    r.patient = &pid;
    r.encounter = &en;
    r.event_ms = env.created_ms;
    env.body_case = HIE__V1__ENVELOPE__BODY_ADT;
    env.adt = &r;
    int rc = call(hosp, &env, rbuf, HIE__V1__ENVELOPE__BODY_ADT_REPLY, &reply);
    *notified = rc == 0 ? reply->adt_reply->notified : 0;
    if (reply != NULL) {
        hie__v1__envelope__free_unpacked(reply, NULL);
    }
    return rc;
}

struct fanout {
    uint64_t *send_ns, *ack_ns;      /* per slot */
    unsigned sent, incomplete, short_notified;
    double secs;
};

/* The A01s, one at a time, until --events or --seconds. */
static int
phase_fanout(SSL *hosp, struct shared *sh, const struct opts *o, uint8_t *rbuf,
    struct fanout *f)
{
    uint64_t t_start = hie_time_mono_ns();
    uint64_t budget_ns = (uint64_t)o->seconds * 1000000000u;
    for (unsigned k = 0; k < sh->slots; k++) {
        if (k >= o->warmup && hie_time_mono_ns() - t_start >= budget_ns) {
            break;
        }
        uint32_t notified = 0;
        f->send_ns[k] = hie_time_mono_ns();
        int rc = adt_send(hosp, k, rbuf, &notified);
        f->ack_ns[k] = hie_time_mono_ns() - f->send_ns[k];
        if (rc != 0) {
            return rc;
        }
        f->sent = k + 1;
        if (notified != sh->subs) { /* records not linked (consent is not in the count) */
            fprintf(stderr, "bench: event %u notified %u of %u subscribers\n", k, notified,
                sh->subs);
            f->short_notified++;
            return HIE_EINVAL;
        }
        if (!wait_for(sh, event_done, k)) {
            f->incomplete++;
            fprintf(stderr, "bench: event %u reached %u of %u subscribers within %u ms\n", k,
                atomic_load(&sh->count[k]), sh->subs, WAIT_MS);
        } else if (o->settle && !wait_for(sh, acks_done, k)) {
            f->incomplete++;
            fprintf(stderr, "bench: event %u: acknowledgements not applied within %u ms\n", k,
                WAIT_MS);
        }
    }
    f->secs = secs_since(t_start);
    return 0;
}

/* ---- results ---------------------------------------------------------------------------- */

struct stats {
    struct lat pair, first, last, ack;
    size_t missing;
};

/* Per (event, subscriber) latencies of the measured events, and per event first/last/ack. */
static int
fanout_stats(const struct shared *sh, const struct fanout *f, unsigned warmup, struct stats *s)
{
    size_t events = f->sent > warmup ? f->sent - warmup : 0;
    s->pair.ns = calloc(events * sh->subs + 1, sizeof(uint64_t));
    s->first.ns = calloc(events + 1, sizeof(uint64_t));
    s->last.ns = calloc(events + 1, sizeof(uint64_t));
    s->ack.ns = calloc(events + 1, sizeof(uint64_t));
    if (s->pair.ns == NULL || s->first.ns == NULL || s->last.ns == NULL || s->ack.ns == NULL) {
        return HIE_ENOMEM;
    }
    for (unsigned k = warmup; k < f->sent; k++) {
        uint64_t lo = UINT64_MAX, hi = 0;
        unsigned got = 0;
        for (unsigned i = 0; i < sh->subs; i++) {
            uint64_t t = sh->recv_ns[(size_t)k * sh->subs + i];
            if (t == 0) {
                continue;
            }
            uint64_t d = t - f->send_ns[k];
            lat_add(&s->pair, d);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            got++;
        }
        s->missing += sh->subs - got;
        if (got == sh->subs) { /* "the last subscriber" only when all of them got it */
            lat_add(&s->first, lo);
            lat_add(&s->last, hi);
        }
        lat_add(&s->ack, f->ack_ns[k]);
    }
    lat_done(&s->pair);
    lat_done(&s->first);
    lat_done(&s->last);
    lat_done(&s->ack);
    return 0;
}

static void
stats_release(struct stats *s)
{
    free(s->pair.ns);
    free(s->first.ns);
    free(s->last.ns);
    free(s->ack.ns);
}

struct baseline {
    struct lat ping, push_e2e, push_ack;
};

static double
ratio(double a, double b)
{
    return b > 0 ? a / b : 0.0;
}

static void
report(const struct opts *o, const struct shared *sh, const struct fanout *f,
    const struct stats *s, const struct baseline *b, double node_cpu_pct, double max_thr_pct)
{
    size_t events = s->ack.n;
    double cpu_ms_event = events > 0 ? node_cpu_pct / 100.0 * f->secs * 1000.0 /
        (double)(f->sent ? f->sent : 1) : 0.0;
    printf("ping (hospital conn)   n=%zu p50 %.0f us p99 %.0f us\n", b->ping.n, b->ping.p50_us,
        b->ping.p99_us);
    printf("push 1 doc -> 1 clinic n=%zu send->receipt p50 %.0f us p99 %.0f us, "
        "PushReply p50 %.0f us p99 %.0f us\n", b->push_e2e.n, b->push_e2e.p50_us,
        b->push_e2e.p99_us, b->push_ack.p50_us, b->push_ack.p99_us);
    printf("A01 -> %u subscribers  events=%zu (+%u warm-up) in %.1f s, pairs=%zu missing=%zu\n",
        sh->subs, events, o->warmup, f->secs, s->pair.n, s->missing);
    printf("  send->receipt, all pairs   p50 %.0f us p99 %.0f us\n", s->pair.p50_us,
        s->pair.p99_us);
    printf("  send->first subscriber     p50 %.0f us p99 %.0f us\n", s->first.p50_us,
        s->first.p99_us);
    printf("  send->last subscriber      p50 %.0f us p99 %.0f us (events complete: %zu)\n",
        s->last.p50_us, s->last.p99_us, s->last.n);
    printf("  AdtReply to the hospital   p50 %.0f us p99 %.0f us\n", s->ack.p50_us,
        s->ack.p99_us);
    printf("  node cpu %.0f%% of a core (busiest thread %.0f%%), %.1f ms per event; acks sent "
        "%lu; short_notified=%u incomplete=%u duplicates=%lu unexpected=%lu errors=%lu\n",
        node_cpu_pct, max_thr_pct, cpu_ms_event,
        (unsigned long)atomic_load(&sh->acks_sent), f->short_notified, f->incomplete,
        (unsigned long)atomic_load(&sh->duplicates), (unsigned long)atomic_load(&sh->unexpected),
        (unsigned long)atomic_load(&sh->errors));
    double ns_op = s->pair.n > 0 ? f->secs * 1e9 / (double)s->pair.n : 0.0;
    printf("bench=fanout subs=%u ack_batch=%u settle=%d events=%zu ops=%zu ns_op=%.0f "
        "p50_us=%.0f p99_us=%.0f "
        "last_p50_us=%.0f last_p99_us=%.0f ack_p50_us=%.0f ack_p99_us=%.0f "
        "push_p50_us=%.0f push_p99_us=%.0f ping_p50_us=%.0f ratio_last_vs_push=%.1f "
        "ratio_ack_vs_push_ack=%.2f ratio_last_vs_ping=%.0f missing=%zu\n", sh->subs,
        o->ack_batch, o->settle, events,
        s->pair.n, ns_op, s->pair.p50_us, s->pair.p99_us, s->last.p50_us, s->last.p99_us,
        s->ack.p50_us, s->ack.p99_us, b->push_e2e.p50_us, b->push_e2e.p99_us, b->ping.p50_us,
        ratio(s->last.p50_us, b->push_e2e.p50_us), ratio(s->ack.p50_us, b->push_ack.p50_us),
        ratio(s->last.p50_us, b->ping.p50_us), s->missing);
}

/* ---- main ------------------------------------------------------------------------------- */

static int
opts_parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {{"smoke", no_argument, NULL, 'S'},
        {"subs", required_argument, NULL, 'n'}, {"events", required_argument, NULL, 'e'},
        {"seconds", required_argument, NULL, 't'}, {"pushes", required_argument, NULL, 'p'},
        {"pings", required_argument, NULL, 'g'}, {"warmup", required_argument, NULL, 'u'},
        {"workers", required_argument, NULL, 'w'}, {"keep", no_argument, NULL, 'k'},
        {"ack-batch", required_argument, NULL, 'a'}, {"settle", no_argument, NULL, 'z'},
        {NULL, 0, NULL, 0}};
    *o = (struct opts){100, 200, 120, 100, 200, 3, 2, 1, false, false, false};
    for (int ch; (ch = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        unsigned v = optarg != NULL ? (unsigned)strtoul(optarg, NULL, 10) : 0;
        switch (ch) {
        case 'S': *o = (struct opts){4, 10, 20, 5, 20, 1, 2, 1, true, o->keep, o->settle};
            break;
        case 'n': o->subs = v; break;
        case 'e': o->events = v; break;
        case 't': o->seconds = v; break;
        case 'p': o->pushes = v; break;
        case 'g': o->pings = v; break;
        case 'u': o->warmup = v; break;
        case 'w': o->workers = v; break;
        case 'a': o->ack_batch = v; break;
        case 'z': o->settle = true; break;
        case 'k': o->keep = true; break;
        default: return -1;
        }
    }
    return o->subs >= RECV_THREADS && o->subs <= SUBS_MAX && o->events >= 1 &&
                   o->warmup + o->events <= SLOTS_MAX && o->seconds >= 1 &&
                   o->seconds <= 3600 && o->pushes >= 1 && o->pushes <= PUSHES_MAX &&
                   o->pings >= 1 && o->pings <= PINGS_MAX && o->workers >= 1 &&
                   o->ack_batch >= 1 && o->ack_batch <= RECEIVE_WINDOW / 2 &&
                   (!o->settle || o->ack_batch == 1)
               ? 0 : -1;
}

struct run {
    struct opts o;
    char root[BENCH_ROOT_BYTES];
    bench_node_t node;
    SSL_CTX *hctx;
    SSL *hosp;
    int hfd;
    uint8_t *rbuf;
    struct conn *conns;
    struct shared sh;
    struct receiver recv[RECV_THREADS];
    unsigned recv_started;
};

/* PKI, node, members, patient, consent, the subscribers' connections. */
static int
run_setup(struct run *r)
{
    char key[BENCH_PATH_BYTES];
    uint64_t t0 = hie_time_mono_ns();
    int rc = bench_setup(r->root, sizeof(r->root), r->o.keep);
    rc = rc ? rc : bench_pki_create(r->root);
    rc = rc ? rc : clinic_certs(r->root, r->o.subs);
    printf("# set-up: pki with %u clinic certificates %.1f s\n", r->o.subs, secs_since(t0));
    snprintf(key, sizeof(key), "%s/mpi.key", r->root);
    rc = rc ? rc : hie_mpi_key_generate(key);
    char yaml[BENCH_PATH_BYTES + 32]; /* consent and audit: the defaults (opt-in, audited) */
    snprintf(yaml, sizeof(yaml), "mpi: {key_file: %s}\n", key);
    rc = rc ? rc : bench_node_start_with(&r->node, r->root, r->o.workers, "warn", yaml, 20000);
    t0 = hie_time_mono_ns();
    rc = rc ? rc : members_add(&r->node, r->root, r->o.subs);
    printf("# set-up: %u members registered, patient imported %.1f s\n", r->o.subs + 1,
        secs_since(t0));
    rc = rc ? rc : tls_open(r->root, HOSP, r->node.port, &r->hctx, &r->hosp, &r->hfd);
    rc = rc ? rc : consent_file(r->hosp, r->rbuf);
    t0 = hie_time_mono_ns();
    rc = rc ? rc : clinics_open(r->root, r->node.port, r->conns, r->o.subs, r->rbuf);
    printf("# set-up: %u subscribers connected, subscribed, receiving %.1f s\n", r->o.subs,
        secs_since(t0));
    fflush(stdout);
    return rc;
}

static int
receivers_start(struct run *r)
{
    unsigned per = (r->o.subs + RECV_THREADS - 1) / RECV_THREADS;
    for (unsigned t = 0; t < RECV_THREADS; t++) {
        unsigned first = t * per;
        unsigned count = first < r->o.subs ? (r->o.subs - first < per ? r->o.subs - first : per)
                                           : 0;
        r->recv[t] = (struct receiver){&r->sh, r->conns, first, count, 0};
        if (pthread_create(&r->recv[t].thread, NULL, receiver_thread, &r->recv[t]) != 0) {
            return -EAGAIN;
        }
        r->recv_started++;
    }
    return 0;
}

static void
receivers_stop(struct run *r)
{
    atomic_store(&r->sh.stop, true);
    for (unsigned t = 0; t < r->recv_started; t++) {
        pthread_join(r->recv[t].thread, NULL);
    }
    r->recv_started = 0;
}

/* The three phases, then the report. Returns 0 when nothing was lost or refused. */
static int
run_measure(struct run *r)
{
    struct baseline b = {0};
    struct fanout f = {0};
    struct stats s = {0};
    bench_cpu_t c0, c1;
    b.ping.ns = calloc(r->o.pings, sizeof(uint64_t));
    b.push_e2e.ns = calloc(r->o.pushes, sizeof(uint64_t));
    b.push_ack.ns = calloc(r->o.pushes, sizeof(uint64_t));
    f.send_ns = calloc(r->sh.slots, sizeof(uint64_t));
    f.ack_ns = calloc(r->sh.slots, sizeof(uint64_t));
    int rc = b.ping.ns && b.push_e2e.ns && b.push_ack.ns && f.send_ns && f.ack_ns ? 0
                                                                                 : HIE_ENOMEM;
    rc = rc ? rc : receivers_start(r);
    rc = rc ? rc : phase_ping(r->hosp, r->o.pings, r->rbuf, &b.ping);
    rc = rc ? rc : phase_push(r->hosp, &r->sh, r->rbuf, &b.push_e2e, &b.push_ack);
    bench_cpu_sample(r->node.pid, &c0);
    rc = rc ? rc : phase_fanout(r->hosp, &r->sh, &r->o, r->rbuf, &f);
    bench_cpu_sample(r->node.pid, &c1);
    usleep(200000); /* the last acknowledgements */
    receivers_stop(r);
    rc = rc ? rc : fanout_stats(&r->sh, &f, r->o.warmup, &s);
    if (rc == 0) {
        double cpu = 0, max_thr = 0;
        pid_t tid = 0;
        bench_cpu_delta(&c0, &c1, &cpu, &max_thr, &tid);
        report(&r->o, &r->sh, &f, &s, &b, cpu, max_thr);
        bool clean = s.missing == 0 && f.short_notified == 0 && f.incomplete == 0 &&
                     atomic_load(&r->sh.errors) == 0 && atomic_load(&r->sh.unexpected) == 0;
        rc = clean ? 0 : HIE_EINVAL;
    }
    stats_release(&s);
    free(b.ping.ns);
    free(b.push_e2e.ns);
    free(b.push_ack.ns);
    free(f.send_ns);
    free(f.ack_ns);
    return rc;
}

static int
run_init(struct run *r)
{
    struct shared *sh = &r->sh;
    sh->subs = r->o.subs;
    sh->slots = r->o.warmup + r->o.events;
    sh->pushes = r->o.pushes;
    sh->ack_batch = r->o.ack_batch;
    sh->recv_ns = calloc((size_t)sh->slots * sh->subs, sizeof(uint64_t));
    sh->count = calloc(sh->slots, sizeof(*sh->count));
    r->conns = calloc(r->o.subs, sizeof(*r->conns));
    r->rbuf = malloc(REPLY_BYTES_MAX);
    r->hfd = -1;
    for (unsigned i = 0; r->conns != NULL && i < r->o.subs; i++) {
        r->conns[i].fd = -1;
    }
    if (sh->recv_ns == NULL || sh->count == NULL || r->conns == NULL || r->rbuf == NULL) {
        return HIE_ENOMEM;
    }
    return sem_init(&sh->progress, 0, 0) == 0 ? 0 : -errno;
}

static void
run_release(struct run *r)
{
    receivers_stop(r);
    for (unsigned i = 0; r->conns != NULL && i < r->o.subs; i++) {
        tls_close(&r->conns[i].ctx, &r->conns[i].ssl, &r->conns[i].fd);
        free(r->conns[i].buf);
    }
    tls_close(&r->hctx, &r->hosp, &r->hfd);
    if (r->node.pid > 0) {
        long from = 0;
        bench_node_log_report(&r->node, &from, 3);
        bench_node_stop(&r->node, 20000);
    }
    free(r->conns);
    free(r->rbuf);
    free(r->sh.recv_ns);
    free((void *)(uintptr_t)r->sh.count);
}

int
main(int argc, char **argv)
{
    static struct run r; /* large; main's stack is not the place */
    if (opts_parse(argc, argv, &r.o) != 0) {
        fprintf(stderr, "usage: bench_fanout [--smoke] [--subs N (%u..%u)] [--events N] "
            "[--seconds S] [--pushes N] [--pings N] [--warmup N] [--workers N] [--ack-batch N] "
            "[--settle] [--keep]\n",
            RECV_THREADS, SUBS_MAX);
        return 2;
    }
    bench_rlimit_raise();
    printf("# bench_fanout subs=%u events=%u (+%u warm-up) seconds=%u pushes=%u pings=%u "
        "workers=%u ack_batch=%u settle=%d consent=opt-in (default) audit=on\n", r.o.subs,
        r.o.events, r.o.warmup, r.o.seconds, r.o.pushes, r.o.pings, r.o.workers, r.o.ack_batch,
        r.o.settle);
    fflush(stdout);
    int rc = run_init(&r);
    rc = rc ? rc : run_setup(&r);
    rc = rc ? rc : run_measure(&r);
    if (rc != 0) {
        fprintf(stderr, "bench: failed: %s%s\n", hie_strerror(rc),
            r.o.keep ? "" : " (--keep keeps the temporary directory)");
    }
    run_release(&r);
    return rc == 0 ? 0 : 1;
}
