/*
 * checkpoint.c - C2SP tlog-checkpoint in a C2SP signed note, signed with Ed25519: formatting
 * and signing with the node's key, the strict parser, verification against a verifier key in
 * its text form, and the node's signing key file.
 *
 * Note format (signed-note): text ending in a newline, a blank line, then signature lines
 * "— <key name> <base64(key ID (4 bytes, big-endian) || signature)>\n"; the text is separated
 * from the signatures by the LAST blank line, and the signature covers the text with its final
 * newline. Checkpoint body (tlog-checkpoint): "<origin>\n<size>\n<base64 root>\n".
 *
 * The parser takes bytes from peers and auditors: it refuses an oversize note before reading
 * it, checks UTF-8 and control characters over the whole note, and every loop is bounded by
 * the note's length or HIE_AUDIT_NOTE_SIGNATURES_MAX. It never copies more than a key name or
 * origin into fixed buffers, each length-checked first.
 *
 * The signing key (one owner, style.md 3.5): a 32-byte seed file, mode 0600, loaded like the
 * MPI's data key (mpi/src/seal.c); the expanded Ed25519 secret key lives in sodium_malloc
 * memory made read-only, and sodium_free wipes it. Callers: node (signing timer, auditors'
 * checkpoint requests), tests, tests/fuzz/fuzz_checkpoint.c.
 */
#include "audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIGNER_MAGIC 0x53494731u /* "SIG1" */
#define SIG_TYPE_ED25519 0x01u
#define EM_DASH "\xe2\x80\x94"
#define SIG_PREFIX EM_DASH " "
#define SIG_PREFIX_BYTES 4u
#define ROOT_B64_BYTES 44u  /* base64 of 32 bytes, padded */
#define SIG_B64_BYTES 92u   /* base64 of key ID (4) || Ed25519 signature (64) */
#define VKEY_B64_BYTES 44u  /* base64 of 0x01 || public key (33) */
#define SIG_MIN_BYTES 5u    /* key ID and at least one byte (as Go's note package) */
#define SIZE_DIGITS_MAX 19u /* HIE_AUDIT_TREE_SIZE_MAX = 9223372036854775808 */
/* "— " name " " base64 "\n" NUL; origin "\n" size "\n" root "\n" NUL */
#define SIG_LINE_BYTES_MAX                                                                     \
    (SIG_PREFIX_BYTES + HIE_AUDIT_KEY_NAME_BYTES_MAX + 1u + SIG_B64_BYTES + 2u)
#define BODY_BYTES_MAX                                                                         \
    (HIE_AUDIT_ORIGIN_BYTES_MAX + 1u + SIZE_DIGITS_MAX + 1u + ROOT_B64_BYTES + 2u)

_Static_assert(sodium_base64_ENCODED_LEN(HIE_AUDIT_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL) ==
    ROOT_B64_BYTES + 1u, "root base64 size");
_Static_assert(sodium_base64_ENCODED_LEN(4u + HIE_AUDIT_ED25519_SIG_BYTES,
    sodium_base64_VARIANT_ORIGINAL) == SIG_B64_BYTES + 1u, "signature base64 size");
_Static_assert(sodium_base64_ENCODED_LEN(1u + HIE_AUDIT_ED25519_PUBLIC_BYTES,
    sodium_base64_VARIANT_ORIGINAL) == VKEY_B64_BYTES + 1u, "vkey base64 size");
_Static_assert(HIE_AUDIT_ED25519_SIG_BYTES == crypto_sign_BYTES, "signature size");
_Static_assert(HIE_AUDIT_ED25519_PUBLIC_BYTES == crypto_sign_PUBLICKEYBYTES, "public key size");
_Static_assert(HIE_AUDIT_KEY_SEED_BYTES == crypto_sign_SEEDBYTES, "seed size");
_Static_assert(BODY_BYTES_MAX + 1u + SIG_LINE_BYTES_MAX <= HIE_AUDIT_NOTE_SIGNED_BYTES_MAX,
    "a note signed here always fits");

