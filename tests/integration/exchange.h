/*
 * exchange.h - member exchanges for the integration tests (feed, PIX, PDQ over the client
 * library) and their expectations, shared by test_mpi.c and test_consent.c.
 * Everything is static inline: a suite that uses only some helpers does not trip
 * -Wunused-function, and nothing needs a prototype elsewhere (-Wmissing-prototypes).
 */
#ifndef HIE_ITEST_EXCHANGE_H
#define HIE_ITEST_EXCHANGE_H

#include "harness.h"

#include <criterion/criterion.h>
#include <string.h>

#define TIMEOUT_MS 10000u
/* protobuf-c structs take char *; the tests never write through them */
#define MUT(s) ((char *)(uintptr_t)(s))

struct person {
    const char *given, *family, *dob, *postcode, *phone, *city, *street;
};

static const struct person JOHN = {"John", "Smithson", "1970-03-02", "SW1A 1AA",
    "+44 20 7946 0018", "London", "10 Downing Street"};
static const struct person JON = {"Jon", "Smithson", "1970-03-02", "sw1a 1aa",
    "+44 (20) 7946-0018", "LONDON", "10 Downing Street"};
static const struct person MARIA = {"Maria", "Okonkwo-Delacroix", "1988-11-23", "M1 4BT",
    "0161 496 0321", "Manchester", "3 Canal Street"};

static inline hie_envelope_t *
call(hie_client_t *c, hie_envelope_t *req, hie_arena_t *arena)
{
    hie_envelope_t *reply = NULL;
    int rc = hie_client_call(c, req, TIMEOUT_MS, arena, &reply);
    cr_assert_eq(rc, 0, "call: %s", hie_strerror(rc));
    return reply;
}

static inline void
req_init(hie_envelope_t *req, const char *id)
{
    hie__v1__envelope__init(req);
    req->id = MUT(id);
    req->purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
    req->created_ms = 1;
}

/* Feeds (org, mrn) with p; returns the reply envelope (reply or error). */
static inline hie_envelope_t *
feed(hie_client_t *c, const char *id, Hie__V1__FeedAction action, const char *org,
    const char *mrn, const struct person *p, const char *prior, hie_arena_t *arena)
{
    hie_envelope_t req;
    Hie__V1__MpiFeedRequest f = HIE__V1__MPI_FEED_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__Demographics d = HIE__V1__DEMOGRAPHICS__INIT;
    char *given[1], *family[1], *addr[1];
    req_init(&req, id);
    pid.org_id = MUT(org);
    pid.mrn = MUT(mrn);
    f.action = action;
    f.patient = &pid;
    f.prior_mrn = MUT((prior != NULL ? prior : ""));
    if (p != NULL) {
        given[0] = MUT(p->given);
        family[0] = MUT(p->family);
        addr[0] = MUT(p->street);
        d.n_given = d.n_family = d.n_address_lines = 1;
        d.given = given;
        d.family = family;
        d.address_lines = addr;
        d.birth_date = MUT(p->dob);
        d.postcode = MUT(p->postcode);
        d.phone = MUT(p->phone);
        d.city = MUT(p->city);
        d.sex = HIE__V1__SEX__SEX_MALE;
        f.demographics = &d;
    }
    req.body_case = HIE__V1__ENVELOPE__BODY_MPI_FEED;
    req.mpi_feed = &f;
    return call(c, &req, arena);
}

static inline Hie__V1__MpiFeedReply *
feed_ok(hie_client_t *c, const char *id, Hie__V1__FeedAction action, const char *org,
    const char *mrn, const struct person *p, const char *prior, hie_arena_t *arena)
{
    hie_envelope_t *r = feed(c, id, action, org, mrn, p, prior, arena);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_MPI_FEED_REPLY, "feed %s: %s (%s)", id,
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->field : "");
    return r->mpi_feed_reply;
}

/* PIX for (org, mrn) with a purpose of use. */
static inline hie_envelope_t *
pix_for(hie_client_t *c, const char *id, const char *org, const char *mrn,
    Hie__V1__PurposeOfUse purpose, hie_arena_t *arena)
{
    hie_envelope_t req;
    Hie__V1__PixQuery q = HIE__V1__PIX_QUERY__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    req_init(&req, id);
    req.purpose = purpose;
    pid.org_id = MUT(org);
    pid.mrn = MUT(mrn);
    q.patient = &pid;
    req.body_case = HIE__V1__ENVELOPE__BODY_PIX_QUERY;
    req.pix_query = &q;
    return call(c, &req, arena);
}

