/*
 * members.c - each EUID's members in memory, for the writer (the log thread) only: what
 * mpi_euid holds, indexed by the EUID's number ("E" + 12 digits, as euid_new makes them), each
 * EUID's record hashes kept sorted as LMDB's dupsort keeps them, so that a lookup gives the
 * same hashes in the same order as a cursor over mpi_euid.
 *
 * Why: matching a feed reads the members of every candidate EUID it weighs as a whole (the
 * composite pass), and linking reads them again; through a dupsort cursor that was a tenth of
 * apply's time at 400,000 records. Readers on a snapshot (PIX, PDQ, reports) still read LMDB:
 * this table always holds the newest state, which only the writer may see.
 *
 * Derived state, like the blocking index (blocks.c): rebuilt from mpi_euid when the store
 * opens and changed by apply next to every mpi_euid write (member_add, member_del). An apply
 * that fails stops the node, so the table never has to roll back. An EUID that is not in the
 * expected form, or a number far past what the table holds, turns the table off (every
 * lookup then reads LMDB): never a wrong answer, only a slower one.
 *
 * Memory: 24 bytes an EUID, plus 16 bytes a member for EUIDs of two or more records.
 */
#include "store_int.h"

#include <string.h>

#define MEMBERS_INITIAL 1024u
#define MEMBERS_NUMBER_MAX (1ull << 28)  /* beyond (6 GB of slots): the table turns itself off */
#define MEMBERS_DIGITS 12u

struct member_slot {
    uint32_t n, cap;                     /* cap 0: the one member sits in one */
    union {
        uint8_t one[HIE_MPI_REC_HASH_BYTES];
        uint8_t *many;                   /* hie_mem, cap * 16 bytes, sorted */
    } u;
};

struct store_members {
    struct member_slot *slots;           /* indexed by the EUID's number */
    size_t cap;
    bool off;
};

int
store__members_create(store_members_t **out)
{
    store_members_t *m = hie_mem_calloc(1, sizeof(*m));
    struct member_slot *slots = hie_mem_calloc(MEMBERS_INITIAL, sizeof(*slots));
    if (m == NULL || slots == NULL) {
        hie_mem_free(m, sizeof(*m));
        hie_mem_free(slots, MEMBERS_INITIAL * sizeof(*slots));
        return HIE_ENOMEM;
    }
    m->slots = slots;
    m->cap = MEMBERS_INITIAL;
    *out = m;
    return 0;
}

static void
slot_clear(struct member_slot *sl)
{
    if (sl->cap > 0) {
        hie_mem_free(sl->u.many, (size_t)sl->cap * HIE_MPI_REC_HASH_BYTES);
    }
    memset(sl, 0, sizeof(*sl));
}

static void
members_off(store_members_t *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        slot_clear(&m->slots[i]);
    }
    m->off = true;
}

void
store__members_destroy(store_members_t **mp)
{
    store_members_t *m = *mp;
    if (m == NULL) {
        return;
    }
    members_off(m);
    hie_mem_free(m->slots, m->cap * sizeof(*m->slots));
    hie_mem_free(m, sizeof(*m));
    *mp = NULL;
}

void
store__members_disable(store_members_t *m)
{
    members_off(m);
}

bool
store__members_on(const store_members_t *m)
{
    return m != NULL && !m->off;
}

/* The EUID's number, or false when it is not "E" followed by exactly 12 digits. */
static bool
euid_number(const char *euid, uint64_t *out)
{
    if (euid[0] != 'E') {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 1; i <= MEMBERS_DIGITS; i++) {
        if (euid[i] < '0' || euid[i] > '9') {
            return false;
        }
        v = v * 10u + (uint64_t)(euid[i] - '0');
    }
    *out = v;
    return euid[MEMBERS_DIGITS + 1] == '\0';
}

/* The slot of euid, growing the table to hold it when grow. NULL: the table is off, or (not
 * grow) the EUID has no members here: not in the expected form or past the table, which an
 * EUID with members cannot be, since adding one such turns the table off. */
