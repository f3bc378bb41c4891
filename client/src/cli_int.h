/*
 * cli_int.h - declarations shared by the files of the `hie` command line (hie_cli.c: options,
 * connection, whoami, ping; cli_mpi.c: feed, pix, pdq, review; cli_consent.c: consent
 * directives and the helpers consent and audit share; cli_audit.c: disclosure reports and
 * their offline verification; cli_push.c: push and receive; cli_adt.c: ADT events,
 * subscriptions and notifications; cli_query.c: record query, retrieval, responder). Not part
 * of libhie_client.
 * consent_json.h (the directive file format, shared with hiectl) is separate.
 *
 * Output rules (hie --help): results on stdout, as key=value text or, with --json, JSON;
 * failures are one lowercase line on stderr. Patient data is printed only as the result the
 * user asked for, never in error lines.
 */
#ifndef HIE_CLI_INT_H
#define HIE_CLI_INT_H

#include "hie/client.h"

#include <getopt.h>
#include <stdio.h>

enum cli_exit { CLI_EXIT_OK = 0, CLI_EXIT_REPLY = 1, CLI_EXIT_USAGE = 2, CLI_EXIT_CONN = 3 };
/* Returned by option parsing when the program should go on rather than exit. */
#define CLI_CONTINUE (-1)

#define CLI_ADDR_DEFAULT "127.0.0.1:7443"
#define CLI_TIMEOUT_MS_DEFAULT 5000u
/* A DNS name is at most 253 bytes; an IPv6 literal far less. */
#define CLI_HOST_BYTES_MAX 256u
#define CLI_PING_COUNT_MAX 100000u
/* Text from the node (Error.message) is cut at this length on the terminal. */
#define CLI_NODE_TEXT_BYTES_MAX 512u

struct cli {
    const char *addr;           /* as given, for messages */
    char host[CLI_HOST_BYTES_MAX];
    hie_client_config_t cfg;
    uint32_t timeout_ms;
    bool json;
    bool tls12;
    int tls_max_version;        /* 0: library default */
    Hie__V1__PurposeOfUse purpose;
    bool purpose_set;           /* --purpose or HIE_PURPOSE was given */
    const char *id;             /* explicit envelope id, or NULL: random */
    hie_client_t *client;       /* created on first use */
};

