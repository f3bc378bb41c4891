/*
 * test_checkpoint.c - broker/src/checkpoint.c: C2SP checkpoints in signed notes, verifier
 * keys, and the node's signing key file.
 *
 * Cross-implementation anchors: the verifier and signer keys of golang.org/x/mod/sumdb/note
 * (note.go's example: "PeterNeumann+c74f20a3+ARpc...", "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEK...",
 * and its signed note over "If you think cryptography is the answer to your problem, ..."),
 * and a checkpoint of sum.golang.org (origin "go.sum database tree", size 65209736) with that
 * log's published verifier key. Loading the Go seed must reproduce Go's verifier key text
 * byte for byte: that pins the key ID, the key encoding and the text form.
 */
#include "../test_util.h"

#include "hie/audit.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <sys/stat.h>

#define ORIGIN "hie.example/audit"

static char tmpdir[128];
static char key_path[256];
static hie_audit_signer_t *signer;
static hie_audit_vkey_t vkey;

static void
setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    test_tmpdir_make(tmpdir, sizeof(tmpdir), "audit-cp");
    snprintf(key_path, sizeof(key_path), "%s/node.key", tmpdir);
    cr_assert_eq(hie_audit_signer_generate(key_path), 0);
    cr_assert_eq(hie_audit_signer_load(&signer, key_path, ORIGIN), 0);
    hie_audit_signer_vkey(signer, &vkey);
}

static void
teardown(void)
{
    hie_audit_signer_destroy(&signer);
    test_tmpdir_remove(tmpdir);
}

TestSuite(checkpoint, .init = setup, .fini = teardown);

static hie_audit_tree_head_t
some_head(uint64_t size)
{
    hie_audit_tree_head_t h = {.size = size};
    hie_audit_leaf_hash(hie_span("root", 4), &h.root);
    return h;
}

/* Signs head into note (NUL-terminated); returns the length. */
static size_t
sign_note(const hie_audit_signer_t *s, const char *origin, uint64_t size, char *note)
{
    hie_audit_tree_head_t h = some_head(size);
    size_t len = 0;
    cr_assert_eq(hie_audit_checkpoint_sign(s, origin, &h, note, HIE_AUDIT_NOTE_SIGNED_BYTES_MAX,
        &len), 0);
    cr_assert_eq(strlen(note), len);
    return len;
}

static int
parse_str(const char *note, hie_audit_checkpoint_t *cp)
{
    hie_errinfo_t info = {0};
    int rc = hie_audit_checkpoint_parse(hie_span(note, strlen(note)), cp, &info);
    if (rc != 0) {
        cr_assert_not_null(info.reason, "a refusal names its reason");
        cr_assert_not_null(info.field);
    }
    return rc;
}

/* Parses and verifies with the suite's key: 0, or the first error. */
static int
open_str(const char *note)
{
    hie_audit_checkpoint_t cp;
    int rc = parse_str(note, &cp);
    return rc != 0 ? rc : hie_audit_checkpoint_verify(&cp, &vkey, ORIGIN);
}

/* Replaces the first occurrence of from by to in note (in place, note has room). */
static void
replace(char *note, const char *from, const char *to)
{
    char *at = strstr(note, from);
    cr_assert_not_null(at, "no \"%s\" in the note", from);
    size_t fl = strlen(from), tl = strlen(to);
    memmove(at + tl, at + fl, strlen(at + fl) + 1);
    memcpy(at, to, tl);
}

static void
load_signer_from_seed(const uint8_t seed[32], const char *file, const char *name,
    hie_audit_signer_t **out)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, file);
    test_write_file(NULL, path, seed, 32);
    cr_assert_eq(hie_audit_signer_load(out, path, name), 0);
}

/* A signing key that is a FIFO is refused at once (the start waited for a writer). */
Test(checkpoint, a_fifo_key_is_refused, .timeout = 10)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/fifo.key", tmpdir);
    cr_assert_eq(mkfifo(path, 0600), 0);
    hie_audit_signer_t *s = NULL;
    cr_assert_eq(hie_audit_signer_load(&s, path, ORIGIN), HIE_EDENIED);
    cr_assert_null(s);
}

