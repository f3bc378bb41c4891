/*
 * test_util.h - small helpers shared by the unit suites: temporary directories, file writing,
 * and the seed of randomized tests (style.md 3.10: a fixed seed, printed, overridable).
 *
 * Everything is static inline so a suite that uses only some helpers does not trip
 * -Wunused-function, and no helper needs a prototype elsewhere (-Wmissing-prototypes).
 * Temporary directories live under /tmp and are removed by the suite's .fini, which Criterion
 * runs even when an assertion fails.
 */
#ifndef HIE_TEST_UTIL_H
#define HIE_TEST_UTIL_H

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Creates /tmp/hie-<tag>-XXXXXX into out (at least 64 bytes). Fails the test on error. */
static inline void
test_tmpdir_make(char *out, size_t out_bytes, const char *tag)
{
    int n = snprintf(out, out_bytes, "/tmp/hie-%s-XXXXXX", tag);
    cr_assert(n > 0 && (size_t)n < out_bytes, "tmpdir template too long");
    cr_assert_not_null(mkdtemp(out), "mkdtemp failed");
}

static inline int
test_rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* Removes dir and everything under it; a no-op for "" (setup never ran). */
static inline void
test_tmpdir_remove(char *dir)
{
    if (dir[0] == '\0') {
        return;
    }
    (void)nftw(dir, test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    dir[0] = '\0';
}

/* Writes len bytes to dir/name (dir may be NULL: name is then the whole path). */
static inline void
test_write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    if (dir != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir, name);
    } else {
        snprintf(path, sizeof(path), "%s", name);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0, "cannot create %s", path);
    const uint8_t *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        cr_assert(w > 0, "cannot write %s", path);
        done += (size_t)w;
    }
    close(fd);
}

static inline void
test_write_text(const char *dir, const char *name, const char *text)
{
    test_write_file(dir, name, text, strlen(text));
}

/* The seed of a randomized test: HIE_TEST_SEED from the environment when set (to replay a
 * failure), else the test's fixed default. Always printed, so a failing run can be replayed. */
static inline uint64_t
test_seed(uint64_t fixed)
{
    const char *s = getenv("HIE_TEST_SEED");
    uint64_t seed = fixed;
    if (s != NULL && s[0] != '\0') {
        seed = strtoull(s, NULL, 0);
    }
    cr_log_info("seed=0x%016" PRIx64 " (replay with HIE_TEST_SEED=0x%016" PRIx64 ")", seed,
        seed);
    return seed;
}

/* xorshift64*: a small deterministic PRNG for tests (never 0 state). */
typedef struct test_rng {
    uint64_t s;
} test_rng_t;

static inline void
test_rng_init(test_rng_t *r, uint64_t seed)
{
    r->s = seed != 0 ? seed : 0x9e3779b97f4a7c15ull;
}

static inline uint64_t
test_rng_next(test_rng_t *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}

/* Uniform-enough value in [0, n) for small n. */
static inline uint32_t
test_rng_below(test_rng_t *r, uint32_t n)
{
    return n == 0 ? 0 : (uint32_t)(test_rng_next(r) % n);
}

#endif
