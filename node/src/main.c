/*
 * main.c - hie-node: configuration, startup, signals and orderly shutdown.
 *
 * Startup order: config -> data directory (locked) -> state (LMDB) -> TLS context -> command
 * log (replays anything not yet applied) -> log thread -> workers -> edge -> admin -> HTTP.
 * Signals are blocked in every thread and read here with signalfd: SIGHUP reloads the
 * certificates and CRL; SIGTERM/SIGINT drain (stop accepting, finish in-flight requests,
 * flush replies) and exit 0. A failed state apply exits 70 from the log thread (sm.c).
 */
#include "node_int.h"

#include "hie/mpi_store.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

struct node_threads {
    node_workers_t *workers;
    node_edge_t *edges[NODE_EDGES_MAX];
    node_admin_t *admin;
    node_http_t *http;
    node_checkpointer_t *ckpt;
    node_delivery_t *delivery;
    bool edge_running;   /* the edge thread is in its loop and answers "drain" */
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: hie-node --config FILE [--check-config]\n"
        "       hie-node --version\n\n"
        "Runs one hiebroker node: the member edge (mutual TLS), workers, the command log and\n"
        "state machine, the admin socket for hiectl and the operator HTTP endpoint.\n"
        "Signals: SIGHUP reloads certificates and CRL; SIGTERM drains and exits 0.\n");
}

static int
datadir_lock(const char *dir, int *lock_fd)
{
    char path[NODE_PATH_MAX + 16];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "hie-node: cannot create data directory %s: %s\n", dir, strerror(errno));
        return 1;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || (sb.st_mode & 0077) != 0) {
        fprintf(stderr, "hie-node: data directory %s must be a directory with mode 0700\n", dir);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) { /* not a lock conflict: say what the system said (a root-owned LOCK...) */
        fprintf(stderr, "hie-node: cannot open %s: %s (the data directory and its files "
            "must belong to the node's user)\n", path, strerror(errno));
        return 1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        fprintf(stderr, e == EWOULDBLOCK ? "hie-node: data directory %s is in use by another "
            "node\n" : "hie-node: cannot lock %s: %s\n", e == EWOULDBLOCK ? dir : path,
            strerror(e));
        close(fd);
        return 1;
    }
    *lock_fd = fd;
    return 0;
}

/* The node's audit signing key, <data_dir>/audit.key, created at the first start (keys
 * owned by the node); its verifier key is logged so operators can hand it to auditors. */
static int
node_audit_key(node_ctx_t *ctx)
{
    char path[NODE_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/audit.key", ctx->cfg.data_dir);
    char mark[NODE_PATH_MAX + 32];
    snprintf(mark, sizeof(mark), "%s/audit.key.unconfirmed", ctx->cfg.data_dir);
    /* a key made by an earlier start that never reached the check against the state's
     * checkpoints (stopped during replay, say) is still on trial */
    ctx->audit_key_created = access(mark, F_OK) == 0;
    int rc = hie_audit_signer_generate(path);
    if (rc == 0) {
        int fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || fsync(fd) != 0) {
            hie_log_error("audit", "cannot mark the new audit signing key", " file=%s", mark);
            if (fd >= 0) {
                close(fd);
            }
            (void)unlink(path);
            return HIE_ESTORAGE;
        }
        close(fd);
        ctx->audit_key_created = true;
        hie_log_info("audit", "audit signing key created (removed again if the state's audit log already "
            "holds checkpoints: a state restored without its key)", " file=%s", path);
    } else if (rc != -EEXIST) {
        hie_log_error("audit", "cannot create the audit signing key", " file=%s rc=%s", path,
            hie_strerror_name(rc));
        return rc;
    }
    rc = hie_audit_signer_load(&ctx->audit_signer, path, ctx->cfg.audit_origin);
    if (rc != 0) {
        hie_log_error("audit", "cannot load the audit signing key", " file=%s rc=%s hint=\"%s\"",
            path, hie_strerror_name(rc), "32 bytes, a regular file with mode 0600");
        return rc;
    }
    ctx->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); /* NULL: libsodium's is used */
    hie_audit_vkey_t vk;
    hie_audit_signer_vkey(ctx->audit_signer, &vk);
    rc = hie_audit_vkey_format(&vk, ctx->audit_vkey, sizeof(ctx->audit_vkey));
    HIE_ASSERT(rc == 0);
    hie_log_info("audit", "audit log ready", " origin=%s vkey=%s", ctx->cfg.audit_origin,
        ctx->audit_vkey);
    return 0;
}

