/*
 * cli_push.c - `hie push` and `hie receive` (issue 5): send one document to another member,
 * and take this organization's deliveries from its durable queue.
 *
 * push: reads the file (at most HIE_PUSH_CONTENT_BYTES_MAX, checked before anything is sent),
 * names the patient by this certificate's organization and --mrn, and prints the broker's
 * message id once the message is durable in the recipient's queue (--to), or in the HIE's
 * repository (--repository: an empty recipient). The envelope id (--id) makes a repeated push
 * a no-op at the broker.
 *
 * receive: one connection asks for deliveries (ReceiveRequest); the node then sends Delivery
 * envelopes on it, unsolicited, at most `window` unacknowledged at a time, possibly ahead of
 * the replies we wait for (those are kept in a read-ahead inbox). Each delivery is written to
 * --out-dir (fsync'd, then renamed into place), then printed, and only then acknowledged:
 * delivery is at least once, and a crash between the two shows the message again next time.
 * Acknowledgements are batched (RX_ACK_BATCH_MAX seqs or RX_ACK_INTERVAL_NS) but never held
 * across a wait that could end the run: the client library closes the connection when a wait
 * times out, so pending acknowledgements are flushed before any wait that is not for a
 * delivery known to be on its way (ReceiveReply.queued not yet reached, window not full).
 * A redelivered message id already printed in this run is acknowledged without printing.
 * A delivery whose content type is CLI_NOTIFICATION_CONTENT_TYPE (an ADT notification of a
 * subscription) is decoded and printed by cli_adt.c; `hie notifications` is this same command.
 *
 * Signals (--follow runs until SIGINT or SIGTERM): the handler only sets a flag, except during
 * an idle wait, when everything printed has been acknowledged and stdout flushed: it then ends
 * the process at once (_exit), since the client library's wait restarts after EINTR.
 *
 * Patient data: documents go to the files and lines the user asked for, never to error lines.
 * Caller: the command table in hie_cli.c.
 */
#include "cli_int.h"

#include "hie/consent.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The node's own limits on a document (node/src/push.c): refused here before sending. */
#define PUSH_LABELS_MAX 16u
/* receive: stop without --follow when nothing arrived for this long. */
#define RX_IDLE_MS 2000u
/* receive --follow: one wait; below the node's idle timeout default (300 s). */
#define RX_FOLLOW_WAIT_MS 240000u
#define RX_ACK_BATCH_MAX 64u
#define RX_ACK_INTERVAL_NS (200ull * 1000000ull)
/* An acknowledgement the node could not commit (UNAVAILABLE) is sent again this often. */
#define RX_ACK_TRIES 3u
/* Deliveries read ahead while waiting for a reply: the node sends at most a window of them. */
#define RX_INBOX_MAX HIE_DELIVERY_WINDOW_MAX
/* Message ids printed in this run, remembered to drop redeliveries (oldest forgotten first). */
#define RX_SEEN_MAX 4096u
#define RX_SEEN_HASH_BYTES 16u
#define RX_COUNT_MAX 100000000u
/* --follow: consecutive failed reconnects before giving up; backoff doubles up to the max. */
#define RX_RECONNECTS_MAX 60u
#define RX_BACKOFF_MS_MAX 30000u
/* A file name in --out-dir: seq, a sanitised message id and an extension. */
#define RX_NAME_BYTES 200u
_Static_assert(RX_ACK_BATCH_MAX <= HIE_DELIVERY_ACK_SEQS_MAX, "an ack batch fits one request");

/* ---- push -------------------------------------------------------------------------------- */

struct push_args {
    bool repository;            /* --repository: no recipient */
    const char *to, *mrn, *file, *content_type, *title, *class_code, *type_code, *date;
    char *labels[PUSH_LABELS_MAX];
    size_t labels_count;
    int64_t date_ms;
};

static int
push_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
    struct push_args *a)
{
    static const struct option opts[] = {{"to", required_argument, NULL, 't'},
        {"repository", no_argument, NULL, 'R'}, {"mrn", required_argument, NULL, 'm'},
        {"file", required_argument, NULL, 'f'},
        {"content-type", required_argument, NULL, 'c'}, {"title", required_argument, NULL, 'T'},
        {"class", required_argument, NULL, 'C'}, {"type-code", required_argument, NULL, 'y'},
        {"label", required_argument, NULL, 'l'}, {"date", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt;
    memset(a, 0, sizeof(*a));
    optind = 0; /* glibc: start over on the subcommand's argv */
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 't': a->to = optarg; break;
        case 'R': a->repository = true; break;
        case 'm': a->mrn = optarg; break;
        case 'f': a->file = optarg; break;
        case 'c': a->content_type = optarg; break;
        case 'T': a->title = optarg; break;
        case 'C': a->class_code = optarg; break;
        case 'y': a->type_code = optarg; break;
        case 'd': a->date = optarg; break;
        case 'j': cli->json = true; break;
        case 'l':
            if (a->labels_count == PUSH_LABELS_MAX) {
                return hie_cli__usage_error("at most %u --label", PUSH_LABELS_MAX);
            }
            a->labels[a->labels_count++] = optarg;
            break;
        case 'h':
            printf("usage: hie %s %s\n%s\n", cmd->name, cmd->args, cmd->summary);
            return CLI_EXIT_OK;
        default: return hie_cli__getopt_error(opt, argv);
        }
    }
    if (optind < argc) {
        return hie_cli__usage_error("push takes no arguments (the document is --file FILE)");
    }
    if ((a->to == NULL) == !a->repository || a->mrn == NULL || a->file == NULL) {
        return hie_cli__usage_error("push needs --to ORG (or --repository) --mrn MRN "
                                    "--file FILE");
    }
    return CLI_CONTINUE;
}