struct secret {
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

struct hie_audit_signer {
    uint32_t magic;
    hie_audit_vkey_t vkey;
    struct secret *s; /* sodium_malloc, read-only after load */
};

/* ---- small lexical helpers ---------------------------------------------------------------- */

/* 1..len bytes of printable ASCII: an origin (spaces allowed: sum.golang.org's origin is "go.sum
 * database tree"), or a key name we write or configure (no space, no '+'). */
static bool
ascii_text(const uint8_t *p, size_t len, bool is_origin)
{
    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] >= 0x7f || (!is_origin && (p[i] == ' ' || p[i] == '+'))) {
            return false;
        }
    }
    return true;
}

/* Decodes one UTF-8 sequence at p (len > 0 bytes left). Returns its length (1..4) and the code
 * point, or 0 for an invalid sequence (truncated, overlong, surrogate, above U+10FFFF). */
static size_t
utf8_decode(const uint8_t *p, size_t len, uint32_t *cp)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint8_t c = p[0];
    size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                                                 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 0 || n > len) {
        return 0;
    }
    uint32_t v = n == 1 ? c : (uint32_t)(c & (0x7f >> n));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (p[i] & 0x3fu);
    }
    if (v < min_cp[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    *cp = v;
    return n;
}

/* Unicode White_Space (what Go's unicode.IsSpace accepts; C2SP names must not contain any). */
static bool
unicode_space(uint32_t cp)
{
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* signed-note: valid UTF-8, no ASCII control character other than newline. */
static bool
note_chars_ok(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp = 0;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0 || (cp < 0x20 && cp != '\n')) {
            return false;
        }
        i += n;
    }
    return true;
}

/* A signature line's key name: non-empty, no Unicode space, no '+' (the note is valid UTF-8). */
static bool
sig_name_ok(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp = 0;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0 || cp == '+' || unicode_space(cp)) {
            return false;
        }
        i += n;
    }
    return len > 0;
}

/* [A-Za-z0-9+/]* then at most two '='. Checked before libsodium decodes: its decoder (1.0.18)
 * takes some bytes >= 0x80 for base64 digits (found by fuzz_checkpoint: an em dash inside a
 * root line decoded to 32 bytes), which would make the accepted text non-canonical. */
static bool
b64_alphabet_ok(const uint8_t *p, size_t len)
{
    size_t pad = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        bool digit = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '+' || c == '/';
        if (c == '=') {
            pad++;
        } else if (!digit || pad > 0) {
            return false;
        }
    }
    return pad <= 2;
}

/* Strict standard base64 with padding, whole input, canonical (libsodium refuses non-zero
 * trailing bits). Returns true and the decoded length. */
static bool
b64_decode(const uint8_t *p, size_t len, uint8_t *out, size_t out_max, size_t *out_len)
{
    const char *end = NULL;
    *out_len = 0;
    if (len == 0 || len % 4 != 0 || !b64_alphabet_ok(p, len)) {
        return false;
    }
    if (sodium_base642bin(out, out_max, (const char *)p, len, NULL, out_len, &end,
            sodium_base64_VARIANT_ORIGINAL) != 0) {
        return false;
    }
    return end == (const char *)p + len;
}

static uint32_t
key_id_compute(const char *name, size_t name_len, const uint8_t pub[HIE_AUDIT_ED25519_PUBLIC_BYTES])
{
    static const uint8_t sep[2] = {0x0a, SIG_TYPE_ED25519};
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)name, name_len);
    crypto_hash_sha256_update(&st, sep, sizeof(sep));
    crypto_hash_sha256_update(&st, pub, HIE_AUDIT_ED25519_PUBLIC_BYTES);
    crypto_hash_sha256_final(&st, h);
    return hie_load_be32(h);
}

/* An origin or key name we write: NUL-terminated, 1..max bytes as ascii_text() says.
 * Returns 0, HIE_EINVAL or HIE_ELIMIT. */
static int
text_check(const char *s, size_t max, bool is_origin, size_t *len)
{
    *len = strnlen(s, max + 1);
    if (*len > max) {
        return HIE_ELIMIT;
    }
    return ascii_text((const uint8_t *)s, *len, is_origin) ? 0 : HIE_EINVAL;
}

/* ---- parsing ------------------------------------------------------------------------------ */