static void
node_consent_policy(node_ctx_t *ctx)
{
    hie_consent_policy_init(&ctx->consent_policy);
    ctx->consent_policy.regime = ctx->cfg.consent_opt_out ? HIE_CONSENT_OPT_OUT
                                                          : HIE_CONSENT_OPT_IN;
    ctx->consent_policy.break_glass_allowed = ctx->cfg.consent_break_glass;
    ctx->consent_policy.part2_named_recipient = ctx->cfg.consent_part2_named;
    hie_log_info("consent", "implicit policy", " regime=%s break_glass=%d part2_named=%d",
        ctx->cfg.consent_opt_out ? "opt-out" : "opt-in", ctx->cfg.consent_break_glass,
        ctx->cfg.consent_part2_named);
    if (ctx->cfg.consent_off) {
        hie_log_warn("consent", "CONSENT AND AUDIT ARE OFF (consent.enforce: "
            "off-for-benchmarks-only): never run a member-facing node like this", "%s", "");
    }
}

/* SIGTERM or SIGINT pending (they are blocked in every thread and read with signalfd once
 * the node serves): asked between replay batches, so a stop during a long replay is prompt. */
static bool
stop_requested(void *arg)
{
    (void)arg;
    sigset_t pending;
    return sigpending(&pending) == 0 &&
           (sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1);
}

/* The audit tree must still extend the last checkpoint this node signed, or the node would
 * sign a second, conflicting head for a size it signed before. */
