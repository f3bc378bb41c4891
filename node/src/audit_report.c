/*
 * audit_report.c - disclosure reports for auditors (issue 4): the accounting of one patient's
 * disclosures (HIPAA §164.528 content), the accesses of one organization, and every
 * break-glass disclosure; paged, each entry with its leaf and inclusion proof, the page with a
 * checkpoint the node signs for the tree head it read, and on request a consistency proof
 * from the auditor's previous checkpoint. The report itself is audited (action REPORT).
 *
 * Paging: entries come in (time, leaf) order, except an accounting's, which come in log order
 * by buckets of 4,096 leaves ((time, leaf) within one: audit_state.c); the page token is the
 * hex of the last index value looked at, so the next page starts strictly after it even while
 * the log grows, then the hex of the first page's tree size: every page leaves out leaves at or
 * past it, so a paged report is the log as of its first page (a record stamped before the
 * token's time but committed after the first page would otherwise be skipped by the time order
 * on one page and included on none). Every
 * page proves its entries against its own tree head. A scan looks at no more than
 * REPORT_SCAN_MAX index values per page (TPO-excluded entries are skipped in an accounting),
 * then returns what it has and a token.
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <sodium.h>
#include <string.h>

#define REPORT_SCAN_MAX 20000u
#define REPORT_VAL_MAX 18u
#define NOTE_MAX HIE_AUDIT_NOTE_SIGNED_BYTES_MAX

_Static_assert(NODE_AUDIT_SCAN_KEYS_MAX == 2u * (1u + HIE_MPI_IDENTITY_SPANS_MAX),
    "an accounting scans two keys for each EUID its patient had");

/* One EUID an accounting scans (its two index keys) and the spans in which its entries are
 * the patient's (none: the current EUID, the whole period). */
struct ident_key {
    const char *euid;
    const hie_mpi_euid_span_t *spans;
    size_t n_spans;
};

struct report {
    node_ctx_t *ctx;
    MDB_txn *txn;
    hie_arena_t *arena;
    const Hie__V1__AuditReportRequest *q;
    Hie__V1__AuditReportReply *out;
    uint64_t size;                    /* tree head the page proves against */
    uint64_t cutoff;                  /* leaves from here on are left out: the first page's size */
    int64_t to_ms;
    uint32_t page;
    uint8_t last[REPORT_VAL_MAX];     /* the last index value taken */
    size_t last_len;
    uint32_t seen;                    /* index values looked at */
    bool more;                        /* stopped with a full page */
    int rc;
    hie_mpi_sealer_t *opener;         /* opens the subjects (one subkey per sealer's run) */
    size_t bytes, budget;             /* the page's entries, packed; at most (one at least) */
    /* a break-glass page shows other patients: their EUIDs (its own audit record names each,
     * so it holds no more than one record names) and the entry's being added */
    const char *euids[HIE_AUDIT_SUBJECTS_MAX];
    size_t n_euids;
    const char *adding[HIE_AUDIT_SUBJECTS_MAX];
    size_t n_adding;
    /* an accounting: its EUIDs, the current one first (index keys 2i and 2i + 1 are i's) */
    struct ident_key idents[1 + HIE_MPI_IDENTITY_SPANS_MAX];
    size_t n_idents;
    uint8_t ident_hash[HIE_AUDIT_HASH_BYTES]; /* hie_audit_identity_hash of the reply's */
    /* an accounting's look at whether an entry is excluded (reset for each): what it skips
     * costs the page's arena nothing (20,000 skipped entries of ten subjects filled it) */
    hie_arena_t *scratch;
};

#define REPORT_SCRATCH_BYTES (4u * 1024u * 1024u)

static int
bad(node_mpi_err_t *e, const char *field, const char *message)
{
    return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, field, message);
}

static int
request_check(const Hie__V1__AuditReportRequest *q, node_mpi_err_t *e)
{
    if (q->kind < HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING ||
        q->kind > HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_BREAK_GLASS) {
        return bad(e, "kind", "accounting, org_access or break_glass");
    }
    if (q->from_ms < 0 || q->to_ms < 0 || (q->to_ms != 0 && q->from_ms >= q->to_ms)) {
        return bad(e, "to_ms", "the period must have from_ms < to_ms");
    }
    if (q->page_size > HIE_AUDIT_REPORT_PAGE_MAX) {
        return bad(e, "page_size", "at most 1000");
    }
    size_t tl = q->page_token != NULL ? strlen(q->page_token) : 0;
    if (tl != 0 && tl != 32 && tl != 48 && tl != 68) {
        return bad(e, "page_token", "not a token from a previous page");
    }
    if (q->kind == HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ORG_ACCESS &&
        (q->org_id == NULL || !hie_proto_org_id_valid(q->org_id, strlen(q->org_id)))) {
        return bad(e, "org_id", "not an organization id");
    }
    return 0;
}

