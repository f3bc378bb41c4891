/*
 * hie/proto.h - the member protocol's wire format: frames, envelopes, commands, and the one
 * table that maps HIE_E* codes to wire Error codes (style.md 3.1).
 *
 * Frame: a 4-byte big-endian body length, then one protobuf Envelope (proto/envelope.proto).
 * Only this module calls protobuf_c unpack. Every decode runs in a caller-provided arena with a
 * hard byte cap; decoded messages live until that arena is destroyed.
 *
 * Threads: all functions are reentrant; an arena has one owner at a time.
 * This module never logs or exits: it returns a code and fills a hie_errinfo_t (static reason
 * and field name, never field values).
 */
#ifndef HIE_PROTO_H
#define HIE_PROTO_H

#include "hie/base.h"
#include "hie/limits.h"

#include "admin.pb-c.h"
#include "command.pb-c.h"
#include "envelope.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef Hie__V1__Envelope hie_envelope_t;
typedef Hie__V1__Command hie_command_t;
typedef Hie__V1__CommandResult hie_command_result_t;
typedef Hie__V1__Organization hie_org_t;

#define HIE_PROTO_FRAME_HEADER_BYTES 4u
/* Largest Ping payload echoed back. */
#define HIE_PROTO_PING_PAYLOAD_BYTES_MAX 1024u

/* Reads the length prefix at the start of in.
 * Returns 0 and sets *body_bytes when 4 bytes are present and the length is within
 * frame_bytes_max; HIE_EAGAIN when fewer than 4 bytes are present; HIE_ELIMIT when the length is
 * larger than frame_bytes_max; HIE_EPROTO when it is 0 (an empty envelope is never valid). */
HIE_MUST_CHECK int hie_proto_frame_header(hie_span_t in, uint32_t frame_bytes_max,
    uint32_t *body_bytes);

/* Decodes one frame from the start of in: length check first (nothing is looked at past the
 * prefix if it is too long), then unpack in arena, then hie_proto_envelope_validate().
 * [out] *out: the envelope, owned by arena; NULL on failure. [out] *consumed_bytes: bytes of in
 * the frame used (prefix included); 0 on failure.
 * Returns 0, HIE_EAGAIN (frame incomplete), HIE_ELIMIT (too large, or the arena cap was hit),
 * HIE_EPROTO (not a valid protobuf), HIE_EINVAL (semantic check failed; info names the field). */
HIE_MUST_CHECK int hie_proto_frame_decode(hie_span_t in, uint32_t frame_bytes_max,
    hie_arena_t *arena, hie_envelope_t **out, size_t *consumed_bytes, hie_errinfo_t *info);

/* Unpacks body (no prefix) as an Envelope in arena and validates it. Same returns as above. */
HIE_MUST_CHECK int hie_proto_envelope_decode(hie_span_t body, hie_arena_t *arena,
    hie_envelope_t **out, hie_errinfo_t *info);

/* The id of body (no prefix) when it unpacks as an Envelope and its id is valid, whatever
 * else is wrong with it (owned by arena); else NULL. For answering a request that failed
 * hie_proto_envelope_decode with an Error the member can match to it. */
const char *hie_proto_envelope_id(hie_span_t body, hie_arena_t *arena);

/* Semantic checks on a decoded request envelope: id present, 1..HIE_PROTO_ID_BYTES_MAX chars of
 * [A-Za-z0-9._:-]; correlation_id empty or the same shape; purpose a known value; a body set
 * and a request kind (not a reply kind); Ping payload within HIE_PROTO_PING_PAYLOAD_BYTES_MAX.
 * Returns 0 or HIE_EINVAL with info naming the field. */
HIE_MUST_CHECK int hie_proto_envelope_validate(const hie_envelope_t *env, hie_errinfo_t *info);

/* A retraction's fields (RetractRequest or RetractCommand): document_id 1..
 * HIE_DOCUMENT_ID_BYTES_MAX bytes, reason at most HIE_RETRACT_REASON_BYTES_MAX. 0 or HIE_EINVAL
 * with info naming the field. */
HIE_MUST_CHECK int hie_proto_retract_validate(const char *document_id, const char *reason,
    hie_errinfo_t *info);

/* True when s (len bytes) is a valid envelope id. */
bool hie_proto_id_valid(const char *s, size_t len);
/* True when s is a valid organization or node id: [a-z0-9][a-z0-9._-]{0,62}. */
bool hie_proto_org_id_valid(const char *s, size_t len);

/* Packs env as a frame (prefix + body) into a new buffer from hie_mem_alloc.
 * [out] *out_buf owned by the caller, freed with hie_mem_free(*out_buf, *out_len).
 * Returns 0, HIE_ENOMEM, or HIE_ELIMIT when the body would exceed frame_bytes_max. */
HIE_MUST_CHECK int hie_proto_frame_encode(const hie_envelope_t *env, uint32_t frame_bytes_max,
    uint8_t **out_buf, size_t *out_len);

/* Packs any message into a new hie_mem buffer (no prefix). Same ownership as above.
 * Returns 0, HIE_ENOMEM or HIE_ELIMIT (larger than bytes_max). */
HIE_MUST_CHECK int hie_proto_pack(const ProtobufCMessage *msg, size_t bytes_max,
    uint8_t **out_buf, size_t *out_len);

