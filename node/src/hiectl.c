/*
 * hiectl.c - the operator's command-line tool.
 *
 * Talks to the local node over its ipc:// admin socket (REQ/REP, protobuf AdminRequest), except
 * `init`, which prepares a data directory offline. The socket path comes from --socket, from
 * the node's config (--config), from HIE_ADMIN_SOCKET, or defaults to
 * /var/lib/hiebroker/admin.sock.
 *
 * Exit codes: 0 ok, 1 the node refused (error printed), 2 usage, 3 cannot reach the node.
 */
#include "node_int.h"

#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#define CTL_TIMEOUT_MS 15000
#define CTL_REPLY_ARENA_BYTES (64u * 1024u * 1024u)

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
};

static void
usage(FILE *f)
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
        "  reload                           re-read certificates, key and CRL\n\n"
        "roles: hospital clinic lab payer auditor operator node\n"
        "--id makes a command idempotent: repeating it returns the first result.\n");
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

/* Sends req and returns the decoded reply in arena, or exits 3 when the node is unreachable. */
static Hie__V1__AdminReply *
ctl_call(const struct ctl *c, Hie__V1__AdminRequest *req, hie_arena_t *arena)
{
    char pathbuf[NODE_PATH_MAX], ep[NODE_PATH_MAX + 8];
    const char *path = ctl_socket_path(c, pathbuf, sizeof(pathbuf));
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "hiectl: cannot reach node: %s: %s\n", path, strerror(errno));
        exit(3);
    }
    snprintf(ep, sizeof(ep), "ipc://%s", path);
    void *zctx = zmq_ctx_new();
    void *s = zmq_socket(zctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &c->timeout_ms, sizeof(c->timeout_ms));
    uint8_t *buf = NULL;
    size_t len = 0;
    if (hie_proto_pack(&req->base, HIE_ADMIN_MSG_BYTES_MAX, &buf, &len) != 0 ||
        zmq_connect(s, ep) != 0 || zmq_send(s, buf, len, 0) < 0) {
        fprintf(stderr, "hiectl: cannot send to node at %s: %s\n", path, zmq_strerror(errno));
        exit(3);
    }
    hie_mem_free(buf, len);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, s, 0) < 0) {
        fprintf(stderr, "hiectl: no answer from node at %s within %d ms\n", path, c->timeout_ms);
        exit(3);
    }
    ProtobufCMessage *m = NULL;
    int rc = hie_proto_unpack(&hie__v1__admin_reply__descriptor,
        hie_span(zmq_msg_data(&msg), zmq_msg_size(&msg)), arena, &m);
    zmq_msg_close(&msg);
    zmq_close(s);
    zmq_ctx_term(zctx);
    if (rc != 0) {
        fprintf(stderr, "hiectl: malformed answer from node\n");
        exit(3);
    }
    Hie__V1__AdminReply *reply = (Hie__V1__AdminReply *)m;
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

static int
ctl_command(const struct ctl *c, hie_command_t *cmd, hie_arena_t *arena)
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
    Hie__V1__AdminReply *reply = ctl_call(c, &req, arena);
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
    printf("applied index=%lu id=%s\n", r->index, req.id);
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
        usage(stderr);
        return 2;
    }
    return ctl_command(c, &cmd, arena);
}

static int
ctl_org(const struct ctl *c, int argc, char **argv, hie_arena_t *arena)
{
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    if (strcmp(argv[0], "list") == 0) {
        Hie__V1__AdminOrgList list = HIE__V1__ADMIN_ORG_LIST__INIT;
        req.body_case = HIE__V1__ADMIN_REQUEST__BODY_ORG_LIST;
        req.org_list = &list;
        Hie__V1__AdminReply *reply = ctl_call(c, &req, arena);
        for (size_t i = 0; reply->org_list != NULL && i < reply->org_list->n_orgs; i++) {
            print_org(reply->org_list->orgs[i]);
        }
        return 0;
    }
    if (argc != 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[0], "show") == 0) {
        Hie__V1__AdminOrgGet get = HIE__V1__ADMIN_ORG_GET__INIT;
        get.org_id = argv[1];
        req.body_case = HIE__V1__ADMIN_REQUEST__BODY_ORG_GET;
        req.org_get = &get;
        Hie__V1__AdminReply *reply = ctl_call(c, &req, arena);
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
    Hie__V1__AdminReply *reply = ctl_call(c, &req, arena);
    Hie__V1__AdminStatusReply *s = reply->status;
    if (s == NULL) {
        return 3;
    }
    printf("node=%s version=%s listen=%s applied_index=%lu log_index=%lu connections=%lu "
        "uptime_s=%lu\n", s->node_id, s->version, s->listen, s->applied_index, s->log_index,
        s->connections, s->uptime_ms / 1000u);
    return 0;
}

