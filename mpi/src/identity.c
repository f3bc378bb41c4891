/*
 * identity.c - the enterprise ids a patient's records had before their current one, from the
 * link history (issue 4: an accounting of disclosures names the patient by EUID, and a
 * disclosure made while one of the patient's records sat under another EUID is indexed under
 * that one).
 *
 * The patient is an EUID's records: its members, and every record an A40 merge folded into
 * one of them (mpi_merged, transitively). Each record's events, oldest first, give the EUIDs
 * it lived under and when: from the event that put it there to the next one that moved it
 * (a merged record's last span ends at its merge; the survivor's history goes on from there;
 * a live record's last span is open). The asked EUID's spans are among them: before the first
 * of the patient's records joined it, or after they left, it was someone else's. Spans are
 * joined per EUID where they touch or overlap.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* Records looked at: an EUID's members (HIE_MPI_EUID_MEMBERS_MAX) and what merged into them. */
#define IDENTITY_RECORDS_MAX 4096u
/* A record's events walked (updates add events without moving it). */
#define IDENTITY_EVENTS_MAX 100000u
/* Spans gathered before they are joined. */
#define IDENTITY_RAW_MAX 1024u

struct ident {
    hie_mpi_store_t *s;
    MDB_txn *txn;
    const char *euid;            /* the asked one */
    uint8_t *recs;               /* records to walk, 16 bytes each */
    size_t n_recs;
    hie_mpi_euid_span_t *raw;    /* spans under other EUIDs, as found */
    size_t n_raw;
};

static int
span_cmp(const void *a, const void *b)
{
    const hie_mpi_euid_span_t *x = a, *y = b;
    int c = strcmp(x->euid, y->euid);
    return c != 0 ? c : x->from_ms < y->from_ms ? -1 : x->from_ms > y->from_ms;
}

/* Sorts the raw spans and joins, in place, those of one EUID that touch or overlap. */
static void
raw_join(struct ident *x)
{
    size_t n = 0;
    qsort(x->raw, x->n_raw, sizeof(*x->raw), span_cmp);
    for (size_t i = 0; i < x->n_raw; i++) {
        hie_mpi_euid_span_t *prev = n > 0 ? &x->raw[n - 1] : NULL;
        if (prev != NULL && strcmp(prev->euid, x->raw[i].euid) == 0 &&
            x->raw[i].from_ms <= prev->to_ms) {
            prev->to_ms = x->raw[i].to_ms > prev->to_ms ? x->raw[i].to_ms : prev->to_ms;
        } else {
            x->raw[n++] = x->raw[i];
        }
    }
    x->n_raw = n;
}

/* A span of a record under another EUID. Its end is padded: a disclosure decided just after
 * the move, on a state read before the move was applied, still names the EUID it left. */
static int
raw_add(struct ident *x, const char *euid, int64_t from, int64_t to)
{
    if (strlen(euid) >= HIE_MPI_EUID_BYTES) {
        return HIE_ECORRUPT;
    }
    to = to <= INT64_MAX - HIE_MPI_IDENTITY_END_PAD_MS ? to + HIE_MPI_IDENTITY_END_PAD_MS : to;
    if (to <= from) {
        return 0;
    }
    if (x->n_raw == IDENTITY_RAW_MAX) {
        raw_join(x); /* many records that moved together: their spans join */
        if (x->n_raw > IDENTITY_RAW_MAX / 2) {
            return HIE_ELIMIT;
        }
    }
    hie_mpi_euid_span_t *sp = &x->raw[x->n_raw++];
    memset(sp, 0, sizeof(*sp));
    memcpy(sp->euid, euid, strlen(euid) + 1);
    sp->from_ms = from;
    sp->to_ms = to;
    return 0;
}

/* One record's walk: where it is and since when, its last event's time, events seen. */
struct walk {
    struct ident *x;
    char at[HIE_MPI_EUID_BYTES];
    int64_t since, last;
    size_t seen;
};

