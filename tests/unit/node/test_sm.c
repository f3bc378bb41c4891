/*
 * test_sm.c - unit tests for node/src/sm.c, the LMDB state and the state machine.
 *
 * The fsm table's apply is driven directly (no log thread) with packed commands, as the log
 * would: consecutive indexes, one call per batch. Covers: register/get, rejections recorded
 * as results, version bumps, dedup of (requester, request_id), invalid bytes, the stored
 * applied index, determinism across batch sizes (two LMDB environments compared database by
 * database with cursors), and bounded dedup pruning by the commands' own clock.
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include "../test_util.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <sodium.h>
#include <string.h>

#define MAP_BYTES (512ull * 1024ull * 1024ull)
#define T0 1700000000000ll
#define REG HIE__V1__COMMAND__BODY_ORG_REGISTER /* the kind of most commands here */
#define WIRE(x) HIE__V1__ERROR_CODE__ERROR_##x

static char tmp_dir[128];
static node_state_t *states[2];
static node_metrics_t metrics;
static hie_arena_t *arena;

static void
setup(void)
{
    tmp_dir[0] = '\0';
    memset(&metrics, 0, sizeof(metrics));
    cr_assert_eq(hie_arena_create(&arena, HIE_ARENA_BYTES_MAX), 0);
}

static void
teardown(void)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(states); i++) {
        hie_node__state_close(&states[i]);
    }
    hie_arena_destroy(&arena);
    test_tmpdir_remove(tmp_dir);
}

TestSuite(node_sm, .init = setup, .fini = teardown, .timeout = 60);

/* Opens state number i in <tmp>/<i> (the directory is made on first use). */
static node_state_t *
state_open(size_t i)
{
    if (tmp_dir[0] == '\0') {
        test_tmpdir_make(tmp_dir, sizeof(tmp_dir), "sm");
    }
    char data_dir[192];
    snprintf(data_dir, sizeof(data_dir), "%s/%zu", tmp_dir, i);
    (void)mkdir(data_dir, 0700);
    cr_assert_null(states[i]);
    int rc = hie_node__state_open(&states[i], data_dir, MAP_BYTES, "node-1",
        i == 0 ? &metrics : NULL);
    cr_assert_eq(rc, 0, "hie_node__state_open: %s", hie_strerror_name(rc));
    cr_assert_not_null(states[i]);
    return states[i];
}

/* ---- building commands -------------------------------------------------------------------- */

struct cmd_spec {
    Hie__V1__Command__BodyCase kind;
    const char *org_id;
    const char *request_id;
    int64_t time_ms;
    const char *requester;          /* NULL: "@operator" */
    const char *display_name;       /* register; NULL: a default */
    size_t n_roles;                 /* register / set_roles; 0: one role (hospital) */
    Hie__V1__Role roles[HIE_ORG_ROLES_MAX];
};

/* Packs spec into a new hie_mem buffer; the caller frees with hie_mem_free(buf, *len). */
static uint8_t *
cmd_pack(const struct cmd_spec *s, size_t *len)
{
    hie_command_t cmd;
    Hie__V1__OrgRegister reg;
    Hie__V1__OrgSetRoles set_roles;
    Hie__V1__OrgSuspend suspend;
    Hie__V1__OrgReinstate reinstate;
    Hie__V1__Role one_role = HIE__V1__ROLE__ROLE_HOSPITAL;
    Hie__V1__Role *roles = s->n_roles > 0 ? (Hie__V1__Role *)(uintptr_t)s->roles : &one_role;
    size_t n_roles = s->n_roles > 0 ? s->n_roles : 1;
    char *org = (char *)(uintptr_t)s->org_id;
    hie__v1__command__init(&cmd);
    cmd.requester = (char *)(uintptr_t)(s->requester != NULL ? s->requester : "@operator");
    cmd.request_id = (char *)(uintptr_t)s->request_id;
    cmd.time_ms = s->time_ms;
    cmd.node_id = "node-1";
    cmd.body_case = s->kind;
    switch (s->kind) {
    case HIE__V1__COMMAND__BODY_ORG_REGISTER:
        hie__v1__org_register__init(&reg);
        reg.org_id = org;
        reg.display_name = (char *)(uintptr_t)(s->display_name != NULL ? s->display_name
                                                                        : "Test Organization");
        reg.n_roles = n_roles;
        reg.roles = roles;
        cmd.org_register = &reg;
        break;
    case HIE__V1__COMMAND__BODY_ORG_SET_ROLES:
        hie__v1__org_set_roles__init(&set_roles);
        set_roles.org_id = org;
        set_roles.n_roles = n_roles;
        set_roles.roles = roles;
        cmd.org_set_roles = &set_roles;
        break;
    case HIE__V1__COMMAND__BODY_ORG_SUSPEND:
        hie__v1__org_suspend__init(&suspend);
        suspend.org_id = org;
        suspend.reason = "audit";
        cmd.org_suspend = &suspend;
        break;
    case HIE__V1__COMMAND__BODY_ORG_REINSTATE:
        hie__v1__org_reinstate__init(&reinstate);
        reinstate.org_id = org;
        cmd.org_reinstate = &reinstate;
        break;
    default:
        break;
    }
    uint8_t *buf = NULL;
    int rc = hie_proto_pack(&cmd.base, HIE_LOG_COMMAND_BYTES_MAX, &buf, len);
    cr_assert_eq(rc, 0);
    return buf;
}

/* A result of one applied entry, kept as bytes and decoded into the suite's arena. */
struct result {
    uint8_t *buf;
    size_t len;
    hie_command_result_t *msg;
};

static void
result_free(struct result *r)
{
    hie_mem_free(r->buf, r->len);
    r->buf = NULL;
    r->len = 0;
}

/* Applies n raw commands as one batch starting at index first; decodes each result. */
static void
apply_raw(node_state_t *st, uint64_t first, uint8_t *const *cmds, const size_t *lens, size_t n,
    struct result *out)
{
    hie_cluster_entry_t entries[HIE_LOG_BATCH_COMMANDS_MAX];
    hie_cluster_result_t results[HIE_LOG_BATCH_COMMANDS_MAX];
    cr_assert_leq(n, HIE_LOG_BATCH_COMMANDS_MAX);
    for (size_t i = 0; i < n; i++) {
        entries[i].index = first + i;
        entries[i].cmd = hie_span(cmds[i], lens[i]);
        results[i].buf = NULL;
        results[i].len = 0;
    }
    hie_cluster_fsm_t fsm = hie_node__state_fsm(st);
    fsm.prepare(fsm.ctx, entries, n); /* as the log does before it appends */
    if (hie_node__state_mpi_pool(st) != NULL && n > 1) {
        /* the pool reads every feed before apply changes anything: each of its reads that a
         * later command of the batch makes stale is then there for apply to refuse */
        hie_mpi_pool_wait(hie_node__state_mpi_pool(st));
    }
    int rc = fsm.apply(fsm.ctx, entries, n, results);
    cr_assert_eq(rc, 0, "apply: %s", hie_strerror_name(rc));
    for (size_t i = 0; i < n; i++) {
        out[i].buf = results[i].buf;
        out[i].len = results[i].len;
        ProtobufCMessage *m = NULL;
        cr_assert_eq(hie_proto_unpack(&hie__v1__command_result__descriptor,
            hie_span(results[i].buf, results[i].len), arena, &m), 0, "result %zu", i);
        out[i].msg = (hie_command_result_t *)m;
    }
}

/* Packs and applies one command as a batch of one at index; returns its decoded result and
 * frees the bytes unless keep is given. */
static hie_command_result_t *
apply_one(node_state_t *st, uint64_t index, const struct cmd_spec *s, struct result *keep)
{
    size_t len = 0;
    uint8_t *buf = cmd_pack(s, &len);
    struct result r;
    apply_raw(st, index, &buf, &len, 1, &r);
    hie_mem_free(buf, len);
    if (keep != NULL) {
        *keep = r;
    } else {
        result_free(&r);
    }
    return r.msg;
}

static hie_org_t *
org_get(node_state_t *st, const char *id)
{
    hie_org_t *org = NULL;
    int rc = hie_node__state_org_get(st, id, arena, &org);
    cr_assert_eq(rc, 0, "org_get %s: %s", id, hie_strerror_name(rc));
    return org;
}

static uint64_t
applied_index(node_state_t *st)
{
    uint64_t v = 99999;
    cr_assert_eq(hie_node__state_applied_index(st, &v), 0);
    uint64_t w = 88888;
    hie_cluster_fsm_t fsm = hie_node__state_fsm(st);
    cr_assert_eq(fsm.applied_index(fsm.ctx, &w), 0);
    cr_assert_eq(v, w, "the fsm table reports the same applied index");
    return v;
}

static int
count_fn(void *ctx, hie_org_t *org)
{
    (void)org;
    (*(size_t *)ctx)++;
    return 0;
}

static size_t
org_count(node_state_t *st)
{
    size_t n = 0;
    cr_assert_eq(hie_node__state_org_each(st, arena, count_fn, &n), 0);
    return n;
}

/* Entries in the named database name of st. */
static size_t
db_entries(node_state_t *st, const char *name)
{
    MDB_env *env = hie_node__state_env(st);
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_stat stat;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, name, 0, &dbi), 0, "no database %s", name);
    cr_assert_eq(mdb_stat(txn, dbi, &stat), 0);
    mdb_txn_abort(txn);
    return stat.ms_entries;
}

static struct cmd_spec
reg_spec(const char *org_id, const char *request_id, int64_t time_ms)
{
    struct cmd_spec s = {HIE__V1__COMMAND__BODY_ORG_REGISTER, org_id, request_id, time_ms,
        NULL, NULL, 0, {0}};
    return s;
}

static struct cmd_spec
change_spec(Hie__V1__Command__BodyCase kind, const char *org_id, const char *request_id,
    int64_t time_ms)
{
    struct cmd_spec s = {kind, org_id, request_id, time_ms, NULL, NULL, 0, {0}};
    return s;
}

/* ---- behaviour ---------------------------------------------------------------------------- */

Test(node_sm, fresh_state_is_empty)
{
    node_state_t *st = state_open(0);
    cr_assert_eq(applied_index(st), 0);
    cr_assert_eq(org_count(st), 0);
    hie_org_t *org = (hie_org_t *)(uintptr_t)1;
    cr_assert_eq(hie_node__state_org_get(st, "acme", arena, &org), HIE_ENOTFOUND);
    cr_assert_null(org);
    cr_assert_eq(hie_node__state_org_get(st, "", arena, &org), HIE_ENOTFOUND);
    hie_command_result_t *res = (hie_command_result_t *)(uintptr_t)1;
    cr_assert_eq(hie_node__state_dedup_get(st, "@operator", "r1", REG, arena, &res),
        HIE_ENOTFOUND);
    cr_assert_null(res);
}

Test(node_sm, register_then_get)
{
    node_state_t *st = state_open(0);
    struct cmd_spec s = reg_spec("acme", "r1", T0);
    s.display_name = "Acme General";
    s.n_roles = 2;
    s.roles[0] = HIE__V1__ROLE__ROLE_HOSPITAL;
    s.roles[1] = HIE__V1__ROLE__ROLE_LAB;
    hie_command_result_t *res = apply_one(st, 1, &s, NULL);
    cr_assert_eq(res->code, WIRE(UNSPECIFIED), "rejected: %s", res->message);
    cr_assert_eq(res->index, 1);
    cr_assert_not_null(res->org);
    cr_assert_str_eq(res->org->id, "acme");

    hie_org_t *org = org_get(st, "acme");
    cr_assert_str_eq(org->id, "acme");
    cr_assert_str_eq(org->display_name, "Acme General");
    cr_assert_eq(org->n_roles, 2);
    cr_assert_eq(org->roles[0], HIE__V1__ROLE__ROLE_HOSPITAL);
    cr_assert_eq(org->roles[1], HIE__V1__ROLE__ROLE_LAB);
    cr_assert_eq(org->status, HIE__V1__ORG_STATUS__ORG_ACTIVE);
    cr_assert_eq(org->version, 1);
    cr_assert_eq(org->created_ms, T0);
    cr_assert_eq(org->updated_ms, T0);
    cr_assert_eq(org->created_index, 1);
    cr_assert_eq(applied_index(st), 1);
    cr_assert_eq(org_count(st), 1);
    cr_assert_eq(atomic_load(&metrics.commands_applied), 1);
    cr_assert_eq(atomic_load(&metrics.log_batches), 1);
    cr_assert_eq(atomic_load(&metrics.applied_index), 1);

    hie_command_result_t *stored = NULL;
    cr_assert_eq(hie_node__state_dedup_get(st, "@operator", "r1", REG, arena, &stored), 0);
    cr_assert_eq(stored->index, 1);
    cr_assert_str_eq(stored->org->id, "acme");
}

