/*
 * bench_audit_report.c - a HIPAA §164.528 accounting for one patient with 1,000,000
 * disclosures over six years (reference scenario S8, issue 4): report time, proof size, and
 * the auditor's verification time, with the row counts checked against the generated truth.
 *
 * In-process, as hie-node wires it: the node's state (hie_node__state_open) with the data key,
 * the audit signing key, and audit_append commands built by the node's own code
 * (hie_node__audit_build) and applied through the state machine in batches of 1,000, their
 * times spread over six years; 70% are treatment disclosures (excluded from an accounting by
 * §164.528), 30% for other purposes. Then the report is paged (1,000 entries a page) through
 * hie_node__audit_report_prepare twice: the §164.528 accounting (exclusions omitted) and the
 * full listing; every entry is verified as an auditor would (leaf hash, inclusion proof
 * against the page's signed checkpoint, subject commitment). Baseline in the same run: a raw
 * LMDB cursor scan of the same records (the cost of reading them, without proofs).
 *
 *   bench_audit_report [--smoke] [--disclosures N] [--subjects K] [--tpo-run N] [--keep]
 *
 * --subjects K: each disclosure names K patients (the one reported on first), as a PDQ answer
 * does; --tpo-run N: the first N are all treatment (excluded), a long run the accounting's
 * pages skip (both for the regression of 2026-12-01: skipped entries filled the page's
 * memory, and such an accounting failed for good).
 */
#include "harness.h"
#include "node_int.h"

#include "hie/mpi_store.h"

#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BATCH 1000u
#define PAGE 1000u
#define SIX_YEARS_MS (6ll * 365 * 24 * 3600 * 1000)
#define START_MS 1609459200000ll /* 2021-01-01 */
#define EUID "E000000000042"

#define SUBJECTS_MAX 50u

struct bench {
    node_ctx_t ctx;
    hie_audit_vkey_t vkey;
    uint64_t n, excluded, tpo_run;
    unsigned subjects;
};

static int
setup(struct bench *b, const char *root)
{
    char key[BENCH_PATH_BYTES], akey[BENCH_PATH_BYTES], data[BENCH_PATH_BYTES];
    snprintf(key, sizeof(key), "%s/mpi.key", root);
    snprintf(akey, sizeof(akey), "%s/audit.key", root);
    snprintf(data, sizeof(data), "%s/data", root);
    snprintf(b->ctx.cfg.node_id, sizeof(b->ctx.cfg.node_id), "%s", BENCH_NODE_ID);
    snprintf(b->ctx.cfg.audit_origin, sizeof(b->ctx.cfg.audit_origin), "hiebroker/bench");
    int rc = mkdir(data, 0700) == 0 ? 0 : HIE_ESTORAGE;
    rc = rc ? rc : hie_mpi_key_generate(key);
    rc = rc ? rc : hie_audit_signer_generate(akey);
    rc = rc ? rc : hie_audit_signer_load(&b->ctx.audit_signer, akey, "hiebroker/bench");
    rc = rc ? rc : hie_node__state_open(&b->ctx.state, data, 64ull << 30, BENCH_NODE_ID, NULL);
    rc = rc ? rc : hie_node__state_mpi_key_load(b->ctx.state, key, 0);
    if (rc == 0) {
        hie_audit_signer_vkey(b->ctx.audit_signer, &b->vkey);
        rc = hie_audit_vkey_format(&b->vkey, b->ctx.audit_vkey, sizeof(b->ctx.audit_vkey));
    }
    return rc;
}

