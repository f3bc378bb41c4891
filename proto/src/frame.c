/*
 * frame.c - member-protocol framing and envelope validation.
 *
 * Untrusted input, checked from the outside in (style.md 3.7): the length prefix against the
 * frame limit before anything else, then protobuf-c unpack inside a capped arena, then the
 * semantic checks. Callers: the node's edge (decode) and workers (encode), the client library.
 */
#include "proto_int.h"

#include <string.h>

int
hie_proto_frame_header(hie_span_t in, uint32_t frame_bytes_max, uint32_t *body_bytes)
{
    HIE_ASSERT(body_bytes != NULL);
    HIE_ASSERT(frame_bytes_max <= HIE_PROTO_FRAME_BYTES_MAX);
    *body_bytes = 0;
    if (in.len < HIE_PROTO_FRAME_HEADER_BYTES) {
        return HIE_EAGAIN;
    }
    uint32_t n = hie_load_be32(in.ptr);
    if (n > frame_bytes_max) {
        return HIE_ELIMIT;
    }
    if (n == 0) {
        return HIE_EPROTO;
    }
    *body_bytes = n;
    return 0;
}

int
hie_proto_frame_decode(hie_span_t in, uint32_t frame_bytes_max, hie_arena_t *arena,
    hie_envelope_t **out, size_t *consumed_bytes, hie_errinfo_t *info)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(consumed_bytes != NULL);
    *out = NULL;
    *consumed_bytes = 0;
    uint32_t body_bytes = 0;
    int rc = hie_proto_frame_header(in, frame_bytes_max, &body_bytes);
    if (rc == HIE_ELIMIT) {
        return hie_errinfo_set(info, rc, "frame", "frame larger than the maximum");
    }
    if (rc == HIE_EPROTO) {
        return hie_errinfo_set(info, rc, "frame", "empty frame");
    }
    if (rc != 0) {
        return rc;
    }
    if (in.len - HIE_PROTO_FRAME_HEADER_BYTES < body_bytes) {
        return HIE_EAGAIN;
    }
    hie_span_t body = hie_span(in.ptr + HIE_PROTO_FRAME_HEADER_BYTES, body_bytes);
    rc = hie_proto_envelope_decode(body, arena, out, info);
    if (rc == 0) {
        *consumed_bytes = HIE_PROTO_FRAME_HEADER_BYTES + (size_t)body_bytes;
    }
    return rc;
}

int
hie_proto_envelope_decode(hie_span_t body, hie_arena_t *arena, hie_envelope_t **out,
    hie_errinfo_t *info)
{
    HIE_ASSERT(out != NULL);
    *out = NULL;
    ProtobufCMessage *msg = NULL;
    int rc = hie_proto_unpack_checked(&hie__v1__envelope__descriptor, body, arena, &msg, info,
        "envelope");
    if (rc != 0) {
        return rc;
    }
    hie_envelope_t *env = (hie_envelope_t *)msg;
    rc = hie_proto_envelope_validate(env, info);
    if (rc != 0) {
        return rc;
    }
    /* a newer member's few extra fields are dropped; a message padded with thousands (each
     * kept by protobuf-c in the request's memory, ~40 times its wire bytes) is refused */
    if (hie_proto_strip_unknown(msg) > HIE_PROTO_UNKNOWN_FIELDS_MAX) {
        return hie_errinfo_set(info, HIE_EINVAL, "envelope",
            "more fields this node does not know in one message than it takes (64)");
    }
    *out = env;
    return 0;
}

const char *
hie_proto_envelope_id(hie_span_t body, hie_arena_t *arena)
{
    ProtobufCMessage *msg = NULL;
    if (hie_proto_unpack_checked(&hie__v1__envelope__descriptor, body, arena, &msg, NULL,
            "envelope") != 0) {
        return NULL;
    }
    const hie_envelope_t *env = (const hie_envelope_t *)msg;
    return env->id != NULL && hie_proto_id_valid(env->id, strlen(env->id)) ? env->id : NULL;
}

static bool
id_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == ':' || c == '-';
}

