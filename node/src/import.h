/*
 * import.h - the row reader and resume state of `hiectl mpi import` (no network here).
 *
 * Purpose: read an identity file (CSV with a header, or NDJSON) one record at a time into
 * MpiFeedRequest messages, with each record's line number and the byte offset just past it, so
 * that an import can stop after any acknowledged batch and continue from that offset later.
 * Bad records are reported (line, reason, column) and skipped; they never stop the reader.
 *
 * Threads: a reader has one owner thread. Ownership: the reader owns its FILE and buffers;
 * each row's request lives in the arena the caller passes to hie_node__import_next().
 * Limits: a record longer than NODE_IMPORT_RECORD_BYTES_MAX is a rejected row (the reader skips
 * to the next line); at most NODE_IMPORT_VALUES_MAX given names, family names or address lines
 * per row; at most NODE_IMPORT_COLUMNS_MAX CSV columns.
 *
 * Caveats:
 * - CSV records may span lines inside quoted fields; a record's line is the line it starts on.
 *   A quoted field still open at the end of the file or at the size limit is taken for a
 *   stray quote: its first line is a rejected row and reading goes on at the next line.
 * - Nothing here validates demographics beyond what the format needs (org_id syntax, a
 *   non-empty MRN, known sex and action words): the node validates and normalizes the rest,
 *   including UTF-8, and answers per row.
 * - CSV cells of given, family and address hold several values separated by '|'.
 */
#ifndef HIE_NODE_IMPORT_H
#define HIE_NODE_IMPORT_H

#include "hie/base.h"
#include "hie/proto.h"

#include <stdio.h>

/* Longest record (line) we parse. Larger ones are rejected rows: demographics of one person
 * are a few hundred bytes, and the admin channel carries at most HIE_ADMIN_MSG_BYTES_MAX. */
#define NODE_IMPORT_RECORD_BYTES_MAX (64u * 1024u)
/* Arena bytes one call of hie_node__import_next() may use: the record's cells, the value
 * pointers and the request structs. */
#define NODE_IMPORT_ROW_ARENA_BYTES_MAX (2u * NODE_IMPORT_RECORD_BYTES_MAX + 8192u)
/* Values per repeated field (given, family, address) in one row. */
#define NODE_IMPORT_VALUES_MAX 8u
/* Columns of a CSV header: the twelve known ones plus action, with room for none else. */
#define NODE_IMPORT_COLUMNS_MAX 16u
/* The fingerprint hashes the file size and every byte, read in chunks of this size. */
#define NODE_IMPORT_FINGERPRINT_PREFIX_BYTES (64u * 1024u)
/* SHA-256 as lowercase hex, plus NUL. */
#define NODE_IMPORT_FINGERPRINT_HEX_BYTES 65u
/* Largest state file we read: a few hundred bytes of JSON in practice. */
#define NODE_IMPORT_STATE_BYTES_MAX 4096u

enum node_import_format { NODE_IMPORT_CSV = 1, NODE_IMPORT_NDJSON = 2 };

typedef struct node_import_reader node_import_reader_t;

/* One record as hie_node__import_next() returns it. */
typedef struct node_import_row {
    uint64_t line;                /* 1-based line the record starts on */
    uint64_t end_offset;          /* byte offset just past the record and its newline */
    uint64_t end_line;            /* line the next record starts on */
    Hie__V1__MpiFeedRequest *req; /* valid rows: the request, owned by the arena; else NULL */
    const char *reason;           /* rejected rows: why (static or arena text, no row data) */
    const char *field;            /* rejected rows: the column or key, or NULL */
} node_import_row_t;

/* Counters kept across runs in the state file. */
typedef struct node_import_counts {
    uint64_t rows;      /* records read (valid or not), blank lines excluded */
    uint64_t imported;  /* rows the node accepted */
    uint64_t rejected;  /* rows rejected locally or by the node */
    uint64_t created;   /* OUTCOME_NEW */
    uint64_t linked;    /* OUTCOME_LINKED */
    uint64_t review;    /* OUTCOME_REVIEW */
    uint64_t updated;   /* OUTCOME_UPDATED and any other outcome */
} node_import_counts_t;