static int
parse_size(const uint8_t *p, size_t len, uint64_t *out, hie_errinfo_t *info)
{
    if (len == 0 || (len > 1 && p[0] == '0')) {
        return hie_errinfo_set(info, HIE_EPROTO, "checkpoint.size", "empty or leading zero");
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return hie_errinfo_set(info, HIE_EPROTO, "checkpoint.size", "not a decimal");
        }
    }
    if (len > SIZE_DIGITS_MAX) {
        return hie_errinfo_set(info, HIE_ELIMIT, "checkpoint.size", "too large");
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        v = v * 10u + (uint64_t)(p[i] - '0'); /* 19 digits < 2^64: no overflow */
    }
    if (v > HIE_AUDIT_TREE_SIZE_MAX) {
        return hie_errinfo_set(info, HIE_ELIMIT, "checkpoint.size", "too large");
    }
    *out = v;
    return 0;
}

/* Takes the line starting at *pos (ending in '\n' before end) and moves *pos past it. */
static bool
line_take(const uint8_t *p, size_t end, size_t *pos, size_t *start, size_t *len)
{
    const uint8_t *nl = *pos < end ? memchr(p + *pos, '\n', end - *pos) : NULL;
    if (nl == NULL) {
        return false;
    }
    *start = *pos;
    *len = (size_t)(nl - (p + *pos));
    *pos += *len + 1;
    return true;
}

/* The body p[0..len): exactly origin, size and root lines. */
static int
parse_body(const uint8_t *p, size_t len, hie_audit_checkpoint_t *cp, hie_errinfo_t *info)
{
    size_t pos = 0, s = 0, n = 0;
    if (!line_take(p, len, &pos, &s, &n) || n == 0) {
        return hie_errinfo_set(info, HIE_EPROTO, "checkpoint.origin", "missing");
    }
    if (n > HIE_AUDIT_ORIGIN_BYTES_MAX) {
        return hie_errinfo_set(info, HIE_ELIMIT, "checkpoint.origin", "too long");
    }
    if (!ascii_text(p + s, n, true)) {
        return hie_errinfo_set(info, HIE_EPROTO, "checkpoint.origin", "not printable ascii");
    }
    memcpy(cp->origin, p + s, n);
    cp->origin[n] = '\0';
    if (!line_take(p, len, &pos, &s, &n)) {
        return hie_errinfo_set(info, HIE_EPROTO, "checkpoint.size", "missing");
    }
    int rc = parse_size(p + s, n, &cp->head.size, info);
    if (rc != 0) {
        return rc;
    }
    size_t root_len = 0;
    if (!line_take(p, len, &pos, &s, &n) || n != ROOT_B64_BYTES ||
        !b64_decode(p + s, n, cp->head.root.bytes, HIE_AUDIT_HASH_BYTES, &root_len) ||
        root_len != HIE_AUDIT_HASH_BYTES) {
        return hie_errinfo_set(info, HIE_EPROTO, "checkpoint.root", "not base64 of 32 bytes");
    }
    if (pos != len) {
        return hie_errinfo_set(info, HIE_EPROTO, "checkpoint.body", "extension lines");
    }
    return 0;
}

/* One signature line p[0..len) (without its newline). */
static int
parse_sig_line(const uint8_t *p, size_t len, hie_audit_note_sig_t *sig, hie_errinfo_t *info)
{
    uint8_t raw[HIE_AUDIT_NOTE_BYTES_MAX]; /* a line's base64 decodes to less than the note */
    if (len < SIG_PREFIX_BYTES || memcmp(p, SIG_PREFIX, SIG_PREFIX_BYTES) != 0) {
        return hie_errinfo_set(info, HIE_EPROTO, "note.signature", "no em dash and space");
    }
    p += SIG_PREFIX_BYTES;
    len -= SIG_PREFIX_BYTES;
    const uint8_t *sp = memchr(p, ' ', len);
    if (sp == NULL) {
        return hie_errinfo_set(info, HIE_EPROTO, "note.signature", "no space after the name");
    }
    size_t name_len = (size_t)(sp - p), raw_len = 0;
    if (name_len > HIE_AUDIT_KEY_NAME_BYTES_MAX) {
        return hie_errinfo_set(info, HIE_ELIMIT, "note.signature.name", "too long");
    }
    if (!sig_name_ok(p, name_len)) {
        return hie_errinfo_set(info, HIE_EPROTO, "note.signature.name", "empty, space or plus");
    }
    if (!b64_decode(sp + 1, len - name_len - 1, raw, sizeof(raw), &raw_len) ||
        raw_len < SIG_MIN_BYTES) {
        return hie_errinfo_set(info, HIE_EPROTO, "note.signature", "bad base64");
    }
    sig->name = hie_span(p, name_len);
    sig->key_id = hie_load_be32(raw);
    sig->sig_bytes = raw_len - 4;
    if (sig->sig_bytes == HIE_AUDIT_ED25519_SIG_BYTES) {
        memcpy(sig->sig, raw + 4, HIE_AUDIT_ED25519_SIG_BYTES);
    }
    return 0;
}

