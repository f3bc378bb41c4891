/*
 * test_frame.c - unit tests for proto/src/frame.c: the length prefix, frame decoding from the
 * outside in (style.md 3.7), the semantic checks on request envelopes (each naming its field),
 * encode/decode round trips, the arena cap, and a seeded random/mutation run.
 *
 * Invalid envelopes are built with the real protobuf-c structs and packed with
 * hie_proto_frame_encode(), which does not validate: the decoder must catch them.
 */
#include "hie/proto.h"

#include "../test_util.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define MAX HIE_PROTO_FRAME_BYTES_MAX

/* Per-test arena, destroyed in .fini (also after a failed assertion). */
static hie_arena_t *arena;

static void
setup(void)
{
    cr_assert_eq(hie_arena_create(&arena, HIE_ARENA_BYTES_MAX), 0);
}

static void
teardown(void)
{
    hie_arena_destroy(&arena);
    cr_expect_eq(hie_mem_live_bytes(), 0, "a test leaked hie_mem bytes");
}

TestSuite(proto_frame, .init = setup, .fini = teardown);

static Hie__V1__Ping ping_body;
static Hie__V1__WhoAmIRequest whoami_body;

/* A valid ping request envelope; callers change one thing to make it invalid. */
static void
ping_env(hie_envelope_t *env, const void *payload, size_t payload_len)
{
    hie__v1__envelope__init(env);
    hie__v1__ping__init(&ping_body);
    ping_body.payload.data = (uint8_t *)(uintptr_t)payload;
    ping_body.payload.len = payload_len;
    env->id = "req-0001";
    env->purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED;
    env->created_ms = 1700000000000;
    env->body_case = HIE__V1__ENVELOPE__BODY_PING;
    env->ping = &ping_body;
}

static void
whoami_env(hie_envelope_t *env)
{
    hie__v1__envelope__init(env);
    hie__v1__who_am_irequest__init(&whoami_body);
    env->id = "01HZX3J9Q8W6:whoami";
    env->purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
    env->created_ms = 1700000000001;
    env->body_case = HIE__V1__ENVELOPE__BODY_WHOAMI;
    env->whoami = &whoami_body;
}

/* Encodes env into a frame; the caller frees with hie_mem_free(buf, len). */
static uint8_t *
encode(const hie_envelope_t *env, size_t *len)
{
    uint8_t *buf = NULL;
    int rc = hie_proto_frame_encode(env, MAX, &buf, len);
    cr_assert_eq(rc, 0, "encode: %s", hie_strerror_name(rc));
    cr_assert_not_null(buf);
    return buf;
}

/* Decodes one frame of in; checks the output contract (zeroed on failure). */
static int
decode(const uint8_t *in, size_t len, hie_envelope_t **env, size_t *consumed,
    hie_errinfo_t *info)
{
    *env = (hie_envelope_t *)(uintptr_t)1; /* must be overwritten */
    *consumed = 12345;
    int rc = hie_proto_frame_decode(hie_span(in, len), MAX, arena, env, consumed, info);
    if (rc != 0) {
        cr_assert_null(*env, "rc=%s but out was set", hie_strerror_name(rc));
        cr_assert_eq(*consumed, 0, "rc=%s but consumed=%zu", hie_strerror_name(rc), *consumed);
    } else {
        cr_assert_not_null(*env);
    }
    return rc;
}

/* Encodes env, decodes it, and expects HIE_EINVAL naming field. */
static void
expect_invalid(const hie_envelope_t *env, const char *field)
{
    size_t len = 0;
    uint8_t *buf = encode(env, &len);
    hie_envelope_t *out = NULL;
    size_t consumed = 0;
    hie_errinfo_t info = {0};
    int rc = decode(buf, len, &out, &consumed, &info);
    hie_mem_free(buf, len);
    cr_assert_eq(rc, HIE_EINVAL, "rc=%s, expected HIE_EINVAL for %s", hie_strerror_name(rc),
        field);
    cr_assert_not_null(info.field);
    cr_assert_str_eq(info.field, field);
    cr_assert_not_null(info.reason);
    /* hie_proto_envelope_validate says the same about the same envelope */
    hie_errinfo_t info2 = {0};
    cr_assert_eq(hie_proto_envelope_validate(env, &info2), HIE_EINVAL);
    cr_assert_str_eq(info2.field, field);
}

/* ---- hie_proto_frame_header ------------------------------------------------------------- */

Test(proto_frame, header_needs_four_bytes)
{
    static const uint8_t b[4] = {0, 0, 0, 10};
    for (size_t len = 0; len < 4; len++) {
        uint32_t body = 99;
        cr_assert_eq(hie_proto_frame_header(hie_span(b, len), MAX, &body), HIE_EAGAIN,
            "len=%zu", len);
        cr_assert_eq(body, 0, "output zeroed");
    }
    uint32_t body = 0;
    cr_assert_eq(hie_proto_frame_header(hie_span(b, 4), MAX, &body), 0);
    cr_assert_eq(body, 10);
}

