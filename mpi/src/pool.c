/*
 * pool.c - the match pool: threads that open, validate and compare a batch's feed commands
 * before apply reaches them (hie/mpi_store.h tells what apply takes from them and why the
 * decisions do not change).
 *
 * A batch is an array of items; a thread claims the next item with a counter and a
 * compare-and-swap on the item's state (FREE -> CLAIMED -> DONE); apply, reaching item i,
 * takes it (FREE -> TAKEN: no thread will start it, apply does the work itself), or waits for
 * the thread on it. Each thread allocates into its own arena, dropped when the batch ends, so
 * the only shared writes are the item states and the counters.
 *
 * What a thread reads while apply writes: the blocking index and the candidate cache, each
 * behind its rwlock, and the store's data key. Never LMDB. What it read stays good for apply
 * while apply has not written it since the batch began: the batch's touched sets (touched.c)
 * say so, so apply takes a candidate's EUID and comparison, and a feed's whole candidate list,
 * from the pool without reading the tables again.
 *
 * PHI: the persons a batch opened are wiped at its end; the arenas (sealed person, vectors)
 * are freed.
 */
#include "store_int.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAGIC 0x504f4f4cu /* "POOL" */
/* Per thread and batch: 1,024 items of a 2 KB person, the candidate search's two scratch
 * arrays (2 x 1,152 x 16 bytes, kept until the batch ends) and 66 candidates x 56 bytes at
 * 1M records: about 45 KB an item. Past the cap the thread stops claiming for the batch, and
 * what it did not prepare apply does. */
#define POOL_ARENA_BYTES (64u << 20)
/* Touched sets: a batch writes about two cache entries per feed (more when it merges) and
 * up to 18 block keys per feed; past half full a set stops telling (apply reads again). The
 * record set stays small enough for the L2 cache, as apply asks it for every candidate. */
#define POOL_TOUCHED_RECS 8192u
#define POOL_TOUCHED_KEYS 65536u

enum { ITEM_FREE, ITEM_CLAIMED, ITEM_DONE, ITEM_TAKEN };

struct pool_item {
    _Atomic int state;
    bool ok;                     /* DONE: prep holds the work */
    hie_mpi_prepared_t prep;
};

struct pool_thread {
    struct hie_mpi_pool *pool;
    pthread_t tid;
    hie_arena_t *arena;          /* this batch's allocations; NULL between batches */
};

struct hie_mpi_pool {
    uint32_t magic;
    hie_mpi_store_t *s;
    pthread_mutex_t mu;
    pthread_cond_t work, done;   /* a batch opened or the pool stops; an item or a thread done */
    bool stop, open;             /* under mu */
    uint64_t seq;                /* batches opened; under mu */
    unsigned busy;               /* threads inside the open batch; under mu */
    const char *items;
    size_t stride, n;
    hie_mpi_pool_feed_fn feed;
    _Atomic size_t next;
    _Atomic bool closing;        /* end(): threads stop claiming */
    store_touched_t recs, keys;  /* what apply changed since the batch began (store.c reads) */
    unsigned threads;
    struct pool_thread th[HIE_MPI_POOL_THREADS_MAX];
    struct pool_item item[HIE_MPI_POOL_BATCH_MAX];
};

static int
cmp_vec_hash(const void *key, const void *elem)
{
    return memcmp(key, ((const store_prep_vec_t *)elem)->hash, HIE_MPI_REC_HASH_BYTES);
}

const store_prep_vec_t *
store__prep_find(const hie_mpi_prepared_t *prep, const uint8_t *hash, size_t *from)
{
    if (from == NULL) {
        return bsearch(hash, prep->vec, prep->n, sizeof(*prep->vec), cmp_vec_hash);
    }
    int c = 1;
    while (*from < prep->n && (c = cmp_vec_hash(hash, &prep->vec[*from])) > 0) {
        (*from)++;
    }
    return *from < prep->n && c == 0 ? &prep->vec[*from] : NULL;
}

/* Adds the comparison of p with one candidate's copied entry to pr->vec (a form that does not
 * unpack is left out, as the cache's reader leaves it out). */
