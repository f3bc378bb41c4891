/*
 * tls.c - the node's server TLS context (OpenSSL 3), per design.md and reference.md §5.
 *
 * TLS 1.3 by default; TLS 1.2 only when configured, and then only the IHE ATNA ITI-19
 * ECDHE/DHE + AES-GCM suites (REQ: ITI-19 STX). A client certificate is required and must
 * chain to the HIE CA, be within its validity, carry the clientAuth purpose and not be revoked
 * in the CRL (REQ: ITI-19 N1, N3). Session resumption is off, so every connection re-checks
 * the certificate against the current CRL. The organization is the certificate's subject CN.
 *
 * The SSL_CTX is built off the edge thread (at start, or on SIGHUP / admin reload) and handed
 * to the edge, which swaps it atomically for new connections; existing connections keep the
 * reference-counted old one.
 */
#include "node_int.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <string.h>

/* ITI-19 TLS 1.2 suites, plus their ECDSA twins for EC certificates (same key exchange and
 * AEAD; ITI-19 allows stronger equivalents). Nothing without forward secrecy or with CBC. */

static void
tls_err(char *err, size_t err_bytes, const char *what, const char *path)
{
    char ossl[256] = "";
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        ERR_error_string_n(e, ossl, sizeof(ossl));
    }
    snprintf(err, err_bytes, "%s%s%s: %s", what, path ? " " : "", path ? path : "",
        ossl[0] ? ossl : "unknown error");
    ERR_clear_error();
}

/* t as ms since the epoch (now + the difference OpenSSL computes); 0 when t is unusable. */
static int64_t
asn1_ms(const ASN1_TIME *t, int64_t now)
{
    int days = 0, secs = 0;
    if (t == NULL || ASN1_TIME_diff(&days, &secs, NULL, t) != 1) {
        return 0;
    }
    int64_t at = now + ((int64_t)days * 86400 + secs) * 1000;
    return at > 0 ? at : 1;
}

node_crl_window_t
hie_node__crl_window(const char *crl_file)
{
    node_crl_window_t w = {0, 0};
    FILE *f = crl_file != NULL && crl_file[0] != '\0' ? fopen(crl_file, "r") : NULL;
    if (f == NULL) {
        return w;
    }
    int64_t now = hie_time_wall_ms();
    X509_CRL *crl = NULL;
    for (int i = 0; i < 64 && (crl = PEM_read_X509_CRL(f, NULL, NULL, NULL)) != NULL; i++) {
        int64_t last = asn1_ms(X509_CRL_get0_lastUpdate(crl), now);
        int64_t next = asn1_ms(X509_CRL_get0_nextUpdate(crl), now);
        w.last_update_ms = last > w.last_update_ms ? last : w.last_update_ms; /* the latest */
        if (next != 0 && (w.next_update_ms == 0 || next < w.next_update_ms)) {
            w.next_update_ms = next; /* the earliest of the file's CRLs */
        }
        X509_CRL_free(crl);
    }
    fclose(f);
    ERR_clear_error();
    return w;
}

void
hie_node__crl_window_store(node_metrics_t *m, const char *crl_file)
{
    node_crl_window_t w = hie_node__crl_window(crl_file);
    atomic_store(&m->crl_last_update_ms, w.last_update_ms);
    atomic_store(&m->crl_next_update_ms, w.next_update_ms);
}

static int
tls_load_crl(SSL_CTX *ctx, const char *crl_file, char *err, size_t err_bytes)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lookup == NULL || X509_load_crl_file(lookup, crl_file, X509_FILETYPE_PEM) <= 0) {
        tls_err(err, err_bytes, "cannot load crl", crl_file);
        return HIE_ETLS;
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    return 0;
}

bool
hie_node__tls_client_eku(X509 *cert)
{
    /* OpenSSL's SSL_CLIENT purpose passes a certificate with no extendedKeyUsage at all: a
     * member's must say clientAuth */
    return cert != NULL && (X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) != 0 &&
           (X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT) != 0;
}

/* The leaf's checks beyond OpenSSL's own (hie_node__tls_client_eku). */
static int
tls_verify_cb(int ok, X509_STORE_CTX *x)
{
    if (ok != 1 || X509_STORE_CTX_get_error_depth(x) != 0) {
        return ok;
    }
    if (!hie_node__tls_client_eku(X509_STORE_CTX_get_current_cert(x))) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_INVALID_PURPOSE);
        return 0;
    }
    return 1;
}

