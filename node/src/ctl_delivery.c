/*
 * ctl_delivery.c - hiectl delivery dead|redrive|purge: the dead letters of the delivery
 * queues (metadata only), sending them back to their queue or deleting them; hiectl
 * subscription list|cancel: the members' ADT subscriptions, their subscribers' queue depths,
 * and ending one for a member.
 */
#include "hiectl_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* ---- delivery: dead letters ------------------------------------------------------------ */

static int
ctl_dead_list(const struct ctl *c, const char *org, const char *after, hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__AdminDeadList q = HIE__V1__ADMIN_DEAD_LIST__INIT;
    q.org_id = (char *)(uintptr_t)(org != NULL ? org : "");
    if (after != NULL && !hie_ctl__parse_number(after, UINT64_MAX, &q.after_seq)) {
        fprintf(stderr, "hiectl: delivery dead: AFTER_SEQ must be a number\n");
        return 2;
    }
    if (org == NULL && c->org != NULL) { /* every recipient's, from --org and --after on */
        q.from_org = (char *)(uintptr_t)c->org;
        q.after_seq = c->after;
    }
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_DEAD_LIST;
    req.dead_list = &q;
    Hie__V1__AdminReply *reply = hie_ctl__call(c, &req, arena);
    if (reply->body_case != HIE__V1__ADMIN_REPLY__BODY_DEAD_LIST) {
        fprintf(stderr, "hiectl: unexpected answer\n");
        return 3;
    }
    for (size_t i = 0; i < reply->dead_list->n_letters; i++) {
        const Hie__V1__DeadLetter *d = reply->dead_list->letters[i];
        printf("recipient=%s seq=%lu message_id=%s sender=%s attempts=%u reason=%s "
            "accepted_ms=%ld dead_ms=%ld bytes=%lu\n", d->recipient_org,
            (unsigned long)d->seq, d->message_id, d->sender_org, d->attempts, d->reason,
            (long)d->accepted_ms, (long)d->dead_ms, (unsigned long)d->content_bytes);
    }
    size_t n = reply->dead_list->n_letters;
    printf("dead_letters=%zu%s\n", n, reply->dead_list->truncated ? " truncated=true" : "");
    if (reply->dead_list->truncated && n > 0) { /* the next page, by (recipient, seq) */
        const Hie__V1__DeadLetter *last = reply->dead_list->letters[n - 1];
        printf(org != NULL ? "more: hiectl delivery dead %s %lu\n"
                           : "more: hiectl delivery dead --org %s --after %lu\n",
            last->recipient_org, (unsigned long)last->seq);
    }
    return 0;
}

int
hie_ctl__delivery(const struct ctl *c, int argc, char **argv, hie_arena_t *arena)
{
    if (argc >= 1 && argc <= 3 && strcmp(argv[0], "dead") == 0) {
        return ctl_dead_list(c, argc >= 2 ? argv[1] : NULL, argc == 3 ? argv[2] : NULL, arena);
    }
    bool purge = argc >= 1 && strcmp(argv[0], "purge") == 0;
    if (argc < 2 || argc > 3 || (strcmp(argv[0], "redrive") != 0 && !purge)) {
        hie_ctl__usage(stderr);
        return 2;
    }
    uint64_t seq = 0;
    if (argc == 3 && (!hie_ctl__parse_number(argv[2], UINT64_MAX, &seq) || seq == 0)) {
        fprintf(stderr, "hiectl: delivery %s: SEQ must be a number (1 or more)\n", argv[0]);
        return 2;
    }
    Hie__V1__RedriveCommand rd = HIE__V1__REDRIVE_COMMAND__INIT;
    Hie__V1__DeadPurgeCommand dp = HIE__V1__DEAD_PURGE_COMMAND__INIT;
    rd.recipient_org = dp.recipient_org = argv[1];
    rd.seq = dp.seq = seq;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.body_case = purge ? HIE__V1__COMMAND__BODY_DEAD_PURGE : HIE__V1__COMMAND__BODY_REDRIVE;
    if (purge) {
        cmd.dead_purge = &dp;
    } else {
        cmd.redrive = &rd;
    }
    return hie_ctl__command(c, &cmd, arena);
}

/* ---- repository ---------------------------------------------------------------------------- */