Test(proto_frame, header_length_zero_is_eproto)
{
    static const uint8_t b[4] = {0, 0, 0, 0};
    uint32_t body = 99;
    cr_assert_eq(hie_proto_frame_header(hie_span(b, 4), MAX, &body), HIE_EPROTO);
    cr_assert_eq(body, 0);
}

Test(proto_frame, header_over_the_limit_is_elimit_with_only_the_prefix_present)
{
    static const uint8_t four_gib[4] = {0xff, 0xff, 0xff, 0xff};
    uint32_t body = 99;
    cr_assert_eq(hie_proto_frame_header(hie_span(four_gib, 4), MAX, &body), HIE_ELIMIT);
    cr_assert_eq(body, 0);
    uint8_t over[4];
    hie_store_be32(over, MAX + 1u);
    cr_assert_eq(hie_proto_frame_header(hie_span(over, 4), MAX, &body), HIE_ELIMIT);
    hie_store_be32(over, 1025);
    cr_assert_eq(hie_proto_frame_header(hie_span(over, 4), 1024, &body), HIE_ELIMIT,
        "a lowered config limit applies");
}

Test(proto_frame, header_at_exactly_the_limit_is_accepted)
{
    uint8_t b[4];
    uint32_t body = 0;
    hie_store_be32(b, MAX);
    cr_assert_eq(hie_proto_frame_header(hie_span(b, 4), MAX, &body), 0);
    cr_assert_eq(body, MAX);
    hie_store_be32(b, 1024);
    cr_assert_eq(hie_proto_frame_header(hie_span(b, 4), 1024, &body), 0);
    cr_assert_eq(body, 1024);
}

Test(proto_frame, header_limit_above_the_compile_time_max_aborts, .signal = SIGABRT)
{
    static const uint8_t b[4] = {0, 0, 0, 1};
    uint32_t body = 0;
    int rc = hie_proto_frame_header(hie_span(b, 4), MAX + 1u, &body);
    (void)rc;
}

/* ---- hie_proto_frame_decode: the prefix --------------------------------------------------- */

Test(proto_frame, decode_rejects_a_4_gib_prefix_before_any_body_byte)
{
    static const uint8_t four_gib[4] = {0xff, 0xff, 0xff, 0xff};
    hie_envelope_t *env;
    size_t consumed;
    hie_errinfo_t info = {0};
    cr_assert_eq(decode(four_gib, 4, &env, &consumed, &info), HIE_ELIMIT,
        "must not wait for 4 GiB of body (EAGAIN) before refusing");
    cr_assert_str_eq(info.field, "frame");
    cr_assert_eq(hie_arena_used_bytes(arena), 0, "nothing was allocated");
}

Test(proto_frame, decode_rejects_an_empty_frame)
{
    static const uint8_t empty[8] = {0, 0, 0, 0, 1, 2, 3, 4};
    hie_envelope_t *env;
    size_t consumed;
    hie_errinfo_t info = {0};
    cr_assert_eq(decode(empty, sizeof(empty), &env, &consumed, &info), HIE_EPROTO);
    cr_assert_str_eq(info.field, "frame");
}

Test(proto_frame, decode_waits_for_a_prefix)
{
    static const uint8_t b[3] = {0, 0, 0};
    hie_envelope_t *env;
    size_t consumed;
    for (size_t len = 0; len < sizeof(b); len++) {
        cr_assert_eq(decode(b, len, &env, &consumed, NULL), HIE_EAGAIN);
    }
}

/* ---- hie_proto_frame_decode: valid frames ------------------------------------------------- */

Test(proto_frame, ping_frame_decodes_and_reports_consumed_bytes)
{
    hie_envelope_t in;
    static const uint8_t payload[] = "hello, broker";
    ping_env(&in, payload, sizeof(payload));
    in.correlation_id = "corr-7";
    in.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY;
    size_t len = 0;
    uint8_t *buf = encode(&in, &len);
    cr_assert_eq(hie_load_be32(buf), len - 4, "the prefix is the body length");
    hie_envelope_t *env;
    size_t consumed;
    hie_errinfo_t info = {0};
    int rc = decode(buf, len, &env, &consumed, &info);
    hie_mem_free(buf, len);
    cr_assert_eq(rc, 0, "rc=%s field=%s", hie_strerror_name(rc), info.field);
    cr_assert_eq(consumed, len);
    cr_assert_str_eq(env->id, "req-0001");
    cr_assert_str_eq(env->correlation_id, "corr-7");
    cr_assert_eq(env->purpose, HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY);
    cr_assert_eq(env->created_ms, 1700000000000);
    cr_assert_eq(env->body_case, HIE__V1__ENVELOPE__BODY_PING);
    cr_assert_eq(env->ping->payload.len, sizeof(payload));
    cr_assert_eq(memcmp(env->ping->payload.data, payload, sizeof(payload)), 0);
    cr_assert_str_eq(hie_proto_body_name(env), "ping");
}

