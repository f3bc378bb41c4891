/*
 * test_codec.c - unit tests for proto/src/codec.c: command validation for every command kind
 * (org ids, roles, display names, requester, request id, time), command decode round trips,
 * hie_proto_pack/unpack limits and the arena allocator.
 */
#include "hie/proto.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

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

TestSuite(proto_codec, .init = setup, .fini = teardown);

/* A command and storage for every body kind, so one helper builds any of them. */
struct cmd_buf {
    hie_command_t cmd;
    Hie__V1__OrgRegister reg;
    Hie__V1__OrgSetRoles set_roles;
    Hie__V1__OrgSuspend suspend;
    Hie__V1__OrgReinstate reinstate;
    Hie__V1__Role roles[16];
};

static const Hie__V1__Command__BodyCase all_kinds[] = {
    HIE__V1__COMMAND__BODY_ORG_REGISTER,
    HIE__V1__COMMAND__BODY_ORG_SET_ROLES,
    HIE__V1__COMMAND__BODY_ORG_SUSPEND,
    HIE__V1__COMMAND__BODY_ORG_REINSTATE,
};

/* A valid command of kind for org_id, from the operator. */
static hie_command_t *
cmd_make(struct cmd_buf *b, Hie__V1__Command__BodyCase kind, const char *org_id)
{
    memset(b, 0, sizeof(*b));
    hie__v1__command__init(&b->cmd);
    hie__v1__org_register__init(&b->reg);
    hie__v1__org_set_roles__init(&b->set_roles);
    hie__v1__org_suspend__init(&b->suspend);
    hie__v1__org_reinstate__init(&b->reinstate);
    b->roles[0] = HIE__V1__ROLE__ROLE_HOSPITAL;
    b->roles[1] = HIE__V1__ROLE__ROLE_LAB;
    b->cmd.requester = "@operator";
    b->cmd.request_id = "admin-0001";
    b->cmd.time_ms = 1700000000000;
    b->cmd.node_id = "node-1";
    b->cmd.body_case = kind;
    char *id = (char *)(uintptr_t)org_id;
    switch (kind) {
    case HIE__V1__COMMAND__BODY_ORG_REGISTER:
        b->reg.org_id = id;
        b->reg.display_name = "Acme General Hospital";
        b->reg.n_roles = 2;
        b->reg.roles = b->roles;
        b->cmd.org_register = &b->reg;
        break;
    case HIE__V1__COMMAND__BODY_ORG_SET_ROLES:
        b->set_roles.org_id = id;
        b->set_roles.n_roles = 2;
        b->set_roles.roles = b->roles;
        b->cmd.org_set_roles = &b->set_roles;
        break;
    case HIE__V1__COMMAND__BODY_ORG_SUSPEND:
        b->suspend.org_id = id;
        b->suspend.reason = "contract ended";
        b->cmd.org_suspend = &b->suspend;
        break;
    case HIE__V1__COMMAND__BODY_ORG_REINSTATE:
        b->reinstate.org_id = id;
        b->cmd.org_reinstate = &b->reinstate;
        break;
    default:
        break;
    }
    return &b->cmd;
}

static void
expect_invalid(const hie_command_t *cmd, const char *field, const char *what)
{
    hie_errinfo_t info = {0};
    int rc = hie_proto_command_validate(cmd, &info);
    cr_assert_eq(rc, HIE_EINVAL, "%s: rc=%s", what, hie_strerror_name(rc));
    cr_assert_not_null(info.field, "%s", what);
    cr_assert_str_eq(info.field, field, "%s", what);
    cr_assert_not_null(info.reason, "%s", what);
}

static void
expect_valid(const hie_command_t *cmd, const char *what)
{
    hie_errinfo_t info = {0};
    int rc = hie_proto_command_validate(cmd, &info);
    cr_assert_eq(rc, 0, "%s: rc=%s field=%s", what, hie_strerror_name(rc),
        info.field != NULL ? info.field : "-");
}

Test(proto_codec, every_command_kind_is_valid_when_well_formed)
{
    struct cmd_buf b;
    for (size_t i = 0; i < HIE_ARRAY_LEN(all_kinds); i++) {
        expect_valid(cmd_make(&b, all_kinds[i], "acme"), "kind");
    }
}

Test(proto_codec, bad_org_ids_are_refused_for_every_kind)
{
    char too_long[HIE_ORG_ID_BYTES_MAX + 2];
    memset(too_long, 'a', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0'; /* 64 characters */
    const char *const bad[] = {"Upper", "-lead", ".lead", "_lead", too_long, "", "a b",
        "acme:1", "acme/x", "caf\xc3\xa9", "ACME"};
    struct cmd_buf b;
    for (size_t k = 0; k < HIE_ARRAY_LEN(all_kinds); k++) {
        for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
            expect_invalid(cmd_make(&b, all_kinds[k], bad[i]), "org_id", bad[i]);
        }
    }
}