/* Codes the broker would refuse, refused here first (no value is echoed). */
static int
push_check(struct push_args *a)
{
    if (!a->repository && !hie_proto_org_id_valid(a->to, strlen(a->to))) {
        return hie_cli__usage_error("--to is not an organization id");
    }
    for (size_t i = 0; i < a->labels_count; i++) {
        enum hie_consent_label l;
        if (hie_consent_label_parse(a->labels[i], strlen(a->labels[i]), &l) != 0) {
            return hie_cli__usage_error("unknown --label (U L M N R V ETH ETHUD OPIOIDUD SUD "
                                        "PSY HIV STD SDV SEX)");
        }
    }
    enum hie_consent_class c;
    if (a->class_code != NULL &&
        hie_consent_class_parse(a->class_code, strlen(a->class_code), &c) != 0) {
        return hie_cli__usage_error("unknown --class (summary, discharge-summary, lab-report, "
                                    "imaging-report, progress-note, ...)");
    }
    if (a->date != NULL && hie_cli__time_parse(a->date, &a->date_ms) != 0) {
        return hie_cli__usage_error("--date is not a UTC date (YYYY-MM-DD) or date-time "
                                    "(YYYY-MM-DDThh:mm:ssZ)");
    }
    return CLI_CONTINUE;
}

/* The MIME type for a file name: --content-type when given, else from the extension. */
static const char *
push_content_type(const struct push_args *a)
{
    static const struct {
        const char *ext, *type;
    } types[] = {{".json", "application/fhir+json"}, {".xml", "application/xml"},
        {".hl7", "x-application/hl7-v2+er7"}};
    const char *dot = strrchr(a->file, '.'), *slash = strrchr(a->file, '/');
    if (a->content_type != NULL) {
        return a->content_type;
    }
    for (size_t i = 0; dot != NULL && (slash == NULL || dot > slash) &&
         i < HIE_ARRAY_LEN(types); i++) {
        if (strcasecmp(dot, types[i].ext) == 0) {
            return types[i].type;
        }
    }
    return "application/octet-stream";
}

static int
push_send(struct cli *cli, const struct push_args *a, const char *org, const char *content,
    size_t len)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    hie_envelope_t req = HIE__V1__ENVELOPE__INIT;
    Hie__V1__PushRequest body = HIE__V1__PUSH_REQUEST__INIT;
    Hie__V1__Document d = HIE__V1__DOCUMENT__INIT;
    Hie__V1__PatientId pid = HIE__V1__PATIENT_ID__INIT;
    pid.org_id = (char *)(uintptr_t)org; /* protobuf-c's fields are not const */
    pid.mrn = (char *)(uintptr_t)a->mrn;
    d.patient = &pid;
    d.content_type = (char *)(uintptr_t)push_content_type(a);
    d.content = (ProtobufCBinaryData){len, (uint8_t *)(uintptr_t)content};
    d.title = (char *)(uintptr_t)(a->title != NULL ? a->title : "");
    d.class_code = (char *)(uintptr_t)(a->class_code != NULL ? a->class_code : "");
    d.type_code = (char *)(uintptr_t)(a->type_code != NULL ? a->type_code : "");
    d.date_ms = a->date_ms;
    d.n_security_labels = a->labels_count;
    d.security_labels = (char **)(uintptr_t)a->labels;
    body.recipient_org = (char *)(uintptr_t)(a->repository ? "" : a->to); /* "": repository */
    body.document = &d;
    req.body_case = HIE__V1__ENVELOPE__BODY_PUSH;
    req.push = &body;
    int ex = hie_cli__exchange(cli, "push", &req, 0, HIE__V1__ENVELOPE__BODY_PUSH_REPLY, &arena,
        &reply);
    if (ex == CLI_EXIT_OK && cli->json) {
        ex = hie_cli__json_emit(json_pack("{s:o}", "message_id",
            hie_cli__jstr(reply->push_reply->message_id)));
    } else if (ex == CLI_EXIT_OK) {
        fputs("message_id=", stdout);
        hie_cli__fputs_safe(stdout, reply->push_reply->message_id);
        fputc('\n', stdout);
    }
    hie_arena_destroy(&arena);
    return ex;
}

int
hie_cli__cmd_push(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct push_args a;
    char org[HIE_ORG_ID_BYTES_MAX + 1];
    char *content = NULL;
    size_t len = 0;
    int ex = push_parse(cli, cmd, argc, argv, &a);
    ex = ex == CLI_CONTINUE ? push_check(&a) : ex;
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    int rc = hie_cli__file_read(a.file, HIE_PUSH_CONTENT_BYTES_MAX, &content, &len);
    if (rc != 0) {
        fprintf(stderr, "hie: push: cannot read %s: %s\n", a.file, rc == HIE_ELIMIT
            ? "larger than the push limit of 1 MiB (1048576 bytes)" : hie_strerror(rc));
        return CLI_EXIT_USAGE;
    }
    HIE_ASSERT(len <= HIE_PUSH_CONTENT_BYTES_MAX);
    hie_cli__purpose_default(cli, HIE__V1__PURPOSE_OF_USE__PURPOSE_TREATMENT);
    ex = hie_cli__whoami_org(cli, org, sizeof(org)); /* the patient is one of ours */
    if (ex == CLI_EXIT_OK) {
        ex = push_send(cli, &a, org, content, len);
    }
    sodium_memzero(content, len); /* the document is PHI */
    free(content);
    return ex;
}

