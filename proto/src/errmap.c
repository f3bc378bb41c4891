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
    case HIE_ENOSPC:
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

static const struct {
    Hie__V1__Envelope__BodyCase body;
    const char *name;
} BODY_NAMES[] = {
    {HIE__V1__ENVELOPE__BODY_QUERY_FORWARD, "query_forward"},
    {HIE__V1__ENVELOPE__BODY_QUERY_ANSWER, "query_answer"},
    {HIE__V1__ENVELOPE__BODY_QUERY_ANSWER_REPLY, "query_answer_reply"},
    {HIE__V1__ENVELOPE__BODY_RESPONDER_REGISTER, "responder_register"},
    {HIE__V1__ENVELOPE__BODY_RETRACT, "retract"},
    {HIE__V1__ENVELOPE__BODY_RETRACT_REPLY, "retract_reply"},
    {HIE__V1__ENVELOPE__BODY_RESPONDER_REGISTER_REPLY, "responder_register_reply"},
    {HIE__V1__ENVELOPE__BODY_REPLAY, "replay"},
    {HIE__V1__ENVELOPE__BODY_REPLAY_REPLY, "replay_reply"},
    {HIE__V1__ENVELOPE__BODY_HEARTBEAT, "heartbeat"},
    {HIE__V1__ENVELOPE__BODY_RECORD_QUERY, "record_query"},
    {HIE__V1__ENVELOPE__BODY_RECORD_QUERY_REPLY, "record_query_reply"},
    {HIE__V1__ENVELOPE__BODY_RETRIEVE, "retrieve"},
    {HIE__V1__ENVELOPE__BODY_RETRIEVE_REPLY, "retrieve_reply"},
    {HIE__V1__ENVELOPE__BODY_PING, "ping"},
    {HIE__V1__ENVELOPE__BODY_PONG, "pong"},
    {HIE__V1__ENVELOPE__BODY_WHOAMI, "whoami"},
    {HIE__V1__ENVELOPE__BODY_WHOAMI_REPLY, "whoami_reply"},
    {HIE__V1__ENVELOPE__BODY_ERROR, "error"},
    {HIE__V1__ENVELOPE__BODY_MPI_FEED, "mpi_feed"},
    {HIE__V1__ENVELOPE__BODY_MPI_FEED_REPLY, "mpi_feed_reply"},
    {HIE__V1__ENVELOPE__BODY_PIX_QUERY, "pix_query"},
    {HIE__V1__ENVELOPE__BODY_PIX_REPLY, "pix_reply"},
    {HIE__V1__ENVELOPE__BODY_PDQ_QUERY, "pdq_query"},
    {HIE__V1__ENVELOPE__BODY_PDQ_REPLY, "pdq_reply"},
    {HIE__V1__ENVELOPE__BODY_REVIEW_LIST, "review_list"},
    {HIE__V1__ENVELOPE__BODY_REVIEW_LIST_REPLY, "review_list_reply"},
    {HIE__V1__ENVELOPE__BODY_REVIEW_DECIDE, "review_decide"},
    {HIE__V1__ENVELOPE__BODY_REVIEW_DECIDE_REPLY, "review_decide_reply"},
    {HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT, "consent_submit"},
    {HIE__V1__ENVELOPE__BODY_CONSENT_SUBMIT_REPLY, "consent_submit_reply"},
    {HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE, "consent_revoke"},
    {HIE__V1__ENVELOPE__BODY_CONSENT_REVOKE_REPLY, "consent_revoke_reply"},
    {HIE__V1__ENVELOPE__BODY_CONSENT_LIST, "consent_list"},
    {HIE__V1__ENVELOPE__BODY_CONSENT_LIST_REPLY, "consent_list_reply"},
    {HIE__V1__ENVELOPE__BODY_AUDIT_REPORT, "audit_report"},
    {HIE__V1__ENVELOPE__BODY_AUDIT_REPORT_REPLY, "audit_report_reply"},
    {HIE__V1__ENVELOPE__BODY_PUSH, "push"},
    {HIE__V1__ENVELOPE__BODY_PUSH_REPLY, "push_reply"},
    {HIE__V1__ENVELOPE__BODY_RECEIVE, "receive"},
    {HIE__V1__ENVELOPE__BODY_RECEIVE_REPLY, "receive_reply"},
    {HIE__V1__ENVELOPE__BODY_DELIVERY, "delivery"},
    {HIE__V1__ENVELOPE__BODY_DELIVERY_ACK, "delivery_ack"},
    {HIE__V1__ENVELOPE__BODY_DELIVERY_ACK_REPLY, "delivery_ack_reply"},
    {HIE__V1__ENVELOPE__BODY_ADT, "adt"},
    {HIE__V1__ENVELOPE__BODY_ADT_REPLY, "adt_reply"},
    {HIE__V1__ENVELOPE__BODY_SUBSCRIBE, "subscribe"},
    {HIE__V1__ENVELOPE__BODY_SUBSCRIBE_REPLY, "subscribe_reply"},
    {HIE__V1__ENVELOPE__BODY_ROSTER_UPDATE, "roster_update"},
    {HIE__V1__ENVELOPE__BODY_ROSTER_UPDATE_REPLY, "roster_update_reply"},
    {HIE__V1__ENVELOPE__BODY_UNSUBSCRIBE, "unsubscribe"},
    {HIE__V1__ENVELOPE__BODY_UNSUBSCRIBE_REPLY, "unsubscribe_reply"},
};

const char *
hie_proto_body_name(const hie_envelope_t *env)
{
    HIE_ASSERT(env != NULL);
    for (size_t i = 0; i < sizeof(BODY_NAMES) / sizeof(BODY_NAMES[0]); i++) {
        if (BODY_NAMES[i].body == env->body_case) {
            return BODY_NAMES[i].name;
        }
    }
    return "none";
}