/* The EUID an accounting is for: by (org, MRN) through the MPI, or given. */
static int
report_euid(node_ctx_t *ctx, MDB_txn *txn, hie_arena_t *arena,
    const Hie__V1__AuditReportRequest *q, char *euid, node_mpi_err_t *e)
{
    if (q->euid != NULL && q->euid[0] != '\0') {
        size_t len = strlen(q->euid);
        if (len >= HIE_MPI_EUID_BYTES || strspn(q->euid, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            "abcdefghijklmnopqrstuvwxyz0123456789") != len) {
            return bad(e, "euid", "not an EUID");
        }
        memcpy(euid, q->euid, strlen(q->euid) + 1);
        return 0;
    }
    const Hie__V1__PatientId *p = q->patient;
    if (p == NULL || p->org_id == NULL || !hie_mpi_mrn_valid(p->mrn)) {
        return bad(e, "patient", "the patient by organization and MRN, or euid");
    }
    uint8_t h[HIE_MPI_REC_HASH_BYTES];
    hie_mpi_rec_hash(hie_node__state_mpi_key(ctx->state), p->org_id, p->mrn, h);
    int rc = hie_mpi_store_euid_of(hie_node__state_mpi(ctx->state), txn, h, arena, euid);
    if (rc == HIE_ENOTFOUND) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_NOT_FOUND, "patient.mrn",
            "no record of this MRN at this organization");
    }
    return rc == 0 ? 0 : mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
}

/* Opens subject pos of leaf's record rec into arena: [out] *plain (its bytes) and *subject. */
static int
subject_decrypt(struct report *r, hie_arena_t *arena, uint64_t leaf, uint32_t pos,
    const Hie__V1__AuditRecord *rec, ProtobufCBinaryData *plain, Hie__V1__AuditSubject **subject)
{
    hie_span_t sealed;
    int rc = hie_node__audit_subject(hie_node__state_audit(r->ctx->state), r->txn, leaf, pos,
        &sealed);
    if (rc != 0 || pos >= rec->n_subject_commitments ||
        sealed.len < HIE_MPI_SEAL_NONCE_BYTES + HIE_MPI_SEAL_OVERHEAD_BYTES) {
        return HIE_ECORRUPT;
    }
    size_t cap = sealed.len - HIE_MPI_SEAL_NONCE_BYTES, len = 0;
    uint8_t *bytes = hie_arena_alloc(arena, cap);
    if (bytes == NULL) {
        return HIE_ENOMEM;
    }
    const ProtobufCBinaryData *c = &rec->subject_commitments[pos];
    rc = hie_mpi_sealer_open(r->opener, sealed, hie_span(c->data, c->len), bytes, cap, &len);
    ProtobufCMessage *m = NULL;
    rc = rc ? rc : hie_proto_unpack(&hie__v1__audit_subject__descriptor, hie_span(bytes, len),
        arena, &m);
    if (rc != 0) { /* the page's memory spent is the node's trouble, not the log's */
        return hie_arena_cap_hit(arena) ? HIE_ENOMEM : HIE_ECORRUPT;
    }
    *plain = (ProtobufCBinaryData){len, bytes};
    *subject = (Hie__V1__AuditSubject *)m;
    return 0;
}

/* Opens subject pos of the record (bytes in arena); [out] *excluded from its flag. */
static int
subject_open(struct report *r, uint64_t leaf, uint32_t pos, const Hie__V1__AuditRecord *rec,
    ProtobufCBinaryData *out, bool *excluded)
{
    Hie__V1__AuditSubject *sub = NULL;
    int rc = subject_decrypt(r, r->arena, leaf, pos, rec, out, &sub);
    if (rc != 0) {
        return rc;
    }
    *excluded = sub->accounting_excluded;
    if (r->n_adding < HIE_AUDIT_SUBJECTS_MAX && sub->euid != NULL && sub->euid[0] != '\0') {
        r->adding[r->n_adding++] = sub->euid;
    }
    return 0;
}

