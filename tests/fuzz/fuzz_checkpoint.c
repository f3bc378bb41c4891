/*
 * fuzz_checkpoint.c - libFuzzer driver for the audit log's untrusted inputs (reference
 * scenario Z4): signed-note checkpoints, verifier keys and Merkle proofs. Built with
 * replay_main.c into fuzz_checkpoint_replay, which CI runs over corpus/fuzz_checkpoint/.
 *
 * Every input is used three ways:
 *  1. as a signed note: hie_audit_checkpoint_parse() returns only documented codes, zeroes its
 *     output and names a reason on refusal; an accepted note is canonical (formatting its head
 *     again gives back its body byte for byte); verification with a fixed test key returns only
 *     documented codes, and if it accepts, re-signing the body reproduces the note's signature
 *     (Ed25519 is deterministic); cosigning an accepted note yields a note that parses and
 *     verifies under the fixed key.
 *  2. as a verifier key text: an accepted key formats and parses back to itself.
 *  3. as a proof: byte 0 picks inclusion (even) or consistency (odd), bytes 1 and 2 the two
 *     sizes (index and size, or size1 and size2; 0..65, or 0xf0.. a huge value), byte 3 where
 *     the leaf and roots come from (the reference tree's, or a palette hash), then the proof:
 *     per hash one selector byte, 0..254 a palette hash (the MTH of every range of the
 *     RFC 6962 recursion over 64 fixed leaves), 255 the next 32 raw bytes. The verdict is
 *     checked against the in-memory reference: when the leaf and roots are the reference
 *     tree's, a proof is accepted exactly when it equals the reference proof; the size edges
 *     follow their documented rules; HIE_EINVAL exactly for impossible arguments. With other
 *     leaves or roots a proof may be valid for another tree, so only the codes are checked.
 * A mismatch is HIE_ASSERT, i.e. a crash to the fuzzer.
 */
#include "hie/audit.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ORIGIN "fuzz.example/audit"
#define REF_LEAVES 64u
#define PALETTE_COUNT 256u
#define RAW_SELECTOR 255u
#define PROOF_ELEMENTS_MAX (HIE_AUDIT_PROOF_HASHES_MAX + 6u)

struct fixture {
    hie_audit_signer_t *signer;
    hie_audit_vkey_t vkey;
    hie_audit_hash_t leaves[REF_LEAVES];
    hie_audit_hash_t roots[REF_LEAVES + 1];
    hie_audit_hash_t palette[PALETTE_COUNT];
    size_t palette_count;
};

/* The fixed test key: seed bytes 0xa5 ^ i (the corpus's valid notes are signed with it). */
static hie_audit_signer_t *
fixture_signer(void)
{
    char path[96];
    uint8_t seed[HIE_AUDIT_KEY_SEED_BYTES];
    for (size_t i = 0; i < sizeof(seed); i++) {
        seed[i] = (uint8_t)(0xa5u ^ i);
    }
    snprintf(path, sizeof(path), "/tmp/hie-fuzz-checkpoint-%ld.key", (long)getpid());
    (void)unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    HIE_ASSERT(fd >= 0);
    HIE_ASSERT(write(fd, seed, sizeof(seed)) == (ssize_t)sizeof(seed));
    close(fd);
    hie_audit_signer_t *s = NULL;
    HIE_ASSERT(hie_audit_signer_load(&s, path, FUZZ_ORIGIN) == 0);
    (void)unlink(path);
    return s;
}

/* Leaves i = leaf hash of the two bytes (i, 0x5a); the palette is MTH(D[a:b]) for every range
 * of the recursion: a a multiple of a power of two >= b - a (256 ranges for 64 leaves). */
