/*
 * blocks.c - the MPI's blocking index in memory: block key -> the records in that block,
 * sorted by record hash (a canonical order: the same on every node and after every restart,
 * whatever order the records arrived in). A block larger than the cap is skipped whole, as
 * training skips it (hie_mpi_blocks_pairs): a common value ("smith" born 1970) says too
 * little, and a slice of it would be arbitrary candidates; the other keys still find pairs.
 *
 * Why memory and not LMDB: each record sits in up to 18 blocks (15 when this was measured); as
 * LMDB duplicates those 15 inserts dirtied 15 random B-tree pages per record and a group commit
 * rewrote most of the block tree (copy-on-write), which was most of the commit cost at scale.
 * The index is derived state: the store rebuilds it from the records' block keys when it opens,
 * and apply updates it as it writes the records, so it always matches the LMDB state the log
 * thread sees. Readers (PDQ on workers) may run on an older LMDB snapshot than the index: a
 * record the index names but the snapshot lacks is skipped by the reader.
 *
 * Order: a block of at most BLOCK_SORTED_MAX records is sorted by record hash, and those are
 * the only blocks a reader sees (every cap is at most HIE_MPI_BLOCK_CAP); a larger one is
 * skipped by every reader, so it is kept as a hash set (open addressing, linear probing,
 * backward-shift deletion; an all-zero slot is empty): a sorted insert into a 10,000-record
 * block (a common family name's broad key at 1M persons) moved 80 KB per record, and an
 * unsorted one's removal scanned it whole (a member feeding 100,000 alike records made every
 * later update of one scan 18 such blocks on the log thread). When removals bring it back to
 * BLOCK_SORTED_MAX it is a sorted array again, so what a reader sees never depends on the
 * order the records came in.
 *
 * Threads: one writer (the log thread), any number of readers; a rwlock guards the table.
 * Memory: 16 bytes per (record, key) plus the table, about 300 bytes per record.
 */
#include "store_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BLOCKS_INITIAL 4096u
/* Largest block kept sorted: the largest cap a reader applies (see the file comment). */
#define BLOCK_SORTED_MAX HIE_MPI_BLOCK_CAP
#define BLOCK_HASH_MUL 0x9e3779b97f4a7c15ull /* a key's home slot: key * this, masked */

struct block {
    uint64_t key;            /* 0: empty slot */
    uint32_t n, cap;         /* cap 0: at most one record, held in one (no allocation) */
    union {
        uint8_t (*many)[HIE_MPI_REC_HASH_BYTES]; /* hie_mem, cap records */
        uint8_t one[1][HIE_MPI_REC_HASH_BYTES];
    } u;
};

struct store_blocks {
    pthread_rwlock_t lock;
    struct block *slots;
    size_t cap, used;        /* cap: a power of two; used: slots with a key */
    size_t empty;            /* of those, blocks emptied by removals (dropped at the next
                              * rebuild, so keys a record no longer has do not pile up) */
    store_touched_t *track;  /* the pool's record of changed keys, or NULL (log thread) */
};

/* The block's records: most blocks (a name with a birth date, say) hold one, kept in the slot
 * itself; a malloc for each would be most of what adding a record to its blocks costs. */
static uint8_t (*block_hashes(struct block *bl))[HIE_MPI_REC_HASH_BYTES]
{
    return bl->cap == 0 ? bl->u.one : bl->u.many;
}

static const uint8_t (*block_hashes_c(const struct block *bl))[HIE_MPI_REC_HASH_BYTES]
{
    return bl->cap == 0 ? bl->u.one : (const uint8_t (*)[HIE_MPI_REC_HASH_BYTES])bl->u.many;
}

static size_t block_bytes(const struct block *bl);

int
store__blocks_create(store_blocks_t **out)
{
    store_blocks_t *b = hie_mem_calloc(1, sizeof(*b));
    if (b == NULL) {
        return HIE_ENOMEM;
    }
    b->slots = hie_mem_calloc(BLOCKS_INITIAL, sizeof(*b->slots));
    if (b->slots == NULL || pthread_rwlock_init(&b->lock, NULL) != 0) {
        hie_mem_free(b->slots, BLOCKS_INITIAL * sizeof(*b->slots));
        hie_mem_free(b, sizeof(*b));
        return HIE_ENOMEM;
    }
    b->cap = BLOCKS_INITIAL;
    *out = b;
    return 0;
}