/* ---- receive: state ---------------------------------------------------------------------- */

struct rx_opts {
    uint32_t window;            /* 0: the node's default */
    uint32_t count;             /* 0: no limit */
    bool follow;
    bool no_ack;
    bool discard;               /* --discard-content: acknowledge documents not kept */
    const char *out_dir;
};

enum rx_end { RX_GOING = 0, RX_DONE, RX_LOST };

struct rx_item {
    hie_arena_t *arena;
    hie_envelope_t *env;
};

struct rx {
    struct cli *cli;
    struct rx_opts o;
    int dir_fd;                                 /* --out-dir, or -1 */
    bool dir_dirty;                             /* files renamed since the last dir fsync */
    enum rx_end end;
    bool quiet;                                 /* RX_LOST only because a wait timed out */
    /* this connection, as the node counts it */
    uint64_t queued, got, unacked;
    uint32_t window;
    uint64_t last_ns;                           /* session start or last delivery printed */
    struct rx_item inbox[RX_INBOX_MAX];
    size_t inbox_head, inbox_count;
    /* acknowledgements not sent yet */
    uint64_t pending[RX_ACK_BATCH_MAX];
    size_t pending_count;
    uint64_t pending_since_ns;
    /* this run */
    uint64_t printed;
    uint64_t not_kept;                          /* documents shown, not kept, not acknowledged */
    uint8_t seen[RX_SEEN_MAX][RX_SEEN_HASH_BYTES];
    size_t seen_count, seen_next;
};

static volatile sig_atomic_t rx_stop;
static volatile sig_atomic_t rx_idle;

static void
rx_on_signal(int sig)
{
    (void)sig;
    rx_stop = 1;
    if (rx_idle) {
        _exit(CLI_EXIT_OK); /* idle: all printed is acknowledged and flushed (see the top) */
    }
}

static bool
rx_inbox_pop(struct rx *rx, hie_arena_t **arena, hie_envelope_t **env)
{
    if (rx->inbox_count == 0) {
        return false;
    }
    struct rx_item *it = &rx->inbox[rx->inbox_head];
    *arena = it->arena;
    *env = it->env;
    it->arena = NULL;
    rx->inbox_head = (rx->inbox_head + 1) % RX_INBOX_MAX;
    rx->inbox_count--;
    return true;
}

static void
rx_inbox_clear(struct rx *rx)
{
    hie_arena_t *arena = NULL;
    hie_envelope_t *env = NULL;
    while (rx_inbox_pop(rx, &arena, &env)) {
        hie_arena_destroy(&arena);
    }
    HIE_ASSERT(rx->inbox_count == 0);
}

/* True when id was printed before in this run; else remembers it. */
static bool
rx_seen(struct rx *rx, const char *id)
{
    uint8_t h[RX_SEEN_HASH_BYTES];
    crypto_generichash(h, sizeof(h), (const uint8_t *)id, strlen(id), NULL, 0);
    for (size_t i = 0; i < rx->seen_count; i++) {
        if (memcmp(rx->seen[i], h, sizeof(h)) == 0) {
            return true;
        }
    }
    memcpy(rx->seen[rx->seen_next], h, sizeof(h));
    rx->seen_next = (rx->seen_next + 1) % RX_SEEN_MAX;
    rx->seen_count += rx->seen_count < RX_SEEN_MAX ? 1u : 0u;
    return false;
}

/* ---- receive: the connection ------------------------------------------------------------- */

/* Reads one envelope into a new arena. [out] *arena and *env on 0. Returns a client rc. */
static int
rx_read(struct rx *rx, uint32_t timeout_ms, hie_arena_t **arena, hie_envelope_t **env)
{
    *env = NULL;
    if (hie_cli__arena_create(rx->cli, arena) != CLI_EXIT_OK) {
        return HIE_ENOMEM;
    }
    int rc = hie_client_recv(rx->cli->client, timeout_ms, *arena, env);
    if (rc != 0) {
        hie_arena_destroy(arena);
    }
    return rc;
}

/* Whether the inbox holds env's delivery (the same seq) already. */
static bool
rx_inbox_has(const struct rx *rx, const hie_envelope_t *env)
{
    const Hie__V1__Delivery *d = env->delivery;
    for (size_t i = 0; d != NULL && i < rx->inbox_count; i++) {
        const hie_envelope_t *e = rx->inbox[(rx->inbox_head + i) % RX_INBOX_MAX].env;
        if (e->delivery != NULL && e->delivery->seq == d->seq) {
            return true;
        }
    }
    return false;
}

/* Reads until the reply to id (or an Error with no correlation id); deliveries read on the way
 * go to the inbox. [out] *arena and *reply on 0. Returns a client rc (HIE_EPROTO: too many). */
