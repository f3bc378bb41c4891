/*
 * disclose.c - every exchange that could disclose something goes through here (issue 4):
 * the consent decision per patient, then one audit record committed through the command log,
 * and only then the reply.
 *
 * Order, for PIX and PDQ: read the MPI's answer; decide consent for each patient it names in
 * a read transaction (inputs: requester org and roles from the certificate and the registry,
 * the envelope's purpose, the action, the time; never the payload); drop what is denied so
 * the requester sees exactly what it would see if the data did not exist; commit the audit
 * record (permitted and denied patients, with the deciding directive and reason); reply. If the
 * audit record cannot be committed, nothing is disclosed (UNAVAILABLE).
 *
 * The audit record holds no personal data: each patient is an AuditSubject (EUID, decision,
 * identifiers disclosed) serialized with a random salt, committed by SHA-256 in the leaf, and
 * sealed with the data key (XAES-256-GCM through the worker's hie_mpi_sealer, AD = the
 * commitment) beside the tree; its index key is a keyed hash of the EUID (SipHash-128;
 * reports also look up the keyed BLAKE2b of older states). Workers only; consent.enforce
 * off-for-benchmarks-only skips all of it.
 *
 * The prepare functions build the reply (or the error) and the audit command; the worker
 * commits the command asynchronously (worker.c) and sends the reply only once the log has
 * applied it, so concurrent queries share one group commit.
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <string.h>

#define SUBJECT_SALT_BYTES 16u
/* Random bytes one subject takes: its salt, then its seal's nonce tail. A record draws all its
 * subjects' at once, from the worker's block of random bytes (hie_node__rand). */
#define SUBJECT_RANDOM_BYTES (SUBJECT_SALT_BYTES + HIE_MPI_SEALER_TAIL_BYTES)
/* What the subject index key's subkey (version 2) is derived from, 16 bytes without a NUL. */
#define SUBJECT_KEY_LABEL "hie-audit-euid-2"
#define SUBJECT_KEY_LABEL_BYTES 16u
_Static_assert(sizeof(SUBJECT_KEY_LABEL) == SUBJECT_KEY_LABEL_BYTES + 1u, "label length");
_Static_assert(HIE_PROTO_REC_HASH_BYTES == crypto_shorthash_siphashx24_BYTES,
    "a SipHash-128 output is an index key");

/* ---- consent decisions --------------------------------------------------------------------- */

static uint32_t
roles_mask(const hie_org_t *org)
{
    uint32_t m = 0;
    for (size_t i = 0; org != NULL && i < org->n_roles; i++) {
        if (org->roles[i] > 0 && (unsigned)org->roles[i] < 32u) {
            m |= HIE_CONSENT_ROLE_BIT(org->roles[i]);
        }
    }
    return m & HIE_CONSENT_ROLES_KNOWN;
}

/* The engine's decision for req. A document whose class or data time is unknown (a push or
 * a stored document without them, a responder's answer) could be of any class and from any
 * time: hie_consent_decide_unknown decides it for each class and data time that could change
 * it, the most restrictive outcome standing. Before, a provision naming a class or a data
 * period never matched such a document, so a patient's deny of imaging reports, or of one
 * year's data, let it through. */
static int
decide_rules(const hie_consent_policy_t *pol, const hie_span_t *rules, size_t n,
    const hie_consent_request_t *req, hie_consent_decision_t *out)
{
    bool doc = req->action != HIE__V1__CONSENT_ACTION__CONSENT_ACTION_IDENTITY;
    return doc ? hie_consent_decide_unknown(pol, rules, n, req, out)
               : hie_consent_decide(pol, rules, n, req, out);
}

