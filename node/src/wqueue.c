/*
 * wqueue.c - merging a connection's queued frames before they are written (edge.c). A drain of
 * the workers' replies queues several frames for one connection; written one by one, each is
 * a TLS record and a write() of its own. Merged, they cost one of each (PIX/PDQ at 16 x 64:
 * the edges' CPU a query 10 -> 6 us, the clients' 10 -> 6; bench/RESULTS.md §7).
 */
#include "node_int.h"

#include <string.h>

size_t
hie_node__wq_merge(node_wbuf_t **head, node_wbuf_t **tail, size_t max)
{
    HIE_ASSERT(head != NULL && tail != NULL);
    node_wbuf_t *h = *head;
    if (h == NULL || h->off != 0 || h->tried || h->next == NULL || h->len >= max) {
        return 0;
    }
    size_t total = h->len, k = 0;
    for (node_wbuf_t *w = h->next; w != NULL && w->len <= max - total; w = w->next) {
        total += w->len;
        k++;
    }
    uint8_t *buf = k > 0 ? hie_mem_alloc(total) : NULL;
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, h->buf, h->len);
    size_t at = h->len;
    for (size_t i = 0; i < k; i++) {
        node_wbuf_t *w = h->next;
        memcpy(buf + at, w->buf, w->len);
        at += w->len;
        h->next = w->next;
        if (*tail == w) {
            *tail = h;
        }
        hie_mem_free(w->buf, w->len);
        hie_mem_free(w, sizeof(*w));
    }
    HIE_ASSERT(at == total);
    hie_mem_free(h->buf, h->len);
    h->buf = buf;
    h->len = total;
    return k;
}
