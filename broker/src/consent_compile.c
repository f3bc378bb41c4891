/*
 * consent_compile.c - hie_consent_compile(): a validated directive into the flat rule table
 * described in consent_int.h; hie_consent_compiled_check(): the same bytes read back from
 * storage, trusted for nothing until every field has been bounds-checked.
 *
 * Invariants: compile validates first, sizes the output with one walk and writes it with a
 * second identical walk (out_buf is untouched on failure); both walks are the same iterative
 * pre-order traversal, at most HIE_CONSENT_PROVISIONS_MAX nodes. The check accepts exactly
 * what compile can produce for some valid directive (modulo org-id order inside a provision,
 * which the evaluator does not depend on), and never reads past the span.
 * Callers: the node's consent store (compile before the LMDB put, check after the get),
 * hie_consent_decide() (checks every span before use).
 */
#include "consent_int.h"

#include "hie/proto.h"

#include <string.h>

/* ---- pre-order walk of a validated tree ----------------------------------------------------- */
struct wnode {
    const Hie__V1__ConsentProvision *p;
    unsigned index, parent, depth; /* parent: HIE_CONSENT__ROOT_PARENT for the root */
    int type;                      /* effective type */
};

struct walk {
    struct wnode stack[HIE_CONSENT_PROVISIONS_MAX];
    size_t top;
    unsigned next_index;
};

static void
walk_init(struct walk *w, const Hie__V1__ConsentProvision *root)
{
    HIE_ASSERT(root != NULL);
    HIE_ASSERT(root->type == HIE__V1__PROVISION_TYPE__PROVISION_DENY ||
        root->type == HIE__V1__PROVISION_TYPE__PROVISION_PERMIT);
    w->top = 0;
    w->next_index = 0;
    w->stack[w->top++] = (struct wnode){root, 0, HIE_CONSENT__ROOT_PARENT, 1, (int)root->type};
}

/* Pops the next node in pre-order into *out and pushes its children. False when done. The
 * tree was validated, so the limits hold: they are asserted, not checked. */
static bool
walk_next(struct walk *w, struct wnode *out)
{
    if (w->top == 0) {
        return false;
    }
    *out = w->stack[--w->top];
    out->index = w->next_index++;
    HIE_ASSERT(out->index < HIE_CONSENT_PROVISIONS_MAX);
    int child_type = out->type == HIE__V1__PROVISION_TYPE__PROVISION_DENY
                         ? HIE__V1__PROVISION_TYPE__PROVISION_PERMIT
                         : HIE__V1__PROVISION_TYPE__PROVISION_DENY;
    for (size_t i = out->p->n_provisions; i-- > 0;) {
        HIE_ASSERT(w->top < HIE_CONSENT_PROVISIONS_MAX);
        HIE_ASSERT(out->depth < HIE_CONSENT_DEPTH_MAX);
        w->stack[w->top++] = (struct wnode){out->p->provisions[i], 0, out->index,
            out->depth + 1, child_type};
    }
    return true;
}

/* ---- writing -------------------------------------------------------------------------------- */
static size_t
prov_bytes(const Hie__V1__ConsentProvision *p)
{
    size_t n = HIE_CONSENT__PROV_FIXED_BYTES;
    for (size_t i = 0; i < p->n_actors; i++) {
        size_t len = strlen(p->actors[i]->org_id);
        n += len > 0 ? 1 + len : 0;
    }
    return n;
}

static uint32_t
labels_mask(char *const *codes, size_t n, bool labels)
{
    uint32_t mask = 0;
    for (size_t i = 0; i < n; i++) {
        enum hie_consent_label l;
        enum hie_consent_class c;
        size_t len = strlen(codes[i]);
        HIE_ASSERT(labels ? hie_consent_label_parse(codes[i], len, &l) == 0
                          : hie_consent_class_parse(codes[i], len, &c) == 0);
        mask |= labels ? HIE_CONSENT_LABEL_BIT(l) : HIE_CONSENT_CLASS_BIT(c);
    }
    return mask;
}

static void
period_write(uint8_t *o, const Hie__V1__ConsentPeriod *p)
{
    hie_store_be64(o, p != NULL ? (uint64_t)p->start_ms : 0);
    hie_store_be64(o + 8, p != NULL ? (uint64_t)p->end_ms : 0);
}

