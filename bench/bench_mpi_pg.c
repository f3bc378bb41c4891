/*
 * bench_mpi_pg.c - the PostgreSQL baseline of the PDQ benchmark (issue 3, "Speed at scale"):
 * the same generated persons in PostgreSQL 15 with pg_trgm and fuzzystrmatch indexes (what a
 * home-grown MPI uses), queried with the same PDQ cases as our matcher, for latency
 * (p50/p99/mean per query) and recall@1 / recall@10 on the generator's truth.
 *
 * usage: bench_mpi_pg [--count N] [--cases K] [--seed S] [--time-cap-s T] [--keep] [--smoke]
 *                     [--persons FILE --cases-file FILE] [--pg-bin DIR] [--explain]
 *
 * Steps: PostgreSQL 15 is checked (server binaries, the two extensions) and, when missing,
 * installed by deploy/install-bench-deps.sh (root and apt; a clear failure otherwise).
 * gen_persons writes N persons and K PDQ cases (seed 42) into a temporary directory, unless
 * --persons and --cases-file name existing files (so another benchmark can share them).
 * initdb (as the 'postgres' OS user through runuser when run as root: initdb and postgres
 * refuse root), then pg_ctl starts the server on 127.0.0.1 and a free port, its unix socket in
 * the temporary directory. bench/pg/schema.sql creates the extensions and the table; the rows
 * are streamed in with COPY; bench/pg/indexes.sql builds the indexes and runs VACUUM ANALYZE.
 * The load runs with fsync, synchronous_commit and full_page_writes off (it is not what is
 * compared; a real MPI loads once), and they are turned back on, with a CHECKPOINT, before
 * the queries (which only read, so this does not change their latency). The table and its
 * indexes are loaded into shared buffers (pg_prewarm) and the first cases run once unmeasured,
 * so both sides are measured warm: our index is an LMDB memory map. Then every case runs as
 * the prepared statement of bench/pg/pdq.sql over TCP on 127.0.0.1 (no TLS), one at a time.
 *
 * Output: human lines on stdout, then `bench=mpi_pg_pdq ...` and, last, `PG_PDQ n=...
 * p50_us=... p99_us=... mean_us=... recall1=... recall10=...` for the program that computes
 * the ratio against our own PDQ.
 *
 * Cleanup: the server is stopped (pg_ctl stop, fast then immediate) and the temporary
 * directory removed at exit and on SIGINT/SIGTERM/SIGHUP/SIGABRT/SIGSEGV/SIGBUS (the signal
 * handler stops the server, then chains to the harness's, which removes the directory). If
 * this process is killed with SIGKILL the server finds its lock file gone within a minute of
 * the directory's removal, or survives if nothing removes it: --keep says where it is.
 *
 * Limits: N <= 9,000,000 (the generator's), K <= CASES_MAX, and a total time cap (default
 * 3600 s) enforced as the session's statement_timeout and checked before every case; every
 * child process has a timeout.
 */
#include "harness.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define COUNT_DEFAULT 100000ul
#define COUNT_SMOKE 2000ul
#define COUNT_MAX 9000000ul          /* gen_persons's COUNT_MAX */
#define CASES_DEFAULT 1000ul
#define CASES_SMOKE 100ul
#define CASES_MAX 100000ul           /* 100k cases at the 1M-person p50 take minutes */
#define WARMUP_CASES_MAX 100ul       /* run once unmeasured before the measured pass */
#define TIME_CAP_S_DEFAULT 3600ul
#define TIME_CAP_S_MAX 86400ul
#define SEED_DEFAULT "42"
#define PG_BIN_DEFAULT "/usr/lib/postgresql/15/bin"
#define PG_EXT_DIR "/usr/share/postgresql/15/extension"
#define PG_USER "postgres"
#define RUNUSER_BIN "/usr/sbin/runuser"
#define GEN_TIMEOUT_MS (600 * 1000)
#define INSTALL_TIMEOUT_MS (900 * 1000)
#define INITDB_TIMEOUT_MS (120 * 1000)
#define PG_CTL_TIMEOUT_MS (120 * 1000)
#define ARGV_MAX 24u
#define LINE_BYTES 1024u             /* a FEBRL row of gen_persons is at most 640 bytes */
#define VALUE_BYTES 64u              /* one value: the generator's values are under 48 bytes */
#define FEBRL_FIELDS 11u
#define CASE_FIELDS 8u
#define COPY_BUF_BYTES (1u << 20)
#define SQL_FILE_BYTES_MAX (64u * 1024u)
#define SQL_STATEMENTS_MAX 32u
#define ROWS_MAX 500000000ul         /* COPY loop bound: far above 9 M persons with duplicates */
#define RESULT_ROWS_MAX 10           /* LIMIT of pdq.sql */
#define SHAPES_COUNT 5u              /* the generator's 4 shapes, then "other" */
/* A name directly under the temporary directory; paths under it fit in BENCH_PATH_BYTES. */
#define SUBDIR_BYTES (BENCH_ROOT_BYTES + 32u)

_Static_assert(SUBDIR_BYTES + 32u <= BENCH_PATH_BYTES, "paths under the data directory fit");
_Static_assert(COPY_BUF_BYTES > 4u * LINE_BYTES, "a converted row must fit in the copy buffer");

struct opts {
    unsigned long count;
    unsigned long cases_max;
    unsigned long time_cap_s;
    const char *seed;
    const char *persons_path;   /* NULL: generate into the temporary directory */
    const char *cases_path;
    const char *pg_bin;
    bool keep;
    bool smoke;
    bool explain;
};

/* One PDQ case of gen_persons --queries; empty strings are fields not queried. */
struct pdq_case {
    uint32_t person_id;
    unsigned shape;             /* index into shape_names, SHAPES_COUNT - 1 for others */
    bool corrupted;
    char given[VALUE_BYTES];
    char family[VALUE_BYTES];
    char dob[VALUE_BYTES];      /* YYYY-MM-DD, or empty */
    char postcode[VALUE_BYTES];
};

/* A PDQ statement of bench/pg/: prepared under stmt, reported with its own machine line. */
struct variant {
    const char *name;
    const char *file;
    const char *stmt;
    const char *line;
};

/* The hand-tuned variant runs first so that the line of the obvious one, PG_PDQ, is last. */
static const struct variant variants[] = {
    {"blocked", "pdq_blocked.sql", "pdq_blocked", "PG_PDQ_BLOCKED"},
    {"trgm", "pdq.sql", "pdq", "PG_PDQ"},
};