bool
hie_proto_id_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > HIE_PROTO_ID_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!id_char_ok((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

bool
hie_proto_org_id_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > HIE_ORG_ID_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (i == 0 ? !alnum : !(alnum || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

int
hie_proto_retract_validate(const char *document_id, const char *reason, hie_errinfo_t *info)
{
    size_t n = document_id != NULL ? strlen(document_id) : 0;
    if (n == 0 || n > HIE_DOCUMENT_ID_BYTES_MAX) {
        return hie_errinfo_set(info, HIE_EINVAL, "retract.document_id",
            "required, at most 200 bytes");
    }
    if (reason != NULL && strlen(reason) > HIE_RETRACT_REASON_BYTES_MAX) {
        return hie_errinfo_set(info, HIE_EINVAL, "retract.reason", "at most 256 bytes");
    }
    return 0;
}

static bool
purpose_known(Hie__V1__PurposeOfUse p)
{
    return p >= HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED &&
           p <= HIE__V1__PURPOSE_OF_USE__PURPOSE_PATIENT_REQUEST;
}

static int
validate_body(const hie_envelope_t *env, hie_errinfo_t *info)
{
    switch (env->body_case) {
    case HIE__V1__ENVELOPE__BODY_PING:
        if (env->ping->payload.len > HIE_PROTO_PING_PAYLOAD_BYTES_MAX) {
            return hie_errinfo_set(info, HIE_EINVAL, "ping.payload", "payload too long");
        }
        return 0;
    case HIE__V1__ENVELOPE__BODY_WHOAMI:
        return 0;
    case HIE__V1__ENVELOPE__BODY_MPI_FEED:
    case HIE__V1__ENVELOPE__BODY_PIX_QUERY:
    case HIE__V1__ENVELOPE__BODY_PDQ_QUERY:
    case HIE__V1__ENVELOPE__BODY_REVIEW_LIST:
    case HIE__V1__ENVELOPE__BODY_REVIEW_DECIDE:
    case HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT:
    case HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE:
    case HIE__V1__ENVELOPE__BODY_CONSENT_LIST:
    case HIE__V1__ENVELOPE__BODY_AUDIT_REPORT:
    case HIE__V1__ENVELOPE__BODY_PUSH:
    case HIE__V1__ENVELOPE__BODY_ADT:
    case HIE__V1__ENVELOPE__BODY_RECORD_QUERY:
    case HIE__V1__ENVELOPE__BODY_RETRIEVE:
        /* exchanges that touch patients say why (consent decisions take it as input) */
        if (env->purpose == HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED) {
            return hie_errinfo_set(info, HIE_EINVAL, "envelope.purpose",
                "required for this exchange");
        }
        return 0;
    case HIE__V1__ENVELOPE__BODY_RETRACT:
        return hie_proto_retract_validate(env->retract->document_id, env->retract->reason,
            info);
    case HIE__V1__ENVELOPE__BODY_RECEIVE:
        return env->receive->window <= HIE_DELIVERY_WINDOW_MAX ? 0
            : hie_errinfo_set(info, HIE_EINVAL, "receive.window", "at most 256");
    case HIE__V1__ENVELOPE__BODY_DELIVERY_ACK:
        return env->delivery_ack->n_seqs > 0 &&
                       env->delivery_ack->n_seqs <= HIE_DELIVERY_ACK_SEQS_MAX
                   ? 0
                   : hie_errinfo_set(info, HIE_EINVAL, "delivery_ack.seqs", "1 to 1024 numbers");
    case HIE__V1__ENVELOPE__BODY_SUBSCRIBE:
    case HIE__V1__ENVELOPE__BODY_ROSTER_UPDATE:
    case HIE__V1__ENVELOPE__BODY_UNSUBSCRIBE:
    case HIE__V1__ENVELOPE__BODY_REPLAY:
    case HIE__V1__ENVELOPE__BODY_QUERY_ANSWER:
    case HIE__V1__ENVELOPE__BODY_RESPONDER_REGISTER:
        return 0; /* checked by the exchange */
    case HIE__V1__ENVELOPE__BODY__NOT_SET:
        return hie_errinfo_set(info, HIE_EINVAL, "envelope.body", "no request body");
    default:
        return hie_errinfo_set(info, HIE_EINVAL, "envelope.body", "not a request kind");
    }
}

int
hie_proto_envelope_validate(const hie_envelope_t *env, hie_errinfo_t *info)
{
    HIE_ASSERT(env != NULL);
    size_t id_len = env->id != NULL ? strlen(env->id) : 0;
    if (id_len == 0) {
        return hie_errinfo_set(info, HIE_EINVAL, "envelope.id", "missing");
    }
    if (!hie_proto_id_valid(env->id, id_len)) {
        return hie_errinfo_set(info, HIE_EINVAL, "envelope.id",
            "must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    }
    size_t corr_len = env->correlation_id != NULL ? strlen(env->correlation_id) : 0;
    if (corr_len > 0 && !hie_proto_id_valid(env->correlation_id, corr_len)) {
        return hie_errinfo_set(info, HIE_EINVAL, "envelope.correlation_id",
            "must be 1-64 characters of A-Z a-z 0-9 . _ : -");
    }
    if (!purpose_known(env->purpose)) {
        return hie_errinfo_set(info, HIE_EINVAL, "envelope.purpose", "unknown purpose of use");
    }
    if (env->created_ms < 0) {
        return hie_errinfo_set(info, HIE_EINVAL, "envelope.created_ms", "negative");
    }
    return validate_body(env, info);
}

int
hie_proto_frame_encode(const hie_envelope_t *env, uint32_t frame_bytes_max, uint8_t **out_buf,
    size_t *out_len)
{
    HIE_ASSERT(env != NULL);
    HIE_ASSERT(out_buf != NULL);
    HIE_ASSERT(out_len != NULL);
    *out_buf = NULL;
    *out_len = 0;
    size_t body = protobuf_c_message_get_packed_size(&env->base);
    if (body > frame_bytes_max || body == 0) {
        return HIE_ELIMIT;
    }
    size_t total = HIE_PROTO_FRAME_HEADER_BYTES + body;
    uint8_t *buf = hie_mem_alloc(total);
    if (buf == NULL) {
        return HIE_ENOMEM;
    }
    hie_store_be32(buf, (uint32_t)body);
    size_t packed = protobuf_c_message_pack(&env->base, buf + HIE_PROTO_FRAME_HEADER_BYTES);
    HIE_ASSERT(packed == body);
    *out_buf = buf;
    *out_len = total;
    return 0;
}
