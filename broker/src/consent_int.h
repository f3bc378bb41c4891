/*
 * consent_int.h - declarations shared by the consent_*.c files of broker/ (style.md 3.1:
 * private to the module). The compiled directive layout lives here, with the small helpers
 * both the compiler and the evaluators use.
 *
 * Compiled directive (all integers big-endian, no alignment assumed, read with hie_load_be*):
 *
 *   off  size  header
 *    0    4    magic "HCN1"
 *    4    4    total length in bytes (equals the span's length)
 *    8    8    checksum of bytes [16, total length) (hie_consent__checksum)
 *   16    8    version
 *   24    8    submitted_index
 *   32    8    date_ms (int64 as two's complement)
 *   40    8    period start_ms
 *   48    8    period end_ms
 *   56    1    status (1 ACTIVE, 2 INACTIVE)
 *   57    1    flags (bit 0: revoked); other bits zero
 *   58    1    id length (1..HIE_CONSENT_ID_BYTES_MAX)
 *   59    1    provision count (1..HIE_CONSENT_PROVISIONS_MAX)
 *   60    4    zero
 *   64    id   the id bytes (no NUL)
 *   then `count` provisions in pre-order, each:
 *    0    1    effective type (1 DENY, 2 PERMIT)
 *    1    1    depth (root 1)
 *    2    1    parent index (0xff for the root, which is provision 0 and the only one)
 *    3    1    number of org-id actors
 *    4    4    role mask (HIE_CONSENT_ROLE_BIT of role actors)
 *    8    4    purpose mask
 *   12    4    action mask
 *   16    4    label mask
 *   20    4    class mask
 *   24    8    period start_ms   32  8  period end_ms
 *   40    8    data_period start 48  8  data_period end
 *   56         org ids: each a length byte (1..HIE_ORG_ID_BYTES_MAX) and the bytes
 *
 * Any single-byte change is detected by the checksum (see hie_consent__checksum); a
 * truncation or an extension breaks the length field's agreement with the span.
 */
#ifndef HIE_CONSENT_INT_H
#define HIE_CONSENT_INT_H

#include "hie/consent.h"

#define HIE_CONSENT__MAGIC "HCN1"
#define HIE_CONSENT__HEADER_BYTES 64u
#define HIE_CONSENT__PROV_FIXED_BYTES 56u
#define HIE_CONSENT__HASHED_FROM 16u
#define HIE_CONSENT__ROOT_PARENT 0xffu
#define HIE_CONSENT__FLAG_REVOKED 0x01u

/* Offsets in the header and in a provision's fixed part. */
enum {
    HIE_CONSENT__H_LEN = 4,
    HIE_CONSENT__H_HASH = 8,
    HIE_CONSENT__H_VERSION = 16,
    HIE_CONSENT__H_INDEX = 24,
    HIE_CONSENT__H_DATE = 32,
    HIE_CONSENT__H_START = 40,
    HIE_CONSENT__H_END = 48,
    HIE_CONSENT__H_STATUS = 56,
    HIE_CONSENT__H_FLAGS = 57,
    HIE_CONSENT__H_IDLEN = 58,
    HIE_CONSENT__H_COUNT = 59,
    HIE_CONSENT__H_ZERO = 60,
    HIE_CONSENT__P_TYPE = 0,
    HIE_CONSENT__P_DEPTH = 1,
    HIE_CONSENT__P_PARENT = 2,
    HIE_CONSENT__P_ORGS = 3,
    HIE_CONSENT__P_ROLES = 4,
    HIE_CONSENT__P_PURPOSES = 8,
    HIE_CONSENT__P_ACTIONS = 12,
    HIE_CONSENT__P_LABELS = 16,
    HIE_CONSENT__P_CLASSES = 20,
    HIE_CONSENT__P_START = 24,
    HIE_CONSENT__P_END = 32,
    HIE_CONSENT__P_DATA_START = 40,
    HIE_CONSENT__P_DATA_END = 48,
};
_Static_assert(HIE_CONSENT__HEADER_BYTES == 64u && HIE_CONSENT__PROV_FIXED_BYTES == 56u,
    "HIE_CONSENT_COMPILED_BYTES_MAX in hie/limits.h assumes these sizes");
_Static_assert(HIE_CONSENT_LABELS_COUNT <= 16, "REDACT bits must stay below PART2_NOTICE");
_Static_assert(HIE_CONSENT_CLASSES_COUNT <= 32, "a class set is a 32-bit mask");
#define HIE_CONSENT__CLASSES_KNOWN (((1u << HIE_CONSENT_CLASSES_COUNT) - 1u) & ~1u)

/* The reasons (header rule 5): one spelling for both evaluators. */
#define HIE_CONSENT__R_PERMIT "consent-permit"
#define HIE_CONSENT__R_DENY "consent-deny"
#define HIE_CONSENT__R_REDACT "consent-redact"
#define HIE_CONSENT__R_OPT_IN "implicit-opt-in"
#define HIE_CONSENT__R_OPT_OUT "implicit-opt-out"
#define HIE_CONSENT__R_BREAK_GLASS "break-glass"
#define HIE_CONSENT__R_NO_BREAK_GLASS "break-glass-not-allowed"
#define HIE_CONSENT__R_PART2 "part2-recipient-not-named"
#define HIE_CONSENT__R_ERROR "evaluation-error"

/* The checksum: FNV-1a's step (xor, multiply by the 64-bit FNV prime) applied to each
 * big-endian 8-byte word, then to each byte of the tail. Every step is a bijection of the
 * state for a fixed input word, and of the input word for a fixed state, so a change confined
 * to one word (any one-byte change, any single bit flip) always changes the result; eight
 * times fewer serial multiplies than byte-wise FNV-1a (it was a third of a decision's time).
 * It detects corruption, not forgery: the LMDB file is not an adversary's input. */
static inline uint64_t
hie_consent__checksum(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        h = (h ^ hie_load_be64(p + i)) * 0x100000001b3ull;
    }
    for (; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

static inline int64_t
hie_consent__load_i64(const uint8_t *p)
{
    return (int64_t)hie_load_be64(p); /* two's complement on every target we build for */
}

/* start inclusive, end exclusive, 0 = open on that side. */
static inline bool
hie_consent__in_period(int64_t start_ms, int64_t end_ms, int64_t t_ms)
{
    return (start_ms == 0 || t_ms >= start_ms) && (end_ms == 0 || t_ms < end_ms);
}

/* Checks the request and policy fields both evaluators rely on. Returns 0 or HIE_EINVAL. */
int hie_consent__inputs_check(const hie_consent_policy_t *policy,
    const hie_consent_request_t *req);

/* Writes the fail-closed decision into out and returns rc (non-zero). */
int hie_consent__fail(hie_consent_decision_t *out, int rc);

/* Copies id (len bytes, len <= HIE_CONSENT_ID_BYTES_MAX) into out->directive_id. */
void hie_consent__set_directive(hie_consent_decision_t *out, const char *id, size_t len,
    uint64_t version);

/* The high-water-mark confidentiality of a content's labels (header rule 7): carried is the
 * content's label set, sensitive_disclosed says whether a sensitivity label goes out. */
enum hie_consent_label hie_consent__high_water(uint32_t carried, bool sensitive_disclosed);

#endif
