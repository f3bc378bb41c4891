/*
 * hie/audit.h - the tamper-evident audit log core: an RFC 6962 / RFC 9162 Merkle tree over the
 * node's audit records, stored in LMDB, its inclusion and consistency proofs, and C2SP signed
 * checkpoints (tlog-checkpoint in a signed note, Ed25519) made with the node's signing key.
 *
 * Three parts:
 *  - Merkle hashing (merkle.c), pure: leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || L
 *    || R), the tree of n leaves split at the largest power of two below n, the empty tree's
 *    hash SHA-256(""). In-memory reference root and proof generation (O(n), for tests, tools
 *    and fuzzing), and proof verification exactly as RFC 9162 2.1.3.2 and 2.1.4.2 say.
 *  - The tree in LMDB (audit_tree.c): one database "audit_tree" in the caller's environment
 *    (the node's state env), value the 32-byte hash. Level 0 holds every leaf hash; level k
 *    index i holds the hash of the COMPLETE aligned subtree over leaves [i * 2^k,
 *    (i + 1) * 2^k), written the moment its last leaf is appended and never changed
 *    afterwards. Keys are in write order: the leaf that completed the node, ((i + 1) << k) - 1
 *    (8 bytes, big-endian), then the level (1 byte). The 1-byte key 0x00 holds the tree size
 *    (8 bytes, big-endian); no key means an empty tree. Every root and proof for any
 *    size up to the current one is assembled from these complete subtrees in O(log n) reads,
 *    so proofs for an old checkpoint stay available without keeping old roots.
 *  - Checkpoints (checkpoint.c): the body "<origin>\n<size>\n<base64 root>\n" signed per C2SP
 *    signed-note with Ed25519 (signature type 0x01, key ID = SHA-256(name || 0x0a || 0x01 ||
 *    public key)[:4]); a strict, bounded parser; verification with a verifier key in the C2SP
 *    "vkey" text form; and the node's signing key file (a 32-byte seed, mode 0600).
 *
 * Threads: the pure functions, the parser and verification are reentrant and may run on any
 * thread. Several threads may use a tree handle at once, each with its own transaction: the
 * state machine appends in its write transaction (it is the only writer), workers build proofs
 * in read transactions. Only hie_audit_tree_append(_many), hie_audit_tree_leaf_hash and
 * hie_audit_tree_upgrade use the handle's hashing context: call them from one thread.
 * A signer is immutable after loading and may sign from any thread.
 *
 * Ownership: hashes, proofs, checkpoints, verifier keys and reports are plain structs the
 * caller owns. A parsed checkpoint borrows spans of the note bytes (body, key names): they are
 * valid while the note bytes are. Values read from LMDB are copied before a function returns,
 * so nothing returned here borrows from a transaction. The signing key's secret lives in
 * sodium_malloc memory owned by the signer, read-only, reachable only through this API, and
 * wiped by hie_audit_signer_destroy() (style.md 3.5: one owner per secret).
 *
 * Errors: HIE_EINVAL for arguments a correct caller never passes (an index past the size, a
 * proof longer than HIE_AUDIT_PROOF_HASHES_MAX, a size over HIE_AUDIT_TREE_SIZE_MAX);
 * HIE_ECORRUPT when a proof does not prove its claim or stored data fails validation;
 * HIE_EPROTO and HIE_ELIMIT for malformed or oversize notes; HIE_ESTORAGE for LMDB failures.
 * Nothing here logs (style.md 3.4): callers decide and log once.
 *
 * Limits (hie/limits.h): HIE_AUDIT_TREE_SIZE_MAX, HIE_AUDIT_PROOF_HASHES_MAX,
 * HIE_AUDIT_ORIGIN_BYTES_MAX, HIE_AUDIT_KEY_NAME_BYTES_MAX, HIE_AUDIT_NOTE_BYTES_MAX and
 * HIE_AUDIT_NOTE_SIGNATURES_MAX.
 */
#ifndef HIE_AUDIT_H
#define HIE_AUDIT_H

