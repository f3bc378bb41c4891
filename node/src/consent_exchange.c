/*
 * consent_exchange.c - the consent exchanges as a node runs them (issue 4): submit, revoke and
 * list, for members (hospitals and clinics on the patient's behalf) and for the operator
 * through hiectl. Shared by the workers and the admin thread.
 *
 * A submit is validated here (BAD_REQUEST naming the field; nothing is stored), the patient's
 * MRN is replaced by "#" + hex of its keyed record identity (so neither the log nor the state
 * holds it in plain text), and the command is committed; apply assigns the id and the version
 * and checks that the MPI knows the patient. A member may only submit for and list its own
 * patients (patient.org_id is the requester).
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <sodium.h>
#include <string.h>

#define CONSENT_COMMAND_TIMEOUT_MS 10000u
#define MASKED_MRN_BYTES (1u + 2u * HIE_MPI_REC_HASH_BYTES + 1u)

static bool
is_operator(const char *requester)
{
    return strcmp(requester, "@operator") == 0;
}

/* The patient's record identity; refuses another organization's patient. */
static int
patient_hash(node_ctx_t *ctx, const char *requester, const Hie__V1__PatientId *p,
    const char *field_org, const char *field_mrn, uint8_t out[HIE_MPI_REC_HASH_BYTES],
    node_mpi_err_t *e)
{
    const hie_mpi_key_t *key = hie_node__state_mpi_key(ctx->state);
    if (key == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "consent is not available on this node (no data key)");
    }
    if (p == NULL || p->org_id == NULL || !hie_proto_org_id_valid(p->org_id, strlen(p->org_id))) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, field_org,
            "not an organization id");
    }
    if (!hie_mpi_mrn_valid(p->mrn)) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, field_mrn,
            "1 to 64 printable ASCII characters, no spaces");
    }
    if (!is_operator(requester) && strcmp(p->org_id, requester) != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_FORBIDDEN, field_org,
            "an organization may only act for its own patients");
    }
    hie_mpi_rec_hash(key, p->org_id, p->mrn, out);
    return 0;
}

static int
command_wait(node_ctx_t *ctx, node_submitter_t *sub, hie_command_t *cmd, const char *requester,
    const char *id, hie_arena_t *arena, hie_command_result_t **res, node_mpi_err_t *e)
{
    cmd->requester = (char *)(uintptr_t)requester;
    cmd->request_id = (char *)(uintptr_t)id;
    cmd->time_ms = hie_time_wall_ms();
    cmd->node_id = ctx->cfg.node_id;
    int rc = hie_node__submit_wait(sub, cmd, CONSENT_COMMAND_TIMEOUT_MS, arena, res);
    if (rc == HIE_ETIMEDOUT) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "the command was not committed in time; retry with the same id");
    }
    if (rc != 0) {
        hie_log_error("consent", "submit failed", " id=%s rc=%s", id, hie_strerror_name(rc));
        return mpi_fail(e, hie_proto_error_code(rc), NULL, "internal error");
    }
    if ((*res)->code != HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        return mpi_fail(e, (*res)->code, (*res)->field != NULL && (*res)->field[0] ? (*res)->field
            : NULL, (*res)->message != NULL ? (*res)->message : "refused");
    }
    return 0;
}

/* The directive's compiled size, and with it that of the directives on file on the same
 * record (the requester's own: only its organization files and revokes there), within what
 * a member may file (HIE_CONSENT_SUBMIT_COMPILED_BYTES_MAX,
 * HIE_CONSENT_RECORD_COMPILED_BYTES_MAX). Counted per record, not per patient: another
 * organization's directives on a linked record cannot use up this one's room (an opt-out
 * refused because of them). A request id already applied (a retry) is not checked again. */
static int
consent_size_check(node_ctx_t *ctx, const char *requester, const char *id,
    Hie__V1__ConsentDirective *d, const uint8_t h[HIE_MPI_REC_HASH_BYTES], hie_arena_t *arena,
    node_mpi_err_t *e)
{
    size_t len = 0, total = 0, n = 0;
    uint8_t *buf = hie_arena_alloc(arena, HIE_CONSENT_COMPILED_BYTES_MAX);
    hie_span_t *rules = hie_arena_alloc(arena, HIE_CONSENT_DIRECTIVES_MAX * sizeof(*rules));
    hie_command_result_t *done = NULL;
    if (hie_node__state_dedup_get(ctx->state, requester, id,
            HIE__V1__COMMAND__BODY_CONSENT_SUBMIT, arena, &done) == 0) {
        return 0; /* applied before: its result is answered as it was */
    }
    d->id = (char *)(uintptr_t)"cns-0"; /* compiled as apply will, with its id and version */
    d->version = 1;
    int rc = buf == NULL || rules == NULL ? HIE_ENOMEM
        : hie_consent_compile(d, buf, HIE_CONSENT_COMPILED_BYTES_MAX, &len, NULL);
    d->id = (char *)(uintptr_t)"";
    d->version = 0;
    if (rc == 0 && len > HIE_CONSENT_SUBMIT_COMPILED_BYTES_MAX) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "directive.provisions",
            "the directive is too large: at most 16 KiB compiled (fewer provisions or named "
            "organizations)");
    }
    MDB_txn *txn = NULL;
    rc = rc ? rc : mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn)
        ? HIE_ESTORAGE : 0;
    hie_mpi_members_t own = {h, 1};
    rc = rc ? rc : hie_node__consent_rules(hie_node__state_consent(ctx->state),
        hie_node__state_mpi(ctx->state), txn, "", &own, arena, rules,
        HIE_CONSENT_DIRECTIVES_MAX, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        total += rules[i].len;
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc != 0 && rc != HIE_ELIMIT) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL, "try again later");
    }
    if (rc == HIE_ELIMIT || total + len > HIE_CONSENT_RECORD_COMPILED_BYTES_MAX) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "directive",
            "this record's directives on file would be too large together (at most 128 KiB "
            "compiled): revoke ones no longer needed first");
    }
    return 0;
}