/* The decision for euid, from members (NULL: looked up in txn). */
static void
decide(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena, const node_who_t *who,
    const char *euid, const hie_mpi_members_t *members, const hie_consent_request_t *in,
    hie_consent_decision_t *out)
{
    HIE_ASSERT(ctx != NULL && who != NULL && euid != NULL && out != NULL);
    hie_span_t rules[HIE_CONSENT_DIRECTIVES_MAX];
    size_t n = 0;
    int rc = hie_node__consent_rules(hie_node__state_consent(ctx->state),
        hie_node__state_mpi(ctx->state), txn, euid, members, arena, rules,
        HIE_CONSENT_DIRECTIVES_MAX, &n);
    hie_consent_request_t req = *in;
    req.requester_org_id = who->org_id;
    req.requester_roles = roles_mask(who->org);
    req.purpose = who->purpose;
    req.now_ms = hie_time_wall_ms();
    if (rc == 0) {
        rc = decide_rules(&ctx->consent_policy, rules, n, &req, out);
    } else {
        /* fail closed: a zeroed decision is a DENY; give it the engine's reason */
        memset(out, 0, sizeof(*out));
        out->decision = HIE_CONSENT_DENY;
        out->reason = "evaluation-error";
        out->accounting_excluded = true;
        out->confidentiality = HIE_CONSENT_LABEL_V;
    }
    /* the one exception to failing closed (reference §1.3): an authorized break-glass,
     * audited and flagged as every break-glass is; nothing is redacted (what the content
     * carries is unknown) */
    bool glass = rc != 0 && req.purpose == HIE__V1__PURPOSE_OF_USE__PURPOSE_EMERGENCY &&
                 ctx->consent_policy.break_glass_allowed;
    if (rc != 0) {
        hie_log_error("consent", glass ? "decision failed; break-glass permits it"
                                       : "decision failed closed",
            " org=%s id=%s euid=%s rc=%s", who->org_id, who->request_id, euid,
            hie_strerror_name(rc));
    }
    if (glass) {
        memset(out, 0, sizeof(*out));
        out->decision = HIE_CONSENT_PERMIT;
        out->break_glass = true;
        out->reason = "break-glass";
        out->confidentiality = HIE_CONSENT_LABEL_V;
        if ((req.labels & HIE_CONSENT_LABELS_PART2) != 0) { /* rule 4, as on any permit */
            out->obligations = HIE_CONSENT_OBL_PART2_NOTICE;
            out->refrains = HIE_CONSENT_REFRAIN_NORDSCLCD;
        }
    }
    HIE_ASSERT(out->reason != NULL);
    if (!hie_consent_permitted(out)) {
        HIE_ASSERT(!out->break_glass);
    }
}

void
hie_node__consent_decide(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena,
    const node_who_t *who, const char *euid, Hie__V1__ConsentAction action, uint32_t labels,
    hie_consent_decision_t *out)
{
    hie_node__consent_decide_doc(ctx, txn, arena, who, euid, action, labels,
        HIE_CONSENT_CLASS_NONE, 0, out);
}

void
hie_node__consent_decide_members(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena,
    const node_who_t *who, const char *euid, const hie_mpi_members_t *members,
    Hie__V1__ConsentAction action, hie_consent_decision_t *out)
{
    hie_consent_request_t in = {0};
    in.action = action;
    in.doc_class = HIE_CONSENT_CLASS_NONE;
    decide(ctx, txn, arena, who, euid, members, &in, out);
}

void
hie_node__consent_decide_doc(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena,
    const node_who_t *who, const char *euid, Hie__V1__ConsentAction action, uint32_t labels,
    int doc_class, int64_t data_time_ms, hie_consent_decision_t *out)
{
    hie_consent_request_t in = {0};
    in.action = action;
    in.labels = labels;
    in.doc_class = (enum hie_consent_class)doc_class;
    in.data_time_ms = data_time_ms;
    decide(ctx, txn, arena, who, euid, NULL, &in, out);
}

/* ---- the audit record ------------------------------------------------------------------------ */

void
hie_node__rand(node_rand_t *r, uint8_t *out, size_t n)
{
    HIE_ASSERT(out != NULL);
    if (r == NULL || n > sizeof(r->buf)) {
        randombytes_buf(out, n);
        return;
    }
    HIE_ASSERT(r->fresh <= sizeof(r->buf));
    if (r->fresh < n) {
        randombytes_buf(r->buf, sizeof(r->buf));
        r->fresh = sizeof(r->buf);
    }
    uint8_t *from = r->buf + sizeof(r->buf) - r->fresh;
    memcpy(out, from, n);
    sodium_memzero(from, n); /* handed out once */
    r->fresh -= n;
}