#include "hie/base.h"
#include "hie/limits.h"

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HIE_AUDIT_HASH_BYTES 32u
#define HIE_AUDIT_ED25519_PUBLIC_BYTES 32u
#define HIE_AUDIT_ED25519_SIG_BYTES 64u
/* The signing key file: exactly this many random bytes (the Ed25519 seed). */
#define HIE_AUDIT_KEY_SEED_BYTES 32u
/* The LMDB database the tree uses (the caller's env needs a free slot in mdb_env_set_maxdbs). */
#define HIE_AUDIT_TREE_DB_NAME "audit_tree"
/* Text of a verifier key: name, '+', 8 hex digits, '+', 44 base64 characters, NUL. */
#define HIE_AUDIT_VKEY_TEXT_BYTES_MAX (HIE_AUDIT_KEY_NAME_BYTES_MAX + 1u + 8u + 1u + 44u + 1u)
/* A note signed by this API with one signature and the longest origin and name fits in this. */
#define HIE_AUDIT_NOTE_SIGNED_BYTES_MAX HIE_AUDIT_NOTE_BYTES_MAX

/* A SHA-256 value: a leaf hash, an interior node hash or a tree root. */
typedef struct hie_audit_hash {
    uint8_t bytes[HIE_AUDIT_HASH_BYTES];
} hie_audit_hash_t;

/* An inclusion or consistency proof, leaf side first (the order of RFC 9162). The node copies
 * it to and from protobuf `repeated bytes`, checking the count against
 * HIE_AUDIT_PROOF_HASHES_MAX and every length against HIE_AUDIT_HASH_BYTES first. */
typedef struct hie_audit_proof {
    size_t count;
    hie_audit_hash_t hashes[HIE_AUDIT_PROOF_HASHES_MAX];
} hie_audit_proof_t;

/* A tree head: what a checkpoint commits to. */
typedef struct hie_audit_tree_head {
    uint64_t size;
    hie_audit_hash_t root;
} hie_audit_tree_head_t;

/* ==== Merkle hashing and proofs (merkle.c): pure, reentrant, any thread =================== */

/* [out] *out = SHA-256(0x00 || entry). entry may be empty (ptr NULL allowed when len is 0). */
void hie_audit_leaf_hash(hie_span_t entry, hie_audit_hash_t *out);
/* [out] *out = SHA-256(0x01 || left || right). out may alias left or right. */
void hie_audit_node_hash(const hie_audit_hash_t *left, const hie_audit_hash_t *right,
    hie_audit_hash_t *out);
/* [out] *out = SHA-256(""), the root of the empty tree. */
void hie_audit_empty_root(hie_audit_hash_t *out);

/* Reference (RFC 6962 2.1, literally, O(n) hashing): the root of the first size leaf hashes
 * of leaves [in, borrowed for the call; may be NULL when size is 0]. [out] *out.
 * Returns 0 or HIE_EINVAL (size > HIE_AUDIT_TREE_SIZE_MAX). */
HIE_MUST_CHECK int hie_audit_ref_root(const hie_audit_hash_t *leaves, uint64_t size,
    hie_audit_hash_t *out);
/* Reference PATH(index, D[size]) (RFC 9162 2.1.3.1) over leaves[0..size). [out] *out, zeroed
 * first (count 0 when size is 1). Returns 0 or HIE_EINVAL (index >= size, or size too big). */
HIE_MUST_CHECK int hie_audit_ref_inclusion_proof(const hie_audit_hash_t *leaves, uint64_t size,
    uint64_t index, hie_audit_proof_t *out);
/* Reference PROOF(size1, D[size2]) (RFC 9162 2.1.4.1) over leaves[0..size2). An empty proof
 * for size1 == 0 or size1 == size2 (see hie_audit_consistency_verify). [out] *out, zeroed
 * first. Returns 0 or HIE_EINVAL (size1 > size2, or size2 too big). */
HIE_MUST_CHECK int hie_audit_ref_consistency_proof(const hie_audit_hash_t *leaves,
    uint64_t size1, uint64_t size2, hie_audit_proof_t *out);

/* Verifies that leaf is the leaf at index in the tree of size leaves whose root is root, by
 * RFC 9162 2.1.3.2 step by step. All pointers [in], borrowed for the call.
 * Returns 0 (proven); HIE_EINVAL (index >= size, size > HIE_AUDIT_TREE_SIZE_MAX, or
 * proof->count > HIE_AUDIT_PROOF_HASHES_MAX: refused before hashing); HIE_ECORRUPT (the proof
 * does not prove it: a hash differs, or it has the wrong number of hashes for index and size).
 * At most 64 hash computations. */
