/*
 * codec.c - protobuf-c glue: the arena allocator, pack/unpack, and command validation.
 *
 * protobuf-c reports a failed unpack only as NULL; we tell "out of arena" (HIE_ELIMIT, the
 * peer sent something that expands past the cap) from "malformed" (HIE_EPROTO) by asking the
 * arena whether its cap was hit.
 */
#include "proto_int.h"

#include <string.h>

static void *
arena_pbc_alloc(void *ctx, size_t size)
{
    return hie_arena_alloc(ctx, size);
}

static void
arena_pbc_free(void *ctx, void *ptr)
{
    (void)ctx;
    (void)ptr; /* the arena frees everything at once */
}

ProtobufCAllocator
hie_proto_arena_allocator(hie_arena_t *arena)
{
    HIE_ASSERT(arena != NULL);
    ProtobufCAllocator a = {arena_pbc_alloc, arena_pbc_free, arena};
    return a;
}

/* ---- wire check: string fields are C strings to us, so they must be valid UTF-8 without NUL
 * bytes (protobuf-c would hand us "ab" for "ab\0cd", and two wire ids would collide). ------ */

#define WIRE_DEPTH_MAX 16

static int
wire_varint(hie_span_t *in, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (in->len == 0) {
            return HIE_EPROTO;
        }
        uint8_t b = *in->ptr++;
        in->len--;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            return 0;
        }
    }
    return HIE_EPROTO;
}

/* RFC 3629 UTF-8: no overlongs, no surrogates, nothing above U+10FFFF; and no NUL. */
static bool
wire_utf8_ok(const uint8_t *p, size_t len)
{
    static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
    const uint64_t high = 0x8080808080808080ull, ones = 0x0101010101010101ull;
    size_t i = 0;
    while (i < len) {
        if (len - i >= 8) { /* eight ASCII bytes, none NUL, at once */
            uint64_t v;
            memcpy(&v, p + i, 8);
            if (((v | ((v - ones) & ~v)) & high) == 0) {
                i += 8;
                continue;
            }
        }
        uint8_t c = p[i];
        size_t n;
        if (c == 0) {
            return false;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            n = 1;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
        } else {
            return false;
        }
        if (len - i - 1 < n) {
            return false;
        }
        uint32_t cp = c & (0x3fu >> n);
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i + k] & 0x3fu);
        }
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

static int wire_check(const ProtobufCMessageDescriptor *desc, hie_span_t in, unsigned depth,
    hie_errinfo_t *info);

/* The descriptor of field number id: direct when the message numbers its fields 1..n in
 * order (most of ours), else protobuf-c's search. */
static const ProtobufCFieldDescriptor *
wire_field(const ProtobufCMessageDescriptor *desc, unsigned id)
{
    if (id >= 1 && id <= desc->n_fields && desc->fields[id - 1].id == id) {
        return &desc->fields[id - 1];
    }
    return protobuf_c_message_descriptor_get_field(desc, id);
}

/* Field names as the semantic checks spell them ("envelope.id"), for top-level fields. */
static const char *
wire_field_name(const ProtobufCMessageDescriptor *desc, const ProtobufCFieldDescriptor *f)
{
    static const struct {
        const ProtobufCMessageDescriptor *desc;
        const char *name, *qualified;
    } names[] = {
        {&hie__v1__envelope__descriptor, "id", "envelope.id"},
        {&hie__v1__envelope__descriptor, "correlation_id", "envelope.correlation_id"},
        {&hie__v1__command__descriptor, "requester", "command.requester"},
        {&hie__v1__command__descriptor, "request_id", "command.request_id"},
    };
    for (size_t i = 0; i < HIE_ARRAY_LEN(names); i++) {
        if (names[i].desc == desc && strcmp(names[i].name, f->name) == 0) {
            return names[i].qualified;
        }
    }
    return f->name;
}

