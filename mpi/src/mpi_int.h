/*
 * mpi_int.h - declarations shared between the files of mpi/ and reached by its unit tests
 * (style.md 3.3: hie_mpi__ names). Not installed, not visible to other modules: mpi/src is a
 * PRIVATE include directory of hie_mpi.
 */
#ifndef HIE_MPI_INT_H
#define HIE_MPI_INT_H

#include "hie/mpi.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One nickname and the given name it stands for, both normalized (lowercase ASCII). */
struct hie_mpi__nickname {
    const char *nickname;
    const char *canonical;
};

/* The built-in table, sorted by nickname in strcmp() order, nicknames unique, and no
 * canonical name is itself a nickname (so canonicalization is idempotent). */
extern const struct hie_mpi__nickname hie_mpi__nicknames[];
extern const size_t hie_mpi__nicknames_count;

/* Binary search of the table for word (word_len bytes, not NUL-terminated).
 * Returns the canonical name (static), or NULL when word is not a nickname. */
const char *hie_mpi__nickname_find(const char *word, size_t word_len);

/* True when yyyymmdd is a date hie_mpi_date_parse() can return (year in range, real day). */
bool hie_mpi__date_valid(uint32_t yyyymmdd);

/* Term frequencies by the store's key for a name (a keyed hash of the normalized value, never
 * the value; MpiRecord.tf_given, tf_family): one more record with it in field f (delta 1) or
 * one fewer (-1). Returns 0, HIE_ENOMEM, or HIE_ECORRUPT when a count would go below 0. */
int hie_mpi__tf_count(hie_mpi_tf_t *tf, enum hie_mpi_field f, uint64_t key, int delta);
/* The share of field f's counted records that have key's name (0 if none), and in *total
 * how many records field f counts. */
double hie_mpi__tf_key_frequency(const hie_mpi_tf_t *tf, enum hie_mpi_field f, uint64_t key,
    uint64_t *total);
/* Distinct values counted now (slots in use), and the table's capacity (tests). */
size_t hie_mpi__tf_used(const hie_mpi_tf_t *tf, size_t *capacity);

#endif