HIE_MUST_CHECK int hie_audit_inclusion_verify(uint64_t index, uint64_t size,
    const hie_audit_hash_t *leaf, const hie_audit_proof_t *proof, const hie_audit_hash_t *root);
/* Verifies that the tree (size2, root2) extends (size1, root1): the first size1 leaves are
 * unchanged. For 0 < size1 < size2 this is RFC 9162 2.1.4.2 step by step. RFC 9162 leaves the
 * edges open; here: size1 == size2 needs an empty proof and root1 == root2; size1 == 0 needs
 * an empty proof and root1 == SHA-256("") (the empty tree precedes every tree). All pointers
 * [in], borrowed for the call. Returns 0 (consistent); HIE_EINVAL (size1 > size2, size2 >
 * HIE_AUDIT_TREE_SIZE_MAX, or proof->count > HIE_AUDIT_PROOF_HASHES_MAX); HIE_ECORRUPT (not
 * proven: a forked or rewritten log, a wrong root, or a malformed proof). */
HIE_MUST_CHECK int hie_audit_consistency_verify(uint64_t size1, uint64_t size2,
    const hie_audit_hash_t *root1, const hie_audit_hash_t *root2,
    const hie_audit_proof_t *proof);

/* ==== The tree in LMDB (audit_tree.c) ===================================================== */
typedef struct hie_audit_tree hie_audit_tree_t;

/* Opens (creating it if needed) the "audit_tree" database inside txn, a write transaction of
 * the caller on the caller's env (which must allow one more named database). The handle is
 * usable in other transactions only after txn commits; if txn aborts, destroy the handle.
 * [out] *out on success (else NULL), owned by the caller (hie_audit_tree_destroy); it must
 * not outlive the env. Returns 0, HIE_ESTORAGE (mdb_dbi_open failed: no free database slot,
 * read-only txn, I/O) or HIE_ENOMEM. Does not block beyond LMDB. The state machine's thread. */
HIE_MUST_CHECK int hie_audit_tree_create(hie_audit_tree_t **out, MDB_txn *txn);
/* Frees the handle (the database and its data stay); sets *tree to NULL; NULL-safe. */
void hie_audit_tree_destroy(hie_audit_tree_t **tree);

/* The leaf hash of entry, exactly as hie_audit_leaf_hash computes it, with the handle's
 * hashing context (OpenSSL: several times faster than the portable SHA-256 of merkle.c).
 * [out] *out. Returns 0 or HIE_ENOMEM. The appending thread only (the state machine's), like
 * hie_audit_tree_append, which shares the context. */
HIE_MUST_CHECK int hie_audit_tree_leaf_hash(hie_audit_tree_t *tree, hie_span_t entry,
    hie_audit_hash_t *out);

/* A tree stored in the first, level-major layout (key level (1) || index (8), the size under
 * (0xff, 0)) must be converted before any other call: with write true, converts it in txn (a
 * write transaction; the same hashes under write-order keys, then the size), using one more
 * named database for the time of the call. Returns 0 (already in write order, empty, or
 * converted), HIE_ESTATE (the former layout and write is false: nothing was changed),
 * HIE_ECORRUPT (a stored key or value that layout cannot hold) or HIE_ESTORAGE. The state
 * machine's thread (or a tool on a stopped node). */
HIE_MUST_CHECK int hie_audit_tree_upgrade(hie_audit_tree_t *tree, MDB_txn *txn, bool write);

/* Appends leaf (a leaf hash, hie_audit_leaf_hash of the audit record) in txn, the state
 * machine's write transaction: stores it at level 0, stores every subtree it completes (at
 * most 63, O(log n) reads and writes) and the new size. [out] *index: the leaf's index, the
 * old size (0 on failure). Returns 0, HIE_ELIMIT (the tree holds HIE_AUDIT_TREE_SIZE_MAX
 * leaves), HIE_ECORRUPT (a stored hash or the size failed validation), HIE_ENOMEM (hashing)
 * or HIE_ESTORAGE (e.g. MDB_MAP_FULL). After a failure txn may hold a partial append: the caller aborts it. */
HIE_MUST_CHECK int hie_audit_tree_append(hie_audit_tree_t *tree, MDB_txn *txn,
    const hie_audit_hash_t *leaf, uint64_t *index);
/* hie_audit_tree_append of leaves[0..count) in order, count > 0, reading and writing the size
 * once for them all: [out] *first, the index of leaves[0] (the others follow it). Same errors,
 * HIE_ELIMIT when the tree cannot take them all (then nothing is appended). */