/* Disclosure i: the command bytes (hie_mem) as the node's worker would build them. */
static int
build_one(struct bench *b, uint64_t i, uint8_t **buf, size_t *len)
{
    static const char *const orgs[] = {"general-hospital", "st-mary-hospital",
        "riverside-clinic", "county-lab"};
    hie_arena_t *arena = NULL;
    char id[40];
    snprintf(id, sizeof(id), "r%lu", (unsigned long)i);
    bool treat = i < b->tpo_run || i % 10 < 7;
    node_who_t who = {orgs[i % 4], NULL, treat ? HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT
        : HIE__V1__PURPOSE_OF_USE__PURPOSE_PUBLIC_HEALTH, id, NULL};
    node_subject_t s[SUBJECTS_MAX];
    char others[SUBJECTS_MAX][24];
    for (unsigned k = 0; k < b->subjects; k++) {
        snprintf(others[k], sizeof(others[k]), "E00000001%04u", k);
        s[k] = (node_subject_t){k == 0 ? EUID : others[k], {0}, NULL, 0, NULL, 0};
        s[k].decision.decision = HIE_CONSENT_PERMIT;
        s[k].decision.reason = "consent-permit";
        s[k].decision.accounting_excluded = treat;
    }
    node_audit_cmd_t a = {0};
    int rc = hie_arena_create(&arena, 1u << 20);
    if (rc == 0) {
        hie_node__audit_build(&b->ctx, &who, HIE__V1__AUDIT_ACTION__AUDIT_ACTION_PDQ,
            HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED, s, b->subjects, arena, &a);
        rc = a.build_rc;
    }
    if (rc == 0) { /* spread over six years, in order */
        int64_t t = START_MS + (int64_t)((double)i / (double)b->n * (double)SIX_YEARS_MS);
        a.cmd.time_ms = t;
        a.cmd.audit_append->record->time_ms = t;
        rc = hie_proto_pack(&a.cmd.base, HIE_LOG_COMMAND_BYTES_MAX, buf, len);
    }
    b->excluded += treat;
    hie_arena_destroy(&arena);
    return rc;
}

static int
load(struct bench *b)
{
    static uint8_t *cmds[BATCH];
    static size_t lens[BATCH];
    hie_cluster_entry_t entries[BATCH];
    hie_cluster_result_t results[BATCH];
    hie_cluster_fsm_t fsm = hie_node__state_fsm(b->ctx.state);
    int rc = 0;
    for (uint64_t first = 0; rc == 0 && first < b->n; first += BATCH) {
        size_t n = b->n - first < BATCH ? (size_t)(b->n - first) : BATCH;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            rc = build_one(b, first + i, &cmds[i], &lens[i]);
            entries[i] = (hie_cluster_entry_t){first + i + 1, hie_span(cmds[i], lens[i])};
            results[i] = (hie_cluster_result_t){NULL, 0};
        }
        rc = rc ? rc : fsm.apply(fsm.ctx, entries, n, results);
        for (size_t i = 0; i < n; i++) {
            hie_mem_free(cmds[i], lens[i]);
            hie_mem_free(results[i].buf, results[i].len);
        }
    }
    return rc;
}

struct verify_stats {
    uint64_t entries, proof_bytes, checkpoint_bytes, pages;
    uint64_t report_ns, verify_ns;
    int bad;
};

/* The auditor's side: checkpoint signature, then every entry's inclusion and commitment. */
static void
page_verify(const struct bench *b, const Hie__V1__AuditReportReply *r, struct verify_stats *v)
{
    hie_audit_checkpoint_t cp;
    uint64_t t0 = hie_time_mono_ns();
    int rc = hie_audit_checkpoint_parse(hie_span((const uint8_t *)r->checkpoint,
        strlen(r->checkpoint)), &cp, NULL);
    rc = rc ? rc : hie_audit_checkpoint_verify(&cp, &b->vkey, b->ctx.cfg.audit_origin);
    v->bad += rc != 0 || cp.head.size != r->tree_size;
    for (size_t i = 0; i < r->n_entries; i++) {
        const Hie__V1__AuditReportEntry *e = r->entries[i];
        hie_audit_hash_t leaf;
        hie_audit_proof_t proof = {0};
        hie_audit_leaf_hash(hie_span(e->record.data, e->record.len), &leaf);
        for (size_t k = 0; k < e->n_inclusion_proof && k < HIE_AUDIT_PROOF_HASHES_MAX; k++) {
            memcpy(proof.hashes[k].bytes, e->inclusion_proof[k].data, HIE_AUDIT_HASH_BYTES);
        }
        proof.count = e->n_inclusion_proof;
        v->bad += hie_audit_inclusion_verify(e->leaf_index, r->tree_size, &leaf, &proof,
            &cp.head.root) != 0;
        Hie__V1__AuditRecord *rec = hie__v1__audit_record__unpack(NULL, e->record.len,
            e->record.data);
        uint8_t h[32];
        crypto_hash_sha256(h, e->subjects[0].data, e->subjects[0].len);
        v->bad += rec == NULL || e->n_subjects != 1 ||
                  memcmp(h, rec->subject_commitments[e->subject_positions[0]].data, 32) != 0;
        hie__v1__audit_record__free_unpacked(rec, NULL);
        v->proof_bytes += e->n_inclusion_proof * HIE_AUDIT_HASH_BYTES;
    }
    v->checkpoint_bytes += strlen(r->checkpoint);
    v->entries += r->n_entries;
    v->verify_ns += hie_time_mono_ns() - t0;
}