void
hie_node__rand_end(node_rand_t *r)
{
    EVP_MD_CTX_free(r->md);
    r->md = NULL;
    hie_mpi_sealer_destroy(&r->sealer);
    if (r->rtxn != NULL) {
        mdb_txn_abort(r->rtxn); /* before the state closes: workers end first */
        r->rtxn = NULL;
    }
    sodium_memzero(r, sizeof(*r));
}

/* Index keys of version 1 (states written before 2026-11-30): keyed BLAKE2b-128 under the
 * index secret of "hie-audit-euid\0" || EUID. Reports still look them up. */
void
hie_node__audit_subject_key_v1(const struct hie_mpi_key *key, const char *euid,
    uint8_t out[HIE_PROTO_REC_HASH_BYTES])
{
    uint8_t secret[16];
    hie_mpi_key_index_secret(key, secret);
    crypto_generichash_state st;
    crypto_generichash_init(&st, secret, 16, HIE_PROTO_REC_HASH_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)"hie-audit-euid", 15);
    crypto_generichash_update(&st, (const uint8_t *)euid, strlen(euid));
    crypto_generichash_final(&st, out, HIE_PROTO_REC_HASH_BYTES);
    sodium_memzero(secret, sizeof(secret));
    sodium_memzero(&st, sizeof(st));
}

/* Version 2: SipHash-2-4 with a 128-bit output (libsodium's crypto_shorthash_siphashx24), a
 * PRF, over the EUID, under a subkey of the index secret: keyed BLAKE2b-128 of
 * SUBJECT_KEY_LABEL (which separates it from the secret's other uses). The keyed BLAKE2b of
 * version 1 compressed two 128-byte blocks for each 15-byte EUID; SipHash with the subkey
 * kept (a worker's, below) costs about a tenth: ~0.6 us of worker CPU per query in
 * bench_disclose. */
static void
subject_subkey(const uint8_t secret[16], uint8_t out[crypto_shorthash_siphashx24_KEYBYTES])
{
    crypto_generichash(out, crypto_shorthash_siphashx24_KEYBYTES,
        (const uint8_t *)SUBJECT_KEY_LABEL, SUBJECT_KEY_LABEL_BYTES, secret, 16);
}

void
hie_node__audit_subject_key(const struct hie_mpi_key *key, const char *euid,
    uint8_t out[HIE_PROTO_REC_HASH_BYTES])
{
    uint8_t secret[16], sub[crypto_shorthash_siphashx24_KEYBYTES];
    hie_mpi_key_index_secret(key, secret);
    subject_subkey(secret, sub);
    crypto_shorthash_siphashx24(out, (const uint8_t *)euid, strlen(euid), sub);
    sodium_memzero(secret, sizeof(secret));
    sodium_memzero(sub, sizeof(sub));
}

/* hie_node__audit_subject_key with the worker's subkey, made again when the index secret
 * changed (r NULL: from scratch). */
static void
subject_key(node_rand_t *r, const struct hie_mpi_key *key, const char *euid, uint8_t *out)
{
    if (r == NULL) {
        hie_node__audit_subject_key(key, euid, out);
        return;
    }
    uint8_t secret[16];
    hie_mpi_key_index_secret(key, secret);
    if (!r->subkey_ok || sodium_memcmp(secret, r->subkey_secret, sizeof(secret)) != 0) {
        subject_subkey(secret, r->subkey);
        memcpy(r->subkey_secret, secret, sizeof(secret));
        r->subkey_ok = true;
    }
    sodium_memzero(secret, sizeof(secret));
    crypto_shorthash_siphashx24(out, (const uint8_t *)euid, strlen(euid), r->subkey);
}

/* SHA-256 of a serialized subject: OpenSSL's (SHA-NI, ~0.6 us for a subject against ~1 us)
 * when main fetched it, in the worker's reused context, else libsodium's; the same digest
 * either way. */
static void
commitment(const node_ctx_t *ctx, node_rand_t *r, const uint8_t *plain, size_t n,
    uint8_t *out)
{
    if (ctx->sha256 != NULL && r != NULL && r->md == NULL) {
        r->md = EVP_MD_CTX_new();
    }
    bool done = false;
    if (ctx->sha256 != NULL && r != NULL && r->md != NULL) {
        done = EVP_DigestInit_ex(r->md, ctx->sha256, NULL) == 1 &&
               EVP_DigestUpdate(r->md, plain, n) == 1 &&
               EVP_DigestFinal_ex(r->md, out, NULL) == 1;
    } else if (ctx->sha256 != NULL) {
        done = EVP_Digest(plain, n, out, NULL, ctx->sha256, NULL) == 1;
    }
    if (!done) {
        crypto_hash_sha256(out, plain, n);
    }
}