Test(proto_codec, good_org_id_edge_cases_are_accepted_for_every_kind)
{
    char longest[HIE_ORG_ID_BYTES_MAX + 1];
    memset(longest, 'z', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0'; /* 63 characters */
    const char *const good[] = {"a", "0", "0rg", "a.b_c-d", "lab-2.example", longest};
    struct cmd_buf b;
    for (size_t k = 0; k < HIE_ARRAY_LEN(all_kinds); k++) {
        for (size_t i = 0; i < HIE_ARRAY_LEN(good); i++) {
            expect_valid(cmd_make(&b, all_kinds[k], good[i]), good[i]);
        }
    }
}

Test(proto_codec, register_roles_must_be_1_to_8_known_roles)
{
    struct cmd_buf b;
    hie_command_t *c = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_REGISTER, "acme");
    b.reg.n_roles = 0;
    expect_invalid(c, "roles", "no roles");

    c = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_REGISTER, "acme");
    static const int unknown[] = {HIE__V1__ROLE__ROLE_UNSPECIFIED, 8, 99, -1};
    for (size_t i = 0; i < HIE_ARRAY_LEN(unknown); i++) {
        b.roles[1] = (Hie__V1__Role)unknown[i];
        expect_invalid(c, "roles", "unknown role");
    }

    c = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_REGISTER, "acme");
    for (size_t i = 0; i < 9; i++) {
        b.roles[i] = (Hie__V1__Role)(1 + i % 7);
    }
    b.reg.n_roles = 9;
    expect_invalid(c, "roles", "9 roles");
    b.reg.n_roles = HIE_ORG_ROLES_MAX;
    expect_valid(c, "8 roles");
    b.reg.n_roles = 7;
    for (size_t i = 0; i < 7; i++) {
        b.roles[i] = (Hie__V1__Role)(HIE__V1__ROLE__ROLE_HOSPITAL + i);
    }
    expect_valid(c, "every known role");
}

Test(proto_codec, set_roles_roles_must_be_1_to_8_known_roles)
{
    struct cmd_buf b;
    hie_command_t *c = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_SET_ROLES, "acme");
    b.set_roles.n_roles = 0;
    expect_invalid(c, "roles", "no roles");
    b.set_roles.n_roles = 2;
    b.roles[0] = HIE__V1__ROLE__ROLE_UNSPECIFIED;
    expect_invalid(c, "roles", "unspecified role");
    b.roles[0] = (Hie__V1__Role)8;
    expect_invalid(c, "roles", "role 8");
    for (size_t i = 0; i < 9; i++) {
        b.roles[i] = HIE__V1__ROLE__ROLE_CLINIC;
    }
    b.set_roles.n_roles = 9;
    expect_invalid(c, "roles", "9 roles");
    b.set_roles.n_roles = 8;
    expect_valid(c, "8 roles");
}

Test(proto_codec, display_name_is_at_most_200_bytes)
{
    char name[HIE_ORG_NAME_BYTES_MAX + 2];
    memset(name, 'N', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0'; /* 201 bytes */
    struct cmd_buf b;
    hie_command_t *c = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_REGISTER, "acme");
    b.reg.display_name = name;
    expect_invalid(c, "display_name", "201 bytes");
    name[HIE_ORG_NAME_BYTES_MAX] = '\0';
    expect_valid(c, "200 bytes");
    /* the limit is in bytes: 100 two-byte characters are 200 bytes */
    char utf8[2 * 101 + 1];
    for (size_t i = 0; i < 101; i++) {
        utf8[2 * i] = (char)0xc3;
        utf8[2 * i + 1] = (char)0xa9;
    }
    utf8[2 * 101] = '\0';
    b.reg.display_name = utf8;
    expect_invalid(c, "display_name", "101 two-byte characters");
    utf8[200] = '\0';
    expect_valid(c, "100 two-byte characters");
}

Test(proto_codec, suspend_reason_is_at_most_200_bytes)
{
    char reason[202];
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    struct cmd_buf b;
    hie_command_t *c = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_SUSPEND, "acme");
    b.suspend.reason = reason;
    expect_invalid(c, "reason", "201 bytes");
    reason[200] = '\0';
    expect_valid(c, "200 bytes");
    b.suspend.reason = "";
    expect_valid(c, "no reason");
}

Test(proto_codec, requester_is_operator_or_an_org_id)
{
    struct cmd_buf b;
    hie_command_t *c = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_REINSTATE, "acme");
    expect_valid(c, "@operator");
    c->requester = "acme-hospital";
    expect_valid(c, "an org id");
    static const char *const bad[] = {"@other", "@Operator", "@operator ", "operator@", "",
        "Acme", "-x"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        c->requester = (char *)(uintptr_t)bad[i];
        expect_invalid(c, "command.requester", bad[i]);
    }
    c->requester = NULL;
    expect_invalid(c, "command.requester", "NULL");
}

Test(proto_codec, request_id_must_be_an_envelope_id)
{
    char long_id[HIE_PROTO_ID_BYTES_MAX + 2];
    memset(long_id, 'i', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    struct cmd_buf b;
    hie_command_t *c = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_SUSPEND, "acme");
    const char *const bad[] = {"", "a b", long_id, "id/1"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bad); i++) {
        c->request_id = (char *)(uintptr_t)bad[i];
        expect_invalid(c, "command.request_id", bad[i]);
    }
    long_id[HIE_PROTO_ID_BYTES_MAX] = '\0';
    c->request_id = long_id;
    expect_valid(c, "64 characters");
}