static const char *const shape_names[SHAPES_COUNT] = {
    "name_dob", "family_dob_postcode", "name_postcode", "given_dob_postcode", "other",
};

/* Per shape (and a total at SHAPES_COUNT): cases, hits in the first result and in the ten. */
struct recall {
    unsigned long cases[SHAPES_COUNT + 1];
    unsigned long hit1[SHAPES_COUNT + 1];
    unsigned long hit10[SHAPES_COUNT + 1];
    unsigned long corrupted_cases;
    unsigned long corrupted_hit10;
    unsigned long rows;
    unsigned long empty;
};

/* The server: process-wide so that the exit and signal paths can stop it. */
static struct server {
    char root[BENCH_ROOT_BYTES];
    char data[SUBDIR_BYTES];
    char server_log[SUBDIR_BYTES];
    char cmd_log[SUBDIR_BYTES];
    char pg_ctl[BENCH_PATH_BYTES];
    const char *stop_argv[ARGV_MAX];  /* pg_ctl stop -m immediate, built before the start */
    uint16_t port;
    volatile sig_atomic_t running;
} srv;

static const int fatal_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGABRT, SIGSEGV, SIGBUS};
static struct sigaction old_actions[HIE_ARRAY_LEN(fatal_signals)];

static int
fail(const char *what)
{
    fprintf(stderr, "bench_mpi_pg: %s\n", what);
    return 1;
}

static double
secs_since(uint64_t t0_ns)
{
    return (double)(hie_time_mono_ns() - t0_ns) / 1e9;
}

/* ---- running commands as the postgres user --------------------------------------------------- */

/* argv for cmd, through runuser -u postgres when we are root. [out] argv[ARGV_MAX]. */
static void
argv_as_pg(const char **argv, const char *const *cmd)
{
    size_t n = 0;

    if (geteuid() == 0) {
        argv[n++] = RUNUSER_BIN;
        argv[n++] = "-u";
        argv[n++] = PG_USER;
        argv[n++] = "--";
    }
    for (size_t i = 0; cmd[i] != NULL; i++) {
        HIE_ASSERT(n + 1 < ARGV_MAX);
        argv[n++] = cmd[i];
    }
    argv[n] = NULL;
    HIE_ASSERT(n >= 1);
}

/* Runs cmd as the postgres user, output appended to srv.cmd_log. Returns its status. */
static int
pg_run(const char *const *cmd, int timeout_ms)
{
    const char *argv[ARGV_MAX];

    HIE_ASSERT(cmd[0] != NULL);
    HIE_ASSERT(timeout_ms > 0);
    argv_as_pg(argv, cmd);
    return bench_run(argv, srv.cmd_log, timeout_ms);
}

static void
log_print(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[LINE_BYTES];

    if (f == NULL) {
        return;
    }
    for (unsigned i = 0; i < 200 && fgets(line, sizeof(line), f) != NULL; i++) {
        fprintf(stderr, "  | %s", line);
    }
    fclose(f);
}

/* ---- installation ---------------------------------------------------------------------------- */

static bool
pg_present(const char *bin)
{
    static const char *const tools[] = {"initdb", "pg_ctl", "postgres"};
    static const char *const exts[] = {"pg_trgm.control", "fuzzystrmatch.control"};
    char path[BENCH_PATH_BYTES];

    for (size_t i = 0; i < HIE_ARRAY_LEN(tools); i++) {
        snprintf(path, sizeof(path), "%s/%s", bin, tools[i]);
        if (access(path, X_OK) != 0) {
            return false;
        }
    }
    for (size_t i = 0; i < HIE_ARRAY_LEN(exts); i++) {
        snprintf(path, sizeof(path), "%s/%s", PG_EXT_DIR, exts[i]);
        if (strcmp(bin, PG_BIN_DEFAULT) == 0 && access(path, R_OK) != 0) {
            return false; /* another --pg-bin has its own share dir: CREATE EXTENSION tells */
        }
    }
    return true;
}

/* Installs nothing when PostgreSQL 15 is present; else runs deploy/install-bench-deps.sh. */
static int
pg_ensure_installed(const char *bin, const char *root)
{
    char script[BENCH_PATH_BYTES], log[BENCH_PATH_BYTES];

    if (pg_present(bin)) {
        return 0;
    }
    snprintf(script, sizeof(script), "%s/deploy/install-bench-deps.sh", HIE_SOURCE_DIR);
    snprintf(log, sizeof(log), "%s/install.log", root);
    printf("# PostgreSQL 15 not found in %s: running %s\n", bin, script);
    const char *argv[] = {"/bin/bash", script, NULL};
    int rc = bench_run(argv, log, INSTALL_TIMEOUT_MS);
    if (rc != 0) {
        fprintf(stderr, "bench_mpi_pg: PostgreSQL 15 with pg_trgm and fuzzystrmatch is not "
            "installed and %s could not install it (status %d; it needs root and apt):\n",
            script, rc);
        log_print(log);
        return 1;
    }
    if (!pg_present(bin)) {
        fprintf(stderr, "bench_mpi_pg: %s ran, but initdb, pg_ctl or postgres is still missing "
            "in %s (or an extension in %s): check --pg-bin\n", script, bin, PG_EXT_DIR);
        return 1;
    }
    return 0;
}

/* ---- the server ------------------------------------------------------------------------------ */

/* Stops the server from a signal handler: fork and exec only (async-signal-safe). */
static void
server_stop_async(void)
{
    if (!srv.running) {
        return;
    }
    srv.running = 0;
    pid_t pid = fork();
    if (pid == 0) {
        execv(srv.stop_argv[0], (char *const *)(uintptr_t)srv.stop_argv);
        _exit(127);
    }
    if (pid > 0) {
        (void)waitpid(pid, NULL, 0);
    }
}