/* Whether subject pos of leaf is excluded from an accounting (TPO), read in r->scratch. */
static int
subject_excluded(struct report *r, uint64_t leaf, uint32_t pos, bool *excluded)
{
    hie_span_t bytes;
    hie_arena_wipe(r->scratch); /* the subject opened for the entry before */
    hie_arena_reset(r->scratch);
    ProtobufCMessage *m = NULL;
    int rc = hie_node__audit_record(hie_node__state_audit(r->ctx->state), r->txn, leaf,
        &bytes);
    rc = rc ? rc : hie_proto_unpack(&hie__v1__audit_record__descriptor, bytes, r->scratch, &m);
    if (rc != 0) {
        return hie_arena_cap_hit(r->scratch) ? HIE_ENOMEM : HIE_ECORRUPT;
    }
    ProtobufCBinaryData plain;
    Hie__V1__AuditSubject *sub = NULL;
    rc = subject_decrypt(r, r->scratch, leaf, pos, (const Hie__V1__AuditRecord *)m, &plain,
        &sub);
    *excluded = rc == 0 && sub->accounting_excluded;
    return rc;
}

/* Adds the entry of leaf, with the subjects wanted (-1: none; -2: all), unless excluded. */
static int
entry_add(struct report *r, uint64_t leaf, int subject)
{
    hie_span_t bytes;
    node_audit_t *au = hie_node__state_audit(r->ctx->state);
    if (subject >= 0 && !r->q->include_excluded) {
        bool excluded = false;
        int xrc = subject_excluded(r, leaf, (uint32_t)subject, &excluded);
        if (xrc != 0 || excluded) {
            return xrc; /* §164.528 exclusion (TPO): not part of this accounting */
        }
    }
    int rc = hie_node__audit_record(au, r->txn, leaf, &bytes);
    ProtobufCMessage *m = NULL;
    rc = rc ? rc : hie_proto_unpack(&hie__v1__audit_record__descriptor, bytes, r->arena, &m);
    Hie__V1__AuditReportEntry *en = rc == 0 ? hie_arena_alloc(r->arena, sizeof(*en)) : NULL;
    if (rc != 0 || en == NULL) {
        return rc != 0 && !hie_arena_cap_hit(r->arena) ? HIE_ECORRUPT : HIE_ENOMEM;
    }
    const Hie__V1__AuditRecord *rec = (const Hie__V1__AuditRecord *)m;
    hie__v1__audit_report_entry__init(en);
    size_t first = subject >= 0 ? (size_t)subject : 0;
    size_t last = subject >= 0 ? first + 1 : subject == -2 ? rec->n_subject_commitments : 0;
    en->subjects = hie_arena_alloc(r->arena, (last - first + 1) * sizeof(*en->subjects));
    en->subject_positions = hie_arena_alloc(r->arena, (last - first + 1) * sizeof(uint32_t));
    if (en->subjects == NULL || en->subject_positions == NULL) {
        return HIE_ENOMEM;
    }
    for (size_t i = first; i < last; i++) {
        bool excluded = false;
        rc = subject_open(r, leaf, (uint32_t)i, rec, &en->subjects[en->n_subjects], &excluded);
        if (rc != 0) {
            return rc;
        }
        if (subject >= 0 && excluded && !r->q->include_excluded) {
            return 0; /* §164.528 exclusion (TPO): not part of this accounting */
        }
        en->subject_positions[en->n_subject_positions++] = (uint32_t)i;
        en->n_subjects++;
    }
    en->leaf_index = leaf;
    uint8_t *copy = hie_arena_alloc(r->arena, bytes.len + 1); /* txn memory ends with the txn */
    if (copy == NULL) {
        return HIE_ENOMEM;
    }
    memcpy(copy, bytes.ptr, bytes.len);
    en->record = (ProtobufCBinaryData){bytes.len, copy};
    rc = hie_node__audit_proof(au, r->txn, leaf, r->size, r->arena, &en->inclusion_proof,
        &en->n_inclusion_proof);
    if (rc == 0) {
        r->out->entries[r->out->n_entries++] = en;
    }
    return rc;
}

/* Adds the entry's EUIDs (r->adding) to the page's; false, adding none, when they would be
 * more than one audit record names (the first entry always fits: one record's at most). */
static bool
euids_take(struct report *r)
{
    const char *add[HIE_AUDIT_SUBJECTS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < r->n_adding; i++) {
        bool have = false;
        for (size_t k = 0; k < r->n_euids && !have; k++) {
            have = strcmp(r->euids[k], r->adding[i]) == 0;
        }
        for (size_t k = 0; k < n && !have; k++) {
            have = strcmp(add[k], r->adding[i]) == 0;
        }
        if (!have) {
            add[n++] = r->adding[i];
        }
    }
    if (r->n_euids + n > HIE_AUDIT_SUBJECTS_MAX) {
        HIE_ASSERT(r->n_euids > 0);
        return false;
    }
    memcpy(&r->euids[r->n_euids], add, n * sizeof(*add));
    r->n_euids += n;
    return true;
}

