/*
 * test_consent_fixture.h - builders for consent directives in the consent unit suites (and
 * the throwaway corpus generator of tests/fuzz/corpus/fuzz_consent): protobuf messages built
 * in a hie arena, a one-line text form for the scenario table, requests and policies from
 * text, and a seeded random directive/request generator for the property tests.
 *
 * Text form of a directive:  HEADER ':' PROVISION
 *   HEADER:    id=ID v=N date=N idx=N status=active|inactive revoked period=S..E
 *   PROVISION: permit|deny|rev '(' COND* ')' [ '{' PROVISION* '}' ]     (rev = unspecified)
 *   COND:      org=a,b role=hospital,... pou=treat,emerg,pay,ops,pubhlth,research,patrqt
 *              act=identity,query,push,notify label=PSY,R,... class=lab-report,...
 *              period=S..E data=S..E
 * Example: "id=c1 v=1 date=10 idx=1 : deny() { permit(org=org-b pou=treat) }"
 * Request:   "org=org-b roles=hospital pou=treat act=query labels=N,PSY class=lab-report
 *             data=50 now=1000"  (defaults: org-b, hospital, treat, query, none, none, 0, 1000)
 * Policy:    "in|out [bg] [nopart2] [oo=treat,pay]"
 *
 * Everything is static inline (no prototypes needed, no unused-function warnings). A text
 * that does not parse is a bug in the test: it aborts through HIE_ASSERT.
 */
#ifndef HIE_TEST_CONSENT_FIXTURE_H
#define HIE_TEST_CONSENT_FIXTURE_H

#include "hie/consent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFX_ARENA_BYTES (256u << 20)

static inline void *
cfx_alloc(hie_arena_t *a, size_t bytes)
{
    void *p = hie_arena_alloc(a, bytes > 0 ? bytes : 1);
    HIE_ASSERT(p != NULL);
    memset(p, 0, bytes > 0 ? bytes : 1);
    return p;
}

static inline char *
cfx_strndup(hie_arena_t *a, const char *s, size_t len)
{
    char *out = cfx_alloc(a, len + 1);
    memcpy(out, s, len);
    return out;
}

static inline char *
cfx_strdup(hie_arena_t *a, const char *s)
{
    return cfx_strndup(a, s, strlen(s));
}

/* A copy of the n-element array old with room for one more element at the end. */
static inline void *
cfx_grow(hie_arena_t *a, const void *old, size_t n, size_t elem)
{
    void *p = cfx_alloc(a, (n + 1) * elem);
    if (n > 0) {
        memcpy(p, old, n * elem);
    }
    return p;
}

static inline Hie__V1__ConsentProvision *
cfx_prov(hie_arena_t *a, int type)
{
    Hie__V1__ConsentProvision *p = cfx_alloc(a, sizeof(*p));
    hie__v1__consent_provision__init(p);
    p->type = (Hie__V1__ProvisionType)type;
    return p;
}

static inline Hie__V1__ConsentPeriod *
cfx_period(hie_arena_t *a, int64_t start_ms, int64_t end_ms)
{
    Hie__V1__ConsentPeriod *p = cfx_alloc(a, sizeof(*p));
    hie__v1__consent_period__init(p);
    p->start_ms = start_ms;
    p->end_ms = end_ms;
    return p;
}

static inline void
cfx_add_actor(hie_arena_t *a, Hie__V1__ConsentProvision *p, const char *org, int role)
{
    Hie__V1__ConsentActor *actor = cfx_alloc(a, sizeof(*actor));
    hie__v1__consent_actor__init(actor);
    if (org != NULL) {
        actor->org_id = cfx_strdup(a, org);
    }
    actor->role = (Hie__V1__Role)role;
    p->actors = cfx_grow(a, p->actors, p->n_actors, sizeof(*p->actors));
    p->actors[p->n_actors++] = actor;
}

static inline void
cfx_add_purpose(hie_arena_t *a, Hie__V1__ConsentProvision *p, int purpose)
{
    p->purposes = cfx_grow(a, p->purposes, p->n_purposes, sizeof(*p->purposes));
    p->purposes[p->n_purposes++] = (Hie__V1__PurposeOfUse)purpose;
}

static inline void
cfx_add_action(hie_arena_t *a, Hie__V1__ConsentProvision *p, int action)
{
    p->actions = cfx_grow(a, p->actions, p->n_actions, sizeof(*p->actions));
    p->actions[p->n_actions++] = (Hie__V1__ConsentAction)action;
}