static void
on_fatal_signal(int sig)
{
    server_stop_async();
    for (size_t i = 0; i < HIE_ARRAY_LEN(fatal_signals); i++) {
        if (fatal_signals[i] == sig && old_actions[i].sa_handler != SIG_DFL &&
            old_actions[i].sa_handler != SIG_IGN) {
            old_actions[i].sa_handler(sig); /* the harness's: removes the directory, re-raises */
        }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Stops the server: fast shutdown, immediate if that fails. Idempotent. */
static void
server_stop(void)
{
    if (!srv.running) {
        return;
    }
    const char *fast[] = {srv.pg_ctl, "-D", srv.data, "-m", "fast", "-w", "-t", "60", "stop",
        NULL};
    if (pg_run(fast, PG_CTL_TIMEOUT_MS) != 0) {
        fprintf(stderr, "bench_mpi_pg: fast shutdown failed, stopping immediately\n");
        server_stop_async();
    }
    srv.running = 0;
}

static void
server_stop_at_exit(void)
{
    server_stop();
}

/* Runs after bench_setup(): our exit handler runs before the harness's (which removes the
 * directory), and our signal handlers chain to its handlers. */
static void
cleanup_install(void)
{
    atexit(server_stop_at_exit);
    for (size_t i = 0; i < HIE_ARRAY_LEN(fatal_signals); i++) {
        struct sigaction sa = {0};
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(fatal_signals[i], &sa, &old_actions[i]);
    }
}

/* The server's settings, appended to postgresql.conf. */
static int
server_config_write(unsigned long count)
{
    char path[BENCH_PATH_BYTES];
    /* Shared buffers big enough for the table and its indexes (~1 GB at 1M persons). */
    unsigned buffers_mb = count > 300000 ? 2048u : 512u;

    snprintf(path, sizeof(path), "%s/postgresql.conf", srv.data);
    FILE *f = fopen(path, "a");
    if (f == NULL) {
        return -errno;
    }
    fprintf(f, "\n# bench_mpi_pg\nlisten_addresses = '127.0.0.1'\nport = %u\n"
        "unix_socket_directories = '%s'\nshared_buffers = %uMB\nwork_mem = 64MB\n"
        "maintenance_work_mem = 1GB\neffective_cache_size = 8GB\nmax_wal_size = 8GB\n"
        "wal_level = minimal\nmax_wal_senders = 0\n"
        "# load only: turned on again (ALTER SYSTEM, reload) before the queries\n"
        "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        "# JIT compiles expensive plans in tens of ms: off, as an OLTP deployment sets it\n"
        "jit = off\nlog_min_messages = warning\n",
        srv.port, srv.root, buffers_mb);
    return fclose(f) == 0 ? 0 : -errno;
}

/* initdb into <root>/pgdata, owned by the postgres user when we are root. */
static int
server_init(const char *bin)
{
    char initdb[BENCH_PATH_BYTES];

    if (geteuid() == 0) {
        struct passwd *pw = getpwnam(PG_USER);
        if (pw == NULL) {
            return fail("no 'postgres' OS user (the postgresql-15 package creates it)");
        }
        if (chown(srv.root, pw->pw_uid, pw->pw_gid) != 0) {
            return fail("chown of the temporary directory to postgres failed");
        }
    }
    snprintf(initdb, sizeof(initdb), "%s/initdb", bin);
    const char *cmd[] = {initdb, "-D", srv.data, "-U", PG_USER, "-A", "trust", "-E", "UTF8",
        "--locale=C", "--no-sync", NULL};
    int rc = pg_run(cmd, INITDB_TIMEOUT_MS);
    if (rc != 0) {
        fprintf(stderr, "bench_mpi_pg: initdb failed (status %d):\n", rc);
        log_print(srv.cmd_log);
        return 1;
    }
    return 0;
}

/* Configures and starts the server on a free port; pg_ctl -w waits until it accepts. */
static int
server_start(const char *bin, unsigned long count)
{
    srv.port = bench_port_pick();
    if (srv.port == 0) {
        return fail("no free port in 27000-27999");
    }
    if (server_config_write(count) != 0) {
        return fail("writing postgresql.conf failed");
    }
    snprintf(srv.pg_ctl, sizeof(srv.pg_ctl), "%s/pg_ctl", bin);
    const char *stop[] = {srv.pg_ctl, "-D", srv.data, "-m", "immediate", "-w", "-t", "30",
        "stop", NULL};
    argv_as_pg(srv.stop_argv, stop);
    const char *start[] = {srv.pg_ctl, "-D", srv.data, "-l", srv.server_log, "-w", "-t", "90",
        "start", NULL};
    srv.running = 1; /* a failed start may leave a postmaster behind: stop it anyway */
    int rc = pg_run(start, PG_CTL_TIMEOUT_MS);
    if (rc != 0) {
        fprintf(stderr, "bench_mpi_pg: pg_ctl start failed (status %d):\n", rc);
        log_print(srv.cmd_log);
        log_print(srv.server_log);
        return 1;
    }
    return 0;
}

/* ---- SQL helpers ----------------------------------------------------------------------------- */

/* Runs one statement; prints what failed. Returns 0 or -1. */
static int
sql_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_mpi_pg: statement failed: %.120s\n  %s", sql,
            PQerrorMessage(conn));
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/* The first column of the first row of a query, copied to out; "" on failure. */
static void
sql_value(PGconn *conn, const char *sql, char *out, size_t out_bytes)
{
    PGresult *res = PQexec(conn, sql);

    HIE_ASSERT(out_bytes > 0);
    out[0] = '\0';
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0) {
        snprintf(out, out_bytes, "%s", PQgetvalue(res, 0, 0));
    } else {
        fprintf(stderr, "bench_mpi_pg: query failed: %.120s\n  %s", sql, PQerrorMessage(conn));
    }
    PQclear(res);
}