static int
parse_sigs(const uint8_t *p, size_t len, hie_audit_checkpoint_t *cp, hie_errinfo_t *info)
{
    size_t pos = 0, s = 0, n = 0;
    while (pos < len) {
        if (!line_take(p, len, &pos, &s, &n)) {
            return hie_errinfo_set(info, HIE_EPROTO, "note.signature", "no final newline");
        }
        if (cp->sigs_count == HIE_AUDIT_NOTE_SIGNATURES_MAX) {
            return hie_errinfo_set(info, HIE_ELIMIT, "note.signature", "too many");
        }
        int rc = parse_sig_line(p + s, n, &cp->sigs[cp->sigs_count], info);
        if (rc != 0) {
            return rc;
        }
        cp->sigs_count++;
    }
    if (cp->sigs_count == 0) {
        return hie_errinfo_set(info, HIE_EPROTO, "note.signature", "none");
    }
    return 0;
}

int
hie_audit_checkpoint_parse(hie_span_t note, hie_audit_checkpoint_t *out, hie_errinfo_t *info)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(note.ptr != NULL || note.len == 0);
    memset(out, 0, sizeof(*out));
    if (note.len > HIE_AUDIT_NOTE_BYTES_MAX) {
        return hie_errinfo_set(info, HIE_ELIMIT, "note", "too long");
    }
    const uint8_t *p = note.ptr;
    if (note.len < 2 || p[note.len - 1] != '\n' || !note_chars_ok(p, note.len)) {
        return hie_errinfo_set(info, HIE_EPROTO, "note", "not newline-terminated utf-8 text");
    }
    size_t blank = 0; /* index of the last blank line's newline; 0: none (the text is not empty) */
    for (size_t i = note.len - 1; i > 0 && blank == 0; i--) {
        if (p[i] == '\n' && p[i - 1] == '\n') {
            blank = i;
        }
    }
    if (blank == 0) {
        return hie_errinfo_set(info, HIE_EPROTO, "note", "no blank line before signatures");
    }
    int rc = parse_body(p, blank, out, info);
    rc = rc == 0 ? parse_sigs(p + blank + 1, note.len - blank - 1, out, info) : rc;
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->body = hie_span(p, blank);
    return 0;
}

/* ---- verification and verifier keys -------------------------------------------------------- */

int
hie_audit_checkpoint_verify(const hie_audit_checkpoint_t *cp, const hie_audit_vkey_t *vkey,
    const char *origin)
{
    HIE_ASSERT(cp != NULL && vkey != NULL && origin != NULL);
    HIE_ASSERT(cp->sigs_count <= HIE_AUDIT_NOTE_SIGNATURES_MAX);
    if (strcmp(cp->origin, origin) != 0) {
        return HIE_EDENIED;
    }
    size_t name_len = strnlen(vkey->name, sizeof(vkey->name)), verified = 0;
    HIE_ASSERT(name_len < sizeof(vkey->name));
    for (size_t i = 0; i < cp->sigs_count; i++) {
        const hie_audit_note_sig_t *sig = &cp->sigs[i];
        if (sig->name.len != name_len || memcmp(sig->name.ptr, vkey->name, name_len) != 0 ||
            sig->key_id != vkey->key_id) {
            continue; /* another key: ignored (C2SP signed-note) */
        }
        if (sig->sig_bytes != HIE_AUDIT_ED25519_SIG_BYTES ||
            crypto_sign_verify_detached(sig->sig, cp->body.ptr, cp->body.len,
                vkey->public_key) != 0) {
            return HIE_EDENIED; /* a known key's signature fails: reject the whole note */
        }
        verified++;
    }
    return verified > 0 ? 0 : HIE_ENOTFOUND;
}