static inline void
cfx_add_label(hie_arena_t *a, Hie__V1__ConsentProvision *p, const char *code)
{
    p->security_labels = cfx_grow(a, p->security_labels, p->n_security_labels, sizeof(char *));
    p->security_labels[p->n_security_labels++] = cfx_strdup(a, code);
}

static inline void
cfx_add_class(hie_arena_t *a, Hie__V1__ConsentProvision *p, const char *code)
{
    p->classes = cfx_grow(a, p->classes, p->n_classes, sizeof(char *));
    p->classes[p->n_classes++] = cfx_strdup(a, code);
}

static inline void
cfx_add_child(hie_arena_t *a, Hie__V1__ConsentProvision *p, Hie__V1__ConsentProvision *c)
{
    p->provisions = cfx_grow(a, p->provisions, p->n_provisions, sizeof(*p->provisions));
    p->provisions[p->n_provisions++] = c;
}

/* An ACTIVE directive for patient org-a / mrn-1 with the given root. */
static inline Hie__V1__ConsentDirective *
cfx_directive(hie_arena_t *a, const char *id, uint64_t version, int64_t date_ms,
    uint64_t index, Hie__V1__ConsentProvision *root)
{
    Hie__V1__ConsentDirective *d = cfx_alloc(a, sizeof(*d));
    hie__v1__consent_directive__init(d);
    Hie__V1__PatientId *pid = cfx_alloc(a, sizeof(*pid));
    hie__v1__patient_id__init(pid);
    pid->org_id = cfx_strdup(a, "org-a");
    pid->mrn = cfx_strdup(a, "mrn-1");
    d->patient = pid;
    d->id = cfx_strdup(a, id);
    d->version = version;
    d->date_ms = date_ms;
    d->submitted_index = index;
    d->status = HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE;
    d->provision = root;
    return d;
}

/* ---- names ----------------------------------------------------------------------------- */
static inline int
cfx_name_index(const char *const *names, size_t count, const char *s, size_t len)
{
    for (size_t i = 0; i < count; i++) {
        if (names[i] != NULL && strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
            return (int)i;
        }
    }
    fprintf(stderr, "consent fixture: unknown name '%.*s'\n", (int)len, s);
    HIE_ASSERT(0 && "unknown name in a consent fixture text");
    return -1;
}

static const char *const cfx_roles[] = {NULL, "hospital", "clinic", "lab", "payer", "auditor",
    "operator", "node"};
static const char *const cfx_purposes[] = {NULL, "treat", "emerg", "pay", "ops", "pubhlth",
    "research", "patrqt"};
static const char *const cfx_actions[] = {NULL, "identity", "query", "push", "notify"};

/* ---- text form --------------------------------------------------------------------------- */
typedef struct cfx_cursor {
    const char *s;
    hie_arena_t *a;
} cfx_cursor_t;

static inline void
cfx_skip(cfx_cursor_t *c)
{
    while (*c->s == ' ') {
        c->s++;
    }
}

/* The next token: up to a space or one of ()=,{}: and the token length. */
static inline size_t
cfx_token(cfx_cursor_t *c)
{
    cfx_skip(c);
    size_t n = 0;
    while (c->s[n] != '\0' && strchr(" ()=,{}:", c->s[n]) == NULL) {
        n++;
    }
    return n;
}

static inline bool
cfx_eat(cfx_cursor_t *c, char ch)
{
    cfx_skip(c);
    if (*c->s == ch) {
        c->s++;
        return true;
    }
    return false;
}

static inline int64_t
cfx_number(cfx_cursor_t *c)
{
    char *end = NULL;
    long long v = strtoll(c->s, &end, 10);
    HIE_ASSERT(end != c->s);
    c->s = end;
    return (int64_t)v;
}

/* "S..E" */
static inline Hie__V1__ConsentPeriod *
cfx_period_text(cfx_cursor_t *c)
{
    int64_t s = cfx_number(c);
    HIE_ASSERT(c->s[0] == '.' && c->s[1] == '.');
    c->s += 2;
    int64_t e = cfx_number(c);
    return cfx_period(c->a, s, e);
}