void
store__blocks_destroy(store_blocks_t **bp)
{
    store_blocks_t *b = *bp;
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->cap; i++) {
        if (b->slots[i].cap > 0) {
            hie_mem_free(b->slots[i].u.many, block_bytes(&b->slots[i]));
        }
    }
    hie_mem_free(b->slots, b->cap * sizeof(*b->slots));
    pthread_rwlock_destroy(&b->lock);
    hie_mem_free(b, sizeof(*b));
    *bp = NULL;
}

static struct block *
slot_find(struct block *slots, size_t cap, uint64_t key)
{
    HIE_ASSERT(key != 0);
    size_t mask = cap - 1;
    for (size_t i = (size_t)(key * BLOCK_HASH_MUL) & mask;; i = (i + 1) & mask) {
        if (slots[i].key == key || slots[i].key == 0) {
            return &slots[i];
        }
    }
}

/* Starts loading the home slots of keys[0..n) and, with blocks, the records of the blocks
 * there: at a million records the table is far larger than the caches, and a record's 18
 * keys, looked up one after another, each waited for memory (a fifth of apply's time). Caller:
 * the writer, or a reader under the lock. A prefetch of a stale slot is harmless. */
static void
slots_prefetch(const store_blocks_t *b, const uint64_t *keys, size_t n, bool blocks)
{
    size_t mask = b->cap - 1;
    for (size_t i = 0; i < n; i++) {
        if (keys[i] != 0) {
            __builtin_prefetch(&b->slots[(size_t)(keys[i] * BLOCK_HASH_MUL) & mask]);
        }
    }
    for (size_t i = 0; blocks && i < n; i++) {
        const struct block *bl = keys[i] != 0 ?
            &b->slots[(size_t)(keys[i] * BLOCK_HASH_MUL) & mask] : NULL;
        if (bl != NULL && bl->key == keys[i] && bl->cap > 0) {
            __builtin_prefetch(bl->u.many);
        }
    }
}

/* A full table is rebuilt without its emptied blocks: at the same size when they are at
 * least half of it (a member that keeps changing one record's names leaves a dead key per
 * change), else twice the size. */
static int
table_grow(store_blocks_t *b)
{
    size_t ncap = b->empty * 2 >= b->used ? b->cap : b->cap * 2;
    struct block *n = hie_mem_calloc(ncap, sizeof(*n));
    if (n == NULL) {
        return HIE_ENOMEM;
    }
    size_t used = 0;
    for (size_t i = 0; i < b->cap; i++) {
        struct block *bl = &b->slots[i];
        if (bl->key != 0 && bl->n == 0) {
            if (bl->cap > 0) {
                hie_mem_free(bl->u.many, block_bytes(bl));
            }
        } else if (bl->key != 0) {
            *slot_find(n, ncap, bl->key) = *bl;
            used++;
        }
    }
    hie_mem_free(b->slots, b->cap * sizeof(*b->slots));
    b->slots = n;
    b->cap = ncap;
    b->used = used;
    b->empty = 0;
    return 0;
}

/* Position of hash in the sorted block (where it is, or where it would go). */
static uint32_t
block_pos(const struct block *bl, const uint8_t *hash, bool *found)
{
    return (uint32_t)store__hash_search(block_hashes_c(bl)[0], bl->n, hash, found);
}

static int
block_reserve(struct block *bl)
{
    if (bl->n < (bl->cap == 0 ? 1u : bl->cap)) {
        return 0;
    }
    HIE_ASSERT(bl->cap <= UINT32_MAX / 2);
    uint32_t ncap = bl->cap == 0 ? 4 : bl->cap * 2;
    uint8_t (*n)[HIE_MPI_REC_HASH_BYTES] = NULL;
    if (bl->cap == 0) {
        n = hie_mem_alloc((size_t)ncap * HIE_MPI_REC_HASH_BYTES);
        if (n != NULL) {
            memcpy(n, bl->u.one, (size_t)bl->n * HIE_MPI_REC_HASH_BYTES);
        }
    } else {
        n = hie_mem_realloc(bl->u.many, (size_t)bl->cap * HIE_MPI_REC_HASH_BYTES,
            (size_t)ncap * HIE_MPI_REC_HASH_BYTES);
    }
    if (n == NULL) {
        return HIE_ENOMEM;
    }
    bl->u.many = n;
    bl->cap = ncap;
    return 0;
}


