/*  test_ratelimit: at most one log line per second, with the count left out.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/ratelimit.h"

/*  A zeroed limiter has never logged: the first event is logged whatever the
    clock reads, zero and negative monotonic values included.               */
static void test_first_event_is_logged_at_any_time(void **state)
{
    (void) state;
    const int64_t starts[] = {0, 1, -5000, 999, INT64_MAX / 2};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        zkit__ratelimit_t rl = {0};
        uint64_t suppressed = 77;
        assert_true(zkit__ratelimit(&rl, starts[i], &suppressed));
        assert_int_equal(suppressed, 0);
        assert_false(zkit__ratelimit(&rl, starts[i], &suppressed));
    }
}

static void test_one_line_per_interval_with_the_count_left_out(void **state)
{
    (void) state;
    zkit__ratelimit_t rl = {0};
    uint64_t suppressed = 0;
    assert_true(zkit__ratelimit(&rl, 0, &suppressed));
    for (int64_t t = 1; t < ZKIT__RATELIMIT_INTERVAL_MS; t += 100)
        assert_false(zkit__ratelimit(&rl, t, &suppressed));
    assert_false(zkit__ratelimit(&rl, ZKIT__RATELIMIT_INTERVAL_MS - 1, &suppressed));
    /* Exactly one interval after the last line: due, with the 11 it skipped. */
    assert_true(zkit__ratelimit(&rl, ZKIT__RATELIMIT_INTERVAL_MS, &suppressed));
    assert_int_equal(suppressed, 11);
    /* The count restarts; the interval runs from the new line. */
    assert_false(zkit__ratelimit(&rl, ZKIT__RATELIMIT_INTERVAL_MS + 500, NULL));
    assert_true(zkit__ratelimit(&rl, 2 * ZKIT__RATELIMIT_INTERVAL_MS, NULL));
    assert_false(zkit__ratelimit(&rl, 2 * ZKIT__RATELIMIT_INTERVAL_MS + 1, &suppressed));
    assert_true(zkit__ratelimit(&rl, 5 * ZKIT__RATELIMIT_INTERVAL_MS, &suppressed));
    assert_int_equal(suppressed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_event_is_logged_at_any_time),
        cmocka_unit_test(test_one_line_per_interval_with_the_count_left_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