/* Writes one provision at o (prov_bytes(p) bytes); returns the bytes written. */
static size_t
prov_write(uint8_t *o, const struct wnode *n)
{
    const Hie__V1__ConsentProvision *p = n->p;
    uint32_t roles = 0, purposes = 0, actions = 0;
    size_t off = HIE_CONSENT__PROV_FIXED_BYTES;
    unsigned orgs = 0;
    for (size_t i = 0; i < p->n_actors; i++) {
        const Hie__V1__ConsentActor *a = p->actors[i];
        size_t len = strlen(a->org_id);
        if (len == 0) {
            roles |= HIE_CONSENT_ROLE_BIT(a->role);
            continue;
        }
        HIE_ASSERT(len <= HIE_ORG_ID_BYTES_MAX);
        o[off] = (uint8_t)len;
        memcpy(o + off + 1, a->org_id, len);
        off += 1 + len;
        orgs++;
    }
    for (size_t i = 0; i < p->n_purposes; i++) {
        purposes |= HIE_CONSENT_PURPOSE_BIT(p->purposes[i]);
    }
    for (size_t i = 0; i < p->n_actions; i++) {
        actions |= HIE_CONSENT_ACTION_BIT(p->actions[i]);
    }
    o[HIE_CONSENT__P_TYPE] = (uint8_t)n->type;
    o[HIE_CONSENT__P_DEPTH] = (uint8_t)n->depth;
    o[HIE_CONSENT__P_PARENT] = (uint8_t)n->parent;
    o[HIE_CONSENT__P_ORGS] = (uint8_t)orgs;
    hie_store_be32(o + HIE_CONSENT__P_ROLES, roles);
    hie_store_be32(o + HIE_CONSENT__P_PURPOSES, purposes);
    hie_store_be32(o + HIE_CONSENT__P_ACTIONS, actions);
    hie_store_be32(o + HIE_CONSENT__P_LABELS,
        labels_mask(p->security_labels, p->n_security_labels, true));
    hie_store_be32(o + HIE_CONSENT__P_CLASSES, labels_mask(p->classes, p->n_classes, false));
    period_write(o + HIE_CONSENT__P_START, p->period);
    period_write(o + HIE_CONSENT__P_DATA_START, p->data_period);
    HIE_ASSERT(off == prov_bytes(p));
    return off;
}

static void
header_write(uint8_t *o, const Hie__V1__ConsentDirective *d, size_t id_len, unsigned count,
    size_t total)
{
    memset(o, 0, HIE_CONSENT__HEADER_BYTES);
    memcpy(o, HIE_CONSENT__MAGIC, 4);
    hie_store_be32(o + HIE_CONSENT__H_LEN, (uint32_t)total);
    hie_store_be64(o + HIE_CONSENT__H_VERSION, d->version);
    hie_store_be64(o + HIE_CONSENT__H_INDEX, d->submitted_index);
    hie_store_be64(o + HIE_CONSENT__H_DATE, (uint64_t)d->date_ms);
    period_write(o + HIE_CONSENT__H_START, d->period);
    o[HIE_CONSENT__H_STATUS] = (uint8_t)d->status;
    bool revoked = d->revoked_ms != 0 || (d->revoked_by != NULL && d->revoked_by[0] != '\0');
    o[HIE_CONSENT__H_FLAGS] = revoked ? HIE_CONSENT__FLAG_REVOKED : 0;
    o[HIE_CONSENT__H_IDLEN] = (uint8_t)id_len;
    o[HIE_CONSENT__H_COUNT] = (uint8_t)count;
    memcpy(o + HIE_CONSENT__HEADER_BYTES, d->id, id_len);
}

