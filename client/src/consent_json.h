/*
 * consent_json.h - a consent directive as JSON: the strict directive-file parser and the
 * renderings (JSON in the file's shape, a one-line table row) shared by the member command
 * line (`hie consent`, client/src/cli_consent.c) and the operator's (`hiectl consent`,
 * node/src/hiectl.c). Not part of libhie_client: each executable compiles consent_json.c.
 *
 * The directive file is JSON in a FHIR-Consent-like shape (hie --help, README "Command line:
 * consent and audit"), parsed strictly: an unknown key, a wrong type, a code outside its
 * vocabulary (hie/consent.h), a time that is not UTC ISO 8601 or an inverted period is refused
 * with its JSON path named ("provision.provisions[0].security_labels[1]"), then the result goes
 * through hie_consent_directive_validate(), the node's own check.
 *
 * Limits: files of at most max_bytes (callers use HIE_CONSENT_JSON_FILE_BYTES_MAX), raw JSON
 * nesting of at most HIE_CONSENT_JSON_DEPTH_MAX (checked before jansson, whose parser
 * recurses, sees the text); provision trees of at most HIE_CONSENT_DEPTH_MAX levels and
 * HIE_CONSENT_PROVISIONS_MAX provisions, walked with bounded queues, never recursively.
 *
 * Patient data: error texts name JSON paths and fields, never values. Threads: any; nothing
 * here keeps state.
 */
#ifndef HIE_CONSENT_JSON_H
#define HIE_CONSENT_JSON_H

#include "hie/proto.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* A directive file is a few KiB; anything near this is not a directive. */
#define HIE_CONSENT_JSON_FILE_BYTES_MAX (256u * 1024u)
/* JSON files (a directive, a saved report) nest far less than this. */
#define HIE_CONSENT_JSON_DEPTH_MAX 32u
/* A JSON path in an error: 8 levels of "provisions[63]." and a field fit easily. */
#define HIE_CONSENT_JSON_PATH_BYTES 256u
/* Scratch for one directive: the provisions, their lists and the walk's queue. */
#define HIE_CONSENT_JSON_ARENA_BYTES (1024u * 1024u)
/* Room for any time hie_consent_json_time_format() writes (a nine-digit year fits). */
#define HIE_CONSENT_JSON_TIME_BYTES 32u
/* Room for a loader error: a path, a position and jansson's text. */
#define HIE_CONSENT_JSON_ERR_BYTES 1024u

/* Why a directive was refused. */
typedef struct hie_consent_json_err {
    char path[HIE_CONSENT_JSON_PATH_BYTES]; /* the JSON path, or the validator's field name */
    const char *why;                        /* static text */
    bool invalid;                           /* false: the file's shape; true: the validator */
} hie_consent_json_err_t;

/* "YYYY-MM-DD" (midnight UTC) or "YYYY-MM-DDThh:mm:ss[.fraction](Z|+00:00)", years
 * 1970..9999, into ms since the epoch. Only UTC is accepted: a local offset would be a silent
 * guess. [out] *ms written on success. Returns 0 or HIE_EINVAL. */
HIE_MUST_CHECK int hie_consent_json_time_parse(const char *s, int64_t *ms);
/* ms since the epoch as "YYYY-MM-DDThh:mm:ss[.mmm]Z" into buf (at least
 * HIE_CONSENT_JSON_TIME_BYTES, asserted); "-" for 0 or a negative time. Returns buf. */
const char *hie_consent_json_time_format(int64_t ms, char *buf, size_t buf_bytes);
/* The next character of s (NUL-terminated, s[0] != 0): its length in bytes (1 for a byte
 * that starts no valid UTF-8 sequence), and in *unsafe whether it must not reach a terminal
 * as it is: an ASCII or C1 control (U+0080..U+009F), a bidirectional or line-separating
 * format character (U+200E/F, U+2028..U+202E, U+2066..U+2069), which could move the cursor,
 * forge a line or reverse the text an operator reads, or a byte that is not UTF-8 (a lone
 * 0x9B is CSI on an 8-bit terminal). */
size_t hie_text_char(const char *s, bool *unsafe);
/* The unsafe sequence at s: its length, or 0 when the next character is safe. */
size_t hie_text_unsafe_len(const char *s);

/* Reads path ("-": stdin) whole, at most max_bytes. [out] *buf: malloc'd, NUL-terminated, the
 * caller frees it (wiping it first when it holds PHI); *len. Returns 0, HIE_ELIMIT (larger),
 * HIE_ENOMEM or -errno. Blocks on the file. */
HIE_MUST_CHECK int hie_consent_json_file_read(const char *path, size_t max_bytes, char **buf,
    size_t *len);
/* Reads and parses a JSON file: duplicate keys refused, nesting bounded. [out] *out owned by
 * the caller (json_decref), NULL on failure; err (err_bytes > 0) then says why in one lowercase
 * line that names path ("cannot read PATH: ...", "PATH:LINE:COL: invalid JSON: ..."), control
 * characters replaced. Returns 0, HIE_EINVAL (not JSON, too deep) or what file_read returns. */
HIE_MUST_CHECK int hie_consent_json_load(const char *path, size_t max_bytes, json_t **out,
    char *err, size_t err_bytes);
/* A JSON string of s (NULL: ""); bytes that are not valid UTF-8 become '?'. Never NULL (JSON
 * null when out of memory). */
json_t *hie_consent_json_str(const char *s);

/* Parses the directive file top into d for patient (org_id, mrn), then checks it with
 * hie_consent_directive_validate(). [in] top, org_id and mrn borrowed: d points into them and
 * into arena (at least HIE_CONSENT_JSON_ARENA_BYTES free), so all must outlive d; [out] d and
 * pid (d->patient) initialised here. Returns 0, or HIE_EINVAL with *err filled. */
HIE_MUST_CHECK int hie_consent_json_directive(json_t *top, const char *org_id, const char *mrn,
    hie_arena_t *arena, Hie__V1__ConsentDirective *d, Hie__V1__PatientId *pid,
    hie_consent_json_err_t *err);

/* A directive from the node as JSON in the file's shape plus the broker's fields (id, version,
 * patient, euid, submitted_*, revoked_*). Returns a new reference (json_decref), or NULL when
 * the tree is over the limits or memory ran out. */
json_t *hie_consent_json_render(const Hie__V1__ConsentDirective *d);
/* {"directives": [...]} for a listing. Returns a new reference, or NULL as above. */
json_t *hie_consent_json_list(Hie__V1__ConsentDirective *const *directives, size_t count);
/* A listing as a table: a header and one row per directive (id, version, status, date,
 * submitted_by, revoked, a summary of the root provision), or "no consent directives on file".
 * Text from the node has its control characters replaced. */
void hie_consent_json_table(FILE *f, Hie__V1__ConsentDirective *const *directives,
    size_t count);

#endif
