/*
 * ctl_audit.c - `hiectl audit verify` and `hiectl audit vkey`: offline checks of a node's audit
 * log, run on the node's own files (the node stopped, or a copy of its data directory).
 *
 * verify recomputes every leaf hash from the stored audit records and every stored subtree
 * hash (hie_audit_tree_verify), then checks every stored checkpoint: its signature by the
 * node's key, and that the tree's root at the checkpoint's size is the signed root. The last
 * checkpoint (or one the operator or an auditor supplies with --checkpoint, e.g. from a
 * witness) anchors the tree: a record edited, deleted, reordered or truncated, a stored hash
 * edited, or a fork (a checkpoint the tree does not extend) is reported with where it starts.
 * With the data key, every sealed subject must open under its commitment from the leaf, and
 * the patient (either key version), organization and break-glass indexes must hold exactly
 * the entries the records call for: the tree does not cover the indexes, and an entry removed
 * from one would hide a disclosure from the reports that read it.
 * Exit codes: 0 verified, 1 tampering found, 2 usage or files.
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define CTL_NOTE_FILE_BYTES_MAX (HIE_AUDIT_NOTE_BYTES_MAX + 1u)
#define CTL_ANCHOR_FILE_BYTES_MAX (1024ull * 1024u * 1024u) /* a saved report, as hie reads */

struct verify {
    node_audit_t *au;
    hie_audit_signer_t *signer;
    hie_audit_vkey_t vkey;
    const char *origin;
    MDB_txn *txn;
    hie_audit_tree_head_t last;       /* the largest verified checkpoint */
    uint64_t checkpoints;
    uint64_t bad_checkpoints;
    /* index entries the records call for, found in the indexes */
    uint64_t want[3];                 /* by enum node_audit_index */
    uint64_t index_bad;               /* entries the indexes lack */
    uint64_t prev_log_index;          /* the record before's command (non-decreasing) */
    bool said;                        /* the failing record's fault is printed already */
};

/* Errors of the machine (memory, storage), not of the data: verify fails, exit 2, and does
 * not call them tampering. */
static bool
operational(int rc)
{
    return rc == HIE_ENOMEM || rc == HIE_ESTORAGE || (rc < 0 && rc > -4096);
}

static const char *const index_names[3] = {"patient", "organization", "break-glass"};