/* Reads bench/pg/<name> into buf[SQL_FILE_BYTES_MAX]. Returns 0 or -1. */
static int
sql_file_read(const char *name, char *buf)
{
    char path[BENCH_PATH_BYTES];

    snprintf(path, sizeof(path), "%s/bench/pg/%s", HIE_SOURCE_DIR, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "bench_mpi_pg: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t len = fread(buf, 1, SQL_FILE_BYTES_MAX - 1, f);
    bool too_long = len == SQL_FILE_BYTES_MAX - 1;
    fclose(f);
    buf[len] = '\0';
    if (too_long) {
        fprintf(stderr, "bench_mpi_pg: %s is longer than %u bytes\n", path, SQL_FILE_BYTES_MAX);
        return -1;
    }
    return 0;
}

/* The first line of stmt that is not a comment, for the report. */
static void
sql_label(const char *stmt, char *out, size_t out_bytes)
{
    const char *line = stmt;

    while (*line == '\n' || *line == ' ' || (line[0] == '-' && line[1] == '-')) {
        if (*line == '-') {
            const char *nl = strchr(line, '\n');
            line = nl != NULL ? nl : line + strlen(line);
        } else {
            line++;
        }
    }
    size_t len = strcspn(line, "\n");
    snprintf(out, out_bytes, "%.*s", (int)(len < 70 ? len : 70), line);
}

/* Runs each statement of bench/pg/<name> (';' at the end of a line ends one), printing the
 * seconds each took when timed. [out] *total_s. Returns 0 or -1. */
static int
sql_file_run(PGconn *conn, const char *name, bool timed, double *total_s)
{
    static char buf[SQL_FILE_BYTES_MAX];
    char label[80];
    char *stmt = buf;
    unsigned count = 0;

    *total_s = 0;
    if (sql_file_read(name, buf) != 0) {
        return -1;
    }
    while (stmt != NULL && count < SQL_STATEMENTS_MAX) {
        char *end = strstr(stmt, ";\n");
        if (end != NULL) {
            *end = '\0';
        }
        sql_label(stmt, label, sizeof(label));
        if (label[0] != '\0') {
            uint64_t t0 = hie_time_mono_ns();
            if (sql_exec(conn, stmt) != 0) {
                return -1;
            }
            double s = secs_since(t0);
            *total_s += s;
            if (timed) {
                printf("#   %7.2f s  %s\n", s, label);
            }
            count++;
        }
        stmt = end != NULL ? end + 2 : NULL;
    }
    return stmt == NULL ? 0 : -1;
}

/* ---- loading --------------------------------------------------------------------------------- */

/* Appends one COPY text-format value: \N for an empty value. false if it cannot be carried. */
static bool
copy_value(char **out, const char *end, const char *v, size_t len, bool last)
{
    HIE_ASSERT(*out <= end);
    if ((size_t)(end - *out) < len + 3) {
        return false;
    }
    if (len == 0) {
        memcpy(*out, "\\N", 2);
        *out += 2;
    } else {
        if (memchr(v, '\t', len) != NULL || memchr(v, '\\', len) != NULL) {
            return false; /* the generator writes neither; a hand-made file might */
        }
        memcpy(*out, v, len);
        *out += len;
    }
    *(*out)++ = last ? '\n' : '\t';
    return true;
}

/* The <i> of rec-<i>-org / rec-<i>-dup-<k>; -1 when rec_id has another form. */
static long
rec_person(const char *v, size_t len)
{
    long id = 0;
    size_t i = 4;

    if (len < 6 || strncmp(v, "rec-", 4) != 0) {
        return -1;
    }
    for (; i < len && v[i] >= '0' && v[i] <= '9' && i < 14; i++) {
        id = id * 10 + (v[i] - '0');
    }
    return i > 4 && i < len && v[i] == '-' ? id : -1;
}

/* Converts one FEBRL row ("a, b, ...") into a COPY row of person_record, person_id after
 * rec_id and the birth date as YYYY-MM-DD. Returns the bytes written, 0 for a bad row. */
static size_t
row_convert(const char *line, char *out, size_t out_bytes)
{
    const char *v[FEBRL_FIELDS];
    size_t len[FEBRL_FIELDS];
    const char *p = line;
    char *o = out, *end = out + out_bytes, num[16], date[16];

    HIE_ASSERT(out_bytes >= 4 * LINE_BYTES); /* load_copy() flushes before less is left */
    for (size_t f = 0; f < FEBRL_FIELDS; f++) {
        const char *sep = strstr(p, ", ");
        v[f] = p;
        len[f] = sep != NULL ? (size_t)(sep - p) : strcspn(p, "\r\n");
        if ((sep == NULL) != (f == FEBRL_FIELDS - 1)) {
            return 0; /* too few or too many fields */
        }
        p = sep != NULL ? sep + 2 : p;
    }
    long person = rec_person(v[0], len[0]);
    if (person < 0) {
        return 0;
    }
    int num_len = snprintf(num, sizeof(num), "%ld", person);
    size_t dob_len = 0;
    if (len[9] == 8 && strspn(v[9], "0123456789") >= 8) {
        dob_len = (size_t)snprintf(date, sizeof(date), "%.4s-%.2s-%.2s", v[9], v[9] + 4,
            v[9] + 6);
    }
    bool ok = copy_value(&o, end, v[0], len[0], false) &&
        copy_value(&o, end, num, (size_t)num_len, false);
    for (size_t f = 1; ok && f < FEBRL_FIELDS; f++) {
        ok = f == 9 ? copy_value(&o, end, date, dob_len, false)
                    : copy_value(&o, end, v[f], len[f], f == FEBRL_FIELDS - 1);
    }
    return ok ? (size_t)(o - out) : 0;
}

/* Sends buf[0..*len) as COPY data and empties it. Returns 0 or -1. */
static int
copy_flush(PGconn *conn, char *buf, size_t *len)
{
    if (*len > 0 && PQputCopyData(conn, buf, (int)*len) != 1) {
        fprintf(stderr, "bench_mpi_pg: COPY data failed: %s", PQerrorMessage(conn));
        return -1;
    }
    *len = 0;
    return 0;
}

/* Ends the COPY (with an error message when failed) and checks its result. */
static int
copy_end(PGconn *conn, bool failed)
{
    int rc = failed ? -1 : 0;

    if (PQputCopyEnd(conn, failed ? "bench_mpi_pg: load aborted" : NULL) != 1) {
        rc = -1;
    }
    for (unsigned i = 0; i < 4; i++) { /* the COPY result, then NULL */
        PGresult *res = PQgetResult(conn);
        if (res == NULL) {
            break;
        }
        if (PQresultStatus(res) != PGRES_COMMAND_OK && !failed) {
            fprintf(stderr, "bench_mpi_pg: COPY failed: %s", PQerrorMessage(conn));
            rc = -1;
        }
        PQclear(res);
    }
    return rc;
}

/* Streams the FEBRL file into person_record with COPY. [out] *rows, *bad. Returns 0 or -1. */
static int
load_copy(PGconn *conn, const char *path, unsigned long *rows, unsigned long *bad)
{
    static char buf[COPY_BUF_BYTES];
    char line[LINE_BYTES];
    size_t len = 0;
    int rc = 0;

    HIE_ASSERT(conn != NULL);
    HIE_ASSERT(PQstatus(conn) == CONNECTION_OK);
    *rows = 0;
    *bad = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "bench_mpi_pg: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    PGresult *res = PQexec(conn, "COPY person_record (rec_id, person_id, given_name, surname, "
        "street_number, address_1, address_2, suburb, postcode, state, dob, soc_sec_id) "
        "FROM STDIN");
    bool copying = PQresultStatus(res) == PGRES_COPY_IN;
    PQclear(res);
    if (!copying) {
        fprintf(stderr, "bench_mpi_pg: COPY failed: %s", PQerrorMessage(conn));
        fclose(f);
        return -1;
    }
    while (rc == 0 && *rows + *bad < ROWS_MAX && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "rec_id,", 7) == 0) {
            continue; /* the header */
        }
        size_t n = row_convert(line, buf + len, sizeof(buf) - len);
        *rows += n > 0 ? 1 : 0;
        *bad += n > 0 ? 0 : 1;
        len += n;
        if (sizeof(buf) - len < 4 * LINE_BYTES) {
            rc = copy_flush(conn, buf, &len);
        }
    }
    if (rc == 0 && ferror(f)) {
        rc = -1;
    }
    fclose(f);
    rc = rc == 0 ? copy_flush(conn, buf, &len) : rc;
    return copy_end(conn, rc != 0) != 0 ? -1 : rc;
}

