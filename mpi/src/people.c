/*
 * people.c - the MPI's candidate cache in memory: record hash -> its EUID, whether it was
 * merged away, and its normalized person (the flat form of store__norm_pack), so that scoring
 * a candidate touches neither LMDB nor the cipher.
 *
 * It also holds each record's key in mpi_recs (records are keyed in the order they were first
 * written; this is how a record is found by its hash).
 *
 * Derived state, like the blocking index (blocks.c): rebuilt from the records when the store
 * opens and updated by apply as it writes them, so it always matches the LMDB state the log
 * thread sees; readers on an older snapshot may see records their snapshot lacks and skip
 * them. PHI: the normalized forms are held decrypted for the life of the process (the node
 * runs without core files; the data at rest stays sealed). Each form is kept with the three
 * NYSIIS codes hie_mpi_person_prepare() derives from it, so a candidate comes out prepared:
 * recomputing them for every candidate of every feed was a twentieth of apply's time at
 * 600,000 records. Memory: about 220 bytes a record.
 *
 * Threads: one writer (the log thread), readers on any thread; a rwlock guards the table.
 *
 * Generations: every stored form gets the next number of a counter, so the match pool
 * (pool.c) can tell whether the form it compared is still the record's form when apply
 * reads it (an update in the same batch replaces it).
 */
#include "store_int.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

#define PEOPLE_INITIAL 4096u
/* The codes kept after a normalized form: given, family, canonical given (hie_mpi_person_t). */
#define CODES_BYTES (3u * HIE_MPI_NYSIIS_BUF_BYTES)

struct person_entry {
    uint8_t hash[HIE_MPI_REC_HASH_BYTES];
    char euid[HIE_MPI_EUID_BYTES];
    bool used, merged;
    uint16_t len;            /* of the normalized form */
    uint64_t gen;            /* of the form: store_people.gen_next when it was stored */
    uint64_t seq;            /* its key in mpi_recs (0: not stored yet) */
    uint8_t *norm;           /* hie_mem, len + CODES_BYTES bytes: the form, then the codes */
};

struct store_people {
    pthread_rwlock_t lock;
    struct person_entry *slots;
    size_t cap, used;
    uint64_t gen_next;
    store_touched_t *track;  /* the pool's record of changed entries, or NULL (log thread) */
};

int
store__people_create(store_people_t **out)
{
    store_people_t *p = hie_mem_calloc(1, sizeof(*p));
    if (p == NULL) {
        return HIE_ENOMEM;
    }
    p->slots = hie_mem_calloc(PEOPLE_INITIAL, sizeof(*p->slots));
    if (p->slots == NULL || pthread_rwlock_init(&p->lock, NULL) != 0) {
        hie_mem_free(p->slots, PEOPLE_INITIAL * sizeof(*p->slots));
        hie_mem_free(p, sizeof(*p));
        return HIE_ENOMEM;
    }
    p->cap = PEOPLE_INITIAL;
    *out = p;
    return 0;
}

void
store__people_destroy(store_people_t **pp)
{
    store_people_t *p = *pp;
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->cap; i++) {
        if (p->slots[i].norm != NULL) {
            sodium_memzero(p->slots[i].norm, p->slots[i].len + CODES_BYTES);
            hie_mem_free(p->slots[i].norm, p->slots[i].len + CODES_BYTES);
        }
    }
    sodium_memzero(p->slots, p->cap * sizeof(*p->slots));
    hie_mem_free(p->slots, p->cap * sizeof(*p->slots));
    pthread_rwlock_destroy(&p->lock);
    hie_mem_free(p, sizeof(*p));
    *pp = NULL;
}

static struct person_entry *
slot_find(struct person_entry *slots, size_t cap, const uint8_t *hash)
{
    uint64_t h;
    memcpy(&h, hash, sizeof(h)); /* a keyed hash already: its bytes are uniform */
    size_t mask = cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        if (!slots[i].used || memcmp(slots[i].hash, hash, HIE_MPI_REC_HASH_BYTES) == 0) {
            return &slots[i];
        }
    }
}

static int
table_grow(store_people_t *p)
{
    size_t ncap = p->cap * 2;
    struct person_entry *n = hie_mem_calloc(ncap, sizeof(*n));
    if (n == NULL) {
        return HIE_ENOMEM;
    }
    for (size_t i = 0; i < p->cap; i++) {
        if (p->slots[i].used) {
            *slot_find(n, ncap, p->slots[i].hash) = p->slots[i];
        }
    }
    hie_mem_free(p->slots, p->cap * sizeof(*p->slots));
    p->slots = n;
    p->cap = ncap;
    return 0;
}

