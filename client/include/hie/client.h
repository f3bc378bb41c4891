/*
 * hie/client.h - the member client library: one mutual-TLS connection to a hie-node.
 *
 * Purpose: connect with a member certificate and key, send request envelopes, wait for the
 * reply whose correlation_id matches, with a timeout, and reconnect after a failure.
 *
 * Threads: a hie_client_t has one owner thread; calls block (bounded by their timeouts). The
 * socket is non-blocking inside and every wait is a poll() bounded by a deadline.
 * Ownership: the client copies every path and string it is given. Replies are decoded into an
 * arena the caller passes and lives as long as that arena.
 * Limits: replies larger than cfg.frame_bytes_max are refused (HIE_ELIMIT), the connection is
 * then closed; TLS 1.3 unless cfg.tls_min_version asks for less.
 *
 * Caveats:
 * - Failures are not sticky: after any I/O, TLS, protocol or timeout failure the connection is
 *   closed and the next call reconnects. hie_client_last_error() describes the last failure.
 * - With TLS 1.3 the node checks the member certificate after the client has finished its side
 *   of the handshake, so hie_client_connect() can return 0 and a refused certificate shows up on
 *   the first read instead: hie_client_call() then returns HIE_ETLS (the node's alert, e.g.
 *   "tlsv13 alert certificate required", is in hie_client_last_error()) or HIE_EUNAVAIL.
 * - OpenSSL writes to the socket with write(2): the process must ignore SIGPIPE (the `hie`
 *   command line does), or a node that closes first kills it.
 * - Host names are resolved with getaddrinfo(), which is not bounded by connect_timeout_ms.
 */
#ifndef HIE_CLIENT_H
#define HIE_CLIENT_H

#include "hie/base.h"
#include "hie/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hie_client hie_client_t;

typedef struct hie_client_config {
    const char *host;        /* e.g. "127.0.0.1" or "localhost" */
    uint16_t port;
    const char *ca_file;     /* the HIE CA (PEM) the node's certificate must chain to */
    const char *cert_file;   /* member certificate (PEM); NULL: connect without one */
    const char *key_file;    /* member private key (PEM) */
    const char *server_name; /* expected node name in the node certificate (SAN); NULL: host
                                (as a TLS client checks the name it dialled); "*": the
                                chain only (any node certificate of the HIE's CA) */
    uint32_t connect_timeout_ms; /* TCP connect + handshake; 0 means 10000 */
    uint32_t frame_bytes_max;    /* 0 means HIE_PROTO_FRAME_BYTES_DEFAULT */
    int tls_max_version;     /* 0: library default (1.3); else e.g. TLS1_1_VERSION for tests
                                (below TLS 1.2 the OpenSSL security level drops to 0, so that
                                tests can check that the node refuses old versions) */
    int tls_min_version;     /* 0: TLS1_3_VERSION; TLS1_2_VERSION allows TLS 1.2 */
    const char *crl_file;    /* the HIE CA's CRL (PEM): a revoked node certificate fails the
                                handshake (as the node checks members'); NULL: not checked.
                                Replaced on disk (a new mtime, size or inode), it is read
                                again before the next connection */
} hie_client_config_t;

/* Bytes hie_client_new_id() needs: "c-" + 26 characters + NUL, rounded up. */
#define HIE_CLIENT_ID_BUF_BYTES 32u

/* Creates a client (not connected yet): copies cfg's strings, loads the CA, certificate and key
 * into a TLS context and checks that key and certificate match. [in] cfg borrowed for the call.
 * [out] *out owned by the caller (hie_client_destroy); NULL on failure.
 * Returns 0, HIE_EINVAL (missing host/port/ca, cert without key or key without cert,
 * frame_bytes_max out of range, tls_min_version above tls_max_version), HIE_ETLS (a file could
 * not be loaded or key and certificate differ; hie_client_create_err() tells why),
 * HIE_EUNAVAIL (libsodium failed to initialise) or HIE_ENOMEM. Blocks on file reads only. */