static inline void
cfx_cond_value(cfx_cursor_t *c, Hie__V1__ConsentProvision *p, const char *key, size_t key_len)
{
    hie_arena_t *a = c->a;
    size_t n = cfx_token(c);
    const char *v = c->s;
    if (key_len == 3 && memcmp(key, "org", 3) == 0) {
        char *org = cfx_strndup(a, v, n);
        cfx_add_actor(a, p, org, 0);
    } else if (key_len == 4 && memcmp(key, "role", 4) == 0) {
        cfx_add_actor(a, p, NULL, cfx_name_index(cfx_roles, 8, v, n));
    } else if (key_len == 3 && memcmp(key, "pou", 3) == 0) {
        cfx_add_purpose(a, p, cfx_name_index(cfx_purposes, 8, v, n));
    } else if (key_len == 3 && memcmp(key, "act", 3) == 0) {
        cfx_add_action(a, p, cfx_name_index(cfx_actions, 5, v, n));
    } else if (key_len == 5 && memcmp(key, "label", 5) == 0) {
        cfx_add_label(a, p, cfx_strndup(a, v, n));
    } else if (key_len == 5 && memcmp(key, "class", 5) == 0) {
        cfx_add_class(a, p, cfx_strndup(a, v, n));
    } else if (key_len == 6 && memcmp(key, "period", 6) == 0) {
        p->period = cfx_period_text(c);
        return;
    } else if (key_len == 4 && memcmp(key, "data", 4) == 0) {
        p->data_period = cfx_period_text(c);
        return;
    } else {
        HIE_ASSERT(0 && "unknown condition key");
    }
    c->s += n;
}

static inline Hie__V1__ConsentProvision *
cfx_prov_text(cfx_cursor_t *c)
{
    size_t n = cfx_token(c);
    int type = n == 6 && memcmp(c->s, "permit", 6) == 0 ? HIE__V1__PROVISION_TYPE__PROVISION_PERMIT
               : n == 4 && memcmp(c->s, "deny", 4) == 0 ? HIE__V1__PROVISION_TYPE__PROVISION_DENY
                                                         : 0;
    HIE_ASSERT(type != 0 || (n == 3 && memcmp(c->s, "rev", 3) == 0));
    c->s += n;
    Hie__V1__ConsentProvision *p = cfx_prov(c->a, type);
    HIE_ASSERT(cfx_eat(c, '('));
    while (!cfx_eat(c, ')')) {
        size_t kn = cfx_token(c);
        const char *key = c->s;
        HIE_ASSERT(kn > 0);
        c->s += kn;
        HIE_ASSERT(cfx_eat(c, '='));
        do {
            cfx_cond_value(c, p, key, kn);
        } while (cfx_eat(c, ','));
    }
    if (cfx_eat(c, '{')) {
        while (!cfx_eat(c, '}')) {
            cfx_add_child(c->a, p, cfx_prov_text(c));
        }
    }
    return p;
}

static inline void
cfx_header_text(cfx_cursor_t *c, Hie__V1__ConsentDirective *d)
{
    while (!cfx_eat(c, ':')) {
        size_t n = cfx_token(c);
        const char *key = c->s;
        HIE_ASSERT(n > 0);
        c->s += n;
        if (n == 7 && memcmp(key, "revoked", 7) == 0) {
            d->revoked_ms = 1;
            d->revoked_by = cfx_strdup(c->a, "org-a");
            continue;
        }
        HIE_ASSERT(cfx_eat(c, '='));
        if (n == 6 && memcmp(key, "period", 6) == 0) {
            d->period = cfx_period_text(c);
            continue;
        }
        size_t vn = cfx_token(c);
        const char *v = c->s;
        if (n == 2 && memcmp(key, "id", 2) == 0) {
            d->id = cfx_strndup(c->a, v, vn);
        } else if (n == 6 && memcmp(key, "status", 6) == 0) {
            d->status = vn == 6 && memcmp(v, "active", 6) == 0
                            ? HIE__V1__CONSENT_STATUS__CONSENT_ACTIVE
                            : HIE__V1__CONSENT_STATUS__CONSENT_INACTIVE;
        } else if (n == 1 && key[0] == 'v') {
            d->version = (uint64_t)strtoull(v, NULL, 10);
        } else if (n == 4 && memcmp(key, "date", 4) == 0) {
            d->date_ms = strtoll(v, NULL, 10);
        } else if (n == 3 && memcmp(key, "idx", 3) == 0) {
            d->submitted_index = (uint64_t)strtoull(v, NULL, 10);
        } else {
            HIE_ASSERT(0 && "unknown directive key");
        }
        c->s += vn;
    }
}

