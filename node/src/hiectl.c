/*
 * hiectl.c - the operator's command-line tool.
 *
 * Talks to the local node over its ipc:// admin socket (REQ/REP, protobuf AdminRequest), except
 * `init`, which prepares a data directory offline. The socket path comes from --socket, from
 * the node's config (--config), from HIE_ADMIN_SOCKET, or defaults to
 * /var/lib/hiebroker/admin.sock.
 *
 * `consent` reads directive files with the member command line's parser (client/src/
 * consent_json.c), so `hie consent submit` and `hiectl consent submit` take the same files.
 *
 * Exit codes: 0 ok, 1 the node refused (error printed), 2 usage, 3 cannot reach the node, 4 no
 * answer in time (the request may still be carried out: repeat it with --id, printed).
 * `mpi import` differs (its callers script it): 0 every row imported, 1 some rows rejected,
 * 2 usage, file, state or connection failures (progress saved: rerun to resume).
 */
#include "consent_json.h"
#include "hiectl_int.h"
#include "import.h"
#include "node_int.h"

#include <csv.h>
#include <signal.h>
#include <unistd.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <zmq.h>

#define CTL_TIMEOUT_MS 15000
#define CTL_TIMEOUT_ARG_MAX 3600000u /* --timeout: at most an hour */
#define CTL_REPLY_ARENA_BYTES (64u * 1024u * 1024u)


void
hie_ctl__usage(FILE *f)
{
    fprintf(f,
        "usage: hiectl [--socket PATH | --config FILE] [--id REQUEST_ID] COMMAND ...\n\n"
        "commands:\n"
        "  init --data-dir DIR              create an empty node data directory (offline)\n"
        "  status                           node id, applied/log index, connections\n"
        "  org register ORG --name NAME --roles R1,R2   register an organization\n"
        "  org roles ORG --roles R1,R2      replace its roles\n"
        "  org suspend ORG [--reason TEXT]  refuse its connections from now on\n"
        "  org reinstate ORG                allow it again\n"
        "  org list                         every organization\n"
        "  org show ORG                     one organization\n"
        "  reload                           re-read certificates, key and CRL\n"
        "  mpi import FILE [--format csv|ndjson] [--batch N] [--state PATH] [--restart]\n"
        "                 [--rejects PATH]  bulk identity feed, resumable (see below)\n"
        "  mpi train [--sample-pairs N]     re-estimate the match model from the index\n"
        "  mpi stats                        records, EUIDs, open reviews, model version\n"
        "  mpi history ORG MRN              every link decision about one record, with its score\n"
        "  mpi review list [--after ID] [--limit N] [--all]   possible matches to decide\n"
        "  mpi review link ID | apart ID    decide a review item\n"
        "  audit verify [--vkey VKEY] [--checkpoint FILE] [--data-dir DIR]   check the audit\n"
        "                                   log on the node's files (or a backup's, DIR, with\n"
        "                                   --vkey): every record, hash and checkpoint; exit 1\n"
        "                                   if tampered (needs --config)\n"
        "  audit vkey                       the node's checkpoint verifier key (needs --config)\n"
        "  backup DIR                       copy the node's state and log into the new DIR,\n"
        "                                   running or not (needs --config; keys not included)\n"
        "  delivery dead [ORG [AFTER_SEQ]]  dead letters: recipient, seq, message id, sender,\n"
        "                                   attempts, reason (never their content); 1,000 at\n"
        "                                   most, then a line naming the next page (of all:\n"
        "                                   --org ORG --after SEQ)\n"
        "  delivery redrive ORG [SEQ]       send dead letters (all, or SEQ) back to the queue\n"
        "  delivery purge ORG [SEQ]         delete dead letters (all, or SEQ) for good\n"
        "  repository retract DOC_ID [--reason TEXT]   withdraw any organization's document\n"
        "                                   from the HIE's repository (queries stop listing it)\n"
        "  subscription list [ORG]          ADT subscriptions: id, org, scope, roster size,\n"
        "                                   event and class filters, last event number, and\n"
        "                                   the messages waiting in the subscriber's queue\n"
        "  subscription cancel ID           end a member's subscription (as the operator)\n"
        "  consent submit --org ORG --mrn MRN --file FILE|-   file a directive for any\n"
        "                                   organization's patient (the JSON of hie consent\n"
        "                                   submit, see hie --help; exit 2 names the bad path)\n"
        "  consent revoke ID                revoke any directive\n"
        "  consent list --org ORG --mrn MRN [--all]   a patient's directives (--all: with\n"
        "                                   inactive and revoked ones); --json: JSON output\n\n"
        "roles: hospital clinic lab payer auditor operator node\n"
        "--id makes a command idempotent: repeating it returns the first result.\n\n"
        "mpi import: CSV with a header (org_id, mrn, given, family, birth_date, sex, address,\n"
        "city, postcode, phone, email, national_id, optional action create|update; several\n"
        "given, family or address values separated by '|') or NDJSON with the same keys\n"
        "(given, family, address: a string or an array). The format follows the extension\n"
        "(.ndjson, .jsonl) unless --format says. Rows go in batches of --batch (default 256,\n"
        "fewer when a batch would exceed the admin message limit). Progress is saved after each\n"
        "acknowledged batch in --state (default FILE.hieimport); running the same command\n"
        "again resumes there, and re-sent rows are not applied twice. --restart ignores the\n"
        "state. Rejected rows are listed on stderr and in --rejects (CSV).\n"
        "Exit codes: 0 ok, 1 the node refused (import: some rows rejected), 2 usage (import:\n"
        "also file, state or connection failures), 3 cannot reach the node, 4 no answer in\n"
        "time (the node may still carry the request out: repeat it with the --id printed).\n");
}

static const char *
ctl_socket_path(const struct ctl *c, char *buf, size_t cap)
{
    if (c->socket != NULL) {
        return c->socket;
    }
    if (c->config != NULL) {
        static node_config_t cfg;
        char err[1024];
        if (hie_node__config_load(&cfg, c->config, err, sizeof(err)) != 0) {
            fprintf(stderr, "hiectl: %s\n", err);
            exit(2);
        }
        snprintf(buf, cap, "%s", cfg.admin_socket);
        return buf;
    }
    const char *env = getenv("HIE_ADMIN_SOCKET");
    return env != NULL ? env : "/var/lib/hiebroker/admin.sock";
}

/* A REQ socket on the node's admin channel, kept open across requests (import sends many). */
struct ctl_conn {
    void *zctx;
    void *sock;
    char path[NODE_PATH_MAX];
    int timeout_ms;
};

static void
ctl_conn_close(struct ctl_conn *conn)
{
    if (conn->sock != NULL) {
        zmq_close(conn->sock);
        conn->sock = NULL;
    }
    if (conn->zctx != NULL) {
        zmq_ctx_term(conn->zctx);
        conn->zctx = NULL;
    }
}

/* Whether a process accepts connections on the unix socket at path. */
static bool
ctl_socket_answers(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        return true; /* zmq says what is wrong with it */
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return true;
    }
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != ECONNREFUSED;
    close(fd);
    return ok;
}

/* Opens (or, after a timeout, reopens: a REQ socket cannot send twice) the socket. Returns 0,
 * HIE_ENOTFOUND (no socket file), HIE_EUNAVAIL (nothing listens on it) or -1, with a lowercase
 * reason in err. */