Test(node_sm, register_twice_is_bad_request_and_changes_nothing)
{
    node_state_t *st = state_open(0);
    struct cmd_spec s = reg_spec("acme", "r1", T0);
    s.display_name = "First";
    apply_one(st, 1, &s, NULL);
    struct cmd_spec again = reg_spec("acme", "r2", T0 + 10);
    again.display_name = "Second";
    hie_command_result_t *res = apply_one(st, 2, &again, NULL);
    cr_assert_eq(res->code, WIRE(BAD_REQUEST));
    cr_assert_str_eq(res->field, "org_id");
    cr_assert_eq(res->index, 2);
    cr_assert_null(res->org, "no record in a rejection");
    hie_org_t *org = org_get(st, "acme");
    cr_assert_str_eq(org->display_name, "First");
    cr_assert_eq(org->version, 1);
    cr_assert_eq(org->updated_ms, T0);
    cr_assert_eq(applied_index(st), 2, "a rejected command is still applied (recorded)");
    hie_command_result_t *stored = NULL;
    cr_assert_eq(hie_node__state_dedup_get(st, "@operator", "r2", REG, arena, &stored), 0,
        "the rejection is remembered for repeats");
    cr_assert_eq(stored->code, WIRE(BAD_REQUEST));
}

Test(node_sm, suspend_reinstate_and_roles_bump_the_version)
{
    node_state_t *st = state_open(0);
    apply_one(st, 1, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_REGISTER, "acme", "r1", T0,
        NULL, NULL, 0, {0}}, NULL);

    hie_command_result_t *res = apply_one(st, 2,
        &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_SUSPEND, "acme", "r2", T0 + 100, NULL,
            NULL, 0, {0}}, NULL);
    cr_assert_eq(res->code, WIRE(UNSPECIFIED));
    cr_assert_eq(res->org->version, 2);
    hie_org_t *org = org_get(st, "acme");
    cr_assert_eq(org->status, HIE__V1__ORG_STATUS__ORG_SUSPENDED);
    cr_assert_eq(org->version, 2);
    cr_assert_eq(org->updated_ms, T0 + 100);
    cr_assert_eq(org->created_ms, T0, "created_ms never changes");

    res = apply_one(st, 3, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_REINSTATE, "acme", "r3",
        T0 + 200, NULL, NULL, 0, {0}}, NULL);
    cr_assert_eq(res->code, WIRE(UNSPECIFIED));
    org = org_get(st, "acme");
    cr_assert_eq(org->status, HIE__V1__ORG_STATUS__ORG_ACTIVE);
    cr_assert_eq(org->version, 3);

    struct cmd_spec roles = change_spec(HIE__V1__COMMAND__BODY_ORG_SET_ROLES, "acme", "r4",
        T0 + 300);
    roles.n_roles = 3;
    roles.roles[0] = HIE__V1__ROLE__ROLE_PAYER;
    roles.roles[1] = HIE__V1__ROLE__ROLE_AUDITOR;
    roles.roles[2] = HIE__V1__ROLE__ROLE_CLINIC;
    res = apply_one(st, 4, &roles, NULL);
    cr_assert_eq(res->code, WIRE(UNSPECIFIED));
    org = org_get(st, "acme");
    cr_assert_eq(org->version, 4);
    cr_assert_eq(org->n_roles, 3);
    cr_assert_eq(org->roles[0], HIE__V1__ROLE__ROLE_PAYER);
    cr_assert_eq(org->roles[2], HIE__V1__ROLE__ROLE_CLINIC);
    cr_assert_eq(org->updated_ms, T0 + 300);
    cr_assert_eq(org->created_index, 1);

    /* suspending a suspended org is still a change: the version moves on */
    apply_one(st, 5, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_SUSPEND, "acme", "r5",
        T0 + 400, NULL, NULL, 0, {0}}, NULL);
    apply_one(st, 6, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_SUSPEND, "acme", "r6",
        T0 + 500, NULL, NULL, 0, {0}}, NULL);
    cr_assert_eq(org_get(st, "acme")->version, 6);
}

Test(node_sm, change_of_an_unknown_org_is_not_found)
{
    node_state_t *st = state_open(0);
    static const Hie__V1__Command__BodyCase kinds[] = {HIE__V1__COMMAND__BODY_ORG_SET_ROLES,
        HIE__V1__COMMAND__BODY_ORG_SUSPEND, HIE__V1__COMMAND__BODY_ORG_REINSTATE};
    static const char *const rids[] = {"r1", "r2", "r3"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(kinds); i++) {
        struct cmd_spec s = change_spec(kinds[i], "ghost", rids[i], T0 + (int64_t)i);
        hie_command_result_t *res = apply_one(st, 1 + i, &s, NULL);
        cr_assert_eq(res->code, WIRE(NOT_FOUND), "kind %d", (int)kinds[i]);
        cr_assert_str_eq(res->field, "org_id");
        cr_assert_null(res->org);
    }
    cr_assert_eq(org_count(st), 0, "nothing was created");
    cr_assert_eq(applied_index(st), 3);
}

Test(node_sm, repeated_request_gets_identical_bytes_and_is_applied_once)
{
    node_state_t *st = state_open(0);
    apply_one(st, 1, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_REGISTER, "acme", "r1", T0,
        NULL, NULL, 0, {0}}, NULL);
    struct cmd_spec s = change_spec(HIE__V1__COMMAND__BODY_ORG_SET_ROLES, "acme", "r2", T0 + 5);
    s.n_roles = 1;
    s.roles[0] = HIE__V1__ROLE__ROLE_LAB;
    struct result first, repeat;
    apply_one(st, 2, &s, &first);
    cr_assert_eq(first.msg->code, WIRE(UNSPECIFIED));
    cr_assert_eq(org_get(st, "acme")->version, 2);

    /* the same (requester, request_id) later, even with another body and time */
    s.roles[0] = HIE__V1__ROLE__ROLE_PAYER;
    s.time_ms = T0 + 999;
    apply_one(st, 3, &s, &repeat);
    cr_assert_eq(repeat.len, first.len);
    cr_assert_eq(memcmp(repeat.buf, first.buf, first.len), 0, "identical result bytes");
    cr_assert_eq(repeat.msg->index, 2, "the original index");
    hie_org_t *org = org_get(st, "acme");
    cr_assert_eq(org->version, 2, "applied once");
    cr_assert_eq(org->roles[0], HIE__V1__ROLE__ROLE_LAB);
    cr_assert_eq(org->updated_ms, T0 + 5);
    cr_assert_eq(applied_index(st), 3);
    result_free(&first);
    result_free(&repeat);

    /* the same request id from another requester is another request */
    s.requester = "acme";
    hie_command_result_t *res = apply_one(st, 4, &s, NULL);
    cr_assert_eq(res->index, 4);
    cr_assert_eq(org_get(st, "acme")->version, 3);
}

Test(node_sm, repeat_within_one_batch_is_applied_once)
{
    node_state_t *st = state_open(0);
    struct cmd_spec s = reg_spec("acme", "same", T0);
    uint8_t *cmds[3];
    size_t lens[3];
    cmds[0] = cmd_pack(&s, &lens[0]);
    s.time_ms = T0 + 1;
    cmds[1] = cmd_pack(&s, &lens[1]);
    struct cmd_spec susp = change_spec(HIE__V1__COMMAND__BODY_ORG_SUSPEND, "acme", "same",
        T0 + 2);
    cmds[2] = cmd_pack(&susp, &lens[2]);
    struct result r[3];
    apply_raw(st, 1, cmds, lens, 3, r);
    for (size_t i = 0; i < 3; i++) {
        hie_mem_free(cmds[i], lens[i]);
    }
    cr_assert_eq(r[0].msg->code, WIRE(UNSPECIFIED));
    cr_assert_eq(r[1].len, r[0].len, "the repeat gets the original result");
    cr_assert_eq(memcmp(r[1].buf, r[0].buf, r[0].len), 0);
    /* another kind of command under the same id is not a repeat: refused, nothing applied */
    cr_assert_eq(r[2].msg->code, WIRE(BAD_REQUEST));
    cr_assert_str_eq(r[2].msg->field, "id");
    hie_org_t *org = org_get(st, "acme");
    cr_assert_eq(org->version, 1);
    cr_assert_eq(org->status, HIE__V1__ORG_STATUS__ORG_ACTIVE, "the suspend was not applied");
    cr_assert_eq(applied_index(st), 3);
    cr_assert_eq(atomic_load(&metrics.commands_applied), 3);
    cr_assert_eq(atomic_load(&metrics.log_batches), 1);
    for (size_t i = 0; i < 3; i++) {
        result_free(&r[i]);
    }
}

Test(node_sm, invalid_command_bytes_are_a_bad_request_result_and_change_nothing)
{
    node_state_t *st = state_open(0);
    apply_one(st, 1, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_REGISTER, "acme", "r1", T0,
        NULL, NULL, 0, {0}}, NULL);
    size_t dedup_before = db_entries(st, "dedup");

    /* not a protobuf */
    static const uint8_t garbage[] = {0x0a, 0x40, 'x', 'y'};
    uint8_t *cmds[1] = {(uint8_t *)(uintptr_t)garbage};
    size_t lens[1] = {sizeof(garbage)};
    struct result r;
    apply_raw(st, 2, cmds, lens, 1, &r);
    cr_assert_eq(r.msg->code, WIRE(BAD_REQUEST));
    cr_assert_str_eq(r.msg->field, "command");
    cr_assert_eq(r.msg->index, 2);
    cr_assert_null(r.msg->org);
    result_free(&r);

    /* a protobuf that fails validation */
    struct cmd_spec bad = reg_spec("Upper", "r3", T0 + 1);
    hie_command_result_t *res = apply_one(st, 3, &bad, NULL);
    cr_assert_eq(res->code, WIRE(BAD_REQUEST));
    cr_assert_str_eq(res->field, "org_id");
    struct cmd_spec notime = change_spec(HIE__V1__COMMAND__BODY_ORG_SUSPEND, "acme", "r4", 0);
    res = apply_one(st, 4, &notime, NULL);
    cr_assert_eq(res->code, WIRE(BAD_REQUEST));
    cr_assert_str_eq(res->field, "command.time_ms");

    cr_assert_eq(org_count(st), 1);
    hie_org_t *org = org_get(st, "acme");
    cr_assert_eq(org->version, 1);
    cr_assert_eq(org->status, HIE__V1__ORG_STATUS__ORG_ACTIVE);
    cr_assert_eq(db_entries(st, "dedup"), dedup_before, "invalid commands are not remembered");
    hie_command_result_t *stored = NULL;
    cr_assert_eq(hie_node__state_dedup_get(st, "@operator", "r3", REG, arena, &stored),
        HIE_ENOTFOUND);
    cr_assert_eq(applied_index(st), 4, "the index still advances");
}

Test(node_sm, applied_index_is_stored_and_survives_a_reopen)
{
    node_state_t *st = state_open(0);
    uint8_t *cmds[5];
    size_t lens[5];
    static const char *const ids[] = {"a", "b", "c", "d", "e"};
    for (size_t i = 0; i < 5; i++) {
        struct cmd_spec s = reg_spec(ids[i], ids[i], T0 + (int64_t)i);
        cmds[i] = cmd_pack(&s, &lens[i]);
    }
    struct result r[5];
    apply_raw(st, 41, cmds, lens, 5, r); /* a log may start the state anywhere */
    for (size_t i = 0; i < 5; i++) {
        hie_mem_free(cmds[i], lens[i]);
        cr_assert_eq(r[i].msg->index, 41 + i);
        result_free(&r[i]);
    }
    cr_assert_eq(applied_index(st), 45);
    cr_assert_eq(atomic_load(&metrics.applied_index), 45);
    hie_node__state_close(&states[0]);
    cr_assert_null(states[0]);
    st = state_open(0);
    cr_assert_eq(applied_index(st), 45);
    cr_assert_eq(org_count(st), 5);
    cr_assert_eq(org_get(st, "c")->created_index, 43);
}