/* plain sealed under the data key into box, AD = the commitment c: with the worker's sealer
 * (made on first use, or again if the key changed), or one for this call when r is NULL. */
static int
subject_box(node_rand_t *r, const struct hie_mpi_key *mk, hie_span_t plain, const uint8_t *c,
    const uint8_t *tail, uint8_t *box, size_t box_bytes)
{
    hie_mpi_sealer_t *own = NULL, **sp = r != NULL ? &r->sealer : &own;
    if (*sp != NULL && hie_mpi_sealer_key(*sp) != mk) {
        hie_mpi_sealer_destroy(sp);
    }
    int rc = *sp == NULL ? hie_mpi_sealer_create(mk, sp) : 0;
    rc = rc ? rc : hie_mpi_sealer_seal(*sp, plain, hie_span(c, crypto_hash_sha256_BYTES), tail,
        box, box_bytes);
    hie_mpi_sealer_destroy(&own);
    return rc;
}

/* The subject's bytes, commitment, sealed form (nonce || AEAD) and index key, into arena.
 * rnd: SUBJECT_RANDOM_BYTES fresh random bytes (salt, nonce tail). */
static int
subject_seal(node_ctx_t *ctx, node_rand_t *r, const node_subject_t *s, const uint8_t *rnd,
    hie_arena_t *arena, ProtobufCBinaryData *commit, ProtobufCBinaryData *sealed,
    ProtobufCBinaryData *key)
{
    const struct hie_mpi_key *mk = hie_node__state_mpi_key(ctx->state);
    Hie__V1__AuditSubject as = HIE__V1__AUDIT_SUBJECT__INIT;
    as.salt = (ProtobufCBinaryData){SUBJECT_SALT_BYTES, (uint8_t *)(uintptr_t)rnd};
    as.euid = (char *)(uintptr_t)s->euid;
    as.permitted = hie_consent_permitted(&s->decision);
    as.reason = (char *)(uintptr_t)s->decision.reason;
    as.directive_id = (char *)(uintptr_t)s->decision.directive_id;
    as.directive_version = s->decision.directive_version;
    as.break_glass = s->decision.break_glass;
    /* §164.528 accounts for disclosures: a denial disclosed nothing */
    as.accounting_excluded = s->decision.accounting_excluded ||
                             !hie_consent_permitted(&s->decision);
    as.disclosed_count = (uint32_t)(s->n_disclosed + s->n_document_ids); /* what left */
    as.n_disclosed = s->n_disclosed;
    as.disclosed = s->disclosed;
    as.redacted_labels = s->decision.obligations & HIE_CONSENT_OBL_REDACT_MASK;
    as.n_document_ids = s->n_document_ids;
    as.document_ids = s->document_ids;
    size_t n = protobuf_c_message_get_packed_size(&as.base);
    uint8_t *plain = hie_arena_alloc(arena, n);
    uint8_t *c = hie_arena_alloc(arena, crypto_hash_sha256_BYTES);
    uint8_t *box = hie_arena_alloc(arena, HIE_MPI_SEAL_NONCE_BYTES + n +
        HIE_MPI_SEAL_OVERHEAD_BYTES);
    uint8_t *k = hie_arena_alloc(arena, HIE_PROTO_REC_HASH_BYTES);
    if (plain == NULL || c == NULL || box == NULL || k == NULL) {
        return HIE_ENOMEM;
    }
    HIE_ASSERT(protobuf_c_message_pack(&as.base, plain) == n);
    commitment(ctx, r, plain, n, c);
    int rc = subject_box(r, mk, hie_span(plain, n), c, rnd + SUBJECT_SALT_BYTES, box,
        HIE_MPI_SEAL_NONCE_BYTES + n + HIE_MPI_SEAL_OVERHEAD_BYTES);
    sodium_memzero(plain, n);
    subject_key(r, mk, s->euid, k);
    *commit = (ProtobufCBinaryData){crypto_hash_sha256_BYTES, c};
    *sealed = (ProtobufCBinaryData){HIE_MPI_SEAL_NONCE_BYTES + n + HIE_MPI_SEAL_OVERHEAD_BYTES,
        box};
    *key = (ProtobufCBinaryData){HIE_PROTO_REC_HASH_BYTES, k};
    return rc;
}