static const char *
fault_name(enum hie_audit_fault f)
{
    static const char *const names[] = {"none", "record missing", "leaf hash missing",
        "record does not match its leaf hash", "subtree hash missing",
        "subtree hash does not match", "malformed stored value", "data beyond the tree size",
        "tree smaller than the checkpoint (truncated)",
        "root differs from the checkpoint (rewritten or forked)"};
    return (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : "?";
}

static int
leaf_fn(void *ctx, MDB_txn *txn, uint64_t index, hie_span_t *entry)
{
    struct verify *v = ctx;
    return hie_node__audit_record(v->au, txn, index, entry);
}

/* One checkpoint note: signed by our key, and the tree's root at its size is its root. */
static int
check_one(struct verify *v, hie_span_t note, const char *where)
{
    hie_audit_checkpoint_t cp;
    hie_audit_hash_t root;
    hie_errinfo_t info = {0};
    int rc = hie_audit_checkpoint_parse(note, &cp, &info);
    rc = rc ? rc : hie_audit_checkpoint_verify(&cp, &v->vkey, v->origin);
    if (rc != 0) {
        printf("checkpoint %s: bad signature or format (%s)\n", where, hie_strerror_name(rc));
        return HIE_ECORRUPT;
    }
    uint64_t size = 0;
    rc = hie_audit_tree_size(hie_node__audit_tree(v->au), v->txn, &size);
    if (rc == 0 && cp.head.size > size) {
        printf("checkpoint %s: size %" PRIu64 " but the tree has %" PRIu64 " records: "
            "truncated\n", where, cp.head.size, size);
        return HIE_ECORRUPT;
    }
    rc = rc ? rc : hie_audit_tree_root(hie_node__audit_tree(v->au), v->txn, cp.head.size, &root);
    if (rc == 0 && memcmp(root.bytes, cp.head.root.bytes, HIE_AUDIT_HASH_BYTES) != 0) {
        printf("checkpoint %s: size %" PRIu64 ": the tree's root differs: records before it "
            "were rewritten, or the log forked\n", where, cp.head.size);
        return HIE_ECORRUPT;
    }
    if (rc == 0 && cp.head.size >= v->last.size) {
        v->last = cp.head;
    }
    return rc;
}

static int
ckpt_fn(void *ctx, uint64_t size, hie_span_t note)
{
    struct verify *v = ctx;
    char where[32];
    snprintf(where, sizeof(where), "#%" PRIu64, size);
    v->checkpoints++;
    if (check_one(v, note, where) != 0) {
        v->bad_checkpoints++;
    }
    return 0;
}

/* Whether index `which` holds entry (key, val), either key version for a patient; a missing
 * one is printed and counted. */
static void
index_expect(struct verify *v, enum node_audit_index which, hie_span_t key, hie_span_t key_v1,
    hie_span_t val, uint64_t leaf)
{
    v->want[which]++;
    int rc = hie_node__audit_index_has(v->au, v->txn, which, key, val);
    if (rc == HIE_ENOTFOUND && key_v1.len > 0) {
        rc = hie_node__audit_index_has(v->au, v->txn, which, key_v1, val);
    }
    if (rc == HIE_ESTATE) { /* a patient index in the former layout: not checked */
        v->want[which]--;
    } else if (rc != 0) {
        v->index_bad++;
        printf("record %" PRIu64 ": missing from the %s index (%s): reports would leave it "
               "out\n", leaf, index_names[which], hie_strerror_name(rc));
    }
}

/* Subject p of record i (its plaintext): the patient index holds its EUID's entry. */
static int
subject_indexed(struct verify *v, const hie_mpi_key_t *key, const Hie__V1__AuditRecord *r,
    uint64_t i, size_t p, hie_span_t plain, hie_arena_t *arena)
{
    ProtobufCMessage *m = NULL;
    int rc = hie_proto_unpack(&hie__v1__audit_subject__descriptor, plain, arena, &m);
    const Hie__V1__AuditSubject *s = (const Hie__V1__AuditSubject *)m;
    if (rc != 0 || s->euid == NULL || s->euid[0] == '\0') {
        return rc != 0 ? rc : HIE_ECORRUPT;
    }
    uint8_t k2[HIE_PROTO_REC_HASH_BYTES], k1[HIE_PROTO_REC_HASH_BYTES], val[18];
    hie_node__audit_subject_key(key, s->euid, k2);
    hie_node__audit_subject_key_v1(key, s->euid, k1);
    hie_store_be64(val, (uint64_t)r->time_ms);
    hie_store_be64(val + 8, i);
    val[16] = (uint8_t)(p >> 8);
    val[17] = (uint8_t)p;
    index_expect(v, AUDIT_INDEX_PATIENT, hie_span(k2, sizeof(k2)), hie_span(k1, sizeof(k1)),
        hie_span(val, sizeof(val)), i);
    return 0;
}

/* Record i's organization and break-glass index entries. */
static void
record_indexed(struct verify *v, const Hie__V1__AuditRecord *r, uint64_t i)
{
    uint8_t val[16];
    hie_store_be64(val, (uint64_t)r->time_ms);
    hie_store_be64(val + 8, i);
    if (r->requester_org != NULL && r->requester_org[0] != '\0') {
        index_expect(v, AUDIT_INDEX_ORG, hie_span(r->requester_org, strlen(r->requester_org)),
            hie_span(NULL, 0), hie_span(val, sizeof(val)), i);
    }
    if (r->break_glass) {
        index_expect(v, AUDIT_INDEX_BREAK_GLASS, hie_span(NULL, 0), hie_span(NULL, 0),
            hie_span(val, sizeof(val)), i);
    }
}

/* 0 when c is SHA-256 of plain (the subject's commitment), else HIE_ECORRUPT. */
static int
commitment_holds(hie_span_t plain, const ProtobufCBinaryData *c)
{
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, plain.ptr, plain.len);
    return c->len == sizeof(h) && sodium_memcmp(h, c->data, sizeof(h)) == 0 ? 0 : HIE_ECORRUPT;
}

/* The sealed subjects of record i open under the commitments it carries and hash to them,
 * and every index holds the record's entries. */