static void
prep_one(hie_mpi_prepared_t *pr, store_people_read_t *r, const uint8_t *hash)
{
    store_prep_vec_t *e = &pr->vec[pr->n];
    memcpy(e->euid, r->euid, HIE_MPI_EUID_BYTES);
    e->merged = r->merged;
    e->gen = r->gen;
    hie_mpi_person_t cp;
    int rc = store__people_read_person(r, &cp);
    if (rc == 0 && !e->merged) {
        hie_mpi_compare(&pr->p, &cp, &e->v);
    }
    sodium_memzero(&cp, sizeof(cp));
    if (rc == 0) {
        memcpy(e->hash, hash, HIE_MPI_REC_HASH_BYTES);
        pr->n++;
    }
}

/* Finds p's candidates in its blocks as they are now (store__candidates: sorted, so vec is
 * sorted too) and reads each from the candidate cache: its EUID, whether it was merged, and
 * (unless merged) its comparison with p. Records the cache lacks are left out. */
static int
prep_vectors(hie_mpi_store_t *s, hie_arena_t *arena, const uint8_t *self,
    hie_mpi_prepared_t *pr)
{
    store__block_caps(s, &pr->p, NULL, store__people_count(s->people), true, pr->keys,
        pr->caps);
    int rc = store__candidates(s, pr->keys, pr->caps, self, false, arena, &pr->hashes,
        &pr->n_hashes, &pr->capped);
    pr->vec = rc == 0 ? hie_arena_alloc(arena, (pr->n_hashes + 1) * sizeof(*pr->vec)) : NULL;
    if (pr->vec == NULL) {
        pr->hashes = NULL;
        return HIE_ENOMEM;
    }
    pr->n = 0;
    store__people_prefetch(s->people, pr->hashes, pr->n_hashes);
    store_people_read_t got[STORE_PEOPLE_READ_MAX];
    for (size_t i = 0; i < pr->n_hashes; i += STORE_PEOPLE_READ_MAX) {
        size_t k = pr->n_hashes - i < STORE_PEOPLE_READ_MAX ? pr->n_hashes - i
                                                             : STORE_PEOPLE_READ_MAX;
        const uint8_t *hs = pr->hashes + i * HIE_MPI_REC_HASH_BYTES;
        (void)store__people_get_many(s->people, hs, k, got); /* one lock for k */
        for (size_t j = 0; j < k; j++) {
            if (got[j].found) {
                prep_one(pr, &got[j], hs + j * HIE_MPI_REC_HASH_BYTES);
            }
        }
    }
    return 0;
}

/* The work on one item; false when there is none to hand apply. */
static bool
prep_item(struct hie_mpi_pool *pool, hie_arena_t *arena, size_t i)
{
    const Hie__V1__MpiFeedCommand *cmd = pool->feed(pool->items + i * pool->stride, arena);
    if (cmd == NULL || cmd->rec_hash.len != HIE_MPI_REC_HASH_BYTES || cmd->org_id == NULL ||
        (cmd->action != HIE__V1__FEED_ACTION__FEED_CREATE &&
            cmd->action != HIE__V1__FEED_ACTION__FEED_UPDATE)) {
        return false;
    }
    hie_mpi_prepared_t *pr = &pool->item[i].prep;
    const char *field = NULL, *reason = NULL;
    if (store__feed_person(pool->s, cmd, arena, &pr->sp, &pr->p, &field, &reason) != 0) {
        return false; /* apply refuses it, with the same words */
    }
    /* the record's sealed forms too, so that apply only stores them */
    return prep_vectors(pool->s, arena, cmd->rec_hash.data, pr) == 0 &&
           store__seals_make(pool->s, arena, cmd, pr->sp, &pr->p, &pr->seals) == 0;
}