/* ---- a large block: a hash set of cap (a power of two) slots, at most half full, followed by
 * its occupancy bitmap (cap / 8 bytes: any hash, the all-zero one too, may be a record's) -- */

static size_t
set_bytes(uint32_t cap)
{
    return (size_t)cap * HIE_MPI_REC_HASH_BYTES + cap / 8u;
}

/* The bytes bl's records take (its array, or its set with the bitmap). */
static size_t
block_bytes(const struct block *bl)
{
    return bl->cap == 0 ? 0 : bl->n > BLOCK_SORTED_MAX ? set_bytes(bl->cap)
                                                      : (size_t)bl->cap * HIE_MPI_REC_HASH_BYTES;
}

static uint8_t *
set_occ(uint8_t (*t)[HIE_MPI_REC_HASH_BYTES], uint32_t cap)
{
    return (uint8_t *)(t + cap);
}

static bool
set_used(uint8_t (*t)[HIE_MPI_REC_HASH_BYTES], uint32_t cap, size_t i)
{
    return (set_occ(t, cap)[i >> 3] >> (i & 7u)) & 1u;
}

static void
set_mark(uint8_t (*t)[HIE_MPI_REC_HASH_BYTES], uint32_t cap, size_t i, bool used)
{
    uint8_t bit = (uint8_t)(1u << (i & 7u));
    set_occ(t, cap)[i >> 3] = used ? (uint8_t)(set_occ(t, cap)[i >> 3] | bit)
                                   : (uint8_t)(set_occ(t, cap)[i >> 3] & ~bit);
}

static size_t
set_home(const uint8_t *hash, uint32_t cap)
{
    uint64_t x = hie_load_be64(hash) ^ hie_load_be64(hash + 8);
    return (size_t)((x * BLOCK_HASH_MUL) >> 32) & (cap - 1u);
}

/* The slot holding hash, or the free slot where it would go. */
static size_t
set_find(uint8_t (*t)[HIE_MPI_REC_HASH_BYTES], uint32_t cap, const uint8_t *hash)
{
    size_t i = set_home(hash, cap);
    while (set_used(t, cap, i) && memcmp(t[i], hash, HIE_MPI_REC_HASH_BYTES) != 0) {
        i = (i + 1) & (cap - 1u);
    }
    return i;
}

/* bl's records (its n, as a sorted array or a set of its cap) into a new set of ncap slots. */
static int
set_rebuild(struct block *bl, uint32_t ncap)
{
    uint8_t (*t)[HIE_MPI_REC_HASH_BYTES] = hie_mem_calloc(1, set_bytes(ncap));
    if (t == NULL) {
        return HIE_ENOMEM;
    }
    bool is_set = bl->n > BLOCK_SORTED_MAX;
    uint32_t from = is_set ? bl->cap : bl->n;
    for (uint32_t i = 0; i < from; i++) {
        if (!is_set || set_used(bl->u.many, bl->cap, i)) {
            size_t at = set_find(t, ncap, bl->u.many[i]);
            memcpy(t[at], bl->u.many[i], HIE_MPI_REC_HASH_BYTES);
            set_mark(t, ncap, at, true);
        }
    }
    hie_mem_free(bl->u.many, block_bytes(bl));
    bl->u.many = t;
    bl->cap = ncap;
    return 0;
}