static int
ctl_conn_open(struct ctl_conn *conn, char *err, size_t err_bytes)
{
    char ep[NODE_PATH_MAX + 8];
    struct stat sb;
    int linger = 0;
    ctl_conn_close(conn);
    if (stat(conn->path, &sb) != 0) {
        snprintf(err, err_bytes, "cannot reach node: %s: %s", conn->path, strerror(errno));
        return HIE_ENOTFOUND; /* a node stopped removes it (an import retries: restarting) */
    }
    if (!ctl_socket_answers(conn->path)) { /* a killed node's socket file: "cannot reach"
                                            * (3), not "no answer in time" (4) */
        snprintf(err, err_bytes, "cannot reach node: nothing listens on %s (is the node "
            "running?)", conn->path);
        return HIE_EUNAVAIL; /* an import retries: the node may be restarting */
    }
    snprintf(ep, sizeof(ep), "ipc://%s", conn->path);
    conn->zctx = zmq_ctx_new();
    conn->sock = conn->zctx != NULL ? zmq_socket(conn->zctx, ZMQ_REQ) : NULL;
    if (conn->sock == NULL ||
        zmq_setsockopt(conn->sock, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
        zmq_setsockopt(conn->sock, ZMQ_RCVTIMEO, &conn->timeout_ms, sizeof(int)) != 0 ||
        zmq_setsockopt(conn->sock, ZMQ_SNDTIMEO, &conn->timeout_ms, sizeof(int)) != 0 ||
        zmq_connect(conn->sock, ep) != 0) {
        snprintf(err, err_bytes, "cannot open %s: %s", ep, zmq_strerror(errno));
        ctl_conn_close(conn);
        return -1;
    }
    return 0;
}

/* Sends req and decodes the reply into arena. Returns 0 (the reply may carry an Error),
 * HIE_ETIMEDOUT (the socket is reopened for the next call; the node may have acted),
 * HIE_EPROTO (malformed reply), HIE_EUNAVAIL (its socket file is there but nothing listens:
 * a node killed, perhaps restarting), HIE_ENOTFOUND (no socket file: a node stopped) or -1
 * (cannot send or reopen); err says why. */
static int
ctl_conn_call(struct ctl_conn *conn, Hie__V1__AdminRequest *req, hie_arena_t *arena,
    Hie__V1__AdminReply **reply, char *err, size_t err_bytes)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    *reply = NULL;
    int orc = conn->sock == NULL ? ctl_conn_open(conn, err, err_bytes) : 0;
    if (orc != 0) {
        return orc == HIE_EUNAVAIL || orc == HIE_ENOTFOUND ? orc : -1;
    }
    if (hie_proto_pack(&req->base, HIE_ADMIN_MSG_BYTES_MAX, &buf, &len) != 0) {
        snprintf(err, err_bytes, "request larger than %u bytes", HIE_ADMIN_MSG_BYTES_MAX);
        return -1;
    }
    int sent = zmq_send(conn->sock, buf, len, 0);
    hie_mem_free(buf, len);
    if (sent < 0) {
        snprintf(err, err_bytes, "cannot send to node at %s: %s", conn->path,
            zmq_strerror(errno));
        return -1;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, conn->sock, 0) < 0) {
        int e = errno;
        zmq_msg_close(&msg);
        snprintf(err, err_bytes, "no answer from node at %s within %d ms%s", conn->path,
            conn->timeout_ms, e == EAGAIN ? "" : " (interrupted)");
        ctl_conn_close(conn); /* the next call reopens */
        return e == EAGAIN ? HIE_ETIMEDOUT : -1;
    }
    ProtobufCMessage *m = NULL;
    int rc = hie_proto_unpack(&hie__v1__admin_reply__descriptor,
        hie_span(zmq_msg_data(&msg), zmq_msg_size(&msg)), arena, &m);
    zmq_msg_close(&msg);
    if (rc != 0) {
        snprintf(err, err_bytes, "malformed answer from node");
        return HIE_EPROTO;
    }
    *reply = (Hie__V1__AdminReply *)m;
    return 0;
}

static void
ctl_conn_init(const struct ctl *c, struct ctl_conn *conn, int timeout_ms)
{
    memset(conn, 0, sizeof(*conn));
    const char *path = ctl_socket_path(c, conn->path, sizeof(conn->path));
    if (path != conn->path) {
        snprintf(conn->path, sizeof(conn->path), "%s", path);
    }
    conn->timeout_ms = timeout_ms;
}

/* Sends req and returns the decoded reply in arena, or exits 3 when the node is unreachable
 * and 1 when it answers with an error. */
Hie__V1__AdminReply *
hie_ctl__call(const struct ctl *c, Hie__V1__AdminRequest *req, hie_arena_t *arena)
{
    struct ctl_conn conn;
    Hie__V1__AdminReply *reply = NULL;
    char err[NODE_PATH_MAX + 128];
    ctl_conn_init(c, &conn, c->timeout_ms);
    int rc = ctl_conn_call(&conn, req, arena, &reply, err, sizeof(err));
    ctl_conn_close(&conn);
    if (rc == HIE_ETIMEDOUT && req->id != NULL && req->id[0] != '\0') {
        /* sent, not answered: the node's admin thread may be busy (mpi train, an import
         * batch) and take the request later. Not "unreachable": a retry without the same id
         * would be a second command. */
        fprintf(stderr, "hiectl: %s; the request (id %s) may still be carried out when the "
            "node gets to it: repeat the command with --id %s to learn its result\n", err,
            req->id, req->id);
        exit(4);
    }
    if (rc != 0) {
        fprintf(stderr, "hiectl: %s\n", err);
        exit(3);
    }
    if (reply->error != NULL) {
        fprintf(stderr, "hiectl: %s: %s%s%s\n", hie_proto_error_code_name(reply->error->code),
            reply->error->message, reply->error->field[0] ? " field=" : "",
            reply->error->field);
        exit(1);
    }
    return reply;
}

static void
print_org(const hie_org_t *o)
{
    printf("org=%s name=\"%s\" status=%s roles=", o->id, o->display_name,
        o->status == HIE__V1__ORG_STATUS__ORG_ACTIVE ? "active" : "suspended");
    for (size_t i = 0; i < o->n_roles; i++) {
        printf("%s%s", i ? "," : "", hie_proto_role_name(o->roles[i]));
    }
    printf(" version=%lu\n", o->version);
}

static int
parse_roles(const char *s, Hie__V1__Role *roles, size_t *n)
{
    char buf[256];
    *n = 0;
    if (s == NULL || strlen(s) >= sizeof(buf)) {
        return HIE_EINVAL;
    }
    snprintf(buf, sizeof(buf), "%s", s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (*n >= HIE_ORG_ROLES_MAX || hie_proto_role_parse(tok, &roles[*n]) != 0) {
            return HIE_EINVAL;
        }
        (*n)++;
    }
    return *n > 0 ? 0 : HIE_EINVAL;
}

int
hie_ctl__command(const struct ctl *c, hie_command_t *cmd, hie_arena_t *arena)
{
    char id[40];
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    if (c->id != NULL) {
        req.id = (char *)(uintptr_t)c->id;
    } else {
        snprintf(id, sizeof(id), "ctl-%08x%08x", randombytes_random(), randombytes_random());
        req.id = id;
    }
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_COMMAND;
    req.command = cmd;
    Hie__V1__AdminReply *reply = hie_ctl__call(c, &req, arena);
    if (reply->body_case != HIE__V1__ADMIN_REPLY__BODY_RESULT) {
        fprintf(stderr, "hiectl: unexpected answer\n");
        return 3;
    }
    hie_command_result_t *r = reply->result;
    if (r->code != HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        fprintf(stderr, "hiectl: refused: %s: %s%s%s (index %lu)\n",
            hie_proto_error_code_name(r->code), r->message, r->field[0] ? " field=" : "",
            r->field, r->index);
        return 1;
    }
    if (r->org != NULL) {
        print_org(r->org);
    }
    printf("applied index=%lu id=%s", r->index, req.id);
    if (cmd->body_case == HIE__V1__COMMAND__BODY_REDRIVE) {
        printf(" moved=%u", r->acknowledged);
    }
    if (cmd->body_case == HIE__V1__COMMAND__BODY_DEAD_PURGE) {
        printf(" purged=%u", r->acknowledged);
    }
    if (cmd->body_case == HIE__V1__COMMAND__BODY_RETRACT) {
        printf(" document=%s bytes_released=%lu", r->document_id != NULL &&
            r->document_id[0] != '\0' ? r->document_id : cmd->retract->document_id,
            (unsigned long)r->bytes_released);
    }
    if (r->message != NULL && r->message[0] != '\0') {
        printf(" note=\"%s\"", r->message);
    }
    printf("\n");
    return 0;
}

static int
ctl_org_change(const struct ctl *c, const char *verb, const char *org, hie_arena_t *arena)
{
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    Hie__V1__OrgRegister reg = HIE__V1__ORG_REGISTER__INIT;
    Hie__V1__OrgSetRoles setr = HIE__V1__ORG_SET_ROLES__INIT;
    Hie__V1__OrgSuspend sus = HIE__V1__ORG_SUSPEND__INIT;
    Hie__V1__OrgReinstate rein = HIE__V1__ORG_REINSTATE__INIT;
    Hie__V1__Role roles[HIE_ORG_ROLES_MAX];
    size_t n_roles = 0;
    bool needs_roles = strcmp(verb, "register") == 0 || strcmp(verb, "roles") == 0;
    if (needs_roles && parse_roles(c->roles, roles, &n_roles) != 0) {
        fprintf(stderr, "hiectl: --roles needs a comma-separated list of known roles\n");
        return 2;
    }
    if (strcmp(verb, "register") == 0) {
        reg.org_id = (char *)(uintptr_t)org;
        reg.display_name = (char *)(uintptr_t)(c->name != NULL ? c->name : org);
        reg.n_roles = n_roles;
        reg.roles = roles;
        cmd.body_case = HIE__V1__COMMAND__BODY_ORG_REGISTER;
        cmd.org_register = &reg;
    } else if (strcmp(verb, "roles") == 0) {
        setr.org_id = (char *)(uintptr_t)org;
        setr.n_roles = n_roles;
        setr.roles = roles;
        cmd.body_case = HIE__V1__COMMAND__BODY_ORG_SET_ROLES;
        cmd.org_set_roles = &setr;
    } else if (strcmp(verb, "suspend") == 0) {
        sus.org_id = (char *)(uintptr_t)org;
        sus.reason = (char *)(uintptr_t)(c->reason != NULL ? c->reason : "");
        cmd.body_case = HIE__V1__COMMAND__BODY_ORG_SUSPEND;
        cmd.org_suspend = &sus;
    } else if (strcmp(verb, "reinstate") == 0) {
        rein.org_id = (char *)(uintptr_t)org;
        cmd.body_case = HIE__V1__COMMAND__BODY_ORG_REINSTATE;
        cmd.org_reinstate = &rein;
    } else {
        hie_ctl__usage(stderr);
        return 2;
    }
    return hie_ctl__command(c, &cmd, arena);
}

