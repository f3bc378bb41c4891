/*
 * test_log.c - unit tests for cluster/src/log.c with a real ZeroMQ context and a real LMDB
 * directory (under /tmp, removed by the suite's .fini).
 *
 * The state machine is a small test fsm: it records every applied index and command, answers
 * each command with its bytes reversed, and keeps its applied index in memory (so a "restart"
 * is a new fsm with a chosen applied index). It runs on the log thread, where Criterion
 * assertions must not be used: it records problems in a flag the test checks after the join.
 */
#include "hie/cluster.h"
#include "hie/limits.h"

#include "../test_util.h"

#include <criterion/criterion.h>

#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <zmq.h>

/* zmq_close() tears a socket down asynchronously, so binding the same inproc endpoint right
 * after a log was destroyed can fail with EADDRINUSE: every open gets a fresh endpoint. */
static char endpoint[64] = "inproc://test-log-0";
static unsigned endpoint_seq;
#define MAP_BYTES (64ull * 1024ull * 1024ull)
#define CMDS_MAX 1200u
#define CMD_BYTES_MAX 64u

static char tmp_dir[128];
static char log_dir[192];
static void *zctx;
/* Handles a failing test may leave open; .fini closes them so zmq_ctx_term cannot block. */
static void *open_dealers[4];
static hie_cluster_log_t *open_log;
static struct test_fsm *fsms[4]; /* freed by .fini */

static void
setup(void)
{
    tmp_dir[0] = '\0';
    zctx = zmq_ctx_new();
    cr_assert_not_null(zctx);
}

static void
teardown(void)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(open_dealers); i++) {
        if (open_dealers[i] != NULL) {
            zmq_close(open_dealers[i]);
            open_dealers[i] = NULL;
        }
    }
    hie_cluster_log_destroy(&open_log);
    for (size_t i = 0; i < HIE_ARRAY_LEN(fsms); i++) {
        free(fsms[i]);
        fsms[i] = NULL;
    }
    if (zctx != NULL) {
        zmq_ctx_term(zctx);
        zctx = NULL;
    }
    test_tmpdir_remove(tmp_dir);
}

/* The log directory, created on first use (misuse tests that abort never create one). */
static const char *
log_dir_get(void)
{
    if (tmp_dir[0] == '\0') {
        test_tmpdir_make(tmp_dir, sizeof(tmp_dir), "cluster");
        snprintf(log_dir, sizeof(log_dir), "%s/log", tmp_dir);
    }
    return log_dir;
}

TestSuite(cluster_log, .init = setup, .fini = teardown, .timeout = 60);

/* ---- the test fsm ------------------------------------------------------------------------ */

struct test_fsm {
    uint64_t applied;                       /* "persisted" applied index */
    uint64_t first_seen;                    /* first index applied by this fsm (0: none) */
    uint64_t seen_count;                    /* entries applied by this fsm */
    size_t batches;
    int apply_rc;                           /* returned by apply (to test failures) */
    unsigned first_apply_delay_ms;          /* the first apply call sleeps this long */
    _Atomic bool in_first_apply;            /* set while that first call sleeps */
    bool leave_open;                        /* apply answers HIE_CLUSTER_APPLIED_OPEN */
    _Atomic uint64_t uncommitted;           /* entries applied since the last flush */
    _Atomic unsigned flushes;               /* flush calls that had something to commit */
    bool prepared;                          /* prepare told of a batch not yet applied */
    size_t abandons;                        /* batches abandoned after prepare */
    const char *prepare_error;              /* the prepare/abandon contract broke */
    bool error;                             /* an invariant broke on the log thread */
    char error_what[160];
    size_t cmd_len[CMDS_MAX + 1];           /* by index */
    uint8_t cmd[CMDS_MAX + 1][CMD_BYTES_MAX];
};

static void
fsm_error(struct test_fsm *f, const char *what)
{
    if (!f->error) {
        f->error = true;
        snprintf(f->error_what, sizeof(f->error_what), "%s", what);
    }
}

static int
fsm_apply(void *ctx, const hie_cluster_entry_t *entries, size_t n, hie_cluster_result_t *results)
{
    struct test_fsm *f = ctx;
    if (f->apply_rc != 0) {
        return f->apply_rc;
    }
    if (n == 0 || n > HIE_LOG_BATCH_COMMANDS_MAX) {
        fsm_error(f, "batch size out of range");
    }
    if (f->batches == 0 && f->first_apply_delay_ms > 0) {
        atomic_store(&f->in_first_apply, true);
        usleep(f->first_apply_delay_ms * 1000u);
        atomic_store(&f->in_first_apply, false);
    }
    f->batches++;
    f->prepared = false;
    for (size_t i = 0; i < n; i++) {
        uint64_t index = entries[i].index;
        if (index != f->applied + 1) {
            fsm_error(f, "index out of order or with a gap");
        }
        f->applied = index;
        if (f->first_seen == 0) {
            f->first_seen = index;
        }
        f->seen_count++;
        hie_span_t c = entries[i].cmd;
        if (index <= CMDS_MAX && c.len <= CMD_BYTES_MAX) {
            memcpy(f->cmd[index], c.ptr, c.len);
            f->cmd_len[index] = c.len;
        } else {
            fsm_error(f, "index or command larger than the test expects");
        }
        if (results[i].buf != NULL || results[i].len != 0) {
            fsm_error(f, "result slot not cleared by the log");
        }
        uint8_t *r = hie_mem_alloc(c.len);
        if (r == NULL) {
            return HIE_ENOMEM;
        }
        for (size_t k = 0; k < c.len; k++) {
            r[k] = c.ptr[c.len - 1 - k];
        }
        results[i].buf = r;
        results[i].len = c.len;
    }
    if (f->leave_open) {
        atomic_fetch_add(&f->uncommitted, n);
        return HIE_CLUSTER_APPLIED_OPEN;
    }
    if (atomic_load(&f->uncommitted) != 0) {
        fsm_error(f, "a committing apply after open ones must have flushed them");
    }
    return 0;
}