Test(proto_codec, time_is_required)
{
    struct cmd_buf b;
    hie_command_t *c = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_REGISTER, "acme");
    c->time_ms = 0;
    expect_invalid(c, "command.time_ms", "missing time");
    c->time_ms = -5;
    expect_invalid(c, "command.time_ms", "negative time");
    c->time_ms = 1;
    expect_valid(c, "time 1");
}

Test(proto_codec, command_without_a_body_is_refused)
{
    struct cmd_buf b;
    hie_command_t *c = cmd_make(&b, HIE__V1__COMMAND__BODY__NOT_SET, "acme");
    expect_invalid(c, "command.body", "no body");
}

Test(proto_codec, requester_is_checked_before_the_body)
{
    struct cmd_buf b;
    hie_command_t *c = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_REGISTER, "BAD");
    c->requester = "@other";
    expect_invalid(c, "command.requester", "both wrong: the envelope fields come first");
}

/* Packs cmd with hie_proto_pack; the caller frees with hie_mem_free(buf, len). */
static uint8_t *
pack(const hie_command_t *cmd, size_t *len)
{
    uint8_t *buf = NULL;
    int rc = hie_proto_pack(&cmd->base, HIE_LOG_COMMAND_BYTES_MAX, &buf, len);
    cr_assert_eq(rc, 0, "pack: %s", hie_strerror_name(rc));
    return buf;
}

Test(proto_codec, command_decode_round_trip_for_every_kind)
{
    struct cmd_buf b;
    for (size_t k = 0; k < HIE_ARRAY_LEN(all_kinds); k++) {
        hie_command_t *in = cmd_make(&b, all_kinds[k], "lab-7.example");
        size_t len = 0;
        uint8_t *buf = pack(in, &len);
        hie_command_t *out = (hie_command_t *)(uintptr_t)1;
        hie_errinfo_t info = {0};
        int rc = hie_proto_command_decode(hie_span(buf, len), arena, &out, &info);
        cr_assert_eq(rc, 0, "kind %d: rc=%s field=%s", (int)all_kinds[k], hie_strerror_name(rc),
            info.field);
        cr_assert_str_eq(out->requester, "@operator");
        cr_assert_str_eq(out->request_id, "admin-0001");
        cr_assert_eq(out->time_ms, 1700000000000);
        cr_assert_str_eq(out->node_id, "node-1");
        cr_assert_eq(out->body_case, all_kinds[k]);
        switch (all_kinds[k]) {
        case HIE__V1__COMMAND__BODY_ORG_REGISTER:
            cr_assert_str_eq(out->org_register->org_id, "lab-7.example");
            cr_assert_str_eq(out->org_register->display_name, "Acme General Hospital");
            cr_assert_eq(out->org_register->n_roles, 2);
            cr_assert_eq(out->org_register->roles[0], HIE__V1__ROLE__ROLE_HOSPITAL);
            cr_assert_eq(out->org_register->roles[1], HIE__V1__ROLE__ROLE_LAB);
            break;
        case HIE__V1__COMMAND__BODY_ORG_SET_ROLES:
            cr_assert_str_eq(out->org_set_roles->org_id, "lab-7.example");
            cr_assert_eq(out->org_set_roles->n_roles, 2);
            break;
        case HIE__V1__COMMAND__BODY_ORG_SUSPEND:
            cr_assert_str_eq(out->org_suspend->org_id, "lab-7.example");
            cr_assert_str_eq(out->org_suspend->reason, "contract ended");
            break;
        default:
            cr_assert_str_eq(out->org_reinstate->org_id, "lab-7.example");
            break;
        }
        /* re-packing the decoded command gives the same bytes */
        size_t len2 = 0;
        uint8_t *buf2 = pack(out, &len2);
        cr_assert_eq(len2, len);
        cr_assert_eq(memcmp(buf, buf2, len), 0);
        hie_mem_free(buf, len);
        hie_mem_free(buf2, len2);
    }
}

Test(proto_codec, command_decode_of_garbage_is_eproto)
{
    static const uint8_t garbage[] = {0x0a, 0x20, 'x'};
    hie_command_t *out = (hie_command_t *)(uintptr_t)1;
    hie_errinfo_t info = {0};
    int rc = hie_proto_command_decode(hie_span(garbage, sizeof(garbage)), arena, &out, &info);
    cr_assert_eq(rc, HIE_EPROTO);
    cr_assert_null(out);
    cr_assert_str_eq(info.field, "command");
}

/* The system running out of memory while a command is decoded is HIE_ENOMEM, never the
 * "malformed" a bad command gets: apply would record a refusal that a replay with memory
 * would not. */
Test(proto_codec, command_decode_out_of_memory_is_enomem)
{
    struct cmd_buf b;
    hie_command_t *in = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_REGISTER, "acme");
    size_t len = 0;
    uint8_t *buf = pack(in, &len);
    hie_arena_t *small = NULL;
    cr_assert_eq(hie_arena_create_first(&small, 1u << 20, 64), 0);
    (void)hie_arena_alloc(small, 64); /* the first block is used up */
    hie_command_t *out = NULL;
    hie_errinfo_t info = {0};
    hie_mem_fail_after(1);
    int rc = hie_proto_command_decode(hie_span(buf, len), small, &out, &info);
    hie_mem_fail_after(0);
    hie_arena_destroy(&small);
    hie_mem_free(buf, len);
    cr_assert_eq(rc, HIE_ENOMEM, "rc %s", hie_strerror_name(rc));
    cr_assert_null(out);
}