HIE_MUST_CHECK int hie_audit_tree_append_many(hie_audit_tree_t *tree, MDB_txn *txn,
    const hie_audit_hash_t *leaves, size_t count, uint64_t *first);
/* [out] *size: the number of leaves as seen by txn (any transaction). Returns 0, HIE_ECORRUPT
 * (the size record is malformed or over the limit) or HIE_ESTORAGE. */
HIE_MUST_CHECK int hie_audit_tree_size(hie_audit_tree_t *tree, MDB_txn *txn, uint64_t *size);
/* [out] *root: the root of the first size leaves, for any size up to the current size
 * (SHA-256("") for 0), from at most 63 stored subtrees. Returns 0, HIE_EINVAL (size is above
 * the current size), HIE_ECORRUPT (a needed subtree is missing or malformed) or HIE_ESTORAGE.
 * Any transaction. */
HIE_MUST_CHECK int hie_audit_tree_root(hie_audit_tree_t *tree, MDB_txn *txn, uint64_t size,
    hie_audit_hash_t *root);
/* [out] *proof: the inclusion proof of leaf index in the tree of the first size leaves
 * (size <= current size), identical to hie_audit_ref_inclusion_proof; O(log n) reads.
 * Zeroed on entry. Returns 0, HIE_EINVAL (index >= size, or size above the current size),
 * HIE_ECORRUPT or HIE_ESTORAGE. Any transaction. */
HIE_MUST_CHECK int hie_audit_tree_inclusion_proof(hie_audit_tree_t *tree, MDB_txn *txn,
    uint64_t index, uint64_t size, hie_audit_proof_t *proof);
/* [out] *proof: the consistency proof from size1 to size2 (size1 <= size2 <= current size),
 * identical to hie_audit_ref_consistency_proof; O(log n) reads. Zeroed on entry. Returns 0,
 * HIE_EINVAL, HIE_ECORRUPT or HIE_ESTORAGE. Any transaction. */
HIE_MUST_CHECK int hie_audit_tree_consistency_proof(hie_audit_tree_t *tree, MDB_txn *txn,
    uint64_t size1, uint64_t size2, hie_audit_proof_t *proof);

/* What hie_audit_tree_verify found first. */
enum hie_audit_fault {
    HIE_AUDIT_FAULT_NONE = 0,
    HIE_AUDIT_FAULT_ENTRY_MISSING,  /* the callback has no entry for an index below the size */
    HIE_AUDIT_FAULT_LEAF_MISSING,   /* no stored leaf hash for an index below the size */
    HIE_AUDIT_FAULT_LEAF_MISMATCH,  /* the entry's leaf hash differs from the stored one */
    HIE_AUDIT_FAULT_NODE_MISSING,   /* a complete subtree's hash is not stored */
    HIE_AUDIT_FAULT_NODE_MISMATCH,  /* a stored subtree hash differs from the recomputed one */
    HIE_AUDIT_FAULT_MALFORMED,      /* a stored value has the wrong length, or the size record */
    HIE_AUDIT_FAULT_BEYOND_SIZE,    /* an entry, leaf or subtree at or past the size: the size
                                       was cut back (truncation) */
    HIE_AUDIT_FAULT_ANCHOR_SIZE,    /* the tree is smaller than the trusted head: truncated */
    HIE_AUDIT_FAULT_ANCHOR_ROOT,    /* the root at the trusted head's size differs: entries
                                       below it were rewritten together with their hashes */
};

/* The outcome of hie_audit_tree_verify. level and index name the first bad item: level 0 is a
 * leaf or entry (index = leaf index), level k < 64 a subtree hash (index = node index at
 * level k, covering leaves [index * 2^k, (index + 1) * 2^k)), level 0xff index 0 the size
 * record. HIE_AUDIT_FAULT_ANCHOR_SIZE: index = the stored size (leaves from there on are
 * gone); HIE_AUDIT_FAULT_ANCHOR_ROOT: index = the anchor's size (the leaves below it are not
 * the ones the anchor committed to). */
typedef struct hie_audit_verify_report {
    uint64_t size;                  /* the stored tree size */
    enum hie_audit_fault fault;
    uint8_t level;
    uint64_t index;
    uint64_t leaves_checked;        /* entries hashed and compared */
    uint64_t nodes_checked;         /* stored subtree hashes recomputed and compared */
} hie_audit_verify_report_t;