/* Every batch prepare is told of is then applied or abandoned, never left (the node's
 * match pool reads the entries from prepare until apply or abandon). */
static void
fsm_prepare(void *ctx, const hie_cluster_entry_t *entries, size_t n)
{
    struct test_fsm *f = ctx;
    if (f->prepared || entries == NULL || n == 0) {
        f->prepare_error = "prepare before the last prepared batch was applied or abandoned";
    }
    f->prepared = true;
}

static void
fsm_abandon(void *ctx)
{
    struct test_fsm *f = ctx;
    if (!f->prepared) {
        f->prepare_error = "abandon without a prepared batch";
    }
    f->prepared = false;
    f->abandons++;
}

static int
fsm_flush(void *ctx)
{
    struct test_fsm *f = ctx;
    if (atomic_exchange(&f->uncommitted, 0) == 0) {
        fsm_error(f, "flush with nothing left open");
    }
    atomic_fetch_add(&f->flushes, 1);
    return 0;
}

static int
fsm_applied_index(void *ctx, uint64_t *out)
{
    struct test_fsm *f = ctx;
    *out = f->applied;
    return 0;
}

/* A failure of the log or of apply: exit with a code the test can expect. */
static void
fsm_fatal(void *ctx, int rc, const char *what)
{
    (void)ctx;
    test_tmpdir_remove(tmp_dir); /* .fini does not run after _exit */
    _exit(rc == HIE_ESTORAGE && strstr(what, "apply") != NULL ? 42 : 43);
}

static struct test_fsm *
fsm_new(uint64_t applied)
{
    struct test_fsm *f = calloc(1, sizeof(*f));
    cr_assert_not_null(f);
    f->applied = applied;
    for (size_t i = 0; i < HIE_ARRAY_LEN(fsms); i++) {
        if (fsms[i] == NULL) {
            fsms[i] = f;
            return f;
        }
    }
    cr_assert_fail("too many fsms in one test");
    return NULL;
}

static hie_cluster_fsm_t
fsm_table(struct test_fsm *f)
{
    hie_cluster_fsm_t t = {f, fsm_apply, fsm_applied_index, fsm_fatal, NULL, fsm_flush, NULL,
        NULL};
    return t;
}

static hie_cluster_log_config_t
log_config(void)
{
    snprintf(endpoint, sizeof(endpoint), "inproc://test-log-%u", ++endpoint_seq);
    hie_cluster_log_config_t cfg = {log_dir_get(), zctx, endpoint, MAP_BYTES, NULL, NULL, 0};
    return cfg;
}

/* Opens the log (replaying into f) and tracks it for .fini; close it with log_close(). */
static hie_cluster_log_t *
log_open(struct test_fsm *f)
{
    hie_cluster_log_config_t cfg = log_config();
    hie_cluster_fsm_t t = fsm_table(f);
    cr_assert_null(open_log, "one log at a time");
    int rc = hie_cluster_log_open(&open_log, &cfg, &t);
    cr_assert_eq(rc, 0, "hie_cluster_log_open: %s", hie_strerror_name(rc));
    cr_assert_not_null(open_log);
    return open_log;
}

static void
log_start(hie_cluster_log_t *log)
{
    int rc = hie_cluster_log_start(log);
    cr_assert_eq(rc, 0, "hie_cluster_log_start: %s", hie_strerror_name(rc));
}

static void
log_close(hie_cluster_log_t **log)
{
    cr_assert_eq(*log, open_log);
    hie_cluster_log_destroy(log);
    cr_assert_null(*log, "destroy sets the handle to NULL");
    open_log = NULL;
}

static void *
dealer_new(void)
{
    void *d = zmq_socket(zctx, ZMQ_DEALER);
    cr_assert_not_null(d);
    int linger = 0;
    cr_assert_eq(zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof(linger)), 0);
    cr_assert_eq(zmq_connect(d, endpoint), 0);
    for (size_t i = 0; i < HIE_ARRAY_LEN(open_dealers); i++) {
        if (open_dealers[i] == NULL) {
            open_dealers[i] = d;
            return d;
        }
    }
    cr_assert_fail("too many dealers");
    return NULL;
}

static void
dealer_close(void *d)
{
    for (size_t i = 0; i < HIE_ARRAY_LEN(open_dealers); i++) {
        if (open_dealers[i] == d) {
            open_dealers[i] = NULL;
        }
    }
    zmq_close(d);
}

/* Waits up to timeout_ms for one reply on dealer. Returns 0 or HIE_ETIMEDOUT. */
static int
recv_one(void *dealer, int timeout_ms, uint64_t *token, int *rc, uint64_t *index,
    uint8_t **result, size_t *result_len)
{
    zmq_pollitem_t item = {dealer, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) <= 0) {
        return HIE_ETIMEDOUT;
    }
    return hie_cluster_submit_recv(dealer, token, rc, index, result, result_len);
}

/* The command a submitter sends for (thread, i): distinct, varying lengths. */
static size_t
cmd_bytes(uint8_t *out, unsigned thread, unsigned i)
{
    int n = snprintf((char *)out, CMD_BYTES_MAX, "t%u-cmd-%u-%.*s", thread, i, (int)(i % 23u),
        "abcdefghijklmnopqrstuvwxyz");
    return (size_t)n;
}

/* ---- the submitters ----------------------------------------------------------------------- */

#define SUBMITTERS 2u
#define PER_SUBMITTER 250u
#define TOTAL (SUBMITTERS * PER_SUBMITTER)

struct submitter {
    unsigned no;
    unsigned replies[PER_SUBMITTER];        /* replies seen per token */
    uint64_t index[PER_SUBMITTER];
    bool error;
    char error_what[160];
};