/* The rules clock is the latest command time applied, not the last command's: a command
 * stamped earlier (a node whose clock is behind) is held to the rules in force; it is kept
 * with the applied index and survives a reopen. */
Test(node_sm, the_rules_clock_never_goes_back_and_survives_a_reopen)
{
    node_state_t *st = state_open(0);
    cr_assert_eq(hie_node__state_rules_ms(st), 0);
    static const int64_t times[] = {T0 + 500, T0 + 100, T0 + 900, T0 + 200};
    static const char *const ids[] = {"a", "b", "c", "d"};
    for (size_t i = 0; i < 4; i++) {
        struct cmd_spec sp = reg_spec(ids[i], ids[i], times[i]);
        size_t len = 0;
        uint8_t *cmd = cmd_pack(&sp, &len);
        struct result r;
        apply_raw(st, 1 + i, &cmd, &len, 1, &r);
        hie_mem_free(cmd, len);
        result_free(&r);
        cr_assert_eq(hie_node__state_rules_ms(st), i < 2 ? T0 + 500 : T0 + 900, "after %zu",
            i);
    }
    hie_node__state_close(&states[0]);
    st = state_open(0);
    cr_assert_eq(hie_node__state_rules_ms(st), T0 + 900);
}

/* Before the clock passed 2026-11-30T21:30Z each command was held to its own time (a log
 * from then replays as it applied); from then on, to the clock. */
Test(node_sm, commands_are_held_to_the_rules_clock_once_it_passed_its_start)
{
    node_state_t *st = state_open(0);
    const int64_t since = 1796074200000ll;
    static const char *const ids[] = {"a", "b", "c", "d"};
    const int64_t times[] = {since - 5000, since - 9000, since + 10, since - 60000};
    const int64_t held[] = {since - 5000, since - 9000, since + 10, since + 10};
    for (size_t i = 0; i < 4; i++) {
        struct cmd_spec sp = reg_spec(ids[i], ids[i], times[i]);
        size_t len = 0;
        uint8_t *cmd = cmd_pack(&sp, &len);
        struct result r;
        apply_raw(st, 1 + i, &cmd, &len, 1, &r);
        hie_mem_free(cmd, len);
        result_free(&r);
        cr_assert_eq(hie_node__state_rules_now_ms(st), held[i], "command %zu", i);
    }
}

struct order {
    char seen[8][16];
    size_t n;
    size_t stop_after;
};

static int
order_fn(void *ctx, hie_org_t *org)
{
    struct order *o = ctx;
    cr_assert_lt(o->n, 8);
    snprintf(o->seen[o->n], sizeof(o->seen[o->n]), "%s", org->id);
    o->n++;
    return o->stop_after != 0 && o->n >= o->stop_after;
}

Test(node_sm, org_each_visits_orgs_in_id_order)
{
    node_state_t *st = state_open(0);
    static const char *const ids[] = {"zeta", "alpha", "mid", "0first"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(ids); i++) {
        apply_one(st, 1 + i, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_REGISTER, ids[i],
            ids[i], T0, NULL, NULL, 0, {0}}, NULL);
    }
    struct order o = {{{0}}, 0, 0};
    cr_assert_eq(hie_node__state_org_each(st, arena, order_fn, &o), 0);
    cr_assert_eq(o.n, 4);
    static const char *const sorted[] = {"0first", "alpha", "mid", "zeta"};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_str_eq(o.seen[i], sorted[i]);
    }
    struct order some = {{{0}}, 0, 2};
    cr_assert_eq(hie_node__state_org_each(st, arena, order_fn, &some), 0);
    cr_assert_eq(some.n, 2, "fn returning non-zero stops the walk");
}

/* ---- determinism -------------------------------------------------------------------------- */

#define DET_COMMANDS 300u
#define DET_ORGS 12u

/* The fixed mixed sequence: registers, role changes, suspends, reinstates, invalid bytes,
 * repeats of earlier requests, from the operator and from orgs, with clock jumps past the
 * dedup retention so pruning runs. Buffers are hie_mem (freed by the caller). */
static void
det_commands(uint64_t seed, uint8_t **cmds, size_t *lens)
{
    test_rng_t r;
    test_rng_init(&r, seed);
    int64_t now = T0;
    char org_ids[DET_ORGS][16];
    for (unsigned i = 0; i < DET_ORGS; i++) {
        snprintf(org_ids[i], sizeof(org_ids[i]), "org-%02u", i);
    }
    for (unsigned i = 0; i < DET_COMMANDS; i++) {
        now += test_rng_below(&r, 2000);
        if (test_rng_below(&r, 100) < 3) {
            now += (int64_t)HIE_DEDUP_RETENTION_MS + 1000;
        }
        uint32_t pick = test_rng_below(&r, 100);
        if (pick < 5) { /* invalid bytes */
            lens[i] = 1 + test_rng_below(&r, 12);
            cmds[i] = hie_mem_alloc(lens[i]);
            cr_assert_not_null(cmds[i]);
            for (size_t k = 0; k < lens[i]; k++) {
                cmds[i][k] = (uint8_t)test_rng_next(&r);
            }
            continue;
        }
        if (pick < 15 && i > 0) { /* an exact repeat of an earlier command */
            unsigned j = test_rng_below(&r, i);
            lens[i] = lens[j];
            cmds[i] = hie_mem_alloc(lens[j]);
            cr_assert_not_null(cmds[i]);
            memcpy(cmds[i], cmds[j], lens[j]);
            continue;
        }
        static const Hie__V1__Command__BodyCase kinds[] = {
            HIE__V1__COMMAND__BODY_ORG_REGISTER, HIE__V1__COMMAND__BODY_ORG_REGISTER,
            HIE__V1__COMMAND__BODY_ORG_SET_ROLES, HIE__V1__COMMAND__BODY_ORG_SUSPEND,
            HIE__V1__COMMAND__BODY_ORG_REINSTATE};
        char rid[32];
        snprintf(rid, sizeof(rid), "req-%u", i);
        struct cmd_spec s = {kinds[test_rng_below(&r, HIE_ARRAY_LEN(kinds))],
            org_ids[test_rng_below(&r, DET_ORGS)], rid, now, NULL, NULL, 0, {0}};
        if (test_rng_below(&r, 3) == 0) {
            s.requester = org_ids[test_rng_below(&r, DET_ORGS)];
        }
        s.n_roles = 1 + test_rng_below(&r, 3);
        for (size_t k = 0; k < s.n_roles; k++) {
            s.roles[k] = (Hie__V1__Role)(1 + test_rng_below(&r, 7));
        }
        cmds[i] = cmd_pack(&s, &lens[i]);
    }
}

/* Applies the whole sequence to st in batches of batch; keeps the result bytes. */
static void
det_apply(node_state_t *st, uint8_t **cmds, size_t *lens, size_t batch, struct result *out)
{
    for (size_t first = 0; first < DET_COMMANDS; first += batch) {
        size_t n = DET_COMMANDS - first < batch ? DET_COMMANDS - first : batch;
        apply_raw(st, 1 + first, cmds + first, lens + first, n, out + first);
    }
}

/* Compares database name of two environments entry by entry; returns its entry count. */
static size_t
db_compare(MDB_env *a, MDB_env *b, const char *name)
{
    MDB_txn *ta = NULL, *tb = NULL;
    MDB_dbi da, db;
    MDB_cursor *ca = NULL, *cb = NULL;
    cr_assert_eq(mdb_txn_begin(a, NULL, MDB_RDONLY, &ta), 0);
    cr_assert_eq(mdb_txn_begin(b, NULL, MDB_RDONLY, &tb), 0);
    cr_assert_eq(mdb_dbi_open(ta, name, 0, &da), 0, "%s missing in A", name);
    cr_assert_eq(mdb_dbi_open(tb, name, 0, &db), 0, "%s missing in B", name);
    cr_assert_eq(mdb_cursor_open(ta, da, &ca), 0);
    cr_assert_eq(mdb_cursor_open(tb, db, &cb), 0);
    size_t n = 0;
    MDB_val ka, va, kb, vb;
    int ra = mdb_cursor_get(ca, &ka, &va, MDB_FIRST);
    int rb = mdb_cursor_get(cb, &kb, &vb, MDB_FIRST);
    while (ra == 0 && rb == 0) {
        cr_assert_eq(ka.mv_size, kb.mv_size, "%s entry %zu: key sizes differ", name, n);
        cr_assert_eq(memcmp(ka.mv_data, kb.mv_data, ka.mv_size), 0, "%s entry %zu: keys", name,
            n);
        cr_assert_eq(va.mv_size, vb.mv_size, "%s entry %zu: value sizes differ", name, n);
        cr_assert_eq(memcmp(va.mv_data, vb.mv_data, va.mv_size), 0, "%s entry %zu: values",
            name, n);
        n++;
        ra = mdb_cursor_get(ca, &ka, &va, MDB_NEXT);
        rb = mdb_cursor_get(cb, &kb, &vb, MDB_NEXT);
    }
    cr_assert_eq(ra, MDB_NOTFOUND, "%s: A has more entries after %zu", name, n);
    cr_assert_eq(rb, MDB_NOTFOUND, "%s: B has more entries after %zu", name, n);
    mdb_cursor_close(ca);
    mdb_cursor_close(cb);
    mdb_txn_abort(ta);
    mdb_txn_abort(tb);
    return n;
}

/* The names of the named databases (the main database's keys). */
static void
db_names(MDB_env *env, char names[64][32], size_t *count)
{
    MDB_txn *txn = NULL;
    MDB_dbi main_dbi;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    *count = 0;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, NULL, 0, &main_dbi), 0);
    cr_assert_eq(mdb_cursor_open(txn, main_dbi, &cur), 0);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        cr_assert_lt(*count, 64);
        cr_assert_lt(k.mv_size, 32);
        memcpy(names[*count], k.mv_data, k.mv_size);
        names[*count][k.mv_size] = '\0';
        (*count)++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
}

Test(node_sm, same_commands_in_different_batches_give_identical_databases)
{
    uint64_t seed = test_seed(0x534d444554303031ull); /* "SMDET001" */
    static uint8_t *cmds[DET_COMMANDS];
    static size_t lens[DET_COMMANDS];
    static struct result one[DET_COMMANDS], many[DET_COMMANDS];
    det_commands(seed, cmds, lens);
    node_state_t *a = state_open(0);
    node_state_t *b = state_open(1);
    det_apply(a, cmds, lens, 1, one);
    det_apply(b, cmds, lens, 64, many);
    for (size_t i = 0; i < DET_COMMANDS; i++) {
        cr_assert_eq(one[i].len, many[i].len, "result of index %zu differs", i + 1);
        cr_assert_eq(memcmp(one[i].buf, many[i].buf, one[i].len), 0, "result %zu", i + 1);
        result_free(&one[i]);
        result_free(&many[i]);
        hie_mem_free(cmds[i], lens[i]);
    }
    cr_assert_eq(applied_index(a), DET_COMMANDS);
    cr_assert_eq(applied_index(b), DET_COMMANDS);

    MDB_env *ea = hie_node__state_env(a), *eb = hie_node__state_env(b);
    char names_a[64][32], names_b[64][32];
    size_t na = 0, nb = 0;
    db_names(ea, names_a, &na);
    db_names(eb, names_b, &nb);
    cr_assert_eq(na, nb);
    cr_assert_eq(na, 42, "4 node, MPI 9, consent 5, audit 7, queues 4, subs 9, repo 4");
    for (size_t i = 0; i < na; i++) {
        cr_assert_str_eq(names_a[i], names_b[i]);
    }
    static const char *const dbs[] = {"meta", "orgs", "dedup", "dedup_time"};
    size_t entries[4];
    for (size_t i = 0; i < HIE_ARRAY_LEN(dbs); i++) {
        entries[i] = db_compare(ea, eb, dbs[i]);
        cr_assert_gt(entries[i], 0, "%s is empty: the sequence exercises too little", dbs[i]);
    }
    cr_assert_eq(entries[2], entries[3], "one time-index entry per dedup entry");
    cr_assert_lt(entries[2], DET_COMMANDS, "pruning ran");
    cr_log_info("orgs=%zu dedup=%zu", entries[1], entries[2]);
}