static inline hie_envelope_t *
pix(hie_client_t *c, const char *id, const char *org, const char *mrn, hie_arena_t *arena)
{
    return pix_for(c, id, org, mrn, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT, arena);
}

static inline hie_envelope_t *
pdq(hie_client_t *c, const char *id, const char *given, const char *family, const char *dob,
    hie_arena_t *arena)
{
    hie_envelope_t req;
    Hie__V1__PdqQuery q = HIE__V1__PDQ_QUERY__INIT;
    Hie__V1__Demographics d = HIE__V1__DEMOGRAPHICS__INIT;
    char *g[1] = {MUT(given)}, *f[1] = {MUT(family)};
    req_init(&req, id);
    d.n_given = given != NULL;
    d.given = g;
    d.n_family = family != NULL;
    d.family = f;
    d.birth_date = MUT((dob != NULL ? dob : ""));
    q.demographics = &d;
    req.body_case = HIE__V1__ENVELOPE__BODY_PDQ_QUERY;
    req.pdq_query = &q;
    return call(c, &req, arena);
}

static inline void
expect_error(hie_envelope_t *r, Hie__V1__ErrorCode code, const char *field)
{
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_ERROR, "expected an error reply");
    cr_assert_eq(r->error->code, code, "code %d, want %d (%s)", r->error->code, code,
        r->error->message);
    if (field != NULL) {
        cr_assert_str_eq(r->error->field, field, "field %s, want %s (%s)", r->error->field,
            field, r->error->message);
    }
}

static inline hie_arena_t *
arena_new(void)
{
    hie_arena_t *a = NULL;
    cr_assert_eq(hie_arena_create(&a, 64u << 20), 0);
    return a;
}

/* ---- directives ---------------------------------------------------------------------------- */

/* A directive: root permit (or deny) with at most one nested provision of the reverse type. */
struct dir {
    Hie__V1__ConsentDirective d;
    Hie__V1__PatientId pid;
    Hie__V1__ConsentProvision root, kid;
    Hie__V1__ConsentProvision *kids[1];
    Hie__V1__ConsentActor actor;
    Hie__V1__ConsentActor *actors[1];
    Hie__V1__PurposeOfUse purposes[1];
};

static inline void
dir_init(struct dir *x, const char *org, const char *mrn, Hie__V1__ProvisionType root)
{
    memset(x, 0, sizeof(*x));
    hie__v1__consent_directive__init(&x->d);
    hie__v1__patient_id__init(&x->pid);
    hie__v1__consent_provision__init(&x->root);
    hie__v1__consent_provision__init(&x->kid);
    hie__v1__consent_actor__init(&x->actor);
    x->pid.org_id = MUT(org);
    x->pid.mrn = MUT(mrn);
    x->d.patient = &x->pid;
    x->d.status = HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE;
    x->d.date_ms = 1700000000000;
    x->root.type = root;
    x->d.provision = &x->root;
    x->kids[0] = &x->kid;
    x->actors[0] = &x->actor;
}

/* Adds the nested provision: the reverse of the root, for one org (or any) and a purpose. */
static inline void
dir_except(struct dir *x, const char *org, Hie__V1__PurposeOfUse purpose)
{
    x->kid.type = x->root.type == HIE__V1__PROVISION_TYPE__PROVISION_PERMIT
                      ? HIE__V1__PROVISION_TYPE__PROVISION_DENY
                      : HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
    if (org != NULL) {
        x->actor.org_id = MUT(org);
        x->kid.n_actors = 1;
        x->kid.actors = x->actors;
    }
    if (purpose != 0) {
        x->purposes[0] = purpose;
        x->kid.n_purposes = 1;
        x->kid.purposes = x->purposes;
    }
    x->root.n_provisions = 1;
    x->root.provisions = x->kids;
}

static inline hie_envelope_t *
consent_submit(hie_client_t *c, const char *id, struct dir *x, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__ConsentSubmitRequest s = HIE__V1__CONSENT_SUBMIT_REQUEST__INIT;
    req_init(&req, id);
    s.directive = &x->d;
    req.body_case = HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT;
    req.consent_submit = &s;
    return call(c, &req, a);
}

static inline Hie__V1__ConsentSubmitReply *
consent_submit_ok(hie_client_t *c, const char *id, struct dir *x, hie_arena_t *a)
{
    hie_envelope_t *r = consent_submit(c, id, x, a);
    cr_assert_eq(r->body_case, HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT_REPLY, "submit %s: %s %s",
        id, r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->message : "?",
        r->body_case == HIE__V1__ENVELOPE__BODY_ERROR ? r->error->field : "");
    return r->consent_submit_reply;
}