static void
sub_error(struct submitter *s, const char *what, unsigned i)
{
    if (!s->error) {
        s->error = true;
        snprintf(s->error_what, sizeof(s->error_what), "submitter %u token %u: %s", s->no, i,
            what);
    }
}

static void
sub_check_reply(struct submitter *s, uint64_t token, int rc, uint64_t index, uint8_t *res,
    size_t res_len)
{
    unsigned i = (unsigned)(token & 0xffffffffu);
    if ((token >> 32) != s->no || i >= PER_SUBMITTER) {
        sub_error(s, "reply with a token this submitter never sent", i);
        return;
    }
    s->replies[i]++;
    s->index[i] = index;
    uint8_t expect[CMD_BYTES_MAX];
    size_t n = cmd_bytes(expect, s->no, i);
    if (rc != 0) {
        sub_error(s, "rc != 0", i);
    } else if (index == 0 || index > TOTAL) {
        sub_error(s, "index out of range", i);
    } else if (res_len != n || res == NULL) {
        sub_error(s, "result length differs from the command's", i);
    } else {
        for (size_t k = 0; k < n; k++) {
            if (res[k] != expect[n - 1 - k]) {
                sub_error(s, "result is not the reversed command", i);
                break;
            }
        }
    }
}

static void *
submitter_main(void *arg)
{
    struct submitter *s = arg;
    void *d = zmq_socket(zctx, ZMQ_DEALER);
    if (d == NULL) {
        sub_error(s, "zmq_socket failed", 0);
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_connect(d, endpoint) != 0) {
        sub_error(s, "zmq_connect failed", 0);
        zmq_close(d);
        return NULL;
    }
    unsigned sent = 0, got = 0;
    for (int rounds = 0; got < PER_SUBMITTER && rounds < 100000; rounds++) {
        /* send in small bursts, reading replies in between: the two threads interleave */
        for (unsigned burst = 0; burst < 7 && sent < PER_SUBMITTER; burst++) {
            uint8_t c[CMD_BYTES_MAX];
            size_t n = cmd_bytes(c, s->no, sent);
            int rc = hie_cluster_submit_send(d, ((uint64_t)s->no << 32) | sent, hie_span(c, n));
            if (rc == HIE_EBUSY) {
                break;
            }
            if (rc != 0) {
                sub_error(s, "submit_send failed", sent);
                goto out;
            }
            sent++;
        }
        uint64_t token = 0, index = 0;
        uint8_t *res = NULL;
        size_t res_len = 0;
        int rrc = 0;
        int rc = recv_one(d, sent == PER_SUBMITTER ? 10000 : 1, &token, &rrc, &index, &res,
            &res_len);
        if (rc == 0) {
            sub_check_reply(s, token, rrc, index, res, res_len);
            hie_mem_free(res, res_len);
            got++;
        } else if (sent == PER_SUBMITTER) {
            sub_error(s, "timed out waiting for replies", got);
            goto out;
        }
    }
    /* nothing more may arrive: exactly one reply per submission */
    uint64_t token, index;
    uint8_t *res = NULL;
    size_t res_len = 0;
    int rrc;
    if (recv_one(d, 50, &token, &rrc, &index, &res, &res_len) == 0) {
        hie_mem_free(res, res_len);
        sub_error(s, "an extra reply arrived", (unsigned)token);
    }
out:
    zmq_close(d);
    return NULL;
}

/* Runs the two submitters against a started log; checks replies, tokens and indexes. */
static void
submit_all(struct test_fsm *f)
{
    static struct submitter subs[SUBMITTERS];
    pthread_t th[SUBMITTERS];
    memset(subs, 0, sizeof(subs));
    for (unsigned t = 0; t < SUBMITTERS; t++) {
        subs[t].no = t + 1;
        cr_assert_eq(pthread_create(&th[t], NULL, submitter_main, &subs[t]), 0);
    }
    for (unsigned t = 0; t < SUBMITTERS; t++) {
        pthread_join(th[t], NULL);
    }
    static bool index_used[TOTAL + 1];
    memset(index_used, 0, sizeof(index_used));
    for (unsigned t = 0; t < SUBMITTERS; t++) {
        cr_assert(!subs[t].error, "%s", subs[t].error_what);
        for (unsigned i = 0; i < PER_SUBMITTER; i++) {
            cr_assert_eq(subs[t].replies[i], 1, "submitter %u token %u: %u replies", t + 1, i,
                subs[t].replies[i]);
            uint64_t index = subs[t].index[i];
            cr_assert(!index_used[index], "index %lu answered twice", (unsigned long)index);
            index_used[index] = true;
            /* the fsm saw this submitter's command at the index the reply names */
            uint8_t expect[CMD_BYTES_MAX];
            size_t n = cmd_bytes(expect, t + 1, i);
            cr_assert_eq(f->cmd_len[index], n);
            cr_assert_eq(memcmp(f->cmd[index], expect, n), 0, "index %lu holds another command",
                (unsigned long)index);
        }
    }
}

Test(cluster_log, concurrent_submitters_get_one_reply_each_with_gapless_indexes)
{
    struct test_fsm *f = fsm_new(0);
    hie_cluster_log_t *log = log_open(f);
    cr_assert_eq(hie_cluster_log_last_index(log), 0);
    log_start(log);
    cr_assert_eq(hie_cluster_log_start(log), HIE_ESTATE, "a second start is refused");

    submit_all(f);
    cr_assert_eq(hie_cluster_log_last_index(log), TOTAL);
    log_close(&log);
    cr_assert_null(log);

    cr_assert(!f->error, "fsm: %s", f->error_what);
    cr_assert_eq(f->first_seen, 1);
    cr_assert_eq(f->seen_count, TOTAL, "every index 1..N applied once, in order");
    cr_assert_eq(f->applied, TOTAL);
    cr_assert_leq(f->batches, TOTAL);
    cr_log_info("%u commands in %zu batches", TOTAL, f->batches);
    cr_assert_eq(hie_mem_live_bytes(), 0, "the log freed every result it was given");
}