/* Whether an entry at time t under index key `key` is the patient's: the current EUID's
 * always, an earlier one's within its spans. */
static bool
ident_holds(const struct report *r, size_t key, int64_t t)
{
    HIE_ASSERT(key / 2 < r->n_idents);
    const struct ident_key *ik = &r->idents[key / 2];
    bool in = ik->n_spans == 0;
    for (size_t i = 0; i < ik->n_spans && !in; i++) {
        in = t >= ik->spans[i].from_ms && t < ik->spans[i].to_ms;
    }
    return in;
}

/* Whether an entry at time t under index key `key` is past every span of its EUID by
 * IDENT_PAST_MARGIN_MS: a key's entries come in log order, and times follow it within seconds,
 * so none after it is the patient's (an earlier EUID the patient's records left long ago, in
 * a busy log, is not read to its end on every page). */
#define IDENT_PAST_MARGIN_MS (10 * 60 * 1000)
static bool
ident_past(const struct report *r, size_t key, int64_t t)
{
    const struct ident_key *ik = &r->idents[key / 2];
    int64_t end = INT64_MIN;
    for (size_t i = 0; i < ik->n_spans; i++) {
        end = ik->spans[i].to_ms > end ? ik->spans[i].to_ms : end;
    }
    return ik->n_spans > 0 && end < INT64_MAX - IDENT_PAST_MARGIN_MS &&
           t > end + IDENT_PAST_MARGIN_MS;
}

static int
scan_one(void *ctx, const uint8_t *val, size_t len, size_t key)
{
    struct report *r = ctx;
    if (key == NODE_AUDIT_SCAN_RESUME) { /* the walk's budget spent between buckets */
        memcpy(r->last, val, len);
        r->last_len = len;
        r->more = true;
        return 1;
    }
    r->seen++;
    if (len != 16 && len != 18) {
        r->rc = HIE_ECORRUPT;
        return 1;
    }
    if (r->out->n_entries == r->page) {
        r->more = true;
        return 1;
    }
    if (len == r->last_len && memcmp(val, r->last, len) == 0) {
        return 0; /* the previous page's last value: strictly after it */
    }
    int64_t t = (int64_t)hie_load_be64(val);
    uint64_t leaf = hie_load_be64(val + 8);
    bool by_patient = r->q->kind == HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING;
    bool late = r->to_ms != 0 && t >= r->to_ms;
    if (late && !by_patient) {
        return 1; /* the end of the period (time order) */
    }
    if (leaf >= r->cutoff || (by_patient && (late || t < r->q->from_ms ||
        !ident_holds(r, key, t)))) {
        /* committed after the first page; or, in log order, outside the period */
        memcpy(r->last, val, len);
        r->last_len = len;
        return by_patient && ident_past(r, key, t) ? 2 : 0;
    }
    int subject = len == 18 ? (int)((val[16] << 8) | val[17]) : -1;
    if (r->q->kind == HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_BREAK_GLASS) {
        subject = -2;
    }
    size_t before = r->out->n_entries;
    r->n_adding = 0;
    r->rc = entry_add(r, leaf, subject);
    if (r->rc == 0 && r->out->n_entries > before) {
        /* a page of many large entries (break-glass: up to 64 subjects each) must still fit
         * one frame: past the budget the entry opens the next page instead; and (checked
         * after, so that an entry left out names nobody) its patients must fit the page's
         * audit record */
        size_t sz = hie__v1__audit_report_entry__get_packed_size(r->out->entries[before]) + 8;
        if ((before > 0 && r->bytes + sz > r->budget) || (subject == -2 && !euids_take(r))) {
            r->out->n_entries = before;
            r->more = true;
            return 1;
        }
        r->bytes += sz;
    }
    memcpy(r->last, val, len);
    r->last_len = len;
    return r->rc != 0;
}

/* next_page_token: the last value looked at || the first page's size (|| an accounting's
 * identity hash, 8 bytes), in hex. */
static int
token_next(struct report *r, bool accounting)
{
    uint8_t next[REPORT_VAL_MAX + 16];
    size_t len = r->last_len + 8;
    memcpy(next, r->last, r->last_len);
    hie_store_be64(next + r->last_len, r->cutoff);
    if (accounting) {
        memcpy(next + len, r->ident_hash, 8);
        len += 8;
    }
    char *hex = hie_arena_alloc(r->arena, 2 * len + 1);
    if (hex == NULL) {
        return HIE_ENOMEM;
    }
    sodium_bin2hex(hex, 2 * len + 1, next, len);
    r->out->next_page_token = hex;
    return 0;
}