Test(proto_frame, whoami_frame_decodes_and_reports_consumed_bytes)
{
    hie_envelope_t in;
    whoami_env(&in);
    size_t len = 0;
    uint8_t *buf = encode(&in, &len);
    hie_envelope_t *env;
    size_t consumed;
    int rc = decode(buf, len, &env, &consumed, NULL);
    hie_mem_free(buf, len);
    cr_assert_eq(rc, 0, "rc=%s", hie_strerror_name(rc));
    cr_assert_eq(consumed, len);
    cr_assert_str_eq(env->id, "01HZX3J9Q8W6:whoami");
    cr_assert_eq(env->purpose, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT);
    cr_assert_eq(env->body_case, HIE__V1__ENVELOPE__BODY_WHOAMI);
    cr_assert_not_null(env->whoami);
}

Test(proto_frame, frame_followed_by_more_bytes_consumes_only_the_first)
{
    hie_envelope_t a, b;
    ping_env(&a, "x", 1);
    size_t alen = 0, blen = 0;
    uint8_t *abuf = encode(&a, &alen);
    whoami_env(&b);
    uint8_t *bbuf = encode(&b, &blen);
    size_t total = alen + blen + 2;
    uint8_t *stream = hie_mem_alloc(total);
    cr_assert_not_null(stream);
    memcpy(stream, abuf, alen);
    memcpy(stream + alen, bbuf, blen);
    stream[alen + blen] = 0;
    stream[alen + blen + 1] = 0; /* the start of a third prefix */
    hie_mem_free(abuf, alen);
    hie_mem_free(bbuf, blen);

    hie_envelope_t *env;
    size_t consumed;
    cr_assert_eq(decode(stream, total, &env, &consumed, NULL), 0);
    cr_assert_eq(consumed, alen);
    cr_assert_eq(env->body_case, HIE__V1__ENVELOPE__BODY_PING);
    size_t off = consumed;
    cr_assert_eq(decode(stream + off, total - off, &env, &consumed, NULL), 0);
    cr_assert_eq(consumed, blen);
    cr_assert_eq(env->body_case, HIE__V1__ENVELOPE__BODY_WHOAMI);
    off += consumed;
    cr_assert_eq(decode(stream + off, total - off, &env, &consumed, NULL), HIE_EAGAIN);
    hie_mem_free(stream, total);
}

Test(proto_frame, truncated_frame_is_eagain_at_every_cut)
{
    hie_envelope_t in;
    static const uint8_t payload[64] = {1, 2, 3};
    ping_env(&in, payload, sizeof(payload));
    in.correlation_id = "c1";
    size_t len = 0;
    uint8_t *buf = encode(&in, &len);
    for (size_t cut = 0; cut < len; cut++) {
        hie_envelope_t *env;
        size_t consumed;
        /* a copy of exactly cut bytes, so ASan catches any read past the cut */
        uint8_t *part = hie_mem_alloc(cut);
        cr_assert_not_null(part);
        memcpy(part, buf, cut);
        int rc = decode(part, cut, &env, &consumed, NULL);
        hie_mem_free(part, cut);
        cr_assert_eq(rc, HIE_EAGAIN, "cut=%zu of %zu: rc=%s", cut, len, hie_strerror_name(rc));
    }
    hie_mem_free(buf, len);
    cr_assert_eq(hie_arena_used_bytes(arena), 0, "nothing is unpacked before the body is whole");
}

