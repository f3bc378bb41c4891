/*
 * feed.c - the proposer side of the master patient index: member demographics validated into
 * the matcher's normalized form, record identities, and the sealed feed command.
 *
 * Everything here takes hostile input. Each value is bounded before it is looked at, refused
 * (never repaired or cut) when invalid, and the refusal names the field. Nothing logs: values
 * are PHI.
 */
#include "hie/mpi_store.h"

#include <sodium.h>
#include <string.h>

#define F_GIVEN "demographics.given"
#define F_FAMILY "demographics.family"

static int
name_list(char *const *names, size_t n, size_t max, const char *field, char *out,
    size_t out_bytes, hie_errinfo_t *info)
{
    if (n > max) {
        return hie_errinfo_set(info, HIE_ELIMIT, field, "too many names");
    }
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char norm[HIE_MPI_NORM_BUF_BYTES];
        size_t len = names[i] != NULL ? strlen(names[i]) : 0;
        hie_errinfo_t ni = {0};
        int rc = hie_mpi_name_normalize(hie_span(names[i], len), norm, sizeof(norm), &ni);
        if (rc != 0) {
            return hie_errinfo_set(info, rc, field, rc == HIE_ELIMIT ? "name too long"
                : "invalid characters in name");
        }
        if (out[0] == '\0' && norm[0] != '\0') {
            if (strlen(norm) >= out_bytes) {
                return hie_errinfo_set(info, HIE_ELIMIT, field, "name too long");
            }
            memcpy(out, norm, strlen(norm) + 1); /* the first non-empty name is compared */
        }
    }
    return 0;
}

static int
text_field(const char *in, const char *field, char *out, size_t out_bytes, hie_errinfo_t *info)
{
    out[0] = '\0';
    size_t len = in != NULL ? strlen(in) : 0;
    if (len == 0) {
        return 0;
    }
    char norm[HIE_MPI_NORM_BUF_BYTES];
    int rc = hie_mpi_name_normalize(hie_span(in, len), norm, sizeof(norm), NULL);
    if (rc == 0 && strlen(norm) >= out_bytes) {
        rc = HIE_ELIMIT;
    }
    if (rc != 0) {
        return hie_errinfo_set(info, rc, field, rc == HIE_ELIMIT ? "too long"
            : "invalid characters");
    }
    memcpy(out, norm, strlen(norm) + 1);
    return 0;
}

static int
email_field(const char *in, char *out, size_t out_bytes, hie_errinfo_t *info)
{
    out[0] = '\0';
    size_t len = in != NULL ? strlen(in) : 0;
    if (len == 0) {
        return 0;
    }
    if (len > HIE_MPI_EMAIL_BYTES_MAX || len >= out_bytes) {
        return hie_errinfo_set(info, HIE_ELIMIT, "demographics.email", "too long");
    }
    unsigned at = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= 0x20 || c >= 0x7f) {
            return hie_errinfo_set(info, HIE_EINVAL, "demographics.email",
                "not a plain ASCII address");
        }
        at += c == '@';
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[len] = '\0';
    if (at != 1 || in[0] == '@' || in[len - 1] == '@') {
        out[0] = '\0';
        return hie_errinfo_set(info, HIE_EINVAL, "demographics.email", "not an address");
    }
    return 0;
}

static int
national_id_field(const char *in, char *out, size_t out_bytes, hie_errinfo_t *info)
{
    out[0] = '\0';
    size_t len = in != NULL ? strlen(in) : 0, n = 0;
    if (len > HIE_MPI_NATIONAL_ID_BYTES_MAX) {
        return hie_errinfo_set(info, HIE_ELIMIT, "demographics.national_id", "too long");
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == ' ' || c == '-') {
            continue;
        }
        bool alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        if (!alnum) {
            return hie_errinfo_set(info, HIE_EINVAL, "demographics.national_id",
                "letters, digits, spaces and '-' only");
        }
        HIE_ASSERT(n + 1 < out_bytes);
        out[n++] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
    }
    out[n] = '\0';
    return 0;
}