static const struct fixture *
fx(void)
{
    static struct fixture f;
    if (f.signer != NULL) {
        return &f;
    }
    for (size_t i = 0; i < REF_LEAVES; i++) {
        uint8_t e[2] = {(uint8_t)i, 0x5a};
        hie_audit_leaf_hash(hie_span(e, sizeof(e)), &f.leaves[i]);
    }
    for (uint64_t n = 0; n <= REF_LEAVES; n++) {
        HIE_ASSERT(hie_audit_ref_root(f.leaves, n, &f.roots[n]) == 0);
    }
    for (uint64_t a = 0; a < REF_LEAVES; a++) {
        uint64_t span = a == 0 ? REF_LEAVES : (a & (~a + 1)); /* lowest set bit */
        for (uint64_t b = a + 1; b <= a + span && b <= REF_LEAVES; b++) {
            HIE_ASSERT(f.palette_count < PALETTE_COUNT);
            HIE_ASSERT(hie_audit_ref_root(f.leaves + a, b - a, &f.palette[f.palette_count++]) ==
                0);
        }
    }
    HIE_ASSERT(f.palette_count == PALETTE_COUNT);
    f.signer = fixture_signer();
    hie_audit_signer_vkey(f.signer, &f.vkey);
    return &f;
}

static bool
hash_eq(const hie_audit_hash_t *a, const hie_audit_hash_t *b)
{
    return memcmp(a->bytes, b->bytes, HIE_AUDIT_HASH_BYTES) == 0;
}

/* ---- 1. signed notes ---------------------------------------------------------------------- */

static void
check_resign(const hie_audit_checkpoint_t *cp, bool ours)
{
    const struct fixture *f = fx();
    char note[HIE_AUDIT_NOTE_SIGNED_BYTES_MAX];
    size_t len = 0;
    HIE_ASSERT(hie_audit_checkpoint_sign(f->signer, cp->origin, &cp->head, note, sizeof(note),
        &len) == 0);
    HIE_ASSERT(len > cp->body.len);
    HIE_ASSERT(memcmp(note, cp->body.ptr, cp->body.len) == 0); /* canonical: same body */
    if (!ours) {
        return;
    }
    hie_audit_checkpoint_t again;
    HIE_ASSERT(hie_audit_checkpoint_parse(hie_span(note, len), &again, NULL) == 0);
    HIE_ASSERT(again.sigs_count == 1);
    bool found = false;
    for (size_t i = 0; i < cp->sigs_count; i++) {
        found |= cp->sigs[i].key_id == f->vkey.key_id && cp->sigs[i].sig_bytes == 64 &&
                 memcmp(cp->sigs[i].sig, again.sigs[0].sig, 64) == 0;
    }
    HIE_ASSERT(found);
}

static void
check_cosign(hie_span_t note_in, int verify_rc)
{
    const struct fixture *f = fx();
    char out[HIE_AUDIT_NOTE_BYTES_MAX + 1];
    size_t len = 0;
    int rc = hie_audit_checkpoint_cosign(f->signer, note_in, out, sizeof(out), &len);
    HIE_ASSERT(rc == 0 || rc == HIE_EINVAL || rc == HIE_ELIMIT);
    if (rc != 0) {
        HIE_ASSERT(len == 0);
        return;
    }
    HIE_ASSERT(verify_rc == HIE_ENOTFOUND); /* not yet signed by the fixed key */
    hie_audit_checkpoint_t cp;
    HIE_ASSERT(hie_audit_checkpoint_parse(hie_span(out, len), &cp, NULL) == 0);
    HIE_ASSERT(hie_audit_checkpoint_verify(&cp, &f->vkey, cp.origin) == 0);
}