Test(proto_codec, command_decode_of_an_invalid_command_is_einval)
{
    struct cmd_buf b;
    hie_command_t *in = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_REGISTER, "Upper");
    size_t len = 0;
    uint8_t *buf = pack(in, &len);
    hie_command_t *out = (hie_command_t *)(uintptr_t)1;
    hie_errinfo_t info = {0};
    int rc = hie_proto_command_decode(hie_span(buf, len), arena, &out, &info);
    hie_mem_free(buf, len);
    cr_assert_eq(rc, HIE_EINVAL);
    cr_assert_null(out, "nothing is returned for an invalid command");
    cr_assert_str_eq(info.field, "org_id");
}

Test(proto_codec, command_decode_of_empty_bytes_is_einval)
{
    /* zero bytes are a valid protobuf (all defaults), which fails validation */
    hie_command_t *out = NULL;
    hie_errinfo_t info = {0};
    int rc = hie_proto_command_decode(hie_span("", 0), arena, &out, &info);
    cr_assert_eq(rc, HIE_EINVAL);
    cr_assert_str_eq(info.field, "command.requester");
}

Test(proto_codec, command_decode_in_a_tiny_arena_is_elimit)
{
    struct cmd_buf b;
    hie_command_t *in = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_REGISTER, "acme");
    size_t len = 0;
    uint8_t *buf = pack(in, &len);
    hie_arena_t *tiny = NULL;
    cr_assert_eq(hie_arena_create(&tiny, 48), 0);
    hie_command_t *out = NULL;
    int rc = hie_proto_command_decode(hie_span(buf, len), tiny, &out, NULL);
    hie_arena_destroy(&tiny);
    hie_mem_free(buf, len);
    cr_assert_eq(rc, HIE_ELIMIT);
    cr_assert_null(out);
}

/* Regression (was a bug, found by the unit tests): hie_proto_command_validate() measures org ids with strlen(); protobuf-c keeps NUL bytes
 * inside strings, so a command whose org_id is "acme\0evil" on the wire validates as "acme" and
 * the state machine registers "acme". An org id is [a-z0-9][a-z0-9._-]{0,62}: a NUL byte is not
 * allowed and must be refused with HIE_EINVAL on org_id. */
Test(proto_codec, org_id_with_an_embedded_nul_is_refused)
{
    /* Command{requester="@operator", request_id="r1", time_ms=5,
     *         org_reinstate={org_id="acme\0evil"}} written by hand */
    static const uint8_t bytes[] = {0x0a, 9, '@', 'o', 'p', 'e', 'r', 'a', 't', 'o', 'r', 0x12,
        2, 'r', '1', 0x18, 5, 0x6a, 11, 0x0a, 9, 'a', 'c', 'm', 'e', 0, 'e', 'v', 'i', 'l'};
    hie_command_t *out = NULL;
    hie_errinfo_t info = {0};
    int rc = hie_proto_command_decode(hie_span(bytes, sizeof(bytes)), arena, &out, &info);
    cr_assert_eq(rc, HIE_EINVAL, "rc=%s", hie_strerror_name(rc));
    cr_assert_str_eq(info.field, "org_id");
}

Test(proto_codec, pack_with_too_small_bytes_max_is_elimit)
{
    struct cmd_buf b;
    hie_command_t *in = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_REGISTER, "acme");
    size_t need = protobuf_c_message_get_packed_size(&in->base);
    uint8_t *buf = (uint8_t *)(uintptr_t)1;
    size_t len = 99;
    cr_assert_eq(hie_proto_pack(&in->base, need - 1, &buf, &len), HIE_ELIMIT);
    cr_assert_null(buf);
    cr_assert_eq(len, 0);
    cr_assert_eq(hie_proto_pack(&in->base, 0, &buf, &len), HIE_ELIMIT);
    cr_assert_eq(hie_proto_pack(&in->base, need, &buf, &len), 0, "exactly bytes_max fits");
    cr_assert_eq(len, need);
    hie_mem_free(buf, len);
}

Test(proto_codec, pack_out_of_memory_is_enomem)
{
    struct cmd_buf b;
    hie_command_t *in = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_SUSPEND, "acme");
    uint8_t *buf = (uint8_t *)(uintptr_t)1;
    size_t len = 99;
    hie_mem_fail_after(1);
    int rc = hie_proto_pack(&in->base, 4096, &buf, &len);
    hie_mem_fail_after(0);
    cr_assert_eq(rc, HIE_ENOMEM);
    cr_assert_null(buf);
    cr_assert_eq(len, 0);
}

