/*
 * touched.c - a batch's set of written 64-bit values (record hashes' first eight bytes, block
 * keys), so that apply can tell whether what the match pool read is still current: a value
 * not in the set was not written since the batch began. Open addressing over epoch-stamped
 * slots, so starting a batch clears the set in O(1). A full set (more writes than half its
 * slots) answers "written" for everything, as does a set not started: the
 * answer may be a false "written" (a fingerprint collision), never a false "not written".
 *
 * Threads: the log thread only (the writers of the tables it tracks, and apply).
 */
#include "store_int.h"

#include <string.h>

int
store__touched_init(store_touched_t *t, size_t slots)
{
    HIE_ASSERT(slots >= 2 && (slots & (slots - 1)) == 0);
    memset(t, 0, sizeof(*t));
    t->val = hie_mem_calloc(slots, sizeof(*t->val));
    t->stamp = hie_mem_calloc(slots, sizeof(*t->stamp));
    t->slots = slots;
    if (t->val == NULL || t->stamp == NULL) {
        store__touched_free(t);
        return HIE_ENOMEM;
    }
    return 0;
}

void
store__touched_free(store_touched_t *t)
{
    hie_mem_free(t->val, t->slots * sizeof(*t->val));
    hie_mem_free(t->stamp, t->slots * sizeof(*t->stamp));
    t->val = NULL;
    t->stamp = NULL;
}

void
store__touched_start(store_touched_t *t)
{
    t->epoch++;
    if (t->epoch == 0) { /* wrapped: old stamps could pass for the new epoch */
        memset(t->stamp, 0, t->slots * sizeof(*t->stamp));
        t->epoch = 1;
    }
    t->n = 0;
    t->full = false;
    t->on = true;
}

void
store__touched_stop(store_touched_t *t)
{
    t->on = false;
}

void
store__touched_add(store_touched_t *t, uint64_t v)
{
    if (t == NULL || !t->on || t->full) {
        return;
    }
    size_t mask = t->slots - 1;
    for (size_t i = v & mask;; i = (i + 1) & mask) {
        if (t->stamp[i] != t->epoch) {
            t->stamp[i] = t->epoch;
            t->val[i] = v;
            t->full = ++t->n >= t->slots / 2;
            return;
        }
        if (t->val[i] == v) {
            return;
        }
    }
}

bool
store__touched_has(const store_touched_t *t, uint64_t v)
{
    if (t == NULL || !t->on || t->full) {
        return true;
    }
    size_t mask = t->slots - 1;
    for (size_t i = v & mask;; i = (i + 1) & mask) {
        if (t->stamp[i] != t->epoch) {
            return false;
        }
        if (t->val[i] == v) {
            return true;
        }
    }
}

uint64_t
store__touched_hash(const uint8_t *rec_hash)
{
    uint64_t v;
    memcpy(&v, rec_hash, sizeof(v)); /* a keyed hash already: its bytes are uniform */
    return v;
}
