/*
 * mpi_link.h - the one linker of bench_mpi_accuracy and bench_mpi_scale: records linked in
 * file order as the index links feeds, so both benches report figures of the same rule.
 *
 * Each record's candidates are its earlier records sharing a block. They are grouped by
 * cluster (enterprise id), each cluster weighing as its best candidate record; then the first
 * HIE_MPI_COMPOSITE_EUIDS_MAX clusters reaching HIE_MPI_COMPOSITE_WEIGHT_MIN weigh as their
 * composite (each field at the best level any of the cluster's first
 * HIE_MPI_COMPOSITE_MEMBERS_MAX records reaches), and hie_mpi_decide() links the record to
 * the best cluster, merging into it every other cluster also at or above the link threshold.
 */
#ifndef HIE_BENCH_MPI_LINK_H
#define HIE_BENCH_MPI_LINK_H

#include "hie/mpi.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bench_link_in {
    const hie_mpi_person_t *p; /* prepared records, file order */
    size_t n;
    const hie_mpi_model_t *m;
    const hie_mpi_tf_t *tf;
    /* earlier[start[j] .. start[j + 1]): the records i < j paired with j, i ascending */
    const uint64_t *start;
    const uint32_t *earlier;
    /* w[q]: the weight of pair (earlier[q], j) as hie_mpi_weight(m, tf, p[j], compare(p[j],
     * p[earlier[q]])) gives it, computed beforehand (by threads); NULL: computed here */
    const double *w;
} bench_link_in_t;

typedef struct bench_link_out {
    uint32_t *cluster;         /* [n], caller's: each record's cluster (a record number) */
    size_t linked, review;     /* records linked, records left in the review band */
} bench_link_out_t;

/* Links in->p in order. Returns 0, or -1 when out of memory. */
int bench_mpi_link(const bench_link_in_t *in, bench_link_out_t *out);

#endif