/* 42 CFR 2.32(a)(1), as the 2024 rule allows it in short. */
#define PART2_NOTICE "42 CFR part 2 prohibits unauthorized use or disclosure of these records."

Hie__V1__Handling *
hie_node__handling(const hie_consent_decision_t *d, hie_arena_t *arena)
{
    Hie__V1__Handling *h = hie_arena_alloc(arena, sizeof(*h));
    char **refrain = hie_arena_alloc(arena, sizeof(*refrain));
    if (h == NULL || refrain == NULL) {
        return NULL;
    }
    hie__v1__handling__init(h);
    if (d->refrains & HIE_CONSENT_REFRAIN_NORDSCLCD) {
        refrain[0] = (char *)(uintptr_t)"NORDSCLCD";
        h->n_refrain = 1;
        h->refrain = refrain;
    }
    h->confidentiality = (char *)(uintptr_t)hie_consent_label_name(d->confidentiality);
    h->notice = (char *)(uintptr_t)((d->obligations & HIE_CONSENT_OBL_PART2_NOTICE) != 0
        ? PART2_NOTICE : "");
    return h;
}

/* The audit_append body: the record (no personal data) and the sealed subjects. */
int
hie_node__audit_body(node_ctx_t *ctx, const node_who_t *who, Hie__V1__AuditAction action,
    Hie__V1__ErrorCode outcome, const node_subject_t *subjects, size_t n, hie_arena_t *arena,
    Hie__V1__AuditAppendCommand **out)
{
    HIE_ASSERT(n <= HIE_AUDIT_SUBJECTS_MAX);
    *out = NULL;
    Hie__V1__AuditRecord *r = hie_arena_alloc(arena, sizeof(*r));
    Hie__V1__AuditAppendCommand *ac = hie_arena_alloc(arena, sizeof(*ac));
    ProtobufCBinaryData *bins = hie_arena_alloc(arena, 3 * (n + 1) * sizeof(*bins));
    uint8_t *rnd = hie_arena_alloc(arena, n * SUBJECT_RANDOM_BYTES + 1);
    if (r == NULL || ac == NULL || bins == NULL || rnd == NULL) {
        return HIE_ENOMEM;
    }
    if (n > 0) {
        hie_node__rand(who->rand, rnd, n * SUBJECT_RANDOM_BYTES);
    }
    hie__v1__audit_record__init(r);
    hie__v1__audit_append_command__init(ac);
    r->time_ms = hie_time_wall_ms();
    r->node_id = ctx->cfg.node_id;
    r->requester_org = (char *)(uintptr_t)who->org_id;
    r->n_requester_roles = who->org != NULL ? who->org->n_roles : 0;
    r->requester_roles = who->org != NULL ? who->org->roles : NULL;
    r->purpose = who->purpose;
    r->action = action;
    r->request_id = (char *)(uintptr_t)who->request_id;
    r->outcome = outcome;
    r->patients_count = (uint32_t)n;
    r->subject_commitments = bins;
    ac->subjects_sealed = bins + (n + 1);
    ac->subject_keys = bins + 2 * (n + 1);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = subject_seal(ctx, who->rand, &subjects[i], rnd + i * SUBJECT_RANDOM_BYTES, arena,
            &bins[i], &ac->subjects_sealed[i], &ac->subject_keys[i]);
        r->disclosed_count += (uint32_t)(subjects[i].n_disclosed + subjects[i].n_document_ids);
        r->break_glass = r->break_glass || subjects[i].decision.break_glass;
        r->any_denied = r->any_denied || !hie_consent_permitted(&subjects[i].decision);
    }
    sodium_memzero(rnd, n * SUBJECT_RANDOM_BYTES); /* the salts keep the commitments opaque */
    r->n_subject_commitments = ac->n_subjects_sealed = ac->n_subject_keys = n;
    ac->record = r;
    *out = rc == 0 ? ac : NULL;
    return rc;
}

