/*
 * test_wqueue.c - hie_node__wq_merge (node/src/wqueue.c): frames merged in order up to the
 * limit, the tail kept right, and nothing merged into a head that is partly written or whose
 * write OpenSSL wants repeated, nor into one already at the limit.
 */
#include "node_int.h"

#include <criterion/criterion.h>
#include <string.h>

/* A queue of n frames, frame i holding lens[i] bytes of 'a' + i. */
static void
queue_make(node_wbuf_t **head, node_wbuf_t **tail, const size_t *lens, size_t n)
{
    *head = *tail = NULL;
    for (size_t i = 0; i < n; i++) {
        node_wbuf_t *w = hie_mem_calloc(1, sizeof(*w));
        cr_assert_not_null(w);
        w->buf = hie_mem_alloc(lens[i] > 0 ? lens[i] : 1);
        cr_assert_not_null(w->buf);
        memset(w->buf, 'a' + (int)i, lens[i]);
        w->len = lens[i];
        if (*tail != NULL) {
            (*tail)->next = w;
        } else {
            *head = w;
        }
        *tail = w;
    }
}

static void
queue_free(node_wbuf_t **head, node_wbuf_t **tail)
{
    while (*head != NULL) {
        node_wbuf_t *w = *head;
        *head = w->next;
        hie_mem_free(w->buf, w->len);
        hie_mem_free(w, sizeof(*w));
    }
    *tail = NULL;
}

static size_t
queue_count(const node_wbuf_t *h)
{
    size_t n = 0;
    for (; h != NULL; h = h->next) {
        n++;
    }
    return n;
}

/* The bytes of the queue, in order, are frame 0's, then frame 1's, ...: checked by content. */
static void
queue_expect(const node_wbuf_t *h, const size_t *lens, size_t n)
{
    size_t frame = 0, in = 0;
    for (; h != NULL; h = h->next) {
        for (size_t b = 0; b < h->len; b++) {
            while (frame < n && in == lens[frame]) {
                frame++;
                in = 0;
            }
            cr_assert_lt(frame, n);
            cr_assert_eq(h->buf[b], (uint8_t)('a' + frame), "byte %zu of a buffer", b);
            in++;
        }
    }
}

Test(node_wqueue, merges_in_order_up_to_the_limit_and_keeps_the_tail)
{
    static const size_t lens[] = {100, 200, 0, 300, 5000, 50};
    node_wbuf_t *head = NULL, *tail = NULL;
    int64_t before = hie_mem_live_bytes();
    queue_make(&head, &tail, lens, 6);
    /* 100 + 200 + 0 + 300 fit in 1000, 5000 does not: three merged, three frames left */
    cr_assert_eq(hie_node__wq_merge(&head, &tail, 1000), 3u);
    cr_assert_eq(head->len, 600u);
    cr_assert_eq(queue_count(head), 3u);
    queue_expect(head, lens, 6);
    /* the 600-byte head, then 5000 and 50 fit in 16 KiB: the tail becomes the head */
    cr_assert_eq(hie_node__wq_merge(&head, &tail, 16384), 2u);
    cr_assert_eq(queue_count(head), 1u);
    cr_assert_eq(tail, head);
    cr_assert_eq(head->len, 5650u);
    queue_expect(head, lens, 6);
    cr_assert_eq(hie_node__wq_merge(&head, &tail, 16384), 0u, "one frame: nothing to merge");
    queue_free(&head, &tail);
    cr_assert_eq(hie_mem_live_bytes(), before);
}

Test(node_wqueue, leaves_a_started_repeated_or_full_head_alone)
{
    static const size_t lens[] = {400, 400, 400};
    node_wbuf_t *head = NULL, *tail = NULL;
    queue_make(&head, &tail, lens, 3);
    head->off = 10; /* partly written */
    cr_assert_eq(hie_node__wq_merge(&head, &tail, 16384), 0u);
    head->off = 0;
    head->tried = true; /* OpenSSL wants this very write again */
    cr_assert_eq(hie_node__wq_merge(&head, &tail, 16384), 0u);
    head->tried = false;
    cr_assert_eq(hie_node__wq_merge(&head, &tail, 400), 0u, "the head alone fills the limit");
    cr_assert_eq(hie_node__wq_merge(&head, &tail, 799), 0u, "the next frame does not fit");
    cr_assert_eq(queue_count(head), 3u);
    cr_assert_eq(hie_node__wq_merge(&head, &tail, 800), 1u);
    cr_assert_eq(queue_count(head), 2u);
    cr_assert_neq(tail, head);
    queue_expect(head, lens, 3);
    queue_free(&head, &tail);
    node_wbuf_t *none = NULL, *none_tail = NULL;
    cr_assert_eq(hie_node__wq_merge(&none, &none_tail, 16384), 0u, "an empty queue");
}