static bool
hex8_parse(const uint8_t *p, uint32_t *out)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 8; i++) {
        uint8_t c = p[i];
        uint32_t d = c >= '0' && c <= '9' ? (uint32_t)(c - '0')
                   : c >= 'a' && c <= 'f' ? (uint32_t)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (uint32_t)(c - 'A' + 10) : 16u;
        if (d > 15) {
            return false;
        }
        v = (v << 4) | d;
    }
    *out = v;
    return true;
}

int
hie_audit_vkey_parse(hie_span_t text, hie_audit_vkey_t *out)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(text.ptr != NULL || text.len == 0);
    memset(out, 0, sizeof(*out));
    const uint8_t *plus = text.len > 0 ? memchr(text.ptr, '+', text.len) : NULL;
    if (plus == NULL) {
        return HIE_EINVAL;
    }
    size_t name_len = (size_t)(plus - text.ptr);
    if (name_len > HIE_AUDIT_KEY_NAME_BYTES_MAX) {
        return HIE_ELIMIT;
    }
    size_t rest = text.len - name_len - 1, key_len = 0;
    const uint8_t *hex = plus + 1;
    uint8_t key[1 + HIE_AUDIT_ED25519_PUBLIC_BYTES];
    uint32_t id = 0;
    if (!ascii_text(text.ptr, name_len, false) || rest != 8 + 1 + VKEY_B64_BYTES ||
        hex[8] != '+' || !hex8_parse(hex, &id) ||
        !b64_decode(hex + 9, VKEY_B64_BYTES, key, sizeof(key), &key_len) ||
        key_len != sizeof(key) || key[0] != SIG_TYPE_ED25519) {
        return HIE_EINVAL;
    }
    if (key_id_compute((const char *)text.ptr, name_len, key + 1) != id) {
        return HIE_EINVAL;
    }
    memcpy(out->name, text.ptr, name_len);
    out->name[name_len] = '\0';
    out->key_id = id;
    memcpy(out->public_key, key + 1, HIE_AUDIT_ED25519_PUBLIC_BYTES);
    return 0;
}

int
hie_audit_vkey_format(const hie_audit_vkey_t *vkey, char *out, size_t out_bytes)
{
    HIE_ASSERT(vkey != NULL && out != NULL);
    HIE_ASSERT(strnlen(vkey->name, sizeof(vkey->name)) < sizeof(vkey->name));
    uint8_t key[1 + HIE_AUDIT_ED25519_PUBLIC_BYTES];
    char b64[VKEY_B64_BYTES + 1], buf[HIE_AUDIT_VKEY_TEXT_BYTES_MAX];
    key[0] = SIG_TYPE_ED25519;
    memcpy(key + 1, vkey->public_key, HIE_AUDIT_ED25519_PUBLIC_BYTES);
    sodium_bin2base64(b64, sizeof(b64), key, sizeof(key), sodium_base64_VARIANT_ORIGINAL);
    int n = snprintf(buf, sizeof(buf), "%s+%08" PRIx32 "+%s", vkey->name, vkey->key_id, b64);
    HIE_ASSERT(n > 0 && (size_t)n < sizeof(buf));
    if ((size_t)n + 1 > out_bytes) {
        return HIE_ELIMIT;
    }
    memcpy(out, buf, (size_t)n + 1);
    return 0;
}

/* ---- the signing key ---------------------------------------------------------------------- */

/* Reads exactly HIE_AUDIT_KEY_SEED_BYTES from a private regular file (as seal.c's key_read). */
static int
seed_read(int fd, uint8_t *out)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        return -errno;
    }
    if (!S_ISREG(sb.st_mode) || (sb.st_mode & 0077) != 0) {
        return HIE_EDENIED; /* group or other may access it: refuse to use it */
    }
    if (sb.st_size != (off_t)HIE_AUDIT_KEY_SEED_BYTES) {
        return HIE_EINVAL;
    }
    size_t got = 0;
    for (unsigned i = 0; got < HIE_AUDIT_KEY_SEED_BYTES && i < 16; i++) {
        ssize_t n = read(fd, out + got, HIE_AUDIT_KEY_SEED_BYTES - got);
        if (n <= 0) {
            return n < 0 ? -errno : HIE_EINVAL;
        }
        got += (size_t)n;
    }
    return got == HIE_AUDIT_KEY_SEED_BYTES ? 0 : HIE_EINVAL;
}