/* The audit_append command around the body. */
static int
audit_command(node_ctx_t *ctx, const node_who_t *who, Hie__V1__AuditAction action,
    Hie__V1__ErrorCode outcome, const node_subject_t *subjects, size_t n, hie_arena_t *arena,
    hie_command_t *cmd)
{
    Hie__V1__AuditAppendCommand *ac = NULL;
    int rc = hie_node__audit_body(ctx, who, action, outcome, subjects, n, arena, &ac);
    if (rc != 0) {
        return rc;
    }
    hie__v1__command__init(cmd);
    cmd->requester = (char *)(uintptr_t)who->org_id;
    cmd->request_id = (char *)(uintptr_t)who->request_id;
    cmd->time_ms = ac->record->time_ms;
    cmd->node_id = ctx->cfg.node_id;
    cmd->body_case = HIE__V1__COMMAND__BODY_AUDIT_APPEND;
    cmd->audit_append = ac;
    return 0;
}

void
hie_node__audit_build(node_ctx_t *ctx, const node_who_t *who, Hie__V1__AuditAction action,
    Hie__V1__ErrorCode outcome, const node_subject_t *subjects, size_t n, hie_arena_t *arena,
    node_audit_cmd_t *out)
{
    HIE_ASSERT(ctx != NULL && who != NULL && out != NULL);
    out->needed = true; /* even when building fails: the caller must not disclose */
    int rc = hie_node__state_mpi_key(ctx->state) == NULL ? HIE_EUNAVAIL : 0;
    rc = rc ? rc : audit_command(ctx, who, action, outcome, subjects, n, arena, &out->cmd);
    out->build_rc = rc;
}

/* ---- PIX and PDQ ----------------------------------------------------------------------------- */

int
hie_node__rtxn_begin(node_ctx_t *ctx, node_rand_t *r, MDB_txn **txn)
{
    if (r != NULL && r->rtxn != NULL) {
        *txn = r->rtxn;
        r->rtxn = NULL;
        if (mdb_txn_renew(*txn) == 0) {
            return 0;
        }
        mdb_txn_abort(*txn);
    }
    *txn = NULL;
    return mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, txn) == 0 ? 0
        : HIE_ESTORAGE;
}

void
hie_node__rtxn_end(node_rand_t *r, MDB_txn *txn)
{
    if (r != NULL && r->rtxn == NULL) {
        mdb_txn_reset(txn);
        r->rtxn = txn;
    } else {
        mdb_txn_abort(txn);
    }
}

/* A read txn for a query: the worker's, renewed (no allocation, no reader-table lock). */
static int
read_begin(node_ctx_t *ctx, const node_who_t *who, MDB_txn **txn, node_mpi_err_t *e)
{
    if (hie_node__rtxn_begin(ctx, who->rand, txn) != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    }
    return 0;
}

/* PIX in one read txn: the MPI's answer, then the consent decision on the members it read. */
static int
pix_read(node_ctx_t *ctx, const node_who_t *who, const Hie__V1__PixQuery *q,
    hie_arena_t *arena, Hie__V1__PixReply **r, node_subject_t *s, node_mpi_err_t *e)
{
    MDB_txn *txn = NULL;
    hie_mpi_members_t members = {NULL, 0};
    int rc = read_begin(ctx, who, &txn, e);
    if (rc != 0) {
        return rc;
    }
    rc = hie_node__mpi_pix(ctx, txn, q, arena, r, ctx->cfg.consent_off ? NULL : &members, e);
    if (rc == 0 && !ctx->cfg.consent_off) {
        *s = (node_subject_t){(*r)->euid, {0}, (*r)->ids, (*r)->n_ids, NULL, 0};
        hie_node__consent_decide_members(ctx, txn, arena, who, (*r)->euid, &members,
            HIE__V1__CONSENT_ACTION__CONSENT_ACTION_IDENTITY, &s->decision);
    }
    hie_node__rtxn_end(who->rand, txn);
    return rc;
}