/* ---- dedup pruning ------------------------------------------------------------------------ */

static bool
dedup_has(node_state_t *st, const char *rid)
{
    hie_command_result_t *res = NULL;
    int rc = hie_node__state_dedup_get(st, "@operator", rid, REG, arena, &res);
    cr_assert(rc == 0 || rc == HIE_ENOTFOUND, "dedup_get: %s", hie_strerror_name(rc));
    return rc == 0;
}

Test(node_sm, old_dedup_entries_are_pruned_a_few_per_apply)
{
    node_state_t *st = state_open(0);
    uint8_t *cmds[10];
    size_t lens[10];
    char ids[10][8];
    for (unsigned i = 0; i < 10; i++) {
        snprintf(ids[i], sizeof(ids[i]), "o%u", i);
        struct cmd_spec s = reg_spec(ids[i], ids[i], T0 + i); /* request id = org id */
        cmds[i] = cmd_pack(&s, &lens[i]);
    }
    struct result r[10];
    apply_raw(st, 1, cmds, lens, 10, r);
    for (unsigned i = 0; i < 10; i++) {
        hie_mem_free(cmds[i], lens[i]);
        result_free(&r[i]);
    }
    cr_assert_eq(db_entries(st, "dedup"), 10);
    cr_assert_eq(db_entries(st, "dedup_time"), 10);

    /* exactly the retention later: nothing is older than the horizon yet */
    int64_t late = T0 + (int64_t)HIE_DEDUP_RETENTION_MS;
    apply_one(st, 11, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_REGISTER, "late-0",
        "late-0", late, NULL, NULL, 0, {0}}, NULL);
    cr_assert(dedup_has(st, "o0"), "an entry exactly at the horizon is kept");
    cr_assert_eq(db_entries(st, "dedup"), 11);

    /* 5 ms later, o0..o4 are older than the horizon; one apply prunes at most 4 */
    apply_one(st, 12, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_REGISTER, "late-1",
        "late-1", late + 5, NULL, NULL, 0, {0}}, NULL);
    for (unsigned i = 0; i < 10; i++) {
        cr_assert_eq(dedup_has(st, ids[i]), i >= HIE_DEDUP_PRUNE_PER_APPLY, "o%u", i);
    }
    cr_assert_eq(db_entries(st, "dedup"), 12 - HIE_DEDUP_PRUNE_PER_APPLY);
    cr_assert_eq(db_entries(st, "dedup_time"), 12 - HIE_DEDUP_PRUNE_PER_APPLY);

    /* the next apply takes the one left behind (o4), and not o5 (time T0+5 = horizon) */
    apply_one(st, 13, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_REGISTER, "late-2",
        "late-2", late + 5, NULL, NULL, 0, {0}}, NULL);
    cr_assert(!dedup_has(st, "o4"));
    cr_assert(dedup_has(st, "o5"));
    cr_assert(dedup_has(st, "late-0"));
    cr_assert(dedup_has(st, "late-2"), "the new entry is never pruned by its own apply");

    /* a repeat does not prune (nothing is stored) */
    size_t before = db_entries(st, "dedup");
    apply_one(st, 14, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_REGISTER, "late-2",
        "late-2", late + 100000, NULL, NULL, 0, {0}}, NULL);
    cr_assert_eq(db_entries(st, "dedup"), before);
    cr_assert(dedup_has(st, "o5"));

    /* a pruned request id is forgotten: the same request is applied again */
    hie_command_result_t *res = apply_one(st, 15, &(struct cmd_spec){
        HIE__V1__COMMAND__BODY_ORG_REGISTER, "o0", "o0", late + 200, NULL, NULL, 0, {0}}, NULL);
    cr_assert_eq(res->index, 15, "not the original result any more");
    cr_assert_eq(res->code, WIRE(BAD_REQUEST), "o0 is registered already");
    cr_assert_eq(db_entries(st, "orgs"), 13);
}

Test(node_sm, pruning_uses_only_the_command_clock)
{
    /* a command whose clock runs behind prunes nothing, however late it is applied */
    node_state_t *st = state_open(0);
    apply_one(st, 1, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_REGISTER, "a", "a",
        T0 + 1000, NULL, NULL, 0, {0}}, NULL);
    apply_one(st, 2, &(struct cmd_spec){HIE__V1__COMMAND__BODY_ORG_REGISTER, "b", "b", T0,
        NULL, NULL, 0, {0}}, NULL);
    cr_assert(dedup_has(st, "a"));
    cr_assert(dedup_has(st, "b"));
    cr_assert_eq(db_entries(st, "dedup_time"), 2);
}

/* ---- misuse ------------------------------------------------------------------------------- */

Test(node_sm, fsm_of_a_null_state_aborts, .signal = SIGABRT)
{
    hie_cluster_fsm_t fsm = hie_node__state_fsm(NULL);
    (void)fsm;
}

Test(node_sm, apply_of_an_empty_batch_aborts, .signal = SIGABRT)
{
    node_state_t *st = state_open(0);
    hie_cluster_fsm_t fsm = hie_node__state_fsm(st);
    test_tmpdir_remove(tmp_dir); /* .fini will not run after the abort */
    hie_cluster_entry_t e = {1, {NULL, 0}};
    hie_cluster_result_t r = {NULL, 0};
    int rc = fsm.apply(fsm.ctx, &e, 0, &r);
    (void)rc;
}

/* ---- the MPI's commands: the same log gives the same index on every node ------------------ */

#define MPI_CMDS 300u
#define MPI_PEOPLE 40u

static const char *const mpi_given[] = {"William", "Bill", "Margaret", "Peggy", "Ana", "Anna",
    "José", "Jose", "Siobhán", "Li"};
static const char *const mpi_family[] = {"Smith", "Smyth", "Garcia", "García", "O'Brien",
    "Obrien", "Nguyen", "Ng", "Kowalski", "Kowalsky"};

/* A feed of person p (a few spellings per person, so some link and some go to review). */
static void
mpi_demo(test_rng_t *r, unsigned p, Hie__V1__Demographics *d, char **g, char **f, char *dob,
    char *pc)
{
    hie__v1__demographics__init(d);
    g[0] = (char *)(uintptr_t)mpi_given[(p % 5) * 2 + test_rng_below(r, 2)];
    f[0] = (char *)(uintptr_t)mpi_family[((p / 5) % 5) * 2 + test_rng_below(r, 2)];
    snprintf(dob, 11, "19%02u-%02u-%02u", 40 + p, 1 + p % 12, 1 + (p * 7) % 28);
    snprintf(pc, 8, "%05u", 10000 + p * 37 + test_rng_below(r, 2));
    d->n_given = d->n_family = 1;
    d->given = g;
    d->family = f;
    d->birth_date = dob;
    d->postcode = pc;
}

static uint8_t *
mpi_cmd(test_rng_t *r, const hie_mpi_key_t *key, unsigned i, unsigned *fed, size_t *len)
{
    static const char *const orgs[2] = {"org-a", "org-b"};
    char mrn[16], prior[16], rid[24], dob[11], pc[8], *g[1], *f[1];
    Hie__V1__Demographics d;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__MpiFeedRequest req = HIE__V1__MPI_FEED_REQUEST__INIT;
    uint32_t pick = test_rng_below(r, 100);
    unsigned target = *fed > 0 ? test_rng_below(r, *fed) : 0;
    req.action = pick < 70 || *fed < 4 ? HIE__V1__FEED_ACTION__FEED_CREATE
        : pick < 85 ? HIE__V1__FEED_ACTION__FEED_UPDATE
        : pick < 93 ? HIE__V1__FEED_ACTION__FEED_MERGE : HIE__V1__FEED_ACTION__FEED_UNLINK;
    unsigned m = req.action == HIE__V1__FEED_ACTION__FEED_CREATE ? (*fed)++ : target;
    snprintf(mrn, sizeof(mrn), "M%u", m);
    snprintf(prior, sizeof(prior), "M%u", m ^ 2u);
    pid.org_id = (char *)(uintptr_t)orgs[m % 2];
    pid.mrn = mrn;
    req.patient = &pid;
    req.prior_mrn = req.action == HIE__V1__FEED_ACTION__FEED_MERGE ? prior : (char *)"";
    if (req.action <= HIE__V1__FEED_ACTION__FEED_UPDATE) {
        mpi_demo(r, test_rng_below(r, MPI_PEOPLE), &d, g, f, dob, pc);
        req.demographics = &d;
    }
    Hie__V1__MpiFeedCommand *fc = NULL;
    hie_errinfo_t info = {0};
    cr_assert_eq(hie_mpi_feed_command(key, orgs[m % 2], &req, arena, &fc, &info), 0, "%s %s",
        info.field, info.reason);
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    snprintf(rid, sizeof(rid), "mpi-%u", i);
    cmd.requester = (char *)(uintptr_t)orgs[m % 2];
    cmd.request_id = rid;
    cmd.time_ms = T0 + i;
    cmd.node_id = (char *)"node-1";
    cmd.body_case = HIE__V1__COMMAND__BODY_MPI_FEED;
    cmd.mpi_feed = fc;
    uint8_t *buf = NULL;
    cr_assert_eq(hie_proto_pack(&cmd.base, HIE_LOG_COMMAND_BYTES_MAX, &buf, len), 0);
    return buf;
}

/* B applies through a match pool (2 threads), A without one: the pool must not change a
 * decision. Also: B restarts halfway, so its in-memory blocking index is rebuilt from LMDB;
 * matching after the restart must decide exactly as A's index, built record by record, does. */
Test(node_sm, mpi_feeds_in_different_batches_give_identical_indexes)
{
    uint64_t seed = test_seed(0x4d50494445543031ull); /* "MPIDET01" */
    test_rng_t r;
    test_rng_init(&r, seed);
    node_state_t *a = state_open(0);
    node_state_t *b = state_open(1);
    char key_path[192];
    snprintf(key_path, sizeof(key_path), "%s/mpi.key", tmp_dir);
    cr_assert_eq(hie_mpi_key_generate(key_path), 0);
    cr_assert_eq(hie_node__state_mpi_key_load(a, key_path, 0), 0); /* no match pool */
    cr_assert_eq(hie_node__state_mpi_key_load(b, key_path, 2), 0);
    static uint8_t *cmds[MPI_CMDS];
    static size_t lens[MPI_CMDS];
    static struct result one[MPI_CMDS], many[MPI_CMDS];
    unsigned fed = 0, linked = 0, merged = 0, unlinked = 0, refused = 0;
    for (unsigned i = 0; i < MPI_CMDS; i++) {
        cmds[i] = mpi_cmd(&r, hie_node__state_mpi_key(a), i, &fed, &lens[i]);
    }
    for (size_t first = 0; first < MPI_CMDS; first++) {
        apply_raw(a, 1 + first, cmds + first, lens + first, 1, one + first);
    }
    for (size_t first = 0; first < MPI_CMDS; first += 37) {
        size_t n = MPI_CMDS - first < 37 ? MPI_CMDS - first : 37;
        apply_raw(b, 1 + first, cmds + first, lens + first, n, many + first);
        if (first == 148) { /* B restarts: its blocking index is rebuilt from the records */
            hie_node__state_close(&states[1]);
            b = state_open(1);
            cr_assert_eq(hie_node__state_mpi_key_load(b, key_path, 2), 0);
        }
    }
    for (size_t i = 0; i < MPI_CMDS; i++) {
        cr_assert_eq(one[i].len, many[i].len, "result %zu differs", i + 1);
        cr_assert_eq(memcmp(one[i].buf, many[i].buf, one[i].len), 0, "result %zu", i + 1);
        const Hie__V1__MpiFeedReply *fr = one[i].msg->mpi_feed;
        refused += one[i].msg->code != 0;
        linked += fr != NULL && fr->outcome == HIE__V1__FEED_OUTCOME__OUTCOME_LINKED;
        merged += fr != NULL && fr->outcome == HIE__V1__FEED_OUTCOME__OUTCOME_MERGED;
        unlinked += fr != NULL && fr->outcome == HIE__V1__FEED_OUTCOME__OUTCOME_UNLINKED;
        result_free(&one[i]);
        result_free(&many[i]);
        hie_mem_free(cmds[i], lens[i]);
    }
    cr_log_info("seed %#lx: %u linked, %u merged, %u unlinked, %u refused", seed, linked,
        merged, unlinked, refused);
    cr_assert(linked > 0 && merged > 0 && unlinked > 0, "the workload exercises every path");
    static const char *const dbs[] = {"mpi_recs", "mpi_euid", "mpi_nolink",
        "mpi_review", "mpi_histb", "mpi_meta", "dedup"};
    MDB_env *ea = hie_node__state_env(a), *eb = hie_node__state_env(b);
    for (size_t i = 0; i < HIE_ARRAY_LEN(dbs); i++) {
        size_t n = db_compare(ea, eb, dbs[i]);
        cr_assert(strcmp(dbs[i], "mpi_nolink") == 0 || n > 0, "%s is empty", dbs[i]);
    }
}