/* Claims and prepares items of the open batch until none is left or the batch closes. */
static void
pool_run(struct hie_mpi_pool *pool, struct pool_thread *t)
{
    if (t->arena == NULL && hie_arena_create(&t->arena, POOL_ARENA_BYTES) != 0) {
        return; /* out of memory: apply does this batch's work itself */
    }
    while (!atomic_load(&pool->closing)) {
        size_t i = atomic_fetch_add(&pool->next, 1);
        if (i >= pool->n) {
            break;
        }
        int expect = ITEM_FREE;
        if (!atomic_compare_exchange_strong(&pool->item[i].state, &expect, ITEM_CLAIMED)) {
            continue; /* apply took it */
        }
        pool->item[i].ok = prep_item(pool, t->arena, i);
        pthread_mutex_lock(&pool->mu);
        atomic_store(&pool->item[i].state, ITEM_DONE);
        pthread_cond_broadcast(&pool->done);
        pthread_mutex_unlock(&pool->mu);
        if (hie_arena_cap_hit(t->arena)) {
            break; /* full for this batch: every later claim would fail at once and leave its
                    * item to apply, which the threads with room can still prepare */
        }
    }
}

static void *
pool_main(void *arg)
{
    struct pool_thread *t = arg;
    struct hie_mpi_pool *pool = t->pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->stop && (!pool->open || pool->seq == seen)) {
            pthread_cond_wait(&pool->work, &pool->mu);
        }
        if (pool->stop) {
            break;
        }
        seen = pool->seq;
        pool->busy++;
        pthread_mutex_unlock(&pool->mu);
        pool_run(pool, t);
        pthread_mutex_lock(&pool->mu);
        if (--pool->busy == 0) {
            pthread_cond_broadcast(&pool->done);
        }
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

static void
pool_stop(struct hie_mpi_pool *pool, unsigned started)
{
    pthread_mutex_lock(&pool->mu);
    pool->stop = true;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->mu);
    for (unsigned i = 0; i < started; i++) {
        pthread_join(pool->th[i].tid, NULL);
    }
}

int
hie_mpi_pool_create(hie_mpi_pool_t **out, hie_mpi_store_t *s, unsigned threads)
{
    HIE_ASSERT(out != NULL && s != NULL && s->magic == STORE_MAGIC);
    HIE_ASSERT(threads >= 1 && threads <= HIE_MPI_POOL_THREADS_MAX);
    *out = NULL;
    if (!hie_mpi_store_ready(s)) {
        return HIE_EINVAL;
    }
    struct hie_mpi_pool *pool = hie_mem_calloc(1, sizeof(*pool));
    if (pool == NULL) {
        return HIE_ENOMEM;
    }
    pool->magic = POOL_MAGIC;
    pool->s = s;
    pool->threads = threads;
    if (store__touched_init(&pool->recs, POOL_TOUCHED_RECS) != 0 ||
        store__touched_init(&pool->keys, POOL_TOUCHED_KEYS) != 0) {
        store__touched_free(&pool->recs);
        hie_mem_free(pool, sizeof(*pool));
        return HIE_ENOMEM;
    }
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->work, NULL);
    pthread_cond_init(&pool->done, NULL);
    unsigned started = 0;
    for (; started < threads; started++) {
        pool->th[started].pool = pool;
        if (pthread_create(&pool->th[started].tid, NULL, pool_main, &pool->th[started]) != 0) {
            break;
        }
        char name[16];
        snprintf(name, sizeof(name), "hie-match-%u", started % 100u);
        pthread_setname_np(pool->th[started].tid, name);
    }
    if (started < threads) {
        pool_stop(pool, started);
        hie_mpi_pool_destroy(&pool);
        return HIE_ENOMEM;
    }
    *out = pool;
    return 0;
}

void
hie_mpi_pool_begin(hie_mpi_pool_t *pool, const void *items, size_t stride, size_t n,
    hie_mpi_pool_feed_fn feed)
{
    if (pool == NULL) {
        return;
    }
    HIE_ASSERT(pool->magic == POOL_MAGIC && feed != NULL && (items != NULL || n == 0));
    n = n < HIE_MPI_POOL_BATCH_MAX ? n : HIE_MPI_POOL_BATCH_MAX;
    for (size_t i = 0; i < n; i++) {
        atomic_store(&pool->item[i].state, ITEM_FREE);
        pool->item[i].ok = false;
    }
    store__touched_start(&pool->recs); /* before any thread reads: see store.c cand_vector */
    store__touched_start(&pool->keys);
    pool->s->touched_recs = &pool->recs;
    pool->s->touched_keys = &pool->keys;
    store__people_track(pool->s->people, &pool->recs);
    store__blocks_track(pool->s->blocks, &pool->keys);
    pthread_mutex_lock(&pool->mu);
    HIE_ASSERT(!pool->open && pool->busy == 0);
    pool->items = items;
    pool->stride = stride;
    pool->n = n;
    pool->feed = feed;
    atomic_store(&pool->next, 0);
    atomic_store(&pool->closing, false);
    pool->seq++;
    pool->open = true;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->mu);
}

