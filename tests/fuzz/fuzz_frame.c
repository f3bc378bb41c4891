/*
 * fuzz_frame.c - libFuzzer driver for the member protocol's untrusted decoders (style.md 3.10):
 * the same bytes go through hie_proto_frame_decode() (prefix, unpack, semantic checks), through
 * hie_proto_unpack() as an AdminRequest (the ipc:// admin channel) and through
 * hie_proto_command_decode() (log entries), each in a fresh capped arena.
 *
 * Built two ways: with clang -fsanitize=fuzzer,address for fuzzing (see README.md), and with
 * replay_main.c into fuzz_frame_replay, which CI runs over corpus/fuzz_frame/.
 * Any violated contract aborts (HIE_ASSERT), which the fuzzer reports as a crash.
 */
#include "hie/proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
frame_rc_documented(int rc)
{
    return rc == 0 || rc == HIE_EAGAIN || rc == HIE_ELIMIT || rc == HIE_EPROTO ||
           rc == HIE_EINVAL;
}

static void
fuzz_frame_decode(hie_span_t in)
{
    hie_arena_t *arena = NULL;
    HIE_ASSERT(hie_arena_create(&arena, HIE_ARENA_BYTES_MAX) == 0);
    hie_envelope_t *env = NULL;
    size_t consumed = 0;
    hie_errinfo_t info = {0};
    int rc = hie_proto_frame_decode(in, HIE_PROTO_FRAME_BYTES_MAX, arena, &env, &consumed,
        &info);
    HIE_ASSERT(frame_rc_documented(rc));
    if (rc == 0) {
        HIE_ASSERT(env != NULL);
        HIE_ASSERT(consumed > HIE_PROTO_FRAME_HEADER_BYTES);
        HIE_ASSERT(consumed <= in.len);
        HIE_ASSERT(consumed == HIE_PROTO_FRAME_HEADER_BYTES + hie_load_be32(in.ptr));
        HIE_ASSERT(hie_proto_envelope_validate(env, NULL) == 0);
        /* a valid request re-encodes within the limit */
        uint8_t *buf = NULL;
        size_t len = 0;
        HIE_ASSERT(hie_proto_frame_encode(env, HIE_PROTO_FRAME_BYTES_MAX, &buf, &len) == 0);
        hie_mem_free(buf, len);
    } else {
        HIE_ASSERT(env == NULL);
        HIE_ASSERT(consumed == 0);
    }
    if (rc == HIE_EINVAL) {
        HIE_ASSERT(info.field != NULL);
    }
    hie_arena_destroy(&arena);
}

static void
fuzz_admin_unpack(hie_span_t in)
{
    hie_arena_t *arena = NULL;
    HIE_ASSERT(hie_arena_create(&arena, HIE_ADMIN_MSG_BYTES_MAX * 4u) == 0);
    ProtobufCMessage *msg = NULL;
    int rc = hie_proto_unpack(&hie__v1__admin_request__descriptor, in, arena, &msg);
    HIE_ASSERT(rc == 0 || rc == HIE_EPROTO || rc == HIE_ELIMIT);
    if (rc == 0) {
        HIE_ASSERT(msg != NULL);
        Hie__V1__AdminRequest *req = (Hie__V1__AdminRequest *)msg;
        if (req->body_case == HIE__V1__ADMIN_REQUEST__BODY_COMMAND) {
            int vrc = hie_proto_command_validate(req->command, NULL);
            HIE_ASSERT(vrc == 0 || vrc == HIE_EINVAL);
        }
    } else {
        HIE_ASSERT(msg == NULL);
    }
    hie_arena_destroy(&arena);
}

static void
fuzz_command_decode(hie_span_t in)
{
    hie_arena_t *arena = NULL;
    HIE_ASSERT(hie_arena_create(&arena, HIE_ARENA_BYTES_MAX) == 0);
    hie_command_t *cmd = NULL;
    hie_errinfo_t info = {0};
    int rc = hie_proto_command_decode(in, arena, &cmd, &info);
    HIE_ASSERT(rc == 0 || rc == HIE_EPROTO || rc == HIE_ELIMIT || rc == HIE_EINVAL);
    if (rc == 0) {
        HIE_ASSERT(cmd != NULL);
        HIE_ASSERT(hie_proto_command_validate(cmd, NULL) == 0);
    } else {
        HIE_ASSERT(cmd == NULL);
        HIE_ASSERT(info.field != NULL);
    }
    hie_arena_destroy(&arena);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hie_span_t in = hie_span(data, size);
    fuzz_frame_decode(in);
    fuzz_admin_unpack(in);
    fuzz_command_decode(in);
    HIE_ASSERT(hie_mem_live_bytes() == 0); /* every decoder freed what it allocated */
    return 0;
}