static int
rx_await(struct rx *rx, const char *id, hie_arena_t **arena, hie_envelope_t **reply)
{
    for (size_t read = 0; read <= RX_INBOX_MAX; read++) {
        hie_envelope_t *env = NULL;
        int rc = rx_read(rx, rx->cli->timeout_ms, arena, &env);
        if (rc != 0) {
            return rc;
        }
        if (env->body_case != HIE__V1__ENVELOPE__BODY_DELIVERY) {
            bool unread = env->correlation_id[0] == '\0'; /* the node could not read ours */
            bool mine = strcmp(env->correlation_id, id) == 0 ||
                (unread && env->body_case == HIE__V1__ENVELOPE__BODY_ERROR);
            if (mine) {
                *reply = env;
                return 0;
            }
        } else if (rx_inbox_has(rx, env)) {
            hie_arena_destroy(arena); /* sent again (its ack timed out): one copy is enough */
            continue;
        } else if (rx->inbox_count < RX_INBOX_MAX && rx->inbox_count < rx->window) {
            /* within the window we asked for (a node past it could fill 256 x 4 MiB) */
            size_t tail = (rx->inbox_head + rx->inbox_count++) % RX_INBOX_MAX;
            rx->inbox[tail] = (struct rx_item){*arena, env};
            *arena = NULL;
            continue;
        } else {
            hie_arena_destroy(arena);
            return HIE_EPROTO; /* more deliveries than our window */
        }
        hie_arena_destroy(arena); /* a late reply to an earlier request */
    }
    return HIE_EPROTO;
}

/* Sends body (of kind body_case) and waits for its reply of kind expect. Receive and
 * acknowledgement carry no purpose of use. Returns an exit code; CLI_EXIT_CONN with rx->end set
 * to RX_LOST when the connection failed (nothing printed). [out] *arena owns *reply on OK. */
static int
rx_call(struct rx *rx, Hie__V1__Envelope__BodyCase body_case, void *body,
    Hie__V1__Envelope__BodyCase expect, hie_arena_t **arena, hie_envelope_t **reply)
{
    char id[HIE_PROTO_ID_BYTES_MAX + 1];
    hie_envelope_t req;
    *arena = NULL;
    int ex = hie_cli__request_init(rx->cli, &req, HIE_CLI_ID_RANDOM, id, sizeof(id));
    if (ex != CLI_CONTINUE) {
        return ex;
    }
    req.purpose = HIE__V1__PURPOSE_OF_USE__PURPOSE_UNSPECIFIED;
    req.body_case = body_case;
    req.ping = body; /* every body of the oneof shares this storage */
    int rc = hie_client_send(rx->cli->client, &req);
    rc = rc != 0 ? rc : rx_await(rx, id, arena, reply);
    if (rc != 0) {
        rx->end = RX_LOST;
        return CLI_EXIT_CONN;
    }
    if ((*reply)->body_case == HIE__V1__ENVELOPE__BODY_ERROR) {
        return CLI_EXIT_REPLY; /* the caller reports it */
    }
    if ((*reply)->body_case != expect) {
        fprintf(stderr, "hie: receive failed: unexpected reply kind %s\n",
            hie_proto_body_name(*reply));
        return CLI_EXIT_CONN;
    }
    return CLI_EXIT_OK;
}

static int rx_flush(struct rx *rx);