static int
ctl_org(const struct ctl *c, int argc, char **argv, hie_arena_t *arena)
{
    if (argc < 1) {
        hie_ctl__usage(stderr);
        return 2;
    }
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    if (strcmp(argv[0], "list") == 0) {
        Hie__V1__AdminOrgList list = HIE__V1__ADMIN_ORG_LIST__INIT;
        req.body_case = HIE__V1__ADMIN_REQUEST__BODY_ORG_LIST;
        req.org_list = &list;
        Hie__V1__AdminReply *reply = hie_ctl__call(c, &req, arena);
        for (size_t i = 0; reply->org_list != NULL && i < reply->org_list->n_orgs; i++) {
            print_org(reply->org_list->orgs[i]);
        }
        return 0;
    }
    if (argc != 2) {
        hie_ctl__usage(stderr);
        return 2;
    }
    if (strcmp(argv[0], "show") == 0) {
        Hie__V1__AdminOrgGet get = HIE__V1__ADMIN_ORG_GET__INIT;
        get.org_id = argv[1];
        req.body_case = HIE__V1__ADMIN_REQUEST__BODY_ORG_GET;
        req.org_get = &get;
        Hie__V1__AdminReply *reply = hie_ctl__call(c, &req, arena);
        if (reply->org != NULL) {
            print_org(reply->org);
        }
        return 0;
    }
    return ctl_org_change(c, argv[0], argv[1], arena);
}

static int
ctl_status(const struct ctl *c, hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__AdminStatusRequest st = HIE__V1__ADMIN_STATUS_REQUEST__INIT;
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_STATUS;
    req.status = &st;
    Hie__V1__AdminReply *reply = hie_ctl__call(c, &req, arena);
    Hie__V1__AdminStatusReply *s = reply->status;
    if (s == NULL) {
        return 3;
    }
    printf("node=%s version=%s listen=%s applied_index=%lu log_index=%lu log_first_index=%lu "
        "connections=%lu uptime_s=%lu\n", s->node_id, s->version, s->listen, s->applied_index,
        s->log_index, s->log_first_index, s->connections, s->uptime_ms / 1000u);
    return 0;
}

static int
ctl_reload(const struct ctl *c, hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__AdminReload r = HIE__V1__ADMIN_RELOAD__INIT;
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_RELOAD;
    req.reload = &r;
    (void)hie_ctl__call(c, &req, arena);
    printf("reloaded certificates, key and crl\n");
    return 0;
}

/* Creates dir (0700), or takes an existing one that is empty or holds only what an
 * interrupted init left (LOCK, state/): never a directory with other files in it (a mistyped
 * --data-dir /var/lib would be made 0700 and filled). Returns 0 or an exit code. */
static int
init_dir(const char *dir)
{
    if (mkdir(dir, 0700) == 0) {
        return 0;
    }
    if (errno != EEXIST) {
        fprintf(stderr, "hiectl: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "hiectl: cannot read %s: %s\n", dir, strerror(errno));
        return 1;
    }
    const struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strcmp(n, ".") != 0 && strcmp(n, "..") != 0 && strcmp(n, "LOCK") != 0 &&
            strcmp(n, "state") != 0) {
            fprintf(stderr, "hiectl: %s is not empty and not a data directory (it holds %s): "
                "choose a new or empty directory\n", dir, n);
            closedir(d);
            return 1;
        }
    }
    closedir(d);
    if (chmod(dir, 0700) != 0) {
        fprintf(stderr, "hiectl: cannot chmod %s: %s\n", dir, strerror(errno));
        return 1;
    }
    return 0;
}

static int
ctl_init(const struct ctl *c)
{
    if (c->data_dir == NULL) {
        fprintf(stderr, "hiectl: init needs --data-dir DIR\n");
        return 2;
    }
    char logdir[NODE_PATH_MAX + 8], lock[NODE_PATH_MAX + 8];
    snprintf(logdir, sizeof(logdir), "%s/log", c->data_dir);
    snprintf(lock, sizeof(lock), "%s/LOCK", c->data_dir);
    struct stat sb;
    if (stat(logdir, &sb) == 0) {
        /* nothing to prepare; opening would replay the log here, without the node's data
         * key and beside a node that may be running */
        printf("data directory %s already initialized (left as it is)\n", c->data_dir);
        return 0;
    }
    int rc = init_dir(c->data_dir);
    if (rc != 0) {
        return rc;
    }
    int lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0) {
        fprintf(stderr, "hiectl: cannot open %s: %s\n", lock, strerror(errno));
        return 1;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "hiectl: data directory %s is in use by a node\n", c->data_dir);
        close(lock_fd);
        return 1;
    }
    node_state_t *st = NULL;
    hie_cluster_log_t *log = NULL;
    rc = hie_node__state_open(&st, c->data_dir, HIE_LMDB_MAP_BYTES_DEFAULT, "init", NULL);
    if (rc == 0) {
        hie_cluster_log_config_t lcfg = {logdir, NULL, NODE_EP_LOG, HIE_LMDB_MAP_BYTES_DEFAULT,
            NULL, NULL, 0};
        hie_cluster_fsm_t fsm = hie_node__state_fsm(st);
        rc = hie_cluster_log_open(&log, &lcfg, &fsm);
    }
    uint64_t applied = 0;
    if (rc == 0) {
        rc = hie_node__state_applied_index(st, &applied);
    }
    hie_cluster_log_destroy(&log);
    hie_node__state_close(&st);
    close(lock_fd);
    if (rc != 0) {
        fprintf(stderr, "hiectl: init %s failed: %s\n", c->data_dir, hie_strerror(rc));
        return 1;
    }
    printf("data directory %s ready (applied_index=%lu)\n", c->data_dir, applied);
    return 0;
}

/* ---- mpi import ---------------------------------------------------------------------------
 *
 * Reads FILE with the row reader (import.c), sends valid rows as AdminRequest.mpi_feed_batch
 * and, after each batch the node answered in full, saves the state file (fingerprint, offset,
 * line, counts). Each item's id is derived from the file's fingerprint and the row's line, so a
 * batch re-sent after a crash or timeout is deduplicated by the node. Rows rejected here or by
 * the node are reported (line, reason, field) and the import goes on.
 */

/* A batch request stays this far below the admin channel's message limit, so that the next
 * row always fits: a row whose item is larger than CTL_IMPORT_ITEM_BYTES_MAX is rejected. */
#define CTL_IMPORT_ITEM_BYTES_MAX (16u * 1024u)
#define CTL_IMPORT_BATCH_BYTES_MAX (HIE_ADMIN_MSG_BYTES_MAX - CTL_IMPORT_ITEM_BYTES_MAX - 1024u)
_Static_assert(HIE_ADMIN_MSG_BYTES_MAX > 2u * CTL_IMPORT_ITEM_BYTES_MAX, "admin limit too low");
#define CTL_IMPORT_BATCH_DEFAULT 256u
#ifdef HIE_ADMIN_FEED_BATCH_MAX
#define CTL_IMPORT_BATCH_MAX HIE_ADMIN_FEED_BATCH_MAX /* what the node takes in one batch */
#else
#define CTL_IMPORT_BATCH_MAX 1024u
#endif
/* The batch arena: rows (also rejected ones) until the batch is sent. */
#define CTL_IMPORT_ARENA_BYTES (8u * 1024u * 1024u)
_Static_assert(CTL_IMPORT_ARENA_BYTES > 4u * NODE_IMPORT_ROW_ARENA_BYTES_MAX, "arena too small");
/* Overloaded, unavailable or silent node: tries per batch, backoff doubling from 500 ms. */
#define CTL_IMPORT_TRIES_MAX 6u
#define CTL_IMPORT_BACKOFF_MS_MAX 8000u
#define CTL_IMPORT_TTY_UPDATE_NS (250ull * 1000000ull)
#define CTL_IMPORT_LOG_UPDATE_NS (10ull * 1000000000ull)

enum ctl_exit { CTL_EXIT_OK = 0, CTL_EXIT_REJECTED = 1, CTL_EXIT_FAIL = 2 };