/* Deliveries read while waiting for something else (they may overtake a reply). */
struct inbox {
    Hie__V1__Delivery *d[64];
    size_t head, n;
    unsigned heartbeats;
};

/* Asks for deliveries on c's connection; returns the queued count. */
static inline uint64_t
receive_start(hie_client_t *c, const char *id, struct inbox *in, hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__ReceiveRequest r = HIE__V1__RECEIVE_REQUEST__INIT;
    req_init(&req, id);
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED;
    r.window = 8;
    req.body_case = HIE__V1__ENVELOPE__BODY_RECEIVE;
    req.receive = &r;
    memset(in, 0, sizeof(*in));
    cr_assert_eq(hie_client_send(c, &req), 0);
    for (int i = 0; i < 64; i++) {
        hie_envelope_t *env = NULL;
        cr_assert_eq(hie_client_recv(c, 5000, a, &env), 0, "receive reply");
        if (env->body_case == HIE__V1__ENVELOPE__BODY_RECEIVE_REPLY) {
            return env->receive_reply->queued;
        }
        if (env->body_case == HIE__V1__ENVELOPE__BODY_HEARTBEAT) {
            continue;
        }
        cr_assert_eq(env->body_case, HIE__V1__ENVELOPE__BODY_DELIVERY);
        in->d[in->n++] = env->delivery;
    }
    cr_assert(false, "no receive reply");
    return 0;
}

/* The next delivery within timeout_ms, or NULL (a timeout closes the connection). Heartbeats
 * are counted in in->heartbeats and skipped. */
static inline Hie__V1__Delivery *
next_delivery(hie_client_t *c, struct inbox *in, uint32_t timeout_ms, hie_arena_t *a)
{
    if (in->head < in->n) {
        return in->d[in->head++];
    }
    uint64_t deadline = hie_time_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    for (int i = 0; i < 1000; i++) {
        hie_envelope_t *env = NULL;
        uint64_t now = hie_time_mono_ns();
        uint32_t left = now < deadline ? (uint32_t)((deadline - now) / 1000000u) + 1 : 1;
        int rc = hie_client_recv(c, left, a, &env);
        if (rc == HIE_ETIMEDOUT) {
            return NULL;
        }
        cr_assert_eq(rc, 0, "recv: %s", hie_strerror(rc));
        if (env->body_case == HIE__V1__ENVELOPE__BODY_HEARTBEAT) {
            in->heartbeats++;
            continue;
        }
        cr_assert_eq(env->body_case, HIE__V1__ENVELOPE__BODY_DELIVERY, "got %d", env->body_case);
        return env->delivery;
    }
    return NULL;
}

/* Sends req and returns its reply; deliveries that arrive meanwhile go to in (a plain call
 * would drop them: they are not its reply), heartbeats are skipped. */
static inline hie_envelope_t *
call_keep(hie_client_t *c, hie_envelope_t *req, struct inbox *in, hie_arena_t *a)
{
    cr_assert_eq(hie_client_send(c, req), 0);
    if (in->head > 0) { /* compact: what was read already goes */
        memmove(in->d, in->d + in->head, (in->n - in->head) * sizeof(in->d[0]));
        in->n -= in->head;
        in->head = 0;
    }
    for (int i = 0; i < 300; i++) {
        hie_envelope_t *env = NULL;
        cr_assert_eq(hie_client_recv(c, 5000, a, &env), 0, "reply");
        if (env->body_case == HIE__V1__ENVELOPE__BODY_HEARTBEAT) {
            continue;
        }
        if (env->body_case == HIE__V1__ENVELOPE__BODY_DELIVERY) {
            cr_assert_lt(in->n, 64u, "inbox full");
            in->d[in->n++] = env->delivery;
            continue;
        }
        return env;
    }
    cr_assert(false, "no reply");
    return NULL;
}

/* Acknowledges seqs (deliveries arriving meanwhile are kept in in). */
static inline uint32_t
ack(hie_client_t *c, const char *id, uint64_t *seqs, size_t n, struct inbox *in,
    hie_arena_t *a)
{
    hie_envelope_t req;
    Hie__V1__DeliveryAck d = HIE__V1__DELIVERY_ACK__INIT;
    req_init(&req, id);
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED;
    d.n_seqs = n;
    d.seqs = seqs;
    req.body_case = HIE__V1__ENVELOPE__BODY_DELIVERY_ACK;
    req.delivery_ack = &d;
    hie_envelope_t *env = call_keep(c, &req, in, a);
    cr_assert_eq(env->body_case, HIE__V1__ENVELOPE__BODY_DELIVERY_ACK_REPLY);
    return env->delivery_ack_reply->acknowledged;
}

#endif