/* The entry of hash, created when absent. Write lock held. */
static int
entry_of(store_people_t *p, const uint8_t *hash, struct person_entry **out)
{
    if ((p->used + 1) * 2 > p->cap) {
        int rc = table_grow(p);
        if (rc != 0) {
            return rc;
        }
    }
    struct person_entry *e = slot_find(p->slots, p->cap, hash);
    if (!e->used) {
        memset(e, 0, sizeof(*e));
        memcpy(e->hash, hash, HIE_MPI_REC_HASH_BYTES);
        e->used = true;
        p->used++;
    }
    *out = e;
    return 0;
}

int
store__people_put_norm(store_people_t *p, const uint8_t *hash, const uint8_t *norm, size_t len)
{
    HIE_ASSERT(len > 0 && len <= STORE_NORM_BYTES_MAX);
    hie_mpi_person_t person;
    int rc = store__norm_unpack(norm, len, &person);
    if (rc != 0) {
        sodium_memzero(&person, sizeof(person));
        return rc; /* a stored form that does not unpack: HIE_ECORRUPT */
    }
    hie_mpi_person_prepare(&person);
    uint8_t *copy = hie_mem_alloc(len + CODES_BYTES);
    if (copy != NULL) {
        memcpy(copy, norm, len);
        memcpy(copy + len, person.given_code, HIE_MPI_NYSIIS_BUF_BYTES);
        memcpy(copy + len + HIE_MPI_NYSIIS_BUF_BYTES, person.family_code,
            HIE_MPI_NYSIIS_BUF_BYTES);
        memcpy(copy + len + 2 * HIE_MPI_NYSIIS_BUF_BYTES, person.canon_code,
            HIE_MPI_NYSIIS_BUF_BYTES);
    }
    sodium_memzero(&person, sizeof(person));
    if (copy == NULL) {
        return HIE_ENOMEM;
    }
    pthread_rwlock_wrlock(&p->lock);
    struct person_entry *e = NULL;
    rc = entry_of(p, hash, &e);
    if (rc == 0) {
        if (e->norm != NULL) {
            sodium_memzero(e->norm, e->len + CODES_BYTES);
            hie_mem_free(e->norm, e->len + CODES_BYTES);
        }
        e->norm = copy;
        e->len = (uint16_t)len;
        e->gen = ++p->gen_next;
        store__touched_add(p->track, store__touched_hash(hash));
        copy = NULL;
    }
    pthread_rwlock_unlock(&p->lock);
    if (copy != NULL) {
        sodium_memzero(copy, len + CODES_BYTES);
        hie_mem_free(copy, len + CODES_BYTES);
    }
    return rc;
}

int
store__people_put_link(store_people_t *p, const uint8_t *hash, const char *euid, bool merged,
    uint64_t seq)
{
    size_t el = strlen(euid);
    HIE_ASSERT(el < HIE_MPI_EUID_BYTES && seq != 0);
    pthread_rwlock_wrlock(&p->lock);
    struct person_entry *e = NULL;
    int rc = entry_of(p, hash, &e);
    if (rc == 0 && e->seq != 0 && e->seq != seq) {
        rc = HIE_ECORRUPT; /* a record keeps its key: two records of one hash in the file */
    }
    if (rc == 0) {
        memcpy(e->euid, euid, el + 1);
        e->merged = merged;
        e->seq = seq;
        store__touched_add(p->track, store__touched_hash(hash));
    }
    pthread_rwlock_unlock(&p->lock);
    return rc;
}

bool
store__people_seq(store_people_t *p, const uint8_t *hash, uint64_t *seq)
{
    store__rdlock(&p->lock);
    const struct person_entry *e = slot_find(p->slots, p->cap, hash);
    *seq = e->used ? e->seq : 0;
    pthread_rwlock_unlock(&p->lock);
    return *seq != 0;
}

void
store__people_track(store_people_t *p, store_touched_t *t)
{
    p->track = t;
}

/* Copies what a reader needs of hash's entry, under the read lock unless the caller is the
 * writer: its EUID, merged, generation and, when norm is not NULL, its form and codes (*len:
 * the form's length). False when the cache does not hold the record. */
static bool
entry_read(store_people_t *p, const uint8_t *hash, bool writer, char euid[HIE_MPI_EUID_BYTES],
    bool *merged, uint64_t *gen, uint8_t *norm, size_t *len)
{
    if (!writer) {
        store__rdlock(&p->lock);
    }
    const struct person_entry *e = slot_find(p->slots, p->cap, hash);
    bool found = e->used && e->norm != NULL && e->euid[0] != '\0';
    if (found) {
        memcpy(euid, e->euid, HIE_MPI_EUID_BYTES);
        *merged = e->merged;
        *gen = e->gen;
        if (norm != NULL) {
            *len = e->len;
            memcpy(norm, e->norm, e->len + CODES_BYTES);
        }
    }
    if (!writer) {
        pthread_rwlock_unlock(&p->lock);
    }
    return found;
}