struct ctl_import {
    const struct ctl *c;
    const char *file;
    bool answered;                  /* the node answered a batch: a socket gone since is a
                                     * node restarting, retried */
    char state_path[NODE_PATH_MAX];
    node_import_reader_t *reader;
    node_import_state_t st;         /* as of the last acknowledged batch */
    node_import_counts_t pending;   /* rows read since then (rows, rejected locally) */
    FILE *rejects;
    char *batch_rejects;            /* this batch's lines for the rejects file: written when
                                     * the batch is saved, so a resumed run adds no copies */
    size_t batch_rejects_len;
    struct ctl_conn conn;
    hie_arena_t *arena;             /* rows of the current batch */
    Hie__V1__MpiFeedRequest *items[CTL_IMPORT_BATCH_MAX];
    char *ids[CTL_IMPORT_BATCH_MAX];
    uint64_t lines[CTL_IMPORT_BATCH_MAX];
    size_t items_count;
    size_t batch_bytes;
    uint64_t end_offset;            /* just past the last row read */
    uint64_t end_line;
    bool tty;
    uint64_t start_ns;
    uint64_t progress_ns;
    uint64_t start_offset;
    uint64_t start_rows;
};

static volatile sig_atomic_t ctl_interrupted;

static void
ctl_on_signal(int sig)
{
    (void)sig;
    ctl_interrupted = 1;
}

/* Copies text from the node or the reader for the terminal: control characters become '?'. */
void
hie_ctl__text_safe(char *out, size_t out_bytes, const char *s)
{
    size_t n = 0;
    HIE_ASSERT(out_bytes > 0);
    for (; s[n] != '\0' && n + 1 < out_bytes; n++) {
        unsigned char ch = (unsigned char)s[n];
        out[n] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    out[n] = '\0';
}

static void
rejects_cell(FILE *f, const char *s, char sep)
{
    (void)csv_fwrite(f, s, strlen(s));
    fputc(sep, f);
}

/* Reports a rejected row on stderr and in the rejects file. Reasons and fields are static
 * text, column names or the node's messages (which never echo row data). */
static void
import_reject(struct ctl_import *im, uint64_t line, const char *code, const char *reason,
    const char *field)
{
    char safe[256];
    char safe_field[80];
    hie_ctl__text_safe(safe, sizeof(safe), reason);
    hie_ctl__text_safe(safe_field, sizeof(safe_field), field != NULL ? field : "");
    if (im->tty) {
        fputs("\r\033[K", stderr);
    }
    fprintf(stderr, "hiectl: line %llu rejected: %s%s%s%s%s\n", (unsigned long long)line,
        code != NULL ? code : "", code != NULL ? ": " : "", safe,
        safe_field[0] != '\0' ? " field=" : "", safe_field);
    if (im->rejects == NULL) {
        return;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        return;
    }
    fprintf(f, "%llu,", (unsigned long long)line);
    rejects_cell(f, code != NULL ? code : "LOCAL", ',');
    rejects_cell(f, safe_field, ',');
    rejects_cell(f, safe, '\n');
    char *grown = fclose(f) == 0 ? realloc(im->batch_rejects, im->batch_rejects_len + len) : NULL;
    if (grown != NULL) {
        memcpy(grown + im->batch_rejects_len, buf, len);
        im->batch_rejects = grown;
        im->batch_rejects_len += len;
    }
    free(buf);
}

static void
import_count_outcome(node_import_counts_t *n, Hie__V1__FeedOutcome outcome)
{
    n->imported++;
    switch (outcome) {
    case HIE__V1__FEED_OUTCOME__OUTCOME_NEW: n->created++; break;
    case HIE__V1__FEED_OUTCOME__OUTCOME_LINKED: n->linked++; break;
    case HIE__V1__FEED_OUTCOME__OUTCOME_REVIEW: n->review++; break;
    default: n->updated++; break;
    }
}

static void
counts_add(node_import_counts_t *to, const node_import_counts_t *from)
{
    to->rows += from->rows;
    to->imported += from->imported;
    to->rejected += from->rejected;
    to->created += from->created;
    to->linked += from->linked;
    to->review += from->review;
    to->updated += from->updated;
}

/* The results of items [from, from + count): counts and rejections into im->pending. */
static int
import_results(struct ctl_import *im, size_t from, size_t count,
    const Hie__V1__AdminMpiFeedBatchReply *r)
{
    if (r == NULL || r->n_results != count) {
        fprintf(stderr, "hiectl: import failed: the node answered %zu results for %zu rows\n",
            r != NULL ? r->n_results : 0, count);
        return CTL_EXIT_FAIL;
    }
    for (size_t i = 0; i < count; i++) {
        const Hie__V1__AdminMpiFeedItemResult *res = r->results[i];
        if (res->error != NULL) {
            im->pending.rejected++;
            import_reject(im, im->lines[from + i], hie_proto_error_code_name(res->error->code),
                res->error->message, res->error->field);
        } else if (res->reply != NULL) {
            import_count_outcome(&im->pending, res->reply->outcome);
        } else {
            im->pending.rejected++;
            import_reject(im, im->lines[from + i], NULL, "the node sent an empty result", NULL);
        }
    }
    return CTL_EXIT_OK;
}

/* Whether any row of the batch was answered OVERLOADED or UNAVAILABLE (not committed in
 * time, a full log, no log): those rows are not rejected, the batch is sent again (rows that
 * did commit answer from the node's dedup: each row has its own id). */
static bool
batch_transient(const Hie__V1__AdminMpiFeedBatchReply *r)
{
    for (size_t i = 0; r != NULL && i < r->n_results; i++) {
        const Hie__V1__Error *e = r->results[i]->error;
        if (e != NULL && (e->code == HIE__V1__ERROR_CODE__ERROR_OVERLOADED ||
                          e->code == HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE)) {
            return true;
        }
    }
    return false;
}

/* Sends items [from, from + count) as one request, retrying a silent, overloaded or
 * unavailable node, or one that answered some rows so. Returns 0 with *reply (in arena) answered in full or with a whole-batch
 * error the caller handles, or CTL_EXIT_FAIL after printing why. */
static int
import_send(struct ctl_import *im, size_t from, size_t count, hie_arena_t *arena,
    Hie__V1__AdminReply **reply)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__AdminMpiFeedBatch batch = HIE__V1__ADMIN_MPI_FEED_BATCH__INIT;
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    char err[NODE_PATH_MAX + 128];
    HIE_ASSERT(count > 0 && from + count <= im->items_count);
    snprintf(id, sizeof(id), "impb-%.16s-%llu-%zu", hie_node__import_fingerprint(im->reader),
        (unsigned long long)im->lines[from], count);
    batch.n_items = count;
    batch.items = &im->items[from];
    batch.n_ids = count;
    batch.ids = &im->ids[from];
    req.id = id;
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_MPI_FEED_BATCH;
    req.mpi_feed_batch = &batch;
    uint32_t backoff_ms = 500;
    for (unsigned attempt = 1; attempt <= CTL_IMPORT_TRIES_MAX && !ctl_interrupted; attempt++) {
        int rc = ctl_conn_call(&im->conn, &req, arena, reply, err, sizeof(err));
        Hie__V1__ErrorCode code = rc == 0 && (*reply)->error != NULL ? (*reply)->error->code
                                                                       : 0;
        bool rows = rc == 0 && code == 0 && batch_transient((*reply)->mpi_feed_batch);
        bool transient = rc == HIE_ETIMEDOUT || rc == HIE_EUNAVAIL ||
                         (rc == HIE_ENOTFOUND && im->answered) ||
                         code == HIE__V1__ERROR_CODE__ERROR_OVERLOADED ||
                         code == HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE || rows;
        im->answered |= rc == 0;
        if (!transient) {
            if (rc == 0) {
                return 0;
            }
            break;
        }
        if (rows) {
            snprintf(err, sizeof(err), "node answered some rows OVERLOADED or UNAVAILABLE "
                "(not committed in time, or storage full)");
        } else if (rc == 0) {
            snprintf(err, sizeof(err), "node answered %s", hie_proto_error_code_name(code));
        }
        fprintf(stderr, "%shiectl: %s; retrying in %u ms (try %u of %u)\n",
            im->tty ? "\r\033[K" : "", err, backoff_ms, attempt, CTL_IMPORT_TRIES_MAX);
        usleep(backoff_ms * 1000u);
        backoff_ms = backoff_ms * 2 > CTL_IMPORT_BACKOFF_MS_MAX ? CTL_IMPORT_BACKOFF_MS_MAX
                                                                : backoff_ms * 2;
    }
    fprintf(stderr, "%shiectl: import stopped: %s\n", im->tty ? "\r\033[K" : "",
        ctl_interrupted ? "interrupted" : err);
    return CTL_EXIT_FAIL;
}

/* Sends items [from, from + count). A whole-batch BAD_REQUEST (one item the node cannot even
 * decode) is retried item by item, so that only that row is rejected. */
