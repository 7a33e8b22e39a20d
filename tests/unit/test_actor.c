/*  test_actor: zkit__actor_query and zkit__actor_reply, the STATS exchange
    every zkit device uses over its actor's pipe.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/actor.h"

typedef struct {
    uint64_t a;
    uint32_t b;
} s_stats_t;

/* Answers STATS with a struct, SHORT with too few bytes, and anything else
   but $TERM with nothing, as a device that does not know the command.     */
static void s_actor(zsock_t *pipe, void *args)
{
    (void) args;
    zsock_signal(pipe, 0);
    for (;;) {
        char *command = zstr_recv(pipe);
        if (!command || streq(command, "$TERM")) {
            zstr_free(&command);
            return;
        }
        if (streq(command, "STATS")) {
            s_stats_t st = {.a = 42, .b = 7};
            assert_int_equal(zkit__actor_reply(pipe, &st, sizeof st), 0);
        }
        else if (streq(command, "SHORT"))
            assert_int_equal(zkit__actor_reply(pipe, "abc", 3), 0);
        zstr_free(&command);
    }
}

static void test_query_gets_the_struct(void **state)
{
    (void) state;
    zactor_t *actor = zactor_new(s_actor, NULL);
    assert_non_null(actor);
    s_stats_t st = {0};
    assert_int_equal(zkit__actor_query(actor, "STATS", &st, sizeof st), 0);
    assert_int_equal(st.a, 42);
    assert_int_equal(st.b, 7);
    zactor_destroy(&actor);
}

/*  A reply of the wrong size is refused and consumed: the pipe stays in
    step, so the next query gets its own answer.                            */
static void test_wrong_size_is_ecanceled_and_in_step(void **state)
{
    (void) state;
    zactor_t *actor = zactor_new(s_actor, NULL);
    assert_non_null(actor);
    s_stats_t st = {.a = 1, .b = 2};
    errno = 0;
    assert_int_equal(zkit__actor_query(actor, "SHORT", &st, sizeof st), -1);
    assert_int_equal(errno, ECANCELED);
    assert_int_equal(st.a, 1); /* left alone */
    assert_int_equal(st.b, 2);
    assert_int_equal(zkit__actor_query(actor, "STATS", &st, sizeof st), 0);
    assert_int_equal(st.a, 42);
    zactor_destroy(&actor);
}

static void s_failed_actor(zsock_t *pipe, void *args)
{
    atomic_int *returned = args;
    zsock_signal(pipe, 0);
    zkit__actor_wait_term(pipe);
    atomic_store(returned, 1);
}

/*  An actor whose setup failed outlives other commands and ends at $TERM. */
static void test_wait_term_waits_for_term(void **state)
{
    (void) state;
    atomic_int returned = 0;
    zactor_t *actor = zactor_new(s_failed_actor, &returned);
    assert_non_null(actor);
    assert_int_equal(zstr_send(actor, "STATS"), 0);
    zclock_sleep(50);
    assert_int_equal(atomic_load(&returned), 0);
    zactor_destroy(&actor);
    assert_int_equal(atomic_load(&returned), 1);
}

int main(void)
{
    zsys_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_gets_the_struct),
        cmocka_unit_test(test_wrong_size_is_ecanceled_and_in_step),
        cmocka_unit_test(test_wait_term_waits_for_term),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