/* Fills a fresh log with TOTAL commands through the submitters; returns the fsm (which holds
 * every command by index). */
static struct test_fsm *
fill_log(void)
{
    struct test_fsm *f = fsm_new(0);
    hie_cluster_log_t *log = log_open(f);
    log_start(log);
    submit_all(f);
    log_close(&log);
    cr_assert(!f->error, "fsm: %s", f->error_what);
    cr_assert_eq(f->applied, TOTAL);
    return f;
}

struct read_ctx {
    const struct test_fsm *expect;
    uint64_t next;
    uint64_t count;
    uint64_t stop_after;
    bool mismatch;
};

static int
read_fn(void *ctx, uint64_t index, hie_span_t cmd)
{
    struct read_ctx *r = ctx;
    if (index != r->next || index > CMDS_MAX || cmd.len != r->expect->cmd_len[index] ||
        memcmp(cmd.ptr, r->expect->cmd[index], cmd.len) != 0) {
        r->mismatch = true;
    }
    r->next = index + 1;
    r->count++;
    return r->stop_after != 0 && r->count >= r->stop_after;
}

Test(cluster_log, reopen_replays_entries_after_the_applied_index_in_order)
{
    struct test_fsm *orig = fill_log();

    struct test_fsm *f = fsm_new(200);
    hie_cluster_log_t *log = log_open(f); /* replay happens inside open, on this thread */
    cr_assert(!f->error, "fsm: %s", f->error_what);
    cr_assert_eq(f->first_seen, 201);
    cr_assert_eq(f->seen_count, TOTAL - 200);
    cr_assert_eq(f->applied, TOTAL);
    for (uint64_t i = 201; i <= TOTAL; i++) {
        cr_assert_eq(f->cmd_len[i], orig->cmd_len[i], "index %lu", (unsigned long)i);
        cr_assert_eq(memcmp(f->cmd[i], orig->cmd[i], f->cmd_len[i]), 0, "index %lu",
            (unsigned long)i);
    }
    cr_assert_eq(hie_cluster_log_last_index(log), TOTAL);
    log_close(&log);
    cr_assert_eq(hie_mem_live_bytes(), 0, "replay frees the results");

    /* a state that is current replays nothing */
    struct test_fsm *current = fsm_new(TOTAL);
    log = log_open(current);
    cr_assert_eq(current->seen_count, 0);
    log_close(&log);

    /* and the closed log reads back */
    struct read_ctx r = {orig, 201, 0, 0, false};
    cr_assert_eq(hie_cluster_log_read(log_dir, 201, read_fn, &r), 0);
    cr_assert(!r.mismatch);
    cr_assert_eq(r.count, TOTAL - 200);
    struct read_ctx all = {orig, 1, 0, 0, false};
    cr_assert_eq(hie_cluster_log_read(log_dir, 1, read_fn, &all), 0);
    cr_assert(!all.mismatch);
    cr_assert_eq(all.count, TOTAL);
    struct read_ctx some = {orig, 10, 0, 5, false};
    cr_assert_eq(hie_cluster_log_read(log_dir, 10, read_fn, &some), 0);
    cr_assert_eq(some.count, 5, "fn returning non-zero stops the read");
    cr_assert(!some.mismatch);
    struct read_ctx none = {orig, TOTAL + 1, 0, 0, false};
    cr_assert_eq(hie_cluster_log_read(log_dir, TOTAL + 1, read_fn, &none), 0);
    cr_assert_eq(none.count, 0);

}

/* Submits cmd with token and waits for its answer (rc 0, the same token); returns its index. */
/* The next reply on d is token's, with rc; returns its index. */
static uint64_t
reply_take(void *d, uint64_t token, int rc_want)
{
    uint64_t tok = 0, index = 0;
    int rc = -1;
    uint8_t *res = NULL;
    size_t res_len = 0;
    cr_assert_eq(recv_one(d, 10000, &tok, &rc, &index, &res, &res_len), 0);
    cr_assert_eq(tok, token);
    cr_assert_eq(rc, rc_want, "token %lu: %s", (unsigned long)tok, hie_strerror_name(rc));
    hie_mem_free(res, res_len);
    return index;
}

static uint64_t
submit_one(void *d, uint64_t token, const char *cmd)
{
    cr_assert_eq(hie_cluster_submit_send(d, token, hie_span(cmd, strlen(cmd))), 0);
    return reply_take(d, token, 0);
}

/* The next reply on d is token's, with rc and index. */
static void
reply_expect(void *d, uint64_t token, int rc_want, uint64_t index_want)
{
    cr_assert_eq(reply_take(d, token, rc_want), index_want, "token %lu", (unsigned long)token);
}

/* A command the log reads after its deadline is not appended, and its submitter hears
 * HIE_ETIMEDOUT; one within its deadline is appended as any other. */
Test(cluster_log, a_command_past_its_deadline_is_answered_and_not_appended)
{
    struct test_fsm *f = fsm_new(0);
    hie_cluster_log_t *log = log_open(f);
    log_start(log);
    void *d = dealer_new();
    uint64_t past = hie_time_mono_ns() - 1, later = hie_time_mono_ns() + 60000000000ull;
    cr_assert_eq(hie_cluster_submit_send_by(d, 1, hie_span("late", 4), past), 0);
    cr_assert_eq(hie_cluster_submit_send_by(d, 2, hie_span("on time", 7), later), 0);
    reply_expect(d, 1, HIE_ETIMEDOUT, 0); /* the late one takes no index */
    reply_expect(d, 2, 0, 1);
    dealer_close(d);
    cr_assert_eq(hie_cluster_log_last_index(log), 1u);
    log_close(&log);
    cr_assert_eq(f->seen_count, 1u);
    cr_assert_eq(f->cmd_len[1], 7u, "the one on time");
}

static unsigned interrupt_after, interrupt_calls;