static int
wire_check_field(const ProtobufCMessageDescriptor *desc, const ProtobufCFieldDescriptor *f,
    hie_span_t value, unsigned depth, hie_errinfo_t *info)
{
    if (f == NULL) {
        return 0; /* unknown field: protobuf-c keeps it opaque, we never read it */
    }
    if (f->type == PROTOBUF_C_TYPE_STRING && !wire_utf8_ok(value.ptr, value.len)) {
        return hie_errinfo_set(info, HIE_EINVAL, wire_field_name(desc, f),
            "not valid UTF-8 text (or contains a NUL byte)");
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        return wire_check(f->descriptor, value, depth + 1, info);
    }
    return 0;
}

/* Reads one field off in: its key and (wire types 1, 2, 5) its value; a varint's value is left
 * empty. HIE_EPROTO when the bytes run out or the wire type is not proto3's. */
static int
wire_next(hie_span_t *in, uint64_t *key, hie_span_t *value)
{
    uint64_t len = 0;
    if (wire_varint(in, key) != 0) {
        return HIE_EPROTO;
    }
    switch (*key & 7) {
    case 0:
        *value = hie_span(in->ptr, 0);
        return wire_varint(in, &len);
    case 1:
    case 5:
        len = (*key & 7) == 1 ? 8 : 4;
        break;
    case 2:
        if (wire_varint(in, &len) != 0) {
            return HIE_EPROTO;
        }
        break;
    default:
        return HIE_EPROTO; /* groups are not proto3 */
    }
    if (len > in->len) {
        return HIE_EPROTO;
    }
    *value = hie_span(in->ptr, (size_t)len);
    in->ptr += len;
    in->len -= (size_t)len;
    return 0;
}

static int
wire_check(const ProtobufCMessageDescriptor *desc, hie_span_t in, unsigned depth,
    hie_errinfo_t *info)
{
    if (depth > WIRE_DEPTH_MAX) {
        return hie_errinfo_set(info, HIE_ELIMIT, desc->name, "nested too deeply");
    }
    while (in.len > 0) {
        uint64_t key = 0;
        hie_span_t value;
        if (wire_next(&in, &key, &value) != 0) {
            return HIE_EPROTO;
        }
        if ((key & 7) == 2 && key >> 3 <= UINT32_MAX) {
            const ProtobufCFieldDescriptor *f = wire_field(desc, (unsigned)(key >> 3));
            int rc = wire_check_field(desc, f, value, depth, info);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

int
hie_proto_unpack_checked(const ProtobufCMessageDescriptor *desc, hie_span_t in,
    hie_arena_t *arena, ProtobufCMessage **out, hie_errinfo_t *info, const char *what)
{
    HIE_ASSERT(desc != NULL);
    HIE_ASSERT(out != NULL);
    *out = NULL;
    int rc = wire_check(desc, in, 0, info);
    if (rc == HIE_EINVAL || rc == HIE_ELIMIT) {
        return rc;
    }
    if (rc != 0) {
        return hie_errinfo_set(info, rc, what, "malformed protobuf");
    }
    rc = hie_proto_unpack(desc, in, arena, out);
    if (rc != 0) {
        return hie_errinfo_set(info, rc, what, rc == HIE_ELIMIT ? "too large to decode"
            : "malformed protobuf");
    }
    return 0;
}

int
hie_proto_unpack(const ProtobufCMessageDescriptor *desc, hie_span_t in, hie_arena_t *arena,
    ProtobufCMessage **out)
{
    HIE_ASSERT(desc != NULL);
    HIE_ASSERT(out != NULL);
    *out = NULL;
    ProtobufCAllocator alloc = hie_proto_arena_allocator(arena);
    bool cap_hit_before = hie_arena_cap_hit(arena);
    bool oom_before = hie_arena_out_of_memory(arena);
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &alloc, in.len, in.ptr);
    if (msg == NULL) {
        /* the system's memory is not the bytes' fault: HIE_ENOMEM, never "malformed" (apply
         * would record a refusal that a replay with memory would not); only a cap hit
         * during this unpack makes it a limit error */
        return !oom_before && hie_arena_out_of_memory(arena) ? HIE_ENOMEM
             : !cap_hit_before && hie_arena_cap_hit(arena) ? HIE_ELIMIT : HIE_EPROTO;
    }
    *out = msg;
    return 0;
}

size_t
hie_proto_strip_unknown(ProtobufCMessage *m)
{
    HIE_ASSERT(m != NULL);
    size_t most = m->n_unknown_fields;
    m->n_unknown_fields = 0;
    m->unknown_fields = NULL; /* arena memory: nothing to free */
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
            continue;
        }
        char *base = (char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
            ProtobufCMessage **arr = *(ProtobufCMessage ***)(void *)(base + f->offset);
            for (size_t k = 0; k < n; k++) {
                if (arr[k] != NULL) {
                    size_t s = hie_proto_strip_unknown(arr[k]);
                    most = s > most ? s : most;
                }
            }
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
            *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id) {
            continue; /* another member of the oneof: this pointer is not this field's */
        }
        ProtobufCMessage *sub = *(ProtobufCMessage **)(void *)(base + f->offset);
        if (sub != NULL) {
            size_t s = hie_proto_strip_unknown(sub);
            most = s > most ? s : most;
        }
    }
    return most;
}

