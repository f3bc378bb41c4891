/*
 * ctl_delivery.c - hiectl delivery dead|redrive: the dead letters of the delivery queues (metadata only)
 * and sending them back to their queue.
 */
#include "hiectl_int.h"

#include <stdio.h>
#include <string.h>

/* ---- delivery: dead letters ------------------------------------------------------------ */

static int
ctl_dead_list(const struct ctl *c, const char *org, hie_arena_t *arena)
{
    Hie__V1__AdminRequest req = HIE__V1__ADMIN_REQUEST__INIT;
    Hie__V1__AdminDeadList q = HIE__V1__ADMIN_DEAD_LIST__INIT;
    q.org_id = (char *)(uintptr_t)(org != NULL ? org : "");
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
    printf("dead_letters=%zu\n", reply->dead_list->n_letters);
    return 0;
}

int
hie_ctl__delivery(const struct ctl *c, int argc, char **argv, hie_arena_t *arena)
{
    if (argc >= 1 && argc <= 2 && strcmp(argv[0], "dead") == 0) {
        return ctl_dead_list(c, argc == 2 ? argv[1] : NULL, arena);
    }
    if (argc < 2 || argc > 3 || strcmp(argv[0], "redrive") != 0) {
        hie_ctl__usage(stderr);
        return 2;
    }
    uint64_t seq = 0;
    if (argc == 3 && !hie_ctl__parse_number(argv[2], UINT64_MAX, &seq)) {
        fprintf(stderr, "hiectl: delivery redrive: SEQ must be a number\n");
        return 2;
    }
    Hie__V1__RedriveCommand rd = HIE__V1__REDRIVE_COMMAND__INIT;
    rd.recipient_org = argv[1];
    rd.seq = seq;
    hie_command_t cmd = HIE__V1__COMMAND__INIT;
    cmd.body_case = HIE__V1__COMMAND__BODY_REDRIVE;
    cmd.redrive = &rd;
    return hie_ctl__command(c, &cmd, arena);
}