/* Asks for deliveries on this connection (connecting first). Returns an exit code. */
static int
rx_start(struct rx *rx)
{
    Hie__V1__ReceiveRequest body = HIE__V1__RECEIVE_REQUEST__INIT;
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    HIE_ASSERT(rx->inbox_count == 0);
    body.window = rx->window;
    int ex = hie_cli__connect(rx->cli); /* creates the client; reconnects go by send */
    if (ex != CLI_EXIT_OK) {
        /* reported; --follow tries again while the client exists (bad files: it does not) */
        rx->end = rx->cli->client != NULL && rx->o.follow ? RX_LOST : RX_GOING;
        return ex;
    }
    /* acknowledgements a lost connection could not send (the node was down): first, on this
     * connection (seqs are the recipient's, not the connection's) */
    ex = rx_flush(rx);
    if (ex != CLI_EXIT_OK || rx->pending_count > 0) {
        return ex != CLI_EXIT_OK ? ex : CLI_EXIT_CONN;
    }
    ex = rx_call(rx, HIE__V1__ENVELOPE__BODY_RECEIVE, &body,
        HIE__V1__ENVELOPE__BODY_RECEIVE_REPLY, &arena, &reply);
    if (ex == CLI_EXIT_REPLY) {
        (void)hie_cli__error_reply("receive", reply->error);
    } else if (ex == CLI_EXIT_OK) {
        rx->queued = reply->receive_reply->queued;
        rx->got = 0;
        rx->unacked = 0;
        rx->last_ns = hie_time_mono_ns();
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* Sends the pending acknowledgements (after the written files' directory entries are
 * durable). Returns an exit code; the seqs stay pending when the connection failed. */
static int
rx_flush(struct rx *rx)
{
    Hie__V1__DeliveryAck body = HIE__V1__DELIVERY_ACK__INIT;
    hie_arena_t *arena = NULL;
    hie_envelope_t *reply = NULL;
    int ex = CLI_EXIT_OK;
    if (rx->pending_count == 0) {
        return CLI_EXIT_OK;
    }
    if (rx->dir_dirty && fsync(rx->dir_fd) != 0) {
        fprintf(stderr, "hie: receive: fsync %s failed: %s\n", rx->o.out_dir, strerror(errno));
        return CLI_EXIT_USAGE; /* nothing acknowledged: all comes again */
    }
    struct stat sb; /* notifications printed into a file: on disk before they are acked */
    if (fstat(STDOUT_FILENO, &sb) == 0 && S_ISREG(sb.st_mode) && fsync(STDOUT_FILENO) != 0) {
        fprintf(stderr, "hie: receive: fsync of the output failed: %s\n", strerror(errno));
        return CLI_EXIT_USAGE;
    }
    rx->dir_dirty = false;
    body.n_seqs = rx->pending_count;
    body.seqs = rx->pending;
    for (uint32_t tries = 1; tries <= RX_ACK_TRIES; tries++) {
        hie_arena_destroy(&arena);
        ex = rx_call(rx, HIE__V1__ENVELOPE__BODY_DELIVERY_ACK, &body,
            HIE__V1__ENVELOPE__BODY_DELIVERY_ACK_REPLY, &arena, &reply);
        if (ex != CLI_EXIT_REPLY ||
            reply->error->code != HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE) {
            break;
        }
    }
    if (ex == CLI_EXIT_REPLY) {
        (void)hie_cli__error_reply("receive: acknowledge", reply->error);
    } else if (ex == CLI_EXIT_OK) {
        uint64_t n = reply->delivery_ack_reply->acknowledged;
        rx->unacked -= n < rx->unacked ? n : rx->unacked;
        rx->pending_count = 0;
    }
    hie_arena_destroy(&arena);
    return ex;
}

/* ---- receive: one delivery --------------------------------------------------------------- */

static const char *
rx_ext(const char *content_type)
{
    static const struct {
        const char *needle, *ext;
    } exts[] = {{"json", "json"}, {"xml", "xml"}, {"hl7", "hl7"}, {"pdf", "pdf"},
        {"text/plain", "txt"}};
    for (size_t i = 0; i < HIE_ARRAY_LEN(exts); i++) {
        if (strstr(content_type, exts[i].needle) != NULL) {
            return exts[i].ext;
        }
    }
    return "bin";
}

/* "<seq>-<message id, [A-Za-z0-9._-] kept, others '_'>.<ext>" into name. */
static void
rx_file_name(const Hie__V1__Delivery *d, char *name, size_t cap)
{
    int n = snprintf(name, cap, "%" PRIu64 "-", d->seq);
    HIE_ASSERT(n > 0 && (size_t)n < cap / 2);
    size_t at = (size_t)n;
    for (const char *p = d->message_id; *p != '\0' && at + 8 < cap; p++) {
        unsigned char ch = (unsigned char)*p;
        bool keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        name[at++] = keep ? (char)ch : '_';
    }
    snprintf(name + at, cap - at, ".%s", rx_ext(d->document->content_type));
}

/* Writes the document's content to --out-dir/name (mode 0600): a temporary file, fsync'd,
 * then renamed over any earlier copy. Returns 0 or -errno. */
static int
rx_write(struct rx *rx, const Hie__V1__Delivery *d, const char *name)
{
    char tmp[RX_NAME_BYTES + 8];
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    const ProtobufCBinaryData *c = &d->document->content;
    int rc = hie_cli__write_file_at(rx->dir_fd, name, tmp, c->data, c->len);
    if (rc != 0) {
        return rc;
    }
    rx->dir_dirty = true;
    return 0;
}

/* " key=value": bare when the value is a plain token, else a JSON string. */
static void
rx_kv(const char *key, const char *s)
{
    printf("%s%s=", strcmp(key, "seq") == 0 ? "" : " ", key); /* seq opens the line */
    hie_cli__kv_value(stdout, s); /* escapes controls, C1 and bidi characters a sender put in */
}

static json_t *
rx_time_json(int64_t ms)
{
    char t[CLI_TIME_TEXT_BYTES];
    return ms > 0 ? json_string(hie_cli__time_format(ms, t, sizeof(t))) : json_null();
}

static json_t *
rx_json(const Hie__V1__Delivery *d, const char *path)
{
    const Hie__V1__Document *doc = d->document;
    json_t *labels = json_array();
    for (size_t i = 0; labels != NULL && i < doc->n_security_labels; i++) {
        json_array_append_new(labels, hie_cli__jstr(doc->security_labels[i]));
    }
    const Hie__V1__PatientId *p = doc->patient;
    return json_pack("{s:I, s:o, s:o, s:{s:o, s:o}, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
                     "s:I, s:b, s:o, s:o}",
        "seq", (json_int_t)d->seq, "message_id", hie_cli__jstr(d->message_id), "sender_org",
        hie_cli__jstr(d->sender_org), "patient", "org_id",
        hie_cli__jstr(p != NULL ? p->org_id : ""), "mrn", hie_cli__jstr(p != NULL ? p->mrn : ""),
        "euid", hie_cli__jstr(d->euid), "title", hie_cli__jstr(doc->title), "class_code",
        hie_cli__jstr(doc->class_code), "type_code", hie_cli__jstr(doc->type_code),
        "content_type", hie_cli__jstr(doc->content_type), "security_labels",
        labels != NULL ? labels : json_array(), "date", rx_time_json(doc->date_ms), "accepted",
        rx_time_json(d->accepted_ms), "bytes",
        (json_int_t)doc->content.len, "redelivery", d->redelivery, "file",
        path != NULL ? hie_cli__jstr(path) : json_null(), "handling",
        hie_cli__handling_json(d->handling));
}

/* One line per delivery on stdout, flushed. Returns an exit code. */
static int
rx_print(const struct rx *rx, const Hie__V1__Delivery *d, const char *path, bool notice)
{
    const Hie__V1__Document *doc = d->document;
    char seq[24];
    int ex = CLI_CONTINUE;
    if (notice) {
        ex = hie_cli__notification_print(rx->cli, d, path); /* CLI_CONTINUE: as a document */
    }
    if (ex == CLI_CONTINUE && rx->cli->json) {
        ex = hie_cli__json_emit(rx_json(d, path));
    }
    if (ex != CLI_CONTINUE) {
        return ex == CLI_EXIT_OK && fflush(stdout) != 0 ? CLI_EXIT_CONN : ex;
    }
    snprintf(seq, sizeof(seq), "%" PRIu64, d->seq);
    rx_kv("seq", seq);
    rx_kv("message_id", d->message_id);
    rx_kv("sender", d->sender_org);
    rx_kv("patient_org", doc->patient != NULL ? doc->patient->org_id : "");
    rx_kv("mrn", doc->patient != NULL ? doc->patient->mrn : "");
    rx_kv("euid", d->euid);
    rx_kv("title", doc->title);
    rx_kv("class", doc->class_code);
    printf(" bytes=%zu redelivery=%s", doc->content.len, d->redelivery ? "yes" : "no");
    hie_cli__handling_print(stdout, d->handling);
    if (path != NULL) {
        rx_kv("file", path);
    }
    fputc('\n', stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fputs("hie: receive: writing the output failed\n", stderr);
        return CLI_EXIT_CONN; /* not printed: not acknowledged */
    }
    return CLI_EXIT_OK;
}

static void
rx_ack_add(struct rx *rx, uint64_t seq)
{
    HIE_ASSERT(rx->pending_count < RX_ACK_BATCH_MAX);
    if (rx->o.no_ack) {
        return;
    }
    if (rx->pending_count == 0) {
        rx->pending_since_ns = hie_time_mono_ns();
    }
    rx->pending[rx->pending_count++] = seq;
}

/* Writes, prints and queues the acknowledgement of one delivery (in that order), or only
 * acknowledges a redelivery already printed in this run. Returns an exit code. */
static int
rx_handle(struct rx *rx, const Hie__V1__Delivery *d)
{
    char name[RX_NAME_BYTES], path[RX_NAME_BYTES + 4096];
    rx->got++;
    rx->unacked++;
    if (d->document == NULL || d->message_id[0] == '\0') {
        fputs("hie: receive failed: a malformed delivery from the node\n", stderr);
        return CLI_EXIT_CONN;
    }
    /* a document's content is kept only in --out-dir (the output shows its size): without
     * it, acknowledging would have the node delete the only copy. A notification is shown
     * whole; content of that type that is none (hie_cli__is_notification) is a document. */
    bool notice = hie_cli__is_notification(d);
    bool kept = rx->dir_fd >= 0 || rx->o.discard || notice;
    if (rx_seen(rx, d->message_id)) {
        if (kept) {
            rx_ack_add(rx, d->seq);
        }
        return CLI_EXIT_OK;
    }
    if (rx->dir_fd >= 0) {
        rx_file_name(d, name, sizeof(name));
        snprintf(path, sizeof(path), "%s/%s", rx->o.out_dir, name);
        int rc = rx_write(rx, d, name);
        if (rc != 0) {
            fprintf(stderr, "hie: receive: cannot write %s: %s\n", path, hie_strerror(rc));
            return CLI_EXIT_USAGE;
        }
    }
    int ex = rx_print(rx, d, rx->dir_fd >= 0 ? path : NULL, notice);
    if (ex != CLI_EXIT_OK) {
        return ex;
    }
    rx->printed++;
    rx->last_ns = hie_time_mono_ns();
    if (kept) {
        rx_ack_add(rx, d->seq);
    } else if (rx->not_kept++ == 0) { /* said at once: with --follow the window fills */
        fputs("hie: receive: documents are shown but not acknowledged without --out-dir DIR "
              "(their content is not kept); --discard-content acknowledges them anyway\n",
            stderr);
    }
    if (rx->o.count != 0 && rx->printed >= rx->o.count) {
        rx->end = RX_DONE;
    }
    return CLI_EXIT_OK;
}

/* ---- receive: the loop ------------------------------------------------------------------- */

/* True when another delivery is on its way: the node said more were queued and the window
 * has room. Waiting for it cannot end the run, so acknowledgements may wait too. */
static bool
rx_expecting(const struct rx *rx)
{
    return rx->got < rx->queued && rx->unacked < rx->window;
}

/* How long to wait for the next delivery: one known to be coming, --follow, or what is left
 * of the idle time (counted from the last delivery printed, so that heartbeats and
 * redeliveries do not keep a run alive). False when the idle time is used up. */
static bool
rx_wait_ms(const struct rx *rx, bool expecting, uint32_t *ms)
{
    if (expecting) {
        *ms = rx->cli->timeout_ms > RX_IDLE_MS ? rx->cli->timeout_ms : RX_IDLE_MS;
    } else if (rx->o.follow) {
        *ms = RX_FOLLOW_WAIT_MS;
    } else {
        uint64_t idle_ms = (hie_time_mono_ns() - rx->last_ns) / 1000000u;
        *ms = idle_ms < RX_IDLE_MS ? RX_IDLE_MS - (uint32_t)idle_ms : 0;
    }
    return *ms > 0;
}

/* What came instead of a delivery: an unsolicited envelope (a heartbeat on an idle receiving
 * connection) is dropped; a reply we no longer wait for, or the node's Error before it closes,
 * ends the connection. */
static void
rx_other(struct rx *rx, const hie_envelope_t *env)
{
    if (env->body_case == HIE__V1__ENVELOPE__BODY_ERROR) {
        (void)hie_cli__error_reply("receive", env->error);
        rx->end = RX_LOST;
    } else if (env->correlation_id[0] != '\0') {
        fprintf(stderr, "hie: receive: a stray %s reply from the node\n",
            hie_proto_body_name(env));
        rx->end = RX_LOST;
    }
}

/* The next delivery, from the inbox or the connection. Returns an exit code: OK with *arena
 * and *env (a delivery), OK with *env NULL (nothing yet: call again), OK with rx->end set (idle
 * stop, signal, lost connection), or a failure. */
static int
rx_next(struct rx *rx, hie_arena_t **arena, hie_envelope_t **env)
{
    uint32_t wait_ms = 0;
    *env = NULL;
    if (rx_inbox_pop(rx, arena, env)) {
        return CLI_EXIT_OK;
    }
    if (!rx_expecting(rx) || rx_stop) {
        int ex = rx_flush(rx); /* before a wait that may end the run: see the top */
        if (ex != CLI_EXIT_OK || rx_inbox_pop(rx, arena, env)) {
            return rx->end == RX_LOST ? CLI_EXIT_OK : ex;
        }
    }
    bool expecting = rx_expecting(rx);
    if (rx_stop || !rx_wait_ms(rx, expecting, &wait_ms)) {
        rx->end = RX_DONE;
        return CLI_EXIT_OK;
    }
    if (fflush(stdout) != 0) {
        return CLI_EXIT_CONN;
    }
    rx_idle = !expecting && rx->pending_count == 0;
    int rc = rx_read(rx, wait_ms, arena, env);
    rx_idle = 0;
    if (rc == 0 && (*env)->body_case != HIE__V1__ENVELOPE__BODY_DELIVERY) {
        rx_other(rx, *env);
        hie_arena_destroy(arena);
        *env = NULL;
    } else if (rc == HIE_ETIMEDOUT) { /* the client library closed the connection */
        rx->quiet = true;
        rx->end = rx->o.follow || rx->pending_count > 0 ? RX_LOST : RX_DONE;
    } else if (rc != 0) {
        rx->end = RX_LOST;
    }
    return CLI_EXIT_OK;
}

/* One connection: ask for deliveries, then handle them until the run ends or the connection
 * is lost. Returns an exit code (OK with rx->end set to why it ended). */
static int
rx_session(struct rx *rx)
{
    rx->end = RX_GOING;
    rx->quiet = false;
    int ex = rx_start(rx);
    while (ex == CLI_EXIT_OK && rx->end == RX_GOING) {
        hie_arena_t *arena = NULL;
        hie_envelope_t *env = NULL;
        ex = rx_next(rx, &arena, &env);
        if (ex == CLI_EXIT_OK && rx->end == RX_GOING && env != NULL) {
            ex = rx_handle(rx, env->delivery);
        }
        hie_arena_destroy(&arena);
        bool due = rx->pending_count == RX_ACK_BATCH_MAX || (rx->pending_count > 0 &&
            hie_time_mono_ns() - rx->pending_since_ns >= RX_ACK_INTERVAL_NS);
        if (ex == CLI_EXIT_OK && rx->end != RX_LOST && (due || rx->end == RX_DONE)) {
            ex = rx_flush(rx);
        }
    }
    if (ex != CLI_EXIT_OK && rx->end != RX_LOST && rx->pending_count > 0) {
        (void)rx_flush(rx); /* a local failure: still acknowledge what was printed */
    }
    return rx->end == RX_LOST ? CLI_EXIT_CONN : ex;
}

/* Sleeps ms, in slices, until a signal asks to stop. */
static void
rx_sleep(uint32_t ms)
{
    rx_idle = 1; /* nothing can be acknowledged now: a signal may end the process */
    for (uint32_t slept = 0; slept < ms && !rx_stop; slept += 100) {
        struct timespec ts = {0, 100L * 1000000L};
        (void)nanosleep(&ts, NULL);
    }
    rx_idle = 0;
}

/* After a lost connection: drops what was read ahead (not printed: it comes again) and sends
 * the pending acknowledgements on a new connection. [out] why: the failure, "" when the
 * connection only ended with an idle wait. Returns an exit code. */
static int
rx_recover(struct rx *rx, char *why, size_t why_bytes)
{
    HIE_ASSERT(rx->end == RX_LOST);
    snprintf(why, why_bytes, "%s", rx->quiet ? "" : hie_client_last_error(rx->cli->client));
    hie_client_close(rx->cli->client); /* when a stray envelope, not the socket, failed */
    rx_inbox_clear(rx);
    rx->end = RX_GOING;
    int ex = rx_flush(rx);
    if (rx->end == RX_LOST) {
        snprintf(why, why_bytes, "%s", hie_client_last_error(rx->cli->client));
        rx->end = RX_GOING;
    }
    return ex;
}

/* Sessions until the run ends; with --follow a lost connection is opened again (after a
 * backoff when it failed, at most RX_RECONNECTS_MAX times in a row). Returns an exit code. */
static int
rx_run(struct rx *rx)
{
    uint32_t backoff_ms = 500;
    for (uint32_t failures = 0; failures <= RX_RECONNECTS_MAX;) {
        char why[256];
        uint64_t printed = rx->printed;
        int ex = rx_session(rx);
        if (rx->end != RX_LOST) {
            return ex;
        }
        ex = rx_recover(rx, why, sizeof(why));
        if (ex != CLI_EXIT_OK && why[0] == '\0') {
            return ex; /* the node refused the acknowledgement (reported) */
        }
        if (!rx->o.follow || rx_stop) {
            if (why[0] != '\0') {
                fprintf(stderr, "hie: receive failed: connection lost: %s\n", why);
            }
            return why[0] != '\0' ? CLI_EXIT_CONN : CLI_EXIT_OK;
        }
        failures = why[0] == '\0' || rx->printed > printed ? 0 : failures + 1;
        backoff_ms = failures <= 1 ? 500 : backoff_ms * 2 > RX_BACKOFF_MS_MAX
            ? RX_BACKOFF_MS_MAX : backoff_ms * 2;
        if (why[0] != '\0') {
            fprintf(stderr, "hie: receive: connection lost: %s; reconnecting in %" PRIu32
                " ms\n", why, backoff_ms);
            rx_sleep(backoff_ms);
        }
        if (rx_stop) {
            return CLI_EXIT_OK;
        }
    }
    fprintf(stderr, "hie: receive failed: %u reconnects in a row failed\n", RX_RECONNECTS_MAX);
    return CLI_EXIT_CONN;
}

/* ---- receive: the command ---------------------------------------------------------------- */

static int
rx_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, struct rx_opts *o)
{
    static const struct option opts[] = {{"window", required_argument, NULL, 'w'},
        {"count", required_argument, NULL, 'n'}, {"follow", no_argument, NULL, 'F'},
        {"out-dir", required_argument, NULL, 'o'}, {"no-ack", no_argument, NULL, 'N'},
        {"discard-content", no_argument, NULL, 'D'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt;
    memset(o, 0, sizeof(*o));
    optind = 0; /* glibc: start over on the subcommand's argv */
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'w':
            if (hie_cli__parse_u32(optarg, 1, HIE_DELIVERY_WINDOW_MAX, &o->window) != 0) {
                return hie_cli__usage_error("--window must be 1..%u", HIE_DELIVERY_WINDOW_MAX);
            }
            break;
        case 'n':
            if (hie_cli__parse_u32(optarg, 1, RX_COUNT_MAX, &o->count) != 0) {
                return hie_cli__usage_error("--count must be 1..%u", RX_COUNT_MAX);
            }
            break;
        case 'F': o->follow = true; break;
        case 'o': o->out_dir = optarg; break;
        case 'N': o->no_ack = true; break;
        case 'D': o->discard = true; break;
        case 'j': cli->json = true; break;
        case 'h':
            printf("usage: hie %s %s\n%s\n", cmd->name, cmd->args, cmd->summary);
            return CLI_EXIT_OK;
        default: return hie_cli__getopt_error(opt, argv);
        }
    }
    if (optind < argc) {
        return hie_cli__usage_error("%s takes no arguments", cmd->name);
    }
    return CLI_CONTINUE;
}

/* Opens --out-dir, creating it (mode 0700) when missing. Returns an exit code. */
static int
rx_dir_open(struct rx *rx)
{
    rx->dir_fd = -1;
    if (rx->o.out_dir == NULL) {
        return CLI_EXIT_OK;
    }
    int fd = open(rx->o.out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && mkdir(rx->o.out_dir, 0700) == 0) {
        fd = open(rx->o.out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (fd < 0) {
        fprintf(stderr, "hie: receive: cannot open --out-dir %s: %s\n", rx->o.out_dir,
            strerror(errno));
        return CLI_EXIT_USAGE;
    }
    rx->dir_fd = fd;
    return CLI_EXIT_OK;
}

int
hie_cli__cmd_receive(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct sigaction sa;
    struct rx *rx = calloc(1, sizeof(*rx)); /* large: the seen ids */
    if (rx == NULL) {
        fputs("hie: out of memory\n", stderr);
        return CLI_EXIT_CONN;
    }
    rx->cli = cli;
    rx->dir_fd = -1;
    int ex = rx_parse(cli, cmd, argc, argv, &rx->o);
    ex = ex == CLI_CONTINUE ? rx_dir_open(rx) : ex;
    if (ex == CLI_EXIT_OK) {
        rx->window = rx->o.window != 0 ? rx->o.window : HIE_DELIVERY_WINDOW_DEFAULT;
        if (rx->o.count != 0 && rx->o.count < rx->window) {
            rx->window = rx->o.count; /* no more sent than will be printed */
        }
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = rx_on_signal; /* no SA_RESTART */
        (void)sigaction(SIGINT, &sa, NULL);
        (void)sigaction(SIGTERM, &sa, NULL);
        ex = rx_run(rx);
    }
    if (rx->not_kept > 0) {
        fprintf(stderr, "hie: receive: %" PRIu64 " document%s shown but not acknowledged: "
            "their content is kept only with --out-dir DIR (--discard-content acknowledges "
            "them without it); they come again\n", rx->not_kept, rx->not_kept == 1 ? "" : "s");
    }
    rx_inbox_clear(rx);
    if (rx->dir_fd >= 0) {
        (void)close(rx->dir_fd);
    }
    free(rx);
    return ex;
}