static void
fuzz_note(const uint8_t *data, size_t size)
{
    const struct fixture *f = fx();
    hie_audit_checkpoint_t cp;
    hie_errinfo_t info = {0};
    int rc = hie_audit_checkpoint_parse(hie_span(data, size), &cp, &info);
    HIE_ASSERT(rc == 0 || rc == HIE_EPROTO || rc == HIE_ELIMIT);
    if (rc != 0) {
        HIE_ASSERT(info.reason != NULL && info.field != NULL);
        HIE_ASSERT(cp.sigs_count == 0 && cp.head.size == 0 && cp.body.len == 0);
        HIE_ASSERT(cp.origin[0] == '\0');
        return;
    }
    HIE_ASSERT(cp.sigs_count >= 1 && cp.sigs_count <= HIE_AUDIT_NOTE_SIGNATURES_MAX);
    HIE_ASSERT(cp.body.ptr == data && cp.body.len < size);
    HIE_ASSERT(cp.body.ptr[cp.body.len - 1] == '\n' && data[cp.body.len] == '\n');
    HIE_ASSERT(strlen(cp.origin) >= 1 && strlen(cp.origin) <= HIE_AUDIT_ORIGIN_BYTES_MAX);
    HIE_ASSERT(cp.head.size <= HIE_AUDIT_TREE_SIZE_MAX);
    for (size_t i = 0; i < cp.sigs_count; i++) {
        HIE_ASSERT(cp.sigs[i].name.len >= 1 && cp.sigs[i].sig_bytes >= 1);
        HIE_ASSERT(cp.sigs[i].name.ptr > data && cp.sigs[i].name.ptr < data + size);
    }
    int vrc = hie_audit_checkpoint_verify(&cp, &f->vkey, cp.origin);
    HIE_ASSERT(vrc == 0 || vrc == HIE_ENOTFOUND || vrc == HIE_EDENIED);
    HIE_ASSERT(hie_audit_checkpoint_verify(&cp, &f->vkey, "") == HIE_EDENIED); /* origin */
    check_resign(&cp, vrc == 0);
    check_cosign(hie_span(data, size), vrc);
}

/* ---- 2. verifier keys --------------------------------------------------------------------- */

static void
fuzz_vkey(const uint8_t *data, size_t size)
{
    hie_audit_vkey_t v, back;
    char text[HIE_AUDIT_VKEY_TEXT_BYTES_MAX];
    int rc = hie_audit_vkey_parse(hie_span(data, size), &v);
    HIE_ASSERT(rc == 0 || rc == HIE_EINVAL || rc == HIE_ELIMIT);
    if (rc != 0) {
        HIE_ASSERT(v.key_id == 0 && v.name[0] == '\0');
        return;
    }
    HIE_ASSERT(hie_audit_vkey_format(&v, text, sizeof(text)) == 0);
    HIE_ASSERT(strlen(text) == size); /* same length; the hex digits may change case */
    HIE_ASSERT(hie_audit_vkey_parse(hie_span(text, strlen(text)), &back) == 0);
    HIE_ASSERT(memcmp(&v, &back, sizeof(v)) == 0);
}

/* ---- 3. proofs against the reference ------------------------------------------------------ */

static uint64_t
pick_size(uint8_t b)
{
    static const uint64_t big[16] = {HIE_AUDIT_TREE_SIZE_MAX, HIE_AUDIT_TREE_SIZE_MAX - 1,
        HIE_AUDIT_TREE_SIZE_MAX + 1, UINT64_MAX, UINT64_MAX - 1, 1ull << 32, (1ull << 32) + 1,
        (1ull << 40) + 3, 1ull << 62, (1ull << 62) - 1, 65, 127, 128, 129, 1000, 1023};
    return b < 0xf0 ? b % (REF_LEAVES + 2) : big[b - 0xf0];
}

/* Decodes the proof from data. proof->count is the number of hashes named, which may exceed
 * 64: then only the first 64 are stored, and the verifier must refuse before reading any. */
static void
read_proof(const uint8_t *data, size_t size, hie_audit_proof_t *proof)
{
    const struct fixture *f = fx();
    size_t pos = 0, n = 0;
    memset(proof, 0, sizeof(*proof));
    while (pos < size && n < PROOF_ELEMENTS_MAX) {
        uint8_t s = data[pos++];
        hie_audit_hash_t h;
        if (s == RAW_SELECTOR) {
            if (size - pos < HIE_AUDIT_HASH_BYTES) {
                break;
            }
            memcpy(h.bytes, data + pos, HIE_AUDIT_HASH_BYTES);
            pos += HIE_AUDIT_HASH_BYTES;
        } else {
            h = f->palette[s];
        }
        if (n < HIE_AUDIT_PROOF_HASHES_MAX) {
            proof->hashes[n] = h;
        }
        n++;
    }
    proof->count = n;
}