static int
record_subjects(struct verify *v, const hie_mpi_key_t *key, hie_mpi_sealer_t *opener,
    uint64_t i, hie_arena_t *arena, uint64_t *checked)
{
    hie_span_t bytes;
    ProtobufCMessage *m = NULL;
    int rc = hie_node__audit_record(v->au, v->txn, i, &bytes);
    rc = rc ? rc : hie_proto_unpack(&hie__v1__audit_record__descriptor, bytes, arena, &m);
    const Hie__V1__AuditRecord *r = (const Hie__V1__AuditRecord *)m;
    if (rc == 0 && (r->leaf_index != i || r->log_index < v->prev_log_index)) {
        /* apply stamps both: a record moved (or a hole closed up) shows here even where the
         * tree above it was rebuilt to match */
        printf("record %" PRIu64 ": stamped leaf %" PRIu64 " of command %" PRIu64 " after "
            "command %" PRIu64 ": records were moved or removed\n", i, r->leaf_index,
            r->log_index, v->prev_log_index);
        v->said = true;
        return HIE_ECORRUPT;
    }
    if (rc == 0) {
        v->prev_log_index = r->log_index;
    }
    for (size_t p = 0; rc == 0 && key != NULL && p < r->n_subject_commitments; p++) {
        hie_span_t sealed;
        size_t len = 0;
        rc = hie_node__audit_subject(v->au, v->txn, i, (uint32_t)p, &sealed);
        rc = rc ? rc : sealed.len < HIE_MPI_SEAL_NONCE_BYTES ? HIE_ECORRUPT : 0;
        uint8_t *plain = rc == 0 ? hie_arena_alloc(arena, sealed.len) : NULL;
        rc = rc ? rc : plain == NULL ? HIE_ENOMEM : 0;
        rc = rc ? rc : hie_mpi_sealer_open(opener, sealed, hie_span(
            r->subject_commitments[p].data, r->subject_commitments[p].len), plain, sealed.len,
            &len);
        /* the AEAD binds the box to the commitment; this binds the commitment to what the box
         * holds (the data key's holder could seal anything under a record's commitment) */
        rc = rc ? rc : commitment_holds(hie_span(plain, len), &r->subject_commitments[p]);
        rc = rc ? rc : subject_indexed(v, key, r, i, p, hie_span(plain, len), arena);
        if (plain != NULL) {
            sodium_memzero(plain, sealed.len);
        }
        *checked += rc == 0;
    }
    if (rc == 0) {
        record_indexed(v, r, i);
    }
    return rc;
}

/* Every index holds exactly the entries the records call for: none missing (counted as the
 * records were checked), none added. */
static int
indexes_check(struct verify *v, bool patients)
{
    int bad = v->index_bad > 0 ? HIE_ECORRUPT : 0;
    for (unsigned w = patients ? 0 : 1; w < 3; w++) {
        uint64_t have = 0;
        int rc = hie_node__audit_index_count(v->au, v->txn, (enum node_audit_index)w, &have);
        if (rc != 0) {
            return rc;
        }
        if (have > v->want[w]) {
            printf("the %s index has %" PRIu64 " entries, the records call for %" PRIu64
                   ": entries added\n", index_names[w], have, v->want[w]);
            bad = HIE_ECORRUPT;
        }
    }
    return bad;
}

/* Every record's index entries, and with the data key (NULL: not) its sealed subjects. */
static int
records_check(struct verify *v, const hie_mpi_key_t *key, uint64_t size, uint64_t *checked)
{
    hie_mpi_sealer_t *opener = NULL;
    int rc = key != NULL ? hie_mpi_sealer_create(key, &opener) : 0;
    for (uint64_t i = 0; rc == 0 && i < size; i++) {
        hie_arena_t *arena = NULL;
        rc = hie_arena_create(&arena, 4u * 1024u * 1024u);
        rc = rc ? rc : record_subjects(v, key, opener, i, arena, checked);
        hie_arena_destroy(&arena);
        if (operational(rc)) {
            fprintf(stderr, "hiectl: verify failed at record %" PRIu64 ": %s\n", i,
                hie_strerror(rc));
        } else if (rc != 0 && !v->said) {
            printf("record %" PRIu64 ": a patient entry is missing or does not match its "
                "commitment (%s)\n", i, hie_strerror_name(rc));
        }
        if (rc != 0 && !operational(rc)) {
            rc = HIE_ECORRUPT;
        }
    }
    hie_mpi_sealer_destroy(&opener);
    return rc != 0 ? rc : indexes_check(v, key != NULL);
}

static int
env_open(const node_config_t *cfg, MDB_env **env)
{
    char dir[NODE_PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/state", cfg->data_dir);
    struct stat st;
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "hiectl: no node state in %s\n", dir);
        return HIE_ENOTFOUND;
    }
    int rc = mdb_env_create(env);
    rc = rc ? rc : mdb_env_set_mapsize(*env, cfg->map_bytes);
    rc = rc ? rc : mdb_env_set_maxdbs(*env, 32);
    rc = rc ? rc : mdb_env_open(*env, dir, MDB_NOTLS | MDB_RDONLY, 0600);
    if (rc != 0) {
        fprintf(stderr, "hiectl: cannot open %s: %s\n", dir, mdb_strerror(rc));
        return HIE_ESTORAGE;
    }
    return 0;
}