static int
coded_fields(const Hie__V1__Demographics *d, hie_mpi_person_t *p, hie_errinfo_t *info)
{
    size_t len = d->birth_date != NULL ? strlen(d->birth_date) : 0;
    if (len > 0 && hie_mpi_date_parse(hie_span(d->birth_date, len), &p->dob) != 0) {
        return hie_errinfo_set(info, HIE_EINVAL, "demographics.birth_date",
            "not a valid date (YYYY-MM-DD)");
    }
    if ((int)d->sex < 0 || d->sex > HIE__V1__SEX__SEX_UNKNOWN) {
        return hie_errinfo_set(info, HIE_EINVAL, "demographics.sex", "unknown code");
    }
    len = d->postcode != NULL ? strlen(d->postcode) : 0;
    if (len > 0) {
        int rc = hie_mpi_postcode_normalize(hie_span(d->postcode, len), p->postcode,
            sizeof(p->postcode));
        if (rc != 0) {
            return hie_errinfo_set(info, rc, "demographics.postcode",
                rc == HIE_ELIMIT ? "too long" : "letters and digits only");
        }
    }
    len = d->phone != NULL ? strlen(d->phone) : 0;
    if (len > 0) {
        int rc = hie_mpi_phone_normalize(hie_span(d->phone, len), p->phone, sizeof(p->phone));
        if (rc != 0) {
            return hie_errinfo_set(info, rc, "demographics.phone",
                rc == HIE_ELIMIT ? "too long" : "6 to 15 digits and separators only");
        }
    }
    int rc = email_field(d->email, p->email, sizeof(p->email), info);
    return rc != 0 ? rc : national_id_field(d->national_id, p->national_id,
        sizeof(p->national_id), info);
}

static int
person_fill(const Hie__V1__Demographics *d, hie_mpi_person_t *p, hie_errinfo_t *info)
{
    int rc = name_list(d->given, d->n_given, HIE_MPI_GIVEN_MAX, F_GIVEN, p->given,
        sizeof(p->given), info);
    if (rc == 0) {
        rc = name_list(d->family, d->n_family, HIE_MPI_FAMILY_MAX, F_FAMILY, p->family,
            sizeof(p->family), info);
    }
    if (rc == 0 && d->n_address_lines > HIE_MPI_ADDRESS_LINES_MAX) {
        rc = hie_errinfo_set(info, HIE_ELIMIT, "demographics.address_lines",
            "too many lines");
    }
    for (size_t i = 0; rc == 0 && i < d->n_address_lines; i++) {
        char line[HIE_MPI_FIELD_BYTES];
        rc = text_field(d->address_lines[i], "demographics.address_lines", line, sizeof(line),
            info);
        if (rc == 0 && p->street[0] == '\0') {
            memcpy(p->street, line, strlen(line) + 1);
        }
    }
    if (rc == 0) {
        rc = text_field(d->city, "demographics.city", p->city, sizeof(p->city), info);
    }
    if (rc == 0) {
        rc = coded_fields(d, p, info);
    }
    if (rc == 0 && p->given[0] != '\0' &&
        hie_mpi_given_canonical(p->given, p->given_canon, sizeof(p->given_canon)) != 0) {
        rc = hie_errinfo_set(info, HIE_ELIMIT, F_GIVEN, "name too long");
    }
    return rc;
}

int
hie_mpi_person_from_demographics(const Hie__V1__Demographics *d, hie_mpi_person_t *out,
    hie_errinfo_t *info)
{
    HIE_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    if (d == NULL) {
        return hie_errinfo_set(info, HIE_EINVAL, "demographics", "missing");
    }
    int rc = person_fill(d, out, info);
    if (rc == 0 && out->given[0] == '\0' && out->family[0] == '\0' && out->dob == 0) {
        rc = hie_errinfo_set(info, HIE_EINVAL, "demographics",
            "a name or the birth date is required");
    }
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    hie_mpi_person_prepare(out);
    return 0;
}