/* One event of a record's walk: a move to another EUID closes the span it was in. */
static int
event_take(void *ctx, const MDB_val *v)
{
    struct walk *w = ctx;
    if (++w->seen > IDENTITY_EVENTS_MAX) {
        return HIE_ELIMIT;
    }
    Hie__V1__LinkEvent *ev = hie__v1__link_event__unpack(NULL, v->mv_size, v->mv_data);
    if (ev == NULL || ev->euid == NULL || strlen(ev->euid) >= HIE_MPI_EUID_BYTES) {
        if (ev != NULL) {
            hie__v1__link_event__free_unpacked(ev, NULL);
        }
        return HIE_ECORRUPT;
    }
    int rc = 0;
    if (strcmp(ev->euid, w->at) != 0) {
        rc = w->at[0] != '\0' ? raw_add(w->x, w->at, w->since, ev->time_ms) : 0;
        memcpy(w->at, ev->euid, strlen(ev->euid) + 1);
        w->since = ev->time_ms;
    }
    w->last = ev->time_ms;
    hie__v1__link_event__free_unpacked(ev, NULL);
    return rc;
}

/* Walks record h's events, oldest first, adding its spans; merged: its last span ends at its
 * last event (the merge). */
static int
record_walk(struct ident *x, const uint8_t *h, bool merged)
{
    struct walk w = {x, "", 0, 0, 0};
    int rc = store__hist_each(x->s, x->txn, h, event_take, &w);
    if (rc == 0 && w.at[0] != '\0' && !(merged && w.since >= w.last)) {
        /* a live record is still where it went last; a merged one was there until its merge
         * (none when the merge itself moved it: the survivor's history goes on) */
        rc = raw_add(x, w.at, w.since, merged ? w.last : INT64_MAX);
    }
    return rc;
}

static int
recs_add(struct ident *x, const uint8_t *h)
{
    for (size_t i = 0; i < x->n_recs; i++) {
        if (memcmp(x->recs + i * HIE_MPI_REC_HASH_BYTES, h, HIE_MPI_REC_HASH_BYTES) == 0) {
            return 0; /* a cycle would be corruption; a record once is enough */
        }
    }
    if (x->n_recs == IDENTITY_RECORDS_MAX) {
        return HIE_ELIMIT;
    }
    memcpy(x->recs + x->n_recs++ * HIE_MPI_REC_HASH_BYTES, h, HIE_MPI_REC_HASH_BYTES);
    return 0;
}

/* Adds the records merged into record i (mpi_merged's values under it). */
static int
merged_add(struct ident *x, size_t i)
{
    MDB_cursor *cur = NULL;
    MDB_val k = {HIE_MPI_REC_HASH_BYTES, x->recs + i * HIE_MPI_REC_HASH_BYTES}, v;
    int rc = store__rc(mdb_cursor_open(x->txn, x->s->merged, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_KEY) : MDB_NOTFOUND;
    while (rc == 0 && mrc == 0) {
        rc = v.mv_size == HIE_MPI_REC_HASH_BYTES ? recs_add(x, v.mv_data) : HIE_ECORRUPT;
        mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP) : mrc;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    return rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
}

/* The joined spans into out (at most HIE_MPI_IDENTITY_SPANS_MAX). */
static int
spans_join(struct ident *x, hie_mpi_euid_span_t *out, size_t *n)
{
    raw_join(x);
    if (x->n_raw > HIE_MPI_IDENTITY_SPANS_MAX) {
        return HIE_ELIMIT;
    }
    memcpy(out, x->raw, x->n_raw * sizeof(*out));
    *n = x->n_raw;
    return 0;
}

int
hie_mpi_store_identity(hie_mpi_store_t *s, MDB_txn *txn, const char *euid, hie_arena_t *arena,
    hie_mpi_euid_span_t **spans, size_t *n)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && euid != NULL && spans != NULL);
    *spans = NULL;
    *n = 0;
    if (!hie_mpi_store_ready(s)) {
        return HIE_EUNAVAIL;
    }
    return store__identity(s, txn, euid, false, arena, spans, n);
}