Test(proto_codec, unpack_admin_request_round_trip)
{
    struct cmd_buf b;
    Hie__V1__AdminRequest req;
    hie__v1__admin_request__init(&req);
    req.id = "adm-1";
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_COMMAND;
    req.command = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_SUSPEND, "acme");
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(hie_proto_pack(&req.base, HIE_ADMIN_MSG_BYTES_MAX, &buf, &len), 0);
    ProtobufCMessage *m = NULL;
    int rc = hie_proto_unpack(&hie__v1__admin_request__descriptor, hie_span(buf, len), arena,
        &m);
    hie_mem_free(buf, len);
    cr_assert_eq(rc, 0);
    Hie__V1__AdminRequest *out = (Hie__V1__AdminRequest *)m;
    cr_assert_eq(out->base.descriptor, &hie__v1__admin_request__descriptor);
    cr_assert_str_eq(out->id, "adm-1");
    cr_assert_eq(out->body_case, HIE__V1__ADMIN_REQUEST__BODY_COMMAND);
    cr_assert_str_eq(out->command->org_suspend->org_id, "acme");
}

Test(proto_codec, unpack_garbage_is_eproto_and_cap_is_elimit)
{
    static const uint8_t garbage[] = {0xff, 0xff};
    ProtobufCMessage *m = (ProtobufCMessage *)(uintptr_t)1;
    cr_assert_eq(hie_proto_unpack(&hie__v1__admin_request__descriptor,
        hie_span(garbage, sizeof(garbage)), arena, &m), HIE_EPROTO);
    cr_assert_null(m);
    hie_arena_t *tiny = NULL;
    cr_assert_eq(hie_arena_create(&tiny, 8), 0);
    cr_assert_eq(hie_proto_unpack(&hie__v1__admin_request__descriptor, hie_span("", 0), tiny,
        &m), HIE_ELIMIT, "even an empty message needs its struct from the arena");
    cr_assert_null(m);
    hie_arena_destroy(&tiny);
}

Test(proto_codec, arena_allocator_allocates_from_the_arena)
{
    ProtobufCAllocator a = hie_proto_arena_allocator(arena);
    cr_assert_eq(a.allocator_data, arena);
    size_t before = hie_arena_used_bytes(arena);
    void *p = a.alloc(a.allocator_data, 100);
    cr_assert_not_null(p);
    cr_assert_eq(hie_arena_used_bytes(arena), before + 112);
    a.free(a.allocator_data, p); /* a no-op: the arena frees everything at once */
    cr_assert_eq(hie_arena_used_bytes(arena), before + 112);
}

/* ---- audit_batch: each append is checked as if it came alone ---------------------------- */

struct audit_buf {
    Hie__V1__AuditRecord rec;
    Hie__V1__AuditAppendCommand ac;
    uint8_t commit[32], key[HIE_PROTO_REC_HASH_BYTES], sealed[64];
    ProtobufCBinaryData commits[1], sealeds[1], keys[1];
};

/* A well-formed append with one subject. */
static void
audit_buf_init(struct audit_buf *b, const char *request_id)
{
    hie__v1__audit_record__init(&b->rec);
    hie__v1__audit_append_command__init(&b->ac);
    memset(b->commit, 0xc1, sizeof(b->commit));
    memset(b->key, 0x4b, sizeof(b->key));
    memset(b->sealed, 0x5e, sizeof(b->sealed));
    b->commits[0] = (ProtobufCBinaryData){sizeof(b->commit), b->commit};
    b->sealeds[0] = (ProtobufCBinaryData){sizeof(b->sealed), b->sealed};
    b->keys[0] = (ProtobufCBinaryData){sizeof(b->key), b->key};
    b->rec.time_ms = 1;
    b->rec.requester_org = "org-a";
    b->rec.request_id = (char *)(uintptr_t)request_id;
    b->rec.patients_count = 1;
    b->rec.n_subject_commitments = 1;
    b->rec.subject_commitments = b->commits;
    b->ac.record = &b->rec;
    b->ac.n_subjects_sealed = 1;
    b->ac.subjects_sealed = b->sealeds;
    b->ac.n_subject_keys = 1;
    b->ac.subject_keys = b->keys;
}

/* The command of an audit_batch of bufs[0..n); appends must hold n + 1 pointers. */
static hie_command_t
audit_batch_cmd(struct audit_buf *bufs, size_t n, Hie__V1__AuditBatchCommand *b,
    Hie__V1__AuditAppendCommand **appends)
{
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    hie__v1__audit_batch_command__init(b);
    for (size_t i = 0; i < n; i++) {
        appends[i] = &bufs[i].ac;
    }
    b->n_appends = n;
    b->appends = appends;
    cmd.requester = "org-a";
    cmd.request_id = "req-1";
    cmd.time_ms = 1;
    cmd.body_case = HIE__V1__COMMAND__BODY_AUDIT_BATCH;
    cmd.audit_batch = b;
    return cmd;
}

static int
audit_batch_check(struct audit_buf *bufs, size_t n, hie_errinfo_t *info)
{
    Hie__V1__AuditAppendCommand *appends[HIE_AUDIT_BATCH_RECORDS_MAX + 2];
    Hie__V1__AuditBatchCommand b;
    hie_command_t cmd = audit_batch_cmd(bufs, n, &b, appends);
    return hie_proto_command_validate(&cmd, info);
}