static int
node_audit_extends(node_ctx_t *ctx)
{
    MDB_txn *txn = NULL;
    uint64_t size = 0;
    unsigned skipped = 0;
    hie_audit_vkey_t vk;
    bool check_key = ctx->audit_signer != NULL && !ctx->audit_key_created;
    if (check_key) {
        hie_audit_signer_vkey(ctx->audit_signer, &vk);
    }
    int rc = mdb_txn_begin(hie_node__state_env(ctx->state), NULL, MDB_RDONLY, &txn) != 0
             ? HIE_ESTORAGE
             : hie_node__audit_extends_last(hie_node__state_audit(ctx->state), txn,
                   check_key ? &vk : NULL, ctx->cfg.audit_origin, &size, &skipped);
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (skipped > 0) {
        hie_log_warn("audit", "stored checkpoints that do not parse were passed over (hiectl "
            "audit verify names them)", " count=%u", skipped);
    }
    char path[NODE_PATH_MAX + 16], mark[NODE_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/audit.key", ctx->cfg.data_dir);
    snprintf(mark, sizeof(mark), "%s/audit.key.unconfirmed", ctx->cfg.data_dir);
    if (rc == 0 && size > 0 && ctx->audit_key_created) {
        /* a state restored without its key: a new key would sign heads auditors cannot tie
         * to the ones they hold */
        (void)unlink(path);
        (void)unlink(mark);
        hie_log_error("audit", "audit.key was missing, but this state's audit log holds "
            "checkpoints signed by the node's key: not starting with a new key (the one just "
            "made was removed); put the node's audit.key back in the data directory",
            " checkpoint_size=%lu", size);
        return HIE_ESTATE;
    }
    if (rc == HIE_EDENIED) {
        hie_log_error("audit", "the audit log's last checkpoint is not signed by this node's "
            "audit.key for its audit.origin: the key or the origin was changed, and every "
            "checkpoint auditors hold would stop verifying (rotating the audit key is not "
            "supported); put the node's own audit.key back and its audit.origin as it was",
            " checkpoint_size=%lu origin=%s", size, ctx->cfg.audit_origin);
    } else if (rc == HIE_ECORRUPT) {
        hie_log_error("audit", "the audit log does not extend the last checkpoint this node "
            "signed: records were cut back or rewritten, or an older copy was restored; not "
            "starting (hiectl audit verify says what changed)", " checkpoint_size=%lu", size);
    } else if (rc != 0) {
        hie_log_error("audit", "cannot check the audit log against its last checkpoint",
            " rc=%s", hie_strerror_name(rc));
    }
    if (rc == 0 && ctx->audit_key_created && unlink(mark) != 0 && errno != ENOENT) {
        hie_log_warn("audit", "cannot remove the new key's mark", " file=%s", mark);
    }
    return rc;
}

/* Opens the command log, which replays what the state has not applied. */
static int
node_open_log(node_ctx_t *ctx)
{
    char logdir[NODE_PATH_MAX + 8];
    snprintf(logdir, sizeof(logdir), "%s/log", ctx->cfg.data_dir);
    hie_cluster_log_config_t lcfg = {logdir, ctx->zctx, NODE_EP_LOG, ctx->cfg.map_bytes,
        stop_requested, NULL, ctx->cfg.log_retain};
    hie_cluster_fsm_t fsm = hie_node__state_fsm(ctx->state);
    hie_node__state_defer_commits(ctx->state, true);
    uint64_t t0 = hie_time_mono_ns();
    int rc = hie_cluster_log_open(&ctx->log, &lcfg, &fsm);
    if (rc == HIE_EUNAVAIL) {
        uint64_t applied = 0;
        if (hie_node__state_applied_index(ctx->state, &applied) != 0) {
            applied = 0;
        }
        hie_log_info("node", "stopped during replay: the rest replays at the next start",
            " applied_index=%lu replay_ms=%lu", applied,
            (hie_time_mono_ns() - t0) / 1000000u);
        ctx->replay_stopped = true;
        return rc;
    }
    if (rc != 0) {
        hie_log_error("node", "cannot open command log", " dir=%s rc=%s", logdir,
            hie_strerror_name(rc));
        return rc;
    }
    ctx->metrics.state_env = hie_node__state_env(ctx->state);
    ctx->metrics.log = ctx->log;
    uint64_t applied = 0;
    rc = hie_node__state_applied_index(ctx->state, &applied);
    atomic_store(&ctx->metrics.applied_index, applied);
    hie_log_info("node", "state ready", " applied_index=%lu log_index=%lu replay_ms=%lu",
        applied, hie_cluster_log_last_index(ctx->log), (hie_time_mono_ns() - t0) / 1000000u);
    return rc;
}

static int
node_open_storage(node_ctx_t *ctx)
{
    char err[512] = "";
    int rc = hie_node__state_open(&ctx->state, ctx->cfg.data_dir, ctx->cfg.map_bytes,
        ctx->cfg.node_id, &ctx->metrics);
    if (rc != 0) {
        hie_log_error("node", "cannot open state", " dir=%s rc=%s", ctx->cfg.data_dir,
            hie_strerror_name(rc));
        return rc;
    }
    if (ctx->cfg.mpi_key_file[0] != '\0') {
        uint64_t k0 = hie_time_mono_ns();
        rc = hie_node__state_mpi_key_load(ctx->state, ctx->cfg.mpi_key_file,
            ctx->cfg.mpi_match_threads);
        if (rc == 0) { /* the key opens the store: its in-memory indexes are rebuilt here */
            hie_log_info("node", "mpi index loaded", " ms=%lu",
                (hie_time_mono_ns() - k0) / 1000000u);
        }
        if (rc != 0) {
            hie_log_error("node", "cannot load the MPI data key", " file=%s rc=%s hint=\"%s\"",
                ctx->cfg.mpi_key_file, hie_strerror_name(rc), rc == HIE_ECONFIG
                ? "not the key this node's state was written with"
                : "32 random bytes, a regular file with mode 0600 owned by the node's user");
            return rc;
        }
    } else {
        hie_log_warn("node", "no MPI data key configured (mpi.key_file): identity feed, PIX "
            "and PDQ answer UNAVAILABLE", "%s", "");
    }
    ctx->metrics.mpi = hie_mpi_store_stats(hie_node__state_mpi(ctx->state));
    node_consent_policy(ctx);
    if (ctx->cfg.mpi_key_file[0] != '\0') {
        rc = node_audit_key(ctx);
        if (rc != 0) {
            return rc;
        }
    }
    if (ctx->cfg.crl_file[0] != '\0' && stat(ctx->cfg.crl_file, &ctx->crl_seen) != 0) {
        memset(&ctx->crl_seen, 0, sizeof(ctx->crl_seen)); /* the load below says why */
    }
    /* stat before the load: a CRL replaced in between is loaded again at the first check */
    rc = hie_node__tls_ctx_build(&ctx->cfg, &ctx->ssl_ctx_initial, err, sizeof(err));
    if (rc != 0) {
        hie_log_error("node", "cannot set up tls", " reason=\"%s\"", err);
        return rc;
    }
    hie_node__crl_window_store(&ctx->metrics, ctx->cfg.crl_file);
    if (ctx->cfg.crl_file[0] == '\0') {
        hie_log_warn("tls", "no revocation checking (tls.crl_file is not set): a revoked "
            "member certificate is accepted until it expires", "%s", "");
    }
    rc = node_open_log(ctx);
    return rc != 0 ? rc : node_audit_extends(ctx);
}

static int
node_start_threads(node_ctx_t *ctx, struct node_threads *t)
{
    int rc = hie_cluster_log_start(ctx->log);
    const char *what = "log";
    if (rc == 0) {
        what = "delivery";
        rc = hie_node__delivery_start(&t->delivery, ctx);
    }
    if (rc == 0) {
        what = "replay gate";
        rc = hie_node__replay_gate_create(&ctx->replay_gate);
    }
    if (rc == 0) {
        what = "workers";
        rc = hie_node__workers_start(&t->workers, ctx);
    }
    if (rc == 0) {
        what = "listen";
        rc = hie_node__listen(ctx);
    }
    if (rc == 0) {
        what = "connection table";
        rc = hie_node__org_conns_create(ctx->cfg.connections_max, &ctx->org_conns);
    }
    for (unsigned i = 0; rc == 0 && i < ctx->cfg.edge_threads; i++) {
        what = "edge";
        rc = hie_node__edge_start(&t->edges[i], ctx, i);
        t->edge_running = rc == 0;
    }
    if (rc == 0) {
        what = "admin";
        rc = hie_node__admin_start(&t->admin, ctx);
    }
    if (rc == 0) {
        what = "http";
        rc = hie_node__http_start(&t->http, ctx);
    }
    if (rc == 0) {
        what = "checkpointer";
        rc = hie_node__checkpointer_start(&t->ckpt, ctx);
    }
    if (rc != 0) {
        hie_log_error("node", "cannot start", " part=%s rc=%s detail=\"%s\"", what,
            hie_strerror_name(rc), hie_strerror(rc));
    }
    return rc;
}

static void
node_stop_threads(node_ctx_t *ctx, struct node_threads *t, bool drain)
{
    atomic_store(&ctx->metrics.ready, 0);
    atomic_store(&ctx->stopping, true);
    if (drain) {
        int rc = hie_node__edge_ctl(ctx, "drain", NULL, HIE_NODE_DRAIN_TIMEOUT_MS + 2000);
        if (rc != 0) {
            hie_log_warn("node", "drain incomplete", " rc=%s", hie_strerror_name(rc));
        }
    }
    hie_node__http_stop(&t->http);
    zmq_ctx_shutdown(ctx->zctx); /* every blocking zmq call now fails with ETERM */
    for (unsigned i = 0; i < NODE_EDGES_MAX; i++) {
        hie_node__edge_join(&t->edges[i]);
    }
    hie_node__workers_join(&t->workers);
    hie_node__admin_join(&t->admin);
    hie_node__checkpointer_join(&t->ckpt);
    hie_node__delivery_join(&t->delivery);
    hie_node__org_conns_destroy(&ctx->org_conns); /* the edges are gone */
    hie_node__replay_gate_destroy(&ctx->replay_gate); /* and the workers */
    hie_cluster_log_destroy(&ctx->log);
}

static bool
tls_reload(node_ctx_t *ctx, const char *source)
{
    char err[512] = "";
    int rc = hie_node__tls_reload(ctx, err, sizeof(err));
    if (rc == 0) {
        hie_log_info("node", "tls reloaded", " source=%s", source);
    } else {
        hie_log_error("node", "tls reload failed", " source=%s reason=\"%s\"", source, err);
    }
    return rc == 0;
}

/* Whether the CRL file changed since the last call (by mtime, size or inode): a CA that
 * publishes a new CRL reaches open sessions within tls.crl_check_interval_ms, no SIGHUP. */
static bool
crl_changed(const char *path, struct stat *seen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return false; /* being replaced: the next check sees it */
    }
    bool changed = seen->st_ino != 0 &&
        (st.st_ino != seen->st_ino || st.st_size != seen->st_size ||
         st.st_mtim.tv_sec != seen->st_mtim.tv_sec || st.st_mtim.tv_nsec != seen->st_mtim.tv_nsec);
    *seen = st;
    return changed;
}