static bool
interrupt_fn(void *arg)
{
    (void)arg;
    return ++interrupt_calls > interrupt_after;
}

#define LONG_LOG (HIE_LOG_BATCH_COMMANDS_MAX + 76u)

/* A stop signal while a long log replays (hie-node asks between batches): the replay stops
 * after the batch in hand, commits what it applied, and the next open replays the rest. */
Test(cluster_log, a_replay_interrupted_between_batches_commits_what_it_applied)
{
    struct test_fsm *orig = fsm_new(0);
    hie_cluster_log_t *log = log_open(orig);
    log_start(log);
    void *d = dealer_new();
    for (unsigned i = 1; i <= LONG_LOG; i++) {
        char cmd[16];
        snprintf(cmd, sizeof(cmd), "c%u", i);
        cr_assert_eq(hie_cluster_submit_send(d, i, hie_span(cmd, strlen(cmd))), 0);
    }
    for (unsigned i = 1; i <= LONG_LOG; i++) {
        reply_expect(d, i, 0, i);
    }
    dealer_close(d);
    log_close(&log);
    cr_assert_eq(orig->applied, LONG_LOG);

    struct test_fsm *f = fsm_new(0);
    f->leave_open = true;
    interrupt_after = 1;
    interrupt_calls = 0;
    hie_cluster_log_config_t cfg = log_config();
    cfg.interrupted = interrupt_fn;
    hie_cluster_fsm_t t = fsm_table(f);
    int rc = hie_cluster_log_open(&log, &cfg, &t);
    cr_assert_eq(rc, HIE_EUNAVAIL, "%s", hie_strerror_name(rc));
    cr_assert_null(log);
    cr_assert(!f->error, "fsm: %s", f->error_what);
    cr_assert_eq(interrupt_calls, 2u, "asked before each batch");
    cr_assert_eq(f->seen_count, HIE_LOG_BATCH_COMMANDS_MAX, "one batch, then the stop");
    cr_assert_eq(atomic_load(&f->flushes), 1u, "what it applied is committed");
    cr_assert_eq(hie_mem_live_bytes(), 0);

    log = log_open(f); /* the next start: from the committed index on */
    cr_assert(!f->error, "fsm: %s", f->error_what);
    cr_assert_eq(f->applied, LONG_LOG);
    cr_assert_eq(f->seen_count, LONG_LOG, "each entry once");
    for (uint64_t i = 1; i <= LONG_LOG; i++) {
        cr_assert_eq(f->cmd_len[i], orig->cmd_len[i], "index %lu", (unsigned long)i);
    }
    log_close(&log);
}

/* A state machine that leaves its commits open: the replies still come, one per command, and
 * the log flushes once it is idle, at the end of replay and at stop. */
Test(cluster_log, open_commits_are_flushed_when_idle_after_replay_and_at_stop)
{
    (void)fill_log();
    struct test_fsm *f = fsm_new(200);
    f->leave_open = true;
    hie_cluster_log_t *log = log_open(f);
    cr_assert(!f->error, "fsm: %s", f->error_what);
    cr_assert_eq(f->seen_count, TOTAL - 200);
    cr_assert_eq(atomic_load(&f->flushes), 1u, "replay ends with one flush");
    cr_assert_eq(atomic_load(&f->uncommitted), 0u);
    log_start(log);
    void *d = dealer_new();
    for (uint64_t t = 1; t <= 3; t++) {
        cr_assert_eq(submit_one(d, t, "open"), TOTAL + t);
        /* idle: flushed within HIE_LOG_IDLE_FLUSH_MS (a second allows for a slow machine) */
        for (int ms = 0; ms < 1000 && atomic_load(&f->uncommitted) != 0; ms++) {
            usleep(1000);
        }
        cr_assert_eq(atomic_load(&f->uncommitted), 0u, "command %lu flushed when idle",
            (unsigned long)t);
    }
    unsigned before = atomic_load(&f->flushes);
    cr_assert_geq(before, 2u);
    /* one more, and stop at once: the stop flushes it */
    cr_assert_eq(submit_one(d, 9, "last"), TOTAL + 4);
    dealer_close(d);
    log_close(&log);
    cr_assert(!f->error, "fsm: %s", f->error_what);
    cr_assert_eq(atomic_load(&f->uncommitted), 0u, "nothing left open after stop");
    cr_assert_eq(f->applied, TOTAL + 4);
}

Test(cluster_log, reopened_log_continues_numbering_after_the_last_entry)
{
    (void)fill_log();
    struct test_fsm *f = fsm_new(TOTAL);
    hie_cluster_log_t *log = log_open(f);
    log_start(log);
    void *d = dealer_new();
    cr_assert_eq(hie_cluster_submit_send(d, 7, hie_span("next", 4)), 0);
    uint64_t token = 0, index = 0;
    int rc = -1;
    uint8_t *res = NULL;
    size_t res_len = 0;
    cr_assert_eq(recv_one(d, 10000, &token, &rc, &index, &res, &res_len), 0);
    cr_assert_eq(token, 7);
    cr_assert_eq(rc, 0);
    cr_assert_eq(index, TOTAL + 1);
    cr_assert_eq(res_len, 4);
    cr_assert_eq(memcmp(res, "txen", 4), 0);
    hie_mem_free(res, res_len);
    dealer_close(d);
    log_close(&log);
}

static int
count_fn(void *ctx, uint64_t index, hie_span_t cmd)
{
    (void)index;
    (void)cmd;
    (*(uint64_t *)ctx)++;
    return 0;
}

/* With retain, the log deletes its oldest entries as new ones come, in the append's own
 * transaction, and only those more than retain behind the state commit before the last (a
 * state opened with MDB_NOMETASYNC may lose its last commit in a crash, and replays it from
 * the log). Numbering goes on; a state behind the first entry left is refused at open. */