/* fsyncs the folder that holds path, so a new name in it survives a crash. */
static int
dir_sync(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int
hie_audit_signer_generate(const char *path)
{
    HIE_ASSERT(path != NULL);
    if (sodium_init() < 0) {
        return HIE_ENOMEM;
    }
    /* written whole to a file of its own, then linked into place: a kill between the create
     * and the write left an empty key file that every later start refused */
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.new.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        return -EEXIST; /* a key (or a link) is there: never replaced, no seed made for it */
    }
    (void)unlink(tmp); /* one a killed start of the same pid left (a container's pid 1) */
    uint8_t seed[HIE_AUDIT_KEY_SEED_BYTES];
    randombytes_buf(seed, sizeof(seed));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0) {
        ssize_t n = write(fd, seed, sizeof(seed));
        rc = n == (ssize_t)sizeof(seed) ? 0 : (n < 0 ? -errno : -EIO);
        if (rc == 0 && fsync(fd) != 0) {
            rc = -errno;
        }
        close(fd);
        if (rc == 0 && link(tmp, path) != 0) { /* never replaces a key already there */
            rc = -errno;
        }
        unlink(tmp);
    }
    sodium_memzero(seed, sizeof(seed));
    if (rc == 0) {
        rc = dir_sync(path);
    }
    return rc;
}

static int
signer_expand(hie_audit_signer_t *s, const char *name, size_t name_len,
    const uint8_t seed[HIE_AUDIT_KEY_SEED_BYTES])
{
    s->s = sodium_malloc(sizeof(*s->s));
    if (s->s == NULL) {
        return HIE_ENOMEM;
    }
    int rc = crypto_sign_seed_keypair(s->vkey.public_key, s->s->sk, seed);
    HIE_ASSERT(rc == 0);
    sodium_mprotect_readonly(s->s);
    memcpy(s->vkey.name, name, name_len);
    s->vkey.name[name_len] = '\0';
    s->vkey.key_id = key_id_compute(name, name_len, s->vkey.public_key);
    return 0;
}

int
hie_audit_signer_load(hie_audit_signer_t **out, const char *path, const char *name)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(path != NULL && name != NULL);
    *out = NULL;
    size_t name_len = 0;
    int rc = text_check(name, HIE_AUDIT_KEY_NAME_BYTES_MAX, false, &name_len);
    if (rc != 0) {
        return rc;
    }
    if (sodium_init() < 0) { /* idempotent; guarded memory needs it */
        return HIE_ENOMEM;
    }
    uint8_t seed[HIE_AUDIT_KEY_SEED_BYTES];
    /* O_NONBLOCK: a FIFO is refused below (not a regular file), not waited on for a writer */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        return -errno; /* a symlink: -ELOOP */
    }
    rc = seed_read(fd, seed);
    close(fd);
    hie_audit_signer_t *s = NULL;
    if (rc == 0) {
        s = hie_mem_calloc(1, sizeof(*s));
        rc = s == NULL ? HIE_ENOMEM : signer_expand(s, name, name_len, seed);
    }
    sodium_memzero(seed, sizeof(seed));
    if (rc != 0) {
        hie_audit_signer_destroy(&s);
        return rc;
    }
    s->magic = SIGNER_MAGIC;
    *out = s;
    return 0;
}

void
hie_audit_signer_destroy(hie_audit_signer_t **signer)
{
    HIE_ASSERT(signer != NULL);
    hie_audit_signer_t *s = *signer;
    if (s == NULL) {
        return;
    }
    if (s->s != NULL) {
        sodium_free(s->s); /* wipes before freeing */
    }
    s->magic = 0;
    hie_mem_free(s, sizeof(*s));
    *signer = NULL;
}

void
hie_audit_signer_vkey(const hie_audit_signer_t *signer, hie_audit_vkey_t *out)
{
    HIE_ASSERT(signer != NULL && signer->magic == SIGNER_MAGIC);
    HIE_ASSERT(out != NULL);
    *out = signer->vkey;
}