bool
hie_mpi_mrn_valid(const char *mrn)
{
    size_t len = mrn != NULL ? strlen(mrn) : 0;
    if (len == 0 || len > HIE_MPI_MRN_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)mrn[i] <= 0x20 || (unsigned char)mrn[i] >= 0x7f) {
            return false;
        }
    }
    return true;
}

void
hie_mpi_rec_hash(const hie_mpi_key_t *key, const char *org_id, const char *mrn,
    uint8_t out[HIE_MPI_REC_HASH_BYTES])
{
    HIE_ASSERT(key != NULL && org_id != NULL && mrn != NULL);
    uint8_t secret[16];
    hie_mpi_key_index_secret(key, secret);
    crypto_generichash_state st;
    crypto_generichash_init(&st, secret, sizeof(secret), HIE_MPI_REC_HASH_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)"hie-mpi-rec-v1", 15);
    crypto_generichash_update(&st, (const uint8_t *)org_id, strlen(org_id) + 1);
    crypto_generichash_update(&st, (const uint8_t *)mrn, strlen(mrn));
    crypto_generichash_final(&st, out, HIE_MPI_REC_HASH_BYTES);
    sodium_memzero(secret, sizeof(secret));
}

static int
feed_seal(const hie_mpi_key_t *key, const Hie__V1__MpiFeedRequest *req, hie_arena_t *arena,
    Hie__V1__MpiFeedCommand *cmd)
{
    Hie__V1__SealedPerson sp = HIE__V1__SEALED_PERSON__INIT;
    sp.mrn = req->patient->mrn;
    sp.demographics = req->demographics;
    size_t n = protobuf_c_message_get_packed_size(&sp.base);
    if (n > HIE_MPI_SEAL_PLAIN_BYTES_MAX) {
        return HIE_ELIMIT;
    }
    uint8_t *plain = hie_arena_alloc(arena, n + 1);
    uint8_t *nonce = hie_arena_alloc(arena, HIE_MPI_SEAL_NONCE_BYTES);
    uint8_t *sealed = hie_arena_alloc(arena, n + HIE_MPI_SEAL_OVERHEAD_BYTES);
    if (plain == NULL || nonce == NULL || sealed == NULL) {
        return HIE_ENOMEM;
    }
    HIE_ASSERT(protobuf_c_message_pack(&sp.base, plain) == n);
    randombytes_buf(nonce, HIE_MPI_SEAL_NONCE_BYTES);
    int rc = hie_mpi_seal(key, hie_span(plain, n), hie_span(cmd->rec_hash.data,
        cmd->rec_hash.len), nonce, sealed, n + HIE_MPI_SEAL_OVERHEAD_BYTES);
    sodium_memzero(plain, n);
    cmd->nonce.data = nonce;
    cmd->nonce.len = HIE_MPI_SEAL_NONCE_BYTES;
    cmd->sealed.data = sealed;
    cmd->sealed.len = n + HIE_MPI_SEAL_OVERHEAD_BYTES;
    uint8_t *id = hie_arena_alloc(arena, 16);
    if (id == NULL) {
        return HIE_ENOMEM;
    }
    hie_mpi_key_id(key, id);
    cmd->key_id.data = id;
    cmd->key_id.len = 16;
    return rc;
}

