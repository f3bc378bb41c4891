/*
 * errmap.c - the one table from HIE_E* codes to wire Error codes, and enum names.
 * Adding an HIE_E* code means adding its row here; the default is INTERNAL (fail closed).
 */
#include "proto_int.h"

#include <string.h>

Hie__V1__ErrorCode
hie_proto_error_code(int rc)
{
    switch (rc) {
    case 0:
        return HIE__V1__ERROR_CODE__ERROR_UNSPECIFIED;
    case HIE_EINVAL:
    case HIE_EPROTO:
    case HIE_ELIMIT:
        return HIE__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    case HIE_EUNAUTH:
        return HIE__V1__ERROR_CODE__ERROR_UNAUTHENTICATED;
    case HIE_EDENIED:
        return HIE__V1__ERROR_CODE__ERROR_FORBIDDEN;
    case HIE_ENOTFOUND:
        return HIE__V1__ERROR_CODE__ERROR_NOT_FOUND;
    case HIE_EBUSY:
    case HIE_EAGAIN:
        return HIE__V1__ERROR_CODE__ERROR_OVERLOADED;
    case HIE_EUNAVAIL:
    case HIE_ETIMEDOUT:
        return HIE__V1__ERROR_CODE__ERROR_UNAVAILABLE;
    default:
        return HIE__V1__ERROR_CODE__ERROR_INTERNAL;
    }
}

static const char *const error_code_names[] = {
    "UNSPECIFIED", "BAD_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "CONSENT_DENIED",
    "NOT_FOUND", "OVERLOADED", "UNAVAILABLE", "INTERNAL",
};

const char *
hie_proto_error_code_name(Hie__V1__ErrorCode code)
{
    if ((size_t)code < HIE_ARRAY_LEN(error_code_names)) {
        return error_code_names[code];
    }
    return "UNKNOWN";
}

static const char *const role_names[] = {
    "unspecified", "hospital", "clinic", "lab", "payer", "auditor", "operator", "node",
};

const char *
hie_proto_role_name(Hie__V1__Role role)
{
    if ((size_t)role < HIE_ARRAY_LEN(role_names)) {
        return role_names[role];
    }
    return "unknown";
}

int
hie_proto_role_parse(const char *s, Hie__V1__Role *out)
{
    HIE_ASSERT(out != NULL);
    for (size_t i = 1; i < HIE_ARRAY_LEN(role_names); i++) {
        if (strcmp(s, role_names[i]) == 0) {
            *out = (Hie__V1__Role)i;
            return 0;
        }
    }
    return HIE_EINVAL;
}

static const char *const purpose_names[] = {
    "unspecified", "treatment", "emergency", "payment", "operations", "public-health",
    "research", "patient-request",
};

const char *
hie_proto_purpose_name(Hie__V1__PurposeOfUse p)
{
    if ((size_t)p < HIE_ARRAY_LEN(purpose_names)) {
        return purpose_names[p];
    }
    return "unknown";
}

const char *
hie_proto_body_name(const hie_envelope_t *env)
{
    HIE_ASSERT(env != NULL);
    switch (env->body_case) {
    case HIE__V1__ENVELOPE__BODY_PING:
        return "ping";
    case HIE__V1__ENVELOPE__BODY_PONG:
        return "pong";
    case HIE__V1__ENVELOPE__BODY_WHOAMI:
        return "whoami";
    case HIE__V1__ENVELOPE__BODY_WHOAMI_REPLY:
        return "whoami_reply";
    case HIE__V1__ENVELOPE__BODY_ERROR:
        return "error";
    case HIE__V1__ENVELOPE__BODY_MPI_FEED:
        return "mpi_feed";
    case HIE__V1__ENVELOPE__BODY_MPI_FEED_REPLY:
        return "mpi_feed_reply";
    case HIE__V1__ENVELOPE__BODY_PIX_QUERY:
        return "pix_query";
    case HIE__V1__ENVELOPE__BODY_PIX_REPLY:
        return "pix_reply";
    case HIE__V1__ENVELOPE__BODY_PDQ_QUERY:
        return "pdq_query";
    case HIE__V1__ENVELOPE__BODY_PDQ_REPLY:
        return "pdq_reply";
    case HIE__V1__ENVELOPE__BODY_REVIEW_LIST:
        return "review_list";
    case HIE__V1__ENVELOPE__BODY_REVIEW_LIST_REPLY:
        return "review_list_reply";
    case HIE__V1__ENVELOPE__BODY_REVIEW_DECIDE:
        return "review_decide";
    case HIE__V1__ENVELOPE__BODY_REVIEW_DECIDE_REPLY:
        return "review_decide_reply";
    case HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT:
        return "consent_submit";
    case HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT_REPLY:
        return "consent_submit_reply";
    case HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE:
        return "consent_revoke";
    case HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE_REPLY:
        return "consent_revoke_reply";
    case HIE__V1__ENVELOPE__BODY_CONSENT_LIST:
        return "consent_list";
    case HIE__V1__ENVELOPE__BODY_CONSENT_LIST_REPLY:
        return "consent_list_reply";
    case HIE__V1__ENVELOPE__BODY_AUDIT_REPORT:
        return "audit_report";
    case HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY:
        return "audit_report_reply";
    case HIE__V1__ENVELOPE__BODY_PUSH:
        return "push";
    case HIE__V1__ENVELOPE__BODY_PUSH_REPLY:
        return "push_reply";
    case HIE__V1__ENVELOPE__BODY_RECEIVE:
        return "receive";
    case HIE__V1__ENVELOPE__BODY_RECEIVE_REPLY:
        return "receive_reply";
    case HIE__V1__ENVELOPE__BODY_DELIVERY:
        return "delivery";
    case HIE__V1__ENVELOPE__BODY_DELIVERY_ACK:
        return "delivery_ack";
    case HIE__V1__ENVELOPE__BODY_DELIVERY_ACK_REPLY:
        return "delivery_ack_reply";
    default:
        return "none";
    }
}