Test(proto_codec, audit_batch_holds_1_to_64_well_formed_appends)
{
    static struct audit_buf bufs[HIE_AUDIT_BATCH_RECORDS_MAX + 1];
    for (size_t i = 0; i < HIE_ARRAY_LEN(bufs); i++) {
        audit_buf_init(&bufs[i], "req-1");
    }
    hie_errinfo_t info = {0};
    cr_assert_eq(audit_batch_check(bufs, 1, &info), 0);
    cr_assert_eq(audit_batch_check(bufs, HIE_AUDIT_BATCH_RECORDS_MAX, &info), 0);
    cr_assert_eq(audit_batch_check(bufs, 0, &info), HIE_EINVAL);
    cr_assert_str_eq(info.field, "audit_batch.appends");
    info = (hie_errinfo_t){0};
    cr_assert_eq(audit_batch_check(bufs, HIE_AUDIT_BATCH_RECORDS_MAX + 1, &info), HIE_EINVAL);
    cr_assert_str_eq(info.field, "audit_batch.appends");
    bufs[3].commits[0].len = 31; /* one bad append spoils the batch */
    info = (hie_errinfo_t){0};
    cr_assert_eq(audit_batch_check(bufs, 4, &info), HIE_EINVAL);
    cr_assert_str_eq(info.field, "audit_append.subjects");
    bufs[3].commits[0].len = 32;
    bufs[2].ac.n_subject_keys = 0;
    cr_assert_eq(audit_batch_check(bufs, 4, &info), HIE_EINVAL);
    bufs[2].ac.n_subject_keys = 1;
    bufs[1].ac.record = NULL;
    cr_assert_eq(audit_batch_check(bufs, 4, &info), HIE_EINVAL);
    cr_assert_str_eq(info.field, "audit_append.record");
    cr_assert_eq(audit_batch_check(bufs, 1, &info), 0, "the appends before it are fine");
    /* a requester name longer than any index key takes: apply would fail at every replay */
    static char long_org[600];
    memset(long_org, 'a', sizeof(long_org) - 1);
    bufs[0].rec.requester_org = long_org;
    cr_assert_eq(audit_batch_check(bufs, 1, &info), HIE_EINVAL);
    cr_assert_str_eq(info.field, "audit_append.record.requester_org");
    long_org[511] = '\0';
    cr_assert_eq(audit_batch_check(bufs, 1, &info), 0, "511 bytes is the most");
}

Test(proto_codec, audit_batch_decode_round_trip_keeps_the_order)
{
    static struct audit_buf bufs[3];
    static const char *const ids[] = {"req-a", "req-b", "req-c"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(bufs); i++) {
        audit_buf_init(&bufs[i], ids[i]);
    }
    Hie__V1__AuditAppendCommand *appends[4];
    Hie__V1__AuditBatchCommand b;
    hie_command_t in = audit_batch_cmd(bufs, HIE_ARRAY_LEN(bufs), &b, appends);
    size_t len = 0;
    uint8_t *buf = pack(&in, &len);
    hie_command_t *out = NULL;
    hie_errinfo_t info = {0};
    int rc = hie_proto_command_decode(hie_span(buf, len), arena, &out, &info);
    hie_mem_free(buf, len);
    cr_assert_eq(rc, 0, "decode: %s", info.reason);
    cr_assert_eq(out->body_case, HIE__V1__COMMAND__BODY_AUDIT_BATCH);
    cr_assert_eq(out->audit_batch->n_appends, HIE_ARRAY_LEN(bufs));
    for (size_t i = 0; i < HIE_ARRAY_LEN(bufs); i++) {
        cr_assert_str_eq(out->audit_batch->appends[i]->record->request_id, ids[i]);
        cr_assert_eq(out->audit_batch->appends[i]->n_subjects_sealed, 1u);
    }
}

/* hie_proto_batch: records packed one at a time give hie_proto_pack's bytes for the same
 * command, audit_append for one record and audit_batch for 2..64; a record that would take the
 * command past the limit is refused and leaves the batch as it was. */