/* Adds hash to a block of BLOCK_SORTED_MAX records or more: a set from the first one past. */
static int
set_insert(struct block *bl, const uint8_t *hash)
{
    HIE_ASSERT(bl->cap > 0); /* over BLOCK_SORTED_MAX records: never the inline one */
    int rc = 0;
    bool listed = false;
    if (bl->n == BLOCK_SORTED_MAX && (block_pos(bl, hash, &listed), listed)) {
        return 0; /* listed already (a programmer error): the array stays an array */
    }
    if (bl->n == BLOCK_SORTED_MAX) {
        rc = set_rebuild(bl, 4u * BLOCK_SORTED_MAX);
    } else if ((bl->n + 1u) * 2u > bl->cap) {
        HIE_ASSERT(bl->cap <= UINT32_MAX / 2);
        rc = set_rebuild(bl, bl->cap * 2u);
    }
    if (rc != 0) {
        return rc;
    }
    size_t at = set_find(bl->u.many, bl->cap, hash);
    if (!set_used(bl->u.many, bl->cap, at)) { /* else listed already: harmless */
        memcpy(bl->u.many[at], hash, HIE_MPI_REC_HASH_BYTES);
        set_mark(bl->u.many, bl->cap, at, true);
        bl->n++;
    }
    return 0;
}

/* Adds hash to bl: in its sorted place while bl stays within BLOCK_SORTED_MAX, else to its
 * set. The caller never adds a record twice to one block (store__blocks_change). */
static int
block_insert(struct block *bl, const uint8_t *hash)
{
    if (bl->n >= BLOCK_SORTED_MAX) { /* over the readers' caps: order does not matter */
        return set_insert(bl, hash);
    }
    int rc = block_reserve(bl);
    if (rc != 0) {
        return rc;
    }
    bool found = false;
    uint32_t at = block_pos(bl, hash, &found);
    if (found) {
        return 0; /* already listed (a programmer error, but a harmless one) */
    }
    uint8_t (*hs)[HIE_MPI_REC_HASH_BYTES] = block_hashes(bl);
    memmove(hs[at + 1], hs[at], (size_t)(bl->n - at) * HIE_MPI_REC_HASH_BYTES);
    memcpy(hs[at], hash, HIE_MPI_REC_HASH_BYTES);
    bl->n++;
    return 0;
}

static int
hash_cmp(const void *a, const void *b)
{
    return memcmp(a, b, HIE_MPI_REC_HASH_BYTES);
}

/* Removes hash from bl if it is there; a block brought back to BLOCK_SORTED_MAX is a sorted
 * array again. Returns 0 or HIE_ENOMEM (nothing changed). */
static int
block_remove(struct block *bl, const uint8_t *hash)
{
    uint8_t (*hs)[HIE_MPI_REC_HASH_BYTES] = block_hashes(bl);
    if (bl->n <= BLOCK_SORTED_MAX) {
        bool found = false;
        uint32_t at = block_pos(bl, hash, &found);
        if (found) {
            memmove(hs[at], hs[at + 1],
                (size_t)(bl->n - at - 1) * HIE_MPI_REC_HASH_BYTES);
            bl->n--;
        }
        return 0;
    }
    size_t i = set_find(hs, bl->cap, hash), mask = bl->cap - 1u;
    if (!set_used(hs, bl->cap, i)) {
        return 0; /* not listed */
    }
    uint32_t ncap = 2u * BLOCK_SORTED_MAX; /* the sorted array it becomes at BLOCK_SORTED_MAX */
    uint8_t (*a)[HIE_MPI_REC_HASH_BYTES] = bl->n == BLOCK_SORTED_MAX + 1u
        ? hie_mem_alloc((size_t)ncap * HIE_MPI_REC_HASH_BYTES) : NULL;
    if (bl->n == BLOCK_SORTED_MAX + 1u && a == NULL) {
        return HIE_ENOMEM;
    }
    for (size_t j = (i + 1) & mask; set_used(hs, bl->cap, j); j = (j + 1) & mask) {
        size_t home = set_home(hs[j], bl->cap); /* j's entry may move to the hole at i */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            memcpy(hs[i], hs[j], HIE_MPI_REC_HASH_BYTES);
            i = j;
        }
    }
    set_mark(hs, bl->cap, i, false);
    if (a != NULL) { /* a sorted array again, for the readers */
        uint32_t k = 0;
        for (uint32_t m = 0; m < bl->cap; m++) {
            if (set_used(hs, bl->cap, m)) {
                memcpy(a[k++], hs[m], HIE_MPI_REC_HASH_BYTES);
            }
        }
        HIE_ASSERT(k == BLOCK_SORTED_MAX);
        qsort(a, k, HIE_MPI_REC_HASH_BYTES, hash_cmp);
        hie_mem_free(bl->u.many, set_bytes(bl->cap));
        bl->u.many = a;
        bl->cap = ncap;
    }
    bl->n--;
    return 0;
}