static int
import_send_items(struct ctl_import *im, size_t from, size_t count)
{
    hie_arena_t *arena = NULL;
    Hie__V1__AdminReply *reply = NULL;
    if (hie_arena_create(&arena, CTL_REPLY_ARENA_BYTES) != 0) {
        fprintf(stderr, "hiectl: out of memory\n");
        return CTL_EXIT_FAIL;
    }
    int ex = import_send(im, from, count, arena, &reply);
    if (ex == CTL_EXIT_OK && reply->error == NULL) {
        ex = import_results(im, from, count, reply->mpi_feed_batch);
    } else if (ex == CTL_EXIT_OK &&
               reply->error->code == HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST && count == 1) {
        im->pending.rejected++;
        import_reject(im, im->lines[from], hie_proto_error_code_name(reply->error->code),
            reply->error->message, reply->error->field);
    } else if (ex == CTL_EXIT_OK &&
               reply->error->code == HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST) {
        for (size_t i = 0; i < count && ex == CTL_EXIT_OK; i++) {
            ex = import_send_items(im, from + i, 1); /* depth 1: count is 1 below */
        }
    } else if (ex == CTL_EXIT_OK) {
        fprintf(stderr, "%shiectl: import stopped: the node refused the batch: %s: %s%s%s\n",
            im->tty ? "\r\033[K" : "", hie_proto_error_code_name(reply->error->code),
            reply->error->message, reply->error->field[0] != '\0' ? " field=" : "",
            reply->error->field);
        ex = CTL_EXIT_FAIL;
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* Sends the batch (if any), then records the progress made in the state file. */
static int
import_flush(struct ctl_import *im)
{
    int ex = CTL_EXIT_OK;
    if (im->items_count > 0) {
        ex = import_send_items(im, 0, im->items_count);
    }
    if (ex != CTL_EXIT_OK) {
        return ex;
    }
    im->st.offset = im->end_offset;
    im->st.line = im->end_line;
    counts_add(&im->st.counts, &im->pending);
    memset(&im->pending, 0, sizeof(im->pending));
    int rc = hie_node__import_state_save(im->state_path, &im->st);
    if (rc != 0) {
        fprintf(stderr, "hiectl: write state file %s failed: %s\n", im->state_path,
            hie_strerror(rc));
        return CTL_EXIT_FAIL;
    }
    if (im->rejects != NULL && im->batch_rejects_len > 0) {
        (void)fwrite(im->batch_rejects, 1, im->batch_rejects_len, im->rejects);
        (void)fflush(im->rejects);
    }
    free(im->batch_rejects);
    im->batch_rejects = NULL;
    im->batch_rejects_len = 0;
    im->items_count = 0;
    im->batch_bytes = 0;
    hie_arena_destroy(&im->arena);
    if (hie_arena_create(&im->arena, CTL_IMPORT_ARENA_BYTES) != 0) {
        fprintf(stderr, "hiectl: out of memory\n");
        return CTL_EXIT_FAIL;
    }
    return CTL_EXIT_OK;
}

/* Adds a valid row to the batch, or rejects it when its item alone is too large. */
static void
import_add(struct ctl_import *im, const node_import_row_t *row)
{
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    hie_node__import_item_id(hie_node__import_fingerprint(im->reader), row->line, row->req, id,
        sizeof(id));
    /* Item and id, each with a tag and a length of at most 5 bytes. */
    size_t bytes = hie__v1__mpi_feed_request__get_packed_size(row->req) + strlen(id) + 12u;
    char *id_copy = hie_arena_alloc(im->arena, strlen(id) + 1);
    if (bytes > CTL_IMPORT_ITEM_BYTES_MAX || id_copy == NULL) {
        im->pending.rejected++;
        import_reject(im, row->line, NULL,
            id_copy == NULL ? "out of memory" : "row too large for one request", NULL);
        return;
    }
    HIE_ASSERT(im->items_count < CTL_IMPORT_BATCH_MAX);
    memcpy(id_copy, id, strlen(id) + 1);
    im->items[im->items_count] = row->req;
    im->ids[im->items_count] = id_copy;
    im->lines[im->items_count] = row->line;
    im->items_count++;
    im->batch_bytes += bytes;
}

static void
eta_format(double secs, char *buf, size_t buf_bytes)
{
    unsigned long s = secs > 0 && secs < 1e7 ? (unsigned long)secs : 0;
    snprintf(buf, buf_bytes, "%lu:%02lu:%02lu", s / 3600, (s / 60) % 60, s % 60);
}

/* A progress line: at most every 250 ms on a terminal, every 10 s into a log. */
static void
import_progress(struct ctl_import *im)
{
    uint64_t now = hie_time_mono_ns();
    if (now - im->progress_ns < (im->tty ? CTL_IMPORT_TTY_UPDATE_NS : CTL_IMPORT_LOG_UPDATE_NS)) {
        return;
    }
    im->progress_ns = now;
    double secs = (double)(now - im->start_ns) / 1e9;
    uint64_t size = hie_node__import_size(im->reader);
    uint64_t rows = im->st.counts.rows + im->pending.rows;
    double rate = secs > 0 ? (double)(rows - im->start_rows) / secs : 0;
    double byte_rate = secs > 0 ? (double)(im->end_offset - im->start_offset) / secs : 0;
    double pct = size > 0 ? 100.0 * (double)im->end_offset / (double)size : 100.0;
    char eta[32];
    eta_format(byte_rate > 0 ? (double)(size - im->end_offset) / byte_rate : 0, eta, sizeof(eta));
    if (im->tty) {
        fprintf(stderr, "\r\033[K%5.1f%%  %llu rows  %.0f rows/s  eta %s", pct,
            (unsigned long long)rows, rate, eta);
    } else {
        fprintf(stderr, "hiectl: import progress: line=%llu rows=%llu %.1f%% rate=%.0f/s eta=%s\n",
            (unsigned long long)im->end_line, (unsigned long long)rows, pct, rate, eta);
    }
    (void)fflush(stderr);
}

static bool
import_batch_full(const struct ctl_import *im, uint32_t batch_max)
{
    return im->items_count >= batch_max || im->batch_bytes > CTL_IMPORT_BATCH_BYTES_MAX ||
           hie_arena_used_bytes(im->arena) + NODE_IMPORT_ROW_ARENA_BYTES_MAX >
               CTL_IMPORT_ARENA_BYTES;
}

/* Reads rows to the end of the file, sending full batches. Returns an exit code. */
static int
import_loop(struct ctl_import *im, uint32_t batch_max)
{
    for (;;) { /* bounded by the file: every pass consumes a record or ends */
        node_import_row_t row;
        if (ctl_interrupted) {
            fprintf(stderr, "%shiectl: import interrupted\n", im->tty ? "\r\033[K" : "");
            return CTL_EXIT_FAIL;
        }
        int rc = hie_node__import_next(im->reader, im->arena, &row);
        if (rc == HIE_ENOTFOUND) {
            return import_flush(im);
        }
        if (rc != 0 && rc != HIE_EINVAL) {
            fprintf(stderr, "%shiectl: read %s failed near line %llu: %s\n",
                im->tty ? "\r\033[K" : "", im->file, (unsigned long long)row.line,
                hie_strerror(rc));
            return CTL_EXIT_FAIL;
        }
        im->pending.rows++;
        im->end_offset = row.end_offset;
        im->end_line = row.end_line;
        if (rc == HIE_EINVAL) {
            im->pending.rejected++;
            import_reject(im, row.line, NULL, row.reason, row.field);
        } else {
            import_add(im, &row);
        }
        if (import_batch_full(im, batch_max) && import_flush(im) != CTL_EXIT_OK) {
            return CTL_EXIT_FAIL;
        }
        import_progress(im);
    }
}

/* Applies the state file: continue where it stopped when it is for this very file. */
static int
import_state_apply(struct ctl_import *im, bool restart)
{
    node_import_state_t saved;
    const char *fp = hie_node__import_fingerprint(im->reader);
    int rc = restart ? HIE_ENOTFOUND : hie_node__import_state_load(im->state_path, &saved);
    if (rc == HIE_ENOTFOUND) {
        return CTL_EXIT_OK;
    }
    if (rc != 0) {
        fprintf(stderr, "hiectl: state file %s unreadable (%s): remove it or use --restart\n",
            im->state_path, hie_strerror(rc));
        return CTL_EXIT_FAIL;
    }
    if (saved.version == 1) { /* saved before fingerprints covered the whole file: the rows
                               * it sent carry ids from the old one; go on with it */
        hie_node__import_fingerprint_use(im->reader, 1);
        fp = hie_node__import_fingerprint(im->reader);
        memcpy(im->st.fingerprint, fp, sizeof(im->st.fingerprint));
        im->st.version = 1;
    }
    if (strcmp(saved.fingerprint, fp) != 0) { /* each row's id comes from the fingerprint:
                                                * starting over would send the rows already
                                                * imported again, under new ids */
        fprintf(stderr, "hiectl: state file %s was saved for another file, or for %s before "
            "it changed: rows already imported would be sent again. Use --restart to import "
            "the whole file again, or --state PATH for a separate state file\n",
            im->state_path, im->file);
        return CTL_EXIT_FAIL;
    }
    rc = saved.complete ? 0 : hie_node__import_seek(im->reader, saved.offset, saved.line);
    if (rc != 0) {
        fprintf(stderr, "hiectl: state file %s does not fit %s (%s): use --restart\n",
            im->state_path, im->file, hie_strerror(rc));
        return CTL_EXIT_FAIL;
    }
    im->st = saved;
    if (!saved.complete) {
        fprintf(stderr, "hiectl: resuming %s at line %llu (byte %llu of %llu, %llu rows done) "
            "from %s\n", im->file, (unsigned long long)saved.line,
            (unsigned long long)saved.offset, (unsigned long long)hie_node__import_size(im->reader),
            (unsigned long long)saved.counts.rows, im->state_path);
    }
    return CTL_EXIT_OK;
}

static void
import_summary(const struct ctl_import *im)
{
    const node_import_counts_t *n = &im->st.counts;
    double secs = (double)(hie_time_mono_ns() - im->start_ns) / 1e9;
    uint64_t rows_run = n->rows - im->start_rows;
    if (im->tty) {
        fputs("\r\033[K", stderr);
    }
    printf("import %s: %s rows=%llu imported=%llu new=%llu linked=%llu review=%llu "
        "updated=%llu rejected=%llu elapsed_s=%.1f rate=%.0f/s\n", im->file,
        im->st.complete ? "complete" : "stopped", (unsigned long long)n->rows,
        (unsigned long long)n->imported, (unsigned long long)n->created,
        (unsigned long long)n->linked, (unsigned long long)n->review,
        (unsigned long long)n->updated, (unsigned long long)n->rejected, secs,
        secs > 0 ? (double)rows_run / secs : 0.0);
}

static int
import_rejects_open(struct ctl_import *im, const char *path)
{
    bool resumed = im->st.counts.rows > 0;
    /* never through a link planted beside the import file (it may sit in a shared folder) */
    int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_APPEND, 0600);
    struct stat sb;
    if (fd >= 0 && (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
        sb.st_nlink != 1)) { /* someone else's file, or a hard link to one: left as it was */
        close(fd);
        fd = -1;
        errno = EPERM;
    }
    off_t size = fd >= 0 ? sb.st_size : 0;
    if (fd >= 0 && !resumed && size > 0) { /* a fresh import starts a fresh file */
        size = 0;
        if (ftruncate(fd, 0) != 0) {
            close(fd);
            fd = -1;
        }
    }
    im->rejects = fd >= 0 ? fdopen(fd, resumed ? "a" : "w") : NULL;
    if (im->rejects == NULL && fd >= 0) {
        close(fd);
    }
    if (im->rejects == NULL) {
        fprintf(stderr, "hiectl: cannot open %s: %s\n", path, strerror(errno));
        return CTL_EXIT_FAIL;
    }
    if (size == 0) {
        fputs("line,code,field,reason\n", im->rejects);
    }
    return CTL_EXIT_OK;
}

/* The state file (and its .tmp) and the rejects file must not be the import file: the
 * rejects file is truncated on a fresh import and the state file renamed over. */
static int
import_paths_clash(const struct ctl_import *im, const struct ctl *c)
{
    struct stat in, sb;
    if (stat(im->file, &in) != 0) {
        return CTL_EXIT_OK; /* the reader says why it cannot open it */
    }
    char tmp[sizeof(im->state_path) + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", im->state_path);
    const char *paths[] = {im->state_path, tmp, c->rejects};
    const char *keys[] = {"the state file (--state)", "the state file's .tmp",
        "the rejects file (--rejects)"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (paths[i] != NULL && stat(paths[i], &sb) == 0 && sb.st_dev == in.st_dev &&
            sb.st_ino == in.st_ino) {
            fprintf(stderr, "hiectl: import: %s is %s itself; choose another path\n",
                keys[i], im->file);
            return CTL_EXIT_FAIL;
        }
    }
    return CTL_EXIT_OK;
}

static int
import_prepare(struct ctl_import *im, const struct ctl *c)
{
    char err[512];
    enum node_import_format fmt = NODE_IMPORT_CSV;
    const char *dot = strrchr(im->file, '.');
    if (c->format != NULL) {
        fmt = strcmp(c->format, "ndjson") == 0 ? NODE_IMPORT_NDJSON : NODE_IMPORT_CSV;
    } else if (dot != NULL && (strcmp(dot, ".ndjson") == 0 || strcmp(dot, ".jsonl") == 0)) {
        fmt = NODE_IMPORT_NDJSON;
    }
    int n = snprintf(im->state_path, sizeof(im->state_path), "%s%s",
        c->state != NULL ? c->state : im->file, c->state != NULL ? "" : ".hieimport");
    if (n < 0 || (size_t)n >= sizeof(im->state_path)) { /* never the import file itself */
        fprintf(stderr, "hiectl: import: the state file's path is too long (at most %zu "
            "bytes; see --state)\n", sizeof(im->state_path) - 1);
        return CTL_EXIT_FAIL;
    }
    if (import_paths_clash(im, c) != CTL_EXIT_OK) {
        return CTL_EXIT_FAIL;
    }
    int rc = hie_node__import_open(&im->reader, im->file, fmt, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "hiectl: import %s failed: %s\n", im->file, err);
        return CTL_EXIT_FAIL;
    }
    memcpy(im->st.fingerprint, hie_node__import_fingerprint(im->reader),
        sizeof(im->st.fingerprint));
    im->st.line = 1;
    int ex = import_state_apply(im, c->restart);
    if (ex == CTL_EXIT_OK && c->rejects != NULL) {
        ex = import_rejects_open(im, c->rejects);
    }
    if (ex == CTL_EXIT_OK && hie_arena_create(&im->arena, CTL_IMPORT_ARENA_BYTES) != 0) {
        ex = CTL_EXIT_FAIL;
    }
    return ex;
}

static int
import_finish(struct ctl_import *im, int ex)
{
    if (ex == CTL_EXIT_OK && !im->st.complete) {
        im->st.complete = true;
        int rc = hie_node__import_state_save(im->state_path, &im->st);
        if (rc != 0) {
            fprintf(stderr, "hiectl: write state file %s failed: %s\n", im->state_path,
                hie_strerror(rc));
            ex = CTL_EXIT_FAIL;
        }
    }
    if (im->reader != NULL) {
        import_summary(im);
    }
    if (ex != CTL_EXIT_OK && im->reader != NULL) {
        fprintf(stderr, "hiectl: progress is saved in %s: run the same command to resume\n",
            im->state_path);
    }
    if (im->rejects != NULL && fclose(im->rejects) != 0 && ex == CTL_EXIT_OK) {
        fprintf(stderr, "hiectl: write rejects file failed: %s\n", strerror(errno));
        ex = CTL_EXIT_FAIL;
    }
    ctl_conn_close(&im->conn);
    hie_arena_destroy(&im->arena);
    hie_node__import_destroy(&im->reader);
    free(im->batch_rejects); /* a batch not saved: a resumed run rejects its rows again */
    if (ex == CTL_EXIT_OK && im->st.counts.rejected > 0) {
        ex = CTL_EXIT_REJECTED;
    }
    return ex;
}

static int
ctl_mpi_import(const struct ctl *c, const char *file)
{
    static struct ctl_import im; /* large (batch arrays); hiectl runs one import */
    memset(&im, 0, sizeof(im));
    if (c->format != NULL && strcmp(c->format, "csv") != 0 && strcmp(c->format, "ndjson") != 0) {
        fprintf(stderr, "hiectl: --format must be csv or ndjson\n");
        return CTL_EXIT_FAIL;
    }
    if (c->batch < 1 || c->batch > CTL_IMPORT_BATCH_MAX) {
        fprintf(stderr, "hiectl: --batch must be 1..%u\n", CTL_IMPORT_BATCH_MAX);
        return CTL_EXIT_FAIL;
    }
    im.c = c;
    im.file = file;
    im.start_ns = hie_time_mono_ns();
    im.tty = isatty(STDERR_FILENO) == 1;
    ctl_conn_init(c, &im.conn, c->timeout_ms);
    int ex = import_prepare(&im, c);
    if (ex == CTL_EXIT_OK && im.st.complete) {
        fprintf(stderr, "hiectl: %s was already imported (state file %s); use --restart to "
            "send it again\n", file, im.state_path);
    } else if (ex == CTL_EXIT_OK) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = ctl_on_signal;
        (void)sigaction(SIGINT, &sa, NULL);
        (void)sigaction(SIGTERM, &sa, NULL);
        im.start_ns = hie_time_mono_ns();
        im.progress_ns = im.start_ns; /* the first progress line after one interval */
        im.start_offset = im.st.offset;
        im.start_rows = im.st.counts.rows;
        im.end_offset = im.st.offset;
        im.end_line = im.st.line;
        ex = import_loop(&im, c->batch);
    }
    return import_finish(&im, ex);
}