/* The verifier key: --vkey text, else the node's own key file. */
static int
vkey_get(const node_config_t *cfg, const char *vkey_text, hie_audit_vkey_t *out)
{
    if (vkey_text != NULL) {
        int rc = hie_audit_vkey_parse(hie_span((const uint8_t *)vkey_text, strlen(vkey_text)),
            out);
        if (rc != 0) {
            fprintf(stderr, "hiectl: --vkey: not a verifier key (name+keyid+key)\n");
        }
        return rc;
    }
    char path[NODE_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/audit.key", cfg->data_dir);
    hie_audit_signer_t *s = NULL;
    int rc = hie_audit_signer_load(&s, path, cfg->audit_origin);
    if (rc != 0) {
        fprintf(stderr, "hiectl: cannot load %s: %s (a backup holds no key: give --vkey, from "
            "hiectl audit vkey)\n", path, hie_strerror(rc));
        return rc;
    }
    hie_audit_signer_vkey(s, out);
    hie_audit_signer_destroy(&s);
    return 0;
}

/* The --checkpoint anchor: a signed note, or a saved report (hie audit report --out), whose
 * newest checkpoint is taken, as hie audit verify --previous does. */
static int
read_anchor(const char *path, char *buf, size_t cap, size_t *len)
{
    struct stat sb;
    FILE *f = fopen(path, "rb");
    if (f == NULL || fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) ||
        (uint64_t)sb.st_size > CTL_ANCHOR_FILE_BYTES_MAX) {
        fprintf(stderr, "hiectl: --checkpoint %s: %s\n", path, f == NULL ? strerror(errno)
            : "not a regular file of at most 1 GiB");
        if (f != NULL) {
            fclose(f);
        }
        return HIE_EINVAL;
    }
    int first = getc(f);
    rewind(f);
    if (first != '{') {
        *len = fread(buf, 1, cap, f);
        fclose(f);
        if (*len == cap) {
            fprintf(stderr, "hiectl: --checkpoint %s: too large for a checkpoint\n", path);
            return HIE_EINVAL;
        }
        return 0;
    }
    json_error_t err;
    json_t *report = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
    fclose(f);
    const char *cp = json_string_value(json_object_get(report, "checkpoint"));
    *len = cp != NULL ? strlen(cp) : 0;
    if (cp == NULL || *len >= cap) {
        fprintf(stderr, "hiectl: --checkpoint %s: %s\n", path, report == NULL ? err.text
            : "a report without a checkpoint");
        json_decref(report);
        return HIE_EINVAL;
    }
    memcpy(buf, cp, *len);
    json_decref(report);
    return 0;
}

/* The anchor must at least read as a checkpoint: anything else is the operator's mistake
 * (exit 2). One that reads but whose signature does not verify is tampering (check_one): the
 * key may be the one on these same files, replaced together with a rewritten log. */
static int
anchor_check(hie_span_t note, const char *path)
{
    hie_audit_checkpoint_t cp;
    int rc = hie_audit_checkpoint_parse(note, &cp, NULL);
    if (rc != 0) {
        fprintf(stderr, "hiectl: --checkpoint %s: not a checkpoint (%s)\n", path,
            hie_strerror_name(rc));
        return HIE_EINVAL;
    }
    return 0;
}

