/*
 * test_mem.c - unit tests for base/src/mem.c: the allocator hooks' byte accounting, failure
 * injection (hie_mem_fail_after) and overflow checks. Each Criterion test runs in its own
 * process, so the live-byte counter starts at 0 in every test.
 */
#include "hie/base.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <stdint.h>
#include <string.h>

Test(base_mem, alloc_and_free_are_accounted)
{
    cr_assert_eq(hie_mem_live_bytes(), 0);
    uint8_t *a = hie_mem_alloc(100);
    cr_assert_not_null(a);
    memset(a, 0xab, 100);
    cr_assert_eq(hie_mem_live_bytes(), 100);
    uint8_t *b = hie_mem_alloc(28);
    cr_assert_not_null(b);
    cr_assert_eq(hie_mem_live_bytes(), 128);
    hie_mem_free(a, 100);
    cr_assert_eq(hie_mem_live_bytes(), 28);
    hie_mem_free(b, 28);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(base_mem, zero_byte_alloc_counts_one_byte_and_frees_back)
{
    void *p = hie_mem_alloc(0);
    cr_assert_not_null(p, "a zero-byte allocation still returns a unique pointer");
    cr_assert_eq(hie_mem_live_bytes(), 1);
    hie_mem_free(p, 0);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(base_mem, free_null_is_a_noop)
{
    hie_mem_free(NULL, 123);
    hie_mem_free_wipe(NULL, 123);
    hie_mem_strfree(NULL);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(base_mem, calloc_zeroes_and_accounts_count_times_size)
{
    uint32_t *p = hie_mem_calloc(25, sizeof(uint32_t));
    cr_assert_not_null(p);
    cr_assert_eq(hie_mem_live_bytes(), 100);
    for (size_t i = 0; i < 25; i++) {
        cr_assert_eq(p[i], 0u);
    }
    hie_mem_free(p, 100);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(base_mem, calloc_overflow_returns_null_without_allocating)
{
    cr_assert_null(hie_mem_calloc(SIZE_MAX, 2));
    cr_assert_null(hie_mem_calloc(SIZE_MAX / 16 + 1, 16));
    cr_assert_null(hie_mem_calloc(2, SIZE_MAX / 2 + 1));
    cr_assert_eq(hie_mem_live_bytes(), 0);
    /* the overflow check happens before the hook: it does not use up an injected failure */
    hie_mem_fail_after(2);
    cr_assert_null(hie_mem_calloc(SIZE_MAX, SIZE_MAX));
    void *first = hie_mem_alloc(1);
    void *second = hie_mem_alloc(1);
    hie_mem_fail_after(0);
    cr_assert_not_null(first, "allocation 1 after fail_after(2) succeeds");
    cr_assert_null(second, "allocation 2 fails: the overflowing calloc was not counted");
    hie_mem_free(first, 1);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(base_mem, calloc_zero_count_is_a_valid_one_byte_allocation)
{
    void *p = hie_mem_calloc(0, 16);
    cr_assert_not_null(p);
    cr_assert_eq(hie_mem_live_bytes(), 1);
    hie_mem_free(p, 0);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(base_mem, realloc_moves_accounting_to_the_new_size)
{
    uint8_t *p = hie_mem_realloc(NULL, 0, 10);
    cr_assert_not_null(p, "realloc of NULL allocates");
    cr_assert_eq(hie_mem_live_bytes(), 10);
    memcpy(p, "0123456789", 10);
    p = hie_mem_realloc(p, 10, 1000);
    cr_assert_not_null(p);
    cr_assert_eq(hie_mem_live_bytes(), 1000);
    cr_assert_eq(memcmp(p, "0123456789", 10), 0, "contents survive growth");
    p = hie_mem_realloc(p, 1000, 4);
    cr_assert_not_null(p);
    cr_assert_eq(hie_mem_live_bytes(), 4);
    cr_assert_eq(memcmp(p, "0123", 4), 0, "contents survive shrinking");
    hie_mem_free(p, 4);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(base_mem, strdup_and_strfree_balance)
{
    char *s = hie_mem_strdup("acme-hospital");
    cr_assert_not_null(s);
    cr_assert_str_eq(s, "acme-hospital");
    cr_assert_eq(hie_mem_live_bytes(), (int64_t)strlen("acme-hospital") + 1);
    hie_mem_strfree(s);
    cr_assert_eq(hie_mem_live_bytes(), 0);
    char *e = hie_mem_strdup("");
    cr_assert_not_null(e);
    cr_assert_str_eq(e, "");
    hie_mem_strfree(e);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(base_mem, free_wipe_balances)
{
    uint8_t *p = hie_mem_alloc(64);
    cr_assert_not_null(p);
    memset(p, 0x5a, 64);
    hie_mem_free_wipe(p, 64);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(base_mem, fail_after_fails_exactly_allocation_n_and_every_later_one)
{
    void *ok[2];
    hie_mem_fail_after(3);
    ok[0] = hie_mem_alloc(8);
    ok[1] = hie_mem_alloc(8);
    void *third = hie_mem_alloc(8);
    void *fourth = hie_mem_calloc(1, 8);
    void *fifth = hie_mem_realloc(NULL, 0, 8);
    char *sixth = hie_mem_strdup("x");
    hie_mem_fail_after(0);
    cr_assert_not_null(ok[0], "allocation 1 succeeds");
    cr_assert_not_null(ok[1], "allocation 2 succeeds");
    cr_assert_null(third, "allocation 3 fails");
    cr_assert_null(fourth, "later allocations keep failing");
    cr_assert_null(fifth);
    cr_assert_null(sixth);
    cr_assert_eq(hie_mem_live_bytes(), 16, "failed allocations are not counted");
    void *after = hie_mem_alloc(8);
    cr_assert_not_null(after, "fail_after(0) turns injection off");
    hie_mem_free(after, 8);
    hie_mem_free(ok[0], 8);
    hie_mem_free(ok[1], 8);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(base_mem, fail_after_one_fails_the_very_next_allocation)
{
    hie_mem_fail_after(1);
    void *p = hie_mem_alloc(1);
    hie_mem_fail_after(0);
    cr_assert_null(p);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(base_mem, fail_after_rearms_the_countdown)
{
    hie_mem_fail_after(1);
    cr_assert_null(hie_mem_alloc(1));
    hie_mem_fail_after(2); /* clears the failing state and counts again from this call */
    void *p = hie_mem_alloc(1);
    void *q = hie_mem_alloc(1);
    hie_mem_fail_after(0);
    cr_assert_not_null(p);
    cr_assert_null(q);
    hie_mem_free(p, 1);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

Test(base_mem, failed_realloc_keeps_the_original_block)
{
    uint8_t *p = hie_mem_alloc(16);
    cr_assert_not_null(p);
    memcpy(p, "sixteen bytes!!", 16);
    hie_mem_fail_after(1);
    uint8_t *q = hie_mem_realloc(p, 16, 4096);
    hie_mem_fail_after(0);
    cr_assert_null(q);
    cr_assert_eq(hie_mem_live_bytes(), 16, "the old block is still owned and counted");
    cr_assert_eq(memcmp(p, "sixteen bytes!!", 16), 0);
    hie_mem_free(p, 16);
    cr_assert_eq(hie_mem_live_bytes(), 0);
}

/* Misuse: a NULL string is a programmer error, so it trips HIE_ASSERT (style.md 3.6). */
Test(base_mem, strdup_null_aborts, .signal = SIGABRT)
{
    char *s = hie_mem_strdup(NULL);
    (void)s;
}