int
hie_node__pix_prepare(node_ctx_t *ctx, const node_who_t *who, const Hie__V1__PixQuery *q,
    hie_arena_t *arena, Hie__V1__PixReply **reply, node_audit_cmd_t *audit, node_mpi_err_t *e)
{
    *reply = NULL;
    audit->needed = false;
    Hie__V1__PixReply *r = NULL;
    node_subject_t s = {0};
    int rc = pix_read(ctx, who, q, arena, &r, &s, e);
    if (ctx->cfg.consent_off || (rc != 0 && e->code != HIE__V1__ERROR_CODE__ERROR_NOT_FOUND)) {
        *reply = rc == 0 ? r : NULL;
        return rc; /* refused before anything was looked up: nothing to audit */
    }
    if (rc != 0) { /* an unknown patient: the query is audited, nothing is disclosed */
        hie_node__audit_build(ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PIX, e->code,
            NULL, 0, arena, audit);
        return rc;
    }
    bool own = strcmp(q->patient->org_id, who->org_id) == 0;
    Hie__V1__ErrorCode outcome = HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED;
    if (!hie_consent_permitted(&s.decision)) {
        /* as if the other identifiers did not exist: a member's own record has none; another
         * organization's MRN is unknown, in the same words as a genuinely unknown one */
        s.disclosed = NULL;
        s.n_disclosed = 0;
        r->ids = NULL;
        r->n_ids = 0;
        outcome = own ? outcome : HIE__V1__ERROR_CODE__ERROR_NOT_FOUND;
    }
    hie_node__audit_build(ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PIX, outcome, &s,
        1, arena, audit);
    if (outcome != HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        return mpi_fail(e, outcome, "patient.mrn", "no record of this MRN at this organization");
    }
    *reply = r;
    return 0;
}

/* ---- the review queue ----------------------------------------------------------------------- */

/* The subject of euid in subs[0..*n) (added when missing; NULL when there are already
 * HIE_AUDIT_SUBJECTS_MAX). */
static node_subject_t *
review_subject(node_subject_t *subs, size_t *n, const char *euid)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(subs[i].euid, euid) == 0) {
            return &subs[i];
        }
    }
    if (*n == HIE_AUDIT_SUBJECTS_MAX) {
        return NULL;
    }
    node_subject_t *s = &subs[(*n)++];
    *s = (node_subject_t){euid, {0}, NULL, 0, NULL, 0};
    s->decision.decision = HIE_CONSENT_PERMIT; /* MPI stewardship, not a consent decision */
    s->decision.reason = "mpi-stewardship";
    s->decision.accounting_excluded = true;
    return s;
}

/* Names the page's EUIDs in subs; the page is cut before the first item that would need a
 * subject more. Then each subject's records (the items' own) as disclosed, from ids. */
static void
review_subjects(Hie__V1__ReviewListReply *r, node_subject_t *subs, size_t *n,
    Hie__V1__PatientId **ids)
{
    size_t kept = 0;
    for (; kept < r->n_items; kept++) {
        const Hie__V1__ReviewItem *it = r->items[kept];
        size_t before = *n;
        bool fit = review_subject(subs, n, it->record_euid) != NULL &&
                   (it->candidate_euid[0] == '\0' ||
                       review_subject(subs, n, it->candidate_euid) != NULL);
        if (!fit) {
            *n = before; /* this item's EUIDs do not fit: the page ends before it */
            break;
        }
    }
    if (kept < r->n_items) {
        HIE_ASSERT(kept > 0); /* one item names at most two */
        r->next_after_id = r->items[kept - 1]->id;
        r->n_items = kept;
    }
    size_t used = 0;
    for (size_t s = 0; s < *n; s++) {
        subs[s].disclosed = &ids[used];
        for (size_t i = 0; i < r->n_items; i++) {
            if (r->items[i]->record != NULL &&
                strcmp(r->items[i]->record_euid, subs[s].euid) == 0) {
                ids[used++] = r->items[i]->record;
            }
        }
        subs[s].n_disclosed = (size_t)(&ids[used] - subs[s].disclosed);
    }
}