static struct member_slot *
slot_of(store_members_t *m, const char *euid, bool grow)
{
    uint64_t num = 0;
    if (m->off) {
        return NULL;
    }
    bool ok = euid_number(euid, &num) && num < MEMBERS_NUMBER_MAX;
    if (ok && num < m->cap) {
        return &m->slots[num];
    }
    if (!grow) {
        return NULL;
    }
    if (!ok) {
        members_off(m);
        return NULL;
    }
    size_t cap = m->cap;
    while (cap <= num) {
        cap *= 2;
    }
    struct member_slot *slots = hie_mem_calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        members_off(m);
        return NULL;
    }
    memcpy(slots, m->slots, m->cap * sizeof(*slots));
    hie_mem_free(m->slots, m->cap * sizeof(*m->slots));
    m->slots = slots;
    m->cap = cap;
    return &m->slots[num];
}

static uint8_t *
slot_hashes(struct member_slot *sl)
{
    return sl->cap > 0 ? sl->u.many : sl->u.one;
}

/* Where h sits or would sit in the slot's sorted hashes; *found when it is there. */
static size_t
slot_find(struct member_slot *sl, const uint8_t *h, bool *found)
{
    return store__hash_search(slot_hashes(sl), sl->n, h, found);
}

/* Room for one more hash in sl (moving the inline one out at the second). */
static bool
slot_reserve(struct member_slot *sl)
{
    if (sl->n == 0 || (sl->cap > 0 && sl->n < sl->cap)) {
        return true;
    }
    uint32_t cap = sl->cap == 0 ? 4u : sl->cap * 2u;
    uint8_t *many = hie_mem_alloc((size_t)cap * HIE_MPI_REC_HASH_BYTES);
    if (many == NULL) {
        return false;
    }
    memcpy(many, slot_hashes(sl), (size_t)sl->n * HIE_MPI_REC_HASH_BYTES);
    if (sl->cap > 0) {
        hie_mem_free(sl->u.many, (size_t)sl->cap * HIE_MPI_REC_HASH_BYTES);
    }
    sl->u.many = many;
    sl->cap = cap;
    return true;
}

void
store__members_add(store_members_t *m, const char *euid, const uint8_t *h)
{
    struct member_slot *sl = slot_of(m, euid, true);
    bool found = false;
    size_t at = sl != NULL ? slot_find(sl, h, &found) : 0;
    if (sl == NULL || found) {
        return; /* off, or already a member (LMDB's put of the same pair changes nothing) */
    }
    if (!slot_reserve(sl)) {
        members_off(m);
        return;
    }
    uint8_t *hs = slot_hashes(sl);
    memmove(hs + (at + 1) * HIE_MPI_REC_HASH_BYTES, hs + at * HIE_MPI_REC_HASH_BYTES,
        (sl->n - at) * HIE_MPI_REC_HASH_BYTES);
    memcpy(hs + at * HIE_MPI_REC_HASH_BYTES, h, HIE_MPI_REC_HASH_BYTES);
    sl->n++;
}

void
store__members_del(store_members_t *m, const char *euid, const uint8_t *h)
{
    struct member_slot *sl = slot_of(m, euid, false);
    bool found = false;
    size_t at = sl != NULL ? slot_find(sl, h, &found) : 0;
    if (sl == NULL || !found) {
        return; /* LMDB answers "no such member" for the caller */
    }
    uint8_t *hs = slot_hashes(sl);
    memmove(hs + at * HIE_MPI_REC_HASH_BYTES, hs + (at + 1) * HIE_MPI_REC_HASH_BYTES,
        (sl->n - at - 1) * HIE_MPI_REC_HASH_BYTES);
    sl->n--;
    if (sl->n == 0) {
        slot_clear(sl);
    }
}

bool
store__members_peek(store_members_t *m, const char *euid, const uint8_t **hashes, size_t *n)
{
    *hashes = NULL;
    *n = 0;
    if (m->off) {
        return false;
    }
    struct member_slot *sl = slot_of(m, euid, false);
    if (sl != NULL) {
        *hashes = slot_hashes(sl);
        *n = sl->n;
    }
    return true;
}