int
hie_proto_pack(const ProtobufCMessage *msg, size_t bytes_max, uint8_t **out_buf, size_t *out_len)
{
    HIE_ASSERT(msg != NULL);
    HIE_ASSERT(out_buf != NULL);
    HIE_ASSERT(out_len != NULL);
    *out_buf = NULL;
    *out_len = 0;
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > bytes_max) {
        return HIE_ELIMIT;
    }
    uint8_t *buf = hie_mem_alloc(n);
    if (buf == NULL) {
        return HIE_ENOMEM;
    }
    size_t packed = protobuf_c_message_pack(msg, buf);
    HIE_ASSERT(packed == n);
    *out_buf = buf;
    *out_len = n;
    return 0;
}

static bool
roles_valid(size_t n, const Hie__V1__Role *roles)
{
    if (n > HIE_ORG_ROLES_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (roles[i] <= HIE__V1__ROLE__ROLE_UNSPECIFIED || roles[i] > HIE__V1__ROLE__ROLE_NODE) {
            return false;
        }
    }
    return true;
}

static bool
org_id_ok(const char *s)
{
    return s != NULL && hie_proto_org_id_valid(s, strlen(s));
}

/* Shapes only; the MPI store checks the content (seal, hashes) when it applies. */
static int
mpi_feed_validate(const Hie__V1__MpiFeedCommand *f, hie_errinfo_t *info)
{
    if (f->action < HIE__V1__FEED_ACTION__FEED_CREATE ||
        f->action > HIE__V1__FEED_ACTION__FEED_UNLINK) {
        return hie_errinfo_set(info, HIE_EINVAL, "action", "unknown");
    }
    if (!org_id_ok(f->org_id)) {
        return hie_errinfo_set(info, HIE_EINVAL, "org_id", "invalid");
    }
    if (f->rec_hash.len != 16) {
        return hie_errinfo_set(info, HIE_EINVAL, "rec_hash", "must be 16 bytes");
    }
    bool merge = f->action == HIE__V1__FEED_ACTION__FEED_MERGE;
    if (f->prior_hash.len != (merge ? 16u : 0u)) {
        return hie_errinfo_set(info, HIE_EINVAL, "prior_hash", "16 bytes for merge only");
    }
    bool demo = f->action == HIE__V1__FEED_ACTION__FEED_CREATE ||
        f->action == HIE__V1__FEED_ACTION__FEED_UPDATE;
    if (f->nonce.len != (demo ? 24u : 0u) || (demo && f->sealed.len < 16u) ||
        (!demo && f->sealed.len != 0)) {
        return hie_errinfo_set(info, HIE_EINVAL, "sealed", "sealed demographics for create "
            "and update only");
    }
    return 0;
}