/* ---- signing ------------------------------------------------------------------------------ */

/* Writes "— <name> <base64(key ID || Ed25519(body))>\n" and a NUL into line. Returns its length
 * without the NUL. */
static size_t
sig_line_make(const hie_audit_signer_t *s, hie_span_t body, char line[SIG_LINE_BYTES_MAX])
{
    uint8_t raw[4 + HIE_AUDIT_ED25519_SIG_BYTES];
    char b64[SIG_B64_BYTES + 1];
    hie_store_be32(raw, s->vkey.key_id);
    int rc = crypto_sign_detached(raw + 4, NULL, body.ptr, body.len, s->s->sk);
    HIE_ASSERT(rc == 0);
    sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
    int n = snprintf(line, SIG_LINE_BYTES_MAX, SIG_PREFIX "%s %s\n", s->vkey.name, b64);
    HIE_ASSERT(n > 0 && (size_t)n < SIG_LINE_BYTES_MAX);
    return (size_t)n;
}

int
hie_audit_checkpoint_sign(const hie_audit_signer_t *signer, const char *origin,
    const hie_audit_tree_head_t *head, char *out, size_t out_bytes, size_t *out_len)
{
    HIE_ASSERT(signer != NULL && signer->magic == SIGNER_MAGIC);
    HIE_ASSERT(origin != NULL && head != NULL);
    HIE_ASSERT(out != NULL && out_len != NULL);
    *out_len = 0;
    size_t origin_len = 0;
    int rc = text_check(origin, HIE_AUDIT_ORIGIN_BYTES_MAX, true, &origin_len);
    if (rc != 0) {
        return rc;
    }
    if (head->size > HIE_AUDIT_TREE_SIZE_MAX) {
        return HIE_EINVAL;
    }
    char root[ROOT_B64_BYTES + 1], body[BODY_BYTES_MAX], line[SIG_LINE_BYTES_MAX];
    sodium_bin2base64(root, sizeof(root), head->root.bytes, HIE_AUDIT_HASH_BYTES,
        sodium_base64_VARIANT_ORIGINAL);
    int n = snprintf(body, sizeof(body), "%s\n%" PRIu64 "\n%s\n", origin, head->size, root);
    HIE_ASSERT(n > 0 && (size_t)n < sizeof(body));
    size_t body_len = (size_t)n;
    size_t line_len = sig_line_make(signer, hie_span(body, body_len), line);
    size_t total = body_len + 1 + line_len;
    HIE_ASSERT(total <= HIE_AUDIT_NOTE_BYTES_MAX);
    if (total + 1 > out_bytes) {
        return HIE_ELIMIT;
    }
    memcpy(out, body, body_len);
    out[body_len] = '\n';
    memcpy(out + body_len + 1, line, line_len + 1);
    *out_len = total;
    return 0;
}

int
hie_audit_checkpoint_cosign(const hie_audit_signer_t *signer, hie_span_t note, char *out,
    size_t out_bytes, size_t *out_len)
{
    HIE_ASSERT(signer != NULL && signer->magic == SIGNER_MAGIC);
    HIE_ASSERT(out != NULL && out_len != NULL);
    *out_len = 0;
    hie_audit_checkpoint_t cp;
    int rc = hie_audit_checkpoint_parse(note, &cp, NULL);
    if (rc != 0) {
        return rc;
    }
    HIE_ASSERT((const uint8_t *)out + out_bytes <= note.ptr || (const uint8_t *)out >=
        note.ptr + note.len);
    if (cp.sigs_count == HIE_AUDIT_NOTE_SIGNATURES_MAX) {
        return HIE_ELIMIT;
    }
    size_t name_len = strlen(signer->vkey.name);
    for (size_t i = 0; i < cp.sigs_count; i++) {
        if (cp.sigs[i].key_id == signer->vkey.key_id && cp.sigs[i].name.len == name_len &&
            memcmp(cp.sigs[i].name.ptr, signer->vkey.name, name_len) == 0) {
            return HIE_EINVAL;
        }
    }
    char line[SIG_LINE_BYTES_MAX];
    size_t line_len = sig_line_make(signer, cp.body, line);
    if (note.len + line_len > HIE_AUDIT_NOTE_BYTES_MAX || note.len + line_len + 1 > out_bytes) {
        return HIE_ELIMIT;
    }
    memcpy(out, note.ptr, note.len);
    memcpy(out + note.len, line, line_len + 1);
    *out_len = note.len + line_len;
    return 0;
}