int
hie_node__consent_submit_xchg(node_ctx_t *ctx, node_submitter_t *sub, const char *requester,
    const char *id, const Hie__V1__ConsentSubmitRequest *req, hie_arena_t *arena,
    Hie__V1__ConsentSubmitReply **reply, node_mpi_err_t *e)
{
    *reply = NULL;
    Hie__V1__ConsentDirective *d = req->directive;
    if (d == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "directive", "missing");
    }
    if (d->euid != NULL && d->euid[0] != '\0') {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "directive.euid",
            "name the patient by organization and MRN");
    }
    /* the broker assigns these; a member's values are overwritten, not trusted */
    d->id = (char *)(uintptr_t)"";
    d->version = 0;
    d->submitted_by = d->revoked_by = (char *)(uintptr_t)"";
    d->submitted_ms = d->revoked_ms = 0;
    d->submitted_index = 0;
    hie_errinfo_t info = {0};
    int rc = hie_consent_directive_validate(d, &info);
    if (rc != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST,
            info.field != NULL ? info.field : "directive", info.reason);
    }
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    char *masked = hie_arena_alloc(arena, MASKED_MRN_BYTES);
    rc = patient_hash(ctx, requester, d->patient, "directive.patient.org_id",
        "directive.patient.mrn", h, e);
    if (rc != 0 || masked == NULL) {
        return rc != 0 ? rc : mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "busy");
    }
    rc = consent_size_check(ctx, requester, id, d, h, arena, e);
    if (rc != 0) {
        return rc;
    }
    masked[0] = '#';
    sodium_bin2hex(masked + 1, MASKED_MRN_BYTES - 1, h, sizeof(h));
    d->patient->mrn = masked;
    Hie__V1__ConsentSubmitCommand sc = HIE__V1__CONSENT_SUBMIT_COMMAND__INIT;
    sc.directive = d;
    sc.rec_hash = (ProtobufCBinaryData){sizeof(h), h};
    sc.rules_2026_11_30 = true;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.body_case = HIE__V1__COMMAND__BODY_CONSENT_SUBMIT;
    cmd.consent_submit = &sc;
    hie_command_result_t *res = NULL;
    rc = command_wait(ctx, sub, &cmd, requester, id, arena, &res, e);
    if (rc == 0 && res->consent_submit == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    *reply = rc == 0 ? res->consent_submit : NULL;
    return rc;
}

int
hie_node__consent_revoke_xchg(node_ctx_t *ctx, node_submitter_t *sub, const char *requester,
    const char *id, const Hie__V1__ConsentRevokeRequest *req, hie_arena_t *arena,
    Hie__V1__ConsentRevokeReply **reply, node_mpi_err_t *e)
{
    *reply = NULL;
    if (req->id == NULL || !hie_proto_id_valid(req->id, strlen(req->id))) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "id", "not a directive id");
    }
    Hie__V1__ConsentRevokeCommand rc_body = HIE__V1__CONSENT_REVOKE_COMMAND__INIT;
    rc_body.id = req->id;
    rc_body.rules_2026_11_30 = true;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.body_case = HIE__V1__COMMAND__BODY_CONSENT_REVOKE;
    cmd.consent_revoke = &rc_body;
    hie_command_result_t *res = NULL;
    int rc = command_wait(ctx, sub, &cmd, requester, id, arena, &res, e);
    if (rc == 0 && res->consent_revoke == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    *reply = rc == 0 ? res->consent_revoke : NULL;
    return rc;
}

int
hie_node__consent_list_xchg(node_ctx_t *ctx, const char *requester,
    const Hie__V1__ConsentListRequest *req, hie_arena_t *arena,
    Hie__V1__ConsentListReply **reply, node_mpi_err_t *e)
{
    *reply = NULL;
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    int rc = patient_hash(ctx, requester, req->patient, "patient.org_id", "patient.mrn", h, e);
    Hie__V1__ConsentListReply *r = rc == 0 ? hie_arena_alloc(arena, sizeof(*r)) : NULL;
    if (rc != 0 || r == NULL) {
        return rc != 0 ? rc : mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "busy");
    }
    hie__v1__consent_list_reply__init(r);
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn) != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    /* a merged MRN's directives moved with it (A40): list the record it lives on as */
    uint8_t live[HIE_MPI_REC_HASH_BYTES];
    if (hie_mpi_store_surviving(hie_node__state_mpi(ctx->state), txn, h, arena, live) == 0) {
        memcpy(h, live, sizeof(h));
    }
    rc = hie_node__consent_list(hie_node__state_consent(ctx->state), txn, h,
        req->include_inactive, arena, &r->directives, &r->n_directives,
        &r->revoked_not_listed);
    mdb_txn_abort(txn);
    if (rc != 0) {
        hie_log_error("consent", "list failed", " rc=%s", hie_strerror_name(rc));
        return mpi_fail(e, hie_proto_error_code(rc), NULL, "internal error");
    }
    for (size_t i = 0; i < r->n_directives; i++) {
        if (r->directives[i]->patient != NULL) {
            r->directives[i]->patient->mrn = req->patient->mrn; /* the masked one stays inside */
        }
    }
    *reply = r;
    return 0;
}
