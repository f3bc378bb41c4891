/*
 * mem.c - the allocator hooks every module allocates through (style.md 3.5).
 *
 * Counters are atomics so tests can check for leaks and inject failures (the SQLite and libuv
 * OOM sweeps). Failure injection is a test-only feature: production never sets it.
 */
#include "hie/base.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static _Atomic int64_t mem_live_bytes;
static _Atomic uint64_t mem_fail_countdown; /* 0: off; 1: the next allocation fails */
static _Atomic bool mem_failing;

static bool
mem_should_fail(void)
{
    if (atomic_load_explicit(&mem_failing, memory_order_relaxed)) {
        return true;
    }
    uint64_t n = atomic_load_explicit(&mem_fail_countdown, memory_order_relaxed);
    if (n == 0) {
        return false;
    }
    n = atomic_fetch_sub(&mem_fail_countdown, 1);
    if (n == 1) {
        atomic_store(&mem_failing, true);
        return true;
    }
    return false;
}

void
hie_mem_fail_after(uint64_t n)
{
    atomic_store(&mem_failing, false);
    atomic_store(&mem_fail_countdown, n);
}

int64_t
hie_mem_live_bytes(void)
{
    return atomic_load(&mem_live_bytes);
}

void *
hie_mem_alloc(size_t bytes)
{
    if (bytes == 0) {
        bytes = 1;
    }
    if (mem_should_fail()) {
        return NULL;
    }
    void *p = malloc(bytes);
    if (p != NULL) {
        atomic_fetch_add_explicit(&mem_live_bytes, (int64_t)bytes, memory_order_relaxed);
    }
    return p;
}

void *
hie_mem_calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) {
        return NULL;
    }
    void *p = hie_mem_alloc(count * size);
    if (p != NULL) {
        memset(p, 0, count * size == 0 ? 1 : count * size);
    }
    return p;
}

void *
hie_mem_realloc(void *ptr, size_t old_bytes, size_t new_bytes)
{
    if (ptr == NULL) {
        return hie_mem_alloc(new_bytes);
    }
    if (new_bytes == 0) {
        new_bytes = 1;
    }
    if (mem_should_fail()) {
        return NULL;
    }
    void *p = realloc(ptr, new_bytes);
    if (p != NULL) {
        atomic_fetch_add_explicit(&mem_live_bytes, (int64_t)new_bytes - (int64_t)old_bytes,
            memory_order_relaxed);
    }
    return p;
}

void
hie_mem_free(void *ptr, size_t bytes)
{
    if (ptr == NULL) {
        return;
    }
    if (bytes == 0) {
        bytes = 1;
    }
    atomic_fetch_sub_explicit(&mem_live_bytes, (int64_t)bytes, memory_order_relaxed);
    free(ptr);
}

void
hie_mem_free_wipe(void *ptr, size_t bytes)
{
    if (ptr == NULL) {
        return;
    }
    sodium_memzero(ptr, bytes);
    hie_mem_free(ptr, bytes);
}

char *
hie_mem_strdup(const char *s)
{
    HIE_ASSERT(s != NULL);
    size_t len = strlen(s);
    char *p = hie_mem_alloc(len + 1);
    if (p != NULL) {
        memcpy(p, s, len + 1);
    }
    return p;
}

void
hie_mem_strfree(char *s)
{
    if (s != NULL) {
        hie_mem_free(s, strlen(s) + 1);
    }
}
