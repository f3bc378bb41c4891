/*
 * batch.c - an audit batch command packed one record at a time (hie/proto.h,
 * hie_proto_batch_t). A worker stages the audit records of one wakeup; packing each as it is
 * staged lets the exchange's arena go at once (kept alive for the whole wakeup, 64 arenas of
 * fresh memory made the same MPI work ~0.4 us a query slower: cache misses), and the batch
 * needs no second pass over its records to send.
 *
 * Protobuf's encoding makes this exact: a message is its fields in order, and protobuf-c packs
 * them by field number. The header's fields are 1-4, the body 40 (audit_append) or 42
 * (audit_batch), and AuditBatchCommand's only field is the repeated 1: header || body tag ||
 * length || items is what hie_proto_pack gives (tests/unit/proto compare the bytes).
 */
#include "proto_int.h"

#include <string.h>

#define TAG_LEN 2u                                /* wire type: length-delimited */
#define BATCH_ITEM_TAG ((1u << 3) | TAG_LEN)      /* AuditBatchCommand.appends */
#define CMD_APPEND_FIELD 40u                      /* Command.audit_append */
#define CMD_BATCH_FIELD 42u                       /* Command.audit_batch */
#define VARINT_BYTES_MAX 10u
#define BATCH_KEEP_BYTES (256u * 1024u)           /* a buffer kept between batches, at most */

static size_t
varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t
varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static void
header_of(const hie_command_t *head, hie_command_t *h)
{
    hie__v1__command__init(h);
    h->requester = head->requester;
    h->request_id = head->request_id;
    h->time_ms = head->time_ms;
    h->node_id = head->node_id;
}

/* The command's size with items (n records of which the first's packed form is first_len). */
static size_t
command_size(size_t head_len, size_t items_len, size_t n, size_t first_len)
{
    if (n == 1) {
        return head_len + varint_size((CMD_APPEND_FIELD << 3) | TAG_LEN) +
               varint_size(first_len) + first_len;
    }
    return head_len + varint_size((CMD_BATCH_FIELD << 3) | TAG_LEN) + varint_size(items_len) +
           items_len;
}

static int
grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap) {
        return 0;
    }
    size_t want = *cap > 0 ? *cap : 4096u;
    while (want < need) {
        want *= 2;
    }
    uint8_t *p = hie_mem_realloc(*buf, *cap, want);
    if (p == NULL) {
        return HIE_ENOMEM;
    }
    *buf = p;
    *cap = want;
    return 0;
}

int
hie_proto_batch_add(hie_proto_batch_t *b, const hie_command_t *head,
    const Hie__V1__AuditAppendCommand *ac, size_t bytes_max)
{
    HIE_ASSERT(b != NULL && head != NULL && ac != NULL);
    size_t n = protobuf_c_message_get_packed_size(&ac->base);
    size_t item = 1 + varint_size(n) + n, head_len = b->head_len;
    hie_command_t h;
    if (b->count == 0) {
        header_of(head, &h);
        head_len = protobuf_c_message_get_packed_size(&h.base);
    }
    size_t first_len = b->count == 0 ? n : b->items_len - b->first_item_at;
    if (command_size(head_len, b->items_len + item, b->count + 1, first_len) > bytes_max) {
        return HIE_ELIMIT;
    }
    if (b->count == 0) {
        if (grow(&b->head, &b->head_cap, head_len) != 0) {
            return HIE_ENOMEM;
        }
        b->head_len = protobuf_c_message_pack(&h.base, b->head);
        HIE_ASSERT(b->head_len == head_len);
        b->items_len = 0;
    }
    if (grow(&b->items, &b->items_cap, b->items_len + item) != 0) {
        return HIE_ENOMEM;
    }
    uint8_t *at = b->items + b->items_len;
    at[0] = BATCH_ITEM_TAG;
    size_t pre = 1 + varint_put(at + 1, n);
    HIE_ASSERT(pre + n == item);
    size_t packed = protobuf_c_message_pack(&ac->base, at + pre);
    HIE_ASSERT(packed == n);
    if (b->count == 0) {
        b->first_item_at = pre;
    }
    b->items_len += item;
    b->count++;
    return 0;
}

int
hie_proto_batch_pack(const hie_proto_batch_t *b, size_t bytes_max, uint8_t **out_buf,
    size_t *out_len)
{
    HIE_ASSERT(b != NULL && b->count > 0 && out_buf != NULL && out_len != NULL);
    *out_buf = NULL;
    *out_len = 0;
    bool one = b->count == 1;
    const uint8_t *body = one ? b->items + b->first_item_at : b->items;
    size_t body_len = one ? b->items_len - b->first_item_at : b->items_len;
    size_t n = command_size(b->head_len, b->items_len, b->count, body_len);
    if (n > bytes_max) {
        return HIE_ELIMIT;
    }
    uint8_t *buf = hie_mem_alloc(n);
    if (buf == NULL) {
        return HIE_ENOMEM;
    }
    memcpy(buf, b->head, b->head_len);
    size_t at = b->head_len;
    at += varint_put(buf + at, ((one ? CMD_APPEND_FIELD : CMD_BATCH_FIELD) << 3) | TAG_LEN);
    at += varint_put(buf + at, body_len);
    memcpy(buf + at, body, body_len);
    HIE_ASSERT(at + body_len == n);
    *out_buf = buf;
    *out_len = n;
    return 0;
}

void
hie_proto_batch_reset(hie_proto_batch_t *b)
{
    HIE_ASSERT(b != NULL);
    if (b->items_cap > BATCH_KEEP_BYTES) { /* one large batch does not pin its buffer */
        hie_proto_batch_free(b);
    }
    b->head_len = b->items_len = b->first_item_at = b->count = 0;
}

void
hie_proto_batch_free(hie_proto_batch_t *b)
{
    HIE_ASSERT(b != NULL);
    hie_mem_free(b->head, b->head_cap);
    hie_mem_free(b->items, b->items_cap);
    memset(b, 0, sizeof(*b));
}