/* Where an import stands after its last fully acknowledged batch. */
typedef struct node_import_state {
    uint32_t version;   /* of the fingerprint: 2 (the whole file); 1 in a state file written
                         * before 2026-12-01 (the size and the first 64 KiB) */
    char fingerprint[NODE_IMPORT_FINGERPRINT_HEX_BYTES];
    uint64_t offset;    /* next record starts here */
    uint64_t line;      /* ... on this line */
    bool complete;      /* the whole file was imported */
    node_import_counts_t counts;
} node_import_state_t;

/* Opens path, computes its fingerprint and, for CSV, reads and checks the header (every
 * column known, none twice, org_id and mrn present). [out] *out owned by the caller
 * (hie_node__import_destroy); NULL on failure. err_buf gets a lowercase reason on failure.
 * Returns 0, -errno (open/read), HIE_EINVAL (bad header or empty file), HIE_ENOMEM. */
HIE_MUST_CHECK int hie_node__import_open(node_import_reader_t **out, const char *path,
    enum node_import_format format, char *err_buf, size_t err_buf_bytes);
/* Closes the file, frees the reader; sets *reader to NULL; NULL-safe. */
void hie_node__import_destroy(node_import_reader_t **reader);

/* The file's fingerprint: SHA-256 of its size (8 bytes, big-endian) and all its bytes, as
 * hex; or, after hie_node__import_fingerprint_use(reader, 1), version 1's (the size and the
 * first NODE_IMPORT_FINGERPRINT_PREFIX_BYTES: a state file from before resumes with the ids it
 * gave its rows). Borrowed until destroy. */
const char *hie_node__import_fingerprint(const node_import_reader_t *reader);
void hie_node__import_fingerprint_use(node_import_reader_t *reader, uint32_t version);
/* File size in bytes when opened. */
uint64_t hie_node__import_size(const node_import_reader_t *reader);

/* Continues reading at offset, which is on line (both from a state file). For CSV the offset
 * must lie after the header. Returns 0, HIE_EINVAL (offset before the first record or past
 * the end) or -errno. */
HIE_MUST_CHECK int hie_node__import_seek(node_import_reader_t *reader, uint64_t offset,
    uint64_t line);

/* Reads the next record into *row (zeroed first), skipping blank lines. Returns 0 with row->req
 * set, HIE_EINVAL for a rejected row (row->line, reason, field and offsets set; reading may go
 * on), HIE_ENOTFOUND at the end of the file, HIE_ENOMEM (the arena ran out: the record is
 * consumed and lost, so keep NODE_IMPORT_ROW_ARENA_BYTES_MAX free before each call) or -errno
 * (read error; stop). */
HIE_MUST_CHECK int hie_node__import_next(node_import_reader_t *reader, hie_arena_t *arena,
    node_import_row_t *row);

/* Reads a state file. [out] *st written only on success. Returns 0, HIE_ENOTFOUND (no file),
 * HIE_ECORRUPT (not a state file we wrote) or -errno. */
HIE_MUST_CHECK int hie_node__import_state_load(const char *path, node_import_state_t *st);
/* Writes st to path atomically (path.tmp, fsync, rename). Returns 0 or -errno. */
HIE_MUST_CHECK int hie_node__import_state_save(const char *path, const node_import_state_t *st);

/* The idempotency id of the row that starts on line: "imp-" + 16 hex of the fingerprint + "-"
 * + line + "-" + 12 hex of a hash of the row's request (req; NULL: of nothing), so a row
 * corrected past the fingerprint's first 64 KiB is a new item, not a repeat of the old one.
 * [out] buf of at least HIE_PROTO_ID_BYTES_MAX + 1 bytes (asserted). */
void hie_node__import_item_id(const char *fingerprint, uint64_t line,
    const Hie__V1__MpiFeedRequest *req, char *buf, size_t buf_bytes);

#endif