Test(cluster_log, a_retaining_log_trims_its_oldest_entries)
{
    struct test_fsm *f = fsm_new(0);
    hie_cluster_log_config_t cfg = log_config();
    cfg.retain = 100;
    hie_cluster_fsm_t t = fsm_table(f);
    cr_assert_eq(hie_cluster_log_open(&open_log, &cfg, &t), 0);
    hie_cluster_log_t *log = open_log;
    cr_assert_eq(hie_cluster_log_first_index(log), 1);
    log_start(log);
    void *d = dealer_new();
    for (unsigned i = 0; i < 500; i++) { /* one at a time: each its own batch and commit */
        uint8_t c[CMD_BYTES_MAX];
        size_t len = cmd_bytes(c, 9, i);
        cr_assert_eq(hie_cluster_submit_send(d, i + 1, hie_span(c, len)), 0);
        cr_assert_eq(reply_take(d, i + 1, 0), i + 1);
    }
    /* appending 500, the state's durable commit was 498's: entries up to 398 went */
    cr_assert_eq(hie_cluster_log_first_index(log), 399);
    cr_assert_eq(hie_cluster_log_last_index(log), 500);
    dealer_close(d);
    log_close(&log);
    cr_assert(!f->error, "fsm: %s", f->error_what);
    uint64_t held = 0;
    cr_assert_eq(hie_cluster_log_read(log_dir, 1, count_fn, &held), 0);
    cr_assert_eq(held, 102);
    struct test_fsm *current = fsm_new(500);
    log = log_open(current);
    cr_assert_eq(hie_cluster_log_first_index(log), 399);
    log_close(&log);
    struct test_fsm *behind = fsm_new(300); /* needs 301.., which are gone */
    cfg = log_config();
    t = fsm_table(behind);
    cr_assert_eq(hie_cluster_log_open(&log, &cfg, &t), HIE_ECORRUPT);
    cr_assert_null(log);
    cr_assert_eq(behind->seen_count, 0);
    struct test_fsm *edge = fsm_new(398); /* needs 399.. exactly */
    log = log_open(edge);
    cr_assert_eq(edge->seen_count, 102);
    log_close(&log);
}

Test(cluster_log, applied_index_beyond_the_log_is_ecorrupt)
{
    (void)fill_log();
    struct test_fsm *f = fsm_new(TOTAL + 1);
    hie_cluster_log_config_t cfg = log_config();
    hie_cluster_fsm_t t = fsm_table(f);
    hie_cluster_log_t *log = (hie_cluster_log_t *)(uintptr_t)1;
    cr_assert_eq(hie_cluster_log_open(&log, &cfg, &t), HIE_ECORRUPT);
    cr_assert_null(log);
    cr_assert_eq(f->seen_count, 0, "nothing applied");
    cr_assert_eq(hie_mem_live_bytes(), 0, "a failed open frees everything");
}

Test(cluster_log, applied_index_on_an_empty_log_is_ecorrupt)
{
    struct test_fsm *f = fsm_new(1);
    hie_cluster_log_config_t cfg = log_config();
    hie_cluster_fsm_t t = fsm_table(f);
    hie_cluster_log_t *log = NULL;
    cr_assert_eq(hie_cluster_log_open(&log, &cfg, &t), HIE_ECORRUPT);
    cr_assert_null(log);
}

Test(cluster_log, a_gap_in_the_log_is_ecorrupt_on_replay)
{
    (void)fill_log();
    /* remove entry 300 behind the log's back */
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 4), 0);
    cr_assert_eq(mdb_env_set_mapsize(env, MAP_BYTES), 0);
    cr_assert_eq(mdb_env_open(env, log_dir, MDB_NOTLS, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "log", 0, &dbi), 0);
    uint8_t key[8];
    hie_store_be64(key, 300);
    MDB_val k = {8, key};
    cr_assert_eq(mdb_del(txn, dbi, &k, NULL), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    struct test_fsm *f = fsm_new(200);
    hie_cluster_log_config_t cfg = log_config();
    hie_cluster_fsm_t t = fsm_table(f);
    hie_cluster_log_t *log = NULL;
    cr_assert_eq(hie_cluster_log_open(&log, &cfg, &t), HIE_ECORRUPT);
    cr_assert_null(log);
    cr_assert_eq(f->seen_count, 0, "a batch with a gap is not applied at all");
}

/* An apply that fails during replay is fatal, as on the log thread (fsm.fatal with the
 * apply's error): returned, a missing data key (HIE_EUNAVAIL) read as a stop request and the
 * node exited 0, and other errors as "cannot open command log". */
Test(cluster_log, replay_apply_failure_is_fatal, .exit_code = 42)
{
    (void)fill_log();
    struct test_fsm *f = fsm_new(100);
    f->apply_rc = HIE_ESTORAGE;
    hie_cluster_log_config_t cfg = log_config();
    hie_cluster_fsm_t t = fsm_table(f);
    hie_cluster_log_t *log = NULL;
    int rc = hie_cluster_log_open(&log, &cfg, &t);
    cr_assert_fail("fatal() was not called (open returned %d): the process should have "
        "exited", rc);
}

Test(cluster_log, apply_failure_on_the_log_thread_is_fatal, .exit_code = 42)
{
    struct test_fsm *f = fsm_new(0);
    f->apply_rc = HIE_ESTORAGE; /* the empty log replays nothing, so open still succeeds */
    hie_cluster_log_t *log = log_open(f);
    log_start(log);
    void *d = dealer_new();
    cr_assert_eq(hie_cluster_submit_send(d, 1, hie_span("x", 1)), 0);
    uint64_t token, index;
    int rc;
    uint8_t *res;
    size_t res_len;
    (void)recv_one(d, 10000, &token, &rc, &index, &res, &res_len);
    cr_assert_fail("fatal() was not called: the process should have exited");
}