/* Parses a directive from its text form (defaults: id c1, version 1, date 0, index 0). */
static inline Hie__V1__ConsentDirective *
cfx_parse(hie_arena_t *a, const char *text)
{
    cfx_cursor_t c = {text, a};
    Hie__V1__ConsentDirective *d = cfx_directive(a, "c1", 1, 0, 0, NULL);
    cfx_header_text(&c, d);
    d->provision = cfx_prov_text(&c);
    cfx_skip(&c);
    HIE_ASSERT(*c.s == '\0');
    return d;
}

/* A comma-separated list of names into a bitmask (labels or roles). */
static inline uint32_t
cfx_label_mask(const char *s, size_t len)
{
    uint32_t mask = 0;
    while (len > 0) {
        size_t n = 0;
        while (n < len && s[n] != ',') {
            n++;
        }
        enum hie_consent_label l;
        HIE_ASSERT(hie_consent_label_parse(s, n, &l) == 0);
        mask |= HIE_CONSENT_LABEL_BIT(l);
        s += n < len ? n + 1 : n;
        len -= n < len ? n + 1 : n;
    }
    return mask;
}

static inline uint32_t
cfx_name_mask(const char *const *names, size_t count, const char *s, size_t len)
{
    uint32_t mask = 0;
    while (len > 0) {
        size_t n = 0;
        while (n < len && s[n] != ',') {
            n++;
        }
        mask |= 1u << (unsigned)cfx_name_index(names, count, s, n);
        s += n < len ? n + 1 : n;
        len -= n < len ? n + 1 : n;
    }
    return mask;
}

/* Parses a request; org_buf (at least 64 bytes) receives the org id. */
static inline void
cfx_request(const char *text, hie_consent_request_t *req, char *org_buf)
{
    memset(req, 0, sizeof(*req));
    snprintf(org_buf, 64, "org-b");
    req->requester_org_id = org_buf;
    req->requester_roles = HIE_CONSENT_ROLE_BIT(HIE__V1__ROLE__ROLE_HOSPITAL);
    req->purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT;
    req->action = HIE__V1__CONSENT_ACTION__CONSENT_ACTION_QUERY;
    req->now_ms = 1000;
    const char *s = text != NULL ? text : "";
    while (*s != '\0') {
        while (*s == ' ') {
            s++;
        }
        const char *eq = strchr(s, '=');
        if (*s == '\0' || eq == NULL) {
            break;
        }
        const char *v = eq + 1;
        size_t vn = strcspn(v, " ");
        size_t kn = (size_t)(eq - s);
        if (kn == 3 && memcmp(s, "org", 3) == 0) {
            snprintf(org_buf, 64, "%.*s", (int)vn, v);
        } else if (kn == 5 && memcmp(s, "roles", 5) == 0) {
            req->requester_roles = vn == 4 && memcmp(v, "none", 4) == 0 ? 0
                                   : cfx_name_mask(cfx_roles, 8, v, vn);
        } else if (kn == 3 && memcmp(s, "pou", 3) == 0) {
            req->purpose = (Hie__V1__PurposeOfUse)cfx_name_index(cfx_purposes, 8, v, vn);
        } else if (kn == 3 && memcmp(s, "act", 3) == 0) {
            req->action = (Hie__V1__ConsentAction)cfx_name_index(cfx_actions, 5, v, vn);
        } else if (kn == 6 && memcmp(s, "labels", 6) == 0) {
            req->labels = cfx_label_mask(v, vn);
        } else if (kn == 5 && memcmp(s, "class", 5) == 0) {
            HIE_ASSERT(hie_consent_class_parse(v, vn, &req->doc_class) == 0);
        } else if (kn == 4 && memcmp(s, "data", 4) == 0) {
            req->data_time_ms = strtoll(v, NULL, 10);
        } else if (kn == 3 && memcmp(s, "now", 3) == 0) {
            req->now_ms = strtoll(v, NULL, 10);
        } else {
            HIE_ASSERT(0 && "unknown request key");
        }
        s = v + vn;
    }
}

static inline void
cfx_policy(const char *text, hie_consent_policy_t *p)
{
    hie_consent_policy_init(p);
    p->regime = strncmp(text, "out", 3) == 0 ? HIE_CONSENT_OPT_OUT : HIE_CONSENT_OPT_IN;
    p->break_glass_allowed = strstr(text, " bg") != NULL;
    p->part2_named_recipient = strstr(text, "nopart2") == NULL;
    const char *oo = strstr(text, "oo=");
    if (oo != NULL) {
        p->opt_out_purposes = cfx_name_mask(cfx_purposes, 8, oo + 3, strcspn(oo + 3, " "));
    }
}

