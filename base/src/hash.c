/*
 * hash.c - a small non-cryptographic string hash for in-process routing and caches.
 */
#include "hie/base.h"

uint64_t
hie_hash_pair(const char *a, const char *b)
{
    HIE_ASSERT(a != NULL);
    uint64_t h = 1469598103934665603ull;
    for (const char *p = a; *p; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    }
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = b; p != NULL && *p; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    }
    return h;
}