/* ---- mpi train, stats, review ------------------------------------------------------------ */

/* Training reads the whole index: unless --timeout is given, wait up to ten minutes. */
#define CTL_TRAIN_TIMEOUT_MS 600000

static int
ctl_mpi_train(const struct ctl *c, hie_arena_t *arena)
{
    struct ctl tc = *c;
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__AdminMpiTrain train = HIE__V1__ADMIN_MPI_TRAIN__INIT;
    char id[40];
    snprintf(id, sizeof(id), "ctl-%08x%08x", randombytes_random(), randombytes_random());
    train.sample_pairs = c->sample_pairs;
    req.id = c->id != NULL ? (char *)(uintptr_t)c->id : id;
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_MPI_TRAIN;
    req.mpi_train = &train;
    if (!c->timeout_set) {
        tc.timeout_ms = CTL_TRAIN_TIMEOUT_MS;
    }
    Hie__V1__AdminReply *reply = hie_ctl__call(&tc, &req, arena);
    const Hie__V1__AdminMpiTrainReply *r = reply->mpi_train;
    if (r == NULL || r->model == NULL) {
        fprintf(stderr, "hiectl: unexpected answer\n");
        return 3;
    }
    const Hie__V1__MpiModel *m = r->model;
    printf("model_version=%llu records=%llu candidate_pairs=%llu sample_pairs=%llu em_rounds=%u "
        "prior=%.6g link_probability=%.4f review_probability=%.4f margin_weight=%.3f\n",
        (unsigned long long)m->version, (unsigned long long)r->records,
        (unsigned long long)r->candidate_pairs, (unsigned long long)r->sample_pairs,
        r->em_rounds, m->lambda, m->link_probability,
        m->review_probability, m->margin_weight);
    return 0;
}