/* Internal commands from our own proposers; still checked, because the log is read back. */
static int
audit_append_validate(const Hie__V1__AuditAppendCommand *a, hie_errinfo_t *info)
{
    if (a->record == NULL) {
        return hie_errinfo_set(info, HIE_EINVAL, "audit_append.record", "missing");
    }
    /* an org id or a certificate's name (64 at most): one longer than LMDB's 511-byte key
     * would fail apply, which stops the node at every replay (shorter ones applied before
     * this check and still do) */
    if (a->record->requester_org != NULL && strlen(a->record->requester_org) > 511u) {
        return hie_errinfo_set(info, HIE_EINVAL, "audit_append.record.requester_org",
            "longer than 511 bytes");
    }
    size_t n = a->record->n_subject_commitments;
    if (n > HIE_AUDIT_SUBJECTS_MAX || a->n_subjects_sealed != n || a->n_subject_keys != n) {
        return hie_errinfo_set(info, HIE_EINVAL, "audit_append.subjects", "counts differ");
    }
    for (size_t i = 0; i < n; i++) {
        if (a->record->subject_commitments[i].len != 32u ||
            a->subject_keys[i].len != HIE_PROTO_REC_HASH_BYTES) {
            return hie_errinfo_set(info, HIE_EINVAL, "audit_append.subjects", "bad hash");
        }
    }
    return 0;
}