/* The CRL's expiry, said ahead: a week before, once a day; once expired (every member is
 * refused, /healthz answers 503), once an hour; a CRL not valid yet, once an hour while it
 * is not (it becomes valid without a reload). last_ns: when it was last said. */
static void
crl_expiry_watch(node_ctx_t *ctx, uint64_t *last_ns)
{
    int64_t next = atomic_load(&ctx->metrics.crl_next_update_ms), now = hie_time_wall_ms();
    int64_t last = atomic_load(&ctx->metrics.crl_last_update_ms);
    uint64_t mono = hie_time_mono_ns(), hour = 3600ull * 1000000000ull;
    if (now < last) {
        if (*last_ns == 0 || mono - *last_ns >= hour) {
            *last_ns = mono;
            hie_log_error("tls", "the crl is not valid yet: every member is refused until "
                "its lastUpdate", " file=%s valid_in_s=%ld hint=\"%s\"", ctx->cfg.crl_file,
                (long)((last - now + 999) / 1000), "the CA's clock is ahead of this node's: "
                "check NTP on both, or publish a CRL dated earlier");
        }
        return;
    }
    if (next == 0 || next - now > 7ll * 24 * 3600 * 1000) {
        return;
    }
    bool expired = now >= next;
    if (*last_ns != 0 && mono - *last_ns < (expired ? hour : 24 * hour)) {
        return;
    }
    *last_ns = mono;
    if (expired) {
        hie_log_error("tls", "the crl has expired: every member is refused", " file=%s "
            "expired_s_ago=%ld hint=\"%s\"", ctx->cfg.crl_file, (long)((now - next) / 1000),
            "publish a new one (deploy/pki.sh crl DIR), the node loads it within seconds");
    } else {
        hie_log_warn("tls", "the crl expires soon", " file=%s expires_in_h=%ld hint=\"%s\"",
            ctx->cfg.crl_file, (long)((next - now) / 3600000),
            "publish a new one (deploy/pki.sh crl DIR); once it expires members are refused");
    }
}

