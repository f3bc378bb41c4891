/*
 * ctl_backup.c - hiectl backup DIR: a consistent copy of a node's state and command log, taken
 * while it runs (or stopped), with LMDB's own compacting copy (mdb_env_copy2 with
 * MDB_CP_COMPACT: one read transaction each, writers never wait).
 *
 * The state is copied first, then the log: the log's copy then holds every command the
 * state's copy had applied and more, and a node started on the two replays the difference.
 * With storage.log_retain the node may trim, between the two copies, commands the state's
 * copy still needs; the backup checks for that and fails (run it again, or raise log_retain).
 * Keys are not copied: the node's audit.key and the MPI data key are the operator's to keep.
 */
#include "hiectl_int.h"

#include "hie/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
env_open_ro(const char *dir, uint64_t map_bytes, MDB_env **env)
{
    int rc = mdb_env_create(env);
    rc = rc ? rc : mdb_env_set_mapsize(*env, map_bytes);
    rc = rc ? rc : mdb_env_set_maxdbs(*env, 64);
    rc = rc ? rc : mdb_env_open(*env, dir, MDB_NOTLS | MDB_RDONLY, 0600);
    if (rc != 0) {
        fprintf(stderr, "hiectl: backup: cannot open %s: %s\n", dir, mdb_strerror(rc));
        if (*env != NULL) {
            mdb_env_close(*env);
            *env = NULL;
        }
        return 1;
    }
    return 0;
}

/* Copies the environment in src into the new directory dst. */
static int
env_copy(const char *src, const char *dst, uint64_t map_bytes)
{
    MDB_env *env = NULL;
    if (env_open_ro(src, map_bytes, &env) != 0) {
        return 1;
    }
    int rc = mkdir(dst, 0700) == 0 ? 0 : errno;
    if (rc != 0) {
        fprintf(stderr, "hiectl: backup: cannot create %s: %s\n", dst, strerror(rc));
    } else if ((rc = mdb_env_copy2(env, dst, MDB_CP_COMPACT)) != 0) {
        fprintf(stderr, "hiectl: backup: copying %s failed: %s\n", src, mdb_strerror(rc));
    }
    mdb_env_close(env);
    return rc != 0;
}

/* The copied state's applied index, and the copied log's first and last commands. */
static int
ends_read(const char *state, const char *log, uint64_t map_bytes, uint64_t *applied,
    uint64_t *first, uint64_t *last)
{
    MDB_env *env[2] = {NULL, NULL};
    const char *dirs[2] = {state, log}, *dbs[2] = {"meta", "log"};
    int rc = 0;
    *applied = *first = *last = 0;
    for (int i = 0; rc == 0 && i < 2; i++) {
        MDB_txn *txn = NULL;
        MDB_cursor *cur = NULL;
        MDB_dbi dbi;
        MDB_val k = {sizeof("applied_index") - 1, (void *)(uintptr_t)"applied_index"}, v;
        rc = env_open_ro(dirs[i], map_bytes, &env[i]);
        rc = rc ? rc : mdb_txn_begin(env[i], NULL, MDB_RDONLY, &txn);
        rc = rc ? rc : mdb_dbi_open(txn, dbs[i], 0, &dbi);
        if (rc == 0 && i == 0) {
            int mrc = mdb_get(txn, dbi, &k, &v);
            rc = mrc == MDB_NOTFOUND ? 0 : mrc != 0 ? mrc : v.mv_size == 8 ? 0 : EINVAL;
            *applied = mrc == 0 && rc == 0 ? hie_load_be64(v.mv_data) : 0;
        }
        rc = rc == 0 && i == 1 ? mdb_cursor_open(txn, dbi, &cur) : rc;
        for (int end = 0; rc == 0 && i == 1 && end < 2; end++) {
            int mrc = mdb_cursor_get(cur, &k, &v, end == 0 ? MDB_FIRST : MDB_LAST);
            rc = mrc == MDB_NOTFOUND ? 0 : mrc != 0 ? mrc : k.mv_size == 8 ? 0 : EINVAL;
            *(end == 0 ? first : last) = mrc == 0 && rc == 0 ? hie_load_be64(k.mv_data) : 0;
        }
        if (cur != NULL) {
            mdb_cursor_close(cur);
        }
        if (txn != NULL) {
            mdb_txn_abort(txn);
        }
    }
    for (int i = 0; i < 2; i++) {
        if (env[i] != NULL) {
            mdb_env_close(env[i]);
        }
    }
    if (rc != 0) {
        fprintf(stderr, "hiectl: backup: cannot read the copy: %s\n", rc == 1 ? "see above"
            : mdb_strerror(rc));
    }
    return rc != 0;
}

