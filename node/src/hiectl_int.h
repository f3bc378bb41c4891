/*
 * hiectl_int.h - what the files of the operator's tool share (hiectl.c: options, the admin
 * socket, main; ctl_consent.c: hiectl consent; ctl_delivery.c: hiectl delivery). Not part of
 * hie_node_core.
 */
#ifndef HIE_HIECTL_INT_H
#define HIE_HIECTL_INT_H

#include "node_int.h"

#include <stdio.h>

struct ctl {
    const char *socket;
    const char *config;
    const char *id;
    const char *name;
    const char *roles;
    const char *reason;
    const char *data_dir;
    const char *node_id;
    int timeout_ms;
    bool timeout_set;
    const char *format;     /* mpi import */
    uint32_t batch;
    const char *state;
    bool restart;
    const char *rejects;
    uint64_t after;         /* mpi review list */
    uint32_t limit;
    bool all;
    uint64_t sample_pairs;  /* mpi train */
    const char *vkey;       /* audit verify */
    const char *checkpoint;
    const char *org;        /* consent */
    const char *mrn;
    const char *file;
    bool json;
    bool bad_number;
};

/* Sends req on the admin socket; the decoded reply lives in arena. Exits 3 when the node is
 * unreachable and 1 when it answers with an error (printed). */
Hie__V1__AdminReply *hie_ctl__call(const struct ctl *c, Hie__V1__AdminRequest *req,
    hie_arena_t *arena);
/* Submits cmd (requester "@operator", --id or a fresh id) and prints its result. Returns the
 * exit code. */
int hie_ctl__command(const struct ctl *c, hie_command_t *cmd, hie_arena_t *arena);
bool hie_ctl__parse_number(const char *s, uint64_t max, uint64_t *out);
void hie_ctl__usage(FILE *f);
/* Copies s for the terminal: control characters become '?'. */
void hie_ctl__text_safe(char *out, size_t out_bytes, const char *s);
/* hiectl consent ... and hiectl delivery ...: exit codes. */
int hie_ctl__consent(const struct ctl *c, int argc, char **argv, hie_arena_t *arena);
int hie_ctl__delivery(const struct ctl *c, int argc, char **argv, hie_arena_t *arena);
int hie_ctl__repository(const struct ctl *c, int argc, char **argv, hie_arena_t *arena);
int hie_ctl__subscription(const struct ctl *c, int argc, char **argv, hie_arena_t *arena);
/* hiectl backup DIR (ctl_backup.c): the node's state and log copied into the new directory
 * dir. Returns the exit code. */
int hie_ctl__backup(const node_config_t *cfg, const char *dir);

#endif