Test(proto_frame, garbage_body_is_eproto)
{
    static const uint8_t bodies[][6] = {
        {0x0a, 0x10, 'a', 'b', 'c', 'd'}, /* field 1 claims 16 bytes, 4 follow */
        {0x07, 0x00, 0x00, 0x00, 0x00, 0x00}, /* wire type 7 does not exist */
        {0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* field number 0 */
        {0x52, 0x05, 0x0a, 0x09, 'x', 'y'},   /* ping whose payload overruns the ping */
        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, /* an unterminated varint tag */
        {0x20, 0x80, 0x80, 0x80, 0x80, 0x80}, /* created_ms varint cut short */
    };
    for (size_t i = 0; i < HIE_ARRAY_LEN(bodies); i++) {
        uint8_t frame[10];
        hie_store_be32(frame, 6);
        memcpy(frame + 4, bodies[i], 6);
        hie_envelope_t *env;
        size_t consumed;
        hie_errinfo_t info = {0};
        int rc = decode(frame, sizeof(frame), &env, &consumed, &info);
        cr_assert_eq(rc, HIE_EPROTO, "body %zu: rc=%s", i, hie_strerror_name(rc));
        cr_assert_str_eq(info.field, "envelope");
    }
}

/* ---- semantic checks: each names its field ------------------------------------------------ */

Test(proto_frame, missing_id_is_einval_on_envelope_id)
{
    hie_envelope_t env;
    ping_env(&env, NULL, 0);
    env.id = "";
    expect_invalid(&env, "envelope.id");
}

Test(proto_frame, id_of_65_chars_is_einval_and_64_is_fine)
{
    char id[HIE_PROTO_ID_BYTES_MAX + 2];
    memset(id, 'a', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    hie_envelope_t env;
    ping_env(&env, NULL, 0);
    env.id = id;
    expect_invalid(&env, "envelope.id");

    id[HIE_PROTO_ID_BYTES_MAX] = '\0';
    size_t len = 0;
    uint8_t *buf = encode(&env, &len);
    hie_envelope_t *out;
    size_t consumed;
    int rc = decode(buf, len, &out, &consumed, NULL);
    hie_mem_free(buf, len);
    cr_assert_eq(rc, 0, "64 characters is the maximum, not over it");
    cr_assert_eq(strlen(out->id), HIE_PROTO_ID_BYTES_MAX);
}

Test(proto_frame, id_with_a_space_or_non_ascii_is_einval)
{
    static const char *const bad[] = {"req 1", "req\xc3\xa9", "req/1", "req@1", "req\t1",
        "r\xff"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        hie_envelope_t env;
        ping_env(&env, NULL, 0);
        env.id = (char *)(uintptr_t)bad[i];
        expect_invalid(&env, "envelope.id");
    }
}

Test(proto_frame, bad_correlation_id_is_einval)
{
    char long_id[HIE_PROTO_ID_BYTES_MAX + 2];
    memset(long_id, 'c', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    const char *const bad[] = {"a b", "caf\xc3\xa9", long_id};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        hie_envelope_t env;
        whoami_env(&env);
        env.correlation_id = (char *)(uintptr_t)bad[i];
        expect_invalid(&env, "envelope.correlation_id");
    }
}

Test(proto_frame, unknown_purpose_is_einval)
{
    static const int bad[] = {8, 99, -1};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        hie_envelope_t env;
        whoami_env(&env);
        env.purpose = (Hie__V1__PurposeOfUse)bad[i];
        expect_invalid(&env, "envelope.purpose");
    }
}

Test(proto_frame, every_known_purpose_is_accepted)
{
    for (int p = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED;
         p <= HIE__V1__PURPOSE_OF_USE__PURPOSE_PATIENT_REQUEST; p++) {
        hie_envelope_t env;
        whoami_env(&env);
        env.purpose = (Hie__V1__PurposeOfUse)p;
        cr_assert_eq(hie_proto_envelope_validate(&env, NULL), 0, "purpose %d", p);
    }
}

Test(proto_frame, envelope_without_a_body_is_einval)
{
    hie_envelope_t env;
    whoami_env(&env);
    env.body_case = HIE__V1__ENVELOPE__BODY__NOT_SET;
    env.whoami = NULL;
    expect_invalid(&env, "envelope.body");
}

Test(proto_frame, reply_kinds_sent_as_requests_are_einval)
{
    Hie__V1__Pong pong;
    Hie__V1__Error err;
    Hie__V1__WhoAmIReply who;
    hie__v1__pong__init(&pong);
    hie__v1__error__init(&err);
    hie__v1__who_am_ireply__init(&who);
    pong.payload.data = (uint8_t *)(uintptr_t)"x";
    pong.payload.len = 1;
    err.code = HIE__V1__ERROR_CODE__ERROR_INTERNAL;
    err.message = "boom";
    who.org_id = "acme";

    hie_envelope_t env;
    whoami_env(&env);
    env.body_case = HIE__V1__ENVELOPE__BODY_PONG;
    env.pong = &pong;
    expect_invalid(&env, "envelope.body");

    whoami_env(&env);
    env.body_case = HIE__V1__ENVELOPE__BODY_ERROR;
    env.error = &err;
    expect_invalid(&env, "envelope.body");

    whoami_env(&env);
    env.body_case = HIE__V1__ENVELOPE__BODY_WHOAMI_REPLY;
    env.whoami_reply = &who;
    expect_invalid(&env, "envelope.body");
}

Test(proto_frame, ping_payload_over_1_kib_is_einval)
{
    static uint8_t payload[HIE_PROTO_PING_PAYLOAD_BYTES_MAX + 1];
    hie_envelope_t env;
    ping_env(&env, payload, sizeof(payload));
    expect_invalid(&env, "ping.payload");

    ping_env(&env, payload, HIE_PROTO_PING_PAYLOAD_BYTES_MAX);
    cr_assert_eq(hie_proto_envelope_validate(&env, NULL), 0, "exactly 1 KiB is allowed");
}

/* A retraction names a document (1..200 bytes) and gives at most 256 bytes of reason. */
Test(proto_frame, retract_document_id_and_reason_are_bounded)
{
    static char id[HIE_DOCUMENT_ID_BYTES_MAX + 2], reason[HIE_RETRACT_REASON_BYTES_MAX + 2];
    hie_envelope_t env;
    Hie__V1__RetractRequest r = HIE__V1__RETRACT_REQUEST__INIT;
    whoami_env(&env);
    env.body_case = HIE__V1__ENVELOPE__BODY_RETRACT;
    env.retract = &r;
    r.document_id = "";
    expect_invalid(&env, "retract.document_id");
    memset(id, 'a', HIE_DOCUMENT_ID_BYTES_MAX + 1);
    r.document_id = id;
    expect_invalid(&env, "retract.document_id");
    id[HIE_DOCUMENT_ID_BYTES_MAX] = '\0';
    cr_assert_eq(hie_proto_envelope_validate(&env, NULL), 0, "200 bytes");
    memset(reason, 'r', HIE_RETRACT_REASON_BYTES_MAX + 1);
    r.reason = reason;
    expect_invalid(&env, "retract.reason");
    reason[HIE_RETRACT_REASON_BYTES_MAX] = '\0';
    cr_assert_eq(hie_proto_envelope_validate(&env, NULL), 0, "256 bytes of reason");
}

Test(proto_frame, negative_created_ms_is_einval)
{
    hie_envelope_t env;
    whoami_env(&env);
    env.created_ms = -1;
    expect_invalid(&env, "envelope.created_ms");
}

Test(proto_frame, validate_accepts_a_missing_info)
{
    hie_envelope_t env;
    whoami_env(&env);
    env.id = "";
    cr_assert_eq(hie_proto_envelope_validate(&env, NULL), HIE_EINVAL);
}

/* Regression (was a bug, found by the unit tests): protobuf strings may hold NUL bytes; protobuf-c copies them and NUL-terminates, and
 * hie_proto_envelope_validate() measures the id with strlen(). A wire id "ab\0cd" therefore
 * passes as "ab", although NUL is not one of the allowed characters: two different wire ids
 * ("ab\0x", "ab\0y") become the same idempotency key. Expected: HIE_EINVAL on envelope.id
 * (compare the decoded length with the wire length, or reject embedded NULs at decode). */
Test(proto_frame, id_with_an_embedded_nul_is_einval)
{
    /* Envelope{id = "ab\0cd", whoami = {}} by hand: protobuf-c's pack would stop at the NUL */
    static const uint8_t frame[] = {0, 0, 0, 9, 0x0a, 5, 'a', 'b', 0, 'c', 'd', 0x62, 0};
    hie_envelope_t *env;
    size_t consumed;
    hie_errinfo_t info = {0};
    int rc = decode(frame, sizeof(frame), &env, &consumed, &info);
    cr_assert_eq(rc, HIE_EINVAL, "rc=%s", hie_strerror_name(rc));
    cr_assert_str_eq(info.field, "envelope.id");
}

/* ---- round trips, encode limits, arena cap ------------------------------------------------ */

Test(proto_frame, ping_round_trip_keeps_every_field)
{
    static uint8_t payload[HIE_PROTO_PING_PAYLOAD_BYTES_MAX];
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)(i * 7u);
    }
    hie_envelope_t in;
    ping_env(&in, payload, sizeof(payload));
    in.id = "A-z.0_9:x";
    in.correlation_id = "prev:42";
    in.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_PATIENT_REQUEST;
    in.created_ms = INT64_MAX;
    in.handled_ms = 5;
    size_t len = 0;
    uint8_t *buf = encode(&in, &len);
    hie_envelope_t *out;
    size_t consumed;
    int rc = decode(buf, len, &out, &consumed, NULL);
    cr_assert_eq(rc, 0, "rc=%s", hie_strerror_name(rc));
    cr_assert_eq(consumed, len);
    cr_assert_str_eq(out->id, in.id);
    cr_assert_str_eq(out->correlation_id, in.correlation_id);
    cr_assert_eq(out->purpose, in.purpose);
    cr_assert_eq(out->created_ms, in.created_ms);
    cr_assert_eq(out->handled_ms, in.handled_ms);
    cr_assert_eq(out->body_case, HIE__V1__ENVELOPE__BODY_PING);
    cr_assert_eq(out->ping->payload.len, sizeof(payload));
    cr_assert_eq(memcmp(out->ping->payload.data, payload, sizeof(payload)), 0);
    /* and encoding the decoded envelope gives the same bytes */
    size_t len2 = 0;
    uint8_t *buf2 = encode(out, &len2);
    cr_assert_eq(len2, len);
    cr_assert_eq(memcmp(buf, buf2, len), 0);
    hie_mem_free(buf, len);
    hie_mem_free(buf2, len2);
}