/* ---- random directives and requests (property tests, bench-like corpora) ------------------ */
typedef struct cfx_rng {
    uint64_t s;
} cfx_rng_t;

static inline uint32_t
cfx_below(cfx_rng_t *r, uint32_t n)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return n == 0 ? 0 : (uint32_t)((r->s * 2685821657736338717ull >> 32) % n);
}

static const char *const cfx_orgs[] = {"org-a", "org-b", "org-c", "org-d"};
/* Labels the generator uses: N R V PSY SUD ETH HIV (a small pool so conditions often meet). */
static const enum hie_consent_label cfx_pool_labels[] = {HIE_CONSENT_LABEL_N,
    HIE_CONSENT_LABEL_R, HIE_CONSENT_LABEL_V, HIE_CONSENT_LABEL_PSY, HIE_CONSENT_LABEL_SUD,
    HIE_CONSENT_LABEL_ETH, HIE_CONSENT_LABEL_HIV};
static const int64_t cfx_times[] = {0, 100, 200, 300, 400};

static inline Hie__V1__ConsentPeriod *
cfx_random_period(hie_arena_t *a, cfx_rng_t *r)
{
    if (cfx_below(r, 3) != 0) {
        return NULL;
    }
    int64_t s = cfx_times[cfx_below(r, 4)];
    int64_t e = cfx_below(r, 3) == 0 ? 0 : s + 100 * (1 + (int64_t)cfx_below(r, 3));
    return cfx_period(a, s, e);
}

/* Random conditions: each list present with probability about 1/3, one or two items. */
static inline void
cfx_random_conds(hie_arena_t *a, cfx_rng_t *r, Hie__V1__ConsentProvision *p)
{
    for (uint32_t k = cfx_below(r, 3) == 0 ? 1 + cfx_below(r, 2) : 0; k > 0; k--) {
        if (cfx_below(r, 2) == 0) {
            cfx_add_actor(a, p, cfx_orgs[cfx_below(r, 4)], 0);
        } else {
            cfx_add_actor(a, p, NULL, 1 + (int)cfx_below(r, 3));
        }
    }
    for (uint32_t k = cfx_below(r, 3) == 0 ? 1 + cfx_below(r, 2) : 0; k > 0; k--) {
        cfx_add_purpose(a, p, 1 + (int)cfx_below(r, 7));
    }
    for (uint32_t k = cfx_below(r, 3) == 0 ? 1 + cfx_below(r, 2) : 0; k > 0; k--) {
        cfx_add_label(a, p, hie_consent_label_name(cfx_pool_labels[cfx_below(r, 7)]));
    }
    if (cfx_below(r, 5) == 0) {
        cfx_add_class(a, p, hie_consent_class_name((enum hie_consent_class)(1 + cfx_below(r, 3))));
    }
    if (cfx_below(r, 5) == 0) {
        cfx_add_action(a, p, 1 + (int)cfx_below(r, 4));
    }
    p->period = cfx_below(r, 2) == 0 ? cfx_random_period(a, r) : NULL;
    p->data_period = cfx_below(r, 2) == 0 ? cfx_random_period(a, r) : NULL;
}

/* A random valid tree of at most budget provisions below depth max_depth. */
static inline Hie__V1__ConsentProvision *
cfx_random_prov(hie_arena_t *a, cfx_rng_t *r, int type, unsigned depth, unsigned max_depth,
    unsigned *budget)
{
    bool spell_type = depth == 1 || cfx_below(r, 2) == 0;
    Hie__V1__ConsentProvision *p = cfx_prov(a, spell_type ? type : 0);
    (*budget)--;
    if (depth > 1 || cfx_below(r, 2) == 0) {
        cfx_random_conds(a, r, p);
    }
    int child = type == HIE__V1__PROVISION_TYPE__PROVISION_DENY
                    ? HIE__V1__PROVISION_TYPE__PROVISION_PERMIT
                    : HIE__V1__PROVISION_TYPE__PROVISION_DENY;
    for (uint32_t k = depth < max_depth ? cfx_below(r, 4) : 0; k > 0 && *budget > 0; k--) {
        cfx_add_child(a, p, cfx_random_prov(a, r, child, depth + 1, max_depth, budget));
    }
    return p;
}