static void
node_signal_loop(node_ctx_t *ctx, int sfd)
{
    struct stat crl = ctx->crl_seen; /* as loaded at start: a change since is not missed */
    bool watch = ctx->cfg.crl_file[0] != '\0';
    uint64_t crl_said_ns = 0;
    if (watch) {
        crl_expiry_watch(ctx, &crl_said_ns);
    }
    for (;;) {
        struct pollfd pfd = {sfd, POLLIN, 0};
        int pr = poll(&pfd, 1, watch ? (int)ctx->cfg.crl_check_interval_ms : -1);
        if (pr == 0 || (pr < 0 && errno == EINTR)) {
            struct stat before = crl;
            if (pr == 0 && crl_changed(ctx->cfg.crl_file, &crl)) {
                if (!tls_reload(ctx, "crl-file")) {
                    crl = before; /* not loaded (or not by every edge): again at the next check */
                }
                crl_said_ns = 0; /* a new CRL: say again what holds for it */
            }
            if (pr == 0) {
                crl_expiry_watch(ctx, &crl_said_ns);
            }
            continue;
        }
        struct signalfd_siginfo si;
        ssize_t n = pr > 0 ? read(sfd, &si, sizeof(si)) : -1;
        if (n != (ssize_t)sizeof(si)) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return;
        }
        if (si.ssi_signo == SIGHUP) {
            /* the file as it was before the reload read it: a CRL written after is a change
             * the next check loads (its stat taken after, it would pass as loaded) */
            struct stat pre;
            bool seen = watch && stat(ctx->cfg.crl_file, &pre) == 0;
            if (tls_reload(ctx, "sighup") && seen) {
                crl = pre;
            }
            continue;
        }
        hie_log_info("node", "stopping", " signal=%s", sigabbrev_np((int)si.ssi_signo));
        return;
    }
}