/* Runs the scan of the index the kind names; sets next_page_token. */
static int
report_scan(struct report *r)
{
    const Hie__V1__AuditReportRequest *q = r->q;
    enum node_audit_index which = AUDIT_INDEX_BREAK_GLASS;
    uint8_t key[NODE_AUDIT_SCAN_KEYS_MAX * HIE_PROTO_REC_HASH_BYTES], start[REPORT_VAL_MAX] = {0};
    hie_span_t k = hie_span(NULL, 0), s = hie_span(NULL, 0);
    if (q->kind == HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING) {
        which = AUDIT_INDEX_PATIENT;
        /* records carry version 2 keys, or version 1 if applied before 2026-11-30 */
        const struct hie_mpi_key *mk = hie_node__state_mpi_key(r->ctx->state);
        for (size_t i = 0; i < r->n_idents; i++) {
            uint8_t *at = key + 2 * i * HIE_PROTO_REC_HASH_BYTES;
            hie_node__audit_subject_key(mk, r->idents[i].euid, at);
            hie_node__audit_subject_key_v1(mk, r->idents[i].euid, at + HIE_PROTO_REC_HASH_BYTES);
        }
        k = hie_span(key, 2 * r->n_idents * HIE_PROTO_REC_HASH_BYTES);
    } else if (q->kind == HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ORG_ACCESS) {
        which = AUDIT_INDEX_ORG;
        k = hie_span((const uint8_t *)q->org_id, strlen(q->org_id));
    }
    size_t tl = q->page_token != NULL ? strlen(q->page_token) : 0, bin = 0;
    uint8_t tok[REPORT_VAL_MAX + 16];
    r->cutoff = r->size;
    if (tl > 0) {
        size_t want = which == AUDIT_INDEX_PATIENT ? 18 : 16; /* this kind's index values */
        if (sodium_hex2bin(tok, sizeof(tok), q->page_token, tl, NULL, &bin, NULL) != 0 ||
            (which == AUDIT_INDEX_PATIENT ? bin != want + 16 : bin != want && bin != want + 8)) {
            return HIE_EINVAL; /* another kind's token (or none of ours): an accounting's
                                * carries its identity's hash */
        }
        if (bin == want + 16) { /* ... || the identity's hash: the same on every page */
            bin -= 8;
            if (sodium_memcmp(tok + bin, r->ident_hash, 8) != 0) {
                return HIE_ESTATE;
            }
        }
        if (bin == want + 8) { /* value || the first page's size (older: value only) */
            bin -= 8;
            uint64_t first = hie_load_be64(tok + bin);
            r->cutoff = first < r->cutoff ? first : r->cutoff;
        }
        memcpy(start, tok, bin);
        memcpy(r->last, start, bin);
        r->last_len = bin;
    } else {
        hie_store_be64(start, (uint64_t)q->from_ms);
        bin = which == AUDIT_INDEX_PATIENT ? 18 : 16;
    }
    s = hie_span(start, bin);
    node_audit_t *au = hie_node__state_audit(r->ctx->state);
    int rc = hie_node__audit_scan(au, r->txn, which, k, s, REPORT_SCAN_MAX, r->cutoff,
        scan_one, r);
    rc = rc ? rc : r->rc;
    if (rc == 0 && r->last_len > 0 && (r->more || r->seen >= REPORT_SCAN_MAX)) {
        rc = token_next(r, which == AUDIT_INDEX_PATIENT);
    }
    return rc;
}

/* r->ident_hash of the reply's identity (spans, n of them); asked by organization + MRN,
 * which patient that named is signed too. */
static void
identity_hash(struct report *r, const Hie__V1__AuditIdentitySpan *spans, size_t n)
{
    const char *euids[1 + HIE_MPI_IDENTITY_SPANS_MAX];
    int64_t from[1 + HIE_MPI_IDENTITY_SPANS_MAX], to[1 + HIE_MPI_IDENTITY_SPANS_MAX];
    HIE_ASSERT(n <= 1 + HIE_MPI_IDENTITY_SPANS_MAX);
    for (size_t i = 0; i < n; i++) {
        euids[i] = spans[i].euid;
        from[i] = spans[i].from_ms;
        to[i] = spans[i].to_ms;
    }
    const Hie__V1__PatientId *asked = r->q->patient;
    bool by_mrn = (r->q->euid == NULL || r->q->euid[0] == '\0') && asked != NULL &&
                  asked->org_id != NULL && asked->mrn != NULL && asked->mrn[0] != '\0';
    hie_audit_identity_hash(by_mrn ? asked->org_id : NULL, by_mrn ? asked->mrn : NULL, euids,
        from, to, n, r->ident_hash);
}

