/*
 * time.c - monotonic and wall clocks. Callers: everyone except the state-machine apply path,
 * which takes time only from its command (determinism, style.md 3.6).
 */
#include "hie/base.h"

#include <time.h>

uint64_t
hie_time_mono_ns(void)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
    HIE_ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t
hie_time_wall_ms(void)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    HIE_ASSERT(rc == 0);
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}