/* path's file (or directory) to disk, mode 0600 for a file. */
static int
path_sync(const char *path, bool is_dir)
{
    int fd = open(path, is_dir ? O_RDONLY | O_DIRECTORY : O_RDWR);
    int rc = fd < 0 ? errno : 0;
    rc = rc == 0 && !is_dir && fchmod(fd, 0600) != 0 ? errno : rc;
    rc = rc == 0 && fsync(fd) != 0 ? errno : rc;
    if (fd >= 0) {
        close(fd);
    }
    if (rc != 0) {
        fprintf(stderr, "hiectl: backup: cannot sync %s: %s\n", path, strerror(rc));
    }
    return rc != 0;
}

/* The copies on disk, private, and DIR/BACKUP_DONE (the summary) last: a backup without it
 * was cut short. */
static int
backup_seal(const char *dir, const char *summary)
{
    char p[NODE_PATH_MAX + 32];
    static const char *const files[] = {"state/data.mdb", "log/data.mdb"};
    static const char *const dirs[] = {"state", "log", ""};
    for (size_t i = 0; i < 2; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        if (path_sync(p, false) != 0) {
            return 1;
        }
    }
    for (size_t i = 0; i < 2; i++) { /* the copies' directory entries before the mark */
        snprintf(p, sizeof(p), "%s/%s", dir, dirs[i]);
        if (path_sync(p, true) != 0) {
            return 1;
        }
    }
    snprintf(p, sizeof(p), "%s/BACKUP_DONE", dir);
    FILE *f = fopen(p, "wx");
    bool ok = f != NULL && fputs(summary, f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (!ok) {
        fprintf(stderr, "hiectl: backup: cannot write %s: %s\n", p, strerror(errno));
    }
    if (f != NULL) {
        fclose(f);
    }
    char top[NODE_PATH_MAX + 32];
    snprintf(top, sizeof(top), "%s/%s", dir, dirs[2]);
    if (ok && path_sync(top, true) != 0) {
        ok = false;
    }
    if (!ok) {
        (void)unlink(p);
    }
    return ok ? 0 : 1;
}

int
hie_ctl__backup(const node_config_t *cfg, const char *dir)
{
    char src[NODE_PATH_MAX + 16], state[NODE_PATH_MAX + 16], log[NODE_PATH_MAX + 16];
    if (strlen(dir) >= NODE_PATH_MAX) {
        fprintf(stderr, "hiectl: backup: the directory's path is too long\n");
        return 2;
    }
    if (mkdir(dir, 0700) != 0) {
        fprintf(stderr, "hiectl: backup: cannot create %s: %s (it must not exist yet)\n", dir,
            strerror(errno));
        return 1;
    }
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(log, sizeof(log), "%s/log", dir);
    snprintf(src, sizeof(src), "%s/state", cfg->data_dir);
    if (env_copy(src, state, cfg->map_bytes) != 0) {
        return 1;
    }
    snprintf(src, sizeof(src), "%s/log", cfg->data_dir);
    if (env_copy(src, log, cfg->map_bytes) != 0) {
        return 1;
    }
    uint64_t applied = 0, first = 0, last = 0;
    if (ends_read(state, log, cfg->map_bytes, &applied, &first, &last) != 0) {
        return 1;
    }
    if (applied > last || (last > 0 && applied + 1 < first)) {
        fprintf(stderr, "hiectl: backup: the log's copy (commands %" PRIu64 "..%" PRIu64 ") "
            "does not continue the state's (applied %" PRIu64 "): the node trimmed its log "
            "between the two copies; run the backup again into a new directory, or raise "
            "storage.log_retain\n", first, last, applied);
        return 1;
    }
    char summary[NODE_PATH_MAX + 160];
    snprintf(summary, sizeof(summary), "backup=%s state_applied_index=%" PRIu64
        " log_first_index=%" PRIu64 " log_index=%" PRIu64 "\n", dir, applied, first, last);
    if (backup_seal(dir, summary) != 0) {
        fprintf(stderr, "hiectl: backup: %s is incomplete: remove it\n", dir);
        return 1;
    }
    fputs(summary, stdout);
    printf("to restore: stop the node, put %s/state and %s/log in place of the data "
           "directory's (same owner, directories 0700), and the node's audit.key (not in the "
           "backup, nor the MPI data key: keep them apart) if it is gone too; start it: it "
           "replays the log's rest. A directory without BACKUP_DONE is not a backup.\n", dir,
        dir);
    return 0;
}
