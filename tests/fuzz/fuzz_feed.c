/*
 * fuzz_feed.c - libFuzzer driver for the MPI's proposer side: the bytes as a member's
 * MpiFeedRequest (unpacked with the wire checks) go through hie_mpi_feed_command(), and as a
 * PdqQuery's demographics through hie_mpi_person_from_demographics(). Contract checked: only
 * documented return codes; on success the sealed blob opens with the same key and record
 * identity and holds the request's MRN; on failure a field is named. Also decodes the bytes
 * as a stored MpiRecord and MpiModel (read-back validation must refuse garbage, not crash).
 * Built with replay_main.c into fuzz_feed_replay, which CI runs over its corpus.
 */
#include "hie/mpi_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static hie_mpi_key_t *
fuzz_key(void)
{
    static hie_mpi_key_t *key;
    if (key == NULL) {
        char path[64];
        snprintf(path, sizeof(path), "/tmp/hie-fuzz-feed-%ld.key", (long)getpid());
        (void)unlink(path);
        HIE_ASSERT(hie_mpi_key_generate(path) == 0);
        HIE_ASSERT(hie_mpi_key_load(&key, path) == 0);
        (void)unlink(path);
    }
    return key;
}

static void
check_sealed(const hie_mpi_key_t *key, const Hie__V1__MpiFeedCommand *cmd, const char *mrn,
    hie_arena_t *arena)
{
    size_t cap = cmd->sealed.len, len = 0;
    uint8_t *plain = hie_arena_alloc(arena, cap);
    HIE_ASSERT(plain != NULL);
    HIE_ASSERT(hie_mpi_open(key, hie_span(cmd->sealed.data, cmd->sealed.len),
        hie_span(cmd->rec_hash.data, cmd->rec_hash.len), cmd->nonce.data, plain, cap,
        &len) == 0);
    ProtobufCMessage *m = NULL;
    HIE_ASSERT(hie_proto_unpack(&hie__v1__sealed_person__descriptor, hie_span(plain, len),
        arena, &m) == 0);
    HIE_ASSERT(strcmp(((Hie__V1__SealedPerson *)m)->mrn, mrn) == 0);
}

static void
fuzz_request(const uint8_t *data, size_t size, hie_arena_t *arena)
{
    ProtobufCMessage *m = NULL;
    hie_errinfo_t info = {0};
    if (hie_proto_unpack_checked(&hie__v1__mpi_feed_request__descriptor, hie_span(data, size),
            arena, &m, &info, "mpi_feed") != 0) {
        return;
    }
    const Hie__V1__MpiFeedRequest *req = (const Hie__V1__MpiFeedRequest *)m;
    Hie__V1__MpiFeedCommand *cmd = NULL;
    memset(&info, 0, sizeof(info));
    int rc = hie_mpi_feed_command(fuzz_key(), "org-a", req, arena, &cmd, &info);
    HIE_ASSERT(rc == 0 || rc == HIE_EINVAL || rc == HIE_ELIMIT || rc == HIE_EDENIED ||
        rc == HIE_ENOMEM);
    if (rc == HIE_EINVAL || rc == HIE_ELIMIT || rc == HIE_EDENIED) {
        HIE_ASSERT(info.field != NULL && info.reason != NULL);
    }
    if (rc == 0 && cmd->sealed.len > 0) {
        check_sealed(fuzz_key(), cmd, req->patient->mrn, arena);
    }
    hie_mpi_person_t p;
    rc = hie_mpi_person_from_demographics(req->demographics, &p, &info);
    HIE_ASSERT(rc == 0 || rc == HIE_EINVAL || rc == HIE_ELIMIT);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hie_arena_t *arena = NULL;
    HIE_ASSERT(hie_arena_create(&arena, 8u << 20) == 0);
    fuzz_request(data, size, arena);
    ProtobufCMessage *m = NULL;
    if (hie_proto_unpack(&hie__v1__mpi_model__descriptor, hie_span(data, size), arena,
            &m) == 0) {
        hie_mpi_model_t model;
        int rc = hie_mpi_model_from_proto((const Hie__V1__MpiModel *)m, &model);
        HIE_ASSERT(rc == 0 || rc == HIE_EINVAL);
    }
    hie_arena_destroy(&arena);
    return 0;
}