Test(proto_codec, batch_packed_record_by_record_equals_the_packed_command)
{
    static struct audit_buf bufs[HIE_AUDIT_BATCH_RECORDS_MAX];
    static char ids[HIE_AUDIT_BATCH_RECORDS_MAX][16];
    for (size_t i = 0; i < HIE_ARRAY_LEN(bufs); i++) {
        snprintf(ids[i], sizeof(ids[i]), "req-%zu", i);
        audit_buf_init(&bufs[i], ids[i]);
        bufs[i].rec.disclosed_count = (uint32_t)(i * 1000u); /* records of different sizes */
    }
    hie_proto_batch_t pb = {0};
    static const size_t counts[] = {1, 2, 3, 17, HIE_AUDIT_BATCH_RECORDS_MAX, 1};
    for (size_t c = 0; c < HIE_ARRAY_LEN(counts); c++) {
        size_t n = counts[c];
        Hie__V1__AuditAppendCommand *appends[HIE_AUDIT_BATCH_RECORDS_MAX + 1];
        Hie__V1__AuditBatchCommand b;
        hie_command_t want = audit_batch_cmd(bufs, n, &b, appends);
        want.node_id = "node-1";
        hie_command_t head = want;
        head.body_case = HIE__V1__COMMAND__BODY_AUDIT_APPEND;
        head.audit_append = &bufs[0].ac;
        if (n == 1) {
            want = head;
        }
        size_t wlen = 0, glen = 0;
        uint8_t *wbuf = pack(&want, &wlen), *got = NULL;
        for (size_t i = 0; i + 1 < n; i++) {
            cr_assert_eq(hie_proto_batch_add(&pb, &head, &bufs[i].ac, wlen), 0);
        }
        /* the last record would overflow a limit one byte short: refused, b unchanged */
        cr_assert_eq(hie_proto_batch_add(&pb, &head, &bufs[n - 1].ac, wlen - 1), HIE_ELIMIT);
        cr_assert_eq(pb.count, n - 1);
        cr_assert_eq(hie_proto_batch_add(&pb, &head, &bufs[n - 1].ac, wlen), 0);
        cr_assert_eq(hie_proto_batch_pack(&pb, HIE_LOG_COMMAND_BYTES_MAX, &got, &glen), 0);
        cr_assert_eq(glen, wlen, "%zu records: %zu bytes, want %zu", n, glen, wlen);
        cr_assert_eq(memcmp(got, wbuf, wlen), 0, "%zu records", n);
        hie_mem_free(got, glen);
        cr_assert_eq(hie_proto_batch_pack(&pb, wlen - 1, &got, &glen), HIE_ELIMIT);
        cr_assert_null(got);
        hie_mem_free(wbuf, wlen);
        hie_proto_batch_reset(&pb);
    }
    hie_proto_batch_free(&pb);
    hie_proto_batch_free(&pb); /* empty after: freeing again is harmless */
}

/* A batch that needed a large buffer gives it back when reset; a small one keeps its own. */
Test(proto_codec, batch_reset_gives_back_a_large_buffer)
{
    static struct audit_buf big;
    static uint8_t sealed[300u * 1024u];
    audit_buf_init(&big, "req-big");
    big.sealeds[0] = (ProtobufCBinaryData){sizeof(sealed), sealed};
    hie_command_t head = HIE__V1__COMMAND__INIT;
    head.requester = "org-a";
    head.request_id = "req-big";
    hie_proto_batch_t pb = {0};
    cr_assert_eq(hie_proto_batch_add(&pb, &head, &big.ac, HIE_LOG_COMMAND_BYTES_MAX), 0);
    cr_assert_geq(pb.items_cap, sizeof(sealed));
    hie_proto_batch_reset(&pb);
    cr_assert_null(pb.items);
    cr_assert_eq(pb.items_cap, 0u);
    struct audit_buf small;
    audit_buf_init(&small, "req-small");
    cr_assert_eq(hie_proto_batch_add(&pb, &head, &small.ac, HIE_LOG_COMMAND_BYTES_MAX), 0);
    uint8_t *kept = pb.items;
    hie_proto_batch_reset(&pb);
    cr_assert_eq(pb.items, kept, "a small buffer is kept for the next batch");
    cr_assert_eq(pb.count, 0u);
    hie_proto_batch_free(&pb);
}

Test(proto_codec, validate_null_command_aborts, .signal = SIGABRT)
{
    int rc = hie_proto_command_validate(NULL, NULL);
    (void)rc;
}

Test(proto_codec, arena_allocator_on_null_arena_aborts, .signal = SIGABRT)
{
    ProtobufCAllocator a = hie_proto_arena_allocator(NULL);
    (void)a;
}

/* hie_proto_command_has_body: the log thread's cheap look for an MPI feed in a command. It
 * reads only top-level fields, and malformed bytes answer false (a decode refuses them). */
Test(proto_codec, has_body_finds_a_top_level_body_and_refuses_malformed_bytes)
{
    struct cmd_buf b;
    hie_command_t *cmd = cmd_make(&b, HIE__V1__COMMAND__BODY_ORG_SUSPEND, "acme-general");
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(hie_proto_pack(&cmd->base, HIE_LOG_COMMAND_BYTES_MAX, &buf, &len), 0);
    hie_span_t in = hie_span(buf, len);
    cr_assert(hie_proto_command_has_body(in, HIE__V1__COMMAND__BODY_ORG_SUSPEND));
    cr_assert_not(hie_proto_command_has_body(in, HIE__V1__COMMAND__BODY_MPI_FEED));
    cr_assert_not(hie_proto_command_has_body(in, HIE__V1__COMMAND__BODY_ORG_REGISTER));
    for (size_t cut = 0; cut < len; cut++) { /* every truncation: no read past the end */
        (void)hie_proto_command_has_body(hie_span(buf, cut), HIE__V1__COMMAND__BODY_MPI_FEED);
    }
    static const uint8_t bad_len[] = {0xa2, 0x01, 0x7f, 0x00};  /* field 20, length 127 of 1 */
    static const uint8_t bad_type[] = {0xa3, 0x01, 0x00};       /* field 20, wire type 3 */
    static const uint8_t long_varint[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff};
    cr_assert_not(hie_proto_command_has_body(hie_span(bad_len, sizeof(bad_len)), 20));
    cr_assert_not(hie_proto_command_has_body(hie_span(bad_type, sizeof(bad_type)), 20));
    cr_assert_not(hie_proto_command_has_body(hie_span(long_varint, sizeof(long_varint)), 20));
    cr_assert_not(hie_proto_command_has_body(hie_span(NULL, 0), 20));
    hie_mem_free(buf, len);
}