int
hie_node__review_list_prepare(node_ctx_t *ctx, const node_who_t *who,
    const Hie__V1__ReviewListRequest *q, hie_arena_t *arena, Hie__V1__ReviewListReply **reply,
    node_audit_cmd_t *audit, node_mpi_err_t *e)
{
    audit->needed = false;
    int rc = hie_node__mpi_review_list(ctx, q, arena, reply, e);
    if (rc != 0 || ctx->cfg.consent_off) {
        return rc;
    }
    Hie__V1__ReviewListReply *r = *reply;
    node_subject_t *subs = hie_arena_alloc(arena, HIE_AUDIT_SUBJECTS_MAX * sizeof(*subs));
    Hie__V1__PatientId **ids = hie_arena_alloc(arena, (r->n_items + 1) * sizeof(*ids));
    if (subs == NULL || ids == NULL) {
        *reply = NULL;
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    size_t n = 0;
    review_subjects(r, subs, &n, ids);
    hie_node__audit_build(ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_REVIEW_LIST,
        HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED, subs, n, arena, audit);
    return 0;
}

/* The consent decision for each candidate of r in rank order, in txn, on the members the read
 * found, until want are permitted; denied ones leave the reply (ranks stay in order, no gap).
 * The store was asked for more than want, so a hidden better match does not shorten the page
 * (which would tell that it exists). subs: one per candidate decided. Returns how many were
 * decided: those are audited; the ones after were neither decided nor disclosed. */
static size_t
pdq_decide(node_ctx_t *ctx, const node_who_t *who, MDB_txn *txn, hie_arena_t *arena,
    Hie__V1__PdqReply *r, const hie_mpi_members_t *members, size_t want, node_subject_t *subs)
{
    size_t kept = 0, i = 0;
    for (; i < r->n_candidates && kept < want; i++) {
        Hie__V1__PdqCandidate *c = r->candidates[i];
        subs[i] = (node_subject_t){c->euid, {0}, c->ids, c->n_ids, NULL, 0};
        hie_node__consent_decide_members(ctx, txn, arena, who, c->euid,
            members != NULL ? &members[i] : NULL, HIE__V1__CONSENT_ACTION__CONSENT_ACTION_IDENTITY,
            &subs[i].decision);
        if (hie_consent_permitted(&subs[i].decision)) {
            r->candidates[kept++] = c;
        } else {
            subs[i].disclosed = NULL;
            subs[i].n_disclosed = 0;
        }
    }
    r->n_candidates = kept;
    r->no_match = kept == 0;
    return i;
}

int
hie_node__pdq_prepare(node_ctx_t *ctx, const node_who_t *who, const Hie__V1__PdqQuery *q,
    hie_arena_t *arena, Hie__V1__PdqReply **reply, node_audit_cmd_t *audit, node_mpi_err_t *e)
{
    *reply = NULL;
    audit->needed = false;
    if (q->limit > HIE_MPI_PDQ_LIMIT_MAX) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "limit", "at most 50");
    }
    Hie__V1__PdqReply *r = NULL;
    hie_mpi_members_t *members = NULL;
    MDB_txn *txn = NULL;
    int rc = read_begin(ctx, who, &txn, e);
    if (rc != 0) {
        return rc;
    }
    /* as many candidates as one audit record can name: consent may hide some of the best */
    _Static_assert(HIE_MPI_PDQ_FETCH_MAX <= HIE_AUDIT_SUBJECTS_MAX, "every one decided is named");
    Hie__V1__PdqQuery all = *q;
    size_t want = q->limit != 0 ? q->limit : HIE_MPI_PDQ_LIMIT_DEFAULT;
    all.limit = ctx->cfg.consent_off ? q->limit : HIE_MPI_PDQ_FETCH_MAX;
    rc = hie_node__mpi_pdq(ctx, txn, &all, arena, &r, ctx->cfg.consent_off ? NULL : &members,
        e);
    if (ctx->cfg.consent_off || rc != 0) {
        hie_node__rtxn_end(who->rand, txn);
        *reply = rc == 0 ? r : NULL;
        return rc;
    }
    HIE_ASSERT(r->n_candidates <= HIE_AUDIT_SUBJECTS_MAX);
    size_t n = r->n_candidates;
    node_subject_t *subs = hie_arena_alloc(arena, (n + 1) * sizeof(*subs));
    if (subs != NULL) {
        n = pdq_decide(ctx, who, txn, arena, r, members, want, subs);
    }
    hie_node__rtxn_end(who->rand, txn);
    if (subs == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    hie_node__audit_build(ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PDQ,
        HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED, subs, n, arena, audit);
    *reply = r;
    return 0;
}