static inline Hie__V1__ConsentDirective *
cfx_random_directive(hie_arena_t *a, cfx_rng_t *r, unsigned serial)
{
    char id[32];
    snprintf(id, sizeof(id), "c%u", serial);
    unsigned budget = 1 + cfx_below(r, 12);
    int type = cfx_below(r, 2) == 0 ? HIE__V1__PROVISION_TYPE__PROVISION_DENY
                                    : HIE__V1__PROVISION_TYPE__PROVISION_PERMIT;
    Hie__V1__ConsentProvision *root = cfx_random_prov(a, r, type, 1, 1 + cfx_below(r, 4), &budget);
    Hie__V1__ConsentDirective *d = cfx_directive(a, id, 1 + cfx_below(r, 3),
        (int64_t)cfx_below(r, 4) * 10, cfx_below(r, 4), root);
    if (cfx_below(r, 6) == 0) {
        d->status = HIE__V1__CONSENT_STATUS__CONSENT_INACTIVE;
    }
    if (cfx_below(r, 6) == 0) {
        d->revoked_ms = 50;
        d->revoked_by = cfx_strdup(a, "org-a");
    }
    d->period = cfx_random_period(a, r);
    return d;
}

static inline void
cfx_random_request(cfx_rng_t *r, hie_consent_request_t *req)
{
    memset(req, 0, sizeof(*req));
    req->requester_org_id = cfx_orgs[cfx_below(r, 4)];
    req->requester_roles = HIE_CONSENT_ROLE_BIT(1 + cfx_below(r, 3));
    if (cfx_below(r, 4) == 0) {
        req->requester_roles |= HIE_CONSENT_ROLE_BIT(1 + cfx_below(r, 3));
    }
    req->purpose = (Hie__V1__PurposeOfUse)(1 + cfx_below(r, 7));
    req->action = (Hie__V1__ConsentAction)(1 + cfx_below(r, 4));
    for (uint32_t k = cfx_below(r, 4); k > 0; k--) {
        req->labels |= HIE_CONSENT_LABEL_BIT(cfx_pool_labels[cfx_below(r, 7)]);
    }
    req->doc_class = (enum hie_consent_class)cfx_below(r, 4);
    req->data_time_ms = cfx_below(r, 3) == 0 ? 0 : (int64_t)cfx_below(r, 500);
    req->now_ms = (int64_t)cfx_below(r, 500);
}

static inline void
cfx_random_policy(cfx_rng_t *r, hie_consent_policy_t *p)
{
    hie_consent_policy_init(p);
    p->regime = cfx_below(r, 2) == 0 ? HIE_CONSENT_OPT_IN : HIE_CONSENT_OPT_OUT;
    p->break_glass_allowed = cfx_below(r, 2) == 0;
    p->part2_named_recipient = cfx_below(r, 4) != 0;
    if (cfx_below(r, 3) == 0) {
        p->opt_out_purposes = HIE_CONSENT_PURPOSE_BIT(1 + cfx_below(r, 7));
    }
}

/* Two decisions are the same in every field. Returns NULL or the name of the first that
 * differs. */
static inline const char *
cfx_decision_diff(const hie_consent_decision_t *x, const hie_consent_decision_t *y)
{
    if (x->decision != y->decision) {
        return "decision";
    }
    if (x->break_glass != y->break_glass) {
        return "break_glass";
    }
    if (strcmp(x->reason, y->reason) != 0) {
        return "reason";
    }
    if (strcmp(x->directive_id, y->directive_id) != 0) {
        return "directive_id";
    }
    if (x->directive_version != y->directive_version) {
        return "directive_version";
    }
    if (x->obligations != y->obligations) {
        return "obligations";
    }
    if (x->refrains != y->refrains) {
        return "refrains";
    }
    if (x->confidentiality != y->confidentiality) {
        return "confidentiality";
    }
    if (x->accounting_excluded != y->accounting_excluded) {
        return "accounting_excluded";
    }
    return NULL;
}

/* Compiles dirs[0..n) into bufs (each HIE_CONSENT_COMPILED_BYTES_MAX bytes, caller's) and
 * spans. Every directive must compile (aborts otherwise). */
static inline void
cfx_compile_all(const Hie__V1__ConsentDirective *const *dirs, size_t n, uint8_t **bufs,
    hie_span_t *spans)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        hie_errinfo_t info = {0};
        int rc = hie_consent_compile(dirs[i], bufs[i], HIE_CONSENT_COMPILED_BYTES_MAX, &len,
            &info);
        if (rc != 0) {
            fprintf(stderr, "consent fixture: compile failed: %s %s\n",
                info.field ? info.field : "-", info.reason ? info.reason : "-");
        }
        HIE_ASSERT(rc == 0);
        spans[i] = hie_span(bufs[i], len);
    }
}

#endif