Test(cluster_log, oversize_and_empty_commands_are_refused_by_submit_send)
{
    struct test_fsm *f = fsm_new(0);
    hie_cluster_log_t *log = log_open(f);
    log_start(log);
    void *d = dealer_new();
    size_t big_len = HIE_LOG_COMMAND_BYTES_MAX + 1u;
    uint8_t *big = calloc(1, big_len);
    cr_assert_not_null(big);
    cr_assert_eq(hie_cluster_submit_send(d, 1, hie_span(big, big_len)), HIE_ELIMIT);
    cr_assert_eq(hie_cluster_submit_send(d, 2, hie_span(big, 0)), HIE_ELIMIT);
    free(big);
    /* nothing was sent: the next command is entry 1 */
    cr_assert_eq(hie_cluster_submit_send(d, 3, hie_span("abc", 3)), 0);
    uint64_t token = 0, index = 0;
    int rc = -1;
    uint8_t *res = NULL;
    size_t res_len = 0;
    cr_assert_eq(recv_one(d, 10000, &token, &rc, &index, &res, &res_len), 0);
    cr_assert_eq(token, 3);
    cr_assert_eq(rc, 0);
    cr_assert_eq(index, 1);
    cr_assert_eq(res_len, 3);
    cr_assert_eq(memcmp(res, "cba", 3), 0);
    hie_mem_free(res, res_len);
    cr_assert_eq(recv_one(d, 50, &token, &rc, &index, &res, &res_len), HIE_ETIMEDOUT,
        "no reply for the refused sends");
    dealer_close(d);
    log_close(&log);
    cr_assert_eq(f->seen_count, 1);
}

Test(cluster_log, the_log_thread_itself_refuses_empty_and_oversize_commands)
{
    struct test_fsm *f = fsm_new(0);
    hie_cluster_log_t *log = log_open(f);
    log_start(log);
    void *d = dealer_new();
    /* bypass submit_send: [token][cmd] written by hand */
    uint8_t tok[8];
    hie_store_be64(tok, 11);
    cr_assert_eq(zmq_send(d, tok, 8, ZMQ_SNDMORE), 8);
    cr_assert_eq(zmq_send(d, "", 0, 0), 0);
    size_t big_len = HIE_LOG_COMMAND_BYTES_MAX + 1u;
    uint8_t *big = calloc(1, big_len);
    cr_assert_not_null(big);
    hie_store_be64(tok, 12);
    cr_assert_eq(zmq_send(d, tok, 8, ZMQ_SNDMORE), 8);
    cr_assert_eq(zmq_send(d, big, big_len, 0), (int)big_len);
    free(big);
    cr_assert_eq(hie_cluster_submit_send(d, 13, hie_span("ok", 2)), 0);
    for (uint64_t want = 11; want <= 13; want++) {
        uint64_t token = 0, index = 99;
        int rc = -1;
        uint8_t *res = NULL;
        size_t res_len = 0;
        cr_assert_eq(recv_one(d, 10000, &token, &rc, &index, &res, &res_len), 0);
        cr_assert_eq(token, want, "replies come back in order");
        if (want < 13) {
            cr_assert_eq(rc, HIE_ELIMIT, "token %lu: rc=%s", (unsigned long)want,
                hie_strerror_name(rc));
            cr_assert_eq(index, 0);
            cr_assert_eq(res_len, 0);
            cr_assert_null(res);
        } else {
            cr_assert_eq(rc, 0);
            cr_assert_eq(index, 1, "refused commands take no index");
            hie_mem_free(res, res_len);
        }
    }
    dealer_close(d);
    log_close(&log);
    cr_assert_eq(f->seen_count, 1);
}

Test(cluster_log, recv_with_nothing_queued_is_eagain)
{
    void *d = zmq_socket(zctx, ZMQ_DEALER);
    cr_assert_not_null(d);
    uint64_t token;
    int rc;
    uint64_t index;
    uint8_t *res = (uint8_t *)(uintptr_t)1;
    size_t res_len = 9;
    cr_assert_eq(hie_cluster_submit_recv(d, &token, &rc, &index, &res, &res_len), HIE_EAGAIN);
    cr_assert_null(res);
    cr_assert_eq(res_len, 0);
    zmq_close(d);
}