/* Supplies the stored audit record (the entry bytes) of leaf index, read in txn. [out]
 * *entry, borrowed until the next call or the end of txn. Returns 0, HIE_ENOTFOUND (no record
 * at index: verify reports it as a fault, not as an error), or another code, which stops
 * verify and is returned by it. Called for index 0..size-1 in order, then once for index size
 * (which must be HIE_ENOTFOUND), on the calling thread. */
typedef int (*hie_audit_leaf_fn)(void *ctx, MDB_txn *txn, uint64_t index, hie_span_t *entry);

/* The full integrity check of the tree against the records: recomputes every leaf hash from
 * the entry leaf_fn gives and compares it with the stored leaf, recomputes every complete
 * subtree hash from those leaves and compares it with the stored one, then checks that
 * nothing (entry, leaf or subtree) exists at or past the size, and, when anchor is not NULL
 * (a head the caller trusts, e.g. the last checkpoint a witness countersigned), that the tree
 * has at least anchor->size leaves and the same root at that size. So an edited, deleted,
 * reordered or truncated record, and an edited stored hash, are all found. Streaming: O(n)
 * hashing and reads, memory bounded by 64 hashes, whatever n. txn: any transaction (a read
 * transaction sees one consistent snapshot). [out] *report, zeroed on entry; filled on 0 and
 * on HIE_ECORRUPT (fault, level, index: the first bad item in leaf order). Returns 0 (all
 * verified), HIE_ECORRUPT (a fault: see report), HIE_ESTORAGE, or leaf_fn's error. Blocks for
 * the whole scan (about 2 s per million leaves): run it on a worker or an admin thread. */
HIE_MUST_CHECK int hie_audit_tree_verify(hie_audit_tree_t *tree, MDB_txn *txn,
    const hie_audit_tree_head_t *anchor, hie_audit_verify_report_t *report,
    hie_audit_leaf_fn leaf_fn, void *ctx);

/* ==== Checkpoints and signed notes (checkpoint.c) ======================================== */

/* A verifier key: who may sign a checkpoint. Text form (C2SP, as Go's note package prints it):
 * "<name>+<key ID as 8 hex digits>+<base64(0x01 || 32-byte Ed25519 public key)>". */
typedef struct hie_audit_vkey {
    char name[HIE_AUDIT_KEY_NAME_BYTES_MAX + 1]; /* NUL-terminated */
    uint32_t key_id;
    uint8_t public_key[HIE_AUDIT_ED25519_PUBLIC_BYTES];
} hie_audit_vkey_t;

/* One signature line of a parsed note. */
typedef struct hie_audit_note_sig {
    hie_span_t name;            /* key name, borrowed from the note bytes */
    uint32_t key_id;
    size_t sig_bytes;           /* decoded signature length after the key ID */
    uint8_t sig[HIE_AUDIT_ED25519_SIG_BYTES]; /* valid when sig_bytes == 64 (Ed25519) */
} hie_audit_note_sig_t;

/* A parsed checkpoint: the tree head, the origin, the signed body and the signature lines. */
typedef struct hie_audit_checkpoint {
    char origin[HIE_AUDIT_ORIGIN_BYTES_MAX + 1]; /* NUL-terminated copy */
    hie_audit_tree_head_t head;
    hie_span_t body;            /* the signed text with its final newline, borrowed from the
                                   note bytes */
    size_t sigs_count;          /* 1..HIE_AUDIT_NOTE_SIGNATURES_MAX */
    hie_audit_note_sig_t sigs[HIE_AUDIT_NOTE_SIGNATURES_MAX];
} hie_audit_checkpoint_t;

/* Parses a signed note holding a checkpoint, strictly: at most HIE_AUDIT_NOTE_BYTES_MAX
 * bytes of valid UTF-8 without control characters other than newline; the body (the text up to
 * the last blank line, its final newline included) is exactly three lines: the origin (1..
 * HIE_AUDIT_ORIGIN_BYTES_MAX printable ASCII bytes, 0x20..0x7e), the size (decimal, no leading
 * zero, at most HIE_AUDIT_TREE_SIZE_MAX) and the root (44 characters of padded standard
 * base64 for 32 bytes, canonical); extension lines are refused (our logs never write them and
 * C2SP calls them unauditable); then 1..HIE_AUDIT_NOTE_SIGNATURES_MAX signature lines "— <key
 * name> <base64(key ID || signature)>", key names without spaces or '+', signatures of at
 * least 5 bytes. Signatures are not checked here (hie_audit_checkpoint_verify). note: [in],
 * must outlive *out (spans). [out] *out, zeroed on entry, filled on success. [out] info,
 * optional: a static reason and field on failure. Returns 0, HIE_EPROTO (malformed) or
 * HIE_ELIMIT (note, origin, key name or signature count over its limit). Any thread. */
