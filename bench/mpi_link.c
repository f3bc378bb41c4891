/*
 * mpi_link.c - the benches' linker (mpi_link.h): moved from bench_mpi_accuracy.c, which had
 * it alone, so that bench_mpi_scale links by the same rule.
 */
#include "mpi_link.h"

#include <stdlib.h>

/* One candidate cluster of the record being linked: its weight. */
struct cand {
    double w;
    uint32_t cluster;
    bool conflict; /* the composite's national ids all differ (hie_mpi_ids_conflict) */
};

static int
cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->w != y->w) {
        return x->w > y->w ? -1 : 1;
    }
    return x->cluster < y->cluster ? -1 : x->cluster > y->cluster; /* ties: a fixed order */
}

/* Clusters as member lists: head[c] the first record of root c, next[i] the one after i. */
struct members {
    uint32_t *head, *next;
};

struct linker {
    const bench_link_in_t *in;
    uint32_t *parent;
    struct members mb;
    int32_t *slot; /* cluster -> its entry in cands, or -1 */
    struct cand *cands;
    double *weights;
    bool *conflict;
};

static uint32_t
find(uint32_t *parent, uint32_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

/* The weight of pair q of record j: given, or computed as mpi_link.h says. */
static double
pair_weight(const bench_link_in_t *in, uint64_t q, size_t j)
{
    if (in->w != NULL) {
        return in->w[q];
    }
    hie_mpi_vector_t v;
    hie_mpi_compare(&in->p[j], &in->p[in->earlier[q]], &v);
    return hie_mpi_weight(in->m, in->tf, &in->p[j], &v, NULL);
}

/* The composite weight of cluster c for record j (hie/mpi_match.h); *conflict as the index
 * decides it. */
static double
cluster_composite(const struct linker *lk, uint32_t c, size_t j, bool *conflict)
{
    const bench_link_in_t *in = lk->in;
    hie_mpi_composite_t comp;
    hie_mpi_composite_init(&comp);
    for (uint32_t i = lk->mb.head[c]; i != UINT32_MAX; i = lk->mb.next[i]) {
        if (comp.records == HIE_MPI_COMPOSITE_MEMBERS_MAX) {
            break;
        }
        hie_mpi_vector_t v;
        hie_mpi_contribution_t ex[HIE_MPI_FIELD_COUNT];
        hie_mpi_compare(&in->p[j], &in->p[i], &v);
        (void)hie_mpi_weight(in->m, in->tf, &in->p[j], &v, ex);
        hie_mpi_composite_add(&comp, ex);
    }
    hie_mpi_contribution_t best[HIE_MPI_FIELD_COUNT];
    double w = hie_mpi_composite_weight(&comp, best);
    *conflict = hie_mpi_ids_conflict(best);
    return w;
}

/* The candidate clusters of record j in lk->cands, best first (mpi_link.h). Returns their
 * count. */
static size_t
score_clusters(struct linker *lk, size_t j)
{
    const bench_link_in_t *in = lk->in;
    size_t nc = 0;
    for (uint64_t q = in->start[j]; q < in->start[j + 1]; q++) {
        uint32_t c = find(lk->parent, in->earlier[q]);
        double w = pair_weight(in, q, j);
        if (lk->slot[c] < 0) {
            lk->slot[c] = (int32_t)nc;
            lk->cands[nc++] = (struct cand){w, c, false};
        } else if (w > lk->cands[lk->slot[c]].w) {
            lk->cands[lk->slot[c]].w = w;
        }
    }
    for (size_t k = 0; k < nc; k++) {
        lk->slot[lk->cands[k].cluster] = -1;
    }
    qsort(lk->cands, nc, sizeof(*lk->cands), cmp_cand);
    for (size_t k = 0; k < nc && k < HIE_MPI_COMPOSITE_EUIDS_MAX; k++) {
        if (lk->cands[k].w < HIE_MPI_COMPOSITE_WEIGHT_MIN) {
            break;
        }
        lk->cands[k].w = cluster_composite(lk, lk->cands[k].cluster, j, &lk->cands[k].conflict);
    }
    qsort(lk->cands, nc, sizeof(*lk->cands), cmp_cand);
    return nc;
}

/* Moves every record of cluster from to the front of cluster to's list. */
static void
members_splice(struct members *mb, uint32_t from, uint32_t to)
{
    uint32_t last = mb->head[from];
    while (mb->next[last] != UINT32_MAX) {
        last = mb->next[last];
    }
    mb->next[last] = mb->head[to];
    mb->head[to] = mb->head[from];
    mb->head[from] = UINT32_MAX;
}

static void
link_one(struct linker *lk, size_t j, bench_link_out_t *out)
{
    size_t nc = score_clusters(lk, j);
    for (size_t k = 0; k < nc; k++) {
        lk->weights[k] = lk->cands[k].w;
        lk->conflict[k] = lk->cands[k].conflict;
    }
    hie_mpi_decision_t d;
    hie_mpi_decide(lk->in->m, lk->weights, lk->conflict, nc, &d);
    if (d.outcome == HIE_MPI_OUTCOME_LINK) {
        uint32_t to = lk->cands[0].cluster;
        lk->parent[j] = to;
        members_splice(&lk->mb, (uint32_t)j, to);
        for (size_t k = 1; k <= d.fold_count; k++) {
            lk->parent[lk->cands[k].cluster] = to; /* both are roots */
            members_splice(&lk->mb, lk->cands[k].cluster, to);
        }
        out->linked++;
    } else if (d.outcome == HIE_MPI_OUTCOME_REVIEW) {
        out->review++;
    }
}

int
bench_mpi_link(const bench_link_in_t *in, bench_link_out_t *out)
{
    size_t n = in->n;
    struct linker lk = {in, malloc(n * sizeof(uint32_t)),
        {malloc(n * sizeof(uint32_t)), malloc(n * sizeof(uint32_t))},
        malloc(n * sizeof(int32_t)), malloc(n * sizeof(struct cand)),
        malloc(n * sizeof(double)), malloc(n + 1)};
    int rc = lk.parent != NULL && lk.mb.head != NULL && lk.mb.next != NULL &&
        lk.slot != NULL && lk.cands != NULL && lk.weights != NULL && lk.conflict != NULL ? 0
        : -1;
    out->linked = out->review = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        lk.parent[i] = (uint32_t)i;
        lk.mb.head[i] = (uint32_t)i;
        lk.mb.next[i] = UINT32_MAX;
        lk.slot[i] = -1;
    }
    for (size_t j = 0; rc == 0 && j < n; j++) {
        link_one(&lk, j, out);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        out->cluster[i] = find(lk.parent, (uint32_t)i);
    }
    free(lk.parent);
    free(lk.mb.head);
    free(lk.mb.next);
    free(lk.slot);
    free(lk.cands);
    free(lk.weights);
    free(lk.conflict);
    return rc;
}