/* A worker's batch: each append as if it came alone. */
static int
audit_batch_validate(const Hie__V1__AuditBatchCommand *b, hie_errinfo_t *info)
{
    if (b->n_appends == 0 || b->n_appends > HIE_AUDIT_BATCH_RECORDS_MAX) {
        return hie_errinfo_set(info, HIE_EINVAL, "audit_batch.appends", "1 to 64 records");
    }
    for (size_t i = 0; i < b->n_appends; i++) {
        int rc = audit_append_validate(b->appends[i], info);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int
push_validate(const Hie__V1__PushCommand *p, hie_errinfo_t *info)
{
    const Hie__V1__QueuedMessage *m = p->message;
    bool repository = m != NULL && m->recipient_org != NULL && m->recipient_org[0] == '\0';
    if (m == NULL || m->message_id == NULL || m->message_id[0] == '\0' ||
        strlen(m->message_id) > HIE_ORG_ID_BYTES_MAX + 1u + HIE_PROTO_ID_BYTES_MAX ||
        m->sender_org == NULL || m->recipient_org == NULL ||
        (!repository && !hie_proto_org_id_valid(m->recipient_org, strlen(m->recipient_org))) ||
        (repository && p->patient_rec_hash.len != HIE_PROTO_REC_HASH_BYTES) ||
        m->sealed_document.len < 40u) {
        return hie_errinfo_set(info, HIE_EINVAL, "push.message", "incomplete");
    }
    if (p->audit == NULL) {
        return hie_errinfo_set(info, HIE_EINVAL, "push.audit", "missing");
    }
    return audit_append_validate(p->audit, info);
}

static bool
recipient_ok(const char *org)
{
    return org != NULL && hie_proto_org_id_valid(org, strlen(org));
}

static bool
hashes_ok(const ProtobufCBinaryData *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (h[i].len != HIE_PROTO_REC_HASH_BYTES) {
            return false;
        }
    }
    return n <= HIE_SUBSCRIPTION_ROSTER_BATCH_MAX;
}

/* Notices of an ADT fan-out or of a decided replay: each with its audit record. */
static int
notices_validate(Hie__V1__Notice *const *notices, size_t n, const char *what,
    hie_errinfo_t *info)
{
    for (size_t i = 0; i < n; i++) {
        const Hie__V1__Notice *nt = notices[i];
        if (nt->subscription_id == NULL || nt->audit == NULL || (nt->message != NULL &&
            (nt->message->recipient_org == NULL || !recipient_ok(nt->message->recipient_org) ||
             (nt->message->subject_rec_hash.len != 0 &&
              nt->message->subject_rec_hash.len != HIE_PROTO_REC_HASH_BYTES)))) {
            return hie_errinfo_set(info, HIE_EINVAL, what, "incomplete");
        }
        int rc = audit_append_validate(nt->audit, info);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int
adt_validate(const Hie__V1__AdtCommand *c, hie_errinfo_t *info)
{
    if (c->sender_org == NULL || !recipient_ok(c->sender_org) ||
        c->n_notices > HIE_ADT_NOTICES_MAX || (c->visit_id != NULL && c->visit_id[0] != '\0' &&
        !hie_proto_id_valid(c->visit_id, strlen(c->visit_id)))) {
        return hie_errinfo_set(info, HIE_EINVAL, "adt", "invalid");
    }
    return notices_validate(c->notices, c->n_notices, "adt.notices", info);
}

static int
replay_validate(const Hie__V1__ReplayCommand *c, hie_errinfo_t *info)
{
    if (c->subscription_id == NULL || c->n_notices > HIE_REPLAY_NOTICES_MAX ||
        (!c->decided && c->n_notices > 0)) {
        return hie_errinfo_set(info, HIE_EINVAL, "replay", "invalid");
    }
    return notices_validate(c->notices, c->n_notices, "replay.notices", info);
}

/* Subscriptions and ADT fan-out. */
static int
command_validate_adt(const hie_command_t *cmd, hie_errinfo_t *info)
{
    switch (cmd->body_case) {
    case HIE__V1__COMMAND__BODY_ADT:
        return adt_validate(cmd->adt, info);
    case HIE__V1__COMMAND__BODY_SUBSCRIBE:
        return cmd->subscribe->subscription != NULL &&
                       recipient_ok(cmd->subscribe->subscription->org_id) &&
                       hashes_ok(cmd->subscribe->roster_rec_hashes,
                           cmd->subscribe->n_roster_rec_hashes)
                   ? 0
                   : hie_errinfo_set(info, HIE_EINVAL, "subscribe", "invalid");
    case HIE__V1__COMMAND__BODY_ROSTER:
        return cmd->roster->subscription_id != NULL &&
                       hashes_ok(cmd->roster->add, cmd->roster->n_add) &&
                       hashes_ok(cmd->roster->remove, cmd->roster->n_remove)
                   ? 0
                   : hie_errinfo_set(info, HIE_EINVAL, "roster", "invalid");
    case HIE__V1__COMMAND__BODY_UNSUBSCRIBE:
        return cmd->unsubscribe->subscription_id != NULL ? 0
            : hie_errinfo_set(info, HIE_EINVAL, "unsubscribe", "invalid");
    case HIE__V1__COMMAND__BODY_REPLAY:
        return replay_validate(cmd->replay, info);
    case HIE__V1__COMMAND__BODY_RESPONDER:
        return recipient_ok(cmd->responder->org_id) ? 0
            : hie_errinfo_set(info, HIE_EINVAL, "responder.org_id", "invalid");
    case HIE__V1__COMMAND__BODY_RETRACT:
        return hie_proto_retract_validate(cmd->retract->document_id, cmd->retract->reason,
            info);
    default:
        return hie_errinfo_set(info, HIE_EINVAL, "command.body", "unknown command");
    }
}

/* A redrive: the recipient, and (decided) its audit records as appends that came alone. */
static int
redrive_validate(const Hie__V1__RedriveCommand *r, hie_errinfo_t *info)
{
    if (!recipient_ok(r->recipient_org) || r->n_audits > HIE_REDRIVE_DECIDED_MAX ||
        r->n_seqs > r->n_audits) {
        return hie_errinfo_set(info, HIE_EINVAL, "redrive", "invalid");
    }
    for (size_t i = 0; i < r->n_audits; i++) {
        int rc = audit_append_validate(r->audits[i], info);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* The consent, audit and delivery commands. */
static int
command_validate_exchange(const hie_command_t *cmd, hie_errinfo_t *info)
{
    switch (cmd->body_case) {
    case HIE__V1__COMMAND__BODY_CONSENT_SUBMIT:
        return cmd->consent_submit->directive != NULL &&
                       cmd->consent_submit->rec_hash.len == HIE_PROTO_REC_HASH_BYTES
                   ? 0
                   : hie_errinfo_set(info, HIE_EINVAL, "consent_submit", "incomplete");
    case HIE__V1__COMMAND__BODY_CONSENT_REVOKE:
        return cmd->consent_revoke->id != NULL && cmd->consent_revoke->id[0] != '\0'
                   ? 0
                   : hie_errinfo_set(info, HIE_EINVAL, "consent_revoke.id", "missing");
    case HIE__V1__COMMAND__BODY_AUDIT_APPEND:
        return audit_append_validate(cmd->audit_append, info);
    case HIE__V1__COMMAND__BODY_AUDIT_BATCH:
        return audit_batch_validate(cmd->audit_batch, info);
    case HIE__V1__COMMAND__BODY_PUSH:
        return push_validate(cmd->push, info);
    case HIE__V1__COMMAND__BODY_DELIVERY_ACK:
        return cmd->delivery_ack->recipient_org != NULL &&
                       hie_proto_org_id_valid(cmd->delivery_ack->recipient_org,
                           strlen(cmd->delivery_ack->recipient_org)) &&
                       cmd->delivery_ack->n_seqs <= HIE_DELIVERY_ACK_SEQS_MAX
                   ? 0
                   : hie_errinfo_set(info, HIE_EINVAL, "delivery_ack", "invalid");
    case HIE__V1__COMMAND__BODY_DEAD_LETTER:
        if (!recipient_ok(cmd->dead_letter->recipient_org) || cmd->dead_letter->seq == 0) {
            return hie_errinfo_set(info, HIE_EINVAL, "dead_letter", "invalid");
        }
        return cmd->dead_letter->audit != NULL
                   ? audit_append_validate(cmd->dead_letter->audit, info) : 0;
    case HIE__V1__COMMAND__BODY_REDRIVE:
        return redrive_validate(cmd->redrive, info);
    case HIE__V1__COMMAND__BODY_DEAD_PURGE:
        return recipient_ok(cmd->dead_purge->recipient_org) ? 0
            : hie_errinfo_set(info, HIE_EINVAL, "dead_purge", "invalid");
    case HIE__V1__COMMAND__BODY_AUDIT_CHECKPOINT:
        return cmd->audit_checkpoint->root.len == 32u && cmd->audit_checkpoint->note != NULL
                   ? 0
                   : hie_errinfo_set(info, HIE_EINVAL, "audit_checkpoint", "incomplete");
    default:
        return command_validate_adt(cmd, info);
    }
}

static int
command_validate_body(const hie_command_t *cmd, hie_errinfo_t *info)
{
    switch (cmd->body_case) {
    case HIE__V1__COMMAND__BODY_ORG_REGISTER: {
        const Hie__V1__OrgRegister *b = cmd->org_register;
        if (!org_id_ok(b->org_id)) {
            return hie_errinfo_set(info, HIE_EINVAL, "org_id",
                "must match [a-z0-9][a-z0-9._-]{0,62}");
        }
        if (b->display_name == NULL || strlen(b->display_name) > HIE_ORG_NAME_BYTES_MAX) {
            return hie_errinfo_set(info, HIE_EINVAL, "display_name", "at most 200 bytes");
        }
        if (b->n_roles == 0 || !roles_valid(b->n_roles, b->roles)) {
            return hie_errinfo_set(info, HIE_EINVAL, "roles", "1 to 8 known roles");
        }
        return 0;
    }
    case HIE__V1__COMMAND__BODY_ORG_SET_ROLES:
        if (!org_id_ok(cmd->org_set_roles->org_id)) {
            return hie_errinfo_set(info, HIE_EINVAL, "org_id", "invalid");
        }
        if (cmd->org_set_roles->n_roles == 0 ||
            !roles_valid(cmd->org_set_roles->n_roles, cmd->org_set_roles->roles)) {
            return hie_errinfo_set(info, HIE_EINVAL, "roles", "1 to 8 known roles");
        }
        return 0;
    case HIE__V1__COMMAND__BODY_ORG_SUSPEND:
        if (!org_id_ok(cmd->org_suspend->org_id)) {
            return hie_errinfo_set(info, HIE_EINVAL, "org_id", "invalid");
        }
        if (cmd->org_suspend->reason != NULL && strlen(cmd->org_suspend->reason) > 200) {
            return hie_errinfo_set(info, HIE_EINVAL, "reason", "at most 200 bytes");
        }
        return 0;
    case HIE__V1__COMMAND__BODY_ORG_REINSTATE:
        if (!org_id_ok(cmd->org_reinstate->org_id)) {
            return hie_errinfo_set(info, HIE_EINVAL, "org_id", "invalid");
        }
        return 0;
    case HIE__V1__COMMAND__BODY_MPI_FEED:
        return mpi_feed_validate(cmd->mpi_feed, info);
    case HIE__V1__COMMAND__BODY_MPI_REVIEW:
        return cmd->mpi_review->id != 0 ? 0 : hie_errinfo_set(info, HIE_EINVAL, "id", "missing");
    case HIE__V1__COMMAND__BODY_MPI_MODEL:
        return cmd->mpi_model->model != NULL ? 0 : hie_errinfo_set(info, HIE_EINVAL, "model",
            "missing");
    default:
        return command_validate_exchange(cmd, info);
    }
}

int
hie_proto_command_validate(const hie_command_t *cmd, hie_errinfo_t *info)
{
    HIE_ASSERT(cmd != NULL);
    size_t rlen = cmd->requester != NULL ? strlen(cmd->requester) : 0;
    bool operator = cmd->requester != NULL && strcmp(cmd->requester, "@operator") == 0;
    if (!operator && !hie_proto_org_id_valid(cmd->requester, rlen)) {
        return hie_errinfo_set(info, HIE_EINVAL, "command.requester", "invalid");
    }
    size_t idlen = cmd->request_id != NULL ? strlen(cmd->request_id) : 0;
    if (!hie_proto_id_valid(cmd->request_id, idlen)) {
        return hie_errinfo_set(info, HIE_EINVAL, "command.request_id", "invalid");
    }
    if (cmd->time_ms <= 0) {
        return hie_errinfo_set(info, HIE_EINVAL, "command.time_ms", "missing");
    }
    return command_validate_body(cmd, info);
}

bool
hie_proto_command_has_body(hie_span_t in, uint32_t field)
{
    uint64_t key = 0;
    hie_span_t value;
    while (in.len > 0) {
        if (wire_next(&in, &key, &value) != 0) {
            return false;
        }
        if ((key & 7) == 2 && key >> 3 == field) {
            return true;
        }
    }
    return false;
}

int
hie_proto_command_decode(hie_span_t in, hie_arena_t *arena, hie_command_t **out,
    hie_errinfo_t *info)
{
    HIE_ASSERT(out != NULL);
    *out = NULL;
    ProtobufCMessage *msg = NULL;
    int rc = hie_proto_unpack_checked(&hie__v1__command__descriptor, in, arena, &msg, info,
        "command");
    if (rc != 0) {
        return rc;
    }
    rc = hie_proto_command_validate((hie_command_t *)msg, info);
    if (rc != 0) {
        return rc;
    }
    *out = (hie_command_t *)msg;
    return 0;
}