/* Pages through the accounting; include_excluded: the full listing. */
static int
report_all(struct bench *b, bool include_excluded, struct verify_stats *v)
{
    char token[128] = ""; /* an accounting token is 68 hex digits */
    node_who_t who = {"state-auditor", NULL, HIE__V1__PURPOSE_OF_USE__PURPOSE_OPERATIONS, "a1",
        NULL};
    for (uint64_t page = 0; page < b->n / PAGE + 10; page++) {
        Hie__V1__AuditReportRequest q = HIE__V1__AUDIT_REPORT_REQUEST__INIT;
        q.kind = HIE__V1__AUDIT_REPORT_KIND__AUDIT_REPORT_ACCOUNTING;
        q.euid = (char *)(uintptr_t)EUID;
        q.page_size = PAGE;
        q.page_token = token;
        q.include_excluded = include_excluded;
        hie_arena_t *arena = NULL;
        Hie__V1__AuditReportReply *r = NULL;
        node_audit_cmd_t a = {0};
        node_mpi_err_t e = {0};
        uint64_t t0 = hie_time_mono_ns();
        int rc = hie_arena_create(&arena, NODE_EXCHANGE_ARENA_BYTES); /* as a worker's */
        rc = rc ? rc : hie_node__audit_report_prepare(&b->ctx, &who, &q, arena, &r, &a, &e);
        v->report_ns += hie_time_mono_ns() - t0;
        if (rc != 0) {
            fprintf(stderr, "bench: report page %lu failed: %s\n", (unsigned long)page,
                e.message != NULL ? e.message : hie_strerror(rc));
            hie_arena_destroy(&arena);
            return rc;
        }
        page_verify(b, r, v);
        v->pages++;
        snprintf(token, sizeof(token), "%s", r->next_page_token);
        hie_arena_destroy(&arena);
        if (token[0] == '\0') {
            return 0;
        }
    }
    return HIE_ELIMIT;
}

/* Baseline: read the same records with a raw cursor (no index, no proofs, no sealing). */
static uint64_t
raw_scan_ns(struct bench *b, uint64_t *count)
{
    MDB_env *env = hie_node__state_env(b->ctx.state);
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint64_t t0 = hie_time_mono_ns(), sum = 0;
    *count = 0;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0 &&
        mdb_dbi_open(txn, "audit_rec", 0, &dbi) == 0 && mdb_cursor_open(txn, dbi, &cur) == 0) {
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            sum += ((const uint8_t *)v.mv_data)[0];
            (*count)++;
        }
        mdb_cursor_close(cur);
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return hie_time_mono_ns() - t0 + (sum & 0); /* sum keeps the reads */
}