/* A page's entries take at most half a frame (the rest: head, checkpoint, proofs), and of a
 * frame no bigger than clients take by default: a node configured with a larger
 * limits.frame_bytes_max sent pages that `hie audit report` refused as too large. */
static size_t
report_budget(const node_ctx_t *ctx)
{
    uint32_t f = ctx->cfg.frame_bytes_max ? ctx->cfg.frame_bytes_max
                                          : HIE_PROTO_FRAME_BYTES_DEFAULT;
    return (f < HIE_PROTO_FRAME_BYTES_DEFAULT ? f : HIE_PROTO_FRAME_BYTES_DEFAULT) / 2;
}

/* The EUIDs an accounting for euid scans (r->idents, euid first) and the reply's identity:
 * euid's spans (hie_mpi_store_identity; an EUID without members, a former one, whole: from 0
 * to 0), then each earlier EUID's. An entry counts only inside its EUID's spans: the asked
 * EUID too was someone else's before the patient's first record joined it. */
static int
report_identity(struct report *r, const char *euid, node_mpi_err_t *e)
{
    hie_mpi_euid_span_t *sp = NULL;
    size_t n = 0;
    int rc = hie_mpi_store_identity(hie_node__state_mpi(r->ctx->state), r->txn, euid, r->arena,
        &sp, &n);
    if (rc == HIE_ELIMIT) {
        hie_log_warn("audit", "accounting refused: the patient's identity history is too long",
            " euid=%s", euid);
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST, "patient",
            "the patient's records lived under more enterprise ids and spans than one "
            "accounting covers (64 spans)");
    }
    Hie__V1__AuditIdentitySpan *out = rc == 0 ? hie_arena_alloc(r->arena, (n + 1) *
        sizeof(*out)) : NULL;
    Hie__V1__AuditIdentitySpan **ptrs = rc == 0 ? hie_arena_alloc(r->arena, (n + 1) *
        sizeof(*ptrs)) : NULL;
    if (rc == 0 && (out == NULL || ptrs == NULL)) {
        rc = HIE_ENOMEM;
    }
    if (rc != 0) {
        hie_log_error("audit", "report failed", " rc=%s", hie_strerror_name(rc));
        return mpi_fail(e, hie_proto_error_code(rc), NULL, "internal error");
    }
    size_t k = 0;
    r->idents[0] = (struct ident_key){euid, NULL, 0};
    r->n_idents = 1;
    for (size_t pass = 0; pass < 2; pass++) { /* euid's spans, then the others' */
        for (size_t i = 0; i < n; i++) {
            bool own = strcmp(sp[i].euid, euid) == 0;
            if (own != (pass == 0)) {
                continue;
            }
            struct ident_key *ik = &r->idents[r->n_idents - 1];
            if (own) {
                ik->spans = ik->n_spans == 0 ? &sp[i] : ik->spans;
                ik->n_spans++; /* sorted by EUID: euid's spans are consecutive */
            } else if (r->n_idents > 1 && strcmp(ik->euid, sp[i].euid) == 0) {
                ik->n_spans++;
            } else {
                r->idents[r->n_idents++] = (struct ident_key){sp[i].euid, &sp[i], 1};
            }
            out[k] = (Hie__V1__AuditIdentitySpan)HIE__V1__AUDIT_IDENTITY_SPAN__INIT;
            out[k].euid = sp[i].euid;
            out[k].from_ms = sp[i].from_ms;
            out[k].to_ms = sp[i].to_ms;
            k++;
        }
        if (pass == 0 && k == 0) { /* no member: the EUID whole, as asked */
            out[k] = (Hie__V1__AuditIdentitySpan)HIE__V1__AUDIT_IDENTITY_SPAN__INIT;
            out[k++].euid = (char *)(uintptr_t)euid;
        }
    }
    for (size_t i = 0; i < k; i++) {
        ptrs[i] = &out[i];
    }
    r->out->identity = ptrs;
    r->out->n_identity = k;
    identity_hash(r, out, k);
    return 0;
}

/* Signs the accounting's identity for the page's tree size (HIE_AUDIT_IDENTITY_ORIGIN). */
static int
identity_sign(struct report *r, uint64_t size)
{
    hie_audit_tree_head_t ih = {size, {{0}}};
    char *note = hie_arena_alloc(r->arena, NOTE_MAX);
    size_t len = 0;
    if (note == NULL) {
        return HIE_ENOMEM;
    }
    memcpy(ih.root.bytes, r->ident_hash, HIE_AUDIT_HASH_BYTES);
    int rc = hie_audit_checkpoint_sign(r->ctx->audit_signer, HIE_AUDIT_IDENTITY_ORIGIN, &ih,
        note, NOTE_MAX, &len);
    r->out->identity_note = rc == 0 ? note : r->out->identity_note;
    return rc;
}