static int
feed_check(const char *org_id, const Hie__V1__MpiFeedRequest *req, hie_errinfo_t *info)
{
    if (req->action < HIE__V1__FEED_ACTION__FEED_CREATE ||
        req->action > HIE__V1__FEED_ACTION__FEED_UNLINK) {
        return hie_errinfo_set(info, HIE_EINVAL, "action", "create, update, merge or unlink");
    }
    if (req->patient == NULL || req->patient->org_id == NULL ||
        req->patient->org_id[0] == '\0') {
        return hie_errinfo_set(info, HIE_EINVAL, "patient.org_id", "missing");
    }
    if (strcmp(req->patient->org_id, org_id) != 0) {
        return hie_errinfo_set(info, HIE_EDENIED, "patient.org_id",
            "an organization can feed only its own MRNs");
    }
    if (!hie_mpi_mrn_valid(req->patient->mrn)) {
        return hie_errinfo_set(info, HIE_EINVAL, "patient.mrn",
            "1 to 64 printable ASCII characters, no spaces");
    }
    bool merge = req->action == HIE__V1__FEED_ACTION__FEED_MERGE;
    if (merge && !hie_mpi_mrn_valid(req->prior_mrn)) {
        return hie_errinfo_set(info, HIE_EINVAL, "prior_mrn",
            "1 to 64 printable ASCII characters, no spaces");
    }
    if (merge && strcmp(req->prior_mrn, req->patient->mrn) == 0) {
        return hie_errinfo_set(info, HIE_EINVAL, "prior_mrn", "same as patient.mrn");
    }
    if (!merge && req->prior_mrn != NULL && req->prior_mrn[0] != '\0') {
        return hie_errinfo_set(info, HIE_EINVAL, "prior_mrn", "only for merge");
    }
    return 0;
}

int
hie_mpi_feed_command(const hie_mpi_key_t *key, const char *org_id,
    const Hie__V1__MpiFeedRequest *req, hie_arena_t *arena, Hie__V1__MpiFeedCommand **out,
    hie_errinfo_t *info)
{
    HIE_ASSERT(key != NULL && org_id != NULL && req != NULL && out != NULL);
    *out = NULL;
    int rc = feed_check(org_id, req, info);
    bool with_demo = req->action == HIE__V1__FEED_ACTION__FEED_CREATE ||
        req->action == HIE__V1__FEED_ACTION__FEED_UPDATE;
    if (rc == 0 && with_demo) {
        hie_mpi_person_t p;
        rc = hie_mpi_person_from_demographics(req->demographics, &p, info);
        sodium_memzero(&p, sizeof(p));
    } else if (rc == 0 && req->demographics != NULL) {
        rc = hie_errinfo_set(info, HIE_EINVAL, "demographics", "only for create and update");
    }
    Hie__V1__MpiFeedCommand *cmd = rc == 0 ? hie_arena_alloc(arena, sizeof(*cmd)) : NULL;
    uint8_t *hash = rc == 0 ? hie_arena_alloc(arena, 2 * HIE_MPI_REC_HASH_BYTES) : NULL;
    if (rc == 0 && (cmd == NULL || hash == NULL)) {
        rc = HIE_ENOMEM;
    }
    if (rc != 0) {
        return rc;
    }
    hie__v1__mpi_feed_command__init(cmd);
    cmd->action = req->action;
    cmd->org_id = (char *)(uintptr_t)org_id;
    hie_mpi_rec_hash(key, org_id, req->patient->mrn, hash);
    cmd->rec_hash.data = hash;
    cmd->rec_hash.len = HIE_MPI_REC_HASH_BYTES;
    if (req->action == HIE__V1__FEED_ACTION__FEED_MERGE) {
        hie_mpi_rec_hash(key, org_id, req->prior_mrn, hash + HIE_MPI_REC_HASH_BYTES);
        cmd->prior_hash.data = hash + HIE_MPI_REC_HASH_BYTES;
        cmd->prior_hash.len = HIE_MPI_REC_HASH_BYTES;
    }
    rc = with_demo ? feed_seal(key, req, arena, cmd) : 0;
    if (rc == HIE_ELIMIT) {
        return hie_errinfo_set(info, rc, "demographics", "too large");
    }
    *out = rc == 0 ? cmd : NULL;
    return rc;
}