HIE_MUST_CHECK int hie_audit_checkpoint_parse(hie_span_t note, hie_audit_checkpoint_t *out,
    hie_errinfo_t *info);

/* Accepts a parsed checkpoint if it is for origin (the log the caller expects, NUL-terminated)
 * and signed by vkey: every signature line with vkey's name and key ID must verify, and there
 * must be at least one; lines from other keys are ignored (C2SP: key rotation and witness
 * cosignatures). All pointers [in], borrowed for the call. Returns 0; HIE_ENOTFOUND (no
 * signature by vkey); HIE_EDENIED (a signature by vkey fails to verify, or origin differs).
 * Any thread. */
HIE_MUST_CHECK int hie_audit_checkpoint_verify(const hie_audit_checkpoint_t *cp,
    const hie_audit_vkey_t *vkey, const char *origin);

/* Parses a verifier key from its text form (see hie_audit_vkey_t), strictly: name 1..
 * HIE_AUDIT_KEY_NAME_BYTES_MAX printable ASCII bytes without space or '+', exactly 8 hex
 * digits that must equal the key ID computed from name and key, and type 0x01 (Ed25519). [out]
 * *out, zeroed on entry. Returns 0, HIE_EINVAL (malformed, another signature type, or a key
 * ID that does not match) or HIE_ELIMIT (name too long). Any thread. */
HIE_MUST_CHECK int hie_audit_vkey_parse(hie_span_t text, hie_audit_vkey_t *out);
/* Writes vkey's text form and a NUL into out (at most HIE_AUDIT_VKEY_TEXT_BYTES_MAX bytes).
 * Returns 0 or HIE_ELIMIT (out_bytes too small). */
HIE_MUST_CHECK int hie_audit_vkey_format(const hie_audit_vkey_t *vkey, char *out,
    size_t out_bytes);

/* ---- the node's signing key ----------------------------------------------------------------
 * One owner: the signer. The key file holds exactly HIE_AUDIT_KEY_SEED_BYTES random bytes. */
typedef struct hie_audit_signer hie_audit_signer_t;

/* Creates a new key file at path: exclusive create (an existing file or symlink is not
 * touched: -EEXIST), mode 0600, fsynced; the seed is wiped from memory after writing.
 * Returns 0, -errno or HIE_ENOMEM (libsodium failed to initialise). Blocks on file I/O. */
HIE_MUST_CHECK int hie_audit_signer_generate(const char *path);
/* Loads the key file at path and names the key name (1..HIE_AUDIT_KEY_NAME_BYTES_MAX
 * printable ASCII, no space or '+'; C2SP: it should match the origin). Refuses a symlink
 * (-ELOOP), a file that is not regular or that group or other may access (HIE_EDENIED) and
 * a file of the wrong size (HIE_EINVAL). The secret key goes to read-only sodium_malloc
 * memory; the seed read is wiped. [out] *out (else NULL), owned by the caller
 * (hie_audit_signer_destroy). Returns 0, HIE_EINVAL (also: bad name), HIE_ELIMIT (name too
 * long), HIE_EDENIED, HIE_ENOMEM or -errno. Blocks on file I/O. */
HIE_MUST_CHECK int hie_audit_signer_load(hie_audit_signer_t **out, const char *path,
    const char *name);
/* Wipes and frees the secret and the signer; sets *signer to NULL; NULL-safe. */
void hie_audit_signer_destroy(hie_audit_signer_t **signer);
/* [out] *out: the signer's verifier key (name, key ID, public key), for hie_audit_vkey_format
 * and for the auditors' trust configuration. */
void hie_audit_signer_vkey(const hie_audit_signer_t *signer, hie_audit_vkey_t *out);