int
hie_consent_compile(const Hie__V1__ConsentDirective *d, uint8_t *out_buf, size_t cap,
    size_t *out_len, hie_errinfo_t *info)
{
    HIE_ASSERT(d != NULL);
    HIE_ASSERT(out_len != NULL);
    if (cap > 0) {
        HIE_ASSERT(out_buf != NULL);
    }
    *out_len = 0;
    int rc = hie_consent_directive_validate(d, info);
    if (rc != 0) {
        return rc;
    }
    size_t id_len = d->id != NULL ? strlen(d->id) : 0;
    if (id_len == 0) {
        return hie_errinfo_set(info, HIE_EINVAL, "id", "missing (assigned by the broker)");
    }
    if (d->version == 0) {
        return hie_errinfo_set(info, HIE_EINVAL, "version", "missing (assigned by the broker)");
    }
    struct walk w;
    struct wnode n;
    size_t total = HIE_CONSENT__HEADER_BYTES + id_len;
    unsigned count = 0;
    for (walk_init(&w, d->provision); walk_next(&w, &n); count++) {
        total += prov_bytes(n.p);
    }
    HIE_ASSERT(count >= 1);
    HIE_ASSERT(count <= HIE_CONSENT_PROVISIONS_MAX);
    HIE_ASSERT(total <= HIE_CONSENT_COMPILED_BYTES_MAX);
    if (total > cap) {
        return hie_errinfo_set(info, HIE_ELIMIT, "out_buf", "buffer too small");
    }
    header_write(out_buf, d, id_len, count, total);
    size_t off = HIE_CONSENT__HEADER_BYTES + id_len;
    for (walk_init(&w, d->provision); walk_next(&w, &n);) {
        off += prov_write(out_buf + off, &n);
    }
    HIE_ASSERT(off == total);
    uint64_t sum = hie_consent__checksum(out_buf + HIE_CONSENT__HASHED_FROM,
        total - HIE_CONSENT__HASHED_FROM);
    hie_store_be64(out_buf + HIE_CONSENT__H_HASH, sum);
    HIE_DEBUG_ASSERT(hie_consent_compiled_check(hie_span(out_buf, total)) == 0);
    *out_len = total;
    return 0;
}

/* ---- checking bytes read back -------------------------------------------------------------- */
static bool
period_ok(const uint8_t *p)
{
    int64_t start = hie_consent__load_i64(p), end = hie_consent__load_i64(p + 8);
    return start >= 0 && end >= 0 && (start == 0 || end == 0 || start < end);
}

static bool
header_ok(hie_span_t c)
{
    const uint8_t *h = c.ptr;
    if (c.len < HIE_CONSENT__HEADER_BYTES || c.len > HIE_CONSENT_COMPILED_BYTES_MAX ||
        memcmp(h, HIE_CONSENT__MAGIC, 4) != 0 || hie_load_be32(h + HIE_CONSENT__H_LEN) != c.len) {
        return false;
    }
    uint64_t hash = hie_consent__checksum(h + HIE_CONSENT__HASHED_FROM,
        c.len - HIE_CONSENT__HASHED_FROM);
    if (hie_load_be64(h + HIE_CONSENT__H_HASH) != hash) {
        return false;
    }
    unsigned status = h[HIE_CONSENT__H_STATUS], id_len = h[HIE_CONSENT__H_IDLEN];
    unsigned count = h[HIE_CONSENT__H_COUNT];
    if ((status != HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE &&
            status != HIE__V1__CONSENT_STATUS__CONSENT_INACTIVE) ||
        (h[HIE_CONSENT__H_FLAGS] & ~HIE_CONSENT__FLAG_REVOKED) != 0 ||
        hie_load_be32(h + HIE_CONSENT__H_ZERO) != 0) {
        return false;
    }
    if (count < 1 || count > HIE_CONSENT_PROVISIONS_MAX || id_len > HIE_CONSENT_ID_BYTES_MAX ||
        c.len - HIE_CONSENT__HEADER_BYTES < id_len) {
        return false;
    }
    if (hie_consent__load_i64(h + HIE_CONSENT__H_DATE) < 0 ||
        !period_ok(h + HIE_CONSENT__H_START)) {
        return false;
    }
    return hie_proto_id_valid((const char *)h + HIE_CONSENT__HEADER_BYTES, id_len);
}

/* Checks the org ids of one provision starting at *off; advances *off past them. */
static bool
orgs_ok(hie_span_t c, size_t *off, unsigned orgs)
{
    for (unsigned k = 0; k < orgs; k++) {
        if (*off >= c.len) {
            return false;
        }
        size_t len = c.ptr[*off];
        if (len == 0 || len > HIE_ORG_ID_BYTES_MAX || c.len - *off - 1 < len ||
            !hie_proto_org_id_valid((const char *)c.ptr + *off + 1, len)) {
            return false;
        }
        *off += 1 + len;
    }
    return true;
}