/* An audit_batch (or, of one record, audit_append) command packed one record at a time, so a
 * worker can free each exchange's memory as soon as its record is staged: the bytes are exactly
 * what hie_proto_pack gives for the Command holding the same records (the body, field 42 or 40,
 * comes after the header's fields 1-4; AuditBatchCommand has only its repeated field 1).
 * head: the Command's header (requester, request_id, time_ms, node_id; no body). Buffers are
 * hie_mem, kept between batches; hie_proto_batch_free releases them. */
typedef struct hie_proto_batch {
    uint8_t *head;
    size_t head_len, head_cap;
    uint8_t *items;              /* per record: tag 1, length, the packed AuditAppendCommand */
    size_t items_len, items_cap;
    size_t first_item_at;        /* where the first record's packed bytes start in items */
    size_t count;
} hie_proto_batch_t;
/* Adds ac (the header from head when b is empty). Returns 0, HIE_ENOMEM, or HIE_ELIMIT when
 * the command would then exceed bytes_max (b unchanged: send what it holds, then add again). */
HIE_MUST_CHECK int hie_proto_batch_add(hie_proto_batch_t *b, const hie_command_t *head,
    const Hie__V1__AuditAppendCommand *ac, size_t bytes_max);
/* The command of b's records (at least one) into a new hie_mem buffer, as hie_proto_pack.
 * Returns 0, HIE_ENOMEM or HIE_ELIMIT (more than bytes_max). */
HIE_MUST_CHECK int hie_proto_batch_pack(const hie_proto_batch_t *b, size_t bytes_max,
    uint8_t **out_buf, size_t *out_len);
/* Empties b for the next batch (keeps its buffers). */
void hie_proto_batch_reset(hie_proto_batch_t *b);
/* Frees b's buffers; b is empty after. */
void hie_proto_batch_free(hie_proto_batch_t *b);

/* Unpacks in as a message of type desc in arena (no semantic checks).
 * [out] *out owned by arena. Returns 0, HIE_EPROTO or HIE_ELIMIT (arena cap). */
HIE_MUST_CHECK int hie_proto_unpack(const ProtobufCMessageDescriptor *desc, hie_span_t in,
    hie_arena_t *arena, ProtobufCMessage **out);

/* Unpacks in as desc like hie_proto_unpack, after a wire-level check that every string field
 * (at any depth) is valid UTF-8 without NUL bytes, since we read them as C strings.
 * what names the message in info for message-level failures ("envelope").
 * Returns 0, HIE_EINVAL (info->field names the string field), HIE_EPROTO, or HIE_ELIMIT (arena
 * cap, or nesting deeper than 16). [out] *out owned by arena. */
HIE_MUST_CHECK int hie_proto_unpack_checked(const ProtobufCMessageDescriptor *desc,
    hie_span_t in, hie_arena_t *arena, ProtobufCMessage **out, hie_errinfo_t *info,
    const char *what);

/* Drops the fields m (and every message it holds) carries that this version does not know,
 * so what a member sends is stored and passed on as the fields it declares and nothing else
 * (protobuf-c would otherwise pack them back in, opaque). For arena-unpacked messages: frees
 * nothing. Recursion is bounded by the nesting the wire check allows. Returns the most it
 * dropped from any one message (a newer member's field in each of 1,000 entries is 1). */
size_t hie_proto_strip_unknown(ProtobufCMessage *m);

/* A ProtobufCAllocator that allocates from arena and frees nothing. */
ProtobufCAllocator hie_proto_arena_allocator(hie_arena_t *arena);

/* Commands: unpack + validate (ids, org ids, roles, one body set). Same returns as decode. */
HIE_MUST_CHECK int hie_proto_command_decode(hie_span_t in, hie_arena_t *arena,
    hie_command_t **out, hie_errinfo_t *info);
HIE_MUST_CHECK int hie_proto_command_validate(const hie_command_t *cmd, hie_errinfo_t *info);
/* Whether the encoded Command in carries body field number field (a HIE__V1__COMMAND__BODY_*
 * value; any top-level length-delimited field of that number counts), by a scan of its
 * top-level fields without decoding: false when it does not or the bytes are malformed (a
 * decode would then refuse them). For the log thread to pick out a batch's MPI feeds cheaply. */
bool hie_proto_command_has_body(hie_span_t in, uint32_t field);

/* The one mapping from HIE_E* (and -errno) to wire Error codes. */
Hie__V1__ErrorCode hie_proto_error_code(int rc);
/* Stable text name of a wire code ("BAD_REQUEST", ...). Never NULL. */
const char *hie_proto_error_code_name(Hie__V1__ErrorCode code);
/* Stable names for enums used in logs and CLIs. Never NULL. */
const char *hie_proto_role_name(Hie__V1__Role role);
/* Parses "hospital", "clinic", ... Returns 0 or HIE_EINVAL. */
HIE_MUST_CHECK int hie_proto_role_parse(const char *s, Hie__V1__Role *out);
const char *hie_proto_purpose_name(Hie__V1__PurposeOfUse p);
/* Name of the body kind of an envelope ("ping", "whoami", ...), "none" if unset. */
const char *hie_proto_body_name(const hie_envelope_t *env);

#ifdef __cplusplus
}
#endif
#endif