Test(proto_frame, whoami_round_trip_keeps_every_field)
{
    hie_envelope_t in;
    whoami_env(&in);
    in.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_RESEARCH;
    in.created_ms = 0;
    size_t len = 0;
    uint8_t *buf = encode(&in, &len);
    hie_envelope_t *out;
    size_t consumed;
    int rc = decode(buf, len, &out, &consumed, NULL);
    hie_mem_free(buf, len);
    cr_assert_eq(rc, 0, "rc=%s", hie_strerror_name(rc));
    cr_assert_str_eq(out->id, in.id);
    cr_assert_str_eq(out->correlation_id, "");
    cr_assert_eq(out->purpose, in.purpose);
    cr_assert_eq(out->created_ms, 0);
    cr_assert_eq(out->body_case, HIE__V1__ENVELOPE__BODY_WHOAMI);
    cr_assert_str_eq(hie_proto_body_name(out), "whoami");
}

Test(proto_frame, encode_refuses_a_body_over_the_limit)
{
    static uint8_t payload[2000];
    hie_envelope_t in;
    ping_env(&in, payload, sizeof(payload));
    uint8_t *buf = (uint8_t *)(uintptr_t)1;
    size_t len = 99;
    cr_assert_eq(hie_proto_frame_encode(&in, 1024, &buf, &len), HIE_ELIMIT);
    cr_assert_null(buf);
    cr_assert_eq(len, 0);
    size_t body = protobuf_c_message_get_packed_size(&in.base);
    cr_assert_eq(hie_proto_frame_encode(&in, (uint32_t)body, &buf, &len), 0,
        "exactly the limit fits");
    cr_assert_eq(len, body + 4);
    hie_mem_free(buf, len);
}