int
hie_ctl__repository(const struct ctl *c, int argc, char **argv, hie_arena_t *arena)
{
    if (argc != 2 || strcmp(argv[0], "retract") != 0) {
        hie_ctl__usage(stderr);
        return 2;
    }
    hie_errinfo_t info = {0};
    if (hie_proto_retract_validate(argv[1], c->reason, &info) != 0) {
        fprintf(stderr, "hiectl: repository retract: %s: %s\n", info.field, info.reason);
        return 2;
    }
    Hie__V1__RetractCommand rt = HIE__V1__RETRACT_COMMAND__INIT;
    rt.document_id = argv[1];
    rt.reason = (char *)(uintptr_t)(c->reason != NULL ? c->reason : "");
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.body_case = HIE__V1__COMMAND__BODY_RETRACT;
    cmd.retract = &rt;
    return hie_ctl__command(c, &cmd, arena);
}

/* ---- subscriptions ------------------------------------------------------------------------- */

/* An enum value's protobuf name without its prefix, lowercased ("ADT_A01" -> "a01"). */
static const char *
enum_word(const ProtobufCEnumDescriptor *d, int v, const char *prefix, char *buf, size_t cap)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    const char *name = ev != NULL ? ev->name : "unknown";
    size_t n = strlen(prefix);
    name = strncmp(name, prefix, n) == 0 ? name + n : name;
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < cap; i++) {
        buf[i] = (char)tolower((unsigned char)name[i]);
    }
    buf[i] = '\0';
    return buf;
}

/* "a01,a03" or "all". */
static void
enum_list(const ProtobufCEnumDescriptor *d, const int *v, size_t n, const char *prefix,
    char *out, size_t cap)
{
    char w[32];
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 1 < cap; i++) {
        int k = snprintf(out + used, cap - used, "%s%s", i ? "," : "",
            enum_word(d, v[i], prefix, w, sizeof(w)));
        used += k > 0 ? (size_t)k : 0;
    }
    if (n == 0) {
        snprintf(out, cap, "all");
    }
}

static int
ctl_subs_list(const struct ctl *c, const char *org, hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__AdminSubsList q = HIE__V1__ADMIN_SUBS_LIST__INIT;
    q.org_id = (char *)(uintptr_t)(org != NULL ? org : "");
    req.body_case = HIE__V1__ADMIN_REQUEST__BODY_SUBS_LIST;
    req.subs_list = &q;
    Hie__V1__AdminReply *reply = hie_ctl__call(c, &req, arena);
    if (reply->body_case != HIE__V1__ADMIN_REPLY__BODY_SUBS_LIST) {
        fprintf(stderr, "hiectl: unexpected answer\n");
        return 3;
    }
    const Hie__V1__AdminSubsListReply *r = reply->subs_list;
    for (size_t i = 0; i < r->n_subscriptions; i++) {
        const Hie__V1__Subscription *s = r->subscriptions[i];
        char scope[32], events[160], classes[96];
        enum_word(&hie__v1__subscription_scope__descriptor, s->scope, "SCOPE_", scope,
            sizeof(scope));
        enum_list(&hie__v1__adt_event__descriptor, (const int *)s->events, s->n_events, "ADT_",
            events, sizeof(events));
        enum_list(&hie__v1__patient_class__descriptor, (const int *)s->classes, s->n_classes,
            "PATIENT_CLASS_", classes, sizeof(classes));
        printf("id=%s org=%s scope=%s roster=%u events=%s classes=%s last_event=%lu "
            "created_ms=%ld queued=%lu\n", s->id, s->org_id, scope, s->roster_size, events,
            classes, (unsigned long)s->event_number, (long)s->created_ms,
            (unsigned long)(i < r->n_queued ? r->queued[i] : 0));
    }
    printf("subscriptions=%zu%s\n", r->n_subscriptions, r->truncated ? " truncated=yes" : "");
    return 0;
}

int
hie_ctl__subscription(const struct ctl *c, int argc, char **argv, hie_arena_t *arena)
{
    if (argc >= 1 && argc <= 2 && strcmp(argv[0], "list") == 0) {
        return ctl_subs_list(c, argc == 2 ? argv[1] : NULL, arena);
    }
    if (argc != 2 || strcmp(argv[0], "cancel") != 0) {
        hie_ctl__usage(stderr);
        return 2;
    }
    Hie__V1__UnsubscribeCommand u = HIE__V1__UNSUBSCRIBE_COMMAND__INIT;
    u.subscription_id = argv[1];
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.body_case = HIE__V1__COMMAND__BODY_UNSUBSCRIBE;
    cmd.unsubscribe = &u;
    return hie_ctl__command(c, &cmd, arena);
}