static int
tls_ctx_options(SSL_CTX *ctx, const node_config_t *cfg, char *err, size_t err_bytes)
{
    SSL_CTX_set_min_proto_version(ctx, cfg->tls_min_version);
    SSL_CTX_set_max_proto_version(ctx, 0);
    if (SSL_CTX_set_cipher_list(ctx, HIE_TLS12_CIPHERS) != 1) {
        tls_err(err, err_bytes, "cannot set tls 1.2 ciphers", NULL);
        return HIE_ETLS;
    }
    /* A peer's FIN without close_notify ends its sending like close_notify does, not the
     * session: the framing tells a truncated request (never served) from a whole one, and
     * the replies to whole ones still go (edge.c, half-close). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
        SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_dh_auto(ctx, 1); /* the DHE-RSA suites (with an RSA certificate) need groups */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
        SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_max_cert_list(ctx, HIE_TLS_CERT_LIST_BYTES_MAX);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tls_verify_cb);
    SSL_CTX_set_verify_depth(ctx, HIE_TLS_VERIFY_DEPTH_MAX);
    /* the member's certificate must be issued for client authentication (EKU clientAuth) */
    SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    return 0;
}

/* An encrypted private key is refused (the load fails, with OpenSSL's reason) instead of
 * OpenSSL asking for its passphrase on the terminal, which would block startup or a reload. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return 0;
}

int
hie_node__tls_ctx_build(const node_config_t *cfg, SSL_CTX **out, char *err, size_t err_bytes)
{
    HIE_ASSERT(cfg != NULL && out != NULL);
    *out = NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int rc = HIE_ETLS;
    if (ctx == NULL) {
        tls_err(err, err_bytes, "cannot create tls context", NULL);
        return HIE_ETLS;
    }
    if (tls_ctx_options(ctx, cfg, err, err_bytes) != 0) {
        goto out;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        tls_err(err, err_bytes, "cannot load certificate", cfg->cert_file);
        goto out;
    }
    if (hie_node__secret_file_check(cfg->key_file, "tls.key_file", err, err_bytes) != 0) {
        goto out; /* checked again at each reload: the file may have changed */
    }
    SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase); /* never a prompt on the tty */
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        tls_err(err, err_bytes, "cannot load private key", cfg->key_file);
        goto out;
    }
    if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
        tls_err(err, err_bytes, "cannot load ca", cfg->ca_file);
        goto out;
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
    if (names != NULL) {
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (cfg->crl_file[0] != '\0' && tls_load_crl(ctx, cfg->crl_file, err, err_bytes) != 0) {
        goto out;
    }
    rc = 0;
out:
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

enum node_hs_reason
hie_node__tls_reason(long verify_result, unsigned long ssl_err)
{
    switch (verify_result) {
    case X509_V_OK:
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return HS_EXPIRED;
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
    case X509_V_ERR_UNABLE_TO_GET_CRL:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
        return HS_CRL; /* every member is refused: the operator's CRL, not the member */
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return HS_NOT_YET_VALID;
    case X509_V_ERR_CERT_REVOKED:
        return HS_REVOKED;
    case X509_V_ERR_INVALID_PURPOSE:
        return HS_BAD_PURPOSE;
    default:
        return HS_UNKNOWN_CA;
    }
    switch (ERR_GET_REASON(ssl_err)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return HS_NO_CERT;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_NO_SHARED_CIPHER:
        return HS_PROTOCOL_VERSION;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        return HS_UNKNOWN_CA;
    default:
        return HS_OTHER;
    }
}

int
hie_node__tls_peer_id(SSL *ssl, char *out, size_t out_bytes)
{
    HIE_ASSERT(ssl != NULL && out != NULL && out_bytes > HIE_ORG_ID_BYTES_MAX);
    out[0] = '\0';
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (cert == NULL) {
        return HIE_EUNAUTH;
    }
    X509_NAME *subject = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, idx) >= 0) {
        return HIE_EUNAUTH; /* no CN, or an ambiguous subject with two */
    }
    ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
    const unsigned char *data = ASN1_STRING_get0_data(cn);
    int len = ASN1_STRING_length(cn);
    if (data == NULL || len <= 0 || !hie_proto_org_id_valid((const char *)data, (size_t)len)) {
        return HIE_EINVAL;
    }
    memcpy(out, data, (size_t)len);
    out[len] = '\0';
    return 0;
}