/* ---- consent, audit, push, subscriptions, ADT: the same log gives the same state ---------- */

#define EX_MAX 600u
#define EX_PATIENTS 8u

/* Commands are built by the node's own code against state A (as a worker would, reading the
 * state the log has reached), applied to A one by one and kept; B applies the same bytes in
 * batches of 7 and restarts halfway. */
struct ex {
    node_ctx_t ctx;
    bool legacy;                /* consent commands as proposers wrote them before 2026-11-30 */
    test_rng_t rng;
    uint8_t *cmds[EX_MAX];
    size_t lens[EX_MAX];
    size_t n;
    unsigned pushes, denied, notices, acks;
};

static void
ex_keep(struct ex *x, const hie_command_t *cmd)
{
    cr_assert_lt(x->n, EX_MAX);
    cr_assert_eq(hie_proto_pack(&cmd->base, HIE_LOG_COMMAND_BYTES_MAX, &x->cmds[x->n],
        &x->lens[x->n]), 0);
    struct result r;
    apply_raw(x->ctx.state, 1 + x->n, &x->cmds[x->n], &x->lens[x->n], 1, &r);
    x->acks += r.msg->code == 0 && r.msg->acknowledged > 0;
    result_free(&r);
    x->n++;
}

static void
ex_org(struct ex *x, const char *org, Hie__V1__Role role)
{
    struct cmd_spec s = {HIE__V1__COMMAND__BODY_ORG_REGISTER, org, org, T0, NULL, NULL, 1,
        {role}};
    x->cmds[x->n] = cmd_pack(&s, &x->lens[x->n]);
    struct result r;
    apply_raw(x->ctx.state, 1 + x->n, &x->cmds[x->n], &x->lens[x->n], 1, &r);
    result_free(&r);
    x->n++;
}

static const node_who_t *
ex_who(struct ex *x, const char *org, const char *id)
{
    static node_who_t who;
    static char idbuf[32];
    hie_org_t *o = NULL;
    cr_assert_eq(hie_node__state_org_get(x->ctx.state, org, arena, &o), 0);
    snprintf(idbuf, sizeof(idbuf), "%s", id);
    who = (node_who_t){o->id, o, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT, idbuf, NULL};
    return &who;
}

static void
ex_feed(struct ex *x, const char *org, unsigned p)
{
    char mrn[16], rid[24], dob[11], pc[8], *g[1], *f[1];
    Hie__V1__Demographics d;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__MpiFeedRequest req = HIE__V1__MPI_FEED_REQUEST__INIT;
    test_rng_t fixed;
    test_rng_init(&fixed, p + 1); /* the same spelling at both organizations: they link */
    snprintf(mrn, sizeof(mrn), "%c-%u", org[4], p);
    pid.org_id = (char *)(uintptr_t)org;
    pid.mrn = mrn;
    req.action = HIE__V1__FEED_ACTION__FEED_CREATE;
    req.patient = &pid;
    mpi_demo(&fixed, p, &d, g, f, dob, pc);
    req.demographics = &d;
    Hie__V1__MpiFeedCommand *fc = NULL;
    hie_errinfo_t info = {0};
    cr_assert_eq(hie_mpi_feed_command(hie_node__state_mpi_key(x->ctx.state), org, &req, arena,
        &fc, &info), 0);
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    snprintf(rid, sizeof(rid), "feed-%s-%u", org, p);
    cmd.requester = (char *)(uintptr_t)org;
    cmd.request_id = rid;
    cmd.time_ms = T0 + x->n;
    cmd.node_id = "node-1";
    cmd.body_case = HIE__V1__COMMAND__BODY_MPI_FEED;
    cmd.mpi_feed = fc;
    ex_keep(x, &cmd);
}

static void
ex_subscribe(struct ex *x, const char *org)
{
    Hie__V1__Subscription s = HIE__V1__SUBSCRIPTION__INIT;
    Hie__V1__SubscribeCommand sc = HIE__V1__SUBSCRIBE_COMMAND__INIT;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    char rid[24];
    snprintf(rid, sizeof(rid), "sub-%s", org);
    s.org_id = (char *)(uintptr_t)org;
    s.scope = HIE__V1__SUBSCRIPTION_SCOPE__SCOPE_ALL_MY_PATIENTS;
    sc.subscription = &s;
    cmd.requester = s.org_id;
    cmd.request_id = rid;
    cmd.time_ms = T0 + x->n;
    cmd.node_id = "node-1";
    cmd.body_case = HIE__V1__COMMAND__BODY_SUBSCRIBE;
    cmd.subscribe = &sc;
    ex_keep(x, &cmd);
}

/* The hospital files patient p's directive: everyone but the clinic (or revokes it). */
static void
ex_consent(struct ex *x, unsigned p, unsigned step)
{
    static char ids[EX_PATIENTS][32];
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    char rid[24], mrn[16], masked[40];
    snprintf(rid, sizeof(rid), "c-%u", step);
    cmd.requester = "org-h";
    cmd.request_id = rid;
    cmd.time_ms = T0 + x->n;
    cmd.node_id = "node-1";
    Hie__V1__ConsentRevokeCommand rv = HIE__V1__CONSENT_REVOKE_COMMAND__INIT;
    if (ids[p][0] != '\0') {
        rv.id = ids[p];
        rv.rules_2026_11_30 = !x->legacy;
        cmd.body_case = HIE__V1__COMMAND__BODY_CONSENT_REVOKE;
        cmd.consent_revoke = &rv;
        ex_keep(x, &cmd);
        ids[p][0] = '\0';
        return;
    }
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    snprintf(mrn, sizeof(mrn), "h-%u", p);
    hie_mpi_rec_hash(hie_node__state_mpi_key(x->ctx.state), "org-h", mrn, h);
    masked[0] = '#';
    sodium_bin2hex(masked + 1, sizeof(masked) - 1, h, sizeof(h));
    Hie__V1__ConsentDirective d = HIE__V1__CONSENT_DIRECTIVE__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__ConsentProvision root = HIE__V1__CONSENT_PROVISION__INIT;
    Hie__V1__ConsentProvision kid = HIE__V1__CONSENT_PROVISION__INIT, *kids[1] = {&kid};
    Hie__V1__ConsentActor actor = HIE__V1__CONSENT_ACTOR__INIT, *actors[1] = {&actor};
    pid.org_id = "org-h";
    pid.mrn = masked;
    actor.org_id = "org-c";
    kid.type = HIE__V1__PROVISION_TYPE__PROVISION_DENY;
    kid.n_actors = 1;
    kid.actors = actors;
    root.type = HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
    root.n_provisions = 1;
    root.provisions = kids;
    d.patient = &pid;
    d.status = HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE;
    d.date_ms = T0;
    d.provision = &root;
    Hie__V1__ConsentSubmitCommand sc = HIE__V1__CONSENT_SUBMIT_COMMAND__INIT;
    sc.directive = &d;
    sc.rec_hash = (ProtobufCBinaryData){sizeof(h), h};
    sc.rules_2026_11_30 = !x->legacy;
    cmd.body_case = HIE__V1__COMMAND__BODY_CONSENT_SUBMIT;
    cmd.consent_submit = &sc;
    ex_keep(x, &cmd);
    snprintf(ids[p], sizeof(ids[p]), "cns-%zu", x->n); /* the index it was applied at */
}

static void
ex_push(struct ex *x, unsigned p, unsigned step)
{
    char rid[24], mrn[16];
    snprintf(rid, sizeof(rid), "p-%u", step);
    snprintf(mrn, sizeof(mrn), "h-%u", p);
    Hie__V1__PushRequest req = HIE__V1__PUSH_REQUEST__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    pid.org_id = "org-h";
    pid.mrn = mrn;
    d.patient = &pid;
    d.content_type = "text/plain";
    d.content = (ProtobufCBinaryData){4, (uint8_t *)"note"};
    req.recipient_org = test_rng_below(&x->rng, 4) == 0 ? "" : "org-c"; /* or the repository */
    req.document = &d;
    Hie__V1__PushReply *reply = NULL;
    node_audit_cmd_t audit = {0};
    node_mpi_err_t e = {0};
    int rc = hie_node__push_prepare(&x->ctx, ex_who(x, "org-h", rid), &req, arena, &reply,
        &audit, &e);
    cr_assert(rc == 0 || e.code == WIRE(CONSENT_DENIED), "push: %s", e.message);
    x->denied += rc != 0;
    x->pushes += rc == 0;
    cr_assert(audit.needed);
    ex_keep(x, &audit.cmd);
}

static void
ex_adt(struct ex *x, unsigned p, unsigned step)
{
    static const Hie__V1__AdtEvent evs[] = {HIE__V1__ADT_EVENT__ADT_A01,
        HIE__V1__ADT_EVENT__ADT_A02, HIE__V1__ADT_EVENT__ADT_A03, HIE__V1__ADT_EVENT__ADT_A11};
    char rid[24], mrn[16], visit[16];
    snprintf(rid, sizeof(rid), "a-%u", step);
    snprintf(mrn, sizeof(mrn), "h-%u", p);
    snprintf(visit, sizeof(visit), "V%u", p);
    Hie__V1__AdtRequest req = HIE__V1__ADT_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__Encounter en = HIE__V1__ENCOUNTER__INIT;
    pid.org_id = "org-h";
    pid.mrn = mrn;
    en.visit_id = visit;
    en.patient_class = HIE__V1__PATIENT_CLASS__PATIENT_CLASS_INPATIENT;
    req.event = evs[test_rng_below(&x->rng, 4)];
    req.patient = &pid;
    req.encounter = &en;
    req.event_ms = T0;
    Hie__V1__AdtReply *reply = NULL;
    node_audit_cmd_t audit = {0};
    node_mpi_err_t e = {0};
    cr_assert_eq(hie_node__adt_prepare(&x->ctx, NULL, ex_who(x, "org-h", rid), &req, arena,
        &reply, &audit, &e), 0, "adt: %s", e.message);
    x->notices += reply->notified;
    ex_keep(x, &audit.cmd);
}

/* The clinic acknowledges a random queued message (or one that is gone: a no-op). */
static void
ex_ack(struct ex *x, unsigned step)
{
    char rid[24];
    snprintf(rid, sizeof(rid), "k-%u", step);
    uint64_t seq = 1 + test_rng_below(&x->rng, 40);
    Hie__V1__DeliveryAckCommand ac = HIE__V1__DELIVERY_ACK_COMMAND__INIT;
    ac.recipient_org = "org-c";
    ac.n_seqs = 1;
    ac.seqs = &seq;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.requester = "org-c";
    cmd.request_id = rid;
    cmd.time_ms = T0 + x->n;
    cmd.node_id = "node-1";
    cmd.body_case = test_rng_below(&x->rng, 5) == 0 ? HIE__V1__COMMAND__BODY_DEAD_LETTER
                                                     : HIE__V1__COMMAND__BODY_DELIVERY_ACK;
    Hie__V1__DeadLetterCommand dc = HIE__V1__DEAD_LETTER_COMMAND__INIT;
    dc.recipient_org = "org-c";
    dc.seq = seq;
    dc.attempts = 8;
    dc.reason = "max-attempts";
    cmd.delivery_ack = &ac;
    if (cmd.body_case == HIE__V1__COMMAND__BODY_DEAD_LETTER) {
        cmd.dead_letter = &dc;
    }
    ex_keep(x, &cmd);
}