Test(cluster_log, destroy_of_an_unstarted_log_and_of_null)
{
    struct test_fsm *f = fsm_new(0);
    hie_cluster_log_t *log = log_open(f);
    log_close(&log);
    cr_assert_null(log);
    hie_cluster_log_destroy(&log); /* NULL-safe */
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(cluster_log, open_with_null_fsm_apply_aborts, .signal = SIGABRT)
{
    hie_cluster_log_config_t cfg = {"/nonexistent/hie-log", zctx, endpoint, MAP_BYTES, NULL,
        NULL, 0};
    hie_cluster_fsm_t t = {NULL, NULL, fsm_applied_index, fsm_fatal, NULL, NULL, NULL, NULL};
    hie_cluster_log_t *log = NULL;
    int rc = hie_cluster_log_open(&log, &cfg, &t);
    (void)rc;
}

Test(cluster_log, submit_send_on_null_dealer_aborts, .signal = SIGABRT)
{
    int rc = hie_cluster_submit_send(NULL, 1, hie_span("x", 1));
    (void)rc;
}

/* Regression (was a bug, found by the unit tests): hie/cluster.h says destroy "stops the thread (finishing the batch in hand; commands
 * still queued are answered HIE_EUNAVAIL)". log_loop_once() returns as soon as the control
 * socket is readable and the thread closes its ROUTER: commands queued behind the batch in hand
 * never get a reply, so their submitters (workers, admin) wait forever for an answer the
 * header promised. Here: one command is held in a slow apply, ten more queue behind it, then
 * destroy; expected 1 reply with rc 0 and 10 with HIE_EUNAVAIL, got only the first. */
Test(cluster_log, destroy_answers_queued_commands_with_eunavail)
{
    struct test_fsm *f = fsm_new(0);
    f->first_apply_delay_ms = 300;
    hie_cluster_log_t *log = log_open(f);
    log_start(log);
    void *d = dealer_new();
    cr_assert_eq(hie_cluster_submit_send(d, 0, hie_span("first", 5)), 0);
    for (int i = 0; i < 2000 && !atomic_load(&f->in_first_apply); i++) {
        usleep(1000);
    }
    cr_assert(atomic_load(&f->in_first_apply), "the first batch never reached apply");
    for (uint64_t t = 1; t <= 10; t++) {
        cr_assert_eq(hie_cluster_submit_send(d, t, hie_span("queued", 6)), 0);
    }
    log_close(&log); /* the batch in hand finishes; the ten are still queued */
    unsigned ok = 0, unavail = 0;
    for (;;) {
        uint64_t token, index;
        int rc;
        uint8_t *res = NULL;
        size_t res_len = 0;
        if (recv_one(d, 500, &token, &rc, &index, &res, &res_len) != 0) {
            break;
        }
        hie_mem_free(res, res_len);
        ok += rc == 0;
        unavail += rc == HIE_EUNAVAIL;
    }
    dealer_close(d);
    cr_assert_eq(ok, 1, "the batch in hand is finished and answered");
    cr_assert_eq(unavail, 10, "queued commands are answered HIE_EUNAVAIL, got %u", unavail);
}

/* A log whose map is nearly full refuses the batch (HIE_ENOSPC to each submitter), and the
 * node goes on: MDB_MAP_FULL in the append called fatal, and the node stopped at every replay
 * of the same log. A 1 MiB map here, commands of 64 KiB. */
/* Submits cmd (len bytes) one at a time until the log refuses one for room (HIE_ENOSPC; every
 * one before must be applied); returns its number (or -1 after 64). */
static int
fill_to_refusal(void *d, const uint8_t *cmd, size_t len)
{
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(hie_cluster_submit_send(d, (uint64_t)i + 1, hie_span(cmd, len)), 0);
        uint64_t token = 0, index = 0;
        int rc = -1;
        uint8_t *res = NULL;
        size_t res_len = 0;
        cr_assert_eq(recv_one(d, 10000, &token, &rc, &index, &res, &res_len), 0);
        hie_mem_free(res, res_len);
        if (rc == HIE_ENOSPC) {
            return i;
        }
        cr_assert_eq(rc, 0, "command %d: %s", i, hie_strerror_name(rc));
    }
    return -1;
}

Test(cluster_log, a_full_log_refuses_the_batch_instead_of_stopping)
{
    struct test_fsm *f = fsm_new(0);
    hie_cluster_log_config_t cfg = log_config();
    cfg.map_bytes = 1u << 20;
    hie_cluster_fsm_t t = fsm_table(f);
    t.prepare = fsm_prepare;
    t.abandon = fsm_abandon;
    cr_assert_eq(hie_cluster_log_open(&open_log, &cfg, &t), 0);
    hie_cluster_log_t *log = open_log;
    log_start(log);
    void *d = dealer_new();
    static uint8_t cmd[64 * 1024];
    memset(cmd, 'c', sizeof(cmd));
    int refused_at = fill_to_refusal(d, cmd, sizeof(cmd));
    cr_assert(refused_at > 0, "refused at %d", refused_at);
    cr_log_info("a 1 MiB log took %d commands of 64 KiB", refused_at);
    cr_assert_eq(hie_cluster_submit_send(d, 999, hie_span("small", 5)), 0);
    uint64_t token = 0, index = 0;
    int rc = -1;
    uint8_t *res = NULL;
    size_t res_len = 0;
    cr_assert_eq(recv_one(d, 10000, &token, &rc, &index, &res, &res_len), 0, "still serving");
    hie_mem_free(res, res_len);
    dealer_close(d);
    log_close(&log);
    cr_assert_eq(f->seen_count, (size_t)refused_at + (rc == 0 ? 1u : 0u));
    cr_assert_null(f->prepare_error, "%s", f->prepare_error);
    cr_log_info("batches abandoned after prepare: %zu", f->abandons);
}

static int
fsm_sync_ok(void *ctx)
{
    (void)ctx;
    return 0;
}

/* A log full to refusal with every command kept, reopened with retain: the state synced at
 * open, a batch the map cannot take makes the log trim in a transaction of its own, and the
 * batch then goes in. (Trimming only in the append's transaction left such a log refusing
 * for good.) */
Test(cluster_log, a_full_log_reopened_with_retain_trims_and_takes_commands)
{
    struct test_fsm *f = fsm_new(0);
    hie_cluster_log_config_t cfg = log_config();
    cfg.map_bytes = 1u << 20;
    hie_cluster_fsm_t t = fsm_table(f);
    cr_assert_eq(hie_cluster_log_open(&open_log, &cfg, &t), 0);
    hie_cluster_log_t *log = open_log;
    log_start(log);
    void *d = dealer_new();
    static uint8_t cmd[64 * 1024];
    memset(cmd, 'c', sizeof(cmd));
    int refused_at = fill_to_refusal(d, cmd, sizeof(cmd));
    cr_assert(refused_at > 2, "refused at %d", refused_at);
    dealer_close(d);
    log_close(&log);
    cfg = log_config();
    cfg.map_bytes = 1u << 20;
    cfg.retain = 2;
    t = fsm_table(f);
    t.sync = fsm_sync_ok;
    cr_assert_eq(hie_cluster_log_open(&open_log, &cfg, &t), 0);
    log = open_log;
    log_start(log);
    d = dealer_new();
    cr_assert_eq(hie_cluster_submit_send(d, 100, hie_span(cmd, sizeof(cmd))), 0);
    uint64_t index = reply_take(d, 100, 0);
    cr_assert_eq(index, (uint64_t)refused_at + 1, "taken, numbered after the last");
    cr_assert_gt(hie_cluster_log_first_index(log), 1u, "trimmed");
    dealer_close(d);
    log_close(&log);
}
