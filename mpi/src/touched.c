/*
 * touched.c - a batch's set of written 64-bit values (record hashes' first eight bytes, block
 * keys), so that apply can tell whether what the match pool read is still current: a value
 * not in the set was not written since the batch began. Open addressing over epoch-stamped
 * slots, so starting a batch clears the set in O(1). A full set (more writes than
 * STORE_TOUCHED_SLOTS / 2) answers "written" for everything, as does a set not started: the
 * answer may be a false "written" (a fingerprint collision), never a false "not written".
 *
 * Threads: the log thread only (the writers of the tables it tracks, and apply).
 */
#include "store_int.h"

#include <string.h>

void
store__touched_start(store_touched_t *t)
{
    t->epoch++;
    if (t->epoch == 0) { /* wrapped: old stamps could pass for the new epoch */
        memset(t->stamp, 0, sizeof(t->stamp));
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
    for (size_t i = v & (STORE_TOUCHED_SLOTS - 1);; i = (i + 1) & (STORE_TOUCHED_SLOTS - 1)) {
        if (t->stamp[i] != t->epoch) {
            t->stamp[i] = t->epoch;
            t->val[i] = v;
            t->full = ++t->n >= STORE_TOUCHED_SLOTS / 2;
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
    for (size_t i = v & (STORE_TOUCHED_SLOTS - 1);; i = (i + 1) & (STORE_TOUCHED_SLOTS - 1)) {
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