/* Signs what the page holds for its tree size (HIE_AUDIT_PAGE_ORIGIN): its entries, and the
 * page tokens that chain it to the pages before and after. */
static int
page_sign(struct report *r, uint64_t size)
{
    const Hie__V1__AuditReportReply *o = r->out;
    hie_audit_page_entry_t *es = hie_arena_alloc(r->arena, (o->n_entries + 1) * sizeof(*es));
    char *note = hie_arena_alloc(r->arena, NOTE_MAX);
    if (es == NULL || note == NULL) {
        return HIE_ENOMEM;
    }
    for (size_t i = 0; i < o->n_entries; i++) {
        es[i] = (hie_audit_page_entry_t){o->entries[i]->leaf_index,
            o->entries[i]->subject_positions, o->entries[i]->n_subject_positions};
    }
    const Hie__V1__AuditReportRequest *q = r->q;
    hie_audit_page_query_t pq = {(int)q->kind, q->patient != NULL ? q->patient->org_id : NULL,
        q->patient != NULL ? q->patient->mrn : NULL, q->euid, q->org_id,
        q->from_ms > 0 ? q->from_ms : 0, q->to_ms > 0 ? q->to_ms : 0, q->include_excluded,
        q->page_token, o->next_page_token};
    hie_audit_tree_head_t ph = {size, {{0}}};
    hie_audit_page_hash(&pq, es, o->n_entries, ph.root.bytes);
    size_t len = 0;
    int rc = hie_audit_checkpoint_sign(r->ctx->audit_signer, HIE_AUDIT_PAGE_ORIGIN, &ph, note,
        NOTE_MAX, &len);
    r->out->page_note = rc == 0 ? note : r->out->page_note;
    return rc;
}

/* Signs the head the page proves against, and the consistency proof asked for. */
static int
report_head(struct report *r)
{
    node_audit_t *au = hie_node__state_audit(r->ctx->state);
    hie_audit_tree_head_t head = {r->size, {{0}}};
    int rc = hie_node__audit_head(au, r->txn, &head.size, head.root.bytes);
    HIE_ASSERT(rc != 0 || head.size == r->size);
    char *note = hie_arena_alloc(r->arena, NOTE_MAX);
    uint8_t *root = hie_arena_alloc(r->arena, HIE_AUDIT_HASH_BYTES);
    size_t len = 0;
    if (rc == 0 && (note == NULL || root == NULL)) {
        rc = HIE_ENOMEM;
    }
    rc = rc ? rc : hie_audit_checkpoint_sign(r->ctx->audit_signer, r->ctx->cfg.audit_origin,
        &head, note, NOTE_MAX, &len);
    if (rc != 0) {
        return rc;
    }
    if (r->out->n_identity > 0) {
        rc = identity_sign(r, head.size);
        if (rc != 0) {
            return rc;
        }
    }
    rc = page_sign(r, head.size);
    if (rc != 0) {
        return rc;
    }
    memcpy(root, head.root.bytes, HIE_AUDIT_HASH_BYTES);
    r->out->tree_size = head.size;
    r->out->root = (ProtobufCBinaryData){HIE_AUDIT_HASH_BYTES, root};
    r->out->checkpoint = note;
    r->out->verifier_key = r->ctx->audit_vkey;
    uint64_t prev = r->q->prev_tree_size;
    if (prev > 0 && prev <= head.size) {
        rc = hie_node__audit_consistency(au, r->txn, prev, head.size, r->arena,
            &r->out->consistency_proof, &r->out->n_consistency_proof);
    }
    return rc;
}