static int
ctl_mpi_stats(const struct ctl *c, hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__AdminMpiStats st = HIE__V1__ADMIN_MPI_STATS__INIT;
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_MPI_STATS;
    req.mpi_stats = &st;
    Hie__V1__AdminReply *reply = hie_ctl__call(c, &req, arena);
    const Hie__V1__AdminMpiStatsReply *r = reply->mpi_stats;
    if (r == NULL) {
        fprintf(stderr, "hiectl: unexpected answer\n");
        return 3;
    }
    printf("records=%llu euids=%llu review_open=%llu model_version=%llu capped_blocks=%llu\n",
        (unsigned long long)r->records, (unsigned long long)r->euids,
        (unsigned long long)r->review_open, (unsigned long long)r->model_version,
        (unsigned long long)r->capped_blocks);
    return 0;
}

static const char *
enum_name(const ProtobufCEnumDescriptor *d, int v)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    return ev != NULL ? ev->name : "?";
}

static int
ctl_mpi_history(const struct ctl *c, const char *org, const char *mrn, hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__AdminMpiHistory h = HIE__V1__ADMIN_MPI_HISTORY__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    pid.org_id = (char *)(uintptr_t)org;
    pid.mrn = (char *)(uintptr_t)mrn;
    h.patient = &pid;
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_MPI_HISTORY;
    req.mpi_history = &h;
    Hie__V1__AdminReply *reply = hie_ctl__call(c, &req, arena);
    const Hie__V1__AdminMpiHistoryReply *r = reply->mpi_history;
    if (r == NULL) {
        fprintf(stderr, "hiectl: unexpected answer\n");
        return 3;
    }
    if (r->omitted > 0) {
        printf("omitted=%llu older events not listed (the newest %zu follow)\n",
            (unsigned long long)r->omitted, r->n_events);
    }
    for (size_t i = 0; i < r->n_events; i++) {
        const Hie__V1__LinkEvent *ev = r->events[i];
        const Hie__V1__MatchExplanation *x = ev->explanation;
        printf("time_ms=%lld action=%s outcome=%s origin=%s euid=%s prior_euid=%s by=%s",
            (long long)ev->time_ms, enum_name(&hie__v1__feed_action__descriptor, ev->action),
            enum_name(&hie__v1__feed_outcome__descriptor, ev->outcome),
            enum_name(&hie__v1__link_origin__descriptor, ev->origin), ev->euid,
            ev->prior_euid[0] ? ev->prior_euid : "-", ev->requester);
        if (x != NULL) {
            printf(" candidate=%s weight=%.2f probability=%.4f model=%llu rule=\"%s\"",
                x->candidate_euid, x->weight, x->probability,
                (unsigned long long)x->model_version, x->rule);
        }
        printf("\n");
    }
    return 0;
}

static const char *
review_status_name(Hie__V1__ReviewStatus st)
{
    switch (st) {
    case HIE__V1__REVIEW_STATUS__REVIEW_OPEN: return "open";
    case HIE__V1__REVIEW_STATUS__REVIEW_LINKED: return "linked";
    case HIE__V1__REVIEW_STATUS__REVIEW_KEPT_APART: return "kept-apart";
    default: return "unspecified";
    }
}

static void
print_review_item(const Hie__V1__ReviewItem *it)
{
    const Hie__V1__MatchExplanation *x = it->explanation;
    printf("review=%llu status=%s org=%s mrn=%s record_euid=%s candidate_euid=%s",
        (unsigned long long)it->id, review_status_name(it->status),
        it->record != NULL ? it->record->org_id : "", it->record != NULL ? it->record->mrn : "",
        it->record_euid, it->candidate_euid);
    if (x != NULL) {
        printf(" probability=%.4f weight=%.2f rule=\"%s\"", x->probability, x->weight, x->rule);
    }
    if (it->decided_by[0] != '\0') {
        printf(" decided_by=%s", it->decided_by);
    }
    putchar('\n');
    for (size_t i = 0; x != NULL && i < x->n_fields; i++) {
        printf("    %-12s %-14s %+7.2f\n", x->fields[i]->field, x->fields[i]->level,
            x->fields[i]->weight);
    }
}

static int
ctl_mpi_review_list(const struct ctl *c, hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__ReviewListRequest list = HIE__V1__REVIEW_LIST_REQUEST__INIT;
    list.after_id = c->after;
    list.limit = c->limit;
    list.include_closed = c->all;
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_REVIEW_LIST;
    req.review_list = &list;
    Hie__V1__AdminReply *reply = hie_ctl__call(c, &req, arena);
    const Hie__V1__ReviewListReply *r = reply->review_list;
    if (r == NULL) {
        fprintf(stderr, "hiectl: unexpected answer\n");
        return 3;
    }
    for (size_t i = 0; i < r->n_items; i++) {
        print_review_item(r->items[i]);
    }
    if (r->n_items == 0 && r->next_after_id == 0) {
        printf("no review items\n");
    }
    if (r->next_after_id != 0) {
        printf("more: --after %" PRIu64 "\n", r->next_after_id);
    }
    return 0;
}

static int
ctl_mpi_review_decide(const struct ctl *c, const char *verb, const char *id_text,
    hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__ReviewDecideRequest dec = HIE__V1__REVIEW_DECIDE_REQUEST__INIT;
    char id[40], *end = NULL;
    errno = 0;
    unsigned long long item = strtoull(id_text, &end, 10);
    if (id_text[0] < '0' || id_text[0] > '9' || *end != '\0' || errno != 0 || item == 0) {
        fprintf(stderr, "hiectl: review %s needs a review id (a positive number)\n", verb);
        return 2;
    }
    snprintf(id, sizeof(id), "ctl-%08x%08x", randombytes_random(), randombytes_random());
    dec.id = item;
    dec.link = strcmp(verb, "link") == 0;
    req.id = c->id != NULL ? (char *)(uintptr_t)c->id : id;
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_REVIEW_DECIDE;
    req.review_decide = &dec;
    Hie__V1__AdminReply *reply = hie_ctl__call(c, &req, arena);
    const Hie__V1__ReviewDecideReply *r = reply->review_decide;
    if (r == NULL) {
        fprintf(stderr, "hiectl: unexpected answer\n");
        return 3;
    }
    if (r->item != NULL) {
        print_review_item(r->item);
    }
    printf("euid=%s\n", r->euid);
    return 0;
}

static int
ctl_mpi(const struct ctl *c, int argc, char **argv, hie_arena_t *arena)
{
    if (argc == 2 && strcmp(argv[0], "import") == 0) {
        return ctl_mpi_import(c, argv[1]);
    } else if (argc == 1 && strcmp(argv[0], "train") == 0) {
        return ctl_mpi_train(c, arena);
    } else if (argc == 1 && strcmp(argv[0], "stats") == 0) {
        return ctl_mpi_stats(c, arena);
    } else if (argc == 3 && strcmp(argv[0], "history") == 0) {
        return ctl_mpi_history(c, argv[1], argv[2], arena);
    } else if (argc == 2 && strcmp(argv[0], "review") == 0 && strcmp(argv[1], "list") == 0) {
        return ctl_mpi_review_list(c, arena);
    } else if (argc == 3 && strcmp(argv[0], "review") == 0 &&
               (strcmp(argv[1], "link") == 0 || strcmp(argv[1], "apart") == 0)) {
        return ctl_mpi_review_decide(c, argv[1], argv[2], arena);
    }
    hie_ctl__usage(stderr);
    return 2;
}