int
store__identity(hie_mpi_store_t *s, MDB_txn *txn, const char *euid, bool writer,
    hie_arena_t *arena, hie_mpi_euid_span_t **spans, size_t *n)
{
    *spans = NULL;
    *n = 0;
    struct ident x = {s, txn, euid, hie_arena_alloc(arena, IDENTITY_RECORDS_MAX *
        HIE_MPI_REC_HASH_BYTES), 0, hie_arena_alloc(arena, IDENTITY_RAW_MAX * sizeof(*x.raw)),
        0};
    hie_mpi_euid_span_t *out = hie_arena_alloc(arena, HIE_MPI_IDENTITY_SPANS_MAX *
        sizeof(*out));
    uint8_t *members = NULL;
    size_t n_members = 0;
    if (x.recs == NULL || x.raw == NULL || out == NULL) {
        return HIE_ENOMEM;
    }
    int rc = writer ? store__members_w(s, txn, euid, arena, &members, &n_members)
                    : store__members(s, txn, euid, arena, &members, &n_members);
    for (size_t i = 0; rc == 0 && i < n_members; i++) {
        rc = recs_add(&x, members + i * HIE_MPI_REC_HASH_BYTES);
    }
    for (size_t i = 0; rc == 0 && i < x.n_recs; i++) { /* grows as merged records are found */
        rc = merged_add(&x, i);
    }
    for (size_t i = 0; rc == 0 && i < x.n_recs; i++) {
        /* members are live; the rest came from mpi_merged */
        rc = record_walk(&x, x.recs + i * HIE_MPI_REC_HASH_BYTES, i >= n_members);
    }
    rc = rc == 0 ? spans_join(&x, out, n) : rc;
    *spans = rc == 0 ? out : NULL;
    *n = rc == 0 ? *n : 0;
    return rc;
}

int
hie_mpi_store_merged_into(hie_mpi_store_t *s, MDB_txn *txn, const uint8_t *rec_hash,
    hie_arena_t *arena, const uint8_t **hashes, size_t *n)
{
    HIE_ASSERT(s != NULL && s->magic == STORE_MAGIC && rec_hash != NULL && hashes != NULL);
    *hashes = NULL;
    *n = 0;
    if (!hie_mpi_store_ready(s)) {
        return HIE_EUNAVAIL;
    }
    uint8_t *out = NULL; /* taken at the first merged record: most records have none */
    MDB_cursor *cur = NULL;
    int rc = store__rc(mdb_cursor_open(txn, s->merged, &cur));
    /* breadth first: the records merged into rec_hash, then those merged into them */
    for (size_t i = 0; rc == 0 && i <= *n; i++) {
        const uint8_t *from = i == 0 ? rec_hash : out + (i - 1) * HIE_MPI_REC_HASH_BYTES;
        MDB_val k = {HIE_MPI_REC_HASH_BYTES, (void *)(uintptr_t)from}, v;
        int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
        while (rc == 0 && mrc == 0) {
            if (v.mv_size != HIE_MPI_REC_HASH_BYTES || *n == HIE_MPI_MERGED_INTO_MAX) {
                rc = v.mv_size != HIE_MPI_REC_HASH_BYTES ? HIE_ECORRUPT : HIE_ELIMIT;
                break;
            }
            out = out != NULL ? out
                : hie_arena_alloc(arena, HIE_MPI_MERGED_INTO_MAX * HIE_MPI_REC_HASH_BYTES);
            if (out == NULL) {
                rc = HIE_ENOMEM;
                break;
            }
            memcpy(out + (*n)++ * HIE_MPI_REC_HASH_BYTES, v.mv_data, HIE_MPI_REC_HASH_BYTES);
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
        }
        rc = rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND ? HIE_ESTORAGE : rc;
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    *hashes = out;
    return rc;
}