static int
ctl_reload(const struct ctl *c, hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__AdminReload r = HIE__V1__ADMIN_RELOAD__INIT;
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_RELOAD;
    req.reload = &r;
    (void)ctl_call(c, &req, arena);
    printf("reloaded certificates, key and crl\n");
    return 0;
}

static int
ctl_init(const struct ctl *c)
{
    if (c->data_dir == NULL) {
        fprintf(stderr, "hiectl: init needs --data-dir DIR\n");
        return 2;
    }
    if (mkdir(c->data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "hiectl: cannot create %s: %s\n", c->data_dir, strerror(errno));
        return 1;
    }
    if (chmod(c->data_dir, 0700) != 0) {
        fprintf(stderr, "hiectl: cannot chmod %s: %s\n", c->data_dir, strerror(errno));
        return 1;
    }
    node_state_t *st = NULL;
    hie_cluster_log_t *log = NULL;
    char logdir[NODE_PATH_MAX + 8];
    snprintf(logdir, sizeof(logdir), "%s/log", c->data_dir);
    int rc = hie_node__state_open(&st, c->data_dir, HIE_LMDB_MAP_BYTES_DEFAULT, "init", NULL);
    if (rc == 0) {
        hie_cluster_log_config_t lcfg = {logdir, NULL, NODE_EP_LOG, HIE_LMDB_MAP_BYTES_DEFAULT};
        hie_cluster_fsm_t fsm = hie_node__state_fsm(st);
        rc = hie_cluster_log_open(&log, &lcfg, &fsm);
    }
    uint64_t applied = 0;
    if (rc == 0) {
        rc = hie_node__state_applied_index(st, &applied);
    }
    hie_cluster_log_destroy(&log);
    hie_node__state_close(&st);
    if (rc != 0) {
        fprintf(stderr, "hiectl: init %s failed: %s\n", c->data_dir, hie_strerror(rc));
        return 1;
    }
    printf("data directory %s ready (applied_index=%lu)\n", c->data_dir, applied);
    return 0;
}

static int
parse_opts(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'}, {"id", required_argument, NULL, 'i'},
        {"name", required_argument, NULL, 'n'}, {"roles", required_argument, NULL, 'r'},
        {"reason", required_argument, NULL, 'R'}, {"data-dir", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "+s:c:i:n:r:R:d:t:h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': c->socket = optarg; break;
        case 'c': c->config = optarg; break;
        case 'i': c->id = optarg; break;
        case 'n': c->name = optarg; break;
        case 'r': c->roles = optarg; break;
        case 'R': c->reason = optarg; break;
        case 'd': c->data_dir = optarg; break;
        case 't': c->timeout_ms = atoi(optarg); break;
        case 'h': usage(stdout); exit(0);
        default: return 2;
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct ctl c = {.timeout_ms = CTL_TIMEOUT_MS};
    /* options may come before or after the command words: collect both passes */
    if (parse_opts(&c, argc, argv) != 0 || optind >= argc) {
        usage(stderr);
        return 2;
    }
    int cmd_idx = optind;
    int n_words = 0;
    char *words[4];
    for (int i = cmd_idx; i < argc && n_words < 4;) {
        words[n_words++] = argv[i];
        optind = i + 1;
        if (parse_opts(&c, argc, argv) != 0) {
            usage(stderr);
            return 2;
        }
        i = optind;
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
    } else {
        usage(stderr);
    }
    hie_arena_destroy(&arena);
    return rc;
}