struct cli_cmd {
    const char *name;
    const char *args;           /* usage after the name */
    const char *summary;
    int (*run)(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
};

/* Prints "hie: <text> (see hie --help)" to stderr. Returns CLI_EXIT_USAGE. */
int hie_cli__usage_error(const char *fmt, ...) HIE_PRINTF(1, 2);
/* getopt_long's '?' and ':' as a usage line. Returns CLI_EXIT_USAGE. */
int hie_cli__getopt_error(int opt, char **argv);
/* Writes all len bytes at p to fd (EINTR retried). Returns 0 or -errno. */
int hie_cli__write_all(int fd, const uint8_t *p, size_t len);
/* Writes len bytes at p to name in directory dir_fd (AT_FDCWD: name is a path), mode 0600:
 * first to tmp (in the same directory; one left by a killed run is removed, its mode not
 * trusted), fsync'd, then renamed over name. Returns 0 or -errno. */
int hie_cli__write_file_at(int dir_fd, const char *name, const char *tmp, const uint8_t *p,
    size_t len);
/* The long name of option opt in opts (for messages), or "?". */
const char *hie_cli__option_name(const struct option *opts, int opt);
/* A subcommand's options, getopt_long over argv from its start: --help prints the usage (and
 * note, may be NULL), --json sets cli->json, getopt's errors become usage errors, an option
 * not in allowed (NULL: any) is refused naming it and the command, every other one goes to
 * fn(ctx, opt, value). Leaves optind at the first word. Returns CLI_CONTINUE or an exit
 * code. */
int hie_cli__options(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
    const struct option *opts, const char *allowed, const char *note,
    int (*fn)(void *ctx, int opt, char *val), void *ctx);
/* Decimal s in [min, max] into *out. Returns 0 or HIE_EINVAL. */
int hie_cli__parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* A purpose-of-use name ("treatment", ...) into *out. Returns 0 or HIE_EINVAL. */
int hie_cli__purpose_parse(const char *s, Hie__V1__PurposeOfUse *out);
/* Text from the node on the terminal: control characters become '?', cut at a limit. */
void hie_cli__fputs_safe(FILE *f, const char *s);
/* Fills env's header: id (--id, with "-SEQ" when seq > 0, or random), purpose and clock.
 * id_buf (at least HIE_PROTO_ID_BYTES_MAX + 1 bytes) must outlive env. Returns CLI_CONTINUE
 * or CLI_EXIT_USAGE. */
/* seq for a request that is never one of --id's: lookups (WhoAmI), Receive and DeliveryAck
 * (an acknowledgement under a run's repeated id was answered with an earlier run's result) */
#define HIE_CLI_ID_RANDOM UINT32_MAX
int hie_cli__request_init(const struct cli *cli, hie_envelope_t *env, uint32_t seq,
    char *id_buf, size_t id_buf_bytes);
/* Creates cli->client on first use and connects it; failures are reported on stderr. Returns an
 * exit code. */
int hie_cli__connect(struct cli *cli);
/* Creates the reply arena. [out] *arena owned by the caller. Returns an exit code. */
int hie_cli__arena_create(const struct cli *cli, hie_arena_t **arena);
/* Prints an Error reply (code, message, field) on stderr. Returns CLI_EXIT_REPLY. */
int hie_cli__error_reply(const char *what, const Hie__V1__Error *err);
/* Sends req and waits for its reply; reports failures and Error replies on stderr. Returns an
 * exit code; on CLI_EXIT_OK *reply is set (owned by arena) and has the body kind expect. */
int hie_cli__call(struct cli *cli, const char *what, const hie_envelope_t *req,
    Hie__V1__Envelope__BodyCase expect, hie_arena_t *arena, hie_envelope_t **reply);

/* Subcommands in cli_mpi.c (see the table in hie_cli.c). */
int hie_cli__cmd_feed(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
int hie_cli__cmd_pix(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
int hie_cli__cmd_pdq(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
int hie_cli__cmd_review(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);

/* ---- consent and audit (cli_consent.c, cli_audit.c) ------------------------------------- */

/* "YYYY-MM-DD" (midnight UTC) or "YYYY-MM-DDThh:mm:ss[.fraction](Z|+00:00)", years 1970..9999,
 * into ms since the epoch. Only UTC is accepted: a local offset would be a silent guess.
 * Returns 0 or HIE_EINVAL. */
int hie_cli__time_parse(const char *s, int64_t *ms);
/* Room for any time hie_cli__time_format() writes (a nine-digit year fits). */
#define CLI_TIME_TEXT_BYTES 32u
/* ms since the epoch as "YYYY-MM-DDThh:mm:ss[.mmm]Z" into buf (at least
 * CLI_TIME_TEXT_BYTES); "-" for 0 or a negative time. Returns buf. */
const char *hie_cli__time_format(int64_t ms, char *buf, size_t buf_bytes);
/* JSON files (a directive, a saved report) nest far less than this; checked on the raw text
 * before jansson, whose parser recurses, sees it. */
#define CLI_JSON_DEPTH_MAX 32u
struct json_t; /* jansson's; only cli_consent.c and cli_audit.c include jansson.h */
/* Reads path ("-": stdin) whole, at most max_bytes. [out] *buf: malloc'd, NUL-terminated, the
 * caller frees it; *len. Returns 0, HIE_ELIMIT (larger), HIE_ENOMEM or -errno. */
int hie_cli__file_read(const char *path, size_t max_bytes, char **buf, size_t *len);
/* Reads and parses a JSON file (duplicate keys refused, nesting bounded). Failures are
 * printed as "hie: <what>: ..." on stderr. [out] *out owned by the caller (json_decref).
 * Returns an exit code. */
int hie_cli__json_load(const char *path, size_t max_bytes, const char *what,
    struct json_t **out);
/* A JSON string of s (NULL: ""); bytes that are not valid UTF-8 become '?'. Never NULL. */
struct json_t *hie_cli__jstr(const char *s);
/* Prints obj as one compact line on stdout and releases it. Returns an exit code. */
int hie_cli__json_emit(struct json_t *obj);
/* Sends the request in *req (body_case and body set by the caller) after filling its header
 * (envelope id numbered by seq for an explicit --id, cli->purpose, clock), in a new arena.
 * An Error reply is printed on stderr and, with --json, as {"error":{...}} on stdout.
 * [out] *arena: owned by the caller (hie_arena_destroy), also on failure; [out] *reply in it.
 * Returns an exit code (CLI_EXIT_OK: *reply has the body kind expect). */
int hie_cli__exchange(struct cli *cli, const char *what, hie_envelope_t *req, uint32_t seq,
    Hie__V1__Envelope__BodyCase expect, hie_arena_t **arena, hie_envelope_t **reply);
/* The purpose to send: --purpose / HIE_PURPOSE when given, else fallback. */
void hie_cli__purpose_default(struct cli *cli, Hie__V1__PurposeOfUse fallback);
/* This certificate's organization (WhoAmI) into org (at least HIE_ORG_ID_BYTES_MAX + 1
 * bytes). Returns an exit code. */
int hie_cli__whoami_org(struct cli *cli, char *org, size_t org_bytes);

/* Subcommands in cli_consent.c and cli_audit.c (see the table in hie_cli.c). */
int hie_cli__cmd_consent(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
int hie_cli__cmd_audit(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);

/* ---- push and delivery (cli_push.c) ------------------------------------------------------- */

/* `hie push`: one document to another member; prints the broker's message id. */
int hie_cli__cmd_push(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
/* `hie receive` (and its alias `hie notifications`): this organization's deliveries, written,
 * printed (notifications decoded), then acknowledged. Installs handlers for SIGINT and SIGTERM
 * (see cli_push.c). */
int hie_cli__cmd_receive(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);

/* ---- ADT, subscriptions, record queries (cli_adt.c, cli_query.c) ------------------------- */

/* A delivery with this document content type carries a Notification (adt.proto). */
#define CLI_NOTIFICATION_CONTENT_TYPE "application/vnd.hiebroker.notification+protobuf"
/* A value of key=value text on f: bare when a plain token ([A-Za-z0-9._:@/,+-]+), else a
 * quoted JSON string (control characters escaped, invalid UTF-8 replaced). (hie_cli.c) */
void hie_cli__kv_value(FILE *f, const char *s);
/* Consent's handling marks h (NULL: none) as " confidentiality=R refrain=NORDSCLCD
 * notice=\"...\"" on f (hie_cli.c), or as a JSON object (cli_consent.c). */
void hie_cli__handling_print(FILE *f, const Hie__V1__Handling *h);
struct json_t *hie_cli__handling_json(const Hie__V1__Handling *h);
/* Prints the notification d carries (its document is not NULL) as one line on stdout, or one
 * JSON object with --json; path: where --out-dir wrote it, or NULL. Not flushed. Returns an
 * exit code, or CLI_CONTINUE when the content does not decode as a Notification (reported on
 * stderr; the caller prints it as a document). */
/* True when d is a notification: numbered by the node for a subscription, of the notification
 * content type, decoding, and naming the delivery's sender (any member may push content of
 * that type: it is then a document). */
bool hie_cli__is_notification(const Hie__V1__Delivery *d);
/* True when the audit command's words (argv[0] is "audit") ask for verify, whichever options
 * come before it: verify needs no connection. */
bool hie_cli__audit_is_verify(int argc, char **argv);
int hie_cli__notification_print(const struct cli *cli, const Hie__V1__Delivery *d,
    const char *path);
/* Subcommands in cli_adt.c (see the table in hie_cli.c). */
int hie_cli__cmd_adt(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
int hie_cli__cmd_subscribe(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
int hie_cli__cmd_roster(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
int hie_cli__cmd_unsubscribe(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
int hie_cli__cmd_replay(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
/* Subcommands in cli_query.c. */
int hie_cli__cmd_query(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
int hie_cli__cmd_get(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
int hie_cli__cmd_responder(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
int hie_cli__cmd_retract(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);

#endif