Test(proto_frame, encode_refuses_an_empty_envelope)
{
    hie_envelope_t in;
    hie__v1__envelope__init(&in);
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(hie_proto_frame_encode(&in, MAX, &buf, &len), HIE_ELIMIT,
        "a zero-length body would be an invalid frame");
    cr_assert_null(buf);
}

Test(proto_frame, encode_out_of_memory_is_enomem)
{
    hie_envelope_t in;
    whoami_env(&in);
    uint8_t *buf = (uint8_t *)(uintptr_t)1;
    size_t len = 99;
    hie_mem_fail_after(1);
    int rc = hie_proto_frame_encode(&in, MAX, &buf, &len);
    hie_mem_fail_after(0);
    cr_assert_eq(rc, HIE_ENOMEM);
    cr_assert_null(buf);
    cr_assert_eq(len, 0);
}

Test(proto_frame, arena_cap_hit_is_elimit)
{
    hie_envelope_t in;
    static const uint8_t payload[512] = {0};
    ping_env(&in, payload, sizeof(payload));
    size_t len = 0;
    uint8_t *buf = encode(&in, &len);
    static const size_t caps[] = {1, 16, 64, 200, 600};
    for (size_t i = 0; i < HIE_ARRAY_LEN(caps); i++) {
        hie_arena_t *tiny = NULL;
        cr_assert_eq(hie_arena_create(&tiny, caps[i]), 0);
        hie_envelope_t *out = (hie_envelope_t *)(uintptr_t)1;
        size_t consumed = 7;
        hie_errinfo_t info = {0};
        int rc = hie_proto_frame_decode(hie_span(buf, len), MAX, tiny, &out, &consumed, &info);
        bool hit = hie_arena_cap_hit(tiny);
        hie_arena_destroy(&tiny);
        cr_assert_eq(rc, HIE_ELIMIT, "cap=%zu: rc=%s", caps[i], hie_strerror_name(rc));
        cr_assert(hit);
        cr_assert_null(out);
        cr_assert_eq(consumed, 0);
        cr_assert_str_eq(info.field, "envelope");
    }
    hie_mem_free(buf, len);
}

Test(proto_frame, decode_with_a_lowered_limit)
{
    static uint8_t payload[1000];
    hie_envelope_t in;
    ping_env(&in, payload, sizeof(payload));
    size_t len = 0;
    uint8_t *buf = encode(&in, &len);
    cr_assert_gt(len - 4, 1000);
    hie_envelope_t *out;
    size_t consumed;
    int rc = hie_proto_frame_decode(hie_span(buf, 4), 1000, arena, &out, &consumed, NULL);
    cr_assert_eq(rc, HIE_ELIMIT, "the prefix alone is enough to refuse");
    rc = hie_proto_frame_decode(hie_span(buf, len), (uint32_t)(len - 4), arena, &out,
        &consumed, NULL);
    cr_assert_eq(rc, 0);
    hie_mem_free(buf, len);
}

/* ---- randomized: never crash, always a documented code ------------------------------------ */

static bool
documented(int rc)
{
    return rc == 0 || rc == HIE_EAGAIN || rc == HIE_ELIMIT || rc == HIE_EPROTO ||
           rc == HIE_EINVAL;
}

/* Decodes len bytes held in an exact-size heap copy (so ASan sees any overread), then checks
 * the output contract for whatever code came back. */
static void
fuzz_one(const uint8_t *bytes, size_t len, uint64_t iter, uint64_t seed)
{
    uint8_t *copy = hie_mem_alloc(len);
    cr_assert_not_null(copy);
    if (len > 0) {
        memcpy(copy, bytes, len);
    }
    hie_arena_t *a = NULL;
    cr_assert_eq(hie_arena_create(&a, HIE_ARENA_BYTES_MAX), 0);
    hie_envelope_t *env = NULL;
    size_t consumed = 0;
    hie_errinfo_t info = {0};
    int rc = hie_proto_frame_decode(hie_span(copy, len), MAX, a, &env, &consumed, &info);
    cr_assert(documented(rc), "seed=0x%lx iter=%lu: undocumented rc=%d (%s)",
        (unsigned long)seed, (unsigned long)iter, rc, hie_strerror_name(rc));
    if (rc == 0) {
        cr_assert_not_null(env);
        cr_assert_geq(consumed, 5);
        cr_assert_leq(consumed, len);
        cr_assert_eq(consumed, 4u + hie_load_be32(copy));
        cr_assert_eq(hie_proto_envelope_validate(env, NULL), 0);
    } else {
        cr_assert_null(env);
        cr_assert_eq(consumed, 0);
    }
    if (rc == HIE_EINVAL) {
        cr_assert_not_null(info.field, "seed=0x%lx iter=%lu: EINVAL names no field",
            (unsigned long)seed, (unsigned long)iter);
    }
    hie_arena_destroy(&a);
    hie_mem_free(copy, len);
}