/* The fixed part of provision i at p; types[] and depths[] hold the earlier provisions'. */
static bool
prov_fixed_ok(const uint8_t *p, unsigned i, uint8_t *types, uint8_t *depths)
{
    unsigned type = p[HIE_CONSENT__P_TYPE], depth = p[HIE_CONSENT__P_DEPTH];
    unsigned parent = p[HIE_CONSENT__P_PARENT];
    if (type != HIE__V1__PROVISION_TYPE__PROVISION_DENY &&
        type != HIE__V1__PROVISION_TYPE__PROVISION_PERMIT) {
        return false;
    }
    if (i == 0 ? (parent != HIE_CONSENT__ROOT_PARENT || depth != 1)
               : (parent >= i || depth != depths[parent] + 1u || depth > HIE_CONSENT_DEPTH_MAX ||
                     type == types[parent])) {
        return false;
    }
    types[i] = (uint8_t)type;
    depths[i] = (uint8_t)depth;
    if (p[HIE_CONSENT__P_ORGS] > HIE_CONSENT_LIST_ITEMS_MAX ||
        (hie_load_be32(p + HIE_CONSENT__P_ROLES) & ~HIE_CONSENT_ROLES_KNOWN) != 0 ||
        (hie_load_be32(p + HIE_CONSENT__P_PURPOSES) & ~HIE_CONSENT_PURPOSES_KNOWN) != 0 ||
        (hie_load_be32(p + HIE_CONSENT__P_ACTIONS) & ~HIE_CONSENT_ACTIONS_KNOWN) != 0 ||
        (hie_load_be32(p + HIE_CONSENT__P_LABELS) & ~HIE_CONSENT_LABELS_ALL) != 0 ||
        (hie_load_be32(p + HIE_CONSENT__P_CLASSES) & ~HIE_CONSENT__CLASSES_KNOWN) != 0) {
        return false;
    }
    return period_ok(p + HIE_CONSENT__P_START) && period_ok(p + HIE_CONSENT__P_DATA_START);
}

int
hie_consent_compiled_check(hie_span_t c)
{
    if (c.ptr == NULL || !header_ok(c)) {
        return HIE_ECORRUPT;
    }
    uint8_t types[HIE_CONSENT_PROVISIONS_MAX], depths[HIE_CONSENT_PROVISIONS_MAX];
    unsigned count = c.ptr[HIE_CONSENT__H_COUNT];
    size_t off = HIE_CONSENT__HEADER_BYTES + c.ptr[HIE_CONSENT__H_IDLEN];
    HIE_ASSERT(count <= HIE_CONSENT_PROVISIONS_MAX);
    for (unsigned i = 0; i < count; i++) {
        if (c.len - off < HIE_CONSENT__PROV_FIXED_BYTES ||
            !prov_fixed_ok(c.ptr + off, i, types, depths)) {
            return HIE_ECORRUPT;
        }
        unsigned orgs = c.ptr[off + HIE_CONSENT__P_ORGS];
        off += HIE_CONSENT__PROV_FIXED_BYTES;
        if (!orgs_ok(c, &off, orgs)) {
            return HIE_ECORRUPT;
        }
    }
    HIE_ASSERT(off <= c.len);
    return off == c.len ? 0 : HIE_ECORRUPT;
}

int
hie_consent_compiled_id(hie_span_t compiled, char *id, size_t id_bytes, uint64_t *version)
{
    HIE_ASSERT(id != NULL);
    HIE_ASSERT(id_bytes >= HIE_CONSENT_ID_BYTES_MAX + 1);
    HIE_ASSERT(version != NULL);
    id[0] = '\0';
    *version = 0;
    if (hie_consent_compiled_check(compiled) != 0) {
        return HIE_ECORRUPT;
    }
    size_t len = compiled.ptr[HIE_CONSENT__H_IDLEN];
    memcpy(id, compiled.ptr + HIE_CONSENT__HEADER_BYTES, len);
    id[len] = '\0';
    *version = hie_load_be64(compiled.ptr + HIE_CONSENT__H_VERSION);
    return 0;
}