Test(node_sm, exchanges_in_different_batches_give_identical_state)
{
    static struct ex x;
    memset(&x, 0, sizeof(x));
    uint64_t seed = test_seed(0x4558434844455431ull); /* "EXCHDET1" */
    test_rng_init(&x.rng, seed);
    node_state_t *a = state_open(0);
    char key_path[192];
    snprintf(key_path, sizeof(key_path), "%s/mpi.key", tmp_dir);
    cr_assert_eq(hie_mpi_key_generate(key_path), 0);
    cr_assert_eq(hie_node__state_mpi_key_load(a, key_path, 2), 0);
    x.ctx.state = a;
    snprintf(x.ctx.cfg.node_id, sizeof(x.ctx.cfg.node_id), "node-1");
    hie_consent_policy_init(&x.ctx.consent_policy);
    x.ctx.consent_policy.regime = HIE_CONSENT_OPT_OUT;
    ex_org(&x, "org-h", HIE__V1__ROLE__ROLE_HOSPITAL);
    ex_org(&x, "org-c", HIE__V1__ROLE__ROLE_CLINIC);
    for (unsigned p = 0; p < EX_PATIENTS; p++) {
        ex_feed(&x, "org-h", p);
        ex_feed(&x, "org-c", p);
    }
    ex_subscribe(&x, "org-c");
    for (unsigned step = 0; x.n < EX_MAX - 2; step++) {
        unsigned p = test_rng_below(&x.rng, EX_PATIENTS), what = test_rng_below(&x.rng, 10);
        if (what < 2) {
            ex_consent(&x, p, step);
        } else if (what < 5) {
            ex_push(&x, p, step);
        } else if (what < 8) {
            ex_adt(&x, p, step);
        } else {
            ex_ack(&x, step);
        }
        hie_arena_destroy(&arena);
        cr_assert_eq(hie_arena_create(&arena, HIE_ARENA_BYTES_MAX), 0);
    }
    cr_log_info("seed %#lx: %zu commands, %u pushes, %u refused by consent, %u notices, "
        "%u acks or dead letters", seed, x.n, x.pushes, x.denied, x.notices, x.acks);
    cr_assert(x.pushes > 0 && x.denied > 0 && x.notices > 0 && x.acks > 0, "every path");
    node_state_t *b = state_open(1);
    cr_assert_eq(hie_node__state_mpi_key_load(b, key_path, 2), 0);
    for (size_t first = 0; first < x.n; first += 7) {
        size_t n = x.n - first < 7 ? x.n - first : 7;
        static struct result r[7];
        apply_raw(b, 1 + first, x.cmds + first, x.lens + first, n, r);
        for (size_t i = 0; i < n; i++) {
            result_free(&r[i]);
        }
        if (first == 196) { /* B restarts halfway */
            hie_node__state_close(&states[1]);
            b = state_open(1);
            cr_assert_eq(hie_node__state_mpi_key_load(b, key_path, 2), 0);
        }
    }
    static const char *const dbs[] = {"consent_dir", "consent_rule", "consent_pat", "consent_hist",
        HIE_AUDIT_TREE_DB_NAME, "audit_rec", "audit_subj", "audit_patient", "audit_org", "q_msg",
        "q_meta", "q_dead", "subs", "sub_org", "sub_all", "adt_visit", "adt_visit_at",
        "adt_visit_t", "sub_log", "repo_doc", "repo_rec", "dedup", "mpi_recs"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(dbs); i++) {
        size_t n = db_compare(hie_node__state_env(a), hie_node__state_env(b), dbs[i]);
        cr_assert(n > 0 || strcmp(dbs[i], "q_dead") == 0, "%s is empty", dbs[i]);
    }
    for (size_t i = 0; i < x.n; i++) {
        hie_mem_free(x.cmds[i], x.lens[i]);
    }
}

/* An admission to visit vid of patient p, applied with command time t. */
static void
ex_admit(struct ex *x, unsigned p, const char *vid, const char *rid, int64_t t)
{
    char mrn[16];
    snprintf(mrn, sizeof(mrn), "h-%u", p);
    Hie__V1__AdtRequest req = HIE__V1__ADT_REQUEST__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__Encounter en = HIE__V1__ENCOUNTER__INIT;
    pid.org_id = "org-h";
    pid.mrn = mrn;
    en.visit_id = (char *)(uintptr_t)vid;
    en.patient_class = HIE__V1__PATIENT_CLASS__PATIENT_CLASS_INPATIENT;
    req.event = HIE__V1__ADT_EVENT__ADT_A01;
    req.patient = &pid;
    req.encounter = &en;
    req.event_ms = T0;
    Hie__V1__AdtReply *reply = NULL;
    node_audit_cmd_t audit = {0};
    node_mpi_err_t e = {0};
    cr_assert_eq(hie_node__adt_prepare(&x->ctx, NULL, ex_who(x, "org-h", rid), &req, arena,
        &reply, &audit, &e), 0, "adt: %s", e.message);
    cr_assert_eq(reply->notified, 1u);
    audit.cmd.time_ms = t;
    ex_keep(x, &audit.cmd);
}

/* A visit's recipients are kept for its cancel HIE_ADT_VISIT_RETAIN_MS, then deleted by a
 * later ADT event's apply; an admission of the visit again keeps it longer. Before, every
 * notified visit kept its row for good (normal traffic grew the state without bound). */
Test(node_sm, visit_rows_past_their_retention_are_deleted)
{
    static struct ex x;
    memset(&x, 0, sizeof(x));
    test_rng_init(&x.rng, 1);
    node_state_t *a = state_open(0);
    char key_path[192];
    snprintf(key_path, sizeof(key_path), "%s/mpi.key", tmp_dir);
    cr_assert_eq(hie_mpi_key_generate(key_path), 0);
    cr_assert_eq(hie_node__state_mpi_key_load(a, key_path, 2), 0);
    x.ctx.state = a;
    snprintf(x.ctx.cfg.node_id, sizeof(x.ctx.cfg.node_id), "node-1");
    hie_consent_policy_init(&x.ctx.consent_policy);
    x.ctx.consent_policy.regime = HIE_CONSENT_OPT_OUT;
    ex_org(&x, "org-h", HIE__V1__ROLE__ROLE_HOSPITAL);
    ex_org(&x, "org-c", HIE__V1__ROLE__ROLE_CLINIC);
    for (unsigned p = 0; p < 2; p++) {
        ex_feed(&x, "org-h", p);
        ex_feed(&x, "org-c", p);
    }
    ex_subscribe(&x, "org-c");
    const int64_t t1 = 1796104800000ll, day = 24ll * 3600 * 1000; /* 2026-12-01T06:00Z */
    ex_admit(&x, 0, "V0", "a-1", t1);
    ex_admit(&x, 1, "V1", "a-2", t1 + 100 * day);
    cr_assert_eq(db_entries(a, "adt_visit"), 2u);
    ex_admit(&x, 1, "V1", "a-3", t1 + 350 * day); /* V1 again: kept from now */
    ex_admit(&x, 0, "V2", "a-4", t1 + 401 * day);
    cr_assert_eq(db_entries(a, "adt_visit"), 2u, "V0 past its retention, V1 and V2 kept");
    cr_assert_eq(db_entries(a, "adt_visit_t"), 2u);
    cr_assert_eq(db_entries(a, "adt_visit_at"), 2u);
    ex_admit(&x, 0, "V3", "a-5", t1 + 900 * day);
    cr_assert_eq(db_entries(a, "adt_visit"), 1u, "only V3");
    for (size_t i = 0; i < x.n; i++) {
        hie_mem_free(x.cmds[i], x.lens[i]);
    }
}

/* ---- audit_batch: one worker wakeup's audit records in one command ----------------------- */

#define BATCH_RECORDS 5u

/* The audit records of BATCH_RECORDS PIX exchanges, built by the node's own code. */
static void
batch_build(node_ctx_t *ctx, hie_command_t *cmds)
{
    static char ids[BATCH_RECORDS][16];
    hie_org_t *org = org_get(ctx->state, "org-h");
    for (size_t i = 0; i < BATCH_RECORDS; i++) {
        snprintf(ids[i], sizeof(ids[i]), "q-%zu", i);
        node_who_t who = {"org-h", org, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT, ids[i],
            NULL};
        node_subject_t s = {"EUID-1", {0}, NULL, 0, NULL, 0};
        s.decision.decision = HIE_CONSENT_PERMIT;
        s.decision.reason = "implicit-permit";
        node_audit_cmd_t out = {0};
        hie_node__audit_build(ctx, &who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PIX,
            HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED, &s, 1, arena, &out);
        cr_assert_eq(out.build_rc, 0);
        cmds[i] = out.cmd;
    }
}

static int
batch_leaf(void *ctx, MDB_txn *txn, uint64_t index, hie_span_t *entry)
{
    return hie_node__audit_record(hie_node__state_audit(ctx), txn, index, entry);
}

/* Record leaf of st, decoded; checks the tree against every record on the way. */
static Hie__V1__AuditRecord *
batch_record(node_state_t *st, uint64_t leaf)
{
    MDB_txn *txn = NULL;
    hie_span_t bytes;
    hie_audit_verify_report_t rep;
    cr_assert_eq(mdb_txn_begin(hie_node__state_env(st), NULL, MDB_RDONLY, &txn), 0);
    hie_audit_tree_t *tree = hie_node__audit_tree(hie_node__state_audit(st));
    cr_assert_eq(hie_audit_tree_verify(tree, txn, NULL, &rep, batch_leaf, st), 0);
    cr_assert_eq(rep.size, BATCH_RECORDS);
    cr_assert_eq(hie_node__audit_record(hie_node__state_audit(st), txn, leaf, &bytes), 0);
    ProtobufCMessage *m = NULL;
    cr_assert_eq(hie_proto_unpack(&hie__v1__audit_record__descriptor, bytes, arena, &m), 0);
    mdb_txn_abort(txn);
    return (Hie__V1__AuditRecord *)m;
}

/* A applies the records as one audit_batch, B one command each: the same leaves in the same
 * order and the same indexes; each record names the log entry it came in. */