const hie_mpi_prepared_t *
hie_mpi_pool_take(hie_mpi_pool_t *pool, size_t i)
{
    if (pool == NULL || i >= pool->n) {
        return NULL;
    }
    HIE_ASSERT(pool->magic == POOL_MAGIC && pool->open);
    hie_mpi_store_stats_t *st = &pool->s->stats;
    struct pool_item *it = &pool->item[i];
    int expect = ITEM_FREE;
    if (atomic_compare_exchange_strong(&it->state, &expect, ITEM_TAKEN)) {
        atomic_fetch_add(&st->pool_own, 1);
        return NULL;
    }
    HIE_ASSERT(expect == ITEM_CLAIMED || expect == ITEM_DONE); /* each item is taken once */
    if (expect == ITEM_CLAIMED) {
        atomic_fetch_add(&st->pool_waited, 1);
        pthread_mutex_lock(&pool->mu);
        while (atomic_load(&it->state) != ITEM_DONE) {
            pthread_cond_wait(&pool->done, &pool->mu);
        }
        pthread_mutex_unlock(&pool->mu);
    } else {
        atomic_fetch_add(&st->pool_ready, 1);
    }
    return it->ok ? &it->prep : NULL;
}

void
hie_mpi_pool_wait(hie_mpi_pool_t *pool)
{
    HIE_ASSERT(pool != NULL && pool->magic == POOL_MAGIC);
    pthread_mutex_lock(&pool->mu);
    while (pool->open && (pool->busy > 0 || atomic_load(&pool->next) < pool->n)) {
        pthread_cond_wait(&pool->done, &pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
}

void
hie_mpi_pool_end(hie_mpi_pool_t *pool)
{
    if (pool == NULL) {
        return;
    }
    HIE_ASSERT(pool->magic == POOL_MAGIC);
    atomic_store(&pool->closing, true);
    pthread_mutex_lock(&pool->mu);
    while (pool->busy > 0) {
        pthread_cond_wait(&pool->done, &pool->mu);
    }
    pool->open = false;
    pthread_mutex_unlock(&pool->mu);
    store__people_track(pool->s->people, NULL);
    store__blocks_track(pool->s->blocks, NULL);
    pool->s->touched_recs = pool->s->touched_keys = NULL;
    store__touched_stop(&pool->recs);
    store__touched_stop(&pool->keys);
    for (size_t i = 0; i < pool->n; i++) {
        sodium_memzero(&pool->item[i].prep, sizeof(pool->item[i].prep));
        pool->item[i].ok = false;
    }
    for (unsigned t = 0; t < pool->threads; t++) {
        if (pool->th[t].arena != NULL) {
            hie_arena_wipe(pool->th[t].arena); /* decoded demographics */
        }
        hie_arena_destroy(&pool->th[t].arena);
    }
    pool->n = 0;
}

void
hie_mpi_pool_destroy(hie_mpi_pool_t **pp)
{
    HIE_ASSERT(pp != NULL);
    struct hie_mpi_pool *pool = *pp;
    if (pool == NULL) {
        return;
    }
    HIE_ASSERT(pool->magic == POOL_MAGIC);
    if (!pool->stop) {
        hie_mpi_pool_end(pool);
        pool_stop(pool, pool->threads);
    }
    pthread_cond_destroy(&pool->work);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->mu);
    store__touched_free(&pool->recs);
    store__touched_free(&pool->keys);
    pool->magic = 0;
    hie_mem_free(pool, sizeof(*pool));
    *pp = NULL;
}