/* True when keys[i] appeared earlier in keys: two keys of one record that hash alike name one
 * block, and the record is listed there once. */
static bool
key_repeated(const uint64_t *keys, size_t i)
{
    for (size_t j = 0; j < i; j++) {
        if (keys[j] == keys[i]) {
            return true;
        }
    }
    return false;
}

int
store__blocks_change(store_blocks_t *b, const uint64_t *keys, size_t n, const uint8_t *hash,
    bool add)
{
    int rc = 0;
    slots_prefetch(b, keys, n, true); /* the writer's own table: no lock needed to read it */
    pthread_rwlock_wrlock(&b->lock);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (keys[i] == 0 || key_repeated(keys, i)) {
            continue;
        }
        store__touched_add(b->track, keys[i]);
        if (add && (b->used + 1) * 2 > b->cap) {
            rc = table_grow(b);
        }
        struct block *bl = rc == 0 ? slot_find(b->slots, b->cap, keys[i]) : NULL;
        if (bl != NULL && add) {
            b->used += bl->key == 0;
            b->empty -= bl->key != 0 && bl->n == 0; /* an emptied block in use again */
            bl->key = keys[i];
            rc = block_insert(bl, hash);
        } else if (bl != NULL && bl->key != 0 && bl->n > 0) {
            rc = block_remove(bl, hash); /* an emptied block keeps its slot: keys findable */
            b->empty += bl->n == 0;
        }
    }
    pthread_rwlock_unlock(&b->lock);
    return rc;
}

void
store__blocks_track(store_blocks_t *b, store_touched_t *t)
{
    b->track = t;
}

/* store__blocks_get under the caller's lock (or as the writer). */
static size_t
blocks_get_locked(store_blocks_t *b, uint64_t key, const uint8_t *self, uint8_t *out,
    size_t cap, bool *capped)
{
    size_t n = 0;
    *capped = false;
    if (key == 0) {
        return 0;
    }
    HIE_ASSERT(cap <= BLOCK_SORTED_MAX); /* larger blocks are not kept in order */
    const struct block *bl = slot_find(b->slots, b->cap, key);
    *capped = bl->key != 0 && bl->n > cap;
    if (bl->key != 0 && !*capped) { /* a block over the cap says too little: skip it whole */
        const uint8_t (*hs)[HIE_MPI_REC_HASH_BYTES] = block_hashes_c(bl);
        for (uint32_t i = 0; i < bl->n; i++) {
            if (self == NULL || memcmp(hs[i], self, HIE_MPI_REC_HASH_BYTES) != 0) {
                memcpy(out + n * HIE_MPI_REC_HASH_BYTES, hs[i], HIE_MPI_REC_HASH_BYTES);
                n++;
            }
        }
    }
    return n;
}

size_t
store__blocks_get(store_blocks_t *b, uint64_t key, const uint8_t *self, bool writer,
    uint8_t *out, size_t cap, bool *capped)
{
    if (!writer) {
        store__rdlock(&b->lock);
    }
    size_t n = blocks_get_locked(b, key, self, out, cap, capped);
    if (!writer) {
        pthread_rwlock_unlock(&b->lock);
    }
    return n;
}

size_t
store__blocks_get_all(store_blocks_t *b, const uint64_t keys[HIE_MPI_BLOCK_KEYS],
    const size_t caps[HIE_MPI_BLOCK_KEYS], const uint8_t *self, bool writer, uint8_t *out,
    size_t ends[HIE_MPI_BLOCK_KEYS], uint64_t *capped)
{
    size_t n = 0;
    *capped = 0;
    if (!writer) {
        store__rdlock(&b->lock);
    }
    slots_prefetch(b, keys, HIE_MPI_BLOCK_KEYS, true);
    for (unsigned i = 0; i < HIE_MPI_BLOCK_KEYS; i++) {
        bool cut = false;
        n += blocks_get_locked(b, keys[i], self, out + n * HIE_MPI_REC_HASH_BYTES, caps[i], &cut);
        *capped += cut;
        ends[i] = n;
    }
    if (!writer) {
        pthread_rwlock_unlock(&b->lock);
    }
    return n;
}