bool
hie_ctl__parse_number(const char *s, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* The options of the mpi commands (long options only). */
static void
parse_mpi_opt(struct ctl *c, int ch, const char *arg)
{
    uint64_t v = 0;
    switch (ch) {
    case 'F': c->format = arg; break;
    case 'B':
        c->bad_number |= !hie_ctl__parse_number(arg, CTL_IMPORT_BATCH_MAX, &v);
        c->batch = (uint32_t)v;
        break;
    case 'S': c->state = arg; break;
    case 'X': c->restart = true; break;
    case 'J': c->rejects = arg; break;
    case 'A': c->bad_number |= !hie_ctl__parse_number(arg, UINT64_MAX, &c->after); break;
    case 'L':
        c->bad_number |= !hie_ctl__parse_number(arg, UINT32_MAX, &v);
        c->limit = (uint32_t)v;
        break;
    case 'a': c->all = true; break;
    case 'P': c->bad_number |= !hie_ctl__parse_number(arg, UINT64_MAX, &c->sample_pairs); break;
    default: HIE_ASSERT(false); /* every mpi option has a case */
    }
}

static int
parse_opts(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'}, {"id", required_argument, NULL, 'i'},
        {"name", required_argument, NULL, 'n'}, {"roles", required_argument, NULL, 'r'},
        {"reason", required_argument, NULL, 'R'}, {"data-dir", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {"format", required_argument, NULL, 'F'}, {"batch", required_argument, NULL, 'B'},
        {"state", required_argument, NULL, 'S'}, {"restart", no_argument, NULL, 'X'},
        {"rejects", required_argument, NULL, 'J'}, {"after", required_argument, NULL, 'A'},
        {"limit", required_argument, NULL, 'L'}, {"all", no_argument, NULL, 'a'},
        {"sample-pairs", required_argument, NULL, 'P'}, {"vkey", required_argument, NULL, 'V'},
        {"checkpoint", required_argument, NULL, 'K'}, {"org", required_argument, NULL, 'O'},
        {"mrn", required_argument, NULL, 'M'}, {"file", required_argument, NULL, 'I'},
        {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    int ch;
    uint64_t v = 0;
    while ((ch = getopt_long(argc, argv, "+s:c:i:n:r:R:d:t:h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': c->socket = optarg; break;
        case 'c': c->config = optarg; break;
        case 'i': c->id = optarg; break;
        case 'n': c->name = optarg; break;
        case 'r': c->roles = optarg; break;
        case 'R': c->reason = optarg; break;
        case 'd': c->data_dir = optarg; break;
        case 'V': c->vkey = optarg; break;
        case 'K': c->checkpoint = optarg; break;
        case 'O': c->org = optarg; break;
        case 'M': c->mrn = optarg; break;
        case 'I': c->file = optarg; break;
        case 'j': c->json = true; break;
        case 't':
            c->timeout_set = true;
            if (!hie_ctl__parse_number(optarg, CTL_TIMEOUT_ARG_MAX, &v) || v == 0) {
                fprintf(stderr, "hiectl: --timeout takes milliseconds, 1..%u\n",
                    CTL_TIMEOUT_ARG_MAX);
                c->bad_number = true;
            }
            c->timeout_ms = (int)v;
            break;
        case 'h': hie_ctl__usage(stdout); exit(0);
        case 'F': case 'B': case 'S': case 'X': case 'J': case 'A': case 'L': case 'a': case 'P':
            parse_mpi_opt(c, ch, optarg);
            break;
        default: return 2;
        }
    }
    return c->bad_number ? 2 : 0;
}

/* backup DIR reads the node's files: the config says where they are. */
static int
ctl_backup(const struct ctl *c, int argc, char **argv)
{
    static node_config_t cfg;
    char err[1024];
    if (argc != 1) {
        hie_ctl__usage(stderr);
        return 2;
    }
    if (c->config == NULL) {
        fprintf(stderr, "hiectl: backup needs --config (the node's config file)\n");
        return 2;
    }
    if (hie_node__config_load(&cfg, c->config, err, sizeof(err)) != 0) {
        fprintf(stderr, "hiectl: %s\n", err);
        return 2;
    }
    return hie_ctl__backup(&cfg, argv[0]);
}

/* audit verify / vkey read the node's files: the config says where they are. */
static int
ctl_audit(const struct ctl *c, int argc, char **argv)
{
    static node_config_t cfg;
    char err[1024];
    if (argc != 1 || (strcmp(argv[0], "verify") != 0 && strcmp(argv[0], "vkey") != 0)) {
        hie_ctl__usage(stderr);
        return 2;
    }
    if (c->config == NULL) {
        fprintf(stderr, "hiectl: audit %s needs --config (the node's config file)\n", argv[0]);
        return 2;
    }
    if (hie_node__config_load(&cfg, c->config, err, sizeof(err)) != 0) {
        fprintf(stderr, "hiectl: %s\n", err);
        return 2;
    }
    if (c->data_dir != NULL) { /* a backup's copy (hiectl backup DIR), not the node's own */
        if (strlen(c->data_dir) >= sizeof(cfg.data_dir)) {
            fprintf(stderr, "hiectl: --data-dir: path too long\n");
            return 2;
        }
        if (strcmp(argv[0], "verify") == 0 && c->vkey == NULL) {
            /* the key that checks a copy is never one found in it: a forged copy with its
             * own key beside it (or the node's, copied in) verified */
            fprintf(stderr, "hiectl: audit verify --data-dir needs --vkey: the node's verifier "
                "key, from hiectl audit vkey on the node (a key file in the copy is never "
                "used)\n");
            return 2;
        }
        snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", c->data_dir);
    }
    if (strcmp(argv[0], "vkey") == 0) {
        return hie_node__ctl_audit_vkey(&cfg);
    }
    return hie_node__ctl_audit_verify(&cfg, c->vkey, c->checkpoint);
}

int
main(int argc, char **argv)
{
    struct ctl c = {.timeout_ms = CTL_TIMEOUT_MS, .batch = CTL_IMPORT_BATCH_DEFAULT};
    /* options may come before or after the command words: collect both passes */
    if (parse_opts(&c, argc, argv) != 0 || optind >= argc) {
        hie_ctl__usage(stderr);
        return 2;
    }
    int cmd_idx = optind;
    int n_words = 0;
    char *words[4];
    for (int i = cmd_idx; i < argc && n_words < 4;) {
        words[n_words++] = argv[i];
        optind = i + 1;
        if (parse_opts(&c, argc, argv) != 0) {
            hie_ctl__usage(stderr);
            return 2;
        }
        i = optind;
    }
    if (optind < argc) { /* a fifth word: never dropped in silence ("redrive acme 12 13") */
        fprintf(stderr, "hiectl: unexpected argument \"%s\"\n", argv[optind]);
        hie_ctl__usage(stderr);
        return 2;
    }
    if (sodium_init() < 0) {
        return 3;
    }
    hie_arena_t *arena = NULL;
    if (hie_arena_create(&arena, CTL_REPLY_ARENA_BYTES) != 0) {
        return 3;
    }
    int rc = 2;
    if (strcmp(words[0], "init") == 0) {
        rc = ctl_init(&c);
    } else if (strcmp(words[0], "status") == 0) {
        rc = ctl_status(&c, arena);
    } else if (strcmp(words[0], "org") == 0) {
        rc = ctl_org(&c, n_words - 1, words + 1, arena);
    } else if (strcmp(words[0], "reload") == 0) {
        rc = ctl_reload(&c, arena);
    } else if (strcmp(words[0], "mpi") == 0) {
        rc = ctl_mpi(&c, n_words - 1, words + 1, arena);
    } else if (strcmp(words[0], "delivery") == 0) {
        rc = hie_ctl__delivery(&c, n_words - 1, words + 1, arena);
    } else if (strcmp(words[0], "repository") == 0) {
        rc = hie_ctl__repository(&c, n_words - 1, words + 1, arena);
    } else if (strcmp(words[0], "subscription") == 0) {
        rc = hie_ctl__subscription(&c, n_words - 1, words + 1, arena);
    } else if (strcmp(words[0], "audit") == 0) {
        rc = ctl_audit(&c, n_words - 1, words + 1);
    } else if (strcmp(words[0], "backup") == 0) {
        rc = ctl_backup(&c, n_words - 1, words + 1);
    } else if (strcmp(words[0], "consent") == 0) {
        rc = hie_ctl__consent(&c, n_words - 1, words + 1, arena);
    } else {
        hie_ctl__usage(stderr);
    }
    hie_arena_destroy(&arena);
    return rc;
}