static bool
proof_eq(const hie_audit_proof_t *a, const hie_audit_proof_t *b)
{
    return a->count == b->count &&
           memcmp(a->hashes, b->hashes, a->count * HIE_AUDIT_HASH_BYTES) == 0;
}

static void
fuzz_inclusion(uint64_t index, uint64_t size, uint8_t sel, const hie_audit_proof_t *p)
{
    const struct fixture *f = fx();
    bool ref_leaf = (sel & 1u) == 0 && index < REF_LEAVES;
    bool ref_root = (sel & 2u) == 0 && size <= REF_LEAVES;
    const hie_audit_hash_t *leaf = ref_leaf ? &f->leaves[index] : &f->palette[sel];
    const hie_audit_hash_t *root = ref_root ? &f->roots[size] : &f->palette[sel ^ 0x5a];
    int rc = hie_audit_inclusion_verify(index, size, leaf, p, root);
    HIE_ASSERT(rc == 0 || rc == HIE_EINVAL || rc == HIE_ECORRUPT);
    bool invalid = size > HIE_AUDIT_TREE_SIZE_MAX || p->count > HIE_AUDIT_PROOF_HASHES_MAX ||
                   index >= size;
    HIE_ASSERT((rc == HIE_EINVAL) == invalid);
    if (invalid || !ref_leaf || !ref_root) {
        return; /* another tree may have this leaf and root */
    }
    hie_audit_proof_t want;
    HIE_ASSERT(hie_audit_ref_inclusion_proof(f->leaves, size, index, &want) == 0);
    HIE_ASSERT((rc == 0) == proof_eq(p, &want));
}

static void
fuzz_consistency(uint64_t s1, uint64_t s2, uint8_t sel, const hie_audit_proof_t *p)
{
    const struct fixture *f = fx();
    bool ref1 = (sel & 1u) == 0 && s1 <= REF_LEAVES, ref2 = (sel & 2u) == 0 && s2 <= REF_LEAVES;
    const hie_audit_hash_t *r1 = ref1 ? &f->roots[s1] : &f->palette[sel];
    const hie_audit_hash_t *r2 = ref2 ? &f->roots[s2] : &f->palette[sel & 0xfc];
    int rc = hie_audit_consistency_verify(s1, s2, r1, r2, p);
    HIE_ASSERT(rc == 0 || rc == HIE_EINVAL || rc == HIE_ECORRUPT);
    bool invalid = s2 > HIE_AUDIT_TREE_SIZE_MAX || p->count > HIE_AUDIT_PROOF_HASHES_MAX ||
                   s1 > s2;
    HIE_ASSERT((rc == HIE_EINVAL) == invalid);
    if (invalid) {
        return;
    }
    if (s1 == 0 || s1 == s2) { /* the documented edges, whatever the roots */
        bool ok = p->count == 0 && (s1 != 0 || hash_eq(r1, &f->roots[0])) &&
                  (s1 != s2 || hash_eq(r1, r2));
        HIE_ASSERT((rc == 0) == ok);
        return;
    }
    if (!ref1 || !ref2) {
        return;
    }
    hie_audit_proof_t want;
    HIE_ASSERT(hie_audit_ref_consistency_proof(f->leaves, s1, s2, &want) == 0);
    HIE_ASSERT((rc == 0) == proof_eq(p, &want));
}

static void
fuzz_proof(const uint8_t *data, size_t size)
{
    if (size < 4) {
        return;
    }
    hie_audit_proof_t proof;
    read_proof(data + 4, size - 4, &proof);
    uint64_t a = pick_size(data[1]), b = pick_size(data[2]);
    if ((data[0] & 1u) == 0) {
        fuzz_inclusion(a, b, data[3], &proof);
    } else {
        fuzz_consistency(a, b, data[3], &proof);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fx();
    fuzz_note(data, size);
    fuzz_vkey(data, size);
    fuzz_proof(data, size);
    return 0;
}
