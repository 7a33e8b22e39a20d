/*  test_wait_util.h: waiting in a cmocka test for a state another thread
    brings about (an actor's counters), with a deadline instead of a fixed
    sleep, so the test holds on a loaded machine and still ends.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef TEST_WAIT_UTIL_H_INCLUDED
#define TEST_WAIT_UTIL_H_INCLUDED

#include <czmq.h>

/*  Runs refresh (a statement: read the stats), then until cond holds or
    timeout_ms passed sleeps a little and runs refresh again. The caller
    asserts on what refresh read last: a timeout shows as that assertion
    failing, with the values in the message.                                 */
#define TEST_WAIT_UNTIL(refresh, cond, timeout_ms)                                                 \
    do {                                                                                           \
        int64_t test_wait_deadline_ = zclock_mono() + (timeout_ms);                                \
        refresh;                                                                                   \
        while (!(cond) && zclock_mono() < test_wait_deadline_) {                                   \
            zclock_sleep(5);                                                                       \
            refresh;                                                                               \
        }                                                                                          \
    } while (0)

/*  TEST_WAIT_UNTIL without a refresh, then asserts cond: for a condition
    that reads shared state itself (an atomic, a call).                      */
#define TEST_ASSERT_EVENTUALLY(cond, timeout_ms)                                                   \
    do {                                                                                           \
        TEST_WAIT_UNTIL((void) 0, cond, timeout_ms);                                               \
        assert_true(cond);                                                                         \
    } while (0)

#endif