/* ---- accounting identity ----------------------------------------------------------------- */

void
hie_audit_identity_hash(const char *asked_org, const char *asked_mrn,
    const char *const *euids, const int64_t *from_ms, const int64_t *to_ms, size_t n,
    uint8_t out[HIE_AUDIT_HASH_BYTES])
{
    static const char head1[] = "hiebroker accounting identity v1\n";
    static const char head2[] = "hiebroker accounting identity v2\n";
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    if (asked_org == NULL) {
        crypto_hash_sha256_update(&st, (const uint8_t *)head1, sizeof(head1) - 1);
    } else {
        HIE_ASSERT(asked_mrn != NULL);
        char len[24];
        size_t lo = strlen(asked_org), lm = strlen(asked_mrn);
        crypto_hash_sha256_update(&st, (const uint8_t *)head2, sizeof(head2) - 1);
        int k = snprintf(len, sizeof(len), "%zu:", lo);
        crypto_hash_sha256_update(&st, (const uint8_t *)len, (size_t)k);
        crypto_hash_sha256_update(&st, (const uint8_t *)asked_org, lo);
        k = snprintf(len, sizeof(len), "%zu:", lm);
        crypto_hash_sha256_update(&st, (const uint8_t *)len, (size_t)k);
        crypto_hash_sha256_update(&st, (const uint8_t *)asked_mrn, lm);
        crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
    }
    for (size_t i = 0; i < n; i++) {
        char line[64];
        int len = snprintf(line, sizeof(line), " %" PRId64 " %" PRId64 "\n", from_ms[i],
            to_ms[i]);
        HIE_ASSERT(len > 0 && (size_t)len < sizeof(line));
        crypto_hash_sha256_update(&st, (const uint8_t *)euids[i], strlen(euids[i]));
        crypto_hash_sha256_update(&st, (const uint8_t *)line, (size_t)len);
    }
    crypto_hash_sha256_final(&st, out);
}

/* ---- report pages ------------------------------------------------------------------------ */

static void
page_hash_str(crypto_hash_sha256_state *st, const char *s)
{
    char len[24];
    size_t n = strlen(s);
    int k = snprintf(len, sizeof(len), "%zu:", n);
    crypto_hash_sha256_update(st, (const uint8_t *)len, (size_t)k);
    crypto_hash_sha256_update(st, (const uint8_t *)s, n);
    crypto_hash_sha256_update(st, (const uint8_t *)"\n", 1);
}

void
hie_audit_page_hash(const hie_audit_page_query_t *q, const hie_audit_page_entry_t *entries,
    size_t n, uint8_t out[HIE_AUDIT_HASH_BYTES])
{
    static const char head[] = "hiebroker report page v1\n";
    HIE_ASSERT(q != NULL && (n == 0 || entries != NULL));
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)head, sizeof(head) - 1);
    char line[80];
    int k = snprintf(line, sizeof(line), "%d %" PRId64 " %" PRId64 " %d\n", q->kind, q->from_ms,
        q->to_ms, q->include_excluded ? 1 : 0);
    crypto_hash_sha256_update(&st, (const uint8_t *)line, (size_t)k);
    const char *strs[] = {q->patient_org, q->patient_mrn, q->euid, q->org_id, q->token_in,
        q->token_out};
    for (size_t i = 0; i < HIE_ARRAY_LEN(strs); i++) {
        page_hash_str(&st, strs[i] != NULL ? strs[i] : "");
    }
    for (size_t i = 0; i < n; i++) {
        k = snprintf(line, sizeof(line), "%" PRIu64, entries[i].leaf);
        crypto_hash_sha256_update(&st, (const uint8_t *)line, (size_t)k);
        for (size_t p = 0; p < entries[i].n_positions; p++) {
            k = snprintf(line, sizeof(line), " %" PRIu32, entries[i].positions[p]);
            crypto_hash_sha256_update(&st, (const uint8_t *)line, (size_t)k);
        }
        crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
    }
    crypto_hash_sha256_final(&st, out);
}