int
store__people_peek(store_people_t *p, const uint8_t *hash, bool writer,
    char euid[HIE_MPI_EUID_BYTES], bool *merged, uint64_t *gen)
{
    return entry_read(p, hash, writer, euid, merged, gen, NULL, NULL) ? 0 : HIE_ENOTFOUND;
}

void
store__people_prefetch(store_people_t *p, const uint8_t *hashes, size_t n)
{
    store__rdlock(&p->lock);
    size_t mask = p->cap - 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t h;
        memcpy(&h, hashes + i * HIE_MPI_REC_HASH_BYTES, sizeof(h));
        __builtin_prefetch(&p->slots[(size_t)h & mask]);
    }
    for (size_t i = 0; i < n; i++) { /* the slots are on their way: now the forms */
        const struct person_entry *e = slot_find(p->slots, p->cap,
            hashes + i * HIE_MPI_REC_HASH_BYTES);
        if (e->used && e->norm != NULL) {
            __builtin_prefetch(e->norm);
        }
    }
    pthread_rwlock_unlock(&p->lock);
}

size_t
store__people_keys(store_people_t *p, store_rec_ref_t *out, size_t max)
{
    size_t n = 0;
    store__rdlock(&p->lock);
    for (size_t i = 0; i < p->cap && n < max; i++) {
        if (p->slots[i].used && p->slots[i].seq != 0) {
            memcpy(out[n].hash, p->slots[i].hash, HIE_MPI_REC_HASH_BYTES);
            out[n++].seq = p->slots[i].seq;
        }
    }
    pthread_rwlock_unlock(&p->lock);
    return n;
}

uint64_t
store__people_count(store_people_t *p)
{
    store__rdlock(&p->lock);
    uint64_t n = p->used;
    pthread_rwlock_unlock(&p->lock);
    return n;
}

/* The person of a copied entry (norm: its form, then its codes). */
static int
people_unpack(const uint8_t *norm, size_t len, bool merged, hie_mpi_person_t *person)
{
    int rc = merged ? 0 : store__norm_unpack(norm, len, person);
    if (rc == 0 && !merged) { /* unpacked by put already: the codes are its own */
        memcpy(person->given_code, norm + len, HIE_MPI_NYSIIS_BUF_BYTES);
        memcpy(person->family_code, norm + len + HIE_MPI_NYSIIS_BUF_BYTES,
            HIE_MPI_NYSIIS_BUF_BYTES);
        memcpy(person->canon_code, norm + len + 2 * HIE_MPI_NYSIIS_BUF_BYTES,
            HIE_MPI_NYSIIS_BUF_BYTES);
        person->prepared = HIE_MPI_PERSON_PREPARED;
    }
    return rc;
}

size_t
store__people_get_many(store_people_t *p, const uint8_t *hashes, size_t n,
    store_people_read_t *out)
{
    HIE_ASSERT(n <= STORE_PEOPLE_READ_MAX);
    size_t found = 0;
    store__rdlock(&p->lock);
    for (size_t i = 0; i < n; i++) {
        out[i].found = entry_read(p, hashes + i * HIE_MPI_REC_HASH_BYTES, true, out[i].euid,
            &out[i].merged, &out[i].gen, out[i].norm, &out[i].len);
        found += out[i].found;
    }
    pthread_rwlock_unlock(&p->lock);
    return found;
}

int
store__people_read_person(store_people_read_t *r, hie_mpi_person_t *person)
{
    HIE_ASSERT(r->found);
    int rc = people_unpack(r->norm, r->len, r->merged, person);
    sodium_memzero(r->norm, r->len + CODES_BYTES);
    return rc;
}

int
store__people_get(store_people_t *p, const uint8_t *hash, bool writer,
    char euid[HIE_MPI_EUID_BYTES], bool *merged, hie_mpi_person_t *person, uint64_t *gen)
{
    uint8_t norm[STORE_NORM_BYTES_MAX + CODES_BYTES];
    size_t len = 0;
    uint64_t g = 0;
    if (!entry_read(p, hash, writer, euid, merged, &g, norm, &len)) {
        return HIE_ENOTFOUND;
    }
    if (gen != NULL) {
        *gen = g;
    }
    int rc = people_unpack(norm, len, *merged, person);
    sodium_memzero(norm, len + CODES_BYTES);
    return rc;
}