/* Formats the checkpoint (origin, head) and signs it with signer: writes the note (body, blank
 * line, one signature line) and a NUL into out; [out] *out_len: the note's length without the
 * NUL (0 on failure). origin: NUL-terminated, 1..HIE_AUDIT_ORIGIN_BYTES_MAX printable ASCII
 * bytes (0x20..0x7e; C2SP suggests a schema-less URL such as "hie.example/audit"). The
 * caller must only sign heads consistent with every head it signed before (C2SP: a log never
 * signs two inconsistent checkpoints); the node signs its own tree's head.
 * Returns 0, HIE_EINVAL (bad origin, head->size > HIE_AUDIT_TREE_SIZE_MAX), HIE_ELIMIT
 * (origin too long, or out_bytes too small: HIE_AUDIT_NOTE_SIGNED_BYTES_MAX always suffices).
 * Any thread. */
HIE_MUST_CHECK int hie_audit_checkpoint_sign(const hie_audit_signer_t *signer,
    const char *origin, const hie_audit_tree_head_t *head, char *out, size_t out_bytes,
    size_t *out_len);
/* An accounting's identity (the EUIDs its patient's disclosures were indexed under, with
 * when) is signed as a checkpoint note of this origin, for the page's tree size, whose root is
 * hie_audit_identity_hash of the list: another origin than any log's, so it is never taken for
 * one of the log's checkpoints. */
#define HIE_AUDIT_IDENTITY_ORIGIN "hiebroker/accounting-identity"
/* SHA-256 of "hiebroker accounting identity v1\n" then "<euid> <from_ms> <to_ms>\n" for each
 * span, in order (the current EUID first, 0 0). An accounting asked by organization + MRN
 * (asked_org not NULL) binds them too, so that a node cannot answer for another patient:
 * "hiebroker accounting identity v2\n", then "<len>:<asked_org><len>:<asked_mrn>\n" (decimal
 * byte lengths), then the spans. Any thread. */
void hie_audit_identity_hash(const char *asked_org, const char *asked_mrn,
    const char *const *euids, const int64_t *from_ms, const int64_t *to_ms, size_t n,
    uint8_t out[HIE_AUDIT_HASH_BYTES]);
/* What one page of a disclosure report holds is signed as a checkpoint note of this origin, for
 * the page's tree size, whose root is hie_audit_page_hash of the page: the entries, and the
 * page tokens that chain the pages, are the node's word, so whoever holds a saved report can
 * neither take an entry or a page out nor call a part the whole. */
#define HIE_AUDIT_PAGE_ORIGIN "hiebroker/report-page"
typedef struct hie_audit_page_entry {
    uint64_t leaf;               /* its leaf index */
    const uint32_t *positions;   /* the subjects listed (their positions in the record) */
    size_t n_positions;
} hie_audit_page_entry_t;
/* The report asked for, as the page signs it (absent strings as "", absent times as 0). */
typedef struct hie_audit_page_query {
    int kind;                    /* AuditReportKind's number */
    const char *patient_org, *patient_mrn, *euid, *org_id;
    int64_t from_ms, to_ms;
    bool include_excluded;
    const char *token_in;        /* the page token asked with: "" for the first page */
    const char *token_out;       /* the one the page answered: "" for the last */
} hie_audit_page_query_t;
/* SHA-256 of "hiebroker report page v1\n", "<kind> <from_ms> <to_ms> <include_excluded 0|1>\n",
 * then "<len>:<s>\n" for patient_org, patient_mrn, euid, org_id, token_in and token_out (decimal
 * byte lengths), then "<leaf>[ <pos>]...\n" for each entry in order. Any thread. */
void hie_audit_page_hash(const hie_audit_page_query_t *q, const hie_audit_page_entry_t *entries,
    size_t n, uint8_t out[HIE_AUDIT_HASH_BYTES]);
/* Adds signer's signature line to an existing signed checkpoint note (a cosignature, or the
 * new key's signature during a key rotation): parses note, signs its body and writes the note
 * with the new line appended, and a NUL, into out. Does not check the existing signatures.
 * [out] *out_len (0 on failure). Returns 0, hie_audit_checkpoint_parse's errors, HIE_EINVAL
 * (signer already signed the note), or HIE_ELIMIT (the result would exceed a note's limits,
 * or out_bytes is too small: HIE_AUDIT_NOTE_BYTES_MAX + 1 always suffices). out must not
 * overlap note. Any thread. */
HIE_MUST_CHECK int hie_audit_checkpoint_cosign(const hie_audit_signer_t *signer,
    hie_span_t note, char *out, size_t out_bytes, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