static void
print_report(const char *what, const struct verify_stats *v, uint64_t want, uint64_t raw_ns)
{
    double secs = (double)v->report_ns / 1e9;
    printf("%-10s entries=%lu expected=%lu %s pages=%lu report_s=%.2f (%.0f entries/s, %.2fx "
        "the raw scan) verify_s=%.2f proof_bytes_per_entry=%.0f checkpoint_bytes=%lu bad=%d\n",
        what, (unsigned long)v->entries, (unsigned long)want, v->entries == want ? "exact"
        : "MISMATCH", (unsigned long)v->pages, secs, (double)v->entries / secs,
        raw_ns > 0 ? (double)v->report_ns / (double)raw_ns : 0.0, (double)v->verify_ns / 1e9,
        v->entries ? (double)v->proof_bytes / (double)v->entries : 0.0,
        (unsigned long)(v->pages ? v->checkpoint_bytes / v->pages : 0), v->bad);
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {{"smoke", no_argument, NULL, 's'},
        {"disclosures", required_argument, NULL, 'n'}, {"keep", no_argument, NULL, 'k'},
        {"subjects", required_argument, NULL, 'j'}, {"tpo-run", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0}};
    static struct bench b;
    bool keep = false;
    b.n = 1000000;
    b.subjects = 1;
    for (int ch; (ch = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        if (ch == 's') {
            b.n = 20000;
        } else if (ch == 'n') {
            b.n = strtoull(optarg, NULL, 10);
        } else if (ch == 'k') {
            keep = true;
        } else if (ch == 'j') {
            b.subjects = (unsigned)strtoul(optarg, NULL, 10);
        } else if (ch == 't') {
            b.tpo_run = strtoull(optarg, NULL, 10);
        } else {
            fprintf(stderr, "usage: bench_audit_report [--smoke] [--disclosures N] "
                "[--subjects K] [--tpo-run N] [--keep]\n");
            return 2;
        }
    }
    if (b.subjects < 1 || b.subjects > SUBJECTS_MAX) {
        fprintf(stderr, "bench: --subjects must be 1..%u\n", SUBJECTS_MAX);
        return 2;
    }
    if (b.n < 100 || b.n > 10000000) {
        fprintf(stderr, "bench: --disclosures must be 100..10000000\n");
        return 2;
    }
    char root[BENCH_ROOT_BYTES];
    int rc = bench_setup(root, sizeof(root), keep);
    rc = rc ? rc : setup(&b, root);
    uint64_t t0 = hie_time_mono_ns();
    rc = rc ? rc : load(&b);
    if (rc != 0) {
        fprintf(stderr, "bench: setup or load failed: %s\n", hie_strerror(rc));
        return 1;
    }
    printf("# bench_audit_report disclosures=%lu (one patient, 6 years, %lu TPO-excluded, "
        "%u subjects each) load_s=%.1f\n", (unsigned long)b.n, (unsigned long)b.excluded,
        b.subjects,
        (double)(hie_time_mono_ns() - t0) / 1e9);
    uint64_t raw_count = 0, raw_ns = raw_scan_ns(&b, &raw_count);
    struct verify_stats acct = {0}, full = {0};
    rc = report_all(&b, false, &acct);
    rc = rc ? rc : report_all(&b, true, &full);
    if (rc == 0) {
        print_report("accounting", &acct, b.n - b.excluded, raw_ns);
        print_report("full", &full, b.n, raw_ns);
        printf("result bench=audit_report disclosures=%lu accounting_rows=%lu full_report_s=%.2f"
            " verify_s=%.2f proof_bytes_per_entry=%.0f raw_scan_s=%.2f %s\n",
            (unsigned long)b.n, (unsigned long)acct.entries, (double)full.report_ns / 1e9,
            (double)full.verify_ns / 1e9, (double)full.proof_bytes / (double)full.entries,
            (double)raw_ns / 1e9, acct.bad + full.bad == 0 && acct.entries == b.n - b.excluded
            && full.entries == b.n ? "ok" : "FAILED");
    }
    hie_node__state_close(&b.ctx.state);
    hie_audit_signer_destroy(&b.ctx.audit_signer);
    return rc == 0 && acct.bad + full.bad == 0 && full.entries == b.n ? 0 : 1;
}