Test(checkpoint, sign_parse_verify_round_trip)
{
    char note[HIE_AUDIT_NOTE_SIGNED_BYTES_MAX];
    hie_audit_tree_head_t h = some_head(123456);
    size_t len = sign_note(signer, ORIGIN, 123456, note);
    /* The exact C2SP form: body, blank line, "— name base64(keyID || sig)". */
    char root_b64[64], body[256];
    sodium_bin2base64(root_b64, sizeof(root_b64), h.root.bytes, 32,
        sodium_base64_VARIANT_ORIGINAL);
    snprintf(body, sizeof(body), ORIGIN "\n123456\n%s\n\n\xe2\x80\x94 " ORIGIN " ", root_b64);
    cr_assert_eq(strncmp(note, body, strlen(body)), 0, "%s", note);
    cr_assert_eq(note[len - 1], '\n');
    uint8_t raw[68];
    size_t raw_len = 0;
    cr_assert_eq(sodium_base642bin(raw, sizeof(raw), note + strlen(body),
        len - strlen(body) - 1, NULL, &raw_len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
    cr_assert_eq(raw_len, 68);
    cr_assert_eq(hie_load_be32(raw), vkey.key_id);
    /* The signature covers the body with its final newline, and nothing else. */
    size_t body_len = strchr(strchr(strchr(note, '\n') + 1, '\n') + 1, '\n') + 1 - note;
    cr_assert_eq(crypto_sign_verify_detached(raw + 4, (const uint8_t *)note, body_len,
        vkey.public_key), 0);
    hie_audit_checkpoint_t cp;
    cr_assert_eq(parse_str(note, &cp), 0);
    cr_assert_str_eq(cp.origin, ORIGIN);
    cr_assert_eq(cp.head.size, 123456);
    cr_assert(memcmp(cp.head.root.bytes, h.root.bytes, 32) == 0);
    cr_assert_eq(cp.body.len, body_len);
    cr_assert_eq(cp.sigs_count, 1);
    cr_assert_eq(cp.sigs[0].key_id, vkey.key_id);
    cr_assert_eq(cp.sigs[0].sig_bytes, 64);
    cr_assert_eq(hie_audit_checkpoint_verify(&cp, &vkey, ORIGIN), 0);
}

Test(checkpoint, sizes_zero_and_largest)
{
    char note[HIE_AUDIT_NOTE_SIGNED_BYTES_MAX];
    sign_note(signer, ORIGIN, 0, note);
    cr_assert_eq(strncmp(note, ORIGIN "\n0\n", strlen(ORIGIN) + 3), 0);
    cr_assert_eq(open_str(note), 0);
    sign_note(signer, ORIGIN, HIE_AUDIT_TREE_SIZE_MAX, note);
    cr_assert_eq(open_str(note), 0);
    hie_audit_tree_head_t h = some_head(HIE_AUDIT_TREE_SIZE_MAX + 1);
    size_t len = 9;
    cr_assert_eq(hie_audit_checkpoint_sign(signer, ORIGIN, &h, note, sizeof(note), &len),
        HIE_EINVAL);
    cr_assert_eq(len, 0);
    h.size = 1;
    cr_assert_eq(hie_audit_checkpoint_sign(signer, ORIGIN, &h, note, 100, &len), HIE_ELIMIT);
    cr_assert_eq(len, 0);
}

Test(checkpoint, edited_notes_are_refused)
{
    char note[HIE_AUDIT_NOTE_SIGNED_BYTES_MAX];
    hie_audit_checkpoint_t cp;
    sign_note(signer, ORIGIN, 4242, note);
    replace(note, "\n4242\n", "\n4243\n");
    cr_assert_eq(open_str(note), HIE_EDENIED, "edited size");
    sign_note(signer, ORIGIN, 4242, note);
    char *root = strchr(strchr(note, '\n') + 1, '\n') + 1;
    root[0] = root[0] == 'A' ? 'B' : 'A';
    cr_assert_eq(open_str(note), HIE_EDENIED, "edited root");
    sign_note(signer, ORIGIN, 4242, note);
    replace(note, "hie.example/audit\n", "hie.example/audiT\n");
    cr_assert_eq(parse_str(note, &cp), 0);
    cr_assert_eq(hie_audit_checkpoint_verify(&cp, &vkey, ORIGIN), HIE_EDENIED, "origin");
    cr_assert_eq(hie_audit_checkpoint_verify(&cp, &vkey, "hie.example/audiT"), HIE_EDENIED,
        "edited origin fails the signature");
    sign_note(signer, ORIGIN, 4242, note);
    char *sig = strstr(note, "\xe2\x80\x94 ") + 4 + strlen(ORIGIN) + 1;
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    cr_assert_eq(open_str(note), HIE_EDENIED, "edited signature");
}

Test(checkpoint, wrong_keys_are_refused)
{
    char note[HIE_AUDIT_NOTE_SIGNED_BYTES_MAX];
    sign_note(signer, ORIGIN, 7, note);
    hie_audit_checkpoint_t cp;
    cr_assert_eq(parse_str(note, &cp), 0);
    /* Another key with the same name: another key ID, so not a signature by it. */
    char other_path[300];
    hie_audit_signer_t *other = NULL;
    hie_audit_vkey_t other_vkey, forged;
    snprintf(other_path, sizeof(other_path), "%s/other.key", tmpdir);
    cr_assert_eq(hie_audit_signer_generate(other_path), 0);
    cr_assert_eq(hie_audit_signer_load(&other, other_path, ORIGIN), 0);
    hie_audit_signer_vkey(other, &other_vkey);
    cr_assert_neq(other_vkey.key_id, vkey.key_id);
    cr_assert_eq(hie_audit_checkpoint_verify(&cp, &other_vkey, ORIGIN), HIE_ENOTFOUND);
    /* The right name and key ID with another public key: a known key whose signature fails. */
    forged = vkey;
    memcpy(forged.public_key, other_vkey.public_key, 32);
    cr_assert_eq(hie_audit_checkpoint_verify(&cp, &forged, ORIGIN), HIE_EDENIED);
    /* Same key ID, another name: unknown. */
    forged = vkey;
    snprintf(forged.name, sizeof(forged.name), "hie.example/other");
    cr_assert_eq(hie_audit_checkpoint_verify(&cp, &forged, ORIGIN), HIE_ENOTFOUND);
    /* The line's key ID edited: the signature is no longer attributed to our key. */
    char *sig = strstr(note, "\xe2\x80\x94 ") + 4 + strlen(ORIGIN) + 1;
    sig[1] = sig[1] == 'A' ? 'B' : 'A'; /* inside the first 4 bytes */
    cr_assert_eq(parse_str(note, &cp), 0);
    cr_assert_neq(cp.sigs[0].key_id, vkey.key_id);
    cr_assert_eq(hie_audit_checkpoint_verify(&cp, &vkey, ORIGIN), HIE_ENOTFOUND);
    hie_audit_signer_destroy(&other);
}

Test(checkpoint, unknown_signatures_are_ignored)
{
    char note[HIE_AUDIT_NOTE_SIGNED_BYTES_MAX], cosigned[HIE_AUDIT_NOTE_BYTES_MAX + 1];
    size_t len = sign_note(signer, ORIGIN, 99, note), cos_len = 0;
    hie_audit_signer_t *witness = NULL;
    uint8_t seed[32];
    memset(seed, 0x77, sizeof(seed));
    load_signer_from_seed(seed, "witness.key", "witness.example/w1", &witness);
    cr_assert_eq(hie_audit_checkpoint_cosign(witness, hie_span(note, len), cosigned,
        sizeof(cosigned), &cos_len), 0);
    cr_assert_eq(strlen(cosigned), cos_len);
    cr_assert_eq(open_str(cosigned), 0, "the log's key still verifies");
    hie_audit_checkpoint_t cp;
    hie_audit_vkey_t wkey;
    hie_audit_signer_vkey(witness, &wkey);
    cr_assert_eq(parse_str(cosigned, &cp), 0);
    cr_assert_eq(cp.sigs_count, 2);
    cr_assert_eq(hie_audit_checkpoint_verify(&cp, &wkey, ORIGIN), 0, "and so does the witness");
    /* A second cosignature by the same key is refused. */
    cr_assert_eq(hie_audit_checkpoint_cosign(witness, hie_span(cosigned, cos_len), note,
        sizeof(note), &len), HIE_EINVAL);
    cr_assert_eq(len, 0);
    /* An unknown signature of another algorithm (not 64 bytes) is ignored too. */
    strcat(cosigned, "\xe2\x80\x94 pq.example/k AAAAAAAAAAAAAA==\n");
    cr_assert_eq(open_str(cosigned), 0);
    hie_audit_signer_destroy(&witness);
}

Test(checkpoint, sixteen_signatures_pass_seventeen_do_not)
{
    char note[HIE_AUDIT_NOTE_BYTES_MAX + 1];
    size_t len = sign_note(signer, ORIGIN, 5, note);
    for (int i = 1; i < 16; i++) {
        char line[64];
        snprintf(line, sizeof(line), "\xe2\x80\x94 w%02d AAAAAAAAAAAAAA==\n", i);
        memcpy(note + len, line, strlen(line) + 1);
        len += strlen(line);
    }
    cr_assert_eq(open_str(note), 0, "16 signatures");
    strcat(note, "\xe2\x80\x94 w16 AAAAAAAAAAAAAA==\n");
    cr_assert_eq(open_str(note), HIE_ELIMIT, "17 signatures");
    /* cosign refuses to add a 17th */
    char out[HIE_AUDIT_NOTE_BYTES_MAX + 1];
    note[len] = '\0';
    cr_assert_eq(hie_audit_checkpoint_cosign(signer, hie_span(note, len), out, sizeof(out),
        &len), HIE_ELIMIT);
}

Test(checkpoint, malformed_notes_are_refused)
{
    char note[HIE_AUDIT_NOTE_BYTES_MAX + 2];
    sign_note(signer, ORIGIN, 31, note);
    char *blank = strstr(note, "\n\n");
    memmove(blank + 1, blank + 2, strlen(blank + 2) + 1);
    cr_assert_eq(open_str(note), HIE_EPROTO, "missing blank line");
    sign_note(signer, ORIGIN, 31, note);
    char *root = strchr(strchr(note, '\n') + 1, '\n') + 1;
    root[5] = '*';
    cr_assert_eq(open_str(note), HIE_EPROTO, "bad base64 root");
    sign_note(signer, ORIGIN, 31, note);
    root = strchr(strchr(note, '\n') + 1, '\n') + 1;
    memmove(root + 43, root + 44, strlen(root + 44) + 1); /* drop the padding */
    cr_assert_eq(open_str(note), HIE_EPROTO, "unpadded root");
    sign_note(signer, ORIGIN, 31, note);
    char *sig = strstr(note, "\xe2\x80\x94 ") + 4 + strlen(ORIGIN) + 1;
    sig[20] = '!';
    cr_assert_eq(open_str(note), HIE_EPROTO, "bad base64 signature");
    sign_note(signer, ORIGIN, 31, note);
    replace(note, "\n31\n", "\n031\n");
    cr_assert_eq(open_str(note), HIE_EPROTO, "leading zero");
    sign_note(signer, ORIGIN, 31, note);
    replace(note, "\n31\n", "\n3x\n");
    cr_assert_eq(open_str(note), HIE_EPROTO, "not a number");
    sign_note(signer, ORIGIN, 31, note);
    replace(note, "\n31\n", "\n9223372036854775809\n");
    cr_assert_eq(open_str(note), HIE_ELIMIT, "size over the limit");
    sign_note(signer, ORIGIN, 31, note);
    replace(note, "\n31\n", "\n99999999999999999999999\n");
    cr_assert_eq(open_str(note), HIE_ELIMIT, "size over 64 bits");
    sign_note(signer, ORIGIN, 31, note);
    replace(note, "=\n\n", "=\nextension\n\n");
    cr_assert_eq(open_str(note), HIE_EPROTO, "extension line");
    sign_note(signer, ORIGIN, 31, note);
    replace(note, "audit\n", "au\tdit\n");
    cr_assert_eq(open_str(note), HIE_EPROTO, "control character");
    sign_note(signer, ORIGIN, 31, note);
    replace(note, "audit\n", "au\xc3\x28it\n");
    cr_assert_eq(open_str(note), HIE_EPROTO, "invalid utf-8");
    sign_note(signer, ORIGIN, 31, note);
    replace(note, "audit\n", "au\xc3\xa9it\n");
    cr_assert_eq(open_str(note), HIE_EPROTO, "non-ascii origin");
    sign_note(signer, ORIGIN, 31, note);
    note[strlen(note) - 1] = '\0';
    cr_assert_eq(open_str(note), HIE_EPROTO, "no final newline");
    cr_assert_eq(open_str(""), HIE_EPROTO);
    cr_assert_eq(open_str("\n\n"), HIE_EPROTO);
    cr_assert_eq(open_str(ORIGIN "\n1\n\n"), HIE_EPROTO, "no root");
}

Test(checkpoint, base64_must_be_canonical)
{
    /* fuzz_checkpoint found this one: libsodium 1.0.18 decodes some bytes >= 0x80 as base64
     * digits, so a root line with an em dash in it (still 44 bytes) parsed, non-canonically. */
    cr_assert_eq(open_str("fuzz.example/audit\n20\n+0O5BS3AIPDOr4gqu\xe2\x80\x94"
                          "pig4CiK/8x2qUEVD7AvZowM=\n\n\xe2\x80\x94 k AAAAAAAAAAAAAA==\n"),
        HIE_EPROTO, "non-ascii byte in the root");
    cr_assert_eq(open_str(ORIGIN "\n20\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"
                          "\xe2\x80\x94 k AAAA\xc2\x80" "AAAAAAAA==\n"),
        HIE_EPROTO, "non-ascii byte in a signature");
    cr_assert_eq(open_str(ORIGIN "\n20\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n\n"
                          "\xe2\x80\x94 k AAAAAAAAAAAAAA==\n"),
        HIE_EPROTO, "root of 31 bytes");
    cr_assert_eq(open_str(ORIGIN "\n20\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n\n"
                          "\xe2\x80\x94 k AAAAAAAAAAAAAA==\n"),
        HIE_EPROTO, "non-zero trailing bits");
    cr_assert_eq(open_str(ORIGIN "\n20\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"
                          "\xe2\x80\x94 k AAAA=AAAAAAAAA==\n"),
        HIE_EPROTO, "padding inside");
    cr_assert_eq(open_str(ORIGIN "\n20\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"
                          "\xe2\x80\x94 k AAAAAAAAAAAAAA==\n"), HIE_ENOTFOUND,
        "the well-formed variant parses (and is not ours)");
}

Test(checkpoint, malformed_signature_lines_are_refused)
{
    static const char *const lines[] = {
        "- " ORIGIN " AAAAAAAAAAAAAA==\n",                /* hyphen, not em dash */
        "\xe2\x80\x94" ORIGIN " AAAAAAAAAAAAAA==\n",       /* no space after the dash */
        "\xe2\x80\x94 " ORIGIN "\n",                       /* no signature */
        "\xe2\x80\x94  AAAAAAAAAAAAAA==\n",                /* empty name */
        "\xe2\x80\x94 a+b AAAAAAAAAAAAAA==\n",             /* plus in the name */
        "\xe2\x80\x94 a\xc2\xa0" "b AAAAAAAAAAAAAA==\n",   /* U+00A0 in the name */
        "\xe2\x80\x94 a\xe3\x80\x80" "b AAAAAAAAAAAAAA==\n", /* U+3000 in the name */
        "\xe2\x80\x94 k AAAAAA==\n",                       /* 4 bytes: a key ID alone */
        "\xe2\x80\x94 k AAAAAAAAAAAAAA== \n",              /* trailing space */
        "\xe2\x80\x94 a\x01" "b AAAAAAAAAAAAAA==\n",         /* control character */
        "\xe2\x80\x94 a\x7f" "b AAAAAAAAAAAAAA==\n",         /* DEL is allowed: see below */
        "\xe2\x80\x94 a\xed\xa0\x80" "b AAAAAAAAAAAAAA==\n", /* UTF-8 surrogate */
        "\xe2\x80\x94 a\xc0\xaf" "b AAAAAAAAAAAAAA==\n",     /* overlong '/' */
    };
    for (size_t i = 0; i < HIE_ARRAY_LEN(lines); i++) {
        char note[HIE_AUDIT_NOTE_BYTES_MAX + 1];
        size_t len = sign_note(signer, ORIGIN, 8, note);
        memcpy(note + len, lines[i], strlen(lines[i]) + 1);
        bool del = strchr(lines[i], 0x7f) != NULL; /* C2SP bans controls below U+0020 only */
        cr_assert_eq(open_str(note), del ? 0 : HIE_EPROTO, "line %zu", i);
    }
    /* A UTF-8 key name without spaces is a valid (unknown) signature. */
    char note[HIE_AUDIT_NOTE_BYTES_MAX + 1];
    size_t len = sign_note(signer, ORIGIN, 8, note);
    const char *ok = "\xe2\x80\x94 t\xc3\xa9moin AAAAAAAAAAAAAA==\n";
    memcpy(note + len, ok, strlen(ok) + 1);
    cr_assert_eq(open_str(note), 0);
}

Test(checkpoint, limits_on_size_origin_and_names)
{
    char note[HIE_AUDIT_NOTE_BYTES_MAX + 64], origin[300];
    size_t len = sign_note(signer, ORIGIN, 8, note);
    while (len <= HIE_AUDIT_NOTE_BYTES_MAX) { /* pad with unknown signatures past 4 KiB */
        const char *line = "\xe2\x80\x94 pad AAAAAAAAAAAAAA==\n";
        memcpy(note + len, line, strlen(line) + 1);
        len += strlen(line);
    }
    hie_audit_checkpoint_t cp;
    cr_assert_eq(hie_audit_checkpoint_parse(hie_span(note, len), &cp, NULL), HIE_ELIMIT);
    memset(origin, 'o', 256);
    origin[256] = '\0';
    sign_note(signer, origin, 8, note);
    cr_assert_eq(parse_str(note, &cp), 0, "256-byte origin");
    cr_assert_eq(strlen(cp.origin), 256);
    origin[256] = 'o';
    origin[257] = '\0';
    hie_audit_tree_head_t h = some_head(8);
    cr_assert_eq(hie_audit_checkpoint_sign(signer, origin, &h, note, sizeof(note), &len),
        HIE_ELIMIT);
    snprintf(note, sizeof(note), "%s\n8\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"
        "\xe2\x80\x94 k AAAAAAAAAAAAAA==\n", origin);
    cr_assert_eq(parse_str(note, &cp), HIE_ELIMIT, "257-byte origin");
    cr_assert_eq(hie_audit_checkpoint_sign(signer, "", &h, note, sizeof(note), &len),
        HIE_EINVAL);
    cr_assert_eq(hie_audit_checkpoint_sign(signer, "a\nb", &h, note, sizeof(note), &len),
        HIE_EINVAL);
}

/* ---- verifier keys ------------------------------------------------------------------------ */

#define GO_VKEY "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
#define GO_SKEY_B64 "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
#define GO_TEXT                                                                                \
    "If you think cryptography is the answer to your problem,\n"                               \
    "then you don't know what your problem is.\n"
#define GO_SIG_B64                                                                             \
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
#define SUMDB_VKEY "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
#define SUMDB_NOTE                                                                             \
    "go.sum database tree\n65209736\n5+uGFjx6xBZG8ip1+wi77v+grwbhhukIrxEUS8PXvRo=\n\n"          \
    "\xe2\x80\x94 sum.golang.org "                                                             \
    "Az3grnbssgK7ubgFX36gVETtNv0U23qxyAhAMai2QUfeGa3nB/akvkMdlUErfcZz7l/R3cVtYspg3dxXABkGZZKdsQ8=\n"

static int
vkey_parse_str(const char *s, hie_audit_vkey_t *out)
{
    return hie_audit_vkey_parse(hie_span(s, strlen(s)), out);
}

Test(checkpoint, go_note_keys_interoperate)
{
    hie_audit_vkey_t go;
    cr_assert_eq(vkey_parse_str(GO_VKEY, &go), 0);
    cr_assert_str_eq(go.name, "PeterNeumann");
    cr_assert_eq(go.key_id, 0xc74f20a3u);
    /* Go's published signature over its example text verifies with the parsed key. */
    uint8_t sig[68];
    size_t sig_len = 0;
    cr_assert_eq(sodium_base642bin(sig, sizeof(sig), GO_SIG_B64, strlen(GO_SIG_B64), NULL,
        &sig_len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
    cr_assert_eq(sig_len, 68);
    cr_assert_eq(hie_load_be32(sig), go.key_id);
    cr_assert_eq(crypto_sign_verify_detached(sig + 4, (const uint8_t *)GO_TEXT,
        strlen(GO_TEXT), go.public_key), 0);
    /* Go's signer seed, loaded as our key file, prints Go's verifier key exactly. */
    uint8_t skey[33];
    size_t skey_len = 0;
    cr_assert_eq(sodium_base642bin(skey, sizeof(skey), GO_SKEY_B64, strlen(GO_SKEY_B64), NULL,
        &skey_len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
    cr_assert_eq(skey_len, 33);
    cr_assert_eq(skey[0], 0x01);
    hie_audit_signer_t *peter = NULL;
    load_signer_from_seed(skey + 1, "peter.key", "PeterNeumann", &peter);
    hie_audit_vkey_t pv;
    char text[HIE_AUDIT_VKEY_TEXT_BYTES_MAX];
    hie_audit_signer_vkey(peter, &pv);
    cr_assert_eq(hie_audit_vkey_format(&pv, text, sizeof(text)), 0);
    cr_assert_str_eq(text, GO_VKEY);
    hie_audit_signer_destroy(&peter);
}

Test(checkpoint, sum_golang_org_checkpoint_verifies)
{
    hie_audit_vkey_t sumdb;
    hie_audit_checkpoint_t cp;
    cr_assert_eq(vkey_parse_str(SUMDB_VKEY, &sumdb), 0);
    cr_assert_eq(parse_str(SUMDB_NOTE, &cp), 0);
    cr_assert_str_eq(cp.origin, "go.sum database tree");
    cr_assert_eq(cp.head.size, 65209736u);
    cr_assert_eq(hie_audit_checkpoint_verify(&cp, &sumdb, "go.sum database tree"), 0);
    cr_assert_eq(hie_audit_checkpoint_verify(&cp, &vkey, "go.sum database tree"),
        HIE_ENOTFOUND);
}

Test(checkpoint, vkey_round_trip_and_refusals)
{
    char text[HIE_AUDIT_VKEY_TEXT_BYTES_MAX], bad[HIE_AUDIT_VKEY_TEXT_BYTES_MAX + 8];
    hie_audit_vkey_t back;
    cr_assert_eq(hie_audit_vkey_format(&vkey, text, sizeof(text)), 0);
    cr_assert_eq(vkey_parse_str(text, &back), 0);
    cr_assert(memcmp(&back, &vkey, sizeof(back)) == 0);
    cr_assert_eq(hie_audit_vkey_format(&vkey, bad, strlen(text)), HIE_ELIMIT, "no room for NUL");
    /* A '+' inside the base64 is fine (transparency-dev/formats' TEST key). */
    cr_assert_eq(vkey_parse_str("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
        &back), 0);
    static const char *const refused[] = {
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", /* key ID */
        "PeterNeumanN+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", /* name */
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+AhpcZQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", /* type 2 */
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    };
    for (size_t i = 0; i < HIE_ARRAY_LEN(refused); i++) {
        cr_assert_eq(vkey_parse_str(refused[i], &back), HIE_EINVAL, "vkey %zu", i);
        cr_assert_eq(back.key_id, 0, "zeroed on failure");
    }
    memset(bad, 'n', 257);
    snprintf(bad + 257, sizeof(bad) - 257, "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izW");
    cr_assert_eq(vkey_parse_str(bad, &back), HIE_ELIMIT);
}

/* ---- the key file ------------------------------------------------------------------------- */

Test(checkpoint, key_file_is_private_and_exclusive)
{
    struct stat sb;
    cr_assert_eq(stat(key_path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    cr_assert_eq(sb.st_size, 32);
    cr_assert_eq(hie_audit_signer_generate(key_path), -EEXIST, "never overwrites");
    DIR *d = opendir(tmpdir); /* written whole beside it, then linked: nothing left over */
    cr_assert_not_null(d);
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        cr_assert_null(strstr(e->d_name, ".new."), "left over: %s", e->d_name);
    }
    closedir(d);
    hie_audit_signer_t *s = NULL;
    cr_assert_eq(chmod(key_path, 0644), 0);
    cr_assert_eq(hie_audit_signer_load(&s, key_path, ORIGIN), HIE_EDENIED, "mode 0644");
    cr_assert_null(s);
    cr_assert_eq(chmod(key_path, 0640), 0);
    cr_assert_eq(hie_audit_signer_load(&s, key_path, ORIGIN), HIE_EDENIED, "mode 0640");
    cr_assert_eq(chmod(key_path, 0400), 0);
    cr_assert_eq(hie_audit_signer_load(&s, key_path, ORIGIN), 0, "mode 0400");
    hie_audit_signer_destroy(&s);
    cr_assert_null(s);
    hie_audit_signer_destroy(&s); /* NULL-safe */
}

Test(checkpoint, key_file_refusals)
{
    char link[300], shortp[300], dir[300];
    hie_audit_signer_t *s = NULL;
    snprintf(link, sizeof(link), "%s/link.key", tmpdir);
    cr_assert_eq(symlink(key_path, link), 0);
    cr_assert_eq(hie_audit_signer_load(&s, link, ORIGIN), -ELOOP, "symlink");
    cr_assert_eq(hie_audit_signer_generate(link), -EEXIST, "not through a symlink");
    snprintf(shortp, sizeof(shortp), "%s/short.key", tmpdir);
    test_write_file(NULL, shortp, "0123456789012345678901234567890", 31);
    cr_assert_eq(hie_audit_signer_load(&s, shortp, ORIGIN), HIE_EINVAL, "31 bytes");
    snprintf(dir, sizeof(dir), "%s/d.key", tmpdir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_neq(hie_audit_signer_load(&s, dir, ORIGIN), 0, "a directory");
    snprintf(dir, sizeof(dir), "%s/missing.key", tmpdir);
    cr_assert_eq(hie_audit_signer_load(&s, dir, ORIGIN), -ENOENT);
    cr_assert_eq(hie_audit_signer_load(&s, key_path, ""), HIE_EINVAL);
    cr_assert_eq(hie_audit_signer_load(&s, key_path, "a+b"), HIE_EINVAL);
    cr_assert_eq(hie_audit_signer_load(&s, key_path, "a b"), HIE_EINVAL);
    char longname[300];
    memset(longname, 'k', 257);
    longname[257] = '\0';
    cr_assert_eq(hie_audit_signer_load(&s, key_path, longname), HIE_ELIMIT);
    cr_assert_null(s);
}

Test(checkpoint, same_seed_same_key_and_signatures)
{
    uint8_t seed[32];
    memset(seed, 0x42, sizeof(seed));
    hie_audit_signer_t *a = NULL, *b = NULL;
    load_signer_from_seed(seed, "a.key", ORIGIN, &a);
    load_signer_from_seed(seed, "b.key", ORIGIN, &b);
    char na[HIE_AUDIT_NOTE_SIGNED_BYTES_MAX], nb[HIE_AUDIT_NOTE_SIGNED_BYTES_MAX];
    sign_note(a, ORIGIN, 1000, na);
    sign_note(b, ORIGIN, 1000, nb);
    cr_assert_str_eq(na, nb, "Ed25519 is deterministic");
    hie_audit_signer_destroy(&a);
    hie_audit_signer_destroy(&b);
}

Test(checkpoint, sign_without_signer_aborts, .signal = SIGABRT)
{
    test_tmpdir_remove(tmpdir); /* .fini does not run after the abort */
    hie_audit_tree_head_t h = some_head(1);
    char note[HIE_AUDIT_NOTE_SIGNED_BYTES_MAX];
    size_t len = 0;
    int rc = hie_audit_checkpoint_sign(NULL, ORIGIN, &h, note, sizeof(note), &len);
    (void)rc;
}

Test(checkpoint, verify_without_origin_aborts, .signal = SIGABRT)
{
    test_tmpdir_remove(tmpdir); /* .fini does not run after the abort */
    hie_audit_checkpoint_t cp;
    memset(&cp, 0, sizeof(cp));
    int rc = hie_audit_checkpoint_verify(&cp, &vkey, NULL);
    (void)rc;
}