/* One mutation of frame (in place, len may shrink): bit flips, truncation, prefix tampering,
 * byte overwrites, or a spliced duplicate. */
static size_t
mutate(test_rng_t *r, uint8_t *frame, size_t len, size_t cap)
{
    switch (test_rng_below(r, 6)) {
    case 0: /* flip 1..4 bits */
        for (uint32_t k = 1 + test_rng_below(r, 4); k > 0; k--) {
            frame[test_rng_below(r, (uint32_t)len)] ^= (uint8_t)(1u << test_rng_below(r, 8));
        }
        return len;
    case 1: /* truncate */
        return test_rng_below(r, (uint32_t)len);
    case 2: { /* tamper with the prefix: near the truth, or anything */
        uint32_t body = hie_load_be32(frame);
        uint32_t v = test_rng_below(r, 2) ? body + test_rng_below(r, 9) - 4u
                                          : (uint32_t)test_rng_next(r);
        hie_store_be32(frame, v);
        return len;
    }
    case 3: /* overwrite a body byte with an interesting value */ {
        static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x62};
        frame[4 + test_rng_below(r, (uint32_t)(len - 4))] = vals[test_rng_below(r, 8)];
        return len;
    }
    case 4: /* append random bytes */ {
        size_t extra = test_rng_below(r, 16);
        if (len + extra > cap) {
            extra = cap - len;
        }
        for (size_t i = 0; i < extra; i++) {
            frame[len + i] = (uint8_t)test_rng_next(r);
        }
        return len + extra;
    }
    default: { /* duplicate a slice of the body over another place */
        size_t from = 4 + test_rng_below(r, (uint32_t)(len - 4));
        size_t to = 4 + test_rng_below(r, (uint32_t)(len - 4));
        size_t n = test_rng_below(r, 8);
        if (from + n > len) {
            n = len - from;
        }
        if (to + n > len) {
            n = len - to;
        }
        memmove(frame + to, frame + from, n);
        return len;
    }
    }
}

Test(proto_frame, random_bytes_and_mutations_never_crash, .timeout = 60)
{
    uint64_t seed = test_seed(0x48494546524d3031ull); /* "HIEFRM01" */
    test_rng_t r;
    test_rng_init(&r, seed);

    /* 1. random byte strings, some with a plausible prefix */
    static uint8_t bytes[600];
    for (uint64_t iter = 0; iter < 20000; iter++) {
        size_t len = test_rng_below(&r, sizeof(bytes));
        for (size_t i = 0; i < len; i++) {
            bytes[i] = (uint8_t)test_rng_next(&r);
        }
        if (len >= 4 && test_rng_below(&r, 2) == 0) {
            hie_store_be32(bytes, (uint32_t)(len - 4 - test_rng_below(&r, (uint32_t)len - 3)));
        }
        fuzz_one(bytes, len, iter, seed);
    }

    /* 2. mutations of valid frames of each kind */
    static const uint8_t payload[40] = "ping payload for mutation";
    hie_envelope_t envs[2];
    ping_env(&envs[0], payload, sizeof(payload));
    envs[0].correlation_id = "corr-1";
    whoami_env(&envs[1]);
    envs[1].correlation_id = "corr-2";
    uint8_t *valid[2];
    size_t valid_len[2];
    for (size_t k = 0; k < 2; k++) {
        valid[k] = encode(&envs[k], &valid_len[k]);
    }
    static uint8_t frame[700];
    for (uint64_t iter = 0; iter < 20000; iter++) {
        size_t k = test_rng_below(&r, 2);
        size_t len = valid_len[k];
        memcpy(frame, valid[k], len);
        for (uint32_t m = 1 + test_rng_below(&r, 3); m > 0 && len > 4; m--) {
            len = mutate(&r, frame, len, sizeof(frame));
        }
        fuzz_one(frame, len, 20000 + iter, seed);
    }
    for (size_t k = 0; k < 2; k++) {
        hie_mem_free(valid[k], valid_len[k]);
    }
}

/* Fields this version does not know, anywhere in a member's envelope (here inside the
 * demographics of a feed), are dropped at decode: packed again, the envelope is exactly the
 * one without them (nothing opaque is stored or passed on). */