/* The scan itself, in one read transaction; returns 0 (verified) or HIE_ECORRUPT. */
static int
verify_run(struct verify *v, const hie_mpi_key_t *key, const char *anchor_file)
{
    hie_audit_verify_report_t rep;
    int rc = hie_node__audit_checkpoints(v->au, v->txn, SIZE_MAX, ckpt_fn, v);
    if (operational(rc)) {
        fprintf(stderr, "hiectl: cannot read the checkpoints: %s\n", hie_strerror(rc));
        return rc;
    }
    bool bad = rc != 0 || v->bad_checkpoints > 0;
    if (anchor_file != NULL) {
        char note[CTL_NOTE_FILE_BYTES_MAX];
        size_t len = 0;
        rc = read_anchor(anchor_file, note, sizeof(note), &len);
        rc = rc ? rc : anchor_check(hie_span((const uint8_t *)note, len), anchor_file);
        if (rc != 0) {
            return rc;
        }
        bad = check_one(v, hie_span((const uint8_t *)note, len), anchor_file) != 0 || bad;
    }
    rc = hie_audit_tree_verify(hie_node__audit_tree(v->au), v->txn,
        v->last.size > 0 ? &v->last : NULL, &rep, leaf_fn, v);
    if (rc == HIE_ECORRUPT) {
        printf("tree: %s at level %u index %" PRIu64 "\n", fault_name(rep.fault),
            (unsigned)rep.level, rep.index);
        bad = true;
    } else if (rc != 0) {
        fprintf(stderr, "hiectl: verify failed: %s\n", hie_strerror(rc));
        return rc;
    }
    uint64_t beyond = 0;
    rc = bad ? 0 : hie_node__audit_beyond(v->au, v->txn, rep.size, &beyond);
    if (rc == HIE_ECORRUPT) {
        printf("record %" PRIu64 ": stored past the tree's size (%" PRIu64 "): the tree was "
            "cut back\n", beyond, rep.size);
        bad = true;
    } else if (rc != 0) {
        fprintf(stderr, "hiectl: verify failed: %s\n", hie_strerror(rc));
        return rc;
    }
    uint64_t subjects = 0;
    rc = bad ? 0 : records_check(v, key, rep.size, &subjects);
    if (operational(rc)) {
        return rc;
    }
    bad = bad || rc != 0;
    if (bad) {
        printf("audit log: TAMPERING DETECTED\n");
        return HIE_ECORRUPT;
    }
    printf("audit log verified: records=%" PRIu64 " subtree_hashes=%" PRIu64 " checkpoints=%"
        PRIu64 " anchored_at=%" PRIu64 " patient_entries=%" PRIu64 "%s\n", rep.leaves_checked,
        rep.nodes_checked, v->checkpoints, v->last.size, subjects,
        key == NULL ? " (no data key configured: patient entries not checked)" : "");
    if (anchor_file == NULL) {
        printf("note: anchored on the checkpoints stored in these same files (%" PRIu64
            " records after the last one); a cut made together with removing those "
            "checkpoints shows only against a checkpoint kept elsewhere: --checkpoint FILE\n",
            rep.size - v->last.size);
    }
    return 0;
}

int
hie_node__ctl_audit_verify(const node_config_t *cfg, const char *vkey_text,
    const char *anchor_file)
{
    struct verify v = {0};
    v.origin = cfg->audit_origin;
    MDB_env *env = NULL;
    hie_mpi_key_t *key = NULL;
    int rc = vkey_get(cfg, vkey_text, &v.vkey);
    if (vkey_text != NULL && rc == 0) {
        v.origin = v.vkey.name; /* C2SP: the key is named after the log's origin */
    }
    rc = rc ? rc : env_open(cfg, &env);
    if (rc == 0 && (rc = hie_node__audit_open(&v.au, env, true)) != 0) {
        fprintf(stderr, "hiectl: cannot open the audit log: %s\n", rc == HIE_ESTATE
            ? "stored in an older layout; start hie-node once to convert it"
            : hie_strerror_name(rc));
    }
    if (rc == 0 && cfg->mpi_key_file[0] != '\0' &&
        (rc = hie_mpi_key_load(&key, cfg->mpi_key_file)) != 0) {
        fprintf(stderr, "hiectl: cannot load the data key %s: %s\n", cfg->mpi_key_file,
            hie_strerror(rc)); /* configured: a verify without it would check less than asked */
    }
    rc = rc ? rc : (mdb_txn_begin(env, NULL, MDB_RDONLY, &v.txn) ? HIE_ESTORAGE : 0);
    if (rc == 0) {
        rc = verify_run(&v, key, anchor_file);
        mdb_txn_abort(v.txn);
    }
    hie_mpi_key_destroy(&key);
    hie_node__audit_close(&v.au);
    if (env != NULL) {
        mdb_env_close(env);
    }
    return rc == 0 ? 0 : rc == HIE_ECORRUPT ? 1 : 2;
}

int
hie_node__ctl_audit_vkey(const node_config_t *cfg)
{
    hie_audit_vkey_t vk;
    char text[HIE_AUDIT_VKEY_TEXT_BYTES_MAX];
    if (vkey_get(cfg, NULL, &vk) != 0 || hie_audit_vkey_format(&vk, text, sizeof(text)) != 0) {
        return 2;
    }
    printf("%s\n", text);
    return 0;
}