static int
report_build(struct report *r, char *euid, node_mpi_err_t *e)
{
    const Hie__V1__AuditReportRequest *q = r->q;
    node_audit_t *au = hie_node__state_audit(r->ctx->state);
    int rc = 0;
    if (q->kind == HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING) {
        rc = report_euid(r->ctx, r->txn, r->arena, q, euid, e);
        rc = rc == 0 ? report_identity(r, euid, e) : rc;
        if (rc != 0) {
            return rc;
        }
    }
    hie_audit_tree_t *tree = hie_node__audit_tree(au);
    rc = hie_audit_tree_size(tree, r->txn, &r->size);
    r->out->entries = rc == 0 ? hie_arena_alloc(r->arena, (r->page + 1) *
        sizeof(*r->out->entries)) : NULL;
    if (rc == 0 && r->out->entries == NULL) {
        rc = HIE_ENOMEM;
    }
    rc = rc ? rc : report_scan(r);
    if (rc == HIE_EINVAL) {
        return bad(e, "page_token", "not a token from a previous page");
    }
    if (rc == HIE_ESTATE) {
        return bad(e, "page_token", "the patient's records were linked, unlinked or merged "
            "since the first page: ask again from the first page");
    }
    rc = rc ? rc : report_head(r);
    if (rc != 0) {
        hie_log_error("audit", "report failed", " rc=%s", hie_strerror_name(rc));
        return mpi_fail(e, hie_proto_error_code(rc), NULL, "internal error");
    }
    return 0;
}

/* Builds the page in a read transaction, with the opener and scratch it needs. */
static int
report_run(struct report *r, char *euid, node_mpi_err_t *e)
{
    if (hie_mpi_sealer_create(hie_node__state_mpi_key(r->ctx->state), &r->opener) != 0 ||
        hie_arena_create(&r->scratch, REPORT_SCRATCH_BYTES) != 0) {
        hie_mpi_sealer_destroy(&r->opener);
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    int rc = 0;
    if (mdb_txn_begin(hie_node__state_env(r->ctx->state), NULL, MDB_RDONLY, &r->txn) != 0) {
        rc = mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_INTERNAL, NULL, "internal error");
    } else {
        rc = report_build(r, euid, e);
        mdb_txn_abort(r->txn);
    }
    hie_mpi_sealer_destroy(&r->opener);
    hie_arena_wipe(r->scratch); /* subjects were opened in it */
    hie_arena_destroy(&r->scratch);
    return rc;
}

int
hie_node__audit_report_prepare(node_ctx_t *ctx, const node_who_t *who,
    const Hie__V1__AuditReportRequest *q, hie_arena_t *arena, Hie__V1__AuditReportReply **reply,
    node_audit_cmd_t *audit, node_mpi_err_t *e)
{
    *reply = NULL;
    audit->needed = false;
    int rc = request_check(q, e);
    if (rc != 0) {
        return rc;
    }
    if (hie_node__state_mpi_key(ctx->state) == NULL || ctx->audit_signer == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "the audit log is not available on this node (no data key)");
    }
    Hie__V1__AuditReportReply *out = hie_arena_alloc(arena, sizeof(*out));
    char *euid = hie_arena_alloc(arena, HIE_MPI_EUID_BYTES);
    if (out == NULL || euid == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    hie__v1__audit_report_reply__init(out);
    euid[0] = '\0';
    struct report r = {ctx, NULL, arena, q, out, 0, 0, q->to_ms, q->page_size ? q->page_size
        : HIE_AUDIT_REPORT_PAGE_DEFAULT, {0}, 0, 0, false, 0, NULL, 0,
        report_budget(ctx), {NULL}, 0, {NULL}, 0, {{0}}, 0, {0}, NULL};
    /* every audit record answered so far is durable in the log; wait until its apply is
     * committed too (audit records share state commits, sm.c), so the report includes it */
    if (ctx->log != NULL && hie_node__state_wait_committed(ctx->state,
                                hie_cluster_log_last_index(ctx->log),
                                HIE_AUDIT_REPORT_COMMIT_WAIT_MS) != 0) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
            "the audit log is catching up; retry");
    }
    rc = report_run(&r, euid, e);
    if (rc != 0) {
        return rc;
    }
    /* the report discloses too: audit it before replying, naming the patient it is about (an
     * accounting) or every patient the page shows (break-glass) */
    node_subject_t *subs = hie_arena_alloc(arena, (r.n_euids + 1) * sizeof(*subs));
    if (subs == NULL) {
        return mpi_fail(e, HIE__V1__ERROR_CODE__ERROR_OVERLOADED, NULL, "out of memory");
    }
    size_t n = 0;
    if (euid[0] != '\0') {
        subs[n++] = (node_subject_t){euid, {0}, NULL, 0, NULL, 0};
    }
    for (size_t i = 0; i < r.n_euids; i++) {
        subs[n++] = (node_subject_t){r.euids[i], {0}, NULL, 0, NULL, 0};
    }
    for (size_t i = 0; i < n; i++) {
        subs[i].decision.decision = HIE_CONSENT_PERMIT;
        subs[i].decision.reason = "auditor-report";
    }
    hie_node__audit_build(ctx, who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_REPORT,
        HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED, subs, n, arena, audit);
    *reply = out;
    return 0;
}