static int
node_run(node_ctx_t *ctx, int sfd)
{
    struct node_threads t = {0};
    int rc = node_open_storage(ctx);
    if (rc == 0) {
        rc = node_start_threads(ctx, &t);
    }
    if (rc == 0) {
        atomic_store(&ctx->metrics.ready, 1);
        hie_log_info("node", "node started", " node=%s version=%s workers=%u",
            ctx->cfg.node_id, HIE_NODE_VERSION, ctx->cfg.workers);
        node_signal_loop(ctx, sfd);
    }
    node_stop_threads(ctx, &t, t.edge_running);
    SSL_CTX_free(ctx->ssl_ctx_initial);
    ctx->ssl_ctx_initial = NULL;
    if (ctx->listen_fd >= 0) {
        close(ctx->listen_fd);
        ctx->listen_fd = -1;
    }
    hie_node__state_close(&ctx->state);
    hie_audit_signer_destroy(&ctx->audit_signer);
    EVP_MD_free(ctx->sha256);
    ctx->sha256 = NULL;
    zmq_ctx_term(ctx->zctx);
    if (rc == 0 || ctx->replay_stopped) {
        hie_log_info("node", "node stopped", " node=%s", ctx->cfg.node_id);
    }
    return rc == 0 || ctx->replay_stopped ? 0 : 1;
}

/* --check-config loads the MPI data key as the start would (regular file, mode, size), checks
 * that it is the key the data directory's state was written with (read-only), then wipes it. */
static int
check_mpi_key(const node_config_t *cfg)
{
    if (cfg->mpi_key_file[0] == '\0') {
        return 0;
    }
    hie_mpi_key_t *key = NULL;
    int rc = hie_mpi_key_load(&key, cfg->mpi_key_file);
    if (rc != 0) {
        fprintf(stderr, "hie-node: config key mpi.key_file: cannot load %s: %s (32 random "
            "bytes, a regular file with mode 0600 owned by the node's user)\n",
            cfg->mpi_key_file, hie_strerror(rc));
    }
    int src = rc == 0 ? hie_node__state_key_check_ro(cfg->data_dir, key) : 0;
    hie_mpi_key_destroy(&key);
    if (src != 0) {
        fprintf(stderr, "hie-node: config key mpi.key_file: %s %s\n", cfg->mpi_key_file,
            src == HIE_ECONFIG ? "is not the key this node's state was written with"
                               : "could not be checked against the state");
    }
    return rc != 0 ? rc : src;
}

/* --check-config builds the TLS context as the start does (certificate, key, CA, CRL): a
 * key of another certificate, or a CRL that is not one, passed the check and failed the start
 * (after it had made audit.key). A CRL outside its validity window is said, not refused: the
 * start serves with it, and refuses every member until a valid one is published. */