/* The UTF-8 check reads eight ASCII bytes at a time: a NUL, a lone continuation byte or a cut
 * sequence is found at every offset of a string, and valid text of any alignment passes. */
Test(proto_codec, utf8_check_finds_a_bad_byte_at_every_offset)
{
    static const uint8_t bad[][2] = {{0x00, 'a'}, {0x80, 'a'}, {0xc3, 'a'}, {0xed, 0xa0}};
    for (size_t len = 1; len <= 24; len++) {
        for (size_t at = 0; at + 1 < len; at++) {
            for (size_t k = 0; k <= HIE_ARRAY_LEN(bad); k++) {
                uint8_t buf[2 + 24];
                buf[0] = 0x0a; /* AdminRequest.id, length-delimited */
                buf[1] = (uint8_t)len;
                memset(buf + 2, 'x', len);
                if (k < HIE_ARRAY_LEN(bad)) {
                    memcpy(buf + 2 + at, bad[k], 2);
                } else {
                    buf[2 + at] = 0xc3; /* a valid two-byte letter */
                    buf[3 + at] = 0xa9;
                }
                ProtobufCMessage *m = NULL;
                hie_errinfo_t info = {0};
                int rc = hie_proto_unpack_checked(&hie__v1__admin_request__descriptor,
                    hie_span(buf, 2 + len), arena, &m, &info, "request");
                cr_assert_eq(rc, k < HIE_ARRAY_LEN(bad) ? HIE_EINVAL : 0,
                    "len %zu offset %zu case %zu: rc=%s", len, at, k, hie_strerror_name(rc));
            }
        }
    }
}

/* A decided replay's notices are checked as an ADT fan-out's are (each with a well-formed
 * audit record): they were not, and apply asserted on a notice without one, or read past
 * subject_keys, at every replay of the log. Push message ids and ADT visit ids are bounded,
 * as the keys apply writes them under are (over LMDB's 511 bytes: fatal at every replay). */
Test(proto_codec, replay_notices_and_apply_key_lengths_are_checked)
{
    static struct audit_buf ab;
    audit_buf_init(&ab, "req-1");
    Hie__V1__Notice nt = HIE__V1__NOTICE__INIT, *nts[1] = {&nt};
    nt.subscription_id = "sub-1";
    nt.audit = &ab.ac;
    Hie__V1__ReplayCommand rp = HIE__V1__REPLAY_COMMAND__INIT;
    rp.subscription_id = "sub-1";
    rp.decided = true;
    rp.n_notices = 1;
    rp.notices = nts;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.requester = "org-a";
    cmd.request_id = "req-1";
    cmd.time_ms = 1;
    cmd.body_case = HIE__V1__COMMAND__BODY_REPLAY;
    cmd.replay = &rp;
    expect_valid(&cmd, "a decided replay");
    nt.audit = NULL;
    expect_invalid(&cmd, "replay.notices", "a notice without its audit record");
    nt.audit = &ab.ac;
    ab.ac.n_subject_keys = 0;
    expect_invalid(&cmd, "audit_append.subjects", "fewer subject keys than sealed subjects");
    ab.ac.n_subject_keys = 1;
    rp.decided = false;
    expect_invalid(&cmd, "replay", "notices in a replay not decided");
    rp.decided = true;
    rp.n_notices = HIE_REPLAY_NOTICES_MAX + 1;
    expect_invalid(&cmd, "replay", "more notices than a replay takes");
    rp.n_notices = 1;
    /* ADT: a visit id of up to 64 id characters */
    Hie__V1__AdtCommand adt = HIE__V1__ADT_COMMAND__INIT;
    adt.sender_org = "org-a";
    adt.visit_id = "V-1";
    cmd.body_case = HIE__V1__COMMAND__BODY_ADT;
    cmd.adt = &adt;
    expect_valid(&cmd, "an ADT event with a visit");
    static char long_id[200];
    memset(long_id, 'v', sizeof(long_id) - 1);
    adt.visit_id = long_id;
    expect_invalid(&cmd, "adt", "a 199-character visit id");
    /* push: a message id of org:request id at most */
    Hie__V1__QueuedMessage m = HIE__V1__QUEUED_MESSAGE__INIT;
    static uint8_t sealed[64];
    m.message_id = long_id;
    m.sender_org = "org-a";
    m.recipient_org = "org-b";
    m.sealed_document.data = sealed;
    m.sealed_document.len = sizeof(sealed);
    Hie__V1__PushCommand pc = HIE__V1__PUSH_COMMAND__INIT;
    pc.message = &m;
    pc.audit = &ab.ac;
    cmd.body_case = HIE__V1__COMMAND__BODY_PUSH;
    cmd.push = &pc;
    expect_invalid(&cmd, "push.message", "a 199-character message id");
    m.message_id = "org-a:req-1";
    expect_valid(&cmd, "a push");
}
