/*
 * fuzz_consent.c - libFuzzer driver for the consent engine (reference.md section 6, Z2).
 * The bytes, as a member's ConsentDirective (unpacked with the wire checks), go through
 * hie_consent_directive_validate(): documented codes only, a field and reason on refusal, and
 * compile refusing with the same code. A valid directive (given an id and version if it has
 * none, as the broker would) is compiled, its blob must pass hie_consent_compiled_check(),
 * and both evaluators decide a set of fixed requests under several policies, alone and next
 * to a fixed directive: they must agree in every field (differential oracle). The same bytes
 * are also fed as a compiled blob read back from storage: check and decide must agree and
 * fail closed, never crash.
 * Built with replay_main.c into fuzz_consent_replay, which CI runs over its corpus.
 */
#include "../unit/broker/test_consent_fixture.h"
#include "hie/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fixed requests: every field varies across them. */
static void
fuzz_request(unsigned k, hie_consent_request_t *req)
{
    static const char *const orgs[] = {"org-b", "org-c", "org-a", "org-zz"};
    memset(req, 0, sizeof(*req));
    req->requester_org_id = orgs[k % 4];
    req->requester_roles = HIE_CONSENT_ROLE_BIT(1 + k % 7) | (k % 3 == 0 ? 0x6u : 0);
    req->purpose = (Hie__V1__PurposeOfUse)(1 + k % 7);
    req->action = (Hie__V1__ConsentAction)(1 + k % 4);
    req->labels = (uint32_t)(k * 0x2f1du) & HIE_CONSENT_LABELS_ALL;
    req->doc_class = (enum hie_consent_class)(k % HIE_CONSENT_CLASSES_COUNT);
    req->data_time_ms = k % 5 == 0 ? 0 : (int64_t)(k * 997u % 4000u);
    req->now_ms = (int64_t)(k * 7919u % 5000u);
}

static void
fuzz_policy(unsigned k, hie_consent_policy_t *pol)
{
    hie_consent_policy_init(pol);
    pol->regime = k % 2 == 0 ? HIE_CONSENT_OPT_IN : HIE_CONSENT_OPT_OUT;
    pol->break_glass_allowed = (k / 2) % 2 == 0;
    pol->part2_named_recipient = k != 3;
}

#define FUZZ_REQUESTS 16u
#define FUZZ_POLICIES 4u

static void
fuzz_differential(const Hie__V1__ConsentDirective *d, hie_span_t blob, hie_arena_t *arena)
{
    static const char fixed_text[] = "id=fx v=2 date=50 idx=9 : permit(role=hospital) { "
                                     "deny(label=PSY) deny(org=org-c) { permit(pou=emerg) } }";
    const Hie__V1__ConsentDirective *fixed = cfx_parse(arena, fixed_text);
    uint8_t *fixed_buf = hie_arena_alloc(arena, HIE_CONSENT_COMPILED_BYTES_MAX);
    HIE_ASSERT(fixed_buf != NULL);
    hie_span_t fixed_span;
    cfx_compile_all(&fixed, 1, &fixed_buf, &fixed_span);
    const Hie__V1__ConsentDirective *dirs[2] = {d, fixed};
    hie_span_t spans[2] = {blob, fixed_span};
    for (unsigned p = 0; p < FUZZ_POLICIES; p++) {
        hie_consent_policy_t pol;
        fuzz_policy(p, &pol);
        for (unsigned k = 0; k < FUZZ_REQUESTS; k++) {
            hie_consent_request_t req;
            fuzz_request(k * FUZZ_POLICIES + p, &req);
            for (size_t n = 1; n <= 2; n++) {
                hie_consent_decision_t a, b;
                HIE_ASSERT(hie_consent_decide(&pol, spans, n, &req, &a) == 0);
                HIE_ASSERT(hie_consent_decide_tree(&pol, dirs, n, &req, &b) == 0);
                HIE_ASSERT(cfx_decision_diff(&a, &b) == NULL);
                if (a.decision == HIE_CONSENT_DENY) {
                    HIE_ASSERT(a.obligations == 0 && !a.break_glass);
                }
            }
        }
    }
}

static void
fuzz_directive(const uint8_t *data, size_t size, hie_arena_t *arena)
{
    ProtobufCMessage *m = NULL;
    hie_errinfo_t info = {0};
    if (hie_proto_unpack_checked(&hie__v1__consent_directive__descriptor, hie_span(data, size),
            arena, &m, &info, "consent_directive") != 0) {
        return;
    }
    Hie__V1__ConsentDirective *d = (Hie__V1__ConsentDirective *)m;
    memset(&info, 0, sizeof(info));
    int rc = hie_consent_directive_validate(d, &info);
    HIE_ASSERT(rc == 0 || rc == HIE_EINVAL || rc == HIE_ELIMIT);
    uint8_t *buf = hie_arena_alloc(arena, HIE_CONSENT_COMPILED_BYTES_MAX);
    HIE_ASSERT(buf != NULL);
    size_t len = 1;
    if (rc != 0) {
        HIE_ASSERT(info.field != NULL && info.reason != NULL);
        HIE_ASSERT(hie_consent_compile(d, buf, HIE_CONSENT_COMPILED_BYTES_MAX, &len, NULL) == rc);
        HIE_ASSERT(len == 0);
        return;
    }
    if (d->id[0] == '\0') {
        d->id = (char *)"cns-fuzz"; /* the broker assigns id and version before compiling */
    }
    d->version = d->version == 0 ? 1 : d->version;
    HIE_ASSERT(hie_consent_compile(d, buf, HIE_CONSENT_COMPILED_BYTES_MAX, &len, &info) == 0);
    HIE_ASSERT(len > 0 && len <= HIE_CONSENT_COMPILED_BYTES_MAX);
    HIE_ASSERT(hie_consent_compiled_check(hie_span(buf, len)) == 0);
    HIE_ASSERT(hie_consent_compiled_check(hie_span(buf, len - 1)) == HIE_ECORRUPT);
    fuzz_differential(d, hie_span(buf, len), arena);
}

/* The bytes as a compiled directive read back from storage. */
static void
fuzz_blob(const uint8_t *data, size_t size)
{
    hie_span_t blob = hie_span(data, size);
    int check = hie_consent_compiled_check(blob);
    HIE_ASSERT(check == 0 || check == HIE_ECORRUPT);
    for (unsigned k = 0; k < 4; k++) {
        hie_consent_policy_t pol;
        hie_consent_request_t req;
        hie_consent_decision_t d;
        fuzz_policy(k, &pol);
        fuzz_request(k, &req);
        int rc = hie_consent_decide(&pol, &blob, 1, &req, &d);
        HIE_ASSERT(rc == check);
        HIE_ASSERT(d.reason != NULL);
        if (rc != 0) {
            HIE_ASSERT(d.decision == HIE_CONSENT_DENY && d.obligations == 0);
            HIE_ASSERT(strcmp(d.reason, "evaluation-error") == 0);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hie_arena_t *arena = NULL;
    HIE_ASSERT(hie_arena_create(&arena, 16u << 20) == 0);
    fuzz_directive(data, size, arena);
    fuzz_blob(data, size);
    hie_arena_destroy(&arena);
    return 0;
}