Test(proto_frame, unknown_fields_are_dropped_at_decode)
{
    hie_envelope_t env = HIE__V1__ENVELOPE__INIT;
    Hie__V1__MpiFeedRequest f = HIE__V1__MPI_FEED_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__Demographics d = HIE__V1__DEMOGRAPHICS__INIT;
    char *given[1] = {"Ann"};
    pid.org_id = "general-hospital";
    pid.mrn = "H-1";
    d.n_given = 1;
    d.given = given;
    f.action = HIE__V1__FEED_ACTION__FEED_CREATE;
    f.patient = &pid;
    f.demographics = &d;
    env.id = "u1";
    env.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
    env.body_case = HIE__V1__ENVELOPE__BODY_MPI_FEED;
    env.mpi_feed = &f;
    size_t clean = protobuf_c_message_get_packed_size(&env.base);
    static uint8_t pad[2 + 4096]; /* as protobuf-c keeps it: the length (varint), the bytes */
    pad[0] = 0x80;
    pad[1] = 0x20;
    memset(pad + 2, 'x', sizeof(pad) - 2);
    ProtobufCMessageUnknownField uf = {999, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, sizeof(pad),
        pad};
    d.base.n_unknown_fields = 1;
    d.base.unknown_fields = &uf;
    size_t len = protobuf_c_message_get_packed_size(&env.base);
    cr_assert_gt(len, clean + sizeof(pad));
    uint8_t *buf = malloc(len);
    cr_assert_not_null(buf);
    cr_assert_eq(protobuf_c_message_pack(&env.base, buf), len);
    hie_envelope_t *out = NULL;
    hie_errinfo_t info = {0};
    cr_assert_eq(hie_proto_envelope_decode(hie_span(buf, len), arena, &out, &info), 0, "%s",
        info.reason != NULL ? info.reason : "-");
    free(buf);
    cr_assert_eq(protobuf_c_message_get_packed_size(&out->base), clean, "the padding is gone");
    cr_assert_str_eq(out->mpi_feed->demographics->given[0], "Ann");
}

/* A few fields this node does not know (a newer member's) are dropped; a request padded with
 * more than 64 is refused: protobuf-c keeps each in the request's memory, about 40 times its
 * two wire bytes (a 200 KB Ping held 8 MB, and a member's pipelined Pings 2 GB). */
Test(proto_frame, a_request_padded_with_unknown_fields_is_refused)
{
    hie_envelope_t env;
    static uint8_t payload[4];
    ping_env(&env, payload, sizeof(payload));
    size_t clean = protobuf_c_message_get_packed_size(&env.base);
    static uint8_t buf[4096];
    for (unsigned extra = 64; extra <= 65; extra++) {
        cr_assert_eq(protobuf_c_message_pack(&env.base, buf), clean);
        for (unsigned i = 0; i < extra; i++) { /* field 6, varint 0: not in Envelope */
            buf[clean + 2 * i] = 0x30;
            buf[clean + 2 * i + 1] = 0x00;
        }
        hie_arena_t *a = NULL;
        cr_assert_eq(hie_arena_create(&a, 1u << 20), 0);
        hie_envelope_t *out = NULL;
        hie_errinfo_t info = {0};
        int rc = hie_proto_envelope_decode(hie_span(buf, clean + 2 * extra), a, &out, &info);
        if (extra == 64) {
            cr_assert_eq(rc, 0, "%s", info.reason != NULL ? info.reason : "-");
        } else {
            cr_assert_eq(rc, HIE_EINVAL);
            cr_assert_str_eq(info.field, "envelope");
        }
        hie_arena_destroy(&a);
    }
}

/* The limit is on one message: a newer responder's one extra field in each of 100 entries of
 * an answer is dropped, not counted as 100 against the request (it was refused). */
Test(proto_frame, one_unknown_field_in_each_of_many_entries_is_dropped)
{
    enum { ENTRIES = 100 };
    static Hie__V1__DocumentEntry en[ENTRIES];
    static Hie__V1__DocumentEntry *docs[ENTRIES];
    static uint8_t one = 1;
    ProtobufCMessageUnknownField uf = {.tag = 99, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT,
        .len = 1, .data = &one};
    for (unsigned i = 0; i < ENTRIES; i++) {
        hie__v1__document_entry__init(&en[i]);
        en[i].document_id = "st-mary:lab-77";
        en[i].base.n_unknown_fields = 1;
        en[i].base.unknown_fields = &uf;
        docs[i] = &en[i];
    }
    Hie__V1__QueryAnswer qa = HIE__V1__QUERY_ANSWER__INIT;
    qa.query_id = "q.0123456789abcdef";
    qa.n_documents = ENTRIES;
    qa.documents = docs;
    hie_envelope_t env;
    ping_env(&env, NULL, 0);
    env.body_case = HIE__V1__ENVELOPE__BODY_QUERY_ANSWER;
    env.query_answer = &qa;
    static uint8_t buf[16384];
    size_t len = protobuf_c_message_get_packed_size(&env.base);
    cr_assert_lt(len, sizeof(buf));
    cr_assert_eq(protobuf_c_message_pack(&env.base, buf), len);
    hie_arena_t *a = NULL;
    cr_assert_eq(hie_arena_create(&a, 1u << 20), 0);
    hie_envelope_t *out = NULL;
    hie_errinfo_t info = {0};
    int rc = hie_proto_envelope_decode(hie_span(buf, len), a, &out, &info);
    cr_assert_eq(rc, 0, "%s", info.reason != NULL ? info.reason : "-");
    cr_assert_eq(out->query_answer->n_documents, (size_t)ENTRIES);
    cr_assert_eq(out->query_answer->documents[99]->base.n_unknown_fields, 0u, "dropped");
    hie_arena_destroy(&a);
}