/* ---- PDQ cases ------------------------------------------------------------------------------- */

/* Splits a case row at ','; v[] point into line. Returns the number of fields. */
static size_t
case_split(char *line, char **v, size_t v_max)
{
    size_t n = 0;
    char *p = line;

    line[strcspn(line, "\r\n")] = '\0';
    while (n < v_max) {
        v[n++] = p;
        char *comma = strchr(p, ',');
        if (comma == NULL) {
            break;
        }
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

/* Parses one row of gen_persons --queries into c. false for a bad row. */
static bool
case_parse(char *line, struct pdq_case *c)
{
    char *v[CASE_FIELDS];
    char *end = NULL;

    if (case_split(line, v, CASE_FIELDS) != CASE_FIELDS) {
        return false;
    }
    errno = 0;
    unsigned long person = strtoul(v[1], &end, 10);
    if (errno != 0 || *end != '\0' || end == v[1] || person >= COUNT_MAX) {
        return false;
    }
    c->person_id = (uint32_t)person;
    c->shape = SHAPES_COUNT - 1;
    for (unsigned s = 0; s + 1 < SHAPES_COUNT; s++) {
        if (strcmp(v[2], shape_names[s]) == 0) {
            c->shape = s;
        }
    }
    c->corrupted = strcmp(v[7], "none") != 0;
    snprintf(c->given, sizeof(c->given), "%s", v[3]);
    snprintf(c->family, sizeof(c->family), "%s", v[4]);
    c->dob[0] = '\0';
    if (strlen(v[5]) == 8 && strspn(v[5], "0123456789") == 8) {
        snprintf(c->dob, sizeof(c->dob), "%.4s-%.2s-%.2s", v[5], v[5] + 4, v[5] + 6);
    }
    snprintf(c->postcode, sizeof(c->postcode), "%s", v[6]);
    return true;
}

/* Reads at most max cases from path. [out] *cases (free()), *count. Returns 0 or -1. */
static int
cases_load(const char *path, unsigned long max, struct pdq_case **cases, unsigned long *count)
{
    char line[LINE_BYTES];
    unsigned long bad = 0;

    *cases = NULL;
    *count = 0;
    HIE_ASSERT(max >= 1 && max <= CASES_MAX);
    FILE *f = fopen(path, "r");
    struct pdq_case *c = calloc(max, sizeof(*c));
    if (f == NULL || c == NULL) {
        fprintf(stderr, "bench_mpi_pg: cannot read %s\n", path);
        if (f != NULL) {
            fclose(f);
        }
        free(c);
        return -1;
    }
    while (*count < max && bad < max && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "case_id,", 8) == 0) {
            continue;
        }
        if (case_parse(line, &c[*count])) {
            (*count)++;
        } else {
            bad++;
        }
    }
    fclose(f);
    if (bad > 0) {
        fprintf(stderr, "bench_mpi_pg: %lu bad rows in %s\n", bad, path);
    }
    *cases = c;
    return *count > 0 ? 0 : -1;
}

/* ---- queries --------------------------------------------------------------------------------- */

static int
pdq_prepare(PGconn *conn, const struct variant *v)
{
    static char sql[SQL_FILE_BYTES_MAX];
    /* text, text, date, text: the types of given, family, birth date, postcode */
    const Oid types[4] = {25, 25, 1082, 25};

    if (sql_file_read(v->file, sql) != 0) {
        return -1;
    }
    PGresult *res = PQprepare(conn, v->stmt, sql, 4, types);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc != 0) {
        fprintf(stderr, "bench_mpi_pg: preparing %s failed: %s", v->file, PQerrorMessage(conn));
    }
    PQclear(res);
    return rc;
}

/* Runs case c. [out] *rank: 1-based rank of the first record of the true person, 0 if
 * absent; *rows: records returned. Returns 0 or -1. */