HIE_MUST_CHECK int hie_client_create(hie_client_t **out, const hie_client_config_t *cfg);
/* Same as hie_client_create(); on failure also writes a NUL-terminated lowercase description
 * into err_buf ([out], err_buf_bytes > 0; "" on success), e.g. "load key /x/key.pem: ...". */
HIE_MUST_CHECK int hie_client_create_err(hie_client_t **out, const hie_client_config_t *cfg,
    char *err_buf, size_t err_buf_bytes);
/* Closes the connection and frees everything; sets *client to NULL; NULL-safe. */
void hie_client_destroy(hie_client_t **client);

/* Connects and completes the TLS handshake (no-op if connected), both within
 * cfg.connect_timeout_ms. Tries each address of host in turn. Returns 0, -errno
 * (-ECONNREFUSED, ...), HIE_ENOTFOUND (host did not resolve), HIE_ETIMEDOUT, HIE_ENOMEM or
 * HIE_ETLS (handshake refused or the node's certificate failed verification; details in
 * hie_client_last_error()). See the TLS 1.3 caveat above: 0 does not prove that the node
 * accepted our certificate. */
HIE_MUST_CHECK int hie_client_connect(hie_client_t *client);
/* Closes the connection (the next call reconnects); sends close_notify when the connection is
 * healthy, without waiting for the node's. No-op when not connected. */
void hie_client_close(hie_client_t *client);
/* True between a successful connect and the next close or failure. */
bool hie_client_connected(const hie_client_t *client);

/* Sends req (its id must be set) and waits up to timeout_ms for the reply with
 * correlation_id == req->id; replies to other ids are skipped (at most HIE_EDGE_INFLIGHT_MAX of
 * them, each decoded into arena). An Error reply with an empty correlation_id (the node could
 * not read our request) also counts as the reply. Connects first if needed (within
 * cfg.connect_timeout_ms, then timeout_ms for sending and the reply).
 * [in] req borrowed for the call. [out] *reply owned by arena; NULL on failure.
 * Returns 0 (the reply may carry an Error body: check it), HIE_EINVAL (req fails
 * hie_proto_envelope_validate(); nothing sent, connection kept), HIE_ETIMEDOUT, HIE_EPROTO
 * (malformed reply, or too many replies to other ids), HIE_ELIMIT (reply frame too large, arena
 * cap hit, or req larger than frame_bytes_max), HIE_ETLS, HIE_ENOMEM, -errno, HIE_EUNAVAIL when
 * the node closed the connection, or any error of hie_client_connect(). Every failure except
 * HIE_EINVAL and an encode failure closes the connection. */
HIE_MUST_CHECK int hie_client_call(hie_client_t *client, const hie_envelope_t *req,
    uint32_t timeout_ms, hie_arena_t *arena, hie_envelope_t **reply);

/* Lower level, for pipelining: send a frame without waiting, and receive the next reply.
 * send connects if needed and bounds the write by cfg.connect_timeout_ms; it returns what
 * hie_client_call() returns before the reply. recv waits up to timeout_ms for the next reply
 * (whatever its correlation_id) into arena; it returns HIE_EUNAVAIL when not connected, else
 * what hie_client_call() returns after the send. */
HIE_MUST_CHECK int hie_client_send(hie_client_t *client, const hie_envelope_t *req);
HIE_MUST_CHECK int hie_client_recv(hie_client_t *client, uint32_t timeout_ms,
    hie_arena_t *arena, hie_envelope_t **reply);

/* Writes a fresh random envelope id ("c-" + 26 chars of [0-9a-z], from libsodium) into buf.
 * [out] buf of at least HIE_CLIENT_ID_BUF_BYTES (asserted). Any thread. */
void hie_client_new_id(char *buf, size_t buf_bytes);

/* The last failure's description (OpenSSL error text, verify result, ...), lowercase where
 * the text is ours; "" when nothing failed yet. Never NULL; valid until the next call. */
const char *hie_client_last_error(const hie_client_t *client);
/* Negotiated protocol version and cipher, or "" when not connected. Static strings. */
const char *hie_client_tls_version(const hie_client_t *client);
const char *hie_client_tls_cipher(const hie_client_t *client);

#ifdef __cplusplus
}
#endif
#endif
