/*
 * arena.c - a bump allocator with a hard cap, one per envelope (style.md 3.5). protobuf-c
 * unpacks into it; the whole envelope is freed at once. Blocks grow geometrically so a small
 * envelope costs one allocation and a 4 MiB one about a dozen.
 */
#include "hie/base.h"

#include <string.h>

#define ARENA_MAGIC 0x41524e41u /* "ARNA" */
#define ARENA_FIRST_BLOCK_BYTES 16384u
#define ARENA_FIRST_BLOCK_MIN 256u
#define ARENA_ALIGN 16u

struct arena_block {
    struct arena_block *next;
    size_t size;  /* usable bytes after the header */
    size_t used;
    _Alignas(16) unsigned char data[];
};

struct hie_arena {
    uint32_t magic;
    bool cap_hit;
    bool out_of_memory;   /* an allocation failed below the cap (the system's memory) */
    size_t cap_bytes;
    size_t used_bytes;
    size_t next_block_bytes;
    struct arena_block *head;
};

int
hie_arena_create(hie_arena_t **out, size_t cap_bytes)
{
    return hie_arena_create_first(out, cap_bytes, ARENA_FIRST_BLOCK_BYTES);
}

int
hie_arena_create_first(hie_arena_t **out, size_t cap_bytes, size_t first_bytes)
{
    HIE_ASSERT(out != NULL);
    HIE_ASSERT(first_bytes <= SIZE_MAX / 4);
    HIE_ASSERT(cap_bytes > 0);
    *out = NULL;
    hie_arena_t *a = hie_mem_calloc(1, sizeof(*a));
    if (a == NULL) {
        return HIE_ENOMEM;
    }
    a->magic = ARENA_MAGIC;
    a->cap_bytes = cap_bytes;
    a->next_block_bytes = first_bytes < ARENA_FIRST_BLOCK_MIN ? ARENA_FIRST_BLOCK_MIN
                                                              : first_bytes;
    *out = a;
    return 0;
}

void
hie_arena_destroy(hie_arena_t **arena)
{
    HIE_ASSERT(arena != NULL);
    hie_arena_t *a = *arena;
    if (a == NULL) {
        return;
    }
    HIE_ASSERT(a->magic == ARENA_MAGIC);
    struct arena_block *b = a->head;
    while (b != NULL) {
        struct arena_block *next = b->next;
        hie_mem_free(b, sizeof(*b) + b->size);
        b = next;
    }
    a->magic = 0;
    hie_mem_free(a, sizeof(*a));
    *arena = NULL;
}

void
hie_arena_reset(hie_arena_t *a)
{
    HIE_ASSERT(a != NULL && a->magic == ARENA_MAGIC);
    struct arena_block *keep = a->head;
    if (keep == NULL) {
        return;
    }
    struct arena_block *b = keep->next;
    while (b != NULL) {
        struct arena_block *next = b->next;
        hie_mem_free(b, sizeof(*b) + b->size);
        b = next;
    }
    keep->next = NULL;
    keep->used = 0;
    a->used_bytes = 0;
    a->cap_hit = false;
    a->out_of_memory = false;
}

void
hie_arena_wipe(hie_arena_t *a)
{
    HIE_ASSERT(a != NULL && a->magic == ARENA_MAGIC);
    for (struct arena_block *b = a->head; b != NULL; b = b->next) {
        explicit_bzero(b->data, b->used);
    }
}

static struct arena_block *
arena_grow(hie_arena_t *a, size_t bytes)
{
    size_t size = a->next_block_bytes;
    while (size < bytes) {
        if (size > (SIZE_MAX - sizeof(struct arena_block)) / 2) {
            return NULL; /* no block that large can exist */
        }
        size *= 2;
    }
    struct arena_block *b = hie_mem_alloc(sizeof(*b) + size);
    if (b == NULL) {
        return NULL;
    }
    b->size = size;
    b->used = 0;
    b->next = a->head;
    a->head = b;
    if (a->next_block_bytes < 1024u * 1024u) {
        a->next_block_bytes *= 2;
    }
    return b;
}

void *
hie_arena_alloc(hie_arena_t *a, size_t bytes)
{
    HIE_ASSERT(a != NULL);
    HIE_ASSERT(a->magic == ARENA_MAGIC);
    if (bytes > a->cap_bytes || bytes > SIZE_MAX - ARENA_ALIGN) {
        a->cap_hit = true;
        return NULL;
    }
    size_t rounded = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (rounded == 0) {
        rounded = ARENA_ALIGN;
    }
    if (a->used_bytes + rounded > a->cap_bytes) {
        a->cap_hit = true;
        return NULL;
    }
    struct arena_block *b = a->head;
    if (b == NULL || b->size - b->used < rounded) {
        b = arena_grow(a, rounded);
        if (b == NULL) {
            a->out_of_memory = true;
            return NULL;
        }
    }
    void *p = b->data + b->used;
    b->used += rounded;
    a->used_bytes += rounded;
    HIE_ASSERT(b->used <= b->size);
    return p;
}

bool
hie_arena_out_of_memory(const hie_arena_t *a)
{
    HIE_ASSERT(a != NULL && a->magic == ARENA_MAGIC);
    return a->out_of_memory;
}

bool
hie_arena_cap_hit(const hie_arena_t *a)
{
    HIE_ASSERT(a != NULL);
    return a->cap_hit;
}

size_t
hie_arena_used_bytes(const hie_arena_t *a)
{
    HIE_ASSERT(a != NULL);
    return a->used_bytes;
}