static int
pdq_run(PGconn *conn, const char *stmt, const struct pdq_case *c, int *rank, int *rows)
{
    const char *values[4] = {
        c->given[0] != '\0' ? c->given : NULL,
        c->family[0] != '\0' ? c->family : NULL,
        c->dob[0] != '\0' ? c->dob : NULL,
        c->postcode[0] != '\0' ? c->postcode : NULL,
    };

    *rank = 0;
    *rows = 0;
    PGresult *res = PQexecPrepared(conn, stmt, 4, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_mpi_pg: %s failed: %s", stmt, PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    *rows = PQntuples(res);
    HIE_ASSERT(*rows <= RESULT_ROWS_MAX);
    for (int r = 0; r < *rows && *rank == 0; r++) {
        if (strtoul(PQgetvalue(res, r, 0), NULL, 10) == c->person_id) {
            *rank = r + 1;
        }
    }
    PQclear(res);
    return 0;
}

static void
recall_add(struct recall *rc, const struct pdq_case *c, int rank, int rows)
{
    HIE_ASSERT(c->shape < SHAPES_COUNT);
    HIE_ASSERT(rank >= 0 && rank <= RESULT_ROWS_MAX);
    for (unsigned i = 0; i < 2; i++) {
        unsigned s = i == 0 ? c->shape : SHAPES_COUNT;
        rc->cases[s]++;
        rc->hit1[s] += rank == 1 ? 1 : 0;
        rc->hit10[s] += rank >= 1 ? 1 : 0;
    }
    if (c->corrupted) {
        rc->corrupted_cases++;
        rc->corrupted_hit10 += rank >= 1 ? 1 : 0;
    }
    rc->rows += (unsigned long)rows;
    rc->empty += rows == 0 ? 1 : 0;
}

/* Loads the table and its indexes into shared buffers. */
static int
db_prewarm(PGconn *conn)
{
    return sql_exec(conn, "CREATE EXTENSION IF NOT EXISTS pg_prewarm") != 0 ||
            sql_exec(conn, "SELECT pg_prewarm(c.oid) FROM pg_class c "
                "WHERE c.relname LIKE 'person_record%'") != 0
        ? -1
        : 0;
}

/* Runs the first cases once, unmeasured (and past the custom-plan phase of a prepared
 * statement: PostgreSQL plans the first five executions with their values). */
static int
pdq_warm_up(PGconn *conn, const char *stmt, const struct pdq_case *cases, unsigned long count)
{
    int rank = 0, rows = 0;

    for (unsigned long i = 0; i < count && i < WARMUP_CASES_MAX; i++) {
        if (pdq_run(conn, stmt, &cases[i], &rank, &rows) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Runs every case until the deadline. [out] lat_ns[count], *done, *rc. Returns 0 or -1. */
static int
pdq_measure(PGconn *conn, const char *stmt, const struct pdq_case *cases, unsigned long count,
    uint64_t deadline_ns, uint64_t *lat_ns, unsigned long *done, struct recall *rc)
{
    int rank = 0, rows = 0;

    HIE_ASSERT(count >= 1 && count <= CASES_MAX);
    HIE_ASSERT(lat_ns != NULL);
    *done = 0;
    memset(rc, 0, sizeof(*rc));
    for (unsigned long i = 0; i < count; i++) {
        if (hie_time_mono_ns() >= deadline_ns) {
            printf("# time cap reached after %lu of %lu cases\n", i, count);
            break;
        }
        uint64_t t0 = hie_time_mono_ns();
        if (pdq_run(conn, stmt, &cases[i], &rank, &rows) != 0) {
            return -1;
        }
        lat_ns[i] = hie_time_mono_ns() - t0;
        recall_add(rc, &cases[i], rank, rows);
        (*done)++;
    }
    return 0;
}

/* Prints EXPLAIN (ANALYZE, BUFFERS) of case c, for --explain. */
static void
pdq_explain(PGconn *conn, const char *stmt, const struct pdq_case *c)
{
    const char *values[4] = {c->given, c->family, c->dob, c->postcode};
    char *lit[4] = {NULL, NULL, NULL, NULL};
    char sql[512];

    for (size_t i = 0; i < 4; i++) {
        lit[i] = values[i][0] != '\0' ? PQescapeLiteral(conn, values[i], strlen(values[i]))
                                       : NULL;
    }
    snprintf(sql, sizeof(sql), "EXPLAIN (ANALYZE, BUFFERS) EXECUTE %s(%s, %s, %s, %s)", stmt,
        lit[0] != NULL ? lit[0] : "NULL", lit[1] != NULL ? lit[1] : "NULL",
        lit[2] != NULL ? lit[2] : "NULL", lit[3] != NULL ? lit[3] : "NULL");
    for (size_t i = 0; i < 4; i++) {
        PQfreemem(lit[i]);
    }
    PGresult *res = PQexec(conn, sql);
    for (int r = 0; PQresultStatus(res) == PGRES_TUPLES_OK && r < PQntuples(res); r++) {
        printf("# explain | %s\n", PQgetvalue(res, r, 0));
    }
    PQclear(res);
}

/* ---- report ---------------------------------------------------------------------------------- */

struct figures {
    unsigned long persons;
    unsigned long records;
    double load_s;
    double index_s;
    double db_mb;
    double table_mb;
    double indexes_mb;
    char version[64];
};

static double
ratio(unsigned long num, unsigned long den)
{
    return den > 0 ? (double)num / (double)den : 0.0;
}

static void
report(const struct figures *fig, const struct variant *v, uint64_t *lat_ns, unsigned long done,
    const struct recall *rc)
{
    double sum_us = 0, p50_us = 0, p99_us = 0;
    unsigned long all = SHAPES_COUNT;

    HIE_ASSERT(done >= 1 && done <= CASES_MAX);
    HIE_ASSERT(rc->cases[all] == done);
    for (unsigned long i = 0; i < done; i++) {
        sum_us += (double)lat_ns[i] / 1000.0;
    }
    double mean_us = done > 0 ? sum_us / (double)done : 0.0;
    bench_percentiles(lat_ns, done, &p50_us, &p99_us); /* sorts lat_ns */
    double max_us = done > 0 ? (double)lat_ns[done - 1] / 1000.0 : 0.0;
    printf("variant %s (bench/pg/%s):\nshape                 cases  recall@1  recall@10\n",
        v->name, v->file);
    for (unsigned s = 0; s <= SHAPES_COUNT; s++) {
        if (rc->cases[s] > 0) {
            printf("%-20s %6lu    %.4f     %.4f\n", s < SHAPES_COUNT ? shape_names[s] : "all",
                rc->cases[s], ratio(rc->hit1[s], rc->cases[s]),
                ratio(rc->hit10[s], rc->cases[s]));
        }
    }
    printf("# PDQ %s on PostgreSQL %s: %lu cases, p50 %.1f us, p99 %.1f us, mean %.1f us, max "
        "%.1f us; %.2f records per answer, %lu empty; recall@10 %.4f of %lu corrupted "
        "cases, %.4f of %lu clean ones\n",
        v->name, fig->version, done, p50_us, p99_us, mean_us, max_us, ratio(rc->rows, done),
        rc->empty, ratio(rc->corrupted_hit10, rc->corrupted_cases), rc->corrupted_cases,
        ratio(rc->hit10[all] - rc->corrupted_hit10, done - rc->corrupted_cases),
        done - rc->corrupted_cases);
    printf("bench=mpi_pg_pdq variant=%s persons=%lu records=%lu cases=%lu load_s=%.2f "
        "index_s=%.2f db_mb=%.0f table_mb=%.0f indexes_mb=%.0f p50_us=%.1f p99_us=%.1f "
        "mean_us=%.1f max_us=%.1f recall1=%.4f recall10=%.4f\n",
        v->name, fig->persons, fig->records, done, fig->load_s, fig->index_s, fig->db_mb,
        fig->table_mb, fig->indexes_mb, p50_us, p99_us, mean_us, max_us,
        ratio(rc->hit1[all], done), ratio(rc->hit10[all], done));
    printf("%s n=%lu p50_us=%.1f p99_us=%.1f mean_us=%.1f recall1=%.4f recall10=%.4f\n",
        v->line, done, p50_us, p99_us, mean_us, ratio(rc->hit1[all], done),
        ratio(rc->hit10[all], done));
}

/* ---- main ------------------------------------------------------------------------------------ */

static void
usage(FILE *f)
{
    fprintf(f, "usage: bench_mpi_pg [--count N] [--cases K] [--seed S] [--time-cap-s T] "
        "[--keep] [--smoke] [--explain]\n"
        "                    [--persons FILE --cases-file FILE] [--pg-bin DIR]\n"
        "  --count N         persons to generate (default %lu; --smoke: %lu)\n"
        "  --cases K         PDQ cases, at most %lu (default %lu; --smoke: %lu)\n"
        "  --seed S          gen_persons seed (default %s)\n"
        "  --time-cap-s T    total time cap in seconds (default %lu)\n"
        "  --persons FILE    use this FEBRL file instead of generating (with --cases-file)\n"
        "  --cases-file FILE PDQ cases of gen_persons --queries\n"
        "  --pg-bin DIR      PostgreSQL server binaries (default %s)\n"
        "  --keep            keep the temporary directory (the server is stopped anyway)\n"
        "  --explain         print the plan of the first case\n",
        COUNT_DEFAULT, COUNT_SMOKE, CASES_MAX, CASES_DEFAULT, CASES_SMOKE, SEED_DEFAULT,
        TIME_CAP_S_DEFAULT, PG_BIN_DEFAULT);
}

static bool
parse_ul(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end = NULL;

    if (s == NULL || s[0] < '0' || s[0] > '9') {
        return false;
    }
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* One option with a value at argv[*i + 1]; false on an unknown option or a bad value. */
static bool
option_parse(struct opts *o, int argc, char **argv, int *i)
{
    const char *name = argv[*i];
    const char *value = *i + 1 < argc ? argv[*i + 1] : NULL;
    bool ok = value != NULL;

    if (strcmp(name, "--count") == 0) {
        ok = parse_ul(value, 1, COUNT_MAX, &o->count);
    } else if (strcmp(name, "--cases") == 0) {
        ok = parse_ul(value, 1, CASES_MAX, &o->cases_max);
    } else if (strcmp(name, "--time-cap-s") == 0) {
        ok = parse_ul(value, 1, TIME_CAP_S_MAX, &o->time_cap_s);
    } else if (strcmp(name, "--seed") == 0 && ok) {
        o->seed = value;
    } else if (strcmp(name, "--persons") == 0 && ok) {
        o->persons_path = value;
    } else if (strcmp(name, "--cases-file") == 0 && ok) {
        o->cases_path = value;
    } else if (strcmp(name, "--pg-bin") == 0 && ok) {
        o->pg_bin = value;
    } else {
        fprintf(stderr, "bench_mpi_pg: unknown option or missing value: %s\n", name);
        return false;
    }
    if (!ok) {
        fprintf(stderr, "bench_mpi_pg: invalid value for %s\n", name);
    }
    (*i)++;
    return ok;
}

/* 0 when o is ready, 1 after --help, 2 on a usage error. */
static int
args_parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){COUNT_DEFAULT, CASES_DEFAULT, TIME_CAP_S_DEFAULT, SEED_DEFAULT, NULL,
        NULL, PG_BIN_DEFAULT, false, false, false};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(argv[i], "--keep") == 0) {
            o->keep = true;
        } else if (strcmp(argv[i], "--explain") == 0) {
            o->explain = true;
        } else if (strcmp(argv[i], "--smoke") == 0) {
            o->smoke = true;
            o->count = COUNT_SMOKE;
            o->cases_max = CASES_SMOKE;
        } else if (!option_parse(o, argc, argv, &i)) {
            usage(stderr);
            return 2;
        }
    }
    if ((o->persons_path == NULL) != (o->cases_path == NULL)) {
        fprintf(stderr, "bench_mpi_pg: --persons and --cases-file go together\n");
        return 2;
    }
    return 0;
}

/* Writes the persons and cases with gen_persons unless the files were given. */
static int
data_prepare(const struct opts *o, char *persons, char *cases, size_t path_bytes)
{
    char log[BENCH_PATH_BYTES], count[32], queries[32];

    if (o->persons_path != NULL) {
        snprintf(persons, path_bytes, "%s", o->persons_path);
        snprintf(cases, path_bytes, "%s", o->cases_path);
        return 0;
    }
    snprintf(persons, path_bytes, "%s/persons.csv", srv.root);
    snprintf(cases, path_bytes, "%s/cases.csv", srv.root);
    snprintf(log, sizeof(log), "%s/gen_persons.log", srv.root);
    snprintf(count, sizeof(count), "%lu", o->count);
    snprintf(queries, sizeof(queries), "%lu", o->cases_max);
    const char *argv[] = {HIE_GEN_PERSONS_BIN, "--count", count, "--seed", o->seed, "--out",
        persons, "--queries", cases, "--query-count", queries, NULL};
    uint64_t t0 = hie_time_mono_ns();
    int rc = bench_run(argv, log, GEN_TIMEOUT_MS);
    if (rc != 0) {
        fprintf(stderr, "bench_mpi_pg: gen_persons failed (status %d):\n", rc);
        log_print(log);
        return 1;
    }
    printf("# generated %lu persons and %lu PDQ cases (seed %s) in %.2f s\n", o->count,
        o->cases_max, o->seed, secs_since(t0));
    return 0;
}

static PGconn *
db_connect(unsigned long time_cap_s)
{
    char conninfo[256], sql[64];

    snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%u user=%s dbname=postgres "
        "sslmode=disable connect_timeout=10 application_name=bench_mpi_pg", srv.port, PG_USER);
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "bench_mpi_pg: connecting failed: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    snprintf(sql, sizeof(sql), "SET statement_timeout = %lu", time_cap_s * 1000ul);
    if (sql_exec(conn, sql) != 0) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Schema, COPY, indexes, durability back on, sizes. [out] fig. Returns 0 or -1. */
static int
db_load(PGconn *conn, const char *persons, struct figures *fig)
{
    double schema_s = 0;
    unsigned long bad = 0;
    char v[64];

    if (sql_file_run(conn, "schema.sql", false, &schema_s) != 0) {
        return -1;
    }
    uint64_t t0 = hie_time_mono_ns();
    if (load_copy(conn, persons, &fig->records, &bad) != 0) {
        return -1;
    }
    fig->load_s = secs_since(t0);
    printf("# COPY %lu records (%lu bad rows skipped) in %.2f s (%.0f records/s), not timed "
        "against anything\n# indexes (bench/pg/indexes.sql):\n", fig->records, bad,
        fig->load_s, fig->load_s > 0 ? (double)fig->records / fig->load_s : 0.0);
    if (sql_file_run(conn, "indexes.sql", true, &fig->index_s) != 0 ||
        sql_exec(conn, "ALTER SYSTEM SET fsync = on") != 0 ||
        sql_exec(conn, "ALTER SYSTEM SET synchronous_commit = on") != 0 ||
        sql_exec(conn, "ALTER SYSTEM SET full_page_writes = on") != 0 ||
        sql_exec(conn, "SELECT pg_reload_conf()") != 0 || sql_exec(conn, "CHECKPOINT") != 0) {
        return -1;
    }
    sql_value(conn, "SELECT pg_database_size(current_database())", v, sizeof(v));
    fig->db_mb = strtod(v, NULL) / 1048576.0;
    sql_value(conn, "SELECT pg_table_size('person_record')", v, sizeof(v));
    fig->table_mb = strtod(v, NULL) / 1048576.0;
    sql_value(conn, "SELECT pg_indexes_size('person_record')", v, sizeof(v));
    fig->indexes_mb = strtod(v, NULL) / 1048576.0;
    sql_value(conn, "SHOW fsync", v, sizeof(v));
    printf("# indexes built in %.2f s; database %.0f MB (table %.0f MB, indexes %.0f MB); "
        "fsync now %s\n", fig->index_s, fig->db_mb, fig->table_mb, fig->indexes_mb, v);
    return 0;
}

/* Prepares, warms up, measures and reports variant v. Returns 0 or -1. */
static int
variant_run(PGconn *conn, const struct opts *o, const struct variant *v,
    const struct figures *fig, const struct pdq_case *cases, unsigned long count,
    uint64_t deadline_ns, uint64_t *lat_ns)
{
    unsigned long done = 0;
    struct recall rc;

    HIE_ASSERT(count >= 1 && count <= CASES_MAX);
    HIE_ASSERT(deadline_ns > 0);
    if (pdq_prepare(conn, v) != 0 || pdq_warm_up(conn, v->stmt, cases, count) != 0) {
        return -1;
    }
    if (o->explain) {
        pdq_explain(conn, v->stmt, &cases[0]);
    }
    if (pdq_measure(conn, v->stmt, cases, count, deadline_ns, lat_ns, &done, &rc) != 0) {
        return -1;
    }
    if (done == 0) {
        fprintf(stderr, "bench_mpi_pg: no case of %s ran within the time cap\n", v->name);
        return -1;
    }
    report(fig, v, lat_ns, done, &rc);
    return 0;
}

/* Everything between a started server and the reports. Returns 0 or 1. */
static int
bench_body(const struct opts *o, const char *persons, const char *cases_path,
    uint64_t deadline_ns)
{
    struct figures fig = {.persons = o->count};
    struct pdq_case *cases = NULL;
    uint64_t *lat_ns = NULL;
    unsigned long count = 0;
    int status = 1;

    PGconn *conn = db_connect(o->time_cap_s);
    if (conn == NULL || db_load(conn, persons, &fig) != 0 ||
        cases_load(cases_path, o->cases_max, &cases, &count) != 0) {
        goto out;
    }
    sql_value(conn, "SHOW server_version", fig.version, sizeof(fig.version));
    if (o->persons_path != NULL) { /* not generated here: count the persons of the file */
        char v[32];
        sql_value(conn, "SELECT count(DISTINCT person_id) FROM person_record", v, sizeof(v));
        fig.persons = strtoul(v, NULL, 10);
    }
    lat_ns = calloc(count, sizeof(*lat_ns));
    if (lat_ns == NULL || db_prewarm(conn) != 0) {
        goto out;
    }
    for (size_t i = 0; i < HIE_ARRAY_LEN(variants); i++) {
        if (variant_run(conn, o, &variants[i], &fig, cases, count, deadline_ns, lat_ns) != 0) {
            goto out;
        }
    }
    status = 0;
out:
    PQfinish(conn);
    free(lat_ns);
    free(cases);
    return status;
}

int
main(int argc, char **argv)
{
    struct opts o;
    char persons[BENCH_PATH_BYTES], cases[BENCH_PATH_BYTES];
    int rc = args_parse(argc, argv, &o);

    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t deadline_ns = hie_time_mono_ns() + (uint64_t)o.time_cap_s * 1000000000ull;
    if (bench_setup(srv.root, sizeof(srv.root), o.keep) != 0) {
        return fail("creating the temporary directory failed");
    }
    cleanup_install();
    snprintf(srv.data, sizeof(srv.data), "%s/pgdata", srv.root);
    snprintf(srv.server_log, sizeof(srv.server_log), "%s/postgres.log", srv.root);
    snprintf(srv.cmd_log, sizeof(srv.cmd_log), "%s/pg_ctl.log", srv.root);
    printf("# bench_mpi_pg: %lu persons, %lu cases, time cap %lu s, directory %s\n", o.count,
        o.cases_max, o.time_cap_s, srv.root);
    if (pg_ensure_installed(o.pg_bin, srv.root) != 0 ||
        data_prepare(&o, persons, cases, sizeof(persons)) != 0 ||
        server_init(o.pg_bin) != 0 || server_start(o.pg_bin, o.count) != 0) {
        return 1;
    }
    printf("# PostgreSQL on 127.0.0.1:%u (socket in %s)\n", srv.port, srv.root);
    rc = bench_body(&o, persons, cases, deadline_ns);
    server_stop();
    return rc;
}