static int
check_tls(const node_config_t *cfg)
{
    SSL_CTX *sctx = NULL;
    char err[512] = "";
    if (OPENSSL_init_ssl(0, NULL) != 1 || hie_node__tls_ctx_build(cfg, &sctx, err,
        sizeof(err)) != 0) {
        fprintf(stderr, "hie-node: tls: %s\n", err[0] != '\0' ? err : "cannot build the context");
        return 1;
    }
    SSL_CTX_free(sctx);
    if (cfg->crl_file[0] != '\0') {
        node_crl_window_t w = hie_node__crl_window(cfg->crl_file);
        int64_t now = hie_time_wall_ms();
        if ((w.next_update_ms != 0 && now >= w.next_update_ms) ||
            (w.last_update_ms != 0 && now < w.last_update_ms)) {
            fprintf(stderr, "hie-node: warning: tls.crl_file %s is %s: every member's "
                "certificate is refused until a valid CRL is published\n", cfg->crl_file,
                now >= w.next_update_ms && w.next_update_ms != 0 ? "expired" : "not valid yet");
        }
    }
    return 0;
}

static int
parse_args(int argc, char **argv, const char **config, bool *check_only)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            *config = optarg;
            break;
        case 'C':
            *check_only = true;
            break;
        case 'V':
            printf("hie-node %s\n", HIE_NODE_VERSION);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return 2;
        }
    }
    if (*config == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* Descriptors the node needs besides one per member connection: storage, ZeroMQ's sockets
 * and mailboxes, the operator's endpoints, TLS files. */
#define NODE_FDS_BESIDES_CONNECTIONS 512u

/* The open-file limit raised (soft up to hard) to hold limits.connections_max connections;
 * short of that, said at start: connections past it are shed (edge.c). */
static void
nofile_raise(const node_config_t *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->connections_max + NODE_FDS_BESIDES_CONNECTIONS;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) {
        return;
    }
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        rl.rlim_cur = was;
    }
    if (rl.rlim_cur < want) {
        hie_log_warn("node", "open-file limit below what limits.connections_max needs: "
            "connections past it are shed", " limit=%lu wanted=%lu connections_max=%u "
            "hint=\"%s\"", (unsigned long)rl.rlim_cur, (unsigned long)want,
            cfg->connections_max, "raise LimitNOFILE (systemd) or ulimit -n, or lower "
            "limits.connections_max");
    }
}

int
main(int argc, char **argv)
{
    const char *config = NULL;
    bool check_only = false;
    int rc = parse_args(argc, argv, &config, &check_only);
    if (rc != 0) {
        return rc;
    }
    static node_ctx_t ctx;
    ctx.listen_fd = -1;
    char err[1024] = "";
    if (hie_node__config_load(&ctx.cfg, config, err, sizeof(err)) != 0) {
        fprintf(stderr, "hie-node: %s\n", err);
        return 1;
    }
    if (check_only) {
        if (check_mpi_key(&ctx.cfg) != 0 || check_tls(&ctx.cfg) != 0) {
            return 1;
        }
        printf("config ok: node=%s listen=%s:%u data_dir=%s\n", ctx.cfg.node_id,
            ctx.cfg.listen_address, ctx.cfg.listen_port, ctx.cfg.data_dir);
        return 0;
    }
    hie_log_configure(ctx.cfg.log_level, ctx.cfg.log_format);
    nofile_raise(&ctx.cfg);
    /* decrypted PHI passes through this process's memory: never into a core file */
    struct rlimit no_core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &no_core) != 0) {
        hie_log_warn("node", "cannot disable core dumps", " errno=%d", errno);
    }
    if (sodium_init() < 0 || OPENSSL_init_ssl(0, NULL) != 1) {
        fprintf(stderr, "hie-node: crypto library initialization failed\n");
        return 1;
    }
    int lock_fd = -1;
    if (datadir_lock(ctx.cfg.data_dir, &lock_fd) != 0) {
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: all inherit it */
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    ctx.zctx = zmq_ctx_new();
    ctx.metrics.start_ns = hie_time_mono_ns();
    if (sfd < 0 || ctx.zctx == NULL) {
        fprintf(stderr, "hie-node: cannot set up signals or zeromq: %s\n", strerror(errno));
        return 1;
    }
    rc = node_run(&ctx, sfd);
    close(sfd);
    close(lock_fd);
    OPENSSL_cleanup();
    return rc;
}