Test(node_sm, audit_batch_appends_its_records_in_order_as_one_command)
{
    node_state_t *st[2] = {state_open(0), state_open(1)};
    char key_path[192];
    snprintf(key_path, sizeof(key_path), "%s/mpi.key", tmp_dir);
    cr_assert_eq(hie_mpi_key_generate(key_path), 0);
    node_ctx_t ctx = {.state = st[0]};
    snprintf(ctx.cfg.node_id, sizeof(ctx.cfg.node_id), "node-1");
    for (size_t s = 0; s < 2; s++) {
        cr_assert_eq(hie_node__state_mpi_key_load(st[s], key_path, 2), 0);
        struct cmd_spec reg = reg_spec("org-h", "r-1", T0);
        cr_assert_eq(apply_one(st[s], 1, &reg, NULL)->code, 0);
    }
    hie_command_t cmds[BATCH_RECORDS];
    Hie__V1__AuditAppendCommand *appends[BATCH_RECORDS];
    batch_build(&ctx, cmds);
    uint8_t *buf[BATCH_RECORDS + 1];
    size_t len[BATCH_RECORDS + 1];
    struct result r[BATCH_RECORDS + 1];
    for (size_t i = 0; i < BATCH_RECORDS; i++) {
        appends[i] = cmds[i].audit_append;
        cr_assert_eq(hie_proto_pack(&cmds[i].base, HIE_LOG_COMMAND_BYTES_MAX, &buf[i],
            &len[i]), 0);
    }
    Hie__V1__AuditBatchCommand ab = HIE__V1__AUDIT_BATCH_COMMAND__INIT;
    ab.n_appends = BATCH_RECORDS;
    ab.appends = appends;
    hie_command_t batch = cmds[0];
    batch.body_case = HIE__V1__COMMAND__BODY_AUDIT_BATCH;
    batch.audit_batch = &ab;
    cr_assert_eq(hie_proto_pack(&batch.base, HIE_LOG_COMMAND_BYTES_MAX, &buf[BATCH_RECORDS],
        &len[BATCH_RECORDS]), 0);
    apply_raw(st[0], 2, &buf[BATCH_RECORDS], &len[BATCH_RECORDS], 1, &r[BATCH_RECORDS]);
    apply_raw(st[1], 2, buf, len, BATCH_RECORDS, r);
    cr_assert_eq(r[BATCH_RECORDS].msg->code, 0);
    cr_assert_eq(r[BATCH_RECORDS].msg->audit_leaf_index, 0, "the result names the first");
    for (size_t i = 0; i <= BATCH_RECORDS; i++) {
        cr_assert(i == BATCH_RECORDS || r[i].msg->audit_leaf_index == i);
        result_free(&r[i]);
        hie_mem_free(buf[i], len[i]);
    }
    for (uint64_t leaf = 0; leaf < BATCH_RECORDS; leaf++) {
        Hie__V1__AuditRecord *a = batch_record(st[0], leaf), *b = batch_record(st[1], leaf);
        cr_assert_eq(a->leaf_index, leaf);
        cr_assert_eq(b->leaf_index, leaf);
        cr_assert_str_eq(a->request_id, b->request_id, "the same order");
        cr_assert_eq(a->log_index, 2, "every record of the batch came in entry 2");
        cr_assert_eq(b->log_index, 2 + leaf);
    }
    static const char *const dbs[] = {"audit_rec", "audit_subj", "audit_patient", "audit_org"};
    for (size_t i = 0; i < HIE_ARRAY_LEN(dbs); i++) {
        cr_assert_eq(db_entries(st[0], dbs[i]), BATCH_RECORDS, "%s", dbs[i]);
        cr_assert_eq(db_entries(st[1], dbs[i]), BATCH_RECORDS, "%s", dbs[i]);
    }
}

/* Whether a data key is loaded is not in the log: a command that needs it stops the node when
 * there is none (the batch is not applied, the index does not move) instead of being recorded
 * as rejected, which would drop an acknowledged audit record or push for good. And a state
 * opens only with the key it was written with. */
Test(node_sm, a_command_needing_the_data_key_stops_apply_without_one)
{
    node_state_t *st = state_open(0);
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    Hie__V1__ConsentRevokeCommand rv = HIE__V1__CONSENT_REVOKE_COMMAND__INIT;
    rv.id = "cns-7";
    cmd.requester = "@operator";
    cmd.request_id = "r-1";
    cmd.time_ms = T0;
    cmd.node_id = "node-1";
    cmd.body_case = HIE__V1__COMMAND__BODY_CONSENT_REVOKE;
    cmd.consent_revoke = &rv;
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(hie_proto_pack(&cmd.base, 1 << 20, &buf, &len), 0);
    hie_cluster_entry_t e = {1, hie_span(buf, len)};
    hie_cluster_result_t r = {NULL, 0};
    hie_cluster_fsm_t fsm = hie_node__state_fsm(st);
    fsm.prepare(fsm.ctx, &e, 1);
    cr_assert_neq(fsm.apply(fsm.ctx, &e, 1, &r), 0, "applied without the data key");
    hie_mem_free(r.buf, r.len);
    cr_assert_eq(applied_index(st), 0u, "nothing applied");
    char key_path[192], other_path[192];
    snprintf(key_path, sizeof(key_path), "%s/mpi.key", tmp_dir);
    snprintf(other_path, sizeof(other_path), "%s/other.key", tmp_dir);
    cr_assert_eq(hie_mpi_key_generate(key_path), 0);
    cr_assert_eq(hie_mpi_key_generate(other_path), 0);
    cr_assert_eq(hie_node__state_mpi_key_load(st, key_path, 0), 0);
    struct result res;
    apply_raw(st, 1, &buf, &len, 1, &res);
    cr_assert_eq(res.msg->code, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "applied: no such id");
    result_free(&res);
    hie_mem_free(buf, len);
    cr_assert_eq(applied_index(st), 1u);
    hie_node__state_close(&states[0]);
    st = state_open(0);
    cr_assert_eq(hie_node__state_mpi_key_load(st, other_path, 0), HIE_ECONFIG,
        "another key is refused");
    cr_assert_eq(hie_node__state_mpi_key_load(st, key_path, 0), 0, "its own key opens it");
}

/* A state with the data key, the hospital and the clinic registered and the hospital's
 * patient 0 fed: where the consent tests below start. */
static node_state_t *
consent_state(struct ex *x)
{
    memset(x, 0, sizeof(*x));
    node_state_t *st = state_open(0);
    char key_path[192];
    snprintf(key_path, sizeof(key_path), "%s/mpi.key", tmp_dir);
    cr_assert_eq(hie_mpi_key_generate(key_path), 0);
    cr_assert_eq(hie_node__state_mpi_key_load(st, key_path, 0), 0);
    x->ctx.state = st;
    ex_org(x, "org-h", HIE__V1__ROLE__ROLE_HOSPITAL);
    ex_org(x, "org-c", HIE__V1__ROLE__ROLE_CLINIC);
    ex_feed(x, "org-h", 0);
    return st;
}

/* A log written before 2026-11-30 replays as it applied: its revokes leave the id in
 * consent_pat. A submit logged since moves such ids to consent_hist. */
Test(node_sm, consent_commands_logged_before_the_new_rules_apply_as_they_did)
{
    static struct ex x;
    node_state_t *a = consent_state(&x);
    x.legacy = true;
    ex_consent(&x, 0, 1); /* submit */
    ex_consent(&x, 0, 2); /* revoke */
    cr_assert_eq(db_entries(a, "consent_pat"), 1u, "left in force-list, as applied then");
    cr_assert_eq(db_entries(a, "consent_hist"), 0u);
    x.legacy = false;
    ex_consent(&x, 0, 3); /* a new submit: the revoked id moves */
    cr_assert_eq(db_entries(a, "consent_pat"), 1u, "the new directive only");
    cr_assert_eq(db_entries(a, "consent_hist"), 1u, "the revoked one");
    ex_consent(&x, 0, 4); /* a new revoke */
    cr_assert_eq(db_entries(a, "consent_pat"), 0u);
    cr_assert_eq(db_entries(a, "consent_hist"), 2u);
}

/* An EUID at the store's member limit may have more members than it lists: its consent rules
 * are an error (the decision denies), not a decision on a part of its records. */
Test(node_sm, consent_rules_of_an_euid_at_the_member_limit_fail_closed)
{
    node_state_t *st = state_open(0);
    static uint8_t hashes[HIE_MPI_EUID_MEMBERS_MAX * HIE_MPI_REC_HASH_BYTES];
    hie_mpi_members_t known = {hashes, HIE_MPI_EUID_MEMBERS_MAX};
    hie_span_t rules[HIE_CONSENT_DIRECTIVES_MAX];
    size_t n = 99;
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(hie_node__state_env(st), NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_node__consent_rules(hie_node__state_consent(st),
        hie_node__state_mpi(st), txn, "E000000000001", &known, arena, rules,
        HIE_CONSENT_DIRECTIVES_MAX, &n), HIE_ELIMIT);
    cr_assert_eq(n, 0u);
    known.n = HIE_MPI_EUID_MEMBERS_MAX - 1;
    cr_assert_eq(hie_node__consent_rules(hie_node__state_consent(st),
        hie_node__state_mpi(st), txn, "E000000000001", &known, arena, rules,
        HIE_CONSENT_DIRECTIVES_MAX, &n), 0, "below the limit: decided");
    mdb_txn_abort(txn);
}

/* consent list --all shows the 224 revoked directives submitted last and says how many older
 * ones it left out; it used to show the first 224 ids in key order ("cns-100" before
 * "cns-99") and say nothing. */
Test(node_sm, consent_listing_shows_the_newest_revoked_and_counts_the_rest)
{
    static struct ex x;
    node_state_t *a = consent_state(&x);
    unsigned step = 1;
    for (unsigned round = 0; round < 240; round++) {
        ex_consent(&x, 0, step++); /* submit */
        ex_consent(&x, 0, step++); /* revoke */
    }
    ex_consent(&x, 0, step++); /* one in force */
    cr_assert_eq(db_entries(a, "consent_hist"), 240u);
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    hie_mpi_rec_hash(hie_node__state_mpi_key(a), "org-h", "h-0", h);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(hie_node__state_env(a), NULL, MDB_RDONLY, &txn), 0);
    Hie__V1__ConsentDirective **dirs = NULL;
    size_t n = 0;
    uint32_t left_out = 99;
    cr_assert_eq(hie_node__consent_list(hie_node__state_consent(a), txn, h, true, arena, &dirs,
        &n, &left_out), 0);
    cr_assert_eq(n, 225u, "224 revoked and the one in force");
    cr_assert_eq(left_out, 16u);
    for (size_t i = 1; i < n; i++) {
        cr_assert_lt(dirs[i - 1]->submitted_index, dirs[i]->submitted_index, "oldest first");
    }
    cr_assert_eq(dirs[n - 1]->status, HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE, "in force last");
    cr_assert_eq(dirs[0]->submitted_index, dirs[n - 1]->submitted_index - 2 * 224,
        "the first listed is the 224th revoked from the end");
    cr_assert_eq(hie_node__consent_list(hie_node__state_consent(a), txn, h, false, arena, &dirs,
        &n, &left_out), 0);
    cr_assert(n == 1 && left_out == 0, "without --all: the one in force, nothing left out");
    mdb_txn_abort(txn);
    for (size_t i = 0; i < x.n; i++) {
        hie_mem_free(x.cmds[i], x.lens[i]);
    }
}

/* A redrive of many large dead letters (56 of 1 MiB here, past the apply arena's 48 MiB; up
 * to 10,000 may be redriven at once) applies: each used to be unpacked into the one apply
 * arena, which ran out, and the failed apply stopped the node at every replay. */
Test(node_sm, redrive_of_many_large_dead_letters_applies)
{
    enum { DEAD = 56 };
    node_state_t *st = state_open(0);
    char key_path[192];
    snprintf(key_path, sizeof(key_path), "%s/mpi.key", tmp_dir);
    cr_assert_eq(hie_mpi_key_generate(key_path), 0);
    cr_assert_eq(hie_node__state_mpi_key_load(st, key_path, 0), 0);
    static uint8_t doc[1u << 20];
    memset(doc, 0x5a, sizeof(doc));
    MDB_txn *txn = NULL;
    MDB_dbi dead;
    cr_assert_eq(mdb_txn_begin(hie_node__state_env(st), NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "q_dead", 0, &dead), 0);
    for (uint64_t seq = 1; seq <= DEAD; seq++) {
        Hie__V1__QueuedMessage m = HIE__V1__QUEUED_MESSAGE__INIT;
        char id[32];
        snprintf(id, sizeof(id), "org-h:p%" PRIu64, seq);
        m.message_id = id;
        m.sender_org = "org-h";
        m.recipient_org = "org-c";
        m.sealed_document = (ProtobufCBinaryData){sizeof(doc), doc};
        m.attempts = 8;
        m.dead_reason = "max-attempts";
        uint8_t k[6 + 8], *v = NULL;
        memcpy(k, "org-c", 6);
        hie_store_be64(k + 6, seq);
        size_t n = protobuf_c_message_get_packed_size(&m.base);
        MDB_val kv = {sizeof(k), k}, vv = {n, NULL};
        cr_assert_eq(mdb_put(txn, dead, &kv, &vv, MDB_RESERVE), 0);
        v = vv.mv_data;
        cr_assert_eq(protobuf_c_message_pack(&m.base, v), n);
    }
    cr_assert_eq(mdb_txn_commit(txn), 0);
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    Hie__V1__RedriveCommand rd = HIE__V1__REDRIVE_COMMAND__INIT;
    rd.recipient_org = "org-c";
    cmd.requester = "@operator";
    cmd.request_id = "rd-1";
    cmd.time_ms = T0;
    cmd.node_id = "node-1";
    cmd.body_case = HIE__V1__COMMAND__BODY_REDRIVE;
    cmd.redrive = &rd;
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(hie_proto_pack(&cmd.base, HIE_LOG_COMMAND_BYTES_MAX, &buf, &len), 0);
    struct result r;
    apply_raw(st, 1, &buf, &len, 1, &r);
    cr_assert_eq(r.msg->code, 0, "%s", r.msg->message);
    cr_assert_eq(r.msg->acknowledged, DEAD, "every dead letter back in the queue");
    result_free(&r);
    hie_mem_free(buf, len);
    cr_assert_eq(db_entries(st, "q_dead"), 0u);
    cr_assert_eq(db_entries(st, "q_msg"), DEAD);
}

/* A40 merge of org-h's patient prior into survivor, at time_ms. */
static void
ex_merge(struct ex *x, unsigned survivor, unsigned prior, int64_t time_ms)
{
    char mrn[16], pmrn[16], rid[32];
    snprintf(rid, sizeof(rid), "merge-%u-%u", survivor, prior);
    snprintf(mrn, sizeof(mrn), "h-%u", survivor);
    snprintf(pmrn, sizeof(pmrn), "h-%u", prior);
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    Hie__V1__MpiFeedRequest req = HIE__V1__MPI_FEED_REQUEST__INIT;
    pid.org_id = "org-h";
    pid.mrn = mrn;
    req.action = HIE__V1__FEED_ACTION__FEED_MERGE;
    req.patient = &pid;
    req.prior_mrn = pmrn;
    Hie__V1__MpiFeedCommand *fc = NULL;
    hie_errinfo_t info = {0};
    cr_assert_eq(hie_mpi_feed_command(hie_node__state_mpi_key(x->ctx.state), "org-h", &req,
        arena, &fc, &info), 0);
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.requester = "org-h";
    cmd.request_id = rid;
    cmd.time_ms = time_ms;
    cmd.node_id = "node-1";
    cmd.body_case = HIE__V1__COMMAND__BODY_MPI_FEED;
    cmd.mpi_feed = fc;
    ex_keep(x, &cmd);
}

/* The directives a decision about org-h's patient p reads. */
static size_t
ex_rules(struct ex *x, unsigned p)
{
    char mrn[16], euid[HIE_MPI_EUID_BYTES];
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    snprintf(mrn, sizeof(mrn), "h-%u", p);
    hie_mpi_rec_hash(hie_node__state_mpi_key(x->ctx.state), "org-h", mrn, h);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(hie_node__state_env(x->ctx.state), NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(hie_mpi_store_euid_of(hie_node__state_mpi(x->ctx.state), txn, h, arena,
        euid), 0);
    hie_span_t rules[HIE_CONSENT_DIRECTIVES_MAX];
    size_t n = 0;
    cr_assert_eq(hie_node__consent_rules(hie_node__state_consent(x->ctx.state),
        hie_node__state_mpi(x->ctx.state), txn, euid, NULL, arena, rules,
        HIE_CONSENT_DIRECTIVES_MAX, &n), 0);
    mdb_txn_abort(txn);
    return n;
}

/* x on a new state 0 with a data key (its file in key_path), opt-out, organizations org-h and
 * org-c registered. */
static node_state_t *
ex_keyed(struct ex *x, char key_path[192])
{
    memset(x, 0, sizeof(*x));
    node_state_t *a = state_open(0);
    snprintf(key_path, 192, "%s/mpi.key", tmp_dir);
    cr_assert_eq(hie_mpi_key_generate(key_path), 0);
    cr_assert_eq(hie_node__state_mpi_key_load(a, key_path, 0), 0);
    x->ctx.state = a;
    snprintf(x->ctx.cfg.node_id, sizeof(x->ctx.cfg.node_id), "node-1");
    hie_consent_policy_init(&x->ctx.consent_policy);
    x->ctx.consent_policy.regime = HIE_CONSENT_OPT_OUT;
    ex_org(x, "org-h", HIE__V1__ROLE__ROLE_HOSPITAL);
    ex_org(x, "org-c", HIE__V1__ROLE__ROLE_CLINIC);
    return a;
}

/* Registers org at time_ms (a command that moves the rules clock); returns its result code. */
static Hie__V1__ErrorCode
ex_register_at(struct ex *x, const char *org, int64_t time_ms)
{
    struct cmd_spec s = {REG, org, org, time_ms, NULL, NULL, 0, {0}};
    size_t len = 0;
    uint8_t *buf = cmd_pack(&s, &len);
    struct result r;
    apply_raw(x->ctx.state, 1 + x->n, &buf, &len, 1, &r);
    Hie__V1__ErrorCode code = r.msg->code;
    result_free(&r);
    hie_mem_free(buf, len);
    x->n++;
    return code;
}

/* A merge applied before 2026-11-30T21:45Z (by the rules clock) left its prior record's
 * directive where no decision reads it; the first command at or after then moves it to the
 * record it lives on as, once, and a reopened state knows it was done. */
Test(node_sm, directives_a_merge_left_behind_move_once_the_rules_clock_reaches_the_rule)
{
    static struct ex x;
    char key_path[192];
    node_state_t *a = ex_keyed(&x, key_path);
    ex_feed(&x, "org-h", 0);
    ex_feed(&x, "org-h", 3);
    ex_consent(&x, 0, 1); /* on h-0 */
    cr_assert_eq(ex_rules(&x, 0), 1u);
    ex_merge(&x, 3, 0, T0 + 100); /* before the rule: the directive stays on h-0 */
    cr_assert_eq(ex_rules(&x, 3), 0u, "as merges applied then");
    cr_assert_eq(ex_register_at(&x, "org-x", 1796076000000ll), 0);
    cr_assert_eq(ex_rules(&x, 3), 1u, "moved to the surviving record");
    hie_node__state_close(&states[0]);
    a = state_open(0);
    cr_assert_eq(hie_node__state_mpi_key_load(a, key_path, 0), 0);
    x.ctx.state = a;
    cr_assert_eq(ex_rules(&x, 3), 1u, "still there after a reopen");
}

/* n permit-all directives for org-h's patient p at time_ms (ids tagged tag). */
static void
ex_permits(struct ex *x, unsigned p, unsigned n, const char *tag, int64_t time_ms)
{
    char mrn[16], masked[40];
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    snprintf(mrn, sizeof(mrn), "h-%u", p);
    hie_mpi_rec_hash(hie_node__state_mpi_key(x->ctx.state), "org-h", mrn, h);
    masked[0] = '#';
    sodium_bin2hex(masked + 1, sizeof(masked) - 1, h, sizeof(h));
    for (unsigned i = 0; i < n; i++) {
        char rid[32];
        snprintf(rid, sizeof(rid), "%s-%u-%u", tag, p, i);
        Hie__V1__ConsentDirective d = HIE__V1__CONSENT_DIRECTIVE__INIT;
        Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
        Hie__V1__ConsentProvision root = HIE__V1__CONSENT_PROVISION__INIT;
        pid.org_id = "org-h";
        pid.mrn = masked;
        root.type = HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
        d.patient = &pid;
        d.status = HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE;
        d.date_ms = T0;
        d.provision = &root;
        Hie__V1__ConsentSubmitCommand sc = HIE__V1__CONSENT_SUBMIT_COMMAND__INIT;
        sc.directive = &d;
        sc.rec_hash = (ProtobufCBinaryData){sizeof(h), h};
        sc.rules_2026_11_30 = true;
        hie_command_t cmd = HIE__V1__COMMAND__INIT;
        cmd.requester = "org-h";
        cmd.request_id = rid;
        cmd.time_ms = time_ms;
        cmd.node_id = "node-1";
        cmd.body_case = HIE__V1__COMMAND__BODY_CONSENT_SUBMIT;
        cmd.consent_submit = &sc;
        ex_keep(x, &cmd);
    }
}

/* Merges before the rule were not bounded: three records of 20 directives each merged into a
 * fourth of 20 leave it 80 once they move, more than a decision reads. The move must not stop
 * the node (it read more than 64 as corruption, at every replay): the patient's decisions
 * fail closed, and a further submit is refused. */
Test(node_sm, a_migration_that_leaves_a_record_over_full_does_not_stop_the_node)
{
    static struct ex x;
    char key_path[192];
    node_state_t *a = ex_keyed(&x, key_path);
    for (unsigned p = 0; p < 4; p++) {
        ex_feed(&x, "org-h", p * 3);
        ex_permits(&x, p * 3, 20, "old", T0 + 10);
    }
    for (unsigned p = 1; p < 4; p++) {
        ex_merge(&x, 0, p * 3, T0 + 100 + p);
    }
    cr_assert_eq(ex_register_at(&x, "org-x", 1796076000000ll), 0, "applied after the rule");
    ex_permits(&x, 0, 1, "new", 1796076000001ll); /* refused, not fatal (ex_keep applies it) */
    cr_assert_eq(applied_index(a), x.n, "every command applied");
}

/* A push to org-c (or the repository: to "") as org-h under request id rid; the command. */
static hie_command_t *
ex_push_cmd(struct ex *x, const char *rid, const char *to, unsigned p)
{
    char *mrn = hie_arena_alloc(arena, 16);
    cr_assert_not_null(mrn);
    snprintf(mrn, 16, "h-%u", p);
    Hie__V1__PushRequest req = HIE__V1__PUSH_REQUEST__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    pid.org_id = "org-h";
    pid.mrn = mrn;
    d.patient = &pid;
    d.content_type = "text/plain";
    d.content = (ProtobufCBinaryData){4, (uint8_t *)"note"};
    req.recipient_org = (char *)(uintptr_t)to;
    req.document = &d;
    Hie__V1__PushReply *reply = NULL;
    node_audit_cmd_t audit = {0};
    node_mpi_err_t e = {0};
    cr_assert_eq(hie_node__push_prepare(&x->ctx, ex_who(x, "org-h", rid), &req, arena, &reply,
        &audit, &e), 0, "push: %s", e.message);
    hie_command_t *cmd = hie_arena_alloc(arena, sizeof(*cmd));
    cr_assert_not_null(cmd);
    *cmd = audit.cmd;
    cmd->request_id = (char *)(uintptr_t)rid;
    return cmd;
}

/* A message id is used once: the same request id 8 days later (past the 7 days repeats are
 * answered for) is refused, to the repository (it overwrote the stored document, possibly
 * with another patient's, still listed under the first) and to a recipient (which drops an
 * id it has seen). */
Test(node_sm, a_message_id_is_not_used_twice_after_the_repeat_window)
{
    static struct ex x;
    char key_path[192];
    node_state_t *a = ex_keyed(&x, key_path);
    ex_feed(&x, "org-h", 0);
    ex_feed(&x, "org-h", 3);
    static const char *const to[2] = {"", "org-c"};
    for (unsigned i = 0; i < 2; i++) {
        char rid[16];
        snprintf(rid, sizeof(rid), "dup-%u", i);
        hie_command_t *first = ex_push_cmd(&x, rid, to[i], 0);
        hie_command_t *again = ex_push_cmd(&x, rid, to[i], 3); /* another patient */
        int64_t t = hie_time_wall_ms() + (int64_t)i * 9 * 86400000;
        first->time_ms = t;
        again->time_ms = t + 8ll * 86400000;
        ex_keep(&x, first);
        for (int k = 0; k < 3; k++) { /* the first's dedup entry is pruned */
            char reg[16];
            snprintf(reg, sizeof(reg), "org-z%u%d", i, k);
            (void)ex_register_at(&x, reg, again->time_ms);
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        cr_assert_eq(hie_proto_pack(&again->base, HIE_LOG_COMMAND_BYTES_MAX, &buf, &len), 0);
        struct result r;
        apply_raw(a, 1 + x.n, &buf, &len, 1, &r);
        x.n++;
        cr_assert_eq(r.msg->code, WIRE(BAD_REQUEST), "%s: the id used again was applied",
            to[i][0] ? "queue" : "repository");
        cr_assert_str_eq(r.msg->field, "id");
        result_free(&r);
        hie_mem_free(buf, len);
    }
}
